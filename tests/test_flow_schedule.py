"""The flow trainers' learning-rate schedule and budget (flownet/schedule.py): known values of the one-cycle shape,
the step and wall-clock budgets, and the floor handed to the optimiser."""
from __future__ import annotations

import math

import pytest
import torch

from flownet.schedule import FINAL, LR_FLOOR, WARMUP, apply_one_cycle, budget_fraction, one_cycle_lr


def test_one_cycle_known_values():
    assert (WARMUP, FINAL) == (0.03, 0.05)
    assert one_cycle_lr(2.0, 0.0) == 0.0
    assert one_cycle_lr(2.0, 0.015) == pytest.approx(1.0)          # half-way up the warm-up
    assert one_cycle_lr(2.0, 0.03) == pytest.approx(2.0)           # the peak
    assert one_cycle_lr(2.0, 0.515) == pytest.approx(2.0 * (1 - 0.95 * 0.5))    # half-way down: 0.525 of the peak
    assert one_cycle_lr(2.0, 1.0) == pytest.approx(0.1)            # 5 % of the peak at the end
    lrs = [one_cycle_lr(1.0, f / 100) for f in range(101)]
    peak = lrs.index(max(lrs))
    assert peak == 3 and all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1:]))      # strictly down after the warm-up


@pytest.mark.parametrize("fraction", [-0.01, 1.01, math.nan])
def test_one_cycle_refuses_a_fraction_outside_the_budget(fraction):
    with pytest.raises(ValueError, match="budget fraction"):
        one_cycle_lr(1e-3, fraction)


def test_budget_fraction_steps_time_and_clamp():
    assert budget_fraction(25, 100) == 0.25
    assert budget_fraction(25, 100, elapsed_s=1e9) == 0.25         # no wall-clock budget: time does not count
    assert budget_fraction(25, 100, elapsed_s=45.0, max_minutes=1.0) == 0.75     # the clock is nearer its end
    assert budget_fraction(90, 100, elapsed_s=45.0, max_minutes=1.0) == 0.9      # the steps are
    assert budget_fraction(300, 100) == 1.0 and budget_fraction(1, 100, 600.0, 1.0) == 1.0
    assert budget_fraction(1, 0) == 1.0                            # no steps: one step is the whole budget


def test_apply_one_cycle_sets_every_group_with_a_floor_never_above_the_base_rate():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [w]}, {"params": [torch.nn.Parameter(torch.zeros(1))]}], lr=1.0)
    assert apply_one_cycle(opt, 4e-4, 0.5) == pytest.approx(one_cycle_lr(4e-4, 0.5))
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(one_cycle_lr(4e-4, 0.5))] * 2
    assert apply_one_cycle(opt, 4e-4, 0.0) == 0.0
    assert [g["lr"] for g in opt.param_groups] == [LR_FLOOR] * 2   # the first step still moves the weights
    # a base rate below the floor was raised to it: now its schedule keeps its shape down to its own end rate
    apply_one_cycle(opt, 1e-9, 0.0)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(FINAL * 1e-9, rel=1e-9, abs=0)] * 2
    for f in (0.03, 0.5, 1.0):
        apply_one_cycle(opt, 1e-9, f)
        assert opt.param_groups[1]["lr"] == pytest.approx(one_cycle_lr(1e-9, f), rel=1e-9, abs=0)
