"""``icegan features``: the main job's flow features of your prepared clips, written as a feature table for
``icegan loso data.source=table`` (:func:`icegan.pipeline.export_features`)."""
from __future__ import annotations

import argparse
import shlex

from icegan.commands import add_print_config, one_line_errors, print_config
from icegan.paths import config_hint


def register(sub) -> None:
    """Add ``features`` to the ``icegan`` parser: the flow features of a main-job config's clips (or of ``--clips``)
    written as a feature table (:func:`icegan.pipeline.export_features`).

    Args:
        sub: the ``add_subparsers`` action of the ``icegan`` parser.
    """
    p = sub.add_parser(
        "features", help="compute the flow features (u, v, optical strain) of your clips once and write them as a "
                         "feature table for icegan loso",
        description="Prepare the clips of a main-job config (data section), compute their onset→apex flow with its "
                    "flow method (flow section) and write (u, v, optical strain) maps of recognizer.input_size, "
                    "min-max normalised per clip, as OUT/features.csv + OUT/maps/*.npy. Every recognizer, suite and "
                    "nested selection of `icegan loso` then runs on them with data.source=table "
                    "data.table=OUT/features.csv (OUT/features_labelled.csv when some clips have no label: "
                    "features.csv keeps those for icegan predict, a LOSO needs every row labelled).")
    p.add_argument("--config", default=None,
                   help=f"main-job YAML (e.g. {config_hint('casme2')}; default: {config_hint('demo')}, the "
                        f"synthetic demo)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for features.csv and maps/ (must not hold a features.csv yet: the output of a run "
                        "stopped before it wrote features.csv is written again); required, except with "
                        "--print-config")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--clips", metavar="CSV", default=None,
                   help="your own clips instead of the config's datasets: a clip list (subject, clip, frames, onset; "
                        "optional apex, offset, label, dataset; frames folders absolute or relative to the CSV's folder; "
                        "icegan/data/clip_list.py), prepared with the config's "
                        "preprocessing and flow so the maps match the ones a model was trained on; unlabelled clips "
                        "get an empty label, for icegan predict, and the labelled ones are also written alone to "
                        "OUT/features_labelled.csv, for icegan loso or fit")
    p.add_argument("--clips-mode", choices=("raw", "cropped"), default=None,
                   help="with --clips only (refused without it): raw (default) detects, aligns and crops the face on "
                        "each clip; cropped only resizes frames that are already face crops")
    add_print_config(p)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="main-job config overrides, e.g. flow.method=tvl1 recognizer.input_size=28; flow from a "
                        "trained flow checkpoint: flow.weights=runs/NAME/weights.pt (with flow.method set to its "
                        "backbone, srflownet by default)")
    p.set_defaults(func=_run)


@one_line_errors("icegan features")
def _run(args: argparse.Namespace) -> int:
    import logging

    if args.clips_mode is not None and not args.clips:      # it would be ignored: the config's datasets keep theirs
        raise ValueError(f"--clips-mode {args.clips_mode} applies to --clips only (the config's datasets are prepared "
                         f"in their own mode, data.prepare.datasets.N.mode); add --clips CSV, or leave --clips-mode "
                         f"out")
    if args.out is not None and not args.print_config:
        from icegan.paths import features_table_taken
        if taken := features_table_taken(args.out):   # before icegan.pipeline is imported (torch: seconds)
            raise ValueError(taken)
    from icegan.pipeline import export_features, load_main_config, with_clip_list

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_main_config(args.config, args.overrides)      # ConfigError, PrepareError: ValueErrors, one line
    if args.clips:
        cfg = with_clip_list(cfg, args.clips, args.clips_mode or "raw")
    if args.print_config:
        return print_config(cfg)
    if args.out is None:                      # not required by argparse, so that --print-config needs none
        raise ValueError("--out DIR is required: the folder for features.csv and maps/ (e.g. --out "
                         "data/features/casme2_srflownet)")
    from icegan.paths import check_output_folder
    check_output_folder(args.out, "the folder for features.csv and maps/",   # before the clips' flow, not after it
                        "give a new folder (e.g. --out data/features/casme2_srflownet)")
    try:
        table = export_features(cfg, args.out, progress=not args.no_progress)
    except FileExistsError as exc:
        raise ValueError(str(exc)) from None
    import pandas as pd
    # every cell text as written: a dataset "007" is not 7 in the `icegan loso ... dataset=` line printed below
    written = pd.read_csv(table, keep_default_na=False, dtype=str)
    labelled_rows = written["label"].astype(str) != ""
    n, unlabelled = len(written), int((~labelled_rows).sum())
    s = cfg.recognizer.input_size
    print(f"{n} clips: (3, {s}, {s}) u/v/strain maps from {cfg.flow.method} flow -> {table}")
    skipped_csv = table.parent / "skipped.csv"
    if skipped_csv.is_file():
        import sys

        from icegan.data.prepare import read_skipped
        try:
            skipped = read_skipped(skipped_csv, "run icegan features again into a new --out to list them")
        except ValueError as exc:
            print(f"warning: some clips could not be prepared and have no maps, but {exc}", file=sys.stderr)
        else:
            first = skipped.iloc[0]
            print(f"{len(skipped)} clip(s) could not be prepared and have no maps, e.g. {first['key']}: "
                  f"{first['reason']} (all of them in {skipped_csv})")
    if unlabelled:
        print(f"{unlabelled} of the {n} clips with maps have no label: score them with icegan predict --model MODEL.pt "
              f"--table {shlex.quote(str(table))} "
              f"--out predictions.csv (a model from icegan fit on maps made this same way)")
    if unlabelled < n:
        # a LOSO refuses a row without a label: with some, export_features also wrote the labelled rows alone
        from icegan.config import override_text
        labelled = table.parent / "features_labelled.csv" if unlabelled else table
        datasets = sorted(set(written.loc[labelled_rows, "dataset"].astype(str)))
        # one dataset: its own leave-one-subject-out (SDE), as the tables of the field report it
        scope = f" protocol=SDE {shlex.quote(override_text('dataset', datasets[0]))}" if len(datasets) == 1 else ""
        subjects = written.loc[labelled_rows, ["dataset", "subject"]].astype(str).drop_duplicates()
        what = "labelled ones" if unlabelled else "clips"
        if len(subjects) < 2:           # icegan loso would refuse: no subject left to train a fold on
            print(f"the {what} are of one subject ({subjects.iloc[0]['subject']}): a leave-one-subject-out run "
                  "needs labelled clips of at least 2 subjects")
        else:
            labels = f" data.labels={cfg.data.labels}" if cfg.data.labels != "megc2019" else ""
            # every path quoted for YAML where it needs it (a '#', '[', ': ') and for the shell (a space): the line
            # runs as pasted
            print(f"run a recognizer on the {what}: icegan loso --config "
                  f"{shlex.quote(config_hint('features_ststnet', True))} --out runs/<name> data.source=table "
                  f"{shlex.quote(override_text('data.table', str(labelled)))}{labels} data.size={s}{scope}")
    return 0
