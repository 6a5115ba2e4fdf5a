"""Label sets: which classes a run recognises.

A label set names its classes in id order (id = position) and the column of a prepared manifest
(:mod:`icegan.data.prepare`) that gives each clip's id (:func:`manifest_labels`). Three are defined:

- ``megc2019`` (the default): negative 0, positive 1, surprise 2, the MEGC2019 composite classes
  (../shared/DESIGN.md, "Datasets and the MEGC2019 composite"; :mod:`icegan.data.composite`), for every dataset.
- ``casme2_5``: happiness 0, disgust 1, repression 2, surprise 3, others 4, the CASME II estimated-emotion
  classes of the usual single-dataset protocol (the coding sheet's emotion column; fear and sadness, 9 clips of 255,
  are left out). CASME II only: SAMM and SMIC clips have no such class.
- ``samm_5``: anger 0, contempt 1, happiness 2, surprise 3, other 4, the SAMM estimated-emotion classes of the
  usual single-dataset SAMM protocol: the sheet's emotions with at least 10 clips (``SAMM_Micro_FACS_Codes_v2.xlsx``:
  anger 57, contempt 12, happiness 26, surprise 15, other 26 = 136 of 159 clips; disgust 9, fear 8 and sadness 6
  are left out), the same rule that leaves out CASME II's fear (2) and sadness (7). SAMM only.

A run's predictions.csv holds one score column per class, ``score_<class>`` (:func:`score_columns`); the label set
of a predictions file is read back from those columns (:func:`label_set_of_columns`), so the commands that read
runs (``icegan ensemble``, ``icegan compare``, nested selection) need no setting of their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

__all__ = ["LabelSet", "LABEL_SETS", "DEFAULT_LABELS", "UNNAMED_GENERATOR_SETS", "get_label_set", "score_columns",
           "label_set_of_columns", "label_set_of_classes", "label_set_of_size", "emotion_class_counts",
           "manifest_labels", "absent_classes"]


@dataclass(frozen=True)
class LabelSet:
    """One label set.

    Attributes:
        name: its key (``labels=`` in a config).
        classes: class names in id order (K names, ids ``0..K-1``).
        column: the prepared-manifest column that gives each clip's class: a column of ids (empty cell or -1: the
            clip has no class of this set), or ``emotion``, the sheet's estimated emotion, read as a class name
            (any case; an emotion that is no class: none) (:func:`manifest_labels`).
        datasets: the datasets whose clips can carry these classes; empty = any dataset.
        title: one line for help texts and reports.
        config_name: the shipped main-job config of the set (``casme2_5class`` for ``configs/casme2_5class.yaml``:
            the main job and ``icegan features`` on every clip of its classes); empty for MEGC2019's (every config's
            default). Error messages name it as :attr:`config`.
    """
    name: str
    classes: tuple[str, ...]
    column: str
    datasets: tuple[str, ...]
    title: str
    config_name: str = ""

    @property
    def config(self) -> str:
        """:attr:`config_name` as a command line of this install takes it (``configs/NAME.yaml`` in a checkout, the
        shipped file's path in an installed icegan: :func:`icegan.paths.config_hint`); ``""`` when there is none."""
        from icegan.paths import config_hint
        return config_hint(self.config_name, runnable=True) if self.config_name else ""

    @property
    def n_classes(self) -> int:
        """K, the number of classes."""
        return len(self.classes)

    @property
    def score_columns(self) -> tuple[str, ...]:
        """``("score_<class>", ...)`` in id order: a run's per-class score columns (:func:`score_columns`)."""
        return score_columns(self.classes)


DEFAULT_LABELS = "megc2019"

LABEL_SETS: dict[str, LabelSet] = {
    "megc2019": LabelSet("megc2019", ("negative", "positive", "surprise"), "class3", (),
                         "MEGC2019 3 classes (negative, positive, surprise)"),
    "casme2_5": LabelSet("casme2_5", ("happiness", "disgust", "repression", "surprise", "others"), "class5",
                         ("casme2",), "CASME II 5 classes (happiness, disgust, repression, surprise, others)",
                         "casme2_5class"),
    "samm_5": LabelSet("samm_5", ("anger", "contempt", "happiness", "surprise", "other"), "emotion",
                       ("samm",), "SAMM 5 classes (anger, contempt, happiness, surprise, other)",
                       "samm_5class"),
}

#: the label sets that existed before an ICE-GAN checkpoint recorded its class names (``model.classes``): a
#: generator without them is one of these, told apart by its number of classes (:func:`label_set_of_size`)
UNNAMED_GENERATOR_SETS = ("megc2019", "casme2_5")


def get_label_set(name: str) -> LabelSet:
    """The label set called ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    try:
        return LABEL_SETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown label set {name!r}: use one of {', '.join(LABEL_SETS)}") from None


def absent_classes(classes: Sequence[str], labels: Iterable[int]) -> list[str]:
    """The names of ``classes`` (a label set's, in id order: class i is ``classes[i]``) whose id is not among
    ``labels`` (class ids of clips, ints; an id outside ``0..len(classes)-1``, such as -1, counts for none), in id
    order: the classes ``icegan fit`` trains without and an ``icegan loso`` run tests no clip of (their warnings)."""
    held = set(labels)
    return [name for i, name in enumerate(classes) if i not in held]


def score_columns(classes: Iterable[str]) -> tuple[str, ...]:
    """The predictions.csv score columns of the classes ``classes`` (in their order): ``score_<class>``."""
    return tuple(f"score_{c}" for c in classes)


def label_set_of_classes(classes: Iterable[str]) -> LabelSet:
    """The label set whose classes are exactly ``classes`` (in that order).

    Raises:
        ValueError: no label set has these classes in this order.
    """
    classes = tuple(classes)
    for ls in LABEL_SETS.values():
        if ls.classes == classes:
            return ls
    raise ValueError(f"no label set has the classes {list(classes)}; known: "
                     + "; ".join(f"{n}: {list(ls.classes)}" for n, ls in LABEL_SETS.items()))


def label_set_of_columns(columns: Iterable[str], source: str = "predictions") -> LabelSet:
    """The label set of a run's predictions, from its ``score_<class>`` columns: the set whose score columns are
    exactly those present, else the one set whose score columns include them all. No score column at all gives the
    default set (``megc2019``: a table of predicted classes only).

    Args:
        columns: the column names of a predictions table. source: what to name in an error (a file path).

    Raises:
        ValueError: a score column that is no class of any label set, columns of two label sets mixed, or a part of
            the columns that more than one set has (``score_surprise`` alone).
    """
    present = [c for c in columns if str(c).startswith("score_")]
    if not present:
        return LABEL_SETS[DEFAULT_LABELS]
    exact = [ls for ls in LABEL_SETS.values() if set(present) == set(ls.score_columns)]
    if exact:
        return exact[0]
    fits = [ls for ls in LABEL_SETS.values() if set(present) <= set(ls.score_columns)]
    if len(fits) != 1:      # none, or a few columns that several sets share (score_surprise alone)
        raise ValueError(f"{source}: its score columns {present} are not those of one label set; known: "
                         + "; ".join(f"{n}: {list(ls.score_columns)}" for n, ls in LABEL_SETS.items()))
    return fits[0]


def label_set_of_size(k: int) -> LabelSet:
    """The label set of ``k`` classes of an ICE-GAN checkpoint written before checkpoints recorded their class names
    (``model.classes``): one of :data:`UNNAMED_GENERATOR_SETS`, 3 → ``megc2019``, 5 → ``casme2_5`` (``samm_5`` came
    after, and its generators name their classes).

    Raises:
        ValueError: none of those sets has ``k`` classes.
    """
    fits = [LABEL_SETS[n] for n in UNNAMED_GENERATOR_SETS if LABEL_SETS[n].n_classes == k]
    if len(fits) != 1:
        raise ValueError(f"no label set of a generator without class names has {k} classes; known: "
                         + "; ".join(f"{n}: {LABEL_SETS[n].n_classes}" for n in UNNAMED_GENERATOR_SETS))
    return fits[0]


def emotion_class_counts(emotions: Iterable[str], dataset: str) -> dict[str, dict]:
    """How the sheet emotions ``emotions`` of ``dataset``'s clips fall into each label set of that dataset's classes
    (``casme2_5`` for ``casme2``, ``samm_5`` for ``samm``; none for a dataset without one), a clip's class being its
    emotion (any case and spacing), as :func:`manifest_labels` reads it.

    Returns:
        ``{set name: {"classes": {class: n} in id order, "no_class": {emotion: n} sorted by emotion}}``.
    """
    from collections import Counter
    counts = Counter(str(e).strip().lower() for e in emotions)
    return {name: {"classes": {c: counts.get(c, 0) for c in ls.classes},
                   "no_class": {e: n for e, n in sorted(counts.items()) if e not in ls.classes}}
            for name, ls in LABEL_SETS.items() if dataset in ls.datasets}


def manifest_labels(manifest, label_set: LabelSet):
    """Each prepared clip's class id in ``label_set`` (-1: none), from the manifest column the set names.

    Args:
        manifest: a prepared manifest (:class:`icegan.data.prepare.PreparedDataset`), or any table with the column
            ``label_set.column`` and, for a set of some datasets only, ``dataset``.
        label_set: the set; its column holds ids (``class3``, ``class5``: -1 or an empty cell for none) or is
            ``emotion`` (the sheet's estimated emotion as a class name, any case and spacing; an emotion that is no
            class of the set, e.g. SAMM's fear for ``samm_5``, gives -1).

    Returns:
        (N,) int64 numpy array in ``-1..K-1``. A clip of a dataset outside ``label_set.datasets`` gets -1.

    Raises:
        ValueError: the manifest lacks the column (a cache of an older version: the message says to prepare again),
            or an id column holds a value outside ``-1..K-1``.
    """
    import numpy as np
    import pandas as pd
    if label_set.column not in manifest.columns:
        raise ValueError(f"the prepared manifest has no column {label_set.column!r}, which data.labels="
                         f"{label_set.name} reads; prepare the data again (delete its cache folder)")
    col = manifest[label_set.column]
    if label_set.column == "emotion":
        ids = {c: i for i, c in enumerate(label_set.classes)}
        out = col.astype(str).str.strip().str.lower().map(ids).fillna(-1).to_numpy(dtype=np.int64, copy=True)
    else:
        out = pd.to_numeric(col, errors="coerce").fillna(-1).to_numpy(dtype=np.int64, copy=True)
        bad = (out < -1) | (out >= label_set.n_classes)
        if bad.any():
            raise ValueError(f"prepared manifest column {label_set.column!r}: ids {sorted(set(out[bad].tolist()))} "
                             f"outside 0..{label_set.n_classes - 1} of data.labels={label_set.name}")
    if label_set.datasets and "dataset" in manifest.columns:
        out[~manifest["dataset"].astype(str).isin(label_set.datasets).to_numpy()] = -1
    return out
