"""The input contract shared by every flow network of :mod:`flownet.models`."""
from __future__ import annotations

import torch

__all__ = ["check_image_batch", "rgb01_batch", "update_count"]


def update_count(iters: int | None, default: int) -> int:
    """The number of recurrent updates a ``forward(img1, img2, iters)`` runs: ``iters``, or ``default`` (the model
    config's) when it is None or 0.

    Raises:
        ValueError: the count is below 1 (names ``iters``, or the config's value when that is the one used).
    """
    n = int(iters or default)
    if n < 1:
        raise ValueError(f"iters must be >= 1, got {iters if iters else f'config.iters = {n}'}")
    return n


def check_image_batch(img: torch.Tensor, name: str = "images") -> None:
    """Refuse ``img`` (called ``name`` in the message) unless it is a (B, 1|3, H, W) floating-point tensor, images in
    [0, 1]: 0-255 integer frames are refused, not rescaled. The dtype alone is checked, not the values (no scan).

    Raises:
        ValueError: another layout, or an integer / bool dtype.
    """
    if img.dim() != 4 or img.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be (B, 1 or 3, H, W), got {tuple(img.shape)}")
    if not img.is_floating_point():
        raise ValueError(f"{name} must be a floating-point image in [0, 1], got {img.dtype} "
                         f"(divide 0-255 frames by 255 first)")


def rgb01_batch(img: torch.Tensor) -> torch.Tensor:
    """Images (B, 1|3, H, W) in [0, 1] as float32 (B, 3, H, W), grey repeated to RGB (a view of float32 input; other
    floating dtypes are converted, which copies).

    Raises:
        ValueError: not a 4-D tensor with 1 or 3 channels, or not floating point (0-255 integer frames are
            refused, not rescaled: the dtype alone is checked, not the values).
    """
    check_image_batch(img)
    return (img.expand(-1, 3, -1, -1) if img.shape[1] == 1 else img).float()
