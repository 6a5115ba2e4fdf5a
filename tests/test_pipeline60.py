"""The main job's records after a resume and for a GAN that reaches no score: a fold resumed from its GAN checkpoint
counts the GAN seconds spent before the kill; ``gan.synthetic_ratio=0`` (a recognizer other than ExpCaps) is not
labelled a GAN run; a resume is not refused over a ``gan`` key the run never read; and a flow training does not
delete or overwrite the files of another kind of run folder."""
import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml
from _gan_kill import run_killed_after_first_gan_checkpoint

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY = ["data.n_subjects=2", "data.clips_per_class=1", "data.img_size=32", "recognizer.epochs=1",
        "recognizer.batch_size=16", "gan.joint=false", "flow.method=farneback", "threads=1"]


def test_a_fold_resumed_from_its_gan_checkpoint_counts_the_seconds_spent_before(tmp_path, monkeypatch):
    """Killed after the epoch-1 GAN checkpoint (of 2), whose ``elapsed_s`` says 1000 s of GAN training were spent;
    the resumed fold's timing.json ``fold_seconds`` (and so summary.md's fold time) holds those 1000 s too, not the
    last attempt's few seconds alone."""
    from icegan.pipeline import load_main_config, run_main
    cfg = load_main_config(str(CONFIGS / "demo.yaml"), [*TINY, "gan.epochs=2", "data.max_folds=1"])
    out = tmp_path / "run"
    ckpt = run_killed_after_first_gan_checkpoint(cfg, out, monkeypatch)
    payload = torch.load(ckpt, weights_only=False)
    assert payload["epoch"] == 1
    payload["elapsed_s"] = 1000.0                   # the GAN seconds of the attempt killed
    torch.save(payload, ckpt)
    run_main(cfg, out, progress=False)
    subject = json.loads((out / "run.json").read_text())["folds"][0]
    seconds = json.loads((out / "timing.json").read_text())["fold_seconds"][subject]
    assert 1000.0 <= seconds < 1000.0 + 600.0
    assert torch.load(ckpt, weights_only=False)["elapsed_s"] >= 1000.0


def _main_cfg(recognizer: str = "ststnet", ratio: float = 0.0, enabled: bool = True, joint: bool = False) -> dict:
    return {"seed": 0, "name": "r", "data": {"source": "synthetic"}, "flow": {"method": "srflownet"},
            "recognizer": {"name": recognizer, "epochs": 2},
            "gan": {"enabled": enabled, "skip": "grm", "synthetic_ratio": ratio, "joint": joint}}


def test_a_gan_that_adds_no_synthetic_apex_is_not_labelled_a_gan_run():
    """gan.synthetic_ratio=0 with a recognizer other than ExpCaps: the GAN is trained but reaches no score (the
    predictions are a no-GAN run's), and the recipe line and summary.md say so; ExpCaps scores with the GAN's
    discriminator, so its ratio-0 run is a GAN run; a ratio > 0 run is one as before."""
    from icegan.pipeline import _describe
    from icegan.protocol import recipe_line
    assert recipe_line(_main_cfg()) == "seed 0, ststnet, 2 epochs, srflownet flow, GAN trained, no synthetic apexes"
    assert recipe_line(_main_cfg(joint=True)).endswith("GAN trained, no synthetic apexes, joint loss")
    assert _describe(_main_cfg())["GAN"] == "grm (no synthetic apexes)"
    assert recipe_line(_main_cfg(ratio=0.5)).endswith("srflownet flow, GAN")
    assert _describe(_main_cfg(ratio=0.5))["GAN"] == "grm"
    assert recipe_line(_main_cfg("expcaps")).endswith("srflownet flow, GAN")
    assert _describe(_main_cfg("expcaps"))["GAN"] == "grm"
    assert recipe_line(_main_cfg(enabled=False)).endswith("srflownet flow, no GAN")
    assert _describe(_main_cfg(enabled=False))["GAN"] == "off"


def _conflict(tmp_path: Path, old: list[str], new: list[str]) -> str:
    """:func:`icegan.protocol._config_conflict` of a folder whose config.yaml is the demo config with ``old``
    against the demo config with ``new``."""
    from icegan.config import to_dict
    from icegan.pipeline import load_main_config
    from icegan.protocol import _config_conflict
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(to_dict(load_main_config(str(CONFIGS / "demo.yaml"), old)), sort_keys=False))
    return _config_conflict(tmp_path, path, to_dict(load_main_config(str(CONFIGS / "demo.yaml"), new)))


def test_a_resume_ignores_the_gan_keys_the_run_never_read(tmp_path):
    """gan.joint_weight is read only with gan.joint=true, and no gan key but gan.enabled with gan.enabled=false: a
    resume with another value of such a key is the same experiment; where the key is read it is still refused."""
    assert _conflict(tmp_path, ["gan.joint=false"], ["gan.joint=false", "gan.joint_weight=2.0"]) == ""
    refused = _conflict(tmp_path, ["gan.joint=true"], ["gan.joint=true", "gan.joint_weight=2.0"])
    assert "gan.joint_weight: 1.0 there, 2.0 now" in refused and "resuming would mix two experiments" in refused
    assert _conflict(tmp_path, ["gan.enabled=false"],
                     ["gan.enabled=false", "gan.epochs=7", "gan.joint=true", "gan.skip=se"]) == ""
    refused = _conflict(tmp_path, ["gan.enabled=true"], ["gan.enabled=true", "gan.epochs=7"])
    assert "gan.epochs: " in refused and "7 now" in refused
    assert "gan.enabled: False there, True now" in _conflict(tmp_path, ["gan.enabled=false"], ["gan.enabled=true"])


def _fake_loso_folder(run: Path) -> dict:
    """A finished ``icegan loso`` run folder (run.json, config.yaml, metrics.json, weights.pt); returns its files'
    md5s."""
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"protocol": "CDE", "folds": ["s01"]}))
    (run / "config.yaml").write_text(yaml.safe_dump({"name": run.name, "seed": 0, "model": {"name": "logreg"}}))
    (run / "metrics.json").write_text(json.dumps({"UF1": 0.71, "UAR": 0.70}))
    (run / "weights.pt").write_text("recognizer weights")
    return _md5s(run)


def _md5s(run: Path) -> dict:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(run.iterdir()) if p.is_file()}


@pytest.mark.parametrize("resume", [False, True])
def test_a_flow_training_leaves_another_run_folder_as_it_was(tmp_path, shared_data, capsys, resume):
    """flow train with out_dir/name naming an icegan loso run folder (its run.json), or a folder whose config.yaml is
    no flow training's, is refused before anything is deleted or written (train.resume=false removed its
    metrics.json and weights.pt before): exit 2, a line naming the folder, the files unchanged."""
    from icegan.cli import main
    loso = tmp_path / "runs" / "myloso"
    before = _fake_loso_folder(loso)
    common = ["flow", "train", "--config", str(CONFIGS / "flow_srflownet_fast.yaml"), "--no-progress",
              f"out_dir={tmp_path / 'runs'}", f"train.resume={str(resume).lower()}", "train.device=cpu",
              "train.workers=0", "train.threads=1", "train.steps=1", "train.batch_size=2", "train.max_minutes=0",
              "train.eval_every=0", "data.n_test=1", "data.n_val_subjects=0", "data.n_val=0"]
    assert main([*common, "name=myloso"]) == 2
    assert _md5s(loso) == before
    err = capsys.readouterr().err
    assert f"{loso} holds a LOSO run of icegan loso or train.py (run.json), not a flow training run" in err
    assert "give this flow training another name= (or out_dir=)" in err
    other = tmp_path / "runs" / "other"
    other.mkdir()
    (other / "config.yaml").write_text(yaml.safe_dump({"name": "other", "recognizer": {"name": "ststnet"},
                                                        "gan": {"enabled": True}}))
    (other / "metrics.json").write_text("{}")
    kept = _md5s(other)
    assert main([*common, "name=other"]) == 2
    assert _md5s(other) == kept
    assert f"{other / 'config.yaml'} is not a flow training's config" in capsys.readouterr().err
