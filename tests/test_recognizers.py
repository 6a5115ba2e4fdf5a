"""Recognizers (STSTNet, Off-TANet), grouped training and its honesty guarantees."""
import numpy as np
import pytest
import torch

from icegan.data.toy_features import make_toy_features
from icegan.models.recognizers import MaskedBatchNorm2d, OffTANet, STSTNet, build_recognizer
from icegan.recognition import (RecognizerConfig, class_weights, fit_recognizer, hflip_features,
                                inner_val_masks, train_models)


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


@pytest.mark.parametrize("cls,kw", [(STSTNet, {}), (OffTANet, {"input_size": 28, "stem_stride": 1})])
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


def test_held_out_samples_do_not_influence_training():
    """Changing samples that are masked out of model g's training leaves model g bit-identical."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    x, y = fs.features, fs.labels
    mask = torch.ones(2, len(y), dtype=torch.bool)
    held = torch.arange(len(y)) < 6
    mask[0, held] = False
    cfg = RecognizerConfig(epochs=3, batch_size=8, hflip=True)
    m1, _ = train_models(cfg, x, y, mask, seed=1, progress=False)
    x2 = x.clone()
    x2[held] = torch.rand_like(x2[held])
    y2 = y.clone()
    y2[held] = (y2[held] + 1) % 3
    m2, _ = train_models(cfg, x2, y2, mask, seed=1, progress=False)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        if a.dim() == 0:
            continue
        torch.testing.assert_close(a.reshape(2, -1)[0], b.reshape(2, -1)[0], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(a.reshape(2, -1)[1], b.reshape(2, -1)[1])
               for a, b in zip(m1.state_dict().values(), m2.state_dict().values()) if a.dim() > 0)


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


def test_logreg_fit_recognizer():
    fs = make_toy_features(n_subjects_per_dataset=2)
    subj = fs.samples["subject"].to_numpy()
    test = subj == "samm/s02"
    predict = fit_recognizer(RecognizerConfig(name="logreg"), fs.features[~test], fs.labels[~test])
    p = predict(fs.features[test])
    assert p.shape == (test.sum(), 3) and (p.argmax(1) == fs.labels[test].numpy()).mean() >= 0.75


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
