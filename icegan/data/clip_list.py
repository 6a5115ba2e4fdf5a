"""Your own clips, listed in one CSV: a dataset of the main job's preprocessing that is not CASME II, SAMM or SMIC
(``name: clips`` under ``data.prepare.datasets``, or ``icegan features --clips FILE.csv``).

The list has one row per clip::

    subject,clip,frames,onset,apex,offset,label
    p01,take1,videos/p01/take1,12,31,55,
    p01,take2,videos/p01/take2,3,,40,positive

* ``subject``: the person; LOSO folds and warnings go by it. Prefixed with the ``dataset`` column's value (default
  ``clips``) unless it already holds a ``/``.
* ``clip``: the clip's name (unique within its subject).
* ``frames``: the folder of the clip's frames, relative to the CSV or absolute (a leading ``~`` is the home folder);
  spaces around it are ignored (a stray space typed in a spreadsheet) unless only the folder named with them exists.
  One folder may hold several clips (onsets) of one subject, never clips of two subjects (a LOSO leak).
  Frame files are matched by the number at the end of their name (``img46.jpg``, ``frame_0046.png``), as in the
  official releases.
* ``onset``: the onset frame number. ``apex``: the apex frame number, or empty to spot it on the clip's frames (the
  SMIC method, ``data.prepare.apex_spotting``). ``offset``: optional; one before the apex is refused (a sheet row of
  that kind is kept with a note), one before the onset is refused when the apex is to be spotted. A frame number is
  ASCII digits (``46``, or ``46.0`` as a spreadsheet exports it; :func:`flownet.user_numbers.read_frame_number`).
* ``label``: optional; a MEGC2019 class name or id (``negative`` 0, ``positive`` 1, ``surprise`` 2), or empty for a
  clip without one. ``icegan features`` keeps such a clip in ``features.csv`` with an empty label, for
  ``icegan predict``, and writes the labelled clips alone to ``features_labelled.csv``, the table for ``icegan loso``
  and ``icegan fit`` (which refuse a row without a label); the main job (``train.py`` with this list under
  ``data.prepare.datasets``) leaves it out of its LOSO with a warning.
* ``dataset``: optional; a short name for the source of the clips (default ``clips``).

No other column is read. One that looks like a known column that the list lacks (``apex_frame`` → ``apex``,
``emotion`` → ``label``, a near misspelling) is refused, naming it and the column it was likely meant for: read under
no name it would leave its cells unused (every apex spotted, no label) with no word. Any other (``notes``, or
``emotion`` beside a ``label`` column) is left unread with one warning naming the file and the columns ignored. A
column named twice in the header is refused. Column names are matched ignoring case and spaces around them.

Every error names the CSV line and the clip.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Optional

from flownet.paths import expand_home
from flownet.user_numbers import read_frame_number

from ..paths import unexpanded_note
from .feature_table import parse_class_label, read_csv_cells, short_row_note
from .features import dataset_name
from .records import ClipRecord, duplicate_frame, list_frames

__all__ = ["ClipList", "CLIP_LIST_COLUMNS", "meant_column"]

log = logging.getLogger("icegan.data")

#: required columns, then optional ones
CLIP_LIST_COLUMNS = (("subject", "clip", "frames", "onset"), ("apex", "offset", "label", "dataset"))

#: other names of the columns (letters only, lower case), as other tools and sheets write them
_COLUMN_SYNONYMS = {
    "label": ("emotion", "emotions", "class", "classname", "classlabel", "expression", "category", "estimatedemotion"),
    "subject": ("participant", "person", "subj", "sub", "subjectid", "participantid", "personid"),
    "clip": ("video", "videoname", "filename", "sequence", "clipname", "clipid"),
    "frames": ("frame", "folder", "framefolder", "framesfolder", "path", "dir", "directory", "framedir", "framesdir",
               "framespath", "framepath", "imagefolder", "images"),
    "onset": ("onsetframe", "onsetframenumber", "startframe", "start"),
    "apex": ("apexframe", "apexframenumber", "peakframe", "peak"),
    "offset": ("offsetframe", "offsetframenumber", "endframe", "end"),
    "dataset": ("source", "datasetname"),
}


def meant_column(name: str) -> Optional[str]:
    """The clip list column that an unknown column ``name`` (lower case) was likely meant for: a known other name
    (``emotion`` → ``label``, ``participant`` → ``subject``), a known name written with a ``frame``/``number``/``id``
    suffix or other separators (``apex_frame``, ``apex frame``, ``Apex-Frame`` → ``apex``), or a near misspelling
    (``onest`` → ``onset``); None when it looks like none."""
    import difflib
    import re
    known = CLIP_LIST_COLUMNS[0] + CLIP_LIST_COLUMNS[1]
    letters = re.sub(r"[^a-z]", "", name.lower())
    if not letters:
        return None
    for col in known:
        if letters == col or letters in _COLUMN_SYNONYMS[col]:
            return col
    for col in known:
        for suffix in ("framenumber", "frame", "number", "no", "nr", "id", "name"):
            if letters == col + suffix:
                return col
    close = difflib.get_close_matches(letters, known, n=1, cutoff=0.75)
    return close[0] if close else None


def column_problems(csv: Path, columns: list[str]) -> tuple[Optional[str], list[str]]:
    """``(error, ignored)`` for the header ``columns`` (stripped, lower case, as :func:`read_csv_cells` gives them) of
    clip list ``csv``: ``error`` is the message refusing a column named twice (``label,label``, which pandas reads as
    ``label`` and ``label.1``), a feature table given for a clip list, or a column that looks like a known column the
    list lacks (:func:`meant_column`: ``apex_frame`` without ``apex``), else None; ``ignored`` the other columns that
    are none of :data:`CLIP_LIST_COLUMNS` (module docstring), left unread. A column without a name and without a
    value (a trailing comma of a spreadsheet's export) is to be left out of ``columns`` by the caller."""
    import re
    known = CLIP_LIST_COLUMNS[0] + CLIP_LIST_COLUMNS[1]
    mangled = (re.fullmatch(r"(.+)\.[1-9][0-9]*", c) for c in columns)      # pandas' name of a repeated one
    twice = sorted({c for c in columns if columns.count(c) > 1}
                   | {m.group(1) for m in mangled if m and m.group(1) in columns})
    if twice:
        return (f"{csv}: column(s) {twice} appear more than once in the header (column names ignore case): keep one "
                f"of each, so that it is clear which cells are read", [])
    if "path" in columns and "frames" not in columns and "onset" not in columns:     # the maps of icegan features
        import shlex

        from icegan.config import override_text
        table = shlex.quote(override_text("data.table", str(csv)))       # as typed: a '#' or space kept whole
        return (f"{csv}: a feature table (a path column to each clip's maps, no frames or onset), not a clip list: "
                f"give it to icegan loso or fit as data.source=table {table}, or to icegan predict as --table "
                f"{shlex.quote(str(csv))}; a clip list (--clips, name: clips) has columns {', '.join(known[:4])} and "
                f"optionally {', '.join(known[4:])}", [])
    parts, ignored = [], []
    for c in columns:
        if c in known:
            continue
        meant = meant_column(c)
        if meant is not None and meant not in columns:
            parts.append(f"column {c!r}: did you mean {meant!r}? (rename it)")
        else:
            ignored.append(c)
    if parts:
        return (f"{csv}: not a clip list column: {'; '.join(parts)}; a clip list has columns {', '.join(known[:4])} "
                f"and optionally {', '.join(known[4:])} (a column of another name is left unread)"), ignored
    return None, ignored


def _check_spellings(csv: Path, subjects: dict[str, int]) -> None:
    """Refuse two subject ids of clip list ``csv`` that one LOSO would take for two people though they may be one
    (``clips/sub01`` and ``clips/SUB01``: :func:`icegan.protocol.check_subject_spellings`, which ``icegan loso`` and
    the main job apply) when the list is read, not after ``icegan features``. ``subjects``: each id (with its dataset)
    and the line it first appears on.

    Raises:
        ValueError: naming the file, both lines and the two ids.
    """
    from icegan.protocol import check_subject_spellings, subject_key
    first: dict[str, str] = {}
    for subject in subjects:
        other = first.setdefault(subject_key(subject), subject)
        if other != subject:
            try:
                check_subject_spellings([other, subject])
            except ValueError as exc:           # its message names the two ids in sorted order: the lines so too
                a, b = sorted((other, subject))
                raise ValueError(f"{csv}, lines {subjects[a]} and {subjects[b]}: {exc}") from None


def _frame_number(value: str, column: str, where: str, required: bool) -> Optional[int]:
    value = value.strip()
    if not value:
        if required:
            raise ValueError(f"{where}: empty {column}; give the {column} frame number")
        return None
    try:            # ASCII digits, '46.0' as a spreadsheet exports it; not '٣', '1_0', '1e1' (float() read those)
        return read_frame_number(value)
    except ValueError:
        raise ValueError(f"{where}: {column} {value!r} is not a frame number (ASCII digits 0-9, e.g. 46 or 46.0; "
                         "no sign)") from None


class ClipList:
    """The clips of one clip list (module docstring), as :class:`~icegan.data.records.ClipRecord` s for
    :func:`icegan.data.prepare.prepare_dataset`.

    Args:
        root: the CSV file.
        annotations: unused (a clip list carries its own onsets, apexes and labels); accepted so that a clip list
            fits where a dataset root and sheet go.

    Raises:
        FileNotFoundError: the CSV is missing.
        ValueError: a missing column, a column of another name where its known column is missing (named, with the
            column it was likely meant for: ``apex_frame`` → ``apex``, ``emotion`` → ``label``), a column named twice,
            a feature table (a ``path`` column, no ``frames`` or ``onset``), an empty required cell, a frame number
            that is not one, an apex before the onset or after the offset, an offset before the onset of a clip whose
            apex is to be spotted, a label that is not a MEGC2019 class, a dataset name that is not a short word, a
            clip listed twice (by subject and clip name, or by frames folder and onset under another name or subject,
            whatever the apexes and offsets), one frames folder under two subjects whatever the onsets (its frames
            in two LOSO folds; under one subject several onsets are several clips of one take) (each names the CSV
            line and clip; a clip or folder listed twice names both lines), a frames cell starting at the home folder of a user this machine does not have (``~alice/...``), a
            row with fewer fields than the header that lacks the cell of a column read here ("K of the header's M
            fields"), two subject ids that differ only in case, leading zeros or '/' against '_'
            (:func:`icegan.protocol.check_subject_spellings`; naming both lines). Any other column is ignored with a
            warning naming it.
    """

    name = "clips"

    def __init__(self, root: str | Path, annotations: Optional[str | Path] = None):
        self.path = Path(root)
        if not self.path.is_file():
            what = f"not found: {self.path}{unexpanded_note(self.path)}"
            if self.path.is_dir():          # the clips' folder given for the CSV listing them
                csvs = sorted(f.name for f in self.path.glob("*.csv"))
                what = f"{self.path} is a folder, not a CSV file: " + (f"give the clip list in it ({', '.join(csvs)})"
                                                                       if csvs else "it holds no .csv file")
            raise FileNotFoundError(f"clip list {what} (a CSV with columns "
                                    f"{', '.join(CLIP_LIST_COLUMNS[0])} and optionally {', '.join(CLIP_LIST_COLUMNS[1])})")
        self._records: Optional[list[ClipRecord]] = None
        self.root, self.sheet_path = self.path.parent, self.path      # where `icegan data check` reports them
        #: the warning about the list's columns left unread (``"<csv>: column 'notes' ignored: ..."``), once
        #: :meth:`records` has read the list; None when every column is read (``icegan data check`` reports it)
        self.column_note: Optional[str] = None

    def disk_clips(self) -> list[tuple[str, str]]:
        """``(subject, clip)`` of the listed clips whose frame folder exists."""
        return [(r.subject, r.clip) for r in self.records() if r.clip_dir is not None and r.clip_dir.is_dir()]

    @staticmethod
    def check_scope(composite_only: bool) -> str:
        """What ``records()`` covers, in words (``icegan data check``'s report): every listed clip, whatever
        ``composite_only`` says (a clip list has no composite subset)."""
        return "all listed clips"

    def _read(self) -> list[ClipRecord]:
        csv = self.path
        raw = read_csv_cells(csv)
        # a header cell left empty (a trailing comma) over empty cells is no column: pandas names it 'unnamed: N'
        columns = [c for c in raw.columns if not (c.startswith("unnamed: ") and not raw[c].str.strip().any())]
        error, ignored = column_problems(csv, columns)
        if error:
            raise ValueError(error)
        if ignored:
            self.column_note = (f"{csv}: {'column' if len(ignored) == 1 else 'columns'} "
                                f"{', '.join(map(repr, ignored))} ignored: not a clip list column (a clip list reads "
                                f"{', '.join(CLIP_LIST_COLUMNS[0] + CLIP_LIST_COLUMNS[1])})")
            log.warning("%s", self.column_note)
        missing = [c for c in CLIP_LIST_COLUMNS[0] if c not in raw.columns]
        if missing:
            raise ValueError(f"{csv}: missing column(s) {missing}; found {list(raw.columns)} (a clip list needs "
                             f"{', '.join(CLIP_LIST_COLUMNS[0])}; optional: {', '.join(CLIP_LIST_COLUMNS[1])})")
        header = list(raw.columns)
        for c in CLIP_LIST_COLUMNS[1]:
            if c not in raw.columns:
                raw[c] = ""
        out, seen, subjects = [], {}, {}
        shown: dict[tuple, tuple] = {}   # (resolved frames folder, onset) → (line, clip, subject, apex) listing it
        owner: dict[Path, tuple] = {}    # resolved frames folder → (line, clip, subject, onset) first listing it
        for i, r in raw.iterrows():
            line = int(i) + 2
            if not any(str(v).strip() for v in r.to_numpy()):
                continue
            clip = r["clip"].strip()
            where = f"{csv}, line {line} (clip '{clip}')"
            for c in ("subject", "clip", "frames"):
                if not r[c].strip():
                    raise ValueError(f"{where}: empty {c}{short_row_note(raw, line)}")
            cut = [c for c in header[raw.attrs["fields"].get(line, len(header)):]        # past a short row's end
                   if c in CLIP_LIST_COLUMNS[0] + CLIP_LIST_COLUMNS[1]]
            if cut:         # else its apex would be spotted and its label dropped with no word
                raise ValueError(f"{where}: no cell for {', '.join(cut)}{short_row_note(raw, line)}; give every "
                                 f"column's cell, an empty one as an empty field (46,59,,)")
            given = r["dataset"].strip() or self.name
            subject = r["subject"].strip()
            if "/" in subject:
                given, _, subject = subject.partition("/")
            dataset = dataset_name(given)
            if dataset is None:
                raise ValueError(f"{where}: dataset name {given!r} is not usable; give a short name of letters, "
                                 f"digits, '_' or '-'")
            onset = _frame_number(r["onset"], "onset", where, required=True)
            apex = _frame_number(r["apex"], "apex", where, required=False)
            offset = _frame_number(r["offset"], "offset", where, required=False)
            if apex is not None and apex < onset:
                raise ValueError(f"{where}: apex {apex} is before onset {onset}")
            if apex is not None and apex == onset:     # as the MEGC2019 composite excludes such a clip
                raise ValueError(f"{where}: apex {apex} is the onset frame, so the onset→apex flow would be zero; "
                                 f"give the apex frame, or leave the apex cell empty to have it spotted")
            if offset is not None and offset < onset and apex is None:
                raise ValueError(f"{where}: offset {offset} is before onset {onset}, so no apex can be spotted "
                                 f"between them: give the apex, or fix or empty the offset cell")
            # an offset before the apex: refused as an apex before the onset is (a clip list is the user's own; the
            # official sheets' rows of this kind are kept with a note, :func:`apex_after_offset_note`)
            if apex is not None and offset is not None and offset < apex:
                raise ValueError(f"{where}: apex {apex} is after offset {offset}: one of the two cells is wrong; "
                                 f"correct it, or empty the offset cell")
            label = r["label"].strip()
            class3 = parse_class_label(label, where, allow_empty=True, suggest_labels=False)   # MEGC2019 classes
            key = f"{dataset}/{subject}/{clip}"
            if key in seen:
                raise ValueError(f"{where}: clip '{clip}' of subject '{dataset}/{subject}' is listed twice (first on "
                                 f"line {seen[key]})")
            seen[key] = line
            subjects.setdefault(f"{dataset}/{subject}", line)
            # a leading ~ is the home folder, as in a config (a cell is read by no shell)
            folder, written = (Path(expand_home(v, f"{where}: frames")) for v in (r["frames"].strip(), r["frames"]))
            folder, written = (f if f.is_absolute() else csv.parent / f for f in (folder, written))
            if not folder.is_dir() and written.is_dir():    # a folder whose name really begins or ends with a space
                folder = written
            # one clip under two names or subjects: counted twice, and in two LOSO folds when the subjects differ;
            # one folder and onset are one clip whatever the apexes (one spotted, one given) and offsets say
            # (os.path.realpath: Path.resolve raises RuntimeError on a link loop, a folder reported as not found)
            same = (Path(os.path.realpath(folder)), onset)
            if same in shown:
                first_line, first_clip, first_subject, first_apex = shown[same]
                elsewhere = " and put into two subjects' LOSO folds" if first_subject != f"{dataset}/{subject}" else ""
                this_apex, other_apex = ("to be spotted" if a is None else a for a in (apex, first_apex))
                other = "" if first_apex == apex else f", apex {other_apex}"
                raise ValueError(f"{where}: frames folder {same[0]} with onset {onset} and apex {this_apex} is listed "
                                 f"on line {first_line} too (clip '{first_clip}' of subject '{first_subject}'{other}): "
                                 f"one clip listed twice would be counted twice{elsewhere}; keep one of the two lines")
            shown[same] = (line, clip, f"{dataset}/{subject}", apex)
            # one folder under two subjects, whatever the onsets: its frames (an apex image, one face) would be in
            # two subjects' LOSO folds, trained on and tested. Under one subject several onsets are several MEs of
            # one long take (as SAMM has), kept
            first_line, first_clip, first_subject, first_onset = owner.setdefault(
                same[0], (line, clip, f"{dataset}/{subject}", onset))
            if first_subject != f"{dataset}/{subject}":
                raise ValueError(f"{where}: frames folder {same[0]} (onset {onset}) is listed on line {first_line} "
                                 f"under another subject (clip '{first_clip}' of subject '{first_subject}', onset "
                                 f"{first_onset}): its frames would be in two subjects' LOSO folds, trained on and "
                                 f"tested on; list the folder under one subject")
            numbers, paths, problems = list_frames(folder) if folder.is_dir() else ((), (), [])
            for problem in problems:         # said here too, as icegan features (prepare) does not print warnings
                what = ("; the first is used (the clip is skipped if it is the onset or apex frame): keep one"
                        if duplicate_frame(problem) is not None else "")
                log.warning("%s, line %d (clip '%s'): %s in %s%s", csv, line, clip, problem, folder, what)
            out.append(ClipRecord(dataset=dataset, subject=f"{dataset}/{subject}", clip=clip, emotion=label,
                                  class3=class3, onset=onset, apex=apex, offset=offset, frame_numbers=numbers,
                                  frame_paths=paths, apex_method="annotated" if apex is not None else "unspotted",
                                  clip_dir=folder, notes=tuple(problems),
                                  subject_dir=None,
                                  listed_in="clip list"))
        if not out:
            raise ValueError(f"{csv}: no clips listed")
        _check_spellings(csv, subjects)
        return out

    def records(self, composite_only: bool = True, subjects: Iterable[str] = ()) -> list[ClipRecord]:
        """The listed clips, in file order, labelled or not (``composite_only`` does not apply to a clip list:
        every listed clip is yours to prepare).

        Args:
            composite_only: ignored (see above).
            subjects: restrict to these subjects (``p01`` or ``clips/p01``); empty = all.
        """
        if self._records is None:
            self._records = self._read()
        wanted = {s.split("/")[-1] for s in subjects}
        return [r for r in self._records if not wanted or r.subject.split("/", 1)[1] in wanted]
