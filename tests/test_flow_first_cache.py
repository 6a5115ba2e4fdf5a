"""SRFlowNet's reuse of first-image encodings (FirstImageCache) and the main job's use of it for synthetic pairs."""
from __future__ import annotations

import torch
from _flow_sizes import TINY_SRFLOWNET

from flownet.models.srflownet import FirstImageCache, SRFlowNet, SRFlowNetConfig
from flownet.registry import get_estimator
from flownet.resolution import at_input_size
from icegan.pipeline import compute_flow_features, reusing_onsets


def _pairs(n_first=5, n_pairs=14, size=32, seed=0):
    """Pairs whose first images repeat (as an onset does in its synthetic pairs), second images all distinct."""
    g = torch.Generator().manual_seed(seed)
    first = torch.rand(n_first, 1, size, size, generator=g)
    src = torch.arange(n_pairs) % n_first
    img1 = first[src]
    img2 = (img1 + 0.1 * torch.rand(n_pairs, 1, size, size, generator=g)).clamp(0, 1)
    return img1, img2


def _net(seed=0):
    torch.manual_seed(seed)
    return SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)).eval()


def test_reused_encodings_give_the_same_flows_and_encode_each_first_image_once():
    net, (img1, img2) = _net(), _pairs()
    with torch.no_grad():
        plain = net(img1, img2)[-1]
        cache = FirstImageCache()
        with net.reusing_first_images(cache):
            first = net(img1, img2)[-1]          # 5 distinct first images in 14 pairs
            assert (cache.misses, cache.hits, len(cache.entries)) == (5, 9, 5)
            again = torch.cat([net(img1[:6], img2[:6])[-1], net(img1[6:], img2[6:])[-1]])
            assert (cache.misses, cache.hits) == (5, 23)      # every first image held: none encoded again
    assert getattr(net, "_first_cache", None) is None          # off after the block
    # the encoders treat each sample on its own: equal to float rounding (bit for bit when the batch sizes
    # give the convolutions the same kernels)
    torch.testing.assert_close(first, plain, rtol=0, atol=1e-5)
    torch.testing.assert_close(again, plain, rtol=0, atol=1e-5)
    assert plain.abs().max() > 1e-3                            # a flow, not zeros


def test_other_weights_empty_the_cache_and_training_or_gradients_bypass_it():
    net, (img1, img2) = _net(), _pairs()
    cache = FirstImageCache()
    with torch.no_grad(), net.reusing_first_images(cache):
        net(img1, img2)
    assert len(cache.entries) == 5
    other = _net(seed=1)
    with torch.no_grad():
        want = other(img1, img2)[-1]
        with other.reusing_first_images(cache):
            assert len(cache.entries) == 0                     # the entries were the first network's
            got = other(img1, img2)[-1]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    n = cache.hits + cache.misses
    a = img1.clone().requires_grad_(True)
    with other.reusing_first_images(cache):
        other(a, img2)[-1].abs().sum().backward()              # gradients on: encoded as usual, differentiable
        other.train()
        with torch.no_grad():
            other(img1, img2)
        other.eval()
    assert cache.hits + cache.misses == n
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_the_cache_stays_within_its_byte_limit():
    net, (img1, img2) = _net(), _pairs(n_first=6, n_pairs=6)
    with torch.no_grad():
        probe = FirstImageCache()
        with net.reusing_first_images(probe):
            net(img1[:1], img2[:1])
        one = probe.nbytes
        cache = FirstImageCache(max_bytes=2 * one)
        with net.reusing_first_images(cache):
            net(img1, img2)
    assert one > 0 and len(cache.entries) == 2 and cache.nbytes == 2 * one   # the two newest kept


def test_main_job_synthetic_features_with_reused_onsets_match_and_do_not_depend_on_earlier_folds():
    est = at_input_size(get_estimator("srflownet", device="cpu"), 64, 32)   # shipped weights, resized as the main job
    onset01, apex01 = _pairs(n_first=4, n_pairs=10, size=32, seed=3)
    plain = compute_flow_features(est, onset01, apex01, 16, "minmax", 4)
    with reusing_onsets(est) as cache:
        got = compute_flow_features(est, onset01, apex01, 16, "minmax", 4)
    assert (cache.misses, cache.hits) == (4, 6)
    torch.testing.assert_close(got, plain, rtol=0, atol=1e-4)          # min-max maps in [0, 1]
    with reusing_onsets(est) as again:          # a new fold starts empty: its maps are the same bit for bit
        assert again is not cache and len(again.entries) == 0
        assert torch.equal(compute_flow_features(est, onset01, apex01, 16, "minmax", 4), got)
    with reusing_onsets(get_estimator("tvl1")) as nothing:
        assert nothing is None
