"""The four SRFlowNet regularizers (SRFlow paper, Sec. IV-B, Eq. 9–19).

Each takes the sequence of flow predictions ``flows = [f^0, …, f^{n-1}]`` ((B, 2, H, W), pixels,
last = final) and sums per-stage terms with weights ``gamma^(n-i-1)`` (earlier stages count less).
Per-stage terms are averaged over the batch. Images are (B, 1|3, H, W) in [0, 1] (``image_scale``
multiplies them first, e.g. 255 to use 0–255 intensities); masks (B, 1, H, W) are the face /
background-valid mask M_bg (1 = face).

* TVR (Eq. 9–10): ``lambda_N * sum_i gamma^(n-i-1) (R(u^i) + R(v^i))``,
  ``R(c) = 1/(HW) sum |Sx c| + |Sy c|`` with the 3x3 Sobel kernels divided by 8 (replicate padding
  keeps H x W; the paper names no padding, and with this one a linear ramp reads half its slope on the outer
  rows / columns). No mask. lambda_N = 0.05.
* FDR (Eq. 11–12): forward differences with stride 1, ``Dx f = f(·, x+1) - f(·, x)``,
  ``Dy f = f(y+1, ·) - f(y, ·)``, masked by M_bg without its last column / row:
  ``lambda_N * sum_i gamma^(n-i-1) [ mean(|Dx f^i| * M^x) + mean(|Dy f^i| * M^y) ]`` where each mean is
  over the difference grid (B x H x (W-1), resp. (H-1) x W) and the two flow channels are summed.
  (Eq. 12 prints no absolute value or averaging; ARFlow's smoothness term, which it follows, uses
  the mean absolute difference, as here.)
* MIGAR (Eq. 13–18): ``G = mean_c sqrt((Sx I1^c)^2 + (Sy I1^c)^2)`` (standard Sobel, frame 1 only),
  ``base = exp(mean G)`` per image, ``w = base^(-G)``, and
  ``R_wpp(c) = 1/(HW) sum w (|Sx(c * M_total)| + |Sy(c * M_total)|)``;
  ``L = weight * sum_i gamma^(n-i-1) (R_wpp(u^i) + R_wpp(v^i))`` (Eq. 18 has no lambda: ``weight``
  defaults to 1).
* IGVAR (Eq. 19): as MIGAR with ``base = max(Var{G(x) : M_bg(x) = 1} / 100, e)`` per image. Mind the scale: for
  images in [0, 1] (``image_scale=1``) G is at most 4·√2, its variance at most 8, and the base is always e, so the
  variance term has no effect (IGVAR is then ``w = exp(-G)``); it can act only from ``image_scale`` ≈ 5.8 up
  (:func:`igvar_is_variance_free`; the paper's division by 100 suggests 0–255 intensities, ``image_scale=255``).

M_total (Eq. 16) is printed as ``M_bg * ((grad_x M_bg > 0) AND (grad_y M_bg > 0))``, which read literally
keeps only the few boundary pixels where both mask gradients are positive (an almost empty mask for a
face). We use ``mask_mode="interior"`` by default: ``M_total = M_bg * (Sx M_bg == 0) * (Sy M_bg == 0)``,
the mask without its boundary band, so the artificial step of ``c * M`` at the mask edge is kept away
from the face interior; ``mask_mode="literal"`` gives the printed formula.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from flownet.models.inputs import check_image_batch

__all__ = ["REGULARIZERS", "sobel", "stage_weights", "tvr", "fdr", "image_gradient_magnitude",
           "migar_weights", "igvar_weights", "total_mask", "migar", "igvar", "regularizer_loss"]

REGULARIZERS = ("none", "tvr", "fdr", "migar", "igvar")

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel(x: torch.Tensor, normalized: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel 3x3 Sobel derivatives (Sx, Sy) of (B, C, H, W), replicate padding, same shape.

    ``normalized=True`` divides the kernels by 8 (TVR, Eq. 9), so a unit ramp has slope 1.
    """
    c = x.shape[1]
    kx = _SOBEL_X.to(x.device, x.dtype)
    if normalized:
        kx = kx / 8.0
    k = torch.stack([kx, kx.T])[:, None].repeat(c, 1, 1, 1)  # (2C, 1, 3, 3): x then y per channel
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=c)
    return g[:, 0::2], g[:, 1::2]


def stage_weights(n: int, gamma: float) -> list[float]:
    """``[gamma^(n-1), …, gamma, 1]``: weight of stage i is gamma^(n-i-1)."""
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    return [gamma ** (n - i - 1) for i in range(n)]


def _flows(flows) -> list[torch.Tensor]:
    if isinstance(flows, torch.Tensor):
        flows = [flows]
    flows = list(flows)
    if not flows:
        raise ValueError("empty list of flow predictions")
    for f in flows:
        if f.dim() != 4 or f.shape[1] != 2:
            raise ValueError(f"each flow prediction must be (B, 2, H, W), got {tuple(f.shape)}")
    return flows


def _mask(mask, flow: torch.Tensor, against: str = "flow") -> torch.Tensor:
    if mask is None:
        raise ValueError("this regularizer needs the face mask M_bg (B, 1, H, W)")
    m = mask.to(flow.device, flow.dtype)
    if m.dim() == 3:
        m = m[:, None]
    if m.shape[0] != flow.shape[0] or m.shape[1] != 1 or m.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"mask {tuple(mask.shape)} does not match {against} {tuple(flow.shape)}; "
                         f"expected (B, 1, H, W)")
    return m


def _first_image(img1: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``img1`` on the flow's device once it is a (B, 1|3, H, W) float image with the flow's B, H and W."""
    check_image_batch(img1, "img1")
    if img1.shape[0] != flow.shape[0] or img1.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"img1 {tuple(img1.shape)} does not match the flow {tuple(flow.shape)}: "
                         f"expected (B, 1 or 3, H, W) with the flow's B, H and W")
    return img1.to(flow.device)


def tvr(flows, gamma: float = 0.8, lam: float = 0.05) -> torch.Tensor:
    """TVR, Eq. 9–10 (module docstring). Returns a scalar tensor."""
    flows = _flows(flows)
    total = 0.0
    for w, f in zip(stage_weights(len(flows), gamma), flows):
        gx, gy = sobel(f, normalized=True)
        # R(u) + R(v): per-channel mean over H x W, summed over the 2 channels, mean over the batch
        total = total + w * (gx.abs() + gy.abs()).mean(dim=(2, 3)).sum(1).mean()
    return lam * total


def fdr(flows, mask, gamma: float = 0.8, lam: float = 0.05, stride: int = 1) -> torch.Tensor:
    """FDR, Eq. 11–12 (module docstring). ``mask``: M_bg (B, 1, H, W). Returns a scalar tensor.

    ``stride``: pixels between the two ends of a forward difference (the differences are divided by it).

    Raises:
        ValueError: as :func:`_flows` and :func:`_mask`; ``stride`` not in ``[1, min(H, W))`` (0 has no difference,
            and from min(H, W) on the difference grid is empty, its mean NaN).
    """
    flows = _flows(flows)
    m = _mask(mask, flows[-1])
    s = int(stride)
    side = min(flows[-1].shape[-2:])
    if not 1 <= s < side:
        raise ValueError(f"fdr: stride must be in [1, {side}) for a {tuple(flows[-1].shape[-2:])} flow "
                         f"(1 <= stride < min(H, W)), got {stride}; use a stride below the flow's smaller side "
                         "(a flow of one row or column has no forward difference)")
    mx, my = m[..., :, :-s], m[..., :-s, :]
    total = 0.0
    for w, f in zip(stage_weights(len(flows), gamma), flows):
        dx = (f[..., :, s:] - f[..., :, :-s]) / s
        dy = (f[..., s:, :] - f[..., :-s, :]) / s
        total = total + w * ((dx.abs() * mx).mean(dim=(2, 3)).sum(1).mean()
                             + (dy.abs() * my).mean(dim=(2, 3)).sum(1).mean())
    return lam * total


def image_gradient_magnitude(img: torch.Tensor, image_scale: float = 1.0) -> torch.Tensor:
    """G_{I1}, Eq. 13: channel mean of the standard-Sobel gradient magnitude, (B, 1, H, W).

    ``img``: (B, 1|3, H, W) floating point in [0, 1] (times ``image_scale``).

    Raises:
        ValueError: another layout, or an integer / bool dtype (0-255 frames are not rescaled).
    """
    check_image_batch(img, "image")
    gx, gy = sobel(img.float() * image_scale, normalized=False)
    return torch.sqrt(gx ** 2 + gy ** 2 + 1e-12).mean(1, keepdim=True)


def migar_weights(img: torch.Tensor, image_scale: float = 1.0) -> torch.Tensor:
    """Eq. 14–15: ``w = exp(mean G)^(-G) = exp(-mean(G) * G)``, (B, 1, H, W) in [0, 1] (0 in
    float32 where ``mean(G) * G`` exceeds about 104, e.g. strong edges at ``image_scale`` 255)."""
    g = image_gradient_magnitude(img, image_scale)
    return torch.exp(-g.mean(dim=(2, 3), keepdim=True) * g)


def igvar_weights(img: torch.Tensor, mask: torch.Tensor, image_scale: float = 1.0) -> torch.Tensor:
    """Eq. 19: ``base = max(Var{G in face} / 100, e)``, ``w = base^(-G)``, (B, 1, H, W).

    The variance is the population variance over the mask pixels of each image (an empty mask
    gives base = e).
    """
    g = image_gradient_magnitude(img, image_scale)
    m = _mask(mask, g, against="image gradient")
    n = m.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
    mean = (g * m).sum(dim=(2, 3), keepdim=True) / n
    var = (((g - mean) ** 2) * m).sum(dim=(2, 3), keepdim=True) / n
    base = torch.clamp(var / 100.0, min=math.e)
    return torch.exp(-torch.log(base) * g)


def igvar_is_variance_free(image_scale: float) -> bool:
    """True when IGVAR's base (Eq. 19) is e whatever the image: images in [0, 1] times ``image_scale`` have a
    standard Sobel gradient magnitude G of at most ``4·√2·image_scale``, so ``Var(G) / 100 ≤ 8·image_scale² / 100``,
    which is below e for ``image_scale < √(100·e / 8)`` ≈ 5.83."""
    return 8.0 * float(image_scale) ** 2 / 100.0 < math.e


def total_mask(mask: torch.Tensor, mode: str = "interior") -> torch.Tensor:
    """M_total of Eq. 16 from M_bg (B, 1, H, W); see the module docstring for ``mode``."""
    gx, gy = sobel(mask.float(), normalized=False)
    if mode == "interior":
        return mask * ((gx.abs() == 0) & (gy.abs() == 0)).to(mask.dtype)
    if mode == "literal":
        return mask * ((gx > 0) & (gy > 0)).to(mask.dtype)
    raise ValueError(f"mask_mode must be 'interior' or 'literal', got {mode!r}")


def _weighted(flows, weights, m_total, gamma, weight):
    total = 0.0
    for sw, f in zip(stage_weights(len(flows), gamma), flows):
        gx, gy = sobel(f * m_total, normalized=False)
        total = total + sw * (weights * (gx.abs() + gy.abs())).mean(dim=(2, 3)).sum(1).mean()
    return weight * total


def migar(flows, img1, mask, gamma: float = 0.8, weight: float = 1.0, image_scale: float = 1.0,
          mask_mode: str = "interior") -> torch.Tensor:
    """MIGAR, Eq. 13–18 (module docstring). Returns a scalar tensor.

    ``img1``: (B, 1|3, H, W) float in [0, 1] with the flows' B, H, W; ``mask``: M_bg (B, 1, H, W).

    Raises:
        ValueError: img1 or mask not matching the flow, or img1 of an integer dtype.
    """
    flows = _flows(flows)
    m = _mask(mask, flows[-1])
    w = migar_weights(_first_image(img1, flows[-1]), image_scale).detach()
    return _weighted(flows, w, total_mask(m, mask_mode), gamma, weight)


def igvar(flows, img1, mask, gamma: float = 0.8, weight: float = 1.0, image_scale: float = 1.0,
          mask_mode: str = "interior") -> torch.Tensor:
    """IGVAR, Eq. 19 with Eq. 16–18 (module docstring). Returns a scalar tensor.

    ``img1``: (B, 1|3, H, W) float in [0, 1] with the flows' B, H, W; ``mask``: M_bg (B, 1, H, W).

    Raises:
        ValueError: img1 or mask not matching the flow, or img1 of an integer dtype.
    """
    flows = _flows(flows)
    m = _mask(mask, flows[-1])
    w = igvar_weights(_first_image(img1, flows[-1]), m, image_scale).detach()
    return _weighted(flows, w, total_mask(m, mask_mode), gamma, weight)


def regularizer_loss(name: str, flows, img1=None, mask=None, gamma: float = 0.8, weight: float | None = None,
                     image_scale: float = 1.0, mask_mode: str = "interior") -> torch.Tensor:
    """Dispatch by name (``none|tvr|fdr|migar|igvar``); ``weight`` None → lambda_N 0.05 for TVR/FDR, 1 for
    MIGAR/IGVAR (as printed in Eq. 10, 12, 18)."""
    key = str(name).lower()
    if key == "none":
        return _flows(flows)[-1].new_zeros(())
    if key == "tvr":
        return tvr(flows, gamma, 0.05 if weight is None else weight)
    if key == "fdr":
        return fdr(flows, mask, gamma, 0.05 if weight is None else weight)
    if key in ("migar", "igvar"):
        if img1 is None:
            raise ValueError(f"{key} needs the first image img1")
        fn = migar if key == "migar" else igvar
        return fn(flows, img1, mask, gamma, 1.0 if weight is None else weight, image_scale, mask_mode)
    raise ValueError(f"unknown regularizer '{name}'; choose one of {list(REGULARIZERS)}")
