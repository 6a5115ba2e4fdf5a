"""Estimator registry: one interface for SRFlowNet and the classical baselines.

``get_estimator(name, weights=None, device="cpu", **kwargs)`` returns an object with
``estimate(img1, img2) -> (B, 2, H, W)`` (pixels; images (B, 1 or 3, H, W) float in [0, 1]).
For ``"srflownet"`` the object also exposes ``.model`` (the differentiable :class:`SRFlowNet`) and
``.forward(img1, img2)`` (the final flow with gradients, for back-propagating a downstream loss).

Weights files are dicts ``{"format": "srflownet-v1", "config": {...}, "state_dict": {...}, "meta": {...}}``
loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .models.srflownet import SRFlowNet, SRFlowNetConfig

__all__ = ["ESTIMATORS", "WEIGHTS_FORMAT", "default_weights_path", "load_srflownet", "save_srflownet",
           "SRFlowNetEstimator", "get_estimator"]

WEIGHTS_FORMAT = "srflownet-v1"
ESTIMATORS = ("srflownet", "tvl1", "farneback")


def default_weights_path() -> Path:
    """The shipped weights: ``flownet/weights/srflownet_facial.pt``."""
    return Path(__file__).resolve().parent / "weights" / "srflownet_facial.pt"


def save_srflownet(model: SRFlowNet, path: str | Path, meta: dict | None = None) -> Path:
    """Save ``model`` (config + float32 state dict + ``meta``) in the weights format above."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
          for k, v in model.state_dict().items()}
    torch.save({"format": WEIGHTS_FORMAT, "config": model.config_dict(), "state_dict": sd,
                "meta": dict(meta or {})}, p)
    return p


def load_srflownet(path: str | Path | None = None, device: str | torch.device = "cpu") -> SRFlowNet:
    """Build an :class:`SRFlowNet` from a weights file (``None`` → the shipped weights), in eval mode.

    Raises:
        FileNotFoundError: the file does not exist (message says how to get weights).
        ValueError: the file is not an SRFlowNet weights file, or its tensors do not match the model
            built from its config (names the file and the first mismatching keys).
    """
    p = Path(path) if path is not None else default_weights_path()
    if not p.is_file():
        raise FileNotFoundError(
            f"SRFlowNet weights not found: {p}. Train some with `icegan flow train --config "
            f"configs/flow_srflownet_fdr.yaml` or pass --weights to an existing file.")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling error, truncated file, ...
        raise ValueError(f"{p}: cannot be read as an SRFlowNet weights file ({type(exc).__name__}: {exc})") from None
    if isinstance(ckpt, dict) and "model" in ckpt and "format" not in ckpt:
        ckpt = ckpt["model"]  # a training checkpoint: take its model part
    if not isinstance(ckpt, dict) or ckpt.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{p}: not an SRFlowNet weights file (expected a dict with format='{WEIGHTS_FORMAT}')")
    cfg_d = dict(ckpt.get("config") or {})
    known = SRFlowNetConfig.__dataclass_fields__
    unknown = [k for k in cfg_d if k not in known]
    if unknown:
        raise ValueError(f"{p}: unknown SRFlowNet config keys {unknown}")
    cfg = SRFlowNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_d.items()})
    model = SRFlowNet(cfg)
    sd = ckpt.get("state_dict")
    if not isinstance(sd, dict):
        raise ValueError(f"{p}: no state_dict in the weights file")
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    wrong = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or extra or wrong:
        raise ValueError(f"{p}: weights do not match SRFlowNet({cfg_d}): missing {missing[:3]}, "
                         f"unexpected {extra[:3]}, wrong shape {wrong[:3]}")
    model.load_state_dict(sd)
    model.meta = dict(ckpt.get("meta") or {})
    return model.to(device).eval()


class SRFlowNetEstimator:
    """SRFlowNet behind the estimator interface.

    Args:
        model: an :class:`SRFlowNet` (moved to ``device``); or None to load ``weights``.
        weights: weights file (None → shipped weights) used when ``model`` is None.
        device: "cpu", "cuda", ... (never assumed).
        iters: recurrent updates at inference (None → the model config's default).
    """
    name = "srflownet"

    def __init__(self, model: SRFlowNet | None = None, weights=None, device="cpu", iters: int | None = None):
        self.device = torch.device(device)
        self.model = (model if model is not None else load_srflownet(weights, device=self.device)).to(self.device)
        self.iters = iters

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Final flow (B, 2, H, W), pixels, with gradients (train/eval mode as the model is set)."""
        return self.model(img1.to(self.device), img2.to(self.device), iters=self.iters)[-1]

    @torch.no_grad()
    def estimate(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Flow (B, 2, H, W) in pixels, no gradients, model in eval mode; images (B, 1|3, H, W) in [0, 1]."""
        was = self.model.training
        self.model.eval()
        try:
            return self.forward(img1, img2)
        finally:
            self.model.train(was)

    __call__ = estimate


def get_estimator(name: str, weights=None, device="cpu", **kwargs):
    """Return an estimator by name: ``"srflownet"`` | ``"tvl1"`` | ``"farneback"``.

    ``weights`` applies to srflownet only (None → shipped weights); ``kwargs`` go to the estimator
    (``iters`` for srflownet; OpenCV parameters for the classical ones).

    Raises:
        ValueError: unknown name, or weights given for a classical method.
    """
    from .classical import FarnebackEstimator, TVL1Estimator
    key = str(name).lower().replace("-", "").replace("_", "")
    if key == "srflownet":
        return SRFlowNetEstimator(weights=weights, device=device, **kwargs)
    if weights is not None:
        raise ValueError(f"estimator '{name}' takes no weights (got {weights})")
    if key == "tvl1":
        return TVL1Estimator(device=device, **kwargs)
    if key == "farneback":
        return FarnebackEstimator(device=device, **kwargs)
    raise ValueError(f"unknown flow estimator '{name}'; choose one of {list(ESTIMATORS)}")
