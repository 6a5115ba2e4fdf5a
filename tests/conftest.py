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


# Property-based tests (hypothesis). The default profile, "suite", is derandomized: `make test` and CI draw the same
# examples every run, so a property cannot turn red by chance on a clean clone. HYPOTHESIS_PROFILE=search draws
# fresh random examples, many more of them, to look for a counterexample
# (`HYPOTHESIS_PROFILE=search .venv/bin/python -m pytest -q tests/test_properties_*.py`); a failure prints the
# smallest example found, which then becomes an ordinary test. No example database is written in either profile.
try:  # pragma: no cover - hypothesis is a dev dependency, installed by `make setup`
    from hypothesis import HealthCheck, settings

    settings.register_profile("suite", derandomize=True, database=None, deadline=None, max_examples=60,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("search", derandomize=False, database=None, deadline=None, max_examples=2000,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(autouse=True)
def _quiet_cpu(monkeypatch):
    """Every test sees a quiet CPU: a LOSO run's "the CPU is busy" note (icegan.environment.cpu_contention) depends
    on what else the machine runs, so it would add a line to the stderr of tests that count lines, now and then.
    tests/test_environment.py tests the measurement and the note with the load given explicitly."""
    import icegan.environment
    monkeypatch.setattr(icegan.environment, "other_load", lambda: 0.0)


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; fails (never skips) when it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.fail(f"real test data not found at {root}: set ICEGAN_SHARED_DATA")
    return root


@pytest.fixture
def stand_in_faces(monkeypatch):
    """Raw mode without dlib: a face on every frame but those whose grey level is in the returned set (add to it), an
    identity alignment of the 40 px frame, and landmarks that are the frame's grey level at every point."""
    import numpy as np

    from icegan.data import align, landmarks
    no_face: set[int] = set()
    face = np.full((68, 2), 20.0, np.float32)
    monkeypatch.setattr(landmarks, "detect_faces", lambda img, detector="hog", upsample=None:
                        [] if int(img.mean()) in no_face else [(0, 40, 40, 0)])
    monkeypatch.setattr(landmarks, "landmarks_in_box", lambda img, box: face)
    identity = align.Alignment(matrix=np.array([[1.0, 0, 0], [0, 1.0, 0]]), native=40, angle_deg=0.0, landmarks=face,
                               refined=True)
    monkeypatch.setattr(align, "compute_alignment", lambda img, detector, margin, refine, landmarks=None: identity)
    monkeypatch.setattr(landmarks, "landmarks_on_frames", lambda frames, detector="hog", known=None: (
        np.stack([np.full((68, 2), float(f.mean()), np.float32) for f in frames]), np.arange(len(frames))))
    return no_face


@pytest.fixture
def htnet_clone(shared_data, tmp_path):
    """The MEGC2019 features in the HTNet release's layout (CSV at the root, ``datasets/STSNet_whole_norm_u_v_os``,
    ``datasets/combined_datasets_whole``), made of symlinks to the real files (nothing is copied)."""
    from icegan.data.features import CSV_NAME, FACE_DIR, FLOW_DIR
    src = shared_data / "megc2019_htnet"
    root = tmp_path / "HTNet"
    (root / "datasets").mkdir(parents=True)
    os.symlink(src / CSV_NAME, root / CSV_NAME)
    os.symlink(src / FLOW_DIR, root / "datasets" / "STSNet_whole_norm_u_v_os")
    os.symlink(src / FACE_DIR, root / "datasets" / "combined_datasets_whole")
    return root


@pytest.fixture
def resized_megc(shared_data):
    """A factory ``(folder, side, odd_clip=None) -> root``: the composite table cut to CASME II sub01-sub03, with
    their flow maps resized to side x side (``odd_clip``: one more pixel), written under ``folder`` (a tmp path)."""
    import pandas as pd
    from PIL import Image

    from icegan.data.features import CSV_NAME, FLOW_DIR

    def make(folder, side, odd_clip=None):
        src = shared_data / "megc2019_htnet"
        root = folder / f"maps{side}"
        (root / FLOW_DIR).mkdir(parents=True)
        df = pd.read_csv(src / CSV_NAME, dtype=str, keep_default_na=False)
        df = df[df["sub"].isin(["sub01", "sub02", "sub03"])]
        df.to_csv(root / CSV_NAME, index=False)
        for sub, clip in zip(df["sub"], df["filename_o"]):
            name = f"{sub}_{clip} .png"
            s = side + 1 if clip == odd_clip else side
            Image.open(src / FLOW_DIR / name).resize((s, s), Image.BILINEAR).save(root / FLOW_DIR / name)
        return root
    return make


@pytest.fixture
def sheet_reads(monkeypatch):
    """Counts the reads of the coding sheets' action units (:func:`icegan.data.action_units.action_unit_targets`):
    a list that gets one entry per call, the real function still answering."""
    import icegan.data.action_units as action_units
    calls = []
    real = action_units.action_unit_targets

    def counted(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(action_units, "action_unit_targets", counted)
    return calls
