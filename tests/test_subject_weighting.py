"""model.subject_weighting: every training subject weighs the same in the loss (icegan.recognition.subject_weights)."""
import numpy as np
import pytest
import torch

from icegan.config import ConfigError, without_neutral_keys
from icegan.data.toy_features import make_toy_features
from icegan.protocol import make_folds
from icegan.recognition import (RecognizerConfig, class_weights, fit_predict_folds, fit_predict_sklearn,
                                fit_recognizer, hflip_features, predict_models, subject_weights, train_models)


def test_subject_weights_by_hand():
    """Model 0 trains on a (3 clips), b (1) and c (2): 1/3, 1, 1/2, rescaled so the 6 weights average 1 (x2);
    model 1 trains on a only: 1 each; rows outside a model's training set weigh 0."""
    subjects = ["a"] * 3 + ["b"] + ["c"] * 2
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=bool)
    w = subject_weights(subjects, mask)
    torch.testing.assert_close(w, torch.tensor([[2 / 3, 2 / 3, 2 / 3, 2.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0, 0, 0]]))
    # every subject of a model carries the same total weight, and the mean over its rows is 1
    for g in range(2):
        rows = np.flatnonzero(mask[g])
        totals = {s: float(w[g, [i for i in rows if subjects[i] == s]].sum()) for s in {subjects[i] for i in rows}}
        assert max(totals.values()) == pytest.approx(min(totals.values()))
        assert float(w[g, rows].mean()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="6 subjects for a train mask of shape"):
        subject_weights(subjects, np.ones((1, 5), dtype=bool))


def test_class_weights_on_weighted_counts_balance_the_weighted_classes():
    """With sample weights the class weights are computed on the weighted masses: afterwards every class present
    carries the same total weight."""
    y = torch.tensor([0, 0, 0, 1, 2, 2])
    sw = subject_weights(["a", "a", "b", "b", "c", "c"], np.ones((1, 6), dtype=bool)) * torch.tensor([1, 2, 1, 1, 3, 1.])
    cw = class_weights(y, sw, 3)
    mass = torch.zeros(3).index_add_(0, y, sw[0] * cw[0][y])
    torch.testing.assert_close(mass, torch.full((3,), float(mass.mean())))


def _toy():
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1, seed=3)
    return fs.features, fs.labels, fs.samples["subject"].tolist()


@pytest.mark.parametrize("mixup", [0.0, 0.4])
def test_zero_weight_rows_do_not_teach_the_network(mixup):
    """A row with loss weight 0 still passes through the network (batch-norm statistics), but its label has no
    effect: relabelling it leaves the trained model identical. With weight 1 the relabelling changes the model."""
    x, y, _ = _toy()
    cfg = RecognizerConfig(epochs=3, batch_size=8, mixup_alpha=mixup, hflip=False, tta_hflip=False)
    mask = torch.ones(2, len(y), dtype=torch.bool)
    sw = torch.ones(2, len(y))
    sw[:, :5] = 0.0
    y2 = y.clone()
    y2[:5] = (y2[:5] + 1) % 3
    runs = [predict_models(train_models(cfg, x, yy, mask, seed=2, progress=False, sample_weight=sw)[0], x,
                           tta_hflip=False) for yy in (y, y2)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    plain = [predict_models(train_models(cfg, x, yy, mask, seed=2, progress=False)[0], x, tta_hflip=False)
             for yy in (y, y2)]
    assert (plain[0] - plain[1]).abs().max() > 1e-4


def test_uniform_weights_change_nothing():
    """Weights that are the same for every row (any scale) give the model trained without weights: the loss is a
    weighted mean and the class weights are scale-free."""
    x, y, _ = _toy()
    cfg = RecognizerConfig(epochs=2, batch_size=8, shift_px=1)
    mask = torch.ones(1, len(y), dtype=torch.bool)
    ref = predict_models(train_models(cfg, x, y, mask, seed=1, progress=False)[0], x)
    got = predict_models(train_models(cfg, x, y, mask, seed=1, progress=False,
                                      sample_weight=torch.full((1, len(y)), 2.5))[0], x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sample_weight must be finite and non-negative"):
        train_models(cfg, x, y, mask, progress=False, sample_weight=-torch.ones(1, len(y)))
    with pytest.raises(ValueError, match="shaped like train_mask"):
        train_models(cfg, x, y, mask, progress=False, sample_weight=torch.ones(2, len(y)))


def _unequal(x, y, subjects):
    """Drop clips so that the subjects have 1 to 3 clips each (the toy set has 3 per subject)."""
    keep = np.ones(len(y), dtype=bool)
    seen: dict = {}
    for i, s in enumerate(subjects):
        seen[s] = seen.get(s, 0) + 1
        n_keep = 1 + (sorted(set(subjects)).index(s) % 3)
        keep[i] = seen[s] <= n_keep
    idx = np.flatnonzero(keep)
    return x[idx], y[idx], [subjects[i] for i in idx]


@pytest.mark.parametrize("name", ["ststnet", "logreg", "random_forest"])
def test_fit_predict_folds_subject_weighting(name):
    """With as many clips in every subject the weights are all 1 and the predictions are those without weighting;
    with unequal subjects they differ, and the held-out subject's rows still never reach the fit."""
    x, y, subjects = _toy()
    kw = {"epochs": 2, "batch_size": 16} if name == "ststnet" else {"forest_trees": 20}
    run = lambda xx, yy, ss, on: fit_predict_folds(RecognizerConfig(name=name, subject_weighting=on, **kw), xx, yy,
                                                   ss, make_folds(ss, "CDE")[:2], seed=0, progress=False)
    # the logistic regression's lbfgs stops at tol 1e-4: the weighted loss (weights of 1) is the same function written
    # another way, and its iterates end about 3e-5 apart in probability, by an amount that depends on the CPU's BLAS
    # kernels; the effect of unequal weights checked below is about 0.016
    atol = 2e-4 if name == "logreg" else 1e-5
    for a, b in zip(run(x, y, subjects, False), run(x, y, subjects, True)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=atol)
    xu, yu, su = _unequal(x, y, subjects)
    off, on = run(xu, yu, su, False), run(xu, yu, su, True)
    assert max(np.abs(a - b).max() for a, b in zip(off, on)) > 10 * atol
    # the held-out rows: scrambling them changes nothing
    f = make_folds(su, "CDE")[0]
    x2, y2 = xu.clone(), yu.clone()
    x2[f.test_idx] = torch.rand_like(x2[f.test_idx])
    y2[f.test_idx] = (y2[f.test_idx] + 1) % 3
    again = fit_predict_folds(RecognizerConfig(name=name, subject_weighting=True, **kw), x2, y2, su, [f], seed=0,
                              progress=False)[0]
    first = fit_predict_folds(RecognizerConfig(name=name, subject_weighting=True, **kw), x2, yu, su, [f], seed=0,
                              progress=False)[0]
    np.testing.assert_allclose(again, first, rtol=0, atol=1e-6)


def test_logreg_subject_weighting_passes_the_hand_computed_weights():
    """Subject A with 3 clips and subject B with 1: scikit-learn's fit receives the sample weights 2/3, 2/3, 2/3
    and 2 (1/n_s rescaled to mean 1) in the classifier step, the scaler being fitted on the clips once each. Without
    them the probabilities move by about 0.1 (strong regularisation keeps them soft)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    x, y, subjects = _toy()
    a = [i for i, s in enumerate(subjects) if s == subjects[0]]
    b = [i for i, s in enumerate(subjects) if s == subjects[3]][:1]
    rows = a + b
    cfg = RecognizerConfig(name="logreg", hflip=False, tta_hflip=False, class_weighting=False, subject_weighting=True,
                           logreg_C=1e-3)

    class _Fold:
        train_idx, test_idx = np.arange(len(rows)), np.arange(len(rows))
    got = fit_predict_sklearn(cfg, x[rows], y[rows], _Fold, subjects=[subjects[i] for i in rows])
    xs = StandardScaler().fit_transform(x[rows].reshape(len(rows), -1).numpy())
    fit = lambda w: LogisticRegression(C=1e-3, max_iter=cfg.logreg_max_iter).fit(xs, y[rows].numpy(),
                                                                                 sample_weight=w).predict_proba(xs)
    np.testing.assert_allclose(got, fit(np.array([2 / 3, 2 / 3, 2 / 3, 2.0])), rtol=0, atol=1e-6)
    assert np.abs(got - fit(None)).max() > 0.01


def test_custom_recognizer_subject_weighting_runs_and_weights(monkeypatch):
    """The custom path (one model per fold) is given the fold's training subjects: its training receives, for each
    training row, N / (S n_s) (S training subjects, n_s clips of the row's subject: every subject the same total,
    mean 1), worked out here by hand; weighting changes its model when the subjects are unequal."""
    import icegan.recognition as recognition
    x, y, subjects = _unequal(*_toy())
    base = dict(name="custom", module="docs/examples/custom_recognizer.py:TwoLayerCNN", epochs=2, batch_size=8)
    folds = make_folds(subjects, "CDE")[:1]
    off = fit_predict_folds(RecognizerConfig(**base), x, y, subjects, folds, progress=False)[0]
    given = []
    train = recognition.train_models

    def spy(*a, **kw):
        given.append(kw["sample_weight"])
        return train(*a, **kw)

    monkeypatch.setattr(recognition, "train_models", spy)
    on = fit_predict_folds(RecognizerConfig(**base, subject_weighting=True), x, y, subjects, folds, progress=False)[0]
    assert off.shape == on.shape and np.abs(off - on).max() > 1e-5
    tr = [subjects[i] for i in folds[0].train_idx]
    counts = {s: tr.count(s) for s in tr}
    assert len(set(counts.values())) > 1                          # unequal subjects, or the check would be vacuous
    want = torch.tensor([len(tr) / (len(counts) * counts[s]) for s in tr])
    assert len(given) == 1 and given[0].shape == (1, len(tr))
    torch.testing.assert_close(given[0][0], want)


def test_subject_weighting_errors_and_neutral_key():
    x, y, _ = _toy()
    with pytest.raises(ValueError, match="subject_weighting needs the subject of every training clip"):
        fit_recognizer(RecognizerConfig(epochs=1, subject_weighting=True), x, y, progress=False)
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match="recognizer.subject_weighting is supported by `icegan loso`"):
        load_main_config(None, ["recognizer.subject_weighting=true"])
    # a run saved before the key existed is the same experiment as one holding false (resume, digests)
    assert without_neutral_keys({"model": {"epochs": 3, "subject_weighting": False}}) == {"model": {"epochs": 3}}
    assert without_neutral_keys({"model": {"subject_weighting": True}}) == {"model": {"subject_weighting": True}}


def test_sample_weight_outside_the_train_mask_is_ignored():
    """A sample weight on a row outside model g's train mask does not make it a training row: weights of 1 on every
    row of a (G, N) table give the models trained without weights, although model 0 holds rows out."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1, seed=3)
    x, y = fs.features, fs.labels
    mask = torch.ones(2, len(y), dtype=torch.bool)
    mask[0, :6] = False
    cfg = RecognizerConfig(epochs=2, batch_size=8, hflip=False, tta_hflip=False)
    ref = predict_models(train_models(cfg, x, y, mask, seed=1, progress=False)[0], x, tta_hflip=False)
    got = predict_models(train_models(cfg, x, y, mask, seed=1, progress=False,
                                      sample_weight=torch.ones(2, len(y)))[0], x, tta_hflip=False)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_sklearn_sample_weights_are_multiplied_by_the_class_weights_of_the_weighted_counts():
    """A scikit-learn recognizer given row weights w and class_weighting: fit receives w · n_w / (K · n_w,c) (the
    balanced weights of the weighted class masses) as sample_weight, with mirrors (hflip) weighted like their clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 4, 4, generator=g)
    y = torch.tensor([0] * 7 + [1] * 2 + [2] * 3)
    w = torch.tensor([1.0, 2, 1, 1, 1, 1, 1, 3, 1, 1, 2, 1])
    cfg = RecognizerConfig(name="logreg", hflip=True, tta_hflip=False, input_size=4, logreg_C=0.05)
    got = fit_recognizer(cfg, x, y, sample_weight=w)(x)
    mass = np.array([w[y == c].sum().item() for c in range(3)])                     # 8, 4, 4
    cw = w.sum().item() / (3 * mass)
    both = torch.cat([x, hflip_features(x)]).reshape(24, -1).numpy()
    scaler = StandardScaler().fit(both)
    clf = LogisticRegression(C=0.05, max_iter=cfg.logreg_max_iter).fit(
        scaler.transform(both), np.concatenate([y, y]), sample_weight=np.tile(w.numpy() * cw[y.numpy()], 2))
    want = clf.predict_proba(scaler.transform(x.reshape(12, -1).numpy()))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
