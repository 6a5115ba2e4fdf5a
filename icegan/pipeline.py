"""The main job: LOSO training of ICE-GAN and a recognizer on facial optical flow.

The flow network is fixed (its weights are never updated); with ``gan.joint`` the GAN is trained through it.

``python train.py [--config YAML] [--out DIR] [key=value ...]`` (same as ``icegan train``).

One LOSO fold (data flow of ``../shared/DESIGN.md``):

1. **Real features.** Onset→apex flow of every real clip (SRFlowNet by default; TV-L1 or Farneback
   selectable), optical strain, and the (u, v, strain) feature maps (:func:`flownet.strain.flow_features`).
   Flow of real pairs does not depend on the fold (the flow network is fixed during the LOSO run),
   so it is computed once per run and cached in ``<run>/features_real.pt``.
2. **Critic** (joint mode only): a recognizer trained on the fold's real training features.
3. **ICE-GAN** (:func:`icegan.gan.trainer.train_gan`) on the training subjects' (onset, apex) pairs.
   *Joint loss* (``gan.joint``): each generator step adds
   ``gan.joint_weight · CE(critic(features(SRFlowNet(onset, G(onset, z, c)))), c)``, back-propagated
   through the differentiable SRFlowNet, so a synthetic apex must carry motion that a recognizer
   reads as class ``c``, not only the appearance of an apex. ``c`` is the onset's own class (the branch with the L1
   loss to the real apex); the counterfactual branch's other class gets no joint term, although most synthetic
   apexes of step 4 are asked for another class than their onset's (``bench/gan_joint_demo.py`` adds that term).
4. **Augmentation.** Class-balanced synthetic apexes for the training onsets
   (:func:`icegan.gan.synthesis.balanced_augmentation`: every class filled to (1 + ``gan.synthetic_ratio``) × the
   largest real class count; none when the ratio is 0 or the recognizer is ExpCaps, which reads no flow features),
   their flow features, and a sample grid
   ``folds/<dataset>_<subject>/samples.png``.
5. **Recognizer** (Off-TANet by default; STSTNet; or the discriminator's ExpCaps on apex faces)
   trained on real + synthetic features of the training subjects only; scores of the held-out
   subject's real clips are returned to :func:`icegan.protocol.run_loso`, which pools them into
   UF1/UAR, writes every output and resumes finished folds after an interruption.

No step looks at the held-out subject's labels; epochs are fixed in the config (honest selection).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from flownet.devices import resolve_device
from flownet.registry import BACKBONES, SHIPPED_WEIGHTS, resolve_weights
from flownet.user_numbers import derived_seed
from icegan import distributed
from icegan.config import ConfigError, check_ranges, did_you_mean, load_config, without_neutral_keys
from icegan.paths import check_run_name, config_hint
from icegan.data.prepare import PrepareConfig, read_skipped
from icegan.recognition import (RecognizerConfig, fit_recognizer, recognizer_provenance, resize_features,
                                train_models)

log = logging.getLogger("icegan.pipeline")

__all__ = ["MainConfig", "DataSection", "GanSection", "FlowSection", "RecognizerSection", "run_main",
           "load_main_config", "load_samples", "compute_flow_features", "write_summary",
           "read_skipped"]          # icegan.data.prepare's, importable from here as before


@dataclass
class DataSection:
    """Where the clips come from.

    Attributes:
        source: ``synthetic`` (built-in, no files: :mod:`icegan.data.synthetic_me`) or ``prepared``
            (real datasets through ``icegan prepare``'s cache, settings in ``prepare``).
        n_subjects, clips_per_class, amplitude: synthetic dataset size and peak motion (px at 128).
        img_size: face side in pixels for every stage (power of two; 64 or 128).
        prepare: the preprocessing settings of a ``prepared`` source (same keys as
            ``configs/prepare_casme2.yaml``); its ``size`` is forced to ``img_size`` and its ``color`` to gray
            (:func:`load_main_config` refuses a ``size`` or ``color`` set to another value).
        protocol: ``CDE`` (all subjects) or ``SDE`` (within ``dataset``). ``HDE`` (leave one dataset out) is
            refused with a pointer to ``icegan loso protocol=HDE``, which runs it on precomputed features.
        dataset: dataset of an SDE run (``casme2``, ``samm``, ``smic``, or ``synthetic``).
        max_folds: run only the first k folds (0 = all): smoke tests.
        labels: the classes recognised (:mod:`icegan.labels`): ``megc2019`` (negative, positive, surprise),
            ``casme2_5`` (CASME II's happiness, disgust, repression, surprise, others: a ``prepared`` source of
            CASME II with ``composite_only: false``, since the composite leaves out the ``others`` clips) or
            ``samm_5`` (SAMM's anger, contempt, happiness, surprise, other: a ``prepared`` source of SAMM with
            ``composite_only: false``, since the composite leaves out the ``other`` clips). The recognizer,
            ICE-GAN's class condition and every report use that set's K classes.
    """
    source: Literal["synthetic", "prepared"] = "synthetic"
    n_subjects: int = 6
    clips_per_class: int = 4
    amplitude: list[float] = field(default_factory=lambda: [0.5, 3.0])
    img_size: int = 64
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    protocol: Literal["CDE", "SDE", "HDE"] = "CDE"
    dataset: Optional[str] = None
    max_folds: int = 0
    labels: Literal["megc2019", "casme2_5", "samm_5"] = "megc2019"

    def __post_init__(self):
        if self.labels != "megc2019":
            from icegan.labels import get_label_set
            ls = get_label_set(self.labels)
            if self.source != "prepared":
                raise ValueError(f"data.labels={self.labels} needs data.source=prepared ({ls.title}); the "
                                 f"{self.source} set has MEGC2019's three classes")
            for spec in self.prepare.datasets:
                if ls.datasets and spec.name not in ls.datasets:
                    raise ValueError(f"data.labels={self.labels}: the dataset {spec.name!r} of data.prepare.datasets "
                                     f"has no such classes (only {', '.join(ls.datasets)} clips do); leave it out")
                if spec.composite_only:
                    raise ValueError(f"data.labels={self.labels} needs composite_only: false for the dataset "
                                     f"{spec.name!r} in data.prepare.datasets: the MEGC2019 composite leaves out its "
                                     f"clips of other classes (CASME II's 'others', SAMM's 'other'); {ls.config} "
                                     f"has the setting")
        if self.max_folds < 0:
            raise ValueError(f"data.max_folds must be >= 0 (0 = all folds, k > 0 = the first k), got {self.max_folds}")
        if self.protocol == "HDE":
            raise ValueError("data.protocol=HDE (leave one dataset out) is not run by the main job (train.py), whose "
                             "folds are subjects; run it on precomputed features with `icegan loso --config "
                             f"{config_hint('features_ststnet', True)} protocol=HDE` (or export this job's maps with "
                             "`icegan features` and give them as data.source=table), or set data.protocol=CDE or SDE")
        if self.source == "synthetic":
            from icegan.data.synthetic_me import check_synthetic_me_sizes
            check_synthetic_me_sizes(self.n_subjects, self.clips_per_class, self.amplitude, "data.")
        check_ranges(self, "data", at_least={"n_subjects": 0, "clips_per_class": 0, "img_size": 0})


@dataclass
class GanSection:
    """ICE-GAN augmentation.

    Attributes:
        enabled: train a GAN per fold and add synthetic apexes (False: real data only).
        skip: generator skip path: ``grm`` (graph reasoning, the paper), ``plain`` skip connections,
            ``se`` squeeze-and-excitation (ICE-GAN Table III ablation).
        epochs, batch_size, lr: GAN optimisation per fold (paper: 100, 16, 1e-3).
        base_channels: generator width of the first level; max_channels: generator channel cap.
        d_base_channels: discriminator (PatchGAN) width of the first level (paper: 64).
        synthetic_ratio: ≥ 0; every class is filled with synthetic apexes up to round((1 + ratio) × the largest
            real class count of the fold's training subjects). 0 adds no synthetic apex at all (the classes are not
            balanced either); with ``enabled`` the GAN is still trained (the ExpCaps recognizer uses the GAN itself).
            Not read with ``recognizer.name=expcaps``, which classifies apex faces, not flow features: no synthetic
            apex is made.
        synthetic_weight: > 0; the loss weight of one synthetic row relative to one real row in the recognizer's
            training (class weights are computed on the weighted counts). 1.0 = every row the same. On CASME II
            (118 clips, 74/25/19) ratio 0.5 adds ~200 synthetic rows to ~112 real ones: 0.25 makes their total
            weight ~0.60 × the real rows' as trained instead of ~1.8 × (the class weights, on by default, lift the
            mostly synthetic positive and surprise classes; ~0.45 × with recognizer.class_weighting=false)
            (docs/benchmarks.md, "Synthetic rows weighing less").
        joint: add the recognizer's classification loss through SRFlowNet to the generator. Off by
            default: on real CASME II (SDE, 20 folds, docs/benchmarks.md) it lowered UF1 from 0.5614
            (GAN without it) to 0.4677 and put checkerboard patterns into the synthetic apexes.
        joint_weight: weight of that loss (>= 0; 0 with ``joint`` is refused: set ``joint`` false instead).
        counterfactual: weight of the random-other-class branch of the GAN loss.
        motion_head, motion_prior, d_motion_input: the motion recipe of ``configs/gan_casme2_cpu.yaml`` (our
            additions, off = the paper's model; :class:`icegan.gan.trainer.GanModelConfig`): G warps the
            onset by a class-conditional flow that starts at the class-mean ``tvl1``/``farneback`` flow of
            the fold's training pairs, and D also sees image − onset. With it the synthetic apexes are
            recognised as their class at 86 % by a recognizer trained on other datasets (docs/benchmarks.md,
            ICE-GAN second round); without it the generator ignores the class (33 %).
        lr_d, beta1: discriminator learning rate (None = ``lr``) and Adam β1 (paper 0.9).
        amp: mixed precision for the GAN on a GPU (bfloat16 on Ampere and later, else float16 with a gradient
            scaler: :func:`icegan.gan.trainer.amp_policy`); false trains it in float32. No effect on a CPU. The
            joint loss runs in float32 either way.

    Training pairs: the main job pairs each onset with its apex only (``apex_neighbors=0`` in each fold's GAN
    config), although ``data.prepare.neighbours`` (on in the shipped configs) prepares the apex's four neighbours;
    those are paired with the onset by ``icegan gan train`` (``data.apex_neighbors``, prepared pairs).
    """
    enabled: bool = True
    skip: Literal["grm", "plain", "se"] = "grm"
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    base_channels: int = 16
    max_channels: int = 128
    d_base_channels: int = 32
    synthetic_ratio: float = 1.0
    synthetic_weight: float = 1.0
    joint: bool = False
    joint_weight: float = 1.0
    counterfactual: float = 1.0
    motion_head: bool = False
    motion_prior: Literal["none", "tvl1", "farneback"] = "none"
    d_motion_input: bool = False
    lr_d: Optional[float] = None
    beta1: float = 0.9
    amp: bool = True

    def __post_init__(self):
        check_ranges(self, "gan", at_least={"epochs": 1, "batch_size": 1, "base_channels": 1, "max_channels": 1,
                                            "d_base_channels": 1},
                     positive=("lr", "lr_d"), non_negative=("joint_weight", "counterfactual"), unit_interval=("beta1",))
        if not math.isfinite(self.synthetic_ratio) or self.synthetic_ratio < 0:
            raise ValueError(f"gan.synthetic_ratio must be a finite number >= 0 (classes are filled to "
                             f"(1 + ratio) x the largest real class), got {self.synthetic_ratio}")
        if not math.isfinite(self.synthetic_weight) or self.synthetic_weight <= 0:
            raise ValueError(f"gan.synthetic_weight must be a finite number > 0 (1 = a synthetic row weighs as much "
                             f"as a real one), got {self.synthetic_weight}")
        if self.enabled and self.joint and self.joint_weight == 0:
            # the loss times 0 trains nothing, but the critic is fitted and the flow network run forward and backward
            # in every generator step all the same
            raise ValueError("gan.joint_weight=0 gives the joint loss no weight, and gan.joint=true would still fit "
                             "its critic and back-propagate through the flow network in every generator step for "
                             "nothing: set gan.joint=false (or a gan.joint_weight > 0)")


#: flow methods whose refinement iterations ``flow.iters`` sets (:func:`build_flow` passes it to these alone)
_ITERATED_FLOW_METHODS = ("srflownet", "raft_small", "raft_large")


@dataclass
class FlowSection:
    """Optical flow of onset→apex pairs (real and synthetic).

    Attributes:
        method: ``srflownet`` or ``liteflownet2`` (shipped weights unless ``weights``), ``raft_small`` or
            ``raft_large`` (no shipped weights: ``weights`` is required; train them with
            ``icegan flow train --config configs/flow_raft_small.yaml``), ``tvl1``, ``farneback``, or ``custom``
            (your own network, ``module``; :class:`flownet.registry.CustomFlowEstimator`).
        module: ``custom`` only: ``'package.module:factory'`` or ``'path/to/file.py:factory'``, a callable returning a
            ``torch.nn.Module`` whose ``forward(img1, img2)`` gives the flow (B, 2, H, W) in pixels; ``weights`` may
            name a file with its state dict. The file's SHA-256 joins the weights' in the run header and the
            feature-cache key, so editing the network never reuses features of the old one.
        weights: weights file of the learned method, or ``shipped:<name>`` for a named shipped checkpoint
            (None = shipped ``facial``: SRFlowNet and LiteFlowNet2 only; :func:`flownet.registry.resolve_weights`).
        iters: SRFlowNet / RAFT refinement iterations, >= 1 (None = the weights' default; also DecFlow's with
            ``decompose=learned``); refused with another method, which has none.
        batch_size: pairs per flow batch (>= 1).
        precision: inference precision of a learned method's flow: ``fp32`` (default), ``bf16`` (autocast;
            faster on CPUs with AVX512-BF16/AMX and on GPUs; mean EPE within 0.005 px of fp32 in
            docs/benchmarks.md) or ``auto`` (bf16 where native). Part of the feature-cache key; ignored by ``tvl1`` / ``farneback`` and by the joint
            GAN loss, which back-propagates through the flow in float32.
        component: which part of the flow the features are built from: ``total`` (the estimator's flow),
            or the ``expression`` / ``head`` part of a head/expression decomposition
            (:mod:`flownet.decompose`; DecFlow supplement, ../shared/papers/facialflownet_decflow_supplement.txt
            Sec. 2.3 uses the expression flow for expression recognition).
        decompose: how the flow is decomposed when ``component`` is not ``total``: ``ransac`` (a robust
            global similarity/affine fit of ``method``'s flow is the head flow, the rest expression) or
            ``learned`` (the DecFlow network :mod:`flownet.models.decflow`, which computes its own flow;
            needs ``method=srflownet``).
        decompose_weights: DecFlow weights for ``decompose=learned`` (None = shipped
            ``flownet/weights/decflow_facial.pt``).
        input_size: the side (pixels) at which the flow is computed (:class:`flownet.resolution.ResizedEstimator`:
            onset and apex resized to it, the flow resized back to ``data.img_size`` and rescaled to its pixels).
            ``auto`` (default): a learned method runs at the crop size its weights were trained at
            (``meta.size``; 128 for the shipped SRFlowNet), a classical method or weights without a recorded
            size at ``data.img_size``; ``native``: always ``data.img_size``; an int: that size. Why it matters:
            on 64×64 CASME II crops the shipped SRFlowNet's flow barely follows TV-L1's, at 128 it does
            (docs/benchmarks.md, "Working resolution"). Part of the feature-cache key.
        tta: ``none`` (default) or ``hflip``: a learned method's flow is averaged with the un-mirrored flow of the
            horizontally mirrored pair (:class:`flownet.registry._LearnedEstimator`; twice the flow work, lower
            error on faces, docs/benchmarks.md "Seventh pass"). Real features and synthetic apexes' features only:
            the joint GAN loss back-propagates through one plain pass. Part of the feature-cache key.
    """
    method: Literal["srflownet", "liteflownet2", "raft_small", "raft_large", "tvl1", "farneback",
                    "custom"] = "srflownet"
    module: str = ""
    weights: Optional[str] = None
    iters: Optional[int] = None
    batch_size: int = 32
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    component: Literal["total", "expression", "head"] = "total"
    decompose: Literal["ransac", "learned"] = "ransac"
    decompose_weights: Optional[str] = None
    input_size: Union[Literal["auto", "native"], int] = "auto"
    tta: Literal["none", "hflip"] = "none"

    def __post_init__(self):
        if self.method == "custom":
            if not self.module:
                raise ValueError("flow.method=custom needs flow.module='package.module:factory' or "
                                 "'path/to/file.py:factory' (a callable returning a torch.nn.Module)")
            from flownet.plugins import load_factory
            load_factory(self.module, "flow.module")        # fail now, naming the spec, not after loading data
        elif self.module:
            raise ValueError(f"flow.module={self.module!r} is read only with flow.method=custom, not {self.method}")
        if self.iters is not None and self.method == "custom":
            raise ValueError("flow.iters applies to srflownet and RAFT; a custom network's factory sets its own")
        if self.iters is not None and self.method not in _ITERATED_FLOW_METHODS:
            # build_flow passes it to those alone (and to DecFlow, which needs srflownet): it would change the run's
            # config and feature-cache key for nothing
            raise ValueError(f"flow.iters={self.iters} is not used by flow.method={self.method} (it sets the "
                             f"refinement iterations of srflownet and RAFT); leave it null")
        if isinstance(self.input_size, int) and self.input_size < 8:
            raise ValueError(f"flow.input_size must be 'auto', 'native' or a side >= 8 pixels, got {self.input_size}")
        if self.tta != "none" and self.method in ("tvl1", "farneback"):
            raise ValueError(f"flow.tta={self.tta} applies to the learned methods, not flow.method={self.method}")
        if self.tta != "none" and self.component != "total" and self.decompose == "learned":
            raise ValueError("flow.tta does not apply to flow.decompose=learned (DecFlow computes its own flow)")
        check_ranges(self, "flow", at_least={"iters": 1, "batch_size": 1})   # iters 0 read as the default


@dataclass
class RecognizerSection(RecognizerConfig):
    """The recognizer on (u, v, optical strain) features: every option of
    :class:`icegan.recognizer_config.RecognizerConfig` (``input_size`` is the side at which the flow
    features are built, min–max normalised per map), plus ``name: expcaps``, which classifies the
    apex face with the fold's ICE-GAN discriminator (ExpCaps capsule lengths; needs ``gan.enabled``), and
    ``name: custom`` with ``module`` (your own network, as in ``icegan loso``).
    Defaults: Off-TANet on 28×28 features (stem stride 1), 60 epochs, final epoch (no selection)."""
    SECTION = "recognizer"

    name: Literal["offtanet", "ststnet", "logreg", "random_forest", "expcaps", "custom"] = "offtanet"
    input_size: int = 28
    stem_stride: int = 1
    epochs: int = 60


@dataclass
class MainConfig:
    """``train.py`` configuration (``configs/demo.yaml``, ``configs/casme2.yaml``, ``configs/megc2019.yaml``)."""
    name: str = "demo"
    out_dir: str = "runs"
    seed: int = 0
    device: str = "auto"
    threads: int = 0          #: torch CPU threads per fold (0 = torch's default; a Ray task: its num_cpus)
    oracle_epoch: bool = False  #: kept for old config files; true is refused (icegan loso has the oracle selection)
    data: DataSection = field(default_factory=DataSection)
    gan: GanSection = field(default_factory=GanSection)
    flow: FlowSection = field(default_factory=FlowSection)
    recognizer: RecognizerSection = field(default_factory=RecognizerSection)

    def __post_init__(self):
        check_ranges(self, seeds=("seed",))
        check_run_name(self.name)
        from icegan.environment import check_threads
        check_threads(self.threads, "torch CPU threads per fold; 0 = torch's default")


def _check_custom_code(cfg: MainConfig) -> None:
    """Build and run once the custom recognizer (an evaluation pass and a training step) and the custom flow network
    (two random 32×32 grey pairs, with a backward pass when ``gan.joint`` will back-propagate through it).

    Raises:
        ConfigError: either fails (the message names ``recognizer.module`` / ``flow.module`` and the error); with
            ``gan.joint``, also a flow network whose flow has no nonzero finite gradient with respect to its second
            image (the generator's apex: the joint loss would be a constant that trains nothing).
    """
    from icegan.recognition import check_custom_recognizer
    try:
        from icegan.labels import get_label_set
        check_custom_recognizer(cfg.recognizer, n_classes=get_label_set(cfg.data.labels).n_classes)
        if cfg.flow.method == "custom":
            from flownet.registry import get_estimator
            est = get_estimator("custom", module=cfg.flow.module, weights=cfg.flow.weights)
            with torch.random.fork_rng(devices=[]):       # the CPU generator only, restored (not the GPUs')
                torch.default_generator.manual_seed(0)
                img1, img2 = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32, requires_grad=True)
            est.estimate(img1, img2.detach())
            if cfg.gan.joint and cfg.gan.enabled:
                try:
                    est.forward(img1, img2).float().square().mean().backward()
                except ValueError:
                    raise
                except Exception as exc:
                    raise ValueError(f"flow.module={cfg.flow.module!r}: gan.joint back-propagates through the flow, "
                                     f"and the backward pass failed: {type(exc).__name__}: {exc}") from exc
                # the network's own weights may give the backward pass a gradient while the flow does not depend on
                # the images (NumPy / OpenCV preprocessing): the joint loss would be a constant to the generator
                g = img2.grad
                why = ("has no gradient" if g is None else "has a non-finite gradient" if not torch.isfinite(g).all()
                       else "has a zero gradient" if not g.abs().sum() > 0 else "")
                if why:
                    raise ValueError(f"flow.module={cfg.flow.module!r}: the flow {why} with respect to its second "
                                     f"image (the generator's apex in gan.joint): the joint loss needs a flow "
                                     f"differentiable in its second frame (no NumPy / OpenCV step on the images, no "
                                     f".detach()); or set gan.joint=false")
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from None


def _check_generator_widths(cfg: MainConfig) -> None:
    """Refuse ``gan.base_channels`` / ``gan.max_channels`` that give the generator a level it cannot normalise.

    The generator (:class:`icegan.models.generator.Generator`) has ``log2(data.img_size) - 1`` levels of width
    ``min(base_channels * 2^i, max_channels)`` (:func:`icegan.models.generator.level_widths`), and normalises each
    with ``GroupNorm(min(8, C), C)``, which needs ``C`` <= 8 or a multiple of 8. (The discriminator's widths take
    any value: InstanceNorm.)

    Raises:
        ConfigError: the first level that fails, naming the key that sets it (``gan.max_channels`` where it is the cap)
            and every level's width.
    """
    from icegan.models.levels import level_widths     # no torch import: this check runs on every main config
    g = cfg.gan
    widths = level_widths(cfg.data.img_size, g.base_channels, g.max_channels)
    i = next((i for i, w in enumerate(widths) if w > 8 and w % 8), None)
    if i is not None:
        bad = widths[i]
        key, value = ("base_channels", g.base_channels) if g.base_channels * 2 ** i <= g.max_channels else \
            ("max_channels", g.max_channels)
        raise ConfigError(f"gan.{key}={value} gives the generator a level of {bad} channels (its levels at "
                          f"data.img_size={cfg.data.img_size}: {', '.join(map(str, widths))}), which its GroupNorm "
                          f"of 8 groups cannot split: every width min(gan.base_channels * 2^i, gan.max_channels) "
                          f"must be <= 8 or a multiple of 8 (e.g. gan.base_channels=8, 16 or 32)")


def _refuse_unread_prepare(prepare: PrepareConfig, path: str | Path, overrides=()) -> None:
    """Refuse a ``data.prepare`` key of a ``data.source=synthetic`` main config (whose clips are made in memory: the
    section is never read) given in ``overrides`` (at any value) or in the file ``path`` at a value other than
    :class:`PrepareConfig`'s default (:func:`icegan.config.where_set`), unless the file's ``data.prepare`` section
    holds every key of :class:`PrepareConfig`: a run's ``config.yaml`` records the whole section at the defaults of
    its time (``apex_spotting: farneback`` before ``dis``), and reproducing or resuming the run from it must load.

    Raises:
        ConfigError: the first such key, naming its value, where it was given and what to do instead.
    """
    from icegan.config import file_value, where_set
    default = PrepareConfig()
    section = file_value("data.prepare", path)
    recorded = isinstance(section, dict) and all(f.name in section for f in dataclasses.fields(PrepareConfig))
    for f in dataclasses.fields(PrepareConfig):
        value = getattr(prepare, f.name)
        file = None if recorded or value == getattr(default, f.name) else path   # the file's value may be let pass
        where = where_set(f"data.prepare.{f.name}", file, overrides)
        if where is None:
            continue
        given = "given as an override" if where == "command line" else f"in {where}"
        raise ConfigError(f"data.prepare.{f.name} ({given}) is not read: data.source=synthetic makes its "
                          f"clips in memory (data.n_subjects, data.clips_per_class, data.amplitude); set "
                          f"data.source=prepared to prepare faces, or leave data.prepare.{f.name} out")


def load_main_config(path: str | Path | None = None, overrides=()) -> MainConfig:
    """Load and validate a main-job config (``path`` None: the shipped ``demo.yaml``, the repository's
    ``configs/demo.yaml``, also in an installed wheel: :func:`icegan.paths.shipped_config`).

    Raises:
        ConfigError: unknown key, wrong type, or an inconsistent combination (names the keys), e.g. generator widths
            its GroupNorm cannot split (:func:`_check_generator_widths`), ``data.prepare`` keys the run replaces
            (:func:`icegan.data.prepare.refuse_replaced_prepare`) or never reads (:func:`_refuse_unread_prepare`).
        FileNotFoundError: ``path`` is missing, or None and the shipped configs are missing (an install without
            its package data).
    """
    from icegan.paths import shipped_config
    path = path if path is not None else shipped_config("demo")
    cfg = load_config(MainConfig, path, overrides)
    s = cfg.data.img_size
    if s < 32 or s & (s - 1):
        raise ConfigError(f"data.img_size must be a power of two >= 32, got {s}")
    if cfg.data.source == "prepared":
        # load_samples and _gan_config prepare the faces at data.img_size, in gray: a data.prepare.size or color the
        # run replaces is said now, not recorded in the run's config.yaml as if it had been used
        from icegan.data.prepare import refuse_replaced_prepare
        refuse_replaced_prepare(cfg.data.prepare, s, path, overrides, "the main job", "the side of every stage",
                                "its flow, GAN and maps take one channel")
        # the values used, recorded so (config.yaml, --print-config): not the section's default 128 px beside a run
        # at 64 (an older run's config.yaml compares equal: icegan.config.without_neutral_keys)
        cfg.data.prepare = dataclasses.replace(cfg.data.prepare, size=s, color="gray")
    else:
        _refuse_unread_prepare(cfg.data.prepare, path, overrides)
    if cfg.gan.enabled:
        _check_generator_widths(cfg)    # a width GroupNorm cannot split: a message now, not a traceback in fold 1
    if cfg.gan.motion_prior != "none" and not cfg.gan.motion_head:
        raise ConfigError(f"gan.motion_prior={cfg.gan.motion_prior} is the starting flow of the motion head: "
                          "set gan.motion_head=true (or gan.motion_prior=none)")
    if cfg.recognizer.name == "custom" or cfg.flow.method == "custom":
        _check_custom_code(cfg)        # a wrong network is a message now, not a traceback after the first GAN
    if str(cfg.flow.weights or "").startswith("shipped:") and cfg.flow.method != "custom":
        try:                           # a checkpoint name the method does not ship: a message now, not a traceback
            resolve_weights(cfg.flow.weights, cfg.flow.method)
        except ValueError as exc:
            raise ConfigError(f"flow.weights: {exc}") from None
    try:
        resolve_device(cfg.device)          # a device this machine lacks: a message now, not a driver error later
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    # recognizer options of `icegan loso` feature runs only: (key, what it is, why not here, its off value)
    for key, what, why, off in (
            ("subject_weighting", "", " (its recognizer is not given the subject of every synthetic apex)", False),
            ("class_balance", "", " (its recognizer is not given the dataset of every synthetic apex)", "pooled"),
            ("noise_filter", "", "", "none"),
            ("au_weight", " (action units as an auxiliary target)", " (a synthetic apex has no coded action units)", 0),
            ("domain_adversarial", " (domain-adversarial training)", " (its recognizer is not given the dataset of "
             "every synthetic apex)", 0),
            ("domain_bn", " (per-dataset batch norm)", " (its recognizer is not given the dataset of every synthetic "
             "apex)", False),
            ("inner_val_fraction", " (inner-validation early stopping)", " (its recognizer trains to the final epoch "
             "on every training row)", 0)):
        if getattr(cfg.recognizer, key) != off:
            raise ConfigError(f"{cfg.recognizer.SECTION}.{key}{what} is supported by `icegan loso` feature runs, not "
                              f"by the main job{why}; set it to {str(off).lower()}")
    if cfg.oracle_epoch:
        raise ConfigError("oracle_epoch=true (the epoch picked per test subject, the published practice) is "
                          "supported by `icegan loso` feature runs, not by the main job, whose recognizer trains to "
                          "its final epoch (its run would be labelled ORACLE for nothing); set oracle_epoch=false, or "
                          "export the maps with `icegan features` and run `icegan loso data.source=table "
                          "oracle_epoch=true`")
    if cfg.recognizer.name == "expcaps" and not cfg.gan.enabled:
        raise ConfigError("recognizer.name=expcaps classifies with the GAN discriminator: set gan.enabled=true")
    if cfg.gan.joint and cfg.gan.enabled and cfg.flow.method in ("tvl1", "farneback"):
        raise ConfigError("gan.joint back-propagates through the flow network: it needs flow.method=srflownet "
                          f"(or liteflownet2, raft_small, raft_large, custom; got {cfg.flow.method}); set gan.joint=false "
                          "for classical flow")
    if cfg.flow.method in BACKBONES and cfg.flow.method not in SHIPPED_WEIGHTS and not cfg.flow.weights:
        raise ConfigError(f"flow.method={cfg.flow.method} has no shipped weights: set flow.weights to a local "
                          f"weights file (e.g. runs/<name>/weights.pt from icegan flow train)")
    if cfg.flow.component != "total" and cfg.gan.joint and cfg.gan.enabled:
        raise ConfigError("gan.joint back-propagates through the flow network's total flow: set "
                          f"flow.component=total (got {cfg.flow.component}) or gan.joint=false")
    if cfg.flow.component != "total" and cfg.flow.decompose == "learned" and cfg.flow.method != "srflownet":
        raise ConfigError("flow.decompose=learned uses the DecFlow network (SRFlowNet with two decoders) for the "
                          f"flow itself: set flow.method=srflownet (got {cfg.flow.method}) or flow.decompose=ransac")
    if cfg.data.source == "prepared" and not cfg.data.prepare.datasets:
        raise ConfigError(f"data.source=prepared needs data.prepare.datasets (see {config_hint('casme2', True)})")
    if cfg.data.protocol == "SDE":
        # the dataset an SDE run stays within must be one the data section gives: a message now, not after every
        # face was prepared and every flow computed (a clip list's datasets are its own: checked when it is read)
        if cfg.data.source == "synthetic":
            known = ["synthetic"]
        else:
            names = [spec.name for spec in cfg.data.prepare.datasets]
            known = None if "clips" in names else sorted(set(names))
        if not cfg.data.dataset:
            raise ConfigError(f"data.protocol=SDE needs data.dataset, the dataset to run LOSO within"
                              f"{f' (one of {known})' if known else ''}")
        if known is not None and cfg.data.dataset not in known:
            raise ConfigError(f"data.dataset={cfg.data.dataset!r} is not a dataset of this config's data section "
                              f"({known}){did_you_mean(cfg.data.dataset, known)}")
    if len(cfg.data.amplitude) != 2:
        raise ConfigError(f"data.amplitude must be [min, max] pixels, got {cfg.data.amplitude}")
    return cfg


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------

@dataclass
class Clips:
    """Real clips of a run: ``samples`` (dataset, subject, clip, label) aligned with the image arrays.

    onset, apex: (N, S, S) uint8 grayscale faces.
    skipped: the clips that are not in ``samples`` (key, reason): the ones preprocessing could not prepare (frames
    not on disk, no face found, ...) and, in a LOSO run, prepared clips without a MEGC2019 class; empty for the
    synthetic set.
    """
    samples: pd.DataFrame
    onset: np.ndarray
    apex: np.ndarray
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["key", "reason"]))


def with_clip_list(cfg: MainConfig, clip_list: str | Path, mode: str = "raw") -> MainConfig:
    """``cfg`` with your own clips (a clip list, :mod:`icegan.data.clip_list`) in place of its datasets, everything
    else kept (preprocessing, flow, sizes), so that their maps are made the way the config makes its training maps.

    Args:
        cfg: a main-job config. clip_list: the CSV. mode: ``raw`` (detect, align, crop) or ``cropped``.

    Raises:
        FileNotFoundError: the clip list is missing.
        ConfigError: ``cfg`` reads the built-in synthetic set, not prepared clips; ``cfg`` has another label set
            than MEGC2019's (a clip list's labels are MEGC2019 classes: the message says to add data.labels=megc2019,
            which makes the same maps).
    """
    from icegan.data.prepare import DatasetSpec
    if not Path(clip_list).is_file():
        raise FileNotFoundError(f"clip list not found: {clip_list}")
    if cfg.data.source != "prepared":
        raise ConfigError(f"--clips replaces the prepared datasets of a config with data.source=prepared (e.g. "
                          f"{config_hint('casme2', True)}); this config has data.source={cfg.data.source}")
    if cfg.data.labels != "megc2019":
        raise ConfigError(f"--clips: a clip list's labels are MEGC2019 classes (negative, positive, surprise), and "
                          f"this config has data.labels={cfg.data.labels}: add data.labels=megc2019 (the maps are "
                          f"made the same way; to score the clips with `icegan predict` and models of data.labels="
                          f"{cfg.data.labels}, leave the list's label cells empty)")
    spec = DatasetSpec(name="clips", root=str(clip_list), mode=mode, composite_only=False)
    prepare = dataclasses.replace(cfg.data.prepare, datasets=[spec])
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, prepare=prepare, protocol="CDE", dataset=None))


def load_samples(cfg: MainConfig, progress: bool = True, unlabelled: bool = False) -> Clips:
    """The run's real clips: the built-in synthetic set or a prepared (cached) real dataset.

    ``progress`` shows the preparation bar (off for ``--no-progress`` and on non-main processes).
    ``unlabelled``: also keep prepared clips without a class of ``data.labels`` (label -1: a sheet's non-composite
    clips, a clip list's clips without a label), for ``icegan features``; a LOSO run leaves them out, with a warning.
    A label is the id of the clip's class in that label set (:func:`icegan.labels.manifest_labels`; from the
    manifest column ``class3`` for MEGC2019, ``class5`` for CASME II's five, ``emotion`` for SAMM's five).
    Clips whose apex was spotted are logged, with a warning for each whose apex is the first or last frame searched
    (:func:`icegan.data.spotting.edge_apex_note`).

    Raises:
        icegan.data.prepare.PrepareError: no usable clip in the configured datasets.
    """
    d = cfg.data
    if d.source == "synthetic":
        from icegan.data.synthetic_me import make_synthetic_me
        me = make_synthetic_me(d.n_subjects, d.clips_per_class, d.img_size, tuple(d.amplitude), cfg.seed)
        return Clips(me.manifest[["dataset", "subject", "clip", "label"]].copy(), me.onset, me.apex)
    from icegan.data.prepare import prepare_dataset
    pcfg = dataclasses.replace(d.prepare, size=d.img_size, color="gray",
                               progress=d.prepare.progress and progress)
    prepared = prepare_dataset(pcfg)
    m = prepared.manifest
    from icegan.labels import get_label_set, manifest_labels
    ls = get_label_set(d.labels)
    label = pd.Series(manifest_labels(m, ls), index=m.index)       # -1: no class of the set
    labelled = (label >= 0).to_numpy()
    keep = labelled | unlabelled
    what = "MEGC2019 class" if ls.name == "megc2019" else f"class of {ls.title}"
    if not keep.all():
        log.warning("%d prepared clips have no %s and are left out of the LOSO run: %s", int((~keep).sum()), what,
                    ", ".join(m.loc[~keep, "key"].astype(str).tolist()[:10]))
    no_class = pd.DataFrame({"key": m.loc[~keep, "key"].astype(str).to_numpy(),
                             "reason": f"no {what}: left out of the LOSO run"})
    m, label = m[keep], label[keep]
    spotted = m[m["apex_method"].astype(str) != "annotated"] if "apex_method" in m.columns else m.iloc[:0]
    if len(spotted):        # no apex in the sheet or clip list: say which frame stands for it
        shown = ", ".join(f"{r.key} at frame {int(r.apex)} (onset {int(r.onset)})"
                          for r in spotted.head(5).itertuples())
        log.info("apex spotted for %d clip(s) without one (method %s): %s%s; every clip's apex is in %s",
                 len(spotted), spotted["apex_method"].iloc[0], shown, ", ..." if len(spotted) > 5 else "",
                 prepared.cache_dir / "manifest.csv")
        from icegan.data.spotting import is_edge_apex_note
        # an apex spotted on the first or last frame searched: likely no peak in the clip (the manifest's notes)
        notes = spotted["notes"] if "notes" in spotted.columns else [""] * len(spotted)
        edge = [(key, note) for key, text in zip(spotted["key"], notes)
                for note in str(text).split("; ") if is_edge_apex_note(note)]
        for key, note in edge[:5]:
            log.warning("%s: %s", key, note)
        if len(edge) > 5:
            more = ", ".join(k for k, _ in edge[5:15]) + (", ..." if len(edge) > 15 else "")
            log.warning("%d more clip(s) with an apex spotted on the first or last frame searched: %s (their notes "
                        "are in %s)", len(edge) - 5, more, prepared.cache_dir / "manifest.csv")
    idx = m["index"].to_numpy()
    samples = pd.DataFrame({"dataset": m["dataset"].to_numpy(), "subject": m["subject"].to_numpy(),
                            "clip": m["clip"].to_numpy(), "label": label.to_numpy()})
    skipped = pd.DataFrame(prepared.skipped).reindex(columns=["key", "reason"])
    if len(no_class):
        skipped = pd.concat([skipped, no_class], ignore_index=True)
    return Clips(samples.reset_index(drop=True), prepared.frames.onset[idx], prepared.frames.apex[idx], skipped)


def write_skipped(path: Path, skipped: pd.DataFrame) -> None:
    """Write the clips a run could not use (:attr:`Clips.skipped`: key, reason) to ``path`` (``skipped.csv``, read by
    :func:`icegan.data.prepare.read_skipped`), or remove a ``path`` left by an earlier call when there are none, so
    the file always describes the latest call. Written whole (:func:`flownet.io.write_whole`): a kill while writing
    leaves the earlier file or none, never a list cut short (read as fewer skipped clips)."""
    from flownet.io import write_whole
    if len(skipped):
        # every field quoted when a cell holds a bare '\r' (an exception's text), which pandas' default leaves unquoted
        # and which would read back as a row break
        from icegan.csv_names import csv_quoting
        write_whole(path, lambda tmp: skipped.to_csv(tmp, index=False, quoting=csv_quoting(skipped)))
    else:
        path.unlink(missing_ok=True)


def to_unit(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, S, S) → float (N, 1, S, S) in [0, 1]."""
    t = torch.as_tensor(x)
    return (t.float() / 255.0).unsqueeze(1) if t.dim() == 3 else t.float() / 255.0


# ---------------------------------------------------------------------------------------------
# flow features
# ---------------------------------------------------------------------------------------------

def _at_working_size(cfg: MainConfig, estimator):
    """``estimator`` run at ``cfg.flow.input_size`` (:func:`flownet.resolution.at_input_size`)."""
    from flownet.resolution import ResizedEstimator, at_input_size
    est = at_input_size(estimator, cfg.flow.input_size, cfg.data.img_size)
    if isinstance(est, ResizedEstimator):
        log.info("flow computed at %dx%d (images %dx%d; flow.input_size=%s)", *est.size, cfg.data.img_size,
                 cfg.data.img_size, cfg.flow.input_size)
    return est


def flow_reads_iters(method: Optional[str]) -> bool:
    """Whether ``flow.method=method`` reads ``flow.iters``: one of :data:`_ITERATED_FLOW_METHODS` (srflownet, RAFT;
    :func:`build_flow` passes it to them alone, and to DecFlow with them). With another method a recorded ``iters``
    (configs/casme2.yaml set 4 until 2026-11-30) made the maps a null one makes: a resume and ``icegan predict``
    compare it as null."""
    return method in _ITERATED_FLOW_METHODS


def build_flow(cfg: MainConfig, device: torch.device):
    """The flow estimator of ``cfg.flow`` (:func:`flownet.registry.get_estimator`), run at ``flow.input_size``."""
    from flownet.registry import get_estimator
    kwargs = {}
    if cfg.flow.method in _ITERATED_FLOW_METHODS and cfg.flow.iters is not None:
        kwargs["iters"] = cfg.flow.iters
    if cfg.flow.method == "custom":     # (decompose=learned, which ignores the method, needs srflownet)
        kwargs["module"] = cfg.flow.module
    if cfg.flow.component != "total":  # features from one part of a head/expression decomposition
        from flownet.decompose import ComponentEstimator, get_decomposer
        if cfg.flow.decompose == "learned":  # DecFlow runs in float32
            dec = _at_working_size(cfg, get_decomposer("learned", weights=cfg.flow.decompose_weights, device=device,
                                                       **kwargs))
        else:
            dec = get_decomposer("ransac", base=_at_working_size(cfg, get_estimator(
                cfg.flow.method, weights=cfg.flow.weights, device=device, precision=cfg.flow.precision,
                tta=cfg.flow.tta, **kwargs)))
        return ComponentEstimator(dec, cfg.flow.component)
    return _at_working_size(cfg, get_estimator(cfg.flow.method, weights=cfg.flow.weights, device=device,
                                               precision=cfg.flow.precision, tta=cfg.flow.tta, **kwargs))


def _clip_names(samples: pd.DataFrame) -> list[str]:
    """``dataset/subject/clip`` of each row of a clip table (columns dataset, subject, clip; dataset absent: the
    synthetic clips, ``subject/clip``), for messages."""
    cols = [c for c in ("dataset", "subject", "clip") if c in samples.columns]
    return ["/".join(map(str, row)) for row in samples[cols].itertuples(index=False)]


def _check_unit_images(onset01, apex01) -> None:
    """Raise ValueError unless ``onset01`` and ``apex01`` are float torch tensors (N, 1|3, H, W) of one shape with
    their finite values in [0, 1] (NaN / Inf are left to the flow's own check, which names the clips)."""
    for name, x in (("onset01", onset01), ("apex01", apex01)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"compute_flow_features: {name} is a {type(x).__module__}.{type(x).__name__}, not a "
                             "torch tensor (N, 1|3, H, W) in [0, 1]; convert uint8 frames with icegan.pipeline.to_unit")
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"compute_flow_features: {name} has shape {tuple(x.shape)}, expected (N, 1|3, H, W) "
                             "(a channel dimension of 1 or 3; to_unit adds it to (N, H, W) frames)")
        if not x.is_floating_point():
            raise ValueError(f"compute_flow_features: {name} is {x.dtype}, expected float in [0, 1] "
                             "(to_unit divides uint8 frames by 255)")
    if onset01.shape != apex01.shape:
        raise ValueError(f"compute_flow_features: onset01 {tuple(onset01.shape)} and apex01 {tuple(apex01.shape)} "
                         "differ in shape; give one apex per onset, the same size")
    for name, x in (("onset01", onset01), ("apex01", apex01)):
        if x.numel():
            lo, hi = (float(v) for v in torch.aminmax(x.detach()))
            if (lo < 0 and lo != float("-inf")) or (hi > 1 and hi != float("inf")):
                raise ValueError(f"compute_flow_features: {name} holds values in [{lo:g}, {hi:g}], expected [0, 1] "
                                 "(frames in 0..255: divide by 255, icegan.pipeline.to_unit)")


def compute_flow_features(estimator, onset01: torch.Tensor, apex01: torch.Tensor, size: int,
                          normalize: str = "minmax", batch_size: int = 32, progress: bool = False,
                          desc: str = "flow", names: Sequence[str] | None = None) -> torch.Tensor:
    """(u, v, optical strain) features of onset→apex pairs, batched, without gradients.

    Args:
        estimator: object with ``estimate(img1, img2) -> (B, 2, H, W)`` pixels.
        onset01, apex01: (N, 1 or 3, H, W) float torch tensors in [0, 1] (:func:`to_unit` of uint8 frames), the
            same shape.
        size: feature side; normalize: see :func:`flownet.strain.flow_features`.
        names: the N clips' names (e.g. ``casme2/sub01/EP02_01f``), for the error message; None: pair indices.

    Returns:
        (N, 3, size, size) float32 on CPU.

    Raises:
        ValueError: ``onset01`` or ``apex01`` is not a torch tensor (a NumPy array: :func:`to_unit`), not
            (N, 1|3, H, W), not floating point, the two differ in shape, or a finite value lies outside [0, 1]
            (frames in 0..255: :func:`to_unit`); the message names the argument.
        FloatingPointError: the flow of some pairs holds NaN or Inf (checked per batch through its sum): names the
            clips and whether the flow network produced it or the images were already not finite.
    """
    from tqdm.auto import tqdm

    from flownet.registry import NonFiniteFlowError, non_finite_flow_masks
    from flownet.strain import flow_features
    _check_unit_images(onset01, apex01)
    out = []
    n = onset01.shape[0]

    def named(idx) -> str:
        return _first_five([str(names[j]) if names is not None else f"pair {j}" for j in sorted(set(idx))])

    with torch.no_grad():
        for i in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=not progress, leave=False):
            a, b = onset01[i:i + batch_size], apex01[i:i + batch_size]
            try:
                flow = estimator.estimate(a, b)
            except NonFiniteFlowError as exc:     # a custom network refused its own flow: add the clips' names
                pairs = [i + j % len(a) for j in exc.pairs]      # (a mirrored-pair batch holds each pair twice)
                raise NonFiniteFlowError(f"clip(s) {named(pairs)}: {exc}", pairs, exc.bad_pixels,
                                         exc.pixels) from None
            # every method: NaN maps refused where they are made; a sum is NaN/Inf when any element is (0.02 % of
            # SRFlowNet's time on 64x64 clips, an element-wise isfinite 0.4 %), an overflow only a false alarm
            masks = non_finite_flow_masks(flow, a, b)
            if masks is not None:
                bad, images = (m.cpu() for m in masks)
                pairs = [i + j for j in bad.nonzero().flatten().tolist()]
                if not bool(images[bad].all()):
                    raise FloatingPointError(f"clip(s) {named(pairs)}: NaN/Inf flow of images that are themselves "
                                             "NaN/Inf (onset or apex); the flow network is not at fault")
                raise FloatingPointError(f"clip(s) {named(pairs)}: the flow network "
                                         f"({getattr(estimator, 'name', type(estimator).__name__)}) produced NaN/Inf "
                                         "flow; its maps would be NaN")
            out.append(flow_features(flow.float(), size, normalize=normalize).cpu())
    return torch.cat(out) if out else torch.zeros(0, 3, size, size)


def face_provenance(cfg: MainConfig) -> dict:
    """How the faces whose flow makes the maps were prepared, as far as it changes the maps: for prepared clips
    ``{"modes": sorted modes of the datasets ("cropped": the release's crops resized; "raw": detected, aligned and
    cropped here), "size": face side in pixels}`` plus, when a dataset is prepared from raw frames, the crop settings
    ``detector``, ``margin`` and ``refine``; ``{"source": "synthetic"}`` for the built-in synthetic clips. Written
    into ``provenance.json`` by :func:`export_features` and compared by ``icegan predict``
    (:func:`icegan.saved_recognizer.maps_differ`): a model trained on the release's crops and given maps of faces
    cropped otherwise is warned about."""
    d = cfg.data
    if d.source == "synthetic":
        return {"source": "synthetic"}
    modes = sorted({spec.mode for spec in d.prepare.datasets})
    out: dict = {"modes": modes, "size": int(d.img_size)}
    if "raw" in modes:
        out.update(detector=d.prepare.detector, margin=float(d.prepare.margin), refine=bool(d.prepare.refine))
    return out


def flow_weights_provenance(cfg: MainConfig) -> dict:
    """``{"flow_weights": <path>, "flow_weights_sha256": <hex>}`` of the weights file the flow network of
    ``cfg`` loads (``flow.weights`` or, when unset, the shipped file), plus the same for the DecFlow weights
    of ``flow.decompose=learned``, and for ``flow.method=custom`` the spec and SHA-256 of its source file
    (``flow_module``, ``flow_module_sha256``); ``{}`` for classical flow. The run header and the feature cache carry it, so
    that a run resumed after the weights file changed (e.g. new shipped weights) is refused instead of mixing
    folds computed with two different networks.
    """
    import hashlib

    from flownet.registry import resolve_weights
    files = {}
    if cfg.flow.method in BACKBONES:
        # unset: the shipped default (load_main_config refuses a backbone without shipped weights and flow.weights)
        files["flow_weights"] = resolve_weights(cfg.flow.weights or None, cfg.flow.method)
    if cfg.flow.method == "custom" and cfg.flow.weights:
        files["flow_weights"] = Path(cfg.flow.weights)
    if cfg.flow.component != "total" and cfg.flow.decompose == "learned":
        from flownet.models.decflow import default_decflow_path
        files["decompose_weights"] = Path(cfg.flow.decompose_weights) if cfg.flow.decompose_weights \
            else default_decflow_path()
    out = {}
    flags = {"flow_weights": "flow.weights", "decompose_weights": "flow.decompose_weights"}
    for k, p in files.items():
        if not p.is_file():     # the run has loaded the network before: only a direct call gets here
            raise FileNotFoundError(f"{flags[k]}: {p} is not a file; give the weights file the flow network loads "
                                    f"(or leave {flags[k]} unset for the shipped one)")
        out[k] = p.name
        out[k + "_sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
    if cfg.flow.method == "custom":
        from flownet.plugins import source_sha256
        out["flow_module"] = cfg.flow.module
        out["flow_module_sha256"] = source_sha256(cfg.flow.module, "flow.module")
    return out


def real_motion_seen(estimator, subjects: Sequence[str]) -> list[str]:
    """The subjects among ``subjects`` whose real (unlabelled) onset→apex frames trained the flow network: those its
    weights file records under ``meta["real_pair_subjects"]`` (self-supervised weights, :mod:`flownet.selfsup`),
    matched by :func:`icegan.protocol.subjects_among`. Sorted; empty for classical flow and weights without the
    record. The network is found through the wrappers the main job puts around it (a head/expression component's
    ``decomposer``, a working-resolution or RANSAC decomposer's ``base``)."""
    from icegan.protocol import subjects_among
    net = estimator
    for attr in ("decomposer", "base"):
        net = getattr(net, attr, net)
    meta = getattr(getattr(net, "model", None), "meta", None) or {}
    return subjects_among(subjects, meta.get("real_pair_subjects") or [])


def _feature_environment(device: torch.device, precision: str = "fp32") -> dict:
    """What, beside the settings and the clips, decides the exact bits of the real flow maps computed on ``device``
    with ``flow.precision`` = ``precision``: the torch and OpenCV versions, the CPU's vector instructions and whether
    the device runs bf16 natively (which ``precision=auto`` follows: :func:`flownet.registry.native_bf16`), the
    precision the network then runs in, the threads, the device type and GPU model, and the processes sharing the
    work under ``torchrun``. Part of the key of a suite's shared maps (:func:`_real_features`): maps are shared only
    between runs that would have computed the same bits."""
    import cv2

    from flownet.registry import native_bf16, resolve_precision
    device = torch.device(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"torch": torch.__version__, "cv2": cv2.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": bool(native_bf16(device)), "precision": resolve_precision(precision, device, warn=False),
            "threads": torch.get_num_threads(), "device": device.type, "gpu": gpu,
            "processes": distributed.world_size()}


def _read_feature_cache(path: Path, key: str) -> Optional[torch.Tensor]:
    """The maps of a feature cache file ``path`` when its key is ``key``; None when the file is absent, made for
    another key, or unreadable (a warning names it; the maps are computed again)."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, weights_only=True)
    except Exception as exc:        # cut short by a kill while it was written (before it was written atomically)
        log.warning("%s cannot be read (%s: %s); computing the flow features again", path, type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "")
        return None
    if isinstance(blob, dict) and blob.get("key") == key:
        return blob["features"]
    return None


def _real_features(cfg: MainConfig, clips: Clips, estimator, run_dir: Path, provenance: dict,
                   progress: bool = True, shared_dir: Optional[Path] = None) -> torch.Tensor:
    """Flow features of every real clip, cached in ``run_dir/features_real.pt`` (keyed by settings and by
    ``provenance``: the SHA-256 of the flow weights from :func:`flow_weights_provenance` and, from :func:`run`, the
    clips' :func:`icegan.protocol.data_digest`).

    ``shared_dir`` (``icegan suite``: ``<suite>/flow_features``): maps shared by the runs of a suite, which differ
    mostly by seed and compute the same maps. ``<shared_dir>/<hash>.pt`` is keyed by the same key plus
    :func:`_feature_environment` (torch/OpenCV versions, CPU instructions, precision, threads, device), so a run
    reads only the exact maps it would have computed; a run that reads them also writes its own ``features_real.pt``.
    Several processes may write the shared file at once (each through its own temporary file; the last whole file
    stays).

    Returns:
        (N, 3, S, S) float32 maps (u, v, optical strain, min–max normalised to [0, 1] per clip), S =
        ``cfg.recognizer.input_size``, in the order of ``clips.samples``.
    """
    flow = without_neutral_keys(dataclasses.asdict(cfg.flow), "flow.")      # the keys of older caches
    key = json.dumps({"flow": flow, "size": cfg.recognizer.input_size,
                      "clips": clips.samples["clip"].tolist(),
                      "img": int(clips.onset.shape[-1]), "weights": provenance}, sort_keys=True)
    path = run_dir / "features_real.pt"
    shared = shared_key = None
    if shared_dir is not None:
        env = _feature_environment(resolve_device(cfg.device), cfg.flow.precision)
        shared_key = json.dumps({"run": key, "environment": env}, sort_keys=True)
        shared = Path(shared_dir) / f"{hashlib.sha256(shared_key.encode()).hexdigest()[:16]}.pt"
    cached = None
    from flownet.models.state_dict import save_torch_file
    if distributed.is_main():
        cached = _read_feature_cache(path, key)
        if cached is None and shared is not None:
            cached = _read_feature_cache(shared, shared_key)
            if cached is not None:          # the run folder holds its maps, as a run computing them does
                save_torch_file({"key": key, "features": cached, "seconds": 0.0, "from": str(shared)}, path)
                log.info("real flow features: %d clips read from %s", len(cached), shared)
    cached = distributed.broadcast_object(cached)          # every process takes the same branch
    if cached is not None:
        return cached
    t0 = time.time()
    mine = distributed.split_indices(len(clips.onset))      # all clips, or this process's share under torchrun
    with distributed.own_share():           # a NaN clip of this share: this rank's error alone, reported by it
        part = compute_flow_features(estimator, to_unit(clips.onset[mine.numpy()]), to_unit(clips.apex[mine.numpy()]),
                                     cfg.recognizer.input_size, "minmax", cfg.flow.batch_size,
                                     progress=progress and distributed.is_main(), desc="real flow",
                                     names=list(np.asarray(_clip_names(clips.samples), dtype=object)[mine.numpy()]))
    feats = distributed.all_gather_rows(part, mine, len(clips.onset))
    if distributed.is_main():
        seconds = time.time() - t0
        save_torch_file({"key": key, "features": feats, "seconds": seconds}, path)   # never left cut short
        if shared is not None:     # two suites in one folder may write it at once: each through its own temporary
            shared.parent.mkdir(parents=True, exist_ok=True)
            save_torch_file({"key": shared_key, "features": feats, "seconds": seconds}, shared, concurrent=True)
    log.info("real flow features: %d clips in %.1f s", len(feats), time.time() - t0)
    return feats


def map_file_names(subjects: Sequence[str], clips: Sequence[str]) -> list[str]:
    """File names of the clips' exported maps: ``<subject with / as _>_<clip>.npy`` (path separators in the clip name
    as ``_`` too), with ``_2``, ``_3``, ... added to a name an earlier clip already has, compared ignoring case (as a
    disk may): ``a/b_c`` + ``d`` and ``a/b`` + ``c_d`` would otherwise share one file, the second map replacing the
    first."""
    taken: set[str] = set()
    names = []
    for subject, clip in zip(subjects, clips):
        stem = re.sub(r"[/\\]", "_", f"{subject}/{clip}")
        name, k = f"{stem}.npy", 1
        while name.lower() in taken:
            k += 1
            name = f"{stem}_{k}.npy"
        taken.add(name.lower())
        names.append(name)
    return names


def export_features(cfg: MainConfig, out: str | Path, progress: bool = True) -> Path:
    """Write the flow features of the run's real clips as a feature table for ``icegan loso data.source=table``.

    The clips, the flow method and the feature size are the main job's (``cfg.data``, ``cfg.flow``,
    ``cfg.recognizer.input_size``): the maps are exactly those :func:`run_main` computes once per run (same function,
    same arguments; the labelled clips in batches of their own, in the main job's order, the unlabelled ones after,
    so that the labelled clips' maps equal the main job's bit for bit), so any recognizer, suite or nested selection
    of ``icegan loso`` can be run on your own prepared clips and flow. The flow and the min–max are per clip, but a
    label changes which clips share a flow batch, so a map can differ at float rounding (~1e-5) with and without a
    label (a learned flow's output depends slightly on the other pairs of its batch).

    Writes into ``out``: ``features.csv`` (dataset, subject, clip, label 0–2 or empty for a clip without a MEGC2019
    class (with ``data.labels`` other than ``megc2019``: the class name, e.g. ``others``, which ``icegan loso
    data.labels=...`` reads), path; :mod:`icegan.data.feature_table`: ``icegan loso`` refuses empty labels,
    ``icegan predict`` scores those clips), and when some clips have a label and others not,
    ``features_labelled.csv``: the rows of the labelled clips alone, same maps (what ``icegan loso`` and ``icegan
    fit`` take),
    ``maps/<subject>_<clip>.npy`` (:func:`map_file_names`: ``/`` and ``\\`` as ``_``, ``_2``, ``_3``, ... after a name
    already used) (3, S, S) float32 u, v, optical strain each min–max normalised to [0, 1] per clip,
    ``config.yaml`` (the resolved main config), ``provenance.json`` (flow method, weights' SHA-256, how the faces
    were prepared (:func:`face_provenance`), size, clips, clips skipped, seconds, ``environment``: the threads, CPU
    kernel level, versions and device the maps' last bits depend on (:func:`_feature_environment`), and only when
    the flow weights record real onset→apex frames of some of the exported clips' subjects (:func:`real_motion_seen`;
    a warning says so too) ``real_motion_subjects``: those subjects, sorted, which ``icegan loso`` on the table
    reports as not leak-free) and, when preprocessing could not prepare some of the clips (frames not on disk, no
    face found), ``skipped.csv``: their keys and reasons.

    A folder that holds ``features_labelled.csv`` but no ``features.csv`` is the output of a run stopped between the
    two tables (``features.csv`` is written last, whole, so that a folder that holds it is complete): that table is
    removed (a warning says so) and every file is written again.

    Returns:
        The path of ``features.csv``.
    Raises:
        FileExistsError: ``out`` already holds a ``features.csv`` (choose another folder or remove it).
        FileNotFoundError, ValueError: from the data or flow settings (a missing root, weights, a bad value).
    """
    from icegan.config import save_config
    out = Path(out)
    table, labelled_table = out / "features.csv", out / "features_labelled.csv"
    from icegan.paths import features_table_taken
    if taken := features_table_taken(out):
        raise FileExistsError(taken)
    if labelled_table.exists():     # features.csv is written last: without it the folder is a stopped run's
        log.warning("%s is left by a run stopped before it wrote %s (written last, so the folder is incomplete): "
                    "removed; every file of the folder is written again", labelled_table, table.name)
        labelled_table.unlink()
    _start_process(cfg)         # as train.py (the flow network's temporaries: 2.6 -> 1.8 s); threads= was ignored here
    device = resolve_device(cfg.device)
    t0 = time.time()
    estimator = build_flow(cfg, device)     # first: a missing weights file fails before any work
    clips = load_samples(cfg, progress=progress, unlabelled=True)
    # the labelled clips in batches of their own, in the main job's order (a learned flow's output depends slightly
    # on the batch it runs in: ~1e-5), so that their maps are the main job's bit for bit; the unlabelled ones after
    has_class = clips.samples["label"].to_numpy() >= 0
    feats = torch.zeros(len(has_class), 3, cfg.recognizer.input_size, cfg.recognizer.input_size)
    clip_names = np.asarray(_clip_names(clips.samples), dtype=object)
    for part in (np.flatnonzero(has_class), np.flatnonzero(~has_class)):
        if len(part):
            feats[part] = compute_flow_features(estimator, to_unit(clips.onset[part]), to_unit(clips.apex[part]),
                                                cfg.recognizer.input_size, "minmax", cfg.flow.batch_size,
                                                progress=progress, desc="flow features", names=list(clip_names[part]))
    maps = out / "maps"
    maps.mkdir(parents=True, exist_ok=True)
    rows = []
    samples = clips.samples[["dataset", "subject", "clip", "label"]]
    names = map_file_names(samples["subject"], samples["clip"])
    from icegan.labels import get_label_set
    classes = get_label_set(cfg.data.labels).classes
    by_name = cfg.data.labels != "megc2019"         # a table of another label set says which in every label cell
    for (dataset, subject, clip, label), f, name in zip(samples.itertuples(index=False), feats.numpy(), names):
        np.save(maps / name, np.ascontiguousarray(f, dtype=np.float32))
        cell = (classes[int(label)] if by_name else int(label)) if label >= 0 else ""
        rows.append({"dataset": dataset, "subject": subject, "clip": clip, "label": cell, "path": f"maps/{name}"})
    save_config(cfg, out / "config.yaml")
    write_skipped(out / "skipped.csv", clips.skipped)
    info = {"flow": dataclasses.asdict(cfg.flow), "weights": flow_weights_provenance(cfg),
            "faces": face_provenance(cfg), "size": int(feats.shape[-1]), "labels": cfg.data.labels, "clips": len(rows),
            "clips_skipped": len(clips.skipped), "seconds": round(time.time() - t0, 1),
            # the threads, CPU kernel level, versions and device the maps' last bits depend on (threads=0: the
            # environment's count)
            "environment": _feature_environment(device, cfg.flow.precision)}
    seen = real_motion_seen(estimator, sorted(set(samples["subject"].astype(str))))
    if seen:                # absent otherwise: provenance.json as before
        info["real_motion_subjects"] = seen
        log.warning("the flow weights were trained on the real onset->apex frames (unlabelled) of %d of the %d "
                    "subjects whose maps are exported (%s%s): recorded as real_motion_subjects in %s, and a LOSO on "
                    "these maps reports those folds as not leak-free; for flow no fold's data touched use "
                    "flow.method=tvl1 or farneback", len(seen), samples["subject"].nunique(), ", ".join(seen[:5]),
                    ", ..." if len(seen) > 5 else "", out / "provenance.json")
    from flownet.io import write_text_whole
    prov = json.dumps(info, indent=2, default=str)     # whole or not at all: icegan fit / predict / loso read it
    write_text_whole(out / "provenance.json", prov)
    written = pd.DataFrame(rows)
    if has_class.any() and not has_class.all():           # icegan loso / fit refuse a row without a label
        _write_table(written[has_class], labelled_table)
    _write_table(written, table)       # last: a table on disk means every map is there
    return table


def _write_table(df: pd.DataFrame, path: Path) -> None:
    """``df`` as CSV at ``path``, through a temporary file: a kill while writing never leaves a table cut short (at a
    line's end it would be read as a table of fewer clips)."""
    from flownet.io import write_whole
    from icegan.csv_names import csv_quoting
    write_whole(path, lambda tmp: df.to_csv(tmp, index=False, quoting=csv_quoting(df)))   # a "\r" in a name quoted


# ---------------------------------------------------------------------------------------------
# recognizers
# ---------------------------------------------------------------------------------------------

def fit_predict(rcfg: RecognizerSection, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                device: torch.device, seed: int = 0, sample_weight: Optional[torch.Tensor] = None,
                n_classes: int = 3) -> np.ndarray:
    """Train the recognizer (× ``rcfg.seeds``) on (N, 3, S, S) features and return test probabilities (n, K).

    ``sample_weight``: optional (N,) loss weight of every training row (:func:`icegan.recognition.fit_recognizer`).
    ``n_classes``: K, the classes of ``data.labels`` (:mod:`icegan.labels`)."""
    base = RecognizerConfig(**{f.name: getattr(rcfg, f.name) for f in dataclasses.fields(RecognizerConfig)})
    predict = fit_recognizer(base, x_train, y_train, device=device, seed=seed, progress=False,
                             sample_weight=sample_weight, n_classes=n_classes)
    return predict(x_test)


def fit_critic(rcfg: RecognizerSection, x_train: torch.Tensor, y_train: torch.Tensor, device: torch.device,
               seed: int = 0, n_classes: int = 3) -> torch.nn.Module:
    """A differentiable recognizer for the joint generator loss, frozen in eval mode.

    Same settings as the fold's recognizer (one seed); STSTNet when that recognizer is not a network
    (``logreg``, ``random_forest``, ``expcaps``); a ``custom`` network is its own critic.
    ``critic(features (B, 3, S, S)) -> logits (B, K)``, K = ``n_classes``.
    """
    fields = {f.name: getattr(rcfg, f.name) for f in dataclasses.fields(RecognizerConfig)}
    if fields["name"] not in ("ststnet", "offtanet", "custom"):
        fields["name"], fields["module"] = "ststnet", ""
    fields["seeds"] = 1
    base = RecognizerConfig(**fields)
    x = resize_features(x_train.float(), base.input_size)
    model, _ = train_models(base, x, y_train.long(), torch.ones(1, len(x), dtype=torch.bool), device=device,
                            seed=seed, progress=False, n_classes=n_classes)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ---------------------------------------------------------------------------------------------
# one fold
# ---------------------------------------------------------------------------------------------

def _use_threads(cfg: MainConfig) -> None:
    """``cfg.threads`` (> 0) threads for torch and NumPy/SciPy/scikit-learn's BLAS pools
    (:func:`icegan.environment.limit_threads`); 0 leaves the defaults."""
    if cfg.threads > 0:
        from icegan.environment import limit_threads
        limit_threads(cfg.threads)


def _start_process(cfg: MainConfig) -> None:
    """Process setup before a command's work (``train.py``, ``icegan features``): freed memory kept for reuse, so
    per-step temporaries reuse heap pages instead of fresh mmaps (:func:`icegan.allocator.retain_freed_memory`;
    docs: 106 -> 100 s demo), and :func:`_use_threads`."""
    from icegan.allocator import retain_freed_memory
    retain_freed_memory()
    _use_threads(cfg)


def _gan_config(cfg: MainConfig, device: torch.device, held_out: Optional[list[str]] = None,
                train_subjects: Optional[list[str]] = None):
    """The :class:`icegan.gan.trainer.GanConfig` of one fold (paper loss weights, our budget). ``held_out`` and
    ``train_subjects``: the fold's subjects, recorded with a prepared source's faces (onset and apex only) in the
    checkpoint's config, so that ``icegan gan eval`` scores the fold's GAN on its held-out subject."""
    from icegan.gan.trainer import GanConfig
    from icegan.labels import get_label_set
    g = GanConfig(name=cfg.name)
    g.model.n_classes = get_label_set(cfg.data.labels).n_classes      # the class condition: the run's label set
    g.model.classes = list(get_label_set(cfg.data.labels).classes)    # named in the checkpoint (icegan generate)
    g.data.img_size = cfg.data.img_size
    if cfg.data.source == "prepared":
        g.data.source = "prepared"
        g.data.prepare = dataclasses.replace(cfg.data.prepare, size=cfg.data.img_size, color="gray")
        g.data.apex_neighbors = 0
        g.data.holdout_subjects = list(held_out or [])
        g.data.train_subjects = None if train_subjects is None else list(train_subjects)
    g.model.g_base_channels = cfg.gan.base_channels
    g.model.g_max_channels = cfg.gan.max_channels
    g.model.d_base_channels = cfg.gan.d_base_channels
    g.model.skip = cfg.gan.skip
    g.model.motion_head = cfg.gan.motion_head
    g.model.motion_prior = cfg.gan.motion_prior
    g.model.d_motion_input = cfg.gan.d_motion_input
    g.loss.counterfactual = cfg.gan.counterfactual
    g.train.lr_d = cfg.gan.lr_d
    g.train.beta1 = cfg.gan.beta1
    g.train.amp = cfg.gan.amp
    g.train.epochs = cfg.gan.epochs
    g.train.batch_size = cfg.gan.batch_size
    g.train.lr = cfg.gan.lr
    g.train.seed = cfg.seed
    g.train.device = str(device)
    g.train.progress = False
    g.train.sample_every = max(1, cfg.gan.epochs)
    # a fold's GAN checkpoint (its resume point inside the fold) at most ten times per fold, and at its last epoch:
    # every epoch, configs/megc2019.yaml's 100 GAN epochs wrote 100 checkpoints per fold and 68 folds per run
    # (ceil: epochs // 10 was every epoch for 10-19 epochs)
    g.train.checkpoint_every = max(1, math.ceil(cfg.gan.epochs / 10))
    return g


def _sample_grid_png(path: Path, onset: torch.Tensor, apex: torch.Tensor, fakes: list[torch.Tensor]) -> None:
    """Rows: onset | real apex | synthetic apex for each class (all in [-1, 1])."""
    import torchvision.utils as vutils
    cols = torch.stack([onset, apex, *fakes], 1)          # (n, 2 + K, 1, S, S)
    grid = vutils.make_grid(cols.flatten(0, 1), nrow=cols.shape[1], normalize=True, value_range=(-1, 1), pad_value=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    vutils.save_image(grid, str(path))


#: (motion-prior method, digest of the clips) -> every clip's classical flow (N, 2, S, S): the GAN motion prior's
#: flows of the run this process works for (:meth:`FoldRunner._motion_prior_flows`)
_PRIOR_FLOWS: dict[tuple[str, str], torch.Tensor] = {}


def reusing_onsets(estimator):
    """Context in which an SRFlowNet estimator (``estimator`` or the ``base`` it resizes for) encodes each distinct
    first image once (:meth:`flownet.models.srflownet.SRFlowNet.reusing_first_images`): the same flows to float
    rounding, without encoding an onset again for each of its synthetic apexes. A new, empty cache per context (per
    fold): a fold's scores still depend on that fold alone, not on the folds run before it in the process. Another
    estimator: a context that does nothing."""
    from flownet.models.srflownet import FirstImageCache, SRFlowNet
    net = getattr(getattr(estimator, "base", estimator), "model", None)
    if not isinstance(net, SRFlowNet):
        return contextlib.nullcontext()
    return net.reusing_first_images(FirstImageCache())


def _flow_networks(estimator) -> list:
    """``(holder, module)`` for each network of the flow ``estimator``: the ``model`` module of the estimator and of
    the wrappers' inner estimators (a component's ``decomposer``, a working-size or RANSAC wrapper's ``base``), each
    network once."""
    out, seen, todo = [], set(), [estimator]
    while todo:
        obj = todo.pop(0)
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        own = vars(obj) if hasattr(obj, "__dict__") else {}
        model = own.get("model")
        if isinstance(model, torch.nn.Module) and all(m is not model for _, m in out):
            out.append((obj, model))
        todo += [own.get("decomposer"), own.get("base")]
    return out


class FoldRunner:
    """Callable ``fold → scores`` for :func:`icegan.protocol.run_loso` (one LOSO fold of the main job)."""

    def __init__(self, cfg: MainConfig, clips: Clips, real_feats: torch.Tensor, estimator, run_dir: Path,
                 device: torch.device):
        self.cfg, self.clips, self.real_feats = cfg, clips, real_feats
        self.estimator, self.run_dir, self.device = estimator, run_dir, device
        self.labels = torch.tensor(clips.samples["label"].to_numpy(), dtype=torch.long)
        self.clip_names = np.asarray(_clip_names(clips.samples), dtype=object)     # the error messages' names
        from icegan.labels import get_label_set
        self.n_classes = get_label_set(cfg.data.labels).n_classes        # K of data.labels
        self.fold_seconds: dict[str, float] = {}
        self.fold_peak_rss_mb: dict[str, float] = {}      # Ray workers only (the driver's is the process's)

    def _motion_prior_flows(self, method: str, idx) -> torch.Tensor:
        """The classical flows onset → apex of clips ``idx`` for the GAN's motion prior: rows of every clip's flows,
        computed once per run and process (a clip is in the training set of all folds but its own, and its flow
        does not depend on the fold). The flows are kept in the module (:data:`_PRIOR_FLOWS`, keyed by the method
        and a digest of the clips' pixels), not in the runner: a Ray worker unpickles a fresh runner per fold."""
        from icegan.gan.motion import pair_flows
        h = hashlib.sha1()
        for a in (self.clips.onset, self.clips.apex):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        key = (method, h.hexdigest())
        if key not in _PRIOR_FLOWS:
            _PRIOR_FLOWS.clear()            # one run's flows per process
            _PRIOR_FLOWS[key] = pair_flows(self._pm1(self.clips.onset), self._pm1(self.clips.apex), method)
        return _PRIOR_FLOWS[key][torch.as_tensor(idx, dtype=torch.long)]

    # images in the GAN's range
    def _pm1(self, arr: np.ndarray) -> torch.Tensor:
        return to_unit(arr) * 2.0 - 1.0

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["device"] = None          # re-resolved where the fold runs (a Ray worker may have a GPU)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.device = resolve_device(self.cfg.device)
        # Ray hands over read-only, zero-copy views of its object store: take private, freshly
        # allocated copies (writable, and aligned like the sequential run's, so results are identical)
        self.clips = Clips(self.clips.samples, np.array(self.clips.onset), np.array(self.clips.apex))
        self.real_feats = self.real_feats.clone()
        self.labels = self.labels.clone()
        for holder, model in _flow_networks(self.estimator):
            with torch.no_grad():
                for t in list(model.parameters()) + list(model.buffers()):
                    t.data = t.data.clone()
            model.to(self.device)
            holder.device = self.device     # every holder is a learned estimator (flownet.registry, DecFlow): has one

    def task_report(self, fold) -> dict:
        """Per-fold extras sent back from a Ray worker: the fold's wall time (s) and the worker's
        peak resident memory so far (MiB)."""
        import resource
        return {"seconds": self.fold_seconds[fold.subject],       # __call__ timed the fold
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}

    def merge_report(self, fold, extra: dict) -> None:
        """Driver side of :meth:`task_report`."""
        self.fold_peak_rss_mb[fold.subject] = round(float(extra["peak_rss_mb"]), 1)
        self.fold_seconds[fold.subject] = extra["seconds"]

    def __call__(self, fold) -> np.ndarray:
        """Train the fold's models on ``fold.train_idx`` and return (n_test, K) scores of ``fold.test_idx``.

        Seeded from ``cfg.seed`` and the fold index alone, so a fold gives the same scores whatever
        ran before it, in this process or in a Ray worker (same torch thread count assumed): the recognizer, the
        augmentation draw and the joint critic from ``cfg.seed`` plus the fold index (wrapped into [0, SEED_MAX] by
        :func:`flownet.user_numbers.derived_seed`), the fold's GAN (its ``train.seed``, and the noise of its sample
        grid) from ``cfg.seed`` alone, the same in every fold (its training subjects are what differ)."""
        t0 = time.time()
        cfg = self.cfg
        fold_seed = derived_seed(cfg.seed, fold.index)
        torch.manual_seed(fold_seed)
        np.random.seed(fold_seed)
        _use_threads(cfg)                   # a Ray worker runs folds with this too
        tr, te = fold.train_idx, fold.test_idx
        fold_dir = self.fold_dir(fold)
        feats_tr, y_tr = self.real_feats[tr], self.labels[tr]
        gan_state = weight = None
        earlier_s = 0.0                     # GAN training seconds of the attempts killed before (its checkpoint's)
        with distributed.own_share():       # a non-finite loss of this rank's shard: its error alone, reported by it
            if cfg.gan.enabled:
                gan_state, synth_feats, synth_y, earlier_s = self._gan_stage(fold, fold_dir, feats_tr, y_tr)
                if synth_feats is not None and len(synth_feats):
                    if cfg.gan.synthetic_weight != 1.0:     # 1.0: no weights at all, bit-identical to before the option
                        weight = torch.cat([torch.ones(len(feats_tr)),
                                            torch.full((len(synth_feats),), float(cfg.gan.synthetic_weight))])
                    feats_tr = torch.cat([feats_tr, synth_feats])
                    y_tr = torch.cat([y_tr, synth_y])
            if cfg.recognizer.name == "expcaps":
                scores = self._expcaps_scores(gan_state, te)
            else:
                scores = fit_predict(cfg.recognizer, feats_tr, y_tr, self.real_feats[te], self.device,
                                     seed=fold_seed, sample_weight=weight, n_classes=self.n_classes)
        # in TensorBoard as fold/seconds (run_main); a fold resumed from its GAN checkpoint adds the GAN seconds spent
        # before the kill, so timing.json and summary.md do not report the last attempt alone
        self.fold_seconds[fold.subject] = time.time() - t0 + earlier_s
        return scores

    def fold_dir(self, fold) -> Path:
        """The folder of ``fold`` (its ``subject``, ``/`` as ``_``) in the run: ``<run_dir>/folds/casme2_sub05``."""
        return self.run_dir / "folds" / fold.subject.replace("/", "_")

    def _gan_stage(self, fold, fold_dir: Path, feats_tr: torch.Tensor, y_tr: torch.Tensor):
        """Train (or resume) the fold's GAN on its training pairs and make its synthetic rows.

        Returns:
            ``(gan state, synthetic features or None, their labels or None, earlier seconds)``: the synthetic rows
            are (M, 3, S, S) flow features and (M,) labels (None with ``gan.synthetic_ratio=0`` or ExpCaps); the
            earlier seconds are the GAN training time of the attempts killed before (``elapsed_s`` of the
            checkpoint resumed; 0.0 without one, or off rank 0).
        """
        from icegan.gan.synthesis import balanced_augmentation
        from icegan.gan.trainer import train_gan
        cfg = self.cfg
        tr = fold.train_idx
        onset = self._pm1(self.clips.onset[tr])
        apex = self._pm1(self.clips.apex[tr])
        extra = None
        if cfg.gan.joint:
            extra = self._joint_loss(feats_tr, y_tr, fold.index)
        subjects = self.clips.samples["subject"].astype(str).to_numpy()
        gcfg = _gan_config(cfg, self.device, sorted(set(subjects[fold.test_idx])),
                           sorted(set(subjects[tr])))
        prior_flows = None
        if gcfg.model.motion_head and gcfg.model.motion_prior != "none":
            # called by train_gan only when it computes the prior: a fold resumed from its GAN checkpoint (which
            # holds the prior) does not compute the run's flows
            prior_flows = functools.partial(self._motion_prior_flows, gcfg.model.motion_prior, tr)
        writer = None
        if distributed.is_main():
            # the fold's GAN curves and samples in TensorBoard (runs/<name>/tb/gan/<subject>) instead of a console
            # line per epoch and fold
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(log_dir=str(self.run_dir / "tb" / "gan" / fold_dir.name))
        # under torchrun rank 0 alone reads the fold's last.pt: one it refuses (damaged, of other pairs, of more
        # epochs) stops every rank here, before train_gan's first collective (the others leave quietly)
        resume_payload = distributed.main_only_check(
            lambda: self._gan_resume_point(fold, fold_dir / "gan", gcfg, onset, apex, y_tr))
        earlier_s = float(resume_payload.get("elapsed_s", 0.0)) if resume_payload is not None else 0.0
        try:
            state = train_gan(onset, apex, y_tr, gcfg, device=self.device,
                              out_dir=fold_dir / "gan" if distributed.is_main() else None, extra_loss_fn=extra,
                              log=writer, log_level=logging.DEBUG, prior_flows=prior_flows,
                              resume_payload=resume_payload,
                              final_optimiser_states=False)     # a finished fold's GAN never trains again
        finally:
            if writer is not None:
                writer.close()
        g = state.generator.eval()
        # class-balanced augmentation for the training onsets
        counts = torch.bincount(y_tr, minlength=self.n_classes)
        target = int(round(int(counts.max()) * (1.0 + cfg.gan.synthetic_ratio)))
        synth_feats = synth_y = None
        # the ExpCaps recognizer scores with the discriminator and reads no flow features: no synthetic apex is made
        if cfg.gan.synthetic_ratio > 0 and cfg.recognizer.name != "expcaps":
            fake, src, cls = balanced_augmentation(g, onset.to(self.device), y_tr,
                                                   target_per_class=target, seed=derived_seed(cfg.seed, fold.index))
            fake01 = (fake.cpu().float() + 1) / 2
            onset01 = (onset[src] + 1) / 2
            with reusing_onsets(self.estimator):       # each onset appears in many synthetic pairs
                tr_names = self.clip_names[np.asarray(tr)]
                synth_feats = compute_flow_features(self.estimator, onset01, fake01, cfg.recognizer.input_size,
                                                    "minmax", cfg.flow.batch_size,
                                                    names=[f"synthetic apex of {tr_names[k]}'s onset"
                                                           for k in torch.as_tensor(src).cpu().tolist()])
            synth_y = cls.long()
        # sample grid: one onset per class present
        with torch.no_grad():
            pick = [int(np.flatnonzero(y_tr.numpy() == k)[0]) for k in range(self.n_classes)
                    if (y_tr == k).any()]
            o = onset[pick].to(self.device)
            z = torch.randn(len(pick), g.z_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(self.device)
            fakes = [g(o, z, torch.full((len(pick),), k, dtype=torch.long, device=self.device)).cpu()
                     for k in range(self.n_classes)]
        if distributed.is_main():
            _sample_grid_png(fold_dir / "samples.png", onset[pick], apex[pick], fakes)
        return state, synth_feats, synth_y, earlier_s

    def _gan_resume_point(self, fold, gan_dir: Path, gcfg, onset: torch.Tensor, apex: torch.Tensor,
                          labels: torch.Tensor) -> Optional[dict]:
        """The fold's GAN checkpoint to resume (``<gan_dir>/checkpoints/last.pt``), read and checked as ``train_gan``
        does (pairs: ``onset``/``apex`` (N, 1, S, S) in [-1, 1], ``labels`` (N,); ``train.epochs``), with an INFO line
        saying where the fold's GAN resumes. None when there is none, ``train.resume`` is off, or off rank 0.

        Raises:
            GanCheckpointError: unreadable, of other pairs, or of more epochs (names the file and what to do).
        """
        from icegan.gan.trainer import (RESUME_ADVICE, _read_resume, _refuse_fewer_epochs, _refuse_other_pairs,
                                        training_pairs_sha256)
        ckpt = gan_dir / "checkpoints" / "last.pt"
        if not (distributed.is_main() and gcfg.train.resume and ckpt.is_file()):
            return None
        payload = _read_resume(ckpt, f"the GAN checkpoint to resume ({RESUME_ADVICE})")
        try:
            where = ckpt.relative_to(self.run_dir)
        except ValueError:
            where = ckpt
        done = payload.get("epoch") if isinstance(payload, dict) else None
        if isinstance(done, int) and done < gcfg.train.epochs:
            log.info("fold %s: GAN resumes at epoch %d of %d from %s", fold.subject, done, gcfg.train.epochs, where)
        elif isinstance(done, int):
            log.info("fold %s: GAN of %d epochs read from %s (trained earlier; no epoch left to train)", fold.subject,
                     done, where)
        _refuse_other_pairs(ckpt, payload, training_pairs_sha256(onset, apex, labels))
        _refuse_fewer_epochs(ckpt, payload, gcfg.train.epochs)
        return payload

    def _joint_loss(self, feats_tr: torch.Tensor, y_tr: torch.Tensor, fold_index: int):
        """Joint generator loss: a critic recognizer (trained on the fold's real features, frozen)
        classifies the SRFlowNet flow features of (onset, G(onset, z, c)); CE against c."""
        from flownet.strain import flow_features
        cfg = self.cfg
        critic = fit_critic(cfg.recognizer, feats_tr, y_tr, self.device, seed=derived_seed(cfg.seed, 1000 + fold_index),
                            n_classes=self.n_classes)
        for p in critic.parameters():
            p.requires_grad_(False)
        net = self.estimator.model
        for p in net.parameters():
            p.requires_grad_(False)
        weight, size = cfg.gan.joint_weight, cfg.recognizer.input_size

        def loss(g, onset, z, c, fake):
            # train_gan calls this inside its autocast block (gan.amp on a GPU): the flow network and the critic run
            # in float32 all the same (a no-op on a CPU run, which has no autocast)
            with torch.autocast(device_type=fake.device.type, enabled=False):
                flow = self.estimator.forward((onset.float() + 1) / 2, (fake.float() + 1) / 2)
                logits = critic(flow_features(flow, size, normalize="minmax"))
                return weight * F.cross_entropy(logits, c)
        return loss

    def _expcaps_scores(self, gan_state, test_idx) -> np.ndarray:
        d = gan_state.discriminator.eval()
        with torch.no_grad():
            onset = self._pm1(self.clips.onset[test_idx]).to(self.device) if getattr(d, "motion_input", False) else None
            out = d(self._pm1(self.clips.apex[test_idx]).to(self.device), reconstruct=False, onset=onset)
        return out.exp_len.float().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# the whole run
# ---------------------------------------------------------------------------------------------

def run_main(cfg: MainConfig, out: str | Path | None = None, progress: bool = True,
             executor: Optional[Any] = None, feature_cache: str | Path | None = None) -> dict:
    """Run (or resume) the main job and return its ``metrics.json`` content.

    Writes into ``out`` (default ``<cfg.out_dir>/<cfg.name>``): config.yaml, predictions.csv,
    metrics.json/.md, confusion.png, tb/, folds/<dataset>_<subject>/samples.png and GAN checkpoints (a finished
    fold's without optimiser states),
    features_real.pt, timing.json, and skipped.csv when some clips of the data section are not in the run (key,
    reason); then refreshes ``summary.md`` in the parent folder (not one it did not write: :func:`write_summary`).

    Args:
        executor: where the folds run: None (one after another here) or a fold map such as
            :class:`icegan.executors.RayExecutor`. Under ``torchrun`` each fold is trained by all
            processes together (:mod:`icegan.distributed`); rank 0 writes the outputs.
        feature_cache: a folder of real flow maps shared by several runs (``icegan suite`` gives
            ``<suite>/flow_features``): a run whose maps another run of the same settings, clips and machine
            computed reads them instead of computing them again (:func:`_real_features`; the same bits).
    """
    _start_process(cfg)
    requested = resolve_device(cfg.device)
    distributed.init_from_env(device_type=requested.type)     # gloo for device=cpu, also on a GPU machine
    run_dir = Path(out) if out is not None else Path(cfg.out_dir) / cfg.name
    from icegan.protocol import _RunFolderLock, refuse_run_folder_conflict
    # one process writes a run folder at a time, from the start: a second one is refused before it computes features,
    # writes skipped.csv or replaces features_real.pt; run_loso's own hold inside is then a no-op (re-entrant)
    with _RunFolderLock(run_dir) as lock:
        def hold() -> None:
            run_dir.mkdir(parents=True, exist_ok=True)
            refuse_run_folder_conflict(run_dir, "run.json")     # another kind of run's folder: no .lock left in it
            lock.hold()     # LosoStateError while another process writes the folder; released after write_summary
        # rank 0 alone holds the folder; under torchrun the other ranks learn of its refusal and leave quietly
        distributed.main_only_check(hold)
        return _run_main_held(cfg, run_dir, requested, progress, executor, feature_cache)


def _run_main_held(cfg: MainConfig, run_dir: Path, requested: torch.device, progress: bool,
                   executor: Optional[Any], feature_cache: str | Path | None) -> dict:
    """:func:`run_main`'s work once it holds ``run_dir`` (rank 0; the other torchrun ranks hold nothing)."""
    from icegan.protocol import run_loso

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = distributed.local_device(requested)
    t0 = time.time()
    resumed = (run_dir / "run.json").is_file()      # a run folder begun earlier (its folds may all be unfinished)
    from icegan.recognition import check_network_builds
    check_network_builds(cfg.recognizer)    # recognizer.input_size fits the network, before any work
    estimator = build_flow(cfg, device)     # first: a missing weights file fails before any work
    from icegan.data.features import validate_samples
    from icegan.data.prepare import PrepareError
    from icegan.data.sheets import SheetError
    from icegan.protocol import LosoScopeError, check_classes, make_folds
    from icegan.labels import get_label_set
    labels = get_label_set(cfg.data.labels)
    try:
        clips = load_samples(cfg, progress=progress and distributed.is_main())
        # the clips' table (labels, dataset prefixes, one row per clip) and its folds (two spellings of a subject,
        # too few subjects): bad input stops here in one line, before any training
        validate_samples(clips.samples, labels.n_classes)
        folds = make_folds(clips.samples["subject"].astype(str).tolist(), cfg.data.protocol, cfg.data.dataset)
        check_classes(clips.samples["label"].to_numpy(), folds, labels.classes)
    except (PrepareError, SheetError, LosoScopeError):
        raise               # their messages already name the file or the setting
    except ValueError as exc:
        raise PrepareError(f"the run's clips: {exc}") from None
    seen = real_motion_seen(estimator, [f.subject for f in folds])
    learned = cfg.flow.component != "total" and cfg.flow.decompose == "learned"    # then DecFlow's weights saw them
    weights = (cfg.flow.decompose_weights if learned else cfg.flow.weights) or "shipped"
    seen_by = f"{'flow.decompose_weights' if learned else 'flow.weights'}: {weights}"     # for run_loso's reports
    if seen and distributed.is_main():
        log.warning("the flow weights (%s) were trained on the real onset->apex frames (unlabelled) of %d of this "
                    "run's %d held-out subjects (%s%s): their features come from a network that has seen their "
                    "motion, so their folds are not leak-free; for flow no fold's data touched use "
                    "flow.method=tvl1 or farneback (README, 'What the learned parts have seen')",
                    weights, len(seen), len(folds),
                    ", ".join(seen[:5]),
                    ", ..." if len(seen) > 5 else "")
    from icegan.protocol import check_run_folder, data_digest
    # the weights' checksums and the clips themselves (labels and onset/apex pixels): a cache or a resumed run made
    # on other faces with the same clip names is never read back
    provenance = {**flow_weights_provenance(cfg), "data": data_digest(clips.samples, clips.onset, clips.apex)}
    run_provenance = {**provenance, **recognizer_provenance(cfg.recognizer)}       # what run.json records
    # a folder of another run is refused (as run_loso would) before its skipped.csv and features_real.pt are replaced
    distributed.main_only_check(lambda: check_run_folder(
        run_dir, clips.samples, cfg.data.protocol, cfg.data.dataset, cfg.oracle_epoch, cfg.data.max_folds, cfg,
        run_provenance, labels.classes))
    if distributed.is_main():
        write_skipped(run_dir / "skipped.csv", clips.skipped)
        if len(clips.skipped):
            log.warning("%d clip(s) of the data section are not in this run (%s, ...): all of them, with the reason, "
                        "in %s", len(clips.skipped), clips.skipped["key"].iloc[0], run_dir / "skipped.csv")
    feats = _real_features(cfg, clips, estimator, run_dir, provenance, progress=progress,
                           shared_dir=Path(feature_cache) if feature_cache is not None else None)
    from icegan.protocol import check_shared_maps
    try:                    # one clip under two subject ids: each fold would train on the other's copy
        check_shared_maps(clips.samples, feats, cfg.data.protocol, cfg.data.dataset)
    except ValueError as exc:
        raise PrepareError(f"the run's clips: {exc}") from None
    runner = FoldRunner(cfg, clips, feats, estimator, run_dir, device)
    planned = folds[:cfg.data.max_folds] if cfg.data.max_folds > 0 else folds      # the folds run_loso runs
    timing_path = run_dir / "timing.json"
    if executor is None:
        from icegan.executors import sequential_map as executor_map
    else:
        executor_map = executor

    def timed_map(fold_fn, folds):
        """The executor's folds, each one's time written to timing.json as it arrives (and to TensorBoard as
        ``fold/seconds`` at the folds finished): an interrupted run keeps the times of its finished folds, and the
        resumed run reports every fold. Before the first fold trains, a
        ``folds`` link of a run copied by ``icegan suite --reuse`` becomes a folder of the run's own
        (:func:`icegan.suite.own_fold_folder`): the folds trained now never write into the source run."""
        folds = list(folds)
        if folds and distributed.is_main():
            from icegan.suite import own_fold_folder
            own_fold_folder(run_dir)
            if resumed:
                _warn_other_device(timing_path, device, cfg.device)
                _warn_other_world_size(timing_path, distributed.world_size())
            if resumed and len(folds) == len(planned):  # run_loso says a resume only when a fold finished earlier
                kept = sum((runner.fold_dir(f) / "gan" / "checkpoints" / "last.pt").is_file() for f in folds)
                print(f"{cfg.name}: resuming {run_dir}: none of its {len(folds)} folds finished earlier; "
                      f"{len(folds)} to train"
                      + (f", the GAN of {kept} of them from its kept checkpoint" if kept else ""), file=sys.stderr)
        before = len(planned) - len(folds)      # run_loso passes the folds not finished yet
        for done, (fold, scores) in enumerate(executor_map(fold_fn, folds), before + 1):
            if distributed.is_main():
                # the device and the process count its folds are computed with
                _update_timing(timing_path, runner, device=str(device), world_size=distributed.world_size())
            if fold.writer is not None and fold.subject in runner.fold_seconds:
                # at the folds finished (1-based), the step of run_loso's loso/* scalars of this fold
                fold.writer.add_scalar("fold/seconds", runner.fold_seconds[fold.subject], done)
            yield fold, scores
    timed_map.executor = executor_map       # whose workers and threads the busy-CPU note counts (protocol)

    metrics = run_loso(clips.samples, runner, run_dir, protocol=cfg.data.protocol, dataset=cfg.data.dataset,
                       oracle_epoch=cfg.oracle_epoch, config=cfg, name=cfg.name, max_folds=cfg.data.max_folds,
                       progress=progress and distributed.is_main(), fold_map=timed_map,
                       provenance=run_provenance, classes=labels.classes,
                       motion_seen=seen, motion_seen_by=seen_by)
    _PRIOR_FLOWS.clear()                # the run's prior flows are not needed after its folds
    if not distributed.is_main():
        return metrics
    _update_timing(timing_path, runner, executor=type(executor).__name__ if executor is not None else "sequential",
                   last_call_seconds=round(time.time() - t0, 1), device=str(device),
                   world_size=distributed.world_size())
    write_summary(run_dir.parent)
    return metrics


def _update_timing(path: Path, runner: FoldRunner, device: Optional[str] = None, world_size: Optional[int] = None,
                   **extra) -> None:
    """Merge the runner's fold times (seconds) and peak memory (MiB) by subject, and ``extra``, into ``path``
    (``timing.json``), keeping the folds of earlier, interrupted calls; written whole or not at all.

    Args:
        device: the device this call computes its folds on (``"cpu"``, ``"cuda:0"``); given, each of the runner's
            folds is recorded under it in ``fold_device`` ({subject: device}, beside ``fold_seconds`` and merged as
            it is, so a run resumed on other devices keeps which fold ran where: :func:`_warn_other_device`), and
            the top-level ``device`` says the device of the latest call that computed folds. A file written before
            ``fold_device`` gives its earlier folds its top-level ``device``.
        world_size: the torchrun process count (1: one process) this call computes its folds with; given, each of
            the runner's folds is recorded under it in ``fold_world_size`` ({subject: count}, merged as
            ``fold_device``: :func:`_warn_other_world_size`). A file written before it leaves its earlier folds
            unrecorded.
    """
    timing = (_read_timing(path) if path.is_file() else None) or {"fold_seconds": {}}
    if device is not None:
        fold_device = timing.setdefault("fold_device", {})
        old = timing.get("device")
        if isinstance(old, str) and isinstance(fold_device, dict):    # an older file: its folds ran on its device
            for s in timing["fold_seconds"]:
                fold_device.setdefault(s, old)
        if not isinstance(fold_device, dict):
            fold_device = timing["fold_device"] = {}
        fold_device.update({s: device for s in runner.fold_seconds})
        if runner.fold_seconds:         # the device of the latest folds computed (a call that trained none: kept)
            timing["device"] = device
    if world_size is not None:
        fold_world_size = timing.get("fold_world_size")
        if not isinstance(fold_world_size, dict):
            fold_world_size = timing["fold_world_size"] = {}
        fold_world_size.update({s: int(world_size) for s in runner.fold_seconds})
    timing["fold_seconds"].update(runner.fold_seconds)
    if runner.fold_peak_rss_mb:
        timing.setdefault("fold_peak_rss_mb", {}).update(runner.fold_peak_rss_mb)
    timing.update(extra)
    from flownet.io import write_text_whole
    write_text_whole(path, json.dumps(timing, indent=2))   # a Ctrl-C leaves the old file


def _first_five(parts: list[str]) -> str:
    """``parts`` joined with ", ", the first five only and ``" and N more"`` after them: ``"a, b, c, d, e and 2
    more"`` for seven."""
    return ", ".join(parts[:5]) + (f" and {len(parts) - 5} more" if len(parts) > 5 else "")


def _recorded_timing(path: Path) -> dict:
    """The run's ``timing.json`` at ``path`` as a dict, for the resume warnings; ``{}`` when it is missing,
    unreadable, not JSON or not a mapping (those warnings then say nothing)."""
    try:
        timing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return timing if isinstance(timing, dict) else {}


def _warn_other_device(timing_path: Path, device: torch.device, setting: str) -> None:
    """Warn (not refuse) when the run folder's ``timing.json`` records that any of its finished folds was computed
    on another kind of device (``cuda`` vs ``cpu``; ``cuda:0`` vs ``cuda:1`` is the same kind) than ``device``, the
    one this call trains its folds on (``setting``: the config's ``device``, e.g. ``auto``); the warning names those
    folds and their devices. Read from ``fold_device`` ({subject: device}, :func:`_update_timing`), so a fold of a
    GPU stays seen after any number of resumes on a CPU; also from the top-level ``device`` (the latest folds', the
    one record of a file written before ``fold_device``). A
    run begun on a GPU and resumed on a CPU (``device: auto``, which the config comparison of a resume sees as the
    same) would otherwise mix the folds of both silently: a fold's scores depend on the device (float rounding,
    cuDNN kernels). A missing or unreadable ``timing.json``, or one that records no device: nothing said."""
    timing = _recorded_timing(timing_path)
    per_fold, recorded = timing.get("fold_device"), timing.get("device")
    other, which = {}, "its finished folds"
    if isinstance(per_fold, dict) and per_fold:
        other = {s: d for s, d in per_fold.items() if isinstance(d, str) and d.split(":")[0] != device.type}
        which = f"{len(other)} of its {len(per_fold)} finished folds"
    if not other and isinstance(recorded, str) and recorded.split(":")[0] != device.type:
        other, which = {"its latest folds": recorded}, "its latest folds"    # also a file before fold_device
    if not other:
        return
    kinds = sorted(set(other.values()))
    folds = _first_five([f"{s} on {d}" for s, d in other.items()])
    log.warning("%s: %s were computed on %s (%s records %s), now on %s (device: %s): the run mixes devices; resume "
                "where %s picks %s or delete the folder", timing_path.parent, which, " and ".join(kinds),
                timing_path.name, folds, device, setting, setting, kinds[0].split(":")[0])


def _warn_other_world_size(timing_path: Path, world_size: int) -> None:
    """As :func:`_warn_other_device`, for the torchrun process count: warn when ``timing.json``'s
    ``fold_world_size`` ({subject: count}) records a finished fold trained by another count than ``world_size``
    (this call's, 1: one process), e.g. a run begun with ``torchrun --nproc_per_node 2`` resumed in one process: a
    fold's scores depend on it (batch-norm statistics per process, each shard's loss normalised by itself). The
    advice names a count to resume with only when every recorded fold shares one; folds of several counts already
    mix them, and no resume can undo that: another ``--out`` or deleting the folder is advised. A file written
    before icegan recorded the count: nothing said."""
    per_fold = _recorded_timing(timing_path).get("fold_world_size")
    if not isinstance(per_fold, dict):
        return
    counted = {s: n for s, n in per_fold.items() if isinstance(n, int)}
    other = {s: n for s, n in counted.items() if n != world_size}
    if not other:
        return
    counts = sorted(set(other.values()))
    folds = _first_five([f"{s} by {n}" for s, n in other.items()])
    if len(set(counted.values())) > 1:      # the recorded folds already mix counts: no count to resume with
        advice = "the run already mixes process counts; use another --out or delete the folder"
    else:
        advice = "resume with " + ("one process (no torchrun)" if counts[0] == 1
                                   else f"torchrun --nproc_per_node {counts[0]}") + " or delete the folder"
    log.warning("%s: %d of its %d finished folds were trained by %s process(es) (%s records %s), now by %d: the run "
                "mixes process counts, and a fold's scores depend on them (batch-norm statistics per process); %s",
                timing_path.parent, len(other), len(per_fold), " and ".join(map(str, counts)), timing_path.name,
                folds, world_size, advice)


def _read_timing(path: Path) -> Optional[dict]:
    """A run's ``timing.json`` (``{"fold_seconds": {subject: s}, ...}``), or None with a warning naming it when it
    cannot be read: cut short (an icegan before 062bd1b wrote it in place, so a kill then left it so) or damaged. The
    times are only reported (``summary.md``, ``bench/``), so a run goes on and the file is started again; before, its
    JSONDecodeError ended every resume of the run before its first fold was recorded, and every run beside it in
    ``summary.md``."""
    try:
        timing = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(timing, dict) or not isinstance(timing.get("fold_seconds", {}), dict):
            raise ValueError("not a mapping with a mapping 'fold_seconds'")
    except (OSError, ValueError) as exc:            # JSONDecodeError, UnicodeDecodeError: ValueErrors
        log.warning("%s cannot be read (%s: %s); the fold times it held are not reported (a resume of that run "
                    "starts the file again)", path, type(exc).__name__, str(exc).splitlines()[0] if str(exc)
                    else "")
        return None
    timing.setdefault("fold_seconds", {})
    return timing


def _describe(cfg: dict) -> dict:
    """The description columns of the config dict ``cfg``'s :func:`write_summary` row; its GAN column is the skip
    path, ``off``, or the skip path and ``(no synthetic apexes)`` for a GAN that reaches no score
    (:func:`icegan.protocol.gan_reaches_no_score`)."""
    from icegan.protocol import gan_reaches_no_score
    gan = cfg.get("gan", {})
    data = cfg.get("data", {})
    labels = data.get("labels") or "megc2019"           # another label set is another task: said beside the source
    skip = gan.get("skip", "?")
    return {
        "data": data.get("source", "?") + (f" ({labels} classes)" if labels != "megc2019" else ""),
        "flow": cfg.get("flow", {}).get("method", "?"),
        "recognizer": cfg.get("recognizer", {}).get("name", "?"),
        "GAN": ((f"{skip} (no synthetic apexes)" if gan_reaches_no_score(cfg) else skip) if gan.get("enabled")
                else "off"),
        "joint": ("on" if gan.get("enabled") and gan.get("joint") else "off"),
    }


def _summary_row(d: Path, metrics_path: Path) -> Optional[tuple]:
    """The :func:`write_summary` row of the run folder ``d`` (``(name, description, metrics, overall, seconds)``;
    seconds: the sum over its folds of timing.json's ``fold_seconds``, 0 without timing.json, None unreadable), or
    None when ``d`` is no main-job run (its config.yaml, if any, has no ``recognizer`` section: an ``icegan loso``
    run).

    Raises:
        OSError, ValueError (a JSONDecodeError among them), yaml.YAMLError: ``metrics_path`` or ``d/config.yaml``
            cannot be read or parsed, or one of them, its ``overall`` or a config section the row reads is not a
            mapping, or ``overall``'s UF1/UAR are not numbers (cut short by a kill, or edited by hand).
        TypeError: a value the row reads is of another type (a number as ``data.source``, text as a fold time).
    """
    import yaml
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    cfg = yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8")) if (d / "config.yaml").is_file() else {}
    for name, value in (("metrics.json", metrics), ("config.yaml", cfg)):
        if not isinstance(value, dict):
            raise ValueError(f"{name} is not a mapping but {type(value).__name__}")
    if "recognizer" not in cfg:
        return None  # not a main-job run
    for key, value in [("metrics.json: overall", metrics.get("overall", {}))] + [
            (f"config.yaml: {k}", cfg.get(k, {})) for k in ("data", "flow", "recognizer", "gan")]:
        if not isinstance(value, dict):
            raise ValueError(f"{key} is not a mapping but {type(value).__name__}")
    o = metrics.get("overall", {})
    for k in ("UF1", "UAR"):
        if not isinstance(o.get(k, 0.0), (int, float)) or isinstance(o.get(k), bool):
            raise ValueError(f"metrics.json: overall {k} is not a number but {o[k]!r}")
    timing = _read_timing(d / "timing.json") if (d / "timing.json").is_file() else {}
    secs = sum(timing["fold_seconds"].values()) if timing else (0.0 if timing == {} else None)
    return d.name, _describe(cfg), metrics, o, secs


#: the first line of the summary.md that :func:`write_summary` writes: a file that starts otherwise is not its own
SUMMARY_HEADING = "# Runs compared"


def write_summary(runs_root: str | Path) -> Optional[Path]:
    """Write ``<runs_root>/summary.md``: one row per finished run folder (metrics.json + config.yaml)
    comparing the configurations (data, flow, recognizer, GAN skip path, joint loss, UF1, UAR, and the seconds of all
    its folds together: the sum of timing.json's ``fold_seconds``, ``?`` where it cannot be read). A run that is not
    honest says so beside its name (``(ORACLE epoch)``, ``(NOT leak-free)`` or both,
    :func:`icegan.report.selection_word`). A folder that cannot be read (:func:`_summary_row`: a config.yaml or
    metrics.json cut short, or not a mapping) is left out with one warning naming it: the summary is written at the
    end of every train.py run over the folders beside its own, which must not end that run.

    An existing summary.md is replaced only when it starts with this function's heading (``# Runs compared``) or is
    empty (a kill while an older train.py wrote it): a file of another origin (``--out ~/exp1`` puts it in the home
    folder, where a user's own summary.md may lie) is kept, with one warning naming it, and nothing is written. The
    file is written whole (:func:`flownet.io.write_text_whole`): a kill leaves the previous one.

    Returns:
        the summary's path, or None when a summary.md not written here was kept.
    """
    import yaml
    root = Path(runs_root)
    path = root / "summary.md"
    if path.exists():
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                first = fh.readline()       # "": an empty file, left by a kill before this write was atomic
                own = first == "" or first.rstrip("\r\n") == SUMMARY_HEADING
        except OSError:
            own = False
        if not own:
            log.warning("%s is not written by train.py (it does not start with %r): kept as it is, not replaced by "
                        "the summary of the runs beside this one", path, SUMMARY_HEADING)
            return None
    rows = []
    for m in sorted(root.glob("*/metrics.json")):
        d = m.parent
        try:
            row = _summary_row(d, m)
        except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:   # JSONDecodeError, UnicodeDecodeError
            log.warning("%s left out of %s: it cannot be read (%s: %s)", d, root / "summary.md", type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "")
            continue
        if row is not None:
            rows.append(row)
    lines = [SUMMARY_HEADING, "",
             "Pooled LOSO predictions of each run (UF1/UAR as in MEGC2019). "
             "Selection: final epoch unless the run says ORACLE."
             + (" NOT leak-free: the run's flow network trained on real frames of held-out subjects."
                if any(r[2].get("real_motion_seen") for r in rows) else ""), "",
             "| run | data | protocol | folds | flow | recognizer | GAN | joint | UF1 | UAR | total fold time (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    from icegan.protocol import read_partial_tag
    from icegan.report import selection_word
    for name, desc, metrics, o, secs in rows:
        word = selection_word(bool(metrics.get("oracle_epoch")), bool(metrics.get("real_motion_seen")))
        tag = ("" if word == "honest" else f" ({word})") + read_partial_tag(root / name)
        lines.append(f"| {name}{tag} | {desc['data']} | {metrics.get('protocol')} | {metrics.get('n_folds')} | "
                     f"{desc['flow']} | {desc['recognizer']} | {desc['GAN']} | {desc['joint']} | "
                     f"{o.get('UF1', float('nan')):.4f} | {o.get('UAR', float('nan')):.4f} | "
                     f"{'?' if secs is None else f'{secs:.0f}'} |")
    from flownet.io import write_text_whole
    write_text_whole(path, "\n".join(lines) + "\n")       # a kill keeps the old file whole, never an empty one
    return path


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``train.py`` / ``icegan train``."""
    import argparse
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Joint LOSO training of ICE-GAN, SRFlowNet flow and a recognizer; scores UF1/UAR. "
                    "With no arguments: the built-in synthetic demo (configs/demo.yaml).")
    from icegan.commands.train import add_arguments
    add_arguments(parser)
    from icegan import __version__
    parser.add_argument("--version", action="version", version=f"train.py (icegan {__version__})")
    from icegan.cli import parse_with_overrides
    import sys

    from icegan.commands import file_system_error, interrupted, stdout_closed
    args = parse_with_overrides(parser, argv)
    try:
        rc = run_from_args(args)
        sys.stdout.flush()          # a reader of stdout gone (`| head`) shows here, not as Python's noise at exit
        return rc
    except KeyboardInterrupt:
        return interrupted("train.py")
    except BrokenPipeError as exc:
        return stdout_closed(exc)
    except OSError as exc:          # a folder that cannot be made or written, a full disk: one line naming the path
        return file_system_error("train.py", exc)


def log_level() -> int:
    """The main job's logging level: INFO, or ERROR on a torchrun process other than rank 0 (its INFO and WARNING
    lines would repeat rank 0's, every process seeing the same clips). A broken launch (a torchrun variable that is
    not an integer) counts as rank 0 here: :func:`run_from_args` reports it in one line."""
    try:
        return logging.ERROR if distributed.launched_rank() != 0 else logging.INFO
    except RuntimeError:
        return logging.INFO


def run_from_args(args) -> int:
    """The main job from parsed arguments (``train.py``, ``icegan train``): load the config, pick the executor, run
    :func:`run_main` and print the result line; returns the exit code. A user-fixable error is one line on stderr,
    ``<prog>: error: <message>`` (``<prog>``: ``args.prog_name``, ``train.py`` unless ``icegan train`` set it),
    with the LOSO fold that raised it when a fold did (:func:`icegan.commands.error_text`), and exit code 2.
    ``--workers``, ``--cpus-per-fold`` and ``--ray-address`` without ``--executor ray`` are refused (they would be
    ignored: the folds would run one after another)."""
    import sys
    from icegan.commands import error_text
    from icegan.commands.train import CPUS_PER_FOLD_DEFAULT
    prog = getattr(args, "prog_name", None) or "train.py"
    from icegan.commands import reports_errors

    def say(code: int, line: str, exc: Optional[BaseException] = None) -> int:
        """``line`` on stderr (under torchrun by rank 0, the one process that prints an error every rank raised
        outside its own share), then ``code``. An error ``exc`` raised in a rank's own share
        (:func:`icegan.distributed.raised_in_own_share`: rank 0 may never learn of it, and dies in its next
        collective) is printed by that rank, as ``rank N: <line>``; if every rank raised it there, each prints it
        (rank 0 its ``line``). The recorded own-share errors are forgotten after
        (:func:`icegan.distributed.forget_share_errors`)."""
        if reports_errors():
            print(line, file=sys.stderr)
        elif exc is not None and distributed.raised_in_own_share(exc):
            print(f"rank {distributed.launched_rank()}: {line}", file=sys.stderr)
        distributed.forget_share_errors()
        return code
    logging.basicConfig(level=log_level(), format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_main_config(args.config, args.overrides)
        if not getattr(args, "print_config", False):
            from icegan.recognition import check_network_builds
            check_network_builds(cfg.recognizer)     # a recognizer.input_size the network cannot take: one line
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        from icegan.commands import other_config_hint          # a file of icegan loso or suite: says so
        hint = other_config_hint(args.config, "train.py") if isinstance(exc, ConfigError) else ""
        return say(2, f"{prog}: error: {error_text(exc)}{hint}")
    if getattr(args, "print_config", False):
        from icegan.commands import print_config
        return print_config(cfg)
    from icegan.data.prepare import PrepareError
    from icegan.data.sheets import SheetError
    from icegan.executors import FoldTooLargeError
    from icegan.gan.trainer import GanCheckpointError
    from icegan.protocol import LosoScopeError, LosoStateError
    try:
        launched = distributed.check_launch()      # torchrun's variables, checked before anything starts
    except RuntimeError as exc:
        return say(2, f"{prog}: error: {exc}")
    executor = None
    kind = getattr(args, "executor", "sequential") or "sequential"
    if kind == "ray":
        from icegan.executors import RayExecutor
        if launched > 1:
            return say(2, f"{prog}: error: --executor ray and torchrun are alternatives: run folds as Ray tasks, or "
                          "train each fold with DDP under torchrun, not both")
        try:
            executor = RayExecutor(address=getattr(args, "ray_address", None), workers=getattr(args, "workers", 0),
                                   num_cpus=getattr(args, "cpus_per_fold", CPUS_PER_FOLD_DEFAULT), threads=cfg.threads)
        except ImportError as exc:
            return say(2, f"{prog}: error: {error_text(exc)}")
    elif kind == "sequential":
        ray_only = [flag for flag, given in (("--workers", getattr(args, "workers", 0)),
                                             ("--cpus-per-fold", getattr(args, "cpus_per_fold", CPUS_PER_FOLD_DEFAULT)
                                              != CPUS_PER_FOLD_DEFAULT),
                                             ("--ray-address", getattr(args, "ray_address", None))) if given]
        if ray_only:
            flags = " and ".join(ray_only)
            return say(2, f"{prog}: error: {flags} {'applies' if len(ray_only) == 1 else 'apply'} to --executor ray "
                          f"only (the folds would run one after another, in this process); add --executor ray, or "
                          f"leave {flags} out")
    else:
        return say(2, f"{prog}: error: unknown --executor {kind!r}; choose sequential or ray")
    try:
        if executor is not None:
            with executor:
                metrics = run_main(cfg, args.out, progress=not args.no_progress, executor=executor)
        else:
            metrics = run_main(cfg, args.out, progress=not args.no_progress)
    except (FileNotFoundError, PrepareError, SheetError, LosoScopeError, LosoStateError, FloatingPointError,
            GanCheckpointError, FoldTooLargeError) as exc:
        # user-fixable problems (missing weights or data, an unreadable coding sheet, too few subjects loaded, a run
        # folder of another config, a diverged fold, a fold's GAN checkpoint that cannot be resumed, a Ray fold larger
        # than the instance or cluster): one clear line
        # instead of a traceback; finished folds are kept
        return say(2, f"{prog}: error: {error_text(exc)}", exc)
    finally:
        distributed.shutdown()
    if distributed.launched_rank() != 0:
        return 0                  # under torchrun rank 0 alone reports
    o = metrics["overall"]
    where = args.out or str(Path(cfg.out_dir) / cfg.name)
    from icegan.protocol import read_partial_tag
    partial = read_partial_tag(where, "data.max_folds")
    print(f"{cfg.name}: {metrics['protocol']} LOSO over {metrics['n_folds']} folds, {metrics['n_samples']} clips: "
          f"UF1 {o['UF1']:.4f}  UAR {o['UAR']:.4f}{partial}  → {where}/metrics.md")
    if cfg.data.source == "synthetic":
        print("note: data.source=synthetic: built-in synthetic clips with an easy class signal; this run checks that "
              f"the pipeline works, its score is not a micro-expression result ({config_hint('casme2', True)}, "
              f"{config_hint('megc2019', True)} run on real data)")
    return 0
