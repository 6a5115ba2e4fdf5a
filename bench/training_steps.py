#!/usr/bin/env python
"""Time the inner steps of the three training loops, one torch thread, median of ``--repeats``.

    python bench/training_steps.py [--repeats 7]

What each line times (the work a profile of ``icegan gan train``, ``icegan flow train`` and
``icegan flow train --mode selfsup`` found repeated; docs/benchmarks.md, "5. Wasted work in the training loops"):

* ``gan epoch``: 3 epochs of :func:`icegan.gan.trainer.train_gan` with the model of
  ``configs/gan_casme2_cpu.yaml`` (64x64, batch 16, counterfactual branch and embedding perceptual term on) on
  160 random pairs, the motion prior off (its TV-L1 runs once per run); seconds per epoch.
* ``teacher step``: one self-supervised teacher step of ``configs/flow_selfsup.yaml`` (B=8, 64x64, 4 updates:
  forward and backward flows, census loss, backward pass).
* ``flow_metrics``: :func:`flownet.metrics.flow_metrics` on 48 pairs of 128x128 (an evaluation's pooling).
* ``sequence_loss``: :func:`flownet.losses.sequence_loss` over 8 predictions at B=32, 128x128.

Run it before and after a change on a quiet machine: the numbers are this machine's, not a target.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from flownet.user_numbers import integer


def _median_ms(fn, repeats: int) -> float:
    fn()                                        # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def gan_epoch_seconds() -> float:
    from icegan.config import load_config
    from icegan.gan.trainer import GanConfig, train_gan
    from icegan.paths import shipped_config
    cfg = load_config(GanConfig, shipped_config("gan_casme2_cpu"))        # the shipped file, from any cwd
    cfg.model.motion_prior = "none"
    cfg.train.epochs, cfg.train.progress, cfg.train.device, cfg.train.max_minutes = 3, False, "cpu", None
    g = torch.Generator().manual_seed(0)
    onset = torch.rand(160, 1, 64, 64, generator=g) * 2 - 1
    apex = (onset + 0.1 * torch.randn(onset.shape, generator=g)).clamp(-1, 1)
    t = time.perf_counter()
    train_gan(onset, apex, torch.arange(160) % 3, cfg, device="cpu")
    return (time.perf_counter() - t) / 3


def teacher_step_ms(repeats: int) -> float:
    from flownet.models.srflownet import SRFlowNet
    from flownet.selfsup import SelfSupConfig, bidirectional_flows, teacher_step_loss
    from icegan.config import load_config
    from icegan.paths import shipped_config
    cfg = load_config(SelfSupConfig, shipped_config("flow_selfsup"), [])   # the shipped file, from any cwd
    torch.manual_seed(0)
    model = SRFlowNet(cfg.model).train()
    g = torch.Generator().manual_seed(0)
    b = cfg.train.batch_size
    img1, img2 = torch.rand(b, 1, 64, 64, generator=g), torch.rand(b, 1, 64, 64, generator=g)

    def step():
        model.zero_grad(set_to_none=True)
        loss, _ = teacher_step_loss(bidirectional_flows(model, img1, img2, cfg.train.iters), img1, img2, cfg.loss)
        loss.backward()
    return _median_ms(step, repeats)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--repeats", type=integer(1, meaning="timed repeats"), default=7,
                   help="timed repeats per line (default 7; the median is shown)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from flownet.losses import sequence_loss
    from flownet.metrics import flow_metrics
    g = torch.Generator().manual_seed(0)
    gt, pred = torch.randn(48, 2, 128, 128, generator=g) * 3, torch.randn(48, 2, 128, 128, generator=g) * 3
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print(f"flow_metrics 48 x 128x128: {_median_ms(lambda: flow_metrics(pred, gt), args.repeats):.0f} ms")
    print(f"sequence_loss B=32, 8 predictions: "
          f"{_median_ms(lambda: sequence_loss([pred[:32]] * 8, gt[:32]), args.repeats):.0f} ms")
    print(f"teacher step (configs/flow_selfsup.yaml, B=8, 64x64): {teacher_step_ms(args.repeats):.0f} ms")
    print(f"gan epoch (configs/gan_casme2_cpu.yaml model, 160 pairs, batch 16): {gan_epoch_seconds():.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
