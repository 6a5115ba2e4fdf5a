"""Numeric edges of image/flow helpers: non-finite landmark centres, 1-px resizes, Farneback/TV-L1 on tiny
identical frames, and the skipped.csv round trip of control characters."""
import numpy as np
import pytest
import torch

from icegan.data.roi import roi_patches


def _ramp(n=1, c=2, h=28, w=28):
    return torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_roi_patches_refuse_non_finite_centres_and_name_them(bad):
    centers = np.full((2, 4, 2), 10.0)
    centers[1, 2, 1] = bad
    with pytest.raises(ValueError, match=r"not finite.*map 1 region 2"):
        roi_patches(_ramp(n=2), centers)


@pytest.mark.parametrize("far", [1e30, -1e30, 1e19, -1e19, 1e6, -1e6])
def test_roi_patches_clamp_far_outside_centres_to_the_nearest_border(far):
    x = _ramp()
    centers = np.full((1, 4, 2), 10.0)
    centers[0, 0, 0] = far            # x of region 0
    centers[0, 3, 1] = far            # y of region 3
    out = roi_patches(x, centers, patch=7)
    lo = 21 if far > 0 else 0
    torch.testing.assert_close(out[0, :, :7, :7], x[0, :, 7:14, lo:lo + 7], rtol=0, atol=0)
    torch.testing.assert_close(out[0, :, 7:, 7:], x[0, :, lo:lo + 7, 7:14], rtol=0, atol=0)


def _face_like(h, w, seed=0):
    """A smooth random grey frame (1, 1, h, w) in [0, 1]."""
    g = torch.from_numpy(np.random.default_rng(seed).random((1, 1, 32, 32), dtype=np.float32))
    g = torch.nn.functional.avg_pool2d(g, 5, 1, 2, count_include_pad=False)
    return torch.nn.functional.interpolate(g, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


@pytest.mark.parametrize("side", [10, 12, 16, 28, 64])
def test_farneback_on_identical_frames_of_ten_pixels_and_more_is_near_zero(side):
    """The size from which FarnebackEstimator's docstring says identical frames give ~0 flow (under 10 pixels a
    side they give pixels of it; not refused: icegan flow run accepts 8x8)."""
    from flownet.classical import FarnebackEstimator
    for seed in range(3):
        x = _face_like(side, side, seed)
        f = FarnebackEstimator().estimate(x, x)
        assert f.shape == (1, 2, side, side)
        assert f.abs().mean() < 0.15 and f.abs().max() < 1.0, (side, seed)


@pytest.mark.parametrize("side", [2, 3, 5, 8, 9, 16])
def test_tvl1_on_identical_tiny_frames_gives_zero_flow(side):
    """TV-L1 has no such border: identical frames give exactly zero flow down to 2x2, as its docstring says."""
    from flownet.classical import TVL1Estimator
    x = _face_like(side, side)
    assert torch.equal(TVL1Estimator().estimate(x, x), torch.zeros(1, 2, side, side))

