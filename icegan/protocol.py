"""Evaluation protocols (leave-one-subject-out and leave-one-dataset-out): folds, resumable runs, pooled metrics and
reports.

Protocols (MEGC2019, MEGC2018; ``../shared/DESIGN.md``):

* ``CDE`` (composite / cross-database evaluation): one fold per dataset-prefixed subject of the
  whole sample table (68 folds on the 442-clip composite); a fold trains on every other subject.
* ``SDE`` (single-database evaluation): LOSO within one dataset; a fold trains on the other
  subjects of that dataset only.
* ``HDE`` (holdout-database evaluation, MEGC2018; here leave-one-dataset-out over the datasets of the
  sample table): one fold per dataset (3 on the composite, in sorted order: casme2, samm, smic); a fold
  tests every clip of its dataset and trains on every clip of the other datasets. The held-out unit of a
  fold is a dataset, not a subject (:attr:`Fold.unit`); its subjects, camera, frame rate and coders are
  all unseen in training. Its numbers are not comparable with the CDE reference rows.

Honesty: the runner never shows the held-out unit's labels to ``fold_fn``'s training; the test
rows are scored once and stored. An ``oracle_epoch`` run (the published practice of picking each
fold's best epoch on its test subject; CDE and SDE) lets ``fold_fn`` return scores for several epochs
and picks, per fold, the epoch with the most correct test predictions; every output of such a run says so.

Run directory (``out_dir``), which is also the run's state:

* ``config.yaml`` – resolved config (``icegan.config.save_config``), ``run.json`` – protocol header;
* ``environment.jsonl`` – one line per start of the run (a resume adds one): library versions, CPU and
  its kernel level, threads, GPU, git commit (:mod:`icegan.environment`), and the processes training folds at
  once on this machine with the threads of each (``workers``, ``threads_per_worker``; absent for a Ray cluster
  elsewhere);
* ``predictions.csv`` – one row per scored clip, appended fold by fold as each finishes (fold, dataset, subject,
  clip, y_true, y_pred, score_negative, score_positive, score_surprise [, oracle_epoch]); once every fold of the run is
  finished, a file whose folds finished out of order (workers, Ray, a resume) is rewritten in fold order, so the same
  command gives the same bytes as a sequential run;
  a rerun skips the folds already there (recognised by their ``subject`` column, or ``dataset`` for
  HDE: :func:`held_out_column`) and continues with the first unfinished one; a ``max_folds`` run is extended by the
  same run with more folds (a larger max_folds, or all), which keeps its finished folds (:func:`_prepare_dir`);
* ``metrics.json``, ``metrics.md``, ``confusion.png``, ``per_subject.csv`` (clips and accuracy per tested
  subject) and ``per_subject.png`` (the same as bars, one panel per dataset), ``tb/`` (TensorBoard events:
  ``loso/fold_accuracy``, ``loso/running_UF1``/``_UAR`` and the main job's ``fold/seconds`` at step = folds finished
  (1-based, also across a resume), ``final/<metric>`` and ``final_<dataset>/<metric>`` at step = folds run; an oracle
  run's tags start ``ORACLE_``, and the final ones also ``NOT_LEAKFREE_`` (``real_motion_seen``) and ``PARTIAL_``
  (a ``max_folds`` run), in that order: ``ORACLE_NOT_LEAKFREE_PARTIAL_final/UF1``).
"""
from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import numpy as np
import pandas as pd
import yaml

try:
    import fcntl
except ImportError:          # Windows: a run folder is not locked (_RunFolderLock)
    fcntl = None

from flownet.io import write_text_whole, write_whole
from icegan.config import ABSENT, config_differences, did_you_mean, dotted_items, without_neutral_keys
from icegan.csv_names import csv_quoting, read_csv_names
from icegan.data.features import subject_dataset, validate_samples
from icegan.labels import label_set_of_columns, score_columns
from icegan.metrics import CLASS_NAMES, METRIC_KEYS, compute_metrics, confusion_matrix
from icegan.paths import run_folder_conflict, run_folder_header

__all__ = ["Fold", "make_folds", "subsample_training_subjects", "run_loso", "summarize_predictions", "summary_text", "per_subject_table", "per_subject_png", "REFERENCES",
           "DATASET_TITLES", "LosoStateError", "LosoScopeError", "PROTOCOLS", "held_out_column", "protocol_title",
           "data_digest", "dataset_order", "gan_reaches_no_score", "recipe_line",
           "refuse_run_folder_conflict"]

#: the evaluation protocols :func:`make_folds` builds (see the module docstring)
PROTOCOLS = ("CDE", "SDE", "HDE")

#: display names of the composite's datasets, in table order
DATASET_TITLES = {"smic": "SMIC", "casme2": "CASME II", "samm": "SAMM"}

#: clips of the MEGC2019 composite (SMIC 164, CASME II 145, SAMM 133)
COMPOSITE_CLIPS = 442

#: Published / measured reference rows for the MEGC2019 composite CDE table (UF1, UAR), each value a string as its
#: source gives it (``"0.760"``: three decimals printed as three, a trailing 0 kept; measured rows four).
#: ``selection`` states how the reported epoch was chosen; ``None`` = not reported.
REFERENCES: list[dict] = [
    {"method": "Logistic regression, icegan's floor (configs/features_logreg.yaml)",
     "selection": "final fit (honest; measured by icegan, deterministic)",
     "full": ("0.6929", "0.6982"), "smic": ("0.6650", "0.6714"),
     "casme2": ("0.7723", "0.7791"), "samm": ("0.5800", "0.5775")},
    {"method": "Logistic regression, the project brief's reference point",
     "selection": "final fit (honest; its settings were not recorded and icegan's variants do not reproduce it)",
     "full": ("0.719", "0.729")},
    {"method": "STSTNet, plain loop (100 epochs, class weights), the project brief's reference point",
     "selection": "final epoch (honest)", "full": ("0.7211", "0.7493")},
    {"method": "STSTNet, authors' Python release", "selection": "final epoch (honest)",
     "full": ("0.7209", "0.725")},
    {"method": "STSTNet + ±1 px shifts, this project's G recipe, mean of 5 seeds",
     "selection": "final epoch (honest; measured by icegan on a 2-core CPU)",
     "full": ("0.7330", "0.7596"), "smic": ("0.6834", "0.6976"),
     "casme2": ("0.8730", "0.8986"), "samm": ("0.6074", "0.6545")},
    {"method": "the same averaged with a random forest (icegan ensemble), mean of 5 seeds",
     "selection": "final epoch / fit (honest; measured by icegan; recipe chosen after a first look)",
     "full": ("0.7400", "0.7581"), "smic": ("0.6875", "0.6958"),
     "casme2": ("0.8721", "0.8861"), "samm": ("0.6283", "0.6724")},
    {"method": "STSTNet (Liong et al. 2019), published", "selection": "as published (selection not stated)",
     "full": ("0.735", "0.760"), "smic": ("0.680", "0.701"), "casme2": ("0.838", "0.868"), "samm": ("0.658", "0.681")},
    {"method": "STSTNet, this project's C recipe, mean of 3 seeds", "selection": "ORACLE: best epoch per test subject "
     "(measured by icegan; the same recipe's final epoch: 0.7197 / 0.7456)",
     "full": ("0.7973", "0.8296"), "smic": ("0.7428", "0.7645"),
     "casme2": ("0.9236", "0.9514"), "samm": ("0.6916", "0.7399")},
    {"method": "HTNet (published)", "selection": "ORACLE: best epoch per test subject",
     "full": ("0.8603", "0.8475")},
    {"method": "ICE-GAN (published, Table I)", "selection": "ORACLE: best epoch per test subject, as this "
     "project's design records it (the paper itself does not state its selection)",
     "full": ("0.874", "0.883"), "smic": ("0.782", "0.801"), "casme2": ("0.895", "0.904"), "samm": ("0.879", "0.883")},
]

#: the score columns of a MEGC2019 (3-class) run; another label set's run has its own (:func:`pred_columns`)
SCORE_COLUMNS = score_columns(CLASS_NAMES)
PRED_COLUMNS = ("fold", "dataset", "subject", "clip", "y_true", "y_pred") + SCORE_COLUMNS


def pred_columns(classes: Sequence[str] = CLASS_NAMES) -> tuple[str, ...]:
    """The columns of a run's predictions.csv for the classes ``classes`` (:mod:`icegan.labels`), before an
    oracle run's ``oracle_epoch``: fold, dataset, subject, clip, y_true, y_pred, ``score_<class>`` per class."""
    return PRED_COLUMNS[:6] + score_columns(classes)


def class_names(pred: pd.DataFrame, n_classes: int) -> tuple[str, ...]:
    """The names of classes ``0..n_classes-1`` of a predictions table, from its score columns
    (:func:`icegan.labels.label_set_of_columns`; MEGC2019's names for a table without any)."""
    names = label_set_of_columns(pred.columns).classes
    return tuple(names[c] if c < len(names) else str(c) for c in range(n_classes))


class LosoStateError(RuntimeError):
    """The run directory holds a run that does not match the one requested (protocol, samples, config)."""


class LosoScopeError(ValueError):
    """The clips in the protocol's scope cannot make folds: an SDE dataset without clips, fewer than two subjects
    (CDE, SDE) or fewer than two datasets (HDE) (usually data that did not load: a wrong root, clips skipped by
    preprocessing, a ``data.datasets`` list of one)."""


@dataclass
class Fold:
    """One fold of an evaluation protocol: one held-out unit (a subject, or for HDE a dataset) and its training rows.

    Attributes:
        index: position of the fold in the run (0-based, the order of :func:`make_folds`).
        subject: the id of the held-out unit, which keys the fold everywhere (the finished folds of a resumed
            run, run.json's ``folds``, progress bars, seeds derived from the fold): the dataset-prefixed subject
            (e.g. ``casme2/sub01``) when ``unit`` is ``"subject"`` (CDE, SDE), the dataset (e.g. ``casme2``) when
            ``unit`` is ``"dataset"`` (HDE).
        train_idx: (n_train,) int row indices of the training samples (other subjects only; HDE: other datasets
            only).
        test_idx: (n_test,) int row indices of the held-out unit's samples.
        writer: TensorBoard ``SummaryWriter`` of the run while :func:`run_loso` runs (else None);
            ``fold_fn`` may log under ``f"fold/{fold.subject}/..."``.
        unit: what ``subject`` names, ``"subject"`` or ``"dataset"``; also the predictions.csv column that holds
            ``subject`` on every test row of the fold (:func:`held_out_column`).
    """
    index: int
    subject: str
    train_idx: np.ndarray
    test_idx: np.ndarray
    writer: Any = field(default=None, repr=False, compare=False)
    unit: Literal["subject", "dataset"] = "subject"


def held_out_column(protocol: str) -> str:
    """The column of a run's predictions (and sample table) whose value names the fold a clip was tested in:
    ``"dataset"`` for HDE (a fold holds out a dataset), ``"subject"`` for CDE and SDE (and any other value)."""
    return "dataset" if protocol == "HDE" else "subject"


def protocol_title(protocol: str) -> str:
    """``protocol`` with what it holds out, for titles and progress bars: ``"HDE leave-one-dataset-out"``,
    ``"CDE LOSO"``, ``"SDE LOSO"``."""
    return f"{protocol} leave-one-dataset-out" if protocol == "HDE" else f"{protocol} LOSO"


def _tested_idx(folds: Sequence[Fold]) -> np.ndarray:
    """The sample indices the folds test, in fold order (empty int64 for no folds)."""
    return np.concatenate([f.test_idx for f in folds]) if folds else np.zeros(0, dtype=np.int64)


def check_classes(labels: Sequence[int], folds: Sequence[Fold], classes: Sequence[str] = CLASS_NAMES) -> None:
    """Refuse a LOSO whose clips in scope (those the folds test) all carry one class: UF1 and UAR average over the
    classes present in the ground truth, so such a run scores 1.0 for a model that predicts that class everywhere
    (usually a label column read wrongly, or a filter that kept one class).

    Args:
        labels: (N,) int class of every sample. folds: the run's folds (:func:`make_folds`).
        classes: the class names, in id order (:mod:`icegan.labels`), for the message.

    Raises:
        LosoScopeError: fewer than two classes among the tested clips (the message gives the class and count).
    """
    tested = _tested_idx(folds)
    present = np.unique(np.asarray(labels)[tested])
    if len(present) < 2:
        what = (f"all have label {int(present[0])} ({classes[int(present[0])]})"
                if len(present) == 1 and 0 <= int(present[0]) < len(classes) else f"have labels {present.tolist()}")
        raise LosoScopeError(f"the {len(tested)} clip(s) in the LOSO's scope {what}: UF1 and UAR need clips of at "
                             "least two classes; check the label column of the data (or the protocol's dataset)")


def folds_missing_a_class(labels: Sequence[int], folds: Sequence[Fold],
                          classes: Sequence[str] = CLASS_NAMES) -> list[str]:
    """The folds whose training clips lack a class that the run's tested clips have, one line each: ``"casme2/sub05
    trains without surprise"``. Such a fold's model never predicts that class (a class whose clips all come from the
    held-out subject), which the pooled UF1/UAR then count as that subject's errors.

    Args:
        labels: (N,) int class of every sample. folds: the run's folds (:func:`make_folds`).
        classes: the class names, in id order (:mod:`icegan.labels`).
    """
    y = np.asarray(labels)
    in_scope = set(np.unique(y[_tested_idx(folds)]).tolist())
    out = []
    for f in folds:
        gone = sorted(in_scope - set(np.unique(y[f.train_idx]).tolist()))
        if gone:
            names = ", ".join(classes[c] if 0 <= c < len(classes) else str(c) for c in gone)
            out.append(f"{f.subject} trains without {names}")
    return out


def make_folds(subjects: Sequence[str], protocol: Literal["CDE", "SDE", "HDE"] = "CDE",
               dataset: Optional[str] = None) -> list[Fold]:
    """Leave-one-subject-out (CDE, SDE) or leave-one-dataset-out (HDE) folds over per-sample subject ids.

    Args:
        subjects: (N,) dataset-prefixed subject id of every sample (``casme2/sub01``).
        protocol: ``"CDE"`` – one fold per subject over all samples; ``"SDE"`` – one fold per
            subject of ``dataset``, training only on that dataset's other subjects; ``"HDE"`` – one fold
            per dataset prefix present (``casme2``, ``samm``, ``smic``, ...), testing every sample of that
            dataset and training on every sample of the other datasets.
        dataset: the dataset of an SDE run (``casme2``, ``samm``, ``smic``); must be None for CDE and HDE.

    Returns:
        Folds sorted by their held-out unit (``Fold.subject``): subject ids (CDE, SDE; ``unit == "subject"``,
        S folds for S subjects in scope) or dataset names (HDE; ``unit == "dataset"``, D folds for D datasets,
        3 on the composite: casme2, samm, smic). ``train_idx`` and ``test_idx`` are ascending int64 row indices
        into ``subjects``. No subject (HDE: no dataset) is on both sides of any fold, and every sample of the
        protocol's scope is tested exactly once.

    Raises:
        ValueError: unknown protocol, a subject without a ``<dataset>/`` prefix, SDE without a dataset, a
            dataset given for CDE or HDE, or two spellings of one subject (CDE, SDE) or dataset (HDE)
            (:func:`check_subject_spellings`).
            LosoScopeError (a ValueError): an SDE dataset with no samples, fewer than 2 subjects in scope (CDE, SDE),
            or fewer than 2 datasets (HDE; the message names those present).
    """
    subj = np.asarray([str(s) for s in subjects])
    for i, s in enumerate(subj):
        if "/" not in s or s.startswith("/") or s.endswith("/"):
            raise ValueError(f"sample {i}: subject '{s}' must be prefixed by its dataset, e.g. 'casme2/sub01'")
    prefix = np.asarray([subject_dataset(s) for s in subj])
    if protocol == "HDE":
        if dataset is not None:
            raise ValueError(f"protocol HDE holds out every dataset in turn; dataset={dataset!r} applies to SDE only "
                             "(choose the datasets with data.datasets=[...])")
        present = sorted({str(p) for p in prefix})
        check_subject_spellings(present, "dataset")
        if len(present) < 2:
            raise LosoScopeError(f"HDE (leave one dataset out) needs clips of at least 2 datasets, got {len(present)}: "
                                 f"{present} from {len(subj)} clip(s); list several in data.datasets (or none for "
                                 "all), or use protocol=SDE dataset=NAME for LOSO within one dataset")
        return [Fold(index=k, subject=d, train_idx=np.flatnonzero(prefix != d), test_idx=np.flatnonzero(prefix == d),
                     unit="dataset") for k, d in enumerate(present)]
    if protocol == "CDE":
        if dataset is not None:
            raise ValueError(f"protocol CDE runs over all datasets; dataset={dataset!r} applies to SDE only")
        scope = np.ones(len(subj), dtype=bool)
    elif protocol == "SDE":
        if not dataset:
            present = sorted({str(p) for p in prefix})
            raise ValueError(f"protocol SDE needs a dataset: one of {present}, the datasets of these clips "
                             f"(dataset=NAME in icegan loso, data.dataset=NAME in train.py)")
        scope = prefix == dataset
        if not scope.any():
            present = sorted({str(p) for p in prefix})
            raise LosoScopeError(f"SDE dataset '{dataset}' has no clips; datasets present: {present}"
                                 f"{did_you_mean(str(dataset), present)}; set the run's dataset to one of them "
                                 f"(dataset=NAME in icegan loso, data.dataset=NAME in train.py)")
    else:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    names = sorted({str(s) for s in subj[scope]})
    if len(names) < 2:
        raise LosoScopeError(f"LOSO needs at least 2 subjects in scope ({protocol}{' ' + dataset if dataset else ''}), "
                             f"got {len(names)}: {names} from {int(scope.sum())} clip(s); check that the data loaded "
                             f"(dataset root, clips skipped by preprocessing)")
    check_subject_spellings(names)
    folds = []
    for k, name in enumerate(names):
        test = np.flatnonzero(subj == name)
        train = np.flatnonzero(scope & (subj != name))
        folds.append(Fold(index=k, subject=name, train_idx=train, test_idx=test))
    return folds


def subject_key(subject: str) -> str:
    """The form two spellings of one subject id share: lower case, ``/`` as ``_`` (as in a fold's folder name), and
    numbers of ASCII digits without leading zeros (``SAMM/006`` → ``samm_6``, ``smic/s01`` → ``smic_s1``; ``samm/٠٠٦``
    stays ``samm_٠٠٦``, an id of its own, as the sheets read no other digits)."""
    return re.sub(r"[0-9]+", lambda m: str(int(m.group())), str(subject).lower().replace("/", "_"))


def respelt_like(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (columns subject, clip, ...) with each subject, and each clip of a subject, that
    :func:`subject_key` makes equal to one of ``like``'s (the same columns) spelt as in ``like``
    (``smic/s1``, ``s1_ne_01`` → ``smic/s01``, ``s01_ne_01``), where that key is one id's on each side
    (:func:`spellings_like`: ``EP01_1`` and ``EP01_01`` of one subject, or subjects ``sub1`` and ``sub01``, stay as
    they are); other ids, the row order and the dtypes unchanged (a categorical subject or clip column stays
    categorical, its categories those of its values as respelt). The one matching of ``icegan ensemble``'s members
    and ``icegan compare``'s entries (:mod:`icegan.ensemble`, :mod:`icegan.significance`)."""
    def clip_key(pair) -> tuple[str, str]:
        return subject_key(pair[0]), subject_key(pair[1])
    subject_of = spellings_like(frame["subject"], like["subject"], subject_key)
    pairs = list(zip(frame["subject"], frame["clip"]))
    clip_of = spellings_like(pairs, zip(like["subject"], like["clip"]), clip_key)
    # a categorical column gets the categories of its values: its old ones lack the new spellings (cast back to
    # them, a respelt id was NaN)
    dtypes = {c: "category" if isinstance(t, pd.CategoricalDtype) else t for c, t in frame.dtypes.items()}
    return frame.assign(clip=[clip_of.get(p, p)[1] for p in pairs],
                        subject=[subject_of.get(x, x) for x in frame["subject"]]).astype(dtypes)


def spellings_like(ids, like, key) -> dict:
    """{id: its spelling in ``like``} for each of ``ids`` (hashable) not itself in ``like`` whose ``key(id)`` is the
    key of exactly one distinct id of ``ids`` and of exactly one of ``like``: ids that a key makes equal within one
    side (``EP01_1`` and ``EP01_01``: two clips) are never respelt as one."""
    from collections import Counter
    ids, like = set(ids), set(like)
    ours = Counter(key(x) for x in ids)
    theirs = Counter(key(x) for x in like)
    spelling = {key(x): x for x in like}
    return {x: spelling[key(x)] for x in ids
            if x not in like and ours[key(x)] == 1 and theirs[key(x)] == 1}


def check_subject_spellings(subjects: Sequence[str], unit: str = "subject") -> None:
    """Refuse distinct ids that :func:`subject_key` makes equal (``samm/6`` and ``samm/006``, ``Sub01`` and ``sub01``,
    ``lab_a/x`` and ``lab/a_x``; with ``unit="dataset"``, ``CASME2`` and ``casme2``): leave-one-out would hold them out
    in two folds, each trained on the other's clips. Ids that differ in ``/`` against ``_``, or only in case on a disk
    that ignores case, would also share one fold folder (``folds/<id with / as _>``) in the main job.

    Raises:
        ValueError: naming the two ids and what to do.
    """
    seen: dict[str, str] = {}
    for s in sorted({str(s) for s in subjects}):
        other = seen.setdefault(subject_key(s), s)
        if other != s:
            one = "person" if unit == "subject" else "dataset"
            folder = other.replace("/", "_")
            shared = (f"; the main job would also write both folds into one folder, folds/{folder}"
                      if folder == s.replace("/", "_") else "")
            raise ValueError(f"{unit}s '{other}' and '{s}' differ only in case, leading zeros or '/' against '_': "
                             f"leaving one {unit} out would hold them out in two folds, each trained on the other's "
                             f"clips (a leak if they are one {one}){shared}; give each one spelling in the data "
                             f"(clip list, feature table or coding sheet) if they are one {one}, or rename one of "
                             f"them if they are two")


#: Pearson correlation of two clips' flattened u, v maps from which :func:`check_shared_maps` takes them for copies of
#: one clip (the highest between two subjects of the MEGC2019 composite is 0.939; between two copies of one map, 1)
NEAR_COPY_CORRELATION = 0.999


def _unit_rows(maps: np.ndarray, rows: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(n, D) float32: the maps ``maps[rows]`` ((N, ...) maps, n row indices) flattened, each centred and scaled to
    norm 1 (in float64, ``chunk`` rows at a time), so that the dot product of two is their Pearson correlation; a
    constant map stays 0."""
    out = np.zeros((len(rows), int(np.prod(maps.shape[1:]))), np.float32)
    for a in range(0, len(rows), chunk):
        z = maps[rows[a:a + chunk]].reshape(len(rows[a:a + chunk]), -1).astype(np.float64)
        z -= z.mean(1, keepdims=True)
        norm = np.linalg.norm(z, axis=1, keepdims=True)
        out[a:a + chunk] = np.divide(z, norm, out=np.zeros_like(z), where=norm > 0)
    return out


def check_shared_maps(samples: pd.DataFrame, features: Any, protocol: str = "CDE",
                      dataset: Optional[str] = None) -> None:
    """Refuse one clip listed under two held-out units of the protocol (subjects; HDE: datasets), both in its scope: a
    merged table or one person spelled two ways (``casme2/sub01`` and ``casme2_raw/sub01``) would train the fold of
    each on the other's copy of the clip.

    Compared: the u and v channels (the first two; strain follows from them) of every two maps in scope under
    different units, flattened into one vector each; a Pearson correlation of :data:`NEAR_COPY_CORRELATION` (0.999) or
    more is refused. So a bit-identical copy (correlation 1) is refused, and so is a copy exported again with small
    differences (other threads or precision, rounding, a little noise, one gain and offset for all of u and v). A map
    whose u and v channels are constant (no motion) carries nothing to leak and is not compared; copies within one unit
    stay in one fold and are allowed. Not caught: two different crops, alignments or flow computations of one recording
    (their maps differ by more than a re-export does, as much as two clips of one person can), nor the same person's
    other clips under a second subject id. Rows are compared as a matrix product of standardised rows, in blocks of
    rows (memory: the standardised (N, 2·S·S) float32 maps and about 40 MiB; 5000 maps of 28 x 28 take about a
    second on one CPU thread).

    Args:
        samples: table with columns dataset, subject, clip. features: (N, C, ...) maps of its rows (C >= 1 channels,
            u and v first; a NumPy array or torch tensor).
        protocol, dataset: as :func:`make_folds` (SDE compares the clips of ``dataset`` only).

    Raises:
        ValueError: naming both clips, their subjects and the correlation of their maps.
    """
    key = held_out_column(protocol)
    units = samples[key].astype(str).to_numpy()
    x = np.asarray(features.detach().cpu().numpy() if hasattr(features, "detach") else features)
    flat = x.reshape(len(x), x.shape[1] if x.ndim > 2 else 1, -1)
    uv = flat[:, :2]                                                  # u and v (strain follows from them)
    moving = (uv.max(-1) > uv.min(-1)).any(-1)
    scope = moving if protocol != "SDE" else moving & (samples["dataset"].astype(str).to_numpy() == dataset)
    idx = np.flatnonzero(scope)
    code = np.unique(units[idx], return_inverse=True)[1].reshape(-1)
    if len(np.unique(code)) < 2:
        return
    z = _unit_rows(uv, idx)
    step = max(1, (1 << 22) // len(idx))                              # a block of at most 4M correlations
    for a in range(0, len(idx), step):
        b = min(a + step, len(idx))
        r = z[a:b] @ z[:b].T                                          # row i of the block against rows 0 .. b-1
        before = np.arange(a, b)[:, None] > np.arange(b)[None, :]
        hit = np.argwhere(before & (code[a:b, None] != code[None, :b]) & (r >= NEAR_COPY_CORRELATION))
        if len(hit):                                                  # the first row with a copy, its first copy
            i, j = idx[a + hit[0, 0]], idx[hit[0, 1]]
            corr = min(float(r[hit[0, 0], hit[0, 1]]), 1.0)
            what = "the same map" if np.array_equal(flat[i], flat[j]) else "near-copies of one map"
            sub, clip = samples["subject"].astype(str).to_numpy(), samples["clip"].astype(str).to_numpy()
            unit = "dataset" if key == "dataset" else "subject"
            raise ValueError(f"clip '{clip[j]}' of {sub[j]} and clip '{clip[i]}' of {sub[i]} have {what} (Pearson "
                             f"correlation {corr:.6f} of their u, v maps; {NEAR_COPY_CORRELATION} or more is taken "
                             f"for one clip): leaving one {unit} out would train on the other's copy of that clip "
                             f"(the same clip listed twice, or one person under two subject ids); list it once, "
                             f"under one subject")


def subsample_training_subjects(fold: Fold, subjects: Sequence[str], fraction: float, seed: int) -> Fold:
    """The fold with only a random share of its training subjects kept: one point of a learning curve.

    Each dataset among the fold's training subjects keeps ``max(1, floor(fraction · n + 0.5))`` of its ``n``
    training subjects (so the composite keeps all three datasets, in about their proportions), chosen by a
    permutation seeded by ``seed`` and the fold's held-out unit (``fold.subject``): the same fold gets the same
    subjects in any fold order, group or worker process, and for one ``seed`` the subjects kept at a smaller fraction
    are a subset of those kept at a larger one (nested learning-curve points). Whole subjects are kept or dropped,
    never single clips, and the test rows are untouched.

    Args:
        fold: a :class:`Fold` (its ``train_idx`` index ``subjects``).
        subjects: (N,) dataset-prefixed subject of every row.
        fraction: share of training subjects to keep, in (0, 1]; 1 returns ``fold`` unchanged.
        seed: the run's seed.

    Returns:
        A new :class:`Fold` (same index, subject, test rows and writer) whose ``train_idx`` holds the rows of the
        kept subjects, in their original order.

    Raises:
        ValueError: ``fraction`` outside (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the share of training subjects to keep must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return fold
    import zlib
    subj = np.asarray([str(s) for s in subjects])
    train = np.asarray(fold.train_idx)
    names = np.unique(subj[train])
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(str(fold.subject).encode())]))
    kept = []
    for ds in sorted({subject_dataset(n) for n in names}):
        pool = np.asarray(sorted(n for n in names if subject_dataset(n) == ds))
        k = max(1, int(np.floor(fraction * len(pool) + 0.5)))
        kept.extend(pool[rng.permutation(len(pool))[:k]])
    return dataclasses.replace(fold, train_idx=train[np.isin(subj[train], kept)])


# ----------------------------------------------------------------------------------------------
# run state
# ----------------------------------------------------------------------------------------------

def _config_dict(config: Any) -> Any:
    if config is None:
        return None
    if dataclasses.is_dataclass(config):
        from icegan.config import to_dict
        return to_dict(config)
    return config


def data_digest(samples: pd.DataFrame, *arrays: Any) -> str:
    """16 hex digits naming the data a run is scored on: every row's dataset, subject, clip and label, in order, and
    the bytes of ``arrays`` (e.g. the (N, 3, S, S) feature maps, or a main job's onset and apex frames).

    Kept in ``run.json`` (``provenance.data``), so that a run resumed on a changed annotation sheet, a regenerated
    feature table or another ``data.root`` with the same clip names is refused instead of mixing old folds with new
    ones. Deterministic across machines and processes (SHA-256 of the values, not of Python objects).

    Args:
        samples: the sample table (columns dataset, subject, clip, label).
        *arrays: NumPy arrays or torch tensors; hashed as contiguous C-order bytes with their dtype and shape.
    """
    import hashlib

    h = hashlib.sha256()
    for col in ("dataset", "subject", "clip", "label"):
        h.update("\x1f".join(samples[col].astype(str).tolist()).encode())
        h.update(b"\x1e")
    for a in arrays:
        arr = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()[:16]


def _header(samples: pd.DataFrame, protocol: str, dataset: Optional[str], oracle_epoch: bool,
            folds: list[Fold], folds_total: int, classes: Sequence[str] = CLASS_NAMES,
            provenance: Optional[dict] = None) -> dict:
    """A run's ``run.json``: its protocol, the folds it runs and, for a ``max_folds`` run that runs fewer folds than
    the protocol has, ``folds_total`` (the protocol's count; absent for a whole run); ``classes`` when they are not
    :data:`CLASS_NAMES`, and ``provenance`` when given (not empty)."""
    header = {"protocol": protocol, "dataset": dataset, "oracle_epoch": bool(oracle_epoch),
              "n_samples_in_table": int(len(samples)), "folds": [f.subject for f in folds]}
    if len(folds) < folds_total:
        header["folds_total"] = int(folds_total)
    if tuple(classes) != CLASS_NAMES:
        header["classes"] = list(classes)
    if provenance:
        header["provenance"] = dict(provenance)
    return header


def check_run_folder(out: str | Path, samples: pd.DataFrame, protocol: str, dataset: Optional[str],
                     oracle_epoch: bool, max_folds: int, config: Any, provenance: Optional[dict],
                     classes: Sequence[str] = CLASS_NAMES) -> None:
    """Refuse, before any work, the run folder ``out`` that :func:`run_loso` (one fold per call, the same arguments)
    would refuse in :func:`_prepare_dir`: a folder of another run, another config or a smaller max_folds. Reads
    only; writes and prints nothing (a folder without ``run.json`` passes: :func:`run_loso` makes it). For a caller
    that writes into ``out`` before :func:`run_loso` (the main job's ``features_real.pt`` and ``skipped.csv``), so that
    a refused folder keeps the files of its own run.

    Args:
        samples: the run's clips (:func:`run_loso`'s ``samples``: subject and label columns, one row per clip).
        max_folds: 0 = all folds. config, provenance, classes: as given to :func:`run_loso`.

    Raises:
        LosoStateError: as :func:`_prepare_dir` (the message names the folder, what differs and what to do).
        ValueError: ``samples`` that :func:`run_loso` refuses too (:func:`validate_samples`, :func:`make_folds`).
    """
    out = Path(out)
    if not (out / "run.json").is_file():
        return
    samples = validate_samples(samples, len(classes))
    folds = make_folds(samples["subject"].tolist(), protocol, dataset)
    header = _header(samples, protocol, dataset, oracle_epoch, folds[:max_folds] if max_folds > 0 else folds,
                     len(folds), classes, provenance)
    _prepare_dir(out, header, config, write=False)


def partial_tag(header: Optional[dict], setting: str = "") -> str:
    """``" [PARTIAL: k of n folds]"`` for the ``run.json`` header of a run cut to its first k folds by ``max_folds``
    (a smoke run: its metrics pool those folds' clips only and are not a LOSO result); "" for a whole run or None.
    ``setting``: the key that cut it, for a console line: ``" [PARTIAL: k of n folds, max_folds: not a LOSO
    result]"``."""
    total = (header or {}).get("folds_total")
    if not total:
        return ""
    why = f", {setting}: not a LOSO result" if setting else ""
    return f" [PARTIAL: {len(header.get('folds') or [])} of {total} folds{why}]"


def read_partial_tag(run: str | Path, setting: str = "", read: Optional[Callable[[Path], Any]] = None) -> str:
    """:func:`partial_tag` of the run folder ``run``, read from its header (``run.json``, or an ensemble's
    ``ensemble.json``); "" when it has no readable header. ``read``: how the header file is parsed (path → its JSON,
    raising OSError or ValueError where it cannot be; default: read and parsed anew; ``icegan table`` passes its cache
    of the headers it has read, :func:`icegan.report.reading_configs`)."""
    path = run_folder_header(run)
    try:
        header = (read or _json_file)(path) if path is not None else None
    except (OSError, ValueError):
        return ""
    return partial_tag(header, setting) if isinstance(header, dict) else ""


def _json_file(path: Path) -> Any:
    """The JSON value in the file ``path`` (raises OSError or ValueError where it cannot be read or parsed)."""
    return json.loads(path.read_text(encoding="utf-8"))


def refuse_run_folder_conflict(out: str | Path, own_header: str) -> None:
    """Raise :class:`LosoStateError` with :func:`icegan.paths.run_folder_conflict`'s message when a run whose header is
    ``own_header`` (``run.json``, ``ensemble.json``, ``selection.json``) must not write into ``out``."""
    conflict = run_folder_conflict(out, own_header)
    if conflict:
        raise LosoStateError(conflict)


#: the file in a run folder that the process writing the run holds an exclusive lock on, its pid written in it
#: (:class:`_RunFolderLock`); it stays in the folder (an advisory lock, nothing to clean up after a kill), but for a
#: folder the run made and left holding nothing else
LOCK_FILE = ".lock"

#: the run folders this process holds (:class:`_RunFolderLock`): ``(pid, resolved folder)`` → how many holds are
#: open (the pid: a forked child does not count as holding its parent's folders)
_HELD: dict[tuple[int, str], int] = {}


class _RunFolderLock:
    """A non-blocking exclusive ``fcntl.flock`` on ``out/.lock`` (:data:`LOCK_FILE`), taken by :meth:`hold` and
    released on leaving the ``with`` block (or by the system when the process ends, a kill included), so that two
    processes never write one run folder at once (before, both appended every clip to predictions.csv and exited 0).
    Only the process that writes the folder takes it (rank 0 under torchrun); worker processes (``workers``, Ray) only
    return scores, and inherit no lock (its descriptor is not inheritable and they are spawned). Where there is no
    ``fcntl`` (Windows), or the file system has no locks, nothing is locked.

    Re-entrant within one process: a hold of a folder the process already holds (``run_main`` holds its run folder
    from the start, then :func:`run_loso` holds it again) is a no-op, and its exit releases nothing; the outermost
    hold's exit releases the folder. (A second ``flock`` descriptor in the same process would refuse the process
    itself.)

    A folder that did not exist when the lock was made and holds nothing but :data:`LOCK_FILE` at the exit (a run
    that failed before writing anything: a missing data root, too few subjects) is removed there, so that no empty
    run folder is left behind (``icegan table "runs/*"`` refused it: no metrics.json), and so are the parents
    :meth:`hold` made for it that hold nothing else then (``--out runs/sweep/a`` left ``runs/sweep``); a folder that
    existed before is never removed (nor one where nothing was locked: no ``fcntl``, or a file system without locks)."""

    def __init__(self, out: Path):
        self.out, self.fd, self.key = Path(out), None, None
        self.made = not self.out.exists()        # this start makes the folder: removed at the exit if left unused
        # the highest folder of out's path (out or a parent) that does not exist yet: the exit removes the empty
        # parents up to it too (None where out exists)
        self.top = next((p for p in reversed([self.out, *self.out.parents]) if not p.exists()), None)

    def hold(self) -> None:
        """Make the folder and lock it.

        Raises:
            LosoStateError: another process holds the lock (names the folder and that process's pid).
        """
        if fcntl is None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        key = (os.getpid(), str(self.out.resolve()))
        if key in _HELD:                    # this process holds it already (an outer hold): nothing to take
            _HELD[key] += 1
            self.key = key
            return
        try:
            fd = os.open(self.out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:           # another run that made the folder removed it unused since the mkdir
            self.out.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = os.read(fd, 64).decode("ascii", "replace").strip()
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):   # no locks there (ENOLCK): go on
                return
            who = f"the process with pid {pid}" if pid.isdigit() else "another process"
            raise LosoStateError(f"{self.out} is being written by {who} (it holds {self.out / LOCK_FILE}): two runs "
                                 "into one folder would mix their predictions; wait for that run to end (or stop it) "
                                 "and run the command again, or use another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self.fd, self.key = fd, key
        _HELD[key] = 1

    def __enter__(self) -> "_RunFolderLock":
        return self

    def __exit__(self, *exc) -> None:
        if self.key is not None:
            key, self.key = self.key, None
            if self.fd is None:             # a nested hold: the outermost one releases the folder
                if key in _HELD:
                    _HELD[key] -= 1
                return
            _HELD.pop(key, None)
        if self.fd is not None:
            if self.made:           # only a folder this lock held: never one another process holds meanwhile
                self._remove_if_unused()
            fd, self.fd = self.fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _remove_if_unused(self) -> None:
        """Remove :attr:`out` when it holds nothing but :data:`LOCK_FILE` (or nothing), still locked, so that no other
        process starts writing into it meanwhile, then each parent up to :attr:`top` (the parents :meth:`hold` made)
        while it is empty; a folder that cannot be read or removed (a parent written to meanwhile) is left as it is,
        and so are those above it."""
        try:
            if {p.name for p in self.out.iterdir()} - {LOCK_FILE}:
                return
            (self.out / LOCK_FILE).unlink(missing_ok=True)
            self.out.rmdir()
            if self.top is not None and self.top != self.out:
                for parent in self.out.parents:
                    parent.rmdir()          # OSError where not empty: stop there
                    if parent == self.top:
                        break
        except OSError:
            pass


def _read_state_file(path: Path, parse: Callable[[str], Any], kind: type) -> Any:
    """A run folder's ``run.json`` or ``config.yaml``, parsed, for the checks of a resume.

    Raises:
        LosoStateError: the file cannot be read or parsed, or is not a ``kind`` (cut short by a kill while it was
            written, or edited by hand): the message names it and says how to go on.
    """
    try:
        value = parse(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:      # JSONDecodeError, UnicodeDecodeError: ValueErrors
        value, why = None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    else:
        why = f"not a mapping but {type(value).__name__}"
    if not isinstance(value, kind):
        raise LosoStateError(f"{path}: cannot be read ({why}); it looks damaged (was the run killed while writing "
                             f"it?), so this folder's finished folds cannot be checked against the run asked for: "
                             f"use another --out, or delete that folder")
    return value


def _extends(old: dict, header: dict) -> bool:
    """Whether the run whose ``run.json`` is ``header`` extends a folder's run ``old``: ``old``'s folds are a proper
    prefix of the new run's (a ``max_folds`` run of k folds, extended by a larger max_folds or by the whole run),
    every other key is equal, and ``old``'s ``folds_total`` (when recorded) is the new run's protocol's."""
    was, now = old.get("folds"), header.get("folds")
    if not isinstance(was, list) or not isinstance(now, list) or not 0 < len(was) < len(now) or now[:len(was)] != was:
        return False
    total = header.get("folds_total", len(now))
    rest = [{k: v for k, v in h.items() if k not in ("folds", "folds_total")} for h in (old, header)]
    return rest[0] == rest[1] and old.get("folds_total", total) == total


def _without_key(cfg: dict, key: str) -> dict:
    """A copy of the nested config dict ``cfg`` without the dotted ``key`` (``"data.max_folds"``); the same dict
    content when it has no such key."""
    head, _, rest = key.partition(".")
    if not rest:
        return {k: v for k, v in cfg.items() if k != head}
    return {k: _without_key(v, rest) if k == head and isinstance(v, dict) else v for k, v in cfg.items()}


def _fills_groups(k: int, group_size: int) -> bool:
    """Whether the first ``k`` folds are whole training groups of a run that trains ``group_size`` folds per call (1:
    one fold at a time; 0: all folds in one call), so that a run with more folds computes them alike."""
    return group_size == 1 or (group_size > 0 and k % group_size == 0)


def _extension_rule(group_size: int) -> str:
    """When a max_folds run of a grouped network is extended, for the messages of :func:`_prepare_dir`."""
    if group_size <= 0:
        return "a run of all folds in one network (model.folds_per_group=0, the default) extends no max_folds run"
    return "a max_folds run is extended by a larger one when its folds fill whole groups: max_folds a multiple of " \
           "model.folds_per_group"


#: config keys that say how fast, where or how visibly a run is made, never what it computes, left out when a
#: folder's config.yaml is compared for a resume (:func:`_config_conflict`): ``icegan loso``'s ``workers`` (fold groups
#: in that many processes: the same scores as one process of the same ``threads``, README "Faster") and the main job's
#: ``data.prepare`` ``workers`` (clips prepared in parallel), ``progress`` (its bar) and ``cache_root`` (where the
#: prepared cache lies: its content is run.json's data provenance), and ``out_dir`` (``--out`` names the folder).
#: ``data.prepare.landmarks`` too (``landmarks.npy``, read by no command; its default turned false on 2026-12-06, so
#: a run begun before resumes). ``threads``, ``device`` and ``seed`` are compared: they can change the scores.
_RESUME_FREE_KEYS = ("workers", "out_dir", "data.prepare.workers", "data.prepare.progress", "data.prepare.cache_root",
                     "data.prepare.landmarks")


def _iters_as_read(cfg: dict) -> dict:
    """``cfg`` with ``flow.iters`` null when its ``flow.method`` reads none (:func:`icegan.pipeline.flow_reads_iters`):
    a TV-L1 run made when configs/casme2.yaml set ``iters: 4`` is the run made today without it."""
    flow = cfg.get("flow")
    if not isinstance(flow, dict) or flow.get("iters") is None or "method" not in flow:
        return cfg
    from icegan.pipeline import flow_reads_iters
    return cfg if flow_reads_iters(flow["method"]) else {**cfg, "flow": {**flow, "iters": None}}


def _gan_as_read(cfg: dict) -> dict:
    """``cfg`` without the ``gan`` keys its main job never read: all but ``enabled`` with ``gan.enabled=false`` (no
    GAN is trained), ``joint_weight`` with ``gan.joint=false`` (no joint loss); a run resumed with another value of
    one is the same experiment. ``cfg`` itself otherwise (or without a ``gan`` mapping: another command's config)."""
    gan = cfg.get("gan")
    if not isinstance(gan, dict):
        return cfg
    if gan.get("enabled") is False:
        return {**cfg, "gan": {"enabled": False}}
    if gan.get("joint") is False:
        return {**cfg, "gan": {k: v for k, v in gan.items() if k != "joint_weight"}}
    return cfg


#: the path keys of a dataset entry (``data.prepare.datasets[i]``, :class:`icegan.data.prepare.DatasetSpec`) that a
#: resume compares as the folders they name (:func:`_data_paths_as_read`)
_DATASET_PATH_KEYS = ("root", "annotations")


def _data_paths_as_read(old: dict, new: dict) -> dict:
    """``new`` with each ``data.prepare.datasets[i]`` root or sheet path (:data:`_DATASET_PATH_KEYS`) spelled as in
    ``old`` where both name the same file or folder once their placeholders are replaced (as the clips were read:
    ``icegan.data.prepare._expand``) and they are resolved (:meth:`pathlib.Path.resolve`): ``'{shared_data}/casme2'``
    in a run's config.yaml and ``data.prepare.datasets.0.root=/work/shared/data/casme2`` now are the same data
    (run.json's data digest guards what the folder holds). A path that cannot be resolved (no shared data root) stays
    as written. ``new`` itself where there is no such list in both."""
    def datasets(c: dict) -> Any:
        data = c.get("data")
        prepare = data.get("prepare") if isinstance(data, dict) else None
        return prepare.get("datasets") if isinstance(prepare, dict) else None
    was, now = datasets(old), datasets(new)
    if not isinstance(was, list) or not isinstance(now, list):
        return new
    from icegan.data.prepare import _expand

    def resolved(path: Any) -> Optional[Path]:
        try:
            return Path(_expand(path)).resolve() if isinstance(path, str) else None
        except (OSError, ValueError, RuntimeError):         # FileNotFoundError: no shared data root to expand
            return None
    entries = []
    for i, entry in enumerate(now):
        old_entry = was[i] if i < len(was) else None
        if isinstance(entry, dict) and isinstance(old_entry, dict):
            entry = {**entry, **{k: old_entry[k] for k in _DATASET_PATH_KEYS if k in entry and k in old_entry
                                 and entry[k] != old_entry[k] and resolved(entry[k]) is not None
                                 and resolved(entry[k]) == resolved(old_entry[k])}}
        entries.append(entry)
    return {**new, "data": {**new["data"], "prepare": {**new["data"]["prepare"], "datasets": entries}}}


def _resolved_device(cfg: Optional[dict]) -> Optional[str]:
    """The device the top-level ``device`` of the config dict ``cfg`` resolves to on this machine
    (:func:`flownet.devices.resolve_device`: ``auto`` → ``cuda`` or ``cpu``), as text with a GPU's index
    (:func:`_indexed_device`: ``cuda`` and ``cuda:0`` are one device); None where ``cfg`` has no such key (another
    command's config) or this machine cannot resolve it (the run's own check says why)."""
    device = cfg.get("device") if isinstance(cfg, dict) else None
    if not isinstance(device, str):
        return None
    from flownet.devices import resolve_device
    try:
        return _indexed_device(str(resolve_device(device)))
    except ValueError:
        return None


def _indexed_device(device: str) -> str:
    """A resolved device as text, a bare ``cuda`` (torch's current GPU) named by its index (``cuda:0`` where the
    current GPU is the first) where CUDA is available here; any other text as given."""
    import torch
    if device == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return device


def _recorded_device(out: Path) -> Optional[str]:
    """The resolved device the last start of the run folder ``out`` recorded in its ``environment.jsonl``
    (:func:`run_loso`: ``device``), or None: no such file or record (a folder made before icegan recorded it), or an
    unreadable one."""
    from icegan.environment import ENVIRONMENT_FILE
    try:
        lines = (out / ENVIRONMENT_FILE).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    device = None
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:          # a line cut short by a kill: the others still say
            continue
        if isinstance(record, dict) and isinstance(record.get("device"), str):
            device = record["device"]
    return device


def _devices_as_resolved(out: Path, old: dict, new: dict) -> tuple[dict, dict]:
    """``old`` (the folder's config) and ``new`` (the run's) with their ``device`` replaced by the device each
    resolves to: the one ``out``'s environment.jsonl records (:func:`_recorded_device`) and the one ``new``'s
    resolves to on this machine now (:func:`_resolved_device`), so that ``cpu`` and ``auto`` on a CPU machine are the
    same device and ``auto`` on a CPU machine and then on a GPU machine are not. Both as given where either is
    unknown (a folder made before the record: its device is compared as spelled, as then). A recorded bare ``cuda``
    (a record made before devices were indexed) is read as this machine's current GPU (:func:`_indexed_device`)."""
    was, now = _recorded_device(out), _resolved_device(new)
    if was is None or now is None or "device" not in old:
        return old, new
    return {**old, "device": _indexed_device(was)}, {**new, "device": now}


def _config_conflict(out: Path, cfg_path: Path, cfg: Optional[dict], also: str = "") -> str:
    """The message refusing to resume the run folder ``out`` whose ``config.yaml`` (``cfg_path``) differs from the
    run's config ``cfg`` (up to four differing keys, each with both values; ``also``: what else differs, added to
    the message), or "" when they agree or either is missing. A key icegan added since the run began, at its neutral
    value (:func:`without_neutral_keys`), is the same experiment, as is a ``flow.iters`` its method never read
    (:func:`_iters_as_read`), a ``gan`` key its GAN settings never read (:func:`_gan_as_read`) or a dataset root or
    sheet spelled another way that names the same folder or file (:func:`_data_paths_as_read`), or a ``device``
    spelled another way that resolves to the same device (:func:`_devices_as_resolved`); so is another
    max_folds (:func:`max_folds_key`), as run.json holds the folds run (the same, or extended): one that cut none
    (max_folds=100 of 8 folds) or the larger one of an extension; and so is another value of a key of :data:`_RESUME_FREE_KEYS` (e.g. a run cut short
    with workers=2 is resumed with workers=1). Another ``threads`` alone is refused with its own message: the thread
    count can change the last bits of the scores (``threads=0`` is compared as written: the count it means may
    differ between machines and worker counts, as between two calls). The values shown are those the two configs
    hold, neutral keys included (config.yaml's ``gan.amp: true``, not "(absent)"); a ``device`` as spelled and as it
    resolved (``device: 'auto' there (ran on cpu), 'auto' now (resolves to cuda:0)``); another device alone is
    refused with what to resume with (``device=cpu``). A ``gan`` key that one side never read (``gan.enabled=false``)
    is named only where its value as written changed (``gan.enabled: True there, False now`` alone).

    Raises:
        LosoStateError: ``config.yaml`` cannot be read (:func:`_read_state_file`).
    """
    if cfg is None or not cfg_path.is_file():
        return ""
    key = max_folds_key(cfg)
    old_cfg = _read_state_file(cfg_path, yaml.safe_load, dict)
    new_cfg = yaml.safe_load(yaml.safe_dump(cfg, sort_keys=False))
    old_it, new_it = _iters_as_read(old_cfg), _iters_as_read(new_cfg)
    old_given, new_given = dotted_items(old_it), dotted_items(new_it)
    old_raw, new_raw = _gan_as_read(old_it), _gan_as_read(new_it)
    new_raw = _data_paths_as_read(old_raw, new_raw)
    resolved_old, resolved_new = _devices_as_resolved(out, old_raw, new_raw)
    # a device resolved (cpu / cuda:N): shown beside its spelling ('auto' there (ran on cpu), 'auto' now (...))
    spelled = (old_raw.get("device"), new_raw.get("device")) if resolved_old is not old_raw else None
    old_raw, new_raw = resolved_old, resolved_new
    for free in (key, *_RESUME_FREE_KEYS):
        old_raw, new_raw = _without_key(old_raw, free), _without_key(new_raw, free)
    old_cfg, new_cfg = without_neutral_keys(old_raw), without_neutral_keys(new_raw)
    if old_cfg == new_cfg:
        return ""
    # the keys that differ once neutral keys are dropped, shown with the values the configs hold (a stripped
    # gan.amp: true read "(absent) there" beside a config.yaml that says true)
    old_leaves, new_leaves = dotted_items(old_cfg), dotted_items(new_cfg)
    diff = [(k, a, b) for k, a, b in config_differences(old_raw, new_raw)
            if old_leaves.get(k, ABSENT) != new_leaves.get(k, ABSENT)] or config_differences(old_cfg, new_cfg)
    # a gan key one side's _gan_as_read dropped (gan.enabled=false there or here) is named only where its value as
    # given changed, with both values as given (not "gan.skip: 'grm' there, (absent) now" beside gan.enabled)
    diff = [(k, old_given.get(k, ABSENT), new_given.get(k, ABSENT)) if k.startswith("gan.") else (k, a, b)
            for k, a, b in diff if not k.startswith("gan.") or old_given.get(k, ABSENT) != new_given.get(k, ABSENT)]
    shown = ", ".join(f"{k}: {spelled[0]!r} there (ran on {a}), {spelled[1]!r} now (resolves to {b})"
                      if k == "device" and spelled else f"{k}: {a!r} there, {b!r} now" for k, a, b in diff[:4])
    more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
    if [k for k, _, _ in diff] == ["device"] and spelled and not also:
        return (f"{out} holds a run made on another device ({cfg_path}: {shown}): its finished folds and the folds "
                f"still to run would not be one run's: resume with device={diff[0][1]}, or use another --out or "
                "delete that folder")
    if [k for k, _, _ in diff] == ["threads"] and not also:
        return (f"{out} holds a run made with a different config ({cfg_path}: {shown}): the thread count can change "
                "the last bits of the scores, so its finished folds and the folds still to run would not be one "
                f"run's: resume with threads={diff[0][1]!r}, or use another --out or delete that folder")
    return (f"{out} holds a run made with a different config ({cfg_path}: {shown}{more}){also}; resuming would mix "
            "two experiments: use another --out or delete that folder")


def _finished_folds(out: Path, header: dict) -> list[str]:
    """The folds of the run folder ``out`` (its run.json ``header``) that its ``predictions.csv`` holds, in the
    header's order: the values of the held-out column (:func:`held_out_column` of the header's protocol) that are
    among ``header["folds"]``. Empty when the file is missing or unreadable (no claim is made from it); raises
    nothing."""
    try:
        held = pd.read_csv(out / "predictions.csv", usecols=[held_out_column(header.get("protocol", ""))], dtype=str)
    except (OSError, ValueError):
        return []
    seen = set(held.iloc[:, 0])
    return [f for f in header.get("folds") or [] if f in seen]


# the run.json provenance keys (icegan.recognition.recognizer_provenance, icegan.pipeline.flow_weights_provenance)
# whose change :func:`_provenance_hint` words: the key of the spec beside a source hash, or the weights flag
_SOURCE_KEYS = {"recognizer_source_sha256": "recognizer_module", "flow_module_sha256": "flow_module"}
_WEIGHTS_KEYS = {"flow_weights": "flow.weights", "flow_weights_sha256": "flow.weights",
                 "decompose_weights": "flow.decompose_weights", "decompose_weights_sha256": "flow.decompose_weights"}


def _provenance_hint(was: dict, now: dict, changed: list[str]) -> str:
    """What the change of the provenance keys ``changed`` (between a folder's run.json provenance ``was`` and the
    run's ``now``) means, for the message of :func:`_prepare_dir`: keys the folder did not record: the folder was
    made before icegan recorded them (said once, listing the keys); a weights or source key the folder recorded and
    this run does not: this run records no such key (it loads no such weights file, or no such module); a custom
    module's source hash: that module's source file changed; a weights file or its hash: that weights file changed;
    other keys (or none): the general hint. Raises nothing."""
    general = "e.g. the weights file changed, or the folder was made before icegan recorded it"
    said, unrecorded, dropped = [], [], {}     # dropped: what this run no longer uses -> its keys
    for k in changed:
        if k not in was:
            unrecorded.append(k)
        elif k not in now and k in _WEIGHTS_KEYS:
            dropped.setdefault(f"it loads no {_WEIGHTS_KEYS[k]}", []).append(k)
        elif k not in now and k in _SOURCE_KEYS:
            dropped.setdefault(f"it uses no {_SOURCE_KEYS[k]}", []).append(k)
        elif k in _SOURCE_KEYS:
            spec = now.get(_SOURCE_KEYS[k]) or was.get(_SOURCE_KEYS[k])
            said.append(f"the module's source file changed ({spec})" if spec else "the module's source file changed")
        elif k in _WEIGHTS_KEYS:
            said.append(f"the weights file changed ({_WEIGHTS_KEYS[k]})")
        else:
            return general
    said += [f"this run records no {', '.join(keys)} ({why})" for why, keys in dropped.items()]
    if unrecorded:
        said.insert(0, f"the folder was made before icegan recorded {', '.join(unrecorded)}")
    return "; ".join(dict.fromkeys(said)) or general


def _prepare_dir(out: Path, header: dict, config: Any, group_size: int = 1, write: bool = True) -> None:
    """Make ``out`` the folder of the run whose ``run.json`` is ``header`` and whose config is ``config``, or check
    that the folder holds that run: a new folder gets both files; the same run (run.json and config.yaml equal) is
    resumed (config.yaml is compared without its max_folds key, :func:`_config_conflict`: run.json holds the folds
    run). A ``max_folds`` run of k folds is EXTENDED by the same run with more folds (a larger max_folds, or 0 =
    all) when, and only when, its folds are the first k of the new run's, every other run.json key is equal, its
    config.yaml differs from ``config`` only in the max_folds key and its k folds filled whole training groups of the
    new run (``group_size`` divides k: a grouped network's scores depend on every fold of its group, while a fold
    trained alone is seeded by its index only): its finished folds are then exactly the folds the new run computes
    first, and are kept (a note on stderr says so). run.json (without ``folds_total`` once the run is whole) and
    config.yaml are then written for the new run. A smaller max_folds into the folder of a larger run stays refused
    (its finished folds may include folds that run does not run): the message names the folder's recorded max_folds
    that resumes it and, only where some are, its finished folds that the smaller run does not run.

    Args:
        out: the run folder. header: the run's run.json (:func:`_header`). config: its config (or None: not compared).
        group_size: the folds the new run trains per call: 1 (``fold_fn``, or ``folds_per_call=1``), else
            ``folds_per_call`` (0 = all folds in one call).
        write: False: the checks alone (:func:`check_run_folder`): nothing is made, written or printed.

    Raises:
        LosoStateError: the folder holds another run (another protocol, data, label set, provenance or config, more
            folds than this run, or a max_folds run whose folds did not fill whole groups of this run's), an
            unreadable run.json or config.yaml, or no config.yaml beside finished folds; the message says what differs and what to do (a provenance that
            differs with the config, e.g. another recognizer.module, is said with the config's keys).
    """
    if write:
        out.mkdir(parents=True, exist_ok=True)
    run_json = out / "run.json"
    cfg_path = out / "config.yaml"
    cfg = _config_dict(config)
    if run_json.is_file():
        old = _read_state_file(run_json, json.loads, dict)
        if "folds_total" not in old and old == {k: v for k, v in header.items() if k != "folds_total"}:
            if write:       # a max_folds run begun before icegan recorded it
                write_text_whole(run_json, json.dumps(header, indent=1))
            old = header
        extending = old != header and _extends(old, header)
        if old != header and not extending:
            diff = [k for k in set(header) | set(old) if old.get(k) != header.get(k)]
            why = ""
            old_data = (old.get("provenance") or {}).get("data")
            new_data = (header.get("provenance") or {}).get("data")
            was, now = old.get("folds"), header.get("folds")
            # the same run (or its extension: a max_folds run asked for more folds) but for the provenance
            same_but_provenance = "provenance" in diff and (diff == ["provenance"] or _extends(
                {**old, "provenance": header.get("provenance")}, header))
            if "classes" in diff:             # a run folder of one label set resumed with another
                was, now = (h.get("classes") or list(CLASS_NAMES) for h in (old, header))
                why = (f" (its classes {', '.join(was)} vs now {', '.join(now)}: another label set, data.labels; its "
                       "clips' labels then differ too)")
            elif same_but_provenance and old_data and new_data and old_data != new_data:
                why = (f" (its data {old_data} vs now {new_data}: the clips, their labels or their maps changed, e.g. a "
                       "corrected annotation sheet or a regenerated feature table)")
            if same_but_provenance:
                # the config keys that differ too (e.g. another recognizer.module, or data.img_size beside another
                # data digest) say what changed better than a hash alone; a damaged config.yaml, or configs that
                # agree, leave the provenance (or data) message
                was_p, now_p = (h.get("provenance") or {} for h in (old, header))
                changed = sorted(k for k in set(was_p) | set(now_p) if was_p.get(k) != now_p.get(k))
                try:
                    conflict = _config_conflict(out, cfg_path, cfg, f" and its provenance differs in {changed}")
                except LosoStateError:
                    conflict = ""
                if conflict:
                    raise LosoStateError(conflict)
                diff = ["provenance"]     # its folds alone would be an allowed extension: not the cause
                if not why:
                    why = (f" (its provenance {old.get('provenance')} vs now {header.get('provenance')}: "
                           f"{_provenance_hint(was_p, now_p, changed)})")
            elif not why and set(diff) <= {"folds", "folds_total"} and isinstance(was, list) and isinstance(now, list):
                if len(now) < len(was) and was[:len(now)] == now:
                    key = max_folds_key(cfg)
                    recorded = len(was) if old.get("folds_total") else 0        # 0: the whole run
                    done = _finished_folds(out, old)
                    beyond = [f for f in was[len(now):] if f in done]
                    why = (f" (it records a run of {len(was)} folds ({key}={recorded}{': all' if not recorded else ''})"
                           f", this run the first {len(now)} of them: a smaller {key}"
                           + (f"; its finished folds include {len(beyond)} this run does not run "
                              f"({', '.join(beyond)})" if beyond else "")
                           + f"; resume it with {key}={recorded}"
                           + (f", or extend it with a larger {key}" if recorded else "") + ")")
                else:
                    why = (f" (its held-out subjects are other than now: {len(was)} vs {len(now)}, e.g. another "
                           "max_folds; a folder's finished folds are resumed by the same run, or extended by the same "
                           "run with more folds)")
            raise LosoStateError(f"{out} holds a different LOSO run (differs in {sorted(diff)}){why}; use another "
                                 f"--out or delete that folder")
        done = _finished_folds(out, old) if cfg is not None and not cfg_path.is_file() else []
        if done:              # a lost config.yaml: any config would resume, and config.yaml then claim its folds
            raise LosoStateError(f"{cfg_path}: missing, while {out / 'predictions.csv'} holds {len(done)} finished "
                                 "fold(s), so they cannot be checked against the run asked for: use another --out, "
                                 "or delete that folder (or put back its config.yaml)")
        conflict = _config_conflict(out, cfg_path, cfg)
        if conflict:
            raise LosoStateError(conflict)
        key = max_folds_key(cfg)
        if extending:
            k, n = len(old["folds"]), len(header["folds"])
            if not _fills_groups(k, group_size):
                trained = (f"its {k} folds in one grouped network, where this run trains its {n} in one"
                           if group_size <= 0 else f"its last {k % group_size} fold(s) as a group of their own, where "
                           f"this run trains groups of {group_size} folds")
                raise LosoStateError(f"{out} holds a {key}={k} run that trained {trained} (model.folds_per_group): a "
                                     "grouped network's scores depend on every fold of its group, so its finished "
                                     f"folds are not the ones this run computes; use another --out or delete that "
                                     f"folder ({_extension_rule(group_size)})")
            if not write:
                return
            print(f"note: {out} holds a {key}={k} run, the first {k} of this run's {n} folds: extending it to {n} "
                  "folds (its finished folds are kept)", file=sys.stderr)
            write_text_whole(run_json, json.dumps(header, indent=1))
    elif write:               # whole or not at all: run.json and config.yaml vouch for the run's finished folds
        write_text_whole(run_json, json.dumps(header, indent=1))
        k = len(header.get("folds") or [])
        if header.get("folds_total") and not _fills_groups(k, group_size):     # said before the smoke run trains
            print(f"note: this {max_folds_key(cfg)}={k} run trains its folds in a grouped network "
                  f"(model.folds_per_group): a later run with more folds cannot extend {out}, and needs another --out "
                  f"({_extension_rule(group_size)})", file=sys.stderr)
    if cfg is not None and write:       # written again on every resume: a kill then must not leave it cut short
        write_text_whole(cfg_path, yaml.safe_dump(cfg, sort_keys=False))


def _read_finished(pred_csv: Path, samples: pd.DataFrame, folds: list[Fold], key: str = "subject",
                   columns: Sequence[str] = PRED_COLUMNS) -> pd.DataFrame:
    """Rows of complete folds in predictions.csv (a fold's rows found by their ``key`` column, ``subject`` or for HDE
    ``dataset``); incomplete trailing folds are dropped (rewritten). A run killed while appending can leave the file
    empty or end it in a line cut short (no newline): that line's fold counts as unfinished and is rerun. A fold whose
    rows repeat a clip (two runs appending to one folder) is rerun too, with a warning on stderr naming the file, the
    fold and the repeated ``subject/clip`` keys (:func:`_repeated_clips`), and so is a fold with a damaged row (an
    empty or non-number score, a y_true / y_pred that is not a class id: ``icegan ensemble``'s checks; a
    y_pred that is not the class of its row's highest score: :func:`_checked_rows`), with a warning naming the file,
    line, column and cell.
    ``columns``: the run's columns (:func:`pred_columns` of its classes). The rows kept have integer y_true / y_pred
    and float scores, in file order.

    Raises:
        LosoStateError: the file is not a predictions table (unparsable, columns missing), names a unit that is not
            a fold of this run, or scored a fold on other labels.
    """
    import io
    if not pred_csv.is_file():
        return pd.DataFrame(columns=list(columns))
    with open(pred_csv, encoding="utf-8", errors="replace", newline="") as fh:   # a quoted "\r" in a name stays
        text = fh.read()
    cut = not text.endswith("\n")
    if cut:                      # a line cut off by the kill: never read its (possibly cut) numbers
        text = text[:text.rfind("\n") + 1]
    if not text.strip():
        if cut and pred_csv.stat().st_size:     # a header cut short: start the file again
            pred_csv.write_text("", encoding="utf-8")
        return pd.DataFrame(columns=list(columns))
    try:
        df = read_csv_names(io.StringIO(text), ["dataset", "subject", "clip"])      # a subject "NA" stays "NA"
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise LosoStateError(f"{pred_csv}: not a predictions table ({str(exc).strip()}); delete the file to restart "
                             "the run") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise LosoStateError(f"{pred_csv}: missing column(s) {missing}; delete the file to restart the run")
    lines = [i + 1 for i, line in enumerate(text.split("\n")) if line.strip()][1:]     # each row's line in the file
    if len(lines) == len(df):       # (a quoted line break in a name aside) the index is then ensemble's: line - 2
        df.index = pd.Index(lines) - 2
    # the cells as written (only an empty cell missing), for a warning naming a 'nan' or 'NA' cell as it is written
    written = None
    if df.isna().any(axis=None):
        written = read_csv_names(io.StringIO(text), list(df.columns)).set_axis(df.index)
    by_unit = {f.subject: f for f in folds}
    keep = []
    for unit, rows in df.groupby(key, sort=False):
        fold = by_unit.get(unit)
        if fold is None:
            raise LosoStateError(f"{pred_csv}: {key} '{unit}' is not a fold of this run (was the file edited?); delete "
                                 "the file to restart the run")
        expected = sorted(samples["clip"].iloc[fold.test_idx])
        repeated = _repeated_clips(rows, samples.iloc[fold.test_idx])
        if repeated:                # two runs appending to one --out at once? the fold's rows cannot be trusted
            shown = ", ".join(f"{k} ({n} rows)" for k, n in repeated[:5])
            more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
            print(f"warning: {pred_csv}: the rows of fold '{unit}' repeat {len(repeated)} clip(s): {shown}{more} (was "
                  f"this --out run by two processes at once?); the fold is scored again", file=sys.stderr)
        elif sorted(rows["clip"]) == expected:
            rows = _checked_rows(rows, pred_csv, unit, columns, None if written is None else written.loc[rows.index])
            if rows is None:
                continue
            test = samples.iloc[fold.test_idx]
            label = dict(zip(zip(test["subject"].astype(str), test["clip"].astype(str)), test["label"].astype(int)))
            got = zip(zip(rows["subject"].astype(str), rows["clip"].astype(str)), rows["y_true"])
            wrong = [(k[1], int(t), label.get(k)) for k, t in got if int(t) != label.get(k)]
            if wrong:
                c, was, now = wrong[0]
                raise LosoStateError(f"{pred_csv}: fold '{unit}' was scored on other labels ({len(wrong)} clip(s), "
                                     f"e.g. clip '{c}': y_true {was} there, label {now} now); resuming would mix two "
                                     "annotations: use another --out or delete that folder")
            keep.append(rows)
    done = pd.concat(keep).sort_index() if keep else df.iloc[:0]    # in file order
    if cut or len(done) != len(df):  # a fold was cut off while being written: keep complete folds only
        # as _append writes them (each fold's quoting its own, the same number format), so that the finished file
        # reads as an uninterrupted run's, byte for byte; done is in file order, each fold's rows together
        _write_in_fold_order(pred_csv, done, key)
    return done


def _checked_rows(rows: pd.DataFrame, pred_csv: Path, unit: str, columns: Sequence[str],
                  written: Optional[pd.DataFrame] = None) -> Optional[pd.DataFrame]:
    """A finished fold's rows of predictions.csv (index: each row's line − 2) with y_true / y_pred as integers and
    the scores as floats, after ``icegan ensemble``'s checks of their cells (:func:`icegan.ensemble._check_values`:
    class ids 0..K−1, finite numbers; a missing cell is read as written: ``written``, the same rows read as text
    with only an empty cell missing, so ``'nan'`` or ``'NA'``; ``''`` where empty or without ``written``); None,
    with one warning on stderr naming the file, line, column and cell, when one fails: the fold is then scored
    again. So is a fold with a y_pred that is
    not the class of its row's highest score (run_loso writes ``y_pred = argmax(scores)``); a y_pred tied with the
    row's highest (also by the CSV's rounding, which keeps the order of two scores) is kept: the check of
    :func:`icegan.ensemble.off_top_score`, as ``icegan compare``, ``ensemble`` and ``table`` make it."""
    from icegan.ensemble import EnsembleError, _check_values, check_top_scores
    scores = tuple(c for c in columns if c.startswith("score_"))
    cells = ["y_true", "y_pred", *scores]
    empty = rows[cells].isna()
    rows = rows.copy()
    if empty.any(axis=None):
        rows[cells] = rows[cells].astype(object).mask(empty, "" if written is None else written[cells].fillna(""))
    fix = f"the fold '{unit}' is scored again (was the file edited?)"
    try:
        rows = _check_values(rows, pred_csv, fix, scores)
    except EnsembleError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return None
    try:
        check_top_scores(rows, pred_csv, fix, scores)
    except EnsembleError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return None
    return rows


def _repeated_clips(rows: pd.DataFrame, test: pd.DataFrame) -> list[tuple[str, int]]:
    """The clips that a fold's rows of predictions.csv (``rows``) hold more often than the fold's test clips
    (``test``, rows of the samples table) do, as ``("subject/clip", number of rows)`` in file order; empty when none
    is repeated."""
    from collections import Counter
    def keys(df: pd.DataFrame) -> list[str]:
        return (df["subject"].astype(str) + "/" + df["clip"].astype(str)).tolist()
    have, want = Counter(keys(rows)), Counter(keys(test))
    return [(k, n) for k, n in have.items() if n > max(want[k], 1)]


#: how predictions.csv writes scores (9 significant digits; a rewrite of its finished folds keeps them as they were)
PRED_FLOAT_FORMAT = "%.9g"


def _append(pred_csv: Path, rows: pd.DataFrame) -> None:
    header = not pred_csv.is_file() or pred_csv.stat().st_size == 0
    with open(pred_csv, "a", newline="", encoding="utf-8") as fh:
        rows.to_csv(fh, index=False, header=header, float_format=PRED_FLOAT_FORMAT, quoting=csv_quoting(rows))
        fh.flush()
        os.fsync(fh.fileno())


def _write_in_fold_order(pred_csv: Path, pred: pd.DataFrame, key: str) -> None:
    """Rewrite ``pred_csv`` (atomically: :func:`flownet.io.write_whole`) as the rows ``pred`` (a finished run's
    predictions, already in fold order, each fold's rows in the samples' order, as :func:`_scores_to_rows` gives
    them), fold by fold as :func:`_append` writes them (each fold's quoting its own, the same number format): the
    bytes a sequential run appends, whatever order the folds finished in. ``key``: the column naming each row's fold
    (:func:`held_out_column`). Raises OSError where the file cannot be written."""
    def write(path: Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            for i, (_, rows) in enumerate(pred.groupby(key, sort=False)):
                rows.to_csv(fh, index=False, header=i == 0, float_format=PRED_FLOAT_FORMAT,
                            quoting=csv_quoting(rows))
    write_whole(pred_csv, write)


def _scores_to_rows(fold: Fold, samples: pd.DataFrame, scores: Any, oracle_epoch: bool,
                    classes: Sequence[str]) -> pd.DataFrame:
    n_classes = len(classes)
    s = np.asarray(scores, dtype=np.float64)
    n = len(fold.test_idx)
    y_true = samples["label"].to_numpy()[fold.test_idx]
    chosen = None
    if s.ndim == 3 and oracle_epoch:
        if s.shape[1:] != (n, n_classes):
            raise ValueError(f"fold '{fold.subject}': oracle scores must be (n_epochs, {n}, {n_classes}), got {s.shape}")
        correct = (s.argmax(-1) == y_true[None]).sum(-1)
        chosen = int(np.argmax(correct))  # first epoch with the most correct test predictions
        s = s[chosen]
    if s.shape != (n, n_classes):
        extra = " (several epochs of scores are only accepted in an oracle_epoch run)" if s.ndim == 3 else ""
        raise ValueError(f"fold '{fold.subject}': fold_fn must return scores of shape ({n}, {n_classes}), "
                         f"got {s.shape}{extra}")
    if not np.isfinite(s).all():
        raise FloatingPointError(
            f"fold '{fold.subject}': the model's scores are NaN or Inf: its training diverged (lower the learning "
            f"rate, e.g. model.lr, or check the input maps for extreme values); the finished folds are kept in "
            f"predictions.csv and a rerun of the same command resumes after them")
    sub = samples.iloc[fold.test_idx]
    rows = pd.DataFrame({"fold": fold.index, "dataset": sub["dataset"].to_numpy(), "subject": sub["subject"].to_numpy(),
                         "clip": sub["clip"].to_numpy(), "y_true": y_true, "y_pred": s.argmax(-1)})
    for c, col in enumerate(score_columns(classes)):
        rows[col] = s[:, c]
    if oracle_epoch:
        rows["oracle_epoch"] = -1 if chosen is None else chosen
    return rows


# ----------------------------------------------------------------------------------------------
# reports
# ----------------------------------------------------------------------------------------------

def summarize_predictions(pred: pd.DataFrame, protocol: str, n_folds: int, oracle_epoch: bool,
                          n_classes: int = 3) -> dict:
    """metrics.json content from pooled predictions (columns dataset, y_true, y_pred).

    Returns:
        ``{"protocol", "n_folds", "n_samples", "oracle_epoch", "overall": {UF1, UAR, P_M, R_M, F1_M,
        F1_mu, G_M}, "per_dataset": {dataset: {same keys}}}``.
    """
    overall = compute_metrics(pred["y_true"].to_numpy(), pred["y_pred"].to_numpy(), n_classes)
    per = {}
    for ds in sorted(pred["dataset"].unique(), key=lambda d: (list(DATASET_TITLES).index(d) if d in DATASET_TITLES else 99, d)):
        sub = pred[pred["dataset"] == ds]
        per[ds] = compute_metrics(sub["y_true"].to_numpy(), sub["y_pred"].to_numpy(), n_classes)
    return {"protocol": protocol, "n_folds": int(n_folds), "n_samples": int(len(pred)),
            "oracle_epoch": bool(oracle_epoch), "overall": overall, "per_dataset": per}


def per_subject_table(pred: pd.DataFrame) -> pd.DataFrame:
    """Per tested subject (held out in its fold; HDE: with its whole dataset): dataset, subject, n_clips, n_correct,
    accuracy (n_correct / n_clips) and the true-class counts (``n_<class>``), in the order the subjects appear in
    ``pred``. Shows which subjects the pooled UF1 rests on (subjects range from 1 to 39 clips on the MEGC2019
    composite). In an oracle-epoch run (``pred`` has ``oracle_epoch``) also the epoch picked on each subject, so
    that its accuracies are not read as honest ones. Written as ``per_subject.csv`` by :func:`run_loso` and
    ``icegan ensemble``."""
    names = label_set_of_columns(pred.columns).classes
    n_classes = sum(c in pred.columns for c in score_columns(names)) or len(names)
    per_class = {f"n_{names[c]}": (pred["y_true"] == c).astype(int) for c in range(n_classes)}
    df = pred.assign(correct=(pred["y_true"] == pred["y_pred"]).astype(int), **per_class)
    picked = {"oracle_epoch": ("oracle_epoch", "first")} if "oracle_epoch" in pred.columns else {}
    out = df.groupby(["dataset", "subject"], sort=False).agg(
        n_clips=("correct", "size"), n_correct=("correct", "sum"), **{k: (k, "sum") for k in per_class},
        **picked).reset_index()
    out.insert(4, "accuracy", out["n_correct"] / out["n_clips"])
    return out


def gan_reaches_no_score(cfg: dict) -> bool:
    """Whether the main-job config dict ``cfg`` trains a GAN that reaches none of the run's scores: ``gan.enabled``
    with ``gan.synthetic_ratio=0`` adds no synthetic apex, and a recognizer other than ExpCaps (which scores with the
    GAN's discriminator) reads the real flow features alone, so the predictions are those of ``gan.enabled=false``.
    Keys missing from a section read as their defaults (enabled, ratio 1); False for a dict of another config. Raises
    nothing."""
    gan, model = cfg.get("gan"), cfg.get("recognizer")
    return (isinstance(gan, dict) and bool(gan.get("enabled", True)) and gan.get("synthetic_ratio", 1.0) == 0
            and not (isinstance(model, dict) and model.get("name") == "expcaps"))


def recipe_line(config: Any) -> str:
    """One line naming what a run's config trained: its seed and recognizer (name, epochs) and, for a main-job config
    (``icegan.pipeline.MainConfig``: ``flow`` and ``gan`` sections), its flow method and whether it trained with the
    GAN (and its joint loss), so that the pages, figures and TensorBoard text of two seeds, two epoch counts or two
    ablations (``gan.enabled=false``, ``flow.method=tvl1``, ``gan.joint=true``) of one config file do not read alike.
    Empty without a config (or for a config without these keys). Raises nothing.

    Args:
        config: the run's config (a dataclass such as ``LosoConfig`` or ``MainConfig``, or its dict), or None.

    Returns:
        e.g. ``"seed 1, ststnet, 5 epochs"`` or ``"seed 0, ststnet, 100 epochs, srflownet flow, GAN, joint loss"``;
        the parts the config has, in that order. ``joint loss`` only with the GAN on (``gan.joint`` trains nothing
        without it); ``gan.enabled`` missing from a dict's ``gan`` section reads as on, the section's default. A GAN
        that reaches no score (:func:`gan_reaches_no_score`: ``gan.synthetic_ratio=0``) is ``GAN trained, no
        synthetic apexes``.
    """
    cfg = _config_dict(config)
    if not isinstance(cfg, dict):
        return ""
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else cfg.get("recognizer")
    parts = [f"seed {cfg['seed']}"] if cfg.get("seed") is not None else []
    if isinstance(model, dict) and model.get("name"):
        parts.append(str(model["name"]))
        if model.get("epochs") and model["name"] not in ("logreg", "random_forest", "gradient_boosting"):
            parts.append(f"{model['epochs']} epochs")
    flow, gan = cfg.get("flow"), cfg.get("gan")
    if isinstance(flow, dict) and flow.get("method"):
        parts.append(f"{flow['method']} flow")
    if isinstance(gan, dict):
        on = bool(gan.get("enabled", True))
        parts.append(("GAN trained, no synthetic apexes" if gan_reaches_no_score(cfg) else "GAN") if on else "no GAN")
        if on and gan.get("joint"):
            parts.append("joint loss")
    return ", ".join(parts)


def oracle_candidates_note(config: Any) -> str:
    """For an ``oracle_epoch`` run: a note (one paragraph, naming the keys) that its oracle selection had one
    candidate, when the config's recognizer records its test scores once per fold; else empty. The built-in networks
    record them every ``model.eval_every`` epochs and at the last (:func:`icegan.recognition.train_models`), so
    ``model.epochs`` <= ``model.eval_every`` leaves one record, the last epoch's: the "best epoch per test subject" is
    then picked from one, no selection on the test subjects, while the run stays labelled ORACLE. Empty without a
    config or these keys.

    Args:
        config: the run's config (a dataclass such as ``LosoConfig``, or its dict), or None.
    """
    cfg = _config_dict(config)
    model = cfg.get("model") if isinstance(cfg, dict) else None
    epochs, every = (model.get("epochs"), model.get("eval_every")) if isinstance(model, dict) else (None, None)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (epochs, every)) or epochs > every:
        return ""
    return (f"model.epochs={epochs} <= model.eval_every={every}, so each fold recorded its test scores once (every "
            f"eval_every epochs and at the last), the last epoch's: no epoch was picked on the test subjects, although "
            f"the run is labelled ORACLE (oracle_epoch=true). Set model.eval_every below model.epochs for an oracle "
            f"pick, or oracle_epoch=false.")


def max_folds_key(config: Any) -> str:
    """The config key that cuts a run to its first folds: ``data.max_folds`` for a main-job config (whose data
    section holds it), else ``max_folds`` (``icegan loso``)."""
    cfg = _config_dict(config)
    data = cfg.get("data") if isinstance(cfg, dict) else None
    return "data.max_folds" if isinstance(data, dict) and "max_folds" in data else "max_folds"


def config_null_run(config: Any) -> bool:
    """Whether ``config`` (a dataclass such as ``LosoConfig``, its dict, or None) is a null run's:
    ``data.permute_labels`` an int >= 0 (``icegan loso``: labels permuted within each dataset). False without the
    key (the main job, train.py) or a config."""
    cfg = _config_dict(config)
    data = cfg.get("data") if isinstance(cfg, dict) else None
    seed = data.get("permute_labels", -1) if isinstance(data, dict) else -1
    return isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0


def subjects_among(subjects: Sequence[str], listed: Sequence[str]) -> list[str]:
    """The distinct ``subjects`` (as text, sorted) that ``listed`` names, matched by :func:`subject_key` (so
    ``casme2/S01`` names ``casme2/s01``): e.g. the held-out subjects whose real motion trained a flow network."""
    keys = {subject_key(s) for s in listed}
    return sorted(s for s in {str(x) for x in subjects} if subject_key(s) in keys)


def real_motion_record(tested: Sequence[str], motion_seen: Sequence[str], source: str) -> Optional[dict]:
    """metrics.json's ``real_motion_seen`` entry: ``{"subjects": the tested subjects among motion_seen
    (:func:`subjects_among`), "held_out_subjects": how many subjects were tested, "source": source}``, or None
    when no tested subject is among them (the run is then reported as before). ``tested``: the subject of every
    tested clip (repeats allowed); ``motion_seen``: subjects whose real onset→apex frames trained the flow network."""
    seen = subjects_among(tested, motion_seen)
    return ({"subjects": seen, "held_out_subjects": len({str(s) for s in tested}), "source": str(source)}
            if seen else None)


def run_motion_record(run: str | Path) -> Optional[dict]:
    """The ``real_motion_seen`` entry (:func:`real_motion_record`) of the finished run in ``run``, as its metrics.json
    records it; None without a readable metrics.json or without a well-formed entry."""
    try:
        rec = json.loads((Path(run) / "metrics.json").read_text(encoding="utf-8")).get("real_motion_seen")
    except (OSError, ValueError, AttributeError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("subjects"), list) and rec["subjects"] else None


def members_motion_record(pred: pd.DataFrame, member_dirs: Sequence[str | Path]) -> Optional[dict]:
    """:func:`real_motion_record` of a run built from finished runs (an ensemble's members, a nested selection's
    candidates, merged runs): the subjects their ``metrics.json`` files record as ``real_motion_seen``
    (:func:`run_motion_record`), among the subjects of ``pred``, the source naming the members that record them. A
    member without a readable metrics.json or without the entry adds none."""
    seen, sources = [], []
    for d in map(Path, member_dirs):
        rec = run_motion_record(d)
        if rec is not None:
            seen += [str(x) for x in rec["subjects"]]
            sources.append(f"{d} ({rec.get('source') or 'unnamed'})")
    return real_motion_record(pred["subject"].astype(str), seen, "members: " + "; ".join(sources)) if seen else None


def write_reports(out: Path, pred: pd.DataFrame, metrics: dict, label: str, plot_prefix: str, n_classes: int,
                  md_extra: str = "", recipe: str = "", folds_total: int = 0, folds_key: str = "max_folds",
                  null_run: bool = False) -> str:
    """Write a finished run's reports into ``out``: ``metrics.json``, ``per_subject.csv``, ``metrics.md``
    (:func:`_markdown` titled ``label``, with ``recipe`` (:func:`recipe_line`) under the protocol line when given,
    the subject-bootstrap interval of UF1/UAR
    (:func:`icegan.significance.subject_interval`), then ``md_extra`` if given) and ``confusion.png`` (titled
    ``"{plot_prefix}{protocol} LOSO, UF1 .., UAR .."``; HDE: ``leave-one-dataset-out``, :func:`protocol_title`) and
    ``per_subject.png`` (:func:`per_subject_png`). ``folds_total`` > the run's folds: a ``max_folds`` run, said under
    the title of metrics.md, naming the key ``folds_key`` that did it (:func:`max_folds_key`). ``null_run``: the
    predictions are of permuted labels (``data.permute_labels`` >= 0: :func:`config_null_run` for :func:`run_loso`,
    any member a null run (:func:`icegan.report.is_null_run`) for ``icegan ensemble`` and a nested selection), so
    metrics.md shows no reference rows (:func:`_markdown`). Used by :func:`run_loso`, ``icegan ensemble`` and
    ``icegan select``. Returns the metrics.md text."""
    # whole or not at all: a metrics.json marks a finished run (icegan suite --reuse copies it as one)
    write_text_whole(out / "metrics.json", json.dumps(metrics, indent=2))
    per_subject = per_subject_table(pred)
    per_subject.to_csv(out / "per_subject.csv", index=False, float_format="%.4f", quoting=csv_quoting(per_subject))
    from icegan.significance import interval_markdown, subject_interval
    md = _markdown(metrics, label, recipe, folds_total, folds_key, class_names(pred, n_classes), null_run=null_run)
    ci = interval_markdown(subject_interval(pred, n_classes=n_classes))
    if ci:
        md = md.rstrip("\n") + "\n\n" + ci
    md = md.rstrip("\n") + "\n\n" + per_class_markdown(pred, n_classes)
    if md_extra:
        md = md.rstrip("\n") + "\n" + md_extra
    (out / "metrics.md").write_text(md, encoding="utf-8")
    confusion_png(pred, out / "confusion.png", f"{plot_prefix}{protocol_title(metrics['protocol'])}, "
                   f"UF1 {metrics['overall']['UF1']:.4f}, UAR {metrics['overall']['UAR']:.4f}", n_classes)
    per_subject_png(per_subject, out / "per_subject.png", f"{plot_prefix}{protocol_title(metrics['protocol'])}: "
                    f"accuracy per tested subject")
    return md


def per_class_markdown(pred: pd.DataFrame, n_classes: int = 3) -> str:
    """The "Per class" section of metrics.md: for the pooled predictions and each dataset (:func:`dataset_order`),
    every class's clips, predictions, recall, precision and F1 (:func:`icegan.metrics.per_class_metrics`), so a
    reader sees which class a UF1 loses on (UF1 and UAR are the means of the F1 and recall columns over the
    classes with clips; "—": a class without clips, left out of those means).

    Args:
        pred: rows with columns dataset, y_true, y_pred (class ids ``0..n_classes-1``); its ``score_<class>``
            columns name the classes (:func:`class_names`).
        n_classes: K (3 for MEGC2019).
    """
    from icegan.metrics import per_class_metrics
    names = class_names(pred, n_classes)
    lines = ["## Per class", "", "UF1 and UAR are the means of a scope's F1 and recall over its classes with clips.", "",
             "| Scope | Class | Clips | Predicted | Recall | Precision | F1 |", "|---|---|---|---|---|---|---|"]
    scopes = [("Full", pred)] + [(DATASET_TITLES.get(d, d), pred[pred["dataset"] == d])
                                 for d in dataset_order(pred["dataset"].unique())]
    for name, df in scopes:
        for row in per_class_metrics(df["y_true"].to_numpy(), df["y_pred"].to_numpy(), n_classes):
            lines.append(f"| {name} | {names[row['class']]} | {row['clips']} | {row['predicted']} | "
                         f"{_fmt(row['recall'])} | {_fmt(row['precision'])} | {_fmt(row['F1'])} |")
    return "\n".join(lines) + "\n"


def summary_text(metrics: dict, title: str, partial: str = "") -> str:
    """Console summary of a metrics.json content: one line overall (with an ORACLE tag and a NOT leak-free tag
    (``real_motion_seen``) where they apply, and ``partial``, :func:`partial_tag` with its setting, for a
    ``max_folds`` run), one line per dataset."""
    o = metrics["overall"]
    tag = (" [ORACLE EPOCH: selected on the test subjects]" if metrics["oracle_epoch"] else "")
    tag += (" [NOT leak-free: the flow network trained on held-out subjects' real motion]"
            if metrics.get("real_motion_seen") else "") + partial
    what = " (leave one dataset out)" if metrics["protocol"] == "HDE" else ""
    lines = [f"{title}: {metrics['protocol']}{what} {metrics['n_folds']} folds, {metrics['n_samples']} samples: "
             f"UF1 {o['UF1']:.4f}  UAR {o['UAR']:.4f}{tag}"]
    lines += [f"  {d:7s} UF1 {m['UF1']:.4f}  UAR {m['UAR']:.4f}" for d, m in metrics["per_dataset"].items()]
    return "\n".join(lines)


def _fmt(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:.4f}"


def _markdown(metrics: dict, title: str, recipe: str = "", folds_total: int = 0, folds_key: str = "max_folds",
              classes: Sequence[str] = CLASS_NAMES, null_run: bool = False) -> str:
    """The text of a run's ``metrics.md`` (:func:`write_reports`): ``title`` (a heading, and in the "this run" row:
    Markdown's specials escaped, :func:`icegan.report.markdown_cell`), the protocol and selection line (with
    ``recipe``, :func:`recipe_line`, and the classes when not MEGC2019's ``classes``), the not-leak-free and partial
    run paragraphs where they apply, the "this run" row, then the reference rows (:data:`REFERENCES`) where they are
    comparable: a composite CDE run of real labels only; a null run (``null_run`` True: ``data.permute_labels`` >= 0,
    or an ensemble or selection of such runs; whatever its ``title`` says), a one-dataset, HDE, SDE or non-MEGC2019
    run gets a line saying why there are none. Last, the table of all metrics (:data:`METRIC_KEYS`) per scope."""
    oracle = metrics["oracle_epoch"]
    hde = metrics["protocol"] == "HDE"
    unit = "dataset" if hde else "subject"
    sel = ("ORACLE EPOCH: best epoch picked on each test subject (published practice; NOT an honest estimate)"
           if oracle else f"honest: no model selection on the held-out {unit}")
    if metrics.get("real_motion_seen"):     # no selection maybe, but the features saw held-out motion: not "honest"
        sel = (sel + "; and NOT leak-free (below)" if oracle
               else f"no model selection on the held-out {unit}, but NOT leak-free (below)")
    cols = dataset_order(metrics["per_dataset"]) or ["smic", "casme2", "samm"]     # the datasets this run scored
    what = (" (holdout-database evaluation, leave-one-dataset-out: each dataset's clips scored by a model trained on "
            "the other datasets only)" if hde else "")
    from icegan.report import markdown_cell, selection_word
    lines = [f"# {markdown_cell(title)}" + (" — HDE, leave-one-dataset-out" if hde else ""), "",
             f"Protocol {metrics['protocol']}{what}, {metrics['n_folds']} folds, {metrics['n_samples']} samples. "
             f"Selection: {sel}." + (f" Recipe: {recipe} (the whole config: `config.yaml` beside this file)."
                                     if recipe else ""), ""]
    if tuple(classes) != CLASS_NAMES:                # another label set: say which, above every number
        lines[-2] += f" Classes ({len(classes)}): {', '.join(classes)}."
    seen = metrics.get("real_motion_seen")
    if seen:
        subs = seen["subjects"]
        lines += [f"**Not leak-free:** the flow network that made the features ({seen.get('source') or 'unnamed'}) "
                  f"was trained on the real onset->apex frames (unlabelled) of {len(subs)} of the "
                  f"{seen.get('held_out_subjects', '?')} held-out subjects ({', '.join(subs)}): their folds' features "
                  "come from a network that has seen their motion. For a leak-free run use classical flow "
                  "(flow.method=tvl1 or farneback) or flow weights trained without them.", ""]
    if folds_total > metrics["n_folds"]:
        lines += [f"**Partial run:** only the first {metrics['n_folds']} of the {folds_total} folds were run "
                  f"(`{folds_key}`, for smoke tests): these numbers pool those folds' clips only and are not a "
                  "leave-one-out result.", ""]
    lines += ["| Method | Selection | Full UF1 | Full UAR | "
             + " | ".join(f"{DATASET_TITLES.get(d, d)} {k}" for d in cols for k in ("UF1", "UAR")) + " |",
             "|---|---|---|---|" + "---|---|" * len(cols)]
    row = [f"**this run** ({markdown_cell(title)})",
           selection_word(bool(oracle), bool(seen), "oracle epoch"),
           _fmt(metrics["overall"]["UF1"]), _fmt(metrics["overall"]["UAR"])]
    for d in cols:
        m = metrics["per_dataset"].get(d)
        row += [_fmt(m["UF1"]) if m else "—", _fmt(m["UAR"]) if m else "—"]
    lines.append("| " + " | ".join(row) + " |")
    if hde and len(metrics["per_dataset"]) >= 2:
        per = list(metrics["per_dataset"].values())
        mean_uf1, mean_uar = (_fmt(float(np.mean([m[k] for m in per]))) for k in ("UF1", "UAR"))
        lines += ["", f"Full pools the clips of the {len(per)} held-out datasets, so each weighs by its number of "
                  f"clips; their mean, each held-out dataset weighing the same: UF1 {mean_uf1} / UAR {mean_uar}."]
    composite = set(metrics["per_dataset"]) <= set(DATASET_TITLES)
    one = sorted(metrics["per_dataset"]) if len(metrics["per_dataset"]) == 1 else None
    # a max_folds run of the composite whose first folds are one dataset's subjects is still composite CDE (trained
    # on all three datasets): the reference rows, with the clips it scored, below; not "that dataset's own folds"
    if metrics["protocol"] == "CDE" and composite and one and not folds_total > metrics["n_folds"]:
        title_one = DATASET_TITLES.get(one[0], one[0])
        lines += ["", f"No reference rows: this run holds {title_one} clips only, so its leave-one-subject-out folds are "
                  f"{title_one}'s own (what protocol=SDE dataset={one[0]} runs); the published and measured rows are "
                  "the three-dataset composite's CDE and are not comparable."]
    elif metrics["protocol"] == "CDE" and composite and null_run:
        lines += ["", "No reference rows: this is a null run (data.permute_labels >= 0: its labels were permuted "
                  "within each dataset), which an honest pipeline scores at chance; it checks the pipeline and is not "
                  "comparable with the published or measured rows of real labels."]
    elif metrics["protocol"] == "CDE" and composite:
        for ref in REFERENCES:
            r = [ref["method"], ref["selection"], *ref["full"]]      # as stored: no digit added
            for d in cols:
                v = ref.get(d)
                r += [v[0], v[1]] if v else ["—", "—"]
            lines.append("| " + " | ".join(r) + " |")
        lines += ["", "Reference rows: composite CDE on the MEGC2019 442-clip set; only rows labelled honest are "
                  "comparable with an honest run."]
        if metrics["n_samples"] != COMPOSITE_CLIPS:
            lines[-1] += (f" This run scored {metrics['n_samples']} clips, not the {COMPOSITE_CLIPS} of the composite: "
                          "its numbers are not comparable with these rows.")
    elif not composite:
        lines += ["", "No published reference rows: this run is not on the MEGC2019 datasets."]
    elif hde:
        lines += ["", "No reference rows are shown for HDE runs: the published and measured rows are composite CDE "
                  "(leave-one-subject-out, the held-out subject's own dataset among the training subjects), which is "
                  "not comparable with leaving the whole dataset out."]
    else:
        lines += ["", "No published reference rows are shown for SDE runs (the published rows are CDE)."]
    lines += ["", "## All metrics", "", "| Scope | " + " | ".join(METRIC_KEYS) + " |",
              "|---|" + "---|" * len(METRIC_KEYS)]
    scopes = [("Full", metrics["overall"])] + [(DATASET_TITLES.get(d, d), m) for d, m in metrics["per_dataset"].items()]
    for name, m in scopes:
        lines.append(f"| {name} | " + " | ".join(_fmt(m[k]) for k in METRIC_KEYS) + " |")
    lines.append("")
    return "\n".join(lines)


def dataset_order(names: Sequence[str]) -> list[str]:
    """Dataset names in the order of every table and figure: the composite's (SMIC, CASME II, SAMM, as in MEGC2019's
    table) first, any other dataset after them, sorted; each name once."""
    names = sorted(set(map(str, names)))
    known = [d for d in DATASET_TITLES if d in names]
    return known + [d for d in names if d not in DATASET_TITLES]


def per_subject_png(table: pd.DataFrame, path: Path, title: str) -> list[tuple[str, str, float]]:
    """The accuracy of every tested subject as one PNG: one panel per dataset, one horizontal bar per subject
    (accuracy in [0, 1], labelled ``correct/clips``), the dataset's pooled accuracy as a dashed line. Shows at a
    glance which subjects a pooled UF1 rests on and which ones the recognizer fails (a subject with one clip scores 0
    or 1).

    Args:
        table: :func:`per_subject_table`'s rows (columns dataset, subject, n_clips, n_correct, accuracy).
        path: the PNG to write. title: the figure's title.

    Returns:
        The bars drawn, ``(dataset, subject, accuracy)``, panel by panel (datasets in :func:`dataset_order`) and top
        to bottom within a panel (subjects in ``table``'s order), names as in ``table``. Bars below 0.5 are red, the
        others blue (a legend under the panels says so). A subject or dataset name holding a control character
        (kept as written, :mod:`icegan.csv_names`) is drawn with it escaped (``"\\r"``, ``"\\x01"``:
        :func:`plot_label`), as the fonts have no glyph for it; a ``$`` in a name or the title is drawn as written.

    Raises:
        ValueError: ``table`` has no rows.
    """
    if table.empty:
        raise ValueError("per_subject_png: no subjects to plot")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = dataset_order(table["dataset"].astype(str).unique())
    tallest = int(table.groupby("dataset").size().max())
    # at least 7 in wide: the legend's three entries and the title fit a run of one dataset too
    width = max(3.4 * len(datasets), 7.0)
    fig, axes = plt.subplots(1, len(datasets), figsize=(width, 1.4 + 0.22 * tallest), squeeze=False)
    drawn = []
    for ax, d in zip(axes[0], datasets):
        rows = table[table["dataset"].astype(str) == d]
        names = [plot_label(str(s).split("/", 1)[-1]) for s in rows["subject"]]
        pos = (tallest - 1) - np.arange(len(rows))       # first subject on top, panels aligned at the top
        acc = rows["accuracy"].to_numpy(dtype=float)
        colours = ["#c0392b" if a < 0.5 else "#2e86c1" for a in acc]
        ax.barh(pos, acc, color=colours, height=0.75)
        zero = acc == 0                  # a bar of length 0 is invisible: a subject with no clip right gets a stub
        if zero.any():
            ax.barh(pos[zero], 0.012, color="#c0392b", height=0.75)
        for y, k, n in zip(pos, rows["n_correct"], rows["n_clips"]):
            # the counts in a column right of every bar, clear of the bars and of the pooled line (at most 1)
            ax.text(1.03, y, f"{int(k)}/{int(n)}", va="center", fontsize=8)
        pooled = float(rows["n_correct"].sum() / rows["n_clips"].sum())
        ax.axvline(pooled, color="black", linestyle="--", linewidth=1)
        ax.set_yticks(pos, names, fontsize=8)
        ax.set_xlim(0, 1.22)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_ylim(-0.75, tallest - 0.25)
        ax.set_xlabel("accuracy")
        ax.set_title(f"{plot_label(DATASET_TITLES.get(d, d))}: {len(rows)} subjects, pooled accuracy {pooled:.2f}",
                     fontsize=9)
        drawn += [(d, str(s), float(a)) for s, a in zip(rows["subject"], acc)]
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    fig.legend(handles=[Patch(color="#2e86c1", label="accuracy ≥ 0.5"), Patch(color="#c0392b", label="accuracy < 0.5"),
                        Line2D([], [], color="black", linestyle="--", linewidth=1, label="dataset's pooled accuracy")],
               loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(fit_title(title, width))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def plot_label(name: str, dollars: bool = True) -> str:
    """``name`` (a run, entry, dataset, subject or class name: user text) as matplotlib draws it as written, for
    every title, tick label and legend of a figure: each control character (Unicode category Cc: ``"\\r"``,
    ``"\\t"``, ``"\\x01"``, ...) written as its Python escape (``sub``, a carriage return, ``01`` → ``sub``, a
    backslash, ``r01``): matplotlib's fonts have no glyph for them (it warns "Glyph 13 missing"); and each ``$``
    escaped as ``\\$`` (``dollars`` True): two dollars would start mathtext. A name without either is returned
    unchanged."""
    import unicodedata
    text = "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in name)
    return text.replace("$", "\\$") if dollars else text


def fit_title(title: str, width_in: float, fontsize: float = 12.0) -> str:
    """``title`` broken into lines that fit a figure ``width_in`` inches wide (at ``fontsize`` points), so that a long
    run name or an ORACLE mark is wrapped instead of cut off at the PNG's edges. A character is taken as 0.6 em wide
    (DejaVu Sans, matplotlib's default font, averages about 0.55 em), with 5 % of the width kept free. A control
    character in it (a run or dataset name's tab, newline or ESC) is written escaped first (:func:`plot_label`), as
    in per_subject.png's labels: the fonts have no glyph for it; its dollars are escaped after the wrap, in each
    line, so that no line break falls between an escape and its ``$``."""
    import textwrap
    title = plot_label(title, dollars=False)
    chars = max(20, int(0.95 * width_in * 72 / (0.6 * fontsize)))
    lines = textwrap.wrap(title, chars, break_long_words=True, break_on_hyphens=False) or [title]
    return "\n".join(plot_label(line) for line in lines)


def confusion_png(pred: pd.DataFrame, path: Path, title: str, n_classes: int = 3) -> list[tuple[str, np.ndarray]]:
    """Confusion matrices of pooled predictions as one PNG: all clips, then one panel per dataset (in
    :func:`dataset_order`, the order of the tables). A cell's colour is its share of the true class's clips (row-
    normalised: the diagonal is each class's recall, what UAR averages, so a minority class reads as well as the
    majority), on one 0–1 scale shared by every panel with a colour bar; the cell text gives the count and that
    share. A class with no clip in a panel (a dataset without it) is a grey row marked "no clips".

    Args:
        pred: rows with columns dataset, y_true, y_pred (class ids 0..n_classes-1); its ``score_<class>`` columns
            name the classes (:func:`class_names`; MEGC2019's without any).
        path: the PNG to write. title: the figure's title (wrapped to the figure, control characters and dollars
            escaped: :func:`fit_title`; a dataset's name in its panel's title and the class names too). n_classes: K.

    Returns:
        ``(panel title, (K, K) float row shares in [0, 1], NaN for a class without clips)`` for every panel drawn.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scopes = [("Full", pred)] + [(DATASET_TITLES.get(d, d), pred[pred["dataset"] == d])
                                 for d in dataset_order(pred["dataset"].unique())]
    width = 3.6 * len(scopes) + 0.8
    fig, axes = plt.subplots(1, len(scopes), figsize=(width, 3.9), squeeze=False)
    names = [plot_label(c) for c in class_names(pred, n_classes)]
    cmap = plt.get_cmap("Blues").with_extremes(bad="#dddddd")
    drawn, image = [], None
    for ax, (name, df) in zip(axes[0], scopes):
        cm = confusion_matrix(df["y_true"], df["y_pred"], n_classes)
        totals = cm.sum(1, keepdims=True)
        share = np.where(totals > 0, cm / np.maximum(totals, 1), np.nan)
        image = ax.imshow(np.ma.masked_invalid(share), cmap=cmap, vmin=0.0, vmax=1.0)
        for i in range(n_classes):
            for j in range(n_classes):
                if totals[i, 0] == 0:
                    text, dark = ("no clips" if j == 1 else ""), False
                else:
                    text, dark = f"{cm[i, j]}\n{100 * share[i, j]:.0f} %", share[i, j] > 0.55
                ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
        ax.set_xticks(range(n_classes), names, rotation=30)
        ax.set_yticks(range(n_classes), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{plot_label(name)} (n={len(df)})")
        drawn.append((name, share))
    fig.suptitle(fit_title(title, width * 0.93))
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    bar = fig.colorbar(image, ax=list(axes[0]), fraction=0.025, pad=0.02)
    bar.set_label("share of the true class's clips (diagonal: recall)")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


# ----------------------------------------------------------------------------------------------
# runner
# ----------------------------------------------------------------------------------------------

def run_loso(samples: pd.DataFrame, fold_fn: Optional[Callable[[Fold], Any]], out_dir: str | Path,
             protocol: Literal["CDE", "SDE", "HDE"] = "CDE", oracle_epoch: bool = False, config: Any = None,
             dataset: Optional[str] = None, name: Optional[str] = None, max_folds: int = 0,
             folds_fn: Optional[Callable[[list[Fold]], Sequence[Any]]] = None, folds_per_call: int = 1,
             progress: bool = True, n_classes: int = 3, fold_map: Optional[Callable] = None,
             provenance: Optional[dict] = None, group_map: Optional[Callable] = None,
             classes: Optional[Sequence[str]] = None, motion_seen: Sequence[str] = (),
             motion_seen_by: str = "") -> dict:
    """Run (or resume) a LOSO (CDE, SDE) or leave-one-dataset-out (HDE) evaluation and write every output into
    ``out_dir``.

    Args:
        samples: table with columns dataset, subject (dataset-prefixed, e.g. ``casme2/sub01``),
            clip, label (a class id ``0..K-1`` of ``classes``; MEGC2019: 0 negative, 1 positive, 2 surprise);
            row order defines the indices in :class:`Fold`.
        fold_fn: called once per unfinished fold with a :class:`Fold`; trains on
            ``fold.train_idx`` only and returns per-class scores of ``fold.test_idx`` as an array
            (n_test, n_classes) (any monotone score: logits or probabilities; y_pred = argmax).
            In an ``oracle_epoch`` run it may return (n_epochs, n_test, n_classes); the epoch
            with the most correct test predictions is kept (labelled as oracle everywhere).
        out_dir: run directory (created); it is the run's state, so calling again with the same
            arguments resumes at the first unfinished fold and yields identical metrics. A folder of a
            ``max_folds`` run is extended by a call with more folds (a larger ``max_folds``, or 0) and otherwise the
            same arguments and config (the max_folds key aside), when its folds fill whole groups of
            ``folds_per_call``: its finished folds are kept and the run goes on with the next fold
            (:func:`_prepare_dir`); ``fold_fn``'s (or ``folds_fn``'s) scores of a fold must then not depend on how
            many folds the run has (icegan's seed each fold or group by its first fold's index).
        protocol: ``"CDE"``, ``"SDE"`` or ``"HDE"`` (see :func:`make_folds`; HDE folds hold out a dataset each).
        oracle_epoch: mark the run as using the published oracle-epoch selection. A ``config`` whose recognizer
            records one epoch's scores per fold (:func:`oracle_candidates_note`) keeps the mark, with a warning and
            a note at the end of metrics.md that no epoch was picked.
        config: resolved config (dataclass or mapping) saved as ``config.yaml``; a resumed run
            must have the same config.
        dataset: dataset of an SDE run.
        name: title used in metrics.md and plots (default: the folder name).
        max_folds: if > 0, only the first ``max_folds`` folds are run and scored (smoke runs); a later run with
            more folds into the same ``out_dir`` extends it (see ``out_dir``).
        folds_fn: alternative to ``fold_fn`` that trains several folds at once: called with a
            list of up to ``folds_per_call`` folds, returns one score array per fold. Groups are
            fixed slices of the full fold list (so a resumed run retrains exactly the same
            groups); a group whose folds are all finished is skipped.
        folds_per_call: group size for ``folds_fn`` (0 = all folds in one call).
        progress: show a tqdm bar over folds (the busy-CPU note of :func:`icegan.environment.cpu_contention` is
            printed either way).
        n_classes: number of classes (3), when ``classes`` is not given (the first ``n_classes`` MEGC2019 names).
        classes: the class names in id order (:mod:`icegan.labels`, e.g. CASME II's five); they name the score
            columns of predictions.csv (``score_<class>``) and the classes in every report. A set other than
            MEGC2019's is kept in ``run.json`` (``classes``), so a resume with other classes is refused.
        fold_map: where ``fold_fn`` runs: ``fold_map(fold_fn, folds)`` yields ``(fold, scores)`` in any
            order (:mod:`icegan.executors`: ``sequential_map`` (default), ``RayExecutor``); each result is
            recorded as it arrives, so an interrupted parallel run resumes like a sequential one.
            Under ``torchrun`` (:mod:`icegan.distributed`) every process runs the same folds in
            lockstep and only rank 0 writes the run directory; the others return rank 0's metrics.
        group_map: where ``folds_fn`` runs: ``group_map(folds_fn, groups)`` yields ``(group, results)`` in any
            order (:class:`icegan.executors.ProcessGroupMap`: groups in parallel processes, also given
            ``scope=``: the run's groups in all (:meth:`icegan.executors.ProcessGroupMap.sizes`)); None = one group
            after another in this process. Not under ``torchrun``.
        provenance: JSON-able facts the config does not capture but the results depend on (e.g. the
            SHA-256 of a weights file the config names only by default); kept in ``run.json``, so a
            resumed run whose provenance changed is refused like one whose config changed.
        motion_seen: subject ids whose real (unlabelled) onset→apex frames trained the flow network that made the
            features (:func:`icegan.pipeline.real_motion_seen`, or a feature table's ``provenance.json``); matched by
            :func:`subject_key`, those among the subjects the run tests make it not leak-free: metrics.json records
            them, metrics.md says so under its Selection line, ``icegan table`` shows the run as ``NOT leak-free``.
        motion_seen_by: where ``motion_seen`` comes from (the flow weights, the provenance.json), for the reports.

    Returns:
        The metrics.json content: ``{"protocol", "n_folds", "n_samples", "oracle_epoch",
        "overall": {UF1, UAR, P_M, R_M, F1_M, F1_mu, G_M}, "per_dataset": {dataset: {...}}}``, plus, only when some
        tested subjects are among ``motion_seen``, ``"real_motion_seen": {"subjects": [sorted ids],
        "held_out_subjects": number of subjects tested, "source": motion_seen_by}``.

    Raises:
        ValueError: bad sample table (names the row), bad protocol, bad scores from ``fold_fn``.
        LosoScopeError (a ValueError): the clips cannot make the protocol's folds (:func:`make_folds`), or those in
            scope have one class only (:func:`check_classes`).
        LosoStateError: ``out_dir`` holds a different run (a smaller max_folds included, or a max_folds run whose
            folds do not fill whole groups of ``folds_per_call``: :func:`_prepare_dir`), another kind of run (an
            ensemble, a nested selection, a merge) or a ``predictions.csv`` without a run header
            (:func:`icegan.paths.run_folder_conflict`).
        FloatingPointError: a fold's scores are NaN or Inf (its training diverged); the folds before it are saved.
        Any exception raised by ``fold_fn`` propagates after the finished folds are saved.
    """
    from tqdm.auto import tqdm

    if (fold_fn is None) == (folds_fn is None):
        raise ValueError("give exactly one of fold_fn (one fold per call) or folds_fn (several folds per call)")
    classes = tuple(classes) if classes is not None else CLASS_NAMES[:n_classes]
    n_classes = len(classes)
    samples = validate_samples(samples, n_classes)
    out = Path(out_dir)
    title = name or out.name
    folds = make_folds(samples["subject"].tolist(), protocol, dataset)
    check_classes(samples["label"].to_numpy(), folds, classes)
    missing = folds_missing_a_class(samples["label"].to_numpy(), folds, classes)
    if missing:
        logging.getLogger("icegan").warning(
            "%d fold(s) train without a class of the clips in scope (every clip of it is of the held-out %s), so "
            "their model never predicts it: %s%s", len(missing), "dataset" if protocol == "HDE" else "subject",
            "; ".join(missing[:3]), f"; and {len(missing) - 3} more" if len(missing) > 3 else "")
    if max_folds < 0:
        raise ValueError(f"max_folds must be >= 0 (0 = all folds), got {max_folds}")
    folds_total = len(folds)
    run_folds = folds               # all the run's folds: their groups size a pool's default threads (scope below)
    if max_folds > 0:
        folds = folds[:max_folds]
    from icegan import distributed
    if group_map is not None and distributed.is_distributed():
        raise ValueError("group_map (parallel fold groups) cannot be combined with torchrun; use one of them")
    if not distributed.is_main():
        return _follow_main(folds, fold_fn, folds_fn, folds_per_call, fold_map, out)
    with _RunFolderLock(out) as lock:      # one process writes a run folder at a time; released at the end
        try:        # under torchrun the other processes wait for the finished folds: an error here is told to them
            header = _header(samples, protocol, dataset, oracle_epoch, folds, folds_total, classes, provenance)
            one_candidate = oracle_candidates_note(config) if oracle_epoch else ""
            if one_candidate:
                logging.getLogger("icegan").warning("oracle_epoch=true with one candidate epoch: %s", one_candidate)
            refuse_run_folder_conflict(out, "run.json")     # another kind of run's folder: before it is made
            lock.hold()         # makes the folder; LosoStateError while another process writes it
            _prepare_dir(out, header, config, 1 if fold_fn is not None else max(folds_per_call, 0))
            pred_csv = out / "predictions.csv"
            key = held_out_column(protocol)             # the predictions column naming each row's fold
            done = _read_finished(pred_csv, samples, folds, key, pred_columns(classes))
            finished = set(done[key])
            if finished:            # a resume: say what is kept (the bar alone started at n/N, silently)
                left = len(folds) - len(finished)
                print(f"{title}: resuming {out}: {len(finished)} of {len(folds)} folds finished earlier are kept; "
                      + (f"{left} to train" if left else "none to train, the results are written again"),
                      file=sys.stderr)
            # the tasks the pool gets: a pool of more workers starts only that many (records what ran); the run's
            # tasks in all (scope), those max_folds leaves for later included, size its default threads
            # (ProcessGroupMap.sizes): a max_folds run extended later trains as the uninterrupted run
            scope = folds_total if fold_fn is not None else len(_groups_to_run(run_folds, folds_per_call, set()))
            groups = None if fold_fn is not None else _groups_to_run(folds, folds_per_call, finished)
            tasks = len(folds) - len(finished) if groups is None else len(groups)
            pool = _cpu_workers(fold_map, group_map, tasks, scope)
            from icegan.environment import append_environment
            # the resolved device: a resume compares it, not its spelling (_devices_as_resolved)
            device = _resolved_device(_config_dict(config))
            append_environment(out, folds_finished_at_start=len(finished), folds_total=len(folds),
                               world_size=distributed.world_size(), **({"device": device} if device else {}),
                               **({"workers": pool[0], "threads_per_worker": pool[1]} if pool else {}))
            if pool and len(finished) < len(folds):      # with or without a progress bar (README: it says so)
                from icegan.environment import cpu_contention
                if (busy := cpu_contention(pool[1], workers=pool[0])) is not None:
                    print(busy, file=sys.stderr)
        except Exception as exc:
            from icegan.commands import error_text
            distributed.broadcast_object({"error": error_text(exc)})    # they leave quietly; this process reports it
            raise
        distributed.broadcast_object({"finished": sorted(finished)})      # the other processes skip the same folds

        from torch.utils.tensorboard import SummaryWriter      # tensorboard is a declared dependency (pyproject.toml)
        writer = SummaryWriter(log_dir=str(out / "tb"))
        for f in folds:
            f.writer = writer

        pooled = [done] if len(done) else []
        tb = "ORACLE_" if oracle_epoch else ""          # an oracle run's TensorBoard metrics say so in their tags

        def record(fold: Fold, scores: Any) -> None:
            rows = _scores_to_rows(fold, samples, scores, oracle_epoch, classes)
            _append(pred_csv, rows)
            pooled.append(rows)
            finished.add(fold.subject)
            allp = pd.concat(pooled, ignore_index=True)
            m = compute_metrics(allp["y_true"], allp["y_pred"], n_classes)
            step = len(finished)        # every per-fold scalar at the folds finished (1-based), also after a resume
            writer.add_scalar(f"{tb}loso/fold_accuracy", float((rows["y_true"] == rows["y_pred"]).mean()), step)
            writer.add_scalar(f"{tb}loso/running_UF1", m["UF1"], step)
            writer.add_scalar(f"{tb}loso/running_UAR", m["UAR"], step)
            writer.flush()

        todo = [f for f in folds if f.subject not in finished]
        bar = tqdm(total=len(folds), initial=len(folds) - len(todo), desc=f"{protocol_title(protocol)} {title}",
                   unit="fold", disable=not progress)
        try:
            if fold_fn is not None:
                if fold_map is None:
                    from icegan.executors import sequential_map as fold_map
                if todo:                    # the fold that trains now (a pool: the first one not yet back)
                    bar.set_postfix_str(todo[0].subject)
                for fold, scores in fold_map(fold_fn, todo):
                    record(fold, scores)
                    bar.update(1)
                    if (left := next((f for f in todo if f.subject not in finished), None)) is not None:
                        bar.set_postfix_str(left.subject)
            else:
                def one_by_one(fn, gs):
                    from icegan.executors import fold_named_in_errors
                    for g in gs:
                        bar.set_postfix_str(f"{g[0].subject}..{g[-1].subject}")
                        with fold_named_in_errors(g):        # which folds raised it (one line of a command's error)
                            results = fn(g)
                        yield g, results

                from icegan.executors import map_groups
                runs = (one_by_one(folds_fn, groups) if group_map is None
                        else map_groups(group_map, folds_fn, groups, scope))
                for group, results in runs:
                    results = list(results)
                    if len(results) != len(group):
                        raise ValueError(f"folds_fn returned {len(results)} score arrays for {len(group)} folds")
                    for fold, scores in zip(group, results):
                        if fold.subject not in finished:
                            record(fold, scores)
                            bar.update(1)
        finally:
            bar.close()

        allp = pd.concat(pooled, ignore_index=True) if pooled else done
        order = {f.subject: f.index for f in folds}
        # fold order, then each fold's clips in the samples' order (a sequential run's, _scores_to_rows); the clip
        # key only matters for a hand-edited file: make_folds gives test_idx ascending, so each fold's rows are in it
        at: dict = {}
        for i, c in enumerate(zip(samples["subject"].astype(str), samples["clip"].astype(str))):
            at.setdefault(c, i)
        clip_at = [at.get(c, -1) for c in zip(allp["subject"].astype(str), allp["clip"].astype(str))]
        allp = allp.assign(_o=allp[key].map(order), _c=clip_at).sort_values(["_o", "_c"], kind="stable") \
            .drop(columns=["_o", "_c"])
        if allp.index.tolist() != sorted(allp.index):      # folds that finished out of order (workers, Ray, a resume)
            _write_in_fold_order(pred_csv, allp, key)
        metrics = summarize_predictions(allp, protocol, len(folds), oracle_epoch, n_classes)
        seen = real_motion_record(samples["subject"].to_numpy()[_tested_idx(folds)], motion_seen, motion_seen_by)
        if seen:                            # absent otherwise: metrics.json as before
            metrics["real_motion_seen"] = seen
        label = title + (" [ORACLE EPOCH]" if oracle_epoch else "") + partial_tag(header)
        recipe = recipe_line(config)
        md = write_reports(out, allp, metrics, label, f"{label}" + (f" ({recipe})" if recipe else "") + ": ", n_classes,
                           recipe=recipe, folds_total=header.get("folds_total", 0), folds_key=max_folds_key(config),
                           null_run=config_null_run(config),
                           md_extra=f"\n**Oracle with one candidate:** {one_candidate}\n" if one_candidate else "")
        # the final metrics' tags say what metrics.md says of the run: ORACLE_, NOT_LEAKFREE_ (the flow network saw
        # the real motion of tested subjects) and PARTIAL_ (a max_folds run: not a LOSO result), in that order
        final = tb + ("NOT_LEAKFREE_" if seen else "") + ("PARTIAL_" if header.get("folds_total") else "")
        for k in METRIC_KEYS:
            writer.add_scalar(f"{final}final/{k}", metrics["overall"][k], len(folds))
            for d, m in metrics["per_dataset"].items():
                writer.add_scalar(f"{final}final_{d}/{k}", m[k], len(folds))
        writer.add_text("metrics", md)
        writer.close()
        for f in folds:
            f.writer = None
        distributed.broadcast_object(metrics)
        return metrics


def _groups_to_run(folds: list[Fold], folds_per_call: int, finished: set) -> list[list[Fold]]:
    """The groups of ``folds`` that ``folds_fn`` trains in one call each (``folds_per_call`` folds, <= 0: all in
    one), in order, without those whose folds are all ``finished`` (subjects)."""
    k = len(folds) if folds_per_call <= 0 else folds_per_call
    groups = [folds[s:s + k] for s in range(0, len(folds), k)]
    return [g for g in groups if not all(f.subject in finished for f in g)]


def _cpu_workers(fold_map, group_map, tasks: Optional[int] = None,
                 scope: Optional[int] = None) -> Optional[tuple[int, int]]:
    """``(workers, threads)``: the processes a LOSO run keeps busy on this machine at once and the CPU threads of
    each: ``(1, torch's threads)`` in this process, or a local worker pool's (:class:`icegan.executors.ProcessGroupMap`;
    a local :class:`icegan.executors.RayExecutor`, whose tasks run ``threads`` or else ``num_cpus`` threads and, with
    ``workers=0``, as many at once as ``num_cpus`` fits into the usable CPUs; also behind a map whose ``executor``
    attribute names it). None when the folds run on a Ray cluster elsewhere (``address`` set). Under ``torchrun``
    the folds run in this process on every rank: ``(LOCAL_WORLD_SIZE, torch's threads)``, the processes torchrun
    started on this machine (1 when it is unset). ``tasks``: the groups (or folds) the pool gets; a pool then runs
    at most that many at once (at least 1); None: the pool's workers as given. ``scope``: the run's tasks in all
    (:meth:`icegan.executors.ProcessGroupMap.sizes`); None: ``tasks``.

    Raises:
        RuntimeError: a torchrun variable (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``) that is not
            an integer (:func:`icegan.distributed.launched_local_world_size`).
    """
    import torch
    for m in (group_map, fold_map):
        m = getattr(m, "executor", m)           # a wrapper of an executor (the main job's timed map) names it
        workers = getattr(m, "workers", None)
        if workers is None:
            continue
        if getattr(m, "address", None):
            return None
        from icegan.environment import usable_cpus
        from icegan.executors import ProcessGroupMap
        if isinstance(m, ProcessGroupMap) and tasks is not None:
            return m.sizes(tasks, scope)
        per_task = getattr(m, "threads", 0) or (max(1, int(m.num_cpus)) if hasattr(m, "num_cpus")
                                                else torch.get_num_threads())
        if workers <= 0:
            workers = max(1, usable_cpus() // max(1, int(getattr(m, "num_cpus", 1) or 1)))
        return (workers if tasks is None else max(1, min(workers, tasks))), per_task
    from icegan import distributed
    return distributed.launched_local_world_size(), torch.get_num_threads()


def _follow_main(folds: list[Fold], fold_fn, folds_fn, folds_per_call: int, fold_map, out: Path) -> dict:
    """A non-zero rank under torchrun: run the folds rank 0 runs (their collectives need every
    process), write nothing, and return rank 0's metrics.

    Raises:
        SystemExit: (code 2, nothing printed) rank 0 raised an error before the folds (a run folder of another
            config, an unreadable predictions.csv): rank 0 prints it, this process leaves without gloo's
            "Connection closed by peer" traceback.
    """
    from icegan import distributed
    started = distributed.broadcast_object(None)
    if "error" in started:      # rank 0 stopped before the folds and reports its error (once, in one line)
        raise SystemExit(2)
    finished = set(started["finished"])
    if fold_fn is not None:
        todo = [f for f in folds if f.subject not in finished]
        if fold_map is None:
            from icegan.executors import sequential_map as fold_map
        for _ in fold_map(fold_fn, todo):
            pass
    else:
        for group in _groups_to_run(folds, folds_per_call, finished):
            list(folds_fn(group))
    return distributed.broadcast_object(None)
