"""``icegan compare``: subject-bootstrap confidence intervals of finished LOSO runs and paired differences.

Example::

    icegan compare "baseline=runs/ststnet_s*" "shifts=runs/ststnet_shift_s*" --out compare.md
"""
from __future__ import annotations

import argparse
import re
import sys

from icegan.commands._numbers import integer, number
from icegan.commands.table import ENTRIES_EPILOG, add_entry_arguments, emit

__all__ = ["register"]


def _label_part(name: str) -> str:
    """A dataset's key as the end of a LaTeX ``\\label`` (letters, digits and ``-`` only)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", name)


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse ``--resamples`` < 100 and a ``--confidence`` outside (0, 1) (the bounds of
    :func:`icegan.significance.check_bootstrap_settings`) and a negative ``--seed`` (numpy's seeds are non-negative)
    by their flags.

    Raises:
        ValueError: the first bad value, naming its flag, the allowed range and the value given.
    """
    from icegan.significance import check_bootstrap_settings
    check_bootstrap_settings(args.resamples, args.confidence, resamples_name="--resamples",
                             confidence_name="--confidence")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0 (a seed of numpy's random generator), got {args.seed}")


def _seeds_text(seeds: tuple) -> str:
    """``data.permute_labels=0 (a null run, labels permuted)`` for a run's seeds (:func:`icegan.report.permuted_labels`;
    an ensemble's members may mix several)."""
    what = " and ".join("the real labels" if s < 0 else "a null run, labels permuted" for s in seeds)
    return f"data.permute_labels={' and '.join(map(str, seeds))} ({what})"


def _null_run_mismatch(runs_a, runs_b) -> str:
    """A phrase naming two runs, one of ``runs_a`` and one of ``runs_b``, whose ``data.permute_labels`` differ (a null
    run and a real one, or null runs of two seeds: their labels differ), or empty when none do. A run is a run,
    ensemble, nested selection or merge folder: its seeds are those of the runs that made it
    (:func:`icegan.report.permuted_labels`, which ``icegan table``'s ``[NULL RUN]`` tag reads too); one whose
    config cannot be read is left to the entry's own checks."""
    from icegan.report import permuted_labels
    seeds_b = [(r, permuted_labels(r)) for r in runs_b]
    for ra in runs_a:
        sa = permuted_labels(ra)
        for rb, sb in seeds_b:
            if sa and sb and sa != sb:
                return f"{ra} was run with {_seeds_text(sa)} and {rb} with {_seeds_text(sb)}"
    return ""


def _main(args: argparse.Namespace) -> int:
    from icegan.report import reading_configs
    with reading_configs():     # each run's config.yaml parsed once: the permute_labels and recipe checks share it
        return _compare(args)


def _compare(args: argparse.Namespace) -> int:
    """``icegan compare`` with ``args`` (:func:`_main`); the exit code."""
    from icegan.paths import check_output_file
    from icegan.report import parse_entries, same_predictions_notes
    from icegan.significance import (bootstrap_compare, check_same_datasets, check_stratify, comparison_scopes,
                                     comparison_table, forest_plot, load_run_set, scope_title, shown_scopes)

    try:
        _check_numbers(args)                            # named by their flags, before any run is read
        for path, flag, example in ((args.out, "--out", "compare.md"), (args.plot, "--plot", "compare.png")):
            if path:
                check_output_file(path, flag, example)    # before the resampling: never over a run's own files
        entries = parse_entries(args.entries, "compare")
        labels = [e.label for e in entries]
        base = labels.index(args.baseline) if args.baseline is not None else 0
        for e in entries:                               # a null run among seeds: named before the clips' check
            why = _null_run_mismatch(e.runs, e.runs)
            if why:
                raise ValueError(f"entry '{e.label}': {why}; runs of one entry must be of one data.permute_labels")
        sets = [load_run_set(e.label, e.runs) for e in entries]
        for e, s in zip(entries, sets):                 # else 'cover different clips or labels', the key unnamed
            ref = sets[base]
            differ = s.label_set == ref.label_set and not s.clips.equals(ref.clips)
            why = _null_run_mismatch(e.runs, entries[base].runs) if differ else ""
            if why:
                raise ValueError(f"'{s.label}' and '{ref.label}' are scored against different labels: {why}; "
                                 "a paired comparison needs runs of one data.permute_labels")
        # with --per-dataset or --stratify the entries agree on each subject's dataset (else named here, not as a
        # dataset missing in one of them); one table per dataset only where there are several, as icegan suite's page
        scopes = comparison_scopes(sets, args.per_dataset)
        if args.stratify:                               # subjects each alone in their dataset: intervals of width 0
            if not args.per_dataset:                    # (with it, comparison_scopes has checked them)
                check_same_datasets(sets)
            check_stratify(sets[base], "--stratify")
        parts, plotted = [], []
        # the legend goes under the last table printed: a dataset of one subject has none (skipped below)
        last, paired = shown_scopes(scopes)      # the legend counts every table's Δ intervals
        for k, (name, scoped) in enumerate(scopes):
            if name != "all" and len(scoped[0].subjects) < 2:       # as icegan suite's page: that scope skipped
                why = (f"{scope_title(name, scoped)}: none, a subject bootstrap needs at least two subjects "
                       f"(dataset {name} has one, {scoped[0].subjects[0]})")
                if args.format == "csv":             # a line in the table would break it
                    print(f"icegan compare: note: {why}", file=sys.stderr)
                else:
                    parts.append(f"% {why}\n" if args.format == "latex" else f"{why}\n")
                continue
            rows = bootstrap_compare(scoped, baseline=base, resamples=args.resamples, confidence=args.confidence,
                                     seed=args.seed, stratify=args.stratify)
            # headings and plot titles by the datasets' names (CASME II), as icegan suite writes them; csv keeps the key
            title = scope_title(name, scoped)
            plotted.append((title, rows))
            part = comparison_table(rows, baseline=base, confidence=args.confidence, resamples=args.resamples,
                                    fmt=args.format, legend=k == last,
                                    scope=title if args.per_dataset else "",
                                    label="tab:icegan-compare" + (f"-{_label_part(name)}" if args.per_dataset else ""),
                                    stratified=args.stratify, paired_intervals=paired,
                                    csv_scope=name if args.per_dataset else None)
            if args.per_dataset and args.format == "markdown":
                part = f"## {title}\n\n{part}"
            elif args.per_dataset and args.format == "latex":
                part = f"% {title}\n{part}"
            elif args.per_dataset and parts:     # csv: one table (its scope column first), its header once; the
                part = part.partition("\n")[2]     # header is column names, one line (a label's line break is not)
            parts.append(part)
        for e in entries:                               # runs with the same predictions: said under the tables
            for note in same_predictions_notes(e.label, e.runs):
                if args.format == "csv":                # a line in the table would break it
                    print(f"icegan compare: note: {note}", file=sys.stderr)
                else:
                    # LaTeX: every line a comment, as the legend's (a label's line break would end the comment)
                    parts.append("".join(f"% {ln}\n" for ln in f"Note: {note}.".splitlines())
                                 if args.format == "latex" else f"Note: {note}.\n")
        text = ("" if args.format == "csv" else "\n").join(parts)
        if args.plot:
            forest_plot(plotted, args.plot, baseline=base, confidence=args.confidence)
    except ValueError as exc:
        msg = str(exc)
        if args.baseline is not None and "is not in list" in msg:
            msg = f"--baseline '{args.baseline}' is not one of the entries' labels {labels}"
        print(f"icegan compare: error: {msg}", file=sys.stderr)
        return 2
    if args.plot:
        print(f"wrote {args.plot}", file=sys.stderr)
    return emit(text, args.out)


def register(subparsers) -> None:
    """Add the ``compare`` subcommand to the ``icegan`` parser."""
    p = subparsers.add_parser(
        "compare", help="subject-bootstrap confidence intervals of UF1 / UAR for finished LOSO runs, and paired "
                        "differences against a baseline",
        description="Resample the subjects (with replacement) of finished runs over the same clips, pool each "
                    "resample's predictions and compute UF1 / UAR as in MEGC2019; report percentile intervals for "
                    "each entry and for its difference to the baseline entry (the same subjects in every entry of a "
                    "resample: paired). An entry with several runs (seeds) uses their mean, as `icegan table` does. "
                    "See icegan.significance.",
        epilog=ENTRIES_EPILOG)
    add_entry_arguments(p, "markdown (value [low, high] cells and a legend), latex (the same as a booktabs table "
                           "float for a paper, with caption and label; the legend as %% comments) or csv (numeric "
                           "columns)",
                        formats=("markdown", "latex", "csv"))
    p.add_argument("--baseline", metavar="LABEL", default=None,
                   help="label of the entry the differences are taken against (default: the first entry)")
    p.add_argument("--resamples", type=integer(), default=9999,
                   help="bootstrap resamples of the subjects (default 9999)")
    p.add_argument("--confidence", type=number(), default=0.95, help="level of the percentile intervals (default 0.95)")
    p.add_argument("--per-dataset", action="store_true",
                   help="also one table per dataset (its subjects resampled alone; the same runs' predictions), where "
                        "the subjects are of more than one dataset; a dataset of one subject is skipped with a note")
    p.add_argument("--stratify", action="store_true",
                   help="draw the subjects within each dataset (every resample keeps the runs' number of SMIC, "
                        "CASME II and SAMM subjects; for a composite CDE). Default: one pool of subjects")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="also draw a forest plot: UF1 with its interval per entry and the paired ΔUF1 (per dataset "
                        "too with --per-dataset)")
    p.add_argument("--seed", type=integer(), default=0,
                   help="seed of the resampling (default 0; same seed, same intervals)")
    p.set_defaults(func=_main)
