"""flownet.train with train.keep_best: weights.pt holds the weights of lowest validation EPE among the step
evaluations (and the last step), metrics.json says which step and what the last step had, the option is off by
default, refused without validation subjects (the test subjects would choose) or without step evaluations, and a run
interrupted and resumed keeps the step an uninterrupted run keeps (the best weights so far are in last.pt)."""
from __future__ import annotations

import json
import re

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET
from test_flow_train import interrupted_and_resumed

import flownet.train as ftrain
from flownet.data.synthetic_face import SyntheticFaceFlow
from flownet.models.srflownet import SRFlowNetConfig
from flownet.registry import load_srflownet
from flownet.train import (FlowDataConfig, FlowTrainConfig, FlowTrainSection, dataset_kwargs, evaluate_model,
                           evaluation_batches)

STEPS = 6


def _cfg(tmp_path, root, name, keep_best=True, ema=0.0, n_val_subjects=2, eval_every=1):
    return FlowTrainConfig(name=name, out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                           data=FlowDataConfig(root=str(root), size=32, n_train=6, n_test=1,
                                               n_val_subjects=n_val_subjects, n_val=2, frames_per_clip=1),
                           train=FlowTrainSection(regularizer="tvr", batch_size=2, crop=24, steps=STEPS,
                                                  eval_every=eval_every, ckpt_every=1, log_every=100, threads=1, seed=1,
                                                  lr=1e-3, ema_decay=ema, keep_best=keep_best))


def _logged_val_epes(out: str, average: bool) -> dict[int, float]:
    """{step: EPE} of the run's 'step N val' lines (of the weight average's lines with ``average``)."""
    pattern = r"^step (\d+) val " + (r"\(weight average\) " if average else "") + r"(\{.*\})$"
    return {int(m.group(1)): json.loads(m.group(2))["EPE"] for m in re.finditer(pattern, out, re.M)}


def _val_batches(cfg):
    return evaluation_batches(SyntheticFaceFlow(split="val", n_pairs=cfg.data.n_val, **dataset_kwargs(cfg.data)))


def _state(path, key=None):
    ck = torch.load(path, weights_only=False)
    return ck[key] if key else ck["state_dict"]


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("ema", [0.0, 0.5], ids=["raw", "weight_average"])
def test_keep_best_ships_the_weights_of_the_lowest_logged_validation_epe(tmp_path, shared_data, capsys, ema):
    """The step metrics.json names is the argmin of the logged validation EPEs of the weights that ship (the raw
    ones, or the average's lines with train.ema_decay); its EPE and the last step's are those logged, and weights.pt
    reloaded scores that EPE on the validation pairs (not the last weights', which last.pt keeps)."""
    cfg = _cfg(tmp_path, shared_data, "best", ema=ema)
    ftrain.train(cfg, progress=False)
    logged = _logged_val_epes(capsys.readouterr().out, average=bool(ema))
    assert sorted(logged) == list(range(1, STEPS + 1))
    chosen = min(logged, key=lambda s: (logged[s], s))
    assert chosen < STEPS, "precondition: the last step is not the best one here (else nothing is chosen)"
    meta = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert meta["kept_best"] == {"step": chosen, "val_EPE": logged[chosen], "final_step": STEPS,
                                 "final_val_EPE": logged[STEPS]}
    assert meta["steps"] == STEPS and meta["val_metrics"]["EPE"] == logged[chosen]
    shipped = load_srflownet(tmp_path / "best" / "weights.pt")
    assert shipped.meta["kept_best"] == meta["kept_best"]
    assert evaluate_model(shipped, _val_batches(cfg), "cpu")["EPE"] == pytest.approx(logged[chosen], rel=1e-9)
    last = _state(tmp_path / "best" / "last.pt", "ema" if ema else "model")
    last = {k.removeprefix("module."): v for k, v in last.items() if k != "n_averaged"}
    assert not _same_tensors(shipped.state_dict(), last)            # the last weights stay in last.pt for a resume


def test_without_keep_best_the_last_weights_ship_as_before(tmp_path, shared_data, capsys):
    """Off by default: weights.pt holds the last weights (those of last.pt), metrics.json has no kept_best and its
    val_metrics are the last step's logged ones."""
    assert FlowTrainSection().keep_best is False
    cfg = _cfg(tmp_path, shared_data, "last", keep_best=False)
    ftrain.train(cfg, progress=False)
    logged = _logged_val_epes(capsys.readouterr().out, average=False)
    meta = json.loads((tmp_path / "last" / "metrics.json").read_text())
    assert "kept_best" not in meta and meta["val_metrics"]["EPE"] == logged[STEPS]
    assert _same_tensors(_state(tmp_path / "last" / "weights.pt"), _state(tmp_path / "last" / "last.pt", "model"))


def test_keep_best_without_validation_subjects_or_step_evaluations_is_refused(tmp_path, shared_data):
    """With data.n_val_subjects=0 the step evaluations score the test subjects: choosing on them would leak, so the
    run is refused naming both options and the way out, before its folder is made; likewise without evaluations."""
    with pytest.raises(ValueError, match=r"^train.keep_best=true needs a validation set, but data.n_val_subjects=0: "
                                         r".*leak the test set; set data.n_val_subjects \(e.g. 2\) or "
                                         r"train.keep_best=false$"):
        ftrain.train(_cfg(tmp_path, shared_data, "leak", n_val_subjects=0), progress=False)
    with pytest.raises(ValueError, match=r"^train.keep_best=true chooses among the step evaluations, but "
                                         r"train.eval_every=0 makes none; set train.eval_every > 0"):
        ftrain.train(_cfg(tmp_path, shared_data, "blind", eval_every=0), progress=False)
    assert not (tmp_path / "leak").exists() and not (tmp_path / "blind").exists()


def test_a_resumed_keep_best_run_keeps_the_step_and_weights_of_an_uninterrupted_one(tmp_path, shared_data,
                                                                                     monkeypatch, capsys):
    """A run cut after its best step and resumed keeps that step (the best weights so far are read back from
    last.pt: the evaluations after the resume are all worse) and ships the same weights, tensor for tensor."""
    ftrain.train(_cfg(tmp_path, shared_data, "whole"), progress=False)
    capsys.readouterr()
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())["kept_best"]
    assert whole["step"] + 1 < STEPS, "precondition: an interruption after the best step leaves a step to train"
    interrupted_and_resumed(monkeypatch, _cfg(tmp_path, shared_data, "cut"), whole["step"] + 1)
    assert f"resumed {tmp_path / 'cut' / 'last.pt'} at step {whole['step'] + 1}" in capsys.readouterr().out
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["kept_best"] == whole
    assert _same_tensors(_state(tmp_path / "whole" / "weights.pt"), _state(tmp_path / "cut" / "weights.pt"))


def test_turning_keep_best_on_or_off_at_a_resume_is_refused(tmp_path, shared_data):
    """A run that kept its best weights would ship other weights resumed without (refused by the config.yaml check,
    naming the option and both values), and the best weights of the steps before a resume are not known to a run
    that did not keep them (refused naming last.pt and the option); either way config.yaml is left as it was."""
    runs = {}
    for name, keep in (("on", True), ("off", False)):
        cfg = _cfg(tmp_path, shared_data, name, keep_best=keep)
        cfg.train.steps = 1
        ftrain.train(cfg, progress=False)
        runs[name] = cfg, (tmp_path / name / "config.yaml").read_text()
    cfg, before = runs["on"]
    cfg.train.keep_best = False
    with pytest.raises(ValueError, match=r"train.keep_best: True there, False now"):
        ftrain.train(cfg, progress=False)
    assert (tmp_path / "on" / "config.yaml").read_text() == before
    cfg, before = runs["off"]
    cfg.train.keep_best = True
    with pytest.raises(ValueError, match=r"last.pt: train.keep_best=true but the checkpoint was written without it "
                                         r"\(no best weights so far\); resume with train.keep_best=false"):
        ftrain.train(cfg, progress=False)
    assert (tmp_path / "off" / "config.yaml").read_text() == before
