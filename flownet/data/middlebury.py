"""Middlebury optical-flow pairs with ground truth (``<root>/<Sequence>/frame10.png, frame11.png, flow10.flo``).

Default root: ``$ICEGAN_SHARED_DATA/middlebury`` (else ``<repo>/../shared/data/middlebury``).
Frames are read as grey (the shared copy is grey; RubberWhale also has ``*_rgb.png``, not used) and
returned as (1, H, W) float in [0, 1]; flow (2, H, W) pixels; valid (H, W) bool (``.flo`` values above
1e9 are unknown).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..io import flow_to_tensor, read_flo, read_image
from .synthetic_face import shared_data_root

__all__ = ["MiddleburyFlow"]


class MiddleburyFlow(torch.utils.data.Dataset):
    """Items: dict(name, img1, img2, flow, valid) (see module docstring).

    Raises:
        FileNotFoundError: root missing, or a sequence without frame10.png / frame11.png / flow10.flo
            (the message names the sequence and the missing file).
    """

    def __init__(self, root: str | Path | None = None, sequences: list[str] | None = None):
        self.root = Path(root) if root is not None else shared_data_root() / "middlebury"
        if not self.root.is_dir():
            raise FileNotFoundError(f"Middlebury folder not found: {self.root} (use --root)")
        names = sequences or sorted(p.name for p in self.root.iterdir() if p.is_dir())
        if not names:
            raise FileNotFoundError(f"no sequence folders under {self.root}")
        for n in names:
            for f in ("frame10.png", "frame11.png", "flow10.flo"):
                if not (self.root / n / f).is_file():
                    raise FileNotFoundError(f"Middlebury sequence {n}: missing {self.root / n / f}")
        self.sequences = names

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> dict:
        d = self.root / self.sequences[i]
        flow, valid = read_flo(d / "flow10.flo")
        img1, img2 = read_image(d / "frame10.png", gray=True), read_image(d / "frame11.png", gray=True)
        if img1.shape[-2:] != flow.shape[:2]:
            raise ValueError(f"{d}: frame size {tuple(img1.shape[-2:])} differs from flow size {flow.shape[:2]}")
        return {"name": self.sequences[i], "img1": img1, "img2": img2, "flow": flow_to_tensor(flow),
                "valid": torch.from_numpy(valid)}
