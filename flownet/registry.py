"""Estimator registry: one interface for SRFlowNet, the other learned backbones and the classical baselines.

``get_estimator(name, weights=None, device="cpu", **kwargs)`` returns an object with
``estimate(img1, img2) -> (B, 2, H, W)`` (pixels; images (B, 1 or 3, H, W) float in [0, 1]).
For ``"srflownet"`` the object also exposes ``.model`` (the differentiable :class:`SRFlowNet`) and
``.forward(img1, img2)`` (the final flow with gradients, for back-propagating a downstream loss).

Weights files are dicts ``{"format": "srflownet-v1", "config": {...}, "state_dict": {...}, "meta": {...}}``
loaded with ``torch.load(weights_only=True)``.

Other learned backbones (``"liteflownet2"``, ``"raft_small"``, ``"raft_large"``, ``"ptlflow:<name>"``,
see :mod:`flownet.models.liteflownet2` and :mod:`flownet.models.backbones`) use the general format
``{"format": "flownet-backbone-v1", "backbone": <name>, "config": {...}, "state_dict": {...}, "meta": {...}}``
(:func:`save_weights` / :func:`load_weights`; :func:`load_weights` also reads ``srflownet-v1`` files, a
plain torchvision RAFT state dict for ``raft_*``, and a ptlflow / Lightning checkpoint with a
``state_dict`` for ``ptlflow:<name>``). Their estimators (:class:`BackboneEstimator`) expose the same
``estimate`` / ``forward`` / ``model`` as SRFlowNet's. There are no shipped weights for them: pass
``weights=<local file>`` (nothing is downloaded), or ``random_init=True`` for an untrained model.

Your own flow network: ``get_estimator("custom", module="package.module:factory" | "path/to/file.py:factory",
weights=None | <state-dict file>)`` (:class:`CustomFlowEstimator`): the factory returns a ``torch.nn.Module`` whose
``forward(img1, img2)`` gives the flow (B, 2, H, W) in pixels (or a list of refinements, the last one final).
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .models.state_dict import (format_uses, load_model_file, load_state_dict_file, load_state_dict_strict,
                                 missing_weights, read_torch_file, save_torch_file, training_checkpoint_fix,
                                 training_checkpoint_keys)

if TYPE_CHECKING:   # imported where it is built: it pulls in torchvision's RAFT and torch._dynamo (seconds), which a
    from .models.srflownet import SRFlowNet       # TV-L1 or Farneback run never uses

__all__ = ["ESTIMATORS", "BACKBONES", "WEIGHTS_FORMAT", "BACKBONE_FORMAT", "SHIPPED_WEIGHTS", "SHIPPED_CHECKPOINTS", "default_weights_path",
           "resolve_weights",
           "load_srflownet",
           "save_srflownet", "SRFlowNetEstimator", "get_estimator", "canonical_name", "build_backbone",
           "backbone_name", "save_weights", "load_weights", "final_flow", "BackboneEstimator", "PRECISIONS",
           "native_bf16", "resolve_precision", "TTA_MODES", "resolve_tta", "mirror_average", "CustomFlowEstimator",
           "NonFiniteFlowError", "check_finite_flow", "non_finite_flow_masks", "trained_on_grey",
           "refuse_classical_precision"]

WEIGHTS_FORMAT = "srflownet-v1"
BACKBONE_FORMAT = "flownet-backbone-v1"
BACKBONES = ("srflownet", "liteflownet2", "raft_small", "raft_large")   #: plus "ptlflow:<name>"
ESTIMATORS = ("srflownet", "liteflownet2", "raft_small", "raft_large", "ptlflow:<name>", "tvl1", "farneback",
              "custom")


#: inference precisions of the learned estimators (``precision=`` of :func:`get_estimator`)
PRECISIONS = ("fp32", "bf16", "auto")


def native_bf16(device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions and matrix products natively: a CUDA GPU that supports
    bf16, or a CPU with AVX512-BF16 or AMX tiles (where oneDNN has bf16 kernels). Elsewhere bf16 is
    emulated and slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        # including_emulation=False: a pre-Ampere GPU (T4, V100) makes bf16 tensors, so the bare call says True, but
        # it has no bf16 tensor cores and cuDNN no bf16 convolutions there
        if not torch.cuda.is_available():
            return False
        if device.index is not None and device.index != torch.cuda.current_device():
            with torch.cuda.device(device.index):   # is_bf16_supported asks about the current GPU, not this one
                return torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = [getattr(cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(bool(c()) for c in checks if c is not None)
    return False


def resolve_precision(precision: str, device, warn: bool = True) -> str:
    """``"fp32"`` | ``"bf16"`` | ``"auto"`` → ``"fp32"`` or ``"bf16"`` (``auto``: bf16 where
    :func:`native_bf16` says the device has native bf16 kernels, else fp32).

    Warns (RuntimeWarning) when ``bf16`` is asked for on a device without native bf16 kernels (``warn=False``: only
    validate, for callers that run in float32 whatever the precision says).

    Raises:
        ValueError: an unknown precision (names the choices).
    """
    p = str(precision).lower()
    if p not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got '{precision}'")
    if p == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if warn and p == "bf16" and not native_bf16(device):
        warnings.warn(f"precision='bf16' on {torch.device(device)}, which has no native bfloat16 kernels: bf16 is "
                      f"emulated there and far slower than float32 (shipped SRFlowNet on an AVX2-only AMD EPYC, one "
                      f"thread, 128x128 faces: 0.36 vs 18.2 pairs/s, docs/benchmarks.md 'Seventh pass'); use "
                      f"precision='auto' or 'fp32'", RuntimeWarning, stacklevel=2)
    return p


class _LearnedEstimator:
    """Shared ``estimate`` of the learned estimators: eval mode, no gradients, optional bf16 autocast,
    optional ``torch.compile``.

    ``precision="bf16"`` runs the network's convolutions and matrix products under
    ``torch.autocast(dtype=torch.bfloat16)`` (shipped SRFlowNet, one thread, 128x128 facial pairs: 1.35x
    faster on an AMD EPYC with AVX512-BF16, 1.17x on an Intel Xeon with AMX, 1.74x there at 256x256; mean EPE
    within 0.005 px of float32 on faces and Middlebury; docs/benchmarks.md, "Fifth pass"); the returned flow
    is always float32. ``forward`` (with gradients, for back-propagating a loss) always runs in float32 and eager.

    ``compile=True`` makes :meth:`estimate` run the network through ``torch.compile`` (inductor; on a CPU it needs
    a C++ compiler). The first call of each input shape compiles (about a minute on a CPU) and every later call of
    that shape is faster: worth it only for jobs of thousands of same-sized pairs (docs/benchmarks.md,
    "torch.compile"). Results equal the eager ones up to float rounding.
    """
    device: torch.device
    model: torch.nn.Module
    precision: str = "fp32"
    compile: bool = False
    tta: str = "none"
    _compiled: torch.nn.Module | None = None

    def _run(self, net, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Final flow (B, 2, H, W), pixels, with gradients (train/eval mode as the model is set); float32, eager."""
        return self._run(self.model, img1.to(self.device), img2.to(self.device))

    def _inference_net(self) -> torch.nn.Module:
        if not self.compile:
            return self.model
        if self._compiled is None:
            self._compiled = torch.compile(self.model, dynamic=False)
        return self._compiled

    @torch.no_grad()
    def estimate(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Flow (B, 2, H, W) float32 in pixels, no gradients, model in eval mode; images (B, 1|3, H, W) in [0, 1]."""
        was = self.model.training
        self.model.eval()
        ctx = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16"
               else contextlib.nullcontext())
        try:
            img1, img2 = img1.to(self.device), img2.to(self.device)
            if self.tta == "hflip":
                b = img1.shape[0]
                with ctx:
                    both = self._run(self._inference_net(), torch.cat([img1, img1.flip(-1)]),
                                     torch.cat([img2, img2.flip(-1)])).float()
                return mirror_average(both[:b], both[b:])
            with ctx:
                flow = self._run(self._inference_net(), img1, img2)
            return flow.float()
        finally:
            self.model.train(was)

    __call__ = estimate


TTA_MODES = ("none", "hflip")


def resolve_tta(tta: str) -> str:
    """Validate a test-time augmentation name: ``"none"`` or ``"hflip"`` (see :class:`_LearnedEstimator`).

    Raises:
        ValueError: another value (lists the allowed ones).
    """
    if tta not in TTA_MODES:
        raise ValueError(f"test-time augmentation must be one of {list(TTA_MODES)}, got {tta!r}")
    return tta


def mirror_average(flow: torch.Tensor, flow_of_mirrored: torch.Tensor) -> torch.Tensor:
    """Mean of a flow (B, 2, H, W) and the flow computed on the horizontally mirrored pair, mirrored back:
    ``x`` is flipped and ``u`` changes sign, ``v`` keeps its sign. Pixels in, pixels out."""
    back = flow_of_mirrored.flip(-1)
    back = torch.cat([-back[:, :1], back[:, 1:]], dim=1)
    return 0.5 * (flow + back)


#: weight files shipped in ``flownet/weights/`` per backbone, by checkpoint name; ``facial`` is the default
#: (used when no weights are given), the others are asked for as ``weights="shipped:<name>"``
SHIPPED_CHECKPOINTS = {"srflownet": {"facial": "srflownet_facial.pt",
                                     # non-face video (flownet.data.synthetic_generic scenes; docs/benchmarks.md, eighth and ninth passes)
                                     "generic": "srflownet_generic.pt"},
                       "liteflownet2": {"facial": "liteflownet2_facial.pt"}}
#: the default shipped weight file per backbone
SHIPPED_WEIGHTS = {k: v["facial"] for k, v in SHIPPED_CHECKPOINTS.items()}


def resolve_weights(weights: str | Path | None, backbone: str = "srflownet") -> Path:
    """The file a ``weights`` argument names: None → the default shipped file of ``backbone``;
    ``"shipped:<name>"`` → the shipped checkpoint ``<name>`` of ``backbone`` (:data:`SHIPPED_CHECKPOINTS`,
    e.g. ``shipped:facial``); anything else is a path, returned as is (existence is checked by the loader).

    Raises:
        ValueError: ``shipped:<name>`` with a name ``backbone`` does not ship (lists the names it has), or a
            backbone without shipped weights.
    """
    if weights is None:
        return default_weights_path(backbone)
    w = str(weights)
    if not w.startswith("shipped:"):
        return Path(weights)
    n = canonical_name(backbone)                      # an unknown backbone fails here, unprefixed
    try:
        return _shipped_file(n, w.split(":", 1)[1])
    except ValueError as exc:
        raise ValueError(f"{w}: {exc}") from None


def _shipped_file(backbone: str, name: str = "facial") -> Path:
    """``flownet/weights/<file>`` of the shipped checkpoint ``name`` of ``backbone`` (:data:`SHIPPED_CHECKPOINTS`).

    Raises:
        ValueError: ``backbone`` ships no weights, or not a checkpoint called ``name`` (lists the names it has).
    """
    n = canonical_name(backbone)
    ckpts = SHIPPED_CHECKPOINTS.get(n)
    if not ckpts:
        raise ValueError(f"flow estimator '{n}' has no shipped weights (shipped: {sorted(SHIPPED_CHECKPOINTS)})")
    if name not in ckpts:
        raise ValueError(f"'{n}' ships the checkpoints {', '.join('shipped:' + k for k in ckpts)}, not '{name}'")
    return Path(__file__).resolve().parent / "weights" / ckpts[name]


def default_weights_path(backbone: str = "srflownet") -> Path:
    """The shipped weights of ``backbone``: ``flownet/weights/srflownet_facial.pt`` (SRFlowNet-TVR) or
    ``flownet/weights/liteflownet2_facial.pt`` (LiteFlowNet2-FDR, float16; docs/benchmarks.md, flow table).

    Raises:
        ValueError: ``backbone`` has no shipped weights (raft_small, raft_large, ptlflow models).
    """
    return _shipped_file(backbone)


def save_srflownet(model: SRFlowNet, path: str | Path, meta: dict | None = None) -> Path:
    """Save ``model`` (config + float32 state dict + ``meta``) in the weights format above."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
          for k, v in model.state_dict().items()}
    save_torch_file({"format": WEIGHTS_FORMAT, "config": model.config_dict(), "state_dict": sd,
                     "meta": dict(meta or {})}, p)
    return p


def load_srflownet(path: str | Path | None = None, device: str | torch.device = "cpu") -> SRFlowNet:
    """Build an :class:`SRFlowNet` from a weights file (``None`` → the shipped weights; ``"shipped:<name>"`` → a
    named shipped checkpoint, :func:`resolve_weights`), in eval mode.

    Raises:
        FileNotFoundError: the file does not exist (message says how to get weights).
        ValueError: the file is not an SRFlowNet weights file (a training checkpoint, a bare state dict, another
            format: :func:`flownet.models.state_dict.load_model_file`), its tensors do not match the model built
            from its config, or some hold NaN/Inf (names the file and the first mismatching keys).
    """
    from .models.srflownet import SRFlowNet, SRFlowNetConfig
    p = resolve_weights(path, "srflownet")
    model = load_model_file(p, WEIGHTS_FORMAT, "SRFlowNet", SRFlowNet, SRFlowNetConfig,
                            "Train some with `icegan flow train --config configs/flow_srflownet_fdr.yaml "
                            "train.init_weights=null` (from scratch; `icegan configs` shows where an installed icegan "
                            "keeps the config) or give an existing file (--weights of the flow commands; flow.weights "
                            "in a main-job config).")
    return model.to(device)


class SRFlowNetEstimator(_LearnedEstimator):
    """SRFlowNet behind the estimator interface.

    Args:
        model: an :class:`SRFlowNet` (moved to ``device``); or None to load ``weights``.
        weights: weights file (None → shipped weights) used when ``model`` is None.
        device: "cpu", "cuda", ... (never assumed).
        iters: recurrent updates at inference (None → the model config's default).
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"auto"`` for :meth:`estimate` (see
            :func:`resolve_precision`; ValueError for another value).
        compile: run :meth:`estimate` through ``torch.compile`` (see :class:`_LearnedEstimator`).
        tta: ``"none"`` or ``"hflip"`` (mirrored-pair average in :meth:`estimate`, see :class:`_LearnedEstimator`).
    """
    name = "srflownet"

    def __init__(self, model: SRFlowNet | None = None, weights=None, device="cpu", iters: int | None = None,
                 precision: str = "fp32", compile: bool = False, tta: str = "none"):
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.tta = resolve_tta(tta)
        self.model = (model if model is not None else load_srflownet(weights, device=self.device)).to(self.device)
        self.iters = iters
        self.compile = bool(compile)

    def _run(self, net, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        return net(img1, img2, iters=self.iters)[-1]


def canonical_name(name: str) -> str:
    """Normalise an estimator name: ``SRFlowNet``/``sr-flownet`` → ``srflownet``, ``raft-small`` →
    ``raft_small``, ``LiteFlowNet2`` → ``liteflownet2``, ``TV-L1`` → ``tvl1``, ``ptlflow:<name>`` keeps
    the ptlflow model name as written.

    Raises:
        ValueError: unknown name (lists the known ones).
    """
    n = str(name).strip()
    if n.lower().startswith("ptlflow:"):
        sub = n.split(":", 1)[1].strip()
        if not sub:
            raise ValueError(f"'{name}': give the ptlflow model after the colon, e.g. ptlflow:skflow")
        return f"ptlflow:{sub}"
    key = n.lower().replace("-", "").replace("_", "")
    table = {"srflownet": "srflownet", "liteflownet2": "liteflownet2", "lfn2": "liteflownet2",
             "raftsmall": "raft_small", "raftlarge": "raft_large", "tvl1": "tvl1", "farneback": "farneback",
             "custom": "custom"}
    if key not in table:
        raise ValueError(f"unknown flow estimator '{name}'; choose one of {list(ESTIMATORS)}")
    return table[key]


def refuse_classical_precision(name: str, precision: str) -> None:
    """Refuse a ``precision`` other than ``"fp32"`` (``--precision bf16`` or ``auto``) for the classical method
    ``name`` (tvl1, farneback), whose OpenCV runs in float32 whatever it says, as ``--compile`` and ``--tta`` are
    refused for it (``icegan flow eval`` and ``flow run``; :func:`get_estimator` itself takes it for every method, as
    ``flow.precision`` of the main job, which the classical methods ignore).

    Raises:
        ValueError: such a precision with a classical method (names the value, the flag and the method); an
            unknown ``name`` (:func:`canonical_name`).
    """
    if precision != "fp32" and canonical_name(name) in ("tvl1", "farneback"):
        raise ValueError(f"precision={precision!r} (--precision) applies to the learned models, not '{name}' "
                         f"(OpenCV runs in float32): leave it out")


def _config_from(cls, cfg, source: str):
    """A config dataclass from None / an instance / a dict (lists → tuples), with a clear error."""
    if cfg is None:
        return cls()
    if isinstance(cfg, cls):
        return cfg
    if not isinstance(cfg, dict):
        raise ValueError(f"{source}: config must be a mapping, got {type(cfg).__name__}")
    unknown = [k for k in cfg if k not in cls.__dataclass_fields__]
    if unknown:
        raise ValueError(f"{source}: unknown {cls.__name__} keys {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})


def build_backbone(name: str, config=None) -> torch.nn.Module:
    """An untrained learned backbone by name (``srflownet``, ``liteflownet2``, ``raft_small``,
    ``raft_large``, ``ptlflow:<name>``) with ``config`` (dataclass, dict, or None for defaults).

    Raises:
        ValueError: unknown / non-learned name or bad config keys.
        ImportError: ``ptlflow:<name>`` without ptlflow installed.
    """
    from .models.backbones import RAFTBackbone, RAFTConfig, ptlflow_model
    from .models.liteflownet2 import LiteFlowNet2, LiteFlowNet2Config
    n = canonical_name(name)
    if n == "srflownet":
        from .models.srflownet import SRFlowNet, SRFlowNetConfig
        return SRFlowNet(_config_from(SRFlowNetConfig, config, n))
    if n == "liteflownet2":
        return LiteFlowNet2(_config_from(LiteFlowNet2Config, config, n))
    if n in ("raft_small", "raft_large"):
        if config is None or (isinstance(config, dict) and "variant" not in config):
            config = {**(config or {}), "variant": n}
        cfg = _config_from(RAFTConfig, config, n)
        if cfg.variant != n:
            raise ValueError(f"{n}: config variant is '{cfg.variant}', not '{n}': name the backbone '{cfg.variant}', "
                             f"or drop 'variant' from the config")
        return RAFTBackbone(cfg)
    if n.startswith("ptlflow:"):
        kw = dict(config or {}) if not hasattr(config, "__dataclass_fields__") else dict(vars(config))
        sub = kw.pop("name", n.split(":", 1)[1])
        if sub != n.split(":", 1)[1]:
            raise ValueError(f"{n}: config names ptlflow model '{sub}', not '{n.split(':', 1)[1]}': name the "
                             f"backbone 'ptlflow:{sub}', or drop 'name' from the config")
        return ptlflow_model(sub, **kw)
    raise ValueError(f"'{name}' is not a learned backbone; choose one of {list(BACKBONES)} or ptlflow:<name>")


def backbone_name(model: torch.nn.Module) -> str:
    """Registry name of a backbone instance (``srflownet``, ``liteflownet2``, ``raft_small``, ...).

    Raises:
        ValueError: not one of the registry's backbones.
    """
    from .models.backbones import PtlflowBackbone, RAFTBackbone
    from .models.liteflownet2 import LiteFlowNet2
    from .models.srflownet import SRFlowNet
    if isinstance(model, SRFlowNet):
        return "srflownet"
    if isinstance(model, LiteFlowNet2):
        return "liteflownet2"
    if isinstance(model, RAFTBackbone):
        return model.config.variant
    if isinstance(model, PtlflowBackbone):
        return f"ptlflow:{model.config.name}"
    raise ValueError(f"{type(model).__name__} is not a registry backbone")


def save_weights(model: torch.nn.Module, path: str | Path, meta: dict | None = None) -> Path:
    """Save any registry backbone: SRFlowNet in ``srflownet-v1`` (:func:`save_srflownet`), the others in
    ``flownet-backbone-v1`` (backbone name, config, float32 state dict, ``meta``)."""
    name = backbone_name(model)
    if name == "srflownet":
        return save_srflownet(model, path, meta)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
          for k, v in model.state_dict().items()}
    save_torch_file({"format": BACKBONE_FORMAT, "backbone": name, "config": model.config_dict(), "state_dict": sd,
                     "meta": dict(meta or {})}, p)
    return p


def load_weights(path: str | Path, expected: str | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Build a backbone from a local weights file (or ``"shipped:<name>"``, :func:`resolve_weights`, with the
    backbone taken from ``expected``), in eval mode (``model.meta`` holds the file's meta; for a torchvision RAFT or
    ptlflow file ``{"source": path, "gray": False}``: their released weights were trained on colour frames).

    Reads ``flownet-backbone-v1`` and ``srflownet-v1`` files; with ``expected="raft_small"|"raft_large"``
    also a plain torchvision RAFT state dict (e.g. a torchvision release file the user downloaded), and
    with ``expected="ptlflow:<name>"`` a ptlflow / Lightning checkpoint (``{"state_dict": ...}``) or a plain
    state dict of that model.

    Raises:
        FileNotFoundError: the file does not exist (names it).
        ValueError: unreadable file, a training run's checkpoint (names the run's weights.pt), unknown format, a
            file of another backbone than ``expected`` (names the ``--model`` that loads it), tensors that do not
            match the model built from its config, or NaN/Inf among them (names the file and keys).
        ImportError: a ptlflow backbone without ptlflow installed.
    """
    exp = canonical_name(expected) if expected is not None else None
    p = resolve_weights(path, exp or "srflownet")
    if not p.is_file():
        raise FileNotFoundError(f"flow weights {missing_weights(p)} (weights load only from a local file; train some "
                                f"with `icegan flow train --config configs/flow_<backbone>.yaml`; `icegan configs` "
                                f"shows where an installed icegan keeps them)")
    ckpt = read_torch_file(p, "flow weights file")
    if not isinstance(ckpt, dict):
        raise ValueError(f"{p}: not a flow weights file (a {type(ckpt).__name__}, expected a dict)")
    keys = training_checkpoint_keys(ckpt)
    if keys:                # a training run's last.pt: its model part is a bare state dict, without its config
        what = f"a {exp} weights file" if exp is not None else "a flow weights file"
        uses = "" if exp is None else ", with " + format_uses(WEIGHTS_FORMAT if exp == "srflownet" else BACKBONE_FORMAT,
                                                              exp)
        raise ValueError(training_checkpoint_fix(p, keys, what) + uses)
    fmt = ckpt.get("format")
    if fmt == WEIGHTS_FORMAT:
        if exp not in (None, "srflownet"):
            raise ValueError(f"{p}: an SRFlowNet weights file, not {exp}: use --model srflownet "
                             f"(flow.method=srflownet)")
        return load_srflownet(p, device=device)
    if fmt == BACKBONE_FORMAT:
        try:        # a backbone name or config that builds no model: the message names the file
            name = canonical_name(ckpt.get("backbone", "?"))
            if exp is not None and name != exp:
                raise ValueError(f"weights of backbone '{name}', not '{exp}': use --model {name} "
                                 f"(flow.method={name})")
            model = build_backbone(name, ckpt.get("config"))
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None
        sd = ckpt.get("state_dict")
        load_state_dict_strict(model, sd, f"{p} ({name})")
        model.meta = dict(ckpt.get("meta") or {})
        return model.to(device).eval()
    if fmt is not None:
        raise ValueError(f"{p}: unknown weights format '{fmt}' (expected '{BACKBONE_FORMAT}' or '{WEIGHTS_FORMAT}')")
    # foreign files: a plain torchvision RAFT state dict, or a ptlflow / Lightning checkpoint
    if exp in ("raft_small", "raft_large"):
        model = build_backbone(exp)
        model.load_torchvision_state_dict(ckpt, str(p))
        model.meta = {"source": str(p), "gray": False}     # released weights: colour data sets
        return model.to(device).eval()
    if exp is not None and exp.startswith("ptlflow:"):
        model = build_backbone(exp)
        sd = ckpt.get("state_dict", ckpt)
        load_state_dict_strict(model.model, sd, f"{p} ({exp})")
        model.meta = {"source": str(p), "gray": False}     # released weights: colour data sets
        return model.to(device).eval()
    raise ValueError(f"{p}: no 'format' key: not a flownet weights file (a plain state dict is accepted only "
                     f"for raft_small / raft_large / ptlflow:<name>)")


def final_flow(model: torch.nn.Module, img1: torch.Tensor, img2: torch.Tensor, iters: int | None = None,
               net=None) -> torch.Tensor:
    """The final flow (B, 2, H, W) in pixels of any registry backbone (with gradients). ``net``: a callable
    standing in for ``model`` (e.g. its ``torch.compile`` wrapper); ``model`` still decides the call convention."""
    from .models.liteflownet2 import LiteFlowNet2
    net = model if net is None else net
    if isinstance(model, LiteFlowNet2):
        return net(img1, img2)
    return net(img1, img2, iters=iters)[-1]


class BackboneEstimator(_LearnedEstimator):
    """A learned backbone (LiteFlowNet2, RAFT, ptlflow, or SRFlowNet) behind the estimator interface.

    Args:
        model: the backbone module (moved to ``device``).
        device: "cpu", "cuda", ...
        iters: recurrent updates for RAFT-family backbones (None → the model's default; ignored by
            LiteFlowNet2).
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"auto"`` for :meth:`estimate` (see
            :func:`resolve_precision`).
        compile: run :meth:`estimate` through ``torch.compile`` (see :class:`_LearnedEstimator`).
    """

    def __init__(self, model: torch.nn.Module, device="cpu", iters: int | None = None, precision: str = "fp32",
                 compile: bool = False, tta: str = "none"):
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.tta = resolve_tta(tta)
        self.model = model.to(self.device)
        self.name = backbone_name(model)
        self.iters = iters
        self.compile = bool(compile)

    def _run(self, net, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        return final_flow(self.model, img1, img2, self.iters, net=net)


class NonFiniteFlowError(ValueError, FloatingPointError):
    """A flow network gave NaN or infinite flow for finite images (:func:`check_finite_flow`).

    A ``ValueError`` (as the other refusals of a network's output) and a ``FloatingPointError`` (as a diverged
    computation: ``train.py`` and ``icegan`` print it as one ``error:`` line).

    Attributes:
        pairs: indices, in the batch the network was given, of the pairs whose flow is not finite (ascending).
        bad_pixels: pixel positions (h, w) whose flow is not finite in some pair of the batch (either channel).
        pixels: H * W of the flow.
    """

    def __init__(self, message: str, pairs=(), bad_pixels: int = 0, pixels: int = 0):
        super().__init__(message)
        self.pairs, self.bad_pixels, self.pixels = tuple(pairs), int(bad_pixels), int(pixels)


def non_finite_flow_masks(flow: torch.Tensor, img1: torch.Tensor,
                          img2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Which pairs of a flow (B, 2, H, W) hold NaN or infinite values, and which pairs' images (B, C, H, W) are
    finite: the detection of :func:`check_finite_flow` and :func:`icegan.pipeline.compute_flow_features`, each with
    its message.

    When the flow is finite (the usual case) it costs one sum: any NaN or Inf makes the sum NaN or Inf (a sum
    overflowing float32 is only a false alarm, checked element-wise).

    Returns:
        None when every flow value is finite; else ``(bad, finite_inputs)``, (B,) bool masks on the flow's device:
        pairs whose flow is not finite anywhere (either channel), pairs whose two images are finite everywhere.
    """
    flow = flow.detach()
    if bool(torch.isfinite(flow.sum(dtype=torch.float32))) or bool(torch.isfinite(flow).all()):
        return None
    bad = ~torch.isfinite(flow).flatten(1).all(1)
    finite_in = torch.isfinite(img1.detach()).flatten(1).all(1) & torch.isfinite(img2.detach()).flatten(1).all(1)
    return bad, finite_in.to(bad.device)


def check_finite_flow(flow: torch.Tensor, img1: torch.Tensor, img2: torch.Tensor, network: str) -> None:
    """Refuse a flow (B, 2, H, W) with NaN or infinite values computed from finite images (B, C, H, W).

    When the flow is finite (the usual case) it costs one sum: any NaN or Inf makes the sum NaN or Inf (a sum
    overflowing float32 is only a false alarm, checked element-wise); pairs whose images are themselves not finite
    are not the network's fault and are let through (the caller's own checks name them).

    Args:
        network: what made the flow, for the message (e.g. ``"flow.module='my_package.flow:MyNet'"``).

    Raises:
        NonFiniteFlowError: names ``network``, the pairs of the batch and the count of non-finite pixels.
    """
    masks = non_finite_flow_masks(flow, img1, img2)
    if masks is None:
        return
    bad_out, finite_in = masks
    pairs = (bad_out & finite_in).nonzero().flatten().tolist()
    if not pairs:
        return
    bad = int((~torch.isfinite(flow.detach()[pairs])).any(1).any(0).sum())
    pixels = flow.shape[-2] * flow.shape[-1]
    raise NonFiniteFlowError(
        f"{network}: the flow network produced NaN/Inf flow for finite images: pair(s) {pairs} of a batch of "
        f"{flow.shape[0]} (images {tuple(img1.shape)}), at {bad} of {pixels} pixels; check its forward() (a division "
        "by zero, a log or square root of a negative number, weights that hold NaN)", pairs, bad, pixels)


class CustomFlowEstimator(_LearnedEstimator):
    """Your own flow network behind the estimator interface (``estimate`` / ``forward`` / ``model``, bf16, compile
    and mirrored-pair test-time augmentation as for the shipped networks).

    Contract of the network the factory returns: ``forward(img1, img2)`` with images (B, C, H, W) float in [0, 1]
    (C = 1 for the grey facial crops, 3 for colour input; as the caller gives them) returns the flow from img1 to
    img2 as (B, 2, H, W) in pixels, channel 0 horizontal; a list or tuple of flows is read as a refinement sequence
    and its last element taken. H and W are those of the input.

    Args:
        module: ``'package.module:factory'`` or ``'path/to/file.py:factory'`` (:func:`flownet.plugins.load_factory`);
            the factory is called without arguments.
        weights: optional file holding the network's state dict, or a dict with one under ``state_dict`` (read with
            ``torch.load(weights_only=True)``; keys and shapes must match exactly). None: the network as the
            factory builds it (e.g. one that loads its own weights, or has none).
        device, precision, compile, tta: as for :class:`BackboneEstimator`.
        key: how the spec was given, named in every message: ``"flow.module"`` (a config key, the default) or
            ``"--module"`` (icegan flow's option).

    Raises:
        ValueError: an unusable spec, a factory that fails or returns no ``torch.nn.Module``, weights that do not fit
            (names the missing / unexpected keys); in ``estimate``/``forward``, a network output of another shape,
            or (:class:`NonFiniteFlowError`, also a ``FloatingPointError``) NaN or infinite flow for finite images.
        FileNotFoundError: ``weights`` is missing.
    """

    def __init__(self, module: str, weights=None, device="cpu", precision: str = "fp32", compile: bool = False,
                 tta: str = "none", key: str = "flow.module"):
        from .plugins import call_factory, load_factory
        self.spec, self.key = module, key
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.tta = resolve_tta(tta)
        model = call_factory(load_factory(module, key), {}, module, key)
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"{key}={module!r} returned a {type(model).__name__}, not a torch.nn.Module")
        if weights is not None:
            load_state_dict_file(model, weights, f"flow.weights (--weights) of {key}={module!r}", "this network")
        self.model = model.to(self.device).eval()     # as the shipped networks: forward() runs it in eval mode
        self.name = "custom"
        self.compile = bool(compile)

    def _run(self, net, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        try:
            out = net(img1, img2)
        except Exception as exc:
            raise ValueError(f"{self.key}={self.spec!r} failed on images {tuple(img1.shape)} (forward(img1, img2), "
                             f"each (B, C, H, W) in [0, 1]): {type(exc).__name__}: {exc}") from exc
        if isinstance(out, (list, tuple)) and out:
            out = out[-1]
        want = (img1.shape[0], 2, img1.shape[-2], img1.shape[-1])
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"{self.key}={self.spec!r} returned {got} for images {tuple(img1.shape)}; a flow network "
                             f"must return the flow {want} in pixels")
        check_finite_flow(out, img1, img2, f"{self.key}={self.spec!r}")     # here, not as NaN maps downstream
        return out


def trained_on_grey(estimator) -> bool:
    """Whether ``estimator`` is to be given grey frames ((B, 1, H, W)) rather than colour ones: the frames its network
    was trained on, as ``icegan flow eval`` gives them (Middlebury, KITTI and the synthetic pairs are read grey).

    * ``meta["gray"]`` of its weights where recorded (``icegan flow train``, ``train-decflow`` and the self-supervised
      training write their data's ``gray``; a torchvision RAFT or ptlflow checkpoint read by :func:`load_weights`:
      False, they were trained on colour data sets);
    * otherwise True for this repository's networks (the shipped weights and every ``configs/flow_*.yaml`` train on
      grey crops, ``SyntheticFaceFlow(gray=True)``) and for the classical methods (they work on grey);
    * ``custom``: True when the first ``Conv2d`` of its network takes 1 channel, or 2 (the two grey frames stacked,
      FlowNetS-style), else False (3 or 6 channels: given as the caller has the frames, colour for
      ``icegan flow run``).

    Wrappers (:class:`flownet.resolution.ResizedEstimator`, :class:`flownet.decompose.RansacDecomposer`) are looked
    through to their base estimator.

    Args:
        estimator: an estimator of :func:`get_estimator`, a decomposer of :func:`flownet.decompose.get_decomposer`,
            or such an object wrapped.
    """
    from .decompose import RansacDecomposer
    from .resolution import ResizedEstimator
    while isinstance(estimator, (ResizedEstimator, RansacDecomposer)):
        estimator = estimator.base
    model = getattr(estimator, "model", None)
    meta = getattr(model, "meta", None)
    if isinstance(meta, dict) and "gray" in meta:
        return bool(meta["gray"])
    if isinstance(estimator, CustomFlowEstimator):
        first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
        return first is not None and first.in_channels in (1, 2)      # 2: two grey frames stacked (FlowNetS)
    return True


def get_estimator(name: str, weights=None, device="cpu", random_init: bool = False, precision: str = "fp32",
                  compile: bool = False, tta: str = "none", **kwargs):
    """Return an estimator by name: ``"srflownet"`` | ``"liteflownet2"`` | ``"raft_small"`` |
    ``"raft_large"`` | ``"ptlflow:<name>"`` | ``"tvl1"`` | ``"farneback"`` | ``"custom"`` (with ``module=SPEC``:
    :class:`CustomFlowEstimator`; ``weights`` an optional state-dict file; ``module_key``: how the spec was given,
    named in its messages, default ``"flow.module"``).

    ``weights``: a local weights file. For srflownet and liteflownet2 None → the shipped weights
    (:data:`SHIPPED_WEIGHTS`); the other learned backbones have none, so they need ``weights`` (or
    ``random_init=True`` for an untrained model, e.g. tests). ``precision`` = ``"fp32"`` | ``"bf16"`` | ``"auto"``
    (:func:`resolve_precision`) is the learned estimators' inference precision; the classical ones validate it and
    run OpenCV in float32 whatever it says, so callers can pass it for every method. ``compile=True`` runs a learned
    estimator's ``estimate`` through ``torch.compile`` and ``tta="hflip"`` averages it with the flow of the mirrored
    pair (see :class:`_LearnedEstimator`). ``kwargs`` go to the estimator
    (``iters`` for srflownet and RAFT; OpenCV parameters for the classical ones).

    Raises:
        ValueError: unknown name, unknown precision or ``tta``, weights, ``compile=True`` or a ``tta`` given for a
            classical method, or no
            weights for a backbone without shipped weights.
        FileNotFoundError: the weights file does not exist.
    """
    from .classical import FarnebackEstimator, TVL1Estimator
    from .devices import resolve_device
    device = resolve_device(device)         # a device this machine lacks: named here, not as a driver error
    n = canonical_name(name)
    module = kwargs.pop("module", None)
    module_key = kwargs.pop("module_key", "flow.module")
    if n == "custom":
        if not module:
            raise ValueError("flow estimator 'custom' needs module='package.module:factory' or "
                             "'path/to/file.py:factory' (--module, flow.module)")
        if kwargs:
            raise ValueError(f"flow estimator 'custom' takes no options {sorted(kwargs)} (its factory is called "
                             "without arguments)")
        return CustomFlowEstimator(module, weights=weights, device=device, precision=precision, compile=compile,
                                   tta=tta, key=module_key)
    if module:
        raise ValueError(f"module={module!r} is read only by the 'custom' flow estimator, not '{name}'")
    if n == "srflownet" and not random_init:
        return SRFlowNetEstimator(weights=weights, device=device, precision=precision, compile=compile, tta=tta,
                                  **kwargs)
    if n in BACKBONES or n.startswith("ptlflow:"):
        if weights is not None:
            model = load_weights(weights, expected=n, device=device)
        elif not random_init and n in SHIPPED_WEIGHTS:
            model = load_weights(default_weights_path(n), expected=n, device=device)
        elif random_init:
            model = build_backbone(n, kwargs.pop("config", None))
        else:
            # a ptlflow model has no training config of ours: only a checkpoint of its own
            train = ("" if n.startswith("ptlflow:") else
                     f"train with `icegan flow train --config configs/flow_{n}.yaml` (`icegan configs` shows where an "
                     f"installed icegan keeps it) or ")
            raise ValueError(f"flow estimator '{n}' has no shipped weights: pass weights=<local file> "
                             f"(--weights W; {train}give a torchvision/ptlflow checkpoint you downloaded yourself)")
        return BackboneEstimator(model, device=device, precision=precision, compile=compile, tta=tta, **kwargs)
    resolve_precision(precision, device, warn=False)  # a bad value fails here too; OpenCV itself runs in float32
    if weights is not None:
        raise ValueError(f"estimator '{name}' takes no weights (got {weights})")
    if compile:
        raise ValueError(f"compile=True (torch.compile) applies to the learned estimators, not '{name}'")
    if resolve_tta(tta) != "none":
        raise ValueError(f"tta={tta!r} (test-time mirrored-pair average) applies to the learned estimators, not '{name}'")
    if n == "tvl1":
        return TVL1Estimator(device=device, **kwargs)
    # canonical_name refused every other name: the learned ones and custom returned above
    return FarnebackEstimator(device=device, **kwargs)
