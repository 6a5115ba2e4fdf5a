"""Flow training defects of audit 59 (flownet/train.py, flownet/selfsup.py, flownet/models/decflow.py).

1. ``train.resume=false`` rewrote ``config.yaml`` before the old run's ``last.pt`` was gone: a fresh run interrupted
   before its first checkpoint left the OLD ``last.pt`` beside the NEW ``config.yaml``, and the next run (resume on)
   continued the old model under the new settings. The old run's outputs are now removed before config.yaml is
   written.
2. A supervised run that ended on ``train.max_minutes`` trained one more step at each rerun (the loop was guarded by
   ``step < train.steps``) and overwrote weights.pt; a last checkpoint written just before the budget ran out had the
   same effect in the supervised and self-supervised trainers.
3. LiteFlowNet2 read neither the ``model`` section nor ``train.iters`` / ``train.gamma``, yet took them silently and
   logged "N updates (train.iters)"; the ``model`` section is not read by RAFT / ptlflow either.
"""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from _fake_clock import fake_clock
from _flow_sizes import TINY_SRFLOWNET

import flownet.models.decflow as decflow
import flownet.selfsup as ss
import flownet.train as flow_train
from flownet.models.decflow import DecFlowConfig, DecFlowTrainConfig, DecFlowTrainSection, train_decflow
from flownet.models.srflownet import SRFlowNetConfig
from flownet.selfsup import SelfSupConfig, train_selfsup
from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection, train
from icegan.config import load_config


class _Kill(Exception):
    """Stands in for a Ctrl-C / kill of the training process."""


def _kill_at_call(monkeypatch, module, name: str, call: int = 1) -> None:
    """``module.name`` raises :class:`_Kill` at its call number ``call`` (1 = the first)."""
    real, seen = getattr(module, name), []

    def cut(*a, **k):
        seen.append(1)
        if len(seen) >= call:
            raise _Kill
        return real(*a, **k)
    monkeypatch.setattr(module, name, cut)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _weights(path):
    return torch.load(path, weights_only=False)


def _cfg(tmp_path, root, name="r", **train_kw):
    kw = dict(regularizer="tvr", batch_size=2, crop=0, steps=2, eval_every=0, threads=1, seed=1, log_every=100,
              ckpt_every=1, init_weights=None, iters=1)
    return FlowTrainConfig(name=name, out_dir=str(tmp_path / "runs"), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                           data=FlowDataConfig(root=str(root), size=32, n_train=4, n_test=1, frames_per_clip=1),
                           train=FlowTrainSection(**{**kw, **train_kw}))


# --------------------------------------------------------------------------------------- 1. train.resume=false

def test_supervised_fresh_run_killed_before_its_first_checkpoint_is_not_resumed_from_the_old_one(
        tmp_path, shared_data, monkeypatch, capsys):
    """Old run: 2 steps at lr 4e-4, finished. ``resume=false`` with lr 1e-2 and 3 steps, killed in its first step
    (no checkpoint yet): the old last.pt, weights.pt and metrics.json are gone and config.yaml holds the new
    settings. The next run (resume on) starts afresh and ends with the weights of a run never interrupted, where it
    used to print ``resumed ... at step 2`` and train the old weights on at lr 1e-2."""
    run = tmp_path / "runs" / "r"
    train(_cfg(tmp_path, shared_data, lr=4e-4, steps=2), progress=False)
    assert {p.name for p in run.iterdir()} >= {"last.pt", "weights.pt", "metrics.json", "config.yaml"}
    new = dict(lr=1e-2, steps=3, ckpt_every=100)
    real = flow_train.training_loss
    _kill_at_call(monkeypatch, flow_train, "training_loss")
    with pytest.raises(_Kill):
        train(_cfg(tmp_path, shared_data, resume=False, **new), progress=False)
    for gone in ("last.pt", "weights.pt", "metrics.json"):
        assert not (run / gone).exists(), gone
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"] == 1e-2
    monkeypatch.setattr(flow_train, "training_loss", real)
    capsys.readouterr()
    train(_cfg(tmp_path, shared_data, **new), progress=False)
    assert "resumed" not in capsys.readouterr().out
    train(_cfg(tmp_path, shared_data, name="ref", **new), progress=False)
    a, b = (_weights(tmp_path / "runs" / n / "weights.pt") for n in ("r", "ref"))
    assert a["meta"]["steps"] == b["meta"]["steps"] == 3
    assert _same(a["state_dict"], b["state_dict"])


def _selfsup_cfg(tmp_path, root, *extra):
    tiny = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_SRFLOWNET.items()]
    return load_config(SelfSupConfig, "configs/flow_selfsup.yaml", [
        f"out_dir={tmp_path}", "name=s", f"data.root={root}", "data.size=64", "data.crop=48",
        "data.n_items=4", "data.n_test=1", "data.n_occ_pairs=1", "train.teacher_minutes=0", "train.student_minutes=0",
        "train.eval_every=0", "train.ckpt_every=1", "train.log_every=100", "train.batch_size=2", "train.iters=1",
        "train.teacher_iters=1", "train.seed=1", "train.slic_segments=8", *tiny, *extra])


def test_selfsup_fresh_run_killed_in_its_teacher_stage_trains_a_new_teacher_next_time(tmp_path, shared_data,
                                                                                      monkeypatch, capsys):
    """Old run: a 1-step teacher at alpha2 0.5 and a 1-step student, finished (its last.pt is in the student stage).
    ``resume=false`` with alpha2 0.05 and a 2-step teacher, killed in the teacher's first step: the old last.pt,
    teacher.pt, teacher_metrics.json, weights.pt and metrics.json are gone. The next run trains the new teacher
    (teacher.pt meta: 2 steps, alpha2 0.05); it used to resume the old student stage ('student stage done: 0 steps')
    and ship the old teacher's distillation labelled alpha2 0.05."""
    import flownet.data.real_pairs as real_pairs
    from functools import partial
    monkeypatch.setattr(real_pairs, "RealFramePairs", partial(real_pairs.RealFramePairs, max_clips=3))   # faster
    run = tmp_path / "s"
    train_selfsup(_selfsup_cfg(tmp_path, shared_data, "train.teacher_steps=1", "train.student_steps=1",
                               "loss.alpha2=0.5"), progress=False)
    old = {"last.pt", "teacher.pt", "teacher_metrics.json", "weights.pt", "metrics.json"}
    assert old <= {p.name for p in run.iterdir()}
    new = ["train.teacher_steps=2", "train.student_steps=1", "loss.alpha2=0.05"]
    real = ss.bidirectional_flows
    _kill_at_call(monkeypatch, ss, "bidirectional_flows")
    with pytest.raises(_Kill):
        train_selfsup(_selfsup_cfg(tmp_path, shared_data, "train.resume=false", *new), progress=False)
    for gone in sorted(old):
        assert not (run / gone).exists(), gone
    monkeypatch.setattr(ss, "bidirectional_flows", real)
    capsys.readouterr()
    train_selfsup(_selfsup_cfg(tmp_path, shared_data, *new), progress=False)
    out = capsys.readouterr().out
    assert "resumed" not in out and "student stage done: 1 steps this session" in out
    meta = _weights(run / "teacher.pt")["meta"]
    assert (meta["steps"], meta["alpha2"]) == (2, 0.05)
    assert json.loads((run / "metrics.json").read_text())["teacher_steps"] == 2


def _decflow_cfg(tmp_path, root, **train_kw):
    kw = dict(init_weights=None, batch_size=2, crop=0, steps=1, iters=1, log_every=100, ckpt_every=100,
              half_weights=False, seed=1)
    return DecFlowTrainConfig(name="d", out_dir=str(tmp_path), model=DecFlowConfig(**TINY_SRFLOWNET),
                              data=FlowDataConfig(root=str(root), size=64, n_train=2, n_test=1),
                              train=DecFlowTrainSection(**{**kw, **train_kw}))


def test_decflow_fresh_run_killed_before_its_first_checkpoint_leaves_no_old_checkpoint(tmp_path, shared_data,
                                                                                       monkeypatch):
    """DecFlow: ``resume=false`` killed in its first step leaves no last.pt / weights.pt / metrics.json of the old
    run beside its new config.yaml (the old last.pt was resumed by the next run)."""
    run = tmp_path / "d"
    train_decflow(_decflow_cfg(tmp_path, shared_data, lr=1e-3), progress=False)
    assert (run / "last.pt").is_file() and (run / "weights.pt").is_file()
    _kill_at_call(monkeypatch, decflow, "decflow_loss")
    with pytest.raises(_Kill):
        train_decflow(_decflow_cfg(tmp_path, shared_data, lr=5e-3, resume=False), progress=False)
    for gone in ("last.pt", "weights.pt", "metrics.json"):
        assert not (run / gone).exists(), gone
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"] == 5e-3


def test_resume_false_fine_tune_of_the_runs_own_weights_reads_them_before_they_are_removed(tmp_path, shared_data):
    """``train.init_weights=<run>/weights.pt`` with ``resume=false`` under the same name: the init weights are read
    before start_run removes the old weights.pt, and the fine-tune starts from them (step 0 = those tensors)."""
    run = tmp_path / "runs" / "r"
    train(_cfg(tmp_path, shared_data, steps=1), progress=False)
    old = _weights(run / "weights.pt")["state_dict"]
    seen = {}
    real = flow_train.training_loss

    def first(model, *a, **k):
        seen.setdefault("start", {k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(model, *a, **k)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flow_train, "training_loss", first)
        train(_cfg(tmp_path, shared_data, steps=1, resume=False, init_weights=str(run / "weights.pt")),
              progress=False)
    assert _same(seen["start"], old)
    assert _weights(run / "weights.pt")["meta"]["steps"] == 1


def test_resume_false_refused_before_start_leaves_the_old_run_whole(tmp_path, shared_data):
    """A resume=false run refused by a setting check (before start_run) removes nothing."""
    run = tmp_path / "runs" / "r"
    train(_cfg(tmp_path, shared_data, steps=1), progress=False)
    before = {p.name for p in run.iterdir()}
    with pytest.raises(ValueError, match="train.ema_decay"):
        train(_cfg(tmp_path, shared_data, steps=1, resume=False, ema_decay=1.5), progress=False)
    assert {p.name for p in run.iterdir()} == before


# ------------------------------------------------------------------------------- 2. reruns of a finished run

def test_rerun_of_a_supervised_run_that_stopped_on_its_time_budget_trains_no_more(tmp_path, shared_data, capsys):
    """train.max_minutes tiny (0.06 s: the first step uses it up): each rerun used to train one more step and
    overwrite weights.pt (steps 1, 2, 3 ...). Now the step stays and the shipped tensors stay bit-identical."""
    cfg = lambda: _cfg(tmp_path, shared_data, steps=1000, max_minutes=0.001, ckpt_every=100)   # noqa: E731
    run = tmp_path / "runs" / "r"
    train(cfg(), progress=False)
    first = _weights(run / "weights.pt")
    step = torch.load(run / "last.pt", weights_only=True)["step"]
    assert step == first["meta"]["steps"] >= 1
    for _ in range(2):
        train(cfg(), progress=False)
        again = _weights(run / "weights.pt")
        assert torch.load(run / "last.pt", weights_only=True)["step"] == step
        assert again["meta"]["steps"] == step
        assert _same(first["state_dict"], again["state_dict"])


def test_supervised_checkpoint_written_just_before_the_time_budget_ran_out_is_not_trained_on_at_rerun(
        tmp_path, shared_data, monkeypatch):
    """Each step takes 1 s and writing a checkpoint 100 s (a fake clock); budget 1 minute. The step-1 checkpoint
    recorded 1 s, the budget was found used up right after it (101 s), and the final save was skipped as a repeat of
    step 1: a rerun resumed at 1 s of 60 and trained on. Now the checkpoint the run ends with records a time at or
    past the budget, and a rerun trains nothing."""
    fake_clock(monkeypatch, flow_train, training_loss=1.0, save_torch_file=100.0)
    run = tmp_path / "runs" / "r"
    train(_cfg(tmp_path, shared_data, steps=1000, max_minutes=1, ckpt_every=1), progress=False)
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["elapsed_s"] >= 60
    first = _weights(run / "weights.pt")
    train(_cfg(tmp_path, shared_data, steps=1000, max_minutes=1, ckpt_every=1), progress=False)
    again = _weights(run / "weights.pt")
    assert torch.load(run / "last.pt", weights_only=True)["step"] == ck["step"] == again["meta"]["steps"]
    assert _same(first["state_dict"], again["state_dict"])


def test_selfsup_student_checkpoint_written_just_before_the_time_budget_ran_out_is_not_trained_on_at_rerun(
        tmp_path, shared_data, monkeypatch):
    """As the supervised case, in the student stage (student_minutes 1; 1 s a step, 100 s a checkpoint)."""
    import flownet.data.real_pairs as real_pairs
    from functools import partial
    monkeypatch.setattr(real_pairs, "RealFramePairs", partial(real_pairs.RealFramePairs, max_clips=3))
    fake_clock(monkeypatch, ss, student_step_loss=1.0, save_torch_file=100.0)
    args = ["train.teacher_steps=1", "train.student_steps=1000", "train.student_minutes=1"]
    run = tmp_path / "s"
    train_selfsup(_selfsup_cfg(tmp_path, shared_data, *args), progress=False)
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["stage"] == "student" and ck["elapsed_s"] >= 60
    first = _weights(run / "weights.pt")
    train_selfsup(_selfsup_cfg(tmp_path, shared_data, *args), progress=False)
    again = torch.load(run / "last.pt", weights_only=True)
    assert (again["stage"], again["step"]) == ("student", ck["step"])
    assert _same(first["state_dict"], _weights(run / "weights.pt")["state_dict"])


# ------------------------------------------------------------------ 3. settings LiteFlowNet2 / RAFT do not read

@pytest.mark.parametrize("section,key,value", [("train", "iters", 13), ("train", "gamma", 0.1),
                                               ("model", "iters", 7), ("model", "corr_levels", 2)])
def test_liteflownet2_refuses_settings_it_does_not_read(tmp_path, shared_data, section, key, value):
    """They changed nothing (LiteFlowNet2 has no recurrent updates and its own ``liteflownet2`` section), yet the
    run took them, logged 'N updates (train.iters)' and recorded train_iters; now refused by name, before the run
    folder is made."""
    cfg = _lfn2_cfg(tmp_path, shared_data)
    flow_train.check_unread_settings(cfg)       # the defaults pass
    setattr(getattr(cfg, section), key, value)
    with pytest.raises(ValueError, match=rf"^{section}\.{key}={value} is not read by train\.backbone=liteflownet2 "
                                         rf"\(.*\): remove it .* or set {section}\.{key}="):
        train(cfg, progress=False)
    assert not (tmp_path / "runs").exists()


def test_raft_refuses_a_model_section_it_does_not_read(tmp_path, shared_data):
    """RAFT reads its ``raft`` section, not ``model`` (SRFlowNet's); train.iters it reads (its updates)."""
    cfg = _cfg(tmp_path, shared_data, backbone="raft_small", iters=2)
    cfg.model = SRFlowNetConfig()
    flow_train.check_unread_settings(cfg)
    cfg.model.hidden, cfg.model.corr_levels = 16, 2
    with pytest.raises(ValueError, match=r"^model\.hidden=16, model\.corr_levels=2 are not read by "
                                         r"train\.backbone=raft_small \(its network is set by the raft section\)"):
        train(cfg, progress=False)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("config", ["configs/flow_liteflownet2.yaml", "configs/flow_raft_small.yaml",
                                    "configs/flow_raft_large.yaml", "configs/flow_srflownet_fdr.yaml"])
def test_the_shipped_backbone_configs_pass_the_check(config):
    flow_train.check_unread_settings(load_config(FlowTrainConfig, config))


def _lfn2_cfg(tmp_path, root):
    """A tiny LiteFlowNet2 run with the default model section, train.iters and train.gamma."""
    from flownet.models.liteflownet2 import LiteFlowNet2Config
    cfg = _cfg(tmp_path, root, backbone="liteflownet2", steps=1, iters=FlowTrainSection().iters)
    cfg.model = SRFlowNetConfig()
    cfg.liteflownet2 = LiteFlowNet2Config(netc_channels=(8, 8, 8, 8, 8, 8))
    return cfg


def test_liteflownet2_run_logs_and_records_no_recurrent_updates(tmp_path, shared_data, capsys):
    """One tiny LiteFlowNet2 step: the log no longer says 'N updates (train.iters)', and metrics.json records
    train_iters null (it used to record train.iters, which the network never read)."""
    train(_lfn2_cfg(tmp_path, shared_data), progress=False)
    out = capsys.readouterr().out
    assert "(train.iters)" not in out and "Training batches: whole 32x32 pairs, no recurrent updates" in out
    assert json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())["train_iters"] is None
