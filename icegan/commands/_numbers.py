"""The argparse types of the numbers given to the ``icegan`` subcommands' flags: :func:`integer` and :func:`number`
of :mod:`flownet.user_numbers` (there so that flownet's own commands, which import nothing of icegan, share them),
re-exported here with the readers they use.

A number is read by :func:`flownet.user_numbers.read_int` / :func:`~flownet.user_numbers.read_number` (one rule with
flownet's own commands): ASCII digits with an optional leading sign (a negative value is left to the flag's range:
its message then says what is allowed), for a number an optional fraction and exponent (``0.5``, ``.5``, ``1e-3``),
finite; not Python's ``1_0``, ``nan``, ``inf``, ``²``. Blanks around the text are ignored (``' 7 '`` is 7, as it
always was).

A type's error reaches argparse as an ``argparse.ArgumentTypeError``, printed as ``argument --flag: expected ...,
got '<text>'`` (no number) or ``argument --flag: must be ..., got <value>`` (out of range), exit code 2. A range a
command checks after parsing, with a message of its own, is not checked here.
"""
from __future__ import annotations

from flownet.user_numbers import integer, number, read_int, read_number

__all__ = ["read_int", "read_number", "integer", "number"]
