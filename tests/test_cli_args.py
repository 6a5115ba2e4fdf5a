"""Command-line parsing shared by train.py and the icegan subcommands."""
import pytest

from icegan.cli import build_parser, parse_with_overrides


def test_overrides_may_follow_options():
    p = build_parser()
    a = parse_with_overrides(p, ["train", "--config", "c.yaml", "a=1", "--out", "runs/x", "b=2", "--executor", "ray"])
    assert a.overrides == ["a=1", "b=2"] and a.out == "runs/x" and a.executor == "ray"


def test_unknown_option_is_still_an_error(capsys):
    with pytest.raises(SystemExit) as e:
        parse_with_overrides(build_parser(), ["train", "--out", "x", "--bogus"])
    assert e.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_train_py_accepts_trailing_overrides(tmp_path):
    import icegan.pipeline as P
    seen = {}
    orig = P.run_from_args
    P.run_from_args = lambda args: seen.setdefault("args", args) and 0
    try:
        P.main(["--out", str(tmp_path), "gan.epochs=1", "--no-progress", "data.max_folds=1"])
    finally:
        P.run_from_args = orig
    assert seen["args"].overrides == ["gan.epochs=1", "data.max_folds=1"]
