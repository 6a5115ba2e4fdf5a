"""``icegan configs``: the configs shipped with icegan (the repository's ``configs/*.yaml``), for a user who installed
the package and has no checkout to copy them from.

Example::

    icegan configs                       # the folder, and each config with the first line of its header comment
    icegan configs demo_features         # that config's text, to redirect into a file of your own

The folder is :func:`icegan.paths.shipped_config_dir`: ``icegan/configs/`` of an installed wheel, ``configs/`` of a
checkout. A printed config is the file as shipped, comments included; give the file you saved it to as --config.
"""
from __future__ import annotations

import shutil
import textwrap

from icegan.commands import one_line_errors
from icegan.paths import shipped_config, shipped_config_dir


def register(subparsers) -> None:
    """Add the ``configs`` subcommand to the ``icegan`` parser."""
    p = subparsers.add_parser(
        "configs", help="list the shipped configs, or print one (for an install without the repository)",
        description="List the configs shipped with icegan (the repository's configs/*.yaml, also inside an "
                    "installed wheel): their folder, and each name with the first line of its header comment. "
                    "With NAME, print that config's text (redirect it into a file of your own, edit it, give it "
                    "as --config).")
    p.add_argument("name", nargs="?", default=None, metavar="NAME",
                   help="a shipped config to print, e.g. demo_features (the .yaml suffix is optional)")
    p.set_defaults(func=_main)


def _first_comment(text: str) -> str:
    """The first line of a config's header comment (its leading ``#`` lines), or ``""`` when it opens with none."""
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):
            return ""
        words = line.lstrip().lstrip("#").strip()
        if words:
            return words
    return ""


@one_line_errors("icegan configs")
def _main(args) -> int:
    if args.name is not None:
        print(shipped_config(args.name).read_text(encoding="utf-8"), end="")
        return 0
    folder = shipped_config_dir()
    paths = sorted(folder.glob("*.yaml"))
    print(f"{len(paths)} shipped configs in {folder} (`icegan configs NAME` prints one):")
    width = max((len(p.stem) for p in paths), default=0)
    room = max(shutil.get_terminal_size((100, 24)).columns - width - 4, 20)    # a line per config, cut to the screen
    for p in paths:
        about = textwrap.shorten(_first_comment(p.read_text(encoding="utf-8")), room, placeholder=" ...")
        print(f"  {p.stem:<{width}}  {about}".rstrip())
    return 0
