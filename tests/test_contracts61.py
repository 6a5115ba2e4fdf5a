"""Docstring contracts (review 61): bad inputs that used to pass silently, truncate or fail deep inside torch / numpy
are refused with a ValueError naming the argument; valid inputs give the values they gave before."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from flownet.losses import sequence_loss
from flownet.resolution import resize_flow
from flownet.strain import flow_features
from icegan.data.align import box_matrix
from icegan.data.features import recenter_flow
from icegan.gan.losses import diversity_hinge
from icegan.gan.motion import class_mean_flow
from icegan.significance import check_bootstrap_settings, subject_confusions, subject_interval


# 1. sequence_loss: the valid mask must be (B, H, W)

def test_sequence_loss_masks_per_sample():
    """Only sample 1 is wrong (by (1, 1) px) and only sample 0 is valid: the loss is 0.0. Passed before the fix too:
    it guards that a (B, H, W) mask, the valid input, is used unchanged by the new shape check."""
    gt = torch.zeros(2, 2, 4, 4)
    pred = gt.clone()
    pred[1] += 1.0
    v = torch.zeros(2, 4, 4, dtype=torch.bool)
    v[0] = True
    assert float(sequence_loss([pred], gt, v)) == 0.0
    assert float(sequence_loss([pred], gt)) == pytest.approx(1.0)       # half the pixels off by 2 (|du| + |dv|)


@pytest.mark.parametrize("shape", [(2, 1, 4, 4), (4, 4), (1, 4, 4), (2, 4, 5)])
def test_sequence_loss_refuses_a_valid_mask_of_another_shape(shape):
    gt = torch.zeros(2, 2, 4, 4)
    with pytest.raises(ValueError, match=r"valid mask \(.*\) must be \(B, H, W\) = \(2, 4, 4\)"):
        sequence_loss([gt + 1.0], gt, torch.ones(shape, dtype=torch.bool))


# 2. subject_confusions / subject_interval: whole class ids only

def _pred(y_true):
    return pd.DataFrame({"subject": ["a/1", "a/1", "a/2"], "y_true": y_true, "y_pred": [0, 1, 2]})


@pytest.mark.parametrize("ids", [[0, 1.7, 2], [0, np.nan, 2]])
def test_subject_confusions_refuses_fractional_or_nan_class_ids(ids):
    with pytest.raises(ValueError, match=r"^y_true must hold integer class ids"):
        subject_confusions(_pred(ids), ["a/1", "a/2"])
    with pytest.raises(ValueError, match=r"^y_true must hold integer class ids"):
        subject_interval(_pred(ids).assign(subject=["a/1", "a/2", "a/3"]), resamples=200)


def test_subject_confusions_counts_whole_float_ids_as_before():
    cms = subject_confusions(_pred([0.0, 1.0, 2.0]), ["a/1", "a/2"])
    assert cms.tolist() == [[[1, 0, 0], [0, 1, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 1]]]


# 3. class_mean_flow: integer labels only

@pytest.mark.parametrize("labels", [torch.tensor([0.5, 1.7, 1.2, 0.9]), torch.tensor([0.0, 1.0, 2.0, 0.0]),
                                    torch.tensor([True, False, True, False])])
def test_class_mean_flow_refuses_float_or_bool_labels(labels):
    faces = torch.zeros(4, 1, 6, 6)
    with pytest.raises(ValueError, match=r"class_mean_flow: labels must be integer class ids, got torch\.(float|bool)"):
        class_mean_flow(faces, faces, labels, 3, flows=torch.randn(4, 2, 6, 6))


# 4. resize_flow / flow_features: sizes and modes

@pytest.mark.parametrize("size", [8, (8,), (8, 8, 8), (7.9, 8), (8, 0), (8, float("nan")), (True, 8), "88"])
def test_resize_flow_refuses_a_size_that_is_not_two_whole_numbers(size):
    with pytest.raises(ValueError, match=r"^resize_flow: size must be \(H, W\), two whole numbers >= 1, got"):
        resize_flow(torch.ones(1, 2, 4, 4), size)


def test_resize_flow_values_unchanged():
    """Passed before the fix too: it guards that valid sizes (whole numbers as ints, floats, numpy ints or a
    torch.Size) give the same flow, its u and v scaled by the width and height ratios, under the new size check."""
    out = resize_flow(torch.ones(1, 2, 4, 4), (8, 2))
    assert out.shape == (1, 2, 8, 2)
    assert out.mean((0, 2, 3)).tolist() == [0.5, 2.0]
    assert torch.equal(resize_flow(torch.ones(1, 2, 4, 4), (8.0, np.int64(2))), out)
    assert torch.equal(resize_flow(torch.ones(1, 2, 4, 4), torch.Size([8, 2])), out)


@pytest.mark.parametrize("size", [2.5, 0, (8, 8), float("nan"), True])
def test_flow_features_refuses_a_size_that_is_not_one_whole_number(size):
    with pytest.raises(ValueError, match=r"^flow_features: size must be one whole number >= 1, got"):
        flow_features(torch.randn(2, 2, 10, 12), size)


def test_flow_features_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match=r"^flow_features: mode must be one of .*'bilinear'.*, got 'zz'"):
        flow_features(torch.randn(2, 2, 10, 12), 7, mode="zz")


def test_flow_features_values_unchanged_for_a_whole_float_size():
    flow = torch.randn(2, 2, 10, 12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(flow_features(flow, 7.0), flow_features(flow, 7))
    assert flow_features(flow, 7, mode="nearest").shape == (2, 3, 7, 7)


# 5. check_bootstrap_settings: resamples a whole number >= 100

@pytest.mark.parametrize("resamples", [float("nan"), 150.5, 200.0, float("inf"), True, "200"])
def test_bootstrap_resamples_must_be_a_whole_number(resamples):
    with pytest.raises(ValueError, match=r"^--resamples must be a whole number of resamples \(an int >= 100\), got"):
        check_bootstrap_settings(resamples, 0.95, resamples_name="--resamples")
    with pytest.raises(ValueError, match=r"^resamples must be a whole number of resamples"):
        subject_interval(_pred([0, 1, 2]).assign(subject=["a/1", "a/2", "a/3"]), resamples=resamples)


def test_bootstrap_resamples_whole_numbers_pass():
    check_bootstrap_settings(100, 0.95)
    check_bootstrap_settings(np.int64(9999), 0.95)
    with pytest.raises(ValueError, match=r"^resamples must be >= 100 \(percentile intervals need .*got 99$"):
        check_bootstrap_settings(99)


# 6. NaN fails the guards of box_matrix's margin and diversity_hinge's target

def test_box_matrix_refuses_a_nan_margin():
    pts = np.random.default_rng(0).random((68, 2)) * 100
    with pytest.raises(ValueError, match=r"^box_matrix: margin must be ≥ 0, got nan"):
        box_matrix(pts, float("nan"))


def test_diversity_hinge_refuses_a_nan_target():
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match=r"^diversity_hinge: target must be > 0, got nan"):
        diversity_hinge(x, x, float("nan"))
    assert float(diversity_hinge(x, x)) == 1.0


# 7. recenter_flow: u, v in [-0.5, 1.5] for features in [0, 1]

def test_recenter_flow_bound_for_unit_range_features():
    """Passed before the fix too: it guards that features in [0, 1], the valid input, are recentred as before (flow
    channels within [-0.5, 1.5], the bound reached at an extreme median; the third channel untouched)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 8, 8, generator=g)
    x[0, :2] = 0.0
    x[1, :2, :4] = 1.0                      # a median at an extreme: the bound is reached
    x[1, :2, 4:] = 0.0
    x[1, :2, 4, :] = 1.0                    # more ones than zeros: median 1, zeros go to -0.5
    out = recenter_flow(x)
    assert float(out[:, :2].min()) >= -0.5 and float(out[:, :2].max()) <= 1.5
    assert float(out[1, :2].min()) == -0.5
    assert torch.equal(out[:, 2], x[:, 2])
