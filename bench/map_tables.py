"""Feature tables that set the released MEGC2019 maps beside the main job's own maps of the same clips.

``icegan features`` writes the main job's (u, v, optical strain) maps of your prepared clips as a feature table. This
script writes two tables from it, both for ``icegan loso data.source=table`` (docs/benchmarks.md, "The released MEGC2019
maps against the main job's maps"):

* ``--subset OUT.csv``: the released 28×28 TV-L1 maps of ``megc2019_htnet`` for exactly the clips of the exported
  table (same dataset / subject / clip keys, so runs on both tables pair clip by clip in ``icegan compare``);
* ``--mixed OUT.csv``: the whole 442-clip composite as released, except that every clip of the exported table carries
  the exported map instead (composite CDE with the main job's maps where there are frames for them).

Every exported clip must be a composite clip with the same label, else the script stops and names the clip.

Usage::

    .venv/bin/icegan features --config configs/casme2.yaml --out data/features/casme2_srflownet
    .venv/bin/python bench/map_tables.py data/features/casme2_srflownet/features.csv \\
        --subset data/features/casme2_released.csv --mixed data/features/composite_mixed.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from flownet.user_numbers import whole_number_digits
from icegan.paths import shared_data_root


def map_tables(exported: Path, megc_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(subset, mixed) tables (columns dataset, subject, clip, label, path; absolute paths).

    Args:
        exported: ``features.csv`` written by ``icegan features`` (paths relative to it).
        megc_root: the ``megc2019_htnet`` folder.

    Raises:
        FileNotFoundError: ``exported`` or a map it lists is missing (names the file, or the line, map and clip).
        ValueError: a clip on two lines of ``exported`` (names both), a label that is no MEGC2019 class id 0..2 (an
            empty one, of a clip without a MEGC2019 class, or a class name of another label set: names the line and
            clip, and the table to give), an exported clip that is not in the composite, or whose label differs from
            the composite's.
    """
    from icegan.data.features import read_megc2019_table

    if not exported.is_file():
        raise FileNotFoundError(f"{exported} not found (give the features.csv that `icegan features` wrote)")
    ours = pd.read_csv(exported, dtype={"subject": str, "clip": str})
    line_of, label = {}, {}
    for line, (s, c, y, p) in enumerate(zip(ours["subject"], ours["clip"], ours["label"], ours["path"]), start=2):
        if (s, c) in line_of:
            raise ValueError(f"{exported} lines {line_of[(s, c)]} and {line} both hold clip {s}/{c}; keep one row "
                             "per clip")
        line_of[(s, c)] = line
        digits = None if pd.isna(y) else whole_number_digits(str(y).strip())     # 1, or 1.0 beside a blank cell
        if digits is None or int(digits) > 2:
            raise ValueError(f"{exported} line {line}: {s}/{c} has {'no label' if pd.isna(y) else f'label {y!r}'}, "
                             "not a MEGC2019 class id 0..2 (the composite's classes); give the table `icegan features` "
                             "writes with data.labels=megc2019: its features_labelled.csv when some clips have no "
                             "MEGC2019 class")
        label[(s, c)] = int(digits)
        if not (exported.parent / p).is_file():
            raise FileNotFoundError(f"{exported} line {line}: the map {exported.parent / p} of {s}/{c} is not "
                                    "found; rerun `icegan features` or mend the path")
    released = read_megc2019_table(megc_root, ["casme2", "samm", "smic"])[["dataset", "subject", "clip", "label",
                                                                           "path"]]
    key = list(zip(released["subject"], released["clip"]))
    label_of = dict(zip(key, released["label"]))
    ours_path = {}
    for line, (s, c, p) in enumerate(zip(ours["subject"], ours["clip"], ours["path"]), start=2):
        if (s, c) not in label_of:
            raise ValueError(f"{exported} line {line}: {s}/{c} is not a clip of the MEGC2019 composite in {megc_root}")
        if int(label_of[(s, c)]) != label[(s, c)]:
            raise ValueError(f"{exported} line {line}: {s}/{c} has label {label[(s, c)]}, the composite's is "
                             f"{label_of[(s, c)]}")
        ours_path[(s, c)] = str((exported.parent / p).resolve())
    released["path"] = [str(Path(p).resolve()) for p in released["path"]]
    subset = released[[k in ours_path for k in key]].reset_index(drop=True)
    mixed = released.copy()
    mixed["path"] = [ours_path.get(k, p) for k, p in zip(key, released["path"])]
    return subset, mixed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("exported", type=Path, help="features.csv written by icegan features")
    ap.add_argument("--megc-root", type=Path, default=shared_data_root() / "megc2019_htnet",
                    help="megc2019_htnet folder (default $ICEGAN_SHARED_DATA/megc2019_htnet, else "
                         "../shared/data/megc2019_htnet beside the repository)")
    ap.add_argument("--subset", type=Path, help="write the released maps of the exported clips here")
    ap.add_argument("--mixed", type=Path, help="write the composite with the exported maps swapped in here")
    args = ap.parse_args(argv)
    if args.subset is None and args.mixed is None:
        ap.error("give --subset and/or --mixed")
    try:
        subset, mixed = map_tables(args.exported, args.megc_root)
    except (FileNotFoundError, ValueError) as exc:      # a user's slip: one line, not a traceback
        print(f"map_tables.py: error: {exc}", file=sys.stderr)
        return 2
    for table, out in ((subset, args.subset), (mixed, args.mixed)):
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(out, index=False)
            print(f"{out}: {len(table)} clips")
    if args.mixed is not None:
        print(f"{len(subset)} of {len(mixed)} composite clips carry the exported maps in the mixed table")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
