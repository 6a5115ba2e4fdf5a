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
import torch
import yaml

from _training_recorder import record_training_batches

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

# ------------------------------------------------------------------------------------------------ icegan.recognition


def _record_training_inputs(monkeypatch):
    """The (B, 3, H, W) training batches as the network receives them, after augmentation."""
    return record_training_batches(monkeypatch)


def test_training_flips_mirror_the_maps_and_negate_u_on_about_half_the_rows(monkeypatch):
    """model.hflip: every map the network trains on is either a training map as it is or its mirror, built here by
    hand: columns reversed, u (channel 0, min-max normalised to [0, 1]) replaced by 1 − u, v and strain only
    reversed; over 4 epochs of 24 rows both kinds occur. Mutations killed: the training flip never drawn
    (rand < 0), and the training flip mirroring the maps without negating u (x.flip(-1))."""
    from icegan.data.toy_features import make_toy_features
    from icegan.recognition import RecognizerConfig, train_models
    seen = _record_training_inputs(monkeypatch)
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    x, y = fs.features.float(), fs.labels
    cfg = RecognizerConfig(epochs=4, batch_size=8, hflip=True, shift_px=0, rotate_deg=0.0, scale_jitter=0.0,
                           cutout_px=0, mixup_alpha=0.0, tta_hflip=False)
    train_models(cfg, x, y, torch.ones(1, len(y), dtype=torch.bool), seed=0, progress=False)
    mirror = x.flip(-1).clone()
    mirror[:, 0] = 1.0 - mirror[:, 0]
    assert not torch.allclose(mirror, x)
    fed = torch.cat(seen).flatten(1)
    EXACT = "donot_use_mm_for_euclid_dist"                               # no rounding of |a|^2 + |b|^2 - 2ab
    assert len(fed) == 4 * len(y)
    d_plain = torch.cdist(fed, x.flatten(1), compute_mode=EXACT).min(1).values
    d_mirror = torch.cdist(fed, mirror.flatten(1), compute_mode=EXACT).min(1).values
    assert bool(((d_plain < 1e-4) | (d_mirror < 1e-4)).all())           # every row one of the two
    n_mirrored = int((d_mirror < 1e-4).sum())
    assert 0.25 * len(fed) < n_mirrored < 0.75 * len(fed)                # a fair coin: 48 of 96 expected


def test_a_folds_scores_are_the_mean_of_its_seed_copies(monkeypatch):
    """model.seeds=2: each fold's scores are the average of the probabilities of its two copies in the grouped
    network (the copies of fold i are columns 2i and 2i + 1 of the (N, G, K) predictions), not one copy's.
    Mutation killed: a fold scored by its first seed copy only."""
    from _grouped_spy import record_grouped_predictions

    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import make_folds
    from icegan.recognition import RecognizerConfig, fit_predict_folds
    seen = record_grouped_predictions(monkeypatch)
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")[:2]
    out = fit_predict_folds(RecognizerConfig(epochs=2, batch_size=8, seeds=2), fs.features, fs.labels, subjects,
                            folds, seed=0, progress=False)
    probs = seen[-1]                                                     # (N, G = 2 folds x 2 seeds, K)
    assert probs.shape[1] == 4
    for i, f in enumerate(folds):
        a, b = probs[f.test_idx, 2 * i].numpy(), probs[f.test_idx, 2 * i + 1].numpy()
        assert np.abs(a - b).max() > 1e-4                                # the two seeds differ
        np.testing.assert_allclose(out[i], (a + b) / 2, rtol=0, atol=1e-6)



def test_oracle_records_end_with_the_final_epoch_when_the_spacing_skips_it():
    """record_every=2 over 3 epochs records epochs 2 and 3: the final epoch is always among the epochs an oracle run
    picks from, and its record is the returned (final-epoch) model's scores. Mutation killed: records taken only at
    multiples of record_every (epoch 2 alone)."""
    from icegan.data.toy_features import make_toy_features
    from icegan.recognition import RecognizerConfig, predict_models, train_models
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    cfg = RecognizerConfig(epochs=3, batch_size=0, tta_hflip=False)
    model, records = train_models(cfg, fs.features, fs.labels, torch.ones(2, len(fs), dtype=torch.bool),
                                  seed=0, record_every=2, progress=False)
    assert len(records) == 2
    torch.testing.assert_close(records[-1], predict_models(model, fs.features, tta_hflip=False), rtol=0, atol=0)
    assert not torch.equal(records[0], records[1])


def test_rows_no_model_trains_on_leave_the_training_untouched():
    """Rows outside every model's train mask (an SDE run's other datasets, a lone HDE fold's held-out dataset) are
    neither in the batches nor in the step count: appending eight of them to the table leaves the trained weights
    bit-identical. Mutation killed: batches drawn from every row of the table (torch.arange(N))."""
    from icegan.data.toy_features import make_toy_features
    from icegan.recognition import RecognizerConfig, train_models
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    x, y = fs.features.float(), fs.labels
    cfg = RecognizerConfig(epochs=2, batch_size=4)
    mask = torch.ones(2, len(y), dtype=torch.bool)
    mask[1, :3] = False
    alone, _ = train_models(cfg, x, y, mask, seed=1, progress=False)
    extra = torch.rand(8, *x.shape[1:], generator=torch.Generator().manual_seed(2))
    wider = torch.cat([mask, torch.zeros(2, 8, dtype=torch.bool)], 1)
    padded, _ = train_models(cfg, torch.cat([x, extra]), torch.cat([y, torch.zeros(8, dtype=y.dtype)]), wider,
                             seed=1, progress=False)
    for k, v in alone.state_dict().items():
        torch.testing.assert_close(padded.state_dict()[k], v, rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("name", ["logreg", "random_forest"])
def test_a_class_absent_from_a_folds_training_gets_probability_zero_in_its_own_column(name):
    """A fold whose training clips hold negatives and surprises only (a small SDE fold can lack a class): the
    scikit-learn recognizer knows two classes, and its probabilities go to columns 0 and 2; column 1 (positive) is 0
    and a test clip like the surprises is scored surprise. Maps: negatives 0.2 + noise, surprises 0.8 + noise.
    Mutation killed: the fitted classes' probabilities written to the first columns (out[:, :2]), which scored the
    surprise clip positive."""
    from types import SimpleNamespace

    from icegan.recognition import RecognizerConfig, fit_predict_sklearn
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0] * 6 + [2] * 6 + [2, 0])
    x = torch.where(y == 2, 0.8, 0.2)[:, None, None, None] + 0.05 * torch.rand(len(y), 3, 8, 8, generator=g)
    fold = SimpleNamespace(train_idx=np.arange(12), test_idx=np.array([12, 13]), index=0)
    p = fit_predict_sklearn(RecognizerConfig(name=name, forest_trees=20), x, y, fold, seed=0)
    assert p.shape == (2, 3)
    np.testing.assert_array_equal(p[:, 1], [0.0, 0.0])
    assert p.argmax(1).tolist() == [2, 0]
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)              # float32 maps: float32 sums
