"""The common clip record shared by the CASME II, SAMM and SMIC loaders, and frame discovery.

A :class:`ClipRecord` is one micro-expression clip: which dataset and (dataset-prefixed) subject it
belongs to, its labels (the sheet's original emotion, the MEGC2019 3-class id, and the
dataset-specific label sets), its annotated onset / apex / offset frame numbers, and the frame files
that exist on disk for it, sorted by frame number.

Frame numbers are the integers at the end of the file stem, as in the official layouts:
``img46.jpg`` / ``reg_img46.jpg`` (CASME II raw / cropped), ``006_05562.jpg`` (SAMM),
``reg_image106114.bmp`` (SMIC).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

log = logging.getLogger("icegan.data")

#: MEGC2019 composite class ids (DESIGN.md, "Datasets and the MEGC2019 composite")
CLASS3_NAMES: tuple[str, str, str] = ("negative", "positive", "surprise")
CLASS3_IDS: dict[str, int] = {name: i for i, name in enumerate(CLASS3_NAMES)}

#: image extensions recognised as frames
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
#: extensions of images that are not taken as frames (not in :data:`FRAME_EXTENSIONS`): named by ``icegan data check``
#: and prepare when a clip folder holds such files and no frame (:func:`icegan.data.check.record_problems`)
OTHER_IMAGE_EXTENSIONS = (".webp", ".gif", ".jp2", ".j2k", ".jpe", ".jfif", ".heic", ".heif", ".avif", ".jxl", ".pgm",
                          ".ppm", ".pbm", ".pnm", ".dib", ".ras", ".sr", ".exr", ".hdr", ".tga", ".dng")

_TRAILING_INT = re.compile(r"([0-9]+)$")


def subject_number(name: str) -> Optional[tuple[str, int]]:
    """A subject folder name split into its letters and its number, the number's zero padding dropped: ``sub02`` and
    ``sub2`` → ``("sub", 2)``, SAMM's ``007`` and ``7`` → ``("", 7)``; None for a name that is not letters then a
    number of ASCII digits (``notes``, ``s1a``, ``sub٠١``)."""
    m = re.fullmatch(r"([^0-9]*)([0-9]+)", name)
    return (m.group(1), int(m.group(2))) if m else None


def frame_number(path: str | Path) -> Optional[int]:
    """Frame number of a frame file: the integer (ASCII digits) at the end of its stem, or None if there is none
    (``img٣.jpg``).

    ``img46.jpg`` → 46, ``006_05562.jpg`` → 5562, ``reg_image106114.bmp`` → 106114.
    """
    m = _TRAILING_INT.search(Path(path).stem)
    return int(m.group(1)) if m else None


#: how :func:`list_frames` notes two files with one frame number, read back by :func:`duplicate_frame`
_DUPLICATE_NOTE = re.compile(r"two files for frame (\d+): ")


def duplicate_frame(note: str) -> Optional[int]:
    """The frame number of a :func:`list_frames` note saying two files carry that number (``img50.jpg`` and
    ``img050.jpg``), or None for any other note."""
    m = _DUPLICATE_NOTE.match(note)
    return int(m.group(1)) if m else None


def apex_after_offset_note(onset: Optional[int], apex: Optional[int], offset: Optional[int],
                           where: str) -> Optional[str]:
    """The note a sheet row gets when its apex lies after its offset (a quirk of some coding-sheet rows: one of the
    two cells is wrong); the apex is used as written and the clip is kept (prepare reads the onset and the apex). A
    clip list refuses such a row instead (:mod:`icegan.data.clip_list`, naming the file and line). None when the
    frames are in order or one of them is unset; an offset before the onset is not this note (``icegan data check``
    warns about it). ``where``: the row, e.g. ``"sheet row 12"``."""
    if None in (onset, apex, offset) or not onset <= offset < apex:
        return None
    return f"apex {apex} is after offset {offset} ({where}): one of the two cells is wrong; the apex is used as written"


def neighbour_inside(n: int, onset: Optional[int], apex: int, offset: Optional[int]) -> bool:
    """Whether frame number ``n`` may stand as one of the apex's neighbours (apex±1, apex±2): after the onset (a
    frame at or before it is the neutral face: apex−1 of an apex at onset+1 is the onset itself) and, when the offset
    is known and not before the apex, up to the offset, both as frame numbers; an unknown (None) onset or offset, or
    an offset before the apex (a wrong cell, :func:`apex_after_offset_note`), sets no bound. The rule of
    :func:`icegan.data.prepare.select_neighbours` and :func:`icegan.gan.pairs.load_casme2_pairs`."""
    last = offset if offset is not None and offset >= apex else None
    return (onset is None or n > onset) and (last is None or n <= last)


def dangling_link_target(path: str | Path) -> Optional[str]:
    """Where ``path`` points when it is a symbolic link to nothing (a dataset symlinked from elsewhere, then moved or
    copied with relative links): the link's text, followed for a relative one by the path it resolves to in
    parentheses (``../gone/img46.jpg (/data/gone/img46.jpg)``); None when ``path`` is no link, or a link to
    something that exists."""
    import os
    p = Path(path)
    if not p.is_symlink() or p.exists():
        return None
    try:
        target = os.readlink(p)
    except OSError:
        return None
    if os.path.isabs(target):
        return target
    return f"{target} ({os.path.normpath(os.path.join(p.parent, target))})"


def _left_out_note(names: list[tuple[str, str]], whats: str) -> str:
    """One note for the frame files :func:`list_frames` leaves out for one reason: ``"<name>: <why>"`` for the first
    five (in frame order), ``"; and N more <whats>"`` for the rest, then ``"; not taken as a frame"`` (or frames)."""
    text = "; ".join(f"{name}: {why}" for name, why in names[:5])
    more = f"; and {len(names) - 5} more {whats}" if len(names) > 5 else ""
    return text + more + ("; not taken as a frame" if len(names) == 1 else "; not taken as frames")


def list_frames(clip_dir: str | Path) -> tuple[tuple[int, ...], tuple[Path, ...], list[str]]:
    """Frame files of one clip folder, sorted by frame number.

    Files named ``._*`` (macOS "AppleDouble" metadata, written beside each file copied from a Mac to a shared or
    external disk) are not frames and are passed over.

    Returns:
        ``(numbers, paths, problems)``: frame numbers (ascending), their paths, and human-readable
        problems (files whose name carries no frame number, duplicate frame numbers; entries named as a frame that are
        not taken because they are a link to nothing, ``"img59.jpg: link to X, which does not exist; ..."``, or a
        folder: one note each, naming the first five). A folder that does not exist gives empty tuples and one
        problem.
    """
    d = Path(clip_dir)
    if not d.is_dir():
        return (), (), [f"clip folder not found: {d}" if not d.exists() else
                        f"clip folder {d} is a file, not a folder of frames"]
    problems: list[str] = []
    found: dict[int, Path] = {}
    dangling: list[tuple[str, str]] = []        # (name, why) of entries named as frames that are not files
    folders: list[tuple[str, str]] = []
    for p in d.iterdir():
        if p.suffix.lower() not in FRAME_EXTENSIONS or p.name.startswith("._"):
            continue        # ._img46.jpg: the metadata file macOS writes beside img46.jpg on a non-Mac disk, no image
        if not p.is_file():             # not taken; said so (a dataset symlinked from elsewhere, moved since)
            target = dangling_link_target(p)
            if target is not None:
                dangling.append((p.name, f"link to {target}, which does not exist"))
            elif p.is_dir():
                folders.append((p.name, "a folder, not an image file"))
            continue
        n = frame_number(p)
        if n is None:
            problems.append(f"file without a frame number in its name: {p.name}")
            continue
        if n in found:
            problems.append(f"two files for frame {n}: {found[n].name} and {p.name}")   # :func:`duplicate_frame`
            continue
        found[n] = p
    for entries, whats in ((dangling, "links to files that do not exist"), (folders, "folders")):
        if entries:
            entries.sort(key=lambda e: (frame_number(e[0]) is None, frame_number(e[0]) or 0, e[0]))
            problems.append(_left_out_note(entries, whats))
    numbers = tuple(sorted(found))
    return numbers, tuple(found[n] for n in numbers), problems


@dataclass(frozen=True)
class ClipRecord:
    """One micro-expression clip.

    Attributes:
        dataset: ``"casme2"``, ``"samm"`` or ``"smic"``; for a clip list (:mod:`icegan.data.clip_list`) the
            list's dataset name (default ``"clips"``).
        subject: dataset-prefixed subject id, e.g. ``"casme2/sub01"``, ``"samm/006"``, ``"smic/s1"``
            (LOSO folds are per prefixed subject).
        clip: clip folder name, e.g. ``"EP02_01f"``, ``"006_1_2"``, ``"s1_ne_01"``.
        emotion: the original label as written in the sheet (or the SMIC class folder).
        class3: MEGC2019 class id (0 negative, 1 positive, 2 surprise) or None when the clip is not
            part of the composite.
        onset, apex, offset: annotated frame numbers (None when the sheet has no usable value).
            For SMIC, onset is the first frame, offset the last and apex is spotted (see
            ``apex_method``).
        frame_numbers: frame numbers present on disk, ascending (empty if the folder is missing).
        frame_paths: the matching files.
        apex_method: ``"annotated"`` (from the sheet) or the spotting method used.
        class5: CASME II 5-class id (happiness 0, disgust 1, repression 2, surprise 3, others 4)
            or None; other datasets None.
        objective_class: SAMM objective class (1..7, Davison et al. 2017) or None.
        action_units: FACS action units as written in the sheet ('' if none).
        clip_dir: the clip folder (whether or not it exists).
        subject_dir: the subject's folder in a release kept as one folder per subject (CASME II, SAMM, SMIC), whether
            or not it exists: a missing one means the subject was not copied, and its clips are summarised by subject
            instead of listed one by one. None where clips are listed one by one (a clip list).
        listed_in: where the clip comes from, for messages: ``"sheet"`` (CASME II, SAMM), ``"folder tree"`` (SMIC)
            or ``"clip list"``.
        notes: remarks gathered while building the record (e.g. sheet quirks).
    """

    dataset: str
    subject: str
    clip: str
    emotion: str
    class3: Optional[int]
    onset: Optional[int]
    apex: Optional[int]
    offset: Optional[int]
    frame_numbers: tuple[int, ...] = ()
    frame_paths: tuple[Path, ...] = ()
    apex_method: str = "annotated"
    class5: Optional[int] = None
    objective_class: Optional[int] = None
    action_units: str = ""
    clip_dir: Optional[Path] = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    subject_dir: Optional[Path] = None
    listed_in: str = "sheet"

    @property
    def key(self) -> str:
        """``"<subject>/<clip>"``, e.g. ``"casme2/sub01/EP02_01f"``: unique across the composite."""
        return f"{self.subject}/{self.clip}"

    @property
    def class3_name(self) -> Optional[str]:
        """``"negative" | "positive" | "surprise"`` or None."""
        return None if self.class3 is None else CLASS3_NAMES[self.class3]

    def frame_path(self, number: int) -> Path:
        """Path of frame ``number``.

        Raises:
            KeyError: the frame is not on disk (message names clip and frame).
        """
        try:
            return self.frame_paths[self.frame_numbers.index(number)]
        except ValueError:
            raise KeyError(f"{self.key}: frame {number} is not on disk "
                           f"(frames present: {_ranges(self.frame_numbers)})") from None

    def spotting_span(self) -> list[tuple[int, Path]]:
        """``(number, path)`` of the frames on disk from the onset to the offset, both included (the first and last
        frame when they are not set, as for SMIC): the frames apex spotting reads
        (:func:`icegan.data.spotting.spot_record_apex`), and that ``icegan data check`` counts."""
        first = self.onset if self.onset is not None else -1
        last = self.offset if self.offset is not None else float("inf")
        return [(n, p) for n, p in zip(self.frame_numbers, self.frame_paths) if first <= n <= last]

    def has_frame(self, number: Optional[int]) -> bool:
        """Whether frame ``number`` is on disk (one of ``frame_numbers``); False for None."""
        return number is not None and number in set(self.frame_numbers)


def _ranges(numbers: Sequence[int]) -> str:
    """Compact text for a sorted list of ints: ``[1,2,3,7,8]`` → ``"1-3, 7-8"``."""
    if not numbers:
        return "none"
    out, start, prev = [], numbers[0], numbers[0]
    for n in list(numbers[1:]) + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


#: why a clip's frames must share one size: one crop or alignment is applied to every frame of a clip
ONE_SIZE = "the frames of a clip must have one size (a frame of another release or crop mixed in?)"


def other_size_text(frame: str, size: tuple[int, int], reference: str, ref_size: tuple[int, int]) -> str:
    """The message for a frame of another size than its clip's reference frame: ``"<frame> is W×H, <reference>
    W×H: <ONE_SIZE>"``; ``frame`` and ``reference`` name them (``"frame 59 (img59.jpg)"``, ``"the onset frame 46
    (img46.jpg)"``), sizes are (width, height) in pixels."""
    return f"{frame} is {size[0]}×{size[1]}, {reference} {ref_size[0]}×{ref_size[1]}: {ONE_SIZE}"


def ranges_text(numbers: Sequence[int]) -> str:
    """Public alias of the compact range formatter (``"46-72, 80"``)."""
    return _ranges(sorted(numbers))
