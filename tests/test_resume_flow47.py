"""A self-supervised (flownet.selfsup) or DecFlow (flownet.models.decflow) training run interrupted mid-epoch and
resumed from last.pt ends with the weights of a run never interrupted, with and without crops: the pair order, the
crop corners and the student's superpixel noise are functions of the seed and the step (flownet.train.StepShuffle,
crop_offsets), not of generators seeded when the run (re)started. Settings that made no whole batch (an endless
wait for one) are refused before the run folder."""
from __future__ import annotations

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET

import flownet.models.decflow as decflow
import flownet.selfsup as ss
import flownet.train as flow_train
from flownet.models.decflow import DecFlowConfig, DecFlowTrainConfig, DecFlowTrainSection, train_decflow
from flownet.selfsup import SelfSupConfig, train_selfsup
from flownet.train import FlowDataConfig, StepShuffle, crop_offsets
from icegan.config import load_config


class _Kill(Exception):
    """Stands in for a kill of the training process."""


def _cut_after(monkeypatch, module, name: str, calls: int) -> None:
    """Make ``module.name`` (a per-step loss) raise :class:`_Kill` at its call ``calls + 1``: a kill as update
    ``calls + 1`` of that loss's stage starts."""
    real, seen = getattr(module, name), []

    def cut(*a, **k):
        seen.append(1)
        if len(seen) > calls:
            raise _Kill
        return real(*a, **k)
    monkeypatch.setattr(module, name, cut)


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _same_moments(a: dict, b: dict) -> bool:
    """The AdamW moments and step counts of two optimizer state dicts are equal, tensor for tensor (and there are
    some)."""
    sa, sb = a["state"], b["state"]
    return bool(sa) and sa.keys() == sb.keys() and all(_same_tensors(sa[i], sb[i]) for i in sa)


def _record_crop_steps(monkeypatch, module) -> list:
    """``(step, salt)`` of every ``crop_offsets`` call of ``module``, in the list returned."""
    calls = []

    def recording(seed, step, n, h, w, crop, salt=5):
        calls.append((step, salt))
        return crop_offsets(seed, step, n, h, w, crop, salt)
    monkeypatch.setattr(module, "crop_offsets", recording)
    return calls


# ------------------------------------------------------------------------------------------------------ DecFlow

def _decflow_cfg(tmp_path, root, name, crop, n_train=6, batch_size=2):
    return DecFlowTrainConfig(name=name, out_dir=str(tmp_path),
                              data=FlowDataConfig(root=str(root), size=64, n_train=n_train, n_test=1),
                              model=DecFlowConfig(**TINY_SRFLOWNET),
                              train=DecFlowTrainSection(init_weights=None, batch_size=batch_size, crop=crop, steps=6,
                                                        iters=1, log_every=100, ckpt_every=2, half_weights=False,
                                                        seed=1, lr=1e-3))


@pytest.mark.parametrize("crop", [48, 0], ids=["crops", "whole_pairs"])
def test_a_decflow_run_killed_mid_epoch_and_resumed_ends_as_an_uninterrupted_one(tmp_path, shared_data, monkeypatch,
                                                                                 crop):
    """6 updates on 6 pairs in batches of 2 (3 per epoch), killed as update 5 starts (inside the second epoch) and
    resumed from last.pt at step 4: weights.pt and last.pt's weights and AdamW moments equal, tensor for tensor,
    those of a run never killed, and each update's crops are drawn for its own step. Before, the resume shuffled from
    a generator seeded with seed + step and cropped from one seeded with seed + 1 + step, both restarted at the
    resume: other pairs (and other crops)."""
    steps = _record_crop_steps(monkeypatch, flow_train)      # DecFlow crops with flownet.train.random_crop
    train_decflow(_decflow_cfg(tmp_path, shared_data, "whole", crop), progress=False)
    assert steps == ([(s, 5) for s in range(6)] if crop else [])
    real = decflow.decflow_loss
    _cut_after(monkeypatch, decflow, "decflow_loss", 4)
    with pytest.raises(_Kill):
        train_decflow(_decflow_cfg(tmp_path, shared_data, "cut", crop), progress=False)
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["step"] == 4
    monkeypatch.setattr(decflow, "decflow_loss", real)
    train_decflow(_decflow_cfg(tmp_path, shared_data, "cut", crop), progress=False)
    a, b = (torch.load(tmp_path / n / "weights.pt", weights_only=False)["state_dict"] for n in ("whole", "cut"))
    assert _same_tensors(a, b)
    a, b = (torch.load(tmp_path / n / "last.pt", weights_only=True) for n in ("whole", "cut"))
    assert a["step"] == b["step"] == 6
    assert _same_tensors(a["model"], b["model"]) and _same_moments(a["optimizer"], b["optimizer"])


def test_decflow_with_fewer_training_pairs_than_a_batch_is_refused_before_the_run_folder(tmp_path, shared_data):
    """data.n_train < train.batch_size: the loader (drop_last) made no batch and the loop waited for one forever."""
    with pytest.raises(ValueError, match=r"^data.n_train=1 training pairs hold no whole batch of train.batch_size=2; "
                                         r"set data.n_train >= train.batch_size >= 1$"):
        train_decflow(_decflow_cfg(tmp_path, shared_data, "few", 0, n_train=1), progress=False)
    assert not (tmp_path / "few").exists()


# --------------------------------------------------------------------------------------------- self-supervised

def _selfsup_cfg(tmp_path, root, name, crop, *extra):
    tiny = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_SRFLOWNET.items()]
    return load_config(SelfSupConfig, "configs/flow_selfsup.yaml", [
        f"out_dir={tmp_path}", f"name={name}", f"data.root={root}", "data.size=64", f"data.crop={crop}",
        "data.n_items=4", "data.n_test=1", "data.n_occ_pairs=1", "train.teacher_minutes=0", "train.student_minutes=0",
        "train.eval_every=0", "train.ckpt_every=1", "train.log_every=100", "train.batch_size=2", "train.iters=1",
        "train.teacher_iters=1", "train.seed=1", "train.slic_segments=8", *tiny, *extra])


@pytest.mark.parametrize("crop", [48, 0], ids=["crops", "whole_frames"])
@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_a_selfsup_run_killed_mid_epoch_and_resumed_ends_as_an_uninterrupted_one(tmp_path, shared_data, monkeypatch,
                                                                                 stage, crop):
    """4 updates of the stage on 4 real pairs in batches of 2 (2 per epoch), killed as update 4 starts (inside the
    stage's second epoch) and resumed from last.pt at step 3: teacher.pt, weights.pt and the stage's last checkpoint
    (step 4: weights and AdamW moments) equal, tensor for tensor, those of a run never killed, and each update's crops
    are drawn for its own step with the stage's own salt. Before, a resume reshuffled from a generator seeded with
    seed + step (+ 1000 for the student) and drew its crops (seed + 17 + step) and the student's superpixel noise
    ([seed, step, stage]) from generators restarted at the resume: other pairs, crops and noise."""
    import copy
    from functools import partial

    import flownet.data.real_pairs as real_pairs
    monkeypatch.setattr(real_pairs, "RealFramePairs", partial(real_pairs.RealFramePairs, max_clips=3))   # faster
    steps = ["train.teacher_steps=4", "train.student_steps=0"] if stage == "teacher" else \
        ["train.teacher_steps=1", "train.student_steps=4"]
    calls = _record_crop_steps(monkeypatch, ss)
    saved, real_save = {}, ss.save_torch_file          # each checkpoint as written (a teacher's is overwritten)

    def save(obj, path, *a, **k):
        saved[path.parent.name, obj["stage"], obj["step"]] = copy.deepcopy(obj)
        return real_save(obj, path, *a, **k)
    monkeypatch.setattr(ss, "save_torch_file", save)
    train_selfsup(_selfsup_cfg(tmp_path, shared_data, "whole", crop, *steps), progress=False)
    salt = ss.CROP_SALT[stage]
    assert calls == (([(0, 17)] if stage == "student" else []) + [(s, salt) for s in range(4)] if crop else [])
    loss = f"{stage}_step_loss"
    real = getattr(ss, loss)
    _cut_after(monkeypatch, ss, loss, 3)
    with pytest.raises(_Kill):
        train_selfsup(_selfsup_cfg(tmp_path, shared_data, "cut", crop, *steps), progress=False)
    ck = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert (ck["stage"], ck["step"]) == (stage, 3)
    monkeypatch.setattr(ss, loss, real)
    train_selfsup(_selfsup_cfg(tmp_path, shared_data, "cut", crop, *steps), progress=False)
    for file in ("teacher.pt", "weights.pt"):
        a, b = (torch.load(tmp_path / n / file, weights_only=False)["state_dict"] for n in ("whole", "cut"))
        assert _same_tensors(a, b), file
    a, b = (saved[n, stage, 4] for n in ("whole", "cut"))
    assert _same_tensors(a["model"], b["model"]) and _same_moments(a["optimizer"], b["optimizer"])


def test_selfsup_with_fewer_real_pairs_than_a_batch_is_refused_before_the_run_folder(tmp_path, shared_data):
    """data.n_items < train.batch_size: the loader (drop_last) made no batch and the teacher loop waited forever."""
    with pytest.raises(ValueError, match=r"^data.n_items=1 training pairs hold no whole batch of train.batch_size=2; "
                                         r"set data.n_items >= train.batch_size >= 1$"):
        train_selfsup(_selfsup_cfg(tmp_path, shared_data, "few", 0, "data.n_items=1"), progress=False)
    assert not (tmp_path / "few").exists()


def test_the_salts_keep_the_supervised_draws_and_give_each_selfsup_stage_its_own():
    """The salt arguments default to the supervised trainer's draws (3: pair order, 5: crops); the self-supervised
    stages' salts give other orders and corners than those and than each other."""
    import itertools

    def order(**k):
        return list(itertools.islice(iter(StepShuffle(12, 2, seed=1, start=1, **k)), 12))
    assert order(salt=3) == order()
    assert crop_offsets(1, 2, 8, 64, 64, 48, salt=5) == crop_offsets(1, 2, 8, 64, 64, 48)
    orders = [order(), *(order(salt=s) for s in ss.ORDER_SALT.values())]
    corners = [crop_offsets(1, 2, 8, 64, 64, 48)]
    corners += [crop_offsets(1, 2, 8, 64, 64, 48, s) for s in ss.CROP_SALT.values()]
    assert len({str(o) for o in orders}) == 3 and len({str(c) for c in corners}) == 3
