"""Middlebury optical-flow pairs with ground truth, in either of two layouts under ``root``:

* one folder per sequence (the shared copy): ``<root>/<Sequence>/frame10.png, frame11.png, flow10.flo``;
* the official download as unpacked (``other-gt-flow.zip`` beside ``other-gray-twoframes.zip`` and/or
  ``other-color-twoframes.zip``): ``<root>/other-gt-flow/<Sequence>/flow10.flo`` with the frames in
  ``<root>/other-data-gray/<Sequence>/`` (else ``<root>/other-data/<Sequence>/``). Only the sequences with
  ground truth are pairs; the evaluation sequences without it (Army, Mequon, ...) are left out.

Default root: ``$ICEGAN_SHARED_DATA/middlebury`` (else ``<repo>/../shared/data/middlebury``).
Frames are read as grey (colour frames are converted; RubberWhale's ``*_rgb.png`` of the shared copy is not used)
and returned as (1, H, W) float in [0, 1]; flow (2, H, W) pixels; valid (H, W) bool (``.flo`` values above
1e9 are unknown).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..frame_io import quarter_turn_note
from ..io import flow_to_tensor, read_flo, read_image
from .orientation import StoredOrientation
from .synthetic_face import shared_data_root

__all__ = ["MiddleburyFlow", "OFFICIAL_FLOW_DIR", "OFFICIAL_FRAME_DIRS"]

#: the official download's ground-truth folder and its frame folders (tried in this order)
OFFICIAL_FLOW_DIR = "other-gt-flow"
OFFICIAL_FRAME_DIRS = ("other-data-gray", "other-data")


def _listed(d: Path) -> list[str]:
    """The names of the folders in ``d`` that may be sequences, sorted: hidden folders (``.name``) and the
    ``__MACOSX/`` folder of an archive unpacked on macOS (its ``._frame10.png`` files are resource forks) left out."""
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX")


def _is_sequence(d: Path) -> bool:
    """Whether folder ``d`` holds a Middlebury sequence's ground truth or first frame (``flow10.flo``,
    ``frame10.png``)."""
    return (d / "flow10.flo").is_file() or (d / "frame10.png").is_file()


def _not_a_middlebury_root(root: Path, folders: list[str]) -> str:
    """The message for a ``root`` none of whose ``folders`` is a sequence: what it holds and, when one of them
    holds sequence folders or the official download (``other-gt-flow/``), that folder to give instead (a
    dataset folder given for the Middlebury folder inside it)."""
    inner = [root / n for n in folders if (root / n / OFFICIAL_FLOW_DIR).is_dir()
             or any(_is_sequence(q) for q in (root / n).iterdir() if q.is_dir())]
    held = ", ".join(f"{n}/" for n in folders[:6]) + (", ..." if len(folders) > 6 else "")
    fix = (f"give the folder that holds the sequences, --root {inner[0]}" if inner else
           f"give the folder that holds the sequence folders (<Sequence>/frame10.png, frame11.png, flow10.flo) "
           f"or the official download's {OFFICIAL_FLOW_DIR}/")
    return f"{root} holds no Middlebury sequence folder (it holds {held}): {fix}"


class MiddleburyFlow(torch.utils.data.Dataset):
    """Items: dict(name, img1, img2, flow, valid) (see module docstring).

    Args:
        root: a folder of sequence folders, or the official download's root (it holds ``other-gt-flow/``).
        sequences: names to use (default: every sequence with ground truth; hidden folders and ``__MACOSX/`` are
            not sequences).

    Raises:
        FileNotFoundError: root missing, no sequence, a root none of whose folders is a sequence (the message names
            a folder inside it that holds sequences, when one does), or a sequence without frame10.png /
            frame11.png / flow10.flo (the message names the sequence and the missing file).
        ValueError (on reading an item): a frame of another size than the flow, or a frame whose EXIF Orientation
            turns or mirrors it as it is read (:mod:`flownet.data.orientation`; each file checked once).
    """

    def __init__(self, root: str | Path | None = None, sequences: list[str] | None = None):
        self.root = Path(root) if root is not None else shared_data_root() / "middlebury"
        if self.root.is_file():         # the downloaded archive given for its unpacked folder
            raise FileNotFoundError(f"Middlebury --root {self.root} is a file, not a folder: unpack it and give the "
                                    f"folder it unpacks to")
        if not self.root.is_dir():      # "use --root" alone was no help to a user who had given --root
            where = "the shared data has no middlebury/: " if root is None else ""
            raise FileNotFoundError(f"Middlebury folder not found: {self.root} ({where}give --root the folder that "
                                    f"holds the sequence folders (<Sequence>/frame10.png, frame11.png, flow10.flo) "
                                    f"or the official download's root, holding {OFFICIAL_FLOW_DIR}/)")
        gt = self.root / OFFICIAL_FLOW_DIR
        self.official = gt.is_dir()
        if self.official:
            frame_dirs = [self.root / f for f in OFFICIAL_FRAME_DIRS if (self.root / f).is_dir()]
            if not frame_dirs:
                raise FileNotFoundError(f"{gt} holds the ground truth, but no frame folder is beside it: unpack "
                                        f"other-gray-twoframes.zip or other-color-twoframes.zip into {self.root} "
                                        f"(expected one of {list(OFFICIAL_FRAME_DIRS)})")
            names = sequences or _listed(gt)
            self._flow = {n: gt / n / "flow10.flo" for n in names}
            self._frames = {n: next((d / n for d in frame_dirs if (d / n / "frame10.png").is_file()), frame_dirs[0] / n)
                            for n in names}
        else:
            names = sequences or _listed(self.root)
            if not sequences and names and not any(_is_sequence(self.root / n) for n in names):
                raise FileNotFoundError(_not_a_middlebury_root(self.root, names))
            self._flow = {n: self.root / n / "flow10.flo" for n in names}
            self._frames = {n: self.root / n for n in names}
        if not names:
            if not self.official and (self.root / "flow10.flo").is_file():     # pointed at one sequence's folder
                raise FileNotFoundError(f"{self.root} is a sequence folder itself (it holds flow10.flo): give the "
                                        f"folder that holds the sequence folders, {self.root.parent}")
            raise FileNotFoundError(f"no sequence folders under {gt if self.official else self.root}")
        for n in names:
            for f in (self._frames[n] / "frame10.png", self._frames[n] / "frame11.png", self._flow[n]):
                if not f.is_file():
                    raise FileNotFoundError(f"Middlebury sequence {n}: missing {f}")
        self.sequences = names
        self._orientation = StoredOrientation()

    def __len__(self) -> int:
        return len(self.sequences)

    def frame_files(self, name: str) -> tuple[Path, Path]:
        """The two frame files (``frame10.png``, ``frame11.png``) of sequence ``name``, for messages."""
        d = self._frames[name]
        return d / "frame10.png", d / "frame11.png"

    def __getitem__(self, i: int) -> dict:
        n = self.sequences[i]
        flow, valid = read_flo(self._flow[n])
        d = self._frames[n]
        img1, img2 = read_image(d / "frame10.png", gray=True), read_image(d / "frame11.png", gray=True)
        if img1.shape[-2:] != flow.shape[:2]:
            raise ValueError(f"{d}: frame size {tuple(img1.shape[-2:])} differs from flow size {flow.shape[:2]} "
                             f"({self._flow[n]})" + quarter_turn_note([d / "frame10.png"], "the flow"))
        if img2.shape == img1.shape:    # else the pair check of flownet.evaluate names the frames (and a quarter turn)
            self._orientation.check(self.frame_files(n), f"the ground-truth flow {self._flow[n]}")
        return {"name": n, "img1": img1, "img2": img2, "flow": flow_to_tensor(flow),
                "valid": torch.from_numpy(valid)}
