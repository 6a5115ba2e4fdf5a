"""Generator level widths, importable without torch."""
from __future__ import annotations

import math

__all__ = ["level_widths"]


def level_widths(img_size: int, base_channels: int, max_channels: int) -> list[int]:
    """Channel widths of the :class:`~icegan.models.generator.Generator`'s encoder levels, finest first:
    ``min(base_channels * 2^i, max_channels)`` for i = 0 .. log2(img_size) - 2, i.e. ``log2(img_size) - 1`` levels
    (6 at 128 pixels, down to 2×2). ``img_size`` in pixels, a power of two >= 16 (the Generator refuses others; not
    checked here). Each level is normalised with ``GroupNorm(min(8, C), C)`` (``icegan.models.generator._norm``),
    which needs every width <= 8 or a multiple of 8."""
    return [min(base_channels * 2 ** i, max_channels) for i in range(int(round(math.log2(img_size))) - 1)]
