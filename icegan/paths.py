"""Where the data lives.

``shared_data_root()`` is the folder of real licensed data used by tests and benchmarks
(``$ICEGAN_SHARED_DATA``, else ``<repo>/../shared/data`` in a checkout; an installed wheel has no such default).
``default_data_root()`` is where users
put their datasets and where preprocessing caches go (``$ICEGAN_DATA``, else ``<repo>/data`` in a checkout,
``./data`` for an installed wheel). ``shipped_config_dir()`` and ``shipped_config(name)`` find the configs shipped
with icegan, in a checkout (``configs/``) or an installed wheel (``icegan/configs/``); ``config_hint(name)``
names one in help texts and messages as the user can reach it.

A leading ``~`` in ``$ICEGAN_SHARED_DATA``, ``$ICEGAN_DATA`` and in every text value of a config is the home folder
(:func:`expand_home`, the one rule, from :mod:`flownet.paths`); ``$VARS`` in them are not expanded.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from flownet import paths as _shared  # the shared data root's one rule (flownet never imports icegan)

REPO_ROOT = Path(__file__).resolve().parent.parent


def is_checkout() -> bool:
    """Whether icegan runs from a checkout of its repository (or an editable install of one): ``pyproject.toml``
    beside the package. False for an installed wheel, whose parent folder is ``site-packages``."""
    return (REPO_ROOT / "pyproject.toml").is_file()


#: why an installed icegan has no shared data root, and what to do (:func:`shared_data_root`): the message of the one
#: rule in :mod:`flownet.paths`
SHARED_DATA_UNSET = _shared.SHARED_DATA_UNSET

#: a leading ``~`` / ``~user/`` of a path written as text is that home folder: :func:`flownet.paths.expand_home`
expand_home = _shared.expand_home


def unexpanded_note(path: str | Path) -> str:
    """What a "not found" message adds for a path that starts with a ``~`` or holds a ``$VAR`` no one expanded (the
    shell leaves them after ``--root=`` and inside quotes; a config expands only a leading ``~``: :func:`expand_home`),
    else ``""``: ``" (the ~ in it was not expanded: write the full path, e.g. /home/me/x)"``."""
    text = str(path)
    signs = ["~"] * text.startswith("~") + ["$VAR"] * bool(re.search(r"\$\{?[A-Za-z_]", text))
    if not signs:
        return ""
    try:
        example = expand_home(text) if text.startswith("~") else os.path.expandvars(text)
    except ValueError:
        example = text
    eg = f", e.g. {example}" if example != text else ""
    return f" (the {' and '.join(signs)} in it was not expanded: write the full path{eg})"


def shared_data_root_or_none() -> Path | None:
    """The shared real data root: ``$ICEGAN_SHARED_DATA`` (a leading ``~`` is the home folder), else
    ``<repo>/../shared/data`` in a checkout, else None (an installed wheel, whose ``<repo>`` is ``site-packages``: a
    folder beside it would hold no data). The rule is :func:`flownet.paths.shared_data_root_or_none`'s, with
    :func:`is_checkout` saying whether this is a checkout.

    Raises:
        ValueError: ``$ICEGAN_SHARED_DATA`` starts with a ``~user`` of no user (:func:`expand_home`).
    """
    return _shared.shared_data_root_or_none(REPO_ROOT if is_checkout() else None)


def shared_data_root() -> Path:
    """Root of the shared real data (:func:`shared_data_root_or_none`), for a default that needs one.

    Raises:
        FileNotFoundError: there is none (an installed icegan and no ``$ICEGAN_SHARED_DATA``); the message
            (:data:`SHARED_DATA_UNSET`) names ICEGAN_SHARED_DATA and the options that give a data folder instead.
    """
    return _shared.shared_data_root(REPO_ROOT if is_checkout() else None)


def default_data_root() -> Path:
    """User data root and cache location: ``$ICEGAN_DATA`` (a leading ``~`` is the home folder: :func:`expand_home`),
    else ``<repo>/data`` in a checkout, else (an installed wheel, whose ``<repo>`` would be ``site-packages``, often
    not writable) ``./data`` of the current folder.

    Raises:
        ValueError: ``$ICEGAN_DATA`` starts with a ``~user`` of no user (:func:`expand_home`).
    """
    env = os.environ.get("ICEGAN_DATA")
    if env:
        return Path(expand_home(env, "ICEGAN_DATA"))
    return REPO_ROOT / "data" if is_checkout() else Path.cwd() / "data"


def shipped_config_dir() -> Path:
    """The folder of the configs shipped with icegan (the repository's ``configs/*.yaml``), wherever icegan runs from.

    An installed wheel holds them as the package data ``icegan/configs/`` (pyproject.toml maps ``configs/`` there);
    a checkout, or an editable install of one, has them in ``<repo>/configs``. A pip user, who has no checkout,
    reaches them only here (``icegan configs``; ``icegan train`` with no --config runs the shipped ``demo.yaml``).

    Returns:
        The folder: ``icegan/configs`` beside the installed package when it is there, else the checkout's
        ``configs`` (a folder of ``<repo>`` that holds pyproject.toml, so that an unrelated ``configs`` folder of
        site-packages is never taken for it).

    Raises:
        FileNotFoundError: neither folder exists (an install built without its package data); the message names
            both and says to reinstall from a wheel or sdist built by setuptools from the repository.
    """
    installed = Path(__file__).resolve().parent / "configs"
    if installed.is_dir():
        return installed
    checkout = REPO_ROOT / "configs"
    if checkout.is_dir() and is_checkout():
        return checkout
    raise FileNotFoundError(f"the shipped configs are in neither {installed} (an installed icegan) nor {checkout} "
                            f"(a checkout): this icegan was installed without its package data; reinstall it from "
                            f"the repository (pip install <repo> or a wheel built from it)")


def shipped_config(name: str) -> Path:
    """The shipped config ``name`` (``demo``, ``demo.yaml``, ``configs/demo.yaml``: a folder is dropped, the suffix
    is optional) in :func:`shipped_config_dir`.

    Raises:
        FileNotFoundError: there is no shipped config of that name; the message names the folder and the closest
            names, or all of them, and ``icegan configs`` (which lists them).
    """
    import difflib
    folder = shipped_config_dir()
    stem = Path(name).name.removesuffix(".yaml").removesuffix(".yml")
    path = folder / f"{stem}.yaml"
    if path.is_file():
        return path
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    close = difflib.get_close_matches(stem, names, n=3, cutoff=0.6)
    raise FileNotFoundError(f"no shipped config named {name!r} in {folder}; "
                            + (f"did you mean {' or '.join(close)}? " if close else "")
                            + "`icegan configs` lists them")


def config_hint(name: str, runnable: bool = False) -> str:
    """The shipped config ``name`` (a stem: ``features_ststnet``) as a help text or message should name it to this
    user: ``configs/NAME.yaml`` in a checkout (relative to the repository root, as the README writes it); for an
    installed icegan, whose user has no ``configs/``, the shipped file's path in the package when ``runnable`` (a
    command line to copy: ``--config <site-packages>/icegan/configs/NAME.yaml``), else ``NAME.yaml of `icegan
    configs``` (short, for argparse help, which wraps a long path mid-word).

    A ``runnable`` name works from the current folder: in a checkout, ``configs/NAME.yaml`` only when that folder is
    the repository root, else the file's absolute path ``<repo>/configs/NAME.yaml`` (a command printed to a user in
    another folder, e.g. by ``icegan features --out`` elsewhere, runs as pasted).
    """
    if is_checkout():
        try:
            at_root = Path.cwd().resolve() == REPO_ROOT
        except OSError:                     # the current folder was removed: a relative path reaches nothing
            at_root = False
        return f"configs/{name}.yaml" if at_root or not runnable else str(REPO_ROOT / "configs" / f"{name}.yaml")
    if runnable:
        return str(Path(__file__).resolve().parent / "configs" / f"{name}.yaml")
    return f"{name}.yaml of `icegan configs`"


def with_config_hints(text: str, runnable: bool = False) -> str:
    """``text`` (a help epilog written for a checkout) with each ``configs/NAME.yaml`` in it replaced by
    :func:`config_hint` ``(NAME, runnable)``; unchanged in a checkout, except for ``runnable`` outside the repository
    root (the absolute path then)."""
    return re.sub(r"(?<![\w/.-])configs/([\w-]+)\.yaml", lambda m: config_hint(m.group(1), runnable), text)


#: Files whose presence makes a folder the output of one run (``icegan loso`` / ``train.py``, ``icegan ensemble``, a
#: nested selection, a merge of runs): the folder and the files in it belong to that run. The one list, in
#: :mod:`flownet.paths`: a flow training refuses such a folder too (:func:`flownet.train.start_run`).
RUN_HEADERS = _shared.RUN_HEADERS

#: the run header file held by a folder, or None: :func:`flownet.paths.run_folder_header`
run_folder_header = _shared.run_folder_header

#: What writes each run header, for messages.
RUN_KINDS = _shared.RUN_KINDS


#: The file that marks a folder as a suite's (``icegan suite --out``: a folder per run and its results page), written
#: as the suite makes the folder; a suite refuses a folder that holds a run header, and a run one that holds this.
SUITE_MARK = "suite_times.json"


def run_folder_conflict(folder: str | Path, own_header: str) -> str | None:
    """Why a run whose header is ``own_header`` (one of :data:`RUN_HEADERS`) must not write into ``folder``, or None
    when it may: the folder is new or empty, holds no run's files, or holds a run of the same kind (which the
    command resumes or checks itself). A folder that holds another kind of run (its predictions would be read as
    this run's finished folds, or replaced), a ``predictions.csv`` without any run header (of unknown origin) or a
    suite's mark (:data:`SUITE_MARK`: the suite could no longer resume) is a conflict.

    Args:
        folder: the ``--out`` folder of the run about to start.
        own_header: the header file this kind of run writes, e.g. ``"run.json"``.

    Returns:
        A message naming the folder and what it holds, ending with what to do; None when there is no conflict.

    Raises:
        ValueError: ``own_header`` is not one of :data:`RUN_HEADERS`.
    """
    if own_header not in RUN_HEADERS:
        raise ValueError(f"own_header must be one of {RUN_HEADERS}, got {own_header!r}")
    folder = Path(folder)
    if (folder / SUITE_MARK).is_file():
        return (f"{folder} holds {SUITE_MARK}: it is the folder of a suite (icegan suite: a folder per run and its "
                "results page), not one run's; give this run its own --out")
    other = next((folder / n for n in RUN_HEADERS if n != own_header and (folder / n).is_file()), None)
    if other is not None:             # also beside a header of its own kind: the folder holds another run's files
        return (f"{folder} holds {RUN_KINDS[other.name]} ({other.name}), not {RUN_KINDS[own_header]}; "
                f"give this run its own --out")
    if not (folder / own_header).is_file() and (folder / "predictions.csv").is_file():
        return (f"{folder} holds a predictions.csv but no run header ({', '.join(RUN_HEADERS)}), so it is no icegan "
                f"run this command could resume or replace; give another --out, or move that file away")
    return None



#: The files a run writes into its own folder (``icegan loso`` / ``train.py``, ``icegan ensemble``, a nested selection,
#: a merge): an output of another command must never replace one of them.
RUN_FILES = frozenset(RUN_HEADERS) | {
    "predictions.csv", "metrics.json", "metrics.md", "config.yaml", "environment.jsonl", "per_subject.csv",
    "per_subject.png", "confusion.png", "timing.json", "features_real.pt", "selection.csv", "reused_from.txt"}


def check_output_file(path: str | Path, flag: str = "--out", example: str = "out.csv") -> Path:
    """Refuse an output file that would damage other results, before any work is done: an existing folder, or one of
    the files a run wrote into its folder (:data:`RUN_FILES` in a folder holding a :data:`RUN_HEADERS` file: its
    ``predictions.csv``, ``metrics.md``, ...; replacing one would leave the run inconsistent, e.g. a resume failing
    on a predictions file of another kind). Any other file may be written or replaced, beside a run's files too (a
    table written into a run folder, then written again).

    Args:
        path: the file the command will write.
        flag: the option that named it, for the message.
        example: a file name of the kind the option takes, for the folder message (``compare.png``, ``model.pt``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``path`` is a folder, or a file of a run folder (names the run's header file).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give the path of a file to write (e.g. {path / example})")
    header = run_folder_header(path.parent)
    if header is not None and path.name in RUN_FILES:
        raise ValueError(f"{flag} {path} would overwrite a file of the run in {path.parent} (it holds {header.name}); "
                         f"write elsewhere, e.g. {path.parent.parent / path.name}")
    return path


def check_output_folder(path: str | Path, holds: str, fix: str, flag: str = "--out") -> Path:
    """Refuse an output folder that cannot be made, before any work is done: an existing file, or a path below a
    file (the command would otherwise fail at making it, after its work).

    Args:
        path: the folder the command will write into.
        holds: what the folder is for, for the message (``"the folder for features.csv and maps/"``).
        fix: what to give instead, for the message (``"give a new folder (e.g. --out runs/x)"``).
        flag: the option that named it.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``"<flag> <path> is a file; <flag> is <holds>: <fix>"``, or ``... cannot be made: <file> is a
            file; ...`` for a file above it.
    """
    path = Path(path)
    for q in (path, *path.parents):
        if q.exists():
            if not q.is_dir():
                what = "is a file" if q == path else f"cannot be made: {q} is a file"
                raise ValueError(f"{flag} {path} {what}; {flag} is {holds}: {fix}")
            break
    return path


def check_run_name(name: str, key: str = "name", folder: str = "the run's folder in out_dir",
                   example: str = "casme2_s0") -> str:
    """Refuse a config's run name that is not one folder name: the run is written into ``out_dir/<name>`` (and
    ``runs/<name>`` without ``--out``), so an empty name (``name=$RUN`` with RUN unset) wrote into ``out_dir`` itself,
    among other runs, and ``/abs``, ``~`` (the home folder) or ``a/../..`` wrote outside it.

    Args:
        name: the config's ``name``.
        key: the config key, for the message.
        folder: what the folder named so is, for the message (a suite's: its folder, runs/<name> without --out).
        example: a good name, for the message.

    Returns:
        ``name`` unchanged.

    Raises:
        ValueError: ``name`` is empty or blank, holds ``/`` or ``\\``, or is ``.`` or ``..``; the message names the key
            and the value.
    """
    if not name.strip() or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"{key} must be one folder name ({folder}), not empty, without '/' or "
                         f"'\\' and not '.' or '..', got {name!r}: give e.g. {key}={example}")
    return name


def features_table_taken(out: str | Path) -> str | None:
    """Why ``icegan features`` / :func:`icegan.pipeline.export_features` refuse the folder ``out`` (it holds a
    ``features.csv``: another export's), or None when it is free. Torch-free, so the command refuses before
    importing the pipeline."""
    table = Path(out) / "features.csv"
    if table.exists():
        return f"{table} exists: choose another --out or remove it (its maps are in {Path(out) / 'maps'})"
    return None
