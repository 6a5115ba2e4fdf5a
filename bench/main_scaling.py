#!/usr/bin/env python
"""Time and memory of the main job's LOSO (issue #8): per fold, per whole LOSO, sequential vs Ray.

Runs ``train.py`` as subprocesses under ``/usr/bin/time -v`` (wall time, peak resident memory),
reads each run's ``timing.json`` (seconds per fold, peak memory of Ray workers) and checks the
scaling model

    wall ≈ setup + ceil(folds / workers) × time per fold

where ``setup`` (imports, data, real flow features, Ray start) and ``time per fold`` come from the
sequential run, against the measured wall time of the parallel run. Writes a Markdown table.

    python bench/main_scaling.py --out runs/bench_scaling --md docs/fragments/scaling.md \
        --case demo "" --case demo_2fold "data.max_folds=2"

Every case runs: sequential with 1 thread, sequential with 2 threads, Ray with 2 workers × 1 thread.
The machine and its load (``uptime`` before/after) go into the Markdown.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _uptime() -> str:
    try:
        return Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3].__str__()
    except OSError:
        return "?"


def run_case(out: Path, config: str | None, overrides: list[str], mode: str, threads: int) -> dict:
    """One ``train.py`` run; returns wall seconds, peak RSS (MiB), fold seconds, metrics."""
    run_dir = out / mode
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [sys.executable, str(REPO / "train.py"), "--no-progress", "--out", str(run_dir)]
    if config:
        cmd += ["--config", config]
    if mode.startswith("ray"):
        cmd += ["--executor", "ray", "--workers", "2", "--cpus-per-fold", "1"]
    cmd += overrides + [f"threads={threads}"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    timed = ["/usr/bin/time", "-v"] + cmd
    t0 = time.time()
    proc = subprocess.run(timed, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    timing = json.loads((run_dir / "timing.json").read_text(encoding="utf-8"))
    from icegan.report import read_run_json
    metrics = read_run_json(run_dir / "metrics.json")
    return {"mode": mode, "threads": threads, "wall_s": wall, "driver_peak_rss_mb": rss_kb / 1024,
            "worker_peak_rss_mb": max(timing.get("fold_peak_rss_mb", {}).values() or [0]),
            "fold_seconds": timing["fold_seconds"], "n_folds": metrics["n_folds"],
            "UF1": metrics["overall"]["UF1"], "UAR": metrics["overall"]["UAR"], "command": " ".join(cmd)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs=2, action="append", metavar=("NAME", "ARGS"), required=True,
                    help='a case: name and "[--config X] key=value ..." for train.py')
    ap.add_argument("--out", default="runs/bench_scaling")
    ap.add_argument("--md", default=None, help="write the Markdown table here")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    out_root = Path(args.out)
    load_before = _uptime()
    rows = []
    for name, case_args in args.case:
        toks = case_args.split()
        config = None
        if "--config" in toks:
            i = toks.index("--config")
            config = toks[i + 1]
            toks = toks[:i] + toks[i + 2:]
        res = {}
        for mode, threads in (("seq_1thread", 1), ("seq_2threads", 2), ("ray_2workers", 1)):
            r = run_case(out_root / name, config, toks, mode, threads)
            res[mode] = r
            print(f"{name} {mode}: {r['wall_s']:.1f} s, UF1 {r['UF1']:.4f}", flush=True)
        seq = res["seq_1thread"]
        folds = seq["n_folds"]
        per_fold = sum(seq["fold_seconds"].values()) / max(1, len(seq["fold_seconds"]))
        setup = seq["wall_s"] - sum(seq["fold_seconds"].values())
        ray = res["ray_2workers"]
        ray_per_fold = sum(ray["fold_seconds"].values()) / max(1, len(ray["fold_seconds"]))
        # model: the parallel run pays its own setup (incl. Ray start) plus ceil(F/W) rounds of a fold
        pred_ideal = setup + math.ceil(folds / 2) * per_fold
        rows.append({"case": name, "folds": folds, "per_fold_s": per_fold, "setup_s": setup,
                     "ray_per_fold_s": ray_per_fold, "pred_ray_ideal_s": pred_ideal,
                     "pred_ray_measured_fold_s": setup + math.ceil(folds / 2) * ray_per_fold, **{
                         f"{m}_{k}": res[m][k] for m in res for k in ("wall_s", "driver_peak_rss_mb",
                                                                       "worker_peak_rss_mb", "UF1", "UAR")},
                     "commands": {m: res[m]["command"] for m in res},
                     "identical_metrics": res["seq_1thread"]["UF1"] == ray["UF1"] and
                     res["seq_1thread"]["UAR"] == ray["UAR"]})
    load_after = _uptime()
    lines = [f"Machine: {platform.machine()} {os.cpu_count()} cores, {platform.platform()}; "
             f"load average before {load_before}, after {load_after}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             "",
             "| case | folds | mode | wall (s) | mean fold (s) | peak RSS driver / worker (MiB) | UF1 | UAR |",
             "|---|---|---|---|---|---|---|---|"]
    for r, (name, _) in zip(rows, args.case):
        for m, label in (("seq_1thread", "sequential, 1 thread"), ("seq_2threads", "sequential, 2 threads"),
                         ("ray_2workers", "Ray, 2 workers × 1 thread")):
            fold_s = r["per_fold_s"] if m == "seq_1thread" else None
            if m == "ray_2workers":
                fold_s = r["ray_per_fold_s"]
            lines.append(f"| {name} | {r['folds']} | {label} | {r[f'{m}_wall_s']:.1f} | "
                         f"{'' if fold_s is None else f'{fold_s:.1f}'} | {r[f'{m}_driver_peak_rss_mb']:.0f} / "
                         f"{r[f'{m}_worker_peak_rss_mb']:.0f} | {r[f'{m}_UF1']:.4f} | {r[f'{m}_UAR']:.4f} |")
    lines += ["", "Scaling model `wall ≈ setup + ceil(folds / workers) × time per fold` (setup and time per fold "
              "from the sequential 1-thread run):", "",
              "| case | setup (s) | fold (s) | predicted Ray wall, 2 workers (s) | same with the Ray run's own fold time (s) "
              "| measured (s) | speedup vs sequential 1 thread | identical metrics |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['setup_s']:.1f} | {r['per_fold_s']:.1f} | {r['pred_ray_ideal_s']:.1f} | "
                     f"{r['pred_ray_measured_fold_s']:.1f} | {r['ray_2workers_wall_s']:.1f} | "
                     f"{r['seq_1thread_wall_s'] / r['ray_2workers_wall_s']:.2f}× | {r['identical_metrics']} |")
    lines += ["", "Commands:", ""] + [f"- `{c}`" for r in rows for c in r["commands"].values()]
    md = "\n".join(lines) + "\n"
    print(md)
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(md, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
