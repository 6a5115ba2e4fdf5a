"""Review of SAMM's five classes (data.labels=samm_5) beside MEGC2019's and CASME II's: the commands a researcher runs
on a samm_5 run or table, and the places that assumed two label sets or CASME II alone for five classes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SAMM5 = ("anger", "contempt", "happiness", "surprise", "other")


def write_samm_table(folder: Path, subjects: int = 3, per_class: int = 1, seed: int = 0, dataset: str = "samm",
                     labelled: bool = True) -> Path:
    """A feature table of SAMM's five classes: each subject has ``per_class`` clips per class, u shifted by 0.1 × the
    class id; labels as names (``labelled``) or left out (new clips to score)."""
    rng = np.random.default_rng(seed)
    (folder / "maps").mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(subjects):
        for k in range(5 * per_class):
            a = (rng.random((3, 28, 28)) * 0.5).astype(np.float32)
            a[0] += 0.1 * (k % 5)
            np.save(folder / "maps" / f"s{s}_{k}.npy", a)
            rows.append({"dataset": dataset, "subject": f"{s + 6:03d}", "clip": f"{s + 6:03d}_{k}",
                         **({"label": SAMM5[k % 5]} if labelled else {}), "path": f"maps/s{s}_{k}.npy"})
    pd.DataFrame(rows).to_csv(folder / "features.csv", index=False)
    return folder / "features.csv"


def test_predict_scores_new_clips_of_any_dataset_with_a_samm_5_model(tmp_path):
    """A samm_5 model scores the maps of your own recordings (a clip list's clips, dataset 'clips', no label), as
    icegan predict's help says; a labelled row of another dataset is still refused."""
    from icegan.commands.loso import LosoConfig
    from icegan.commands.predict import fit, predict_table
    from icegan.config import load_config
    train = write_samm_table(tmp_path / "train")
    cfg = load_config(LosoConfig, None, ["data.source=table", f"data.table={train}", "data.labels=samm_5",
                                         "model.name=logreg", "threads=1"])
    fit(cfg, tmp_path / "m.pt", progress=False)
    new = write_samm_table(tmp_path / "new", subjects=1, dataset="clips", labelled=False, seed=4)
    p, _, _ = predict_table([tmp_path / "m.pt"], new)
    assert len(p) == 5 and p["y_true"].isna().all() and set(p["predicted"]) <= set(SAMM5)
    labelled = write_samm_table(tmp_path / "lab", subjects=1, dataset="casme2", seed=4)
    with pytest.raises(ValueError, match=r"a casme2 clip, but data.labels=samm_5"):
        predict_table([tmp_path / "m.pt"], labelled)
