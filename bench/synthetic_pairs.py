"""Throughput of the synthetic facial flow pairs that feed flow training (``flownet.data.synthetic_face``).

Times ``SyntheticFaceFlow.__getitem__`` (frame read + resize, landmarks from a cache, head + action-unit flow,
forward warp, blur, noise, face mask) in one process with one torch thread, and the same pairs through a
``torch.utils.data.DataLoader`` with ``--workers`` processes (as ``train.workers`` does), and prints ms per pair,
pairs/s and the share of each stage of :func:`flownet.data.synthetic_face.make_pair`. On a GPU the training
step is far cheaper than this, so pairs/s here bounds the steps/s a GPU run can reach (batch size × steps/s).

    .venv/bin/python bench/synthetic_pairs.py --pairs 200 --workers 2
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flownet.user_numbers import integer  # noqa: E402


def _ms(fn, n: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1000.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=integer(1, meaning="pairs"), default=200,
                    help="pairs timed (training split, 128x128)")
    ap.add_argument("--size", type=integer(1, meaning="pixels"), default=128)
    ap.add_argument("--workers", type=integer(0, meaning="DataLoader processes; 0 = main process"), default=2,
                    help="DataLoader processes for the second measurement")
    ap.add_argument("--root", default=None, help="shared data root (default $ICEGAN_SHARED_DATA or ../shared/data)")
    args = ap.parse_args(argv)
    from torch.utils.data import DataLoader

    from flownet.data import synthetic_face as sf
    from flownet.train import collate
    torch.set_num_threads(1)
    up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    ds = sf.SyntheticFaceFlow(root=args.root, split="train", size=args.size, n_pairs=args.pairs, frames_per_clip=4,
                              n_val=2)
    # landmarks once per frame (dlib), outside the clock: training reads them from a cache
    for i in range(args.pairs):
        rng = np.random.default_rng([ds.seed, 0, i])
        ds.load_frame(ds.frames[int(rng.integers(len(ds.frames)))])
    t = time.perf_counter()
    for i in range(args.pairs):
        ds[i]
    one = (time.perf_counter() - t) / args.pairs * 1000.0
    dl = DataLoader(ds, batch_size=16, num_workers=args.workers, collate_fn=collate)
    t = time.perf_counter()
    n = sum(len(b["img1"]) for b in dl)
    multi = n / (time.perf_counter() - t)
    img, lm = ds.load_frame(ds.frames[0])
    h = w = args.size
    rng = np.random.default_rng(0)
    flow = sf.au_displacement(lm, {"lip_corner_pull": 2.0, "cheek_raise": 1.0}, h, w)
    stages = {"au_displacement (2 AUs)": _ms(lambda: sf.au_displacement(lm, {"lip_corner_pull": 2.0, "cheek_raise": 1.0}, h, w), 50),
              "warp_forward": _ms(lambda: sf.warp_forward(img, flow, return_valid=True), 50),
              "load_frame": _ms(lambda: ds.load_frame(ds.frames[1]), 50),
              "make_pair (all)": _ms(lambda: sf.make_pair(img, lm, rng), 50)}
    print(f"load before: {up}; torch {torch.__version__}; {args.size}x{args.size}")
    print("| measurement | value |\n|---|---|")
    print(f"| one process, 1 thread | {one:.2f} ms/pair ({1000.0 / one:.0f} pairs/s) |")
    print(f"| DataLoader, {args.workers} workers (includes worker start-up) | {multi:.0f} pairs/s |")
    for k, v in stages.items():
        print(f"| {k} | {v:.2f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
