"""Recognizers (STSTNet, Off-TANet), grouped training and its honesty guarantees."""
import numpy as np
import pytest
import torch
from _model_checks import assert_only_second_copy_changed
from _scalar_log import ScalarLog

from icegan.data.toy_features import make_toy_features
from icegan.models.recognizers import (MaskedBatchNorm2d, OffTANet, STSTNet, build_recognizer, conv_maxpool,
                                       fast_dropout)
from icegan.recognition import (RecognizerConfig, SnapshotAverage, class_weights, cutout_features, fit_recognizer,
                                hflip_features, fit_predict_folds, fit_predict_sklearn, inner_val_masks, predict_models,
                                shift_features, train_models, warp_features)
from icegan.recognition import _weighted_ce


def test_offtanet_parameter_count_matches_paper():
    # Zhang et al. (PRICAI 2021): 59,403 parameters at 112x112
    m = OffTANet(input_size=112, stem_stride=2)
    assert sum(p.numel() for p in m.parameters()) == 59403
    assert m(torch.rand(2, 3, 112, 112)).shape == (2, 3)


@pytest.mark.parametrize("name,kw,size", [("ststnet", {}, 28), ("offtanet", {"input_size": 28, "stem_stride": 1}, 28)])
def test_shapes_and_gradients(name, kw, size):
    m = build_recognizer(name, **kw)
    x = torch.rand(4, 3, size, size, requires_grad=True)
    y = m(x)
    assert y.shape == (4, 3)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    g = build_recognizer(name, n_models=3, **kw)
    assert g(torch.rand(4, 3, size, size)).shape == (4, 3, 3)
    assert g(torch.rand(4, 3, 3, size, size)).shape == (4, 3, 3)
    with pytest.raises(ValueError, match="expected"):
        m(torch.rand(4, 2, size, size))


def test_bad_offtanet_geometry():
    with pytest.raises(ValueError, match="multiple of 4"):
        OffTANet(input_size=28, stem_stride=2)
    with pytest.raises(ValueError, match="unknown recognizer"):
        build_recognizer("resnet")


@pytest.mark.parametrize("cls,kw", [(STSTNet, {}), (STSTNet, {"width": 2}), (OffTANet, {"input_size": 28, "stem_stride": 1})])
def test_grouped_copies_equal_separate_models(cls, kw):
    """Copy g of a grouped network computes exactly what a single network with its weights computes."""
    torch.manual_seed(0)
    G = 3
    grouped = cls(n_models=G, **kw).eval()
    x = torch.rand(5, 3, 28, 28)
    out = grouped(x)
    for g in range(G):
        single = cls(n_models=1, **kw).eval()
        sd = {}
        for k, v in grouped.state_dict().items():
            ref = single.state_dict()[k]
            sd[k] = v if v.dim() == 0 else v.reshape(G, -1)[g].reshape(ref.shape)
        single.load_state_dict(sd)
        torch.testing.assert_close(single(x), out[:, g], rtol=1e-4, atol=1e-5)


def test_masked_batchnorm_ignores_masked_samples():
    bn = MaskedBatchNorm2d(2, 3).train()
    x = torch.randn(6, 6, 4, 4)
    mask = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 0], [0, 1], [1, 1]], dtype=torch.float32)
    y1 = bn(x, mask)
    x2 = x.clone()
    x2[2:4, 3:] += 100.0  # change samples 2, 3 for copy 1 only, where they are masked out
    y2 = MaskedBatchNorm2d(2, 3).train()(x2, mask)
    keep = mask[:, 1].bool()
    torch.testing.assert_close(y1[keep][:, 3:], y2[keep][:, 3:])
    # statistics of copy 0 equal those of plain batch norm over its own samples
    ref = torch.nn.functional.batch_norm(x[mask[:, 0].bool()][:, :3], None, None, training=True)
    torch.testing.assert_close(y1[mask[:, 0].bool()][:, :3], ref, rtol=1e-4, atol=1e-5)


def test_hflip_negates_u_and_is_an_involution():
    x = torch.rand(2, 3, 5, 7)
    f = hflip_features(x)
    torch.testing.assert_close(f[:, 0], 1 - x[:, 0].flip(-1))
    torch.testing.assert_close(f[:, 1:], x[:, 1:].flip(-1))
    torch.testing.assert_close(hflip_features(f), x)


def test_shift_features_known_values_and_replicated_border():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    out = shift_features(x, torch.tensor([1, 0]), torch.tensor([0, -2]))
    # sample 0: content one row down, top row replicated
    torch.testing.assert_close(out[0, :, 1:], x[0, :, :-1])
    torch.testing.assert_close(out[0, :, 0], x[0, :, 0])
    # sample 1: content two columns left, last column replicated
    torch.testing.assert_close(out[1, :, :, :3], x[1, :, :, 2:])
    torch.testing.assert_close(out[1, :, :, 3], x[1, :, :, 4])
    torch.testing.assert_close(out[1, :, :, 4], x[1, :, :, 4])
    torch.testing.assert_close(shift_features(x, torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)), x)
    with pytest.raises(ValueError, match="one \\(dy, dx\\) per sample"):
        shift_features(x, torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    with pytest.raises(ValueError, match="model.shift_px"):
        train_models(RecognizerConfig(epochs=1, shift_px=28), fs.features, fs.labels,
                     torch.ones(1, len(fs), dtype=torch.bool), progress=False)


def test_class_weights_known_values():
    y = torch.tensor([0, 0, 0, 1, 2, 2])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1]], dtype=torch.float32)
    w = class_weights(y, mask, 3)
    torch.testing.assert_close(w[0], torch.tensor([6 / 9, 6 / 3, 6 / 6]))
    torch.testing.assert_close(w[1], torch.tensor([4 / 4, 0.0, 4 / 4]))  # class 1 absent -> 0


def test_inner_validation_is_subject_level_and_disjoint():
    subj = np.array(["a/1"] * 3 + ["a/2"] * 2 + ["b/1"] * 4 + ["b/2"] * 1)
    tm = np.ones((2, 10), dtype=bool)
    tm[1, :3] = False
    tr, va = inner_val_masks(subj, tm, 0.3, np.random.default_rng(0))
    assert not (tr & va).any() and ((tr | va) == tm).all()
    for g in range(2):
        assert va[g].any()
        assert not set(subj[va[g]]) & set(subj[tr[g]])


def test_warp_features_known_values():
    """Rotation and scaling about the centre: identity exact, 90° = rot90 (counter-clockwise), a ramp scaled by s has
    slope 1/s, a constant map stays constant (borders replicated), one angle/scale per sample."""
    torch.manual_seed(0)
    x = torch.rand(3, 3, 6, 6)
    one, zero = torch.ones(3), torch.zeros(3)
    torch.testing.assert_close(warp_features(x, zero, one), x, rtol=0, atol=1e-6)
    torch.testing.assert_close(warp_features(x, torch.full((3,), 90.0), one), torch.rot90(x, 1, (-2, -1)),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(warp_features(x, torch.full((3,), -90.0), one), torch.rot90(x, -1, (-2, -1)),
                               rtol=0, atol=1e-5)
    per_sample = warp_features(x, torch.tensor([0.0, 90.0, 180.0]), one)
    torch.testing.assert_close(per_sample[0], x[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(per_sample[1], torch.rot90(x[1], 1, (-2, -1)), rtol=0, atol=1e-5)
    torch.testing.assert_close(per_sample[2], torch.rot90(x[2], 2, (-2, -1)), rtol=0, atol=1e-5)
    # a ramp along the columns, value = column index: scaled by 2 about the centre (2.5), the centre columns hold
    # 2.5 + (j - 2.5) / 2
    ramp = torch.arange(6.0).expand(1, 1, 6, 6).clone()
    out = warp_features(ramp, torch.zeros(1), torch.full((1,), 2.0))
    torch.testing.assert_close(out[0, 0, 3, 1:5], 2.5 + (torch.arange(1.0, 5.0) - 2.5) / 2, rtol=0, atol=1e-5)
    # shrunk by 2, the outer columns sample outside the map and take the border value
    out = warp_features(ramp, torch.zeros(1), torch.full((1,), 0.5))
    assert out[0, 0, 2, 0] == 0.0 and out[0, 0, 2, 5] == 5.0
    const = torch.full((2, 3, 8, 8), 0.3)
    torch.testing.assert_close(warp_features(const, torch.tensor([17.0, -40.0]), torch.tensor([0.8, 1.3])), const)
    with pytest.raises(ValueError, match="one angle and one scale per sample"):
        warp_features(x, torch.zeros(2), one)
    with pytest.raises(ValueError, match="square"):
        warp_features(torch.rand(1, 3, 4, 6), torch.zeros(1), torch.ones(1))
    with pytest.raises(ValueError, match="scales > 0"):
        warp_features(x, zero, torch.tensor([1.0, 0.0, 1.0]))


def test_rotation_and_scale_augmentation_is_used_and_checked():
    """model.rotate_deg / scale_jitter change the trained network (the warp is applied), leave it bit-identical when
    both are 0, and are refused out of range or for the scikit-learn recognizers."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    mask = torch.ones(1, len(fs), dtype=torch.bool)

    def weights(**kw):
        m, _ = train_models(RecognizerConfig(epochs=2, batch_size=8, **kw), fs.features, fs.labels, mask, seed=3,
                            progress=False)
        return torch.cat([v.flatten().float() for v in m.state_dict().values()])

    plain = weights()
    assert torch.equal(plain, weights(rotate_deg=0.0, scale_jitter=0.0))
    assert not torch.equal(plain, weights(rotate_deg=5.0))
    assert not torch.equal(plain, weights(scale_jitter=0.05))
    with pytest.raises(ValueError, match="model.rotate_deg must lie in 0..15"):
        RecognizerConfig(rotate_deg=-1)
    with pytest.raises(ValueError, match=r"model.scale_jitter must lie in \[0, 1\)"):
        RecognizerConfig(scale_jitter=1.0)
    with pytest.raises(ValueError, match="model.rotate_deg=5.0 applies to the networks"):
        RecognizerConfig(name="logreg", rotate_deg=5.0)


def test_cutout_features_known_square_clipping_and_fill():
    """One square per sample at its own centre, clipped at the border, filled with that map's channel means;
    everything outside the square unchanged."""
    x = torch.rand(3, 3, 6, 7)
    means = x.mean(dim=(2, 3))
    out = cutout_features(x, torch.tensor([2, 0, 5]), torch.tensor([3, 0, 6]), side=2)
    expect_mask = torch.zeros(3, 6, 7, dtype=torch.bool)
    expect_mask[0, 1:3, 2:4] = True          # centre (2, 3), side 2: rows 1-2, columns 2-3
    expect_mask[1, 0:1, 0:1] = True          # centre (0, 0): clipped to the corner pixel
    expect_mask[2, 4:6, 5:7] = True          # centre (5, 6): rows 4-5, columns 5-6
    for b in range(3):
        m = expect_mask[b]
        torch.testing.assert_close(out[b][:, ~m], x[b][:, ~m])
        torch.testing.assert_close(out[b][:, m], means[b][:, None].expand(3, int(m.sum())))
    odd = cutout_features(x, torch.tensor([3, 3, 3]), torch.tensor([3, 3, 3]), side=3)
    assert ((odd != x).any(1)[0] == torch.nn.functional.pad(torch.ones(3, 3), (2, 2, 2, 1)).bool()).all()
    with pytest.raises(ValueError, match="side >= 1"):
        cutout_features(x, torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), side=0)
    with pytest.raises(ValueError, match="one centre per sample"):
        cutout_features(x, torch.zeros(2, dtype=torch.long), torch.zeros(3, dtype=torch.long), side=2)


def test_cutout_augmentation_is_used_and_checked():
    """model.cutout_px changes the trained network, 0 leaves it bit-identical, and it is refused at or above the
    input size or for the scikit-learn recognizers."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    mask = torch.ones(1, len(fs), dtype=torch.bool)

    def weights(**kw):
        m, _ = train_models(RecognizerConfig(epochs=2, batch_size=8, shift_px=1, **kw), fs.features, fs.labels,
                            mask, seed=3, progress=False)
        return torch.cat([v.flatten().float() for v in m.state_dict().values()])

    plain = weights()
    assert torch.equal(plain, weights(cutout_px=0))
    assert not torch.equal(plain, weights(cutout_px=8))
    with pytest.raises(ValueError, match=r"model.cutout_px must lie in 0..27 pixels"):
        RecognizerConfig(cutout_px=28)
    with pytest.raises(ValueError, match=r"model.cutout_px must lie in 0..111 pixels"):
        RecognizerConfig(cutout_px=-1, input_size=112)
    with pytest.raises(ValueError, match="model.cutout_px=8 applies to the networks"):
        RecognizerConfig(name="random_forest", cutout_px=8)


@pytest.mark.parametrize("extra", [{}, {"average_last": 2, "eval_every": 1, "mixup_alpha": 0.4, "shift_px": 2},
                                   {"domain_bn": True, "shift_px": 1},
                                   {"shift_px": 1, "rotate_deg": 5.0, "scale_jitter": 0.05},
                                   {"label_smoothing": 0.1, "ema_decay": 0.9},
                                   {"shift_px": 1, "cutout_px": 8}])
def test_held_out_samples_do_not_influence_training(extra):
    """Changing samples that are masked out of model g's training leaves model g bit-identical
    (also for snapshot averaging, mixup, random shifts and per-dataset batch-norm statistics)."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    x, y = fs.features, fs.labels
    mask = torch.ones(2, len(y), dtype=torch.bool)
    held = torch.arange(len(y)) < 6
    mask[0, held] = False
    cfg = RecognizerConfig(epochs=3, batch_size=8, hflip=True, **extra)
    dom = {"domains": torch.arange(len(y)) % 3} if cfg.domain_bn else {}   # the held-out rows span all 3
    m1, _ = train_models(cfg, x, y, mask, seed=1, progress=False, **dom)
    x2 = x.clone()
    x2[held] = torch.rand_like(x2[held])
    y2 = y.clone()
    y2[held] = (y2[held] + 1) % 3
    m2, _ = train_models(cfg, x2, y2, mask, seed=1, progress=False, **dom)
    assert_only_second_copy_changed(m1, m2)


def test_label_smoothing_cross_entropy_known_values():
    """_weighted_ce with label smoothing ε is (1 - ε) · CE(one-hot) + ε · mean_k(-log p_k), by hand."""
    logits = torch.tensor([[[2.0, 0.0, -1.0]], [[0.5, 0.5, 3.0]]])            # (B=2, G=1, K=3)
    y = torch.tensor([0, 2])
    w = torch.tensor([[1.0], [3.0]])
    logp = torch.log_softmax(logits[:, 0], -1)
    for eps in (0.0, 0.1, 0.5):
        rows = -(1 - eps) * logp[torch.arange(2), y] - eps * logp.mean(-1)
        want = (rows * w[:, 0]).sum() / w.sum()
        torch.testing.assert_close(_weighted_ce(logits, y, w, eps), want[None])


def test_label_smoothing_and_weight_average_in_training():
    """model.label_smoothing and model.ema_decay at 0 leave training bit-identical; label smoothing changes the
    network; with ema_decay d the returned weights (and batch-norm buffers) are the moving average of the weights
    after each step (2 steps: d · w1 + (1 - d) · w2, the average starting at the first step's weights); both are
    refused out of range and for the scikit-learn recognizers."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    mask = torch.ones(2, len(fs), dtype=torch.bool)
    mask[1, :4] = False

    def state(**kw):
        cfg = RecognizerConfig(batch_size=0, lr_schedule="constant", lr=0.05, **kw)   # one step per epoch
        m, _ = train_models(cfg, fs.features, fs.labels, mask, seed=3, progress=False)
        return {k: v.float() for k, v in m.state_dict().items() if v.is_floating_point()}

    w2 = state(epochs=2)
    for k, v in state(epochs=2, label_smoothing=0.0, ema_decay=0.0).items():
        assert torch.equal(v, w2[k]), k
    assert any(not torch.equal(v, w2[k]) for k, v in state(epochs=2, label_smoothing=0.2).items())
    w1 = state(epochs=1)
    d = 0.75
    averaged = state(epochs=2, ema_decay=d)
    assert any(not torch.equal(w1[k], w2[k]) for k in w2)
    for k, v in averaged.items():
        torch.testing.assert_close(v, d * w1[k] + (1 - d) * w2[k], rtol=1e-5, atol=1e-6, msg=k)
    with pytest.raises(ValueError, match=r"model.label_smoothing must lie in \[0, 1\)"):
        RecognizerConfig(label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"model.ema_decay must lie in \[0, 1\)"):
        RecognizerConfig(ema_decay=float("nan"))
    with pytest.raises(ValueError, match="model.label_smoothing=0.1, model.ema_decay=0.9 apply to the networks"):
        RecognizerConfig(name="random_forest", label_smoothing=0.1, ema_decay=0.9)


def test_fit_recognizer_learns_toy_task_with_inner_validation():
    fs = make_toy_features(n_subjects_per_dataset=3, clips_per_class=3, seed=1)
    subj = fs.samples["subject"].to_numpy()
    test = subj == "samm/s03"
    val = subj == "casme2/s03"
    train = ~(test | val)
    cfg = RecognizerConfig(epochs=25, batch_size=32, lr=3e-3, eval_every=5, seeds=2)
    predict = fit_recognizer(cfg, fs.features[train], fs.labels[train], x_val=fs.features[val],
                             y_val=fs.labels[val], seed=0, progress=False)
    p = predict(fs.features[test])
    assert p.shape == (test.sum(), 3)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    acc = (p.argmax(1) == fs.labels[test].numpy()).mean()
    assert acc >= 0.75


def test_fit_recognizer_sample_weight():
    """Per-row loss weights (the main job's gan.synthetic_weight): all ones is bit-identical to no weights, other
    weights change the network, a weight of 3 is about a row present three times for the logistic regression, and
    a wrong length or a negative weight is refused."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=3, seed=2)
    x, y = fs.features, fs.labels
    n = len(x)
    cfg = RecognizerConfig(epochs=3, batch_size=16)
    base = fit_recognizer(cfg, x, y, seed=0, progress=False)(x)
    ones = fit_recognizer(cfg, x, y, seed=0, progress=False, sample_weight=torch.ones(n))(x)
    np.testing.assert_array_equal(base, ones)
    w = torch.ones(n)
    w[n // 2:] = 0.25
    assert np.abs(fit_recognizer(cfg, x, y, seed=0, progress=False, sample_weight=w)(x) - base).max() > 1e-4
    # logistic regression on noise (no easy fit): rows weighted 3 ≈ rows present three times (not exactly: the
    # scaler before it sees the rows unweighted); unweighted, the probabilities differ by 0.2
    g = torch.Generator().manual_seed(0)
    xr, yr = torch.rand(60, 3, 8, 8, generator=g), torch.randint(0, 3, (60,), generator=g)
    lr = RecognizerConfig(name="logreg", hflip=False, tta_hflip=False, class_weighting=False, input_size=8,
                          logreg_C=0.01, logreg_max_iter=5000)
    w3 = torch.ones(60)
    w3[:10] = 3.0
    weighted = fit_recognizer(lr, xr, yr, sample_weight=w3)(xr)
    tripled = fit_recognizer(lr, torch.cat([xr, xr[:10], xr[:10]]), torch.cat([yr, yr[:10], yr[:10]]))(xr)
    plain = fit_recognizer(lr, xr, yr)(xr)
    assert np.abs(weighted - tripled).max() < 0.03 < np.abs(plain - tripled).max()
    with pytest.raises(ValueError, match="one weight per training row"):
        fit_recognizer(cfg, x, y, progress=False, sample_weight=torch.ones(n - 1))
    with pytest.raises(ValueError, match="non-negative"):
        fit_recognizer(cfg, x, y, progress=False, sample_weight=-w)


def test_logreg_fit_recognizer():
    fs = make_toy_features(n_subjects_per_dataset=2)
    subj = fs.samples["subject"].to_numpy()
    test = subj == "samm/s02"
    predict = fit_recognizer(RecognizerConfig(name="logreg"), fs.features[~test], fs.labels[~test])
    p = predict(fs.features[test])
    assert p.shape == (test.sum(), 3) and (p.argmax(1) == fs.labels[test].numpy()).mean() >= 0.75


def test_scikit_learn_recognizers_fit_and_predict_on_one_blas_thread(shared_data, monkeypatch):
    """Logistic regression fits and predicts with BLAS on one thread whatever the caller's limit (with two threads
    its lbfgs took 5x longer per fold on a 2-core Xeon and its probabilities moved by up to 0.04), so that a fold
    scores the same with threads=1 and threads=2."""
    from threadpoolctl import threadpool_info, threadpool_limits
    from sklearn.linear_model import LogisticRegression

    from icegan.data.features import load_megc2019_features
    from icegan.protocol import make_folds
    from icegan.recognition import fit_predict_sklearn
    seen = []
    fit, proba = LogisticRegression.fit, LogisticRegression.predict_proba

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    def spy_fit(self, *a, **k):
        seen.append(("fit", blas_threads()))
        return fit(self, *a, **k)

    def spy_proba(self, *a, **k):
        seen.append(("predict", blas_threads()))
        return proba(self, *a, **k)
    monkeypatch.setattr(LogisticRegression, "fit", spy_fit)
    monkeypatch.setattr(LogisticRegression, "predict_proba", spy_proba)
    fs = load_megc2019_features()
    fold = make_folds(fs.samples["subject"].tolist(), "CDE")[0]
    cfg = RecognizerConfig(name="logreg", hflip=False, tta_hflip=False)
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_threads() == {2}
        p2 = fit_predict_sklearn(cfg, fs.features, fs.labels.long(), fold)
        assert blas_threads() == {2}                                   # the caller's limit is restored
    assert seen and all(threads == {1} for _, threads in seen), seen
    with threadpool_limits(limits=1, user_api="blas"):
        p1 = fit_predict_sklearn(cfg, fs.features, fs.labels.long(), fold)
    np.testing.assert_array_equal(p1, p2)


def test_random_forest_fit_recognizer_learns_and_is_seeded():
    """The random forest learns the toy task; its random state is the seed (same seed: identical probabilities,
    another seed: other probabilities)."""
    fs = make_toy_features(n_subjects_per_dataset=2)
    test = fs.samples["subject"].to_numpy() == "samm/s02"
    cfg = RecognizerConfig(name="random_forest", forest_trees=30)
    p0, p0b, p1 = (fit_recognizer(cfg, fs.features[~test], fs.labels[~test], seed=s)(fs.features[test])
                   for s in (0, 0, 1))
    assert p0.shape == (test.sum(), 3) and (p0.argmax(1) == fs.labels[test].numpy()).mean() >= 0.75
    np.testing.assert_allclose(p0.sum(1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(p0, p0b)
    assert not np.array_equal(p0, p1)


def test_gradient_boosting_fit_recognizer_learns_is_deterministic_and_takes_sample_weights():
    """Gradient-boosted trees learn the toy task, with scikit-learn's defaults and no early stopping (the estimator
    is checked), give the same probabilities for any seed (nothing is drawn), and per-row weights reach the fit
    (balanced class weights then computed on the weighted counts)."""
    from icegan.recognition import sklearn_classifier
    fs = make_toy_features(n_subjects_per_dataset=2)
    test = fs.samples["subject"].to_numpy() == "samm/s02"
    cfg = RecognizerConfig(name="gradient_boosting")
    clf = sklearn_classifier(cfg, 0)
    assert type(clf).__name__ == "HistGradientBoostingClassifier"
    assert (clf.early_stopping, clf.max_iter, clf.class_weight) == (False, 100, "balanced")
    xtr, ytr = fs.features[~test], fs.labels[~test]
    p0, p1 = (fit_recognizer(cfg, xtr, ytr, seed=s)(fs.features[test]) for s in (0, 7))
    assert p0.shape == (test.sum(), 3) and (p0.argmax(1) == fs.labels[test].numpy()).mean() >= 0.75
    np.testing.assert_allclose(p0.sum(1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(p0, p1)
    w = torch.ones(len(ytr))
    np.testing.assert_allclose(fit_recognizer(cfg, xtr, ytr, sample_weight=w)(fs.features[test]), p0, atol=1e-9)
    w[::2] = 0.05                       # every other row nearly dropped: another fit
    assert np.abs(fit_recognizer(cfg, xtr, ytr, sample_weight=w)(fs.features[test]) - p0).max() > 1e-3


def test_fit_predict_folds_random_forest_equals_scikit_learn_on_the_fold():
    """fit_predict_folds with model.name=random_forest gives, fold by fold, the probabilities of a
    RandomForestClassifier fitted directly on that fold's training rows (balanced weights, random_state = seed);
    the held-out subject's rows never reach the fit."""
    from sklearn.ensemble import RandomForestClassifier

    from icegan.protocol import make_folds
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")[:3]
    cfg = RecognizerConfig(name="random_forest", forest_trees=25, hflip=False, tta_hflip=False)
    out = fit_predict_folds(cfg, fs.features, fs.labels, subjects, folds, seed=7, progress=False)
    flat, y = fs.features.reshape(len(fs), -1).numpy(), fs.labels.numpy()
    for f, p in zip(folds, out):
        ref = RandomForestClassifier(25, class_weight="balanced", random_state=7).fit(flat[f.train_idx], y[f.train_idx])
        np.testing.assert_array_equal(p, ref.predict_proba(flat[f.test_idx]))
        # scrambling the held-out rows changes nothing
        x2 = fs.features.clone()
        x2[f.test_idx] = torch.rand_like(x2[f.test_idx])
        y2 = fs.labels.clone()
        y2[f.test_idx] = (y2[f.test_idx] + 1) % 3
        again = fit_predict_sklearn(cfg, x2, y2, f, seed=7)
        np.testing.assert_array_equal(again, ref.predict_proba(x2.reshape(len(fs), -1).numpy()[f.test_idx]))


@pytest.mark.parametrize("name", ["random_forest", "logreg", "gradient_boosting"])
def test_sklearn_recognizers_fit_mirrors_and_average_mirror_probabilities(name):
    """hflip: the fit sees the training clips followed by their mirrors (u -> 1 - u, maps flipped); tta_hflip: the
    probabilities are the mean over the clip and its mirror, so a clip and its mirror get identical scores."""
    from sklearn.base import clone

    from icegan.protocol import make_folds
    from icegan.recognition import sklearn_classifier
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    fold = make_folds(fs.samples["subject"].tolist(), "CDE")[1]
    cfg = RecognizerConfig(name=name, forest_trees=15, hflip=True, tta_hflip=True)
    got = fit_predict_sklearn(cfg, fs.features, fs.labels, fold, seed=4)
    tr, te = fold.train_idx, fold.test_idx
    xt = torch.cat([fs.features[tr], hflip_features(fs.features[tr])]).reshape(2 * len(tr), -1).numpy()
    ref = clone(sklearn_classifier(cfg, 4)).fit(xt, np.concatenate([fs.labels[tr].numpy()] * 2))
    flat = lambda t: t.reshape(len(t), -1).numpy()
    want = (ref.predict_proba(flat(fs.features[te])) + ref.predict_proba(flat(hflip_features(fs.features[te])))) / 2
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    mirrored = fs.features.clone()
    mirrored[te] = hflip_features(fs.features[te])
    np.testing.assert_allclose(fit_predict_sklearn(cfg, mirrored, fs.labels, fold, seed=4), got, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kw,msg", [({"name": "random_forest", "forest_trees": 0}, "model.forest_trees"),
                                    ({"name": "random_forest", "shift_px": 1, "mixup_alpha": 0.2},
                                     "model.shift_px=1, model.mixup_alpha=0.2 apply to the networks"),
                                    ({"name": "logreg", "inner_val_fraction": 0.2}, "model.inner_val_fraction"),
                                    ({"name": "random_forest", "seeds": 3}, "model.seeds=3"),
                                    ({"name": "gradient_boosting", "shift_px": 1}, "model.shift_px=1 applies"),
                                    ({"name": "logreg", "seeds": 2}, "model.seeds=2")])
def test_sklearn_recognizer_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        RecognizerConfig(**kw)


@pytest.mark.parametrize("name,kw", [("ststnet", {}), ("offtanet", {"input_size": 32, "stem_stride": 2}),
                                     ("offtanet", {"input_size": 28, "stem_stride": 1})])
def test_grouped_training_step_runs_for_every_recognizer(name, kw):
    """One epoch through train_models (channels-last CPU batches, masked batch norm, mixup)."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    from icegan.recognition import resize_features
    cfg = RecognizerConfig(name=name, epochs=1, batch_size=12, mixup_alpha=0.4, **kw)
    x = resize_features(fs.features, cfg.input_size)
    mask = torch.ones(2, len(fs), dtype=torch.bool)
    mask[0, :6] = False
    model, rec = train_models(cfg, x, fs.labels, mask, seed=0, record_every=1, progress=False)
    assert len(rec) == 1 and rec[0].shape == (len(fs), 2, 3)
    torch.testing.assert_close(rec[0].sum(-1), torch.ones(len(fs), 2))


def test_conv_chunk_size_rule_and_default_chunks():
    """The chunk rule: about 1 MB of conv output per chunk on a CPU (1 sample for the 68 grouped STSTNet copies, 20 for
    one copy at 28 x 28, never 0, never more than the batch), the whole batch on an accelerator; the default chunking
    gives the values of explicit chunks."""
    from icegan.models.recognizers import CHUNK_BYTES, conv_chunk_size
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert conv_chunk_size(128, 68 * 16, (28, 28), 4, cpu) == 1
    assert conv_chunk_size(128, 16, (28, 28), 4, cpu) == CHUNK_BYTES // (16 * 28 * 28 * 4) == 20
    assert conv_chunk_size(5, 16, (28, 28), 4, cpu) == 5 and conv_chunk_size(128, 4096, (64, 64), 4, cpu) == 1
    assert conv_chunk_size(128, 68 * 16, (28, 28), 4, gpu) == 128
    torch.manual_seed(0)
    x, w, b = torch.rand(23, 3, 28, 28), torch.randn(16, 3, 3, 3), torch.randn(16)
    assert torch.equal(conv_maxpool(x, w, b), conv_maxpool(x, w, b, chunk=20))
    torch.testing.assert_close(conv_maxpool(x, w, b), conv_maxpool(x, w, b, chunk=1), rtol=1e-5, atol=1e-5)
    assert conv_maxpool(x[:0], w, b).shape == (0, 16, 10, 10)          # no samples: empty, as the plain expression


def test_conv_maxpool_input_gradient_under_autocast():
    """The main job's joint loss backpropagates through the critic's conv-pool under the GAN's autocast: the pooled
    output is bf16 while the input and weight are float32, and the input-gradient path's convolution backward failed
    on that mix (on CUDA and on CPU). The gradients now come back in float32, finite, close to float32's."""
    torch.manual_seed(0)
    x = torch.rand(5, 3, 28, 28, requires_grad=True)
    w, b = torch.randn(16, 3, 3, 3, requires_grad=True), torch.randn(16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv_maxpool(x, w, b)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == torch.float32
    assert all(torch.isfinite(t.grad).all() for t in (x, w, b))
    ref = torch.autograd.grad(conv_maxpool(x, w, b).sum(), [w, b])
    torch.testing.assert_close(b.grad, ref[1])                          # every pooled output counts once
    assert (w.grad - ref[0]).abs().max() < 0.05 * ref[0].abs().max()   # bf16 conv: a few argmax positions move


def test_conv_maxpool_equals_unchunked_conv_and_pool():
    """Chunked conv + max pool: same values and the same weight, bias and input gradients."""
    torch.manual_seed(0)
    x = torch.rand(11, 3, 28, 28, requires_grad=True)
    w = torch.randn(20, 3, 3, 3, requires_grad=True)
    b = torch.randn(20, requires_grad=True)
    ref = torch.nn.functional.max_pool2d(torch.nn.functional.conv2d(x, w, b, padding=1), 3, 3, 1)
    out = conv_maxpool(x, w, b, padding=1, pool=3, pool_pad=1, chunk=4)
    assert out.shape == (11, 20, 10, 10)
    # float32 sums in another order (oneDNN picks per-shape algorithms: 3e-6 apart on an AVX2-only AMD EPYC);
    # a wrong window or chunk boundary is off by O(1)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * g).sum(), [x, w, b])
    g_out = torch.autograd.grad((out * g).sum(), [x, w, b])
    for a, r in zip(g_out, g_ref):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding,size,pool_pad", [(1, 28, 1), (2, 28, 1), (1, 17, 0)])
def test_conv_maxpool_weight_gradient_from_argmax(padding, size, pool_pad):
    """Input without gradient (the LOSO case): the weight and bias gradients come from the argmax positions alone
    (embedding-bag path), and must equal autograd through the dense conv + pool, with and without padding."""
    torch.manual_seed(1)
    x = torch.rand(9, 3, size, size)
    w = torch.randn(24, 3, 3, 3, requires_grad=True)
    b = torch.randn(24, requires_grad=True)
    ref = torch.nn.functional.max_pool2d(torch.nn.functional.conv2d(x, w, b, padding=padding), 3, 3, pool_pad)
    out = conv_maxpool(x, w, b, padding=padding, pool=3, pool_pad=pool_pad, chunk=4)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * g).sum(), [w, b])
    g_out = torch.autograd.grad((out * g).sum(), [w, b])
    for a, r in zip(g_out, g_ref):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-4)
    assert g_out[0].abs().max() > 1.0            # a real gradient, not zeros compared with zeros


def test_fast_dropout_rate_scale_and_eval_identity():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = fast_dropout(x, 0.5, True)
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}
    assert abs(float((y == 0).float().mean()) - 0.5) < 0.01      # p = 128/256 exactly
    y = fast_dropout(x, 0.25, True)
    assert abs(float((y == 0).float().mean()) - 0.25) < 0.01 and abs(float(y.mean()) - 1.0) < 0.01
    assert fast_dropout(x, 0.5, False) is x and fast_dropout(x, 0.0, True) is x


@pytest.mark.parametrize("p", [0.5, 0.25, 77 / 256, 1 / 256])
def test_fast_dropout_mask_is_the_byte_draw_scaled(p):
    """For p on the 1/256 grid (the shipped and recorded 0.5 and 0.25 among them) the kept elements are
    x * 256 / (256 - 256 p), the dropped ones 0, exactly, with the keep mask of the byte draws (the value of the
    former torch.where(keep, scale, 0) expression, whatever the mask's arithmetic)."""
    x = torch.randn(3, 5, 7, 11)
    torch.manual_seed(3)
    y = fast_dropout(x, p, True)
    torch.manual_seed(3)
    thr = round(256 * p)
    raw = torch.randint(-2 ** 63, 2 ** 63 - 1, ((x.numel() + 7) // 8,), dtype=torch.int64)
    keep = raw.view(torch.uint8)[:x.numel()].view(x.shape) >= thr
    assert torch.equal(y, x * torch.where(keep, torch.tensor(256.0 / (256 - thr)), torch.tensor(0.0)))
    assert torch.equal(y[keep], x[keep] * (256.0 / (256 - thr))) and bool((y[~keep] == 0).all())
    assert 0 < int(keep.sum()) < x.numel()


@pytest.mark.parametrize("width", [1, 2])
def test_ststnet_fast_path_equals_grouped_input_path_in_training(width):
    """Shared input (chunked conv, fused batch norm) = per-copy input (grouped convs), train mode with a mask."""
    torch.manual_seed(0)
    G = 3
    m = STSTNet(n_models=G, dropout=0.0, width=width).train()
    x = torch.rand(9, 3, 28, 28)
    mask = (torch.rand(9, G) > 0.3).float()
    y_fast = m(x, sample_mask=mask)
    rm_fast = [bn.running_mean.clone() for bn in m.bns]
    m2 = STSTNet(n_models=G, dropout=0.0, width=width).train()
    m2.load_state_dict({k: v for k, v in m.state_dict().items() if "running" not in k and "tracked" not in k},
                       strict=False)
    y_grouped = m2(x[:, None].expand(-1, G, -1, -1, -1).contiguous(), sample_mask=mask)
    torch.testing.assert_close(y_fast, y_grouped, rtol=1e-4, atol=1e-5)
    for a, b in zip(rm_fast, (bn.running_mean for bn in m2.bns)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_ststnet_width_multiplies_stream_filters():
    """width=w gives 3w, 5w, 8w filters per stream; the parameter count follows by hand:
    convs 3·3·3·16w + 16w, batch norms 2·16w, fc 16w·5·5·3 + 3."""
    for w in (1, 2, 4):
        m = STSTNet(width=w)
        assert [cv.out_channels for cv in m.streams] == [3 * w, 5 * w, 8 * w]
        c = 16 * w
        assert sum(p.numel() for p in m.parameters()) == 27 * c + c + 2 * c + c * 25 * 3 + 3
        assert m(torch.rand(2, 3, 28, 28)).shape == (2, 3)
    with pytest.raises(ValueError, match="width"):
        STSTNet(width=0)
    with pytest.raises(ValueError, match="ststnet only"):
        RecognizerConfig(name="offtanet", width=2)
    with pytest.raises(ValueError, match="width must be"):
        RecognizerConfig(width=0)


def test_ststnet_fused_batchnorm_equals_masked_batchnorm_per_stream():
    """STSTNet._bn on the 16 concatenated stream channels = each stream's MaskedBatchNorm2d."""
    torch.manual_seed(0)
    G, B, P = 2, 7, 10
    net = STSTNet(n_models=G).train()
    for bn in net.bns:
        torch.nn.init.uniform_(bn.weight, 0.5, 1.5)
        torch.nn.init.uniform_(bn.bias, -0.5, 0.5)
    h = torch.rand(B, G, 16, P * P) * 3
    mask = (torch.rand(B, G) > 0.3).float()
    mask[0] = 1.0
    out = net._bn(h, mask)
    off = 0
    for bn, c in zip(net.bns, STSTNet.STREAMS):
        ref_bn = MaskedBatchNorm2d(G, c).train()
        ref_bn.load_state_dict({k: v for k, v in bn.state_dict().items()})
        ref_bn.running_mean.zero_()
        ref_bn.running_var.fill_(1.0)
        ref = ref_bn(h[:, :, off:off + c].reshape(B, G * c, P, P), mask).reshape(B, G, c, P * P)
        torch.testing.assert_close(out[:, :, off:off + c], ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(bn.running_mean, ref_bn.running_mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn.running_var, ref_bn.running_var, rtol=1e-4, atol=1e-5)
        off += c


def test_snapshot_average_members_and_probabilities():
    """average_last keeps the weights of epochs E, E - eval_every, ... inside the last average_last
    epochs, and predicts the mean of their class probabilities."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    mask = torch.ones(2, len(fs), dtype=torch.bool)
    cfg = RecognizerConfig(epochs=5, batch_size=12, eval_every=2, average_last=4)
    model, _ = train_models(cfg, fs.features, fs.labels, mask, seed=0, progress=False)
    assert isinstance(model, SnapshotAverage) and len(model.models) == 2      # epochs 3 and 5
    p = predict_models(model, fs.features, tta_hflip=False)
    ref = torch.stack([predict_models(m, fs.features, tta_hflip=False) for m in model.models]).mean(0)
    torch.testing.assert_close(p, ref, rtol=1e-5, atol=1e-6)
    single, _ = train_models(RecognizerConfig(epochs=5, batch_size=12), fs.features, fs.labels, mask, seed=0,
                             progress=False)
    assert isinstance(single, STSTNet)
    with pytest.raises(ValueError, match="average_last"):
        train_models(cfg, fs.features, fs.labels, mask, val_mask=~mask, progress=False)


class _Corner(torch.nn.Module):
    """A model that reads one pixel: logits (B, 3) = [u at (0, 0), 0, 0]."""

    def forward(self, x):
        z = torch.zeros(x.shape[0], 3)
        z[:, 0] = x[:, 0, 0, 0]
        return z


def test_predict_models_shift_tta_averages_the_nine_views():
    """tta_shift_px=1: the probabilities are the mean over the 9 translated views (borders replicated), computed by hand
    for a model that reads one pixel; 0 keeps the plain prediction; bad values are refused."""
    from icegan.recognition import predict_models

    x = torch.zeros(1, 3, 5, 5)
    x[0, 0, :2, :2] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    model = _Corner()
    plain = predict_models(model, x, tta_hflip=False)
    torch.testing.assert_close(plain[:, 0], torch.softmax(torch.tensor([[1.0, 0, 0]]), -1))
    # a shift by (dy, dx) shows x[clamp(-dy), clamp(-dx)] at the corner: rows {1, 0, 0} x cols {1, 0, 0}
    corner = [x[0, 0, max(0, -dy), max(0, -dx)] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    want = torch.stack([torch.softmax(torch.stack([c, torch.tensor(0.0), torch.tensor(0.0)]), -1) for c in corner]).mean(0)
    got = predict_models(model, x, tta_hflip=False, tta_shift_px=1)
    torch.testing.assert_close(got[0, 0], want)
    assert not torch.allclose(got, plain)
    with pytest.raises(ValueError, match="tta_shift_px"):
        predict_models(model, x, tta_shift_px=-1)
    with pytest.raises(ValueError, match="tta_shift_px"):
        predict_models(model, x, tta_shift_px=5)


def test_predict_models_hflip_tta_averages_the_mirrored_view():
    """tta_hflip: the mean of the plain view and the mirror, in which the corner shows 1 − u of the last column: with
    u = 1 at (0, 0) and 0.25 at (0, 4), the views' corner logits are 1 and 0.75."""
    x = torch.zeros(1, 3, 5, 5)
    x[0, 0, 0, 0], x[0, 0, 0, 4] = 1.0, 0.25
    want = (torch.softmax(torch.tensor([1.0, 0, 0]), -1) + torch.softmax(torch.tensor([0.75, 0, 0]), -1)) / 2
    torch.testing.assert_close(predict_models(_Corner(), x, tta_hflip=True)[0, 0], want)


def test_training_shifts_draw_every_offset_from_minus_k_to_k(monkeypatch):
    """model.shift_px=1 moves each training map by an offset drawn from {−1, 0, 1} in each direction, all three
    occurring."""
    import icegan.recognition as recognition
    seen = set()
    shift = recognition.shift_features

    def spy(x, dy, dx):
        seen.update(dy.tolist())
        seen.update(dx.tolist())
        return shift(x, dy, dx)
    monkeypatch.setattr(recognition, "shift_features", spy)
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    mask = torch.ones(1, len(fs.labels), dtype=torch.bool)
    train_models(RecognizerConfig(epochs=4, batch_size=8, shift_px=1), fs.features, fs.labels, mask, seed=0,
                 progress=False)
    assert seen == {-1, 0, 1}


def test_ststnet_domain_bn_with_one_domain_equals_plain_batchnorm():
    """domains=1 (every sample in domain 0) computes what the plain fused batch norm computes, in training
    (outputs and running statistics) and in eval."""
    torch.manual_seed(0)
    G, B, P = 2, 7, 10
    plain, dsbn = STSTNet(n_models=G).train(), STSTNet(n_models=G, domains=1).train()
    for bn in plain.bns:
        torch.nn.init.uniform_(bn.weight, 0.5, 1.5)
        torch.nn.init.uniform_(bn.bias, -0.5, 0.5)
    dsbn.load_state_dict(plain.state_dict(), strict=False)
    h = torch.rand(B, G, 16, P * P) * 3
    mask = (torch.rand(B, G) > 0.3).float()
    mask[0] = 1.0
    dom = torch.zeros(B, dtype=torch.long)
    torch.testing.assert_close(dsbn._domain_bn(h, mask, dom), plain._bn(h, mask), rtol=1e-4, atol=1e-4)
    running = torch.cat([bn.running_mean.reshape(G, c) for bn, c in zip(plain.bns, STSTNet.STREAMS)], 1)
    torch.testing.assert_close(dsbn.domain_running_mean[:, 0], running, rtol=1e-5, atol=1e-6)
    plain.eval(), dsbn.eval()
    torch.testing.assert_close(dsbn._domain_bn(h, mask, dom), plain._bn(h, mask), rtol=1e-4, atol=1e-4)


def test_ststnet_domain_bn_statistics_by_hand():
    """Each sample is normalised with the mean and variance of its own domain over the copy's training
    samples; running statistics move only where a (copy, domain) pair had samples; eval uses them."""
    torch.manual_seed(1)
    G, B, C, PP, D = 2, 9, 16, 4, 3
    net = STSTNet(n_models=G, domains=D).train()
    for bn in net.bns:
        torch.nn.init.uniform_(bn.weight, 0.5, 1.5)
        torch.nn.init.uniform_(bn.bias, -0.5, 0.5)
    w, b = net._stream_cat("weight"), net._stream_cat("bias")
    h = torch.randn(B, G, C, PP) * 2 + torch.arange(B, dtype=torch.float32)[:, None, None, None]
    dom = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    mask = torch.ones(B, G)
    mask[6:, 1] = 0.0          # copy 1 never sees domain 2
    mask[0, 0] = 0.0           # copy 0 does not train on sample 0
    out = net._domain_bn(h, mask, dom)
    eps = net.bns[0].eps
    for g in range(G):
        for d in range(D):
            rows = [i for i in range(B) if dom[i] == d and mask[i, g] > 0]
            if not rows:
                assert torch.equal(net.domain_running_mean[g, d], torch.zeros(C))   # untouched
                assert torch.equal(net.domain_running_var[g, d], torch.ones(C))
                continue
            vals = h[rows, g].permute(1, 0, 2).reshape(C, -1)          # (C, n * PP)
            mean, var = vals.mean(1), vals.var(1, unbiased=False)
            for i in (i for i in range(B) if dom[i] == d):
                ref = (h[i, g] - mean[:, None]) / torch.sqrt(var[:, None] + eps) * w[g][:, None] + b[g][:, None]
                torch.testing.assert_close(out[i, g], ref, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(net.domain_running_mean[g, d], 0.1 * mean, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(net.domain_running_var[g, d], 0.9 + 0.1 * vals.var(1, unbiased=True),
                                       rtol=1e-4, atol=1e-5)
    net.eval()
    net.domain_running_mean.normal_()
    net.domain_running_var.uniform_(0.5, 2.0)
    out = net._domain_bn(h, None, dom)
    m, v = net.domain_running_mean, net.domain_running_var
    for i in range(B):
        ref = (h[i] - m[:, dom[i], :, None]) / torch.sqrt(v[:, dom[i], :, None] + eps) * w[:, :, None] + b[:, :, None]
        torch.testing.assert_close(out[i], ref, rtol=1e-4, atol=1e-4)


def test_domain_bn_errors():
    net = STSTNet(domains=2)
    x = torch.rand(3, 3, 28, 28)
    assert net(x, domain=torch.tensor([0, 1, 1])).shape == (3, 3)
    with pytest.raises(ValueError, match="pass domain"):
        net(x)
    with pytest.raises(ValueError, match=r"indices in 0..1"):
        net(x, domain=torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="domains must be"):
        STSTNet(domains=-1)
    with pytest.raises(ValueError, match="ststnet only"):
        RecognizerConfig(name="offtanet", domain_bn=True)
    with pytest.raises(ValueError, match="mixup_alpha"):
        RecognizerConfig(domain_bn=True, mixup_alpha=0.2)
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1)
    cfg = RecognizerConfig(epochs=1, domain_bn=True)
    with pytest.raises(ValueError, match="dataset index of every sample"):
        train_models(cfg, fs.features, fs.labels, torch.ones(1, len(fs.labels), dtype=torch.bool), progress=False)
    with pytest.raises(ValueError, match="icegan loso"):
        fit_recognizer(cfg, fs.features, fs.labels)


def test_fit_predict_folds_domain_bn_uses_the_subjects_datasets():
    """domain_bn takes each clip's dataset from its subject prefix: with one prefix for all clips it trains
    what plain batch norm trains; with the toy composite's two datasets (one with weaker maps) the
    predictions differ."""
    from icegan.protocol import make_folds
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    subjects = fs.samples["subject"].tolist()
    assert len({s.split("/")[0] for s in subjects}) == 2
    folds = make_folds(subjects, "CDE")[:2]
    base = dict(epochs=6, batch_size=16, lr=0.01)
    x = fs.features.clone()
    second = torch.tensor([s.startswith("samm/") for s in subjects])
    x[second] = 0.5 + 0.2 * (x[second] - 0.5)      # a dataset with weaker flow maps (a domain shift)

    def run(cfg, subj):
        return fit_predict_folds(cfg, x, fs.labels, subj, folds, progress=False)

    plain = run(RecognizerConfig(**base), subjects)
    with_d = run(RecognizerConfig(domain_bn=True, **base), subjects)
    one_prefix = run(RecognizerConfig(domain_bn=True, **base), ["all/" + s.replace("/", "_") for s in subjects])
    for f, p, q, r in zip(folds, with_d, plain, one_prefix):
        assert p.shape == (len(f.test_idx), 3)
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
        # one prefix: the same training up to float summation order (amplified by Adam over 6 epochs; the
        # exact equality of the two batch norms is tested above); two datasets: a different model
        assert np.abs(r - q).max() < 0.02 < 0.1 < np.abs(p - q).max()


def test_batchnorm_copy_without_samples_keeps_running_statistics():
    """A copy with no sample in a training batch keeps its running mean and variance (they would decay towards 0
    and 0 otherwise), in MaskedBatchNorm2d and in STSTNet's fused stream batch norm; the other copy moves as
    ``nn.BatchNorm2d`` would on its own samples."""
    torch.manual_seed(0)
    x = torch.randn(5, 6, 4, 4) * 2 + 1
    mask = torch.tensor([[1, 0]] * 5, dtype=torch.float32)          # copy 1 has no sample in this batch
    bn = MaskedBatchNorm2d(2, 3).train()
    bn.running_mean.fill_(0.3)
    bn.running_var.fill_(0.9)
    bn(x, mask)
    torch.testing.assert_close(bn.running_mean[3:], torch.full((3,), 0.3))
    torch.testing.assert_close(bn.running_var[3:], torch.full((3,), 0.9))
    ref = torch.nn.BatchNorm2d(3).train()
    ref.running_mean.fill_(0.3)
    ref.running_var.fill_(0.9)
    ref(x[:, :3])
    torch.testing.assert_close(bn.running_mean[:3], ref.running_mean)
    torch.testing.assert_close(bn.running_var[:3], ref.running_var)

    G, P = 2, 6
    net = STSTNet(n_models=G).train()
    h = torch.rand(5, G, 16, P * P) * 3
    before = [(b.running_mean.clone(), b.running_var.clone()) for b in net.bns]
    net._bn(h, mask)
    for b, c, (m0, v0) in zip(net.bns, STSTNet.STREAMS, before):
        torch.testing.assert_close(b.running_mean.reshape(G, c)[1], m0.reshape(G, c)[1])
        torch.testing.assert_close(b.running_var.reshape(G, c)[1], v0.reshape(G, c)[1])
        assert not torch.equal(b.running_mean.reshape(G, c)[0], m0.reshape(G, c)[0])


def test_step_learning_copies_holds_the_idle_copies_exactly():
    """An idle copy keeps its weights and Adam moments through the step, also on the step that creates the moments;
    a learning copy moves exactly as plain AdamW moves it; a bad mask or a parameter that does not split is refused."""
    from icegan.recognition import step_learning_copies
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 3))             # G = 2 copies of two rows each
    ref = torch.nn.Parameter(w.detach().clone())
    opt = torch.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    opt_ref = torch.optim.AdamW([ref], lr=0.1, weight_decay=0.5)
    start = w.detach().clone()
    for step, idle in enumerate(([True, False], [True, False], [False, True])):
        g = torch.randn(4, 3)
        g[:2] = 0 if idle[0] else g[:2]
        g[2:] = 0 if idle[1] else g[2:]
        w.grad, ref.grad = g.clone(), g.clone()
        before, m_before = w.detach().clone(), opt.state[w].get("exp_avg", torch.zeros(4, 3)).clone()
        step_learning_copies(opt, 2, torch.tensor(idle))
        opt_ref.step()
        held = slice(0, 2) if idle[0] else slice(2, 4)
        moved = slice(2, 4) if idle[0] else slice(0, 2)
        assert torch.equal(w.detach()[held], before[held])
        assert torch.equal(opt.state[w]["exp_avg"][held], m_before[held])
        assert not torch.equal(w.detach()[moved], before[moved])
        if step < 2:        # copy 1 has learned on every step so far: it is plain AdamW's
            assert torch.equal(w.detach()[2:], ref.detach()[2:])
    assert not torch.equal(w.detach()[:2], start[:2])     # copy 0 learned on the third step
    with pytest.raises(ValueError, match=r"shaped \(2,\)"):
        step_learning_copies(opt, 2, torch.tensor([True]))
    odd = torch.nn.Parameter(torch.zeros(3))
    odd.grad = torch.ones(3)
    with pytest.raises(ValueError, match="split into its 2 copies"):
        step_learning_copies(torch.optim.AdamW([odd]), 2, torch.tensor([True, False]))


@pytest.mark.parametrize("mixup_alpha", [0.0, 0.4])
def test_a_copy_with_no_row_in_a_batch_takes_no_step(mixup_alpha):
    """Grouped training: copy 0 trains on the first row of the batch order only, copy 1 on all rows (batches of one,
    one epoch, constant learning rate, weight decay on). Copy 0 sits out every batch after its first, so it must end
    exactly where one step on that row takes it, as in a run where both copies train on that row alone. Before the
    idle copies were held, AdamW's weight decay and momentum kept moving copy 0 on every later batch. Under mixup
    (a batch of one is mixed with itself) the same holds, through the per-step pair check."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    n = len(fs)
    seed = 4
    first = int(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[0])   # train_models' batch order
    cfg = RecognizerConfig(epochs=1, batch_size=1, lr_schedule="constant", weight_decay=0.1, dropout=0.0,
                           hflip=False, tta_hflip=False, mixup_alpha=mixup_alpha)

    def copy0(mask_copy1):
        mask = torch.zeros(2, n, dtype=torch.bool)
        mask[0, first] = True
        mask[1] = mask_copy1
        m, _ = train_models(cfg, fs.features, fs.labels, mask, seed=seed, progress=False)
        return {k: (v[: v.shape[0] // 2] if v.dim() else v) for k, v in m.state_dict().items()
                if "running" in k or v.dim()}

    alone = copy0(torch.nn.functional.one_hot(torch.tensor(first), n).bool())
    grouped = copy0(torch.ones(n, dtype=torch.bool))
    for k in alone:
        assert torch.allclose(alone[k], grouped[k], atol=1e-6), k


def test_inner_validation_takes_the_rounded_share_of_whole_subjects():
    """fraction 0.3 of 5 subjects rounds to 2 validation subjects (4 of 10 rows); inner_val_split keeps every training
    row on one side or the other (4 subjects × 3 rows at 0.25: 1 subject, 3 rows, to validation)."""
    from icegan.recognition import inner_val_split
    subj = np.repeat(["s1", "s2", "s3", "s4", "s5"], 2)
    tr, va = inner_val_masks(subj, np.ones((1, 10), bool), 0.3, np.random.default_rng(0))
    assert len(np.unique(subj[va[0]])) == 2 and va.sum() == 4 and tr.sum() == 6
    subj = np.repeat(["a", "b", "c", "d"], 3)
    tr, va = inner_val_split(subj, np.arange(12), 0.25, seed=0)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(12))
    assert len(va) == 3 and len(tr) == 9


def test_mixup_weighs_each_label_by_its_images_share(monkeypatch):
    """With the mixing share fixed at λ = 0.9 (one full batch, one epoch, no class weights), the logged loss is the mean
    over rows of 0.9 · CE(own label) + 0.1 · CE(partner's label): each label weighs what its image contributes."""
    import icegan.recognition as recognition
    calls = []
    ce_rows = recognition._ce_rows

    def spy(logits, y, label_smoothing=0.0):
        out = ce_rows(logits, y, label_smoothing)
        calls.append(out.detach())
        return out
    monkeypatch.setattr(recognition, "_ce_rows", spy)
    monkeypatch.setattr(torch.distributions.Beta, "sample", lambda self, shape=(): torch.full(tuple(shape), 0.9))
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    mask = torch.ones(1, len(fs.labels), dtype=torch.bool)
    log = ScalarLog()
    cfg = RecognizerConfig(epochs=1, batch_size=0, mixup_alpha=0.4, class_weighting=False, hflip=False,
                           tta_hflip=False)
    train_models(cfg, fs.features, fs.labels, mask, seed=0, progress=False, writer=log)
    ce_a, ce_b = calls[0], calls[1]                       # the step's two cross-entropies: own and partner labels
    want = float((0.9 * ce_a + 0.1 * ce_b).mean())
    assert not torch.allclose(ce_a, ce_b)
    assert log.values["train/ststnet/loss"][0] == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("kw, msg", [
    ({"epochs": 0}, "model.epochs must be >= 1, got 0"),
    ({"epochs": -3}, "model.epochs must be >= 1, got -3"),
    ({"seeds": 0}, "model.seeds must be >= 1"),
    ({"name": "logreg", "seeds": -1}, "model.seeds must be >= 1"),
    ({"lr": float("nan")}, "model.lr must be a finite number > 0, got nan"),
    ({"lr": -1e-3}, "model.lr must be a finite number > 0"),
    ({"lr": 0.0}, "model.lr must be a finite number > 0"),
    ({"name": "logreg", "logreg_C": -1.0}, "model.logreg_C must be a finite number > 0"),
    ({"name": "logreg", "logreg_max_iter": 0}, "model.logreg_max_iter must be >= 1"),
    ({"dropout": 1.5}, r"model.dropout must lie in \[0, 1\)"),
    ({"dropout": -0.1}, r"model.dropout must lie in \[0, 1\)"),
    ({"weight_decay": -1e-4}, "model.weight_decay must be a finite number >= 0"),
    ({"weight_decay": float("inf")}, "model.weight_decay must be a finite number >= 0"),
    ({"batch_size": -1}, "model.batch_size must be >= 0"),
    ({"stem_stride": 0, "name": "offtanet"}, "model.stem_stride must be >= 1"),
    ({"eval_every": 0}, "model.eval_every must be >= 1"),
    ({"shift_px": -1}, "model.shift_px must be >= 0"),
    ({"tta_shift_px": -1}, "model.tta_shift_px must be >= 0"),
    ({"average_last": -1}, "model.average_last must be >= 0"),
    ({"folds_per_group": -1}, "model.folds_per_group must be >= 0"),
    ({"mixup_alpha": -0.2}, "model.mixup_alpha must be a finite number >= 0"),
    ({"inner_val_fraction": 1.0}, r"model.inner_val_fraction must lie in \[0, 1\)"),
])
def test_a_nonsensical_numeric_setting_is_refused_naming_its_key(kw, msg):
    """A recognizer setting outside its meaningful range (0 epochs or seeds, a NaN/negative lr, C <= 0, dropout >= 1,
    ...) is refused by the config, naming the key, instead of training nothing or failing inside torch/sklearn."""
    with pytest.raises(ValueError, match=msg):
        RecognizerConfig(**kw)


def test_zero_meaning_off_or_all_stays_valid():
    """The settings whose 0 means "off" or "all" (batch_size, shift_px, weight_decay, dropout, ...) accept 0."""
    cfg = RecognizerConfig(batch_size=0, shift_px=0, tta_shift_px=0, weight_decay=0.0, dropout=0.0, mixup_alpha=0.0,
                           average_last=0, folds_per_group=0, inner_val_fraction=0.0)
    assert cfg.batch_size == 0 and cfg.dropout == 0.0


def test_a_range_error_names_the_main_jobs_recognizer_section():
    """In train.py's config the same checks name the key as ``recognizer.<key>``, the way the user types it."""
    from icegan.config import ConfigError, apply_overrides
    from icegan.pipeline import MainConfig
    with pytest.raises(ConfigError, match=r"recognizer.epochs must be >= 1, got 0"):
        apply_overrides(MainConfig(), ["recognizer.epochs=0"])


def test_a_build_error_that_is_not_the_size_does_not_blame_input_size():
    """check_network_builds blames model.input_size only for a size the network cannot take; another reason (here a
    dropout outside [0, 1] that bypassed the config check) names the settings the network is built from."""
    from icegan.recognition import check_network_builds
    cfg = RecognizerConfig()
    cfg.dropout = 1.5                                 # set after the config's own check, as a caller could
    with pytest.raises(ValueError) as info:
        check_network_builds(cfg)
    msg = str(info.value)
    assert "does not fit" not in msg and "model.dropout=1.5" in msg and "dropout probability" in msg
    small = RecognizerConfig(input_size=2)
    with pytest.raises(ValueError, match="model.input_size=2 does not fit ststnet"):
        check_network_builds(small)


@pytest.mark.parametrize("kw, msg", [({"input_size": 0}, "model.input_size must be >= 1"),
                                     ({"rotate_deg": 15.5}, "model.rotate_deg must lie in 0..15")])
def test_input_size_0_and_a_rotation_past_15_degrees_are_refused(kw, msg):
    """The edges of two ranges: input_size must be >= 1 (named as such, not as a cutout error) and rotate_deg <= 15."""
    with pytest.raises(ValueError, match=msg):
        RecognizerConfig(**kw)


def test_the_inclusive_range_edges_are_accepted():
    """rotate_deg = 15, cutout_px = input_size - 1 and input_size = 1 lie inside their ranges."""
    assert RecognizerConfig(rotate_deg=15.0, cutout_px=27, input_size=28).rotate_deg == 15.0
    assert RecognizerConfig(input_size=1).input_size == 1


def test_snapshots_are_the_final_epoch_and_every_eval_every_th_before_it():
    """epochs=5, eval_every=2, average_last=4 (constant learning rate): the snapshots are the weights after epochs 3
    and 5, i.e. those of the same training stopped after 3 and after 5 epochs (not epochs 2 and 4)."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    mask = torch.ones(2, len(fs), dtype=torch.bool)
    base = dict(batch_size=12, eval_every=2, lr_schedule="constant")
    model, _ = train_models(RecognizerConfig(epochs=5, average_last=4, **base), fs.features, fs.labels, mask, seed=0,
                            progress=False)
    for snap, epochs in zip(model.models, (3, 5)):
        ref, _ = train_models(RecognizerConfig(epochs=epochs, **base), fs.features, fs.labels, mask, seed=0,
                              progress=False)
        for k, v in ref.state_dict().items():
            torch.testing.assert_close(snap.state_dict()[k], v, rtol=0, atol=0)


def test_inner_validation_keeps_each_models_own_best_epoch(monkeypatch):
    """Early stopping is per model of the group: model 0 validates best after epoch 1 and model 1 after epoch 2, so the
    returned network predicts like the 1-epoch training for copy 0 and like the 2-epoch training for copy 1."""
    import icegan.recognition as rec

    g = torch.Generator().manual_seed(0)
    y = torch.arange(18) % 3
    x = torch.rand(len(y), 3, 28, 28, generator=g)
    tm = torch.zeros(2, len(y), dtype=torch.bool)
    tm[:, :12] = True
    vm = ~tm
    epoch = iter(range(1, 10))

    def fake_predict(cfg, model, xx, dom=None):
        good = torch.tensor([[0.9, 0.5], [0.5, 0.9]])[next(epoch) - 1]        # p of the true class, per model
        p = ((1 - good) / 2)[None, :, None].repeat(len(y), 1, 3)
        p[torch.arange(len(y)), :, y] = good
        return p

    cfg = RecognizerConfig(epochs=2, batch_size=8, eval_every=1, lr_schedule="constant")
    monkeypatch.setattr(rec, "_predict", fake_predict)
    model, _ = train_models(cfg, x, y, tm, vm, seed=0, progress=False)
    monkeypatch.undo()
    got = predict_models(model, x)
    for copy, epochs in ((0, 1), (1, 2)):
        ref, _ = train_models(RecognizerConfig(**{**cfg.__dict__, "epochs": epochs}), x, y, tm, seed=0,
                              progress=False)
        torch.testing.assert_close(got[:, copy], predict_models(ref, x)[:, copy], rtol=0, atol=0)


def test_inner_validation_draws_from_each_models_own_training_subjects():
    """The share is of model g's training subjects (3 of the 6 here: round(0.34 · 3) = 1), never of subjects it does
    not train on: exactly one of a, b, c is moved to validation, for every draw."""
    subj = np.repeat(["a", "b", "c", "d", "e", "f"], 2)
    tm = np.zeros((2, 12), dtype=bool)
    tm[0, :6] = True
    tm[1, 6:] = True
    for seed in range(20):
        tr, va = inner_val_masks(subj, tm, 0.34, np.random.default_rng(seed))
        for g in range(2):
            assert len(set(subj[va[g]])) == 1 and va[g].sum() == 2 and tr[g].sum() == 4
            assert not (va[g] & ~tm[g]).any()


def test_fit_predict_folds_trains_without_its_inner_validation_subjects(monkeypatch):
    """With inner_val_fraction each fold model's training rows are its fold's training rows less the validation
    subjects, and validation holds exactly those: the two never overlap. The group's seed (training and the
    validation draw) is seed + 1000 · its first fold's index."""
    import icegan.recognition as rec
    from icegan.protocol import make_folds

    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")[1:3]
    seen = {}
    real = rec.train_models

    def spy(cfg, x, y, train_mask, val_mask=None, **kw):
        seen["tm"], seen["vm"], seen["seed"] = train_mask.numpy(), val_mask.numpy(), kw["seed"]
        return real(cfg, x, y, train_mask, val_mask, **kw)

    monkeypatch.setattr(rec, "train_models", spy)
    cfg = RecognizerConfig(epochs=1, batch_size=16, inner_val_fraction=0.25)
    rec.fit_predict_folds(cfg, fs.features, fs.labels, subjects, folds, seed=5, progress=False)
    assert seen["seed"] == 5 + 1000 * folds[0].index == 1005
    folds_mask = np.zeros((2, len(subjects)), dtype=bool)
    for i, f in enumerate(folds):
        folds_mask[i, f.train_idx] = True
    _, want_val = inner_val_masks(subjects, folds_mask, 0.25, np.random.default_rng(seen["seed"]))
    np.testing.assert_array_equal(seen["vm"], want_val)
    np.testing.assert_array_equal(seen["tm"], folds_mask & ~want_val)


def test_fitted_recognizer_averages_the_probabilities_of_its_seed_copies():
    """seeds=2 trains two grouped copies; the fitted recognizer returns the mean of their probabilities (flip TTA
    included), not one copy's."""
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    fitted = fit_recognizer(RecognizerConfig(epochs=1, batch_size=8, seeds=2), fs.features, fs.labels, seed=0,
                            progress=False)
    (model,) = fitted.models
    per_copy = predict_models(model, fs.features)                                    # (N, 2, K)
    assert (per_copy[:, 0] - per_copy[:, 1]).abs().max() > 1e-4
    np.testing.assert_allclose(fitted(fs.features), per_copy.mean(1).numpy(), rtol=1e-6, atol=1e-7)


def test_custom_folds_and_noise_filter_forests_are_seeded_seed_plus_1000_fold_index(monkeypatch):
    """A custom recognizer's fold is trained with seed + 1000 · the fold's index, and the noise filter's forest of
    each fold gets that fold's seed the same way (not the run's seed in every fold)."""
    import icegan.label_noise as label_noise
    import icegan.recognition as rec
    from icegan.protocol import make_folds

    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")[1:3]
    seeds, real = [], rec.train_models

    def spy(*a, **kw):
        seeds.append(kw["seed"])
        return real(*a, **kw)

    monkeypatch.setattr(rec, "train_models", spy)
    cfg = RecognizerConfig(name="custom", module="docs/examples/custom_recognizer.py:TwoLayerCNN", epochs=1,
                           batch_size=16)
    rec.fit_predict_folds(cfg, fs.features, fs.labels, subjects, folds, seed=5, progress=False)
    assert seeds == [5 + 1000 * f.index for f in folds] == [1005, 2005]
    forest_seeds = []

    def flags(x, y, trees, seed, *a, **kw):
        forest_seeds.append(seed)
        return np.zeros(len(y), dtype=bool)

    monkeypatch.setattr(label_noise, "flag_noisy_labels", flags)
    cfg = RecognizerConfig(epochs=1, batch_size=16, noise_filter="forest", forest_trees=5)
    rec.fit_predict_folds(cfg, fs.features, fs.labels, subjects, folds, seed=5, progress=False)
    assert forest_seeds == [1005, 2005]


def test_fit_recognizer_validates_on_the_given_validation_rows_only(monkeypatch):
    """fit_recognizer with x_val: the network trains on the training rows and validates on the appended x_val rows
    only (the two masks are disjoint and cover the table)."""
    import icegan.recognition as rec

    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    n = len(fs) - 3
    seen, real = {}, rec.train_models

    def spy(cfg, x, y, train_mask, val_mask=None, **kw):
        seen["tm"], seen["vm"] = train_mask, val_mask
        torch.testing.assert_close(y, fs.labels, rtol=0, atol=0)
        return real(cfg, x, y, train_mask, val_mask, **kw)

    monkeypatch.setattr(rec, "train_models", spy)
    rec.fit_recognizer(RecognizerConfig(epochs=1, batch_size=8, seeds=2), fs.features[:n], fs.labels[:n],
                       x_val=fs.features[n:], y_val=fs.labels[n:], progress=False)
    want = torch.zeros(2, len(fs), dtype=torch.bool)
    want[:, :n] = True
    assert torch.equal(seen["tm"], want) and torch.equal(seen["vm"], ~want)


def test_each_fold_is_scored_by_its_own_model_of_the_group():
    """Two CDE folds trained in one grouped network: relabelling fold 1's held-out subject leaves fold 1's scores
    bit-identical (its model never learns those rows) and changes fold 0's (whose model trains on them)."""
    from icegan.protocol import make_folds

    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")[:2]
    y2 = fs.labels.clone()
    y2[folds[1].test_idx] = (y2[folds[1].test_idx] + 1) % 3
    cfg = RecognizerConfig(epochs=2, batch_size=8)
    a, b = (fit_predict_folds(cfg, fs.features, yy, subjects, folds, seed=0, progress=False) for yy in (fs.labels, y2))
    np.testing.assert_array_equal(a[1], b[1])
    assert np.abs(a[0] - b[0]).max() > 1e-4
