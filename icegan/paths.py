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
