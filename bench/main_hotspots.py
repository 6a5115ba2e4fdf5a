#!/usr/bin/env python
"""Where a main-job fold spends its time on CPU, and which execution options help (issue #8).

    OMP_NUM_THREADS=1 python bench/main_hotspots.py --threads 1 --repeats 5 [--compile] [--md OUT.md]

1. Profile: one demo fold (``configs/demo.yaml``, ``data.max_folds=1``) under ``torch.profiler``;
   the table lists the stages (real flow features, GAN training, synthesis + synthetic flow,
   recognizer) by wall time.
2. Options, each timed on the same work, interleaved (A B A B ...) and reported as the median of
   ``--repeats``:
   * GAN training step (generator + capsule discriminator of the demo config, batch 16, 64×64:
     G forward, D on real and fake, backward of both): fp32 NCHW, channels_last, bf16 autocast,
     and ``torch.compile`` of G and D (``--compile``; its compile time is reported apart);
   * recognizer step (STSTNet, 113 samples at 28×28, forward + backward): fp32 NCHW, channels_last,
     bf16 autocast;
   * flow features (shipped SRFlowNet, 4 updates, 64 pairs at 64×64): one pair per call vs batches of 32.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from flownet.user_numbers import integer


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])
    except OSError:
        return "?"


def _median_times(fns: dict, repeats: int) -> dict:
    times = {k: [] for k in fns}
    for k, f in fns.items():      # warm-up
        f()
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def gan_step_variants(compile_too: bool) -> tuple[dict, dict]:
    from icegan.gan.trainer import GanConfig, build_models
    cfg = GanConfig()
    cfg.data.img_size = 64
    cfg.model.g_base_channels, cfg.model.g_max_channels, cfg.model.d_base_channels = 16, 128, 32
    g, d = build_models(cfg)
    g.train()
    d.train()
    b = 16
    x_on = torch.rand(b, 1, 64, 64) * 2 - 1
    x_ap = torch.rand(b, 1, 64, 64) * 2 - 1
    y = torch.arange(b) % 3
    z = torch.randn(b, g.z_dim)

    def step(gm, dm, on, ap, amp: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            fake = gm(on, z, y)
            dr = dm(ap, y, reconstruct=False)
            df = dm(fake.detach(), reconstruct=False)
            loss_d = dr.adv_len.float().sum() - df.adv_len.float().sum() + dr.exp_len.float().sum()
        loss_d.backward()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            dg = dm(fake, reconstruct=False)
            loss_g = F.l1_loss(fake.float(), ap) - dg.adv_len.float().sum()
        loss_g.backward()
        gm.zero_grad(set_to_none=True)
        dm.zero_grad(set_to_none=True)

    cl = torch.channels_last
    fns = {
        "fp32, NCHW": lambda: step(g, d, x_on, x_ap, False),
        "fp32, channels_last": lambda: step(g.to(memory_format=cl), d.to(memory_format=cl),
                                            x_on.contiguous(memory_format=cl), x_ap.contiguous(memory_format=cl), False),
        "bf16 autocast": lambda: step(g, d, x_on, x_ap, True),
    }
    extra = {}
    if compile_too:
        gc_, dc_ = torch.compile(g), torch.compile(d)
        t = time.perf_counter()
        step(gc_, dc_, x_on, x_ap, False)
        step(gc_, dc_, x_on, x_ap, False)
        extra["torch.compile: compile + first two steps (s)"] = time.perf_counter() - t
        fns["torch.compile, fp32"] = lambda: step(gc_, dc_, x_on, x_ap, False)
    return fns, extra


def recognizer_variants() -> dict:
    from icegan.models.recognizers import build_recognizer
    torch.manual_seed(0)
    m = build_recognizer("ststnet")
    x = torch.rand(113, 3, 28, 28)
    y = torch.arange(113) % 3

    def step(model, xb, amp):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = model(xb)
        F.cross_entropy(out.float(), y).backward()
        model.zero_grad(set_to_none=True)

    cl = torch.channels_last
    return {"fp32, NCHW": lambda: step(m, x, False),
            "fp32, channels_last": lambda: step(m.to(memory_format=cl), x.contiguous(memory_format=cl), False),
            "bf16 autocast": lambda: step(m, x, True)}


def flow_variants() -> dict:
    from flownet.registry import get_estimator
    from flownet.strain import flow_features
    est = get_estimator("srflownet", iters=4)
    a = torch.rand(64, 1, 64, 64)
    b = torch.roll(a, 1, dims=-1)

    def per_pair():
        for i in range(len(a)):
            flow_features(est.estimate(a[i:i + 1], b[i:i + 1]), 28)

    def batched():
        for i in range(0, len(a), 32):
            flow_features(est.estimate(a[i:i + 32], b[i:i + 32]), 28)
    return {"one pair per call (64 pairs)": per_pair, "batches of 32 (64 pairs)": batched}


def profile_fold() -> list[tuple[str, float]]:
    """Wall seconds of each stage of one demo fold (stage timers around the pipeline functions)."""
    import icegan.pipeline as P
    from icegan.gan import trainer, synthesis
    stages: dict[str, float] = {}

    def timed(name, fn):
        def wrap(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - t
        return wrap
    P.compute_flow_features = timed("flow features (real + synthetic)", P.compute_flow_features)
    trainer.train_gan = timed("GAN training", trainer.train_gan)
    synthesis.balanced_augmentation = timed("synthesis of the augmentation set", synthesis.balanced_augmentation)
    P.fit_predict = timed("recognizer training + prediction", P.fit_predict)
    import tempfile
    cfg = P.load_main_config(None, ["data.max_folds=1"])
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        P.run_main(cfg, Path(tmp) / "run", progress=False)
    total = time.perf_counter() - t
    rows = sorted(stages.items(), key=lambda kv: -kv[1])
    rows.append(("rest (data, writing outputs, metrics, plots)", total - sum(stages.values())))
    rows.append(("total, one fold incl. setup", total))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=integer(1, meaning="torch CPU threads"), default=1)
    ap.add_argument("--repeats", type=integer(1, meaning="timed calls"), default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of G and D (slow to compile)")
    ap.add_argument("--md", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = _load()
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{args.threads} thread(s); load average before {before}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", ""]
    prof = profile_fold()
    lines += ["One demo fold (`configs/demo.yaml`, data.max_folds=1), wall time per stage:", "",
              "| stage | s |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in prof] + [""]
    for title, (fns, extra) in (("GAN training step (demo models, batch 16, 64×64)", gan_step_variants(args.compile)),
                                ("Recognizer step (STSTNet, 113 × 3 × 28 × 28, forward + backward)",
                                 (recognizer_variants(), {})),
                                ("Flow features (shipped SRFlowNet, 4 updates, 64×64)", (flow_variants(), {}))):
        med = _median_times(fns, args.repeats)
        base = next(iter(med.values()))
        lines += [f"{title}: median of {args.repeats}, interleaved", "", "| variant | ms | vs first |", "|---|---|---|"]
        lines += [f"| {k} | {v * 1000:.1f} | {base / v:.2f}× |" for k, v in med.items()]
        lines += [f"| {k} | {v:.1f} s | |" for k, v in extra.items()] + [""]
        print("\n".join(lines[-(len(med) + len(extra) + 4):]), flush=True)
    lines.append(f"Load average after: {_load()}.")
    md = "\n".join(lines) + "\n"
    print(md)
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(md, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
