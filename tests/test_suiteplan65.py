"""``icegan suite`` refuses at plan time, before any run trains or any run folder exists: runs of different LOSOs
(protocol, SDE dataset, data.datasets), which its results page could not compare, and a nested
selection whose ``selection.inner_folds`` exceeds an outer fold's training subjects."""
import io
from pathlib import Path

import pytest

from icegan.config import ConfigError
from icegan.suite import load_suite, plan_suite, run_suite

from _feature_tables import write_feature_table

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SUITE = """\
name: plan65
seeds: [0]
resamples: 199
runs:
  - {{label: lrC, config: {configs}/features_logreg.yaml, seeded: false, overrides: [{a}]}}
  - {{label: lrH, config: {configs}/features_logreg.yaml, seeded: false, overrides: [{b}]}}
"""


def _plan(tmp_path: Path, a: str, b: str):
    """The plan of a suite of two unseeded logistic-regression runs; ``a``, ``b``: their overrides (YAML list items)."""
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(configs=CONFIGS, a=a, b=b))
    return plan_suite(load_suite(path), path, tmp_path / "out")


@pytest.mark.parametrize("a, b, key, values", [
    ("model.logreg_max_iter=100", "protocol=HDE", "protocol", "'HDE' vs 'CDE'"),
    ("protocol=SDE, dataset=casme2", "protocol=SDE, dataset=samm", "dataset", "'samm' vs 'casme2'"),
    ('"data.datasets=[casme2, samm]"', '"data.datasets=[casme2]"', "data.datasets",
     "['casme2'] vs ['casme2', 'samm']"),
])
def test_runs_of_different_loso_are_refused_when_planned(tmp_path, a, b, key, values):
    """s5n.yaml (a CDE and an HDE run) trained both runs, then its comparison refused them with no results page; the
    plan refuses them now (so --dry-run does too), naming both runs and the key."""
    with pytest.raises(ConfigError) as err:
        _plan(tmp_path, a, b)
    msg = str(err.value)
    assert f"suite run 'lrH' differs from 'lrC' in '{key}' (" in msg and values in msg
    assert "only runs of the same LOSO can be compared" in msg
    assert not (tmp_path / "out").exists()


def test_runs_of_the_same_loso_still_plan(tmp_path):
    plan = _plan(tmp_path, "model.logreg_max_iter=100", 'model.logreg_C=0.1, "data.datasets=[]"')
    assert [p.label for p in plan] == ["lrC", "lrH"]


def test_runs_on_two_feature_tables_still_plan(tmp_path):
    """Two feature tables of the same clips (TV-L1 maps against SRFlowNet maps) are one LOSO with other features: what
    a suite of flow methods compares; an early review's plan check refused them (tests/test_leak_labels53.py)."""
    plan = _plan(tmp_path, "data.source=table, data.table=a.csv", "data.source=table, data.table=b.csv")
    assert [p.label for p in plan] == ["lrC", "lrH"]


def test_dry_run_refuses_runs_of_different_protocols(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(configs=CONFIGS, a="threads=1", b="protocol=HDE"))
    with pytest.raises(ConfigError, match="'lrH' differs from 'lrC' in 'protocol'"):
        run_suite(path, tmp_path / "out", dry_run=True, log=io.StringIO())


SELECTION = """\
name: late65
seeds: [0]
resamples: 199
runs:
  - {{label: lr, config: {configs}/features_logreg.yaml, seeded: false, overrides: [{data}]}}
  - {{label: lr C0.1, config: {configs}/features_logreg.yaml, seeded: false, overrides: [{data}, model.logreg_C=0.1]}}
selection: {{inner_folds: {k}}}
"""
DATA = "data.source=table, data.table={table}, data.normalize=minmax, data.size=0, workers=1, threads=1, max_folds=2"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A feature table of 8 toy subjects (4 of casme2, 4 of samm): 7 training subjects per CDE fold."""
    from icegan.data.toy_features import make_toy_features
    return write_feature_table(tmp_path_factory.mktemp("table"), make_toy_features(4, noise=4.0, size=12))


def test_inner_folds_above_the_training_subjects_fail_before_any_run(tmp_path, table):
    """/tmp/a_noise/s3/late.yaml (inner_folds 68 on 68 subjects) trained every candidate's LOSO, then refused with
    "lower inner_folds"; the suite now stops before any run folder exists, naming selection.inner_folds."""
    path = tmp_path / "suite.yaml"
    path.write_text(SELECTION.format(configs=CONFIGS, data=DATA.format(table=table), k=8))
    with pytest.raises(ValueError) as err:
        run_suite(path, tmp_path / "out", progress=False, log=io.StringIO())
    msg = str(err.value)
    assert "selection.inner_folds" in msg and "7 training subjects cannot be split into 8 inner folds" in msg
    assert not (tmp_path / "out").exists()
