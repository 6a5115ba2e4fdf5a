"""Tests written by a mutation audit of the code behind the quoted numbers (icegan.metrics, icegan.protocol,
flownet.strain, flownet.metrics): each one fails on a small deliberate change of the code that the earlier tests let
pass (named in the test's docstring). Expected values are worked out by hand in the comments, never copied from the
code's output."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from flownet.strain import flow_features, optical_strain
from icegan.metrics import compute_metrics, confusion_matrix, per_class_metrics
from icegan.protocol import make_folds, run_loso

# ------------------------------------------------------------------------------------------------ icegan.metrics


def test_whole_number_float_class_ids_score_as_their_integers():
    """Labels read from a CSV column with a blank often arrive as floats (0.0, 1.0, ...): whole-number floats are the
    same class ids (mutation killed: ``_check`` returning the arrays without ``astype(int)``, which made
    per_class_metrics' ``np.bincount`` refuse the float predictions).

    y_true 0 1 2 2, y_pred 0 1 1 2: class 0 one clip, predicted once, right (recall 1, precision 1); class 1 one
    clip, predicted twice, one right (recall 1, precision 1/2, F1 2/3); class 2 two clips, predicted once, right
    (recall 1/2, precision 1, F1 2/3). UF1 = (1 + 2/3 + 2/3) / 3 = 7/9, UAR = (1 + 1 + 1/2) / 3 = 5/6."""
    yt, yp = [0.0, 1.0, 2.0, 2.0], [0.0, 1.0, 1.0, 2.0]
    m = compute_metrics(yt, yp)
    assert m["UF1"] == pytest.approx(7 / 9) and m["UAR"] == pytest.approx(5 / 6)
    rows = per_class_metrics(yt, yp)
    assert [r["predicted"] for r in rows] == [1, 2, 1] and [r["clips"] for r in rows] == [1, 1, 2]
    assert [r["precision"] for r in rows] == pytest.approx([1.0, 0.5, 1.0])
    assert confusion_matrix(yt, yp).tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


# ------------------------------------------------------------------------------------------------ flownet.strain

def test_strain_border_uses_the_one_sided_difference_the_docstring_states():
    """u = x²/2, v = 0: du/dx is x inside (central difference (f(x+1) - f(x-1)) / 2 is exact for a quadratic) and
    the one-sided f(1) - f(0) = 1/2 at x = 0, f(W-1) - f(W-2) = W - 3/2 at x = W-1; the strain is |du/dx| (no other
    derivative). Mutation killed: ``torch.gradient(..., edge_order=2)`` (second-order borders: 0 and W - 1), which
    changes the strain of the border pixels of every recognizer input."""
    w = 8
    xs = torch.arange(float(w)).view(1, w).expand(5, w)
    f = torch.stack([xs ** 2 / 2, torch.zeros_like(xs)])[None]
    expected = torch.tensor([0.5, 1, 2, 3, 4, 5, 6, w - 1.5]).expand(5, w)
    torch.testing.assert_close(optical_strain(f)[0, 0], expected, atol=1e-5, rtol=0)


def test_maxabs_scales_the_strain_of_each_sample_by_its_own_maximum():
    """Two samples u = 0.3·x and u = 0.1·x have constant strain 0.3 and 0.1; ``maxabs`` divides each sample's strain
    by its own maximum, so both strain maps are 1 everywhere (mutation killed: the maximum taken over the batch too,
    which gave the second sample 1/3: a sample's features would depend on the batch it is computed in)."""
    xs = torch.arange(16.0).view(1, 16).expand(16, 16)
    f = torch.stack([torch.stack([a * xs, torch.zeros_like(xs)]) for a in (0.3, 0.1)])
    out = flow_features(f, 8, normalize="maxabs")
    torch.testing.assert_close(out[:, 2], torch.ones(2, 8, 8), atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------------ icegan.protocol

@pytest.mark.parametrize("bad", ["casme2/", "/sub01"])
def test_make_folds_refuses_an_empty_dataset_or_subject_part(bad):
    """``casme2/`` names no subject and ``/sub01`` no dataset (mutation killed: only the missing ``/`` refused, so an
    empty dataset prefix made its own HDE fold and a subject ``casme2/`` its own LOSO fold)."""
    with pytest.raises(ValueError, match=rf"sample 1: subject '{bad}' must be prefixed by its dataset"):
        make_folds(["casme2/sub01", bad, "casme2/sub02"], "CDE")


def _samples() -> pd.DataFrame:
    """4 subjects of 2 clips each (labels 0/1, 2/0, 1/2, 0/1): folds 0..3 in subject order."""
    subjects = [s for s in ("casme2/s1", "casme2/s2", "samm/s3", "samm/s4") for _ in range(2)]
    return pd.DataFrame({"dataset": [s.split("/")[0] for s in subjects], "subject": subjects,
                         "clip": [f"c{i}" for i in range(8)], "label": [0, 1, 2, 0, 1, 2, 0, 1]})


def _perfect_scores(samples: pd.DataFrame, test_idx) -> np.ndarray:
    """One-hot scores of the true labels (a perfect model: every metric is 1)."""
    return np.eye(3)[samples["label"].to_numpy()[test_idx]]


def test_a_group_stopped_after_its_first_fold_is_retrained_and_recorded_once(tmp_path):
    """folds_per_call=2: the second group's second fold diverges (NaN scores) after its first fold (index 2) was
    recorded. The rerun trains that whole group again (fixed groups) but records only fold 3: every clip is scored
    exactly once and the metrics are the perfect model's 1.0 on all 8 clips. Mutations killed: a group skipped as soon
    as *any* of its folds is finished (fold 3 never run: 6 clips scored) and a finished fold of a retrained group
    recorded again (fold 2's clips twice: 10 rows)."""
    samples = _samples()
    calls = []

    def folds_fn(folds, diverge=False):
        calls.append([f.index for f in folds])
        out = [_perfect_scores(samples, f.test_idx) for f in folds]
        if diverge and folds[0].index == 2:
            out[1] = np.full_like(out[1], np.nan)
        return out

    with pytest.raises(FloatingPointError, match="fold 'samm/s4'"):
        run_loso(samples, None, tmp_path / "r", folds_fn=lambda f: folds_fn(f, True), folds_per_call=2,
                 progress=False)
    assert sorted(pd.read_csv(tmp_path / "r" / "predictions.csv")["fold"].unique()) == [0, 1, 2]
    calls.clear()
    m = run_loso(samples, None, tmp_path / "r", folds_fn=folds_fn, folds_per_call=2, progress=False)
    assert calls == [[2, 3]]
    pred = pd.read_csv(tmp_path / "r" / "predictions.csv")
    assert sorted(pred["clip"]) == [f"c{i}" for i in range(8)]
    assert m["n_samples"] == 8 and m["overall"]["UF1"] == 1.0 and m["overall"]["UAR"] == 1.0


def test_a_fold_whose_rows_repeat_one_clip_and_miss_another_is_rerun(tmp_path):
    """A finished fold is recognised by its clips, not by their count: fold 1 (clips c2, c3) whose c3 row was
    replaced by a second c2 row (two writers on one folder) is not finished; the rerun scores it again and every clip
    once. With a wrong model that predicts class 0 everywhere, c2 (label 2) counted twice and c3 (label 0) missed
    would change the pooled numbers. Mutation killed: ``len(rows) == len(expected)`` as the finished test (the fold
    kept, c3 never scored, c2 pooled twice)."""
    samples = _samples()
    calls = []

    def fold_fn(fold):
        calls.append(fold.index)
        return np.tile([1.0, 0.0, 0.0], (len(fold.test_idx), 1))       # always class 0

    ref = run_loso(samples, fold_fn, tmp_path / "r", progress=False)
    csv = tmp_path / "r" / "predictions.csv"
    whole = pd.read_csv(csv)
    dup = whole.copy()
    dup.loc[dup["clip"] == "c3"] = dup.loc[dup["clip"] == "c2"].to_numpy()
    dup.to_csv(csv, index=False)
    calls.clear()
    again = run_loso(samples, fold_fn, tmp_path / "r", progress=False)
    assert calls == [1]
    assert sorted(pd.read_csv(csv)["clip"]) == [f"c{i}" for i in range(8)]
    # all predicted 0: labels 0 1 2 0 1 2 0 1 -> class 0 recall 3/3, classes 1, 2 recall 0: UAR 1/3;
    # F1_0 = 2·3 / (2·3 + 5 + 0) = 6/11, F1_1 = F1_2 = 0: UF1 = 2/11
    assert again == ref and ref["overall"]["UAR"] == pytest.approx(1 / 3) and ref["overall"]["UF1"] == pytest.approx(
        2 / 11)


# ------------------------------------------------------------------------------------------------ flownet.evaluate

def test_evaluate_scores_only_the_valid_pixels_of_each_pair():
    """A zero-flow estimator on a 4×4 pair whose ground truth is u = 2 px on its 4 valid pixels (top-left 2×2) and
    u = 100 px on the 12 masked ones: EPE 2, px1 0, px3 1, Fl-all 0 (2 ≤ 3 px) over the 4 valid pixels, in ``mean``,
    ``pooled`` and the pair's row (n_valid 4). Mutation killed: ``flow_metrics`` called without the pair's mask
    (every pixel scored: EPE (4·2 + 12·100) / 16 = 75.5)."""
    from flownet.evaluate import evaluate

    class Zero:
        def estimate(self, img1, img2):
            return torch.zeros(img1.shape[0], 2, *img1.shape[-2:])

    img = torch.zeros(1, 1, 4, 4)
    gt = torch.zeros(1, 2, 4, 4)
    gt[:, 0] = 100.0
    gt[:, 0, :2, :2] = 2.0
    valid = torch.zeros(1, 4, 4, dtype=torch.bool)
    valid[0, :2, :2] = True
    res = evaluate("zero", pairs=[{"name": "p", "img1": img, "img2": img, "flow": gt, "valid": valid}],
                   estimator=Zero(), progress=False)
    assert res["per_pair"][0]["n_valid"] == 4 and res["n_valid_pixels"] == 4
    for scores in (res["mean"], res["pooled"]):
        assert scores["EPE"] == pytest.approx(2.0)
        assert (scores["px1"], scores["px3"], scores["Fl-all"]) == pytest.approx((0.0, 1.0, 0.0))
