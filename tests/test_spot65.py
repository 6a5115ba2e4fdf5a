"""Spotting audit 65: spotted apexes keyed on the spotting rules' version, decimal action-unit cells refused,
frames and masks of the wrong kind refused before OpenCV, LiteFlowNet2's upcorr convention pinned."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch

from icegan.data import spotting
from icegan.data.action_units import parse_action_units
from icegan.data.prepare import _spot_inputs, _with_spotted_before
from icegan.data.records import ClipRecord


def _smic_clip(tmp_path, n=7):
    """A SMIC-like clip (no apex) of ``n`` 64x64 grayscale JPEG frames, the texture shifted along x."""
    d = tmp_path / "s1_ne_01"
    d.mkdir()
    base = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    paths = []
    for i in range(1, n + 1):
        p = d / f"image{i:06d}.jpg"
        cv2.imwrite(str(p), np.roll(base, i if i < 5 else 8 - i, axis=1))
        paths.append(p)
    rec = ClipRecord("smic", "smic/s1", "s1_ne_01", "negative", 0, None, None, None, tuple(range(1, n + 1)),
                     tuple(paths), clip_dir=d, listed_in="folder tree")
    return rec, [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]


def test_spotted_apex_of_an_older_spotting_rule_is_not_reused(tmp_path, monkeypatch):
    rec, _ = _smic_clip(tmp_path)
    settings = {"apex_spotting": "middle", "detector": "hog"}
    known = {rec.key: {"inputs": _spot_inputs(rec, settings), "apex": 4, "apex_method": "middle-frame"}}
    same = _with_spotted_before(rec, settings, known, {rec.key: _spot_inputs(rec, settings)})
    assert (same.apex, same.apex_method) == (4, "middle-frame")          # same rule: reused
    monkeypatch.setattr(spotting, "SPOTTING_VERSION", spotting.SPOTTING_VERSION + 1, raising=False)
    again = _with_spotted_before(rec, settings, known, {rec.key: _spot_inputs(rec, settings)})
    assert again is rec and again.apex is None                            # rule changed: spotted again


@pytest.mark.parametrize("cell, shown", [("4.5", "4.5"), ("L1+12.0", "12.0")])
def test_decimal_action_unit_cell_is_refused(cell, shown):
    with pytest.raises(ValueError, match=rf"casme2 clip 'EP01_01': action-unit cell '{re.escape(cell)}' holds "
                                         rf"{shown}, not a FACS code \(1..99\): a decimal number"):
        parse_action_units(cell, where="casme2 clip 'EP01_01'")
    assert parse_action_units("4+5") == {4, 5} and parse_action_units("R12A+R14A") == {12, 14}


def test_colour_or_non_uint8_frames_refused_before_opencv(tmp_path):
    _, frames = _smic_clip(tmp_path)
    colour = [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in frames]
    with pytest.raises(ValueError, match=r"spot_apex_index: frame 0 has shape \(64, 64, 3\), expected a \(H, W\) "
                                         r"grayscale image"):
        spotting.spot_apex_index(colour, "dis")
    with pytest.raises(ValueError, match=r"flow_magnitudes: frame 0 has shape \(64, 64, 3\)"):
        spotting.flow_magnitudes(colour, np.ones((64, 64), bool))
    wide = [f.astype(np.uint16) * 256 for f in frames]
    with pytest.raises(ValueError, match=r"spot_apex_index: frame 0 is uint16, expected uint8"):
        spotting.spot_apex_index(wide, "farneback")
    with pytest.raises(ValueError, match=r"flow_magnitudes: frame 2 is float32, expected uint8"):
        spotting.flow_magnitudes(frames[:2] + [frames[2].astype(np.float32)], np.ones((64, 64), bool))
    assert spotting.spot_apex_index(colour, "middle")[:2] == (3, "middle-frame")   # reads no pixels


def test_mask_of_another_shape_refused(tmp_path):
    _, frames = _smic_clip(tmp_path, n=2)
    with pytest.raises(ValueError, match=r"flow_magnitudes: the face mask has shape \(10, 10\), the frames "
                                         r"\(64, 64\)"):
        spotting.flow_magnitudes(frames, np.ones((10, 10), bool))
    assert spotting.flow_magnitudes(frames, spotting.ellipse_mask((64, 64)))[0] == 0.0


def test_liteflownet2_upcorr_shifts_the_sparse_volume_by_half_a_pixel():
    """As documented in flownet.models.liteflownet2._bilinear_upconv: entry i of the sparse volume (position 2i)
    is up-sampled as if at 2i + 0.5; on s[i] = 2i the interior output is x - 0.5, the border columns 0.75 x the
    one tap they get."""
    from flownet.models.liteflownet2 import PyramidLevel
    level = PyramidLevel(3, 64, 6, 2)                      # LiteFlowNet2's level 3: radius 6, stride 2, 49 channels
    n = 8
    sparse = (2.0 * torch.arange(n)).expand(1, 49, n, n).contiguous()   # value = its position along x
    with torch.no_grad():
        out = level.upcorr(sparse)
    assert out.shape == (1, 49, 2 * n, 2 * n)
    rows = out[0, :, 1:-1]                                 # interior rows: both vertical taps present
    x = torch.arange(2 * n, dtype=torch.float32)
    assert torch.allclose(rows[..., 1:-1], (x[1:-1] - 0.5).expand_as(rows[..., 1:-1]))
    assert torch.allclose(rows[..., ::2][..., 1:], (x[::2][1:] - 0.5).expand_as(rows[..., ::2][..., 1:]))
    assert torch.allclose(rows[..., 0], torch.zeros(()))                                     # 0.75 * s[0]
    assert torch.allclose(rows[..., -1], torch.full((), 0.75 * 2 * (n - 1)))                 # 0.75 * s[n-1]
