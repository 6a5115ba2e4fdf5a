"""The ``icegan`` subcommands, one module each (see :mod:`icegan.cli`), and what they share."""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, Optional

#: errors that come from the user's input (a missing or unreadable file, a bad value, a missing optional package, a
#: training that diverged):
#: reported as one line, not as a traceback
USER_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError, ImportError, FloatingPointError)


def error_text(exc: BaseException) -> str:
    """The message of a user error as a command prints it: ``str(exc)`` followed by the notes added to it on the way
    up (``BaseException.add_note``, e.g. the LOSO fold that raised it: :func:`icegan.executors.name_fold_in_error`),
    one space apart."""
    return " ".join([str(exc), *[str(n) for n in getattr(exc, "__notes__", ())]])


#: the commands that read a YAML config: command -> (module and class of its config, how to run a file with it)
CONFIG_KINDS: dict[str, tuple[str, str]] = {
    "icegan loso": ("icegan.commands.loso:LosoConfig", "icegan loso --config {path} --out DIR"),
    "train.py": ("icegan.pipeline:MainConfig", "icegan train --config {path}"),   # train.py only in a checkout
    "icegan suite": ("icegan.suite:SuiteConfig", "icegan suite --config {path} --out DIR"),
    "icegan gan train": ("icegan.gan.trainer:GanConfig", "icegan gan train --config {path}"),
    "icegan prepare": ("icegan.data.prepare:PrepareConfig", "icegan prepare --config {path}"),
    "icegan flow train": ("flownet.train:FlowTrainConfig", "icegan flow train --config {path}"),
    "icegan flow train --mode selfsup": ("flownet.selfsup:SelfSupConfig",
                                         "icegan flow train --mode selfsup --config {path}"),
    "icegan flow train-decflow": ("flownet.models.decflow:DecFlowTrainConfig",
                                  "icegan flow train-decflow --config {path}"),
}


#: the top-level keys of each :data:`CONFIG_KINDS` config (its class's dataclass fields), listed here so that
#: :func:`config_kind` can pass over a file that cannot be of a kind without importing its module (most of them import
#: torch: seconds and ~0.9 GB for a one-key typo's message); tests/test_review56b.py keeps it equal to the classes
CONFIG_TOP_KEYS: dict[str, frozenset[str]] = {
    "icegan loso": frozenset({"name", "protocol", "dataset", "oracle_epoch", "seed", "device", "threads", "workers",
                              "max_folds", "data", "model"}),
    "train.py": frozenset({"name", "out_dir", "seed", "device", "threads", "oracle_epoch", "data", "gan", "flow",
                           "recognizer"}),
    "icegan suite": frozenset({"name", "seeds", "runs", "ensembles", "baseline", "resamples", "stratify",
                               "per_dataset", "selection"}),
    "icegan gan train": frozenset({"name", "out_dir", "data", "model", "loss", "train"}),
    "icegan prepare": frozenset({"datasets", "cache_root", "size", "color", "detector", "margin", "refine",
                                 "neighbours", "sequences", "landmarks", "apex_spotting", "workers", "progress"}),
    "icegan flow train": frozenset({"name", "out_dir", "data", "model", "train", "liteflownet2", "raft", "ptlflow"}),
    "icegan flow train --mode selfsup": frozenset({"name", "out_dir", "data", "model", "loss", "train"}),
    "icegan flow train-decflow": frozenset({"name", "out_dir", "data", "model", "train"}),
}


def _top_keys(path) -> set | None:
    """The top-level keys of the YAML file ``path`` as :func:`icegan.config.load_config` reads them; None when it
    cannot be read as a mapping (then it loads as no config)."""
    from icegan.config import _yaml_value
    try:
        data = _yaml_value(Path(path).read_text(encoding="utf-8"))
    except Exception:           # noqa: BLE001 - a missing or unreadable file, not YAML, a key written twice
        return None
    return set(data) if isinstance(data, dict) else None


def _loads_as(path, command: str) -> bool:
    """Whether the YAML file ``path`` alone (no overrides) loads as the config of ``command`` (a
    :data:`CONFIG_KINDS` name): its keys, types and checks."""
    import importlib

    from icegan.config import load_config
    module, cls = CONFIG_KINDS[command][0].split(":")
    try:
        load_config(getattr(importlib.import_module(module), cls), path)
    except Exception:           # noqa: BLE001 - any failure (a missing file, a wrong key or value): not that kind
        return False
    return True


def config_kind(path, among=None) -> str | None:
    """The first command of ``among`` (:data:`CONFIG_KINDS` names; None: all of them) whose config the YAML file
    ``path`` loads as, alone (no overrides), else None. Used to say which command a refused file is for. A kind
    whose top-level keys (:data:`CONFIG_TOP_KEYS`) lack one of the file's is passed over without importing its
    config's module; the others are loaded whole (keys, types and checks at every level)."""
    names = list(CONFIG_KINDS) if among is None else list(among)
    keys = _top_keys(path)
    if keys is None:
        return None
    # a top-level key a kind does not have rules it out without importing its module: a typo's message stays cheap
    return next((c for c in names if keys <= CONFIG_TOP_KEYS[c] and _loads_as(path, c)), None)


def other_config_hint(path, command: str) -> str:
    """``"; <path> is a config for `icegan suite`: run icegan suite --config <path> --out DIR"``, for the error of
    ``command`` (a :data:`CONFIG_KINDS` name) on the config file ``path``, when the file alone does not load as that
    command's config and does as another's (e.g. a suite file given to ``icegan loso``, whose error named only the
    first unknown key, with a spelling hint); else ``""`` (no file, or the error came from the overrides or from a
    file of no command)."""
    if path is None or _loads_as(path, command):
        return ""
    kind = config_kind(path, [c for c in CONFIG_KINDS if c != command])
    if kind is None:
        return ""
    import shlex
    run = CONFIG_KINDS[kind][1].format(path=shlex.quote(str(path)))
    return f"; {path} is a config for `{kind}`: run {run}"


def config_error_with_hint(exc: Exception, path, command: str) -> Exception:
    """The error to raise for ``exc``, a ``ConfigError`` of ``command`` (a :data:`CONFIG_KINDS` name) on the config
    file ``path``: a ``ConfigError`` whose message is ``exc``'s followed by :func:`other_config_hint` (the command
    the file is for), or ``exc`` itself when there is no such hint."""
    from icegan.config import ConfigError
    hint = other_config_hint(path, command)
    return ConfigError(f"{exc}{hint}") if hint else exc


def load_command_config(cls: type, path, overrides, command: str):
    """``load_config(cls, path, overrides)`` for ``command`` (a :data:`CONFIG_KINDS` name, e.g. ``"icegan prepare"``).

    Raises:
        ConfigError: the config is refused; when the file alone loads as another command's config, the message
            ends with :func:`other_config_hint` (``; <path> is a config for `icegan loso`: run ...``).
        FileNotFoundError: ``path`` does not exist (from :func:`icegan.config.load_config`).
    """
    from icegan.config import ConfigError, load_config
    try:
        return load_config(cls, path, overrides)
    except ConfigError as exc:
        error = config_error_with_hint(exc, path, command)
        if error is exc:
            raise
        raise error from None


def reports_errors() -> bool:
    """True in the process that prints a command's one-line error or Ctrl-C line: every process except a ``torchrun``
    rank other than 0, whose line would repeat rank 0's (that rank exits with the same code, silently). A broken
    launch (``WORLD_SIZE`` or ``RANK`` not an integer) counts as rank 0, so that its error is seen. Reads only the
    environment (``WORLD_SIZE``, ``RANK``: :func:`icegan.distributed.launched_rank`), and imports torch only when
    ``WORLD_SIZE`` is set."""
    import os
    if not os.environ.get("WORLD_SIZE"):
        return True
    from icegan import distributed
    try:
        return distributed.launched_rank() == 0
    except RuntimeError:
        return True


#: the commands that run in one process and never join a ``torchrun`` process group (only ``train.py`` / ``icegan
#: train`` does), with what to use instead: launched by ``torchrun --nproc_per_node N`` every process would run the
#: whole command into the same folder
NO_TORCHRUN: dict[str, str] = {
    "icegan loso": "use workers=N",
    "icegan suite": "run it as one process, and give its loso runs workers=N",
    "icegan gan train": "run it as one process",
    "icegan flow train": "run it as one process",
    "icegan flow train-decflow": "run it as one process",
}


def refuse_torchrun(command: str) -> int | None:
    """Refuse ``command`` (a key of :data:`NO_TORCHRUN`) when ``torchrun`` launched it as one of several processes
    (``WORLD_SIZE`` > 1): the line ``<command>: error: <command> does not use torchrun; <what instead>`` on stderr
    (rank 0 alone prints it: :func:`reports_errors`). A torchrun variable that is not an integer is reported in one
    line too. Call it before the command reads or writes anything.

    Returns:
        2 (the exit code) when refused; None when the command may run (a plain ``python``/``icegan`` run).
    """
    import os
    if not os.environ.get("WORLD_SIZE"):
        return None
    from icegan import distributed
    try:
        world = distributed.launched_world_size()
    except RuntimeError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 2
    if world <= 1:
        return None
    if reports_errors():
        print(f"{command}: error: {command} does not use torchrun (WORLD_SIZE={world}: every process would run the "
              f"whole command into one folder); {NO_TORCHRUN.get(command, 'run it as one process')}", file=sys.stderr)
    return 2


def one_line_errors(prog: str) -> Callable:
    """Decorator for a subcommand handler ``fn(args) -> int``: a :data:`USER_ERRORS` exception is printed as
    ``"<prog>: error: <message>"`` on stderr (by rank 0 alone under ``torchrun``: :func:`reports_errors`) and the
    command exits with code 2. A command of :data:`NO_TORCHRUN` launched by ``torchrun`` is refused first
    (:func:`refuse_torchrun`).

    Args:
        prog: the command's name in the message; ``{field}`` is filled from the parsed arguments
            (``"icegan flow {flow_command}"``).
    """
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(args):
            name = prog.format(**vars(args))
            if name in NO_TORCHRUN and (refused := refuse_torchrun(name)) is not None:
                return refused
            try:
                return fn(args)
            except USER_ERRORS as exc:
                if reports_errors():
                    print(f"{name}: error: {error_text(exc)}", file=sys.stderr)
                return 2
        return wrapper
    return decorate


def add_print_config(parser) -> None:
    """The ``--print-config`` flag of a command that reads a YAML config with ``key=value`` overrides."""
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (the file, then the key=value overrides) as YAML and exit: "
                             "every key and its value")


def add_out_hint(parser, command: str, default_config: str = "") -> None:
    """A hidden ``--out`` for a training command that writes into ``out_dir/name`` of its config (``gan train``,
    ``flow train``, ``flow train-decflow``): ``--out DIR``, as ``icegan loso`` and ``flow run`` take it, is refused
    (exit 2, the command's usage line) with the overrides that choose the run folder, instead of argparse's bare
    "unrecognized arguments: --out" (which also took DIR silently as an override and so left it out of the message).
    The message names the run folder the ``--config`` given before ``--out`` (or ``default_config``) would use.

    Args:
        command: the subcommand as typed after ``icegan``, e.g. ``"flow train"``.
        default_config: the shipped config the command reads without ``--config`` (``icegan.paths.shipped_config``
            name, e.g. ``"gan_casme2"``); empty: ``--config`` is required.
    """
    import argparse

    class OutIsAnOverride(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            folder = values if values and "=" not in values else "DIR"      # `--out train.steps=2`: not a folder
            config = getattr(namespace, "config", None)
            given = dict(o.split("=", 1) for o in getattr(namespace, "overrides", None) or [] if "=" in o)
            example = f"icegan {command}" + (f" --config {config}" if config else
                                             "" if default_config else " --config CONFIG") + f" out_dir={folder}"
            where = _run_folder_of(config, default_config, given)
            parser.error(f"icegan {command} takes no {option_string}: it trains into out_dir/name, keys of its "
                         f"config ({where}); choose the run folder with the overrides out_dir={folder} name=NAME, "
                         f"e.g. {example}")
    parser.add_argument("--out", nargs="?", action=OutIsAnOverride, help=argparse.SUPPRESS)


def _run_folder_of(config, default_config: str, given: dict | None = None) -> str:
    """``"CONFIG: OUT_DIR/NAME"`` of the config file ``config`` (or the shipped ``default_config``) for
    :func:`add_out_hint`'s message, with the ``out_dir=`` / ``name=`` overrides in ``given`` (those typed before
    ``--out``) applied; ``"out_dir/name of its --config"`` where it cannot be read (not given yet, or a typo)."""
    given = given or {}
    try:
        if config:
            path, shown = config, config
        else:
            from icegan.paths import shipped_config
            path, shown = shipped_config(default_config), f"default config {default_config}.yaml"
        import yaml
        with open(path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
        return f"{shown}: {given.get('out_dir', cfg.get('out_dir', 'runs'))}/{given.get('name', cfg['name'])}"
    except Exception:           # only a message: an unreadable config is reported when the command reads it
        return "out_dir/name of its --config"


def print_config(cfg) -> int:
    """Print ``cfg`` as YAML (what the run would save as config.yaml) for ``--print-config``; returns exit code 0."""
    from icegan.config import config_yaml
    print(config_yaml(cfg), end="")
    return 0


#: commands whose finished work (LOSO folds, suite runs) is kept on disk and picked up by the same command line
RESUMABLE = ("loso", "suite", "train", "train.py")

#: commands given --out that may also write the data cache (``<data root>/cache``, ``cache_root``: prepared faces,
#: GAN pairs, MEGC2019 landmarks and synthetic clips), often on another disk than --out (:func:`file_system_error`)
WRITES_DATA_CACHE = ("loso", "suite", "train", "features", "fit", "gan eval")

#: training commands that resume from their run folder's last.pt, with the key that sets how often it is written
CHECKPOINTED = {"gan train": "train.checkpoint_every epochs", "flow train": "train.ckpt_every steps",
                "flow train-decflow": "train.ckpt_every steps"}


def stdout_closed(exc: BrokenPipeError) -> int:
    """Handle a ``BrokenPipeError`` that ended a command: when it is stdout's reader that went away (``icegan data
    check ... | head``), stdout is pointed at ``os.devnull`` (so that Python's flush at exit does not fail again) and the
    exit code is 141, as a shell reports for a program its pipe's reader stopped (128 + SIGPIPE); nothing is printed.
    Any other broken pipe (a worker process's) is raised again, as is any broken pipe while stdout has no file
    descriptor (a notebook's, a StringIO: it cannot have broken).

    Raises:
        BrokenPipeError: ``exc``, when stdout still has a reader or is not a file descriptor.
    """
    import os
    import select
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is None:                                          # no real stdout: the pipe that broke is another one
        raise exc
    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        gone = any(event & select.POLLERR for _, event in poller.poll(0))   # a pipe without a reader
    except (AttributeError, OSError, ValueError):          # no poll (Windows): assume it was stdout's
        gone = True
    if not gone:
        raise exc
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return 141


#: errno values of a file system that refuses a write (no space, over quota) or an access (no permission, read-only):
#: the message says what to change, with no traceback, also when the error names no file
_SPACE_ERRNOS = ("ENOSPC", "EDQUOT")
_ACCESS_ERRNOS = ("EACCES", "EPERM", "EROFS")
#: a path one of whose parts is a file where a folder is needed (``--out`` given an existing file's name)
_FILE_NOT_FOLDER_ERRNOS = ("ENOTDIR", "EEXIST")


def file_system_error(command: str, exc: OSError, out: Optional[str | Path] = None) -> int:
    """Report an OSError of the file system (a path that cannot be made, read or written; a full disk) in one line
    on stderr, without a traceback, and return exit code 2; one raised with the project's own message (no errno) is
    printed as it is. Raise ``exc`` again when it names no file and is not a full disk or a refused access (then it
    is not the user's to fix, and its traceback is wanted).

    The line is ``<command>: error: <reason>: <file>``, with what to do for a full disk, a refused access or a file
    where a folder is needed, and, for a full disk under a resumable command (:data:`RESUMABLE`), that the finished
    folds are kept. An error that names no file (a write to an open file on a full disk) says what was being written
    instead, ``<reason> (writing to --out <out>)``: the ``--out`` the command was given (a file or a folder; None: it
    was given none, and no path is named), ``... or the data cache)`` for a command that may write that too
    (:data:`WRITES_DATA_CACHE`).
    Under ``torchrun`` a rank other than 0 prints nothing (:func:`reports_errors`) and returns 2 too.
    """
    import errno
    name = command if command == "train.py" else f"icegan {command}"
    if exc.errno is None:           # raised with a message of the project's own (``FileExistsError(f"{path} exists")``)
        if reports_errors():
            print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    code = errno.errorcode.get(exc.errno, "")
    if exc.filename is None and code not in _SPACE_ERRNOS + _ACCESS_ERRNOS:
        raise exc
    cache = " or the data cache" if command in WRITES_DATA_CACHE else ""
    where = (f": {exc.filename}" if exc.filename is not None
             else f" (writing to --out {out}{cache})" if out is not None else "")
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    hint = ""
    if code in _SPACE_ERRNOS:
        hint = "; free space on that disk, or write to another"
        if command in RESUMABLE:
            hint += ", then run the same command again: the finished folds are kept"
    elif code in _ACCESS_ERRNOS:
        hint = "; check the permissions of that path (for an output, a folder you may write)"
    elif code in _FILE_NOT_FOLDER_ERRNOS and exc.filename is not None:
        hint = "; a file stands where a folder is needed: give another path"
    if reports_errors():            # under torchrun rank 0 alone: the others' lines would repeat it
        print(f"{name}: error: {exc.strerror or exc}{where}{hint}", file=sys.stderr)
    return 2


def interrupted(command: str) -> int:
    """Report a Ctrl-C of ``command`` in one line on stderr, without a traceback; returns the exit code 130.

    For a resumable command (:data:`RESUMABLE`) the line says what is kept and that the same command line resumes
    from it (:func:`icegan.protocol.run_loso` appends each fold as it finishes): for ``loso``, the finished folds
    (if any: the folds of a grouped network, all of them by default, finish with their group); for ``train.py``
    and ``train``, the finished folds and the GAN checkpoint of a fold cut short
    (``folds/<dataset>_<subject>/gan/checkpoints/last.pt``, which that fold's GAN resumes from); for ``suite``, the
    finished runs and the folds the interrupted run finished. For ``prepare``, that its finished clips are kept
    (:mod:`icegan.data.prepare`, ``.partial-<hash>``); for a training command with a checkpoint
    (:data:`CHECKPOINTED`, ``command`` with its action: ``gan train``), that it resumes from its last.pt. Under
    ``torchrun`` a rank other than 0 prints nothing (:func:`reports_errors`) and returns the same code.
    """
    name = command if command == "train.py" else f"icegan {command}"
    more = (": the folds finished so far are kept (if any: a grouped network's folds finish together, with their "
            "group); run the same command again to resume from them" if command in RESUMABLE else "")
    if command in ("train", "train.py"):        # no grouped folds; a fold's GAN resumes from its own last.pt
        more = (": the folds finished so far are kept, and so is the GAN checkpoint of a fold cut short "
                "(folds/<dataset>_<subject>/gan/checkpoints/last.pt), if one was written yet; run the same command "
                "again to resume from them")
    if command == "suite":
        more = (": the runs finished so far are kept, and so are the folds the interrupted run finished (a grouped "
                "network's folds finish together, with their group; a command: train run also keeps its cut fold's "
                "GAN checkpoint); run the same command again to resume from them")
    if command == "prepare":
        more = ": the clips prepared so far are kept; run the same command again to prepare only the rest"
    if command in CHECKPOINTED:
        more = (f": the run folder's last.pt (written every {CHECKPOINTED[command]}), if one was written yet, is "
                "kept; run the same command again to resume from it")
    if reports_errors():            # under torchrun every rank gets the Ctrl-C; rank 0 alone says so
        print(f"{name}: interrupted{more}", file=sys.stderr)
    return 130
