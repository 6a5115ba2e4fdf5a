"""Precision and device on a resume (audit 62): a GAN run records the precision that ran (autocast, its dtype, the
gradient scaler), not only the train.amp keys asked for, and a resume compares that; ``train.amp_dtype=fp16`` on a
CPU and a self-supervised run's missing device are refused before any data is read or folder made; a LOSO run
folder's ``device`` is compared as resolved on the machine (environment.jsonl), and a config difference is worded
with the values config.yaml holds, not with neutral keys stripped. No CUDA here: torch.cuda is monkeypatched."""
import json

import pytest
import torch
from _gan_sizes import fake_casme2_pairs, tiny_gan_config, tiny_gan_train_args
from _runs import centroid_fold_fn

FP32 = {"autocast": False, "dtype": "float32", "scaler": False}


def _fake_gpu(monkeypatch, bf16: bool = True):
    """torch.cuda as on a one-GPU machine (Ampere and later with ``bf16``), for device resolution alone."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)


def _pairs(n: int = 6):
    torch.manual_seed(0)
    on = torch.rand(n, 1, 32, 32) * 2 - 1
    return on, (on + 0.1 * torch.randn_like(on)).clamp(-1, 1), torch.arange(n) % 3


def _trained(tmp_path, **train):
    """A one-epoch tiny GAN trained on the CPU into ``tmp_path/run`` (``train``: GanTrainConfig fields)."""
    from icegan.gan.trainer import train_gan
    cfg = tiny_gan_config(32)
    cfg.train.epochs, cfg.train.batch_size, cfg.train.sample_every, cfg.train.progress = 1, 3, 0, False
    for k, v in train.items():
        setattr(cfg.train, k, v)
    on, ap, y = _pairs()
    train_gan(on, ap, y, cfg, out_dir=tmp_path / "run")
    return cfg, (on, ap, y)


def test_gan_train_records_the_precision_that_ran_in_checkpoint_and_split(tmp_path, monkeypatch):
    """train.amp=true (the default) on a CPU trains in float32 without autocast: that is what the checkpoint and
    split.json say, beside the amp keys asked for."""
    from icegan.cli import main
    from icegan.gan import pairs as gan_pairs
    pairs = fake_casme2_pairs(8)
    monkeypatch.setattr(gan_pairs, "load_casme2_pairs", lambda *a, **k: pairs)
    assert main(tiny_gan_train_args(tmp_path, "train.epochs=1", "--device", "cpu")) == 0
    payload = torch.load(tmp_path / "t" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert payload["config"]["train"]["amp"] is True
    assert payload["precision"] == FP32
    assert json.loads((tmp_path / "t" / "split.json").read_text())["precision"] == FP32


def test_bf16_on_cpu_is_recorded_as_autocast(tmp_path):
    _trained(tmp_path, amp_dtype="bf16")
    payload = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert payload["precision"] == {"autocast": True, "dtype": "bfloat16", "scaler": False}


def test_resume_compares_the_precision_that_runs_not_the_amp_keys(tmp_path, monkeypatch):
    """train.amp=false on the CPU changes nothing (float32 either way): resumed. The same config on a GPU would train
    in bfloat16 autocast: refused, naming both precisions."""
    from icegan.gan.trainer import GanCheckpointError, check_resumable
    cfg, (on, ap, y) = _trained(tmp_path)
    cfg.train.epochs = 2
    off = tiny_gan_config(32)
    off.train = type(cfg.train)(**{**vars(cfg.train), "amp": False})
    assert check_resumable(tmp_path / "run", off, on, ap, y)["precision"] == FP32
    _fake_gpu(monkeypatch)
    cfg.train.device = "cuda"
    with pytest.raises(GanCheckpointError, match=r"last\.pt was trained in float32 \(no autocast\), and this run "
                                                 r"would train in bfloat16 autocast \(on cuda, with train\.amp=True"):
        check_resumable(tmp_path / "run", cfg, on, ap, y)


def test_the_main_jobs_fold_gan_refuses_another_precision_on_resume(tmp_path, monkeypatch):
    """train_gan's own resume (a main-job fold's GAN) compares the recorded precision too: the same device spelling
    on another machine (a CPU run's "auto" resumed on a GPU) would train on in another precision."""
    from icegan.gan import trainer as tr
    cfg, (on, ap, y) = _trained(tmp_path)
    cfg.train.epochs = 2
    monkeypatch.setattr(tr, "_amp_and_precision", lambda dev, tc: (
        (True, torch.bfloat16, False), {"autocast": True, "dtype": "bfloat16", "scaler": False}))
    with pytest.raises(tr.GanCheckpointError, match=r"trained in float32 \(no autocast\), and this run would train "
                                                    r"in bfloat16 autocast \(on cpu, with train\.amp=True"):
        tr.train_gan(on, ap, y, cfg, out_dir=tmp_path / "run")


def test_a_checkpoint_without_a_precision_record_keeps_the_old_rule(tmp_path, monkeypatch):
    """A checkpoint written before the record: train.amp is compared as a setting (refused), train.device is free."""
    from icegan.gan.trainer import GanCheckpointError, check_resumable
    cfg, (on, ap, y) = _trained(tmp_path)
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    payload = torch.load(path, map_location="cpu", weights_only=False)
    del payload["precision"]
    torch.save(payload, path)
    off = tiny_gan_config(32)
    off.train = type(cfg.train)(**{**vars(cfg.train), "amp": False})
    with pytest.raises(GanCheckpointError, match=r"train\.amp: True there, False now"):
        check_resumable(tmp_path / "run", off, on, ap, y)
    _fake_gpu(monkeypatch)
    cfg.train.device = "cuda"
    assert check_resumable(tmp_path / "run", cfg, on, ap, y) is not None


def test_fp16_on_cpu_is_refused_before_the_pairs_load_or_a_folder_is_made(tmp_path, monkeypatch, capsys):
    from icegan.cli import main
    from icegan.gan import pairs as gan_pairs
    loads = []
    monkeypatch.setattr(gan_pairs, "load_casme2_pairs", lambda *a, **k: loads.append(a) or fake_casme2_pairs(8))
    assert main(tiny_gan_train_args(tmp_path, "train.amp_dtype=fp16", "--device", "cpu")) == 2
    assert "train.amp_dtype=fp16 needs a CUDA device" in capsys.readouterr().err
    assert loads == [] and not (tmp_path / "t").exists()


def test_a_resume_message_shows_the_values_config_yaml_holds(tmp_path):
    """config.yaml's gan.amp: true is its neutral value (stripped for the comparison); the message shows it."""
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import LosoStateError, run_loso
    toy = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    run_loso(toy.samples, centroid_fold_fn(toy, []), tmp_path / "r", config={"gan": {"amp": True}}, progress=False)
    with pytest.raises(LosoStateError, match=r"config\.yaml: gan\.amp: True there, False now\)"):
        run_loso(toy.samples, centroid_fold_fn(toy, []), tmp_path / "r", config={"gan": {"amp": False}},
                 progress=False)


def test_device_is_compared_as_resolved(tmp_path, monkeypatch):
    """cpu then auto on a CPU machine: the same device, resumed. auto on a CPU machine then auto where CUDA is found:
    another device, refused with both resolutions. A folder whose environment.jsonl records no device (made before
    it did) keeps the rule of then: compared as spelled."""
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import LosoStateError, run_loso
    toy = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def run(out, device):
        return run_loso(toy.samples, centroid_fold_fn(toy, []), tmp_path / out, config={"device": device},
                        progress=False)
    run("a", "cpu")
    run("a", "auto")
    records = [json.loads(line) for line in (tmp_path / "a" / "environment.jsonl").read_text().splitlines()]
    assert [r["device"] for r in records] == ["cpu", "cpu"]
    run("b", "auto")
    with monkeypatch.context() as m:
        _fake_gpu(m)
        with pytest.raises(LosoStateError, match=r"config\.yaml: device: 'auto' there \(ran on cpu\), 'auto' now "
                                                 r"\(resolves to cuda:0\)\): .* resume with device=cpu, or use another "
                                                 r"--out"):
            run("b", "auto")
    run("c", "cpu")
    env = tmp_path / "c" / "environment.jsonl"
    env.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "device"}) + "\n"
                           for line in env.read_text().splitlines()))
    with pytest.raises(LosoStateError, match=r"device: 'cpu' there, 'auto' now"):
        run("c", "auto")


def test_selfsup_checks_the_device_before_the_dataset(tmp_path, monkeypatch):
    from flownet.data import real_pairs
    from flownet.selfsup import SelfSupConfig, train_selfsup
    built = []
    monkeypatch.setattr(real_pairs, "RealFramePairs", lambda *a, **k: built.append(k) or (_ for _ in ()).throw(
        AssertionError("the dataset was built")))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = SelfSupConfig()
    cfg.out_dir, cfg.train.device = str(tmp_path), "cuda"
    with pytest.raises(ValueError, match=r"train\.device='cuda'"):
        train_selfsup(cfg)
    assert built == [] and list(tmp_path.iterdir()) == []
