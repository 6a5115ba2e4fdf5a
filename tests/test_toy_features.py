"""The toy feature set (icegan.data.toy_features): class motion patterns, the subject gain, the noise, the strain map
and the sample rows, checked on the maps themselves (its determinism and [0, 1] range are in test_features.py)."""
from __future__ import annotations

import numpy as np
import pytest

from icegan.data.toy_features import make_toy_features


#: the range (max - min) of each class's motion pattern in u (channel 0) and v (channel 1), before gain and clip factor
PATTERN_RANGE = {(0, 0): 2 * 0.6, (0, 1): 2 * 0.9, (1, 0): 0.8, (1, 1): 0.5, (1, 2): 1.0}     # (channel, class)


def _amplitudes(channel=1, eps=1e-3, **kw):
    """Each clip's motion amplitude (gain x clip factor) as seen in one map: the maps at noise ``eps`` minus those
    without noise (same draws) are the noise (std 0.3 x eps) over the min–max range of the clip's motion, pattern
    range x amplitude. Returns (amplitudes, the clips' rows, their classes)."""
    x0, x1 = make_toy_features(noise=0.0, **kw), make_toy_features(noise=eps, **kw)
    d = (x1.features - x0.features)[:, channel].flatten(1).double().numpy() / eps
    labels = x0.samples["label"].to_numpy()
    span = np.array([PATTERN_RANGE.get((channel, int(c)), np.nan) for c in labels])
    return 0.3 / d.std(1) / span, x0.samples, labels


def test_clips_of_a_subject_share_its_gain():
    """The gain is drawn per subject (0.6–1.4) and multiplies every clip of the subject (times a clip factor
    0.7–1.3): which subject a clip belongs to explains over a third of the spread of the clips' log amplitudes
    (about 0.6 here; a gain per clip, none, or a narrow one leaves about 0.1, what 16 groups explain by chance)."""
    for seed in (0, 1):
        amp, rows, labels = _amplitudes(n_subjects_per_dataset=8, clips_per_class=4, seed=seed)
        la = np.log(amp)
        for c in range(3):                                  # the estimate's bias per class taken out
            la[labels == c] -= la[labels == c].mean()
        subjects = rows["subject"].to_numpy()
        between = sum((subjects == s).sum() * la[subjects == s].mean() ** 2 for s in set(subjects))
        assert between / (la ** 2).sum() > 0.35, seed


def test_noise_is_0_3_times_noise_against_the_class_patterns():
    """Noise of standard deviation 0.3 x noise in u and v against the class patterns (peaks 0.5–1, times gain and
    clip factor): the amplitudes it implies are about 1 (median 0.7–0.95 here) in every map with motion; a noise of
    1 x noise in a map would make them about 0.3."""
    for (channel, c) in PATTERN_RANGE:
        amp, _, labels = _amplitudes(channel, n_subjects_per_dataset=4, clips_per_class=3)
        assert 0.6 < float(np.median(amp[labels == c])) < 1.3, (channel, c)


def _peak(m, fn):
    """(row, column) of the max (fn=np.argmax) or min of a map."""
    return np.unravel_index(fn(m), m.shape)


@pytest.mark.parametrize("seed", [0, 3])
def test_class_motion_directions(seed):
    """Without noise (image axes: u right, v down): negative, brows (upper half) move down (v max there) and towards
    each other (u max on the left brow, min on the right); positive, mouth corners (lower half) move up (v min)
    and outwards (u min on the left, max on the right); surprise, brows move up (v min in the upper half), no u."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1, size=32, noise=0.0, seed=seed)
    for x, label in zip(fs.features.numpy(), fs.samples["label"]):
        u, v = x[0], x[1]
        if label == 0:
            assert _peak(v, np.argmax)[0] < 16 and float(v[-1, 0]) < 0.01          # v >= 0: still elsewhere
            assert _peak(u, np.argmax)[1] < 16 < _peak(u, np.argmin)[1] and _peak(u, np.argmax)[0] < 16
        elif label == 1:
            assert _peak(v, np.argmin)[0] > 16
            assert _peak(u, np.argmin)[1] < 16 < _peak(u, np.argmax)[1] and _peak(u, np.argmax)[0] > 16
        else:
            assert _peak(v, np.argmin)[0] < 16 and float(v[-1, 0]) > 0.99          # v <= 0: still elsewhere
            assert not u.any()


def test_strain_is_the_optical_strain_of_the_flow():
    """Surprise clips without noise have u = 0, so their strain map is sqrt(v_y^2 + 0.5 v_x^2) of the v map (central
    differences, y along rows), min–max normalised: the scale of v cancels."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2, noise=0.0, datasets=("casme2",))
    for x in fs.features[fs.samples["label"].to_numpy() == 2].double().numpy():
        v_y, v_x = np.gradient(x[1])
        s = np.sqrt(v_y ** 2 + 0.5 * v_x ** 2)
        np.testing.assert_allclose(x[2], (s - s.min()) / (s.max() - s.min()), atol=1e-5)


def test_rows_name_dataset_subject_clip_and_class():
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2, datasets=("casme2", "samm"))
    r = fs.samples
    assert len(r) == 2 * 2 * 3 * 2 and fs.features.shape == (24, 3, 28, 28)
    assert r["clip"].tolist()[:7] == ["casme2_s01_c00", "casme2_s01_c01", "casme2_s01_c10", "casme2_s01_c11",
                                      "casme2_s01_c20", "casme2_s01_c21", "casme2_s02_c00"]
    assert r["subject"].tolist()[::6] == ["casme2/s01", "casme2/s02", "samm/s01", "samm/s02"]
    assert r["label"].tolist()[:6] == [0, 0, 1, 1, 2, 2] and r["dataset"].tolist()[-1] == "samm"
    with pytest.raises(ValueError, match="size >= 8"):
        make_toy_features(size=7)
