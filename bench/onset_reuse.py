#!/usr/bin/env python
"""The main job's synthetic-pair flow with and without the reuse of onset encodings (``icegan.pipeline.reusing_onsets``).

    python bench/onset_reuse.py [--onsets 115] [--pairs 209] [--repeats 3] [--threads 1] [--faces DIR]

A fold's synthetic set has many pairs per onset (CASME II SDE, ``configs/casme2.yaml``: 204-209 synthetic pairs
drawn from the fold's 111-115 training onsets). The work timed is ``compute_flow_features`` of the shipped SRFlowNet
at 64x64 (flow computed at 128, as ``flow.input_size=auto``) on smooth random faces, or with ``--faces`` on the first
``--onsets`` onsets of a prepared-clip cache (``data/cache/<hash>/onset.npy``; their apexes, brightened by a random
0-3 %, stand in for the synthetic ones), interleaved: plain, and inside
``reusing_onsets`` (a new cache, as each fold gets). It prints the median seconds, the cache's hits and misses and
the largest difference of the maps from the plain ones.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from flownet.user_numbers import integer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onsets", type=integer(1, meaning="onset faces"), default=115)
    ap.add_argument("--pairs", type=integer(1, meaning="pairs"), default=209)
    ap.add_argument("--repeats", type=integer(1, meaning="timed rounds"), default=3)
    ap.add_argument("--threads", type=integer(1, meaning="torch CPU threads"), default=1)
    ap.add_argument("--faces", default=None, help="a prepared-clip cache folder holding onset.npy and apex.npy")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from flownet.registry import get_estimator
    from flownet.resolution import at_input_size
    from icegan import pipeline
    est = at_input_size(get_estimator("srflownet", device="cpu"), "auto", 64)
    g = torch.Generator().manual_seed(0)
    if args.faces:
        import numpy as np

        from icegan.pipeline import to_unit
        faces = to_unit(np.load(Path(args.faces) / "onset.npy")[:args.onsets])
        apexes = to_unit(np.load(Path(args.faces) / "apex.npy")[:args.onsets])
        src = torch.randint(0, len(faces), (args.pairs,), generator=g)
        onset = faces[src]
        apex = (apexes[src] * (1 + 0.03 * torch.rand(args.pairs, 1, 1, 1, generator=g))).clamp(0, 1)
    else:
        faces = F.avg_pool2d(torch.rand(args.onsets, 1, 72, 72, generator=g), 9, stride=1)   # smooth, 64x64
        src = torch.randint(0, args.onsets, (args.pairs,), generator=g)
        onset = faces[src]
        apex = (onset + 0.05 * F.avg_pool2d(torch.rand(args.pairs, 1, 68, 68, generator=g), 5, stride=1)).clamp(0, 1)

    def plain():
        return pipeline.compute_flow_features(est, onset, apex, 28, "minmax", 32)

    held = {}

    def reuse():
        with pipeline.reusing_onsets(est) as cache:
            held["cache"] = cache
            return pipeline.compute_flow_features(est, onset, apex, 28, "minmax", 32)

    ways = {"plain": plain, "reusing_onsets": reuse}
    times = {k: [] for k in ways}
    ref = plain()
    diffs = {}
    for _ in range(args.repeats):
        for k, f in ways.items():
            t = time.perf_counter()
            out = f()
            times[k].append(time.perf_counter() - t)
            diffs[k] = max(diffs.get(k, 0.0), float((out - ref).abs().max()))
    cache = held["cache"]
    print(f"{args.pairs} pairs of {len(faces)} {'prepared' if args.faces else 'random'} onsets, {args.threads} thread(s), {args.repeats} repeats interleaved")
    for k, v in times.items():
        print(f"{k:16s} median {statistics.median(v):6.2f} s  runs {' '.join(f'{x:.2f}' for x in v)}  "
              f"max |map - plain| {diffs[k]:.2e}")
    print(f"last cache: {len(cache.entries)} onsets held, {cache.nbytes / 2 ** 20:.1f} MiB, "
          f"hits {cache.hits}, misses {cache.misses}")


if __name__ == "__main__":
    main()
