"""Tests written by a mutation audit of the optical-flow training losses and flow plumbing (flownet.losses,
flownet.regularizers, flownet.selfsup_losses, flownet.resolution, flownet.classical, flownet.schedule,
flownet.frame_io, flownet.io): each one fails on a small deliberate change of the code that the earlier tests let pass
(named in the test's docstring). Expected values are worked out by hand in the comments, never copied from the code's
output."""
from __future__ import annotations

import pytest
import torch

from flownet.losses import NO_VALID_PIXEL, sequence_loss, srflownet_loss
from flownet.regularizers import fdr


# ------------------------------------------------------------------------------------------------ flownet.losses

def test_sequence_loss_refuses_a_batch_without_a_valid_pixel():
    """Every pixel masked out (``valid`` all False, or every ground-truth vector at least ``max_flow`` long) leaves
    nothing to average: the loss is refused with :data:`NO_VALID_PIXEL` (mutation killed: the ``n == 0`` check
    dropped, which returned 0 / 0 = NaN and would have trained the network on NaN gradients)."""
    gt = torch.zeros(1, 2, 3, 4)
    pred = gt + 1.0
    with pytest.raises(ValueError, match=f"^{NO_VALID_PIXEL}$"):
        sequence_loss([pred], gt, torch.zeros(1, 3, 4, dtype=torch.bool))
    far = torch.full_like(gt, 300.0)                # |(300, 300)| = 424 px >= the default max_flow of 400
    with pytest.raises(ValueError, match=f"^{NO_VALID_PIXEL}$"):
        sequence_loss([far + 1.0], far)
    with pytest.raises(ValueError, match=f"^{NO_VALID_PIXEL}$"):
        srflownet_loss([pred], gt, torch.zeros(1, 3, 4, dtype=torch.bool), regularizer="none")


# ------------------------------------------------------------------------------------------------ flownet.regularizers

def test_fdr_takes_the_absolute_value_of_a_downward_step():
    """FDR (SRFlow Eq. 11-12, module docstring: the mean absolute forward difference): v = 1 above row 3 and 0 from
    row 3 down has Dy v = -1 on one of the H - 1 difference rows, so FDR = 0.05 * |-1| / (H - 1) (mutation killed:
    ``dy.abs()`` dropped, which gave -0.05 / (H - 1): a negative regularizer that rewards downward steps)."""
    h, w = 8, 10
    f = torch.zeros(1, 2, h, w)
    f[:, 1, :3, :] = 1.0
    assert fdr([f], torch.ones(1, 1, h, w), lam=0.05).item() == pytest.approx(0.05 / (h - 1))


def test_fdr_with_a_stride_divides_by_it():
    """``stride`` s takes ``(f(x + s) - f(x)) / s``, a slope per pixel: on the ramp u = 0.5 x every difference is
    0.5 whatever the stride, so FDR = 0.05 * 0.5 for s = 1 and s = 2 alike (mutation killed: the division by s
    dropped, which doubled the stride-2 value)."""
    h, w = 6, 9
    f = torch.zeros(1, 2, h, w)
    f[:, 0] = 0.5 * torch.arange(float(w))
    ones = torch.ones(1, 1, h, w)
    for s in (1, 2):
        assert fdr([f], ones, lam=0.05, stride=s).item() == pytest.approx(0.05 * 0.5), s


# ---------------------------------------------------------------------------------------- flownet.selfsup_losses

def test_forward_backward_check_flags_flow_leaving_the_bottom_of_the_image():
    """Eq. 3.2 of the self-supervised thesis: p is occluded when p + w_f(p) leaves the image. A consistent
    downward flow of 1.5 px (backward -1.5 px) on a 7 x 5 image sends rows 5 and 6 to y = 6.5 and 7.5, beyond the
    last row H - 1 = 6; rows 0-4 stay in (mutation killed: the vertical bound ``ty > h - 1`` loosened to ``ty > h``,
    which let row 5 pass while the horizontal bound stayed right; the earlier tests moved pixels along x only)."""
    from flownet.selfsup_losses import forward_backward_occlusion
    h, w = 7, 5
    f = torch.zeros(1, 2, h, w)
    f[:, 1] = 1.5
    occ = forward_backward_occlusion(f, -f)
    expected = torch.zeros(1, 1, h, w)
    expected[..., 5:, :] = 1.0
    assert torch.equal(occ, expected)


def test_superpixel_hallucination_fills_with_grey_noise_over_the_whole_unit_range():
    """SelFlow's occlusion hallucination (thesis Sec. 3.2, Fig. 3.6): the chosen superpixels get i.i.d. U(0, 1)
    noise, the same value in every colour channel. One superpixel covering a 32 x 32 RGB image, chosen once: all
    1024 pixels are noise, so their values reach above 0.9 and below 0.1 (each missed with probability 0.9^1024)
    and average 0.5 ± 0.05 (standard error 0.29 / 32 = 0.009) (mutation killed: the noise scaled into [0, 0.5],
    which the earlier tests, checking only which pixels changed, let pass)."""
    import numpy as np

    from flownet.selfsup_losses import superpixel_hallucination
    img = torch.zeros(1, 3, 32, 32)
    out, mask = superpixel_hallucination(img, n_noisy=(1, 1), rng=np.random.default_rng(0),
                                         labels=np.zeros((1, 32, 32), np.int64))
    assert torch.equal(mask, torch.ones(1, 1, 32, 32))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    assert 0.0 <= out.min() < 0.1 and 0.9 < out.max() < 1.0
    assert float(out.mean()) == pytest.approx(0.5, abs=0.05)


def test_superpixel_hallucination_fills_as_many_distinct_superpixels_as_drawn():
    """``n_noisy = (3, 3)``: three distinct superpixels per image are filled (thesis Sec. 3.2: a few random
    superpixels). With four 4 x 4 quadrant superpixels of an 8 x 8 image, each of six images has exactly 3 x 16 = 48
    noisy pixels, three whole quadrants (mutation killed: the superpixels drawn with replacement, which filled one
    quadrant twice and so fewer pixels than asked; all six images drawn distinct by chance has probability
    (4 · 3 · 2 / 4³)^6 ≈ 0.003)."""
    import numpy as np

    from flownet.selfsup_losses import superpixel_hallucination
    quad = np.zeros((8, 8), np.int64)
    quad[:4, 4:], quad[4:, :4], quad[4:, 4:] = 1, 2, 3
    _, mask = superpixel_hallucination(torch.zeros(6, 1, 8, 8), n_noisy=(3, 3), rng=np.random.default_rng(0),
                                       labels=np.stack([quad] * 6))
    assert mask.sum(dim=(1, 2, 3)).tolist() == [48.0] * 6
    for m in mask[:, 0].numpy():                        # each quadrant wholly noisy or wholly kept
        assert all(m[quad == q].min() == m[quad == q].max() for q in range(4))


# ------------------------------------------------------------------------------------------------ flownet.classical

def test_classical_estimator_computes_each_pair_of_a_batch_from_its_own_images():
    """A batch of two pairs, a still one (I2 = I1) and one whose texture moves 2 px to the right: Farneback gives
    about 0 px for the first and u ≈ +2 px, v ≈ 0 for the second (medians over the interior, away from the wrapped
    columns) (mutation killed: every pair of the batch computed from the first pair's images, which the earlier
    single-pair tests let pass and which gave the moving pair the still pair's zero flow)."""
    from flownet.classical import FarnebackEstimator
    g = torch.Generator().manual_seed(0)
    tex = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 72, 72, generator=g), 5, stride=1, padding=2)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    moved = torch.roll(tex, shifts=2, dims=-1)              # I2(x) = I1(x - 2): flow u = +2 px
    flow = FarnebackEstimator().estimate(torch.cat([tex, tex]), torch.cat([tex, moved]))
    inner = flow[..., 12:-12, 12:-12]
    assert inner[0].abs().median().item() < 0.1
    assert inner[1, 0].median().item() == pytest.approx(2.0, abs=0.1)
    assert inner[1, 1].median().item() == pytest.approx(0.0, abs=0.1)


def test_farneback_estimator_passes_every_parameter_to_opencv():
    """``FarnebackEstimator(**params)`` is ``cv2.calcOpticalFlowFarneback`` on the uint8 grey frames with those
    parameters (flownet.classical docstring): with every parameter off its default, the estimate equals OpenCV's own
    call on the same frames, and differs from the defaults' (so the comparison can tell) (mutation killed: the
    ``winsize`` argument ignored in favour of 15, which no earlier test set)."""
    import cv2
    import numpy as np

    from flownet.classical import FarnebackEstimator, to_gray_uint8
    g = torch.Generator().manual_seed(1)
    a = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 40, 48, generator=g), 3, stride=1, padding=1)
    b = torch.roll(a, shifts=(1, 2), dims=(-2, -1))
    params = dict(pyr_scale=0.6, levels=2, winsize=9, iterations=2, poly_n=7, poly_sigma=1.5, flags=0)
    got = FarnebackEstimator(**params).estimate(a, b)[0].permute(1, 2, 0).numpy()
    want = cv2.calcOpticalFlowFarneback(to_gray_uint8(a)[0], to_gray_uint8(b)[0], None, **params)
    np.testing.assert_array_equal(got, want)
    default = FarnebackEstimator().estimate(a, b)[0].permute(1, 2, 0).numpy()
    assert np.abs(default - want).max() > 0.01


# ------------------------------------------------------------------------------------------------ flownet.io

def test_a_flo_written_by_hand_reads_into_the_u_v_layout_of_its_pixels(tmp_path):
    """Middlebury .flo (flownet.io docstring): float32 202021.25, int32 width, int32 height, then per pixel, row by
    row, u and v. A 3-wide, 2-high file written with struct holding u = 10 x + y and v = -(10 x + y) at pixel
    (x, y) reads as an (H, W, 2) = (2, 3, 2) array with flow[y, x] = (u, v), and :func:`flow_to_tensor` (the
    Middlebury and KITTI loaders' layout) gives (2, H, W) with [0, y, x] = u and [1, y, x] = v (mutation killed:
    ``flow_to_tensor`` transposing to (2, W, H), which no earlier test read: the ground truth of every
    non-square Middlebury pair would be refused or, for a square one, scored against its transpose)."""
    import struct

    from flownet.io import flow_to_tensor, read_flo
    w, h = 3, 2
    values = [c for y in range(h) for x in range(w) for c in (10.0 * x + y, -(10.0 * x + y))]
    p = tmp_path / "hand.flo"
    p.write_bytes(struct.pack("<fii", 202021.25, w, h) + struct.pack(f"<{len(values)}f", *values))
    flow, valid = read_flo(p)
    assert flow.shape == (2, 3, 2) and valid.all()
    assert flow[1, 2].tolist() == [21.0, -21.0] and flow[0, 1].tolist() == [10.0, -10.0]
    t = flow_to_tensor(flow)
    assert tuple(t.shape) == (2, 2, 3)
    assert t[0].tolist() == [[0.0, 10.0, 20.0], [1.0, 11.0, 21.0]]
    assert t[1].tolist() == [[-0.0, -10.0, -20.0], [-1.0, -11.0, -21.0]]


def test_read_image_returns_rgb_channels_of_a_colour_frame(tmp_path):
    """``read_image`` gives (C, H, W) in [0, 1] in RGB order (its docstring), whereas OpenCV decodes BGR: a pure red
    4 x 5 PNG (written by OpenCV as B, G, R = 0, 0, 255) reads as channel 0 = 1, channels 1 and 2 = 0, and a
    (B, G, R) = (51, 102, 204) one as (0.8, 0.4, 0.2). The order matters downstream: the grey conversions weigh R by
    0.299 and B by 0.114 (mutation killed: ``image_tensor`` keeping OpenCV's BGR order)."""
    import cv2
    import numpy as np

    from flownet.io import read_image
    for bgr, rgb in (((0, 0, 255), (1.0, 0.0, 0.0)), ((51, 102, 204), (0.8, 0.4, 0.2))):
        p = tmp_path / "c.png"
        assert cv2.imwrite(str(p), np.tile(np.array(bgr, np.uint8), (4, 5, 1)))
        img = read_image(p)
        assert tuple(img.shape) == (3, 4, 5)
        assert torch.allclose(img, torch.tensor(rgb).view(3, 1, 1).expand(3, 4, 5), rtol=0, atol=1e-6), bgr


def test_photometric_loss_with_precomputed_census_equals_the_loss_that_computes_it():
    """photometric_loss(census=(C(I1), C(I2))) is the same loss as without them: the backward term compares I2 with
    the warped I1 through I2's census (thesis Eq. 3.34, second sum). Mutation killed: the backward term reusing
    I1's census (c1 for c2), which only a 35-s training test caught before. Two different images and still flows:
    the forward term is H(I1, I2), the backward H(I2, I1); with I1's census in both, the backward term becomes
    H(I1, I1) = 0 inside the border band, so the loss drops to about ψ(0) + that forward term."""
    from flownet.selfsup_losses import census_transform, photometric_loss
    g = torch.Generator().manual_seed(0)
    img1, img2 = torch.rand(1, 1, 16, 16, generator=g), torch.rand(1, 1, 16, 16, generator=g)
    still = torch.zeros(1, 2, 16, 16)
    plain = photometric_loss(img1, img2, still, still)
    given = photometric_loss(img1, img2, still, still, census=(census_transform(img1), census_transform(img2)))
    assert torch.allclose(given, plain, atol=1e-6)
    assert plain > 2 * 0.01 ** 0.4 + 0.1             # different images: well above the floor 2 ψ(0)
