"""README.md's walk through your own data ("Using your own data", "A model for new clips") names things as the code
does: the file it gives `icegan predict --table` is a feature table, not the clip list of the same section; the clip
list's columns are the reader's; every command with ``--print-config`` is listed where the option is introduced."""
from __future__ import annotations

import re

from _readme import README, code_lines

from icegan.cli import build_parser
from icegan.data.clip_list import CLIP_LIST_COLUMNS


def test_predict_is_shown_scoring_feature_tables_not_clip_lists():
    """`icegan predict` refuses a clip list (no path column), so no file the README scores with it may be one the
    README lists clips in (`--clips FILE`, `data check --dataset clips --root FILE`)."""
    lines = code_lines()
    clip_lists = {f for line in lines for f in re.findall(r"--clips (\S+)", line)}
    clip_lists |= {f for line in lines if "--dataset clips" in line for f in re.findall(r"--root (\S+)", line)}
    tables = {f for line in lines if re.search(r"\bicegan predict\b", line)
              for f in re.findall(r"--table (\S+)", line)}
    assert "my_clips.csv" in clip_lists and len(tables) >= 2
    assert not tables & clip_lists, f"README.md gives clip lists to icegan predict --table: {sorted(tables & clip_lists)}"


def test_clip_list_columns_are_the_readers():
    """The clip list's columns as the README gives them: the required ones first, in order, then every optional one
    named in the same sentence."""
    required, optional = CLIP_LIST_COLUMNS
    m = re.search(r"clip list, one row per clip\s*\(`([a-z_,]+)`(.*?)\)\.", README, flags=re.S)
    assert m, "README.md no longer introduces the clip list's columns"
    shown = m.group(1).split(",")
    assert shown[:len(required)] == list(required)
    missing = [c for c in optional if c not in shown and f"`{c}`" not in m.group(2)]
    assert not missing, f"README.md's clip-list columns leave out {missing}"


def _commands_with(option: str) -> set[str]:
    """Every (sub)command of ``icegan`` that has ``option``, as ``icegan a b`` (``train`` as ``train.py``)."""
    found: set[str] = set()

    def walk(parser, prefix: list[str]):
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, prefix + [name])
        if any(option in a.option_strings for a in parser._actions):
            found.add("train.py" if prefix == ["train"] else "icegan " + " ".join(prefix))
    walk(build_parser(), [])
    return found


def test_print_config_lists_every_command_that_has_it():
    having = _commands_with("--print-config")
    assert {"icegan loso", "train.py"} <= having
    m = re.search(r"`--print-config` \(on ([^)]*)\)", README)
    assert m, "README.md no longer lists the commands with --print-config"
    listed = set(re.findall(r"`([^`]+)`", m.group(1)))
    assert having == listed, f"missing from README.md: {sorted(having - listed)}; not having it: {sorted(listed - having)}"
