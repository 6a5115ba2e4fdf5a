"""Diagnostic: a learning curve over finished LOSO runs made with ``data.train_subject_fraction`` < 1.

Is a recognizer's honest UF1 limited by the number of training subjects (then more subjects, real or synthetic, would
help) or by its inputs? Give finished ``icegan loso`` run folders (e.g. those of ``icegan suite --config
configs/suite_learning_curve.yaml``); runs whose configs differ only in ``seed``, ``name`` and
``data.train_subject_fraction`` form one curve; a run cut by ``max_folds`` or a null run (``data.permute_labels``
>= 0) is refused, being no point of a curve. For every point the script recomputes the training subjects each fold
really had (:func:`icegan.protocol.subsample_training_subjects` on the run's own subjects and seed), so the x axis is
the mean number of training subjects per fold, not the nominal share. Prints, in Markdown:

* per curve and share: runs, mean training subjects per fold, UF1 and UAR (mean ± std over the runs);
* per curve: the least-squares fit ``UF1 = a + b · log2(subjects)`` over the points' means, ``b`` being the gain per
  doubling of the training subjects, and where that line would cross ``--target`` (an extrapolation, not a promise);
  the same from the last step alone (the two largest shares), smaller than ``b`` when the curve bends;

and draws ``--plot`` (default ``learning_curve.png`` beside the first run): every run as a dot, the means joined, the
fit dashed, the target as a horizontal line.

Usage::

    .venv/bin/python bench/learning_curve.py RUN_DIR [RUN_DIR ...] [--target 0.75] [--plot PNG]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from flownet.user_numbers import number

IGNORED = {"name", "seed", "data.train_subject_fraction", "threads", "workers"}


def uf1_target(text: str) -> float:
    """argparse type of ``--target``: a UF1, a finite number in [0, 1] (:func:`flownet.user_numbers.number`, with the
    upper end a UF1 cannot pass: a fit never reaches 1.5, and its extrapolated subject count would be nonsense).

    Raises:
        argparse.ArgumentTypeError: text that is no finite number, or a value outside [0, 1], giving the range.
    """
    value = number(0, "a UF1, in [0, 1]")(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1] (a UF1), got {text.strip()}")
    return value


uf1_target.__name__ = "number"      # a number flag, named as the shared types name theirs


def training_subjects_per_fold(pred: pd.DataFrame, protocol: str, dataset, fraction: float, seed: int) -> float:
    """Mean number of training subjects per fold of a run whose predictions are ``pred`` (one row per tested clip)."""
    from icegan.data.features import subject_dataset
    from icegan.protocol import make_folds, subsample_training_subjects
    subjects = pred["subject"].astype(str).tolist()
    if protocol == "SDE":           # the run's predictions hold its dataset only; the folds are the same
        folds = make_folds(subjects, protocol, dataset or subject_dataset(subjects[0]))
    else:
        folds = make_folds(subjects, protocol)
    counts = [len({subjects[i] for i in subsample_training_subjects(f, subjects, fraction, seed).train_idx})
              for f in folds]
    return float(np.mean(counts))


def read_runs(run_dirs: list[Path]) -> pd.DataFrame:
    """One row per run: curve (the config without seed, name and share), fraction, seed, subjects, UF1, UAR, run.

    Raises:
        FileNotFoundError: a folder without config.yaml, metrics.json or predictions.csv.
        ValueError: a partial run (cut by ``max_folds``: not a whole LOSO) or a null run (``data.permute_labels`` >=
            0: chance by design) (:func:`icegan.report.refuse_partial_or_null`), or fewer than two runs.
    """
    if len(run_dirs) < 2:
        raise ValueError("give at least two finished runs")
    from icegan.config import dotted_items, without_neutral_keys    # older runs group with newer ones
    from icegan.report import read_run_json, refuse_partial_or_null
    rows = []
    for d in run_dirs:
        d = Path(d)
        for f in ("config.yaml", "metrics.json", "predictions.csv"):
            if not (d / f).is_file():
                raise FileNotFoundError(f"{d / f} not found (a finished icegan loso run folder is needed)")
        refuse_partial_or_null(d, "learning_curve.py")       # no learning-curve point, nor its curve one
        cfg = dotted_items(without_neutral_keys(yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8")) or {}))
        fraction = float(cfg.get("data.train_subject_fraction", 1.0))
        seed = int(cfg.get("seed", 0))
        metrics = read_run_json(d / "metrics.json")     # a cut-short file named, with the rerun that mends it
        pred = pd.read_csv(d / "predictions.csv", dtype={"subject": str, "clip": str})
        rows.append({"key": json.dumps({k: v for k, v in sorted(cfg.items()) if k not in IGNORED}, default=str),
                     "cfg": cfg, "fraction": fraction, "seed": seed, "run": str(d),
                     "subjects": training_subjects_per_fold(pred, cfg.get("protocol", "CDE"), cfg.get("dataset"),
                                                            fraction, seed),
                     "UF1": metrics["overall"]["UF1"], "UAR": metrics["overall"]["UAR"]})
    df = pd.DataFrame(rows)
    df["curve"] = _labels(df)
    return df.drop(columns=["key", "cfg"])


def _labels(df: pd.DataFrame) -> list[str]:
    """A readable name per curve: its model, plus, for curves of the same model, the config keys that tell them
    apart."""
    first = {k: df.loc[df["key"] == k, "cfg"].iloc[0] for k in dict.fromkeys(df["key"])}
    names = {}
    for model in dict.fromkeys(c.get("model.name", "model") for c in first.values()):
        group = {k: c for k, c in first.items() if c.get("model.name", "model") == model}
        keys = sorted({k for c in group.values() for k in c} - IGNORED - {"model.name"})
        differing = [k for k in keys if len({json.dumps(c.get(k), default=str) for c in group.values()}) > 1]
        for key, c in group.items():
            extra = ", ".join(f"{k}={c.get(k)}" for k in differing)
            names[key] = model + (f" ({extra})" if extra else "")
    return [names[k] for k in df["key"]]


def summarize(df: pd.DataFrame, target: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points, fits): the mean ± std per curve and share; per curve ``a``, ``b`` (UF1 per doubling of the training
    subjects) and ``subjects_at_target`` (where ``a + b log2 n`` reaches ``target``; NaN when b <= 0 or fewer than two
    shares); and the same from the last step alone (the two largest shares: ``b_last``, ``subjects_at_target_last``),
    which a bending curve makes smaller than the fit's."""
    pts = (df.groupby(["curve", "fraction"])
             .agg(runs=("UF1", "size"), subjects=("subjects", "mean"), UF1=("UF1", "mean"),
                  UF1_std=("UF1", "std"), UAR=("UAR", "mean"), UAR_std=("UAR", "std"))
             .reset_index().sort_values(["curve", "fraction"]))
    fits = []
    for curve, p in pts.groupby("curve", sort=False):
        a = b = at = b_last = at_last = float("nan")
        if len(p) >= 2:
            x, y = np.log2(p["subjects"].to_numpy()), p["UF1"].to_numpy()
            b, a = np.polyfit(x, y, 1)
            if b > 0:
                at = float(2 ** ((target - a) / b))
            b_last = float((y[-1] - y[-2]) / (x[-1] - x[-2]))
            if b_last > 0:
                at_last = float(2 ** (x[-1] + (target - y[-1]) / b_last))
        fits.append({"curve": curve, "a": a, "b": b, "subjects_at_target": at, "b_last": b_last,
                     "subjects_at_target_last": at_last})
    return pts, pd.DataFrame(fits)


def markdown(pts: pd.DataFrame, fits: pd.DataFrame, target: float) -> str:
    lines = ["| curve | share of training subjects | runs | training subjects per fold | UF1 | UAR |",
             "|---|---|---|---|---|---|"]
    for r in pts.itertuples():
        sd = lambda v: "" if np.isnan(v) else f" ± {v:.4f}"   # noqa: E731  (one run: no spread)
        lines.append(f"| {r.curve} | {r.fraction:g} | {r.runs} | {r.subjects:.1f} | {r.UF1:.4f}{sd(r.UF1_std)} | "
                     f"{r.UAR:.4f}{sd(r.UAR_std)} |")
    lines += ["", f"| curve | fit UF1 = a + b log2(subjects): a | b (per doubling) | subjects where the fit reaches "
              f"UF1 {target:g} | last step: UF1 per doubling | subjects where the last step's line reaches "
              f"{target:g} |", "|---|---|---|---|---|---|"]
    def never(at: float, slope: float) -> str:      # slope NaN: a curve of one share, no line to extrapolate
        return "one share: no fit" if np.isnan(slope) else "never (slope <= 0)" if np.isnan(at) else f"{at:.0f}"
    for r in fits.itertuples():
        lines.append(f"| {r.curve} | {r.a:.4f} | {r.b:+.4f} | {never(r.subjects_at_target, r.b)} | {r.b_last:+.4f} | "
                     f"{never(r.subjects_at_target_last, r.b_last)} |")
    lines += ["", "Both subject counts are extrapolations beyond the data (a log-linear line; the first, fitted over "
              "every share, is the more optimistic when the curve bends)."]
    return "\n".join(lines)


def plot(df: pd.DataFrame, pts: pd.DataFrame, fits: pd.DataFrame, target: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (curve, p) in enumerate(pts.groupby("curve", sort=False)):
        color = f"C{i}"
        runs = df[df["curve"] == curve]
        ax.scatter(runs["subjects"], runs["UF1"], s=12, alpha=0.4, color=color)
        ax.plot(p["subjects"], p["UF1"], "o-", color=color, label=curve)
        f = fits[fits["curve"] == curve].iloc[0]
        if not np.isnan(f["b"]):
            xs = np.geomspace(p["subjects"].min(), p["subjects"].max() * 2, 50)
            ax.plot(xs, f["a"] + f["b"] * np.log2(xs), "--", color=color, lw=1)
    ax.axhline(target, color="grey", lw=1, ls=":", label=f"UF1 {target:g}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training subjects per fold (log scale)")
    ax.set_ylabel("UF1 (pooled LOSO predictions)")
    ax.set_title("Learning curve: dots = runs (seeds), line = mean, dashes = log fit")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished LOSO run folders")
    p.add_argument("--target", type=uf1_target, default=0.75,
                   help="UF1 line drawn and extrapolated to, in [0, 1] (0.75)")
    p.add_argument("--plot", type=Path, default=None, help="PNG path (default: learning_curve.png beside the first run)")
    args = p.parse_args(argv)
    try:
        df = read_runs(args.runs)
    except (FileNotFoundError, ValueError) as exc:      # a user's slip: one line, not a traceback
        print(f"learning_curve.py: error: {exc}", file=sys.stderr)
        return 2
    pts, fits = summarize(df, args.target)
    print(markdown(pts, fits, args.target))
    out = args.plot or args.runs[0].parent / "learning_curve.png"
    plot(df, pts, fits, args.target, out)
    print(f"\nplot: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
