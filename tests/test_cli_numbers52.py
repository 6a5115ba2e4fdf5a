"""The number flags of ``icegan train``, ``icegan data check`` and ``python -m flownet.selfsup --alpha2-study`` are
read by the shared argparse types (:func:`flownet.user_numbers.integer` / :func:`~flownet.user_numbers.number`,
re-exported by :mod:`icegan.commands._numbers`) instead of hand-written twins: each flag refuses ``1_0``, ``nan`` and
a value below its range naming the flag, the range and the value, and takes its documented values."""
import argparse

import pytest

from icegan.cli import build_parser

from _one_line_error import one_line_error

TRAIN = ["train"]
CHECK = ["data", "check", "--dataset", "casme2", "--root", "r"]
SELFSUP = ["--alpha2-study", "shipped"]


class _Parsed(Exception):
    """Raised in place of running the study once its arguments are parsed."""


@pytest.fixture
def selfsup(monkeypatch):
    """``parse(argv)`` by ``python -m flownet.selfsup``'s own parser (built in its ``_main``), stopping before the
    study runs; returns ``(parser, namespace)``."""
    from flownet.selfsup import _main
    real = argparse.ArgumentParser.parse_args

    def parse_only(self, args=None, namespace=None):
        parse_only.seen = (self, real(self, args, namespace))
        raise _Parsed
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)

    def parse(argv):
        with pytest.raises(_Parsed):
            _main([*SELFSUP, *argv])
        return parse_only.seen
    return parse


def _refused(command, argv, capsys, selfsup_parse, *words):
    with pytest.raises(SystemExit) as done:
        if command == "selfsup":
            selfsup_parse(argv)
        else:
            build_parser().parse_args([*command, *argv])
    assert done.value.code == 2
    one_line_error(capsys, *words)


FLAGS = [  # command, flag, a value below the flag's range, the range as the message gives it
    (TRAIN, "--workers", "-1", ">= 0"),
    (TRAIN, "--cpus-per-fold", "0", "> 0"),
    (CHECK, "--workers", "0", ">= 1"),
    ("selfsup", "--alpha1", "-0.01", ">= 0"),
    ("selfsup", "--alpha2", "-1", ">= 0"),
    ("selfsup", "--n-synthetic", "0", ">= 1"),
    ("selfsup", "--n-real", "-1", ">= 0"),
    ("selfsup", "--threads", "0", ">= 1"),
]


@pytest.mark.parametrize("command, flag, below, bound", FLAGS)
@pytest.mark.parametrize("text", ["1_0", "nan"])
def test_a_flag_refuses_what_is_no_number_naming_flag_range_and_text(command, flag, below, bound, text, capsys,
                                                                       selfsup):
    _refused(command, [flag, text], capsys, selfsup, f"argument {flag}: expected", bound, repr(text))


@pytest.mark.parametrize("command, flag, below, bound", FLAGS)
def test_a_flag_refuses_a_value_below_its_range_naming_flag_range_and_value(command, flag, below, bound, capsys,
                                                                            selfsup):
    """selfsup's twin said 'expected an integer >= 1, got '0'' of a number out of range, as of a word."""
    _refused(command, [flag, below], capsys, selfsup, f"argument {flag}: must be", bound, f"got {below}")


def test_the_documented_values_are_taken():
    parse = build_parser().parse_args
    assert (parse(TRAIN).workers, parse(TRAIN).cpus_per_fold) == (0, 1)
    a = parse([*TRAIN, "--workers", "3", "--cpus-per-fold", "0.5"])
    assert (a.workers, a.cpus_per_fold) == (3, 0.5)
    assert parse([*TRAIN, "--cpus-per-fold", " 2 "]).cpus_per_fold == 2.0
    assert parse(CHECK).workers == 2
    assert parse([*CHECK, "--workers", "1"]).workers == 1
    assert parse([*CHECK, "--workers", "+8"]).workers == 8


def test_the_study_s_documented_values_are_taken(selfsup):
    _, a = selfsup([])
    assert (a.alpha2, a.alpha1, a.n_synthetic, a.n_real, a.threads) == ([0.5, 0.1, 0.05], 0.01, 32, 32, 1)
    _, a = selfsup(["--alpha2", "0.5", ".1", "5e-2", "0", "--alpha1", "0", "--n-synthetic", "1", "--n-real", "0",
                    "--threads", " 4 "])
    assert (a.alpha2, a.alpha1, a.n_synthetic, a.n_real, a.threads) == ([0.5, 0.1, 0.05, 0.0], 0.0, 1, 0, 4)


def _action(parser, flag):
    return next(a for a in parser._actions if flag in a.option_strings)


def test_the_flags_are_read_by_the_shared_types(selfsup):
    """One rule: the types come from flownet.user_numbers (icegan.commands._numbers re-exports them, so flownet,
    which imports nothing of icegan, has them too); --cpus-per-fold keeps its own type (a bound excluded: > 0)."""
    from flownet import user_numbers
    from icegan.commands import _numbers
    from icegan.commands.data import _threads
    from icegan.commands.train import _cores, add_arguments
    assert _numbers.integer is user_numbers.integer and _numbers.number is user_numbers.number
    train = argparse.ArgumentParser()
    add_arguments(train)
    study, _ = selfsup([])
    types = [_action(train, "--workers").type, _threads] + [_action(study, f).type for f in
                                                            ("--alpha1", "--alpha2", "--n-synthetic", "--n-real",
                                                             "--threads")]
    assert {t.__module__ for t in types} == {"flownet.user_numbers"}
    assert _action(train, "--cpus-per-fold").type is _cores
