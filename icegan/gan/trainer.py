"""ICE-GAN training: configuration, the alternating G/D loop, checkpoints with resume.

Source: ``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Section III-C (Eq. 4-8) and IV-B
(λ_adv 0.1, λ_mes 1, λ_mer 1, α 0.1, β 5e-4, Adam(0.9, 0.999), lr 1e-3 with cosine decay,
batch 16, 100 epochs, 128×128 grayscale).

One step on a batch of real pairs ``(onset, apex, c)``:

* the generator makes ``fake = G(onset, z, c)`` for the true class and, when
  ``loss.counterfactual > 0``, ``fake' = G(onset, z', c')`` for a random *other* class ``c' ≠ c``
  (no real apex exists for it, so it is trained by the adversarial, ExpCaps and perceptual terms
  only; this is what teaches G to follow ``c``);
* D step: ``λ_adv·L_gan(D) + λ_mer·L_cls(D)`` with ``L_cls`` = margin loss of ExpCaps on the real
  apexes + β·MSE of their reconstruction (L_gan(D)'s synthetic terms: one mean over ``fake`` and ``fake'``);
* G step: ``λ_adv·L_gan(G) + λ_mes·L_ip + g_cls·L_margin(ExpCaps(fake), c)``
  (+ ``loss.counterfactual·(λ_adv·L_gan(G) + g_cls·L_margin(ExpCaps(fake'), c'))``) ``+ extra_loss_fn(...)``,
  with ``L_ip = L1(fake, apex) + α·L_per`` (Eq. 4). L_per is one batch mean over the fakes of both branches, so
  with ``loss.counterfactual > 0`` the perceptual term weighs ``fake`` and ``fake'`` by ``λ_mes·α/2`` each: the
  true-class fakes get α/2 (0.05), not the paper's α = 0.1, and ``loss.counterfactual`` does not weight this term
  (any value > 0 gives the same). With ``loss.counterfactual = 0`` there is no ``fake'`` and ``fake`` gets α.
  Using D's ExpCaps on synthetic faces in G's loss is the auxiliary-classifier GAN practice the
  paper's multi-task discriminator implies; Eq. 8 lists L_cls under D only. With
  ``loss.mode_seeking > 0`` a second draw ``G(onset, z'', c)`` joins the generator pass and
  ``mode_seeking · diversity_hinge(fake, fake'')`` is added (our addition: z otherwise gets ignored).

Deterministic for a seed on CPU: shuffling and noise use ``torch.Generator`` objects seeded per
epoch, so resuming from a checkpoint at an epoch boundary continues the same sequence.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

import torch
from torch import Tensor, nn

from flownet.devices import resolve_device
from icegan.config import check_ranges, from_dict, to_dict
from icegan.data.prepare import PrepareConfig
from icegan.models.discriminator import CapsuleDiscriminator
from icegan.models.generator import Generator
from icegan.models.capsules import margin_loss
from icegan import distributed
from .losses import (adversarial_d_loss, adversarial_g_loss, classification_loss, diversity_hinge,
                     identity_preserving_loss)
from .perceptual import build_perceptual, vgg16_weights_file

__all__ = ["GanDataConfig", "GanModelConfig", "GanLossConfig", "GanTrainConfig", "GanConfig", "GanState",
           "build_models", "amp_policy", "train_gan", "save_checkpoint", "load_checkpoint", "resolve_device", "sample_grid",
           "untrained_classes", "class_pair_counts", "gan_precision"]

_logger = logging.getLogger(__name__)


@dataclass
class GanDataConfig:
    """Pairs to train on. ``source``: ``manifest`` (the cropped CASME II copy in ``root``, a folder with the
    project's manifest.csv; None → shared data; :func:`icegan.gan.pairs.load_casme2_pairs`) or ``prepared`` (the
    faces preprocessing makes of the datasets in ``prepare``, any of CASME II, SAMM, SMIC or a clip list in its
    official layout, raw or cropped: :func:`icegan.gan.pairs.load_prepared_pairs`, at ``img_size`` pixels in gray
    whatever ``prepare.size`` and ``prepare.color`` say: ``icegan gan train`` refuses other values given,
    :func:`icegan.data.prepare.refuse_replaced_prepare`; ``root`` unused);
    ``img_size`` pixels; ``apex_neighbors`` k (pairs onset with apex±1..k too; ≤ 2 when prepared);
    ``holdout_subjects`` are never trained on (a LOSO fold's test subject, or an evaluation split; ``sub01`` means
    ``casme2/sub01``, other datasets' subjects are written with their prefix, ``samm/006``);
    ``train_subjects`` None = every other subject."""
    root: Optional[str] = None
    img_size: int = 128
    apex_neighbors: int = 2
    holdout_subjects: list[str] = field(default_factory=list)
    train_subjects: Optional[list[str]] = None
    source: Literal["manifest", "prepared"] = "manifest"
    prepare: PrepareConfig = field(default_factory=PrepareConfig)

    def __post_init__(self):
        if self.source == "prepared" and not self.prepare.datasets:
            raise ValueError("data.source=prepared needs data.prepare.datasets (the keys of the shipped "
                             "prepare_casme2.yaml: `icegan configs prepare_casme2`), e.g. "
                             "data.prepare.datasets=[{name: casme2, root: DIR, mode: raw}]")
        check_ranges(self, "data", at_least={"img_size": 0, "apex_neighbors": 0})


@dataclass
class GanModelConfig:
    """Generator and discriminator sizes (paper values by default, except channel widths).
    ``skip``: generator skip path (``grm`` | ``plain`` | ``se``, Table III ablation); ``residual_output``:
    see :class:`icegan.models.generator.Generator` (True here: not in the paper).

    Motion options (our additions, off by default = the paper's model; reasons in the module
    docstrings of :mod:`icegan.models.generator`, :mod:`icegan.models.discriminator`,
    :mod:`icegan.gan.motion`): ``motion_head`` — G warps the onset by a class-conditional flow;
    ``motion_prior`` — how :func:`train_gan` fills that flow's per-class prior from the training
    pairs (``tvl1`` | ``farneback`` class-mean flow, ``none`` = zeros, learned from scratch);
    ``motion_prior_symmetric`` — average the prior with its mirror image (consistent with
    ``train.hflip``); ``d_motion_input`` — D also sees ``d_motion_gain·(image − onset)``.
    ``classes``: the names of the ``n_classes`` classes in id order (:mod:`icegan.labels`; the main job writes its
    ``data.labels`` set's), kept in the checkpoint for ``icegan generate``; empty: unnamed (a checkpoint of
    ``icegan gan train``, MEGC2019's three, or one written before the names were kept:
    :func:`icegan.labels.label_set_of_size`)."""
    z_dim: int = 100
    id_dim: int = 320
    n_classes: int = 3
    classes: list[str] = field(default_factory=list)
    g_base_channels: int = 32
    g_max_channels: int = 256
    grm_nodes: int = 8
    skip: Literal["grm", "plain", "se"] = "grm"
    residual_output: bool = True
    d_base_channels: int = 64
    n_primary: int = 8
    d_primary: int = 16
    d_adv: int = 256
    d_exp: int = 32
    routing_iters: int = 3
    motion_head: bool = False
    motion_prior: Literal["none", "tvl1", "farneback"] = "none"
    motion_prior_symmetric: bool = True
    d_motion_input: bool = False
    d_motion_gain: float = 10.0

    def __post_init__(self):
        check_ranges(self, "model", at_least={"z_dim": 1, "id_dim": 1, "n_classes": 2, "g_base_channels": 1,
                                              "g_max_channels": 1, "grm_nodes": 1, "d_base_channels": 1, "n_primary": 1,
                                              "d_primary": 1, "d_adv": 1, "d_exp": 1, "routing_iters": 1},
                     non_negative=("d_motion_gain",))
        if self.classes and len(self.classes) != self.n_classes:
            raise ValueError(f"model.classes names {len(self.classes)} classes ({', '.join(self.classes)}) but "
                             f"model.n_classes is {self.n_classes}; give one name per class, or none")

    def class_names(self) -> tuple[str, ...]:
        """The names of the classes the generator is conditioned on, in id order: ``classes`` when the config names
        them, else those of the label set of ``n_classes`` classes of a checkpoint written before the names were
        kept (:func:`icegan.labels.label_set_of_size`).

        Raises:
            ValueError: unnamed, and no such label set has ``n_classes`` classes.
        """
        from icegan.labels import label_set_of_size
        return tuple(self.classes) or label_set_of_size(self.n_classes).classes


@dataclass
class GanLossConfig:
    """Loss weights (Eq. 4-8). ``perceptual``: cost network (``embedding`` offline default, ``vgg16``
    from the local torch cache or ``vgg_weights``, ``none``); ``counterfactual``: weight of the
    random-other-class branch's adversarial and ExpCaps terms in G's loss (0 disables the branch); it does not
    weight the perceptual term: any value > 0 puts both branches' fakes into one L_per mean, so each branch's fakes
    get α/2 (the true-class fakes α/2 instead of Eq. 4's α; α with 0); ``g_cls``: weight of the ExpCaps margin loss
    of synthetic faces towards their requested class in G's loss (auxiliary-classifier term, not in Eq. 8);
    ``mode_seeking``: weight of :func:`icegan.gan.losses.diversity_hinge` between the true-class branch and a
    second noise draw of it (0 disables; our addition), ``mode_seeking_target`` its τ."""
    lambda_adv: float = 0.1
    lambda_mes: float = 1.0
    lambda_mer: float = 1.0
    alpha: float = 0.1
    beta: float = 5e-4
    m_pos: float = 0.9
    m_neg: float = 0.1
    lam: float = 0.5
    perceptual: Literal["embedding", "vgg16", "none"] = "embedding"
    vgg_weights: Optional[str] = None
    counterfactual: float = 1.0
    g_cls: float = 0.1
    mode_seeking: float = 0.0
    mode_seeking_target: float = 0.01

    def __post_init__(self):
        check_ranges(self, "loss", non_negative=("lambda_adv", "lambda_mes", "lambda_mer", "alpha", "beta", "m_pos",
                                                 "m_neg", "lam", "counterfactual", "g_cls", "mode_seeking",
                                                 "mode_seeking_target"))


@dataclass
class GanTrainConfig:
    """Optimisation. ``device``: auto|cpu|cuda|cuda:N; ``amp``: mixed precision (autocast) on CUDA;
    ``amp_dtype``: auto|bf16|fp16 (auto: bf16 where the GPU supports it, else fp16 with a gradient
    scaler; on CPU autocast runs only when ``amp_dtype`` is bf16 explicitly: see :func:`amp_policy`);
    ``sample_every``/``checkpoint_every`` in epochs; ``max_minutes``: stop after the epoch that
    passes this wall-clock budget (None or 0 = no limit, as flow training's ``train.max_minutes``), counted
    across resumes (the checkpoint keeps the training seconds so far, ``elapsed_s``);
    ``num_threads``: torch CPU threads (None = keep)."""
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-3
    lr_d: Optional[float] = None
    beta1: float = 0.9
    beta2: float = 0.999
    cosine: bool = True
    seed: int = 0
    hflip: bool = True
    amp: bool = True
    amp_dtype: Literal["auto", "bf16", "fp16"] = "auto"
    device: str = "auto"
    sample_every: int = 5
    checkpoint_every: int = 1
    resume: bool = True
    max_minutes: Optional[float] = None
    num_threads: Optional[int] = None
    progress: bool = True

    def __post_init__(self):
        check_ranges(self, "train", at_least={"epochs": 1, "batch_size": 1, "sample_every": 0, "checkpoint_every": 0,
                                              "num_threads": 0},
                     positive=("lr", "lr_d"), non_negative=("max_minutes",), unit_interval=("beta1", "beta2"),
                     seeds=("seed",))


def apply_num_threads(tc: GanTrainConfig) -> int:
    """Set torch's CPU thread count to ``tc.num_threads`` (None or 0: keep the environment's) and return the count
    then in force: the one :func:`train_gan` trains with, recorded once as ``torch_threads`` by its checkpoints and
    by ``icegan gan train``'s ``split.json`` (the weights' last bits depend on it)."""
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    return torch.get_num_threads()


def amp_policy(device: torch.device, amp: bool, amp_dtype: str = "auto",
               bf16_supported: bool = False) -> tuple[bool, torch.dtype, bool]:
    """Decide mixed precision for :func:`train_gan`: ``(autocast on, autocast dtype, GradScaler on)``.

    * CUDA, ``amp`` true: ``auto`` → bfloat16 when ``bf16_supported`` (Ampere and later), else float16;
      ``bf16`` / ``fp16`` force the type. float16 gets a gradient scaler (its range underflows small
      gradients); bfloat16 has float32's exponent range and needs none.
    * CPU: off unless ``amp_dtype`` is ``bf16`` (float16 is refused on the CPU here). Measured on this
      project's 2-core CPU: 1.29× faster GAN steps (docs/benchmarks.md, "Scale and speed"), effect on
      training quality not measured, so it is opt-in. ``fp16`` on CPU is rejected.
    * ``amp`` false: float32 everywhere, whatever ``amp_dtype`` (``fp16`` on CPU included).

    Raises:
        ValueError: ``amp_dtype`` not one of auto|bf16|fp16, or fp16 asked for on CPU with ``amp`` true.
    """
    if amp_dtype not in ("auto", "bf16", "fp16"):
        raise ValueError(f"train.amp_dtype must be auto, bf16 or fp16, got {amp_dtype!r}")
    if not amp:
        return False, torch.float32, False
    if device.type == "cuda":
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
            amp_dtype, torch.bfloat16 if bf16_supported else torch.float16)
        return True, dtype, dtype == torch.float16
    if amp_dtype == "fp16":
        raise ValueError("train.amp_dtype=fp16 needs a CUDA device; on CPU use bf16 or auto (= off)")
    if amp_dtype == "bf16":
        return True, torch.bfloat16, False
    return False, torch.float32, False


def gan_precision(device: torch.device, tc: "GanTrainConfig") -> dict:
    """The precision :func:`train_gan` trains in on ``device`` with ``tc``'s ``amp`` / ``amp_dtype``
    (:func:`amp_policy`, bf16 where ``device`` runs it natively: :func:`flownet.registry.native_bf16`), as recorded in
    its checkpoints and ``icegan gan train``'s ``split.json``: ``{"autocast": bool, "dtype": "float32" | "bfloat16" |
    "float16" (autocast's; float32 when off), "scaler": bool (float16's gradient scaler)}``: what ran, not what was
    asked. On a CPU, ``train.amp=true`` with ``train.amp_dtype=bf16``: ``{"autocast": true, "dtype": "bfloat16",
    "scaler": false}``; with ``auto``: ``{"autocast": false, "dtype": "float32", "scaler": false}``, as
    ``train.amp=false`` is with any ``amp_dtype`` (``fp16`` included).

    Raises:
        ValueError: ``train.amp=true`` with ``train.amp_dtype=fp16`` on a CPU, or an ``amp_dtype`` not auto|bf16|fp16,
            even with ``train.amp=false`` (:func:`amp_policy`).
    """
    return _amp_and_precision(device, tc)[1]


def _amp_and_precision(device: torch.device, tc: "GanTrainConfig") -> tuple[tuple[bool, torch.dtype, bool], dict]:
    """:func:`amp_policy`'s ``(autocast on, autocast dtype, GradScaler on)`` on ``device`` with ``tc``'s ``amp`` /
    ``amp_dtype`` (bf16 where ``device`` runs it natively), and the :func:`gan_precision` record made from it: what
    :func:`train_gan` trains with and what it records. Raises as :func:`gan_precision`."""
    from flownet.registry import native_bf16
    on, dtype, scaler = amp_policy(device, tc.amp, tc.amp_dtype,
                                   bf16_supported=device.type == "cuda" and native_bf16(device))   # not emulation (T4)
    return (on, dtype, scaler), {"autocast": on, "dtype": str(dtype).removeprefix("torch."), "scaler": scaler}


def _precision_words(p: dict) -> str:
    """A :func:`gan_precision` record in words: ``float32 (no autocast)``, ``bfloat16 autocast``, ``float16 autocast
    with a gradient scaler``."""
    if not p.get("autocast"):
        return "float32 (no autocast)"
    return f"{p.get('dtype')} autocast" + (" with a gradient scaler" if p.get("scaler") else "")


@dataclass
class GanConfig:
    """``icegan gan train`` configuration (``configs/gan_casme2.yaml``); runs go to ``out_dir/name``."""
    name: str = "gan_casme2"
    out_dir: str = "runs"
    data: GanDataConfig = field(default_factory=GanDataConfig)
    model: GanModelConfig = field(default_factory=GanModelConfig)
    loss: GanLossConfig = field(default_factory=GanLossConfig)
    train: GanTrainConfig = field(default_factory=GanTrainConfig)


@dataclass
class GanState:
    """Result of :func:`train_gan`: the models (in eval mode), per-epoch mean losses/accuracies, epochs done, and
    whether ``train.max_minutes`` (counted across resumes) stopped it before ``train.epochs`` (``stopped_by_time``)."""
    generator: Generator
    discriminator: CapsuleDiscriminator
    history: list[dict] = field(default_factory=list)
    epochs_done: int = 0
    stopped_by_time: bool = False


def build_models(cfg: GanConfig) -> tuple[Generator, CapsuleDiscriminator]:
    """Fresh generator and discriminator for ``cfg`` (seeded by ``cfg.train.seed``).

    Raises:
        ValueError: ``model.motion_prior`` other than ``none`` without ``model.motion_head``.
    """
    m, s = cfg.model, cfg.data.img_size
    if m.motion_prior != "none" and not m.motion_head:
        raise ValueError(f"model.motion_prior={m.motion_prior!r} needs model.motion_head=true "
                         f"(the prior is the flow the motion head warps the onset with)")
    torch.manual_seed(cfg.train.seed)
    g = Generator(img_size=s, in_channels=1, z_dim=m.z_dim, n_classes=m.n_classes, id_dim=m.id_dim,
                  base_channels=m.g_base_channels, max_channels=m.g_max_channels, grm_nodes=m.grm_nodes,
                  skip=m.skip, residual_output=m.residual_output, motion_head=m.motion_head)
    d = CapsuleDiscriminator(img_size=s, in_channels=1, n_classes=m.n_classes, base_channels=m.d_base_channels,
                             n_primary=m.n_primary, d_primary=m.d_primary, d_adv=m.d_adv, d_exp=m.d_exp,
                             routing_iters=m.routing_iters, motion_input=m.d_motion_input,
                             motion_gain=m.d_motion_gain)
    return g, d


def training_pairs_sha256(onset: Tensor, apex: Tensor, labels: Tensor) -> str:
    """SHA-256 of the training pairs (onset and apex pixels as float32, labels as int64, with their shapes): what a
    checkpoint records so that a resumed run continues only on the pairs it started on (:func:`train_gan`)."""
    import hashlib
    h = hashlib.sha256()
    for t, dtype in ((onset, torch.float32), (apex, torch.float32), (labels, torch.int64)):
        a = t.detach().to("cpu", dtype).contiguous().numpy()
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class GanCheckpointError(ValueError):
    """A GAN checkpoint to resume that cannot be resumed: unreadable (damaged, cut short), not a checkpoint, trained
    on other pairs or with other model settings. The message names the file and what to do."""


#: what to do about a checkpoint :func:`train_gan` cannot resume (in ``icegan gan train`` :func:`check_resumable`,
#: with that command's own advice, refuses it first; in the main job it is a fold's ``gan/checkpoints/last.pt``)
RESUME_ADVICE = "remove it (or use another output folder) to start afresh"

#: ``icegan gan train``'s advice (:func:`check_resumable`): that command has ``train.resume``
GAN_TRAIN_ADVICE = "train into a new output folder, or set train.resume=false to start this one afresh"


def _refuse_other_pairs(ckpt: Path, payload: object, data_sha256: str, advice: str = RESUME_ADVICE) -> None:
    """Raise :class:`GanCheckpointError` when the checkpoint to resume records other training pairs than
    ``data_sha256`` (one written before checkpoints recorded them is taken as it is), or is not a checkpoint at all;
    ``advice``: what to do, in the message."""
    if not isinstance(payload, dict):
        raise GanCheckpointError(f"{ckpt} is not an ICE-GAN checkpoint (written by icegan gan train); {advice}")
    if payload.get("data_sha256") not in (None, data_sha256):
        # continuing would hand back a model that has seen other pairs: e.g. the faces of subjects now held out
        raise GanCheckpointError(f"{ckpt} was trained on other training pairs than these (another data section, e.g. "
                                 f"other holdout_subjects, or changed frames or labels); resuming would continue a "
                                 f"model that has seen other data. {advice[0].upper()}{advice[1:]}")


def _read_resume(ckpt: Path, label: str) -> object:
    """The checkpoint ``ckpt`` read for a resume (:func:`flownet.models.state_dict.read_torch_file`), a file torch
    cannot read raised as :class:`GanCheckpointError` (``label`` names its role and what to do)."""
    from flownet.models.state_dict import read_torch_file
    try:
        return read_torch_file(ckpt, label, weights_only=False)
    except ValueError as exc:
        raise GanCheckpointError(str(exc)) from None


#: keys of ``icegan gan train``'s config a resume may change; another value of any other is refused (check_resumable)
RESUME_MAY_CHANGE = ("name", "out_dir", "data.", "loss.vgg_weights", "train.epochs", "train.max_minutes",
                     "train.device", "train.progress", "train.sample_every", "train.checkpoint_every", "train.resume")

#: the keys that choose a GAN run's precision; a checkpoint that records the precision that ran (``precision``:
#: :func:`gan_precision`) is compared by that record instead (:func:`_refuse_other_precision`), so that these may change
#: when the precision does not (train.amp=false on a CPU, which runs float32 either way)
PRECISION_KEYS = ("train.amp", "train.amp_dtype")


def _refuse_other_settings(ckpt: Path, payload: dict, cfg: GanConfig) -> None:
    """Raise :class:`GanCheckpointError` when the config recorded in the checkpoint differs from ``cfg`` in a key
    outside :data:`RESUME_MAY_CHANGE` (the model, loss and optimisation settings, the seed), naming the keys and both
    values; a key the checkpoint lacks (added after it was written) counts as its default. The
    :data:`PRECISION_KEYS` are left to :func:`_refuse_other_precision` where the checkpoint records its precision."""
    from icegan.config import ABSENT, config_differences
    saved = payload.get("config")
    if not isinstance(saved, dict):             # a checkpoint written before it recorded its config
        return
    # a checkpoint written before it recorded its precision: its amp keys are compared as written (as then)
    free = RESUME_MAY_CHANGE + (PRECISION_KEYS if "precision" in payload else ())
    default = {k: b for k, _, b in config_differences({}, to_dict(GanConfig()))}
    diff = [(k, a, b) for k, a, b in config_differences(saved, to_dict(cfg))
            if not k.startswith(free) and not (a is ABSENT and default.get(k, ABSENT) == b)
            and b is not ABSENT]
    if diff:
        shown = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in diff[:4])
        more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
        raise GanCheckpointError(f"{ckpt} was trained with other settings than these ({shown}{more}); resuming would "
                                 f"train one GAN with both: resume with its settings, or {GAN_TRAIN_ADVICE}")


def _refuse_other_precision(ckpt: Path, payload: dict, now: dict, device: torch.device, tc: "GanTrainConfig",
                            advice: str = RESUME_ADVICE) -> None:
    """Raise :class:`GanCheckpointError` when the checkpoint to resume records another precision (``precision``:
    :func:`gan_precision`) than ``now``, the one this run would train in (e.g. a CPU run resumed on a GPU, where the
    same train.amp=true turns autocast on); the message names both, ``device`` (resolved: ``auto`` as it resolved
    here), ``tc``'s amp keys and ``advice``. A checkpoint written before it recorded its precision is not checked
    here: :func:`_refuse_other_settings` compares its amp keys as written, as it did then. Nor is a checkpoint with
    no epochs left to train (its epoch at or above ``tc.epochs``): a finished GAN (a LOSO fold's, resumed on another
    device) only has its models loaded, in no precision."""
    if int(payload.get("epoch", 0)) >= tc.epochs:
        return
    was = payload.get("precision")
    if isinstance(was, dict) and was != now:
        raise GanCheckpointError(f"{ckpt} was trained in {_precision_words(was)}, and this run would train in "
                                 f"{_precision_words(now)} (on {device}, with train.amp={tc.amp}, "
                                 f"train.amp_dtype={tc.amp_dtype}); resuming would train one GAN in both: resume on "
                                 f"a device and with amp settings that train in {_precision_words(was)}, or {advice}")


def check_resumable(out_dir: str | Path, cfg: GanConfig, onset: Tensor, apex: Tensor, labels: Tensor) -> object:
    """Before anything is written to ``out_dir``: raise :class:`GanCheckpointError` (a ValueError) when
    :func:`train_gan` would refuse to resume its ``checkpoints/last.pt`` (trained on other pairs or with other model
    settings, or, where epochs remain to train, in another precision than ``cfg.train`` gives on its device:
    :func:`_refuse_other_precision`), or
    when that file cannot be read (empty, cut short: named, with what to do). No checkpoint, or
    ``train.resume=false``: nothing to check. A checkpoint of more epochs than ``train.epochs`` is refused too (a
    resume cannot shorten a run). Returns the checkpoint read (for ``train_gan(resume_payload=...)``, which
    then does not read the file again), or None."""
    ckpt = Path(out_dir) / "checkpoints" / "last.pt"
    if cfg.train.resume and ckpt.is_file():
        payload = _read_resume(ckpt, "the checkpoint to resume (train.resume=true; remove it, or set "
                                     "train.resume=false, to train afresh)")
        _refuse_other_pairs(ckpt, payload, training_pairs_sha256(onset, apex, labels), GAN_TRAIN_ADVICE)
        # the settings first: a changed model width names its key and both values, not the tensor shapes it changes
        _refuse_other_settings(ckpt, payload, cfg)
        dev = resolve_device(cfg.train.device, "train.device")
        _refuse_other_precision(ckpt, payload, gan_precision(dev, cfg.train), dev, cfg.train, GAN_TRAIN_ADVICE)
        _load_models(ckpt, payload, *build_models(cfg), advice=GAN_TRAIN_ADVICE)
        _refuse_fewer_epochs(ckpt, payload, cfg.train.epochs, GAN_TRAIN_ADVICE)
        return payload
    return None


def _refuse_fewer_epochs(ckpt: Path, payload: dict, epochs: int, advice: str = RESUME_ADVICE) -> None:
    """Raise :class:`GanCheckpointError` when the checkpoint to resume has trained more epochs than ``epochs`` (the
    new ``train.epochs``): nothing would be trained, and the run folder's config.yaml would record the shorter
    length beside a model of the longer one. The message names the file, its epoch, ``epochs`` and ``advice`` (what
    else to do). Called by :func:`check_resumable` and by :func:`train_gan`'s resume (the main job's fold GANs)."""
    done = int(payload.get("epoch", 0))
    if done > epochs:
        raise GanCheckpointError(f"{ckpt} has trained {done} epochs, more than train.epochs={epochs}; a resume "
                                 f"cannot shorten a run: resume with train.epochs={done} or more, or {advice}")


def _load_models(ckpt: Path, payload: dict, g: nn.Module, d: nn.Module, advice: str = RESUME_ADVICE) -> None:
    """Load a checkpoint's generator and discriminator into ``g`` and ``d`` strictly: :class:`GanCheckpointError`
    naming the file and ``advice`` when its weights do not fit (the run's GAN model settings changed since it was
    written). ``payload`` is a dict: both callers refuse anything else first (:func:`_refuse_other_pairs`)."""
    from flownet.models.state_dict import load_state_dict_strict
    for key, net in (("generator", g), ("discriminator", d)):
        try:
            load_state_dict_strict(net, payload.get(key), str(ckpt),
                                   f"the {key} this run's config describes (the run was started with other GAN "
                                   f"model settings: resume with those, or {advice})")
        except ValueError as exc:
            raise GanCheckpointError(str(exc)) from None


def _on_cpu(obj):
    """``obj`` (nested dicts, lists, tuples) with every tensor copied to the CPU (sent between processes)."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def _share_resume_state(start_epoch: int, history: list[dict], opt_g, opt_d, sched_g, sched_d,
                        scaler) -> tuple[int, list[dict]]:
    """Under ``torchrun``: rank 0's epoch, history, optimiser, scheduler and gradient-scaler states on every process.
    Only rank 0 is given the fold's folder, so only it reads a ``last.pt`` to resume; the others started at epoch 0,
    ran more epochs than rank 0 and waited on collectives it never made. Returns ``(start_epoch, history)``."""
    scheds = (sched_g, sched_d) if sched_g is not None else ()
    state = distributed.broadcast_object(_on_cpu({
        "epoch": start_epoch, "history": history, "opt": [opt_g.state_dict(), opt_d.state_dict()],
        "sched": [s.state_dict() for s in scheds], "scaler": scaler.state_dict() if scaler.is_enabled() else None}))
    if not distributed.is_main():
        for o, sd in zip((opt_g, opt_d), state["opt"]):
            o.load_state_dict(sd)           # moved onto the parameters' device by torch
        for s, sd in zip(scheds, state["sched"]):
            s.load_state_dict(sd)
        if state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
    return int(state["epoch"]), list(state["history"])


def save_checkpoint(path: str | Path, cfg: GanConfig, g: nn.Module, d: nn.Module, epoch: int,
                    history: list[dict], opt_g=None, opt_d=None, sched_g=None, sched_d=None,
                    data_sha256: str | None = None, scaler=None, elapsed_s: float | None = None,
                    class_pairs: list[int] | None = None, torch_threads: int | None = None,
                    precision: dict | None = None) -> Path:
    """Write models, optimisers, schedulers, epoch, history, the resolved config, (when given) the training pairs'
    :func:`training_pairs_sha256` and (when enabled: float16 on a GPU) the gradient scaler's state, whose loss scale
    a resumed run keeps instead of starting again at 65536 and skipping steps, (when given) ``elapsed_s``, the
    training seconds so far across resumes (what ``train.max_minutes`` counts), and (when given) ``class_pairs``, the
    number of training pairs of each class id (a 0 is a class the generator never saw: :func:`untrained_classes`),
    and (when given) ``torch_threads``, the CPU thread count the training ran with (the weights' last bits depend on
    it), and (when given) ``precision``, the precision the training ran in (:func:`gan_precision`: a resume compares
    it), to ``path`` (atomic)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": "icegan-gan-v1", "config": to_dict(cfg), "epoch": epoch, "history": history,
               "generator": g.state_dict(), "discriminator": d.state_dict()}
    if data_sha256 is not None:
        payload["data_sha256"] = data_sha256
    if elapsed_s is not None:
        payload["elapsed_s"] = float(elapsed_s)
    if class_pairs is not None:
        payload["class_pairs"] = [int(n) for n in class_pairs]
    if torch_threads is not None:
        payload["torch_threads"] = int(torch_threads)
    if precision is not None:
        payload["precision"] = dict(precision)
    for k, o in (("opt_g", opt_g), ("opt_d", opt_d), ("sched_g", sched_g), ("sched_d", sched_d)):
        if o is not None:
            payload[k] = o.state_dict()
    if scaler is not None and scaler.is_enabled():
        payload["scaler"] = scaler.state_dict()
    from flownet.models.state_dict import save_torch_file
    return save_torch_file(payload, p)          # a kill while saving keeps the previous checkpoint whole


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"):
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns:
        ``(generator, discriminator, cfg: GanConfig, payload: dict)``; models on ``device`` in eval mode.
    Raises:
        FileNotFoundError: no such file; ValueError: not an ICE-GAN checkpoint, one without its config or models, or
            one whose weights do not fit the models its own config describes (a hand-edited config, a damaged file);
            every message names the file.
    """
    from flownet.models.state_dict import load_state_dict_strict, read_torch_file
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    payload = read_torch_file(p, "ICE-GAN checkpoint", weights_only=False)   # holds its config: the project's own file
    if not isinstance(payload, dict) or payload.get("format") != "icegan-gan-v1":
        raise ValueError(f"{p} is not an ICE-GAN checkpoint (written by icegan gan train)")
    lacking = [k for k in ("config", "generator", "discriminator") if k not in payload]
    if lacking or not isinstance(payload["config"], dict):
        raise ValueError(f"{p}: an ICE-GAN checkpoint without {lacking or 'a config section'}; it cannot be "
                         f"rebuilt (a damaged or hand-made file): use a checkpoint icegan gan train wrote")
    model_cfg = payload["config"].get("model", {})
    if "use_grm" in model_cfg:  # checkpoints written before `skip` replaced `use_grm`
        model_cfg["skip"] = "grm" if model_cfg.pop("use_grm") else "plain"
    cfg = from_dict(GanConfig, payload["config"], source=str(p))
    g, d = build_models(cfg)
    load_state_dict_strict(g, payload["generator"], str(p), "the generator its config describes")
    load_state_dict_strict(d, payload["discriminator"], str(p), "the discriminator its config describes")
    dev = resolve_device(device)
    return g.to(dev).eval(), d.to(dev).eval(), cfg, payload


def class_pair_counts(labels: Tensor, k: int) -> list[int]:
    """The number of training pairs of each class id 0..k-1 (a 0: a class the generator never sees), as the checkpoint
    records it (``class_pairs``, :func:`untrained_classes`) and ``icegan gan train``'s split.json shows it by name.

    Args:
        labels: (N,) integer class ids in [0, k) (any device; :func:`train_gan` checks them).
        k: the number of classes.
    Returns:
        ``k`` counts, e.g. ``[1, 3, 0]`` for labels ``[1, 0, 1, 1]`` and ``k=3``.
    """
    return torch.bincount(labels.long().cpu(), minlength=k).tolist()


def untrained_classes(payload: dict) -> tuple[list[int], list[int]] | None:
    """The classes a checkpoint's generator had no training pair of, from the per-class counts ``class_pairs`` that
    :func:`train_gan` records (its conditioning on them was never trained on an example: with a motion prior, their
    prior stays zero).

    Args:
        payload: a checkpoint as :func:`load_checkpoint` returns it.
    Returns:
        ``(class ids without a training pair, the training pairs of every class id)``, e.g. ``([2], [2, 2, 0])``;
        None for a checkpoint written before the counts were recorded (nothing known).
    """
    counts = payload.get("class_pairs")
    if counts is None:
        return None
    counts = [int(n) for n in counts]
    return [c for c, n in enumerate(counts) if n == 0], counts


@torch.no_grad()
def sample_grid(g: Generator, onset: Tensor, apex: Tensor, seed: int = 0) -> Tensor:
    """Image grid (3, H', W') in [0, 1]: one row per onset: onset | real apex | G(onset, z, c) for every class c."""
    from torchvision.utils import make_grid
    was = g.training
    g.eval()
    dev = next(g.parameters()).device
    onset, apex = onset.to(dev), apex.to(dev)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(onset.shape[0], g.z_dim, generator=gen).to(dev)
    cols = [onset, apex] + [g(onset, z, torch.full((onset.shape[0],), k, dtype=torch.long, device=dev))
                            for k in range(g.n_classes)]
    tiles = torch.stack(cols, dim=1).flatten(0, 1)                      # row-major: per onset, its columns
    g.train(was)
    return make_grid((tiles.float().cpu() + 1) / 2, nrow=len(cols), padding=2, pad_value=1.0)


ExtraLoss = Callable[[Generator, Tensor, Tensor, Tensor, Tensor], Tensor]


def _continue_cosine(sched, opt, t_max: int, epoch: int) -> None:
    """A resumed cosine schedule on a run of another length (``train.epochs`` may change on resume,
    :data:`RESUME_MAY_CHANGE`): ``sched``'s ``T_max`` becomes ``t_max`` and each of ``opt``'s groups takes the
    closed-form cosine lr of epoch ``epoch`` (0-based, the next to train), ``eta_min + (base_lr - eta_min) ·
    (1 + cos(π · epoch / t_max)) / 2``, so the remaining epochs follow the schedule of a straight ``t_max``-epoch run
    (equal up to float rounding). A schedule of the same length is left untouched (a resume stays bit-identical)."""
    if sched.T_max == t_max:
        return
    sched.T_max = t_max
    for group, base in zip(opt.param_groups, sched.base_lrs):
        group["lr"] = sched.eta_min + (base - sched.eta_min) * (1 + math.cos(math.pi * min(epoch, t_max) / t_max)) / 2
    sched._last_lr = [group["lr"] for group in opt.param_groups]


def _check_finite(loss: Tensor | float, which: str, epoch: int, step: int, ckpt: Path | None,
                  autocast_dtype: torch.dtype | None = None) -> None:
    """Stop training before a non-finite loss reaches the weights (the last checkpoint stays good).
    ``loss``: the loss tensor, or its value already copied to the host.
    ``autocast_dtype``: the mixed precision the loss was computed under (None: float32); the message then says how
    to rule it out (float16 holds values up to 65504 only: a growing activation overflows there first)."""
    value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)   # one device-to-host copy
    if not math.isfinite(value):
        kept = f"the last good checkpoint is kept at {ckpt}" if ckpt is not None and ckpt.is_file() \
            else "no checkpoint was written yet"
        amp = ""
        if autocast_dtype is not None:
            name = str(autocast_dtype).replace("torch.", "")
            amp = (f"It was computed in mixed precision ({name}, train.amp=true"
                   + ("; float16 overflows beyond 65504" if autocast_dtype == torch.float16 else "")
                   + "): to train in float32, start a new run with train.amp=false (icegan gan train: another "
                     "name or out_dir) or gan.amp=false (train.py: another --out), or ")
        raise FloatingPointError(
            f"ICE-GAN {which} loss is non-finite ({value}) at epoch {epoch + 1}, step {step + 1}; "
            f"training stopped before the update, {kept}. {amp}{'l' if amp else 'L'}ower the learning rate or check "
            f"the inputs (and extra_loss_fn) for NaN/Inf.")


def train_gan(onset: Tensor, apex: Tensor, labels: Tensor, cfg: GanConfig, device: str | torch.device | None = None,
              out_dir: str | Path | None = None, log=None, extra_loss_fn: ExtraLoss | None = None,
              init: tuple[Generator, CapsuleDiscriminator] | None = None,
              log_level: int = logging.INFO,
              prior_flows: Tensor | Callable[[], Tensor] | None = None,
              resume_payload: object | None = None, final_optimiser_states: bool = True) -> GanState:
    """Train ICE-GAN on real pairs.

    Args:
        onset, apex: (N, 1, H, W) float in [-1, 1], H = W = ``cfg.data.img_size``.
        labels: (N,) int64 class ids in [0, n_classes).
        cfg: :class:`GanConfig` (``cfg.train`` and ``cfg.loss`` are used; ``cfg.data`` only for img_size).
        device: overrides ``cfg.train.device`` when given.
        out_dir: where ``checkpoints/last.pt`` and ``samples/epoch_XXX.png`` go; None writes nothing.
            With ``cfg.train.resume`` an existing ``last.pt`` there is continued, if it was trained on these same
            pairs (:func:`training_pairs_sha256`); with another ``train.epochs`` than it was trained for, the cosine
            lr of the remaining epochs is that of a straight run of the new length. ``train.max_minutes`` and the
            history's ``seconds`` count the resumed runs' training time too (the checkpoint's ``elapsed_s``; 0 for a
            checkpoint written before it was kept).
        log: a ``torch.utils.tensorboard.SummaryWriter`` (every loss term, capsule accuracies,
            lr, sample grids) or None. One step axis, the batch step (0-based, over every epoch): losses and
            accuracies at each batch's, the epoch's lr and sample grid at its last batch's.
        extra_loss_fn: ``f(G, onset, z, c, fake) → scalar`` added to the generator loss each step
            (e.g. a recognizer's cross-entropy through optical flow of (onset, fake)); it receives the
            true-class branch (``c`` (B,) long ids) and must be differentiable w.r.t. ``fake``. It is called inside
            the generator step's autocast block (``train.amp`` on a GPU): a loss that must run in float32 disables
            autocast itself, as the main job's joint loss does.
        init: start from these models instead of fresh ones (e.g. a pretrained G for joint training).
        log_level: level of this function's progress messages (one line per epoch with its losses, accuracies and
            lr; the motion prior; a resumed checkpoint). The main job, which trains a GAN in every fold, passes
            ``logging.DEBUG`` and sends the same values to ``log``, so its console keeps the fold progress bar.
        prior_flows: (N, 2, H, W) classical flows onset → apex of these pairs in pixels
            (:func:`icegan.gan.motion.pair_flows` with ``cfg.model.motion_prior``), for the motion prior instead of
            computing them here, or a function without arguments that returns them; the main job computes every
            clip's once per run and passes each fold a function that picks its rows. The function is called only
            when the prior is computed: not when the training resumes from a checkpoint, which holds the prior.
        resume_payload: ``out_dir``'s ``last.pt`` as :func:`check_resumable` returned it (read once, not again
            here); checked against these pairs and models as a file read here is.
        final_optimiser_states: False writes the checkpoint of the last epoch (``train.epochs`` reached) without
            the Adam states (``opt_g``, ``opt_d``: two thirds of the file, 26 of 39 MB at the shipped widths); the
            main job sets it, whose finished fold never trains again and whose readers (``icegan gan eval`` /
            ``generate``, a fold scored again, which resumes at its last epoch) need the models alone. Checkpoints
            of earlier epochs (``checkpoint_every``, ``max_minutes``) keep them. True (``icegan gan train``): kept.
    Returns:
        :class:`GanState` with models in eval mode on ``device``.
    Raises:
        ValueError: shapes/labels inconsistent with the config (message says which). GanCheckpointError (a
            ValueError): a ``last.pt`` to resume that torch cannot read, or trained on other pairs or with other model
            settings, or for more epochs than ``train.epochs`` (a resume cannot shorten a run), or without optimiser
            states (a finished main-job fold's) while epochs are left to train (named, with what to do).
        FloatingPointError: a non-finite generator or discriminator loss (raised before that update;
            the last epoch checkpoint in ``out_dir`` is left as it was).
        FileNotFoundError: ``loss.perceptual=vgg16`` without its weights file (named with ``loss.vgg_weights``).
    """
    tc, lc = cfg.train, cfg.loss
    s = cfg.data.img_size
    n = onset.shape[0]
    if onset.shape != apex.shape or onset.dim() != 4 or onset.shape[1:] != (1, s, s):
        raise ValueError(f"train_gan: onset {tuple(onset.shape)} and apex {tuple(apex.shape)} must both be (N, 1, {s}, {s})")
    if labels.shape != (n,):
        raise ValueError(f"train_gan: labels must be ({n},), got {tuple(labels.shape)}")
    if n == 0:
        raise ValueError("train_gan: no training pairs")
    k = cfg.model.n_classes
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise ValueError(f"train_gan: labels must be in [0, {k}), got {sorted(set(labels.tolist()))}")
    threads = apply_num_threads(tc)     # read once: a count changed during training is not the one trained with
    dev = resolve_device(device if device is not None else tc.device, "device" if device is not None else "train.device")
    g, d = init if init is not None else build_models(cfg)
    g, d = g.to(dev), d.to(dev)
    if lc.perceptual == "vgg16":        # named by the config key, not by VGGPerceptual's Python argument
        vgg16_weights_file(lc.vgg_weights, "loss.vgg_weights")
    perceptual = build_perceptual(lc.perceptual, lc.vgg_weights)
    if isinstance(perceptual, nn.Module):
        perceptual = perceptual.to(dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=tc.lr_d or tc.lr, betas=(tc.beta1, tc.beta2))
    if tc.cosine:
        sched_g = torch.optim.lr_scheduler.CosineAnnealingLR(opt_g, T_max=max(1, tc.epochs))
        sched_d = torch.optim.lr_scheduler.CosineAnnealingLR(opt_d, T_max=max(1, tc.epochs))
    else:
        sched_g = sched_d = None
    from flownet.devices import host_values
    # what runs, and its record (in the checkpoints: a resume compares it)
    (use_amp, amp_dtype, use_scaler), precision = _amp_and_precision(dev, tc)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    out = Path(out_dir) if out_dir is not None else None
    ckpt = out / "checkpoints" / "last.pt" if out else None
    history: list[dict] = []
    start_epoch = 0
    elapsed0 = 0.0                  # training seconds of the runs this one resumes (train.max_minutes counts them)
    stopped_by_time = False
    data_sha256 = training_pairs_sha256(onset, apex, labels) if ckpt is not None else None
    class_pairs = class_pair_counts(labels, k)                  # a 0: a class G never saw
    if ckpt is not None and tc.resume and ckpt.is_file():
        # a damaged file (a disk error, a copy cut short) named, not an unpickling error deep in torch
        payload = resume_payload if resume_payload is not None else \
            _read_resume(ckpt, f"the GAN checkpoint to resume ({RESUME_ADVICE})")
        _refuse_other_pairs(ckpt, payload, data_sha256)
        _refuse_fewer_epochs(ckpt, payload, tc.epochs)      # else nothing trained, the longer model handed back
        _refuse_other_precision(ckpt, payload, precision, dev, tc)  # e.g. the same "cuda" on a GPU without bf16
        has_opt = "opt_g" in payload and "opt_d" in payload
        if not has_opt and int(payload["epoch"]) < tc.epochs:
            raise GanCheckpointError(f"{ckpt} holds no optimiser states (a main-job fold's checkpoint keeps its models "
                                     f"alone once the fold's GAN is trained): it cannot continue training to "
                                     f"train.epochs={tc.epochs} from epoch {int(payload['epoch'])}; {RESUME_ADVICE}")
        _load_models(ckpt, payload, g, d)
        if has_opt:                     # else no epoch is left to train: the models are all that is needed
            opt_g.load_state_dict(payload["opt_g"])
            opt_d.load_state_dict(payload["opt_d"])
        if sched_g is not None and "sched_g" in payload:
            sched_g.load_state_dict(payload["sched_g"])
            sched_d.load_state_dict(payload["sched_d"])
            for sched, opt in ((sched_g, opt_g), (sched_d, opt_d)):
                _continue_cosine(sched, opt, max(1, tc.epochs), int(payload["epoch"]))
        if scaler.is_enabled() and "scaler" in payload:
            scaler.load_state_dict(payload["scaler"])
        start_epoch, history = int(payload["epoch"]), list(payload["history"])
        elapsed0 = float(payload.get("elapsed_s", 0.0))     # 0: a checkpoint written before it was kept
        _logger.log(log_level, "resumed %s at epoch %d", ckpt, start_epoch)

    distributed.broadcast_module(g)    # every process starts from rank 0's models (resumed or fresh)
    distributed.broadcast_module(d)
    if distributed.is_distributed():   # and from its epoch and training state: only rank 0 has out_dir's last.pt
        start_epoch, history = _share_resume_state(start_epoch, history, opt_g, opt_d, sched_g, sched_d, scaler)
    onset_c, apex_c, labels_c = onset.float().cpu(), apex.float().cpu(), labels.long().cpu()
    mc = cfg.model
    if getattr(g, "motion_head", False) and mc.motion_prior != "none" and start_epoch == 0 \
            and not bool(g.motion_prior.abs().sum() > 0):
        from .motion import class_mean_flow
        t_prior = time.time()
        prior = class_mean_flow(onset_c, apex_c, labels_c, k, mc.motion_prior, mc.motion_prior_symmetric,
                                flows=prior_flows() if callable(prior_flows) else prior_flows)
        g.set_motion_prior(prior)
        _logger.log(log_level, "motion prior (%s, symmetric=%s) from %d training pairs in %.1f s; mean |flow| per class %s",
                     mc.motion_prior, mc.motion_prior_symmetric, n, time.time() - t_prior,
                     [round(float(p.norm(dim=0).mean()), 4) for p in prior])
    n_show = min(4, n)
    show_idx = torch.linspace(0, n - 1, n_show).long()
    bs = min(tc.batch_size, n)
    steps = max(1, n // bs)  # drop the last partial batch (stable capsule/norm statistics)
    t_start = time.time()
    for epoch in range(start_epoch, tc.epochs):
        g.train()
        d.train()
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(tc.seed * 100003 + epoch))
        noise = torch.Generator().manual_seed(tc.seed * 100019 + epoch + 7 + 1000003 * distributed.rank())
        sums: dict[str, float] = {}
        it = range(steps)
        if tc.progress:
            from tqdm import tqdm
            it = tqdm(it, desc=f"gan epoch {epoch + 1}/{tc.epochs}", leave=False)
        for step in it:
            idx = distributed.shard(perm[step * bs:(step + 1) * bs])   # this process's part under torchrun
            x_on, x_ap, y = onset_c[idx], apex_c[idx], labels_c[idx]
            if tc.hflip:
                flip = torch.rand(len(idx), generator=noise) < 0.5
                x_on = torch.where(flip[:, None, None, None], x_on.flip(-1), x_on)
                x_ap = torch.where(flip[:, None, None, None], x_ap.flip(-1), x_ap)
            b = len(idx)
            z = torch.randn(b, g.z_dim, generator=noise)
            cf = lc.counterfactual > 0
            if cf:
                y2 = (y + torch.randint(1, k, (b,), generator=noise)) % k
                z2 = torch.randn(b, g.z_dim, generator=noise)
            x_on, x_ap, y, z = x_on.to(dev), x_ap.to(dev), y.to(dev), z.to(dev)
            on_all = torch.cat([x_on, x_on]) if cf else x_on
            z_all = torch.cat([z, z2.to(dev)]) if cf else z
            y_all = torch.cat([y, y2.to(dev)]) if cf else y
            ms = lc.mode_seeking > 0
            if ms:  # a second noise draw of the true-class branch (not shown to D)
                z3 = torch.randn(b, g.z_dim, generator=noise).to(dev)
                g_in = (torch.cat([on_all, x_on]), torch.cat([z_all, z3]), torch.cat([y_all, y]))
            else:
                g_in = (on_all, z_all, y_all)

            # each onset encoded once: its branches (counterfactual class, second noise) repeat e and the GRM maps
            # (the encoder works on each face alone, so this is G(*g_in) without the repeated encoder passes)
            reps = len(g_in[0]) // b
            with torch.autocast(device_type=dev.type, dtype=amp_dtype, enabled=use_amp):
                e_on, gs_on = g.encode(x_on)
                fake_gen = g.decode(g_in[0], e_on.repeat(reps, 1), [t.repeat(reps, 1, 1, 1) for t in gs_on],
                                    g_in[1], g_in[2])
            fake_gen = fake_gen.float()
            fake_all = fake_gen[:len(on_all)]
            fake = fake_all[:b]

            # ---- discriminator step
            opt_d.zero_grad(set_to_none=True)
            with torch.autocast(device_type=dev.type, dtype=amp_dtype, enabled=use_amp):
                dr = d(x_ap, y, reconstruct=lc.beta > 0, onset=x_on)
                df = d(fake_all.detach(), reconstruct=False, onset=on_all)
                l_adv_d = adversarial_d_loss(dr.adv_len.float(), df.adv_len.float())
                l_cls_d = classification_loss(dr.exp_len.float(), y, None if dr.recon is None else dr.recon.float(),
                                              x_ap, lc.beta, lc.m_pos, lc.m_neg, lc.lam)
                loss_d = lc.lambda_adv * l_adv_d + lc.lambda_mer * l_cls_d
            _check_finite(loss_d, "discriminator", epoch, step, ckpt, amp_dtype if use_amp else None)
            scaler.scale(loss_d).backward()
            distributed.average_gradients(d)     # data parallel under torchrun (no-op otherwise)
            scaler.step(opt_d)      # the scale is updated once per iteration, after both steps (below)

            # ---- generator step
            opt_g.zero_grad(set_to_none=True)
            with torch.autocast(device_type=dev.type, dtype=amp_dtype, enabled=use_amp):
                dg = d(fake_all, reconstruct=False, onset=on_all)
                adv_len, exp_len = dg.adv_len.float(), dg.exp_len.float()
                l_adv_g = adversarial_g_loss(adv_len[:b])
                l_cls_g = margin_loss(exp_len[:b], y, lc.m_pos, lc.m_neg, lc.lam)
                per = None
                if perceptual is not None:
                    # the onsets' embedding from the generator pass above (G's weights unchanged since) as target
                    per_all = perceptual(g, on_all, fake_all,
                                         onset_embedding=e_on.detach().repeat(len(on_all) // b, 1))
                    per = per_all  # both branches share one call: the mean over 2B samples
                l1 = torch.nn.functional.l1_loss(fake, x_ap)
                l_ip = identity_preserving_loss(fake, x_ap, per, lc.alpha)
                loss_g = lc.lambda_adv * l_adv_g + lc.lambda_mes * l_ip + lc.g_cls * l_cls_g
                if cf:
                    l_adv_g2 = adversarial_g_loss(adv_len[b:])
                    l_cls_g2 = margin_loss(exp_len[b:], y_all[b:], lc.m_pos, lc.m_neg, lc.lam)
                    loss_g = loss_g + lc.counterfactual * (lc.lambda_adv * l_adv_g2 + lc.g_cls * l_cls_g2)
                l_ms = None
                if ms:
                    l_ms = diversity_hinge(fake, fake_gen[len(on_all):], lc.mode_seeking_target)
                    loss_g = loss_g + lc.mode_seeking * l_ms
                extra = None
                if extra_loss_fn is not None:
                    extra = extra_loss_fn(g, x_on, z, y, fake)
                    loss_g = loss_g + extra
            with torch.no_grad():
                vals = {
                    "loss/d_total": loss_d.detach(), "loss/d_adv": l_adv_d.detach(), "loss/d_cls": l_cls_d.detach(),
                    "loss/g_total": loss_g.detach(), "loss/g_adv": l_adv_g.detach(), "loss/g_cls": l_cls_g.detach(),
                    "loss/l1": l1.detach(), "loss/ip": l_ip.detach(),
                    "acc/adv_real": (dr.adv_len[:, 1] > dr.adv_len[:, 0]).float().mean().detach(),
                    "acc/adv_fake": (df.adv_len[:, 0] > df.adv_len[:, 1]).float().mean().detach(),
                    "acc/exp_real": (dr.exp_len.argmax(1) == y).float().mean().detach(),
                    "acc/exp_fake": (exp_len.argmax(1) == y_all).float().mean().detach(),
                }
                if per is not None:
                    vals["loss/perceptual"] = per.detach()
                if dr.recon is not None:
                    vals["loss/d_rec"] = torch.nn.functional.mse_loss(dr.recon.float(), x_ap).detach()
                if extra is not None:
                    vals["loss/extra"] = extra.detach()
                if l_ms is not None:
                    vals["loss/mode_seeking"] = l_ms.detach()
            host = None
            if log is not None:
                # the generator's finiteness check and the step's scalars in one device-to-host copy (the values are
                # of this step's forward passes, which the updates do not change)
                host = host_values(vals)
            _check_finite(loss_g if host is None else host["loss/g_total"], "generator", epoch, step, ckpt,
                          amp_dtype if use_amp else None)
            scaler.scale(loss_g).backward()
            distributed.average_gradients(g)
            scaler.step(opt_g)
            scaler.update()         # once per iteration for both optimizers (PyTorch AMP: several optimizers)

            for key, v in vals.items():
                sums[key] = sums.get(key, 0.0) + v
            if host is not None:
                gs = epoch * steps + step
                for key, v in host.items():
                    log.add_scalar(key, v, gs)
        if sched_g is not None:
            log_lr = opt_g.param_groups[0]["lr"]
            sched_g.step()
            sched_d.step()
        else:
            log_lr = opt_g.param_groups[0]["lr"]
        means = host_values(sums)                   # one device-to-host copy
        rec = {"epoch": epoch + 1, "lr": log_lr, "seconds": round(elapsed0 + time.time() - t_start, 1),
               **{key: v / steps for key, v in means.items()}}
        history.append(rec)
        _logger.log(log_level, "gan epoch %d/%d %s", epoch + 1, tc.epochs,
                 " ".join(f"{k}={v:.4g}" for k, v in rec.items() if isinstance(v, float)))
        # the epoch's lr and sample grid at the batch step reached at its end (its last batch's, where its last
        # losses are): one step axis for every tag of the writer
        end_step = (epoch + 1) * steps - 1
        if log is not None:
            log.add_scalar("lr", log_lr, end_step)
        last = epoch + 1 == tc.epochs
        budget = tc.max_minutes or None     # 0 = no limit, as in flow training (flownet.train: train.max_minutes)
        over = budget is not None and (elapsed0 + time.time() - t_start) / 60 >= budget
        if budget is not None:              # torchrun: rank 0's clock decides, so every process stops after one epoch
            over = distributed.broadcast_object(over)
        if (log is not None or out is not None) and (last or over or (tc.sample_every and (epoch + 1) % tc.sample_every == 0)):
            grid = sample_grid(g, onset_c[show_idx], apex_c[show_idx], seed=tc.seed)
            if log is not None:
                # its columns: onset, apex, then one per class of the generator (5 for data.labels=casme2_5), named
                # by model.classes when the config names them (the main job's folds), else class0, class1, ...
                names = mc.classes or [f"class{k}" for k in range(g.n_classes)]
                tag = "samples/onset_apex_" + "_".join(names)
                log.add_image(tag, grid, end_step)
            if out is not None:
                from torchvision.utils import save_image
                (out / "samples").mkdir(parents=True, exist_ok=True)
                save_image(grid, out / "samples" / f"epoch_{epoch + 1:03d}.png")
        if ckpt is not None and (last or over or (tc.checkpoint_every and (epoch + 1) % tc.checkpoint_every == 0)):
            keep_opt = final_optimiser_states or not last
            save_checkpoint(ckpt, cfg, g, d, epoch + 1, history, opt_g if keep_opt else None,
                            opt_d if keep_opt else None, sched_g, sched_d, data_sha256,
                            scaler, elapsed_s=elapsed0 + time.time() - t_start, class_pairs=class_pairs,
                            torch_threads=threads, precision=precision)
        if over:
            stopped_by_time = not last
            _logger.warning("gan training stopped after epoch %d: max_minutes=%s reached", epoch + 1, tc.max_minutes)
            break
    if out is not None:
        from flownet.io import write_text_whole
        text = json.dumps(history, indent=1)        # whole or not at all: a kill while writing leaves the old file
        write_text_whole(out / "history.json", text)
    distributed.average_buffers(g)     # same running statistics on every process (torchrun)
    distributed.average_buffers(d)
    g.eval()
    d.eval()
    return GanState(g, d, history, history[-1]["epoch"] if history else start_epoch, stopped_by_time)
