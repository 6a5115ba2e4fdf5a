"""README.md stays runnable: every command it shows parses, every config key it names exists, every file it points to
is in the repository. A renamed option, key or file that the README still uses fails here, not on a reader's machine."""
from __future__ import annotations

import re
import shlex

import pytest
from _readme import README, ROOT, code_lines, drop_optional_brackets

from icegan.cli import build_parser, parse_with_overrides
from icegan.config import to_dict


def _inline_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def _icegan_argv(command: str) -> list[str] | None:
    """The ``icegan`` arguments of one shown command (``python train.py`` as ``icegan train``), or None for another
    program or a span that is a pattern rather than a command (``<command>``, ``--help``)."""
    if "<" in command or "--help" in command:
        return None
    command = drop_optional_brackets(command)                               # optional parts: shown, so checked
    command = re.sub(r"(\S+?)(?:\\?\|\S+)+", r"\1", command)              # a|b (a table's a\|b): the first
    words = shlex.split(command)
    if words and words[0] in (".venv/bin/icegan", "icegan"):
        return words[1:]
    if words[:2] in (["python", "train.py"], [".venv/bin/python", "train.py"]):
        return ["train"] + words[2:]
    return None


def _shown_commands() -> list[list[str]]:
    found = [argv for argv in map(_icegan_argv, code_lines()) if argv]
    for span in _inline_spans(README):
        for part in span.split(", "):       # a table cell may list several commands
            argv = _icegan_argv(part.strip())
            if argv and any(w.startswith("--") or "=" in w for w in argv):   # `icegan gan eval` in prose names it
                found.append(argv)
    return found


def test_readme_shows_commands():
    """The scan below is not vacuous: the Quick start's neighbours are found."""
    argvs = [" ".join(a) for a in _shown_commands()]
    assert len(argvs) >= 40
    assert any(a.startswith("loso --config configs/features_ststnet.yaml") for a in argvs)
    assert any(a.startswith("train --config configs/casme2.yaml") for a in argvs)
    assert any(a.startswith("suite ") for a in argvs)


@pytest.mark.parametrize("argv", _shown_commands(), ids=lambda a: " ".join(a)[:70])
def test_readme_command_parses(argv, monkeypatch):
    """Every subcommand and option the README shows exists, with a valid choice where the option has choices, and
    the config and overrides of every ``icegan loso`` / ``icegan fit`` / ``train.py`` command it shows load (run from the repository
    root, as the README's relative paths are)."""
    monkeypatch.chdir(ROOT)
    try:
        args = parse_with_overrides(build_parser(), argv)
    except SystemExit as exc:      # argparse's error exit
        pytest.fail(f"README.md shows `icegan {' '.join(argv)}`, which the command line rejects (exit {exc.code})")
    assert getattr(args, "func", None) is not None
    if args.command in ("loso", "fit", "train") and getattr(args, "config", None):
        from icegan.commands.loso import LosoConfig
        from icegan.config import ConfigError, load_config
        from icegan.pipeline import MainConfig
        # the README's illustrative `my_package` modules stand for the shipped examples of the same kind
        examples = {"recognizer.module": f"{ROOT}/docs/examples/custom_recognizer.py:TwoLayerCNN",
                    "model.module": f"{ROOT}/docs/examples/custom_recognizer.py:TwoLayerCNN",
                    "flow.module": f"{ROOT}/docs/examples/custom_flow.py:HornSchunck"}
        overrides = [f"{o.split('=')[0]}={examples[o.split('=')[0]]}" if "my_package" in o else o
                     for o in args.overrides if not o.startswith("flow.weights=my_")]
        try:
            load_config(MainConfig if args.command == "train" else LosoConfig, ROOT / args.config, overrides)
        except ConfigError as exc:
            pytest.fail(f"README.md shows `icegan {' '.join(argv)}`, whose config is rejected: {exc}")


def _config_keys() -> set[str]:
    from flownet.selfsup import SelfSupConfig
    from flownet.train import FlowTrainConfig
    from icegan.commands.loso import LosoConfig
    from icegan.data.prepare import PrepareConfig
    from icegan.gan.trainer import GanConfig
    from icegan.pipeline import MainConfig

    def flat(d: dict, prefix: str = ""):
        for k, v in d.items():
            yield prefix + k
            if isinstance(v, dict):
                yield from flat(v, prefix + k + ".")
    keys: set[str] = set()
    for cls in (LosoConfig, MainConfig, GanConfig, PrepareConfig, FlowTrainConfig, SelfSupConfig):
        keys |= set(flat(to_dict(cls())))
    return keys


def test_readme_config_keys_exist():
    """Every ``key=value`` override the README names is a key of one of the configs (the literal ``key=value`` of
    the prose aside)."""
    keys = _config_keys()
    named = set(re.findall(r"(?<![\w./-])([a-z_]+(?:\.[a-z_0-9]+)*)=", README)) - {"key"}
    assert {"model.shift_px", "data.table", "gan.enabled"} <= named
    unknown = sorted(k for k in named if k not in keys)
    assert not unknown, f"README.md names config keys that do not exist: {unknown}"


def test_readme_paths_exist():
    """Every file of this repository the README points to (configs, benchmarks, docs, examples, modules) exists."""
    paths = set(re.findall(r"(?<![\w/.])((?:configs|bench|docs|icegan|flownet|tests|data)/[\w./-]*\.(?:yaml|py|md))",
                           README))
    assert "configs/features_ststnet.yaml" in paths and "docs/benchmarks.md" in paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"README.md points to files that are not in the repository: {missing}"
