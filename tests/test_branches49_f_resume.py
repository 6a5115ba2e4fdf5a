"""Resumes that no other test takes: supervised flow training (icegan flow train) and DecFlow training whose last.pt
is at the end of the step budget (stopped during the final evaluation) evaluate and write the weights without a
training step; self-supervised training resumed in its student stage without teacher_metrics.json."""
import torch
from _flow_sizes import TINY_SRFLOWNET

import flownet.train as ftrain
from flownet.models.srflownet import SRFlowNetConfig
from flownet.registry import load_srflownet
from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection


def _cfg(tmp_path, root, steps):
    return FlowTrainConfig(name="r", out_dir=str(tmp_path / "runs"), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                           data=FlowDataConfig(root=str(root), size=32, n_train=4, n_test=1, frames_per_clip=1),
                           train=FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=steps, eval_every=0,
                                                  threads=1, seed=1, log_every=100, ckpt_every=1, init_weights=None))


def _train_resumed_at_the_end(train, run, load, module, loss_name, monkeypatch):
    """``train()``, drop ``run``'s weights.pt and metrics.json (stopped during the final evaluation: last.pt is at
    step 1 of 1), make ``module.<loss_name>`` fail, ``train()`` again: (first weights, weights again, its return)."""
    train()
    first = load(run / "weights.pt")
    (run / "weights.pt").unlink()
    (run / "metrics.json").unlink()

    def no_step(*a, **kw):
        raise AssertionError("the budget is used: no training step")
    monkeypatch.setattr(module, loss_name, no_step)
    result = train()
    return first, load(run / "weights.pt"), result


def test_flow_train_resumed_at_the_end_of_its_budget_trains_no_step(tmp_path, shared_data, monkeypatch):
    run = tmp_path / "runs" / "r"
    first, again, _ = _train_resumed_at_the_end(lambda: ftrain.train(_cfg(tmp_path, shared_data, 1), progress=False),
                                                run, load_srflownet, ftrain, "training_loss", monkeypatch)
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 1
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert again.meta["steps"] == 1


def test_decflow_train_resumed_at_the_end_of_its_budget_trains_no_step(tmp_path, shared_data, monkeypatch):
    import flownet.models.decflow as dmod
    from flownet.models.decflow import DecFlowConfig, DecFlowTrainConfig, DecFlowTrainSection, load_decflow
    cfg = DecFlowTrainConfig(name="d", out_dir=str(tmp_path / "runs"),
                             data=FlowDataConfig(root=str(shared_data), size=64, n_train=2, n_test=1),
                             model=DecFlowConfig(**TINY_SRFLOWNET),
                             train=DecFlowTrainSection(init_weights=None, batch_size=2, crop=0, steps=1, iters=1,
                                                       log_every=100, ckpt_every=100))
    first, again, metrics = _train_resumed_at_the_end(lambda: dmod.train_decflow(cfg, progress=False),
                                                      tmp_path / "runs" / "d", load_decflow, dmod, "decflow_loss",
                                                      monkeypatch)
    assert again.meta["steps"] == 1 and again.meta["test_metrics"] == metrics == first.meta["test_metrics"]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))


def test_selfsup_resumed_in_its_student_stage_without_teacher_metrics_computes_them_again(tmp_path, monkeypatch,
                                                                                         capsys, shared_data):
    """teacher_metrics.json removed (or a run of a version that did not write it): the resume of the student stage
    left the teacher's results out of its metrics.json, without a word. They are computed again from teacher.pt, as
    for a damaged file."""
    import json

    import pytest
    from test_flow_selfsup import _loop_run, _Stop
    monkeypatch.setenv("ICEGAN_SHARED_DATA", str(shared_data))     # the synthetic faces' CASME II crops
    with pytest.raises(_Stop):
        _loop_run(tmp_path, monkeypatch, stop_at=("student", 1))
    path = tmp_path / "loop" / "teacher_metrics.json"
    whole = json.loads(path.read_text())
    path.unlink()
    capsys.readouterr()
    res, _ = _loop_run(tmp_path, monkeypatch)
    assert f"{path} is missing; the teacher's test metrics and occluded fractions are computed again" in \
        capsys.readouterr().out
    assert res["teacher_test"] == pytest.approx(whole["teacher_test"]) and res["teacher_steps"] == 4
    assert res["teacher_occ_frac"] == pytest.approx(whole["teacher_occ_frac"])
    saved = json.loads((tmp_path / "loop" / "metrics.json").read_text())
    assert saved["teacher_test"] == pytest.approx(whole["teacher_test"])
    assert json.loads(path.read_text())["teacher_test"] == res["teacher_test"]
