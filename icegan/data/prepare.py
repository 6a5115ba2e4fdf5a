"""Face preprocessing with an on-disk cache: ``icegan prepare --config configs/prepare_casme2.yaml``.

For every usable clip of the configured datasets this produces, as uint8 arrays of ``size`` × ``size``
(grayscale by default, RGB optional):

- the onset frame, the apex frame and the apex's four neighbours (apex−2, apex−1, apex+1, apex+2; the
  ICE-GAN paper, Sec. IV-B, uses them as extra apex images of the same intensity);
- optionally the whole onset..offset sequence, with its frame numbers (no icegan command reads them: read them with
  :meth:`PreparedFrames.sequence` and :meth:`PreparedFrames.sequence_frames`);
- in raw mode with ``landmarks: true`` (off by default: no command reads them), the 68 landmarks of every output key
  frame, in output pixels.

Two input modes per dataset: ``raw`` (full frames: face_recognition detection + 68 landmarks, one
alignment per clip computed on the onset frame (when it has no face: the nearest frame with one, the earlier at a
tie) and applied to all frames; see
:mod:`icegan.data.align`) and ``cropped`` (already-cropped releases: resize only).

The cache lives in ``<cache_root>/<hash>/`` (``cache_root`` default: ``icegan.paths.default_data_root()
/ "cache"``); the hash covers every setting that changes the output and the inputs (clip labels and
frame numbers, frame files' names, sizes and modification times), so a second run with the same
inputs is a directory lookup and any changed setting makes a new cache (only the settings that apply to the clips:
:func:`key_settings`; a cropped dataset's cache does not change with the raw-mode settings). Contents:

==========================  ===================================================================
``manifest.csv``            one row per prepared clip (column ``index`` = row in the arrays)
``onset.npy``               (N, H, W) or (N, H, W, 3) uint8
``apex.npy``                (N, H, W) or (N, H, W, 3) uint8
``apex_neighbours.npy``     (N, 4, H, W[, 3]) uint8, order apex−2, apex−1, apex+1, apex+2
``landmarks.npy``           (N, 6, 68, 2) float32 output pixels, order onset, apex−2, apex−1, apex,
                            apex+1, apex+2 (NaN in cropped mode and with ``landmarks: false``)
``sequences/<index>.npy``   (T, H, W[, 3]) uint8 when ``sequences: true`` (T = 0 for a clip whose offset is
                            before its onset, with a note), and beside it ``<index>_frames.npy``, (T,) int64, the
                            frame number of each row (frames missing on disk or unreadable are left out, so row i is
                            not frame seq_first + i then)
``skipped.csv``             every clip not prepared, with the reason (every field quoted when a cell holds a ``\\r``)
``settings.json``           settings, input hash, counts, timings
==========================  ===================================================================

A prepare stopped before it wrote the cache (Ctrl-C, a kill) keeps each clip it finished in
``<cache_root>/.partial-<hash>/`` (one file per clip, written whole); the next prepare of the same inputs and settings
reads those and prepares only the rest, and removes the folder once the cache is written. A prepare of other inputs or
settings leaves it alone and names it in its last log line, with its size.

A finished cache holds the marker ``COMPLETE``; only such a folder is a cache hit. A clip that met a read error of the
file system (permission denied, an I/O error: :class:`FrameAccessError`, which the files' sizes and mtimes in the
hash do not show) is not kept for good: its cache is marked ``RETRY`` instead (:data:`RETRY_MARKER`), loads, and is
written anew by the next prepare, which prepares those clips again and the others from the ``.partial-<hash>`` folder
kept for it. A cache folder without ``COMPLETE`` (that, or a copy of the folder cut short) is replaced by the next
prepare (:func:`_remove_incomplete`), unless it is a symbolic link (refused, :func:`_refuse_link`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pickle
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterator, Literal, Optional

import numpy as np
import pandas as pd

from flownet.frame_io import FrameAccessError  # raised by read_frame; also named icegan.data.prepare.FrameAccessError
from flownet.io import PROBE_PIDS, STALE_TMP_SECONDS, remove_stale, write_text_whole

from ..csv_names import csv_quoting, read_csv_names
from ..paths import default_data_root, shared_data_root
from .check import SKIP, case_twin_subjects, not_a_folder_text, record_problems, subject_missing
from .records import ClipRecord, neighbour_inside, other_size_text, ranges_text

log = logging.getLogger("icegan.data")

#: bump when the preprocessing code changes its output (part of the cache hash). 4 (2026-12-05): a clip with a frame
#: of another size, or (``color: rgb``) a grey frame among colour ones, is skipped; version 3 resized such a frame on
#: its own into the clip, so a cache of 3 may hold garbage motion for it. 5 (2026-12-07): apex neighbours stay after
#: the onset and up to the offset (:func:`select_neighbours`); the alignment search of a clip without a face on its
#: onset passes over a frame unreadable or of another size (version 4 aligned on such a frame, or skipped the clip);
#: an apex spotted as ``middle`` is the middle of onset..offset, not of the frames present. 6 (2026-12-07):
#: ``landmarks.npy`` in ``cv2.resize``'s pixel-centre convention (:meth:`icegan.data.align.Alignment.to_output`; 0.33
#: px off at 128 from a 380 px crop before); an alignment frame with several faces is noted in ``notes``
PIPELINE_VERSION = 6
#: bump when the ``sequences: true`` output changes (part of the cache hash of such caches only, as
#: ``sequences_version`` in :func:`key_settings`, so that a cache without sequences keeps its key). 2 (2026-12-07):
#: ``sequences/<index>_frames.npy`` holds each sequence's frame numbers; a sequence whose apex is after its offset
#: runs to the apex; a clip whose offset is before its onset has a 0-length sequence (version 1, unversioned, had no
#: frame numbers, stopped at such an offset, and saved an object array that does not load for the last)
SEQUENCES_VERSION = 2
#: bump when the decoding of PNG frames changes (part of the cache hash of caches with PNG frames only, as
#: ``png_version`` in :func:`key_settings`, so that the caches of JPEG datasets keep their keys). 1 (2026-12-07): a
#: colour PNG read grey is converted by ``cv2.cvtColor``, as other formats (:func:`flownet.frame_io.read_frame`; before
#: by libpng, -0.5 grey levels on average)
PNG_VERSION = 1
NEIGHBOUR_OFFSETS = (-2, -1, 1, 2)


@dataclass
class DatasetSpec:
    """One dataset to prepare.

    Attributes:
        name: ``casme2 | samm | smic``, or ``clips``: your own clips listed in a CSV (:mod:`icegan.data.clip_list`;
            ``root`` is the CSV, ``annotations`` and ``composite_only`` do not apply).
        root: dataset root (``{shared_data}`` and ``{data_root}`` are replaced by
            :func:`icegan.paths.shared_data_root` / :func:`icegan.paths.default_data_root`).
        annotations: sheet path (same placeholders); default: the official sheet found near the root.
        mode: ``raw`` (detect + align) or ``cropped`` (resize only).
        subjects: restrict to these subjects (``sub01`` or ``casme2/sub01``; SMIC's ``s01`` and ``s1`` name one);
            empty = all.
        clips: restrict to these clips (``EP02_01f`` or ``sub01/EP02_01f``); empty = all.
        composite_only: only MEGC2019 composite clips (class3 set); False = every sheet clip.
    """

    name: Literal["casme2", "samm", "smic", "clips"]
    root: str
    annotations: Optional[str] = None
    mode: Literal["raw", "cropped"] = "cropped"
    subjects: list[str] = field(default_factory=list)
    clips: list[str] = field(default_factory=list)
    composite_only: bool = True


@dataclass
class PrepareConfig:
    """Settings of ``icegan prepare`` (YAML: ``configs/prepare_casme2.yaml``).

    Attributes:
        datasets: the datasets to prepare (one cache holds them all).
        cache_root: where caches go; None = ``default_data_root()/cache``.
        size: output side in pixels (square), at least 8 (ValueError ``size must be >= 8, got 4`` otherwise).
        color: ``gray`` (H, W) or ``rgb`` (H, W, 3).
        detector: face detector of face_recognition: ``hog`` (default) or ``cnn``.
        margin: crop margin as a fraction of the landmark box side, each side (raw mode).
        refine: second landmark detection inside the first crop (raw mode).
        neighbours: also output apex±1, apex±2.
        sequences: also output every frame onset..offset present on disk (onset..apex when the apex is after the
            offset), with their frame numbers (:meth:`PreparedFrames.sequence`, :meth:`PreparedFrames.sequence_frames`).
        landmarks: raw mode: also detect the 68 landmarks of every output key frame (face detection + predictor on
            up to six frames per clip) for ``landmarks.npy`` / :attr:`PreparedFrames.landmarks`, in output pixels.
            False (the default): those rows are NaN; no command reads them, and every other array is the same.
        apex_spotting: how missing apexes (SMIC) are spotted: ``dis`` / ``farneback`` (largest
            head-motion-compensated flow magnitude from the onset in the face) or ``middle``
            (the clip's middle frame); see :mod:`icegan.data.spotting`.
        workers: parallel processes (1 = in this process).
        progress: show a tqdm progress bar.
    """

    datasets: list[DatasetSpec] = field(default_factory=list)
    cache_root: Optional[str] = None
    size: int = 128
    color: Literal["gray", "rgb"] = "gray"
    detector: Literal["hog", "cnn"] = "hog"
    margin: float = 0.1
    refine: bool = True
    neighbours: bool = True
    sequences: bool = False
    landmarks: bool = False
    apex_spotting: Literal["dis", "farneback", "middle"] = "dis"
    workers: int = 1
    progress: bool = True

    def __post_init__(self):
        from icegan.config import check_ranges
        check_ranges(self, at_least={"size": 8, "workers": 0}, non_negative=("margin",))


class PrepareError(ValueError):
    """Preprocessing cannot run (bad config, no usable clip, corrupt cache): a problem of the input, reported by the
    commands in one line like any bad value."""


@dataclass
class PreparedFrames:
    """The cached arrays. N = prepared clips, S = output size.

    Attributes:
        onset: (N, S, S) or (N, S, S, 3) uint8.
        apex: same shape as onset.
        apex_neighbours: (N, 4, S, S[, 3]) uint8, order apex−2, apex−1, apex+1, apex+2
            (empty (N, 0, ...) when ``neighbours`` was off).
        landmarks: (N, 6, 68, 2) float32 output pixels (onset, apex−2, apex−1, apex, apex+1, apex+2);
            NaN where not computed.
    """

    onset: np.ndarray
    apex: np.ndarray
    apex_neighbours: np.ndarray
    landmarks: np.ndarray
    cache_dir: Path

    def sequence(self, index: int) -> np.ndarray:
        """(T, S, S[, 3]) uint8 onset..offset frames of clip ``index`` (manifest row ``index``), read from
        ``sequences/<index>.npy``: the frames present on disk and readable, in frame order; onset..apex when the apex
        is after the offset (a wrong cell, noted), so the apex is in it. T = 0 (shape (0, S, S[, 3])) for a clip whose
        offset is before its onset (a wrong cell, noted in the manifest's ``notes``: ``sequence empty: ...``).

        Frames missing on disk or unreadable are left out (noted), so row ``i`` is frame ``seq_first + i`` only
        when none is: index by frame number through :meth:`sequence_frames`, e.g. the apex is
        ``seq[np.flatnonzero(frames == apex)[0]]`` with ``frames = sequence_frames(index)``.

        Raises:
            FileNotFoundError: the cache was built with ``sequences: false``.
            PrepareError: the file holds no frame array (an object array, as an older icegan wrote for a clip
                whose offset is before its onset), naming the clip, the file and the folder to delete.
        """
        p = self.cache_dir / "sequences" / f"{index:05d}.npy"
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no sequence cached (prepare with sequences: true)")
        try:
            return np.load(p)
        except ValueError as exc:           # "Object arrays cannot be loaded when allow_pickle=False"
            raise PrepareError(f"clip {self._clip_name(index)}: {p} holds no frame array ({exc}): the cache was "
                               f"written by an older icegan; delete the folder {self.cache_dir} and prepare "
                               f"again") from None

    def sequence_frames(self, index: int) -> np.ndarray:
        """(T,) int64 frame numbers (as in the manifest's onset, apex, offset) of the frames of
        :meth:`sequence` ``(index)``, row for row, ascending; read from ``sequences/<index>_frames.npy``.

        Raises:
            FileNotFoundError: the cache was built with ``sequences: false``, or by an older icegan that kept no
                frame numbers (the message names the clip and the folder to delete before preparing again).
        """
        d = self.cache_dir / "sequences"
        p = d / f"{index:05d}_frames.npy"
        if not p.is_file():
            if not (d / f"{index:05d}.npy").is_file():
                raise FileNotFoundError(f"{p}: no sequence cached (prepare with sequences: true)")
            raise FileNotFoundError(f"clip {self._clip_name(index)}: {p} not found: the cache was written by an "
                                    f"older icegan that kept no frame numbers; delete the folder {self.cache_dir} "
                                    f"and prepare again")
        return np.load(p)

    def _clip_name(self, index: int) -> str:
        """The key of manifest row ``index`` (``casme2/sub01/EP02_01f``) for an error message; ``index <n>`` when
        the manifest cannot tell."""
        try:
            m = pd.read_csv(self.cache_dir / "manifest.csv", usecols=["index", "key"])
            return str(m.loc[m["index"] == index, "key"].iloc[0])
        except (OSError, ValueError, KeyError, IndexError):
            return f"index {index}"


@dataclass
class PreparedDataset:
    """A prepared (cached) dataset: ``manifest`` rows align with ``frames`` arrays (column ``index``).

    ``manifest`` columns: index, key, dataset, subject (prefixed), clip, emotion, class3 (int: 0
    negative, 1 positive, 2 surprise; -1 for clips outside the composite when ``composite_only: false``),
    class5, objective_class, onset, apex, offset, apex_method, mode, apex_m2, apex_m1, apex_p1,
    apex_p2 (frame numbers used for the neighbours), align_frame, align_angle_deg, crop_native,
    affine (6 numbers, frame → crop pixels), landmark_fallbacks, seq_first, seq_last, notes.
    ``skipped``: key, reason for every clip not prepared.
    """

    manifest: pd.DataFrame
    frames: PreparedFrames
    skipped: pd.DataFrame
    cache_dir: Path
    settings: dict

    def __len__(self) -> int:
        return len(self.manifest)


# ---------------------------------------------------------------------------------------------
def _expand(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    if "{shared_data}" in path:         # only then: an installed icegan without $ICEGAN_SHARED_DATA has none
        path = path.replace("{shared_data}", str(shared_data_root()))
    return path.replace("{data_root}", str(default_data_root()))


def _no_clip_text(found: dict, kept: int, missing: int, problems: int, layout: int) -> str:
    """Why a dataset entry gave no clip to prepare, from what :func:`dataset_records` ``found`` and the counts of its
    records ``kept`` by the filters, of those skipped for a ``missing`` subject folder or for ``problems`` of their
    frames or cells, and of the loader's ``layout`` problems: ``"1 sheet row, 0 of them composite clips
    (composite_only: true keeps ...; set composite_only: false to prepare every sheet row)"``."""
    n, what = found["listed"], found["what"]
    parts = [f"{n} {what}{'' if n == 1 else 's'}"]
    if found["composite_only"]:
        parts.append(f"{found['in_scope']} of them composite clips"
                     + (" (composite_only: true keeps the MEGC2019 negative/positive/surprise clips only; set "
                        "composite_only: false to prepare every sheet row)" if n and not found["in_scope"] else ""))
    if kept != found["in_scope"]:
        parts.append(f"{kept} kept by the subjects/clips filters")
    if kept:
        why = [f"{missing} of subjects whose folder is not on disk" if missing else "",
               f"{problems} for problems of their frames or sheet cells" if problems else ""]
        parts.append(f"all {kept} skipped ({', '.join(w for w in why if w)})")
    if layout:
        parts.append(f"{layout} layout problem{'' if layout == 1 else 's'} (folders or sheet cells not read)")
    return ", ".join(parts)


def dataset_records(spec: DatasetSpec, layout_problems: Optional[list[dict]] = None,
                    found: Optional[dict] = None) -> list[ClipRecord]:
    """Clip records of one :class:`DatasetSpec` (filters applied, SMIC apex not yet spotted).

    Args:
        spec: the dataset entry.
        layout_problems: when given, the loader's folder problems (SMIC: a class folder that is no class, a subject
            without ``micro/``) are appended to it as ``{"key", "reason"}``, for the skipped list.
        found: when given, filled with what the loader found before the filters, for the error of a dataset that
            yields no clip: ``"listed"`` (count), ``"what"`` (``"sheet row"``, ``"clip folder"`` (SMIC) or
            ``"listed clip"``), ``"in_scope"`` (records before the ``subjects`` / ``clips`` filters) and
            ``"composite_only"`` (whether ``composite_only`` narrowed the listing: a sheet's, with it true), and
            ``"loader"`` (the dataset's loader, its sheet read: for :func:`_unsheeted_hint`).

    A ``subjects`` name and a layout problem's subject folder are read as the dataset's subject (SMIC's
    ``subject_id``: ``s01``, ``S1`` and ``s1`` are subject ``s1``, with the problems of folder ``s01``); others in
    lower case.

    Raises:
        PrepareError: a ``subjects`` or ``clips`` filter names something the dataset does not hold (a typo would
            otherwise leave no clip, or fewer, with no word of why): the names and examples of real ones.
    """
    from .check import _loader
    ds = _loader(spec.name, _expand(spec.root), _expand(spec.annotations))
    recs = ds.records(composite_only=spec.composite_only)
    problems = getattr(ds, "layout_problems", [])             # keys like "smic/s2/micro/happy": of subject s2
    if found is not None:
        sheet = hasattr(ds, "sheet_rows")
        found.update(in_scope=len(recs), composite_only=sheet and spec.composite_only, loader=ds,
                     listed=len(ds.sheet_rows()) if sheet else len(recs) + len(getattr(ds, "skipped_clip_folders", [])),
                     what="sheet row" if sheet else "clip folder" if spec.name == "smic" else "listed clip")

    def subject(key: str) -> str:                               # "casme2/sub01" (or a problem's key) → "sub01"
        return key.split("/")[1]

    def names(r: ClipRecord) -> set[str]:                       # how a clips filter may name a clip, lower case
        return {r.clip.lower(), f"{subject(r.subject)}/{r.clip}".lower(), r.key.lower()}

    def where(key: str) -> str:
        return (f"the {key} filter of dataset '{spec.name}' (datasets.N.{key} in an icegan prepare config, "
                f"data.prepare.datasets.N.{key} in train.py)")
    # the subject a filter name or a problem key's folder is: SMIC's folder s01 is subject s1 (SMIC.subject_id)
    sid = getattr(ds, "subject_id", str.lower)
    kept = {sid(s.split("/")[-1]) for s in spec.subjects}
    if kept:
        # a subject whose folder the loader could not read (SMIC without micro/) exists: its problem is reported
        have = {sid(subject(k)): subject(k) for k in [r.subject for r in recs] + [p["clip"] for p in problems]}
        unknown = [s for s in spec.subjects if sid(s.split("/")[-1]) not in have]
        if unknown:
            raise PrepareError(f"{where('subjects')}: {unknown} not among its subjects "
                               f"({', '.join(sorted(have.values())[:8])}{', ...' if len(have) > 8 else ''})")
        recs = [r for r in recs if sid(subject(r.subject)) in kept]
        problems = [p for p in problems if sid(subject(p["clip"])) in kept]
    if layout_problems is not None:
        layout_problems += [{"key": p["clip"], "reason": p["problem"]} for p in problems]
    if spec.clips:
        want = {c.lower() for c in spec.clips}
        known = set().union(*map(names, recs))
        unknown = [c for c in spec.clips if c.lower() not in known]
        if unknown:
            scope = "composite clips" if spec.composite_only else "clips"
            raise PrepareError(f"{where('clips')}: {unknown} not among its {scope}"
                               f"{' of the subjects kept' if spec.subjects else ''} (e.g. "
                               f"{', '.join(r.clip for r in recs[:5])})")
        recs = [r for r in recs if names(r) & want]
    return recs


def _rename_hint(spec: DatasetSpec, recs: list[ClipRecord], missing: Collection[str]) -> str:
    """The end of prepare's warning about subject folders not on disk (``missing``: ``casme2/sub01``) that names the
    folders on disk likely to be theirs (``sub1``, ``1`` or ``01`` for ``sub01``): the hint of ``icegan data check``
    (:func:`icegan.data.check.rename_hints`); empty when there is none. The sheet is read again only when a folder
    of the root could be one (:func:`icegan.data.check.padding_mismatches`)."""
    from .check import _loader, padding_mismatches, rename_hints
    names = [s.split("/", 1)[-1] for s in missing]
    roots = {r.subject_dir.parent for r in recs if r.subject_dir is not None}       # a clip list has none
    folders = [p.name for root in roots if root.is_dir() for p in root.iterdir() if p.is_dir()]
    if not padding_mismatches(folders, names):
        return ""
    ds = _loader(spec.name, _expand(spec.root), _expand(spec.annotations))
    renames = rename_hints(ds, names)
    return ("; folders named as these subjects but for the zero padding or letters of the number: rename "
            + ", ".join(f"{Path(ds.root) / f} to {s}" for f, s in renames.items())) if renames else ""


def _unsheeted_hint(ds, rec: ClipRecord, found: dict[str, list[str]]) -> str:
    """The end of prepare's warning about a clip of the sheet whose clip folder is not on disk (its subject folder is):
    the clip folders of that subject folder that the sheet does not name (``EP02_01`` for ``EP02_01f``, a typo or a
    rename), as ``icegan data check`` lists them (:func:`icegan.data.check._not_in_sheet`); empty when there is none,
    and for a dataset without a sheet (SMIC, a clip list). ``ds``: the dataset entry's loader (:func:`dataset_records`'
    ``found["loader"]``); ``found`` caches the listing of the entry (the root listed once per entry; pass one empty
    dict per entry)."""
    if "unsheeted" not in found:
        from .check import _not_in_sheet
        found["unsheeted"] = _not_in_sheet(ds, ds.disk_clips())         # "casme2/sub01/EP02_01"
    here = [c.split("/")[2] for c in found["unsheeted"] if c.split("/")[1].lower() == rec.subject_dir.name.lower()]
    if not here:
        return ""
    return (f"; clip folders in {rec.subject_dir} that the sheet does not name: {', '.join(here[:8])}"
            f"{', ...' if len(here) > 8 else ''} (if one is this clip's, rename it {rec.clip})")


def composite_records(dataset: str, root: str | Path, annotations: Optional[str | Path] = None,
                      composite_only: bool = True):
    """Yield the (composite) :class:`ClipRecord` s of a dataset root + sheet, in sheet/tree order.

    Records come whether or not their frames are usable; see :func:`icegan.data.check.record_problems`.
    """
    from .check import _loader
    yield from _loader(dataset, root, annotations).records(composite_only=composite_only)


def _settings(cfg: PrepareConfig) -> dict:
    return {"pipeline_version": PIPELINE_VERSION, "size": cfg.size, "color": cfg.color,
            "detector": cfg.detector, "margin": cfg.margin, "refine": cfg.refine,
            "neighbours": cfg.neighbours, "sequences": cfg.sequences, "landmarks": cfg.landmarks,
            "apex_spotting": cfg.apex_spotting}


#: settings only raw-mode clips use (the alignment's crop and the key-frame landmarks); ``detector`` is used by raw
#: clips and by apex spotting, ``apex_spotting`` by clips without an apex (SMIC), in either mode
RAW_ONLY_SETTINGS = ("margin", "refine", "landmarks")


def key_settings(settings: dict, tasks: list[tuple[ClipRecord, str]]) -> dict:
    """The part of ``settings`` (:func:`_settings`) that decides the output of ``tasks``' clips (``(record, mode)``),
    for the cache key and ``settings.json``: every setting, less :data:`RAW_ONLY_SETTINGS` when no clip is in ``raw``
    mode, ``apex_spotting`` when every clip has its apex, and ``detector`` when neither applies. So a cropped dataset
    (resize only) keeps its cache whatever the raw-mode settings. With ``sequences`` on, also ``sequences_version``
    (:data:`SEQUENCES_VERSION`); with a PNG frame among the clips', ``png_version`` (:data:`PNG_VERSION`)."""
    raw = any(mode == "raw" for _, mode in tasks)
    spot = any(rec.apex is None for rec, _ in tasks)
    drop = set() if raw else set(RAW_ONLY_SETTINGS)
    if not spot:
        drop.add("apex_spotting")
    if not (raw or spot):
        drop.add("detector")
    out = {k: v for k, v in settings.items() if k not in drop}
    if settings.get("sequences"):       # only such caches change with the sequences' layout
        out["sequences_version"] = SEQUENCES_VERSION
    if any(f.suffix.lower() == ".png" for rec, _ in tasks for f in rec.frame_paths):
        out["png_version"] = PNG_VERSION
    return out


#: whether ``os.kill(pid, 0)`` only asks if a process runs (:data:`flownet.io.PROBE_PIDS`: not on Windows, where a
#: left ``.tmp`` folder is judged by its age alone); a temporary cache folder of a process that no longer runs is
#: removed once it is older than :data:`STALE_TMP_SECONDS` (:data:`flownet.io.STALE_TMP_SECONDS`, an hour: a process
#: of the same number on another machine sharing the folder is given time to finish its few-second write)
_PROBE_PIDS = PROBE_PIDS


#: the apexes spotted in clips without one (SMIC), in a cache root beside its caches: ``{clip key: {"inputs",
#: "apex", "apex_method"}}`` (:func:`_spot_inputs`), so that a cache of the same clips in another size, colour or
#: mode does not spot them again (seconds per clip)
SPOTTED_APEX_FILE = "spotted_apex.json"


def _spot_inputs(rec: ClipRecord, settings: dict) -> str:
    """SHA-1 of what the apex :func:`icegan.data.spotting.spot_record_apex` spots in ``rec`` depends on: the
    spotting rules' version (:data:`icegan.data.spotting.SPOTTING_VERSION`: an apex spotted by an older rule is
    spotted again), the method (``apex_spotting``), the ``detector`` (its face mask), the onset and offset, and each
    frame file of the span it reads (path, size, mtime); not the cache's size, colour or mode, which it is never
    given."""
    from . import spotting
    h = hashlib.sha1(json.dumps([spotting.SPOTTING_VERSION, settings["apex_spotting"], settings["detector"],
                                 rec.onset, rec.offset]).encode())
    for _, path in rec.spotting_span():
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _read_spotted(root: Path) -> dict:
    """The apexes spotted before (:data:`SPOTTED_APEX_FILE` in ``root``); ``{}`` when there is none or it does not
    read as JSON (it is only a shortcut: its clips are spotted again)."""
    try:
        got = json.loads((root / SPOTTED_APEX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return got if isinstance(got, dict) else {}


def _with_spotted_before(rec: ClipRecord, settings: dict, known: dict, inputs: dict[str, str]) -> ClipRecord:
    """``rec`` with the apex spotted before in the same frame files by the same method, detector and spotting rules'
    version (``known``: :func:`_read_spotted`), as :func:`icegan.data.spotting.spot_record_apex` would give it; ``rec``
    itself when it has an apex or none was spotted in these inputs (``inputs``: :func:`_spot_inputs` of each clip
    without an apex)."""
    from .spotting import with_spotted_apex
    entry = known.get(rec.key)
    if rec.apex is not None or not isinstance(entry, dict) or entry.get("inputs") != inputs[rec.key]:
        return rec
    try:
        return with_spotted_apex(rec, entry["apex"], entry["apex_method"], settings["apex_spotting"])
    except (KeyError, ValueError, TypeError):          # an entry edited by hand: spotted again
        return rec


def _keep_spotted(root: Path, tasks: list[tuple[ClipRecord, str]], results: dict[str, dict],
                  inputs: dict[str, str]) -> None:
    """Add the apexes spotted in ``tasks`` without one (their ``results``' records; ``inputs``: :func:`_spot_inputs`
    of each) to :data:`SPOTTED_APEX_FILE` in ``root`` (written whole; entries of other clips kept)."""
    new = {rec.key: {"inputs": inputs[rec.key], "apex": int(res["record"].apex),
                     "apex_method": res["record"].apex_method}
           for rec, _ in tasks if rec.apex is None and "error" not in (res := results[rec.key])}
    if not new:
        return
    known = _read_spotted(root)
    if all(known.get(k) == v for k, v in new.items()):
        return
    root.mkdir(parents=True, exist_ok=True)
    write_text_whole(root / SPOTTED_APEX_FILE, json.dumps({**known, **new}, indent=1, sort_keys=True))


def _remove_stale_tmp(root: Path, digest: str) -> None:
    """Remove ``root/.tmp-<digest>-<pid>`` folders left by a prepare killed while it wrote its cache (the arrays of
    every clip: up to gigabytes with ``sequences``), and ``.incomplete-<digest>-<pid>`` ones left by a prepare killed
    while it removed an incomplete cache folder (:func:`_remove_incomplete`), when that process no longer runs here
    (not asked on Windows, :data:`_PROBE_PIDS`) and the folder is older than :data:`STALE_TMP_SECONDS`
    (:func:`flownet.io.remove_stale`, the rule of every cache's temporaries); each removal is logged."""
    remove_stale(root, rf"\.(?:tmp|incomplete)-{digest}-(?P<pid>[0-9]+)", f"the prepared-clip cache {root / digest}",
                 probe_pids=_PROBE_PIDS, max_age=STALE_TMP_SECONDS)


#: the end of the skip reason of a clip that failed on a read error of the file system (:class:`FrameAccessError`)
RETRY_NOTE = ("; a read error of the file system, not of the data: the clip is prepared again by the next icegan "
              "prepare of this config (or job preparing it), once the file can be read (check its permissions)")

#: the marker of a cache written while some of its clips met a read error of the file system (permission denied, an
#: I/O error: :class:`FrameAccessError`), in place of ``COMPLETE``: the cache loads (:func:`load_prepared`) but is no
#: cache hit, so the next prepare of the same inputs and settings prepares those clips again, taking the others from
#: the ``.partial-<hash>`` folder kept beside it, and writes the cache anew in its place (:func:`_remove_incomplete`).
#: It holds JSON ``{clip key: reason}``.
RETRY_MARKER = "RETRY"


def _retry_id(folder: Path) -> Optional[tuple[int, int, int]]:
    """(device, inode, mtime in ns) of ``folder``'s :data:`RETRY_MARKER`, written once with the cache: it tells the
    RETRY cache a prepare found when it started from one another prepare of the same inputs put in its place since;
    None when the folder has no such marker."""
    try:
        st = os.stat(folder / RETRY_MARKER)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns


def _keep_in_place(folder: Path, found: Optional[tuple[int, int, int]]) -> bool:
    """Whether the cache folder ``folder`` is one a prepare must not replace: a ``COMPLETE`` cache, or a
    :data:`RETRY_MARKER` one other than the one this prepare found when it started (``found``: its
    :func:`_retry_id`, None when there was none), written meanwhile by a concurrent prepare of the same inputs (the
    ranks of a torchrun job), which may be reading its sequences from it."""
    return (folder / "COMPLETE").is_file() or _retry_id(folder) not in (None, found)


def _refuse_link(final: Path) -> None:
    """Refuse a cache folder ``final`` that is a symbolic link (a cache moved to another disk and linked back) and
    holds no complete cache (one that does is a cache hit, and never comes here): replacing it would rename the link
    and write the new cache into the cache root, leaving the folder behind the link; a link to nothing (the disk not
    mounted) would fail every load after every clip had been prepared again.

    Raises:
        PrepareError: ``final`` is such a link, naming it, its target (resolved: an absolute path, whatever the
            link holds) and what to do (for a link to a folder: delete the link, or set ``cache_root`` to the
            target's folder).
    """
    if not final.is_symlink():
        return
    target = os.path.realpath(final)        # os.readlink may give a path relative to the link's folder
    if not final.exists():
        raise PrepareError(f"prepare: the cache folder {final} is a symbolic link to {target}, which does not exist "
                           f"(a disk not mounted, a folder moved or deleted?): mount or restore it, or delete the "
                           f"link {final} to prepare the cache again in {final.parent}")
    raise PrepareError(f"prepare: the cache folder {final} is a symbolic link to {target}, which holds no complete "
                       f"cache (no COMPLETE marker: clips to prepare again, or a copy cut short), and prepare does "
                       f"not replace a folder behind a link: delete the link {final} (and {target}, once you no "
                       f"longer need it) to prepare the cache again in {final.parent}, or set cache_root "
                       f"(data.prepare.cache_root in train.py) to {os.path.dirname(target)} to prepare it there")


def _remove_incomplete(final: Path, found: Optional[tuple[int, int, int]] = None) -> None:
    """Remove the cache folder ``final`` when it has no ``COMPLETE`` marker (a copy of the cache folder cut short, a
    cache of clips to prepare again: :data:`RETRY_MARKER`), so that the cache written now can take its place; a folder
    with ``COMPLETE``, a RETRY one other than the one this prepare found when it started (``found``: its
    :func:`_retry_id`; :func:`_keep_in_place`), or none, is left alone.

    Safe with other prepares of the same cache: the folder is first renamed to ``.incomplete-<hash>-<pid>`` beside
    it (one process wins the rename; the others find nothing to remove), and removed only if it is still to be
    replaced after the rename; one that another prepare put in place in the meantime is renamed back (or, its place
    taken again by a third, removed: the same inputs make the same cache). A leftover that cannot be removed now is
    removed later as a stale temporary (:func:`_remove_stale_tmp`).

    Raises:
        PrepareError: ``final`` cannot be renamed (permission denied, an immutable folder, a folder of another user
            in a sticky cache root: naming it and saying to delete it), is a symbolic link (:func:`_refuse_link`),
            or ``.incomplete-<hash>-<pid>`` of this process's pid, left by a killed prepare, cannot be removed
            (naming that leftover and saying to delete it).
    """
    if (final / "COMPLETE").is_file():
        return
    _refuse_link(final)
    if not final.is_dir() or _keep_in_place(final, found):
        return
    why = ("its clips met read errors of the file system, prepared again now" if (final / RETRY_MARKER).is_file()
           else "no COMPLETE marker: a prepare or a copy of the folder stopped before its end")
    aside = final.with_name(f".incomplete-{final.name}-{os.getpid()}")
    shutil.rmtree(aside, ignore_errors=True)        # a leftover of a killed process that had this pid
    if os.path.lexists(aside):      # (else the rename below fails, 'Directory not empty', naming the cache folder)
        raise PrepareError(f"prepare: cannot replace the cache folder {final} ({why}): {aside}, left by a prepare "
                           f"that was killed, is in the way and cannot be removed; delete {aside} (ask its owner if "
                           f"it is not yours) and run the command again")
    try:
        os.rename(final, aside)
    except FileNotFoundError:       # moved or replaced by another prepare meanwhile: nothing of ours to remove
        return
    except OSError as exc:
        raise PrepareError(f"prepare: cannot replace the cache folder {final} ({why}): renaming it failed "
                           f"({exc.strerror or exc}); delete that folder (ask its owner if it is not yours) and run "
                           f"the command again") from None
    if _keep_in_place(aside, found):            # put in place by another prepare between the check and the rename
        try:
            os.rename(aside, final)
            return
        except OSError:             # its place taken again meanwhile: that cache is the same; this copy goes
            pass
    else:
        log.info("prepare: replacing the cache folder %s (%s)", final, why)
    shutil.rmtree(aside, ignore_errors=True)


def _note_other_partials(root: Path, digest: str) -> None:
    """Log the ``.partial-<hash>`` folders in ``root`` other than ``digest``'s: prepares of other inputs or settings
    that were stopped, whose finished clips (up to gigabytes) stay until the same prepare runs again. Kept, never
    removed here (they are resumable work), but named with their size, so that a user who changed settings knows."""
    others = sorted(d for d in root.glob(".partial-*") if d.is_dir() and d.name != f".partial-{digest}")
    clips = size = 0
    for f in (f for d in others for f in d.glob("*.pkl")):
        try:
            size += f.stat().st_size
            clips += 1
        except OSError:             # removed meanwhile by the prepare it belongs to, which finished: not counted
            pass
    others = [d for d in others if d.is_dir()]
    if not others:
        return
    log.info("prepare: %d unfinished prepare(s) of other inputs or settings kept in %s (%s: %d clips, %.1f MB); "
             "running that prepare again finishes it, or delete a folder you no longer need", len(others), root,
             ", ".join(d.name for d in others[:3]) + (", ..." if len(others) > 3 else ""), clips, size / 1e6)

class _ResultUnpickler(pickle.Unpickler):
    """Reads a kept clip result (:func:`_keep_partial`) and nothing else: the only classes it builds are a
    :class:`ClipRecord`, paths and numpy arrays and scalars, so a ``.pkl`` planted in a cache folder that others can
    write cannot run code (``pickle.UnpicklingError`` naming the class; the clip is then prepared again)."""

    def find_class(self, module: str, name: str):
        allowed = ((module, name) == ("icegan.data.records", "ClipRecord")
                   or (module.split(".")[0] == "pathlib" and name.endswith("Path"))
                   or (module in ("numpy", "numpy.dtypes") and (name in ("ndarray", "dtype") or name.endswith("DType")))
                   or (module in ("numpy.core.multiarray", "numpy._core.multiarray")
                       and name in ("_reconstruct", "scalar"))
                   or (module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer"))
        if not allowed:
            raise pickle.UnpicklingError(f"a kept clip result holds no {module}.{name}")
        return super().find_class(module, name)


def _partial_file(partial: Path, key: str) -> Path:
    """The file of clip ``key``'s finished :func:`process_clip` result in a ``.partial-<hash>`` folder."""
    return partial / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.pkl"


def _read_partial(partial: Path, tasks: list[tuple[ClipRecord, str]]) -> dict[str, dict]:
    """The results of ``tasks``' clips that a stopped prepare of the same cache finished (``{key: result}``); a file
    that cannot be read (written by another version) is left out, and its clip prepared again."""
    import io
    found: dict[str, dict] = {}
    if not partial.is_dir():
        return found
    for rec, _ in tasks:
        f = _partial_file(partial, rec.key)
        if f.is_file():
            try:
                res = _ResultUnpickler(io.BytesIO(f.read_bytes())).load()
            except Exception as exc:                      # noqa: BLE001 (any unpickling failure: prepare it again)
                log.warning("prepare: %s cannot be read (%s); clip %s is prepared again", f, exc, rec.key)
                continue
            if isinstance(res, dict) and res.get("key") == rec.key and not res.get("retry"):
                found[rec.key] = res            # (a result touched by a read error of the file system: prepared again)
    return found


def _keep_partial(partial: Path, res: dict) -> None:
    """Write one finished clip's result into the ``.partial-<hash>`` folder, whole (a temporary file renamed). A
    failure (the folder removed meanwhile by a concurrent prepare of the same cache that finished) is logged and
    only costs the resume: the result is in memory. A result marked ``retry`` (:func:`process_clip`: a read error of
    the file system) is not kept: the next prepare prepares its clip again."""
    if res.get("retry"):
        return
    f = _partial_file(partial, res["key"])
    tmp = f.with_name(f.name + f".{os.getpid()}.tmp")
    try:
        partial.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, f)
    except OSError as exc:
        log.debug("prepare: clip %s not kept in %s (%s)", res["key"], partial, exc)
        tmp.unlink(missing_ok=True)


def inputs_hash(tasks: list[tuple[ClipRecord, str]], settings: dict) -> str:
    """16-hex-digit SHA-1 of the settings that apply to ``tasks`` (:func:`key_settings`) and the inputs (labels,
    SAMM's objective class, frame numbers, and each frame file's name, size and mtime), in task order."""
    h = hashlib.sha1(json.dumps(key_settings(settings, tasks), sort_keys=True).encode())
    for rec, mode in tasks:
        labels = [rec.key, mode, rec.emotion, rec.class3, rec.onset, rec.apex, rec.offset, rec.apex_method]
        if rec.objective_class is not None:     # SAMM's, a column of the manifest (absent elsewhere: those keys hold)
            labels.append(rec.objective_class)
        h.update(json.dumps(labels).encode())
        for p in rec.frame_paths:
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def select_neighbours(rec: ClipRecord, apex: int, unreadable: Collection[int] = (),
                      reasons: Optional[dict[int, str]] = None) -> tuple[list[int], list[str]]:
    """Frame numbers for apex−2, apex−1, apex+1, apex+2: the frame itself when present, else the
    present frame nearest to it (ties: towards the apex); returns the numbers and notes on substitutions.

    Neighbours stay after the onset and, when the offset is known and not before the apex, up to the offset: a
    frame at or before the onset (the neutral face: apex−1 of an apex at onset+1) or after the offset is replaced
    as an absent one is, by the nearest frame inside (the apex itself, at worst), which
    :func:`icegan.gan.pairs.load_prepared_pairs` does not pair twice. Frames in ``unreadable`` (files on disk that
    cannot be decoded) count as absent; the apex must not be one. ``reasons``: why a frame of ``unreadable`` was
    not used, said in its note (``"size 100×100, expected 231×282"``: a readable frame of another size than the
    onset's); default ``"unreadable"``."""
    def inside(n: int) -> bool:             # after the onset, up to the offset (:func:`neighbour_inside`)
        return neighbour_inside(n, rec.onset, apex, rec.offset)
    nums = np.array([n for n in rec.frame_numbers if n not in unreadable and (inside(n) or n == apex)])
    out, notes = [], []
    for d in NEIGHBOUR_OFFSETS:
        t = apex + d
        if t in rec.frame_numbers and t not in unreadable and inside(t):
            out.append(t)
            continue
        dist = np.abs(nums - t) * 2 + (np.abs(nums - apex) > abs(d))  # tie-break towards the apex
        n = int(nums[np.argmin(dist)])
        out.append(n)
        if not inside(t):
            why = (f"at or before the onset {rec.onset}" if rec.onset is not None and t <= rec.onset
                   else f"after the offset {rec.offset}")
        else:
            why = (f"{(reasons or {}).get(t, 'unreadable')} ({rec.frame_path(t).name})" if t in unreadable
                   else "not on disk")
        notes.append(f"apex{d:+d} frame {t} {why}, used {n}")
    return out, notes


class _OddFrameError(ValueError):
    """A frame whose size (or, in colour, whose grey or colour) is not its clip's onset frame's
    (:func:`process_clip`). ``short``: the reason in a few words for a note (``"size 100×100, expected 231×282"``)."""

    def __init__(self, message: str, short: str):
        super().__init__(message)
        self.short = short


def _grey(image: np.ndarray) -> bool:
    """Whether an RGB frame holds a greyscale image (R = G = B at every pixel: a grey file decoded in colour)."""
    return bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())


def _read(path: Path, color: str) -> np.ndarray:
    """One frame, grey (H, W) or RGB (H, W, 3) uint8.

    Raises:
        FrameAccessError: the file cannot be opened or read (an OSError: ``cannot read image <path>: Permission
            denied``, the text of :func:`flownet.frame_io.read_frame`).
        ValueError: the file cannot be decoded or was cut short (:func:`flownet.frame_io.read_frame`, naming it).
    """
    import cv2

    from flownet.frame_io import read_frame
    img = read_frame(path, cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR)
    return img if color == "gray" else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def process_clip(rec: ClipRecord, mode: str, settings: dict) -> dict:
    """Prepare one clip (runs in a worker). Returns a dict of arrays and manifest fields (``warnings``: an apex
    neighbour that could not be read or is of another size, with the file and the frame used in its place, one not on
    disk though inside the clip (after the onset, up to the offset), with its folder and the frame used, and a
    raw clip's alignment frame showing several faces, with their number and the largest one's box, the one used; a
    raw clip's onset frame without a face (aligned on another frame, the onset image kept); an onset or apex crop
    of one grey level (a blank frame: its flow map is meaningless), with the frame's file; each also in ``notes``;
    for :func:`prepare_dataset` to log; ``outside_share``, for a raw clip whose crop lies more than
    :data:`OUTSIDE_WARN` outside its frame (face crops prepared in mode raw), the share, said in ``notes`` with
    the box and frame and warned of once per dataset entry by :func:`prepare_dataset`, :func:`outside_text`), or
    ``{"key", "error"}`` when the clip cannot be prepared (the reason names the clip and frame). A result touched
    by a :class:`FrameAccessError` or another OSError (a frame the file system would not let this process read:
    the clip failed, or a neighbour or sequence frame was replaced or left out for it) lists their messages in
    ``retry`` (empty otherwise): :func:`prepare_dataset` prepares it again next time rather than keep it for good.
    With ``sequences``, the frames of onset..offset not on disk are listed in ``notes`` (``sequence frames
    missing, left out: 400-402``)."""
    import cv2
    cv2.setNumThreads(1)
    from .align import apply_alignment, compute_alignment, outside_share, resize_cropped
    from . import landmarks as face
    from .spotting import spot_record_apex
    size, color = settings["size"], settings["color"]
    notes: list[str] = list(rec.notes)            # the sheet's and the frame listing's (data check shows them too)
    access: list[str] = []                        # FrameAccessErrors met: the result is not kept for good

    def read(n: int) -> np.ndarray:
        try:
            return _read(rec.frame_path(n), color)
        except FrameAccessError as exc:
            access.append(str(exc))
            raise
    try:
        if rec.apex is None:
            rec = spot_record_apex(rec, method=settings["apex_spotting"], detector=settings["detector"])
            notes = list(rec.notes)               # with the note of an apex spotted at the edge of its range
        # an unreadable onset or apex skips the clip (ValueError below); an unreadable neighbour counts as absent
        images = {rec.onset: read(rec.onset)}
        onset_hw = images[rec.onset].shape[:2]
        onset_grey = color == "rgb" and _grey(images[rec.onset])

        def read_like_onset(n: int) -> np.ndarray:
            """Frame ``n``; ValueError when its size is not the onset's (a frame of another release mixed in): one
            crop or alignment is applied to every frame of a clip, so such a frame would give garbage motion. In
            colour, likewise for a grey frame in a colour clip or the reverse."""
            im = read(n)
            if im.shape[:2] != onset_hw:
                raise _OddFrameError(other_size_text(
                    f"frame {n} ({rec.frame_path(n).name})", im.shape[1::-1],
                    f"the onset frame {rec.onset} ({rec.frame_path(rec.onset).name})", onset_hw[::-1]),
                    f"size {im.shape[1]}×{im.shape[0]}, expected {onset_hw[1]}×{onset_hw[0]}")
            if color == "rgb" and _grey(im) != onset_grey:
                kinds = ("greyscale", "in colour") if onset_grey else ("in colour", "greyscale")
                raise _OddFrameError(f"frame {n} ({rec.frame_path(n).name}) is {kinds[1]}, the onset frame "
                                     f"{rec.onset} ({rec.frame_path(rec.onset).name}) {kinds[0]} (color: rgb): "
                                     f"the frames of a clip must be alike (a frame saved in grey?)",
                                     f"{kinds[1]}, expected {kinds[0]}")
            return im

        images[rec.apex] = read_like_onset(rec.apex)
        nb: list[int] = []
        unreadable: set[int] = set()
        why_not: dict[int, str] = {}            # neighbour frame → why it was not used (unreadable, another size)
        short_why: dict[int, str] = {}          # the same in a few words, for select_neighbours' note
        while settings["neighbours"]:
            nb, nb_notes = select_neighbours(rec, rec.apex, unreadable, short_why)
            if unreadable.intersection(nb):     # each pass drops one more frame: picking one again would never end
                raise RuntimeError(f"{rec.key}: select_neighbours picked unreadable frame(s) "
                                   f"{sorted(unreadable.intersection(nb))} again (a bug: please report it)")
            try:
                for n in nb:
                    if n not in images:
                        images[n] = read_like_onset(n)
            except ValueError as exc:
                unreadable.add(n)               # pick again without it: the nearest readable frame
                why_not[n] = str(exc)
                if isinstance(exc, _OddFrameError):
                    short_why[n] = exc.short
                    notes.append(f"{exc}; not used")
                continue
            notes += nb_notes
            break
        # warned: a broken frame, or a gap inside onset..offset (no usable offset: inside the frames on disk)
        folder = rec.frame_path(rec.onset).parent
        bound = rec.offset if rec.offset is not None and rec.offset >= rec.apex else rec.frame_numbers[-1]
        replaced = [f"apex{d:+d} frame {t} ({rec.frame_path(t) if t in why_not else f'no file in {folder}'}) not used "
                    f"({why_not.get(t, 'not on disk')}); frame {n} ({rec.frame_path(n).name}) used in its place"
                    for d, n, t in zip(NEIGHBOUR_OFFSETS, nb, (rec.apex + d for d in NEIGHBOUR_OFFSETS))
                    if n != t and (t in why_not
                                   or not rec.has_frame(t) and neighbour_inside(t, rec.onset, rec.apex, bound))]
        key_frames = [rec.onset] + nb[:2] + [rec.apex] + nb[2:]  # onset, a-2, a-1, apex, a+1, a+2
        seq: list[int] = []
        if settings["sequences"]:
            last = rec.offset if rec.offset is not None else rec.frame_numbers[-1]
            if rec.onset <= last < rec.apex:    # apex after offset (noted, used as written): the apex is in it
                last = rec.apex
            seq = [n for n in rec.frame_numbers if rec.onset <= n <= last]
            absent = sorted(set(range(rec.onset, last + 1)) - set(seq))
            if absent:                          # said as an unreadable one is, below
                notes.append(f"sequence frames missing, left out: {ranges_text(absent)}")
            if last < rec.onset:                # a typo of the sheet or clip list, kept with a warning: no frame
                notes.append(f"sequence empty: offset {rec.offset} is before onset {rec.onset} (a wrong cell); "
                             f"correct it to cache the clip's frames")
        for n in sorted(set(seq) - set(images) - unreadable):
            try:
                images[n] = read_like_onset(n)
            except ValueError as exc:           # an unreadable frame between onset and offset: left out, as absent
                unreadable.add(n)
                if isinstance(exc, _OddFrameError):
                    notes.append(f"{exc}; not used")
        bad_seq = sorted(unreadable & set(seq))        # (neighbours found unreadable above are not read again)
        if bad_seq:
            seq = [n for n in seq if n not in unreadable]
            notes.append(f"sequence frame(s) {', '.join(map(str, bad_seq))} unreadable, left out")
        out: dict = {"key": rec.key, "record": rec, "mode": mode}
        lm = np.full((6, 68, 2), np.nan, np.float32)
        fallbacks = 0
        if mode == "raw":
            gray = (lambda im: im if im.ndim == 2 else cv2.cvtColor(im, cv2.COLOR_RGB2GRAY))
            # alignment on the onset frame, else on the nearest frame (in time) with a face, of the 15 nearest;
            # at equal distance the earlier one (before the onset the face is still neutral). A frame of those that
            # cannot be read or is not like the onset (another size: its crop would be of another place) is passed
            # over with a note: only an unreadable onset or apex skips a clip
            order = sorted(rec.frame_numbers, key=lambda n: (abs(n - rec.onset), n))
            align, align_frame, tried, passed, box = None, None, 0, 0, None
            for n in order[:15]:
                im = images.get(n)
                if im is None:
                    if n in unreadable:
                        passed += 1
                        continue
                    try:
                        im = read_like_onset(n)
                    except ValueError as exc:
                        passed += 1
                        notes.append(f"{exc}; not used for the alignment")
                        continue
                tried += 1
                g = gray(im)
                boxes = face.detect_faces(g, settings["detector"])
                box = boxes[0] if boxes else None       # the largest face; the box is kept for the landmarks
                pts = face.landmarks_in_box(g, box) if box is not None else None
                if pts is not None:
                    align = compute_alignment(g, settings["detector"], settings["margin"],
                                              settings["refine"], landmarks=pts)
                    align_frame = n
                    break
            if align is None:
                others = f", {passed} other frame(s) unreadable or of another size" if passed else ""
                return {"key": rec.key, "error": f"no face detected on the onset frame {rec.onset} nor on "
                                                 f"its {tried - 1} nearest frames{others} (whole-clip detection "
                                                 f"failure)"}
            if align_frame != rec.onset:
                notes.append(f"no face on onset frame {rec.onset}; aligned on frame {align_frame}")
                # said as a warning too: the onset frame is still the clip's onset image (blank, a blink, no face?)
                replaced.append(f"no face on onset frame {rec.onset} ({rec.frame_path(rec.onset).name}); aligned on "
                                f"frame {align_frame}, but frame {rec.onset} is still the onset image of the flow: "
                                f"check it (a blank or faceless onset gives a meaningless flow map)")
            share = outside_share(align, images[rec.onset].shape)     # every frame read is the onset's size
            if share > OUTSIDE_WARN:        # warned once per dataset entry, by prepare_dataset (outside_text)
                notes.append(f"{share:.0%} of the face crop ({align.native} px box on frame {align_frame}) lies "
                             f"outside the {images[rec.onset].shape[1]}x{images[rec.onset].shape[0]} frame and is "
                             f"filled by repeating its edge pixels: {OUTSIDE_ADVICE}")
                out["outside_share"] = share
            if len(boxes) > 1:      # a second person or a poster in view: the crop may be of someone else's face
                many = (f"{len(boxes)} faces detected on frame {align_frame} ({rec.frame_path(align_frame).name}); "
                        f"the largest, box (top, right, bottom, left) {tuple(int(v) for v in box)}, was used for the "
                        f"alignment")
                notes.append(many)
                replaced.append(many)
            warp = lambda im: apply_alignment(im, align, size)  # noqa: E731 - same matrix for every frame
            if settings["landmarks"]:
                uniq = sorted(set(key_frames))
                # the alignment frame (the onset, mostly) is a key frame: its face box is not detected again
                known = {uniq.index(align_frame): box} if align_frame in uniq else None
                pts, src = face.landmarks_on_frames([gray(images[n]) for n in uniq], settings["detector"], known=known)
                if (src < 0).all():
                    notes.append("landmarks: no face detected on any key frame")
                fallbacks = int(((src >= 0) & (src != np.arange(len(uniq)))).sum())
                if fallbacks:
                    notes.append(f"landmarks: {fallbacks} key frame(s) used a neighbouring frame's face box")
                by_frame = {n: align.to_output(pts[i], size) for i, n in enumerate(uniq)}
                lm = np.stack([by_frame[n] for n in key_frames]) if settings["neighbours"] else lm
                if not settings["neighbours"]:
                    lm[0], lm[3] = by_frame[rec.onset], by_frame[rec.apex]
            out.update(align_frame=align_frame, align_angle_deg=round(align.angle_deg, 3),
                       crop_native=align.native, affine=" ".join(repr(float(v)) for v in align.matrix.ravel()))
        else:
            warp = lambda im: resize_cropped(im, size)  # noqa: E731
            out.update(align_frame=None, align_angle_deg=None, crop_native=None, affine="")
        out["onset_img"] = warp(images[rec.onset])
        out["apex_img"] = warp(images[rec.apex])
        for what, n in (("onset", rec.onset), ("apex", rec.apex)):
            if out[f"{what}_img"].std() == 0:     # one grey level (a blank or black frame): no motion to see
                flat = (f"the {what} crop of frame {n} ({rec.frame_path(n).name}) is constant (every pixel "
                        f"{int(out[f'{what}_img'].flat[0])}): a flow map from it is meaningless; check the frame, or "
                        f"correct the clip's {what} in its sheet or clip list")
                notes.append(flat)
                replaced.append(flat)
        out["neighbours"] = np.stack([warp(images[n]) for n in nb]) if nb else None
        # a 0-length uint8 array for an empty sequence (offset before onset), never None: sequences/<index>.npy
        # must load without pickles (np.save(None) writes an object array)
        out["sequence"] = (np.stack([warp(images[n]) for n in seq]) if seq
                           else np.zeros((0,) + out["onset_img"].shape, np.uint8) if settings["sequences"] else None)
        out.update(landmarks=lm, neighbour_frames=nb, landmark_fallbacks=fallbacks, notes="; ".join(notes),
                   seq_first=seq[0] if seq else None, seq_last=seq[-1] if seq else None,
                   sequence_frames=[int(n) for n in seq], warnings=replaced,
                   retry=access)
        return out
    except (ValueError, KeyError, OSError) as exc:
        # never an empty reason (a ValueError() without text): read_skipped takes one for a row cut short
        error = str(exc).strip("'\"") or type(exc).__name__
        # a FrameAccessError met by read() is in access already; one met elsewhere (apex spotting reads the frames
        # itself, through flownet.frame_io.read_frame) is added here: either way the result is prepared again
        met = isinstance(exc, OSError) or (isinstance(exc, FrameAccessError) and str(exc) not in access)
        return {"key": rec.key, "error": error, "retry": access + ([error] if met else [])}


def worker_context(face_models: bool = True):
    """Multiprocessing context for preprocessing workers.

    ``forkserver`` (workers forked from a clean server process that has preloaded this module and, when
    ``face_models``, the face_recognition models: a job with no raw clip and no apex to spot never uses them, and
    loading them in the server costs seconds), else ``spawn``. Plain ``fork`` is avoided: forking a process whose
    OpenCV thread pool (or any other thread) is active can deadlock the child.
    """
    import multiprocessing as mp
    try:
        ctx = mp.get_context("forkserver")
        # first in either case, a module that makes the server ignore Ctrl-C (see _pool_map)
        ctx.set_forkserver_preload(["icegan.data.face_models_preload", "icegan.data.prepare", "icegan.data.landmarks"]
                                   if face_models else ["icegan.data.sigint_preload", "icegan.data.prepare"])
        return ctx
    except ValueError:  # no forkserver on this platform
        return mp.get_context("spawn")


def needs_face_models(jobs: list[tuple]) -> bool:
    """Whether any of ``jobs`` (``(rec, mode, ...)``) detects faces: a clip in ``raw`` mode (detection, alignment) or
    one whose apex is to be spotted (the face mask of :mod:`icegan.data.spotting`). A cropped clip with its apex is
    only resized."""
    return any(mode == "raw" or rec.apex is None for rec, mode, *_ in jobs)


def _worker_init() -> None:
    """Set up a pool worker: Ctrl-C ignored (it is the parent's: it stops the pool, see :func:`_pool_map`), the
    worker ended with its parent (the forkserver, itself ended with the prepare process: a prepare killed with
    SIGKILL left them alive for ever; :func:`icegan.data.parent_exit.exit_with_parent`), one thread each."""
    import signal

    from icegan.data.parent_exit import exit_with_parent
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2
    cv2.setNumThreads(1)


def _pool_map(workers: int, jobs: list[tuple]) -> Iterator[dict]:
    """Run :func:`process_clip` on each ``(rec, mode, settings)`` of ``jobs`` in ``workers`` processes; yield the
    results in completion order. The face models are preloaded into the workers only when a clip needs them
    (:func:`needs_face_models`).

    Ctrl-C (SIGINT, which a terminal sends to every process of the group) is the parent's alone: the forkserver and
    the workers ignore it (:mod:`icegan.data.face_models_preload`, :func:`_worker_init`), and while the pool runs the
    parent only notes it (a KeyboardInterrupt raised inside the pool's locks leaves them broken: "release unlocked
    lock"), then terminates the workers, shuts the pool down and raises :class:`KeyboardInterrupt`, which the
    commands report in one line.

    Raises:
        KeyboardInterrupt: SIGINT while the pool ran (the workers are terminated, results so far dropped).
    """
    import signal
    import threading
    main = threading.current_thread() is threading.main_thread()   # handlers can only be set there
    caught: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum)) if main else None
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=worker_context(needs_face_models(jobs)),
                             initializer=_worker_init)
    try:
        pending = {ex.submit(process_clip, *job) for job in jobs}
        while pending and not caught:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
        if caught:
            raise KeyboardInterrupt
    except BaseException:               # Ctrl-C, a failed worker, or the consumer gone: stop the workers now
        procs = list((getattr(ex, "_processes", None) or {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.terminate()
        ex.shutdown(wait=True)
        raise
    finally:
        if main:
            signal.signal(signal.SIGINT, old)
    ex.shutdown(wait=True)


def read_skipped(path: Path, fix: str, none_ok: bool = False) -> pd.DataFrame:
    """The clips listed in a ``skipped.csv``, a prepared cache's (:func:`prepare_dataset`) or a run's
    (:func:`icegan.pipeline.write_skipped`): columns ``key`` and ``reason``, text as written (a key ``001`` is not 1,
    a reason ``None`` or ``NA`` not NaN), one row per clip.

    Args:
        path: the file.
        fix: what the message about a damaged file says to do (the command to rerun).
        none_ok: a header alone reads as no clip (a cache's list when no clip was skipped); else it is refused (a
            run writes its list only when some clip was skipped).

    Raises:
        ValueError: the file cannot be read as such a list (empty, cut short by a kill of a version that wrote it in
            place or by a partial copy: a header or a last row cut, a clip without its reason; a row of more fields
            than the header); the message names the file and ``fix``.
    """
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype=str)
    except (OSError, ValueError) as exc:            # EmptyDataError, ParserError, UnicodeDecodeError: ValueErrors
        raise ValueError(f"{path} cannot be read ({type(exc).__name__}: {str(exc).strip()}); {fix}") from None
    # a first row of more fields than the header makes pandas take its first field for the index
    if (list(df.columns) != ["key", "reason"] or not isinstance(df.index, pd.RangeIndex) or not (len(df) or none_ok)
            or (df["reason"].str.strip() == "").any()):
        raise ValueError(f"{path} cannot be read (not a list of skipped clips with columns key, reason and a reason "
                         f"on every row: cut short or edited?); {fix}")
    return df


def load_prepared(cache_dir: str | Path) -> PreparedDataset:
    """Load a finished cache directory written by :func:`prepare_dataset`.

    A cache marked :data:`RETRY_MARKER` instead of ``COMPLETE`` (some clips met read errors of the file system)
    loads as a complete one.

    Raises:
        PrepareError: the folder is not a complete cache (names the missing file: without its ``COMPLETE`` marker, to
            run ``icegan prepare`` again, which replaces it; with the marker, a folder damaged after it was written,
            to delete it), or one of its files cannot be read (names the file and says to delete the folder;
            ``skipped.csv``: as :func:`read_skipped`).
    """
    d = Path(cache_dir)
    # a cache of clips to prepare again (RETRY) loads as a complete one; the next prepare replaces it
    marker = RETRY_MARKER if not (d / "COMPLETE").is_file() and (d / RETRY_MARKER).is_file() else "COMPLETE"
    for name in ("manifest.csv", "onset.npy", "apex.npy", "settings.json", marker):
        if not (d / name).is_file():
            if (d / marker).is_file():      # finished, then cut (a partial copy): a prepare would hit it again
                raise PrepareError(f"{d} is not a complete icegan cache: {name} missing (the folder was damaged "
                                   f"after it was written: a partial copy?); delete the folder {d} and run the "
                                   f"command again to rebuild it")
            # no marker: prepare replaces such a folder (_remove_incomplete)
            raise PrepareError(f"{d} is not a complete icegan cache: {name} missing (run `icegan prepare` again)")
    reading = "manifest.csv"
    try:          # a file damaged after the cache was finished (a disk full, a partial copy of the cache folder)
        # the names stay text as written: a clip list's clip "001" or "1.10" (or a SAMM-like subject "006") read as
        # a number would become 1 / 1.1 in features.csv and predictions.csv, a subject "NA" or a clip "None" NaN
        manifest = read_csv_names(d / "manifest.csv", ["notes", "affine", "key", "dataset", "subject", "clip",
                                                       "emotion"])
        for col in ("notes", "affine"):
            manifest[col] = manifest[col].fillna("")
        reading = "settings.json"
        settings = json.loads((d / "settings.json").read_text(encoding="utf-8"))
        arrays = {}
        for name in ("onset", "apex", "apex_neighbours", "landmarks"):
            reading = f"{name}.npy"
            arrays[name] = np.load(d / reading)
    except (OSError, EOFError, ValueError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PrepareError(f"{d / reading}: cannot be read ({str(exc).strip() or type(exc).__name__}): the cache "
                           f"is damaged; delete the folder {d} and run the command again to rebuild it") from None
    skipped = pd.DataFrame(columns=["key", "reason"])
    if (d / "skipped.csv").is_file():
        try:        # a header alone: no clip was skipped
            skipped = read_skipped(d / "skipped.csv", f"the cache is damaged; delete the folder {d} and run the "
                                                      f"command again to rebuild it", none_ok=True)
        except ValueError as exc:
            raise PrepareError(str(exc)) from None
    frames = PreparedFrames(**arrays, cache_dir=d)
    if len(frames.onset) != len(manifest):
        raise PrepareError(f"{d}: manifest has {len(manifest)} rows but onset.npy {len(frames.onset)}")
    return PreparedDataset(manifest=manifest, frames=frames, skipped=skipped, cache_dir=d, settings=settings)


def refuse_replaced_prepare(prepare: PrepareConfig, img_size: int, path: str | Path | None, overrides=(),
                            job: str = "icegan gan train", side: str = "the generator's and discriminator's side",
                            channel: str = "its generator and discriminator take one channel") -> None:
    """Refuse a ``data.prepare.size`` other than ``img_size`` or a ``data.prepare.color`` other than ``gray`` that a
    job preparing its faces at ``img_size`` pixels, in gray, would replace (:func:`icegan.gan.pairs.load_prepared_pairs`
    for ``icegan gan train``, ``load_samples`` for the main job), when given in ``overrides`` or in the file ``path``
    at a value other than :class:`PrepareConfig`'s default (:func:`icegan.config.where_set`) and, for the size,
    other than the file's own ``data.img_size`` (the size it records as used). Both load without a word: a run's
    ``config.yaml`` records ``data.prepare.size: 128`` for a run at 64 pixels (made before the main job recorded the
    size used) or the size used, and reproducing the run from it must load, also at another ``data.img_size`` given
    as an override. Call it with the ``path`` and ``overrides`` the config was loaded from,
    when its ``data.source`` is ``prepared``; ``job``, ``side`` and ``channel`` word the message.

    Raises:
        icegan.config.ConfigError: such a value, naming the key, the value, where it was given (``given as an
            override``, or the file) and what to set instead (a ``data.img_size`` only where it is a power of two
            >= 32, a side both jobs accept).
    """
    from icegan.config import ConfigError, file_value, where_set
    want = prepare.size
    how = {"size": (f"at data.img_size={img_size} pixels ({side})",
                    f"set data.img_size={want} for faces of that side" if want >= 32 and not want & (want - 1)
                    else "set data.img_size (a power of two >= 32, e.g. 64 or 128) for the side you want"),
           "color": (f"in gray ({channel})", "set data.prepare.color=gray")}
    for key, used in (("size", img_size), ("color", "gray")):
        value = getattr(prepare, key)
        where = where_set(f"data.prepare.{key}", path, overrides) if value != used else None
        if where is None:               # the run's value, or the code default left untouched
            continue
        if where != "command line" and (value == getattr(PrepareConfig(), key) or
                                        key == "size" and value == file_value("data.img_size", path)):
            # a run's config.yaml records the default the run replaced (an older run) or the value it used: neither
            # can be told from a value written, and reproducing a run from its config.yaml must load without a word
            continue
        given = "given as an override" if where == "command line" else f"in {where}"    # or a suite's overrides
        raise ConfigError(f"data.prepare.{key}={value} ({given}) is not used: {job} prepares its faces "
                          f"{how[key][0]}; {how[key][1]}, or leave data.prepare.{key} out")


def cache_root_of(cfg: PrepareConfig) -> Path:
    """The folder that holds the caches of ``cfg`` (each in ``<cache root>/<hash>/``; it need not exist yet).

    ``cfg.cache_root`` with ``{data_root}`` and ``{shared_data}`` replaced by :func:`icegan.paths.default_data_root`
    and :func:`icegan.paths.shared_data_root` (a leading ``~`` was made the home folder when the config was read,
    :func:`icegan.paths.expand_home`; no environment variable is expanded; a relative path stays relative to the
    working directory), or ``default_data_root() / "cache"`` when it is None or empty.
    """
    return Path(_expand(cfg.cache_root)) if cfg.cache_root else default_data_root() / "cache"


#: a raw-mode clip whose face crop lies more than this share outside its frame (:func:`icegan.data.align.outside_share`)
#: is warned about: its frames are likely face crops already (56 % on CASME II's cropped release; 8-11 % on its raw one)
OUTSIDE_WARN = 0.25
#: what a crop mostly outside its frame says of the frames and what to do (a manifest note, :func:`outside_text`)
OUTSIDE_ADVICE = ("the frames look like face crops already, not whole recordings; prepare them in mode cropped "
                  "(mode: cropped in the dataset entry: datasets.N.mode in an icegan prepare config, "
                  "data.prepare.datasets.N.mode in train.py; or --clips-mode cropped of icegan features --clips)")


def outside_text(shares: list[float], clips: int) -> str:
    """The one warning of a dataset entry prepared in mode raw whose face crops lie more than :data:`OUTSIDE_WARN`
    outside their frames: ``shares`` (fractions 0-1) of the clips that do, of ``clips`` prepared in mode raw:
    ``"212 of 217 clips: 55-57% of the face crop lies outside the frame ..."`` (one share: ``57%``); each clip's
    manifest note gives its own share, box and frame."""
    lo, hi = f"{min(shares):.0%}", f"{max(shares):.0%}"
    return (f"{len(shares)} of {clips} clip{'' if clips == 1 else 's'}: {lo if lo == hi else lo[:-1] + '-' + hi} of "
            f"the face crop lies outside the frame and is filled by repeating its edge pixels (each clip's box and "
            f"frame in its manifest notes): {OUTSIDE_ADVICE}")


#: a face crop's width / height lies in this range (CASME II's cropped release: 0.82, SMIC's about 1.2); whole
#: recordings are 4:3 or wider (640x480, SAMM's 960x650). Size alone tells nothing: a face crop may be 600x720.
CROP_ASPECT = (0.8, 1.25)


def whole_frames_note(dataset: str, recs: list[ClipRecord]) -> Optional[str]:
    """The warning for a dataset prepared in ``cropped`` mode (resize only) whose frames look like whole recordings:
    the first clip (in ``recs``' order) whose onset frame's width / height is outside :data:`CROP_ASPECT`; None when
    none is. Only frame headers are read (an unreadable onset frame is left to the clip's own skip). For ``clips`` (a
    clip list) the warning names ``--clips-mode raw`` of ``icegan features --clips`` as well as the mode key of a
    dataset entry (a ``name: clips`` entry in a config); for another dataset, the mode key of its entry."""
    from flownet.frame_io import oriented_size
    for r in recs:
        if r.onset is None or r.onset not in r.frame_numbers:
            continue
        path = r.frame_path(r.onset)
        try:
            w, h = oriented_size(path)
        except (OSError, ValueError):
            continue
        if not (w and h):
            continue
        if not CROP_ASPECT[0] <= w / h <= CROP_ASPECT[1]:
            entry = ("datasets.N.mode in an icegan prepare config, data.prepare.datasets.N.mode in train.py")
            how = (f"the dataset is prepared in cropped mode (the default of a dataset entry): each frame is squeezed "
                   f"to a square with no face detection. Set mode: raw in its entry ({entry})")
            if dataset == "clips":       # icegan features --clips LIST --clips-mode cropped, or a name: clips entry
                how = (f"the clip list is prepared in cropped mode (icegan features --clips-mode cropped, or a "
                       f"'name: clips' dataset entry without mode: raw): each frame is squeezed to a square with no "
                       f"face detection. Give --clips-mode raw (its default) to icegan features --clips, or set mode: "
                       f"raw in the dataset entry ({entry})")
            return (f"{dataset}: the frames look like whole recordings, not face crops (e.g. clip {r.key}: onset frame "
                    f"{path} is {w}x{h}), but {how} to detect, align and crop the face")
    return None


def prepare_dataset(cfg: PrepareConfig) -> PreparedDataset:
    """Prepare (or load from the cache) every usable clip of ``cfg.datasets``.

    Clips that cannot be used (missing folder, onset/apex frame absent or unreadable, no
    face on the onset frame nor its neighbours in raw mode) are logged with their reason and listed
    in ``PreparedDataset.skipped`` / ``skipped.csv``; they never stop the run. An apex neighbour that is
    absent or unreadable is replaced by the nearest readable frame (noted in the manifest's ``notes``, as is an apex
    spotted on the first or last frame searched, :func:`icegan.data.spotting.edge_apex_note`); one that cannot be
    read or is of another size is also logged as a warning naming its file and the frame used instead, when the clip
    is prepared. A raw clip whose alignment frame shows several faces (a second person, a poster) is aligned on the
    largest, and that is noted and logged as a warning naming the clip, the frame, the number of faces and the box used
    (the subject's face may be the smaller one). So are a raw clip's onset frame without a face, a raw clip whose
    crop lies more than :data:`OUTSIDE_WARN` outside its frames (face crops prepared in mode raw: the warning says
    mode cropped) and an onset or apex crop of one grey level (:func:`process_clip`); a clip of the sheet whose clip
    folder is not on disk is logged naming the clip folders of its subject folder the sheet does not name
    (:func:`_unsheeted_hint`). A dataset in ``cropped`` mode (the default of a dataset entry) whose
    frames look like whole recordings (:func:`whole_frames_note`) is warned about once, naming an example clip. The
    apex spotted in a clip without one (SMIC) is kept in ``spotted_apex.json`` in the cache root
    (:data:`SPOTTED_APEX_FILE`) and taken from there by a later cache of the same frame files, method and detector
    (another size, colour or mode), not spotted again.

    A clip skipped for a read error of the file system (:class:`FrameAccessError`: permission denied, an I/O error),
    or prepared with a frame replaced or left out for one, is not kept for good: its skip reason ends with
    :data:`RETRY_NOTE`, the cache is marked :data:`RETRY_MARKER` instead of ``COMPLETE`` (it loads, but is no cache
    hit), and the next call prepares those clips again (the others from the ``.partial-<hash>`` folder kept for it)
    and writes the cache in its place. A cache folder without ``COMPLETE`` (a copy cut short) is likewise replaced
    (:func:`_remove_incomplete`), not left to fail every later load. A RETRY cache that a concurrent prepare of the
    same inputs (the ranks of a torchrun job) put in place while this one prepared is kept and loaded instead of this
    call's (:func:`_keep_in_place`): that process may be reading its sequences from it.

    With ``workers > 1`` the workers are started with the ``forkserver`` context (see :func:`worker_context`), so a
    script calling this must guard its entry point with ``if __name__ == "__main__":`` (as for any non-fork
    multiprocessing); a job whose clips are all only resized (cropped mode, apex known, no ``sequences``) runs in this
    process whatever ``workers``, faster than a pool can start.

    Raises:
        PrepareError: no dataset configured, no clip could be prepared (the message says for each dataset entry how
            many sheet rows or clip folders it found and why none is usable: outside the composite classes under
            ``composite_only: true``, left out by the filters, skipped), or a clip key is in two dataset entries (e.g.
            the raw and the cropped CASME II both holding sub01: said before any clip is prepared, naming both entries
            and the key), or two clip keys of two dataset entries are one frames folder (its real path) with one onset
            (e.g. a CASME II clip's folder also in a clip list: one clip in two subjects' LOSO folds; said before any
            clip is prepared, naming both keys, both entries and the folder), or one frames folder is under two
            subjects of two dataset entries whatever the onsets (its frames in two subjects' LOSO folds; one subject's
            several onsets of a folder are several clips of one take; said before any clip is prepared, naming both
            keys, entries, subjects and onsets and the folder), the cache folder to replace cannot be
            moved aside or the new one put in its place (naming the folder), or the cache folder is a symbolic link
            holding no complete cache (:func:`_refuse_link`: said before any clip is prepared, naming the link and its
            target).
        DatasetLayoutError / FileNotFoundError / SheetError: a root or sheet is unusable.
    """
    return _prepare(cfg)


def cached_dataset(cfg: PrepareConfig) -> Optional[PreparedDataset]:
    """The cache :func:`prepare_dataset` would load for ``cfg`` (a cache hit: a folder of the same clips and settings
    marked ``COMPLETE``), loaded as it loads it, or None when there is none on this machine (none yet, or one marked
    :data:`RETRY_MARKER`, whose clips a prepare would prepare again): nothing is prepared, detected or written (the
    clips are only listed, as :func:`prepare_dataset` lists them to find its cache).

    Raises:
        as :func:`prepare_dataset` before it prepares a clip (a bad config, a root or sheet that is unusable, a
        damaged cache folder: :func:`load_prepared`).
    """
    return _prepare(cfg, cache_only=True)


def _prepare(cfg: PrepareConfig, cache_only: bool = False) -> Optional[PreparedDataset]:
    """:func:`prepare_dataset`; with ``cache_only`` (:func:`cached_dataset`), None where it would prepare."""
    if not cfg.datasets:
        raise PrepareError("prepare: no datasets configured (add a 'datasets:' list to the config)")
    t0 = time.time()
    settings = _settings(cfg)
    tasks: list[tuple[ClipRecord, str]] = []
    skipped: list[dict] = []
    entry_of: dict[str, int] = {}          # clip key → the dataset entry that holds it (one entry per key)
    # (real clip folder, onset) → (record, its entry): one clip under two keys of two entries (a CASME II clip's
    # folder also in a clip list) would be in two subjects' LOSO folds; compared only when there are several entries
    folder_of: dict[tuple[str, int], tuple[ClipRecord, int]] = {}
    # real clip folder → (the record first listing it, its entry): one folder under two subjects of two entries,
    # whatever the onsets, puts its frames (an apex image, one face) in two subjects' LOSO folds; one subject's
    # several onsets are several MEs of one take, kept (as a clip list does within itself)
    owner_of: dict[str, tuple[ClipRecord, int]] = {}

    def entry(i: int) -> str:
        s = cfg.datasets[i]
        return f"datasets.{i} ({s.name}, root {s.root}, mode {s.mode})"
    unused: list[str] = []                 # why each dataset entry gave no clip, for the error when none did
    for i_spec, spec in enumerate(cfg.datasets):
        first_task = len(tasks)
        layout: list[dict] = []
        found: dict = {}
        recs = dataset_records(spec, layout, found)
        skipped += layout                  # folders the loader could not read as clips (logged by the loader)
        n_skipped = len(skipped)
        missing_subj: dict[str, int] = {}
        not_folders: dict[str, str] = {}        # subject → what stands where its folder belongs (a file, a link)
        listing: dict[Path, list[Path]] = {}    # folder → its folders, listed once for the case twins of its clips
        unsheeted: dict[str, list[str]] = {}    # the clip folders on disk the sheet does not name (_unsheeted_hint)
        for r in recs:
            if subject_missing(r):
                if r.subject not in missing_subj and (what := not_a_folder_text(r.subject_dir)) is not None:
                    not_folders[r.subject] = what
                missing_subj[r.subject] = missing_subj.get(r.subject, 0) + 1
                skipped.append({"key": r.key, "reason": not_folders.get(r.subject)
                                or f"subject folder {r.subject_dir} not on disk"})
                continue
            probs = [p for p in record_problems(r, need_apex=r.apex_method != "unspotted", listing=listing)
                     if p.severity == SKIP]
            if probs:
                reason = "; ".join(p.problem for p in probs)
                skipped.append({"key": r.key, "reason": reason})
                # a clip folder missing in a subject folder that is on disk: a folder there the sheet does not name?
                hint = (_unsheeted_hint(found["loader"], r, unsheeted) if r.clip_dir is not None
                        and r.subject_dir is not None and not r.clip_dir.exists() else "")
                log.warning("%s skipped: %s%s", r.key, reason, hint)
                continue
            if r.key in entry_of:
                # the results are kept by key: a second entry's clip would be a second manifest row holding one of
                # the two results (the mode of the other), so such a config is refused before any clip is prepared
                raise PrepareError(f"prepare: clip {r.key} is in two dataset entries, {entry(entry_of[r.key])} and "
                                   f"{entry(i_spec)}: a clip can be prepared once (one manifest row per clip key); "
                                   f"keep one of the entries, or narrow them (subjects, clips) so that no clip is in "
                                   f"both")
            entry_of[r.key] = i_spec
            if len(cfg.datasets) > 1 and r.clip_dir is not None:
                # once per record; a link or '..' names the same folder (Path.resolve raises on a link loop)
                real = os.path.realpath(r.clip_dir)
                first, i_first = folder_of.setdefault((real, r.onset), (r, i_spec))
                if i_first != i_spec:
                    folds = " and put into two subjects' LOSO folds" if first.subject != r.subject else ""
                    raise PrepareError(f"prepare: clip {r.key} of {entry(i_spec)} is clip {first.key} of "
                                       f"{entry(i_first)}: frames folder {real} with onset {r.onset} in both, so "
                                       f"one clip would be prepared twice{folds}; keep it in one of the entries "
                                       f"(remove its row, or narrow the entries with subjects or clips)")
                owner, i_owner = owner_of.setdefault(real, (r, i_spec))
                if i_owner != i_spec and owner.subject != r.subject:
                    raise PrepareError(f"prepare: clip {r.key} of {entry(i_spec)} and clip {owner.key} of "
                                       f"{entry(i_owner)} are one frames folder {real} under two subjects, "
                                       f"{r.subject} (onset {r.onset}) and {owner.subject} (onset {owner.onset}): "
                                       f"its frames would be in two subjects' LOSO folds, trained on and tested on; "
                                       f"list the folder under one subject (remove one of the rows, or narrow the "
                                       f"entries with subjects or clips)")
            tasks.append((r, spec.mode))
        for subject, text in case_twin_subjects(recs).items():     # sub02/ read, Sub02/ beside it not
            log.warning("%s: %s", subject, text)
        if missing_subj:
            # a folder named as such a subject but for its number's padding or letters: said as icegan data check does
            hint = _rename_hint(spec, recs, missing_subj)
            log.warning("%s: subject folders not on disk, their clips skipped: %s%s", spec.name,
                        ", ".join(f"{s} ({n}{'; ' + not_folders[s] if s in not_folders else ''})"
                                  for s, n in sorted(missing_subj.items())), hint)
        if len(tasks) == first_task:
            unused.append(f"{entry(i_spec)}: " + _no_clip_text(found, len(recs), sum(missing_subj.values()),
                                                                len(skipped) - n_skipped - sum(missing_subj.values()),
                                                                len(layout)))
        if spec.mode == "cropped":
            note = whole_frames_note(spec.name, [r for r, _ in tasks[first_task:]])
            if note:
                log.warning("%s", note)
    digest = inputs_hash(tasks, settings)
    root = cache_root_of(cfg)
    final = root / digest
    partial = root / f".partial-{digest}"     # the clips a stopped prepare of these inputs finished
    if (final / "COMPLETE").is_file():
        log.info("prepare: cache hit %s", final)
        shutil.rmtree(partial, ignore_errors=True)      # left by a kill after the cache was written
        _remove_stale_tmp(root, digest)                 # left by a kill while it was written, then kept as recent
        hit = load_prepared(final)
        # the same clips, maybe from another config (other filters, other layout problems): this call's skips, and
        # the cached failures of these clips (no face found, ...), never the skips of the call that made the cache
        keys = {r.key for r, _ in tasks}
        failed = hit.skipped[hit.skipped["key"].isin(keys)] if len(hit.skipped) else hit.skipped
        for key, reason in zip(failed["key"], failed["reason"]):    # said on every run, not only the first
            log.warning("%s skipped: %s", key, reason)
        hit.skipped = pd.concat([pd.DataFrame(skipped, columns=["key", "reason"]), failed], ignore_index=True)
        return hit
    if cache_only:
        return None
    _refuse_link(final)
    retry_at_start = _retry_id(final)   # the RETRY cache this prepare replaces, not one written meanwhile
    if not tasks:
        warned = bool(skipped)             # each skipped clip and folder problem was logged as a warning
        raise PrepareError(f"prepare: no usable clip in the configured datasets"
                           f"{'; see the warnings above' if warned else ''}: {'; '.join(unused)}")
    results: dict[str, dict] = _read_partial(partial, tasks)
    # an apex spotted before in the same frames (another size, colour, mode) is not spotted again; the digest above
    # is of the records without it, as the cache they make is the same
    inputs = {rec.key: _spot_inputs(rec, settings) for rec, _ in tasks if rec.apex is None}   # stat'ed once
    known = _read_spotted(root) if inputs else {}
    todo = [(_with_spotted_before(rec, settings, known, inputs), mode) for rec, mode in tasks
            if rec.key not in results]
    if results:
        log.info("prepare: resuming: %d of %d clips were prepared by a run that stopped (%s)", len(results),
                 len(tasks), partial)
    from tqdm import tqdm
    with tqdm(total=len(tasks), initial=len(results), desc="prepare", unit="clip",
              disable=not cfg.progress) as bar:  # closed on Ctrl-C too
        # clips only resized (cropped, apex known, no sequences) take ~10 ms each: starting a pool costs more than
        # it saves (118 CASME II clips: 1.5 s here, 2.6 s in 2 workers), so they are prepared in this process
        resize_only = not cfg.sequences and not needs_face_models(todo)
        if cfg.workers <= 1 or len(todo) <= 1 or resize_only:
            finished = (process_clip(rec, mode, settings) for rec, mode in todo)
        else:
            finished = _pool_map(cfg.workers, [(rec, mode, settings) for rec, mode in todo])
        for res in finished:
            _keep_partial(partial, res)
            results[res["key"]] = res
            bar.update()
    _keep_spotted(root, tasks, results, inputs)
    rows, onset, apex, neigh, lms, seqs = [], [], [], [], [], []
    outside: dict[int, list[float]] = {}    # dataset entry → the outside shares of its raw clips warned of
    raw_clips: dict[int, int] = {}          # dataset entry → its clips prepared in mode raw
    retry: dict[str, str] = {}          # clips met by read errors of the file system: prepared again next time
    for rec, mode in tasks:
        res = results[rec.key]
        if res.get("retry"):
            retry[rec.key] = res.get("error") or "; ".join(res["retry"])
        if "error" in res:
            reason = res["error"] + (RETRY_NOTE if res.get("retry") else "")
            skipped.append({"key": rec.key, "reason": reason})
            log.warning("%s skipped: %s", rec.key, reason)
            continue
        r: ClipRecord = res["record"]
        for warning in res.get("warnings", ()):       # (a result kept by an older version has none)
            log.warning("%s: %s", rec.key, warning)
        if mode == "raw":
            raw_clips[entry_of[rec.key]] = raw_clips.get(entry_of[rec.key], 0) + 1
            if res.get("outside_share") is not None:
                outside.setdefault(entry_of[rec.key], []).append(res["outside_share"])
        nb = res["neighbour_frames"] or [None] * 4
        rows.append({"index": len(rows), "key": r.key, "dataset": r.dataset, "subject": r.subject,
                     "clip": r.clip, "emotion": r.emotion,
                     "class3": -1 if r.class3 is None else r.class3,
                     "class5": r.class5, "objective_class": r.objective_class, "onset": r.onset,
                     "apex": r.apex, "offset": r.offset, "apex_method": r.apex_method, "mode": mode,
                     "apex_m2": nb[0], "apex_m1": nb[1], "apex_p1": nb[2], "apex_p2": nb[3],
                     "align_frame": res["align_frame"], "align_angle_deg": res["align_angle_deg"],
                     "crop_native": res["crop_native"], "affine": res["affine"],
                     "landmark_fallbacks": res["landmark_fallbacks"], "seq_first": res["seq_first"],
                     "seq_last": res["seq_last"], "notes": "; ".join(x for x in (res["notes"],) if x)})
        onset.append(res["onset_img"])
        apex.append(res["apex_img"])
        neigh.append(res["neighbours"])
        lms.append(res["landmarks"])
        # (.get: a result kept by an older version for a cache without sequences, whose key did not change, has none)
        seqs.append((res["sequence"], res.get("sequence_frames", ())))
    for i, shares in outside.items():       # once per dataset entry, not once per clip (~250 identical lines)
        log.warning("%s: %s", entry(i), outside_text(shares, raw_clips[i]))
    if not rows:                # a run that ended, not a stopped one: its failures are not kept for the rerun
        if not retry:           # (else the partial folder holds no result: a rerun prepares every clip again)
            shutil.rmtree(partial, ignore_errors=True)
        raise PrepareError("prepare: every clip failed; reasons: " +
                           "; ".join(f"{s['key']}: {s['reason']}" for s in skipped[:10]))
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root, digest)
    tmp = root / f".tmp-{digest}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    shape = onset[0].shape
    np.save(tmp / "onset.npy", np.stack(onset))
    np.save(tmp / "apex.npy", np.stack(apex))
    np.save(tmp / "apex_neighbours.npy", np.stack(neigh) if cfg.neighbours
            else np.zeros((len(rows), 0) + shape, np.uint8))
    np.save(tmp / "landmarks.npy", np.stack(lms).astype(np.float32))
    if cfg.sequences:
        (tmp / "sequences").mkdir()
        for i, (s, nums) in enumerate(seqs):
            np.save(tmp / "sequences" / f"{i:05d}.npy", s)
            np.save(tmp / "sequences" / f"{i:05d}_frames.npy", np.asarray(nums, np.int64).reshape(-1))
    manifest = pd.DataFrame(rows)
    manifest.to_csv(tmp / "manifest.csv", index=False, quoting=csv_quoting(manifest))   # a "\r" in a name quoted
    # as manifest.csv: every field quoted when a reason (an exception text) or a key holds a bare '\r', which pandas'
    # default leaves unquoted and which would read back as a row break
    listed = pd.DataFrame(skipped, columns=["key", "reason"])
    listed.to_csv(tmp / "skipped.csv", index=False, quoting=csv_quoting(listed))
    (tmp / "settings.json").write_text(json.dumps({
        "settings": key_settings(settings, tasks), "hash": digest,
        "datasets": [dataclasses.asdict(s) for s in cfg.datasets],
        "clips_prepared": len(rows), "clips_skipped": len(skipped),
        "seconds": round(time.time() - t0, 2), "workers": cfg.workers,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2), encoding="utf-8")
    if retry:       # no cache hit: the next prepare prepares these clips again (the others from the partial folder)
        (tmp / RETRY_MARKER).write_text(json.dumps(retry, indent=1), encoding="utf-8")
    else:
        (tmp / "COMPLETE").write_text("ok\n", encoding="utf-8")
    try:
        _remove_incomplete(final, retry_at_start)  # a folder without COMPLETE (a copy cut short, that RETRY): replaced
        os.rename(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if not _keep_in_place(final, retry_at_start):
            raise PrepareError(f"prepare: cannot put the new cache in place of {final} ({exc.strerror or exc}); "
                               f"check that folder and {root} (permissions, the disk) and run the command "
                               f"again") from None
        # another prepare of the same inputs (a torchrun rank, a second job) put its cache there meanwhile: that one
        # is loaded (the processes of one job share a cache); this one's clips stay in the partial folder
        log.info("prepare: another prepare of the same clips and settings put its cache %s in place meanwhile; "
                 "loading that one%s", final, "" if (final / "COMPLETE").is_file() else
                 " (marked RETRY: some clips met read errors; the next prepare replaces it)")
        return load_prepared(final)
    except PrepareError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if retry:
        others = len(tasks) - len(retry)
        log.warning("prepare: %d clip(s) met a read error of the file system (%s%s): the cache %s is not marked "
                    "complete, so the next icegan prepare of this config (or job preparing it) prepares them again%s; "
                    "make the files readable first (permissions, the disk)",
                    len(retry), "; ".join(f"{k}: {v}" for k, v in list(retry.items())[:3]),
                    ", ..." if len(retry) > 3 else "", final,
                    f", taking the {others} other clip(s) from {partial}" if others else "")
    else:
        shutil.rmtree(partial, ignore_errors=True)       # its clips are in the cache now
    log.info("prepare: %d clips prepared, %d skipped, cache %s", len(rows), len(skipped), final)
    _note_other_partials(root, digest)
    return load_prepared(final)
