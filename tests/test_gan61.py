"""ICE-GAN fixes of round 61: `gan eval`'s UF1 / UAR average over the classes present in the held-out labels (MEGC,
as icegan.metrics.compute_metrics); a class the generator had no training pair of is recorded in the checkpoint and
named by `icegan generate` and eval.md; a resume with another model width names the setting, not tensor shapes."""
from __future__ import annotations

import dataclasses
import re
import types

import cv2
import numpy as np
import pytest
import torch
from _gan_sizes import fake_casme2_pairs, tiny_gan_train_args

from icegan.cli import main


def _grey_level(faces, upsample_to=128):
    return np.repeat(faces.reshape(len(faces), -1).astype(float).mean(1)[:, None], 128, axis=1)


# ---- 1: UF1 / UAR over the classes present (MEGC) -------------------------------------------------------------------

def test_gan_eval_uf1_and_uar_average_over_the_classes_present(monkeypatch):
    """Held-out labels [2, 0, 0, 0, 0] (class 1 absent), every answer class 0: F1 8/9 (class 0) and 0 (class 2), so
    UF1 4/9 and UAR 1/2 (icegan.metrics.compute_metrics), not 8/27 and 1/3 with the absent class counted as 0."""
    import icegan.gan.evaluate as ev
    from _gan_sizes import tiny_gan_config

    from icegan.gan.trainer import build_models
    monkeypatch.setattr(ev, "face_embeddings", _grey_level)
    monkeypatch.setattr(ev, "generator_speed", lambda g: 1.0)

    class Always0:
        datasets = ["samm"]

        def predict(self, onset, apex):
            return np.zeros(len(onset), int)

    class D:
        def __call__(self, x, reconstruct=False, onset=None):
            return types.SimpleNamespace(exp_len=torch.tensor([[1.0, 0.0, 0.0]]).repeat(len(x), 1))
    torch.manual_seed(0)
    g = build_models(tiny_gan_config(32))[0].eval()
    onset = np.stack([np.full((32, 32), v, np.uint8) for v in (20, 60, 100, 140, 180)])
    res = ev.evaluate_generator(g, D(), onset, ["s1", "s1", "s2", "s2", "s3"], apex=onset + 20,
                                labels=np.array([2, 0, 0, 0, 0]), recognizer=Always0(), n_per_class=1,
                                cross_recognizer=Always0())
    assert res["expcaps_uf1"] == pytest.approx(4 / 9) and res["expcaps_uar"] == pytest.approx(0.5)
    assert res["recognizer_real_uf1"] == pytest.approx(4 / 9)
    assert res["cross_dataset_real_uf1"] == pytest.approx(4 / 9)
    assert res["expcaps_accuracy"] == pytest.approx(0.8)


# ---- 2: a class without training pairs ------------------------------------------------------------------------------

@pytest.fixture
def no_surprise_run(tmp_path, monkeypatch):
    """A 1-epoch tiny run on sub01's pairs, classes 0 and 1 only (sub02, all surprise, held out); the pair loader,
    face embeddings and generator speed replaced by fast stand-ins. Returns (run folder, pairs)."""
    import icegan.gan.evaluate as ev
    import icegan.gan.pairs as gp
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path / "data"))
    pairs = dataclasses.replace(fake_casme2_pairs(8), labels=np.array([0, 2, 1, 2, 0, 2, 1, 2]))
    monkeypatch.setattr(gp, "load_casme2_pairs", lambda *a, **k: pairs)
    monkeypatch.setattr(ev, "load_casme2_pairs", lambda *a, **k: pairs)
    monkeypatch.setattr(ev, "face_embeddings", _grey_level)
    monkeypatch.setattr(ev, "generator_speed", lambda g: 1.0)
    assert main(tiny_gan_train_args(tmp_path, "train.epochs=1", "data.holdout_subjects=[sub02]")) == 0
    return tmp_path / "t", pairs


def test_gan_train_records_its_training_pairs_per_class(no_surprise_run):
    import json
    run, _ = no_surprise_run
    payload = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert payload["class_pairs"] == [2, 2, 0]
    split = json.loads((run / "split.json").read_text())
    assert split["n_train_pairs_per_class"] == {"negative": 2, "positive": 2, "surprise": 0}


def test_generate_names_a_class_the_generator_had_no_training_pair_of(no_surprise_run, tmp_path, capsys):
    run, _ = no_surprise_run
    ckpt = run / "checkpoints" / "last.pt"
    face = tmp_path / "onset.png"
    cv2.imwrite(str(face), np.full((32, 32), 90, np.uint8))
    capsys.readouterr()
    base = ["generate", "--checkpoint", str(ckpt), "--onset", str(face), "-n", "1"]
    assert main(base + ["--class", "surprise", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert ("note: class surprise: the generator had no training pair of it (0 of its 4 training pairs; negative 2, "
            "positive 2, surprise 0), so its faces of this class come from a condition it never learned") in out, out
    assert main(base + ["--class", "all", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "note: class surprise: the generator had no training pair" in out and "class negative:" not in out
    assert main(base + ["--class", "negative", "--out", str(tmp_path / "n")]) == 0
    assert "no training pair" not in capsys.readouterr().out
    # a checkpoint written before the counts were recorded still loads, without the note
    payload = torch.load(ckpt, map_location="cpu", weights_only=False)
    del payload["class_pairs"]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    assert main(["generate", "--checkpoint", str(old), "--onset", str(face), "-n", "1", "--class", "surprise",
                 "--out", str(tmp_path / "o")]) == 0
    assert "no training pair" not in capsys.readouterr().out


def test_gan_eval_marks_a_class_the_generator_had_no_training_pair_of(no_surprise_run, tmp_path):
    from icegan.gan.evaluate import run_eval
    run, _ = no_surprise_run
    res = run_eval(run / "checkpoints" / "last.pt", n_per_class=1, out_dir=tmp_path / "ev", cross_dataset=False)
    assert res["untrained_classes"] == ["surprise"]
    md = (tmp_path / "ev" / "eval.md").read_text()
    assert re.search(r"\(negative \d+\.\d % / positive \d+\.\d % / surprise \d+\.\d % \(no training pair\)\)", md), md
    assert md.count("(no training pair)") == 1, md          # the cross-dataset row is skipped here
    assert "the generator had no training pair of class surprise" in md, md


# ---- 3: a resume with another model width ---------------------------------------------------------------------------

def test_gan_train_resume_with_another_model_width_names_the_setting(tmp_path, monkeypatch, capsys):
    import icegan.gan.pairs as gp
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path / "data"))
    pairs = fake_casme2_pairs(8)
    monkeypatch.setattr(gp, "load_casme2_pairs", lambda *a, **k: pairs)
    assert main(tiny_gan_train_args(tmp_path, "train.epochs=1")) == 0
    capsys.readouterr()
    assert main(tiny_gan_train_args(tmp_path, "train.epochs=2", "model.g_base_channels=4")) == 2
    err = capsys.readouterr().err
    assert "model.g_base_channels: 8 there, 4 now" in err, err
    assert "size mismatch" not in err and "shape" not in err, err
