"""The estimator registry's shared inference path (eval mode, last refinement, float32 output), the OpenCV
baselines (direction, axes, documented Farneback parameters, grey quantisation) and flow_metrics on a single
(2, H, W) flow with its mask."""
import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flownet.classical import FarnebackEstimator, TVL1Estimator, to_gray_uint8
from flownet.metrics import flow_metrics
from flownet.registry import SRFlowNetEstimator, final_flow


def _texture(h, w, seed=0):
    """A smooth random texture (1, 1, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, h + 8, w + 8, generator=g)
    k = torch.exp(-torch.arange(-4, 5, dtype=torch.float32) ** 2 / 6)
    k = k[:, None] * k[None, :]
    x = F.conv2d(x, (k / k.sum())[None, None])
    return (x - x.min()) / (x.max() - x.min())


class _Refinements(torch.nn.Module):
    """Says flow 0 then flow 3 (a refinement list), recording its mode and the iters it was given."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 1)
        self.seen = []

    def forward(self, img1, img2, iters=None):
        self.seen.append((self.training, iters))
        flow = self.conv(torch.cat([img1, img2], 1))
        return [flow * 0, flow * 0 + 3]


def test_estimate_runs_in_eval_mode_takes_the_last_refinement_and_restores_the_mode():
    net = _Refinements().train()
    est = SRFlowNetEstimator(net, iters=5)
    out = est.estimate(torch.rand(2, 1, 6, 8), torch.rand(2, 1, 6, 8))
    torch.testing.assert_close(out, torch.full((2, 2, 6, 8), 3.0))
    assert net.seen == [(False, 5)] and net.training        # eval while estimating, training again after
    net.eval()
    est.estimate(torch.rand(1, 1, 6, 8), torch.rand(1, 1, 6, 8))
    assert not net.training


def test_final_flow_of_a_recurrent_backbone_is_its_last_refinement():
    net = _Refinements()
    out = final_flow(net, torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), iters=7)
    torch.testing.assert_close(out, torch.full((1, 2, 4, 4), 3.0))
    assert net.seen == [(True, 7)]


def test_bf16_estimate_returns_float32():
    """Under bf16 autocast the network's convolution gives bfloat16; estimate hands back float32."""
    class Conv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 2, 1)

        def forward(self, img1, img2, iters=None):
            return [self.conv(torch.cat([img1, img2], 1))]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)        # no native bf16 on this CPU: emulated, warned
        est = SRFlowNetEstimator(Conv(), precision="bf16")
    assert est.precision == "bf16"
    out = est.estimate(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    assert out.dtype == torch.float32


def test_tvl1_reports_a_downward_shift_as_positive_v_on_a_non_square_pair():
    """img2 = img1 moved 2 px down (content at y appears at y + 2): flow img1 → img2 is (u, v) = (0, +2), with
    H, W in their own places."""
    big = _texture(60, 72, seed=5)
    img1, img2 = big[..., 6:54, 4:68], big[..., 4:52, 4:68]      # (48, 64)
    f = TVL1Estimator().estimate(img1, img2)
    assert f.shape == (1, 2, 48, 64)
    inner = f[0, :, 10:-10, 10:-10]
    assert abs(float(inner[1].median()) - 2.0) < 0.2 and abs(float(inner[0].median())) < 0.2


def test_farneback_runs_with_the_documented_parameters():
    """pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2 (module docstring), on grey
    uint8 frames, img1 → img2; 128 px, so that all three levels are used (OpenCV stops at 32 px)."""
    big = _texture(136, 152, seed=2)
    img1, img2 = big[..., 4:132, 8:144], big[..., 4:132, 5:141]
    g1, g2 = to_gray_uint8(img1)[0], to_gray_uint8(img2)[0]
    ref = cv2.calcOpticalFlowFarneback(g1, g2, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    got = FarnebackEstimator().estimate(img1, img2)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, ref)


def test_grey_quantisation_clamps_before_rounding_and_pairs_must_match():
    img = torch.tensor([-0.2, 0.0, 0.5, 1.0, 1.005]).view(1, 1, 1, 5)
    assert to_gray_uint8(img).tolist() == [[[0, 0, 128, 255, 255]]]
    with pytest.raises(ValueError, match="shapes differ"):
        TVL1Estimator().estimate(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 20))


def test_metrics_of_a_single_flow_with_its_mask():
    """A (2, H, W) flow takes an (H, W) mask: errors 0, 4 (masked out) and 2 px give EPE 1 over the two valid."""
    gt = torch.zeros(2, 1, 3)
    pred = torch.zeros(2, 1, 3)
    pred[0, 0, 1] = 4.0
    pred[1, 0, 2] = 2.0
    valid = torch.tensor([[True, False, True]])
    m = flow_metrics(pred, gt, valid)
    assert m["EPE"] == pytest.approx(1.0) and m["px1"] == 0.5 and m["Fl-all"] == 0.0
    assert m == flow_metrics(pred[None], gt[None], valid[None])
