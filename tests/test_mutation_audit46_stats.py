"""Tests written by a mutation audit of the code that turns finished runs' predictions into the numbers and tables a
paper quotes: the subject bootstrap and its paired differences (icegan.significance, ``icegan compare``), probability
ensembles (icegan.ensemble), the results table (icegan.report, ``icegan table``) and the suite's results page
(icegan.suite). Each test fails on a small deliberate change of the code that the earlier tests let pass (named in
its docstring as "Mutation killed"); expected values are worked out by hand in the docstrings and comments, never
copied from the code's output."""
from __future__ import annotations

import re

import numpy as np
import pytest
from test_mutation_audit45_rec import _write_run

from icegan.significance import bootstrap_compare, load_run_set

# ------------------------------------------------------------------------------------------------ icegan.significance


def _same_rows(n_subjects, pred):
    """Every subject has three clips, one per class (true 0, 1, 2), predicted ``pred`` (three class ids)."""
    return [(f"casme2/s{s}", f"c{y}", y, pred[y]) for s in range(n_subjects) for y in range(3)]


def test_an_entry_of_three_seeds_is_the_mean_of_their_metrics_not_the_median(tmp_path):
    """Three seeds of one recipe over 4 subjects whose clips are each predicted alike: seed 0 right on every clip
    (UF1 = UAR = 1); seed 1 predicts surprise as negative (F1: negative 2·4/(2·4 + 4) = 2/3, positive 1, surprise 0;
    UF1 5/9, UAR (1 + 1 + 0)/3 = 2/3); seed 2 predicts every class as the next (UF1 = UAR = 0). The entry's UF1 is
    their mean (1 + 5/9 + 0)/3 = 14/27 (median 5/9) and its UAR 5/9 (median 2/3). All subjects alike, every resample
    pools the same proportions: the interval is that one point, and the paired difference to seed 0 alone is
    14/27 − 1 in every resample. Mutation killed: the entry's statistic the median over its runs (the same as the
    mean for the two runs of the earlier tests)."""
    runs = [_write_run(tmp_path / f"st_s{k}", _same_rows(4, pred), seed=k)
            for k, pred in enumerate([(0, 1, 2), (0, 1, 0), (1, 2, 0)])]
    seeds = load_run_set("seeds", runs)
    rows = bootstrap_compare([load_run_set("s0", runs[:1]), seeds], resamples=200)
    assert rows[1]["runs"] == 3
    assert rows[1]["UF1"] == pytest.approx(14 / 27) and rows[1]["UAR"] == pytest.approx(5 / 9)
    assert rows[1]["UF1_ci"] == pytest.approx((14 / 27, 14 / 27)) and rows[1]["UAR_ci"] == pytest.approx((5 / 9, 5 / 9))
    assert rows[1]["dUF1"] == pytest.approx(14 / 27 - 1) and rows[1]["dUF1_ci"] == pytest.approx((-13 / 27, -13 / 27))
    assert rows[1]["p_better"] == 0.0 and rows[1]["p_tie"] == 0.0


def test_equal_uf1s_one_rounding_apart_are_ties_whichever_run_is_the_baseline(tmp_path):
    """Two runs whose pooled UF1s are the same number, 9/14 (per-class F1s 6/7 + 1/2 + 4/7 against 4/7 + 1/2 + 6/7,
    worked from their confusion matrices), but whose float sums differ by one rounding: in every resample the two are
    tied, so 'resamples UF1 > baseline' is 0 with either run as the baseline. Mutation killed: p_better counting the
    float-larger UF1 as strictly higher (the tie not taken out), which the earlier test let pass because there the
    float-larger run was the baseline."""
    truth = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    pa, pb = (0, 0, 0, 1, 2, 0, 1, 2, 2), (0, 0, 1, 0, 1, 0, 2, 2, 2)
    rows = [(f"casme2/s{s}", f"c{j}", y, None) for s in range(4) for j, y in enumerate(truth)]
    a = load_run_set("a", [_write_run(tmp_path / "a", [r[:3] + (pa[int(r[1][1:])],) for r in rows])])
    b = load_run_set("b", [_write_run(tmp_path / "b", [r[:3] + (pb[int(r[1][1:])],) for r in rows])])
    for pair in ([a, b], [b, a]):
        row = bootstrap_compare(pair, resamples=200)[1]
        assert row["UF1"] == pytest.approx(9 / 14) and row["dUF1"] == pytest.approx(0.0, abs=1e-12)
        assert row["p_better"] == 0.0 and row["p_tie"] == 1.0


def test_a_seed_whose_rows_are_in_another_order_is_the_same_clips(tmp_path):
    """A run's predictions.csv lists its folds in the order they finished (a resumed run: another order); runs are
    matched clip by clip, so a seed written with its rows reversed is accepted in one entry with the original, and,
    as its own entry, ties the original in every resample. Mutation killed: the predictions not sorted by (subject,
    clip) when read, which refused such an entry as 'differ in clips or labels'. (The seed in one entry predicts
    one clip of s1 otherwise, as two draws of a seeded recipe would.)"""
    rows = [(f"casme2/s{s}", f"c{j}", y, (y + s) % 3) for s in range(4) for j, y in enumerate([0, 1, 2, 2])]
    a = _write_run(tmp_path / "st_s0", rows)
    b = _write_run(tmp_path / "st_s1", rows[::-1], seed=1)
    c = _write_run(tmp_path / "st_s2", [r if r[:2] != ("casme2/s1", "c0") else (*r[:3], 0) for r in rows][::-1],
                   seed=2)                          # s1's clip c0 (a 0, read as 1) read right
    both = load_run_set("both", [a, c])
    np.testing.assert_array_equal(both.confusions[0, [0, 2, 3]], both.confusions[1, [0, 2, 3]])
    np.testing.assert_array_equal(both.confusions[1, 1] - both.confusions[0, 1], [[1, -1, 0], [0, 0, 0], [0, 0, 0]])
    row = bootstrap_compare([load_run_set("a", [a]), load_run_set("b", [b])], resamples=200)[1]
    assert row["dUF1"] == 0.0 and row["dUF1_ci"] == (0.0, 0.0) and row["p_tie"] == 1.0


_HAND_ROWS = [{"label": "a", "runs": 1, "oracle": False, "UF1": 0.5, "UAR": 0.6, "UF1_ci": (0.4, 0.55),
               "UAR_ci": (0.5, 0.65)},
              {"label": "b", "runs": 2, "oracle": True, "UF1": 0.6, "UAR": 0.65, "UF1_ci": (0.5, 0.7),
               "UAR_ci": (0.55, 0.75), "dUF1": 0.1, "dUF1_ci": (-0.05, 0.2), "dUAR": 0.05, "dUAR_ci": (-0.02, 0.1),
               "p_better": 0.75, "p_tie": 0.125}]


def test_compare_csv_puts_each_number_in_its_column():
    """The CSV of hand-made comparison rows: every value, low and high end under its own column name, ORACLE for an
    oracle entry, and the share of ties (0.125) in p_tie, not another number. Mutation killed: p_tie written as
    p_better."""
    import io

    import pandas as pd

    from icegan.significance import comparison_table
    df = pd.read_csv(io.StringIO(comparison_table(_HAND_ROWS, fmt="csv")))
    assert df["label"].tolist() == ["a", "b"] and df["selection"].tolist() == ["honest", "ORACLE"]
    b = df.iloc[1]
    want = {"runs": 2, "UF1": 0.6, "UF1_low": 0.5, "UF1_high": 0.7, "UAR": 0.65, "UAR_low": 0.55, "UAR_high": 0.75,
            "dUF1": 0.1, "dUF1_low": -0.05, "dUF1_high": 0.2, "dUAR": 0.05, "dUAR_low": -0.02, "dUAR_high": 0.1,
            "p_better": 0.75, "p_tie": 0.125}
    assert {k: b[k] for k in want} == pytest.approx(want)
    assert df.iloc[0][["dUF1", "p_better", "p_tie"]].isna().all()          # the baseline has no difference


def test_metrics_md_paragraph_gives_the_uar_interval_as_uar():
    """interval_markdown (the paragraph of a run's metrics.md) of a hand-made interval: UF1 [0.4, 0.55] and UAR
    [0.5, 0.65], each under its own name. Mutation killed: the UAR part printing the UF1 interval."""
    from icegan.significance import interval_markdown
    ci = {"confidence": 0.9, "n_subjects": 68, "UF1": (0.4, 0.55), "UAR": (0.5, 0.65), "resamples": 1000}
    assert interval_markdown(ci) == ("Subject-bootstrap 90 % interval (1000 resamples of the 68 subjects, percentile; "
                                     "`icegan compare` for paired differences between runs): UF1 [0.4000, 0.5500], "
                                     "UAR [0.5000, 0.6500].\n")


@pytest.mark.parametrize("low, high, colour, other", [(0.05, 0.15, (44, 160, 44), (214, 39, 40)),
                                                      (-0.15, -0.05, (214, 39, 40), (44, 160, 44))],
                         ids=["above-0-green", "below-0-red"])
def test_forest_plot_draws_a_difference_above_zero_green_and_below_red(tmp_path, low, high, colour, other):
    """The forest plot's key says 'green: interval above 0, red: below 0': a hand-made entry whose ΔUF1 interval lies
    above 0 is drawn in matplotlib's green C2 (#2ca02c = 44, 160, 44) and none of the red C3 (#d62728), and the
    reverse below 0. Mutation killed: the two colours swapped."""
    import matplotlib.image as mpimg

    from icegan.significance import forest_plot
    row = dict(_HAND_ROWS[1], oracle=False, dUF1=(low + high) / 2, dUF1_ci=(low, high))
    forest_plot([("Full (4 subjects)", [_HAND_ROWS[0], row])], tmp_path / "p.png")
    rgb = (mpimg.imread(tmp_path / "p.png")[..., :3] * 255).astype(int)

    def pixels(c):
        return int((np.abs(rgb - np.array(c)).max(-1) <= 8).sum())
    assert pixels(colour) > 20 and pixels(other) == 0

# ------------------------------------------------------------------------------------------------ icegan.ensemble

_SCORES = ["score_negative", "score_positive", "score_surprise"]


def _write_hde_member(d, rows):
    """A finished honest HDE run of one fold (CASME II held out) whose ``rows`` are (subject, clip, y_true,
    probabilities); y_pred is the argmax."""
    import json

    import pandas as pd
    d.mkdir(parents=True)
    pred = pd.DataFrame([(0, "casme2", s, c, y, int(np.argmax(p)), *p) for s, c, y, p in rows],
                        columns=["fold", "dataset", "subject", "clip", "y_true", "y_pred", *_SCORES])
    pred.to_csv(d / "predictions.csv", index=False)
    (d / "run.json").write_text(json.dumps({"protocol": "HDE", "oracle_epoch": False, "folds": ["casme2"]}))
    return d


def test_hde_members_whose_subjects_share_clip_names_are_matched_by_subject_too(tmp_path):
    """An HDE fold holds a whole dataset, in which two subjects may have clips of the same name (a/c0 and b/c0). A
    member written with its rows in reverse order is matched to the other clip by clip, by subject and name: the
    ensemble of a run with its reversed copy is the run (a/c0 → 0, a/c1 → 1, b/c0 → 2 right; b/c1, true negative,
    predicted positive: F1 negative 2/3, positive 2/3, surprise 1, UF1 7/9), scored as the header's one fold.
    Mutations killed: members sorted by (fold, clip) only, which set b/c0 against a/c0 and refused the members as
    different; a clip's repetition checked by its name only (b/c0 refused as a second a/c0); the ensemble's n_folds
    counted as its subjects (2) instead of the header's folds; the members' UF1 and UAR swapped in metrics.md."""
    import pandas as pd

    from icegan.ensemble import ensemble_runs
    rows = [("casme2/a", "c0", 0, (0.7, 0.2, 0.1)), ("casme2/a", "c1", 1, (0.1, 0.8, 0.1)),
            ("casme2/b", "c0", 2, (0.2, 0.2, 0.6)), ("casme2/b", "c1", 0, (0.3, 0.4, 0.3))]
    m1 = _write_hde_member(tmp_path / "m1", rows)
    m2 = _write_hde_member(tmp_path / "m2", rows[::-1])
    m = ensemble_runs([m1, m2], tmp_path / "e", weights=[1, 3])
    e = pd.read_csv(tmp_path / "e" / "predictions.csv").sort_values(["subject", "clip"], ignore_index=True)
    np.testing.assert_allclose(e[_SCORES].to_numpy(), [p for *_, p in rows], atol=1e-9)
    assert e["y_pred"].tolist() == [0, 1, 2, 1]
    assert m["overall"]["UF1"] == pytest.approx(7 / 9)
    assert (m["n_folds"], m["n_samples"]) == (1, 4)         # one fold (the dataset) of two subjects, as the header says
    # metrics.md lists each member with its weight (1/4, 3/4) and its own UF1 7/9 and UAR (1/2 + 1 + 1)/3 = 5/6
    md = (tmp_path / "e" / "metrics.md").read_text()
    assert f"| {m1} | 0.250 | 0.7778 | 0.8333 |" in md and f"| {m2} | 0.750 | 0.7778 | 0.8333 |" in md

# ------------------------------------------------------------------------------------------ icegan compare, suite


def test_compare_latex_labels_of_a_dataset_key_keep_letters_digits_and_dashes_only():
    """The per-dataset LaTeX floats of ``icegan compare --per-dataset`` are labelled tab:icegan-compare-<key>; a key
    with other characters (a custom dataset 'my data_2+x') gives letters, digits and dashes only. Mutation killed:
    the key used as written."""
    from icegan.commands.compare import _label_part
    assert _label_part("my data_2+x") == "my-data-2-x" and _label_part("casme2") == "casme2"


def test_suite_page_compares_against_the_files_baseline_with_its_resamples_and_strata(tmp_path):
    """A one-seed toy suite of 'logistic floor' then 'forest', whose file names forest (its second run) as the
    baseline, 200 resamples and stratified draws, over subjects of two datasets (max_folds=5: four CASME II, one
    SAMM): the comparison on results.md is, cell for cell, icegan.significance's for those options on the two finished
    folders in the suite's order (differences to forest; the folders' predictions given wrong clips and the page
    written again, as the toy runs are right on every clip), and the results table lists the runs in that order too.
    Mutations killed: the page's baseline the first run, whatever the file says; the resampling not stratified, or
    with other resamples than the legend states; the table told baseline 0; the entries in the order of their labels
    (forest first)."""
    from _runs import write_metrics
    from test_suite import TOY_SUITE

    import pandas as pd

    from icegan.significance import comparison_table
    from icegan.suite import load_suite, plan_suite, run_suite, write_results
    suite = tmp_path / "s.yaml"
    suite.write_text(TOY_SUITE.replace("seeds: [0, 1]", "seeds: [0]").replace("label: floor", "label: logistic floor")
                     + "baseline: forest\nstratify: true\nper_dataset: false\n")
    out, over = tmp_path / "out", ["threads=1", "max_folds=5"]
    run_suite(suite, out, over, progress=False)
    # both toy runs are right on every clip; wrong clips (every 2nd of the first two CASME II subjects, every 2nd of
    # the SAMM subject) make intervals worth comparing
    for name, which in (("logistic_floor_s0", [0, 1]), ("forest_s0", [-1])):
        f = out / name / "predictions.csv"
        p = pd.read_csv(f, dtype={"dataset": str, "subject": str, "clip": str})
        subjects = sorted(p["subject"].unique())
        wrong = p["subject"].isin([subjects[i] for i in which]).to_numpy() & (np.arange(len(p)) % 2 == 0)
        p.loc[wrong, "y_pred"] = (p.loc[wrong, "y_true"] + 1) % 3
        scores = [c for c in p.columns if c.startswith("score_")]     # the top score where y_pred is, as a run writes
        p.loc[wrong, scores] = np.eye(len(scores))[p.loc[wrong, "y_pred"].to_numpy()]
        p.to_csv(f, index=False)
        write_metrics(out / name)                    # metrics.json as a run would write it for these rows
    loaded = load_suite(suite)
    plan = plan_suite(loaded, suite, out, over)
    write_results(loaded, plan, out, {x.out for x in plan}, suite)
    sets = [load_run_set("logistic floor", [out / "logistic_floor_s0"]), load_run_set("forest", [out / "forest_s0"])]
    assert sets[0].datasets() == ["casme2", "samm"]
    rows = bootstrap_compare(sets, baseline=1, resamples=200, stratify=True)
    assert rows[0]["UF1_ci"][0] < rows[0]["UF1_ci"][1] and rows[0]["dUF1"] < 0
    assert rows != bootstrap_compare(sets, baseline=1, resamples=200)                    # the strata matter here
    assert rows != bootstrap_compare(sets, baseline=1, resamples=100, stratify=True)      # and so do the resamples
    want = comparison_table(rows, baseline=1, resamples=200, stratified=True)
    res = (out / "results.md").read_text()
    assert f"## Subject-bootstrap intervals, paired differences to forest\n\n{want}" in res
    whole = re.sub(r" \[PARTIAL: 5 of \d+ folds\]", "", res)        # the max_folds smoke runs' marks taken out
    floor_row, forest_row = (next(ln for ln in whole.splitlines() if ln.startswith(f"| {lab} | 1 | honest |"))
                             for lab in ("logistic floor", "forest"))
    assert "(baseline)" in forest_row and "(baseline)" not in floor_row
    assert whole.index("| logistic floor | honest | CDE | 1 |") < whole.index("| forest | honest | CDE | 1 |")


def test_per_seed_table_puts_each_runs_uf1_and_uar_under_its_seed_and_marks_an_oracle_run(tmp_path):
    """The suite's 'every run, by seed' table from hand-made metrics.json files: floor seed 0 (UF1 0.5, UAR 0.6),
    floor seed 1 (0.55, 0.65, picked its epochs on the test subjects), forest seed 0 (0.7, 0.8), forest seed 1 not
    finished. Each cell is 'UF1 / UAR' under its seed, the oracle run marked, the unfinished one a dash. Mutation
    killed: the [ORACLE] mark left out."""
    import json

    from test_suite import TOY_SUITE

    from icegan.suite import load_suite, per_seed_table, plan_suite
    p = tmp_path / "s.yaml"
    p.write_text(TOY_SUITE)
    suite = load_suite(p)
    plan = plan_suite(suite, p, tmp_path / "out")
    metrics = {"floor_s0": (0.5, 0.6, False), "floor_s1": (0.55, 0.65, True), "forest_s0": (0.7, 0.8, False)}
    for x in plan:
        if x.out.name in metrics:
            uf1, uar, oracle = metrics[x.out.name]
            x.out.mkdir(parents=True)
            (x.out / "metrics.json").write_text(json.dumps({"oracle_epoch": oracle,
                                                            "overall": {"UF1": uf1, "UAR": uar}}))
    finished = {x.out for x in plan if x.out.name in metrics}
    assert per_seed_table(suite, plan, finished).splitlines() == [
        "| entry | seed 0 | seed 1 |", "|---|---|---|",
        "| floor | 0.5000 / 0.6000 | 0.5500 / 0.6500 [ORACLE] |",
        "| forest | 0.7000 / 0.8000 | – |"]
