"""Nested (inner-cross-validated) selection among LOSO recipes: an honest score for "the best of these recipes".

Comparing several recipes on the same LOSO and reporting the best one is a selection on the test subjects: the
best of k noisy scores is biased upwards. Nested selection removes that bias. For every outer LOSO fold (held-out
subject s) the recipes are scored on the training subjects alone: those subjects are split by subject into
``inner_folds`` groups (:class:`sklearn.model_selection.GroupKFold`), every recipe is trained on all groups but
one and scores the left-out group, and the recipe with the best pooled inner UF1 (or UAR) is the one whose
prediction is used for s. Subject s's clips, labels and outer predictions play no part in that choice, so the
pooled outer score of the chosen predictions is an honest estimate of the whole procedure "choose among these
recipes by cross-validation, then train the choice": the standard remedy for selection bias (Varma & Simon, BMC
Bioinformatics 7:91, 2006; Cawley & Talbot, JMLR 11:2079, 2010). It is what the MEGC protocol asks of any
choice of hyper-parameters ("no model selection on the held-out subject").

Candidates are ``icegan loso`` recipes (their outer runs are ordinary finished LOSO folders) and probability
ensembles of them (inner and outer probabilities averaged with the ensemble's weights). Inner predictions are
kept in one CSV per candidate run, inner-fold count, settings and maps (``<cache>/<run folder>_k<k>_<digest>.csv``,
:func:`inner_cache_digest`), appended after every group of outer folds, so an interrupted selection resumes where it
stopped.

Cost: every candidate recipe is trained ``inner_folds`` more times per outer fold (e.g. 68 × 4 = 272 models for
the composite CDE; the grouped STSTNet engine trains them in groups as large as the outer run's).

Leave-one-dataset-out runs (``protocol=HDE``): an outer fold holds out a dataset, and its inner folds split the
training subjects (of the other datasets) by subject as above; only ``scope: all`` applies, since a fold has no
training clip of its held-out dataset.

Used by ``icegan suite`` (a ``selection`` section in the suite file, :class:`icegan.suite.SuiteSelection`).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence

import numpy as np
import pandas as pd

from flownet.io import write_text_whole, write_whole
from icegan.csv_names import csv_quoting, read_csv_names

__all__ = ["Candidate", "inner_cache_digest", "inner_cache_digests", "inner_folds", "inner_predictions", "recipe_digest",
           "select_nested", "SelectionError"]

INNER_COLUMNS = ("outer", "inner", "row", "dataset", "subject", "clip", "y_true")


class SelectionError(ValueError):
    """Candidates that cannot be selected among (the message names the candidate and what is wrong)."""


@dataclass
class Candidate:
    """One recipe to choose from.

    Attributes:
        label: its name in the tables.
        run_dir: the finished outer LOSO folder (``icegan loso``) or ensemble folder whose predictions are used
            for the folds where it is chosen.
        config: the ``icegan loso`` :class:`~icegan.commands.loso.LosoConfig` of a recipe (None for an ensemble).
        members: an ensemble's member candidates (recipes), with ``weights`` (None: equal weights).
    """
    label: str
    run_dir: Path
    config: object = None
    members: list["Candidate"] = field(default_factory=list)
    weights: Optional[list[float]] = None


def inner_folds(outer, subjects: Sequence[str], k: int, index_base: int = 0) -> list:
    """The inner folds of one outer LOSO fold: its training rows split by subject into ``k`` groups.

    Args:
        outer: an :class:`icegan.protocol.Fold` (``train_idx`` = the rows of its training subjects).
        subjects: (N,) subject id of every row of the sample table.
        k: number of inner folds, >= 2 (:class:`sklearn.model_selection.GroupKFold`: deterministic, groups of
            about equal clip counts; no subject on both sides).
        index_base: ``index`` of the first inner fold (the rest follow); it seeds a grouped network's training,
            so inner folds must not share indices with each other.

    Returns:
        ``k`` :class:`~icegan.protocol.Fold` objects with ``subject`` and ``unit`` of the outer fold (its held-out
        subject, or dataset for HDE), ``train_idx`` and
        ``test_idx`` subsets of ``outer.train_idx``; every training row is in exactly one ``test_idx``.

    Raises:
        SelectionError: ``k`` < 2, or fewer than ``k`` training subjects.
    """
    from sklearn.model_selection import GroupKFold

    from icegan.protocol import Fold

    train = np.asarray(outer.train_idx)
    groups = np.asarray(subjects)[train]
    n_groups = len(np.unique(groups))
    if k < 2:
        raise SelectionError(f"selection.inner_folds must be >= 2, got {k}")
    if n_groups < k:
        raise SelectionError(f"outer fold '{outer.subject}': {n_groups} training subjects cannot be split into "
                             f"{k} inner folds; lower selection.inner_folds to at most {n_groups}")
    out = []
    for j, (tr, te) in enumerate(GroupKFold(n_splits=k).split(train, groups=groups)):
        out.append(Fold(index=index_base + j, subject=outer.subject, train_idx=train[tr], test_idx=train[te],
                        unit=outer.unit))
    return out


def check_inner_folds(cfg, feature_set, k: int) -> None:
    """Refuse, before anything trains, ``k`` inner folds that an outer fold of a recipe cannot be split into: every
    outer fold its run trains (the first ``max_folds`` when set) is split as :func:`inner_folds` splits it (the
    subject column only, no model).

    Args:
        cfg: the recipe's :class:`~icegan.commands.loso.LosoConfig` (protocol, dataset, max_folds).
        feature_set: its :class:`~icegan.data.features.FeatureSet` (only ``samples["subject"]`` is read).
        k: inner folds per outer fold (``selection.inner_folds``).

    Raises:
        SelectionError: as :func:`inner_folds` (``k`` < 2, or an outer fold of fewer than ``k`` training subjects:
            names the fold and ``selection.inner_folds``).
    """
    from icegan.protocol import make_folds

    subjects = feature_set.samples["subject"].astype(str).to_numpy()
    folds = make_folds(subjects.tolist(), cfg.protocol, cfg.dataset)
    for f in folds[:cfg.max_folds] if cfg.max_folds > 0 else folds:
        inner_folds(f, subjects, k)


def _read_cache(cache: Path, columns: list) -> tuple[pd.DataFrame, bool]:
    """The rows of an inner-prediction CSV and whether its end was cut short. A kill while appending can leave the
    file empty or end it in a line without its newline: that line is never read (its last number may be cut), so
    its outer fold counts as unfinished and is computed again.

    Raises:
        SelectionError: the file is not an inner-prediction table (unparsable, columns missing); names it."""
    import io
    with open(cache, encoding="utf-8", errors="replace", newline="") as fh:    # a quoted "\r" in a name stays
        text = fh.read()
    cut = not text.endswith("\n")
    if cut:
        text = text[:text.rfind("\n") + 1]
    if not text.strip():                       # empty, or only a header cut short
        return pd.DataFrame(columns=columns), cut
    try:
        df = read_csv_names(io.StringIO(text), ["outer", "dataset", "subject", "clip"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SelectionError(f"{cache}: not a table of inner predictions ({str(exc).strip()}); delete it") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SelectionError(f"{cache}: not a table of inner predictions (column(s) {missing} missing); delete it")
    return df, cut


def _rewrite(df: pd.DataFrame, cache: Path) -> None:
    """Write ``df`` to ``cache`` through a temporary file (:func:`flownet.io.write_whole`): a kill while rewriting
    keeps the old file whole."""
    write_whole(cache, lambda p: df.to_csv(p, index=False, float_format="%.9g", quoting=csv_quoting(df)))


def _cache_ok(df: pd.DataFrame, outer_folds: Sequence, n_train: dict, samples: pd.DataFrame,
              cache: Path) -> pd.DataFrame:
    """Rows of the outer folds whose inner predictions are complete (one row per training clip).

    Raises:
        SelectionError: a cached row names another clip or label than the sample table's row it points at (the
            cache was made on other data: a changed annotation sheet or feature table)."""
    df = df.dropna()             # a line cut short by a kill: its outer fold counts as unfinished and is recomputed
    rows = df["row"].to_numpy(dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(samples)):
        raise SelectionError(f"{cache}: inner predictions point at rows beyond the {len(samples)} clips of this "
                             "feature set; it was made on other data: delete it")
    here = samples.iloc[rows]
    bad = ((here["clip"].astype(str).to_numpy() != df["clip"].astype(str).to_numpy())
           | (here["label"].astype(int).to_numpy() != df["y_true"].astype(int).to_numpy()))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SelectionError(f"{cache}: inner predictions were made on other data ({int(bad.sum())} row(s), e.g. "
                             f"row {rows[i]}: clip '{df['clip'].iloc[i]}' label {int(df['y_true'].iloc[i])} there, "
                             f"clip '{here['clip'].iloc[i]}' label {int(here['label'].iloc[i])} now): delete it")
    counts = df.groupby("outer").size()
    done = [f.subject for f in outer_folds if counts.get(f.subject, -1) == n_train[f.subject]]
    return df[df["outer"].isin(done)]


def inner_predictions(cfg, feature_set, outer_folds: Sequence, k: int, cache: Path, progress: bool = True,
                      log=None) -> pd.DataFrame:
    """Inner-fold class probabilities of one ``icegan loso`` recipe for every outer fold (computed or resumed).

    Args:
        cfg: the recipe's :class:`~icegan.commands.loso.LosoConfig` (its seed, model, device, workers...).
        feature_set: its :class:`~icegan.data.features.FeatureSet` (the same sample table as the outer run).
        outer_folds: the outer LOSO folds (:func:`icegan.protocol.make_folds`).
        k: inner folds per outer fold.
        cache: the CSV holding this recipe's inner predictions (appended per group of outer folds; rows of a
            group cut short are dropped and recomputed).
        progress: tqdm bar over the groups.

    Returns:
        One row per (outer fold, training clip): ``outer`` (the outer fold's held-out subject, or dataset for
        HDE), ``inner`` (0..k-1), ``row``
        (index into the sample table), dataset, subject, clip, y_true and ``score_*`` (probabilities).

    Raises:
        SelectionError: an oracle-epoch recipe (its scores are not one prediction per clip), or one that does not
            return class probabilities; as :func:`inner_folds`.
    """
    log = sys.stderr if log is None else log      # the stream of the call, not of the import
    from tqdm.auto import tqdm

    from icegan.commands.loso import fold_runner
    from icegan.ensemble import not_probabilities
    from icegan.executors import map_groups
    from icegan.labels import get_label_set

    if cfg.oracle_epoch:
        raise SelectionError(f"recipe '{cfg.name}': an oracle-epoch run cannot be a candidate of an honest selection")
    samples = feature_set.samples
    subjects = samples["subject"].astype(str).to_numpy()
    n_train = {f.subject: len(f.train_idx) for f in outer_folds}
    labels = get_label_set(cfg.data.labels)            # the recipe's classes (icegan.labels)
    n_classes = labels.n_classes
    score_cols = list(labels.score_columns)
    done = pd.DataFrame(columns=[*INNER_COLUMNS, *score_cols])
    cache = Path(cache)
    if cache.is_file():
        read, cut = _read_cache(cache, [*INNER_COLUMNS, *score_cols])
        done = _cache_ok(read, outer_folds, n_train, samples, cache)
        if cut or len(done) != len(read):
            _rewrite(done, cache)                                   # drop an outer fold cut short
    finished_outer = set(done["outer"])
    if all(f.subject in finished_outer for f in outer_folds):
        return done.reset_index(drop=True)
    folds_fn, per_call, group_map = fold_runner(cfg, feature_set, progress=False)
    n_outer = len(outer_folds)
    # as many models per call as the outer run trains (all outer folds' worth when it trains them in one network);
    # the chunks of outer folds are fixed, so a resumed chunk is trained exactly as in an uninterrupted run
    outer_per_call = 1 if per_call == 1 else max(1, (per_call if per_call > 0 else n_outer) // k)
    chunks = [list(outer_folds[s:s + outer_per_call]) for s in range(0, n_outer, outer_per_call)]
    # the selection's groups in all, finished ones included: a ProcessGroupMap's scope (ProcessGroupMap.sizes)
    scope = n_outer * k if per_call == 1 else len(chunks)
    chunks = [c for c in chunks if not all(f.subject in finished_outer for f in c)]
    todo = [f for c in chunks for f in c]      # not empty: a run with every outer fold finished returned above
    if finished_outer & {f.subject for f in todo}:     # a chunk cut short: drop its rows, train it again whole
        done = done[~done["outer"].isin({f.subject for f in todo})]
        _rewrite(done, cache)
    inner = {f.subject: inner_folds(f, subjects, k, index_base=n_outer + f.index * k) for f in todo}
    groups = [[g for f in c for g in inner[f.subject]] for c in chunks]
    if per_call == 1:
        groups = [[g] for grp in groups for g in grp]
    cache.parent.mkdir(parents=True, exist_ok=True)
    label = samples["label"].to_numpy()
    pending: dict[str, list[pd.DataFrame]] = {f.subject: [] for f in todo}

    runs = map_groups(group_map, folds_fn, groups, scope)
    bar = tqdm(total=len(todo), desc=f"inner folds {cfg.name}", unit="outer fold", disable=not progress, leave=False)
    parts = [done]
    for group, results in runs:
        for fold, scores in zip(group, results):
            p = np.asarray(scores, dtype=np.float64)
            if p.shape != (len(fold.test_idx), n_classes) or not_probabilities(p).any():
                raise SelectionError(f"recipe '{cfg.name}': inner fold scores are not class probabilities of shape "
                                     f"({len(fold.test_idx)}, {n_classes}); only probability recognizers can be "
                                     "selected among")
            rows = samples.iloc[fold.test_idx]
            df = pd.DataFrame({"outer": fold.subject, "inner": (fold.index - n_outer) % k,
                               "row": fold.test_idx, "dataset": rows["dataset"].to_numpy(),
                               "subject": rows["subject"].to_numpy(), "clip": rows["clip"].to_numpy(),
                               "y_true": label[fold.test_idx]})
            for c, col in enumerate(score_cols):
                df[col] = p[:, c]
            pending[fold.subject].append(df)
        finished = [s for s, dfs in pending.items() if sum(len(d) for d in dfs) == n_train[s]]
        if finished:
            new = pd.concat([d for s in finished for d in pending.pop(s)], ignore_index=True)
            new.to_csv(cache, mode="a", header=not cache.is_file() or cache.stat().st_size == 0, index=False,
                       float_format="%.9g", quoting=csv_quoting(new))
            parts.append(new)
            bar.update(len(finished))
    bar.close()
    out = pd.concat([p for p in parts if len(p)], ignore_index=True)
    print(f"    inner folds of {cfg.name}: {len(todo)} outer fold(s) x {k} computed -> {cache}", file=log, flush=True)
    return out


def recipe_digest(cfg) -> str:
    """8 hex digits naming a recipe's settings (all but its name; for a custom recognizer also its source file's
    SHA-256): a cache of inner predictions made under other
    settings (a folder reused for another recipe) is never read back."""
    from icegan.recognition import recognizer_provenance
    return _settings_digest(_recipe_dict(cfg), recognizer_provenance(cfg.model))


def _recipe_dict(cfg) -> dict:
    """The nested config dict of ``cfg`` (:func:`icegan.config.to_dict`) without its ``name``."""
    from icegan.config import to_dict
    return {k: v for k, v in to_dict(cfg).items() if k != "name"}


def _settings_digest(d: dict, provenance) -> str:
    """:func:`recipe_digest` of a recipe's dict ``d`` (:func:`_recipe_dict`) and its model's
    :func:`icegan.recognition.recognizer_provenance` ``provenance`` (empty: not a custom recognizer)."""
    import hashlib

    from icegan.config import without_neutral_keys
    # keys added after caches were made, at their neutral values, are left out so that those caches stay valid
    d = without_neutral_keys(d)
    if provenance:                                # a custom recognizer's code is part of its settings
        d["provenance"] = provenance
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:8]


def inner_cache_digest(cfg, feature_set, legacy: bool = False) -> str:
    """8 hex digits naming a recipe's inner-prediction cache: its settings (:func:`recipe_digest`) and the data it is
    trained and scored on, ``feature_set``'s clips, labels and maps (:func:`icegan.protocol.data_digest`). Maps
    exported again with the same clips and labels (other flow weights, a corrected crop) were otherwise read back from
    a cache of the old ones (its clips and labels pass :func:`_cache_ok`).

    The settings are hashed with the keys a resume may change (:data:`icegan.protocol._RESUME_FREE_KEYS`: ``workers``,
    how many processes train the folds, never what they compute) at their defaults, so that another ``workers``
    reads the same cache. ``legacy``: the digest as named before 2026-12-07, those keys as ``cfg`` sets them (equal to
    the new one where they are at their defaults); :func:`select_nested` reads such a cache under the new name.
    Both at once, from one hash of the data: :func:`inner_cache_digests`.
    """
    return inner_cache_digests(cfg, feature_set)[1 if legacy else 0]


def inner_cache_digests(cfg, feature_set) -> tuple[str, str]:
    """``(today's, legacy)`` :func:`inner_cache_digest` of the recipe ``cfg`` on ``feature_set``, each 8 hex digits,
    from one :func:`icegan.protocol.data_digest` of its maps and one read of its config (and of a custom recognizer's
    source); the two are equal where the keys a resume may change are at their defaults."""
    import hashlib

    from icegan.protocol import data_digest
    from icegan.recognition import recognizer_provenance
    data = data_digest(feature_set.samples, feature_set.features)
    d = _recipe_dict(cfg)
    fresh = _resume_free_at_defaults(d, _recipe_dict(type(cfg)()))
    provenance = recognizer_provenance(cfg.model)

    def named(settings: dict) -> str:
        return hashlib.sha1(f"{_settings_digest(settings, provenance)}|{data}".encode()).hexdigest()[:8]
    new = named(fresh)
    return new, new if fresh == d else named(d)


def _resume_free_at_defaults(d: dict, default: dict) -> dict:
    """A copy of the nested config dict ``d`` whose keys of :data:`icegan.protocol._RESUME_FREE_KEYS` (dotted, those
    it has) hold their values in ``default`` (the dict of a default config of its type)."""
    from icegan.protocol import _RESUME_FREE_KEYS

    def reset(d: dict, default: dict, key: str) -> dict:
        head, _, rest = key.partition(".")
        if head not in d or not isinstance(default, dict) or head not in default:
            return d
        if not rest:
            return {**d, head: default[head]}
        return {**d, head: reset(d[head], default[head], rest)} if isinstance(d[head], dict) else d

    for key in _RESUME_FREE_KEYS:
        d = reset(d, default, key)
    return d


def _score(y_true: np.ndarray, probs: np.ndarray, criterion: str, n_classes: int) -> float:
    """``criterion`` (UF1 / UAR) of the (n, n_classes) inner probabilities ``probs`` against ``y_true`` (n,), each
    clip predicted as :func:`icegan.ensemble.argmax_lower_on_tie` (an ensemble's average as `icegan ensemble` scores
    it: a tie within 1e-9 goes to the lower class id)."""
    from icegan.ensemble import argmax_lower_on_tie
    from icegan.metrics import compute_metrics
    return float(compute_metrics(y_true, argmax_lower_on_tie(probs), n_classes)[criterion])


def select_nested(candidates: Sequence[Candidate], feature_sets: dict, out_dir: str | Path, k: int = 4,
                  criterion: Literal["UF1", "UAR"] = "UF1", scope: Literal["all", "dataset"] = "all",
                  cache_dir: Optional[str | Path] = None, name: Optional[str] = None, progress: bool = True,
                  log=None) -> dict:
    """Choose a candidate per outer LOSO fold by inner cross-validation and score the chosen predictions.

    Args:
        candidates: two or more :class:`Candidate`; recipes need finished outer runs in ``run_dir``, ensembles
            finished ensemble folders; ties go to the earlier candidate.
        feature_sets: the caller's feature-set cache (:func:`icegan.commands.loso.load_feature_set`'s ``cache``;
            a data section missing from it is read and added).
        out_dir: the selection's folder (created): ``predictions.csv`` (the chosen candidate's outer predictions,
            fold by fold), ``selection.csv`` (per outer fold: each candidate's inner score and the choice),
            ``selection.json`` (header; with ``folds_total`` when the candidates are ``max_folds`` runs, as their
            run.json: the selection is then tagged PARTIAL too), ``metrics.json`` / ``metrics.md`` /
            ``confusion.png`` / ``per_subject.csv`` as for any run.
        k: inner folds per outer fold.
        criterion: ``UF1`` or ``UAR`` of the pooled inner predictions of the outer fold's training subjects.
        scope: ``all``: pooled over all training clips; ``dataset``: over the training clips of the held-out
            subject's own dataset only (its dataset is known before any label is seen; not for HDE runs, whose
            folds have no training clip of the held-out dataset).
        cache_dir: where inner predictions are kept (default ``out_dir/inner``); one CSV per recipe run folder,
            inner-fold count and recipe settings but ``workers`` (:func:`inner_cache_digest`).
        name: title in metrics.md.

    Returns:
        The metrics.json content of the selected predictions (LOSO schema, ``oracle_epoch`` false).

    Raises:
        SelectionError: fewer than two candidates, candidates over different clips, folds or protocols, an
            ensemble without members, ``scope="dataset"`` for HDE runs, or as :func:`inner_predictions`.
        icegan.ensemble.EnsembleError: an outer run that is unfinished or has no probabilities, or an ensemble's
            ``weights`` that :func:`icegan.ensemble.mixing_weights` refuses.
        icegan.protocol.LosoStateError: ``out_dir`` holds another kind of run (``icegan loso``, ensemble, merge) or
            a ``predictions.csv`` without a run header (:func:`icegan.paths.run_folder_conflict`).
    """
    log = sys.stderr if log is None else log      # the stream of the call, not of the import
    from icegan.commands.loso import load_feature_set
    from icegan.data.features import subject_dataset
    from icegan.ensemble import load_member, mixing_weights, read_finished_run
    from icegan.labels import label_set_of_columns
    from icegan.protocol import (held_out_column, make_folds, members_motion_record,
                                 refuse_run_folder_conflict, summarize_predictions, write_reports)

    if len(candidates) < 2:
        raise SelectionError(f"a selection needs at least two candidates, got {len(candidates)}")
    if criterion not in ("UF1", "UAR"):
        raise SelectionError(f"criterion must be UF1 or UAR, got {criterion!r}")
    if scope not in ("all", "dataset"):
        raise SelectionError(f"scope must be 'all' or 'dataset', got {scope!r}")
    out = Path(out_dir)
    refuse_run_folder_conflict(out, "selection.json")
    cache = Path(cache_dir) if cache_dir is not None else out / "inner"

    outer_pred, headers = {}, {}
    for c in candidates:
        if c.config is None and not c.members:
            raise SelectionError(f"candidate '{c.label}' is neither a recipe (config) nor an ensemble (members)")
        # a recipe's run: probabilities checked, oracle-epoch runs refused; an ensemble's folder as written
        h, p = load_member(c.run_dir) if c.config is not None else read_finished_run(c.run_dir)
        headers[c.label], outer_pred[c.label] = h, p.sort_values(["subject", "clip"], kind="stable").reset_index(drop=True)
    first = candidates[0].label
    labels = {c.label: label_set_of_columns(outer_pred[c.label].columns, str(c.run_dir)) for c in candidates}
    for c in candidates[1:]:
        if labels[c.label] != labels[first]:
            raise SelectionError(f"candidate '{c.label}' ({c.run_dir}) scores the classes of {labels[c.label].name} "
                                 f"and '{first}' ({candidates[0].run_dir}) those of {labels[first].name}: the "
                                 "candidates of a selection must score one label set")
    n_classes = labels[first].n_classes
    score_cols = list(labels[first].score_columns)
    keys = outer_pred[first][["subject", "clip", "y_true"]]
    for c in candidates[1:]:
        if not outer_pred[c.label][["subject", "clip", "y_true"]].equals(keys):
            raise SelectionError(f"candidate '{c.label}' ({c.run_dir}) and '{first}' ({candidates[0].run_dir}) "
                                 "differ in clips, subjects or labels; a selection needs runs of the same LOSO")
        if headers[c.label].get("protocol") != headers[first].get("protocol"):
            p0 = headers[first].get("protocol")
            raise SelectionError(f"candidate '{c.label}' is a {headers[c.label].get('protocol')} run, '{first}' a "
                                 f"{p0} run; the candidates of one selection are scored on the same outer folds: give "
                                 f"them one protocol (protocol: {p0} in the config of each, and run them again), or "
                                 "make a selection of its own for each protocol")
    protocol = headers[first].get("protocol", "CDE")
    if protocol == "HDE" and scope == "dataset":
        raise SelectionError("scope 'dataset' scores the candidates on the training clips of the held-out unit's own "
                             "dataset; in an HDE (leave-one-dataset-out) run a fold has none; use scope: all")
    unit_col = held_out_column(protocol)     # the predictions column naming each clip's outer fold

    recipes: dict[str, Candidate] = {}
    for c in candidates:
        for r in ([c] if c.config is not None else c.members):
            if r.config is None:
                raise SelectionError(f"ensemble '{c.label}': member '{r.label}' is not a recipe (it has no "
                                     "config: an ensemble, or a run given without one); give each member the "
                                     "icegan loso config its run was made with (Candidate(label, run_dir, config=...))"
                                     ", and for an ensemble of ensembles list the recipes of the inner ones")
            recipes.setdefault(str(Path(r.run_dir)), r)
    inner: dict[str, pd.DataFrame] = {}
    folds = None
    scored = set(outer_pred[first][unit_col])
    for key, r in recipes.items():
        fs = load_feature_set(r.config.data, cache=feature_sets)
        f = make_folds(fs.samples["subject"].astype(str).tolist(), r.config.protocol, r.config.dataset)
        f = [x for x in f if x.subject in scored]           # the outer folds the runs hold (max_folds runs: a prefix)
        if len(f) != len(scored):
            raise SelectionError(f"recipe '{r.label}': its config's folds do not cover the {unit_col}s of its run "
                                 f"{r.run_dir}; was the run made with another data section?")
        if folds is None:       # every recipe's f holds the scored units, sorted (make_folds): the same list
            folds = f
        stem = f"{Path(r.run_dir).name}_k{k}_"
        digest, legacy = inner_cache_digests(r.config, fs)
        path, before = cache / f"{stem}{digest}.csv", cache / f"{stem}{legacy}.csv"
        if not path.exists() and before.is_file():     # named with the recipe's own workers: the same predictions
            before.rename(path)
        inner[key] = inner_predictions(r.config, fs, f, k, path, progress=progress, log=log) \
            .sort_values(["outer", "row"], kind="stable").reset_index(drop=True)

    def inner_of(c: Candidate) -> pd.DataFrame:
        if c.config is not None:
            return inner[str(Path(c.run_dir))]
        w = mixing_weights(c.weights, len(c.members))      # `icegan ensemble`'s rule, as the outer probabilities
        parts = [inner[str(Path(m.run_dir))] for m in c.members]
        df = parts[0][list(INNER_COLUMNS)].copy()
        for m, part in zip(c.members[1:], parts[1:]):
            if not part[["outer", "row"]].equals(parts[0][["outer", "row"]]):
                raise SelectionError(f"ensemble '{c.label}': member '{m.label}' has other inner folds than "
                                     f"'{c.members[0].label}' (their data sections give the clips in other rows: "
                                     "another table or row order), so their inner probabilities cannot be averaged "
                                     "clip by clip; give the members of an ensemble one data section")
        probs = sum(wi * part[score_cols].to_numpy(np.float64) for wi, part in zip(w, parts))
        for j, col in enumerate(score_cols):
            df[col] = probs[:, j]
        return df

    inner_c = {c.label: inner_of(c) for c in candidates}
    rows, chosen_parts = [], []
    for f in folds:
        ds = subject_dataset(f.subject)
        scores = {}
        for c in candidates:
            d = inner_c[c.label]
            d = d[d["outer"] == f.subject]
            if scope == "dataset":
                d = d[d["dataset"] == ds]
            if len(d) == 0:
                raise SelectionError(f"outer fold '{f.subject}': no inner clips of dataset '{ds}' among its "
                                     "training subjects; use scope: all")
            scores[c.label] = _score(d["y_true"].to_numpy(), d[score_cols].to_numpy(), criterion, n_classes)
        best = max(scores.values())
        choice = next(lab for lab in scores if scores[lab] == best)          # ties: the earlier candidate
        unit = {"dataset": ds} if unit_col == "dataset" else {"subject": f.subject, "dataset": ds}
        rows.append({**unit, "chosen": choice,
                     **{f"inner_{criterion}[{lab}]": round(v, 6) for lab, v in scores.items()}})
        p = outer_pred[choice]
        chosen_parts.append(p[p[unit_col] == f.subject])
    pred = pd.concat(chosen_parts, ignore_index=True)
    pred = pred[[c for c in ("fold", "dataset", "subject", "clip", "y_true", "y_pred", *score_cols) if c in pred.columns]]
    metrics = summarize_predictions(pred, protocol, len(folds), False, n_classes)
    if seen := members_motion_record(pred, [c.run_dir for c in candidates]):   # a candidate's flow saw their motion
        metrics["real_motion_seen"] = seen
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    counts = table["chosen"].value_counts()
    cand_rows = []
    for c in candidates:
        m = summarize_predictions(outer_pred[c.label], protocol, len(folds), False, n_classes)["overall"]
        cand_rows.append({"label": c.label, "run": str(c.run_dir), "chosen_folds": int(counts.get(c.label, 0)),
                          "UF1": m["UF1"], "UAR": m["UAR"]})
    header = {"kind": "nested selection", "protocol": protocol, "dataset": headers[first].get("dataset"),
              "folds": [f.subject for f in folds], "oracle_epoch": False, "inner_folds": k, "criterion": criterion,
              "scope": scope, "candidates": cand_rows}
    if headers[first].get("folds_total"):      # candidates cut to their first folds by max_folds: so is the selection
        header["folds_total"] = headers[first]["folds_total"]
    # the header first, each file whole: a kill in between leaves a folder the rerun recognises as this kind's
    write_text_whole(out / "selection.json", json.dumps(header, indent=1))
    write_whole(out / "predictions.csv", lambda p: pred.to_csv(p, index=False, float_format="%.9g",
                                                                quoting=csv_quoting(pred)))
    write_whole(out / "selection.csv", lambda p: table.to_csv(p, index=False, quoting=csv_quoting(table)))
    lines = ["", f"## Nested selection ({k} inner folds by subject, {criterion} of the inner predictions, scope "
             f"{scope})", "", "| Candidate | chosen in folds | its own LOSO UF1 | UAR |", "|---|---|---|---|"]
    from icegan.report import markdown_cell, run_tags
    lines += [f"| {markdown_cell(r['label'])} | {r['chosen_folds']} of {len(folds)} | {r['UF1']:.4f} | "
              f"{r['UAR']:.4f} |" for r in cand_rows]
    lines += ["", "Each outer fold's choice used only its training subjects (selection.csv); the candidates' own "
              "LOSO scores are shown for reference and were not used to choose.", ""]
    title = name or out.name
    # candidates of permuted labels (data.permute_labels): tagged as a LOSO null run's title is, in metrics.md and
    # the figures, and no published or measured rows of real labels beside it
    null_run, tags = run_tags([c.run_dir for c in candidates], header)
    write_reports(out, pred, metrics, f"{title} (nested selection){tags}",
                  f"{title}{tags}: nested selection, ", n_classes, md_extra="\n".join(lines),
                  folds_total=header.get("folds_total", 0), null_run=null_run)
    return metrics
