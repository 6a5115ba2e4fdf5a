"""Training clips that look mislabelled: confident learning on out-of-bag random-forest probabilities.

Used by ``model.noise_filter=forest`` (:func:`icegan.recognition.fit_predict_folds`): in every LOSO fold, the clips
flagged here among the fold's *training* clips are left out of the network's training set. The test subject is never
involved, so the filter is as honest as the rest of the fold.

Source: Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 70, 2021,
Sec. 3.1 (the confident joint): per-class thresholds t_j = the mean predicted probability of class j over the clips
labelled j; a clip's confident classes are those with p_j >= t_j; it counts as mislabelled (an off-diagonal entry of
the confident joint) when it has confident classes and the most probable of them is not its label. The out-of-sample
probabilities come from a random forest's out-of-bag votes (Breiman 2001), computed on the training clips only.
"""
from __future__ import annotations

import numpy as np

from icegan.metrics import check_whole_ids

__all__ = ["confident_joint_flags", "forest_out_of_bag_probabilities", "flag_noisy_labels"]


def _check_class_ids(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(n,) ``labels`` as int class ids, refused unless each is a whole number in 0..n_classes-1 (an integer dtype,
    or whole floats such as 0., 1., 2.: :func:`icegan.metrics.check_whole_ids`).

    Raises:
        ValueError: a fraction, NaN or string (``labels must hold integer class ids, got [...]...``), or a label
            outside 0..n_classes-1 (``labels must lie in 0..K-1, got MIN..MAX``).
    """
    check_whole_ids("labels", labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
    return labels.astype(int)


def confident_joint_flags(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which clips the confident joint puts off its diagonal (Northcutt et al. 2021, Sec. 3.1).

    Args:
        probs: (n, K) out-of-sample class probabilities, rows summing to 1; a row of NaN (no out-of-sample
            prediction) is never flagged.
        labels: (n,) given labels: class ids 0..K-1 (integers, or whole floats such as 1.0).

    Returns:
        (n,) bool: True where the clip has at least one confident class (p_j >= t_j, t_j = mean of p_j over the clips
        labelled j) and the most probable confident class is not its label. A class without clips has no threshold
        and is never confident.

    Raises:
        ValueError: shapes disagree, or a label is not a whole number in 0..K-1.
    """
    probs = np.asarray(probs, dtype=float)
    labels = np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"probs (n, K) and labels (n,) disagree: {probs.shape}, {labels.shape}")
    K = probs.shape[1]
    labels = _check_class_ids(labels, K)
    valid = np.isfinite(probs).all(1)
    thresholds = np.full(K, np.inf)
    for j in range(K):
        rows = valid & (labels == j)
        if rows.any():
            thresholds[j] = probs[rows, j].mean()
    confident = (probs >= thresholds) & valid[:, None]                         # (n, K)
    has = confident.any(1)
    best = np.where(confident, probs, -np.inf).argmax(1)
    return has & (best != labels)


def forest_out_of_bag_probabilities(x: np.ndarray, labels: np.ndarray, trees: int = 500, seed: int = 0,
                                    balanced: bool = True, n_classes: int = 3, n_jobs: int = 1) -> np.ndarray:
    """(n, n_classes) out-of-bag class probabilities of a scikit-learn random forest fitted on (x, labels).

    Args:
        x: (n, D) features (e.g. flattened flow maps).
        labels: (n,) class ids 0..n_classes-1 (integers, or whole floats such as 1.0).
        trees: forest size (each clip, of any class, is out of the bag of about 37 % of the trees).
        seed: the forest's random state.
        balanced: weigh the classes equally in each tree, after its bootstrap is drawn
            (``class_weight='balanced_subsample'``). Not ``'balanced'``: scikit-learn (1.9) draws a bootstrap in
            proportion to the sample weights that option sets, so a rare-class clip was in the bag of nearly every
            tree (out of bag of 3 % of the trees for a class of 4 clips among 40, against 64 % for the common class)
            and had few or no out-of-bag votes to be judged by.
        n_jobs: scikit-learn worker threads (the result does not depend on it).

    Returns:
        Probabilities (0 for a class absent from ``labels``); a row of NaN for a clip that was in the bag of every
        tree.

    Raises:
        ValueError: a label that is not a whole number in 0..n_classes-1 (as :func:`confident_joint_flags`), before any
            tree is fitted.
    """
    import warnings

    from sklearn.ensemble import RandomForestClassifier
    labels = _check_class_ids(np.asarray(labels), n_classes)
    clf = RandomForestClassifier(n_estimators=trees, class_weight="balanced_subsample" if balanced else None,
                                 random_state=seed, n_jobs=n_jobs, oob_score=True)
    with warnings.catch_warnings():          # "some inputs do not have OOB scores": those rows are NaN below
        warnings.simplefilter("ignore", UserWarning)
        clf.fit(x, labels)
    oob = clf.oob_decision_function_
    # a class absent from the labels gets probability 0 (not NaN: a NaN column would mark every clip as having no
    # out-of-bag prediction, and the filter would then flag nothing)
    out = np.zeros((len(x), n_classes))
    out[:, clf.classes_] = oob
    never = ~np.isfinite(oob).all(1) | (oob.sum(1) == 0)
    out[never] = np.nan
    return out


def flag_noisy_labels(x: np.ndarray, labels: np.ndarray, trees: int = 500, seed: int = 0,
                      balanced: bool = True, n_classes: int = 3, n_jobs: int = 1) -> np.ndarray:
    """(n,) bool: the clips of (x (n, D), labels (n,)) that confident learning on the forest's out-of-bag
    probabilities flags as mislabelled (:func:`forest_out_of_bag_probabilities`, :func:`confident_joint_flags`)."""
    p = forest_out_of_bag_probabilities(x, labels, trees, seed, balanced, n_classes, n_jobs)
    return confident_joint_flags(p, labels)
