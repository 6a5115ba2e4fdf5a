"""ICE-GAN generator synthesis speed (faces/s) and model sizes; prints a Markdown table.

    OMP_NUM_THREADS=2 .venv/bin/python bench/gan_speed.py [--threads 1 2] [--batch 16] [--repeats 10]

Rows (all eval mode, ``torch.inference_mode``, batch 16, one warm-up batch, CPU;
:func:`icegan.gan.evaluate.generator_speed`):

* the generator of ``configs/gan_casme2.yaml`` (paper sizes, 128×128) as shipped: factored GRM
  (Eq. 2 as ``(Âφ)(θᵀW)``, ``Â`` once per forward, T(·) and the 1×1 output conv as matrix
  products on the supernodes), NCHW — what ``synthesize`` and ``gan eval`` run;
* the same in a channels-last copy (measured, not adopted);
* the same in NCHW with the reference GRM (``factored=False``: ``M`` formed, DenseGCNConv per
  sample) — the GRM as it was before the speed work;
* the same with plain skip connections (no GRM at all) — a floor for the GRM's cost;
* the 64×64 CPU-budget model (``configs/gan_casme2_cpu.yaml``).

``faces/s`` = all faces / all timed wall-clock seconds; ``best batch`` = 16 / fastest batch, the
figure least disturbed by other processes on a shared machine; ``faces/CPU-s`` = all faces / CPU
seconds this process used (``time.process_time``): at 1 thread, an estimate of what one unshared
core gives (time-slicing by other processes is excluded, their cache/bandwidth interference is
not); at 2 threads it sums both threads' CPU time, so it is not a wall-clock figure. The load
average is printed before and after.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform

import torch

from flownet.user_numbers import integer

from icegan.config import load_config
from icegan.gan.evaluate import generator_speed
from icegan.gan.trainer import GanConfig, build_models
from icegan.paths import shipped_config


def _reference_grm(g) -> None:
    for m in g.modules():
        if hasattr(m, "factored"):
            m.factored = False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=integer(1, meaning="torch CPU threads"), nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=integer(1, meaning="batch size"), default=16)
    ap.add_argument("--repeats", type=integer(1, meaning="timed batches"), default=10)
    args = ap.parse_args()
    paper = load_config(GanConfig, shipped_config("gan_casme2"))   # the shipped files, from any cwd
    cpu = load_config(GanConfig, shipped_config("gan_casme2_cpu"))
    plain = dataclasses.replace(paper, model=dataclasses.replace(paper.model, skip="plain"))
    # (name, config, channels_last, reference GRM)
    rows = [("gan_casme2.yaml, shipped (factored GRM, NCHW)", paper, False, False),
            ("gan_casme2.yaml, factored GRM, channels-last", paper, True, False),
            ("gan_casme2.yaml, reference GRM path (factored=False), NCHW", paper, False, True),
            ("gan_casme2.yaml, skip=plain (no GRM), NCHW", plain, False, False),
            ("gan_casme2_cpu.yaml, shipped", cpu, False, False)]
    la = os.getloadavg()
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}, torch {torch.__version__}")
    print("| model | size | G params (M) | threads | faces/s | best batch (faces/s) | faces/CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for name, cfg, cl, ref in rows:
        g, _ = build_models(cfg)
        if ref:
            _reference_grm(g)
        pg = sum(p.numel() for p in g.parameters()) / 1e6
        for t in args.threads:
            torch.set_num_threads(t)
            times: list[float] = []
            cpu: list[float] = []
            fps = generator_speed(g, batch=args.batch, repeats=args.repeats, device=torch.device("cpu"),
                                  channels_last=cl, per_batch=times, cpu_per_batch=cpu)
            s = cfg.data.img_size
            print(f"| {name} | {s}×{s} | {pg:.2f} | {t} | {fps:.1f} | {args.batch / min(times):.1f} | "
                  f"{args.batch * len(cpu) / sum(cpu):.1f} |", flush=True)
    print(f"# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
