"""Your own precomputed flow features, listed in one CSV: ``icegan loso ... data.source=table data.table=FILE.csv``.

The table has one row per clip::

    dataset,subject,clip,label,path
    casme2,sub01,EP02_01f,positive,maps/sub01_EP02_01f.npy
    samm,006,006_1_2,0,maps/006_006_1_2.png

* ``subject``: the subject id; prefixed with ``<dataset>/`` unless it already is (``casme2/sub01``). LOSO folds are
  per prefixed subject. ``dataset`` may be left out when every subject is prefixed.
* ``clip``: the clip name (unique within its subject).
* ``label``: a class id 0..2 (``2.0``, as pandas writes ids in a column with a blank cell, is 2) or its name:
  ``negative`` 0, ``positive`` 1, ``surprise`` 2 (MEGC2019); with ``data.labels=casme2_5`` a CASME II class id 0..4 or
  its name: ``happiness`` 0, ``disgust`` 1, ``repression`` 2, ``surprise`` 3, ``others`` 4; with
  ``data.labels=samm_5`` a SAMM class id 0..4 or its name: ``anger`` 0, ``contempt`` 1, ``happiness`` 2, ``surprise``
  3, ``other`` 4 (:mod:`icegan.labels`). A label set of one dataset's classes reads labelled rows of that dataset only
  for training (``icegan loso``, ``icegan fit``); ``icegan predict`` reads a row of any dataset, unlabelled, or
  labelled with the name of one of the set's classes (a cross-dataset test: a CASME II ``happiness`` clip scored by a
  ``samm_5`` model).
* ``path``: the clip's features, relative to the CSV's folder or absolute (a leading ``~`` is the home folder):

  - ``.npy``: a float array (3, H, W) or (H, W, 3), channels u, v, optical strain;
  - ``.png`` / ``.jpg`` / ``.bmp``: an RGB image whose channels hold u, v, strain as 0..255 (divided by 255); an
    RGBA image only with an opaque alpha channel.

Every map must be square, all of one size (``data.size``, or any shared size with ``data.size=0``). The recognizers
expect each channel min–max normalised per clip to [0, 1], as the MEGC2019 maps are: the mirror augmentation turns u
into 1 − u, which is the negated flow only under that normalisation. Raw flow in pixels is therefore an error, unless
``data.normalize=minmax`` normalises each channel of each clip here (:func:`minmax_per_clip`). Every error names the
CSV line and the clip.

How the maps were made may be written beside the table as ``provenance.json`` (``icegan features`` writes it; for a
table you made, write it yourself)::

    {"flow": {"method": "tvl1"}, "faces": {"modes": ["raw"], "size": 128, "detector": "hog", "margin": 0.1,
     "refine": true}, "size": 28}

``icegan fit`` stores it in the model file and ``icegan predict`` warns when a table to score says otherwise
(:func:`icegan.saved_recognizer.maps_provenance`, :func:`~icegan.saved_recognizer.maps_differ`); without it nothing
is claimed either way. ``"real_motion_subjects": ["casme2/sub01", ...]`` (written by ``icegan features`` when the flow
weights learned from those subjects' real onset→apex frames, :func:`icegan.pipeline.real_motion_seen`): ``icegan
loso`` on the table warns and reports the run as not leak-free when it tests any of them.

torch is imported where tensors are made (:func:`minmax_per_clip`, :func:`load_table_features`), so reading a table's
cells and labels loads without it: :mod:`icegan.data.clip_list` (``icegan prepare``, ``icegan data check``) imports
its CSV helpers.
"""
from __future__ import annotations

import codecs
import csv as csv_module                # the module; `csv` names the table's path in the functions below
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Literal, Optional

import numpy as np
import pandas as pd
from PIL import Image

if TYPE_CHECKING:
    import torch

from flownet.io import not_utf8_csv, wide_text
from flownet.paths import expand_home
from flownet.user_numbers import whole_number_digits
from icegan.data.features import FeatureSet, dataset_name, keep_datasets, validate_samples
from icegan.labels import LABEL_SETS, get_label_set

__all__ = ["CLASS_NAMES", "parse_class_label", "read_csv_cells", "short_row_note", "read_feature_table",
           "load_table_features", "minmax_per_clip", "read_motion_subjects",
           "read_provenance", "UnrecordedIdsError", "unrecorded_ids", "table_sha256", "wide_text"]

log = logging.getLogger(__name__)

#: MEGC2019 class names accepted in the label column, and their ids
CLASS_NAMES = {"negative": 0, "positive": 1, "surprise": 2}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
#: column names (lower-cased) that a table without a ``label`` column may have meant as its labels (besides those
#: :func:`icegan.data.clip_list.meant_column` takes for ``label``: ``lable``, ``class_name``); ``y_true`` is the
#: label column of ``icegan predict``'s output, taken as meant only in a table with a ``path`` column (a predictions
#: file has none: :func:`_is_predictions_file`)
LABEL_LIKE_COLUMNS = ("emotion", "emotions", "class", "classes", "expression", "labels", "category",
                      "estimated emotion", "objective class", "y_true")
#: how far outside [0, 1] a map's value may lie (float rounding) and be clipped to it under data.normalize=none
RANGE_TOLERANCE = 1e-6
#: how far from 0 a channel's minimum, from 1 its maximum, may lie under data.normalize=none and pass for min–max
#: normalised per clip (the released maps span exactly 0..255; `icegan features` maps end near 0.99995)
NORMALISED_TOLERANCE = 0.01


def read_csv_cells(csv: Path) -> pd.DataFrame:
    """Every cell of a CSV table as a string (empty cells ``""``, nothing turned into NaN), column names stripped and
    lower-cased; blank lines are kept as rows of empty cells, so that row i is line i + 2 of the file (error messages
    name lines).

    A row with fewer fields than the header reads with empty cells at its end; ``raw.attrs["fields"]`` maps the CSV
    line of each such row to its number of fields and ``raw.attrs["width"]`` is the header's, so that a message
    about its empty cells can say that the row was cut short (:func:`short_row_note`).

    Raises:
        ValueError: the file is empty (0 bytes or only blank space) or not a readable CSV table (a row with more
            fields than the header, named by its line; bad encoding, UTF-16 or UTF-32 named as such, with or
            without a byte-order mark; NUL bytes in the first 4 KiB of otherwise UTF-8 text; an Excel
            workbook, an icegan model file (given for the table) or another zip archive, an OpenDocument (.ods) or
            Apple Numbers spreadsheet, a header separated by tabs or semicolons, as spreadsheets may save); the
            message names the file.
    """
    with open(csv, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PK\x03\x04"):
        raise ValueError(f"{csv}: {_zip_kind(csv)}")
    if head.startswith(b"\xd0\xcf\x11\xe0"):                   # .xls
        raise ValueError(f"{csv}: {_WORKBOOK}")
    wide = wide_text(head)
    if wide is not None:            # Excel's 'Unicode Text', PowerShell: not a binary file, though it holds 0 bytes
        raise ValueError(f"{csv}: {wide}, not UTF-8: save it as CSV UTF-8 (a spreadsheet's 'CSV UTF-8' format)")
    if b"\x00" in head:             # UTF-8 text never holds one; a binary file that is no UTF-8 is named below
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head)   # a character cut at the head's end is no error
        except UnicodeDecodeError:
            pass
        else:
            raise ValueError(f"{csv}: holds NUL bytes (byte {head.index(0)}): not a text CSV (a file padded with "
                             f"zeros when its writing stopped, or a binary file?); give the table as CSV UTF-8 text")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)     # a row longer than the header
            raw = pd.read_csv(csv, dtype=str, keep_default_na=False, skip_blank_lines=False, index_col=False)
        with open(csv, newline="", encoding="utf-8") as f:
            lengths = [len(row) for row in csv_module.reader(f)]
    except pd.errors.EmptyDataError:
        raise ValueError(f"{csv}: the file is empty (not even a header line); was it written completely?") from None
    except UnicodeDecodeError as exc:
        data = Path(csv).read_bytes()
        try:                # pandas counts from the chunk it decoded: the file's own first bad byte instead
            data.decode("utf-8")
        except UnicodeDecodeError as whole:
            exc = whole
        if b"\x00" not in data[:4096]:                       # text in another encoding (a spreadsheet's CSV)
            raise not_utf8_csv(csv, exc) from None
        raise ValueError(f"{csv}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}): is it "
                         f"an image, a workbook or another binary file? Give the feature table, a CSV file") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, csv_module.Error) as exc:
        long = _first_long_row(csv)
        if long is not None:        # pandas names no line when it is the first data row
            line, n, width = long
            raise ValueError(f"{csv}: not a readable CSV table: line {line} has {n} fields, the header {width} (a "
                             f"comma in a cell not in quotes, a cell past the last column?); quote that cell, remove "
                             f"the surplus field or name its column in the header") from None
        raise ValueError(f"{csv}: not a readable CSV table (a row with more fields than the header?): {exc}") from None
    width = lengths[0] if lengths else 0
    if width == 1:
        sep = next((c for c in ("\t", ";") if c in str(raw.columns[0])), None)
        if sep is not None:
            raise ValueError(f"{csv}: its header has no comma but {'tabs' if sep == chr(9) else 'semicolons'} "
                             f"({str(raw.columns[0])[:60]!r}): save the table comma-separated (CSV)")
    raw.attrs["width"] = width
    raw.attrs["fields"] = {i + 1: n for i, n in enumerate(lengths) if 0 < n < width}      # blank lines have 0
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    return raw


def _first_long_row(csv: Path) -> Optional[tuple[int, int, int]]:
    """``(line, fields, header fields)`` of the first row of UTF-8 CSV ``csv`` with more fields than its header
    (line numbers of the file, 1 = the header), or None when there is none or the file cannot be read so."""
    try:
        with open(csv, newline="", encoding="utf-8") as f:
            rows = csv_module.reader(f)
            width = len(next(rows, []))
            for row in rows:
                if len(row) > width:
                    return rows.line_num, len(row), width
    except (OSError, UnicodeDecodeError, csv_module.Error):
        return None
    return None


def _spreadsheet(kind: str) -> str:
    """What to do with the spreadsheet file of ``kind`` (``"an Excel workbook"``) given for a CSV table."""
    return f"{kind}, not a CSV table: save the sheet as CSV (comma-separated values) and give that file"


_WORKBOOK = _spreadsheet("an Excel workbook")


def _zip_kind(path: Path) -> str:
    """What the zip file ``path`` given for a CSV table is, and what to give instead: a spreadsheet to save as CSV
    (an Excel workbook, .xlsx: it holds ``xl/``; an OpenDocument spreadsheet, .ods: ``mimetype`` and ``content.xml``;
    an Apple Numbers one, .numbers: ``Index/``), an icegan model file (:func:`icegan.saved_recognizer.is_model_file`:
    a torch file, e.g. the ``--model`` given as ``--table`` too), or another zip archive."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):                       # cut short or damaged: no names to tell by
        names = []
    if any(n.startswith("xl/") for n in names):
        return _WORKBOOK
    if "mimetype" in names and "content.xml" in names:
        return _spreadsheet("an OpenDocument spreadsheet (.ods)")
    if any(n.startswith("Index/") for n in names):
        return _spreadsheet("an Apple Numbers spreadsheet (.numbers)")
    from icegan.saved_recognizer import is_model_file           # imports torch: only for a zip
    if is_model_file(path):
        return ("an icegan model file (written by `icegan fit`; icegan predict takes it as --model), not a CSV table: "
                "--table (and data.table) take the feature table of the clips, a CSV such as the features.csv of "
                "`icegan features`")
    return "a zip archive, not a CSV table: give the CSV file itself (unzipped), not an archive or a torch file"


def short_row_note(raw: pd.DataFrame, line: int) -> str:
    """`` (the line has K of the header's M fields: a row cut short or a missing comma?)`` when CSV line ``line`` of a
    :func:`read_csv_cells` table had fewer fields than its header, else ``""``."""
    n = raw.attrs.get("fields", {}).get(line)
    return "" if n is None else (f" (the line has {n} of the header's {raw.attrs['width']} fields: a row cut short "
                                 f"or a missing comma?)")


def parse_class_label(text: str, where: str, allow_empty: bool = False, labels: str = "megc2019",
                      suggest_labels: bool = True, dataset: Optional[str] = None,
                      model_labels: bool = False) -> Optional[int]:
    """A class written in a CSV cell: a name of the label set ``labels`` (:mod:`icegan.labels`; MEGC2019:
    ``negative``, ``positive``, ``surprise``; any case) or an id 0..K-1 (ASCII digits, optionally with a zero
    fraction as pandas writes a column holding a blank cell: ``2.0``;
    :func:`~flownet.user_numbers.whole_number_digits`) → the id; an empty cell → None when ``allow_empty``.

    ``suggest_labels``: name the ``data.labels`` setting that reads a label of another set (False where no such
    setting applies: a clip list's labels are MEGC2019 classes). ``dataset``: the row's dataset, when known; a set of
    other datasets' classes is then not suggested (``disgust`` in a SAMM row is no CASME II class), and SAMM's
    ``other`` / CASME II's ``others`` written in the other's spelling is named as such. ``model_labels``: the label
    set is a saved model's (``icegan predict``, which has no ``data.labels``): the hint names a model of the other set,
    ``icegan fit ... data.labels=NAME``, instead of the setting.

    Raises:
        ValueError: anything else (``where`` names the file, line and clip; a name of another label set is named with
            the ``data.labels`` setting that reads it, or with ``model_labels`` a model of that set), or an unknown
            label set.
    """
    label = str(text).strip()
    if not label and allow_empty:
        return None
    if labels != "megc2019":
        ls = get_label_set(labels)
        if label.lower() in ls.classes:
            return ls.classes.index(label.lower())
        digits = whole_number_digits(label)
        if digits is not None and int(digits) < ls.n_classes:
            return int(digits)
        other = [n for n, o in LABEL_SETS.items() if n != labels and label.lower() in o.classes
                 and _may_hold(o, dataset)]
        hint = f"; {label!r} is a class of the label set {other[0]}: {_use_labels(other[0], model_labels)}" \
            if other else ""
        spelt = _respelt(label, ls)
        if spelt:
            hint = f"; {ls.name}'s class is written {spelt!r}{hint}"
        raise ValueError(f"{where}: label {text!r} is neither {'empty, ' if allow_empty else ''}a class id "
                         f"0..{ls.n_classes - 1} nor one of {list(ls.classes)} (data.labels={labels}){hint}")
    if label.lower() in CLASS_NAMES:
        return CLASS_NAMES[label.lower()]
    digits = whole_number_digits(label)
    if digits in ("0", "1", "2"):
        return int(digits)
    names = sorted(CLASS_NAMES, key=CLASS_NAMES.get)
    from .composite import CASME2_TO_CLASS3, SAMM_TO_CLASS3
    emotion = {**CASME2_TO_CLASS3, **SAMM_TO_CLASS3}.get(label.lower())
    hint = ""
    if emotion is not None:             # an emotion of the coding sheets, not yet mapped to its class
        hint = f"; {label!r} is an emotion: its MEGC2019 composite class is {emotion!r}"
    elif label.lower() in ("other", "others"):
        hint = f"; {label!r} is no class of the MEGC2019 composite, which leaves such clips out"
    if suggest_labels:
        for name, other in LABEL_SETS.items():
            if name != "megc2019" and label.lower() in other.classes and _may_hold(other, dataset):
                hint += (f"; or, {label!r} being a class of {other.title}, score a table of those with a model of "
                         f"that label set (`icegan fit ... data.labels={name}`)" if model_labels else
                         f"; or, {label!r} being a class of {other.title}, set data.labels={name} for a table of those")
    raise ValueError(f"{where}: label {text!r} is neither {'empty, ' if allow_empty else ''}a class id 0..2 nor one "
                     f"of {names}{hint}")


def _use_labels(name: str, model_labels: bool) -> str:
    """What reads labels of the label set ``name``: the ``data.labels`` setting, or (``model_labels``: the set is a
    saved model's, as in ``icegan predict``) a model of that set."""
    if model_labels:
        return f"score it with a model of that label set (`icegan fit ... data.labels={name}`)"
    return f"set data.labels={name}"


def _respelt(label: str, label_set) -> Optional[str]:
    """``label_set``'s spelling of ``label`` when it is the other dataset's (SAMM's sheet says 'Other', CASME II's
    'others'; any case), or None."""
    spelt = {"other": "others", "others": "other"}.get(label.lower())
    return spelt if spelt in label_set.classes else None


def _may_hold(label_set, dataset: Optional[str]) -> bool:
    """Whether a clip of ``dataset`` (None: unknown) can carry a class of ``label_set`` (its ``datasets``)."""
    return dataset is None or not label_set.datasets or dataset in label_set.datasets


def read_feature_table(csv: str | Path, datasets: Optional[Iterable[str]] = None,
                       labelled: bool = True, labels: str = "megc2019", bare_ids: bool = False) -> pd.DataFrame:
    """Read and check a feature table (the module docstring gives its columns); the maps are not opened here.

    Args:
        csv: the table's path.
        datasets: keep only these datasets; None keeps all.
        labelled: True (training, LOSO): every row needs a label, and under a label set of one dataset's classes
            every row is of that dataset. False (``icegan predict`` on new clips): the label column may be left out
            (a warning, logging, names a column headed like one, e.g. ``emotion``, ``class``, ``y_true`` beside a
            ``path`` column, or a near misspelling such as ``lable``: the label column is ``label``) and a label cell
            left empty; such clips get the label -1 (unknown); a row of another dataset than such a set's is read
            when its label is the name of one of the set's classes (:func:`_cross_dataset_label`).
        labels: the label set of the label column (:mod:`icegan.labels`; :func:`parse_class_label`); with
            ``labelled`` False, a model's (``icegan predict``): a label of another set is then refused, with a hint
            to score the table with a model of that set (``icegan fit ... data.labels=NAME``) where that set may
            hold the row's dataset (:func:`parse_class_label`), never one to set ``data.labels``; and, for a set
            other than MEGC2019, a bare class id is refused unless the table's ``provenance.json`` records the set of
            its ids (bare ids are most often MEGC2019's: :func:`_unrecorded_id`) or ``bare_ids`` is True.
        bare_ids: with ``labelled`` False, read the bare class ids of a table whose ``provenance.json`` records no
            label set as ids of ``labels``, as training read them: the model was fitted on a table of such ids (its
            training record's ``bare_ids_of``, :func:`unrecorded_ids`). Default False: refused as above.

    Returns:
        DataFrame with columns dataset, subject (prefixed), clip, label (int64 0..K-1, or -1 unknown when
        ``labelled`` is False), path (absolute), line (the CSV line of the row), relative (whether the cell gave
        a path relative to the CSV's folder), in file order.

    Raises:
        FileNotFoundError: the CSV is missing.
        ValueError: a missing column (a label-like column's name is said; a predictions file of ``icegan predict``
            / ``icegan loso`` is named as one, with the table to give), an empty cell, an unusable dataset
            name, a subject prefixed with another dataset, a label that is neither 0..2 nor a class name, a
            duplicated clip, a requested dataset the table does not hold, a labelled row of another dataset than
            the label set's (``samm_5``: SAMM clips; with ``labelled`` False, only one whose label is no class name
            of the set), with ``labelled`` False a bare id of no recorded set read as one of a set other than
            MEGC2019 (:class:`UnrecordedIdsError`); each names the CSV line and clip.
    """
    csv = Path(csv)
    if not csv.is_file():
        raise FileNotFoundError(f"feature table not found: {csv} (data.table)")
    raw = read_csv_cells(csv)
    raw = raw[(raw != "").any(axis=1)]
    like = None
    if "label" not in raw.columns:
        from icegan.data.clip_list import meant_column      # clip_list imports this module
        like = next((c for c in raw.columns if (c in LABEL_LIKE_COLUMNS and (c != "y_true" or "path" in raw.columns))
                     or meant_column(c) == "label"), None)
    like = "" if like is None else (f"its column '{like}' looks like the labels, but the label column is 'label': "
                                    f"rename it 'label'")
    if not labelled and "label" not in raw.columns:
        if like:            # the clips would be scored unlabelled, without UF1 / UAR, and nothing said
            log.warning("%s: no label column, so its clips are scored without labels; %s to have them scored "
                        "against their labels", csv, like)
        raw["label"] = ""
    need = ["subject", "clip", "label", "path"]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        from icegan.data.clip_list import CLIP_LIST_COLUMNS
        hint = ""
        import shlex

        from icegan.config import override_text
        if all(c in raw.columns for c in CLIP_LIST_COLUMNS[0]):      # frames and onsets: a clip list, not maps
            hint = (" This is a clip list (frames, onset): compute its maps first with `icegan features --config "
                    "CONFIG --clips " + shlex.quote(str(csv)) + "`, then give the feature table it writes.")
        elif {"sub", "filename_o"} <= set(raw.columns):     # the MEGC2019 release's own list of its maps
            root = shlex.quote(override_text("data.root", str(csv.parent)))     # as typed: a '#' or space kept whole
            hint = (f" This is the MEGC2019 release's list of the composite (sub, filename_o): icegan loso and icegan "
                    f"fit read it with data.source=megc2019_htnet {root}; a feature table lists "
                    f"its maps, e.g. path flow_uvos_28/<sub>_<filename_o> .png (the release's space before .png).")
        elif _is_predictions_file(raw.columns):
            hint = (" This is a predictions file of `icegan predict` / `icegan loso` (y_pred, score_* columns, no "
                    "path to the maps): give the features.csv that `icegan features` writes, the maps of the clips.")
        elif like:
            hint = f" {like[0].upper()}{like[1:]}."
        label = "label (optional here), " if not labelled else "label, "
        raise ValueError(f"{csv}: missing column(s) {missing}; found {list(raw.columns)} (a feature table needs "
                         f"dataset, subject, clip, {label}path; dataset may be left out when every subject is "
                         f"'dataset/subject').{hint}")
    if raw.empty:
        raise ValueError(f"{csv}: no rows")
    unrecorded = _check_exported_label_set(csv, raw["label"], labels, model_labels=not labelled)
    # ids a model of another set would misread; not those of a model trained on bare ids of its set (bare_ids)
    unrecorded = unrecorded and not labelled and labels != "megc2019" and not bare_ids
    has_dataset = "dataset" in raw.columns
    ls = get_label_set(labels)
    datasets = None if datasets is None else list(datasets)
    wanted = None if datasets is None else {dataset_name(d) or str(d) for d in datasets}
    rows = []
    for i, r in raw.iterrows():
        line = int(i) + 2
        clip = r["clip"].strip()
        where = f"{csv}, line {line} (clip '{clip}')"
        empty = [c for c in need + (["dataset"] if has_dataset else []) if not r[c].strip()
                 and (labelled or c != "label")]
        if empty:
            hint = short_row_note(raw, line) or ((
                " (a clip without a label can be scored by `icegan predict`, not trained or tested on: leave it "
                "out of this table; `icegan features` writes its labelled clips alone to features_labelled.csv)"
            ) if "label" in empty else "")
            raise ValueError(f"{where}: empty {', '.join(empty)}{hint}")
        subject = r["subject"].strip()
        prefix, slash, rest = subject.partition("/")
        given = r["dataset"].strip() if has_dataset else ""
        if not slash and not given:
            raise ValueError(f"{where}: subject '{subject}' has no dataset; add a dataset column or write the subject "
                             f"as 'dataset/{subject}'")
        ds = dataset_name(prefix if slash else given)
        if ds is None:
            raise ValueError(f"{where}: dataset name '{prefix if slash else given}' is not usable; give a short name "
                             f"of letters, digits, '_' or '-'")
        if slash and given and dataset_name(given) != ds:
            raise ValueError(f"{where}: subject '{subject}' is prefixed with '{prefix}' but the dataset column says "
                             f"'{given}'")
        if wanted is not None and ds not in wanted:
            label = -1          # a row data.datasets leaves out: its label (maybe of its own dataset's set) is not read
        elif ls.datasets and ds not in ls.datasets and r["label"].strip():
            # e.g. a SAMM clip read with CASME II's five classes: no such class in its sheet. Training refuses it (a
            # fold of the set's protocol holds its dataset's clips only); icegan predict scores it when its label
            # names a class of the set (a cross-dataset test), and any unlabelled clip (your own recordings)
            own = [n for n, o in LABEL_SETS.items() if n != labels and ds in o.datasets]
            own = f" (data.labels={own[0]})" if own else ""
            if not labelled:
                label = _cross_dataset_label(r["label"], where, ds, ls, own)
            else:
                raise ValueError(f"{where}: a {ds} clip, but data.labels={labels} ({ls.title}) is of "
                                 f"{', '.join(ls.datasets)} clips only; keep those with data.datasets="
                                 f"[{', '.join(ls.datasets)}] or use the label set of its dataset{own}")
        else:
            if unrecorded and whole_number_digits(r["label"].strip()) is not None:
                raise _unrecorded_id(where, r["label"], csv, labels)
            label = parse_class_label(r["label"], where, allow_empty=not labelled, labels=labels, dataset=ds,
                                      model_labels=not labelled)
            label = -1 if label is None else label
        path = Path(expand_home(r["path"].strip(), f"{where}: path"))      # ~ as in a config (no shell reads it)
        rows.append({"dataset": ds, "subject": f"{ds}/{rest if slash else subject}", "clip": clip, "label": label,
                     "path": str(path if path.is_absolute() else (csv.parent / path)), "line": line,
                     "relative": not path.is_absolute()})
    table = keep_datasets(pd.DataFrame(rows), datasets, csv)
    dup = table.duplicated(["subject", "clip"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValueError(f"{csv}, line {table['line'][i]}: clip '{table['clip'][i]}' of subject "
                         f"'{table['subject'][i]}' appears twice")
    return validate_samples(table, ls.n_classes, source=str(csv), unlabelled=not labelled)


def _is_predictions_file(columns: Iterable[str]) -> bool:
    """Whether a table of the (lower-cased) ``columns`` is a ``predictions.csv`` of ``icegan predict`` / ``icegan
    loso`` (a ``y_pred`` or ``score_*`` column and no ``path``), not a feature table."""
    columns = list(columns)
    return "path" not in columns and any(c == "y_pred" or c.startswith("score_") for c in columns)


def _cross_dataset_label(text: str, where: str, dataset: str, label_set, own: str) -> int:
    """The id of the label ``text`` of a row of ``dataset``, a dataset outside ``label_set.datasets``, scored by
    ``icegan predict`` (a cross-dataset test): the label must name one of the set's classes (any case). An id is not
    read there: in a row of another dataset it may be an id of that dataset's own set (CASME II's 1 is disgust, SAMM's
    1 contempt). ``own``: `` (data.labels=NAME)`` of the dataset's own set, or empty.

    Raises:
        ValueError: any other label (names the line, the clip, the label and the set's classes, and what to do).
    """
    label = str(text).strip()
    if label.lower() in label_set.classes:
        return label_set.classes.index(label.lower())
    why = ("an id is not read in a row of another dataset (it may be an id of its own dataset's classes): write the "
           "class name" if whole_number_digits(label) is not None else "no class of those")
    spelt = _respelt(label, label_set)
    spelt = f" ({label_set.name}'s class is written {spelt!r})" if spelt else ""
    raise ValueError(f"{where}: a {dataset} clip labelled {text!r}, read with the classes of {label_set.name} "
                     f"{list(label_set.classes)} ({', '.join(label_set.datasets)} clips' classes): {why}{spelt}; a "
                     f"clip of another dataset is scored as a cross-dataset test when its label names one of those "
                     f"classes; empty its label cell to have it scored without a label, or score it with a model of "
                     f"its dataset's label set{own}")


def _check_exported_label_set(csv: Path, cells: pd.Series, labels: str, model_labels: bool = False) -> bool:
    """Refuse class ids of another label set: a table written by ``icegan features`` (its ``provenance.json``
    beside it records ``labels``; before label sets, MEGC2019's) holds ids of that set, and read as ``labels`` an id
    would name another class (MEGC2019's 1, positive, as CASME II's 1, disgust). Names are not checked here: they
    say their set themselves (:func:`parse_class_label`). ``model_labels``: ``labels`` is a saved model's (``icegan
    predict``): the hint names a model of the table's set instead of the setting.

    Returns:
        Whether the table holds id cells whose label set no ``provenance.json`` records (none beside it, a damaged
        one, or one not written by ``icegan features``); :func:`read_feature_table` then refuses, for a model of a
        label set other than MEGC2019, the first id it would read (:func:`_unrecorded_id`).

    Raises:
        ValueError: an id cell in a table whose ``provenance.json`` records another label set (names both files and
            the ``data.labels`` to set, or with ``model_labels`` the model to score it with).
    """
    prov = csv.parent / "provenance.json"
    ids, info = _ids_and_their_record(cells, lambda: read_provenance(csv, "the label set of its class ids"))
    if not ids or info is None:                 # no id; or no record: none, damaged (warned), or not `icegan features`'
        return ids
    written = info.get("labels") or "megc2019"
    if written != labels:
        raise ValueError(f"{csv}: its labels are class ids of the label set {written} ({prov} records data.labels: "
                         f"{written}, as `icegan features` wrote the table), not of {labels}: read as {labels}, an id "
                         f"would name another class; {_use_labels(written, model_labels)}, or write the table again "
                         f"with data.labels={labels}")
    return False


def unrecorded_ids(csv: str | Path) -> bool:
    """Whether the feature table ``csv`` (a readable CSV) holds bare class ids (a label cell of ASCII digits, or
    ``2.0``) whose label set no ``provenance.json`` beside it records (none, a damaged one, or one not written by
    ``icegan features``): ``icegan fit`` records it (``bare_ids_of``), so that ``icegan predict`` reads such ids with
    the model as fit read them (:func:`read_feature_table`'s ``bare_ids``). False without a label column."""
    raw = read_csv_cells(Path(csv))
    if "label" not in raw.columns:
        return False
    prov = Path(csv).parent / "provenance.json"
    ids, info = _ids_and_their_record(raw["label"],     # quiet: the table's read warned already
                                      lambda: _parse_provenance(prov)[0] if prov.is_file() else None)
    return ids and info is None


def _ids_and_their_record(cells: pd.Series, provenance: Callable[[], Optional[dict]]) -> tuple[bool, Optional[dict]]:
    """(whether the label cells ``cells`` hold a bare class id, a cell of ASCII digits once stripped, or ``2.0``
    (:func:`~flownet.user_numbers.whole_number_digits`); the provenance.json that records their label set:
    ``provenance()``'s, called only when there is an id, where it is the one ``icegan features`` writes (it has
    ``flow``), else None) for :func:`_check_exported_label_set` and :func:`unrecorded_ids`."""
    if not cells.map(lambda c: whole_number_digits(str(c).strip()) is not None).any():
        return False, None
    info = provenance()
    return True, (info if info is not None and "flow" in info else None)


def table_sha256(csv: str | Path) -> str:
    """SHA-256 (hex) of the bytes of the feature table ``csv``: ``icegan fit`` records it with ``bare_ids_of`` so that
    ``icegan predict`` reads bare ids as the model's set only in that very table (the same content). Any file's
    bytes alike: ``icegan fit`` records each training map file's (``map_sha256``), so that ``icegan predict`` knows
    its own training maps under other dataset, subject or clip names.

    Raises:
        OSError: the file cannot be read."""
    return hashlib.sha256(Path(csv).read_bytes()).hexdigest()


def _unrecorded_id(where: str, text: str, csv: Path, labels: str) -> "UnrecordedIdsError":
    """The refusal of the bare class id ``text`` (at ``where``: file, line, clip) in a table scored by ``icegan
    predict`` with a model of the label set ``labels`` (not MEGC2019) when no ``provenance.json`` records the set of
    the table's ids: a table's bare ids are most often MEGC2019's (the composite's, a clip list's), and the model would
    read MEGC2019's 0 (negative) as its own class 0 (CASME II's happiness). Names the set the ids would be read as,
    the tables whose ids are read as that set's (the one a model was fitted on, by its ``table_sha256``, or one whose
    provenance.json records the set) and asks for its class names."""
    ls = get_label_set(labels)
    return UnrecordedIdsError(
        f"{where}: label {str(text).strip()!r} is a bare class id, and no provenance.json beside {csv.name} (as "
        f"`icegan features` writes) records the label set of its ids: icegan predict would read it as an id of the "
        f"model's label set {labels} (" + ", ".join(f"{k} {c}" for k, c in enumerate(ls.classes))
        + "), while bare ids are most often MEGC2019's (0 negative, 1 positive, 2 surprise); bare ids are read as "
        f"ids of {labels} only in the table a model was fitted on (the same content) or in a table whose "
        f"provenance.json records {labels}; write the class names of {labels} ({', '.join(ls.classes)}) in the label "
        f"column instead of ids, or leave a cell empty for a clip of unknown class")


class UnrecordedIdsError(ValueError):
    """Bare class ids in a table scored by a model of a label set other than MEGC2019, with no ``provenance.json``
    recording the set of the ids (:func:`_check_exported_label_set`)."""


def _parse_provenance(prov: Path) -> tuple[Optional[dict], str, Optional[dict]]:
    """``(info, why, obj)`` of a provenance.json: ``info`` the whole object when every field can be used, else None
    with ``why`` the cause; ``obj`` the JSON object even when a field is bad (None when not a JSON object)."""
    try:
        info = json.loads(prov.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:        # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None, f"{type(exc).__name__}: {str(exc).strip()}", None
    if not isinstance(info, dict):
        return None, f"not a JSON object but a {type(info).__name__}", None
    bad = [f"'{k}' is not an object" for k in ("flow", "weights", "faces")
           if info.get(k) is not None and not isinstance(info[k], dict)]
    if info.get("labels") is not None and not isinstance(info["labels"], str):
        bad.append("'labels' is not a label set's name")
    if not _motion_ok(info.get("real_motion_subjects")):
        bad.append("'real_motion_subjects' is not a list of subject ids")
    return (None if bad else info), ", ".join(bad), info


def _motion_ok(motion) -> bool:
    """Whether a ``real_motion_subjects`` value can be used: absent (None) or a list of subject ids."""
    return motion is None or (isinstance(motion, list) and all(isinstance(x, str) for x in motion))


def read_provenance(table: str | Path, unchecked: str) -> Optional[dict]:
    """The ``provenance.json`` beside the feature table ``table``: how its maps were made (module docstring;
    ``icegan features`` writes it), as a dict.

    Args:
        table: the feature table's path (the CSV); the file read is ``provenance.json`` in its folder.
        unchecked: what goes unchecked when the file cannot be used, for the warning (e.g. ``"the label set of its
            class ids"``).

    Returns:
        The JSON object; None when there is no such file, or when it cannot be used: not JSON (cut short by a kill
        of a version that wrote it in place, edited), not a JSON object, or one whose ``flow``, ``weights`` or
        ``faces`` is not an object, whose ``labels`` is not a name or whose ``real_motion_subjects`` is not a list
        of subject ids. Then a warning (logging) names the file, the
        cause, what goes unchecked and what to do: write the table again with ``icegan features`` into a new
        folder, or mend or remove the file (:func:`read_motion_subjects` reads the ``real_motion_subjects`` record
        of a file bad in another field, and warns on its own when the record itself cannot be read).
    """
    prov = Path(table).parent / "provenance.json"
    if not prov.is_file():
        return None
    info, why, _ = _parse_provenance(prov)
    if info is not None:
        return info
    log.warning("%s cannot be read (%s): it looks cut short or edited, and %s is not checked; write the table "
                "again with `icegan features --config %s --out NEW_FOLDER`, or mend or remove the file (one you "
                "write yourself: a JSON object as icegan.data.feature_table describes)", prov, why, unchecked,
                prov.parent / "config.yaml")
    return None


def read_motion_subjects(table: str | Path) -> list[str]:
    """The ``real_motion_subjects`` of the ``provenance.json`` beside the feature table ``table`` (module docstring):
    subjects whose real onset→apex frames trained the flow network of its maps; ``[]`` without the file or the key.

    The record is read even when another field of the file is bad (:func:`read_provenance` warns about those): a bad
    ``labels`` or ``flow`` does not hide the motion a run's flow has seen. A file that is not a JSON object, or a
    record that is not a list of subject ids, gives ``[]`` and a warning that names the file and says that a LOSO
    run on the table is reported as leak-free without that record.
    """
    prov = Path(table).parent / "provenance.json"
    if not prov.is_file():
        return []
    _, why, obj = _parse_provenance(prov)
    motion = (obj or {}).get("real_motion_subjects")
    if obj is not None and _motion_ok(motion):
        return list(motion or [])
    log.warning("%s: its real_motion_subjects cannot be read (%s): which subjects' real motion trained the flow "
                "network of its maps is not checked, and a LOSO run on the table is reported as leak-free without "
                "that record; write the table again with `icegan features --config %s --out NEW_FOLDER`, or mend the "
                "file", prov, why if obj is None else "'real_motion_subjects' is not a list of subject ids",
                prov.parent / "config.yaml")
    return []


def _read_map(path: str, where: str, folder: Optional[Path] = None) -> np.ndarray:
    """One clip's features as float32 (3, H, W); ``folder``: the CSV's folder, which relative paths start from.

    Raises:
        FileNotFoundError: the file is missing (a path the CSV gave relative, in ``folder``, says that paths are relative to it, and one
            holding a backslash that / is the separator).
        ValueError: the path is a folder, or the file is empty, unreadable, an .npz archive under a .npy name, of an
            unknown type, of a wrong shape or dtype, holds NaN/Inf or is not square (``where`` names the CSV line and
            the clip, then the map file).
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{where}: {p} is a folder, not a features file (.npy or an image)")
    if not p.is_file():
        note = ""
        if folder is not None:              # given for a relative cell only: p is folder / cell
            note = f"; paths are relative to the CSV's folder ({folder if folder.parts else folder.absolute()})"
        if "\\" in str(p):                  # a Windows path (maps\x.npy) read on Linux or macOS: one file name
            note += "; use / as the separator"
        raise FileNotFoundError(f"{where}: features file not found: {p}{note}")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(6)
        # 0 bytes (np.load: EOFError) or cut inside the 6-byte magic string (np.load: "pickled data")
        if size == 0 or (len(head) < 6 and b"\x93NUMPY".startswith(head)):
            raise ValueError(f"{where}: {p} is {'empty (0 bytes)' if size == 0 else f'cut short ({size} bytes)'}; "
                             f"the map was not written completely: write it again with numpy.save")
        try:
            a = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            if "pickle" in str(exc).lower():    # object arrays, pickles, other files: never loaded unsafely here
                raise ValueError(f"{where}: {p} is not a plain numeric .npy map (it holds pickled Python objects or "
                                 f"is another kind of file); write the map with numpy.save of a float array (3, H, W) "
                                 f"or (H, W, 3)") from None
            raise ValueError(f"{where}: {p} cannot be read as a NumPy array: {exc}") from None
        if not isinstance(a, np.ndarray):       # np.savez's zip archive under a .npy name: np.load gives an NpzFile
            a.close()
            raise ValueError(f"{where}: {p} is an .npz archive, not one array: save one array with numpy.save "
                             f"(a float array (3, H, W) or (H, W, 3))")
        if a.ndim == 3 and a.shape[0] == 3:
            pass
        elif a.ndim == 3 and a.shape[-1] == 3:
            a = a.transpose(2, 0, 1)
        else:
            raise ValueError(f"{where}: {p} holds an array of shape {a.shape}; expected (3, H, W) or (H, W, 3): "
                             f"u, v, optical strain")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(f"{where}: {p} holds {a.dtype} values; expected real numbers")
        a = a.astype(np.float32)
    elif suffix in IMAGE_SUFFIXES:
        try:
            with Image.open(p) as im:   # as stored, EXIF orientation ignored: turning maps would not turn (u, v)
                if im.mode not in ("RGB", "RGBA"):
                    raise ValueError(f"{where}: {p} is a {im.mode}-mode image; expected RGB whose channels hold u, v "
                                     f"and optical strain")
                alpha_min = im.getextrema()[3][0] if im.mode == "RGBA" else 255
                if alpha_min < 255:
                    # an opaque alpha channel (as many tools write) carries nothing; a transparent pixel's colour
                    # may not be its map value
                    raise ValueError(f"{where}: {p} is an RGBA image with transparent pixels (alpha down to "
                                     f"{alpha_min}); its alpha channel would be dropped: save the u, v, "
                                     f"strain maps as an RGB image")
                a = np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0
        except OSError as exc:
            raise ValueError(f"{where}: {p} cannot be read as an image: {exc}") from None
    else:
        raise ValueError(f"{where}: {p}: unknown features file type '{p.suffix}'; use .npy or "
                         f"{', '.join(IMAGE_SUFFIXES)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: {p} contains NaN or Inf")
    if a.shape[1] != a.shape[2]:
        raise ValueError(f"{where}: {p} is {a.shape[2]}×{a.shape[1]}; the maps must be square")
    return a


def minmax_per_clip(x: torch.Tensor) -> torch.Tensor:
    """Each channel of each clip min–max normalised to [0, 1], as the MEGC2019 maps are (a constant channel → 0.5).

    Args:
        x: (N, C, H, W) float features (e.g. flow in pixels and strain).

    Returns:
        (N, C, H, W) float32 in [0, 1].
    """
    import torch
    x = x.float()
    lo = x.amin(dim=(2, 3), keepdim=True)
    span = x.amax(dim=(2, 3), keepdim=True) - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-30), torch.full_like(x, 0.5))


def load_table_features(csv: str | Path, datasets: Optional[Iterable[str]] = None, size: Optional[int] = None,
                        normalize: Literal["none", "minmax"] = "none", labelled: bool = True,
                        labels: str = "megc2019", bare_ids: bool = False) -> FeatureSet:
    """Load the clips a feature table lists into memory.

    Args:
        csv: the table (:func:`read_feature_table`).
        datasets: keep only these datasets (None: all).
        size: expected side of every map in pixels; None accepts the first clip's side, which every other clip must
            then share.
        normalize: ``none`` keeps the values, which must lie in [0, 1] (values at most 1e-6 outside it, float
            rounding of a normalisation such as 1.0000001, are clipped to [0, 1]); clips with a non-constant
            channel whose minimum is above 0.01 or maximum below 0.99 (not min–max normalised per clip) are kept
            as they are, and one warning (logging) counts them and names the first; ``minmax`` normalises each channel
            of each clip to [0, 1] (:func:`minmax_per_clip`).
        labelled: False lets rows go without a label (-1), for scoring new clips (:func:`read_feature_table`).
        labels: the label set of the table's label column (:mod:`icegan.labels`).
        bare_ids: with ``labelled`` False, read bare ids of no recorded label set as ``labels``' ids
            (:func:`read_feature_table`).

    Returns:
        :class:`~icegan.data.features.FeatureSet`: samples (dataset, subject, clip, label, path) and features
        (N, 3, S, S) float32 in [0, 1].

    Raises:
        FileNotFoundError: the table or a clip's file is missing (names the line and clip).
        ValueError: as :func:`read_feature_table`; an unreadable file, a wrong shape or size, NaN/Inf, or (with
            ``normalize=none``) values more than 1e-6 outside [0, 1] (each names the line, the clip and the file).
    """
    import torch
    table = read_feature_table(csv, datasets, labelled=labelled, labels=labels, bare_ids=bare_ids)
    maps, unnormalised = [], []         # unnormalised: where each clip with a channel not spanning [0, 1] lies
    expected = ("data.size; data.size=0 takes the size of the table's maps, when all have one, and "
                "model.input_size resizes them for the recognizer")   # what set the size a map must have
    for path, clip, line, relative in zip(table["path"], table["clip"], table["line"], table["relative"]):
        where = f"{csv}, line {line} (clip '{clip}')"
        a = _read_map(path, where, Path(csv).parent if relative else None)   # an absolute cell: no relative hint
        if size is None:
            size = a.shape[-1]
            expected = (f"the side of the table's first map, line {line} (clip '{clip}', {path}): every map of a "
                        f"table must have one size")
        if a.shape[-1] != size:
            raise ValueError(f"{where}: {path} is {a.shape[-1]}×{a.shape[-1]}, expected {size}×{size} ({expected})")
        if normalize == "none" and (a.min() < 0 or a.max() > 1):
            if a.min() < -RANGE_TOLERANCE or a.max() > 1 + RANGE_TOLERANCE:
                raise ValueError(f"{where}: {path} holds values in [{a.min():.9g}, {a.max():.9g}]; the recognizers "
                                 f"expect each channel min–max normalised to [0, 1] per clip: set "
                                 f"data.normalize=minmax (or normalise the maps yourself)")
            a = np.clip(a, 0, 1)        # float rounding of a normalisation (1.0000001): a map in [0, 1] is kept as is
        if normalize == "none":
            lo, hi = a.min(axis=(1, 2)), a.max(axis=(1, 2))
            off = (hi > lo) & ((lo > NORMALISED_TOLERANCE) | (hi < 1 - NORMALISED_TOLERANCE))  # constant: 0.5
            if off.any():
                c = int(np.flatnonzero(off)[0])
                unnormalised.append(f"line {line} (clip '{clip}'): {path}, channel {c} spans [{lo[c]:.4g}, {hi[c]:.4g}]")
        maps.append(a)
    if unnormalised:        # scored as they are, but not as the recognizers were trained to see maps
        log.warning("%s: %d of %d clips have a channel not min–max normalised to [0, 1] per clip (first: %s); the "
                    "recognizers expect each channel of each clip spread over [0, 1], as the MEGC2019 maps are: set "
                    "data.normalize=minmax (icegan loso / fit) or give --normalize minmax (icegan predict) to "
                    "normalise them", csv, len(unnormalised), len(maps), unnormalised[0])
    x = torch.from_numpy(np.stack(maps))
    if normalize == "minmax":
        x = minmax_per_clip(x)
    return FeatureSet(table.drop(columns=["line", "relative"]), x, unlabelled=not labelled,
                      n_classes=get_label_set(labels).n_classes)
