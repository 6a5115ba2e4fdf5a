"""FACS action units of the composite's clips, from the official coding sheets: auxiliary targets.

CASME II (``CASME2-coding-20140508.xlsx``, column ``Action Units``) and SAMM (``SAMM_Micro_FACS_Codes_v2.xlsx``)
code every clip's action units, e.g. ``4+L10``, ``15A+17``, ``R12A+R14A``; SMIC codes none. The recognizers can
learn them beside the class (``model.au_weight``, :func:`icegan.recognition.train_models`): more supervision per
clip, telling the network which muscles moved. Only training rows are ever used, as for the labels.

An action unit is present or absent (:func:`parse_action_units`): side prefixes (``L``, ``R``) and intensity
letters (``A``–``E``) are dropped, so a mirrored face keeps its targets.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Optional, Sequence

import torch

__all__ = ["EMFACS_ACTION_UNITS", "parse_action_units", "action_unit_targets", "default_annotations_dir"]

#: The action units of the EMFACS emotion prototypes (Friesen & Ekman, EMFACS-7, 1983; as tabulated in the
#: micro-expression literature): happiness 6+12, sadness 1+4+15, surprise 1+2+5+26, fear 1+2+4+5+7+20+26,
#: anger 4+5+7+23, disgust 9+15+16, contempt 12+14. Their union, fixed a priori (not counted on any data).
EMFACS_ACTION_UNITS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 12, 14, 15, 16, 20, 23, 26)

#: datasets whose official sheet codes action units, and the sheet's file name
_AU_SHEETS = {"casme2": "CASME2-coding-20140508.xlsx", "samm": "SAMM_Micro_FACS_Codes_v2.xlsx"}

def parse_action_units(text: str, where: str = "") -> Optional[set[int]]:
    """The action-unit numbers of one sheet cell: ``"4+L10"`` → {4, 10}, ``"R12A+R14A"`` → {12, 14}.

    Every number (ASCII digits, as the sheets are read) in the cell is an action unit; letters around it (side,
    intensity: ``L10``, ``15A``, ``A9E``, ``10A/B``), words (``ref(43)``, ``soft focus``) and other digits (``١٠``)
    are dropped. Alternatives (SAMM's ``(R6 or R12)+R15``) count all their units as present.

    Returns:
        The set of numbers, or None when the cell holds none (``''``, CASME II's ``'?'``): not coded.

    Raises:
        ValueError: a number outside 1..99, the range of FACS codes, or a decimal number (``"4.5"``, which would
            read as AU4 + AU5) (``where`` names the clip in the message).
    """
    prefix = where + ': ' if where else ''
    decimal = re.search(r"[0-9]+\.[0-9]+", str(text))
    if decimal:                         # "4.5" would read as AU4 + AU5
        raise ValueError(f"{prefix}action-unit cell {text!r} holds {decimal.group()}, not a FACS code (1..99): a "
                         f"decimal number; write the units as whole numbers joined by '+' (e.g. 4+5)")
    units = {int(n) for n in re.findall(r"[0-9]+", str(text))}
    if not units:
        return None
    bad = sorted(u for u in units if not 1 <= u <= 99)
    if bad:
        raise ValueError(f"{prefix}action-unit cell {text!r} holds {bad[0]}, not a FACS "
                         f"code (1..99)")
    return units


def default_annotations_dir() -> Path:
    """``<shared data>/annotations`` (:func:`icegan.paths.shared_data_root`)."""
    from icegan.paths import shared_data_root
    return shared_data_root() / "annotations"


def action_unit_targets(datasets: Sequence[str], subjects: Sequence[str], clips: Sequence[str],
                        annotations: Optional[str | Path] = None,
                        units: Iterable[int] = EMFACS_ACTION_UNITS) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-hot action-unit targets of N clips, read from the official coding sheets.

    Args:
        datasets: (N,) dataset of each clip (``casme2``, ``samm``; any other dataset, e.g. ``smic``, has none).
        subjects: (N,) subject of each clip, prefixed (``casme2/sub01``) or not (``sub01``, ``006``).
        clips: (N,) clip names as in the sheets (``EP02_01f``, ``006_1_2``).
        annotations: folder holding the sheets under their official names, or their CSV exports under the same
            names with ``.csv`` (:func:`icegan.data.sheets.official_sheet_in`; default
            :func:`default_annotations_dir`); only the sheets of datasets present in ``datasets`` are read.
        units: the A action-unit numbers that become target columns, in this order.

    Returns:
        (targets (N, A) float32 in {0, 1}, known (N,) bool): ``known`` is False for clips of datasets without
        action-unit coding (their target rows are 0 and must not enter a loss).

    Raises:
        FileNotFoundError: a needed sheet is missing (names the path).
        ValueError: a CASME II or SAMM clip is not in its sheet, or its sheet cell cannot be parsed (names the clip).
    """
    from icegan.data.sheets import official_sheet_in, read_sheet

    if not (len(datasets) == len(subjects) == len(clips)):
        raise ValueError(f"datasets, subjects and clips must have one entry per clip, got {len(datasets)}, "
                         f"{len(subjects)}, {len(clips)}")
    units = tuple(int(u) for u in units)
    col = {u: i for i, u in enumerate(units)}
    folder = Path(annotations) if annotations else default_annotations_dir()
    coded: dict[tuple[str, str, str], str] = {}
    sheet_of: dict[str, Path] = {}
    for ds in sorted(set(datasets) & set(_AU_SHEETS)):
        path = official_sheet_in(folder, _AU_SHEETS[ds]) or folder / _AU_SHEETS[ds]     # the .xlsx or its .csv
        sheet_of[ds] = path
        if not path.is_file():
            raise FileNotFoundError(f"the {ds} coding sheet is needed for its action units (model.au_weight > 0) "
                                    f"but is not at {path}; set data.annotations to the folder holding "
                                    f"{_AU_SHEETS[ds]}")
        for r in read_sheet(ds, path):
            coded[(ds, r.subject, r.clip)] = r.action_units
    targets = torch.zeros(len(clips), len(units))
    known = torch.zeros(len(clips), dtype=torch.bool)
    for i, (ds, sub, clip) in enumerate(zip(datasets, subjects, clips)):
        if ds not in _AU_SHEETS:
            continue
        sub = str(sub).split("/", 1)[-1]
        key = (ds, sub, str(clip))
        if key not in coded:
            raise ValueError(f"clip '{clip}' of subject '{sub}' ({ds}) is not in {sheet_of[ds]}: its "
                             f"action units are unknown")
        units_i = parse_action_units(coded[key], where=f"{ds} clip '{clip}' of subject '{sub}'")
        if units_i is None:                     # not coded ('?' or empty): no targets, like a SMIC clip
            continue
        for au in units_i:
            if au in col:
                targets[i, col[au]] = 1.0
        known[i] = True
    return targets, known
