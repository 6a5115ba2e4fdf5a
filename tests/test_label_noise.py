"""Confident learning on out-of-bag forest probabilities (model.noise_filter=forest): the confident joint by hand,
the forest's out-of-bag probabilities, flipped labels found, the fold masks, and that the held-out subject never
reaches the filter."""
import numpy as np
import pytest
from _scalar_log import ScalarLog

from icegan.data.toy_features import make_toy_features
from icegan.label_noise import confident_joint_flags, flag_noisy_labels, forest_out_of_bag_probabilities
from icegan.recognition import RecognizerConfig, _drop_noisy_labels, fit_predict_folds, fit_recognizer


def test_confident_joint_flags_by_hand():
    """Thresholds t = (0.5, 0.55, 0.6) (means of each class's own probability); row 1 is confidently class 1 but
    labelled 0, row 3 confidently 0 but labelled 1; row 5 has no confident class; the NaN row is never flagged and
    does not enter the thresholds."""
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1],
                      [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [np.nan, np.nan, np.nan]])
    labels = np.array([0, 0, 1, 1, 2, 2, 0])
    assert confident_joint_flags(probs, labels).tolist() == [False, True, False, True, False, False, False]
    # two confident classes: the more probable decides (t = (0.5, 0.35, 0.35): row 0 is confident in 0 and 2, 0 wins;
    # row 3 is confident in 0 and 1, 0 wins, not its label 1)
    probs = np.array([[0.55, 0.0, 0.45], [0.45, 0.5, 0.05], [0.4, 0.2, 0.4], [0.5, 0.4, 0.1], [0.2, 0.3, 0.3],
                      [0.3, 0.3, 0.4]])
    labels = np.array([0, 0, 1, 1, 2, 2])
    flags = confident_joint_flags(probs, labels)
    assert flags.tolist() == [False, True, True, True, False, False]
    # a class without clips has no threshold: never confident
    assert confident_joint_flags(np.array([[0.1, 0.1, 0.8], [0.6, 0.3, 0.1]]), np.array([0, 0])).tolist() == [False, False]
    with pytest.raises(ValueError, match=r"^labels must lie in 0\.\.2, got 1\.\.3$"):
        confident_joint_flags(probs, labels + 1)
    with pytest.raises(ValueError, match=r"^labels must lie in 0\.\.2, got -1\.\.1$"):
        confident_joint_flags(probs, labels - 1)
    with pytest.raises(ValueError, match=r"disagree: \(6, 3\), \(3,\)"):
        confident_joint_flags(probs, labels[:3])
    with pytest.raises(ValueError, match=r"disagree: \(6,\), \(6,\)"):
        confident_joint_flags(probs[:, 0], labels)


def test_the_most_probable_confident_class_decides_not_the_most_probable_class():
    """t = (0.9, 0.2, 0.7). Row 2 (label 1): class 0 is the most probable (0.6) but below its threshold, class 1 is
    confident: not flagged. Row 5 (label 2): class 2 is the most probable (0.6) but below 0.7, class 1 (0.25) is
    confident: flagged. Row 3 (label 1) is confidently 2: flagged; row 1 has no confident class."""
    probs = np.array([[0.95, 0.05, 0.0], [0.85, 0.1, 0.05], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8],
                      [0.15, 0.25, 0.6]])
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert confident_joint_flags(probs, labels).tolist() == [False, False, False, True, False, True]


def test_forest_out_of_bag_probabilities_and_flipped_labels_found():
    """Out-of-bag probabilities are proper rows, reproducible by seed, and confident learning on them finds labels
    flipped on a separable toy set (and flags few others). (A flipped clip the forest was unsure of may stay below
    every threshold and unflagged: confident learning is conservative.)"""
    fs = make_toy_features(n_subjects_per_dataset=3, clips_per_class=4)
    x, y = fs.features.reshape(len(fs), -1).numpy(), fs.labels.numpy().copy()
    p = forest_out_of_bag_probabilities(x, y, trees=200, seed=1)
    assert p.shape == (len(y), 3) and np.allclose(p.sum(1), 1)
    np.testing.assert_array_equal(p, forest_out_of_bag_probabilities(x, y, trees=200, seed=1, n_jobs=2))
    assert (p.argmax(1) == y).mean() > 0.9                      # the toy classes are separable
    # flip the clip of each class the forest is surest of (highest own out-of-bag probability)
    own = p[np.arange(len(y)), y]
    flipped = np.array([np.flatnonzero(y == c)[own[y == c].argmax()] for c in range(3)])
    y[flipped] = (y[flipped] + 1) % 3
    flags = flag_noisy_labels(x, y, trees=200, seed=1)
    assert flags[flipped].all() and flags.sum() <= len(flipped) + 2


def test_out_of_bag_rows_are_probabilities_or_nan_and_balanced_weights_count():
    """With 3 trees many clips are in the bag of every tree: their rows are NaN (no out-of-sample prediction), never
    rows of zeros; every other row sums to 1. On labels 30/6/4, class_weight='balanced' changes the probabilities."""
    rng = np.random.default_rng(0)
    y = np.array([0] * 30 + [1] * 6 + [2] * 4)
    x = rng.normal(size=(40, 4)) + y[:, None]
    p = forest_out_of_bag_probabilities(x, y, trees=3, seed=0)
    ok = np.isfinite(p).all(1)
    assert 0 < (~ok).sum() < 40 and np.isnan(p[~ok]).all() and np.allclose(p[ok].sum(1), 1)
    balanced, plain = (forest_out_of_bag_probabilities(x, y, trees=50, seed=0, balanced=b) for b in (True, False))
    assert not np.allclose(balanced, plain, equal_nan=True)


def test_balanced_forests_judge_rare_class_clips_out_of_bag_as_often_as_common_ones():
    """Every clip, of any class, is out of the bag of about 37 % of the trees, also with balanced classes: with 20
    trees all 40 clips of labels 30/6/4 have out-of-bag probabilities. Before, class_weight='balanced' made
    scikit-learn draw each bootstrap by class weight: a clip of the 4-clip class was out of bag of about 3 % of the
    trees, and most of them had no out-of-bag vote at all (rows of NaN: never judged)."""
    rng = np.random.default_rng(0)
    y = np.array([0] * 30 + [1] * 6 + [2] * 4)
    x = rng.normal(size=(40, 4)) + y[:, None]
    p = forest_out_of_bag_probabilities(x, y, trees=20, seed=0)
    assert np.isfinite(p).all() and np.allclose(p.sum(1), 1)


def test_a_class_missing_from_the_labels_does_not_switch_the_filter_off():
    """A fold whose training clips lack a class (labels 0 and 2 only): that class's out-of-bag probability is 0, not
    NaN, so the clips keep their predictions and flipped labels are still found (before, the NaN column marked every
    clip as unpredicted and the filter flagged nothing)."""
    rng = np.random.default_rng(0)
    y = np.array([0, 2] * 20)
    x = rng.normal(size=(40, 4)) + 3 * y[:, None]
    p = forest_out_of_bag_probabilities(x, y, trees=60, seed=0)
    ok = np.isfinite(p).all(1)
    assert ok.sum() > 30 and (p[ok, 1] == 0).all() and np.allclose(p[ok].sum(1), 1)
    flipped = y.copy()
    flipped[:4] = 2 - flipped[:4]                          # four labels swapped between the two classes
    assert flag_noisy_labels(x, flipped, trees=60, seed=0)[:4].sum() >= 3


def test_noise_filter_masks_and_held_out_isolation():
    """The filter removes exactly the flagged training clips of each fold from its masks and logs their share; the
    held-out subject's labels cannot reach it (its predictions are bit-identical when they change); and with flipped
    training labels the filter changes the trained network."""
    from icegan.protocol import make_folds
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=3)
    x, y = fs.features, fs.labels.clone()
    y[[1, 20]] = (y[[1, 20]] + 1) % 3                          # two noisy labels
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")[:2]
    cfg = RecognizerConfig(epochs=3, batch_size=16, noise_filter="forest", forest_trees=60, shift_px=1)
    masks = np.zeros((2, len(y)), dtype=bool)
    for i, f in enumerate(folds):
        masks[i, f.train_idx] = True

    writer = ScalarLog()                                         # records what reaches TensorBoard
    kept = _drop_noisy_labels(cfg, x, y, masks, folds, 1, 5, False, writer)
    flat = x.reshape(len(y), -1).numpy()
    for i, f in enumerate(folds):
        flags = flag_noisy_labels(flat[f.train_idx], y.numpy()[f.train_idx], 60, 5 + 1000 * f.index)
        assert flags.any()
        want = masks[i].copy()
        want[np.asarray(f.train_idx)[flags]] = False
        np.testing.assert_array_equal(kept[i], want)
        assert writer.rows[i] == ("noise_filter/dropped_share", float(flags.mean()), f.index)
    out = fit_predict_folds(cfg, x, y, subjects, folds[:1], seed=5, progress=False)[0]
    y2 = y.clone()
    y2[folds[0].test_idx] = (y2[folds[0].test_idx] + 1) % 3      # the held-out subject's labels: never seen
    np.testing.assert_array_equal(out, fit_predict_folds(cfg, x, y2, subjects, folds[:1], seed=5, progress=False)[0])
    plain = fit_predict_folds(RecognizerConfig(epochs=3, batch_size=16, shift_px=1), x, y, subjects, folds[:1], seed=5,
                              progress=False)[0]
    assert not np.array_equal(plain, out)


def test_noise_filter_config_errors():
    with pytest.raises(ValueError, match="model.noise_filter=forest applies to the grouped networks"):
        RecognizerConfig(name="random_forest", noise_filter="forest")
    with pytest.raises(ValueError, match="model.noise_filter=forest applies to the grouped networks"):
        RecognizerConfig(name="logreg", noise_filter="forest")
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    with pytest.raises(ValueError, match="noise_filter works on LOSO folds"):
        fit_recognizer(RecognizerConfig(epochs=1, noise_filter="forest"), fs.features, fs.labels, progress=False)
    from icegan.config import ConfigError
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match="recognizer.noise_filter is supported by `icegan loso` feature runs"):
        load_main_config("configs/demo.yaml", ["recognizer.noise_filter=forest"])


def test_noise_filter_grouped_folds_do_not_see_held_out_labels():
    """With all folds trained in one grouped network, a clip that every other fold flags (a flag that depends on its
    own subject's labels) leaves no trace on the model tested on that subject: fold 0's predictions are bit-identical
    when only fold 0's held-out labels change (batches are drawn from the training rows before the filter)."""
    from icegan.protocol import make_folds
    fs = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    x, y = fs.features, fs.labels.clone()
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")
    cfg = RecognizerConfig(epochs=4, batch_size=16, noise_filter="forest", forest_trees=50, shift_px=1)
    t = folds[0].test_idx
    y2 = y.clone()
    y2[t] = (y2[t] + 1) % 3
    masks = np.zeros((len(folds), len(y)), dtype=bool)
    for i, f in enumerate(folds):
        masks[i, f.train_idx] = True
    kept = [_drop_noisy_labels(cfg, x, yy, masks, folds, 1, 0, False, None).any(0) for yy in (y, y2)]
    assert not np.array_equal(kept[0], kept[1])        # the rows some model keeps do depend on fold 0's labels
    a = fit_predict_folds(cfg, x, y, subjects, folds, seed=0, progress=False)[0]
    b = fit_predict_folds(cfg, x, y2, subjects, folds, seed=0, progress=False)[0]
    np.testing.assert_array_equal(a, b)


def test_noise_filter_with_inner_validation_keeps_held_out_labels_out(monkeypatch):
    """With the filter and inner validation together, another fold's flags (which depend on this fold's held-out
    labels) must not move this fold's validation split: fold 1's predictions are bit-identical when only its
    held-out subject's labels change, even though that change drops the whole subject from fold 0's training.
    The filter is replaced by a rule that flags every clip labelled 2, so the drop is certain."""
    import icegan.label_noise
    from icegan.protocol import make_folds
    monkeypatch.setattr(icegan.label_noise, "flag_noisy_labels", lambda x, y, *a, **kw: y == 2)
    fs = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    x, y = fs.features, fs.labels.clone()
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")
    cfg = RecognizerConfig(epochs=3, batch_size=16, noise_filter="forest", inner_val_fraction=0.3)
    t = folds[1].test_idx
    y2 = y.clone()
    y2[t] = 2                                          # fold 0 now drops every clip of fold 1's subject
    masks = np.zeros((len(folds), len(y)), dtype=bool)
    for i, f in enumerate(folds):
        masks[i, f.train_idx] = True
    kept = [_drop_noisy_labels(cfg, x, yy, masks, folds, 1, 0, False, None)[0] for yy in (y, y2)]
    assert kept[0][t].any() and not kept[1][t].any()
    a = fit_predict_folds(cfg, x, y, subjects, folds, seed=0, progress=False)[1]
    b = fit_predict_folds(cfg, x, y2, subjects, folds, seed=0, progress=False)[1]
    np.testing.assert_array_equal(a, b)


def test_the_most_probable_confident_class_decides():
    """A clip's flag follows its most probable confident class, not its overall argmax: [.5, .4, .1] labelled 0 is confident only in class 1 (thresholds .7 / .3 / .8), so it is flagged."""
    from icegan.label_noise import confident_joint_flags
    probs = np.array([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    assert confident_joint_flags(probs, np.array([0, 0, 1, 2])).tolist() == [False, True, False, False]
