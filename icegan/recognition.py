"""Training and prediction of recognizers on flow-feature tensors, and the scikit-learn recognizers (the
logistic-regression floor and a random forest).

The fast path trains **many models at once**: one model per (LOSO fold, seed) pair, all held in one
grouped network (:mod:`icegan.models.recognizers`, ``n_models = G``). Every step draws one shared
mini-batch from the whole in-memory feature tensor; model g's loss and batch-norm statistics use
only the samples of its own training subjects (``train_mask[g]``), so the held-out subject of a
fold never influences the model that is tested on it (it is forwarded, but weighted 0 everywhere).
Adam is element-wise, so this is the same as G separate trainings that happen to share the order in
which mini-batches are drawn. No data are reloaded per fold, and there is no per-fold Python loop.

A custom recognizer (``name=custom``, ``module`` naming a factory of a plain ``torch.nn.Module``) cannot hold
grouped copies: it is trained one model per fold and seed (:func:`fit_recognizer`) on batches of that fold's
training rows only, so its own batch norm never sees another row; the rest of this loop applies unchanged.

Honest selection: by default the model of the final epoch is used. ``inner_val_fraction > 0``
holds out that fraction of each fold's *training* subjects, picks the epoch with the lowest
class-weighted validation cross-entropy on them (checked every ``eval_every`` epochs) and never
looks at the test subject. ``record_every`` (oracle-epoch runs only) returns test scores at several
epochs so that :func:`icegan.protocol.run_loso` can reproduce the published oracle selection.

Augmentations (training only): horizontal flip of the face (the feature maps are mirrored and u is
negated: ``u → 1 − u`` for per-image min–max normalised u, see :mod:`icegan.data.features`), random
integer translations of the feature maps (``shift_px``: alignment jitter, borders replicated), random in-plane
rotations and scalings of the maps (``rotate_deg``, ``scale_jitter``: the rest of the alignment jitter, bilinear,
borders replicated), cutout (``cutout_px``: one square per map filled with its channel means) and mixup (Zhang et
al., ICLR 2018) between training samples of the same model. Against noisy
or ambiguous labels and the step-to-step variance of the final weights: label smoothing (``label_smoothing``) and
a moving average of the weights used for prediction (``ema_decay``). Towards flat minima: sharpness-aware
minimisation (``sam_rho``, :func:`sam_gradient`).
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from flownet.devices import resolve_device
from flownet.user_numbers import derived_seed
from icegan import distributed
from icegan.models.recognizers import build_recognizer
from icegan.recognizer_config import MIXUP_ALPHA_FLOOR, SKLEARN_MODELS, RecognizerConfig

__all__ = ["RecognizerConfig", "SnapshotAverage", "hflip_features", "shift_features", "warp_features", "resize_features", "train_models", "predict_models",
           "fit_predict_folds", "fit_recognizer", "FittedRecognizer", "check_custom_recognizer", "recognizer_provenance", "fit_predict_sklearn", "sklearn_classifier", "SKLEARN_MODELS", "class_weights", "subject_weights", "dataset_class_weights", "inner_val_masks",
           "inner_val_split", "mixup_batch", "MixupBatch"]


def hflip_features(x: torch.Tensor) -> torch.Tensor:
    """Mirror (…, 3, H, W) flow features left–right: maps flipped along W and u → 1 − u.

    Valid for u min–max normalised to [0, 1] per image (negating u maps a to 1 − a); v and strain
    are mirror-symmetric quantities and are only flipped.
    """
    y = x.flip(-1).clone()
    y[..., 0, :, :] = 1.0 - y[..., 0, :, :]
    return y


def shift_features(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Translate each of B (B, C, H, W) maps by its own integer offset, replicating the border.

    ``out[b, :, i, j] = x[b, :, clamp(i - dy[b]), clamp(j - dx[b])]``: a positive ``dy`` / ``dx``
    moves the content down / right by that many pixels. One gather for the whole batch.

    Args:
        x: (B, C, H, W) features.
        dy, dx: (B,) int64 offsets in pixels.
    Raises:
        ValueError: offsets whose length is not B.
    """
    B, C, H, W = x.shape
    if dy.shape != (B,) or dx.shape != (B,):
        raise ValueError(f"shift_features needs one (dy, dx) per sample: B={B}, got {tuple(dy.shape)}, {tuple(dx.shape)}")
    rows = (torch.arange(H, device=x.device)[None] - dy[:, None]).clamp(0, H - 1)      # (B, H)
    cols = (torch.arange(W, device=x.device)[None] - dx[:, None]).clamp(0, W - 1)      # (B, W)
    idx = (rows[:, :, None] * W + cols[:, None, :]).reshape(B, 1, H * W).expand(B, C, H * W)
    return x.reshape(B, C, H * W).gather(2, idx).reshape(B, C, H, W)


def cutout_features(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, side: int) -> torch.Tensor:
    """Cutout: fill one square of each of B (B, C, H, W) maps with that map's per-channel mean.

    The square of ``side`` pixels of sample b covers rows ``cy[b] - side // 2 .. cy[b] - side // 2 + side - 1`` and
    the columns likewise, clipped at the border (a centre near the edge erases less), as in DeVries & Taylor,
    "Improved regularization of convolutional neural networks with Cutout", arXiv:1708.04552 (2017), Sec. 3.
    The fill is each channel's mean over the whole map before erasing: for min–max normalised u, v, strain maps a
    neutral value of that clip (the paper fills zeros after mean normalisation, i.e. the dataset mean). One mask
    for the whole batch, no loop over samples.

    Args:
        x: (B, C, H, W) features.
        cy, cx: (B,) int64 centres in pixels (rows, columns), any value; the square is clipped to the map.
        side: the square's side in pixels, >= 1.
    Returns:
        (B, C, H, W), ``x`` outside the squares.
    Raises:
        ValueError: ``side`` < 1, or centres whose length is not B.
    """
    B, C, H, W = x.shape
    if side < 1:
        raise ValueError(f"cutout_features needs a square side >= 1 pixel, got {side}")
    if cy.shape != (B,) or cx.shape != (B,):
        raise ValueError(f"cutout_features needs one centre per sample: B={B}, got {tuple(cy.shape)}, {tuple(cx.shape)}")
    top, left = cy - side // 2, cx - side // 2
    rows = torch.arange(H, device=x.device)[None]
    cols = torch.arange(W, device=x.device)[None]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)                     # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)                   # (B, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]                         # (B, 1, H, W)
    return torch.where(mask, x.mean(dim=(2, 3), keepdim=True), x)


def warp_features(x: torch.Tensor, angle_deg: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Rotate and scale each of B square (B, C, S, S) maps about its centre by its own angle and factor.

    ``out[b](p) = x[b](R(θ_b) p / s_b)`` with p = (column, row) measured from the map's centre (row axis pointing
    down) and R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]: the content turns by θ_b (positive = counter-clockwise as
    displayed, row 0 at the top; 90° equals ``torch.rot90(x, 1, (-2, -1))``) and grows by s_b.
    Bilinear sampling at pixel centres (so θ = 0, s = 1 returns ``x`` exactly); samples outside the map take the
    nearest border value. The maps are warped as images: the u and v values are not rotated with them, so the flow's
    direction is off by up to the angle; for the few degrees of an alignment jitter that is a small approximation
    (``rotate_deg`` is bounded to 15°). The per-clip min–max normalisation of u and v hides their zero and their
    scales, so a general rotation of the vectors is not possible on the normalised maps (multiples of 90° would be,
    by swapping and mirroring u and v, but are out of that range). One ``affine_grid`` + ``grid_sample`` for the
    whole batch.

    Args:
        x: (B, C, S, S) features.
        angle_deg: (B,) rotation in degrees.
        scale: (B,) positive scale factors (> 1 enlarges the content).
    Raises:
        ValueError: maps that are not square, or angles / scales whose length is not B, or a scale ≤ 0.
    """
    B, C, H, W = x.shape
    if H != W:
        raise ValueError(f"warp_features needs square maps, got {H}x{W}")
    if angle_deg.shape != (B,) or scale.shape != (B,):
        raise ValueError(f"warp_features needs one angle and one scale per sample: B={B}, got "
                         f"{tuple(angle_deg.shape)}, {tuple(scale.shape)}")
    if bool((scale <= 0).any()):
        raise ValueError("warp_features needs scales > 0")
    t = torch.deg2rad(angle_deg.to(x.dtype))
    c, s = torch.cos(t) / scale.to(x.dtype), torch.sin(t) / scale.to(x.dtype)
    z = torch.zeros_like(c)
    # affine_grid's (x right, y down) coordinates: out(p) samples the input at R(t) p / s
    theta = torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1)], 1)      # (B, 2, 3)
    grid = F.affine_grid(theta, [B, C, H, W], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class MixupBatch(NamedTuple):
    """A batch mixed by :func:`mixup_batch` (B rows, G models); the fields are described there."""
    x: torch.Tensor
    mask: torch.Tensor
    weight_a: torch.Tensor
    weight_b: torch.Tensor
    targets: Optional[torch.Tensor]
    partner: torch.Tensor
    lam: torch.Tensor


def mixup_batch(x: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, alpha: float,
                generator: torch.Generator, targets: Optional[torch.Tensor] = None) -> MixupBatch:
    """Mixup of a training batch with a permutation of itself (Zhang et al., "mixup: Beyond Empirical Risk
    Minimization", ICLR 2018, Sec. 2), as :func:`train_models` applies it under ``mixup_alpha`` > 0.

    Row i is paired with row ``j[i]`` of a random permutation j of the batch (possibly itself) and takes its own share
    ``λ_i ~ Beta(α, α)``:

    - the maps: ``x̃_i = λ_i x_i + (1 − λ_i) x_{j_i}``;
    - the soft targets (e.g. action units in [0, 1], or one-hot class targets, which then stay sums of 1):
      ``t̃_i = λ_i t_i + (1 − λ_i) t_{j_i}``;
    - the class labels stay integers: the loss of row i is ``weight_a[i] · CE(y_i) + weight_b[i] · CE(y_{j_i})``
      (normalised by ``Σ (weight_a + weight_b)``), the cross-entropy against the mixed one-hot target when the two
      rows weigh the same, with each label weighted by its share and its own row's weight:
      ``weight_a = m̃ · w_i · λ_i``, ``weight_b = m̃ · w_{j_i} · (1 − λ_i)``, where ``m̃ = mask_i · mask_{j_i}``:
      a pair counts for model g only when both rows are its training rows (``m̃`` is also the batch-norm mask).

    Randomness, in this order: ``j = torch.randperm(B, generator=generator)``, then
    ``λ = torch.distributions.Beta(α, α).sample((B,))``, which takes no generator and draws from torch's global RNG
    (seeded by ``torch.manual_seed(seed)`` in :func:`train_models`). Both are drawn on the CPU and moved to
    ``x.device``. A small α gives λ near 0 or 1 (little mixing); α = 1 gives a uniform λ. Below α ≈ 0.003 torch's
    sampler clamps both of a row's gamma draws at the smallest float and returns λ = 0.5 for part of the rows
    (a quarter at α = 0.001): α below the config's floor, 0.01, is refused.

    Args:
        x: (B, ...) floating maps ((B, C, H, W) in :func:`train_models`).
        mask: (B, G) float 0/1, row i is a training row of model g.
        weight: (B, G) float ≥ 0, the loss weight of each row for each model (sample × class weight).
        alpha: α ≥ :data:`icegan.recognizer_config.MIXUP_ALPHA_FLOOR` (0.01), finite.
        generator: CPU ``torch.Generator`` of the partner permutation.
        targets: optional (B, K) float soft targets of the rows, mixed like the maps.
    Returns:
        :class:`MixupBatch` of ``x`` (B, ...) mixed maps in ``x``'s dtype, ``mask`` (B, G) pair mask ``m̃``,
        ``weight_a`` and ``weight_b`` (B, G), ``targets`` (B, K) mixed (None without targets), ``partner`` (B,) int64
        j, ``lam`` (B,) float32 λ in [0, 1].
    Raises:
        ValueError: ``alpha`` not a finite number >= the floor, or ``mask``, ``weight``, ``targets`` not of B rows (``mask``
            and ``weight`` of one shape).
    """
    B = x.shape[0]
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= MIXUP_ALPHA_FLOOR):
        raise ValueError(f"mixup_batch needs alpha (model.mixup_alpha) a finite number >= {MIXUP_ALPHA_FLOOR} (below, "
                         f"torch's Beta sampler returns λ = 0.5 for part of the rows), got {alpha}")
    if mask.dim() != 2 or mask.shape[0] != B or weight.shape != mask.shape:
        raise ValueError(f"mixup_batch needs mask and weight of shape (B, G) with B={B} rows, got "
                         f"{tuple(mask.shape)}, {tuple(weight.shape)}")
    if targets is not None and (targets.dim() != 2 or targets.shape[0] != B):
        raise ValueError(f"mixup_batch needs targets of shape (B, K) with B={B} rows, got {tuple(targets.shape)}")
    j = torch.randperm(B, generator=generator).to(x.device)
    lam = torch.distributions.Beta(alpha, alpha).sample((B,)).to(x.device)

    def mix(t: torch.Tensor) -> torch.Tensor:
        share = lam.reshape(-1, *[1] * (t.dim() - 1))
        return (share * t + (1 - share) * t[j]).to(t.dtype)

    both = mask * mask[j]
    la = lam[:, None]
    return MixupBatch(mix(x), both, both * weight * la, both * weight[j] * (1 - la),
                      None if targets is None else mix(targets), j, lam)


def resize_features(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) → (N, C, size, size) by bilinear interpolation (no-op when already that size)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def class_weights(y: torch.Tensor, train_mask: torch.Tensor, n_classes: int = 3, balanced: bool = True) -> torch.Tensor:
    """(G, K) class weights n_g / (K_g · n_gc) over each model's training samples (n_g: model g's training samples,
    n_gc: those of class c, K_g: the classes present in model g's training rows, so scikit-learn's ``"balanced"``
    over the classes a model sees, not over the ``n_classes`` of the label set); with ``balanced=False``, 1.

    A class absent from a model's training set gets weight 0 (balanced or not).

    Args:
        y: (N,) labels in 0..n_classes-1.
        train_mask: (G, N) float: 1 for each model's training samples and 0 elsewhere, or their sample weights
            (then n_g and n_gc are sums of weights).
    """
    onehot = F.one_hot(y, n_classes).to(train_mask.dtype)            # (N, K)
    counts = train_mask @ onehot                                      # (G, K)
    if not balanced:
        return (counts > 0).to(counts.dtype)
    n = counts.sum(1, keepdim=True)
    present = (counts > 0).sum(1, keepdim=True).clamp_min(1)
    return torch.where(counts > 0, n / (present * counts.clamp_min(1)), torch.zeros_like(counts))


def subject_weights(subjects: Sequence[str], train_mask: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(G, N) float32 sample weights that give every training subject of each model the same total weight.

    ``w[g, i] = c_g / n_{g, s(i)}`` for a training sample i of model g (``n_{g, s}``: the samples of subject s in
    ``train_mask[g]``), 0 outside ``train_mask[g]``; ``c_g`` makes the mean over model g's training samples 1, so the
    loss keeps its scale. A subject with 1 clip then weighs as much as one with 39.

    Args:
        subjects: (N,) subject id of every sample (prefixed ids, e.g. ``casme2/sub01``).
        train_mask: (G, N) bool.

    Raises:
        ValueError: ``subjects`` and ``train_mask`` disagree in N.
    """
    return _equal_group_weights(subjects, train_mask, "subject_weights", "subjects")


def dataset_class_weights(subjects: Sequence[str], y: torch.Tensor | np.ndarray,
                          train_mask: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(G, N) float32 sample weights under which every (dataset, class) cell of each model's training rows has the
    same total weight (``model.class_balance=per_dataset``).

    ``w[g, i] = c_g / n_{g, d(i), y(i)}`` for a training sample i of model g (``n_{g, d, c}``: its training samples of
    dataset d and class c; d from the subject's ``dataset/`` prefix), 0 outside ``train_mask[g]``; ``c_g`` makes the
    mean over model g's training samples 1. When every dataset holds every class, class weights computed on these
    weighted counts (:func:`class_weights`) are then all 1.

    Args:
        subjects: (N,) dataset-prefixed subject ids (``samm/006``). y: (N,) class ids. train_mask: (G, N) bool.

    Raises:
        ValueError: ``subjects``, ``y`` and ``train_mask`` disagree in N.
    """
    y = np.asarray(y).reshape(-1)
    if len(y) != len(subjects):
        raise ValueError(f"dataset_class_weights: {len(subjects)} subjects for {len(y)} labels")
    cells = [f"{str(s).split('/', 1)[0]}|{int(c)}" for s, c in zip(subjects, y)]
    return _equal_group_weights(cells, train_mask, "dataset_class_weights", "subjects")


def _equal_group_weights(groups: Sequence[str], train_mask: np.ndarray | torch.Tensor, who: str,
                         what: str) -> torch.Tensor:
    """(G, N) weights c_g / n_{g, group(i)} on each model's training rows (0 elsewhere), mean 1 over them: every
    group of a model's training rows weighs the same in total."""
    mask = torch.as_tensor(np.asarray(train_mask), dtype=torch.float32)
    if mask.dim() != 2 or mask.shape[1] != len(groups):
        raise ValueError(f"{who}: {len(groups)} {what} for a train mask of shape {tuple(mask.shape)}")
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    onehot = F.one_hot(torch.from_numpy(inverse.reshape(-1)), int(inverse.max()) + 1 if len(inverse) else 1).float()
    per_group = mask @ onehot                                              # (G, S) rows per group and model
    w = mask / (per_group @ onehot.t()).clamp_min(1)                       # (G, N): 1 / n_group on the training rows
    return w * (mask.sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1e-12))


def _balance_weights(cfg: RecognizerConfig, subjects: Optional[Sequence[str]], y, train_mask,
                     where: str) -> Optional[torch.Tensor]:
    """The (G, N) sample weights of ``cfg.subject_weighting`` and ``cfg.class_balance`` (their product when both are
    on), or None when neither is.

    Raises:
        ValueError: one of them is on and ``subjects`` is None (``where`` says which entry point lacks them).
    """
    if not cfg.subject_weighting and cfg.class_balance == "pooled":
        return None
    if subjects is None:
        key = "subject_weighting" if cfg.subject_weighting else "class_balance"
        raise ValueError(f"{cfg.SECTION}.{key} needs the subject of every training clip; {where}")
    w = subject_weights(subjects, train_mask) if cfg.subject_weighting else None
    if cfg.class_balance == "per_dataset":
        c = dataset_class_weights(subjects, y, train_mask)
        w = c if w is None else w * c
    return w


def inner_val_masks(subjects: Sequence[str], train_masks: np.ndarray, fraction: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split each model's training subjects into train / inner-validation subjects.

    Args:
        subjects: (N,) subject id per sample.
        train_masks: (G, N) bool, the samples each model may learn from.
        fraction: share of each model's training subjects moved to validation (at least 1).
        rng: NumPy generator.

    Returns:
        (train, val) bool masks (G, N); disjoint, both inside ``train_masks``; no subject is split.

    Raises:
        ValueError: a model with fewer than 2 training subjects (the message says 2 are needed), or a ``fraction``
            that would take all of them (the message says to lower it).
    """
    subj = np.asarray(subjects)
    tr, va = train_masks.copy(), np.zeros_like(train_masks)
    for g in range(train_masks.shape[0]):
        names = np.unique(subj[train_masks[g]])
        k = max(1, int(round(fraction * len(names))))
        if len(names) < 2:      # no fraction leaves a subject to train on: lowering it cannot help
            raise ValueError(f"inner validation would take all {len(names)} training subject(s): it holds out whole "
                             f"subjects and needs at least 2 training subjects, got {len(names)}; train on more "
                             f"subjects or set inner_val_fraction=0 (no early stopping)")
        if k >= len(names):
            raise ValueError(f"inner validation would take all {len(names)} training subjects; lower inner_val_fraction")
        pick = rng.choice(names, size=k, replace=False)
        v = train_masks[g] & np.isin(subj, pick)
        va[g], tr[g] = v, train_masks[g] & ~v
    return tr, va


def inner_val_split(subjects: Sequence[str], train_idx: np.ndarray, fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One model's training rows split into (train, inner-validation) row indices, ascending: ``fraction`` of the
    subjects of ``train_idx`` moved to validation (:func:`inner_val_masks` with ``np.random.default_rng(seed)``).

    Raises:
        ValueError: fewer than 2 training subjects, or a split that would leave none (as :func:`inner_val_masks`).
    """
    mask = np.zeros((1, len(subjects)), dtype=bool)
    mask[0, np.asarray(train_idx)] = True
    tr, va = inner_val_masks(subjects, mask, fraction, np.random.default_rng(seed))
    return np.flatnonzero(tr[0]), np.flatnonzero(va[0])


def _build(cfg: RecognizerConfig, n_models: int, n_domains: int = 0, n_action_units: int = 0,
           n_classes: int = 3) -> torch.nn.Module:
    kw: dict[str, Any] = {"input_size": cfg.input_size, "dropout": cfg.dropout, "num_classes": n_classes}
    if n_action_units:
        kw["aux_outputs"] = n_action_units
    if cfg.name == "custom":
        return build_recognizer("custom", n_models=n_models, module=cfg.module, key=f"{cfg.SECTION}.module", **kw)
    if n_domains:
        kw["domains"] = n_domains
    if cfg.name == "offtanet":
        kw["stem_stride"] = cfg.stem_stride
    if cfg.name == "ststnet":
        kw["width"] = cfg.width
    return build_recognizer(cfg.name, n_models=n_models, **kw)


class SnapshotAverage(torch.nn.Module):
    """Several weight snapshots of one grouped recognizer, averaged in probability space.

    ``forward(x)`` returns log(mean_k softmax(model_k(x))), shaped like one model's logits
    ((B, K) or (B, G, K)), so that ``softmax`` of the output is the averaged class probability.
    Inference only (no ``sample_mask``).
    """

    def __init__(self, models: Sequence[torch.nn.Module]):
        super().__init__()
        if not models:
            raise ValueError("SnapshotAverage needs at least one model")
        self.models = torch.nn.ModuleList(models)

    def forward(self, x: torch.Tensor, sample_mask: Optional[torch.Tensor] = None,
                domain: Optional[torch.Tensor] = None) -> torch.Tensor:
        kw = {} if domain is None else {"domain": domain}
        p = torch.stack([m(x, **kw).softmax(-1) for m in self.models]).mean(0)
        return p.clamp_min(1e-12).log()


def _drop_noisy_labels(cfg: RecognizerConfig, x: torch.Tensor, y: torch.Tensor, masks: np.ndarray,
                       folds: Sequence[Any], S: int, seed: int, progress: bool, writer: Any = None,
                       n_classes: int = 3, n_real: Optional[int] = None, val: Optional[np.ndarray] = None,
                       shares: Optional[dict] = None) -> np.ndarray:
    """``cfg.noise_filter=forest``: the training masks (G, N) of ``folds`` (``S`` copies each) less the training clips
    flagged by :func:`icegan.label_noise.flag_noisy_labels` on that fold's training clips (forest seed: the fold's,
    ``seed + 1000 · fold.index``, wrapped into [0, SEED_MAX] by :func:`flownet.user_numbers.derived_seed`). With
    ``n_real`` (rows ``0..n_real-1`` real, the rest synthetic, as :func:`fit_predict_folds`), the forest and its class
    thresholds see the fold's real training rows only, and no synthetic row is dropped.

    The fold's dropped share: the flagged clips' share of the (real) training clips the filter can drop, those of
    the inner-validation subjects excluded (``val``: (G, N) bool, :func:`inner_val_masks`' second mask, whose clips
    are all kept; a mean over the fold's ``S`` copies, each with its own draw; None: every training clip counts).
    It is logged to a TensorBoard ``writer`` as ``noise_filter/dropped_share`` at step = the fold's index, and
    stored as ``shares[fold index]`` (a float in [0, 1]) when a dict ``shares`` is given (a worker process, which has
    no writer, sends them back to the parent to log)."""
    from tqdm.auto import tqdm

    from icegan.environment import limit_sklearn_threads
    from icegan.label_noise import flag_noisy_labels
    limit_sklearn_threads()                 # the forest's OpenMP under the process's threads limit
    flat, labels = x.reshape(len(x), -1).numpy(), y.numpy()
    masks = masks.copy()
    for i, f in enumerate(tqdm(folds, desc="noise filter", unit="fold", leave=False, disable=not progress)):
        train, index = np.asarray(f.train_idx), int(getattr(f, "index", i))
        if n_real is not None:
            train = train[train < n_real]         # real clips only: synthetic ones would raise the class thresholds
        flags = flag_noisy_labels(flat[train], labels[train], cfg.forest_trees, derived_seed(seed, 1000 * index),
                                  cfg.class_weighting, n_classes=n_classes, n_jobs=max(1, torch.get_num_threads()))
        masks[i * S:(i + 1) * S, train[flags]] = False
        share = float(flags.mean()) if val is None else \
            float(np.mean([flags[~val[g, train]].mean() for g in range(i * S, (i + 1) * S)]))
        if shares is not None:
            shares[index] = share
        if writer is not None:
            writer.add_scalar("noise_filter/dropped_share", share, index)
    return masks


@torch.no_grad()
def predict_models(model: torch.nn.Module, x: torch.Tensor, tta_hflip: bool = True, batch: int = 512,
                   tta_shift_px: int = 0, domains: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Class probabilities of every copy: x (N, 3, S, S) → (N, G, K) (eval mode, optional test-time augmentation).

    Args:
        tta_hflip: also score the mirrored features (:func:`hflip_features`) and average.
        tta_shift_px: if k > 0, also score every integer translation in [-k, k]² pixels (:func:`shift_features`,
            borders replicated) and average: (2k + 1)² views, twice that with ``tta_hflip``. Each clip's views
            come from that clip alone.
        domains: (N,) int64 dataset index of every clip, for a model with per-dataset batch-norm
            statistics (``RecognizerConfig.domain_bn``); None otherwise.
    Raises:
        ValueError: no rows in ``x``, a negative ``tta_shift_px`` or one that is not below the map size.
    """
    if len(x) == 0:         # callers never score an empty table (feature tables and clip lists refuse to be empty)
        raise ValueError(f"predict_models needs at least one row of features, got x of shape {tuple(x.shape)}")
    if tta_shift_px < 0 or tta_shift_px >= x.shape[-1]:
        raise ValueError(f"model.tta_shift_px must lie in 0..{x.shape[-1] - 1} pixels, got {tta_shift_px}")
    offsets = [(dy, dx) for dy in range(-tta_shift_px, tta_shift_px + 1) for dx in range(-tta_shift_px, tta_shift_px + 1)]
    was = model.training
    model.eval()
    outs = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        kw = {} if domains is None else {"domain": domains[i:i + batch]}
        p, n_views = 0.0, 0
        for dy, dx in offsets:
            xs = xb if dy == dx == 0 else shift_features(xb, torch.full((len(xb),), dy, device=xb.device),
                                                          torch.full((len(xb),), dx, device=xb.device))
            for v in ((xs, hflip_features(xs)) if tta_hflip else (xs,)):   # each view scored as it is made
                logits = model(v, **kw)
                p = p + (logits[:, None] if logits.dim() == 2 else logits).softmax(-1)
                n_views += 1
        outs.append(p / n_views)
    model.train(was)
    return torch.cat(outs)


def _predict(cfg: RecognizerConfig, model: torch.nn.Module, x: torch.Tensor,
             domains: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`predict_models` with the test-time augmentation of ``cfg``: (N, 3, S, S) → (N, G, K)."""
    return predict_models(model, x, tta_hflip=cfg.tta_hflip, tta_shift_px=cfg.tta_shift_px, domains=domains)


def _check_sample_weight(w: torch.Tensor, shape: tuple, expected: str) -> None:
    """ValueError unless the loss weights ``w`` have ``shape`` (``expected`` says it in words) and are finite and
    non-negative."""
    if tuple(w.shape) != shape:
        raise ValueError(f"sample_weight must {expected}, got {tuple(w.shape)}")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")


def _ce_rows(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """logits (B, G, K), y (B,) → (B, G) cross-entropy of every row under every model (target smoothed by
    ``label_smoothing``, :attr:`RecognizerConfig.label_smoothing`)."""
    B, G, K = logits.shape
    return F.cross_entropy(logits.permute(0, 2, 1), y[:, None].expand(B, G), reduction="none",
                           label_smoothing=label_smoothing)


def _weighted_mean(rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """rows (B, G), w (B, G) → (G,): each model's w-weighted mean over the rows (0 where all its weights are 0)."""
    return (rows * w).sum(0) / w.sum(0).clamp_min(1e-12)


def _weighted_ce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """logits (B, G, K), y (B,), w (B, G) → (G,) weighted mean cross-entropy per model."""
    return _weighted_mean(_ce_rows(logits, y, label_smoothing), w)


def _action_unit_loss(logits: torch.Tensor, targets: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """logits (B, G, A), targets (B, A) in [0, 1], w (B, G) → (G,): per model, the w-weighted mean over rows of the
    mean binary cross-entropy over the A action units (:attr:`RecognizerConfig.au_weight`); 0 for a model whose
    rows all weigh 0."""
    bce = F.binary_cross_entropy_with_logits(logits, targets[:, None].expand_as(logits), reduction="none").mean(-1)
    return _weighted_mean(bce, w)


def train_models(cfg: RecognizerConfig, x: torch.Tensor, y: torch.Tensor, train_mask: torch.Tensor,
                 val_mask: Optional[torch.Tensor] = None, device: str | torch.device = "cpu", seed: int = 0,
                 record_every: int = 0, progress: bool = True, writer: Any = None, tag: str = "",
                 n_classes: int = 3, domains: Optional[torch.Tensor] = None,
                 sample_weight: Optional[torch.Tensor] = None,
                 action_units: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                 batch_rows: Optional[torch.Tensor] = None
                 ) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    """Train G = ``train_mask.shape[0]`` independent recognizers on one in-memory feature tensor.

    Args:
        cfg: settings (``cfg.name`` must be ``ststnet`` or ``offtanet``).
        x: (N, 3, S, S) float features already at ``cfg.input_size`` (u, v, strain in [0, 1]).
        y: (N,) int64 labels in 0..K-1.
        train_mask: (G, N) bool; model g learns from samples with ``train_mask[g]`` only. Batches of
            ``cfg.batch_size`` are drawn from the rows some model trains on (``train_mask.any(0)``), so a row that no
            model learns from changes nothing: one model trained on a subset of a table is trained exactly as on
            that subset alone. A model with no training row in a batch takes no step on it: its weights and
            Adam moments stay as they were (:func:`step_learning_copies`).
        val_mask: optional (G, N) bool inner-validation samples (disjoint from train_mask) for
            early stopping on the class-weighted validation cross-entropy; None = final epoch.
        device: ``cpu``, ``cuda``, ``cuda:N``, ``auto`` (a GPU where there is one) or a torch.device
            (:func:`flownet.devices.resolve_device`; a device this machine lacks is a ValueError).
        seed: seed of initialisation, batch order, augmentation and dropout.
        record_every: if > 0, also return probabilities of all N samples every that many epochs and at the final
            one (oracle-epoch runs).
        progress: tqdm bar over epochs.
        writer: optional TensorBoard writer (mean training loss per epoch under ``train/<tag>``).
        tag: name used in the progress bar and TensorBoard.
        n_classes: K.
        domains: (N,) int64 dataset index of every sample (0..D-1); required when ``cfg.domain_bn``
            (per-dataset batch-norm statistics) or ``cfg.domain_adversarial`` > 0 (the dataset head's targets;
            every model's training rows must span at least two datasets), ignored otherwise.
        sample_weight: optional (G, N) non-negative weight of every sample in model g's loss (e.g.
            :func:`subject_weights`), multiplied with the class weights, which are then computed on the weighted
            counts; None = 1. Batch-norm statistics stay unweighted.
        action_units: (targets (N, A) float in [0, 1], known (N,) bool), the rows' FACS action units
            (:func:`icegan.data.action_units.action_unit_targets`); required when ``cfg.au_weight`` > 0, ignored
            otherwise. Model g learns the units of its training rows with ``known`` only (not class- or
            subject-weighted); under mixup a pair's targets mix like its labels and count when both are known.
        batch_rows: optional (N,) bool, the rows batches are drawn from (a superset of ``train_mask.any(0)``);
            None = ``train_mask.any(0)``. :func:`fit_predict_folds` passes the folds' training rows before its
            label-noise filter, so that the rows no model keeps, which depend on the labels of every subject,
            never change a model's batches.

    Returns:
        (model in eval mode holding the selected weights — a :class:`SnapshotAverage` when
        ``cfg.average_last`` gives more than one snapshot —, list of (N, G, K) probability tensors
        recorded every ``record_every`` epochs and at the final one (empty when 0)).

    Raises:
        ValueError: shapes disagree, a label outside 0..K-1, a model without training samples,
            ``cfg.shift_px`` outside 0..S-1, ``cfg.domain_bn`` or ``cfg.domain_adversarial`` without ``domains`` (or
            with negative or non-integer ones), a
            model whose training rows come from one dataset under ``cfg.domain_adversarial``, a ``sample_weight`` of
            another shape than ``train_mask``, negative or not finite, or ``cfg.au_weight`` > 0 without
            ``action_units`` of N rows (or with targets outside [0, 1]).
    """
    from tqdm.auto import tqdm

    if x.dim() != 4 or x.shape[0] != y.shape[0] or train_mask.shape[1] != x.shape[0]:
        raise ValueError(f"x (N, C, H, W), y (N,) and train_mask (G, N) disagree: {tuple(x.shape)}, "
                         f"{tuple(y.shape)}, {tuple(train_mask.shape)}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {int(y.min())}..{int(y.max())}")
    if (train_mask.sum(1) == 0).any():
        raise ValueError(f"model {int(torch.nonzero(train_mask.sum(1) == 0)[0])} has no training samples")
    if cfg.shift_px < 0 or cfg.shift_px >= x.shape[-1]:
        raise ValueError(f"{cfg.SECTION}.shift_px must lie in 0..{x.shape[-1] - 1} pixels, got {cfg.shift_px}")
    if cfg.average_last > 0 and val_mask is not None:
        raise ValueError(f"{cfg.SECTION}.average_last (snapshot averaging) and inner-validation early stopping "
                         f"({cfg.SECTION}.inner_val_fraction / val_mask) cannot be combined; set one of them to 0")
    for key, on in ((f"{cfg.SECTION}.domain_bn", cfg.domain_bn),
                    (f"{cfg.SECTION}.domain_adversarial", cfg.domain_adversarial > 0)):
        if on and (domains is None or domains.shape != y.shape):
            raise ValueError(f"{key} needs the dataset index of every sample (domains, shape (N,)); it is available "
                             f"in `icegan loso` feature runs, which pass the subjects' dataset prefixes")
        if on and (domains.is_floating_point() or domains.is_complex() or bool((domains < 0).any())):
            raise ValueError(f"{key}: domains must hold integer dataset indices 0, 1, ..., D-1 (one per dataset), "
                             f"got dtype {domains.dtype}, min {domains.min().item()}")
    if cfg.domain_adversarial > 0:
        per_dataset = train_mask.float() @ F.one_hot(domains.long()).float()         # (G, D) training clips
        single = torch.nonzero((per_dataset > 0).sum(1) < 2).flatten()
        if len(single):
            raise ValueError(f"{cfg.SECTION}.domain_adversarial={cfg.domain_adversarial}: model {int(single[0])} "
                             f"trains on clips of one dataset only, so there is no dataset to be invariant to; use it "
                             f"on a composite of several datasets (CDE), or set it to 0")
    if sample_weight is not None:
        shape = tuple(train_mask.shape)
        _check_sample_weight(sample_weight, shape, f"be shaped like train_mask {shape}")
    if cfg.au_weight > 0:
        if (action_units is None or action_units[0].dim() != 2 or action_units[0].shape[0] != x.shape[0]
                or tuple(action_units[1].shape) != (x.shape[0],)):
            got = None if action_units is None else [tuple(t.shape) for t in action_units]
            raise ValueError(f"{cfg.SECTION}.au_weight={cfg.au_weight} needs the action units of every row: "
                             f"(targets ({x.shape[0]}, A), known ({x.shape[0]},)), got {got}; they are read from the "
                             f"coding sheets in `icegan loso` feature runs")
        if ((action_units[0] < 0) | (action_units[0] > 1)).any():
            raise ValueError("action-unit targets must lie in [0, 1]")
    device = resolve_device(device)             # "auto", and a device this machine lacks named, as everywhere
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G, N = train_mask.shape
    x, y = x.to(device), y.to(device)
    # the dataset of every row: per-dataset batch-norm statistics (dom) and the targets of the adversarial dataset
    # head (dom_t)
    uses_domains = cfg.domain_bn or cfg.domain_adversarial > 0
    n_datasets = int(domains.max()) + 1 if uses_domains else 0
    dom_all = domains.to(device=device, dtype=torch.long) if uses_domains else None
    n_domains, dom = (n_datasets, dom_all) if cfg.domain_bn else (0, None)
    dom_t = dom_all if cfg.domain_adversarial > 0 else None
    tm = train_mask.to(device=device, dtype=torch.float32)
    vm = val_mask.to(device=device, dtype=torch.float32) if val_mask is not None else None
    sw = None if sample_weight is None else sample_weight.to(device=device, dtype=torch.float32) * tm
    cw = class_weights(y, tm if sw is None else sw, n_classes, cfg.class_weighting)        # (G, K)
    au_t = au_k = None
    if cfg.au_weight > 0:
        au_t = action_units[0].to(device=device, dtype=torch.float32)
        au_k = action_units[1].to(device=device, dtype=torch.float32)
    n_au = 0 if au_t is None else au_t.shape[1]
    if dom_t is not None:
        n_au = n_datasets                                                # the auxiliary head's outputs: datasets
    model = _build(cfg, G, n_domains, n_au, n_classes).to(device)
    # under torchrun: DistributedDataParallel, each process training on its shard of every batch;
    # `aux` draws the shard-sized randomness (flips, mixup) so `gen`, which orders the batches,
    # advances identically on every process
    net = distributed.wrap_ddp(model, device)
    aux = gen if distributed.world_size() == 1 else \
        torch.Generator().manual_seed(derived_seed(seed, 7919 * (distributed.rank() + 1)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # the weights that are scored (inner validation, oracle records, snapshots, the returned model): the moving
    # average of the weights with model.ema_decay, else the trained weights themselves
    ema = None
    if cfg.ema_decay > 0:
        from flownet.train import weight_ema
        ema = weight_ema(model, cfg.ema_decay)
    scored = model if ema is None else ema.module
    # batches are drawn from the rows that some model of the group trains on, so that a model's batches, steps and
    # learning-rate schedule do not depend on clips no model here learns from (an SDE run's other datasets, the
    # datasets an HDE fold trains on when its fold is trained alone); within a group the rows of other folds are
    # weighted 0 (the grouped networks' batch norm is masked). When every row is some model's training row (the
    # folds of a CDE run trained together) this is the whole table and the draws are those of a plain permutation.
    if batch_rows is not None:
        batch_rows = batch_rows.to(tm.device).bool()
        if batch_rows.shape != (N,) or bool((tm.any(0) & ~batch_rows).any()):
            raise ValueError(f"batch_rows must be an ({N},) bool mask holding every training row of train_mask")
    rows = torch.nonzero(tm.any(0) if batch_rows is None else batch_rows).flatten()
    n_rows = len(rows)
    bs = n_rows if cfg.batch_size <= 0 else min(cfg.batch_size, n_rows)
    steps = math.ceil(n_rows / bs)
    bounds = [(st * bs, min((st + 1) * bs, n_rows)) for st in range(steps)]
    if cfg.name == "custom" and steps > 1 and n_rows % bs == 1:
        # a custom network may hold BatchNorm, which fails on a batch of one: the last row joins the batch before
        bounds[-2:] = [(bounds[-2][0], n_rows)]
        steps -= 1
    total = max(1, steps * cfg.epochs)
    # a copy can sit out a batch (no training row in it) only when some copy does not train on every row batches are
    # drawn from and there is more than one batch; those steps leave the copy as it was (step_learning_copies)
    may_idle = steps > 1 and bool((tm[:, rows] == 0).any())
    # under mixup a copy with rows but no pair of two training rows learns nothing either; its pairs are drawn per
    # process, so this refinement is made in a single process only
    idle_pairs = cfg.mixup_alpha > 0 and distributed.world_size() == 1
    sched = (torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
             if cfg.lr_schedule == "cosine" else None)
    best_state = None
    best_val = torch.full((G,), float("inf"), device=device)
    snapshots: list[dict] = []
    records: list[torch.Tensor] = []

    def forward(xb: torch.Tensor, mask: torch.Tensor, fkw: dict) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The training network on a batch: (class logits (B, G, K), auxiliary logits (B, G, A) or None: the action
        units, or the datasets under domain-adversarial training)."""
        out = net(xb, sample_mask=mask, **fkw)
        logits, au_logits = out if n_au else (out, None)
        if logits.dim() == 2:                                            # a single model (G = 1)
            logits = logits[:, None]
            au_logits = None if au_logits is None else au_logits[:, None]
        return logits, au_logits

    bar = tqdm(range(1, cfg.epochs + 1), desc=f"train {cfg.name} {tag}".strip(), unit="epoch", leave=False,
               disable=not progress)
    model.train()
    for epoch in bar:
        perm = rows[torch.randperm(n_rows, generator=gen).to(device)]
        idle_steps, any_idle = None, [False] * steps
        if may_idle:            # (steps, G): copy g has no training row in that step's whole (unsharded) batch
            in_batch = tm[:, perm]
            idle_steps = torch.stack([in_batch[:, lo:hi].sum(1) == 0 for lo, hi in bounds])
            any_idle = idle_steps.any(1).tolist()                        # one synchronisation per epoch
        ep_loss_t = torch.zeros((), device=device)          # summed on the device: no sync per step
        ep_dom_t = torch.zeros((), device=device)
        for step, (lo, hi) in enumerate(bounds):
            idx = distributed.shard(perm[lo:hi])
            xb, yb = x[idx], y[idx]
            fkw = {} if dom is None else {"domain": dom[idx]}
            if n_au:
                fkw["with_aux"] = True
            if dom_t is not None:
                # the reversal's strength ramps from 0 to 1 over training (Ganin et al., JMLR 2016, Sec. 5.2.2)
                p = ((epoch - 1) * steps + step) / total
                fkw["aux_grad_scale"] = -(2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)
            mb = tm[:, idx].t()                                          # (B, G)
            rw = mb if sw is None else sw[:, idx].t()                   # loss weight of each row, (B, G)
            if cfg.hflip:
                f = (torch.rand(len(idx), generator=aux) < 0.5).to(device)
                xb = torch.where(f[:, None, None, None], hflip_features(xb), xb)
            if cfg.rotate_deg > 0 or cfg.scale_jitter > 0:
                u = torch.rand(2, len(idx), generator=aux).to(device) * 2 - 1         # uniform in [-1, 1)
                xb = warp_features(xb, u[0] * cfg.rotate_deg, 1 + u[1] * cfg.scale_jitter)
            if cfg.shift_px > 0:
                d = torch.randint(-cfg.shift_px, cfg.shift_px + 1, (2, len(idx)), generator=aux).to(device)
                xb = shift_features(xb, d[0], d[1])
            if cfg.cutout_px > 0:
                c = torch.randint(0, x.shape[-1], (2, len(idx)), generator=aux).to(device)
                xb = cutout_features(xb, c[0], c[1], cfg.cutout_px)
            if device.type == "cpu":
                xb = xb.contiguous(memory_format=torch.channels_last)   # faster oneDNN convolutions
            mix = None                 # mixup: partners from `aux`, then shares from the global RNG (mixup_batch)
            if cfg.mixup_alpha > 0:
                mix = mixup_batch(xb, mb, rw * cw.t()[yb], cfg.mixup_alpha, aux, None if au_t is None else au_t[idx])

            def batch_loss():
                """(G,) loss of every model on this step's batch, and the (G,) dataset cross-entropy (or None); called
                within the step only (once, twice under SAM)."""
                dom_ce = None
                if mix is not None:
                    j = mix.partner
                    logits, au_logits = forward(mix.x, mix.mask, fkw)    # both partners must be training samples
                    ce_a = _ce_rows(logits, yb, cfg.label_smoothing)
                    ce_b = _ce_rows(logits, yb[j], cfg.label_smoothing)
                    wa, wb = mix.weight_a, mix.weight_b
                    loss_g = (ce_a * wa + ce_b * wb).sum(0) / (wa + wb).sum(0).clamp_min(1e-12)
                    if au_t is not None:
                        w_au = mix.mask * (au_k[idx] * au_k[idx][j])[:, None]
                        loss_g = loss_g + cfg.au_weight * _action_unit_loss(au_logits, mix.targets, w_au)
                else:
                    logits, au_logits = forward(xb, mb, fkw)
                    loss_g = _weighted_ce(logits, yb, rw * cw.t()[yb], cfg.label_smoothing)   # (G,)
                    if au_t is not None:
                        loss_g = loss_g + cfg.au_weight * _action_unit_loss(au_logits, au_t[idx],
                                                                            mb * au_k[idx][:, None])
                    if dom_t is not None:
                        dom_ce = _weighted_ce(au_logits, dom_t[idx], mb)                  # (G,)
                        loss_g = loss_g + cfg.domain_adversarial * dom_ce
                return loss_g, dom_ce

            loss_g, dom_ce = batch_loss()
            if dom_ce is not None:
                ep_dom_t += dom_ce.detach().mean()
            opt.zero_grad(set_to_none=True)
            loss_g.sum().backward()
            if cfg.sam_rho > 0:      # the gradient at the sharpest nearby weights replaces it (SAM)
                sam_gradient(model, G, cfg.sam_rho, lambda: batch_loss()[0].sum())
            if idle_pairs:
                idle = mix.mask.sum(0) == 0
                step_learning_copies(opt, G, idle if idle_steps is None else idle | idle_steps[step])
            elif any_idle[step]:
                step_learning_copies(opt, G, idle_steps[step])
            else:
                opt.step()
            if ema is not None:
                ema.update_parameters(model)
            if sched is not None:
                sched.step()
            ep_loss_t += loss_g.detach().mean()
        ep_loss = float(ep_loss_t) / steps
        bar.set_postfix(loss=f"{ep_loss:.3f}", refresh=False)   # shown at the next redraw: one per epoch, not two
        if writer is not None:
            writer.add_scalar(f"train/{tag or cfg.name}/loss", ep_loss, epoch)
            if dom_t is not None:           # chance level: ln(number of datasets), e.g. 1.0986 for three
                writer.add_scalar(f"train/{tag or cfg.name}/domain_ce", float(ep_dom_t) / steps, epoch)
        last = epoch == cfg.epochs
        if distributed.is_distributed() and (vm is not None or record_every > 0 or cfg.average_last > 0 or last):
            distributed.average_buffers(scored)    # same model on every process before it is evaluated
        if vm is not None and (epoch % cfg.eval_every == 0 or last):
            p = _predict(cfg, scored, x, dom)                         # (N, G, K)
            nll = -torch.log(p.gather(-1, y[:, None, None].expand(-1, G, 1)).squeeze(-1).clamp_min(1e-8))
            wv = vm.t() * cw.t()[y]
            val = _weighted_mean(nll, wv)                             # (G,)
            better = val < best_val
            if better.any():
                best_val = torch.where(better, val, best_val)
                best_state = _merge_state(best_state, scored.state_dict(), better, G)
            if writer is not None:
                writer.add_scalar(f"train/{tag or cfg.name}/inner_val_ce", float(val.mean()), epoch)
        if record_every > 0 and (epoch % record_every == 0 or last):
            records.append(_predict(cfg, scored, x, dom).cpu())
        if (cfg.average_last > 0 and epoch > cfg.epochs - cfg.average_last
                and (cfg.epochs - epoch) % max(1, cfg.eval_every) == 0):
            snapshots.append({k: v.detach().clone() for k, v in scored.state_dict().items()})
    bar.close()
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    if len(snapshots) > 1:
        copies = []
        for state in snapshots:
            m = _build(cfg, G, n_domains, n_au, n_classes).to(device)
            m.load_state_dict(state)
            copies.append(m)
        model = SnapshotAverage(copies)
    model.eval()
    return model, records


_ADAM_MOMENTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _check_copy_rows(p: torch.Tensor, G: int, who: str) -> None:
    """Refuse a parameter whose first dimension does not split into the G copies of a grouped network (G > 1).

    Raises:
        ValueError: names ``who`` and the parameter's shape.
    """
    if G > 1 and (p.dim() == 0 or p.shape[0] % G):
        raise ValueError(f"{who} must split into its {G} copies along the first dimension; got a parameter of shape "
                         f"{tuple(p.shape)}")


def step_learning_copies(opt: torch.optim.Optimizer, n_models: int, idle: torch.Tensor) -> None:
    """``opt.step()`` for the copies of a grouped network that learned from this batch only.

    A copy g with ``idle[g]`` True had no training row in the batch: its gradient is 0, but AdamW would still decay
    its weights and move them along its momentum. Its slice of every parameter and of Adam's moment estimates
    (``exp_avg``, ``exp_avg_sq``, and ``max_exp_avg_sq`` under AMSGrad) is put back as it was before the step, so
    the batch leaves it exactly as if it had not been drawn. One approximation remains: Adam's step count (for its
    bias correction, Kingma & Ba, ICLR 2015, Algorithm 1) is one number per parameter tensor, shared by the copies,
    so a copy that sat out k steps divides by 1 − β^t with the group's count t instead of t − k; both factors tend
    to 1 as training goes on.

    Args:
        opt: the optimizer over the grouped network's parameters (AdamW here; any optimizer whose per-parameter
            state holds the moments named above works the same, other state entries are not restored).
        n_models: G. Copy g's slice of every parameter is rows ``[g · n / G, (g + 1) · n / G)`` of its first
            dimension (:class:`icegan.models.recognizers.STSTNet`, :class:`~icegan.models.recognizers.OffTANet`);
            with G = 1 the whole tensor is the copy.
        idle: (G,) bool, True for the copies to hold.

    Raises:
        ValueError: ``idle`` is not shaped (G,), or G > 1 and a parameter's first dimension does not split into G
            copies.
    """
    G = int(n_models)
    if tuple(idle.shape) != (G,):
        raise ValueError(f"idle must be shaped ({G},), one flag per copy; got {tuple(idle.shape)}")
    held = []                                        # (parameter, its idle rows, the idle rows of its moments)
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is None:                       # the optimizer leaves it alone
                continue
            _check_copy_rows(p, G, "a grouped network's parameters")
            rows = idle.to(p.device)
            state = opt.state.get(p, {})
            held.append((p, rows, p.detach().view(G, -1)[rows],
                         {k: state[k].view(G, -1)[rows] for k in _ADAM_MOMENTS if k in state}))
    opt.step()
    with torch.no_grad():
        for p, rows, before, moments in held:
            p.view(G, -1)[rows] = before
            state = opt.state[p]
            for k in _ADAM_MOMENTS:
                if k in state:                        # absent before: created by this step from zero
                    state[k].view(G, -1)[rows] = moments.get(k, 0.0)


def sam_gradient(model: torch.nn.Module, n_models: int, rho: float, loss_fn: Callable[[], torch.Tensor]) -> None:
    """Replace the gradients held by ``model``'s parameters with the sharpness-aware (SAM) gradient (Foret et al.,
    "Sharpness-Aware Minimization for Efficiently Improving Generalization", ICLR 2021, Eq. 2 and Algorithm 1):
    every copy g moves to w_g + ε_g with ε_g = ρ · ∇L_g / ‖∇L_g‖₂ (its own gradient, normalised over its own
    weights, so that the copies stay independent), the gradient of ``loss_fn`` is taken there, and the weights go back
    to w. The optimizer's step then applies that gradient at w. Batch-norm running statistics (every buffer) are left
    as the first pass set them, and the weights exactly as they were.

    Args:
        model: the network; its parameters hold the gradient of the batch loss at w (``.grad``). Grouped networks
            keep copy g's slice of every parameter at rows ``[g · n / G, (g + 1) · n / G)`` of the first dimension
            (:class:`icegan.models.recognizers.STSTNet`, :class:`~icegan.models.recognizers.OffTANet`).
        n_models: G, the independent copies in ``model`` (1 for a single network: one norm over all weights).
        rho: ρ > 0, the radius of the neighbourhood (L2, in weight units).
        loss_fn: recomputes the summed loss of all copies on the same batch (same augmentations) at the current
            weights.

    Raises:
        ValueError: G > 1 and a parameter whose first dimension does not split into G copies.
    """
    G = int(n_models)
    params = [p for p in model.parameters() if p.grad is not None]
    for p in params:
        _check_copy_rows(p, G, "SAM (model.sam_rho): a grouped network's parameters")
    with torch.no_grad():
        sq = sum(p.grad.reshape(G, -1).float().pow(2).sum(1) for p in params)           # (G,)
        scale = rho / (sq.sqrt() + 1e-12)
        weights = [p.detach().clone() for p in params]                  # w, restored exactly afterwards
        for p in params:
            p.add_((p.grad.reshape(G, -1) * scale[:, None].to(p.dtype)).reshape(p.shape))
        saved = [b.detach().clone() for b in model.buffers()]
    for p in model.parameters():
        p.grad = None
    loss_fn().backward()
    with torch.no_grad():
        for p, w in zip(params, weights):
            p.copy_(w)
        for b, v in zip(model.buffers(), saved):
            b.copy_(v)


def _merge_state(best: Optional[dict], current: dict, better: torch.Tensor, G: int) -> dict:
    """Copy the slices of models with ``better[g]`` from ``current`` into ``best``."""
    if best is None:
        return {k: v.detach().clone() for k, v in current.items()}
    idx = better.cpu()
    for k, v in current.items():
        if v.dim() == 0 or v.shape[0] % G:
            best[k] = v.detach().clone()
            continue
        b = best[k].view(G, -1)
        b[idx] = v.detach().reshape(G, -1)[idx]
    return best


def fit_predict_folds(cfg: RecognizerConfig, x: torch.Tensor, y: torch.Tensor, subjects: Sequence[str],
                      folds: Sequence[Any], device: str | torch.device = "cpu", seed: int = 0,
                      oracle_epoch: bool = False, progress: bool = True, writer: Any = None,
                      action_units: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                      n_classes: int = 3, n_real: Optional[int] = None,
                      noise_shares: Optional[dict] = None) -> list[np.ndarray]:
    """Train one grouped network for several LOSO folds (× ``cfg.seeds``) and score their test rows.

    Args:
        cfg: settings; ``cfg.name`` ``ststnet`` / ``offtanet`` (the scikit-learn recognizers, :data:`SKLEARN_MODELS`,
            are dispatched to :func:`fit_predict_sklearn`, fold by fold).
        x: (N, 3, H, W) features of the whole sample table (resized to ``cfg.input_size`` here).
        y: (N,) labels.
        subjects: (N,) prefixed subject ids (``dataset/subject``: the inner-validation split, and the
            dataset of every clip for ``cfg.domain_bn`` and ``cfg.domain_adversarial``).
        folds: :class:`icegan.protocol.Fold` objects (``train_idx``, ``test_idx``, ``index``).
        device: as :func:`train_models` (``auto`` included).
        seed: base seed; the group's seed is ``seed + 1000 · folds[0].index`` (wrapped into [0, SEED_MAX] by
            :func:`flownet.user_numbers.derived_seed`) so a group is reproduced exactly when a run resumes.
        oracle_epoch: return (R, n_test, K) scores recorded every ``cfg.eval_every`` epochs and at the final one.
        progress, writer: tqdm bar, TensorBoard writer.
        action_units: (targets (N, A), known (N,)) for ``cfg.au_weight`` > 0 (:func:`train_models`); only the
            folds' training rows reach a model, as for the labels.
        n_classes: K, the classes of the run's label set (:mod:`icegan.labels`; 3 for MEGC2019, 5 for CASME II's or
            SAMM's).
        n_real: rows ``0..n_real-1`` are real clips, the rows after them training-only synthetic clips of the same
            subjects (``data.synthetic_per_clip``; None: every row is real). With ``cfg.inner_val_fraction`` > 0 the
            validation subjects are drawn as without them, early stopping is judged on their real clips only
            (annotated labels, not the action-unit rule's), and none of their rows, real or synthetic (made from
            their clips), is trained on. With ``cfg.noise_filter=forest`` the filter is fitted on, and drops among,
            each fold's real training rows only; every synthetic training row is kept.
        noise_shares: with ``cfg.noise_filter=forest``, a dict that receives each fold's dropped share (the one
            logged to ``writer``, :func:`_drop_noisy_labels`): ``{fold index: share}``; None: not kept.

    Returns:
        One array per fold: class probabilities (n_test, K) averaged over seeds (and flip TTA), or
        (R, n_test, K) when ``oracle_epoch``.
    """
    device = resolve_device(device)
    if cfg.name in SKLEARN_MODELS:
        return [fit_predict_sklearn(cfg, x, y, f, seed=seed, n_classes=n_classes, subjects=subjects) for f in folds]
    if cfg.name == "custom":
        if oracle_epoch:
            raise ValueError("oracle_epoch is not available for model.name=custom (it records every epoch's test "
                             "scores inside the grouped networks only); set oracle_epoch=false")
        return [_fit_predict_custom_fold(cfg, x, y, subjects, f, device, seed, progress, writer, n_classes, n_real)
                for f in folds]
    N = x.shape[0]
    S = max(1, cfg.seeds)
    masks = np.zeros((len(folds) * S, N), dtype=bool)
    for i, f in enumerate(folds):
        masks[i * S:(i + 1) * S, f.train_idx] = True
    group_seed = derived_seed(seed, 1000 * int(getattr(folds[0], "index", 0)))
    batch_rows = val = None
    if cfg.inner_val_fraction > 0:
        # validation subjects are drawn from the training subjects as they are before the noise filter: the draws of
        # all models share one generator, and another fold's flags depend on this fold's held-out labels (a subject
        # that fold dropped entirely would change its draw, and so every later fold's); validation keeps all its clips
        val = inner_val_masks(subjects, masks, cfg.inner_val_fraction, np.random.default_rng(group_seed))[1]
    if cfg.noise_filter == "forest":
        # batches keep being drawn from the folds' training rows as they were before the filter: a clip that every
        # other fold flags (a flag that depends on its own subject's labels) must not change the batches of the
        # model tested on that subject
        batch_rows = torch.from_numpy(masks.any(0))
        masks = _drop_noisy_labels(cfg, x, y, masks, folds, S, seed, progress, writer, n_classes, n_real, val,
                                   noise_shares)
    if val is not None:
        masks = masks & ~val                    # every row of the validation subjects, their synthetic clips too
        if n_real is not None:
            val[:, n_real:] = False             # judged on real clips only
        val = torch.from_numpy(val)
    domains = None
    if cfg.domain_bn or cfg.domain_adversarial > 0:
        from icegan.data.features import dataset_indices
        domains = dataset_indices(subjects)[0]
    sw = _balance_weights(cfg, subjects, y.numpy(), masks, "pass subjects=...")
    xs = resize_features(x.float(), cfg.input_size)
    tag = f"folds{getattr(folds[0], 'index', 0)}-{getattr(folds[-1], 'index', len(folds) - 1)}"
    model, records = train_models(cfg, xs, y.long(), torch.from_numpy(masks), val, device=device, seed=group_seed,
                                  record_every=cfg.eval_every if oracle_epoch else 0, progress=progress,
                                  writer=writer, tag=tag, domains=domains, sample_weight=sw,
                                  action_units=action_units, batch_rows=batch_rows, n_classes=n_classes)
    out = []
    if oracle_epoch:
        rec = torch.stack(records)                                     # (R, N, G, K)
        for i, f in enumerate(folds):
            out.append(rec[:, f.test_idx, i * S:(i + 1) * S].mean(2).numpy())
    else:
        probs = _predict(cfg, model, xs.to(device), domains.to(device) if cfg.domain_bn else None).cpu()
        for i, f in enumerate(folds):
            out.append(probs[f.test_idx, i * S:(i + 1) * S].mean(1).numpy())
    return out


def recognizer_provenance(cfg: RecognizerConfig) -> dict:
    """What a run's results depend on beyond its config: for ``name=custom``, ``{"recognizer_module": the spec,
    "recognizer_source_sha256": SHA-256 of its code}`` (the module's and the factory's files), kept in ``run.json`` so that a resumed run
    whose recognizer code changed is refused; ``{}`` for the built-in recognizers.

    Raises:
        ValueError: an unusable ``cfg.module`` (:func:`icegan.models.recognizers.load_recognizer_factory`).
    """
    if cfg.name != "custom":
        return {}
    from icegan.models.recognizers import recognizer_source_sha256
    return {"recognizer_module": cfg.module,
            "recognizer_source_sha256": recognizer_source_sha256(cfg.module, f"{cfg.SECTION}.module")}


def check_network_builds(cfg: RecognizerConfig) -> None:
    """Build ``cfg``'s built-in network (ststnet, offtanet) once, so that a setting it cannot be built with (an
    ``input_size`` too small for its pooling, an Off-TANet size its stem stride does not divide) is reported with the
    config key before any run folder or training exists; a no-op for the scikit-learn recognizers and ``custom``
    (:func:`check_custom_recognizer`).

    Raises:
        ValueError: the network cannot be built; the message names ``<section>.input_size`` when the network's reason
            is its size, else the settings it is built from, and the network's reason.
    """
    if cfg.name not in ("ststnet", "offtanet"):
        return
    try:
        _build(cfg, 1)
    except ValueError as exc:
        sec = cfg.SECTION
        if "input_size" in str(exc):                  # the network's own reason names the size it cannot take
            raise ValueError(f"{sec}.input_size={cfg.input_size} does not fit {cfg.name}: {exc}") from None
        built_from = [f"{sec}.input_size={cfg.input_size}", f"{sec}.dropout={cfg.dropout}"]
        built_from.append(f"{sec}.stem_stride={cfg.stem_stride}" if cfg.name == "offtanet"
                          else f"{sec}.width={cfg.width}")
        raise ValueError(f"{sec}.name={cfg.name} cannot be built with {', '.join(built_from)}: {exc}") from None


def check_custom_recognizer(cfg: RecognizerConfig, x: Optional[torch.Tensor] = None, n_classes: int = 3) -> None:
    """Build ``cfg``'s custom recognizer and run it once in evaluation mode and once as a training step (forward and
    backward), so that a wrong module is reported before any training (a no-op for the built-in recognizers). The
    caller's random state is left as it was.

    Args:
        cfg: settings. x: (N ≥ 2, 3, H, W) features (two are resized to ``cfg.input_size`` here); None: two random
            maps in [0, 1]. n_classes: K, the classes of the run's label set (:mod:`icegan.labels`).

    Raises:
        ValueError: the factory cannot be built; the module fails on, or returns other than (B, K) floating-point
            logits for, a (2, 3, S, S) batch; or its loss cannot be back-propagated (the message names the
            ``module`` key of the config's section).
    """
    if cfg.name != "custom":
        return
    key = f"{cfg.SECTION}.module"
    with torch.random.fork_rng(devices=[]):           # the check leaves the caller's random state as it was:
        torch.default_generator.manual_seed(0)        # the CPU generator only (fork_rng restores it; not the GPUs')
        batch = (torch.rand(2, 3, cfg.input_size, cfg.input_size) if x is None
                 else resize_features(x[:2].float(), cfg.input_size))
        model = _build(cfg, 1, n_classes=n_classes)
        stage = "evaluation"
        try:
            with torch.no_grad():
                model.eval()(batch)
            stage = "a training step"
            F.cross_entropy(model.train()(batch), torch.tensor([0, 1])).backward()
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"{key}={cfg.module!r} failed in {stage} on a batch of shape {tuple(batch.shape)} "
                             f"({cfg.SECTION}.input_size={cfg.input_size}): {type(exc).__name__}: {exc}") from exc


def _fit_predict_custom_fold(cfg: RecognizerConfig, x: torch.Tensor, y: torch.Tensor, subjects: Sequence[str],
                             fold: Any, device: str | torch.device, seed: int, progress: bool,
                             writer: Any, n_classes: int = 3, n_real: Optional[int] = None) -> np.ndarray:
    """One LOSO fold of a custom recognizer: (n_test, K) probabilities of ``fold.test_idx`` from models trained on
    ``fold.train_idx`` only (less every row of the inner-validation subjects when ``cfg.inner_val_fraction`` > 0;
    they are validated on their real rows, those before ``n_real``, as in :func:`fit_predict_folds`). The fold's
    seed is ``seed + 1000 · fold.index`` (:func:`flownet.user_numbers.derived_seed`), as a grouped network's, so a
    resumed run retrains it identically."""
    fold_seed = derived_seed(seed, 1000 * int(getattr(fold, "index", 0)))
    train = np.asarray(fold.train_idx)
    x_val = y_val = None
    if cfg.inner_val_fraction > 0:
        train, val = inner_val_split(subjects, train, cfg.inner_val_fraction, fold_seed)
        if n_real is not None:
            val = val[val < n_real]                                   # real clips only
        x_val, y_val = x[torch.from_numpy(val)], y[torch.from_numpy(val)]
    index = torch.from_numpy(train)
    predict = fit_recognizer(cfg, x[index], y[index], device=device, seed=fold_seed, x_val=x_val, y_val=y_val,
                             progress=progress, writer=writer, subjects_train=[subjects[i] for i in train],
                             n_classes=n_classes)
    return predict(x[torch.as_tensor(fold.test_idx)])


def member_seed(seed: int, k: int) -> int:
    """Seed of ensemble member k of a custom recognizer: ``seed`` itself for k = 0, else a draw of NumPy's
    ``SeedSequence([seed, k])``, so that member k of one run is never member 0 of the run with the next seed."""
    if k == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1)[0])


def fit_recognizer(cfg: RecognizerConfig, x_train: torch.Tensor, y_train: torch.Tensor,
                   device: str | torch.device = "cpu", seed: int = 0, x_val: Optional[torch.Tensor] = None,
                   y_val: Optional[torch.Tensor] = None, progress: bool = True, writer: Any = None,
                   subjects_train: Optional[Sequence[str]] = None,
                   sample_weight: Optional[torch.Tensor] = None, n_classes: int = 3,
                   val_masks: Optional[np.ndarray] = None) -> "FittedRecognizer":
    """Train one recognizer (× ``cfg.seeds`` ensemble) for one fold (or, in ``icegan fit``, on every clip); return it
    as a function of the features.

    Args:
        cfg: settings (``ststnet``, ``offtanet``, ``logreg``, ``random_forest`` or ``custom``: then ``cfg.seeds``
            models are trained one after another, with the seeds :func:`member_seed` gives).
        x_train: (N, 3, H, W) training features (u, v, strain in [0, 1]); y_train (N,) labels.
        device: as :func:`train_models` (``auto`` included).
        seed: seed.
        x_val, y_val: optional inner-validation samples from *training* subjects (never the test
            subject) for early stopping; ignored by the scikit-learn recognizers (:data:`SKLEARN_MODELS`).
        subjects_train: (N,) subject of every training row; required by ``cfg.subject_weighting``.
        sample_weight: optional (N,) non-negative loss weight of every training row (e.g. the main job's
            ``gan.synthetic_weight`` for its synthetic rows), multiplied with the subject weights when both are
            given; the class weights are computed on the weighted counts. None = 1.
        n_classes: K, the classes of the label set (:mod:`icegan.labels`; 3 for MEGC2019).
        val_masks: (S, N) bool, ``S = cfg.seeds``, for the grouped networks (``ststnet``, ``offtanet``) instead of
            ``x_val``: copy g of the group early-stops on the rows ``val_masks[g]`` of ``x_train`` and learns from the
            others (``icegan fit``'s split per member, drawn as :func:`fit_predict_folds` draws a fold's by
            :func:`inner_val_masks`); ``subjects_train`` and ``sample_weight`` then cover all N rows.

    Returns:
        :class:`FittedRecognizer`: ``fitted(x) -> np.ndarray (n, K)`` class probabilities for features (n, 3, H, W).

    Raises:
        ValueError: ``cfg.domain_bn`` (this entry point has no dataset ids), ``cfg.noise_filter`` (no LOSO folds); ``cfg.subject_weighting`` without
            ``subjects_train`` (or with another number of them than training rows); a ``sample_weight`` of
            another length than the training rows, negative or not finite; ``val_masks`` with ``x_val``, for a
            recognizer other than ststnet / offtanet, or of another shape than (``cfg.seeds``, N).
    """
    device = resolve_device(device)
    S = max(1, cfg.seeds)
    if val_masks is not None:
        val_masks = np.asarray(val_masks, dtype=bool)
        if x_val is not None or cfg.name not in ("ststnet", "offtanet") or val_masks.shape != (S, len(x_train)):
            raise ValueError(f"val_masks ({val_masks.shape}) is one row per member of a grouped network ({S}, "
                             f"{len(x_train)}) for {cfg.SECTION}.name=ststnet or offtanet without x_val; got "
                             f"{cfg.SECTION}.name={cfg.name}{' with x_val' if x_val is not None else ''}")
    if cfg.noise_filter != "none":
        raise ValueError(f"{cfg.SECTION}.noise_filter works on LOSO folds (`icegan loso` feature runs), not in this "
                         f"per-fold entry point; set {cfg.SECTION}.noise_filter=none")
    if cfg.domain_bn:
        raise ValueError(f"{cfg.SECTION}.domain_bn needs every clip's dataset; it is supported by `icegan loso` "
                         f"feature runs only, not by the main job's per-fold recognizer: set "
                         f"{cfg.SECTION}.domain_bn=false")
    if subjects_train is not None and len(subjects_train) != len(x_train):
        raise ValueError(f"subjects_train holds {len(subjects_train)} subjects for {len(x_train)} training rows")
    key = "subject_weighting" if cfg.subject_weighting else "class_balance"
    learn = np.ones((1, len(x_train)), dtype=bool) if val_masks is None else ~val_masks   # (1 or S, N)
    weights = _balance_weights(cfg, subjects_train, y_train.numpy(), learn,
                               f"it is supported by `icegan loso` feature runs and `icegan fit`, not by the main job's "
                               f"per-fold recognizer: set {cfg.SECTION}.{key} to its default")
    if weights is not None and val_masks is None:
        weights = weights[0]                                                                    # (N,)
    if sample_weight is not None:
        sample_weight = torch.as_tensor(sample_weight, dtype=torch.float32)
        _check_sample_weight(sample_weight, (len(x_train),), f"have one weight per training row ({len(x_train)},)")
        weights = sample_weight if weights is None else weights * sample_weight
    if cfg.name in SKLEARN_MODELS:
        return FittedRecognizer(cfg, clf=_fit_sklearn(cfg, seed, x_train, y_train, weights, n_classes),
                                device=device, n_classes=n_classes)
    xs = x_train if x_val is None else torch.cat([x_train, x_val])
    ys = y_train if y_val is None else torch.cat([y_train, y_val])
    n = len(x_train)
    copies = 1 if cfg.name == "custom" else S      # a custom recognizer: one model per seed, one after another
    tm = torch.zeros(copies, len(xs), dtype=torch.bool)
    tm[:, :n] = True
    vm = None
    if x_val is not None:
        vm = torch.zeros_like(tm)
        vm[:, n:] = True
    elif val_masks is not None:             # each copy's own held-out rows, as a LOSO fold's (fit_predict_folds)
        vm = torch.from_numpy(val_masks)
        tm = ~vm
    sw = None
    if weights is not None:
        sw = torch.zeros(copies, len(xs))
        sw[:, :n] = weights
    xs = resize_features(xs.float(), cfg.input_size)
    models = [train_models(cfg, xs, ys.long(), tm, vm, device=device, seed=member_seed(seed, k), progress=progress,
                           writer=writer, tag=f"seed{k}" if S > copies else "", sample_weight=sw,
                           n_classes=n_classes)[0]
              for k in range(S // copies)]
    return FittedRecognizer(cfg, models=models, device=device, n_classes=n_classes)


class FittedRecognizer:
    """A trained recognizer (all its ensemble members) as a function: ``fitted(x) -> (n, K)`` probabilities.

    What :func:`fit_recognizer` returns; :meth:`state` and :meth:`from_state` turn it into plain tensors and back
    (:mod:`icegan.saved_recognizer` writes them to a file), so a model trained once can score new clips later.

    Args:
        cfg: the settings it was trained with (its test-time augmentation and ``input_size`` apply when scoring).
        models: the networks (``ststnet``, ``offtanet``, ``custom``): a list of members, each a grouped network of G
            copies or a :class:`SnapshotAverage` of such networks, in evaluation mode. Probabilities are averaged
            over copies and members.
        clf: the fitted scikit-learn estimator (``cfg.name`` in :data:`SKLEARN_MODELS`) instead of ``models``.
        device: where the networks live and the features are scored.
        n_classes: K, the classes of its label set (:mod:`icegan.labels`; 3 for MEGC2019).

    Raises:
        ValueError: neither or both of ``models`` and ``clf``.
    """

    def __init__(self, cfg: RecognizerConfig, models: Optional[Sequence[torch.nn.Module]] = None, clf: Any = None,
                 device: str | torch.device = "cpu", n_classes: int = 3):
        if (models is None) == (clf is None):
            raise ValueError("FittedRecognizer needs either the trained networks (models) or a scikit-learn "
                             "estimator (clf), not both or neither")
        self.cfg, self.models, self.clf, self.device = cfg, list(models or []), clf, resolve_device(device)
        self.n_classes = n_classes

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        """(n, 3, H, W) features (u, v, strain in [0, 1], any square size: resized to ``cfg.input_size`` for the
        networks) → (n, K) class probabilities, float64 for scikit-learn and float32 for the networks."""
        if self.clf is not None:
            return _predict_sklearn(self.cfg, self.clf, x, self.n_classes)
        xt = resize_features(x.float(), self.cfg.input_size).to(self.device)
        p = torch.stack([_predict(self.cfg, m, xt) for m in self.models]).mean(0)      # (n, copies, K)
        return p.mean(1).cpu().numpy()

    def state(self) -> dict:
        """The networks as plain tensors: ``{"members": [{"copies": G, "snapshots": k (0: one set of weights),
        "state_dict": {name: CPU tensor}}, ...]}``; for a scikit-learn recognizer ``{"members": []}`` (the estimator
        itself is pickled by :mod:`icegan.saved_recognizer`)."""
        members = []
        for m in self.models:
            inner = m.models if isinstance(m, SnapshotAverage) else [m]
            members.append({"copies": _copies(inner[0]), "snapshots": len(inner) if isinstance(m, SnapshotAverage) else 0,
                            "state_dict": {k: v.detach().cpu() for k, v in m.state_dict().items()}})
        return {"members": members}

    @classmethod
    def from_state(cls, cfg: RecognizerConfig, state: dict, clf: Any = None,
                   device: str | torch.device = "cpu", n_classes: int = 3) -> "FittedRecognizer":
        """Rebuild the networks of ``cfg`` and load :meth:`state`'s weights into them (or wrap a scikit-learn
        ``clf``).

        Raises:
            ValueError: no members, or the state's weights do not fit the networks ``cfg`` builds (another
                recognizer, width or input size than the one they were trained with), naming the first mismatch.
        """
        if cfg.name in SKLEARN_MODELS:
            return cls(cfg, clf=clf, device=device, n_classes=n_classes)
        if not state.get("members"):
            raise ValueError(f"no trained weights for the {cfg.name} networks (an empty member list)")
        device = resolve_device(device)
        models = []
        for i, member in enumerate(state["members"]):
            k, G = int(member["snapshots"]), int(member["copies"])
            m = (SnapshotAverage([_build(cfg, G, n_classes=n_classes) for _ in range(k)]) if k
                 else _build(cfg, G, n_classes=n_classes))
            try:
                m.load_state_dict(member["state_dict"])
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()
                raise ValueError(f"member {i}: the saved weights do not fit a {cfg.name} recognizer built from the "
                                 f"saved config ({first[1].strip() if len(first) > 1 else first[0]})") from None
            models.append(m.to(device).eval())
        return cls(cfg, models=models, device=device, n_classes=n_classes)


def _copies(model: torch.nn.Module) -> int:
    """G, the number of grouped copies a built recognizer holds (1 for a custom network)."""
    return int(getattr(model, "n_models", 1))


def sklearn_classifier(cfg: RecognizerConfig, seed: int = 0):
    """The unfitted scikit-learn estimator of ``cfg.name``: standardised logistic regression, a random forest
    (scale-free, so unstandardised; ``random_state = seed``; one job, since folds run in parallel processes) or
    histogram gradient-boosted trees (scale-free; scikit-learn's defaults, early stopping off: deterministic).

    Raises:
        ValueError: ``cfg.name`` is not one of :data:`SKLEARN_MODELS`.
    """
    weights = "balanced" if cfg.class_weighting else None
    if cfg.name == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier
        return HistGradientBoostingClassifier(early_stopping=False, class_weight=weights, random_state=seed)
    if cfg.name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier
        return RandomForestClassifier(n_estimators=cfg.forest_trees, class_weight=weights, random_state=seed, n_jobs=1)
    if cfg.name != "logreg":
        raise ValueError(f"model.name={cfg.name!r} is not a scikit-learn recognizer ({', '.join(SKLEARN_MODELS)})")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(C=cfg.logreg_C, max_iter=cfg.logreg_max_iter,
                                                              class_weight=weights))


def _fit_sklearn(cfg: RecognizerConfig, seed: int, x: torch.Tensor, y: torch.Tensor,
                 sample_weight: Optional[torch.Tensor] = None, n_classes: int = 3):
    """Fit ``cfg``'s scikit-learn recognizer on (n, 3, H, W) features flattened; with ``cfg.hflip`` on the clips and
    their mirrors (:func:`hflip_features`), mirrors appended after the clips. ``sample_weight`` (n,) (e.g.
    :func:`subject_weights`): passed to ``fit``, times the balanced class weights computed on the weighted counts
    (:func:`class_weights` over the ``n_classes`` classes), which then replace scikit-learn's ``class_weight``."""
    clf = sklearn_classifier(cfg, seed)
    fit_kw = {}
    if sample_weight is not None:
        w = sample_weight.float() * class_weights(y, sample_weight.float()[None], n_classes, cfg.class_weighting)[0][y]
        if cfg.hflip:
            w = torch.cat([w, w])
        clf.set_params(**{k: None for k in clf.get_params() if k.endswith("class_weight")})
        fit_kw = {(clf.steps[-1][0] + "__" if hasattr(clf, "steps") else "") + "sample_weight": w.numpy()}
    if cfg.hflip:
        x, y = torch.cat([x, hflip_features(x)]), torch.cat([y, y])
    with one_blas_thread():
        return clf.fit(x.reshape(len(x), -1).numpy(), y.numpy(), **fit_kw)


def one_blas_thread():
    """Context in which BLAS (OpenBLAS / MKL) runs one thread. The scikit-learn recognizers (and the logistic-regression
    probe of ``icegan gan eval``, :class:`icegan.gan.evaluate.FlowRecognizer`) fit and predict in it:
    their matrices are small (a fold of 28×28 maps: about 430 × 2352), where a second BLAS thread costs more than it
    gives (logistic regression 0.24 s against 1.32 s per fold on a 2-core Intel Xeon, ``bench/sklearn_threads.py``),
    and their predictions then no longer depend on the thread count (float summation order). Folds in parallel
    processes (``workers``) are where these recognizers get their parallelism. OpenMP (and SciPy's BLAS) keep the
    process's ``threads`` limit (:func:`icegan.environment.limit_sklearn_threads`, applied here)."""
    from threadpoolctl import threadpool_limits

    from icegan.environment import limit_sklearn_threads
    limit_sklearn_threads()
    return threadpool_limits(limits=1, user_api="blas")


def _predict_sklearn(cfg: RecognizerConfig, clf, x: torch.Tensor, n_classes: int) -> np.ndarray:
    """(n, n_classes) probabilities of a fitted scikit-learn recognizer; with ``cfg.tta_hflip`` averaged with those
    of the mirrored features."""
    p = _proba(clf, x.reshape(len(x), -1).numpy(), n_classes)
    if cfg.tta_hflip:
        p = (p + _proba(clf, hflip_features(x).reshape(len(x), -1).numpy(), n_classes)) / 2
    return p


def _proba(clf, x: np.ndarray, n_classes: int) -> np.ndarray:
    with one_blas_thread():
        p = clf.predict_proba(x)
    out = np.zeros((len(x), n_classes))
    out[:, clf.classes_] = p
    return out


def fit_predict_sklearn(cfg: RecognizerConfig, x: torch.Tensor, y: torch.Tensor, fold: Any, seed: int = 0,
                        n_classes: int = 3, subjects: Optional[Sequence[str]] = None) -> np.ndarray:
    """A scikit-learn recognizer (``cfg.name``: ``logreg``, ``random_forest`` or ``gradient_boosting``) fitted on one
    fold's training rows.

    Args:
        cfg: settings (``logreg_C``, ``logreg_max_iter``, ``forest_trees``, ``class_weighting``, ``hflip``: fit on
            the training clips and their mirrors, ``tta_hflip``: average with the mirrored test clips' probabilities).
        x: (N, 3, H, W) features of the whole table (flattened at their stored size).
        y: (N,) labels in 0..n_classes-1.
        fold: a :class:`icegan.protocol.Fold` (``train_idx``, ``test_idx``).
        seed: the random forest's random state (the same in every fold, so a resumed run refits the same forest).
        subjects: (N,) subject of every row; required by ``cfg.subject_weighting`` (:func:`subject_weights`).

    Returns:
        (n_test, n_classes) class probabilities of ``fold.test_idx`` (0 for a class absent from training).

    Raises:
        ValueError: ``cfg.name`` is not a scikit-learn recognizer; ``cfg.subject_weighting`` without ``subjects``.
    """
    train, test = torch.as_tensor(fold.train_idx), torch.as_tensor(fold.test_idx)
    weights = _balance_weights(cfg, None if subjects is None else [subjects[int(i)] for i in train],
                               y[train].numpy(), np.ones((1, len(train)), dtype=bool), "pass subjects=...")
    weights = None if weights is None else weights[0]
    clf = _fit_sklearn(cfg, seed, x[train], y[train], weights, n_classes)
    return _predict_sklearn(cfg, clf, x[test], n_classes)
