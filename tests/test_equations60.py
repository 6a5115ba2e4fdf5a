"""Equation edge cases (review 60): the GAN BCE clamp passes gradients, FDR's stride range, an empty prediction list
for the sequence loss, and squash on integer input."""
from __future__ import annotations

import math

import pytest
import torch

from flownet.losses import sequence_loss
from flownet.regularizers import fdr
from icegan.gan.losses import adversarial_d_loss, adversarial_g_loss
from icegan.models.capsules import squash


def test_g_loss_gradient_survives_a_confidently_wrong_discriminator():
    """D reads a fake as (fake 1 - 1e-7, real 1e-7), outside the clamp [1e-6, 1 - 1e-6]. The loss stays -ln(1e-6)
    (forward value of the clamp), and the gradient is that at the clamp edge, 0.5 / 1e-6 per term, pointing towards
    'real': raise the real length, lower the fake one. The hard clamp gave a zero gradient here."""
    p = torch.tensor([[1 - 1e-7, 1e-7]], dtype=torch.float64, requires_grad=True)
    loss = adversarial_g_loss(p)
    loss.backward()
    assert loss.item() == pytest.approx(-math.log(1e-6), rel=1e-3)     # 1 - 1e-6 is float32: 1 - 1.013e-6
    g_fake, g_real = p.grad[0].tolist()
    assert g_real < 0 < g_fake                                  # gradient descent raises real, lowers fake
    assert g_real == pytest.approx(-0.5 / 1e-6, rel=1e-3) and g_fake == pytest.approx(0.5 / 1.013e-6, rel=1e-3)


def test_d_loss_gradient_survives_a_real_image_scored_fake():
    """D calls a real image fake with lengths (1 - 5e-7, 5e-7): D's loss must still push its real length up."""
    real = torch.tensor([[1 - 5e-7, 5e-7]], dtype=torch.float64, requires_grad=True)
    adversarial_d_loss(real, torch.tensor([[0.9, 0.1]])).backward()
    g_fake, g_real = real.grad[0].tolist()
    assert g_real < 0 < g_fake and abs(g_real) > 1e5


@pytest.mark.parametrize("pf", [0.3, 0.99, 1 - 1e-5])
def test_bce_forward_value_and_gradient_unchanged_inside_the_clamp(pf):
    """For probabilities inside [1e-6, 1 - 1e-6] the loss and its gradient are the plain BCE's (float32):
    loss 0.5·(-ln(1 - pf) - ln(1 - pf)) = -ln(1 - pf) on lengths (fake pf, real 1 - pf)."""
    p = torch.tensor([[pf, 1 - pf]], requires_grad=True)
    loss = adversarial_g_loss(p)
    loss.backward()
    q = p.detach().clone().requires_grad_(True)
    ref = 0.5 * (torch.nn.functional.binary_cross_entropy(q[:, 1], torch.ones(1))
                 + torch.nn.functional.binary_cross_entropy(q[:, 0], torch.zeros(1)))
    ref.backward()
    assert loss.item() == ref.item()                          # bit-identical forward value
    assert torch.equal(p.grad, q.grad)


@pytest.mark.parametrize("stride", [0, -1, 4, 7])
def test_fdr_rejects_a_stride_outside_1_to_min_hw(stride):
    """On a 4x4 flow a stride of 0 crashed inside torch and a stride >= 4 returned NaN (an empty difference grid)."""
    flow = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"fdr: stride must be in \[1, 4\) .*got " + str(stride)):
        fdr([flow], torch.ones(1, 1, 4, 4), stride=stride)


def test_fdr_stride_bound_is_the_smaller_side():
    """H = 4, W = 8: stride 4 leaves no row difference (NaN before); stride 3 is the largest allowed and is finite."""
    flow = torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match=r"\[1, 4\)"):
        fdr([flow], torch.ones(1, 1, 4, 8), stride=4)
    assert torch.isfinite(fdr([flow], torch.ones(1, 1, 4, 8), stride=3))


def test_sequence_loss_rejects_an_empty_prediction_list():
    """sequence_loss([], gt) returned the Python float 0.0 (no graph, no .backward()); it names the problem."""
    with pytest.raises(ValueError, match="empty list of flow predictions"):
        sequence_loss([], torch.zeros(1, 2, 4, 4))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_squash_rejects_non_floating_input(dtype):
    """An integer tensor was silently squashed to zeros ((3, 4) -> (0, 0) instead of (0.577, 0.769))."""
    with pytest.raises(TypeError, match="squash: s must be a floating-point tensor"):
        squash(torch.tensor([[3, 4]]).to(dtype))


def test_squash_float_unchanged():
    """(3, 4): length 5 maps to 25/26 along (0.6, 0.8)."""
    v = squash(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    assert torch.allclose(v, torch.tensor([[0.6, 0.8]], dtype=torch.float64) * 25 / 26, rtol=0, atol=1e-7)
