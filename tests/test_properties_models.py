"""Property-based tests (hypothesis) of the ICE-GAN networks, the recognizers and the GAN losses.

Capsules (icegan/models/capsules.py; ``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Sec. III-B, Eq. 5, and
the CapsNet of Sabour et al. 2017 that it cites as [13]):

* squash keeps the direction of s and maps its length r to r²/(1+r²) < 1 exactly (zero stays zero);
* dynamic routing: the coupling coefficients c_ij = softmax_j(b_ij) are ≥ 0 and sum to 1 over the output capsules;
  one iteration is v_j = squash(Σ_i û_{j|i} / N_out) (b = 0, uniform c); two are c_ij = softmax_j(û_{j|i}·v_j⁽¹⁾),
  v_j = squash(Σ_i c_ij û_{j|i}) (the agreement update b_ij += û_{j|i}·v_j); permuting the input capsules changes
  nothing, permuting the output capsules permutes v and c; invalid inputs raise ValueError;
* PrimaryCaps: (B, n_caps·H'·W', dim), H' = (H − k)//s + 1, type-major rows equal to the squashed conv channels;
  RoutingCaps (AdvCaps / ExpCaps): (B, n_out, out_dim), lengths < 1, equal to routing the predictions
  û_{j|i} = W_{t(i),j} u_i of type-major inputs, each sample routed on its own;
* margin loss (Eq. 5) equals its formula, is ≥ 0, is 0 when the target capsule is ≥ m⁺ and the others ≤ m⁻, and
  integer targets equal their one-hot rows.

GRM and generator (icegan/models/grm.py, generator.py; Sec. III-A, Eq. 1-3): shape preserving for any B, H, W; the
factored computation equals the reference DenseGCNConv path; Â is symmetric with spectral radius ≤ 1; a sample's
output does not depend on the other samples of the batch; forward = decode(encode); integer class ids = one-hot;
the output lies in [-1, 1]; warp_backward with zero flow is the identity and with a constant integer flow is the
border-replicating shift of icegan.recognition.shift_features; SubpixelConvTranspose2d = nn.ConvTranspose2d.

Recognizers (icegan/models/recognizers.py): STSTNet and Off-TANet give finite (B, K) / (B, G, K) logits, a sample's
eval-mode logits do not depend on the rest of the batch, copy g only reads x[:, g], STSTNet's shared-input fast path
equals its grouped path, conv_maxpool (and its hand-written backward) equals max_pool2d(conv2d) for any chunk, in
training a copy's outputs on its own samples do not depend on the samples its mask leaves out, MaskedBatchNorm2d is
nn.BatchNorm2d over each copy's own samples (a copy without samples keeps its running statistics), GroupedLinear is
one linear layer per copy, scale_gradient is the identity forward and scales the gradient (Ganin & Lempitsky 2015,
Eq. 6-7), and fast_dropout keeps or zeroes each element with the inverted scale 256 / (256 − 256 p) (1 / (1 − p) for
a p off the 1/256 grid).

GAN losses (icegan/gan/losses.py, Eq. 4-7): the BCE formulas, non-negativity, ≈ 0 at the optimum, 2 ln 2 / ln 2 at
lengths 0.5, L_D(f, flip(f)) = 2 L_G(f), L_cls and L_ip as sums of their terms, the diversity hinge in [0, 1].
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from icegan.gan.losses import (adversarial_d_loss, adversarial_g_loss, classification_loss, diversity_hinge,
                               identity_preserving_loss)
from icegan.models.capsules import PrimaryCaps, RoutingCaps, dynamic_routing, margin_loss, squash
from icegan.models.generator import Generator, SubpixelConvTranspose2d, one_hot_classes, warp_backward
from icegan.models.grm import GraphReasoningModule
from icegan.models.recognizers import (GroupedLinear, MaskedBatchNorm2d, OffTANet, STSTNet, conv_maxpool, fast_dropout,
                                       scale_gradient)
from icegan.recognition import shift_features

SEEDS = st.integers(0, 2 ** 31 - 1)
#: the search profile draws many examples; a slow (network) property keeps at least 200 there, a few in the suite
SEARCH = settings.default.max_examples > 100


def _few(n: int) -> int:
    return 200 if SEARCH else n


def _randn(seed: int, *shape, scale: float = 1.0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=dtype)


@st.composite
def capsule_tensors(draw):
    """(s, dim): a float64 tensor of 1-4 axes with entries in [-30, 30] (exact zeros included) and a capsule axis."""
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    n = int(np.prod(shape))
    vals = draw(st.lists(st.one_of(st.just(0.0), st.floats(-30, 30, allow_nan=False)), min_size=n, max_size=n))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return torch.tensor(vals, dtype=torch.float64).reshape(shape), dim


# --------------------------------------------------------------------------------------------- capsules


@given(capsule_tensors())
def test_squash_keeps_the_direction_and_maps_length_r_to_r2_over_1_plus_r2(case):
    s, dim = case
    v = squash(s, dim=dim)
    assert v.shape == s.shape
    r = s.norm(dim=dim, keepdim=True)
    # eps = 1e-8 under the square root changes the length by at most eps/2 in absolute terms
    assert torch.allclose(v.norm(dim=dim, keepdim=True), r * r / (1 + r * r), rtol=1e-9, atol=1e-8)
    assert bool((v.norm(dim=dim) < 1).all())
    # same direction: v is a non-negative multiple of s (and zero where s is zero)
    assert torch.allclose(v * r, s * v.norm(dim=dim, keepdim=True), rtol=1e-9, atol=1e-9)
    assert bool(((v * s).sum(dim=dim) >= 0).all())
    assert bool((v[(s == 0).all(dim=dim, keepdim=True).expand_as(s)] == 0).all())


@st.composite
def routing_inputs(draw):
    b, n_in, n_out, d = (draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 4)),
                         draw(st.integers(1, 5)))
    scale = draw(st.sampled_from([0.01, 0.3, 1.0, 5.0]))
    return _randn(draw(SEEDS), b, n_in, n_out, d, scale=scale), draw(st.integers(1, 4))


@given(routing_inputs())
def test_routing_couplings_sum_to_one_and_outputs_are_squashed(case):
    u_hat, iters = case
    b, n_in, n_out, d = u_hat.shape
    v, c = dynamic_routing(u_hat, iters)
    assert v.shape == (b, n_out, d) and c.shape == (b, n_in, n_out)
    assert bool((c >= 0).all())
    assert torch.allclose(c.sum(dim=2), torch.ones(b, n_in, dtype=c.dtype), atol=1e-12)
    assert bool((v.norm(dim=-1) < 1).all())


@given(routing_inputs())
def test_one_routing_iteration_is_the_squashed_mean_prediction(case):
    u_hat, _ = case
    n_out = u_hat.shape[2]
    v, c = dynamic_routing(u_hat, 1)
    assert torch.allclose(c, torch.full_like(c, 1.0 / n_out), atol=1e-15)
    assert torch.allclose(v, squash(u_hat.sum(dim=1) / n_out), atol=1e-12)


@given(routing_inputs())
def test_two_routing_iterations_follow_the_agreement_update(case):
    u_hat, _ = case
    v1, _ = dynamic_routing(u_hat, 1)
    b_logits = (u_hat * v1.unsqueeze(1)).sum(-1)                  # b_ij = û_{j|i} · v_j after the first round
    c_want = torch.softmax(b_logits, dim=2)
    v, c = dynamic_routing(u_hat, 2)
    assert torch.allclose(c, c_want, atol=1e-12)
    assert torch.allclose(v, squash((c_want.unsqueeze(-1) * u_hat).sum(1)), atol=1e-12)


@given(routing_inputs(), st.randoms(use_true_random=False))
def test_routing_is_symmetric_in_inputs_and_equivariant_in_outputs(case, rnd):
    u_hat, iters = case
    n_in, n_out = u_hat.shape[1:3]
    pi, po = list(range(n_in)), list(range(n_out))
    rnd.shuffle(pi)
    rnd.shuffle(po)
    v, c = dynamic_routing(u_hat, iters)
    v2, c2 = dynamic_routing(u_hat[:, pi][:, :, po], iters)
    assert torch.allclose(v2, v[:, po], atol=1e-10)
    assert torch.allclose(c2, c[:, pi][:, :, po], atol=1e-10)
    # each sample is routed on its own
    v1, c1 = dynamic_routing(u_hat[-1:], iters)
    assert torch.allclose(v1, v[-1:], atol=1e-12) and torch.allclose(c1, c[-1:], atol=1e-12)


@given(st.integers(-3, 0), st.integers(0, 5).filter(lambda k: k != 4))
def test_routing_rejects_bad_iterations_and_shapes(iters, ndim):
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        dynamic_routing(torch.zeros(1, 2, 2, 2), iters)
    with pytest.raises(ValueError, match="u_hat must be"):
        dynamic_routing(torch.zeros((2,) * ndim), 3)


@settings(max_examples=_few(30))
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 2),
       st.integers(3, 9), st.integers(3, 9), st.integers(1, 3), SEEDS)
def test_primary_caps_shape_and_type_major_rows(b, cin, n_caps, kernel, stride, h, w, dim, seed):
    if h < kernel or w < kernel:
        h, w = h + kernel, w + kernel
    torch.manual_seed(seed % 1000)
    layer = PrimaryCaps(cin, n_caps, dim, kernel_size=kernel, stride=stride).double()
    x = _randn(seed, b, cin, h, w)
    u = layer(x)
    hp, wp = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    assert u.shape == (b, n_caps * hp * wp, dim)
    assert bool((u.norm(dim=-1) < 1).all())
    conv = layer.conv(x)                                              # (B, n_caps·dim, H', W')
    for t in range(n_caps):
        for p in range(hp * wp):
            want = squash(conv[:, t * dim:(t + 1) * dim, p // wp, p % wp])
            assert torch.allclose(u[:, t * hp * wp + p], want, atol=1e-12)


@settings(max_examples=_few(30))
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4),
       st.integers(1, 4), st.integers(1, 3), SEEDS)
def test_routing_caps_shape_lengths_and_batch_independence(b, n_types, positions, in_dim, n_out, out_dim, iters,
                                                           seed):
    torch.manual_seed(seed % 1000)
    layer = RoutingCaps(n_types, in_dim, n_out, out_dim, iters).double()
    u = _randn(seed, b, n_types * positions, in_dim)
    v = layer(u)
    assert v.shape == (b, n_out, out_dim)
    # û_{j|i} = W_{t(i), j} u_i with t(i) = i // positions (type-major inputs), then routing by agreement
    u_hat = torch.stack([torch.einsum("jod,bd->bjo", layer.weight[i // positions], u[:, i])
                         for i in range(n_types * positions)], dim=1)
    assert torch.allclose(v, dynamic_routing(u_hat, iters)[0], atol=1e-12)
    assert bool((v.norm(dim=-1) < 1).all())
    c = layer.last_coupling
    assert c.shape == (b, n_types * positions, n_out)
    assert torch.allclose(c.sum(-1), torch.ones_like(c.sum(-1)), atol=1e-12)
    for i in range(b):
        assert torch.allclose(layer(u[i:i + 1]), v[i:i + 1], atol=1e-12)
    if n_types > 1:
        with pytest.raises(ValueError, match="not a multiple"):
            layer(_randn(seed, b, n_types * positions + 1, in_dim))


@st.composite
def lengths_targets(draw):
    b, k = draw(st.integers(1, 5)), draw(st.integers(2, 5))
    vals = st.floats(0.0, 0.999)
    lengths = torch.tensor(draw(st.lists(st.lists(vals, min_size=k, max_size=k), min_size=b, max_size=b)),
                           dtype=torch.float64)
    target = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=b, max_size=b)))
    return lengths, target


@given(lengths_targets(), st.floats(0.5, 1.0), st.floats(0.0, 0.4), st.floats(0.0, 1.0))
def test_margin_loss_is_eq5(case, m_pos, m_neg, lam):
    lengths, target = case
    b, k = lengths.shape
    want = 0.0
    for i in range(b):
        for j in range(k):
            ln = float(lengths[i, j])
            want += max(0.0, m_pos - ln) ** 2 if j == int(target[i]) else lam * max(0.0, ln - m_neg) ** 2
    got = margin_loss(lengths, target, m_pos, m_neg, lam)
    assert float(got) == pytest.approx(want / b, abs=1e-12)
    assert float(got) >= 0
    onehot = F.one_hot(target, k).double()
    assert float(margin_loss(lengths, onehot, m_pos, m_neg, lam)) == pytest.approx(float(got), abs=1e-14)
    # zero at the optimum: the target capsule at least m⁺ long, every other at most m⁻
    best = torch.where(onehot.bool(), torch.full_like(lengths, m_pos), lengths.clamp(max=m_neg))
    assert float(margin_loss(best, target, m_pos, m_neg, lam)) == 0.0


def test_margin_loss_rejects_mismatched_targets():
    with pytest.raises(ValueError, match="2 targets for 3 samples"):
        margin_loss(torch.zeros(3, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="does not match lengths"):
        margin_loss(torch.zeros(3, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="lengths must be"):
        margin_loss(torch.zeros(3), torch.zeros(3, dtype=torch.long))


# --------------------------------------------------------------------------------------------- GRM, generator


@settings(max_examples=_few(30))
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), SEEDS)
def test_grm_factored_equals_reference_and_samples_are_independent(b, c, nodes, h, w, seed):
    torch.manual_seed(seed % 1000)
    grm = GraphReasoningModule(c, nodes).double().eval()
    f = _randn(seed, b, c, h, w)
    g = grm(f)
    assert g.shape == f.shape
    grm.factored = False
    assert torch.allclose(grm(f), g, atol=1e-10)
    grm.factored = True
    for i in range(b):
        assert torch.allclose(grm(f[i:i + 1]), g[i:i + 1], atol=1e-10)
    a = grm.normalized_adjacency()
    assert torch.allclose(a, a.t(), atol=1e-14)
    assert float(torch.linalg.eigvalsh(a.detach()).abs().max()) <= 1 + 1e-10
    with pytest.raises(ValueError, match="GraphReasoningModule expects"):
        grm(_randn(seed, b, c + 1, h, w))


@st.composite
def generator_setups(draw):
    return dict(skip=draw(st.sampled_from(["grm", "plain", "se"])), residual=draw(st.booleans()),
                motion=draw(st.booleans()), b=draw(st.integers(1, 3)), seed=draw(SEEDS))


_GEN_CACHE: dict = {}


def _generator(skip, residual, motion):
    key = (skip, residual, motion)
    if key not in _GEN_CACHE:
        torch.manual_seed(0)
        g = Generator(img_size=16, z_dim=4, n_classes=3, id_dim=8, base_channels=4, max_channels=8, grm_nodes=2,
                      skip=skip, residual_output=residual, motion_head=motion).double().eval()
        if motion:
            g.set_motion_prior(_randn(1, 3, 2, 16, 16, scale=1.5))
            with torch.no_grad():     # a decoder that moves pixels visibly (the default init is near zero)
                for p in g.decoder[-1].parameters():
                    p.normal_(0, 0.3)
        _GEN_CACHE[key] = g
    return _GEN_CACHE[key]


@settings(max_examples=_few(30))
@given(generator_setups())
def test_generator_shapes_range_batch_independence_and_encode_decode(s):
    g = _generator(s["skip"], s["residual"], s["motion"])
    b, seed = s["b"], s["seed"]
    onset = torch.tanh(_randn(seed, b, 1, 16, 16))
    z = _randn(seed + 1, b, 4)
    c = torch.randint(0, 3, (b,), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = g(onset, z, c)
        assert out.shape == (b, 1, 16, 16)
        assert bool(torch.isfinite(out).all()) and bool((out.abs() <= 1).all())
        for i in range(b):
            assert torch.allclose(g(onset[i:i + 1], z[i:i + 1], c[i:i + 1]), out[i:i + 1], atol=1e-10)
        assert torch.allclose(g.decode(onset, *g.encode(onset), z, c), out, atol=1e-12)
        assert torch.allclose(g(onset, z, F.one_hot(c, 3).double()), out, atol=1e-12)
        assert torch.allclose(g.embed(onset), g.encode(onset)[0], atol=1e-12)


@given(st.integers(1, 4), st.integers(2, 5), st.integers(-3, 8))
def test_one_hot_classes_rejects_ids_out_of_range(b, k, bad):
    ids = torch.zeros(b, dtype=torch.long)
    assert torch.equal(one_hot_classes(ids, k, b, "cpu", torch.float32), F.one_hot(ids, k).float())
    if 0 <= bad < k:
        return
    ids[-1] = bad
    with pytest.raises(ValueError, match=rf"class ids must be in \[0, {k}\)"):
        one_hot_classes(ids, k, b, "cpu", torch.float32)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9), st.integers(2, 9), st.integers(-4, 4),
       st.integers(-4, 4), SEEDS)
def test_warp_backward_zero_flow_is_identity_and_integer_flow_is_the_replicating_shift(b, ch, h, w, du, dv, seed):
    img = _randn(seed, b, ch, h, w)
    zero = torch.zeros(b, 2, h, w, dtype=img.dtype)
    assert torch.allclose(warp_backward(img, zero), img, atol=1e-12)
    flow = zero.clone()
    flow[:, 0], flow[:, 1] = du, dv
    shifted = shift_features(img, torch.full((b,), dv), torch.full((b,), du))
    # out(y) = img(y − flow): the content moves by +flow (right/down), the border is replicated
    assert torch.allclose(warp_backward(img, flow), shifted, atol=1e-9)


@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), SEEDS)
def test_subpixel_transposed_convolution_equals_conv_transpose2d(b, cin, cout, h, w, seed):
    torch.manual_seed(seed % 1000)
    layer = SubpixelConvTranspose2d(cin, cout).double()
    x = _randn(seed, b, cin, h, w)
    want = torch.nn.functional.conv_transpose2d(x, layer.weight, layer.bias, stride=2, padding=1)
    assert want.shape == (b, cout, 2 * h, 2 * w)
    assert torch.allclose(layer(x), want, atol=1e-12)


# --------------------------------------------------------------------------------------------- recognizers


@settings(max_examples=_few(25))
@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([8, 11, 14]), st.integers(1, 2), st.integers(0, 2),
       st.sampled_from([1, 2]), SEEDS)
def test_ststnet_logits_batch_and_copy_independence(b, g, size, width, domains, padding, seed):
    torch.manual_seed(seed % 1000)
    net = STSTNet(num_classes=3, input_size=size, n_models=g, width=width, domains=domains, padding=padding).double()
    with torch.no_grad():         # non-trivial running statistics
        for bn in net.bns:
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2)
        if domains:
            net.domain_running_mean.normal_()
            net.domain_running_var.uniform_(0.5, 2)
    net.eval()
    x = _randn(seed, b, 3, size, size)
    kw = {"domain": torch.arange(b) % domains} if domains else {}
    with torch.no_grad():
        y = net(x, **kw)
        assert y.shape == ((b, 3) if g == 1 else (b, g, 3)) and bool(torch.isfinite(y).all())
        for i in range(b):
            kwi = {"domain": kw["domain"][i:i + 1]} if domains else {}
            assert torch.allclose(net(x[i:i + 1], **kwi), y[i:i + 1], atol=1e-10)
        # the shared-input fast path (one dense conv, chunked pooling) equals the grouped path
        xg = x[:, None].expand(b, g, 3, size, size).contiguous()
        yg = net(xg, **kw)
        assert torch.allclose(yg, y if g > 1 else y[:, None], atol=1e-10)
        if g > 1:   # copy 0 reads x[:, 0] only
            other = xg.clone()
            other[:, 1:] = _randn(seed + 1, b, g - 1, 3, size, size)
            assert torch.allclose(net(other, **kw)[:, 0], yg[:, 0], atol=1e-10)


@settings(max_examples=_few(20))
@given(st.integers(2, 4), st.integers(1, 3), SEEDS)
def test_ststnet_training_statistics_ignore_masked_out_samples(b, g, seed):
    torch.manual_seed(seed % 1000)
    net = STSTNet(num_classes=3, input_size=8, n_models=g, dropout=0.0).double().train()
    x = _randn(seed, b, 3, 8, 8)
    mask = torch.ones(b, g)
    mask[-1, 0] = 0                                   # copy 0 does not train on the last sample
    y = net(x, sample_mask=mask)
    x2 = x.clone()
    x2[-1] = _randn(seed + 1, 3, 8, 8)
    y2 = net(x2, sample_mask=mask)
    y, y2 = (y, y2) if g > 1 else (y[:, None], y2[:, None])
    assert torch.allclose(y2[:-1, 0], y[:-1, 0], atol=1e-10)
    if g > 1:   # the copies that train on it do see it
        assert not torch.allclose(y2[:-1, 1], y[:-1, 1], atol=1e-10)


@settings(max_examples=_few(20))
@given(st.integers(1, 3), st.integers(1, 2), st.sampled_from([(8, 1), (16, 1), (16, 2)]), SEEDS)
def test_offtanet_logits_batch_and_copy_independence(b, g, size_stride, seed):
    size, stride = size_stride
    torch.manual_seed(seed % 1000)
    net = OffTANet(num_classes=3, input_size=size, stem_stride=stride, n_models=g).double()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2)
    net.eval()
    x = _randn(seed, b, 3, size, size)
    with torch.no_grad():
        y = net(x)
        assert y.shape == ((b, 3) if g == 1 else (b, g, 3)) and bool(torch.isfinite(y).all())
        for i in range(b):
            assert torch.allclose(net(x[i:i + 1]), y[i:i + 1], atol=1e-10)
        if g > 1:
            xg = x[:, None].expand(b, g, 3, size, size).contiguous()
            assert torch.allclose(net(xg), y, atol=1e-10)
            xg[:, 1] = _randn(seed + 1, b, 3, size, size)
            assert torch.allclose(net(xg)[:, 0], y[:, 0], atol=1e-10)


@settings(max_examples=_few(30))
@given(st.integers(1, 5), st.integers(1, 3), st.integers(1, 4), st.integers(3, 9), st.integers(0, 1),
       st.integers(1, 5), SEEDS)
def test_conv_maxpool_equals_the_plain_expression_for_any_chunk(b, cin, cout, side, padding, chunk, seed):
    x = _randn(seed, b, cin, side, side)
    w = _randn(seed + 1, cout, cin, 3, 3)
    bias = _randn(seed + 2, cout)
    if side + 2 * padding - 2 < 2:
        side = 4
        x = _randn(seed, b, cin, side, side)
    want = F.max_pool2d(F.conv2d(x, w, bias, padding=padding), 3, 3, 1)
    # not bit-identical as the docstring says: the chunks are convolved channels-last, and oneDNN sums a
    # channels-last convolution in another order (1 ulp apart, e.g. b=1, cin=2, side=3, padding=0, seed=1)
    got = conv_maxpool(x, w, bias, padding=padding, chunk=chunk)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    # the weight and bias gradients (from the argmax positions alone when x needs none; through oneDNN's convolution
    # backward when it does) equal autograd's through the plain expression
    up = _randn(seed + 3, *want.shape)
    for x_grad in (False, True):
        xs = x.clone().requires_grad_(x_grad)
        wa, ba, wb, bb = (t.clone().requires_grad_(True) for t in (w, bias, w, bias))
        (conv_maxpool(xs, wa, ba, padding=padding, chunk=chunk) * up).sum().backward()
        xr = x.clone().requires_grad_(x_grad)
        (F.max_pool2d(F.conv2d(xr, wb, bb, padding=padding), 3, 3, 1) * up).sum().backward()
        assert torch.allclose(wa.grad, wb.grad, atol=1e-10) and torch.allclose(ba.grad, bb.grad, atol=1e-10)
        if x_grad:
            assert torch.allclose(xs.grad, xr.grad, atol=1e-10)


@settings(max_examples=_few(30))
@given(st.integers(2, 5), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), SEEDS,
       st.randoms(use_true_random=False))
def test_masked_batch_norm_is_batch_norm_over_each_copys_own_samples(b, g, c, h, w, seed, rnd):
    if h * w < 2:
        w = 2                     # nn.BatchNorm2d needs two values per channel
    torch.manual_seed(seed % 1000)
    bn = MaskedBatchNorm2d(g, c).double().train()
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    start_mean, start_var = bn.running_mean.clone().view(g, c), bn.running_var.clone().view(g, c)
    x = _randn(seed, b, g * c, h, w, scale=3.0)
    mask = torch.tensor([[rnd.random() < 0.6 for _ in range(g)] for _ in range(b)], dtype=torch.float64)
    mask[:, 0] = 1                                          # copy 0 sees the whole batch: plain batch norm
    if g > 1:
        mask[:, -1] = 0                                     # the last copy sees nothing: its statistics stay
    y = bn(x, mask)
    for k in range(g):
        rows = mask[:, k].bool()
        ch = slice(k * c, (k + 1) * c)
        rm, rv = start_mean[k].clone(), start_var[k].clone()
        if not bool(rows.any()):
            assert torch.equal(bn.running_mean.view(g, c)[k], rm) and torch.equal(bn.running_var.view(g, c)[k], rv)
            continue
        if int(rows.sum()) * h * w < 2:
            continue
        want = F.batch_norm(x[rows][:, ch], rm, rv, bn.weight[ch], bn.bias[ch], training=True, momentum=0.1,
                            eps=bn.eps)
        assert torch.allclose(y[rows][:, ch], want, atol=1e-10)
        assert torch.allclose(bn.running_mean.view(g, c)[k], rm, atol=1e-12)
        assert torch.allclose(bn.running_var.view(g, c)[k], rv, atol=1e-12)


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.booleans(), SEEDS)
def test_grouped_linear_is_one_linear_layer_per_copy(b, g, n_in, n_out, bias, seed):
    torch.manual_seed(seed % 1000)
    layer = GroupedLinear(g, n_in, n_out, bias=bias).double()
    x = _randn(seed, b, g, n_in)
    y = layer(x)
    assert y.shape == (b, g, n_out)
    for k in range(g):
        want = F.linear(x[:, k], layer.weight[k].t(), layer.bias[k] if bias else None)
        assert torch.allclose(y[:, k], want, atol=1e-12)
    bound = 1 / math.sqrt(n_in)
    assert bool((layer.weight.abs() <= bound).all())


@given(st.floats(-3, 3), st.integers(1, 5), SEEDS)
def test_scale_gradient_is_the_identity_forward_and_scales_the_backward(scale, n, seed):
    x = _randn(seed, n).requires_grad_(True)
    w = _randn(seed + 1, n)
    y = scale_gradient(x, scale)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, scale * w, atol=1e-15)
    with pytest.raises(ValueError, match="scale must be finite"):
        scale_gradient(x, float("nan"))


@given(st.floats(0.0, 1.0), st.booleans(), st.integers(1, 200), SEEDS)
def test_fast_dropout_keeps_or_zeroes_each_element_with_the_inverted_scale(p, training, n, seed):
    x = _randn(seed, n) + 5.0                                  # no zeros in x
    torch.manual_seed(seed % 1000)
    y = fast_dropout(x, p, training)
    if not training or p <= 0:
        assert torch.equal(y, x)
        return
    if p == 1:
        assert torch.equal(y, torch.zeros_like(x))
        return
    on_grid = (256 * p).is_integer()                           # the byte mask; else torch's exact dropout
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] * (256 / (256 - 256 * p) if on_grid else 1 / (1 - p)), rtol=1e-12,
                          atol=1e-12)


# --------------------------------------------------------------------------------------------- GAN losses

probs = st.floats(1e-6, 1 - 1e-6)


@st.composite
def adv_lengths(draw):
    b = draw(st.integers(1, 5))
    rows = st.lists(st.tuples(probs, probs), min_size=b, max_size=b)
    return (torch.tensor(draw(rows), dtype=torch.float64), torch.tensor(draw(rows), dtype=torch.float64))


def _bce_mean(p, target):
    # _bce works in float32 (documented): the reference uses the float32-rounded probabilities, whose 1 - p near 1 is
    # coarse (p = 1 - 1e-6 rounds to 1 - 1.013e-6, a 1 % change of -log(1 - p))
    p = p.float().clamp(1e-6, 1 - 1e-6).double()
    return float(np.mean([-math.log(v) if target else -math.log(1 - v) for v in p.tolist()]))


@given(adv_lengths())
def test_adversarial_losses_are_eq7_and_nonnegative(case):
    real, fake = case
    d = float(adversarial_d_loss(real, fake))
    want = 0.5 * (_bce_mean(real[:, 1], 1) + _bce_mean(real[:, 0], 0) + _bce_mean(fake[:, 1], 0)
                  + _bce_mean(fake[:, 0], 1))
    assert d == pytest.approx(want, rel=1e-5, abs=1e-6) and d >= 0
    gl = float(adversarial_g_loss(fake))
    assert gl == pytest.approx(0.5 * (_bce_mean(fake[:, 1], 1) + _bce_mean(fake[:, 0], 0)), rel=1e-5, abs=1e-6)
    assert gl >= 0
    # a D-side pair (fake lengths as real, swapped as fake) is the generator's target counted twice
    assert d >= 0 and float(adversarial_d_loss(fake, fake.flip(1))) == pytest.approx(2 * gl, rel=1e-6, abs=1e-6)


@given(st.integers(1, 5))
def test_adversarial_losses_at_the_optimum_and_at_one_half(b):
    ideal_real = torch.tensor([[0.0, 1.0]] * b)
    ideal_fake = torch.tensor([[1.0, 0.0]] * b)
    assert float(adversarial_d_loss(ideal_real, ideal_fake)) <= 1e-5      # only the 1e-6 clamp remains
    assert float(adversarial_g_loss(ideal_real)) <= 1e-5
    half = torch.full((b, 2), 0.5)
    assert float(adversarial_d_loss(half, half)) == pytest.approx(2 * math.log(2), rel=1e-6)
    assert float(adversarial_g_loss(half)) == pytest.approx(math.log(2), rel=1e-6)


@given(lengths_targets(), st.floats(0.0, 1e-2), st.booleans(), SEEDS)
def test_classification_loss_is_margin_plus_beta_mse(case, beta, with_recon, seed):
    lengths, target = case
    b = lengths.shape[0]
    recon = _randn(seed, b, 1, 4, 4) if with_recon else None
    img = _randn(seed + 1, b, 1, 4, 4) if with_recon else None
    got = float(classification_loss(lengths, target, recon, img, beta=beta))
    want = float(margin_loss(lengths, target)) + (beta * float(((recon - img) ** 2).mean()) if with_recon else 0.0)
    assert got == pytest.approx(want, abs=1e-12) and got >= 0
    if with_recon:
        assert float(classification_loss(lengths, target, img, img, beta=beta)) == pytest.approx(
            float(margin_loss(lengths, target)), abs=1e-14)


@given(st.integers(1, 3), st.booleans(), st.one_of(st.none(), st.floats(0, 5)), st.floats(0, 1), SEEDS)
def test_identity_preserving_loss_is_l1_plus_alpha_per(b, with_apex, per, alpha, seed):
    fake = _randn(seed, b, 1, 4, 4)
    apex = _randn(seed + 1, b, 1, 4, 4) if with_apex else None
    per_t = None if per is None else torch.tensor(per, dtype=torch.float64)
    got = float(identity_preserving_loss(fake, apex, per_t, alpha))
    want = (float((fake - apex).abs().mean()) if with_apex else 0.0) + (alpha * per if per is not None else 0.0)
    assert got == pytest.approx(want, abs=1e-12) and got >= 0
    assert float(identity_preserving_loss(fake, fake, None, alpha)) == 0.0


@given(st.integers(1, 3), st.floats(1e-3, 0.5), st.floats(0, 0.2), SEEDS)
def test_diversity_hinge_bounds_and_closed_form(b, tau, gap_scale, seed):
    a = _randn(seed, b, 1, 4, 4)
    other = a + _randn(seed + 1, b, 1, 4, 4, scale=gap_scale)
    h = float(diversity_hinge(a, other, tau))
    gap = float((a - other).abs().mean())
    assert h == pytest.approx(max(0.0, tau - gap) / tau, abs=1e-12)
    assert 0.0 <= h <= 1.0
    assert float(diversity_hinge(other, a, tau)) == pytest.approx(h, abs=1e-15)
    assert float(diversity_hinge(a, a, tau)) == 1.0
    assert float(diversity_hinge(a, a + 2 * tau, tau)) == 0.0
    with pytest.raises(ValueError, match="target must be > 0"):
        diversity_hinge(a, other, -tau)
    with pytest.raises(ValueError, match="shapes differ"):
        diversity_hinge(a, other[:, :, :3], tau)
