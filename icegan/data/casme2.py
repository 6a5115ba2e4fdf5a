"""CASME II loader: ``CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`` with ``CASME2-coding-20140508.xlsx``.

Works on the raw release (640×480 frames, ``imgN.jpg``) and on cropped releases with the same
``subXX/EPxx_xx/`` layout (``reg_imgN.jpg`` in the official ``Cropped`` release, ``imgN.jpg`` in the
copy under ``../shared/data/casme2``): frames are matched by the number at the end of the file name.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from .base import SheetDataset
from .composite import casme2_class5
from .sheets import CASME2_SHEET, SheetRow


class CASME2(SheetDataset):
    """CASME II (Yan et al. 2014): 255 clips, 26 subjects; 145 in the MEGC2019 composite.

    Args:
        root: the folder holding ``subXX`` folders, or a folder containing ``CASME2_RAW_selected``
            (or ``Cropped``).
        annotations: the coding sheet; default: ``CASME2-coding-20140508.xlsx`` found in/near the
            root (also ``annotations/`` beside it).

    Raises:
        DatasetLayoutError: root missing or without ``subXX`` folders.
        FileNotFoundError: sheet not found.
    """

    name = "casme2"
    sheet_name = CASME2_SHEET
    layout_dirs = ("CASME2_RAW_selected", "CASME2_RAW", "Cropped", "CASME2_Cropped", "CASME2-Cropped")

    @staticmethod
    def looks_like_subject(name: str) -> bool:
        """Whether a folder name is a CASME II subject folder: ``sub`` and ASCII digits, any case (``sub01``, ``Sub01``;
        not ``sub٠١``, which the sheet could not name)."""
        return re.fullmatch(r"sub[0-9]+", name, re.IGNORECASE) is not None       # Sub01 too (a copy's case)

    @staticmethod
    def example_layout() -> str:
        """An official-layout frame path for error messages: ``CASME2_RAW_selected/sub01/EP02_01f/img46.jpg``."""
        return "CASME2_RAW_selected/sub01/EP02_01f/img46.jpg"

    def class5(self, row: SheetRow) -> Optional[int]:
        """CASME II 5-class id of a sheet row's emotion (happiness 0, disgust 1, repression 2, surprise 3, others 4;
        None for fear, sadness or an unknown label; :func:`icegan.data.composite.casme2_class5`)."""
        return casme2_class5(row.emotion)


def casme2_records(root: str | Path, annotations: Optional[str | Path] = None,
                   composite_only: bool = True):
    """Composite (or all) CASME II clip records of ``root`` + sheet: ``CASME2(root, annotations).records(...)``."""
    return CASME2(root, annotations).records(composite_only=composite_only)
