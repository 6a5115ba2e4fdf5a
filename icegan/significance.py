"""How far LOSO numbers can be trusted: subject-level bootstrap intervals and paired differences.

A leave-one-subject-out UF1 is one number computed from a few hundred clips of a few dozen subjects
(MEGC2019 composite: 442 clips, 68 subjects, 1–39 clips each). Clips of one subject are not independent
(same face, same session, one fold model), so the unit to resample is the subject, not the clip. For B
resamples, 68 subjects are drawn with replacement, their clips' predictions pooled, and UF1 / UAR computed
as in MEGC2019 (:func:`icegan.metrics.uf1_uar_from_confusion`); the percentile interval of those B values
is the interval reported (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13; the cluster
form of the bootstrap for grouped data). Runs compared with each other are resampled with the *same*
subjects in each resample (paired), so the interval of a difference excludes the spread the two runs share.

An entry may hold several runs (seeds of one recipe; runs of different recipes in one entry are refused): its
statistic in a resample is the mean over those runs, the number ``icegan table`` reports as the mean. The
resampling itself is :func:`scipy.stats.bootstrap` (percentile method); with ``stratify`` the subjects are drawn
within each dataset (:func:`stratified_indices`, numpy draws and the same percentile intervals), so that every
resample keeps the composite's mix of SMIC, CASME II and SAMM subjects.

What it cannot say: the interval is about new *subjects* like these (same datasets, cameras, labelling);
it is not a test of a recipe chosen after looking at these same LOSO numbers.
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from icegan.data.features import subject_dataset
from icegan.metrics import check_whole_ids, uf1_uar_from_confusion

__all__ = ["RunSet", "load_run_set", "subject_confusions", "stratified_indices", "check_bootstrap_settings",
           "check_stratify", "check_same_datasets", "comparison_scopes", "shown_scopes",
           "bootstrap_compare",
           "comparison_table", "subject_interval", "subject_order", "interval_markdown", "interval_line",
           "forest_plot"]


def subject_order(subjects: Sequence[str]) -> list[str]:
    """The distinct ``subjects`` (as text) in the order a subject bootstrap indexes them: by the id with its numbers
    compared as numbers (``smic/s1``, ``smic/s2``, ``smic/s10``; a number without its leading zeros, as
    :func:`icegan.protocol.subject_key` reads it), then by the id itself. Two spellings of one subject (the MEGC2019
    table's ``smic/s01``, the SMIC tree's ``smic/s1``) take the same place, so the same predictions get the same
    intervals in either; zero-padded ids (``casme2/sub01``, ``samm/006``, ``smic/s01``; any case, prefix or
    separator) keep the order of ``sorted``, in which every recorded interval was drawn."""
    def key(s: str) -> tuple[str, str]:
        # a number as its value's digit count (2 places) and its value: 1 < 2 < 10, 01 = 1, and still sorted as a
        # digit ('0') against any other character
        return re.sub(r"[0-9]+", lambda m: f"{len(str(int(m.group()))):02d}{int(m.group())}", s), s
    return sorted({str(s) for s in subjects}, key=key)


@dataclass
class RunSet:
    """The runs of one entry, reduced to per-subject confusion matrices.

    Attributes:
        label: the entry's name.
        runs: the run folders.
        subjects: (S,) subject ids, in :func:`subject_order`.
        confusions: (R, S, C, C) int counts per run and subject (row = true, column = predicted).
        clips: the (subject, clip, y_true) rows, sorted: the same for every run of the entry.
        oracle: True when the runs picked epochs on the test subject.
        label_set: the name of the runs' label set (:mod:`icegan.labels`, read from their score columns).
        leaky: True when a run records held-out subjects whose real motion trained its flow network (metrics.json
            ``real_motion_seen``, :func:`icegan.report.motion_seen`): its selection prints as NOT leak-free.
        datasets_of: (S,) the dataset of each subject, in the order of ``subjects``: the predictions' ``dataset``
            column (:func:`load_run_set`); None: the prefix of each subject id (``casme2/sub01`` → ``casme2``,
            :func:`icegan.data.features.subject_dataset`).
        protocol: the LOSO protocol of the runs (``CDE``, ``HDE``, ``SDE``; their header's ``protocol``); None where
            the header records none (a merge of runs, bench/merge_runs.py, records their ``protocols``).
        null_run: True when the runs are null runs (``data.permute_labels`` >= 0, :func:`icegan.report.is_null_run`):
            the label carries :data:`icegan.report.NULL_RUN_TAG`.
    """
    label: str
    runs: list[Path]
    subjects: list[str]
    confusions: np.ndarray
    clips: pd.DataFrame
    oracle: bool
    label_set: str = "megc2019"
    leaky: bool = False
    datasets_of: Optional[list[str]] = None
    protocol: Optional[str] = None
    null_run: bool = False

    def subject_datasets(self) -> list[str]:
        """(S,) the dataset of each subject (:attr:`datasets_of`, else the prefix of its id): the stratum of
        ``bootstrap_compare(..., stratify=True)`` and the scope of :meth:`restrict`."""
        return list(self.datasets_of) if self.datasets_of is not None else [subject_dataset(s) for s in self.subjects]

    def datasets(self) -> list[str]:
        """The datasets of the subjects (``smic``, ``casme2``, ``samm``; :meth:`subject_datasets`), in the order of
        every table (:func:`icegan.protocol.dataset_order`)."""
        from icegan.protocol import dataset_order
        return dataset_order(set(self.subject_datasets()))

    def restrict(self, dataset: str) -> "RunSet":
        """The same runs scored on one dataset's subjects only (their clips were predicted by the same models).

        Raises:
            ValueError: no subject of ``dataset``.
        """
        of = self.subject_datasets()
        keep = [i for i, d in enumerate(of) if d == dataset]
        if not keep:
            raise ValueError(f"'{self.label}' has no subject of dataset '{dataset}'")
        subjects = [self.subjects[i] for i in keep]
        clips = self.clips[self.clips["subject"].isin(subjects)].reset_index(drop=True)
        return RunSet(self.label, self.runs, subjects, self.confusions[:, keep], clips, self.oracle, self.label_set,
                      self.leaky, None if self.datasets_of is None else [of[i] for i in keep], self.protocol,
                      self.null_run)


def comparison_scopes(sets: Sequence[RunSet], per_dataset: bool) -> list[tuple[str, list[RunSet]]]:
    """The scopes of a comparison, as ``icegan compare`` and ``icegan suite`` draw them: ``("all", sets)``, then with
    ``per_dataset`` one ``(dataset, sets restricted to it)`` per dataset (:meth:`RunSet.datasets`), only where the
    subjects are of more than one dataset (one dataset's table would repeat the full one).

    Raises:
        ValueError: with ``per_dataset``, entries that put a subject in different datasets
            (:func:`check_same_datasets`); without it the datasets play no part and are not compared.
    """
    if per_dataset:
        check_same_datasets(sets)
    scopes = [("all", list(sets))]
    if per_dataset and len(sets[0].datasets()) > 1:
        scopes += [(d, [s.restrict(d) for s in sets]) for d in sets[0].datasets()]
    return scopes


def shown_scopes(scopes: Sequence[tuple[str, Sequence[RunSet]]]) -> tuple[int, int]:
    """What ``icegan compare`` and ``icegan suite``'s page draw of the scopes of :func:`comparison_scopes`: (the index
    of the last scope with a table, under which the legend goes; -1 for none; the paired Δ intervals of all those
    tables together, ΔUF1 and ΔUAR of each entry but the baseline, which the legend counts,
    :func:`comparison_table`'s ``paired_intervals``). A scope of fewer than two subjects has no table (a subject
    bootstrap needs two: a dataset of one subject, or a max_folds=1 run)."""
    shown = [k for k, (_, scoped) in enumerate(scopes) if len(scoped[0].subjects) >= 2]
    return (shown or [-1])[-1], 2 * (len(scopes[0][1]) - 1) * len(shown)      # scopes[0]: all, every entry


def scope_title(scope: str, sets: Sequence[RunSet]) -> str:
    """Heading of one comparison scope, as ``icegan compare`` and ``icegan suite`` write it: ``Full (68 subjects)``
    for ``"all"``, else the dataset's name (``CASME II (24 subjects)``)."""
    from icegan.protocol import DATASET_TITLES
    name = "Full" if scope == "all" else DATASET_TITLES.get(scope, scope)
    n = len(sets[0].subjects)
    return f"{name} ({n} subject{'' if n == 1 else 's'})"


def subject_confusions(pred: pd.DataFrame, subjects: Sequence[str], n_classes: int = 3) -> np.ndarray:
    """(S, C, C) confusion counts of each subject's clips (rows of ``pred``: subject, y_true, y_pred).

    Raises:
        ValueError: a subject not in ``subjects``; class ids that are not whole numbers (1.7, NaN: the message names
            the column, :func:`icegan.metrics.check_whole_ids`) or outside 0..n_classes-1.
    """
    index = {s: i for i, s in enumerate(subjects)}
    mapped = pred["subject"].map(index)
    if mapped.isna().any():
        raise ValueError(f"prediction of an unknown subject {pred['subject'][mapped.isna()].iloc[0]}")
    s = mapped.to_numpy()
    for col in ("y_true", "y_pred"):
        check_whole_ids(col, pred[col].to_numpy())
    t, p = pred["y_true"].to_numpy(int), pred["y_pred"].to_numpy(int)
    if ((t < 0) | (t >= n_classes) | (p < 0) | (p >= n_classes)).any():
        raise ValueError(f"class ids outside 0..{n_classes - 1} in predictions")
    flat = np.bincount((s.astype(int) * n_classes + t) * n_classes + p, minlength=len(subjects) * n_classes ** 2)
    return flat.reshape(len(subjects), n_classes, n_classes)


def _read_predictions(run: Path) -> tuple[dict, pd.DataFrame]:
    """A finished run's header and predictions (:func:`icegan.ensemble.read_finished_run`, any selection), by subject
    and clip.

    Raises:
        ValueError: (:class:`icegan.ensemble.EnsembleError`) a missing, unfinished or damaged run: the message names the
            file (a header that is not JSON, an empty or cut-short ``predictions.csv``) and says to rerun the run.
    """
    from icegan.ensemble import read_finished_run
    header, pred = read_finished_run(run)
    return header, pred.sort_values(["subject", "clip"], kind="stable").reset_index(drop=True)


def load_run_set(label: str, runs: Sequence[str | Path]) -> RunSet:
    """Read finished runs (one entry) into per-subject confusion matrices.

    A run is a folder of ``icegan loso`` or train.py (``run.json`` + ``predictions.csv``) or of
    ``icegan ensemble`` (``ensemble.json`` + ``predictions.csv``). Runs cut to their first folds by ``max_folds`` give
    the entry's label their tag (``label [PARTIAL: k of n folds]``, :func:`icegan.protocol.partial_tag`), and null
    runs (``data.permute_labels`` >= 0, :func:`icegan.report.is_null_run`) the tag ``[NULL RUN]`` after it, which
    every table, CSV and plot of the comparison shows. :attr:`RunSet.protocol` is the header's ``protocol``.

    The runs of one entry must be seeds of one recipe (:func:`icegan.report.check_one_recipe`, as ``icegan table``
    requires): their statistic is the mean over them. K (the classes of the confusion matrices) is read from the
    runs' score columns (their label set, :func:`icegan.labels.label_set_of_columns`). The dataset of a subject
    (:attr:`RunSet.datasets_of`) is read from the first run's ``dataset`` column where it has one (an empty cell, or
    no such column: the prefix of the subject id).

    Raises:
        ValueError: a missing, unfinished or damaged run (names the damaged file), or runs of one entry that mix
            oracle and honest selection, are not seeds of one recipe (names the entry, two runs and the keys they
            differ in, and says to give each recipe its own entry, LABEL=GLOB; checked before the clips, so runs of
            two recipes that also cover other clips are named by their keys), or, seeds of one recipe, differ in
            clips or labels (the message names the runs), or a subject with clips of two datasets in the ``dataset``
            column (names the file, the subject and the datasets).
    """
    runs = [Path(r) for r in runs]
    if not runs:
        raise ValueError(f"entry '{label}': no runs")
    headers, preds = zip(*(_read_predictions(r) for r in runs))
    oracle = {bool(h.get("oracle_epoch")) for h in headers}
    if len(oracle) > 1:
        raise ValueError(f"entry '{label}': mixes oracle-epoch and honest runs")
    from icegan.report import NULL_RUN_TAG, check_one_recipe, is_null_run, motion_seen
    check_one_recipe(label, runs)       # before the clips: runs of two recipes (other data, too) named by their keys
    keys = preds[0][["subject", "clip", "y_true"]]
    for r, p in zip(runs[1:], preds[1:]):
        if not p[["subject", "clip", "y_true"]].equals(keys):
            raise ValueError(f"entry '{label}': {r} and {runs[0]} differ in clips or labels; runs of one entry must "
                             "cover the same clips")
    subjects = subject_order(keys["subject"].unique())
    from icegan.labels import label_set_of_columns
    sets = {label_set_of_columns(p.columns, str(r)).name for r, p in zip(runs, preds)}
    if len(sets) > 1:
        raise ValueError(f"entry '{label}': its runs are of different label sets ({', '.join(sorted(sets))}); "
                         "runs of one entry must score the same classes")
    label_set = label_set_of_columns(preds[0].columns)
    n_classes = label_set.n_classes
    cms = np.stack([subject_confusions(p, subjects, n_classes) for p in preds])
    from icegan.protocol import read_partial_tag
    partial = "".join(sorted({read_partial_tag(r) for r in runs} - {""}))   # max_folds smoke runs say so, as in table
    null = any(is_null_run(r) for r in runs)                 # labels permuted: chance by design, tagged as in table
    protocols = {h.get("protocol") for h in headers}
    protocol = protocols.pop() if len(protocols) == 1 and isinstance(next(iter(protocols)), str) else None
    return RunSet(label + partial + (NULL_RUN_TAG if null else ""), runs, subjects, cms, keys.reset_index(drop=True),
                  oracle.pop(), label_set.name, any(motion_seen(r) for r in runs),
                  _datasets_of(preds[0], subjects, runs[0]), protocol, null)


def clip_datasets(pred: pd.DataFrame) -> pd.Series:
    """The dataset of each row (clip) of ``pred`` (a predictions.csv table with a ``subject`` column), as str:
    its ``dataset`` cell, else (an empty cell, or no such column) the prefix of its subject id
    (:func:`icegan.data.features.subject_dataset`). Same index as ``pred``."""
    prefix = pred["subject"].map(subject_dataset)
    return (pred["dataset"].where(pred["dataset"].notna(), prefix) if "dataset" in pred.columns else prefix).astype(str)


def _datasets_of(pred: pd.DataFrame, subjects: Sequence[str], run: Path) -> Optional[list[str]]:
    """The dataset of each of ``subjects`` from ``pred``'s ``dataset`` column (an empty cell: the subject id's
    prefix), or None without that column (every subject's prefix, :meth:`RunSet.subject_datasets`).

    Raises:
        ValueError: a subject whose clips name two datasets (names the file, the subject and the two datasets).
    """
    if "dataset" not in pred.columns:
        return None
    ds = clip_datasets(pred)
    found = ds.groupby(pred["subject"]).unique()
    for s in subjects:
        if len(found[s]) > 1:
            raise ValueError(f"{run / 'predictions.csv'}: subject '{s}' has clips of two datasets in the dataset "
                             f"column ({', '.join(sorted(found[s])[:2])}); a subject belongs to one dataset")
    return [str(found[s][0]) for s in subjects]


def _statistic(cms: np.ndarray):
    """Vectorised statistic for scipy.stats.bootstrap: resampled subject indices (..., S) → mean over runs of
    (UF1, UAR), stacked on the first axis. Called by :func:`bootstrap_compare`'s ``joint`` with the subjects on the
    last axis of ``idx``, the axis it reduces."""
    def stat(idx):
        idx = np.asarray(idx).astype(int)
        pooled = cms[:, idx].sum(axis=-3)                # (R, ..., C, C)
        uf1, uar = uf1_uar_from_confusion(pooled)
        return np.stack([uf1.mean(0), uar.mean(0)])
    return stat


def stratified_indices(strata: Sequence[str], resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Subject indices of ``resamples`` bootstrap resamples drawn within each stratum (dataset).

    Every resample draws, with replacement, as many subjects of each stratum as the stratum has, so each
    resample keeps the design's mix of datasets (the stratified bootstrap; Efron & Tibshirani 1993, ch. 13,
    "more complicated data structures": resample within each of the independent samples).

    Args:
        strata: (S,) the stratum of each subject (e.g. its dataset prefix), in the subjects' order.
        resamples: B, the number of resamples.
        rng: the random generator (the same seed gives the same draws).

    Returns:
        (B, S) int indices into the subjects; in every row, the indices of each stratum come from that stratum
        only, and each stratum fills as many columns as it has subjects.
    """
    strata = np.asarray(strata)
    parts = []
    for value in dict.fromkeys(strata.tolist()):          # strata in order of first appearance
        members = np.flatnonzero(strata == value)
        parts.append(members[rng.integers(0, len(members), size=(resamples, len(members)))])
    return np.concatenate(parts, axis=1)


#: fewest bootstrap resamples accepted: fewer leave the tails of a percentile interval to a handful of draws
MIN_RESAMPLES = 100


def check_stratify(entry: RunSet, name: str = "stratify") -> None:
    """Refuse a stratified bootstrap (:func:`bootstrap_compare`'s ``stratify``) of subjects that are each the only
    subject of their dataset (:meth:`RunSet.subject_datasets`): e.g. ids sub00..sub09 with no dataset prefix and no
    ``dataset`` column. Every resample would be the original sample and every interval of width zero.

    Raises:
        ValueError: names ``name`` (``--stratify`` for ``icegan compare``), the entry, the file the datasets were
            read from and why.
    """
    strata = entry.subject_datasets()
    if len(strata) < 2 or len(set(strata)) < len(strata):       # one subject: refused by bootstrap_compare itself
        return
    where = _datasets_source(entry)
    raise ValueError(f"{name}: each of the {len(strata)} subjects of '{entry.label}' is the only subject of its "
                     f"dataset ({where}: {', '.join(strata[:3])}{', ...' if len(strata) > 3 else ''}), so every "
                     "resample drawn within the datasets is the original sample and every interval would have width "
                     f"zero; name each subject's dataset (a dataset column, or ids such as casme2/sub01) or leave out "
                     f"{name}")


def _datasets_source(entry: RunSet) -> str:
    """Where ``entry``'s subjects' datasets were read from: its first run's ``predictions.csv`` and either its dataset
    column or the prefixes of its subject ids (:meth:`RunSet.subject_datasets`)."""
    return (f"{entry.runs[0] / 'predictions.csv'}: " if entry.runs else "") + \
        ("its dataset column" if entry.datasets_of is not None else "the prefixes of its subject ids")


def check_same_datasets(sets: Sequence[RunSet]) -> None:
    """Refuse entries that put one subject in different datasets (:meth:`RunSet.subject_datasets`, e.g. one entry's
    runs with a ``dataset`` column, another's without it over unprefixed ids): the strata of
    ``bootstrap_compare(..., stratify=True)`` and the per-dataset scopes would depend on which entry is read.
    Subjects are matched by :func:`icegan.protocol.subject_key` (``smic/s1`` is ``smic/s01``, as the clips' check of
    :func:`bootstrap_compare` pairs them); subjects of only one entry are left to that check.

    Raises:
        ValueError: names both entries, the files their datasets were read from and one subject (as the first entry
            spells it) with its two datasets.
    """
    if not sets:
        return
    from icegan.protocol import subject_key
    ref = sets[0]
    for s in sets[1:]:
        theirs = {subject_key(x): d for x, d in zip(s.subjects, s.subject_datasets())}
        for subject, d in zip(ref.subjects, ref.subject_datasets()):
            other = theirs.get(subject_key(subject), d)
            if other != d:
                raise ValueError(f"'{s.label}' and '{ref.label}' put subject '{subject}' in different datasets: "
                                 f"'{other}' ({_datasets_source(s)}) and '{d}' ({_datasets_source(ref)}); "
                                 "the entries must agree on each subject's dataset (a dataset column in every run, or "
                                 "ids such as casme2/sub01)")


def check_bootstrap_settings(resamples: int, confidence: Optional[float] = None, *, resamples_name: str = "resamples",
                             confidence_name: str = "confidence") -> None:
    """Refuse bootstrap settings no interval can be computed from: the one place of these bounds, for
    :func:`bootstrap_compare` (its argument names), ``icegan compare`` (its flags: ``--resamples``, ``--confidence``)
    and a suite file's ``resamples`` key.

    Args:
        resamples: bootstrap resamples B: an int (or NumPy integer), at least :data:`MIN_RESAMPLES`; a float is
            refused even when whole (200.0), its message naming the type given.
        confidence: level of the two-sided percentile intervals, in the open interval (0, 1); None: not checked.
        resamples_name, confidence_name: what the messages call them (an argument's, a flag's or a key's name).

    Raises:
        ValueError: the first bad value, naming it by ``resamples_name`` / ``confidence_name``, with the allowed
            range and the value given.
    """
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)):   # NaN, 150.5, 200.0, True
        raise ValueError(f"{resamples_name} must be a whole number of resamples (an int >= {MIN_RESAMPLES}), got "
                         f"{resamples!r} (a {type(resamples).__name__}, not an int)")
    if resamples < MIN_RESAMPLES:
        raise ValueError(f"{resamples_name} must be >= {MIN_RESAMPLES} (percentile intervals need that many "
                         f"resamples; the default is 9999), got {resamples}")
    if confidence is not None and not 0 < confidence < 1:
        raise ValueError(f"{confidence_name} must be in (0, 1), got {confidence}")


def bootstrap_compare(sets: Sequence[RunSet], baseline: int = 0, resamples: int = 9999, confidence: float = 0.95,
                      seed: int = 0, stratify: bool = False) -> list[dict]:
    """Subject-bootstrap intervals of UF1 and UAR for each entry and of its paired difference to the baseline.

    Args:
        sets: entries (:func:`load_run_set`) over the same clips and labels; subjects and clips are matched by
            :func:`icegan.protocol.subject_key` (the SMIC tree's ``smic/s1``, ``s1_ne_01`` is the MEGC2019 table's
            ``smic/s01``, ``s01_ne_01``), and the rows and messages spell them as the baseline does.
        baseline: index of the entry the differences are taken against.
        resamples: bootstrap resamples B (≥ :data:`MIN_RESAMPLES`).
        confidence: level of the two-sided percentile intervals, in (0, 1).
        seed: seed of the resampling (the same seed gives the same intervals).
        stratify: resample the subjects within each dataset (:func:`stratified_indices`), so that every resample
            has the composite's number of SMIC, CASME II and SAMM subjects; the intervals then leave out the
            spread that comes from a changing mix of datasets. With subjects of one dataset only, it changes
            nothing (the same draws as without it). Default False: one pool of subjects, as in every interval
            recorded in docs/benchmarks.md. A subject's dataset is :meth:`RunSet.subject_datasets` (the
            predictions' ``dataset`` column, else the prefix of its id). Where each subject is the only one of its
            dataset, every resample is the original sample (intervals of width zero; :func:`check_stratify`).

    Returns:
        One dict per entry: label, runs (count), oracle, leaky (:attr:`RunSet.leaky`), null_run
        (:attr:`RunSet.null_run`), label_set, protocol (:attr:`RunSet.protocol`), dataset (of SDE runs, the dataset of
        their subjects; else None), UF1, UAR (the point values: mean
        over the entry's runs on all subjects), UF1_ci, UAR_ci ((low, high)), and for entries other than the baseline
        dUF1, dUAR (point differences), dUF1_ci, dUAR_ci, p_better (share of resamples where the entry's UF1 is strictly
        above the baseline's) and p_tie (share where the two are equal, e.g. runs that differ on a few subjects only, in
        the resamples that draw none of them).

    Raises:
        ValueError: entries over different clips or labels (the message names the first differing
            ``subject/clip label y``), with ``stratify`` entries that put a subject in
            different datasets (:func:`check_same_datasets`), fewer than two subjects, a bad baseline, resamples
            < 100, or a confidence outside (0, 1) (:func:`check_bootstrap_settings`); entries of different
            protocols (:attr:`RunSet.protocol`, e.g. CDE and HDE over the same clips: names both entries, a run of
            each and the two protocols, as ``icegan ensemble`` refuses them; an entry whose header records no single
            protocol, a merge of SDE runs, is not checked).
    """
    from scipy.stats import bootstrap

    if not sets:
        raise ValueError("nothing to compare")
    if not 0 <= baseline < len(sets):
        raise ValueError(f"baseline index {baseline} out of range for {len(sets)} entries")
    check_bootstrap_settings(resamples, confidence)
    ref = sets[baseline]
    if len(ref.subjects) < 2:
        raise ValueError(f"a subject bootstrap needs at least two subjects; '{ref.label}' has "
                         f"{len(ref.subjects)} ({', '.join(map(str, ref.subjects))})")
    sets = [_in_spellings_of(s, ref) for s in sets]         # smic/s1 paired with the baseline's smic/s01
    for s in sets:
        if s.protocol is not None and ref.protocol is not None and s.protocol != ref.protocol:
            raise ValueError(f"'{s.label}' ({_first_run(s)}) differs from '{ref.label}' ({_first_run(ref)}) in "
                             f"'protocol' ({s.protocol!r} vs {ref.protocol!r}); only runs of the same LOSO can be "
                             "compared (their models were trained on other subjects)")
        if s.confusions.shape[-1] != ref.confusions.shape[-1] or s.label_set != ref.label_set:
            raise ValueError(f"'{s.label}' scores {s.confusions.shape[-1]} classes ({s.label_set}) and '{ref.label}' "
                             f"{ref.confusions.shape[-1]} ({ref.label_set}, data.labels): runs of different label "
                             "sets cannot be compared")
        if not s.clips.equals(ref.clips):
            from icegan.ensemble import _first_diff          # icegan ensemble's words for the same refusal

            def rows(c: pd.DataFrame) -> list[str]:
                return [f"{subj}/{clip} label {y}" for subj, clip, y in c[["subject", "clip", "y_true"]].to_numpy()]
            a, b = rows(s.clips), rows(ref.clips)
            count = f"{len(a)} vs {len(b)} clips, " if len(a) != len(b) else ""
            first = _first_diff(a, b, (f"'{s.label}'", f"'{ref.label}'"))    # a clip only the longer one has
            raise ValueError(f"'{s.label}' and '{ref.label}' cover different clips or labels ({count}first difference "
                             f"{first}); a paired comparison needs the same LOSO over the same data")
    if stratify:            # the strata are the baseline's datasets: every entry must agree on them
        check_same_datasets([ref, *(s for k, s in enumerate(sets) if k != baseline)])
    n_subj = len(ref.subjects)
    # all entries' runs in one array, so one resample draws the same subjects for every entry (paired)
    stats = [_statistic(s.confusions) for s in sets]

    def joint(idx, axis=-1):
        # scipy's vectorized bootstrap calls statistic(resamples, axis=-1), its resamples' subjects always moved to
        # the last axis: the axis _statistic reduces, so the argument is part of scipy's call, not one to follow
        del axis
        return np.concatenate([f(idx) for f in stats])       # (2 · entries, ...)

    alpha = (1 - confidence) / 2
    strata = ref.subject_datasets()
    if stratify and len(set(strata)) > 1:
        idx = stratified_indices(strata, resamples, np.random.default_rng(seed))
        dist = np.concatenate([joint(idx[i:i + 500]) for i in range(0, resamples, 500)], axis=1)
        low, high = np.percentile(dist, [100 * alpha, 100 * (1 - alpha)], axis=1)
    else:
        res = bootstrap((np.arange(n_subj),), joint, n_resamples=resamples, vectorized=True, method="percentile",
                        confidence_level=confidence, rng=np.random.default_rng(seed), batch=500)
        dist = res.bootstrap_distribution                     # (2 · entries, B)
        low, high = res.confidence_interval.low, res.confidence_interval.high
    point = joint(np.arange(n_subj))
    out = []
    for k, s in enumerate(sets):
        sde = s.datasets() if s.protocol == "SDE" else []
        row = {"label": s.label, "runs": len(s.runs), "oracle": s.oracle, "leaky": s.leaky,
               "label_set": s.label_set, "null_run": s.null_run, "protocol": s.protocol,
               "dataset": sde[0] if len(sde) == 1 else None,
               "UF1": float(point[2 * k]),
               "UAR": float(point[2 * k + 1]),
               "UF1_ci": (float(low[2 * k]), float(high[2 * k])),
               "UAR_ci": (float(low[2 * k + 1]), float(high[2 * k + 1]))}
        if k != baseline:
            for j, key in ((0, "UF1"), (1, "UAR")):
                d = dist[2 * k + j] - dist[2 * baseline + j]
                row[f"d{key}"] = float(point[2 * k + j] - point[2 * baseline + j])
                row[f"d{key}_ci"] = (float(np.quantile(d, alpha)), float(np.quantile(d, 1 - alpha)))
            # equal up to float rounding (e.g. the same per-class F1s summed in another order) is a tie
            tie = np.isclose(dist[2 * k], dist[2 * baseline], rtol=0.0, atol=1e-12)
            row["p_better"] = float(np.mean((dist[2 * k] > dist[2 * baseline]) & ~tie))
            row["p_tie"] = float(np.mean(tie))
        out.append(row)
    return out


def _in_spellings_of(s: RunSet, ref: RunSet) -> RunSet:
    """``s`` with its subject and clip ids that :func:`icegan.protocol.subject_key` makes equal to ``ref``'s spelt as
    in ``ref`` (the MEGC2019 table's ``smic/s01``, ``s01_ne_01`` for the SMIC tree's ``smic/s1``, ``s1_ne_01``), its
    clips sorted again and, where it then has ``ref``'s subjects, its subjects (confusions, datasets) in ``ref``'s
    order, so that a resample draws the same subjects of both. Only a key that one id of each side has is respelt
    (:func:`icegan.protocol.spellings_like`); other ids are left as they are: the clips' check of
    :func:`bootstrap_compare` names the first difference. ``ref`` itself, or ``s`` without a clip column, is
    returned unchanged."""
    if s is ref or "clip" not in s.clips.columns or "clip" not in ref.clips.columns:
        return s
    from dataclasses import replace

    from icegan.protocol import respelt_like, spellings_like, subject_key    # icegan ensemble's matching too
    subject_of = spellings_like(s.subjects, ref.subjects, subject_key)
    clips = respelt_like(s.clips, ref.clips).sort_values(["subject", "clip"], kind="stable")
    subjects = [subject_of.get(x, x) for x in s.subjects]
    if sorted(subjects) != sorted(ref.subjects):
        return replace(s, subjects=subjects, clips=clips.reset_index(drop=True))
    order = [subjects.index(x) for x in ref.subjects]
    return replace(s, subjects=list(ref.subjects), confusions=s.confusions[:, order],
                   clips=clips.reset_index(drop=True),
                   datasets_of=None if s.datasets_of is None else [s.datasets_of[i] for i in order])


def _first_run(s: RunSet) -> str:
    """The first run folder of ``s`` (and how many more), as a message names the entry's runs."""
    if not s.runs:
        return "no run folder"
    return str(s.runs[0]) + (f" and {len(s.runs) - 1} more" if len(s.runs) > 1 else "")


def _without_partial_tag(label: str) -> str:
    """``label`` without the ``[PARTIAL: k of n folds]`` tag(s) :func:`load_run_set` gives a run cut by max_folds, and
    without the ``[NULL RUN]`` tag of a null run: the baseline as a header, a caption or a plot title names it (its own
    row keeps the tags)."""
    from icegan.report import NULL_RUN_TAG
    return re.sub(r" \[PARTIAL: [^\]]*\]", "", label).replace(NULL_RUN_TAG, "")


def comparison_table(rows: Sequence[dict], baseline: int = 0, confidence: float = 0.95, resamples: int = 9999,
                     fmt: str = "markdown", legend: bool = True, scope: str = "",
                     label: str = "tab:icegan-compare", stratified: bool = False,
                     paired_intervals: Optional[int] = None, csv_scope: Optional[str] = None) -> str:
    """The rows of :func:`bootstrap_compare` as a Markdown table (with a legend unless ``legend=False``), a LaTeX
    booktabs tabular (the same cells, ``value [low, high]``, labels escaped, one beginning with ``[`` or ``*``
    guarded, the legend as ``%`` comment lines) in a ``table*`` float with a caption and ``\\label{label}``
    (:func:`icegan.report.latex_float`; ``scope``, e.g. ``"CASME II (4 subjects)"``, is named in the caption), or
    CSV (``csv_scope``, e.g. ``"casme2"`` or ``"all"``: a first column ``scope`` holding it in every row, for tables
    of several scopes stacked into one CSV; None: no such column). ``stratified``: the rows come from
    ``bootstrap_compare(..., stratify=True)`` over subjects of several datasets; the legend and the caption say that
    the subjects were drawn within each dataset. Rows of another label set than MEGC2019's (their ``label_set``,
    ``data.labels``) name their classes, as ``icegan table`` does: a ``classes`` CSV column, a ``Classes:`` line in
    the Markdown legend, the classes in the LaTeX caption; MEGC2019 rows give the table as before. The selection
    cell is :func:`icegan.report.selection_word` (honest, ORACLE, NOT leak-free), as ``icegan table``'s. The Δ headers
    and the caption name the baseline without the ``[PARTIAL: k of n folds]`` tag of a run cut by max_folds, which
    its row shows. A null run's label carries ``[NULL RUN]`` (:func:`load_run_set`; its row shows it, the headers
    leave it out as the partial tag); where a row is one (``null_run``), the legend says what the tag means
    (:data:`icegan.report.NULL_RUN_LEGEND`). The rows' protocol (their ``protocol``, :func:`bootstrap_compare`) is a
    ``protocol`` CSV column (empty where unknown; no column for rows without that key); HDE and SDE rows name it in
    the Markdown legend (``Protocol: HDE leave-one-dataset-out.``, ``Protocol: SDE LOSO on CASME II.``,
    :func:`icegan.protocol.protocol_title`, the SDE dataset from the rows' ``dataset``) and in the LaTeX caption and
    legend; CDE rows give the table as before.

    The legend also says how many paired Δ intervals the page shows (``paired_intervals``, all its tables together;
    None: this table's, ΔUF1 and ΔUAR of each entry but the baseline), that each is at ``confidence`` with no
    correction for multiple comparisons (about 1 − ``confidence`` of them exclude 0 by chance when no entry differs),
    and that with few subjects a percentile interval tends to be narrower than its nominal level; no such sentence
    when there are none.

    Raises:
        ValueError: ``fmt`` not markdown / latex / csv.
    """
    from icegan.labels import DEFAULT_LABELS, get_label_set
    from icegan.report import selection_word
    # the baseline as the header and the caption name it: without the tag its row carries, which else stood in each of
    # the three Δ columns' headers too
    base = _without_partial_tag(rows[baseline]["label"])
    pct = f"{100 * confidence:g} %"
    label_set = get_label_set(rows[baseline].get("label_set", DEFAULT_LABELS))
    named = label_set.name != DEFAULT_LABELS       # a Classes column / line, only then (as icegan table)
    protocol = rows[baseline].get("protocol")       # one for every row: bootstrap_compare refuses a mix
    proto = ""                                      # HDE and SDE named in the caption and legend, CDE as before
    if protocol not in (None, "CDE"):
        from icegan.protocol import DATASET_TITLES, protocol_title
        sde = rows[baseline].get("dataset")
        proto = protocol_title(protocol) + (f" on {DATASET_TITLES.get(sde, sde)}" if sde else "")
    if fmt == "csv":
        flat = []
        for r in rows:
            f = {} if csv_scope is None else {"scope": csv_scope}
            f |= {"label": r["label"], "runs": r["runs"],
                  "selection": selection_word(r["oracle"], r.get("leaky", False), "ORACLE")}
            if "protocol" in r:
                f["protocol"] = r["protocol"] or ""
            if named:
                f["classes"] = label_set.name
            for key in ("UF1", "UAR", "dUF1", "dUAR"):
                if key in r:
                    f[key], f[f"{key}_low"], f[f"{key}_high"] = r[key], *r[f"{key}_ci"]
            if "p_better" in r:
                f["p_better"] = r["p_better"]
                f["p_tie"] = r.get("p_tie", 0.0)
            flat.append(f)
        from icegan.csv_names import csv_quoting
        table = pd.DataFrame(flat)
        return table.to_csv(index=False, float_format="%.4f", quoting=csv_quoting(table))
    if fmt not in ("markdown", "latex"):
        raise ValueError(f"unknown format {fmt!r}; expected markdown, latex or csv")
    from icegan.report import latex_escape, latex_float, latex_row_start, markdown_cell
    latex = fmt == "latex"
    esc = latex_escape if latex else markdown_cell  # labels as LaTeX text, or as Markdown table cells
    lead = (lambda text: latex_row_start(esc(text))) if latex else esc     # a row's first cell: "[ours]" guarded
    percent = "\\%" if latex else " %"

    def ci(v, lohi):
        if latex:                        # numbers in math mode: a negative difference gets a minus sign
            return f"${v:.4f}$ [${lohi[0]:.4f}$, ${lohi[1]:.4f}$]"
        return f"{v:.4f} [{lohi[0]:.4f}, {lohi[1]:.4f}]"

    less, more = ("$<$", "$>$") if latex else ("<", ">")

    def share(p: float) -> str:
        """``p`` (a share in [0, 1]) in percent to one decimal; a share that is not exactly 0 or 1 but would round
        to 0.0 % or 100.0 % is ``<0.1 %`` or ``>99.9 %``, so that only exact shares read as none or all."""
        if 0 < p < 0.0005:
            return f"{less}0.1{percent}"
        if 0.9995 <= p < 1:
            return f"{more}99.9{percent}"
        return f"{100 * p:.1f}{percent}"

    def better(r) -> str:
        """The share of resamples with a strictly higher UF1, and the share of ties when there are any
        (:func:`share`)."""
        tie = r.get("p_tie", 0.0)
        return share(r["p_better"]) + (f" (ties {share(tie)})" if tie > 0 else "")

    body = []                            # the cells of every row, in either format
    for r in rows:
        d = (ci(r["dUF1"], r["dUF1_ci"]), ci(r["dUAR"], r["dUAR_ci"]), better(r)) if "dUF1" in r \
            else ("(baseline)", "", "")
        sel = selection_word(r["oracle"], r.get("leaky", False), "ORACLE epoch" if latex else "**ORACLE**")
        body.append([lead(r["label"]), str(r["runs"]), sel, ci(r["UF1"], r["UF1_ci"]),
                     ci(r["UAR"], r["UAR_ci"]), *d])
    within = " within each dataset" if stratified else ""
    own = 2 * sum("dUF1" in r for r in rows)             # ΔUF1 and ΔUAR of each entry but the baseline
    n_paired = own if paired_intervals is None else paired_intervals
    where = " in the tables above" if n_paired != own else ""
    chance = f"{100 * (1 - confidence):.3g} %"
    several = (f" The {n_paired} paired Δ intervals (ΔUF1 and ΔUAR){where} are each at "
               f"{pct} without correction for multiple comparisons: when no entry differs from the "
               f"baseline, about {chance} of them exclude 0 by chance; and with few subjects (e.g. one small dataset's "
               f"table) a percentile interval tends to be narrower than its nominal {pct}." if n_paired else "")
    note = (f"Subject-level bootstrap: {resamples} resamples of the subjects with replacement{within} (the same "
            f"subjects for every entry in a resample, so differences are paired), percentile intervals. Several runs "
            f"in an entry: the mean over its runs. Resamples UF1 > baseline counts strictly higher UF1s; equal ones "
            f"are given as ties. Intervals describe new subjects like these, not a recipe chosen "
            f"after seeing these results." + several + (f" Classes: {label_set.title} (data.labels={label_set.name})."
                                                        if named else "")
            + (f" Protocol: {proto}." if proto else ""))
    if any(r.get("null_run") for r in rows):            # what the tag of a null run's label means
        from icegan.report import NULL_RUN_LEGEND
        note += " " + NULL_RUN_LEGEND
    if latex:
        b, p = esc(base), pct.replace("%", "\\%")
        head = ["Entry", "Runs", "Selection", f"UF1 [{p} CI]", f"UAR [{p} CI]", f"$\\Delta$UF1 vs {b} [{p} CI]",
                f"$\\Delta$UAR vs {b} [{p} CI]", f"Resamples UF1 $>$ {b}"]
        tab = pd.DataFrame(body, columns=head).to_latex(index=False, escape=False, column_format="lrlccccr")
        where = f" on {esc(scope)}" if scope else ""
        classes = f" of {esc(label_set.title)}" if named else ""
        runs = f" of {esc(proto)} runs" if proto else ""
        caption = (f"UF1 and UAR{runs}{classes}{where} with {p} subject-bootstrap intervals ({resamples} resamples of the "
                   f"subjects{within}, the same for every entry), and the paired differences to {b}.")
        return latex_float(tab, caption, label) + ("" if not legend else "".join(f"% {ln}\n"
                                                                                  for ln in textwrap.wrap(note, 110)))

    mb = esc(base)
    lines = [f"| entry | runs | selection | UF1 [{pct} CI] | UAR [{pct} CI] | ΔUF1 vs {mb} [{pct} CI] | "
             f"ΔUAR vs {mb} [{pct} CI] | resamples UF1 > {mb} |",
             "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    if not legend:
        return "\n".join(lines) + "\n"
    lines.append("")
    lines.append(note)
    return "\n".join(lines) + "\n"


def subject_interval(pred: pd.DataFrame, resamples: int = 9999, confidence: float = 0.95, seed: int = 0,
                     n_classes: Optional[int] = None) -> Optional[dict]:
    """Subject-bootstrap interval of one run's pooled UF1 and UAR.

    Args:
        pred: predictions with columns subject, y_true, y_pred (one row per clip).
        resamples, confidence, seed: as in :func:`bootstrap_compare`.
        n_classes: K; None reads it from ``pred``'s score columns (:func:`icegan.labels.label_set_of_columns`).

    Returns:
        ``{"UF1": (low, high), "UAR": (low, high), "n_subjects": S, "resamples": B, "confidence": c}``, or None
        with fewer than 2 subjects (nothing to resample).
    """
    pred = pred.assign(subject=pred["subject"].astype(str))
    subjects = subject_order(pred["subject"].unique())
    if len(subjects) < 2:
        return None
    if n_classes is None:
        from icegan.labels import label_set_of_columns
        n_classes = label_set_of_columns(pred.columns).n_classes
    one = RunSet("run", [], subjects, subject_confusions(pred, subjects, n_classes)[None],
                 pred[["subject", "clip"]] if "clip" in pred.columns else pred[["subject"]], False)
    row = bootstrap_compare([one], resamples=resamples, confidence=confidence, seed=seed)[0]
    return {"UF1": row["UF1_ci"], "UAR": row["UAR_ci"], "n_subjects": len(subjects), "resamples": resamples,
            "confidence": confidence}


def interval_line(ci: Optional[dict]) -> str:
    """A one-line console form of :func:`subject_interval`'s result (empty for None)."""
    if ci is None:
        return ""
    return (f"  {100 * ci['confidence']:g} % subject-bootstrap interval ({ci['n_subjects']} subjects): "
            f"UF1 [{ci['UF1'][0]:.4f}, {ci['UF1'][1]:.4f}]  UAR [{ci['UAR'][0]:.4f}, {ci['UAR'][1]:.4f}]")


def interval_markdown(ci: Optional[dict]) -> str:
    """One metrics.md paragraph for :func:`subject_interval`'s result (empty for None)."""
    if ci is None:
        return ""
    pct = f"{100 * ci['confidence']:g} %"
    return (f"Subject-bootstrap {pct} interval ({ci['resamples']} resamples of the {ci['n_subjects']} subjects, "
            f"percentile; `icegan compare` for paired differences between runs): "
            f"UF1 [{ci['UF1'][0]:.4f}, {ci['UF1'][1]:.4f}], UAR [{ci['UAR'][0]:.4f}, {ci['UAR'][1]:.4f}].\n")


def forest_plot(scopes: Sequence[tuple[str, Sequence[dict]]], path: str | Path, baseline: int = 0,
                confidence: float = 0.95) -> None:
    """A forest plot of :func:`bootstrap_compare` results: per scope (all subjects, then datasets), UF1 with its
    interval per entry (left) and the paired ΔUF1 to the baseline (right, with a line at 0). Oracle entries are
    drawn hollow and tagged; entries whose flow saw held-out subjects' motion are tagged NOT leak-free; null runs carry
    ``[NULL RUN]`` in their label (:func:`load_run_set`).

    Args:
        scopes: ``[(name, rows), ...]``, rows of one :func:`bootstrap_compare` call each, same entries in each.
        path: PNG file to write.

    Labels and scope names are drawn as written (:func:`icegan.protocol.plot_label`: a ``$`` is no mathtext).
    """
    from icegan.protocol import plot_label
    from icegan.report import selection_word
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows = len(scopes[0][1])
    fig, axes = plt.subplots(len(scopes), 2, figsize=(11, 0.45 * n_rows * len(scopes) + 1.2 * len(scopes)),
                             squeeze=False, sharex="col")
    base = _without_partial_tag(scopes[0][1][baseline]["label"])    # the tag stays on the baseline's own row
    pct = f"{100 * confidence:g} %"
    for (name, rows), (ax_l, ax_r) in zip(scopes, axes):
        ys = np.arange(len(rows))[::-1]
        labels = [plot_label(r["label"]) + (f" ({r['runs']} runs)" if r.get("runs", 1) > 1 else "")
                  + ("" if sel == "honest" else f" [{sel}]")
                  for r, sel in ((r, selection_word(r["oracle"], r.get("leaky", False), "ORACLE")) for r in rows)]
        for y, r in zip(ys, rows):
            face = "white" if r["oracle"] else "C0"
            ax_l.errorbar(r["UF1"], y, xerr=[[r["UF1"] - r["UF1_ci"][0]], [r["UF1_ci"][1] - r["UF1"]]], fmt="o",
                          color="C0", mfc=face, capsize=3)
            if "dUF1" not in r:
                ax_r.annotate("baseline", (0, y), xytext=(4, 0), textcoords="offset points", va="center",
                              fontsize=8, color="0.4")
            else:
                color = "C2" if r["dUF1_ci"][0] > 0 else ("C3" if r["dUF1_ci"][1] < 0 else "C7")
                ax_r.errorbar(r["dUF1"], y, xerr=[[r["dUF1"] - r["dUF1_ci"][0]], [r["dUF1_ci"][1] - r["dUF1"]]],
                              fmt="o", color=color, mfc="white" if r["oracle"] else color, capsize=3)
        for ax in (ax_l, ax_r):
            ax.set_yticks(ys)
            ax.set_ylim(-0.7, len(rows) - 0.3)
            ax.grid(axis="x", alpha=0.3)
        ax_l.set_yticklabels(labels)
        ax_r.set_yticklabels([])
        ax_r.axvline(0, color="k", lw=0.8)
        # two short titles per row (long ones ran into each other): the scope on the left, the baseline on the right
        ax_l.set_title(f"{plot_label(name)}: UF1, {pct} interval", fontsize=10, loc="left")
        ax_r.set_title(plot_label(textwrap.shorten(f"paired ΔUF1 vs {base}", width=48, placeholder="…")), fontsize=10,
                       loc="left")
    axes[-1][0].set_xlabel(f"UF1 ({pct} subject-bootstrap interval)")
    # two lines: on one, the key ran past the figure's right edge and was cut (a 6-entry suite page)
    axes[-1][1].set_xlabel("ΔUF1 to the baseline\ngreen: interval above 0, red: below 0, grey: includes 0")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)       # --plot runs/new/forest.png: the folder is made
    fig.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.15)     # nothing drawn outside the page is lost
    plt.close(fig)
