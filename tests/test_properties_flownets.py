"""Property-based tests (hypothesis) of the flow networks and their loading: flownet/models/{inputs, srflownet,
liteflownet2, decflow, backbones, state_dict}.py, flownet/registry.py, flownet/plugins.py, flownet/paths.py and
flownet/devices.py.

Each property holds for every input hypothesis draws (the "suite" profile of tests/conftest.py: the same draws every
run). The networks are tiny configurations (a few thousand weights), so the file stays fast:

* input contract (inputs.py): ``update_count`` is ``iters or default`` and refuses a count below 1 naming it;
  ``rgb01_batch`` repeats grey to three equal channels, keeps float32 RGB as a view, and refuses other layouts;
* SRFlowNet, LiteFlowNet2 and DecFlow (any batch 1-3, any H, W the padding accepts): the final flow is
  (B, 2, H, W) and finite; in eval mode each pair's flow does not depend on the other pairs of the batch (instance /
  group normalisation and the correlation are per sample); a grey image gives the flow of its RGB repetition;
  SRFlowNet in training mode returns one flow per update, the last equal to the eval-mode flow;
* DecFlow (FacialFlowNet supplement Sec. 2.2): ``total == head + expression`` at every update; the affine head is
  an affine field (zero second differences); initialised from an SRFlowNet (``init_from_srflownet``) its head flow
  is 0 and its expression / total flow is that SRFlowNet's at every update; ``affine_project`` returns an affine
  field and its matrix unchanged, is idempotent, and leaves a residual orthogonal to x, y and 1;
* LiteFlowNet2 parts (``../shared/papers/liteflownet2.txt``): the cost volume is ``F1(x) . F2(x + d) / N`` (Eq. 2)
  worked pixel by pixel; the sparse one is the dense one of the sub-sampled maps (Sec. 3.1); warping by an integer
  flow is x(p + flow) sampled bilinearly with zeros outside, on maps of any size (Eq. 1); the f-lcon filters are
  exp(-D^2) normalised (Eq. 8) and f-lcon (Eq. 9) keeps a constant field constant and, with softmax
  filters, keeps every value within the field's range;
* weights files (state_dict.py, registry.py, decflow.py): save then load gives the same config and identical tensors
  (float16 files: the tensors rounded to float16); a state dict with a key renamed, dropped, reshaped, or a
  non-tensor is refused with ValueError naming the keys and their counts;
* registry: every listed name resolves by ``canonical_name``, written in any case with ``-`` / ``_`` anywhere;
  canonical names are fixed points; an unknown name is refused with the list; ``ptlflow:<name>`` keeps the name;
  ``backbone_name(build_backbone(n)) == n``; every shipped checkpoint resolves to a file and an unknown one is
  refused listing those shipped; precision and tta names are validated; ``mirror_average`` of a flow and its exact
  mirror image is the flow;
* plugins: ``module:attr`` specs split back into their parts and resolve (dotted attributes followed); malformed
  specs are refused naming the key and spec; ``call_factory`` passes only the arguments the factory names;
* paths / devices: ``$ICEGAN_SHARED_DATA`` wins, else ``<repo>/../shared/data`` for a checkout, else None (and
  ``shared_data_root`` raises FileNotFoundError); ``resolve_device`` maps cpu names to the CPU and refuses unknown
  names and absent GPUs naming the setting; ``host_values`` replaces each one-element tensor by its float.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flownet import paths
from flownet.devices import host_values, resolve_device
from flownet.models.decflow import DecFlow, DecFlowConfig, affine_project, load_decflow, save_decflow
from flownet.models.inputs import rgb01_batch, update_count
from flownet.models.liteflownet2 import (LiteFlowNet2, LiteFlowNet2Config, cost_volume, f_lcon, f_lcon_filters,
                                         sparse_cost_volume, warp)
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.models.state_dict import load_state_dict_strict
from flownet.plugins import _split, call_factory, load_factory
from flownet.registry import (BACKBONES, ESTIMATORS, PRECISIONS, SHIPPED_CHECKPOINTS, TTA_MODES, backbone_name,
                              build_backbone, canonical_name, load_weights, mirror_average, resolve_precision,
                              resolve_tta, resolve_weights, save_weights)


def _examples(suite: int) -> settings:
    """Fewer examples for a slow property: ``suite`` in the "suite" profile, 200 in "search"."""
    return settings(max_examples=suite if os.environ.get("HYPOTHESIS_PROFILE", "suite") == "suite" else 200)


#: a tiny SRFlowNet: 1/4 grid, one pyramid level of radius 1, 3x3 super kernels (min_size 8 px)
TINY_SR = dict(feature_layers=(8, 8, 8, 8, 8), context_layers=(8, 8, 8, 8, 16), hidden=8, corr_levels=1,
               corr_radius=1, motion_channels=8, super_kernel=3, small_kernel=1, flow_head_hidden=8, mask_hidden=8,
               iters=2, downsample=4, motion_corr_channels=8, motion_flow_channels=4, gru_kernel=3, ffn_expansion=1)
#: a tiny DecFlow (1/8 grid, as DecFlow needs; min_size 16 px)
TINY_DEC = {**TINY_SR, "downsample": 8}
#: a tiny LiteFlowNet2: four-channel NetC, NetE levels 6 to 5
TINY_LFN = dict(netc_channels=(4, 4, 4, 4, 4, 4), last_level=5)

_NETS: dict = {}


def _net(kind: str, **extra):
    """One randomly initialised (seed 0) tiny network per kind and settings, in eval mode, shared by the tests."""
    key = (kind, tuple(sorted(extra.items())))
    if key not in _NETS:
        torch.manual_seed(0)
        if kind == "srflownet":
            net = SRFlowNet(SRFlowNetConfig(**TINY_SR))
        elif kind == "liteflownet2":
            net = LiteFlowNet2(LiteFlowNet2Config(**TINY_LFN))
        else:
            net = DecFlow(DecFlowConfig(**TINY_DEC, **extra))
            # a head decoder that moves (its flow head starts at 1e-3 std): the affine property is then not trivial
            with torch.no_grad():
                net.head_update.flow_head.conv2.weight.normal_(std=0.3)
        _NETS[key] = net.eval()
    return _NETS[key]


def _final(kind: str, net, img1, img2):
    if kind == "liteflownet2":
        return net(img1, img2)
    if kind == "decflow":
        return net(img1, img2)["total"][-1]
    return net(img1, img2)[-1]


@st.composite
def image_pairs(draw, max_side: int = 40, max_batch: int = 3, channels=(1, 3)):
    """(img1, img2): two (B, C, H, W) float32 images in [0, 1], C in ``channels``, any H, W in 1..max_side."""
    b = draw(st.integers(1, max_batch))
    c = draw(st.sampled_from(channels))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g), torch.rand(b, c, h, w, generator=g)


# ------------------------------------------------------------------------------------------------ inputs.py


@given(st.one_of(st.none(), st.integers(-5, 50)), st.integers(-5, 50))
def test_update_count_is_iters_or_the_default_and_refuses_below_one(iters, default):
    want = iters or default
    if want >= 1:
        assert update_count(iters, default) == want
    else:
        with pytest.raises(ValueError, match="iters must be >= 1") as exc:
            update_count(iters, default)
        # the message names the value that was used: iters when given, else the config's
        assert (f"got {iters}" if iters else f"config.iters = {default}") in str(exc.value)


@given(st.integers(1, 3), st.sampled_from([1, 3]), st.integers(1, 9), st.integers(1, 9),
       st.sampled_from([torch.float32, torch.float64, torch.float16]))
def test_rgb01_batch_repeats_grey_and_keeps_float32_rgb_as_a_view(b, c, h, w, dtype):
    img = torch.rand(b, c, h, w).to(dtype)             # integer (0-255) frames are refused: test_flow_paper56.py
    out = rgb01_batch(img)
    assert out.shape == (b, 3, h, w) and out.dtype == torch.float32
    for k in range(3):
        assert torch.equal(out[:, k], img[:, 0 if c == 1 else k].float())
    if dtype == torch.float32:
        assert out.data_ptr() == img.data_ptr()    # a view: no copy of float32 input


@given(st.lists(st.integers(1, 4), min_size=0, max_size=6))
def test_rgb01_batch_refuses_what_is_not_b_1or3_h_w(shape):
    if len(shape) == 4 and shape[1] in (1, 3):
        shape[1] = 2
    with pytest.raises(ValueError, match=re.escape(f"got {tuple(shape)}")):
        rgb01_batch(torch.zeros(shape))


# --------------------------------------------------------------------------------------- the three networks

_KINDS = ["srflownet", "liteflownet2", "decflow"]


@_examples(12)
@given(st.sampled_from(_KINDS), image_pairs())
def test_the_final_flow_is_b_2_h_w_finite_and_each_pair_of_a_batch_on_its_own(kind, pair):
    img1, img2 = pair
    net = _net(kind)
    with torch.no_grad():
        flow = _final(kind, net, img1, img2)
        assert flow.shape == (img1.shape[0], 2, *img1.shape[-2:]) and flow.dtype == torch.float32
        assert torch.isfinite(flow).all()
        for i in range(img1.shape[0]):     # the kernels oneDNN picks depend on the batch size: float rounding
            alone = _final(kind, net, img1[i:i + 1], img2[i:i + 1])
            torch.testing.assert_close(alone, flow[i:i + 1], rtol=1e-4, atol=1e-4)


@_examples(10)
@given(st.sampled_from(_KINDS), image_pairs(max_batch=2, channels=(1,)))
def test_a_grey_pair_gives_the_flow_of_its_rgb_repetition(kind, pair):
    img1, img2 = pair
    net = _net(kind)
    with torch.no_grad():
        grey = _final(kind, net, img1, img2)
        rgb = _final(kind, net, img1.repeat(1, 3, 1, 1), img2.repeat(1, 3, 1, 1))
    assert torch.equal(grey, rgb)


@_examples(10)
@given(image_pairs(max_batch=2), st.integers(1, 3))
def test_srflownet_in_training_mode_gives_one_flow_per_update_ending_at_the_eval_flow(pair, iters):
    img1, img2 = pair
    net = _net("srflownet")
    with torch.no_grad():
        every = net(img1, img2, iters=iters, all_flows=True)
        final = net(img1, img2, iters=iters)
    assert len(every) == iters and len(final) == 1
    assert all(f.shape == (img1.shape[0], 2, *img1.shape[-2:]) for f in every)
    torch.testing.assert_close(every[-1], final[0], rtol=1e-5, atol=1e-5)


@_examples(10)
@given(image_pairs(max_side=24, channels=(1,)), st.integers(1, 3), st.sampled_from(["affine", "dense"]))
def test_decflow_total_is_head_plus_expression_at_every_update_and_the_affine_head_is_affine(pair, iters, head):
    img1, img2 = pair
    net = _net("decflow", head_model=head)
    with torch.no_grad():
        out = net(img1, img2, iters=iters)
    assert all(len(out[k]) == iters for k in ("head", "expression", "total"))
    for t, h_, e in zip(out["total"], out["head"], out["expression"]):
        assert torch.equal(t, h_ + e)
        assert t.shape == (img1.shape[0], 2, *img1.shape[-2:])
    if head == "affine":
        hf = out["head"][-1].double()
        tol = 1e-4 * (1 + hf.abs().max().item())
        if hf.shape[-1] >= 3:
            assert (hf[..., 2:] - 2 * hf[..., 1:-1] + hf[..., :-2]).abs().max() <= tol
        if hf.shape[-2] >= 3:
            assert (hf[..., 2:, :] - 2 * hf[..., 1:-1, :] + hf[..., :-2, :]).abs().max() <= tol
        if min(hf.shape[-2:]) >= 2:     # no x*y term either
            mixed = hf[..., 1:, 1:] - hf[..., 1:, :-1] - hf[..., :-1, 1:] + hf[..., :-1, :-1]
            assert mixed.abs().max() <= tol


@_examples(8)
@given(image_pairs(max_side=24, max_batch=2), st.integers(1, 3), st.sampled_from(["affine", "dense"]))
def test_decflow_initialised_from_srflownet_has_zero_head_flow_and_srflownets_flow(pair, iters, head):
    img1, img2 = pair
    torch.manual_seed(1)
    sr = SRFlowNet(SRFlowNetConfig(**TINY_DEC)).eval()
    dec = DecFlow(DecFlowConfig(**TINY_DEC, head_model=head)).init_from_srflownet(sr).eval()
    with torch.no_grad():
        want = sr(img1, img2, iters=iters, all_flows=True)
        out = dec(img1, img2, iters=iters)
    for k in range(iters):
        assert not out["head"][k].any()
        torch.testing.assert_close(out["expression"][k], want[k], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out["total"][k], want[k], rtol=1e-5, atol=1e-5)


@st.composite
def affine_fields(draw):
    """(flow, M): u = M[0] . (x, y, 1), v = M[1] . (x, y, 1) on a B x H x W grid, float64."""
    b, h, w = draw(st.integers(1, 3)), draw(st.integers(2, 12)), draw(st.integers(2, 12))
    coef = st.floats(-3, 3, allow_nan=False, width=32)
    m = torch.tensor(draw(st.lists(coef, min_size=6 * b, max_size=6 * b)), dtype=torch.float64).view(b, 2, 3)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    design = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)
    return (m @ design.T).view(b, 2, h, w), m


@given(affine_fields(), st.integers(0, 2 ** 31 - 1))
def test_affine_project_keeps_affine_fields_is_idempotent_and_leaves_an_orthogonal_residual(case, seed):
    flow, m = case
    fit, got = affine_project(flow)
    torch.testing.assert_close(fit, flow, rtol=0, atol=1e-9)
    torch.testing.assert_close(got, m, rtol=0, atol=1e-9)
    noisy = flow + torch.randn(flow.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    fit, _ = affine_project(noisy)
    again, _ = affine_project(fit)
    torch.testing.assert_close(again, fit, rtol=0, atol=1e-9)
    b, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    res = noisy - fit
    for basis in (xs, ys, torch.ones_like(xs)):      # the normal equations of the least-squares fit
        assert (res * basis).sum((-2, -1)).abs().max() <= 1e-8 * (1 + noisy.abs().sum())


@given(st.integers(1, 4), st.integers(1, 4), st.sampled_from([(3,), (2, 3), (1, 2, 3, 4)]))
def test_affine_project_refuses_what_is_not_a_2x2_or_larger_flow(h, w, lead):
    if h >= 2 and w >= 2:
        with pytest.raises(ValueError, match=r"flow must be \(B, 2, H, W\)"):
            affine_project(torch.zeros(*lead, h, w))
    else:
        with pytest.raises(ValueError, match=f"at least 2x2 pixels, got {h}x{w}"):
            affine_project(torch.zeros(1, 2, h, w))


# ------------------------------------------------------------------------------------- LiteFlowNet2's parts


@st.composite
def feature_pairs(draw, max_side: int = 7):
    b, n = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 31 - 1)))
    return torch.randn(b, n, h, w, generator=g, dtype=torch.float64), \
        torch.randn(b, n, h, w, generator=g, dtype=torch.float64)


@given(feature_pairs(), st.integers(0, 3))
def test_cost_volume_is_f1_dot_f2_shifted_over_n_worked_pixel_by_pixel(pair, r):
    f1, f2 = pair
    b, n, h, w = f1.shape
    cv = cost_volume(f1, f2, r)
    assert cv.shape == (b, (2 * r + 1) ** 2, h, w)
    want = torch.zeros_like(cv)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            ch = (dy + r) * (2 * r + 1) + (dx + r)
            for y in range(h):
                for x in range(w):
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        want[:, ch, y, x] = (f1[:, :, y, x] * f2[:, :, y + dy, x + dx]).sum(1) / n
    torch.testing.assert_close(cv, want, rtol=1e-12, atol=1e-12)


@given(feature_pairs(max_side=9), st.integers(1, 3), st.integers(0, 2))
def test_the_sparse_cost_volume_is_the_dense_one_on_every_stride_th_position_and_displacement(pair, s, rs):
    f1, f2 = pair
    r = rs * s
    sparse = sparse_cost_volume(f1, f2, r, s)
    dense = cost_volume(f1, f2, r)
    h, w = f1.shape[-2:]
    assert sparse.shape[-2:] == (-(-h // s), -(-w // s))
    # the dense volume's channels whose displacement is a multiple of s, at the positions that are multiples of s:
    # s (y + dy) < h exactly when y + dy < ceil(h / s), so the zero padding falls on the same entries
    k = 2 * r + 1
    keep = [(dy + r) * k + (dx + r) for dy in range(-r, r + 1, s) for dx in range(-r, r + 1, s)]
    torch.testing.assert_close(sparse, dense[:, keep, ::s, ::s], rtol=1e-12, atol=1e-12)


def _bilinear_zero_padded(x, px, py):
    """x (C, h, w) sampled at the real position (px, py), bilinearly from its 4 neighbours, zero outside the map."""
    import math
    c, h, w = x.shape
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(c, dtype=x.dtype)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * x[:, yy, xx]
    return out


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2 ** 31 - 1),
       st.sampled_from([1, 4, 0]))
def test_warping_samples_x_at_p_plus_flow_bilinearly_with_zeros_outside(b, c, h, w, seed, grid):
    """Eq. 1 worked pixel by pixel, on maps of any size (one pixel high or wide included); ``grid`` 1 draws whole-pixel
    flows (a shift), 4 quarter pixels, 0 any reals."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    flow = 6 * torch.rand(b, 2, h, w, generator=g, dtype=torch.float64) - 3
    if grid:
        flow = torch.round(flow * grid) / grid
    got = warp(x, flow)
    for i in range(b):
        for y in range(h):
            for xx in range(w):
                want = _bilinear_zero_padded(x[i], xx + flow[i, 0, y, xx].item(), y + flow[i, 1, y, xx].item())
                torch.testing.assert_close(got[i, :, y, xx], want, rtol=0, atol=1e-9)


def test_warping_a_one_pixel_high_or_wide_map_moves_it():
    """Regression (found by the property above): with ``align_corners=True`` every coordinate of a 1-pixel axis maps
    to that pixel, so ``warp`` ignored the motion along it (a 1 x W or H x 1 map came back unchanged), e.g. at
    LiteFlowNet2's level 6 for inputs of 32 px or fewer on a side."""
    x = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    down = torch.zeros(1, 2, 1, 3)
    down[:, 1] = 1.0                     # one row down: outside the map
    assert torch.equal(warp(x, down), torch.zeros_like(x))
    down[:, 1] = 0.5                     # half a row: half the value, the other half is the zero padding
    torch.testing.assert_close(warp(x, down), 0.5 * x)
    col = torch.tensor([[[[1.0], [2.0]]]])
    right = torch.zeros(1, 2, 2, 1)
    right[:, 0] = -0.25
    torch.testing.assert_close(warp(col, right), 0.75 * col)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 8), st.integers(1, 8), st.sampled_from([1, 3, 5]),
       st.floats(-50, 50), st.integers(0, 2 ** 31 - 1))
def test_f_lcon_keeps_a_constant_field_and_the_range_of_any_field(b, c, h, w, omega, value, seed):
    g = torch.Generator().manual_seed(seed)
    dist = 3 * torch.randn(b, omega * omega, h, w, generator=g, dtype=torch.float64)
    filt = f_lcon_filters(dist)
    e = torch.exp(-dist ** 2)                            # Eq. 8: exp(-D^2) normalised over the neighbourhood
    torch.testing.assert_close(filt, e / e.sum(1, keepdim=True), rtol=1e-9, atol=1e-12)
    const = torch.full((b, c, h, w), value, dtype=torch.float64)
    torch.testing.assert_close(f_lcon(const, filt), const, rtol=1e-12, atol=1e-12)
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    out = f_lcon(x, filt)
    lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    assert ((out >= lo - 1e-12) & (out <= hi + 1e-12)).all()


# ------------------------------------------------------------------------------------------- weights files


def _perturbed(net):
    """``net`` with every floating tensor of its state dict set to fresh random values (so a loader that keeps a
    freshly initialised tensor is caught)."""
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t))
    return net


@_examples(6)
@given(st.sampled_from(["srflownet", "liteflownet2", "decflow", "decflow-half"]), st.integers(0, 1000),
       st.dictionaries(st.text("abc", min_size=1, max_size=3), st.integers(-5, 5), max_size=3))
def test_save_then_load_gives_the_config_and_identical_tensors(kind, seed, meta):
    torch.manual_seed(seed)
    if kind == "srflownet":
        net = SRFlowNet(SRFlowNetConfig(**TINY_SR))
    elif kind == "liteflownet2":
        net = LiteFlowNet2(LiteFlowNet2Config(**TINY_LFN))
    else:
        net = DecFlow(DecFlowConfig(**TINY_DEC, head_model="dense"))
    _perturbed(net)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "w.pt"
        if kind.startswith("decflow"):
            save_decflow(net, p, meta=meta, half=kind.endswith("half"))
            back = load_decflow(p)
        else:
            save_weights(net, p, meta=meta)
            back = load_weights(p, expected=kind)
    assert type(back) is type(net) and back.config == net.config and back.meta == meta and not back.training
    got, want = back.state_dict(), net.state_dict()
    assert list(got) == list(want)
    for k, t in want.items():
        if kind == "decflow-half" and t.is_floating_point():
            t = t.half().float()             # float16 files: each value rounded once, loaded back as float32
        assert got[k].dtype == t.dtype and torch.equal(got[k], t), k


def _small_module():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 2, 1),
                               torch.nn.Linear(4, 5))


@given(st.data(), st.sampled_from(["rename", "drop", "reshape", "add"]))
def test_a_state_dict_that_does_not_match_is_refused_naming_the_keys(data, how):
    mod = _small_module()
    sd = {k: v.clone() for k, v in mod.state_dict().items()}
    keys = list(sd)
    chosen = data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=len(keys), unique=True))
    chosen = [k for k in keys if k in chosen]       # the module's order: the message names the first three
    if how == "rename":
        for k in chosen:
            sd["renamed." + k] = sd.pop(k)
        missing, extra, wrong = chosen, ["renamed." + k for k in chosen], []
    elif how == "drop":
        for k in chosen:
            del sd[k]
        missing, extra, wrong = chosen, [], []
    elif how == "add":
        chosen = [f"extra.{k}" for k in chosen]
        sd.update({k: torch.zeros(2) for k in chosen})
        missing, extra, wrong = [], chosen, []
    else:
        for k in chosen:
            sd[k] = torch.zeros(sd[k].numel() + 1)
        missing, extra, wrong = [], [], chosen
    before = {k: v.clone() for k, v in mod.state_dict().items()}
    with pytest.raises(ValueError) as exc:
        load_state_dict_strict(mod, sd, "SRC", "WHAT")
    msg = str(exc.value)
    assert msg.startswith("SRC: weights do not match WHAT")
    assert (f"missing {missing[:3]} ({len(missing)}), unexpected {extra[:3]} ({len(extra)}), "
            f"wrong shape {wrong[:3]} ({len(wrong)})") in msg
    assert all(torch.equal(before[k], v) for k, v in mod.state_dict().items())     # nothing was loaded


@given(st.data())
def test_a_matching_state_dict_loads_and_a_non_tensor_value_is_refused(data):
    mod = _small_module()
    sd = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in mod.state_dict().items()}
    load_state_dict_strict(mod, sd, "SRC")
    assert all(torch.equal(mod.state_dict()[k], v) for k, v in sd.items())
    k = data.draw(st.sampled_from(list(sd)))
    sd[k] = data.draw(st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=3), st.none()))
    with pytest.raises(ValueError, match="SRC: not a state dict of tensors"):
        load_state_dict_strict(mod, sd, "SRC")
    with pytest.raises(ValueError, match="SRC: not a state dict of tensors"):
        load_state_dict_strict(mod, list(sd.values()), "SRC")


# ------------------------------------------------------------------------------------------------ registry

_CANONICAL = {"srflownet": "srflownet", "liteflownet2": "liteflownet2", "lfn2": "liteflownet2",
              "raft_small": "raft_small", "raft_large": "raft_large", "tvl1": "tvl1", "farneback": "farneback",
              "custom": "custom"}


@st.composite
def spellings(draw, word: str) -> str:
    """``word`` with each letter in either case, its underscores dropped, and '-' / '_' inserted anywhere,
    surrounded by blanks."""
    out = []
    for ch in word.replace("_", ""):
        out.append(ch.upper() if draw(st.booleans()) else ch)
        out.append(draw(st.sampled_from(["", "", "-", "_"])))
    return draw(st.sampled_from(["", " "])) + "".join(out) + draw(st.sampled_from(["", " ", "\t"]))


@given(st.data(), st.sampled_from(sorted(_CANONICAL)))
def test_every_listed_name_resolves_however_it_is_written(data, word):
    n = canonical_name(data.draw(spellings(word)))
    assert n == _CANONICAL[word]
    assert canonical_name(n) == n
    listed = [e for e in ESTIMATORS if not e.startswith("ptlflow:")]
    assert n in listed and all(canonical_name(e) == e for e in listed)


@given(st.text(min_size=0, max_size=12))
def test_an_unknown_name_is_refused_with_the_list(name):
    key = name.strip().lower().replace("-", "").replace("_", "")
    if name.strip().lower().startswith("ptlflow:") or key in {w.replace("_", "") for w in _CANONICAL}:
        return
    with pytest.raises(ValueError) as exc:
        canonical_name(name)
    assert str(exc.value) == f"unknown flow estimator '{name}'; choose one of {list(ESTIMATORS)}"


@given(st.sampled_from(["ptlflow", "PTLflow", "PtlFlow"]),
       st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1, max_size=10))
def test_ptlflow_names_keep_the_model_name(prefix, sub):
    assert canonical_name(f"{prefix}:{sub}") == f"ptlflow:{sub}"
    assert canonical_name(f"{prefix}: {sub} ") == f"ptlflow:{sub}"
    with pytest.raises(ValueError, match="give the ptlflow model after the colon"):
        canonical_name(f"{prefix}: ")


def test_backbone_name_of_every_built_backbone_is_its_name():
    for n in BACKBONES:
        cfg = TINY_SR if n == "srflownet" else TINY_LFN if n == "liteflownet2" else None
        assert backbone_name(build_backbone(n, cfg)) == n
    with pytest.raises(ValueError, match="Linear is not a registry backbone"):
        backbone_name(torch.nn.Linear(1, 1))


@given(st.sampled_from(sorted(SHIPPED_CHECKPOINTS)), st.data())
def test_every_shipped_checkpoint_resolves_to_a_file_and_an_unknown_one_lists_them(backbone, data):
    ckpts = SHIPPED_CHECKPOINTS[backbone]
    for name, file in ckpts.items():
        p = resolve_weights(f"shipped:{name}", backbone)
        assert p.name == file and p.is_file()
    assert resolve_weights(None, backbone) == resolve_weights("shipped:facial", backbone)
    other = data.draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(lambda s: s not in ckpts))
    with pytest.raises(ValueError) as exc:
        resolve_weights(f"shipped:{other}", backbone)
    assert str(exc.value) == (f"shipped:{other}: '{backbone}' ships the checkpoints "
                              f"{', '.join('shipped:' + k for k in ckpts)}, not '{other}'")
    path = data.draw(st.text("abc/._", min_size=1, max_size=10).filter(lambda s: not s.startswith("shipped:")))
    assert resolve_weights(path, backbone) == Path(path)


@given(st.text(max_size=6))
def test_precision_and_tta_names_are_validated(name):
    if name.lower() in PRECISIONS:
        assert resolve_precision(name, "cpu", warn=False) in ("fp32", "bf16")
    else:
        with pytest.raises(ValueError, match=re.escape(f"precision must be one of {list(PRECISIONS)}")):
            resolve_precision(name, "cpu")
    if name in TTA_MODES:
        assert resolve_tta(name) == name
    else:
        with pytest.raises(ValueError, match=re.escape(f"must be one of {list(TTA_MODES)}, got {name!r}")):
            resolve_tta(name)


@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2 ** 31 - 1))
def test_mirror_average_of_a_flow_and_its_exact_mirror_image_is_the_flow(b, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    flow = torch.randn(b, 2, h, w, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mirror_average(flow, _mirror(flow)), flow, rtol=0, atol=1e-12)
    other = torch.randn(b, 2, h, w, generator=g, dtype=torch.float64)
    # the mirrored pair's roles swapped: (a + M(b)) / 2 == (M(b) + M(M(a))) / 2, M being its own inverse
    torch.testing.assert_close(mirror_average(flow, other), mirror_average(_mirror(other), _mirror(flow)),
                               rtol=0, atol=1e-12)


def _mirror(flow):
    """The flow mirrored left-right: pixels flipped along x, u negated."""
    return torch.cat([-flow[:, :1], flow[:, 1:]], 1).flip(-1)


# ------------------------------------------------------------------------------------------------- plugins

_ident = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)


@given(st.lists(_ident, min_size=1, max_size=3), st.lists(_ident, min_size=1, max_size=3),
       st.sampled_from(["", ".py", "dir/", "C:/x/"]))
def test_a_spec_splits_back_into_its_module_and_attribute(mod, attr, kind):
    target = (kind + "/".join(mod) + ".py") if kind and kind != ".py" else ".".join(mod) + kind
    spec = f"{target}:{'.'.join(attr)}"
    assert _split(spec, "k") == (target, ".".join(attr))


@given(st.sampled_from(["", ":", "a:", ":b", "a", "a:b-c", "a:1b", "a:b c", "a.b", "x.py", "a:b:", "a:b:c-d"]),
       st.sampled_from(["module", "model.module", "flow.module"]))
def test_a_malformed_spec_is_refused_naming_the_key_and_spec(spec, key):
    with pytest.raises(ValueError) as exc:
        load_factory(spec, key)
    assert str(exc.value).startswith(f"{key}={spec!r}: expected 'package.module:factory'")


@given(st.sampled_from(["canonical_name.", ".canonical_name", "canonical_name..x", "no_such", "ESTIMATORS"]),
       st.sampled_from(["module", "flow.module"]))
def test_a_spec_naming_no_callable_is_refused_naming_the_key_and_spec(attr, key):
    # an empty part of a dotted attribute ("f.", ".f") passes the syntax check (dots read as "_"), and is refused
    # once the module is imported, as an attribute the module does not have: the same ValueError naming key and spec
    spec = f"flownet.registry:{attr}"
    with pytest.raises(ValueError) as exc:
        load_factory(spec, key)
    assert str(exc.value).startswith(f"{key}={spec!r}: ")
    assert (f"'{attr}' is a tuple, not a class or function" if attr == "ESTIMATORS"
            else f"flownet.registry has no attribute {attr!r}") in str(exc.value)


@given(st.sampled_from([("flownet.models.srflownet:SRFlowNetConfig.face", SRFlowNetConfig.face),
                        ("flownet.registry:canonical_name", canonical_name),
                        ("flownet.models.liteflownet2:LiteFlowNet2", LiteFlowNet2)]))
def test_a_spec_resolves_to_its_callable_following_dotted_attributes(case):
    spec, want = case
    assert load_factory(spec) == want


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(), max_size=4))
def test_call_factory_passes_only_the_arguments_the_factory_names(offered):
    def two(a=1, b=2):
        return {"a": a, "b": b}

    def anything(**kw):
        return kw

    assert call_factory(two, offered, "s") == {"a": offered.get("a", 1), "b": offered.get("b", 2)}
    assert call_factory(anything, offered, "s") == offered


# --------------------------------------------------------------------------------------- paths and devices


@given(st.one_of(st.none(), st.just(""), st.text("abc/_.", min_size=1, max_size=10)), st.booleans(),
       st.booleans())
def test_the_shared_data_root_is_the_variable_else_beside_a_checkout_else_none(env, checkout, repo_none):
    old = os.environ.pop("ICEGAN_SHARED_DATA", None)
    try:
        if env is not None:
            os.environ["ICEGAN_SHARED_DATA"] = env
        with tempfile.TemporaryDirectory() as d:
            repo = Path(d) / "repo"
            repo.mkdir()
            if checkout:
                (repo / "pyproject.toml").write_text("")
            arg = None if repo_none else repo
            got = paths.shared_data_root_or_none(arg)
            if env:
                want = Path(env)
            elif checkout and not repo_none:
                want = repo.parent / "shared" / "data"
            else:
                want = None
            assert got == want
            if want is None:
                with pytest.raises(FileNotFoundError, match="ICEGAN_SHARED_DATA is not set"):
                    paths.shared_data_root(arg)
            else:
                assert paths.shared_data_root(arg) == want
    finally:
        os.environ.pop("ICEGAN_SHARED_DATA", None)
        if old is not None:
            os.environ["ICEGAN_SHARED_DATA"] = old


@given(st.sampled_from(["device", "train.device", "--device"]),
       st.one_of(st.sampled_from(["cpu", torch.device("cpu")]),
                 st.from_regex(r"[a-z]{3,8}", fullmatch=True), st.integers(0, 99).map(lambda i: f"cuda:{i}")))
def test_resolve_device_maps_cpu_names_and_refuses_what_is_absent_naming_the_setting(key, device):
    name = str(device)
    if name == "cpu":
        assert resolve_device(device, key) == torch.device("cpu")
        return
    ok_types = {"cpu", "cuda", "mps"}
    try:
        torch.device(name)
        known = True
    except (RuntimeError, TypeError):
        known = False
    usable = (name.startswith("cuda") and torch.cuda.is_available()
              and (":" not in name or int(name.split(":")[1]) < torch.cuda.device_count()))
    mps = name == "mps" and torch.backends.mps.is_available()
    if known and torch.device(name).type in ok_types and (usable or mps):
        assert resolve_device(device, key) == torch.device(name)
        return
    with pytest.raises(ValueError) as exc:
        resolve_device(device, key)
    assert str(exc.value).startswith(f"{key}={device!r}")


@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=4),
                       st.one_of(st.floats(-1e6, 1e6, width=32), st.integers(-5, 5), st.text(max_size=2), st.none(),
                                 st.floats(-1e6, 1e6, width=32).map(lambda v: torch.tensor(v)),
                                 st.floats(-1e6, 1e6).map(lambda v: torch.tensor([[v]], dtype=torch.float64))),
                       max_size=6))
def test_host_values_replace_each_one_element_tensor_by_its_float(values):
    got = host_values(values)
    assert list(got) == list(values)
    for k, v in values.items():
        if torch.is_tensor(v):
            assert isinstance(got[k], float) and got[k] == float(v)
        else:
            assert got[k] is v
