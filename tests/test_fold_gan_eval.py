"""A main-job fold's GAN checkpoint (`folds/<dataset>_<subject>/gan/checkpoints/last.pt` of train.py on a prepared
release) records the fold's held-out and training subjects and its faces, so `icegan gan eval` scores it on the
held-out subject instead of refusing it as "trained on every subject"."""
from __future__ import annotations

import json

import pytest


def test_gan_eval_scores_a_main_job_fold_checkpoint_on_its_held_out_subject(shared_data, tmp_path):
    from icegan.cli import main as cli
    from icegan.gan.trainer import load_checkpoint
    from icegan.pipeline import main
    sheet = shared_data / "annotations" / "CASME2-coding-20140508.xlsx"
    datasets = (f"[{{name: casme2, root: {shared_data / 'casme2'}, annotations: {sheet}, mode: cropped, "
                f"composite_only: true, subjects: [sub01, sub02, sub04]}}]")
    out = tmp_path / "run"
    assert main(["--config", "configs/casme2.yaml", f"data.prepare.datasets={datasets}",
                 f"data.prepare.cache_root={tmp_path / 'cache'}", "data.prepare.workers=1", "data.img_size=32",
                 "data.max_folds=1", "flow.method=farneback", "gan.epochs=1", "gan.batch_size=8",
                 "gan.base_channels=8", "gan.d_base_channels=8", "recognizer.epochs=1", "threads=1",
                 "--out", str(out), "--no-progress"]) == 0
    ckpt = out / "folds" / "casme2_sub01" / "gan" / "checkpoints" / "last.pt"
    _, _, cfg, _ = load_checkpoint(ckpt)
    assert cfg.data.holdout_subjects == ["casme2/sub01"]
    assert cfg.data.train_subjects == ["casme2/sub02", "casme2/sub04"]
    assert cfg.data.source == "prepared" and cfg.data.apex_neighbors == 0
    rc = cli(["gan", "eval", "--checkpoint", str(ckpt), "--no-cross-dataset", "--n-per-class", "1",
              "--out", str(tmp_path / "eval"), "--json", str(tmp_path / "eval.json")])
    assert rc == 0
    res = json.loads((tmp_path / "eval.json").read_text())
    assert res["eval_subjects"] == ["casme2/sub01"]
    assert res["class_counts"] == {"negative": 2, "positive": 1, "surprise": 0}    # sub01's composite clips


def test_gan_eval_of_a_checkpoint_naming_no_held_out_subject_stops_before_any_recognizer(shared_data, tmp_path,
                                                                                          monkeypatch):
    """No data.holdout_subjects and no --subjects: refused at once, saying what such a checkpoint may be and what to
    pass, before a recognizer is trained on every pair of the data (before, after it; 12 s on the 2-core CPU)."""
    from icegan.gan import evaluate
    from icegan.gan.trainer import build_models, save_checkpoint
    from _gan_sizes import tiny_gan_config
    cfg = tiny_gan_config(32)
    cfg.data.root = str(shared_data / "casme2")
    path = tmp_path / "last.pt"
    save_checkpoint(path, cfg, *build_models(cfg), 0, [])

    def no_fit(*a, **k):
        raise AssertionError("a recognizer was trained before the refusal")

    monkeypatch.setattr(evaluate.FlowRecognizer, "fit", no_fit)
    with pytest.raises(ValueError) as err:
        evaluate.run_eval(path, cross_dataset=False)
    assert str(err.value) == (f"{path} names no held-out subject (its data.holdout_subjects is empty: a GAN trained on "
                              f"every subject of its data, or a main-job fold on data.source=synthetic): pass "
                              f"--subjects with subjects it was not trained on, or --data a folder of onset face images")
