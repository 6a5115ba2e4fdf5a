"""How many training clips `model.noise_filter=forest` leaves out, fold by fold, on the 442-clip composite.

For every CDE fold, the same filter as a run with that seed (:func:`icegan.label_noise.flag_noisy_labels` on the
fold's training clips, forest seed ``seed + 1000 · fold``) and prints the share dropped per fold and per class, and
which datasets the clips flagged in most of their folds come from. The forest seeds wrap past ``SEED_MAX`` (2**32 - 1,
the largest scikit-learn takes) as a run's do (:func:`flownet.user_numbers.derived_seed`), so every ``--seed`` runs.

    .venv/bin/python bench/noise_filter_share.py [--seed 0] [--trees 500]
"""
from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from flownet.user_numbers import SEED_MAX, derived_seed, integer

from icegan.data.features import load_megc2019_features
from icegan.label_noise import flag_noisy_labels
from icegan.protocol import make_folds


def forest_seeds(seed: int, folds) -> list[int]:
    """The forest seed of each fold, ``derived_seed(seed, 1000 · fold.index)``: ``seed + 1000 · fold.index`` wrapped
    past :data:`~flownet.user_numbers.SEED_MAX`, as :mod:`icegan.recognition` derives it for
    ``model.noise_filter=forest``."""
    return [derived_seed(seed, 1000 * f.index) for f in folds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=integer(0, SEED_MAX, "the run's seed"), default=0,
                    help="the run's seed (forest seed = seed + 1000 * fold, wrapped past SEED_MAX = 2**32 - 1)")
    ap.add_argument("--trees", type=integer(1, meaning="model.forest_trees"), default=500, help="model.forest_trees")
    args = ap.parse_args()
    fs = load_megc2019_features()
    s = fs.samples
    x, y = fs.features.reshape(len(s), -1).numpy(), fs.labels.numpy()
    folds = make_folds(s["subject"].tolist(), "CDE")
    seeds = forest_seeds(args.seed, folds)
    share, per_class, flagged = [], np.zeros(3), np.zeros(len(y))
    for f, seed in zip(tqdm(folds, desc="folds", unit="fold"), seeds):
        tr = np.asarray(f.train_idx)
        fl = flag_noisy_labels(x[tr], y[tr], args.trees, seed, True, n_jobs=2)
        share.append(fl.mean())
        per_class += np.bincount(y[tr][fl], minlength=3) / np.bincount(y[tr], minlength=3)
        flagged[tr[fl]] += 1
    n_train_folds = len(folds) - 1
    mostly = flagged > 0.5 * n_train_folds
    print(f"share dropped per fold: mean {np.mean(share):.3f}, min {np.min(share):.3f}, max {np.max(share):.3f}")
    print("per class (negative, positive, surprise), mean over folds:", np.round(per_class / len(folds), 3).tolist())
    print(f"clips flagged in at least one fold: {int((flagged > 0).sum())} of {len(y)}; in more than half of their "
          f"{n_train_folds} training folds: {int(mostly.sum())}")
    for d in sorted(s["dataset"].unique()):
        m = (s["dataset"] == d).to_numpy()
        print(f"  {d}: {mostly[m].mean():.3f} of its {int(m.sum())} clips flagged in more than half of their folds")


if __name__ == "__main__":
    main()
