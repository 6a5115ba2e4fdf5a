"""Benchmark: full composite CDE LOSO (68 folds) of feature recognizers on megc2019_htnet.

Runs each given config through ``icegan loso`` in-process, one after another, and prints one
Markdown row per run: UF1/UAR overall and per dataset, wall time, CPU time (user + system of this
process) and the 1-minute load average before and after (the machine may be shared).

Usage::

    .venv/bin/python bench/loso_features.py configs/features_logreg.yaml configs/features_ststnet.yaml \
        [--out-root runs/bench] [--threads 2] [-- key=value ...]

A run directory that already holds a finished run is resumed (i.e. nothing is retrained and the
time is not meaningful): use a fresh ``--out-root`` for timings.
"""
from __future__ import annotations

import argparse
import datetime
import os
import resource
import time
from pathlib import Path

from flownet.user_numbers import integer


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="+", help="YAML configs (icegan loso)")
    ap.add_argument("--out-root", default="runs/bench", help="parent folder of the run directories")
    ap.add_argument("--threads", type=integer(0, meaning="torch CPU threads; 0 = default"), default=2,
                    help="torch CPU threads")
    ap.add_argument("--overrides", nargs="*", default=[], help="key=value overrides applied to every config")
    args = ap.parse_args()

    from icegan.commands.loso import LosoConfig, run
    from icegan.config import load_config

    rows = []
    for path in args.configs:
        cfg = load_config(LosoConfig, path, [f"threads={args.threads}", *args.overrides])
        out = Path(args.out_root) / Path(path).stem
        load0 = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), _cpu()
        m = run(cfg, out, progress=True)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        load1 = os.getloadavg()[0]
        pd_ = m["per_dataset"]
        cells = [f"{m['overall']['UF1']:.4f}", f"{m['overall']['UAR']:.4f}"]
        for d in ("smic", "casme2", "samm"):
            cells += [f"{pd_[d]['UF1']:.4f}", f"{pd_[d]['UAR']:.4f}"] if d in pd_ else ["—", "—"]
        rows.append(f"| {cfg.name} | " + " | ".join(cells) + f" | {wall:.0f} | {cpu:.0f} | {load0:.1f} → {load1:.1f} |")
    from icegan.environment import describe_environment
    env = describe_environment()
    print(f"\n{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {env['cpu']} ({env['cpu_capability']} "
          f"kernels), {env['cpu_count']} CPU cores, {args.threads} threads, torch {env['torch']}, code {env['git_commit']}")
    print("| config | UF1 | UAR | SMIC UF1 | SMIC UAR | CASME II UF1 | CASME II UAR | SAMM UF1 | SAMM UAR "
          "| wall s | CPU s | load (1 min) |")
    print("|---|" + "---|" * 11)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
