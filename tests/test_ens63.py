"""Audit 63 of ``icegan ensemble`` and nested selection: :func:`icegan.ensemble.off_top_score` refuses a y_pred that
is no class id of the scores (a negative one was read from the row's end); the figures and metrics.md of an
ensemble or nested selection of null runs cut by ``max_folds`` carry the NULL RUN and PARTIAL tags, as a LOSO run's."""
from pathlib import Path

import numpy as np
import pytest

import icegan.protocol as protocol
from icegan.commands.loso import LosoConfig, run
from icegan.config import load_config
from icegan.ensemble import ensemble_runs, off_top_score
from icegan.selection import Candidate, select_nested

SCORES = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])


def test_off_top_score_keeps_checking_class_ids_in_range():
    np.testing.assert_array_equal(off_top_score(SCORES, np.array([2, 0])), [False, False])
    np.testing.assert_array_equal(off_top_score(SCORES, np.array([1, 0])), [True, False])


@pytest.mark.parametrize("y_pred, bad", [([-1, 0], -1), ([3, 0], 3), ([2, -3], -3)])
def test_off_top_score_refuses_a_class_id_outside_the_score_columns(y_pred, bad):
    """-1 was taken as the last class (its score the row's highest: not off the top); 3 of 3 a bare IndexError."""
    with pytest.raises(ValueError) as e:
        off_top_score(SCORES, np.array(y_pred))
    assert str(e.value) == (f"y_pred holds class id {bad}, outside the class ids 0..2 of the 3 score columns; give "
                            "each row's predicted class as one of them")


@pytest.fixture(scope="module")
def null_runs(tmp_path_factory):
    """Two toy null runs (``data.permute_labels=0``) cut to their first 2 folds by ``max_folds``."""
    root = tmp_path_factory.mktemp("null63")
    cfgs = {}
    for name, model in (("lr_null", ["model.name=logreg"]),
                        ("rf_null", ["model.name=random_forest", "model.forest_trees=5"])):
        cfg = load_config(LosoConfig, None, ["data.source=toy", "workers=1", "threads=1", "max_folds=2",
                                             "data.permute_labels=0", f"name={name}", *model])
        run(cfg, root / name, progress=False)
        cfgs[name] = cfg
    return root, cfgs


@pytest.fixture
def titles(monkeypatch):
    """The titles write_reports gives confusion.png and per_subject.png, by file name."""
    seen = {}
    monkeypatch.setattr(protocol, "confusion_png",
                        lambda pred, path, title, n_classes=3: seen.__setitem__(Path(path).name, title))
    monkeypatch.setattr(protocol, "per_subject_png",
                        lambda table, path, title: seen.__setitem__(Path(path).name, title))
    return seen


def _partial(root: Path) -> str:
    first = (root / "lr_null" / "metrics.md").read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# lr_null [NULL RUN: labels permuted") and first.endswith("] [PARTIAL: 2 of 8 folds]")
    return " [PARTIAL: 2 of 8 folds]"


def test_an_ensemble_of_null_partial_runs_is_tagged_in_its_figures_and_metrics_md(null_runs, titles):
    root, _ = null_runs
    partial = _partial(root)
    ensemble_runs([root / "lr_null", root / "rf_null"], root / "ens")
    md = (root / "ens" / "metrics.md").read_text(encoding="utf-8")
    assert md.splitlines()[0] == f"# ens (probability ensemble) [NULL RUN]{partial}"
    prefix = f"ens [NULL RUN]{partial}: ensemble of lr_null + rf_null, CDE LOSO"
    assert titles["confusion.png"].startswith(prefix + ", UF1 ")
    assert titles["per_subject.png"] == prefix + ": accuracy per tested subject"


def test_a_nested_selection_of_null_partial_runs_is_tagged_in_its_figures_and_metrics_md(null_runs, titles):
    root, cfgs = null_runs
    partial = _partial(root)
    cands = [Candidate(name, root / name, config=cfg) for name, cfg in cfgs.items()]
    select_nested(cands, {}, root / "sel", k=2, progress=False)
    md = (root / "sel" / "metrics.md").read_text(encoding="utf-8")
    assert md.splitlines()[0] == f"# sel (nested selection) [NULL RUN]{partial}"
    prefix = f"sel [NULL RUN]{partial}: nested selection, CDE LOSO"
    assert titles["confusion.png"].startswith(prefix + ", UF1 ")
    assert titles["per_subject.png"] == prefix + ": accuracy per tested subject"
