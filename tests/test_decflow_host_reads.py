"""The DecFlow training loop reads one value set on the host per step (the part losses, the loss for its finiteness
check and the valid-value count, in one copy), with the values and messages the separate reads gave."""

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET
from test_flow_train_host_reads import StepReads, nan_loss_of
from test_gpu_paths_h2 import HostReads

import flownet.models.decflow as decflow
from flownet.models.decflow import DecFlowConfig, DecFlowTrainConfig, DecFlowTrainSection, decflow_loss, train_decflow
from flownet.devices import host_values
from flownet.train import FlowDataConfig


def _cfg(tmp_path, root, name, steps):
    return DecFlowTrainConfig(name=name, out_dir=str(tmp_path),
                              data=FlowDataConfig(root=str(root), size=64, n_train=4, n_test=1),
                              model=DecFlowConfig(**TINY_SRFLOWNET),
                              train=DecFlowTrainSection(init_weights=None, batch_size=2, crop=0, steps=steps, iters=1,
                                                        log_every=2, ckpt_every=100))


def test_decflow_loop_reads_once_per_step_logging_or_not(tmp_path, shared_data):
    """Steps 2 and 3 of a 3-step run (one logging step, one not) add two reads to a 1-step run (before: 7 per step,
    the finiteness check, three part losses and three valid-pixel checks, and 2 more reads of the loss when logging)."""
    counts = []
    for steps in (1, 3):
        with StepReads() as reads:
            train_decflow(_cfg(tmp_path, shared_data, f"r{steps}", steps), progress=False)
        counts.append(reads.n)
    assert counts[1] - counts[0] == 2


def test_decflow_part_losses_read_in_one_copy_are_the_floats_of_the_separate_reads():
    g = torch.Generator().manual_seed(0)
    out = {k: [torch.randn(2, 2, 8, 8, generator=g) for _ in range(2)] for k in ("head", "expression", "total")}
    gh, ge = torch.randn(2, 2, 8, 8, generator=g), torch.randn(2, 2, 8, 8, generator=g)
    ge[0, 0, :4] = 500.0            # beyond the sequence loss's max_flow: fewer valid values in expression, total
    loss, floats = decflow_loss(out, gh, ge, gamma=0.5, w_expr=2.0)
    with HostReads() as reads:
        loss_t, tensors = decflow_loss(out, gh, ge, gamma=0.5, w_expr=2.0, logs_as_floats=False)
    assert reads.n == 0
    assert torch.equal(loss, loss_t)
    assert host_values(tensors) == {**floats, "valid_values": 2.0 * (2 * 8 * 8 - 4 * 8)}


def test_decflow_non_finite_loss_is_named_with_float_logs_and_a_batch_without_valid_pixels_as_before(
        tmp_path, shared_data, monkeypatch):
    real = decflow.decflow_loss
    monkeypatch.setattr(decflow, "decflow_loss", nan_loss_of(real))
    with pytest.raises(FloatingPointError, match=r"^non-finite DecFlow loss at step 0: \{'head': \d+\.\d+(e-?\d+)?, "
                                                 r"'expression': \d+\.\d+(e-?\d+)?, 'total': \d+\.\d+(e-?\d+)?\}$"):
        train_decflow(_cfg(tmp_path, shared_data, "nan", 1), progress=False)
    monkeypatch.setattr(decflow, "decflow_loss", real)

    def no_valid(b, *crop_args):
        return {**b, "valid": torch.zeros_like(b["valid"])}
    monkeypatch.setattr(decflow, "random_crop", no_valid)
    with pytest.raises(ValueError, match=r"^no valid pixel in the batch$"):
        train_decflow(_cfg(tmp_path, shared_data, "none", 1), progress=False)
