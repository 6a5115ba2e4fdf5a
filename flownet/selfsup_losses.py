"""Self-supervised optical-flow losses for unlabelled facial clips (DDFlow / SelFlow / DistillFlow).

Source: ``../shared/papers/selfsupervised_dense_correspondence_thesis.txt`` (P. Liu, thesis), chapter 3,
and the 7x7 census window of chapter 4 (Eq. 4.9, faces). Conventions (DESIGN.md): images (B, 1|3, H, W)
float in [0, 1]; flows (B, 2, H, W) in pixels, channel 0 = u (right), 1 = v (down); the forward flow
``w_f`` maps pixel p of I1 to p + w_f(p) in I2, the backward flow ``w_b`` maps I2 to I1. Occlusion maps
O and confidence maps M are (B, 1, H, W) float in {0, 1} (O = 1: occluded / not confident).

* :func:`robust_penalty` ψ(x) = (|x| + ε)^q, ε = 0.01, q = 0.4 (Eq. 3.3, 3.34).
* :func:`census_transform`, :func:`census_distance`: census transform (Eq. 3.1) made differentiable as in
  UnFlow (thesis ref. [98], which the thesis follows: "we use a continuous function to simulate it"):
  intensities I in 0..255 grey, for each neighbour p' of the k x k window (k = 7 for faces: chapter 4,
  Eq. 4.9) the soft sign ``t(p, p') = d / sqrt(0.81 + d^2)``, ``d = I(p') - I(p)`` (≈ 2δ - 1 of Eq. 3.1),
  and the soft Hamming distance ``H(p) = sum_{p'} (t1 - t2)^2 / (0.1 + (t1 - t2)^2)`` (each term in [0, 1),
  ≈ 1 where the two census bits differ, 0 where they agree).
* :func:`forward_backward_occlusion`: Eq. 3.31–3.32 (also 3.2, 3.6–3.7): ŵ_f(p) = w_b(p + w_f(p)); p is
  occluded when ``|w_f + ŵ_f|^2 >= α1 (|w_f|^2 + |ŵ_f|^2) + α2`` or p + w_f(p) leaves the image (Eq. 3.2).
  Thesis values α1 = 0.01, α2 = 0.5 (both configurable: for sub-pixel facial motion α2 = 0.5 px² lets
  flow errors up to 0.7 px pass the check).
* :func:`photometric_loss`: Eq. 3.34 with the census distance as the photometric difference (the thesis
  computes L_pho on census-transformed images, Sec. 3.1.3 "Data Preprocessing", Table 3.21).
* :func:`edge_aware_smoothness`, :func:`smoothness_loss`: Eq. 3.35, β = 10.
* :func:`teacher_loss`: Eq. 3.36, L_1 = L_pho + 0.1 L_smo (stage 1).
* :func:`hallucinated_occlusion`, :func:`occlusion_distillation_loss`: Eq. 3.37–3.38 (variant 1, O').
* :func:`confidence_map`, :func:`distillation_loss`, :func:`student_loss`: DistillFlow variant 2,
  Eq. 3.40 (M^T = 1 - O^T), Eq. 3.41 (L_dis), Eq. 3.42 (L_dis + 0.1 L_smo).
* :func:`slic_superpixels`, :func:`superpixel_hallucination`: SelFlow's occlusion hallucination
  (Sec. 3.2 "Occlusion Hallucination", Fig. 3.6; DistillFlow Fig. 3.20 b): SLIC superpixels
  (scikit-image; thesis ref. [2]), a few random superpixels of the target image filled with uniform noise in
  the pixel value range [0, 1].

Normalisation of vector penalties: ψ is applied per flow component and the two components are averaged,
so ``Σ ψ(w^T - w̃) ⊙ M / Σ M`` is a per-pixel mean (the thesis writes Σ over the vector field without
saying how components count). Masked means with an empty mask give 0 (no pixel, no loss), never NaN.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .data.synthetic_face import backward_warp
from .devices import host_values

__all__ = ["robust_penalty", "to_gray255", "census_transform", "census_distance", "census_border_mask",
           "forward_backward_occlusion", "masked_mean", "photometric_loss", "edge_aware_smoothness",
           "smoothness_loss", "teacher_loss", "hallucinated_occlusion", "occlusion_distillation_loss",
           "confidence_map", "distillation_loss", "student_loss", "slic_superpixels",
           "superpixel_hallucination"]


# ------------------------------------------------------------------------------------------- checks

def _check_image(img: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be a (B, 1 or 3, H, W) tensor in [0, 1], got "
                         f"{tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__}")
    return img


def _check_flow(flow: torch.Tensor, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    if not isinstance(flow, torch.Tensor) or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"{name} must be a (B, 2, H, W) flow tensor in pixels, got "
                         f"{tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__}")
    if like is not None and (flow.shape[0] != like.shape[0] or flow.shape[-2:] != like.shape[-2:]):
        raise ValueError(f"{name} {tuple(flow.shape)} does not match {tuple(like.shape)} in batch or H, W")
    return flow


def _check_mask(m: torch.Tensor, name: str, like: torch.Tensor) -> torch.Tensor:
    if m.dim() == 3:
        m = m[:, None]
    if m.dim() != 4 or m.shape[1] != 1 or m.shape[0] != like.shape[0] or m.shape[-2:] != like.shape[-2:]:
        raise ValueError(f"{name} must be (B, 1, H, W) matching {tuple(like.shape)}, got {tuple(m.shape)}")
    return m.to(like.dtype)


# ---------------------------------------------------------------------------------------- penalties

def robust_penalty(x: torch.Tensor, eps: float = 0.01, q: float = 0.4) -> torch.Tensor:
    """Robust penalty ψ(x) = (|x| + ε)^q, element-wise (thesis Eq. 3.3 / 3.34; ε = 0.01, q = 0.4).

    Examples: ψ(0) = 0.01^0.4 ≈ 0.1585, ψ(1) = 1.01^0.4 ≈ 1.00399. Finite gradient everywhere (the
    sub-gradient of |x| at 0 is 0 in torch).

    Raises:
        ValueError: ``eps <= 0`` or ``q <= 0``.
    """
    if eps <= 0 or q <= 0:
        raise ValueError(f"robust_penalty needs eps > 0 and q > 0, got eps={eps}, q={q}")
    return (x.abs() + eps) ** q


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``Σ x ⊙ mask / Σ mask`` over everything (the normalised sums of Eq. 3.34, 3.38, 3.41).

    ``x`` (B, C, H, W) and ``mask`` (B, 1, H, W) broadcast over C; the result is the mean over masked
    pixels and over the C channels. An all-zero mask gives 0 (not NaN).
    """
    m = mask.to(x.dtype)
    num = (x * m).sum()
    den = m.sum() * x.shape[1]
    # chosen on the device (no wait for the mask's sum on a GPU); the same values and gradients as either branch
    return torch.where(den > 0, num / den.clamp(min=1e-8), num * 0.0)


# ------------------------------------------------------------------------------------------- census

def to_gray255(img: torch.Tensor) -> torch.Tensor:
    """(B, 1|3, H, W) [0, 1] → (B, 1, H, W) grey intensities in 0..255 (RGB: ITU-R 601 luma weights)."""
    _check_image(img, "image")
    if img.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
        img = (img * w).sum(1, keepdim=True)
    return img * 255.0


def census_transform(img: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Soft census transform (thesis Eq. 3.1, continuous as in UnFlow; 7x7 window for faces, Eq. 4.9).

    For every pixel p and every neighbour p' of the ``window`` x ``window`` patch centred on p:
    ``t = d / sqrt(0.81 + d^2)`` with ``d = I(p') - I(p)``, I in 0..255 grey (module docstring).
    Pixels outside the image are replicate-padded (use :func:`census_border_mask` to drop the border band).

    Args:
        img: (B, 1|3, H, W) float in [0, 1].
        window: odd window side (pixels), >= 3.

    Returns:
        (B, window**2, H, W) soft signatures in (-1, 1) (the centre entry is always 0).

    Raises:
        ValueError: bad image shape or even / too small window.
    """
    if window < 3 or window % 2 == 0:
        raise ValueError(f"census window must be odd and >= 3, got {window}")
    g = to_gray255(img)
    b, _, h, w = g.shape
    r = window // 2
    patches = F.unfold(F.pad(g, (r, r, r, r), mode="replicate"), kernel_size=window)  # (B, k*k, H*W)
    d = patches.view(b, window * window, h, w) - g
    return d / torch.sqrt(0.81 + d * d)


def census_distance(img1: torch.Tensor, img2: torch.Tensor, window: int = 7,
                    census1: torch.Tensor | None = None) -> torch.Tensor:
    """Soft Hamming distance between the census transforms of two images (module docstring).

    ``H(p) = Σ_{p'} (t1 - t2)^2 / (0.1 + (t1 - t2)^2)``: 0 for identical images, up to ~window² - 1 when
    every census bit differs. Differentiable in both images.

    Args:
        img1, img2: (B, 1|3, H, W) float [0, 1], same shape.
        window: census window side (odd, pixels).
        census1: ``census_transform(img1, window)`` when the caller has it (a loss that compares one image with
            several warps of another), so it is not computed again.

    Returns:
        (B, 1, H, W) distances (>= 0).

    Raises:
        ValueError: shapes differ or are not images.
    """
    _check_image(img1, "img1")
    _check_image(img2, "img2")
    if img1.shape != img2.shape:
        raise ValueError(f"census_distance: image shapes differ: {tuple(img1.shape)} vs {tuple(img2.shape)}")
    if census1 is None:
        census1 = census_transform(img1, window)
    elif census1.shape != (img1.shape[0], window * window, *img1.shape[2:]):
        raise ValueError(f"census_distance: census1 {tuple(census1.shape)} is not the {window}x{window} census of "
                         f"img1 {tuple(img1.shape)}")
    diff = census1 - census_transform(img2, window)
    sq = diff * diff
    return (sq / (0.1 + sq)).sum(1, keepdim=True)


def census_border_mask(height: int, width: int, window: int = 7, device=None,
                       dtype=torch.float32) -> torch.Tensor:
    """(1, 1, H, W) {0, 1} mask that is 0 on the ``window // 2``-pixel border band, where the census
    window leaves the image."""
    r = window // 2
    m = torch.zeros(1, 1, height, width, device=device, dtype=dtype)
    m[..., r:height - r, r:width - r] = 1.0      # an empty slice (all 0) where a side is 2r or less
    return m


# ---------------------------------------------------------------------------------------- occlusion

def forward_backward_occlusion(flow_f: torch.Tensor, flow_b: torch.Tensor, alpha1: float = 0.01,
                               alpha2: float = 0.5) -> torch.Tensor:
    """Forward occlusion map O_f by the forward–backward check (thesis Eq. 3.31–3.32, with Eq. 3.2).

    ``ŵ_f(p) = w_b(p + w_f(p))`` (bilinear); O_f(p) = 1 when
    ``|w_f + ŵ_f|^2 >= α1 (|w_f|^2 + |ŵ_f|^2) + α2`` (squared pixels) or when ``p + w_f(p)`` lies outside
    the image Ω. For the backward map O_b swap the arguments. Not differentiable (a {0, 1} map; computed
    without gradients).

    Args:
        flow_f: (B, 2, H, W) forward flow I1→I2 (pixels). flow_b: (B, 2, H, W) backward flow I2→I1.
        alpha1: relative tolerance (thesis 0.01). alpha2: absolute tolerance in px² (thesis 0.5).

    Returns:
        (B, 1, H, W) float {0, 1}, 1 = occluded (inconsistent or leaving the image).

    Raises:
        ValueError: bad shapes or negative α.
    """
    _check_flow(flow_f, "flow_f")
    _check_flow(flow_b, "flow_b", flow_f)
    if alpha1 < 0 or alpha2 < 0:
        raise ValueError(f"alpha1 and alpha2 must be >= 0, got {alpha1}, {alpha2}")
    with torch.no_grad():
        f, bk = flow_f.detach(), flow_b.detach().to(flow_f.dtype)
        w_hat = backward_warp(bk, f)                       # ŵ_f(p) = w_b(p + w_f(p)), Eq. 3.31
        lhs = ((f + w_hat) ** 2).sum(1, keepdim=True)
        rhs = alpha1 * ((f ** 2).sum(1, keepdim=True) + (w_hat ** 2).sum(1, keepdim=True)) + alpha2
        h, w = f.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(h, device=f.device, dtype=f.dtype),
                                torch.arange(w, device=f.device, dtype=f.dtype), indexing="ij")
        tx, ty = xs + f[:, 0], ys + f[:, 1]
        outside = ((tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1))[:, None]
        return ((lhs >= rhs) | outside).to(f.dtype)


# --------------------------------------------------------------------------------------- photometric

def photometric_loss(img1: torch.Tensor, img2: torch.Tensor, flow_f: torch.Tensor, flow_b: torch.Tensor,
                     occ_f: torch.Tensor | None = None, occ_b: torch.Tensor | None = None, window: int = 7,
                     eps: float = 0.01, q: float = 0.4,
                     census: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Census photometric loss L_pho (thesis Eq. 3.33–3.34; census distance as the difference).

    ``I^w_{2→1}(p) = I2(p + w_f(p))`` (Eq. 3.33) and
    ``L_pho = Σ ψ(H(I1, I^w_{2→1})) ⊙ (1 - O_f) / Σ (1 - O_f) + Σ ψ(H(I2, I^w_{1→2})) ⊙ (1 - O_b) / Σ (1 - O_b)``
    with H the soft census Hamming distance (:func:`census_distance`) and ψ the robust penalty. Pixels in
    the census border band are excluded as well. ``occ_f``/``occ_b`` None → no occlusion handling (all
    pixels count: the thesis' pre-training before occlusion reasoning, Sec. 3.4.3). The floor of the loss
    is 2 ψ(0) = 2 · 0.01^0.4 ≈ 0.317 (perfect match in both directions).

    Args:
        img1, img2: (B, 1|3, H, W) [0, 1]. flow_f, flow_b: (B, 2, H, W) pixels.
        occ_f, occ_b: (B, 1, H, W) {0, 1} occlusion maps or None.
        window: census window (7 for faces). eps, q: ψ parameters.
        census: ``(census_transform(img1, window), census_transform(img2, window))`` when the caller has them
            (a loss over several refinement updates of one image pair), so they are not computed again.

    Returns:
        scalar tensor, differentiable in the flows (and images).
    """
    _check_image(img1, "img1")
    _check_image(img2, "img2")
    _check_flow(flow_f, "flow_f", img1)
    _check_flow(flow_b, "flow_b", img1)
    border = census_border_mask(img1.shape[2], img1.shape[3], window, img1.device, img1.dtype)
    total = img1.new_zeros(())
    c1, c2 = (None, None) if census is None else census
    for ref, tgt, fl, occ, name, c_ref in ((img1, img2, flow_f, occ_f, "occ_f", c1),
                                           (img2, img1, flow_b, occ_b, "occ_b", c2)):
        warped = backward_warp(tgt, fl)
        valid = border.expand(ref.shape[0], -1, -1, -1)
        if occ is not None:
            valid = valid * (1.0 - _check_mask(occ, name, ref))
        total = total + masked_mean(robust_penalty(census_distance(ref, warped, window, c_ref), eps, q), valid)
    return total


# ---------------------------------------------------------------------------------------- smoothness

def edge_aware_smoothness(flow: torch.Tensor, img: torch.Tensor, beta: float = 10.0) -> torch.Tensor:
    """One direction of the edge-aware smoothness of thesis Eq. 3.35.

    ``(1 / (H W)) Σ_p [e^{-β |∂x I(p)|}, e^{-β |∂y I(p)|}] · [|∂x w(p)|, |∂y w(p)|]`` with forward
    differences (``∂x f(y, x) = f(y, x+1) - f(y, x)``, 0 on the last column / row, so the sum runs over
    H x W), I in [0, 1] and, for a colour image, ``|∂x I| = mean_c |∂x I_c|`` (the mean of each channel's
    absolute difference, not the difference of the channels' mean: a red|green edge whose grey mean is flat still
    stops the smoothing), |∂ w| summed over the flow components u and v, and
    the result averaged over the batch. Example: a vertical step of height s in u on a constant image gives
    s / W. The thesis prints ``|e^{-β ∇I}|`` (signed ∇I; the outer bars change nothing); it is read as
    ``e^{-β |∇I|}``, because with the signed gradient a darkening edge (∇I < 0) would get a weight > 1, i.e.
    more smoothing across it than in a flat region, and the loss would depend on the direction of the edge.

    Args:
        flow: (B, 2, H, W) pixels. img: (B, 1|3, H, W) [0, 1], the reference image of ``flow``.
        beta: edge sensitivity (thesis β = 10).

    Returns:
        scalar tensor (pixels per pixel).
    """
    _check_image(img, "img")
    _check_flow(flow, "flow", img)
    h, w = flow.shape[-2:]
    ix = (img[..., :, 1:] - img[..., :, :-1]).abs().mean(1, keepdim=True)
    iy = (img[..., 1:, :] - img[..., :-1, :]).abs().mean(1, keepdim=True)
    fx = (flow[..., :, 1:] - flow[..., :, :-1]).abs().sum(1, keepdim=True)
    fy = (flow[..., 1:, :] - flow[..., :-1, :]).abs().sum(1, keepdim=True)
    sx = (torch.exp(-beta * ix) * fx).sum(dim=(1, 2, 3))
    sy = (torch.exp(-beta * iy) * fy).sum(dim=(1, 2, 3))
    return ((sx + sy) / float(h * w)).mean()


def smoothness_loss(flow_f: torch.Tensor, flow_b: torch.Tensor, img1: torch.Tensor, img2: torch.Tensor,
                    beta: float = 10.0) -> torch.Tensor:
    """L_smo of thesis Eq. 3.35: forward flow weighted by I1 edges + backward flow weighted by I2 edges."""
    return edge_aware_smoothness(flow_f, img1, beta) + edge_aware_smoothness(flow_b, img2, beta)


def teacher_loss(img1, img2, flow_f, flow_b, occ_f=None, occ_b=None, window: int = 7, eps: float = 0.01,
                 q: float = 0.4, beta: float = 10.0, smooth_weight: float = 0.1,
                 census: tuple[torch.Tensor, torch.Tensor] | None = None, *, logs_as_floats: bool = True
                 ) -> tuple[torch.Tensor, dict]:
    """Stage-1 (teacher) loss L_1 = L_pho + 0.1 L_smo (thesis Eq. 3.36; weight configurable).

    Returns (loss, {"pho": float, "smo": float}) (``logs_as_floats=False``: detached 0-dim tensors, not read on the
    host). Arguments as :func:`photometric_loss` (``census``: the two
    images' census transforms, computed once per pair by a caller that scores several flows) and
    :func:`smoothness_loss`.
    """
    pho = photometric_loss(img1, img2, flow_f, flow_b, occ_f, occ_b, window, eps, q, census)
    smo = smoothness_loss(flow_f, flow_b, img1, img2, beta)
    logs = {"pho": pho.detach(), "smo": smo.detach()}
    return pho + smooth_weight * smo, host_values(logs) if logs_as_floats else logs


# -------------------------------------------------------------------------------------- distillation

def _masked_teacher_penalty(directions, eps: float, q: float) -> torch.Tensor:
    """``Σ_d Σ ψ(w^T_d - w̃_d) ⊙ m_d / Σ m_d`` over ``directions`` = ``[(teacher, student, mask, mask_name), ...]``
    (flows (B, 2, H, W) pixels, teachers detached; masks (B, 1, H, W) {0, 1}, ``mask_name`` in their errors): the
    sum of :func:`occlusion_distillation_loss` (masks O') and :func:`distillation_loss` (masks M^T)."""
    total = directions[0][1].new_zeros(())
    for t, s, m, name in directions:
        _check_flow(s, "student flow")
        _check_flow(t, "teacher flow", s)
        total = total + masked_mean(robust_penalty(t.detach() - s, eps, q), _check_mask(m, name, s))
    return total


def hallucinated_occlusion(occ_student: torch.Tensor, occ_teacher: torch.Tensor) -> torch.Tensor:
    """Hallucinated occlusions O' = min(max(Õ - O^T, 0), 1) (thesis Eq. 3.37, also Eq. 3.4):
    pixels occluded for the student's transformed input but not for the teacher. (B, 1, H, W) {0, 1}."""
    occ_teacher = _check_mask(occ_teacher, "occ_teacher", occ_student)    # a (B, H, W) map given its channel
    return (occ_student - occ_teacher).clamp(0.0, 1.0)


def occlusion_distillation_loss(teacher_f, teacher_b, student_f, student_b, halluc_f, halluc_b,
                                eps: float = 0.01, q: float = 0.4) -> torch.Tensor:
    """L_occ of thesis Eq. 3.38 (variant 1): ``Σ ψ(w^T_f - w̃_f) ⊙ O'_f / Σ O'_f + (same backward)``.

    Only pixels with O' = 1 (hallucinated occlusions, :func:`hallucinated_occlusion`) contribute; the
    teacher flows are targets (detached). Flows (B, 2, H, W) pixels; O' (B, 1, H, W) {0, 1}. Scalar.
    """
    return _masked_teacher_penalty(((teacher_f, student_f, halluc_f, "halluc_f"),
                                    (teacher_b, student_b, halluc_b, "halluc_b")), eps, q)


def confidence_map(occ: torch.Tensor) -> torch.Tensor:
    """Confidence map M^T = 1 - O^T (thesis Eq. 3.40), (B, 1, H, W) {0, 1}."""
    return 1.0 - occ


def distillation_loss(teacher_f, teacher_b, student_f, student_b, conf_f, conf_b, eps: float = 0.01,
                      q: float = 0.4) -> torch.Tensor:
    """DistillFlow variant-2 distillation loss L_dis (thesis Eq. 3.41).

    ``L_dis = Σ ψ(w^T_f - w̃_f) ⊙ M^T_f / Σ M^T_f + Σ ψ(w^T_b - w̃_b) ⊙ M^T_b / Σ M^T_b`` where w^T are the
    teacher flows transformed like the student's input (cropped here), w̃ the student's flows on the
    transformed (cropped, superpixel-noised) images, and M^T = 1 - O^T the teacher's confidence maps
    (Eq. 3.40, :func:`confidence_map`). Teacher flows are targets (detached).

    Args:
        teacher_f, teacher_b, student_f, student_b: (B, 2, H, W) pixels.
        conf_f, conf_b: (B, 1, H, W) {0, 1} confidence maps (1 = confident).

    Returns:
        scalar tensor (≥ 2 ψ(0) when any pixel is confident, 0 when none is).
    """
    return _masked_teacher_penalty(((teacher_f, student_f, conf_f, "conf_f"),
                                    (teacher_b, student_b, conf_b, "conf_b")), eps, q)


def student_loss(teacher_f, teacher_b, student_f, student_b, conf_f, conf_b, img1, img2, eps: float = 0.01,
                 q: float = 0.4, beta: float = 10.0, smooth_weight: float = 0.1, *, logs_as_floats: bool = True
                 ) -> tuple[torch.Tensor, dict]:
    """Stage-2 variant-2 student loss L = L_dis + 0.1 L_smo (thesis Eq. 3.42; weight configurable).

    ``img1``, ``img2`` are the student's (transformed) inputs, the smoothness references.
    Returns (loss, {"dis": float, "smo": float}) (``logs_as_floats=False``: detached 0-dim tensors).
    """
    dis = distillation_loss(teacher_f, teacher_b, student_f, student_b, conf_f, conf_b, eps, q)
    smo = smoothness_loss(student_f, student_b, img1, img2, beta)
    logs = {"dis": dis.detach(), "smo": smo.detach()}
    return dis + smooth_weight * smo, host_values(logs) if logs_as_floats else logs


# --------------------------------------------------------------------------- occlusion hallucination

def slic_superpixels(img: torch.Tensor, n_segments: int = 60, compactness: float = 0.1) -> np.ndarray:
    """SLIC superpixel labels (scikit-image ``segmentation.slic``; thesis ref. [2]) of each image.

    Args:
        img: (B, 1|3, H, W) float [0, 1].
        n_segments: approximate number of superpixels per image.
        compactness: SLIC compactness (grey [0, 1] images need a small value, ~0.1).

    Returns:
        (B, H, W) int64 labels, 0..K_b-1 per image.
    """
    from skimage.segmentation import slic
    _check_image(img, "img")
    arr = img.detach().cpu().float().numpy()
    labels = []
    for a in arr:  # one SLIC call per image (vectorised inside scikit-image)
        chan = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
        lab = slic(chan.astype(np.float64), n_segments=int(n_segments), compactness=float(compactness),
                   channel_axis=None if a.shape[0] == 1 else -1, start_label=0, enforce_connectivity=True)
        labels.append(lab.astype(np.int64))
    return np.stack(labels)


def superpixel_hallucination(img: torch.Tensor, n_segments: int = 60, n_noisy: tuple[int, int] = (2, 6),
                             compactness: float = 0.1, rng: np.random.Generator | None = None,
                             labels: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hallucinate occlusions: fill randomly chosen SLIC superpixels with uniform noise in [0, 1]
    (thesis Sec. 3.2 "Occlusion Hallucination", Fig. 3.6; Fig. 3.20 b).

    Pixels of the chosen superpixels get i.i.d. U(0, 1) values (the same per channel for RGB, i.e. grey
    noise); all other pixels are returned unchanged (bit-exact).

    Args:
        img: (B, 1|3, H, W) float [0, 1], usually the target frame Ĩ2.
        n_segments: SLIC superpixels per image. n_noisy: (min, max) superpixels to fill per image
            (inclusive; capped at the number found).
        compactness: SLIC compactness. rng: numpy generator (all randomness). labels: precomputed
            (B, H, W) labels (skips SLIC).

    Returns:
        (noisy image like ``img``, (B, 1, H, W) float {0, 1} mask of the altered pixels).

    Raises:
        ValueError: bad image, ``n_noisy`` not 0 <= min <= max, or labels of the wrong shape.
    """
    _check_image(img, "img")
    lo, hi = int(n_noisy[0]), int(n_noisy[1])
    if not 0 <= lo <= hi:
        raise ValueError(f"n_noisy must be (min, max) with 0 <= min <= max, got {n_noisy}")
    rng = rng if rng is not None else np.random.default_rng()
    b, c, h, w = img.shape
    lab = slic_superpixels(img, n_segments, compactness) if labels is None else np.asarray(labels)
    if lab.shape != (b, h, w):
        raise ValueError(f"superpixel labels must be (B, H, W) = {(b, h, w)}, got {lab.shape}")
    masks = np.zeros((b, h, w), dtype=bool)
    for i in range(b):  # per image: choose superpixels, then one vectorised isin over the label map
        ids = np.unique(lab[i])
        k = min(int(rng.integers(lo, hi + 1)), len(ids))
        chosen = rng.choice(ids, size=k, replace=False)
        masks[i] = np.isin(lab[i], chosen)
    mask = torch.from_numpy(masks)[:, None].to(img.device)
    noise = torch.from_numpy(rng.random((b, 1, h, w))).to(img.device, img.dtype).expand(-1, c, -1, -1)
    out = torch.where(mask, noise, img)
    return out, mask.to(img.dtype)
