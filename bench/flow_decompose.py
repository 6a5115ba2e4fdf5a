"""Head / expression decomposition benchmark on the synthetic facial flow data (issue #7 item 3).

The synthetic pairs (``flownet.data.synthetic_face``) carry exact ``flow_head`` (similarity head motion,
<= 2 px) and ``flow_expr`` (action-unit motion); ``flow = flow_head + flow_expr``. For each method this
script reports, over the held-out test subjects' pairs (mean over pairs of the per-pair EPE over valid
pixels, pixels): EPE of the total, head and expression flow, and pairs/s (batch 1, after one warm-up pair,
flow estimation + decomposition).

Methods (``--methods``, comma-separated names, all checked before any data is read; default: all but the two
``-none`` estimator rows):
  * ``none``: head = 0, expression = GT total (what a recognizer gets without decomposing);
    ``tvl1-none`` / ``srflownet-none``: the same with the estimator's total flow;
  * ``ransac-gt``: RANSAC on the exact total flow (the decomposition error alone);
  * ``ransac-tvl1``, ``ransac-srflownet``: RANSAC on each estimator's flow (``flownet.decompose``);
  * ``decflow``: the learned two-decoder network (``flownet.models.decflow``), given with ``--decflow``.

``--tune N``: first sweep the RANSAC settings (model × threshold × region margin) on N pairs of the
*training* split (TV-L1 flow), pick the setting with the lowest expression EPE, and use it on the test set
(no test-set tuning). ``--middlebury``: also the DecFlow total-flow EPE on Middlebury.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python bench/flow_decompose.py --threads 1 --n-pairs 100 --tune 40 \
        --decflow flownet/weights/decflow_facial.pt --json runs/flow_decompose/bench.json \
        --md runs/flow_decompose/bench.md
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flownet.data.synthetic_face import SyntheticFaceFlow  # noqa: E402
from flownet.decompose import (DEFAULT_MARGIN, DEFAULT_MODEL, DEFAULT_THRESHOLD, central_region,  # noqa: E402
                               decompose_ransac)
from flownet.metrics import endpoint_error  # noqa: E402
from flownet.registry import get_estimator  # noqa: E402
from flownet.user_numbers import integer  # noqa: E402

PARTS = ("total", "head", "expression")
#: the names --methods takes (module docstring)
METHODS = ("none", "tvl1-none", "srflownet-none", "ransac-gt", "ransac-tvl1", "ransac-srflownet", "decflow")


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "n/a"


def _epe(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> float:
    return float(endpoint_error(pred.float().cpu(), gt.float())[valid].mean())


def _score(parts: dict, it: dict) -> dict:
    gts = {"total": it["flow"], "head": it["flow_head"], "expression": it["flow_expr"]}
    return {k: _epe(parts[k][0], gts[k], it["valid"]) for k in PARTS}


def _run_method(name, items, fn) -> dict:
    """fn(item) -> parts dict of (1, 2, H, W); timed per pair after one warm-up."""
    fn(items[0])
    per, elapsed = [], 0.0
    for it in items:
        t0 = time.perf_counter()
        parts = fn(it)
        elapsed += time.perf_counter() - t0
        per.append(_score(parts, it))
    mean = {k: sum(p[k] for p in per) / len(per) for k in PARTS}
    print(f"{name}: " + " ".join(f"EPE_{k} {v:.4f}" for k, v in mean.items()) + f"  {len(per) / elapsed:.2f} pairs/s",
          flush=True)
    return {"method": name, "mean": mean, "per_pair": per, "pairs_per_s": len(per) / elapsed}


def tune(root, n: int, size: int) -> tuple[dict, list]:
    """RANSAC settings sweep on training-split pairs (TV-L1 flow and exact flow)."""
    ds = SyntheticFaceFlow(root=root, split="train", n_pairs=n, size=size, seed=1)
    items = [ds[i] for i in range(n)]
    tv = get_estimator("tvl1")
    flows = [tv.estimate(it["img1"][None], it["img2"][None]) for it in items]
    rows = []
    for model in ("similarity", "affine"):
        for margin in (0.0, 0.1):
            for thr in (0.1, 0.2, 0.3, 0.5, 1.0):
                row = {"model": model, "margin": margin, "threshold": thr}
                for src in ("tvl1", "gt"):
                    eh = ee = 0.0
                    for it, f in zip(items, flows):
                        flow = f if src == "tvl1" else it["flow"][None]
                        d = decompose_ransac(flow, central_region(size, size, margin), thr, model=model)
                        s = _score(d, it)
                        eh += s["head"]
                        ee += s["expression"]
                    row[f"{src}_head"], row[f"{src}_expr"] = eh / n, ee / n
                rows.append(row)
                print("tune", json.dumps(row), flush=True)
    best = min(rows, key=lambda r: r["tvl1_expr"])
    return best, rows


def casme2_config():
    """The main job's config of ``--casme2``: the shipped ``casme2.yaml`` (found through the package, so from any
    cwd) with the GAN off. Read before any method runs, so that a config that does not load costs no results.

    Raises:
        FileNotFoundError, ValueError: the shipped config is missing or does not load (the message says which).
    """
    from icegan.paths import shipped_config
    from icegan.pipeline import load_main_config
    return load_main_config(shipped_config("casme2"), ["gan.enabled=false", "gan.joint=false"])


def casme2_stats(cfg, decflow_weights=None, iters=None) -> dict:
    """Mean |flow| (px, 64x64 crops) of total / head / expression on the main job's CASME II clips (``cfg``: the
    :func:`casme2_config`), and the RANSAC inlier ratio: how much head motion there is to remove on real data (no
    ground truth).

    ``iters``: DecFlow's recurrent updates; None = the config's ``flow.iters`` (null there = the weights' own
    count, 8 for the shipped DecFlow, which was trained with 4)."""
    from flownet.models.decflow import DecFlowEstimator
    from icegan.pipeline import load_samples, to_unit
    clips = load_samples(cfg)
    on, ap = to_unit(clips.onset), to_unit(clips.apex)
    out = {"n_clips": int(len(on)), "size": int(on.shape[-1])}
    tv = get_estimator("tvl1").estimate(on, ap)
    d = decompose_ransac(tv)
    out["ransac_tvl1"] = {k: float(d[k].norm(dim=1).mean()) for k in PARTS}
    out["ransac_tvl1"]["inlier_ratio"] = float(d["inlier_ratio"].mean())
    dec = DecFlowEstimator(weights=decflow_weights, iters=iters if iters is not None else cfg.flow.iters)
    parts = dec.decompose(on, ap)
    out["decflow"] = {k: float(parts[k].norm(dim=1).mean()) for k in PARTS}
    print("CASME II", json.dumps(out), flush=True)
    return out


def method_estimators(methods: list[str], args: argparse.Namespace) -> dict:
    """Each selected method's flow network, built (its weights read) before any data is read, once for all the
    methods that run it: ``{method: estimator}`` for the ``tvl1`` / ``srflownet`` / ``decflow`` methods, and under
    ``"middlebury"`` the DecFlow of ``--middlebury`` (``--casme2``: its DecFlow weights are read here too).

    Raises:
        FileNotFoundError, ValueError: a ``--srflownet`` / ``--decflow`` file that is missing or does not load, the
            message prefixed with the option.
    """
    from flownet.models.decflow import DecFlowEstimator

    def tvl1():
        return get_estimator("tvl1")

    def srflownet():
        return get_estimator("srflownet", weights=args.srflownet, iters=args.iters)

    def decflow():
        return DecFlowEstimator(weights=args.decflow, iters=args.iters)
    # name → (the option giving its weights, how it is built)
    builds = {"tvl1-none": (None, tvl1), "ransac-tvl1": (None, tvl1),
              "srflownet-none": ("--srflownet", srflownet), "ransac-srflownet": ("--srflownet", srflownet),
              "decflow": ("--decflow", decflow), "middlebury": ("--decflow", decflow), "casme2": ("--decflow", decflow)}
    wanted = methods + ["middlebury"] * args.middlebury + ["casme2"] * args.casme2
    built, ests = {}, {}              # built: builder → its estimator, so each network's weights are read once
    for m in (m for m in wanted if m in builds):
        flag, build = builds[m]
        if build not in built:
            try:
                built[build] = build()
            except (FileNotFoundError, ValueError) as exc:
                raise type(exc)(f"{flag}: {exc}") from None
        ests[m] = built[build]
    ests.pop("casme2", None)           # only checked: casme2_stats builds its own, with the main job's flow.iters
    return ests


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-pairs", type=integer(1, meaning="pairs"), default=100,
                    help="synthetic test pairs (default: %(default)s)")
    ap.add_argument("--size", type=integer(1, meaning="pixels"), default=128,
                    help="side of the square synthetic pairs (default: %(default)s)")
    ap.add_argument("--root", default=None, help="shared data root (default $ICEGAN_SHARED_DATA or ../shared/data)")
    ap.add_argument("--methods", default="none,ransac-gt,ransac-tvl1,ransac-srflownet,decflow",
                    help=f"comma-separated, of {', '.join(METHODS)} (default: %(default)s)")
    ap.add_argument("--srflownet", default=None, help="SRFlowNet weights (default: shipped)")
    ap.add_argument("--decflow", default=None, help="DecFlow weights (default: shipped flownet/weights/decflow_facial.pt)")
    ap.add_argument("--iters", type=integer(1, meaning="updates"), default=None,
                    help="updates of SRFlowNet / DecFlow (default: the model's)")
    ap.add_argument("--tune", type=integer(0, meaning="training pairs; 0 = no sweep"), default=0,
                    help="sweep RANSAC settings on N training pairs first (default: %(default)s, no sweep)")
    ap.add_argument("--middlebury", action="store_true", help="also DecFlow total-flow EPE on Middlebury")
    ap.add_argument("--casme2", action="store_true",
                    help="also the size of the head / expression parts on the real CASME II onset→apex pairs "
                         "of configs/casme2.yaml (prepared cache; no ground truth)")
    ap.add_argument("--threads", type=integer(1, meaning="CPU threads"), default=1,
                    help="torch and OpenCV threads (default: %(default)s)")
    ap.add_argument("--json", default="runs/flow_decompose/bench.json", help="results (default: %(default)s)")
    ap.add_argument("--md", default="runs/flow_decompose/bench.md", help="markdown table (default: %(default)s)")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:                     # before any data is read or any method computed
        ap.error(f"--methods: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(METHODS)}")
    if args.root is not None and not (Path(args.root) / "casme2").is_dir():     # the synthetic faces' source
        ap.error(f"--root {args.root}: no casme2/ folder there; give the shared data root that holds casme2/")
    torch.set_num_threads(args.threads)
    try:            # every method's weights before any data is read or method run: a bad file is one line, not a
        ests = method_estimators(methods, args)     # traceback after the other methods ran
        casme_cfg = casme2_config() if args.casme2 else None
    except (FileNotFoundError, ValueError) as exc:
        print(f"flow_decompose.py: error: {exc}", file=sys.stderr)
        return 2
    import cv2
    cv2.setNumThreads(args.threads)
    info = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "uptime_before": _uptime(),
            "threads": args.threads, "torch": torch.__version__, "argv": sys.argv[1:]}
    print(info, flush=True)

    setting = {"model": DEFAULT_MODEL, "margin": DEFAULT_MARGIN, "threshold": DEFAULT_THRESHOLD}
    tune_rows = []
    if args.tune:
        best, tune_rows = tune(args.root, args.tune, args.size)
        setting = {k: best[k] for k in setting}
        print("chosen on the training split:", setting, flush=True)
    region = central_region(args.size, args.size, setting["margin"])

    def ransac(flow):
        return decompose_ransac(flow, region, setting["threshold"], model=setting["model"])

    ds = SyntheticFaceFlow(root=args.root, split="test", n_pairs=args.n_pairs, size=args.size, seed=0)
    items = [ds[i] for i in range(len(ds))]
    results = []
    for m in methods:
        if m == "none":
            results.append(_run_method("no decomposition (head = 0, expression = GT total)", items, lambda it: {
                "total": it["flow"][None], "head": torch.zeros_like(it["flow"])[None], "expression": it["flow"][None]}))
        elif m in ("tvl1-none", "srflownet-none"):
            base, est = m.split("-")[0], ests[m]

            def plain(it, est=est):
                f = est.estimate(it["img1"][None], it["img2"][None])
                return {"total": f, "head": torch.zeros_like(f), "expression": f}
            results.append(_run_method(f"no decomposition on {base} (head = 0, expression = total)", items, plain))
        elif m == "ransac-gt":
            results.append(_run_method("RANSAC on the exact total flow", items, lambda it: ransac(it["flow"][None])))
        elif m == "ransac-tvl1":
            tv = ests[m]
            results.append(_run_method("RANSAC on TV-L1", items,
                                       lambda it: ransac(tv.estimate(it["img1"][None], it["img2"][None]))))
        elif m == "ransac-srflownet":
            sr = ests[m]
            results.append(_run_method("RANSAC on SRFlowNet-FDR", items,
                                       lambda it: ransac(sr.estimate(it["img1"][None], it["img2"][None]))))
        elif m == "decflow":
            dec = ests[m]
            results.append(_run_method("DecFlow (learned)", items,
                                       lambda it: dec.decompose(it["img1"][None], it["img2"][None])))
        else:
            raise SystemExit(f"unknown method '{m}' in --methods")
    casme = None
    if args.casme2:
        casme = casme2_stats(casme_cfg, args.decflow, args.iters)
    mb = None
    if args.middlebury:
        from flownet.evaluate import evaluate
        res = evaluate("decflow", data="middlebury", root=args.root and str(Path(args.root) / "middlebury"),
                       estimator=ests["middlebury"], progress=False)
        mb = {"EPE": res["mean"]["EPE"], "pairs_per_s": res["pairs_per_s"],
              "per_pair": {r["name"]: r["EPE"] for r in res["per_pair"]}}
        print("DecFlow Middlebury", mb, flush=True)
    info["uptime_after"] = _uptime()
    out = {"info": info, "setting": setting, "tune": tune_rows, "results": results, "middlebury_decflow": mb,
           "casme2_stats": casme,
           "n_pairs": len(items), "size": args.size}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2), encoding="utf-8")
    lines = [f"Date {info['date']}; load before: `{info['uptime_before']}`, after: `{info['uptime_after']}`; "
             f"{args.threads} thread(s).", "",
             f"RANSAC setting: model {setting['model']}, threshold {setting['threshold']} px, "
             f"region margin {setting['margin']}" + (" (chosen on the training split)" if args.tune else ""), "",
             f"### synthetic facial test set, {len(items)} pairs at {args.size}x{args.size} (EPE, px)", "",
             "| method | EPE total | EPE head | EPE expression | pairs/s |", "|---|---|---|---|---|"]
    for r in results:
        m = r["mean"]
        lines.append(f"| {r['method']} | {m['total']:.3f} | {m['head']:.3f} | {m['expression']:.3f} | "
                     f"{r['pairs_per_s']:.2f} |")
    if tune_rows:
        lines += ["", f"### RANSAC settings on {args.tune} training-split pairs (EPE, px)", "",
                  "| model | margin | threshold px | head (TV-L1) | expression (TV-L1) | head (exact flow) | "
                  "expression (exact flow) |", "|---|---|---|---|---|---|---|"]
        for r in tune_rows:
            lines.append(f"| {r['model']} | {r['margin']} | {r['threshold']} | {r['tvl1_head']:.3f} | "
                         f"{r['tvl1_expr']:.3f} | {r['gt_head']:.3f} | {r['gt_expr']:.3f} |")
    if mb:
        lines += ["", f"DecFlow total flow on Middlebury: mean EPE {mb['EPE']:.3f} px, {mb['pairs_per_s']:.3f} pairs/s; "
                  + ", ".join(f"{k} {v:.3f}" for k, v in mb["per_pair"].items())]
    if casme:
        lines += ["", f"CASME II ({casme['n_clips']} onset→apex pairs, {casme['size']}x{casme['size']}), mean |flow| px: "
                  + "; ".join(f"{m}: " + ", ".join(f"{k} {v:.3f}" for k, v in casme[m].items())
                              for m in ("ransac_tvl1", "decflow"))]
    Path(args.md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.md).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
