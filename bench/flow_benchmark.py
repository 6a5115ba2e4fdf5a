"""Facial-flow benchmark: SRFlowNet (one or more weight files), TV-L1 and Farneback, side by side.

Accuracy (EPE / px1 / px3 / px5 / Fl-all / WAUC, mean over pairs) and speed (pairs per second, batch 1,
after one warm-up pair, same pairs as the accuracy) on
  * the synthetic facial flow test set (held-out CASME II subjects) at 128x128 and 256x256,
  * Middlebury (Grove2, Hydrangea, RubberWhale, Urban2; 640x480 and 584x388).
Writes a JSON with everything and a Markdown table (``--md``; its tables are in the flow section of ``docs/benchmarks.md``).

Usage:
    .venv/bin/python bench/flow_benchmark.py --threads 2 \
        --srflownet fdr=flownet/weights/srflownet_facial.pt [--srflownet tvr=runs/srflownet_tvr/weights.pt] \
        --n128 200 --n256 50 --json runs/bench_flow.json --md runs/bench_flow.md

Other learned backbones (LiteFlowNet2, torchvision RAFT, ptlflow models; weights from local files)::

    .venv/bin/python bench/flow_benchmark.py --methods backbones \
        --backbone LiteFlowNet2-fdr=liteflownet2:runs/liteflownet2_fdr/weights.pt \
        --backbone raft_small-fdr=raft_small:runs/raft_small_fdr/weights.pt ...
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flownet import get_estimator  # noqa: E402
from flownet.evaluate import evaluate, load_pairs  # noqa: E402
from flownet.user_numbers import integer  # noqa: E402


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--srflownet", action="append", default=[],
                    help="LABEL=WEIGHTS for an SRFlowNet variant (repeatable); default: shipped weights as 'shipped'")
    ap.add_argument("--backbone", action="append", default=[],
                    help="LABEL=NAME:WEIGHTS for another learned backbone (NAME: liteflownet2, raft_small, raft_large, "
                         "ptlflow:<name>); used when --methods contains 'backbones' (repeatable)")
    ap.add_argument("--methods", default="srflownet,tvl1,farneback",
                    help="comma list of srflownet, backbones, tvl1, farneback")
    ap.add_argument("--skip", default="", help="comma list of datasets to skip: facial128, facial256, middlebury")
    ap.add_argument("--n128", type=integer(1, meaning="pairs"), default=200, help="facial test pairs at 128x128")
    ap.add_argument("--n256", type=integer(1, meaning="pairs"), default=50, help="facial test pairs at 256x256")
    ap.add_argument("--root", default=None, help="shared data root (default $ICEGAN_SHARED_DATA or ../shared/data)")
    ap.add_argument("--iters", type=integer(1, meaning="updates"), default=None,
                    help="SRFlowNet updates at test time (default: model's)")
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "auto"],
                    help="inference precisions of the learned methods (one row each; non-fp32 rows get the "
                         "precision in their label)")
    ap.add_argument("--threads", type=integer(1, meaning="CPU threads"), default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default="runs/bench_flow.json")
    ap.add_argument("--md", default="runs/bench_flow.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2_threads = None
    try:
        import cv2
        cv2.setNumThreads(args.threads)
        cv2_threads = cv2.getNumThreads()
    except ImportError:
        pass

    variants = []
    for m in args.methods.split(","):
        if m == "srflownet":
            specs = args.srflownet or ["shipped="]
            for s in specs:
                label, _, w = s.partition("=")
                variants += [(f"SRFlowNet-{label}" + ("" if p == "fp32" else f" ({p})"), "srflownet", w or None, p)
                             for p in args.precision]
        elif m == "backbones":
            for s in args.backbone:
                label, _, rest = s.partition("=")
                pre = "ptlflow:" if rest.startswith("ptlflow:") else ""
                name, _, w = rest[len(pre):].partition(":")
                name = pre + name
                if not name or not w:
                    ap.error(f"--backbone {s!r}: expected LABEL=NAME:WEIGHTS")
                variants += [(label + ("" if p == "fp32" else f" ({p})"), name, w, p) for p in args.precision]
        else:
            variants.append(({"tvl1": "TV-L1", "farneback": "Farneback"}[m], m, None, "fp32"))

    mb_root = Path(args.root) / "middlebury" if args.root else None
    skip = set(filter(None, args.skip.split(",")))
    datasets = [(d, loader()) for key, d, loader in [
        ("facial128", "facial 128x128", lambda: load_pairs("synthetic-face", args.root, size=128, n_pairs=args.n128)),
        ("facial256", "facial 256x256", lambda: load_pairs("synthetic-face", args.root, size=256, n_pairs=args.n256)),
        ("middlebury", "Middlebury", lambda: load_pairs("middlebury", mb_root)),
    ] if key not in skip]
    load_before = _uptime()
    started = dt.datetime.now(dt.timezone.utc)
    results = []
    for label, name, weights, precision in variants:
        kw = {"iters": args.iters} if name in ("srflownet", "raft_small", "raft_large") and args.iters else {}
        est = get_estimator(name, weights=weights, device=args.device, precision=precision, **kw)
        for dname, pairs in datasets:
            r = evaluate(name, data=dname, pairs=pairs, estimator=est, device=args.device)
            r["label"], r["weights"], r["precision"] = label, weights, getattr(est, "precision", None)
            if name == "srflownet":
                r["model_meta"] = getattr(est.model, "meta", {})
                r["iters"] = args.iters or est.model.config.iters
            elif hasattr(est, "model"):
                r["model_meta"] = getattr(est.model, "meta", {})
                r["params"] = sum(p.numel() for p in est.model.parameters())
            results.append(r)
            print(f"{label:22s} {dname:16s} EPE {r['mean']['EPE']:.3f} px1 {r['mean']['px1']:.4f} "
                  f"Fl-all {r['mean']['Fl-all']:.2f} WAUC {r['mean']['WAUC']:.2f} {r['pairs_per_s']:.2f} pairs/s",
                  flush=True)
    load_after = _uptime()
    cmd = "OMP_NUM_THREADS={} .venv/bin/python bench/flow_benchmark.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "(unset)"), " ".join(argv if argv is not None else sys.argv[1:]))
    info = {"command": cmd, "date_utc": started.strftime("%Y-%m-%d %H:%M UTC"), "uptime_before": load_before,
            "uptime_after": load_after, "torch_threads": args.threads, "cv2_threads": cv2_threads,
            "cpu": platform.processor() or platform.machine(), "nproc": os.cpu_count(), "torch": torch.__version__}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"info": info, "results": results}, indent=2), encoding="utf-8")
    Path(args.md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.md).write_text(render_md(info, results), encoding="utf-8")
    print(f"wrote {args.json} and {args.md}")
    return 0


def render_md(info: dict, results: list[dict]) -> str:
    out = ["## Facial optical flow (flownet)", "",
           f"Command: `{info['command']}`  ",
           f"Machine: {info['nproc']}-core CPU ({info['cpu']}), torch {info['torch']}, "
           f"{info['torch_threads']} torch threads, OpenCV threads {info['cv2_threads']}; **shared with other "
           f"jobs** (load before: `{info['uptime_before'].split('load average:')[-1].strip()}`, after: "
           f"`{info['uptime_after'].split('load average:')[-1].strip()}`). Date: {info['date_utc']}.", "",
           "EPE in pixels (lower is better); px1/px3/px5 = fraction of pixels with EPE < 1/3/5 px; Fl-all = % of "
           "pixels with EPE > 3 px and > 5 % of |GT|; WAUC = Spring weighted area under the accuracy curve "
           "(0-5 px, %). Means are over pairs. Speed: pairs/s, batch 1, after one warm-up, same pairs.", ""]
    for dname in dict.fromkeys(r["data"] for r in results):
        rows = [r for r in results if r["data"] == dname]
        size = rows[0]["image_size"]
        out += [f"### {dname} ({rows[0]['n_pairs']} pairs{', first pair ' + str(size[1]) + 'x' + str(size[0]) if dname == 'Middlebury' else ''})", "",
                "| method | EPE | px1 | px3 | px5 | Fl-all | WAUC | pairs/s |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            m = r["mean"]
            out.append(f"| {r['label']} | {m['EPE']:.3f} | {m['px1']:.4f} | {m['px3']:.4f} | {m['px5']:.4f} | "
                       f"{m['Fl-all']:.2f} | {m['WAUC']:.2f} | {r['pairs_per_s']:.2f} |")
        out.append("")
        if dname == "Middlebury":
            names = [p["name"] for p in rows[0]["per_pair"]]
            out += ["Per sequence EPE:", "", "| method | " + " | ".join(names) + " |",
                    "|---|" + "---|" * len(names)]
            for r in rows:
                out.append(f"| {r['label']} | " + " | ".join(f"{p['EPE']:.3f}" for p in r["per_pair"]) + " |")
            out.append("")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
