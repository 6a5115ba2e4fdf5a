"""``icegan suite``: several LOSO recipes × seeds, their ensembles, and one results page, in one command.

Example::

    icegan suite --config configs/suite_composite.yaml --out runs/composite device=cuda
"""
from __future__ import annotations

import argparse
import sys

from icegan.commands._numbers import read_int
from icegan.paths import config_hint, with_config_hints

__all__ = ["register"]

EPILOG = """\
suite file (YAML; see configs/suite_composite.yaml):
  name: composite
  seeds: [0, 1, 2, 3, 4]
  baseline: STSTNet                       # the entry paired differences are taken against (default: first run)
  runs:                                   # each: an `icegan loso` config (path relative to the suite file)
                                          # and its overrides; command: loso (default) | train
    - {label: logistic regression, config: features_logreg.yaml, seeded: false}   # deterministic: run once
    - {label: STSTNet + shifts, config: features_ststnet.yaml, overrides: [model.shift_px=1]}
    - {label: random forest, config: features_randomforest.yaml}
    # command: train runs the main job (train.py) instead, e.g. (configs/suite_casme2_flow.yaml)
    # - {label: TV-L1, command: train, config: casme2.yaml, overrides: [gan.enabled=false, flow.method=tvl1]}
  ensembles:                              # probability averages of runs of the same seed (icegan ensemble)
    - {label: STSTNet + shifts + random forest, members: [STSTNet + shifts, random forest]}
    - {label: weighted, members: [STSTNet + shifts, random forest], weights: [2, 1]}   # default: equal weights
    # over_seeds: true averages the members' runs of every seed as one model (one folder, made after the last seed)
    - {label: all seeds, members: [STSTNet + shifts, random forest], over_seeds: true}
  resamples: 9999                         # subject-bootstrap resamples of the comparison
  stratify: false                         # true: draw the subjects within each dataset (keeps the datasets' mix)
  per_dataset: true                       # also a comparison per dataset (runs over several datasets)
  selection:                              # nested selection among the entries (off unless inner_folds >= 2)
    inner_folds: 4                        # per outer fold: its training subjects in 4 groups (inner cross-validation)
    criterion: UF1                        # UF1 | UAR of the pooled inner predictions
    scope: all                            # all training clips | dataset: those of the held-out subject's dataset
    candidates: []                        # labels of loso runs and their ensembles; empty = all of them
    label: nested selection               # its row in the table

  The best row of a table of recipes is chosen on the test subjects; the nested-selection row is an honest score
  of "choose among these recipes": each outer fold gets the predictions of the candidate that scored best in an
  inner cross-validation over its training subjects only. It trains every candidate recipe inner_folds more times
  per outer fold.

outputs in --out: <label>_s<seed>/ per run (an `icegan loso` or `icegan ensemble` folder; the nested selection's
holds selection.csv: per outer fold each candidate's inner score and the choice), inner/ (inner-fold predictions,
per recipe run), results.md (results table with seeds as mean ± std, every run's UF1 / UAR by seed,
subject-bootstrap intervals and paired differences, the equivalent commands with their wall times; rewritten after
every seed), results.tex (the results table as a LaTeX table float with caption and label), compare.png (forest
plot; none when no comparison has two subjects, e.g. max_folds=1), suite_times.json. Rerunning the same command
resumes: finished runs and inner folds are only re-read. With
--reuse DIR, runs another suite already made (same config, seed, threads, device) are copied, not retrained:
  icegan suite --config configs/suite_cutout.yaml --out runs/cutout --reuse runs/composite
"""


def _seed_list(text: str) -> list[int]:
    """argparse type of ``--seeds``: one or more comma-separated integers (:func:`read_int`; an empty list is refused:
    it read as no --seeds at all, so the file's seeds ran without a word)."""
    try:
        seeds = [read_int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (e.g. 0,1,2), got '{text}'") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (e.g. 0,1,2), got '{text}'")
    return seeds


def _main(args: argparse.Namespace) -> int:
    from icegan.commands import refuse_torchrun
    if (refused := refuse_torchrun("icegan suite")) is not None:      # under torchrun every process would run it all
        return refused
    from icegan.config import ConfigError
    from icegan.ensemble import EnsembleError
    from icegan.executors import WorkerDiedError
    from icegan.protocol import LosoStateError
    from icegan.suite import run_suite

    try:
        plan = run_suite(args.config, args.out, args.overrides, seeds=args.seeds, progress=not args.no_progress,
                         dry_run=args.dry_run, log=sys.stdout if args.dry_run else sys.stderr, reuse=args.reuse)
    except (ConfigError, FileNotFoundError, LosoStateError, EnsembleError, ValueError,
            FloatingPointError, WorkerDiedError) as exc:    # a member's fold diverged (NaN scores), a worker killed
        from icegan.commands import other_config_hint          # a file of icegan loso or train.py: says so
        hint = other_config_hint(args.config, "icegan suite") if isinstance(exc, ConfigError) else ""
        print(f"icegan suite: error: {exc}{hint}", file=sys.stderr)
        return 2
    # any other OSError (a folder that cannot be written, a full disk) and a closed stdout (`--dry-run | head`) go
    # to icegan.cli.main, which reports them as for every command
    if not args.dry_run:        # no compare.png when nothing could be resampled (runs of one subject: max_folds=1)
        out = plan[0].out.parent
        plot = ", compare.png" if (out / "compare.png").is_file() else ""
        print(f"results in {out}/results.md (and results.tex{plot})")
    return 0


def register(subparsers) -> None:
    """Add the ``suite`` subcommand to the ``icegan`` parser."""
    p = subparsers.add_parser(
        "suite", help="run several LOSO recipes over seeds, their ensembles, and write one results page",
        description="Run every recipe of a suite file (each an `icegan loso` config with overrides) for every seed, "
                    "average the probabilities of the ensembles it names, then write results.md: the results "
                    "table (seeds as mean ± std), subject-bootstrap intervals with paired differences to the "
                    "baseline, and the equivalent commands. Interrupted suites resume where they stopped.",
        epilog=with_config_hints(EPILOG, runnable=True), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="YAML", required=True,
                   help=f"suite file (e.g. {config_hint('suite_composite')})")
    p.add_argument("--out", metavar="DIR", default=None, help="output folder (default runs/<suite name>)")
    p.add_argument("--seeds", metavar="S,S,...", type=_seed_list, default=None,
                   help="seeds to run instead of the file's (e.g. --seeds 0,1,2)")
    p.add_argument("--reuse", metavar="DIR", action="append", default=[],
                   help="copy, instead of training again, every member run that DIR (an earlier suite's --out, or "
                        "one run folder) holds finished with the same config but its name (seed, threads and device "
                        "included), with the inner-fold predictions its suite kept for a selection; repeatable; the "
                        "copies' source is named in results.md")
    p.add_argument("--dry-run", action="store_true", help="print the equivalent commands and stop")
    p.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bars of the runs")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="`icegan loso` config overrides applied to every run (e.g. device=cuda threads=2 "
                        "data.root=PATH; `train.py` overrides for command: train runs); seed and name are set by "
                        "the suite")
    p.set_defaults(func=_main)
