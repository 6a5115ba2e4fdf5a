"""Review 58 B: run folders and feature tables made when configs/casme2.yaml set ``flow.iters: 4`` (before
2026-11-30) stay usable with a method that reads no iterations (tvl1, farneback, liteflownet2), and train.py's
summary.md is written whole (a kill never leaves an empty file it then takes for a user's)."""
import json
import logging
import pathlib

import pandas as pd

import pytest
import yaml

from icegan.config import ConfigError
from icegan.pipeline import SUMMARY_HEADING, load_main_config, run_main, write_summary
from icegan.protocol import _config_conflict
from icegan.saved_recognizer import maps_differ

TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "gan.enabled=false", "gan.joint=false",
        "flow.method=tvl1", "recognizer.epochs=2", "recognizer.batch_size=16", "recognizer.name=ststnet",
        "threads=1"]


def _set_iters(cfg_path: pathlib.Path, iters) -> None:
    c = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    c["flow"]["iters"] = iters
    cfg_path.write_text(yaml.safe_dump(c, sort_keys=False), encoding="utf-8")


# ------------------------------------------------------------------------------------------------ 1: old flow.iters

def test_old_tvl1_run_folder_with_iters_4_is_extended_by_todays_config(tmp_path):
    """A max_folds=1 TV-L1 run made when casme2.yaml set flow.iters: 4 (config.yaml records it): today's config
    cannot set it (refused for tvl1) and was refused as a different config without it, so the folder could be
    neither resumed nor extended. TV-L1 never read iters: the run is extended, its config.yaml rewritten without it."""
    out = tmp_path / "run"
    run_main(load_main_config(None, TINY + ["data.max_folds=1"]), out, progress=False)
    _set_iters(out / "config.yaml", 4)                   # the folder as the old code wrote it
    with pytest.raises(ConfigError, match="flow.iters=4 is not used by flow.method=tvl1"):
        load_main_config(None, TINY + ["flow.iters=4"])   # a new value given today stays refused
    run_main(load_main_config(None, TINY + ["data.max_folds=2"]), out, progress=False)
    assert yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))["flow"]["iters"] is None
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["folds"] == ["synthetic/s01", "synthetic/s02"]
    assert sorted(set(pd.read_csv(out / "predictions.csv")["fold"])) == [0, 1]


def _conflict(tmp_path, method: str, then, now) -> str:
    cfg = yaml.safe_load(yaml.safe_dump({"flow": {"method": method, "iters": now}, "seed": 0}))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"flow": {"method": method, "iters": then}, "seed": 0}), encoding="utf-8")
    return _config_conflict(tmp_path, path, cfg)


@pytest.mark.parametrize("method", ["tvl1", "farneback", "liteflownet2"])
def test_resume_compares_iters_only_for_methods_that_read_it(tmp_path, method):
    assert _conflict(tmp_path, method, 4, None) == ""


@pytest.mark.parametrize("method", ["srflownet", "raft_small"])
def test_resume_still_refuses_other_iters_for_srflownet_and_raft(tmp_path, method):
    assert "flow.iters: 4 there, None now" in _conflict(tmp_path, method, 4, None)
    assert "flow.iters: 4 there, 2 now" in _conflict(tmp_path, method, 4, 2)


_BASE = {"module": "", "weights": None, "component": "total", "decompose": "ransac", "decompose_weights": None,
         "input_size": 28, "tta": "none"}


@pytest.mark.parametrize("method", ["tvl1", "farneback"])
def test_predict_does_not_warn_for_iters_a_classical_flow_never_read(method):
    """A TV-L1 feature table made with casme2.yaml's old iters: 4 and today's (iters null): the same maps, no
    "flow settings differ (flow.iters)" warning."""
    trained = {"flow": {**_BASE, "method": method, "iters": 4}, "weights": {}, "size": 28}
    today = {"flow": {**_BASE, "method": method, "iters": None}, "weights": {}, "size": 28}
    assert maps_differ(trained, today) is None
    other = {"flow": {**_BASE, "method": method, "iters": None, "input_size": 56}, "weights": {}, "size": 28}
    assert "(flow.input_size)" in maps_differ(trained, other)          # a real difference is still said


def test_predict_still_warns_for_other_srflownet_iters():
    trained = {"flow": {**_BASE, "method": "srflownet", "iters": 4}, "weights": {}, "size": 28}
    scored = {"flow": {**_BASE, "method": "srflownet", "iters": 2}, "weights": {}, "size": 28}
    assert "(flow.iters)" in maps_differ(trained, scored)


# ------------------------------------------------------------------------------------------------ 2: summary.md

def test_empty_summary_md_is_train_pys_own_and_rewritten(tmp_path, caplog):
    """An empty summary.md (a kill between the old write_text's truncate and its write) was taken for a user's file
    and never refreshed again; it is now replaced by the summary."""
    (tmp_path / "summary.md").write_text("", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="icegan.pipeline"):
        path = write_summary(tmp_path)
    assert path == tmp_path / "summary.md"
    assert path.read_text(encoding="utf-8").startswith(SUMMARY_HEADING + "\n")
    assert "not written by train.py" not in caplog.text


def test_summary_md_kill_while_writing_keeps_the_old_file_whole(tmp_path, monkeypatch):
    """The summary is written through a temporary file: a kill in the middle of the write (here: after the file is
    opened for writing) leaves the previous summary.md as it was, not truncated."""
    old = SUMMARY_HEADING + "\n\nthe previous summary\n"
    (tmp_path / "summary.md").write_text(old, encoding="utf-8")

    def killed(self, *args, **kwargs):
        open(self, "w").close()                           # truncated, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(pathlib.Path, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        write_summary(tmp_path)
    monkeypatch.undo()
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.md"]    # no temporary file left


def test_user_summary_md_still_kept(tmp_path):
    (tmp_path / "summary.md").write_text("# my notes\n", encoding="utf-8")
    assert write_summary(tmp_path) is None
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == "# my notes\n"
