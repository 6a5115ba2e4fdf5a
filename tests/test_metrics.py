"""Metrics against hand-computed confusion matrices."""
import math

import numpy as np
import pytest

from icegan.metrics import METRIC_KEYS, compute_metrics, confusion_matrix, uf1_uar_from_confusion


def test_all_classes_predicted_hand_computed():
    # confusion (rows true, cols pred): [[2,1,0],[0,1,1],[1,0,2]]
    y_true = [0, 0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 0]
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred), [[2, 1, 0], [0, 1, 1], [1, 0, 2]])
    m = compute_metrics(y_true, y_pred)
    assert set(m) == set(METRIC_KEYS)
    # F1 per class: 2/3, 1/2, 2/3; recall and precision per class: the same values
    assert m["UF1"] == pytest.approx(11 / 18)
    assert m["UAR"] == pytest.approx(11 / 18)
    assert m["P_M"] == pytest.approx(11 / 18)
    assert m["R_M"] == pytest.approx(m["UAR"])
    assert m["F1_M"] == pytest.approx(m["UF1"])
    assert m["F1_mu"] == pytest.approx(5 / 8)          # = accuracy
    assert m["G_M"] == pytest.approx((2 / 3 * 1 / 2 * 2 / 3) ** (1 / 3))


def test_class_never_predicted():
    # class 2 (surprise) is never predicted: confusion [[2,0,0],[1,1,0],[1,1,0]]
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 0, 1, 0]
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred), [[2, 0, 0], [1, 1, 0], [1, 1, 0]])
    m = compute_metrics(y_true, y_pred)
    # F1: c0 = 4/6, c1 = 2/4, c2 = 0
    assert m["UF1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    # recall: 1, 1/2, 0
    assert m["UAR"] == pytest.approx(0.5)
    # precision: c0 = 2/4, c1 = 1/2, c2 = 0 (never predicted -> 0)
    assert m["P_M"] == pytest.approx(1 / 3)
    assert m["F1_mu"] == pytest.approx(0.5)
    assert m["G_M"] == 0.0


def test_average_over_classes_present_in_ground_truth_only():
    # surprise absent from the ground truth: MEGC2019 averages over negative and positive only
    y_true = [0, 0, 1, 1]
    y_pred = [0, 2, 1, 1]
    m = compute_metrics(y_true, y_pred)
    assert m["UF1"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert m["UAR"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["G_M"] == pytest.approx(math.sqrt(0.5))
    # micro over all three classes: TP 3, FP 1 (the surprise prediction), FN 1 -> 6 / 8, the accuracy; micro over
    # the present classes only gave 6 / 7, above the accuracy, by dropping that false positive
    assert m["F1_mu"] == pytest.approx(6 / 8)
    assert m["F1_mu"] == pytest.approx(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def test_perfect_predictions():
    m = compute_metrics([0, 1, 2, 2], [0, 1, 2, 2])
    assert all(v == pytest.approx(1.0) for v in m.values())


@pytest.mark.parametrize("y_true,y_pred,msg", [
    ([0, 1, 3], [0, 1, 2], "y_true\\[2\\] = 3"),
    ([0, 1, 2], [0, -1, 2], "y_pred\\[1\\] = -1"),
    ([0, 1], [0, 1, 2], "equal length"),
    ([[0], [1], [2]], [0, 1, 2], r"1-D and of equal length, got shapes \(3, 1\) and \(3,\)"),   # a column of labels
    ([0, 1, 2], [[0], [1], [2]], r"1-D and of equal length, got shapes \(3,\) and \(3, 1\)"),
    ([], [], "zero samples"),
])
def test_bad_input(y_true, y_pred, msg):
    with pytest.raises(ValueError, match=msg):
        compute_metrics(y_true, y_pred)


def test_class_ids_must_be_whole_numbers():
    """Float labels are accepted when whole (2.0 is class 2) and refused otherwise (0.5 is no class)."""
    assert compute_metrics([0.0, 1.0, 2.0], [0, 1, 2])["UF1"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"y_true must hold integer class ids, got \[0\.5 1\. \]\.\.\."):
        compute_metrics([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="y_pred must hold integer class ids"):
        confusion_matrix([0, 1], [0, 1.5])


def test_a_class_absent_from_truth_and_predictions_is_left_out():
    """Truth and predictions [0, 0, 1] / [0, 1, 1] of three classes: the matrix is still 3 x 3 (class 2 a row and a
    column of zeros), and the vectorised UF1 / UAR average classes 0 and 1 only (F1 2/3 and 2/3, recall 1/2 and 1),
    not NaN from class 2's 0 / 0."""
    cm = confusion_matrix([0, 0, 1], [0, 1, 1])
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    uf1, uar = uf1_uar_from_confusion(cm)
    assert uf1 == pytest.approx(2 / 3) and uar == pytest.approx(3 / 4)
    assert compute_metrics([0, 0, 1], [0, 1, 1])["UF1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"^confusion matrices must be \(\.\.\., C, C\), got shape \(3,\)$"):
        uf1_uar_from_confusion(np.zeros(3))


def test_per_class_metrics_hand_computed_with_a_never_predicted_and_an_absent_class():
    from icegan.metrics import per_class_metrics
    # class 2 never predicted: confusion [[2,0,0],[1,1,0],[1,1,0]]
    rows = per_class_metrics([0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 1, 0])
    assert [(r["class"], r["clips"], r["predicted"]) for r in rows] == [(0, 2, 4), (1, 2, 2), (2, 2, 0)]
    assert [r["recall"] for r in rows] == pytest.approx([1.0, 0.5, 0.0])
    assert [r["precision"] for r in rows] == pytest.approx([0.5, 0.5, 0.0])
    assert [r["F1"] for r in rows] == pytest.approx([2 / 3, 0.5, 0.0])
    # surprise absent from the ground truth but predicted once: no recall or F1, precision 0 (its one prediction wrong)
    rows = per_class_metrics([0, 0, 1, 1], [0, 2, 1, 1])
    assert rows[2] == {"class": 2, "clips": 0, "predicted": 1, "recall": None, "precision": 0.0, "F1": None}
    assert per_class_metrics([0, 1], [0, 1])[2]["precision"] is None       # neither present nor predicted
    m = compute_metrics([0, 0, 1, 1], [0, 2, 1, 1])
    present = [r for r in rows if r["clips"]]
    assert m["UF1"] == pytest.approx(np.mean([r["F1"] for r in present]))
    assert m["UAR"] == pytest.approx(np.mean([r["recall"] for r in present]))
    with pytest.raises(ValueError, match="outside the class ids"):
        per_class_metrics([0, 3], [0, 1])


def test_per_class_means_are_uf1_and_uar_on_random_predictions():
    from icegan.metrics import per_class_metrics
    rng = np.random.default_rng(0)
    for _ in range(20):
        yt, yp = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
        rows, m = per_class_metrics(yt, yp), compute_metrics(yt, yp)
        assert sum(r["clips"] for r in rows) == sum(r["predicted"] for r in rows) == 40
        assert np.mean([r["F1"] for r in rows]) == pytest.approx(m["UF1"])
        assert np.mean([r["recall"] for r in rows]) == pytest.approx(m["UAR"])
