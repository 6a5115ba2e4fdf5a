"""Numbers as a user types them on a command line: ASCII digits, finite. One rule for the ``icegan`` subcommands'
flags (:mod:`icegan.commands._numbers`, their argparse types) and flownet's own study commands (flownet stands alone
and imports nothing of icegan, so the rule lives here).

Python's ``int()`` and ``float()`` read more than a number as a user types it: ``1_0`` (10), ``nan``, ``inf``,
``1e999`` (inf), non-ASCII digits (``٣``, fullwidth ``３``); ``str.isdigit()`` passes ``²``, which ``int()`` then
refuses. Here an integer is ASCII digits with an optional leading sign (``-3``, ``+3``), a number the same with an optional fraction
and exponent (``0.5``, ``.5``, ``1e-3``), finite. Blanks around the text are ignored (``' 7 '`` is 7).
"""
from __future__ import annotations

import math
import re

__all__ = ["read_int", "read_number", "read_frame_number"]

_INTEGER = re.compile(r"[-+]?[0-9]+")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def read_int(text: str) -> int:
    """``text`` as an integer: ASCII digits with an optional leading sign, blanks around it ignored.

    Raises:
        ValueError: anything else (``1_0``, ``²``, ``３``, ``1.0``, ``''``), naming the text.
    """
    t = str(text).strip()
    if not _INTEGER.fullmatch(t):
        raise ValueError(f"expected an integer (digits 0-9, an optional leading sign), got {text!r}")
    return int(t)


def read_number(text: str) -> float:
    """``text`` as a finite float: digits 0-9 with an optional leading sign, fraction and exponent, blanks around it
    ignored.

    Raises:
        ValueError: anything else (``nan``, ``inf``, ``1e999``, ``1_0``, ``0x1p3``), naming the text.
    """
    t = str(text).strip()
    value = float(t) if _NUMBER.fullmatch(t) else math.nan
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number (e.g. 1, 0.5 or 1e-3), got {text!r}")
    return value


_FRAME_NUMBER = re.compile(r"([0-9]+)(?:\.0+)?")


def read_frame_number(cell) -> int:
    """A frame number from a manifest or sheet cell: ASCII digits, optionally with a zero fraction as a spreadsheet
    or pandas writes a whole number (``46``, ``46.0``, an int, a whole float), blanks around it ignored; the rule of
    the coding sheets (:func:`icegan.data.sheets.parse_frame`).

    Raises:
        ValueError: anything else (``46.5``, ``nan``, ``inf``, ``1e3``, ``-4``, ``٣``, ``''``), naming the cell.
    """
    m = _FRAME_NUMBER.fullmatch(str(cell).strip())
    if m is None:
        raise ValueError(f"{str(cell)!r} is not a frame number")
    return int(m.group(1))
