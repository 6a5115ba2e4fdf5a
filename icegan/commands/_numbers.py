"""The argparse types of the numbers given to the ``icegan`` subcommands' flags.

A number is read by :func:`flownet.user_numbers.read_int` / :func:`~flownet.user_numbers.read_number` (one rule with
flownet's own commands): ASCII digits with an optional leading sign (a negative value is left to the flag's range:
its message then says what is allowed), for a number an optional fraction and exponent (``0.5``, ``.5``, ``1e-3``),
finite; not Python's ``1_0``, ``nan``, ``inf``, ``²``. Blanks around the text are ignored (``' 7 '`` is 7, as it
always was).

A type's error reaches argparse as an ``argparse.ArgumentTypeError``, printed as ``argument --flag: <what is wrong>,
got '<value>'`` (exit code 2). A range a command checks after parsing, with a message of its own, is not checked here.
"""
from __future__ import annotations

import argparse
from typing import Callable, Optional

from flownet.user_numbers import read_int, read_number

__all__ = ["read_int", "read_number", "integer", "number"]


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
