"""Seconds per fold of the scikit-learn recognizers with BLAS on 1 thread and on all cores, on the composite maps.

The recognizers fit in :func:`icegan.recognition.one_blas_thread`; this bench times the same estimator
(:func:`icegan.recognition.sklearn_classifier` with the model section of ``configs/features_<model>.yaml``, fitted
on the flattened 3×28×28 maps as in a run of that config, which fits no mirrors) on the first ``--folds`` CDE folds,
once under each BLAS thread limit, and says how much the predicted probabilities differ between the two.

    .venv/bin/python bench/sklearn_threads.py [--model logreg] [--folds 6]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from flownet.user_numbers import integer

from icegan.commands.loso import LosoConfig
from icegan.config import load_config
from icegan.data.features import load_megc2019_features
from icegan.paths import shipped_config
from icegan.protocol import make_folds
from icegan.recognition import SKLEARN_MODELS, sklearn_classifier

CONFIGS = {"logreg": "logreg", "random_forest": "randomforest", "gradient_boosting": "gradient_boosting"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="logreg", choices=SKLEARN_MODELS)
    ap.add_argument("--folds", type=integer(1, meaning="folds"), default=6, help="the first N CDE folds")
    args = ap.parse_args()
    cfg = load_config(LosoConfig, shipped_config(f"features_{CONFIGS[args.model]}"), []).model
    fs = load_megc2019_features()
    x, y = fs.features, fs.labels.long()
    folds = make_folds(fs.samples["subject"].tolist(), "CDE")[:args.folds]
    blas = sorted({(i["internal_api"], i.get("architecture")) for i in threadpool_info() if i["user_api"] == "blas"},
                  key=str)
    print(f"BLAS: {blas}; {os.cpu_count()} cores; {args.model}, {len(folds)} folds")
    probs = {}
    for threads in (1, os.cpu_count() or 1):
        t0, out = time.perf_counter(), []
        with threadpool_limits(limits=threads, user_api="blas"):
            for f in folds:
                xt, yt = x[f.train_idx], y[f.train_idx]
                clf = sklearn_classifier(cfg, seed=0).fit(xt.reshape(len(xt), -1).numpy(), yt.numpy())
                out.append(clf.predict_proba(x[f.test_idx].reshape(len(f.test_idx), -1).numpy()))
        probs[threads] = np.concatenate(out)
        print(f"BLAS threads {threads}: {(time.perf_counter() - t0) / len(folds):.3f} s per fold")
    a, b = probs.values()
    print(f"largest probability difference between the two: {np.abs(a - b).max():.2e}")


if __name__ == "__main__":
    main()
