"""ICE-GAN generator synthesis speed (faces/s) and model sizes; prints a Markdown table.

    .venv/bin/python bench/gan_speed.py [--threads 1 2] [--batch 16] [--repeats 10]

Rows: the paper-size generator at 128×128 (configs/gan_casme2.yaml), the same with GRMs removed
(plain skip connections) for the GRM's cost, the 64×64 CPU-budget model (configs/gan_casme2_cpu.yaml) and its widths at 128×128.
Times are eval mode, no grad, batch 16, after one warm-up batch, on CPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform

import torch

from icegan.config import load_config
from icegan.gan.evaluate import generator_speed
from icegan.gan.trainer import GanConfig, build_models


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    paper = load_config(GanConfig, "configs/gan_casme2.yaml")
    cpu = load_config(GanConfig, "configs/gan_casme2_cpu.yaml")
    no_grm = dataclasses.replace(paper, model=dataclasses.replace(paper.model, skip="plain"))
    rows = [("gan_casme2.yaml (paper sizes)", paper), ("gan_casme2.yaml, skip=plain", no_grm),
            ("gan_casme2_cpu.yaml", cpu),
            ("gan_casme2_cpu.yaml widths at 128", dataclasses.replace(cpu, data=dataclasses.replace(cpu.data, img_size=128)))]
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, torch {torch.__version__}")
    print("| model | size | G params (M) | D params (M) | threads | faces/s |")
    print("|---|---|---|---|---|---|")
    for name, cfg in rows:
        g, d = build_models(cfg)
        pg = sum(p.numel() for p in g.parameters()) / 1e6
        pd = sum(p.numel() for p in d.parameters()) / 1e6
        for t in args.threads:
            torch.set_num_threads(t)
            fps = generator_speed(g, batch=args.batch, repeats=args.repeats, device=torch.device("cpu"))
            s = cfg.data.img_size
            print(f"| {name} | {s}×{s} | {pg:.2f} | {pd:.2f} | {t} | {fps:.1f} |", flush=True)
    print(f"# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
