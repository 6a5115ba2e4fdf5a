"""SAMM loader: ``SAMM/006/006_1_2/006_05562.jpg`` with ``SAMM_Micro_FACS_Codes_v2.xlsx``.

The sheet's header row is found by content (title and note rows sit above it). Frame numbers are
the digits after the last ``_`` of the file name (``006_05562.jpg`` → 5562).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from .base import SheetDataset
from .sheets import SAMM_SHEET


class SAMM(SheetDataset):
    """SAMM (Davison et al. 2016): 159 micro-movement clips, 29 subjects; 133 in the MEGC2019 composite.

    Args:
        root: the folder holding the ``006`` ... subject folders, or one containing ``SAMM``.
        annotations: the FACS coding sheet; default ``SAMM_Micro_FACS_Codes_v2.xlsx`` found in/near
            the root. Records carry the sheet's objective class (1..7) in ``objective_class``.

    Raises:
        DatasetLayoutError: root missing or without subject folders.
        FileNotFoundError: sheet not found.
    """

    name = "samm"
    sheet_name = SAMM_SHEET
    layout_dirs = ("SAMM",)

    @staticmethod
    def looks_like_subject(name: str) -> bool:
        """Whether a folder name is a SAMM subject folder: exactly three ASCII digits (``006``; not ``٠٠٦``)."""
        return re.fullmatch(r"[0-9]{3}", name) is not None

    @staticmethod
    def example_layout() -> str:
        """An official-layout frame path for error messages: ``SAMM/006/006_1_2/006_05562.jpg``."""
        return "SAMM/006/006_1_2/006_05562.jpg"


def samm_records(root: str | Path, annotations: Optional[str | Path] = None, composite_only: bool = True):
    """Composite (or all) SAMM clip records: ``SAMM(root, annotations).records(...)``."""
    return SAMM(root, annotations).records(composite_only=composite_only)
