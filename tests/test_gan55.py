"""ICE-GAN fixes of review 55: a resume with more epochs follows the longer cosine schedule; gan eval of a folder of
onsets with a data.source=prepared checkpoint; icegan generate refuses to overwrite an earlier run's faces
(--overwrite replaces them), draws each face's noise from its own (seed, onset, class, draw), takes --class ALL;
synthesize encodes each onset once; a missing VGG16 weights file is named by loss.vgg_weights before any work."""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
import torch
from _gan_sizes import fake_casme2_pairs, tiny_gan_config, tiny_gan_train_args

from icegan.cli import main
from icegan.gan.pairs import PairSet
from icegan.gan.synthesis import synthesize
from icegan.gan.trainer import build_models, save_checkpoint, train_gan


def _tiny_train_cfg(epochs: int):
    cfg = tiny_gan_config(32)
    t = cfg.train
    t.progress, t.batch_size, t.hflip, t.lr, t.epochs, t.max_minutes, t.sample_every = False, 8, False, 1e-3, \
        epochs, None, 0
    return cfg


def _pairs(n: int = 8):
    torch.manual_seed(0)
    on = torch.rand(n, 1, 32, 32) * 2 - 1
    return on, (on + 0.1 * torch.randn_like(on)).clamp(-1, 1), torch.arange(n) % 3


# ---- D1: a resume with a larger train.epochs follows the cosine schedule of a straight run of that length

def test_resume_with_more_epochs_follows_the_straight_cosine_schedule(tmp_path):
    on, ap, y = _pairs()
    train_gan(on, ap, y, _tiny_train_cfg(2), device="cpu", out_dir=tmp_path / "r")
    resumed = train_gan(on, ap, y, _tiny_train_cfg(5), device="cpu", out_dir=tmp_path / "r")
    straight = train_gan(on, ap, y, _tiny_train_cfg(5), device="cpu", out_dir=tmp_path / "s")
    lr_r = [h["lr"] for h in resumed.history]
    lr_s = [h["lr"] for h in straight.history]
    closed = [1e-3 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)]
    assert lr_s == pytest.approx(closed, rel=1e-9)
    # epochs 1-2 ran under the 2-epoch schedule (1e-3, 5e-4); epochs 3-5 continue the 5-epoch one
    assert lr_r[:2] == pytest.approx([1e-3, 5e-4], rel=1e-9)
    assert lr_r[2:] == pytest.approx(lr_s[2:], rel=1e-9)
    assert lr_r[2:] == pytest.approx([6.545084971874737e-4, 3.454915028125263e-4, 9.549150281252633e-5], rel=1e-9)


def test_resume_with_fewer_epochs_continues_from_the_shorter_schedule(tmp_path):
    """4 epochs asked, stopped after 1 (max_minutes), resumed with train.epochs=3: epochs 2-3 take the lrs of a
    straight 3-epoch run."""
    on, ap, y = _pairs()
    cfg4 = _tiny_train_cfg(4)
    first = dataclasses.replace(cfg4, train=dataclasses.replace(cfg4.train, max_minutes=1e-9))
    assert train_gan(on, ap, y, first, device="cpu", out_dir=tmp_path / "r").epochs_done == 1
    resumed = train_gan(on, ap, y, _tiny_train_cfg(3), device="cpu", out_dir=tmp_path / "r")
    closed3 = [1e-3 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]
    assert [h["lr"] for h in resumed.history] == pytest.approx(closed3, rel=1e-9)


# ---- D2: gan eval --data FOLDER_OF_ONSETS on a checkpoint trained with data.source=prepared

def _prepared_pairs(n: int = 9) -> PairSet:
    rng = np.random.default_rng(1)
    subs = [f"clips/p0{i % 3 + 1}" for i in range(n)]
    return PairSet(rng.integers(0, 256, (n, 32, 32), dtype=np.uint8), rng.integers(0, 256, (n, 32, 32), dtype=np.uint8),
                   np.arange(n) % 3, subs, [f"{s}/c{i}" for i, s in enumerate(subs)], np.zeros(n, dtype=int),
                   np.ones(n, dtype=int))


@pytest.fixture
def prepared_checkpoint(tmp_path, monkeypatch):
    import icegan.gan.evaluate
    import icegan.gan.pairs
    from icegan.data.prepare import DatasetSpec
    cfg = tiny_gan_config(32)
    cfg.data.apex_neighbors = 0
    cfg.data.source = "prepared"
    cfg.data.prepare.datasets = [DatasetSpec(name="clips", root=str(tmp_path / "clips.csv"), mode="cropped")]
    cfg.data.holdout_subjects = ["clips/p03"]
    g, d = build_models(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    save_checkpoint(ckpt, cfg, g, d, 1, [])
    calls = []

    def prepared(prepare, img_size, k, progress=True):
        calls.append("prepared")
        return _prepared_pairs()

    def manifest(root, img_size, k, **kw):
        calls.append("manifest")
        return fake_casme2_pairs(6, 32)
    monkeypatch.setattr(icegan.gan.pairs, "load_prepared_pairs", prepared)
    monkeypatch.setattr(icegan.gan.evaluate, "load_casme2_pairs", manifest)
    return ckpt, calls


def test_gan_eval_of_onset_images_fits_the_recognizer_on_the_prepared_checkpoint_s_own_pairs(prepared_checkpoint,
                                                                                            tmp_path):
    from icegan.gan.evaluate import run_eval
    ckpt, calls = prepared_checkpoint
    faces = tmp_path / "onsets"
    faces.mkdir()
    for i in range(2):
        cv2.imwrite(str(faces / f"f{i}.png"), np.full((32, 32), 60 + 50 * i, np.uint8))
    res = run_eval(ckpt, faces, n_per_class=1, out_dir=tmp_path / "ev", cross_dataset=False)
    assert calls == ["prepared"]               # the recognizer's pairs: the checkpoint's own, not the shared copy
    assert res["controllability"] is not None and res["eval_images"] == ["f0", "f1"]


def test_gan_eval_of_a_manifest_folder_without_the_prepared_subjects_is_a_clear_error(prepared_checkpoint,
                                                                                      tmp_path):
    from icegan.gan.evaluate import run_eval
    ckpt, _ = prepared_checkpoint
    folder = tmp_path / "casme2copy"
    folder.mkdir()
    (folder / "manifest.csv").write_text("subject\n")
    with pytest.raises(ValueError, match=r"last.pt was trained on data.source=prepared, .*clips/p03.*casme2copy.*"
                                         r"--data casme2"):
        run_eval(ckpt, folder, n_per_class=1, out_dir=tmp_path / "ev", cross_dataset=False)


# ---- D3, D4, D7: icegan generate

def _tiny_generator(tmp_path):
    cfg = tiny_gan_config(32)
    cfg.data.apex_neighbors = 0
    g, d = build_models(cfg)
    save_checkpoint(tmp_path / "last.pt", cfg, g, d, 0, [])
    return tmp_path / "last.pt"


def _faces(tmp_path, *names):
    rng = np.random.default_rng(0)
    for name in names:
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 256, (32, 32), dtype=np.uint8))
    return [str(tmp_path / n) for n in names]


def _gen(ckpt, onsets, cls, out, *extra):
    return main(["generate", "--checkpoint", str(ckpt), "--onset", *onsets, "--class", cls, "--out", str(out),
                 "--device", "cpu", *extra])


def test_generate_refuses_to_overwrite_an_earlier_run_s_faces(tmp_path, capsys):
    ckpt = _tiny_generator(tmp_path)
    (face,) = _faces(tmp_path, "grey.png")
    out = tmp_path / "gen"
    assert _gen(ckpt, [face], "all", out, "-n", "3", "--seed", "1") == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert len(before) == 9
    capsys.readouterr()
    assert _gen(ckpt, [face], "positive", out, "-n", "1", "--seed", "2") == 2
    err = capsys.readouterr().err
    assert f"{out}" in err and "grey_positive_00.png" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.glob("*.png")} == before            # nothing written
    assert _gen(ckpt, [face], "positive", out, "-n", "1", "--seed", "2", "--overwrite") == 0
    after = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert after["grey_positive_00.png"] != before["grey_positive_00.png"]
    assert {k: v for k, v in after.items() if k != "grey_positive_00.png"} == \
        {k: v for k, v in before.items() if k != "grey_positive_00.png"}
    # other names in the folder are no collision
    assert _gen(ckpt, _faces(tmp_path, "other.png"), "positive", out) == 0


def test_generate_face_depends_on_seed_onset_class_and_draw_only(tmp_path):
    ckpt = _tiny_generator(tmp_path)
    grey, rgb = _faces(tmp_path, "grey.png", "rgb.png")

    def face(run, name="grey_positive_00.png"):
        return cv2.imread(str(tmp_path / run / name), cv2.IMREAD_UNCHANGED)
    assert _gen(ckpt, [grey], "positive", tmp_path / "a", "-n", "2") == 0
    assert _gen(ckpt, [grey], "all", tmp_path / "b", "-n", "2") == 0
    assert _gen(ckpt, [rgb, grey], "positive", tmp_path / "c", "-n", "2") == 0
    assert _gen(ckpt, [grey], "positive", tmp_path / "d", "-n", "1") == 0
    assert _gen(ckpt, [grey], "positive", tmp_path / "e", "--seed", "3") == 0
    for run in ("b", "c", "d"):
        np.testing.assert_array_equal(face(run), face("a"))
    np.testing.assert_array_equal(face("b", "grey_positive_01.png"), face("a", "grey_positive_01.png"))
    assert not np.array_equal(face("a", "grey_positive_01.png"), face("a"))            # another draw
    assert not np.array_equal(face("e"), face("a"))                                     # another seed


def test_generate_class_all_in_any_case(tmp_path):
    ckpt = _tiny_generator(tmp_path)
    faces = _faces(tmp_path, "f.png")
    assert _gen(ckpt, faces, " ALL ", tmp_path / "g") == 0
    assert sorted(p.name for p in (tmp_path / "g").glob("*.png")) == ["f_negative_00.png", "f_positive_00.png",
                                                                  "f_surprise_00.png"]


def test_synthesize_noise_keys_are_reproducible_per_face():
    cfg = tiny_gan_config(32)
    g, _ = build_models(cfg)
    on = torch.rand(2, 1, 32, 32) * 2 - 1
    a, _, _ = synthesize(g, on, [0, 1, 2], 2, seed=4, noise_keys=["x", "y"])
    b, _, _ = synthesize(g, on[[1]], [1], 2, seed=4, noise_keys=["y"])
    assert torch.equal(b, a[8:10])                      # onset y, class 1, draws 0-1 of the first call
    one, _, _ = synthesize(g, on[[1]], [1], 1, seed=4, noise_keys=["y"])
    assert torch.equal(one, a[8:9])                     # a face made alone: the same
    with pytest.raises(ValueError, match="noise_keys"):
        synthesize(g, on, [0], 1, noise_keys=["x"])


# ---- D5: each onset encoded once, the faces bit-identical to the generator's forward pass

def test_synthesize_encodes_each_onset_once_with_the_same_faces(monkeypatch):
    from icegan.models.generator import Generator
    cfg = tiny_gan_config(32)
    g, _ = build_models(cfg)
    g.eval()
    torch.manual_seed(3)
    on = torch.rand(5, 1, 32, 32) * 2 - 1
    classes, n = [0, 1, 2], 4
    src = torch.arange(5).repeat_interleave(len(classes) * n)
    cls = torch.tensor(classes).repeat_interleave(n).repeat(5)
    z = torch.randn(len(src), g.z_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = torch.cat([g(on[src[i:i + 64]], z[i:i + 64], cls[i:i + 64]) for i in range(0, len(src), 64)])
    rows = []
    encode = Generator.encode
    monkeypatch.setattr(Generator, "encode", lambda self, x: (rows.append(len(x)), encode(self, x))[1])
    apex, s, c = synthesize(g, on, classes, n, seed=7)
    assert torch.equal(s, src) and torch.equal(c, cls)
    assert torch.equal(apex, ref)                       # bit-identical to the forward pass
    assert sum(rows) == 5                               # 5 onsets encoded, not 60 rows
    rows.clear()
    apex7, _, _ = synthesize(g, on, classes, n, seed=7, batch_size=7)
    assert torch.equal(apex7, ref) and sum(rows) < 60


# ---- D6: loss.perceptual=vgg16 without its weights: named by loss.vgg_weights before anything is loaded or written

def test_gan_train_names_missing_vgg_weights_before_loading_or_writing(tmp_path, monkeypatch, capsys):
    import icegan.gan.pairs

    def never(*a, **kw):
        raise AssertionError("pairs loaded")
    monkeypatch.setattr(icegan.gan.pairs, "load_casme2_pairs", never)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    for extra in ([], [f"loss.vgg_weights={tmp_path / 'vgg.pth'}"]):
        assert main(tiny_gan_train_args(tmp_path) + ["train.epochs=1", "loss.perceptual=vgg16", *extra]) == 2
        err = capsys.readouterr().err
        assert "VGG16 ImageNet weights not found" in err and "loss.vgg_weights" in err and "weights_path" not in err
        assert not (tmp_path / "t").exists()
