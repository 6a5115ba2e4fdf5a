"""Review 55 (resume): a finished train.py run is not ended by a damaged sibling run folder (write_summary), and a
run cut short is resumed with another ``workers`` (which does not change the scores), while another ``threads`` stays
refused with a message that says why."""
import json
import logging

import pandas as pd
import pytest
import yaml
from _runs import centroid_fold_fn as _centroid

from icegan.cli import main
from icegan.data.toy_features import make_toy_features
from icegan.protocol import LosoStateError, run_loso

_METRICS = {"overall": {"UF1": 0.5, "UAR": 0.25}, "protocol": "CDE", "n_folds": 2, "n_samples": 6}
_CONFIG = {"name": "x", "data": {"source": "toy"}, "flow": {"method": "tvl1"}, "recognizer": {"name": "ststnet"},
           "gan": {"enabled": False}}


@pytest.fixture(scope="module")
def toy():
    """The toy feature set of 6 subjects (3 per dataset, 2 clips per class): 6 CDE folds."""
    return make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)


def _run_folder(root, name, metrics_text, config_text):
    d = root / name
    d.mkdir()
    (d / "metrics.json").write_text(metrics_text, encoding="utf-8")
    (d / "config.yaml").write_text(config_text, encoding="utf-8")
    return d


@pytest.mark.parametrize("metrics_text, config_text, why", ids=[
    "yaml_cut", "metrics_list", "config_list", "json_cut", "overall_list", "gan_str"], argvalues=[
    (json.dumps(_METRICS), "gan:\n  skip: 'gr", "ScannerError"),                  # a config.yaml cut short
    ("[]", yaml.safe_dump(_CONFIG), "not a mapping but list"),                     # metrics.json a list
    (json.dumps(_METRICS), "- a\n- b\n", "not a mapping but list"),                # config.yaml a list
    ('{"overall": {', yaml.safe_dump(_CONFIG), "JSONDecodeError"),                 # metrics.json cut short
    (json.dumps({**_METRICS, "overall": [0.5]}), yaml.safe_dump(_CONFIG), "overall"),
    (json.dumps(_METRICS), yaml.safe_dump({**_CONFIG, "gan": "off"}), "gan"),
])
def test_summary_skips_a_sibling_that_cannot_be_read_with_one_warning(tmp_path, caplog, metrics_text, config_text,
                                                                       why):
    """write_summary (run at the end of every train.py run over the parent of --out) leaves out a sibling folder
    whose config.yaml does not parse or whose metrics.json / config.yaml is not a mapping, with one warning naming
    it; the good run's row is written. Before, a yaml error or a list raised and ended the finished run (rc 1)."""
    from icegan.pipeline import write_summary
    _run_folder(tmp_path, "good", json.dumps(_METRICS), yaml.safe_dump(_CONFIG))
    bad = _run_folder(tmp_path, "sibling", metrics_text, config_text)
    with caplog.at_level(logging.WARNING, logger="icegan.pipeline"):
        path = write_summary(tmp_path)
    rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    assert len(rows) == 2 and rows[1].startswith("| good |") and "| 0.5000 | 0.2500 |" in rows[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(bad) in warnings[0] and why in warnings[0], warnings
    assert "summary.md" in warnings[0]


def test_summary_leaves_out_other_commands_runs_without_a_warning(tmp_path, caplog):
    """An `icegan loso` run (its config has no recognizer section) beside is no main-job run: left out silently."""
    from icegan.pipeline import write_summary
    _run_folder(tmp_path, "good", json.dumps(_METRICS), yaml.safe_dump(_CONFIG))
    _run_folder(tmp_path, "loso", json.dumps(_METRICS), yaml.safe_dump({"model": {"name": "ststnet"}}))
    with caplog.at_level(logging.WARNING, logger="icegan.pipeline"):
        rows = [line for line in write_summary(tmp_path).read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 2 and not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _cut_after(out, k):
    """The run folder as a kill after its first ``k`` folds leaves it."""
    pred = pd.read_csv(out / "predictions.csv")
    pred[pred["fold"] < k].to_csv(out / "predictions.csv", index=False)
    (out / "metrics.json").unlink()


@pytest.mark.parametrize("was, now", [
    ({"workers": 2, "threads": 1, "seed": 0}, {"workers": 1, "threads": 1, "seed": 0}),                # icegan loso
    ({"threads": 1, "data": {"prepare": {"workers": 2, "progress": True, "cache_root": "/a"}, "max_folds": 0}},
     {"threads": 1, "data": {"prepare": {"workers": 1, "progress": False, "cache_root": "/b"}, "max_folds": 0}}),
    # a run begun when data.prepare.landmarks defaulted to true (landmarks.npy, read by no command)
    ({"threads": 1, "data": {"prepare": {"landmarks": True}}}, {"threads": 1, "data": {"prepare": {"landmarks": False}}}),
])
def test_a_run_is_resumed_with_other_workers(toy, tmp_path, was, now):
    """Keys that do not change the scores (workers, the main job's data.prepare.workers, progress and cache_root) do
    not stop a resume: the folds finished are kept and the metrics are the whole run's."""
    out, fresh = tmp_path / "x", tmp_path / "fresh"
    run_loso(toy.samples, _centroid(toy, []), out, config=was, progress=False)
    _cut_after(out, 2)
    calls = []
    m = run_loso(toy.samples, _centroid(toy, calls), out, config=now, progress=False)
    ref = run_loso(toy.samples, _centroid(toy, []), fresh, config=now, progress=False)
    assert len(calls) == 4                                  # the 2 finished folds are not trained again
    assert m["overall"] == ref["overall"]
    assert yaml.safe_load((out / "config.yaml").read_text()) == now      # the config of the last call


def test_another_thread_count_is_refused_saying_why(toy, tmp_path):
    """threads can change the last bits of the scores: a resume with another count is refused, the message naming
    the key, both values, and the count to resume with; another workers beside it is not named."""
    out = tmp_path / "x"
    run_loso(toy.samples, _centroid(toy, []), out, config={"workers": 2, "threads": 0}, progress=False)
    _cut_after(out, 2)
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, _centroid(toy, []), out, config={"workers": 1, "threads": 1}, progress=False)
    assert str(exc.value) == (
        f"{out} holds a run made with a different config ({out / 'config.yaml'}: threads: 0 there, 1 now): the "
        "thread count can change the last bits of the scores, so its finished folds and the folds still to run "
        "would not be one run's: resume with threads=0, or use another --out or delete that folder")
    with pytest.raises(LosoStateError, match=r"config\.yaml: threads: 0 there, 1 now, seed: \(absent\) there, 1 "
                                             r"now\); resuming would mix two experiments: use another --out"):
        run_loso(toy.samples, _centroid(toy, []), out, config={"workers": 1, "threads": 1, "seed": 1}, progress=False)


def test_icegan_loso_cut_with_workers_2_resumes_with_workers_1(tmp_path, capsys):
    """The auditor's case through the command: a parallel run cut after 2 folds resumes with workers=1 (same
    threads) to the metrics of the whole run."""
    common = ["data.source=toy", "data.toy_subjects=2", "threads=1", "model.name=logreg", "--no-progress"]
    whole, out = tmp_path / "whole", tmp_path / "cut"
    assert main(["loso", "--out", str(whole), "workers=1", *common]) == 0
    assert main(["loso", "--out", str(out), "workers=2", *common]) == 0
    _cut_after(out, 2)
    capsys.readouterr()
    assert main(["loso", "--out", str(out), "workers=1", *common]) == 0, capsys.readouterr().err
    assert (out / "metrics.json").read_text() == (whole / "metrics.json").read_text()
