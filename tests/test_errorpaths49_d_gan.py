"""Error paths and fallback branches of icegan.gan.* that the rest of the suite leaves unrun: each test goes through
the public function a caller uses and checks the exception's type and what its message names, or what the branch
returns (tiny 32 px models, random faces, no training beyond one epoch)."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch
from _gan_sizes import tiny_gan_config

from icegan.gan.trainer import build_models, save_checkpoint


def _pairs(n=4, size=32, labels=None):
    g = torch.Generator().manual_seed(0)
    on = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    ap = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    y = torch.arange(n) % 3 if labels is None else torch.as_tensor(labels)
    return on, ap, y


def _cfg(**train):
    cfg = tiny_gan_config(32)
    cfg.train.progress, cfg.train.batch_size, cfg.train.epochs = False, 4, 1
    cfg.train.sample_every, cfg.train.max_minutes = 0, None
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


# --- trainer.train_gan input checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("shapes, match", [
    (((4, 1, 32, 32), (4, 1, 16, 16)),
     r"onset \(4, 1, 32, 32\) and apex \(4, 1, 16, 16\) must both be \(N, 1, 32, 32\)"),
    (((4, 1, 16, 16), (4, 1, 16, 16)),
     r"onset \(4, 1, 16, 16\) and apex \(4, 1, 16, 16\) must both be \(N, 1, 32, 32\)"),
    (((4, 32, 32), (4, 32, 32)), r"onset \(4, 32, 32\) .* must both be \(N, 1, 32, 32\)"),
])
def test_train_gan_refuses_faces_of_another_shape_than_the_config(shapes, match):
    from icegan.gan.trainer import train_gan
    with pytest.raises(ValueError, match=match):
        train_gan(torch.zeros(shapes[0]), torch.zeros(shapes[1]), torch.zeros(4, dtype=torch.long), _cfg(),
                  device="cpu")


def test_train_gan_refuses_labels_of_another_length_no_pairs_and_labels_out_of_range():
    from icegan.gan.trainer import train_gan
    on, ap, y = _pairs()
    with pytest.raises(ValueError, match=r"train_gan: labels must be \(4,\), got \(3,\)"):
        train_gan(on, ap, y[:3], _cfg(), device="cpu")
    with pytest.raises(ValueError, match="train_gan: no training pairs"):
        train_gan(on[:0], ap[:0], y[:0], _cfg(), device="cpu")
    with pytest.raises(ValueError, match=r"train_gan: labels must be in \[0, 3\), got \[0, 1, 3\]"):
        train_gan(on, ap, torch.tensor([0, 1, 3, 3]), _cfg(), device="cpu")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got \[-1, 0\]"):
        train_gan(on, ap, torch.tensor([0, -1, 0, 0]), _cfg(), device="cpu")


def test_without_the_cosine_schedule_every_epoch_runs_at_the_configured_rate():
    """train.cosine=false: no scheduler, and each epoch's history records the constant train.lr."""
    from icegan.gan.trainer import train_gan
    st = train_gan(*_pairs(), _cfg(cosine=False, epochs=2, lr=3e-4), device="cpu")
    assert [h["lr"] for h in st.history] == [3e-4, 3e-4]


def test_train_progress_shows_a_bar_per_epoch(monkeypatch):
    """train.progress=true wraps each epoch's steps in a tqdm bar named by the epoch."""
    import tqdm

    from icegan.gan.trainer import train_gan
    seen = []
    real = tqdm.tqdm

    def spy(it, **kw):
        seen.append(kw.get("desc"))
        return real(it, **kw)

    monkeypatch.setattr(tqdm, "tqdm", spy)
    train_gan(*_pairs(), _cfg(progress=True, epochs=2), device="cpu")
    assert seen == ["gan epoch 1/2", "gan epoch 2/2"]


# --- trainer: checkpoints ---------------------------------------------------------------------------------------


def test_a_checkpoint_written_before_it_recorded_its_config_is_resumed(tmp_path):
    """A last.pt without a config section (an older checkpoint) is resumed: there is no recorded setting to compare."""
    from icegan.gan.trainer import check_resumable, train_gan
    cfg = _cfg()
    on, ap, y = _pairs()
    train_gan(on, ap, y, cfg, device="cpu", out_dir=tmp_path)
    last = tmp_path / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=False)
    del payload["config"]
    torch.save(payload, last)
    assert check_resumable(tmp_path, cfg, on, ap, y) is not None
    cfg.train.epochs = 2
    assert train_gan(on, ap, y, cfg, device="cpu", out_dir=tmp_path).epochs_done == 2


def test_a_checkpoint_of_the_use_grm_era_loads_with_its_skip_path(tmp_path):
    """load_checkpoint maps the old model.use_grm flag to model.skip: true -> grm, false -> plain."""
    from icegan.gan.trainer import load_checkpoint
    for use_grm, skip in ((True, "grm"), (False, "plain")):
        cfg = _cfg()
        cfg.model.skip = skip
        g, d = build_models(cfg)
        p = save_checkpoint(tmp_path / f"{skip}.pt", cfg, g, d, 0, [])
        payload = torch.load(p, weights_only=False)
        del payload["config"]["model"]["skip"]
        payload["config"]["model"]["use_grm"] = use_grm
        torch.save(payload, p)
        g2, _, cfg2, _ = load_checkpoint(p, "cpu")
        assert cfg2.model.skip == skip
        assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), g2.state_dict().values()))


# --- evaluate ---------------------------------------------------------------------------------------------------


def test_face_embeddings_refuses_faces_that_are_not_uint8_stacks():
    from icegan.gan.evaluate import face_embeddings
    with pytest.raises(ValueError, match=r"face_embeddings expects uint8 \(N, H, W\), got float32 \(2, 8, 8\)"):
        face_embeddings(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"got uint8 \(8, 8\)"):
        face_embeddings(np.zeros((8, 8), np.uint8))


def test_generator_speed_in_channels_last_times_a_channels_last_copy_and_counts_cpu_seconds():
    """channels_last times a channels-last copy of the generator (a forward hook, copied with it, sees the layout),
    the generator itself keeping its layout and train mode; cpu_per_batch gets the process CPU seconds of every timed
    batch."""
    from icegan.gan.evaluate import generator_speed
    g, _ = build_models(_cfg())
    g.train()
    conv = next(m for m in g.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[-1] > 1)
    seen = []
    conv.register_forward_hook(lambda m, i, o: seen.append(
        (m is conv, m.weight.is_contiguous(memory_format=torch.channels_last))))
    wall, cpu = [], []
    fps = generator_speed(g, batch=2, repeats=3, channels_last=True, per_batch=wall, cpu_per_batch=cpu)
    assert fps > 0 and len(wall) == len(cpu) == 3 and all(c >= 0 for c in cpu)
    assert seen == [(False, True)] * 4                  # warm-up + 3 timed batches, all on the channels-last copy
    assert g.training and conv.weight.is_contiguous()


def _checkpoint(folder, n_classes=3, classes=(), holdout=("sub02",), root=None):
    cfg = _cfg()
    cfg.model.n_classes, cfg.model.classes = n_classes, list(classes)
    cfg.data.holdout_subjects = list(holdout)
    if root is not None:
        cfg.data.root = str(root)
    g, d = build_models(cfg)
    return save_checkpoint(folder / "checkpoints" / "last.pt", cfg, g, d, 0, [])


def test_eval_names_the_classes_of_a_generator_of_no_known_label_set(tmp_path):
    """A generator conditioned on 4 classes: no label set has them, so the refusal names the checkpoint's own class
    names (model.classes), or none when the checkpoint names none."""
    from icegan.gan.evaluate import run_eval
    named = _checkpoint(tmp_path / "a", n_classes=4, classes=("calm", "joy", "fear", "awe"))
    with pytest.raises(ValueError, match=r"conditioned on 4 classes \(calm, joy, fear, awe\), a main-job fold's"):
        run_eval(named, "casme2", device="cpu", cross_dataset=False)
    unnamed = _checkpoint(tmp_path / "b", n_classes=4)
    with pytest.raises(ValueError, match=r"conditioned on 4 classes, a main-job fold's"):
        run_eval(unnamed, "casme2", device="cpu", cross_dataset=False)


def test_eval_of_onset_images_without_any_recognizer_data_still_scores_and_says_what_it_left_out(
        tmp_path, monkeypatch, caplog):
    """--data a folder of onset faces, the checkpoint's CASME II copy and the megc2019_htnet features absent: the
    evaluation runs (identity, speed) and says in the log that neither controllability was computed."""
    from icegan.gan.evaluate import run_eval
    monkeypatch.setenv("ICEGAN_SHARED_DATA", str(tmp_path / "no_shared_data"))
    ckpt = _checkpoint(tmp_path / "run", root=tmp_path / "no_casme2")
    faces = tmp_path / "faces"
    faces.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(faces / f"f{i}.png"), rng.integers(0, 256, (32, 32), dtype=np.uint8))
    monkeypatch.setattr("icegan.gan.evaluate.face_embeddings", lambda f, upsample_to=128: np.zeros((len(f), 128)))
    with caplog.at_level(logging.WARNING, logger="icegan.gan.evaluate"):
        res = run_eval(ckpt, str(faces), device="cpu", out_dir=tmp_path / "eval", cross_dataset=True)
    msgs = [r.getMessage() for r in caplog.records]
    assert any("no CASME II training pairs for the recognizer" in m and "no_casme2" in m
               and "controllability not computed" in m for m in msgs), msgs
    assert any("no megc2019_htnet features" in m and "cross-dataset controllability not computed" in m
               for m in msgs), msgs
    assert res["controllability"] is None and res["controllability_cross_dataset"] is None
    assert res["eval_images"] == ["f0", "f1"] and (tmp_path / "eval" / "eval.md").is_file()


def test_eval_of_a_casme2_folder_with_a_missing_frame_raises_instead_of_leaving_the_recognizer_out(tmp_path, caplog):
    """--data a CASME II folder whose manifest lists a frame that is not there: the missing file is named (an error),
    not logged as 'no training pairs' with the evaluation going on."""
    from icegan.gan.evaluate import run_eval
    data = tmp_path / "casme2"
    data.mkdir()
    (data / "manifest.csv").write_text(
        "subject,filename,emotion,class3,onset,apex,offset,verified,apex_in_folder,note\n"
        "sub01,EP01_01,happiness,positive,10,20,30,True,True,\n")
    ckpt = _checkpoint(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="icegan.gan.evaluate"):
        with pytest.raises(FileNotFoundError, match=r"row 2 \(sub01/EP01_01\): onset frame missing: .*img10\.jpg"):
            run_eval(ckpt, str(data), device="cpu", cross_dataset=False)
    assert not any("controllability not computed" in r.getMessage() for r in caplog.records)


# --- losses, motion, perceptual, synthesis ----------------------------------------------------------------------


def test_diversity_hinge_refuses_two_batches_of_other_shapes():
    from icegan.gan.losses import diversity_hinge
    with pytest.raises(ValueError, match=r"diversity_hinge: shapes differ \(2, 1, 8, 8\) vs \(3, 1, 8, 8\)"):
        diversity_hinge(torch.zeros(2, 1, 8, 8), torch.zeros(3, 1, 8, 8))


def test_mirror_flow_refuses_a_tensor_without_a_two_channel_axis():
    from icegan.gan.motion import mirror_flow
    with pytest.raises(ValueError, match=r"mirror_flow expects \(\.\.\., 2, H, W\), got \(3, 8, 8\)"):
        mirror_flow(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"got \(8, 8\)"):
        mirror_flow(torch.zeros(8, 8))


def test_pair_flows_refuses_an_unknown_method_and_pairs_of_other_shapes():
    from icegan.gan.motion import pair_flows
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"motion prior method must be one of \('tvl1', 'farneback'\), got 'dis'"):
        pair_flows(x, x, "dis")
    with pytest.raises(ValueError, match=r"pair_flows: onset \(2, 1, 8, 8\) and apex \(2, 1, 8, 4\) must be"):
        pair_flows(x, torch.zeros(2, 1, 8, 4))
    with pytest.raises(ValueError, match=r"pair_flows: onset \(2, 2, 8, 8\)"):
        pair_flows(torch.zeros(2, 2, 8, 8), torch.zeros(2, 2, 8, 8))


def test_class_mean_flow_refuses_inconsistent_pairs_labels_and_flows():
    from icegan.gan.motion import class_mean_flow
    x = torch.zeros(2, 1, 8, 8)
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"class_mean_flow: onset \(2, 1, 8, 8\) and apex \(1, 1, 8, 8\) must be"):
        class_mean_flow(x, x[:1], y, 3)
    with pytest.raises(ValueError, match=r"class_mean_flow: labels must be \(2,\), got \(3,\)"):
        class_mean_flow(x, x, torch.tensor([0, 1, 2]), 3)
    with pytest.raises(ValueError, match=r"class_mean_flow: flows must be \(2, 2, 8, 8\), got \(2, 2, 4, 4\)"):
        class_mean_flow(x, x, y, 3, flows=torch.zeros(2, 2, 4, 4))


def test_vgg_weights_with_a_layer_of_another_shape_are_named(tmp_path):
    """A state dict with every VGG16 key but one convolution of another shape: the file and the layer are named."""
    from torchvision.models.vgg import cfgs, make_layers

    from icegan.gan.perceptual import VGGPerceptual
    sd = {f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}
    sd["features.2.weight"] = torch.zeros(64, 32, 3, 3)
    torch.save(sd, tmp_path / "odd.pth")
    with pytest.raises(RuntimeError, match=r"odd\.pth is not a torchvision VGG16 state dict: .*features\.2\.weight has "
                                           r"shape \(64, 32, 3, 3\), expected \(64, 64, 3, 3\)"):
        VGGPerceptual(tmp_path / "odd.pth")


def test_synthesize_of_no_onset_and_a_balanced_augmentation_of_balanced_labels_are_empty():
    """Nothing to make: an empty (0, 1, H, W) apex tensor (the generator's channels and size), not a torch.cat
    error."""
    from icegan.gan.synthesis import balanced_augmentation, synthesize
    g, _ = build_models(_cfg())
    apex, src, cls = synthesize(g, torch.zeros(0, 1, 32, 32), [0, 1])
    assert apex.shape == (0, 1, 32, 32) and src.numel() == cls.numel() == 0
    apex, src, cls = balanced_augmentation(g, torch.zeros(3, 1, 32, 32), [0, 1, 2])
    assert apex.shape == (0, 1, 32, 32) and src.numel() == 0


# --- pairs ------------------------------------------------------------------------------------------------------


def test_to_tensor_refuses_faces_that_are_not_uint8_stacks():
    from icegan.gan.pairs import to_tensor
    with pytest.raises(ValueError, match=r"to_tensor expects uint8 \(N, H, W\), got float64 \(1, 4, 4\)"):
        to_tensor(np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match=r"got uint8 \(1, 4, 4, 1\)"):
        to_tensor(np.zeros((1, 4, 4, 1), np.uint8))


def test_read_grey_names_a_missing_face(tmp_path):
    from icegan.gan.pairs import read_grey
    with pytest.raises(FileNotFoundError, match=r"face image not found: .*nope\.png"):
        read_grey(tmp_path / "nope.png")


HEADER = "subject,filename,emotion,class3,onset,apex,offset,verified,apex_in_folder,note\n"


def _casme2(tmp_path, rows, frames=()):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "manifest.csv").write_text(rows)
    rng = np.random.default_rng(0)
    for n in frames:
        d = tmp_path / "sub01" / "EP01_01"
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"img{n}.jpg"), rng.integers(0, 256, (40, 40), dtype=np.uint8))
    return tmp_path


def test_casme2_manifest_without_a_needed_column_is_named(tmp_path):
    from icegan.gan.pairs import load_casme2_pairs
    root = _casme2(tmp_path, "subject,filename,class3,onset,apex\nsub01,EP01_01,positive,1,2\n")
    with pytest.raises(ValueError, match=r"manifest\.csv: missing columns \['apex_in_folder', 'verified'\]"):
        load_casme2_pairs(root, img_size=32, cache=False)


def test_casme2_manifest_rows_with_an_unknown_class_or_no_frame_numbers_are_named(tmp_path):
    from icegan.gan.pairs import load_casme2_pairs
    root = _casme2(tmp_path / "a", HEADER + "sub01,EP01_01,x,grumpy,1,2,3,True,True,\n")
    with pytest.raises(ValueError, match=r"manifest\.csv row 2 \(sub01/EP01_01\): .*grumpy"):
        load_casme2_pairs(root, img_size=32, cache=False)
    root = _casme2(tmp_path / "b", HEADER + "sub01,EP01_01,x,positive,10,20,30,False,True,\n"
                                             "sub01,EP01_02,x,positive,/,?,30,True,True,\n")
    with pytest.raises(ValueError, match=r"manifest\.csv row 3 \(sub01/EP01_02\): onset '/' / apex '\?' are not "
                                         r"frame numbers"):
        load_casme2_pairs(root, img_size=32, cache=False)


def test_casme2_apex_neighbours_that_are_not_in_the_folder_are_left_out(tmp_path):
    """apex_neighbors=2 with only apex+1 of the four neighbours on disk: the pairs are apex and apex+1."""
    from icegan.gan.pairs import load_casme2_pairs
    root = _casme2(tmp_path, HEADER + "sub01,EP01_01,x,positive,10,20,30,True,True,\n", frames=(10, 20, 21))
    ps = load_casme2_pairs(root, img_size=32, apex_neighbors=2, cache=False)
    assert ps.apex_frames.tolist() == [20, 21] and ps.labels.tolist() == [1, 1]


def test_casme2_manifest_of_no_usable_composite_clip_is_refused(tmp_path):
    from icegan.gan.pairs import load_casme2_pairs
    root = _casme2(tmp_path, HEADER + "sub01,EP01_01,x,,10,20,30,True,True,\n"
                                      "sub01,EP01_02,x,positive,10,20,30,False,True,\n")
    with pytest.raises(ValueError, match=r"manifest\.csv: no usable composite clips"):
        load_casme2_pairs(root, img_size=32, cache=False)
