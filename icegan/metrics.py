"""Recognition metrics for MEGC leave-one-subject-out evaluation.

All metrics are computed on predictions **pooled over all folds** (one row per clip), never averaged
over folds. Class ids follow the project convention: negative 0, positive 1, surprise 2.

* ``UF1`` (MEGC2019, unweighted F1): for each class ``c`` present in the ground truth,
  ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``; UF1 is their unweighted mean.
* ``UAR`` (MEGC2019, unweighted average recall): ``R_c = TP_c / N_c`` for each class present in
  the ground truth; UAR is their unweighted mean.
* ``P_M``, ``R_M``, ``F1_M`` (SRFlow paper ``srflow_srflownet_facial_flow.txt``, Tables VII–X):
  macro precision, macro recall, macro F1 over the classes present in the ground truth. A class
  that is never predicted has precision 0 (``zero_division=0``). ``R_M`` equals ``UAR`` and
  ``F1_M`` equals ``UF1`` by construction; both names are kept because both literatures use them.
* ``F1_mu``: micro-averaged F1 over all ``n_classes`` classes; for single-label predictions this is the
  accuracy. (Micro-averaging over the present classes only would drop the false positives of a class
  predicted but absent from the ground truth.)

A class absent from the ground truth is left out of UF1, UAR and the macro averages even when it is
predicted (its wrong predictions still count as misses of the present classes). The
``recognition_evaluation`` snippet copied across ME repositories scores such a class as F1 0 in UF1
instead; the two differ only on subsets that lack a class (never on the MEGC2019 composite or its
three parts, which hold every class).
* ``G_M``: geometric mean of the per-class recalls (0 as soon as one present class is never
  recognised).

The SRFlow paper prints no formula for P_M … G_M (the definitions above are the standard ones the names
denote; G_M is our reading), and it scores differently (Sec. V-A2, "following the Off-TANet evaluation
protocol"): metrics recorded every 20 epochs, each reported as the *maximum over the recorded epochs of the
cross-validation average*, i.e. per-fold scores averaged over the LOSO folds, each metric at its own best
epoch as judged on those test scores. Here they are computed once on the predictions pooled over the folds (MEGC2019),
with no epoch chosen on the test subjects (except in an opt-in ``oracle_epoch`` run, :mod:`icegan.protocol`,
which picks per fold), so our numbers and those of its Tables VII–X are not directly comparable.

The per-class counts come from :func:`sklearn.metrics.precision_recall_fscore_support`, imported inside the functions
that call it: the module's names and :func:`uf1_uar_from_confusion` load without scikit-learn (``icegan table``,
``compare`` and ``ensemble`` never need it).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = ["CLASS_NAMES", "METRIC_KEYS", "compute_metrics", "per_class_metrics", "confusion_matrix",
           "uf1_uar_from_confusion", "check_whole_ids"]

#: class id → name (MEGC2019 composite, 3 classes)
CLASS_NAMES: tuple[str, ...] = ("negative", "positive", "surprise")
#: keys of every metrics dict, in table order
METRIC_KEYS: tuple[str, ...] = ("UF1", "UAR", "P_M", "R_M", "F1_M", "F1_mu", "G_M")


def check_whole_ids(name: str, arr: np.ndarray) -> None:
    """Refuse class ids (any shape) that are not whole numbers: fractions (1.7 would be truncated to 1), NaN,
    strings, None. An integer dtype passes; floats pass when every value is whole (0.0, 2.0).

    Raises:
        ValueError: ``"<name> must hold integer class ids, got [first five]..."`` (the first five values in C order,
            of a 0-d array its one value); ``name``: the column or argument.
    """
    if not np.issubdtype(arr.dtype, np.integer):
        try:
            whole = np.all(np.equal(np.mod(arr, 1), 0))
        except TypeError:                       # strings, None, ...: no remainder to take
            whole = False
        if not whole:
            raise ValueError(f"{name} must hold integer class ids, got {arr.ravel()[:5]}...")


def _check(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if yt.ndim != 1 or yp.ndim != 1 or len(yt) != len(yp):
        raise ValueError(f"y_true and y_pred must be 1-D and of equal length, got shapes {yt.shape} and {yp.shape}")
    if len(yt) == 0:
        raise ValueError("cannot compute metrics on zero samples")
    for name, arr in (("y_true", yt), ("y_pred", yp)):
        check_whole_ids(name, arr)
        bad = np.flatnonzero((arr < 0) | (arr >= n_classes))
        if len(bad):
            raise ValueError(f"{name}[{bad[0]}] = {arr[bad[0]]} is outside the class ids 0..{n_classes - 1}")
    return yt.astype(int), yp.astype(int)


def compute_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = 3) -> dict[str, float]:
    """UF1, UAR, P_M, R_M, F1_M, F1_mu and G_M of pooled predictions.

    Args:
        y_true: (N,) ground-truth class ids in ``0..n_classes-1``.
        y_pred: (N,) predicted class ids in ``0..n_classes-1``.
        n_classes: number of classes (3 for MEGC2019).

    Returns:
        dict with the keys of :data:`METRIC_KEYS`, each a float in [0, 1]. Averages run over the
        classes present in ``y_true`` (MEGC2019 convention); a present class that is never
        predicted contributes precision 0 and F1 0.

    Raises:
        ValueError: different lengths, no samples, labels that are not integer class ids (strings, fractions) or a
            class id outside ``0..n_classes-1``.
    """
    from sklearn.metrics import precision_recall_fscore_support
    yt, yp = _check(y_true, y_pred, n_classes)
    labels = np.unique(yt)
    p, r, f, _ = precision_recall_fscore_support(yt, yp, labels=labels, average=None, zero_division=0)
    _, _, f_mu, _ = precision_recall_fscore_support(yt, yp, labels=np.arange(n_classes), average="micro",
                                                    zero_division=0)
    g = float(np.prod(r) ** (1.0 / len(r)))
    return {
        "UF1": float(np.mean(f)),
        "UAR": float(np.mean(r)),
        "P_M": float(np.mean(p)),
        "R_M": float(np.mean(r)),
        "F1_M": float(np.mean(f)),
        "F1_mu": float(f_mu),
        "G_M": g,
    }


def per_class_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = 3) -> list[dict]:
    """Each class's share of UF1 and UAR: clips, predictions, recall, precision and F1 of one class.

    UF1 and UAR (:func:`compute_metrics`) are the means of the F1 and recall below over the classes present in
    ``y_true``; a class with no clips has recall and F1 None (it takes no part in those means).

    Args:
        y_true: (N,) ground-truth class ids in ``0..n_classes-1``. y_pred: (N,) predicted ids, the same range.
        n_classes: number of classes (3 for MEGC2019).

    Returns:
        one dict per class id, in order: ``{"class": id, "clips": int (true clips), "predicted": int (clips
        predicted as it), "recall", "precision", "F1": float in [0, 1] or None}``; precision None when the class
        is never predicted and has no clips, 0.0 when it has clips but is never predicted.

    Raises:
        ValueError: as :func:`compute_metrics`.
    """
    from sklearn.metrics import precision_recall_fscore_support
    yt, yp = _check(y_true, y_pred, n_classes)
    labels = np.arange(n_classes)
    p, r, f, support = precision_recall_fscore_support(yt, yp, labels=labels, average=None, zero_division=0)
    predicted = np.bincount(yp, minlength=n_classes)
    rows = []
    for c in labels:
        present = support[c] > 0
        rows.append({"class": int(c), "clips": int(support[c]), "predicted": int(predicted[c]),
                     "recall": float(r[c]) if present else None,
                     "precision": float(p[c]) if present or predicted[c] > 0 else None,
                     "F1": float(f[c]) if present else None})
    return rows


def confusion_matrix(y_true: Iterable[int], y_pred: Iterable[int], n_classes: int = 3) -> np.ndarray:
    """(n_classes, n_classes) int confusion matrix; row = true class, column = predicted class."""
    from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
    yt, yp = _check(list(y_true), list(y_pred), n_classes)
    return _sk_confusion_matrix(yt, yp, labels=list(range(n_classes)))


def uf1_uar_from_confusion(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UF1 and UAR of many confusion matrices at once (vectorised; the bootstrap's inner loop).

    The same definitions as :func:`compute_metrics` (classes present in the ground truth only, F1 and
    precision 0 for a present class never predicted), from counts instead of label lists.

    Args:
        cm: (..., C, C) non-negative counts, row = true class, column = predicted class.

    Returns:
        ``(uf1, uar)``, each of shape ``cm.shape[:-2]``, float64 in [0, 1]; NaN where a matrix is empty.

    Raises:
        ValueError: ``cm`` is not (..., C, C), or holds a negative, NaN or infinite count.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim < 2 or cm.shape[-1] != cm.shape[-2]:
        raise ValueError(f"confusion matrices must be (..., C, C), got shape {cm.shape}")
    bad = ~(np.isfinite(cm) & (cm >= 0))
    if bad.any():
        raise ValueError(f"confusion matrices must hold finite non-negative counts, got {cm[bad][0]} at index "
                         f"{tuple(int(i) for i in np.argwhere(bad)[0])}")
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    n_true = cm.sum(-1)
    n_pred = cm.sum(-2)
    present = n_true > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2.0 * tp / (n_true + n_pred), 0.0)
        recall = np.where(present, tp / np.where(present, n_true, 1.0), 0.0)
        n_present = present.sum(-1)
        uf1 = f1.sum(-1) / n_present
        uar = recall.sum(-1) / n_present
    return uf1, uar
