"""Merge finished LOSO runs over disjoint clips into one prediction set, e.g. the three SDE runs of one seed.

An SDE run per dataset (``protocol=SDE dataset=smic|casme2|samm``) scores each dataset's clips with models trained
on that dataset's other subjects only. Merged, the three cover the 442 clips of the composite, so they can be set
beside the CDE runs of the same recipe in ``icegan compare --per-dataset`` (paired, per dataset): does training on
the other datasets' subjects help a dataset's clips? The merged folder holds ``predictions.csv`` (the runs' rows,
concatenated), ``metrics.json`` / ``metrics.md`` / ``confusion.png`` (pooled as in MEGC2019) and ``merged.json``
(the runs and their folds, the header ``icegan compare`` reads).

Usage::

    .venv/bin/python bench/merge_runs.py RUN_DIR RUN_DIR [...] --out DIR
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd


def merge_runs(run_dirs: list[Path], out: Path) -> dict:
    """Concatenate finished honest runs over disjoint clips into ``out``; returns the metrics.json content.

    Raises:
        ValueError: fewer than two runs, a merge (``merged.json``: its runs are to be given), an oracle-epoch run, a
            partial (``max_folds``) or null run (:func:`icegan.report.refuse_partial_or_null`), runs of two protocols,
            runs of two label sets (``data.labels``), a clip in two runs, or an ``out`` that holds a LOSO run or other
            files.
        icegan.ensemble.EnsembleError: a run that is missing or unfinished.
    """
    from icegan.ensemble import read_finished_run
    from icegan.labels import label_set_of_columns
    from icegan.protocol import members_motion_record, summarize_predictions, write_reports
    from icegan.report import refuse_partial_or_null
    if len(run_dirs) < 2:
        raise ValueError("give at least two finished runs to merge")
    headers, preds = zip(*(read_finished_run(d) for d in run_dirs))
    for d, h in zip(run_dirs, headers):
        if "merged_from" in h:          # merged.json: no protocol of its own; merging it again would nest merges
            raise ValueError(f"{d} is a merge (merged.json) of {', '.join(map(str, h['merged_from']))}: give the runs "
                             f"it merged")
        if h.get("oracle_epoch"):
            raise ValueError(f"{d}: an oracle-epoch run; merging it would not be honest")
        refuse_partial_or_null(d, "merge_runs.py")
        if h.get("protocol") != headers[0].get("protocol"):
            raise ValueError(f"{d} is a run of protocol {h.get('protocol')} and {run_dirs[0]} of "
                             f"{headers[0].get('protocol')}; merge runs of one protocol (e.g. one SDE run per dataset)")
    sets = [label_set_of_columns(p.columns, str(d)) for d, p in zip(run_dirs, preds)]
    for d, ls in zip(run_dirs[1:], sets[1:]):
        if ls != sets[0]:
            raise ValueError(f"{d} scores the classes of {ls.name} and {run_dirs[0]} those of {sets[0].name}; merge "
                             "runs of one label set (data.labels)")
    k = sets[0].n_classes
    pred = pd.concat(preds, ignore_index=True)
    dup = pred.duplicated(["subject", "clip"])
    if dup.any():
        r = pred[dup].iloc[0]
        raise ValueError(f"clip {r['subject']}/{r['clip']} is in more than one run; merge runs over disjoint clips")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "merged.json").is_file():
        raise ValueError(f"{out} holds other files; give an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    folds = [f for h in headers for f in h.get("folds", [])]
    protocols = sorted({str(h.get("protocol")) + (f" {h['dataset']}" if h.get("dataset") else "") for h in headers})
    header = {"merged_from": [str(d) for d in run_dirs], "protocols": protocols, "oracle_epoch": False,
              "folds": folds}
    pred.to_csv(out / "predictions.csv", index=False)
    metrics = summarize_predictions(pred, "+".join(protocols), len(folds), False, k)
    if seen := members_motion_record(pred, run_dirs):        # a merged run's flow saw held-out motion: say so
        metrics["real_motion_seen"] = seen
    write_reports(out, pred, metrics, f"merged: {', '.join(protocols)}", "merged ", k)
    (out / "merged.json").write_text(json.dumps(header, indent=1), encoding="utf-8")
    return metrics


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished LOSO run folders over disjoint clips")
    p.add_argument("--out", type=Path, required=True, help="folder of the merged prediction set")
    args = p.parse_args(argv)
    try:
        m = merge_runs(args.runs, args.out)
    except ValueError as exc:       # EnsembleError too (a missing or unfinished run): one line, not a traceback
        print(f"merge_runs.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"merged {m['n_samples']} clips, {m['n_folds']} folds: UF1 {m['overall']['UF1']:.4f}  "
          f"UAR {m['overall']['UAR']:.4f}  -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
