"""``icegan ensemble``: average the class probabilities of finished LOSO runs and score the average.

Example::

    icegan ensemble runs/ststnet runs/offtanet --out runs/ststnet+offtanet
"""
from __future__ import annotations

import argparse
import sys

from icegan.commands._numbers import number

__all__ = ["register"]


def _main(args: argparse.Namespace) -> int:
    from icegan.ensemble import EnsembleError, ensemble_runs, mixing_weights
    from icegan.protocol import LosoStateError, read_partial_tag, summary_text

    try:
        if args.weights is not None and len(args.runs) >= 2:
            try:                            # the rule of ensemble_runs, named by this command's flag
                mixing_weights(args.weights, len(args.runs))
            except EnsembleError:
                raise EnsembleError(f"--weights: give one non-negative weight per RUN_DIR ({len(args.runs)}), not all "
                                    f"0; got {list(args.weights)}") from None
        metrics = ensemble_runs(args.runs, args.out, weights=args.weights, name=args.name)
    except (EnsembleError, LosoStateError) as exc:
        print(f"icegan ensemble: error: {exc}", file=sys.stderr)
        return 2
    # members cut by max_folds make a partial ensemble: its console line says so, as its metrics.md does
    print(summary_text(metrics, f"ensemble of {len(args.runs)} runs{read_partial_tag(args.out, 'max_folds')}"))
    print(f"outputs in {args.out}/ (metrics.md, metrics.json, ensemble.json, predictions.csv, per_subject.csv, "
          f"per_subject.png, confusion.png)")
    return 0


def register(subparsers) -> None:
    """Add the ``ensemble`` subcommand to the ``icegan`` parser."""
    p = subparsers.add_parser(
        "ensemble", help="average the class probabilities of finished LOSO runs (e.g. STSTNet + Off-TANet)",
        description="Average the per-clip class probabilities of two or more finished LOSO runs of the same "
                    "protocol, folds and clips (icegan loso or train.py run folders) and score the average with "
                    "the pooled MEGC metrics (UF1, UAR, ...). Honest when the members and weights are fixed "
                    "before looking at LOSO results. Refuses oracle-epoch and unfinished runs.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run folders (run.json + predictions.csv)")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="output folder: predictions.csv, metrics.json, metrics.md, ensemble.json, per_subject.csv, "
                        "per_subject.png, confusion.png")
    p.add_argument("--weights", metavar="W", nargs="+", type=number(), default=None,
                   help="one non-negative weight per run (default: equal); fix them before seeing results")
    p.add_argument("--name", default=None, help="title in metrics.md and the plot (default: the --out folder name)")
    p.set_defaults(func=_main)
