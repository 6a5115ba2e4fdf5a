"""Audit 61 (selection weights, label noise): a nested selection's ensemble candidate mixes its members' inner
probabilities with the weights `icegan ensemble` mixes their outer ones with (weights whose sum overflows float64
included), and the forest's out-of-bag probabilities refuse labels that are not class ids 0..n_classes-1 up front."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icegan.commands.loso import LosoConfig, load_feature_set, run
from icegan.config import load_config
from icegan.ensemble import ensemble_runs
from icegan.label_noise import confident_joint_flags, forest_out_of_bag_probabilities
from icegan.selection import Candidate, select_nested


def _cfg(*over):
    return load_config(LosoConfig, None, ["data.source=toy", "workers=1", "threads=1", *over])


def test_an_ensemble_weighted_1e308_1e308_is_scored_inner_as_the_equal_weight_one(tmp_path: Path):
    """[1e308, 1e308] sums to inf: divided by the sum, every inner probability was 0 and every clip class 0, so the
    candidate was chosen on a score no model of it made; `icegan ensemble` (mixing_weights) mixes it equally."""
    fs = load_feature_set(_cfg("model.name=logreg").data)
    members = []
    for label, over in {"logreg": ["model.name=logreg"],
                        "forest": ["model.name=random_forest", "model.forest_trees=10"]}.items():
        cfg = _cfg(*over, f"name={label}")
        run(cfg, tmp_path / label, progress=False, feature_set=fs)
        members.append(Candidate(label, tmp_path / label, config=cfg))
    runs = [tmp_path / "logreg", tmp_path / "forest"]
    ensemble_runs(runs, tmp_path / "huge", weights=[1e308, 1e308])
    ensemble_runs(runs, tmp_path / "equal")
    cands = [*members, Candidate("huge", tmp_path / "huge", members=members, weights=[1e308, 1e308]),
             Candidate("equal", tmp_path / "equal", members=members)]
    select_nested(cands, {}, tmp_path / "sel", k=2, progress=False)
    table = pd.read_csv(tmp_path / "sel" / "selection.csv")
    np.testing.assert_array_equal(table["inner_UF1[huge]"].to_numpy(), table["inner_UF1[equal]"].to_numpy())
    # the two members differ somewhere, so an all-class-0 inner score would not pass for the equal mix by chance
    assert not np.array_equal(table["inner_UF1[logreg]"].to_numpy(), table["inner_UF1[forest]"].to_numpy())


@pytest.mark.parametrize("bad, msg", [(-1, r"labels must lie in 0\.\.2, got -1\.\.2"),
                                      (3, r"labels must lie in 0\.\.2, got 0\.\.3"),
                                      (1.5, r"labels must hold integer class ids"),
                                      ("a", r"labels must hold integer class ids")],
                         ids=["minus-one", "K", "float", "str"])
def test_forest_out_of_bag_probabilities_refuse_labels_outside_the_class_ids(bad, msg):
    """Label K raised IndexError deep in numpy, a float or str label IndexError too, and {-1, 0} put class -1's
    votes in the last column silently; now the ValueError of confident_joint_flags, before any forest is fitted
    (a fraction or string: :func:`icegan.metrics.check_whole_ids`' message, whole floats pass: test_review61b.py)."""
    x = np.arange(12, dtype=float).reshape(6, 2)
    labels = np.array([0, 1, 2, 0, 1, bad])                 # int64, int64, float64, <U21
    with pytest.raises(ValueError, match=msg) as err:
        forest_out_of_bag_probabilities(x, labels, trees=5, n_classes=3)
    with pytest.raises(ValueError) as same:
        confident_joint_flags(np.full((6, 3), 1 / 3), labels)
    assert str(err.value) == str(same.value)


def test_forest_out_of_bag_probabilities_keep_taking_integer_class_ids():
    x = np.repeat(np.arange(3), 10)[:, None] * 10.0 + np.linspace(0, 1, 30)[:, None]
    labels = np.repeat(np.arange(3), 10)
    p = forest_out_of_bag_probabilities(x, labels, trees=20, n_classes=4)
    ok = np.isfinite(p).all(1)
    assert ok.any() and np.allclose(p[ok].sum(1), 1.0) and (p[ok][:, 3] == 0).all()
