"""Review 58 (main job): GAN widths and flow settings the run cannot use are refused when the config is read, a
summary.md that train.py did not write is left alone, a finished fold's GAN checkpoint keeps no optimiser states,
and the fold bar and the Ctrl-C line name the fold and folder they mean."""
import logging
import re

import numpy as np
import pandas as pd
import pytest
import torch
from _flow_sizes import save_main_job_weights

from icegan.config import ConfigError
from icegan.pipeline import FlowSection, load_main_config, run_main, write_summary

TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "data.max_folds=1",
        "gan.epochs=2", "gan.batch_size=8", "gan.base_channels=8", "gan.max_channels=32", "gan.d_base_channels=8",
        "gan.synthetic_ratio=0.5", "recognizer.epochs=2", "recognizer.batch_size=16", "recognizer.name=ststnet"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=1)


# ------------------------------------------------------------------------------------------------ 1: GAN widths

def test_generator_level_widths_are_the_ones_the_generator_builds_and_the_config_check_reads():
    """The config check re-derived the generator's level widths; both now read icegan.models.generator.level_widths."""
    from icegan.models.generator import Generator, level_widths
    assert level_widths(128, 32, 256) == [32, 64, 128, 256, 256, 256]
    assert level_widths(32, 6, 32) == [6, 12, 24, 32]
    g = Generator(img_size=32, base_channels=8, max_channels=16, skip="plain")
    assert g.channels == level_widths(32, 8, 16) == [8, 16, 16, 16] and g.n_levels == 4


@pytest.mark.parametrize("overrides, msg", [
    (["gan.base_channels=12"], "gan.base_channels=12 gives the generator a level of 12 channels"),
    (["gan.base_channels=3"], "gan.base_channels=3 gives the generator a level of 12 channels"),
    (["gan.max_channels=100"], "gan.max_channels=100 gives the generator a level of 100 channels"),
    (["gan.base_channels=6", "data.img_size=32"], "gan.base_channels=6 gives the generator a level of 12 channels"),
])
def test_generator_widths_its_group_norm_cannot_split_are_refused_at_load(overrides, msg):
    """The generator normalises every level with GroupNorm(min(8, C), C): a width above 8 that is not a multiple of 8
    was a torch traceback inside fold 1, after the flow features; now the config is refused, naming the key and the
    width (demo: 64 px, 5 levels)."""
    with pytest.raises(ConfigError, match=re.escape(msg)):
        load_main_config(None, overrides)


@pytest.mark.parametrize("overrides", [["gan.base_channels=4"], ["gan.base_channels=1", "gan.max_channels=8"],
                                       ["gan.base_channels=24", "gan.max_channels=24"], ["gan.max_channels=8"],
                                       ["gan.d_base_channels=1"], ["gan.base_channels=12", "gan.enabled=false"]])
def test_generator_widths_that_build_load(overrides):
    """Widths <= 8 or multiples of 8 build (the discriminator's InstanceNorm takes any width); a disabled GAN's
    widths are not checked (no generator is built)."""
    cfg = load_main_config(None, overrides)
    if cfg.gan.enabled:
        from icegan.models.generator import Generator
        Generator(img_size=cfg.data.img_size, base_channels=cfg.gan.base_channels, max_channels=cfg.gan.max_channels)


# ------------------------------------------------------------------------------------------------ 4: flow.iters

@pytest.mark.parametrize("method", ["tvl1", "farneback", "liteflownet2"])
def test_flow_iters_is_refused_for_a_method_without_refinement_iterations(method):
    """flow.iters with tvl1, farneback or liteflownet2 was accepted and never used (build_flow passes it to
    srflownet and RAFT only), yet it changed the run's config and its feature-cache key."""
    with pytest.raises(ConfigError, match=re.escape(f"flow.iters=3 is not used by flow.method={method}")):
        load_main_config(None, [f"flow.method={method}", "flow.iters=3"])
    assert load_main_config(None, [f"flow.method={method}"]).flow.iters is None


@pytest.mark.parametrize("method", ["srflownet", "raft_small", "raft_large"])
def test_flow_iters_is_kept_for_the_methods_that_use_it(method):
    assert FlowSection(method=method, iters=3).iters == 3
    cfg = load_main_config(None, ["flow.iters=3", "flow.component=expression", "flow.decompose=learned"])
    assert cfg.flow.iters == 3                  # DecFlow's updates (decompose=learned needs srflownet)


# ------------------------------------------------------------------------------------------------ 3: summary.md

def test_summary_md_that_train_py_did_not_write_is_kept(tmp_path, caplog):
    """`--out ~/exp1` wrote ~/summary.md over whatever was there (a user's own notes); now only a file with its own
    heading is replaced, another one is kept with one warning naming it."""
    mine = tmp_path / "summary.md"
    mine.write_text("# my notes\nimportant hand-written results\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="icegan.pipeline"):
        assert write_summary(tmp_path) is None
    assert mine.read_text(encoding="utf-8") == "# my notes\nimportant hand-written results\n"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and str(mine) in warned[0] and "not written by train.py" in warned[0]


def test_summary_md_of_train_py_is_replaced_and_a_missing_one_written(tmp_path):
    path = write_summary(tmp_path)
    assert path == tmp_path / "summary.md" and path.read_text(encoding="utf-8").startswith("# Runs compared\n")
    path.write_text("# Runs compared\n\nstale\n", encoding="utf-8")
    assert "stale" not in write_summary(tmp_path).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------ 5: GAN checkpoint

def test_finished_fold_gan_checkpoint_has_no_optimiser_state_and_still_serves(tmp_path, tiny_weights):
    """Each finished fold kept its GAN's Adam states (2/3 of last.pt) that nothing reads again. Now the fold's
    last.pt holds the models only; `icegan gan eval` / `generate` load it, and a fold scored again (its predictions
    row lost) resumes from it at its last epoch with the same scores."""
    from icegan.gan.trainer import load_checkpoint
    cfg = load_main_config(None, TINY + [f"flow.weights={tiny_weights}"])
    out = tmp_path / "run"
    run_main(cfg, out, progress=False)
    ckpt = out / "folds" / "synthetic_s01" / "gan" / "checkpoints" / "last.pt"
    payload = torch.load(ckpt, weights_only=False)
    assert not [k for k in payload if k.startswith("opt_")]
    assert payload["epoch"] == 2 and {"generator", "discriminator", "config", "history"} <= set(payload)
    g, d, gcfg, _ = load_checkpoint(ckpt)
    assert gcfg.model.g_base_channels == 8
    first = pd.read_csv(out / "predictions.csv")
    (out / "predictions.csv").unlink()
    (out / "metrics.json").unlink()
    run_main(cfg, out, progress=False)
    again = pd.read_csv(out / "predictions.csv")
    pd.testing.assert_frame_equal(first, again)


def test_gan_resume_with_epochs_left_refuses_a_checkpoint_without_optimiser_state(tmp_path):
    """A checkpoint without opt_* (a main-job fold's, finished) cannot continue training: named, not a KeyError."""
    from icegan.gan.trainer import GanCheckpointError, GanConfig, train_gan
    cfg = GanConfig(name="t")
    cfg.data.img_size = 32
    cfg.model.g_base_channels = cfg.model.d_base_channels = 8
    cfg.model.g_max_channels = 16
    cfg.train.epochs, cfg.train.batch_size, cfg.train.progress = 1, 4, False
    torch.manual_seed(0)
    onset, apex = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0])
    train_gan(onset, apex, labels, cfg, device="cpu", out_dir=tmp_path)
    ckpt = tmp_path / "checkpoints" / "last.pt"
    payload = torch.load(ckpt, weights_only=False)
    torch.save({k: v for k, v in payload.items() if not k.startswith("opt_")}, ckpt)
    cfg.train.epochs = 2
    with pytest.raises(GanCheckpointError, match=re.escape(f"{ckpt} holds no optimiser states")):
        train_gan(onset, apex, labels, cfg, device="cpu", out_dir=tmp_path)


def test_train_gan_writes_the_last_epoch_without_optimiser_states_only_when_asked(tmp_path, monkeypatch):
    """The main job read each fold's finished last.pt back and wrote it again without opt_*; train_gan now writes it
    so (final_optimiser_states=False). `icegan gan train` (the default) keeps them; the schedulers stay in both, and
    an earlier epoch's checkpoint (checkpoint_every) keeps them too."""
    from icegan.gan.trainer import GanConfig, train_gan
    cfg = GanConfig(name="t")
    cfg.data.img_size = 32
    cfg.model.g_base_channels = cfg.model.d_base_channels = 8
    cfg.model.g_max_channels = 16
    cfg.train.epochs, cfg.train.batch_size, cfg.train.progress, cfg.train.cosine = 2, 4, False, True
    cfg.train.checkpoint_every = 1
    torch.manual_seed(0)
    onset, apex = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0])
    train_gan(onset, apex, labels, cfg, device="cpu", out_dir=tmp_path / "kept")
    kept = torch.load(tmp_path / "kept" / "checkpoints" / "last.pt", weights_only=False)
    assert {"opt_g", "opt_d", "sched_g", "sched_d"} <= set(kept) and kept["epoch"] == 2
    cfg.train.epochs = 1
    train_gan(onset, apex, labels, cfg, device="cpu", out_dir=tmp_path / "dropped", final_optimiser_states=False)
    cfg.train.epochs = 2        # epoch 1 of 2 (checkpoint_every=1): not the last, states kept
    partial = tmp_path / "partial"
    seen = []
    import icegan.gan.trainer as trainer
    real_save = trainer.save_checkpoint

    def spy(path, cfg_, g, d, epoch, history, opt_g=None, opt_d=None, *a, **kw):
        seen.append((epoch, opt_g is not None, opt_d is not None))
        return real_save(path, cfg_, g, d, epoch, history, opt_g, opt_d, *a, **kw)

    monkeypatch.setattr(trainer, "save_checkpoint", spy)
    train_gan(onset, apex, labels, cfg, device="cpu", out_dir=partial, final_optimiser_states=False)
    assert seen == [(1, True, True), (2, False, False)]
    dropped = torch.load(tmp_path / "dropped" / "checkpoints" / "last.pt", weights_only=False)
    assert not [k for k in dropped if k.startswith("opt_")]
    assert {"sched_g", "sched_d", "generator", "discriminator", "history"} <= set(dropped) and dropped["epoch"] == 1


def test_a_weights_file_is_hashed_once_whatever_sha_it_is_compared_with(tmp_path, monkeypatch):
    """icegan predict resolves the flow settings with the weights file each provenance names: the file was hashed
    again for every recorded SHA-256 it was compared with (the cache key held the SHA); now once per file version."""
    import hashlib
    import os
    import shutil
    from pathlib import Path

    import icegan.pipeline as pipeline
    import icegan.saved_recognizer as sr
    shipped = Path(pipeline.__file__).resolve().parents[1] / "flownet" / "weights" / "srflownet_facial.pt"
    weights = tmp_path / "w.pt"
    shutil.copyfile(shipped, weights)
    hashed = []

    class Counting:
        @staticmethod
        def sha256(data=b""):
            hashed.append(len(data))
            return hashlib.sha256(data)

    monkeypatch.setattr(sr, "hashlib", Counting)
    flow = {"method": "srflownet", "weights": str(weights), "iters": None, "component": "total"}
    real = hashlib.sha256(shipped.read_bytes()).hexdigest()
    other = sr._resolved_flow({"flow": flow, "weights": {"flow_weights_sha256": "0" * 64}})
    same = sr._resolved_flow({"flow": flow, "weights": {"flow_weights_sha256": real}})
    assert other["iters"] is None and same["iters"] == 2         # the shipped weights' own count, once matched
    assert hashed == [weights.stat().st_size]
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10 ** 9))     # rewritten
    assert sr._resolved_flow({"flow": flow, "weights": {"flow_weights_sha256": real}})["iters"] == 2
    assert len(hashed) == 2


# ------------------------------------------------------------------------------------------------ 6: fold bar, Ctrl-C

def test_fold_bar_names_the_fold_that_is_training(tmp_path, monkeypatch):
    """The bar's postfix named the fold just finished while the next one trained (nothing during the first)."""
    import tqdm.auto

    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    bars = []

    class Bar:
        def __init__(self, *a, **k):
            self.postfix = None
            bars.append(self)

        def set_postfix_str(self, s, refresh=True):
            self.postfix = s

        def update(self, n=1):
            pass

        def close(self):
            pass
    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)
    seen = []

    def fold_fn(fold):
        seen.append((fold.subject, bars[-1].postfix))
        return np.full((len(fold.test_idx), 3), 1 / 3)
    run_loso(toy.samples, fold_fn, tmp_path / "r", max_folds=3, progress=True)
    assert len(seen) == 3 and all(subject == postfix for subject, postfix in seen), seen


def test_ctrl_c_line_names_the_real_fold_folder(capsys):
    """The fold folders are folds/<dataset>_<subject> (e.g. folds/casme2_sub01), not folds/<subject>."""
    from icegan.commands import interrupted
    assert interrupted("train.py") == 130
    err = capsys.readouterr().err
    assert "(folds/<dataset>_<subject>/gan/checkpoints/last.pt)" in err and "folds/<subject>/" not in err
