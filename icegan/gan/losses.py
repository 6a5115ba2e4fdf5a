"""ICE-GAN objectives (Eq. 4-8 of ``../shared/papers/icegan_identity_aware_capsule_gan.txt``).

* ``L_ip = L1(X_syn, X_apex) + α·L_per(X_on, X_syn)`` (Eq. 4, α = 0.1).
* ``L_cls = L_margin + β·L_rec`` (Eq. 5-6; m⁺ 0.9, m⁻ 0.1, λ 0.5, β 5e-4; L_rec = MSE of the
  reconstruction from the masked ExpCaps).
* ``L_gan`` (Eq. 7): binary cross-entropy on the AdvCaps lengths (index 1 = real, 0 = fake; each
  length is a probability); the generator uses the non-saturating form.
* ``L_tot = λ_adv·L_gan + λ_mes·L_ip + λ_mer·L_cls`` (Eq. 8; 0.1, 1, 1).
* :func:`diversity_hinge` (our addition, not in the paper): a bounded mode-seeking term that asks
  two noise draws of the same (onset, class) to differ.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor

from icegan.models.capsules import margin_loss

__all__ = ["adversarial_d_loss", "adversarial_g_loss", "classification_loss", "identity_preserving_loss",
           "margin_loss", "diversity_hinge"]

_EPS = 1e-6


def _bce(p: Tensor, target: float) -> Tensor:
    """Binary cross-entropy of probabilities ``p`` (any shape, in [0, 1]) against one target, in float32 outside
    autocast: CUDA autocast refuses ``F.binary_cross_entropy`` on probabilities ("unsafe to autocast"), which
    stopped ``train.amp`` GAN training at its first step, and a bf16 log near 0 or 1 is coarse anyway.

    ``p`` is clamped to [1e-6, 1 - 1e-6] in the forward value only (a straight-through clamp): a length beyond the
    clamp (D confidently wrong, e.g. a fake read as real 1e-7) gets the gradient of the clamp edge, ±1/1e-6 per
    element before the mean, where a hard clamp gave 0 and so no signal to G (non-saturating loss) or to D's
    correction. Inside the clamp the value and gradient are plain ``F.binary_cross_entropy``'s."""
    off = (torch.autocast(device_type=p.device.type, enabled=False)
           if torch.amp.is_autocast_available(p.device.type) else contextlib.nullcontext())   # e.g. the meta device
    with off:
        p = p.float()
        p = p + (p.clamp(_EPS, 1 - _EPS) - p).detach()          # p itself inside the clamp (adds an exact 0)
        return F.binary_cross_entropy(p, torch.full_like(p, target))


def adversarial_d_loss(adv_len_real: Tensor, adv_len_fake: Tensor) -> Tensor:
    """Discriminator side of Eq. 7 on AdvCaps lengths (B, 2): real images → (fake 0, real 1), synthetic → (1, 0)."""
    return 0.5 * (_bce(adv_len_real[:, 1], 1.0) + _bce(adv_len_real[:, 0], 0.0)
                  + _bce(adv_len_fake[:, 1], 0.0) + _bce(adv_len_fake[:, 0], 1.0))


def adversarial_g_loss(adv_len_fake: Tensor) -> Tensor:
    """Generator side of Eq. 7 (non-saturating): synthetic images should read as (fake 0, real 1)."""
    return 0.5 * (_bce(adv_len_fake[:, 1], 1.0) + _bce(adv_len_fake[:, 0], 0.0))


def classification_loss(exp_len: Tensor, labels: Tensor, recon: Tensor | None, target_img: Tensor | None,
                        beta: float = 5e-4, m_pos: float = 0.9, m_neg: float = 0.1, lam: float = 0.5) -> Tensor:
    """``L_cls = L_margin(exp_len, labels) + β·MSE(recon, target_img)`` (Eq. 6); no recon term when recon is None.

    ``exp_len`` (B, K), ``labels`` as in :func:`margin_loss`; ``recon`` and ``target_img`` (B, C, H, W) of one shape.
    Raises:
        ValueError: as :func:`margin_loss`; ``recon`` given (with β > 0) but ``target_img`` None or of another shape
            (no broadcasting).
    """
    loss = margin_loss(exp_len, labels, m_pos, m_neg, lam)
    if recon is not None and beta > 0:
        if target_img is None or recon.shape != target_img.shape:
            got = None if target_img is None else tuple(target_img.shape)
            raise ValueError(f"classification_loss: recon {tuple(recon.shape)} and target_img {got} must have "
                             "the same shape")
        loss = loss + beta * F.mse_loss(recon, target_img)
    return loss


def identity_preserving_loss(fake: Tensor, apex: Tensor | None, per_term: Tensor | None,
                             alpha: float = 0.1) -> Tensor:
    """``L_ip = L1(fake, apex) + α·per_term`` (Eq. 4); either part may be None (then it is left out).

    ``fake`` and ``apex`` (B, C, H, W) of one shape; ``per_term`` a scalar.
    Raises:
        ValueError: ``apex`` not of ``fake``'s shape (no broadcasting).
    """
    loss = fake.new_zeros(())
    if apex is not None:
        if apex.shape != fake.shape:
            raise ValueError(f"identity_preserving_loss: fake {tuple(fake.shape)} and apex {tuple(apex.shape)} "
                             "must have the same shape")
        loss = loss + F.l1_loss(fake, apex)
    if per_term is not None and alpha > 0:
        loss = loss + alpha * per_term
    return loss


def diversity_hinge(fake_a: Tensor, fake_b: Tensor, target: float = 0.01) -> Tensor:
    """Mode-seeking term: ``max(0, τ − mean|fake_a − fake_b|) / τ`` ∈ [0, 1].

    ``fake_a``, ``fake_b``: (B, C, H, W) generated from the same onsets and classes with different
    noise ``z``. Mode-seeking GANs (Mao et al., CVPR 2019) maximise the ratio of image to noise
    distance, ``|G(z1) − G(z2)| / |z1 − z2|``; for micro-expressions the images of two draws differ by
    a fraction of a grey level, where that ratio's reciprocal has huge gradients, so this form asks
    only for a mean absolute difference of ``τ`` (0.01 in [-1, 1] ≈ 1.3 grey levels) and its gradient
    is bounded by 1/τ per unit of image difference. Zero once the draws differ by τ or more.
    Raises:
        ValueError: shapes differ or ``target`` ≤ 0 or NaN.
    """
    if fake_a.shape != fake_b.shape:
        raise ValueError(f"diversity_hinge: shapes differ {tuple(fake_a.shape)} vs {tuple(fake_b.shape)}")
    if not target > 0:                  # NaN fails this too (``target <= 0`` let it through: a NaN loss)
        raise ValueError(f"diversity_hinge: target must be > 0, got {target}")
    return torch.clamp(target - (fake_a - fake_b).abs().mean(), min=0) / target
