"""Hand-made finished run folders for the comparison tests (icegan compare, icegan.significance)."""
from __future__ import annotations

import json

import pandas as pd
import yaml


def write_finished_run(d, rows, datasets=None, seed=0):
    """A finished run folder ``d`` (predictions.csv, run.json, config.yaml) of ``rows`` (subject, clip, y_true,
    y_pred); ``datasets``: None writes no dataset column (a hand-made file), else a function subject → its dataset
    cell. Returns ``d``."""
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"name": d.name, "seed": seed, "model": {"name": "ststnet"}}))
    pred = pd.DataFrame(rows, columns=["subject", "clip", "y_true", "y_pred"])
    pred.insert(0, "fold", pred["subject"].map({s: i for i, s in enumerate(sorted(pred["subject"].unique()))}))
    if datasets is not None:
        pred.insert(1, "dataset", pred["subject"].map(datasets))
    pred.to_csv(d / "predictions.csv", index=False)
    (d / "run.json").write_text(json.dumps({"protocol": "CDE", "oracle_epoch": False,
                                            "folds": sorted(pred["subject"].unique())}))
    return d
