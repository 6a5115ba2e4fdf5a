"""Where the data lives.

``shared_data_root()`` is the folder of real licensed data used by tests and benchmarks
(``$ICEGAN_SHARED_DATA``, else ``<repo>/../shared/data``). ``default_data_root()`` is where users
put their datasets and where preprocessing caches go (``$ICEGAN_DATA``, else ``<repo>/data``).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_root() -> Path:
    """Root of the shared real data (``$ICEGAN_SHARED_DATA`` or ``<repo>/../shared/data``)."""
    env = os.environ.get("ICEGAN_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def default_data_root() -> Path:
    """User data root and cache location (``$ICEGAN_DATA`` or ``<repo>/data``)."""
    env = os.environ.get("ICEGAN_DATA")
    return Path(env) if env else REPO_ROOT / "data"


#: Files whose presence makes a folder the output of one run (``icegan loso`` / ``train.py``, ``icegan ensemble``, a
#: nested selection, a merge of runs): the folder and the files in it belong to that run.
RUN_HEADERS = ("run.json", "ensemble.json", "selection.json", "merged.json")


def run_folder_header(folder: str | Path) -> Path | None:
    """The run header file (:data:`RUN_HEADERS`) held by ``folder``, or None when it holds none (or is no folder)."""
    folder = Path(folder)
    return next((folder / n for n in RUN_HEADERS if (folder / n).is_file()), None)


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """Refuse an output file that would damage other results, before any work is done: an existing folder, or an
    existing file inside a run's folder (its ``predictions.csv``, ``metrics.md``, ...: overwriting one would leave the
    run inconsistent, e.g. a resume failing on a predictions file of another kind). A new file beside a run's files
    is allowed, and so is replacing a file elsewhere.

    Args:
        path: the file the command will write.
        flag: the option that named it, for the message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``path`` is a folder, or an existing file of a run folder (names the run's header file).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give the path of a file to write (e.g. {path / 'out.csv'})")
    header = run_folder_header(path.parent)
    if path.exists() and header is not None:
        raise ValueError(f"{flag} {path} would overwrite a file of the run in {path.parent} (it holds {header.name}); "
                         f"write elsewhere, e.g. {path.parent.parent / path.name}")
    return path
