"""Reading video frames and face images from disk, refusing files that were cut short.

OpenCV decodes a JPEG or PNG that ends early (a partial copy, an interrupted unzip) without an error: the rows it
could not read come back grey, and the flow of that clip is silently wrong. :func:`read_frame` reads the file's
bytes, checks that it ends where its format says it ends, and only then decodes it with OpenCV
(``cv2.imdecode``, the same decoder and the same pixels as ``cv2.imread``).

What counts as complete:

* JPEG (starts ``FF D8``): the end-of-image marker ``FF D9`` within the file's last 4096 bytes. The marker cannot
  occur inside the entropy-coded scan data (a ``FF`` byte there is always followed by ``00`` or a restart
  marker ``D0``–``D7``), so a file cut inside its scan has no such marker at its end; the 4096 bytes leave room for
  padding or a short trailer some cameras write after it.
* PNG (starts ``89 50 4E 47``): the ``IEND`` chunk and its 4-byte checksum at the end (at most 8 bytes after it).
* BMP (starts ``BM``): at least as many bytes as the file size in its header.
* Any other format: decoded as it is (no completeness check).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["read_frame", "truncation_problem"]

_JPEG_TAIL = 4096


def truncation_problem(data: bytes) -> str | None:
    """Why an encoded image looks cut short, or None when it looks complete (or its format is not checked).

    Args:
        data: the whole file's bytes.

    Returns:
        A short reason, e.g. ``"truncated: no JPEG end marker (FF D9) at its end"``, or None.
    """
    if data[:2] == b"\xff\xd8":
        if data.rfind(b"\xff\xd9") < max(len(data) - _JPEG_TAIL, 2):
            return "truncated: no JPEG end marker (FF D9) at its end"
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        end = data.rfind(b"IEND")
        if end < 0 or not 0 <= len(data) - (end + 8) <= 8:      # "IEND" and its 4-byte CRC end the file
            return "truncated: no complete PNG IEND chunk at its end"
    elif data[:2] == b"BM" and len(data) >= 6:
        declared = int.from_bytes(data[2:6], "little")
        if len(data) < declared:
            return f"truncated: {len(data)} bytes, its BMP header says {declared}"
    return None


def read_frame(path: str | Path, flag: int | None = None) -> np.ndarray:
    """Decode one image file with OpenCV after checking that it is complete (module docstring).

    Args:
        path: the image file.
        flag: an OpenCV ``IMREAD_*`` flag (default ``cv2.IMREAD_GRAYSCALE``).

    Returns:
        The decoded image as ``cv2.imread`` returns it: uint8 (H, W) for grey flags, (H, W, 3) BGR for colour.

    Raises:
        ValueError: the file cannot be read, is cut short (the message says how, and to copy the file again), or
            OpenCV cannot decode it; every message names the file.
    """
    import cv2
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read image {p}: {exc.strerror or exc}") from None
    why = truncation_problem(data)
    if why is not None:
        raise ValueError(f"cannot read image {p}: {why} (an interrupted copy or unzip?); copy the file again")
    img = None
    if data:
        try:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if flag is None else flag)
        except cv2.error:
            img = None
    if img is None or img.size == 0:
        raise ValueError(f"cannot read image {p}: not an image OpenCV can decode")
    return img
