"""Property-based tests (hypothesis) of UF1, UAR and the SRFlow paper's P_M … G_M (icegan/metrics.py).

Each property holds for every pair of label lists, so hypothesis draws them (the "suite" profile of
tests/conftest.py: the same draws every run) and the test fails on any counterexample:

* the pooled metrics and the bootstrap's vectorised ``uf1_uar_from_confusion`` agree on the same clips;
* the MEGC2019 definitions worked out directly from the counts (F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c) and
  R_c = TP_c / N_c over the classes present in the ground truth) give the same numbers;
* renaming the classes or reordering the clips changes nothing; G_M ≤ UAR (geometric ≤ arithmetic mean);
  F1_mu is the accuracy; every value lies in [0, 1] and a perfect prediction scores 1.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from icegan.metrics import METRIC_KEYS, compute_metrics, confusion_matrix, per_class_metrics, uf1_uar_from_confusion


@st.composite
def label_pairs(draw, max_classes: int = 5, max_clips: int = 40):
    """(n_classes, y_true, y_pred): equal-length lists of class ids in 0..n_classes-1, at least one clip."""
    k = draw(st.integers(2, max_classes))
    n = draw(st.integers(1, max_clips))
    ids = st.integers(0, k - 1)
    return k, draw(st.lists(ids, min_size=n, max_size=n)), draw(st.lists(ids, min_size=n, max_size=n))


def _by_hand(k, yt, yp):
    """UF1 and UAR from the counts, with the MEGC2019 definitions (classes present in y_true only)."""
    f1s, recalls = [], []
    for c in range(k):
        n_c = sum(t == c for t in yt)
        if n_c == 0:
            continue
        tp = sum(t == c and p == c for t, p in zip(yt, yp))
        fp = sum(t != c and p == c for t, p in zip(yt, yp))
        fn = n_c - tp
        f1s.append(2 * tp / (2 * tp + fp + fn))
        recalls.append(tp / n_c)
    return sum(f1s) / len(f1s), sum(recalls) / len(recalls)


@given(label_pairs())
def test_metrics_match_the_megc2019_definitions_worked_from_the_counts(case):
    k, yt, yp = case
    m = compute_metrics(yt, yp, n_classes=k)
    uf1, uar = _by_hand(k, yt, yp)
    assert m["UF1"] == pytest.approx(uf1, abs=1e-12)
    assert m["UAR"] == pytest.approx(uar, abs=1e-12)
    assert m["F1_M"] == m["UF1"] and m["R_M"] == m["UAR"]
    assert m["F1_mu"] == pytest.approx(np.mean(np.asarray(yt) == np.asarray(yp)), abs=1e-12)
    assert set(m) == set(METRIC_KEYS)
    assert all(0.0 <= v <= 1.0 for v in m.values())
    assert m["G_M"] <= m["UAR"] + 1e-12


@given(label_pairs())
def test_vectorised_confusion_scores_equal_the_pooled_metrics(case):
    k, yt, yp = case
    cm = confusion_matrix(yt, yp, n_classes=k)
    assert cm.shape == (k, k) and cm.sum() == len(yt)
    assert (cm.sum(1) == np.bincount(yt, minlength=k)).all()
    uf1, uar = uf1_uar_from_confusion(cm)
    m = compute_metrics(yt, yp, n_classes=k)
    assert float(uf1) == pytest.approx(m["UF1"], abs=1e-12)
    assert float(uar) == pytest.approx(m["UAR"], abs=1e-12)
    # a stack of matrices is scored matrix by matrix
    stack_uf1, stack_uar = uf1_uar_from_confusion(np.stack([cm, cm.T]))
    t_uf1, t_uar = uf1_uar_from_confusion(cm.T)
    assert stack_uf1[0] == uf1 and stack_uar[0] == uar and stack_uf1[1] == t_uf1 and stack_uar[1] == t_uar


@given(label_pairs(), st.randoms(use_true_random=False))
def test_renaming_classes_and_reordering_clips_change_nothing(case, rnd):
    k, yt, yp = case
    names = list(range(k))
    rnd.shuffle(names)
    order = list(range(len(yt)))
    rnd.shuffle(order)
    renamed = compute_metrics([names[yt[i]] for i in order], [names[yp[i]] for i in order], n_classes=k)
    m = compute_metrics(yt, yp, n_classes=k)
    for key in METRIC_KEYS:
        assert renamed[key] == pytest.approx(m[key], abs=1e-12), key


@given(label_pairs())
def test_per_class_rows_average_to_uf1_and_uar(case):
    k, yt, yp = case
    rows = per_class_metrics(yt, yp, n_classes=k)
    m = compute_metrics(yt, yp, n_classes=k)
    present = [r for r in rows if r["clips"] > 0]
    assert [r["class"] for r in rows] == list(range(k))
    assert sum(r["clips"] for r in rows) == len(yt) and sum(r["predicted"] for r in rows) == len(yp)
    assert np.mean([r["F1"] for r in present]) == pytest.approx(m["UF1"], abs=1e-12)
    assert np.mean([r["recall"] for r in present]) == pytest.approx(m["UAR"], abs=1e-12)
    assert all(r["F1"] is None and r["recall"] is None for r in rows if r["clips"] == 0)


@given(st.integers(2, 5).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.integers(0, k - 1), min_size=1,
                                                                            max_size=40))))
def test_a_perfect_prediction_scores_one(case):
    k, yt = case
    assert compute_metrics(yt, yt, n_classes=k) == {key: 1.0 for key in METRIC_KEYS}
