"""The input contract shared by every flow network of :mod:`flownet.models`."""
from __future__ import annotations

import torch

__all__ = ["rgb01_batch"]


def rgb01_batch(img: torch.Tensor) -> torch.Tensor:
    """Images (B, 1|3, H, W) in [0, 1] as float32 (B, 3, H, W), grey repeated to RGB (a view of float32 input; other
    dtypes are converted, which copies).

    Raises:
        ValueError: not a 4-D tensor with 1 or 3 channels.
    """
    if img.dim() != 4 or img.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, 1 or 3, H, W) in [0, 1], got {tuple(img.shape)}")
    return (img.expand(-1, 3, -1, -1) if img.shape[1] == 1 else img).float()
