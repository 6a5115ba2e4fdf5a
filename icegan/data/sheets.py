"""Readers for the official annotation sheets of CASME II, SAMM and SMIC-HS-E.

The sheets are read as the dataset owners distribute them, with their quirks:

- CASME II ``CASME2-coding-20140508.xlsx``: header in the first row (``Subject, Filename, ,
  OnsetFrame, ApexFrame, OffsetFrame, , Action Units, Estimated Emotion``), subjects written as
  text ``'01'``; one apex is ``"/"`` (sub04/EP12_01f).
- SAMM ``SAMM_Micro_FACS_Codes_v2.xlsx``: title and note rows above the header; the header row is
  found by its content (the row whose first cell is ``Subject``), never by index. Duration is a
  formula; objective classes 1..7.
- SMIC-HS-E ``SMIC-HS-E_annotation.xlsx`` sheet ``HS``: 157 clips of the extended release, with
  formula cells (read through their cached values) and trailing blank rows.

Numeric cells may hold text (``"/"``, ``"?"``, ``"46 "``): numbers written as text are accepted,
anything else becomes None with a note naming the sheet row, so the composite rules can exclude the
clip with a reason. Blank rows are skipped. ``.csv`` exports of the same sheets are accepted too (comma-, tab- or
semicolon-separated). An ``.xlsx`` is read whatever size its ``<dimension>`` tag claims.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from flownet.io import wide_text
from flownet.user_numbers import read_frame_number, whole_number_digits

from .records import apex_after_offset_note

#: official file names of the annotation sheets, as distributed
CASME2_SHEET = "CASME2-coding-20140508.xlsx"
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
SMIC_SHEET = "SMIC-HS-E_annotation.xlsx"
OFFICIAL_SHEETS = {"casme2": CASME2_SHEET, "samm": SAMM_SHEET, "smic": SMIC_SHEET}


def sheet_names(name: str) -> tuple[str, str]:
    """The file names official sheet ``name`` is looked up under, in that order: ``name`` itself, then the sheet
    exported as CSV under its name (``CASME2-coding-20140508.xlsx`` → ``(..., 'CASME2-coding-20140508.csv')``),
    which the readers read as well."""
    return name, f"{Path(name).stem}.csv"


def official_sheet_in(folder: str | Path, name: str) -> Optional[Path]:
    """The official sheet ``name`` in ``folder``: ``folder/name`` if it is a file, else its CSV export
    ``folder/<stem>.csv`` (:func:`sheet_names`) if that is; None when neither is (or ``folder`` is no folder).
    The one lookup of the automatic sheet search (:func:`icegan.data.base.find_sheet`) and of
    ``icegan data composite`` (:func:`icegan.data.composite.composite_from_sheets`)."""
    return next((Path(folder) / n for n in sheet_names(name) if (Path(folder) / n).is_file()), None)


class SheetError(ValueError):
    """An annotation sheet cannot be read: missing file, no header row, or a required column absent."""


@dataclass
class SheetRow:
    """One clip row of an annotation sheet.

    Attributes:
        dataset: ``casme2 | samm | smic``.
        subject: the subject's folder name (``sub01``, ``006``, ``s20``).
        clip: clip folder name (``EP02_01f``, ``006_1_2``, ``s20_ne_01``).
        onset, apex, offset: frame numbers, None where the cell holds no number.
        emotion: label as written (``happiness``, ``Anger``, ``negative`` ...); for SMIC, the file name's class
            where the sheet's Emotion cell contradicts it (:func:`read_smic_sheet`, with a note).
        action_units: FACS action units ('' where absent).
        objective_class: SAMM objective class 1..7 (None elsewhere, and where the cell holds no number of 1..7, with
            a note).
        row: 1-based row number in the sheet (as Excel shows it).
        notes: quirks met while parsing this row.
    """

    dataset: str
    subject: str
    clip: str
    onset: Optional[int]
    apex: Optional[int]
    offset: Optional[int]
    emotion: str
    action_units: str = ""
    objective_class: Optional[int] = None
    row: int = 0
    notes: list[str] = field(default_factory=list)


def _norm(name: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower()) if name is not None else ""


def _read_table(path: Path, sheet: Optional[str]) -> list[tuple]:
    """The rows of worksheet ``sheet``, or with ``sheet`` None of the first worksheet that holds a ``Subject`` header
    row (a workbook saved with a notes sheet in front still reads); a ``.csv`` file is one table."""
    if not path.is_file():
        raise SheetError(f"annotation sheet not found: {path}")
    if path.suffix.lower() == ".csv":
        raw = path.read_bytes()
        wide = wide_text(raw[:4096])        # UTF-16 without a BOM decodes as UTF-8, with a NUL beside each character
        if wide is not None:
            raise SheetError(f"{path}: {wide}, not UTF-8: save it as 'CSV UTF-8' or as .xlsx")
        try:        # decoded in one go, so that a bad byte's offset and line are the file's, not a read chunk's
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            at = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)    # utf-8-sig counts after its BOM
            line = raw.count(b"\n", 0, at) + 1
            raise SheetError(f"{path}: not UTF-8 text (byte {raw[at]:#04x} at byte {at}, line {line}; "
                             "a spreadsheet's plain 'CSV' export uses the computer's own encoding): save it as "
                             "'CSV UTF-8' or as .xlsx") from None
        return _csv_rows(text)
    if path.suffix.lower() == ".xls":
        raise SheetError(f"{path}: the old .xls format is not read; open it in a spreadsheet program and save it as "
                         f".xlsx (the format the datasets are distributed in), or export the clip sheet as .csv")
    import openpyxl
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zip/xml errors from a corrupt or non-xlsx file
        raise SheetError(f"{path}: cannot be read as an .xlsx workbook: {exc}") from None
    try:
        if sheet is not None:
            if sheet not in wb.sheetnames:
                raise SheetError(f"{path}: no worksheet named {sheet!r} (has {wb.sheetnames})")
            return _sheet_rows(wb[sheet])
        first = None
        for ws in wb.worksheets:
            rows = _sheet_rows(ws)
            if _header_index(rows) is not None:
                return rows
            first = rows if first is None else first
        if len(wb.worksheets) > 1:
            raise SheetError(f"{path}: no worksheet has a header row starting with 'Subject' (worksheets "
                             f"{wb.sheetnames})")
        return first or []
    finally:
        wb.close()


def _sheet_rows(ws) -> list[tuple]:
    """Every row of a worksheet opened read-only. The ``<dimension>`` tag a writer saved is not trusted (a stale one,
    ``A1:I100`` on a 256-row sheet, made openpyxl stop at row 100 without a word): the rows are read as the file
    holds them."""
    if hasattr(ws, "reset_dimensions"):
        ws.reset_dimensions()
    return [tuple(r) for r in ws.iter_rows(values_only=True)]


def _csv_rows(text: str) -> list[tuple]:
    """The rows of a sheet exported as CSV, empty cells None. Comma-separated, or, when no row starting with
    ``Subject`` is found so, separated by tabs or semicolons as spreadsheets set to some locales save "CSV" (a
    header such as ``Subject;Filename;...``, the case :func:`icegan.data.feature_table.read_csv_cells` names for
    feature tables and clip lists): the first of the two that gives such a header row."""
    import csv
    import io

    def parse(sep: str) -> list[tuple]:
        return [tuple(c if c != "" else None for c in r)
                for r in csv.reader(io.StringIO(text, newline=""), delimiter=sep)]
    rows = parse(",")
    if _header_index(rows) is None:
        for sep in ("\t", ";"):
            other = parse(sep)
            if _header_index(other) is not None:
                return other
    return rows


def _header_index(rows: list[tuple]) -> Optional[int]:
    """Index of the first row whose first non-empty cell is ``Subject`` (any case and punctuation), or None."""
    for i, r in enumerate(rows):
        first = next((c for c in r if c is not None and str(c).strip() != ""), None)
        if first is not None and _norm(first) == "subject":
            return i
    return None


def _find_header(rows: list[tuple], path: Path) -> int:
    i = _header_index(rows)
    if i is None:
        raise SheetError(f"{path}: no header row starting with 'Subject' found in {len(rows)} rows")
    return i


def _columns(header: tuple, wanted: dict[str, Iterable[str]], path: Path, required: Iterable[str],
             dataset: Optional[str] = None) -> dict[str, int]:
    """Column index of each ``wanted`` key (the column whose normalised name is one of its aliases).

    Raises:
        SheetError: a ``required`` key has no column; when the header is another dataset's official sheet's
            (:func:`_other_sheet_header`, ``dataset`` the one expected), the message says which sheet to give. Two
            columns for one key (``Estimated Emotion`` and ``Emotion``, ``ApexFrame`` twice): the message names both,
            in header order (which one is meant is unknown; the first was read silently before).
    """
    names = [_norm(h) for h in header]
    out: dict[str, int] = {}
    for key, aliases in wanted.items():
        found = [i for i, n in enumerate(names) if n in aliases]
        if len(found) > 1:          # as a clip list refuses a column named twice (clip_list.column_problems)
            raise SheetError(f"{path}: columns {' and '.join(repr(str(header[i]).strip()) for i in found[:2])} "
                             f"both give the {key}: keep one of them, so that it is clear which cells are read")
        if found:
            out[key] = found[0]
    missing = [k for k in required if k not in out]
    if missing:
        other = _other_sheet_header(header, dataset) if dataset is not None else None
        raise SheetError(f"{path}: {other}" if other else
                         f"{path}: header row lacks column(s) {missing}; header is {list(header)}")
    return out


def parse_frame(value: Any) -> tuple[Optional[int], Optional[str]]:
    """Frame number from a sheet cell: ``(number, None)`` or ``(None, reason)``.

    Accepts non-negative ints, integral floats and digit strings (``"46 "``, ``"46.0"``: the rule of
    :func:`flownet.user_numbers.read_frame_number`); text such as ``"/"`` or ``"?"``, negative numbers and empty cells
    give None with a reason.
    """
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None, "empty"
    if isinstance(value, bool):
        return None, f"{value!r} is not a frame number"
    if isinstance(value, (int, float)) and value < 0:    # as "-3" written as text, and as a clip list refuses it
        return None, f"{value!r} is not a frame number (negative)"
    if isinstance(value, int):
        return value, None
    if isinstance(value, float):
        return (int(value), None) if value.is_integer() else (None, f"{value!r} is not a whole frame number")
    try:            # ASCII digits, '46.0' as a spreadsheet writes it: '٣' or '４６' is no frame number
        return read_frame_number(str(value).strip()), None
    except ValueError as exc:
        return None, str(exc)


def _cell(r: tuple, idx: Optional[int]) -> Any:
    return r[idx] if idx is not None and idx < len(r) else None


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def _rows(path: Path, dataset: str, sheet: Optional[str], wanted: dict, subject_fmt,
          required: Iterable[str] = ("subject", "clip", "onset", "emotion"),
          table: Optional[list[tuple]] = None) -> list[SheetRow]:
    table = _read_table(path, sheet) if table is None else table
    h = _find_header(table, path)
    cols = _columns(table[h], wanted, path, required=required, dataset=dataset)
    out: list[SheetRow] = []
    seen: dict[tuple[str, str], int] = {}           # (subject, clip) case-folded → index in out
    for i, r in enumerate(table[h + 1:], start=h + 2):
        subj, clip = _cell(r, cols["subject"]), _cell(r, cols["clip"])
        if all(c is None or str(c).strip() == "" for c in r):
            continue  # blank row
        if subj is None or clip is None or _text(subj) == "" or _text(clip) == "":
            raise SheetError(f"{path} row {i}: subject or filename is empty in a non-blank row: {r}")
        try:
            subject = subject_fmt(subj)
        except SheetError as exc:
            raise SheetError(f"{path} row {i}: {exc}") from None
        notes = []
        frames = {}
        for key in ("onset", "apex", "offset"):
            if key not in cols:
                frames[key] = None
                continue
            n, why = parse_frame(_cell(r, cols[key]))
            frames[key] = n
            if why and why != "empty":
                notes.append(f"{key} cell {why} (sheet row {i})")
            elif why == "empty" and key != "offset":
                notes.append(f"{key} cell is empty (sheet row {i})")
        quirk = apex_after_offset_note(frames["onset"], frames["apex"], frames["offset"], f"sheet row {i}")
        if quirk:                                               # (apex before onset: a skip, data check)
            notes.append(quirk)
        obj = None
        if "objective" in cols:
            obj, why = parse_frame(_cell(r, cols["objective"]))       # a class number, read as frame numbers are
            if why and why != "empty":
                notes.append(f"objective class {_text(_cell(r, cols['objective']))!r} is not a class number "
                             f"(sheet row {i})")
            elif obj is not None and not 1 <= obj <= 7:
                notes.append(f"objective class {obj} is outside SAMM's classes 1..7 (sheet row {i}): not used")
                obj = None
        row = SheetRow(dataset=dataset, subject=subject, clip=_text(clip),
                       onset=frames["onset"], apex=frames["apex"], offset=frames["offset"],
                       emotion=_text(_cell(r, cols["emotion"])),
                       action_units=_text(_cell(r, cols.get("au"))),
                       objective_class=obj, row=i, notes=notes)
        # case-folded: clip folders are found ignoring case (find_dir), so EP02_01f and ep02_01f are one clip's frames
        key = (row.subject.casefold(), row.clip.casefold())
        if key in seen:           # a row pasted twice: one clip, counted once; two codings of it: the user decides
            first = out[seen[key]]
            fields = ("onset", "apex", "offset", "emotion", "action_units", "objective_class")
            differ = [f for f in fields if getattr(first, f) != getattr(row, f)
                      and not (f == "emotion" and first.emotion.lower() == row.emotion.lower())]
            if differ:
                raise SheetError(f"{path} rows {first.row} and {i}: clip {row.subject}/{row.clip} is listed twice "
                                 f"with different {', '.join(differ)}; delete the wrong row")
            same = (first.clip, first.emotion) == (row.clip, row.emotion)
            first.notes.append(f"listed twice (sheet rows {first.row} and {i}, the same cells"
                               f"{'' if same else ' but for letter case'}): counted once")
            continue
        seen[key] = len(out)
        out.append(row)
    if not out:
        raise SheetError(f"{path}: header found but no clip rows below it")
    return out


def _numbered_subject(v: Any, prefix: str, width: int, dataset: str) -> str:
    """``'1'``, ``1``, ``'1.0'`` or ``'<prefix>1'`` → ``<prefix>`` + the number zero-padded to ``width`` digits."""
    s = _text(v)
    if s.lower().startswith(prefix):
        s = s[len(prefix):]
    digits = whole_number_digits(s)
    if digits is None:
        raise SheetError(f"{dataset} subject {v!r} is not a number")
    return f"{prefix}{int(digits):0{width}d}"


def _casme2_subject(v: Any) -> str:
    return _numbered_subject(v, "sub", 2, "CASME II")


def _samm_subject(v: Any) -> str:
    """``6``, ``'6'``, ``'6.0'`` or ``'006'`` → ``'006'``; other text is kept as written."""
    s = _text(v)
    digits = whole_number_digits(s)
    return f"{int(digits):03d}" if digits is not None else s


def _smic_subject(v: Any) -> str:
    return _numbered_subject(v, "s", 1, "SMIC")


#: clip names of each sheet: CASME II ``EP02_01f``, SAMM ``006_1_2`` (subject, inducement, number)
_CLIP_NAMES = {"casme2": (re.compile(r"EP\d+\w*$", re.IGNORECASE), "EP02_01f"),      # (the sheet has EP09f too)
               "samm": (re.compile(r"\d{3}_\d+_\d+$"), "006_1_2")}
_SHEET_TITLES = {"casme2": "CASME II", "samm": "SAMM", "smic": "SMIC-HS-E"}
#: header columns (normalised) that tell each official sheet, the SAMM sheet's before CASME II's (it has both of those)
_SHEET_HEADERS = {"smic": ("onsetf", "totalmf1"), "samm": ("onsetframe", "objectiveclasses"),
                  "casme2": ("onsetframe", "apexframe")}


def _other_sheet_header(header: tuple, dataset: str) -> Optional[str]:
    """What to say of a header row that is another dataset's official sheet's than ``dataset``'s, or None:
    ``"its header (OnsetF, TotalMF1) is the SMIC-HS-E sheet's (SMIC-HS-E_annotation.xlsx), not SAMM's: give
    SAMM_Micro_FACS_Codes_v2.xlsx as the SAMM sheet"``."""
    names = [_norm(h) for h in header]
    for other, cols in _SHEET_HEADERS.items():
        if other != dataset and all(c in names for c in cols):
            shown = ", ".join(_text(header[names.index(c)]) for c in cols)
            return (f"its header ({shown}) is the {_SHEET_TITLES[other]} sheet's ({OFFICIAL_SHEETS[other]}), not "
                    f"{_SHEET_TITLES[dataset]}'s: give {OFFICIAL_SHEETS[dataset]} as the {_SHEET_TITLES[dataset]} "
                    f"sheet")
    return None


def _refuse_the_other_sheet(rows: list[SheetRow], dataset: str, path: Path) -> list[SheetRow]:
    """``rows`` as read, unless every clip is named as the other dataset's clips are and none as this one's (the SAMM
    sheet given as CASME II's, or the reverse: read silently, its clips were all 'missing on disk').

    Raises:
        SheetError: naming the file, both datasets and the official sheet to give.
    """
    other = "samm" if dataset == "casme2" else "casme2"
    mine, theirs = _CLIP_NAMES[dataset][0], _CLIP_NAMES[other][0]
    if rows and not any(mine.match(r.clip) for r in rows) and all(theirs.match(r.clip) for r in rows):
        official = {"casme2": CASME2_SHEET, "samm": SAMM_SHEET}
        raise SheetError(f"{path}: its clips are named as {_SHEET_TITLES[other]}'s ({rows[0].clip}, ...), not as "
                         f"{_SHEET_TITLES[dataset]}'s ({_CLIP_NAMES[dataset][1]}): it looks like the "
                         f"{_SHEET_TITLES[other]} sheet ({official[other]}); give {official[dataset]} as the "
                         f"{_SHEET_TITLES[dataset]} sheet")
    return rows


def read_casme2_sheet(path: str | Path) -> list[SheetRow]:
    """Rows of ``CASME2-coding-20140508.xlsx`` (255 clips, 26 subjects), subject as ``subNN``.

    The workbook's first worksheet with a ``Subject`` header row is read. A row whose apex lies after its offset
    gets a note (shown by ``icegan data check``).

    Raises:
        SheetError: file missing/unreadable (an old ``.xls``: save it as ``.xlsx`` or ``.csv``; a ``.csv`` that is
            not UTF-8), no ``Subject`` header row, a required column (subject, filename, onset, apex, emotion)
            missing, a non-blank row without subject/filename or with a subject that is not a number, or one clip
            on two rows with different cells (message names file and row), or the SAMM sheet given for CASME II (every
            clip named as SAMM's, ``006_1_2``; the SAMM reader refuses the reverse), or the SMIC sheet given (a header
            with ``OnsetF`` and ``TotalMF1``: said to be the SMIC sheet, by the SAMM reader too). Two identical rows
            of one clip are read as one, with a note; the clip name and the emotion are compared ignoring case
            (``ep02_01f`` finds the folder ``EP02_01f``: the same clip, not a second one reading its frames).
    """
    wanted = {"subject": ["subject"], "clip": ["filename"], "onset": ["onsetframe", "onset"],
              "apex": ["apexframe", "apex"], "offset": ["offsetframe", "offset"],
              "au": ["actionunits"], "emotion": ["estimatedemotion", "emotion"]}
    rows = _rows(Path(path), "casme2", None, wanted, _casme2_subject,
                 required=("subject", "clip", "onset", "apex", "emotion"))
    return _refuse_the_other_sheet(rows, "casme2", Path(path))


def read_samm_sheet(path: str | Path) -> list[SheetRow]:
    """Rows of ``SAMM_Micro_FACS_Codes_v2.xlsx`` (159 clips, 29 subjects), subject as ``006``.

    The header row is located by content (first cell ``Subject``), below the title/notes rows.

    Raises:
        SheetError: as :func:`read_casme2_sheet`.
    """
    wanted = {"subject": ["subject"], "clip": ["filename"], "onset": ["onsetframe", "onset"],
              "apex": ["apexframe", "apex"], "offset": ["offsetframe", "offset"],
              "au": ["actionunits"], "emotion": ["estimatedemotion", "emotion"],
              "objective": ["objectiveclasses", "objectiveclass"]}
    return _refuse_the_other_sheet(_rows(Path(path), "samm", None, wanted, _samm_subject,
                                         required=("subject", "clip", "onset", "apex", "emotion")), "samm", Path(path))


#: SMIC-HS clip names' class codes (``s18_sur_03``): the class the folder tree and the MEGC2019 composite give the clip
_SMIC_NAME_CLASS = {"ne": "negative", "po": "positive", "sur": "surprise"}
_SMIC_CLIP_NAME = re.compile(r"s([0-9]+)_(ne|po|sur)_[0-9]+", re.IGNORECASE)


def smic_clip_name(clip: str) -> Optional[tuple[str, str]]:
    """The subject and class a SMIC-HS clip name says: ``'s18_sur_03'`` → ``('s18', 'surprise')`` (any case;
    ``S02_NE_01`` → ``('s2', 'negative')``, the subject as its folder is compared, unpadded, lower case).

    The name is the authority on the clip's class (the SMIC-HS folder tree and the MEGC2019 composite agree with it,
    :func:`read_smic_sheet` uses it over the sheet's Emotion cell) and on its subject.

    Returns:
        ``(subject, class)``, class one of ``negative | positive | surprise``; None for a name not of the form
        ``s<number>_<ne|po|sur>_<number>``.
    """
    m = _SMIC_CLIP_NAME.fullmatch(clip.strip())
    return (f"s{int(m.group(1))}", _SMIC_NAME_CLASS[m.group(2).lower()]) if m else None


def _smic_row_notes(r: SheetRow, raw: tuple, cols: dict[str, int]) -> None:
    """Add to ``r`` the notes of the SMIC sheet cells that contradict each other (see :func:`read_smic_sheet`); set
    ``r.emotion`` to the file name's class where the Emotion cell says another."""
    where = f"sheet row {r.row}"
    parsed = smic_clip_name(r.clip)
    named = parsed[1] if parsed else None
    if named is not None and r.emotion.strip().lower() != named:
        r.notes.append(f"emotion cell {r.emotion!r} ({where}) contradicts the file name {r.clip} ({named}), as the "
                       f"SMIC-HS folder tree and the MEGC2019 composite class the clip: {named} used")
        r.emotion = named
    first, _ = parse_frame(_cell(raw, cols.get("first")))
    last, _ = parse_frame(_cell(raw, cols.get("last")))
    if first is not None and last is not None:
        for key in ("onset", "offset"):
            n = getattr(r, key)
            if n is not None and not first <= n <= last:
                r.notes.append(f"{key} {n} is outside FirstF..LastF {first}..{last}, the clip's frames ({where}): "
                               f"one of the cells is wrong; the {key} is used as written")
    # (onset, offset) of the second and third micro-expressions
    frames = {n: tuple(parse_frame(_cell(raw, cols.get(f"{key}{n}")))[0] for key in ("onset", "offset"))
              for n in (2, 3)}
    more = []                   # (which, span) of those annotated
    for n, which in ((2, "second"), (3, "third")):
        on, off = frames[n]
        # the release's Onset3F formula gives a frame before FirstF where no third is coded (s20_ne_06), and
        # s9_sur_01 repeats its second: neither is a third micro-expression
        if n == 3 and (frames[3] == frames[2] or (first is not None and last is not None and on is not None
                                                  and not first <= on <= last)):
            continue
        if on is not None:
            more.append((which, f"Onset{n}F..Offset{n}F {on}..{'?' if off is None else off}"))
    if more:
        spans = more[0][1] + "".join(f", and a {which}, {span}" for which, span in more[1:])
        r.notes.append(f"a {more[0][0]} micro-expression is annotated, {spans} ({where}): not read; only the first, "
                       f"OnsetF..OffsetF, is")


def read_smic_sheet(path: str | Path, sheet: str = "HS") -> list[SheetRow]:
    """Rows of worksheet ``sheet`` of ``SMIC-HS-E_annotation.xlsx`` (HS: 157 clips, 16 subjects).

    Onset is ``OnsetF``, offset ``OffsetF`` (a formula, read through its cached value; when no value
    is cached it is computed as ``OnsetF + TotalMF1 - 1``; with no ``TotalMF1`` either it is None, with a note
    naming the row); no apex is annotated (None). Subject as
    ``s20``. Note that the MEGC2019 composite uses the 164-clip SMIC-HS folder tree, whose class
    comes from the folder name, not this sheet.

    Cells that contradict each other are read as follows, each with a note naming the sheet row:

    - an ``Emotion`` cell other than the class of the file name (``s18_sur_03``: ``sur``, surprise; the sheet says
      negative): the file name's class is used, as the SMIC-HS folder tree and the MEGC2019 composite class the clip
      (65 negative / 51 positive / 41 surprise over the 157 rows);
    - an onset or offset outside ``FirstF..LastF`` (``s1_ne_03``): used as written;
    - a second micro-expression (``Onset2F``/``Offset2F``, 8 clips) or a third (``Onset3F``/``Offset3F`` inside
      ``FirstF..LastF`` and not the second's frames again: s4_ne_04): not read, one note naming both; the row stands
      for the first one.

    Raises:
        SheetError: as :func:`read_casme2_sheet`, or the worksheet does not exist; the SAMM or CASME II sheet given
            (no worksheet ``sheet`` in its workbook, or its CSV export's header) is said to be that sheet, naming the
            SMIC one to give.
    """
    wanted = {"subject": ["subject"], "clip": ["filename"], "onset": ["onsetf", "onset"],
              "offset": ["offsetf", "offset"], "emotion": ["emotion"], "n1": ["totalmf1"],
              "first": ["firstf"], "last": ["lastf"], "onset2": ["onset2f"], "offset2": ["offset2f"],
              "onset3": ["onset3f"], "offset3": ["offset3f"]}
    try:
        table = _read_table(Path(path), sheet)
    except SheetError as exc:       # no worksheet ``sheet``: the SAMM or CASME II workbook given, said as such
        try:
            found = _read_table(Path(path), None)
        except SheetError:
            raise exc from None
        h = _header_index(found)
        other = _other_sheet_header(found[h], "smic") if h is not None else None
        if other is None:
            raise exc from None
        raise SheetError(f"{exc}; {other}") from None
    rows = _rows(Path(path), "smic", sheet, wanted, _smic_subject, table=table)
    cols = _columns(table[_find_header(table, Path(path))], wanted, Path(path), required=())
    for r in rows:
        raw = table[r.row - 1]
        if r.offset is None and r.onset is not None:
            n, _ = parse_frame(_cell(raw, cols.get("n1")))
            if n is not None:
                r.offset = r.onset + n - 1
                # an OffsetF cell such as "/" was noted as unusable: say what the offset became instead
                r.notes = [f"{x}; offset taken as OnsetF + TotalMF1 - 1 = {r.offset}" if x.startswith("offset cell")
                           else x for x in r.notes]
            else:           # said, as for any other cell the reader could not use (icegan data check shows it)
                r.notes.append(f"offset unknown: the OffsetF formula has no saved value and TotalMF1 holds no frame "
                               f"count (sheet row {r.row}); open and save the sheet in a spreadsheet program to store "
                               "the formula values")
        r.notes = [n for n in r.notes if not n.startswith("apex")]
        _smic_row_notes(r, raw, cols)
    return rows


def read_sheet(dataset: str, path: str | Path) -> list[SheetRow]:
    """Dispatch to the reader of ``dataset`` (``casme2 | samm | smic``)."""
    readers = {"casme2": read_casme2_sheet, "samm": read_samm_sheet, "smic": read_smic_sheet}
    if dataset not in readers:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(readers)}")
    return readers[dataset](path)
