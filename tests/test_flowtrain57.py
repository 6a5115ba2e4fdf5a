"""Flow training and evaluation defects: the ``valid`` mask of synthetic facial pairs is on the frame-1 grid (where the
flow is scored), ``train.steps=0`` is refused, ``data.photometric`` must be below 1, the α2 study writes strict JSON
(null, not NaN) and its help says which real pairs it draws."""
import json

import numpy as np
import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET
from test_flow_basics import _template_landmarks

import flownet.data.synthetic_face as sf
from flownet.models.srflownet import SRFlowNetConfig
from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection


def test_make_pair_valid_marks_frame1_pixels_that_land_inside_frame2(monkeypatch):
    """A pure 2.5 px shift to the right (no AU): the frame-1 columns 0..12 of a 16-wide image land inside frame 2 and
    are valid; 13..15 leave it. (The mask used to be frame 2's, the other way round: columns 0..2 invalid.)"""
    h = w = 16
    shift = torch.stack([torch.ones(h, w), torch.zeros(h, w)])      # rescaled by make_pair to the size drawn
    monkeypatch.setattr(sf, "similarity_flow", lambda *a, **kw: shift)
    r = np.random.default_rng(0)             # make_pair's draws before the head motion's size: 2 + 2 uniforms
    r.uniform(), r.uniform(), r.uniform(size=2)
    max_head = 2.5 / r.uniform()             # the size drawn in [0, max_head] is then 2.5 (to rounding)
    p = sf.make_pair(torch.rand(1, h, w), _template_landmarks(h, w), np.random.default_rng(0), max_head=max_head,
                     amplitudes={}, noise=0.0, blur=0.0)
    assert torch.allclose(p["flow"][0], torch.full((h, w), 2.5)) and p["flow"][1].abs().max() == 0
    assert p["valid"].shape == (h, w) and p["valid"].dtype == torch.bool
    assert p["valid"][:, :13].all() and not p["valid"][:, 13:].any()


def test_make_pair_frames_and_flow_do_not_depend_on_the_mask():
    """Frame 2 is still warp_forward's (the same pixels as with return_valid=True, whose mask is frame 2's)."""
    h = w = 32
    img, lm = torch.rand(1, h, w), _template_landmarks(h, w)
    p = sf.make_pair(img, lm, np.random.default_rng(3), noise=0.0, blur=0.0)
    img2, valid2 = sf.warp_forward(img, p["flow"], return_valid=True)
    assert torch.equal(p["img2"], img2.clamp(0, 1)) and not torch.equal(p["valid"], valid2)


def _cfg(tmp_path, root, **train):
    kw = dict(regularizer="tvr", batch_size=2, crop=0, steps=1, eval_every=0, threads=1, seed=1, log_every=100,
              ckpt_every=1, init_weights=None)
    return FlowTrainConfig(name="r", out_dir=str(tmp_path / "runs"), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                           data=FlowDataConfig(root=str(root), size=32, n_train=4, n_test=1, frames_per_clip=1),
                           train=FlowTrainSection(**{**kw, **train}))


def test_train_refuses_steps_zero_even_with_a_wall_time_budget(tmp_path, shared_data):
    """train.steps=0 took no step and shipped untrained weights (exit 0); the LR schedule needs a step budget."""
    from flownet.train import train
    with pytest.raises(ValueError, match=r"train\.steps must be >= 1, got 0.*train\.max_minutes"):
        train(_cfg(tmp_path, shared_data, steps=0, max_minutes=1), progress=False)
    assert not (tmp_path / "runs").exists()      # refused before the run folder


@pytest.mark.parametrize("p", [1.0, 1.5])
def test_photometric_of_one_or_more_is_refused(tmp_path, shared_data, p):
    """Gamma and contrast are drawn in [1 - p, 1 + p]: p >= 1 gives negative contrast (inverted frames) or gamma."""
    with pytest.raises(ValueError, match=r"data\.photometric must be in \[0, 1\).*got " + str(p)):
        FlowDataConfig(photometric=p)
    with pytest.raises(ValueError, match=r"photometric.*must be in \[0, 1\).*got " + str(p)):
        sf.SyntheticFaceFlow(root=shared_data, split="train", size=32, n_pairs=2, frames_per_clip=1, photometric=p)
    FlowDataConfig(photometric=0.9)


def test_alpha2_study_with_no_real_pair_writes_strict_json_null(tmp_path, shared_data, monkeypatch, capsys):
    """--n-real 0: occ_real is null (NaN is no JSON), printed and in --json."""
    from flownet.selfsup import _main
    monkeypatch.setenv("ICEGAN_SHARED_DATA", str(shared_data))
    out = tmp_path / "a2.json"
    assert _main(["--alpha2-study", "shipped", "--alpha2", "0.5", "--n-synthetic", "1", "--n-real", "0",
                  "--json", str(out)]) == 0

    def strict(c):
        raise ValueError(f"not JSON: {c}")
    res = json.loads(out.read_text(), parse_constant=strict)
    assert res["shipped"]["by_alpha2"]["0.5"]["occ_real"] is None
    printed = capsys.readouterr().out.strip().split(" ", 1)[1]
    assert json.loads(printed, parse_constant=strict) == res["shipped"]


def test_alpha2_study_help_says_the_real_pairs_mix_onset_apex_and_consecutive(capsys):
    from flownet.selfsup import _main
    with pytest.raises(SystemExit):
        _main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "onset-to-apex pairs of the held-out subjects" not in text
    assert "consecutive" in text and "0.5" in text
