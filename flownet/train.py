"""Train a flow backbone on synthetic facial flow (``icegan flow train --config configs/flow_*.yaml``).

``train.backbone`` picks the network: ``srflownet`` (section ``model``), ``liteflownet2`` (section
``liteflownet2``: :class:`flownet.models.liteflownet2.LiteFlowNet2Config`; loss = the paper's multi-scale
loss :func:`flownet.models.liteflownet2.multiscale_loss` + the regularizer on the final full-resolution
flow), ``raft_small`` / ``raft_large`` (section ``raft``: torchvision RAFT, random init; loss = the
gamma sequence loss + the regularizer, as SRFlowNet) or ``ptlflow:<name>`` (section ``ptlflow``; needs the
optional ptlflow package; sequence loss over its predictions). The regularizer (``train.regularizer``:
none | tvr | fdr | migar | igvar) is the same for all.

``data.generic_fraction`` replaces that share of the training pairs by generic (non-face) scenes
(:mod:`flownet.data.synthetic_generic`, :class:`MixedFlow`), and ``data.n_generic_val`` watches that many generic
validation scenes beside the facial validation pairs (``val_generic`` in TensorBoard, ``val_generic_metrics`` in
``metrics.json``).

The configuration is a plain dataclass (:class:`FlowTrainConfig`, sections ``data``, ``model``,
``train``, and ``liteflownet2``, ``raft``, ``ptlflow`` for the other backbones) so any YAML loader can fill
it; the ``icegan`` CLI uses its typed loader with ``key=value`` overrides. A run writes to
``<out_dir>/<name>/``: ``config.yaml``, TensorBoard events, ``last.pt``
(model + optimizer + step + elapsed time: ``resume: true`` continues from it; ``resume: false`` removes it and the
old run's outputs before the new ``config.yaml`` is written: :func:`remove_old_run`), ``weights.pt`` (the final
model in the shipped-weights format) and ``metrics.json`` (test-set metrics of the final model; no
model selection on the test subjects). A run that used its budget (``train.steps`` or ``train.max_minutes``) and is
run again trains no more step. Settings the backbone does not read are refused (:func:`check_unread_settings`).

``train.keep_best: true`` ships instead the weights of lowest validation EPE among the ``train.eval_every`` step
evaluations and the last step (validation subjects only: refused when ``data.n_val_subjects`` is 0); ``metrics.json``
and the meta of ``weights.pt`` then hold ``kept_best`` = ``{"step", "val_EPE", "final_step", "final_val_EPE"}``, with
``"init_val_EPE"`` (the step 0 score of ``train.init_weights``, no candidate) when the run scored one; when that is
lower than the kept weights', the run ends with a note saying so (the fine-tune did not beat its start)
(their ``steps`` stays the run's length; ``test_metrics`` / ``val_metrics`` are those of the kept weights, and
``weights_raw.pt`` of an ``ema_decay`` run stays the last raw weights). ``last.pt`` keeps the best weights so far
beside the last ones (``best``), so a resumed run picks the step an uninterrupted run picks; a resume that turns
``keep_best`` on or off is refused (:func:`refuse_other_settings`, and a checkpoint without ``best``).

Resuming is exact on a CPU: the order of the training pairs is a function of ``(train.seed, epoch)`` and each step's
random crop positions of ``(train.seed, step)`` (:class:`StepShuffle`, :func:`crop_offsets`), not of the state of
a generator seeded when the run (re)started, so a run interrupted at step k and resumed ends with the weights of
a run never interrupted, when resumed with the same settings (``train.steps`` sets the learning-rate schedule;
``train.max_minutes`` stops at a wall time) and on a GPU only as far as its kernels are deterministic.

What the evaluations score (said in the log before training, and in ``metrics.json`` as ``val_set`` / ``test_set`` /
``val_generic_set``: :func:`evaluation_set`): whole ``data.size`` pairs, never ``train.crop`` crops, at the model
config's update count (``model.iters``), not ``train.iters``; validation = the ``data.n_val_subjects`` held-out
subjects (``sub05`` + ``sub22`` in the flow configs), not the test subjects ``icegan flow eval`` scores. A fresh run
from ``train.init_weights`` also scores those weights as step 0, before its first update: a fine-tune's first
``eval_every`` evaluation scores weights it has already moved (by a lot when the shipped facial weights, trained on
whole 128x128 pairs and much worse on 96x96 crops, are fine-tuned on such crops).
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .devices import host_values, resolve_device
from .io import write_text_whole
from .losses import NO_VALID_PIXEL, srflownet_loss
from .metrics import flow_magnitude
from .models.backbones import PtlflowConfig, RAFTConfig
from .models.liteflownet2 import LiteFlowNet2, LiteFlowNet2Config, multiscale_loss
from .models.srflownet import SRFlowNet, SRFlowNetConfig
from .models.state_dict import load_resume_checkpoint, load_state_dict_file, save_torch_file
from .schedule import apply_one_cycle, budget_fraction
from .user_numbers import check_non_negative

log = logging.getLogger(__name__)

__all__ = ["FlowDataConfig", "FlowTrainSection", "FlowTrainConfig", "MixedFlow", "StepShuffle", "crop_offsets",
           "random_crop", "collate", "dataset_kwargs", "train",
           "init_weights_file", "load_init_weights", "check_intervals", "evaluate_model", "evaluation_updates",
           "evaluation_set", "describe_evaluation_set", "watched_sets_line", "weight_ema", "build_model",
           "training_loss", "warn_igvar_scale", "trained_backbone", "check_unread_settings", "remove_old_run"]


@dataclass
class FlowDataConfig:
    """The ``data:`` section of a supervised flow run's YAML (``configs/flow_srflownet_fdr.yaml`` ...;
    :class:`FlowTrainConfig`); also that of ``configs/flow_decflow.yaml``, which reads only part of it
    (:data:`flownet.models.decflow.DECFLOW_DATA_KEYS`; another key at a value other than its default is refused there).

    The synthetic facial flow pairs (:class:`flownet.data.synthetic_face.SyntheticFaceFlow`, made from CASME II
    frames under ``root``): pair side, numbers of training / validation / test pairs, the subject split, head and
    action-unit motion ranges, augmentations, and the optional share of generic (non-face) scenes
    (:mod:`flownet.data.synthetic_generic`).
    """
    root: str | None = None        #: shared data root (None → $ICEGAN_SHARED_DATA or <repo>/../shared/data)
    size: int = 128                #: side of the synthetic pairs: each face crop is resized to it (pixels)
    n_train: int = 20000           #: synthetic training pairs (generated on the fly, deterministic)
    n_test: int = 64               #: test pairs (scored at the end; monitored during training only if n_val_subjects=0)
    n_val_subjects: int = 0        #: training subjects held out as a validation split (0 = none: monitor the test set)
    n_val: int = 64                #: validation pairs monitored during training (when n_val_subjects > 0)
    frames_per_clip: int = 0       #: training split: evenly spaced frames per clip (0 = all; fewer = fewer landmark runs)
    landmark_cache: str | None = None  #: .npz of precomputed landmarks (flownet.data.synthetic_face.build_landmark_cache)
    seed: int = 0
    gray: bool = True
    max_head: float = 2.0
    au_min: float = 0.2
    au_max: float = 3.0
    extra_faces: bool = False      #: training pairs also from SAMM + SMIC apex faces (megc2019_htnet/faces_224; 44 more identities)
    hflip: bool = False            #: mirror half of the training pairs (flow u negated)
    photometric: float = 0.0       #: brightness/contrast/gamma jitter of training pairs (same for both frames; 0 = off)
    generic_fraction: float = 0.0  #: share of training pairs that are generic (non-face) scenes (flownet.data.synthetic_generic; 0 = faces only)
    generic_max_motion: float = 10.0  #: largest object translation of the generic scenes (px)
    n_generic_val: int = 0         #: generic validation pairs watched beside the facial ones (0 = none)

    def __post_init__(self):
        check_non_negative(self, "data", ("size", "n_train", "n_test", "n_val_subjects", "n_val", "frames_per_clip",
                                          "max_head", "au_min", "au_max", "photometric", "generic_fraction",
                                          "generic_max_motion", "n_generic_val", "seed"))
        if self.photometric >= 1:   # contrast and gamma are drawn in [1 - p, 1 + p]: <= 0 inverts or whitens frames
            raise ValueError(f"data.photometric must be in [0, 1) (contrast and gamma are drawn in [1 - p, 1 + p]), "
                             f"got {self.photometric}")


@dataclass
class FlowTrainSection:
    """The ``train:`` section of a supervised flow run's YAML (:class:`FlowTrainConfig`).

    The backbone to train, the loss (regularizer and its weight, γ of the sequence loss, image scale and mask mode of
    the regularizer), the optimisation (AdamW, 3 % linear warm-up then linear decay to 5 % of ``lr`` over the step or
    wall-time budget: :mod:`flownet.schedule`; gradient clipping, optional weight average), random crops, logging /
    evaluation / checkpoint intervals in steps, device, torch threads, data-loader workers, seed, resume and initial
    weights, and which weights ship (``keep_best``).

    ``keep_best`` (default off: the last weights ship): among the weights that would ship (the raw ones, or the
    average when ``ema_decay`` > 0) as scored by the ``eval_every`` step evaluations on the validation subjects and
    at the last step, ``weights.pt`` gets those of lowest validation EPE (the earliest on a tie; the step 0 score of
    ``init_weights`` is no candidate: ``kept_best`` records it as ``init_val_EPE``, and the run ends with a note when
    it is lower than the kept weights'). It needs ``data.n_val_subjects`` > 0 (without validation subjects the step
    evaluations score the test subjects, and choosing on them would leak the test set) and ``eval_every`` > 0.
    """
    backbone: str = "srflownet"    #: srflownet | liteflownet2 | raft_small | raft_large | ptlflow:<name>
    regularizer: str = "fdr"       #: none | tvr | fdr | migar | igvar
    reg_weight: float | None = None  #: None → 0.05 (TVR, FDR) or 1.0 (MIGAR, IGVAR)
    gamma: float = 0.8
    iters: int = 6                 #: recurrent updates during training
    batch_size: int = 8
    crop: int = 0                  #: random square training crops of this side from each pair (0 = whole)
    steps: int = 1000              #: step budget, >= 1 (the LR schedule's length; max_minutes may end the run sooner)
    max_minutes: float = 0.0       #: stop (and save) after this wall time; 0 = no limit
    lr: float = 4e-4
    weight_decay: float = 1e-4
    clip: float = 1.0
    image_scale: float = 1.0
    mask_mode: str = "interior"
    log_every: int = 10
    eval_every: int = 200
    ckpt_every: int = 50
    device: str = "cpu"
    threads: int = 2
    workers: int = 0               #: DataLoader processes generating training pairs (0 = in the main process; a GPU needs several)
    seed: int = 0
    resume: bool = True            #: false: train afresh (the run folder's last.pt and old outputs are removed first)
    init_weights: str | None = None  #: start from this weights file (e.g. self-supervised SRFlowNet) or shipped:<name>; ignored on resume
    ema_decay: float = 0.0         #: exponential moving average of the weights (e.g. 0.999; 0 = off); the average is saved as weights.pt
    keep_best: bool = False        #: ship the evaluated weights of lowest val EPE, not the last (needs n_val_subjects)

    def __post_init__(self):
        check_non_negative(self, "train", ("reg_weight", "gamma", "iters", "batch_size", "crop", "steps", "max_minutes",
                                           "weight_decay", "clip", "image_scale", "log_every", "eval_every",
                                           "ckpt_every", "threads", "workers", "ema_decay", "seed"), positive=("lr",))


@dataclass
class FlowTrainConfig:
    """A supervised flow training run (:func:`train`): one YAML file such as ``configs/flow_srflownet_fdr.yaml``.

    Top-level keys ``name`` and ``out_dir`` (the run writes to ``<out_dir>/<name>/``), the sections ``data``
    (:class:`FlowDataConfig`) and ``train`` (:class:`FlowTrainSection`), and one architecture section per backbone,
    of which only the one ``train.backbone`` names is read: ``model`` (SRFlowNet), ``liteflownet2``, ``raft`` (its
    ``variant`` is taken from ``train.backbone``) or ``ptlflow`` (its ``name`` too). Loaded by ``icegan flow train``
    with ``key=value`` overrides.
    """
    name: str = "srflownet_fdr"
    out_dir: str = "runs"
    data: FlowDataConfig = field(default_factory=FlowDataConfig)
    model: SRFlowNetConfig = field(default_factory=SRFlowNetConfig)
    train: FlowTrainSection = field(default_factory=FlowTrainSection)
    liteflownet2: LiteFlowNet2Config = field(default_factory=LiteFlowNet2Config)   #: used when train.backbone=liteflownet2
    raft: RAFTConfig = field(default_factory=RAFTConfig)                           #: train.backbone=raft_small|raft_large
    ptlflow: PtlflowConfig = field(default_factory=PtlflowConfig)                  #: train.backbone=ptlflow:<name>


class MixedFlow(torch.utils.data.Dataset):
    """Training pairs drawn from two datasets of equal length: item ``i`` is ``other[i]`` with probability
    ``fraction`` (a fixed draw per ``(seed, i)``, so the mixture is deterministic and resumable), else ``base[i]``.

    Used for ``data.generic_fraction``: facial pairs mixed with generic scenes. Both datasets must yield the same
    keys (:class:`~flownet.data.synthetic_face.SyntheticFaceFlow` and
    :class:`~flownet.data.synthetic_generic.SyntheticGenericFlow` do).

    Raises:
        ValueError: ``fraction`` outside [0, 1] or datasets of different lengths.
    """

    def __init__(self, base, other, fraction: float, seed: int = 0):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"data.generic_fraction must be in [0, 1], got {fraction}")
        if len(base) != len(other):
            raise ValueError(f"mixed datasets differ in length: {len(base)} and {len(other)}")
        self.base, self.other, self.fraction, self.seed = base, other, float(fraction), int(seed)

    def __len__(self) -> int:
        return len(self.base)

    def from_other(self, i: int) -> bool:
        """Whether item ``i`` comes from ``other``."""
        import numpy as np
        return bool(np.random.default_rng([self.seed, 7, i]).random() < self.fraction)

    def __getitem__(self, i: int) -> dict:
        return self.other[i] if self.from_other(i) else self.base[i]


class StepShuffle(torch.utils.data.Sampler):
    """Endless indices of the training pairs in the order the batches of steps ``start``, ``start + 1``, ... take
    them: epoch ``e`` is the permutation ``numpy.random.default_rng([seed, 3, e]).permutation(n)`` cut to its
    ``n // batch_size`` whole batches (as ``drop_last``), and step ``s`` is batch ``s % (n // batch_size)`` of epoch
    ``s // (n // batch_size)``. The order is a function of ``(seed, step)`` only, so a run resumed at step k reads
    the pairs a run never interrupted reads from step k on (a ``DataLoader`` shuffle from a generator seeded at the
    (re)start cannot: its position inside an epoch is lost); the pairs of the steps before ``start`` are skipped, not
    made. (A fresh run therefore takes its pairs in another order than before this sampler, which replaced
    ``DataLoader(shuffle=True)``.)

    Used with ``DataLoader(batch_size=batch_size, sampler=...)``; the loop that reads it stops itself (the loader
    has no end). ``salt`` (default 3) takes the place of the 3 in the generator's seed, so another trainer or stage of
    the same seed takes another order (:mod:`flownet.selfsup`: 11 teacher, 13 student; :mod:`flownet.models.decflow`
    keeps 3); ``key`` is the config key of ``n`` the refusal names.

    Raises:
        ValueError: ``n`` < ``batch_size`` (no whole batch: ``key`` and ``train.batch_size`` named), or
            ``start`` < 0.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int = 0, salt: int = 3, key: str = "data.n_train"):
        if batch_size < 1 or n < batch_size:
            raise ValueError(f"{key}={n} training pairs hold no whole batch of train.batch_size={batch_size}; "
                             f"set {key} >= train.batch_size >= 1")
        if start < 0:
            raise ValueError(f"a training order cannot start at step {start}")
        self.n, self.batch_size, self.seed, self.start = int(n), int(batch_size), int(seed), int(start)
        self.salt = int(salt)

    def __iter__(self):
        import numpy as np
        per_epoch = self.n // self.batch_size
        epoch, skip = divmod(self.start, per_epoch)
        while True:
            order = np.random.default_rng([self.seed, self.salt, epoch]).permutation(self.n)
            order = order[:per_epoch * self.batch_size]
            yield from order[skip * self.batch_size:].tolist()
            epoch, skip = epoch + 1, 0


def crop_offsets(seed: int, step: int, n: int, height: int, width: int, crop: int,
                 salt: int = 5) -> tuple[list[int], list[int]]:
    """Top-left corners ``(ys, xs)`` of the ``n`` random ``crop`` x ``crop`` training crops of step ``step`` (0-based,
    the update they feed) from ``height`` x ``width`` pairs, each uniform over the ``height - crop + 1`` rows and
    ``width - crop + 1`` columns: drawn from ``numpy.random.default_rng([seed, 5, step])``, a function of the seed and
    the step only (the same whether or not the run was resumed before that step). ``salt`` takes the place of the 5
    (:mod:`flownet.selfsup`: 17 teacher, 19 student; :mod:`flownet.models.decflow` keeps 5)."""
    import numpy as np
    rng = np.random.default_rng([seed, salt, step])
    ys = rng.integers(0, height - crop + 1, size=n)
    xs = rng.integers(0, width - crop + 1, size=n)
    return [int(y) for y in ys], [int(x) for x in xs]


def random_crop(batch: dict, crop: int, seed: int, step: int) -> dict:
    """Same-position random ``crop`` x ``crop`` crops of every per-pixel tensor of each sample (flow values
    unchanged; a crop of DecFlow's affine head field is still affine), at the corners :func:`crop_offsets`
    draws for ``(seed, step)`` (``step``: the 0-based update the batch feeds; the same corners after a resume).
    ``crop=0`` returns the batch as is. The crops of the supervised trainer and of
    :func:`flownet.models.decflow.train_decflow`.

    Raises:
        ValueError: ``crop`` larger than the pairs.
    """
    if not crop:
        return batch
    h, w = batch["img1"].shape[-2:]
    if crop > min(h, w):
        raise ValueError(f"train.crop={crop} is larger than the pairs ({h}x{w})")
    ys, xs = crop_offsets(seed, step, len(batch["img1"]), h, w, crop)
    out = dict(batch)
    for k in ("img1", "img2", "flow", "flow_head", "flow_expr", "mask", "valid"):
        out[k] = torch.stack([v[..., y:y + crop, x:x + crop] for v, y, x in zip(batch[k], ys, xs)])
    return out


def collate(items: list[dict]) -> dict:
    """Stack synthetic-face items (tensors stacked, strings listed)."""
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


def build_model(cfg: FlowTrainConfig) -> torch.nn.Module:
    """The untrained backbone named by ``cfg.train.backbone``, from its config section.

    Raises:
        ValueError: unknown backbone (names ``train.backbone`` and the choices), or a model setting of its section
            that builds no network (e.g. an even ``model.gru_kernel``).
        ImportError: a ptlflow backbone without ptlflow installed (names ``train.backbone`` and says how to install
            it).
    """
    import dataclasses

    from .models.backbones import RAFTBackbone, ptlflow_model
    name = trained_backbone(cfg)
    if name == "srflownet":
        return SRFlowNet(cfg.model)
    if name == "liteflownet2":
        return LiteFlowNet2(cfg.liteflownet2)
    if name in ("raft_small", "raft_large"):
        return RAFTBackbone(dataclasses.replace(cfg.raft, variant=name))
    p = cfg.ptlflow                         # trained_backbone leaves only ptlflow:<name> here
    try:
        return ptlflow_model(name.split(":", 1)[1], multiple=p.multiple, bgr=p.bgr)
    except ImportError as exc:              # the optional package is missing: say which setting asked for it
        raise ImportError(f"train.backbone={cfg.train.backbone}: {exc}") from None


def trained_backbone(cfg: FlowTrainConfig) -> str:
    """The registry name of ``cfg.train.backbone`` (``srflownet``, ``liteflownet2``, ``raft_small``, ``raft_large``
    or ``ptlflow:<name>``; spellings as :func:`flownet.registry.canonical_name` reads them).

    Raises:
        ValueError: not a backbone this trainer trains (an unknown name, or a classical / custom estimator); names
            ``train.backbone``, the value and the choices.
    """
    from .registry import BACKBONES, canonical_name
    try:
        name = canonical_name(cfg.train.backbone)
    except ValueError:
        name = None
    if name is not None and (name in BACKBONES or name.startswith("ptlflow:")):
        return name
    raise ValueError(f"train.backbone must be srflownet, liteflownet2, raft_small, raft_large or ptlflow:<name>, "
                     f"got '{cfg.train.backbone}'")


def training_loss(model: torch.nn.Module, b: dict, t: FlowTrainSection, device,
                  lfn2: LiteFlowNet2Config | None = None,
                  logs_as_floats: bool = True) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """Loss of one batch for any backbone → (loss, {"epe_loss", "reg_loss"} floats, final flow (B, 2, H, W)).

    LiteFlowNet2: :func:`~flownet.models.liteflownet2.multiscale_loss` (weights from ``lfn2``) + the
    regularizer on the final full-resolution flow; the others: :func:`flownet.losses.srflownet_loss` over
    their prediction sequence (``t.iters`` updates). ``logs_as_floats=False``: the logs as 0-dim tensors, nothing
    read on the host (:func:`flownet.losses.srflownet_loss`; the training loop reads them in one copy).
    """
    from .regularizers import regularizer_loss
    img1, img2 = b["img1"].to(device), b["img2"].to(device)
    gt, valid, mask = b["flow"].to(device), b["valid"].to(device), b["mask"].to(device)
    if isinstance(model, LiteFlowNet2):
        c = lfn2 or model.config
        out = model.forward_train(img1, img2)
        ms = multiscale_loss(out, gt, valid, c.level_loss_weights, c.full_loss_weight)
        reg = regularizer_loss(t.regularizer, [out.flow], img1=img1, mask=mask, gamma=t.gamma, weight=t.reg_weight,
                               image_scale=t.image_scale, mask_mode=t.mask_mode)
        if not logs_as_floats:
            return ms + reg, {"epe_loss": ms.detach(), "reg_loss": reg.detach()}, out.flow
        return ms + reg, {"epe_loss": float(ms.detach()), "reg_loss": float(reg.detach())}, out.flow
    flows = model(img1, img2, iters=t.iters)
    loss, parts = srflownet_loss(flows, gt, valid, img1=img1, mask=mask, regularizer=t.regularizer, gamma=t.gamma,
                                 reg_weight=t.reg_weight, image_scale=t.image_scale, mask_mode=t.mask_mode,
                                 logs_as_floats=logs_as_floats)
    return loss, parts, flows[-1]


def dataset_kwargs(d: FlowDataConfig) -> dict:
    """Keyword arguments of :class:`flownet.data.synthetic_face.SyntheticFaceFlow` shared by the train, val and
    test splits of a run with data section ``d`` (root, size, seed, subject split, motion ranges, landmark cache)."""
    kw = dict(root=d.root, size=d.size, seed=d.seed, gray=d.gray, max_head=d.max_head, au_range=(d.au_min, d.au_max))
    if d.n_val_subjects:
        kw["n_val"] = int(d.n_val_subjects)
    if d.landmark_cache:
        kw["landmark_cache"] = d.landmark_cache
    return kw


def evaluation_batches(dataset, batch_size: int = 8) -> list[dict]:
    """Every item of a fixed evaluation ``dataset`` (pairs seeded per index), collated into batches of
    ``batch_size``, in order: built once per run and scored at every evaluation.

    The loader draws its base seed from a generator of its own, so building the batches leaves torch's global
    random state as it was (the weights of a model built afterwards do not depend on it)."""
    from torch.utils.data import DataLoader
    return list(DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate,
                           generator=torch.Generator()))


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, loader, device, iters: int | None = None) -> dict:
    """Pooled flow metrics (:func:`flownet.metrics.flow_metrics`) of ``model`` (any backbone) over ``loader``."""
    from .metrics import flow_metrics
    from .registry import final_flow
    was = model.training
    model.eval()
    preds, gts, valids = [], [], []
    for b in loader:
        preds.append(final_flow(model, b["img1"].to(device), b["img2"].to(device), iters).cpu())
        gts.append(b["flow"])
        valids.append(b["valid"])
    model.train(was)
    return flow_metrics(torch.cat(preds), torch.cat(gts), torch.cat(valids))


def evaluation_updates(model: torch.nn.Module) -> int | None:
    """The recurrent updates :func:`evaluate_model` runs ``model`` with when given no ``iters``: its config's
    ``iters`` (SRFlowNet: the run's ``model.iters``, not ``train.iters`` and not the update count stored in a
    ``train.init_weights`` file; RAFT: ``raft.iters``), or None for a backbone without updates (LiteFlowNet2,
    ptlflow)."""
    n = getattr(getattr(model, "config", None), "iters", None)
    return int(n) if n else None


def evaluation_set(dataset, model: torch.nn.Module) -> dict:
    """What a run's scores on an evaluation ``dataset`` measure, as recorded in ``metrics.json`` (``val_set``,
    ``test_set``, ``val_generic_set``) and said in the run's log (:func:`describe_evaluation_set`).

    Args:
        dataset: a :class:`~flownet.data.synthetic_face.SyntheticFaceFlow` or
            :class:`~flownet.data.synthetic_generic.SyntheticGenericFlow` split.
        model: the network scored (for its update count, :func:`evaluation_updates`).

    Returns:
        ``{"split", "pairs", "size", "updates"}`` (size: side in pixels of the whole pairs scored, never cropped; the
        flow and its EPE are in pixels at that size; updates None: a backbone without updates), plus ``"subjects"``
        (the CASME II subjects of the pairs) for facial pairs or ``"scenes": "generic"`` for generic ones.
    """
    out = {"split": dataset.split, "pairs": len(dataset), "size": int(dataset.size),
           "updates": evaluation_updates(model)}
    subjects = getattr(dataset, "subjects", None)
    if subjects is not None:
        out["subjects"] = list(subjects)
    else:
        out["scenes"] = "generic"
    return out


def describe_evaluation_set(info: dict) -> str:
    """One phrase for an :func:`evaluation_set` record, e.g. ``48 pairs of sub05, sub22 (split val), whole 128x128
    pairs, 4 updates``."""
    who = f"of {', '.join(info['subjects'])}" if "subjects" in info else "of generic scenes"
    updates = "no recurrent updates" if info["updates"] is None else (
        f"{info['updates']} update{'s' if info['updates'] != 1 else ''}")
    return f"{info['pairs']} pairs {who} (split {info['split']}), whole {info['size']}x{info['size']} pairs, {updates}"


def watched_sets_line(name: str, watched: dict, test: dict, t: FlowTrainSection, size: int, from_init: bool,
                      recurrent: bool = True) -> str:
    """The log line a run prints before training: what its ``step N <name>`` evaluations score (``watched``, an
    :func:`evaluation_set` record; ``name`` is ``val``, or ``test`` when ``data.n_val_subjects`` is 0), against what
    its training batches are (``train.crop`` crops of the ``size`` pairs, ``train.iters`` updates, or with
    ``recurrent`` false "no recurrent updates": LiteFlowNet2, which does not read ``train.iters``), and that ``icegan
    flow eval`` scores the test subjects (``test``) at the weights' own update count. ``from_init``: a fresh run from
    ``train.init_weights`` also scores the initial weights as step 0 (when ``train.eval_every`` is on)."""
    crop = f"{t.crop}x{t.crop} crops" if t.crop else f"whole {size}x{size} pairs"
    step0 = "; step 0 = train.init_weights before any update" if from_init and t.eval_every else ""
    updates = " (the model config's iters)" if watched["updates"] else ""
    trained = f"{t.iters} updates (train.iters)" if recurrent else "no recurrent updates"
    return (f"{name} (the 'step N {name}' lines, TensorBoard '{name}/'): {describe_evaluation_set(watched)}{updates}"
            f"{step0}. Training batches: {crop}, {trained}. `icegan flow eval` scores the test "
            f"subjects ({', '.join(test['subjects'])}) at the weights' own update count: not these numbers")


#: the ``train`` keys a backbone's training does not read (LiteFlowNet2: no recurrent updates, so no ``train.iters``
#: and no γ of a sequence loss; its loss is the multi-scale one of its ``liteflownet2`` section), refused at a value
#: other than their default by :func:`check_unread_settings`
UNREAD_TRAIN_KEYS = {"liteflownet2": ("iters", "gamma")}


def check_unread_settings(cfg: FlowTrainConfig) -> None:
    """Refuse settings the backbone of ``cfg`` would silently ignore: any ``model.*`` key (SRFlowNet's section) at a
    value other than its :class:`~flownet.models.srflownet.SRFlowNetConfig` default when ``train.backbone`` is not
    srflownet (LiteFlowNet2, RAFT and ptlflow networks are set by their own ``liteflownet2`` / ``raft`` / ``ptlflow``
    sections), and the :data:`UNREAD_TRAIN_KEYS` of the backbone (LiteFlowNet2: ``train.iters``, ``train.gamma``) at
    a value other than the :class:`FlowTrainSection` default. Called by :func:`train` before the run folder is made.

    Raises:
        ValueError: names each such key with its value, the backbone, the section it reads instead and what to do
            (remove the key from the config and the overrides, or set it to the default named); an unknown
            ``train.backbone`` (:func:`trained_backbone`).
    """
    name = trained_backbone(cfg)
    now = {"model": _to_dict(cfg.model), "train": _to_dict(cfg.train)}
    default = {"model": _to_dict(SRFlowNetConfig()), "train": _to_dict(FlowTrainSection())}
    unread = [(f"{s}.{k}", now[s][k], default[s][k]) for s, k in _unread_keys(cfg, name) if now[s][k] != default[s][k]]
    if not unread:
        return
    section = backbone_section(name)
    why = ("it has no recurrent updates and trains with the multi-scale loss of its liteflownet2 section"
           if name == "liteflownet2" else f"its network is set by the {section} section")
    shown = ", ".join(f"{k}={v!r}" for k, v, _ in unread)
    defaults = ", ".join(f"{k}={d!r}" for k, _, d in unread)
    raise ValueError(f"{shown} {'is' if len(unread) == 1 else 'are'} not read by train.backbone={cfg.train.backbone} "
                     f"({why}): remove {'it' if len(unread) == 1 else 'them'} from the config and the overrides, or "
                     f"set {defaults}")


def time_budget_note(step: int, steps: int, elapsed_s: float, max_minutes: float,
                     option: str = "train.max_minutes") -> str | None:
    """The line a flow training loop prints when it ended on its wall-time budget before its step budget, else None.

    Args:
        step: optimiser steps done (of this run and the runs it resumed).
        steps: the step budget (``train.steps``; a self-supervised stage's ``train.teacher_steps`` ...).
        elapsed_s: training seconds so far, counted across resumes (the checkpoint's ``elapsed_s`` plus this run's).
        max_minutes: the wall-time budget in minutes (0: none, then never a note).
        option: the option that sets ``max_minutes``, named in the line.

    Returns:
        ``stopped at step N of M by <option> (X min used, counted across resumes); rerun with a larger <option> to
        train on`` when ``max_minutes`` is set, ``step < steps`` and ``elapsed_s`` reached it; also on a rerun whose
        budget was used already (it trains 0 steps). None otherwise.
    """
    if not max_minutes or step >= steps or elapsed_s < 60.0 * max_minutes:
        return None
    return (f"stopped at step {step} of {steps} by {option} ({elapsed_s / 60:.1f} min used, counted across resumes); "
            f"rerun with a larger {option} to train on")


def unread_setting_keys(cfg) -> set[str]:
    """The flat keys (``"model.iters"``, ``"train.gamma"``) of the settings the backbone of ``cfg`` does not read
    (:func:`check_unread_settings`): every ``model.*`` key when ``train.backbone`` is not srflownet, and its
    :data:`UNREAD_TRAIN_KEYS`. Empty for srflownet, and for a config without ``train.backbone`` and ``model``
    (the self-supervised and DecFlow trainers, which read all their sections) or with an unknown backbone (refused
    elsewhere, :func:`trained_backbone`)."""
    if not hasattr(getattr(cfg, "train", None), "backbone") or not hasattr(cfg, "model"):
        return set()
    try:
        name = trained_backbone(cfg)
    except ValueError:
        return set()
    return {f"{s}.{k}" for s, k in _unread_keys(cfg, name)}


#: the keys of each backbone's section that set its tensors' shapes, on which ``train.init_weights`` is compared with
#: the run's section (:func:`load_init_weights`); the others (LiteFlowNet2's loss weights and netc_init_gain, RAFT's
#: iters, ptlflow's multiple and bgr) set none, and weights saved with other values load. SRFlowNet's ``model``
#: section is compared on every key but ``iters`` (:func:`flownet.models.srflownet.architecture_differences`).
WEIGHT_SHAPING_KEYS = {"liteflownet2": ("netc_channels", "last_level", "corr_radius", "corr_stride"),
                       "raft": ("variant",), "ptlflow": ("name",)}


def backbone_section(name: str) -> str:
    """The config section that sets the network of backbone ``name`` (:func:`trained_backbone`): ``model``
    (srflownet), ``liteflownet2``, ``raft`` (raft_small / raft_large) or ``ptlflow`` (ptlflow:<name>)."""
    if name == "srflownet":
        return "model"
    return "ptlflow" if name.startswith("ptlflow:") else "raft" if name.startswith("raft") else name


def _unread_keys(cfg, name: str) -> list[tuple[str, str]]:
    """``(section, key)`` of the settings backbone ``name`` (:func:`trained_backbone`) does not read, in the config's
    order: none for srflownet, else every key of ``cfg.model`` and then the :data:`UNREAD_TRAIN_KEYS` of ``name``
    (read by :func:`check_unread_settings` and :func:`unread_setting_keys`)."""
    if name == "srflownet":
        return []
    return [("model", k) for k in _to_dict(cfg.model)] + [("train", k) for k in UNREAD_TRAIN_KEYS.get(name, ())]


def init_weights_file(value: str | Path, backbone: str = "srflownet") -> Path:
    """The file a ``train.init_weights`` value names: ``shipped:<name>`` → that shipped checkpoint of ``backbone``
    (:func:`flownet.registry.resolve_weights`, e.g. ``shipped:facial``), anything else a path (relative to the
    working directory), which must exist.

    Raises:
        FileNotFoundError: no such file; the message names the key and the path and says what to do: the
            ``git show`` command that writes it when the name is a shipped file pinned to a commit
            (``runs/srflownet_facial_0abdbed.pt``, as the configs/flow_srflownet_*.yaml recipes use), else another
            value (an existing file, the shipped checkpoints of ``backbone``, or null to train from scratch).
        ValueError: ``shipped:<name>`` that ``backbone`` does not ship (lists what it ships).
    """
    import re
    import shlex

    from .registry import SHIPPED_CHECKPOINTS, canonical_name, resolve_weights
    text = str(value)
    if text.startswith("shipped:"):
        try:
            return resolve_weights(text, backbone)
        except ValueError as exc:
            raise ValueError(f"train.init_weights={text}: {exc}") from None
    p = Path(value)
    if p.is_file():
        return p
    try:
        ships = SHIPPED_CHECKPOINTS.get(canonical_name(backbone), {})
    except ValueError:
        ships = {}
    shipped_files = {f for ckpts in SHIPPED_CHECKPOINTS.values() for f in ckpts.values()}
    m = re.fullmatch(r"(.+)_([0-9a-f]{7,40})\.pt", p.name)
    fixes = []
    if m and f"{m.group(1)}.pt" in shipped_files:
        get = f"git show {m.group(2)}:flownet/weights/{m.group(1)}.pt > {shlex.quote(str(p))}"
        if not p.parent.is_dir():
            get = f"mkdir -p {shlex.quote(str(p.parent))} && {get}"
        fixes.append(f"write it (the weights shipped at commit {m.group(2)}) from a git clone of icegan with "
                     f"`{get}`")
    fixes.append("set train.init_weights=<an existing weights file>")
    if ships:
        fixes.append(f"train.init_weights={' or '.join('shipped:' + k for k in ships)} (the weights shipped now)")
    fixes.append("train.init_weights=null to train from scratch")
    raise FileNotFoundError(f"train.init_weights: weights file not found: {p}; {', or '.join(fixes)}")


def load_init_weights(model: torch.nn.Module, path: str | Path, backbone: str = "srflownet") -> dict:
    """Copy the tensors of a weights file (``{"state_dict": ...}``, as saved by :mod:`flownet.registry`) into
    ``model`` (``train.init_weights``: fine-tune e.g. a self-supervised SRFlowNet on synthetic faces). ``path`` may
    be ``shipped:<name>``, a shipped checkpoint of ``backbone`` (:func:`init_weights_file`). Returns the file's
    ``meta`` (empty when it has none).

    Raises:
        FileNotFoundError: the file does not exist (the message says how to get it or what to set instead).
        ValueError: unreadable; a training checkpoint (names its run's weights.pt); weights of another format
            (DecFlow's, another backbone's) or of another architecture than ``model``, named as the self-supervised
            trainer names them (each differing key of the model's section with both values: for SRFlowNet every
            key but ``iters``, for the others their :data:`WEIGHT_SHAPING_KEYS`); or tensors that do not match
            ``model`` (names the file and the first mismatching keys).
    """
    from .registry import BACKBONE_FORMAT, WEIGHTS_FORMAT, backbone_name
    name = backbone_name(model)
    section = backbone_section(name)
    ck = load_state_dict_file(model, init_weights_file(path, backbone), "train.init_weights",
                              "the model of this config", plain=False,
                              fmt=WEIGHTS_FORMAT if name == "srflownet" else BACKBONE_FORMAT,
                              section=section, shaping=WEIGHT_SHAPING_KEYS.get(section))
    meta = ck.get("meta")                                   # ck is a dict with a state_dict (plain=False)
    return dict(meta) if isinstance(meta, dict) else {}


def weight_ema(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """Exponential moving average of ``model``'s parameters and buffers (``torch.optim.swa_utils``):
    after each optimizer step ``avg = decay * avg + (1 - decay) * weights``; ``.module`` is the averaged model.

    Why: at a fixed recipe the validation EPE of single iterates moves by about +-0.007 px from one evaluation to
    the next, while averaging two flip-mirrored flows of the same weights cuts it by 11 % (docs/benchmarks.md,
    "Seventh pass"), so a good part of the error is variance that an average of iterates can remove at no
    inference cost (Polyak averaging).

    Raises:
        ValueError: ``decay`` outside (0, 1).
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    if not 0.0 < decay < 1.0:
        raise ValueError(f"weight average decay must be in (0, 1), got {decay}")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _to_dict(cfg) -> dict:
    def conv(v):
        if isinstance(v, tuple):
            return list(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(asdict(cfg))


def check_intervals(t, crop: bool = False) -> None:
    """Refuse a training section's step intervals below their meaning, before any folder is made: ``log_every`` and
    ``ckpt_every`` >= 1 (0 would divide by zero at the first step), ``eval_every`` >= 0 (0 = off; a negative one
    would evaluate at every step) and, with ``crop``, ``crop`` >= 0 (a negative crop slices 0x0 pairs). Shared by
    the supervised, self-supervised and DecFlow trainers (flownet does not depend on :func:`icegan.config.check_ranges`,
    whose message this one matches).

    Raises:
        ValueError: ``train.<key> must be >= <least>, got <value>``, the first key out of range.
    """
    for key, least in ((("crop", 0),) if crop else ()) + (("log_every", 1), ("ckpt_every", 1), ("eval_every", 0)):
        if getattr(t, key) < least:
            raise ValueError(f"train.{key} must be >= {least}, got {getattr(t, key)}")


#: keys of a flow run's config that a resume may change (supervised, self-supervised, DecFlow): how long it trains, how
#: often it logs, evaluates and saves, where it runs and finds its data; any other key trains the same weights on
#: (the loss, the optimiser, the data, the seeds) or decides what ships (``train.keep_best``: the best weights of the
#: steps before the resume are kept only by a run that had it on), so a resume with another value is refused
#: (:func:`refuse_other_settings`)
RESUME_MAY_CHANGE = frozenset({
    "out_dir", "data.root", "data.landmark_cache", "data.preload", "train.steps", "train.max_minutes",
    "train.teacher_steps", "train.teacher_minutes", "train.student_steps", "train.student_minutes", "train.log_every",
    "train.eval_every", "train.ckpt_every", "train.device", "train.threads", "train.workers", "train.resume",
    "train.init_weights"})


def _flat(d: dict, prefix: str = "") -> dict:
    """``{"train.lr": 0.1, ...}`` of a nested config dict."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def refuse_other_settings(cfg, only: tuple[str, ...] | None = None) -> None:
    """Before a flow run resumes its ``last.pt`` (supervised :func:`train`, self-supervised
    :func:`flownet.selfsup.train_selfsup`, :func:`flownet.models.decflow.train_decflow`) and :func:`start_run`
    rewrites its ``config.yaml``: raise ValueError when that file (the settings the checkpoint was trained with)
    differs from ``cfg`` in a key outside :data:`RESUME_MAY_CHANGE`, naming the keys and both values; a resume then
    trained one model with two sets of settings, and the rewritten config.yaml claimed the second for all of it. A
    key missing from the file (added to icegan after the run began) counts as its default; no file, or one that
    cannot be read, is passed over (no file: nothing to compare with; an unreadable one with a warning); the
    checkpoint's own checks still apply. ``only``: compare just these flat keys (:func:`train` looks at
    ``("train.backbone",)`` before it loads the checkpoint's weights, which another backbone's would not fit; the
    full comparison follows, so this first look gives no warning of its own). Keys the backbone does not read (:func:`unread_setting_keys`) are not
    compared: they trained nothing (an old LiteFlowNet2 run's config.yaml may hold ``train.iters: 13``, which
    :func:`check_unread_settings` refuses)."""
    import yaml
    path = Path(cfg.out_dir) / cfg.name / "config.yaml"
    if not path.is_file():
        return
    try:
        old = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(old, dict):
            raise ValueError(f"not a mapping but {type(old).__name__}")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        if only is not None:                # warned by the full comparison
            return
        log.warning("%s cannot be read (%s); the settings of the run resumed are not compared with these", path,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return
    old, now, default = _flat(old), _flat(_to_dict(cfg)), _flat(_to_dict(type(cfg)()))
    unread = unread_setting_keys(cfg)
    diff = [(k, old.get(k, default.get(k)), v) for k, v in now.items()
            if k not in RESUME_MAY_CHANGE and k not in unread and (only is None or k in only)
            and old.get(k, default.get(k)) != v]
    if diff:
        shown = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in diff[:4])
        more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
        raise ValueError(f"{path.parent / 'last.pt'} was trained with other settings than these ({path}: {shown}"
                         f"{more}); resuming would train one model with both: resume with that run's settings, give "
                         f"another name= for a new run, or set train.resume=false to train this one afresh")


#: what a flow run writes that a fresh start (``train.resume=false``) removes before its ``config.yaml``: the
#: checkpoint a later run would resume, and the outputs of the run it replaces (self-supervised: ``teacher.pt``,
#: ``teacher_metrics.json``; ``ema_decay``: ``weights_raw.pt``); TensorBoard events (``tb/``) stay
OLD_RUN_FILES = ("last.pt", "teacher.pt", "teacher_metrics.json", "weights.pt", "weights_raw.pt", "metrics.json")


def remove_old_run(run: Path) -> list[str]:
    """Remove from the run folder ``run`` the files of :data:`OLD_RUN_FILES` that exist, ``last.pt`` first; returns
    their names. :func:`start_run` calls it for ``train.resume=false`` before it writes the new ``config.yaml``, so
    that a fresh run interrupted before its first checkpoint leaves no old ``last.pt`` for the next run to resume.

    Raises:
        OSError: a file that cannot be removed (the message names it); ``config.yaml`` is then not rewritten.
    """
    gone = []
    for name in OLD_RUN_FILES:
        path = run / name
        if path.is_file() or path.is_symlink():
            try:
                path.unlink()
            except OSError as exc:
                raise OSError(f"train.resume=false: cannot remove {path} of the run it replaces ({exc}); remove it "
                              f"by hand or give another name=") from None
            gone.append(name)
    return gone


def refuse_other_run_folder(run: Path) -> None:
    """Refuse the run folder ``run`` when it holds another kind of run: an icegan run's header
    (:data:`flownet.paths.RUN_HEADERS`: ``icegan loso`` / ``train.py``, an ensemble, ...) or a ``config.yaml`` that
    no flow training wrote (every flow trainer's, supervised, self-supervised and DecFlow, has a ``train`` section
    with ``ckpt_every``; an ``icegan gan train`` run's has ``checkpoint_every``), so that :func:`start_run` neither
    removes that run's ``metrics.json`` / ``weights.pt`` (``train.resume=false``) nor writes over them. A new, empty
    or flow training's folder passes.

    Raises:
        ValueError: the folder holds another run (the message names it and the file, and says to give another
            ``name=`` or ``out_dir=``, or, for a ``config.yaml`` that cannot be read or is no flow training's, to
            remove it if it is this flow run's, damaged: cut short or emptied).
    """
    import yaml

    from .paths import RUN_KINDS, run_folder_header
    what = "give this flow training another name= (or out_dir=)"
    header = run_folder_header(run)
    if header is not None:
        raise ValueError(f"{run} holds {RUN_KINDS[header.name]} ({header.name}), not a flow training run, whose "
                         f"files a flow training would replace: {what}")
    path = run / "config.yaml"
    if not path.is_file():
        return
    try:
        old = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:    # UnicodeDecodeError: a ValueError
        raise ValueError(f"{path} cannot be read ({type(exc).__name__}), so {run} may hold another run, whose files "
                         f"a flow training would replace: {what}, or remove that file") from None
    train_section = old.get("train") if isinstance(old, dict) else None
    if not (isinstance(train_section, dict) and "ckpt_every" in train_section):
        raise ValueError(f"{path} is not a flow training's config (no train.ckpt_every), so {run} holds another run, "
                         f"whose files a flow training would replace: {what}, or remove that file if it is this flow "
                         f"run's damaged config")


def start_run(cfg) -> tuple[torch.device, Path]:
    """Common start of the flow training commands: torch threads and seed from ``cfg.train`` (``threads``,
    ``seed``, ``device``), the run folder ``cfg.out_dir/cfg.name`` created (refused when it holds another kind of
    run: :func:`refuse_other_run_folder`), and with ``train.resume`` false the
    previous run's checkpoint and outputs removed from it (:func:`remove_old_run`, said in one line), then its
    resolved ``config.yaml`` written (whole or not at all). Returns ``(device, run folder)``.

    Raises:
        FileNotFoundError: no CASME II frames under ``cfg.data.root`` (:func:`~flownet.data.synthetic_face.list_subjects`),
            before any folder is made.
        ValueError: the run folder holds another kind of run (:func:`refuse_other_run_folder`), before any file is
            removed or written.
        OSError: an old run file that cannot be removed (:func:`remove_old_run`).
    """
    import yaml

    from .data.synthetic_face import list_subjects
    t = cfg.train
    device = resolve_device(t.device, "train.device")      # before any folder is made
    list_subjects(cfg.data.root)                            # likewise: a wrong data root leaves no run folder behind
    torch.set_num_threads(max(1, int(t.threads)))
    torch.manual_seed(t.seed)
    run = Path(cfg.out_dir) / cfg.name
    refuse_other_run_folder(run)
    run.mkdir(parents=True, exist_ok=True)
    if not t.resume:                # before config.yaml: no old last.pt may outlive it (a kill before 1st checkpoint)
        gone = remove_old_run(run)
        if gone:
            print(f"train.resume=false: removed {', '.join(gone)} of the previous run in {run}", flush=True)
    text = yaml.safe_dump(_to_dict(cfg), sort_keys=False)
    write_text_whole(run / "config.yaml", text)    # a kill while writing keeps the old one
    return device, run


def warn_igvar_scale(t: "FlowTrainSection") -> bool:
    """Log a warning (and return True) when ``t.regularizer`` is ``igvar`` at an ``image_scale`` where its variance
    term cannot act (:func:`flownet.regularizers.igvar_is_variance_free`: the base is e, IGVAR is exp(-G)-weighted
    smoothness)."""
    from .regularizers import igvar_is_variance_free
    if t.regularizer != "igvar" or not igvar_is_variance_free(t.image_scale):
        return False
    log.warning("train.regularizer=igvar at train.image_scale=%g: the gradient variance of images in [0, %g] stays "
                "below 100·e, so IGVAR's base is always e and it trains as exp(-G)-weighted smoothness "
                "(flownet/regularizers.py); set train.image_scale=255 for the 0-255 intensities its division by 100 "
                "assumes", t.image_scale, t.image_scale)
    return True


#: the entries of a supervised run's last.pt that a resume reads besides the model's weights
RESUME_KEYS = ("optimizer", "step")


def train(cfg: FlowTrainConfig, progress: bool = True) -> dict:
    """Run (or resume) training; returns the test metrics dict of the weights that ship (the last ones, or with
    ``train.keep_best`` those of lowest validation EPE).

    Raises:
        ValueError: unknown regularizer or bad sizes (from the loss / dataset); ``train.keep_best`` without a
            validation set (``data.n_val_subjects`` 0) or without step evaluations (``train.eval_every`` 0); fewer
            training pairs than a batch; ``train.steps`` < 1; ``data.n_test`` < 1, or ``data.n_val`` < 1 with
            validation subjects (refused before the run folder is made); a resume whose settings differ from its
            checkpoint's (among them ``train.keep_best`` turned on or off); settings ``train.backbone`` does not read
            (:func:`check_unread_settings`, before the run folder).
        FileNotFoundError: no CASME II frames under the data root.
    """
    from torch.utils.data import DataLoader
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from .data.synthetic_face import SyntheticFaceFlow
    from .data.synthetic_generic import SyntheticGenericFlow
    from .registry import save_weights

    t = cfg.train
    from .regularizers import REGULARIZERS
    if t.regularizer not in REGULARIZERS:
        raise ValueError(f"train.regularizer must be one of {list(REGULARIZERS)}, got '{t.regularizer}'")
    # one throwaway model for the checks below (init weights, a resumed checkpoint), built before the run folder is
    # made: a train.backbone or model setting that builds no network (an unknown name, ptlflow not installed, an even
    # kernel) is refused with the folder left as it was; start_run seeds torch after it, so the trained model's
    # initialisation is the same
    check_unread_settings(cfg)
    probe = build_model(cfg)
    ckpt_path = Path(cfg.out_dir) / cfg.name / "last.pt"
    init = None
    if t.init_weights and not (t.resume and ckpt_path.is_file()):
        init = init_weights_file(t.init_weights, t.backbone)    # a missing file fails before any data is made
    warn_igvar_scale(t)
    d = cfg.data
    # settings checked before start_run writes the run's config.yaml: a refused run leaves its folder as it was
    if not 0.0 <= t.ema_decay < 1.0:
        raise ValueError(f"train.ema_decay must be in [0, 1) (0 = off), got {t.ema_decay}")
    if not 0.0 <= d.generic_fraction <= 1.0:
        raise ValueError(f"data.generic_fraction must be in [0, 1], got {d.generic_fraction}")
    if d.n_generic_val < 0:
        raise ValueError(f"data.n_generic_val must be >= 0, got {d.n_generic_val}")
    # scored sets without a pair: the run trained all its steps, then died in its evaluation before weights.pt
    if d.n_test < 1:
        raise ValueError(f"data.n_test must be >= 1 (the test pairs the shipped weights are scored on), got {d.n_test}")
    if d.n_val_subjects and d.n_val < 1:
        raise ValueError(f"data.n_val must be >= 1 when data.n_val_subjects={d.n_val_subjects} (the validation pairs "
                         f"monitored during training), got {d.n_val}; or set data.n_val_subjects=0")
    if t.workers < 0:
        raise ValueError(f"train.workers must be >= 0, got {t.workers}")
    if t.steps < 1:                 # the LR schedule needs a step budget (flownet.schedule counts 0 as 1 step)
        raise ValueError(f"train.steps must be >= 1, got {t.steps}: 0 steps would train nothing and ship untrained "
                         f"weights. Set a step budget; with train.max_minutes the run stops at whichever ends first "
                         f"(for a wall-time budget alone, set train.steps above what fits, as the configs do)")
    check_intervals(t, crop=True)
    if t.crop > d.size:                     # the pairs are data.size square (the crop check of each batch, early)
        raise ValueError(f"train.crop={t.crop} is larger than the pairs ({d.size}x{d.size}, data.size)")
    if t.keep_best and not d.n_val_subjects:
        raise ValueError("train.keep_best=true needs a validation set, but data.n_val_subjects=0: the step evaluations "
                         "then score the test subjects, and choosing the weights on them would leak the test set; set "
                         "data.n_val_subjects (e.g. 2) or train.keep_best=false")
    if t.keep_best and not t.eval_every:
        raise ValueError("train.keep_best=true chooses among the step evaluations, but train.eval_every=0 makes none; "
                         "set train.eval_every > 0 or train.keep_best=false")
    StepShuffle(d.n_train, t.batch_size, t.seed)    # refuses pairs that hold no whole batch (an endless wait before)
    resume = t.resume and ckpt_path.is_file()
    init_state = init_meta = None
    if init is not None:                    # tensors of another architecture: refused before the run folder
        # read once, here: with train.resume=false start_run removes the run folder's old weights, which may be the
        # file train.init_weights names (a fine-tune of this run's own weights.pt)
        init_meta = load_init_weights(probe, init)
        init_state = {k: v.detach().clone() for k, v in probe.state_dict().items()}
    ck = None                               # read and checked once, before start_run rewrites the run's config.yaml
    seen_by_init: list[str] = []            # for a checkpoint written before last.pt recorded real_pair_subjects
    if resume:
        # another backbone's checkpoint: named by its recorded train.backbone, not by the weight keys it misses
        refuse_other_settings(cfg, only=("train.backbone",))
        ck = load_resume_checkpoint(ckpt_path, probe, RESUME_KEYS)
        if t.ema_decay and "ema" not in ck:
            raise ValueError(f"{ckpt_path}: train.ema_decay={t.ema_decay} but the checkpoint was written without "
                             f"a weight average; resume with train.ema_decay=0 or start a new run (another name)")
        if t.keep_best and "best" not in ck:    # its best weights so far are not known: the choice would differ
            raise ValueError(f"{ckpt_path}: train.keep_best=true but the checkpoint was written without it (no best "
                             f"weights so far); resume with train.keep_best=false or start a new run (another name)")
        if t.keep_best and ck["best"] is not None:
            from .models.state_dict import load_state_dict_strict
            load_state_dict_strict(probe, ck["best"].get("state_dict"), f"{ckpt_path} (its best weights, best)",
                                   "the model this run's config describes")
        if "real_pair_subjects" not in ck and t.init_weights:      # its init weights' record, as at the start
            seen_by_init = list(load_init_weights(probe, init_weights_file(t.init_weights, t.backbone), t.backbone)
                                .get("real_pair_subjects") or [])
        refuse_other_settings(cfg)
    device, run = start_run(cfg)

    common = dataset_kwargs(d)
    train_ds = SyntheticFaceFlow(split="train", n_pairs=d.n_train, frames_per_clip=d.frames_per_clip,
                                 extra_faces=d.extra_faces, hflip=d.hflip, photometric=d.photometric, **common)
    generic = dict(size=d.size, seed=d.seed, max_motion=d.generic_max_motion, gray=d.gray)
    if d.generic_fraction > 0:
        train_ds = MixedFlow(train_ds, SyntheticGenericFlow(split="train", n_pairs=d.n_train, **generic),
                             d.generic_fraction, d.seed)
    # the evaluation pairs are fixed (seeded per index): built once as batches, not again at every evaluation
    test_ds = SyntheticFaceFlow(split="test", n_pairs=d.n_test, **common)
    test_loader = evaluation_batches(test_ds)
    # what is watched during training: the validation subjects if any, else (as before) the test set
    mon_name, mon_loader, mon_ds = "test", test_loader, test_ds
    if d.n_val_subjects:
        mon_name = "val"
        mon_ds = SyntheticFaceFlow(split="val", n_pairs=d.n_val, **common)
        mon_loader = evaluation_batches(mon_ds)
    generic_loader = generic_ds = None
    if d.n_generic_val:
        generic_ds = SyntheticGenericFlow(split="val", n_pairs=d.n_generic_val, **generic)
        generic_loader = evaluation_batches(generic_ds)

    model = build_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    step, elapsed0 = 0, 0.0
    # CASME II subjects whose real frames trained the initial weights (self-supervised ones): these weights have seen
    # that motion too, and say so (meta real_pair_subjects, read by icegan.pipeline.real_motion_seen)
    real_pair_subjects: list[str] = []
    if init is not None:
        model.load_state_dict(init_state)   # the init file's tensors, read (and checked) before start_run
        real_pair_subjects = list(init_meta.get("real_pair_subjects") or [])
        print(f"initialised from {t.init_weights}" + (f" ({init})" if str(init) != str(t.init_weights) else ""))
    ema = weight_ema(model, t.ema_decay) if t.ema_decay else None
    shipped = model if ema is None else ema.module   # the weights that ship (the average, when there is one)
    shipped_as = "raw" if ema is None else "ema"      # ... as evaluate() names them
    # train.keep_best: {"step", "val_EPE", "state_dict" (on the CPU)} of the shipped weights of lowest validation EPE
    best = ck.get("best") if ck is not None and t.keep_best else None
    # train.keep_best: the step 0 validation EPE of train.init_weights (no candidate; compared at the end), or None
    init_epe = ck.get("init_val_EPE") if ck is not None and t.keep_best else None
    if ck is not None:
        model.load_state_dict(ck["model"])         # checked above against a model of this same config
        opt.load_state_dict(ck["optimizer"])
        step, elapsed0 = int(ck["step"]), float(ck.get("elapsed_s", 0.0))
        real_pair_subjects = list(ck["real_pair_subjects"] or []) if "real_pair_subjects" in ck else seen_by_init
        if ema is not None:
            ema.load_state_dict(ck["ema"])         # present: checked above
        print(f"resumed {ckpt_path} at step {step}")
    # what the run's evaluation numbers score, said once in the log and kept in metrics.json: whole pairs of the
    # held-out subjects at the model's own update count, unlike the training batches (crops, train.iters), and not the
    # test pairs icegan flow eval scores (other subjects, the weights' update count)
    sets = {"test_set": evaluation_set(test_ds, model)}
    if d.n_val_subjects:
        sets["val_set"] = evaluation_set(mon_ds, model)
    if generic_ds is not None:
        sets["val_generic_set"] = evaluation_set(generic_ds, model)
    recurrent = not isinstance(model, LiteFlowNet2)     # LiteFlowNet2 reads no train.iters (check_unread_settings)
    print(watched_sets_line(mon_name, sets[f"{mon_name}_set"], sets["test_set"], t, d.size,
                            from_init=init is not None and ck is None, recurrent=recurrent), flush=True)

    saved_at = [None]           # the step last written to last.pt (the final save skips a repeat of a step budget's)
    evaluated: dict = {}        # (set, weights) -> (step, metrics) of the last evaluation

    def save_ckpt(again: bool = False):
        """Write last.pt, unless it holds this step already; ``again``: rewrite it anyway (its ``elapsed_s`` then
        is the time now, not that of the step's checkpoint)."""
        if saved_at[0] == step and not again:
            return
        ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
              "elapsed_s": elapsed0 + time.time() - start, "real_pair_subjects": real_pair_subjects}
        if ema is not None:
            ck["ema"] = ema.state_dict()
        if t.keep_best:
            ck["best"] = best
            if init_epe is not None:
                ck["init_val_EPE"] = init_epe
        save_torch_file(ck, ckpt_path)
        saved_at[0] = step

    def evaluate(name: str, loader, weights: str) -> dict:
        """Metrics of the raw or averaged weights on one evaluation set, computed once per step (a run that ends
        on an eval_every step reuses that evaluation for its final metrics)."""
        hit = evaluated.get((name, weights))
        if hit is not None and hit[0] == step:
            return hit[1]
        m = evaluate_model(model if weights == "raw" else ema.module, loader, device)
        evaluated[(name, weights)] = (step, m)
        return m

    def keep_if_best() -> None:
        """train.keep_best: keep the shipped weights when their validation EPE at this step (evaluated already) is
        the lowest so far (the earliest of equal ones; a non-finite EPE only when no finite one was seen)."""
        nonlocal best
        epe = evaluate("val", mon_loader, shipped_as)["EPE"]
        rank = (0, epe) if math.isfinite(epe) else (1, 0.0)
        if best is not None:
            was = best["val_EPE"]
            if rank >= ((0, was) if math.isfinite(was) else (1, 0.0)):
                return
        best = {"step": step, "val_EPE": epe,
                "state_dict": {k: v.detach().to("cpu", copy=True) for k, v in shipped.state_dict().items()}}

    def progress_frac() -> float:
        """Fraction of the budget used: steps, or wall time when max_minutes is set (whichever is larger)."""
        return budget_fraction(step, t.steps, elapsed0 + time.time() - start, t.max_minutes)

    def set_lr() -> float:
        return apply_one_cycle(opt, t.lr, progress_frac())

    writer = SummaryWriter(str(run / "tb"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed pair size: let cuDNN pick its fastest convolutions once
    # the order of the pairs from this step on, as a run never interrupted reads them (StepShuffle); the generator
    # only seeds the workers (the pairs are seeded per index) and keeps the loader off torch's global random state
    order = StepShuffle(len(train_ds), t.batch_size, t.seed, step)
    loader = DataLoader(train_ds, batch_size=t.batch_size, sampler=order, collate_fn=collate, drop_last=True,
                        generator=torch.Generator().manual_seed(t.seed + step), num_workers=t.workers,
                        persistent_workers=t.workers > 0, pin_memory=device.type == "cuda",
                        prefetch_factor=4 if t.workers else None)

    def report(name: str, loader, weights: str = "raw") -> None:
        """Evaluate the ``weights`` (``raw``, or ``ema``: the weight average) on one set now and log it (TensorBoard
        ``<tag>/<metric>``, ``<tag>_ema/<metric>`` for the average; a ``step N`` line)."""
        m = evaluate(name, loader, weights)
        tag = "val_generic" if name == "generic" else name
        average = weights == "ema"
        for k, v in m.items():
            writer.add_scalar(f"{tag}{'_ema' if average else ''}/{k}", v, step)
        print(f"step {step} {tag}{' (weight average)' if average else ''} {json.dumps(m)}", flush=True)

    if init is not None and ck is None and t.eval_every:
        # the starting point of a fine-tune, before its first update (and before its clock starts): the first
        # eval_every evaluation already scores weights the fine-tune has moved
        report(mon_name, mon_loader)
        if generic_loader is not None:
            report("generic", generic_loader)
        if t.keep_best:
            init_epe = evaluate("val", mon_loader, "raw")["EPE"]    # just reported: read back, not run again
    model.train()
    start = time.time()
    set_lr()
    bar = tqdm(total=t.steps, initial=step, disable=not progress, desc=f"train {cfg.name}")
    # the budget, not the step count: a run that ended on train.max_minutes and is run again trains no more (its
    # last.pt records an elapsed time at or past the budget)
    if progress_frac() < 1.0:
        for b in loader:                # endless (StepShuffle): left when the budget is used
            b = random_crop(b, t.crop, t.seed, step)   # the corners of this step (the same after a resume)
            loss, parts, final = training_loss(model, b, t, device, cfg.liteflownet2, logs_as_floats=False)
            # one device-to-host copy: the logs, the loss for the finiteness check, the batch's number of valid flow
            # values and, on a logging step, the final flow's EPE (of this forward pass; the update does not change it)
            log_step = (step + 1) % t.log_every == 0
            read = host_values({**parts, "_loss": loss.detach(), **({"_epe": flow_magnitude(
                final.detach() - b["flow"].to(device)).mean()} if log_step else {})})
            if read.pop("valid_values", None) == 0:
                raise ValueError(NO_VALID_PIXEL)
            loss_value, epe = read.pop("_loss"), read.pop("_epe", None)
            parts = read
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"non-finite loss at step {step}: {parts}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip)
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            lr_now = set_lr()
            bar.update(1)
            if step % t.log_every == 0:
                writer.add_scalar("train/loss", loss_value, step)
                writer.add_scalar("train/epe_loss", parts["epe_loss"], step)
                writer.add_scalar("train/reg_loss", parts["reg_loss"], step)
                writer.add_scalar("train/epe", epe, step)
                writer.add_scalar("train/lr", lr_now, step)
                bar.set_postfix(loss=f"{loss_value:.3f}", epe=f"{epe:.3f}")
                print(f"step {step} loss {loss_value:.4f} epe {epe:.4f} reg {parts['reg_loss']:.4f} "
                      f"elapsed {elapsed0 + time.time() - start:.0f}s", flush=True)     # across resumes
            if t.eval_every and step % t.eval_every == 0:
                report(mon_name, mon_loader)
                if generic_loader is not None:
                    report("generic", generic_loader)
                if ema is not None:
                    report(mon_name, mon_loader, "ema")
                if t.keep_best:
                    keep_if_best()
            if step % t.ckpt_every == 0:        # after the evaluation: its time counts in elapsed_s on resume
                save_ckpt()
            if progress_frac() >= 1.0:
                break
    bar.close()
    # a wall-time budget: rewrite the step's checkpoint, written just before the budget was found used, so that it
    # records the time the run stopped at (else a rerun resumed below the budget and trained on)
    save_ckpt(again=bool(t.max_minutes))
    note = time_budget_note(step, t.steps, elapsed0 + time.time() - start, t.max_minutes)
    if note:                    # cut short by the wall time (this run, or one before a rerun that trained 0 steps)
        print(note, flush=True)
    if ema is not None:  # the raw weights are kept beside the average, which is what ships
        save_weights(model, run / "weights_raw.pt", meta={"name": cfg.name, "steps": step, "size": d.size,
                                                          "gray": bool(d.gray),
                                                          "weight_average": False,
                                                          **({"real_pair_subjects": real_pair_subjects}
                                                             if real_pair_subjects else {})})
    kept = {}
    if t.keep_best:                     # the last weights are a candidate too; last.pt keeps them for a resume
        final_epe = evaluate("val", mon_loader, shipped_as)["EPE"]
        keep_if_best()
        kept = {"step": best["step"], "val_EPE": best["val_EPE"], "final_step": step, "final_val_EPE": final_epe}
        if init_epe is not None:
            kept["init_val_EPE"] = init_epe
        shipped.load_state_dict(best["state_dict"])
        evaluated.clear()               # the evaluations so far are of the last weights
        print(f"train.keep_best: weights.pt holds the weights of step {kept['step']} (validation EPE "
              f"{kept['val_EPE']:.4f}); the last step {step} had {final_epe:.4f}", flush=True)
    if init_epe is not None and math.isfinite(init_epe) and not init_epe >= kept["val_EPE"]:
        note_init_beat_fine_tune = (f"note: the initial weights (train.init_weights, step 0) scored val EPE "
                                    f"{init_epe:.4f}, lower than every trained step's (best {kept['val_EPE']:.4f} at "
                                    f"step {kept['step']}): the fine-tune did not beat its start; weights.pt holds "
                                    f"step {kept['step']} as train.keep_best chooses among trained steps")
    else:
        note_init_beat_fine_tune = None
    metrics = evaluate("test", test_loader, shipped_as)
    model = shipped
    meta = {"name": cfg.name, "backbone": cfg.train.backbone, "steps": step, "regularizer": t.regularizer,
            "train_iters": t.iters if recurrent else None, "train_crop": t.crop, "size": d.size, "gray": bool(d.gray),
            "weight_average": t.ema_decay or False,
            "test_metrics": metrics, "minutes": round((elapsed0 + time.time() - start) / 60, 1), **sets}
    if kept:
        meta["kept_best"] = kept
    if real_pair_subjects:
        meta["real_pair_subjects"] = real_pair_subjects
    which = f"kept (step {kept['step']})" if kept else "final"
    if d.n_val_subjects:
        meta["val_metrics"] = evaluate("val", mon_loader, shipped_as)
        print(f"{which} val metrics ({d.n_val} pairs, pooled over valid pixels): "
              f"{json.dumps(meta['val_metrics'])}")
    if generic_loader is not None:
        meta["val_generic_metrics"] = evaluate("generic", generic_loader, shipped_as)
        print(f"{which} generic val metrics ({d.n_generic_val} pairs, pooled over valid pixels): "
              f"{json.dumps(meta['val_generic_metrics'])}")
    save_weights(model, run / "weights.pt", meta=meta)
    write_text_whole(run / "metrics.json", json.dumps(meta, indent=2))  # never left cut short
    writer.close()
    # pooled (evaluate_model): `icegan flow eval` heads its table with the mean over pairs, a different number
    print(f"{which} test metrics ({d.n_test} pairs, pooled over valid pixels): {json.dumps(metrics)}")
    if note_init_beat_fine_tune:
        print(note_init_beat_fine_tune, flush=True)
    return metrics
