"""Probability ensembles of finished LOSO runs (``icegan ensemble``).

Several recognizers (say STSTNet and Off-TANet) are each run through the same leave-one-subject-out
protocol by ``icegan loso`` or ``train.py``; this module averages their per-clip class
probabilities (the ``score_*`` columns of each run's ``predictions.csv``) and scores the average
with the same pooled MEGC metrics. Each member saw only its training subjects in every fold, so
the average of fixed members with weights fixed in advance is as honest as its members: nothing
is chosen on a held-out subject. Choosing members or weights *after* looking at the LOSO results
is selection on the test subjects; the output says which runs and weights were used so a reader
can judge.

Refused (``EnsembleError``, naming the run and what differs): an unfinished member (a fold
without predictions), members with different protocols, folds, clips, labels or fold
assignments, an oracle-epoch member (its per-subject epoch pick is selection on the test
subject), and score columns that are not probabilities (negative, or rows not summing to 1).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

from flownet.io import write_text_whole, write_whole
from icegan.csv_names import csv_quoting, read_csv_names
from icegan.paths import run_folder_header
from icegan.report import DAMAGED, EDITED, RERUN, RESUME, _member_dir, markdown_cell, read_run_json, run_tags
from icegan.labels import label_set_of_columns
from icegan.protocol import (PRED_COLUMNS, LosoStateError, held_out_column,
                             members_motion_record, refuse_run_folder_conflict, summarize_predictions,
                             write_reports)

__all__ = ["EnsembleError", "ensemble_runs", "load_member", "not_probabilities", "off_top_score", "read_finished_run"]


class EnsembleError(ValueError):
    """Member runs that cannot be averaged (message names the run and the mismatch)."""


def read_finished_run(run_dir: str | Path) -> tuple[dict, pd.DataFrame]:
    """The header and predictions of any finished run: an ``icegan loso`` or train.py folder (``run.json``, also an
    oracle-epoch run), an ``icegan ensemble`` folder (``ensemble.json`` as header), a nested selection
    (:mod:`icegan.selection`, ``selection.json``) or runs merged over disjoint clips (``bench/merge_runs.py``,
    ``merged.json``). Used by ``icegan compare``.

    Returns:
        ``(header, predictions)``, predictions in file order with at least subject, clip, y_true, y_pred.

    Raises:
        EnsembleError: no header or ``predictions.csv``, one of them damaged (not JSON / an empty, unreadable or
            cut-short CSV: the message names the file and says to rerun), a missing column, a y_true / y_pred cell
            that is not a class id or a score cell that is not a finite number (``inf``, ``1e999``; names the line and
            column), a y_pred that is not the class of its row's highest score (:func:`off_top_score`), an unfinished
            run (a fold of the header without predictions), a clip listed twice, or a ``metrics.json`` (where the
            folder has one) that cannot be read or whose ``n_samples`` is not the number of rows (rows deleted, or
            the files of two runs). The same checks as ``icegan table`` makes of a run folder with a predictions.csv.
    """
    d = Path(run_dir)
    # a LOSO run's run.json, else an ensemble's, nested selection's or merge's header: finished, honest by construction
    run_json = run_folder_header(d) or d / "run.json"
    return _read(d, run_json, ["subject", "clip", "y_true", "y_pred"],
                 "`icegan loso`, train.py, `icegan ensemble` or nested-selection run")


def load_member(run_dir: str | Path) -> tuple[dict, pd.DataFrame]:
    """The header (``run.json``) and predictions of a finished honest LOSO run, checked for averaging.

    Returns:
        ``(header, predictions)``; predictions sorted by (fold, subject, clip), columns as in ``predictions.csv`` (fold,
        dataset, subject, clip, y_true, y_pred, score_*).

    Raises:
        EnsembleError: as :func:`read_finished_run`, and an oracle-epoch run, a column of
            :data:`~icegan.protocol.PRED_COLUMNS` missing, or scores that are not class probabilities.
    """
    d = Path(run_dir)
    header, pred = _read(d, d / "run.json", [c for c in PRED_COLUMNS if not c.startswith("score_")],
                         "`icegan loso` or train.py run", need_scores=True)
    if header.get("oracle_epoch"):
        raise EnsembleError(f"{d}: an oracle-epoch run (epochs picked on the test subjects); an ensemble of it "
                            "would not be honest")
    scores = [c for c in _score_columns(pred, d / "predictions.csv") if c in pred.columns]
    p = pred[scores].to_numpy(np.float64)
    bad = not_probabilities(p)
    if bad.any():
        r = pred[bad].iloc[0]
        raise EnsembleError(f"{d / 'predictions.csv'}: scores of clip {r['subject']}/{r['clip']} are not class "
                            f"probabilities ({p[bad][0].round(4).tolist()}); only probability scores can be averaged")
    # subject too: in an HDE fold (a whole dataset) two subjects may have clips of the same name
    return header, pred.sort_values(["fold", "subject", "clip"], kind="stable").reset_index(drop=True)


def off_top_score(scores: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(n,) True for the rows of (n, K) ``scores`` whose class id ``y_pred`` (n,) is not the class of the row's
    highest score: ``icegan loso`` writes ``y_pred = argmax(scores)``, ``icegan ensemble``
    :func:`argmax_lower_on_tie` of its average. A tie is kept: a y_pred whose score is within 2 × :data:`TIE_TOLERANCE`
    of the row's highest (an ensemble's tie up to float rounding, and the rounding of predictions.csv's 9 significant
    digits, which keeps the order of two scores but may make them equal).

    Raises:
        ValueError: a ``y_pred`` that is not a class id 0..K−1 of the K score columns (a negative one would else be
            read from the end of the row, a fraction as the id below it, one of K or more fail in numpy's indexing,
            NaN in numpy's cast); names the first such id (``-0.5``, ``nan``). ``scores`` that are not 2-D (n, K).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores of shape {s.shape} are not (n, K), one row of K class scores for each y_pred; give "
                         f"a 2-D array")
    v = np.asarray(y_pred, dtype=np.float64)
    bad = ~np.isfinite(v) | (v != np.floor(v)) | (v < 0) | (v >= s.shape[1])
    if bad.any():
        first = float(v[bad][0])
        raise ValueError(f"y_pred holds class id {int(first) if first.is_integer() else first}, outside the class ids "
                         f"0..{s.shape[1] - 1} of the {s.shape[1]} score columns; give each row's predicted class as "
                         f"one of them")
    return s[np.arange(len(s)), v.astype(np.int64)] < s.max(1) - 2 * TIE_TOLERANCE


def check_top_scores(pred: pd.DataFrame, pred_csv: Path, fix: str, scores: Sequence[str]) -> None:
    """Check that each row of ``pred`` (rows of ``pred_csv``, index: each row's line − 2; an integer column
    ``y_pred`` and the float columns ``scores``, at least one) holds in y_pred the class of its highest score,
    as :func:`off_top_score` tells.

    Raises:
        EnsembleError: at the first row that does not, naming ``pred_csv``, its line, its y_pred and the column of
            its highest score, followed by ``fix`` (what to do about it)."""
    s = pred[list(scores)].to_numpy(np.float64)
    off = np.flatnonzero(off_top_score(s, pred["y_pred"].to_numpy()))
    if len(off):
        i = int(off[0])
        raise EnsembleError(f"{pred_csv}, line {int(pred.index[i]) + 2}, column y_pred: '{pred['y_pred'].iloc[i]}' is "
                            f"not the class of the row's highest score ({scores[int(s[i].argmax())]}); {fix}")


def not_probabilities(p: np.ndarray) -> np.ndarray:
    """(n,) True for the rows of (n, K) scores that are not class probabilities: a non-finite or negative
    (below −1e-6) value, or a sum off 1 by more than 1e-3."""
    return ~np.isfinite(p).all(1) | (p < -1e-6).any(1) | (np.abs(p.sum(1) - 1.0) > 1e-3)


def _read(d: Path, run_json: Path, need: list[str], kinds: str, need_scores: bool = False):
    """Header and predictions of a finished run, with the checks both readers share.

    Raises:
        EnsembleError: a missing, unreadable, empty or cut-short header or ``predictions.csv`` (names the file, and
            the line of a row cut short), a missing column, a bad cell (:func:`_check_values`), a y_pred that is not
            the class of its row's highest score (:func:`off_top_score`), an unfinished run, a clip listed twice, or
            a ``metrics.json`` (where there is one) that cannot be read or whose ``n_samples`` differs from the
            number of rows.
    """
    pred_csv = d / "predictions.csv"
    for f in (run_json, pred_csv):
        if not f.is_file():
            raise EnsembleError(f"{d}: no {f.name}; give the folder of a finished {kinds}")
    header = read_run_json(run_json, RERUN, EnsembleError)
    damaged = f"{DAMAGED}: {RESUME}"
    text = pred_csv.read_bytes()
    if not text.strip():
        raise EnsembleError(f"{pred_csv}: the file is empty; {damaged}")
    if not text.endswith(b"\n"):               # every writer ends each row with a line break: a write cut off
        last = text.count(b"\n") + 1
        raise EnsembleError(f"{pred_csv}, line {last}: the file ends inside this line (cut short); {damaged}")
    try:
        # blank lines kept (and dropped below) so that the index gives each row's line in the file
        pred = read_csv_names(pred_csv, ["dataset", "subject", "clip"], skip_blank_lines=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise EnsembleError(f"{pred_csv}: not a readable CSV table ({str(exc).strip()}); {damaged}") from None
    n_lines = len(pred)
    pred = pred.dropna(how="all")
    blank_lines = len(pred) < n_lines
    missing = [c for c in need if c not in pred.columns]
    all_scores = _score_columns(pred, pred_csv)
    if missing or (need_scores and not any(c in pred.columns for c in all_scores)):
        raise EnsembleError(f"{pred_csv}: missing column(s) {missing or list(all_scores)}")
    if pred.empty:
        raise EnsembleError(f"{pred_csv}: no rows, only the header; {damaged}")
    filled = need + [c for c in all_scores if c in pred.columns]
    short = pred[filled].isna().any(axis=1).to_numpy()
    if short.any():
        i = int(np.flatnonzero(short)[0])
        empty = [c for c in filled if pd.isna(pred[c].iloc[i])]
        raise EnsembleError(f"{pred_csv}, line {int(pred.index[i]) + 2}: empty {', '.join(empty)} (a row cut "
                            f"short, or cells left empty); {damaged}")
    pred = _check_values(pred, pred_csv, f"{EDITED} {RERUN}", all_scores)
    scores = [c for c in all_scores if c in pred.columns]
    if scores:                                 # as `icegan loso` checks a finished fold before it keeps it
        check_top_scores(pred, pred_csv, f"{EDITED} {RESUME}", scores)
    pred = pred.reset_index(drop=True)
    if blank_lines:                            # their NaN made the integer columns float: back to integers
        for c in ("fold", "y_true", "y_pred"):
            if c in pred.columns and pred[c].dtype.kind == "f" and (pred[c] % 1 == 0).all():
                pred[c] = pred[c].astype(np.int64)
    # a fold is named by its held-out subject, or by its dataset in an HDE run
    unfinished = sorted(set(header.get("folds", [])) - set(pred[held_out_column(header.get("protocol", ""))]))
    if unfinished:
        raise EnsembleError(f"{d}: unfinished run, no predictions for {len(unfinished)} fold(s) "
                            f"(first: {unfinished[0]}); resume it with the same command first")
    dup = pred.duplicated(["subject", "clip"])
    if dup.any():
        r = pred[dup].iloc[0]
        raise EnsembleError(f"{pred_csv}: clip {r['subject']}/{r['clip']} appears more than once")
    if (d / "metrics.json").is_file():         # a hand-made folder may have none (icegan table requires one)
        n = read_run_json(d / "metrics.json", RESUME, EnsembleError).get("n_samples")
        if isinstance(n, int) and not isinstance(n, bool) and n != len(pred):
            raise EnsembleError(f"{d}: its predictions.csv holds {len(pred)} rows, its metrics.json was computed on "
                                f"n_samples {n} (rows deleted, or files of two runs?); {EDITED} {RESUME}")
    return header, pred


def _score_columns(pred: pd.DataFrame, pred_csv: Path) -> tuple[str, ...]:
    """All score columns of the label set of ``pred`` (:func:`icegan.labels.label_set_of_columns`; MEGC2019's when it
    has none).

    Raises:
        EnsembleError: score columns of no label set (names the file).
    """
    try:
        return label_set_of_columns(pred.columns, str(pred_csv)).score_columns
    except ValueError as exc:
        raise EnsembleError(str(exc)) from None


def _check_values(pred: pd.DataFrame, pred_csv: Path, fix: str, all_scores: tuple[str, ...]) -> pd.DataFrame:
    """``pred`` (index: the row's line in the file − 2) with y_true / y_pred as integers and its score columns as
    floats, after checking the cells both readers rely on; ``fix``: what the messages say to do; ``all_scores``:
    every score column of its label set (:func:`_score_columns`).

    The score columns a run writes are the first K of its label set's (:mod:`icegan.labels`; K classes, 3 for
    MEGC2019, 5 for CASME II's or SAMM's five); a file with none of them (``icegan compare`` needs only y_true /
    y_pred) is read as MEGC2019's K = 3.

    Raises:
        EnsembleError: a score column missing before one that is present (``score_positive`` gone, ``score_surprise``
            kept); a y_true / y_pred cell that is not a class id 0..K−1 (with two score columns, a class id 2 means
            ``score_surprise`` is missing); a score cell that is not a finite number (``inf``, ``Infinity`` and
            ``1e999`` too: no run writes one, :func:`icegan.protocol.run_loso` refuses a fold's non-finite scores).
            Names the file, line, column and cell.
    """
    present = [c for c in all_scores if c in pred.columns]
    k = len(present) if present else len(all_scores)
    if present and present != list(all_scores[:k]):
        gone = [c for c in all_scores[:all_scores.index(present[-1])] if c not in present]
        raise EnsembleError(f"{pred_csv}: missing column(s) {gone} (it has {present}; a run writes the score "
                            f"columns {list(all_scores[:k + len(gone)])}); {fix}")

    def where(col: str, bad: np.ndarray) -> str:
        i = int(np.flatnonzero(bad)[0])
        return f"{pred_csv}, line {int(pred.index[i]) + 2}, column {col}: {str(pred[col].iloc[i])!r}"

    for col in ("y_true", "y_pred"):      # both present: _read refuses a file without them (its ``need``)
        v = pd.to_numeric(pred[col], errors="coerce").to_numpy(np.float64)
        with np.errstate(invalid="ignore"):       # inf % 1: NaN, refused by isfinite without numpy's warning
            bad = ~np.isfinite(v) | (v % 1 != 0)
        if bad.any():
            raise EnsembleError(f"{where(col, bad)} is not a class id (an integer 0..{k - 1}); {fix}")
        bad = (v < 0) | (v >= k)
        if bad.any():
            top = int(v[bad].max())
            if present and k <= top < len(all_scores):   # a class with no score column: that column is gone
                gone = list(all_scores[k:top + 1])
                i = int(np.flatnonzero(v == top)[0])
                raise EnsembleError(f"{pred_csv}: missing column(s) {gone} (line {int(pred.index[i]) + 2}, column "
                                    f"{col} holds class id {top}, but the score columns are only {present}); {fix}")
            raise EnsembleError(f"{where(col, bad)} is outside the class ids 0..{k - 1}; {fix}")
        pred[col] = v.astype(np.int64)
    for col in present:
        v = pd.to_numeric(pred[col], errors="coerce")
        bad = (v.isna() & pred[col].notna()).to_numpy()
        if bad.any():
            raise EnsembleError(f"{where(col, bad)} is not a number; {fix}")
        bad = ~np.isfinite(v.to_numpy(np.float64))    # pandas reads 'inf', 'Infinity' and '1e999' as numbers
        if bad.any():
            raise EnsembleError(f"{where(col, bad)} is not a finite number; {fix}")
        pred[col] = v.astype(np.float64)
    return pred


def mixing_weights(weights: Optional[Sequence[float]], n: int) -> np.ndarray:
    """The (n,) weights of a probability average, normalised to sum 1 (None: equal).

    Weights whose sum overflows float64 (``1e308 1e308``) are divided by their largest first, so that they are not all
    divided down to 0; any other weights are divided by their sum alone (the floats every recorded ensemble used).

    Raises:
        EnsembleError: not n finite non-negative numbers, or all zero.
    """
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.max(initial=0) <= 0:
        raise EnsembleError(f"weights must be {n} non-negative numbers, not all zero; got {weights}")
    with np.errstate(over="ignore"):
        total = w.sum()
    if not np.isfinite(total):           # finite weights, overflowing sum: scaled to at most 1 first
        w = w / w.max()
        total = w.sum()
    return w / total


#: class probabilities within this of a row's largest count as tied with it (float rounding of a weighted average:
#: 0.5*0.4 + 0.5*0.55 = 0.47500000000000003 against 0.5*0.5 + 0.5*0.45 = 0.475)
TIE_TOLERANCE = 1e-9


def argmax_lower_on_tie(probs) -> np.ndarray:
    """Per row the predicted class of averaged probabilities: the first (lowest) class id whose probability is at
    least the row's largest minus :data:`TIE_TOLERANCE` (1e-9), so that a tie up to float rounding goes to the lower
    class id as an exact tie does (``np.argmax``); ties are otherwise not looked at.

    Args:
        probs: (n, K) finite class probabilities (or any scores on the scale of probabilities).

    Returns:
        (n,) int64 class ids in 0..K-1.
    """
    p = np.asarray(probs, dtype=np.float64)
    return (p >= p.max(1, keepdims=True) - TIE_TOLERANCE).argmax(1)


def _plain(value):
    """A numpy scalar as the Python number it holds (``1``, not ``np.int64(1)``, in a message); others unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def ensemble_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, weights: Optional[Sequence[float]] = None,
                  name: Optional[str] = None, on_fewer: Optional[Callable[[], None]] = None,
                  own_members: bool = False) -> dict:
    """Average the class probabilities of finished LOSO runs and score the average.

    ``p(clip) = Σ_m w_m p_m(clip) / Σ_m w_m`` over members m, y_pred = argmax (an exact tie goes to the lower class
    id: negative before positive before surprise; probabilities within 1e-9 of the row's largest count as tied, so
    that float rounding of the average does not decide: :func:`argmax_lower_on_tie`); metrics pooled over all folds
    as in MEGC2019 (:func:`icegan.protocol.summarize_predictions`).

    Args:
        run_dirs: two or more run directories of the same protocol, folds and clips; held-out units, subjects and
            clips are matched by :func:`icegan.protocol.subject_key` (the SMIC tree's ``smic/s1``, ``s1_ne_01`` is the
            MEGC2019 table's ``smic/s01``, ``s01_ne_01``; :func:`_in_spellings_of`), and the ensemble spells them as
            the first run does.
        out_dir: output folder (created; must not hold another run): ``predictions.csv``,
            ``metrics.json`` (the LOSO schema), ``metrics.md``, ``confusion.png``, ``per_subject.csv``,
            ``per_subject.png`` and ``ensemble.json``
            (members, as resolved absolute paths and as paths relative to ``out_dir``, with their own UF1/UAR, weights).
        weights: one non-negative weight per run (default: equal weights); fix them before looking at
            results.
        name: title in metrics.md and the plot (default: the folder name).
        on_fewer: when given, an ensemble in ``out_dir`` of a strict subset of ``run_dirs`` (any weights; members
            matched as an ensemble written again is, :func:`_refuse_other_ensemble`) is not refused: ``on_fewer()``
            is called (``icegan suite``: seeds were added since; it says so and removes the folder) and the
            ensemble of all ``run_dirs`` is written.
        own_members: the caller vouches that ``run_dirs`` are the runs of the ensemble in ``out_dir``, wherever that
            folder was copied (``icegan suite``: its own run folders, resumed or extended since): a recorded member
            matches by its path relative to ``out_dir`` alone, whatever its predictions (a copied suite rerun with a
            higher max_folds is made again, as in place).

    Returns:
        The metrics.json content (``{"protocol", "n_folds", "n_samples", "oracle_epoch": false,
        "overall", "per_dataset"}``, and ``real_motion_seen`` when a member records held-out subjects whose real
        motion trained its flow network: :func:`icegan.protocol.members_motion_record`; the ensemble is then not
        leak-free either, and its metrics.md and ``icegan table`` say so).

    Raises:
        EnsembleError: fewer than two runs, bad weights, a member :func:`load_member` refuses, or
            members that differ in protocol, SDE dataset, folds, clips, labels or fold numbers.
        LosoStateError: ``out_dir`` is a member, holds another kind of run (a LOSO run's ``run.json``, a nested
            selection, a merge) or a ``predictions.csv`` without a run header
            (:func:`icegan.paths.run_folder_conflict`), or holds another ensemble (its ensemble.json lists other
            members or weights; the same members and weights, in any order, are written again; with ``on_fewer``,
            also an ensemble of fewer of them); nothing is overwritten. A recorded member whose predictions changed
            is refused unless ``own_members`` (the message says so, not "other members").
    """
    dirs = [Path(d) for d in run_dirs]
    if len(dirs) < 2:
        raise EnsembleError(f"an ensemble needs at least two runs, got {len(dirs)}")
    if len({d.resolve() for d in dirs}) != len(dirs):
        raise EnsembleError("the same run is given twice; give its weight instead")
    w = mixing_weights(weights, len(dirs))
    out = Path(out_dir)
    if out.resolve() in {d.resolve() for d in dirs}:
        raise LosoStateError(f"{out} is one of the ensemble's members; give the ensemble its own --out")
    refuse_run_folder_conflict(out, "ensemble.json")

    members = [load_member(d) for d in dirs]
    # each member's place from the ensemble folder and its predictions' digest, once: compared with an ensemble
    # already in out, then recorded
    places = [(_relative(d, out), _digest(d)) for d in dirs]
    _refuse_other_ensemble(out, dirs, w, places, on_fewer, own_members)
    h0, p0 = members[0]
    set0 = label_set_of_columns(p0.columns)
    for i, (d, (h, p)) in enumerate(zip(dirs[1:], members[1:]), 1):
        ls = label_set_of_columns(p.columns)
        if ls != set0:          # checked first: their y_true ids, too, mean other classes
            raise EnsembleError(f"{d} scores the classes of the label set {ls.name} ({', '.join(ls.classes)}) and "
                                f"{dirs[0]} those of {set0.name} ({', '.join(set0.classes)}); only runs of one label "
                                "set (data.labels) can be averaged")
        for key in ("protocol", "dataset"):
            if h.get(key) != h0.get(key):
                raise EnsembleError(f"{d} differs from {dirs[0]} in '{key}' ({h.get(key)!r} vs {h0.get(key)!r}); "
                                    "only runs of the same LOSO can be averaged")
        h, p = members[i] = _in_spellings_of(h, p, h0, p0)    # smic/s1 averaged with the first member's smic/s01
        if h.get("folds") != h0.get("folds"):
            raise EnsembleError(f"{d} differs from {dirs[0]} in its folds ({_folds_difference(h, h0, d, dirs[0])}); "
                                "only runs of the same LOSO can be averaged")
        for col in ("subject", "clip", "fold", "y_true"):
            a, b = p[col].to_numpy(), p0[col].to_numpy()
            if len(a) != len(b) or (a != b).any():
                i = int(np.argmax(a != b)) if len(a) == len(b) else min(len(a), len(b))
                where = (f"{len(a)} vs {len(b)} clips" if len(a) != len(b)
                         else f"clip {p['subject'][i]}/{p['clip'][i]}: {_plain(a[i])!r} vs {_plain(b[i])!r}")
                raise EnsembleError(f"{d} differs from {dirs[0]} in '{col}' ({where}); only runs of the same "
                                    "clips and folds can be averaged")
    def scores_of(p: pd.DataFrame) -> list[str]:
        return [c for c in p.columns if str(c).startswith("score_")]

    score_cols = scores_of(p0)
    for d, (_, p) in zip(dirs, members):
        if scores_of(p) != score_cols:
            raise EnsembleError(f"{d}: score columns differ from {dirs[0]}'s {score_cols}")
    n_classes = len(score_cols)
    probs = sum(wi * p[score_cols].to_numpy(np.float64) for wi, (_, p) in zip(w, members))
    pred = p0[["fold", "dataset", "subject", "clip", "y_true"]].copy()
    pred["y_pred"] = argmax_lower_on_tie(probs)
    for c, col in enumerate(score_cols):
        pred[col] = probs[:, c]

    out.mkdir(parents=True, exist_ok=True)
    title = name or out.name
    n_folds = len(h0.get("folds") or pred["subject"].unique())
    metrics = summarize_predictions(pred, h0["protocol"], n_folds, False, n_classes)
    if seen := members_motion_record(pred, dirs):       # a member's flow saw held-out motion: so did the ensemble's
        metrics["real_motion_seen"] = seen
    member_rows = []
    for d, wi, (_, p), (rel, digest) in zip(dirs, w, members, places):
        m = summarize_predictions(p, h0["protocol"], n_folds, False, n_classes)["overall"]
        # the resolved path: the ensemble is read from any cwd (icegan table, compare); "rel", the path from the
        # ensemble folder, and "predictions", its predictions.csv's SHA-256: a copy of both (cp -r) is the same
        # ensemble (_refuse_other_ensemble)
        member_rows.append({"run": str(d.resolve()), "rel": rel, "predictions": digest,
                            "weight": float(wi), "UF1": m["UF1"], "UAR": m["UAR"]})
    header = {"members": member_rows, "protocol": h0["protocol"], "dataset": h0.get("dataset")}
    if h0.get("folds_total"):        # members cut to their first folds by max_folds: so is the ensemble
        header.update(folds=h0.get("folds"), folds_total=h0["folds_total"])
    # the header first, each file whole: a kill in between leaves a folder the rerun recognises as this kind's
    write_text_whole(out / "ensemble.json", json.dumps(header, indent=1))
    write_whole(out / "predictions.csv", lambda p: pred.to_csv(p, index=False, float_format="%.9g",
                                                                quoting=csv_quoting(pred)))
    lines = ["", "## Members", "", "| Run | Weight | UF1 | UAR |", "|---|---|---|---|"]
    lines += [f"| {markdown_cell(r['run'])} | {r['weight']:.3f} | {r['UF1']:.4f} | {r['UAR']:.4f} |"
              for r in member_rows]
    lines += ["", "Members and weights must be fixed before looking at LOSO results; otherwise the ensemble "
              "is selected on the test subjects.", ""]
    # the figures name the members (up to four), not only the output folder
    member_names = " + ".join(d.name for d in dirs) if len(dirs) <= 4 else f"{len(dirs)} runs"
    # members of permuted labels (data.permute_labels): tagged as a LOSO null run's title is, in metrics.md and the
    # figures, and no published or measured rows of real labels beside it
    null_run, tags = run_tags(dirs, header)
    write_reports(out, pred, metrics, f"{title} (probability ensemble){tags}",
                  f"{title}{tags}: ensemble of {member_names}, ", n_classes, md_extra="\n".join(lines),
                  folds_total=header.get("folds_total", 0), null_run=null_run)
    return metrics


def _in_spellings_of(h: dict, p: pd.DataFrame, h0: dict, p0: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """A member's header ``h`` and predictions ``p`` (:func:`load_member`) with the held-out units, subjects and clips
    that :func:`icegan.protocol.subject_key` makes equal to the first member's (``h0``, ``p0``) spelt as there (the
    MEGC2019 table's ``smic/s01``, ``s01_ne_01`` for the SMIC tree's ``smic/s1``, ``s1_ne_01``), and, where its
    folds so respelt are the first member's in another order (``smic/s1``, ``smic/s11`` … against ``smic/s01``,
    ``smic/s02`` …), its folds and fold numbers in the first member's order; rows sorted again by (fold, subject,
    clip). Only a key that one id of each side has is respelt (:func:`icegan.protocol.spellings_like`); other ids are
    left as they are, for :func:`ensemble_runs`'s checks to name."""
    from icegan.protocol import respelt_like, spellings_like, subject_key
    folds0, folds = h0.get("folds"), h.get("folds")
    if isinstance(folds0, list) and isinstance(folds, list):
        unit_of = spellings_like(folds, folds0, subject_key)
        spelt = [unit_of.get(f, f) for f in folds]
        if spelt != folds and sorted(spelt) == sorted(folds0) and len(set(spelt)) == len(spelt):
            number = {k: folds0.index(f) for k, f in enumerate(spelt)}
            p = p.assign(fold=p["fold"].map(lambda k: number.get(k, k)))
            spelt = folds0
        h = {**h, "folds": spelt}
    return h, respelt_like(p, p0).sort_values(["fold", "subject", "clip"], kind="stable").reset_index(drop=True)


def _relative(d: Path, out: Path) -> Optional[str]:
    """The path of the folder ``d`` from the folder ``out`` (both resolved; ``../r1`` for a sibling), or None where
    there is none (Windows: another drive)."""
    try:
        return Path(os.path.relpath(d.resolve(), out.resolve())).as_posix()
    except ValueError:
        return None


def _digest(d: Path) -> str:
    """SHA-256 (hex) of the run folder ``d``'s ``predictions.csv``: which run a member was, wherever it lies."""
    import hashlib
    return hashlib.sha256((d / "predictions.csv").read_bytes()).hexdigest()


def _refuse_other_ensemble(out: Path, dirs: Sequence[Path], w: np.ndarray,
                           places: Sequence[tuple[Optional[str], str]],
                           on_fewer: Optional[Callable[[], None]] = None, own_members: bool = False) -> None:
    """Raise :class:`LosoStateError` when ``out`` holds the ``ensemble.json`` of another ensemble than of the members
    ``dirs`` with the normalised weights ``w`` (in any order); ``places``: each member's (:func:`_relative`,
    :func:`_digest`). The members are the same when they match by resolved
    path (each recorded member looked for as :func:`icegan.report.run_recipe` does) or by the recorded path relative
    to ``out`` (``rel``) with the same ``predictions.csv`` (a folder copied with its members, cp -r; not other runs
    that happen to lie where the copied ensemble's members did). The same ensemble (a suite's rerun) and a header
    that cannot be read (a kill while it was written) are let through: the ensemble is written again. With
    ``on_fewer``, so is an ensemble of a strict subset of ``dirs`` (each recorded member matched, as above, to
    another of ``dirs``; any weights), after ``on_fewer()`` is called. With ``own_members`` (the caller's own run
    folders, :func:`ensemble_runs`), ``rel`` alone matches: the members' predictions may have changed since."""
    f = out / "ensemble.json"
    try:
        old = json.loads(f.read_text(encoding="utf-8"))["members"]
        recorded = [(str(m["run"]), float(m["weight"]), m.get("rel"), m.get("predictions")) for m in old]
    except (OSError, ValueError, KeyError, TypeError):
        return
    was_paths = [str((_member_dir(out, r) or Path(r)).resolve()) for r, _, _, _ in recorded]
    now_paths = [str(d.resolve()) for d in dirs]
    # a header of before (no rel or digest) never matches by place: "None|None" is no path
    def place(rel: Optional[str], digest: Optional[str], by_rel_alone: bool) -> str:
        return f"{rel}|" if by_rel_alone and rel is not None else f"{rel}|{digest}"
    was_places = [place(rel, digest, own_members) for _, _, rel, digest in recorded]
    now_places = [place(rel, digest, own_members) for rel, digest in places]
    was_w, now_w = [wi for _, wi, _, _ in recorded], [float(wi) for wi in w]
    was_abs, now_abs = sorted(zip(was_paths, was_w)), sorted(zip(now_paths, now_w))
    was_rel, now_rel = sorted(zip(was_places, was_w)), sorted(zip(now_places, now_w))

    def same(was, now, weights=True) -> bool:
        return len(was) == len(now) and all(a == b and (not weights or np.isclose(x, y, rtol=0, atol=1e-9))
                                            for (a, x), (b, y) in zip(was, now))
    if same(was_abs, now_abs) or same(was_rel, now_rel):
        return
    if on_fewer is not None and len(recorded) < len(dirs):      # each recorded member another of dirs
        matched = [next((j for j, (a, r) in enumerate(zip(now_paths, now_places)) if a == was_a or r == was_r), None)
                   for was_a, was_r in zip(was_paths, was_places)]
        if None not in matched and len(set(matched)) == len(recorded):
            on_fewer()
            return

    def listed(rows) -> str:
        return ", ".join(f"{r} (weight {wi:.3g})" for r, wi in rows)
    # the recorded places hold the members, with other predictions: other runs there, or these rerun since
    moved = same(sorted((place(rel, d, True), wi) for _, wi, rel, d in recorded),
                 sorted((place(rel, d, True), wi) for (rel, d), wi in zip(places, now_w)), weights=False)
    what = ("the same members with other weights"
            if same(was_abs, now_abs, weights=False) or same(was_rel, now_rel, weights=False) else
            "the same member places with other predictions (other runs there, or these runs rerun or extended "
            "since it was made)" if moved else "other members")
    raise LosoStateError(f"{out} holds the ensemble of {listed((r, wi) for r, wi, _, _ in recorded)}, not of "
                         f"{listed(zip(map(str, dirs), w))} ({what}; ensemble.json); an ensemble folder holds one "
                         f"ensemble: give this one its own --out, or remove {out} to replace that one")


def _folds_difference(h: dict, h0: dict, d: Path, d0: Path) -> str:
    """How the held-out folds (``folds``; none when missing) of run folder ``d`` (run.json header ``h``) differ from
    those of the first member ``d0`` (header ``h0``), for :func:`ensemble_runs`'s refusal: their counts in the
    protocol's held-out unit (``h0``'s; subjects, datasets for HDE, :func:`icegan.protocol.held_out_column`), then,
    where the two sets of folds differ (in count or not), the folds each run has and the other lacks (up to 5 each),
    else (the same folds in another order) the first difference. Raises nothing."""
    a, b = h.get("folds") or [], h0.get("folds") or []
    said = f"{len(a)} vs {len(b)} {held_out_column(str(h0.get('protocol') or ''))}s"
    parts = []
    for x, y, where in ((a, b, d), (b, a, d0)):
        missing = [f for f in x if f not in y]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            parts.append(f"{', '.join(map(str, missing[:5]))}{more} only in {where}")
    return f"{said}; {'; '.join(parts)}" if parts else f"{said}, first difference {_first_diff(a, b)}"


def _first_diff(a: Sequence, b: Sequence, names: tuple[str, str] = ("the first", "the second")) -> str:
    """The first position where sequences ``a`` and ``b`` differ, for a refusal's message: ``'x' vs 'y'`` (their
    items there, as repr), or, where one is a prefix of the other (a max_folds run against a full one), the first item
    the shorter lacks, ``'x' only in <name>`` with ``names`` the two sequences' names as the message says them;
    ``"none"`` for equal sequences. Raises nothing."""
    for x, y in zip(a, b):
        if x != y:
            return f"{x!r} vs {y!r}"
    if len(a) == len(b):
        return "none"
    k, name = (0, names[0]) if len(a) > len(b) else (1, names[1])
    return f"{(a, b)[k][min(len(a), len(b))]!r} only in {name}"
