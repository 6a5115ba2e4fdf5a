"""What a supervised flow run's validation numbers are (flownet.train): a fine-tune from ``train.init_weights`` scores
its starting weights as step 0, before any update, with the same pairs, update count and whole-pair size as the
later evaluations; the log says which pairs, subjects, size and update count those are, and metrics.json keeps them.

Why: ``icegan flow train --config configs/flow_srflownet_fdr.yaml train.init_weights=shipped:facial`` printed a first
validation EPE of 0.2-0.46 px, read as the shipped weights' score, while they score 0.138 px on those very pairs; the
first evaluation came after ``eval_every`` steps of fine-tuning on 96x96 crops, which had already moved the weights.
"""
from __future__ import annotations

import json

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET

from flownet.data.synthetic_face import SyntheticFaceFlow
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import load_srflownet, save_srflownet
from flownet.train import (FlowDataConfig, FlowTrainConfig, FlowTrainSection, dataset_kwargs, evaluate_model,
                           evaluation_batches, train)

TINY = SRFlowNetConfig(**TINY_SRFLOWNET)        # 3 updates


def _cfg(tmp_path, shared_data, init, name="ft", **train_kw) -> FlowTrainConfig:
    kw = dict(regularizer="fdr", batch_size=2, crop=24, steps=2, eval_every=2, threads=1, iters=2, lr=0.05,
              init_weights=init)
    kw.update(train_kw)
    return FlowTrainConfig(name=name, out_dir=str(tmp_path), model=TINY,
                           data=FlowDataConfig(root=str(shared_data), size=32, n_train=8, n_test=2, n_val_subjects=2,
                                               n_val=2, frames_per_clip=1),
                           train=FlowTrainSection(**kw))


@pytest.fixture
def init_weights(tmp_path):
    torch.manual_seed(3)
    return str(save_srflownet(SRFlowNet(TINY), tmp_path / "init.pt"))


def _steps(out: str) -> dict:
    """{"step N val": metrics} of a run's printed evaluation lines."""
    return {k: json.loads("{" + v) for k, v in (line.split(" {", 1) for line in out.splitlines()
                                                if line.startswith("step ") and " {" in line)}


def test_a_fine_tune_scores_its_initial_weights_as_step_0(tmp_path, shared_data, init_weights, capsys):
    """Step 0 = the init weights on the validation pairs at the model's update count, before the first update (the
    run's later numbers differ: its high learning rate moves the weights); no step 0 from scratch, on a resume, or
    with train.eval_every=0."""
    cfg = _cfg(tmp_path, shared_data, init_weights)
    train(cfg, progress=False)
    lines = _steps(capsys.readouterr().out)
    val = evaluation_batches(SyntheticFaceFlow(split="val", n_pairs=2, **dataset_kwargs(cfg.data)))
    start = evaluate_model(load_srflownet(init_weights), val, "cpu")      # the file's 3 updates = model.iters here
    assert lines["step 0 val"] == pytest.approx(start, rel=1e-5)
    assert lines["step 2 val"]["EPE"] != pytest.approx(start["EPE"], rel=1e-3)
    # from scratch there is no starting point worth a line; a resumed run has scored its weights before; with
    # train.eval_every=0 nothing is evaluated during training
    train(_cfg(tmp_path, shared_data, None, name="scratch"), progress=False)
    assert "step 0 val" not in _steps(capsys.readouterr().out)
    train(_cfg(tmp_path, shared_data, init_weights, name="off", eval_every=0), progress=False)
    assert "step 0 val" not in _steps(capsys.readouterr().out)
    train(_cfg(tmp_path, shared_data, init_weights, name="res"), progress=False)
    capsys.readouterr()
    train(_cfg(tmp_path, shared_data, init_weights, name="res", steps=4), progress=False)
    lines = _steps(capsys.readouterr().out)
    assert "step 0 val" not in lines and "step 4 val" in lines


def test_the_log_and_metrics_say_which_pairs_size_and_updates_the_numbers_score(tmp_path, shared_data, init_weights,
                                                                                capsys):
    """Before training the log names the validation pairs (count, subjects, whole-pair size, update count) against
    the training batches (crop, train.iters) and the test subjects icegan flow eval scores; metrics.json (and
    the weights' meta) keep the same records for the validation and test sets."""
    cfg = _cfg(tmp_path, shared_data, init_weights)
    train(cfg, progress=False)
    out = capsys.readouterr().out
    kw = dataset_kwargs(cfg.data)
    val_subjects = SyntheticFaceFlow(split="val", n_pairs=2, **kw).subjects
    test_subjects = SyntheticFaceFlow(split="test", n_pairs=2, **kw).subjects
    assert set(val_subjects).isdisjoint(test_subjects)
    head = next(line for line in out.splitlines() if line.startswith("val (the 'step N val' lines"))
    assert f"2 pairs of {', '.join(val_subjects)} (split val), whole 32x32 pairs, 3 updates" in head
    assert "step 0 = train.init_weights before any update" in head
    assert "Training batches: 24x24 crops, 2 updates (train.iters)" in head
    assert f"`icegan flow eval` scores the test subjects ({', '.join(test_subjects)})" in head
    meta = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert meta["val_set"] == {"split": "val", "pairs": 2, "size": 32, "updates": 3, "subjects": val_subjects}
    assert meta["test_set"] == {"split": "test", "pairs": 2, "size": 32, "updates": 3, "subjects": test_subjects}
    assert meta["train_iters"] == 2 and meta["train_crop"] == 24
    assert load_srflownet(tmp_path / "ft" / "weights.pt").meta["val_set"] == meta["val_set"]
