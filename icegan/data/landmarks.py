"""68-point facial landmarks with face_recognition (dlib HOG or CNN face detector + 68-point predictor).

Points are returned as (68, 2) float32 arrays of (x, y) pixel coordinates in iBUG-300W order
(jaw 0–16, eyebrows 17–26, nose 27–35, eyes 36–47, mouth 48–67), which is the order of
face_recognition's ``model="large"`` predictor (Sagonas et al., 300 Faces in-the-Wild; ref. [42] of
the ICE-GAN paper).
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence

import numpy as np

from flownet.data.face_models import face_recognition_modules

Detector = Literal["hog", "cnn"]
Box = tuple[int, int, int, int]  # (top, right, bottom, left), face_recognition's convention


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """``image`` as dlib takes it: a C-contiguous (H, W) grey or (H, W, 3) RGB uint8 array.

    Raises:
        ValueError: another dtype, or another shape (RGBA, (H, W, 1), (H, W, 2): dlib would stop with a RuntimeError
            naming no shape); the message names the dtype or shape.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"landmark detection needs a uint8 image, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"landmark detection needs an (H, W) or (H, W, 3) image, got shape {image.shape} (convert "
                         f"RGBA or single-channel (H, W, 1) images to RGB or (H, W) grey first)")
    return np.ascontiguousarray(image)


def detect_faces(image: np.ndarray, detector: Detector = "hog", upsample: Optional[int] = None) -> list[Box]:
    """Face boxes ``(top, right, bottom, left)`` in pixels, largest first.

    Args:
        image: (H, W) grayscale or (H, W, 3) RGB uint8.
        detector: ``"hog"`` (dlib HOG + linear SVM, CPU-fast) or ``"cnn"`` (dlib MMOD CNN; slow on CPU).
        upsample: times to upsample before detecting. None = try 0, then 1, then 2 until a face is
            found (HOG finds faces ≥ 80 px at 0; each upsampling halves that).
    """
    fr, _ = face_recognition_modules()
    img = _as_uint8(image)
    if detector not in ("hog", "cnn"):
        raise ValueError(f"unknown face detector {detector!r}; expected 'hog' or 'cnn'")
    tries = [upsample] if upsample is not None else [0, 1, 2]
    for up in tries:
        boxes = fr.face_locations(img, number_of_times_to_upsample=up, model=detector)
        if boxes:
            return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[1] - b[3]))
    return []


def landmarks_in_box(image: np.ndarray, box: Box) -> np.ndarray:
    """(68, 2) float32 landmarks predicted inside ``box`` (top, right, bottom, left)."""
    fr, api = face_recognition_modules()
    import dlib
    top, right, bottom, left = (int(round(v)) for v in box)
    shape = api.pose_predictor_68_point(_as_uint8(image), dlib.rectangle(left, top, right, bottom))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def detect_face_landmarks(image: np.ndarray, detector: Detector = "hog", upsample: Optional[int] = None
                          ) -> tuple[Optional[Box], Optional[np.ndarray]]:
    """(the largest face's box, its (68, 2) float32 landmarks), or (None, None) if no face is detected."""
    boxes = detect_faces(image, detector, upsample)
    return (boxes[0], landmarks_in_box(image, boxes[0])) if boxes else (None, None)


def detect_landmarks(image: np.ndarray, detector: Detector = "hog", upsample: Optional[int] = None) -> Optional[np.ndarray]:
    """(68, 2) float32 landmarks of the largest face, or None if no face is detected."""
    return detect_face_landmarks(image, detector, upsample)[1]


def landmarks_on_frames(images: Sequence[np.ndarray], detector: Detector = "hog", upsample: Optional[int] = None,
                        known: Optional[dict[int, Optional[Box]]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks on every frame of a clip, falling back on neighbouring frames.

    Faces are detected on every frame. Where detection fails, the face box of the nearest frame with
    a detection (ties: the earlier frame) is used and the landmarks are predicted inside it.

    Args:
        images: T frames of one clip, (H, W) or (H, W, 3) uint8, in time order.
        known: ``{index: box}`` of frames whose faces were already detected with the same ``detector`` and
            ``upsample`` (the largest box of :func:`detect_faces`, None when it found none): not detected again
            (:func:`icegan.data.prepare.process_clip` passes the alignment frame's).

    Returns:
        ``(points, source)``: (T, 68, 2) float32 landmarks (NaN for every frame when no frame has a
        face) and (T,) int array: the index of the frame whose face box was used (``source[t] == t``
        for a direct detection, -1 when no face was found anywhere in the clip).
    """
    boxes: list[Optional[Box]] = []
    known = known or {}
    for t, im in enumerate(images):
        if t in known:
            boxes.append(known[t])
            continue
        b = detect_faces(im, detector, upsample)
        boxes.append(b[0] if b else None)
    found = [i for i, b in enumerate(boxes) if b is not None]
    T = len(images)
    points = np.full((T, 68, 2), np.nan, np.float32)
    source = np.full(T, -1, np.int64)
    if not found:
        return points, source
    found_arr = np.array(found)
    for t, im in enumerate(images):
        s = t if boxes[t] is not None else int(found_arr[np.argmin(np.abs(found_arr - t))])
        points[t] = landmarks_in_box(im, boxes[s])
        source[t] = s
    return points, source
