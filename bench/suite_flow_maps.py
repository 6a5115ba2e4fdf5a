#!/usr/bin/env python
"""What a suite saves by computing its runs' real flow maps once (``<suite>/flow_features``, run_main's
``feature_cache``).

    python bench/suite_flow_maps.py [--config configs/casme2.yaml] [--methods srflownet farneback tvl1 liteflownet2]
                                    [--seeds 3] [key=value ...]

For each flow method (the recipes of ``configs/suite_casme2_flow.yaml``: the config with ``gan.enabled=false`` and
``flow.method=<method>``), the run's clips are loaded as ``train.py`` loads them (a prepared cache) and the real maps
are made as run_main makes them (:func:`icegan.pipeline._real_features`, same provenance): once computed in a fresh
run folder, once read from the shared folder by a second run folder, and once more computed without the shared folder
in a third (the reference). It prints one row per method: the seconds of the first two, whether the read maps equal
the reference's bit for bit, and the seconds a suite of ``--seeds`` seeds saves
((seeds - 1) x (compute - read)). Threads as the config's ``threads`` (train.py's setup).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from flownet.user_numbers import integer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/casme2.yaml")
    ap.add_argument("--methods", nargs="+", default=["srflownet", "farneback", "tvl1", "liteflownet2"])
    ap.add_argument("--seeds", type=integer(1, meaning="seeds of the suite"), default=3)
    ap.add_argument("overrides", nargs="*", help="key=value of the main config")
    args = ap.parse_args()
    from icegan import pipeline
    from icegan.protocol import data_digest
    print("| flow method | clips | compute (s) | shared read (s) | same bits | saved per suite (s) |")
    print("|---|---|---|---|---|---|")
    for method in args.methods:
        cfg = pipeline.load_main_config(args.config, ["gan.enabled=false", f"flow.method={method}", *args.overrides])
        pipeline._start_process(cfg)
        device = pipeline.resolve_device(cfg.device)
        est = pipeline.build_flow(cfg, device)
        clips = pipeline.load_samples(cfg, progress=False)
        prov = {**pipeline.flow_weights_provenance(cfg), "data": data_digest(clips.samples, clips.onset, clips.apex)}
        with tempfile.TemporaryDirectory() as tmp:
            shared, first, second = Path(tmp) / "flow_features", Path(tmp) / "a", Path(tmp) / "b"
            first.mkdir()
            second.mkdir()
            t0 = time.perf_counter()
            made = pipeline._real_features(cfg, clips, est, first, prov, progress=False, shared_dir=shared)
            t1 = time.perf_counter()
            read = pipeline._real_features(cfg, clips, est, second, prov, progress=False, shared_dir=shared)
            t2 = time.perf_counter()
            third = Path(tmp) / "c"
            third.mkdir()
            # the reference: the maps a run computes itself, without the shared folder (the read ones must equal it)
            fresh = pipeline._real_features(cfg, clips, est, third, prov, progress=False)
        compute, reread = t1 - t0, t2 - t1
        print(f"| {method} | {len(made)} | {compute:.2f} | {reread:.2f} | {torch.equal(read, fresh)} | "
              f"{(args.seeds - 1) * (compute - reread):.1f} |", flush=True)
    print(f"threads {torch.get_num_threads()}, torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
