"""Shared test fixtures.

Tests that need the real licensed data read it from ``../shared/data`` (or ``$ICEGAN_SHARED_DATA``).
CI has that folder, so these tests fail loudly instead of skipping when it is missing.
"""
from __future__ import annotations

import os

import pytest

from icegan.paths import shared_data_root

# keep the 2-core CI machine responsive when pytest-xdist runs two workers
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:  # pragma: no cover - torch is always installed by `make setup`
    import torch
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; fails (never skips) when it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.fail(f"real test data not found at {root}: set ICEGAN_SHARED_DATA")
    return root
