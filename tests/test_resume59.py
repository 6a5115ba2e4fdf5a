"""Resuming and extending runs: a ``--reuse`` copy never writes into its source run, a fold's GAN resume is said on
the console, a resumed run folder says so when no fold finished, and a resume on another device warns."""
import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
from _gan_kill import run_killed_after_first_gan_checkpoint

from icegan.suite import REUSED_FROM, run_suite

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY = ["data.n_subjects=2", "data.clips_per_class=1", "data.img_size=32", "recognizer.epochs=1",
        "recognizer.batch_size=16", "gan.epochs=1", "gan.joint=false", "flow.method=farneback", "threads=1"]


def _files(root: Path) -> dict:
    """Every file under ``root`` (links followed) -> its md5."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _suite(tmp_path: Path, name: str, label: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nseeds: [3]\nruns:\n  - {{label: {label}, command: train, "
                    f"config: {CONFIGS}/demo.yaml, overrides: [{', '.join(TINY)}]}}\n")
    return path


def test_extending_a_reused_copy_never_writes_into_its_source(tmp_path):
    """A --reuse copy links the source's folds/; extending the copy (more folds) first gives it a folds/ folder of its
    own (the finished folds' files copied), so the source run is left byte for byte as it was."""
    run_suite(_suite(tmp_path, "a", "Farneback"), tmp_path / "a", progress=False, overrides=["data.max_folds=1"])
    src = tmp_path / "a" / "farneback_s3"
    before = _files(src)
    assert any(k.startswith("folds/") for k in before)
    b = _suite(tmp_path, "b", "again")
    run_suite(b, tmp_path / "b", progress=False, reuse=[tmp_path / "a"], overrides=["data.max_folds=1"])
    copy = tmp_path / "b" / "again_s3"
    assert (copy / "folds").is_symlink()                    # a plain reuse still links (nothing is written there)
    run_suite(b, tmp_path / "b", progress=False, overrides=["data.max_folds=0"])      # extended: all folds
    assert _files(src) == before                            # nothing in the source changed or was added
    assert not (copy / "folds").is_symlink() and (copy / "folds").is_dir()
    own = _files(copy / "folds")
    assert len({k.split("/")[0] for k in own}) == 2         # the finished fold's folder (copied) and the new one
    assert all(own[k[len("folds/"):]] == v for k, v in before.items() if k.startswith("folds/"))
    assert json.loads((copy / "run.json").read_text()).get("folds_total") is None   # whole now



def test_a_dangling_folds_link_is_named_and_a_cut_short_replacement_mended(tmp_path):
    """own_fold_folder: a copy whose source run is gone fails in one line naming reused_from.txt and the missing
    source (not "a file stands where a folder is needed"), the link kept; a linked folder becomes a folder of the
    copy's own with the same files (the source untouched); a kill between removing the link and renaming the copy is
    mended by the next call."""
    from icegan.suite import own_fold_folder
    src = tmp_path / "pool" / "src_run"
    (src / "folds" / "casme2_sub01" / "gan").mkdir(parents=True)
    (src / "folds" / "casme2_sub01" / "gan" / "history.json").write_text("[]")
    copy = tmp_path / "suite" / "copy_run"
    copy.mkdir(parents=True)
    (copy / "folds").symlink_to(src / "folds", target_is_directory=True)
    (copy / REUSED_FROM).write_text(f"{src}\n")
    assert own_fold_folder(copy) is True
    assert not (copy / "folds").is_symlink() and (copy / "folds" / "casme2_sub01" / "gan" / "history.json").is_file()
    (copy / "folds" / "casme2_sub01" / "gan" / "history.json").write_text("[1]")
    assert (src / "folds" / "casme2_sub01" / "gan" / "history.json").read_text() == "[]"
    assert own_fold_folder(copy) is False                   # a folder of its own: nothing to do

    (copy / "folds").rename(copy / "folds.copying")         # killed after the link was removed
    assert own_fold_folder(copy) is True and (copy / "folds" / "casme2_sub01").is_dir()
    assert not (copy / "folds.copying").exists()

    other = tmp_path / "suite" / "other_run"
    other.mkdir()
    (other / "folds").symlink_to(src / "folds", target_is_directory=True)
    (other / REUSED_FROM).write_text(f"{src}\n")
    shutil.rmtree(src)
    with pytest.raises(FileNotFoundError, match=rf"no longer exists.*--reuse from {src} .*{REUSED_FROM}") as info:
        own_fold_folder(other)
    assert "a file stands where a folder is needed" not in str(info.value)
    assert (other / "folds").is_symlink()                   # left as it was: restoring the source mends it


def test_a_resumed_run_and_a_resumed_fold_gan_are_said(tmp_path, monkeypatch, caplog, capsys):
    """A run killed inside its first fold's GAN (after the epoch-1 checkpoint): the rerun says that the run folder is
    resumed though no fold finished, and at INFO that the fold's GAN resumes at epoch 1 of 2 from its checkpoint
    (the trainer's own line is at DEBUG in the main job)."""
    from icegan.pipeline import load_main_config, run_main
    cfg = load_main_config(str(CONFIGS / "demo.yaml"), [*TINY, "gan.epochs=2", "data.max_folds=1"])
    out = tmp_path / "run"
    ckpt = run_killed_after_first_gan_checkpoint(cfg, out, monkeypatch)
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger="icegan"):
        run_main(cfg, out, progress=False)
    subject = json.loads((out / "run.json").read_text())["folds"][0]
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert f"fold {subject}: GAN resumes at epoch 1 of 2 from {ckpt.relative_to(out)}" in lines
    err = capsys.readouterr().err
    assert f"{cfg.name}: resuming {out}: none of its 1 folds finished earlier" in err
    assert "the GAN of 1 of them from its kept checkpoint" in err


def test_a_resume_on_another_device_warns_naming_both(tmp_path, caplog):
    """timing.json records the device a run's folds were computed on; a resume (device: auto) that trains folds on
    another kind of device warns, naming both, and goes on (faked: the record says cuda:0, this machine is a CPU)."""
    from icegan.pipeline import load_main_config, run_main
    out = tmp_path / "run"
    run_main(load_main_config(str(CONFIGS / "demo.yaml"), [*TINY, "data.max_folds=1"]), out, progress=False)
    timing = json.loads((out / "timing.json").read_text())
    assert timing["device"] == "cpu"
    (out / "timing.json").write_text(json.dumps({**timing, "device": "cuda:0"}))
    with caplog.at_level(logging.WARNING, logger="icegan"):
        run_main(load_main_config(str(CONFIGS / "demo.yaml"), [*TINY, "data.max_folds=0"]), out, progress=False)
    said = [r.getMessage() for r in caplog.records if "device" in r.getMessage()]
    assert len(said) == 1 and "cuda:0" in said[0] and "on cpu" in said[0] and "timing.json" in said[0]
    assert json.loads((out / "timing.json").read_text())["device"] == "cpu"
    assert json.loads((out / "metrics.json").read_text())["n_folds"] == 2          # warned, not refused
