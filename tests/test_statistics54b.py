"""icegan compare / icegan suite statistics, the review of 2026-12: --per-dataset over runs of one dataset (no second,
identical table, as the suite page), the suite's ``stratify: true`` where every subject is alone in its dataset (the
page says so and draws from one pool, as compare refuses), and entries that put a subject in different datasets
(refused, naming both)."""
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _runs import write_finished_run

from icegan.cli import main
from icegan.significance import bootstrap_compare, load_run_set


def _run(d, names, seed, datasets=None):
    """A finished run folder: four clips per subject of ``names`` (the same labels in every run), predictions right
    with probability 0.6 (``seed``); ``datasets``: None writes no dataset column, else a function subject → cell."""
    labels, r = np.random.default_rng(0), np.random.default_rng(seed)
    rows = []
    for s in names:
        for j, y in enumerate(labels.integers(0, 3, 4)):
            rows.append((s, f"c{j}", int(y), int(y if r.random() < 0.6 else r.integers(0, 3))))
    return str(write_finished_run(d, rows, datasets, seed))


def _prefix(s):
    return s.split("/")[0]


# --------------------------------------------------------------------------- 1. --per-dataset, one dataset only

@pytest.mark.parametrize("fmt", ["markdown", "latex", "csv"])
def test_per_dataset_over_one_dataset_prints_one_table(tmp_path, capsys, fmt):
    """Two entries over 8 CASME II subjects: --per-dataset printed the full table and a CASME II table with the same
    cells, and the legend counted 4 paired intervals where the suite page says 2 for the same runs. Now one table,
    2 intervals, as the suite page (which adds per-dataset tables only over several datasets)."""
    names = [f"casme2/s{i:02d}" for i in range(8)]
    a, b = _run(tmp_path / "a", names, 1, _prefix), _run(tmp_path / "b", names, 2, _prefix)
    assert main(["compare", a, b, "--per-dataset", "--resamples", "200", "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "csv":
        assert list(pd.read_csv(io.StringIO(out))["scope"]) == ["all", "all"]
    elif fmt == "markdown":
        assert "## Full (8 subjects)" in out and "CASME II" not in out
        assert "The 2 paired Δ intervals (ΔUF1 and ΔUAR) are each at 95 %" in out
    else:
        assert out.count(r"\begin{tabular}") == 1 and "CASME II" not in out
    from icegan.significance import comparison_scopes
    sets = [load_run_set("a", [a]), load_run_set("b", [b])]
    assert [scope for scope, _ in comparison_scopes(sets, True)] == ["all"]


def test_per_dataset_over_several_datasets_keeps_every_table(tmp_path):
    """The project's composite runs: the full scope and one per dataset, in the tables' order (unchanged)."""
    from icegan.significance import comparison_scopes
    names = [f"{d}/s{i}" for d in ("casme2", "samm", "smic") for i in range(3)]
    sets = [load_run_set("a", [_run(tmp_path / "a", names, 1, _prefix)])]
    scopes = comparison_scopes(sets, True)
    assert [scope for scope, _ in scopes] == ["all", "smic", "casme2", "samm"]
    assert [len(x[0].subjects) for _, x in scopes] == [9, 3, 3, 3]
    assert [scope for scope, _ in comparison_scopes(sets, False)] == ["all"]


# ------------------------------------------------------------------ 2. the suite's stratify: true, one per dataset

_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_suite_stratify_with_every_subject_alone_in_its_dataset_says_so(tmp_path):
    """A toy suite of one subject per dataset (data.toy_subjects=1: a CASME II and a SAMM subject) with stratify:
    true. The page drew every resample within the datasets: the original sample each time, every interval of width
    zero, without a word. Now it is still written, the comparison drawn from one pool, under a line with
    icegan compare's reason."""
    from icegan.suite import run_suite
    over = "workers=1, data.toy_subjects=1"
    suite = tmp_path / "s.yaml"
    suite.write_text("name: toy\nseeds: [0]\nresamples: 200\nstratify: true\nruns:\n"
                     f"  - {{label: floor, config: {_CONFIGS}/demo_features.yaml, overrides: [model.name=logreg, "
                     f"{over}]}}\n"
                     f"  - {{label: forest, config: {_CONFIGS}/demo_features.yaml, overrides: "
                     f"[model.name=random_forest, model.forest_trees=5, {over}]}}\n")
    run_suite(suite, tmp_path / "out", ["threads=1"], progress=False)
    res = (tmp_path / "out" / "results.md").read_text()
    note = next(ln for ln in res.splitlines() if ln.startswith("Not stratified"))
    assert "stratify: each of the 2 subjects of 'floor' is the only subject of its dataset" in note
    assert "floor_s0/predictions.csv" in note and "width zero" in note and "one pool of subjects" in note
    forest = [ln for ln in res.splitlines() if ln.startswith("| forest |")][-1]     # the comparison's row
    low, high = map(float, forest.split("|")[6].split("[")[1].rstrip("] ").split(", "))
    assert high - low > 0                             # the ΔUF1 interval of the pooled draws, not one point
    assert "with replacement within each dataset" not in res


# ---------------------------------------------------------------- 3. entries that disagree on a subject's dataset

@pytest.mark.parametrize("order", [("col", "nocol"), ("nocol", "col")])
def test_entries_that_put_a_subject_in_different_datasets_are_refused(tmp_path, capsys, order):
    """Unprefixed ids a00..b03: one entry's runs name their datasets in a dataset column (casme2, smic), the other's
    have no such column (each id its own dataset). --stratify depended on which entry was the baseline (refused one
    way, intervals the other) and --per-dataset said "'nocol' has no subject of dataset 'smic'". Now both refuse,
    naming both entries, their files and one subject with its two datasets."""
    names = [f"a{i:02d}" for i in range(6)] + [f"b{i:02d}" for i in range(4)]
    runs = {"col": _run(tmp_path / "col", names, 1, lambda s: "casme2" if s.startswith("a") else "smic"),
            "nocol": _run(tmp_path / "nocol", names, 2)}
    entries = [f"{k}={runs[k]}" for k in order]
    for flags in (["--stratify"], ["--per-dataset"], ["--stratify", "--baseline", "nocol"]):
        assert main(["compare", *entries, "--resamples", "200", *flags]) == 2
        err = capsys.readouterr().err
        assert "put subject 'a00' in different datasets" in err and "has no subject of dataset" not in err
        assert "'col'" in err and "'nocol'" in err and "'casme2'" in err and "'a00'" in err
        assert str(Path(runs["col"]) / "predictions.csv") in err and str(Path(runs["nocol"]) / "predictions.csv") in err
    sets = [load_run_set(k, [runs[k]]) for k in order]
    with pytest.raises(ValueError, match="different datasets"):
        bootstrap_compare(sets, resamples=200, stratify=True)
    # without --stratify or --per-dataset the datasets play no part: the comparison runs as before this check
    # (a plain compare of these entries was refused; found by review)
    assert main(["compare", *entries, "--resamples", "200"]) == 0, capsys.readouterr().err
    assert len(bootstrap_compare(sets, resamples=200)) == 2


def test_entries_that_agree_on_the_datasets_compare_as_before(tmp_path):
    """A dataset column equal to the prefix (the project's runs) in one entry, none in the other: the same datasets,
    so the comparison runs, with the intervals of two prefix-only entries."""
    names = [f"{d}/s{i}" for d in ("casme2", "smic") for i in range(4)]
    col = load_run_set("col", [_run(tmp_path / "col", names, 1, _prefix)])
    nocol = load_run_set("nocol", [_run(tmp_path / "nocol", names, 2)])
    got = bootstrap_compare([col, nocol], resamples=200, stratify=True)
    col.datasets_of = None
    assert got == bootstrap_compare([col, nocol], resamples=200, stratify=True)
