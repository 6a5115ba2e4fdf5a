"""Numbers a user gives: text typed on a command line or in a sheet, read strictly (ASCII digits, finite), and the
range check of a flow config section's settings. One rule for the ``icegan`` subcommands' flags
(:mod:`icegan.commands._numbers`, their argparse types), flownet's own study commands, the CASME II manifest's frame
numbers and the flow configs (flownet stands alone and imports nothing of icegan, so the rules live here).

Python's ``int()`` and ``float()`` read more than a number as a user types it: ``1_0`` (10), ``nan``, ``inf``,
``1e999`` (inf), non-ASCII digits (``٣``, fullwidth ``３``); ``str.isdigit()`` passes ``²``, which ``int()`` then
refuses. Here an integer is ASCII digits with an optional leading sign (``-3``, ``+3``), a number the same with an
optional fraction and exponent (``0.5``, ``.5``, ``1e-3``), finite. Blanks around the text are ignored (``' 7 '`` is
7). The patterns are public for readers with their own handling of blanks and errors (the config reader, the coding
sheets).
"""
from __future__ import annotations

import math
import re

__all__ = ["INTEGER_TEXT", "NUMBER_TEXT", "WHOLE_NUMBER_TEXT", "SEED_MAX", "read_int", "read_number",
           "read_frame_number", "check_non_negative"]

#: the largest seed: numpy's legacy RandomState and scikit-learn's random_state take seeds in [0, 2**32 - 1], numpy's
#: SeedSequence no negative one
SEED_MAX = 2 ** 32 - 1

#: an integer as typed: ASCII digits, an optional leading sign (to fullmatch)
INTEGER_TEXT = re.compile(r"[-+]?[0-9]+")
#: a decimal or scientific number as typed: ASCII digits, optional sign, fraction and exponent; no nan / inf
NUMBER_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
#: a whole number as a spreadsheet or pandas writes it: ASCII digits (group 1), optionally a zero fraction (``46.0``)
WHOLE_NUMBER_TEXT = re.compile(r"([0-9]+)(?:\.0+)?")


def read_int(text: str) -> int:
    """``text`` as an integer: ASCII digits with an optional leading sign, blanks around it ignored.

    Raises:
        ValueError: anything else (``1_0``, ``²``, ``３``, ``1.0``, ``''``), naming the text.
    """
    t = str(text).strip()
    if not INTEGER_TEXT.fullmatch(t):
        raise ValueError(f"expected an integer (digits 0-9, an optional leading sign), got {text!r}")
    return int(t)


def read_number(text: str) -> float:
    """``text`` as a finite float: digits 0-9 with an optional leading sign, fraction and exponent, blanks around it
    ignored.

    Raises:
        ValueError: anything else (``nan``, ``inf``, ``1e999``, ``1_0``, ``0x1p3``), naming the text.
    """
    t = str(text).strip()
    value = float(t) if NUMBER_TEXT.fullmatch(t) else math.nan
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number (e.g. 1, 0.5 or 1e-3), got {text!r}")
    return value


def read_frame_number(cell) -> int:
    """A frame number from a manifest or sheet cell: ASCII digits, optionally with a zero fraction as a spreadsheet
    or pandas writes a whole number (``46``, ``46.0``, an int, a whole float), blanks around it ignored; the rule of
    the coding sheets (:func:`icegan.data.sheets.parse_frame`).

    Raises:
        ValueError: anything else (``46.5``, ``nan``, ``inf``, ``1e3``, ``-4``, ``٣``, ``''``), naming the cell.
    """
    m = WHOLE_NUMBER_TEXT.fullmatch(str(cell).strip())
    if m is None:
        raise ValueError(f"{str(cell)!r} is not a frame number")
    return int(m.group(1))


def check_non_negative(cfg, section: str, keys: tuple[str, ...]) -> None:
    """Refuse a flow config section's numeric settings (``keys`` of the dataclass ``cfg``) that are negative, NaN or
    infinite, for a ``__post_init__``: sizes, counts, weights, rates and budgets mean nothing below 0 and a NaN or
    inf one would train on silently. None (an optional setting left unset) is not checked; a list or tuple setting
    (per-level loss weights) is checked item by item. The messages are those of
    :func:`icegan.config.check_ranges` (``at_least`` 0 for an int, ``non_negative`` for a float) and of the flow
    trainers' own checks (:func:`flownet.train.check_intervals`); flownet does not depend on icegan.

    Raises:
        ValueError: ``<section>.<key> must be >= 0, got <value>`` (an int), ``... must be a finite number >= 0, got
            <value>`` (a float) or ``... must hold finite numbers >= 0, got [...]`` (a list), the first key out of
            range.
    """
    for key in keys:
        value = getattr(cfg, key)
        if isinstance(value, (list, tuple)):        # a list of weights: each item
            if not all(v >= 0 and math.isfinite(v) for v in value):
                raise ValueError(f"{section}.{key} must hold finite numbers >= 0, got {list(value)}")
        elif value is not None and not (value >= 0 and math.isfinite(value)):
            what = ">= 0" if isinstance(value, int) else "a finite number >= 0"
            raise ValueError(f"{section}.{key} must be {what}, got {value}")
