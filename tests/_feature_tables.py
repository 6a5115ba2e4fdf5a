"""Toy recognizer settings and feature tables written from a FeatureSet, shared by the `icegan fit` / `predict`
tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from icegan.commands.loso import LosoConfig
from icegan.config import load_config

#: a quick toy-feature run (2 subjects per dataset, 3 epochs, one thread)
TOY = ["data.source=toy", "data.toy_subjects=2", "threads=1", "model.epochs=3"]
CLASSES = ["negative", "positive", "surprise"]


def toy_config(*overrides: str) -> LosoConfig:
    """The :data:`TOY` run's :class:`LosoConfig`, with ``key=value`` overrides."""
    return load_config(LosoConfig, None, [*TOY, *overrides])


def write_feature_table(folder: Path, fs, labels: str = "names", name: str = "clips.csv", scale: float = 1.0,
                        clip_suffix: str = "") -> Path:
    """The clips of ``fs`` as a feature table ``folder/name`` of .npy maps (times ``scale``) in ``maps_<stem>/``;
    labels: class ``names``, ``empty`` cells or ``none`` (no column); ``clip_suffix`` is appended to clip names."""
    maps = folder / f"maps_{Path(name).stem}"
    maps.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, r in fs.samples.iterrows():
        np.save(maps / f"{i}.npy", scale * fs.features[i].numpy())
        rows.append({"dataset": r["dataset"], "subject": r["subject"], "clip": r["clip"] + clip_suffix,
                     "label": CLASSES[int(r["label"])] if labels == "names" else "", "path": f"{maps.name}/{i}.npy"})
    table = pd.DataFrame(rows)
    if labels == "none":
        table = table.drop(columns=["label"])
    table.to_csv(folder / name, index=False)
    return folder / name
