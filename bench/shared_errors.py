"""Diagnostic: do different recognizers miss the same clips? Per-clip error agreement over finished LOSO runs.

For every clip, the share of the given runs that misclassify it (argmax of the per-class scores in each run's
``predictions.csv``). If the errors were independent between recognizers, few clips would be missed by all of them;
many clips missed by every run, including learners as different as logistic regression, a random forest and
STSTNet, point at the inputs (the flow maps, or the labels) rather than at the learners. Prints, in Markdown:

* how many clips every run misses, at least 80 % of the runs miss, and no run misses;
* the same per dataset and class (``mean error``: the mean of the per-clip error shares);
* with ``--list``, the clips every run misses (dataset, subject, clip, label).

Usage::

    .venv/bin/python bench/shared_errors.py RUN_DIR [RUN_DIR ...] [--list]

Every run must hold the same clips (the same dataset, subject and clip names).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

KEY = ["dataset", "subject", "clip"]


def error_shares(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per clip: dataset, subject, clip, y_true and ``error``, the share of runs that misclassify it;
    ``attrs["classes"]``: the class names of the first run's score columns (MEGC2019's for a table without any).

    Raises:
        FileNotFoundError: a run without predictions.csv.
        ValueError: fewer than two runs, a partial (``max_folds``) or null run
            (:func:`icegan.report.refuse_partial_or_null`), runs over different clips (names the first one that
            differs), or runs that give a clip two labels (names the clip, both runs and their labels).
    """
    from icegan.report import refuse_partial_or_null
    if len(run_dirs) < 2:
        raise ValueError("give at least two runs")
    wrong, first = [], None
    for d in run_dirs:
        path = Path(d) / "predictions.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (a finished LOSO run folder is needed)")
        refuse_partial_or_null(d, "shared_errors.py")
        df = pd.read_csv(path, dtype={"subject": str, "clip": str}).set_index(KEY).sort_index()
        if first is None:
            first = df
        elif not df.index.equals(first.index):
            raise ValueError(f"{d} holds other clips than {run_dirs[0]} ({len(df)} against {len(first)}; runs of "
                             f"one protocol and data, each whole, not cut by max_folds, are needed)")
        elif (differ := df["y_true"] != first["y_true"]).any():
            k = differ.idxmax()
            raise ValueError(f"{d} labels clip {k[1]}/{k[2]} {df.at[k, 'y_true']} and {run_dirs[0]} "
                             f"{first.at[k, 'y_true']}; runs of one label table (data.labels, data.table) are needed")
        wrong.append((df["y_pred"] != df["y_true"]).rename(str(d)))
    out = first[["y_true"]].copy()
    out["error"] = pd.concat(wrong, axis=1).mean(axis=1)
    out = out.reset_index()
    from icegan.protocol import class_names         # the runs' own label set (CASME II's five, ...)
    out.attrs["classes"] = class_names(first, max(int(first["y_true"].max()) + 1, 3))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished LOSO run folders (predictions.csv)")
    p.add_argument("--list", action="store_true", help="also list the clips every run misses")
    args = p.parse_args(argv)
    from icegan.report import also_as, repeated_run
    repeat = repeated_run(args.runs)                # it would count twice in the means
    if repeat is not None:
        p.error(f"the run folder {repeat[0]} is given twice{also_as(*repeat)}; give each run once")
    try:
        e = error_shares(args.runs)
    except (ValueError, FileNotFoundError) as exc:          # a user's slip: one line, not a traceback
        print(f"shared_errors.py: error: {exc}", file=sys.stderr)
        return 2
    name_of = dict(enumerate(e.attrs["classes"]))
    n = len(e)
    print(f"{len(args.runs)} runs, {n} clips\n")
    print("| clips missed by | count | share |\n|---|---|---|")
    for name, mask in (("every run", e["error"] == 1), ("at least 80 % of the runs", e["error"] >= 0.8),
                       ("no run", e["error"] == 0)):
        print(f"| {name} | {int(mask.sum())} | {mask.mean():.3f} |")
    print("\n| dataset | class | clips | mean error | missed by every run |\n|---|---|---|---|---|")
    for (ds, y), g in e.groupby(["dataset", "y_true"]):
        print(f"| {ds} | {name_of.get(int(y), y)} | {len(g)} | {g['error'].mean():.3f} | "
              f"{int((g['error'] == 1).sum())} |")
    if args.list:
        print("\n| dataset | subject | clip | label |\n|---|---|---|---|")
        for _, r in e[e["error"] == 1].iterrows():
            print(f"| {r['dataset']} | {r['subject']} | {r['clip']} | {name_of.get(int(r['y_true']), r['y_true'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
