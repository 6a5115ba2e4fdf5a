"""Tests written by a mutation audit of the optical-flow networks (flownet.models.srflownet, .backbones, .inputs,
.state_dict, .liteflownet2, .decflow and flownet.decompose): each one fails on a small deliberate change of the code
that the earlier tests let pass (named in the test's docstring). Expected values are worked out by hand in the
comments, or are invariants of the method (a warp by an integer flow is a shift), never copied from the code's
output. Tiny networks with a fixed seed: each test runs in well under 2 s on a CPU."""
from __future__ import annotations

import torch
from _flow_sizes import TINY_SRFLOWNET

from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig


def _tiny_srflownet(seed: int = 0, **kw) -> SRFlowNet:
    torch.manual_seed(seed)
    return SRFlowNet(SRFlowNetConfig(**{**TINY_SRFLOWNET, **kw}))


# ------------------------------------------------------------------------------------- flownet.models.srflownet

def test_srflownet_pads_only_up_to_the_grid_and_the_pyramid_minimum():
    """The encoders see the input replicate-padded to the next multiple of ``downsample`` (8), and to at least
    ``min_size`` = 8 * 2 * 2**(levels - 1) = 32 px for the 2-level tiny pyramid (module docstring): 40 x 48 is on the
    grid and above the minimum, so it is not padded at all; 34 x 30 becomes 40 x 32 (34 -> 5 cells of 8 = 40,
    30 -> 4 cells = 32); 10 x 10 becomes 32 x 32 (mutation killed: one more cell of padding,
    ``ceil(h / k) * k + k``, which the existing tests let pass because they pad by hand to the same grid and
    compare: the flow changed, the padded area grew, and nothing noticed)."""
    net = _tiny_srflownet().eval()
    assert net.min_size == 32
    seen = []
    hook = net.raft.feature_encoder.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape[-2:])))
    try:
        with torch.no_grad():
            for (h, w), want in (((40, 48), (40, 48)), ((34, 30), (40, 32)), ((10, 10), (32, 32))):
                out = net(torch.rand(1, 1, h, w), torch.rand(1, 1, h, w), iters=1)[-1]
                assert seen[-1] == want, (h, w, seen[-1])
                assert out.shape == (1, 2, h, w)
    finally:
        hook.remove()


def test_srflownet_detaches_the_lookup_coordinates_between_updates():
    """RAFT (Teed & Deng 2020, the recurrence SRFlowNet keeps from torchvision, SRFlow paper Sec. IV-A: SKFlow
    backbone) stops the gradient through the coordinate feedback: the correlation look-up of every update reads
    coordinates that carry no gradient, while the flows themselves stay differentiable (mutation killed: the
    ``coords1.detach()`` dropped, which back-propagated through the bilinear look-up of every later update and
    changed every training gradient)."""
    net = _tiny_srflownet().train()
    seen = []
    corr = net.raft.corr_block
    original = corr.index_pyramid

    def spy(centroids_coords):
        seen.append(centroids_coords.requires_grad)
        return original(centroids_coords=centroids_coords)

    corr.index_pyramid = spy
    try:
        flows = net(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), iters=3)
    finally:
        del corr.index_pyramid
    assert seen == [False, False, False]
    assert all(f.requires_grad for f in flows)      # the outputs still carry gradients to the weights


def test_sk_motion_encoder_appends_the_flow_unchanged_as_its_last_two_channels():
    """SKFlow's motion encoder (as RAFT's, whose interface torchvision's update block expects) returns the encoded
    motion followed by the current flow itself, so that the update block sees where the look-up was taken
    (mutation killed: the appended flow zeroed, which the shipped-weights test let pass: the trained update block
    then reads a zero flow every update)."""
    from flownet.models.srflownet import SKMotionEncoder
    torch.manual_seed(0)
    enc = SKMotionEncoder(in_channels_corr=18, out_channels=12, kernel=5, corr_channels=8, flow_channels=4)
    g = torch.Generator().manual_seed(1)
    flow, corr = torch.randn(2, 2, 6, 7, generator=g), torch.randn(2, 18, 6, 7, generator=g)
    with torch.no_grad():
        out = enc(flow, corr)
    assert out.shape == (2, 12, 6, 7)
    assert torch.equal(out[:, -2:], flow)
    assert float(out[:, :-2].abs().max()) > 0


def test_convex_mask_logits_are_scaled_by_a_quarter_as_raft():
    """RAFT scales the convex-upsampling mask logits by 0.25 (``mask = .25 * self.mask(net)`` in the original; the
    ``multiplier`` of torchvision's ``MaskPredictor``), which damps this branch's gradients; SRFlowNet's mask
    predictor keeps it for any grid factor, so its logits are a quarter of those of the same weights with multiplier
    1 (mutation killed: the multiplier dropped, which the shipped-weights test let pass while it sharpened every
    softmax over the 9 neighbours 4-fold)."""
    net = _tiny_srflownet()
    mask = net.raft.mask_predictor
    assert mask.multiplier == 0.25
    x = torch.randn(1, TINY_SRFLOWNET["hidden"], 3, 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        quarter = mask(x)
        mask.multiplier = 1.0
        full = mask(x)
    assert quarter.shape == (1, 9 * 8 * 8, 3, 5)              # 9 neighbours x 8 x 8 sub-pixels
    assert float(full.abs().max()) > 0
    torch.testing.assert_close(quarter, 0.25 * full)


def test_first_image_cache_drops_as_many_old_entries_as_a_large_new_one_needs():
    """``FirstImageCache`` keeps at most ``max_bytes``: an entry of a 64 x 64 image holds 4 times the bytes of a
    32 x 32 one (feature and context maps on the 1/8 grid: 8 x 8 cells against 4 x 4), so with room for exactly one
    64 x 64 entry, four 32 x 32 entries fill it and the 64 x 64 one then evicts all four (mutation killed: the
    eviction ``while`` made an ``if``, which dropped one entry and left the cache at 7/4 of its limit; the existing
    test adds entries of one size only, where one eviction a time is enough)."""
    from flownet.models.srflownet import FirstImageCache
    net = _tiny_srflownet().eval()
    g = torch.Generator().manual_seed(3)
    small = torch.rand(4, 1, 32, 32, generator=g)
    big = torch.rand(1, 1, 64, 64, generator=g)
    with torch.no_grad():
        probe = FirstImageCache()
        with net.reusing_first_images(probe):
            net(small[:1], small[:1])
            net(big, big)
        s, b4 = probe.entries[next(iter(probe.entries))][-1], probe.entries[next(reversed(probe.entries))][-1]
        assert b4 == 4 * s
        cache = FirstImageCache(max_bytes=b4)
        with net.reusing_first_images(cache):
            net(small, small)
            assert (len(cache.entries), cache.nbytes) == (4, b4)
            net(big, big)
    assert (len(cache.entries), cache.nbytes) == (1, b4)


def test_first_image_cache_does_not_reuse_an_encoding_across_autocast_states():
    """An encoding made in float32 is not the one autocast (bfloat16 on the CPU) would make, so the cache key holds the
    autocast state: the same first image encoded outside and inside ``torch.autocast`` is two entries and two misses
    (mutation killed: the autocast dtype left out of the key, which reused the float32 maps inside autocast and gave
    flows that autocast alone does not give)."""
    from flownet.models.srflownet import FirstImageCache
    net = _tiny_srflownet().eval()
    img = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(4))
    cache = FirstImageCache()
    with torch.no_grad(), net.reusing_first_images(cache):
        net(img, img)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            net(img, img)
    assert (cache.misses, cache.hits, len(cache.entries)) == (2, 0, 2)


def test_untrained_srflownet_predicts_almost_no_motion():
    """The flow head's last convolution starts at weights of std 1e-3 and zero bias (``SKUpdateBlock``: facial
    motions are small, and a random first flow must be unlearned), so each update of an untrained network moves the
    flow by a few thousandths of a grid cell: after 3 updates the flow stays under a quarter of a pixel, where
    PyTorch's default initialisation of that layer gives 1.5-2 px on these images (mutation killed: the
    ``normal_(std=1e-3)`` dropped; the existing tests train or load weights and never look at the starting flow)."""
    net = _tiny_srflownet().eval()
    head = net.raft.update_block.flow_head.conv2
    assert float(head.bias.detach().abs().max()) == 0.0 and float(head.weight.detach().std()) < 2e-3
    g = torch.Generator().manual_seed(5)
    a, b = torch.rand(2, 1, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g)
    with torch.no_grad():
        flow = net(a, b, iters=3)[-1]
    assert float(flow.abs().max()) < 0.25


def test_first_image_cache_skips_an_entry_larger_than_its_limit_and_keeps_the_others():
    """An entry that alone exceeds ``max_bytes`` is not stored, and the entries already held stay: with room for two
    32 x 32 entries, a 64 x 64 one (4 times the bytes, see the eviction test above) is skipped and the 32 x 32 entry
    is still there (mutation killed: the size guard of ``_put`` dropped, which stored the big entry and then evicted
    everything, itself included: one large image emptied the cache)."""
    from flownet.models.srflownet import FirstImageCache
    net = _tiny_srflownet().eval()
    g = torch.Generator().manual_seed(3)
    small, big = torch.rand(1, 1, 32, 32, generator=g), torch.rand(1, 1, 64, 64, generator=g)
    with torch.no_grad():
        probe = FirstImageCache()
        with net.reusing_first_images(probe):
            net(small, small)
        s = probe.nbytes
        cache = FirstImageCache(max_bytes=2 * s)
        with net.reusing_first_images(cache):
            net(small, small)
            net(big, big)
            assert (len(cache.entries), cache.nbytes) == (1, s)
            net(small, small)
    assert (cache.misses, cache.hits) == (2, 1)             # the small image was still held


# ------------------------------------------------------------------------------------- flownet.models.liteflownet2

def test_lfn2_matching_warps_by_the_previous_flow_in_level_pixels():
    """M of LiteFlowNet2 (``../shared/papers/liteflownet2.txt`` Eq. 2-3 and Fig. 3): F2 is f-warped by the previous
    level's up-sampled flow before the cost volume. NetE stores flows in full-resolution pixels / 20, so at level 4
    (1/8 resolution) one stored unit is 20 / 8 = 2.5 grid pixels: a previous flow of 1.2 stored units is a shift of
    3 level pixels, and when F2 is F1 moved right by exactly 3 pixels the warped F2 is F1 again, so the cost volume M
    reads is F1's with itself away from the borders. M's output adds its residual to that up-sampled flow (Eq. 3,
    ``x_m = M(C) + s x^s``; stored units do not change with the level, so the bilinear up-sampling keeps the value
    1.2): with M's last layer zeroed, x_m is 1.2 inside the 1-pixel border the transposed convolution leaves
    (mutations killed: the warp of M given the stored flow without the ``* px`` conversion, a shift of 1.2 px that
    left 1.8 px unmatched; the ``+ flow_up`` of Eq. 3 dropped, which made every level forget the coarser estimate;
    the existing tests convert by hand and never ran the level's own warp, nor read x_m with a previous flow)."""
    from flownet.models.liteflownet2 import PyramidLevel, cost_volume
    torch.manual_seed(0)
    lvl = PyramidLevel(4, 8, 3, 1).eval()
    assert lvl.px == 2.5
    with torch.no_grad():
        lvl.matching[-1].weight.zero_()
        lvl.matching[-1].bias.zero_()
    g = torch.Generator().manual_seed(7)
    h, w, r = 12, 20, 3
    f1 = torch.randn(1, 8, h, w, generator=g)
    f2 = torch.randn(1, 8, h, w, generator=g)
    f2[..., 3:] = f1[..., :-3]                          # F2(x + 3) = F1(x): the second image moved 3 px right
    prev = torch.zeros(1, 2, h // 2, w // 2)
    prev[:, 0] = 3 / 2.5                                # 3 level pixels in stored units
    seen = {}
    hook = lvl.matching.register_forward_hook(lambda mod, inp, out: seen.update(corr=inp[0]))
    try:
        with torch.no_grad():
            x_m, _, _ = lvl(f1, f2, torch.zeros(1, 3, h, w), torch.zeros(1, 3, h, w), prev)
    finally:
        hook.remove()
    inner = x_m[..., 1:-1, 1:-1]
    torch.testing.assert_close(inner[:, 0], torch.full_like(inner[:, 0], 1.2))
    torch.testing.assert_close(inner[:, 1], torch.zeros_like(inner[:, 1]))
    # rows and columns whose look-ups (+-3) stay off the up-sampled flow's 1-pixel border and inside F2
    ys, xs = slice(4, h - 4), slice(4, w - 7)
    want = cost_volume(f1, f1, r)
    torch.testing.assert_close(seen["corr"][..., ys, xs], want[..., ys, xs], atol=1e-4, rtol=1e-4)


def test_lfn2_pads_each_side_to_its_own_multiple_of_32():
    """NetC halves the resolution 5 times, so LiteFlowNet2 replicate-pads the height and the width, each on its own,
    to the next multiple of 32 (at least 32) and crops the flow back (module docstring, "Input handling"): 40 x 70
    runs on 64 x 96 and 70 x 40 on 96 x 64 (mutation killed: the width's padding computed from the height, which no
    test saw since every LiteFlowNet2 test input was square or had the same multiple on both sides; 40 x 70 was then
    cut to 64 x 64 and its last columns lost)."""
    from flownet.models.liteflownet2 import LiteFlowNet2, LiteFlowNet2Config
    torch.manual_seed(0)
    net = LiteFlowNet2(LiteFlowNet2Config(netc_channels=(8, 8, 8, 8, 8, 8), last_level=5)).eval()
    for (h, w), padded in (((40, 70), (64, 96)), ((70, 40), (96, 64))):
        with torch.no_grad():
            out = net.forward_train(torch.rand(1, 1, h, w), torch.rand(1, 1, h, w))
        assert out.padded == padded and out.flow.shape == (1, 2, h, w), (h, w, out.padded)


# ------------------------------------------------------------------------------------------ flownet.models.decflow

def test_decflow_looks_up_correlations_at_the_total_of_head_and_expression():
    """DecFlow's recurrence (module docstring; two decoders on one correlation pyramid, FacialFlowNet supplement
    Sec. 2.2): update k+1 looks the correlation pyramid up at ``coords0 + head_k + expr_k``, the same total flow both
    decoders are given, where ``coords0`` is the 1/8-grid pixel grid (x in channel 0, y in channel 1). After one
    update the head flow is non-zero, so looking up at the expression flow alone differs (mutation killed: the
    look-up at ``coords0 + expr``, which the existing test let pass as it checks what the decoders receive only)."""
    from flownet.models.decflow import DecFlow, DecFlowConfig
    torch.manual_seed(0)
    m = DecFlow(DecFlowConfig(**TINY_SRFLOWNET)).eval()
    with torch.no_grad():                                   # a head decoder that moves: its update is not ~0
        m.head_update.flow_head.conv2.bias.copy_(torch.tensor([0.5, -0.25]))
    looked, totals = [], []
    corr = m.base.raft.corr_block
    original = corr.index_pyramid

    def spy(centroids_coords):
        looked.append(centroids_coords)
        return original(centroids_coords=centroids_coords)

    corr.index_pyramid = spy
    hook = m.head_update.register_forward_pre_hook(lambda mod, args: totals.append(args[3]))
    g = torch.Generator().manual_seed(1)
    try:
        with torch.no_grad():
            out = m(torch.rand(1, 1, 64, 64, generator=g), torch.rand(1, 1, 64, 64, generator=g), iters=2)
    finally:
        hook.remove()
        del corr.index_pyramid
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")      # 64 px / 8 = 8 cells
    coords0 = torch.stack([xs, ys])[None]
    assert len(looked) == 2 and len(totals) == 2
    torch.testing.assert_close(looked[0], coords0)                              # no flow yet
    assert float(out["head"][0].abs().max()) > 0.1                              # the head did move
    torch.testing.assert_close(looked[1], coords0 + totals[1])
    assert float(totals[1].abs().max()) > 0.01


def test_decflow_detaches_both_parts_between_updates():
    """As in RAFT (and SRFlowNet above), DecFlow stops the gradient through its recurrence: in training, the total
    flow each decoder is given and the look-up coordinates carry no gradient, while the outputs do (mutation killed:
    ``head.detach(), expr.detach()`` dropped, which back-propagated every update's loss through all earlier ones)."""
    from flownet.models.decflow import DecFlow, DecFlowConfig
    torch.manual_seed(0)
    m = DecFlow(DecFlowConfig(**TINY_SRFLOWNET)).train()
    grads = []
    hook = m.head_update.register_forward_pre_hook(lambda mod, args: grads.append(args[3].requires_grad))
    try:
        out = m(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64), iters=3)
    finally:
        hook.remove()
    assert grads == [False, False, False]
    assert out["total"][-1].requires_grad


def test_dense_decflow_head_mask_starts_from_the_srflownet_mask_predictor():
    """``init_from_srflownet`` (module docstring): with ``head_model="dense"`` the head decoder's convex-upsampling
    mask predictor starts as a copy of SRFlowNet's, as the head update block does (mutation killed: that copy
    dropped, which left the dense head's up-sampling at its random initialisation)."""
    from flownet.models.decflow import DecFlow, DecFlowConfig
    src = _tiny_srflownet(seed=1)
    torch.manual_seed(0)
    m = DecFlow(DecFlowConfig(**TINY_SRFLOWNET, head_model="dense")).init_from_srflownet(src)
    want = src.raft.mask_predictor.state_dict()
    got = m.head_mask.state_dict()
    assert sorted(got) == sorted(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k


# ------------------------------------------------------------------------------------------------ flownet.decompose

def test_central_region_rounds_the_border_to_the_nearest_pixel():
    """``central_region`` leaves out a border of ``margin`` x side on each edge, rounded to the nearest pixel: 0.17 of
    a 10 x 10 map is 1.7, so 2 rows and 2 columns on each edge (6 x 6 kept); 0.12 of 10 is 1.2, so 1 (8 x 8 kept)
    (mutation killed: the border truncated, ``int(1.7)`` = 1, which no test saw with margins whose product is a
    whole number or below one half)."""
    from flownet.decompose import central_region
    m = central_region(10, 10, 0.17)
    assert int(m.sum()) == 6 * 6 and bool(m[2, 2]) and not bool(m[1, 5]) and not bool(m[8, 5])
    m = central_region(10, 10, 0.12)
    assert int(m.sum()) == 8 * 8 and bool(m[1, 1]) and not bool(m[0, 5])
