"""Defects a new user met walking README (audit 61): no run folder left behind by a run that fails before
training, resuming with a data root spelled another way, and summary.md's fold time column (the busy-CPU note without a
progress bar: tests/test_environment.py)."""
import numpy as np
import pytest


def test_a_run_that_fails_before_training_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    """train.py with a data root that is not there fails before training; it left its --out holding only .lock,
    which then stopped `icegan table "runs/*"` ("no metrics.json"). A folder that was there before is kept."""
    from icegan.pipeline import main
    monkeypatch.setenv("ICEGAN_SHARED_DATA", str(tmp_path / "nothing"))
    out = tmp_path / "runs" / "noroot"
    args = ["--config", "configs/casme2.yaml", "--no-progress", "data.max_folds=1"]
    assert main([*args, "--out", str(out)]) != 0
    assert "nothing" in capsys.readouterr().err         # the error names the missing root
    assert not (tmp_path / "runs").exists()             # nor the parent it made for it
    kept = tmp_path / "runs" / "mine"
    kept.mkdir(parents=True)
    assert main([*args, "--out", str(kept)]) != 0
    assert kept.is_dir()


def test_the_folder_lock_removes_only_a_folder_it_made_and_held_that_holds_nothing_else(tmp_path):
    import fcntl
    import os

    from icegan.protocol import LOCK_FILE, LosoStateError, _RunFolderLock
    made = tmp_path / "runs" / "made"
    with _RunFolderLock(made) as lock:
        lock.hold()
        assert (made / LOCK_FILE).is_file()
    assert not (tmp_path / "runs").exists()            # the folder and the parent it made (test_late61c.py)
    with _RunFolderLock(made) as lock:                                 # made and written to: kept
        lock.hold()
        (made / "run.json").write_text("{}")
    assert sorted(p.name for p in made.iterdir()) == [LOCK_FILE, "run.json"]
    other = tmp_path / "other"
    lock = _RunFolderLock(other)                                      # made for this lock, ...
    other.mkdir()
    fd = os.open(other / LOCK_FILE, os.O_RDWR | os.O_CREAT)          # ... but another holder took it first
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LosoStateError), lock:
            lock.hold()
        assert sorted(p.name for p in other.iterdir()) == [LOCK_FILE]   # that holder's folder is left alone
    finally:
        os.close(fd)


def _roots_config(root: str, annotations: str = "{shared_data}/annotations/sheet.xlsx") -> dict:
    return {"name": "r", "data": {"prepare": {"datasets": [{"name": "casme2", "root": root,
                                                            "annotations": annotations}]}}}


def test_a_resume_with_the_same_data_root_spelled_another_way_is_the_same_run(tmp_path, monkeypatch):
    """The run's config.yaml says '{shared_data}/casme2'; resuming with data.prepare.datasets.0.root=<that folder>
    (or $ICEGAN_SHARED_DATA with a trailing slash) was refused as "a different config ... would mix two experiments"."""
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    shared = tmp_path / "shared"
    (shared / "casme2").mkdir(parents=True)
    monkeypatch.setenv("ICEGAN_SHARED_DATA", str(shared))
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1, size=8, seed=0)
    calls = []

    def fold_fn(fold):
        calls.append(fold.subject)
        return np.eye(3)[toy.samples["label"].to_numpy()[fold.test_idx]]
    out = tmp_path / "run"
    ref = run_loso(toy.samples, fold_fn, out, config=_roots_config("{shared_data}/casme2"), max_folds=1, progress=False)
    for root, sheet in ((f"{shared}/casme2", f"{shared}/annotations/sheet.xlsx"),
                        (f"{shared}/./casme2/", "{shared_data}/annotations/../annotations/sheet.xlsx")):
        assert run_loso(toy.samples, fold_fn, out, config=_roots_config(root, sheet), max_folds=1,
                        progress=False) == ref
    assert len(calls) == 1                      # trained once, then resumed twice
    monkeypatch.setenv("ICEGAN_SHARED_DATA", f"{shared}/")
    assert run_loso(toy.samples, fold_fn, out, config=_roots_config("{shared_data}/casme2"), max_folds=1,
                    progress=False) == ref


def test_a_resume_with_a_data_root_of_another_folder_is_still_refused(tmp_path, monkeypatch):
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import LosoStateError, run_loso
    monkeypatch.setenv("ICEGAN_SHARED_DATA", str(tmp_path / "shared"))
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1, size=8, seed=0)

    def fold_fn(fold):
        return np.zeros((len(fold.test_idx), 3))
    out = tmp_path / "run"
    run_loso(toy.samples, fold_fn, out, config=_roots_config("{shared_data}/casme2"), max_folds=1, progress=False)
    with pytest.raises(LosoStateError, match=r"data\.prepare\.datasets\[0\]\.root: .* there, .*casme2_copy' now\); "
                                             "resuming would mix two experiments"):
        run_loso(toy.samples, fold_fn, out, config=_roots_config(str(tmp_path / "casme2_copy")), max_folds=1,
                 progress=False)


def test_summary_md_names_its_time_column_the_total_over_the_folds(tmp_path):
    """summary.md's "fold time (s)" held the sum of the folds' seconds (116 for folds of 28.7, 43.7 and 43.7 s), read
    as the time of one fold; the column is named what it holds."""
    import json

    import yaml

    from icegan.pipeline import write_summary
    run = tmp_path / "casme2"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"protocol": "SDE", "n_folds": 3,
                                                  "overall": {"UF1": 0.5926, "UAR": 0.7222}}))
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"source": "prepared"}, "flow": {"method": "tvl1"},
                                                     "recognizer": {"name": "ststnet"}, "gan": {"enabled": False}}))
    (run / "timing.json").write_text(json.dumps({"fold_seconds": {"casme2/sub01": 28.7, "casme2/sub02": 43.7,
                                                                  "casme2/sub03": 43.7}}))
    lines = write_summary(tmp_path).read_text(encoding="utf-8").splitlines()
    header = next(line for line in lines if line.startswith("| run |"))
    assert header.endswith("| UF1 | UAR | total fold time (s) |")
    row = next(line for line in lines if line.startswith("| casme2"))
    assert row.endswith("| 0.5926 | 0.7222 | 116 |")
