"""Diagnostic: pooled LOSO UF1 at every recorded epoch, the same epoch for every subject (a learning curve).

Trains the feature recognizer of an ``icegan loso`` config on all folds at once (the grouped engine), records the
class probabilities every ``model.eval_every`` epochs and at the final epoch (the same models as the final-epoch run:
recording does not change training), and prints the pooled UF1 / UAR of each recorded epoch, per seed and as the
mean over seeds.

Two things it answers:

* is the configured final epoch on a plateau, or past a peak? (the curve's shape);
* how much could *any* fixed stopping epoch add? The best epoch of the curve is chosen on the test labels, so it is
  an upper bound of what an honest stopping rule (inner folds of the training subjects) could reach, never a result.
  The oracle of ``oracle_epoch=true`` goes further: it picks the best epoch *per test subject*.

The config's ``max_folds`` (its first folds only: a partial curve, tagged so) and ``data.train_subject_fraction``
(each fold trains on that share of its training subjects, drawn with each seed) apply as in ``icegan loso``.

Usage::

    .venv/bin/python bench/epoch_curve.py --config configs/features_ststnet.yaml --seeds 0 1 2 \
        [--plot curve.png] [--threads 2] [-- key=value ...]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from flownet.user_numbers import SEED_MAX, integer


def recorded_epochs(epochs: int, every: int) -> list[int]:
    """The epochs (1-based) the grouped engine records scores at with ``record_every=every`` (``every`` >= 1): every
    ``every`` epochs and the final one (icegan/recognition.py, ``epoch % record_every == 0 or last``), e.g.
    ``recorded_epochs(7, 5) == [5, 7]``."""
    return [e for e in range(1, epochs + 1) if e % every == 0 or e == epochs]


def pooled_curve(records: list[np.ndarray], folds, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(UF1, UAR) per recorded epoch, each (R,), from per-fold (R, n_test, K) scores pooled over the folds' test clips
    (every clip of ``y`` for a whole run, those of its first folds for a ``max_folds`` one; K: the classes of the
    run's label set, data.labels)."""
    from icegan.metrics import compute_metrics
    pooled = np.zeros((records[0].shape[0], len(y), records[0].shape[-1]))
    for f, s in zip(folds, records):
        pooled[:, f.test_idx] = s
    tested = np.concatenate([f.test_idx for f in folds])
    m = [compute_metrics(y[tested], p[tested].argmax(1), n_classes=pooled.shape[-1]) for p in pooled]
    return np.array([x["UF1"] for x in m]), np.array([x["UAR"] for x in m])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="icegan loso YAML (a ststnet or offtanet recognizer)")
    ap.add_argument("--seeds", type=integer(0, SEED_MAX, "training seeds"), nargs="+", default=[0],
                    help="seeds to run (default 0)")
    ap.add_argument("--threads", type=integer(1, meaning="torch CPU threads"), default=2,
                    help="torch CPU threads (default 2)")
    ap.add_argument("--plot", default=None, help="also draw the curves to this PNG")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides (as icegan loso)")
    args = ap.parse_args()

    import torch

    from icegan.commands.loso import LosoConfig, load_feature_set
    from icegan.config import load_config
    from icegan.protocol import make_folds, partial_tag, plot_label, subsample_training_subjects
    from icegan.recognition import SKLEARN_MODELS, fit_predict_folds

    torch.set_num_threads(args.threads)
    cfg = load_config(LosoConfig, args.config, args.overrides)
    if cfg.model.name in SKLEARN_MODELS:
        raise SystemExit(f"epoch_curve: {cfg.model.name} has no epochs; use a ststnet or offtanet config")
    fs = load_feature_set(cfg.data)
    subjects = fs.samples["subject"].tolist()
    every = make_folds(subjects, cfg.protocol, cfg.dataset)
    folds = every[:cfg.max_folds] if cfg.max_folds > 0 else every         # the first max_folds, as icegan loso
    cut = {"folds": folds, "folds_total": len(every)} if len(folds) < len(every) else None
    partial = partial_tag(cut, "max_folds")
    y = fs.labels.numpy()
    curves = []
    for seed in args.seeds:
        start = time.time()
        train = folds
        if cfg.data.train_subject_fraction < 1.0:      # a learning-curve point: as icegan loso's run of this seed
            train = [subsample_training_subjects(f, subjects, cfg.data.train_subject_fraction, seed) for f in folds]
        rec = fit_predict_folds(cfg.model, fs.features, fs.labels, subjects, train, device=cfg.device, seed=seed,
                                oracle_epoch=True, progress=False, n_classes=fs.n_classes)
        uf1, uar = pooled_curve(rec, folds, y)
        curves.append((uf1, uar))
        print(f"seed {seed}: {len(folds)} folds{partial} in {time.time() - start:.0f} s", flush=True)
    epochs = recorded_epochs(cfg.model.epochs, cfg.model.eval_every)
    if len(epochs) != len(curves[0][0]):
        raise RuntimeError(f"epoch_curve: {len(curves[0][0])} records for the {len(epochs)} epochs {epochs}")
    print("\n| epoch | " + " | ".join(f"seed {s} UF1 / UAR" for s in args.seeds) + " | mean UF1 |")
    print("|---|" + "---|" * (len(args.seeds) + 1))
    for r, e in enumerate(epochs):
        cells = " | ".join(f"{c[0][r]:.4f} / {c[1][r]:.4f}" for c in curves)
        print(f"| {e} | {cells} | {np.mean([c[0][r] for c in curves]):.4f} |")
    best = [int(np.argmax(c[0])) for c in curves]
    mean_best = np.mean([c[0][b] for c, b in zip(curves, best)])
    print(f"\nfinal epoch ({epochs[-1]}){partial}: mean UF1 {np.mean([c[0][-1] for c in curves]):.4f}; best epoch per seed "
          f"chosen on the test labels (an upper bound, not a result): {[epochs[b] for b in best]}, mean UF1 "
          f"{mean_best:.4f}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for s, c in zip(args.seeds, curves):
            ax.plot(epochs, c[0], marker=".", label=f"seed {s}")
        ax.set_xlabel("epoch (the same for every held-out subject)")
        ax.set_ylabel(f"UF1 pooled over {len(folds)} folds' clips (not a LOSO result)" if cut else "pooled LOSO UF1")
        ax.set_title(f"{plot_label(cfg.name)}: UF1 per epoch ({len(folds)} folds){partial_tag(cut)}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
