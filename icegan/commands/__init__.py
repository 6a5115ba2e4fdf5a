"""The ``icegan`` subcommands, one module each (see :mod:`icegan.cli`), and what they share."""
from __future__ import annotations

import functools
import sys
from typing import Callable

#: errors that come from the user's input (a missing or unreadable file, a bad value, a missing optional package):
#: reported as one line, not as a traceback
USER_ERRORS: tuple[type[BaseException], ...] = (FileNotFoundError, ValueError, ImportError)


def one_line_errors(prog: str, extra: tuple[type[BaseException], ...] = ()) -> Callable:
    """Decorator for a subcommand handler ``fn(args) -> int``: a :data:`USER_ERRORS` (or ``extra``) exception is
    printed as ``"<prog>: error: <message>"`` on stderr and the command exits with code 2.

    Args:
        prog: the command's name in the message; ``{field}`` is filled from the parsed arguments
            (``"icegan flow {flow_command}"``).
        extra: further exception types to report this way (e.g. :class:`icegan.data.prepare.PrepareError`).
    """
    caught = USER_ERRORS + tuple(extra)

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(args):
            try:
                return fn(args)
            except caught as exc:
                print(f"{prog.format(**vars(args))}: error: {exc}", file=sys.stderr)
                return 2
        return wrapper
    return decorate
