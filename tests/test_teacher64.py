"""Flow defects of audit 64 (flownet/selfsup.py, flownet/resolution.py, flownet/train.py, ``icegan features --help``).

1. The self-supervised run's ``teacher.pt`` (SRFlowNet weights, usable as ``flow.weights``) recorded neither
   ``real_pair_subjects`` nor ``size``: :func:`icegan.pipeline.real_motion_seen` returned [] for it although the
   teacher stage trained on the real CASME II frames of the train subjects, so the leak check could not see them.
2. ``input size auto`` with weights that record no training size fell back to the image size silently; it now says
   so, once.
3. The supervised training log's ``elapsed`` restarted at 0 after a resume, while the time budget counts across
   resumes (and the self-supervised log prints the total).
4. ``icegan features --help`` gave no example of a trained flow checkpoint (``flow.weights=...``).
"""
from __future__ import annotations

import re
from functools import partial
from types import SimpleNamespace

import torch
from _flow_sizes import TINY_SRFLOWNET
from test_flowtrain59 import _cfg, _selfsup_cfg

import flownet
import flownet.data.real_pairs as real_pairs
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import load_srflownet, save_srflownet
from flownet.resolution import ResizedEstimator, at_input_size
from flownet.selfsup import train_selfsup
from flownet.train import train
from icegan.pipeline import real_motion_seen


# --------------------------------------------------------------------------------------- 1. teacher.pt's record

def test_selfsup_teacher_records_the_real_subjects_it_trained_on_and_its_size(tmp_path, shared_data, monkeypatch,
                                                                           capsys):
    """A 1-step teacher started from weights that saw casme2/sub99: teacher.pt records the real train subjects of
    its stage plus the init weights' (as weights.pt does) and data.size 64, so the leak check finds them and
    ``input size auto`` computes at 64x64. It used to record neither (real_motion_seen -> [], auto -> native)."""
    monkeypatch.setattr(real_pairs, "RealFramePairs", partial(real_pairs.RealFramePairs, max_clips=3))   # faster
    init = tmp_path / "init.pt"
    save_srflownet(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), init, meta={"real_pair_subjects": ["casme2/sub99"]})
    train_selfsup(_selfsup_cfg(tmp_path, shared_data, "train.teacher_steps=1", "train.student_steps=0",
                               f"train.init_weights={init}"), progress=False)
    out = capsys.readouterr().out
    subjects = re.search(r"real pairs: subjects \[([^\]]*)\]", out).group(1).replace("'", "").split(", ")
    expected = sorted({f"casme2/{s}" for s in subjects} | {"casme2/sub99"})
    teacher = load_srflownet(tmp_path / "s" / "teacher.pt")
    assert teacher.meta["real_pair_subjects"] == expected
    assert teacher.meta["size"] == 64 and teacher.meta["gray"] is True and teacher.meta["steps"] == 1
    assert load_srflownet(tmp_path / "s" / "weights.pt").meta["real_pair_subjects"] == expected
    held_out = [f"casme2/{subjects[0]}", "casme2/sub98"]
    assert real_motion_seen(SimpleNamespace(model=teacher), held_out) == [f"casme2/{subjects[0]}"]
    est = at_input_size(flownet.get_estimator("srflownet", weights=str(tmp_path / "s" / "teacher.pt")), "auto", 128)
    assert isinstance(est, ResizedEstimator) and est.size == (64, 64)


# --------------------------------------------------------------------------------------- 2. auto without a size

def test_auto_input_size_says_once_when_the_weights_record_no_size(tmp_path, capsys):
    """Weights without ``meta["size"]``: ``auto`` computes at the image size, and says so once (the second call is
    silent); weights that record their size, and classical methods, print nothing."""
    path = tmp_path / "nosize.pt"
    save_srflownet(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), path, meta={"name": f"nosize-{tmp_path.name}"})
    est = flownet.get_estimator("srflownet", weights=str(path))
    assert at_input_size(est, "auto", 48) is est
    err = capsys.readouterr().err
    assert f"nosize-{tmp_path.name}" in err and "record no training crop size" in err and "48x48" in err
    assert "flow.input_size" in err and "--input-size" in err
    assert at_input_size(est, "auto", 48) is est
    assert capsys.readouterr().err == ""
    sized = tmp_path / "sized.pt"
    save_srflownet(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), sized, meta={"size": 32})
    assert at_input_size(flownet.get_estimator("srflownet", weights=str(sized)), "auto", 48).size == (32, 32)
    tvl1 = flownet.get_estimator("tvl1")
    assert at_input_size(tvl1, "auto", 48) is tvl1
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------------------- 3. elapsed after resume

def test_supervised_log_elapsed_counts_across_a_resume(tmp_path, shared_data, capsys):
    """A 1-step run whose last.pt says 1000 s were used, resumed to 2 steps: the step-2 log line prints at least
    1000 s (it used to print this session's seconds only, from 0)."""
    train(_cfg(tmp_path, shared_data, steps=1, log_every=1), progress=False)
    ckpt = tmp_path / "runs" / "r" / "last.pt"
    ck = torch.load(ckpt, weights_only=False)
    ck["elapsed_s"] = 1000.0
    torch.save(ck, ckpt)
    capsys.readouterr()
    train(_cfg(tmp_path, shared_data, steps=2, log_every=1), progress=False)
    out = capsys.readouterr().out
    assert "resumed" in out
    assert int(re.search(r"step 2 loss .* elapsed (\d+)s", out).group(1)) >= 1000


# --------------------------------------------------------------------------------------- 4. features --help

def test_features_help_shows_a_trained_flow_checkpoint_override(capsys):
    from icegan.cli import main
    try:
        main(["features", "--help"])
    except SystemExit:
        pass
    assert "flow.weights=runs/NAME/weights.pt" in capsys.readouterr().out
