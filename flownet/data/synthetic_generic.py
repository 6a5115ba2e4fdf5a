"""Generic (non-face) optical flow with exact ground truth: textured layers in independent affine motion.

Why: every pair of :mod:`flownet.data.synthetic_face` is a grey face moving by at most a few pixels, and a
network trained only on those fails on other scenes (Middlebury, docs/benchmarks.md: ~1.5 px median error on
pairs whose motion is under 5 px, where TV-L1 is at 0.16-0.19 px). This module draws procedural scenes in the
spirit of FlyingChairs (Dosovitskiy et al., ICCV 2015: foreground objects moving over a moving background),
with procedural textures instead of photographs, so that nothing has to be downloaded.

A scene has a background layer and ``n_objects`` foreground layers, drawn back to front. Layer ``k`` has

* a texture ``T_k``: 1/f noise (amplitude spectrum ``f^-a``, ``a`` in [0.75, 1.5], i.e. power ``1/f^(2a)``, the
  range of natural images) plus, half of the time, a posterised smooth noise that adds sharp region edges;
* a shape (objects only): a soft-edged (1 px ramp) star-shaped blob or a rotated super-ellipse (ellipse to
  rounded rectangle), of radius 8-35 % of the image side; the background covers everything;
* an affine motion about its centre ``c_k``: ``A_k(x) = c_k + s_k R(theta_k) (x - c_k) + t_k`` (scale ``s``,
  rotation ``theta``, translation ``t``). The translation's length is ``max_motion * u**2`` with ``u`` uniform
  in [0, 1) (small motions are frequent, as in real video), the background's at most half of it.

Frame 1 composites the layers at rest; frame 2 composites each layer moved by ``A_k`` (its texture and shape
are sampled at ``A_k^-1(y)``, exact for an affine map). The flow at a pixel ``x`` of frame 1 is
``A_k(x) - x`` of the topmost layer ``k`` whose shape covers ``x`` (mask >= 0.5); it is exact everywhere,
including pixels that are occluded or leave the image in frame 2 (``valid`` is all true, as in FlyingChairs).
Frame-independent Gaussian noise and blur are added last (:func:`flownet.data.synthetic_face.degrade_frames`, as for faces).

Items have the keys of the facial data so the two can be mixed in one training batch: ``flow_head`` is the
background (camera) motion field, ``flow_expr = flow - flow_head`` the objects' own motion, and ``mask`` is
all ones (no face: mask-based regularizers then act on the whole image). Convention (DESIGN.md): flow(x)
maps pixel x of frame 1 to x + flow(x) in frame 2; pixels, (u, v) = (x, y).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["noise_texture", "shape_mask", "affine_flow", "make_scene_pair", "SyntheticGenericFlow"]

_SPLITS = {"train": 0, "test": 1, "val": 2}


def noise_texture(h: int, w: int, rng: np.random.Generator) -> torch.Tensor:
    """A random grey texture (h, w) in [0, 1] with natural-image statistics.

    1/f noise: white Gaussian noise filtered in the Fourier domain by the amplitude ``f^-a``, ``a`` drawn in
    [0.75, 1.5] (``f`` in cycles per pixel, the DC term set to the lowest frequency), normalised to zero mean,
    unit standard deviation. Half of the time a posterised smooth noise (3-6 flat levels) is added: regions with
    sharp edges, as objects have. The result is mapped to ``mean + contrast * n`` with mean in [0.25, 0.75] and
    contrast in [0.06, 0.22], then clipped to [0, 1].

    Raises:
        ValueError: h or w below 2 pixels.
    """
    if h < 2 or w < 2:
        raise ValueError(f"texture size must be at least 2x2 pixels, got {h}x{w}")
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    f = torch.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0 / max(h, w)

    def coloured(a: float) -> torch.Tensor:
        spec = torch.fft.rfft2(torch.randn(h, w, generator=gen)) * f.pow(-a)
        n = torch.fft.irfft2(spec, s=(h, w))
        return (n - n.mean()) / n.std().clamp_min(1e-8)

    n = coloured(float(rng.uniform(0.75, 1.5)))
    if rng.random() < 0.5:
        levels = int(rng.integers(3, 7))
        smooth = coloured(float(rng.uniform(1.5, 2.5)))
        q = torch.floor((smooth.clamp(-2.0, 2.0) + 2.0) / 4.0 * levels - 1e-6)
        steps = torch.from_numpy(rng.normal(0.0, 1.0, size=levels).astype(np.float32))
        n = 0.6 * n + steps[q.long().clamp(0, levels - 1)]
        n = (n - n.mean()) / n.std().clamp_min(1e-8)
    mean, contrast = rng.uniform(0.25, 0.75), rng.uniform(0.06, 0.22)
    return (float(mean) + float(contrast) * n).clamp(0.0, 1.0)


def shape_mask(ys: torch.Tensor, xs: torch.Tensor, params: dict) -> torch.Tensor:
    """Soft shape mask in [0, 1] evaluated at pixel coordinates (ys, xs) (any equal shapes).

    ``params``: ``kind`` = ``"blob"`` (radius ``r0 * (1 + sum_k a_k cos(k phi + p_k))``, k = 2..5, around
    (cx, cy)) or ``"superellipse"`` (``(|x'|/a)^p + (|y'|/b)^p <= 1`` in a frame rotated by ``angle`` rad,
    p >= 2). The edge is a 1-pixel linear ramp of an approximate signed distance, so the mask is 1 inside,
    0 outside and 0.5 on the outline.

    Raises:
        ValueError: unknown kind.
    """
    dx, dy = xs - params["cx"], ys - params["cy"]
    if params["kind"] == "blob":
        rho, phi = torch.sqrt(dx ** 2 + dy ** 2), torch.atan2(dy, dx)
        r = torch.full_like(rho, 1.0)
        for k, (a, p) in enumerate(zip(params["amps"], params["phases"]), start=2):
            r = r + a * torch.cos(k * phi + p)
        dist = params["r0"] * r - rho
    elif params["kind"] == "superellipse":
        c, s = math.cos(params["angle"]), math.sin(params["angle"])
        xr, yr = c * dx + s * dy, -s * dx + c * dy
        p, a, b = params["p"], params["a"], params["b"]
        g = ((xr.abs() / a) ** p + (yr.abs() / b) ** p).clamp_min(1e-12) ** (1.0 / p)
        dist = (1.0 - g) * min(a, b)
    else:
        raise ValueError(f"unknown shape kind {params['kind']!r}; expected 'blob' or 'superellipse'")
    return (dist + 0.5).clamp(0.0, 1.0)


def _random_shape(h: int, w: int, rng: np.random.Generator) -> dict:
    side = min(h, w)
    cx, cy = rng.uniform(0.05, 0.95) * w, rng.uniform(0.05, 0.95) * h
    r0 = rng.uniform(0.08, 0.35) * side
    if rng.random() < 0.5:
        amps = [float(rng.uniform(0.0, 0.3 / k)) for k in range(2, 6)]
        return {"kind": "blob", "cx": cx, "cy": cy, "r0": r0, "amps": amps,
                "phases": [float(x) for x in rng.uniform(0, 2 * math.pi, 4)]}
    ratio = rng.uniform(0.4, 1.0)
    return {"kind": "superellipse", "cx": cx, "cy": cy, "a": r0, "b": r0 * ratio, "p": float(rng.uniform(2.0, 8.0)),
            "angle": float(rng.uniform(0, math.pi))}


def affine_flow(ys: torch.Tensor, xs: torch.Tensor, centre: tuple[float, float], scale: float, angle: float,
                translation: tuple[float, float]) -> torch.Tensor:
    """Flow (2, *ys.shape) in pixels of the affine motion ``A(x) = c + s R(angle) (x - c) + t``: ``A(x) - x``.

    Args:
        ys, xs: pixel coordinates (equal shapes). centre: c = (cx, cy) px. scale: s > 0. angle: radians; a
            positive angle turns +x toward +y (clockwise on screen, where y points down). translation: t = (tx, ty) px.
    """
    cx, cy = centre
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    dx, dy = xs - cx, ys - cy
    u = cx + c * dx - s * dy + translation[0] - xs
    v = cy + s * dx + c * dy + translation[1] - ys
    return torch.stack([u, v])


def _inverse_coords(ys: torch.Tensor, xs: torch.Tensor, centre, scale: float, angle: float, translation):
    """``A^-1(y)`` for the affine map of :func:`affine_flow`: the frame-1 position that lands on (ys, xs)."""
    cx, cy = centre
    c, s = math.cos(angle) / scale, math.sin(angle) / scale
    dx, dy = xs - cx - translation[0], ys - cy - translation[1]
    return cy - s * dx + c * dy, cx + c * dx + s * dy  # R(-angle) / scale


def _sample_canvas(canvas: torch.Tensor, pad: int, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of a (H + 2 pad, W + 2 pad) canvas (origin at (-pad, -pad)) at pixel coords (ys, xs)."""
    hc, wc = canvas.shape
    gx = (xs + pad + 0.5) / wc * 2.0 - 1.0
    gy = (ys + pad + 0.5) / hc * 2.0 - 1.0
    grid = torch.stack([gx, gy], dim=-1)[None]
    return F.grid_sample(canvas[None, None], grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)[0, 0]


def make_scene_pair(size: int | tuple[int, int], rng: np.random.Generator, n_objects: tuple[int, int] = (1, 5),
                    max_motion: float = 10.0, noise: float = 0.01, blur: float = 0.7) -> dict:
    """One generic pair with exact flow (module docstring).

    Args:
        size: side (int) or (H, W) in pixels, each >= 16.
        rng: numpy generator; all randomness comes from it (same state → same pair).
        n_objects: inclusive range of the number of foreground layers.
        max_motion: largest translation of an object (px; the background's is at most half); rotations reach
            +-3 deg (background) / +-8 deg (objects), scale changes +-3 % / +-6 %, so the largest displacement can
            exceed ``max_motion`` by a few pixels at the image corners.
        noise: per-frame Gaussian noise std drawn in [0, noise]; blur: Gaussian blur sigma in [0, blur] px
            (none below 0.2), independently per frame.

    Returns:
        dict: img1, img2 (1, H, W) in [0, 1]; flow, flow_head (background), flow_expr (objects' own motion)
        (2, H, W) px with flow = flow_head + flow_expr; mask (1, H, W) ones; valid (H, W) all true;
        layers (H, W) int64 index of the layer that owns each frame-1 pixel (0 = background).

    Raises:
        ValueError: a side below 16 px, ``max_motion`` < 0, or a bad ``n_objects`` range.
    """
    from .synthetic_face import degrade_frames
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 16 or w < 16:
        raise ValueError(f"scene size must be at least 16x16 pixels, got {h}x{w}")
    if max_motion < 0:
        raise ValueError(f"max_motion must be >= 0 pixels, got {max_motion}")
    if not 0 <= n_objects[0] <= n_objects[1]:
        raise ValueError(f"n_objects must be an inclusive range (lo, hi) with 0 <= lo <= hi, got {n_objects}")
    pad = int(math.ceil(max_motion + 0.12 * max(h, w))) + 2
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    k = int(rng.integers(n_objects[0], n_objects[1] + 1))
    img1 = img2 = None
    flow = torch.zeros(2, h, w)
    head = None
    layers = torch.zeros(h, w, dtype=torch.int64)
    for j in range(k + 1):
        bg = j == 0
        rot, scl, frac = (3.0, 0.03, 0.5) if bg else (8.0, 0.06, 1.0)
        r = frac * max_motion * float(rng.random()) ** 2
        d = rng.uniform(0, 2 * math.pi)
        t = (r * math.cos(d), r * math.sin(d))
        angle, scale = math.radians(rng.uniform(-rot, rot)), 1.0 + float(rng.uniform(-scl, scl))
        shape = None if bg else _random_shape(h, w, rng)
        centre = (w / 2.0, h / 2.0) if bg else (shape["cx"], shape["cy"])
        tex = noise_texture(h + 2 * pad, w + 2 * pad, rng)
        f_layer = affine_flow(ys, xs, centre, scale, angle, t)
        iy, ix = _inverse_coords(ys, xs, centre, scale, angle, t)
        t1, t2 = tex[pad:pad + h, pad:pad + w], _sample_canvas(tex, pad, iy, ix)
        if bg:
            img1, img2, head, flow = t1, t2, f_layer, f_layer.clone()
            continue
        m1, m2 = shape_mask(ys, xs, shape), shape_mask(iy, ix, shape)
        img1 = m1 * t1 + (1 - m1) * img1
        img2 = m2 * t2 + (1 - m2) * img2
        own = m1 >= 0.5
        flow = torch.where(own[None], f_layer, flow)
        layers[own] = j
    frames = degrade_frames((img1[None], img2[None]), rng, noise, blur)
    return {"img1": frames[0], "img2": frames[1], "flow": flow, "flow_head": head, "flow_expr": flow - head,
            "mask": torch.ones(1, h, w), "valid": torch.ones(h, w, dtype=torch.bool), "layers": layers}


class SyntheticGenericFlow(torch.utils.data.Dataset):
    """Deterministic generic flow pairs (module docstring): pair ``i`` of a split is fully determined by
    ``(seed, split, i)``; the splits draw from disjoint random streams (nothing is read from disk).

    Args:
        split: "train", "val" or "test". size: side in pixels (>= 16). n_pairs: pairs in this split.
        seed: generation seed. max_motion, n_objects: see :func:`make_scene_pair`.
        gray: must be True (the scenes are grey; the facial data's ``gray=False`` has no analogue here).

    Items: img1, img2 (1, size, size) [0, 1]; flow, flow_head, flow_expr (2, size, size) px; mask (1, size, size)
    ones; valid (size, size) bool; subject ``"generic"``; path ``"generic:<split>:<i>"``.

    Raises:
        ValueError: unknown split, ``n_pairs`` < 0, ``gray=False``, or a bad size / motion range.
    """

    def __init__(self, split: str = "train", size: int = 128, n_pairs: int = 1000, seed: int = 0,
                 max_motion: float = 10.0, n_objects: tuple[int, int] = (1, 5), gray: bool = True):
        if split not in _SPLITS:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if n_pairs < 0:
            raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
        if not gray:
            raise ValueError("generic scenes are grey only (gray=True)")
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        if max_motion < 0:
            raise ValueError(f"max_motion must be >= 0 pixels, got {max_motion}")
        self.split, self.size, self.n_pairs, self.seed = split, int(size), int(n_pairs), int(seed)
        self.max_motion, self.n_objects = float(max_motion), tuple(n_objects)

    def __len__(self) -> int:
        return self.n_pairs

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n_pairs:
            raise IndexError(f"pair {i} out of range (n_pairs={self.n_pairs})")
        rng = np.random.default_rng([self.seed, 100 + _SPLITS[self.split], i])
        out = make_scene_pair(self.size, rng, self.n_objects, self.max_motion)
        out.pop("layers")
        out["subject"] = "generic"
        out["path"] = f"generic:{self.split}:{i}"
        return out
