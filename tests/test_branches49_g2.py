"""Directions of the environment record, the flow-weights provenance, run_loso (a caller's fold map; a non-zero
torchrun rank resuming) and the suite's copy of inner predictions that no other test took."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

from icegan.data.toy_features import make_toy_features


@pytest.fixture(scope="module")
def toy():
    return make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)


def _uniform(fold):
    return np.full((len(fold.test_idx), 3), 1 / 3)


# ------------------------------------------------------------------------------------------------- environment


def test_a_cpuinfo_without_a_model_name_falls_back_to_the_platform(monkeypatch):
    """ARM Linux: /proc/cpuinfo has no 'model name' line; the record names the machine instead of the first line."""
    import platform

    from icegan.environment import describe_environment
    read = pathlib.Path.read_text

    def fake(self, *a, **kw):
        if str(self) == "/proc/cpuinfo":
            return "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n"
        return read(self, *a, **kw)
    monkeypatch.setattr(pathlib.Path, "read_text", fake)
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert describe_environment()["cpu"] == "aarch64"


# ------------------------------------------------------------------------------------------ flow provenance


@pytest.mark.parametrize("key,flag", [("flow.weights", "flow.weights"),
                                      ("flow.decompose_weights", "flow.decompose_weights")])
def test_the_provenance_of_a_weights_file_that_is_not_there_is_refused(tmp_path, key, flag):
    from icegan.pipeline import flow_weights_provenance, load_main_config
    over = [f"{key}={tmp_path / 'gone.pt'}"]
    if key == "flow.decompose_weights":
        over += ["flow.component=expression", "flow.decompose=learned"]
    cfg = load_main_config(None, over)
    with pytest.raises(FileNotFoundError, match=rf"^{flag}: {tmp_path / 'gone.pt'} is not a file; give the weights "
                                                rf"file the flow network loads \(or leave {flag} unset for the "
                                                r"shipped one\)$"):
        flow_weights_provenance(cfg)


# ---------------------------------------------------------------------------------------------------- run_loso


def test_a_callers_fold_map_runs_the_folds(toy, tmp_path):
    from icegan.executors import sequential_map
    from icegan.protocol import run_loso
    seen = []

    def fold_map(fn, folds):
        seen.extend(f.subject for f in folds)
        yield from sequential_map(fn, folds)
    m = run_loso(toy.samples, _uniform, tmp_path / "r", fold_map=fold_map, progress=False)
    subjects = sorted(set(toy.samples["subject"]))
    assert sorted(seen) == subjects and m["n_folds"] == len(subjects)
    # resumed: the map is given only the folds not yet in predictions.csv (none)
    seen.clear()
    run_loso(toy.samples, _uniform, tmp_path / "r", fold_map=fold_map, progress=False)
    assert seen == []


def test_a_non_zero_rank_resuming_skips_the_groups_rank_0_has_finished(toy, tmp_path, monkeypatch):
    from icegan import distributed
    from icegan.protocol import make_folds, run_loso
    subjects = [f.subject for f in make_folds(toy.samples["subject"].tolist(), "CDE", None)]
    told = iter([{"finished": subjects[:2]}, {"from": "rank 0"}])   # rank 0's finished folds, then its metrics
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    monkeypatch.setattr(distributed, "broadcast_object", lambda obj, src=0: next(told))
    groups = []

    def folds_fn(folds):
        groups.append([f.subject for f in folds])
        return [_uniform(f) for f in folds]
    got = run_loso(toy.samples, None, tmp_path / "r", folds_fn=folds_fn, folds_per_call=2, progress=False)
    assert got == {"from": "rank 0"}
    assert groups == [subjects[s:s + 2] for s in range(2, len(subjects), 2)]
    assert not (tmp_path / "r").exists()                      # a non-zero rank writes nothing


# ------------------------------------------------------------------------------------------------------- suite


def test_copying_inner_predictions_never_overwrites_a_file_of_the_copy(toy, tmp_path):
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config
    from icegan.selection import inner_cache_digest
    from icegan.suite import copy_inner_predictions
    cfg = load_config(LosoConfig, None, ["workers=1", "threads=1", "model.name=logreg"])
    digest = inner_cache_digest(cfg, toy)
    src, dst = tmp_path / "old" / "a_s0", tmp_path / "new" / "b_s0"
    (src.parent / "inner").mkdir(parents=True)
    for k in (2, 3):
        (src.parent / "inner" / f"a_s0_k{k}_{digest}.csv").write_text(f"source k{k}\n")
    inner = dst.parent / "inner"
    inner.mkdir(parents=True)
    (inner / f"b_s0_k2_{digest}.csv").write_text("already there\n")
    written = copy_inner_predictions(src, dst, cfg, inner, toy)
    assert written == [inner / f"b_s0_k3_{digest}.csv"]
    assert (inner / f"b_s0_k2_{digest}.csv").read_text() == "already there\n"
    assert (inner / f"b_s0_k3_{digest}.csv").read_text() == "source k3\n"
