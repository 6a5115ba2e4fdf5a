"""Every example command outside README.md stays runnable: the commands that the ``--help`` texts of every ``icegan``
subcommand, ``train.py``'s docstring, the comments of ``configs/*.yaml``, ``data/README.md`` and the docstrings of
``docs/examples/*.py`` show parse, and the configs and ``key=value`` overrides of those that train (``icegan loso``
/ ``fit`` / ``features``, ``train.py``) load. README.md's own commands are checked in ``tests/test_readme.py``; this
is the same check for the texts a reader meets at the command line and in the files."""
from __future__ import annotations

import argparse
import ast
import re
import shlex

import pytest
from _readme import ROOT, drop_optional_brackets

from icegan.cli import build_parser, parse_with_overrides

#: a command line, after any ``VAR=value`` environment settings
_COMMAND = r"(?:[A-Z_]+=\S+ )*(?:(?:\.venv/bin/)?icegan |(?:\.venv/bin/)?python train\.py\b)"
_START = re.compile("^" + _COMMAND)
#: a line of a text that shows a command: the command itself, or a config header's ``Run: CMD``
_LINE = re.compile(r"(?:^|\bRun(?: \([^)]*\))?:\s+)(" + _COMMAND + ".*)")


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(subcommand path, parser) of the top level and every nested subcommand."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def _commands_in(text: str) -> list[str]:
    """The example commands of a text: lines (comment markers and continuation backslashes folded) that start with
    ``icegan`` or ``python train.py``, and backquoted spans that do, when they hold an option or a ``key=value``
    (a span like `icegan predict` in prose names a command, it does not show one)."""
    text = "\n".join(re.sub(r"^\s*#\s?", "", line) for line in text.splitlines())   # a YAML comment: its text
    joined = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        match = _LINE.search(line.strip())
        if match and "`" not in match.group(1):
            # `CMD  # note`, `CMD   e.g. k=v`, `CMD   (a note)`: the command alone
            found.append(re.split(r"\s#|\s{2,}(?:e\.g\.|\()", match.group(1))[0].strip())
    for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
        span = " ".join(span.split())           # a span wrapped over two lines of a help text
        if _START.match(span) and re.search(r"\s--|=", span):
            found.append(span)
    return found


def _shown() -> list[tuple[str, str]]:
    """(where, command) of every example command outside README.md."""
    shown = []
    for path, parser in _parsers(build_parser()):
        texts = [parser.description or "", parser.epilog or ""] + [a.help or "" for a in parser._actions]
        where = "icegan " + " ".join(path) + " --help"
        shown += [(where, c) for t in texts for c in _commands_in(t)]
    doc = (ROOT / "train.py").read_text(encoding="utf-8").split('"""')[1]
    shown += [("train.py docstring", c) for c in _commands_in(doc)]
    for config in sorted((ROOT / "configs").glob("*.yaml")):
        comments = "\n".join(line for line in config.read_text(encoding="utf-8").splitlines()
                             if line.lstrip().startswith("#"))
        shown += [(f"configs/{config.name}", c) for c in _commands_in(comments)]
    shown += [("data/README.md", c) for c in _commands_in((ROOT / "data" / "README.md").read_text(encoding="utf-8"))]
    modules = sorted((ROOT / "docs" / "examples").glob("*.py")) + sorted((ROOT / "icegan" / "commands").glob("*.py"))
    for module in modules:
        doc = ast.get_docstring(ast.parse(module.read_text(encoding="utf-8"))) or ""
        shown += [(str(module.relative_to(ROOT)), c) for c in _commands_in(doc)]
    return shown


def _argv(command: str) -> list[str] | None:
    """The ``icegan`` arguments of a shown command (``python train.py`` as ``icegan train``); None for a pattern
    with a placeholder to fill in (``<C's weights.pt>``) or a ``--help``."""
    command = drop_optional_brackets(command.replace("[key=value ...]", ""))   # optional parts: checked
    command = re.sub(r"(\S+?)(?:\|\S+)+", r"\1", command)              # a|b|c: the first
    if "<" in command or "--help" in command or "..." in command:
        return None
    words = shlex.split(command)
    while re.fullmatch(r"[A-Z_]+=\S+", words[0]):       # ICEGAN_DATA=... python train.py ...
        words = words[1:]
    if words[0].endswith("icegan"):
        return words[1:]
    return ["train"] + words[2:]


SHOWN = [(where, argv) for where, c in _shown() if (argv := _argv(c))]


def test_the_scan_finds_the_examples():
    """Not vacuous: examples of each kind of source are found."""
    wheres = {w for w, _ in SHOWN}
    assert "train.py docstring" in wheres and "data/README.md" in wheres
    assert any(w.startswith("icegan ") for w in wheres) and any(w.startswith("configs/") for w in wheres)
    assert len(SHOWN) >= 40


@pytest.mark.parametrize("where,argv", SHOWN, ids=lambda x: " ".join(x)[:70] if isinstance(x, list) else x)
def test_shown_command_parses_and_its_config_loads(where, argv, monkeypatch):
    """The command parses, and for a command that trains, its config file with the shown overrides loads (unknown
    keys, wrong types and malformed overrides are refused there)."""
    monkeypatch.chdir(ROOT)
    try:
        args = parse_with_overrides(build_parser(), argv)
    except SystemExit as exc:
        pytest.fail(f"{where} shows `icegan {' '.join(argv)}`, which the command line rejects (exit {exc.code})")
    config = getattr(args, "config", None)
    if args.command in ("loso", "fit", "train", "features") and config and config.endswith(".yaml"):  # not `C`
        from icegan.commands.loso import LosoConfig
        from icegan.config import ConfigError, load_config
        from icegan.pipeline import MainConfig
        cls = MainConfig if args.command in ("train", "features") else LosoConfig
        try:
            load_config(cls, ROOT / args.config, list(args.overrides))
        except ConfigError as exc:
            pytest.fail(f"{where} shows `icegan {' '.join(argv)}`, whose config is rejected: {exc}")
