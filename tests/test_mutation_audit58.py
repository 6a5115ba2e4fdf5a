"""Tests written by a mutation audit: four small deliberate changes of the code passed every earlier test; each test
here fails on one of them (named in its docstring as "Mutation killed"). Expected values are worked out by hand in the
docstrings and comments, or pinned where they are a seeded permutation (said so where they are)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from icegan.protocol import make_folds, subsample_training_subjects, subject_dataset
from icegan.recognition import _balance_weights, dataset_class_weights, subject_weights
from icegan.recognizer_config import RecognizerConfig
from icegan.significance import RunSet, bootstrap_compare, subject_confusions, subject_interval

# ------------------------------------------------------------------------------------------------ icegan.recognition


def test_subject_weighting_and_per_dataset_class_balance_together_give_their_product():
    """Eight training rows: casme2/s1 ×4 (labels 0 0 1 1), casme2/s2 ×1 (0), samm/1 ×2 (0 1), samm/2 ×1 (1).

    Subject weights 1/n_subject, scaled to mean 1: raw (1/4 ×4, 1, 1/2 ×2, 1) sums to 4 → ×2 →
    (1/2, 1/2, 1/2, 1/2, 2, 1, 1, 2). Per-dataset class weights 1/n_cell over the cells casme2|0 (rows 0, 1, 4: 3),
    casme2|1 (rows 2, 3: 2), samm|0 (row 5: 1), samm|1 (rows 6, 7: 2): raw (1/3, 1/3, 1/2, 1/2, 1/3, 1, 1/2, 1/2)
    sums to 4 → ×2 → (2/3, 2/3, 1, 1, 2/3, 2, 1, 1). Both on: their product
    (1/3, 1/3, 1/2, 1/2, 4/3, 2, 1, 2). Mutation killed: ``w = c if w is None else w * c`` → ``w = c`` (the subject
    weights silently dropped when class_balance=per_dataset is also on)."""
    subj = ["casme2/s1"] * 4 + ["casme2/s2"] + ["samm/1"] * 2 + ["samm/2"]
    y = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    mask = np.ones((1, len(y)), dtype=bool)
    sw = torch.tensor([[1 / 2, 1 / 2, 1 / 2, 1 / 2, 2, 1, 1, 2]])
    cw = torch.tensor([[2 / 3, 2 / 3, 1, 1, 2 / 3, 2, 1, 1]])
    assert torch.allclose(subject_weights(subj, mask), sw)
    assert torch.allclose(dataset_class_weights(subj, y, mask), cw)
    both = _balance_weights(RecognizerConfig(subject_weighting=True, class_balance="per_dataset"), subj, y, mask, "t")
    assert both.shape == (1, 8)
    assert torch.allclose(both, torch.tensor([[1 / 3, 1 / 3, 1 / 2, 1 / 2, 4 / 3, 2, 1, 2]]))
    assert torch.allclose(both, sw * cw)
    # each alone is its own factor
    only_s = _balance_weights(RecognizerConfig(subject_weighting=True, class_balance="pooled"), subj, y, mask, "t")
    only_c = _balance_weights(RecognizerConfig(subject_weighting=False, class_balance="per_dataset"), subj, y, mask,
                              "t")
    assert torch.allclose(only_s, sw) and torch.allclose(only_c, cw)


# ------------------------------------------------------------------------------------------------ icegan.significance


def _one_clip_apart():
    """10 CASME II subjects × 300 clips, labels 0-2 at random; run A wrong on ~40 % of clips (the next class), run B
    the same but right on A's first wrong clip (subject s00). Returns (clips, A, B)."""
    rng = np.random.default_rng(0)
    subjects = [f"casme2/s{i:02d}" for i in range(10)]
    pred = pd.DataFrame([(s, c, int(rng.integers(3))) for s in subjects for c in range(300)],
                        columns=["subject", "clip", "y_true"])
    ya = pred["y_true"].to_numpy().copy()
    wrong = rng.random(len(ya)) < 0.4
    ya[wrong] = (ya[wrong] + 1) % 3
    yb = ya.copy()
    k = int(np.flatnonzero(wrong)[0])
    yb[k] = pred["y_true"][k]
    return subjects, pred, pred.assign(y_pred=ya), pred.assign(y_pred=yb), pred["subject"][k]


def test_a_tiny_real_uf1_gain_is_better_not_a_tie():
    """B is A with one more clip right among 3000: B's UF1 is above A's in every resample that draws that clip's
    subject (one clip more right raises its true class's F1 and the wrongly predicted class's precision, and lowers
    nothing), by about 3e-4 per draw, and equal to A's in every other resample. A resample of 10 subjects misses
    subject s00 with probability 0.9^10 ≈ 0.349: p_tie ≈ 0.349 and p_better = 1 − p_tie ≈ 0.651. Mutation killed:
    the tie tolerance ``atol=1e-12`` → ``1e-3`` (the gain, below 1e-3 in most resamples, reported as a tie)."""
    subjects, clips, a, b, changed = _one_clip_apart()
    assert changed == "casme2/s00"
    sets = [RunSet(lab, [], subjects, subject_confusions(p, subjects)[None], clips[["subject", "clip"]], False)
            for lab, p in (("A", a), ("B", b))]
    r = bootstrap_compare(sets, resamples=2000, seed=0)[1]
    assert 0 < r["dUF1"] < 1e-3
    assert r["p_tie"] == pytest.approx(0.9 ** 10, abs=0.04)
    assert r["p_better"] == pytest.approx(1 - r["p_tie"])
    assert r["p_better"] > 0.6


def test_an_interval_needs_two_subjects_not_three():
    """Two subjects are enough to resample (the docstring: None with fewer than 2 subjects). Two subjects of 4 clips:
    s1 predicted (0, 1, 1, 0) for truth (0, 1, 2, 0), s2 (1, 2, 2, 1) for (1, 2, 0, 1). A resample of s1 twice gives
    F1 (1, 2/3, 0), UF1 5/9; of s2 twice: F1 (0, 1, 2/3), UF1 5/9; one of each: F1 class 0 (TP 2, FN 1) 4/5,
    class 1 (TP 3, FP 1) 6/7, class 2 (TP 1, FN 1, FP 1) 1/2, UF1 151/210. With 200 resamples the percentile ends
    are those two values. One subject: None. Mutation killed: ``len(subjects) < 2`` → ``< 3``."""
    pred = pd.DataFrame({"subject": ["casme2/s1"] * 4 + ["casme2/s2"] * 4, "clip": [f"c{i}" for i in range(8)],
                         "y_true": [0, 1, 2, 0, 1, 2, 0, 1], "y_pred": [0, 1, 1, 0, 1, 2, 2, 1]})
    ci = subject_interval(pred, resamples=200, n_classes=3)
    assert ci is not None and ci["n_subjects"] == 2 and ci["resamples"] == 200
    low, high = ci["UF1"]
    assert low == pytest.approx(5 / 9) and high == pytest.approx(151 / 210)
    assert subject_interval(pred[pred["subject"] == "casme2/s1"], resamples=200, n_classes=3) is None


# ------------------------------------------------------------------------------------------------ icegan.protocol


def test_the_learning_curve_subsample_depends_on_the_held_out_subject():
    """A toy composite: casme2/sub01-08 (3 clips each) and samm/001-008 (2 clips each), CDE folds, half the training
    subjects kept (casme2: 7 → floor(3.5 + 0.5) = 4; samm: 8 → 4). The eight folds holding out a CASME II subject all
    train on the same 8 SAMM subjects; as the permutation is seeded by the run's seed and the held-out subject, their
    kept SAMM subsets differ between folds (more than one distinct subset), not one subsample repeated. The kept
    subjects of fold casme2/sub01 at seed 0 are pinned (the seeded permutation's draw, recorded here so that a change
    of the seeding shows). Mutation killed: ``SeedSequence([seed, crc32(fold.subject)])`` → ``SeedSequence([seed])``."""
    subj = [f"casme2/sub{i:02d}" for i in range(1, 9) for _ in range(3)] + \
        [f"samm/{i:03d}" for i in range(1, 9) for _ in range(2)]
    s = np.asarray(subj)
    folds = make_folds(subj, "CDE")
    kept = {f.subject: sorted({str(x) for x in s[subsample_training_subjects(f, subj, 0.5, seed=0).train_idx]})
            for f in folds if subject_dataset(f.subject) == "casme2"}
    assert len(kept) == 8
    samm = {tuple(x for x in k if x.startswith("samm/")) for k in kept.values()}
    assert all(len(t) == 4 for t in samm)
    assert len(samm) > 1
    assert kept["casme2/sub01"] == ["casme2/sub02", "casme2/sub03", "casme2/sub05", "casme2/sub08",
                                    "samm/002", "samm/003", "samm/004", "samm/006"]
