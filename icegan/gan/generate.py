"""Onset faces for ``icegan generate``, fitted to the generator's input as its training faces were.

An ICE-GAN generator takes square grey faces of its ``data.img_size``. How its training faces got that size is in
the checkpoint's config (:class:`icegan.gan.trainer.GanDataConfig`):

- ``data.source=manifest`` (``icegan gan train`` on the cropped CASME II copy, 231×282 crops among others):
  every frame resized to S×S with OpenCV ``INTER_AREA``, the aspect ratio not kept
  (:func:`icegan.gan.pairs.load_casme2_pairs`);
- ``data.source=prepared`` (``data.source=prepared``, or a main-job fold on prepared data): the faces of
  :func:`icegan.data.prepare.prepare_dataset`; a ``cropped`` dataset's crops resized to S×S, aspect ratio not kept,
  ``INTER_AREA`` when shrinking and ``INTER_CUBIC`` when enlarging (:func:`icegan.data.align.resize_cropped`); a
  ``raw`` dataset's faces detected and aligned from full frames into square crops. An onset image is taken as such
  a face crop and resized as a cropped dataset's are (no face detection here).

:func:`load_onsets` reads the images grey and applies that resize, and says what it did when it changed an image
(its size, and its aspect ratio when the image is not square), so that a squashed face is never a silent surprise.
:func:`draws_are_copies` tells ``icegan generate -n N`` that its N draws are copies of one face (a generator that
ignores its noise input), so that N copies are never counted as N samples.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

__all__ = ["TrainingFit", "training_fit", "load_onsets", "onset_name", "draws_are_copies"]

#: a CASME II frame's file name (without suffix): ``img46`` (the shared copy), ``reg_img46`` (the official Cropped
#: release); such a name says which frame, not which face
_FRAME_STEM = re.compile(r"(reg_)?img[0-9]+", re.IGNORECASE)


@dataclass(frozen=True)
class TrainingFit:
    """How a generator's training faces were brought to its input size.

    Attributes:
        size: the generator's side S in pixels (``data.img_size``).
        resize: grey uint8 (H, W) → (S, S) uint8, the resize the training faces went through.
        how: one phrase for messages, e.g. ``"with INTER_AREA, as icegan gan train resized the CASME II crops it
            trained on (data.source=manifest)"``.
        squashes: whether training resized faces that were not square (the crops of ``manifest`` and of a
            ``cropped`` prepared dataset), changing their aspect ratio; False when every training face was a square
            aligned crop (``raw`` prepared datasets only).
    """
    size: int
    resize: Callable[[np.ndarray], np.ndarray]
    how: str
    squashes: bool = True


def training_fit(cfg) -> TrainingFit:
    """The :class:`TrainingFit` of a generator trained with the :class:`icegan.gan.trainer.GanConfig` ``cfg`` (the
    config its checkpoint holds: :func:`icegan.gan.trainer.load_checkpoint`)."""
    size = int(cfg.data.img_size)
    if cfg.data.source == "prepared":
        from icegan.data.align import resize_cropped
        modes = sorted({d.mode for d in cfg.data.prepare.datasets})
        names = ", ".join(f"{d.name} ({d.mode})" for d in cfg.data.prepare.datasets)
        how = ("with INTER_AREA when shrinking and INTER_CUBIC when enlarging, as preprocessing resized the cropped "
               f"faces the generator trained on (data.source=prepared: {names})")
        if "raw" in modes:
            how += ("; raw datasets' faces were detected and aligned from full frames into square crops, so give "
                    "aligned face crops")
        return TrainingFit(size, lambda img: resize_cropped(img, size), how, squashes="cropped" in modes)
    from .pairs import fit_square           # the resize load_casme2_pairs applies to every training frame
    return TrainingFit(size, lambda img: fit_square(img, size),
                       "with INTER_AREA, as icegan gan train resized the CASME II crops it trained on "
                       "(data.source=manifest)")


def onset_name(path: str | Path) -> str:
    """The name of the onset image ``path`` in output names and noise keys (``icegan generate``'s ``NAME``): its file
    name without suffix, except a CASME II frame of the official layout ``SUBJECT/CLIP/imgN.jpg`` (or
    ``reg_imgN.jpg``), named ``SUBJECT_CLIP_imgN`` (``sub02/EP01_11f/img46.jpg`` → ``sub02_EP01_11f_img46``), so that
    frames of the same number in two clips get two names, each the same whatever other onsets are given.

    Args:
        path: an image file (relative paths are taken from the working folder).
    Returns:
        the name (a frame without two named parent folders keeps its file name).
    """
    p = Path(path)
    if not _FRAME_STEM.fullmatch(p.stem):
        return p.stem
    clip = p.absolute().parent
    return f"{clip.parent.name}_{clip.name}_{p.stem}" if clip.name and clip.parent.name else p.stem


def load_onsets(paths: str | Path | Sequence[str | Path], cfg) -> tuple[np.ndarray, list[str], str | None]:
    """Onset faces for the generator of ``cfg``, read grey and resized as its training faces were.

    Args:
        paths: image file(s) and/or folder(s) of them (:func:`icegan.gan.pairs.list_face_files`).
        cfg: the generator's :class:`icegan.gan.trainer.GanConfig` (its checkpoint's).

    Returns:
        ``(faces (N, S, S) uint8, names (:func:`onset_name` of each file, in order), note)``: ``note`` is one line
        saying how many images were resized from which sizes to S×S and how (:func:`training_fit`), and, when some
        were not square, that their aspect ratio changed; None when every image already was S×S.

    Raises:
        FileNotFoundError: an image is missing; ValueError: a folder without images, an unreadable image (named).
    """
    from .pairs import list_face_files, read_grey     # the reader (grey, EXIF orientation) of the training frames
    fit = training_fit(cfg)
    files = list_face_files(paths)
    raw = [read_grey(f) for f in files]
    faces = np.stack([fit.resize(img) for img in raw])
    sizes = Counter((img.shape[1], img.shape[0]) for img in raw if img.shape != (fit.size, fit.size))
    if not sizes:
        return faces, [onset_name(f) for f in files], None
    n = sum(sizes.values())
    listed = ", ".join(f"{w}x{h}" + (f" ({k})" if len(sizes) > 1 else "") for (w, h), k in sizes.most_common())
    note = f"{n} onset image(s) of {listed} pixels resized to {fit.size}x{fit.size} {fit.how}"
    squashed = sum(k for (w, h), k in sizes.items() if w != h)
    if squashed and fit.squashes:
        note += (f"; {squashed} not square: aspect ratio changed, as the training crops' was (the generator saw "
                 f"faces squashed the same way)")
    elif squashed:
        note += (f"; {squashed} not square: aspect ratio changed, while the training faces were square aligned "
                 f"crops: give square aligned face crops for an input like the generator's training faces")
    return faces, [onset_name(f) for f in files], note


def draws_are_copies(faces: np.ndarray, n: int, tolerance: int = 1) -> bool:
    """Whether the ``n`` noise draws of every (onset, class) are copies of one face: the generator ignores its noise
    input (``icegan gan eval``'s ``z_diversity``, the mean grey-level difference of two draws, is then about 0).

    Args:
        faces: (M, S, S) uint8 faces as written, ordered onset-major, then class, then draw (the order of
            :func:`icegan.gan.synthesis.synthesize`), M a multiple of ``n``.
        n: draws per (onset, class).
        tolerance: the largest difference in grey levels (0-255) between two draws of one (onset, class), at any
            pixel, that still counts as a copy (1: the rounding of a noise effect under half a grey level).
    Returns:
        True when ``n >= 2`` and, for every (onset, class), every pixel of its draws is within ``tolerance`` grey
        levels; False when ``n < 2`` (nothing to compare) or some (onset, class) has draws that differ more.
    Raises:
        ValueError: M is not a multiple of ``n``.
    """
    if len(faces) % n:
        raise ValueError(f"draws_are_copies: {len(faces)} faces are not whole groups of {n} draws")
    if n < 2 or not len(faces):
        return False
    groups = faces.reshape(len(faces) // n, n, -1)
    return int(np.ptp(groups, axis=1).max()) <= tolerance      # max − min per pixel: the largest pairwise difference
