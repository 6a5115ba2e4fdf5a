"""Interruption audit 53: what a Ctrl-C of train.py / icegan train / icegan suite says is kept is what is kept, and
the GAN's ``train.max_minutes=0`` means no limit, as flow training's does."""
import dataclasses
import logging

import pytest
import torch
from _flow_sizes import save_main_job_weights

TRAIN_LINE = ("interrupted: the folds finished so far are kept, and so is the GAN checkpoint of a fold cut short "
              "(folds/<dataset>_<subject>/gan/checkpoints/last.pt), if one was written yet; run the same command "
              "again to resume from them")
SUITE_LINE = ("icegan suite: interrupted: the runs finished so far are kept, and so are the folds the interrupted run "
              "finished (a grouped network's folds finish together, with their group; a command: train run also keeps "
              "its cut fold's GAN checkpoint); run the same command again to resume from them")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=1)


def test_ctrl_c_in_train_py_names_the_cut_fold_gan_checkpoint_that_it_keeps(tmp_path, tiny_weights, monkeypatch,
                                                                            capsys):
    """Ctrl-C of train.py in a fold's GAN said 'the folds finished so far are kept (if any: a grouped network's folds
    finish together ...)': grouped folds are icegan loso's, and the fold's GAN checkpoint that the rerun resumes from
    was not named. Now the line names it, and the file is there."""
    from icegan.gan import trainer
    from icegan.pipeline import main
    real_save = trainer.save_checkpoint

    def killed_after_first_save(path, *a, **k):
        real_save(path, *a, **k)
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer, "save_checkpoint", killed_after_first_save)
    over = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "data.max_folds=2",
            "recognizer.epochs=2", "recognizer.batch_size=16", "recognizer.name=ststnet",
            f"flow.weights={tiny_weights}", "gan.epochs=2", "gan.batch_size=8", "gan.base_channels=8"]
    assert main(["--out", str(tmp_path / "run"), "--no-progress", *over]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"train.py: {TRAIN_LINE}"
    assert "grouped" not in err
    assert (tmp_path / "run" / "folds" / "synthetic_s01" / "gan" / "checkpoints" / "last.pt").is_file()
    assert not (tmp_path / "run" / "predictions.csv").exists()


@pytest.mark.parametrize("argv, line", [
    (["train"], f"icegan train: {TRAIN_LINE}"),
    (["suite", "--config", "configs/suite_composite.yaml"], SUITE_LINE),
    (["loso", "--config", "configs/features_logreg.yaml"],
     "icegan loso: interrupted: the folds finished so far are kept (if any: a grouped network's folds finish "
     "together, with their group); run the same command again to resume from them"),
])
def test_ctrl_c_of_each_resumable_command_says_what_it_keeps(monkeypatch, capsys, argv, line):
    """icegan suite said 'the folds finished so far are kept', but what it keeps is its finished runs (and the folds
    of the run it was in); icegan train spoke of a grouped network's folds, which it has none of. icegan loso's line
    is unchanged. Exit code 130, one line, no traceback."""
    import icegan.commands.loso as loso_cmd
    import icegan.pipeline
    import icegan.suite
    from icegan.cli import main

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(icegan.pipeline, "run_from_args", ctrl_c)
    monkeypatch.setattr(icegan.suite, "run_suite", ctrl_c)
    monkeypatch.setattr(loso_cmd, "run", ctrl_c)
    monkeypatch.setattr(loso_cmd, "load_feature_set", ctrl_c)
    assert main(argv) == 130
    assert capsys.readouterr().err.strip() == line


def _gan(max_minutes):
    from _gan_sizes import tiny_gan_config
    cfg = tiny_gan_config(32)
    cfg.train.epochs, cfg.train.batch_size, cfg.train.progress, cfg.train.hflip = 2, 8, False, False
    cfg.loss.perceptual = "none"
    cfg.train.sample_every = 0
    cfg.train.max_minutes = max_minutes
    return cfg


def _faces(n=8):
    gen = torch.Generator().manual_seed(0)
    on = torch.rand(n, 1, 32, 32, generator=gen) * 2 - 1
    ap = (on + 0.2 * torch.rand(n, 1, 32, 32, generator=gen)).clamp(-1, 1)
    return on, ap, torch.arange(n) % 3


def test_gan_max_minutes_0_means_no_limit_as_in_flow_training(caplog):
    """train.max_minutes=0 stopped a GAN after its first epoch ('max_minutes=0.0 reached'), while flow training's 0
    (configs/flow_decflow.yaml: 'on a GPU: train.max_minutes=0') is no limit. Now 0 trains every epoch, with the
    weights of max_minutes=None; a positive budget still stops after the epoch that passes it."""
    from icegan.gan.trainer import train_gan
    on, ap, y = _faces()
    caplog.set_level(logging.WARNING, logger="icegan.gan.trainer")
    zero = train_gan(on, ap, y, _gan(0.0), device="cpu")
    assert zero.epochs_done == 2 and len(zero.history) == 2
    assert not [r for r in caplog.records if "max_minutes" in r.getMessage()]
    unset = train_gan(on, ap, y, _gan(None), device="cpu")
    for (k, a), b in zip(zero.generator.state_dict().items(), unset.generator.state_dict().values()):
        assert torch.equal(a, b), k
    short = train_gan(on, ap, y, _gan(1e-9), device="cpu")
    assert short.epochs_done == 1
    assert any("max_minutes=1e-09 reached" in r.getMessage() for r in caplog.records)


def test_gan_config_keeps_refusing_a_negative_budget():
    """0 now means no limit; a negative budget is still refused by name."""
    from icegan.gan.trainer import GanTrainConfig
    with pytest.raises(ValueError, match="max_minutes"):
        GanTrainConfig(max_minutes=-1.0)
    assert dataclasses.replace(GanTrainConfig(), max_minutes=0.0).max_minutes == 0.0
