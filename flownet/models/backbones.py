"""Third-party flow backbones behind the SRFlowNet input contract: torchvision RAFT and any ptlflow model.

Every backbone here is an ``nn.Module`` whose ``forward(img1, img2, iters=None)`` takes images
(B, 1|3, H, W) in **[0, 1]** (grey is repeated to RGB) of any H, W >= 1 and returns a **list** of
flow predictions (B, 2, H, W) in pixels of the input grid (last = final), like
:class:`flownet.models.srflownet.SRFlowNet`, so our sequence loss and regularizers
(:mod:`flownet.losses`, :mod:`flownet.regularizers`) and our training loop (:mod:`flownet.train`)
apply unchanged.

* :class:`RAFTBackbone`: ``torchvision.models.optical_flow.raft_small`` / ``raft_large`` built with
  ``weights=None`` (nothing downloads); images are mapped to [-1, 1] RGB and replicate-padded to a
  multiple of 8 and at least 128 px (RAFT's 4-level correlation pyramid needs a 1/8 map of >= 16),
  the flow is cropped back. Pretrained weights come only from a local file
  (:meth:`RAFTBackbone.load_torchvision_state_dict`, e.g. torchvision's ``raft_small_C_T_V2-01064c6d.pth``
  downloaded by the user).
* :class:`PtlflowBackbone`: wraps a ptlflow model (``ptlflow.get_model(name)``, optional extra
  ``pip install icegan[ptlflow]``). ptlflow models take ``{"images": (B, 2, 3, H, W)}`` in [0, 1] and
  return ``{"flows": (B, 1, 2, H, W), "flow_preds": [...] (training)}``; the adapter builds that input
  (padding to the model's ``output_stride``), and returns the predictions in our list format.
  :func:`ptlflow_model` creates the wrapped model without pretrained weights; weights are loaded from
  a local checkpoint by :mod:`flownet.registry`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .inputs import rgb01_batch, update_count
from ..user_numbers import check_non_negative
from .state_dict import load_state_dict_strict

__all__ = ["RAFTConfig", "RAFTBackbone", "PtlflowConfig", "PtlflowBackbone", "ptlflow_model",
           "PTLFLOW_MISSING"]

PTLFLOW_MISSING = ("the ptlflow backbones need the optional ptlflow package: pip install 'icegan[ptlflow]' "
                   "(or pip install ptlflow)")


def _pad_pair(x1, x2, multiple: int, minimum: int = 1):
    h, w = x1.shape[-2:]
    ph = max(minimum, math.ceil(h / multiple) * multiple) - h
    pw = max(minimum, math.ceil(w / multiple) * multiple) - w
    if ph or pw:
        x1 = F.pad(x1, (0, pw, 0, ph), mode="replicate")
        x2 = F.pad(x2, (0, pw, 0, ph), mode="replicate")
    return x1, x2, h, w


@dataclass
class RAFTConfig:
    """torchvision RAFT variant and inference iterations (stored in weights files).

    Attributes:
        variant: ``raft_small`` (≈ 0.99 M parameters) or ``raft_large`` (≈ 5.26 M).
        iters: recurrent updates at inference (torchvision's default 12).
    """
    variant: str = "raft_small"
    iters: int = 12

    def __post_init__(self):
        if self.variant not in ("raft_small", "raft_large"):
            raise ValueError(f"RAFT variant must be 'raft_small' or 'raft_large', got {self.variant!r}")
        check_non_negative(self, "raft", ("iters",))


class RAFTBackbone(nn.Module):
    """torchvision RAFT (``raft_small`` / ``raft_large``, random initialisation) with our input contract.

    ``forward(img1, img2, iters=None) -> list[(B, 2, H, W)]`` (pixels; one per update, last = final).
    The inner torchvision model is ``self.raft`` (its state-dict keys are torchvision's). The random
    initialisation differs from torchvision's in one place: the flow head's last convolution starts near
    zero (std 1e-3, zero bias), so an untrained model predicts almost no motion.

    Raises:
        ValueError: mismatched image shapes or channel counts.
    """

    min_size = 128  # 4-level correlation pyramid: the 1/8 feature map must be >= 2 * 2**3

    def __init__(self, config: RAFTConfig | None = None):
        super().__init__()
        from torchvision.models.optical_flow import raft_large, raft_small
        self.config = config or RAFTConfig()
        build = raft_small if self.config.variant == "raft_small" else raft_large
        self.raft = build(weights=None, progress=False)
        # random init only (loaded weights replace it): start from near-zero flow updates, as SRFlowNet
        # does; facial motions are small and a random first flow of several pixels must be unlearned
        head = self.raft.update_block.flow_head.conv2
        nn.init.normal_(head.weight, std=1e-3)
        nn.init.zeros_(head.bias)

    def forward(self, img1: torch.Tensor, img2: torch.Tensor, iters: int | None = None) -> list[torch.Tensor]:
        """Flow predictions of torchvision RAFT, one per recurrent update (in training and in eval mode).

        Args:
            img1, img2: (B, 1 or 3, H, W) images in [0, 1] of equal shape, any H, W >= 1 (mapped to [-1, 1] RGB,
                replicate-padded to a multiple of 8 and at least 128 px; module docstring).
            iters: recurrent updates (None or 0 → ``config.iters``).

        Returns:
            List of flows (B, 2, H, W) in pixels of the input grid, one per update, last = final.

        Raises:
            ValueError: the shapes differ, the images are not (B, 1 or 3, H, W), or ``iters`` < 0.
        """
        if img1.shape != img2.shape:
            raise ValueError(f"image pair shapes differ: {tuple(img1.shape)} vs {tuple(img2.shape)}")
        x1, x2 = rgb01_batch(img1) * 2.0 - 1.0, rgb01_batch(img2) * 2.0 - 1.0
        n = update_count(iters, self.config.iters)
        x1, x2, h, w = _pad_pair(x1, x2, 8, self.min_size)
        flows = self.raft(x1, x2, num_flow_updates=n)
        return [f[..., :h, :w] for f in flows]

    def load_torchvision_state_dict(self, state_dict: dict, source: str = "state dict") -> None:
        """Load a torchvision RAFT state dict (keys as in ``raft_small().state_dict()``) into ``self.raft``.

        Raises:
            ValueError: missing / unexpected keys or wrong shapes (names ``source`` and the first keys).
        """
        load_state_dict_strict(self.raft, state_dict, f"{source} (torchvision {self.config.variant})")

    def config_dict(self) -> dict:
        """``{"variant", "iters"}`` of ``self.config``: the ``"config"`` of a weights file
        (:func:`flownet.registry.save_weights`)."""
        return asdict(self.config)


@dataclass
class PtlflowConfig:
    """A ptlflow model by name (stored in weights files).

    Attributes:
        name: ptlflow model name (``skflow``, ``memflow``, ``dpflow``, ``rpknet``, ``raft_small``, ...).
        multiple: pad inputs to a multiple of this (0 → the model's ``output_stride``, else 8).
        bgr: flip RGB to BGR before the model (ptlflow's IOAdapter feeds OpenCV BGR images; irrelevant
            for grey faces).
    """
    name: str = "raft_small"
    multiple: int = 0
    bgr: bool = True

    def __post_init__(self):
        check_non_negative(self, "ptlflow", ("multiple",))


class PtlflowBackbone(nn.Module):
    """Adapter from our contract to a ptlflow-style model.

    Args:
        model: an ``nn.Module`` taking ``{"images": (B, 2, 3, H, W)}`` in [0, 1] and returning a dict with
            ``"flows"`` (B, N, 2, H, W) (N >= 1; the first is used) and, in training, optionally
            ``"flow_preds"`` (list of (B, 2, H, W)): a ptlflow model, or any stand-in with that interface.
        config: :class:`PtlflowConfig` (``name`` is recorded in weights files).

    ``forward(img1, img2, iters=None) -> list[(B, 2, H, W)]`` in pixels: ``flow_preds`` when the model is
    training and provides them, else ``[flows[:, 0]]``. ``iters`` is accepted for interface
    compatibility and ignored (set iterations through the ptlflow model's own arguments).

    Raises:
        ValueError: mismatched images, or a model output without ``flows`` of shape (B, N, 2, H', W').
    """

    def __init__(self, model: nn.Module, config: PtlflowConfig | None = None):
        super().__init__()
        self.model = model
        self.config = config or PtlflowConfig()

    @property
    def multiple(self) -> int:
        """Inputs are padded to a multiple of this: ``config.multiple``, else the model's ``output_stride``, else 8."""
        return int(self.config.multiple or getattr(self.model, "output_stride", 8) or 8)

    def forward(self, img1: torch.Tensor, img2: torch.Tensor, iters: int | None = None) -> list[torch.Tensor]:
        """Flow predictions of the wrapped model in our list format (class docstring).

        Args:
            img1, img2: (B, 1 or 3, H, W) images in [0, 1] of equal shape (grey repeated to RGB, flipped to BGR when
                ``config.bgr``, replicate-padded to a multiple of :attr:`multiple`).
            iters: ignored.

        Returns:
            The model's ``flow_preds`` when it is training and returns them, else ``[flows[:, 0]]``: flows
            (B, 2, H, W) in pixels, cropped to the input size.

        Raises:
            ValueError: the shapes differ or are not (B, 1 or 3, H, W); the output has no ``flows``, ``flows`` is not
                (B, N, 2, H', W'), or a prediction is not of the padded size.
        """
        if img1.shape != img2.shape:
            raise ValueError(f"image pair shapes differ: {tuple(img1.shape)} vs {tuple(img2.shape)}")
        x1, x2, h, w = _pad_pair(rgb01_batch(img1), rgb01_batch(img2), self.multiple)
        if self.config.bgr:
            x1, x2 = x1.flip(1), x2.flip(1)
        out = self.model({"images": torch.stack([x1, x2], 1)})
        name = self.config.name
        if not isinstance(out, dict) or "flows" not in out:
            raise ValueError(f"ptlflow model '{name}' returned no 'flows' (got {type(out).__name__})")
        flows = out["flows"]
        if flows.dim() != 5 or flows.shape[2] != 2 or flows.shape[0] != x1.shape[0]:
            raise ValueError(f"ptlflow model '{name}': 'flows' must be (B, N, 2, H, W), got {tuple(flows.shape)}")
        preds = out.get("flow_preds") if self.training else None
        preds = list(preds) if preds else [flows[:, 0]]
        for p in preds:
            if p.shape[-2:] != x1.shape[-2:]:
                raise ValueError(f"ptlflow model '{name}' returned flow of size {tuple(p.shape[-2:])} "
                                 f"for input {tuple(x1.shape[-2:])}")
        return [p[..., :h, :w] for p in preds]

    def config_dict(self) -> dict:
        """``{"name", "multiple", "bgr"}`` of ``self.config``: the ``"config"`` of a weights file
        (:func:`flownet.registry.save_weights`)."""
        return asdict(self.config)


def ptlflow_model(name: str, **kwargs) -> PtlflowBackbone:
    """``PtlflowBackbone(ptlflow.get_model(name))`` without pretrained weights (nothing downloads).

    Raises:
        ImportError: ptlflow is not installed (says ``pip install 'icegan[ptlflow]'``).
        ValueError: ``name`` is not a ptlflow model (lists what ptlflow offers).
    """
    try:
        import ptlflow
    except ImportError as exc:
        raise ImportError(PTLFLOW_MISSING) from exc
    names = list(ptlflow.get_model_names()) if hasattr(ptlflow, "get_model_names") else []
    if names and name not in names:
        raise ValueError(f"unknown ptlflow model '{name}'; ptlflow offers {names}")
    model = ptlflow.get_model(name)
    return PtlflowBackbone(model, PtlflowConfig(name=name, **kwargs))
