"""Unlabelled real CASME II frame pairs for self-supervised flow training (no ground truth).

Reads the cropped clips of ``<root>/casme2`` through its ``manifest.csv`` (one row per clip: subject,
filename, onset, apex, verified, ...; see ``../shared/data/README.md``). Only subjects of the **train** side
of the fixed seeded subject split (:func:`flownet.data.synthetic_face.split_subjects`, the split of the
synthetic facial test set) are used, so the facial test subjects stay held out.

Two kinds of pairs (frame 1 → frame 2):

* ``consecutive``: ``img{n}.jpg → img{n+1}.jpg`` for every n where both files exist in the clip folder;
* ``onset_apex``: ``img{onset}.jpg → img{apex}.jpg`` of each clip (the micro-expression's motion).

Frames are found by number: ``img{n}.jpg``, or ``reg_img{n}.jpg`` as the official Cropped release names them
(:func:`flownet.data.synthetic_face.clip_frames`, the one frame pattern of flownet).

Clips whose manifest row has ``verified`` false (truncated, missing or mislabelled dumps) are skipped and
listed in :attr:`RealFramePairs.skipped` with the manifest's note (and one warning); so is, with a warning naming
each, a clip with a frame of another size than its onset (a frame of another crop mixed in: resized on its own, its
pairs would hold no real motion) or with a frame whose header cannot be read (sizes read from the files' headers at
construction). A verified clip whose onset or apex frame file is absent raises :class:`FileNotFoundError` naming the
file. A frame whose header reads but that OpenCV cannot decode, or that is cut short, raises :class:`OSError` naming
the file when first read.

Frames are preprocessed like :class:`~flownet.data.synthetic_face.SyntheticFaceFlow` (whole crop resized
to ``size`` x ``size`` with INTER_AREA, aspect not preserved, then grey) and cached decoded in memory as
uint8 (first use, or all at once with ``preload=True``): no per-step JPEG decoding. Nothing is written to
disk.
"""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import torch

from ..io import not_utf8_csv
from ..user_numbers import read_frame_number
from .synthetic_face import clip_frames, list_subjects, shared_data_root, split_subjects

__all__ = ["PAIR_KINDS", "read_manifest", "RealFramePairs"]

PAIR_KINDS = ("consecutive", "onset_apex")
_REQUIRED = ("subject", "filename", "onset", "apex", "verified")


def read_manifest(path: str | Path) -> list[dict]:
    """Rows of a CASME II ``manifest.csv`` as dicts of strings.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a required column (subject, filename, onset, apex, verified) is missing, or the file is not
            UTF-8 text (a byte-order mark is allowed).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"CASME II manifest not found: {p}")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:     # a spreadsheet's 'CSV UTF-8' starts with a BOM
            reader = csv.DictReader(fh)
            missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{p}: missing column(s) {missing}; has {reader.fieldnames}")
            return list(reader)
    except UnicodeDecodeError as exc:
        raise not_utf8_csv(p, exc) from None


def _frame_number(text: str, field: str, where: str) -> int:
    """A manifest cell's frame number (:func:`flownet.user_numbers.read_frame_number`: ASCII digits, optionally with
    a zero fraction, ``46.0``).

    Raises:
        ValueError: anything else (``46.5``, ``nan``, ``inf``, ``1e3``, non-ASCII digits), naming ``where``, the
            field and the text.
    """
    try:
        return read_frame_number(text)
    except ValueError:
        raise ValueError(f"{where}: {field} {text!r} is not a frame number") from None


def _mixed_sizes(nums: list[int], onset: str, files: dict[int, Path]) -> str | None:
    """Why the frames ``files[n]`` (n in ``nums``; a clip's :func:`~flownet.data.synthetic_face.clip_frames`,
    ``img{n}.jpg`` or ``reg_img{n}.jpg``) cannot be paired, or None: a frame of another size
    (width, height read from each file's header, without decoding, turned by its EXIF orientation as read_frame
    reads it: :func:`flownet.frame_io.oriented_size`) than the onset frame (the most common size when the sheet's
    onset is not among them), or a file whose header cannot be read. Found at construction, so that a long training
    run does not stop at the first such pair it draws."""
    from collections import Counter

    from PIL import UnidentifiedImageError

    from ..frame_io import oriented_size
    sizes: dict[int, tuple[int, int]] = {}
    for n in nums:
        try:
            sizes[n] = oriented_size(files[n])
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            return f"frame {files[n]} cannot be read as an image ({exc}); clip skipped"
    if len(set(sizes.values())) <= 1:
        return None
    try:
        ref_n = read_frame_number(onset)
    except ValueError:                  # no frame number: the most common size is the reference
        ref_n = -1
    if ref_n not in sizes:
        common = Counter(sizes.values()).most_common(1)[0][0]
        ref_n = next(n for n in nums if sizes[n] == common)
    odd = [n for n in nums if sizes[n] != sizes[ref_n]]
    (w, h), (rw, rh) = sizes[odd[0]], sizes[ref_n]
    more = f" (and {len(odd) - 1} more: {', '.join(files[n].name for n in odd[1:4])}{' ...' if len(odd) > 4 else ''})"
    return (f"frame {files[odd[0]].name} is {w}x{h} pixels, {files[ref_n].name} {rw}x{rh}"
            f"{more if len(odd) > 1 else ''}: the "
            f"frames of a clip must have one size (a frame of another crop mixed in?); clip skipped")


class RealFramePairs(torch.utils.data.Dataset):
    """Unlabelled frame pairs of real CASME II clips (module docstring).

    Item ``i`` is determined by ``(seed, i)``: the kind (``onset_apex`` with probability
    ``onset_apex_prob``, else ``consecutive``; a kind with no pairs is never drawn), the pair (uniform
    within the kind), the random crop position and a horizontal flip (both frames alike).

    Args:
        root: shared data root holding ``casme2/`` (None → ``$ICEGAN_SHARED_DATA`` or ``<repo>/../shared/data``).
        split: "train" (default) or "test" side of the subject split (``n_test``, ``split_seed`` as the
            synthetic facial set). subjects: explicit subject list instead (must exist under casme2/).
        size: frames are resized to ``size`` x ``size`` (pixels). crop: random square crop side
            (0 = whole frame). kinds: pair kinds to use (subset of :data:`PAIR_KINDS`).
        onset_apex_prob: probability of drawing an onset→apex pair. flip: random horizontal flips.
        n_items: dataset length (None → number of distinct pairs). max_clips: use only the first clips
            (sorted; for quick tests). preload: decode every needed frame at construction.

    Items: dict ``img1``, ``img2`` (1, crop, crop) float [0, 1]; ``kind`` (str); ``path1``, ``path2`` (str);
    ``subject`` (str).

    Raises:
        FileNotFoundError: no casme2 folder / manifest, a verified clip's onset or apex frame missing (named),
            or no usable pair at all (naming the first clips skipped and why). ValueError: bad arguments or
            manifest values (named).
        OSError: (at item access) a frame file cannot be decoded or is cut short (named).
    """

    def __init__(self, root=None, split: str = "train", size: int = 128, crop: int = 0,
                 kinds: tuple[str, ...] = PAIR_KINDS, onset_apex_prob: float = 0.5, flip: bool = True,
                 seed: int = 0, n_items: int | None = None, subjects: list[str] | None = None,
                 n_test: int = 4, split_seed: int = 2026, max_clips: int | None = None, preload: bool = False):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        bad = [k for k in kinds if k not in PAIR_KINDS]
        if bad or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {list(PAIR_KINDS)}, got {list(kinds)}")
        if not 0.0 <= onset_apex_prob <= 1.0:
            raise ValueError(f"onset_apex_prob must be in [0, 1], got {onset_apex_prob}")
        if size < 8 or crop < 0 or crop > size:
            raise ValueError(f"need size >= 8 and 0 <= crop <= size, got size={size}, crop={crop}")
        self.root = Path(root) if root is not None else shared_data_root()
        self.size, self.crop, self.flip, self.seed = int(size), int(crop), bool(flip), int(seed)
        self.onset_apex_prob = float(onset_apex_prob)
        c2 = self.root / "casme2"
        all_subjects = list_subjects(self.root)
        if subjects is None:
            subjects = split_subjects(all_subjects, n_test, split_seed)[split]
        else:
            unknown = [s for s in subjects if s not in all_subjects]
            if unknown:
                raise ValueError(f"subjects {unknown} have no frames under {c2}")
        self.subjects = sorted(subjects)
        manifest = c2 / "manifest.csv"
        rows = [r for r in read_manifest(manifest) if r["subject"] in self.subjects]
        rows.sort(key=lambda r: (r["subject"], r["filename"]))
        if max_clips is not None:
            rows = rows[:int(max_clips)]

        self.pairs: dict[str, list[tuple[Path, Path]]] = {k: [] for k in PAIR_KINDS}
        self.skipped: list[str] = []
        odd_clips: list[str] = []
        for r in rows:
            clip = c2 / r["subject"] / r["filename"]
            where = f"{manifest} row {r['subject']}/{r['filename']}"
            if str(r["verified"]).strip().lower() != "true":
                self.skipped.append(f"{r['subject']}/{r['filename']}: not verified ({r.get('note') or 'no note'})")
                continue
            if not clip.is_dir():
                raise FileNotFoundError(f"{where} is verified but its folder {clip} does not exist")
            files = clip_frames(clip)           # img{n}.jpg, or reg_img{n}.jpg of the official Cropped release
            nums = sorted(files)
            have = set(nums)
            used = nums                     # the frames this run pairs: all of them, or (onset→apex only) two
            if "consecutive" not in kinds:
                key = {_frame_number(r[f], f, where) for f in ("onset", "apex") if str(r[f]).strip()}
                used = [n for n in nums if n in key]
            why = _mixed_sizes(used, r["onset"], files)
            if why is not None:
                self.skipped.append(f"{r['subject']}/{r['filename']}: {why}")
                odd_clips.append(self.skipped[-1])
                continue
            if "consecutive" in kinds:
                self.pairs["consecutive"] += [(files[n], files[n + 1]) for n in nums if n + 1 in have]
            if "onset_apex" in kinds:
                if not str(r["apex"]).strip():
                    self.skipped.append(f"{r['subject']}/{r['filename']}: no apex in the sheet (onset→apex skipped)")
                    continue
                on = _frame_number(r["onset"], "onset", where)
                ap = _frame_number(r["apex"], "apex", where)
                for n, what in ((on, "onset"), (ap, "apex")):
                    if n not in have:
                        raise FileNotFoundError(f"{where}: {what} frame {clip / f'img{n}.jpg'} does not exist (nor "
                                                f"reg_img{n}.jpg)")
                if ap != on:
                    self.pairs["onset_apex"].append((files[on], files[ap]))
        self.kinds = tuple(k for k in kinds if self.pairs[k])
        if not self.kinds:              # the warnings below would never be shown: the reasons go in the message
            raise FileNotFoundError(f"no usable frame pair of kinds {list(kinds)} for subjects {self.subjects} "
                                    f"under {c2}" + (f"; skipped: {'; '.join(self.skipped[:3])}"
                                                     f"{' ...' if len(self.skipped) > 3 else ''}"
                                                     if self.skipped else ""))
        if odd_clips:                   # each named: a frame of another crop is worth finding, unlike a known bad dump
            warnings.warn(f"RealFramePairs: skipped {len(odd_clips)} clip(s) with frames of different sizes: "
                          + "; ".join(odd_clips), stacklevel=2)
        if self.skipped:
            warnings.warn(f"RealFramePairs: skipped {len(self.skipped)} clip(s) of {manifest}: "
                          + "; ".join(self.skipped[:3]) + (" ..." if len(self.skipped) > 3 else ""),
                          stacklevel=2)
        self.n_pairs = sum(len(self.pairs[k]) for k in self.kinds)
        self.n_items = int(n_items) if n_items is not None else self.n_pairs
        self._cache: dict[Path, np.ndarray] = {}
        self._sizes: dict[Path, tuple[int, int]] = {}      # (width, height) of each frame file as read
        if preload:
            for k in self.kinds:
                for a, b in self.pairs[k]:
                    self.frames(a, b)

    def __len__(self) -> int:
        return self.n_items

    def frame(self, path: Path) -> np.ndarray:
        """Decoded frame (size, size) uint8 grey, from the cache (decoded on first use).

        Raises:
            OSError: the file is missing, cut short or cannot be decoded (:func:`flownet.frame_io.read_frame`; names
                it).
        """
        got = self._cache.get(path)
        if got is not None:
            return got
        import cv2

        from ..frame_io import read_frame
        if not Path(path).is_file():
            raise OSError(f"frame file missing: {path}")
        try:
            bgr = read_frame(path, cv2.IMREAD_COLOR)
        except ValueError as exc:
            raise OSError(str(exc)) from None
        small = cv2.resize(bgr, (self.size, self.size), interpolation=cv2.INTER_AREA)
        grey = np.ascontiguousarray(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        self._cache[path] = grey
        self._sizes[path] = (bgr.shape[1], bgr.shape[0])
        return grey

    def frames(self, p1: Path, p2: Path) -> tuple[np.ndarray, np.ndarray]:
        """The decoded frames of a pair (:meth:`frame`).

        Raises:
            ValueError: the two files differ in size (a frame of another crop mixed in: resized on its own, the pair
                would hold no real motion); the message names both files and sizes.
        """
        a, b = self.frame(p1), self.frame(p2)
        (w1, h1), (w2, h2) = self._sizes[p1], self._sizes[p2]
        if (w1, h1) != (w2, h2):
            raise ValueError(f"frames of one clip differ in size: {p1} is {w1}x{h1} pixels, {p2} {w2}x{h2} "
                             f"(a frame of another crop mixed in?)")
        return a, b

    def pair(self, kind: str, j: int) -> tuple[Path, Path]:
        """The j-th (frame 1, frame 2) paths of a kind."""
        return self.pairs[kind][j]

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n_items:
            raise IndexError(f"item {i} out of range (n_items={self.n_items})")
        rng = np.random.default_rng([self.seed, i])
        if len(self.kinds) == 2:
            kind = "onset_apex" if rng.random() < self.onset_apex_prob else "consecutive"
        else:
            kind = self.kinds[0]
        p1, p2 = self.pairs[kind][int(rng.integers(len(self.pairs[kind])))]
        a, b = self.frames(p1, p2)
        if self.crop:
            y, x = (int(v) for v in rng.integers(0, self.size - self.crop + 1, size=2))
            a, b = a[y:y + self.crop, x:x + self.crop], b[y:y + self.crop, x:x + self.crop]
        if self.flip and rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        img1 = torch.from_numpy(np.ascontiguousarray(a)).float()[None] / 255.0
        img2 = torch.from_numpy(np.ascontiguousarray(b)).float()[None] / 255.0
        return {"img1": img1, "img2": img2, "kind": kind, "path1": str(p1), "path2": str(p2),
                "subject": p1.parent.parent.name}
