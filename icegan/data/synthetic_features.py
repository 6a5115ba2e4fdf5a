"""Synthetic micro-expression flow features from real faces and FACS action-unit motions (training only).

For the precomputed MEGC2019 features (``megc2019_htnet``), whose onset frames are not distributed, new clips can
still be made from each clip's apex face: the face is warped by a class-specific action-unit (AU) displacement field
(the rules of :data:`icegan.data.synthetic_me.CLASS_AUS`: negative AU4 + AU15, positive AU12 + AU6, surprise
AU1+2 + AU5; Ekman & Friesen's FACS / EMFACS prototypes), with a little head motion and the photometric noise and
blur of :func:`flownet.data.synthetic_face.make_pair`; TV-L1 flow between the face and its warp then gives u, v and
optical strain maps like the real ones (:func:`flownet.strain.flow_features`, 28 × 28, min–max per channel).

The synthetic clip's *subject* is the subject of the face it was made from and its label comes from the AU rule,
never from an annotation. :func:`add_training_rows` gives each LOSO fold only the synthetic clips of its own
training subjects, so the held-out subject's face never enters its fold's training, and synthetic clips are never
scored.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

__all__ = ["SYNTHETIC_PREFIX", "synthetic_au_features", "add_training_rows"]

#: clip names of synthetic rows start with this (``syn0:<source clip>``)
SYNTHETIC_PREFIX = "syn"


def _settings(per_clip: int, size: int, amp_range: tuple[float, float], max_head: float, seed: int) -> dict:
    return {"per_clip": per_clip, "size": size, "amp_range": list(amp_range), "max_head": max_head, "seed": seed,
            "version": 2}      # 2: faces read by roi._read_face (version 1 clipped a 16-bit face to white)


def synthetic_au_features(fs, per_clip: int = 1, size: int = 128, amp_range: tuple[float, float] = (0.5, 1.5),
                          max_head: float = 0.5, seed: int = 0, cache_dir: Optional[str | Path] = None,
                          progress: bool = False):
    """Synthetic clips from every clip's apex face: ``per_clip`` each, classes balanced.

    Args:
        fs: the real :class:`~icegan.data.features.FeatureSet` (its samples need ``face_path``).
        per_clip: synthetic clips per real clip (≥ 1).
        size: side in pixels the face is resized to before warping (128: the scale of ``CLASS_AUS``'s amplitudes).
        amp_range: each AU amplitude is its ``CLASS_AUS`` value times a factor drawn uniformly in this range.
        max_head: largest head-motion displacement in pixels (drawn uniformly in [0, max_head]).
        seed: generation seed (the same seed and faces give the same features).
        cache_dir: where features are cached (``synthetic_<key>.npz``; the key covers the faces and settings).
        progress: tqdm bar over the clips.

    Returns:
        :class:`~icegan.data.features.FeatureSet` of ``per_clip · N`` rows: dataset and subject of the source face,
        clip ``syn<k>:<source clip>``, label from the AU rule; features (M, 3, 28, 28) in [0, 1] (u, v, strain).

    Raises:
        ValueError: ``per_clip`` < 1, a bad amplitude range, no ``face_path`` column, a face that cannot be read as
            an image (names the clip and the file).
        FileNotFoundError: a missing face (names the clip).
    """
    from icegan.data.features import FeatureSet
    from icegan.data.roi import _read_face, face_landmarks_megc2019, face_paths, files_cache_key

    if per_clip < 1:
        raise ValueError(f"per_clip must be >= 1, got {per_clip}")
    if not 0 < amp_range[0] <= amp_range[1]:
        raise ValueError(f"amp_range must be 0 < low <= high, got {amp_range}")
    samples = fs.samples
    paths = face_paths(samples)
    n = len(samples)
    rng = np.random.default_rng(seed)
    labels = np.resize(np.arange(3), n * per_clip)
    rng.shuffle(labels)
    rows = [{"dataset": samples["dataset"][i], "subject": samples["subject"][i],
             "clip": f"{SYNTHETIC_PREFIX}{k}:{samples['clip'][i]}", "label": int(labels[k * n + i])}
            for k in range(per_clip) for i in range(n)]
    syn = pd.DataFrame(rows, columns=["dataset", "subject", "clip", "label"])

    cache = None
    if cache_dir is not None:
        key = hashlib.sha1((files_cache_key(paths) + json.dumps(_settings(per_clip, size, amp_range, max_head, seed)))
                           .encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"synthetic_{key}.npz"
        from flownet.io import read_npz_cache
        z = read_npz_cache(cache, ("features",), lambda why: warnings.warn(
            f"synthetic clip cache {why}; making the synthetic clips again and saving them there"))
        if z is not None:
            return FeatureSet(syn, torch.from_numpy(z["features"]))

    from PIL import Image

    from flownet.classical import TVL1Estimator
    from flownet.data.synthetic_face import make_pair
    from flownet.strain import flow_features
    from icegan.data.synthetic_me import CLASS_AUS

    points, sizes = face_landmarks_megc2019(samples, cache_dir=cache_dir)
    tvl1 = TVL1Estimator()
    feats = torch.empty(len(syn), 3, 28, 28)
    order = range(len(syn))
    if progress:
        from tqdm import tqdm
        order = tqdm(order, desc="synthetic AU clips", unit="clip")
    for j in order:
        i = j % n
        # read as its landmarks were found (turned by its EXIF orientation, a 16-bit face kept to its top 8 bits);
        # Pillow's grey of that RGB face: on 8-bit faces the same pixels as Pillow's own reading of the file
        rgb = _read_face(paths[i], str(samples["clip"][i]))
        grey = Image.fromarray(rgb).convert("L").resize((size, size), Image.BILINEAR)
        face = torch.from_numpy(np.asarray(grey, np.float32) / 255.0)[None]
        lm = (points[i] + 0.5) * (size / sizes[i]) - 0.5
        amps = {au: base * float(rng.uniform(*amp_range)) for au, base in CLASS_AUS[int(syn["label"][j])].items()}
        pair = make_pair(face, lm, rng, max_head=max_head, amplitudes=amps)
        flow = tvl1.estimate(pair["img1"][None], pair["img2"][None])
        feats[j] = flow_features(flow, 28, "minmax")[0]
    if cache is not None:
        from flownet.io import write_whole
        cache.parent.mkdir(parents=True, exist_ok=True)
        # another run may write the same cache: a temporary of its own; a killed run's stale one is removed
        write_whole(cache, lambda tmp: np.savez(tmp, features=feats.numpy()), concurrent=True)
    return FeatureSet(syn, feats)


def add_training_rows(folds: Sequence, subjects: Sequence[str], extra_subjects: Sequence[str], offset: int) -> list:
    """Folds whose training rows also hold the extra (synthetic) rows of their own training subjects.

    Args:
        folds: :class:`icegan.protocol.Fold` objects over the real rows ``0..offset-1``.
        subjects: (offset,) subject of every real row.
        extra_subjects: (M,) source subject of every extra row, which sits at row ``offset + j``.
        offset: number of real rows.

    Returns:
        New folds (same index, subject, test rows and writer) with ``train_idx`` = the real training rows followed
        by the extra rows whose subject is one of the fold's training subjects (so never the held-out subject, in
        SDE never another dataset's subject, and in HDE never a subject of the held-out dataset).
    """
    from dataclasses import replace

    subjects = np.asarray(subjects)
    extra = np.asarray(extra_subjects)
    out = []
    for f in folds:
        train_subjects = np.unique(subjects[f.train_idx])
        add = offset + np.flatnonzero(np.isin(extra, train_subjects))
        out.append(replace(f, train_idx=np.concatenate([np.asarray(f.train_idx), add])))
    return out
