"""Diagnostic: classical scikit-learn learners under composite CDE LOSO (68 folds) on the MEGC2019 features.

Inputs (``--input``):

* ``flow``: the 3×28×28 (u, v, optical strain) maps of ``flow_uvos_28``, flattened (2352 values);
* ``landmarks``: the 68 landmarks of each clip's apex face (``faces_224``), aligned by the eye centres
  (:func:`icegan.data.roi.align_by_eyes`), flattened (136 values; cached under ``data/cache/megc2019_roi``).

``--subject-reference K``: also score each input minus its subject's mean input, shrunk for subjects with few clips
(``x − n/(n+K) · mean``, n = the subject's clips; :func:`subtract_subject_mean`). This is transductive: it uses the
held-out subject's *unlabelled* inputs (never its labels). ``none`` scores the input as it is.

Learners (fixed settings, no tuning; scikit-learn ``cross_val_predict`` with ``LeaveOneGroupOut``):

=====================  ===========================================================================================
``logreg``              standardised, balanced class weights, C = 1 (the floor of ``configs/features_logreg.yaml``)
``logreg-unweighted``   standardised, no class weights
``logreg-raw``          unstandardised pixels, scikit-learn's defaults (C = 1, no class weights)
``logreg-raw-balanced`` unstandardised pixels, balanced class weights
``svm-rbf``             standardised, RBF kernel, C = 1, ``gamma='scale'``, balanced
``random-forest``       500 trees, balanced, ``random_state = --seed`` (as ``configs/features_randomforest.yaml``)
``knn``                 standardised, k = 7, distance-weighted
=====================  ===========================================================================================

Prints one Markdown row per (input variant, learner): UF1 / UAR overall and per dataset (MEGC2019 definitions,
:func:`icegan.metrics.compute_metrics`) and the wall time.

Usage::

    .venv/bin/python bench/classical_loso.py [--input flow|landmarks] [--learners NAME ...]
        [--subject-reference none 2 0] [--seed 0] [--jobs 2] [--root PATH/TO/megc2019_htnet]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from flownet.user_numbers import SEED_MAX, integer, number

LEARNERS = ("logreg", "logreg-unweighted", "logreg-raw", "logreg-raw-balanced", "svm-rbf", "random-forest", "knn")


def subtract_subject_mean(x: np.ndarray, subjects, k: float) -> np.ndarray:
    """Each row minus its subject's mean row, shrunk towards no change for subjects with few rows.

    Args:
        x: (N, D) inputs. subjects: (N,) subject ids. k: shrinkage, >= 0 (0: the full subject mean; a subject of n
            rows has ``n / (n + k)`` of its mean removed).

    Returns:
        (N, D) float64.

    Raises:
        ValueError: ``k < 0`` or ``subjects`` of another length than ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    subjects = np.asarray(subjects)
    if k < 0:
        raise ValueError(f"subject-reference shrinkage must be >= 0, got {k}")
    if len(subjects) != len(x):
        raise ValueError(f"{len(subjects)} subject ids for {len(x)} rows")
    out = x.copy()
    for s in np.unique(subjects):
        rows = subjects == s
        n = int(rows.sum())
        out[rows] -= n / (n + k) * x[rows].mean(0)
    return out


def make_learner(name: str, seed: int = 0):
    """The unfitted scikit-learn estimator of one of :data:`LEARNERS`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from icegan.recognition import RecognizerConfig, sklearn_classifier
    table = {     # logreg and random-forest: the package's own estimators (features_logreg / _randomforest.yaml)
        "logreg": lambda: sklearn_classifier(RecognizerConfig(name="logreg", logreg_max_iter=5000)),
        "logreg-unweighted": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        "logreg-raw": lambda: LogisticRegression(max_iter=5000),
        "logreg-raw-balanced": lambda: LogisticRegression(max_iter=5000, class_weight="balanced"),
        "svm-rbf": lambda: make_pipeline(StandardScaler(), SVC(C=1.0, gamma="scale", class_weight="balanced")),
        "random-forest": lambda: sklearn_classifier(RecognizerConfig(name="random_forest", forest_trees=500), seed),
        "knn": lambda: make_pipeline(StandardScaler(), KNeighborsClassifier(7, weights="distance")),
    }
    if name not in table:
        raise ValueError(f"unknown learner {name!r}; choose from {', '.join(LEARNERS)}")
    return table[name]()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", choices=("flow", "landmarks"), default="flow")
    ap.add_argument("--learners", nargs="+", choices=LEARNERS, default=["logreg", "svm-rbf", "random-forest", "knn"])
    ap.add_argument("--subject-reference", nargs="+", default=["none"], metavar="K",
                    help="'none' and/or shrinkage values K >= 0 (see the module docstring)")
    ap.add_argument("--seed", type=integer(0, SEED_MAX, "random state of the random forest"), default=0,
                    help="random state of the random forest")
    ap.add_argument("--jobs", type=integer(1, meaning="folds fitted in parallel: give a positive count; scikit-learn's "
                                                      "-1 for all cores is not taken"), default=2,
                    help="folds fitted in parallel (scikit-learn n_jobs), a positive count")
    ap.add_argument("--root", default=None, help="megc2019_htnet folder (default: the shared data)")
    args = ap.parse_args()
    refs = []
    shrinkage = number(0, "shrinkage K")
    for r in args.subject_reference:
        try:
            refs.append(None if r == "none" else shrinkage(r))
        except argparse.ArgumentTypeError as exc:
            ap.error(f"argument --subject-reference: expected 'none' or a shrinkage K: {exc}")
    from icegan.data.features import CSV_NAME, load_megc2019_features
    if args.root is not None and not (Path(args.root) / CSV_NAME).is_file():     # before any work
        ap.error(f"--root {args.root}: no {CSV_NAME} there; give the megc2019_htnet folder that holds it")
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict

    from icegan.metrics import compute_metrics

    fs = load_megc2019_features(args.root, None, size=28)
    y, subjects = fs.labels.numpy(), fs.samples["subject"].to_numpy()
    datasets = fs.samples["dataset"].to_numpy()
    if args.input == "flow":
        x = fs.features.numpy().reshape(len(y), -1).astype(np.float64)
    else:
        from icegan.data.roi import align_by_eyes, face_landmarks_megc2019
        from icegan.paths import default_data_root
        points, _ = face_landmarks_megc2019(fs.samples, cache_dir=default_data_root() / "cache" / "megc2019_roi")
        x = align_by_eyes(points).reshape(len(points), -1)
    names = sorted(set(datasets))
    print("| input | subject reference | learner | Full UF1 / UAR | " + " | ".join(f"{d} UF1" for d in names)
          + " | wall |")
    print("|---|---|---|---|" + "---|" * len(names) + "---|")
    for k in refs:
        xk = x if k is None else subtract_subject_mean(x, subjects, k)
        for name in args.learners:
            start = time.time()
            pred = cross_val_predict(make_learner(name, args.seed), xk, y, groups=subjects, cv=LeaveOneGroupOut(),
                                     n_jobs=args.jobs)
            m = compute_metrics(y, pred)
            per = " | ".join(f"{compute_metrics(y[datasets == d], pred[datasets == d])['UF1']:.4f}" for d in names)
            ref = "none" if k is None else f"k = {k:g}"
            print(f"| {args.input} | {ref} | {name} | {m['UF1']:.4f} / {m['UAR']:.4f} | {per} | "
                  f"{time.time() - start:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
