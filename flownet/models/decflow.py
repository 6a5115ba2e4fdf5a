"""DecFlow: SRFlowNet with two decoders, head flow + expression flow (learned decomposition).

Source: FacialFlowNet / DecFlow, ``../shared/papers/facialflownet_decflow_supplement.txt``:
facial flow = head flow + expression flow (Fig. 5: F_f, F_h, F_e), estimated by **two independent
decoders** on a shared encoder (Sec. 2.2 and Tab. 2: one decoder with two GRU blocks was less accurate,
"which validates the necessity of using two independent decoders"); the expression flow is the better
expression-recognition feature (Sec. 2.3, Tab. 3).

Architecture (:class:`DecFlow`), built on :class:`flownet.models.srflownet.SRFlowNet` (RAFT parts from
torchvision):

* shared: feature encoder, context encoder and all-pairs correlation pyramid of an ``SRFlowNet``
  (``self.base``);
* expression decoder: the SRFlowNet update block (SK motion encoder → super-kernel aggregation →
  ConvGRU → flow head) and its convex-upsampling mask predictor (``self.base.raft.update_block``,
  ``self.base.raft.mask_predictor``);
* head decoder: a second, independent update block of the same design (``self.head_update``) with its own
  GRU hidden state. ``head_model="affine"`` (default) projects its output onto the global affine fields
  by a closed-form least-squares fit at 1/8 resolution (6 parameters; head motion of a face crop over an
  ME interval is a near-rigid global motion, and the synthetic data's head motion is a similarity, i.e.
  exactly affine); the full-resolution head flow is then the affine field itself. ``head_model="dense"``
  keeps the head flow dense and upsamples it with a second mask predictor (``self.head_mask``).

Recurrence (``iters`` updates, 1/8 resolution, both decoders read the same correlation features):

    total_k = head_k + expr_k;  corr = lookup(coords0 + total_k)
    head_{k+1} = P(head_k + Δh(GRU_h(corr, total_k)));   expr_{k+1} = expr_k + Δe(GRU_e(corr, total_k))

(P = affine projection or identity; the look-up coordinates are detached between iterations as in RAFT.)
The outputs satisfy ``total = head + expression`` exactly, at every iteration.

Initialisation from the shipped SRFlowNet weights (:meth:`DecFlow.init_from_srflownet`): the shared parts
and the expression decoder take the SRFlowNet weights, the head decoder starts as a copy of the SRFlowNet
update block with a zero output layer, so an untrained head gives zero head flow and the total flow
is SRFlowNet's.

Loss (:func:`decflow_loss`): the gamma-weighted L1 sequence loss of :func:`flownet.losses.sequence_loss`
on the head part, on the expression part and on the total (weights ``w_head``, ``w_expr``, ``w_total``).

Training (:func:`train_decflow`) resumes exactly on a CPU: the order of the training pairs is a function of
``(train.seed, epoch)`` and each step's crop positions of ``(train.seed, step)`` (:class:`flownet.train.StepShuffle`,
:func:`flownet.train.crop_offsets`, with the supervised trainer's salts), so a run interrupted at step k and resumed
from ``last.pt`` ends with the weights and AdamW moments of a run never interrupted, when resumed with the same
settings (``train.steps`` sets the learning-rate schedule; ``train.max_minutes`` stops at a wall time), and on a
GPU only as far as its kernels are deterministic. (A fresh run takes other pairs and crops than before this order,
which replaced ``DataLoader(shuffle=True)`` and a crop generator seeded with the step at each start.)

Weights files: ``{"format": "decflow-v1", "config": {...}, "state_dict": {...}, "meta": {...}}``, tensors
stored as float16 when saved with ``half=True`` (loaded back to float32); :func:`load_decflow` checks
every key and shape and names the file on any mismatch.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.optical_flow._utils import make_coords_grid, upsample_flow
from torchvision.models.optical_flow.raft import MaskPredictor

from ..schedule import apply_one_cycle, budget_fraction
from ..train import RESUME_KEYS, FlowDataConfig, StepShuffle, random_crop
from .inputs import update_count
from ..user_numbers import check_non_negative
from .srflownet import SKMotionEncoder, SKUpdateBlock, SRFlowNet, SRFlowNetConfig
from .state_dict import check_architecture, load_model_file, load_resume_checkpoint, save_torch_file

__all__ = ["DecFlowConfig", "DecFlow", "affine_project", "decflow_loss", "DECFLOW_FORMAT",
           "default_decflow_path", "save_decflow", "load_decflow", "DecFlowEstimator",
           "DecFlowTrainSection", "DecFlowTrainConfig", "random_crop", "evaluate_decflow", "train_decflow"]

DECFLOW_FORMAT = "decflow-v1"
HEAD_MODELS = ("affine", "dense")


@dataclass
class DecFlowConfig(SRFlowNetConfig):
    """SRFlowNet hyper-parameters (:class:`SRFlowNetConfig`, shared by both decoders) plus the head model.

    ``head_model``: "affine" (head flow projected on global affine fields) or "dense".
    """
    head_model: str = "affine"


def _srflownet_config(cfg: DecFlowConfig) -> SRFlowNetConfig:
    return SRFlowNetConfig(**{f.name: getattr(cfg, f.name) for f in fields(SRFlowNetConfig)})


def _affine_design(h: int, w: int, device, dtype, offset: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """(h*w, 3) rows [x, y, 1] with x = (col - offset) / scale (same for y)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype),
                            indexing="ij")
    return torch.stack([(xs - offset) / scale, (ys - offset) / scale, torch.ones_like(xs)], -1).reshape(-1, 3)


def affine_project(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares projection of flow fields onto global affine fields (differentiable).

    Solves ``min_M sum_x |flow(x) - M [x, y, 1]^T|^2`` per field (closed form, pixel coordinates of the
    given grid) and returns the fitted field and ``M``.

    Args:
        flow: (B, 2, H, W) flow (pixels of that grid), H * W >= 3 and not all on one line.

    Returns:
        (projected (B, 2, H, W), M (B, 2, 3)).

    Raises:
        ValueError: not a (B, 2, H, W) tensor or fewer than 3 pixels.
    """
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W), got {tuple(flow.shape)}")
    b, _, h, w = flow.shape
    if h < 2 or w < 2:
        raise ValueError(f"an affine fit needs a grid of at least 2x2 pixels, got {h}x{w}")
    x = _affine_design(h, w, flow.device, flow.dtype)                     # (HW, 3)
    pinv = torch.linalg.pinv(x)                                           # (3, HW)
    m = flow.reshape(b, 2, h * w) @ pinv.T                                # (B, 2, 3)
    return (m @ x.T).reshape(b, 2, h, w), m


class DecFlow(nn.Module):
    """Two-decoder SRFlowNet (module docstring). ``forward(img1, img2, iters=None) -> dict``.

    Args:
        config: :class:`DecFlowConfig` (None → defaults, the shipped SRFlowNet's architecture).

    ``forward`` takes images (B, 1 or 3, H, W) float in [0, 1] (same shape; any H, W: padded like
    SRFlowNet) and returns ``{"head": [...], "expression": [...], "total": [...]}``, one (B, 2, H, W)
    flow in pixels per iteration each (last = final), with ``total[i] == head[i] + expression[i]``.

    Raises:
        ValueError: unknown ``head_model``, a config whose ``downsample`` is not 8, or mismatched / badly shaped
            images.
    """

    def __init__(self, config: DecFlowConfig | None = None):
        super().__init__()
        cfg = config or DecFlowConfig()
        if cfg.head_model not in HEAD_MODELS:
            raise ValueError(f"head_model must be one of {list(HEAD_MODELS)}, got {cfg.head_model!r}")
        if cfg.downsample != 8:
            raise ValueError(f"DecFlow's two decoders run on the 1/8 feature grid (padding, coordinates, affine head "
                             f"fit, upsampling); its config's downsample must be 8, got {cfg.downsample}")
        self.config = cfg
        self.base = SRFlowNet(_srflownet_config(cfg))
        corr_channels = self.base.raft.corr_block.out_channels
        # the head decoder: the expression decoder's design (SRFlowNet's update block), every width from the config
        menc = SKMotionEncoder(in_channels_corr=corr_channels, out_channels=cfg.motion_channels,
                               kernel=cfg.super_kernel, small=cfg.small_kernel,
                               corr_channels=cfg.motion_corr_channels, flow_channels=cfg.motion_flow_channels,
                               ffn_expansion=cfg.ffn_expansion)
        self.head_update = SKUpdateBlock(motion_encoder=menc, context_channels=cfg.context_layers[-1] - cfg.hidden,
                                         hidden=cfg.hidden, kernel=cfg.super_kernel, small=cfg.small_kernel,
                                         flow_head_hidden=cfg.flow_head_hidden, gru_kernel=cfg.gru_kernel,
                                         ffn_expansion=cfg.ffn_expansion)
        self.head_mask = (MaskPredictor(in_channels=cfg.hidden, hidden_size=cfg.mask_hidden, multiplier=0.25)
                          if cfg.head_model == "dense" else None)
        self.min_size = self.base.min_size

    def init_from_srflownet(self, srflownet: SRFlowNet) -> "DecFlow":
        """Copy an SRFlowNet's weights: shared parts + expression decoder; head decoder = a copy of its update
        block with a zero output layer (so the head flow starts at 0). Returns self.

        The architectures are compared on every config key but ``iters``
        (:func:`flownet.models.state_dict.check_architecture`: the default update count at inference sets no
        weight; the shipped SRFlowNet is saved with ``iters`` 2, DecFlow builds with 8).

        Raises:
            ValueError: the SRFlowNet architecture differs from this model's (its ``model`` section in
                train-decflow): ``"SRFlowNet weights: another architecture than the run's model section: hidden=16
                (model.hidden: 64)"``, each differing key with both values.
        """
        check_architecture(srflownet.config_dict(), self.base.config_dict(), "SRFlowNet weights")
        self.base.load_state_dict(srflownet.state_dict())
        self.head_update.load_state_dict(srflownet.raft.update_block.state_dict())
        nn.init.zeros_(self.head_update.flow_head.conv2.weight)
        nn.init.zeros_(self.head_update.flow_head.conv2.bias)
        if self.head_mask is not None:
            self.head_mask.load_state_dict(srflownet.raft.mask_predictor.state_dict())
        return self

    def forward(self, img1: torch.Tensor, img2: torch.Tensor, iters: int | None = None) -> dict:
        """Head, expression and total flow at every update (module docstring, "Recurrence"; the two decoders of
        ``../shared/papers/facialflownet_decflow_supplement.txt`` Sec. 2.2).

        Args:
            img1, img2: (B, 1 or 3, H, W) images in [0, 1] of equal shape, any H, W >= 1 (replicate-padded to a
                multiple of 8 and at least ``min_size``; ``config.downsample`` is 8, checked when built).
            iters: recurrent updates (None or 0 → ``config.iters``).

        Returns:
            ``{"head": [...], "expression": [...], "total": [...]}``: lists of flows (B, 2, H, W) in pixels, one per
            update in training and in eval mode, last = final, ``total[i] == head[i] + expression[i]``.

        Raises:
            ValueError: the shapes differ, the images are not (B, 1 or 3, H, W), or ``iters`` < 0.
        """
        if img1.shape != img2.shape:
            raise ValueError(f"image pair shapes differ: {tuple(img1.shape)} vs {tuple(img2.shape)}")
        n_iters = update_count(iters, self.config.iters)
        raft = self.base.raft
        x1, x2 = self.base.prepare(img1), self.base.prepare(img2)
        h, w = x1.shape[-2:]
        ph = max(self.min_size, math.ceil(h / 8) * 8) - h
        pw = max(self.min_size, math.ceil(w / 8) * 8) - w
        if ph or pw:
            x1 = F.pad(x1, (0, pw, 0, ph), mode="replicate")
            x2 = F.pad(x2, (0, pw, 0, ph), mode="replicate")
        b, _, hp, wp = x1.shape
        fmap1, fmap2 = torch.chunk(raft.feature_encoder(torch.cat([x1, x2], 0)), 2, 0)
        raft.corr_block.build_pyramid(fmap1, fmap2)
        ctx = raft.context_encoder(x1)
        hid = self.config.hidden
        hidden, context = torch.split(ctx, [hid, ctx.shape[1] - hid], 1)
        hidden_e = hidden_h = torch.tanh(hidden)
        context = F.relu(context)
        coords0 = make_coords_grid(b, hp // 8, wp // 8).to(fmap1.device)
        head = torch.zeros_like(coords0)
        expr = torch.zeros_like(coords0)
        affine = self.config.head_model == "affine"
        if affine:  # full-resolution design matrix: 1/8-grid cell i covers pixels 8i .. 8i+7 (centre 8i+3.5)
            design_full = _affine_design(hp, wp, coords0.device, coords0.dtype, offset=3.5, scale=8.0)
        out = {"head": [], "expression": [], "total": []}
        for _ in range(n_iters):
            head, expr = head.detach(), expr.detach()
            total = head + expr
            corr = raft.corr_block.index_pyramid(centroids_coords=coords0 + total)
            hidden_h, dh = self.head_update(hidden_h, context, corr, total)
            hidden_e, de = raft.update_block(hidden_e, context, corr, total)
            head = head + dh
            expr = expr + de
            if affine:
                head, m = affine_project(head)
                up_h = 8.0 * (m @ design_full.T).reshape(b, 2, hp, wp)
            else:
                up_h = upsample_flow(head, self.head_mask(hidden_h))
            up_e = upsample_flow(expr, raft.mask_predictor(hidden_e))
            if ph or pw:
                up_h, up_e = up_h[..., :h, :w], up_e[..., :h, :w]
            out["head"].append(up_h)
            out["expression"].append(up_e)
            out["total"].append(up_h + up_e)
        return out

    def config_dict(self) -> dict:
        """``self.config`` (:class:`DecFlowConfig`) as a plain dict (tuples as lists): the ``"config"`` of a DecFlow
        weights file (:func:`save_decflow`)."""
        d = asdict(self.config)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def decflow_loss(out: dict, gt_head: torch.Tensor, gt_expr: torch.Tensor, valid: torch.Tensor | None = None,
                 gamma: float = 0.8, w_head: float = 1.0, w_expr: float = 1.0,
                 w_total: float = 1.0, logs_as_floats: bool = True) -> tuple[torch.Tensor, dict]:
    """Decomposition loss: ``w_head L(head) + w_expr L(expr) + w_total L(head + expr)``.

    ``L`` is the gamma-weighted L1 sequence loss (:func:`flownet.losses.sequence_loss`, pixels) against
    ``gt_head``, ``gt_expr`` and ``gt_head + gt_expr``: the two parts are supervised separately, as DecFlow's
    two decoders are by the head-flow and facial-flow labels (supplement Sec. 2.2), and the total keeps the
    sum accurate.

    Args:
        out: :class:`DecFlow` output (lists under "head", "expression", "total").
        gt_head, gt_expr: (B, 2, H, W) ground-truth parts, pixels. valid: (B, H, W) bool or None.
        gamma: sequence decay; w_head, w_expr, w_total: non-negative weights (not all zero).
        logs_as_floats: False: the part losses as detached 0-dim tensors, nothing read on the host, plus
            ``"valid_values"`` (the fewest valid flow values of the three targets) for the caller to read with them
            in one copy and to refuse 0 with :data:`flownet.losses.NO_VALID_PIXEL`.

    Returns:
        (scalar loss, {"head": float, "expression": float, "total": float} unweighted part losses).

    Raises:
        ValueError: missing keys, shape mismatch, negative / all-zero weights, no valid pixel (only with
            ``logs_as_floats``).
    """
    from ..losses import _MAX_FLOW, _sequence_loss
    for k in ("head", "expression", "total"):
        if k not in out:
            raise ValueError(f"DecFlow output lacks '{k}' (keys: {sorted(out)})")
    if min(w_head, w_expr, w_total) < 0 or w_head + w_expr + w_total == 0:
        raise ValueError(f"loss weights must be >= 0 and not all zero, got {w_head}, {w_expr}, {w_total}")
    if gt_head.shape != gt_expr.shape:
        raise ValueError(f"gt_head {tuple(gt_head.shape)} and gt_expr {tuple(gt_expr.shape)} differ in shape")
    (lh, nh), (le, ne), (lt, nt) = (_sequence_loss(out[k], gt, valid, gamma, _MAX_FLOW, logs_as_floats)
                                    for k, gt in (("head", gt_head), ("expression", gt_expr),
                                                  ("total", gt_head + gt_expr)))
    loss = w_head * lh + w_expr * le + w_total * lt
    if not logs_as_floats:
        return loss, {"head": lh.detach(), "expression": le.detach(), "total": lt.detach(),
                      "valid_values": torch.minimum(torch.minimum(nh, ne), nt).detach()}
    return loss, {"head": float(lh.detach()), "expression": float(le.detach()), "total": float(lt.detach())}


# ------------------------------------------------------------------------------------------------ weights

def default_decflow_path() -> Path:
    """The shipped DecFlow weights: ``flownet/weights/decflow_facial.pt``."""
    return Path(__file__).resolve().parents[1] / "weights" / "decflow_facial.pt"


def save_decflow(model: DecFlow, path: str | Path, meta: dict | None = None, half: bool = False) -> Path:
    """Save ``model`` as ``{"format": "decflow-v1", "config", "state_dict", "meta"}`` (float16 tensors if
    ``half``, to keep shipped files small; :func:`load_decflow` restores float32)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    dt = torch.float16 if half else torch.float32
    sd = {k: v.detach().cpu().to(dt) if v.is_floating_point() else v.detach().cpu()
          for k, v in model.state_dict().items()}
    save_torch_file({"format": DECFLOW_FORMAT, "config": model.config_dict(), "state_dict": sd,
                     "meta": dict(meta or {})}, p)
    return p


def load_decflow(path: str | Path | None = None, device: str | torch.device = "cpu") -> DecFlow:
    """Build a :class:`DecFlow` from a weights file (None → shipped weights), in eval mode.

    Raises:
        FileNotFoundError: the file does not exist (the message says how to train weights).
        ValueError: not a DecFlow weights file, unknown config keys, or tensors that do not match the
            model built from its config (names the file and the first mismatching keys).
    """
    p = Path(path) if path is not None else default_decflow_path()
    model = load_model_file(p, DECFLOW_FORMAT, "DecFlow", DecFlow, DecFlowConfig,
                            "Train them with `icegan flow train-decflow --config configs/flow_decflow.yaml` (`icegan "
                            "configs` shows where an installed icegan keeps it; then pass runs/decflow/weights.pt) or "
                            "pass an existing file.")     # float16 tensors load as float32 (load_state_dict casts)
    return model.to(device)


class DecFlowEstimator:
    """DecFlow behind the estimator interface, plus ``decompose``.

    ``estimate(img1, img2)`` → total flow (B, 2, H, W) px; ``decompose(img1, img2, region=None)`` →
    ``{"total", "head", "expression"}`` (B, 2, H, W) px (``region`` is accepted for interface parity with
    :class:`flownet.decompose.RansacDecomposer` and ignored); ``forward`` → the output dict with gradients.

    Args:
        model: a :class:`DecFlow`, or None to load ``weights`` (None → shipped weights).
        device: torch device. iters: recurrent updates at inference (None → config default).
    """
    name = "decflow"

    def __init__(self, model: DecFlow | None = None, weights=None, device="cpu", iters: int | None = None):
        self.device = torch.device(device)
        self.model = (model if model is not None else load_decflow(weights, device=self.device)).to(self.device)
        self.iters = iters

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> dict:
        """DecFlow output dict (lists per iteration) with gradients."""
        return self.model(img1.to(self.device), img2.to(self.device), iters=self.iters)

    @torch.no_grad()
    def decompose(self, img1: torch.Tensor, img2: torch.Tensor, region=None) -> dict:
        """Final total, head and expression flow (B, 2, H, W), pixels, eval mode, no gradients."""
        was = self.model.training
        self.model.eval()
        try:
            out = self.forward(img1, img2)
        finally:
            self.model.train(was)
        return {k: out[k][-1] for k in ("total", "head", "expression")}

    def estimate(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Total flow (B, 2, H, W), pixels."""
        return self.decompose(img1, img2)["total"]

    __call__ = estimate


# ------------------------------------------------------------------------------------------------ training

@dataclass
class DecFlowTrainSection:
    """Training settings of :func:`train_decflow`."""
    init_weights: str | None = "shipped"  #: SRFlowNet weights to start from ("shipped", a path, or null = scratch)
    gamma: float = 0.8
    w_head: float = 1.0
    w_expr: float = 1.0
    w_total: float = 1.0
    iters: int = 4                 #: recurrent updates during training
    batch_size: int = 4
    crop: int = 96                 #: random square training crops of this side (0 = whole pairs; >= 64 px)
    steps: int = 1000
    max_minutes: float = 0.0       #: stop (and save) after this wall time; 0 = no limit
    lr: float = 2e-4
    weight_decay: float = 1e-4
    clip: float = 1.0
    log_every: int = 10
    eval_every: int = 0            #: test-set evaluation every N steps (0 = only at the end)
    ckpt_every: int = 25
    half_weights: bool = True      #: store weights.pt as float16 (half the size)
    device: str = "cpu"
    threads: int = 1
    seed: int = 0
    resume: bool = True

    def __post_init__(self):
        check_non_negative(self, "train", ("gamma", "w_head", "w_expr", "w_total", "iters", "batch_size", "crop",
                                           "steps", "max_minutes", "weight_decay", "clip", "log_every",
                                           "eval_every", "ckpt_every", "threads", "seed"), positive=("lr",))


#: the keys of the ``data`` section (:class:`flownet.train.FlowDataConfig`) that :func:`train_decflow` reads (its
#: :class:`flownet.data.synthetic_face.SyntheticFaceFlow` pairs); any other key at a value other than its default is
#: refused (:class:`DecFlowTrainConfig`), not recorded in the run's config.yaml as if it had been used
DECFLOW_DATA_KEYS = ("root", "size", "n_train", "n_test", "seed", "gray", "max_head", "au_min", "au_max")


@dataclass
class DecFlowTrainConfig:
    """``configs/flow_decflow.yaml``: sections ``data`` (:class:`flownet.train.FlowDataConfig`, of which DecFlow reads
    :data:`DECFLOW_DATA_KEYS`), ``model`` (:class:`DecFlowConfig`), ``train`` (:class:`DecFlowTrainSection`).

    Raises:
        ValueError: a ``data`` key DecFlow does not read (``hflip``, ``photometric``, ``extra_faces``,
            ``generic_fraction``, ``n_val_subjects``, ``frames_per_clip``, ...) at a value other than its default,
            naming each such key and its value (when the config is loaded: before any run folder is made).
    """
    name: str = "decflow"
    out_dir: str = "runs"
    data: FlowDataConfig = field(default_factory=FlowDataConfig)
    model: DecFlowConfig = field(default_factory=DecFlowConfig)
    train: DecFlowTrainSection = field(default_factory=DecFlowTrainSection)

    def __post_init__(self):
        default = FlowDataConfig()
        shown = lambda v: str(v).lower() if isinstance(v, bool) or v is None else v      # as YAML writes it
        unread = [f"data.{f.name}={shown(getattr(self.data, f.name))}" for f in fields(FlowDataConfig)
                  if f.name not in DECFLOW_DATA_KEYS and getattr(self.data, f.name) != getattr(default, f.name)]
        if unread:
            raise ValueError(f"{', '.join(unread)}: icegan flow train-decflow does not read "
                             f"{'this key' if len(unread) == 1 else 'these keys'} (its pairs use data."
                             f"{', data.'.join(DECFLOW_DATA_KEYS)} only; the others are icegan flow train's): leave "
                             f"{'it' if len(unread) == 1 else 'them'} out or at the default")


@torch.no_grad()
def evaluate_decflow(model: DecFlow, loader, device, iters: int | None = None) -> dict:
    """Mean EPE (pixels, over valid pixels pooled over the loader) of the head, expression and total flow."""
    from ..metrics import endpoint_error
    was = model.training
    model.eval()
    sums = {"head": 0.0, "expression": 0.0, "total": 0.0}
    n = 0
    for b in loader:
        out = model(b["img1"].to(device), b["img2"].to(device), iters=iters)
        v = b["valid"].to(device)
        gts = {"head": b["flow_head"], "expression": b["flow_expr"], "total": b["flow"]}
        for k in sums:
            sums[k] += float(endpoint_error(out[k][-1], gts[k].to(device))[v].sum())
        n += int(v.sum())
    model.train(was)
    return {f"EPE_{k}": s / max(n, 1) for k, s in sums.items()}


def train_decflow(cfg: DecFlowTrainConfig, progress: bool = True) -> dict:
    """Train (or resume) DecFlow on the synthetic facial data's head / expression parts.

    Writes ``<out_dir>/<name>/``: config.yaml, TensorBoard events, ``last.pt`` (resume; it records the init weights'
    ``real_pair_subjects``, so that a resume does not read the init file again; ``train.resume=false`` removes it and
    the old weights.pt / metrics.json before config.yaml is written: :func:`flownet.train.remove_old_run`),
    ``weights.pt`` (:func:`save_decflow`) and ``metrics.json`` (test EPE of head / expression / total of the final
    model; no model selection). Reuses :class:`flownet.train.FlowDataConfig`, :func:`flownet.train.collate`.

    Returns:
        the final test metrics dict.

    Raises:
        FileNotFoundError: missing CASME II frames or init weights. ValueError: bad config values (among them
        ``data.n_train`` < ``train.batch_size``: no whole batch, refused before the run folder).
    """
    from torch.utils.data import DataLoader
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from ..data.synthetic_face import SyntheticFaceFlow
    from ..devices import host_values
    from ..losses import NO_VALID_PIXEL
    from ..registry import load_srflownet
    from ..train import check_intervals, collate, refuse_other_settings, start_run

    t = cfg.train
    if t.batch_size < 1 or t.iters < 1:
        raise ValueError(f"train.batch_size and train.iters must be >= 1, got {t.batch_size}, {t.iters}")
    check_intervals(t, crop=True)
    d = cfg.data
    if t.crop > d.size:                     # the pairs are data.size square (random_crop's check, before any folder)
        raise ValueError(f"train.crop={t.crop} is larger than the pairs ({d.size}x{d.size}, data.size)")
    StepShuffle(d.n_train, t.batch_size, t.seed)    # refuses pairs that hold no whole batch (an endless wait before)
    ckpt_path = Path(cfg.out_dir) / cfg.name / "last.pt"
    resume = t.resume and ckpt_path.is_file()
    # checked once, on one throwaway model of the run's config, before start_run rewrites the run's config.yaml: a
    # checkpoint to resume, and a missing init file or one of another architecture, leave the folder as it was
    probe = DecFlow(cfg.model) if resume or t.init_weights else None
    ck = load_resume_checkpoint(ckpt_path, probe, RESUME_KEYS) if resume else None
    # a checkpoint that records which subjects its init weights saw needs no init file (older ones do: they lack it)
    init_needed = ck is None or "real_pair_subjects" not in ck
    init = None
    if t.init_weights and init_needed:
        try:
            init = load_srflownet(None if t.init_weights == "shipped" else t.init_weights)
            probe.init_from_srflownet(init)     # raises when the architectures differ
        except FileNotFoundError:               # load_srflownet's message names an option of other commands
            raise FileNotFoundError(f"train.init_weights={t.init_weights}: no such file; give SRFlowNet weights (a "
                                    f"path, or 'shipped'), or null to train DecFlow from scratch") from None
        except ValueError as exc:
            raise ValueError(f"train.init_weights={t.init_weights}: {exc}") from None
    if resume:
        refuse_other_settings(cfg)
    device, run = start_run(cfg)

    common = dict(root=d.root, size=d.size, seed=d.seed, gray=d.gray, max_head=d.max_head,
                  au_range=(d.au_min, d.au_max))
    train_ds = SyntheticFaceFlow(split="train", n_pairs=d.n_train, **common)
    test_loader = DataLoader(SyntheticFaceFlow(split="test", n_pairs=d.n_test, **common), batch_size=8,
                             shuffle=False, collate_fn=collate)

    model = DecFlow(cfg.model)
    seen: list[str] = []        # CASME II subjects whose real frames trained the init weights (self-supervised ones)
    if not init_needed:
        seen = list(ck["real_pair_subjects"] or [])
    elif init is not None:
        model.init_from_srflownet(init)
        seen = list(init.meta.get("real_pair_subjects") or [])
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    step, elapsed0 = 0, 0.0
    if ck is not None:
        model.load_state_dict(ck["model"])         # checked above against a model of this same config
        opt.load_state_dict(ck["optimizer"])
        step, elapsed0 = int(ck["step"]), float(ck.get("elapsed_s", 0.0))
        print(f"resumed {ckpt_path} at step {step}", flush=True)
    start = time.time()

    def save_ckpt():
        save_torch_file({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                         "elapsed_s": elapsed0 + time.time() - start, "real_pair_subjects": seen}, ckpt_path)

    def frac() -> float:
        return budget_fraction(step, t.steps, elapsed0 + time.time() - start, t.max_minutes)

    def set_lr() -> float:
        return apply_one_cycle(opt, t.lr, frac())

    writer = SummaryWriter(str(run / "tb"))
    # the order of the pairs from this step on, as a run never interrupted reads them (StepShuffle: endless, the loop
    # below leaves it); the generator only keeps the loader off torch's global random state
    order = StepShuffle(len(train_ds), t.batch_size, t.seed, step)
    loader = DataLoader(train_ds, batch_size=t.batch_size, sampler=order, collate_fn=collate, drop_last=True,
                        generator=torch.Generator().manual_seed(t.seed + step))
    model.train()
    set_lr()
    bar = tqdm(total=t.steps, initial=step, disable=not progress, desc=f"train {cfg.name}")
    if frac() < 1.0:     # the loader is endless (StepShuffle): the loop is left when the budget is used
        for b in loader:
            b = random_crop(b, t.crop, t.seed, step)
            img1, img2 = b["img1"].to(device), b["img2"].to(device)
            out = model(img1, img2, iters=t.iters)
            loss, parts = decflow_loss(out, b["flow_head"].to(device), b["flow_expr"].to(device),
                                       b["valid"].to(device), t.gamma, t.w_head, t.w_expr, t.w_total,
                                       logs_as_floats=False)
            # one device-to-host copy: the part losses, the loss for the finiteness check, the valid-value count
            parts = host_values({**parts, "_loss": loss.detach()})
            if parts.pop("valid_values") == 0:
                raise ValueError(NO_VALID_PIXEL)
            loss_value = parts.pop("_loss")
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"non-finite DecFlow loss at step {step}: {parts}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip)
            opt.step()
            step += 1
            lr_now = set_lr()
            bar.update(1)
            if step % t.log_every == 0:
                for k, v in parts.items():
                    writer.add_scalar(f"train/loss_{k}", v, step)
                writer.add_scalar("train/loss", loss_value, step)
                writer.add_scalar("train/lr", lr_now, step)
                print(f"step {step} loss {loss_value:.4f} head {parts['head']:.4f} expr {parts['expression']:.4f} "
                      f"total {parts['total']:.4f} elapsed {elapsed0 + time.time() - start:.0f}s", flush=True)
            if step % t.ckpt_every == 0:
                save_ckpt()
            if t.eval_every and step % t.eval_every == 0:
                m = evaluate_decflow(model, test_loader, device)
                for k, v in m.items():
                    writer.add_scalar(f"test/{k}", v, step)
                print(f"step {step} test {json.dumps(m)}", flush=True)
            if frac() >= 1.0:
                break
    bar.close()
    save_ckpt()
    metrics = evaluate_decflow(model, test_loader, device)
    meta = {"name": cfg.name, "steps": step, "train_iters": t.iters, "size": d.size, "gray": bool(d.gray),
            "init": t.init_weights,
            "test_metrics": metrics, "n_test": d.n_test,
            "minutes": round((elapsed0 + time.time() - start) / 60, 1)}
    if seen:                    # it has seen that motion too: a main job with flow.decompose=learned warns about it
        meta["real_pair_subjects"] = seen
    save_decflow(model, run / "weights.pt", meta=meta, half=t.half_weights)
    from ..io import write_text_whole
    write_text_whole(run / "metrics.json", json.dumps(meta, indent=2))  # never left cut short
    writer.close()
    print(f"final test metrics ({d.n_test} pairs): {json.dumps(metrics)}", flush=True)
    return metrics
