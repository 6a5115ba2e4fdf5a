"""The settings of a recognizer (YAML section ``model``; ``recognizer`` in the main job), kept apart from the training
code of :mod:`icegan.recognition` so that reading a config, or ``icegan --help``, does not import torch."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["RecognizerConfig", "SKLEARN_MODELS", "MIXUP_ALPHA_FLOOR"]


#: recognizers fitted by scikit-learn, one fit per fold (no epochs, no grouped network)
SKLEARN_MODELS = ("logreg", "random_forest", "gradient_boosting")

#: the smallest mixup α > 0 a config takes: below about 0.003 torch's ``Beta(α, α)`` sampler returns λ = 0.5 exactly
#: for part of the rows (a quarter of them at α = 0.001, most at 1e-4), the opposite of what a small α means (λ near
#: 0 or 1: almost no mixing); at 0.005 still about 1 row in 1000, at 0.01 none in 200000 draws
MIXUP_ALPHA_FLOOR = 0.01


@dataclass
class RecognizerConfig:
    """Recognizer and training settings (YAML section ``model``).

    Attributes:
        name: ``ststnet``, ``offtanet``, ``logreg`` (scikit-learn logistic regression on the
            standardised flattened features), ``random_forest`` (scikit-learn random forest on the
            flattened features; Breiman 2001), ``gradient_boosting`` (scikit-learn's histogram gradient-boosted
            trees on the flattened features, its default settings: 100 iterations, learning rate 0.1, 31 leaves; no
            early stopping, so no inner split is drawn; Friedman 2001, Ke et al. 2017) or ``custom`` (your own
            network, ``module``).
        module: ``custom`` only: ``'package.module:factory'`` or ``'path/to/file.py:factory'``, a callable
            returning a ``torch.nn.Module`` that maps (B, 3, S, S) features (S = ``input_size``) to (B, 3) logits;
            called with those of ``num_classes``, ``in_channels``, ``input_size``, ``dropout`` its signature
            accepts (:func:`icegan.models.recognizers.load_recognizer_factory`). It is trained with every
            setting below that applies to the networks (epochs, AdamW, schedule, class weights, flips, shifts,
            mixup, seeds, test-time augmentation, inner-validation early stopping, snapshot averaging), one model
            per fold and seed, on batches of that fold's training rows only.
        input_size: side in pixels the features are bilinearly resized to before the network
            (28 = native megc2019_htnet size; 112 = Off-TANet paper size).
        stem_stride: Off-TANet stem stride (2 in the paper at 112; 1 for native 28×28 input).
        width: STSTNet filter multiplier (1 = the paper's 3/5/8 filters per stream; 2 = 6/10/16);
            any other value than 1 is an error for ``offtanet`` and ``logreg``.
        epochs: training epochs (one epoch = ceil(N / batch_size) shared mini-batches).
        batch_size: shared mini-batch size (0 = the whole feature tensor every step).
        lr: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        lr_schedule: ``constant`` or ``cosine`` (to 0 over all steps).
        dropout: dropout probability of the network, in [0, 1). STSTNet draws its mask in steps of 1/256 (one byte
            per element, :func:`icegan.models.recognizers.fast_dropout`) when 256 · dropout is a whole number (0.5,
            0.25, ...) and uses torch's exact dropout for any other value (slower on a CPU).
        class_weighting: weight the cross-entropy of class c by n / (K · n_c) of the model's
            training samples (also ``class_weight='balanced'`` for logreg).
        subject_weighting: weight every training subject equally: each clip of subject s counts 1 / n_s
            (n_s: that subject's training clips in the fold), rescaled to mean 1 over the fold's training clips;
            the class weights are then computed on these weighted counts, so the classes stay balanced
            (:func:`subject_weights`). Needs the subject of every clip: ``icegan loso`` feature runs (every
            recognizer); not the main job. Synthetic rows count for the subject they were made from.
        class_balance: over which rows ``class_weighting`` balances the classes: ``pooled`` (default: all of a
            model's training rows, as above) or ``per_dataset``: every (dataset, class) cell of its training rows
            weighs the same in the loss (each clip 1 / n_{d,c}, rescaled to mean 1), so each dataset's minority classes
            count as much as its majority class, and the datasets as much as each other
            (:func:`icegan.recognition.dataset_class_weights`). Needs ``class_weighting`` and the subject of every
            clip: ``icegan loso`` feature runs and ``icegan fit`` (every recognizer); not the main job.
        hflip: random horizontal flips (u negated) during training; the scikit-learn recognizers
            (:data:`SKLEARN_MODELS`) are fitted on the training clips and their mirrors instead.
        shift_px: random translation of each training sample by an integer offset drawn
            uniformly in [-shift_px, shift_px] pixels per axis (of the ``input_size`` maps; border
            values replicated); 0 disables; below ``input_size``.
        rotate_deg: random in-plane rotation of each training map about its centre by an angle drawn uniformly in
            [-rotate_deg, rotate_deg] degrees (bilinear, border values replicated; the map is turned as an image,
            the u/v values are not rotated: :func:`icegan.recognition.warp_features`); 0 disables; at most 15
            (the flow's direction is off by up to the angle, a small approximation only for a few degrees).
        scale_jitter: random isotropic scaling of each training map about its centre by a factor drawn uniformly in
            [1 - scale_jitter, 1 + scale_jitter]; 0 disables; below 1. Applied with ``rotate_deg`` in one warp,
            before the shifts.
        cutout_px: cutout (DeVries & Taylor, 2017): every training map, after flips, warps and shifts, gets one
            square of this side in pixels (of the ``input_size`` maps), centred uniformly over the map and clipped
            at its border, filled with the map's per-channel mean (:func:`icegan.recognition.cutout_features`);
            0 (default) disables; below ``input_size``. Networks only.
        mixup_alpha: Beta(α, α) mixup of pairs of training samples; 0 disables; else at least
            :data:`MIXUP_ALPHA_FLOOR` (0.01: below about 0.003 torch's Beta sampler returns λ = 0.5 for part of the
            rows, where a small α means λ near 0 or 1).
        label_smoothing: ε in [0, 1): the cross-entropy's target is (1 - ε) · one-hot + ε / K instead of the
            one-hot label (Szegedy et al., CVPR 2016, section 7); 0 (default) = plain cross-entropy. Networks only.
        ema_decay: d in [0, 1): predict with an exponential moving average of the weights and batch-norm
            buffers, ``avg ← d · avg + (1 − d) · weights`` after every optimizer step (Polyak averaging;
            :func:`flownet.train.weight_ema`); the inner validation, oracle records and snapshots score the average
            too. 0 (default) = the weights of the last step. With 4 steps per epoch on the composite, 0.99 averages
            over about the last 25 epochs. Networks only.
        sam_rho: ρ >= 0: sharpness-aware minimisation (SAM; Foret et al., ICLR 2021, Eq. 2, Algorithm 1): every step
            takes the gradient at the weights moved by ρ · g / ‖g‖₂ (g: each fold model's own gradient, normalised
            over its own weights) and applies it at the unmoved weights with AdamW; twice the work per step. 0
            (default) = off. Networks only.
        au_weight: λ >= 0: STSTNet also learns the clips' FACS action units as an auxiliary target, a second head
            of 14 logits (:data:`icegan.data.action_units.EMFACS_ACTION_UNITS`) on the same pooled features; the loss
            is the class cross-entropy + λ · the mean binary cross-entropy over those units, averaged over the
            training clips whose sheet codes action units (CASME II and SAMM; SMIC clips and uncoded clips add
            none). The units come from the official coding sheets (``data.annotations``); only training clips' units
            are used; the head is not used at test time. 0 (default) = off. ``icegan loso`` feature runs with
            ``model.name=ststnet`` only.
        domain_adversarial: w >= 0: STSTNet also gets a second head that tells the source dataset of each training
            clip (the prefix of its subject id: ``smic``, ``casme2``, ``samm``) from the same pooled features, trained
            adversarially (domain-adversarial training, Ganin & Lempitsky, ICML 2015; Ganin et al., JMLR 2016): the
            loss is the class cross-entropy + w · the dataset cross-entropy over the model's training clips, and the
            dataset head's gradient into the shared layers is reversed and scaled by λ_p = 2 / (1 + exp(−10 p)) − 1,
            p the share of training done (JMLR 2016, Sec. 5.2.2), so those layers learn features that classify the
            expression and carry less of the dataset. The head is not used at test time; the test subject is
            never used. 0 (default) = off. ``icegan loso`` feature runs with ``model.name=ststnet`` and training
            clips from at least two datasets; not combinable with ``au_weight`` (one auxiliary head) or
            ``mixup_alpha`` (a mixed pair may span two datasets).
        noise_filter: ``none`` (default) or ``forest``: in every LOSO fold, leave out of the network's training set
            the training clips that confident learning flags as mislabelled, on the out-of-bag probabilities of a
            random forest (``forest_trees`` trees, balanced with ``class_weighting``, fitted on that fold's training
            clips without mirrors; Northcutt et al., JAIR 2021; :mod:`icegan.label_noise`). No threshold to set; the
            test subject is never involved. With ``data.synthetic_per_clip`` the forest and its class thresholds
            are computed on the fold's real training clips only; the synthetic clips are never candidates and are
            all kept. The share left out per fold is logged to TensorBoard
            (``noise_filter/dropped_share``, also with ``workers`` > 1). With ``inner_val_fraction`` the validation
            subjects are drawn before the filter and keep all their clips; the share is then counted among the
            other training clips (those the filter can drop). ``icegan loso`` feature runs with ``ststnet`` or ``offtanet``.
        seeds: ensemble members per fold (probabilities averaged).
        tta_hflip: average the probabilities of the features and of their mirror at test time (every recognizer).
        tta_shift_px: if k > 0, also average over every integer translation in [-k, k]² pixels at test time; below
            ``input_size``.
        inner_val_fraction: fraction of each fold's training subjects held out for early
            stopping (0 = use the final epoch).
        eval_every: epochs between inner-validation checks (and oracle records).
        average_last: if > 0, predict with the average of the class probabilities of the weights
            saved at the end of the final epoch and of every ``eval_every``-th epoch before it within
            the last ``average_last`` epochs (a snapshot ensemble along the trajectory; fixed in
            advance, no selection); 0 = the final epoch's weights only. Not combinable with
            ``inner_val_fraction``.
        folds_per_group: folds trained together in one grouped network (0 = all folds at once). A group's
            batches are drawn from the clips some fold of the group trains on (never from clips none of them learns
            from, such as an SDE run's other datasets); each fold weighs the other folds' held-out clips 0, a small
            share when folds hold out one subject each (CDE, SDE); ``protocol=HDE`` trains every fold alone.
        domain_bn: STSTNet only: batch-norm statistics per source dataset (the prefix of the subject id:
            ``smic``, ``casme2``, ``samm``), affine weights shared; at test time a clip is normalised with
            its dataset's running statistics, gathered from the training subjects of that fold only
            (:class:`icegan.models.recognizers.STSTNet`, ``domains``). Needs the subject ids, so it
            works in ``icegan loso`` feature runs; not combinable with ``mixup_alpha``.
        logreg_C: inverse L2 strength of the logistic regression.
        logreg_max_iter: iteration cap of the logistic regression solver.
        forest_trees: trees of the random forest (``class_weight='balanced'`` with ``class_weighting``; its
            random state is the run's seed, the same in every fold).
    """
    #: the YAML section this config is read from (named in error messages; ``recognizer`` in the main job)
    SECTION = "model"

    name: Literal["ststnet", "offtanet", "logreg", "random_forest", "gradient_boosting", "custom"] = "ststnet"
    module: str = ""
    input_size: int = 28
    stem_stride: int = 1
    width: int = 1
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    dropout: float = 0.5
    class_weighting: bool = True
    hflip: bool = True
    shift_px: int = 0
    rotate_deg: float = 0.0
    scale_jitter: float = 0.0
    cutout_px: int = 0
    mixup_alpha: float = 0.0
    label_smoothing: float = 0.0
    ema_decay: float = 0.0
    sam_rho: float = 0.0
    au_weight: float = 0.0
    domain_adversarial: float = 0.0
    noise_filter: Literal["none", "forest"] = "none"
    seeds: int = 1
    tta_hflip: bool = True
    tta_shift_px: int = 0
    inner_val_fraction: float = 0.0
    eval_every: int = 5
    average_last: int = 0
    folds_per_group: int = 0
    logreg_C: float = 1.0
    logreg_max_iter: int = 2000
    forest_trees: int = 500
    domain_bn: bool = False
    subject_weighting: bool = False
    class_balance: Literal["pooled", "per_dataset"] = "pooled"

    def __post_init__(self):
        """Check the settings.

        Raises:
            ValueError: a setting out of its range (e.g. ``model.epochs=0``, ``model.lr=-1``, ``model.dropout=1.5``) or
                settings that do not go together; the message names the key as written in the config
                (``<section>.<key>``).
        """
        sec = self.SECTION
        self._check_ranges()
        if self.class_balance == "per_dataset" and not self.class_weighting:
            raise ValueError(f"{sec}.class_balance=per_dataset balances the classes within each dataset: it needs "
                             f"{sec}.class_weighting=true")
        if self.name == "custom":
            if not self.module:
                raise ValueError(f"{sec}.name=custom needs {sec}.module='package.module:factory' or "
                                 "'path/to/file.py:factory' (a callable returning a torch.nn.Module)")
            from icegan.models.recognizers import load_recognizer_factory
            load_recognizer_factory(self.module, f"{sec}.module")   # fail now, naming the spec, not after loading
        elif self.module:
            raise ValueError(f"{sec}.module={self.module!r} is read only with {sec}.name=custom, not {self.name}")
        if self.name in SKLEARN_MODELS:
            if self.seeds != 1:
                raise ValueError(f"{sec}.seeds={self.seeds} ensembles networks; {self.name} is fitted once per fold "
                                 f"(set {sec}.seeds=1; for the random forest raise {sec}.forest_trees instead)")
            network_only = {"shift_px": self.shift_px, "rotate_deg": self.rotate_deg,
                            "scale_jitter": self.scale_jitter, "mixup_alpha": self.mixup_alpha,
                            "tta_shift_px": self.tta_shift_px, "inner_val_fraction": self.inner_val_fraction,
                            "average_last": self.average_last, "label_smoothing": self.label_smoothing,
                            "ema_decay": self.ema_decay, "sam_rho": self.sam_rho,
                            "cutout_px": self.cutout_px}
            used = [f"{sec}.{k}={v}" for k, v in network_only.items() if v]
            if used:
                verb, it = ("applies", "it") if len(used) == 1 else ("apply", "them")
                raise ValueError(f"{', '.join(used)} {verb} to the networks (ststnet, offtanet), not to "
                                 f"{self.name}; set {it} to 0")
        for key in ("cutout_px", "shift_px", "tta_shift_px"):     # sides and shifts of the input_size maps
            value = getattr(self, key)
            if not 0 <= value < self.input_size:
                raise ValueError(f"{sec}.{key} must lie in 0..{self.input_size - 1} pixels (0 = off), got {value}")
        if not 0 <= self.rotate_deg <= 15:
            raise ValueError(f"{sec}.rotate_deg must lie in 0..15 degrees, got {self.rotate_deg}: the maps are turned "
                             "as images and their u, v vectors are not rotated with them, so the flow's direction is "
                             "off by up to the angle (a small approximation only for a few degrees)")
        if self.au_weight > 0 and self.name != "ststnet":
            raise ValueError(f"{sec}.au_weight (action units as an auxiliary target) applies to ststnet only, not "
                             f"{self.name}; set {sec}.au_weight=0")
        if self.domain_adversarial > 0:
            for bad, why in ((self.name != "ststnet", f"applies to ststnet only, not {self.name}"),
                             (self.au_weight > 0, f"and {sec}.au_weight both need STSTNet's one auxiliary head"),
                             (self.mixup_alpha > 0, f"and {sec}.mixup_alpha cannot be combined (a mixed pair may "
                                                    "span two datasets)")):
                if bad:
                    raise ValueError(f"{sec}.domain_adversarial={self.domain_adversarial} {why}; "
                                     f"set {sec}.domain_adversarial=0")
        if self.noise_filter != "none" and self.name not in ("ststnet", "offtanet"):
            raise ValueError(f"{sec}.noise_filter={self.noise_filter} applies to the grouped networks (ststnet, "
                             f"offtanet), not {self.name}; set {sec}.noise_filter=none")
        if self.width != 1 and self.name != "ststnet":
            raise ValueError(f"{sec}.width={self.width} applies to ststnet only, not {self.name}")
        if self.domain_bn and self.name != "ststnet":
            raise ValueError(f"{sec}.domain_bn applies to ststnet only, not {self.name}")
        if self.domain_bn and self.mixup_alpha > 0:
            raise ValueError(f"{sec}.domain_bn and {sec}.mixup_alpha cannot be combined (a mixed pair may span "
                             "two datasets); set one of them to 0 / false")

    def _check_ranges(self) -> None:
        """Refuse a numeric setting outside the range where it means something (NaN included), naming the key as
        ``<section>.<key>``; a 0 that means "off" or "all" stays valid.

        Raises:
            ValueError: the first setting out of range.
        """
        sec = self.SECTION
        at_least = (("epochs", 1, ""), ("seeds", 1, " (ensemble members per fold)"), ("stem_stride", 1, ""),
                    ("eval_every", 1, " epoch"), ("logreg_max_iter", 1, ""), ("forest_trees", 1, ""), ("width", 1, ""),
                    ("input_size", 1, " pixel (28 for the MEGC2019 maps)"),
                    ("batch_size", 0, " (0 = the whole feature tensor every step)"), ("shift_px", 0, " (0 = off)"),
                    ("tta_shift_px", 0, " (0 = off)"), ("average_last", 0, " (0 = off)"),
                    ("folds_per_group", 0, " (0 = all folds at once)"))
        for key, low, note in at_least:
            value = getattr(self, key)
            if not value >= low:
                raise ValueError(f"{sec}.{key} must be >= {low}{note}, got {value}")
        for key in ("lr", "logreg_C"):
            value = getattr(self, key)
            if not (value > 0 and math.isfinite(value)):             # NaN fails too
                raise ValueError(f"{sec}.{key} must be a finite number > 0, got {value}")
        for key, note in (("weight_decay", " (0 = none)"), ("mixup_alpha", " (0 = off)"), ("au_weight", " (0 = off)"),
                          ("domain_adversarial", " (0 = off)"), ("sam_rho", " (0 = off)")):
            value = getattr(self, key)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{sec}.{key} must be a finite number >= 0{note}, got {value}")
        if 0 < self.mixup_alpha < MIXUP_ALPHA_FLOOR:
            raise ValueError(f"{sec}.mixup_alpha must be 0 (off) or at least {MIXUP_ALPHA_FLOOR}, got "
                             f"{self.mixup_alpha}: below about 0.003 torch's Beta(α, α) sampler returns λ = 0.5 for "
                             f"part of the rows (a quarter at 0.001), where a small α means λ near 0 or 1")
        for key, note in (("dropout", " (a probability; 0 = none)"),
                          ("inner_val_fraction", " (0 = use the final epoch)"), ("scale_jitter", ""),
                          ("label_smoothing", ""), ("ema_decay", " (0 = off)")):
            value = getattr(self, key)
            if not 0 <= value < 1:                  # NaN fails too
                raise ValueError(f"{sec}.{key} must lie in [0, 1){note}, got {value}")
