"""icegan compare / icegan suite statistics (the audit of 2026-12): the stratum of a subject read from the
predictions' dataset column and --stratify refused where every stratum holds one subject; --per-dataset skipping a
dataset of one subject; the legend's sentence on the number of uncorrected paired intervals."""
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _runs import write_finished_run

from icegan.cli import main
from icegan.significance import bootstrap_compare, check_stratify, load_run_set


def _run(d, rows, datasets=None, seed=0):
    """A finished run folder of ``rows`` (:func:`_runs.write_finished_run`)."""
    return write_finished_run(d, rows, datasets, seed)


def _rows(names, seed=0, acc=0.6):
    """Four clips per subject of ``names``, a prediction right with probability ``acc``."""
    r = np.random.default_rng(seed)
    out = []
    for s in names:
        for j, y in enumerate(r.integers(0, 3, 4)):
            out.append((s, f"c{j}", int(y), int(y if r.random() < acc else r.integers(0, 3))))
    return out


_PLAIN = [f"a{i:02d}" for i in range(6)] + [f"b{i:02d}" for i in range(4)]    # a: CASME II, b: SMIC subjects


def _dataset(s):
    return "casme2" if str(s).split("/")[-1].startswith("a") else "smic"


# ------------------------------------------------------------------------------------------ 1. --stratify strata

def test_stratify_takes_the_dataset_column_of_unprefixed_subject_ids(tmp_path):
    """Subjects a00..b03 without a dataset prefix but with a dataset column (casme2 / smic) are drawn within those
    two datasets: the same intervals, draw for draw, as the same predictions with ids casme2/a00 .. smic/b03 (the
    same subject order). Before, each unprefixed id was its own stratum: every interval one point."""
    plain = _run(tmp_path / "plain", _rows(_PLAIN), datasets=_dataset)
    named = _run(tmp_path / "named", [(f"{_dataset(s)}/{s}", c, y, p) for s, c, y, p in _rows(_PLAIN)],
                 datasets=_dataset)
    a, b = load_run_set("a", [plain]), load_run_set("a", [named])
    ra = bootstrap_compare([a], resamples=300, stratify=True)[0]
    rb = bootstrap_compare([b], resamples=300, stratify=True)[0]
    assert ra["UF1_ci"] == rb["UF1_ci"] and ra["UAR_ci"] == rb["UAR_ci"]
    assert ra["UF1_ci"][1] - ra["UF1_ci"][0] > 0.05
    assert a.subject_datasets() == [_dataset(s) for s in _PLAIN] and a.datasets() == ["smic", "casme2"]
    # --per-dataset scopes come from the same column: 4 SMIC and 6 CASME II subjects
    assert [len(a.restrict(d).subjects) for d in a.datasets()] == [4, 6]


def test_project_runs_keep_their_strata_and_intervals(tmp_path):
    """A run of the project (ids prefixed by the dataset, a dataset column equal to the prefix): the strata are the
    prefixes, as before, so the stratified intervals are those of the prefixes alone (recorded numbers unchanged)."""
    run = _run(tmp_path / "r", [(f"{_dataset(s)}/{s}", c, y, p) for s, c, y, p in _rows(_PLAIN, 3)],
               datasets=_dataset)
    rs = load_run_set("r", [run])
    assert rs.subject_datasets() == [s.split("/")[0] for s in rs.subjects]
    legacy = load_run_set("r", [run])
    legacy.datasets_of = None                             # the prefixes only, as before the dataset column was read
    for stratify in (False, True):
        assert bootstrap_compare([rs], resamples=300, stratify=stratify) == \
            bootstrap_compare([legacy], resamples=300, stratify=stratify)


@pytest.mark.parametrize("datasets", [None, lambda s: s], ids=["no-dataset-column", "one-dataset-per-subject"])
def test_stratify_is_refused_when_every_stratum_holds_one_subject(tmp_path, capsys, datasets):
    """sub00..sub09 with no prefix and no dataset column (or a column naming each subject its own dataset): every
    stratum holds one subject, every stratified resample is the original sample. The tool printed UF1 0.5960
    [0.5960, 0.5960]; now it refuses, naming --stratify, the file and why. Without --stratify it still works."""
    run = _run(tmp_path / "plain", _rows([f"sub{i:02d}" for i in range(10)]), datasets=datasets)
    assert main(["compare", str(run), "--resamples", "200", "--stratify"]) == 2
    err = capsys.readouterr().err
    assert "--stratify" in err and str(run / "predictions.csv") in err and "width zero" in err
    assert "only subject of its dataset" in err
    assert main(["compare", str(run), "--resamples", "200"]) == 0
    low, high = map(float, re.search(r"\| [0-9.]+ \[([0-9.]+), ([0-9.]+)\] \|", capsys.readouterr().out).groups())
    assert high - low > 0.05
    with pytest.raises(ValueError, match="stratify: each of the 10 subjects"):
        check_stratify(load_run_set("p", [run]))


def test_a_subject_of_two_datasets_in_the_dataset_column_is_refused(tmp_path):
    rows = _rows(["casme2/s1", "casme2/s2"])
    run = _run(tmp_path / "r", rows, datasets=lambda s: s.split("/")[0])
    pred = pd.read_csv(run / "predictions.csv")
    pred.loc[1, "dataset"] = "samm"
    pred.to_csv(run / "predictions.csv", index=False)
    with pytest.raises(ValueError, match=r"predictions.csv: subject 'casme2/s1' has clips of two datasets.*casme2, "
                                         r"samm"):
        load_run_set("r", [run])


# ------------------------------------------------------------------------------- 2. --per-dataset, one subject

@pytest.mark.parametrize("fmt", ["markdown", "latex", "csv"])
def test_per_dataset_skips_a_dataset_of_one_subject(tmp_path, capsys, fmt):
    """Six CASME II subjects and one SMIC subject: --per-dataset aborted the whole command (rc 2, no table). Now the
    SMIC scope is skipped with one line naming the dataset and why (in the document; on stderr for CSV, where a line
    would break the table), and the full and CASME II tables are printed, the legend once, under the last."""
    run = _run(tmp_path / "mix", _rows([f"casme2/s{i}" for i in range(6)] + ["smic/s0"], 4),
               datasets=lambda s: s.split("/")[0])
    assert main(["compare", f"a={run}", f"b={run}", "--per-dataset", "--resamples", "200", "--format", fmt]) == 0
    cap = capsys.readouterr()
    note = "SMIC (1 subject): none, a subject bootstrap needs at least two subjects (dataset smic has one, smic/s0)"
    assert note in (cap.err if fmt == "csv" else cap.out)
    if fmt == "csv":
        scopes = pd.read_csv(io.StringIO(cap.out))["scope"]
        assert list(scopes) == ["all", "all", "casme2", "casme2"]
    elif fmt == "markdown":
        assert "## Full (7 subjects)" in cap.out and "## CASME II (6 subjects)" in cap.out
        assert cap.out.count("Subject-level bootstrap") == 1
        assert cap.out.index("Subject-level bootstrap") > cap.out.index("## CASME II")
    else:
        assert cap.out.count(r"\begin{tabular}") == 2 and cap.out.count("% Subject-level bootstrap") == 1


# ------------------------------------------------------------------- 3. uncorrected multiple paired intervals

def _sentence(n, pct="95 %", chance="5 %", where=""):
    return (f"The {n} paired Δ intervals (ΔUF1 and ΔUAR){where} are each at {pct} without correction for multiple "
            f"comparisons: when no entry differs from the baseline, about {chance} of them exclude 0 by chance; and "
            f"with few subjects (e.g. one small dataset's table) a percentile interval tends to be narrower than its "
            f"nominal {pct}.")


def _entries(tmp_path, names, k):
    """k runs over the same clips and labels (subjects ``names``), each with its own predictions."""
    r = np.random.default_rng(1)
    rows = [[(s, c, y, int(y if r.random() < 0.6 else r.integers(0, 3))) for s, c, y, _ in _rows(names)]
            for _ in range(k)]
    return [str(_run(tmp_path / f"e{i}", rows[i], datasets=lambda s: s.split("/")[0])) for i in range(k)]


@pytest.mark.parametrize("k", [2, 3])
def test_compare_legend_counts_the_uncorrected_paired_intervals(tmp_path, capsys, k):
    """k entries, one table: 2·(k − 1) paired intervals (ΔUF1, ΔUAR of each entry but the baseline); --per-dataset
    over CASME II (6 subjects) and SAMM (4): three tables, 3 · 2·(k − 1), counted once in the one legend; with a
    third dataset of one subject (skipped, no table) still three. The sentence says each is at the --confidence level
    uncorrected and about 1 − confidence of them exclude 0 by chance, and in every format that has a legend."""
    names = [f"casme2/s{i}" for i in range(6)] + [f"samm/s{i}" for i in range(4)]
    runs = _entries(tmp_path, names, k)
    assert main(["compare", *runs, "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert _sentence(2 * (k - 1)) in out and out.count("paired Δ intervals") == 1
    assert main(["compare", *runs, "--resamples", "200", "--per-dataset"]) == 0
    out = capsys.readouterr().out
    assert _sentence(6 * (k - 1), where=" in the tables above") in out and out.count("paired Δ intervals") == 1
    assert main(["compare", *runs, "--resamples", "200", "--per-dataset", "--confidence", "0.9", "--format",
                 "latex"]) == 0
    tex = " ".join(ln.lstrip("% ") for ln in capsys.readouterr().out.splitlines() if ln.startswith("% "))
    assert _sentence(6 * (k - 1), "90 %", "10 %", " in the tables above") in tex
    one = _entries(tmp_path / "one", names + ["smic/s0"], k)
    assert main(["compare", *one, "--resamples", "200", "--per-dataset"]) == 0
    assert _sentence(6 * (k - 1), where=" in the tables above") in capsys.readouterr().out


def test_no_multiple_comparison_sentence_without_a_difference(tmp_path, capsys):
    """One entry: no paired interval, no sentence about them."""
    run = _entries(tmp_path, [f"casme2/s{i}" for i in range(6)], 1)
    assert main(["compare", *run, "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "Subject-level bootstrap" in out and "paired Δ intervals" not in out


_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize("k", [2, 3])
def test_suite_page_legend_counts_the_uncorrected_paired_intervals(tmp_path, k):
    """A toy suite of k entries over 4 CASME II subjects and 1 SAMM subject (max_folds=5): the full table and the
    CASME II table are drawn, SAMM (one subject) is not, so the one legend counts 2 · 2·(k − 1) paired intervals."""
    from icegan.suite import run_suite
    runs = [f"  - {{label: floor, config: {_CONFIGS}/demo_features.yaml, overrides: [model.name=logreg, workers=1]}}",
            f"  - {{label: forest, config: {_CONFIGS}/demo_features.yaml, overrides: [model.name=random_forest, "
            "model.forest_trees=5, workers=1]}",
            f"  - {{label: forest3, config: {_CONFIGS}/demo_features.yaml, overrides: [model.name=random_forest, "
            "model.forest_trees=3, workers=1]}"][:k]
    suite = tmp_path / "s.yaml"
    suite.write_text("name: toy\nseeds: [0]\nresamples: 200\nruns:\n" + "\n".join(runs) + "\n")
    run_suite(suite, tmp_path / "out", ["threads=1", "max_folds=5"], progress=False)
    res = (tmp_path / "out" / "results.md").read_text()
    assert "## Subject-bootstrap intervals, SAMM (1 subject)" in res
    assert _sentence(4 * (k - 1), where=" in the tables above") in res and res.count("paired Δ intervals") == 1
