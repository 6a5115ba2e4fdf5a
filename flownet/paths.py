"""Where the shared real data lives: the one rule for flownet and icegan (:mod:`icegan.paths` uses it; flownet imports
nothing of icegan).

The shared data root holds the licensed data sets (``casme2/``, ``megc2019_htnet/``, ``middlebury/``, ...):
``$ICEGAN_SHARED_DATA``, else ``<repo>/../shared/data`` beside a checkout of the repository. An installed wheel has no
such default: its ``<repo>`` is ``site-packages``, and a folder beside that would hold no data.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "SHARED_DATA_UNSET", "shared_data_root_or_none", "shared_data_root"]

#: the folder that holds flownet/ (and icegan/): the repository of a checkout, ``site-packages`` of an installed wheel
REPO_ROOT = Path(__file__).resolve().parent.parent

#: why there is no shared data root, and what to do (:func:`shared_data_root`)
SHARED_DATA_UNSET = ("no shared data folder: ICEGAN_SHARED_DATA is not set, and icegan / flownet is installed without "
                     "its repository (beside a checkout the default is ../shared/data); set ICEGAN_SHARED_DATA to the "
                     "folder that holds casme2/, megc2019_htnet/, ..., or give the data's folder itself (--root, or "
                     "data.root / a dataset's root: in the config; e.g. --root of icegan flow eval, data.root of a "
                     "flow training config)")


def shared_data_root_or_none(repo: str | Path | None = REPO_ROOT) -> Path | None:
    """The shared real data root, or None when there is none.

    Args:
        repo: the folder holding the packages (default :data:`REPO_ROOT`); a checkout when it holds
            ``pyproject.toml``. None: not a checkout (how :mod:`icegan.paths` passes an installed icegan on).

    Returns:
        ``Path($ICEGAN_SHARED_DATA)`` when that is set (not empty), else ``<repo>/../shared/data`` for a checkout,
        else None.
    """
    env = os.environ.get("ICEGAN_SHARED_DATA")
    if env:
        return Path(env)
    if repo is not None and (Path(repo) / "pyproject.toml").is_file():
        return Path(repo).parent / "shared" / "data"
    return None


def shared_data_root(repo: str | Path | None = REPO_ROOT) -> Path:
    """:func:`shared_data_root_or_none`, for a default that needs a folder.

    Raises:
        FileNotFoundError: there is none (no ``$ICEGAN_SHARED_DATA`` and ``repo`` no checkout); the message
            (:data:`SHARED_DATA_UNSET`) names ICEGAN_SHARED_DATA and the options that give a data folder instead.
    """
    root = shared_data_root_or_none(repo)
    if root is None:
        raise FileNotFoundError(SHARED_DATA_UNSET)
    return root
