"""Class-conditional motion prior for the ICE-GAN generator's motion head (our addition, not in the paper).

The prior of class ``k`` is the mean optical flow onset → apex over the *training* pairs of class
``k`` (never the held-out subjects: :func:`icegan.gan.trainer.train_gan` computes it from the pairs
it is given). With ``symmetric=True`` it is also averaged with its left-right mirror image
(``u → −u(flipped)``, ``v → v(flipped)``): training flips pairs horizontally at random, and the
mirror-averaged mean is the mean flow of that augmented distribution.

Why: the paper's generator (``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Section
III-A) has to discover expression motion from an apex-only capsule discriminator; in our CPU
budget it did not (controllability at chance, docs/benchmarks.md, ICE-GAN section). The prior
gives the decoder a class-specific displacement to start from; the generator learns a per-face
correction and an intensity residual on top (:class:`icegan.models.generator.Generator`,
``motion_head``).

Flow is computed with the classical estimators of :mod:`flownet.classical` (Dual TV-L1 by default;
Farneback for quick tests), on the faces quantised to uint8 as OpenCV expects.
"""
from __future__ import annotations

import logging

import torch
from torch import Tensor

__all__ = ["class_mean_flow", "mirror_flow", "pair_flows", "PRIOR_METHODS"]

log = logging.getLogger(__name__)

#: flow methods the prior can be computed with
PRIOR_METHODS = ("tvl1", "farneback")


def mirror_flow(flow: Tensor) -> Tensor:
    """Left-right mirror of flow fields (…, 2, H, W): the flow of the horizontally flipped image pair.

    ``u'(x, y) = −u(W−1−x, y)``, ``v'(x, y) = v(W−1−x, y)``. An involution: mirror(mirror(f)) = f.
    Raises:
        ValueError: channel dimension (−3) is not 2.
    """
    if flow.dim() < 3 or flow.shape[-3] != 2:
        raise ValueError(f"mirror_flow expects (..., 2, H, W), got {tuple(flow.shape)}")
    f = flow.flip(-1)
    return torch.stack([-f[..., 0, :, :], f[..., 1, :, :]], dim=-3)


def pair_flows(onset: Tensor, apex: Tensor, method: str = "tvl1") -> Tensor:
    """The classical optical flow onset → apex of every pair, as :func:`class_mean_flow` averages it: each pair on
    its own, so the flows of a subset of pairs are those rows of the flows of all (the main job computes them once
    per run and hands each fold its rows).

    Args:
        onset, apex: (N, 1, H, W) float in [-1, 1] (the GAN's range).
        method: ``tvl1`` (OpenCV Dual TV-L1, default parameters) or ``farneback``.
    Returns:
        (N, 2, H, W) float32 flow in pixels (channel 0 = u, 1 = v).
    Raises:
        ValueError: unknown method, or shapes that are not two equal (N, 1, H, W).
    """
    if method not in PRIOR_METHODS:
        raise ValueError(f"motion prior method must be one of {PRIOR_METHODS}, got {method!r}")
    if onset.shape != apex.shape or onset.dim() != 4 or onset.shape[1] != 1:
        raise ValueError(f"pair_flows: onset {tuple(onset.shape)} and apex {tuple(apex.shape)} must be (N, 1, H, W)")
    from flownet.classical import FarnebackEstimator, TVL1Estimator
    n, _, h, w = onset.shape
    est = TVL1Estimator() if method == "tvl1" else FarnebackEstimator()
    return torch.cat([est((onset[i:i + 64].float().cpu() + 1) / 2, (apex[i:i + 64].float().cpu() + 1) / 2)
                      for i in range(0, n, 64)]) if n else torch.zeros(0, 2, h, w)


def class_mean_flow(onset: Tensor, apex: Tensor, labels: Tensor, n_classes: int, method: str = "tvl1",
                    symmetric: bool = True, flows: Tensor | None = None) -> Tensor:
    """Per-class mean optical flow onset → apex.

    Args:
        onset, apex: (N, 1, H, W) float in [-1, 1] (the GAN's range).
        labels: (N,) class ids in [0, n_classes), of an integer dtype (float and bool labels are refused).
        method: ``tvl1`` (OpenCV Dual TV-L1, default parameters) or ``farneback``.
        symmetric: average each class mean with its mirror (:func:`mirror_flow`).
        flows: precomputed (N, 2, H, W) flows in pixels (then ``method`` is not used).
    Returns:
        (n_classes, 2, H, W) float32 flow in pixels (channel 0 = u, 1 = v); a class without pairs
        gets zeros (logged as a warning).
    Raises:
        ValueError: unknown method, or shapes / labels inconsistent (labels not (N,), not of an integer dtype, or
            outside [0, n_classes)).
    """
    if method not in PRIOR_METHODS:
        raise ValueError(f"motion prior method must be one of {PRIOR_METHODS}, got {method!r}")
    if onset.shape != apex.shape or onset.dim() != 4 or onset.shape[1] != 1:
        raise ValueError(f"class_mean_flow: onset {tuple(onset.shape)} and apex {tuple(apex.shape)} must be (N, 1, H, W)")
    n, _, h, w = onset.shape
    if labels.shape != (n,):
        raise ValueError(f"class_mean_flow: labels must be ({n},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:    # 1.7 would match no class
        raise ValueError(f"class_mean_flow: labels must be integer class ids, got {labels.dtype}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"class_mean_flow: labels must be in [0, {n_classes})")
    if flows is None:
        flows = pair_flows(onset, apex, method)
    if flows.shape != (n, 2, h, w):
        raise ValueError(f"class_mean_flow: flows must be ({n}, 2, {h}, {w}), got {tuple(flows.shape)}")
    prior = torch.zeros(n_classes, 2, h, w)
    for k in range(n_classes):
        sel = labels.cpu() == k
        if not bool(sel.any()):
            log.warning("motion prior: no training pair of class %d, its prior stays zero", k)
            continue
        m = flows[sel].float().mean(0)
        prior[k] = 0.5 * (m + mirror_flow(m)) if symmetric else m
    return prior
