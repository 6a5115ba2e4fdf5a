"""A finished suite folder copied (cp -r) and rerun with a higher max_folds: its members are extended, and their
ensembles are made again from the copy's members (as in place) instead of being refused as "other members"."""
import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from icegan.cli import main
from icegan.data.toy_features import make_toy_features
from icegan.ensemble import ensemble_runs
from icegan.protocol import LosoStateError, run_loso
from icegan.suite import run_suite

from _feature_tables import write_feature_table
from _runs import random_prob_fn

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DATA = "data.source=table, data.table={table}, data.normalize=minmax, data.size=0, workers=1, threads=1"
SUITE = """\
name: tiny61
seeds: [0]
baseline: lr
resamples: 199
runs:
  - {{label: lr, config: {configs}/features_logreg.yaml, seeded: false,
      overrides: [{data}, model.logreg_max_iter=200]}}
  - {{label: rf, config: {configs}/features_randomforest.yaml, overrides: [{data}, model.forest_trees=3]}}
ensembles:
  - {{label: lr + rf, members: [lr, rf], weights: [2, 1]}}
  - {{label: all seeds, members: [lr, rf], over_seeds: true}}
"""


def _folds(run: Path) -> list:
    return sorted(pd.read_csv(run / "predictions.csv")["fold"].unique())


def test_a_copied_suite_rerun_with_more_folds_remakes_its_ensembles(tmp_path):
    """full/ (max_folds=2) copied to copy/, rerun there with max_folds=3: the runs were extended to 3 folds, then
    the ensemble stopped the suite: its ensemble.json named full/'s members (absolute paths) and the copy's members
    (same relative paths) no longer had the recorded predictions. It now exits 0 and every ensemble covers its
    members' 3 folds."""
    table = write_feature_table(tmp_path, make_toy_features(4, noise=4.0, size=12))
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(configs=CONFIGS, data=DATA.format(table=table)))
    run_suite(suite, tmp_path / "full", ["max_folds=2"], progress=False, log=io.StringIO())
    shutil.copytree(tmp_path / "full", tmp_path / "copy")
    copy = tmp_path / "copy"
    assert main(["suite", "--config", str(suite), "--out", str(copy), "--no-progress", "max_folds=3"]) == 0
    for ens, members in (("lr_rf_s0", ("lr", "rf_s0")), ("all_seeds", ("lr", "rf_s0"))):
        folds = _folds(copy / ens)
        assert len(folds) == 3 and all(_folds(copy / m) == folds for m in members)
        runs = [r["run"] for r in json.loads((copy / ens / "ensemble.json").read_text())["members"]]
        assert runs == [str((copy / m).resolve()) for m in members]
    assert len(_folds(tmp_path / "full" / "lr_rf_s0")) == 2         # the source is left as it was


def test_members_in_the_recorded_places_with_other_predictions_are_not_called_other_members(tmp_path):
    """icegan ensemble (no suite vouching for its members) still refuses an ensemble folder whose members' places
    hold other predictions, but says so rather than "other members"; members in other places and other weights
    are refused as before."""
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    for s in (1, 2):
        run_loso(toy.samples, random_prob_fn(s), tmp_path / "a" / f"r{s}", progress=False)
    ensemble_runs([tmp_path / "a" / "r1", tmp_path / "a" / "r2"], tmp_path / "a" / "ens")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = tmp_path / "b"
    shutil.rmtree(b / "r2")
    run_loso(toy.samples, random_prob_fn(3), b / "r2", progress=False)         # r2 rerun with other predictions
    with pytest.raises(LosoStateError, match=re.escape(f"{b / 'ens'} holds the ensemble of")) as exc:
        ensemble_runs([b / "r1", b / "r2"], b / "ens")
    assert "other members" not in str(exc.value)
    assert "the same member places with other predictions" in str(exc.value)
    shutil.copytree(b / "r1", b / "r3")
    with pytest.raises(LosoStateError, match=r"\(other members; ensemble.json\)"):
        ensemble_runs([b / "r1", b / "r3"], b / "ens")
