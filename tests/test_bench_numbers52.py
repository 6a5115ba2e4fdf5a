"""The numeric flags of the ``bench/`` scripts read numbers as every ``icegan`` and ``flownet`` command does: with the
shared argparse types :func:`flownet.user_numbers.integer` / :func:`~flownet.user_numbers.number` (ASCII digits,
finite, range-checked), never a bare ``int`` / ``float`` (which read ``1_0`` as 10, ``nan``, ``inf``, fullwidth
digits and negative counts). Each script's parser is taken as it builds it in ``main()``: the script runs as
``__main__`` and stops at ``parse_args`` (nothing is computed)."""
import argparse
import os
import runpy
import sys
from pathlib import Path

import pytest
from _bench import bench_parser

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if "ArgumentParser(" in p.read_text(encoding="utf-8"))


def numeric_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The actions whose value is a number: a bare int / float type or the shared integer / number types."""
    return [a for a in parser._actions
            if a.type in (int, float) or getattr(a.type, "__name__", "") in ("integer", "number")]


def _defaults(action: argparse.Action) -> list:
    d = action.default
    return [] if d is None else list(d) if isinstance(d, (list, tuple)) else [d]


def test_scripts_found():
    """The walk is not vacuous: the scripts with parsers and their ~55 numeric flags are all found."""
    assert len(SCRIPTS) >= 25
    assert {"flow_benchmark", "conv_chunk", "learning_curve", "training_steps"} <= set(SCRIPTS)


def test_numeric_flag_count(monkeypatch):
    n = sum(len(numeric_actions(bench_parser(name, monkeypatch))) for name in SCRIPTS)
    assert n >= 55


@pytest.mark.parametrize("name", SCRIPTS)
def test_numeric_flags_use_the_shared_types(name, monkeypatch):
    """No bare int / float type; '1_0', 'nan', 'inf' and fullwidth digits are refused; every default is accepted
    by its own flag's type (and read back as itself)."""
    parser = bench_parser(name, monkeypatch)
    for action in numeric_actions(parser):
        flag = action.option_strings[0] if action.option_strings else action.dest
        assert action.type not in (int, float), f"bench/{name}.py {flag} reads its number with bare {action.type}"
        for text in ("1_0", "nan", "inf", "１６", ""):
            with pytest.raises(argparse.ArgumentTypeError, match="expected"):
                action.type(text)
        for default in _defaults(action):
            assert action.type(str(default)) == default, f"bench/{name}.py {flag}: default {default!r} refused"


@pytest.mark.parametrize("name,argv,words", [
    ("flow_benchmark", ["--threads", "0"], ["--threads", ">= 1", "got 0"]),
    ("flow_benchmark", ["--n128", "1_0"], ["--n128", "expected an integer", "'1_0'"]),
    ("conv_chunk", ["--chunks", "4", "-1"], ["--chunks", ">= 1", "got -1"]),
    ("classical_loso", ["--seed", "-1"], ["--seed", "[0, 4294967295]", "got -1"]),
    ("dataset_probe", ["--weights", "0.3", "nan"], ["--weights", "expected a finite number", "'nan'"]),
    ("dataset_probe", ["--weights", "-0.5"], ["--weights", ">= 0", "got -0.5"]),
    ("learning_curve", ["run", "--target", "inf"], ["--target", "expected a finite number", "'inf'"]),
    ("flow_val_iters", ["--generic-val", "-3"], ["--generic-val", ">= 0", "got -3"]),
    ("preprocess_throughput", ["--chunk", "0"], ["--chunk", ">= 1", "got 0"]),
    ("synthetic_pairs", ["--workers", "-1"], ["--workers", ">= 0", "got -1"]),
])
def test_bad_number_names_the_flag(name, argv, words, monkeypatch, capsys):
    """A number out of range or not a number stops the script with argparse's error, naming the flag, the range
    and the value."""
    parser = bench_parser(name, monkeypatch)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


@pytest.mark.parametrize("name,argv,dest,value", [
    ("synthetic_pairs", ["--workers", "0"], "workers", 0),          # DataLoader in the main process
    ("flow_decompose", ["--tune", "0"], "tune", 0),                 # no RANSAC sweep
    ("loso_features", ["x.yaml", "--threads", "0"], "threads", 0),   # config threads: 0 = default
    ("flow_speed", ["--iters", " 4", "+8"], "iters", [4, 8]),
    ("dataset_probe", ["--weights", "0", ".5", "1e-1"], "weights", [0.0, 0.5, 0.1]),
])
def test_good_numbers_are_read(name, argv, dest, value, monkeypatch):
    parser = bench_parser(name, monkeypatch)
    assert getattr(parser.parse_args(argv), dest) == value


def _run_to_exit(name: str, argv: list[str], monkeypatch) -> int:
    """Run ``bench/<name>.py argv`` in-process until it exits; its exit code (the arguments are meant to be refused
    right after parsing, before any work)."""
    path = ROOT / "bench" / f"{name}.py"
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(ROOT)
    environ = dict(os.environ)
    try:
        with pytest.raises(SystemExit) as exc:
            runpy.run_path(str(path), run_name="__main__")
    finally:
        os.environ.clear()
        os.environ.update(environ)
    return exc.value.code


@pytest.mark.parametrize("value,words", [
    ("nan", ["--subject-reference", "'nan'", "'none'", ">= 0"]),
    ("inf", ["--subject-reference", "'inf'"]),
    ("-1", ["--subject-reference", "got -1"]),
    ("1_0", ["--subject-reference", "'1_0'"]),
    ("abc", ["--subject-reference", "'abc'", "'none'"]),
])
def test_classical_loso_subject_reference_is_a_finite_k(value, words, monkeypatch, capsys, tmp_path):
    """--subject-reference K (read after parsing): 'none' or a finite K >= 0; NaN, inf, a negative K (n / (n + K)
    divides by 0 at n = -K) or '1_0' stop the script before the data are loaded (--root: an empty folder, so a
    value let through fails on loading instead of running the benchmark)."""
    argv = ["--subject-reference", "none", value, "--root", str(tmp_path)]
    assert _run_to_exit("classical_loso", argv, monkeypatch) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


@pytest.mark.parametrize("value,words", [
    ("1_0", ["--sizes", "'1_0'", "HxW"]),
    ("０", ["--sizes", "'０'"]),
    ("0", ["--sizes", ">= 1", "got 0"]),
    ("388x-584", ["--sizes", "got -584"]),
    ("128x", ["--sizes", "''"]),
    ("abc", ["--sizes", "'abc'"]),
])
def test_flow_speed_sizes_are_pixel_counts(value, words, monkeypatch, capsys):
    """--sizes N or HxW (read after parsing): ASCII digits >= 1; '1_0' (read as 10 before), fullwidth digits, 0 or
    a negative side stop the script with argparse's error, before any timing."""
    import torch
    threads = torch.get_num_threads()
    try:
        argv = ["--sizes", "128", value, "--methods", "farneback", "--repeats", "1"]
        assert _run_to_exit("flow_speed", argv, monkeypatch) == 2
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
