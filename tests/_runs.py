"""Hand-made finished run folders for the comparison tests (icegan compare, icegan.significance), a
nearest-class-mean fold function for the resume tests (a run cut short, a max_folds run extended), and a fold function
of seeded random probabilities for the ensemble tests."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import yaml


def write_finished_run(d, rows, datasets=None, seed=0):
    """A finished run folder ``d`` (predictions.csv, run.json, config.yaml) of ``rows`` (subject, clip, y_true,
    y_pred); ``datasets``: None writes no dataset column (a hand-made file), else a function subject → its dataset
    cell. Returns ``d``."""
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"name": d.name, "seed": seed, "model": {"name": "ststnet"}}))
    pred = pd.DataFrame(rows, columns=["subject", "clip", "y_true", "y_pred"])
    pred.insert(0, "fold", pred["subject"].map({s: i for i, s in enumerate(sorted(pred["subject"].unique()))}))
    if datasets is not None:
        pred.insert(1, "dataset", pred["subject"].map(datasets))
    pred.to_csv(d / "predictions.csv", index=False)
    (d / "run.json").write_text(json.dumps({"protocol": "CDE", "oracle_epoch": False,
                                            "folds": sorted(pred["subject"].unique())}))
    return d


def write_metrics(d, protocol="CDE", oracle_epoch=False, n_classes=3, **extra):
    """Write the run folder ``d``'s metrics.json from its predictions.csv as ``icegan loso`` writes it
    (:func:`icegan.protocol.summarize_predictions`: UF1 / UAR ... overall and per dataset, at full precision; a file
    without a dataset column: each subject's prefix), so that ``icegan table``'s check of metrics.json against
    predictions.csv passes. ``extra``: further top-level keys (``n_folds`` defaults to the subjects). A metrics.json
    already there (a real run's, its predictions then edited) keeps its other keys: only its n_samples, overall and
    per_dataset are computed anew. Returns the metrics written."""
    from icegan.protocol import subject_dataset, summarize_predictions
    pred = pd.read_csv(d / "predictions.csv", dtype={"dataset": str, "subject": str, "clip": str})
    if "dataset" not in pred.columns:
        pred["dataset"] = pred["subject"].map(subject_dataset)
    m = summarize_predictions(pred, protocol, pred["subject"].nunique(), oracle_epoch, n_classes)
    if (d / "metrics.json").is_file():
        old = json.loads((d / "metrics.json").read_text())
        m = {**old, **{k: m[k] for k in ("n_samples", "overall", "per_dataset")}}
    m.update(extra)
    (d / "metrics.json").write_text(json.dumps(m))
    return m


def edit_metrics(d, edit):
    """Edit the run folder ``d``'s metrics.json in place: ``edit(m)`` changes ``m``, the parsed file (its return value
    is ignored), which is then written back."""
    m = json.loads((d / "metrics.json").read_text())
    edit(m)
    (d / "metrics.json").write_text(json.dumps(m))


def set_metric(d, where, metric, value):
    """Set ``metric`` (``"UF1"``/``"UAR"``) of ``where`` (``"overall"`` or a dataset of ``per_dataset``) in the run
    folder ``d``'s metrics.json to ``value``."""
    def edit(m):
        (m["overall"] if where == "overall" else m["per_dataset"][where])[metric] = value
    edit_metrics(d, edit)


def finished_run_with_metrics(d, rows):
    """:func:`write_finished_run` of ``rows`` (datasets from the subjects' prefixes) plus the metrics.json icegan
    writes for it (:func:`write_metrics`); returns ``d``."""
    d = write_finished_run(d, rows, datasets=lambda s: s.split("/")[0])
    write_metrics(d)
    return d


def centroid_fold_fn(fs, calls):
    """A fold function of :func:`icegan.protocol.run_loso` over the feature set ``fs``: nearest-class-mean scores
    (minus the squared distance to each of the 3 class means, (n_test, 3)), trained on the fold's training rows only;
    appends each fold's subject to the list ``calls`` as it trains it."""
    x, y = fs.features.flatten(1).numpy(), fs.labels.numpy()

    def fold_fn(fold):
        calls.append(fold.subject)
        means = np.stack([x[fold.train_idx][y[fold.train_idx] == c].mean(0) for c in range(3)])
        return -((x[fold.test_idx][:, None] - means[None]) ** 2).sum(-1)
    return fold_fn


def random_prob_fn(seed):
    """A fold function of :func:`icegan.protocol.run_loso`: pseudo-random class probabilities ((n_test, 3), rows
    summing to 1), the same for the same ``seed`` and fold."""
    def fold_fn(fold):
        z = np.random.default_rng(seed * 1000 + fold.index).normal(size=(len(fold.test_idx), 3))
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    return fold_fn


def index_scores(folds):
    """A ``folds_fn`` for :func:`icegan.protocol.run_loso`: scores of each fold, a function of the fold's index and
    test clips only (as a seeded fold is)."""
    import numpy as np
    return [np.stack([np.sin(f.test_idx + f.index), np.cos(f.test_idx * 0.37), 0.1 * f.test_idx / 7], 1) / 3
            for f in folds]


def reversed_group_map(fn, groups):
    """A fake group map whose groups come back last submitted first (a pool's completion order)."""
    for g in reversed(groups):
        yield g, fn(g)


#: overrides of configs/demo.yaml for a main job of seconds (3 synthetic subjects, one epoch, Farneback flow), for
#: tests of run_main's resume records (timing.json)
TINY_MAIN_JOB = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "recognizer.epochs=1",
                 "recognizer.batch_size=16", "gan.epochs=1", "gan.joint=false", "flow.method=farneback", "threads=1"]
