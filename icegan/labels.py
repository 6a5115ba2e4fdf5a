"""Label sets: which classes a run recognises.

A label set names its classes in id order (id = position) and the column of a prepared manifest
(:mod:`icegan.data.prepare`) that holds each clip's id. Two are defined:

- ``megc2019`` (the default): negative 0, positive 1, surprise 2, the MEGC2019 composite classes
  (../shared/DESIGN.md, "Datasets and the MEGC2019 composite"; :mod:`icegan.data.composite`), for every dataset.
- ``casme2_5``: happiness 0, disgust 1, repression 2, surprise 3, others 4, the CASME II estimated-emotion
  classes of the usual single-dataset protocol (the coding sheet's emotion column; fear and sadness, 8 clips of 255,
  are left out). CASME II only: SAMM and SMIC clips have no such class.

A run's predictions.csv holds one score column per class, ``score_<class>`` (:func:`score_columns`); the label set
of a predictions file is read back from those columns (:func:`label_set_of_columns`), so the commands that read
runs (``icegan ensemble``, ``icegan compare``, nested selection) need no setting of their own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

__all__ = ["LabelSet", "LABEL_SETS", "DEFAULT_LABELS", "get_label_set", "score_columns", "label_set_of_columns",
           "label_set_of_classes", "label_set_of_size"]


@dataclass(frozen=True)
class LabelSet:
    """One label set.

    Attributes:
        name: its key (``labels=`` in a config).
        classes: class names in id order (K names, ids ``0..K-1``).
        column: the prepared-manifest column with each clip's id (empty cell: the clip has no class of this set).
        datasets: the datasets whose clips can carry these classes; empty = any dataset.
        title: one line for help texts and reports.
    """
    name: str
    classes: tuple[str, ...]
    column: str
    datasets: tuple[str, ...]
    title: str

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
                         ("casme2",), "CASME II 5 classes (happiness, disgust, repression, surprise, others)"),
}


def get_label_set(name: str) -> LabelSet:
    """The label set called ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    try:
        return LABEL_SETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown label set {name!r}: use one of {', '.join(LABEL_SETS)}") from None


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
    """The label set of a run's predictions, from its ``score_<class>`` columns: the one set whose score columns
    include every such column present. No score column at all gives the default set (``megc2019``: a table of
    predicted classes only).

    Args:
        columns: the column names of a predictions table. source: what to name in an error (a file path).

    Raises:
        ValueError: a score column that is no class of any label set, or columns of two label sets mixed.
    """
    present = [c for c in columns if str(c).startswith("score_")]
    if not present:
        return LABEL_SETS[DEFAULT_LABELS]
    fits = [ls for ls in LABEL_SETS.values() if set(present) <= set(ls.score_columns)]
    if not fits:
        raise ValueError(f"{source}: its score columns {present} are not those of one label set; known: "
                         + "; ".join(f"{n}: {list(ls.score_columns)}" for n, ls in LABEL_SETS.items()))
    return fits[0]


def label_set_of_size(k: int) -> LabelSet:
    """The label set of ``k`` classes, for a model that records only its number of outputs (an ICE-GAN generator's
    class condition): 3 → ``megc2019``, 5 → ``casme2_5``.

    Raises:
        ValueError: no label set, or more than one, has ``k`` classes.
    """
    fits = [ls for ls in LABEL_SETS.values() if ls.n_classes == k]
    if len(fits) != 1:
        raise ValueError(f"{'no' if not fits else 'more than one'} label set has {k} classes; known: "
                         + "; ".join(f"{n}: {ls.n_classes}" for n, ls in LABEL_SETS.items()))
    return fits[0]
