"""ICE-GAN training loop, checkpoints, synthesis API, perceptual cost networks, CASME II pair loader."""
from __future__ import annotations

import dataclasses
import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _scalar_log import ScalarLog

from icegan.gan.pairs import PairSet, class_id, fit_square, list_face_files, load_casme2_pairs, read_grey, to_tensor
from icegan.gan.perceptual import VGG16_FILE, VGGPerceptual, build_perceptual
from icegan.gan.synthesis import balanced_augmentation, synthesize
from icegan.gan.trainer import (GanCheckpointError, GanConfig, build_models, check_resumable, load_checkpoint,
                                train_gan, training_pairs_sha256)


def tiny_cfg(**train) -> GanConfig:
    cfg = GanConfig()
    cfg.data.img_size = 32
    m = cfg.model
    m.g_base_channels, m.g_max_channels, m.d_base_channels = 16, 32, 8
    m.id_dim, m.z_dim, m.d_adv, m.d_exp = 32, 8, 16, 8
    t = cfg.train
    t.progress, t.batch_size, t.hflip, t.lr = False, 8, False, 1e-3
    for k, v in train.items():
        setattr(t, k, v)
    return cfg


@pytest.fixture(scope="module")
def pairs32(shared_data):
    return load_casme2_pairs(shared_data / "casme2", img_size=32, apex_neighbors=0, cache=False)


def test_pair_loader_real_casme2(pairs32):
    ps = pairs32
    assert len(ps) == 118 and len(set(ps.clips)) == 118              # composite clips with a verified apex
    assert np.bincount(ps.labels).tolist() == [74, 25, 19]
    assert ps.onset.shape == (118, 32, 32) and ps.onset.dtype == np.uint8
    assert all(s.startswith("casme2/sub") for s in ps.subjects)
    skipped = dict(ps.skipped)
    assert "sub12/EP09_02" in skipped and "apex frame missing" in skipped["sub02/EP14_01"]
    assert ps.n_not_composite == 103
    i = ps.clips.index("sub01/EP02_01f")
    assert (ps.onset_frames[i], ps.apex_frames[i], ps.labels[i]) == (46, 59, 1)
    held = ps.by_subjects(["sub01"])
    assert set(held.subjects) == {"casme2/sub01"}
    assert len(ps.by_subjects(exclude=["sub01"])) == len(ps) - len(held)
    with pytest.raises(ValueError, match="sub99"):
        ps.by_subjects(["sub99"])


def test_pair_loader_reports_missing_frame(tmp_path):
    (tmp_path / "manifest.csv").write_text(
        "subject,filename,emotion,class3,onset,apex,offset,verified,apex_in_folder,note\n"
        "sub01,EP01_01,happiness,positive,10,20,30,True,True,\n")
    with pytest.raises(FileNotFoundError, match=r"row 2 \(sub01/EP01_01\): onset frame missing"):
        load_casme2_pairs(tmp_path, img_size=32, cache=False)
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        load_casme2_pairs(tmp_path / "nope", img_size=32)


def test_tiny_overfit_l1(pairs32):
    """8 real pairs, 150 steps at 32×32 with every loss term on: L1(G(onset), apex) ends below 0.015 and
    below half of L1(onset, apex) (what copying the onset scores, ≈ 0.025 here)."""
    idx = np.arange(0, 118, 15)[:8]
    sub = pairs32.select(idx)
    on, ap, y = sub.tensors()
    copy_l1 = F.l1_loss(on, ap).item()
    cfg = tiny_cfg(epochs=150)
    cfg.loss.counterfactual = 0.0
    state = train_gan(on, ap, y, cfg, device="cpu")
    with torch.no_grad():
        fake = state.generator(on, torch.zeros(8, cfg.model.z_dim), y)
    l1 = F.l1_loss(fake, ap).item()
    assert state.history[0]["loss/l1"] > l1
    assert l1 < 0.015 and l1 < 0.5 * copy_l1, (l1, copy_l1)


def test_checkpoint_round_trip_and_resume(tmp_path):
    torch.manual_seed(0)
    n = 16
    on = torch.rand(n, 1, 32, 32) * 2 - 1
    ap = (on + 0.1 * torch.randn_like(on)).clamp(-1, 1)
    y = torch.arange(n) % 3
    cfg = tiny_cfg(epochs=2, batch_size=8)
    full = train_gan(on, ap, y, cfg, device="cpu", out_dir=tmp_path / "a")
    # exact round trip of the saved models
    g, d, cfg2, payload = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    assert cfg2 == cfg and payload["epoch"] == 2
    z = torch.randn(n, cfg.model.z_dim)
    with torch.no_grad():
        assert torch.equal(g(on, z, y), full.generator(on, z, y))
        assert torch.equal(d(ap, y).exp, full.discriminator(ap, y).exp)
    # 1 epoch, then resume for the 2nd: same weights as 2 epochs at once (deterministic with the seed)
    half = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_minutes=1e-9))  # stops after epoch 1
    assert train_gan(on, ap, y, half, device="cpu", out_dir=tmp_path / "b").epochs_done == 1
    resumed = train_gan(on, ap, y, cfg, device="cpu", out_dir=tmp_path / "b")
    assert resumed.epochs_done == 2 and len(resumed.history) == 2
    for (k, a), b in zip(full.generator.state_dict().items(), resumed.generator.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
    assert (tmp_path / "a" / "samples" / "epoch_002.png").is_file()
    # a checkpoint of other pairs (here: one label changed) is never continued: that model has seen other data
    y2 = y.clone()
    y2[0] = (y2[0] + 1) % 3
    assert train_gan(on, ap, y, half, device="cpu", out_dir=tmp_path / "c").epochs_done == 1
    with pytest.raises(ValueError, match=r"last.pt was trained on other training pairs than these .*other data. "
                                         r"Remove it \(or use another output folder\) to start afresh$"):
        train_gan(on, ap, y2, cfg, device="cpu", out_dir=tmp_path / "c")
    with pytest.raises(ValueError, match=r"last.pt was trained on other training pairs than these .*other data. "
                                         r"Train into a new output folder, or set train.resume=false"):
        check_resumable(tmp_path / "c", cfg, on, ap, y2)            # icegan gan train's check, its own advice
    fresh = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, resume=False))
    assert train_gan(on, ap, y2, fresh, device="cpu", out_dir=tmp_path / "c").epochs_done == 2
    assert load_checkpoint(tmp_path / "c" / "checkpoints" / "last.pt")[3]["data_sha256"] == \
        training_pairs_sha256(on, ap, y2) != training_pairs_sha256(on, ap, y)
    with pytest.raises(ValueError, match="not an ICE-GAN checkpoint"):
        torch.save({"x": 1}, tmp_path / "bad.pt")
        load_checkpoint(tmp_path / "bad.pt")



def test_a_checkpoint_that_cannot_be_resumed_is_named(tmp_path):
    """A last.pt of other model settings is refused by check_resumable (before icegan gan train writes anything) and
    train_gan, and one cut short (a disk error, a copy stopped half-way) or not a checkpoint by train_gan, each naming
    the file and what is wrong; before, the resume died in load_state_dict's list of size mismatches or, in the main
    job, in torch's zip reader."""
    torch.manual_seed(0)
    on = torch.rand(6, 1, 32, 32) * 2 - 1
    y = torch.arange(6) % 3
    cfg = tiny_cfg(epochs=1, batch_size=6)
    train_gan(on, on, y, cfg, device="cpu", out_dir=tmp_path)
    ckpt = tmp_path / "checkpoints" / "last.pt"
    whole = ckpt.read_bytes()
    other = tiny_cfg(epochs=2, batch_size=6)
    other.model.g_base_channels = 8                 # the run resumed with other model settings
    # icegan gan train's check names the setting (its config is compared before the weights are loaded) ...
    with pytest.raises(GanCheckpointError, match=rf"^{re.escape(str(ckpt))} was trained with other settings than "
                                                 r"these \(model.g_base_channels: 16 there, 8 now\)"):
        check_resumable(tmp_path, other, on, on, y)
    # ... and train_gan (the main job's fold resume, which compares no config) the weights that do not fit
    with pytest.raises(GanCheckpointError, match=rf"^{re.escape(str(ckpt))}: weights do not match the generator "
                                                 r"this run's config describes \(the run was started with other "
                                                 r"GAN model settings: resume with those, or .*\): missing \[\] "
                                                 r"\(0\), unexpected \[\] \(0\), wrong shape \['encoder"):
        train_gan(on, on, y, other, device="cpu", out_dir=tmp_path)
    ckpt.write_bytes(whole[:4096])
    with pytest.raises(GanCheckpointError, match=r"the GAN checkpoint to resume \(remove it \(or use another output "
                                                 rf"folder\) to start afresh\): {re.escape(str(ckpt))} cannot be read "
                                                 r"by torch.load"):
        train_gan(on, on, y, cfg, device="cpu", out_dir=tmp_path)
    torch.save([1, 2], ckpt)
    with pytest.raises(GanCheckpointError, match=rf"^{re.escape(str(ckpt))} is not an ICE-GAN checkpoint"):
        train_gan(on, on, y, cfg, device="cpu", out_dir=tmp_path)


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_named(tmp_path, capsys):
    """A checkpoint whose config was edited to another width, or which lacks its models, is refused naming the file
    and what does not fit (was a RuntimeError of load_state_dict, exit 1 from icegan generate)."""
    from icegan.cli import main
    from icegan.gan.trainer import save_checkpoint
    cfg = tiny_cfg(epochs=1)
    g, d = build_models(cfg)
    path = save_checkpoint(tmp_path / "last.pt", cfg, g, d, 1, [])
    payload = torch.load(path, weights_only=False)
    payload["config"]["model"]["g_base_channels"] = 2 * cfg.model.g_base_channels          # edited by hand
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'edited.pt'}: weights do not match the generator its config "
                                         r"describes: missing \[\] \(0\), unexpected \[\] \(0\), wrong shape \["):
        load_checkpoint(tmp_path / "edited.pt")
    del payload["discriminator"]
    torch.save(payload, tmp_path / "cut.pt")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'cut.pt'}: an ICE-GAN checkpoint without \['discriminator'\]"):
        load_checkpoint(tmp_path / "cut.pt")
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), np.full((32, 32), 128, np.uint8))
    assert main(["generate", "--checkpoint", str(tmp_path / "edited.pt"), "--onset", str(face), "--class", "positive",
                 "--out", str(tmp_path / "gen")]) == 2
    err = capsys.readouterr().err
    assert "weights do not match the generator its config describes" in err and "Traceback" not in err


def test_extra_loss_hook_is_called_and_differentiable():
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    y = torch.arange(8) % 3
    calls = []

    def extra(g, onset, z, c, fake):
        calls.append((onset.shape, z.shape, c.shape, fake.requires_grad))
        return 0.5 * fake.mean() ** 2

    train_gan(on, on.clone(), y, tiny_cfg(epochs=1), device="cpu", extra_loss_fn=extra)
    assert calls == [((8, 1, 32, 32), (8, 8), (8,), True)]


def test_step_scalars_reach_the_log_as_numbers_that_average_to_the_history():
    """The per-step TensorBoard scalars go to the writer as Python floats (one host copy per step, not one
    synchronisation per value), and each epoch's steps average to that epoch's history entry."""
    torch.manual_seed(0)
    on = torch.rand(16, 1, 32, 32) * 2 - 1
    y = torch.arange(16) % 3
    log = ScalarLog()
    st = train_gan(on, on.clone(), y, tiny_cfg(epochs=2), device="cpu", log=log)
    steps = [(k, v, s) for k, v, s in log.rows if k != "lr"]
    assert steps and all(type(v) is float for _, v, _ in steps)
    for epoch, rec in enumerate(st.history):
        l1 = [v for k, v, s in steps if k == "loss/l1" and epoch * 2 <= s < (epoch + 1) * 2]     # 16 pairs / 8 = 2
        assert len(l1) == 2 and abs(sum(l1) / 2 - rec["loss/l1"]) < 1e-6


def test_loss_weights_combine_the_logged_terms():
    """Each step's logged totals are the logged terms times their configured weights (Eq. 4-8 as the trainer's
    docstring combines them): D = lambda_adv * adv + lambda_mer * cls, G = lambda_adv * adv + lambda_mes * ip +
    g_cls * margin, with weights none of which is 1 (counterfactual branch and mode seeking off)."""
    torch.manual_seed(0)
    on = torch.rand(16, 1, 32, 32) * 2 - 1
    y = torch.arange(16) % 3

    cfg = tiny_cfg(epochs=1)
    lc = cfg.loss
    lc.lambda_adv, lc.lambda_mer, lc.lambda_mes, lc.g_cls, lc.counterfactual, lc.mode_seeking = 0.3, 0.7, 2.0, 0.5, 0, 0
    log = ScalarLog()
    train_gan(on, (on * 0.9).clone(), y, cfg, device="cpu", log=log)
    assert sorted(log.by_step) == [0, 1]
    for r in log.by_step.values():
        assert r["loss/d_total"] == pytest.approx(0.3 * r["loss/d_adv"] + 0.7 * r["loss/d_cls"], rel=1e-5)
        assert r["loss/g_total"] == pytest.approx(0.3 * r["loss/g_adv"] + 2.0 * r["loss/ip"] + 0.5 * r["loss/g_cls"],
                                                  rel=1e-5)
        assert r["loss/ip"] > r["loss/l1"] > 0              # the identity term holds the L1 and the perceptual part


def test_synthesize_and_balanced_augmentation():
    torch.manual_seed(0)
    g, _ = build_models(tiny_cfg())
    g.eval()
    on = torch.rand(3, 1, 32, 32) * 2 - 1
    apex, src, cls = synthesize(g, on, [0, 2], n_per_onset=2, seed=5)
    assert apex.shape == (12, 1, 32, 32)
    assert src.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert cls.tolist() == [0, 0, 2, 2] * 3
    again, _, _ = synthesize(g, on, [0, 2], n_per_onset=2, seed=5, batch_size=5)
    assert torch.equal(apex, again)                                    # same seed, any batching
    assert not torch.equal(apex[0], apex[1])                           # different noise draws
    labels = torch.tensor([0, 0, 1])
    aug, asrc, acls = balanced_augmentation(g, on, labels, seed=1)
    counts = torch.bincount(labels, minlength=3) + torch.bincount(acls, minlength=3)
    assert counts.tolist() == [2, 2, 2] and len(aug) == 3
    aug, asrc, acls = balanced_augmentation(g, on, labels, target_per_class=4, seed=1)
    assert (torch.bincount(labels, minlength=3) + torch.bincount(acls, minlength=3)).tolist() == [4, 4, 4]
    # 9 faces from 3 onsets, round-robin over a fixed permutation: every onset 3 times, never one favoured
    assert torch.bincount(asrc, minlength=3).tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="target_per_class 1 is below the largest real class count 2"):
        balanced_augmentation(g, on, labels, target_per_class=1, seed=1)
    with pytest.raises(ValueError):
        synthesize(g, on, [3])


def test_vgg_perceptual_missing_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=VGG16_FILE):
        build_perceptual("vgg16")
    with pytest.raises(FileNotFoundError, match="cannot download"):
        VGGPerceptual(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="unknown perceptual"):
        build_perceptual("lpips")


def test_vgg_perceptual_loads_a_saved_state_dict(tmp_path, monkeypatch):
    from torchvision.models.vgg import cfgs, make_layers
    torch.manual_seed(0)
    features = make_layers(cfgs["D"])                                  # VGG16's convolutional part
    sd = {f"features.{k}": v for k, v in features.state_dict().items()}
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    path = tmp_path / "hub" / "checkpoints" / VGG16_FILE
    torch.save(sd, path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    per = build_perceptual("vgg16")                                    # found in the (fake) torch cache
    assert torch.equal(per.features[0].weight, features[0].weight)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    assert float(per(None, x, x)) == 0.0
    y = (x + 0.5).clamp(-1, 1).requires_grad_(True)
    loss = per(None, x, y)
    loss.backward()
    assert loss.item() > 0 and y.grad.abs().sum() > 0
    assert all(p.grad is None for p in per.parameters())
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match="not a torchvision VGG16"):
        VGGPerceptual(tmp_path / "bad.pth")


def test_cli_train_writes_run(tmp_path, monkeypatch, shared_data, capsys):
    from icegan.cli import main
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path / "data"))          # pair cache goes here
    args = ["gan", "train", "--config", "configs/gan_casme2_cpu.yaml", "--fold", "sub02", "name=t",
            f"out_dir={tmp_path}", f"data.root={shared_data / 'casme2'}", "data.img_size=32",
            "data.apex_neighbors=0", "model.g_base_channels=8",
            "model.g_max_channels=16", "model.d_base_channels=8", "train.batch_size=4",
            "train.progress=false", "train.max_minutes=null"]
    rc = main(args + ["data.train_subjects=[sub01,sub04,sub13,sub16]", "train.epochs=1"])
    assert rc == 0
    run = tmp_path / "t"
    split = __import__("json").loads((run / "split.json").read_text())
    assert split["holdout_subjects"] == ["sub02"] and split["n_train_clips"] == 10
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "samples" / "epoch_001.png").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert list((tmp_path / "data" / "cache").glob("gan_pairs_casme2_32_k0_*.npz"))
    _, _, cfg, payload = load_checkpoint(run / "checkpoints" / "last.pt")
    assert cfg.data.holdout_subjects == ["sub02"] and "loss/l1" in payload["history"][0]
    # the same folder with other training subjects: refused in one line before its config or split is rewritten
    before = {f: (run / f).read_text() for f in ("config.yaml", "split.json")}
    capsys.readouterr()
    assert main(args + ["data.train_subjects=[sub01,sub04,sub13,sub17]", "train.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan gan train: error: ") and "was trained on other training pairs" in err
    assert {f: (run / f).read_text() for f in before} == before
    assert load_checkpoint(run / "checkpoints" / "last.pt")[3]["epoch"] == 1


def motion_cfg(**train) -> GanConfig:
    cfg = tiny_cfg(**train)
    cfg.model.motion_head, cfg.model.motion_prior, cfg.model.d_motion_input = True, "farneback", True
    return cfg


def test_motion_prior_needs_the_motion_head():
    cfg = tiny_cfg()
    cfg.model.motion_prior = "tvl1"
    with pytest.raises(ValueError, match="motion_head"):
        build_models(cfg)


def test_train_with_motion_prior_and_motion_discriminator(tmp_path):
    """train_gan fills the class-mean flow prior from its pairs, keeps it through a checkpoint and a resume."""
    torch.manual_seed(0)
    n = 16
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    base = 0.6 * torch.sin(xx / 2.5 + yy / 4)[None, None] + 0.1 * torch.randn(n, 1, 32, 32)
    from icegan.models.generator import warp_backward
    shift = torch.zeros(n, 2, 32, 32)
    y = torch.arange(n) % 2                                           # class 0 moves right, class 1 down
    shift[y == 0, 0], shift[y == 1, 1] = 1.0, 1.0
    on, ap = base.clamp(-1, 1), warp_backward(base, shift).clamp(-1, 1)
    cfg = motion_cfg(epochs=1)
    cfg.model.motion_prior_symmetric = False
    st = train_gan(on, ap, y, cfg, device="cpu", out_dir=tmp_path)
    prior = st.generator.motion_prior
    inner = (slice(None), slice(8, 24), slice(8, 24))
    assert float(prior[0][0][inner[1:]].median()) > 0.5 > abs(float(prior[0][1][inner[1:]].median()))
    assert float(prior[1][1][inner[1:]].median()) > 0.5 > abs(float(prior[1][0][inner[1:]].median()))
    assert prior[2].abs().max() == 0                                   # no pairs of class 2
    g, d, _, _ = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    torch.testing.assert_close(g.motion_prior, prior)
    z = torch.randn(n, cfg.model.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(g(on, z, y), st.generator(on, z, y))
        assert d(ap, y, onset=on).exp_len.shape == (n, 3)
    # resuming does not recompute the prior (it comes from the checkpoint)
    cfg2 = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=2))
    st2 = train_gan(on, ap, y, cfg2, device="cpu", out_dir=tmp_path)
    torch.testing.assert_close(st2.generator.motion_prior, prior)


def test_diversity_metrics_known_values():
    from icegan.gan.evaluate import diversity_metrics
    onset = np.zeros((2, 2, 2), np.uint8)
    # 2 onsets x 2 classes x 2 draws, synthesize order: onset, class, draw
    vals = [0, 2, 10, 10, 0, 0, 0, 0]
    syn = np.stack([np.full((2, 2), v, np.uint8) for v in vals])
    src = np.repeat(np.arange(2), 4)
    m = diversity_metrics(syn, onset, src, 2, 2)
    assert m["z_diversity"] == pytest.approx((2 + 0 + 0 + 0) / 4)
    assert m["class_diversity"] == pytest.approx((10 + 0) / 2)
    assert m["mean_abs_change_from_onset"] == pytest.approx(sum(vals) / 8)
    copy = diversity_metrics(np.zeros((8, 2, 2), np.uint8), onset, src, 2, 2)
    assert copy == {"z_diversity": 0.0, "class_diversity": 0.0, "mean_abs_change_from_onset": 0.0}
    with pytest.raises(ValueError, match="faces for"):
        diversity_metrics(syn[:7], onset, src[:7], 2, 2)


def test_diversity_hinge_known_values_and_training_term():
    from icegan.gan.losses import diversity_hinge
    a = torch.zeros(2, 1, 4, 4)
    b = torch.full((2, 1, 4, 4), 0.004)
    assert diversity_hinge(a, b, 0.01).item() == pytest.approx(0.6)        # (0.01 - 0.004) / 0.01
    assert diversity_hinge(a, a + 0.02, 0.01).item() == 0.0
    b.requires_grad_(True)
    diversity_hinge(a, b, 0.01).backward()
    torch.testing.assert_close(b.grad, torch.full_like(b, -1 / (0.01 * b.numel())))  # pushes the draws apart
    with pytest.raises(ValueError, match="target"):
        diversity_hinge(a, a, 0.0)
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    cfg = tiny_cfg(epochs=1)
    cfg.loss.mode_seeking = 1.0
    st = train_gan(on, on.clone(), torch.arange(8) % 3, cfg, device="cpu")
    assert 0.0 <= st.history[0]["loss/mode_seeking"] <= 1.0


def test_amp_policy_per_device_and_dtype():
    """CUDA: bf16 where supported (no scaler), else fp16 with a GradScaler; CPU: only explicit bf16."""
    from icegan.gan.trainer import amp_policy
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert amp_policy(cuda, True, "auto", bf16_supported=True) == (True, torch.bfloat16, False)
    assert amp_policy(cuda, True, "auto", bf16_supported=False) == (True, torch.float16, True)
    assert amp_policy(cuda, True, "fp16", bf16_supported=True) == (True, torch.float16, True)
    assert amp_policy(cuda, False, "bf16") == (False, torch.float32, False)
    assert amp_policy(cpu, True, "auto") == (False, torch.float32, False)
    assert amp_policy(cpu, True, "bf16") == (True, torch.bfloat16, False)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        amp_policy(cpu, True, "fp16")
    with pytest.raises(ValueError, match="amp_dtype"):
        amp_policy(cpu, True, "half")


def test_bf16_autocast_training_matches_float32(pairs32):
    """The trainer's autocast path (what runs on a GPU) on CPU in bfloat16: every loss stays finite, the
    losses of the first epoch agree with float32 to within bf16 precision (10 %), every parameter of G
    and D is updated, and training lowers L1 as in float32 (8 real pairs, 100 steps: measured L1 0.0259 →
    0.0147 in bf16, 0.0146 in float32; the bound asks for < 0.7× the start and within 10 % of float32)."""
    idx = np.arange(0, 118, 15)[:8]
    on, ap, y = pairs32.select(idx).tensors()
    runs = {}
    for dt in ("auto", "bf16"):                      # auto = float32 on CPU
        cfg = tiny_cfg(epochs=100, amp=True, amp_dtype=dt)
        cfg.loss.counterfactual = 0.0
        g0, d0 = build_models(cfg)
        init = {k: v.clone() for k, v in {**g0.state_dict(), **{"d." + k: v for k, v in d0.state_dict().items()}}.items()}
        st = train_gan(on, ap, y, cfg, device="cpu", init=(g0, d0))
        runs[dt] = (st, init)
    st16, init16 = runs["bf16"]
    st32, _ = runs["auto"]
    for h in st16.history:
        assert all(np.isfinite(v) for v in h.values() if isinstance(v, float))
    for key in ("loss/l1", "loss/d_total", "loss/g_total"):
        a, b = st16.history[0][key], st32.history[0][key]
        assert abs(a - b) <= 0.1 * abs(b), (key, a, b)
    assert st16.history[-1]["loss/l1"] < 0.7 * st16.history[0]["loss/l1"]
    assert abs(st16.history[-1]["loss/l1"] - st32.history[-1]["loss/l1"]) <= 0.1 * st32.history[-1]["loss/l1"]
    now = {**st16.generator.state_dict(), **{"d." + k: v for k, v in st16.discriminator.state_dict().items()}}
    named = dict(st16.generator.named_parameters()) | {"d." + k: v for k, v in st16.discriminator.named_parameters()}
    unchanged = [k for k in named if torch.equal(now[k], init16[k])]
    assert not unchanged, unchanged


def test_adversarial_losses_are_float32_outside_autocast(monkeypatch):
    """CUDA autocast refuses F.binary_cross_entropy on probabilities ("unsafe to autocast"), so a GPU run with
    train.amp (the default) stopped at its first step. The capsule-length BCE now runs in float32 with autocast off.
    CPU autocast accepts the op, so the CUDA refusal is emulated: BCE raises whenever autocast is on."""
    import icegan.gan.losses as losses
    from icegan.gan.losses import adversarial_d_loss, adversarial_g_loss
    plain = torch.nn.functional.binary_cross_entropy

    def like_cuda(*args, **kwargs):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("binary_cross_entropy is unsafe to autocast")
        return plain(*args, **kwargs)
    monkeypatch.setattr(losses.F, "binary_cross_entropy", like_cuda)
    torch.manual_seed(0)
    real, fake = torch.rand(6, 2).bfloat16(), torch.rand(6, 2).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d, g = adversarial_d_loss(real, fake), adversarial_g_loss(fake)
    assert d.dtype == torch.float32 and g.dtype == torch.float32
    assert torch.equal(d, adversarial_d_loss(real.float(), fake.float()))
    assert torch.equal(g, adversarial_g_loss(fake.float()))
    assert adversarial_g_loss(torch.rand(3, 2, device="meta")).device.type == "meta"    # no autocast there: no error


def test_trainer_hflip_flips_onset_and_apex_together(monkeypatch):
    """hflip mirrors the onset and apex of a pair together: with apex = onset, the apex the identity loss sees is the
    onset the joint loss sees, at every step."""
    import torch
    import icegan.gan.trainer as tr
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1          # asymmetric faces; apex = onset
    aps, ons = [], []
    real_ip = tr.identity_preserving_loss

    def ip(fake, x_ap, per, alpha):
        aps.append(x_ap.detach().clone())
        return real_ip(fake, x_ap, per, alpha)
    monkeypatch.setattr(tr, "identity_preserving_loss", ip)

    def extra(g, x_on, z, y, fake):
        ons.append(x_on.detach().clone())
        return fake.sum() * 0
    cfg = tiny_cfg(epochs=2, hflip=True)
    cfg.loss.perceptual = "none"
    tr.train_gan(on, on.clone(), torch.arange(8) % 3, cfg, device="cpu", extra_loss_fn=extra)
    assert len(aps) == len(ons) == 2
    for a, o in zip(aps, ons):
        assert torch.equal(a, o)                   # the pair is flipped as one


def test_trainer_counterfactual_class_differs(monkeypatch):
    """The counterfactual branch draws a class c' different from c for every sample (randint(1, K) added to c mod K)."""
    import torch
    import icegan.gan.trainer as tr
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    cs = []
    cfg = tiny_cfg(epochs=3)
    cfg.loss.perceptual = "none"
    cfg.loss.counterfactual = 1.0
    cfg.loss.mode_seeking = 0.0
    g, d = tr.build_models(cfg)
    decode = g.decode
    monkeypatch.setattr(g, "decode", lambda onset, e, gs, z, c: (cs.append(c.clone()), decode(onset, e, gs, z, c))[1])
    tr.train_gan(on, on.clone(), torch.arange(8) % 3, cfg, device="cpu", init=(g, d))
    assert len(cs) == 3
    for c in cs:
        assert c.shape == (16,) and bool((c[:8] != c[8:]).all())   # c' != c for every sample


@pytest.mark.parametrize("mode_seeking, perceptual, copies", [(0.0, "embedding", 2), (1.0, "embedding", 3),
                                                               (1.0, "none", 3)])
def test_trainer_encodes_each_onset_once_per_step(monkeypatch, mode_seeking, perceptual, copies):
    """The generator pass encodes the B onsets of a step once and decodes their 2B (counterfactual) or 3B (+ mode
    seeking) branches from repeated encodings; the perceptual term takes the onsets' embedding from that pass
    instead of running the encoder again (Generator.embed runs on the fakes only)."""
    import icegan.gan.trainer as tr
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    cfg = tiny_cfg(epochs=2)
    cfg.loss.perceptual, cfg.loss.counterfactual, cfg.loss.mode_seeking = perceptual, 1.0, mode_seeking
    g, d = tr.build_models(cfg)
    encoded, decoded, embedded = [], [], []
    encode, decode, embed = g.encode, g.decode, g.embed
    monkeypatch.setattr(g, "encode", lambda x: (encoded.append(len(x)), encode(x))[1])
    monkeypatch.setattr(g, "decode", lambda o, e, gs, z, c: (decoded.append(len(o)), decode(o, e, gs, z, c))[1])
    monkeypatch.setattr(g, "embed", lambda x: (embedded.append(len(x)) if g.training else None, embed(x))[1])
    tr.train_gan(on, on.clone(), torch.arange(8) % 3, cfg, device="cpu", init=(g, d))
    assert encoded == [8, 8] and decoded == [8 * copies] * 2
    # embed runs on the 2B fakes only (one step per epoch); the 2B onsets' target comes from the generator pass
    assert embedded == ([16, 16] if perceptual == "embedding" else [])


def test_generator_decode_of_repeated_encodings_is_the_forward_pass():
    """decode(onset, *encode(onset) repeated, z, c) equals G(onset repeated, z, c), motion head included; the
    perceptual term with the embedding handed in equals the one that embeds the onsets itself."""
    from icegan.gan.perceptual import EmbeddingPerceptual
    from icegan.models.generator import Generator
    torch.manual_seed(0)
    for motion in (False, True):
        g = Generator(img_size=32, base_channels=8, max_channels=16, id_dim=16, z_dim=4, motion_head=motion)
        if motion:
            g.set_motion_prior(torch.randn(3, 2, 32, 32))
        on = torch.rand(4, 1, 32, 32) * 2 - 1
        z, c = torch.randn(12, 4), torch.tensor([0, 1, 2, 0] * 3)
        e, gs = g.encode(on)
        e2, gs2 = g.encode(on[:2])         # each face encoded alone: repeating an encoding is encoding a repeat
        torch.testing.assert_close(e2, e[:2], rtol=0, atol=0)
        for a, b in zip(gs2, gs):
            torch.testing.assert_close(a, b[:2], rtol=0, atol=0)
        fast = g.decode(on.repeat(3, 1, 1, 1), e.repeat(3, 1), [t.repeat(3, 1, 1, 1) for t in gs], z, c)
        torch.testing.assert_close(fast, g(on.repeat(3, 1, 1, 1), z, c), rtol=1e-5, atol=1e-6)
        per = EmbeddingPerceptual()
        torch.testing.assert_close(per(g, on, fast[:4], onset_embedding=e), per(g, on, fast[:4]))
    with pytest.raises(ValueError, match="Generator.decode: onset \\(4, ...\\), e \\(3, 16\\)"):
        g.decode(on, e[:3], gs, z[:4], c[:4])
    with pytest.raises(ValueError, match="onset_embedding \\(4, 5\\) is not the generator's embedding of 4"):
        EmbeddingPerceptual()(g, on, on, onset_embedding=torch.zeros(4, 5))


def test_trainer_checkpoint_cadence(monkeypatch, tmp_path):
    """checkpoint_every=2 over 3 epochs saves after epochs 2 and 3 (the last), not 1."""
    import torch
    import icegan.gan.trainer as tr
    saved = []
    real = tr.save_checkpoint

    def rec(path, cfg, g, d, epoch, *a, **k):
        saved.append(epoch)
        return real(path, cfg, g, d, epoch, *a, **k)
    monkeypatch.setattr(tr, "save_checkpoint", rec)
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    cfg = tiny_cfg(epochs=3, checkpoint_every=2, sample_every=0)
    cfg.loss.perceptual = "none"
    tr.train_gan(on, on.clone(), torch.arange(8) % 3, cfg, device="cpu", out_dir=tmp_path)
    assert saved == [2, 3]


def test_diversity_hinge_penalises_identical_draws_fully():
    """Two identical non-zero draws differ by 0: the hinge is 1 (it measures |a − b|, not |a + b|)."""
    from icegan.gan.losses import diversity_hinge
    a = torch.full((1, 1, 2, 2), 0.5)
    assert diversity_hinge(a, a.clone(), 0.01).item() == pytest.approx(1.0)
    assert diversity_hinge(a, -a, 0.01).item() == 0.0                       # |0.5 - (-0.5)| = 1 >= 0.01


def test_vgg_perceptual_is_the_mse_of_imagenet_normalised_relu3_3_features(tmp_path):
    """[-1, 1] grey → [0, 1], repeated to RGB, ImageNet mean/std, VGG16 features[:16] (ending at relu3_3), MSE:
    against the same steps written out; the cost network stays in eval mode when the module is set to train."""
    from torchvision.models.vgg import cfgs, make_layers
    torch.manual_seed(0)
    features = make_layers(cfgs["D"][:9])                              # VGG16 up to relu3_3 (16 layers)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / VGG16_FILE)
    per = VGGPerceptual(tmp_path / VGG16_FILE)
    assert len(per.features) == 16 and isinstance(per.features[-1], torch.nn.ReLU)        # relu3_3
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def ref(x):
        return features(((x + 1) / 2).repeat(1, 3, 1, 1).sub(mean).div(std))
    onset, fake = torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(per(None, onset, fake), F.mse_loss(ref(fake), ref(onset)), rtol=1e-5, atol=1e-7)
    per.train()
    assert per.training and not per.features.training


def test_mean_abs_change_from_onset_is_per_face_against_its_own_onset():
    from icegan.gan.evaluate import diversity_metrics
    onset = np.stack([np.full((2, 2), 100, np.uint8), np.full((2, 2), 10, np.uint8)])
    syn = np.stack([np.full((2, 2), v, np.uint8) for v in (90, 110, 10, 14)])          # 2 onsets x 2 classes x 1
    src = np.array([0, 0, 1, 1])
    m = diversity_metrics(syn, onset, src, 2, 1)
    assert m["mean_abs_change_from_onset"] == pytest.approx((10 + 10 + 0 + 4) / 4)
    assert m["z_diversity"] is None and m["class_diversity"] == pytest.approx((20 + 4) / 2)


def test_class_id_names_and_ids():
    assert [class_id(x) for x in ("negative", "Positive", "SURPRISE", 0, "1", 2)] == [0, 1, 2, 0, 1, 2]
    for bad in (3, "3", -1, "others"):
        with pytest.raises(ValueError, match="unknown class") as exc:
            class_id(bad)
        assert "MEGC2019 class" not in str(exc.value)                  # others: no class of the composite
    for emotion, cls in (("happiness", "positive"), ("Repression", "negative"), ("contempt", "negative")):
        with pytest.raises(ValueError) as exc:                          # a sheet's emotion: its class named
            class_id(emotion)
        assert str(exc.value).endswith(f"({emotion.lower()} is the MEGC2019 class '{cls}')")


def test_to_tensor_maps_grey_levels_to_minus_one_one():
    t = to_tensor(np.array([[[0, 255], [127, 128]]], np.uint8))
    assert t.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(t[0, 0].numpy(), [[-1.0, 1.0], [127 / 127.5 - 1, 128 / 127.5 - 1]], rtol=0, atol=1e-7)


def _pairset(clips, subjects):
    n = len(clips)
    faces = np.arange(n, dtype=np.uint8)[:, None, None].repeat(2, 1).repeat(2, 2)
    return PairSet(faces, faces, np.zeros(n, np.int64), list(subjects), list(clips), np.arange(n), np.arange(n) + 10)


def test_unique_clips_keeps_the_first_pair_of_each_clip():
    ps = _pairset(["sub01/a", "sub01/a", "sub01/b", "sub01/a"], ["casme2/sub01"] * 4)
    u = ps.unique_clips()
    assert u.clips == ["sub01/a", "sub01/b"] and u.apex_frames.tolist() == [10, 12]


def test_by_subjects_takes_prefixed_ids_of_any_dataset():
    ps = _pairset(["006/x", "007/y", "sub01/z"], ["samm/006", "samm/007", "casme2/sub01"])
    assert ps.by_subjects(["samm/006", "sub01"]).clips == ["006/x", "sub01/z"]
    assert ps.by_subjects(exclude=["samm/007"]).clips == ["006/x", "sub01/z"]


def test_list_face_files_lists_only_image_files(tmp_path):
    cv2.imwrite(str(tmp_path / "b.png"), np.full((8, 6), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((8, 6), 50, np.uint8))
    (tmp_path / "notes.txt").write_text("not a face")
    files = list_face_files(tmp_path)
    faces, names = np.stack([fit_square(read_grey(f), 4) for f in files]), [f.stem for f in files]
    assert names == ["a", "b"] and faces.shape == (2, 4, 4) and faces.dtype == np.uint8


def _manifest(root, apex_file: bool):
    (root / "manifest.csv").write_text(
        "subject,filename,emotion,class3,onset,apex,offset,verified,apex_in_folder,note\n"
        "sub01,EP01_01,happiness,positive,10,20,30,True,True,\n"
        "sub01,EP02_01,surprise,surprise,5,8,12,True,False,apex not in folder\n")
    clip = root / "sub01" / "EP01_01"
    clip.mkdir(parents=True)
    frames = (10, 19, 20, 21) if apex_file else (10, 19, 21)
    for f in frames:
        cv2.imwrite(str(clip / f"img{f}.jpg"), np.full((8, 8), f, np.uint8))


def test_pair_loader_pairs_apex_neighbours_and_refuses_a_missing_apex(tmp_path):
    _manifest(tmp_path, apex_file=True)
    ps = load_casme2_pairs(tmp_path, img_size=8, apex_neighbors=1, cache=False)
    assert ps.apex_frames.tolist() == [19, 20, 21] and ps.onset_frames.tolist() == [10, 10, 10]
    assert ps.skipped == [("sub01/EP02_01", "apex not in folder")]         # verified, but its apex frame is absent
    with pytest.raises(ValueError, match="apex_neighbors must be >= 0"):
        load_casme2_pairs(tmp_path, img_size=8, apex_neighbors=-1, cache=False)
    other = tmp_path / "other"
    other.mkdir()
    _manifest(other, apex_file=False)
    with pytest.raises(FileNotFoundError, match=r"row 2 \(sub01/EP01_01\): apex frame missing"):
        load_casme2_pairs(other, img_size=8, apex_neighbors=1, cache=False)


def test_prepared_pairs_skip_a_substituted_neighbour_and_count_unlabelled_clips(monkeypatch):
    """A neighbour the clip lacks was replaced by the nearest frame in the cache: apex+1 = the apex frame itself is not
    paired twice; a clip without a composite class (-1) is counted, not paired (preprocessing replaced by its output)."""
    import dataclasses
    import types

    import pandas as pd

    import icegan.data.prepare as prep
    from icegan.data.prepare import PrepareConfig
    from icegan.gan.pairs import load_prepared_pairs
    manifest = pd.DataFrame({"index": [0, 1], "subject": ["samm/006", "samm/006"], "clip": ["006_1_2", "006_1_3"],
                             "class3": [2, -1], "onset": [10, 30], "apex": [20, 40], "apex_m2": [18, 38],
                             "apex_m1": [19, 39], "apex_p1": [20, 41], "apex_p2": [20, 42]})
    faces = np.arange(2, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
    frames = types.SimpleNamespace(onset=faces, apex=faces + 10, apex_neighbours=np.stack([faces + 20] * 4, axis=1))
    got = []

    def prepare_dataset(cfg):
        got.append(cfg)
        return types.SimpleNamespace(manifest=manifest, frames=frames, skipped={"key": ["samm/007/x"], "reason": ["r"]})
    monkeypatch.setattr(prep, "prepare_dataset", prepare_dataset)
    ps = load_prepared_pairs(PrepareConfig(progress=False), img_size=8, apex_neighbors=2, progress=False)
    assert ps.apex_frames.tolist() == [20, 19, 18] and ps.onset_frames.tolist() == [10, 10, 10]
    assert ps.labels.tolist() == [2, 2, 2] and ps.clips == ["006/006_1_2"] * 3 and ps.subjects == ["samm/006"] * 3
    assert ps.n_not_composite == 1 and ps.skipped == [("samm/007/x", "r")]
    assert (got[0].size, got[0].color) == (8, "gray") and dataclasses.is_dataclass(got[0])


def test_a_float16_runs_gradient_scaler_is_kept_in_the_checkpoint_and_resumed(tmp_path, monkeypatch):
    """With a gradient scaler (float16 on a GPU; here an enabled CPU scaler stands in), last.pt keeps its state and a
    resumed run continues with that loss scale, not a fresh 65536 (which would skip steps until it fell again); a
    run without a scaler writes none."""
    import icegan.gan.trainer as tr
    made = []
    real_scaler = torch.amp.GradScaler

    def scaler(device, enabled=True, **kw):
        made.append(real_scaler("cpu", enabled=enabled, **kw))
        return made[-1]
    monkeypatch.setattr(torch.amp, "GradScaler", scaler)
    monkeypatch.setattr(tr, "amp_policy", lambda *a, **k: (False, torch.float32, True))
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    y = torch.arange(8) % 3
    cfg = tiny_cfg(epochs=1)
    train_gan(on, on.clone(), y, cfg, device="cpu", out_dir=tmp_path / "a")
    ckpt = tmp_path / "a" / "checkpoints" / "last.pt"
    payload = torch.load(ckpt, weights_only=False)
    assert payload["scaler"] == made[0].state_dict() and payload["scaler"]["scale"] == 65536.0
    payload["scaler"]["scale"] = 128.0                 # as after some overflowing steps of a long float16 run
    torch.save(payload, ckpt)
    seen = []
    real_step = real_scaler.step
    monkeypatch.setattr(real_scaler, "step", lambda self, opt, *a, **k: (seen.append(self.get_scale()),
                                                                         real_step(self, opt, *a, **k))[1])
    train_gan(on, on.clone(), y, tiny_cfg(epochs=2), device="cpu", out_dir=tmp_path / "a")
    assert seen and seen[0] == 128.0
    monkeypatch.setattr(tr, "amp_policy", lambda *a, **k: (False, torch.float32, False))
    train_gan(on, on.clone(), y, cfg, device="cpu", out_dir=tmp_path / "b")
    assert "scaler" not in torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=False)


def test_a_non_finite_loss_under_mixed_precision_says_how_to_rule_it_out(tmp_path):
    """A non-finite GAN loss computed under autocast names the precision and train.amp=false (float16: its 65504
    limit); in float32 the message is as before."""
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    y = torch.arange(8) % 3

    def nan(g, onset, z, c, fake):
        return fake.sum() * float("nan")
    with pytest.raises(FloatingPointError, match=r"at epoch 1, step 1; training stopped before the update, no "
                                                 r"checkpoint was written yet. It was computed in mixed precision "
                                                 r"\(bfloat16, train.amp=true\): to train in float32, start a new "
                                                 r"run with train.amp=false \(icegan gan train: another name or "
                                                 r"out_dir\) or gan.amp=false \(train.py: another --out\), or lower the learning "
                                                 r"rate or check the inputs"):
        train_gan(on, on.clone(), y, tiny_cfg(epochs=1, amp=True, amp_dtype="bf16"), device="cpu",
                  extra_loss_fn=nan)
    with pytest.raises(FloatingPointError, match=r"no checkpoint was written yet. Lower the learning rate or check "
                                                 r"the inputs \(and extra_loss_fn\) for NaN/Inf.$"):
        train_gan(on, on.clone(), y, tiny_cfg(epochs=1, amp=False), device="cpu", extra_loss_fn=nan)
    from icegan.gan.trainer import _check_finite
    with pytest.raises(FloatingPointError, match=r"mixed precision \(float16, train.amp=true; float16 overflows "
                                                 r"beyond 65504\): to train in float32"):
        _check_finite(torch.tensor(float("inf")), "generator", 0, 0, None, torch.float16)
