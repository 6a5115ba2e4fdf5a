"""Speed probe: pairs/s (batch 1, after one warm-up, best of ``--rounds`` timed rounds) of SRFlowNet (one or
more weight files, at several update counts), TV-L1 and Farneback on random smooth-texture image pairs of given
sizes. Prints a Markdown table with the ``uptime`` load before and after.

``--plain-dw`` adds, for every SRFlowNet row, the same weights run with the super kernels as two plain
``nn.Conv2d`` depth-wise convolutions (the implementation before 2026-11-22) in the same process, interleaved,
so that the speed-up of :func:`flownet.models.srflownet.depthwise_conv` is measured under the same load.

    .venv/bin/python bench/flow_speed.py --threads 1 --sizes 128 256 388x584 --iters 4 8 --plain-dw
    .venv/bin/python bench/flow_speed.py --weights fdr=runs/srflownet_fdr/weights.pt --iters 4
    .venv/bin/python bench/flow_speed.py --threads 1 --sizes 128 256 --iters 4 --content facial --repeats 20
    .venv/bin/python bench/flow_speed.py --threads 1 --sizes 128 --iters 1 --content facial --repeats 40 \
        --precision fp32 bf16 --methods srflownet,tvl1   # bf16 autocast (CPUs with AVX512-BF16 / AMX)
    .venv/bin/python bench/flow_speed.py --threads 1 --sizes 128 --iters 4 --content facial --repeats 64 \
        --methods srflownet,liteflownet2,tvl1 --batch 32     # batched, as the main job computes flow

``--plain-instance-norm`` likewise adds the same weights with ``nn.InstanceNorm2d`` in the feature encoder
(before 2026-12-01) in place of :class:`flownet.models.srflownet.InstanceNorm2dFast`, interleaved.

``--tta`` adds, for every SRFlowNet row, the same weights with ``tta="hflip"`` (the mirrored-pair average).
``--compile`` adds, for every SRFlowNet row, the same weights with ``compile=True`` (``torch.compile`` of the
network; the one-time compile happens in the warm-up call, whose duration is printed below the table).

``--content facial`` times the methods on the first ``--repeats`` pairs of the synthetic facial flow test
set (real CASME II crops of held-out subjects, warped; square sizes only) instead of one random texture:
TV-L1's run time depends on the images (it converges faster on faces with sub-pixel motion than on
random texture), so the speed ratio to TV-L1 must be read on the content it is claimed for.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flownet import get_estimator  # noqa: E402
from flownet.models import srflownet as srf  # noqa: E402
from flownet.user_numbers import integer  # noqa: E402


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.split("load average:")[-1].strip()
    except OSError:
        return "n/a"


@contextlib.contextmanager
def plain_depthwise():
    """Temporarily run SuperKernelBlock as DW_k(x) + DW_s(x) with two nn.Conv2d calls (the old path)."""
    fast = srf.SuperKernelBlock.forward

    def slow(self, x):
        x = x + self.pw(F.gelu(self.dw_large(x) + self.dw_small(x)))
        return x + self.ffn(x)
    srf.SuperKernelBlock.forward = slow
    try:
        yield
    finally:
        srf.SuperKernelBlock.forward = fast


@contextlib.contextmanager
def plain_instance_norm():
    """Temporarily run the feature encoder's InstanceNorm2dFast as ``nn.InstanceNorm2d`` (the path before 2026-12-01)."""
    fast = srf.InstanceNorm2dFast.forward
    srf.InstanceNorm2dFast.forward = torch.nn.InstanceNorm2d.forward
    try:
        yield
    finally:
        srf.InstanceNorm2dFast.forward = fast


def random_pairs(size: tuple[int, int], repeats: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One fixed random smooth-texture pair (1, 1, H, W) in [0, 1], repeated ``repeats`` times."""
    g = torch.Generator().manual_seed(0)
    x = F.interpolate(torch.rand(2, 1, size[0] // 4, size[1] // 4, generator=g),
                      size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    return [(x[:1], x[1:])] * repeats


def facial_pairs(size: tuple[int, int], repeats: int, root=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``repeats`` synthetic facial test pairs (1, 1, S, S) at square size S (ValueError otherwise)."""
    if size[0] != size[1]:
        raise ValueError(f"--content facial needs square sizes, got {size[0]}x{size[1]}")
    from flownet.evaluate import load_pairs
    return [(p["img1"], p["img2"]) for p in load_pairs("synthetic-face", root, size=size[0], n_pairs=repeats)]


def pairs_per_s(est, pairs: list, rounds: int = 1, ctx=contextlib.nullcontext, batch: int = 1) -> tuple[float, float]:
    """Best over ``rounds`` of (pairs / seconds) for ``est.estimate`` over ``pairs`` (after one warm-up call of
    the same batch size). ``batch`` > 1 stacks that many pairs into one call (how the main job computes flow,
    ``flow.batch_size``); the classical methods still solve them one after another inside the call.
    Returns (pairs/s, seconds of the warm-up call)."""
    groups = [(torch.cat([a for a, _ in pairs[i:i + batch]]), torch.cat([b for _, b in pairs[i:i + batch]]))
              for i in range(0, len(pairs), batch)]
    best = 0.0
    with ctx():
        t0 = time.perf_counter()
        est.estimate(*groups[0])  # warm-up (and compilation for compile=True)
        warmup = time.perf_counter() - t0
        for _ in range(rounds):
            t0 = time.perf_counter()
            for a, b in groups:
                est.estimate(a, b)
            best = max(best, len(pairs) / (time.perf_counter() - t0))
    return best, warmup


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=integer(1, meaning="CPU threads"), default=2)
    ap.add_argument("--sizes", nargs="+", default=["128", "256", "388x584"])
    ap.add_argument("--iters", type=integer(1, meaning="updates"), nargs="+", default=[8, 4])
    ap.add_argument("--repeats", type=integer(1, meaning="pairs per cell"), default=5)
    ap.add_argument("--rounds", type=integer(1, meaning="timed rounds"), default=1,
                    help="timed rounds per cell; the best is reported")
    ap.add_argument("--methods", default="srflownet,tvl1,farneback")
    ap.add_argument("--weights", action="append", default=[],
                    help="LABEL=FILE SRFlowNet weights (repeatable; default: the shipped weights)")
    ap.add_argument("--content", choices=["random", "facial"], default="random",
                    help="random: one smooth random texture; facial: the first --repeats synthetic facial test pairs")
    ap.add_argument("--root", default=None, help="shared data root for --content facial (default ../shared/data)")
    ap.add_argument("--plain-dw", action="store_true", help="also time the plain nn.Conv2d super-kernel path")
    ap.add_argument("--plain-instance-norm", action="store_true",
                    help="also time the feature encoder with nn.InstanceNorm2d instead of InstanceNorm2dFast")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "auto"],
                    help="SRFlowNet / LiteFlowNet2 inference precisions (one row each)")
    ap.add_argument("--compile", action="store_true",
                    help="also time every SRFlowNet row with torch.compile (compile time printed separately)")
    ap.add_argument("--tta", action="store_true",
                    help="also time every SRFlowNet row with tta='hflip' (the mirrored-pair average: twice the work)")
    ap.add_argument("--batch", type=integer(1, meaning="pairs per call"), default=1,
                    help="pairs per estimate call (default 1; the main job uses flow.batch_size=32)")
    args = ap.parse_args(argv)
    side = integer(1, meaning="pixels")
    try:
        sizes = [tuple(side(v) for v in s.split("x")) if "x" in s else (side(s), side(s)) for s in args.sizes]
    except argparse.ArgumentTypeError as exc:
        ap.error(f"argument --sizes: {exc} (a size is N or HxW)")
    torch.set_num_threads(args.threads)
    import cv2
    cv2.setNumThreads(args.threads)
    rows_spec = []
    for m in args.methods.split(","):
        if m == "srflownet":
            for spec in args.weights or ["shipped="]:
                label, _, w = spec.partition("=")
                for k in args.iters:
                    for p in args.precision:
                        est = get_estimator("srflownet", weights=w or None, iters=k, precision=p)
                        tag = "" if p == "fp32" else f", {p}"
                        for tta in ("none", "hflip") if args.tta else ("none",):
                            extra = "" if tta == "none" else ", mirrored-pair average"
                            rows_spec.append((f"SRFlowNet-{label} ({k} updates{tag}{extra})",
                                              est if tta == "none" else get_estimator(
                                                  "srflownet", weights=w or None, iters=k, precision=p, tta=tta),
                                              contextlib.nullcontext))
                            if args.compile:
                                rows_spec.append((f"SRFlowNet-{label} ({k} updates{tag}{extra}, torch.compile)",
                                                  get_estimator("srflownet", weights=w or None, iters=k, precision=p,
                                                                compile=True, tta=tta), contextlib.nullcontext))
                        if args.plain_dw:
                            rows_spec.append((f"SRFlowNet-{label} ({k} updates{tag}, plain depth-wise conv)", est,
                                              plain_depthwise))
                        if args.plain_instance_norm:
                            rows_spec.append((f"SRFlowNet-{label} ({k} updates{tag}, nn.InstanceNorm2d)", est,
                                              plain_instance_norm))
        elif m == "liteflownet2":
            for p in args.precision:
                rows_spec.append(("LiteFlowNet2 (shipped" + ("" if p == "fp32" else f", {p}") + ")",
                                  get_estimator("liteflownet2", precision=p), contextlib.nullcontext))
        else:
            rows_spec.append(({"tvl1": "TV-L1", "farneback": "Farneback"}[m], get_estimator(m), contextlib.nullcontext))
    load0 = _uptime()
    vals = {name: [] for name, _, _ in rows_spec}
    warm = {name: [] for name, _, _ in rows_spec}
    for s in sizes:  # size-major: the rows of one column are timed close together
        pairs = facial_pairs(s, args.repeats, args.root) if args.content == "facial" else random_pairs(s, args.repeats)
        for name, est, ctx in rows_spec:
            v, w = pairs_per_s(est, pairs, args.rounds, ctx, args.batch)
            vals[name].append(v)
            warm[name].append(w)
    load1 = _uptime()
    print(f"load average before {load0}, after {load1}; {args.threads} threads; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; content {args.content}; batch {args.batch}; "
          f"pid {os.getpid()}")
    print("| method | " + " | ".join(f"{h}x{w}" for h, w in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, v in vals.items():
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in v) + " |")
    for name, w in warm.items():
        if "torch.compile" in name:
            print(f"warm-up call incl. compilation, {name}: " + ", ".join(f"{x:.1f} s" for x in w))
    return 0


if __name__ == "__main__":
    sys.exit(main())
