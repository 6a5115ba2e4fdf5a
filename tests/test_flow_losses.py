"""flownet losses, regularizers and evaluation: known values from the SRFlow paper's equations
(../shared/papers/srflow_srflownet_facial_flow.txt, Eq. 9–19) and the loss's plumbing of gamma, weights,
image scale and mask mode."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flownet.losses import sequence_loss, srflownet_loss
from flownet.regularizers import (fdr, igvar, igvar_weights, image_gradient_magnitude, migar, migar_weights,
                                  regularizer_loss, sobel, stage_weights, total_mask)


def _step_u(h=8, w=10, k=5):
    f = torch.zeros(1, 2, h, w)
    f[:, 0, :, k:] = 1.0
    return f


def _ramp_image(h=16, w=16, s=0.05, channels=1):
    """I(y, x) = s * x: standard Sobel G = 8 s inside, 4 s on the first and last column (replicate padding)."""
    return (s * torch.arange(w, dtype=torch.float32)).expand(1, channels, h, w).clone()


# ------------------------------------------------------------------------------------------------ sequence loss

def test_sequence_loss_ignores_ground_truth_at_or_above_max_flow():
    """Pixels with |gt| >= max_flow are left out (sequence_loss docstring): a gt of magnitude exactly 5 (3, 4)
    counts for max_flow 5.01 but not for 5."""
    gt = torch.zeros(1, 2, 1, 2)
    gt[0, :, 0, 1] = torch.tensor([3.0, 4.0])
    pred = gt.clone()
    pred[0, 0, 0, 0] += 1.0          # L1 error 1 on the ordinary pixel
    pred[0, 0, 0, 1] += 7.0          # L1 error 7 on the |gt| = 5 pixel
    assert sequence_loss([pred], gt, max_flow=5.0).item() == pytest.approx(1.0)
    assert sequence_loss([pred], gt, max_flow=5.01).item() == pytest.approx((1.0 + 7.0) / 2)


def test_srflownet_loss_is_sequence_loss_plus_the_regularizer_with_its_gamma():
    """Two stages, gamma 0.5: sequence loss 0.5 * 2 + 1 (L1 errors 2 and 1 per pixel) plus TVR
    lambda_N (0.5 + 1) / W (Eq. 10 with R(u) = 1/W on a unit step); the dict reports each part."""
    h, w = 8, 10
    gt = _step_u(h, w)
    flows = [gt + 1.0, gt + 0.5]
    loss, parts = srflownet_loss(flows, gt, regularizer="tvr", gamma=0.5)
    reg = 0.05 * 1.5 / w
    assert parts["epe_loss"] == pytest.approx(2.0)
    assert parts["reg_loss"] == pytest.approx(reg)
    assert loss.item() == pytest.approx(2.0 + reg)
    loss, parts = srflownet_loss(flows, gt, regularizer="tvr", gamma=0.5, reg_weight=2.0)
    assert parts["reg_loss"] == pytest.approx(2.0 * 1.5 / w)


def test_srflownet_loss_passes_image_scale_and_mask_mode_to_the_regularizer():
    """IGVAR at image_scale 255 and the literal M_total (Eq. 16) give other values than the defaults, and the loss
    uses the ones it is given."""
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(1, 2, 16, 16, generator=g)
    img = torch.rand(1, 1, 16, 16, generator=g) * 0.05
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 2:14, 2:14] = 1.0
    flows = [gt * 0.5]
    for kw in ({"image_scale": 255.0}, {"mask_mode": "literal"}):
        _, parts = srflownet_loss(flows, gt, img1=img, mask=mask, regularizer="igvar", **kw)
        want = igvar(flows, img, mask, **kw).item()
        assert parts["reg_loss"] == pytest.approx(want, rel=1e-6)
        assert want != pytest.approx(igvar(flows, img, mask).item(), rel=1e-3), kw


# ------------------------------------------------------------------------------------------------ regularizers

def test_stage_weights_accept_gamma_one_and_refuse_outside_zero_one():
    assert stage_weights(3, 1.0) == [1.0, 1.0, 1.0]
    assert stage_weights(3, 0.5) == [0.25, 0.5, 1.0]
    for bad in (0.0, 1.01, -0.5):
        with pytest.raises(ValueError, match="gamma"):
            stage_weights(2, bad)


def test_sobel_y_is_positive_downwards():
    """Sy of an intensity that grows downwards is positive (slope 1 with the /8 kernels), as Sx of one growing
    to the right: the literal M_total (Eq. 16) depends on these signs."""
    ramp = torch.arange(6.0).view(1, 1, 6, 1).expand(1, 1, 6, 10)
    gx, gy = sobel(ramp, normalized=True)
    torch.testing.assert_close(gy[..., 1:-1, :], torch.ones_like(gy[..., 1:-1, :]))
    assert gx.abs().max() == 0


def test_literal_total_mask_keeps_only_the_top_left_corner_of_a_square():
    """Eq. 16 read literally (M_bg and grad_x M_bg > 0 and grad_y M_bg > 0): on a square face mask only its
    top-left pixel has both gradients positive (module docstring: an almost empty mask)."""
    m = torch.zeros(1, 1, 16, 16)
    m[..., 4:12, 4:12] = 1
    lit = total_mask(m, "literal")
    assert lit.sum() == 1 and lit[0, 0, 4, 4] == 1


def test_fdr_counts_vertical_differences():
    """FDR (Eq. 11–12): a unit step in v along y has |Dy v| = 1 on one of the H-1 difference rows."""
    h, w = 8, 10
    f = torch.zeros(1, 2, h, w)
    f[:, 1, 3:, :] = 1.0
    assert fdr([f], torch.ones(1, 1, h, w), lam=0.05).item() == pytest.approx(0.05 / (h - 1))


def test_migar_weights_known_values_on_a_ramp():
    """Eq. 13–15 on I = s x: G = 8 s inside and 4 s on the two border columns, mean G = 7.5 s, base = exp(mean G),
    w = base^-G; an RGB copy of the image has the same G (Eq. 13 averages the channels)."""
    s = 0.05
    img = _ramp_image(s=s)
    g = image_gradient_magnitude(img)
    torch.testing.assert_close(g[0, 0, :, 1:-1], torch.full((16, 14), 8 * s))
    torch.testing.assert_close(g[0, 0, :, 0], torch.full((16,), 4 * s))
    torch.testing.assert_close(image_gradient_magnitude(_ramp_image(s=s, channels=3)), g)
    w = migar_weights(img)
    base = math.exp(7.5 * s)
    assert w[0, 0, 5, 5].item() == pytest.approx(base ** (-8 * s), rel=1e-5)
    assert w[0, 0, 5, 0].item() == pytest.approx(base ** (-4 * s), rel=1e-5)


def test_igvar_base_is_the_variance_of_g_over_the_face_only():
    """Eq. 19 at 0–255 intensities: base = max(Var{G(x) : M_bg(x) = 1} / 100, e), the population variance over the
    mask pixels only; log w = -log(base) G (compared in logs: w itself underflows towards 0)."""
    img = (0.02 * torch.arange(16.0).clamp(max=8.0)).expand(1, 1, 16, 16).clone()   # G ~ 41 left, 0 right (at 255)
    g = image_gradient_magnitude(img, 255.0)[0, 0].double().numpy()
    for cols, expect_e in ((slice(0, 12), False), (slice(12, 16), True)):
        mask = torch.zeros(1, 1, 16, 16)
        mask[..., :, cols] = 1.0
        var = g[:, cols].var()                             # population variance over the mask
        base = max(var / 100.0, math.e)
        assert (base == math.e) == expect_e
        logw = torch.log(igvar_weights(img, mask, 255.0))[0, 0].double().numpy()
        np.testing.assert_allclose(logw, -math.log(base) * g, rtol=1e-4, atol=1e-3)
    # the whole image's variance is another base: the mask matters
    assert g.var() > g[:, :12].var() * 1.1 > 100 * math.e


def test_migar_regularizes_the_flow_times_the_interior_mask():
    """Eq. 17 regularizes c * M_total, not Sobel(c) * M_total: a constant u on a face square whose interior is 6 x 6
    has the standard-Sobel response of that 6 x 6 indicator, sum |Sx| = sum |Sy| = 4 * 24 (24 = 6 rows x kernel
    column sum 4), so R_wpp(u) = 192 / (16 * 16) with w = 1 on a flat image; R_wpp(v) = 0."""
    f = torch.zeros(1, 2, 16, 16)
    f[:, 0] = 1.0
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    assert migar([f], torch.zeros(1, 1, 16, 16), mask).item() == pytest.approx(192 / 256)


def test_regularizer_loss_default_weights_and_dispatch():
    """Defaults as printed: lambda_N = 0.05 for TVR (Eq. 10) and FDR (Eq. 12), 1 for MIGAR (Eq. 18) and IGVAR;
    'igvar' runs IGVAR (w = exp(-G) for [0, 1] images), not MIGAR (w = exp(-mean(G) G))."""
    h, w = 16, 16
    f = _step_u(h, w, k=8)
    flat, full = torch.zeros(1, 1, h, w), torch.ones(1, 1, h, w)
    assert regularizer_loss("tvr", [f]).item() == pytest.approx(0.05 / w)
    assert regularizer_loss("fdr", [f], mask=full).item() == pytest.approx(0.05 / (w - 1))
    assert regularizer_loss("migar", [f], img1=flat, mask=full).item() == pytest.approx(8.0 / w, rel=1e-5)
    tex = _ramp_image(h, w, s=0.3)                          # mean G = 2.25: the two weightings differ
    got_ig = regularizer_loss("igvar", [f], img1=tex, mask=full).item()
    assert got_ig == pytest.approx(igvar([f], tex, full).item())
    assert got_ig != pytest.approx(migar([f], tex, full).item(), rel=1e-2)
    assert regularizer_loss("none", [f]).item() == 0.0


# ------------------------------------------------------------------------------------------------ evaluation

class _Zero:
    """A zero-flow estimator that counts its calls."""

    def __init__(self):
        self.calls = 0

    def estimate(self, img1, img2):
        self.calls += 1
        return torch.zeros(img1.shape[0], 2, *img1.shape[-2:])


def _pair(name, h=4, w=6, u=1.0):
    img = torch.zeros(1, 1, h, w)
    gt = torch.zeros(1, 2, h, w)
    gt[:, 0] = u
    return {"name": name, "img1": img, "img2": img, "flow": gt, "valid": torch.ones(1, h, w, dtype=torch.bool)}


def test_evaluate_speed_warm_up_and_image_size(monkeypatch):
    """One warm-up estimate, then one timed estimate per pair: with a clock that advances 0.25 s per reading, 4 pairs
    take 1 s, so 4 pairs/s and 0.25 s/pair; image_size is [H, W]."""
    import flownet.evaluate as ev
    ticks = iter(np.arange(1000) * 0.25)
    monkeypatch.setattr(ev.time, "perf_counter", lambda: float(next(ticks)))
    est = _Zero()
    res = ev.evaluate("zero", pairs=[_pair(str(i)) for i in range(4)], estimator=est, progress=False)
    assert est.calls == 5
    assert res["pairs_per_s"] == pytest.approx(4.0) and res["seconds_per_pair"] == pytest.approx(0.25)
    assert res["image_size"] == [4, 6]


def test_evaluate_refuses_ground_truth_of_another_size_and_tta_with_a_given_estimator():
    from flownet.evaluate import evaluate
    bad = dict(_pair("mine"), flow=torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match=r"pair 'mine': the ground-truth flow is 5x4, but frame 1 is 6x4 pixels"):
        evaluate("zero", pairs=[bad], estimator=_Zero(), progress=False)
    with pytest.raises(ValueError, match="tta applies when evaluate"):
        evaluate("zero", pairs=[_pair("a")], estimator=_Zero(), tta="hflip", progress=False)


def test_evaluate_passes_iters_to_learned_models_only(monkeypatch):
    """iters reaches get_estimator for srflownet / RAFT; a classical method refuses it (evaluate's docstring; it was
    dropped without a word)."""
    import flownet
    from flownet.evaluate import evaluate
    seen = []

    def fake(model, **kw):
        seen.append((model, kw.get("iters")))
        return _Zero()
    monkeypatch.setattr(flownet, "get_estimator", fake)
    evaluate("srflownet", pairs=[_pair("a")], iters=3, progress=False)
    with pytest.raises(ValueError, match="'tvl1' makes no recurrent updates"):
        evaluate("tvl1", pairs=[_pair("a")], iters=3, progress=False)
    evaluate("tvl1", pairs=[_pair("a")], progress=False)
    assert seen == [("srflownet", 3), ("tvl1", None)]


def test_format_table_lists_up_to_twenty_pairs():
    from flownet.evaluate import format_table
    metrics = {"EPE": 1.0, "px1": 0.5, "px3": 0.9, "px5": 1.0, "Fl-all": 0.0, "WAUC": 50.0}
    for n, listed in ((20, True), (21, False)):
        res = {"model": "m", "data": "d", "n_pairs": n, "mean": metrics, "pairs_per_s": 1.0, "seconds_per_pair": 1.0,
               "image_size": [4, 4], "per_pair": [{"name": f"pair{i:02d}", **metrics, "n_valid": 16} for i in range(n)]}
        assert ("| pair19 |" in format_table(res)) == listed, n
