"""KITTI optical-flow training pairs with ground truth (KITTI 2015 or 2012, as unpacked).

Layouts under ``root`` (``root`` may be the dataset folder or its ``training/`` folder):

* KITTI 2015: ``training/image_2/<id>_10.png``, ``<id>_11.png`` and ``training/flow_occ/<id>_10.png``;
* KITTI 2012: ``training/colored_0/`` (or the grey ``training/image_0/``) instead of ``image_2/``.

The ground truth is ``flow_occ`` (all pixels with a measured flow; ``flow_noc`` when only it exists), a 16-bit PNG
read by :func:`flownet.io.read_kitti_png`; the flow is sparse (about a fifth to a half of the pixels are valid) and
every metric is taken over the valid pixels. Frames are returned grey like Middlebury's (``gray=True``):
(1, H, W) float in [0, 1]; flow (2, H, W) pixels; valid (H, W) bool.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..frame_io import quarter_turn_note
from ..io import flow_to_tensor, read_image, read_kitti_png
from .orientation import StoredOrientation

__all__ = ["KittiFlow", "FRAME_DIRS", "FLOW_DIRS"]

#: frame folders tried in this order (2015 colour, 2012 colour, 2012 grey)
FRAME_DIRS = ("image_2", "colored_0", "image_0")
#: ground-truth folders tried in this order
FLOW_DIRS = ("flow_occ", "flow_noc")


class KittiFlow(torch.utils.data.Dataset):
    """Items: dict(name, img1, img2, flow, valid) (see module docstring), in the order of the pair ids.

    Args:
        root: the KITTI folder (holding ``training/``) or ``training/`` itself.
        n_pairs: use the first n pairs (0 = all).
        gray: frames as grey (1, H, W) (default) or colour (3, H, W).

    Raises:
        FileNotFoundError: no ground-truth or frame folder (the message lists what is expected), or a pair whose
            frame is missing (named).
        ValueError (on reading an item): frames of another size than the flow, or a frame whose EXIF Orientation
            turns or mirrors it as it is read (:mod:`flownet.data.orientation`; each file checked once).
    """

    def __init__(self, root: str | Path, n_pairs: int = 0, gray: bool = True):
        base = Path(root)
        if (base / "training").is_dir():
            base = base / "training"
        if base.is_file():              # the downloaded archive given for its unpacked folder
            raise FileNotFoundError(f"KITTI --root {root} is a file, not a folder: unpack it and give the folder "
                                    f"holding training/")
        if not base.is_dir():
            raise FileNotFoundError(f"KITTI folder not found: {root} (give --root the unpacked KITTI 2012/2015 folder "
                                    f"holding training/, or training/ itself)")
        flow_dir = next((base / d for d in FLOW_DIRS if (base / d).is_dir()), None)
        frame_dir = next((base / d for d in FRAME_DIRS if (base / d).is_dir()), None)
        if flow_dir is None or frame_dir is None:
            raise FileNotFoundError(f"{base}: expected a ground-truth folder ({' or '.join(FLOW_DIRS)}) and a frame "
                                    f"folder ({' or '.join(FRAME_DIRS)}) in KITTI's training layout")
        flows = sorted(flow_dir.glob("*_10.png"))
        if not flows:
            raise FileNotFoundError(f"no ground-truth flow <id>_10.png in {flow_dir}")
        if n_pairs < 0:
            raise ValueError(f"n_pairs must be >= 0 (0 = all), got {n_pairs}")
        flows = flows[:n_pairs] if n_pairs else flows
        self.items = []
        for f in flows:
            pid = f.name[:-len("_10.png")]
            frames = (frame_dir / f"{pid}_10.png", frame_dir / f"{pid}_11.png")
            for fr in frames:
                if not fr.is_file():
                    raise FileNotFoundError(f"KITTI pair {pid}: missing {fr}")
            self.items.append((pid, frames, f))
        self.gray = gray
        self._orientation = StoredOrientation()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        pid, (f1, f2), gt = self.items[i]
        flow, valid = read_kitti_png(gt)
        img1, img2 = read_image(f1, gray=self.gray), read_image(f2, gray=self.gray)
        if img1.shape != img2.shape or img1.shape[-2:] != flow.shape[:2]:
            raise ValueError(f"KITTI pair {pid}: frames {tuple(img1.shape[-2:])} / {tuple(img2.shape[-2:])} and "
                             f"flow {flow.shape[:2]} differ in size ({f1}, {f2}, {gt})"
                             + quarter_turn_note((f1, f2), f"the ground-truth flow {gt.name}"))
        self._orientation.check((f1, f2), f"the ground-truth flow {gt}")
        return {"name": pid, "img1": img1, "img2": img2, "flow": flow_to_tensor(flow), "valid": torch.from_numpy(valid)}
