"""docs/benchmarks.md stays reproducible: every ``icegan ...`` / ``python train.py ...`` command it records parses with
today's command line, and the config file and overrides it names load; every ``python bench/SCRIPT.py ...`` command
parses with that script's options. A renamed option, key or config that a
recorded command still uses fails here; the record then gets a note with today's spelling (``# today: ...``) and the
command goes into SUPERSEDED below."""
from __future__ import annotations

import argparse
import os
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest
from _readme import ROOT, code_lines, drop_optional_brackets

from icegan.cli import build_parser, parse_with_overrides

BENCHMARKS = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")

# commands as recorded that today's command line or configs reject, each marked in the doc with today's spelling
SUPERSEDED: set[str] = set()

# the doc's placeholders for a value the command was run with several times (seed=S, for s in 0 1 2; ... $s)
_PLACEHOLDERS = [(r"(?<=\bseed=)(S|\$\{?s\}?)(?=\s|$)", "0"), (r"(?<=\bdata\.permute_labels=)P\b", "0"),
                 (r"(?<=\bworkers=)W\b", "1"), (r"\$\{?ds\}?", "casme2"), (r"\$\{?s\}?", "0"),
                 (r"\$\{?r\}?(?=\.yaml)", "fdr")]
# what the doc puts before a command: environment variables, a timer, nice, a shell loop
_PREFIX = re.compile(r"""^(?:[A-Z_][A-Z0-9_]*=\S+\s+|(?:/usr/bin/)?time\s+(?:-v\s+|-f\s+"[^"]*"\s+)?|nice\s+)+""")


def _argv(command: str) -> list[str] | None:
    """The ``icegan`` arguments of one recorded command (``python train.py`` as ``icegan train``), or None for another
    program, a pattern (``<run>``, ``--help``) or a command elided with ``...``."""
    loop = re.match(r"^for\s+\w+\s+in\s+[^;]*;\s*do\s+(.*?);?\s*done$", command)
    command = _PREFIX.sub("", loop.group(1) if loop else command)
    if "<" in command or "--help" in command:
        return None
    for pattern, value in _PLACEHOLDERS:
        command = re.sub(pattern, value, command)
    command = re.sub(r"(?:^|\s)\[[^\]]*(?:\.\.\.|\b[A-Z]\b)[^\]]*\]", " ", command)   # [--weights W]: optional, dropped
    command = drop_optional_brackets(command)                   # [--tta hflip]: optional, shown, so checked
    command = re.sub(r"(\S+?)(?:\\?\|\S+)+", r"\1", command)     # a|b: the first
    words = shlex.split(command)
    if "..." in words:
        return None
    if words and words[0] in (".venv/bin/icegan", "icegan"):
        return words[1:]
    if len(words) > 1 and words[0] in ("python", "python3", ".venv/bin/python") and words[1] == "train.py":
        return ["train"] + words[2:]
    return None


def _is_command(argv: list[str]) -> bool:
    """A span with a ``key=value`` or an option with a value; not one naming options in prose
    (`icegan compare --stratify`, `icegan flow eval --input-size`)."""
    options = [i for i, w in enumerate(argv) if w.startswith("-")]
    return any("=" in w for w in argv) or bool(options) and any(not w.startswith("-") for w in argv[options[0]:])


def _recorded_commands() -> list[list[str]]:
    found = [argv for argv in map(_argv, code_lines(BENCHMARKS)) if argv]
    for span in re.findall(r"`([^`\n]+)`", BENCHMARKS):
        for part in span.split(", "):
            argv = _argv(part.strip())
            if argv and _is_command(argv):
                found.append(argv)
    return found


def _config_error(args, out: Path) -> str | None:
    """Why the config and overrides of a parsed command do not load, or None. A config under ``runs/`` or outside the
    repository (an absolute path, ``/tmp/...``) was a session's own file, not the repository's, and is not checked
    (whether it exists depends on the machine the tests run on)."""
    from icegan.config import ConfigError, load_config
    config = getattr(args, "config", None)
    if not config or Path(config).parts[0] == "runs" or Path(config).is_absolute():
        return None
    overrides = list(getattr(args, "overrides", None) or [])
    try:
        if args.command == "suite":
            from icegan.suite import load_suite, plan_suite
            plan_suite(load_suite(ROOT / config), ROOT / config, out, overrides)
            return None
        if args.command in ("loso", "fit"):
            from icegan.commands.loso import LosoConfig as cls
        elif args.command in ("train", "features"):
            from icegan.pipeline import MainConfig as cls
        elif args.command == "prepare":
            from icegan.data.prepare import PrepareConfig as cls
        elif args.command == "gan":
            from icegan.gan.trainer import GanConfig as cls
        elif args.command == "flow" and args.flow_command == "train-decflow":
            from flownet.models.decflow import DecFlowTrainConfig as cls
        elif args.command == "flow" and getattr(args, "mode", "supervised") == "selfsup":
            from flownet.selfsup import SelfSupConfig as cls
        elif args.command == "flow":
            from flownet.train import FlowTrainConfig as cls
        else:
            return f"no config check for `icegan {args.command}`: add one here"
        load_config(cls, ROOT / config, overrides)
    except (ConfigError, FileNotFoundError) as exc:
        return str(exc)
    return None


def _problem(argv: list[str], out: Path) -> str | None:
    try:
        args = parse_with_overrides(build_parser(), argv)
    except SystemExit as exc:      # argparse's error exit
        return f"the command line rejects it (exit {exc.code})"
    if getattr(args, "func", None) is None:
        return "no such command"
    error = _config_error(args, out)
    return f"its config is rejected: {error}" if error else None


def test_benchmarks_records_commands():
    """The scan is not vacuous: the timed runs of the foundation, a suite, a flow and a GAN command are found."""
    argvs = [" ".join(a) for a in _recorded_commands()]
    assert len(argvs) >= 150
    assert any(a.startswith("loso --config configs/features_ststnet.yaml --out runs/foundation/G ") for a in argvs)
    assert any(a.startswith("suite --config configs/suite_composite.yaml") for a in argvs)
    assert any(a.startswith("flow train --config configs/flow_srflownet_tvr.yaml") for a in argvs)
    assert any(a.startswith("gan train --config configs/gan_casme2_cpu.yaml") for a in argvs)
    assert any(a.startswith("train --config configs/casme2.yaml") for a in argvs)


@pytest.mark.parametrize("argv", _recorded_commands(), ids=lambda a: " ".join(a)[:80])
def test_benchmarks_command_runs_today(argv, monkeypatch, tmp_path):
    """Every recorded command parses and its config loads, or it is listed as superseded (with today's spelling
    beside it in the doc)."""
    monkeypatch.chdir(ROOT)
    command = " ".join(argv)
    problem = _problem(argv, tmp_path)
    if command in SUPERSEDED:
        assert problem, f"`icegan {command}` runs today: take it out of SUPERSEDED"
    else:
        assert not problem, f"docs/benchmarks.md records `icegan {command}`, and {problem}"


def _bench_commands() -> list[tuple[str, list[str]]]:
    """(script, arguments) of every recorded ``python bench/SCRIPT.py ...`` command; one elided (``...``) or with a
    pattern (``<run>``) is left out, a shell variable (``$R``) stands for a path."""
    found = []
    texts = code_lines(BENCHMARKS) + [s for s in re.findall(r"`([^`\n]+)`", BENCHMARKS) if "bench/" in s]
    for text in texts:
        m = re.search(r"python3? (bench/\w+\.py)(.*)$", text)
        if not m:
            continue
        rest = re.split(r"\s[>|]\s|;|&&", m.group(2))[0]
        if "<" in rest or "..." in rest:
            continue
        rest = re.sub(r"(\S+?)(?:\|\S+)+", r"\1", rest)                 # a|b: the first
        found.append((m.group(1), shlex.split(re.sub(r"\$\{?\w+\}?", "X", rest))))
    return found


class _Parsed(Exception):
    pass


def test_benchmarks_records_bench_commands():
    """The scan is not vacuous: the flow benchmark and the leave-one-dataset-out script are found."""
    scripts = {script for script, _ in _bench_commands()}
    assert len(_bench_commands()) >= 35
    assert {"bench/flow_benchmark.py", "bench/leave_dataset_out.py", "bench/shared_errors.py"} <= scripts


@pytest.mark.parametrize("script,argv", _bench_commands(), ids=lambda v: " ".join(v)[:70] if isinstance(v, list) else v)
def test_benchmarks_bench_command_parses(script, argv, monkeypatch):
    """The script exists and its argument parser accepts the recorded arguments (the script stops right after
    parsing: nothing is computed)."""
    path = ROOT / script
    assert path.is_file(), f"docs/benchmarks.md records {script}, which is not in the repository"
    assert "parse_args(" in path.read_text(encoding="utf-8"), f"{script} has no argument parser to check"

    def parse_only(self, args=None, namespace=None):
        raise _Parsed(parse_args(self, args, namespace))
    parse_args = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    monkeypatch.setattr(sys, "argv", [script, *argv])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(ROOT)
    environ = dict(os.environ)
    try:
        runpy.run_path(str(path), run_name="__main__")
    except _Parsed:
        return
    except SystemExit as exc:     # argparse's error exit
        pytest.fail(f"docs/benchmarks.md records `python {script} {shlex.join(argv)}`, which the script rejects "
                    f"(exit {exc.code})")
    finally:
        os.environ.clear()
        os.environ.update(environ)
    pytest.fail(f"{script} ran without parsing its arguments")
