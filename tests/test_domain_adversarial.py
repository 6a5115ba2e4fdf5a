"""Domain-adversarial training (model.domain_adversarial): the gradient scaling layer, STSTNet's reversed auxiliary
head, the reversal schedule and the dataset loss by hand, isolation of the held-out rows, and the errors."""

import pytest
import torch
import torch.nn.functional as F
from _model_checks import assert_only_second_copy_changed
from _scalar_log import ScalarLog

from icegan.cli import main
from icegan.data.toy_features import make_toy_features
from icegan.models.recognizers import STSTNet, scale_gradient
from icegan.recognition import RecognizerConfig, train_models


def _toy():
    """Toy composite of two datasets: features, labels and the dataset index of every row."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    d = torch.tensor([0 if s.startswith("casme2/") else 1 for s in fs.samples["subject"]])
    return fs.features, fs.labels, d


@pytest.mark.parametrize("scale", [-1.0, -0.25, 0.0, 2.0])
def test_scale_gradient_values(scale):
    """Identity forward; the gradient into x is scale × the incoming gradient; scale 1 returns x itself."""
    x = torch.randn(4, 3, requires_grad=True)
    g = torch.randn(4, 3)
    y = scale_gradient(x, scale)
    assert torch.equal(y, x)
    y.backward(g)
    torch.testing.assert_close(x.grad, scale * g, rtol=0, atol=0)
    assert scale_gradient(x, 1.0) is x
    with pytest.raises(ValueError, match="scale must be finite"):
        scale_gradient(x, float("nan"))


def test_ststnet_reversed_auxiliary_head():
    """aux_grad_scale multiplies the gradient the auxiliary head sends into the shared layers (−0.5 → −0.5 ×, 0 →
    nothing) and leaves the head's own gradient and every output unchanged."""
    torch.manual_seed(0)
    net = STSTNet(n_models=2, aux_outputs=3, dropout=0.0)
    x = torch.rand(8, 3, 28, 28)

    def grads(scale):
        net.zero_grad()
        y, a = net(x, with_aux=True, aux_grad_scale=scale)
        a.sum().backward()
        return y.detach(), a.detach(), net.streams[2].weight.grad.clone(), net.aux_fc.weight.grad.clone()

    y1, a1, g1, h1 = grads(1.0)
    y2, a2, g2, h2 = grads(-0.5)
    _, _, g0, h0 = grads(0.0)
    assert torch.equal(y1, y2) and torch.equal(a1, a2)
    assert g1.abs().max() > 0
    torch.testing.assert_close(g2, -0.5 * g1)
    assert torch.equal(h1, h2) and torch.equal(h1, h0)
    assert torch.count_nonzero(g0) == 0


def test_reversal_schedule_and_dataset_loss_by_hand(monkeypatch):
    """The reversal's strength follows λ_p = 2 / (1 + exp(−10 p)) − 1 step by step (0 at the first step, rising to
    nearly 1), and the logged dataset cross-entropy of the first epoch is that of the initial network on its
    training rows (full batch, no augmentation, computed here by hand)."""
    x, y, d = _toy()
    mask = torch.ones(1, len(y), dtype=torch.bool)
    mask[0, :3] = False
    seen = []
    forward = STSTNet.forward

    def spy(self, *a, **kw):
        seen.append(kw.get("aux_grad_scale"))
        return forward(self, *a, **kw)

    monkeypatch.setattr(STSTNet, "forward", spy)
    rec = ScalarLog()
    cfg = RecognizerConfig(epochs=4, batch_size=0, dropout=0.0, hflip=False, tta_hflip=False,
                           domain_adversarial=0.5)
    train_models(cfg, x, y, mask, seed=3, progress=False, domains=d, writer=rec)
    # -(2 / (1 + exp(-10 p)) - 1) at p = 0, 1/4, 2/4, 3/4, worked out by hand
    assert seen[:4] == pytest.approx([0.0, -0.8482836, -0.9866143, -0.9988944], abs=1e-7) and seen[0] == 0
    monkeypatch.setattr(STSTNet, "forward", forward)
    torch.manual_seed(3)
    net = STSTNet(n_models=1, aux_outputs=2, dropout=0.0).train()
    logits, a = net(x, sample_mask=mask.t().float(), with_aux=True)
    by_hand = F.cross_entropy(a[mask[0]], d[mask[0]]).detach()
    assert rec.values["train/ststnet/domain_ce"][0] == pytest.approx(float(by_hand), rel=1e-5)
    # the epoch's loss is the class cross-entropy (classes weighted n / (K n_c) over the training rows) plus the
    # option's weight times the dataset cross-entropy
    yt = y[mask[0]]
    assert cfg.class_weighting
    w = (len(yt) / (3 * torch.bincount(yt, minlength=3).float()))[yt]
    ce = F.cross_entropy(logits.reshape(len(y), -1)[mask[0]], yt, reduction="none").detach()
    class_ce = float((w * ce).sum() / w.sum())
    assert rec.values["train/ststnet/loss"][0] == pytest.approx(class_ce + 0.5 * float(by_hand), rel=1e-5)
    assert len(rec.values["train/ststnet/domain_ce"]) == 4


def test_domain_adversarial_in_training():
    """Weight 0 is bit-identical to the option's absence (no dataset indices needed); weight > 0 changes the class
    network; the dataset head trains (its weights move from their initial values)."""
    x, y, d = _toy()
    mask = torch.ones(1, len(y), dtype=torch.bool)
    kw = dict(epochs=5, batch_size=16, shift_px=1)
    base = train_models(RecognizerConfig(**kw), x, y, mask, seed=2, progress=False)[0].state_dict()
    off = train_models(RecognizerConfig(domain_adversarial=0.0, **kw), x, y, mask, seed=2, progress=False,
                       domains=d)[0].state_dict()
    assert off.keys() == base.keys() and all(torch.equal(v, base[k]) for k, v in off.items())
    m = train_models(RecognizerConfig(domain_adversarial=1.0, **kw), x, y, mask, seed=2, progress=False,
                     domains=d)[0]
    assert any(not torch.equal(v, m.state_dict()[k]) for k, v in base.items() if v.is_floating_point())
    torch.manual_seed(2)
    init = STSTNet(n_models=1, aux_outputs=2).state_dict()
    assert m.state_dict()["aux_fc.weight"].shape == init["aux_fc.weight"].shape
    assert not torch.equal(m.state_dict()["aux_fc.weight"], init["aux_fc.weight"])


def test_held_out_rows_do_not_influence_training():
    """Changing the features, labels and dataset indices of rows masked out of model 0's training leaves model 0
    bit-identical, while model 1, which trains on them, changes."""
    x, y, d = _toy()
    mask = torch.ones(2, len(y), dtype=torch.bool)
    held = torch.arange(len(y)) < 6
    mask[0, held] = False
    cfg = RecognizerConfig(epochs=3, batch_size=8, shift_px=1, domain_adversarial=2.0)
    m1, _ = train_models(cfg, x, y, mask, seed=1, progress=False, domains=d)
    x2, y2, d2 = x.clone(), y.clone(), d.clone()
    x2[held] = torch.rand_like(x2[held])
    y2[held] = (y2[held] + 1) % 3
    d2[held] = 1 - d2[held]
    m2, _ = train_models(cfg, x2, y2, mask, seed=1, progress=False, domains=d2)
    assert_only_second_copy_changed(m1, m2)


def test_training_errors():
    x, y, d = _toy()
    mask = torch.ones(1, len(y), dtype=torch.bool)
    cfg = RecognizerConfig(epochs=1, domain_adversarial=1.0)
    with pytest.raises(ValueError, match="model.domain_adversarial needs the dataset index of every sample"):
        train_models(cfg, x, y, mask, progress=False)
    one = mask.clone()
    one[0, d == 1] = False
    with pytest.raises(ValueError, match="model 0 trains on clips of one dataset only"):
        train_models(cfg, x, y, one, progress=False, domains=d)
    for bad in (d - 1, d.float()):          # a -1 index, float indices: a message, not a crash deep in one_hot
        for c in (cfg, RecognizerConfig(epochs=1, domain_bn=True)):
            with pytest.raises(ValueError, match="domains must hold integer dataset indices 0, 1, ..., D-1"):
                train_models(c, x, y, mask, progress=False, domains=bad)


@pytest.mark.parametrize("kw,msg", [
    ({"domain_adversarial": -1.0}, "model.domain_adversarial must be a finite number >= 0"),
    ({"domain_adversarial": float("inf")}, "model.domain_adversarial must be a finite number >= 0"),
    ({"domain_adversarial": 1.0, "name": "offtanet"}, "applies to ststnet only, not offtanet"),
    ({"domain_adversarial": 1.0, "au_weight": 1.0}, "both need STSTNet's one auxiliary head"),
    ({"domain_adversarial": 1.0, "mixup_alpha": 0.2}, "mixup_alpha cannot be combined"),
])
def test_config_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        RecognizerConfig(**kw)


def test_main_job_refuses_domain_adversarial():
    from icegan.config import ConfigError
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match="recognizer.domain_adversarial .* not by the main job"):
        load_main_config("configs/demo.yaml", ["recognizer.domain_adversarial=1"])


def test_short_real_loso(shared_data, tmp_path):
    """A short real composite LOSO with the dataset head runs, saves the key and logs the dataset loss; the same
    folds without it score other probabilities."""
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    common = ["--config", "configs/features_ststnet.yaml", "--no-progress", "max_folds=2", "model.epochs=3",
              "threads=1", f"data.root={shared_data / 'megc2019_htnet'}"]
    assert main(["loso", "--out", str(tmp_path / "dann"), *common, "model.domain_adversarial=1"]) == 0
    assert main(["loso", "--out", str(tmp_path / "plain"), *common]) == 0
    assert "domain_adversarial: 1.0" in (tmp_path / "dann" / "config.yaml").read_text()
    a = pd.read_csv(tmp_path / "dann" / "predictions.csv", dtype={"subject": str})
    b = pd.read_csv(tmp_path / "plain" / "predictions.csv", dtype={"subject": str})
    assert a["clip"].tolist() == b["clip"].tolist()
    assert not a["score_negative"].equals(b["score_negative"])
    acc = EventAccumulator(str(tmp_path / "dann" / "tb"))
    acc.Reload()
    tags = [t for t in acc.Tags()["scalars"] if t.endswith("/domain_ce")]
    assert tags and all(0 < e.value < 10 for t in tags for e in acc.Scalars(t))


def test_sde_run_is_refused_before_a_run_folder(shared_data, tmp_path, capsys):
    rc = main(["loso", "--config", "configs/features_ststnet.yaml", "--out", str(tmp_path / "x"),
               f"data.root={shared_data / 'megc2019_htnet'}", "protocol=SDE", "dataset=casme2",
               "model.domain_adversarial=1"])
    err = capsys.readouterr().err
    assert rc == 2 and "icegan loso: error: model.domain_adversarial=1.0 learns features" in err
    assert "protocol=SDE" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_dataset_probe_of_the_bench():
    """bench/dataset_probe.py's probe: features that encode the dataset score about 1, features that do not about
    chance (balanced accuracy, folds grouped by subject)."""
    import numpy as np
    from _bench import load_bench
    probe = load_bench("dataset_probe").probe
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(30), 6)
    datasets = subjects % 3
    noise = rng.normal(size=(len(subjects), 8))
    assert probe(noise + 3 * np.eye(8)[datasets], datasets, subjects) > 0.95
    assert abs(probe(noise, datasets, subjects) - 1 / 3) < 0.15
