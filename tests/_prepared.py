"""A prepared-dataset stand-in for the main job's data tests (no frames on disk, no preprocessing)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def fake_prepared(monkeypatch, class3):
    """prepare_dataset replaced by a cache of len(class3) clips whose class is class3 (-1: none)."""
    import icegan.data.prepare as prepare
    n = len(class3)
    manifest = pd.DataFrame({"index": range(n), "key": [f"clips/p{i}/c" for i in range(n)], "dataset": "clips",
                             "subject": [f"clips/p{i}" for i in range(n)], "clip": "c", "class3": class3})
    frames = prepare.PreparedFrames(onset=np.zeros((n, 64, 64), np.uint8), apex=np.ones((n, 64, 64), np.uint8),
                                    apex_neighbours=np.zeros((n, 4, 64, 64), np.uint8),
                                    landmarks=np.zeros((n, 6, 68, 2), np.float32), cache_dir=Path("."))
    fake = prepare.PreparedDataset(manifest=manifest, frames=frames, skipped=pd.DataFrame(), cache_dir=Path("."),
                                   settings={})
    monkeypatch.setattr(prepare, "prepare_dataset", lambda cfg: fake)
