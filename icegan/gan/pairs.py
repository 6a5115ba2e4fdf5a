"""Onset/apex face pairs for ICE-GAN training and evaluation.

A stop-gap loader over the real CASME II crops in ``<shared data>/casme2`` (``manifest.csv`` +
``subXX/EPxx_xx/imgN.jpg``; a frame is found by its number, so the official Cropped release's ``reg_imgN.jpg`` is
read too) until the dataset layer (``icegan/data/``) provides prepared samples;
it also reads a folder of onset face images for ``icegan generate`` / ``icegan gan eval --data DIR``.

Rows used: clips of the MEGC2019 composite (``class3`` set: negative 0, positive 1, surprise 2)
whose frames are verified and whose apex frame exists. Composite clips that fail those checks are
*not* silently dropped: they are listed in :attr:`PairSet.skipped` with the manifest's note and
a warning is logged. Non-composite clips (``class3`` empty) are outside the 3-class task and are
counted in ``PairSet.n_not_composite``.

Frames are read with OpenCV as grayscale and resized to ``img_size × img_size`` (``INTER_AREA``;
the crops are not square, so the aspect ratio is not kept, as in the paper's preprocessing). With
``apex_neighbors = k`` the frames ``apex-k … apex+k`` that exist each form a pair with the onset
(the paper, Section IV-B, uses the four neighbours of the apex, k = 2). The decoded arrays are
cached as ``.npz`` under ``<data root>/cache/`` (``icegan.paths.default_data_root()``, git-ignored).
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from flownet.user_numbers import is_ascii_digits, read_frame_number
from icegan.data.records import neighbour_inside
from icegan.paths import default_data_root, shared_data_root

__all__ = ["CLASS_NAMES", "IMAGE_SUFFIXES", "PairSet", "load_casme2_pairs", "load_prepared_pairs", "list_face_files",
           "read_grey", "fit_square", "to_tensor", "class_id"]

log = logging.getLogger(__name__)

#: MEGC2019 composite class names by id
CLASS_NAMES = ("negative", "positive", "surprise")
#: the image files a folder of faces is read for (icegan generate, icegan gan eval --data DIR)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def class_id(name_or_id: str | int) -> int:
    """Class id (0 negative, 1 positive, 2 surprise) from a name or an id. Raises ValueError otherwise."""
    # ASCII digits only: '²' is a digit that int() cannot read (a bare "invalid literal" ValueError before),
    # '١' / '２' are decimal digits that int() reads, not a class id as typed
    if isinstance(name_or_id, int) or (isinstance(name_or_id, str) and is_ascii_digits(name_or_id)):
        i = int(name_or_id)
        if 0 <= i < len(CLASS_NAMES):
            return i
    elif str(name_or_id).lower() in CLASS_NAMES:
        return CLASS_NAMES.index(str(name_or_id).lower())
    from icegan.data.composite import CASME2_TO_CLASS3, SAMM_TO_CLASS3
    emotion = str(name_or_id).strip().lower()
    mapped = CASME2_TO_CLASS3.get(emotion) or SAMM_TO_CLASS3.get(emotion)
    hint = f" ({emotion} is the MEGC2019 class '{mapped}')" if mapped else ""
    raise ValueError(f"unknown class {name_or_id!r}: use one of {list(CLASS_NAMES)} or 0..{len(CLASS_NAMES) - 1}"
                     + hint)


@dataclass
class PairSet:
    """Onset/apex pairs as uint8 arrays.

    onset, apex: (N, H, W) uint8 grayscale faces; labels: (N,) int64 class ids; subjects: N prefixed
    subject ids (``casme2/sub01``); clips: N clip ids (``sub01/EP02_01f``); onset_frames, apex_frames:
    (N,) frame numbers; skipped: ``(clip, reason)`` of composite clips that could not be used.
    """
    onset: np.ndarray
    apex: np.ndarray
    labels: np.ndarray
    subjects: list[str]
    clips: list[str]
    onset_frames: np.ndarray
    apex_frames: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    n_not_composite: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, mask: np.ndarray) -> "PairSet":
        """Subset by a boolean mask or index array."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask, dtype=int)
        return PairSet(self.onset[idx], self.apex[idx], self.labels[idx], [self.subjects[i] for i in idx],
                       [self.clips[i] for i in idx], self.onset_frames[idx], self.apex_frames[idx],
                       list(self.skipped), self.n_not_composite)

    def by_subjects(self, include: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> "PairSet":
        """Pairs whose subject is in ``include`` (all when None) and not in ``exclude``.

        Subject ids may be given with or without the ``casme2/`` prefix.
        Raises:
            ValueError: a named subject has no pairs (typo guard).
        """
        def norm(s: str) -> str:
            return s if "/" in s else f"casme2/{s}"
        have = set(self.subjects)
        for s in list(include or []) + list(exclude):
            if norm(s) not in have:
                raise ValueError(f"subject {s!r} has no usable pairs; known subjects: {sorted(have)}")
        inc = None if include is None else {norm(s) for s in include}
        exc = {norm(s) for s in exclude}
        mask = np.array([(inc is None or s in inc) and s not in exc for s in self.subjects], dtype=bool)
        return self.select(mask)

    def unique_clips(self) -> "PairSet":
        """One pair per clip: each clip's first pair. That is the annotated apex frame's pair for pairs loaded with
        ``apex_neighbors=0``; with k > 0, :func:`load_casme2_pairs` orders a clip's pairs apex−k … apex+k, so it is
        the apex−k frame's (icegan's own code does not call it; the tests load with k = 0)."""
        keep, seen = [], set()
        for i, c in enumerate(self.clips):
            if c not in seen:
                seen.add(c)
                keep.append(i)
        return self.select(np.array(keep, dtype=int))

    def tensors(self):
        """``(onset, apex, labels)`` as torch tensors: (N, 1, H, W) float32 in [-1, 1] and (N,) int64."""
        import torch
        return to_tensor(self.onset), to_tensor(self.apex), torch.as_tensor(self.labels, dtype=torch.long)


def to_tensor(faces: np.ndarray):
    """uint8 faces (N, H, W) → float32 tensor (N, 1, H, W) in [-1, 1]."""
    import torch
    if faces.dtype != np.uint8 or faces.ndim != 3:
        raise ValueError(f"to_tensor expects uint8 (N, H, W), got {faces.dtype} {faces.shape}")
    return torch.from_numpy(faces.astype(np.float32) / 127.5 - 1.0).unsqueeze(1)


def read_grey(path: str | Path) -> np.ndarray:
    """One image as grayscale uint8 (H, W) at its own size, as every training frame is read (EXIF orientation
    applied, :func:`flownet.frame_io.read_frame`).

    Raises:
        FileNotFoundError: the file does not exist; ValueError: OpenCV cannot decode it, or it was cut short.
    """
    import cv2
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"face image not found: {p}")
    from flownet.frame_io import read_frame
    return read_frame(p, cv2.IMREAD_GRAYSCALE)       # ValueError naming the file: undecodable or cut short


def fit_square(img: np.ndarray, img_size: int) -> np.ndarray:
    """``img`` (H, W) uint8 resized to (img_size, img_size) with OpenCV INTER_AREA, aspect ratio not kept: what
    :func:`load_casme2_pairs` does to every frame."""
    import cv2
    return cv2.resize(img, (img_size, img_size), interpolation=cv2.INTER_AREA)


def list_face_files(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """The image files (:data:`IMAGE_SUFFIXES`) of ``paths``: files as given, and every image of a folder, sorted by
    name; in the order given. A missing file is listed (its reader names it).

    Raises:
        ValueError: a folder holds no images (names it and the suffixes read).
    """
    files: list[Path] = []
    for p in map(Path, [paths] if isinstance(paths, (str, Path)) else paths):
        if p.is_dir():              # a folder in a list was read as a missing 'face image' before
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"no face images ({sorted(IMAGE_SUFFIXES)}) in folder {p}")
            files += found
        else:
            files.append(p)
    return files


#: part of the pairs cache's key: bump when :func:`load_casme2_pairs` changes what it writes. 2 (2026-12-05): a clip
#: whose apex is of another size than its onset is skipped (1 resized that apex on its own into the pair). 3
#: (2026-12-07): apex neighbours stay after the onset and up to the offset
PAIRS_CACHE_VERSION = 3


def _frames_signature(root: Path, df) -> str:
    """Name, size and modification time of every file in the clip folders of manifest ``df``: a frame replaced, added
    or removed changes it (and so the pairs cache's key)."""
    h = hashlib.sha1()
    if {"subject", "filename"} <= set(df.columns):
        for subject, clip in sorted({(str(s), str(c)) for s, c in zip(df["subject"], df["filename"])}):
            folder = root / subject / clip
            if folder.is_dir():
                for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                    st = entry.stat()
                    h.update(f"{subject}/{clip}/{entry.name}:{st.st_size}:{st.st_mtime_ns}|".encode())
    return h.hexdigest()


def _frame_path(root: Path, subject: str, clip: str, frame: int, listed: dict[int, Path] | None = None) -> Path:
    """The file of frame number ``frame`` in ``root/subject/clip``: ``img{frame}.jpg`` (the shared copy's name) when it
    is there, else the clip's file of that number as :func:`icegan.data.records.list_frames` finds it (the official
    Cropped release's ``reg_img{frame}.jpg``, as the CASME II loader reads it), else ``img{frame}.jpg`` (absent: the
    caller names it as missing). ``listed``: a dict the caller keeps for the clip (empty at first), filled with its
    frame number → file on the first frame that needs the listing, so the folder is listed once per clip."""
    folder = root / subject / clip
    plain = folder / f"img{frame}.jpg"
    if plain.is_file():
        return plain
    if listed is None:
        listed = {}
    if not listed:
        from icegan.data.records import list_frames
        numbers, paths, _ = list_frames(folder)
        listed.update(zip(numbers, paths))
    return listed.get(frame, plain)


def load_casme2_pairs(root: str | Path | None = None, img_size: int = 128, apex_neighbors: int = 0,
                      cache: bool = True, cache_dir: str | Path | None = None) -> PairSet:
    """All usable MEGC2019-composite onset/apex pairs of the CASME II crops under ``root``.

    Args:
        root: folder with ``manifest.csv`` and ``subXX/`` (default ``shared_data_root()/casme2``).
        img_size: output side in pixels.
        apex_neighbors: also pair the onset with frames apex±1 … apex±k that exist (k ≥ 0), after the onset and, when
            the manifest's offset is a frame number not before the apex, up to it (apex−1 of an apex at onset+1 is the
            neutral onset face itself: left out, as :func:`icegan.data.prepare.select_neighbours` does).
        cache: read/write the decoded arrays as ``.npz`` in ``cache_dir``
            (default ``default_data_root()/cache``), keyed by the manifest's content, size, k, the name, size and
            modification time of every file in its clip folders (a frame replaced is read again) and
            :data:`PAIRS_CACHE_VERSION`.
    Returns:
        :class:`PairSet` (pairs ordered by manifest row, then frame).
    Raises:
        FileNotFoundError: no manifest, or a frame the manifest says exists is missing (names the file).
        ValueError: a manifest that is not UTF-8 text (names it and the byte), a malformed manifest row (names the
            row) or an undecodable image.
    """
    from icegan.csv_names import read_csv_names

    root = Path(root) if root is not None else shared_data_root() / "casme2"
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"CASME II manifest not found: {manifest}. data.root is the cropped CASME II copy with "
                                f"its manifest.csv (as in the shared data; set ICEGAN_SHARED_DATA); for your own copy "
                                f"of a release in its official layout (CASME II, SAMM or SMIC, raw or cropped, with "
                                f"its coding sheet) set data.source=prepared and list it under data.prepare.datasets "
                                f"(the keys of the shipped prepare_casme2.yaml: `icegan configs prepare_casme2`), e.g. "
                                f"data.prepare.datasets=[{{name: casme2, root: DIR, mode: raw}}]")
    if apex_neighbors < 0:
        raise ValueError(f"apex_neighbors must be >= 0, got {apex_neighbors}")
    raw = manifest.read_bytes()
    try:
        df = read_csv_names(manifest, ["subject", "filename", "class3", "note"])     # a clip "None" stays "None"
    except UnicodeDecodeError as exc:
        from flownet.io import not_utf8_csv
        raise not_utf8_csv(manifest, exc) from None
    key = hashlib.sha1(raw + f"|{img_size}|{apex_neighbors}|{root.resolve()}|{_frames_signature(root, df)}"
                             f"|v{PAIRS_CACHE_VERSION}".encode()).hexdigest()[:12]
    cdir = Path(cache_dir) if cache_dir is not None else default_data_root() / "cache"
    cfile = cdir / f"gan_pairs_casme2_{img_size}_k{apex_neighbors}_{key}.npz"
    if cache:
        from flownet.io import read_npz_cache
        # a kill's leftover temporaries, including the fixed <stem>.tmp.npz of versions before the temporaries named
        # their process, go once over an hour old, when the cache is read or written (flownet.io.remove_stale_temps_of)
        z = read_npz_cache(cfile, ("onset", "apex", "labels", "subjects", "clips", "onset_frames", "apex_frames",
                                   "skipped", "n_not_composite"), lambda why: log.warning(
            "GAN pairs cache %s; reading the pairs again from the frames and saving them there", why))
        if z is not None:
            skipped = [tuple(s.split("\t", 1)) for s in z["skipped"].tolist()]
            for clip, why in skipped:
                log.warning("CASME II clip %s skipped: %s", clip, why)
            return PairSet(z["onset"], z["apex"], z["labels"], z["subjects"].tolist(), z["clips"].tolist(),
                           z["onset_frames"], z["apex_frames"], skipped, int(z["n_not_composite"]))

    need = {"subject", "filename", "class3", "onset", "apex", "verified", "apex_in_folder"}
    missing = need - set(df.columns)
    if missing:
        raise ValueError(f"{manifest}: missing columns {sorted(missing)}")
    onsets, apexes, labels, subjects, clips, of, af, skipped = [], [], [], [], [], [], [], []
    n_not = 0
    for row_no, r in enumerate(df.itertuples(index=False), start=2):  # row 1 is the header
        clip = f"{r.subject}/{r.filename}"
        cls = r.class3 if isinstance(r.class3, str) else ""
        if not cls.strip():
            n_not += 1
            continue
        try:
            y = class_id(cls.strip())
        except ValueError as exc:
            raise ValueError(f"{manifest} row {row_no} ({clip}): {exc}") from None
        verified = str(r.verified).strip().lower() == "true"
        apex_ok = str(r.apex_in_folder).strip().lower() == "true"
        if not (verified and apex_ok):
            note = getattr(r, "note", "")
            note = note if isinstance(note, str) and note else "not verified / apex frame not in folder"
            skipped.append((clip, note))
            log.warning("CASME II clip %s skipped: %s", clip, note)
            continue
        try:
            onset_f, apex_f = read_frame_number(r.onset), read_frame_number(r.apex)
        except ValueError:
            raise ValueError(f"{manifest} row {row_no} ({clip}): onset {r.onset!r} / apex {r.apex!r} "
                             f"are not frame numbers") from None
        listed: dict[int, Path] = {}                          # the clip's frames, listed once when needed
        on_path = _frame_path(root, r.subject, r.filename, onset_f, listed)
        if not on_path.is_file():
            raise FileNotFoundError(f"{manifest} row {row_no} ({clip}): onset frame missing: {on_path} (no file of "
                                    f"frame {onset_f} in its folder: img{onset_f}.jpg or reg_img{onset_f}.jpg)")
        on_raw = read_grey(on_path)
        on_img = fit_square(on_raw, img_size)
        try:
            offset_f = read_frame_number(r.offset) if hasattr(r, "offset") else None
        except ValueError:
            offset_f = None                                  # no offset ('/' in the sheet): neighbours not capped
        faces, why = [], None              # an apex of another size than the onset: the clip is skipped, not resized
        for d in range(-apex_neighbors, apex_neighbors + 1):
            fr = apex_f + d
            if d != 0 and not neighbour_inside(fr, onset_f, apex_f, offset_f):
                continue                                     # the onset face (or before it) or past the offset
            p = _frame_path(root, r.subject, r.filename, fr, listed)
            if not p.is_file():
                if d == 0:
                    raise FileNotFoundError(f"{manifest} row {row_no} ({clip}): apex frame missing: {p} (no file "
                                            f"of frame {fr} in its folder: img{fr}.jpg or reg_img{fr}.jpg)")
                continue
            raw_face = read_grey(p)
            if raw_face.shape != on_raw.shape:
                (h, w), (oh, ow) = raw_face.shape, on_raw.shape
                text = (f"frame {fr} ({p.name}) is {w}x{h} pixels, the onset frame ({on_path.name}) {ow}x{oh}: the "
                        f"frames of a clip must have one size (a frame of another crop mixed in?)")
                if d == 0:
                    why = text
                    break
                log.warning("CASME II clip %s: apex neighbour left out: %s", clip, text)
                continue
            faces.append((fr, fit_square(raw_face, img_size)))
        if why is not None:
            skipped.append((clip, why))
            log.warning("CASME II clip %s skipped: %s", clip, why)
            continue
        for fr, face in faces:
            onsets.append(on_img)
            apexes.append(face)
            labels.append(y)
            subjects.append(f"casme2/{r.subject}")
            clips.append(clip)
            of.append(onset_f)
            af.append(fr)
    if not labels:
        raise ValueError(f"{manifest}: no usable composite clips")
    ps = PairSet(np.stack(onsets), np.stack(apexes), np.asarray(labels, dtype=np.int64), subjects, clips,
                 np.asarray(of, dtype=np.int64), np.asarray(af, dtype=np.int64), skipped, n_not)
    if cache:
        from flownet.io import write_whole
        cdir.mkdir(parents=True, exist_ok=True)

        def save(tmp: Path) -> None:
            np.savez_compressed(tmp, onset=ps.onset, apex=ps.apex, labels=ps.labels,
                                subjects=np.asarray(ps.subjects), clips=np.asarray(ps.clips),
                                onset_frames=ps.onset_frames, apex_frames=ps.apex_frames,
                                skipped=np.asarray([f"{c}\t{w}" for c, w in skipped], dtype=str),
                                n_not_composite=n_not)
        # two runs may build the same cache at once: each writes a temporary of its own (a fixed name let one
        # rename the other's half-written file into place), renamed whole; a killed run's stale one is removed
        write_whole(cfile, save, concurrent=True)
    return ps


#: where each apex neighbour sits in a prepared cache's ``apex_neighbours`` (N, 4, S, S) and its manifest column
_NEIGHBOUR_SLOTS = {-2: (0, "apex_m2"), -1: (1, "apex_m1"), 1: (2, "apex_p1"), 2: (3, "apex_p2")}


def load_prepared_pairs(prepare, img_size: int = 128, apex_neighbors: int = 0, progress: bool = True,
                        cache_only: bool = False) -> PairSet | None:
    """Onset/apex pairs of the MEGC2019 composite clips of any prepared dataset (CASME II, SAMM, SMIC or a clip list
    in its official layout, raw or cropped): the faces :func:`icegan.data.prepare.prepare_dataset` detects, aligns
    and caches, as the main job uses them.

    Args:
        prepare: :class:`icegan.data.prepare.PrepareConfig` (its ``size`` is set to ``img_size`` and its ``color`` to
            gray here).
        img_size: face side in pixels.
        apex_neighbors: k in 0..2: also pair the onset with apex±1 … apex±k, from the cache's neighbour frames
            (``neighbours: true``); a neighbour the clip lacks, at or before the onset or after the offset (when the
            offset is not before the apex) was replaced by the nearest frame inside when the cache was made
            (:func:`icegan.data.prepare.select_neighbours`), and a frame already paired is not paired twice.
        progress: show preprocessing's progress bar.
        cache_only: read the faces from a cache already on this machine only
            (:func:`icegan.data.prepare.cached_dataset`): nothing is prepared, and None is returned when there is
            no such cache.

    Returns:
        :class:`PairSet`: subjects prefixed (``samm/006``), clips ``<subject>/<clip>`` (``006/006_1_2``); clips the
        cache could not prepare in ``skipped`` (with the reason), clips outside the 3 classes counted in
        ``n_not_composite``. None: ``cache_only`` and the faces are not prepared on this machine.

    Raises:
        ValueError: ``apex_neighbors`` outside 0..2, or > 0 with ``prepare.neighbours`` off; no composite clip.
        icegan.data.prepare.PrepareError, FileNotFoundError: from preprocessing (a missing root or sheet, no usable
            clip).
    """
    import dataclasses

    from icegan.data.prepare import cached_dataset, prepare_dataset
    if not 0 <= apex_neighbors <= 2:
        raise ValueError(f"apex_neighbors must lie in 0..2 for prepared datasets (the cache holds apex±1 and apex±2), "
                         f"got {apex_neighbors}")
    if apex_neighbors > 0 and not prepare.neighbours:
        raise ValueError(f"apex_neighbors={apex_neighbors} needs the neighbour frames in the cache: set "
                         f"data.prepare.neighbours=true (or data.apex_neighbors=0)")
    cfg = dataclasses.replace(prepare, size=img_size, color="gray", progress=prepare.progress and progress)
    prepared = cached_dataset(cfg) if cache_only else prepare_dataset(cfg)
    if prepared is None:
        return None
    m = prepared.manifest
    onsets, apexes, labels, subjects, clips, of, af = [], [], [], [], [], [], []
    n_not = 0
    for r in m.itertuples(index=False):
        y = int(r.class3) if r.class3 == r.class3 else -1            # NaN: no class
        if y < 0:
            n_not += 1
            continue
        i = int(r.index)
        frames = [(int(r.apex), prepared.frames.apex[i])]
        for d in sorted(_NEIGHBOUR_SLOTS, key=lambda d: (abs(d), d)):
            slot, col = _NEIGHBOUR_SLOTS[d]
            if abs(d) <= apex_neighbors:     # inside onset..offset: select_neighbours made the cache so
                frames.append((int(getattr(r, col)), prepared.frames.apex_neighbours[i, slot]))
        seen: set[int] = set()
        for number, face in frames:
            if number in seen:                              # a substituted neighbour repeats a frame
                continue
            seen.add(number)
            onsets.append(prepared.frames.onset[i])
            apexes.append(face)
            labels.append(y)
            subjects.append(str(r.subject))
            clips.append(f"{str(r.subject).split('/')[-1]}/{r.clip}")
            of.append(int(r.onset))
            af.append(number)
    skipped = [(str(k), str(w)) for k, w in zip(prepared.skipped.get("key", []), prepared.skipped.get("reason", []))]
    if not labels:
        raise ValueError(f"no composite clip (negative, positive, surprise) among the {len(m)} prepared clips of "
                         f"{[d.name for d in prepare.datasets]}")
    return PairSet(np.stack(onsets), np.stack(apexes), np.asarray(labels, dtype=np.int64), subjects, clips,
                   np.asarray(of, dtype=np.int64), np.asarray(af, dtype=np.int64), skipped, n_not)
