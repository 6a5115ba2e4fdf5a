"""Diagnostic: does the apex face's landmark geometry alone tell the MEGC2019 class? (Composite CDE LOSO.)

The 28×28 flow maps hold motion only; ``faces_224`` holds each clip's apex face. This scores a second modality on
its own: the 68 landmarks of every apex face (:func:`icegan.data.roi.face_landmarks_megc2019`, cached under
``data/cache/megc2019_roi``), aligned by the similarity transform that puts the two eye centres at (−1, 0) and
(1, 0) (:func:`icegan.data.roi.align_by_eyes`), flattened (136 values), logistic regression (standardised, balanced class weights, C = 1), leave one subject
out over the 68 subjects (scikit-learn ``LeaveOneGroupOut`` + ``cross_val_predict``). Prints UF1 / UAR overall and
per dataset (MEGC2019 definitions, :func:`icegan.metrics.compute_metrics`).

Usage::

    .venv/bin/python bench/apex_landmark_loso.py [--root PATH/TO/megc2019_htnet]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="megc2019_htnet folder (default: the shared data)")
    args = ap.parse_args()
    from icegan.data.features import CSV_NAME, load_megc2019_features
    if args.root is not None and not (Path(args.root) / CSV_NAME).is_file():     # before any work
        ap.error(f"--root {args.root}: no {CSV_NAME} there; give the megc2019_htnet folder that holds it")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from icegan.data.roi import align_by_eyes, face_landmarks_megc2019
    from icegan.metrics import compute_metrics
    from icegan.paths import default_data_root

    start = time.time()
    fs = load_megc2019_features(args.root, None, size=28)
    points, _ = face_landmarks_megc2019(fs.samples, cache_dir=default_data_root() / "cache" / "megc2019_roi")
    x = align_by_eyes(points).reshape(len(points), -1)
    y, subjects = fs.labels.numpy(), fs.samples["subject"].to_numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced"))
    pred = cross_val_predict(clf, x, y, groups=subjects, cv=LeaveOneGroupOut())
    datasets = fs.samples["dataset"].to_numpy()
    print("| scope | clips | UF1 | UAR |\n|---|---|---|---|")
    for name, rows in [("Full", np.ones(len(y), bool))] + [(d, datasets == d) for d in sorted(set(datasets))]:
        m = compute_metrics(y[rows], pred[rows])
        print(f"| {name} | {int(rows.sum())} | {m['UF1']:.4f} | {m['UAR']:.4f} |")
    print(f"\n{len(set(subjects))} folds in {time.time() - start:.1f} s (landmarks cached after the first run)")


if __name__ == "__main__":
    main()
