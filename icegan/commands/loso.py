"""``icegan loso``: leave-one-subject-out (or leave-one-dataset-out) evaluation of a recognizer on precomputed flow
features.

Example::

    icegan loso --config configs/features_ststnet.yaml --out runs/ststnet model.epochs=50
    icegan loso --config configs/features_ststnet.yaml --out runs/ststnet_hde protocol=HDE

Protocols (:mod:`icegan.protocol`): ``CDE`` LOSO over every subject of the data (68 folds on the composite), ``SDE``
LOSO within ``dataset``, ``HDE`` leave one dataset out (MEGC2018's holdout-database evaluation generalised: one fold
per dataset of the data, tested whole by a model trained on the other datasets; 3 folds on the composite). Under HDE
the settings that need subject folds or the held-out dataset's own clips are refused before any run folder exists
(:func:`hde_conflicts`): ``oracle_epoch``, ``model.domain_bn``, ``data.train_subject_fraction`` < 1;
``model.domain_adversarial`` needs at least three datasets (two in every fold's training). Under CDE a held-out
subject that is the only one of its dataset leaves its fold no clip of that dataset: ``model.domain_bn`` is then refused
(:func:`check_domain_bn`), and ``model.domain_adversarial`` when the fold trains on one dataset
(:func:`check_domain_adversarial`), before any run folder exists. Inner splits of the
training clips (``model.inner_val_fraction``, a suite's nested selection) stay by training subject. Each HDE fold is
trained alone (``model.folds_per_group`` does not apply), on batches of its own training clips: the model ``icegan
fit`` trains on the same datasets with the fold's seed.

Config file sections (all keys optional, defaults below; unknown keys are errors):

    name: run title                       protocol: CDE | SDE | HDE
    dataset: SDE dataset (casme2|samm|smic)  oracle_epoch: false
    seed: 0        device: cpu | cuda | cuda:0 ...   threads: 0 (torch CPU threads; 0 = default)
    workers: 1 (>1: groups of model.folds_per_group folds trained in that many processes; 0 = one per usable CPU;
               CPU only for the networks; logreg, random_forest and gradient_boosting ignore device)
    max_folds: 0 (>0: first k folds only, smoke runs)
    data:  source (megc2019_htnet | table | toy), root, table, normalize (none | minmax), datasets, size (28), recenter (none | median), roi (none | landmarks),
           roi_patch (7), synthetic_per_clip (0),
           permute_labels (-1), train_subject_fraction (1.0), annotations (sheets folder, model.au_weight)
    model: see icegan.recognizer_config.RecognizerConfig
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, Optional

from icegan.commands import add_print_config, print_config
from icegan.paths import check_run_name, config_hint, with_config_hints
from icegan.recognizer_config import SKLEARN_MODELS, RecognizerConfig

__all__ = ["FeatureDataConfig", "LosoConfig", "register", "run", "load_feature_set", "load_synthetic_set",
           "load_action_units", "check_domain_adversarial", "check_domain_bn", "check_run", "permute_labels",
           "fold_runner", "hde_conflicts"]


@dataclass
class FeatureDataConfig:
    """Where the features come from (YAML section ``data``).

    Attributes:
        source: ``megc2019_htnet`` (442 precomputed 28×28 u/v/strain PNGs), ``table`` (your own features listed
            in the CSV ``table``: :mod:`icegan.data.feature_table`) or ``toy`` (the tiny synthetic set of
            :mod:`icegan.data.toy_features`, no licensed data needed).
        table: ``table`` source only: the CSV (columns dataset, subject, clip, label, path; paths relative to it).
        normalize: ``table`` source only: ``none`` (the maps must already lie in [0, 1], min–max normalised per
            clip like the MEGC2019 maps) or ``minmax`` (each channel of each clip normalised to [0, 1] on loading,
            for raw flow in pixels).
        root: folder of ``megc2019_htnet`` (default ``<shared data>/megc2019_htnet``), or a clone of the
            HTNet release (``datasets/STSNet_whole_norm_u_v_os/``; see ``icegan.data.features.LAYOUTS``).
        datasets: keep only these datasets (``casme2``, ``samm``, ``smic``, or other names the table holds);
            empty = all.
        size: side of the flow-map PNGs in pixels (28); 0 accepts any square size that all files share (e.g.
            112×112 maps; the model resizes to its ``input_size``). megc2019_htnet and table sources.
        toy_subjects: toy source only: subjects per dataset (refused with ``megc2019_htnet``; a ``table`` run,
            whose table names its subjects, ignores it).
        recenter: ``none`` keeps the features as read; ``median`` moves the median of each clip's
            u and v maps to 0.5 (:func:`icegan.data.features.recenter_flow`: undoes the offset the
            per-image min–max normalisation gives zero motion; per clip, no other clip involved).
        roi: ``none`` keeps the whole face map; ``landmarks`` replaces it with HTNet's four landmark regions
            (brow/eye left and right, lip corners left and right), ``roi_patch`` pixels square each, tiled
            2 × 2 (:func:`icegan.data.roi.landmark_roi_features`; landmarks of each clip's own apex face in
            ``faces_224``, cached under ``<ICEGAN_DATA>/cache/megc2019_roi``). Applied after ``recenter``.
            The model resizes the tiled map to its ``input_size``. megc2019_htnet source only.
        roi_patch: side of each region window in flow-map pixels (HTNet: 7).
        permute_labels: >= 0: a null run. The labels are permuted within each dataset (seeded by this value; every
            dataset keeps its class counts) before anything else, so no feature carries label information and an
            honest LOSO must score chance (about 1/K UF1 for K classes: 1/3 for MEGC2019's, give or take the
            sampling spread of 442 clips; 1/5 for casme2_5 and samm_5). A higher
            score would mean a leak somewhere in the pipeline. The run's title says so in metrics.md and the
            plots. -1 (default): the real labels.
        train_subject_fraction: < 1 makes the run one point of a learning curve: every fold (and every inner fold
            of a nested selection) trains on that share of its training subjects, per dataset, chosen by ``seed``
            and the held-out subject (:func:`icegan.protocol.subsample_training_subjects`); every clip is still
            tested once. 1.0 (default): all training subjects. CDE and SDE only (``protocol=HDE`` refuses it).
        synthetic_per_clip: > 0 adds that many synthetic clips per real clip to the training sets: each clip's
            apex face warped by a class-specific action-unit motion, TV-L1 features like the real ones
            (:func:`icegan.data.synthetic_features.synthetic_au_features`, cached under
            ``<ICEGAN_DATA>/cache/megc2019_roi``). A fold trains on the synthetic clips of its own training
            subjects only; they are never scored. With ``model.inner_val_fraction`` early stopping is judged on the
            validation subjects' real clips only, and their synthetic clips are not trained on either.
            megc2019_htnet source only; not with ``roi``.
        annotations: folder holding the official coding sheets (``CASME2-coding-20140508.xlsx``,
            ``SAMM_Micro_FACS_Codes_v2.xlsx``) under their official names; read only for ``model.au_weight`` > 0
            (:func:`icegan.data.action_units.action_unit_targets`). Default ``<shared data>/annotations``.
        labels: the label set of the clips' labels (:mod:`icegan.labels`): ``megc2019`` (negative, positive,
            surprise; every source), ``casme2_5`` (CASME II's happiness, disgust, repression, surprise, others) or
            ``samm_5`` (SAMM's anger, contempt, happiness, surprise, other); the last two ``table`` source only,
            e.g. the table ``icegan features`` writes with ``data.labels=casme2_5`` or ``samm_5``. Their labelled
            rows must be clips of that set's dataset.
    """
    source: Literal["megc2019_htnet", "table", "toy"] = "megc2019_htnet"
    root: Optional[str] = None
    table: Optional[str] = None
    normalize: Literal["none", "minmax"] = "none"
    datasets: list[str] = field(default_factory=list)
    size: int = 28
    toy_subjects: int = 4
    recenter: Literal["none", "median"] = "none"
    roi: Literal["none", "landmarks"] = "none"
    roi_patch: int = 7
    synthetic_per_clip: int = 0
    permute_labels: int = -1
    train_subject_fraction: float = 1.0
    annotations: Optional[str] = None
    labels: Literal["megc2019", "casme2_5", "samm_5"] = "megc2019"

    def __post_init__(self):
        if self.source == "table" and not self.table:
            raise ValueError("data.source=table needs data.table=PATH/TO/features.csv (columns dataset, subject, "
                             "clip, label, path)")
        if self.table and self.source != "table":
            raise ValueError(f"data.table is read only with data.source=table, not {self.source!r}")
        if self.normalize != "none" and self.source != "table":
            raise ValueError(f"data.normalize applies to data.source=table (the {self.source!r} maps are normalised "
                             "already)")
        if self.root and self.source == "table":
            raise ValueError("data.root is the megc2019_htnet folder; with data.source=table give data.table")
        if self.root and self.source == "toy":
            raise ValueError("data.root is the megc2019_htnet folder, not read with data.source=toy (its maps are "
                             "made in memory): leave data.root out")
        toy_default = next(f.default for f in fields(self) if f.name == "toy_subjects")
        # not refused with table: a table run may be built over a toy run's overrides (tests' TOY), and its table
        # names its subjects; megc2019_htnet's are the release's
        if self.toy_subjects != toy_default and self.source == "megc2019_htnet":
            raise ValueError("data.toy_subjects is read only with data.source=toy, not 'megc2019_htnet': leave it out")
        if self.roi != "none" and self.source != "megc2019_htnet":
            raise ValueError(f"data.roi={self.roi} needs the faces of data.source=megc2019_htnet, not {self.source!r}")
        if self.synthetic_per_clip < 0:
            raise ValueError(f"data.synthetic_per_clip must be >= 0, got {self.synthetic_per_clip}")
        if self.synthetic_per_clip and self.source != "megc2019_htnet":
            raise ValueError(f"data.synthetic_per_clip needs the faces of data.source=megc2019_htnet, not "
                             f"{self.source!r}")
        if self.synthetic_per_clip and self.roi != "none":
            raise ValueError("data.synthetic_per_clip makes whole-face maps; it cannot be combined with "
                             f"data.roi={self.roi}")
        if self.permute_labels < -1:
            raise ValueError(f"data.permute_labels must be -1 (real labels) or a seed >= 0, got {self.permute_labels}")
        if not 0.0 < self.train_subject_fraction <= 1.0:
            raise ValueError(f"data.train_subject_fraction must be in (0, 1] (the share of each fold's training "
                             f"subjects kept), got {self.train_subject_fraction}")
        if self.size < 0:
            raise ValueError(f"data.size must be >= 0 pixels (0 = any square size), got {self.size}")
        if self.toy_subjects < 1:
            raise ValueError(f"data.toy_subjects must be >= 1 (subjects per dataset of the toy source), got "
                             f"{self.toy_subjects}")
        if self.synthetic_per_clip and self.size != 28:
            raise ValueError(f"data.synthetic_per_clip makes 28x28 maps like the composite's; it needs data.size=28, "
                             f"not {self.size}")
        if not 1 <= self.roi_patch <= 28:
            raise ValueError(f"data.roi_patch must be in 1..28 flow-map pixels, got {self.roi_patch}")
        if self.labels != "megc2019" and self.source != "table":
            from icegan.labels import get_label_set
            raise ValueError(f"data.labels={self.labels} needs data.source=table: the {self.source!r} clips carry "
                             f"MEGC2019 classes only (write a table of the maps with `icegan features --config "
                             f"{get_label_set(self.labels).config}`, or with a main-job config of data.labels="
                             f"{self.labels} that prepares every sheet clip, composite_only: false)")


@dataclass
class LosoConfig:
    """Top-level config of ``icegan loso`` (see the module docstring). ``protocol=HDE`` refuses the settings
    :func:`hde_conflicts` lists (a ValueError naming each key)."""
    name: str = "loso"
    protocol: Literal["CDE", "SDE", "HDE"] = "CDE"
    dataset: Optional[str] = None
    oracle_epoch: bool = False
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    workers: int = 1
    max_folds: int = 0
    data: FeatureDataConfig = field(default_factory=FeatureDataConfig)
    model: RecognizerConfig = field(default_factory=RecognizerConfig)

    def __post_init__(self):
        from icegan.config import check_ranges          # not at import: `icegan --help` reads no YAML machinery
        check_ranges(self, seeds=("seed",))
        check_run_name(self.name)
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = one per usable CPU), got {self.workers}")
        from icegan.environment import check_threads
        check_threads(self.threads, "torch CPU threads; 0 = default")
        if self.max_folds < 0:
            raise ValueError(f"max_folds must be >= 0 (0 = all folds, k > 0 = the first k), got {self.max_folds}")
        if self.workers != 1 and not self.device.startswith(("cpu", "auto")) and self.model.name not in SKLEARN_MODELS:
            raise ValueError(_workers_need_cpu(self.workers, self.device))
        if self.oracle_epoch and self.model.name in SKLEARN_MODELS:
            raise ValueError(f"oracle_epoch picks an epoch per test subject; model.name={self.model.name} has no "
                             "epochs (set oracle_epoch=false)")
        if self.oracle_epoch and self.model.name == "custom":
            raise ValueError("oracle_epoch is available for the built-in networks only, not model.name=custom "
                             "(set oracle_epoch=false)")
        conflicts = hde_conflicts(self)
        if conflicts:
            raise ValueError("; ".join(conflicts))


def hde_conflicts(cfg: "LosoConfig") -> list[str]:
    """The settings of ``cfg`` that cannot apply under ``protocol=HDE`` (leave one dataset out), one message per
    setting naming its key, why, and what to set; empty for CDE and SDE, or when none is set. :class:`LosoConfig`
    raises them when it is built, so a config file, a command line or a suite member is refused before any run folder
    exists.

    Refused: ``oracle_epoch`` (the epoch would be picked on a whole test dataset), ``model.domain_bn`` (the held-out
    dataset's batch-norm statistics would never be trained), ``data.train_subject_fraction`` < 1 (a learning-curve
    point over the training subjects of subject folds). ``model.domain_adversarial`` depends on the data (at least two
    training datasets per fold): :func:`check_domain_adversarial`.
    """
    if cfg.protocol != "HDE":
        return []
    out = []
    if cfg.oracle_epoch:
        out.append("protocol=HDE cannot use oracle_epoch=true: it picks each fold's best epoch on the fold's test "
                   "clips, which under HDE are a whole dataset (selection on the test set itself, not the published "
                   "per-subject practice); set oracle_epoch=false")
    if cfg.model.domain_bn:
        out.append("protocol=HDE cannot use model.domain_bn=true: it normalises a test clip with its own dataset's "
                   "batch-norm statistics, gathered from the fold's training clips, and under HDE the held-out "
                   "dataset has none (its statistics would never be trained); set model.domain_bn=false")
    if cfg.data.train_subject_fraction < 1.0:
        out.append(f"protocol=HDE cannot use data.train_subject_fraction={cfg.data.train_subject_fraction}: a "
                   "learning-curve point subsamples the training subjects of subject folds (CDE, SDE); to vary what "
                   "an HDE fold trains on, choose the datasets with data.datasets=[...]; set it to 1.0")
    return out


def _workers_need_cpu(workers: int, device: str) -> str:
    return f"workers={workers} trains fold groups in CPU processes; with device={device} set workers=1"


def _face_cache_dir():
    """Cache of what is derived from the MEGC2019 apex faces (landmarks, synthetic clips):
    ``<ICEGAN_DATA>/cache/megc2019_roi``."""
    from icegan.paths import default_data_root
    return default_data_root() / "cache" / "megc2019_roi"


def load_synthetic_set(cfg: FeatureDataConfig, fs, progress: bool = False):
    """The training-only synthetic clips of ``cfg.synthetic_per_clip`` for the real set ``fs`` (None when 0),
    recentred like the real features."""
    if not cfg.synthetic_per_clip:
        return None
    from icegan.data.features import recenter_flow
    from icegan.data.synthetic_features import synthetic_au_features
    syn = synthetic_au_features(fs, cfg.synthetic_per_clip, cache_dir=_face_cache_dir(), progress=progress)
    if cfg.recenter == "median":
        syn = syn.replace(features=recenter_flow(syn.features))
    return syn


def load_feature_set(cfg: FeatureDataConfig, cache: Optional[dict] = None):
    """The :class:`~icegan.data.features.FeatureSet` described by ``cfg`` (recentred, cut to landmark regions
    if asked). ``cache``: a dict kept by the caller; a data section read before is taken from it, so runs over the
    same data (a suite's recipes, a nested selection's candidates) read the maps once."""
    if cache is not None:
        from icegan.config import to_dict
        key = repr(to_dict(cfg))
        if key not in cache:
            cache[key] = load_feature_set(cfg)
        return cache[key]
    from icegan.data.features import recenter_flow
    fs = _read_feature_set(cfg)
    if cfg.permute_labels >= 0:
        fs = fs.replace(samples=permute_labels(fs.samples, cfg.permute_labels))
    if cfg.recenter == "median":
        fs = fs.replace(features=recenter_flow(fs.features))
    if cfg.roi == "landmarks":
        from icegan.data.roi import landmark_roi_features
        fs = landmark_roi_features(fs, cfg.roi_patch, cache_dir=_face_cache_dir())
    return fs


def permute_labels(samples, seed: int):
    """A copy of the sample table with its labels permuted within each dataset (null runs, ``data.permute_labels``).

    Args:
        samples: table with columns dataset and label. seed: permutation seed (NumPy).

    Returns:
        the table with ``label`` permuted among the rows of each dataset; every other column unchanged.
    """
    import numpy as np
    rng = np.random.default_rng(seed)
    out = samples.copy()
    labels = out["label"].to_numpy().copy()
    datasets = out["dataset"].to_numpy()
    for ds in sorted(set(datasets)):
        idx = np.flatnonzero(datasets == ds)
        labels[idx] = labels[rng.permutation(idx)]
    out["label"] = labels
    return out


def _read_feature_set(cfg: FeatureDataConfig):
    if cfg.source == "toy":
        from icegan.data.toy_features import make_toy_features
        fs = make_toy_features(n_subjects_per_dataset=cfg.toy_subjects)
        if cfg.datasets:
            fs = fs.replace(keep=fs.samples["dataset"].isin(cfg.datasets).to_numpy())
        return fs
    if cfg.source == "table":
        from icegan.data.feature_table import load_table_features
        return load_table_features(cfg.table, cfg.datasets or None, size=cfg.size or None, normalize=cfg.normalize,
                                   labels=cfg.labels)
    from icegan.data.features import load_megc2019_features
    return load_megc2019_features(cfg.root, cfg.datasets or None, size=cfg.size or None)


def run(cfg: LosoConfig, out: Path, progress: bool = True, feature_set=None, action_units=None) -> dict:
    """Run (or resume) the LOSO described by ``cfg`` into ``out``; returns the metrics.json content.

    ``feature_set``: the :func:`load_feature_set` of ``cfg.data`` when the caller has loaded it already (the CLI
    does, to report bad input as an error message); None loads it here. ``action_units``: the
    :func:`load_action_units` of ``cfg`` and that feature set when the caller has read them already; None reads
    them here (when ``model.au_weight`` > 0). A feature table whose ``provenance.json`` records subjects whose real
    motion trained the flow network of its maps (:func:`table_motion_seen`) is warned about, and the run's reports
    say it is not leak-free where it tests them.
    """
    from icegan.protocol import run_loso

    fs = load_feature_set(cfg.data) if feature_set is None else feature_set
    folds_fn, per_call, group_map = fold_runner(cfg, fs, progress=progress, action_units=action_units)
    name = cfg.name
    from icegan.labels import get_label_set
    if cfg.data.permute_labels >= 0:
        name = f"{cfg.name} [NULL RUN: labels permuted within each dataset, seed {cfg.data.permute_labels}]"
        k = get_label_set(cfg.data.labels).n_classes             # chance UF1 is about 1/K: 1/3 for MEGC2019's
        print(f"note: data.permute_labels={cfg.data.permute_labels}: a null run on permuted labels; an honest "
              f"pipeline scores chance (UF1 about 1/{k} = {1 / k:.2f})", file=sys.stderr)
    from icegan.protocol import data_digest
    from icegan.recognition import recognizer_provenance
    seen, seen_by = table_motion_seen(cfg.data, fs.samples)
    return run_loso(fs.samples, None, out, protocol=cfg.protocol, oracle_epoch=cfg.oracle_epoch, config=cfg,
                    dataset=cfg.dataset, name=name, max_folds=cfg.max_folds, folds_fn=folds_fn,
                    folds_per_call=per_call, progress=progress, group_map=group_map,
                    classes=get_label_set(cfg.data.labels).classes,
                    provenance={**recognizer_provenance(cfg.model), "data": data_digest(fs.samples, fs.features)},
                    motion_seen=seen, motion_seen_by=seen_by)


def table_motion_seen(data: FeatureDataConfig, samples) -> tuple[list[str], str]:
    """``(subjects, source)``: the subjects of ``samples`` (a feature table's clips) whose real onset→apex frames
    trained the flow network that made the table's maps, as the ``provenance.json`` beside ``data.table`` records
    them (``real_motion_subjects``, written by ``icegan features``; matched by :func:`icegan.protocol.subject_key`),
    sorted, and ``"as <that provenance.json> records"`` (for the reports); ``([], "")`` for another source, a table
    without provenance.json or one without the key (:func:`icegan.data.feature_table.read_motion_subjects`: a file
    bad in another field still gives its record; a damaged one is warned about once in the command). When some are
    found a warning (logging, on stderr) names them: their folds are not leak-free."""
    if data.source != "table":
        return [], ""
    from icegan.data.feature_table import read_motion_subjects
    from icegan.protocol import subjects_among
    seen = subjects_among(samples["subject"], read_motion_subjects(data.table))
    if not seen:
        return [], ""
    prov = str(Path(data.table).parent / "provenance.json")
    import logging
    logging.getLogger("icegan").warning(
        "%s: the flow weights that made the maps of %s were trained on the real onset->apex frames (unlabelled) of "
        "%d of its %d subjects (%s%s): their features come from a network that has seen their motion, so their "
        "folds are not leak-free (metrics.md and icegan table say so); for flow no fold's data touched export the "
        "maps with flow.method=tvl1 or farneback, or with flow weights trained without them", prov, data.table,
        len(seen), samples["subject"].nunique(), ", ".join(seen[:5]), ", ..." if len(seen) > 5 else "")
    return seen, f"as {prov} records"


def fold_runner(cfg: LosoConfig, fs, progress: bool = True, action_units=None):
    """How ``cfg``'s folds are trained on the feature set ``fs``: ``(folds_fn, per_call, group_map)`` for
    :func:`icegan.protocol.run_loso` (also used for the inner folds of a nested selection, :mod:`icegan.selection`).

    Sets up this process first: the allocator, ``cfg.threads`` torch/BLAS threads. ``action_units``: as in
    :func:`run` (None: read from the sheets here when ``model.au_weight`` > 0).

    Returns:
        ``folds_fn`` (:class:`FeatureFolds`: a list of folds → one score array per fold), ``per_call`` (folds per
        call: 1 for scikit-learn and custom recognizers and under ``protocol=HDE``, else ``model.folds_per_group``, 0 =
        all in one grouped network) and
        ``group_map`` (:class:`icegan.executors.ProcessGroupMap` when ``workers`` > 1 applies, else None).

    Raises:
        SystemExit: ``device`` names a device this machine does not have, or workers > 1 on a GPU
            (:func:`check_device`).
    """
    from icegan.allocator import retain_freed_memory

    retain_freed_memory()       # no page faults from the grouped networks' per-step temporaries
    if cfg.threads > 0:
        from icegan.environment import limit_threads
        limit_threads(cfg.threads)          # torch and NumPy/SciPy's BLAS (scikit-learn's logistic regression)
    try:                        # as check_run does before any run folder, for callers of run() that skip it
        check_device(cfg)
    except ValueError as exc:
        raise SystemExit(f"config {exc}") from None
    x, y = fs.features, fs.labels
    subjects = fs.samples["subject"].tolist()
    syn = load_synthetic_set(cfg.data, fs, progress=progress)
    # HDE: each fold trained alone. Its training datasets are a different two thirds of the table for every fold, so
    # grouped folds would each learn from a masked part of every batch; alone, a fold is trained exactly as
    # `icegan fit` trains the recipe on those datasets (batches of model.batch_size of its own clips)
    one_per_call = cfg.model.name in SKLEARN_MODELS or cfg.model.name == "custom" or cfg.protocol == "HDE"
    per_call = 1 if one_per_call else cfg.model.folds_per_group
    group_map = None
    from icegan.environment import usable_cpus
    workers = cfg.workers or usable_cpus()      # 0: one per CPU this process may run on (its affinity mask)
    if workers > 1 and per_call <= 0:
        print(f"note: workers={cfg.workers} has no effect with model.folds_per_group=0 (all folds in one grouped "
              f"network); set model.folds_per_group to split the folds into groups", file=sys.stderr)
        workers = 1
    if workers > 1:
        from icegan.executors import ProcessGroupMap
        group_map = ProcessGroupMap(workers, threads=cfg.threads)
    au = action_units
    if au is None:
        try:
            au = load_action_units(cfg, fs)
        except (OSError, ValueError) as exc:
            raise SystemExit(str(exc)) from None
    folds_fn = FeatureFolds(cfg, x, y, subjects, progress=progress and group_map is None, extra=syn, au=au)
    return folds_fn, per_call, group_map


def load_action_units(cfg: "LosoConfig", fs):
    """The action-unit targets of ``fs``'s clips for ``model.au_weight`` > 0, else None:
    ``(targets (N, 14), known (N,))`` from the coding sheets in ``data.annotations``
    (:func:`icegan.data.action_units.action_unit_targets`).

    Raises:
        FileNotFoundError: a needed sheet is missing. ValueError: a clip missing from its sheet, an unreadable
            cell, or no clip of the run with coded action units (every message starts with the key).
    """
    if cfg.model.au_weight <= 0:
        return None
    from icegan.data.action_units import action_unit_targets
    key = f"model.au_weight={cfg.model.au_weight}"
    try:
        au = action_unit_targets(fs.samples["dataset"].tolist(), fs.samples["subject"].tolist(),
                                 fs.samples["clip"].tolist(), cfg.data.annotations)
    except (OSError, ValueError) as exc:
        raise type(exc)(f"{key}: {exc}") from None
    if not bool(au[1].any()):
        raise ValueError(f"{key}: no clip of this run has coded action units (only CASME II and SAMM clips do; "
                         f"datasets here: {sorted(set(fs.samples['dataset']))}); set model.au_weight=0")
    return au


def _warn_absent_classes(labels, folds, classes, label_set: str, said: Optional[set] = None) -> None:
    """Warn (logging, on stderr) when a class of the label set has no clip among those the folds test: UF1 and UAR
    then average over the classes present only, so the run's scores are not comparable with runs over every class.

    Args:
        labels: (N,) int class of every clip. folds: the run's folds. classes: the label set's class names, in id
        order. label_set: its name (``data.labels``), for the message. said: the warnings given already (a suite
        checks every member on the same data: each warning once); the new one is added.
    """
    import numpy as np

    from icegan.labels import absent_classes
    from icegan.protocol import _tested_idx
    present = set(np.unique(np.asarray(labels)[_tested_idx(folds)]).tolist())
    absent = absent_classes(classes, present)
    if not absent:
        return
    text = (f"no clip in the LOSO's scope is of class {', '.join(absent)} (data.labels={label_set}): UF1 and UAR "
            f"average over the {len(classes) - len(absent)} classes present "
            f"({', '.join(n for i, n in enumerate(classes) if i in present)}), not all {len(classes)}: the run's "
            "scores do not compare with a run over every class")
    if said is not None:
        if text in said:
            return
        said.add(text)
    import logging
    logging.getLogger("icegan").warning("%s", text)


def check_run(cfg: "LosoConfig", fs, said: Optional[set] = None):
    """Every check of a feature LOSO that needs its clips, made before a run folder exists (by ``icegan loso``, and by
    ``icegan suite`` for every member before the first one trains): the folds can be built (an SDE run's dataset
    is present, at least two subjects; HDE: at least two datasets, no ``dataset``), no map is listed under two held-out
    subjects (:func:`icegan.protocol.check_shared_maps`), the network builds at
    ``model.input_size``, a custom recognizer builds and returns (B, K) logits (K: the classes of ``data.labels``) on
    two of the clips, the coding sheets hold every clip (``model.au_weight``), every fold trains on several
    datasets (``model.domain_adversarial``) and on clips of each dataset it tests (``model.domain_bn``). A class of
    ``data.labels`` with no clip in scope is warned about (UF1 and UAR then average over the classes present). The
    settings HDE refuses whatever the data (:func:`hde_conflicts`) were refused when ``cfg`` was built.

    Args:
        cfg: the run's config. fs: its feature set (:func:`load_feature_set`). said: warnings given already, each
            given once (``icegan suite``'s members; see :func:`_warn_absent_classes`).

    Returns:
        The action-unit targets for :func:`run` (:func:`load_action_units`; None unless ``model.au_weight`` > 0).

    Raises:
        ValueError: a fold, network, sheet or dataset mistake, with the key to change.
        FileNotFoundError: a coding sheet that ``model.au_weight`` needs is missing.
    """
    from icegan.protocol import check_classes, check_shared_maps, make_folds
    from icegan.recognition import check_custom_recognizer, check_network_builds
    folds = make_folds(fs.samples["subject"].tolist(), cfg.protocol, cfg.dataset)   # SDE dataset present, >= 2 units
    from icegan.labels import get_label_set
    labels = get_label_set(cfg.data.labels)
    check_classes(fs.samples["label"].to_numpy(), folds, labels.classes)   # two classes at least in scope
    _warn_absent_classes(fs.samples["label"].to_numpy(), folds, labels.classes, cfg.data.labels, said)
    check_shared_maps(fs.samples, fs.features, cfg.protocol, cfg.dataset)   # no clip under two held-out units
    check_network_builds(cfg.model)                     # model.input_size fits the network's pooling
    check_custom_recognizer(cfg.model, fs.features, labels.n_classes)   # model.module builds, returns (B, K) logits
    au = load_action_units(cfg, fs)                     # model.au_weight: the sheets hold every clip
    check_domain_adversarial(cfg, fs, folds)            # model.domain_adversarial: several datasets
    check_domain_bn(cfg, fs, folds)                     # model.domain_bn: each fold trains on its test dataset
    check_device(cfg)                                   # a device this machine has; workers > 1 only on the CPU
    return au


def check_device(cfg: "LosoConfig") -> None:
    """The run's ``device`` is one this machine has, and ``workers`` > 1 (fold groups in CPU processes) is not
    asked of a GPU run (``device=auto`` is known only now: on a machine without a GPU it is the CPU, and the
    processes may run): checked by :func:`check_run` before a run folder exists, and by :func:`fold_runner`.

    Raises:
        ValueError: naming ``device`` (and ``workers``) and what to set.
    """
    from flownet.devices import resolve_device
    dev = resolve_device(cfg.device)                    # ValueError: device='cuda' but CUDA is not available ...
    if cfg.workers != 1 and dev.type != "cpu" and cfg.model.name not in SKLEARN_MODELS:
        raise ValueError(_workers_need_cpu(cfg.workers, f"{cfg.device} ({dev})"))


def _fold_datasets(cfg: "LosoConfig", fs, folds=None) -> list[tuple[str, list[str], list[str]]]:
    """``(held-out unit, datasets it tests, datasets it trains on)`` of every fold the run trains (its first
    ``max_folds`` when set), datasets sorted; a clip's dataset is its subject's prefix, as in the recognizer's domains
    (:func:`icegan.data.features.dataset_indices`). For :func:`check_domain_bn` and :func:`check_domain_adversarial`.
    ``folds``: all the run's folds (:func:`icegan.protocol.make_folds` of ``fs``'s subjects, as :func:`check_run`
    built them), cut here to ``max_folds``; None: built here.
    """
    import numpy as np

    from icegan.data.features import subject_dataset
    from icegan.protocol import make_folds
    subjects = fs.samples["subject"].tolist()
    if folds is None:
        folds = make_folds(subjects, cfg.protocol, cfg.dataset)
    if cfg.max_folds > 0:
        folds = folds[:cfg.max_folds]
    ds = np.array([subject_dataset(s) for s in subjects])
    return [(f.subject, sorted(set(ds[f.test_idx].tolist())), sorted(set(ds[f.train_idx].tolist()))) for f in folds]


def check_domain_bn(cfg: "LosoConfig", fs, folds=None) -> None:
    """For ``model.domain_bn``: every fold the run trains has training clips of each dataset it tests. A test clip is
    normalised with its own dataset's batch-norm statistics, gathered from the fold's training clips; a held-out
    subject that is the only subject of its dataset (CDE) would be normalised with statistics never trained and
    scored near chance (a toy fold: UF1 1.0 without domain_bn, 0.17 with it), so the run is refused before its folder
    exists. HDE refuses ``model.domain_bn`` whatever the data (:func:`hde_conflicts`).

    Raises:
        ValueError: starting with the key, listing each such fold: ``mylab/s03 (tests mylab; trains on casme2)``.

    ``folds``: the run's folds when already built (:func:`check_run`), else None (built here).
    """
    if not cfg.model.domain_bn:
        return
    lone = [f"{unit} (tests {', '.join(test)}; trains on {', '.join(train) or 'nothing'})"
            for unit, test, train in _fold_datasets(cfg, fs, folds) if set(test) - set(train)]
    if lone:
        raise ValueError(f"model.domain_bn=true normalises each test clip with its own dataset's batch-norm "
                         f"statistics, gathered from the fold's training clips, and {len(lone)} fold(s) train on no "
                         f"clip of the dataset they test (the only subject of its dataset is held out: its statistics "
                         f"would never be trained, the fold scored near chance): {'; '.join(lone)}; add subjects of "
                         f"that dataset, leave it out of data.datasets, or set model.domain_bn=false")


def check_domain_adversarial(cfg: "LosoConfig", fs, folds=None) -> None:
    """For ``model.domain_adversarial`` > 0: every fold of the run trains on clips of at least two datasets, else there
    is no dataset to be invariant to: a CDE run over at least two datasets, each fold included (a held-out subject
    that is the only one of its dataset leaves its fold the other datasets only), or an HDE run over at least three
    (each fold trains on all datasets but the one it holds out).

    Raises:
        ValueError: an SDE run, a CDE run over fewer than two datasets or with a fold training on one (each such fold
            listed: ``mylab/s03 trains on casme2 only (mylab has no other subject)``), or an HDE run over fewer than
            three datasets of ``fs``'s clips (the message starts with the key).

    ``folds``: the run's folds when already built (:func:`check_run`), else None (built here).
    """
    if cfg.model.domain_adversarial <= 0:
        return
    key = f"model.domain_adversarial={cfg.model.domain_adversarial}"
    datasets = sorted(set(fs.samples["dataset"]))
    if cfg.protocol == "HDE":
        if len(datasets) < 3:
            raise ValueError(f"{key} learns features that carry less of the dataset: under protocol=HDE every fold "
                             f"must train on at least two datasets, so the data needs at least three (here "
                             f"{datasets}: a fold trains on {max(len(datasets) - 1, 0)}); add a dataset to "
                             "data.datasets or set it to 0")
        return
    if cfg.protocol != "CDE" or len(datasets) < 2:
        raise ValueError(f"{key} learns features that carry less of the dataset: it needs a CDE run over at least "
                         f"two datasets, or an HDE run over at least three (here protocol={cfg.protocol}, datasets "
                         f"{datasets}); set it to 0")
    one = [f"{unit} trains on {', '.join(train) or 'nothing'} only ({', '.join(test)} has no other subject)"
           for unit, test, train in _fold_datasets(cfg, fs, folds) if len(train) < 2]
    if one:
        raise ValueError(f"{key} learns features that carry less of the dataset, so every fold must train on at least "
                         f"two datasets; {len(one)} fold(s) train on one: {'; '.join(one)}; add subjects of those "
                         f"datasets, leave them out of data.datasets, or set it to 0")


class FeatureFolds:
    """The picklable fold-group function of a feature LOSO: ``FeatureFolds(...)(folds)`` → one score array
    per fold (:func:`icegan.recognition.fit_predict_folds`); it carries the features, so a worker process
    (``workers`` > 1) receives them once. A worker's folds have no TensorBoard writer: the group's noise-filter
    shares go back with its results (:meth:`task_report`) and are logged in the parent (:meth:`merge_report`)."""

    def __init__(self, cfg: "LosoConfig", x, y, subjects: list[str], progress: bool = True, extra=None, au=None):
        self.cfg, self.progress = cfg, progress
        self.n_real = len(subjects)
        self.extra_subjects = [] if extra is None else extra.samples["subject"].tolist()
        if extra is not None:       # training-only rows after the real ones (icegan.data.synthetic_features)
            import torch
            x, y = torch.cat([x, extra.features]), torch.cat([y, extra.labels])
            subjects = list(subjects) + self.extra_subjects
            if au is not None:      # synthetic clips have no coded action units
                n = len(self.extra_subjects)
                au = (torch.cat([au[0], au[0].new_zeros(n, au[0].shape[1])]),
                      torch.cat([au[1], au[1].new_zeros(n)]))
        self.x, self.y, self.subjects, self.au = x, y, subjects, au
        self.noise_shares: dict = {}        # the last call's {fold index: noise-filter dropped share}

    def task_report(self, folds) -> dict:
        """Extras of the group just trained, sent back from a worker process: ``{fold index: dropped share}`` of the
        noise filter (empty without ``model.noise_filter``)."""
        return dict(self.noise_shares)

    def merge_report(self, folds, extra: dict) -> None:
        """Parent side of :meth:`task_report`: log each share as ``noise_filter/dropped_share`` at step = the fold's
        index to the folds' TensorBoard writer (as a one-process run does; nothing without a writer)."""
        writer = folds[0].writer
        if writer is not None:
            for index, share in sorted(extra.items()):
                writer.add_scalar("noise_filter/dropped_share", share, index)

    def __call__(self, folds):
        from icegan.recognition import fit_predict_folds
        c = self.cfg
        self.noise_shares = {}
        real = self.subjects[:self.n_real]
        if c.data.train_subject_fraction < 1.0:     # a learning-curve point; before the synthetic rows are added
            from icegan.protocol import subsample_training_subjects
            folds = [subsample_training_subjects(f, real, c.data.train_subject_fraction, c.seed) for f in folds]
        if self.extra_subjects:
            from icegan.data.synthetic_features import add_training_rows
            folds = add_training_rows(folds, real, self.extra_subjects, self.n_real)
        from icegan.labels import get_label_set
        return fit_predict_folds(c.model, self.x, self.y, self.subjects, folds, device=c.device, seed=c.seed,
                                 oracle_epoch=c.oracle_epoch, progress=self.progress, writer=folds[0].writer,
                                 action_units=self.au, n_classes=get_label_set(c.data.labels).n_classes,
                                 n_real=self.n_real, noise_shares=self.noise_shares)


HELP_EPILOG = """\
config overrides (key=value, dotted for sections; values parsed as YAML):
  name=STR                 run title used in metrics.md and plots
  protocol=CDE|SDE|HDE     CDE: LOSO over all subjects of the composite; SDE: within one dataset; HDE: leave one
                           dataset out (one fold per dataset, tested whole, trained on the other datasets; 3 folds
                           on the composite; refuses oracle_epoch, model.domain_bn, data.train_subject_fraction<1)
  dataset=casme2|samm|smic dataset of an SDE run (CDE and HDE: none; HDE over some datasets: data.datasets=[...])
  oracle_epoch=BOOL        published practice: best epoch per test subject (NOT honest; labelled; not with HDE)
  seed=INT  device=STR  threads=INT  max_folds=INT (0 = all folds; a rerun with more folds into the same --out
                           extends the run: for ststnet/offtanet only when it filled whole fold groups)
  workers=INT              >1: train the fold groups (model.folds_per_group folds each; scikit-learn recognizers: one fold) in that
                           many processes (at most one per group left) with `threads` torch threads each (0: CPUs //
                           min(workers, the run's fold groups), also on a resume); 0 = one per usable CPU (this
                           process's affinity mask); same scores as one process with that thread count;
                           per-epoch TensorBoard losses and inner bars are off
  data.source=megc2019_htnet|table|toy  data.root=PATH  data.datasets=[casme2,samm]  data.toy_subjects=INT
                           (data.root: a megc2019_htnet folder, or a clone of the HTNet release as it is)
  data.table=CSV             table source: your own features, one row per clip: dataset, subject, clip,
                           label (0-2 or negative|positive|surprise), path (.npy (3,H,W)/(H,W,3) or RGB image,
                           relative to the CSV)
  data.labels=megc2019|casme2_5|samm_5  the label set: MEGC2019's 3 classes (default), CASME II's 5 (happiness,
                           disgust, repression, surprise, others) or SAMM's 5 (anger, contempt, happiness, surprise,
                           other); labels 0-4 or those names; table source, e.g. the table `icegan features --config
                           configs/casme2_5class.yaml` (or configs/samm_5class.yaml) writes; labelled rows of that
                           set's dataset only (data.datasets=[casme2] or [samm] keeps them from a mixed table)
  data.normalize=none|minmax table source: minmax normalises each channel of each clip to [0, 1] (raw flow);
                           none requires values already in [0, 1]
  data.size=INT              side of the flow maps (28); 0 = any square size shared by all files
  data.permute_labels=INT    >= 0: null run, labels permuted within each dataset (seed); honest LOSO scores chance
  data.train_subject_fraction=FLOAT  < 1: a learning-curve point; each fold trains on that share of its training
                           subjects (per dataset, chosen by seed and fold; whole subjects); every clip is still tested
                           (CDE and SDE)
  data.recenter=none|median  (median: move each clip's u/v median to 0.5, undoing the min-max offset)
  data.roi=none|landmarks    (landmarks: HTNet's four landmark regions of the maps, tiled 2x2)
  data.roi_patch=INT         side of each landmark region in flow-map pixels (7)
  data.annotations=PATH      folder of the official CASME II / SAMM coding sheets (model.au_weight; default
                           <shared data>/annotations)
  data.synthetic_per_clip=INT  >0: that many synthetic AU clips per real clip, from the training subjects' own
                           faces, added to each fold's training set (never scored)
  model.name=ststnet|offtanet|logreg|random_forest|gradient_boosting|custom   model.input_size=INT  model.stem_stride=INT  model.width=INT (STSTNet filters x N)
  model.module=SPEC          custom: 'package.module:factory' or 'path/to/file.py:factory', a callable returning a
                           torch.nn.Module mapping (B, 3, S, S) features to (B, K) logits (S = model.input_size, K:
                           the classes of data.labels); it gets those of num_classes, in_channels, input_size, dropout
                           it accepts; trained one fold and seed at a time with the settings below; its file's SHA-256
                           is kept in run.json
  model.epochs=INT  model.batch_size=INT (0 = full batch)  model.lr=FLOAT  model.weight_decay=FLOAT
  model.lr_schedule=constant|cosine  model.dropout=FLOAT  model.class_weighting=BOOL
  model.hflip=BOOL (mirror + negate u; scikit-learn recognizers: fit on the clips + their mirrors)
  model.shift_px=INT (random shifts)  model.mixup_alpha=FLOAT  model.seeds=INT (ensemble)
  model.label_smoothing=FLOAT (target (1-e) one-hot + e/K)  model.ema_decay=FLOAT (predict with a moving
                           average of the weights, updated every step; 0 = the last weights)
  model.sam_rho=FLOAT (sharpness-aware minimisation: the gradient taken at weights moved by rho along each fold
                           model's own normalised gradient; twice the work per step; 0 = off)
  model.rotate_deg=FLOAT  model.scale_jitter=FLOAT (random rotation in [-a,a] degrees, a <= 15, scale in [1-s,1+s])
  model.cutout_px=INT (cutout: one square of this side per training map, filled with its channel means)
  model.tta_hflip=BOOL  model.tta_shift_px=INT (test-time average over shifts in [-k,k]^2)
  model.inner_val_fraction=FLOAT (early stopping on training subjects)
  model.eval_every=INT  model.folds_per_group=INT (0 = all folds in one grouped network)
  model.average_last=INT (average the predictions of snapshots every eval_every epochs within the last N)
  model.logreg_C=FLOAT  model.logreg_max_iter=INT  model.forest_trees=INT (random forest; random state = seed)
  model.domain_bn=BOOL (STSTNet: batch-norm statistics per dataset, from the training subjects; not with HDE)
  model.subject_weighting=BOOL (every training subject weighs the same in the loss: 1/n_s per clip)
  model.class_balance=pooled|per_dataset (balance the classes over all training clips, or within each dataset:
                           every (dataset, class) cell weighs the same; needs model.class_weighting=true)
  model.noise_filter=none|forest (leave out of each fold's training the clips confident learning flags as
                           mislabelled, on a random forest's out-of-bag probabilities of the real training clips;
                           synthetic clips are all kept; ststnet, offtanet only)
  model.au_weight=FLOAT (STSTNet: + that times the binary cross-entropy of the 14 EMFACS action units of the
                           training clips coded in the CASME II / SAMM sheets, a second head; 0 = off)
  model.domain_adversarial=FLOAT (STSTNet: + that times the cross-entropy of a second head telling the training
                           clip's dataset, its gradient into the network reversed: features that carry less of
                           the dataset; CDE over several datasets, or HDE over three or more; 0 = off)

outputs in --out: config.yaml, run.json, predictions.csv (appended per fold; the run resumes
from it), metrics.json, metrics.md, confusion.png, per_subject.csv and per_subject.png (clips and accuracy
per tested subject), environment.jsonl (per start: versions, CPU kernel level, threads, git commit), tb/ (TensorBoard events).
"""


def _main(args: argparse.Namespace) -> int:
    from icegan.commands import load_command_config     # a suite's or train.py's file: the command it is for
    from icegan.config import ConfigError
    from icegan.commands import refuse_torchrun
    if (refused := refuse_torchrun("icegan loso")) is not None:      # under torchrun every process would run it all
        return refused

    try:
        cfg = load_command_config(LosoConfig, args.config, args.overrides, "icegan loso")
    except (ConfigError, FileNotFoundError) as exc:
        print(f"icegan loso: error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        return print_config(cfg)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    try:                    # bad input (a missing or unreadable map, a bad label...) is a message, not a traceback
        fs = load_feature_set(cfg.data)
        au = check_run(cfg, fs)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"icegan loso: error: {exc}", file=sys.stderr)
        return 2
    from icegan.executors import WorkerDiedError
    from icegan.protocol import LosoStateError
    try:
        metrics = run(cfg, out, progress=not args.no_progress, feature_set=fs, action_units=au)
    except (LosoStateError, FloatingPointError, WorkerDiedError) as exc:
        # --out holds another run, an unreadable predictions.csv, a fold whose training diverged (NaN scores), or a
        # worker process killed (workers=N: out of memory)
        print(f"icegan loso: error: {exc}", file=sys.stderr)
        return 2
    from icegan.csv_names import read_csv_names
    from icegan.protocol import read_partial_tag, summary_text
    from icegan.significance import interval_line, subject_interval
    print(summary_text(metrics, cfg.name, read_partial_tag(out, "max_folds")))
    ci = interval_line(subject_interval(read_csv_names(out / "predictions.csv", ["dataset", "subject", "clip"])))
    if ci:
        print(ci)
    if cfg.data.source == "toy":
        print("note: data.source=toy: made-up flow maps with an easy class signal; this run checks that the protocol "
              f"works, its score is not a micro-expression result ({config_hint('features_ststnet')} runs on the "
              "MEGC2019 composite)")
    print(f"outputs in {out}/ (metrics.md, metrics.json, predictions.csv, per_subject.csv, per_subject.png, "
          f"confusion.png, environment.jsonl, tb/)")
    return 0


def register(subparsers) -> None:
    """Add the ``loso`` subcommand to the ``icegan`` parser."""
    p = subparsers.add_parser(
        "loso", help="leave-one-subject-out (or leave-one-dataset-out) evaluation of a recognizer on precomputed "
                     "flow features",
        description="Leave-one-subject-out (CDE/SDE) or leave-one-dataset-out (HDE) evaluation of a recognizer "
                    "(STSTNet, Off-TANet, "
                    "logistic regression, random forest, gradient-boosted trees, or your own network: "
                    "model.name=custom) on precomputed (u, v, strain) flow features (the MEGC2019 maps, or yours: "
                    "data.source=table). Honest by default: no model selection on the held-out subject (HDE: "
                    "dataset). A rerun with the same --out resumes at the first unfinished fold.",
        epilog=with_config_hints(HELP_EPILOG, runnable=True), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="YAML", default=None,
                   help=f"YAML config file (e.g. {config_hint('features_ststnet')}); defaults when omitted")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="run directory (default runs/<name>); an existing run there is resumed")
    p.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bars")
    add_print_config(p)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. model.epochs=2 max_folds=4 (listed below)")
    p.set_defaults(func=_main)
