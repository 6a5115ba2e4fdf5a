"""MEGC2019 composite rules (3 classes) and the single-dataset label sets.

Composite (DESIGN.md, "Datasets and the MEGC2019 composite"; 442 clips, 68 subjects):

- CASME II (145 clips: 88 negative / 32 positive / 25 surprise, 24 subjects): happiness → positive;
  disgust, repression → negative; surprise → surprise; others, fear, sadness excluded. A clip whose
  apex cell is not a number (sub04/EP12_01f, apex ``"/"``) or whose apex equals its onset
  (sub05/EP09_05f) is excluded: it has no usable onset→apex motion.
- SAMM (133 clips: 92 / 26 / 15, 28 subjects): Anger, Contempt, Disgust, Sadness, Fear → negative;
  Happiness → positive; Surprise → surprise; Other excluded.
- SMIC-HS (164 clips: 70 / 51 / 43, 16 subjects): the class is the folder name
  (``negative | positive | surprise``); see :mod:`icegan.data.smic`.

Single-dataset (SDE) label sets kept for users who want them: CASME II 5 classes (happiness 0,
disgust 1, repression 2, surprise 3, others 4; fear and sadness excluded, as in the usual CASME II
5-class protocol) and the SAMM objective classes 1..7 from the sheet. Their counts here are of sheet rows;
``icegan data check`` and ``icegan prepare`` skip a clip whose apex equals its onset for these label sets too
(:func:`icegan.data.check.record_problems`): CASME II's five classes have 209 usable clips in the shared copy, not 210.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Optional

from .records import CLASS3_IDS, CLASS3_NAMES
from .sheets import (CASME2_SHEET, SAMM_SHEET, SheetRow, official_sheet_in, read_casme2_sheet, read_samm_sheet,
                     sheet_names)

log = logging.getLogger("icegan.data")

CASME2_TO_CLASS3 = {"happiness": "positive", "disgust": "negative", "repression": "negative",
                    "surprise": "surprise"}
SAMM_TO_CLASS3 = {"anger": "negative", "contempt": "negative", "disgust": "negative",
                  "sadness": "negative", "fear": "negative", "happiness": "positive",
                  "surprise": "surprise"}
CASME2_CLASS5 = ("happiness", "disgust", "repression", "surprise", "others")
#: every emotion label of the official sheets (lower case); another one is a typo, reported where it is met
CASME2_EMOTIONS = CASME2_CLASS5 + ("fear", "sadness")
SAMM_EMOTIONS = ("anger", "contempt", "disgust", "sadness", "fear", "happiness", "surprise", "other")
SHEET_EMOTIONS = {"casme2": CASME2_EMOTIONS, "samm": SAMM_EMOTIONS}
#: the ``"rule"`` of an excluded row of :func:`composite_summary`: left out by the MEGC2019 rules (an apex not coded,
#: an apex on or before the onset: the official CASME II sheet's sub04/EP12_01f and sub05/EP09_05f), because its
#: emotion is no label of the sheet (:func:`unknown_emotion`, a typo), or because an onset or apex cell is mistyped
#: (:func:`miswritten_frame_cell`: ``5.7``, an empty SAMM cell); ``icegan data composite`` exits 1 for the last two
MEGC2019_RULE, UNKNOWN_EMOTION, MISWRITTEN_CELL = "megc2019", "unknown_emotion", "miswritten_cell"


def unknown_emotion(row: SheetRow) -> Optional[str]:
    """Why a CASME II or SAMM sheet row's emotion is none of its sheet's labels (a typo such as ``hapiness``, an
    empty cell), naming the row and the labels, or None (a known label, any case; other datasets)."""
    labels = SHEET_EMOTIONS.get(row.dataset)
    if labels is None or row.emotion.strip().lower() in labels:
        return None
    return (f"emotion {row.emotion!r} (sheet row {row.row}) is not a label of the {row.dataset} sheet "
            f"({', '.join(labels)}): the clip is left out of the composite; correct the cell")


def miswritten_frame_cell(row) -> Optional[str]:
    """The note of a sheet row's onset or apex cell that holds something other than a frame number or the releases'
    ``/`` (CASME II's apex not coded): a typo such as ``416.7`` or ``41b`` (``apex cell 416.7 is not a whole frame
    number (sheet row 9)``), or None. An empty cell is one too in a SAMM row (``apex cell is empty (sheet row 15)``:
    the SAMM sheet has no empty onset or apex cell), not in a CASME II row, where it is left out as ``/`` is.
    ``row``: a :class:`~icegan.data.sheets.SheetRow` or the :class:`~icegan.data.records.ClipRecord` made of one
    (its ``notes`` and ``dataset`` are read)."""
    for note in row.notes:
        if (note.startswith(("onset cell ", "apex cell ")) and not note.split(" cell ", 1)[1].startswith("'/' ")
                and (" cell is empty" not in note or row.dataset == "samm")):
            return note
    return None


def casme2_class5(emotion: str) -> Optional[int]:
    """CASME II 5-class id of an emotion label (None for fear, sadness or unknown labels)."""
    e = emotion.strip().lower()
    return CASME2_CLASS5.index(e) if e in CASME2_CLASS5 else None


def composite_emotion(row: SheetRow) -> Optional[str]:
    """The MEGC2019 class name (``negative``, ``positive``, ``surprise``) that a CASME II or SAMM sheet row's emotion
    maps to, whatever its frames, or None when the emotion is not in the composite (e.g. CASME II ``others``).

    Raises:
        ValueError: ``row.dataset`` is neither ``casme2`` nor ``samm`` (SMIC's class is its folder).
    """
    table = {"casme2": CASME2_TO_CLASS3, "samm": SAMM_TO_CLASS3}.get(row.dataset)
    if table is None:
        raise ValueError(f"dataset {row.dataset!r} has no composite rule in a coding sheet (SMIC uses folders)")
    return table.get(row.emotion.strip().lower())


def composite_class(row: SheetRow) -> tuple[Optional[int], Optional[str]]:
    """MEGC2019 class id of a CASME II or SAMM sheet row, or ``(None, reason)`` if excluded: its emotion is not in
    the composite (:func:`composite_emotion`), or its frames rule it out.

    Raises:
        ValueError: ``row.dataset`` is neither ``casme2`` nor ``samm`` (SMIC's class is its folder).
    """
    name = composite_emotion(row)
    if row.dataset == "casme2":
        if name is None:
            return None, f"emotion '{row.emotion}' is not in the composite"
        if row.apex is None:
            return None, f"apex is not a frame number ({'; '.join(row.notes) or 'empty'})"
        if row.onset is None:
            return None, "onset is not a frame number"
        if row.apex == row.onset:
            return None, f"apex equals onset ({row.onset}): no onset→apex motion"
        return CLASS3_IDS[name], None
    if name is None:                                    # SAMM (composite_emotion refused any other dataset)
        return None, f"emotion '{row.emotion}' is not in the composite"
    if row.onset is None or row.apex is None:
        return None, "onset or apex is not a frame number (" + "; ".join(row.notes) + ")"
    return CLASS3_IDS[name], None


def composite_rows(rows: list[SheetRow]) -> list[tuple[SheetRow, int]]:
    """The composite rows of one sheet with their class id; exclusions are logged at DEBUG level."""
    out = []
    for r in rows:
        c, why = composite_class(r)
        if c is None:
            log.debug("%s/%s/%s excluded from composite: %s", r.dataset, r.subject, r.clip, why)
        else:
            out.append((r, c))
    return out


def unusable_row(row: SheetRow) -> Optional[str]:
    """Why a composite row of a sheet cannot be used although the composite rules keep it (its class stays set, so
    that ``icegan data check`` and ``icegan prepare`` list it as skipped, with the same reason), or None: an apex
    before the onset, or (SAMM; CASME II's rule excludes it already) on the onset frame, which
    :func:`icegan.data.check.record_problems` skips for every label set (a sheet edited by hand; the official SAMM
    sheet has none)."""
    if row.onset is not None and row.apex is not None and row.apex < row.onset:
        return f"apex {row.apex} is before onset {row.onset} (icegan data check and prepare skip it)"
    if row.onset is not None and row.apex == row.onset:
        return f"apex equals onset ({row.onset}): no onset→apex motion (icegan data check and prepare skip it)"
    return None


def composite_summary(rows: list[SheetRow]) -> dict:
    """``{"clips", "negative", "positive", "surprise", "subjects"}`` of the usable composite part of a sheet,
    plus ``"excluded"``: list of ``{"clip", "reason", "rule"}`` for rows of composite emotions that were excluded by a
    rule (not those whose emotion is simply outside the composite), rows whose emotion is no label of the sheet
    (:func:`unknown_emotion`; ``"rule"`` :data:`UNKNOWN_EMOTION`) or that cannot be used (:func:`unusable_row`: an
    apex before or on the onset, which ``icegan data check`` skips too; ``"rule"`` :data:`MEGC2019_RULE`, as for the
    rows :func:`composite_class` rules out, but :data:`MISWRITTEN_CELL` for a row whose onset or apex cell is
    mistyped, :func:`miswritten_frame_cell`); ``"notes"``: list of ``{"clip", "note"}``, the sheet's notes on its rows
    (:attr:`icegan.data.sheets.SheetRow.notes`, e.g. a row pasted twice, counted once) that ``icegan data check``
    warns of too, but for one the clip's excluded reason already gives."""
    comp, excluded = [], []
    for r in rows:
        c, why = composite_class(r)
        if c is not None:
            why = unusable_row(r)
            if why is None:
                comp.append((r, c))
                continue
        typo = unknown_emotion(r)
        if typo or composite_emotion(r) is not None:
            rule = UNKNOWN_EMOTION if typo else MISWRITTEN_CELL if miswritten_frame_cell(r) else MEGC2019_RULE
            excluded.append({"clip": f"{r.subject}/{r.clip}", "reason": typo or why, "rule": rule})
    counts = Counter(CLASS3_NAMES[c] for _, c in comp)
    said = {e["clip"]: e["reason"] for e in excluded}
    notes = [{"clip": clip, "note": n} for r in rows for clip in [f"{r.subject}/{r.clip}"] for n in r.notes
             if n not in said.get(clip, "")]
    return {"clips": len(comp), "negative": counts["negative"], "positive": counts["positive"],
            "surprise": counts["surprise"], "subjects": len({r.subject for r, _ in comp}),
            "excluded": excluded, "notes": notes, "sde": sde_summary(rows)}


def sde_summary(rows: list[SheetRow]) -> dict:
    """Single-dataset label counts over every sheet row: CASME II ``{"class5": {label: n},
    "excluded_emotions": {...}}``; SAMM ``{"objective_class": {1..7: n}, "emotion": {...}}``; every dataset (and no
    rows) also ``"label_sets"``: for each label set of the dataset's classes (:mod:`icegan.labels`: ``casme2_5``,
    ``samm_5``), ``{"classes": {class: n} in id order, "clips": n with a class, "no_class": {emotion: n}}``, a clip's
    class being its sheet emotion (any case), as ``data.labels`` reads it (:func:`icegan.labels.manifest_labels`).
    SMIC's ``label_sets`` is ``{}``: its clips are labelled negative / positive / surprise, the MEGC2019 classes
    themselves (counted by :func:`composite_summary`), and no single-dataset label set is of SMIC clips."""
    if not rows:
        return {"label_sets": {}}
    out: dict = {}
    if rows[0].dataset == "casme2":
        c5 = Counter(r.emotion.lower() for r in rows if casme2_class5(r.emotion) is not None)
        other = Counter(r.emotion.lower() for r in rows if casme2_class5(r.emotion) is None)
        out = {"class5": {k: c5.get(k, 0) for k in CASME2_CLASS5}, "excluded_emotions": dict(sorted(other.items()))}
    elif rows[0].dataset == "samm":
        oc = Counter(r.objective_class for r in rows if r.objective_class is not None)
        out = {"objective_class": {str(k): oc[k] for k in sorted(oc)},
               "emotion": dict(sorted(Counter(r.emotion for r in rows).items()))}
    from icegan.labels import emotion_class_counts
    sets = {name: {"classes": s["classes"], "clips": sum(s["classes"].values()), "no_class": s["no_class"]}
            for name, s in emotion_class_counts((r.emotion for r in rows), rows[0].dataset).items()}
    out["label_sets"] = sets             # {} where no label set is of this dataset's clips (SMIC): one schema
    return out


def sheet_lookalikes(folder: Path, sheet: str) -> list[str]:
    """``"FOLDER holds NAME: if that is the sheet, save it as FOLDER/SHEET"`` for each file of ``folder`` whose name
    starts with official sheet ``sheet``'s name but for case and extension (a browser's ``... (1).xlsx``, a
    lower-case copy, an ``.xls`` or ``.csv`` export): why ``sheet`` is not found there. A ``.csv`` file is to be
    saved as ``FOLDER/<stem>.csv`` (read as well, :func:`icegan.data.sheets.sheet_names`; a CSV renamed to the
    ``.xlsx`` name does not read); the names looked up are not listed."""
    if not folder.is_dir():
        return []
    stem = Path(sheet).stem.lower()
    xlsx, csv = sheet_names(sheet)
    return [f"{folder} holds {f.name}: if that is the sheet, save it as "
            f"{folder / (csv if f.suffix.lower() == '.csv' else xlsx)}"
            for f in sorted(folder.iterdir())
            if f.is_file() and f.name not in (xlsx, csv) and f.name.lower().startswith(stem)]


def composite_from_sheets(annotations_dir: str | Path) -> dict:
    """Composite counts of CASME II and SAMM from their official sheets in ``annotations_dir``: each as distributed
    (``.xlsx``) or, when that is not there, exported as CSV under its name (``CASME2-coding-20140508.csv``;
    :func:`icegan.data.sheets.official_sheet_in`).

    Returns:
        ``{"casme2": {...}, "samm": {...}}`` as :func:`composite_summary`. On the official sheets:
        casme2 145 clips (88/32/25, 24 subjects), samm 133 (92/26/15, 28 subjects).

        A dataset whose sheet is not in the folder is left out (a copy of one dataset only).

    Raises:
        SheetError: ``annotations_dir`` is a file or no folder, neither sheet is in it (the message names both and the
            folder), or one is unreadable.
    """
    from .sheets import SheetError
    d = Path(annotations_dir)
    if d.is_file():             # the sheet itself given
        raise SheetError(f"--annotations-dir {d} is a file, not a folder: give the folder that holds the sheets, "
                         f"{d.parent}")
    if not d.is_dir():
        raise SheetError(f"--annotations-dir {d}: no such folder; give the folder that holds {CASME2_SHEET} and/or "
                         f"{SAMM_SHEET}")
    out = {name: composite_summary(read(path))
           for name, sheet, read in (("casme2", CASME2_SHEET, read_casme2_sheet), ("samm", SAMM_SHEET, read_samm_sheet))
           if (path := official_sheet_in(d, sheet)) is not None}
    if not out:
        below = sorted(str(sub) for sub in d.iterdir() if sub.is_dir()
                       and any(official_sheet_in(sub, sheet) for sheet in (CASME2_SHEET, SAMM_SHEET)))
        if below:               # the data folder given, one above the sheets' own (annotations/)
            raise SheetError(f"no coding sheet in {d}, but {below[0]} holds them: give --annotations-dir {below[0]}")
        alike = [note for sheet in (CASME2_SHEET, SAMM_SHEET) for note in sheet_lookalikes(d, sheet)]
        raise SheetError(f"no coding sheet in {d}: expected {CASME2_SHEET} (CASME II) and/or {SAMM_SHEET} (SAMM), as "
                         f"their owners distribute them, or each exported as .csv under the same name; give the "
                         f"folder that holds them with --annotations-dir"
                         + (f" ({'; '.join(alike)})" if alike else ""))
    return out
