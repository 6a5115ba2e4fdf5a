"""Shared machinery of the dataset loaders: root and sheet resolution, sheet row → :class:`ClipRecord`."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Iterable, Iterator, Optional

from ..paths import default_data_root, shared_data_root_or_none, unexpanded_note
from .composite import (composite_class, composite_emotion, miswritten_frame_cell, sheet_lookalikes,
                        unknown_emotion)
from .records import ClipRecord, list_frames, subject_number
from .sheets import SheetRow, official_sheet_in, read_sheet, sheet_names

log = logging.getLogger("icegan.data")


class DatasetLayoutError(FileNotFoundError):
    """A dataset root does not exist or does not look like the official layout."""


def missing_root_message(name: str, root: str | Path, given_by: Optional[str] = None) -> str:
    """The error for a dataset root that is not a folder: what is missing and how to point at the release.

    Args:
        name: the dataset (``casme2``, ``samm``, ``smic``).
        root: the folder looked for.
        given_by: how the command at hand took the root (``--root`` for ``icegan data check``); None: from a
            config, whose ``root:`` and the ``{data_root}`` / ``{shared_data}`` placeholders in it are named.

    A root holding a ``~`` or ``$`` that nothing expanded (``--root=~/CASME2``: the shell leaves it) is said to be
    one, with the full path to write (:func:`icegan.paths.unexpanded_note`). The official layout is shown by a frame
    path of it (the loader's ``example_layout``), so that the message needs no document of the repository.
    """
    from .casme2 import CASME2        # here: they import this module
    from .samm import SAMM
    from .smic import SMIC
    loaders = {c.name: c for c in (CASME2, SAMM, SMIC)}
    example = f" (e.g. {loaders[name].example_layout()} in it)" if name in loaders else ""
    where = f"{root} is a file, not a folder" if Path(root).is_file() else f"not found: {root}{unexpanded_note(root)}"
    head = (f"{name} root {where}. Put or symlink your copy of the {name} release there, in its official "
            f"layout{example}, or ")
    if given_by:
        return head + f"give its folder with {given_by}"
    return head + (f"point at it with the `root:` of the {name} entry in the config's dataset list "
                   f"{_root_keys(CONFIG_DATASETS)}; in a root, {{data_root}} is "
                   f"{default_data_root()} (set ICEGAN_DATA to move it) and {{shared_data}} is "
                   f"{shared_data_root_or_none() or 'unset'} (ICEGAN_SHARED_DATA)")


#: the key of the dataset list in the configs that hold it in their ``data`` section (train.py, icegan train,
#: icegan features, icegan gan train), as the root and sheet hints name it; icegan prepare's config holds the list at
#: its top, as ``datasets`` (:func:`hint_for_command`)
CONFIG_DATASETS = "data.prepare.datasets"


def _root_keys(datasets: str) -> str:
    """How a dataset entry's root is set, for the dataset list at key ``datasets`` (in parentheses)."""
    return f"({datasets}; on the command line {datasets}.N.root=DIR, N its place from 0)"


def _sheet_keys(datasets: str) -> str:
    """How a dataset entry's sheet is set, for the dataset list at key ``datasets``."""
    return (f"the `annotations:` of the dataset's entry in the config (on the command line "
            f"{datasets}.N.annotations=FILE, N its place from 0)")


#: how to point at a coding sheet, for the errors of :func:`find_sheet`
_SHEET_HINT = "Point at your copy of the official sheet ({name}) with " + _sheet_keys(CONFIG_DATASETS)


def hint_for_command(text: str, command: str) -> str:
    """``text`` (an error message) with the hints of :func:`missing_root_message` and :func:`find_sheet` in it,
    which name the override keys of a config with ``data.prepare.datasets`` (:data:`CONFIG_DATASETS`), worded for
    ``command``: ``datasets.N.root=DIR`` / ``datasets.N.annotations=FILE`` for ``"icegan prepare"`` (its config
    holds the list at its top), ``--annotations FILE`` for ``"icegan data check"`` (its root's hint names
    ``--root`` already: ``given_by``). Other text, and other commands, are returned as they are."""
    if command == "icegan prepare":
        return (text.replace(_root_keys(CONFIG_DATASETS), _root_keys("datasets"))
                .replace(_sheet_keys(CONFIG_DATASETS), _sheet_keys("datasets")))
    if command == "icegan data check":
        return text.replace(_sheet_keys(CONFIG_DATASETS), "--annotations FILE")
    return text


def find_sheet(explicit: Optional[str | Path], name: str, root: Path) -> Path:
    """The annotation sheet: ``explicit`` if given, else the official file ``name`` (or its CSV export
    ``<stem>.csv`` beside it, :func:`icegan.data.sheets.official_sheet_in`, the ``.xlsx`` first) found in the root,
    its parents (up to two levels; each folder once: ``.`` is its own parent) or an ``annotations/`` folder beside
    them.

    Raises:
        FileNotFoundError: ``explicit`` does not exist, or nothing was found (message lists where it looked, the
            files there named as the sheet but for case, extension or a suffix such as `` (1)``
            (:func:`icegan.data.composite.sheet_lookalikes`), and how to pass the sheet).
    """
    if explicit is not None:
        p = Path(explicit)
        if p.is_dir():
            raise FileNotFoundError(f"annotation sheet {p} is a folder, not a file: give the sheet file in it, e.g. "
                                    f"{p / name}")
        if not p.is_file():
            raise FileNotFoundError(f"annotation sheet not found: {p}. {_SHEET_HINT.format(name=name)}")
        return p
    looked, alike, seen = [], [], set()
    for base in [root, root.parent, root.parent.parent]:
        resolved = base.resolve()
        if resolved in seen:                                # '.' is its own parent, and '/': searched once
            continue
        seen.add(resolved)
        for folder in (base, base / "annotations"):
            looked.append(str(folder / name))
            found = official_sheet_in(folder, name)
            if found is not None:
                return found
            alike += sheet_lookalikes(folder, name)         # a browser's "... (1).xlsx", another case, an .xls
    raise FileNotFoundError(f"annotation sheet {name} (or {sheet_names(name)[1]}) not found (looked in {looked}"
                            + (f"; {'; '.join(alike)}" if alike else "") + f"). {_SHEET_HINT.format(name=name)}")


def find_dir(parent: Path, name: str) -> Path:
    """``parent / name``; when no such folder exists, the one folder of ``parent`` whose name equals ``name`` but for
    case (``Sub01`` for ``sub01``, ``ep03_02f`` for ``EP03_02f``: a copy made on a case-insensitive file system, or
    renamed by hand), so that the sheet's names find it on any file system. ``parent / name`` (absent) when there is
    none, or several that differ only in case (:func:`case_twins`; said by :func:`case_twins_text`)."""
    exact = parent / name
    if exact.is_dir() or not parent.is_dir():
        return exact
    alike = _case_alike(parent, name)
    return alike[0] if len(alike) == 1 else exact


def _case_alike(parent: Path, name: str, listing: Optional[dict[Path, list[Path]]] = None) -> list[Path]:
    """The folders of ``parent`` whose names equal ``name`` but for letter case, sorted by name. ``listing``: a dict
    the caller keeps (parent → its folders), so that a parent is listed once for many names.

    Raises:
        OSError: ``parent`` cannot be listed.
    """
    if listing is None:
        alike = (p for p in parent.iterdir() if p.name.lower() == name.lower() and p.is_dir())
    else:
        if parent not in listing:
            listing[parent] = [p for p in parent.iterdir() if p.is_dir()]
        alike = (p for p in listing[parent] if p.name.lower() == name.lower())
    return sorted(alike, key=lambda p: p.name)


def case_twins(parent: Path, name: str, listing: Optional[dict[Path, list[Path]]] = None) -> list[Path]:
    """The folders of ``parent`` whose names equal ``name`` but for letter case (``sub02``, ``Sub02``, ``SUB02``),
    sorted by name, when there are two or more (a subject copied twice on a case-sensitive file system): of those
    :func:`find_dir` reads the one named exactly ``name``, or none; ``[]`` when there are fewer than two, or
    ``parent`` cannot be listed. ``listing``: a dict kept across calls (parent → its folders) so that each parent is
    listed once (:func:`icegan.data.check.record_problems` of many clips of one subject). Never raises."""
    try:
        alike = _case_alike(parent, name, listing)
    except OSError:
        return []
    return alike if len(alike) > 1 else []


def case_twins_text(parent: Path, name: str, listing: Optional[dict[Path, list[Path]]] = None) -> Optional[str]:
    """What to say of the folders of ``parent`` named ``name`` but for letter case (:func:`case_twins`), or None when
    there are not two: ``"duplicate folders differing only in case in /data/casme2: Sub02, sub02; only sub02 is
    read, Sub02 not used: merge them into one folder sub02"``, or, when none is named exactly ``name``, ``"...;
    none of them is read (none is named sub02 exactly): merge them into one folder sub02"``. For
    ``icegan data check`` and the skip reasons of ``icegan prepare``."""
    twins = case_twins(parent, name, listing)
    if not twins:
        return None
    names = [p.name for p in twins]
    head = f"duplicate folders differing only in case in {parent}: {', '.join(names)}"
    if name in names:
        unused = [n for n in names if n != name]
        return f"{head}; only {name} is read, {', '.join(unused)} not used: merge them into one folder {name}"
    return f"{head}; none of them is read (none is named {name} exactly): merge them into one folder {name}"


class SheetDataset:
    """Base of the sheet-driven loaders (CASME II, SAMM).

    Subclasses set ``name`` (dataset id), ``sheet_name`` (official sheet file), ``layout_dirs``
    (official folder names that may sit inside the given root) and implement :meth:`looks_like_subject`.
    """

    name: str = ""
    sheet_name: str = ""
    layout_dirs: tuple[str, ...] = ()

    def __init__(self, root: str | Path, annotations: Optional[str | Path] = None):
        root = Path(root)
        if not root.is_dir():
            raise DatasetLayoutError(missing_root_message(self.name, root))
        self.given_root = root
        self.root = self.resolve_root(root)
        self.sheet_path = find_sheet(annotations, self.sheet_name, root)
        self._rows: Optional[list[SheetRow]] = None
        #: rows left out of the composite for an emotion the sheet does not use, filled by :meth:`records`
        self.layout_problems: list[dict] = []

    @classmethod
    def resolve_root(cls, root: Path) -> Path:
        """The folder holding the subject folders: ``root`` itself or one of ``layout_dirs`` in it.

        Raises:
            DatasetLayoutError: no subject folders found (message names the root and what was expected).
        """
        def has_subjects(d: Path) -> bool:
            return any(cls.looks_like_subject(p.name) for p in d.iterdir() if p.is_dir())
        inner = next((root / d for d in cls.layout_dirs if (root / d).is_dir()), None)
        for d in (inner, root):
            if d is not None and has_subjects(d):
                return d
        looked = inner or root          # an official folder without subject folders: say what it holds instead
        held = sorted(p.name + ("/" if p.is_dir() else "") for p in looked.iterdir())
        renames = {p.name: cls.padded_subject(p.name) for p in looked.iterdir() if p.is_dir()}
        renames = {a: b for a, b in sorted(renames.items()) if b is not None}
        renames = {a: b for a, b in renames.items() if a == next(x for x, y in renames.items() if y == b)}  # 1 per name
        lettered = next((b for a, b in renames.items() if subject_number(a)[0] != subject_number(b)[0]), None)
        named = f"letters and a zero-padded number ({lettered})" if lettered else "a zero-padded number"
        fix = (f"; subject folders are named with {named}: rename "
               + ", ".join(f"{a} to {b}" for a, b in list(renames.items())[:6])
               + (", ..." if len(renames) > 6 else "")) if renames else ""
        raise DatasetLayoutError(
            f"{looked}: no {cls.name} subject folders found (expected e.g. {cls.example_layout()}); it holds "
            + (", ".join(held[:6]) + (", ..." if len(held) > 6 else "") if held else "nothing") + fix)

    @classmethod
    def padded_subject(cls, name: str) -> Optional[str]:
        """The subject folder name that ``name`` is but for the zero padding of its number (SAMM's ``6`` → ``006``)
        or, for a name of digits alone, its letters too (CASME II's ``1`` → ``sub01``, the letters of the subject
        folder in :meth:`example_layout`), or None (a name of no subject, or one that is a subject folder already:
        CASME II's ``sub1`` is one, as :meth:`looks_like_subject` takes ``sub`` and any digits)."""
        parts = subject_number(name)
        if parts is None or cls.looks_like_subject(name):
            return None
        letters = [parts[0]]
        if not parts[0]:            # digits alone: the letters may be left out as well (1 for sub01)
            example = next((d for d in cls.example_layout().split("/") if cls.looks_like_subject(d)), None)
            if example is not None and subject_number(example) and subject_number(example)[0]:
                letters.append(subject_number(example)[0])
        for prefix in letters:
            for width in (2, 3, 4):
                cand = f"{prefix}{parts[1]:0{width}d}"
                if cls.looks_like_subject(cand):
                    return cand
        return None

    @staticmethod
    def looks_like_subject(name: str) -> bool:  # pragma: no cover - overridden
        """Whether a folder name is a subject folder of this dataset (e.g. ``sub01``); each subclass implements it.

        Raises:
            NotImplementedError: in this base class.
        """
        raise NotImplementedError

    @staticmethod
    def example_layout() -> str:  # pragma: no cover - overridden
        """An official-layout frame path, named in :meth:`resolve_root`'s error; empty here, subclasses override it."""
        return ""

    # -- sheet ---------------------------------------------------------------------------------
    @staticmethod
    def check_scope(composite_only: bool) -> str:
        """What ``records(composite_only)`` covers, in words (``icegan data check``'s report)."""
        return "composite clips" if composite_only else "all sheet rows"

    def sheet_rows(self) -> list[SheetRow]:
        """Rows of the annotation sheet (read once)."""
        if self._rows is None:
            self._rows = read_sheet(self.name, self.sheet_path)
        return self._rows

    def subject_folders(self) -> list[str]:
        """Subject folder names present on disk, sorted."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.looks_like_subject(p.name))

    def disk_clips(self) -> list[tuple[str, str]]:
        """``(subject, clip)`` folders present on disk."""
        out = []
        for s in self.subject_folders():
            out += [(s, p.name) for p in sorted((self.root / s).iterdir()) if p.is_dir()]
        return out

    def clip_dir(self, subject: str, clip: str) -> Path:
        """The clip's folder; subject and clip folder names are matched ignoring case when they differ only in case
        (:func:`find_dir`)."""
        return find_dir(find_dir(self.root, subject), clip)

    def record(self, row: SheetRow, class3: Optional[int]) -> ClipRecord:
        """Build the record of one sheet row (frames listed from disk; empty when the folder is absent)."""
        d = self.clip_dir(row.subject, row.clip)
        numbers, paths, problems = list_frames(d) if d.is_dir() else ((), (), [])
        return ClipRecord(
            dataset=self.name, subject=f"{self.name}/{row.subject}", clip=row.clip,
            emotion=row.emotion, class3=class3, onset=row.onset, apex=row.apex, offset=row.offset,
            frame_numbers=numbers, frame_paths=paths, apex_method="annotated",
            class5=self.class5(row), objective_class=row.objective_class,
            action_units=row.action_units, clip_dir=d, notes=tuple(row.notes + problems),
            subject_dir=find_dir(self.root, row.subject), listed_in="sheet")

    def class5(self, row: SheetRow) -> Optional[int]:
        """The row's CASME II 5-class id for :attr:`ClipRecord.class5`: None here (datasets without one, e.g. SAMM);
        :class:`~icegan.data.casme2.CASME2` overrides it."""
        return None

    def records(self, composite_only: bool = True, subjects: Iterable[str] = ()) -> list[ClipRecord]:
        """Clip records of the sheet, in sheet order.

        Args:
            composite_only: keep only MEGC2019 composite clips (class3 set); otherwise every sheet
                row, with ``class3`` None for clips outside the composite.
            subjects: restrict to these subjects (``sub01`` or ``casme2/sub01``); empty = all.

        Records are returned whether or not their frames are on disk; use
        :func:`icegan.data.check.record_problems` to see which are usable. A composite row left out by the MEGC2019
        rules is logged at INFO level, but one whose onset or apex cell holds a typo (``416.7``, or in SAMM an empty
        cell; not the release's ``/``, :func:`miswritten_frame_cell`) is logged as a WARNING naming the sheet, the
        row and the cell's value, and listed in ``layout_problems``.
        """
        wanted = {s.split("/")[-1] for s in subjects}
        out = []
        ruled_out = []                      # composite emotions the MEGC2019 rules leave out (an apex cell '/')
        self.layout_problems = []
        for row in self.sheet_rows():
            if wanted and row.subject not in wanted:
                continue
            c3, why = composite_class(row)
            unknown = unknown_emotion(row)
            if composite_only and c3 is None:
                if unknown:                 # a typo, not a label outside the composite: never dropped unseen
                    log.warning("%s/%s/%s: %s", self.name, row.subject, row.clip, unknown)
                    self.layout_problems.append({"clip": f"{self.name}/{row.subject}/{row.clip}", "problem": unknown})
                elif composite_emotion(row) is not None:    # a composite emotion its rules leave out
                    typo = miswritten_frame_cell(row)
                    if typo:            # not the release's '/' (an apex not coded): a cell to correct, said
                        problem = f"{typo} in sheet {self.sheet_path}: the clip is left out; correct the cell"
                        log.warning("%s/%s/%s: %s", self.name, row.subject, row.clip, problem)
                        self.layout_problems.append({"clip": f"{self.name}/{row.subject}/{row.clip}",
                                                     "problem": problem})
                    else:
                        ruled_out.append(f"{row.subject}/{row.clip} ({why})")
                continue
            rec = self.record(row, c3)
            if unknown:
                rec = dataclasses.replace(rec, notes=rec.notes + (unknown,))
            out.append(rec)
        if ruled_out:
            log.info("%s: %d sheet row(s) of composite emotions left out of the composite by its rules: %s", self.name,
                     len(ruled_out), "; ".join(ruled_out))
        return out

    def __iter__(self) -> Iterator[ClipRecord]:
        return iter(self.records())

