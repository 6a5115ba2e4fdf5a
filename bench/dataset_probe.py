"""How much of the source dataset STSTNet's pooled features carry, with and without `model.domain_adversarial`.

A diagnostic of the mechanism, not a recognition score: for each weight and seed, one STSTNet (the shifted G recipe
of `configs/features_ststnet.yaml` + `model.shift_px=1`) is trained on all 442 composite clips; a linear probe
(scikit-learn logistic regression on the standardised pooled features, the input of the class head) then predicts
each clip's dataset (SMIC / CASME II / SAMM) under 5-fold cross-validation grouped by subject. Balanced accuracy:
chance is 1/3. The same probe on the raw maps is printed as the reference.

    .venv/bin/python bench/dataset_probe.py [--weights 0 0.3 1] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from flownet.user_numbers import SEED_MAX, integer, number

from icegan.config import load_config
from icegan.commands.loso import LosoConfig
from icegan.data.features import dataset_indices, load_megc2019_features
from icegan.paths import shipped_config
from icegan.recognition import resize_features, train_models


def probe(features: np.ndarray, datasets: np.ndarray, subjects: np.ndarray) -> float:
    """Mean balanced accuracy of a linear dataset probe, 5 folds grouped by subject."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, class_weight="balanced"))
    return float(cross_val_score(clf, features, datasets, groups=subjects, cv=GroupKFold(5),
                                 scoring="balanced_accuracy").mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=number(0, "model.domain_adversarial"), nargs="+", default=[0.0, 0.3, 1.0],
                    help="model.domain_adversarial")
    ap.add_argument("--seeds", type=integer(0, SEED_MAX, "training seeds"), nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    torch.set_num_threads(2)
    # the shipped config (found from any cwd), one per weight, all read before any work
    cfgs = [load_config(LosoConfig, shipped_config("features_ststnet"),
                        ["model.shift_px=1", f"model.domain_adversarial={w}"]).model for w in args.weights]
    fs = load_megc2019_features()
    subjects = np.asarray(fs.samples["subject"])
    d, names = dataset_indices(subjects)
    x = fs.features.float()
    print(f"raw maps: balanced accuracy {probe(x.reshape(len(x), -1).numpy(), d.numpy(), subjects):.3f} "
          f"(chance {1 / len(names):.3f})")
    mask = torch.ones(1, len(x), dtype=torch.bool)
    for w, cfg in zip(args.weights, cfgs):
        xs = resize_features(x, cfg.input_size)
        accs = []
        for seed in args.seeds:
            model, _ = train_models(cfg, xs, fs.labels.long(), mask, seed=seed, progress=False, domains=d)
            pooled = {}
            hook = model.fc.register_forward_hook(lambda mod, inp, out: pooled.__setitem__("h", inp[0].detach()))
            with torch.no_grad():
                model(xs)
            hook.remove()
            accs.append(probe(pooled["h"][:, 0].numpy(), d.numpy(), subjects))
        print(f"domain_adversarial={w}: balanced accuracy per seed {np.round(accs, 3).tolist()}, "
              f"mean {np.mean(accs):.3f}")


if __name__ == "__main__":
    main()
