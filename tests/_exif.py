"""Tiny pictures with an EXIF Orientation tag, for the tests of how frames and faces are read turned by it."""
from __future__ import annotations

import numpy as np
from PIL import Image

#: the EXIF tag id of Orientation (1 = as stored; 2-4 mirror or turn half; 5-8 a quarter turn)
ORIENTATION = 0x0112


def banded(h: int = 20, w: int = 40, band: int = 8) -> np.ndarray:
    """(h, w) grey picture, black with a white band of ``band`` columns at its left."""
    a = np.zeros((h, w), np.uint8)
    a[:, :band] = 255
    return a


def save_tagged(path, a: np.ndarray, orientation=None, fmt=None):
    """Save grey array ``a`` at ``path`` with an EXIF Orientation tag (None: no EXIF); returns ``path``."""
    im = Image.fromarray(a)
    kw = {}
    if orientation is not None:
        ex = im.getexif()
        ex[ORIENTATION] = orientation
        kw["exif"] = ex
    im.save(path, fmt, **kw)
    return path
