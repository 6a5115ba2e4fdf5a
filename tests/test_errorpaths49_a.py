"""Error paths 49 (group A, tensors): the input checks and fallbacks of the flow losses, regularizers, self-supervised
losses, classical estimators and the RANSAC decomposition that no test reached (coverage run at eccacd4). Each test
goes through the public function a caller uses and asserts the exception type and what its message names."""
from __future__ import annotations

import numpy as np
import pytest
import torch

# ------------------------------------------------------------------------------------------------ classical


def test_classical_estimators_name_what_they_were_given_instead_of_images():
    """flownet.classical.to_gray_uint8 (behind every classical estimate): a numpy array is named by its type, a tensor
    of two channels by its shape."""
    from flownet.classical import FarnebackEstimator
    est = FarnebackEstimator()
    arr = np.zeros((1, 1, 16, 16), np.float32)
    with pytest.raises(ValueError, match=r"images must be \(B, 1 or 3, H, W\) float tensors in \[0, 1\], got ndarray"):
        est.estimate(arr, arr)
    two = torch.zeros(1, 2, 16, 16)
    with pytest.raises(ValueError, match=r"float tensors in \[0, 1\], got \(1, 2, 16, 16\)"):
        est.estimate(two, two)


def test_tvl1_without_opencv_contrib_says_which_package_to_install(monkeypatch):
    """An OpenCV build without the contrib modules (opencv-python instead of opencv-contrib-python) has no cv2.optflow:
    get_estimator('tvl1') says which package to install instead of an AttributeError."""
    import cv2

    from flownet import get_estimator
    monkeypatch.delattr(cv2, "optflow")
    with pytest.raises(ImportError, match=r"cv2\.optflow is missing: install opencv-contrib-python\(-headless\)"):
        get_estimator("tvl1")


# ------------------------------------------------------------------------------------------------ decompose

class _FixedFlow:
    """A base estimator that returns one given flow whatever the images."""
    name = "fixed"

    def __init__(self, flow):
        self.flow = flow

    def estimate(self, img1, img2):
        return self.flow.expand(img1.shape[0], -1, -1, -1).clone()


def test_central_region_and_affine_field_refuse_impossible_sizes():
    from flownet.decompose import affine_field, central_region
    with pytest.raises(ValueError, match="region size must be positive, got 0x5"):
        central_region(0, 5)
    with pytest.raises(ValueError, match="region size must be positive, got 4x-1"):
        central_region(4, -1)
    with pytest.raises(ValueError, match=r"affine must be \(B, 2, 3\) \[A \| t\], got \(1, 3, 3\)"):
        affine_field(torch.eye(3)[None], 4, 4)
    with pytest.raises(ValueError, match=r"affine must be \(B, 2, 3\) \[A \| t\], got \(2, 3\)"):
        affine_field(torch.zeros(2, 3), 4, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"base": object()}, r"base estimator must have estimate\(img1, img2\), got object"),
    ({"threshold": 0.0}, r"threshold must be > 0 pixels, got 0\.0"),
    ({"threshold": float("nan")}, r"threshold must be > 0 pixels, got nan"),
    ({"model": "projective"}, r"model must be one of \['affine', 'similarity'\], got 'projective'"),
])
def test_ransac_decomposer_refuses_bad_settings(kwargs, message):
    from flownet.decompose import get_decomposer
    kwargs = {"base": _FixedFlow(torch.zeros(1, 2, 8, 8)), **kwargs}
    with pytest.raises(ValueError, match=message):
        get_decomposer("ransac", **kwargs)


def test_ransac_decomposer_estimate_is_the_base_estimators_total_flow():
    """RansacDecomposer.estimate (the total flow, as every estimator has it) returns the base estimator's flow
    unchanged, not one of the parts."""
    from flownet.decompose import RansacDecomposer
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0] = 1.0
    flow[:, 1, 4:8, 4:8] = 2.0                       # a local motion on a global shift
    dec = RansacDecomposer(_FixedFlow(flow))
    img = torch.zeros(1, 1, 16, 16)
    assert torch.equal(dec.estimate(img, img), flow)
    assert torch.equal(dec(img, img), flow)
    assert not torch.equal(dec.decompose(img, img)["head"], flow)


# ------------------------------------------------------------------------------------------------ losses

def test_sequence_loss_names_the_prediction_whose_shape_differs():
    """The message showed the first prediction's shape whichever stage differed, so a good first stage read
    'predictions [(1, 2, 8, 8)] do not match ground truth (1, 2, 8, 8)'; now the stage that differs is named."""
    from flownet.losses import sequence_loss
    gt = torch.zeros(1, 2, 8, 8)
    with pytest.raises(ValueError, match=r"^prediction 1 of 2 is \(1, 2, 4, 4\), which does not match the ground "
                                         r"truth \(1, 2, 8, 8\)"):
        sequence_loss([torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 4, 4)], gt)
    with pytest.raises(ValueError, match=r"^prediction 0 of 1 is \(2, 2, 8, 8\)"):
        sequence_loss(torch.zeros(2, 2, 8, 8), gt)


def test_srflownet_loss_refuses_an_unknown_regularizer_before_any_work():
    """The regularizer is checked before the sequence loss: with a batch of no valid pixel too, the message is about
    the regularizer (the setting to fix), not the batch's 'no valid pixel'."""
    from flownet.losses import srflownet_loss
    none_valid = torch.zeros(1, 8, 8, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"^unknown regularizer 'tv'; choose one of \['none', 'tvr', 'fdr', 'migar', "
                                         r"'igvar'\]$"):
        srflownet_loss([torch.zeros(1, 2, 8, 8)], torch.zeros(1, 2, 8, 8), none_valid, regularizer="tv")


# ------------------------------------------------------------------------------------------------ regularizers

def _smooth_flow(b=2, h=12, w=12):
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([torch.sin(xs / 3) + ys / 5, torch.cos(ys / 4)])[None].repeat(b, 1, 1, 1)


def _face_mask(b=2, h=12, w=12):
    m = torch.zeros(b, 1, h, w)
    m[..., 2:10, 3:9] = 1.0
    return m


def test_regularizers_take_one_tensor_as_a_list_of_one_and_a_mask_without_its_channel():
    """A single (B, 2, H, W) prediction counts as a list of one; a (B, H, W) mask as (B, 1, H, W)."""
    from flownet.regularizers import fdr, regularizer_loss, tvr
    f, m = _smooth_flow(), _face_mask()
    assert float(tvr(f)) > 0 and torch.equal(tvr(f), tvr([f]))
    assert float(fdr(f, m)) > 0 and torch.equal(fdr(f, m[:, 0]), fdr(f, m))
    img = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(regularizer_loss("igvar", f, img1=img, mask=m[:, 0]),
                       regularizer_loss("igvar", [f], img1=img, mask=m))


@pytest.mark.parametrize("call, message", [
    (lambda r: r.tvr([]), r"^empty list of flow predictions$"),
    (lambda r: r.tvr([_smooth_flow(), torch.zeros(2, 3, 12, 12)]),
     r"each flow prediction must be \(B, 2, H, W\), got \(2, 3, 12, 12\)"),
    (lambda r: r.regularizer_loss("fdr", _smooth_flow()), r"this regularizer needs the face mask M_bg \(B, 1, H, W\)"),
    (lambda r: r.fdr(_smooth_flow(), _face_mask(b=1)),
     r"mask \(1, 1, 12, 12\) does not match flow \(2, 2, 12, 12\); expected \(B, 1, H, W\)"),
    (lambda r: r.fdr(_smooth_flow(), _face_mask(h=10)), r"mask \(2, 1, 10, 12\) does not match flow"),
    (lambda r: r.fdr(_smooth_flow(), torch.ones(2, 2, 12, 12)), r"mask \(2, 2, 12, 12\) does not match flow"),
    (lambda r: r.regularizer_loss("migar", _smooth_flow(), img1=torch.rand(2, 2, 12, 12), mask=_face_mask()),
     r"img1 must be \(B, 1 or 3, H, W\), got \(2, 2, 12, 12\)"),
    (lambda r: r.regularizer_loss("migar", _smooth_flow(), img1=torch.rand(2, 1, 12, 12), mask=_face_mask(),
                                  mask_mode="edge"), r"mask_mode must be 'interior' or 'literal', got 'edge'"),
    (lambda r: r.regularizer_loss("IGVAR", _smooth_flow(), mask=_face_mask()), r"igvar needs the first image img1"),
])
def test_regularizers_refuse_bad_inputs_by_name(call, message):
    import flownet.regularizers as regularizers
    with pytest.raises(ValueError, match=message):
        call(regularizers)


# ------------------------------------------------------------------------------------------------ self-supervised

@pytest.mark.parametrize("call, message", [
    (lambda s: s.census_distance(np.zeros((1, 1, 8, 8)), torch.zeros(1, 1, 8, 8)),
     r"img1 must be a \(B, 1 or 3, H, W\) tensor in \[0, 1\], got ndarray"),
    (lambda s: s.census_distance(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8)),
     r"img2 must be a \(B, 1 or 3, H, W\) tensor in \[0, 1\], got \(1, 2, 8, 8\)"),
    (lambda s: s.census_distance(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9)),
     r"census_distance: image shapes differ: \(1, 1, 8, 8\) vs \(1, 1, 8, 9\)"),
    (lambda s: s.census_transform(torch.zeros(1, 1, 8, 8), window=4), r"census window must be odd and >= 3, got 4"),
    (lambda s: s.census_transform(torch.zeros(1, 1, 8, 8), window=1), r"census window must be odd and >= 3, got 1"),
    (lambda s: s.forward_backward_occlusion(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), alpha1=-0.1),
     r"alpha1 and alpha2 must be >= 0, got -0\.1, 0\.5"),
    (lambda s: s.forward_backward_occlusion(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8), alpha2=-1.0),
     r"alpha1 and alpha2 must be >= 0, got 0\.01, -1\.0"),
    (lambda s: s.forward_backward_occlusion([[0.0]], torch.zeros(1, 2, 8, 8)),
     r"flow_f must be a \(B, 2, H, W\) flow tensor in pixels, got list"),
    (lambda s: s.forward_backward_occlusion(torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 8, 8)),
     r"flow_b must be a \(B, 2, H, W\) flow tensor in pixels, got \(1, 3, 8, 8\)"),
    (lambda s: s.forward_backward_occlusion(torch.zeros(1, 2, 8, 8), torch.zeros(2, 2, 8, 8)),
     r"flow_b \(2, 2, 8, 8\) does not match \(1, 2, 8, 8\) in batch or H, W"),
    (lambda s: s.edge_aware_smoothness(torch.zeros(1, 2, 8, 6), torch.zeros(1, 1, 8, 8)),
     r"flow \(1, 2, 8, 6\) does not match \(1, 1, 8, 8\) in batch or H, W"),
    (lambda s: s.hallucinated_occlusion(torch.zeros(2, 1, 8, 8), torch.zeros(1, 1, 8, 8)),
     r"occ_teacher must be \(B, 1, H, W\) matching \(2, 1, 8, 8\), got \(1, 1, 8, 8\)"),
    (lambda s: s.hallucinated_occlusion(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8)),
     r"occ_teacher must be \(B, 1, H, W\) matching \(1, 1, 8, 8\), got \(1, 2, 8, 8\)"),
    (lambda s: s.superpixel_hallucination(torch.zeros(1, 1, 8, 8), labels=np.zeros((1, 8, 9), int)),
     r"superpixel labels must be \(B, H, W\) = \(1, 8, 8\), got \(1, 8, 9\)"),
])
def test_selfsup_losses_refuse_bad_inputs_by_name(call, message):
    import flownet.selfsup_losses as selfsup_losses
    with pytest.raises(ValueError, match=message):
        call(selfsup_losses)


def test_selfsup_occlusion_masks_may_come_without_their_channel():
    """A (B, H, W) occlusion map counts as (B, 1, H, W): the same hallucinated occlusion and the same loss."""
    from flownet.selfsup_losses import hallucinated_occlusion, occlusion_distillation_loss
    student = torch.zeros(2, 1, 8, 8)
    teacher = torch.zeros(2, 1, 8, 8)
    student[:, :, 2:5, 2:5] = 1.0
    got = hallucinated_occlusion(student, teacher[:, 0])
    assert torch.equal(got, hallucinated_occlusion(student, teacher)) and float(got.sum()) == 18.0
    g = torch.Generator().manual_seed(0)
    t, s = torch.randn(2, 2, 8, 8, generator=g), torch.randn(2, 2, 8, 8, generator=g)
    loss3 = occlusion_distillation_loss(t, t, s, s, got[:, 0], got[:, 0])
    assert float(loss3) > 0 and torch.equal(loss3, occlusion_distillation_loss(t, t, s, s, got, got))
