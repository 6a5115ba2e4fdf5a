"""Flow fixes found by an audit: a self-supervised resume keeps the init weights' real_pair_subjects, settings that
crashed a run late are refused early, icegan flow eval refuses options it would ignore and non-finite flow, a
Middlebury folder unzipped on macOS is read, and the strain docstring's rotation claim."""
import math
import os
import re
from pathlib import Path

import pytest
import torch
from test_flow_selfsup import _loop_run, _Stop


def test_selfsup_resume_keeps_init_weights_subjects_without_the_init_file(tmp_path, monkeypatch):
    """A run from init weights that record real_pair_subjects, interrupted and resumed after the init file is gone
    (given still, or set null), ships weights.pt listing those subjects as the uninterrupted run does."""
    from flownet.registry import load_srflownet, save_srflownet
    _loop_run(tmp_path / "a", monkeypatch, "train.student_steps=0")
    first = load_srflownet(tmp_path / "a" / "loop" / "weights.pt")
    init = save_srflownet(first, tmp_path / "init.pt", meta={**first.meta, "real_pair_subjects": ["casme2/sub09"]})
    for name, resume_with in (("given", f"train.init_weights={init}"), ("null", "train.init_weights=null")):
        with pytest.raises(_Stop):
            _loop_run(tmp_path / name, monkeypatch, f"train.init_weights={init}", stop_at=("teacher", 3))
        init.rename(tmp_path / "moved.pt")
        try:
            _loop_run(tmp_path / name, monkeypatch, resume_with)
        finally:
            (tmp_path / "moved.pt").rename(init)
        got = load_srflownet(tmp_path / name / "loop" / "weights.pt").meta["real_pair_subjects"]
        assert "casme2/sub09" in got, (name, got)
        assert torch.load(tmp_path / name / "loop" / "last.pt", weights_only=False)["real_pair_subjects"] == \
            ["casme2/sub09"]


def test_selfsup_refuses_more_occ_pairs_than_items_before_the_run_folder(tmp_path, monkeypatch):
    """data.n_occ_pairs above data.n_items was an IndexError after config.yaml was written; now a ValueError naming
    both keys, the run folder not made."""
    import test_flow_selfsup as tfs

    class Counted(tfs._FakeRealPairs):
        def __init__(self, **kw):
            super().__init__()
            self.n = kw["n_items"]

        def __getitem__(self, i):
            if i >= self.n:
                raise IndexError(f"item {i} out of range (n_items={self.n})")
            return super().__getitem__(i)
    monkeypatch.setattr(tfs, "_FakeRealPairs", Counted)
    with pytest.raises(ValueError, match=r"data\.n_occ_pairs=5 .*data\.n_items=4 holds only 4"):
        _loop_run(tmp_path, monkeypatch, "data.n_items=4", "data.n_occ_pairs=5")
    assert not (tmp_path / "loop").exists()


def test_selfsup_refuses_no_test_pairs_before_the_run_folder(tmp_path, monkeypatch):
    """data.n_test=0 (accepted by the config) trained the teacher, then died in torch.cat at its test evaluation;
    now refused first, no run folder made."""
    import test_flow_selfsup as tfs

    class Sized(tfs._FakeSynthetic):
        def __init__(self, **kw):
            super().__init__()
            self.n = kw["n_pairs"]
    monkeypatch.setattr(tfs, "_FakeSynthetic", Sized)
    with pytest.raises(ValueError, match=r"^data\.n_test must be >= 1 .*got 0$"):
        _loop_run(tmp_path, monkeypatch, "data.n_test=0", "train.student_steps=0")
    assert not (tmp_path / "loop").exists()


@pytest.mark.parametrize("data, key", [(dict(n_test=0), r"data\.n_test must be >= 1"),
                                       (dict(n_val_subjects=2, n_val=0), r"data\.n_val must be >= 1 when "
                                                                         r"data\.n_val_subjects=2")])
def test_supervised_flow_refuses_an_empty_scored_set_before_the_run_folder(tmp_path, data, key):
    """data.n_test=0 (or data.n_val=0 with validation subjects) trained every step, then died in torch.cat at the
    final evaluation before weights.pt, and again on every resume; now refused first, no run folder made."""
    from _flow_sizes import TINY_SRFLOWNET
    from flownet.models.srflownet import SRFlowNetConfig
    from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection, train
    cfg = FlowTrainConfig(name="t0", out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                          data=FlowDataConfig(size=32, n_train=4, frames_per_clip=1, **{"n_test": 1, **data}),
                          train=FlowTrainSection(regularizer="tvr", batch_size=2, steps=1, eval_every=1, ckpt_every=1,
                                                 log_every=100, threads=1))
    with pytest.raises(ValueError, match=key):
        train(cfg, progress=False)
    assert not (tmp_path / "t0").exists()
