"""Second review of the fifty-ninth session: an ensemble of null runs writes no reference rows; one reading of a
run's data.permute_labels for table and compare; timing.json's device of every fold; the entry rule in the help;
bench/leave_dataset_out.py refuses recipe names with '|' or '+'."""
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from _bench import bench_parser
from _runs import TINY_MAIN_JOB
from icegan.cli import main

REPO = Path(__file__).resolve().parents[1]
SUBJECTS = [f"{ds}/s{i}" for ds in ("smic", "casme2", "samm") for i in range(2)]


def _scored_run(root, name, permute=-1, seed=0, label_shift=0):
    """A finished composite CDE run with class scores (what ``icegan ensemble`` reads) and
    ``data.permute_labels`` = ``permute``; ``label_shift`` moves every y_true (other labels: a null run's)."""
    rng = np.random.default_rng(seed)
    d = root / name
    d.mkdir(parents=True)
    rows = []
    for fi, s in enumerate(SUBJECTS):
        for j in range(3):
            p = rng.dirichlet([1, 1, 1])
            rows.append(dict(fold=fi, dataset=s.split("/")[0], subject=s, clip=f"c{j}", y_true=(j + label_shift) % 3,
                             y_pred=int(p.argmax()), score_negative=p[0], score_positive=p[1], score_surprise=p[2]))
    pd.DataFrame(rows).to_csv(d / "predictions.csv", index=False)
    (d / "run.json").write_text(json.dumps({"protocol": "CDE", "oracle_epoch": False, "folds": SUBJECTS}))
    (d / "config.yaml").write_text(yaml.safe_dump({"name": name, "seed": seed, "model": {"name": "logreg"},
                                                   "data": {"permute_labels": permute}}))
    return d


def _ensemble(root, name, *members):
    assert main(["ensemble", *map(str, members), "--out", str(root / name)]) == 0
    return root / name


# 1. reference rows of an ensemble of null runs -----------------------------------------------------------------------

def test_ensemble_of_null_runs_has_no_reference_rows(tmp_path):
    null = _ensemble(tmp_path, "E", _scored_run(tmp_path, "pa", permute=0, seed=1),
                     _scored_run(tmp_path, "pb", permute=0, seed=2))
    md = (null / "metrics.md").read_text()
    assert "No reference rows: this is a null run" in md and "Reference rows:" not in md
    assert "ICE-GAN (published" not in md
    real = _ensemble(tmp_path, "R", _scored_run(tmp_path, "ra", seed=1), _scored_run(tmp_path, "rb", seed=2))
    md = (real / "metrics.md").read_text()
    assert "Reference rows:" in md and "null run" not in md


def test_markdown_reference_rows_follow_null_run_not_the_title():
    from icegan.protocol import METRIC_KEYS, _markdown
    per = {d: {k: 0.5 for k in METRIC_KEYS} for d in ("smic", "casme2", "samm")}
    m = {"protocol": "CDE", "n_folds": 68, "n_samples": 442, "oracle_epoch": False,
         "overall": {k: 0.5 for k in METRIC_KEYS}, "per_dataset": per}
    assert "No reference rows: this is a null run" in _markdown(m, "my ensemble", null_run=True)
    # a title that happens to hold the tag's text does not drop the rows of a run of real labels
    assert "Reference rows:" in _markdown(m, "ablation [NULL RUN baseline?]")


def test_run_loso_null_run_from_config():
    from icegan.protocol import config_null_run
    assert config_null_run({"data": {"permute_labels": 0}})
    assert not config_null_run({"data": {"permute_labels": -1}})
    assert not config_null_run({"data": {}}) and not config_null_run(None)
    from icegan.commands.loso import LosoConfig
    cfg = LosoConfig()
    assert not config_null_run(cfg)
    cfg.data.permute_labels = 3
    assert config_null_run(cfg)


# 2. compare of a null ensemble with a real run ----------------------------------------------------------------------

def test_compare_null_ensemble_with_real_run_names_permute_labels(tmp_path, capsys):
    ens = _ensemble(tmp_path, "E", _scored_run(tmp_path, "pa", permute=0, seed=1, label_shift=1),
                    _scored_run(tmp_path, "pb", permute=0, seed=2, label_shift=1))
    real = _scored_run(tmp_path, "real", seed=3)
    capsys.readouterr()
    assert main(["compare", f"real={real}", f"null={ens}", "--resamples", "100"]) == 2
    err = capsys.readouterr().err
    assert "are scored against different labels" in err and "data.permute_labels=0" in err
    assert f"{ens} was run with data.permute_labels=0 (a null run, labels permuted)" in err
    assert "a paired comparison needs runs of one data.permute_labels" in err


def test_permute_labels_helper_reads_ensembles(tmp_path):
    from icegan.report import permuted_labels
    ens = _ensemble(tmp_path, "E", _scored_run(tmp_path, "pa", permute=0, seed=1),
                    _scored_run(tmp_path, "pb", permute=0, seed=2))
    assert permuted_labels(ens) == (0,)
    assert permuted_labels(_scored_run(tmp_path, "r", seed=3)) == (-1,)
    assert permuted_labels(tmp_path / "missing") == ()


# 3. timing.json: the device of every fold ---------------------------------------------------------------------------

def test_timing_records_each_folds_device_and_warns_after_two_resumes(tmp_path, caplog):
    from icegan.pipeline import _update_timing, _warn_other_device
    path = tmp_path / "timing.json"
    _update_timing(path, SimpleNamespace(fold_seconds={"casme2/s1": 3.0}, fold_peak_rss_mb={}), device="cuda:0")
    _update_timing(path, SimpleNamespace(fold_seconds={"casme2/s2": 9.0}, fold_peak_rss_mb={}), device="cpu")
    t = json.loads(path.read_text())
    assert t["fold_device"] == {"casme2/s1": "cuda:0", "casme2/s2": "cpu"}
    assert t["fold_seconds"] == {"casme2/s1": 3.0, "casme2/s2": 9.0}
    with caplog.at_level(logging.WARNING, logger="icegan"):        # a second resume on the CPU: fold 1 was on a GPU
        _warn_other_device(path, torch.device("cpu"), "auto")
    assert "cuda:0" in caplog.text and "casme2/s1" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="icegan"):
        _warn_other_device(path, torch.device("cuda", 1), "auto")
    assert "cpu" in caplog.text and "casme2/s2" in caplog.text
    caplog.clear()
    one = tmp_path / "one.json"
    _update_timing(one, SimpleNamespace(fold_seconds={"a/s1": 1.0}, fold_peak_rss_mb={}), device="cpu")
    with caplog.at_level(logging.WARNING, logger="icegan"):
        _warn_other_device(one, torch.device("cpu"), "auto")
    assert caplog.text == ""


def test_timing_of_an_older_run_keeps_its_device_for_its_folds(tmp_path, caplog):
    """A timing.json written before fold_device (one top-level device) still warns, and its folds keep that
    device when a resume adds its own."""
    from icegan.pipeline import _update_timing, _warn_other_device
    path = tmp_path / "timing.json"
    path.write_text(json.dumps({"fold_seconds": {"a/s1": 1.0}, "device": "cuda:0"}))
    with caplog.at_level(logging.WARNING, logger="icegan"):
        _warn_other_device(path, torch.device("cpu"), "auto")
    assert "cuda:0" in caplog.text
    _update_timing(path, SimpleNamespace(fold_seconds={"a/s2": 1.0}, fold_peak_rss_mb={}), device="cpu")
    assert json.loads(path.read_text())["fold_device"] == {"a/s1": "cuda:0", "a/s2": "cpu"}


# 4. the entry rule in --help, and the error when no split resolves ---------------------------------------------------

@pytest.mark.parametrize("command", ["table", "compare"])
def test_help_states_the_entry_rule(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "first '='" in out and "'.'" in out and "glob" in out


def test_entry_error_names_the_entry_when_no_split_resolves(tmp_path, monkeypatch):
    from icegan.report import parse_entry
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as exc:
        parse_entry("A=b=c")
    msg = str(exc.value)
    assert "'A=b=c'" in msg and "no split" in msg and "'b=c'" in msg and "'c'" in msg


# 5. bench/leave_dataset_out.py: names with '|' or '+' ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["A|B", "A+B", "LR+"])
def test_leave_dataset_out_refuses_names_with_pipe_or_plus(name, tmp_path, monkeypatch, capsys):
    ap = bench_parser("leave_dataset_out", monkeypatch)
    lr = str(REPO / "configs" / "features_logreg.yaml")
    with pytest.raises(SystemExit) as exc:
        ap.parse_args(["--out", str(tmp_path / "o"), f"{name}={lr}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"'{name}'" in err and "'|'" in err and "'+'" in err


def test_main_job_warns_at_every_resume_after_a_gpu_fold(tmp_path, caplog):
    """/tmp/r59b/dev.py: fold 1 computed on a GPU (faked), the run resumed twice on the CPU; the second resume
    warned nothing before (the one top-level device said cpu by then)."""
    from icegan.pipeline import load_main_config, run_main
    demo = str(REPO / "configs" / "demo.yaml")
    out = tmp_path / "run"
    run_main(load_main_config(demo, [*TINY_MAIN_JOB, "data.max_folds=1"]), out, progress=False)
    t = json.loads((out / "timing.json").read_text())
    (first,) = t["fold_device"]
    t["fold_device"][first] = t["device"] = "cuda:0"
    (out / "timing.json").write_text(json.dumps(t))
    for max_folds in (2, 0):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="icegan"):
            run_main(load_main_config(demo, [*TINY_MAIN_JOB, f"data.max_folds={max_folds}"]), out, progress=False)
        said = [r.getMessage() for r in caplog.records if "device" in r.getMessage()]
        assert len(said) == 1 and f"{first} on cuda:0" in said[0], max_folds
    t = json.loads((out / "timing.json").read_text())
    assert t["fold_device"][first] == "cuda:0" and sorted(set(t["fold_device"].values())) == ["cpu", "cuda:0"]
    assert set(t["fold_device"]) == set(t["fold_seconds"]) and len(t["fold_seconds"]) == 3
