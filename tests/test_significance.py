"""Subject-bootstrap intervals (icegan.significance, icegan compare), the vectorised UF1/UAR, and the bench
diagnostics built on them (decision-rule bound, epoch curve)."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from _bench import load_bench

from icegan.cli import main
from icegan.metrics import compute_metrics, confusion_matrix, uf1_uar_from_confusion
from icegan.significance import (_statistic, bootstrap_compare, comparison_table, interval_markdown, load_run_set,
                                 scope_title, subject_confusions, subject_interval)


def test_uf1_uar_from_confusion_matches_compute_metrics():
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, 3, 50), rng.integers(0, 3, 50)),
             (rng.integers(0, 3, 40), rng.integers(0, 2, 40)),           # class 2 never predicted
             (rng.integers(0, 2, 30), rng.integers(0, 3, 30)),           # class 2 absent from the truth
             (np.array([0, 1, 2, 2]), np.array([0, 1, 2, 2])),
             (np.array([0, 1, 2, 2, 2]), np.array([0, 2, 2, 2, 1]))]       # class 1: one clip, missed
    cms = np.stack([confusion_matrix(t, p) for t, p in cases])
    uf1, uar = uf1_uar_from_confusion(cms)
    assert uf1[-1] == pytest.approx((1 + 0 + 2 / 3) / 3) and uar[-1] == pytest.approx((1 + 0 + 2 / 3) / 3)
    for k, (t, p) in enumerate(cases):
        m = compute_metrics(t, p)
        assert uf1[k] == pytest.approx(m["UF1"]) and uar[k] == pytest.approx(m["UAR"])
    assert np.isnan(uf1_uar_from_confusion(np.zeros((3, 3)))[0])
    with pytest.raises(ValueError, match="C, C"):
        uf1_uar_from_confusion(np.zeros((3, 2)))


def _write_run(d, rows, oracle=False, folds=None, model="ststnet", seed=None):
    """A finished run folder: predictions.csv, run.json and config.yaml (recipe ``model``, seed ``seed``; None: the
    digits that end the folder's name, r_s1: 1, else 0, so that the seeds of one entry differ)."""
    d.mkdir(parents=True)
    seed = int(re.search(r"(\d*)$", d.name).group(1) or 0) if seed is None else seed
    (d / "config.yaml").write_text(yaml.safe_dump({"name": d.name, "seed": seed, "threads": seed,
                                                   "oracle_epoch": oracle, "model": {"name": model, "epochs": 100}}))
    pred = pd.DataFrame(rows, columns=["subject", "clip", "y_true", "y_pred"])
    pred.insert(0, "fold", pred["subject"].map({s: i for i, s in enumerate(sorted(pred["subject"].unique()))}))
    pred.insert(1, "dataset", pred["subject"].str.split("/").str[0])
    pred.to_csv(d / "predictions.csv", index=False)
    (d / "run.json").write_text(json.dumps({"protocol": "CDE", "oracle_epoch": oracle,
                                            "folds": folds or sorted(pred["subject"].unique())}))
    return d


def _rows(n_subj, truth, pred_fn):
    """Each subject has the clips of ``truth``; prediction of clip j of subject s = pred_fn(s, j, y)."""
    return [(f"casme2/s{s:02d}", f"c{j}", y, pred_fn(s, j, y)) for s in range(n_subj) for j, y in enumerate(truth)]


def test_statistic_equals_pooled_metrics_of_the_resampled_subjects(tmp_path):
    rng = np.random.default_rng(1)
    rows = [(f"samm/{s:03d}", f"c{j}", int(rng.integers(0, 3)), int(rng.integers(0, 3)))
            for s in range(9) for j in range(int(rng.integers(1, 6)))]
    rs = load_run_set("a", [_write_run(tmp_path / "a", rows)])
    pred = pd.DataFrame(rows, columns=["subject", "clip", "y_true", "y_pred"])
    idx = rng.integers(0, 9, (4, 9))
    got = _statistic(rs.confusions)(idx)
    for b in range(4):
        parts = [pred[pred["subject"] == rs.subjects[i]] for i in idx[b]]
        pooled = pd.concat(parts)
        m = compute_metrics(pooled["y_true"], pooled["y_pred"])
        assert got[0, b] == pytest.approx(m["UF1"]) and got[1, b] == pytest.approx(m["UAR"])
    # per-subject counts add up to the pooled confusion matrix
    np.testing.assert_array_equal(subject_confusions(pred, rs.subjects).sum(0),
                                  confusion_matrix(pred["y_true"], pred["y_pred"]))


def test_identical_subjects_give_a_point_interval_and_self_difference_zero(tmp_path):
    truth = [0, 0, 1, 2]
    # every subject makes the same single mistake: any resample pools the same proportions
    a = _write_run(tmp_path / "a", _rows(8, truth, lambda s, j, y: 1 if j == 0 else y))
    b = _write_run(tmp_path / "b", _rows(8, truth, lambda s, j, y: y))
    sets = [load_run_set("a", [a]), load_run_set("b", [b]), load_run_set("a2", [a])]
    rows = bootstrap_compare(sets, resamples=500)
    expect = compute_metrics([0, 0, 1, 2], [1, 0, 1, 2])
    assert rows[0]["UF1"] == pytest.approx(expect["UF1"])
    assert rows[0]["UF1_ci"] == pytest.approx((expect["UF1"], expect["UF1"]))
    assert rows[1]["UF1"] == 1.0 and rows[1]["UF1_ci"] == (1.0, 1.0)
    assert rows[1]["dUF1"] == pytest.approx(1 - expect["UF1"]) and rows[1]["p_better"] == 1.0
    assert rows[2]["dUF1"] == 0.0 and rows[2]["dUF1_ci"] == (0.0, 0.0) and rows[2]["p_better"] == 0.0
    # UAR differences are UAR minus the baseline's UAR (here UF1 0.7778 and UAR 0.8333 differ)
    assert rows[2]["dUAR_ci"] == (0.0, 0.0)
    assert rows[1]["dUAR_ci"] == pytest.approx((1 - expect["UAR"], 1 - expect["UAR"]))
    # a run against itself is tied in every resample, not "lower in 100 %": the table says so
    assert rows[2]["p_tie"] == 1.0 and rows[1]["p_tie"] == 0.0
    table = comparison_table(rows, resamples=500)
    assert "| 0.0 % (ties 100.0 %) |" in table and "| 100.0 % |" in table
    assert "p_tie" in comparison_table(rows, fmt="csv").splitlines()[0]


def test_p_better_counts_higher_uf1_not_higher_uar(tmp_path):
    """Truth [0, 0, 0, 1, 1, 2] on every subject: predicting all 0 scores UF1 2/9, UAR 1/3; predicting
    [0, 1, 1, 1, 2, 1] scores UF1 5/18 (higher) and UAR 5/18 (lower). The share of resamples 'UF1 > baseline' is 1."""
    truth, pred = [0, 0, 0, 1, 1, 2], [0, 1, 1, 1, 2, 1]
    base = _write_run(tmp_path / "base", _rows(8, truth, lambda s, j, y: 0))
    other = _write_run(tmp_path / "other", _rows(8, truth, lambda s, j, y: pred[j]))
    rows = bootstrap_compare([load_run_set("base", [base]), load_run_set("other", [other])], resamples=200)
    assert (rows[0]["UF1"], rows[0]["UAR"]) == pytest.approx((2 / 9, 1 / 3))
    assert (rows[1]["UF1"], rows[1]["UAR"]) == pytest.approx((5 / 18, 5 / 18))
    assert rows[1]["p_better"] == 1.0 and rows[1]["p_tie"] == 0.0


def test_difference_interval_is_the_entrys_interval_shifted_when_the_baseline_is_constant(tmp_path):
    """A baseline right on every clip has UF1 1 in every resample, so the paired difference is the entry's UF1 − 1
    resample by resample: its interval is the entry's interval minus 1, at the same confidence level."""
    rng = np.random.default_rng(4)
    truth = [0, 0, 1, 2]
    wrong = {s: int(rng.integers(0, 3)) for s in range(12)}           # 0-2 mistakes per subject
    perfect = _write_run(tmp_path / "p", _rows(12, truth, lambda s, j, y: y))
    noisy = _write_run(tmp_path / "n", _rows(12, truth, lambda s, j, y: (y + 1) % 3 if j < wrong[s] else y))
    for confidence in (0.95, 0.8):
        rows = bootstrap_compare([load_run_set("p", [perfect]), load_run_set("n", [noisy])], resamples=400,
                                 confidence=confidence)
        lo, hi = rows[1]["UF1_ci"]
        assert hi - lo > 0.01
        assert rows[1]["dUF1_ci"] == pytest.approx((lo - 1, hi - 1), abs=1e-9)


def test_equal_uf1_up_to_float_rounding_is_a_tie(tmp_path):
    """Two runs whose pooled UF1 are the same number (their per-class F1s sum to 9/14) but come out one rounding apart
    (0.6428571428571429 against ...28) are tied in every resample, not 'lower in 100 %'."""
    truth = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    pa, pb = (0, 0, 0, 1, 2, 0, 1, 2, 2), (0, 0, 1, 0, 1, 0, 2, 2, 2)
    assert compute_metrics(truth, pa)["UF1"] != compute_metrics(truth, pb)["UF1"]          # the rounding is real
    a = _write_run(tmp_path / "a", _rows(4, truth, lambda s, j, y: pa[j]))
    b = _write_run(tmp_path / "b", _rows(4, truth, lambda s, j, y: pb[j]))
    row = bootstrap_compare([load_run_set("a", [a]), load_run_set("b", [b])], resamples=200)[1]
    assert row["p_tie"] == 1.0 and row["p_better"] == 0.0


def test_one_clip_corrected_is_better_in_every_resample_that_draws_its_subject(tmp_path):
    """40 subjects, one clip corrected in subject 0 (UF1 up by about 0.002, well below 0.01): a resample that draws
    subject 0 has a strictly higher UF1, one that does not is an exact tie; so p_better + p_tie = 1 and p_tie is near
    the chance of not drawing subject 0 in 40 draws, (39/40)^40 = 0.363, not 1."""
    truth = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    base = _write_run(tmp_path / "base", _rows(40, truth, lambda s, j, y: 1 if j == 0 else y))
    fixed = _write_run(tmp_path / "fixed", _rows(40, truth, lambda s, j, y: 1 if j == 0 and s > 0 else y))
    row = bootstrap_compare([load_run_set("base", [base]), load_run_set("fixed", [fixed])], resamples=1000)[1]
    assert 0 < row["dUF1"] < 0.01
    assert row["p_better"] + row["p_tie"] == pytest.approx(1.0)
    assert row["p_tie"] == pytest.approx((39 / 40) ** 40, abs=0.05)


def test_paired_difference_is_tighter_than_the_entries_and_seeds_average(tmp_path):
    rng = np.random.default_rng(2)
    truth = [0, 0, 0, 1, 1, 2]
    noise = {s: rng.random() < 0.5 for s in range(30)}                    # half the subjects are hard
    base = _rows(30, truth, lambda s, j, y: (y + 1) % 3 if noise[s] and j % 2 == 0 else y)
    better = [(s_, c, y, y if (s_, c) == ("casme2/s00", "c0") else p) for s_, c, y, p in base]   # fixes one clip
    sets = [load_run_set("base", [_write_run(tmp_path / "base", base)]),
            load_run_set("better", [_write_run(tmp_path / "better", better, seed=1)]),
            load_run_set("seeds", [tmp_path / "base", tmp_path / "better"])]
    rows = bootstrap_compare(sets, resamples=2000, seed=3)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert rows[1]["dUF1"] > 0 and rows[1]["dUF1_ci"][0] >= 0
    assert width(rows[1]["dUF1_ci"]) < width(rows[0]["UF1_ci"]) / 3
    assert rows[2]["runs"] == 2 and rows[2]["UF1"] == pytest.approx((rows[0]["UF1"] + rows[1]["UF1"]) / 2)
    again = bootstrap_compare(sets, resamples=2000, seed=3)
    assert again == rows                                                  # seeded
    table = comparison_table(rows)
    assert "| better | 1 | honest |" in table and "(baseline)" in table and "ΔUF1 vs base" in table
    csv = comparison_table(rows, fmt="csv")
    assert csv.splitlines()[0].startswith("label,runs,selection,protocol,UF1,UF1_low,UF1_high")
    tex = comparison_table(rows, fmt="latex").splitlines()
    assert tex[3] == (r"\caption{UF1 and UAR with 95 \% subject-bootstrap intervals (9999 resamples of the subjects, "
                      r"the same for every entry), and the paired differences to base.}")
    assert tex[4:6] == [r"\label{tab:icegan-compare}", r"\begin{adjustbox}{max width=\textwidth}"]
    end = tex.index(r"\end{table*}")
    assert tex[end - 2:end] == [r"\end{tabular}", r"\end{adjustbox}"] and tex[-1].startswith("% ")
    tex = tex[6:]
    assert tex[0] == r"\begin{tabular}{lrlccccr}"
    assert tex[2].startswith(r"Entry & Runs & Selection & UF1 [95 \% CI] & UAR [95 \% CI] & $\Delta$UF1 vs base [95 \% CI] & "
                             r"$\Delta$UAR vs base [95 \% CI] &")                 # the PDF shows what the brackets are
    r1 = rows[1]
    assert tex[5] == (f"better & 1 & honest & ${r1['UF1']:.4f}$ [${r1['UF1_ci'][0]:.4f}$, ${r1['UF1_ci'][1]:.4f}$] & "
                      f"${r1['UAR']:.4f}$ [${r1['UAR_ci'][0]:.4f}$, ${r1['UAR_ci'][1]:.4f}$] & "
                      f"${r1['dUF1']:.4f}$ [${r1['dUF1_ci'][0]:.4f}$, ${r1['dUF1_ci'][1]:.4f}$] & "
                      f"${r1['dUAR']:.4f}$ [${r1['dUAR_ci'][0]:.4f}$, ${r1['dUAR_ci'][1]:.4f}$] & "
                      f"{100 * r1['p_better']:.1f}\\% (ties {100 * r1['p_tie']:.1f}\\%) \\\\")
    assert r1["p_tie"] > 0          # in this data a resample drawing none of the subjects where they differ ties
    assert tex[4].startswith("base & 1 & honest &") and "(baseline)" in tex[4]
    assert not comparison_table(rows, fmt="latex", legend=False).splitlines()[-1].startswith("%")
    with pytest.raises(ValueError, match="markdown, latex or csv"):
        comparison_table(rows, fmt="html")
    pct = comparison_table([dict(rows[0], label="top 5%_a"), rows[1]], fmt="latex", scope="SAMM & co").splitlines()
    assert pct[3].startswith(r"\caption{UF1 and UAR on SAMM \& co with") and pct[3].endswith(r"to top 5\%\_a.}")
    pct = pct[6:]
    assert pct[2].endswith(r"$\Delta$UF1 vs top 5\%\_a [95 \% CI] & $\Delta$UAR vs top 5\%\_a [95 \% CI] & "
                           r"Resamples UF1 $>$ top 5\%\_a \\")
    assert pct[4].startswith(r"top 5\%\_a & 1 & honest &")


def test_errors_name_what_is_wrong(tmp_path):
    truth = [0, 1, 2]
    a = _write_run(tmp_path / "a", _rows(4, truth, lambda s, j, y: y))
    other = _write_run(tmp_path / "other", _rows(5, truth, lambda s, j, y: y), seed=1)
    cut = _write_run(tmp_path / "cut", _rows(4, truth, lambda s, j, y: y), folds=[f"casme2/s{s:02d}" for s in range(6)])
    oracle = _write_run(tmp_path / "oracle", _rows(4, truth, lambda s, j, y: y), oracle=True)
    with pytest.raises(ValueError, match="unfinished run.*casme2/s04"):
        load_run_set("cut", [cut])
    with pytest.raises(ValueError, match=f"^entry 'x': {re.escape(str(other))} and {re.escape(str(a))} differ in clips "
                                         "or labels; runs of one entry must cover the same clips$"):
        load_run_set("x", [a, other])
    with pytest.raises(ValueError, match="mixes oracle"):
        load_run_set("x", [a, oracle])
    with pytest.raises(ValueError, match="no run.json"):
        load_run_set("x", [tmp_path])
    ens = tmp_path / "ens"
    ens.mkdir()
    (ens / "predictions.csv").write_text((a / "predictions.csv").read_text())
    (ens / "ensemble.json").write_text(json.dumps({"members": [], "protocol": "CDE"}))
    assert load_run_set("e", [ens]).clips.equals(load_run_set("a", [a]).clips)
    sa, so = load_run_set("a", [a]), load_run_set("o", [other])
    with pytest.raises(ValueError, match="different clips"):
        bootstrap_compare([sa, so])
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_compare([sa], resamples=10)
    with pytest.raises(ValueError, match="^baseline index 1 out of range for 1 entries$"):
        bootstrap_compare([sa], baseline=1)
    with pytest.raises(ValueError, match=r"^confidence must be in \(0, 1\), got 1\.0$"):
        bootstrap_compare([sa], confidence=1.0)
    pred = pd.DataFrame(_rows(4, truth, lambda s, j, y: y), columns=["subject", "clip", "y_true", "y_pred"])
    pred.loc[len(pred) - 1, "y_true"] = 3                      # the last subject's last clip: class id 3 of 0..2
    with pytest.raises(ValueError, match=r"^class ids outside 0\.\.2 in predictions$"):
        subject_confusions(pred, sa.subjects)
    with pytest.raises(ValueError, match="^prediction of an unknown subject casme2/s03$"):
        subject_confusions(pred, sa.subjects[:3])
    single = load_run_set("one", [_write_run(tmp_path / "one", _rows(1, truth, lambda s, j, y: y))])
    assert scope_title("casme2", [single]) == "CASME II (1 subject)" and scope_title("all", [sa]) == "Full (4 subjects)"
    with pytest.raises(ValueError, match="needs at least two subjects; 'one' has 1 \\(casme2/s00\\)"):
        bootstrap_compare([single])
    assert load_run_set("o", [oracle]).oracle
    assert "**ORACLE**" in comparison_table(bootstrap_compare([load_run_set("o", [oracle])], resamples=100))


def test_compare_cli(tmp_path, capsys):
    truth = [0, 1, 2, 2]
    _write_run(tmp_path / "r_s0", _rows(6, truth, lambda s, j, y: y if s % 3 else 0))
    _write_run(tmp_path / "r_s1", _rows(6, truth, lambda s, j, y: y if s % 2 else 0))
    _write_run(tmp_path / "plain", _rows(6, truth, lambda s, j, y: 0 if j == 3 else y))
    out = tmp_path / "cmp.md"
    rc = main(["compare", f"seeds={tmp_path}/r_s*", f"plain={tmp_path}/plain", "--baseline", "plain",
               "--resamples", "300", "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    assert "| seeds | 2 | honest |" in text and "ΔUF1 vs plain" in text
    assert main(["compare", f"{tmp_path}/plain", "--baseline", "nope"]) == 2
    assert "--baseline 'nope'" in capsys.readouterr().err
    assert main(["compare", f"{tmp_path}/missing_*"]) == 2
    assert "matches no run folder" in capsys.readouterr().err


def test_subject_interval_is_compare_s_interval_of_one_run(tmp_path):
    rng = np.random.default_rng(5)
    rows = [(f"smic/s{s}", f"c{j}", int(rng.integers(0, 3)), int(rng.integers(0, 3))) for s in range(12) for j in range(4)]
    run = _write_run(tmp_path / "r", rows)
    ci = subject_interval(pd.read_csv(run / "predictions.csv", dtype={"subject": str}), resamples=999, seed=7)
    row = bootstrap_compare([load_run_set("r", [run])], resamples=999, seed=7)[0]
    assert ci["UF1"] == row["UF1_ci"] and ci["UAR"] == row["UAR_ci"] and ci["n_subjects"] == 12
    assert "UF1 [" in interval_markdown(ci) and "12 subjects" in interval_markdown(ci)
    one = pd.DataFrame({"subject": ["a"] * 3, "y_true": [0, 1, 2], "y_pred": [0, 1, 1]})
    assert subject_interval(one) is None and interval_markdown(None) == ""


def test_per_dataset_scopes(tmp_path, capsys):
    truth = [0, 1, 2]
    rows = [(f"{d}/s{s}", f"c{j}", y, y if (d == "samm" or s % 2) else 0)
            for d in ("casme2", "samm") for s in range(4) for j, y in enumerate(truth)]
    run = _write_run(tmp_path / "r", rows)
    rs = load_run_set("r", [run])
    assert rs.datasets() == ["casme2", "samm"]
    three = _write_run(tmp_path / "three", [(f"{d}/s0", "c0", 0, 0) for d in ("samm", "smic", "casme2")])
    assert load_run_set("t", [three]).datasets() == ["smic", "casme2", "samm"]     # the tables' order, not a-z
    samm = rs.restrict("samm")
    assert samm.subjects == [f"samm/s{s}" for s in range(4)] and len(samm.clips) == 12
    assert bootstrap_compare([samm], resamples=200)[0]["UF1_ci"] == (1.0, 1.0)     # every SAMM clip right
    casme = bootstrap_compare([rs.restrict("casme2")], resamples=200)[0]
    pooled = pd.DataFrame(rows[:12], columns=["subject", "clip", "y_true", "y_pred"])
    assert casme["UF1"] == pytest.approx(compute_metrics(pooled["y_true"], pooled["y_pred"])["UF1"])
    with pytest.raises(ValueError, match="smic"):
        rs.restrict("smic")
    assert main(["compare", f"a={run}", f"b={run}", "--per-dataset", "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "## Full (8 subjects)" in out and "## CASME II (4 subjects)" in out and "## SAMM (4 subjects)" in out
    assert out.count("Subject-level bootstrap") == 1
    png = tmp_path / "forest.png"
    assert main(["compare", f"a={run}", f"b={run}", "--per-dataset", "--resamples", "200", "--plot", str(png)]) == 0
    from PIL import Image
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[1] > im.size[0] / 2          # three scopes stacked
    capsys.readouterr()
    assert main(["compare", str(run), "--per-dataset", "--resamples", "200", "--format", "csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].startswith("scope,label,") and [ln.split(",")[0] for ln in csv[1:]] == ["all", "casme2", "samm"]
    assert main(["compare", str(run), "--per-dataset", "--resamples", "200", "--format", "latex"]) == 0
    tex = capsys.readouterr().out
    assert [ln for ln in tex.splitlines() if ln.startswith("% ") and "subjects)" in ln] == \
        ["% Full (8 subjects)", "% CASME II (4 subjects)", "% SAMM (4 subjects)"]
    assert tex.count(r"\begin{tabular}") == 3 and tex.count("% Subject-level bootstrap") == 1
    assert [ln for ln in tex.splitlines() if ln.startswith(r"\label")] == \
        [r"\label{tab:icegan-compare-all}", r"\label{tab:icegan-compare-casme2}", r"\label{tab:icegan-compare-samm}"]
    assert r"\caption{UF1 and UAR on CASME II (4 subjects) with" in tex


def test_decision_rule_bound_finds_the_offset_that_fixes_a_biased_rule():
    """bench/decision_rule_bound.py: scores that over-predict class 2 by a constant factor e^1 are fixed exactly
    by an offset near -1 on class 2; scores already right keep b = 0 (ties go to the smallest offset)."""
    bench = load_bench("decision_rule_bound")
    y = np.array([0, 0, 0, 1, 1, 2, 2, 0, 1, 2])
    clean = np.full((len(y), 3), 0.2)
    clean[np.arange(len(y)), y] = 0.6
    uf1, uar, b_uf1, b_uar, b = bench.bound(clean, y)
    assert uf1 == 1.0 and b_uf1 == 1.0 and np.array_equal(b, [0, 0, 0])
    biased = clean.copy()
    biased[:, 2] *= np.e ** 1.5                  # class 2 now wins every row: UF1 of argmax is low
    uf1, uar, b_uf1, b_uar, b = bench.bound(biased, y)
    assert uf1 < 0.3 and b_uf1 == 1.0 and b_uar == 1.0
    assert b[0] == 0 and -2.0 <= b[2] < -(1.5 - np.log(3)) and b[1] == 0    # just enough to undo the bias


def test_decision_rule_bound_dataset_priors_use_the_other_subjects_only():
    """λ = 0 is plain argmax; λ = 1 adds log π_d, the class frequencies among the *other* subjects of the clip's
    dataset: a clip near the boundary goes to that majority; its own label never enters its prior."""
    bench = load_bench("decision_rule_bound")
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    subject = np.array(["a", "b", "b", "c", "c", "e", "e", "f"])
    dataset = np.array(["d1"] * 5 + ["d2"] * 3)
    scores = np.array([[0.45, 0.55, 0.0], [0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.1, 0.9, 0.0],
                       [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    curve = bench.dataset_prior_curve(scores, y, dataset, subject)
    assert len(curve) == len(bench.LAMBDAS)
    argmax = scores.argmax(1)                       # row 0 (true 0) goes to class 1
    assert curve[0] == pytest.approx(compute_metrics(y, argmax)["UF1"])
    # λ = 1, row 0 (subject a of d1): the others of d1 are 3 x class 0, 1 x class 1 → log .45 + log .75 > log .55 +
    # log .25; subject c's class-1 row: others of d1 (a, b) hold no class 1 → its prior is log 1e-12 → class 0.
    # d2: subject e's class-1 row has others (f) = class 2 only → it goes to class 2.
    fixed = argmax.copy()
    fixed[0], fixed[4], fixed[5] = 0, 0, 2
    assert curve[-1] == pytest.approx(compute_metrics(y, fixed)["UF1"])


def test_epoch_curve_pools_every_fold_at_the_same_epoch(tmp_path, capsys, monkeypatch):
    """bench/epoch_curve.py: the curve at record r is the MEGC2019 UF1 of every fold's record r pooled; its last
    record is the final-epoch run's (same models); a short toy run prints one row per recorded epoch."""
    import sys
    from pathlib import Path

    from icegan.protocol import make_folds
    bench = load_bench("epoch_curve")
    subjects = ["d/a", "d/a", "d/b", "d/c"]
    folds = make_folds(subjects, "CDE")
    y = np.array([0, 1, 2, 1])
    right = np.eye(3)[y]
    wrong = np.eye(3)[(y + 1) % 3]
    rec = [np.stack([wrong[f.test_idx], right[f.test_idx]]) for f in folds]     # record 0 all wrong, 1 all right
    rec[1][1] = wrong[folds[1].test_idx]                                        # subject b wrong at record 1 too
    uf1, uar = bench.pooled_curve(rec, folds, y)
    assert uf1[0] == 0.0
    expected = np.array([0, 1, 0, 1])                                           # b's clip (label 2) predicted 0
    assert uf1[1] == pytest.approx(compute_metrics(y, expected)["UF1"])
    assert uar[1] == pytest.approx(compute_metrics(y, expected)["UAR"])
    monkeypatch.setattr(sys, "argv", ["epoch_curve", "--config", str(Path(__file__).parents[1] / "configs" /
                                                                      "demo_features.yaml"),
                                      "--threads", "1", "--plot", str(tmp_path / "c.png"),
                                      "model.name=ststnet", "model.epochs=4", "model.eval_every=2", "max_folds=0"])
    bench.main()
    out = capsys.readouterr().out
    assert "| 2 |" in out and "| 4 |" in out and "upper bound" in out and (tmp_path / "c.png").is_file()


def test_shared_errors_counts_clips_missed_by_every_run(tmp_path, capsys):
    """bench/shared_errors.py: per-clip error shares over runs, known by construction; runs over other clips and a
    single run are errors."""
    import pandas as pd

    mod = load_bench("shared_errors")
    clips = pd.DataFrame({"fold": [0, 0, 1, 1], "dataset": ["casme2", "casme2", "samm", "samm"],
                          "subject": ["casme2/sub01", "casme2/sub01", "samm/006", "samm/006"],
                          "clip": ["a", "b", "c", "d"], "y_true": [0, 1, 2, 0]})
    preds = {"r1": [0, 0, 0, 0], "r2": [1, 0, 2, 0], "r3": [2, 0, 0, 1]}     # clip b: all wrong; a: 2 of 3; c: 2 of 3
    for name, y_pred in preds.items():
        (tmp_path / name).mkdir()
        clips.assign(y_pred=y_pred).to_csv(tmp_path / name / "predictions.csv", index=False)
    e = mod.error_shares([tmp_path / n for n in preds]).set_index("clip")["error"]
    assert e.to_dict() == pytest.approx({"a": 2 / 3, "b": 1.0, "c": 2 / 3, "d": 1 / 3})
    assert mod.main([str(tmp_path / n) for n in preds] + ["--list"]) == 0
    out = capsys.readouterr().out
    assert "| every run | 1 | 0.250 |" in out and "| casme2 | casme2/sub01 | b | positive |" in out
    clips.assign(y_pred=0, clip=["a", "b", "c", "e"]).to_csv(tmp_path / "r3" / "predictions.csv", index=False)
    with pytest.raises(ValueError, match="other clips"):
        mod.error_shares([tmp_path / n for n in preds])
    with pytest.raises(ValueError, match="at least two runs"):
        mod.error_shares([tmp_path / "r1"])
    # the command line: a slip is one line naming the run, exit 2 (was a traceback)
    assert mod.main([str(tmp_path / n) for n in preds]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"shared_errors.py: error: {tmp_path / 'r3'} holds other clips than {tmp_path / 'r1'} "
                          f"(4 against 4;") and "Traceback" not in err
    # runs of another label set are listed with its class names, read from their score columns
    five = ["happiness", "disgust", "repression", "surprise", "others"]
    for name, y_pred in preds.items():
        clips.assign(y_pred=y_pred, **{f"score_{c}": 0.2 for c in five}).to_csv(tmp_path / name / "predictions.csv",
                                                                                 index=False)
    assert mod.main([str(tmp_path / n) for n in preds] + ["--list"]) == 0
    out = capsys.readouterr().out
    assert "| casme2 | casme2/sub01 | b | disgust |" in out and "| samm | repression | 1 |" in out


def test_merge_runs_joins_disjoint_runs_for_compare(tmp_path):
    """bench/merge_runs.py: two runs over disjoint clips become one prediction set that icegan compare reads, with
    metrics pooled over both; overlapping clips, oracle runs, a single run and a busy folder are errors."""
    import json

    import pandas as pd

    from icegan.metrics import compute_metrics
    from icegan.significance import load_run_set
    mod = load_bench("merge_runs")

    def run(name, dataset, subjects, y_true, y_pred, oracle=False):
        d = tmp_path / name
        d.mkdir()
        n = len(subjects)
        pd.DataFrame({"fold": 0, "dataset": dataset, "subject": subjects, "clip": [f"c{i}" for i in range(n)],
                      "y_true": y_true, "y_pred": y_pred}).to_csv(d / "predictions.csv", index=False)
        (d / "run.json").write_text(json.dumps({"protocol": "SDE", "dataset": dataset, "oracle_epoch": oracle,
                                                "folds": sorted(set(subjects))}))
        return d
    a = run("smic", "smic", ["smic/s1", "smic/s1", "smic/s2"], [0, 1, 2], [0, 1, 1])
    b = run("samm", "samm", ["samm/006", "samm/007", "samm/007"], [0, 0, 2], [2, 0, 2])
    m = mod.merge_runs([a, b], tmp_path / "merged")
    want = compute_metrics([0, 1, 2, 0, 0, 2], [0, 1, 1, 2, 0, 2], 3)
    assert m["overall"]["UF1"] == pytest.approx(want["UF1"]) and m["n_samples"] == 6 and m["n_folds"] == 4
    assert set(m["per_dataset"]) == {"smic", "samm"} and m["protocol"] == "SDE samm+SDE smic"
    rs = load_run_set("merged", [tmp_path / "merged"])
    assert rs.subjects == ["samm/006", "samm/007", "smic/s1", "smic/s2"]
    assert mod.merge_runs([a, b], tmp_path / "merged")["n_samples"] == 6          # rerun into its own folder
    with pytest.raises(ValueError, match="in more than one run"):
        mod.merge_runs([a, b, run("smic2", "smic", ["smic/s1"], [0], [0])], tmp_path / "m2")
    with pytest.raises(ValueError, match="oracle-epoch"):
        mod.merge_runs([a, run("o", "casme2", ["casme2/sub01"], [0], [0], oracle=True)], tmp_path / "m3")
    with pytest.raises(ValueError, match="at least two"):
        mod.merge_runs([a], tmp_path / "m4")
    with pytest.raises(ValueError, match="holds other files"):
        mod.merge_runs([a, b], a)


def test_compare_refuses_an_entry_of_different_recipes(tmp_path, capsys):
    """`icegan compare` averages the runs of an entry as seeds: runs of different recipes in one entry are refused
    (exit 2, naming the entry, the runs and the differing key); seeds of one recipe are averaged."""
    truth = [0, 1, 2, 2]
    lr = _write_run(tmp_path / "logreg", _rows(6, truth, lambda s, j, y: y if s % 3 else 0), model="logreg")
    st0 = _write_run(tmp_path / "ststnet_s0", _rows(6, truth, lambda s, j, y: y if s % 2 else 0), seed=0)
    st1 = _write_run(tmp_path / "ststnet_s1", _rows(6, truth, lambda s, j, y: 0 if j == 3 else y), seed=1)
    with pytest.raises(ValueError, match=r"entry 'Mixed': .*logreg and .*ststnet_s0 are different recipes.*"
                                         r"model\.name \('logreg' vs 'ststnet'\).*LABEL=GLOB"):
        load_run_set("Mixed", [lr, st0])
    assert load_run_set("STSTNet", [st0, st1]).confusions.shape[0] == 2       # seed and threads differ: one recipe
    assert main(["compare", f"Mixed={lr},{st0}", f"{st1}", "--resamples", "200"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan compare: error: entry 'Mixed'") and "model.name" in err
    assert main(["compare", f"{tmp_path}/*", "--resamples", "200"]) == 2           # no entry named '*' of everything
    assert "different recipes" in capsys.readouterr().err
    assert main(["compare", f"{tmp_path}/ststnet_s*", str(lr), "--resamples", "200"]) == 0
    assert "| ststnet_s\\* | 2 | honest |" in capsys.readouterr().out     # the * escaped: no Markdown emphasis
    with pytest.raises(ValueError, match=r"entry 'S' lists the run .*ststnet_s0 twice"):    # it counted twice
        load_run_set("S", [st0, st1, st0])


def test_forest_plot_keeps_every_label_on_the_page(tmp_path):
    """The forest plot's text stays inside the saved image, with a blank margin on every side: before, the right
    panel's colour key ran past the page's right edge and was cut (a six-entry suite page). Long entry labels too."""
    import matplotlib.image as mpimg

    from icegan.significance import forest_plot
    truth = [0, 0, 1, 2]
    base = _write_run(tmp_path / "a", _rows(8, truth, lambda s, j, y: 1 if j == 0 else y))
    other = _write_run(tmp_path / "b", _rows(8, truth, lambda s, j, y: y))
    sets = [load_run_set("STSTNet", [base])] + [
        load_run_set(f"STSTNet + shifts + random forest, all seeds, variant {i}", [other]) for i in range(5)]
    png = tmp_path / "plots" / "p.png"                # a folder not made yet (as --plot runs/forest.png may name)
    forest_plot([("all (8 subjects)", bootstrap_compare(sets, resamples=100))], png)
    img = mpimg.imread(png)[..., :3]
    ink = (img < 0.9).any(-1)                                             # any non-white pixel
    assert ink.any()
    for edge in (ink[:4], ink[-4:], ink[:, :4], ink[:, -4:]):
        assert not edge.any()


def _two_dataset_rows(n_a, n_b):
    """Subjects of two datasets, each with one clip of every class: the SMIC subjects are right on every clip, the
    SAMM subjects wrong on every clip (each label predicted as the next class)."""
    truth = [0, 1, 2]
    rows = [(f"smic/s{s:02d}", f"c{j}", y, y) for s in range(n_a) for j, y in enumerate(truth)]
    rows += [(f"samm/{s:03d}", f"c{j}", y, (y + 1) % 3) for s in range(n_b) for j, y in enumerate(truth)]
    return rows


def test_stratified_indices_keep_every_dataset_s_subject_count():
    from icegan.significance import stratified_indices
    strata = ["samm", "smic", "samm", "casme2", "smic", "samm"]
    idx = stratified_indices(strata, 300, np.random.default_rng(0))
    assert idx.shape == (300, 6)
    drawn = np.asarray(strata)[idx]
    for value, n in (("samm", 3), ("smic", 2), ("casme2", 1)):
        assert ((drawn == value).sum(axis=1) == n).all()
    # with replacement: some resamples repeat a SAMM subject; every SAMM subject is drawn somewhere
    samm = [0, 2, 5]
    cols = idx[:, :3]
    assert set(np.unique(cols)) == set(samm) and (np.sort(cols, axis=1)[:, :-1] == np.sort(cols, axis=1)[:, 1:]).any()
    again = stratified_indices(strata, 300, np.random.default_rng(0))
    np.testing.assert_array_equal(idx, again)


def test_stratified_bootstrap_keeps_the_dataset_mix(tmp_path):
    """Every SMIC subject is right on all three of its clips and every SAMM subject wrong on all of them, so the
    pooled confusion matrix of a resample depends only on how many SMIC subjects it draws. Drawn within each dataset,
    that number never changes: the interval is one point (UF1 = accuracy = 6/10 here, per-class F1 all 0.6).
    Drawn from one pool, it varies and so does UF1."""
    run = _write_run(tmp_path / "a", _two_dataset_rows(6, 4))
    one = [load_run_set("a", [run])]
    strat = bootstrap_compare(one, resamples=500, stratify=True)[0]
    assert strat["UF1"] == pytest.approx(0.6) and strat["UF1_ci"] == pytest.approx((0.6, 0.6))
    assert strat["UAR_ci"] == pytest.approx((0.6, 0.6))
    pooled = bootstrap_compare(one, resamples=500)[0]
    assert pooled["UF1"] == pytest.approx(0.6)
    assert pooled["UF1_ci"][1] - pooled["UF1_ci"][0] > 0.2


def test_stratify_changes_nothing_within_one_dataset(tmp_path):
    """Subjects of one dataset are one stratum: the stratified intervals are the one-pool intervals, draw for draw."""
    rng = np.random.default_rng(5)
    truth = [0, 0, 1, 2]
    a = _write_run(tmp_path / "a", _rows(10, truth, lambda s, j, y: int(rng.integers(0, 3))))
    b = _write_run(tmp_path / "b", _rows(10, truth, lambda s, j, y: y if j else (y + 1) % 3))
    sets = [load_run_set("a", [a]), load_run_set("b", [b])]
    assert bootstrap_compare(sets, resamples=300, stratify=True) == bootstrap_compare(sets, resamples=300)


def test_stratified_paired_difference_and_the_compare_command(tmp_path, capsys):
    """The paired difference under stratified draws: a run that fixes every SAMM clip gains exactly the SAMM share of
    the clips in every resample (+0.4 accuracy, UF1 0.6 → 1.0), so its difference interval is one point; the
    command's --stratify reaches the resampling and its legend says how the subjects were drawn."""
    base = _write_run(tmp_path / "base", _two_dataset_rows(6, 4))
    fixed = _write_run(tmp_path / "fixed", [(s, c, y, y) for s, c, y, _ in _two_dataset_rows(6, 4)])
    row = bootstrap_compare([load_run_set("b", [base]), load_run_set("f", [fixed])], resamples=400,
                            stratify=True)[1]
    assert row["dUF1"] == pytest.approx(0.4) and row["dUF1_ci"] == pytest.approx((0.4, 0.4))
    assert row["p_better"] == 1.0
    out = tmp_path / "c.md"
    assert main(["compare", f"b={base}", f"f={fixed}", "--stratify", "--resamples", "200", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| 0.6000 [0.6000, 0.6000] |" in text and "with replacement within each dataset" in text
    assert main(["compare", f"b={base}", f"f={fixed}", "--resamples", "200", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| 0.6000 [0.6000, 0.6000] |" not in text and "within each dataset" not in text
    assert main(["compare", f"b={base}", f"f={fixed}", "--stratify", "--resamples", "200", "--format", "latex",
                 "--out", str(out)]) == 0
    assert "resamples of the subjects within each dataset" in out.read_text()


@pytest.mark.parametrize("name, cut, msg", [
    ("predictions.csv", 0, "predictions.csv: the file is empty"),
    ("predictions.csv", 60, r"predictions.csv, line 2: the file ends inside this line \(cut short\)"),
    ("run.json", 25, r"run.json: cannot be read as JSON \("),
], ids=["empty-predictions", "cut-predictions", "cut-run-json"])
def test_compare_names_a_damaged_run_file(tmp_path, capsys, name, cut, msg):
    """A run whose predictions.csv or run.json is empty or cut short (a killed run) is refused by load_run_set and
    `icegan compare` naming that file and saying it looks damaged or incomplete, not with pandas'/json's bare text."""
    truth = [0, 1, 2]
    a = _write_run(tmp_path / "a", _rows(4, truth, lambda s, j, y: y))
    b = _write_run(tmp_path / "b", _rows(4, truth, lambda s, j, y: y))
    f = b / name
    f.write_bytes(f.read_bytes()[:cut])
    with pytest.raises(ValueError, match=msg):
        load_run_set("b", [b])
    assert main(["compare", str(a), str(b), "--resamples", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"icegan compare: error: {f}") and "looks damaged or incomplete" in err
    assert len(err.splitlines()) == 1


def test_markdown_cells_and_console_line_show_both_ends_of_each_interval():
    """Hand-made rows: every cell is 'value [low, high]' with both ends, the baseline row says so, p_better is a
    percentage; the console line of one run's interval shows both ends of UF1 and UAR."""
    from icegan.significance import interval_line
    rows = [{"label": "a", "runs": 1, "oracle": False, "UF1": 0.5, "UAR": 0.6, "UF1_ci": (0.4, 0.55),
             "UAR_ci": (0.5, 0.65)},
            {"label": "b", "runs": 2, "oracle": False, "UF1": 0.6, "UAR": 0.65, "UF1_ci": (0.5, 0.7),
             "UAR_ci": (0.55, 0.75), "dUF1": 0.1, "dUF1_ci": (-0.05, 0.2), "dUAR": 0.05, "dUAR_ci": (-0.02, 0.1),
             "p_better": 0.75, "p_tie": 0.0}]
    assert comparison_table(rows, resamples=1000, legend=False).splitlines() == [
        "| entry | runs | selection | UF1 [95 % CI] | UAR [95 % CI] | ΔUF1 vs a [95 % CI] | ΔUAR vs a [95 % CI] | "
        "resamples UF1 > a |",
        "|---|---|---|---|---|---|---|---|",
        "| a | 1 | honest | 0.5000 [0.4000, 0.5500] | 0.6000 [0.5000, 0.6500] | (baseline) |  |  |",
        "| b | 2 | honest | 0.6000 [0.5000, 0.7000] | 0.6500 [0.5500, 0.7500] | 0.1000 [-0.0500, 0.2000] | "
        "0.0500 [-0.0200, 0.1000] | 75.0 % |"]
    ci = {"confidence": 0.95, "n_subjects": 68, "UF1": (0.4, 0.55), "UAR": (0.5, 0.65), "resamples": 1000}
    assert interval_line(ci) == ("  95 % subject-bootstrap interval (68 subjects): UF1 [0.4000, 0.5500]  "
                                 "UAR [0.5000, 0.6500]")
    assert interval_line(None) == ""


def test_compare_marks_an_entry_of_partial_runs_in_its_table_csv_and_plot(tmp_path):
    """Runs cut by max_folds (run.json's folds_total) are not LOSO results: their entry's label says so in the
    markdown and CSV tables and on the plot, as icegan table does; --baseline still takes the entry's own label."""
    truth = [0, 1, 2, 2]
    part = _write_run(tmp_path / "part", _rows(6, truth, lambda s, j, y: y if s % 3 else 0))
    header = json.loads((part / "run.json").read_text())
    (part / "run.json").write_text(json.dumps({**header, "folds_total": 10}))
    _write_run(tmp_path / "whole", _rows(6, truth, lambda s, j, y: 0 if j == 3 else y))
    md, csv = tmp_path / "cmp.md", tmp_path / "cmp.csv"
    assert main(["compare", f"cut={part}", f"whole={tmp_path}/whole", "--baseline", "whole", "--resamples", "300",
                 "--out", str(md), "--plot", str(tmp_path / "cmp.png")]) == 0
    assert "| cut [PARTIAL: 6 of 10 folds] | 1 | honest |" in md.read_text() and "| whole | 1 | honest |" in md.read_text()
    assert main(["compare", f"cut={part}", f"whole={tmp_path}/whole", "--resamples", "300", "--format", "csv",
                 "--out", str(csv)]) == 0
    assert pd.read_csv(csv)["label"].tolist() == ["cut [PARTIAL: 6 of 10 folds]", "whole"]
    from icegan.significance import load_run_set
    assert load_run_set("w", [tmp_path / "whole"]).label == "w"
