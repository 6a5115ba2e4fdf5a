"""Speed probe: pairs/s (batch 1, after one warm-up) of SRFlowNet (at several update counts), TV-L1 and
Farneback on random-texture image pairs of given sizes. Prints a Markdown table with the load average.

    .venv/bin/python bench/flow_speed.py --threads 2 --sizes 128 256 --iters 8 4 --repeats 5
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flownet import get_estimator  # noqa: E402


def pairs_per_s(est, size: tuple[int, int], repeats: int) -> float:
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(2, 1, size[0] // 4, size[1] // 4, generator=g),
                                        size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    a, b = x[:1], x[1:]
    est.estimate(a, b)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        est.estimate(a, b)
    return repeats / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", nargs="+", default=["128", "256", "388x584"])
    ap.add_argument("--iters", type=int, nargs="+", default=[8, 4])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--methods", default="srflownet,tvl1,farneback")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import cv2
    cv2.setNumThreads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) if "x" in s else (int(s), int(s)) for s in args.sizes]
    ests = []
    for m in args.methods.split(","):
        if m == "srflownet":
            ests += [(f"SRFlowNet ({k} updates)", get_estimator("srflownet", iters=k)) for k in args.iters]
        else:
            ests.append(({"tvl1": "TV-L1", "farneback": "Farneback"}[m], get_estimator(m)))
    load0 = os.getloadavg()
    rows = [(name, [pairs_per_s(e, s, args.repeats) for s in sizes]) for name, e in ests]
    load1 = os.getloadavg()
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after {load1[0]:.2f} "
          f"{load1[1]:.2f} {load1[2]:.2f}; {args.threads} threads; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| method | " + " | ".join(f"{h}x{w}" for h, w in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, v in rows:
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in v) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
