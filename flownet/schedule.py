"""The learning-rate schedule and training budget shared by the flow trainers (``icegan flow train``: the
supervised SRFlowNet / LiteFlowNet2 / RAFT trainer, DecFlow, and both stages of the self-supervised one).

A run's budget is a number of optimiser steps, a wall-clock limit in minutes, or both; the schedule follows the
fraction of that budget used, so a run stopped by the clock still warms up and decays once. The shape is a one-cycle
one: a linear warm-up over the first 3 % of the budget from 0 to the base rate, then a linear decay to 5 % of it at the
end (our choice for short CPU budgets; the papers' piecewise-constant schedules assume a known number of steps).
"""
from __future__ import annotations

import math

import torch

#: fraction of the budget spent warming up (0 → the base rate)
WARMUP = 0.03
#: the rate at the end of the budget, as a fraction of the base rate
FINAL = 0.05
#: the smallest rate handed to the optimiser (the schedule starts at 0, which would waste the first step entirely);
#: never more than the schedule's own final rate, FINAL · base rate, so a tiny base rate keeps its whole shape
LR_FLOOR = 1e-7


def budget_fraction(step: int, steps: int, elapsed_s: float = 0.0, max_minutes: float = 0.0) -> float:
    """How much of a run's budget is used, in [0, 1].

    Args:
        step: optimiser steps done (>= 0).
        steps: the step budget; 0 or less counts as one step.
        elapsed_s: training seconds so far, including those of the runs this one resumed.
        max_minutes: the wall-clock budget in minutes; 0 = none (steps only).

    Returns:
        ``min(1, max(step / steps, elapsed_s / (60 max_minutes)))``: whichever budget is nearer its end.
    """
    f = step / max(steps, 1)
    if max_minutes:
        f = max(f, elapsed_s / (60.0 * max_minutes))
    return min(f, 1.0)


def one_cycle_lr(base_lr: float, fraction: float) -> float:
    """The scheduled learning rate at ``fraction`` of the budget (see the module docstring).

    Args:
        base_lr: the peak rate (``train.lr``), > 0.
        fraction: :func:`budget_fraction`, in [0, 1].

    Returns:
        ``base_lr · fraction / WARMUP`` during the warm-up, then ``base_lr · (1 − (1 − FINAL) · (fraction − WARMUP)
        / (1 − WARMUP))``: 0 at the start, ``base_lr`` at 3 %, ``0.05 · base_lr`` at the end.

    Raises:
        ValueError: ``fraction`` outside [0, 1] or not finite.
    """
    if not (0.0 <= fraction <= 1.0) or not math.isfinite(fraction):
        raise ValueError(f"budget fraction must be in [0, 1], got {fraction}")
    if fraction < WARMUP:
        return base_lr * fraction / WARMUP
    return base_lr * (1.0 - (1.0 - FINAL) * (fraction - WARMUP) / (1.0 - WARMUP))


def apply_one_cycle(opt: torch.optim.Optimizer, base_lr: float, fraction: float) -> float:
    """Set every parameter group of ``opt`` to :func:`one_cycle_lr`, raised to ``min(LR_FLOOR, FINAL · base_lr)``
    at the least (so the first step moves the weights, and a base rate below the floor is neither raised nor
    flattened).

    Returns:
        the scheduled rate (before the floor), for logging.
    """
    lr = one_cycle_lr(base_lr, fraction)
    for group in opt.param_groups:
        group["lr"] = max(lr, min(LR_FLOOR, FINAL * base_lr))
    return lr
