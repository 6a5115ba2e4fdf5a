"""A main-job run killed right after its first fold's first GAN checkpoint is written (the resume tests)."""
from pathlib import Path

import pytest


class Killed(Exception):
    """Stands for a kill after a fold's first GAN checkpoint was written."""


def run_killed_after_first_gan_checkpoint(cfg, out: Path, monkeypatch) -> Path:
    """Run the main job ``cfg`` into ``out`` until the first GAN checkpoint is saved, then stop it as a kill would;
    ``save_checkpoint`` is restored for the rerun. Returns that checkpoint's path (``folds/*/gan/checkpoints/last.pt``)."""
    import icegan.gan.trainer as trainer
    from icegan.pipeline import run_main
    save = trainer.save_checkpoint

    def save_then_die(path, *args, **kwargs):
        save(path, *args, **kwargs)
        raise Killed(path)
    monkeypatch.setattr(trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run_main(cfg, out, progress=False)
    monkeypatch.setattr(trainer, "save_checkpoint", save)
    return next(out.glob("folds/*/gan/checkpoints/last.pt"))
