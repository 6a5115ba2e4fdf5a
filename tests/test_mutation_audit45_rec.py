"""Tests written by a mutation audit of the code behind the recognizer numbers and their intervals
(icegan.significance, icegan.ensemble, and the leakage and weighting parts of icegan.recognition): each one fails on
a small deliberate change of the code that the earlier tests let pass (named in the test's docstring). Expected
values are worked out by hand in the comments or recomputed from the clips with :func:`icegan.metrics.compute_metrics`,
never copied from the code's output."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from icegan.metrics import compute_metrics
from icegan.significance import bootstrap_compare, load_run_set, stratified_indices

# ------------------------------------------------------------------------------------------------ icegan.significance


def _write_run(d, rows, seed=0):
    """A finished one-recipe LOSO run folder (config.yaml, run.json, predictions.csv) of ``rows`` (subject, clip,
    y_true, y_pred), one fold per subject."""
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"name": d.name, "seed": seed, "oracle_epoch": False,
                                                   "model": {"name": "ststnet", "epochs": 100}}))
    pred = pd.DataFrame(rows, columns=["subject", "clip", "y_true", "y_pred"])
    subjects = sorted(pred["subject"].unique())
    pred.insert(0, "fold", pred["subject"].map({s: i for i, s in enumerate(subjects)}))
    pred.insert(1, "dataset", pred["subject"].str.split("/").str[0])
    pred.to_csv(d / "predictions.csv", index=False)
    (d / "run.json").write_text(json.dumps({"protocol": "CDE", "oracle_epoch": False, "folds": subjects}))
    return d


def _stratified_rows():
    """casme2/s0 right on its three clips (one per class), casme2/s1 wrong on all three (each label predicted as the
    next class), samm/s2 right on all three."""
    return ([("casme2/s0", f"c{y}", y, y) for y in range(3)]
            + [("casme2/s1", f"c{y}", y, (y + 1) % 3) for y in range(3)]
            + [("samm/s2", f"c{y}", y, y) for y in range(3)])


def test_stratified_interval_bounds_by_enumeration(tmp_path):
    """Drawn within each dataset, a resample holds samm/s2 once and two draws of the two CASME II subjects: {s0, s0}
    (p 1/4), {s0, s1} (p 1/2) or {s1, s1} (p 1/4). Pooled, every class then has 3 clips and (right clips per class)
    3, 2 or 1, each wrong clip being one false negative of its class and one false positive of the next:
    F1 = 2 TP / (2 TP + FP + FN) = 1, 4/6 = 2/3 or 2/6 = 1/3 for every class, so UF1 = UAR = 1, 2/3 or 1/3.
    A 95 % percentile interval (2.5th and 97.5th percentiles) is then (1/3, 1); a 40 % one (30th and 70th, both
    inside the middle half) is (2/3, 2/3). Mutations killed: the stratified branch's percentiles swapped (low > high)
    and taken as fractions (np.percentile(dist, [alpha, 1 - alpha]), which gives (1/3, 1) at 40 %)."""
    run = load_run_set("a", [_write_run(tmp_path / "a", _stratified_rows())])
    wide = bootstrap_compare([run], resamples=2000, confidence=0.95, stratify=True)[0]
    assert wide["UF1"] == pytest.approx(2 / 3)                       # s0, s1, s2 once each
    assert wide["UF1_ci"] == pytest.approx((1 / 3, 1.0)) and wide["UAR_ci"] == pytest.approx((1 / 3, 1.0))
    narrow = bootstrap_compare([run], resamples=2000, confidence=0.4, stratify=True)[0]
    assert narrow["UF1_ci"] == pytest.approx((2 / 3, 2 / 3)) and narrow["UAR_ci"] == pytest.approx((2 / 3, 2 / 3))


def test_stratified_interval_is_the_percentile_of_the_pooled_metric_over_every_draw(tmp_path):
    """The stratified intervals recomputed by hand: the draws of ``stratified_indices`` with the same seed, every
    resample's clips pooled and scored with compute_metrics, numpy percentiles at 2.5 / 97.5 % (entries) and the
    paired differences' quantiles. Mutations killed: resamples lost between the chunks of 500 (idx[i:i + 499]), the
    stratified draws not seeded by ``seed``."""
    rng = np.random.default_rng(11)
    rows_a, rows_b = [], []
    for d, n in (("casme2", 5), ("samm", 4)):
        for s in range(n):
            for c in range(int(rng.integers(2, 5))):
                y = int(rng.integers(0, 3))
                rows_a.append((f"{d}/s{s}", f"c{c}", y, int(rng.integers(0, 3))))
                rows_b.append((f"{d}/s{s}", f"c{c}", y, y if rng.random() < 0.6 else int(rng.integers(0, 3))))
    sets = [load_run_set("a", [_write_run(tmp_path / "a", rows_a)]),
            load_run_set("b", [_write_run(tmp_path / "b", rows_b)])]
    B, seed = 1000, 4
    rows = bootstrap_compare(sets, resamples=B, seed=seed, stratify=True)
    subjects = sets[0].subjects
    idx = stratified_indices([s.split("/")[0] for s in subjects], B, np.random.default_rng(seed))
    tables = [pd.DataFrame(r, columns=["subject", "clip", "y_true", "y_pred"]) for r in (rows_a, rows_b)]
    uf1 = np.zeros((2, B))
    for e, t in enumerate(tables):
        by_subject = {s: t[t["subject"] == s] for s in subjects}
        for b in range(B):
            pooled = pd.concat([by_subject[subjects[i]] for i in idx[b]])
            uf1[e, b] = compute_metrics(pooled["y_true"], pooled["y_pred"])["UF1"]
    for e in range(2):
        assert rows[e]["UF1_ci"] == pytest.approx(tuple(np.percentile(uf1[e], [2.5, 97.5])), abs=1e-12)
    d = uf1[1] - uf1[0]
    assert rows[1]["dUF1_ci"] == pytest.approx((np.quantile(d, 0.025), np.quantile(d, 0.975)), abs=1e-12)
    assert rows[1]["p_better"] == pytest.approx(np.mean(d > 1e-12))


def test_an_entry_of_runs_that_differ_in_one_label_only_is_refused(tmp_path):
    """Seeds of one entry must score the same clips with the same labels; a run whose one clip carries another label
    (same subjects, same clip names) is refused. Mutation killed: the check comparing (subject, clip) only."""
    rows = _stratified_rows()
    relabelled = [rows[0][:2] + (2, rows[0][3])] + rows[1:]
    a, b = _write_run(tmp_path / "a", rows), _write_run(tmp_path / "b", relabelled, seed=1)
    with pytest.raises(ValueError, match="differ in clips or labels"):
        load_run_set("x", [a, b])


def test_compare_refuses_entries_of_the_same_subjects_but_other_labels(tmp_path):
    """Entries compared pair by pair must hold the same clips and labels, not only the same subjects. Mutation killed:
    bootstrap_compare's check comparing the subject lists only."""
    rows = _stratified_rows()
    relabelled = [rows[0][:2] + (2, rows[0][3])] + rows[1:]
    a = load_run_set("a", [_write_run(tmp_path / "a", rows)])
    b = load_run_set("b", [_write_run(tmp_path / "b", relabelled)])
    assert a.subjects == b.subjects
    with pytest.raises(ValueError, match="cover different clips or labels"):
        bootstrap_compare([a, b], resamples=100)

# ------------------------------------------------------------------------------------------------ icegan.ensemble

_SCORES = ["score_negative", "score_positive", "score_surprise"]


def _write_member(d, probs, y_true, folds=None):
    """A finished honest CDE run over two subjects (casme2/a: clips 0-1, casme2/b: clips 2-3) whose clip i has class
    probabilities ``probs[i]``; y_pred is their argmax. ``folds``: the fold column (default: a → 0, b → 1)."""
    d.mkdir(parents=True)
    subjects = ["casme2/a", "casme2/a", "casme2/b", "casme2/b"]
    probs = np.asarray(probs, dtype=np.float64)
    pred = pd.DataFrame({"fold": folds or [0, 0, 1, 1], "dataset": "casme2", "subject": subjects,
                         "clip": [f"c{i}" for i in range(4)], "y_true": y_true, "y_pred": probs.argmax(1)})
    for k, col in enumerate(_SCORES):
        pred[col] = probs[:, k]
    pred.to_csv(d / "predictions.csv", index=False)
    (d / "run.json").write_text(json.dumps({"protocol": "CDE", "oracle_epoch": False,
                                            "folds": ["casme2/a", "casme2/b"]}))
    return d


def _ensemble_scores(out):
    return pd.read_csv(out / "predictions.csv", dtype={"clip": str}).sort_values("clip", ignore_index=True)


def test_an_exact_tie_of_the_average_goes_to_the_lower_class_id(tmp_path):
    """Equal weights, member 1 (0.6, 0.4, 0) and member 2 (0.4, 0.6, 0) on clip 0: the average (0.5, 0.5, 0) is an
    exact tie, which goes to negative (0) before positive (1), as the docstring says; on clip 1, (0, 0.3, 0.7) and
    (0, 0.7, 0.3) tie positive with surprise: positive. Mutation killed: ties sent to the higher class id."""
    y = [0, 1, 2, 0]
    m1 = _write_member(tmp_path / "m1", [[0.6, 0.4, 0], [0, 0.3, 0.7], [0, 0, 1], [1, 0, 0]], y)
    m2 = _write_member(tmp_path / "m2", [[0.4, 0.6, 0], [0, 0.7, 0.3], [0, 0, 1], [1, 0, 0]], y)
    from icegan.ensemble import ensemble_runs
    ensemble_runs([m1, m2], tmp_path / "e")
    e = _ensemble_scores(tmp_path / "e")
    np.testing.assert_allclose(e[_SCORES].to_numpy()[:2], [[0.5, 0.5, 0], [0, 0.5, 0.5]], atol=1e-9)
    assert e["y_pred"].tolist() == [0, 1, 2, 0]


def test_a_member_with_its_rows_in_another_order_is_averaged_clip_by_clip(tmp_path):
    """The same run written with its rows in reverse order (a resumed run may write folds in another order) is
    matched clip by clip: the ensemble of a run with its reversed copy is the run, probabilities and all. Mutation
    killed: members not sorted by (fold, subject, clip) before they are compared and averaged."""
    probs = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]]
    y = [0, 1, 2, 0]
    m1 = _write_member(tmp_path / "m1", probs, y)
    m2 = _write_member(tmp_path / "m2", probs, y)
    rev = pd.read_csv(m2 / "predictions.csv").iloc[::-1]
    rev.to_csv(m2 / "predictions.csv", index=False)
    from icegan.ensemble import ensemble_runs
    m = ensemble_runs([m1, m2], tmp_path / "e", weights=[1, 3])
    e = _ensemble_scores(tmp_path / "e")
    np.testing.assert_allclose(e[_SCORES].to_numpy(), probs, atol=1e-9)
    assert e["y_pred"].tolist() == [0, 1, 2, 1]
    # clips 0-2 right, clip 3 (negative) predicted positive: negative F1 2/3, positive F1 2/3, surprise 1
    assert m["overall"]["UF1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_members_that_put_a_clip_in_another_fold_are_refused(tmp_path):
    """Members must agree on the fold of every clip (the docstring's 'fold numbers'); a member whose clip c1 is listed
    in fold 1 is refused naming the column. Mutation killed: the fold column left out of the comparison."""
    probs = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]]
    y = [0, 1, 2, 0]
    m1 = _write_member(tmp_path / "m1", probs, y)
    m2 = _write_member(tmp_path / "m2", probs, y, folds=[0, 1, 1, 1])
    from icegan.ensemble import EnsembleError, ensemble_runs
    with pytest.raises(EnsembleError, match="in 'fold'"):
        ensemble_runs([m1, m2], tmp_path / "e")
