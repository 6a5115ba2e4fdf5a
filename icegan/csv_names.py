"""Reading icegan's own CSV tables with their name columns as written.

``pd.read_csv`` turns the cells ``NA``, ``N/A``, ``NaN``, ``nan``, ``None``, ``null``, ``NULL``, ``<NA>``, ``#N/A``,
``n/a``, ``-nan``, ... into NaN in every column, even one read with ``dtype=str``: a subject named by its initials
``NA`` or a clip ``null`` lost its name when icegan read back its own predictions.csv, a prepared cache's
manifest.csv or the CASME II manifest. :func:`read_csv_names` reads the name columns as text as written (only an
empty cell is missing there) and every other column as ``pd.read_csv`` does.

:func:`csv_quoting` is the ``quoting`` for writing a table whose names may hold a carriage return: ``to_csv`` (and
``csv.writer``) with the default ``QUOTE_MINIMAL`` and a ``"\\n"`` line end leave a lone ``"\\r"`` unquoted, and every
reader then splits the row there.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import pandas as pd

#: the strings pd.read_csv reads as missing by default, as its documentation lists them (pandas 2.x)
DOCUMENTED_NA_VALUES = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                                  "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})
try:        # pandas' own set (a private module), the documented list where a pandas moved it
    from pandas._libs.parsers import STR_NA_VALUES
except ImportError:
    STR_NA_VALUES = DOCUMENTED_NA_VALUES

__all__ = ["csv_quoting", "read_csv_names"]


def read_csv_names(source: str | Path | io.StringIO, names: Sequence[str], **kwargs) -> pd.DataFrame:
    """``pd.read_csv(source, **kwargs)`` with the columns ``names`` (those of them the header has) read as ``str``
    and as written: ``NA``, ``None``, ``null``, ``nan``, ... stay names; only an empty cell there is missing (NaN),
    as before. The other columns read exactly as ``pd.read_csv`` reads them by default (numbers, and pandas' default
    missing-value strings as NaN). ``source``: a path, or a ``StringIO`` (read from its current position).

    Raises:
        as ``pd.read_csv`` (``EmptyDataError``, ``ParserError``, ``UnicodeDecodeError``, ``OSError``).
    """
    start = source.tell() if isinstance(source, io.StringIO) else None
    header = pd.read_csv(source, nrows=0, **{k: v for k, v in kwargs.items() if k != "dtype"}).columns
    if start is not None:
        source.seek(start)
    text = set(names)
    dtype = {**{c: str for c in header if c in text}, **kwargs.pop("dtype", {})}
    na = {c: ([""] if c in text else list(STR_NA_VALUES)) for c in header}
    return pd.read_csv(source, dtype=dtype, keep_default_na=False, na_values=na, **kwargs)


def csv_quoting(*cells) -> int:
    """``csv.QUOTE_ALL`` where a text cell of ``cells`` (DataFrames, with their column names, Series or iterables of
    rows/cells) holds a ``"\\r"``, else ``csv.QUOTE_MINIMAL`` (``to_csv``'s default: the bytes of tables of ordinary
    names are unchanged).
    A quoted ``"\\r"`` reads back as written (read the file with ``newline=""``, not in text mode's universal
    newlines, which turns ``"\\r\\n"`` and ``"\\r"`` into ``"\\n"``)."""
    def has_cr(v) -> bool:
        if isinstance(v, str):
            return "\r" in v
        if isinstance(v, pd.DataFrame):        # its header too: a column named after a label (inner_UF1[<label>])
            return has_cr([str(c) for c in v.columns]) or any(has_cr(v.iloc[:, i]) for i in range(v.shape[1]))
        if isinstance(v, pd.Series):       # object or (pandas 3) str columns; numbers hold no "\r"
            return not pd.api.types.is_numeric_dtype(v) and any(isinstance(x, str) and "\r" in x for x in v)
        if isinstance(v, (list, tuple)):
            return any(has_cr(x) for x in v)
        return False
    return csv.QUOTE_ALL if any(has_cr(c) for c in cells) else csv.QUOTE_MINIMAL
