"""Property-based tests (hypothesis) of the flow numerics: optical strain and recognizer features
(flownet/strain.py), the flow metrics (flownet/metrics.py), flow resizing (flownet/resolution.py), the training
loss and the four SRFlowNet regularizers (flownet/losses.py, flownet/regularizers.py) and a cheap property of the
classical baselines (flownet/classical.py).

Each property holds for every input hypothesis draws (the "suite" profile of tests/conftest.py: the same draws every
run):

* strain: the derivatives are those of ``np.gradient`` (central inside, one-sided at the border); a linear field
  u = a x + b y + c, v = d x + e y + f has du/dx = a, du/dy = b, dv/dx = d, dv/dy = e everywhere and the strain
  sqrt(a² + e² + 2 ((b + d) / 2)²) of the module docstring (translations and rotations: 0); turning or mirroring the
  field (pixels and vectors) turns or mirrors the strain map; strain scales with |k|;
* flow_features: the "none" features at the input size are (u, v, strain); a translation resized to size x size has
  u scaled by size / W and v by size / H; a ramp is sampled at the output pixel centres (align_corners=False); u, v
  are linear in the flow; "minmax" / "maxabs" are the "none" features normalised per sample as documented; bad
  inputs raise ValueError naming the problem;
* metrics (SRFlow paper Table II, KITTI Fl-all, Spring WAUC): on a quarter-pixel grid every definition is worked
  exactly in integers (e < t  <=>  16 (du² + dv²) < (4t)² ...) and flow_metrics agrees, NaN flows counting as misses;
  invalid pixels' values change nothing; a batch pools its pairs weighted by their valid-pixel counts;
* resize_flow: a constant field stays constant with u scaled by W / w and v by H / h; resizing commutes with
  transposing (u <-> v) and mirroring the field; it is linear; shrinking averages out stripes (antialiasing) whatever
  the other direction does; ResizedEstimator brings a base's flow back in pixels of the input;
* sequence_loss is the gamma-weighted mean L1 error over valid pixels with |gt| < max_flow (Sec. IV-B), computed by
  hand; TVR and FDR of a linear field have closed forms (Eq. 9-12); FDR is its masked mean forward difference by hand;
  MIGAR / IGVAR (Eq. 13-19) vanish for a constant flow and outside the mask and scale with |k|; the interior mask
  M_total (Eq. 16) of a rectangle loses its edges inside the image; the weights lie in [0, 1] and IGVAR's equal
  exp(-G) for images in [0, 1]; every gradient is finite at zero flow;
* TV-L1 finds zero motion between identical frames; the grey conversion is the ITU-R 601 luma.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flownet.classical import TVL1Estimator, to_gray_uint8
from flownet.losses import NO_VALID_PIXEL, sequence_loss, srflownet_loss
from flownet.metrics import METRIC_NAMES, endpoint_error, flow_magnitude, flow_metrics, valid_pixel_count
from flownet.regularizers import (fdr, igvar, igvar_is_variance_free, igvar_weights, image_gradient_magnitude, migar,
                                  migar_weights, regularizer_loss, stage_weights, total_mask, tvr)
from flownet.resolution import ResizedEstimator, at_input_size, resize_flow
from flownet.strain import flow_features, flow_gradients, optical_strain

FLOAT = st.floats(-20, 20, width=32, allow_subnormal=False)
COEF = st.floats(-4, 4, allow_subnormal=False)


@st.composite
def flows(draw, min_side: int = 2, max_side: int = 10, max_batch: int = 3, elements=FLOAT):
    """A (B, 2, H, W) float32 flow tensor, pixels."""
    b = draw(st.integers(1, max_batch))
    h, w = draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))
    return torch.from_numpy(draw(hnp.arrays(np.float32, (b, 2, h, w), elements=elements)))


@st.composite
def linear_fields(draw, min_side: int = 2, max_side: int = 10):
    """(flow, (a, b, c, d, e, f)): u = a x + b y + c, v = d x + e y + f on an H x W grid (x = column, y = row)."""
    a, b, c, d, e, f = (draw(COEF) for _ in range(6))
    h, w = draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side))
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    flow = torch.stack([a * x + b * y + c, d * x + e * y + f])[None].float()
    return flow, (a, b, c, d, e, f)


def _tol(t: torch.Tensor) -> float:
    """Float32 rounding allowance for values computed from ``t``."""
    return 1e-5 * (1.0 + float(t.abs().max()))


def _fewer(suite_examples: int):
    """Fewer examples for a slow property: ``suite_examples`` in the "suite" profile, 200 in "search"."""
    return settings(max_examples=suite_examples if settings.default.max_examples <= 60 else 200)


# --------------------------------------------------------------------------------------------------- strain


@given(flows())
def test_flow_gradients_are_numpys_central_differences_one_sided_at_the_border(flow):
    dx, dy = flow_gradients(flow)
    f = flow.double().numpy()
    assert dx.shape == flow.shape and dy.shape == flow.shape
    np.testing.assert_allclose(dx.numpy(), np.gradient(f, axis=-1), rtol=0, atol=_tol(flow))
    np.testing.assert_allclose(dy.numpy(), np.gradient(f, axis=-2), rtol=0, atol=_tol(flow))


@given(linear_fields())
def test_a_linear_field_has_its_closed_form_derivatives_and_strain_everywhere(case):
    flow, (a, b, c, d, e, f) = case
    dx, dy = flow_gradients(flow)
    tol = _tol(flow)
    for got, want in ((dx[:, 0], a), (dy[:, 0], b), (dx[:, 1], d), (dy[:, 1], e)):
        assert torch.allclose(got.double(), torch.full_like(got.double(), want), rtol=0, atol=tol)
    strain = optical_strain(flow)
    assert strain.shape == (1, 1, *flow.shape[-2:])
    want = math.sqrt(a * a + e * e + 2 * (0.5 * (b + d)) ** 2)
    assert torch.allclose(strain.double(), torch.full_like(strain.double(), want), rtol=0, atol=4 * tol + 1e-6)


@given(st.floats(-50, 50), st.floats(-50, 50), st.floats(-2, 2), st.integers(2, 12), st.integers(2, 12))
def test_translations_and_rotations_have_zero_strain(tu, tv, theta, h, w):
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    # infinitesimal rotation (u, v) = theta (-y, x) plus a translation: du/dx = dv/dy = 0, du/dy + dv/dx = 0
    flow = torch.stack([-theta * y + tu, theta * x + tv])[None].float()
    strain = optical_strain(flow)
    assert float(strain.max()) <= 1e-6 + 4 * _tol(flow)
    assert float(strain.min()) >= 0.0


def _rot90_field(flow: torch.Tensor, k: int) -> torch.Tensor:
    """The field turned by k quarter turns as torch.rot90 turns the pixels: pixel (x, y) goes to (y, W-1-x), so a
    vector (u, v) becomes (v, -u)."""
    for _ in range(k % 4):
        u, v = flow[:, 0:1], flow[:, 1:2]
        flow = torch.cat([torch.rot90(v, 1, (-2, -1)), -torch.rot90(u, 1, (-2, -1))], 1)
    return flow


@given(flows(), st.integers(1, 3))
def test_turning_the_field_turns_the_strain_map(flow, k):
    # the strain is the Frobenius norm of the strain tensor, invariant under R E R^T; central differences on the
    # turned grid are the turned central differences (border included), so the maps agree to float rounding
    turned = optical_strain(_rot90_field(flow, k))
    assert torch.allclose(turned, torch.rot90(optical_strain(flow), k, (-2, -1)), rtol=1e-5, atol=_tol(flow))


@given(flows())
def test_mirroring_the_field_mirrors_the_strain_map(flow):
    mirrored = torch.cat([-flow[:, 0:1], flow[:, 1:2]], 1).flip(-1)          # x -> W-1-x: u changes sign
    assert torch.allclose(optical_strain(mirrored), optical_strain(flow).flip(-1), rtol=1e-5, atol=_tol(flow))
    transposed = flow.flip(1).transpose(-2, -1)                              # x <-> y: u <-> v
    assert torch.allclose(optical_strain(transposed), optical_strain(flow).transpose(-2, -1), rtol=1e-5,
                          atol=_tol(flow))


@given(flows(), st.floats(-8, 8))
def test_strain_is_non_negative_and_scales_with_the_absolute_factor(flow, k):
    s = optical_strain(flow).double()
    assert (s >= 0).all()
    ks = optical_strain(flow * k).double()
    # sqrt(x + 1e-12): the epsilon adds at most 1e-6 (times max(1, |k|)) to either side
    assert torch.allclose(ks, abs(k) * s, rtol=1e-5, atol=1e-6 * (1 + abs(k)) + abs(k) * _tol(flow) * 4)


@given(flows(max_batch=2))
def test_strain_gradient_is_finite_even_at_zero_strain(flow):
    for f in (flow, torch.zeros_like(flow)):
        f = f.clone().requires_grad_(True)
        optical_strain(f).sum().backward()
        assert torch.isfinite(f.grad).all()


# --------------------------------------------------------------------------------------------------- flow_features


@given(st.integers(1, 3), st.integers(2, 8), st.data())
def test_features_at_the_input_size_are_u_v_and_strain(b, side, data):
    flow = torch.from_numpy(data.draw(hnp.arrays(np.float32, (b, 2, side, side), elements=FLOAT)))
    feats = flow_features(flow, size=flow.shape[-1], normalize="none")
    assert feats.shape == (flow.shape[0], 3, *flow.shape[-2:])
    assert torch.allclose(feats[:, :2], flow, rtol=1e-6, atol=1e-6)
    assert torch.allclose(feats[:, 2:], optical_strain(flow), rtol=1e-6, atol=1e-6)


@given(st.floats(-30, 30), st.floats(-30, 30), st.integers(2, 16), st.integers(2, 16), st.integers(1, 20),
       st.sampled_from(["bilinear", "nearest", "bicubic"]))
def test_a_translation_resized_is_scaled_to_the_output_grid(tu, tv, h, w, size, mode):
    flow = torch.tensor([tu, tv], dtype=torch.float32).view(1, 2, 1, 1).expand(2, 2, h, w).contiguous()
    feats = flow_features(flow, size=size, normalize="none", mode=mode).double()
    assert feats.shape == (2, 3, size, size)
    tol = 1e-5 * (1 + abs(tu) + abs(tv)) * (1 + size)
    assert torch.allclose(feats[:, 0], torch.full_like(feats[:, 0], tu * size / w), rtol=0, atol=tol)
    assert torch.allclose(feats[:, 1], torch.full_like(feats[:, 1], tv * size / h), rtol=0, atol=tol)
    assert float(feats[:, 2].abs().max()) <= 1e-5


@given(COEF, COEF, COEF, COEF, st.integers(2, 12), st.integers(2, 12), st.integers(1, 20))
def test_features_sample_a_ramp_at_the_output_pixel_centres(a, c, e, f, h, w, size):
    # u = a x + c, v = e y + f resized (bilinear, align_corners=False): output pixel X samples the input at
    # x = (X + 0.5) W / size - 0.5, clamped to the border pixels; a ramp is exact under bilinear interpolation
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    flow = torch.stack([a * x + c, e * y + f])[None].float()
    feats = flow_features(flow, size=size, normalize="none").double()
    pos = torch.arange(size, dtype=torch.float64) + 0.5
    xs = (pos * w / size - 0.5).clamp(0, w - 1)
    ys = (pos * h / size - 0.5).clamp(0, h - 1)
    tol = 1e-4 * (1 + _tol(flow)) * size
    assert torch.allclose(feats[0, 0], ((a * xs + c) * size / w).expand(size, size), rtol=0, atol=tol)
    assert torch.allclose(feats[0, 1], ((e * ys + f) * size / h)[:, None].expand(size, size), rtol=0, atol=tol)


@given(flows(max_batch=2), st.data(), st.floats(-3, 3), st.integers(1, 12))
def test_feature_u_v_are_linear_in_the_flow(f1, data, k, size):
    f2 = torch.from_numpy(data.draw(hnp.arrays(np.float32, tuple(f1.shape), elements=FLOAT)))
    lhs = flow_features(f1 + k * f2, size=size, normalize="none")[:, :2]
    rhs = flow_features(f1, size=size, normalize="none")[:, :2] + k * flow_features(f2, size=size,
                                                                                     normalize="none")[:, :2]
    assert torch.allclose(lhs, rhs, rtol=1e-4, atol=1e-4 * (1 + abs(k)) * (1 + size))


@given(flows(max_batch=3), st.integers(1, 12))
def test_minmax_and_maxabs_normalise_the_raw_features_per_sample_and_channel(flow, size):
    raw = flow_features(flow, size=size, normalize="none").double().numpy()
    mm = flow_features(flow, size=size, normalize="minmax").double().numpy()
    ma = flow_features(flow, size=size, normalize="maxabs").double().numpy()
    lo, hi = raw.min(axis=(2, 3), keepdims=True), raw.max(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(mm, (raw - lo) / (hi - lo + 1e-6), rtol=1e-4, atol=1e-4)
    assert mm.min() >= 0 and mm.max() <= 1
    m_uv = np.abs(raw[:, :2]).max(axis=(1, 2, 3), keepdims=True) + 1e-6
    m_s = raw[:, 2:].max(axis=(1, 2, 3), keepdims=True) + 1e-6
    np.testing.assert_allclose(ma[:, :2], raw[:, :2] / m_uv, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ma[:, 2:], raw[:, 2:] / m_s, rtol=1e-4, atol=1e-5)
    assert np.abs(ma[:, :2]).max() <= 1 and ma[:, 2:].min() >= 0 and ma[:, 2:].max() <= 1


@given(st.one_of(hnp.array_shapes(min_dims=1, max_dims=5, max_side=4).filter(
    lambda s: not (len(s) == 4 and s[1] == 2)).map(torch.zeros), st.just([[1.0, 2.0]]), st.none()))
def test_features_and_strain_refuse_what_is_no_flow_batch(bad):
    for fn in (flow_features, optical_strain, flow_gradients):
        with pytest.raises(ValueError, match="flow must be a \\(B, 2, H, W\\) tensor"):
            fn(bad)


@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6))
def test_strain_refuses_a_field_below_2x2_and_features_a_bad_size_or_normalisation(b, h, w):
    flow = torch.zeros(b, 2, h, w)
    if min(h, w) < 2:
        with pytest.raises(ValueError, match="at least 2x2"):
            flow_gradients(flow)
    else:
        with pytest.raises(ValueError, match="size must be one whole number >= 1"):
            flow_features(flow, size=2 - h)
        with pytest.raises(ValueError, match="normalize must be"):
            flow_features(flow, normalize="zscore")


# --------------------------------------------------------------------------------------------------- metrics


@st.composite
def quarter_pixel_pairs(draw, max_batch: int = 2, max_side: int = 6):
    """(pred, gt, valid, (d, g, nan)) on a quarter-pixel grid: ``d`` = 4 (pred - gt) and ``g`` = 4 gt as int arrays
    (B, 2, H, W); ``nan`` (B, H, W) marks pixels whose prediction is NaN; at least one valid pixel."""
    b, h, w = draw(st.integers(1, max_batch)), draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    shape = (b, 2, h, w)
    g = draw(hnp.arrays(np.int64, shape, elements=st.integers(-320, 320)))          # |gt| up to 80 px
    d = draw(hnp.arrays(np.int64, shape, elements=st.one_of(st.integers(-28, 28), st.integers(-400, 400))))
    nan = draw(hnp.arrays(np.bool_, (b, h, w), elements=st.booleans())) if draw(st.booleans()) else \
        np.zeros((b, h, w), bool)
    valid = draw(hnp.arrays(np.bool_, (b, h, w), elements=st.booleans()))
    assume(valid.any())
    gt = torch.from_numpy(g / 4.0).float()
    pred = torch.from_numpy((g + d) / 4.0).float()
    pred[torch.from_numpy(nan)[:, None].expand(shape)] = float("nan")
    return pred, gt, torch.from_numpy(valid), (d, g, nan)


@given(quarter_pixel_pairs())
def test_flow_metrics_equal_the_definitions_worked_exactly_in_integers(case):
    pred, gt, valid, (d, g, nan) = case
    v = valid.numpy()
    n = (d ** 2).sum(1)[v]              # 16 e², exact
    big_g = (g ** 2).sum(1)[v]          # 16 |gt|², exact
    miss = nan[v]
    count = n.size
    # Fl-all: outlier when e > 3 and e > 0.05 |gt|  <=>  n > 144 and 400 n > G; an exact tie e == 0.05 |gt| is left
    # out, as 0.05 has no exact binary value (the comparison of the rounded product goes either way)
    assume(not ((n > 144) & (400 * n == big_g) & ~miss).any())
    m = flow_metrics(pred, gt, valid)
    assert set(m) == set(METRIC_NAMES)
    if miss.any():
        assert math.isnan(m["EPE"])
    else:
        assert m["EPE"] == pytest.approx(float(np.sqrt(n).mean() / 4), rel=1e-6, abs=1e-6)
    for t, key in ((1, "px1"), (3, "px3"), (5, "px5")):
        assert m[key] == ((n < 16 * t * t) & ~miss).sum() / count, key
    assert m["Fl-all"] == pytest.approx(100 * (miss | ((n > 144) & (400 * n > big_g))).sum() / count, abs=1e-12)
    i = np.arange(1, 101)
    w = 1 - (i - 1) / 100
    acc = np.array([((25 * n <= k * k) & ~miss).sum() / count for k in i])      # e <= k / 20
    assert m["WAUC"] == pytest.approx(100 * (w * acc).sum() / w.sum(), abs=1e-9)
    for key in ("px1", "px3", "px5", "WAUC", "Fl-all"):
        assert 0 <= m[key] <= (1 if key.startswith("px") else 100)
    assert m["px1"] <= m["px3"] <= m["px5"]


@given(quarter_pixel_pairs(), st.floats(-1e3, 1e3, width=32) | st.just(float("nan")))
def test_invalid_pixels_change_no_metric_and_a_perfect_prediction_scores_best(case, junk):
    pred, gt, valid, _ = case
    m = flow_metrics(pred, gt, valid)
    inv = ~valid[:, None].expand_as(pred)
    p2, g2 = pred.clone(), gt.clone()
    p2[inv], g2[inv] = junk, -junk
    m2 = flow_metrics(p2, g2, valid)
    assert m2.keys() == m.keys()
    for key in m:
        assert m2[key] == m[key] or (math.isnan(m2[key]) and math.isnan(m[key])), key
    best = flow_metrics(g2, g2, valid)
    assert best == {"EPE": 0.0, "px1": 1.0, "px3": 1.0, "px5": 1.0, "Fl-all": 0.0, "WAUC": 100.0}
    assert valid_pixel_count(gt, valid) == int(valid.sum())


@given(quarter_pixel_pairs(max_batch=3))
def test_a_batch_pools_its_pairs_weighted_by_their_valid_pixel_counts(case):
    pred, gt, valid, _ = case
    pred = torch.nan_to_num(pred, nan=0.5)
    m = flow_metrics(pred, gt, valid)
    parts = [(valid_pixel_count(gt[b], valid[b]), flow_metrics(pred[b], gt[b], valid[b]))
             for b in range(len(pred)) if valid[b].any()]
    total = sum(c for c, _ in parts)
    for key in METRIC_NAMES:
        assert m[key] == pytest.approx(sum(c * mb[key] for c, mb in parts) / total, rel=1e-6, abs=1e-9), key


@given(flows(min_side=1, max_side=6, max_batch=1))
def test_epe_px_and_wauc_are_symmetric_and_3d_input_is_a_batch_of_one(flow):
    gt = flow.flip(-1)
    m, r = flow_metrics(flow, gt), flow_metrics(gt, flow)
    for key in ("EPE", "px1", "px3", "px5", "WAUC"):
        assert m[key] == pytest.approx(r[key], rel=1e-6, abs=1e-9), key
    assert flow_metrics(flow[0], gt[0]) == m
    e = endpoint_error(flow, gt)
    assert torch.allclose(e, (flow - gt).norm(dim=1), rtol=1e-5, atol=1e-5)
    assert torch.allclose(flow_magnitude(flow), flow.norm(dim=1), rtol=1e-5, atol=1e-5)


@given(flows(min_side=1, max_side=5, max_batch=2), st.integers(0, 2))
def test_metrics_refuse_mismatched_shapes_and_an_empty_valid_mask(flow, which):
    if which == 0:
        with pytest.raises(ValueError, match="differ in shape"):
            flow_metrics(flow, flow[..., :-1] if flow.shape[-1] > 1 else flow[:, :1])
    elif which == 1:
        with pytest.raises(ValueError, match="valid mask .* does not match"):
            flow_metrics(flow, flow, torch.ones(flow.shape[0] + 1, *flow.shape[2:], dtype=torch.bool))
    else:
        with pytest.raises(ValueError, match="no valid pixel"):
            flow_metrics(flow, flow, torch.zeros(flow.shape[0], *flow.shape[2:], dtype=torch.bool))


# --------------------------------------------------------------------------------------------------- resolution


@given(st.floats(-30, 30), st.floats(-30, 30), st.integers(1, 12), st.integers(1, 12), st.integers(1, 12),
       st.integers(1, 12))
def test_resizing_a_translation_scales_u_by_the_width_ratio_and_v_by_the_height_ratio(tu, tv, h, w, oh, ow):
    flow = torch.tensor([tu, tv], dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, h, w).contiguous()
    out = resize_flow(flow, (oh, ow)).double()
    assert out.shape == (1, 2, oh, ow)
    tol = 1e-5 * (1 + abs(tu) + abs(tv)) * 12
    assert torch.allclose(out[:, 0], torch.full_like(out[:, 0], tu * ow / w), rtol=0, atol=tol)
    assert torch.allclose(out[:, 1], torch.full_like(out[:, 1], tv * oh / h), rtol=0, atol=tol)
    back = resize_flow(resize_flow(flow, (oh, ow)), (h, w))          # the round trip gives the translation back
    assert torch.allclose(back.double(), flow.double(), rtol=0, atol=2 * tol)


# Sides from 2 up: torch 2.14's antialiased bilinear resampling (used when shrinking) is not symmetric in H and W when
# a side of the input or the output is 1 (e.g. the column [0, 1, 1] shrunk to 2 rows gives [0.375, 0.375], the row
# [0, 1, 1] shrunk to 2 columns gives [0.375, 1.0]); no flow of the project is one pixel wide (the working size is
# at least 8)
@given(flows(min_side=2, max_side=9), st.integers(2, 12), st.integers(2, 12))
def test_resizing_commutes_with_transposing_and_mirroring_the_field(flow, oh, ow):
    out = resize_flow(flow, (oh, ow))
    tol = _tol(flow) * 10
    transposed = resize_flow(flow.flip(1).transpose(-2, -1), (ow, oh))                 # x <-> y, u <-> v
    assert torch.allclose(transposed, out.flip(1).transpose(-2, -1), rtol=1e-5, atol=tol)
    mirrored = resize_flow(torch.cat([-flow[:, :1], flow[:, 1:]], 1).flip(-1), (oh, ow))  # x -> W-1-x
    assert torch.allclose(mirrored, torch.cat([-out[:, :1], out[:, 1:]], 1).flip(-1), rtol=1e-5, atol=tol)


@given(flows(min_side=1, max_side=9), st.floats(-3, 3), st.integers(1, 12), st.integers(1, 12))
def test_resizing_is_linear_and_the_same_size_is_the_flow_itself(flow, k, oh, ow):
    assert resize_flow(flow, tuple(flow.shape[-2:])) is flow
    g = flow.roll(1, -1)
    lhs = resize_flow(flow + k * g, (oh, ow))
    rhs = resize_flow(flow, (oh, ow)) + k * resize_flow(g, (oh, ow))
    assert torch.allclose(lhs, rhs, rtol=1e-5, atol=_tol(flow) * 10 * (1 + abs(k)))


@given(st.integers(6, 24), st.integers(1, 8), st.integers(1, 12), st.data(), st.floats(0.5, 20))
def test_shrinking_is_antialiased_in_the_shrunk_direction(w, h, oh, data, amp):
    # stripes u = ±amp alternating along x, shrunk to a third of the width or less: the antialiasing filter averages
    # them out (at most amp / 9 of them are left), whatever the other direction does; plain bilinear sampling would
    # pick single stripes (±amp)
    ow = data.draw(st.integers(1, w // 3))
    u = (amp * (-1.0) ** torch.arange(w)).view(1, 1, 1, w).expand(1, 1, h, w)
    out = resize_flow(torch.cat([u, torch.zeros_like(u)], 1).float(), (oh, ow))
    assert float(out[:, 0].abs().max()) <= 0.12 * amp * ow / w
    # the same along y
    out = resize_flow(torch.cat([torch.zeros_like(u), u], 1).transpose(-2, -1).float(), (ow, oh))
    assert float(out[:, 1].abs().max()) <= 0.12 * amp * ow / w


class _ConstantFlow:
    """A base estimator whose flow is (tu, tv) pixels of the grid it is given."""

    def __init__(self, tu, tv):
        self.tu, self.tv, self.seen = tu, tv, []

    def estimate(self, img1, img2):
        self.seen.append(tuple(img1.shape[-2:]))
        b, _, h, w = img1.shape
        return torch.tensor([self.tu, self.tv]).view(1, 2, 1, 1).expand(b, 2, h, w).float()


@given(st.floats(-10, 10), st.floats(-10, 10), st.integers(8, 20), st.integers(4, 24), st.integers(4, 24))
def test_resized_estimator_returns_the_flow_in_pixels_of_the_input(tu, tv, size, h, w):
    base = _ConstantFlow(tu, tv)
    est = ResizedEstimator(base, size)
    img = torch.rand(2, 3, h, w)
    out = est.estimate(img, img).double()
    assert base.seen == [(size, size)] and out.shape == (2, 2, h, w)
    tol = 1e-4 * (1 + abs(tu) + abs(tv))
    assert torch.allclose(out[:, 0], torch.full_like(out[:, 0], tu * w / size), rtol=0, atol=tol)
    assert torch.allclose(out[:, 1], torch.full_like(out[:, 1], tv * h / size), rtol=0, atol=tol)
    assert at_input_size(base, "native", (h, w)) is base
    assert at_input_size(base, h, h) is base
    assert isinstance(at_input_size(base, size, (h, w)), ResizedEstimator) or (h, w) == (size, size)


@given(st.integers(-5, 7), st.one_of(st.just(True), st.just("big"), st.just(12.0), st.just(None)))
def test_resizing_refuses_bad_sizes(small, bad):
    with pytest.raises(ValueError, match="at least 8 pixels"):
        ResizedEstimator(_ConstantFlow(0, 0), small)
    with pytest.raises(ValueError, match="input size must be"):
        at_input_size(_ConstantFlow(0, 0), bad, 32)
    if small < 1:
        with pytest.raises(ValueError, match=r"resize_flow: size must be \(H, W\), two whole numbers >= 1"):
            resize_flow(torch.zeros(1, 2, 4, 4), (small, 4))
    with pytest.raises(ValueError, match="expects a \\(B, 2, H, W\\) flow"):
        resize_flow(torch.zeros(1, 3, 4, 4), (4, 4))


# --------------------------------------------------------------------------------------------------- losses


@st.composite
def prediction_sequences(draw, max_stages: int = 3):
    """(flows, gt, valid, gamma): 1-3 predictions and a ground truth (B, 2, H, W), a valid mask (B, H, W)."""
    gt = draw(flows(min_side=1, max_side=6, elements=st.floats(-30, 30, width=32)))
    n = draw(st.integers(1, max_stages))
    preds = [torch.from_numpy(draw(hnp.arrays(np.float32, tuple(gt.shape), elements=FLOAT))) for _ in range(n)]
    valid = torch.from_numpy(draw(hnp.arrays(np.bool_, (gt.shape[0], *gt.shape[2:]), elements=st.booleans())))
    return preds, gt, valid, draw(st.floats(0.05, 1.0))


@given(prediction_sequences(), st.floats(1, 50))
def test_sequence_loss_is_the_gamma_weighted_mean_l1_error_worked_by_hand(case, max_flow):
    preds, gt, valid, gamma = case
    g = gt.double().numpy()
    mag = np.sqrt((g ** 2).sum(1))
    # |gt| within float32 rounding of max_flow is left out: the loss compares the float32 magnitude with max_flow
    # rounded to float32 (gt = 1.9 against max_flow = 1.9 is a tie there and below it in float64)
    assume(not (np.abs(mag - max_flow) <= 1e-6 * max_flow).any())
    keep = valid.numpy() & (mag < max_flow)
    if not keep.any():
        with pytest.raises(ValueError, match=NO_VALID_PIXEL):
            sequence_loss(preds, gt, valid, gamma=gamma, max_flow=max_flow)
        return
    n = len(preds)
    want = sum(gamma ** (n - i - 1) * np.abs(p.double().numpy() - g).sum(1)[keep].mean() for i, p in enumerate(preds))
    got = float(sequence_loss(preds, gt, valid, gamma=gamma, max_flow=max_flow))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-5)
    assert got >= 0
    # the values of pixels left out change nothing
    junk = [p.clone() for p in preds]
    for p in junk:
        p[~torch.from_numpy(keep)[:, None].expand_as(p)] = 1e4
    assert float(sequence_loss(junk, gt, valid, gamma=gamma, max_flow=max_flow)) == pytest.approx(got, rel=1e-6,
                                                                                                 abs=1e-6)


@given(prediction_sequences())
def test_the_plain_backbone_loss_is_the_sequence_loss_with_finite_gradients(case):
    preds, gt, valid, gamma = case
    assume(valid.any())
    preds = [p.clone().requires_grad_(True) for p in preds]
    loss, logs = srflownet_loss(preds, gt, valid, regularizer="none", gamma=gamma)
    assert float(loss.detach()) == pytest.approx(float(sequence_loss(preds, gt, valid, gamma=gamma).detach()), rel=1e-6,
                                                 abs=1e-7)
    assert logs == {"epe_loss": pytest.approx(float(loss.detach())), "reg_loss": 0.0}
    _, t_logs = srflownet_loss(preds, gt, valid, regularizer="none", gamma=gamma, logs_as_floats=False)
    assert int(t_logs["valid_values"]) == 2 * int(valid.sum())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in preds)
    assert float(sequence_loss([gt], gt, valid)) == 0.0


@given(prediction_sequences())
def test_a_prediction_of_another_shape_is_named_by_its_index(case):
    preds, gt, valid, _ = case
    bad = len(preds) - 1
    preds[bad] = preds[bad][..., :1, :1].repeat(1, 1, 1, 2) if gt.shape[-1] == 1 else preds[bad][..., :-1]
    with pytest.raises(ValueError, match=f"prediction {bad} of {len(preds)}"):
        sequence_loss(preds, gt, valid)


# --------------------------------------------------------------------------------------------------- regularizers


@given(linear_fields(min_side=1, max_side=10), st.integers(1, 3), st.floats(0.1, 1.0), st.floats(0.01, 2))
def test_tvr_of_a_linear_field_is_its_slopes_halved_on_the_outer_rows_and_columns(case, n, gamma, lam):
    flow, (a, b, _, d, e, _) = case
    h, w = flow.shape[-2:]
    # normalised Sobel of u = a x + b y: a inside, a / 2 on the first and last column (replicate padding), so
    # R(u) = |a| (W - 1) / W + |b| (H - 1) / H (Eq. 9-10); identical stages add up with their weights
    per_stage = (abs(a) + abs(d)) * (w - 1) / w + (abs(b) + abs(e)) * (h - 1) / h
    want = lam * sum(stage_weights(n, gamma)) * per_stage
    assert float(tvr([flow] * n, gamma, lam)) == pytest.approx(want, rel=1e-4, abs=1e-5)
    # lambda_N = 0.05 when no weight is given (Eq. 10)
    assert float(regularizer_loss("tvr", [flow] * n, gamma=gamma)) == pytest.approx(want * 0.05 / lam, rel=1e-4,
                                                                                  abs=1e-5)


@given(linear_fields(min_side=2, max_side=10), st.floats(0.01, 2))
def test_fdr_of_a_linear_field_with_a_full_mask_is_the_sum_of_its_slopes(case, lam):
    flow, (a, b, _, d, e, _) = case
    mask = torch.ones(1, 1, *flow.shape[-2:])
    assert float(fdr(flow, mask, lam=lam)) == pytest.approx(lam * (abs(a) + abs(b) + abs(d) + abs(e)), rel=1e-4,
                                                           abs=1e-5)


@given(flows(min_side=1, max_side=7), st.data())
def test_fdr_is_the_masked_mean_forward_difference_worked_by_hand(flow, data):
    b, _, h, w = flow.shape
    mask = torch.from_numpy(data.draw(hnp.arrays(np.bool_, (b, 1, h, w), elements=st.booleans()))).float()
    f, m = flow.double().numpy(), mask.double().numpy()
    dx = np.abs(f[..., 1:] - f[..., :-1]) * m[..., :-1]
    dy = np.abs(f[..., 1:, :] - f[..., :-1, :]) * m[..., :-1, :]
    part = (lambda x: x.mean(axis=(2, 3)).sum(1).mean() if x.size else float("nan"))
    want = 0.05 * (part(dx) + part(dy))
    if math.isnan(want):            # a 1-pixel-wide field has no forward difference in one direction (was NaN)
        with pytest.raises(ValueError, match=r"fdr: stride must be in \[1, 1\)"):
            fdr(flow, mask)
    else:
        assert float(fdr(flow, mask)) == pytest.approx(want, rel=1e-5, abs=1e-6)


@st.composite
def images(draw, b: int, h: int, w: int):
    c = draw(st.sampled_from([1, 3]))
    return torch.from_numpy(draw(hnp.arrays(np.float32, (b, c, h, w), elements=st.floats(0, 1, width=32))))


@given(flows(min_side=2, max_side=8), st.data(), st.sampled_from(["migar", "igvar"]),
       st.sampled_from(["interior", "literal"]), st.floats(-4, 4))
def test_migar_and_igvar_are_non_negative_and_scale_with_the_absolute_factor(flow, data, name, mode, k):
    b, _, h, w = flow.shape
    img = data.draw(images(b, h, w))
    mask = torch.from_numpy(data.draw(hnp.arrays(np.bool_, (b, 1, h, w), elements=st.booleans()))).float()
    fn = migar if name == "migar" else igvar
    r = float(fn(flow, img, mask, mask_mode=mode))
    assert r >= 0
    assert float(fn(flow * k, img, mask, mask_mode=mode)) == pytest.approx(abs(k) * r, rel=1e-4, abs=1e-4)
    assert float(regularizer_loss(name, flow, img1=img, mask=mask, mask_mode=mode)) == r


@given(st.floats(-20, 20), st.floats(-20, 20), st.integers(1, 3), st.integers(1, 8), st.integers(1, 8), st.data())
def test_every_regularizer_vanishes_for_a_constant_flow_with_a_full_mask(tu, tv, b, h, w, data):
    flow = torch.tensor([tu, tv]).view(1, 2, 1, 1).expand(b, 2, h, w).float()
    img = data.draw(images(b, h, w))
    mask = torch.ones(b, 1, h, w)
    assert torch.equal(total_mask(mask), mask)
    for name in ("none", "tvr", "migar", "igvar") + (("fdr",) if min(h, w) > 1 else ()):
        # zero to float rounding: the Sobel convolution sums -k t and +k t in an order that need not cancel exactly
        assert abs(float(regularizer_loss(name, flow, img1=img, mask=mask))) <= 1e-6 * (1 + abs(tu) + abs(tv)), name


@given(flows(min_side=2, max_side=8), st.data())
def test_fdr_migar_and_igvar_vanish_outside_the_face_mask(flow, data):
    b, _, h, w = flow.shape
    img = data.draw(images(b, h, w))
    zero = torch.zeros(b, 1, h, w)
    for name in ("fdr", "migar", "igvar"):
        assert float(regularizer_loss(name, flow, img1=img, mask=zero)) == 0.0, name


@given(st.integers(3, 10), st.integers(3, 10), st.data())
def test_the_interior_mask_of_a_rectangle_loses_its_edges_inside_the_image(h, w, data):
    # at least 2 pixels a side: the Sobel derivative across a 1-pixel line is 0 by symmetry ([1, 0, 1] - [1, 0, 1]),
    # so the formula keeps (parts of) such a line; a face mask has no such part
    r0 = data.draw(st.integers(0, h - 2))
    r1 = data.draw(st.integers(r0 + 1, h - 1))
    c0 = data.draw(st.integers(0, w - 2))
    c1 = data.draw(st.integers(c0 + 1, w - 1))
    mask = torch.zeros(1, 1, h, w)
    mask[..., r0:r1 + 1, c0:c1 + 1] = 1
    # M_total ("interior", Eq. 16 as read in the module docstring): the Sobel derivatives of the mask vanish, i.e. the
    # rectangle without its rows / columns next to a 0 (an edge on the image border stays: replicate padding)
    want = torch.zeros(1, 1, h, w)
    t, bt = r0 + (r0 > 0), r1 - (r1 < h - 1)
    lf, rt = c0 + (c0 > 0), c1 - (c1 < w - 1)
    want[..., t:bt + 1, lf:rt + 1] = 1
    assert torch.equal(total_mask(mask), want)


@given(st.integers(1, 2), st.integers(2, 8), st.integers(2, 8), st.data(), st.floats(0.1, 5.8))
def test_regularizer_weights_lie_in_0_1_and_igvar_is_exp_minus_g_for_images_in_0_1(b, h, w, data, scale):
    img = data.draw(images(b, h, w))
    mask = torch.from_numpy(data.draw(hnp.arrays(np.bool_, (b, 1, h, w), elements=st.booleans()))).float()
    g = image_gradient_magnitude(img, scale)
    assert float(g.max()) <= 4 * math.sqrt(2) * scale * (1 + 1e-5) + 1e-5      # |Sobel| <= 4 per direction
    for wts in (migar_weights(img, scale), igvar_weights(img, mask, scale)):
        # in [0, 1], not (0, 1] as migar_weights' docstring says: exp(-mean(G) G) underflows float32 to 0 for a sharp
        # edge in a sharp image (G = 17, mean(G) = 8.5 at image_scale 3 for the 2x2 image [[0, 1], [1, 1]])
        assert (wts >= 0).all() and (wts <= 1).all()
    assert igvar_is_variance_free(scale)
    assert torch.allclose(igvar_weights(img, mask, scale), torch.exp(-g), rtol=1e-5, atol=1e-6)
    tm = total_mask(mask)
    assert (tm <= mask).all() and (total_mask(mask, "literal") <= mask).all()


@given(flows(min_side=2, max_side=6, max_batch=2), st.data())
def test_every_regularizer_has_finite_gradients_even_at_zero_flow(flow, data):
    b, _, h, w = flow.shape
    img = data.draw(images(b, h, w))
    mask = torch.from_numpy(data.draw(hnp.arrays(np.bool_, (b, 1, h, w), elements=st.booleans()))).float()
    for f in (flow, torch.zeros_like(flow)):
        for name in ("tvr", "fdr", "migar", "igvar"):
            x = f.clone().requires_grad_(True)
            regularizer_loss(name, [x * 0.5, x], img1=img, mask=mask).backward()
            assert torch.isfinite(x.grad).all(), name


@given(st.one_of(st.floats(-2, 0), st.floats(1.0, 3).filter(lambda g: g > 1), st.just(float("nan"))),
       st.integers(1, 4))
def test_stage_weights_refuse_a_gamma_outside_0_1_and_decay_towards_the_first_stage(gamma, n):
    with pytest.raises(ValueError, match="gamma must be in \\(0, 1\\]"):
        stage_weights(n, gamma)
    ws = stage_weights(n, 0.5)
    assert ws[-1] == 1.0 and all(x < y for x, y in zip(ws, ws[1:]))


# --------------------------------------------------------------------------------------------------- classical


@_fewer(20)
@given(st.integers(1, 2), st.integers(8, 24), st.integers(8, 24), st.sampled_from([1, 3]), st.randoms())
def test_tvl1_finds_no_motion_between_identical_frames(b, h, w, c, rnd):
    g = torch.Generator().manual_seed(rnd.randint(0, 2 ** 31))
    img = torch.rand(b, c, h, w, generator=g)
    flow = TVL1Estimator().estimate(img, img.clone())
    assert flow.shape == (b, 2, h, w) and torch.equal(flow, torch.zeros_like(flow))


@given(hnp.arrays(np.float32, (2, 1, 3, 4), elements=st.floats(0, 1, width=32)))
def test_grey_conversion_of_three_equal_channels_is_the_grey_image(img):
    one = torch.from_numpy(img)
    grey = to_gray_uint8(one)
    assert grey.dtype == np.uint8 and grey.shape == (2, 3, 4)
    assert (grey == np.floor(img[:, 0] * 255.0 + 0.5)).all()
    # the ITU-R 601 weights sum to 1, up to one float32 rounding step of 0.299 x + 0.587 x + 0.114 x
    assert np.abs(to_gray_uint8(one.expand(2, 3, 3, 4)).astype(int) - grey.astype(int)).max() <= 1


@given(hnp.arrays(np.float32, (1, 3, 4, 5), elements=st.floats(0, 1, width=32)))
def test_grey_conversion_of_colour_is_the_itu_r_601_luma(img):
    luma = 0.299 * img[:, 0].astype(np.float64) + 0.587 * img[:, 1] + 0.114 * img[:, 2]
    diff = to_gray_uint8(torch.from_numpy(img)).astype(int) - np.floor(luma * 255 + 0.5)
    assert np.abs(diff).max() <= 1         # float32 against float64 rounding, at a .5 boundary only
