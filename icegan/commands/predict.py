"""``icegan fit`` and ``icegan predict``: train a chosen recipe once on every labelled clip, save it, and score new
clips with it.

Example::

    icegan fit --config configs/features_ststnet.yaml --out models/ststnet.pt model.shift_px=1
    icegan fit --config configs/features_randomforest.yaml --out models/forest.pt
    icegan predict --model models/ststnet.pt --model models/forest.pt --table my_clips.csv --out my_predictions.csv

A fitted model's accuracy on new subjects is what ``icegan loso`` measured for its recipe; ``icegan fit`` itself
measures nothing, and ``icegan predict`` on clips that were in the training set says so.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from icegan.commands import add_print_config, one_line_errors, print_config
from icegan.commands._numbers import number
from icegan.paths import config_hint

__all__ = ["register", "fit", "predict_table", "as_trained"]

FIT_EPILOG = """\
The recipe is the config's, as `icegan loso` runs it (model.*, seed, device, threads), trained once on every clip
its data section lists (data.source=megc2019_htnet: the 442 composite clips; data.source=table: your table;
protocol=SDE with dataset=NAME: that dataset's clips only, dataset=NAME being refused under protocol=CDE as by
`icegan loso`; protocol=HDE is refused: fit on the datasets you choose with data.datasets=[...] and score the
held-out one with icegan predict). Training clips of fewer than 2 classes are refused (with
model.inner_val_fraction, also those its split leaves to train on). model.seeds=N trains N members whose
probabilities are averaged. model.inner_val_fraction > 0 holds out that share of the subjects for early
stopping, as in a LOSO fold. Options that need LOSO folds or other inputs are refused: oracle_epoch,
model.noise_filter, model.domain_bn, model.domain_adversarial, model.au_weight, data.synthetic_per_clip,
data.permute_labels, data.train_subject_fraction, data.roi, max_folds > 0 and workers > 1 (threads=N sets the
threads of the one training).
data.recenter=median is applied again to the clips `icegan predict` scores. data.labels=casme2_5 or samm_5 (with
data.source=table) fits CASME II's or SAMM's five classes; the file records the classes of its label set.

The file (one .pt) holds the weights, the resolved config, what the model was trained on (clips, subjects,
datasets, classes, map size) and the environment; `icegan predict` reads it. A scikit-learn recognizer is stored
as a pickle inside it: load only model files you trust.
"""

PREDICT_EPILOG = """\
The table has the columns of a feature table (dataset, subject, clip, path; label optional: an empty cell or no
label column means unknown; labels are read as classes of the models' label set, the one they were fitted with:
data.labels), one row per clip; see `icegan loso --help` (data.source=table). Models of two label sets are
refused. A model of one dataset's classes (data.labels=casme2_5 or samm_5) reads class ids only from a table whose
provenance.json (icegan features) records that label set, or, with a model fitted on a table of bare ids of its
set, from that very table (the same content, whose SHA-256 the model records); elsewhere bare ids, most often
MEGC2019's, are refused: write class names. Such a model scores clips of any dataset: a labelled clip of another
dataset is a cross-dataset test (a CASME II clip labelled happiness, scored by a samm_5 model) when its label is the
name of one of the model's classes (not an id, which there may be one of its own dataset's set); another label is
refused, naming the line, the label and the model's classes. The maps must be prepared like the model's training
maps: the same flow method and normalisation (the MEGC2019 maps: TV-L1, each channel min-max normalised per clip to
[0, 1]); their size may differ (they are resized to the training maps' size).
Your own recordings: list them in a clip list and make their maps with `icegan features --config C --clips LIST.csv`,
C being the config whose `icegan features` maps the model was fitted on (a clip list's labels are MEGC2019 classes:
for a model of data.labels=casme2_5 or samm_5 add data.labels=megc2019, which makes the same maps, and leave the
list's label cells empty); a warning says when the maps of the table and of a model's training come from another flow
method, setting or checkpoint.

Output CSV: dataset, subject, clip, y_true (empty when unknown), y_pred, predicted (class name), one score_<class>
per class of the models' label set (MEGC2019: score_negative, score_positive, score_surprise; probabilities,
averaged over the --model files with equal weights or --weights).
When every clip has a label, UF1 / UAR are printed (overall, and per dataset when the table holds several) and the
confusion matrices are drawn beside the output (OUT_confusion.png), with a warning when clips or subjects of the
table were in a model's training set (then it is not a test): by name, and for a model fitted on a feature table
also by the content of its map files (the same maps under other dataset, subject or clip names); the figure's title
says so too. With an unlabelled clip no figure is drawn, and an earlier OUT_confusion.png is removed.
"""

#: settings of a LOSO recipe that `icegan fit` cannot apply, with why
_UNSUPPORTED = (
    ("oracle_epoch", lambda c: c.oracle_epoch, "it picks an epoch per test subject, and a fitted model has none"),
    ("model.noise_filter", lambda c: c.model.noise_filter != "none", "it filters each LOSO fold's training clips"),
    ("model.domain_bn", lambda c: c.model.domain_bn, "per-dataset statistics need every scored clip's dataset"),
    ("model.domain_adversarial", lambda c: c.model.domain_adversarial > 0, "supported by `icegan loso` only"),
    ("model.au_weight", lambda c: c.model.au_weight > 0, "supported by `icegan loso` only"),
    ("data.synthetic_per_clip", lambda c: c.data.synthetic_per_clip > 0, "supported by `icegan loso` only"),
    ("data.permute_labels", lambda c: c.data.permute_labels >= 0, "a model of permuted labels is a null model"),
    ("data.train_subject_fraction", lambda c: c.data.train_subject_fraction < 1.0, "it keeps a share of each LOSO "
     "fold's training subjects, a point of a learning curve"),
    ("data.roi", lambda c: c.data.roi != "none", "landmark regions are cut from the composite's apex faces, which "
     "new clips' tables do not have"),
    ("max_folds", lambda c: c.max_folds > 0, "it runs only the first LOSO folds, and a fitted model has no folds: it "
     "trains on every clip"),
    # workers=0 (one per usable CPU) is what the shipped features configs that `icegan fit` is run with write
    ("workers", lambda c: c.workers > 1, "it trains LOSO folds in that many processes, and a fitted model is one "
     "training; threads=N sets its threads"),
    ("protocol", lambda c: c.protocol == "HDE", "protocol=HDE leaves each dataset out of `icegan loso`'s folds, and a "
     "fitted model has no folds; to fit on some datasets and score another, fit with data.datasets=[casme2,samm] "
     "(the datasets to train on) and score the held-out dataset's clips with icegan predict"),
)


def fit(cfg, out: Path, progress: bool = True) -> tuple:
    """Train ``cfg``'s recipe on every clip of its data section and save it to ``out`` (:mod:`icegan.saved_recognizer`).

    Args:
        cfg: an :class:`icegan.commands.loso.LosoConfig`.
        out: the model file to write.
        progress: tqdm bars over epochs.

    A class of ``cfg.data.labels`` that no training clip holds is warned about on stderr before training (the model
    can never predict it); with ``model.inner_val_fraction`` > 0, also one that only the held-out subjects hold.

    Returns:
        (the :class:`icegan.recognition.FittedRecognizer` as trained, its training record
        (:func:`icegan.saved_recognizer.training_record`, of every clip, the inner-validation ones included; with
        ``model.inner_val_fraction`` > 0 its ``inner_val`` holds the ``clips``, ``subjects``, ``datasets`` and
        ``classes`` of the held-out part; with ``model.seeds`` S > 1 of ststnet / offtanet, a list of S such parts,
        one per member, each drawn as `icegan loso` draws a fold's members' (so that fit is the one-fold run, e.g.
        an HDE fold, at that fold's seed)) plus ``seconds``, the training wall time).

    Raises:
        ValueError: a setting ``icegan fit`` cannot apply (named, with the reason); ``protocol=SDE`` without a
            ``dataset`` held by the data; a ``dataset`` under ``protocol=CDE`` (as ``icegan loso`` refuses it);
            ``protocol=HDE`` (a model is fitted on chosen datasets: ``data.datasets``); training clips of fewer than
            2 classes (the table or source and the class counts named: such a model predicts one class always),
            also among those the ``model.inner_val_fraction`` split leaves for training (the split named);
            ``model.inner_val_fraction`` > 0 with fewer than 2 training subjects
            (:func:`icegan.recognition.inner_val_masks`); bad input as
            :func:`icegan.commands.loso.load_feature_set`; a custom network that fails its check.
        FileNotFoundError: missing features.
    """
    import numpy as np
    import torch

    from icegan.commands.loso import load_feature_set
    from icegan.config import to_dict
    from icegan.data.feature_table import table_sha256, unrecorded_ids
    from icegan.environment import describe_environment, limit_threads
    from icegan.labels import absent_classes, get_label_set
    from icegan.recognition import (SKLEARN_MODELS, check_custom_recognizer, check_network_builds, fit_recognizer,
                                    inner_val_masks, inner_val_split, recognizer_provenance)
    from icegan.saved_recognizer import maps_provenance, save_recognizer, training_record

    for key, on, why in _UNSUPPORTED:
        if on(cfg):
            raise ValueError(f"icegan fit cannot apply {key} ({why}); set it to its default for a fitted model")
    if cfg.protocol == "CDE" and cfg.dataset is not None:      # as icegan loso (make_folds): never silently ignored
        raise ValueError(f"protocol CDE runs over all datasets; dataset={cfg.dataset!r} applies to SDE only (to fit on "
                         f"one dataset's clips: protocol=SDE dataset={cfg.dataset}, or data.datasets=[...])")
    if cfg.threads > 0:
        limit_threads(cfg.threads)
    fs = load_feature_set(cfg.data)
    if cfg.protocol == "SDE":
        if not cfg.dataset:
            raise ValueError("protocol=SDE trains on one dataset: set dataset=NAME (or protocol=CDE for all)")
        keep = (fs.samples["dataset"] == cfg.dataset).to_numpy()
        if not keep.any():
            raise ValueError(f"dataset={cfg.dataset!r} has no clips in the data (datasets: "
                             f"{sorted(set(fs.samples['dataset']))})")
        fs = fs.replace(keep=keep)
    classes = get_label_set(cfg.data.labels).classes
    absent = absent_classes(classes, fs.labels.tolist())
    _check_two_classes(cfg, fs.labels.tolist(), classes, absent)
    _warn_absent(cfg, absent)
    check_network_builds(cfg.model)
    check_custom_recognizer(cfg.model, fs.features, n_classes=len(classes))
    x, y = fs.features, fs.labels
    subjects = fs.samples["subject"].astype(str).tolist()
    x_val = y_val = val_masks = None
    held_out = None
    S = max(1, cfg.model.seeds)
    if cfg.model.inner_val_fraction > 0 and cfg.model.name in ("ststnet", "offtanet") and S > 1:
        # the copies of a grouped network hold out subjects of their own, drawn as `icegan loso` draws a fold's
        # (fit_predict_folds: S rows, the group's generator; a one-fold run's seed is the fold-0 seed, cfg.seed), so
        # that fit on some datasets is the HDE fold that tests the other one
        val_masks = inner_val_masks(subjects, np.ones((S, len(x)), dtype=bool), cfg.model.inner_val_fraction,
                                    np.random.default_rng(cfg.seed))[1]
        held_out = []
        for g, val in enumerate(val_masks):
            part = training_record(fs.samples[val], fs.features, classes)
            split = (f" left by model.inner_val_fraction={cfg.model.inner_val_fraction} for member {g + 1} of {S}, "
                     f"which holds out {part['clips']} clips of {_subjects(part)} "
                     f"({', '.join(part['subjects'])}) for its early stopping,")
            # the clips member g learns from
            _check_split_classes(cfg, y[torch.from_numpy(~val)].tolist(), classes, absent, split)
            held_out.append(part)
    elif cfg.model.inner_val_fraction > 0 and cfg.model.name not in SKLEARN_MODELS:
        # one split for every member: a custom recognizer's LOSO fold draws one too (_fit_predict_custom_fold)
        train, val = inner_val_split(subjects, np.arange(len(x)), cfg.model.inner_val_fraction, cfg.seed)
        held_out = training_record(fs.samples.iloc[val], fs.features, classes)
        split = (f" left by model.inner_val_fraction={cfg.model.inner_val_fraction}, which holds out "
                 f"{held_out['clips']} clips of {_subjects(held_out)} "
                 f"({', '.join(held_out['subjects'])}) for early stopping,")
        # the clips the model learns from: checked as all clips were above
        _check_split_classes(cfg, y[train].tolist(), classes, absent, split)
        subjects = [subjects[i] for i in train]
        train, val = torch.from_numpy(train), torch.from_numpy(val)
        x, y, x_val, y_val = x[train], y[train], x[val], y[val]
    start = time.perf_counter()
    fitted = fit_recognizer(cfg.model, x, y, device=cfg.device, seed=cfg.seed, x_val=x_val, y_val=y_val,
                            progress=progress, subjects_train=subjects, n_classes=len(classes), val_masks=val_masks)
    seconds = time.perf_counter() - start
    record = {**training_record(fs.samples, fs.features, classes),
              "maps": maps_provenance(cfg.data.source, cfg.data.table, fs.samples.get("path"))}
    keep = ("clips", "subjects", "datasets", "classes")
    if isinstance(held_out, list):          # each member's early-stopping part, apart
        record["inner_val"] = [{k: part[k] for k in keep} for part in held_out]
    elif held_out is not None:              # the early-stopping part of the clips above, apart
        record["inner_val"] = {k: held_out[k] for k in keep}
    if cfg.data.source in ("table", "megc2019_htnet"):  # each training map's content: predict knows it by any name
        record["map_sha256"] = [table_sha256(path) for path in fs.samples["path"]]
    if cfg.data.source == "table" and cfg.data.labels != "megc2019" and unrecorded_ids(cfg.data.table):
        # trained on bare ids read as this set's: predict reads them so in this very table (its digest) alone
        record["bare_ids_of"] = {"labels": cfg.data.labels, "table_sha256": table_sha256(cfg.data.table)}
    save_recognizer(out, fitted, to_dict(cfg), record, recognizer_provenance(cfg.model), describe_environment(),
                    classes=classes)
    return fitted, {**record, "seconds": seconds}


def _check_two_classes(cfg, labels: list, classes, absent: list, split: str = "") -> None:
    """Refuse training clips of fewer than 2 classes: a model fitted on one class predicts it for every clip (and
    scikit-learn's logistic regression fails with its own message).

    Args:
        cfg: the fit's :class:`icegan.commands.loso.LosoConfig` (its data section names the clips' table or source).
        labels: (N,) int class id of every training clip. classes: the label set's class names, in id order.
        absent: the names of ``classes`` no clip of ``labels`` is of (:func:`icegan.labels.absent_classes`).
        split: ``""`` for every clip of the data; else ``labels`` are those the ``model.inner_val_fraction`` split
            left for training, and ``split`` says so (`` left by model.inner_val_fraction=F, which holds out ...,``).

    Raises:
        ValueError: fewer than 2 classes among ``labels``; names the table (``data.table``) or the source, the SDE
            dataset if any, the split if any, and each class's count; what to change (the labels and datasets, or
            with ``split`` the fraction or the seed that draws the held-out subjects).
    """
    held = len(classes) - len(absent)
    if held >= 2:
        return
    counts = [labels.count(k) for k in range(len(classes))]
    where = cfg.data.table if cfg.data.source == "table" else f"data.source={cfg.data.source}"
    scope = f" of dataset {cfg.dataset}" if cfg.protocol == "SDE" and cfg.dataset else ""
    fix = ("lower model.inner_val_fraction (0: no inner validation) or change seed, which draws the held-out "
           "subjects" if split else "check the label column and the data's datasets (data.datasets, dataset)")
    raise ValueError(f"{where}: the {len(labels)} training clips{scope}{split} hold "
                     f"{'one class' if held else 'no class'} ({', '.join(f'{c} {n}' for c, n in zip(classes, counts))}"
                     f"): a model needs clips of at least 2 classes (fitted on fewer than 2 classes, it predicts one "
                     f"class for every clip); {fix}")


def _check_split_classes(cfg, trained: list, classes, absent: list, split: str) -> None:
    """:func:`_check_two_classes` and :func:`_warn_absent` of the clips the ``model.inner_val_fraction`` split left
    for training: ``trained`` (N,) int class ids, ``classes`` the label set's class names, ``absent`` the names
    already warned about for every clip of the data (not repeated), ``split`` as :func:`_check_two_classes`'s.

    Raises:
        ValueError: as :func:`_check_two_classes`."""
    from icegan.labels import absent_classes
    absent_trained = absent_classes(classes, trained)
    _check_two_classes(cfg, trained, classes, absent_trained, split)
    _warn_absent(cfg, [c for c in absent_trained if c not in absent], split)


def _warn_absent(cfg, absent: list, split: str = "") -> None:
    """Warn on stderr, before training, of the classes ``absent`` (names) that no training clip is of: the model is
    trained without them and can never predict them. ``split``: as :func:`_check_two_classes`'s (the clips the
    ``model.inner_val_fraction`` split left for training); nothing is said when ``absent`` is empty."""
    if absent:
        them = "it" if len(absent) == 1 else "them"
        print(f"warning: no training clip{split} is of class {', '.join(absent)} (data.labels={cfg.data.labels}): the "
              f"model is trained without {them} and can never predict {them}", file=sys.stderr)


def predict_table(models: list, table: str | Path, normalize: str = "auto", weights=None, device: str = "cpu"):
    """Score the clips of a feature table with one or several saved recognizers: :func:`_score_table`'s first three
    (the predictions, the models' metadata, the map size), with its arguments and errors."""
    return _score_table(models, table, normalize=normalize, weights=weights, device=device)[:3]


def _score_table(models: list, table: str | Path, normalize: str = "auto", weights=None, device: str = "cpu"):
    """Score the clips of a feature table with one or several saved recognizers.

    Args:
        models: paths of files written by ``icegan fit``.
        table: the feature table (labels optional; read as classes of the models' label set, :mod:`icegan.labels`).
        normalize: ``none``, ``minmax``, or ``auto``: the models' training ``data.normalize`` (``none`` for the
            MEGC2019 maps), which must then be one for all of them.
        weights: one non-negative weight per model (None: equal).
        device: where the networks run.

    Returns:
        (predictions DataFrame as written by the command, list of each model's metadata, the table's map size,
        the absolute path of every scored clip's map file in the predictions' order);
        y_pred is the class of the largest weighted-average probability, a tie (within 1e-9, float rounding of
        the average) going to the lower class id as in `icegan ensemble` (:func:`icegan.ensemble.argmax_lower_on_tie`).

    Raises:
        icegan.saved_recognizer.SavedRecognizerError: an unusable model file, or one whose weights give NaN or Inf
            scores (a damaged or diverged model).
        ValueError: weights that do not match the models or are all zero; models of two label sets (both files and
            their classes named); with ``normalize="auto"``, models fitted on maps of two normalisations (both files
            named); bad table rows (named by line and clip; a label of another label set than the
            models' names the first model's classes). A labelled row of another dataset than a one-dataset label
            set's is scored when its label names one of the set's classes (a cross-dataset test,
            :func:`icegan.data.feature_table.read_feature_table`), and refused otherwise; with models of a label set
            other than MEGC2019, bare class ids in a table whose ``provenance.json`` records no label set (they are
            not guessed to be the model's: the message names the set they would be read as and asks for names),
            unless every model was fitted on this very table (the same content: its training record's
            ``bare_ids_of`` holds the set and the table's ``table_sha256``): its ids are then read as the set's, as
            ``icegan fit`` read them.
        FileNotFoundError: the table (named as ``--table``) or a clip's map is missing.
    """
    import numpy as np
    import pandas as pd

    from icegan.data.feature_table import UnrecordedIdsError, load_table_features, table_sha256
    from icegan.ensemble import EnsembleError, argmax_lower_on_tie, mixing_weights
    from icegan.labels import label_set_of_classes
    from icegan.saved_recognizer import SavedRecognizerError, load_recognizer

    try:                                    # the rule of `icegan ensemble`'s weights, in this command's words
        w = mixing_weights(weights, len(models))
    except EnsembleError:
        raise ValueError(f"--weights: give one non-negative weight per --model ({len(models)}), not all 0; "
                         f"got {list(weights)}") from None
    loaded = [load_recognizer(m, device=device) for m in models]
    sets = [label_set_of_classes(meta["classes"]) for _, meta in loaded]     # load_recognizer checked them
    def recognises(i: int) -> str:
        return f"{models[i]} recognises the classes of {sets[i].name} {list(sets[i].classes)}"
    other = next((i for i in range(len(sets)) if sets[i] != sets[0]), None)
    if other is not None:
        raise ValueError(f"--model: {recognises(0)}, {recognises(other)}: the probabilities of models of two label "
                         f"sets cannot be averaged; give models fitted with one data.labels")
    classes = sets[0].classes
    if normalize == "auto":
        def trained_on(meta: dict) -> str:       # the maps' normalisation the model was fitted on
            data = meta["config"].get("data", {})
            return data.get("normalize", "none") if data.get("source") == "table" else "none"
        norms = [trained_on(meta) for _, meta in loaded]
        other = next((i for i in range(len(norms)) if norms[i] != norms[0]), None)
        if other is not None:               # one normalisation for all: the other model would see unlike maps
            raise ValueError(f"--model: {models[0]} was fitted on maps with data.normalize={norms[0]}, "
                             f"{models[other]} with data.normalize={norms[other]}: --normalize auto cannot serve "
                             f"both; give models fitted with one data.normalize, or choose with --normalize")
        normalize = norms[0]
    try:
        # a model trained on a table of bare ids of its set (no provenance.json) reads the ids of that very table
        # (the same content) as fit read them; another table's bare ids may be of another set (MEGC2019's 0 negative)
        records = [meta["training"].get("bare_ids_of") for _, meta in loaded]
        bare = all(isinstance(r, dict) and r.get("labels") == sets[0].name for r in records) and Path(table).is_file()
        if bare:
            digest = table_sha256(table)
            bare = all(r.get("table_sha256") == digest for r in records)
        fs = load_table_features(table, normalize=normalize, labelled=False, labels=sets[0].name, bare_ids=bare)
    except FileNotFoundError as exc:        # the reader names icegan loso's setting; here it is this command's flag
        raise FileNotFoundError(str(exc).replace("(data.table)", "(--table)")) from None
    except UnrecordedIdsError:              # ids of no recorded set: which set they are of is not guessed
        raise
    except ValueError as exc:
        other_set = _label_set_of_table(table, sets[0])
        if other_set is None:      # the table reader names icegan loso's setting; here it is this command's flag
            raise ValueError(str(exc).replace("set data.normalize=minmax", "give --normalize minmax")) from None
        # the reader's message often says already which model scores such a table: said once, but always said
        fix = "" if f"data.labels={other_set}" in str(exc) else \
            f": score it with a model fitted with data.labels={other_set}"
        raise ValueError(f"{exc} — icegan predict reads the labels as classes of the model's label set, and "
                         f"{recognises(0)}; this table's labels are classes of {other_set}{fix}") from None
    p = 0
    for wi, path, (fitted, meta) in zip(w, models, loaded):
        pm = np.asarray(fitted(as_trained(fs.features, meta)), dtype=np.float64)
        bad = ~np.isfinite(pm).all(1)
        if bad.any():                       # as `icegan loso` refuses non-finite scores: never argmax over NaN
            first = fs.samples.iloc[int(bad.argmax())]
            raise SavedRecognizerError(
                f"{path}: its weights produce NaN or Inf scores ({int(bad.sum())} of {len(pm)} clips, first "
                f"{first['subject']}/{first['clip']}): a damaged or diverged model; retrain it with `icegan fit`")
        p = p + wi * pm
    y_true = fs.samples["label"].to_numpy()
    y_pred = argmax_lower_on_tie(p)      # a tie, up to the average's rounding: the lower class id
    out = pd.DataFrame({"dataset": fs.samples["dataset"], "subject": fs.samples["subject"],
                        "clip": fs.samples["clip"],
                        "y_true": pd.array([None if t < 0 else int(t) for t in y_true], dtype="Int64"),
                        "y_pred": y_pred, "predicted": [classes[i] for i in y_pred]})
    for k, col in enumerate(sets[0].score_columns):
        out[col] = p[:, k]
    return out, [meta for _, meta in loaded], int(fs.features.shape[-1]), fs.samples["path"].tolist()


def _label_set_of_table(table, model_set):
    """The name of another label set than ``model_set`` whose classes the labels of ``table`` are, when its rows
    read with that set and not with ``model_set`` (a table of another set's labels); None otherwise."""
    import logging

    from icegan.data.feature_table import read_feature_table
    from icegan.labels import LABEL_SETS

    quiet = logging.getLogger("icegan.data.feature_table")

    def reads(name: str) -> bool:
        was, quiet.disabled = quiet.disabled, True      # the first read warned already: these reads only probe
        try:
            read_feature_table(table, labelled=False, labels=name)
        except (ValueError, OSError):
            return False
        finally:
            quiet.disabled = was
        return True
    if reads(model_set.name):            # the rows are fine with the model's classes: another error
        return None
    return next((name for name in LABEL_SETS if name != model_set.name and reads(name)), None)


def as_trained(x, meta: dict):
    """Maps (n, 3, S, S) brought to the form a saved model's training maps had when it learned from them: resized
    to their size (bilinear, :func:`icegan.recognition.resize_features`; a network then resizes to its input size
    as in training, and a scikit-learn model needs exactly that many values) and, under ``data.recenter=median``,
    each clip's u and v recentred (:func:`icegan.data.features.recenter_flow`, a per-clip operation)."""
    from icegan.recognition import resize_features
    size = int(meta["training"]["map_size"])
    if x.shape[-1] != size:
        x = resize_features(x, size)
    if (meta["config"].get("data") or {}).get("recenter") == "median":
        from icegan.data.features import recenter_flow
        x = recenter_flow(x)
    return x


@one_line_errors("icegan fit")
def _fit_main(args: argparse.Namespace) -> int:
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config
    from icegan.saved_recognizer import check_model_output

    cfg = load_config(LosoConfig, args.config, args.overrides)
    if args.print_config:
        return print_config(cfg)
    if args.out is None:                                  # not required by argparse, so that --print-config needs none
        raise ValueError("--out FILE is required: the model file to write (e.g. --out models/ststnet.pt)")
    check_model_output(args.out)                          # before training, not after
    _, record = fit(cfg, Path(args.out), progress=not args.no_progress)
    held_out = record.get("inner_val")
    if isinstance(held_out, list):          # the members learned from different clips: every clip is said
        trained = record
        stopping = (f", each of its {len(held_out)} members early stopping on the subjects its own "
                    f"model.inner_val_fraction={cfg.model.inner_val_fraction} split held out ("
                    + "; ".join(f"member {g + 1}: {', '.join(p['subjects'])}" for g, p in enumerate(held_out)) + ")")
    else:
        trained = record if held_out is None else _less(record, held_out)     # the clips the model learned from
        stopping = "" if held_out is None else (
            f", early stopping on {held_out['clips']} clips of {_subjects(held_out)} held out by "
            f"model.inner_val_fraction={cfg.model.inner_val_fraction} ({', '.join(held_out['subjects'])}; "
            f"{_counts(held_out)})")
    print(f"{cfg.model.name}: trained on {trained['clips']} clips of {_subjects(trained)} ({_counts(trained)})"
          f"{stopping}, {record['map_size']}×{record['map_size']} maps, in {record['seconds']:.1f} s")
    print(f"saved to {args.out}; score new clips with `icegan predict --model {args.out} --table CLIPS.csv --out "
          f"PREDICTIONS.csv` (CLIPS.csv: a feature table, e.g. from `icegan features`). How well "
          f"it does on new subjects is what `icegan loso` measures for this recipe, not its fit on these clips.")
    return 0


def _subjects(part: dict) -> str:
    """``N subject(s)`` of a training record or its ``inner_val`` part."""
    n = len(part["subjects"])
    return f"{n} subject{'' if n == 1 else 's'}"


def _less(record: dict, held_out: dict) -> dict:
    """The clips, subjects, datasets and classes of a training record less those of its ``inner_val`` part (held out
    by whole subjects); a dataset left without clips is dropped, a class keeps its 0 as in the record."""
    less = {key: {k: v - held_out[key].get(k, 0) for k, v in record[key].items()} for key in ("datasets", "classes")}
    return {"clips": record["clips"] - held_out["clips"], "classes": less["classes"],
            "subjects": [s for s in record["subjects"] if s not in held_out["subjects"]],
            "datasets": {k: v for k, v in less["datasets"].items() if v}}


def _counts(part: dict) -> str:
    """``casme2 9, samm 18; negative 9, ...``: the clips per dataset and per class of a training record or part."""
    return "; ".join(", ".join(f"{k} {v}" for k, v in part[key].items()) for key in ("datasets", "classes"))


def _check_out_is_no_input(args: argparse.Namespace) -> None:
    """Refuse a predict ``--out`` that is the ``--table`` being scored or one of the ``--model`` files: writing the
    predictions there would replace the input (the clips' feature table, a trained model) after reading it.

    Raises:
        ValueError: naming the flag whose file ``--out`` is and what to give instead.
    """
    out = Path(args.out).resolve()
    for flag, path in [("--table", args.table)] + [("--model", m) for m in args.model]:
        if Path(path).resolve() == out:
            raise ValueError(f"--out {args.out} is the {flag} file given; the predictions would replace it: give "
                             f"--out a new file, e.g. {out.with_name(out.stem + '_predictions.csv')}")


def _check_out_replaces_no_model_or_table(out: str | Path) -> None:
    """Refuse a predict ``--out`` that exists and is an icegan model file (:func:`icegan.saved_recognizer.
    is_model_file`) or a feature table (a CSV whose header has a ``path`` column): the predictions would replace a
    trained model or a table of clips, as ``icegan fit`` never replaces a file that is not a model. An earlier
    predictions CSV (no ``path`` column) and any other file are replaced.

    Raises:
        ValueError: naming ``--out``, what it is and what to give instead.
    """
    import csv

    from icegan.saved_recognizer import is_model_file
    out = Path(out)
    if not out.is_file():
        return
    what = None
    if is_model_file(out):
        what = "an icegan model file (made by `icegan fit`)"
    else:
        try:
            with open(out, newline="", encoding="utf-8-sig") as f:
                header = next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError, csv.Error):
            header = []
        if "path" in {str(c).strip().lower() for c in header}:
            what = "a feature table (it has a path column)"
    if what is not None:
        raise ValueError(f"--out {out} is {what}; the predictions would replace it: give --out a new file, e.g. "
                         f"{out.with_name(out.stem + '_predictions.csv')}")


@one_line_errors("icegan predict")
def _predict_main(args: argparse.Namespace) -> int:
    from icegan.labels import label_set_of_classes
    from icegan.metrics import compute_metrics
    from icegan.paths import check_output_file
    from icegan.protocol import subject_key
    from icegan.saved_recognizer import maps_differ, maps_provenance

    from flownet.devices import resolve_device
    check_output_file(args.out, "--out", "predictions.csv")   # never over a LOSO run's predictions.csv
    _check_out_is_no_input(args)
    _check_out_replaces_no_model_or_table(args.out)
    resolve_device(args.device, "--device")                   # a device this machine lacks: named by its flag, now
    out, metas, size, map_paths = _score_table(args.model, args.table, normalize=args.normalize,
                                               weights=args.weights, device=args.device)
    scored_maps = maps_provenance("table", args.table, map_paths)
    # clips and subjects matched by subject_key: one subject spelt two ways (the MEGC2019 table's smic/s01, a
    # prepared SMIC's smic/s1; samm/006 and samm/6) is one person
    keys = [subject_key(k) for k in out["subject"] + "/" + out["clip"]]
    digests = None                          # the scored maps' SHA-256, read once if a model recorded its maps'
    caveat = ""                             # the confusion figure's title says what the warnings below say
    for path, meta in zip(args.model, metas):
        trained = meta["training"]
        differ = maps_differ(trained.get("maps") or {}, scored_maps)
        if differ:
            print(f"warning: {path}: {differ}; a model scores reliably only maps made the way its training maps "
                  f"were", file=sys.stderr)
        if trained["map_size"] != size:
            print(f"note: {path} was trained on {trained['map_size']}×{trained['map_size']} maps, these are "
                  f"{size}×{size}; they are resized to the training size, but maps made another way than the training "
                  f"maps are a distribution shift", file=sys.stderr)
        trained_keys = {subject_key(k) for k in trained["clip_keys"]}
        seen = [k in trained_keys for k in keys]
        if trained.get("map_sha256"):       # also the same maps under other names (a model fitted before: names only)
            if digests is None:
                from icegan.data.feature_table import table_sha256
                digests = [table_sha256(p) for p in map_paths]
            trained_maps = set(trained["map_sha256"])
            seen = [a or d in trained_maps for a, d in zip(seen, digests)]
        seen_clips = len({k for k, a in zip(keys, seen) if a})     # clips, a clip listed twice once
        trained_subjects = {subject_key(s) for s in trained["subjects"]}
        seen_subjects = sorted(s for s in set(out["subject"].astype(str)) if subject_key(s) in trained_subjects)
        if seen_clips:
            print(f"warning: {seen_clips} of these {len(out)} clips were in the training set of {path}: their "
                  f"predictions are not a test", file=sys.stderr)
            caveat = "training clips: not a test"
        elif seen_subjects:
            print(f"warning: {len(seen_subjects)} of these subjects ({', '.join(seen_subjects[:5])}"
                  f"{', ...' if len(seen_subjects) > 5 else ''}) were in the training set of {path}: not a "
                  f"subject-independent test", file=sys.stderr)
            caveat = caveat or "training subjects: not subject-independent"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from icegan.csv_names import csv_quoting
    out.to_csv(args.out, index=False, quoting=csv_quoting(out))   # a clip name holding "\r" is quoted
    label_set = label_set_of_classes(metas[0]["classes"])              # every model's (predict_table)
    classes = label_set.classes
    cross = out[out["y_true"].notna() & ~out["dataset"].isin(label_set.datasets)] if label_set.datasets else out[:0]
    for ds, g in cross.groupby("dataset", sort=True):          # read as the model's classes by name (a class of it)
        held = sorted(set(g["y_true"].astype(int)))
        print(f"note: {len(g)} labelled {ds} clips are scored with the classes of {label_set.name} (a model of "
              f"{', '.join(label_set.datasets)} clips' classes): a cross-dataset test, whose UF1 / UAR average over "
              f"the classes their labels hold ({', '.join(classes[k] for k in held)})")
    counts = out["predicted"].value_counts()
    print(f"{len(out)} clips scored with {len(args.model)} model(s): "
          + ", ".join(f"{name} {int(counts.get(name, 0))}" for name in classes))
    png = Path(args.out).with_name(Path(args.out).stem + "_confusion.png")
    if out["y_true"].notna().all():
        parts = [("all", out)] + ([(d, g) for d, g in out.groupby("dataset", sort=True)]
                                  if out["dataset"].nunique() > 1 else [])
        for name, g in parts:
            m = compute_metrics(g["y_true"].astype(int), g["y_pred"], n_classes=len(classes))
            print(f"against the table's labels, {name} ({len(g)} clips): UF1 {m['UF1']:.4f} / UAR {m['UAR']:.4f} "
                  f"(accuracy {(g['y_true'] == g['y_pred']).mean():.4f})")
        from icegan.protocol import confusion_png
        confusion_png(out.assign(y_true=out["y_true"].astype(int)), png,
                      f"icegan predict: {len(args.model)} model(s) on {Path(args.table).name}"
                      + (f" ({caveat})" if caveat else ""), n_classes=len(classes))
        print(f"confusion matrices in {png}")
    else:
        if out["y_true"].notna().any():
            print(f"{int(out['y_true'].notna().sum())} of {len(out)} clips have a label; metrics need all of them")
        if png.is_file():                   # an earlier run's figure would pass for these predictions'
            png.unlink()
            print(f"removed {png}, an earlier run's confusion figure: these predictions have unlabelled clips, "
                  f"so none is drawn")
    print(f"predictions in {args.out}")
    return 0


def register(subparsers) -> None:
    """Add the ``fit`` and ``predict`` subcommands to the ``icegan`` parser."""
    p = subparsers.add_parser(
        "fit", help="train a recognizer recipe once on every labelled clip and save it (for icegan predict)",
        description="Train the recipe of an `icegan loso` config once on every clip of its data section and save "
                    "the model to one file, for scoring new clips with `icegan predict`. Measures nothing: a "
                    "recipe's accuracy on new subjects is what `icegan loso` reports.",
        epilog=FIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="YAML", default=None,
                   help=f"an `icegan loso` config (e.g. {config_hint('features_ststnet')}); defaults when omitted")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="the model file to write (e.g. models/ststnet.pt); required, except with --print-config")
    p.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bars")
    add_print_config(p)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, as for `icegan loso` (e.g. model.shift_px=1 seed=1)")
    p.set_defaults(func=_fit_main)

    q = subparsers.add_parser(
        "predict", help="score the clips of a feature table with models saved by icegan fit",
        description="Class probabilities and predictions for the clips of a feature table, from one or several "
                    "models written by `icegan fit` (their probabilities averaged).",
        epilog=PREDICT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--model", metavar="FILE", action="append", required=True,
                   help="a model file from `icegan fit`; repeat to average several (e.g. STSTNet and a forest)")
    q.add_argument("--table", metavar="CSV", required=True,
                   help="feature table of the clips to score (dataset, subject, clip, path; label optional)")
    q.add_argument("--out", metavar="CSV", required=True,
                   help="predictions file to write (an earlier one is replaced; a model file or feature table is not)")
    q.add_argument("--weights", metavar="W", nargs="+", type=number(), default=None,
                   help="one non-negative weight per --model (default: equal)")
    q.add_argument("--normalize", choices=("auto", "none", "minmax"), default="auto",
                   help="none: maps already min-max normalised per clip to [0, 1]; minmax: normalise them here; "
                        "auto (default): as the models' training table (none for the MEGC2019 maps; models of two "
                        "kinds are refused)")
    q.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    q.set_defaults(func=_predict_main)
