"""A built-in synthetic micro-expression dataset that needs no files (the demo of ``train.py``).

Faces are drawn procedurally with OpenCV: each *identity* has its own face shape, skin tone,
skin texture, eye spacing, brow and lip geometry, and a set of 68 landmarks in the iBUG layout
(jaw 0–16, brows 17–26, nose 27–35, eyes 36–47, lips 48–67). The *onset* is the drawn face
(with a little per-clip lighting and sensor noise); the *apex* is the onset warped by a smooth,
class-specific action-unit (AU) displacement field of 0.5–3 px built by
:func:`flownet.data.synthetic_face.au_displacement` (so the demo's motion is the same kind of
motion as the facial flow benchmark's):

=========  ====================================================  ==================
class      action units                                          FACS
=========  ====================================================  ==================
negative   brow lowerer + lip-corner depressor                   AU4 + AU15
positive   lip-corner puller + cheek raiser                      AU12 + AU6
surprise   inner/outer brow raiser + upper-lid raiser            AU1+2 + AU5
=========  ====================================================  ==================

Ground truth is therefore known exactly, subjects are distinct identities (so LOSO is
meaningful), and a recognizer that learns the motion scores far above chance while one that
learns appearance does not (classes are balanced within each identity).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

CLASS_NAMES = ("negative", "positive", "surprise")

#: AU amplitudes (pixels at 128×128, scaled with the image size) per class;
#: keys follow :func:`flownet.data.synthetic_face.au_displacement`.
CLASS_AUS = {
    0: {"brow_lower": 1.0, "lip_corner_depress": 1.0},
    1: {"lip_corner_pull": 1.0, "cheek_raise": 0.8},
    2: {"brow_raise": 1.0, "upper_lid_raise": 0.7},
}


def _template_landmarks() -> np.ndarray:
    """68 iBUG landmarks of a canonical frontal face in unit coordinates, (68, 2) as (x, y)."""
    pts = np.zeros((68, 2), np.float64)
    t = np.linspace(np.pi * 0.95, np.pi * 0.05, 17)  # jaw from right ear (image left) to left ear
    pts[0:17, 0] = 0.5 - 0.40 * np.cos(t)
    pts[0:17, 1] = 0.42 + 0.48 * np.sin(t)
    for k, x0 in ((17, 0.20), (22, 0.58)):  # brows: 5 points each
        xs = x0 + np.linspace(0, 0.22, 5)
        pts[k:k + 5, 0] = xs
        pts[k:k + 5, 1] = 0.30 - 0.035 * np.sin(np.linspace(0, np.pi, 5))
    pts[27:31, 0] = 0.5
    pts[27:31, 1] = np.linspace(0.38, 0.58, 4)  # nose bridge
    pts[31:36, 0] = np.linspace(0.42, 0.58, 5)
    pts[31:36, 1] = [0.62, 0.635, 0.645, 0.635, 0.62]  # nostrils
    for k, cx in ((36, 0.32), (42, 0.68)):  # eyes: 6 points each
        ang = np.array([np.pi, 2 * np.pi / 3, np.pi / 3, 0, -np.pi / 3, -2 * np.pi / 3])
        pts[k:k + 6, 0] = cx + 0.085 * np.cos(ang)
        pts[k:k + 6, 1] = 0.40 - 0.035 * np.sin(ang)
    ang = np.linspace(np.pi, -np.pi, 13)[:12]  # outer lip 48..59, starts at right corner
    pts[48:60, 0] = 0.5 + 0.15 * np.cos(ang)
    pts[48:60, 1] = 0.76 - 0.055 * np.sin(ang)
    ang = np.linspace(np.pi, -np.pi, 9)[:8]  # inner lip 60..67
    pts[60:68, 0] = 0.5 + 0.10 * np.cos(ang)
    pts[60:68, 1] = 0.76 - 0.015 * np.sin(ang)
    return pts


@dataclass(frozen=True)
class Identity:
    """Appearance parameters of one synthetic subject."""

    seed: int
    scale: np.ndarray  # (2,) x/y scale of the template
    shift: np.ndarray  # (2,) offset in unit coordinates
    skin: float        # base skin intensity in [0, 1]
    contrast: float    # feature darkness
    brow_thickness: float
    texture: np.ndarray  # (S, S) smooth skin texture in [-1, 1]


def make_identity(seed: int, size: int = 128) -> Identity:
    """Draw identity ``seed``'s appearance parameters (deterministic in ``seed``)."""
    rng = np.random.default_rng(10_000 + seed)
    noise = rng.standard_normal((size, size)).astype(np.float32)
    tex = cv2.GaussianBlur(noise, (0, 0), sigmaX=1.2 + rng.random() * 1.5)
    tex /= np.abs(tex).max() + 1e-6
    return Identity(
        seed=seed,
        scale=np.array([0.92 + 0.14 * rng.random(), 0.92 + 0.14 * rng.random()]),
        shift=rng.uniform(-0.03, 0.03, 2),
        skin=0.55 + 0.25 * rng.random(),
        contrast=0.35 + 0.25 * rng.random(),
        brow_thickness=0.025 + 0.02 * rng.random(),
        texture=tex,
    )


def identity_landmarks(identity: Identity, size: int) -> np.ndarray:
    """The identity's 68 landmarks in pixels, (68, 2) as (x, y)."""
    pts = _template_landmarks()
    pts = (pts - 0.5) * identity.scale + 0.5 + identity.shift
    return pts * (size - 1)


def draw_face(identity: Identity, size: int = 128, rng: np.random.Generator | None = None) -> np.ndarray:
    """Render the identity's neutral face, (size, size) float32 in [0, 1].

    ``rng`` adds per-clip lighting (a gentle gradient) and sensor noise; None renders it clean.
    """
    lm = identity_landmarks(identity, size)
    img = np.full((size, size), 0.25, np.float32)
    # face region: convex hull of the jaw plus the forehead above the brows
    top = lm[17:27].copy()
    top[:, 1] -= 0.18 * size
    hull = cv2.convexHull(np.concatenate([lm[0:17], top]).astype(np.float32)).astype(np.int32)
    face = np.zeros_like(img)
    cv2.fillConvexPoly(face, hull, 1.0, lineType=cv2.LINE_AA)
    skin = identity.skin + 0.12 * identity.texture
    img = img * (1 - face) + skin * face
    dark = identity.skin - identity.contrast
    th = max(1, int(round(identity.brow_thickness * size)))
    for a, b in ((17, 22), (22, 27)):
        cv2.polylines(img, [lm[a:b].astype(np.int32)], False, dark, th, lineType=cv2.LINE_AA)
    for a in (36, 42):
        cv2.fillPoly(img, [lm[a:a + 6].astype(np.int32)], 0.92, lineType=cv2.LINE_AA)
        c = lm[a:a + 6].mean(0)
        cv2.circle(img, (int(c[0]), int(c[1])), max(1, size // 40), dark, -1, lineType=cv2.LINE_AA)
        cv2.polylines(img, [lm[a:a + 6].astype(np.int32)], True, dark + 0.1, 1, lineType=cv2.LINE_AA)
    cv2.polylines(img, [lm[27:31].astype(np.int32)], False, identity.skin - 0.15, 1, lineType=cv2.LINE_AA)
    cv2.polylines(img, [lm[31:36].astype(np.int32)], False, dark + 0.1, 1, lineType=cv2.LINE_AA)
    cv2.fillPoly(img, [lm[48:60].astype(np.int32)], identity.skin - 0.6 * identity.contrast,
                 lineType=cv2.LINE_AA)
    cv2.polylines(img, [lm[60:68].astype(np.int32)], True, dark, 1, lineType=cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    if rng is not None:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        g = rng.uniform(-0.06, 0.06, 2)
        img = img + g[0] * (xx - 0.5) + g[1] * (yy - 0.5) + rng.normal(0, 0.01, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


@dataclass
class SyntheticME:
    """The generated dataset.

    Attributes:
        manifest: one row per clip: dataset ('synthetic'), subject ('synthetic/s01'), clip,
            label (0 negative, 1 positive, 2 surprise), amplitude (px).
        onset, apex: (N, size, size) uint8 grayscale faces.
        flow: (N, 2, size, size) float32 ground-truth onset→apex flow in pixels.
        landmarks: (N, 68, 2) onset landmarks in pixels.
    """

    manifest: pd.DataFrame
    onset: np.ndarray
    apex: np.ndarray
    flow: np.ndarray
    landmarks: np.ndarray


def check_synthetic_me_sizes(n_subjects: int, clips_per_class: int, amplitude, prefix: str = "") -> None:
    """The sizes :func:`make_synthetic_me` needs: ``n_subjects`` ≥ 2 (LOSO), ``clips_per_class`` ≥ 1 and an
    ``amplitude`` ``(min, max)`` with 0 < min ≤ max ≤ 10 px; checked where they are set (the main job's config) and
    where they are used.

    Args:
        prefix: put before each name in the messages (``"data."`` for the config keys).

    Raises:
        ValueError: a size outside those bounds (the message names it and its value).
    """
    if n_subjects < 2 or clips_per_class < 1:
        raise ValueError(f"{prefix}n_subjects must be >= 2 (LOSO) and {prefix}clips_per_class >= 1, got "
                         f"{n_subjects} and {clips_per_class}")
    if len(amplitude) != 2 or not 0 < amplitude[0] <= amplitude[1] <= 10:
        raise ValueError(f"{prefix}amplitude must be [min, max] with 0 < min <= max <= 10 px, got {list(amplitude)}")


def make_synthetic_me(n_subjects: int = 8, clips_per_class: int = 4, size: int = 128,
                      amplitude: tuple[float, float] = (0.5, 3.0), seed: int = 0) -> SyntheticME:
    """Generate the synthetic ME dataset (deterministic in ``seed``).

    Args:
        n_subjects: identities (LOSO subjects), ≥ 2.
        clips_per_class: clips per class per subject (classes balanced within each subject).
        size: image side in pixels (AU amplitudes are given at 128 px and scale with ``size``).
        amplitude: (min, max) peak displacement in pixels at 128×128, drawn uniformly per clip; the
            clip's AU fields are combined (random relative weights 0.8–1.2) and scaled so the largest
            displacement in the face equals it exactly.
        seed: random seed.

    Raises:
        ValueError: on non-positive sizes or counts, or an amplitude range outside (0, 10] px.
    """
    from flownet.data.synthetic_face import au_displacement, warp_forward  # icegan → flownet only
    import torch

    check_synthetic_me_sizes(n_subjects, clips_per_class, amplitude, "make_synthetic_me: ")
    if size < 32:
        raise ValueError(f"make_synthetic_me: size must be >= 32 pixels, got {size}")
    lo, hi = amplitude
    rng = np.random.default_rng(seed)
    px = size / 128.0
    rows, onsets, apexes, flows, lms = [], [], [], [], []
    for s in range(n_subjects):
        ident = make_identity(seed * 1000 + s, size)
        lm = identity_landmarks(ident, size)
        # each AU field is linear in its amplitude: build unit fields once per identity
        unit = {name: au_displacement(lm, {name: 1.0}, size, size).numpy()
                for aus in CLASS_AUS.values() for name in aus}
        for label in range(3):
            for k in range(clips_per_class):
                amp = rng.uniform(lo, hi) * px
                onset = draw_face(ident, size, rng)
                flow = sum(w * rng.uniform(0.8, 1.2) * unit[name] for name, w in CLASS_AUS[label].items())
                flow = (flow * (amp / max(float(np.linalg.norm(flow, axis=0).max()), 1e-6))).astype(np.float32)
                apex = warp_forward(torch.from_numpy(onset)[None, None], torch.from_numpy(flow)[None])
                apex = apex[0, 0].numpy() + rng.normal(0, 0.01, onset.shape).astype(np.float32)
                rows.append({"dataset": "synthetic", "subject": f"synthetic/s{s + 1:02d}",
                             "clip": f"s{s + 1:02d}_{CLASS_NAMES[label][:3]}_{k:02d}",
                             "label": label, "amplitude": round(float(amp), 3)})
                onsets.append(onset)
                apexes.append(apex)
                flows.append(flow)
                lms.append(lm)
    to_u8 = lambda a: np.clip(np.rint(np.stack(a) * 255.0), 0, 255).astype(np.uint8)  # noqa: E731
    return SyntheticME(manifest=pd.DataFrame(rows), onset=to_u8(onsets), apex=to_u8(apexes),
                       flow=np.stack(flows).astype(np.float32), landmarks=np.stack(lms).astype(np.float32))
