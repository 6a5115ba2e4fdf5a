"""Dataset check: what is on disk versus what the annotation sheet says.

:func:`record_problems` lists the problems of one clip with a severity: ``"skip"`` (the clip cannot
be used: folder missing, onset or apex frame absent, unreadable or held by two files, an apex on the onset frame (no
onset→apex motion: MEGC2019 excludes such a clip, sub05/EP09_05f of CASME II), no frames) or ``"warn"``
(usable, but e.g. truncated before the offset, with gaps between the onset and the offset or apex, an offset
before the apex (a note of the sheet or clip list), or two files for a frame other than the onset and apex).
:func:`check_dataset` runs it over a whole dataset and builds the report behind ``icegan data check``; nothing is
ever dropped silently and no clip can stop the check mid-way.
"""
from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .base import case_twins_text
from .composite import miswritten_frame_cell
from .records import (CLASS3_NAMES, FRAME_EXTENSIONS, ONE_SIZE, OTHER_IMAGE_EXTENSIONS, ClipRecord,
                      dangling_link_target, duplicate_frame, frame_number, ranges_text, subject_number)

log = logging.getLogger("icegan.data")

SKIP, WARN = "skip", "warn"


@dataclass
class Problem:
    """One problem of one clip. ``severity`` is ``"skip"`` (unusable) or ``"warn"`` (usable). ``sheet_coding``: a
    ``skip`` due to the sheet row's own onset/apex cells (an onset or apex not a frame number, but not a mistyped cell
    such as ``5.7``; an apex before or on the onset), which the MEGC2019 rules leave out (the official CASME II
    sheet's sub04/EP12_01f and sub05/EP09_05f), not to the copy on disk: a clip skipped for such problems alone does
    not make ``icegan data check`` exit 1 (:meth:`CheckReport.problems_found`). Not in :meth:`as_dict`."""

    clip: str
    problem: str
    severity: str
    sheet_coding: bool = False

    def as_dict(self) -> dict:
        """``{"clip", "problem", "severity"}``: a new JSON-ready dict (an entry of ``clips_with_problems``)."""
        return {"clip": self.clip, "problem": self.problem, "severity": self.severity}


def _unreadable_reason(path: Path, data: Optional[bytes] = None) -> Optional[str]:
    """Why the frame does not decode or is cut short, as :func:`flownet.frame_io.read_frame` says it (at half size),
    without its ``"cannot read image <path>: "`` opening (``"the file is empty (0 bytes; ...)"``, ``"not an image
    OpenCV can decode"``); None for a readable frame. ``data``: its bytes, when read already."""
    import cv2

    from flownet.frame_io import read_frame
    try:
        read_frame(path, cv2.IMREAD_REDUCED_GRAYSCALE_2, data=data)
    except ValueError as exc:
        why = str(exc)
        opening = f"cannot read image {Path(path)}: "
        return why[len(opening):] if why.startswith(opening) else why
    return None


def untaken_images_text(folder: Path) -> str:
    """Why the image files of ``folder``, a clip folder in which :func:`icegan.data.records.list_frames` found no
    frame, were not taken: ``": N image file(s) found, none taken: "`` then, for those of a frame extension
    (:data:`~icegan.data.records.FRAME_EXTENSIONS`) whose name does not end in a number, and for those of another
    image extension (:data:`~icegan.data.records.OTHER_IMAGE_EXTENSIONS`, ``.webp``...), how many and the first five
    names (in natural order), and for those named as images that are symbolic links to nothing, how many, the first
    five names and where the first points (:func:`~icegan.data.records.dangling_link_target`); ``""`` when the folder
    holds no such file (or cannot be listed). macOS ``._*`` files are not counted."""
    import re

    def natural(name: str) -> list:
        return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"([0-9]+)", name)]
    try:
        entries = [p for p in folder.iterdir() if not p.name.startswith("._")]
    except OSError:
        return ""
    files = [p for p in entries if p.is_file()]
    unnumbered = sorted((p.name for p in files if p.suffix.lower() in FRAME_EXTENSIONS and frame_number(p) is None),
                        key=natural)
    other = sorted((p.name for p in files if p.suffix.lower() in OTHER_IMAGE_EXTENSIONS), key=natural)
    links = sorted((p for p in entries if p.suffix.lower() in FRAME_EXTENSIONS + OTHER_IMAGE_EXTENSIONS
                    and dangling_link_target(p) is not None), key=lambda p: natural(p.name))
    if not (unnumbered or other or links):
        return ""

    def some(names: list[str]) -> str:
        return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    why = []
    if unnumbered:
        why.append(f"{len(unnumbered)} without a frame number at the end of the name ({some(unnumbered)}): a frame "
                   f"file is named by its number, e.g. img46.jpg or reg_img46.jpg")
    if other:
        why.append(f"{len(other)} of an extension not accepted ({some(other)}), accepted: "
                   f"{', '.join(FRAME_EXTENSIONS)} (convert them to one of those)")
    if links:
        why.append(f"{len(links)} link(s) to files that do not exist ({some([p.name for p in links])}): "
                   f"{links[0].name} is a link to {dangling_link_target(links[0])}")
    return f": {len(unnumbered) + len(other) + len(links)} image file(s) found, none taken: " + "; ".join(why)


def _frame_size(path: Path) -> Optional[tuple[int, int]]:
    """``(width, height)`` of a frame that decodes (:func:`_unreadable_reason` is None), read from its header, turned
    by its EXIF orientation as prepare reads it (:func:`flownet.frame_io.oriented_size`); ``(0, 0)`` when only
    OpenCV reads it, None for an unreadable one. The file is read once."""
    return _frame_probe(path)[0]


def _frame_probe(path: Path) -> tuple[Optional[tuple[int, int]], Optional[str]]:
    """``(size, reason)``: :func:`_frame_size`'s answer, and for an unreadable frame why
    (:func:`_unreadable_reason`), else None. The file is read once."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    why = _unreadable_reason(path, data)
    if why is not None:
        return None, why
    from flownet.frame_io import oriented_size
    try:
        return oriented_size(path, data), None
    except (OSError, ValueError):
        return (0, 0), None


def subject_missing(rec: ClipRecord) -> bool:
    """Whether the clip's subject folder is absent (a release copied without that subject): its clips are then
    counted per subject rather than reported one by one. Always False for clips listed one by one
    (``rec.subject_dir`` None, a clip list), whose folders are checked clip by clip."""
    return rec.subject_dir is not None and not rec.subject_dir.is_dir()


def not_a_folder_text(path: Path) -> Optional[str]:
    """What stands at ``path`` where a folder belongs, when it is not one: ``"<path> is a link to X, which does not
    exist"`` (:func:`~icegan.data.records.dangling_link_target`), ``"<path> is a file, not a folder (an archive
    not extracted?)"``, or, when nothing is there but two or more folders named so but for letter case (``Sub02`` and
    ``SUB02`` for ``sub02``, none of which is read), ``"duplicate folders differing only in case in <parent>: SUB02,
    Sub02; none of them is read ..."`` (:func:`icegan.data.base.case_twins_text`); None when nothing is there, or a
    folder."""
    target = dangling_link_target(path)
    if target is not None:
        return f"{path} is a link to {target}, which does not exist"
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder (an archive not extracted?)"
    if not path.exists():
        return case_twins_text(path.parent, path.name)
    return None


def case_twin_subjects(recs: list[ClipRecord]) -> dict[str, str]:
    """The subjects of ``recs`` whose folder is read but has twins named so but for letter case (``sub02/`` read,
    ``Sub02/`` beside it not, its clips silently missing): subject (``casme2/sub02``) → the text of
    :func:`icegan.data.base.case_twins_text`, which names the folders. A subject without a folder of its exact name
    is not here: :func:`not_a_folder_text` says it of a missing subject. Each subject's parent is listed once."""
    out: dict[str, str] = {}
    for subject, folder in {r.subject: r.subject_dir for r in recs if r.subject_dir is not None}.items():
        if folder.is_dir() and (text := case_twins_text(folder.parent, folder.name)) is not None:
            out[subject] = text
    return out


def record_problems(rec: ClipRecord, read_images: bool = False, need_apex: bool = True,
                    unreadable: Optional[set[Path] | dict[Path, str]] = None,
                    sizes: Optional[dict[Path, tuple[int, int]]] = None,
                    listing: Optional[dict[Path, list[Path]]] = None) -> list[Problem]:
    """Problems of one clip record.

    Args:
        rec: the clip.
        read_images: decode every frame file and report the ones that fail (slow: ~1 ms/frame).
        need_apex: an absent apex is a ``skip`` problem (False for SMIC before spotting).
        unreadable: precomputed unreadable frame paths (overrides ``read_images``): a set, or a dict path → why
            (:func:`_unreadable_reason`), whose problem line then names each file with its reason (the first five).
            An unreadable onset or apex is a ``skip`` problem, as is, when the apex is to be spotted, a frame of the
            span it is spotted on (:meth:`~icegan.data.records.ClipRecord.spotting_span`); another is a ``warn``.
        sizes: ``(width, height)`` of frame paths (:func:`_frame_size`): frames whose size is not the onset frame's
            are a problem (one crop or alignment is applied to a whole clip), a ``skip`` one for the apex and, when
            the apex is to be spotted, for a frame of the span it is spotted on.
        listing: a dict kept across the records of one check (folder → its folders,
            :func:`icegan.data.base.case_twins`), so that a subject folder is listed once for the folders of its
            clips that differ only in case, not once per clip.

    Returns:
        Problems, ``skip`` ones first. An apex equal to the onset is a ``skip`` (its onset→apex flow is zero), whatever
        the label set the clip is used for. The ``skip`` problems of a sheet row's onset/apex cells (not a frame
        number, an apex before or on the onset) have :attr:`Problem.sheet_coding` set, unless a note of the record
        is a mistyped onset or apex cell (:func:`icegan.data.composite.miswritten_frame_cell`: ``5.7``, an empty SAMM
        cell), a typo to correct.
    """
    k = rec.key
    # the sheet's own onset/apex cells (a clip list refuses such rows), unless one is mistyped (apex '5.7'): a typo
    coding = rec.listed_in == "sheet" and miswritten_frame_cell(rec) is None
    out: list[Problem] = []
    if rec.clip_dir is not None and not rec.clip_dir.is_dir():
        if rec.clip_dir.exists():            # a video file, say, where a folder of its frames belongs
            return [Problem(k, f"{rec.clip_dir} is a file, not a folder of frames: give the folder that holds the "
                               f"clip's frames, one image per frame, numbered (a video: extract its frames first)",
                            SKIP)]
        if subject_missing(rec):
            where = f"subject folder {rec.subject_dir}"
        else:
            where = f"clip folder {rec.clip_dir}"
        # the folder read (or none) among folders named so but for case: sub02/ read, the clip in Sub02/ not
        twins = [t for d in (rec.subject_dir, rec.clip_dir) if d is not None
                 and (t := case_twins_text(d.parent, d.name, listing)) is not None]
        return [Problem(k, f"in the {rec.listed_in} but missing on disk ({where} not found)"
                        + "".join(f"; {t}" for t in twins), SKIP)]
    key_frames = {rec.onset, rec.apex} - {None}
    # a sheet's clip in a release's tree (a clip list names its own folders; SMIC's folder-tree loader reports and
    # skips the clip folders it does not read itself: icegan.data.smic.SMIC.records)
    if rec.subject_dir is not None and rec.clip_dir is not None and rec.listed_in != "folder tree":
        twins = case_twins_text(rec.clip_dir.parent, rec.clip_dir.name, listing)  # EP02_01f/ read, ep02_01f/ not
        if twins is not None:
            out.append(Problem(k, twins, WARN))
    for n in rec.notes:
        # two files with one frame number (img50.jpg, img050.jpg): the listing keeps the first one the folder yields,
        # so which image stands for that frame is arbitrary; for the onset or apex, which prepare reads, the clip is
        # skipped, for another frame it is a warning
        dup = duplicate_frame(n)
        if dup is not None and dup in key_frames:
            which = "onset" if dup == rec.onset else "apex"
            out.append(Problem(k, f"{n}: the {which} frame is ambiguous; remove or rename one of the files", SKIP))
        else:
            out.append(Problem(k, n, WARN))
    nums = rec.frame_numbers
    if not nums:
        inner = sorted(p.name + "/" for p in rec.clip_dir.iterdir() if p.is_dir()) if rec.clip_dir else []
        hint = f" (it holds {', '.join(inner[:3])}{', ...' if len(inner) > 3 else ''}: the frames one folder too deep?)"
        why = untaken_images_text(rec.clip_dir) if rec.clip_dir else ""
        return [Problem(k, f"no frame images in {rec.clip_dir}" + why + (hint if inner else ""), SKIP)] + out
    present = set(nums)
    if rec.onset is None:
        out.append(Problem(k, "onset is not a frame number in the sheet", SKIP, coding))
    elif rec.onset not in present:
        out.append(Problem(k, f"onset frame {rec.onset} not on disk (frames present: {ranges_text(nums)})", SKIP))
    if rec.apex is None:
        if need_apex:
            out.append(Problem(k, "apex is not a frame number in the sheet", SKIP, coding))
        else:                    # to be spotted (icegan.data.spotting.spot_record_apex): needs two frames
            span = len(rec.spotting_span())
            if span < 2:
                out.append(Problem(k, f"apex spotting needs at least 2 frames from onset to offset, found {span}",
                                   SKIP))
    elif rec.apex not in present:
        out.append(Problem(k, f"apex frame {rec.apex} not on disk (frames present: {ranges_text(nums)})", SKIP))
    if rec.onset is not None and rec.apex is not None and rec.apex < rec.onset:
        out.append(Problem(k, f"apex {rec.apex} is before onset {rec.onset}", SKIP, coding))
    if rec.onset is not None and rec.onset == rec.apex:     # as the MEGC2019 rules and clip lists, for any label set
        out.append(Problem(k, f"apex equals onset ({rec.onset}): no onset→apex motion", SKIP, coding))
    if rec.onset is not None and rec.offset is not None and rec.offset < rec.onset:
        out.append(Problem(k, f"offset {rec.offset} is before onset {rec.onset}", WARN))
    # an offset before the apex is in the record's notes (sheet row or clip-list line), warned about above
    if rec.onset is not None:
        # frames absent between the onset and the offset (or, without an offset, the apex): prepare reads only the
        # onset, the apex and its neighbours (the whole span for sequences only), so a gap is a warning
        last = max((n for n in (rec.offset, rec.apex) if n is not None and n > rec.onset), default=None)
        if last is not None and (last == rec.offset or last in present):      # (an absent apex is a skip above)
            span = "onset..offset" if last == rec.offset else "onset..apex"
            expected = range(rec.onset, last + 1)
            missing = [n for n in expected if n not in present]
            if missing:
                if missing[-1] == last and all(n > max(present & set(expected), default=rec.onset - 1) for n in missing):
                    what = f"truncated: frames {ranges_text(missing)} of {span} {rec.onset}-{last} missing"
                else:
                    what = f"missing frames {ranges_text(missing)} inside {span} {rec.onset}-{last}"
                out.append(Problem(k, what, WARN))
    if rec.offset is None and rec.dataset in ("casme2", "samm"):      # optional in SMIC and in a clip list
        out.append(Problem(k, "offset is not a frame number in the sheet", WARN))
    if unreadable is None and read_images:
        unreadable = {p: why for p in rec.frame_paths if (why := _unreadable_reason(p)) is not None}
    if unreadable:
        bad = [(n, p) for n, p in zip(nums, rec.frame_paths) if p in unreadable]
        if bad:
            # fatal for the onset or apex, and for any frame of the span an apex is to be spotted on (SMIC, a clip
            # list): spotting reads each of them, and prepare skips the clip when one does not decode
            fatal = key_frames & {n for n, _ in bad} or (rec.apex is None and any(
                p in unreadable for _, p in rec.spotting_span()))
            sev = SKIP if fatal else WARN
            what = f"unreadable image(s) for frame(s) {ranges_text([n for n, _ in bad])}"
            if isinstance(unreadable, dict):        # each file with read_frame's reason, the first five
                what += ": " + ", ".join(f"{p.name} ({unreadable[p]})" for _, p in bad[:5])
                what += f", and {len(bad) - 5} more" if len(bad) > 5 else ""
            out.append(Problem(k, what, sev))
    ref = sizes.get(rec.frame_path(rec.onset)) if sizes and rec.has_frame(rec.onset) else None
    if ref and ref != (0, 0):
        odd = {n: p for n, p in zip(nums, rec.frame_paths) if sizes.get(p, ref) not in (ref, (0, 0))}
        if odd:
            n = rec.apex if rec.apex in odd else min(odd)          # the example named: the apex when it is one
            # fatal for the apex, and for any frame of the span an apex is to be spotted on (SMIC, a clip list)
            fatal = rec.apex in odd or (rec.apex is None and any(m in odd for m, _ in rec.spotting_span()))
            w, h = sizes[odd[n]]
            out.append(Problem(k, f"frame(s) {ranges_text(list(odd))} not of the onset frame's size {ref[0]}×{ref[1]} "
                                  f"(frame {n}, {odd[n].name}: {w}×{h}): {ONE_SIZE}", SKIP if fatal else WARN))
    out.sort(key=lambda p: p.severity != SKIP)
    return out


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`; :meth:`as_dict` gives the JSON of ``icegan data check``."""

    dataset: str
    root: str
    sheet: Optional[str]
    scope: str
    clips_in_sheet: int
    clip_folders_on_disk: int
    clips_ok: int
    clips_usable: int
    clips_with_problems: list[dict]
    clips_skipped: list[dict]
    missing_on_disk: list[str]
    not_in_sheet: list[str]
    missing_subjects: dict[str, int]
    by_class: dict[str, int]
    by_class_usable: dict[str, int]
    by_emotion: dict[str, int]
    subjects: dict[str, int]
    frames_checked: int
    unreadable_images: list[str] = field(default_factory=list)
    #: folders in the root whose names are not subject folders of the dataset (``6`` for SAMM's ``006``), not read
    other_folders: list[str] = field(default_factory=list)
    #: subject folders on disk named as a subject of the sheet that is not on disk but for the zero padding or letters
    #: of the number (folder → the sheet's name: ``sub2`` or ``2`` → ``sub02``, SAMM's ``7`` → ``007``): rename them
    padding_mismatches: dict[str, str] = field(default_factory=dict)
    #: usable clips in scope per class of each single-dataset label set of this dataset (``data.labels``:
    #: ``casme2_5``, ``samm_5``), a clip's class being its sheet emotion, as the main job reads it
    by_label_set: dict[str, dict[str, int]] = field(default_factory=dict)
    #: annotations given that the dataset's loader does not read (SMIC: the class is the folder's), else None
    unread_sheet: Optional[str] = None
    #: subjects of ``missing_subjects`` whose entry in the root is there but is no folder, or that has two or more
    #: folders named so but for letter case, none read (subject → what is there, :func:`not_a_folder_text`: a file,
    #: an archive never extracted; a link to nothing; ``duplicate folders differing only in case in ROOT: SUB02,
    #: Sub02; ...``)
    subjects_not_folders: dict[str, str] = field(default_factory=dict)
    #: warnings about the annotations themselves, of no one clip: a clip list's columns left unread
    #: (:attr:`icegan.data.clip_list.ClipList.column_note`); printed as ``[warn]`` lines under ``notes:``
    notes: list[str] = field(default_factory=list)
    #: clips of ``clips_skipped`` whose ``skip`` problems are all of their sheet row's onset/apex coding
    #: (:attr:`Problem.sheet_coding`: the official CASME II sheet's sub04/EP12_01f, apex '/', and sub05/EP09_05f,
    #: apex = onset): listed as skipped, but no problem of the copy (:meth:`problems_found`)
    skipped_for_sheet_coding: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Every field by name (a shallow copy: the lists and dicts are the report's own): the JSON that
        ``icegan data check --json`` writes; all values are strings, ints, None, or lists / dicts of them."""
        return dict(self.__dict__)

    def problems_found(self) -> bool:
        """Whether the check found problems of the copy on disk or of the user's input: a clip skipped
        (``clips_skipped``) or a ``skip`` problem (a folder or sheet row left unread: an SMIC class folder that is no
        class, a typo in a composite row, a mistyped onset/apex cell) other than those of ``skipped_for_sheet_coding``
        (a sheet row's own onset/apex coding, which the MEGC2019 rules leave out), clips of subjects not on disk
        (``missing_subjects``), or no usable clip at all. Warnings alone (a clip truncated after its apex, a column
        left unread) are not. ``icegan data check`` exits 1 when True, else 0."""
        coded = set(self.skipped_for_sheet_coding)
        # (every clip of clips_skipped has a skip problem of its own or of its folder: tested in test_review62a)
        return bool(self.missing_subjects or self.clips_usable == 0
                    or any(p["severity"] == SKIP and p["clip"] not in coded for p in self.clips_with_problems))

    def _usable_means(self) -> str:
        """What makes a clip usable here: SMIC's apex is spotted later (prepare), so its clips need only their onset; a
        clip list's rows may give an apex or leave it to be spotted."""
        return {"smic": "onset present, apex to be spotted",
                "clips": "onset present, apex present or to be spotted"}.get(self.dataset, "onset and apex present")

    def text(self) -> str:
        """Human-readable summary (what ``icegan data check`` prints)."""
        # a clip list (dataset 'clips') is its CSV: root is only the CSV's folder, so the list is named once
        first = (f"clips: the clip list {self.sheet}" if self.dataset == "clips" and self.sheet else
                 f"{self.dataset} at {self.root}" + (f" (sheet {self.sheet})" if self.sheet else ""))
        lines = [first,
                 f"scope: {self.scope}; clips in sheet/tree: {self.clips_in_sheet}; clip folders on disk: "
                 f"{self.clip_folders_on_disk}; frames checked: {self.frames_checked}",
                 f"clips ok: {self.clips_ok}; usable ({self._usable_means()}): {self.clips_usable}; "
                 f"skipped: {len(self.clips_skipped)}; clips with problems: "
                 f"{len({p['clip'] for p in self.clips_with_problems})} ({len(self.clips_with_problems)} problems)"]
        if self.unread_sheet:
            lines.append(f"annotations {self.unread_sheet} not read: {self.dataset} clips take their class from their "
                         f"folders and their apex is spotted")
        if self.missing_subjects:
            what = {s: f"; {w}" for s, w in self.subjects_not_folders.items()}
            where = "of the MEGC2019 composite" if self.dataset == "smic" else "in the sheet but"
            lines.append(f"subjects {where} not on disk: " +
                         ", ".join(f"{s} ({n} clip{'' if n == 1 else 's'}{what.get(s, '')})"
                                   for s, n in self.missing_subjects.items()))
        lines.append("composite classes (usable / in scope): " + ", ".join(
            f"{c} {self.by_class_usable.get(c, 0)}/{self.by_class.get(c, 0)}" for c in CLASS3_NAMES))
        for name, counts in self.by_label_set.items():
            lines.append(f"data.labels={name} classes (usable): " + ", ".join(f"{c} {n}" for c, n in counts.items())
                         + f" = {sum(counts.values())}")
        lines.append(f"subjects with usable clips: {len(self.subjects)}")
        if self.clips_with_problems:
            lines.append("problems:")
            for p in self.clips_with_problems:
                lines.append(f"  [{p['severity']}] {p['clip']}: {p['problem']}")
        if self.notes:
            lines.append("notes:")
            lines += [f"  [{WARN}] {n}" for n in self.notes]
        if self.not_in_sheet:
            lines.append(f"clip folders on disk not in the sheet ({len(self.not_in_sheet)}): "
                         + ", ".join(self.not_in_sheet))
        if self.other_folders:
            lines.append(f"folders in {self.root} not named as {self.dataset} subject folders, not read (rename them "
                         f"if they hold clips): " + ", ".join(self.other_folders))
        if self.padding_mismatches:
            renames = ", ".join(f"{a} to {b}" for a, b in self.padding_mismatches.items())
            lines.append(f"folders in {self.root} named as a subject of the sheet that has no folder, but for the zero "
                         f"padding or letters of the number: rename {renames}")
        return "\n".join(lines)


def padding_mismatches(folders: list[str], missing: list[str]) -> dict[str, str]:
    """Folder names that are a ``missing`` subject's name but for the zero padding or letters of the number: ``sub2``
    for ``sub02`` (CASME II), ``7`` for ``007`` (SAMM): same letters (ignoring case), same number once read as an
    int; or, for a folder of digits alone that no subject matches so, the one missing subject of that number whatever
    its letters (``1`` or ``01`` for ``sub01``). Each missing subject is paired with one folder at most, the closest:
    one of its letters before one of digits alone, then the name most like the subject's, then the first in
    ``folders`` (``sub1`` and ``1`` for ``sub01``: ``sub1``).

    Args:
        folders: subject folder names found on disk that the sheet does not name (``sub2``, ``7``).
        missing: subject names of the sheet with no folder on disk (``sub02``, ``007``; without the dataset).

    Returns:
        folder → sheet name, in ``folders``' order; a folder with no such subject, or with two, is left out, as is
        one whose subject has a closer folder.
    """
    import difflib

    def key(name: str):
        parts = subject_number(name)
        return (parts[0].lower(), parts[1]) if parts else None
    by_key: dict = {}
    by_number: dict = {}
    for s in missing:               # the names without a number share the key None, which no folder looks up
        by_key.setdefault(key(s), []).append(s)
        if key(s) is not None:
            by_number.setdefault(key(s)[1], []).append(s)

    def match(f: str) -> Optional[tuple[str, int]]:
        """The subject of folder ``f`` and how far it is (0: same letters, 1: digits alone), or None."""
        k = key(f)
        if k is None:
            return None
        same, far = by_key.get(k, []), 0
        if not same and k[0] == "":                 # digits alone: the letters left out (1 for sub01)
            same, far = by_number.get(k[1], []), 1
        return (same[0], far) if len(same) == 1 and same[0] != f else None
    found = {f: m for f in folders if (m := match(f)) is not None}
    best: dict[str, str] = {}                       # subject → its closest folder
    for i, (f, (s, far)) in enumerate(found.items()):
        rank = (far, -difflib.SequenceMatcher(None, f.lower(), s.lower()).ratio(), i)
        if s not in best or rank < best[s][0]:
            best[s] = (rank, f)
    chosen = {f for _, f in best.values()}
    return {f: s for f, (s, _) in found.items() if f in chosen}


def rename_hints(ds, missing: list[str], not_in_sheet: Optional[list[str]] = None,
                 other_folders: Optional[list[str]] = None) -> dict[str, str]:
    """The folders in a release's root that are likely the folders of subjects of its sheet found missing
    (:func:`padding_mismatches`: ``sub1``, ``1`` or ``01`` for ``sub01``): the hint of ``icegan data check`` and of
    the preprocessing's warning about subjects not on disk.

    Args:
        ds: the dataset's loader (:func:`_loader`); a loader without a sheet (SMIC, a clip list) has none.
        missing: the sheet's subjects with no folder on disk (``sub01``, without the dataset).
        not_in_sheet: the clips on disk that the sheet does not name (``casme2/sub1/EP02_01f``); default: listed.
        other_folders: the root's folders not named as subject folders (``1``); default: listed.

    Returns:
        folder → the sheet's subject name.
    """
    if not missing or not hasattr(ds, "sheet_rows"):
        return {}
    if not_in_sheet is None:
        not_in_sheet = _not_in_sheet(ds, ds.disk_clips())
    if other_folders is None:
        other_folders = _other_folders(ds)
    unsheeted = list(dict.fromkeys(c.split("/")[1] for c in not_in_sheet))     # subjects of clips not in the sheet
    return padding_mismatches(unsheeted + [f for f in other_folders if f not in unsheeted], missing)


def _not_in_sheet(ds, on_disk: list[tuple[str, str]]) -> list[str]:
    """``dataset/subject/clip`` of the clip folders ``on_disk`` that the sheet does not name (ignoring case)."""
    if not hasattr(ds, "sheet_rows"):     # SMIC has no sheet; a clip list is the whole dataset
        return []
    all_rows = {(r.subject.lower(), r.clip.lower()) for r in ds.sheet_rows()}      # folders found ignoring case
    return [f"{ds.name}/{s}/{c}" for s, c in on_disk if (s.lower(), c.lower()) not in all_rows]


def _other_folders(ds) -> list[str]:
    """The folders in a release's root not named as its subject folders (``6`` for SAMM's ``006``)."""
    if hasattr(ds, "looks_like_subject") and Path(ds.root).is_dir():   # a release's tree (not a clip list)
        return sorted(p.name for p in Path(ds.root).iterdir()
                      if p.is_dir() and not p.name.startswith(".") and not ds.looks_like_subject(p.name))
    return []


def _loader(dataset: str, root: str | Path, annotations: Optional[str | Path]):
    if dataset == "casme2":
        from .casme2 import CASME2
        return CASME2(root, annotations)
    if dataset == "samm":
        from .samm import SAMM
        return SAMM(root, annotations)
    if dataset == "smic":
        from .smic import SMIC
        return SMIC(root, annotations)
    if dataset == "clips":
        from .clip_list import ClipList
        return ClipList(root, annotations)
    raise ValueError(f"unknown dataset {dataset!r}; expected casme2, samm, smic or clips (your own clip list)")


def check_dataset(dataset: str, root: str | Path, annotations: Optional[str | Path] = None,
                  composite_only: bool = False, read_images: bool = True, workers: int = 2,
                  progress: bool = False) -> CheckReport:
    """Check a dataset root against its sheet (CASME II, SAMM), its folder tree (SMIC), or a clip list's clips
    against their folders (``clips``, :mod:`icegan.data.clip_list`: ``root`` is the CSV).

    Args:
        dataset: ``casme2 | samm | smic | clips``.
        root: dataset root (see the loaders for accepted layouts).
        annotations: sheet path; default: the official sheet found near the root.
        composite_only: check only MEGC2019 composite clips (default: every sheet row).
        read_images: decode every frame to find unreadable files (threads: ``workers``).
        progress: show a tqdm bar while decoding.

    Rows of subjects whose folder is absent are summarised in ``missing_subjects`` (subject →
    clip count) rather than listed clip by clip (a subject entry that is a file or a link to nothing, or a subject
    with several folders named so but for letter case and none exactly, is said so in ``subjects_not_folders``);
    every other sheet clip missing on disk is listed in ``missing_on_disk`` and in ``clips_with_problems`` (its reason
    naming folders of its subject or clip that differ only in case, when there are some). A subject folder read beside
    folders named so but for case (``sub02/`` and ``Sub02/``: only the first is read) is a ``warn`` problem of the
    subject (``casme2/sub02``) in ``clips_with_problems``, naming the folders. The clip folders of an SMIC class
    folder that is no class (:attr:`icegan.data.smic.SMIC.class_folder_skips`) are skipped, and counted in
    ``clips_in_sheet``, ``clip_folders_on_disk`` and, by the class their name says, ``by_class``. A clip list's
    columns left unread are in ``notes``. A clip skipped only for its sheet row's onset/apex coding
    (:attr:`Problem.sheet_coding`) is also named in ``skipped_for_sheet_coding``. SMIC has no sheet: with
    ``composite_only`` its tree is compared with the MEGC2019 composite's subjects and clip counts
    (:meth:`icegan.data.smic.SMIC.composite_gaps`): a composite subject without a folder is in ``missing_subjects``
    (its composite clip count), a subject with fewer clips of a class than the composite is a ``skip`` problem of the
    subject (``smic/s3``) in ``clips_with_problems``.

    Raises:
        DatasetLayoutError / FileNotFoundError / SheetError: root or sheet unusable (named).
    """
    ds = _loader(dataset, root, annotations)
    recs: list[ClipRecord] = ds.records(composite_only=composite_only)
    unreadable: dict[Path, str] = {}            # path → why (read_frame's reason)
    sizes: dict[Path, tuple[int, int]] = {}
    all_paths = [p for r in recs for p in r.frame_paths]
    if read_images and all_paths:
        from tqdm import tqdm
        with ThreadPoolExecutor(max(1, workers)) as ex:
            found = list(tqdm(ex.map(_frame_probe, all_paths, chunksize=64), total=len(all_paths),
                              desc=f"reading {dataset} frames", disable=not progress))
        unreadable = {p: why for p, (size, why) in zip(all_paths, found) if size is None}
        sizes = {p: size for p, (size, _) in zip(all_paths, found) if size is not None}
    problems: list[Problem] = []
    missing_subjects: Counter = Counter()
    not_folders: dict[str, str] = {}            # subject → what stands where its folder belongs (a file, a link)
    missing_on_disk, skipped = [], []
    coded: list[str] = []                       # skipped for the sheet row's onset/apex coding alone
    usable: list[ClipRecord] = []
    ok_count = 0
    listing: dict[Path, list[Path]] = {}        # folder → its folders, listed once for the case twins of its clips
    for r in recs:
        if subject_missing(r):
            if r.subject not in missing_subjects and (what := not_a_folder_text(r.subject_dir)) is not None:
                not_folders[r.subject] = what
            missing_subjects[r.subject] += 1
            continue
        ps = record_problems(r, need_apex=r.apex_method != "unspotted", unreadable=unreadable, sizes=sizes,
                             listing=listing)
        problems += ps
        if any(p.severity == SKIP for p in ps):
            reason = "; ".join(p.problem for p in ps if p.severity == SKIP)
            skipped.append({"clip": r.key, "reason": reason})
            if all(p.sheet_coding for p in ps if p.severity == SKIP):
                coded.append(r.key)
            log.warning("%s skipped: %s", r.key, reason)
            if r.clip_dir is not None and not r.clip_dir.is_dir():
                missing_on_disk.append(r.key)
        else:
            usable.append(r)
            ok_count += not ps
    if dataset == "smic" and composite_only:    # no sheet: the composite's subjects and clip counts stand for one
        lacking, short = ds.composite_gaps(recs)
        for subject, n in lacking.items():
            if (what := not_a_folder_text(ds.root / subject.split("/")[1])) is not None:
                not_folders[subject] = what
            missing_subjects[subject] = n
        for subject, text in short.items():
            problems.append(Problem(subject, text, SKIP))
            log.warning("%s: %s", subject, text)
    for subject, text in case_twin_subjects(recs).items():        # sub02/ read, Sub02/ beside it not
        problems.append(Problem(subject, text, WARN))
        log.warning("%s: %s", subject, text)
    for lp in getattr(ds, "layout_problems", []):
        problems.append(Problem(lp["clip"], lp["problem"], SKIP))
    skipped += [{"clip": key, "reason": why} for key, why in getattr(ds, "skipped_clip_folders", [])]
    # SMIC: the clips of a class folder that is no class, skipped above: counted in the tree, on disk and by class
    unread = getattr(ds, "class_folder_skips", {})
    on_disk = ds.disk_clips()
    not_in_sheet = _not_in_sheet(ds, on_disk)
    other_folders = _other_folders(ds)
    missing_names = [s.split("/", 1)[-1] for s in missing_subjects]            # 'casme2/sub02' -> 'sub02'
    mismatched = rename_hints(ds, missing_names, not_in_sheet, other_folders)
    by_class = Counter(r.class3_name for r in recs if r.class3 is not None
                       and r.subject not in missing_subjects) + Counter(c for c in unread.values() if c is not None)
    by_class_usable = Counter(r.class3_name for r in usable if r.class3 is not None)
    from icegan.labels import emotion_class_counts
    by_label_set = {name: s["classes"]
                    for name, s in emotion_class_counts((r.emotion for r in usable), dataset).items()}
    return CheckReport(
        dataset=dataset, root=str(ds.root), sheet=str(ds.sheet_path) if ds.sheet_path else None,
        scope=ds.check_scope(composite_only),
        clips_in_sheet=len(recs) + len(unread), clip_folders_on_disk=len(on_disk) + len(unread),
        clips_ok=ok_count, clips_usable=len(usable),
        clips_with_problems=[p.as_dict() for p in problems], clips_skipped=skipped,
        missing_on_disk=missing_on_disk, not_in_sheet=not_in_sheet,
        missing_subjects=dict(sorted(missing_subjects.items())),
        by_class={c: by_class.get(c, 0) for c in CLASS3_NAMES},
        by_class_usable={c: by_class_usable.get(c, 0) for c in CLASS3_NAMES},
        by_emotion=dict(sorted(Counter(r.emotion for r in usable).items())),
        subjects=dict(sorted(Counter(r.subject for r in usable).items())),
        frames_checked=len(all_paths) if read_images else 0,
        unreadable_images=sorted(str(p) for p in unreadable), other_folders=other_folders,
        padding_mismatches=mismatched, by_label_set=by_label_set,
        unread_sheet=str(ds.unread_sheet) if getattr(ds, "unread_sheet", None) is not None else None,
        subjects_not_folders=dict(sorted(not_folders.items())),
        notes=[ds.column_note] if dataset == "clips" and ds.column_note else [], skipped_for_sheet_coding=coded)
