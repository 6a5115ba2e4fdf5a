"""The ``icegan`` command line.

Each subcommand lives in its own module under ``icegan.commands`` and exposes
``register(subparsers)``, which adds its parser(s) and sets ``func`` (called with the parsed
namespace; returns an exit code or None). Heavy imports (torch, cv2) happen inside the handlers so
``icegan --help`` stays fast.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
from pathlib import Path

#: subcommand modules, in the order they appear in ``icegan --help``
COMMAND_MODULES = [
    "icegan.commands.loso",      # icegan loso
    "icegan.commands.ensemble",  # icegan ensemble
    "icegan.commands.table",     # icegan table
    "icegan.commands.compare",   # icegan compare
    "icegan.commands.suite",     # icegan suite
    "icegan.commands.data",      # icegan data composite|check, icegan prepare
    "icegan.commands.features",  # icegan features (flow features of your clips as a feature table)
    "icegan.commands.predict",   # icegan fit, icegan predict (a saved recognizer for new clips)
    "icegan.commands.flow",      # icegan flow train|eval|run
    "icegan.commands.gan",       # icegan gan train|eval, icegan generate
    "icegan.commands.train",     # icegan train (same as train.py)
    "icegan.commands.configs",   # icegan configs (the shipped configs/*.yaml, also in an installed wheel)
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="icegan",
        description="Micro-expression augmentation (ICE-GAN), facial optical flow (SRFlowNet) and "
                    "honest MEGC leave-one-subject-out benchmarks.")
    from icegan import __version__
    parser.add_argument("--version", action="version", version=f"icegan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def parse_with_overrides(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args`` that also accepts ``key=value`` overrides after options.

    argparse stops filling a ``nargs="*"`` positional once an option follows it, so
    ``train.py --config c.yaml a=1 --out runs/x b=2`` would reject ``b=2``; here such trailing
    ``key=value`` words join ``args.overrides`` (for commands that take overrides). Anything else
    unrecognised is an error, as with ``parse_args``; so is a key given twice among the overrides
    (:func:`icegan.config.refuse_repeated_keys`).

    Under ``torchrun`` (``TORCHELASTIC_RUN_ID`` set, as torchrun sets it) a rank other than 0 exits on such an
    error (``SystemExit(2)``) printing nothing: every rank parses the same command line, and rank 0 prints the usage
    and the error once (:func:`icegan.commands.reports_errors`). A process of another launcher (``RANK`` and
    ``WORLD_SIZE`` set without torchrun, e.g. a Kubernetes PyTorchJob worker) prints its error: it may be the only
    one to have it.
    """
    from icegan.commands import reports_errors
    silent = bool(os.environ.get("TORCHELASTIC_RUN_ID")) and not reports_errors()
    with contextlib.redirect_stderr(io.StringIO()) if silent else contextlib.nullcontext():
        args, extra = parser.parse_known_args(argv)
        if extra:
            if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
                args.overrides = list(args.overrides or []) + extra
            else:
                _chosen_parser(parser, args).error("unrecognized arguments: " + " ".join(extra))
        if hasattr(args, "overrides"):
            from icegan.config import ConfigError, refuse_repeated_keys
            try:                    # one command line sets a key once (the last would win without a word)
                refuse_repeated_keys(args.overrides or [])
            except ConfigError as exc:
                _chosen_parser(parser, args).error(str(exc))
        _expand_home_in_args(args, _chosen_parser(parser, args))
    return args


def _expand_home_in_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Give every option and positional value of ``args`` that starts with ``~`` its home folder
    (:func:`icegan.paths.expand_home`, the rule of config paths), as a shell would had the value not been quoted or
    written after ``--flag=``: ``--out "~/my runs"`` is the folder in your home, never a folder named ``~`` in the
    working directory. Overrides (``key=value``) are left to the config reader, which applies the same rule.

    Raises:
        SystemExit: (``parser.error``) a ``~user`` of no user of this machine, naming the value.
    """
    from icegan.paths import expand_home

    def expanded(value):
        if isinstance(value, (str, Path)) and str(value).startswith("~"):
            out = expand_home(str(value), "a path given on the command line")
            return Path(out) if isinstance(value, Path) else out
        if isinstance(value, list):
            return [expanded(v) for v in value]
        return value
    try:
        for name, value in vars(args).items():
            if name != "overrides":
                setattr(args, name, expanded(value))
    except ValueError as exc:
        parser.error(str(exc))


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the subcommand that ``args`` ran (``icegan flow train``'s for ``icegan flow train ...``), else
    ``parser`` itself.

    argparse hands a subcommand's unknown options up to the top-level parser, whose error would show
    ``usage: icegan [-h] [--version] COMMAND ...`` and ``icegan: error: ...``; the subcommand's own parser names the
    command and shows the options it does take (``--out`` given to ``icegan flow train``, which names its run with
    ``name=``, is then answered by that command's usage line).
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _chosen_parser(chosen, args)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    """The subcommand that ran, with its action where it has one (``loso``, ``gan train``, ``flow eval``)."""
    action = getattr(args, "gan_command", None) or getattr(args, "flow_command", None)
    return f"{args.command} {action}" if action else args.command


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_with_overrides(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
        sys.stdout.flush()          # a reader of stdout gone (`| head`) shows here, not as Python's noise at exit
    except KeyboardInterrupt:
        from icegan.commands import interrupted
        return interrupted(_command_name(args))
    except BrokenPipeError as exc:
        from icegan.commands import stdout_closed
        return stdout_closed(exc)
    except OSError as exc:          # a folder that cannot be made or written, a full disk: one line naming the path
        from icegan.commands import file_system_error
        return file_system_error(_command_name(args), exc, vars(args).get("out"))     # the commands that take --out
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
