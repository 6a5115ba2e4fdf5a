"""Numbers a user gives: text typed on a command line or in a sheet, read strictly (ASCII digits, finite), the
argparse types of the flags that take them, and the range check of a flow config section's settings. One rule for the
``icegan`` subcommands' flags, flownet's own study commands (both with :func:`integer` / :func:`number`;
:mod:`icegan.commands._numbers` re-exports them), the CASME II manifest's frame numbers and the flow configs (flownet
stands alone and imports nothing of icegan, so the rules live here).

Python's ``int()`` and ``float()`` read more than a number as a user types it: ``1_0`` (10), ``nan``, ``inf``,
``1e999`` (inf), non-ASCII digits (``٣``, fullwidth ``３``); ``str.isdigit()`` passes ``²``, which ``int()`` then
refuses. Here an integer is ASCII digits with an optional leading sign (``-3``, ``+3``), a number the same with an
optional fraction and exponent (``0.5``, ``.5``, ``1e-3``), finite. Blanks around the text are ignored (``' 7 '`` is
7). The patterns are public for readers with their own handling of blanks and errors (the config reader, the coding
sheets).
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Callable, Optional

__all__ = ["INTEGER_TEXT", "NUMBER_TEXT", "WHOLE_NUMBER_TEXT", "SEED_MAX", "derived_seed", "is_ascii_digits",
           "whole_number_digits", "read_int", "read_number", "integer", "number", "read_frame_number",
           "check_non_negative"]

#: the largest seed: numpy's legacy RandomState and scikit-learn's random_state take seeds in [0, 2**32 - 1], numpy's
#: SeedSequence no negative one
SEED_MAX = 2 ** 32 - 1


def derived_seed(seed: int, offset: int) -> int:
    """The seed ``offset`` places after ``seed`` (a fold's ``seed + fold.index``, a forest's ``seed + 1000 · index``),
    wrapped into [0, :data:`SEED_MAX`]: ``(seed + offset) % (SEED_MAX + 1)``. A config takes any seed up to
    :data:`SEED_MAX`, so a plain sum could pass it and be refused by numpy's legacy seeding or scikit-learn's
    ``random_state`` only at a later fold, after earlier folds had trained.

    The same as ``seed + offset`` whenever that sum is at most :data:`SEED_MAX`: every run recorded in the README and
    docs/benchmarks.md (small seeds, far below 2**32 - 100000) draws exactly what it drew with the plain sum.
    """
    return (int(seed) + int(offset)) % (SEED_MAX + 1)

#: an integer as typed: ASCII digits, an optional leading sign (to fullmatch)
INTEGER_TEXT = re.compile(r"[-+]?[0-9]+")
#: a decimal or scientific number as typed: ASCII digits, optional sign, fraction and exponent; no nan / inf
NUMBER_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
#: a whole number as a spreadsheet or pandas writes it: ASCII digits (group 1), optionally a zero fraction (``46.0``)
WHOLE_NUMBER_TEXT = re.compile(r"([0-9]+)(?:\.0+)?")


def is_ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits 0-9 and nothing else: no sign, blank, fraction or ``_``; not
    ``''``, nor a digit ``str.isdigit()`` / ``str.isdecimal()`` pass that ``int()`` refuses (``²``) or reads (``٣``,
    fullwidth ``３``). The rule of an index in a config override's key (``runs.0.seed``, :mod:`icegan.config`), a
    class id of :func:`icegan.gan.pairs.class_id` and of ``icegan gan generate --class``; a class id in a CSV cell
    may also carry a zero fraction (``2.0``: :func:`whole_number_digits`)."""
    return text.isascii() and text.isdecimal()


def whole_number_digits(text: str) -> Optional[str]:
    """The digits of a whole number written in a (stripped) sheet or CSV cell: ASCII digits, optionally with a zero
    fraction as a spreadsheet or pandas writes whole numbers in a column of floats (``"6"`` and ``"6.0"`` → ``"6"``,
    leading zeros kept: ``"006"``); None for anything else (``6.5``, ``1.``, ``-1``, ``٣``, ``''``, blanks). The rule
    (:data:`WHOLE_NUMBER_TEXT`) of a class id in a feature table's label cell (:mod:`icegan.data.feature_table`), a
    subject number of a coding sheet (:mod:`icegan.data.sheets`) and a frame number (:func:`read_frame_number`)."""
    m = WHOLE_NUMBER_TEXT.fullmatch(text)
    return m.group(1) if m else None


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


def _bounds(low, high) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    if low is not None:
        return f" >= {low}"
    return f" <= {high}" if high is not None else ""


def integer(low: Optional[int] = None, high: Optional[int] = None, meaning: str = "") -> Callable[[str], int]:
    """argparse type of an integer flag in ``[low, high]`` (None: unbounded on that side).

    Args:
        low, high: the flag's range, both ends included.
        meaning: what the value is, in the message (``"synthetic faces per onset and class"``).

    Returns:
        ``parse(text) -> int``, raising ``argparse.ArgumentTypeError`` for text that is no integer
        (:func:`read_int`) or out of range; the message gives the range, the meaning and the value.
    """
    what = f" ({meaning})" if meaning else ""

    def parse(text: str) -> int:
        try:
            value = read_int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer{_bounds(low, high)}{what}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be{_bounds(low, high)}{what}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def number(low: Optional[float] = None, meaning: str = "") -> Callable[[str], float]:
    """argparse type of a flag taking a finite number ``>= low`` (None: any finite number).

    Returns:
        ``parse(text) -> float``, raising ``argparse.ArgumentTypeError`` for text that is no finite number
        (:func:`read_number`) or below ``low``; the message gives the range, the meaning and the value.
    """
    what = f" ({meaning})" if meaning else ""

    def parse(text: str) -> float:
        try:
            value = read_number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a finite number{_bounds(low, None)}{what}, got {text!r}") \
                from None
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be{_bounds(low, None)}{what}, got {text.strip()}")
        return value
    parse.__name__ = "number"
    return parse


def read_frame_number(cell) -> int:
    """A frame number from a manifest or sheet cell: ASCII digits, optionally with a zero fraction as a spreadsheet
    or pandas writes a whole number (``46``, ``46.0``, an int, a whole float), blanks around it ignored; the rule of
    the coding sheets (:func:`icegan.data.sheets.parse_frame`).

    Raises:
        ValueError: anything else (``46.5``, ``nan``, ``inf``, ``1e3``, ``-4``, ``٣``, ``''``), or more digits than
            ``int()`` converts (``sys.get_int_max_str_digits()``, its first 20 characters shown), naming the cell.
    """
    t = str(cell).strip()
    digits = whole_number_digits(t)
    if digits is None:
        raise ValueError(f"{str(cell)!r} is not a frame number")
    try:            # the digits themselves: through float() they lost precision past 2**53 and overflowed
        return int(digits)
    except ValueError:          # more digits than int() converts
        raise ValueError(f"{t[:20] + '...'!r} ({len(t)} characters) is not a frame number") from None


def check_non_negative(cfg, section: str, keys: tuple[str, ...], positive: tuple[str, ...] = ()) -> None:
    """Refuse a flow config section's numeric settings (``keys`` of the dataclass ``cfg``) that are negative, NaN or
    infinite, for a ``__post_init__``: sizes, counts, weights, rates and budgets mean nothing below 0 and a NaN or
    inf one would train on silently. None (an optional setting left unset) is not checked; a list or tuple setting
    (per-level loss weights) is checked item by item. The ``positive`` keys (learning rates) must be finite and > 0.
    The messages are those of :func:`icegan.config.check_ranges` (``at_least`` 0 for an int, ``non_negative`` and
    ``positive`` for a float) and of the flow trainers' own checks (:func:`flownet.train.check_intervals`); flownet
    does not depend on icegan.

    Raises:
        ValueError: ``<section>.<key> must be >= 0, got <value>`` (an int), ``... must be a finite number >= 0, got
            <value>`` (a float), ``... must hold finite numbers >= 0, got [...]`` (a list) or ``... must be a finite
            number > 0, got <value>`` (a ``positive`` key), the first key out of range (``keys`` before
            ``positive``).
    """
    for key in keys:
        value = getattr(cfg, key)
        if isinstance(value, (list, tuple)):        # a list of weights: each item
            if not all(v >= 0 and math.isfinite(v) for v in value):
                raise ValueError(f"{section}.{key} must hold finite numbers >= 0, got {list(value)}")
        elif value is not None and not (value >= 0 and math.isfinite(value)):
            what = ">= 0" if isinstance(value, int) else "a finite number >= 0"
            raise ValueError(f"{section}.{key} must be {what}, got {value}")
    for key in positive:
        value = getattr(cfg, key)
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{section}.{key} must be a finite number > 0, got {value}")
