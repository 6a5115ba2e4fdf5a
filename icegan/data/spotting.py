"""Apex spotting for clips without an annotated apex (SMIC-HS).

Method (recorded in the manifest as ``apex_method``): onset = first frame of the clip; for every
later frame t, dense optical flow onset → t is computed with OpenCV (DIS by default, at
``DISOPTICAL_FLOW_PRESET_MEDIUM``, the preset of every number below; Farnebäck as an option); the head's own motion is removed by subtracting the median flow vector of the face region;
the mean remaining magnitude (pixels) inside the face region, smoothed over 5 frames, gives a motion
curve whose maximum is the apex. The face region is the convex hull of the 68 face_recognition
landmarks of the onset frame (eyebrows to chin); if no face is found, a centred ellipse covering the
middle 80 %×90 % of the frame is used, and the method name says so. ``"middle"`` (the middle frame of
the clip, a common simple choice for SMIC) is available too. A flow method's apex on the first or last frame it could
be (the frame after the onset, the offset) found no peak inside the clip: the record gets a note saying so
(:func:`edge_apex_note`), which the manifest keeps and ``icegan features`` and the main job warn about.

Validation against CASME II's annotated apexes (118 usable composite clips of the cropped copy,
onset..offset frames; ``bench/apex_spotting_casme2.py``, docs/benchmarks.md): without the head
motion compensation the flow maximum is no better than a random frame (median error 19–20 frames
vs 15); with it, DIS: median 6 frames, 48 % within 5 frames, 68 % within 10, 81 % within 20; the
middle frame of onset..offset: median 5, 51 %, 68 %, 91 % (fewer large misses).
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Optional, Sequence

import cv2
import numpy as np

from .records import ClipRecord, other_size_text

FlowMethod = Literal["dis", "farneback"]
SpotMethod = Literal["dis", "farneback", "middle"]
SMOOTH = 5  # frames of the moving average over the motion curve
#: version of the spotting rules (:func:`spot_apex_index`, :func:`spot_record_apex`), part of the key of an apex
#: spotted before (:func:`icegan.data.prepare._spot_inputs`): bump when a spotting rule's output changes (flow
#: method or its parameters, head compensation, smoothing, face region, the middle frame's choice), so that
#: ``spotted_apex.json`` entries of the old rule are spotted again rather than reused
SPOTTING_VERSION = 1


def _flow(prev: np.ndarray, nxt: np.ndarray, method: FlowMethod) -> np.ndarray:
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, pyr_scale=0.5, levels=3, winsize=15,
                                            iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return dis.calc(prev, nxt, None)
    raise ValueError(f"unknown flow method {method!r}; expected 'farneback' or 'dis'")


def ellipse_mask(shape: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of a centred ellipse with semi-axes 40 % of W and 45 % of H."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx - (w - 1) / 2) / (0.4 * w)) ** 2 + ((yy - (h - 1) / 2) / (0.45 * h)) ** 2 <= 1.0


def face_hull_mask(gray: np.ndarray, detector: str = "hog") -> Optional[np.ndarray]:
    """Boolean (H, W) mask of the convex hull of the 68 landmarks of the largest face, or None.

    Args:
        gray: (H, W) uint8 image.
        detector: ``hog`` or ``cnn`` (face_recognition detectors).
    """
    from .landmarks import detect_landmarks
    pts = detect_landmarks(gray, detector=detector)
    if pts is None:
        return None
    hull = cv2.convexHull(np.round(pts).astype(np.int32))
    mask = np.zeros(gray.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


def _check_gray_frames(frames: Sequence[np.ndarray], where: str) -> None:
    """Refuse what OpenCV's flow would fail on without saying why: the first frame (the onset, whose size every
    other frame is checked against) not a (H, W) grayscale uint8 image, or a later one not uint8.

    Raises:
        ValueError: names ``where`` (the function), the frame's index and what it got.
    """
    if frames[0].ndim != 2:
        raise ValueError(f"{where}: frame 0 has shape {frames[0].shape}, expected a (H, W) grayscale image: read "
                         f"frames with cv2.IMREAD_GRAYSCALE (colour frames: cv2.cvtColor(..., cv2.COLOR_BGR2GRAY))")
    for t, f in enumerate(frames):
        if f.dtype != np.uint8:
            raise ValueError(f"{where}: frame {t} is {f.dtype}, expected uint8 (0..255): convert it first")


def flow_magnitudes(frames: Sequence[np.ndarray], mask: np.ndarray, method: FlowMethod = "dis",
                    compensate: bool = True) -> np.ndarray:
    """Mean flow magnitude (pixels) from ``frames[0]`` to each frame inside ``mask``.

    Args:
        frames: T grayscale uint8 images (H, W), T ≥ 1.
        mask: (H, W) boolean face region (at least one True pixel).
        compensate: subtract the median flow vector inside ``mask`` (the head's translation) first.

    Returns:
        (T,) float64 array; entry 0 (onset to itself) is 0.

    Raises:
        ValueError: a frame not (H, W) uint8, frames of different sizes, a mask of another shape than the frames,
            or an empty mask.
    """
    _check_gray_frames(frames, "flow_magnitudes")
    if mask.shape != frames[0].shape:
        raise ValueError(f"flow_magnitudes: the face mask has shape {mask.shape}, the frames {frames[0].shape}: "
                         f"give a (H, W) mask of the frames' size")
    if not mask.any():
        raise ValueError("flow_magnitudes: the face mask is empty")
    onset = frames[0]
    out = np.zeros(len(frames))
    for t in range(1, len(frames)):
        if frames[t].shape != onset.shape:
            raise ValueError(f"flow_magnitudes: frame {t} has shape {frames[t].shape}, onset {onset.shape}")
        f = _flow(onset, frames[t], method)[mask]
        if compensate:
            f = f - np.median(f, axis=0)
        out[t] = float(np.sqrt((f ** 2).sum(-1)).mean())
    return out


def smooth_curve(curve: np.ndarray, window: int = SMOOTH) -> np.ndarray:
    """Centred moving average of a (T,) motion curve over ``2 * (window // 2) + 1`` frames: ``window`` frames for an
    odd ``window`` (the default), ``window + 1`` for an even one (a centred window has an odd length). Edges are
    padded by repetition; same length. ``window`` <= 1 or T < 3: the curve unchanged (as floats)."""
    if window <= 1 or len(curve) < 3:
        return np.asarray(curve, float)
    half = window // 2
    padded = np.pad(np.asarray(curve, float), half, mode="edge")
    return np.convolve(padded, np.ones(2 * half + 1) / (2 * half + 1), mode="valid")


def spot_apex_index(frames: Sequence[np.ndarray], method: SpotMethod = "dis", detector: str = "hog",
                    numbers: Optional[Sequence[int]] = None, onset: Optional[int] = None,
                    offset: Optional[int] = None) -> tuple[int, str, np.ndarray]:
    """Index of the apex in ``frames`` (onset = index 0), the method name, and the motion curve
    (T,) before smoothing (zeros for ``"middle"``).

    ``"middle"``: :func:`middle_frame_index` of ``numbers`` (the frames' numbers, ascending, one per frame; None:
    0..T−1, every frame present, which gives T // 2) and ``onset`` / ``offset`` (None: the first / last of
    ``numbers``), the frame present nearest the middle of the clip; the flow methods do not read them.

    Raises:
        ValueError: fewer than 2 frames, an unknown method, or (flow methods) a frame not (H, W) uint8 grayscale
            or of another size than the first.
    """
    if len(frames) < 2:
        raise ValueError(f"apex spotting needs at least 2 frames, got {len(frames)}")
    if method == "middle":
        idx = middle_frame_index(range(len(frames)) if numbers is None else numbers, onset, offset)
        return idx, "middle-frame", np.zeros(len(frames))
    if method not in ("dis", "farneback"):
        raise ValueError(f"unknown apex spotting method {method!r}; expected 'dis', 'farneback' or 'middle'")
    _check_gray_frames(frames, "spot_apex_index")
    mask = face_hull_mask(frames[0], detector=detector)
    region = "face-hull"
    if mask is None or mask.sum() < 50:
        mask, region = ellipse_mask(frames[0].shape[:2]), "ellipse(no-face-detected)"
    mags = flow_magnitudes(frames, mask, method, compensate=True)
    idx = int(np.argmax(smooth_curve(mags)[1:]) + 1)
    return idx, f"{method}-head-compensated-mean-magnitude-smooth{SMOOTH}-in-{region}", mags


def spot_record_apex(record: ClipRecord, method: SpotMethod = "dis", detector: str = "hog") -> ClipRecord:
    """Copy of ``record`` with ``apex`` spotted on its frames from the onset to the offset (the first and last frame
    when they are not set, as for SMIC) and ``apex_method`` set; when the spotted apex is the first or last frame of
    that range (after the onset), an :func:`edge_apex_note` is added to its ``notes`` (the flow methods only).
    ``"middle"``: the frame present nearest the middle of onset..offset (:func:`middle_frame_index`), not the middle
    of the frames present.

    Raises:
        FrameAccessError: a frame the file system would not let this process read (an OSError: permission denied,
            an I/O error; :class:`flownet.frame_io.FrameAccessError`, a ValueError; names the clip and the file).
        ValueError: the clip has fewer than 2 frames in that range, an undecodable frame or a frame of another size
            than the first (message names the clip and the frame).
    """
    span = record.spotting_span()
    numbers = [n for n, _ in span]
    from flownet.frame_io import FrameAccessError, read_frame
    frames = []
    for _, p in span:
        try:
            frames.append(read_frame(p, cv2.IMREAD_GRAYSCALE))
        except ValueError as exc:       # a FrameAccessError stays one: prepare then tries the clip again next time
            kind = FrameAccessError if isinstance(exc, FrameAccessError) else ValueError
            raise kind(f"{record.key}: apex spotting: {exc}") from None
    if len(frames) < 2:
        raise ValueError(f"{record.key}: apex spotting needs at least 2 frames, found {len(frames)}")
    for (n, p), im in zip(span, frames):           # named here by frame number and file, not by place in the span
        if im.shape != frames[0].shape:
            raise ValueError(f"{record.key}: apex spotting: " + other_size_text(
                f"frame {n} ({p.name})", im.shape[::-1], f"the first frame {span[0][0]} ({span[0][1].name})",
                frames[0].shape[::-1]))
    # "middle": the middle of the clip, not of the frames present (a gap would shift it)
    idx, name, _ = spot_apex_index(frames, method=method, detector=detector, numbers=numbers, onset=record.onset,
                                   offset=record.offset)
    return with_spotted_apex(record, numbers[idx], name, method)


def with_spotted_apex(record: ClipRecord, apex: int, name: str, method: SpotMethod) -> ClipRecord:
    """Copy of ``record`` with the apex ``apex`` (a frame number of its :meth:`ClipRecord.spotting_span`) spotted by
    ``method`` (``name``: :func:`spot_apex_index`'s name of it, the ``apex_method``), with its :func:`edge_apex_note`
    (flow methods only): what :func:`spot_record_apex` returns, for an apex spotted before (the preprocessing's
    ``spotted_apex.json``, :func:`icegan.data.prepare.prepare_dataset`).

    Raises:
        ValueError: ``apex`` is not a frame of the span.
    """
    numbers = [n for n, _ in record.spotting_span()]
    idx = numbers.index(apex)
    note = edge_apex_note(record, numbers, idx) if method != "middle" else None
    return dataclasses.replace(record, apex=apex, apex_method=name, notes=record.notes + ((note,) if note else ()))


def middle_frame_index(numbers: Sequence[int], onset: Optional[int] = None, offset: Optional[int] = None) -> int:
    """Index in ``numbers`` (the frame numbers searched, ascending, the onset's first; at least two) of the frame
    after the first nearest the middle of the clip, (onset + offset) / 2 (``onset`` / ``offset`` None: the first /
    last of ``numbers``); of two equally near, the later. Every frame present: ``len(numbers) // 2``, as
    :func:`spot_apex_index`'s ``"middle"``; onset 46, offset 86, frames 50-69 missing: frame 70 (the middle of the
    frames present would be 76)."""
    first = numbers[0] if onset is None else onset
    last = numbers[-1] if offset is None else offset
    twice = first + last                             # 2 × the middle: integers, no rounding
    return min(range(1, len(numbers)), key=lambda i: (abs(2 * numbers[i] - twice), -numbers[i]))


#: how :func:`edge_apex_note` begins, read back by :func:`is_edge_apex_note`
_EDGE_NOTE = "apex spotted at frame "


def edge_apex_note(record: ClipRecord, numbers: Sequence[int], idx: int) -> Optional[str]:
    """The note a clip gets when its apex, spotted at ``numbers[idx]`` (``numbers``: the frame numbers searched, the
    onset first), is the first or the last frame it could be (the frame after the onset, or the offset, or the last
    frame when the offset is not set): the motion curve then has no peak inside the clip (a drift, a blink or a head
    move at its start or end), and the frame is likely not the apex. None when the apex lies inside the range, or
    when there was no choice (fewer than 3 frames). The note holds no ``"; "`` (the manifest's notes separator)."""
    if len(numbers) < 3 or idx not in (1, len(numbers) - 1):
        return None
    last = idx == len(numbers) - 1
    start = record.onset if record.onset is not None else numbers[0]
    end = f"the offset {record.offset}" if record.offset is not None else "the clip's last frame"
    todo = ("give the apex in the clip list's apex cell" if record.listed_in == "clip list" else
            "list the clip with its apex in a clip list (icegan.data.clip_list)")
    return (f"{_EDGE_NOTE}{numbers[idx]}, the {'last' if last else 'first'} frame of the range searched (frames "
            f"{numbers[1]}-{numbers[-1]}, after the onset {start} up to {end}): the motion has no peak inside "
            f"the clip (a drift, a blink or a head move at its {'end' if last else 'start'}?), so this frame is "
            f"likely not the apex: check the clip, or {todo}")


def is_edge_apex_note(note: str) -> bool:
    """Whether ``note`` (one of a clip's notes) is an :func:`edge_apex_note`."""
    return note.startswith(_EDGE_NOTE)
