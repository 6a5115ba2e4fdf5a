"""How well does the SMIC apex spotting method find CASME II's annotated apexes?

SMIC has no annotated apex, so `icegan prepare` spots it (icegan.data.spotting: largest
head-motion-compensated mean optical flow magnitude from the onset inside the face hull, smoothed
over 5 frames). CASME II has annotated apexes: this script runs
the same spotting on the onset..offset frames of every usable composite clip of the cropped CASME II
copy and reports the distance between the spotted and the annotated apex, in frames (200 fps).

    .venv/bin/python bench/apex_spotting_casme2.py [--method dis|farneback|middle] [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from flownet.user_numbers import integer

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _job(args):
    import cv2
    cv2.setNumThreads(1)
    from icegan.data.spotting import spot_apex_index
    key, paths, numbers, apex, method, onset, offset = args
    frames = [cv2.imread(p, cv2.IMREAD_GRAYSCALE) for p in paths]
    # "middle": icegan prepare's rule, the middle of the clip, not of the frames present
    idx, name, _ = spot_apex_index(frames, method=method, numbers=numbers, onset=onset, offset=offset)
    return key, numbers[idx] - apex, numbers[-1] - numbers[0] + 1, name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="dis", choices=["dis", "farneback", "middle"])
    ap.add_argument("--workers", type=integer(1, meaning="worker processes"), default=2)
    args = ap.parse_args()
    from icegan.data.casme2 import CASME2
    from icegan.data.check import SKIP, record_problems
    from icegan.data.prepare import worker_context
    from icegan.paths import shared_data_root
    root = shared_data_root()
    ds = CASME2(root / "casme2", root / "annotations" / "CASME2-coding-20140508.xlsx")
    jobs = []
    for r in ds.records(composite_only=True):
        if r.clip_dir.parent.is_dir() and not any(p.severity == SKIP for p in record_problems(r)):
            keep = [(n, str(p)) for n, p in zip(r.frame_numbers, r.frame_paths) if r.onset <= n <= (r.offset or n)]
            jobs.append((r.key, [p for _, p in keep], [n for n, _ in keep], r.apex, args.method, r.onset, r.offset))
    t = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=worker_context()) as ex:
        res = list(ex.map(_job, jobs))
    secs = time.perf_counter() - t
    err = np.array([abs(e) for _, e, _, _ in res])
    lengths = np.array([n for _, _, n, _ in res])
    regions = {}
    for *_, name in res:
        regions[name] = regions.get(name, 0) + 1
    print(f"# {len(res)} CASME II composite clips (cropped), method {args.method}, {secs:.1f} s "
          f"({args.workers} workers, load {os.getloadavg()[0]:.2f})")
    print(f"# clip length onset..offset: median {np.median(lengths):.0f} frames")
    print(f"# region used: {regions}")
    print("| |spotted - annotated| | median | mean | within 5 frames | within 10 | within 20 |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.method} (spotted) | {np.median(err):.1f} | {err.mean():.1f} | {(err <= 5).mean():.0%} | "
          f"{(err <= 10).mean():.0%} | {(err <= 20).mean():.0%} |")
    from icegan.data.spotting import middle_frame_index
    mid = np.array([abs(ns[middle_frame_index(ns, on, off)] - a) for (_, _, ns, a, _, on, off) in jobs])
    print(f"| middle frame (baseline) | {np.median(mid):.1f} | {mid.mean():.1f} | {(mid <= 5).mean():.0%} | "
          f"{(mid <= 10).mean():.0%} | {(mid <= 20).mean():.0%} |")
    rng = np.random.default_rng(0)
    rand = np.array([abs(rng.integers(0, n) - (a - ns[0])) for (_, _, ns, a, *_), n in zip(jobs, lengths)])
    print(f"| random frame (baseline) | {np.median(rand):.1f} | {rand.mean():.1f} | {(rand <= 5).mean():.0%} | "
          f"{(rand <= 10).mean():.0%} | {(rand <= 20).mean():.0%} |")


if __name__ == "__main__":
    main()
