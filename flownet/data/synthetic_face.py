"""Facial optical flow with exact ground truth: real face crops warped by known smooth fields.

A 2D analogue of the SRFlow dataset (which cannot be had here): a real CASME II face crop (frame 1)
is warped by a known deformation to give frame 2, so the flow is exact by construction
(SRFlow paper Sec. III motivates the head + expression decomposition). The field is

    flow = flow_head + flow_expr      (both (2, H, W), pixels; the total is *defined* as their sum)

* ``flow_head``: a small similarity transform about the image centre (rotation, scale, translation),
  rescaled so its largest displacement over the crop is at most ``max_head`` px (default 2): head motion.
* ``flow_expr``: action-unit (AU) motions anchored at the 68 iBUG face landmarks (:func:`au_displacement`),
  amplitudes 0.2–3 px, smooth Gaussian support scaled by the inter-ocular distance.

Frame 2 is synthesised with :func:`warp_forward` (inverse field by fixed-point iteration + backward
bilinear warping), then photometric noise and blur are applied independently to both frames.

Landmarks: dlib's 68-point shape predictor (``face_recognition``'s ``pose_predictor_68_point``) run on
each crop with the known face box = the whole crop (the CASME II ``reg_img`` frames are already aligned
face crops, so no detection is needed). Points may fall slightly outside a tight crop.

Images are resized (whole crop, aspect not preserved) to ``size`` x ``size`` *before* warping, so the
ground truth is exact at that size. Convention (DESIGN.md): flow(x) maps pixel x of frame 1 to
x + flow(x) in frame 2.

Data root: ``root`` argument, else ``$ICEGAN_SHARED_DATA``, else ``<repo>/../shared/data`` of a checkout; the crops are
read from ``<root>/casme2/<subject>/<clip>/img<n>.jpg`` (or ``reg_img<n>.jpg``, :data:`FRAME_RE`). Nothing derived is
written to disk.
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import paths as _paths
from .face_models import face_recognition_modules  # noqa: F401 - one loader, imported from here too

__all__ = ["face_recognition_modules", "AU_NAMES", "POSITIVE_AUS", "NEGATIVE_AUS", "SURPRISE_AUS", "shared_data_root",
           "detect_landmarks", "inter_ocular_distance", "au_displacement", "similarity_flow",
           "inverse_flow", "backward_warp", "warp_forward", "degrade_frames", "face_mask", "list_subjects",
           "split_subjects", "split_subjects_val", "make_pair", "SyntheticFaceFlow", "build_landmark_cache",
           "extra_face_paths"]

#: action units modelled (FACS numbers in brackets), each moves skin in its natural direction
AU_NAMES = (
    "brow_raise",          # AU1+2 inner/outer brow raiser: brows and forehead up
    "brow_lower",          # AU4 brow lowerer: brows down and toward the midline
    "upper_lid_raise",     # AU5 upper lid raiser: upper lids up
    "lid_tighten",         # AU7 lid tightener: lower lids up
    "cheek_raise",         # AU6 cheek raiser: cheeks (and lower lids) up
    "lip_corner_pull",     # AU12 lip corner puller: mouth corners out and up
    "lip_corner_depress",  # AU15 lip corner depressor: mouth corners down (slightly in)
    "jaw_drop",            # AU26 jaw drop: chin and lower lip down
)
#: AU combinations of the three MEGC classes (for building synthetic micro-expressions)
POSITIVE_AUS = ("lip_corner_pull", "cheek_raise")
NEGATIVE_AUS = ("brow_lower", "lip_corner_depress")
SURPRISE_AUS = ("brow_raise", "upper_lid_raise")


#: the folder whose ``pyproject.toml`` makes it a checkout, beside which the default shared data root lies
#: (:data:`flownet.paths.REPO_ROOT`; a module attribute, so that a test can stand in an installed flownet)
_REPO = _paths.REPO_ROOT


def shared_data_root() -> Path:
    """The shared data root of :func:`flownet.paths.shared_data_root` (``$ICEGAN_SHARED_DATA``, else
    ``<repo>/../shared/data`` in a checkout; the one rule, also :func:`icegan.paths.shared_data_root`'s), for the
    data sets of flownet that default to it.

    Raises:
        FileNotFoundError: neither (an installed flownet, whose ``<repo>`` is ``site-packages``, and no
            ``$ICEGAN_SHARED_DATA``); the message names ICEGAN_SHARED_DATA and the options that give a data folder.
    """
    return _paths.shared_data_root(_REPO)


# --------------------------------------------------------------------------------------------- landmarks


def detect_landmarks(image_rgb: np.ndarray) -> np.ndarray:
    """68 iBUG landmarks (68, 2) float32 (x, y) pixels of a face crop, face box = whole image.

    Args:
        image_rgb: (H, W, 3) uint8 RGB (or (H, W) grey) face crop.
    """
    import dlib
    _, fr = face_recognition_modules()
    img = np.ascontiguousarray(image_rgb if image_rgb.ndim == 3 else np.repeat(image_rgb[..., None], 3, -1))
    h, w = img.shape[:2]
    shape = fr.pose_predictor_68_point(img, dlib.rectangle(0, 0, w - 1, h - 1))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def _check_landmarks(lm) -> np.ndarray:
    lm = np.asarray(lm, dtype=np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise ValueError(f"landmarks must be a finite (68, 2) array of (x, y) pixels, got shape {lm.shape}")
    return lm


def inter_ocular_distance(landmarks) -> float:
    """Distance (pixels) between the two eye centres (means of points 36–41 and 42–47)."""
    lm = _check_landmarks(landmarks)
    return float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))


def _au_anchors(lm: np.ndarray, au: str):
    """Anchor points (K, 2), unit-ish directions (K, 2) and support sigma (px) of one AU."""
    iod = max(float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))), 1e-3)
    x_mid = lm[27:31, 0].mean()
    up = np.array([0.0, -1.0])
    if au == "brow_raise":
        pts = np.concatenate([lm[17:27], lm[17:27] + [0.0, -0.35 * iod]])
        return pts, np.tile(up, (len(pts), 1)), 0.28 * iod
    if au == "brow_lower":
        pts = lm[17:27]
        toward = np.sign(x_mid - pts[:, 0])[:, None] * np.array([[0.6, 0.0]])
        d = toward + np.array([[0.0, 1.0]])
        return pts, d / np.linalg.norm(d, axis=1, keepdims=True), 0.25 * iod
    if au == "upper_lid_raise":
        pts = lm[[37, 38, 43, 44]]
        return pts, np.tile(up, (4, 1)), 0.12 * iod
    if au == "lid_tighten":
        pts = lm[[40, 41, 46, 47]]
        return pts, np.tile(up, (4, 1)), 0.12 * iod
    if au == "cheek_raise":
        eye_r, eye_l = lm[36:42].mean(0), lm[42:48].mean(0)
        cheeks = np.stack([eye_r + [-0.1 * iod, 0.6 * iod], eye_l + [0.1 * iod, 0.6 * iod]])
        lids = lm[[40, 41, 46, 47]]
        pts = np.concatenate([cheeks, lids])
        d = np.concatenate([np.tile(up, (2, 1)), np.tile(0.5 * up, (4, 1))])
        return pts, d, 0.3 * iod
    if au in ("lip_corner_pull", "lip_corner_depress"):
        pts = lm[[48, 54]]
        out = np.sign(pts[:, 0] - x_mid)[:, None]
        if au == "lip_corner_pull":
            d = np.concatenate([0.8 * out, np.full((2, 1), -0.6)], 1)
        else:
            d = np.concatenate([-0.2 * out, np.ones((2, 1))], 1)
        return pts, d / np.linalg.norm(d, axis=1, keepdims=True), 0.25 * iod
    if au == "jaw_drop":
        pts = np.concatenate([lm[5:12], lm[55:60], lm[65:68]])
        return pts, np.tile(-up, (len(pts), 1)), 0.35 * iod
    raise ValueError(f"unknown action unit '{au}'; known: {list(AU_NAMES)}")


def au_displacement(landmarks, amplitudes: dict, height: int, width: int,
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """Smooth displacement field of action units anchored at face landmarks.

    Each AU has anchor points p_k (landmarks, or points derived from them), directions d_k (|d_k| <= 1,
    image axes: +x right, +y down) and a support sigma proportional to the inter-ocular distance. With
    ``w_k(x) = exp(-|x - p_k|^2 / (2 sigma^2))`` the AU field is

        F_au(x) = a * sum_k w_k(x) d_k / max(1, sum_k w_k(x))

    so its magnitude never exceeds |a| and reaches about |a| at the anchors; the result is the sum over
    AUs. A negative amplitude reverses the motion.

    Args:
        landmarks: (68, 2) iBUG landmarks, (x, y) pixels in the target grid.
        amplitudes: {AU name (see :data:`AU_NAMES`): amplitude a in pixels}; 0 entries are skipped.
        height, width: output grid size (pixels).

    Returns:
        (2, H, W) float32 flow in pixels (u, v).

    Raises:
        ValueError: bad landmarks, unknown AU name, or non-finite amplitude.
    """
    lm = _check_landmarks(landmarks)
    xs = torch.arange(width, dtype=torch.float64)[:, None]    # (W, 1)
    ys = torch.arange(height, dtype=torch.float64)[:, None]   # (H, 1)
    field = torch.zeros(2, height, width, dtype=torch.float64)
    for au, a in amplitudes.items():
        if not math.isfinite(float(a)):
            raise ValueError(f"amplitude of '{au}' is not finite: {a}")
        pts, dirs, sigma = _au_anchors(lm, au)
        if float(a) == 0.0:
            continue
        p = torch.from_numpy(np.asarray(pts, np.float64))                 # (K, 2)
        d = torch.from_numpy(np.asarray(dirs, np.float64))                # (K, 2)
        # the Gaussian weight is separable, w_k(x, y) = gx_k(x) * gy_k(y), so sum_k w_k d_k and sum_k w_k are
        # (H, K) x (K, W) products instead of an (H*W, K) table (same values up to rounding, ~10x faster)
        gx = torch.exp(-(xs - p[:, 0]) ** 2 / (2.0 * sigma ** 2))         # (W, K)
        gy = torch.exp(-(ys - p[:, 1]) ** 2 / (2.0 * sigma ** 2))         # (H, K)
        norm = (gy @ gx.T).clamp(min=1.0)                                 # (H, W)
        for c in range(2):
            field[c] += float(a) * ((gy * d[:, c]) @ gx.T) / norm
    return field.float().to(device)


def similarity_flow(height: int, width: int, angle_deg: float = 0.0, scale: float = 1.0,
                    tx: float = 0.0, ty: float = 0.0) -> torch.Tensor:
    """Flow (2, H, W) of a similarity transform about the image centre c: ``x -> s R (x - c) + c + t``."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    th = math.radians(angle_deg)
    c, s = scale * math.cos(th), scale * math.sin(th)
    x0, y0 = xs - cx, ys - cy
    u = c * x0 - s * y0 - x0 + tx
    v = s * x0 + c * y0 - y0 + ty
    return torch.stack([u, v]).float()


# ---------------------------------------------------------------------------------------------- warping

def _base_grid(b, h, w, device, dtype):
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys])[None].expand(b, -1, -1, -1)


def _sample(x: torch.Tensor, coords: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Bilinear sample x (B, C, H, W) at absolute pixel coords (B, 2, H, W) (align_corners=True)."""
    h, w = x.shape[-2:]
    gx = 2.0 * coords[:, 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * coords[:, 1] / max(h - 1, 1) - 1.0
    return F.grid_sample(x, torch.stack([gx, gy], -1), mode="bilinear", padding_mode=padding_mode,
                         align_corners=True)


def _batch(t: torch.Tensor, name: str, channels=None) -> tuple[torch.Tensor, bool]:
    given = tuple(t.shape)          # named as the caller gave it (a (C, H, W) tensor was shown as (1, C, H, W))
    if t.dim() == 3:
        t, squeeze = t[None], True
    elif t.dim() == 4:
        squeeze = False
    else:
        raise ValueError(f"{name} must be (C, H, W) or (B, C, H, W), got {given}")
    if channels is not None and t.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got {given}")
    return t, squeeze


def inverse_flow(flow: torch.Tensor, iters: int = 10) -> torch.Tensor:
    """Backward field b of a forward flow f: ``b(y) = -f(y + b(y))`` by fixed-point iteration.

    Then ``y + b(y)`` is the frame-1 point that lands on y in frame 2. The iteration converges for
    smooth fields with |grad f| < 1 (all fields here: < 3 px over tens of pixels); 10 iterations reach
    ~1e-4 px for them. Differentiable.

    Args:
        flow: (B, 2, H, W) or (2, H, W) forward flow, pixels.

    Returns:
        backward flow of the same shape, pixels.
    """
    f, squeeze = _batch(flow, "flow", 2)
    base = _base_grid(f.shape[0], f.shape[2], f.shape[3], f.device, f.dtype)
    b = -f
    for _ in range(int(iters)):
        b = -_sample(f, base + b)
    return b[0] if squeeze else b


def backward_warp(image: torch.Tensor, flow_b: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """``out(y) = image(y + flow_b(y))`` by bilinear sampling (image (B, C, H, W), flow_b (B, 2, H, W))."""
    base = _base_grid(image.shape[0], image.shape[2], image.shape[3], image.device, image.dtype)
    return _sample(image, base + flow_b.to(image.dtype), padding_mode)


def warp_forward(image: torch.Tensor, flow: torch.Tensor, iters: int = 10,
                 return_valid: bool = False):
    """Synthesise frame 2 from frame 1 and a forward flow (pixel x of frame 1 moves to x + flow(x)).

    Computes the backward field with :func:`inverse_flow` and samples frame 1 bilinearly
    (``grid_sample``, border padding). Differentiable in ``image`` and ``flow``.

    Args:
        image: (B, C, H, W) or (C, H, W) float image (any range).
        flow: (B, 2, H, W) or (2, H, W) forward flow in pixels (same H, W; batch broadcast from 1).
        iters: fixed-point iterations for the inverse field.
        return_valid: also return the (B, H, W) / (H, W) bool mask of target pixels whose source
            point lies inside frame 1 (elsewhere the border was replicated).

    Returns:
        frame 2 with the shape of ``image``, or (B, C, H, W) for a (C, H, W) image and B > 1 flows (and the valid
        mask if asked).

    Raises:
        ValueError: shapes do not match.
    """
    img, squeeze = _batch(image, "image")
    f, _ = _batch(flow, "flow", 2)
    if f.shape[-2:] != img.shape[-2:]:
        raise ValueError(f"flow {tuple(f.shape)} and image {tuple(img.shape)} differ in H, W")
    if f.shape[0] != img.shape[0]:
        if f.shape[0] == 1:
            f = f.expand(img.shape[0], -1, -1, -1)
        elif img.shape[0] == 1:
            img = img.expand(f.shape[0], -1, -1, -1)
            squeeze = False     # one (C, H, W) image and B flows: B frames (only the first was returned)
        else:
            raise ValueError(f"batch sizes differ: image {img.shape[0]}, flow {f.shape[0]}")
    f = f.to(img.dtype)
    b = inverse_flow(f, iters)
    out = backward_warp(img, b)
    if not return_valid:
        return out[0] if squeeze else out
    valid = _lands_inside(b)
    return (out[0], valid[0]) if squeeze else (out, valid)


def _lands_inside(field: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: the pixels x of the field's grid whose x + field(x) lies inside [0, W-1] x [0, H-1]."""
    b, _, h, w = field.shape
    p = _base_grid(b, h, w, field.device, field.dtype) + field
    return (p[:, 0] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] >= 0) & (p[:, 1] <= h - 1)


def face_mask(landmarks, height: int, width: int) -> torch.Tensor:
    """(1, H, W) float {0, 1} face mask: convex hull of the 68 landmarks plus the brows raised by
    0.5 inter-ocular distance (forehead). This is M_bg of the SRFlow regularizers (Eq. 12, 16, 19)."""
    import cv2
    lm = _check_landmarks(landmarks)
    iod = inter_ocular_distance(lm)
    pts = np.concatenate([lm, lm[17:27] + [0.0, -0.5 * iod]])
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    m = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(m, hull, 1)
    return torch.from_numpy(m).float()[None]


# ---------------------------------------------------------------------------------------------- dataset

#: a frame file of a CASME II crop: ``img46.jpg`` (the shared copy) or ``reg_img46.jpg`` (the official Cropped
#: release); ASCII digits (``img٣.jpg`` is no frame). The one pattern of flownet: :func:`list_subjects`,
#: :class:`SyntheticFaceFlow` and :class:`flownet.data.real_pairs.RealFramePairs` (:func:`clip_frames`)
FRAME_RE = re.compile(r"(?:reg_)?img([0-9]+)\.jpg")


def _frame_order(path: Path) -> tuple:
    """Sort key of a clip's frame files in time: ``img<n>.jpg`` / ``reg_img<n>.jpg`` (:data:`FRAME_RE`) by ``n``
    (``img99`` before ``img100``, which text order puts first), any other name after them, by name (``img٣.jpg``:
    ASCII digits only)."""
    m = FRAME_RE.fullmatch(path.name)
    return (0, int(m.group(1)), "") if m else (1, 0, path.name)


def clip_frames(clip: Path) -> dict[int, Path]:
    """The frame files of the clip folder ``clip`` by frame number (:data:`FRAME_RE`: ``img{n}.jpg``, or the
    official Cropped release's ``reg_img{n}.jpg``), in frame-number order; where both names of one number are
    there, ``img{n}.jpg`` is taken. Other files are left out.

    Raises:
        OSError: ``clip`` cannot be listed.
    """
    found: dict[int, Path] = {}
    for p in sorted(clip.iterdir(), key=lambda p: (p.name.startswith("reg_"), p.name)):
        m = FRAME_RE.fullmatch(p.name)
        if m and int(m.group(1)) not in found:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def subject_frames(subject: Path) -> list[Path]:
    """The frame files (:func:`clip_frames`) of every clip folder of the subject folder ``subject``, sorted as
    paths (the order :class:`SyntheticFaceFlow` indexes its frames in; for the shared copy, whose frames are all
    ``img*.jpg``, the list and order of the former ``glob("*/img*.jpg")``)."""
    return sorted(p for clip in subject.iterdir() if clip.is_dir() for p in clip_frames(clip).values())


def _has_frame(subject: Path) -> bool:
    return any(FRAME_RE.fullmatch(f.name) for clip in subject.iterdir() if clip.is_dir() for f in clip.iterdir())


def list_subjects(root: str | Path | None = None) -> list[str]:
    """CASME II subject folders (``sub01`` …) under ``<root>/casme2`` that hold at least one frame
    (``<clip>/img{n}.jpg`` or ``<clip>/reg_img{n}.jpg``, :data:`FRAME_RE`), sorted by name.

    Raises:
        FileNotFoundError: ``<root>/casme2`` missing or without any subject frames (names the folder and the data
            root options).
    """
    base = Path(root) if root is not None else shared_data_root()
    c2 = base / "casme2"
    if not c2.is_dir():
        raise FileNotFoundError(f"CASME II crops not found at {c2}: the data root holds casme2/ (--root of icegan "
                                f"flow eval, data.root of a flow training config, or $ICEGAN_SHARED_DATA)")
    subs = sorted(p.name for p in c2.iterdir() if p.is_dir() and _has_frame(p))
    if not subs:
        # (the text tests/test_errorpaths49_a_data.py asserts; reg_img<n>.jpg frames are found as well)
        raise FileNotFoundError(f"no CASME II frames (<subject>/<clip>/img<n>.jpg or reg_img<n>.jpg) under {c2}")
    return subs


def split_subjects(subjects: list[str], n_test: int = 4, seed: int = 2026) -> dict[str, list[str]]:
    """Fixed seeded split by subject: ``{"train": [...], "test": [...]}`` (test = ``n_test`` subjects).

    Raises:
        ValueError: not enough subjects, or ``n_test`` < 0.
    """
    subs = sorted(subjects)
    if n_test < 0:              # perm[:n_test] would make all but |n_test| subjects the test split
        raise ValueError(f"n_test must be >= 0 test subjects, got {n_test}")
    if len(subs) <= n_test:
        raise ValueError(f"need more than {n_test} subjects for a subject split, got {len(subs)}")
    perm = np.random.default_rng(seed).permutation(len(subs))
    test = sorted(subs[i] for i in perm[:n_test])
    return {"train": [s for s in subs if s not in test], "test": test}


def split_subjects_val(subjects: list[str], n_test: int = 4, n_val: int = 2, split_seed: int = 2026,
                       val_seed: int = 7) -> dict[str, list[str]]:
    """:func:`split_subjects` (same test subjects) with ``n_val`` of its training subjects held out as a
    validation split: ``{"train", "val", "test"}``. Model selection and recipe tuning look at "val" only,
    so the test subjects are scored once per final model.

    Raises:
        ValueError: fewer than ``n_val + 1`` training subjects, or ``n_val < 1``.
    """
    base = split_subjects(subjects, n_test, split_seed)
    if n_val < 1 or len(base["train"]) <= n_val:
        raise ValueError(f"n_val must be in [1, {len(base['train']) - 1}] for {len(base['train'])} training "
                         f"subjects, got {n_val}")
    perm = np.random.default_rng(val_seed).permutation(len(base["train"]))
    val = sorted(base["train"][i] for i in perm[:n_val])
    return {"train": [s for s in base["train"] if s not in val], "val": val, "test": base["test"]}


def degrade_frames(frames, rng: np.random.Generator, noise: float = 0.01, blur: float = 0.7) -> list[torch.Tensor]:
    """Camera degradations applied to each frame independently: a Gaussian blur of sigma drawn in [0, blur] px
    (5x5 kernel; none below 0.2 px), then Gaussian noise of std drawn in [0, noise], clipped to [0, 1].

    Args:
        frames: (C, H, W) float images in [0, 1]. rng: numpy generator (all randomness; same state → same output).

    Returns:
        list of (C, H, W) images in [0, 1], in the order given.
    """
    from torchvision.transforms.functional import gaussian_blur
    out = []
    for im in frames:
        s = rng.uniform(0.0, blur)
        if s >= 0.2:
            im = gaussian_blur(im[None], kernel_size=5, sigma=float(s))[0]
        gen = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
        im = im + float(rng.uniform(0.0, noise)) * torch.randn(im.shape, generator=gen)
        out.append(im.clamp(0.0, 1.0))
    return out


def make_pair(image: torch.Tensor, landmarks, rng: np.random.Generator, max_head: float = 2.0,
              au_range: tuple = (0.2, 3.0), n_aus: tuple = (1, 3), noise: float = 0.01,
              blur: float = 0.7, amplitudes: dict | None = None) -> dict:
    """One synthetic pair from a face image and its landmarks.

    Args:
        image: (C, H, W) float [0, 1] frame 1.
        landmarks: (68, 2) landmarks in that grid (pixels).
        rng: numpy generator (all randomness comes from it).
        max_head: the head motion's largest displacement is drawn uniformly in [0, max_head] px.
        au_range: AU amplitude range (px); ``n_aus``: how many distinct AUs (inclusive range).
        noise: Gaussian noise std drawn in [0, noise]; ``blur``: Gaussian blur sigma drawn in [0, blur] px
            (independently per frame; no blur below 0.2).
        amplitudes: fixed {AU: px} instead of random AUs (e.g. :data:`POSITIVE_AUS` for a demo).

    Returns:
        dict with img1, img2 (C, H, W) in [0, 1]; flow, flow_head, flow_expr (2, H, W) px with
        flow = flow_head + flow_expr; mask (1, H, W) face mask; valid (H, W) bool on frame 1's grid:
        x + flow(x) inside the image (pixels that leave the view are not scored: frame 2 replicates its border
        there); aus {name: px}.
    """
    c, h, w = image.shape
    ang, sc = rng.uniform(-1.5, 1.5), 1.0 + rng.uniform(-0.015, 0.015)
    tx, ty = rng.uniform(-1.0, 1.0, size=2)
    head = similarity_flow(h, w, ang, sc, tx, ty)
    # the largest displacement; hypot rather than norm(dim=0), whose size-2 reduction takes ~3.5 ms here
    # (a fifth of a pair's generation) against ~0.1 ms (the two agree to 1 ulp)
    peak = float(torch.hypot(head[0], head[1]).max())
    head = head * (rng.uniform(0.0, max_head) / max(peak, 1e-6))
    if amplitudes is None:
        k = int(rng.integers(n_aus[0], n_aus[1] + 1))
        names = rng.choice(len(AU_NAMES), size=k, replace=False)
        amplitudes = {AU_NAMES[i]: float(rng.uniform(*au_range)) for i in names}
    expr = au_displacement(landmarks, amplitudes, h, w)
    flow = head + expr
    img2 = warp_forward(image, flow)
    valid = _lands_inside(flow[None].to(image.dtype))[0]     # on frame 1's grid, where the flow is scored
    frames = degrade_frames((image, img2), rng, noise, blur)
    return {"img1": frames[0], "img2": frames[1], "flow": flow, "flow_head": head, "flow_expr": expr,
            "mask": face_mask(landmarks, h, w), "valid": valid, "aus": amplitudes}


class SyntheticFaceFlow(torch.utils.data.Dataset):
    """Deterministic synthetic facial flow pairs from CASME II crops (module docstring).

    Pair ``i`` of a split is fully determined by ``(seed, split, i)``: the frame (uniform over all
    frames of the split's subjects), the head motion, the AUs and the noise. Frames are read from disk,
    converted to grey (``gray=True``, the main pipeline's format) or kept RGB, resized to ``size`` x ``size``.

    Args:
        root: shared data root (holds ``casme2/``); None → $ICEGAN_SHARED_DATA or <repo>/../shared/data.
        split: "train", "test" (fixed seeded subject split, :func:`split_subjects` with ``n_test``, ``split_seed``)
            or "val" (needs ``n_val`` > 0: :func:`split_subjects_val`; "train" then excludes the validation
            subjects, "test" is unchanged).
        frames_per_clip: use only this many evenly spaced frames of each clip (0 = all frames), spaced in time
            (``img<n>.jpg`` by ``n``: ``img99`` comes before ``img100``). Adjacent frames of a clip are nearly
            identical, so e.g. 8 per clip give the same variety; each new frame also costs one dlib landmark run
            (6 ms on a 2-core AMD EPYC, after about a second to load the model once).
        landmark_cache: optional ``.npz`` file of landmarks ``{relative frame path: (68, 2)}`` written by
            :func:`build_landmark_cache` (derived coordinates only, no image data; keep it outside the
            repository); frames missing from it are detected as usual.
        size: output side in pixels. n_pairs: pairs in this split. seed: pair-generation seed.
        extra_faces: training split only: also draw frames from the apex faces of SAMM and SMIC in
            ``<root>/megc2019_htnet/faces_224`` (44 identities that are not CASME II subjects; CASME II faces of
            that folder are never used, so the test subjects stay unseen). Landmarks are detected on first use.
        hflip: training split only: mirror half of the pairs left-right (images, masks; flow ``u`` negated),
            a cheap source of new-looking identities.
        photometric: training split only: strength p in [0, 1) of a brightness / contrast / gamma change applied
            identically to both frames (contrast and gamma in [1 - p, 1 + p], brightness in [-p/2, p/2]);
            0 = none. The flow is unchanged.

    Items: dict of img1, img2 (C, size, size) [0, 1]; flow, flow_head, flow_expr (2, size, size) px;
    mask (1, size, size); valid (size, size) bool; subject (str); path (str).

    Raises:
        FileNotFoundError: no CASME II frames; ValueError: unknown split, "val" with ``n_val=0``, "test" with
            ``n_test=0``, or ``photometric`` outside [0, 1);
        OSError: unreadable frame (named).
    """

    def __init__(self, root=None, split: str = "train", size: int = 128, n_pairs: int = 1000, seed: int = 0,
                 gray: bool = True, n_test: int = 4, split_seed: int = 2026, max_head: float = 2.0,
                 au_range: tuple = (0.2, 3.0), n_val: int = 0, frames_per_clip: int = 0,
                 landmark_cache: str | Path | None = None, extra_faces: bool = False, hflip: bool = False,
                 photometric: float = 0.0):
        if split not in ("train", "test", "val"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if split == "val" and n_val < 1:
            raise ValueError("split='val' needs n_val >= 1 validation subjects")
        self.root = Path(root) if root is not None else shared_data_root()
        self.split, self.size, self.n_pairs, self.seed, self.gray = split, int(size), int(n_pairs), int(seed), gray
        self.max_head, self.au_range = max_head, tuple(au_range)
        subjects = list_subjects(self.root)
        if n_val:
            self.subjects = split_subjects_val(subjects, n_test, n_val, split_seed)[split]
        else:
            self.subjects = split_subjects(subjects, n_test, split_seed)[split]
        if not self.subjects:          # only the test side of n_test=0 (list_subjects lists subjects with frames)
            raise ValueError(f"split '{split}' has no subjects with n_test={n_test}: give n_test >= 1")
        self.frames = sorted(p for s in self.subjects for p in subject_frames(self.root / "casme2" / s))
        if frames_per_clip < 0:
            raise ValueError(f"frames_per_clip must be >= 0, got {frames_per_clip}")
        if frames_per_clip:
            by_clip: dict = {}
            for p in self.frames:
                by_clip.setdefault(p.parent, []).append(p)
            keep = []
            for clip in sorted(by_clip):
                fs = sorted(by_clip[clip], key=_frame_order)      # in time: img99 before img100
                idx = np.unique(np.linspace(0, len(fs) - 1, min(frames_per_clip, len(fs))).round().astype(int))
                keep += [fs[j] for j in idx]
            self.frames = keep
        if not 0 <= photometric < 1:        # p >= 1 draws contrast or gamma <= 0: inverted or all-white frames
            raise ValueError(f"photometric (data.photometric) must be in [0, 1), got {photometric}")
        train = split == "train"
        self.hflip, self.photometric = bool(hflip) and train, float(photometric) if train else 0.0
        if extra_faces and train:
            self.frames = self.frames + extra_face_paths(self.root)
        self._lm_cache: dict = {}
        if landmark_cache is not None:
            cp = Path(landmark_cache)
            if not cp.is_file():
                raise FileNotFoundError(f"landmark_cache {cp} does not exist (build it with build_landmark_cache)")
            with _read_landmark_cache(cp) as z:
                base = self.root / "casme2"
                for k in z.files:
                    arr = z[k]
                    if arr.shape != (68, 2):
                        raise ValueError(f"landmark_cache {cp}: entry {k} has shape {arr.shape}, expected (68, 2)")
                    self._lm_cache[base / k] = arr.astype(np.float32)

    def __len__(self) -> int:
        return self.n_pairs

    def load_frame(self, path: Path) -> tuple[torch.Tensor, np.ndarray]:
        """Frame (C, size, size) [0, 1] and its landmarks (68, 2) in that grid."""
        import cv2

        from ..frame_io import read_frame
        try:
            bgr = read_frame(path, cv2.IMREAD_COLOR)        # a crop cut short is refused, not read with grey rows
        except ValueError as exc:
            raise OSError(str(exc)) from None
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        h, w = rgb.shape[:2]
        if path not in self._lm_cache:
            self._lm_cache[path] = detect_landmarks(rgb)
        lm = self._lm_cache[path] * np.array([self.size / w, self.size / h], np.float32)
        small = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
        if self.gray:
            arr = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)[None]
        else:
            arr = small.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(arr)).float() / 255.0, lm

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n_pairs:
            raise IndexError(f"pair {i} out of range (n_pairs={self.n_pairs})")
        rng = np.random.default_rng([self.seed, {"train": 0, "test": 1, "val": 2}[self.split], i])
        path = self.frames[int(rng.integers(len(self.frames)))]
        img, lm = self.load_frame(path)
        out = make_pair(img, lm, rng, max_head=self.max_head, au_range=self.au_range)
        out.pop("aus")
        if self.photometric:  # same intensity change in both frames: the flow is unchanged
            p = self.photometric
            gamma, contrast = rng.uniform(1 - p, 1 + p, size=2)
            bright = rng.uniform(-p / 2, p / 2)
            for k in ("img1", "img2"):
                x = out[k].clamp(0.0, 1.0) ** float(gamma)
                out[k] = ((x - 0.5) * float(contrast) + 0.5 + float(bright)).clamp(0.0, 1.0)
        if self.hflip and rng.random() < 0.5:
            for k in ("img1", "img2", "flow", "flow_head", "flow_expr", "mask", "valid"):
                out[k] = out[k].flip(-1)
            for k in ("flow", "flow_head", "flow_expr"):
                out[k] = out[k] * torch.tensor([-1.0, 1.0]).view(2, 1, 1)
        out["subject"] = path.parent.parent.name if path.parent.name != "faces_224" else f"megc2019:{path.stem}"
        out["path"] = str(path)
        return out


def extra_face_paths(root: str | Path | None = None) -> list[Path]:
    """Apex faces of SAMM and SMIC clips in ``<root>/megc2019_htnet/faces_224`` (from the composite's sheet
    ``combined_3_class2_for_optical_flow.csv``; CASME II rows are skipped), sorted.

    Raises:
        FileNotFoundError: the sheet is missing, or a face it names is missing (names the file).
        ValueError: the sheet is not UTF-8 text (names it and the byte).
    """
    import csv

    from ..io import not_utf8_csv
    base = (Path(root) if root is not None else shared_data_root()) / "megc2019_htnet"
    sheet = base / "combined_3_class2_for_optical_flow.csv"
    if not sheet.is_file():
        raise FileNotFoundError(f"extra_faces needs {sheet} (the MEGC2019 composite's faces); not found")
    try:
        with open(sheet, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except UnicodeDecodeError as exc:
        raise not_utf8_csv(sheet, exc) from None
    out = []
    for row in rows:
        if row.get("dataset") in ("samm", "smic"):
            f = base / "faces_224" / row["imagename"]
            if not f.is_file():
                raise FileNotFoundError(f"{sheet} names {f}, which does not exist")
            out.append(f)
    return sorted(out)


def _read_landmark_cache(path: Path):
    """``np.load`` of a landmark cache (an ``NpzFile``; use it as a context manager).

    Raises:
        ValueError: the file is no readable .npz (cut short, or another file), naming it."""
    import zipfile
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"landmark_cache {path} cannot be read ({type(exc).__name__}: {exc}): cut short by a kill "
                         "while it was written, or not a file of build_landmark_cache") from None


def build_landmark_cache(frames, path: str | Path, root: str | Path | None = None) -> Path:
    """Detect landmarks of ``frames`` (paths under ``<root>/casme2``) once and save them to ``path`` (.npz,
    keys = paths relative to ``<root>/casme2``, values (68, 2) float32 pixels of the original frame) for
    :class:`SyntheticFaceFlow`'s ``landmark_cache``. Entries already in an existing file are kept.

    Raises:
        OSError: unreadable or cut-short frame (named).
    """
    import cv2

    from ..frame_io import read_frame
    base = (Path(root) if root is not None else shared_data_root()) / "casme2"
    p = Path(path)
    out = {}
    if p.is_file():
        try:
            with _read_landmark_cache(p) as z:
                out = dict(z)
        except ValueError as exc:             # cut short by a kill while it was written: detected again below
            warnings.warn(f"{exc}; its landmarks are detected again")
    for f in frames:
        f = Path(f)
        key = str(f.relative_to(base))
        if key in out:
            continue
        try:
            bgr = read_frame(f, cv2.IMREAD_COLOR)
        except ValueError as exc:
            raise OSError(str(exc)) from None
        out[key] = detect_landmarks(np.ascontiguousarray(bgr[..., ::-1]))
    p.parent.mkdir(parents=True, exist_ok=True)
    from ..io import write_whole

    def savez(tmp: Path) -> None:
        with open(tmp, "wb") as fh:            # a file object: np.savez would add .npz to a path
            np.savez(fh, **out)
    return write_whole(p, savez)               # a kill while saving never leaves the cache cut short
