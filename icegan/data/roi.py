"""Landmark regions of interest of the flow maps: the input design of HTNet.

HTNet (Wang, Ma, Peng, Jin, Wang, Li; "HTNet for micro-expression recognition", Neurocomputing 2024; not in
``../shared/papers``) feeds its recognizer four small patches of the onset→apex u/v/strain maps centred on facial
landmarks instead of the whole face map: the two brow-and-eye regions and the two lip corners, where the action
units of the three MEGC2019 classes act (AU1/2/4 brows; AU12/14/15 lip corners). This module computes those
patches for the ``megc2019_htnet`` features:

1. 68 iBUG-300W landmarks of each clip's own apex face (``faces_224/<sub>_<clip>.jpg``), predicted with
   face_recognition's 68-point model inside the whole image as the face box (the images are tight face crops,
   on which the HOG detector often finds nothing; :func:`face_landmarks_megc2019`), cached on disk;
2. four region centres from those points (:data:`ROI_POINTS`), scaled from face pixels to flow-map pixels;
3. a ``patch × patch`` window of the flow map around each centre, the four tiled 2 × 2 into one map of side
   ``2 · patch`` (brow/eye regions on top, lip corners below; image-left on the left), :func:`roi_patches`.

Every step uses the clip's own face and flow only: no label, no other clip, no test statistic.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

__all__ = ["ROI_POINTS", "align_by_eyes", "face_paths", "files_cache_key", "face_landmarks_megc2019", "roi_centers", "roi_patches",
           "landmark_roi_features"]

#: iBUG-300W point indices averaged into each region centre, in tiling order (row-major 2 × 2):
#: image-left brow + eye, image-right brow + eye, image-left lip corner, image-right lip corner.
ROI_POINTS: tuple[tuple[int, ...], ...] = (
    tuple(range(17, 22)) + tuple(range(36, 42)),
    tuple(range(22, 27)) + tuple(range(42, 48)),
    (48,),
    (54,),
)


def _read_face(path: Path, clip: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB face, read by :func:`flownet.frame_io.read_frame` as the preprocessing reads a frame: turned
    by its EXIF orientation as an image viewer shows it, a 16-bit image kept to its top 8 bits, a file cut
    short refused.

    Raises:
        ValueError: the file cannot be read or decoded, was cut short, or holds 10- or 12-bit data in 16 bits (the
            message names the clip and :func:`~flownet.frame_io.read_frame`'s reason, which names the file).
    """
    import cv2

    from flownet.frame_io import read_frame
    try:
        return cv2.cvtColor(read_frame(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    except ValueError as exc:
        raise ValueError(f"apex face of clip '{clip}' cannot be read as an image: {exc}") from None


def face_paths(samples: pd.DataFrame) -> list[Path]:
    """The apex face image of every row (column ``face_path``), each checked to exist.

    Raises:
        ValueError: no ``face_path`` column.
        FileNotFoundError: a missing face (the message names the clip and the path).
    """
    if "face_path" not in samples.columns:
        raise ValueError("the sample table needs a face_path column (the apex face of each clip; "
                         "icegan.data.features.read_megc2019_table gives it)")
    paths = [Path(p) for p in samples["face_path"]]
    for p, c in zip(paths, samples["clip"]):
        if not p.is_file():
            raise FileNotFoundError(f"apex face of clip '{c}' not found: {p} (the MEGC2019 apex faces are in "
                                    f"faces_224/, or datasets/combined_datasets_whole/ of the HTNet release)")
    return paths


#: How the apex faces are read, part of every cache key of values computed from them: a cache made by another
#: reader is not reused. 2: turned by their EXIF orientation (before, a face tagged 5-8 was read sideways). 3: read by
#: :func:`flownet.frame_io.read_frame` (before, a 16-bit face was read all white; an 8-bit face decodes the same).
FACE_READER_VERSION = 3


def files_cache_key(paths: Sequence[Path]) -> str:
    """16 hex digits identifying a list of face files by path, size and modification time, and
    :data:`FACE_READER_VERSION` (cache file names)."""
    h = hashlib.sha1(f"face reader {FACE_READER_VERSION}\n".encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def face_landmarks_megc2019(samples: pd.DataFrame, cache_dir: Optional[str | Path] = None,
                            progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """68 landmarks of every clip's apex face, predicted inside the whole image.

    Args:
        samples: table with columns clip and face_path (the apex face image), one row per clip
            (:func:`icegan.data.features.read_megc2019_table`).
        cache_dir: where the points are cached (``landmarks_<key>.npz``, the key hashes the face files' paths,
            sizes and modification times, so a changed face is recomputed, and the reader's version,
            :func:`files_cache_key`); None = no cache.
        progress: tqdm bar over the faces.

    Returns:
        ``(points, sizes)``: (N, 68, 2) float32 (x, y) in face pixels (iBUG-300W order) and (N, 2) int
        (width, height) of each face image, row i for ``samples`` row i.

    Raises:
        FileNotFoundError: a face image is missing (the message names the clip and path).
        ValueError: a face image cannot be read.
    """
    paths = face_paths(samples)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"landmarks_{files_cache_key(paths)}.npz"
        from flownet.io import read_npz_cache
        z = read_npz_cache(cache, ("points", "sizes"), lambda why: warnings.warn(
            f"landmark cache {why}; finding the face landmarks again and saving them there"))
        if z is not None:
            return z["points"], z["sizes"]
    from icegan.data.landmarks import landmarks_in_box
    points = np.empty((len(paths), 68, 2), np.float32)
    sizes = np.empty((len(paths), 2), np.int64)
    it = zip(paths, samples["clip"])
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=len(paths), desc="face landmarks", unit="face")
    for i, (p, c) in enumerate(it):
        im = _read_face(p, c)
        h, w = im.shape[:2]
        points[i] = landmarks_in_box(im, (0, w, h, 0))
        sizes[i] = (w, h)
    if cache is not None:
        from flownet.io import write_whole
        cache.parent.mkdir(parents=True, exist_ok=True)
        # another run may write the same cache: a temporary of its own; a killed run's stale one is removed
        write_whole(cache, lambda tmp: np.savez(tmp, points=points, sizes=sizes), concurrent=True)
    return points, sizes


def align_by_eyes(points: np.ndarray) -> np.ndarray:
    """Landmarks normalised for position, size and in-plane rotation: the similarity transform that moves the left
    and right eye centres (means of iBUG points 36–41 and 42–47) to (−1, 0) and (1, 0).

    Args:
        points: (N, 68, 2) landmarks (x, y), any unit (pixels).

    Returns:
        (N, 68, 2) float64 in units of half the inter-ocular distance.

    Raises:
        ValueError: not an (N, 68, 2) array, or a face whose two eye centres coincide.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (N, 68, 2), got shape {p.shape}")
    left, right = p[:, 36:42].mean(1), p[:, 42:48].mean(1)
    centre, d = (left + right) / 2, right - left
    scale = np.linalg.norm(d, axis=1) / 2
    if (scale == 0).any():
        raise ValueError(f"face {int(np.flatnonzero(scale == 0)[0])}: both eye centres at the same point")
    ang = -np.arctan2(d[:, 1], d[:, 0])
    rot = np.stack([np.stack([np.cos(ang), -np.sin(ang)], -1), np.stack([np.sin(ang), np.cos(ang)], -1)], -2)
    return np.einsum("nij,nkj->nki", rot, p - centre[:, None]) / scale[:, None, None]


def roi_centers(points: np.ndarray, face_sizes: np.ndarray, map_size: int) -> np.ndarray:
    """Region centres in flow-map pixel indices.

    A face pixel index ``x`` maps to ``(x + 0.5) · map_size / face_width − 0.5`` on the map (pixel centres at
    integer indices on both grids; the face image and the flow map cover the same crop).

    Args:
        points: (N, 68, 2) landmarks (x, y) in face pixels.
        face_sizes: (N, 2) (width, height) of the face images in pixels.
        map_size: side of the square flow map in pixels (28).

    Returns:
        (N, 4, 2) float (x, y) in map pixels, regions in :data:`ROI_POINTS` order.
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 3 or points.shape[1:] != (68, 2):
        raise ValueError(f"roi_centers needs (N, 68, 2) landmarks, got {points.shape}")
    scale = map_size / np.asarray(face_sizes, np.float64)[:, None, :]  # (N, 1, 2)
    pts = (points + 0.5) * scale - 0.5
    return np.stack([pts[:, list(idx)].mean(1) for idx in ROI_POINTS], axis=1)


def roi_patches(x: torch.Tensor, centers: np.ndarray | torch.Tensor, patch: int = 7) -> torch.Tensor:
    """Cut a ``patch × patch`` window around each region centre and tile the four 2 × 2.

    The window of a centre ``c`` starts at ``round(c − (patch − 1) / 2)``, clamped so that it lies inside the map
    (a finite centre however far outside the map gives the window at the nearest border).

    Args:
        x: (N, C, H, W) maps (u, v, strain).
        centers: (N, 4, 2) region centres (x, y) in map pixel indices (:func:`roi_centers`).
        patch: window side in pixels (7, HTNet's).

    Returns:
        (N, C, 2·patch, 2·patch): windows 0 and 1 on the top row, 2 and 3 below.

    Raises:
        ValueError: wrong shapes, a patch larger than the map, or a centre that is NaN or ±inf (a landmark
            detector that failed; the message names the map and region).
    """
    if x.ndim != 4:
        raise ValueError(f"roi_patches needs (N, C, H, W) maps, got {tuple(x.shape)}")
    n, c, h, w = x.shape
    centers = torch.as_tensor(np.asarray(centers), dtype=torch.float64)
    if centers.shape != (n, 4, 2):
        raise ValueError(f"roi_patches needs (N, 4, 2) centres for N = {n} maps, got {tuple(centers.shape)}")
    if not 1 <= patch <= min(h, w):
        raise ValueError(f"patch must be in 1..{min(h, w)} for {h}×{w} maps, got {patch}")
    bad = ~torch.isfinite(centers).all(-1)
    if bad.any():
        where = ", ".join(f"map {i} region {j} {tuple(centers[i, j].tolist())}" for i, j in bad.nonzero().tolist()[:5])
        raise ValueError(f"roi_patches: region centres not finite (failed landmarks?): {where}"
                         + (f" and {int(bad.sum()) - 5} more" if bad.sum() > 5 else ""))
    start = torch.round(centers - (patch - 1) / 2)               # clamped before the cast: no int64 overflow
    x0 = start[..., 0].clamp(0, w - patch).long()                # (N, 4)
    y0 = start[..., 1].clamp(0, h - patch).long()
    off = torch.arange(patch)
    rows = (y0[..., None] + off)[..., :, None]                   # (N, 4, patch, 1)
    cols = (x0[..., None] + off)[..., None, :]                   # (N, 4, 1, patch)
    nidx = torch.arange(n)[:, None, None, None]
    win = x.permute(0, 2, 3, 1)[nidx, rows, cols]                # (N, 4, patch, patch, C)
    win = win.permute(0, 4, 1, 2, 3)                             # (N, C, 4, patch, patch)
    top = torch.cat([win[:, :, 0], win[:, :, 1]], dim=-1)
    bottom = torch.cat([win[:, :, 2], win[:, :, 3]], dim=-1)
    return torch.cat([top, bottom], dim=-2).contiguous()


def landmark_roi_features(fs, patch: int = 7, cache_dir: Optional[str | Path] = None, progress: bool = False):
    """A :class:`~icegan.data.features.FeatureSet` of HTNet-style region maps (N, 3, 2·patch, 2·patch).

    Args:
        fs: the whole-face feature set of ``megc2019_htnet`` (N, 3, H, W), its samples with a face_path column.
        patch, cache_dir, progress: see :func:`roi_patches` and :func:`face_landmarks_megc2019`.
    """
    if fs.features.shape[-1] != fs.features.shape[-2]:
        raise ValueError(f"landmark regions need square flow maps, got {tuple(fs.features.shape[-2:])}")
    points, sizes = face_landmarks_megc2019(fs.samples, cache_dir=cache_dir, progress=progress)
    centers = roi_centers(points, sizes, fs.features.shape[-1])
    return fs.replace(features=roi_patches(fs.features, centers, patch))
