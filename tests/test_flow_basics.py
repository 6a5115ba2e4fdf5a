"""flownet: .flo / KITTI I/O, metrics, optical strain, regularizers, warping, AU fields."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from flownet.io import read_flo, read_kitti_png, write_flo, write_kitti_png, flow_to_color
from flownet.metrics import flow_metrics
from flownet.regularizers import fdr, igvar, migar, regularizer_loss, sobel, total_mask, tvr
from flownet.strain import flow_features, optical_strain
from flownet.data.synthetic_face import (AU_NAMES, au_displacement, inverse_flow, similarity_flow,
                                         warp_forward)


# ------------------------------------------------------------------------------------------------ I/O

def test_flo_round_trip_with_unknown(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(7, 9, 2)).astype(np.float32)
    valid = np.ones((7, 9), bool)
    valid[2, 3] = False
    p = write_flo(tmp_path / "a.flo", flow, valid)
    raw = p.read_bytes()
    assert np.frombuffer(raw[:4], "<f4")[0] == np.float32(202021.25)
    assert tuple(np.frombuffer(raw[4:12], "<i4")) == (9, 7)
    back, v = read_flo(p)
    assert v.sum() == 62 and not v[2, 3]
    np.testing.assert_array_equal(back[valid], flow[valid])
    assert back[2, 3].tolist() == [0.0, 0.0]
    # (2, H, W) tensors are accepted too
    write_flo(tmp_path / "b.flo", torch.from_numpy(flow).permute(2, 0, 1))
    np.testing.assert_array_equal(read_flo(tmp_path / "b.flo")[0], flow)
    # a (2, H, 2) tensor is two channels of width 2 (the torch layout), not an (H=2, W=H) field
    narrow = flow[:, :2]                                                         # (7, 2, 2)
    write_flo(tmp_path / "c.flo", torch.from_numpy(narrow).permute(2, 0, 1))    # (2, 7, 2)
    np.testing.assert_array_equal(read_flo(tmp_path / "c.flo")[0], narrow)
    # an (H, W, 2) array stays (H, W, 2), even with H = 2
    write_flo(tmp_path / "d.flo", flow[:2])
    np.testing.assert_array_equal(read_flo(tmp_path / "d.flo")[0], flow[:2])


def test_flo_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"^.flo file not found: {re.escape(str(tmp_path / 'missing.flo'))}$"):
        read_flo(tmp_path / "missing.flo")
    bad = tmp_path / "bad.flo"
    bad.write_bytes(np.array([1.0, 2.0, 3.0], "<f4").tobytes())
    with pytest.raises(ValueError, match="magic"):
        read_flo(bad)
    trunc = tmp_path / "trunc.flo"
    trunc.write_bytes(np.array([202021.25], "<f4").tobytes() + np.array([4, 4], "<i4").tobytes() + b"\0" * 8)
    with pytest.raises(ValueError, match="truncated"):
        read_flo(trunc)
    longer = write_flo(tmp_path / "longer.flo", np.zeros((4, 5, 2), np.float32))
    longer.write_bytes(longer.read_bytes() + b"\0" * 4000)      # junk appended: the header no longer describes it
    with pytest.raises(ValueError, match=r"longer.flo: 4172 bytes, but its header says 5x4, which takes 172 bytes "
                                         r"\(4000 extra\)"):
        read_flo(longer)


def test_kitti_png_round_trip(tmp_path):
    flow = np.zeros((5, 6, 2), np.float32)
    flow[..., 0] = 1.5
    flow[..., 1] = -2.25
    valid = np.ones((5, 6), bool)
    valid[0, 0] = False
    back, v = read_kitti_png(write_kitti_png(tmp_path / "k.png", flow, valid))
    assert not v[0, 0] and v.sum() == 29
    np.testing.assert_allclose(back[v], flow[v])


def test_flow_to_color_shape():
    img = flow_to_color(torch.randn(2, 2, 8, 10))
    assert img.shape == (2, 3, 8, 10) and img.dtype == torch.uint8


def test_flow_to_color_on_a_shared_scale(tmp_path):
    """With max_flow, a field half as strong as another is drawn paler (the same hue, less saturated) instead of
    saturating at its own maximum like the stronger one; without it both look alike."""
    strong = torch.zeros(2, 4, 4)
    strong[0] = 2.0                                      # 2 px to the right everywhere
    weak = strong / 2
    assert torch.equal(flow_to_color(weak), flow_to_color(strong))            # each at its own maximum
    a, b = flow_to_color(strong, max_flow=2.0), flow_to_color(weak, max_flow=2.0)
    assert a.shape == (3, 4, 4) and torch.equal(a, flow_to_color(strong))     # the stronger one saturates: unchanged
    white = torch.full((3,), 255, dtype=torch.uint8)
    dist = lambda img: (img[:, 0, 0].float() - white.float()).norm()         # distance from white (zero flow)
    assert dist(b) < dist(a) and dist(b) > 0
    assert torch.equal(flow_to_color(strong[None], max_flow=4.0)[0], b)      # 2 of 4 px = 1 of 2 px; batches too
    with pytest.raises(ValueError, match="positive number of pixels"):
        flow_to_color(strong, max_flow=0.0)
    from flownet.io import save_flow_key
    from PIL import Image
    with Image.open(save_flow_key(tmp_path / "k" / "key.png", 2.0)) as im:           # the colour key of such pictures
        rgb = np.asarray(im.convert("RGB"))
    assert im.format == "PNG" and (rgb.std(-1) > 40).mean() > 0.2                    # a coloured disc, not blank
    with pytest.raises(ValueError, match="positive number of pixels"):
        save_flow_key(tmp_path / "bad.png", float("nan"))
    # a batch is coloured image by image (torchvision scales a batch by its largest magnitude)
    batch = flow_to_color(torch.stack([weak, strong]))
    assert torch.equal(batch[0], flow_to_color(weak)) and torch.equal(batch[1], flow_to_color(strong))


# ------------------------------------------------------------------------------------------------ metrics

def test_metrics_hand_computed():
    gt = torch.zeros(1, 2, 1, 4)
    gt[0, 0] = torch.tensor([0.0, 0.0, 10.0, 100.0])
    pred = gt.clone()
    # errors: 0.5, 2, 4 (vs |gt| 10 → outlier), 4 (vs |gt| 100: 4 < 5 % of 100 → not an outlier)
    pred[0, 1] = torch.tensor([0.5, 2.0, 4.0, 4.0])
    m = flow_metrics(pred, gt)
    assert m["EPE"] == pytest.approx((0.5 + 2 + 4 + 4) / 4)
    assert m["px1"] == pytest.approx(0.25)
    assert m["px3"] == pytest.approx(0.5)
    assert m["px5"] == pytest.approx(1.0)
    assert m["Fl-all"] == pytest.approx(25.0)
    # WAUC: thresholds delta_i = i/20 px with weights w_i = 1 - (i-1)/100, i = 1..100 (sum of weights 50.5); the
    # share of errors within delta_i is 1/4 from i = 10, 2/4 from i = 40 and 1 from i = 80:
    # 100 * (0.25 * sum_{10..39} w + 0.5 * sum_{40..79} w + sum_{80..100} w) / 50.5 = 6539 / 202
    assert m["WAUC"] == pytest.approx(6539 / 202)


def test_metrics_match_their_definitions_on_random_flows():
    """flow_magnitude (hypot of u and v) equals the 2-norm over the channel; WAUC (sorted errors and searchsorted)
    equals its definition with one comparison per threshold, errors lying exactly on thresholds included."""
    from flownet.metrics import flow_magnitude
    g = torch.Generator().manual_seed(0)
    gt, pred = torch.randn(3, 2, 17, 13, generator=g) * 4, torch.randn(3, 2, 17, 13, generator=g) * 4
    pred[0, 0, :4, 0] = gt[0, 0, :4, 0] + torch.tensor([0.05, 1.0, 2.5, 5.0])    # errors on thresholds
    pred[0, 1, :4, 0] = gt[0, 1, :4, 0]
    torch.testing.assert_close(flow_magnitude(gt), gt.norm(dim=1))
    torch.testing.assert_close(flow_magnitude(gt[0]), gt[0].norm(dim=0))
    with pytest.raises(ValueError, match=r"flow must be \(\.\.\., 2, H, W\), got \(3, 3, 17, 13\)"):
        flow_magnitude(torch.zeros(3, 3, 17, 13))
    valid = torch.rand(3, 17, 13, generator=g) > 0.3
    m = flow_metrics(pred, gt, valid)
    e = (pred - gt).double().pow(2).sum(1).sqrt()[valid]
    w = [1 - (i - 1) / 100 for i in range(1, 101)]
    wauc = 100 * sum(wi * float((e <= i / 20).double().mean()) for i, wi in zip(range(1, 101), w)) / sum(w)
    assert m["WAUC"] == pytest.approx(wauc, abs=1e-9) and m["EPE"] == pytest.approx(float(e.mean()), abs=1e-5)
    # a NaN prediction is within no threshold: 400 of 1000 NaN errors, the others 0, leave WAUC at 60
    gt = torch.zeros(2, 1, 1000)
    pred = gt.clone()
    pred[:, :, :400] = float("nan")
    m = flow_metrics(pred, gt)
    assert m["WAUC"] == pytest.approx(60.0) and m["px1"] == pytest.approx(0.6) and math.isnan(m["EPE"])
    assert m["Fl-all"] == pytest.approx(40.0)          # ... and is an outlier


def test_metrics_valid_mask_and_perfect():
    gt = torch.randn(2, 2, 5, 5)
    pred = gt.clone()
    pred[0, :, 0, 0] += 100.0
    valid = torch.ones(2, 5, 5, dtype=torch.bool)
    valid[0, 0, 0] = False
    m = flow_metrics(pred, gt, valid)
    assert m["EPE"] == pytest.approx(0.0, abs=1e-6) and m["WAUC"] == pytest.approx(100.0)
    assert m["Fl-all"] == 0.0
    with pytest.raises(ValueError, match=r"predicted flow \(2, 2, 5, 5\) and ground truth \(1, 2, 5, 5\) differ in "
                                         r"shape"):
        flow_metrics(pred, gt[:1])
    with pytest.raises(ValueError, match="no valid"):
        flow_metrics(pred, gt, torch.zeros_like(valid))


# ------------------------------------------------------------------------------------------------ strain

def test_strain_translation_is_zero():
    f = torch.zeros(1, 2, 12, 14)
    f[:, 0], f[:, 1] = 1.7, -0.4
    assert optical_strain(f).max().item() < 1e-5


@pytest.mark.parametrize("a", [0.3, -0.25])
def test_strain_linear_stretch_equals_abs_a(a):
    xs = torch.arange(16.0).view(1, 16).expand(10, 16)
    f = torch.stack([a * xs, torch.zeros_like(xs)])[None]
    s = optical_strain(f)
    torch.testing.assert_close(s, torch.full_like(s, abs(a)), atol=1e-5, rtol=0)


def test_strain_shear_uses_dv_dy_not_du_dy():
    # u = b*y (pure shear): eps_xy = b/2 → eps = sqrt(2 * (b/2)^2) = |b|/sqrt(2); a bug squaring du/dy
    # in place of dv/dy would give sqrt(b^2 + b^2/2)
    b = 0.4
    ys = torch.arange(12.0).view(12, 1).expand(12, 12)
    f = torch.stack([b * ys, torch.zeros_like(ys)])[None]
    torch.testing.assert_close(optical_strain(f), torch.full((1, 1, 12, 12), b / math.sqrt(2)), atol=1e-5, rtol=0)
    # v = c*y: eps_yy = c
    g = torch.stack([torch.zeros_like(ys), 0.2 * ys])[None]
    torch.testing.assert_close(optical_strain(g), torch.full((1, 1, 12, 12), 0.2), atol=1e-5, rtol=0)


def test_flow_features_shape_range_and_gradient():
    f = torch.randn(2, 2, 64, 64, requires_grad=True)
    for size in (28, 112):
        x = flow_features(f, size)
        assert x.shape == (2, 3, size, size)
        assert x.min() >= 0 and x.max() <= 1
    x = flow_features(f, 28, normalize="maxabs")
    assert x[:, :2].abs().max() <= 1 + 1e-6
    x.sum().backward()
    assert torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"flow must be a \(B, 2, H, W\) tensor in pixels, got \(1, 3, 8, 8\)"):
        flow_features(torch.zeros(1, 3, 8, 8), 28)


# ------------------------------------------------------------------------------------------------ regularizers

def _step_u(h=8, w=10, k=5):
    f = torch.zeros(1, 2, h, w)
    f[:, 0, :, k:] = 1.0
    return f


def test_regularizers_zero_on_constant_flow():
    f = torch.zeros(2, 2, 9, 11)
    f[:, 0], f[:, 1] = 0.7, -1.3
    img = torch.rand(2, 1, 9, 11)
    mask = torch.ones(2, 1, 9, 11)
    assert tvr([f, f]).item() == pytest.approx(0.0, abs=1e-7)
    assert fdr([f, f], mask).item() == pytest.approx(0.0, abs=1e-7)
    # MIGAR/IGVAR regularize c * M_total: with a full mask M_total = 1 and the flow is constant
    assert migar([f], img, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert igvar([f], img, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_tvr_step_edge_value():
    # Sobel/8 on a unit vertical step: 0.5 on the two columns beside the edge, 0 elsewhere
    # → R(u) = 2 * 0.5 * H / (H W) = 1 / W; R(v) = 0; L = lambda * (R(u) + R(v)) for one stage
    h, w = 8, 10
    assert tvr([_step_u(h, w)], lam=0.05).item() == pytest.approx(0.05 / w)
    # two stages, gamma 0.5: weights 0.5, 1
    assert tvr([_step_u(h, w), _step_u(h, w)], gamma=0.5, lam=0.05).item() == pytest.approx(1.5 * 0.05 / w)


def test_fdr_step_edge_value_and_mask():
    h, w = 8, 10
    f = _step_u(h, w, k=5)
    ones = torch.ones(1, 1, h, w)
    # |Dx u| = 1 on one of the W-1 difference columns → mean 1/(W-1)
    assert fdr([f], ones, lam=0.05).item() == pytest.approx(0.05 / (w - 1))
    m = ones.clone()
    m[..., 4] = 0  # the difference column at x=4 uses M_bg^x[:, 4]
    assert fdr([f], m, lam=0.05).item() == pytest.approx(0.0, abs=1e-8)


def test_migar_igvar_respect_mask_and_weights():
    h, w = 16, 16
    f = _step_u(h, w, k=8)
    img = torch.zeros(1, 1, h, w)
    full = torch.ones(1, 1, h, w)
    empty = torch.zeros(1, 1, h, w)
    assert migar([f], img, empty).item() == 0.0
    # flat image: G = 0 → w = 1; standard Sobel on the unit step: 4 on two columns → (2*4*H)/(H W)
    # interior mask of a full mask is full
    assert migar([f], img, full).item() == pytest.approx(8.0 / w, rel=1e-5)
    assert igvar([f], img, full).item() == pytest.approx(8.0 / w, rel=1e-5)
    # a textured first frame lowers the weights (w = base^-G < 1)
    tex = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(0))
    assert migar([f], tex, full).item() < 8.0 / w
    # M_total interior drops the mask boundary band
    m = torch.zeros(1, 1, h, w)
    m[..., 4:12, 4:12] = 1
    mt = total_mask(m)
    assert mt.sum() == 36 and mt[..., 5:11, 5:11].min() == 1


def test_igvar_base_is_e_for_unit_images_and_grows_at_255():
    """IGVAR's base max(Var(G) / 100, e): for images in [0, 1] even a 0/1 checkerboard (the largest gradients) keeps
    it at e, so w = exp(-G); at 0-255 intensities the variance takes over (w = base^-G with base > e)."""
    from flownet.regularizers import igvar_is_variance_free, igvar_weights, image_gradient_magnitude
    board = ((torch.arange(16)[:, None] + torch.arange(16)[None]) % 2).float()[None, None]
    board[..., :8, :] = 0.0                               # half flat: a large variance of G
    full = torch.ones(1, 1, 16, 16)
    g = image_gradient_magnitude(board)
    assert float(g.max()) <= 4 * 2 ** 0.5 and float(g.var(unbiased=False)) < 100 * math.e
    torch.testing.assert_close(igvar_weights(board, full), torch.exp(-g))
    g255 = image_gradient_magnitude(board, 255.0)
    base = g255.var(unbiased=False) / 100
    assert float(base) > math.e
    torch.testing.assert_close(igvar_weights(board, full, 255.0), torch.exp(-torch.log(base) * g255))
    assert igvar_is_variance_free(1.0) and igvar_is_variance_free(5.8)
    assert not igvar_is_variance_free(5.9) and not igvar_is_variance_free(255)


def test_flow_train_warns_when_igvar_cannot_use_its_variance(caplog):
    """configs/flow_srflownet_igvar.yaml at its image_scale 1 trains IGVAR without its variance term: a warning says
    so and names the fix; image_scale=255, or another regularizer, gives none."""
    from flownet.train import FlowTrainConfig, warn_igvar_scale
    from icegan.config import load_config
    igvar_cfg = load_config(FlowTrainConfig, "configs/flow_srflownet_igvar.yaml")
    with caplog.at_level("WARNING", logger="flownet.train"):
        assert warn_igvar_scale(igvar_cfg.train)
    assert "IGVAR's base is always e" in caplog.text and "train.image_scale=255" in caplog.text
    assert not warn_igvar_scale(load_config(FlowTrainConfig, "configs/flow_srflownet_igvar.yaml",
                                            ["train.image_scale=255"]).train)
    assert not warn_igvar_scale(load_config(FlowTrainConfig, "configs/flow_srflownet_migar.yaml").train)


@pytest.mark.parametrize("name", ["tvr", "fdr", "migar", "igvar"])
def test_regularizer_gradients_finite(name):
    f = torch.randn(2, 2, 12, 12, requires_grad=True)
    g = torch.randn(2, 2, 12, 12, requires_grad=True)
    mask = torch.zeros(2, 1, 12, 12)
    mask[..., 2:10, 2:10] = 1
    loss = regularizer_loss(name, [f, g], img1=torch.rand(2, 3, 12, 12), mask=mask)
    loss.backward()
    for t in (f, g):
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"unknown regularizer 'nope'; choose one of \['none', 'tvr', 'fdr', 'migar', "
                                         r"'igvar'\]"):
        regularizer_loss("nope", [f])


def test_sobel_normalized_slope():
    ramp = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 1, 6, 10)
    gx, gy = sobel(ramp, normalized=True)
    torch.testing.assert_close(gx[..., 1:-1], torch.ones_like(gx[..., 1:-1]))
    assert gy.abs().max() == 0


# ------------------------------------------------------------------------------------------------ warping & AUs

def test_warp_forward_translation_is_exact():
    img = torch.rand(1, 1, 20, 24, generator=torch.Generator().manual_seed(1))
    flow = torch.zeros(1, 2, 20, 24)
    flow[:, 0], flow[:, 1] = 2.0, 1.0  # content moves right 2, down 1
    out, valid = warp_forward(img, flow, return_valid=True)
    torch.testing.assert_close(out[..., 1:, 2:], img[..., :-1, :-2], atol=1e-5, rtol=0)
    assert not valid[0, 0, 0] and valid[0, 5:, 5:].all()


def test_inverse_flow_fixed_point_and_round_trip():
    h, w = 48, 48
    lm = _template_landmarks(h, w)
    f = (au_displacement(lm, {"lip_corner_pull": 2.5, "brow_raise": 1.5}, h, w)
         + similarity_flow(h, w, 1.0, 1.01, 0.5, -0.3))[None]
    b = inverse_flow(f, 10)
    # b(y) = -f(y + b(y)) holds to high precision for these smooth fields
    from flownet.data.synthetic_face import backward_warp
    resid = b + backward_warp(f, b)
    assert resid.abs().max() < 1e-3
    # warping forward then back with the forward flow recovers the image in the interior
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = (torch.sin(6 * xx) * torch.cos(5 * yy))[None, None]
    img2 = warp_forward(img, f)
    back = backward_warp(img2, f)  # image1(x) = image2(x + f(x))
    assert (back - img)[..., 6:-6, 6:-6].abs().max() < 0.02


def _template_landmarks(h, w):
    """A crude 68-point layout (only used to anchor AUs in tests)."""
    lm = np.zeros((68, 2))
    lm[0:17] = np.stack([np.linspace(0.1, 0.9, 17) * w, (0.5 + 0.4 * np.sin(np.linspace(0, np.pi, 17))) * h], 1)
    lm[17:22] = np.stack([np.linspace(0.2, 0.42, 5) * w, np.full(5, 0.3 * h)], 1)
    lm[22:27] = np.stack([np.linspace(0.58, 0.8, 5) * w, np.full(5, 0.3 * h)], 1)
    lm[27:36] = np.stack([np.full(9, 0.5 * w), np.linspace(0.4, 0.6, 9) * h], 1)
    lm[36:42] = np.stack([np.linspace(0.25, 0.4, 6) * w, np.full(6, 0.4 * h)], 1)
    lm[42:48] = np.stack([np.linspace(0.6, 0.75, 6) * w, np.full(6, 0.4 * h)], 1)
    lm[48:68] = np.stack([np.linspace(0.35, 0.65, 20) * w, np.full(20, 0.75 * h)], 1)
    lm[48], lm[54] = [0.35 * w, 0.75 * h], [0.65 * w, 0.75 * h]
    return lm


def test_au_displacement_amplitude_direction_and_errors():
    h, w = 64, 64
    lm = _template_landmarks(h, w)
    for au in AU_NAMES:
        f = au_displacement(lm, {au: 2.0}, h, w)
        mag = f.norm(dim=0)
        assert f.shape == (2, h, w) and mag.max() <= 2.0 + 1e-5 and mag.max() > 1.0, au
    f = au_displacement(lm, {"lip_corner_pull": 2.0}, h, w)
    r = np.round(lm[54]).astype(int)  # image-right mouth corner moves right and up
    assert f[0, r[1], r[0]] > 0 and f[1, r[1], r[0]] < 0
    f = au_displacement(lm, {"brow_raise": 1.0}, h, w)
    b = np.round(lm[19]).astype(int)
    assert f[1, b[1], b[0]] < -0.5
    assert au_displacement(lm, {}, h, w).abs().max() == 0
    with pytest.raises(ValueError, match="unknown action unit"):
        au_displacement(lm, {"smile": 1.0}, h, w)
    with pytest.raises(ValueError, match=r"landmarks must be a finite \(68, 2\) array of \(x, y\) pixels, got shape "
                                         r"\(5, 2\)"):
        au_displacement(np.zeros((5, 2)), {"jaw_drop": 1.0}, h, w)


def test_au_displacement_equals_the_direct_formula():
    """The separable computation equals F_au(x) = a * sum_k w_k(x) d_k / max(1, sum_k w_k(x)) evaluated
    directly with an (H*W, K) table of Gaussian weights, for every AU, a non-square grid and two AUs summed."""
    from flownet.data.synthetic_face import _au_anchors
    h, w = 48, 72
    lm = _template_landmarks(h, w)
    ys, xs = np.mgrid[0:h, 0:w]
    grid = np.stack([xs, ys], -1).reshape(-1, 1, 2).astype(np.float64)
    for amps in [{au: 1.7} for au in AU_NAMES] + [{"jaw_drop": -2.0, "brow_lower": 0.6}]:
        want = np.zeros((h * w, 2))
        for au, a in amps.items():
            pts, dirs, sigma = _au_anchors(lm, au)
            wk = np.exp(-((grid - pts[None]) ** 2).sum(-1) / (2 * sigma ** 2))
            want += a * (wk @ dirs) / np.maximum(wk.sum(1, keepdims=True), 1.0)
        got = au_displacement(lm, amps, h, w).numpy()
        np.testing.assert_allclose(got, want.T.reshape(2, h, w), atol=1e-5, err_msg=str(amps))


def test_load_state_dict_strict_names_every_kind_of_mismatch():
    import torch.nn as nn

    from flownet.models.state_dict import load_state_dict_strict
    src, dst = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Conv2d(3, 4, 1)), nn.Sequential(nn.Conv2d(2, 3, 3), nn.Conv2d(3, 4, 1))
    load_state_dict_strict(dst, {k: v.half() for k, v in src.state_dict().items()}, "w.pt")
    for k, v in src.state_dict().items():   # half precision round trip of the converted copy
        torch.testing.assert_close(dst.state_dict()[k], v.half().float())
    sd = dict(src.state_dict())
    sd["0.weight"] = torch.zeros(3, 2, 5, 5)
    sd["extra.bias"] = torch.zeros(1)
    del sd["1.bias"]
    with pytest.raises(ValueError, match=r"w\.pt: weights do not match Net: missing \['1\.bias'\] \(1\), "
                                         r"unexpected \['extra\.bias'\] \(1\), wrong shape \['0\.weight'\] \(1\)"):
        load_state_dict_strict(dst, sd, "w.pt", "Net")
    with pytest.raises(ValueError, match="w.pt: not a state dict of tensors"):
        load_state_dict_strict(dst, {"0.weight": [1, 2]}, "w.pt")


@pytest.mark.parametrize("net", ["srflownet", "liteflownet2"])
def test_network_inputs_repeat_grey_and_map_the_range(net):
    """Every network takes (B, 1|3, H, W) in [0, 1]: grey equals the same image repeated to RGB, SRFlowNet maps
    [0, 1] to [-1, 1], LiteFlowNet2 to [-0.5, 0.5]; another layout is a ValueError naming the shape."""
    from flownet.models.inputs import rgb01_batch
    from flownet.models.liteflownet2 import LiteFlowNet2
    from flownet.models.srflownet import SRFlowNet
    prepare = {"srflownet": SRFlowNet.prepare, "liteflownet2": LiteFlowNet2.prepare}[net]
    lo, hi = {"srflownet": (-1.0, 1.0), "liteflownet2": (-0.5, 0.5)}[net]
    grey = torch.tensor([0.0, 0.5, 1.0]).reshape(1, 1, 1, 3).double()
    out = prepare(grey)
    assert out.shape == (1, 3, 1, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, prepare(grey.expand(-1, 3, -1, -1)))
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([lo, (lo + hi) / 2, hi]))
    for bad in (torch.zeros(3, 8, 8), torch.zeros(1, 2, 8, 8)):
        with pytest.raises(ValueError, match=r"\(B, 1 or 3, H, W\).*" + re.escape(str(tuple(bad.shape)))):
            rgb01_batch(bad)
        with pytest.raises(ValueError, match="B, 1 or 3"):
            prepare(bad)


def test_flow_eval_table_states_each_metric_unit():
    """The `icegan flow eval` table says what each column counts: EPE in pixels, px1/3/5 as shares in [0, 1],
    Fl-all and WAUC in percent (values as flow_metrics returns them)."""
    from flownet.evaluate import format_table
    gt = torch.zeros(1, 2, 8, 8)
    m = flow_metrics(gt + 0.5, gt)
    res = {"per_pair": [{"name": "a", **m}], "mean": m, "n_pairs": 1, "model": "x", "data": "y",
           "pairs_per_s": 2.0, "seconds_per_pair": 0.5, "image_size": [8, 8]}
    head, _, row, mean = format_table(res).splitlines()[:4]
    assert head == ("| pair | EPE (px) | px1 (share < 1 px) | px3 (share < 3 px) | px5 (share < 5 px) | Fl-all (%) "
                    "| WAUC (%) |")
    assert row.startswith(f"| a | {m['EPE']:.3f} | 1.0000 |") and "**mean (1 pairs)**" in mean


@pytest.mark.parametrize("data", ["synthetic-face", "synthetic-generic"])
def test_evaluation_pairs_are_a_prefix_of_one_sequence(data):
    """`icegan flow eval --n-pairs n` scores the first n pairs of one fixed sequence (as its help says): the EPEs
    recorded with 100 pairs are the first half of the default 200, and 2 pairs are the first two of 4."""
    from flownet.evaluate import load_pairs
    few, more = load_pairs(data, None, 32, 2), load_pairs(data, None, 32, 4)
    assert len(few) == 2 and len(more) == 4
    for a, b in zip(few, more):
        for key in ("img1", "img2", "flow"):
            np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
    assert not np.array_equal(np.asarray(more[0]["flow"]), np.asarray(more[1]["flow"]))


def test_evaluate_pools_pairs_with_unequal_valid_masks_by_pixel():
    """Pairs with unequal valid masks (KITTI): ``mean`` weighs every pair the same, ``pooled`` every valid pixel, as
    the KITTI benchmark's Fl-all does, and equals the metrics of both pairs scored as one batch. A zero-flow
    estimator on u = 2 px (16 valid pixels) and u = 4 px (4 valid): EPE mean 3, pooled (2·16 + 4·4) / 20 = 2.4;
    Fl-all mean 50 %, pooled 4 / 20 = 20 %."""
    from flownet.evaluate import evaluate, format_table

    class Zero:
        def estimate(self, img1, img2):
            return torch.zeros(img1.shape[0], 2, *img1.shape[-2:])
    img = torch.zeros(1, 1, 4, 4)
    gt_a, gt_b = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    gt_a[:, 0], gt_b[:, 0] = 2.0, 4.0
    valid_b = torch.zeros(1, 4, 4, dtype=torch.bool)
    valid_b[0, :2, :2] = True
    pairs = [{"name": "a", "img1": img, "img2": img, "flow": gt_a, "valid": torch.ones(1, 4, 4, dtype=torch.bool)},
             {"name": "b", "img1": img, "img2": img, "flow": gt_b, "valid": valid_b}]
    res = evaluate("zero", pairs=pairs, estimator=Zero(), progress=False)
    assert [r["n_valid"] for r in res["per_pair"]] == [16, 4] and res["n_valid_pixels"] == 20
    assert res["mean"]["EPE"] == pytest.approx(3.0) and res["pooled"]["EPE"] == pytest.approx(2.4)
    assert res["mean"]["Fl-all"] == pytest.approx(50.0) and res["pooled"]["Fl-all"] == pytest.approx(20.0)
    both = flow_metrics(torch.zeros(2, 2, 4, 4), torch.cat([gt_a, gt_b]),
                        torch.cat([torch.ones(1, 4, 4, dtype=torch.bool), valid_b]))
    assert res["pooled"] == pytest.approx(both)
    assert "| pooled (20 valid pixels) | 2.400 |" in format_table(res)
    same = evaluate("zero", pairs=pairs[:1] * 2, estimator=Zero(), progress=False)
    assert same["pooled"] == pytest.approx(same["mean"]) and "pooled" not in format_table(same)
    # a pair whose ground truth is all unknown (a broken .flo) is named before any estimate
    unknown = dict(pairs[1], name="Broken", valid=torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"1 pair\(s\) have no valid ground-truth pixel .*e.g. Broken: check their "
                                         r"\.flo files"):
        evaluate("zero", pairs=[pairs[0], unknown], estimator=Zero(), progress=False)


# ------------------------------------------------------------------ known values that pin single lines (mutation audit)

def test_flow_features_rescale_u_by_width_and_v_by_height():
    """Resizing a (8, 16) flow to 8×8 halves the horizontal component (16 → 8 columns) and keeps the vertical one."""
    f = torch.zeros(1, 2, 8, 16)
    f[:, 0] = 1.0
    out = flow_features(f, 8, normalize="none")
    torch.testing.assert_close(out[:, 0], torch.full((1, 8, 8), 0.5))
    g = torch.zeros(1, 2, 16, 8)
    g[:, 1] = 1.0
    torch.testing.assert_close(flow_features(g, 8, normalize="none")[:, 1], torch.full((1, 8, 8), 0.5))


def test_maxabs_divides_u_and_v_by_one_shared_maximum():
    """u ≡ 2, v ≡ 1: maxabs keeps their ratio (u 1, v 0.5), as a flow direction must survive the normalisation."""
    f = torch.zeros(1, 2, 16, 16)
    f[:, 0], f[:, 1] = 2.0, 1.0
    out = flow_features(f, 16, normalize="maxabs")
    torch.testing.assert_close(out[:, 0], torch.ones(1, 16, 16), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 1], torch.full((1, 16, 16), 0.5), atol=1e-5, rtol=0)


def test_a_small_rotation_has_no_strain():
    """u = −0.1·y, v = 0.1·x is a rigid rotation: du/dy = −0.1 and dv/dx = 0.1 cancel in the shear
    ε_xy = ½(du/dy + dv/dx), so the strain magnitude is 0 (a wrong sign would give 0.1·√2)."""
    y, x = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    f = torch.stack([-0.1 * y, 0.1 * x])[None]
    assert float(optical_strain(f).abs().max()) < 1e-5


def test_px_thresholds_are_strict_and_fl_all_uses_the_true_magnitude():
    """An error of exactly 1, 3 or 5 px is not within px1, px3, px5 (e < t); Fl-all's 5 % is of the ground truth:
    gt u = 78, prediction 82 (error 4 > 3 and > 3.9) is an outlier, though 4 < 5 % of the prediction's 82."""
    gt = torch.zeros(1, 2, 1, 3)
    pred = gt.clone()
    pred[0, 0] = torch.tensor([1.0, 3.0, 5.0])
    m = flow_metrics(pred, gt)
    assert (m["px1"], m["px3"], m["px5"]) == pytest.approx((0.0, 1 / 3, 2 / 3))
    assert m["Fl-all"] == pytest.approx(100 / 3)          # an error of exactly 3 px is no outlier (e > 3), 5 px is
    gt = torch.zeros(1, 2, 1, 1)
    gt[0, 0] = 78.0
    pred = gt.clone()
    pred[0, 0] = 82.0
    assert flow_metrics(pred, gt)["Fl-all"] == pytest.approx(100.0)
    gt[0, 0], pred[0, 0] = 80.0, 84.0                      # error 4 > 3 px but exactly 5 % of |gt| = 80: no outlier
    assert flow_metrics(pred, gt)["Fl-all"] == 0.0


def test_flow_metrics_of_one_pair_take_its_hw_mask_and_refuse_bad_shapes():
    """A (2, H, W) pair with an (H, W) mask scores as the (1, 2, H, W) batch with a (1, H, W) mask; a mask or a flow
    of the wrong shape is refused naming both shapes."""
    gt = torch.zeros(2, 3, 4)
    pred = gt.clone()
    pred[0, 0, 0] = 10.0                                   # one bad pixel, masked out
    valid = torch.ones(3, 4, dtype=torch.bool)
    valid[0, 0] = False
    m = flow_metrics(pred, gt, valid)
    assert m == flow_metrics(pred[None], gt[None], valid[None]) and m["EPE"] == 0.0
    with pytest.raises(ValueError, match=r"^valid mask \(1, 4, 3\) does not match flow \(1, 2, 3, 4\)$"):
        flow_metrics(pred[None], gt[None], torch.ones(1, 4, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"^flow must be \(B, 2, H, W\) or \(2, H, W\), got \(1, 3, 3, 4\)$"):
        flow_metrics(torch.zeros(1, 3, 3, 4), torch.zeros(1, 3, 3, 4))


def test_flo_pixel_with_one_unknown_component_is_invalid(tmp_path):
    """Middlebury: a component above 1e9 marks the pixel unknown, even when the other is a real value."""
    flow = np.zeros((2, 3, 2), dtype=np.float32)
    flow[0, 1] = [1e10, 0.5]
    flow[1, 2] = [0.25, 2e9]
    read, valid = read_flo(write_flo(tmp_path / "u.flo", flow))
    assert valid.tolist() == [[True, False, True], [True, True, False]]
    assert read[0, 1].tolist() == [0.0, 0.0] and read[1, 2].tolist() == [0.0, 0.0]


def test_grey_conversion_uses_the_bt601_weights():
    """Classical flow sees grey levels 0.299 R + 0.587 G + 0.114 B: pure red 76, green 150, blue 29."""
    from flownet.classical import to_gray_uint8
    rgb = torch.eye(3).reshape(3, 3, 1, 1)                # three 1×1 images: red, green, blue
    assert to_gray_uint8(rgb).reshape(-1).tolist() == [76, 150, 29]


def test_minmax_normalises_each_map_on_its_own():
    """minmax maps u, v and strain each to [0, 1] by its own range and minimum: u from 3 to 5 and v from 0 to 1 (a
    ramp in x) both become the same 0..1 ramp."""
    x = torch.arange(16.0).expand(16, 16) / 15
    f = torch.stack([3 + 2 * x, x])[None]
    out = flow_features(f, 16, normalize="minmax")
    for c in (0, 1):
        assert float(out[0, c].min()) == pytest.approx(0.0, abs=1e-6)
        assert float(out[0, c].max()) == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(out[0, 0], out[0, 1], atol=1e-5, rtol=0)


def test_flow_features_resize_on_pixel_centres():
    """u = x on 4 columns resized to 8 (bilinear, align_corners=False): output column j samples x = j/2 - 1/4, clamped
    to [0, 3], and is rescaled by 8/4: 0, 0.5, 1.5, ..., 5.5, 6 (corner-aligned sampling would give 6j/7)."""
    f = torch.zeros(1, 2, 4, 4)
    f[:, 0] = torch.arange(4.0)
    out = flow_features(f, 8, normalize="none")
    torch.testing.assert_close(out[0, 0, 3], torch.tensor([0, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.0]), atol=1e-5, rtol=0)


def test_strain_and_features_refuse_what_they_cannot_compute():
    with pytest.raises(ValueError, match=r"^flow must be at least 2x2 to take derivatives, got \(1, 2, 1, 5\)$"):
        optical_strain(torch.zeros(1, 2, 1, 5))
    with pytest.raises(ValueError, match="^flow_features: size must be one whole number >= 1, got 0$"):
        flow_features(torch.zeros(1, 2, 8, 8), 0)
    with pytest.raises(ValueError, match="^normalize must be 'minmax', 'maxabs' or 'none', got 'zscore'$"):
        flow_features(torch.zeros(1, 2, 8, 8), 8, normalize="zscore")


def test_similarity_flow_rotates_counterclockwise_in_image_axes():
    """A 90° similarity flow moves the pixel one right of the centre to one below it: flow (−1, +1)."""
    from flownet.data.synthetic_face import similarity_flow
    f = similarity_flow(65, 65, angle_deg=90.0)
    torch.testing.assert_close(f[:, 32, 33], torch.tensor([-1.0, 1.0]), atol=1e-5, rtol=0)   # (1, 0) -> (0, 1)


def test_landmarks_scale_per_axis_on_a_non_square_crop(shared_data):
    """Cached landmarks of a non-square crop scale by width and height separately to the square size."""
    import cv2
    from flownet.data.synthetic_face import SyntheticFaceFlow
    ds = SyntheticFaceFlow(root=shared_data, split="test", size=64, n_pairs=1)
    p = ds.frames[0]
    h, w = cv2.imread(str(p)).shape[:2]
    assert h != w
    ds._lm_cache[p] = np.tile(np.array([[w, h / 2]], np.float32), (68, 1))
    _, lm = ds.load_frame(p)
    np.testing.assert_allclose(lm, np.tile([[64.0, 32.0]], (68, 1)), rtol=1e-5)


def test_flow_run_checks_its_output_paths_before_computing(tmp_path, monkeypatch, capsys):
    """`icegan flow run`: an --out without an image extension, a --flo that is a folder or a file where a folder
    should be are refused in one line naming the option and path, before any flow is computed (they failed after it:
    cv2.error 'could not find a writer', IsADirectoryError)."""
    import cv2

    import flownet
    from icegan.cli import main
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.random.default_rng(0).integers(0, 255, (32, 32), np.uint8))
    (tmp_path / "folder").mkdir()
    (tmp_path / "plain").write_text("x")

    def no_work(*a, **k):
        raise AssertionError("the flow was computed before the output paths were checked")
    monkeypatch.setattr(flownet, "get_estimator", no_work)
    run = ["flow", "run", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--model", "farneback"]
    cases = [(["--out", str(tmp_path / "x" / "noext")], rf"--out \(the colour-coded flow picture\): "
                                                        rf"{tmp_path}/x/noext has no image extension OpenCV can write"),
             (["--out", str(tmp_path / "f.png"), "--flo", str(tmp_path / "folder")],
              rf"--flo \(the Middlebury .flo file\): {tmp_path}/folder is a folder"),
             (["--out", str(tmp_path / "folder")], rf"--out .*: {tmp_path}/folder is a folder"),
             (["--out", str(tmp_path / "plain" / "f.png")], rf"--out .*: {tmp_path}/plain/f.png cannot be written, "
                                                                   rf"{tmp_path}/plain is a file"),
             (["--out", str(tmp_path / "f.png"), "--flo", str(tmp_path / "x.flo"), "--decompose", "--key",
               "--model", "tvl1"], None)]
    for extra, message in cases[:-1]:
        assert main(run + extra) == 2
        err = capsys.readouterr().err
        assert re.search(r"^icegan flow run: error: " + message, err), err
        assert "Traceback" not in err
    (tmp_path / "x_head.flo").mkdir()       # a decomposed part's .flo is checked too
    assert main(run + cases[-1][0]) == 2
    assert re.search(rf"--flo .*: {tmp_path}/x_head.flo is a folder", capsys.readouterr().err)
    with pytest.raises(ValueError, match=r"flow picture: .*noext has no image extension"):
        from flownet.io import save_flow_image
        save_flow_image(tmp_path / "noext", torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"flow file: .*folder is a folder"):
        write_flo(tmp_path / "folder", np.zeros((4, 4, 2), np.float32))


def test_flow_eval_names_the_pair_whose_frames_differ_in_size(shared_data, tmp_path, capsys):
    """`icegan flow eval --data middlebury` with one frame resized: one line naming the sequence and both files
    (the estimator's 'image pair shapes differ: (1, 1, 388, 584) vs ...' named neither), before any flow is computed;
    a pair given to evaluate() directly is named too."""
    import shutil

    import cv2

    from flownet.evaluate import evaluate
    from icegan.cli import main
    seq = tmp_path / "mb" / "RubberWhale"
    shutil.copytree(shared_data / "middlebury" / "RubberWhale", seq)
    img = cv2.imread(str(seq / "frame11.png"), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(seq / "frame11.png"), cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2)))
    assert main(["flow", "eval", "--model", "farneback", "--data", "middlebury", "--root", str(tmp_path / "mb")]) == 2
    err = capsys.readouterr().err
    assert err == (f"icegan flow eval: error: pair 'RubberWhale': the frames differ in size: {seq / 'frame10.png'} is "
                   f"584x388 pixels, {seq / 'frame11.png'} 292x194; a flow pair needs two frames of one size\n")
    pair = {"name": "mine", "img1": torch.zeros(1, 1, 8, 8), "img2": torch.zeros(1, 1, 8, 6),
            "flow": torch.zeros(1, 2, 8, 8), "valid": torch.ones(1, 8, 8, dtype=torch.bool)}
    with pytest.raises(ValueError, match=r"pair 'mine': the frames differ in size: frame 1 is 8x8 pixels, frame 2 6x8"):
        evaluate("farneback", pairs=[pair], progress=False)


def test_flo_unknown_is_strictly_above_1e9(tmp_path):
    """Middlebury's rule is |value| > 1e9 for unknown: exactly ±1e9 (a float32 value) is still a known pixel."""
    flow = np.zeros((1, 2, 2), np.float32)
    flow[0, 0] = [1e9, -1e9]
    flow[0, 1] = [1.5e9, 0.0]
    read, valid = read_flo(write_flo(tmp_path / "edge.flo", flow))
    assert valid.tolist() == [[True, False]]
    assert read[0, 0].tolist() == [1e9, -1e9] and read[0, 1].tolist() == [0.0, 0.0]


def test_kitti_png_rounds_to_the_nearest_64th_and_clips_to_the_uint16_range(tmp_path):
    """KITTI stores 64 * flow + 2^15 rounded to the nearest integer (0.01 px -> 1/64, -0.02 px -> -1/64), clipped
    to [0, 65535]: 600 px reads back as (65535 - 32768) / 64 = 511.984375 and -600 px as -512."""
    flow = np.zeros((1, 4, 2), np.float32)
    flow[0, :, 0] = [0.01, -0.02, 600.0, -600.0]
    back, valid = read_kitti_png(write_kitti_png(tmp_path / "r.png", flow))
    assert valid.all()
    assert back[0, :, 0].tolist() == [1 / 64, -1 / 64, 511.984375, -512.0]
    assert back[0, :, 1].tolist() == [0.0] * 4


def test_similarity_flow_translation_and_scale_known_values():
    """A pure translation is the constant field (tx, ty); a scale s about the centre c moves pixel x by (s-1)(x-c)."""
    from flownet.data.synthetic_face import similarity_flow
    f = similarity_flow(5, 7, tx=0.5, ty=-1.25)
    torch.testing.assert_close(f[0], torch.full((5, 7), 0.5))
    torch.testing.assert_close(f[1], torch.full((5, 7), -1.25))
    g = similarity_flow(5, 7, scale=1.1)                     # centre (3, 2): pixel (6, 0) moves by 0.1 * (3, -2)
    torch.testing.assert_close(g[:, 0, 6], torch.tensor([0.3, -0.2]), atol=1e-6, rtol=0)


def test_warp_forward_valid_mask_on_a_non_square_grid():
    """valid marks target pixels whose source lies inside frame 1, edges included: all of a still 14x10 frame, and
    all but the bottom two rows when the content moves up 2 px (their sources lie below the frame)."""
    img = torch.rand(1, 1, 14, 10, generator=torch.Generator().manual_seed(0))
    _, valid = warp_forward(img, torch.zeros(1, 2, 14, 10), return_valid=True)
    assert valid.all()
    flow = torch.zeros(1, 2, 14, 10)
    flow[:, 1] = -2.0
    _, valid = warp_forward(img, flow, return_valid=True)
    assert valid[0, :12].all() and not valid[0, 12:].any()


def test_make_pair_head_peak_au_count_and_degradation_settings():
    """make_pair: the head motion's largest displacement is at most max_head, n_aus is an inclusive range (3..3
    gives 3 AUs), noise 0 and blur below 0.2 px leave frame 1 untouched, and degraded frames stay in [0, 1]."""
    from flownet.data.synthetic_face import degrade_frames, make_pair
    h = w = 32
    lm = _template_landmarks(h, w)
    img = torch.rand(1, h, w, generator=torch.Generator().manual_seed(0))
    peaks = []
    for seed in range(4):
        p = make_pair(img, lm, np.random.default_rng(seed), max_head=0.5, amplitudes={}, noise=0.0, blur=0.19)
        peaks.append(float(torch.hypot(p["flow_head"][0], p["flow_head"][1]).max()))
        assert torch.equal(p["flow"], p["flow_head"]) and p["flow_expr"].abs().max() == 0
        assert torch.equal(p["img1"], img)                     # no noise, no blur under 0.2 px
    assert max(peaks) <= 0.5 + 1e-6 and min(peaks) > 0
    p = make_pair(img, lm, np.random.default_rng(0), n_aus=(3, 3))
    assert len(p["aus"]) == 3 and all(0.2 <= a <= 3.0 for a in p["aus"].values())
    out = degrade_frames([torch.full((1, 8, 8), 0.99), torch.zeros(1, 8, 8)], np.random.default_rng(1), noise=0.5,
                         blur=0.0)
    assert all(float(x.min()) >= 0.0 and float(x.max()) <= 1.0 for x in out)
    assert float(out[0].max()) == 1.0 and float(out[1].min()) == 0.0     # clipped, not merely small


def test_face_mask_covers_the_forehead_above_the_brows():
    """The mask is the hull of the landmarks and the brows raised by 0.5 inter-ocular distance (the forehead): a
    point 0.3 IOD above the brow centre is inside, one 0.7 IOD above is not."""
    from flownet.data.synthetic_face import face_mask, inter_ocular_distance
    h = w = 64
    lm = _template_landmarks(h, w)
    iod = inter_ocular_distance(lm)
    m = face_mask(lm, h, w)[0]
    x, y = int(round(w / 2)), 0.3 * h                                        # brows at y = 0.3 h
    assert m[int(round(y - 0.3 * iod)), x] == 1 and m[int(round(y - 0.7 * iod)), x] == 0


def test_subject_split_needs_more_subjects_than_it_holds_out():
    from flownet.data.synthetic_face import split_subjects
    with pytest.raises(ValueError, match="need more than 2 subjects"):
        split_subjects(["a", "b"], n_test=2)
    s = split_subjects(["a", "b", "c"], n_test=2)
    assert len(s["test"]) == 2 and len(s["train"]) == 1
