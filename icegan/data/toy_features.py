"""A tiny synthetic feature set for the demo and for fast tests (no licensed data needed).

Each sample is a 3×S×S "flow feature" image in the same format as ``megc2019_htnet``
(u, v, optical strain, each min–max normalised to [0, 1]) built from a class-specific motion
pattern plus subject-specific jitter and noise:

* negative (0): brows move down and towards each other (brow lowering),
* positive (1): mouth corners move outwards and up (lip-corner puller),
* surprise (2): brows move up (brow raiser).

Strain is the optical strain magnitude sqrt(u_x² + v_y² + ½(u_y + v_x)²) of the flow (central differences).
The set is fully determined by its arguments (seeded NumPy generator), so runs on it are reproducible.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from icegan.data.features import FeatureSet

__all__ = ["make_toy_features"]


def _bump(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, s: float) -> np.ndarray:
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))


def _normalise(a: np.ndarray) -> np.ndarray:
    lo = a.min(axis=(-2, -1), keepdims=True)
    hi = a.max(axis=(-2, -1), keepdims=True)
    return (a - lo) / np.maximum(hi - lo, 1e-8)


def make_toy_features(n_subjects_per_dataset: int = 4, clips_per_class: int = 3, size: int = 28,
                      noise: float = 0.6, seed: int = 0,
                      datasets: tuple[str, ...] = ("casme2", "samm")) -> FeatureSet:
    """Build the toy feature set.

    Args:
        n_subjects_per_dataset: subjects per dataset (LOSO folds = this × len(datasets)).
        clips_per_class: clips of each of the 3 classes per subject.
        size: side of the feature maps in pixels.
        noise: scale of the additive Gaussian flow noise: its standard deviation is 0.3 × noise, against class
            patterns that peak at 0.5–1 (times a subject and clip gain).
        seed: NumPy seed.
        datasets: dataset names used as subject prefixes.

    Returns:
        :class:`~icegan.data.features.FeatureSet` with
        ``len(datasets) * n_subjects_per_dataset * 3 * clips_per_class`` samples,
        features (N, 3, size, size) float32 in [0, 1].
    """
    if n_subjects_per_dataset < 1 or clips_per_class < 1 or size < 8:
        raise ValueError("make_toy_features needs n_subjects_per_dataset >= 1, clips_per_class >= 1 and size >= 8")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1)
    rows, feats = [], []
    for ds in datasets:
        for s in range(n_subjects_per_dataset):
            subject = f"{ds}/s{s + 1:02d}"
            gain = rng.uniform(0.6, 1.4)           # subject-specific expressiveness
            shift = rng.normal(0, 0.03, size=2)    # subject-specific face position
            for label in range(3):
                for k in range(clips_per_class):
                    u = np.zeros_like(xx)
                    v = np.zeros_like(xx)
                    cx, cy = 0.5 + shift[0], 0.5 + shift[1]
                    if label == 0:   # brow lowerer: brows down and inwards
                        for side in (-1, 1):
                            b = _bump(xx, yy, cx + side * 0.2, cy - 0.25, 0.08)
                            u += -side * 0.6 * b
                            v += 0.8 * b
                    elif label == 1:  # lip-corner puller: corners out and up
                        for side in (-1, 1):
                            b = _bump(xx, yy, cx + side * 0.18, cy + 0.25, 0.08)
                            u += side * 0.9 * b
                            v += -0.5 * b
                    else:             # brow raiser: brows up
                        for side in (-1, 1):
                            b = _bump(xx, yy, cx + side * 0.2, cy - 0.25, 0.1)
                            v += -1.0 * b
                    amp = gain * rng.uniform(0.7, 1.3)
                    u = amp * u + rng.normal(0, noise * 0.3, u.shape)
                    v = amp * v + rng.normal(0, noise * 0.3, v.shape)
                    du_y, du_x = np.gradient(u)
                    dv_y, dv_x = np.gradient(v)
                    strain = np.sqrt(du_x ** 2 + dv_y ** 2 + 0.5 * (du_y + dv_x) ** 2)
                    feats.append(_normalise(np.stack([u, v, strain])))
                    rows.append({"dataset": ds, "subject": subject, "clip": f"{ds}_s{s + 1:02d}_c{label}{k}",
                                 "label": label})
    x = torch.from_numpy(np.stack(feats)).float()
    return FeatureSet(pd.DataFrame(rows), x)
