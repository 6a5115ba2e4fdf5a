"""Self-supervised SRFlowNet training on unlabelled real CASME II clips (thesis chapter 3, DistillFlow).

``icegan flow train --mode selfsup --config configs/flow_selfsup.yaml [key=value ...]``

Two stages (``../shared/papers/selfsupervised_dense_correspondence_thesis.txt``, Sec. 3.4.2, Fig. 3.18):

1. **Teacher** (stage 1, Eq. 3.31–3.36): SRFlowNet predicts forward and backward flow of random crops of real
   frame pairs (:class:`flownet.data.real_pairs.RealFramePairs`: consecutive and onset→apex pairs of the
   train subjects); loss ``L_1 = L_pho + 0.1 L_smo`` with the 7x7 census photometric loss, the forward-
   backward occlusion check (α1, α2) and edge-aware smoothness (β 10). For the first ``occ_warmup_frac``
   of the stage the photometric loss covers all pixels (the thesis pre-trains without occlusion handling
   "to avoid the trivial solution that all pixels are regarded occluded", Sec. 3.4.3).
2. **Student** (stage 2, DistillFlow variant 2, Eq. 3.40–3.42): initialised from the teacher; the frozen
   teacher predicts flow and confidence (M^T = 1 - O^T) on the whole frames; the student sees a random crop
   (geometric transformation / boundary occlusion hallucination, Fig. 3.20 a) whose target frame has a few
   SLIC superpixels filled with noise (Fig. 3.20 b), and learns ``L_dis + 0.1 L_smo`` against the cropped
   teacher flows.

Each loss is applied to every recurrent update of SRFlowNet with weights γ^(n-i-1) (as the supervised
sequence loss); occlusion maps come from the final update (no gradient through them).

A run writes ``<out_dir>/<name>/``: ``config.yaml``, TensorBoard events (``tb/``), ``last.pt`` (stage, step,
model, optimizer, elapsed time, the init weights' ``real_pair_subjects``: ``resume: true`` continues it, also
mid-stage, without reading ``train.init_weights`` again; ``resume: false`` removes it, ``teacher.pt``,
``teacher_metrics.json``, ``weights.pt`` and ``metrics.json`` before the new ``config.yaml`` is written:
:func:`flownet.train.remove_old_run`), ``teacher.pt`` (stage-1
model) and ``weights.pt`` (final model) in the SRFlowNet weights format (:func:`flownet.registry.save_srflownet`),
and ``metrics.json``. Each stage has its own step count and wall-time budget; the synthetic facial test
pairs are only *monitored* (held-out subjects; never used for training or model selection).

Resuming is exact on a CPU: each stage's order of the real pairs, its crop positions and the student's superpixel
noise are functions of ``(train.seed, stage, step)`` (:class:`flownet.train.StepShuffle`,
:func:`flownet.train.crop_offsets`, ``numpy.random.default_rng([seed, NOISE_SALT, step])``; salts
:data:`ORDER_SALT`, :data:`CROP_SALT`), not of generators seeded when the run (re)started, so a run interrupted at
step k of either stage and resumed from ``last.pt`` ends with the weights (and the stage's AdamW moments at each
checkpoint) of a run never interrupted, when resumed with the same settings (a stage's step count sets its
learning-rate schedule; a wall-time budget stops it at a wall time, and then its occlusion warm-up also ends at a
share of that time), and on a GPU only as far as its kernels are deterministic. (A fresh run therefore takes other
pairs, crops and noise than before this order, which replaced a ``RandomSampler`` and crop / noise generators
seeded with the step at each start.)
``data.n_items`` below ``train.batch_size`` is refused before the run folder (the loader made no batch and the loop
waited forever), and so is ``data.n_items: null`` (a length of the number of distinct pairs) when the train subjects
have fewer pairs than a batch: the real pairs are listed before the run folder is made.

TensorBoard (``tb/``) logs each stage's scalars under its own tags (``teacher/...``, ``student/...``,
``test_<stage>/...``) at the stage's step, the student's shifted by :data:`STUDENT_TB_OFFSET`, so that its curves start
after the teacher's on a shared step axis.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .devices import host_values, resolve_device
from .io import write_text_whole
from .metrics import flow_magnitude
from .models.srflownet import SRFlowNet, SRFlowNetConfig
from .models.state_dict import check_architecture, load_resume_checkpoint, save_torch_file
from .regularizers import stage_weights
from .schedule import apply_one_cycle, budget_fraction
from .selfsup_losses import (census_transform, confidence_map, forward_backward_occlusion, student_loss,
                             superpixel_hallucination, teacher_loss)
from .train import StepShuffle, crop_offsets
from .user_numbers import check_non_negative

__all__ = ["SelfSupDataConfig", "SelfSupLossConfig", "SelfSupTrainSection", "SelfSupConfig",
           "bidirectional_flows", "teacher_step_loss", "teacher_targets", "student_step_loss", "random_crops",
           "occluded_fraction", "train_selfsup", "confidence_study"]


@dataclass
class SelfSupDataConfig:
    """The ``data:`` section of a self-supervised run's YAML (``configs/flow_selfsup.yaml``; :class:`SelfSupConfig`).

    What both stages train on: unlabelled real CASME II frame pairs of the train subjects
    (:class:`flownet.data.real_pairs.RealFramePairs`: frame size, crop, pair mix, flips, length, seed, preloading);
    what is only watched: the synthetic facial test pairs of held-out subjects and the first ``n_occ_pairs`` real
    training pairs, on which the final occluded fraction is reported.
    """
    root: str | None = None        #: shared data root (None → $ICEGAN_SHARED_DATA or <repo>/../shared/data)
    size: int = 128                #: frames resized to size x size (pixels), as the synthetic facial set
    crop: int = 64                 #: random square training crop side (pixels) for both stages
    onset_apex_prob: float = 0.5   #: probability of an onset→apex pair (else consecutive frames)
    flip: bool = True              #: random horizontal flips
    n_items: int | None = 200000   #: dataset length (a pair drawn per index); null: as many as distinct pairs
    preload: bool = False          #: decode all train-subject frames at start (else on first use)
    seed: int = 0
    n_test: int = 32               #: synthetic facial test pairs monitored (held-out subjects; GT only for logs)
    n_occ_pairs: int = 32          #: fixed real pairs on which the final occluded fraction is reported

    def __post_init__(self):
        check_non_negative(self, "data", ("size", "crop", "onset_apex_prob", "n_items", "n_test", "n_occ_pairs",
                                          "seed"))


@dataclass
class SelfSupLossConfig:
    """The ``loss:`` section of a self-supervised run's YAML (``configs/flow_selfsup.yaml``; :class:`SelfSupConfig`).

    Hyper-parameters of the stage-1 teacher loss (census photometric loss with the forward-backward occlusion check,
    edge-aware smoothness: Eq. 3.31–3.36) and the stage-2 distillation loss (Eq. 3.40–3.42) of
    ``../shared/papers/selfsupervised_dense_correspondence_thesis.txt`` Sec. 3.4.2, the γ weights over the recurrent
    updates, the share of the teacher stage without occlusion masking, and the α2 values of the final report.
    """
    census_window: int = 7         #: census window (7x7 for faces, thesis Eq. 4.9)
    eps: float = 0.01              #: ψ epsilon (Eq. 3.34)
    q: float = 0.4                 #: ψ exponent (Eq. 3.34)
    alpha1: float = 0.01           #: forward-backward check, relative (Eq. 3.32)
    alpha2: float = 0.5            #: forward-backward check, absolute px² (Eq. 3.32; loose for sub-pixel motion)
    beta: float = 10.0             #: edge-aware smoothness (Eq. 3.35)
    smooth_weight: float = 0.1     #: weight of L_smo (Eq. 3.36, 3.42)
    gamma: float = 0.8             #: weight γ^(n-i-1) of recurrent update i
    occ_warmup_frac: float = 0.5   #: fraction of the teacher stage without occlusion masking (configs/flow_selfsup.yaml says why)
    report_alpha2: list[float] = field(default_factory=lambda: [0.5, 0.05])  #: α2 values for the final occluded-fraction report

    def __post_init__(self):
        check_non_negative(self, "loss", ("census_window", "eps", "q", "alpha1", "alpha2", "beta", "smooth_weight",
                                          "gamma", "occ_warmup_frac", "report_alpha2"))


@dataclass
class SelfSupTrainSection:
    """The ``train:`` section of a self-supervised run's YAML (``configs/flow_selfsup.yaml``; :class:`SelfSupConfig`).

    Step counts and wall-time budgets of the teacher and student stages (a stage ends when either runs out), the
    teacher's optional initial weights, recurrent updates, the stage-2 SLIC superpixel noise, AdamW settings (3 %
    linear warm-up, then linear decay to 5 % of the peak rate: :mod:`flownet.schedule`), gradient clipping,
    logging / evaluation / checkpoint intervals in steps, device, torch threads, seed and resume.
    """
    teacher_steps: int = 1000      #: stage-1 steps (0 = skip: the teacher is init_weights)
    teacher_minutes: float = 0.0   #: stage-1 wall-time budget (0 = none)
    student_steps: int = 500       #: stage-2 steps (0 = no distillation: weights.pt is the teacher)
    student_minutes: float = 0.0   #: stage-2 wall-time budget (0 = none)
    init_weights: str | None = None  #: start the teacher from an SRFlowNet weights file (not read on resume)
    iters: int = 4                 #: recurrent updates while training (student and teacher)
    teacher_iters: int = 6         #: updates of the frozen teacher when it makes stage-2 targets
    batch_size: int = 8
    slic_segments: int = 40        #: SLIC superpixels per crop (stage 2)
    slic_compactness: float = 0.1
    noisy_min: int = 1             #: superpixels filled with noise per crop (min, max inclusive)
    noisy_max: int = 4
    lr: float = 4e-4               #: teacher-stage peak learning rate (AdamW; 3 % warm-up, linear decay)
    student_lr: float = 1e-4       #: student-stage peak learning rate
    weight_decay: float = 1e-4
    clip: float = 1.0
    log_every: int = 10
    eval_every: int = 200
    ckpt_every: int = 25
    device: str = "cpu"
    threads: int = 1
    seed: int = 0
    resume: bool = True

    def __post_init__(self):
        # eval_every: refused below 0 by check_intervals when the run starts, before its folder (as tested there)
        check_non_negative(self, "train", (
            "teacher_steps", "teacher_minutes", "student_steps", "student_minutes", "iters", "teacher_iters",
            "batch_size", "slic_segments", "slic_compactness", "noisy_min", "noisy_max", "weight_decay", "clip",
            "log_every", "ckpt_every", "threads", "seed"), positive=("lr", "student_lr"))


@dataclass
class SelfSupConfig:
    """A self-supervised SRFlowNet run (:func:`train_selfsup`): one YAML file such as ``configs/flow_selfsup.yaml``.

    Top-level keys ``name`` and ``out_dir`` (the run writes to ``<out_dir>/<name>/``) and the sections ``data``
    (:class:`SelfSupDataConfig`), ``model`` (:class:`~flownet.models.srflownet.SRFlowNetConfig`, the architecture of
    teacher and student), ``loss`` (:class:`SelfSupLossConfig`) and ``train`` (:class:`SelfSupTrainSection`). Loaded
    by ``icegan flow train --mode selfsup`` with ``key=value`` overrides.
    """
    name: str = "flow_selfsup"
    out_dir: str = "runs"
    data: SelfSupDataConfig = field(default_factory=SelfSupDataConfig)
    model: SRFlowNetConfig = field(default_factory=SRFlowNetConfig)
    loss: SelfSupLossConfig = field(default_factory=SelfSupLossConfig)
    train: SelfSupTrainSection = field(default_factory=SelfSupTrainSection)


# ------------------------------------------------------------------------------------------ helpers

def bidirectional_flows(model: SRFlowNet, img1: torch.Tensor, img2: torch.Tensor, iters: int
                        ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Forward and backward flows in one batched pass: ``[(w_f^i, w_b^i) for each update i]``,
    each (B, 2, H, W) pixels (the thesis swaps the image pair to get w_b, Sec. 3.4.2 stage 1)."""
    b = img1.shape[0]
    flows = model(torch.cat([img1, img2]), torch.cat([img2, img1]), iters=iters)
    return [(f[:b], f[b:]) for f in flows]


def teacher_step_loss(flows, img1, img2, lc: SelfSupLossConfig, use_occlusion: bool = True,
                      logs_as_floats: bool = True) -> tuple[torch.Tensor, dict]:
    """Stage-1 loss (Eq. 3.36) summed over the updates with γ weights; returns (loss, logs).

    ``flows`` from :func:`bidirectional_flows`. Occlusion maps (Eq. 3.32) come from the last update.
    Logs: pho, smo (last update), occ_f, occ_b (occluded fractions; NaN-free, 0 when masking is off), as floats read
    in one device-to-host copy, or as 0-d tensors with ``logs_as_floats=False`` (the training loop reads them with the
    loss, in its one copy per step).
    """
    f_last, b_last = flows[-1]
    occ_f = occ_b = None
    if use_occlusion:
        occ_f = forward_backward_occlusion(f_last, b_last, lc.alpha1, lc.alpha2)
        occ_b = forward_backward_occlusion(b_last, f_last, lc.alpha1, lc.alpha2)
    total, parts = 0.0, {}
    # the two images' census transforms are the same for every update's flow: computed once per step
    census = (census_transform(img1, lc.census_window), census_transform(img2, lc.census_window))
    for w, (ff, fb) in zip(stage_weights(len(flows), lc.gamma), flows):
        loss, parts = teacher_loss(img1, img2, ff, fb, occ_f, occ_b, lc.census_window, lc.eps, lc.q, lc.beta,
                                   lc.smooth_weight, census, logs_as_floats=False)
        total = total + w * loss
    parts["occ_f"] = occ_f.mean() if occ_f is not None else 0.0
    parts["occ_b"] = occ_b.mean() if occ_b is not None else 0.0
    return total, host_values(parts) if logs_as_floats else parts      # floats: the logs in one copy


#: the salts of a stage's pair order (:class:`flownet.train.StepShuffle`), training crops
#: (:func:`flownet.train.crop_offsets`) and superpixel noise (``numpy.random.default_rng([seed, NOISE_SALT, step])``):
#: each a function of ``(train.seed, stage, step)``, other than the supervised trainer's (3, 5) and each other's
ORDER_SALT = {"teacher": 11, "student": 13}
CROP_SALT = {"teacher": 17, "student": 19}
NOISE_SALT = 23


def random_crops(tensors: list[torch.Tensor], crop: int, seed: int, step: int,
                 salt: int = CROP_SALT["teacher"]) -> list[torch.Tensor]:
    """Same per-sample random square crop of every (B, C, H, W) tensor in ``tensors`` (flow values are
    unchanged by cropping), at the corners :func:`flownet.train.crop_offsets` draws for ``(seed, step, salt)``
    (``step``: the stage's 0-based update the crops feed; the same corners after a resume). ``crop`` 0 or >= the
    size returns them unchanged.

    Raises:
        ValueError: tensors differ in batch size or H, W.
    """
    b, _, h, w = tensors[0].shape
    if any(t.shape[0] != b or t.shape[-2:] != (h, w) for t in tensors):
        raise ValueError(f"random_crops: tensors differ in batch or size: {[tuple(t.shape) for t in tensors]}")
    if not crop or crop >= min(h, w):
        return tensors
    ys, xs = crop_offsets(seed, step, b, h, w, crop, salt)
    return [torch.stack([t[i, :, y:y + crop, x:x + crop] for i, (y, x) in enumerate(zip(ys, xs))])
            for t in tensors]


@torch.no_grad()
def teacher_targets(teacher: SRFlowNet, img1, img2, lc: SelfSupLossConfig, iters: int) -> dict:
    """Teacher flows w_f^T, w_b^T (B, 2, H, W) and confidence maps M^T = 1 - O^T (Eq. 3.32, 3.40)."""
    ff, fb = bidirectional_flows(teacher, img1, img2, iters)[-1]
    occ_f = forward_backward_occlusion(ff, fb, lc.alpha1, lc.alpha2)
    occ_b = forward_backward_occlusion(fb, ff, lc.alpha1, lc.alpha2)
    return {"flow_f": ff, "flow_b": fb, "conf_f": confidence_map(occ_f), "conf_b": confidence_map(occ_b)}


def student_step_loss(flows, targets: dict, img1, img2, lc: SelfSupLossConfig,
                      logs_as_floats: bool = True) -> tuple[torch.Tensor, dict]:
    """Stage-2 variant-2 loss (Eq. 3.42) summed over the updates with γ weights; ``targets`` are the
    cropped teacher flows / confidences, ``img1``/``img2`` the student's inputs. Returns (loss, logs); the logs as
    floats, or as 0-d tensors with ``logs_as_floats=False`` (:func:`teacher_step_loss`)."""
    total, parts = 0.0, {}
    for w, (ff, fb) in zip(stage_weights(len(flows), lc.gamma), flows):
        loss, parts = student_loss(targets["flow_f"], targets["flow_b"], ff, fb, targets["conf_f"],
                                   targets["conf_b"], img1, img2, lc.eps, lc.q, lc.beta, lc.smooth_weight,
                                   logs_as_floats=False)
        total = total + w * loss
    parts["conf_f"] = targets["conf_f"].mean()
    return total, host_values(parts) if logs_as_floats else parts      # floats: the logs in one copy


@torch.no_grad()
def occluded_fraction(model: SRFlowNet, pairs: list[tuple[torch.Tensor, torch.Tensor]], alpha1: float,
                      alpha2_values, iters: int | None = None) -> dict:
    """Mean forward occluded fraction (Eq. 3.32) of ``model`` on fixed pairs ((1, 1, H, W) each) for each α2, as
    ``{str(α2): fraction in [0, 1]}``; ``{}`` for no pairs (``data.n_occ_pairs=0``: nothing reported, where a mean
    over no pairs would write NaN, which is not JSON, into metrics.json)."""
    if not pairs:
        return {}
    was = model.training
    model.eval()
    flows = [bidirectional_flows(model, a, b, iters or model.config.iters)[-1] for a, b in pairs]
    model.train(was)
    return {str(a2): float(np.mean([float(forward_backward_occlusion(f, b, alpha1, a2).mean()) for f, b in flows]))
            for a2 in alpha2_values}


def read_teacher_metrics(path: Path) -> dict:
    """The teacher stage's results that ``teacher_metrics.json`` at ``path`` holds (``teacher_steps``,
    ``teacher_minutes``, ``teacher_test``, ``teacher_occ_frac``), for a run resumed in its student stage.

    Raises:
        ValueError: the file is not a whole JSON object of those results (cut short by a kill while an older version
            wrote it in place, damaged on disk); the message names the file and the cause.
    """
    try:
        got = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(got, dict) or not {"teacher_test", "teacher_occ_frac"} <= set(got):
        raise ValueError(f"{path} cannot be read (not a JSON object with teacher_test and teacher_occ_frac)")
    return got


# ---------------------------------------------------------------------------------------- training

#: the entries of a self-supervised run's last.pt that a resume reads besides the model's weights
RESUME_KEYS = ("stage", "step", "elapsed_s")

#: TensorBoard step of the student stage's step ``s``: ``STUDENT_TB_OFFSET + s`` (the teacher's is ``s``), so its
#: curves follow the teacher's on one step axis as long as the teacher stage has fewer steps than this
STUDENT_TB_OFFSET = 10 ** 6


def train_selfsup(cfg: SelfSupConfig, progress: bool = True) -> dict:
    """Run (or resume) both stages; returns the metrics dict also written to ``metrics.json``.

    ``progress`` is accepted for symmetry with :func:`flownet.train.train`; progress is printed as one
    line per ``log_every`` steps (and to TensorBoard) either way.

    Raises:
        ValueError: bad configuration values (named; among them ``data.n_items`` < ``train.batch_size``, or
            ``data.n_items`` null with fewer distinct real pairs than ``train.batch_size``: no whole batch, refused
            before the run folder is made), ``data.n_test`` < 1, ``data.n_occ_pairs`` above the number of real
            pairs (``data.n_items``, or with null the distinct pairs; refused before the run folder too), init
            weights of another architecture than ``cfg.model`` (``iters`` aside).
        FileNotFoundError: data or init weights missing.
        FloatingPointError: a non-finite loss (stops before the update).
    """
    from torch.utils.data import DataLoader
    from torch.utils.tensorboard import SummaryWriter

    from .data.real_pairs import RealFramePairs
    from .data.synthetic_face import SyntheticFaceFlow
    from .registry import load_srflownet, save_srflownet
    from .train import (check_intervals, collate, evaluate_model, evaluation_batches, refuse_other_settings,
                        start_run, time_budget_note)

    t, lc, d = cfg.train, cfg.loss, cfg.data
    for key, val in (("train.teacher_steps", t.teacher_steps), ("train.student_steps", t.student_steps)):
        if val < 0:
            raise ValueError(f"{key} must be >= 0, got {val}")
    check_intervals(t)
    ckpt_path = Path(cfg.out_dir) / cfg.name / "last.pt"
    resume = t.resume and ckpt_path.is_file()
    if t.teacher_steps == 0 and not t.init_weights and not resume:     # a resume starts from its checkpoint
        raise ValueError("train.teacher_steps=0 needs train.init_weights (the teacher to distil from)")
    if not 0.0 <= lc.occ_warmup_frac <= 1.0:
        raise ValueError(f"loss.occ_warmup_frac must be in [0, 1], got {lc.occ_warmup_frac}")
    if t.noisy_min < 0 or t.noisy_max < t.noisy_min:
        raise ValueError(f"train.noisy_min/noisy_max must satisfy 0 <= min <= max, got {t.noisy_min}, {t.noisy_max}")
    if d.n_items is not None:                   # no whole batch: the loader made none and the loop waited forever
        StepShuffle(d.n_items, t.batch_size, t.seed, key="data.n_items")
    if d.n_test < 1:                # no test pair: the teacher trained, then its evaluation died in torch.cat
        raise ValueError(f"data.n_test must be >= 1 (the synthetic facial test pairs monitored), got {d.n_test}")
    # checked once, on one throwaway model of the run's config, before start_run rewrites the run's config.yaml: a
    # checkpoint to resume, and initial weights of another model config, leave the folder as it was
    probe = SRFlowNet(cfg.model) if resume or t.init_weights else None
    ck = load_resume_checkpoint(ckpt_path, probe, RESUME_KEYS) if resume else None
    init = None
    # a resume starts from its checkpoint, which records the init weights' real_pair_subjects: train.init_weights is
    # read only by a fresh run, or by a resume of a checkpoint written before last.pt kept that record
    if t.init_weights and (ck is None or "real_pair_subjects" not in ck):
        try:
            init = load_srflownet(t.init_weights)
        except FileNotFoundError:               # load_srflownet's message names an option of other commands
            raise FileNotFoundError(f"train.init_weights={t.init_weights}: no such file; give SRFlowNet weights to "
                                    f"start the teacher from, or null to train it from scratch") from None
        except ValueError as exc:               # a training checkpoint, DecFlow weights: named with the key
            raise ValueError(f"train.init_weights={t.init_weights}: {exc}") from None
        # iters sets no weight: the shipped weights have 2
        check_architecture(init.config_dict(), probe.config_dict(), f"train.init_weights={t.init_weights}")
    if resume:
        refuse_other_settings(cfg)
    resolve_device(t.device, "train.device")    # a device this machine lacks: before the pairs are listed (and read)
    # listed before the run folder is made: with data.n_items null its length is known only now
    data = RealFramePairs(root=d.root, split="train", size=d.size, crop=0, onset_apex_prob=d.onset_apex_prob,
                          flip=d.flip, seed=d.seed, n_items=d.n_items, preload=d.preload)
    if d.n_items is None and not 1 <= t.batch_size <= len(data):      # a number of items was checked above
        raise ValueError(f"data.n_items=null takes the {len(data)} distinct real pairs of the train subjects "
                         f"{data.subjects} under {data.root}: they hold no whole batch of train.batch_size="
                         f"{t.batch_size}; set 1 <= train.batch_size <= {len(data)}, or data.n_items >= "
                         f"train.batch_size (each item draws a pair at random, repeats included)")
    if d.n_occ_pairs > len(data):       # the first data.n_occ_pairs items: an IndexError after config.yaml before
        held = f"data.n_items={d.n_items}" if d.n_items is not None else \
            f"data.n_items=null (the {len(data)} distinct real pairs of the train subjects)"
        raise ValueError(f"data.n_occ_pairs={d.n_occ_pairs} reports the occluded fraction on the first that many real "
                         f"pairs, but {held} holds only {len(data)}; set data.n_occ_pairs <= {len(data)} or "
                         f"data.n_items >= {d.n_occ_pairs}")
    device, run = start_run(cfg)
    print(f"real pairs: subjects {data.subjects}; consecutive {len(data.pairs['consecutive'])}, "
          f"onset_apex {len(data.pairs['onset_apex'])}; skipped clips {len(data.skipped)}", flush=True)
    test_ds = SyntheticFaceFlow(root=d.root, split="test", size=d.size, n_pairs=d.n_test, seed=0)
    # fixed pairs (seeded per index): built once as batches, not again at every evaluation
    test_loader = evaluation_batches(test_ds)
    occ_items = [data[i] for i in range(d.n_occ_pairs)]
    occ_pairs = [(it["img1"][None].to(device), it["img2"][None].to(device)) for it in occ_items]

    model = SRFlowNet(cfg.model).to(device)
    init_seen: list[str] = []           # CASME II subjects whose real frames trained the init weights (their meta)
    if init is not None:
        model.load_state_dict(init.state_dict())
        init_seen = list(init.meta.get("real_pair_subjects") or [])
    state = {"stage": "teacher", "step": 0, "elapsed_s": 0.0}
    if ck is not None:
        model.load_state_dict(ck["model"])         # checked above against a model of this same config
        if "real_pair_subjects" in ck:             # the init weights' record as the run's start read it
            init_seen = list(ck["real_pair_subjects"] or [])
        state = {"stage": ck["stage"], "step": int(ck["step"]), "elapsed_s": float(ck["elapsed_s"])}
        print(f"resumed {ckpt_path}: stage {state['stage']} step {state['step']}", flush=True)

    writer = SummaryWriter(str(run / "tb"))
    history: dict = {"teacher": [], "student": []}
    # (stage, step) of the last test evaluation and checkpoint: a stage that ends on an eval_every / ckpt_every step
    # reuses that evaluation and does not write the same checkpoint again
    last_test: dict = {"at": None, "metrics": None}
    last_saved: dict = {"at": None}

    def test_metrics(stage: str) -> dict:
        if last_test["at"] != (stage, state["step"]):
            last_test.update(at=(stage, state["step"]), metrics=evaluate_model(model, test_loader, device))
        return last_test["metrics"]

    def run_stage(stage: str, n_steps: int, minutes: float, teacher: SRFlowNet | None, opt_state=None) -> None:
        peak = t.lr if stage == "teacher" else t.student_lr
        opt = torch.optim.AdamW(model.parameters(), lr=peak, weight_decay=t.weight_decay)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        step0, elapsed0 = state["step"], state["elapsed_s"]
        start = time.time()
        offset = 0 if stage == "teacher" else STUDENT_TB_OFFSET  # global step for TensorBoard

        def frac() -> float:
            return budget_fraction(state["step"], n_steps, elapsed0 + time.time() - start, minutes)

        def set_lr() -> float:
            return apply_one_cycle(opt, peak, frac())

        def save_ckpt(again: bool = False) -> None:
            """Write last.pt, unless it holds this stage's step already; ``again``: rewrite it anyway (with the
            elapsed time now)."""
            if last_saved["at"] == (stage, state["step"]) and not again:
                return
            save_torch_file({"stage": stage, "step": state["step"], "model": model.state_dict(),
                             "optimizer": opt.state_dict(), "elapsed_s": elapsed0 + time.time() - start,
                             "real_pair_subjects": init_seen}, ckpt_path)
            last_saved["at"] = (stage, state["step"])

        # the pairs, crops and noise of each step are those of a run never interrupted (functions of the seed, the
        # stage and its step: StepShuffle, random_crops, NOISE_SALT); the loader is endless, the loop leaves it; its
        # generator only keeps it off torch's global random state
        order = StepShuffle(len(data), t.batch_size, t.seed, state["step"], ORDER_SALT[stage], key="data.n_items")
        loader = DataLoader(data, batch_size=t.batch_size, sampler=order, collate_fn=collate, drop_last=True,
                            num_workers=0, generator=torch.Generator().manual_seed(t.seed + state["step"]))
        model.train()
        set_lr()
        if frac() < 1.0:     # the loader is endless (StepShuffle): the loop is left when the budget is used
            for b in loader:
                img1, img2 = b["img1"].to(device), b["img2"].to(device)
                if stage == "teacher":
                    img1, img2 = random_crops([img1, img2], d.crop, t.seed, state["step"], CROP_SALT[stage])
                    use_occ = frac() >= lc.occ_warmup_frac
                    flows = bidirectional_flows(model, img1, img2, t.iters)
                    loss, parts = teacher_step_loss(flows, img1, img2, lc, use_occlusion=use_occ,
                                                    logs_as_floats=False)
                else:
                    tg = teacher_targets(teacher, img1, img2, lc, t.teacher_iters)
                    img1, img2, tf, tb_, cf, cb = random_crops(
                        [img1, img2, tg["flow_f"], tg["flow_b"], tg["conf_f"], tg["conf_b"]], d.crop, t.seed,
                        state["step"], CROP_SALT[stage])
                    img2_noisy, noise_mask = superpixel_hallucination(
                        img2, t.slic_segments, (t.noisy_min, t.noisy_max), t.slic_compactness,
                        np.random.default_rng([t.seed, NOISE_SALT, state["step"]]))
                    flows = bidirectional_flows(model, img1, img2_noisy, t.iters)
                    loss, parts = student_step_loss(flows, {"flow_f": tf, "flow_b": tb_, "conf_f": cf,
                                                            "conf_b": cb}, img1, img2_noisy, lc,
                                                    logs_as_floats=False)
                    parts["noise_frac"] = noise_mask.mean()
                # one device-to-host copy: the loss for the finiteness check and, on a logging step, the flow's
                # magnitude (of this step's forward pass, which the update does not change)
                log_step = (state["step"] + 1) % t.log_every == 0
                read = host_values({**parts, "_loss": loss.detach(), **({"_flow_mag": flow_magnitude(
                    flows[-1][0].detach()).mean()} if log_step else {})})
                loss_value, mag = read.pop("_loss"), read.pop("_flow_mag", None)
                parts = read
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"{stage} stage: non-finite loss at step {state['step']}: {parts}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip)
                opt.step()
                state["step"] += 1
                lr_now = set_lr()
                s = state["step"]
                if s % t.log_every == 0:
                    writer.add_scalar(f"{stage}/loss", loss_value, offset + s)
                    writer.add_scalar(f"{stage}/lr", lr_now, offset + s)
                    writer.add_scalar(f"{stage}/flow_mag", mag, offset + s)
                    for k, v in parts.items():
                        writer.add_scalar(f"{stage}/{k}", v, offset + s)
                    rec = {"step": s, "loss": loss_value, "flow_mag": mag,
                           "elapsed_s": round(elapsed0 + time.time() - start, 1), **parts}
                    history[stage].append(rec)
                    print(f"{stage} " + " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in rec.items()), flush=True)
                if t.eval_every and s % t.eval_every == 0:
                    m = test_metrics(stage)
                    for k, v in m.items():
                        writer.add_scalar(f"test_{stage}/{k}", v, offset + s)
                    print(f"{stage} step {s} synthetic facial test (monitor) {json.dumps(m)}", flush=True)
                if s % t.ckpt_every == 0:       # after the evaluation: its time counts in elapsed_s on resume
                    save_ckpt()
                if frac() >= 1.0:
                    break
        # a wall-time budget: rewrite the step's checkpoint, written just before the budget was found used, so that it
        # records the time the stage stopped at (else a rerun resumed below the budget and trained on)
        save_ckpt(again=bool(minutes))
        state["elapsed_s"] = elapsed0 + time.time() - start
        note = time_budget_note(state["step"], n_steps, state["elapsed_s"], minutes, f"train.{stage}_minutes")
        if note:                # cut short by the stage's wall time (also a rerun that trained 0 steps)
            print(f"{stage} stage: {note}", flush=True)
        print(f"{stage} stage done: {state['step'] - step0} steps this session, {state['step']} total, "
              f"{state['elapsed_s'] / 60:.1f} min", flush=True)

    results: dict = {"name": cfg.name}
    opt_state = ck["optimizer"] if ck is not None else None
    # ------------------------------------------------------------------ stage 1: teacher
    if state["stage"] == "teacher":
        if t.teacher_steps > 0:
            run_stage("teacher", t.teacher_steps, t.teacher_minutes, None, opt_state)
            opt_state = None
        # SRFlowNet weights (flow.weights, --input-size auto): the record of weights.pt below, for the teacher. Its
        # real frames: those of the train subjects once it trained a step, else the init weights' alone
        teacher_seen = {f"casme2/{s}" for s in data.subjects} if state["step"] > 0 else set()
        save_srflownet(model, run / "teacher.pt", meta={"name": cfg.name, "stage": "teacher",
                                                          "steps": state["step"], "alpha2": lc.alpha2,
                                                          "size": d.size, "gray": True,   # RealFramePairs: grey
                                                          "real_pair_subjects": sorted(teacher_seen | set(init_seen))})
        results["teacher_steps"] = state["step"]
        results["teacher_minutes"] = round(state["elapsed_s"] / 60, 1)
        results["teacher_test"] = test_metrics("teacher")
        results["teacher_occ_frac"] = occluded_fraction(model, occ_pairs, lc.alpha1, lc.report_alpha2)
        print(f"teacher: synthetic facial test {json.dumps(results['teacher_test'])}; occluded fraction by "
              f"alpha2 {results['teacher_occ_frac']}", flush=True)
        write_text_whole(run / "teacher_metrics.json", json.dumps(results, indent=2))
        state.update(stage="student", step=0, elapsed_s=0.0)
        save_torch_file({"stage": "student", "step": 0, "model": model.state_dict(),
                         "optimizer": torch.optim.AdamW(model.parameters()).state_dict(), "elapsed_s": 0.0,
                         "real_pair_subjects": init_seen}, ckpt_path)
    else:       # resumed in the student stage: the teacher's results as its stage wrote them
        try:
            if not (run / "teacher_metrics.json").is_file():      # removed, or a run of a version without it
                raise ValueError(f"{run / 'teacher_metrics.json'} is missing")
            results.update(read_teacher_metrics(run / "teacher_metrics.json"))
        except ValueError as exc:       # missing, or cut short by a kill of an older version (written in place)
            if not (run / "teacher.pt").is_file():
                raise ValueError(f"{exc}, and {run / 'teacher.pt'} is missing to compute them again: remove "
                                 f"{run / 'last.pt'} (or set train.resume=false) to train the teacher afresh") from None
            print(f"{exc}; the teacher's test metrics and occluded fractions are computed again from "
                  f"{run / 'teacher.pt'} (its training minutes are lost)", flush=True)
            teacher = load_srflownet(run / "teacher.pt", device=device)
            results["teacher_steps"] = teacher.meta.get("steps")
            results["teacher_test"] = evaluate_model(teacher, test_loader, device)
            results["teacher_occ_frac"] = occluded_fraction(teacher, occ_pairs, lc.alpha1, lc.report_alpha2)
            write_text_whole(run / "teacher_metrics.json", json.dumps(results, indent=2))
    # ------------------------------------------------------------------ stage 2: student (variant 2)
    if t.student_steps > 0:
        if not (run / "teacher.pt").is_file():
            raise FileNotFoundError(f"{run / 'teacher.pt'} missing: cannot resume the student stage; remove "
                                    f"{run / 'last.pt'} (or set train.resume=false) to train the teacher afresh")
        teacher = load_srflownet(run / "teacher.pt", device=device)
        for p in teacher.parameters():
            p.requires_grad_(False)
        run_stage("student", t.student_steps, t.student_minutes, teacher,
                  opt_state if ck is not None and ck["stage"] == "student" and state["step"] > 0 else None)
        results["student_steps"] = state["step"]
        results["student_minutes"] = round(state["elapsed_s"] / 60, 1)
    if t.student_steps > 0 or "teacher_test" not in results:
        metrics = test_metrics("student" if t.student_steps > 0 else "teacher")
        results["final_occ_frac"] = occluded_fraction(model, occ_pairs, lc.alpha1, lc.report_alpha2)
    else:  # no student stage: the final model is the teacher just evaluated
        metrics, results["final_occ_frac"] = results["teacher_test"], results["teacher_occ_frac"]
    results["final_test"] = metrics
    results["alpha1"], results["alpha2"] = lc.alpha1, lc.alpha2
    results["history_tail"] = {k: v[-5:] for k, v in history.items()}
    meta = {"name": cfg.name, "mode": "selfsup", "alpha2": lc.alpha2, "size": d.size, "gray": True,
            "teacher_steps": results.get("teacher_steps"), "student_steps": results.get("student_steps"),
            "test_metrics_monitor": metrics,
            # whose real (unlabelled) frames it learned from, the init weights' too: a LOSO run with these weights
            # warns about them
            "real_pair_subjects": sorted({f"casme2/{s}" for s in data.subjects} | set(init_seen))}
    save_srflownet(model, run / "weights.pt", meta=meta)
    write_text_whole(run / "metrics.json", json.dumps(results, indent=2))   # never left cut short
    writer.close()
    print(f"final: synthetic facial test ({d.n_test} pairs, monitor) {json.dumps(metrics)}; occluded fraction "
          f"{results['final_occ_frac']}; weights {run / 'weights.pt'}", flush=True)
    return results


# ------------------------------------------------------------------------------------ α2 study

@torch.no_grad()
def confidence_study(model: SRFlowNet, synthetic_loader, real_pairs, alpha1: float = 0.01,
                     alpha2_values=(0.5, 0.1, 0.05), iters: int | None = None) -> dict:
    """How the forward-backward check (Eq. 3.32) with each α2 splits a model's flow into confident and
    occluded pixels.

    On synthetic facial pairs with exact flow (``synthetic_loader`` batches with img1, img2, flow, valid):
    the occluded fraction, the EPE (pixels) of the pixels it keeps as confident and of those it flags (a
    useful check flags the wrong flow, so its confident EPE is lower than the flagged EPE). On unlabelled
    real pairs (list of ((1, 1, H, W), (1, 1, H, W))): the occluded fraction only.

    Returns:
        {"epe_all": float, "by_alpha2": {α2: {"occ_synthetic", "epe_confident", "epe_flagged", "occ_real"}}}
        (None, JSON null, where a set is empty: NaN is no JSON).
    """
    was = model.training
    model.eval()
    it = iters or model.config.iters
    fw, bw, gts, valids = [], [], [], []
    for b in synthetic_loader:
        f, bk = bidirectional_flows(model, b["img1"], b["img2"], it)[-1]
        fw.append(f)
        bw.append(bk)
        gts.append(b["flow"])
        valids.append(b["valid"].bool())
    f, bk, gt, valid = torch.cat(fw), torch.cat(bw), torch.cat(gts), torch.cat(valids)
    err = flow_magnitude(f - gt)
    real = [bidirectional_flows(model, a, b2, it)[-1] for a, b2 in real_pairs]
    model.train(was)
    out = {"epe_all": float(err[valid].mean()), "by_alpha2": {}}
    for a2 in alpha2_values:
        occ = forward_backward_occlusion(f, bk, alpha1, a2)[:, 0].bool()
        conf, flag = valid & ~occ, valid & occ
        out["by_alpha2"][str(a2)] = {
            "occ_synthetic": float(occ[valid].float().mean()),
            "epe_confident": float(err[conf].mean()) if conf.any() else None,
            "epe_flagged": float(err[flag].mean()) if flag.any() else None,
            "occ_real": float(np.mean([float(forward_backward_occlusion(rf, rb, alpha1, a2).mean())
                                       for rf, rb in real])) if real else None,
        }
    return out


def _main(argv=None) -> int:
    """``python -m flownet.selfsup --alpha2-study W [W ...] [--n-synthetic 32] [--n-real 32] [--json OUT]``:
    :func:`confidence_study` of each weights file (``shipped`` = the shipped weights) on the first synthetic
    facial test pairs (held-out subjects) and on real pairs of the held-out subjects. A weights file that does not
    exist (or an unknown ``shipped:<name>``) is a usage error (exit code 2) naming --alpha2-study, before any work."""
    import argparse

    from torch.utils.data import DataLoader

    from .data.real_pairs import RealFramePairs
    from .data.synthetic_face import SyntheticFaceFlow
    from .registry import load_srflownet, resolve_weights
    from .train import collate
    from .user_numbers import integer, number
    count = integer(1)
    pairs = integer(0)                          # --n-real 0: no real pairs (occ_real null)
    weight = number(0)
    ap = argparse.ArgumentParser(
        prog="python -m flownet.selfsup",
        description="Study of the occlusion threshold alpha2 of the self-supervised losses (forward-backward check, "
                    "Eq. 3.32); it trains nothing. For each weights file and each --alpha2 it measures, on the first "
                    "--n-synthetic synthetic facial test pairs (held-out subjects, exact flow), the occluded fraction "
                    "and the EPE (pixels) of the pixels kept as confident and of those flagged as occluded, and on "
                    "--n-real real pairs of the held-out subjects (each onset-to-apex with probability 0.5, else two "
                    "consecutive frames) the occluded fraction. It prints one "
                    "line per weights file (the file, then its study as JSON) and, with --json, writes all studies "
                    "to one JSON file.",
        epilog="To train self-supervised flow, run `icegan flow train --mode selfsup` (README.md).")
    ap.add_argument("--alpha2-study", nargs="+", required=True, metavar="WEIGHTS",
                    help="SRFlowNet weights files to study, one or more; `shipped` = the shipped weights, "
                         "`shipped:<name>` a named shipped checkpoint (required)")
    ap.add_argument("--alpha2", nargs="+", type=weight, default=[0.5, 0.1, 0.05],
                    help="absolute thresholds alpha2 of the check to compare, px^2, each >= 0 (default 0.5 0.1 0.05)")
    ap.add_argument("--alpha1", type=weight, default=0.01,
                    help="relative threshold alpha1 of the check, >= 0 (default 0.01)")
    ap.add_argument("--n-synthetic", type=count, default=32,
                    help="synthetic facial test pairs with exact flow, >= 1 (default 32)")
    ap.add_argument("--n-real", type=pairs, default=32,
                    help="real pairs of the held-out subjects (onset-to-apex with probability 0.5, else consecutive "
                         "frames), >= 0; 0: none, occ_real is null (default 32)")
    ap.add_argument("--threads", type=count, default=1, help="CPU threads of torch, >= 1 (default 1)")
    ap.add_argument("--json", default=None, metavar="OUT",
                    help="also write the studies of all weights files to this JSON file (default: print only)")
    a = ap.parse_args(argv)
    for w in a.alpha2_study:                    # before any work: a missing file is a usage error, not a traceback
        try:
            path = None if w == "shipped" else resolve_weights(w, "srflownet")
        except ValueError as exc:
            ap.error(f"--alpha2-study: {exc}")
        if path is not None and not path.is_file():
            ap.error(f"--alpha2-study: weights file not found: {w}")
    torch.set_num_threads(a.threads)
    syn = DataLoader(SyntheticFaceFlow(split="test", n_pairs=a.n_synthetic, seed=0), batch_size=8, collate_fn=collate)
    real_ds = RealFramePairs(split="test", crop=0, seed=0, flip=False, n_items=a.n_real)
    real = [(it["img1"][None], it["img2"][None]) for it in (real_ds[i] for i in range(a.n_real))]
    res = {}
    for w in a.alpha2_study:
        model = load_srflownet(None if w == "shipped" else w)
        res[w] = confidence_study(model, syn, real, a.alpha1, a.alpha2)
        print(w, json.dumps(res[w]), flush=True)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        write_text_whole(a.json, json.dumps(res, indent=2))     # never left cut short by a kill
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
