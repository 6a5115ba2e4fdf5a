"""The smooth random textures the flow tests move around: bicubic upsampling of 4× coarser uniform noise, so every
pixel has gradient in both axes and no aliasing at the shifts the tests use."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_texture(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(b, 1, h, w) float32 in [0, 1]: uniform noise at (h // 4, w // 4) upsampled bicubically to (h, w)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, h // 4, w // 4, generator=g)
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
