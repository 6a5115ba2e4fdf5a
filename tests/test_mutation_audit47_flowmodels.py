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
