"""Where the shared real data lives, and which files make a folder an icegan run's (:data:`RUN_HEADERS`): the one
rule for flownet and icegan (:mod:`icegan.paths` uses it; flownet imports nothing of icegan).

The shared data root holds the licensed data sets (``casme2/``, ``megc2019_htnet/``, ``middlebury/``, ...):
``$ICEGAN_SHARED_DATA``, else ``<repo>/../shared/data`` beside a checkout of the repository. An installed wheel has no
such default: its ``<repo>`` is ``site-packages``, and a folder beside that would hold no data.

:func:`expand_home` is the one rule for a path a user writes as text where no shell reads it (a config value,
``$ICEGAN_SHARED_DATA`` or ``$ICEGAN_DATA`` from a ``.env`` file): a leading ``~`` is the home folder, as in a shell;
nothing else is expanded.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["REPO_ROOT", "SHARED_DATA_UNSET", "expand_home", "shared_data_root_or_none", "shared_data_root",
           "RUN_HEADERS", "RUN_KINDS", "run_folder_header"]

#: the folder that holds flownet/ (and icegan/): the repository of a checkout, ``site-packages`` of an installed wheel
REPO_ROOT = Path(__file__).resolve().parent.parent

#: why there is no shared data root, and what to do (:func:`shared_data_root`)
SHARED_DATA_UNSET = ("no shared data folder: ICEGAN_SHARED_DATA is not set, and icegan / flownet is installed without "
                     "its repository (beside a checkout the default is ../shared/data); set ICEGAN_SHARED_DATA to the "
                     "folder that holds casme2/, megc2019_htnet/, ..., or give the data's folder itself (--root, or "
                     "data.root / a dataset's root: in the config; e.g. --root of icegan flow eval, data.root of a "
                     "flow training config)")


#: a text that starts at a home folder: ``~`` alone, or ``~`` / ``~user`` followed by a folder separator
_HOME_START = re.compile(r"~\Z|~([^/\\]*)[/\\]" if os.sep == "\\" else r"~\Z|~([^/]*)/")


def expand_home(path: str, what: str = "path") -> str:
    """``path`` with a leading ``~`` (``~``, ``~/data``) or ``~user`` (``~alice/data``) replaced by that home folder,
    as a shell does (:func:`os.path.expanduser`); any other text unchanged. ``~user`` alone (no folder after it) is
    left as text, and so are ``$VARS`` (a shell expands ``$HOME`` on a command line already, and a config or
    ``.env`` value holding ``$`` means that character) and a ``~`` anywhere but first.

    The one rule for paths written where no shell reads them: every text value of a config (:mod:`icegan.config`),
    ``$ICEGAN_SHARED_DATA`` (:func:`shared_data_root_or_none`) and ``$ICEGAN_DATA``
    (:func:`icegan.paths.default_data_root`), so that no folder named ``~`` is ever made.

    Args:
        path: the text as written.
        what: how a message names where it was written (``config key 'out_dir'``, ``ICEGAN_SHARED_DATA``).

    Returns:
        The text with its home folder in place of the leading ``~``; ``path`` itself when it starts otherwise.

    Raises:
        ValueError: the leading ``~user`` names no user of this machine, or ``~`` has no home folder ($HOME unset
            and no password entry); the message names ``what`` and the text and says to write the full path.
    """
    start = _HOME_START.match(path)
    if start is None:
        return path
    out = os.path.expanduser(path)
    if out.startswith("~"):
        user = start.group(1) or ""
        why = f"there is no user {user!r} on this machine" if user else "$HOME is not set"
        raise ValueError(f"{what}: {path!r} starts at the home folder of ~{user}, but {why}: write the full path")
    return out


def shared_data_root_or_none(repo: str | Path | None = REPO_ROOT) -> Path | None:
    """The shared real data root, or None when there is none.

    Args:
        repo: the folder holding the packages (default :data:`REPO_ROOT`); a checkout when it holds
            ``pyproject.toml``. None: not a checkout (how :mod:`icegan.paths` passes an installed icegan on).

    Returns:
        ``Path($ICEGAN_SHARED_DATA)`` when that is set (not empty; a leading ``~`` is the home folder:
        :func:`expand_home`), else ``<repo>/../shared/data`` for a checkout, else None.

    Raises:
        ValueError: ``$ICEGAN_SHARED_DATA`` starts with a ``~user`` of no user (:func:`expand_home`).
    """
    env = os.environ.get("ICEGAN_SHARED_DATA")
    if env:
        return Path(expand_home(env, "ICEGAN_SHARED_DATA"))
    if repo is not None and (Path(repo) / "pyproject.toml").is_file():
        return Path(repo).parent / "shared" / "data"
    return None


def shared_data_root(repo: str | Path | None = REPO_ROOT) -> Path:
    """:func:`shared_data_root_or_none`, for a default that needs a folder.

    Raises:
        FileNotFoundError: there is none (no ``$ICEGAN_SHARED_DATA`` and ``repo`` no checkout); the message
            (:data:`SHARED_DATA_UNSET`) names ICEGAN_SHARED_DATA and the options that give a data folder instead.
        ValueError: ``$ICEGAN_SHARED_DATA`` starts with a ``~user`` of no user (:func:`expand_home`).
    """
    root = shared_data_root_or_none(repo)
    if root is None:
        raise FileNotFoundError(SHARED_DATA_UNSET)
    return root


#: Files whose presence makes a folder the output of one icegan run (``icegan loso`` / ``train.py``, ``icegan
#: ensemble``, a nested selection, a merge of runs): the folder and the files in it belong to that run. Here, not in
#: :mod:`icegan.paths` (which uses it), so that a flow training refuses such a folder too (flownet imports nothing of
#: icegan).
RUN_HEADERS = ("run.json", "ensemble.json", "selection.json", "merged.json")

#: What writes each run header, for messages.
RUN_KINDS = {"run.json": "a LOSO run of icegan loso or train.py", "ensemble.json": "an ensemble of icegan ensemble",
             "selection.json": "a nested selection of icegan suite", "merged.json": "a merge of bench/merge_runs.py"}


def run_folder_header(folder: str | Path) -> Path | None:
    """The run header file (:data:`RUN_HEADERS`) held by ``folder``, or None when it holds none (or is no folder)."""
    folder = Path(folder)
    return next((folder / n for n in RUN_HEADERS if (folder / n).is_file()), None)
