"""What the ``icegan`` help promises, against what the parsers do: every default a flag's help states is the parser's
default (or, where the parser leaves it to the code, the code's), every parser default is a value the flag's own type
accepts, and the README's command lines that run behind a prefix (``VAR=value``, ``torchrun ...``) parse too."""
from __future__ import annotations

import argparse
import inspect
import re
import shlex
from pathlib import Path

import pytest
from _readme import ROOT, code_lines

from icegan.cli import build_parser, parse_with_overrides


def _actions(parser: argparse.ArgumentParser, command: str = "icegan"):
    """(command, action, help as ``--help`` shows it) of every option and positional of every (sub)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{command} {name}")
        elif action.help and action.help is not argparse.SUPPRESS:
            yield command, action, parser._get_formatter()._expand_help(action)


# a value named after "default" ("(default 2)", "; default srflownet", "the default 200."), ending at ; , : ) or the
# sentence's end (not "(default: cuda when present ...)", a description)
_EXPLICIT = re.compile(r"(?:\(|[;,] |\bthe |^)default:? ([^\s;,:)]+?)(?=[;,:)]|\.(?:\s|$)|$)")
# "X (default)", "X (default, ...)", "X (default: ...)": the value is the word before
_BEFORE = re.compile(r"'?([\w.-]+)'? \(default(?:\)|, |: )")


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def stated_defaults(action: argparse.Action, text: str) -> list[str]:
    """The defaults ``text`` (a flag's help) states for the flag, as written; [] where it states none or only
    describes it ("(default: equal)", "(default: model's)" for a flag whose parser default is None)."""
    default = action.default
    explicit = [m.group(1) for m in _EXPLICIT.finditer(text)]
    if default is None or isinstance(default, bool) or isinstance(default, (int, float)):
        return [v for v in explicit if _number(v) is not None]          # a number is a promise; words describe
    stated = [v for v in explicit if not v.startswith("the")]
    marker = re.search(r"\(default(?:\)|, |: )", text)
    if marker and action.choices:      # "supervised: synthetic faces (default)": the last choice named before it
        named = [(m.start(), c) for c in action.choices
                 for m in re.finditer(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text[:marker.start()])]
        stated += [max(named)[1]] if named else []
    elif marker:
        stated += [_BEFORE.search(text).group(1)]
    the_default = text.find("; the default)")        # "'casme2' (...; the default)": the value before the bracket
    if the_default >= 0:
        depth, i = 0, the_default
        while i > 0 and not (text[i] == "(" and depth == 0):
            depth += {")": 1, "(": -1}.get(text[i], 0) if i < the_default else 0
            i -= 1
        stated.append(text[:i].split()[-1].strip("'\""))
    return stated


def _matches(stated: str, default) -> bool:
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return _number(stated) == default
    return stated == str(default)


def _generic_max_motion() -> float:
    from flownet.data.synthetic_generic import SyntheticGenericFlow      # what flownet.evaluate builds without it
    return inspect.signature(SyntheticGenericFlow).parameters["max_motion"].default


# defaults a help states that the parser does not hold: left to the code (the parser's None means "not given"), or a
# default of another flag in a parenthesis; each with how the code's value is read, which must be the stated one
RESOLVED_LATER = {
    ("icegan flow eval", "--max-motion"): ("10", _generic_max_motion),
    ("icegan flow eval", "--size"): ("128", lambda: __import__("flownet.evaluate").evaluate.DEFAULT_SIZE),
    ("icegan flow eval", "--n-pairs"): ("200", lambda: __import__("flownet.evaluate").evaluate.DEFAULT_N_PAIRS),
    # icegan flow run --decompose-method: its parser default is None (refused without --decompose); the DecFlow
    # weights its help names are checked in tests/test_flow_cli58.py
}


def mismatches(parser: argparse.ArgumentParser, resolved_later=RESOLVED_LATER) -> list[str]:
    """Every flag whose help states a default other than the one the parser (or, for RESOLVED_LATER, the code)
    uses, as 'command flag: help says default X, the parser's is Y'."""
    found = []
    for command, action, text in _actions(parser):
        flag = action.option_strings[-1] if action.option_strings else action.dest
        for stated in stated_defaults(action, text):
            if (command, flag) in resolved_later:
                said, actual = resolved_later[(command, flag)]
                if stated != said or not _matches(stated, actual()):
                    found.append(f"{command} {flag}: help says default {stated}, the code's is {actual()!r}")
            elif not _matches(stated, action.default):
                found.append(f"{command} {flag}: help says default {stated}, the parser's is {action.default!r}")
    return found


def test_stated_defaults_are_the_parsers():
    """Every default an ``icegan`` flag's help states is the default it gets."""
    assert mismatches(build_parser()) == []


def test_stated_defaults_are_found():
    """The scan is not vacuous: the defaults of the common forms are read from today's help."""
    seen = {(command, action.option_strings[-1] if action.option_strings else action.dest): stated_defaults(action, t)
            for command, action, t in _actions(build_parser())}
    assert seen[("icegan compare", "--resamples")] == ["9999"]
    assert seen[("icegan compare", "--format")] == ["markdown"]                  # (default markdown)
    assert seen[("icegan flow train", "--mode")] == ["supervised"]                # supervised: ... (default)
    assert seen[("icegan flow eval", "--model")] == ["srflownet"]                 # ; default srflownet
    assert seen[("icegan flow eval", "--n-pairs")] == ["200"]                     # the default 200
    assert seen[("icegan gan eval", "--device")] == ["auto"]                      # auto (default: cuda when ...)
    assert seen[("icegan gan eval", "--data")] == ["casme2"]                      # 'casme2' (...; the default)
    assert seen[("icegan predict", "--normalize")] == ["auto"]                    # auto (default): ...
    assert seen[("icegan ensemble", "--weights")] == []                           # (default: equal): a description
    assert sum(map(bool, seen.values())) >= 30
    assert set(RESOLVED_LATER) <= {k for k, v in seen.items() if v}               # no stale exemption


def test_wrong_stated_default_is_found():
    """A help stating another default than the parser's, in each form, is reported with its command and flag."""
    parser = argparse.ArgumentParser(prog="icegan")
    sub = parser.add_subparsers(dest="command").add_parser("demo")
    sub.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples (default 999)")
    sub.add_argument("--device", default="cpu", help="auto (default), cpu, cuda or cuda:N")
    sub.add_argument("--mode", default="supervised", choices=["supervised", "selfsup"],
                     help="supervised: exact flow; selfsup: real pairs (default)")
    sub.add_argument("--model", default="srflownet", help="srflownet or tvl1; default tvl1")
    sub.add_argument("--max-motion", type=float, default=None, help="largest translation (default 10)")
    sub.add_argument("--size", type=int, default=128, help="side in pixels (default %(default)s)")
    sub.add_argument("--seed", type=int, default=0, help="seed (default: the run's)")
    assert mismatches(parser, resolved_later={}) == [
        "icegan demo --resamples: help says default 999, the parser's is 9999",
        "icegan demo --device: help says default auto, the parser's is 'cpu'",
        "icegan demo --mode: help says default selfsup, the parser's is 'supervised'",
        "icegan demo --model: help says default tvl1, the parser's is 'srflownet'",
        "icegan demo --max-motion: help says default 10, the parser's is None",
    ]


def test_defaults_are_in_their_flags_range():
    """Every number default is one its flag's own type accepts (argparse never passes a default through the type:
    a default outside the range the help and the type promise would go unnoticed)."""
    for command, action, _ in _actions(build_parser()):
        if action.type is None or action.default is None or isinstance(action.default, (bool, list)):
            continue
        if isinstance(action.type, type):             # Path, str: no range
            continue
        assert action.type(str(action.default)) == action.default, f"{command} {action.option_strings}"


def test_gan_eval_out_help_names_the_folder_it_writes():
    """``icegan gan eval`` writes its grids and eval.md to eval/ beside the checkpoint's folder
    (runs/NAME/eval for runs/NAME/checkpoints/last.pt: icegan.gan.evaluate.run_eval), which its --out help says."""
    text = {(c, a.option_strings[-1] if a.option_strings else a.dest): t
            for c, a, t in _actions(build_parser())}[("icegan gan eval", "--out")]
    m = re.search(r"e\.g\. (\S+) for (\S+?)\)", text)
    assert m, f"--out help gives no example of the default folder: {text!r}"
    assert "eval.md" in text
    from icegan.gan import evaluate
    assert "ckpt.parent.parent / \"eval\"" in inspect.getsource(evaluate.run_eval)     # the rule the help states
    assert Path(m.group(2)).parent.parent / "eval" == Path(m.group(1))


def _prefixed_readme_commands() -> list[list[str]]:
    """The README's ``icegan`` / ``train.py`` command lines behind ``VAR=value`` or ``torchrun [options]``, which
    tests/test_readme.py does not read, as ``icegan`` arguments."""
    found = []
    for line in code_lines():
        words = shlex.split(line)
        prefixed = False
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
            words, prefixed = words[1:], True
        if words[:1] == ["torchrun"]:
            words, prefixed = words[1:], True
            while words and words[0].startswith("--"):
                words = words[2:] if "=" not in words[0] else words[1:]
            words = ["python"] + words if words[:1] == ["train.py"] else words
        if not prefixed or "<" in line or "--help" in words:
            continue
        if words[:2] in (["python", "train.py"], [".venv/bin/python", "train.py"]):
            found.append(["train"] + words[2:])
        elif words[:1] in (["icegan"], [".venv/bin/icegan"]) or words[:3] == ["python", "-m", "icegan"]:
            found.append(words[3:] if words[0] == "python" else words[1:])
    return found


def test_readme_prefixed_commands_found():
    argvs = [" ".join(a) for a in _prefixed_readme_commands()]
    assert "train --config configs/casme2.yaml" in argvs                    # torchrun --nproc_per_node 4 train.py
    assert "train --config configs/samm_5class.yaml" in argvs               # ICEGAN_DATA=/mnt/me-data python train.py


@pytest.mark.parametrize("argv", _prefixed_readme_commands(), ids=lambda a: " ".join(a)[:70])
def test_readme_prefixed_command_parses(argv, monkeypatch):
    monkeypatch.chdir(ROOT)
    try:
        args = parse_with_overrides(build_parser(), argv)
    except SystemExit as exc:      # argparse's error exit
        pytest.fail(f"README.md shows `icegan {' '.join(argv)}` (behind a prefix), which the command line rejects "
                    f"(exit {exc.code})")
    assert getattr(args, "func", None) is not None


def _config_classes() -> list[type]:
    from flownet.models.decflow import DecFlowTrainConfig
    from flownet.selfsup import SelfSupConfig
    from flownet.train import FlowTrainConfig
    from icegan.commands.loso import LosoConfig
    from icegan.data.prepare import PrepareConfig
    from icegan.gan.trainer import GanConfig
    from icegan.pipeline import MainConfig
    return [MainConfig, LosoConfig, GanConfig, PrepareConfig, FlowTrainConfig, SelfSupConfig, DecFlowTrainConfig]


def _resolves(cls, parts: list[str]) -> bool:
    """Whether the dotted key ``parts`` names a field of the dataclass ``cls``, through its sections and through the
    items of its lists (``data.prepare.datasets.1.root``, ``N`` standing for any item's place)."""
    import dataclasses
    import typing
    for i, part in enumerate(parts):
        origin = typing.get_origin(cls)
        if origin is typing.Union:                                     # Optional[X]: X
            cls = next(a for a in typing.get_args(cls) if a is not type(None))
            origin = typing.get_origin(cls)
        if origin is list and (part.isdigit() or part == "N"):
            cls = typing.get_args(cls)[0]
            continue
        if not dataclasses.is_dataclass(cls):
            return False
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return False
        cls = hints[part]
    return True


def _readme_dotted_keys() -> dict[str, int]:
    """Every ``section.key`` the README names in a code span (a key, a key=value, or a key=value of a command),
    with its line; file names (``flow.png``) and module paths aside."""
    import dataclasses
    from _readme import README
    sections = {f.name for cls in _config_classes() for f in dataclasses.fields(cls)
                if dataclasses.is_dataclass(f.default_factory() if f.default_factory is not dataclasses.MISSING
                                            else f.default)}
    found: dict[str, int] = {}
    for span in re.finditer(r"`([^`\n]+)`", README):
        for m in re.finditer(r"(?<![\w./:-])([a-z_0-9]+(?:\.(?:[a-z_0-9]+|N))+)(?![\w/(-])", span.group(1)):
            key = m.group(1)
            if key.split(".")[0] in sections and not re.search(r"\.(png|flo|py|yaml|md|csv|pt|npy|json)$", key):
                found.setdefault(key, README.count("\n", 0, span.start()) + 1)
    return found


def test_readme_dotted_config_keys_exist():
    """Every ``section.key`` the README names in a code span (``model.shift_px``, ``data.prepare.datasets.N.root``)
    is a key of one of the configs."""
    found = _readme_dotted_keys()
    assert {"model.shift_px", "gan.synthetic_weight", "data.prepare.datasets.1.root"} <= set(found)
    unknown = [f"README.md:{line}: `{key}`" for key, line in sorted(found.items(), key=lambda kv: kv[1])
               if not any(_resolves(cls, key.split(".")) for cls in _config_classes())]
    assert not unknown, f"README.md names config keys that no config has: {unknown}"


def test_dotted_key_check_finds_a_wrong_key():
    from icegan.pipeline import MainConfig
    assert _resolves(MainConfig, "data.prepare.datasets.1.root".split("."))
    assert _resolves(MainConfig, "data.prepare.datasets.N.annotations".split("."))
    assert _resolves(MainConfig, "data.max_folds".split("."))
    assert not _resolves(MainConfig, "data.max_fold".split("."))
    assert not _resolves(MainConfig, "data.prepare.datasets.1.rooot".split("."))
    assert not _resolves(MainConfig, "model.shift_px".split("."))           # LosoConfig's, not the main job's
