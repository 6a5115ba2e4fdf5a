"""README.md as the README tests read it."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

#: a line of a plain ``` block (no language) that runs a program the doc tests check: ``icegan`` or ``python``, after
#: any ``VAR=value`` settings, a timer or ``nice`` (the other lines of such blocks are output, logs or tables)
COMMAND_LINE = re.compile(r"""^(?:[A-Z_][A-Z0-9_]*=\S+\s+|(?:/usr/bin/)?time\s+(?:-v\s+|-f\s+"[^"]*"\s+)?|nice\s+)*"""
                          r"(?:\.venv/bin/)?(?:icegan|python3?)(?:\s|$)")


def code_lines(text: str = README) -> list[str]:
    """The lines of the fenced ``bash`` blocks, and the command lines (:data:`COMMAND_LINE`) of the plain ``` blocks,
    continuation lines joined and comments removed."""
    lines = []
    for lang, block in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if lang not in ("bash", ""):
            continue
        block = re.sub(r"\\\n\s*", " ", block)
        for line in block.splitlines():
            line = re.sub(r"\s#.*$", "", line).strip()
            if line and not line.startswith("#") and (lang == "bash" or COMMAND_LINE.match(line)):
                lines.append(line)
    return lines


def drop_optional_brackets(command: str) -> str:
    """A shown command with the brackets of its optional parts taken off, their content kept (``[--tta hflip]`` →
    ``--tta hflip``): a ``[`` that starts a word and its ``]``. A list value (``data.holdout_subjects=[sub01]``,
    ``--x [a,b]`` aside) keeps its brackets."""
    return re.sub(r"(^|\s)\[([^\[\]]*)\]", r"\1\2", command)
