"""The built-in synthetic micro-expression dataset of the demo (icegan/data/synthetic_me.py)."""
import numpy as np
import pytest
import torch

from flownet.data.synthetic_face import backward_warp
from icegan.data.synthetic_me import make_synthetic_me


@pytest.fixture(scope="module")
def me():
    return make_synthetic_me(n_subjects=3, clips_per_class=2, size=64, seed=3)


def test_shapes_balance_and_subjects(me):
    n = 3 * 3 * 2
    assert me.onset.shape == me.apex.shape == (n, 64, 64) and me.onset.dtype == np.uint8
    assert me.flow.shape == (n, 2, 64, 64)
    m = me.manifest
    assert sorted(m["subject"].unique()) == ["synthetic/s01", "synthetic/s02", "synthetic/s03"]
    # classes balanced within every subject (so appearance alone cannot predict the class)
    assert (m.groupby(["subject", "label"]).size() == 2).all()
    assert m["clip"].is_unique


def test_peak_motion_equals_amplitude_in_range(me):
    peak = np.linalg.norm(me.flow, axis=1).reshape(len(me.flow), -1).max(1)
    np.testing.assert_allclose(peak, me.manifest["amplitude"].to_numpy(), atol=2e-3)
    # amplitudes are drawn in [0.5, 3] px at 128 px, i.e. [0.25, 1.5] at 64 px
    assert peak.min() >= 0.25 - 1e-3 and peak.max() <= 1.5 + 1e-3


def test_apex_is_onset_moved_by_the_flow(me):
    """Sampling the apex at x + flow(x) gives back the onset (flow convention of DESIGN.md)."""
    on = torch.from_numpy(me.onset).float()[:, None] / 255
    ap = torch.from_numpy(me.apex).float()[:, None] / 255
    flow = torch.from_numpy(me.flow)
    back = backward_warp(ap, flow)
    moving = flow.norm(dim=1, keepdim=True) > 0.5          # where the face moves by > 0.5 px
    err_flow = (back - on)[moving].abs().mean()
    err_none = (ap - on)[moving].abs().mean()
    assert err_flow < 0.6 * err_none   # the motion explains most of the onset→apex change
    assert err_flow < 0.03


def test_motion_is_class_specific(me):
    """Mean |flow| in the brow band vs the mouth band separates surprise from positive."""
    mag = np.linalg.norm(me.flow, axis=1)
    brow = mag[:, 14:24].mean((1, 2))
    mouth = mag[:, 44:56].mean((1, 2))
    lab = me.manifest["label"].to_numpy()
    assert (brow[lab == 2] > mouth[lab == 2]).all()   # surprise: brows and lids
    assert (mouth[lab == 1] > brow[lab == 1]).all()   # positive: lip corners and cheeks


def test_deterministic_and_validated():
    a = make_synthetic_me(2, 1, 32, seed=1)
    b = make_synthetic_me(2, 1, 32, seed=1)
    assert np.array_equal(a.apex, b.apex) and a.manifest.equals(b.manifest)
    with pytest.raises(ValueError, match="n_subjects"):
        make_synthetic_me(1, 1, 64)
    with pytest.raises(ValueError, match="amplitude"):
        make_synthetic_me(2, 1, 64, amplitude=(3.0, 1.0))


def test_each_class_moves_its_features_in_its_au_direction(me):
    """Image y points down: negative (AU4 + AU15) moves brows and lip corners down, surprise (AU1+2 + AU5)
    brows up, positive (AU12) lip corners up and outwards."""
    def at(i, points):
        xy = np.rint(me.landmarks[i, points]).astype(int)
        return me.flow[i][:, xy[:, 1], xy[:, 0]]          # (2, len(points))

    brows, corners = list(range(17, 27)), [48, 54]
    for i, label in enumerate(me.manifest["label"]):
        if label == 0:
            assert at(i, brows)[1].mean() > 0 and at(i, corners)[1].mean() > 0
        elif label == 1:
            (u_left, u_right), v = at(i, corners)[0], at(i, corners)[1]
            assert v.mean() < 0 and u_left < 0 < u_right
        else:
            assert at(i, brows)[1].mean() < 0


def test_clip_names_and_identities_follow_the_seed():
    """Clips are named sNN_<class>_KK; another seed draws other identities (other landmarks), one subject keeps
    its landmarks in every clip."""
    a = make_synthetic_me(2, 2, 32, seed=1)
    assert list(a.manifest["clip"][:3]) == ["s01_neg_00", "s01_neg_01", "s01_pos_00"]
    assert list(a.manifest["clip"][-1:]) == ["s02_sur_01"]
    assert np.array_equal(a.landmarks[0], a.landmarks[5]) and not np.array_equal(a.landmarks[0], a.landmarks[6])
    b = make_synthetic_me(2, 2, 32, seed=2)
    assert not np.allclose(a.landmarks[0], b.landmarks[0])


@pytest.mark.parametrize("kwargs, error", [
    (dict(clips_per_class=0), "clips_per_class"), (dict(size=31), "size"), (dict(size=32), None),
    (dict(amplitude=(0.0, 1.0)), "amplitude"), (dict(amplitude=(1.0, 10.0)), None),
    (dict(amplitude=(1.0, 10.5)), "amplitude")])
def test_size_bounds_are_inclusive_where_documented(kwargs, error):
    """clips_per_class >= 1, size >= 32 and 0 < min <= max <= 10 px."""
    args = dict(n_subjects=2, clips_per_class=1, size=32) | kwargs
    if error is None:
        assert len(make_synthetic_me(**args).manifest) == 2 * 3 * args["clips_per_class"]
    else:
        with pytest.raises(ValueError, match=error):
            make_synthetic_me(**args)
