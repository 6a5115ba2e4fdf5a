"""Flow-paper audit fixes (flownet/losses.py, metrics.py, regularizers.py, models/inputs.py):

* MIGAR / IGVAR check img1 against the flow (B, H, W) and name img1 in the refusal (a batch-1 image was broadcast
  over a batch of 4; a 64x64 image failed inside torch; IGVAR blamed the mask and called the image the flow);
* integer (0-255) images are refused where [0, 1] float is required (MIGAR gave exactly 0.0, the networks ran on
  them silently);
* a valid mask with values other than 0 / 1 is refused by the sequence loss and the metrics (``.bool()`` counted
  a weight of 0.2 as a valid pixel), while bool and 0 / 1 masks keep their values.
"""
from __future__ import annotations

import pytest
import torch

from flownet.losses import sequence_loss, srflownet_loss
from flownet.metrics import flow_metrics, valid_pixel_count
from flownet.models.inputs import rgb01_batch
from flownet.models.srflownet import SRFlowNet
from flownet.regularizers import igvar, igvar_weights, image_gradient_magnitude, migar, regularizer_loss


@pytest.fixture
def flows():
    torch.manual_seed(0)
    return [torch.randn(4, 2, 32, 32)]


@pytest.mark.parametrize("name", ["migar", "igvar"])
def test_img1_of_another_batch_size_is_refused_naming_img1(flows, name):
    mask = torch.ones(4, 1, 32, 32)
    with pytest.raises(ValueError, match=r"^img1 \(1, 3, 32, 32\) does not match the flow \(4, 2, 32, 32\)"):
        regularizer_loss(name, flows, img1=torch.rand(1, 3, 32, 32), mask=mask)


@pytest.mark.parametrize("fn", [migar, igvar])
def test_img1_of_another_size_is_refused_naming_img1(flows, fn):
    mask = torch.ones(4, 1, 32, 32)
    with pytest.raises(ValueError, match=r"^img1 \(4, 3, 64, 64\) does not match the flow \(4, 2, 32, 32\)"):
        fn(flows, torch.rand(4, 3, 64, 64), mask)
    with pytest.raises(ValueError, match=r"^img1 must be \(B, 1 or 3, H, W\), got \(4, 2, 32, 32\)"):
        fn(flows, torch.rand(4, 2, 32, 32), mask)


def test_igvar_weights_mask_error_does_not_call_the_image_a_flow():
    with pytest.raises(ValueError, match=r"mask \(1, 1, 8, 8\) does not match image gradient \(1, 1, 16, 16\)"):
        igvar_weights(torch.rand(1, 3, 16, 16), torch.ones(1, 1, 8, 8))


@pytest.mark.parametrize("name", ["migar", "igvar"])
def test_integer_images_are_refused_by_the_regularizers(flows, name):
    img = (torch.rand(4, 3, 32, 32) * 255).to(torch.uint8)
    with pytest.raises(ValueError, match=r"img1 must be a floating-point image in \[0, 1\], got torch.uint8"):
        regularizer_loss(name, flows, img1=img, mask=torch.ones(4, 1, 32, 32))
    with pytest.raises(ValueError, match=r"image must be a floating-point image in \[0, 1\], got torch.int64"):
        image_gradient_magnitude(torch.zeros(1, 1, 8, 8, dtype=torch.long))
    # a float image is still accepted, with the value of before (finite, positive on random flow)
    assert float(regularizer_loss(name, flows, img1=img.float() / 255, mask=torch.ones(4, 1, 32, 32))) > 0


def test_integer_images_are_refused_by_the_networks():
    with pytest.raises(ValueError, match=r"images must be a floating-point image in \[0, 1\], got torch.uint8"):
        rgb01_batch(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    a = (torch.rand(1, 1, 64, 64) * 255).to(torch.uint8)
    with torch.no_grad(), pytest.raises(ValueError, match=r"got torch.uint8"):
        SRFlowNet().eval()(a, a, iters=1)


def test_a_valid_mask_of_weights_is_refused_by_the_loss_and_the_metrics():
    gt, pred = torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 4, 4)
    weights = torch.full((1, 4, 4), 0.2)
    msg = r"valid mask must be torch.bool or hold only 0 and 1 \(1 = valid pixel\), got torch.float32 with other"
    with pytest.raises(ValueError, match=msg):
        sequence_loss([pred], gt, weights)
    with pytest.raises(ValueError, match=msg):
        srflownet_loss([pred], gt, weights, regularizer="tvr")
    with pytest.raises(ValueError, match=msg):
        flow_metrics(pred, gt, weights)
    with pytest.raises(ValueError, match=msg.replace("float32", "uint8")):
        valid_pixel_count(gt, torch.full((1, 4, 4), 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match=msg):
        flow_metrics(pred, gt, torch.full((1, 4, 4), float("nan")))


def test_bool_valid_masks_keep_their_values():
    """An error of (1, 1) px everywhere: the sequence loss sums |du| + |dv| (2.0, twice RAFT's channel mean),
    the EPE is sqrt(2); one of 16 pixels invalid changes neither."""
    gt, pred = torch.zeros(1, 2, 4, 4), torch.ones(1, 2, 4, 4)
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[0, 0, 0] = False
    assert float(sequence_loss([pred], gt, valid)) == pytest.approx(2.0)
    assert float((valid[:, None] * (pred - gt).abs()).float().mean()) == pytest.approx(2.0 * 15 / 16 / 2)
    assert flow_metrics(pred, gt, valid)["EPE"] == pytest.approx(2 ** 0.5)
    assert valid_pixel_count(gt, valid) == 15
    _, parts = srflownet_loss([pred], gt, valid, regularizer="none")
    assert parts["epe_loss"] == pytest.approx(2.0)
    # a 0 / 1 mask of another dtype scores as its bool form
    for dtype in (torch.float32, torch.uint8):
        v = valid.to(dtype)
        pred2 = pred.clone()
        pred2[0, :, 0, 0] = 50.0                           # a wrong flow where nothing is valid
        assert float(sequence_loss([pred2], gt, v)) == float(sequence_loss([pred2], gt, valid))
        assert flow_metrics(pred2, gt, v) == flow_metrics(pred2, gt, valid)
        assert valid_pixel_count(gt, v) == 15
