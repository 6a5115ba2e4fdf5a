"""``icegan table``: one results table (Markdown, LaTeX or CSV) over finished LOSO runs, seeds as mean ± std, with the
folds / clips each row is scored on. The runs of an entry must be seeds of one recipe
(:func:`icegan.report.check_one_recipe`).

Example::

    icegan table "STSTNet=runs/ststnet_s*" "Off-TANet=runs/offtanet_s*" runs/logreg --out results.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register", "add_entry_arguments", "emit", "table_format"]

ENTRIES_EPILOG = ("entries: DIR (row named after the folder), LABEL=DIR, or LABEL=DIR,DIR,... ; DIR may be a quoted glob "
                  "pattern, e.g. \"STSTNet=runs/ststnet_s*\". How an entry is read: where the whole entry is an "
                  "existing folder or a glob pattern that matches folders (a folder named with '=', e.g. "
                  "runs/logreg_C=1), it is DIRs without a label; else it is LABEL=DIRS split at the first '=' whose "
                  "right side is existing folders or matching patterns (\"LR C=1=runs/lr\": label 'LR C=1'); "
                  "where no split matches, the entry is refused. A row without a label is named after its folder, "
                  "'.' and '..' after the folder they resolve to. The runs of one entry are averaged as seeds, so "
                  "they must be one recipe: their config.yaml equal but for name, seed, out_dir, cache_root, device, "
                  "threads, workers and progress (ensembles: the same members' recipes and weights); an entry that "
                  "mixes recipes, or lists one run twice, is refused: give each recipe its own LABEL=GLOB entry")


#: the format ``icegan table`` writes to an --out file of each extension when no --format is given (any other
#: extension: markdown)
FORMAT_OF_EXTENSION = {".tex": "latex", ".csv": "csv", ".md": "markdown"}


def add_entry_arguments(p: argparse.ArgumentParser, format_help: str,
                        formats: tuple[str, ...] = ("markdown", "csv"), format_from_out: bool = False) -> None:
    """The run-entry arguments shared by ``icegan table`` and ``icegan compare``: entries, --format (one of
    ``formats``, the first the default; with ``format_from_out`` no default: :func:`table_format` takes it from
    --out's extension), --out."""
    p.add_argument("entries", nargs="+", metavar="ENTRY",
                   help="DIR | LABEL=DIR[,DIR...] (glob patterns allowed; the runs of one entry: seeds of one recipe)")
    if format_from_out:
        p.add_argument("--format", choices=formats, default=None,
                       help=f"{format_help} (default: from --out's extension: "
                            + ", ".join(f"{e} {f}" for e, f in FORMAT_OF_EXTENSION.items())
                            + f", any other {formats[0]}; {formats[0]} when printed; a --format that contradicts a "
                              f"{', '.join(FORMAT_OF_EXTENSION)} extension is refused)")
    else:
        p.add_argument("--format", choices=formats, default=formats[0], help=f"{format_help} (default {formats[0]})")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="write the table to FILE instead of printing it; '-' prints it, as without --out")


def table_format(fmt: str | None, out: str | None) -> str:
    """The format ``icegan table`` writes: ``fmt`` (--format) where given, else the one of ``out``'s extension
    (:data:`FORMAT_OF_EXTENSION`; case ignored), markdown for any other extension, without ``out`` or for ``out``
    ``-`` (stdout).

    Raises:
        ValueError: ``fmt`` given and ``out``'s extension is one of :data:`FORMAT_OF_EXTENSION` with another format
            (``--format csv --out paper.tex``); names both and what to change.
    """
    implied = FORMAT_OF_EXTENSION.get(Path(out).suffix.lower()) if out else None
    if fmt is None:
        return implied or "markdown"
    if implied is not None and implied != fmt:
        ext = {f: e for e, f in FORMAT_OF_EXTENSION.items()}[fmt]
        raise ValueError(f"--format {fmt} contradicts --out {out}, whose extension {Path(out).suffix} means "
                         f"{implied}: leave --format out for {implied}, or name the --out file *{ext} for {fmt}")
    return fmt


def emit(text: str, out: str | None) -> int:
    """Write ``text`` to ``out`` (its folder made if needed; saying so), or to stdout where ``out`` is None or ``-``
    (the Unix convention, not a file named ``-``); returns exit code 0."""
    if out and out != "-":
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)
    return 0


def _main(args: argparse.Namespace) -> int:
    from icegan.paths import check_output_file
    from icegan.report import parse_entries, results_table, same_predictions_notes

    try:
        if args.out and args.out != "-":     # '-': stdout
            check_output_file(args.out, "--out", "table.md")      # never over a run's own metrics.md
        fmt = table_format(args.format, args.out)
        entries = parse_entries(args.entries)
        text = results_table(entries, fmt=fmt)     # each run's config.yaml and run.json parsed once
    except ValueError as exc:
        print(f"icegan table: error: {exc}", file=sys.stderr)
        return 2
    if fmt == "csv":                # markdown and latex carry it; a line in the CSV would break it
        for e in entries:
            for note in same_predictions_notes(e.label, e.runs):
                print(f"icegan table: note: {note}", file=sys.stderr)
    return emit(text, args.out)


def register(subparsers) -> None:
    """Add the ``table`` subcommand to the ``icegan`` parser."""
    p = subparsers.add_parser(
        "table", help="one results table over finished LOSO runs (UF1 / UAR overall and per dataset; seeds as mean ± std)",
        description="Print one table, a row per entry, of finished runs' metrics.json (icegan loso, train.py or icegan "
                    "ensemble folders): selection (honest / NOT leak-free / ORACLE epoch), protocol, number of "
                    "runs, UF1 and UAR overall and per dataset, and the folds / clips they are pooled over "
                    "(68 / 442 for the composite CDE); "
                    "when a run scores other classes than MEGC2019's three (data.labels=casme2_5 or samm_5), a "
                    "Classes column. "
                    "An entry with several runs (seeds) shows mean ± sample std over them, never the best run. Runs "
                    "of one entry must be seeds of one recipe and share protocol, selection, classes, folds and "
                    "clips.",
        epilog=ENTRIES_EPILOG)
    add_entry_arguments(p, "markdown (cells 'mean ± std', 4 decimals), latex (the same as a booktabs table float "
                           "for a paper, with caption and label) or csv (mean and std as separate numeric columns; "
                           "folds and clips as two columns)",
                        formats=("markdown", "latex", "csv"), format_from_out=True)
    p.set_defaults(func=_main)
