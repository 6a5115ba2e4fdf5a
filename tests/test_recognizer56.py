"""Two training tricks of icegan.recognition held to what they can honestly do: the map rotation (model.rotate_deg)
turns the maps as images and leaves the u, v vectors unrotated, so it is bounded to 15 degrees; and the label-noise
filter (model.noise_filter=forest) judges a fold's real training clips among themselves, never with the synthetic
clips (data.synthetic_per_clip) that add_training_rows appends to the fold's training rows."""
import numpy as np
import pytest
import torch

from icegan.data.synthetic_features import add_training_rows
from icegan.data.toy_features import make_toy_features
from icegan.label_noise import flag_noisy_labels
from icegan.protocol import make_folds
from icegan.recognition import RecognizerConfig, _drop_noisy_labels, fit_predict_folds, warp_features


@pytest.mark.parametrize("angle", [15.5, 90.0, 180.0])
def test_a_rotation_beyond_15_degrees_is_refused_with_the_reason(angle):
    """The flow vectors are not rotated with the maps: at 90 or 180 degrees the training flow would point the wrong
    way, so the bound is 15 degrees and the message says why."""
    with pytest.raises(ValueError, match=r"model\.rotate_deg must lie in 0\.\.15 degrees") as info:
        RecognizerConfig(rotate_deg=angle)
    msg = str(info.value)
    assert f"got {angle}" in msg
    assert "not rotated" in msg and "direction" in msg


def test_rotations_up_to_15_degrees_are_accepted():
    """0, the recorded 5 degrees and the edge 15 degrees stay valid."""
    for angle in (0.0, 5.0, 15.0):
        assert RecognizerConfig(rotate_deg=angle).rotate_deg == angle


def test_warp_turns_the_maps_but_not_the_flow_vectors():
    """The fact behind the bound: a flow field pointing right (u = 1, v = 0 everywhere) turned by 90 degrees still
    points right (u = 1, v = 0), where the turned motion would point up: the direction is off by the whole angle."""
    x = torch.zeros(1, 3, 6, 6)
    x[:, 0] = 1.0                                                      # u = 1, v = 0, strain 0
    out = warp_features(x, torch.tensor([90.0]), torch.tensor([1.0]))
    torch.testing.assert_close(out, x)


def test_the_warp_docstring_says_what_is_and_is_not_possible():
    """The docstring no longer claims a vector rotation cannot be done at all: it names the per-clip min-max
    normalisation and the 15 degree bound, and that multiples of 90 degrees would be exact but are out of range."""
    doc = " ".join(warp_features.__doc__.split())
    assert "min–max normalisation" in doc and "multiples of 90" in doc and "15" in doc


def _toy_with_synthetic():
    """Toy real clips (two noisy labels) followed by one synthetic copy per clip of the first two datasets' subjects,
    a third of them with a wrong label."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=3)
    x, y = fs.features.clone(), fs.labels.clone()
    y[[1, 20]] = (y[[1, 20]] + 1) % 3
    subjects = fs.samples["subject"].tolist()
    n = len(y)
    g = torch.Generator().manual_seed(0)
    sx = x + 0.01 * torch.randn(x.shape, generator=g)
    sy = y.clone()
    sy[::3] = (sy[::3] + 1) % 3                                        # mislabelled synthetic clips
    return x, y, subjects, n, torch.cat([x, sx]), torch.cat([y, sy]), subjects


def test_the_noise_filter_judges_real_training_clips_only_and_keeps_every_synthetic_row():
    """With synthetic rows in the folds' training rows, the real clips dropped are exactly those dropped without them
    (forest and thresholds on the fold's real training clips), and every synthetic training row is kept, even the
    mislabelled ones."""
    x, y, subjects, n, xa, ya, ssubjects = _toy_with_synthetic()
    folds = make_folds(subjects, "CDE")[:2]
    cfg = RecognizerConfig(epochs=1, noise_filter="forest", forest_trees=60)
    real_masks = np.zeros((2, n), dtype=bool)
    for i, f in enumerate(folds):
        real_masks[i, f.train_idx] = True
    want = _drop_noisy_labels(cfg, x, y, real_masks, folds, 1, 5, False)
    assert (want != real_masks).any()                                  # the filter drops some real clips

    sfolds = add_training_rows(folds, subjects, ssubjects, n)
    masks = np.zeros((2, len(ya)), dtype=bool)
    for i, f in enumerate(sfolds):
        masks[i, f.train_idx] = True
    assert masks[:, n:].any()
    kept = _drop_noisy_labels(cfg, xa, ya, masks, sfolds, 1, 5, False, n_real=n)
    np.testing.assert_array_equal(kept[:, :n], want)
    np.testing.assert_array_equal(kept[:, n:], masks[:, n:])


def test_fit_predict_folds_hands_the_filter_the_real_training_rows(monkeypatch):
    """fit_predict_folds passes n_real on: the forest of each fold sees only that fold's real training rows."""
    import icegan.label_noise as label_noise
    x, y, subjects, n, xa, ya, ssubjects = _toy_with_synthetic()
    folds = make_folds(subjects, "CDE")[:2]
    sfolds = add_training_rows(folds, subjects, ssubjects, n)
    seen = []

    def spy(xx, labels, *args, **kw):
        seen.append(len(labels))
        return flag_noisy_labels(xx, labels, *args, **kw)

    monkeypatch.setattr(label_noise, "flag_noisy_labels", spy)
    cfg = RecognizerConfig(epochs=1, batch_size=16, noise_filter="forest", forest_trees=20)
    fit_predict_folds(cfg, xa, ya, subjects + ssubjects, sfolds, progress=False, n_real=n)
    assert seen == [len(f.train_idx) for f in folds]
    assert seen != [len(f.train_idx) for f in sfolds]
