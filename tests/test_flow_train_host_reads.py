"""The supervised flow training loop reads one value set on the host per step (the logs, the loss for its
finiteness check, the batch's valid-value count and, on a logging step, the EPE, in one copy), with the values and
messages the separate reads gave."""
import os
import re
import sys

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET
from test_gpu_paths_h2 import HostReads

import flownet.train as ftrain
from flownet.losses import srflownet_loss
from flownet.models.srflownet import SRFlowNetConfig
from flownet.devices import host_values
from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection


class StepReads(HostReads):
    """:class:`HostReads` leaving out the synthetic pairs' generation (CPU tensors in the dataset, not the step)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.READS:
            where = sys._getframe(1).f_code.co_filename
            self.n += f"{os.sep}flownet{os.sep}" in where and f"{os.sep}flownet{os.sep}data{os.sep}" not in where
        return func(*args, **(kwargs or {}))


def nan_loss_of(real):
    """A stand-in for the loss function ``real`` (returning ``(loss, parts)``) whose loss is NaN, its parts kept."""
    def nan_loss(*a, **k):
        loss, parts = real(*a, **k)
        return loss * float("nan"), parts
    return nan_loss


def _cfg(tmp_path, root, name, steps, backbone="srflownet"):
    return FlowTrainConfig(name=name, out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                           data=FlowDataConfig(root=str(root), size=32, n_train=4, n_test=1, frames_per_clip=1),
                           train=FlowTrainSection(backbone=backbone, regularizer="tvr", batch_size=2, crop=0,
                                                  steps=steps, eval_every=0, threads=1, seed=1, log_every=2,
                                                  ckpt_every=100))


def test_supervised_loop_reads_once_per_step_logging_or_not(tmp_path, shared_data, capsys):
    """Steps 2 and 3 of a 3-step run (one logging step, one not) add two reads to a 1-step run (before: 4 per step
    and 4 more on a logging step: the finiteness check, the two log values, the valid-pixel check; the EPE and
    three reads of the loss)."""
    counts = []
    for steps in (1, 3):
        with StepReads() as reads:
            ftrain.train(_cfg(tmp_path, shared_data, f"r{steps}", steps), progress=False)
        counts.append(reads.n)
    assert counts[1] - counts[0] == 2
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("step 2 loss")]
    assert len(line) == 1 and re.fullmatch(r"step 2 loss \d+\.\d{4} epe \d+\.\d{4} reg \d+\.\d{4} elapsed \d+s", line[0])


def test_step_logs_read_in_one_copy_are_the_floats_of_the_separate_reads():
    g = torch.Generator().manual_seed(0)
    flows = [torch.randn(2, 2, 16, 16, generator=g) for _ in range(3)]
    gt, img = torch.randn(2, 2, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    valid = torch.rand(2, 16, 16, generator=g) > 0.4
    loss, floats = srflownet_loss(flows, gt, valid, img1=img, regularizer="tvr")
    with HostReads() as reads:
        loss_t, tensors = srflownet_loss(flows, gt, valid, img1=img, regularizer="tvr", logs_as_floats=False)
    assert reads.n == 0
    assert torch.equal(loss, loss_t)
    assert host_values(tensors) == {**floats, "valid_values": float(valid.sum()) * 2}


def test_a_non_finite_loss_is_named_with_float_logs_and_a_batch_without_valid_pixels_as_before(tmp_path, shared_data,
                                                                                           monkeypatch):
    real = ftrain.srflownet_loss
    monkeypatch.setattr(ftrain, "srflownet_loss", nan_loss_of(real))
    with pytest.raises(FloatingPointError, match=r"^non-finite loss at step 0: \{'epe_loss': \d+\.\d+(e-?\d+)?, "
                                                 r"'reg_loss': \d+\.\d+(e-?\d+)?\}$"):
        ftrain.train(_cfg(tmp_path, shared_data, "nan", 1), progress=False)
    monkeypatch.setattr(ftrain, "srflownet_loss", real)
    real_collate = ftrain.collate

    def no_valid(items):
        b = real_collate(items)
        b["valid"] = torch.zeros_like(b["valid"])
        return b
    monkeypatch.setattr(ftrain, "collate", no_valid)
    with pytest.raises(ValueError, match=r"^no valid pixel in the batch$"):
        ftrain.train(_cfg(tmp_path, shared_data, "none", 1), progress=False)
