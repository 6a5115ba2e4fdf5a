"""Diagnostic: how much UF1 could any change of the decision rule add to a finished LOSO run? (An upper bound.)

Class-weighted training aims at balanced recall (UAR); UF1 (macro F1) is maximised by another rule. This script
asks whether a run's UF1 < UAR gap is such a rule's doing: it adds one offset per class to the pooled test
log-probabilities, ``argmax_c (log p_c + b_c)`` with ``b_negative = 0`` and the other two offsets on a grid in
[-2, 2] (step 0.05, every pair tried), and reports the best UF1 over the grid, **chosen on the run's own test labels**.

That number is an upper bound of what any offset rule fitted honestly (e.g. on inner folds of the training
subjects) could reach, never a result: it uses the held-out labels. If the bound is small, the rule is not where
the missing UF1 is.

A second table asks the same of a label-shift correction per dataset: ``argmax_c (log p_c + λ · log π_d(c))``
with π_d the class frequencies of the clip's dataset in the *other* folds (its fold's training side), for
λ = 0 (argmax), 0.25, 0.5, 0.75, 1 (1 = Bayes rule for that dataset's priors). Every λ is shown, so the reader
sees the whole curve, not a picked point. A run whose folds hold out a dataset whole (HDE) has no clip of that
dataset on the training side, so no honest π_d: refused.

Usage::

    .venv/bin/python bench/decision_rule_bound.py runs/eleventh/Q0_s0 runs/eleventh/Q0_s1 ...

Prints one Markdown row per run (UF1 / UAR of argmax, the bound's UF1 and UAR, its offsets) and the mean. A run cut
by ``max_folds`` or a null run (``data.permute_labels`` >= 0) is refused: neither is a LOSO result; so is a run
folder given twice (also as ``./X``: it would count twice in the means). A refusal is one line on stderr, exit
status 2, as the other bench scripts'.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from icegan.metrics import compute_metrics, uf1_uar_from_confusion

GRID = np.round(np.arange(-2.0, 2.0 + 1e-9, 0.05), 2)


def bound(scores: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float, np.ndarray]:
    """(UF1, UAR) of argmax and (UF1, UAR, offsets) of the best offset pair on these labels (ties: smallest |b|)."""
    k = scores.shape[1]
    logp = np.log(np.clip(scores, 1e-12, None))
    mesh = np.stack(np.meshgrid(GRID, GRID, indexing="ij"), -1).reshape(-1, 2)
    cand = np.concatenate([np.zeros((len(mesh), 1)), mesh], 1)                     # (M, 3)
    pred = (logp[None] + cand[:, None]).argmax(-1)                                # (M, n)
    code = (np.arange(len(cand))[:, None] * k + y[None]) * k + pred
    cm = np.bincount(code.ravel(), minlength=len(cand) * k * k).reshape(len(cand), k, k)
    uf1, uar = uf1_uar_from_confusion(cm)
    zero = int(np.flatnonzero((cand == 0).all(1))[0])
    top = np.flatnonzero(uf1 >= uf1.max() - 1e-12)
    best = int(top[np.argmin(np.abs(cand[top]).sum(1))])
    return float(uf1[zero]), float(uar[zero]), float(uf1[best]), float(uar[best]), cand[best]


LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def dataset_prior_curve(scores: np.ndarray, y: np.ndarray, dataset: np.ndarray, fold: np.ndarray) -> list[float]:
    """UF1 of ``argmax(log p + λ log π_d)`` for each λ in :data:`LAMBDAS`: π_d the class frequencies of the clip's
    dataset in the other folds (the fold's training side; in a LOSO run, the dataset's other subjects).

    Raises:
        ValueError: a fold whose training side has no clip of a dataset it tests (an HDE fold holds the dataset out
            whole): its π_d would come from the held-out labels.
    """
    logp = np.log(np.clip(scores, 1e-12, None))
    k = scores.shape[1]
    logprior = np.zeros_like(logp)
    for d, f in {(d, f) for d, f in zip(dataset, fold)}:
        rows = (dataset == d) & (fold == f)
        others = (dataset == d) & (fold != f)
        if not others.any():
            raise ValueError(f"fold {f}'s training side has no clip of dataset {d} (a leave-one-dataset-out, HDE, "
                             "run holds each dataset out whole): no dataset prior without the held-out labels")
        counts = np.bincount(y[others], minlength=k).astype(np.float64)
        logprior[rows] = np.log(np.clip(counts / counts.sum(), 1e-12, None))
    out = []
    for lam in LAMBDAS:
        out.append(compute_metrics(y, (logp + lam * logprior).argmax(1), n_classes=k)["UF1"])
    return out


def run_bounds(runs: list[Path]) -> tuple[list[tuple], list[list[float]]]:
    """(rows, curves): :func:`bound` and :func:`dataset_prior_curve` of every run's ``predictions.csv``, in order.

    Raises:
        ValueError: a partial or null run (:func:`icegan.report.refuse_partial_or_null`, checked for every run before
            any is read), a folder without ``predictions.csv``, one without the three ``score_*`` columns of an
            honest 3-class run, or an HDE run (:func:`dataset_prior_curve`); names the run or file.
    """
    from icegan.report import refuse_partial_or_null
    for run in runs:            # a max_folds or null run is no LOSO result: kept out of the mean
        refuse_partial_or_null(run, "decision_rule_bound.py")
    rows, curves = [], []
    for run in runs:
        path = run / "predictions.csv"
        if not path.is_file():
            raise ValueError(f"{path}: not found (is {run} a finished icegan loso run?)")
        p = pd.read_csv(path)
        cols = [c for c in p.columns if c.startswith("score_")]
        if len(cols) != 3 or "oracle_epoch" in p.columns:
            raise ValueError(f"{path}: needs the three score_* columns of an honest 3-class run, got {cols}")
        rows.append(bound(p[cols].to_numpy(), p["y_true"].to_numpy()))
        try:
            curves.append(dataset_prior_curve(p[cols].to_numpy(), p["y_true"].to_numpy(), p["dataset"].to_numpy(),
                                              p["fold"].astype(str).to_numpy()))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return rows, curves


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="finished icegan loso run folders (predictions.csv)")
    args = ap.parse_args(argv)
    from icegan.report import also_as, repeated_run
    repeat = repeated_run(args.runs)                # it would count twice in the means
    if repeat is not None:
        ap.error(f"the run folder {repeat[0]} is given twice{also_as(*repeat)}; give each run once")
    try:
        rows, curves = run_bounds(args.runs)
    except ValueError as exc:           # a user's slip: one line on stderr, exit 2, before any row
        print(f"decision_rule_bound.py: error: {exc}", file=sys.stderr)
        return 2
    print("| run | UF1 / UAR (argmax) | bound UF1 / UAR (offsets chosen on the test labels) | offsets (pos, sur) |")
    print("|---|---|---|---|")
    for run, r in zip(args.runs, rows):
        print(f"| {run} | {r[0]:.4f} / {r[1]:.4f} | {r[2]:.4f} / {r[3]:.4f} | {r[4][1]:+.2f}, {r[4][2]:+.2f} |")
    m = np.array([r[:4] for r in rows]).mean(0)
    print(f"| mean of {len(rows)} | {m[0]:.4f} / {m[1]:.4f} | {m[2]:.4f} / {m[3]:.4f} | |")
    print()
    print("| run | " + " | ".join(f"UF1, λ = {lam}" for lam in LAMBDAS) + " |")
    print("|---|" + "---|" * len(LAMBDAS))
    for run, c in zip(args.runs, curves):
        print(f"| {run} | " + " | ".join(f"{v:.4f}" for v in c) + " |")
    print(f"| mean of {len(curves)} | " + " | ".join(f"{v:.4f}" for v in np.mean(curves, 0)) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
