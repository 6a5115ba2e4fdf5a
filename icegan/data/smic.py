"""SMIC-HS loader: ``SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/reg_image106114.bmp``.

The 164 SMIC-HS clips of the MEGC2019 composite (70 negative / 51 positive / 43 surprise,
16 subjects) take their class from the folder name (a clip folder whose own name, ``s2_sur_02``, says another class
or subject is skipped as misfiled, with a layout problem). No apex is annotated: onset is the first frame,
offset the last, and the apex is spotted by :mod:`icegan.data.spotting` (the method is stored in
``ClipRecord.apex_method``; ``"unspotted"`` until :meth:`SMIC.records` is asked to spot).
The ``SMIC-HS-E_annotation.xlsx`` sheet (157 clips of the extended release) is not needed for the
composite; :func:`icegan.data.sheets.read_smic_sheet` reads it for users who want it.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional

from .base import DatasetLayoutError, find_dir, missing_root_message
from .records import CLASS3_IDS, FRAME_EXTENSIONS, ClipRecord, list_frames
from .sheets import _SMIC_NAME_CLASS, smic_clip_name

log = logging.getLogger("icegan.data")

SMIC_CLASSES = ("negative", "positive", "surprise")
#: the SMIC-HS clips of the MEGC2019 composite: subject → its (negative, positive, surprise) clip counts; 16 subjects,
#: 164 clips (70 / 51 / 43). Counted once from the composite's label list (``megc2019_htnet``'s
#: ``combined_3_class2_for_optical_flow.csv``, whose ``s01`` is subject ``s1`` here: :meth:`SMIC.subject_id`); ids and
#: counts only. ``icegan data check --composite-only`` compares a tree with it (:meth:`SMIC.composite_gaps`).
SMIC_COMPOSITE: dict[str, tuple[int, int, int]] = {
    "smic/s1": (3, 2, 1), "smic/s2": (0, 1, 5), "smic/s3": (22, 11, 6), "smic/s4": (10, 4, 5), "smic/s5": (1, 0, 1),
    "smic/s6": (2, 0, 2), "smic/s8": (9, 4, 0), "smic/s9": (0, 1, 3), "smic/s11": (3, 3, 1), "smic/s12": (0, 8, 1),
    "smic/s13": (0, 10, 0), "smic/s14": (3, 2, 5), "smic/s15": (1, 1, 2), "smic/s18": (2, 0, 5),
    "smic/s19": (0, 1, 1), "smic/s20": (14, 3, 5)}
#: each class's code in SMIC-HS clip names (``surprise`` → ``sur``, as in ``s18_sur_03``)
_SMIC_CLASS_CODE = {cls: code for code, cls in _SMIC_NAME_CLASS.items()}


class SMIC:
    """SMIC-HS (Li et al. 2013) from its folder tree.

    Args:
        root: the ``HS`` folder (holding ``s1`` ... ``s20``), or a folder containing
            ``SMIC_all_cropped/HS`` or ``HS``.
        annotations: accepted for symmetry with the other loaders, and not read (class from folders): a path given
            is checked to exist, and a warning says that it is not read.

    Raises:
        DatasetLayoutError: root missing or without ``sN`` subject folders.
        FileNotFoundError: ``annotations`` given but no such file or folder (the message names it).
    """

    name = "smic"

    def __init__(self, root: str | Path, annotations: Optional[str | Path] = None):
        root = Path(root)
        if not root.is_dir():
            raise DatasetLayoutError(missing_root_message("smic", root))
        #: the annotations given, which are not read (``icegan data check`` says so); None when none was given
        self.unread_sheet: Optional[Path] = None
        if annotations is not None:
            sheet = Path(annotations)
            if not sheet.exists():
                raise FileNotFoundError(f"SMIC annotations not found: {sheet}; SMIC-HS clips take their class from "
                                        f"their folders and no sheet is read: leave the annotations out")
            self.unread_sheet = sheet
            log.warning("smic: the annotations %s are not read: SMIC-HS clips take their class from their folder "
                        "(negative/positive/surprise) and their apex is spotted; icegan.data.sheets.read_smic_sheet "
                        "reads the SMIC-HS-E sheet for those who want it", sheet)
        self.given_root = root
        self.root = self.resolve_root(root)
        self.sheet_path = None      # the class comes from the folders; a sheet given is not read (nor reported)
        #: problems met while walking the tree: list of {"clip", "problem"}
        self.layout_problems: list[dict] = []

    @staticmethod
    def looks_like_subject(name: str) -> bool:
        """Whether a folder name is a SMIC-HS subject folder: ``s`` and ASCII digits, in any case (``s1``, ``S20``;
        not ``s١``)."""
        return re.fullmatch(r"s[0-9]+", name, re.IGNORECASE) is not None

    @classmethod
    def resolve_root(cls, root: Path) -> Path:
        """The folder holding the subject folders: the first of ``root/SMIC_all_cropped/HS``, ``root/HS`` and ``root``
        that is a folder with at least one subject folder (:meth:`looks_like_subject`) in it.

        Raises:
            DatasetLayoutError: none is (the message names ``root`` and an example path of the official layout).
        """
        for cand in (root / "SMIC_all_cropped" / "HS", root / "HS", root):
            if cand.is_dir() and any(cls.looks_like_subject(p.name) for p in cand.iterdir() if p.is_dir()):
                return cand
        raise DatasetLayoutError(f"{root}: no SMIC-HS subject folders found (expected e.g. {cls.example_layout()})")

    @staticmethod
    def example_layout() -> str:
        """An official-layout frame path for error messages: ``SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/...``."""
        return "SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/reg_image106114.bmp"

    @staticmethod
    def subject_id(name: str) -> str:
        """The subject a SMIC-HS subject folder name is (:meth:`looks_like_subject`): ``s`` and its number without
        leading zeros, in lower case (``s01``, ``S1`` → ``s1``), as its clip names say it
        (:func:`icegan.data.sheets.smic_clip_name`); another name in lower case."""
        return f"s{int(name[1:])}" if SMIC.looks_like_subject(name) else name.lower()

    def subject_folders(self) -> list[str]:
        """Subject folder names in the root, as written on disk (``s1``, ``S2``, ``s01``), sorted by subject number;
        of folders naming one subject (``s1`` and ``s01``), the one named as :meth:`subject_id` says first."""
        return sorted((p.name for p in self.root.iterdir() if p.is_dir() and self.looks_like_subject(p.name)),
                      key=lambda s: (int(s[1:]), s != self.subject_id(s), s))

    def disk_clips(self) -> list[tuple[str, str]]:
        """``(subject, clip)`` of every clip folder on disk under ``<subject>/micro/<negative|positive|surprise>/``
        (class folders in any case), by :meth:`subject_folders` then class folder then clip folder, as written on
        disk: also those :meth:`records` does not read (misfiled, a twin differing only in letter case, in a second
        folder of one subject); ``subject`` is :meth:`subject_id` (``s1`` for ``s01``), ``clip`` as on disk.
        A subject folder without ``micro/`` holds none. Reads no frame and logs nothing."""
        out = []
        for s in self.subject_folders():
            micro = find_dir(self.root / s, "micro")
            if micro.is_dir():
                out += [(self.subject_id(s), clip.name)
                        for cdir in sorted(p for p in micro.iterdir() if p.is_dir() and p.name.lower() in SMIC_CLASSES)
                        for clip in sorted(p for p in cdir.iterdir() if p.is_dir())]
        return out

    def composite_gaps(self, records: list[ClipRecord]) -> tuple[dict[str, int], dict[str, str]]:
        """What the tree lacks of the MEGC2019 composite (:data:`SMIC_COMPOSITE`), which names no clip: SMIC has no
        sheet, so its subjects and clip counts stand for one (``icegan data check --composite-only``).

        Args:
            records: this tree's clip records (:meth:`records`).

        Returns:
            ``(missing, short)``: ``missing``, subject (``smic/s3``) → its composite clip count, for each composite
            subject without a subject folder (``s3``, ``s03``, ``S3``) in the root; ``short``, subject → what its
            folder lacks, for each other composite subject with fewer clips read in a class than the composite has
            (``"fewer clips in <folder> than the MEGC2019 composite's 39: negative 21 of 22 (copy the missing clip
            folders in)"``). A clip beyond the composite's counts is not said.
        """
        folders: dict[str, str] = {}                   # subject → the folder read as it (s1 before s01)
        for name in self.subject_folders():
            folders.setdefault(f"smic/{self.subject_id(name)}", name)
        have = Counter((r.subject, r.emotion) for r in records)
        missing: dict[str, int] = {}
        short: dict[str, str] = {}
        for subject, counts in SMIC_COMPOSITE.items():
            if subject not in folders:
                missing[subject] = sum(counts)
                continue
            lacking = [f"{cls} {have[subject, cls]} of {n}" for cls, n in zip(SMIC_CLASSES, counts)
                       if have[subject, cls] < n]
            if lacking:
                short[subject] = (f"fewer clips in {self.root / folders[subject]} than the MEGC2019 composite's "
                                  f"{sum(counts)}: {', '.join(lacking)} (copy the missing clip folders in)")
        return missing, short

    @staticmethod
    def check_scope(composite_only: bool) -> str:
        """What ``records(composite_only)`` covers, in words (``icegan data check``'s report)."""
        return "composite clips" if composite_only else "all micro clips"

    def records(self, composite_only: bool = True, subjects: Iterable[str] = (),
                spot_apex: bool = False, flow_method: str = "dis", detector: str = "hog") -> list[ClipRecord]:
        """Clip records of the folder tree, by subject number then class then clip name.

        Args:
            composite_only: unused (every SMIC-HS micro clip is in the composite); kept for symmetry.
            subjects: restrict to these subjects (``s1`` or ``smic/s1``).
            spot_apex: spot the apex now (reads every frame; ~seconds per clip); otherwise
                ``apex`` is None and ``apex_method`` is ``"unspotted"``.

        Folders that are not ``micro/<negative|positive|surprise>/<clip>``, and frame files lying in a class folder
        itself (no clip folder), are reported in :attr:`layout_problems` and logged, never silently dropped. So is a
        misfiled clip folder, whose name
        (``s2_sur_02``, :func:`icegan.data.sheets.smic_clip_name`) says another class than the class folder it is in,
        or another subject than its subject folder (which would put one person's clip in another's LOSO fold): it is
        skipped, its key ``smic/<subject folder>/micro/<class folder>/<clip>``, and listed with its reason in
        :attr:`skipped_clip_folders` (``icegan data check`` counts it on disk and as skipped). A clip name not of that
        form takes its class and subject from its folders. Each clip folder of a class folder that is no class
        (``micro/surprised/s1_sur_01``) is skipped so too, its reason naming the class folder (whose layout problem
        says it: no problem of its own), and the class its name says (``surprise``, or None for a name not of that
        form) kept in :attr:`class_folder_skips`, key → class, which ``icegan data check`` counts by class.

        A subject is ``smic/s<number>`` without leading zeros (:meth:`subject_id`: folder ``s01`` is ``smic/s1``). Of
        two folders naming one subject (``s1`` and ``s01``, ``s1`` and ``S1``: two copies merged) the first of
        :meth:`subject_folders` is read and the other is not: a layout problem keyed ``smic/<folder>`` names both.
        Of clip folders of one subject whose names are equal but for letter case (``negative/s1_ne_01`` and
        ``Negative/s1_ne_01``, ``s1_po_01`` and ``S1_PO_01``: one clip copied twice), one is read: the one in a class
        folder named in lower case, then the one named in lower case, then the first by class folder and clip name;
        each other is skipped as a misfiled one is, its problem naming both folders. Such folders in the folders of
        different classes (``negative/take1`` and ``positive/take1``, names not of the ``s1_ne_01`` form, which a
        misfiled clip has) leave the clip's class ambiguous: each of them is skipped so, none read.
        """
        from .spotting import spot_record_apex
        wanted = {self.subject_id(s.split("/")[-1]) for s in subjects}
        self.layout_problems = []
        self.skipped_clip_folders: list[tuple[str, str]] = []       # (key, reason) of misfiled clip folders
        self.class_folder_skips: dict[str, Optional[str]] = {}      # key → class its name says, of those below
        out = []
        read_as: dict[str, str] = {}                           # s1 → the folder read as subject s1
        for s in self.subject_folders():
            number_name = self.subject_id(s)                   # s1 for s1, S1, s01 (one person, one LOSO subject)
            if wanted and number_name not in wanted:
                continue
            if number_name in read_as:
                self._problem(f"smic/{s}", f"subject folders {self.root / read_as[number_name]} and {self.root / s} "
                                           f"both name subject {number_name}: {s} is not read (keep one folder per "
                                           f"subject: move its clips into {read_as[number_name]})")
                continue
            read_as[number_name] = s
            micro = find_dir(self.root / s, "micro")
            if not micro.is_dir():
                self._problem(f"smic/{s}", f"no 'micro' folder in {self.root / s}")
                continue
            found = []                                         # (class folder, class, clip folder) to read
            for cdir in sorted(p for p in micro.iterdir() if p.is_dir()):
                emotion = cdir.name.lower()                    # Negative/ as negative/ (a copy's case)
                if emotion not in SMIC_CLASSES:
                    self._problem(f"smic/{s}/micro/{cdir.name}",
                                  f"class folder '{cdir.name}' is not one of {SMIC_CLASSES}; skipped")
                    why = (f"in class folder {cdir}, which is not one of {SMIC_CLASSES}: not read (rename the "
                           f"folder to its class)")
                    for clip in sorted(p for p in cdir.iterdir() if p.is_dir()):     # said by the folder's problem
                        key = f"smic/{s}/micro/{cdir.name}/{clip.name}"
                        self.skipped_clip_folders.append((key, why))
                        named = smic_clip_name(clip.name)
                        self.class_folder_skips[key] = named[1] if named else None
                    continue
                loose = sorted(p.name for p in cdir.iterdir() if p.is_file() and not p.name.startswith("._")
                               and p.suffix.lower() in FRAME_EXTENSIONS)
                if loose:                                      # frames of a clip whose folder is missing
                    self._problem(f"smic/{s}/micro/{cdir.name}",
                                  f"{cdir} holds {len(loose)} frame files ({', '.join(loose[:3])}"
                                  f"{', ...' if len(loose) > 3 else ''}) directly, not in a clip folder: they are not "
                                  f"read (put each clip's frames in a folder of their own, named like "
                                  f"{number_name}_{_SMIC_CLASS_CODE[emotion]}_01)")
                for clip in sorted(p for p in cdir.iterdir() if p.is_dir()):
                    misfiled = self._misfiled(clip, number_name, emotion)
                    if misfiled:
                        self._skip(f"smic/{s}/micro/{cdir.name}/{clip.name}", misfiled)
                        continue
                    found.append((cdir, emotion, clip))
            # clip folders named so but for letter case (negative/s1_ne_01 and Negative/s1_ne_01, s1_po_01 and
            # S1_PO_01) in folders of one class are one clip: the one in the lower-case class folder, named in lower
            # case, is read; in folders of different classes (negative/take1 and positive/take1, names not of the
            # s1_ne_01 form) the clip's class is ambiguous: none is read
            twins: dict[str, list[tuple[str, Path]]] = {}      # clip name in lower case → (class, folder), read first
            for _, emotion, clip in sorted(found, key=lambda f: (f[0].name != f[1], f[2].name != f[2].name.lower(),
                                                                 f[0].name, f[2].name)):
                twins.setdefault(clip.name.lower(), []).append((emotion, clip))
            for cdir, emotion, clip in found:
                first = twins[clip.name.lower()][0][1]
                classes = sorted({e for e, _ in twins[clip.name.lower()]})
                if len(classes) > 1:
                    folders = [str(f) for _, f in twins[clip.name.lower()]]
                    self._skip(f"smic/{s}/micro/{cdir.name}/{clip.name}",
                               f"clip folders {', '.join(folders[:-1])} and {folders[-1]} name one clip, "
                               f"smic/{number_name}/{first.name}, in the folders of different classes "
                               f"({', '.join(classes)}): its class is ambiguous, so none of them is read (keep the "
                               f"clip in the folder of its class only, or rename the folder of another clip)")
                    continue
                if first != clip:
                    self._skip(f"smic/{s}/micro/{cdir.name}/{clip.name}",
                               f"clip folders {first} and {clip} are one clip, smic/{number_name}/{first.name} (names "
                               f"equal but for letter case): {clip} is not read (keep one folder per clip: "
                               f"merge it into {first})")
                    continue
                numbers, paths, problems = list_frames(clip)
                rec = ClipRecord(
                    dataset="smic", subject=f"smic/{number_name}", clip=clip.name, emotion=emotion,
                    class3=CLASS3_IDS[emotion],
                    onset=numbers[0] if numbers else None, apex=None,
                    offset=numbers[-1] if numbers else None,
                    frame_numbers=numbers, frame_paths=paths, apex_method="unspotted",
                    clip_dir=clip, notes=tuple(problems), subject_dir=self.root / s,
                    listed_in="folder tree")
                if spot_apex and len(numbers) >= 2:
                    try:
                        rec = spot_record_apex(rec, method=flow_method, detector=detector)
                    except ValueError as exc:
                        self._problem(rec.key, f"apex spotting failed: {exc}")
                out.append(rec)
        return out

    @staticmethod
    def _misfiled(clip: Path, subject: str, emotion: str) -> Optional[str]:
        """Why clip folder ``clip``, found in subject folder ``subject`` (``s2``) under class folder ``emotion``, is
        misfiled by its name's reading (:func:`icegan.data.sheets.smic_clip_name`); None when it agrees, or the name
        is not of that form."""
        named = smic_clip_name(clip.name)
        if named is None:
            return None
        said = []
        if named[0] != subject:
            said.append(f"its name says subject {named[0]}, but it is in subject {subject}'s folder")
        if named[1] != emotion:
            said.append(f"its name says {named[1]}, but it is in the {emotion} folder")
        if not said:
            return None
        return (f"clip folder {clip}: {'; '.join(said)}; skipped (move it to {named[0]}'s micro/{named[1]}/ folder, "
                f"or rename it if its name is the mistake)")

    def _problem(self, clip: str, problem: str) -> None:
        log.warning("%s: %s", clip, problem)
        self.layout_problems.append({"clip": clip, "problem": problem})

    def _skip(self, key: str, reason: str) -> None:
        """Skip clip folder ``key`` (``smic/<subject folder>/micro/<class folder>/<clip>``) for ``reason``: a layout
        problem and an entry of :attr:`skipped_clip_folders`."""
        self._problem(key, reason)
        self.skipped_clip_folders.append((key, reason))


def smic_records(root: str | Path, spot_apex: bool = False) -> list[ClipRecord]:
    """SMIC-HS composite clip records: ``SMIC(root).records(spot_apex=spot_apex)``."""
    return SMIC(root).records(spot_apex=spot_apex)
