"""Optical strain and recognizer input features from a flow field.

Optical strain (the infinitesimal strain tensor of the displacement field (u, v)):

    eps_xx = du/dx,  eps_yy = dv/dy,  eps_xy = 1/2 (du/dy + dv/dx)
    eps = sqrt(eps_xx^2 + eps_yy^2 + 2 * eps_xy^2)

(the Frobenius norm of the symmetric 2x2 strain tensor). Derivatives are central differences
(``(f(x+1) - f(x-1)) / 2`` inside, one-sided ``f(1) - f(0)`` at the border: :func:`torch.gradient`),
so the strain of ``u = a*x`` is |a| everywhere, border included. A translation and an infinitesimal rotation
(``u = -t*y, v = t*x``) have zero strain (up to 1e-6: :func:`optical_strain` adds 1e-12 under the square root to keep
its gradient finite at zero strain); a finite rotation by an angle t does not, as this tensor keeps only first-order
terms: its displacement ``u = (cos t - 1) x - sin t y, v = sin t x + (cos t - 1) y`` has the strain
``sqrt(2) * (1 - cos t)`` (about t^2 / sqrt(2)) everywhere: 5.4e-5 at 0.5 degrees, 4.85e-4 at 1.5, 5.4e-3 at 5.
Note: one public Off-TANet implementation squares du/dy where dv/dy belongs; this module uses the definition above.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .resolution import check_size

__all__ = ["flow_gradients", "optical_strain", "flow_features", "FEATURE_MODES"]

#: the resampling modes of :func:`flow_features` (``F.interpolate``'s modes for (B, C, H, W) input)
FEATURE_MODES = ("bilinear", "bicubic", "nearest", "nearest-exact", "area")


def _check_flow(flow: torch.Tensor) -> None:
    if not isinstance(flow, torch.Tensor) or flow.dim() != 4 or flow.shape[1] != 2:
        shape = tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__
        raise ValueError(f"flow must be a (B, 2, H, W) tensor in pixels, got {shape}")


def flow_gradients(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central-difference spatial derivatives of a flow field.

    Args:
        flow: (B, 2, H, W) in pixels.

    Returns:
        (d/dx, d/dy), each (B, 2, H, W) (per pixel, unitless); central differences inside, one-sided
        at the border (exact for linear fields).

    Raises:
        ValueError: bad shape, or H or W below 2.
    """
    _check_flow(flow)
    if min(flow.shape[-2:]) < 2:
        raise ValueError(f"flow must be at least 2x2 to take derivatives, got {tuple(flow.shape)}")
    dy, dx = torch.gradient(flow, dim=(-2, -1))
    return dx, dy


def optical_strain(flow: torch.Tensor) -> torch.Tensor:
    """Optical strain magnitude (module docstring), differentiable.

    Args:
        flow: (B, 2, H, W), pixels.

    Returns:
        (B, 1, H, W) non-negative strain (unitless).
    """
    dx, dy = flow_gradients(flow)
    exx = dx[:, 0:1]
    eyy = dy[:, 1:2]
    exy = 0.5 * (dy[:, 0:1] + dx[:, 1:2])
    # small epsilon inside the sqrt keeps the gradient finite where the strain is exactly zero
    return torch.sqrt(exx ** 2 + eyy ** 2 + 2.0 * exy ** 2 + 1e-12)


def flow_features(flow: torch.Tensor, size: int = 28, normalize: str = "minmax",
                  mode: str = "bilinear") -> torch.Tensor:
    """(u, v, optical strain) recognizer input at ``size`` x ``size``, differentiable.

    Strain is computed at the input resolution; the three maps are then resized with
    ``F.interpolate`` (bilinear, ``align_corners=False``, no antialiasing; u and v are rescaled by size / W and
    size / H so they stay in pixels of the output grid). Antialiased shrinking was measured on CASME II and did not
    change recognition (+0.002 UF1 [−0.008, +0.020], 5 seeds; docs/benchmarks.md, "Antialiased shrinking"). Normalisation, per sample and per channel:

    * ``"minmax"`` (default, as in STSTNet / Off-TANet inputs): ``(x - min) / (max - min + 1e-6)`` → [0, 1];
    * ``"maxabs"``: u, v divided by max(|u|, |v|) of the sample → [-1, 1] (keeps the sign and zero);
      strain divided by its max → [0, 1];
    * ``"none"``: pixels of the output grid (u, v) and unitless strain.

    Args:
        flow: (B, 2, H, W) in pixels.
        size: output side, one whole number >= 1 (e.g. 28 for STSTNet, 112 for Off-TANet).
        mode: ``F.interpolate``'s resampling, one of :data:`FEATURE_MODES`.

    Returns:
        (B, 3, size, size) float tensor: channel 0 = u, 1 = v, 2 = strain.

    Raises:
        ValueError: bad flow shape, ``size`` not one whole number >= 1 (2.5, 0, (8, 8): :func:`check_size`),
            unknown ``normalize`` or ``mode``.
    """
    _check_flow(flow)
    size = check_size(size, "flow_features", square=True)[0]
    if mode not in FEATURE_MODES:
        raise ValueError(f"flow_features: mode must be one of {FEATURE_MODES}, got {mode!r}")
    if normalize not in ("minmax", "maxabs", "none"):
        raise ValueError(f"normalize must be 'minmax', 'maxabs' or 'none', got {normalize!r}")
    h, w = flow.shape[-2:]
    strain = optical_strain(flow)
    feats = torch.cat([flow, strain], 1)
    feats = F.interpolate(feats, size=(size, size), mode=mode,
                          align_corners=False if mode in ("bilinear", "bicubic") else None)
    scale = torch.tensor([size / w, size / h, 1.0], dtype=feats.dtype, device=feats.device).view(1, 3, 1, 1)
    feats = feats * scale
    if normalize == "minmax":
        lo = feats.amin(dim=(2, 3), keepdim=True)
        hi = feats.amax(dim=(2, 3), keepdim=True)
        feats = (feats - lo) / (hi - lo + 1e-6)
    elif normalize == "maxabs":
        m_uv = feats[:, :2].abs().amax(dim=(1, 2, 3), keepdim=True) + 1e-6
        m_s = feats[:, 2:].amax(dim=(1, 2, 3), keepdim=True) + 1e-6
        feats = torch.cat([feats[:, :2] / m_uv, feats[:, 2:] / m_s], 1)
    return feats
