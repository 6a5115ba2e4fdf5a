"""ICE-GAN command fixes of review 57: a resume with fewer train.epochs than its checkpoint is refused;
train.max_minutes and the history's seconds count across resumes (elapsed_s in the checkpoint); a fresh start clears
the previous run's sample grids and TensorBoard events; gan eval refuses an empty onset folder or unknown subjects
before the recognizers are trained; icegan generate refuses an --out that is an --onset folder or the folder of the
onset files (a subfolder is allowed); the 'done:' line's lr in .4g (the other floats .4f); the library's train_gan
refuses a resume that would shorten a run."""
from __future__ import annotations

import dataclasses
import re

import cv2
import numpy as np
import pytest
import torch
from _gan_sizes import fake_casme2_pairs, tiny_gan_config, tiny_gan_train_args

from icegan.cli import main
from icegan.gan.trainer import build_models, save_checkpoint, train_gan


@pytest.fixture
def fake_pairs(monkeypatch, tmp_path):
    """icegan gan train (and gan eval) read 8 random pairs of sub01/sub02; caches go under tmp_path."""
    import icegan.gan.evaluate
    import icegan.gan.pairs
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path / "data"))
    pairs = fake_casme2_pairs(8)
    monkeypatch.setattr(icegan.gan.pairs, "load_casme2_pairs", lambda *a, **k: pairs)
    monkeypatch.setattr(icegan.gan.evaluate, "load_casme2_pairs", lambda *a, **k: pairs)
    return pairs


def _ckpt(run):
    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)


# ---- 1: a resume with train.epochs below the checkpoint's epoch

def test_gan_train_refuses_a_resume_with_fewer_epochs_than_the_checkpoint(fake_pairs, tmp_path, capsys):
    args = tiny_gan_train_args(tmp_path)
    assert main(args + ["train.epochs=2"]) == 0
    run = tmp_path / "t"
    config = (run / "config.yaml").read_text()
    capsys.readouterr()
    assert main(args + ["train.epochs=1"]) == 2
    err = capsys.readouterr().err
    ckpt = run / "checkpoints" / "last.pt"
    assert err.startswith(f"icegan gan train: error: {ckpt} has trained 2 epochs, more than train.epochs=1"), err
    assert "train.epochs=2 or more" in err and "train.resume=false" in err and "new output folder" in err
    assert (run / "config.yaml").read_text() == config and _ckpt(run)["epoch"] == 2   # the folder unchanged
    assert main(args + ["train.epochs=2"]) == 0                    # as many: nothing left to train, not refused
    assert main(args + ["train.epochs=1", "train.resume=false"]) == 0
    assert _ckpt(run)["epoch"] == 1


# ---- 2: train.max_minutes counts across resumes

def _tiny_cfg(epochs: int, max_minutes):
    cfg = tiny_gan_config(32)
    cfg.train = dataclasses.replace(cfg.train, progress=False, batch_size=8, epochs=epochs, max_minutes=max_minutes,
                                    sample_every=0)
    return cfg


def _pairs(n: int = 8):
    torch.manual_seed(0)
    on = torch.rand(n, 1, 32, 32) * 2 - 1
    return on, (on + 0.1 * torch.randn_like(on)).clamp(-1, 1), torch.arange(n) % 3


def _set_elapsed(run, seconds):
    ck = _ckpt(run)
    if seconds is None:
        ck.pop("elapsed_s")
    else:
        ck["elapsed_s"] = seconds
    torch.save(ck, run / "checkpoints" / "last.pt")


def test_gan_time_budget_and_history_seconds_count_across_resumes(tmp_path):
    on, ap, y = _pairs()
    run = tmp_path / "r"
    assert train_gan(on, ap, y, _tiny_cfg(4, 1e-9), device="cpu", out_dir=run).epochs_done == 1
    first = _ckpt(run)
    # the epoch's seconds (rounded to 0.1 s) are taken before its sample grid and checkpoint: not after elapsed_s
    assert 0 < first["elapsed_s"] < 600 and first["history"][0]["seconds"] <= first["elapsed_s"] + 0.05
    _set_elapsed(run, 600.0)        # 10 minutes trained before: a 5-minute budget is spent after one more epoch
    state = train_gan(on, ap, y, _tiny_cfg(4, 5), device="cpu", out_dir=run)
    assert state.epochs_done == 2
    assert state.history[1]["seconds"] >= 600 and _ckpt(run)["elapsed_s"] >= 600


def test_gan_checkpoint_without_elapsed_time_resumes_from_zero(tmp_path):
    on, ap, y = _pairs()
    run = tmp_path / "r"
    train_gan(on, ap, y, _tiny_cfg(4, 1e-9), device="cpu", out_dir=run)
    _set_elapsed(run, None)         # a checkpoint written before elapsed_s was kept
    state = train_gan(on, ap, y, _tiny_cfg(3, 5), device="cpu", out_dir=run)
    assert state.epochs_done == 3 and all(h["seconds"] < 300 for h in state.history[1:])
    assert _ckpt(run)["elapsed_s"] < 300


# ---- 3: train.resume=false in a used folder

def test_gan_train_afresh_removes_the_previous_run_s_samples_and_events_only(fake_pairs, tmp_path, capsys):
    args = tiny_gan_train_args(tmp_path, "train.sample_every=1")
    run = tmp_path / "t"
    assert main(args + ["train.epochs=2"]) == 0
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1
    (run / "samples" / "notes.txt").write_text("mine")
    (run / "tb" / "keep").mkdir()
    capsys.readouterr()
    assert main(args + ["train.epochs=1", "train.resume=false"]) == 0
    out = capsys.readouterr().out
    assert (f"starting afresh in {run}: removed the previous run's 2 sample grid(s) (samples/) and 1 TensorBoard "
            f"event file(s) (tb/)") in out, out
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "notes.txt"]
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1 and (run / "tb" / "keep").is_dir()
    capsys.readouterr()
    assert main(args + ["train.epochs=2"]) == 0             # a resume keeps them
    assert "starting afresh" not in capsys.readouterr().out
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 2


# ---- 4: gan eval's cheap refusals first

@pytest.fixture
def eval_checkpoint(tmp_path, monkeypatch, fake_pairs):
    import icegan.gan.evaluate
    cfg = tiny_gan_config(32)
    cfg.data.apex_neighbors = 0
    cfg.data.holdout_subjects = ["sub02"]
    g, d = build_models(cfg)
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", cfg, g, d, 1, [])
    fitted = []

    class Recognizer:                       # records a fit: the refusals must come before it
        def __init__(self, *a, **k):
            pass

        def fit(self, *a, **k):
            fitted.append(1)
            return self
    monkeypatch.setattr(icegan.gan.evaluate, "FlowRecognizer", Recognizer)
    return ckpt, fitted


def _eval(ckpt, *extra):
    return main(["gan", "eval", "--checkpoint", str(ckpt), "--device", "cpu", "--no-cross-dataset", *extra])


def test_gan_eval_refuses_an_empty_onset_folder_before_training_a_recognizer(eval_checkpoint, tmp_path, capsys):
    ckpt, fitted = eval_checkpoint
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _eval(ckpt, "--data", str(empty)) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan gan eval: error: no face images (") and f"in folder {empty}" in err, err
    assert fitted == []


def test_gan_eval_refuses_unknown_subjects_before_training_a_recognizer(eval_checkpoint, capsys):
    ckpt, fitted = eval_checkpoint
    assert _eval(ckpt, "--subjects", "sub99") == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan gan eval: error: subject 'sub99' has no usable pairs; known subjects: "
                          "['casme2/sub01', 'casme2/sub02']"), err
    assert fitted == []


# ---- 6: icegan generate --out an --onset folder, the folder of the onset files; a subfolder is allowed

@pytest.fixture
def gen_setup(tmp_path):
    """A tiny generator checkpoint and a folder of 3 onset faces; the generate arguments without --onset/--out."""
    cfg = tiny_gan_config(32)
    g, d = build_models(cfg)
    ckpt = save_checkpoint(tmp_path / "last.pt", cfg, g, d, 0, [])
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(3):
        cv2.imwrite(str(faces / f"f{i}.png"), np.random.default_rng(i).integers(0, 256, (32, 32), dtype=np.uint8))
    base = ["generate", "--checkpoint", str(ckpt), "--class", "all", "--device", "cpu", "--overwrite"]
    return base, faces, g.n_classes


def test_generate_refuses_an_out_folder_in_an_onset_folder(gen_setup, capsys):
    base, faces, _ = gen_setup
    assert main(base + ["--onset", str(faces), "--out", str(faces)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"icegan generate: error: --out {faces} is the --onset folder {faces}: "), err
    assert sorted(p.name for p in faces.iterdir()) == ["f0.png", "f1.png", "f2.png"]       # nothing written


def test_generate_writes_into_a_subfolder_of_an_onset_folder(gen_setup):
    """An onset folder's images are listed flat: faces/gen's faces are never read as onsets, reruns stay at 3 x K."""
    base, faces, k = gen_setup
    for _ in range(2):
        assert main(base + ["--onset", str(faces), "--out", str(faces / "gen")]) == 0
        assert len(list((faces / "gen").glob("*.png"))) == 3 * k
        assert len(list(faces.glob("*.png"))) == 3


def test_generate_refuses_the_folder_of_the_onset_files(gen_setup, capsys):
    """--onset faces/*.png (the shell's list) with --out faces: each --overwrite rerun read its own outputs (3 faces
    then 12, then 39)."""
    base, faces, _ = gen_setup
    files = [str(p) for p in sorted(faces.glob("*.png"))]
    assert main(base + ["--onset", *files, "--out", str(faces / ".." / faces.name)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"icegan generate: error: --out {faces / '..' / faces.name} is the folder of the --onset "
                          f"file {files[0]}"), err
    assert sorted(p.name for p in faces.iterdir()) == ["f0.png", "f1.png", "f2.png"]       # nothing written


def test_generate_names_a_missing_onset_file_not_its_folder(gen_setup, capsys):
    """A mistyped onset file (faces/f9.png, not there) with --out faces was refused as 'the folder of the --onset
    file' instead of being named as missing."""
    base, faces, _ = gen_setup
    assert main(base + ["--onset", str(faces / "f9.png"), "--out", str(faces)]) == 2
    err = capsys.readouterr().err
    assert "f9.png" in err and "is the folder of the --onset file" not in err, err


# ---- 7: the final line's lr

def test_gan_train_done_line_shows_a_small_lr(fake_pairs, tmp_path, capsys):
    assert main(tiny_gan_train_args(tmp_path) + ["train.epochs=1", "train.lr=7.3e-05"]) == 0
    done = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("done:")]
    assert len(done) == 1 and " lr=7.3e-05 " in done[0] + " ", done


def test_gan_train_done_line_lr_in_g_and_seconds_as_before(fake_pairs, tmp_path, capsys):
    args = tiny_gan_train_args(tmp_path) + ["train.lr=7.3e-05"]
    assert main(args + ["train.epochs=1"]) == 0
    _set_elapsed(tmp_path / "t", 12000.0)       # 3.3 hours trained before: 1.2e+04 in .4g
    capsys.readouterr()
    assert main(args + ["train.epochs=2"]) == 0
    done = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("done:")]
    assert len(done) == 1 and " lr=" in done[0], done
    assert re.search(r" seconds=120\d\d\.\d{4}( |$)", done[0]), done
    values = dict(kv.split("=") for kv in done[0].split("last epoch ")[1].split())
    assert all(re.fullmatch(r"-?\d+\.\d{4}", v) for k, v in values.items() if k != "lr"), done


# ---- 8: the library's train_gan refuses a resume that would shorten a run, as icegan gan train does (section 1)

def test_train_gan_refuses_a_resume_with_fewer_epochs(tmp_path):
    from icegan.gan.trainer import RESUME_ADVICE, GanCheckpointError
    on, ap, y = _pairs()
    run = tmp_path / "r"
    assert train_gan(on, ap, y, _tiny_cfg(2, None), device="cpu", out_dir=run).epochs_done == 2
    ckpt = run / "checkpoints" / "last.pt"
    before = ckpt.read_bytes()
    with pytest.raises(GanCheckpointError, match=rf"^{re.escape(str(ckpt))} has trained 2 epochs, more than "
                       rf"train\.epochs=1; a resume cannot shorten a run: resume with train\.epochs=2 or more, or "
                       rf"{re.escape(RESUME_ADVICE)}$"):
        train_gan(on, ap, y, _tiny_cfg(1, None), device="cpu", out_dir=run)
    assert ckpt.read_bytes() == before
