"""Head / expression decomposition of facial optical flow: the classical (RANSAC global-motion fit) method.

DecFlow (``../shared/papers/facialflownet_decflow_supplement.txt``) splits the facial flow ``F_f`` of a
face video into a head flow ``F_h`` and an expression flow ``F_e`` (supplement Fig. 5: "F_f, F_h and F_e
are facial flow, head flow, and expression flow"; Sec. 2.2 and Tab. 2: two independent decoders) and finds
the expression flow the better feature for expression recognition (Sec. 2.3, Tab. 3: mean AUC 95.0 for
DecFlow(E) vs 90.2 for DecFlow(F) on CK+). The learned decomposition is :mod:`flownet.models.decflow`;
this module is the classical counterpart that needs no training and works on the flow of any estimator.

Model. Over the short onset→apex interval of a micro-expression the head moves by a few pixels, and on a
face crop that rigid motion projects to (very nearly) one global 2-D affine map, while facial actions are
local. So, for a flow field ``F`` (pixels) and a face region ``R``:

    (A, t)        = RANSAC fit of the correspondences  x -> x + F(x),  x in R      (A: 2x2, t: 2, pixels)
    head(x)       = A x + t - x          for every pixel x of the frame
    expression(x) = F(x) - head(x)

so ``total = head + expression`` exactly (the same convention as :mod:`flownet.data.synthetic_face`,
whose ``flow_head`` is a similarity, i.e. inside the affine family). The fit is OpenCV's
``cv2.estimateAffinePartial2D`` (similarity: rotation, uniform scale, translation; the default) or
``cv2.estimateAffine2D`` (full affine), ``method=cv2.RANSAC``, on ``n_points`` pixels drawn at random
(seeded) from ``R``,
followed by OpenCV's Levenberg–Marquardt refinement on the inliers. A pixel is an inlier of the head
motion when its flow differs from the affine prediction by at most ``threshold`` pixels
(``ransacReprojThreshold``). Defaults (:data:`DEFAULT_MODEL` "similarity", :data:`DEFAULT_THRESHOLD`
0.2 px, :data:`DEFAULT_MARGIN` 0, i.e. the whole frame) are the best of a sweep over model × threshold
(0.1–1 px) × margin (0, 0.1) on 40 pairs of the synthetic *training* split with TV-L1 flow, scored by
expression-flow EPE (``bench/flow_decompose.py --tune 40``; table in docs/benchmarks.md, section "Head / expression flow decomposition").
0.2 px is above TV-L1's flow noise on faces (facial test EPE 0.12 px, docs/benchmarks.md) and at the low
end of the 0.2–3 px action-unit amplitudes. Limitation (measured there): where an action's motion covers
most of the crop with a near-uniform displacement (broad synthetic AUs do), the largest consensus set
is the action, not the head, and the split is wrong; the learned model can use facial context instead.

Face region ``R``: a given mask (e.g. the landmark hull :func:`flownet.data.synthetic_face.face_mask`),
else :func:`central_region` (the frame minus a ``margin`` border: aligned face crops are mostly face, and
flow near the image border is least reliable).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = ["DEFAULT_THRESHOLD", "DEFAULT_MODEL", "DEFAULT_MARGIN", "MODELS", "COMPONENTS", "central_region",
           "affine_field", "fit_affine_ransac", "decompose_ransac",
           "RansacDecomposer", "ComponentEstimator", "get_decomposer"]

#: RANSAC inlier threshold (pixels of flow residual)
DEFAULT_THRESHOLD = 0.2
#: head-motion models: "affine" (cv2.estimateAffine2D) or "similarity" (cv2.estimateAffinePartial2D)
MODELS = ("affine", "similarity")
DEFAULT_MODEL = "similarity"
#: default border of the face region (fraction of the side) when no mask is given
DEFAULT_MARGIN = 0.0
#: names of the parts a decomposition returns (``total = head + expression``)
COMPONENTS = ("total", "head", "expression")


def _check_flow(flow: torch.Tensor, name: str = "flow") -> torch.Tensor:
    if not isinstance(flow, torch.Tensor) or flow.dim() != 4 or flow.shape[1] != 2:
        shape = tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__
        raise ValueError(f"{name} must be a (B, 2, H, W) tensor in pixels, got {shape}")
    if not torch.isfinite(flow).all():
        raise ValueError(f"{name} contains non-finite values")
    return flow


def central_region(height: int, width: int, margin: float = DEFAULT_MARGIN) -> torch.Tensor:
    """(H, W) bool mask of the frame without a border of ``margin`` × side on each edge.

    The default face region for aligned face crops (no landmarks needed).

    Raises:
        ValueError: ``margin`` outside [0, 0.5) or a non-positive size.
    """
    if height < 1 or width < 1:
        raise ValueError(f"region size must be positive, got {height}x{width}")
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    m = torch.zeros(height, width, dtype=torch.bool)
    dy, dx = int(round(margin * height)), int(round(margin * width))
    m[dy:height - dy, dx:width - dx] = True
    return m


def affine_field(affine: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Flow (B, 2, H, W) in pixels of affine maps ``x -> A x + t``: ``A x + t - x`` at every pixel.

    Args:
        affine: (B, 2, 3) ``[A | t]`` in pixel coordinates (x right, y down, origin at the top-left
            pixel centre), as returned by ``cv2.estimateAffine2D``.
        height, width: grid size (pixels).

    Raises:
        ValueError: ``affine`` is not (B, 2, 3).
    """
    if affine.dim() != 3 or tuple(affine.shape[1:]) != (2, 3):
        raise ValueError(f"affine must be (B, 2, 3) [A | t], got {tuple(affine.shape)}")
    a = affine.to(torch.float64)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64, device=a.device),
                            torch.arange(width, dtype=torch.float64, device=a.device), indexing="ij")
    hom = torch.stack([xs, ys, torch.ones_like(xs)]).reshape(3, -1)          # (3, HW)
    pos = (a @ hom).reshape(-1, 2, height, width)                              # (B, 2, H, W)
    return (pos - hom[:2].reshape(1, 2, height, width)).to(affine.dtype if affine.is_floating_point()
                                                              else torch.float32)


def fit_affine_ransac(flow: torch.Tensor, region: torch.Tensor | None = None,
                      threshold: float = DEFAULT_THRESHOLD, n_points: int = 2000, max_iters: int = 2000,
                      confidence: float = 0.995, refine_iters: int = 10, seed: int = 0,
                      model: str = DEFAULT_MODEL) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust global affine fit of each flow field (the head-motion model of the module docstring).

    For each field, ``n_points`` pixels are drawn without replacement (seeded, vectorized) from the
    region; ``cv2.estimateAffine2D(x, x + F(x), method=cv2.RANSAC, ransacReprojThreshold=threshold, ...)``
    fits ``[A | t]`` (6 degrees of freedom; ``model="similarity"``: ``cv2.estimateAffinePartial2D``,
    rotation + uniform scale + translation, 4 degrees of freedom, so that less of a broad facial action
    can be absorbed into the head motion). If OpenCV finds no model (degenerate points, e.g. all on one
    line), a plain least-squares affine fit (6 dof, for either model) on the same points is used and a
    ``RuntimeWarning`` says so.

    Args:
        flow: (B, 2, H, W) flow in pixels (any estimator's).
        region: (B, H, W) / (H, W) / (B, 1, H, W) bool or {0, 1} face region; None → :func:`central_region`.
        threshold: RANSAC inlier threshold, pixels of flow residual (> 0).
        n_points: pixels sampled per field (all region pixels when the region is smaller).
        max_iters, confidence, refine_iters: OpenCV RANSAC iterations, confidence, LM refinement steps.
        seed: sampling seed (the result is deterministic for a given seed).
        model: "affine" (6 dof) or "similarity" (4 dof), see above.

    Returns:
        ``(affine, inlier_ratio)``: (B, 2, 3) float64 ``[A | t]`` (pixel coordinates) and (B,) float64
        fraction of sampled points that are RANSAC inliers (1.0 for a field fitted by the least-squares
        fallback, which uses every sampled point).

    Raises:
        ValueError: bad shapes, non-finite flow, threshold <= 0, unknown model, or a region with fewer
            than 3 pixels.
    """
    import cv2
    flow = _check_flow(flow)
    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
    fit = cv2.estimateAffine2D if model == "affine" else cv2.estimateAffinePartial2D
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 pixels, got {threshold}")
    b, _, h, w = flow.shape
    reg = _region(region, b, h, w)
    rng = np.random.default_rng(seed)
    f = flow.detach().to("cpu", torch.float64).numpy()
    affines, ratios = np.zeros((b, 2, 3)), np.zeros(b)
    for i in range(b):  # one OpenCV call per field (the per-pixel work is vectorized)
        ys, xs = np.nonzero(reg[i])
        if len(ys) < 3:
            raise ValueError(f"face region of field {i} has {len(ys)} pixels; an affine fit needs >= 3")
        if len(ys) > n_points:
            pick = rng.choice(len(ys), size=int(n_points), replace=False)
            ys, xs = ys[pick], xs[pick]
        src = np.stack([xs, ys], 1).astype(np.float64)
        dst = src + f[i][:, ys, xs].T
        m, inl = fit(src.astype(np.float32), dst.astype(np.float32), method=cv2.RANSAC,
                     ransacReprojThreshold=float(threshold), maxIters=int(max_iters),
                     confidence=float(confidence), refineIters=int(refine_iters))
        if m is None:
            warnings.warn(f"RANSAC found no affine model for field {i}; using a least-squares fit",
                          RuntimeWarning, stacklevel=2)
            hom = np.concatenate([src, np.ones((len(src), 1))], 1)
            m = np.linalg.lstsq(hom, dst, rcond=None)[0].T  # (least squares affine, both models)
            ratios[i] = 1.0
        else:
            ratios[i] = float(inl.mean())
        affines[i] = m
    return torch.from_numpy(affines), torch.from_numpy(ratios)


def _region(region, b: int, h: int, w: int) -> np.ndarray:
    """Region argument → (B, H, W) bool numpy."""
    if region is None:
        return central_region(h, w).numpy()[None].repeat(b, 0)
    r = torch.as_tensor(region)
    if r.dim() == 4 and r.shape[1] == 1:
        r = r[:, 0]
    if r.dim() == 2:
        r = r[None].expand(b, -1, -1)
    if r.dim() != 3 or tuple(r.shape) != (b, h, w):
        raise ValueError(f"face region must be (H, W), (B, H, W) or (B, 1, H, W) matching the flow "
                         f"({b}, 2, {h}, {w}), got {tuple(torch.as_tensor(region).shape)}")
    return (r.detach().cpu() > 0.5).numpy() if r.is_floating_point() else r.detach().cpu().bool().numpy()


def decompose_ransac(flow: torch.Tensor, region: torch.Tensor | None = None,
                     threshold: float = DEFAULT_THRESHOLD, **kwargs) -> dict:
    """Split a flow field into head (global affine, RANSAC) and expression (remainder) flow.

    DecFlow supplement Fig. 5 / Sec. 2.3 (facial = head + expression), classical version (module docstring).

    Args:
        flow: (B, 2, H, W) total flow in pixels.
        region, threshold, kwargs: see :func:`fit_affine_ransac`.

    Returns:
        dict with ``total`` (the input), ``head``, ``expression`` (B, 2, H, W) pixels on the flow's
        device and dtype with ``total == head + expression`` (up to float rounding), ``affine`` (B, 2, 3)
        and ``inlier_ratio`` (B,).

    Raises:
        ValueError: see :func:`fit_affine_ransac`.
    """
    affine, ratio = fit_affine_ransac(flow, region, threshold, **kwargs)
    head = affine_field(affine, flow.shape[2], flow.shape[3]).to(flow.device, flow.dtype)
    return {"total": flow, "head": head, "expression": flow - head, "affine": affine, "inlier_ratio": ratio}


class RansacDecomposer:
    """Any flow estimator + RANSAC head-motion decomposition (similarity by default, or affine), behind the
    estimator interface.

    ``decompose(img1, img2, region=None) -> dict`` (see :func:`decompose_ransac`); ``estimate`` returns
    the total flow (the base estimator's), so this object is also a plain estimator.

    Args:
        base: an estimator object (``estimate(img1, img2) -> (B, 2, H, W)``) or a registry name
            (``"tvl1"``, ``"srflownet"``, ...), built with :func:`flownet.registry.get_estimator`.
        weights, device, base_kwargs: passed to ``get_estimator`` when ``base`` is a name.
        threshold, n_points, seed, model: RANSAC settings (:func:`fit_affine_ransac`); margin: the border
            of the default face region (:func:`central_region`).
    """

    def __init__(self, base="tvl1", weights=None, device="cpu", threshold: float = DEFAULT_THRESHOLD,
                 n_points: int = 2000, margin: float = DEFAULT_MARGIN, seed: int = 0, model: str = DEFAULT_MODEL,
                 **base_kwargs):
        if isinstance(base, str):
            from .registry import get_estimator
            base = get_estimator(base, weights=weights, device=device, **base_kwargs)
        if not hasattr(base, "estimate"):
            raise ValueError(f"base estimator must have estimate(img1, img2), got {type(base).__name__}")
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0 pixels, got {threshold}")
        if model not in MODELS:
            raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
        central_region(8, 8, margin)  # validates margin
        self.model = model
        self.base, self.threshold, self.n_points, self.margin, self.seed = base, threshold, n_points, margin, seed
        self.name = f"ransac-{getattr(base, 'name', type(base).__name__)}"

    def decompose(self, img1: torch.Tensor, img2: torch.Tensor, region=None) -> dict:
        """Total, head and expression flow (B, 2, H, W) pixels of images (B, 1|3, H, W) in [0, 1]."""
        flow = self.base.estimate(img1, img2)
        if region is None:
            region = central_region(flow.shape[2], flow.shape[3], self.margin)
        return decompose_ransac(flow, region, self.threshold, n_points=self.n_points, seed=self.seed,
                                model=self.model)

    def estimate(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Total flow (B, 2, H, W), pixels."""
        return self.base.estimate(img1, img2)

    __call__ = estimate


class ComponentEstimator:
    """An estimator that returns one part of a decomposition (for feature building).

    Args:
        decomposer: object with ``decompose(img1, img2) -> dict`` (:class:`RansacDecomposer`,
            :class:`flownet.models.decflow.DecFlowEstimator`).
        component: "total", "head" or "expression".

    Raises:
        ValueError: unknown component.
    """

    def __init__(self, decomposer, component: str = "expression"):
        if component not in COMPONENTS:
            raise ValueError(f"component must be one of {list(COMPONENTS)}, got {component!r}")
        self.decomposer, self.component = decomposer, component
        self.name = f"{getattr(decomposer, 'name', 'decomposer')}:{component}"

    @torch.no_grad()
    def estimate(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """The chosen part (B, 2, H, W), pixels."""
        return self.decomposer.decompose(img1, img2)[self.component]

    __call__ = estimate


def get_decomposer(method: str = "ransac", base="tvl1", weights=None, device="cpu", **kwargs):
    """A decomposer by name: ``"ransac"`` (``base`` estimator + RANSAC similarity/affine fit) or ``"learned"``
    (DecFlow).

    Args:
        method: "ransac" | "learned".
        base: for "ransac", the base estimator (name or object); ignored by "learned".
        weights: for "ransac", weights of a named base (e.g. SRFlowNet); for "learned", the DecFlow weights
            file (None → the shipped ``flownet/weights/decflow_facial.pt``).
        kwargs: RANSAC settings (:class:`RansacDecomposer`) or DecFlow ``iters``.

    Raises:
        ValueError: unknown method. FileNotFoundError / ValueError: missing or mismatched weights.
    """
    if method == "ransac":
        return RansacDecomposer(base, weights=weights, device=device, **kwargs)
    if method == "learned":
        from .models.decflow import DecFlowEstimator
        return DecFlowEstimator(weights=weights, device=device, **kwargs)
    raise ValueError(f"unknown decomposition method '{method}'; choose 'ransac' or 'learned'")
