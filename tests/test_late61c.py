"""Late fixes 61c: (1) a resume of a predictions.csv cut in its last fold, where one clip name holds "\\r", rewrote
the finished folds with one quoting for the whole table (every fold quoted), so its bytes differed from an
uninterrupted run's; now each fold keeps its own quoting. (2) a run folder the run made and left unused is removed
with the parents it made (``--out runs/sweep/a``, a missing data root, left ``runs/sweep``, which ``icegan table
"runs/*"`` refused). (3) a second run whose folder the first removed between its mkdir and its open of the lock file
failed with FileNotFoundError; it now makes the folder again."""
import os

import numpy as np
import pytest

fcntl = pytest.importorskip("fcntl")


def _scores(folds):
    return [np.stack([np.sin(f.test_idx + f.index), np.cos(f.test_idx * 0.37), 0.1 * f.test_idx / 7], 1) / 3
            for f in folds]


def test_a_resumed_run_with_a_carriage_return_in_a_clip_name_writes_an_uninterrupted_runs_bytes(tmp_path):
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    samples = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2).samples.copy()
    samples.loc[0, "clip"] = "a\rb"                          # fold 0 holds a quoted name, the others none
    kw = dict(folds_fn=_scores, folds_per_call=1, progress=False)
    run_loso(samples, None, tmp_path / "a", **kw)
    want = (tmp_path / "a" / "predictions.csv").read_bytes()
    run_loso(samples, None, tmp_path / "b", **kw)
    pred = tmp_path / "b" / "predictions.csv"
    pred.write_bytes(pred.read_bytes()[:-5])                 # killed mid-line in the last fold
    run_loso(samples, None, tmp_path / "b", **kw)
    assert pred.read_bytes() == want


def test_the_folder_lock_removes_the_parents_it_made_but_no_older_one(tmp_path):
    from icegan.protocol import _RunFolderLock
    (tmp_path / "runs" / "done").mkdir(parents=True)
    out = tmp_path / "runs" / "sweep" / "deep" / "a"
    with _RunFolderLock(out) as lock:
        lock.hold()
    assert not (tmp_path / "runs" / "sweep").exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["done"]
    with _RunFolderLock(out) as lock:                        # a parent written to meanwhile is kept
        lock.hold()
        (tmp_path / "runs" / "sweep" / "notes.txt").write_text("mine")
    assert not (tmp_path / "runs" / "sweep" / "deep").exists()
    assert sorted(p.name for p in (tmp_path / "runs" / "sweep").iterdir()) == ["notes.txt"]


def test_a_second_run_whose_folder_the_first_removed_before_its_lock_was_opened_makes_it_again(tmp_path, monkeypatch):
    import icegan.protocol as protocol
    from icegan.protocol import LOCK_FILE, _RunFolderLock
    out = tmp_path / "runs" / "x"
    real_open, removed = os.open, []

    def racing_open(path, *args):
        if not removed:                                      # the first run exits now: unlinks .lock, removes out
            removed.append(path)
            for p in sorted(out.parent.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
            out.parent.rmdir()
        return real_open(path, *args)
    monkeypatch.setattr(protocol.os, "open", racing_open)
    with _RunFolderLock(out) as lock:
        lock.hold()
        assert (out / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert removed == [out / LOCK_FILE] and not (tmp_path / "runs").exists()
