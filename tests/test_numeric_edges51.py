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
