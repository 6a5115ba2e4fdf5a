"""``icegan data composite``, ``icegan data check`` and ``icegan prepare``."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from icegan.commands import one_line_errors
from icegan.commands._numbers import integer
from icegan.paths import config_hint


#: argparse type of ``icegan data check --workers``: an integer >= 1 of image-decoding threads
_threads = integer(1, meaning="threads decoding images")


def register(subparsers) -> None:
    """Add ``data`` (with ``composite`` and ``check``) and ``prepare`` to the ``icegan`` parser."""
    data = subparsers.add_parser("data", help="inspect datasets: MEGC2019 composite counts, layout checks",
                                 description="Inspect CASME II / SAMM / SMIC as distributed by their owners.")
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    comp = dsub.add_parser("composite", help="MEGC2019 composite counts from the official sheets alone",
                           description="Apply the MEGC2019 3-class composite rules to the CASME II and "
                                       "SAMM annotation sheets and print/write the counts. Exit status 0: every row "
                                       "counted or left out by the MEGC2019 rules (an apex not coded, an apex on or "
                                       "before the onset: 2 rows of the official CASME II sheet), each excluded row "
                                       "printed; 1: a row is excluded because its emotion is no label of the sheet "
                                       "(a typo) or because an onset or apex cell mistyped (5.7, an empty SAMM cell) "
                                       "is no frame number, or no clip is counted; 2: a fatal error (a sheet missing "
                                       "or unreadable).")
    comp.add_argument("--annotations-dir", required=True, type=Path,
                      help="folder holding CASME2-coding-20140508.xlsx and/or SAMM_Micro_FACS_Codes_v2.xlsx (or "
                           "each exported as .csv under the same name; a dataset without its sheet is not counted)")
    comp.add_argument("--json", type=Path, default=None, help="write the counts to this JSON file")
    comp.set_defaults(func=_composite)

    chk = dsub.add_parser("check", help="report what is on disk versus the annotation sheet",
                          description="Clips found, clips in the sheet but missing on disk, missing "
                                      "frames, onset/apex outside the frames present, unreadable images, "
                                      "counts per class and subject. A bad clip on disk never stops the check "
                                      "(it is reported and skipped); a malformed row of the clip list or sheet "
                                      "stops it, naming the file and line. Exit status 0: every clip in scope is "
                                      "usable or skipped only for its sheet row's onset/apex coding (an onset or "
                                      "apex not coded, '/', an apex on or before the onset, as 2 rows of the "
                                      "official CASME II sheet: listed as skipped); warnings alone, such as a clip "
                                      "truncated after its apex, leave it 0; 1: a problem of the copy on disk or of "
                                      "your input (a clip folder missing; its onset or apex frame missing, "
                                      "unreadable, ambiguous or of another size, or a frame of the span its "
                                      "apex is to be spotted on (SMIC, a clip list without an apex) unreadable "
                                      "or of another size; subjects of the sheet (SMIC with --composite-only: of the "
                                      "MEGC2019 composite, or fewer clips of a class) not on disk, a folder left "
                                      "unread, a "
                                      "typo in a composite row, an onset or apex cell mistyped such as 5.7), or no "
                                      "clip usable (other frames missing, unreadable or of another size are "
                                      "warnings only: 0); 2: a fatal error (the root, sheet or clip list unusable).")
    chk.add_argument("--dataset", required=True, choices=["casme2", "samm", "smic", "clips"],
                     help="clips: your own clip list (a CSV; --root is its path; icegan/data/clip_list.py)")
    chk.add_argument("--root", required=True, type=Path, help="dataset root (official layout)")
    chk.add_argument("--annotations", type=Path, default=None,
                     help="annotation sheet (default: the official file, or its .csv export under the same "
                          "name, found near the root)")
    chk.add_argument("--json", type=Path, default=None, help="write the report to this JSON file")
    chk.add_argument("--composite-only", action="store_true", help="check only MEGC2019 composite clips")
    chk.add_argument("--no-read-images", action="store_true", help="do not decode every frame (faster)")
    chk.add_argument("--workers", type=_threads, default=2, help="threads decoding images (default 2)")
    chk.set_defaults(func=_check)

    data.set_defaults(func=lambda a: (data.print_help(), 2)[1])

    prep = subparsers.add_parser("prepare", help="face preprocessing into the cache (onset, apex, neighbours)",
                                 description="Detect/align (raw) or resize (cropped) every usable clip "
                                             "and cache uint8 arrays under data/cache/<hash>/.")
    prep.add_argument("--config", required=True, type=Path, help=f"YAML config, e.g. {config_hint('prepare_casme2')}")
    prep.add_argument("overrides", nargs="*", metavar="key=value",
                      help="config overrides, e.g. workers=1 size=64 cache_root=/tmp/cache")
    prep.set_defaults(func=_prepare)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@one_line_errors("icegan data composite")
def _composite(args: argparse.Namespace) -> int:
    from flownet.io import check_output_path
    from icegan.data.composite import composite_from_sheets
    if args.json:                        # checked before the sheets are read, not after
        check_output_path(args.json, "--json (the counts file)", example="composite.json")
    out = composite_from_sheets(args.annotations_dir)
    print(f"{'dataset':8s} {'clips':>5s} {'negative':>8s} {'positive':>8s} {'surprise':>8s} {'subjects':>8s}")
    for ds, c in out.items():
        print(f"{ds:8s} {c['clips']:5d} {c['negative']:8d} {c['positive']:8d} {c['surprise']:8d} {c['subjects']:8d}")
        for e in c["excluded"]:
            print(f"  excluded {ds}/{e['clip']}: {e['reason']}")
        for n in c["notes"]:            # as icegan data check says them
            print(f"  [warn] {ds}/{n['clip']}: {n['note']}")
    from icegan.data.composite import sheet_lookalikes
    from icegan.data.sheets import CASME2_SHEET, SAMM_SHEET, sheet_names
    for ds, sheet in (("casme2", CASME2_SHEET), ("samm", SAMM_SHEET)):
        if ds not in out:               # composite_from_sheets found neither name (official_sheet_in)
            alike = sheet_lookalikes(args.annotations_dir, sheet)     # a browser's "(1)" copy, another case
            print(f"{ds}: not counted: its sheet {sheet} (or {sheet_names(sheet)[1]}) is not in {args.annotations_dir}"
                  + (f" ({'; '.join(alike)})" if alike else ""))
    # composite_from_sheets reads the CASME II and SAMM sheets only (never "smic"), and at least one of them (it
    # refuses a folder with neither), each with its single-dataset label set (casme2_5, samm_5)
    print("smic: not from a sheet: the composite's SMIC-HS clips (164 in MEGC2019) take their class from the folder "
          "names of your copy; count them with icegan data check --dataset smic --root DIR")
    # the single-dataset protocols (data.labels) on the same sheet rows, all of them
    print("single-dataset label sets (data.labels=NAME; every sheet row, the composite's or not):")
    for ds, counts in out.items():
        for name, s in counts["sde"]["label_sets"].items():
            no = ", ".join(f"{e} {n}" for e, n in s["no_class"].items())
            print(f"  {name} ({ds}): " + ", ".join(f"{c} {n}" for c, n in s["classes"].items())
                  + f" = {s['clips']} clips" + (f"; no class: {no}" if no else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {args.json}")
    # 1: a row excluded for an emotion that is no label of its sheet or a mistyped onset/apex cell (a typo; its reason
    # printed above) or nothing counted; a row the MEGC2019 rules leave out (2 of the official CASME II sheet) leaves 0
    from icegan.data.composite import MISWRITTEN_CELL, UNKNOWN_EMOTION
    return int(any(e["rule"] in (UNKNOWN_EMOTION, MISWRITTEN_CELL) for c in out.values() for e in c["excluded"])
               or not sum(c["clips"] for c in out.values()))


def _word_for(exc: FileNotFoundError, command: str) -> None:
    """Reword in place the root and sheet hints in ``exc`` (a missing root or sheet: :mod:`icegan.data.base`,
    which names train.py's override keys) for ``command``, whose keys or flags they then name
    (:func:`icegan.data.base.hint_for_command`); an error with no such hint, or an OS error (errno set: its text is
    not its args), is left as it is."""
    from icegan.data.base import hint_for_command
    if exc.errno is None and len(exc.args) == 1:
        exc.args = (hint_for_command(str(exc.args[0]), command),)


@one_line_errors("icegan data check")
def _check(args: argparse.Namespace) -> int:
    _logging()
    quiet = logging.getLogger("icegan.data")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the report lists every problem itself; for this check only, not after it
    try:
        return _check_quietly(args)
    finally:
        quiet.setLevel(level)


def _check_quietly(args: argparse.Namespace) -> int:
    """The body of ``icegan data check`` (:func:`_check`), run with the icegan.data warnings held back."""
    from flownet.io import check_output_path
    from icegan.data.base import DatasetLayoutError, missing_root_message
    from icegan.data.check import check_dataset
    if args.json:                        # checked before the check (minutes, decoding every frame), not after
        check_output_path(args.json, "--json (the report file)", example="check.json")
    if args.dataset != "clips" and not args.root.is_dir():      # (a clip list's --root is its CSV)
        raise DatasetLayoutError(missing_root_message(args.dataset, args.root, given_by="--root"))
    try:
        rep = check_dataset(args.dataset, args.root, args.annotations, composite_only=args.composite_only,
                            read_images=not args.no_read_images, workers=args.workers, progress=True)
    except FileNotFoundError as exc:
        _word_for(exc, "icegan data check")
        raise
    print(rep.text())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rep.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {args.json}")
    return int(rep.problems_found())      # 1: a problem of the copy or input, or none usable (not the sheet's coding)


@one_line_errors("icegan prepare")
def _prepare(args: argparse.Namespace) -> int:
    _logging()
    from icegan.commands import load_command_config   # a main-job or loso file: says which command it is for
    from icegan.data.prepare import PrepareConfig, prepare_dataset
    from icegan.labels import DEFAULT_LABELS, get_label_set
    cfg = load_command_config(PrepareConfig, args.config, args.overrides, "icegan prepare")
    try:
        p = prepare_dataset(cfg)
    except FileNotFoundError as exc:
        _word_for(exc, "icegan prepare")
        raise
    m = p.manifest
    print(f"cache: {p.cache_dir}")
    print(f"prepared {len(p)} clips ({p.frames.onset.shape[1]}x{p.frames.onset.shape[2]} {cfg.color}), "
          f"skipped {len(p.skipped)}")
    megc = get_label_set(DEFAULT_LABELS).classes      # class3 ids 0..2 are MEGC2019's classes; -1: none of them
    for (ds, c3), n in m.groupby(["dataset", "class3"]).size().items():
        name = megc[c3] if 0 <= c3 < len(megc) else "no MEGC2019 class"
        print(f"  {ds} {name} (class3={c3}): {n}")
    for _, s in p.skipped.iterrows():
        print(f"  skipped {s['key']}: {s['reason']}")
    return 0
