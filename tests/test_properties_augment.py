"""Property-based tests (hypothesis) of the recognizer's augmentations, label smoothing, the motion prior and the
confident-learning label filter.

Augmentations (icegan/recognition.py), for (B, 3, H, W) (u, v, strain) maps min–max normalised to [0, 1]:

* hflip_features mirrors all three maps and negates u (u → 1 − u for normalised u); flipping twice is the identity;
  it agrees with the flow mirror of the motion prior (icegan.gan.motion.mirror_flow: u → −u) and commutes with a
  shift whose dx is negated;
* shift_features moves the content by (dy, dx) with the border replicated, equal to a per-pixel clamped index
  lookup; a zero shift is the identity; shifting back restores the pixels that stayed on the map;
* warp_features with angle 0 and scale 1 is the identity, 90° is torch.rot90, 180° flips both axes; its output lies
  within the input's range (bilinear weights are convex);
* cutout_features leaves everything outside the (clipped) square unchanged and fills the square with each channel's
  mean, so the output stays within the input's range and the number of changed pixels is the clipped area;
* test-time augmentation (predict_models): probabilities per clip summing to 1, independent of the batch size,
  unchanged by mirroring the input when the flip is a view (the view set is mirror-symmetric), and the plain
  softmax without views; SnapshotAverage's softmax is the mean of its snapshots' probabilities;
* label smoothing (``_ce_rows``): the smoothed cross-entropy is (1 − ε)·CE + ε·mean_k(−log p_k) (Szegedy et al.,
  CVPR 2016, Sec. 7) and its minimum over the logits is reached at the smoothed target (Gibbs' inequality).

Motion prior (icegan/gan/motion.py): mirror_flow is an involution; class_mean_flow of given flows is each class's
mean flow, mirror-symmetric with ``symmetric=True``, zero for a class without pairs, unchanged by reordering pairs.

Confident learning (icegan/label_noise.py; Northcutt, Jiang and Chuang, JAIR 70, 2021, Sec. 3.1): the vectorised
confident_joint_flags equals the definition written clip by clip; it is invariant to reordering clips and renaming
classes; a perfectly predicted set (and a row of NaN) is never flagged; bad labels raise ValueError. The forest's
out-of-bag probabilities are rows summing to 1 (or NaN), 0 for an absent class; well separated classes keep
every clip.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from icegan.gan.motion import class_mean_flow, mirror_flow
from icegan.label_noise import confident_joint_flags, flag_noisy_labels, forest_out_of_bag_probabilities
from icegan.models.recognizers import STSTNet
from icegan.recognition import (SnapshotAverage, _ce_rows, cutout_features, hflip_features, predict_models,
                                shift_features, warp_features)

SEEDS = st.integers(0, 2 ** 31 - 1)
#: the search profile draws many examples; the slow (forest) property keeps at least 200 there
SEARCH = settings.default.max_examples > 100


def _rand(seed: int, *shape, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@st.composite
def feature_maps(draw, square: bool = False):
    """(B, 3, H, W) float64 maps in [0, 1], B 1-3, sides 1-9 (square when asked)."""
    b, h = draw(st.integers(1, 3)), draw(st.integers(1, 9))
    w = h if square else draw(st.integers(1, 9))
    return _rand(draw(SEEDS), b, 3, h, w)


def offsets(b):
    return st.lists(st.integers(-10, 10), min_size=b, max_size=b).map(torch.tensor)


# --------------------------------------------------------------------------------------------- flip, shift


@given(feature_maps())
def test_hflip_mirrors_every_map_negates_u_and_is_an_involution(x):
    y = hflip_features(x)
    assert torch.equal(y[:, 1:], x[:, 1:].flip(-1))
    assert torch.allclose(y[:, 0], 1 - x[:, 0].flip(-1), atol=1e-15)
    assert torch.allclose(hflip_features(y), x, atol=1e-15)
    assert torch.equal(x, x.clone())          # the input is not modified in place
    # the same mirror as the motion prior's flow mirror (u → −u there: raw flow, not normalised)
    m = mirror_flow(x[:, :2])
    assert torch.allclose(y[:, 0] - 1, m[:, 0], atol=1e-15) and torch.equal(y[:, 1], m[:, 1])


def maps_and_offsets(b):
    return st.tuples(st.builds(lambda s, h, w: _rand(s, b, 3, h, w), SEEDS, st.integers(1, 9), st.integers(1, 9)),
                     offsets(b), offsets(b))


@given(st.integers(1, 3).flatmap(maps_and_offsets))
def test_shift_moves_the_content_with_the_border_replicated(case):
    x, dy, dx = case
    b, c, h, w = x.shape
    y = shift_features(x, dy, dx)
    assert y.shape == x.shape
    for i in range(b):            # out[i, :, r, q] = x[i, :, clamp(r - dy), clamp(q - dx)]
        r = [min(max(r - int(dy[i]), 0), h - 1) for r in range(h)]
        q = [min(max(q - int(dx[i]), 0), w - 1) for q in range(w)]
        assert torch.equal(y[i], x[i][:, r][:, :, q])
    zero = torch.zeros(b, dtype=torch.long)
    assert torch.equal(shift_features(x, zero, zero), x)
    # shifting back restores every pixel whose source stayed on the map
    back = shift_features(y, -dy, -dx)
    for i in range(b):
        rows = slice(max(0, -int(dy[i])), max(0, min(h, h - int(dy[i]))))
        cols = slice(max(0, -int(dx[i])), max(0, min(w, w - int(dx[i]))))
        assert torch.equal(back[i, :, rows, cols], x[i, :, rows, cols])
    # mirroring turns a shift to the right into one to the left
    assert torch.allclose(hflip_features(y), shift_features(hflip_features(x), dy, -dx), atol=1e-15)


def test_shift_rejects_offsets_of_another_length():
    with pytest.raises(ValueError, match="one \\(dy, dx\\) per sample: B=2"):
        shift_features(torch.zeros(2, 3, 4, 4), torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long))


# --------------------------------------------------------------------------------------------- rotation, scaling


@given(feature_maps(square=True), st.floats(-30, 30), st.floats(0.5, 2.0))
def test_warp_identity_right_angles_and_range(x, angle, scale):
    b = x.shape[0]
    zeros, ones = torch.zeros(b, dtype=x.dtype), torch.ones(b, dtype=x.dtype)
    assert torch.allclose(warp_features(x, zeros, ones), x, atol=1e-12)
    assert torch.allclose(warp_features(x, ones * 90, ones), torch.rot90(x, 1, (-2, -1)), atol=1e-12)
    assert torch.allclose(warp_features(x, ones * 180, ones), x.flip(-1, -2), atol=1e-12)
    assert torch.allclose(warp_features(x, ones * -90, ones), torch.rot90(x, -1, (-2, -1)), atol=1e-12)
    y = warp_features(x, ones * angle, ones * scale)
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    assert bool((y >= lo - 1e-12).all()) and bool((y <= hi + 1e-12).all())
    # each sample is warped on its own
    assert torch.allclose(warp_features(x[-1:], ones[-1:] * angle, ones[-1:] * scale), y[-1:], atol=1e-12)


def test_warp_rejects_bad_input():
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="square maps"):
        warp_features(torch.zeros(2, 3, 4, 5), torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="one angle and one scale per sample"):
        warp_features(x, torch.zeros(3), torch.ones(2))
    with pytest.raises(ValueError, match="scales > 0"):
        warp_features(x, torch.zeros(2), torch.tensor([1.0, 0.0]))


# --------------------------------------------------------------------------------------------- cutout


@given(st.integers(1, 3).flatmap(maps_and_offsets), st.integers(1, 6))
def test_cutout_fills_the_clipped_square_with_channel_means_and_nothing_else(case, side):
    x, cy, cx = case
    b, c, h, w = x.shape
    y = cutout_features(x, cy, cx, side)
    mean = x.mean(dim=(2, 3), keepdim=True)
    for i in range(b):
        top, left = int(cy[i]) - side // 2, int(cx[i]) - side // 2
        rows = [r for r in range(h) if top <= r < top + side]
        cols = [q for q in range(w) if left <= q < left + side]
        inside = torch.zeros(h, w, dtype=torch.bool)
        for r in rows:
            inside[r, cols] = True
        assert torch.equal(y[i][:, ~inside], x[i][:, ~inside])
        assert torch.allclose(y[i][:, inside], mean[i, :, 0].expand(c, int(inside.sum())), atol=1e-15)
        assert int(inside.sum()) == len(rows) * len(cols) <= side * side
    assert bool((y >= x.amin(dim=(2, 3), keepdim=True) - 1e-15).all())
    assert bool((y <= x.amax(dim=(2, 3), keepdim=True) + 1e-15).all())


@given(st.integers(-3, 0))
def test_cutout_rejects_an_empty_square(side):
    with pytest.raises(ValueError, match=f"side >= 1 pixel, got {side}"):
        cutout_features(torch.zeros(1, 3, 4, 4), torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long),
                        side)


# --------------------------------------------------------------------------------------------- test-time augmentation

_NETS: dict = {}


def _net(g: int) -> STSTNet:
    if g not in _NETS:
        torch.manual_seed(g)
        net = STSTNet(num_classes=3, input_size=8, n_models=g).double()
        with torch.no_grad():
            for bn in net.bns:
                bn.running_mean.normal_()
                bn.running_var.uniform_(0.5, 2)
        _NETS[g] = net
    return _NETS[g]


@settings(max_examples=200 if SEARCH else 15)
@given(st.integers(1, 4), st.integers(1, 2), st.booleans(), st.integers(0, 2), st.integers(1, 3), SEEDS)
def test_tta_probabilities_are_per_clip_and_mirror_invariant(n, g, hflip, shift, batch, seed):
    net = _net(g).train()
    x = _rand(seed, n, 3, 8, 8)
    p = predict_models(net, x, tta_hflip=hflip, tta_shift_px=shift)
    assert net.training                                   # the mode is restored
    assert p.shape == (n, g, 3)
    assert torch.allclose(p.sum(-1), torch.ones(n, g, dtype=p.dtype), atol=1e-12) and bool((p >= 0).all())
    # each clip's views come from that clip alone: the batch size changes nothing
    assert torch.allclose(predict_models(net, x, tta_hflip=hflip, tta_shift_px=shift, batch=batch), p, atol=1e-12)
    if hflip:   # the views of a mirrored clip are the mirrored views (shifts with dx negated): the same average
        assert torch.allclose(predict_models(net, hflip_features(x), tta_hflip=True, tta_shift_px=shift), p,
                              atol=1e-12)
    if shift == 0 and not hflip:
        net.eval()
        with torch.no_grad():
            plain = net(x).softmax(-1)
        assert torch.allclose(p, plain if g > 1 else plain[:, None], atol=1e-12)
    with pytest.raises(ValueError, match="tta_shift_px must lie in 0..7"):
        predict_models(net, x, tta_shift_px=8)


@settings(max_examples=200 if SEARCH else 20)
@given(st.integers(1, 4), st.integers(1, 3), SEEDS)
def test_snapshot_average_is_the_mean_of_the_probabilities(n, k, seed):
    nets = []
    for i in range(k):
        torch.manual_seed(seed % 1000 + i)
        nets.append(STSTNet(num_classes=3, input_size=8).double().eval())
    x = _rand(seed, n, 3, 8, 8)
    avg = SnapshotAverage(nets).eval()
    with torch.no_grad():
        want = torch.stack([m(x).softmax(-1) for m in nets]).mean(0)
        assert torch.allclose(avg(x).softmax(-1), want, atol=1e-12)
        assert torch.allclose(avg(x).exp(), want, atol=1e-12)           # log of the mean probability itself
        if k == 1:
            assert torch.allclose(avg(x), torch.log_softmax(nets[0](x), -1), atol=1e-10)


# --------------------------------------------------------------------------------------------- label smoothing


@st.composite
def logits_labels(draw):
    b, g, k = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(2, 5))
    seed = draw(SEEDS)
    logits = 3 * torch.randn(b, g, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    y = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=b, max_size=b)))
    return logits, y


@given(logits_labels(), st.floats(0.0, 0.5))
def test_label_smoothing_is_the_mixture_of_cross_entropies(case, eps):
    logits, y = case
    b, g, k = logits.shape
    rows = _ce_rows(logits, y, eps)
    assert rows.shape == (b, g)
    logp = torch.log_softmax(logits, -1)
    nll = -logp.gather(2, y[:, None, None].expand(b, g, 1))[..., 0]
    want = (1 - eps) * nll + eps * (-logp).mean(-1)
    assert torch.allclose(rows, want, atol=1e-12)
    assert bool((rows >= 0).all())


@given(logits_labels(), st.floats(0.01, 0.5))
def test_label_smoothing_is_minimal_at_the_smoothed_target(case, eps):
    logits, y = case
    b, g, k = logits.shape
    target = torch.full((b, g, k), eps / k, dtype=logits.dtype)
    target.scatter_(2, y[:, None, None].expand(b, g, 1), 1 - eps + eps / k)
    at_target = _ce_rows(target.log(), y, eps)
    entropy = -(target * target.log()).sum(-1)
    assert torch.allclose(at_target, entropy, atol=1e-12)
    assert bool((_ce_rows(logits, y, eps) >= at_target - 1e-12).all())


# --------------------------------------------------------------------------------------------- motion prior


@st.composite
def flow_sets(draw):
    n, k = draw(st.integers(0, 8)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    labels = torch.tensor(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), dtype=torch.long)
    flows = 3 * torch.randn(n, 2, h, w, generator=torch.Generator().manual_seed(draw(SEEDS)))
    return flows, labels, k


@given(flow_sets(), st.randoms(use_true_random=False))
def test_class_mean_flow_is_the_per_class_mean_and_mirror_symmetric(case, rnd):
    flows, labels, k = case
    n, _, h, w = flows.shape
    faces = torch.zeros(n, 1, h, w)
    prior = class_mean_flow(faces, faces, labels, k, flows=flows, symmetric=False)
    assert prior.shape == (k, 2, h, w)
    for c in range(k):
        sel = labels == c
        want = flows[sel].mean(0) if bool(sel.any()) else torch.zeros(2, h, w)
        assert torch.allclose(prior[c], want, atol=1e-5)
    sym = class_mean_flow(faces, faces, labels, k, flows=flows, symmetric=True)
    assert torch.allclose(mirror_flow(sym), sym, atol=1e-6)
    assert torch.allclose(sym, 0.5 * (prior + mirror_flow(prior)), atol=1e-6)
    assert torch.equal(mirror_flow(mirror_flow(flows)), flows)
    order = list(range(n))
    rnd.shuffle(order)
    again = class_mean_flow(faces, faces, labels[order], k, flows=flows[order], symmetric=True)
    assert torch.allclose(again, sym, atol=1e-5)
    if n:
        bad = labels.clone()
        bad[0] = k
        with pytest.raises(ValueError, match=rf"labels must be in \[0, {k}\)"):
            class_mean_flow(faces, faces, bad, k, flows=flows)


# --------------------------------------------------------------------------------------------- confident learning


def _flags_by_hand(p, labels):
    """Northcutt et al. 2021 Sec. 3.1, clip by clip: t_j = mean p_j over the clips labelled j (finite rows);
    confident classes p_j >= t_j; flagged when some class is confident and the most probable of them is not the
    label."""
    n, k = p.shape
    ok = [bool(np.isfinite(p[i]).all()) for i in range(n)]
    t = []
    for j in range(k):
        vals = [p[i, j] for i in range(n) if ok[i] and labels[i] == j]
        t.append(sum(vals) / len(vals) if vals else math.inf)
    out = []
    for i in range(n):
        conf = [j for j in range(k) if ok[i] and p[i, j] >= t[j]]
        out.append(bool(conf) and max(conf, key=lambda j: (p[i, j], -j)) != labels[i])
    return np.array(out, dtype=bool)


@st.composite
def prob_sets(draw):
    n, k = draw(st.integers(1, 12)), draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(SEEDS))
    p = rng.dirichlet(np.full(k, draw(st.sampled_from([0.2, 1.0, 5.0]))), size=n)
    if draw(st.booleans()):                        # coarse probabilities: ties between classes and clips
        p = np.round(p * 4) / 4
        p[p.sum(1) == 0] = 1.0 / k
        p = p / p.sum(1, keepdims=True)
    nan_rows = draw(st.lists(st.integers(0, n - 1), max_size=2))
    p[nan_rows] = np.nan
    labels = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    return p, labels


@given(prob_sets(), st.randoms(use_true_random=False))
def test_confident_joint_flags_match_the_definition_and_its_invariances(case, rnd):
    p, labels = case
    n, k = p.shape
    flags = confident_joint_flags(p, labels)
    assert flags.dtype == bool and flags.shape == (n,)
    assert np.array_equal(flags, _flags_by_hand(p, labels))
    assert not flags[~np.isfinite(p).all(1)].any()
    order = list(range(n))
    rnd.shuffle(order)
    assert np.array_equal(confident_joint_flags(p[order], labels[order]), flags[order])
    names = list(range(k))
    rnd.shuffle(names)
    renamed = np.empty_like(p)
    renamed[:, names] = p                          # class j is called names[j]
    # renaming can only change which of two equally probable confident classes is "the most probable"
    ties = np.array([np.isfinite(r).all() and len(set(r.round(12))) < k for r in p])
    same = confident_joint_flags(renamed, np.array(names)[labels]) == flags
    assert same[~ties].all()


@given(st.integers(2, 4).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.integers(0, k - 1), min_size=1,
                                                                            max_size=20))))
def test_a_perfectly_predicted_set_is_kept_whole(case):
    k, labels = case
    labels = np.array(labels)
    assert not confident_joint_flags(np.eye(k)[labels], labels).any()


def test_confident_joint_flags_reject_bad_labels():
    with pytest.raises(ValueError, match="labels must lie in 0..2, got 0..3"):
        confident_joint_flags(np.full((2, 3), 1 / 3), np.array([0, 3]))
    with pytest.raises(ValueError, match="disagree"):
        confident_joint_flags(np.full((2, 3), 1 / 3), np.array([0, 1, 2]))


@settings(max_examples=200 if SEARCH else 8)
# per_class >= 15: a tree whose bootstrap holds no clip of a class votes the other classes for every clip of it, and a
# clip out of the bag of such trees only is flagged although the classes are separable (search counterexample: k=2,
# per_class=4, seed=1547, 10 trees, one tree's bag without class 0). That is the bootstrap, not the filter: the
# chance of such a bag is about (1 - 1/k)^n, 2e-8 here, and negligible for the LOSO folds' hundreds of clips.
@given(st.integers(2, 3), st.integers(15, 25), SEEDS)
def test_forest_keeps_well_separated_classes_whole(k, per_class, seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), per_class)
    x = labels[:, None] * 10.0 + rng.normal(0, 1, size=(len(labels), 3))     # clusters 10 σ apart
    p = forest_out_of_bag_probabilities(x, labels, trees=10, seed=seed % 1000, n_classes=k + 1)
    assert p.shape == (len(labels), k + 1)
    ok = np.isfinite(p).all(1)
    assert np.allclose(p[ok].sum(1), 1.0) and (p[ok][:, k] == 0).all()       # class k has no clip
    assert (p[~ok] != p[~ok]).all()                                           # NaN rows are NaN throughout
    assert not flag_noisy_labels(x, labels, trees=10, seed=seed % 1000, n_classes=k + 1).any()
