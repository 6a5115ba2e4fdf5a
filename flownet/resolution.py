"""Run a flow estimator at a working resolution: images resized in, flow resized and rescaled out.

A learned flow network works at the resolution it was trained at. The shipped SRFlowNet was trained on
128x128 face crops (its weights record ``meta["size"] = 128``); on 64x64 crops its 1/8 feature grid has
8x8 cells and its flow on real CASME II onset→apex pairs barely follows TV-L1's (per-clip correlation
0.25), while the same pairs upsampled to 128x128 give 0.75, on a par with Farneback's 0.70
(docs/benchmarks.md, "Working resolution"). :class:`ResizedEstimator` makes that resampling part of the
estimator, so every caller (real features, synthetic apexes, the joint loss) gets it.
"""
from __future__ import annotations

import math
import numbers
import sys
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["resize_flow", "training_size", "ResizedEstimator", "at_input_size", "check_size"]


def check_size(size, where: str, square: bool = False) -> tuple[int, int]:
    """An output size as (H, W) ints, pixels: ``size`` a length-2 sequence (H, W) (tuple, list, ``torch.Size``) of
    whole numbers >= 1, or with ``square`` one such number (the side, returned as (side, side)). Whole floats
    (8.0) are taken as ints; fractions (7.9, not truncated), NaN, inf, bools and strings are refused.

    Raises:
        ValueError: ``"<where>: size must be ..., got <size>"``, ``where`` naming the function.
    """
    def whole(v) -> Optional[int]:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return None
        if isinstance(v, numbers.Integral):
            return int(v)
        return int(v) if math.isfinite(v) and float(v).is_integer() else None

    if square:
        hw = (whole(size),) * 2
    else:
        hw = tuple(whole(v) for v in size) if isinstance(size, (tuple, list)) else ()
    if len(hw) != 2 or any(v is None or v < 1 for v in hw):
        what = "one whole number >= 1" if square else "(H, W), two whole numbers >= 1"
        raise ValueError(f"{where}: size must be {what}, got {size!r}")
    return hw


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a flow field to ``size`` = (H, W) and rescale its vectors to the new pixel grid.

    Args:
        flow: (B, 2, h, w), pixels of the (h, w) grid; channel 0 = u (x), 1 = v (y).
        size: target (H, W) in pixels.

    Returns:
        (B, 2, H, W): bilinear resampling (``align_corners=False``, anti-aliased when shrinking), u multiplied
        by W / w and v by H / h, so a displacement keeps its meaning in the new image. Differentiable.

    Raises:
        ValueError: ``flow`` is not (B, 2, h, w) or ``size`` is not a length-2 sequence of whole numbers >= 1
            (:func:`check_size`: an int, (8,), (8, 8, 8), (7.9, 8) are refused).
    """
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"resize_flow expects a (B, 2, H, W) flow, got {tuple(flow.shape)}")
    H, W = check_size(size, "resize_flow")
    h, w = flow.shape[-2:]
    if (h, w) == (H, W):
        return flow
    out = F.interpolate(flow, size=(H, W), mode="bilinear", align_corners=False, antialias=(H < h or W < w))
    scale = torch.tensor([W / w, H / h], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)
    return out * scale


def training_size(estimator) -> Optional[int]:
    """The square crop side (pixels) a learned estimator's weights were trained at, from their ``meta["size"]``
    (written by ``icegan flow train``); None for classical methods and weights that do not record it."""
    model = getattr(estimator, "model", None)
    size = getattr(model, "meta", {}).get("size") if model is not None else None
    return int(size) if isinstance(size, (int, float)) and size > 0 else None


#: the notes :func:`at_input_size` printed in this process (each is printed once, not once per fold or call)
_NOTED: set[str] = set()


def _note_no_training_size(estimator, hw: tuple[int, int]) -> None:
    """Print on stderr, once per weights, that ``input size auto`` computes ``estimator``'s flow at the image size
    ``hw`` (H, W) because its loaded weights (``model.meta``) record no ``size``; only for weights this project's
    trainers wrote (their meta has ``name`` or ``steps``: ``icegan flow train``, ``train-decflow``, the
    self-supervised run), which were trained at one square side. Silent for classical methods, untrained networks
    (no weights, no ``meta``) and downloaded weights (raft_small / raft_large / ptlflow files: meta ``source``
    alone), which were not trained at one square side to give."""
    meta = getattr(getattr(estimator, "model", None), "meta", None)
    if meta is None or not ("name" in meta or "steps" in meta):
        return
    label = meta.get("source") or meta.get("name")
    note = (f"note: input size auto: the flow weights{f' {label!r}' if label else ''} record no training crop size "
            f"(meta 'size'), so the flow is computed at the image size {hw[0]}x{hw[1]}; give the side they were "
            f"trained at (--input-size N, flow.input_size=N) to compute it there")
    if note not in _NOTED:
        _NOTED.add(note)
        print(note, file=sys.stderr, flush=True)


class ResizedEstimator:
    """An estimator that runs ``base`` at a fixed working size and returns the flow at the input size.

    ``estimate(img1, img2)``: images (B, C, H, W) in [0, 1] are resized to ``size`` (bilinear, anti-aliased when
    shrinking), ``base.estimate`` computes the flow there, and :func:`resize_flow` brings it back to (H, W) in
    pixels of the input. Inputs already at ``size`` pass through untouched. ``forward`` does the same with
    gradients (for ``base`` estimators that have ``forward``), and ``decompose`` for decomposers (every part).

    Args:
        base: an estimator (``estimate``; optionally ``forward``, ``decompose``, ``model``).
        size: working side in pixels (int, square) or (H, W).

    Raises:
        ValueError: a working size below 8 pixels.
    """

    def __init__(self, base, size: int | tuple[int, int]):
        hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if min(hw) < 8:
            raise ValueError(f"working size must be at least 8 pixels, got {size}")
        self.base, self.size = base, hw
        self.name = f"{getattr(base, 'name', type(base).__name__)}@{hw[0]}x{hw[1]}"

    def __getattr__(self, attr: str):
        # model, device, precision, iters, ...: the base estimator's (only called for names not found here)
        if attr == "base":
            raise AttributeError(attr)
        return getattr(self.base, attr)

    def __setattr__(self, attr: str, value) -> None:
        if attr in ("base", "size", "name"):
            object.__setattr__(self, attr, value)
        else:                                   # e.g. ``device`` moved by an executor: the base's
            setattr(self.base, attr, value)

    def _in(self, img: torch.Tensor) -> torch.Tensor:
        if tuple(img.shape[-2:]) == self.size:
            return img
        shrink = img.shape[-2] > self.size[0] or img.shape[-1] > self.size[1]
        return F.interpolate(img, size=self.size, mode="bilinear", align_corners=False, antialias=shrink)

    @torch.no_grad()
    def estimate(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Flow (B, 2, H, W) in pixels of the input images (B, C, H, W)."""
        return resize_flow(self.base.estimate(self._in(img1), self._in(img2)), img1.shape[-2:])

    __call__ = estimate

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """As :meth:`estimate`, with gradients through ``base.forward`` and both resamplings."""
        return resize_flow(self.base.forward(self._in(img1), self._in(img2)), img1.shape[-2:])

    @torch.no_grad()
    def decompose(self, img1: torch.Tensor, img2: torch.Tensor) -> dict:
        """``base.decompose`` at the working size, every flow part brought back to the input size."""
        parts = self.base.decompose(self._in(img1), self._in(img2))
        return {k: resize_flow(v, img1.shape[-2:]) if torch.is_tensor(v) and v.dim() == 4 and v.shape[1] == 2 else v
                for k, v in parts.items()}


def at_input_size(estimator, input_size, image_size):
    """``estimator`` made to compute its flow at ``input_size``, for images of ``image_size``.

    Args:
        estimator: any estimator (``estimate``).
        input_size: ``"auto"`` (the crop size the weights were trained at, :func:`training_size`, square; the
            image size for classical methods and weights that do not record one, the latter with a note on stderr,
            once per weights, for this project's checkpoints: :func:`_note_no_training_size`), ``"native"`` (the
            image size),
            or an int side in pixels (square).
        image_size: the images' side (int) or (H, W).

    Returns:
        ``estimator`` itself when the working size is the image size, else a :class:`ResizedEstimator`.

    Raises:
        ValueError: ``input_size`` is none of the above, or an int below 8.
    """
    hw = (int(image_size), int(image_size)) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
    if input_size == "native":
        return estimator
    if input_size == "auto":
        size = training_size(estimator)
        if size is None:
            _note_no_training_size(estimator, hw)
            return estimator
    elif isinstance(input_size, int) and not isinstance(input_size, bool):
        size = input_size
    else:
        raise ValueError(f"input size must be 'auto', 'native' or a side in pixels, got {input_size!r}")
    if (size, size) == hw:
        return estimator
    return ResizedEstimator(estimator, size)
