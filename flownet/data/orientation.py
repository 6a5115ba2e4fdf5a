"""Refusing a frame that OpenCV reads turned or mirrored against a ground-truth flow read as stored.

:func:`flownet.frame_io.read_frame` turns a picture by its EXIF Orientation tag, as an image viewer shows it; a flow
map (``.flo``, KITTI's 16-bit PNG) is read untouched. A quarter-turn tag (5-8) usually shows as a size mismatch, but
a mirror or half turn (2, 3, 4; or a quarter turn of a square frame) keeps the size, and the frame would be compared
with a flow it does not line up with: a wrong EPE without any warning. :class:`StoredOrientation` refuses such a
frame by name, checking each file once.
"""
from __future__ import annotations

from pathlib import Path

from ..frame_io import _QUARTER_TURNS, file_orientation

__all__ = ["TAG_EFFECTS", "StoredOrientation"]

#: what each EXIF Orientation other than 1 does to the stored picture as it is read
TAG_EFFECTS = {2: "mirrors it left to right", 3: "turns it half a turn", 4: "mirrors it top to bottom",
               **_QUARTER_TURNS}


class StoredOrientation:
    """Checks, once per file, that frames are read as stored (no EXIF Orientation, or 1)."""

    def __init__(self):
        self.checked: set[Path] = set()

    def check(self, paths, other: str) -> None:
        """Refuse the first of ``paths`` whose EXIF Orientation turns or mirrors it as it is read; ``other``: what
        the frames are compared with, for the message (e.g. ``"the ground-truth flow flow10.flo"``).

        Files checked before are not opened again; a file Pillow cannot open is passed over (OpenCV read it).

        Raises:
            ValueError: naming the file, its tag, what the tag does, and to save the frame without it.
        """
        for p in map(Path, paths):
            if p in self.checked:
                continue
            tag = file_orientation(p)
            if tag in TAG_EFFECTS:
                raise ValueError(f"{p} carries the EXIF Orientation tag {tag}, which {TAG_EFFECTS[tag]} as it is "
                                 f"read, while {other} is read as stored: the two would not line up and the "
                                 f"EPE would be wrong. Save the frame without the tag (keeping its pixels as "
                                 f"stored)")
            self.checked.add(p)
