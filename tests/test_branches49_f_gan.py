"""Branches of icegan.gan that no other test takes: evaluate_generator of a two-class generator (no sample grid of
the class it cannot synthesize) with a cross-dataset recognizer but no real apexes (no real-accuracy keys), VGG16
perceptual features of a three-channel face (used as given, not repeated), and `icegan gan train` without the
reconstruction loss (no loss/d_rec logged) resumed without cosine schedules (nothing to restore)."""
import numpy as np
import pytest
import torch
from _gan_sizes import fake_casme2_pairs, tiny_gan_config, tiny_gan_train_args


class _ConstantRecognizer:
    """A cross-dataset recognizer stand-in answering ``answer`` for every (onset, apex) pair."""
    datasets = ["casme2"]

    def __init__(self, answer: int):
        self.answer = answer

    def predict(self, onset, apex):
        return np.full(len(onset), self.answer)


def test_evaluate_a_two_class_generator_without_real_apexes(tmp_path):
    from icegan.gan.evaluate import evaluate_generator
    from icegan.gan.trainer import build_models
    cfg = tiny_gan_config(32)
    cfg.model.n_classes = 2
    g, _ = build_models(cfg)
    rng = np.random.default_rng(0)
    onset = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    res = evaluate_generator(g.eval(), None, onset, ["a", "a", "b", "b"], n_per_class=1, out_dir=tmp_path / "ev",
                             upsample_to=32, cross_recognizer=_ConstantRecognizer(1))
    assert res["n_synthetic"] == 8
    assert res["controllability_cross_dataset"] == pytest.approx(0.5)
    assert res["controllability_cross_dataset_per_class"] == {"negative": 0.0, "positive": 1.0}
    assert "cross_dataset_real_accuracy" not in res and "cross_dataset_real_uf1" not in res
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["grid_negative.png", "grid_positive.png"]
    assert res["grids"] == [str(tmp_path / "ev" / "grid_negative.png"), str(tmp_path / "ev" / "grid_positive.png")]


def test_vgg_perceptual_takes_a_three_channel_face_as_given(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    from icegan.gan.perceptual import VGGPerceptual
    torch.manual_seed(0)
    features = make_layers(cfgs["D"])
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg.pth")
    per = VGGPerceptual(tmp_path / "vgg.pth")
    grey = torch.rand(2, 1, 32, 32) * 2 - 1
    other = torch.rand(2, 1, 32, 32) * 2 - 1
    one = per(None, grey, other)
    three = per(None, grey.repeat(1, 3, 1, 1), other.repeat(1, 3, 1, 1))
    assert float(one) > 0 and torch.allclose(one, three)
    colour = torch.cat([grey, other, grey], 1)       # three different channels: not the grey face's loss
    assert not torch.allclose(per(None, colour, other.repeat(1, 3, 1, 1)), one)


def test_gan_train_without_reconstruction_or_cosine_logs_no_d_rec_and_resumes(tmp_path, monkeypatch):
    from icegan.cli import main
    from icegan.gan import pairs as gan_pairs
    pairs = fake_casme2_pairs(8)
    monkeypatch.setattr(gan_pairs, "load_casme2_pairs", lambda *a, **k: pairs)
    args = tiny_gan_train_args(tmp_path) + ["loss.beta=0", "train.cosine=false"]
    assert main(args + ["train.epochs=1"]) == 0
    first = torch.load(tmp_path / "t" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert "sched_g" not in first and first["epoch"] == 1
    assert main(args + ["train.epochs=2"]) == 0
    last = torch.load(tmp_path / "t" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2 and len(last["history"]) == 2
    assert all("loss/d_cls" in h and "loss/d_rec" not in h for h in last["history"])
    assert [h.get("lr") for h in last["history"]] == [first["history"][0].get("lr")] * 2
