"""Capsule layers used by the ICE-GAN discriminator: squash, primary capsules, dynamic routing, margin loss.

Sources: ``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Section III-B (Fig. 3) and Eq. 5
(margin loss); squash and routing-by-agreement follow the capsule network the paper cites as [13]
(Sabour et al. 2017): ``v = ‖s‖²/(1+‖s‖²) · s/‖s‖``; ``c_ij = softmax_j(b_ij)``,
``s_j = Σ_i c_ij û_{j|i}``, ``b_ij += û_{j|i}·v_j``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["squash", "PrimaryCaps", "RoutingCaps", "dynamic_routing", "margin_loss"]


def squash(s: Tensor, dim: int = -1, eps: float = 1e-8) -> Tensor:
    """Capsule non-linearity: keeps the direction of ``s`` and maps its length ``r`` to ``r²/(1+r²)`` ∈ [0, 1)
    (Sabour et al. 2017, ICE-GAN's ref. [13], Eq. 1). In float32 that length rounds to exactly 1.0 once ``r``
    exceeds about 4,000. ``eps`` is added under the square root (``‖s‖ ≈ sqrt(r² + eps)``, so a zero vector gives 0),
    which shortens small vectors: the length is ``r³/((1+r²)·sqrt(r² + eps))``, 0.5% below ``r²/(1+r²)`` at
    ``r = 1e-3``, 5% at 3e-4 and 29% at 1e-4 (eps = 1e-8); from ``r`` ≈ 1e-2 on the two agree to 1e-4.

    float16 and bfloat16 are computed in float32 and returned in their type: under float16 autocast (``train.amp`` on
    a GPU without bfloat16) ``s * s`` overflows to inf once a component reaches 256 (the length became inf/inf =
    NaN) and ``eps`` rounds to 0 (a zero vector gave 0/0). float32 and float64 are computed in their own type.

    Args:
        s: any shape, any floating type; capsule vectors along ``dim``.
    Returns:
        Tensor of the same shape and type.
    Raises:
        TypeError: ``s`` of an integer or bool dtype (its squashed values, all in [0, 1), would round to 0).
    """
    if not s.is_floating_point():
        raise TypeError(f"squash: s must be a floating-point tensor, got {s.dtype}; convert the capsule vectors "
                        "with .float() first")
    s32 = s.float() if s.dtype in (torch.float16, torch.bfloat16) else s      # float64 stays float64
    sq = (s32 * s32).sum(dim=dim, keepdim=True)
    return (s32 * (sq / (1.0 + sq)) / torch.sqrt(sq + eps)).to(s.dtype)


def dynamic_routing(u_hat: Tensor, iterations: int = 3) -> tuple[Tensor, Tensor]:
    """Routing by agreement.

    Args:
        u_hat: predictions ``û_{j|i}`` (B, N_in, N_out, D_out).
        iterations: routing iterations (3 as in Sabour et al. 2017, ICE-GAN's ref. [13]), ≥ 1.
    Returns:
        ``v`` (B, N_out, D_out) output capsules and the final coupling coefficients ``c``
        (B, N_in, N_out), which sum to 1 over ``N_out`` for every input capsule.
    Raises:
        ValueError: ``iterations`` < 1 or ``u_hat`` not 4-D.
    """
    if iterations < 1:
        raise ValueError(f"dynamic_routing: iterations must be >= 1, got {iterations}")
    if u_hat.dim() != 4:
        raise ValueError(f"dynamic_routing: u_hat must be (B, N_in, N_out, D), got {tuple(u_hat.shape)}")
    b = torch.zeros(u_hat.shape[:3], device=u_hat.device, dtype=u_hat.dtype)
    # the routing logits are not differentiated through (as in common CapsNet practice), except in
    # the last iteration, whose s_j carries gradients to û.
    u_detached = u_hat.detach()
    for it in range(iterations):
        c = torch.softmax(b, dim=2)
        if it == iterations - 1:
            v = squash((c.unsqueeze(-1) * u_hat).sum(dim=1))
        else:
            v = squash((c.unsqueeze(-1) * u_detached).sum(dim=1))
            b = b + (u_detached * v.unsqueeze(1)).sum(dim=-1)
    return v, c


class PrimaryCaps(nn.Module):
    """Convolutional primary capsules: ``n_caps`` capsule types of dimension ``dim`` at every position.

    Shapes: (B, in_channels, H, W) → (B, n_caps·H'·W', dim), squashed; H' = (H - kernel)//stride + 1.
    """

    def __init__(self, in_channels: int, n_caps: int = 8, dim: int = 16, kernel_size: int = 3, stride: int = 2):
        super().__init__()
        self.n_caps, self.dim = n_caps, dim
        self.conv = nn.Conv2d(in_channels, n_caps * dim, kernel_size, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        """Primary capsules of a feature map (``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Sec. III-B,
        Fig. 3; squash of Sabour et al. 2017).

        Args:
            x: (B, in_channels, H, W).

        Returns:
            (B, n_caps·H'·W', dim) squashed capsules (lengths in [0, 1)), type-major: row ``t·H'·W' + p`` is type t at
            position p (row-major); H' = (H − kernel_size)//stride + 1, W' likewise.
        """
        y = self.conv(x)                                           # (B, n·d, H', W')
        b, _, h, w = y.shape
        y = y.view(b, self.n_caps, self.dim, h * w).permute(0, 1, 3, 2).reshape(b, self.n_caps * h * w, self.dim)
        return squash(y)


class RoutingCaps(nn.Module):
    """Fully connected capsule layer with dynamic routing.

    Every primary capsule *type* ``t`` has its own transformation ``W_{t,j} ∈ R^{D_out×D_in}`` per
    output capsule ``j``, shared over spatial positions (so the layer works at any input size; the
    original CapsNet uses one matrix per position).

    Args:
        n_types: primary capsule types (inputs are ordered type-major, as :class:`PrimaryCaps` emits).
        in_dim, n_out, out_dim: input capsule dimension, number and dimension of output capsules.
        iterations: routing iterations.
    Shapes: (B, n_types·P, in_dim) → v (B, n_out, out_dim); ``self.last_coupling`` keeps c (B, N_in, n_out).
    """

    def __init__(self, n_types: int, in_dim: int, n_out: int, out_dim: int, iterations: int = 3):
        super().__init__()
        self.n_types, self.n_out, self.out_dim, self.iterations = n_types, n_out, out_dim, iterations
        self.weight = nn.Parameter(0.05 * torch.randn(n_types, n_out, out_dim, in_dim))
        self.last_coupling: Tensor | None = None

    def forward(self, u: Tensor) -> Tensor:
        """Output capsules by routing-by-agreement (:func:`dynamic_routing`, ``iterations`` rounds; Sec. III-B and the
        CapsNet of Sabour et al. 2017 that the paper cites as [13]).

        Args:
            u: (B, N_in, in_dim) input capsules, type-major as :class:`PrimaryCaps` emits them; N_in a multiple of
                ``n_types``.

        Returns:
            v (B, n_out, out_dim), squashed (lengths in [0, 1)). The final coupling coefficients c (B, N_in, n_out)
            are kept, detached, in ``self.last_coupling``.

        Raises:
            ValueError: N_in is not a multiple of ``n_types``.
        """
        b, n_in, d_in = u.shape
        if n_in % self.n_types:
            raise ValueError(f"RoutingCaps: {n_in} input capsules is not a multiple of {self.n_types} types")
        u = u.view(b, self.n_types, n_in // self.n_types, d_in)
        u_hat = torch.einsum("tjod,btpd->btpjo", self.weight, u).reshape(b, n_in, self.n_out, self.out_dim)
        v, c = dynamic_routing(u_hat, self.iterations)
        self.last_coupling = c.detach()
        return v


def margin_loss(lengths: Tensor, target: Tensor, m_pos: float = 0.9, m_neg: float = 0.1,
                lam: float = 0.5) -> Tensor:
    """Margin loss (Eq. 5), summed over capsules and averaged over the batch.

    ``L = Σ_k T_k max(0, m⁺ - ‖v_k‖)² + λ (1 - T_k) max(0, ‖v_k‖ - m⁻)²``.

    Args:
        lengths: capsule lengths ‖v_k‖ (B, K) in [0, 1).
        target: (B,) integer class ids in [0, K) or (B, K) {0, 1} / soft targets T_k.
    Raises:
        ValueError: shapes do not match; (B,) class ids not of an integer dtype (floats are not truncated), or,
            for a CPU tensor, outside [0, K) (not checked on other devices, to keep the step free of syncs).
    """
    if lengths.dim() != 2:
        raise ValueError(f"margin_loss: lengths must be (B, K), got {tuple(lengths.shape)}")
    if target.dim() == 1:
        if target.shape[0] != lengths.shape[0]:
            raise ValueError(f"margin_loss: {target.shape[0]} targets for {lengths.shape[0]} samples")
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(f"margin_loss: class ids must be integers, got {target.dtype}")
        k = lengths.shape[1]
        if target.device.type == "cpu" and target.numel() and (int(target.min()) < 0 or int(target.max()) >= k):
            raise ValueError(f"margin_loss: class ids must be in [0, {k}), got {target.tolist()}")
        t = torch.nn.functional.one_hot(target.long(), lengths.shape[1]).to(lengths.dtype)
    elif target.shape == lengths.shape:
        t = target.to(lengths.dtype)
    else:
        raise ValueError(f"margin_loss: target {tuple(target.shape)} does not match lengths {tuple(lengths.shape)}")
    pos = t * torch.clamp(m_pos - lengths, min=0) ** 2
    neg = lam * (1 - t) * torch.clamp(lengths - m_neg, min=0) ** 2
    return (pos + neg).sum(dim=1).mean()
