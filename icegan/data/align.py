"""One face alignment per clip: eye-line rotation + landmark bounding box, refined once.

Following the ICE-GAN paper's preprocessing (Sec. IV-B: "cropped out face regions by conducting
facial landmark detection repeatedly to locate and refine the positions of 68 facial landmarks,
ending up with a bounding box decided by the refined 68 landmarks"):

1. detect the face and its 68 landmarks on the clip's onset frame (or the nearest frame with a face);
2. rotate about the eye midpoint so the line through the two eye centres is horizontal, take the
   rotated landmarks' bounding box, make it square and add ``margin`` × side on every side;
3. warp the frame into that square, detect the landmarks again inside it, map them back to the frame
   and repeat step 2 with the refined points.

The result is a single 2×3 affine matrix per clip, applied to every frame with ``cv2.warpAffine`` so
crop jitter never appears as motion between frames. The matrix maps frame pixels to a square crop of
``native`` pixels (the box side, so no resampling loss); the crop is then resized to the output size
with area interpolation when it shrinks (size ≤ native) and cubic when it grows (size > native), the same for every
frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import cv2
import numpy as np

from .landmarks import Detector, detect_faces, detect_landmarks, landmarks_in_box

Color = Literal["gray", "rgb"]

RIGHT_EYE = slice(36, 42)  # subject's right eye: left side of the image
LEFT_EYE = slice(42, 48)

#: Smallest width and height, in frame pixels, of a face's levelled landmark box (:func:`box_matrix`): the smallest
#: face the HOG detector finds (about 20 px at 2 upsamplings) spans more; a box under it is no face.
MIN_LANDMARK_BOX = 4.0


@dataclass
class Alignment:
    """The crop of one clip.

    Attributes:
        matrix: (2, 3) float64 affine matrix mapping frame pixels (x, y) to crop pixels in a
            ``native`` × ``native`` square (use with ``cv2.warpAffine``).
        native: side of the crop in frame pixels (≥ 16).
        angle_deg: the rotation that levels the eye line, degrees, in OpenCV's sign (``cv2.getRotationMatrix2D``:
            positive turns the image counter-clockwise on screen): the eye line's slope angle in image coordinates
            (y down), positive when it falls towards the image right (a face tilted clockwise on screen). A frame
            turned counter-clockwise by t degrees gives an angle_deg t lower.
        landmarks: (68, 2) float32 landmarks in frame pixels the box was built from (refined ones
            when ``refined``).
        refined: whether the second detection inside the first crop succeeded.
    """

    matrix: np.ndarray
    native: int
    angle_deg: float
    landmarks: np.ndarray
    refined: bool

    def to_output(self, points: np.ndarray, size: int) -> np.ndarray:
        """Map (..., 2) frame-pixel points (x, y) to (..., 2) float32 pixels of the ``size`` × ``size`` image
        :func:`apply_alignment` makes: where that image shows the frame's point. The crop → output step is
        ``cv2.resize``'s pixel-centre mapping, ``(q + 0.5) * size / native - 0.5``, not ``q * size / native`` (off by
        0.5 (size / native - 1) px, e.g. -0.33 px at 128 from a 380 px crop)."""
        p = np.asarray(points, np.float64)
        m = self.output_matrix(size)
        return (p @ m[:, :2].T + m[:, 2]).astype(np.float32)

    def output_matrix(self, size: int) -> np.ndarray:
        """(2, 3) float64 matrix mapping frame pixels straight to ``size`` × ``size`` output pixels (for
        ``cv2.warpAffine``; the points :meth:`to_output` maps): the crop matrix scaled by s = size / native, its
        translation shifted by 0.5 (s - 1) for ``cv2.resize``'s pixel centres."""
        s = size / self.native
        m = self.matrix * s
        m[:, 2] += 0.5 * (s - 1)
        return m


def box_matrix(points: np.ndarray, margin: float = 0.1) -> tuple[np.ndarray, int, float]:
    """Affine matrix of the eye-levelled, square landmark box with margin.

    Args:
        points: (68, 2) landmarks in frame pixels.
        margin: extra fraction of the box side added on each side (0.1 → the landmarks' box
            spans the middle 1/1.2 of the crop).

    Returns:
        ``(matrix (2, 3), native side in pixels, angle in degrees)``.

    Raises:
        ValueError: points not (68, 2), or holding non-finite values (the message counts them), or spanning less than
            :data:`MIN_LANDMARK_BOX` px in width or height once levelled (all at one spot or on one line: no face;
            the message gives the box), or margin < 0 or NaN.
    """
    pts = np.asarray(points, np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"box_matrix: expected (68, 2) landmarks, got shape {pts.shape}")
    bad = int((~np.isfinite(pts)).sum())
    if bad:
        raise ValueError(f"box_matrix: the (68, 2) landmarks hold non-finite values ({bad} of the 136 coordinates are "
                         f"NaN or infinite): pass the landmarks of a detected face")
    if not margin >= 0:                 # NaN fails this too (``margin < 0`` let it through)
        raise ValueError(f"box_matrix: margin must be ≥ 0, got {margin}")
    r_eye, l_eye = pts[RIGHT_EYE].mean(0), pts[LEFT_EYE].mean(0)
    dx, dy = l_eye - r_eye
    angle = float(np.degrees(np.arctan2(dy, dx)))
    center = (r_eye + l_eye) / 2
    rot = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), angle, 1.0)  # levels the eye line
    q = pts @ rot[:, :2].T + rot[:, 2]
    lo, hi = q.min(0), q.max(0)
    if (hi - lo).min() < MIN_LANDMARK_BOX:
        raise ValueError(f"box_matrix: the landmark box is {hi[0] - lo[0]:.1f} × {hi[1] - lo[1]:.1f} px (width × "
                         f"height, eye line levelled), under {MIN_LANDMARK_BOX:g} px: the 68 points are no face (all "
                         f"at one spot or on one line); pass the landmarks of a detected face")
    side = float((hi - lo).max()) * (1 + 2 * margin)
    native = max(16, int(round(side)))
    mid = (lo + hi) / 2
    shift = np.array([native / 2 - mid[0], native / 2 - mid[1]])
    m = rot.copy()
    m[:, 2] += shift
    return m, native, angle


def warp(image: np.ndarray, matrix: np.ndarray, native: int) -> np.ndarray:
    """``cv2.warpAffine`` of ``image`` into a ``native`` × ``native`` crop (linear, replicated border)."""
    return cv2.warpAffine(image, matrix, (native, native), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def outside_share(alignment: Alignment, frame_shape: tuple[int, ...]) -> float:
    """Share (0–1) of the ``alignment.native`` × ``native`` crop that lies outside a frame of ``frame_shape`` ((H, W)
    or (H, W, C)): the part :func:`warp` fills by repeating the frame's edge pixels. 8–11 % on CASME II's raw frames
    (a forehead or chin past the frame's edge); about 56 % when the frames are face crops already (mode ``raw`` on a
    cropped release), the face then covering under half of the crop."""
    h, w = frame_shape[:2]
    inside = cv2.warpAffine(np.ones((h, w), np.uint8), alignment.matrix, (alignment.native, alignment.native),
                            flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return 1.0 - float(inside.mean())


def compute_alignment(image: np.ndarray, detector: Detector = "hog", margin: float = 0.1,
                      refine: bool = True, landmarks: Optional[np.ndarray] = None) -> Optional[Alignment]:
    """Alignment of one frame (normally the clip's onset), or None when no face is found.

    Args:
        image: (H, W) or (H, W, 3) uint8 frame.
        detector: face detector for the first detection (``hog`` or ``cnn``).
        margin: box margin, see :func:`box_matrix`.
        refine: detect the landmarks again inside the first crop and rebuild the box from them.
        landmarks: (68, 2) landmarks of ``image`` if already detected (skips the first detection).

    Raises:
        ValueError: landmarks that are no face (non-finite, or a box of a few pixels) or a margin < 0
            (:func:`box_matrix`).
    """
    pts = landmarks if landmarks is not None else detect_landmarks(image, detector)
    if pts is None:
        return None
    m, native, angle = box_matrix(pts, margin)
    refined = False
    if refine:
        crop = warp(image, m, native)
        boxes = detect_faces(crop, detector, upsample=0)  # the face fills the crop
        if boxes:
            q = landmarks_in_box(crop, boxes[0])
        else:  # the crop is the face: predict inside the box the first landmarks span in the crop
            p = pts @ m[:, :2].T + m[:, 2]
            lo, hi = p.min(0), p.max(0)
            q = landmarks_in_box(crop, (lo[1], hi[0], hi[1], lo[0]))
        inv = cv2.invertAffineTransform(m)
        pts = (q.astype(np.float64) @ inv[:, :2].T + inv[:, 2]).astype(np.float32)
        m, native, angle = box_matrix(pts, margin)
        refined = True
    return Alignment(matrix=m, native=native, angle_deg=angle, landmarks=np.asarray(pts, np.float32),
                     refined=refined)


def to_color(image: np.ndarray, color: Color) -> np.ndarray:
    """Convert an OpenCV-loaded frame (gray or BGR) to ``gray`` (H, W) or ``rgb`` (H, W, 3) uint8."""
    if color == "gray":
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if color == "rgb":
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise ValueError(f"unknown colour {color!r}; expected 'gray' or 'rgb'")


def apply_alignment(image: np.ndarray, alignment: Alignment, size: int = 128) -> np.ndarray:
    """Crop ``image`` with the clip's alignment and resize to ``size`` × ``size`` (``cv2.INTER_AREA`` when size ≤
    ``alignment.native``, ``cv2.INTER_CUBIC`` when the crop is enlarged).

    Args:
        image: (H, W) or (H, W, C) uint8 frame of the clip.
    Returns:
        (size, size) or (size, size, C) uint8.
    """
    crop = warp(image, alignment.matrix, alignment.native)
    interp = cv2.INTER_AREA if alignment.native >= size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interp)


def resize_cropped(image: np.ndarray, size: int = 128) -> np.ndarray:
    """Cropped-release mode: resize an already-cropped face to ``size`` × ``size`` (aspect not kept,
    as the usual CASME II/SAMM/SMIC cropped-face pipelines do)."""
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if min(h, w) >= size else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interp)
