"""What a command's error must look like to a user: one or a few lines on stderr naming what is wrong, no traceback
(shared by the command-line error tests)."""
from __future__ import annotations


def one_line_error(capsys, *names: str) -> str:
    """stderr of the command that just ran: no traceback, and every one of ``names`` in it."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for name in names:
        assert name in err, err
    return err
