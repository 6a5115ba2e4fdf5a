"""The numbers given to the command-line flags: read strictly, as a user types them (ASCII digits; a number finite),
refused by argparse naming the flag and the value given; the spellings that worked keep working."""
import argparse

import pytest

from icegan.cli import build_parser, main

from _one_line_error import one_line_error


def _refused(argv, capsys, *words):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    one_line_error(capsys, *words)


# every one of these was read by int() / float() as a number (1_0 as 10, '٣' as 3, nan as NaN) and run with it
@pytest.mark.parametrize("argv, flag, value", [
    (["compare", "r", "--resamples", "1_000"], "--resamples", "1_000"),
    (["compare", "r", "--confidence", ".9_5"], "--confidence", ".9_5"),
    (["compare", "r", "--seed", "1_0"], "--seed", "1_0"),
    (["ensemble", "a", "b", "--out", "e", "--weights", "1", "1_0"], "--weights", "1_0"),
    (["predict", "--model", "m.pt", "--table", "t.csv", "--out", "p.csv", "--weights", "0_5"], "--weights", "0_5"),
    (["flow", "eval", "--size", "1_28"], "--size", "1_28"),
    (["flow", "eval", "--n-pairs", "1_00"], "--n-pairs", "1_00"),
    (["flow", "eval", "--max-motion", "nan"], "--max-motion", "nan"),
    (["flow", "eval", "--iters", "1_2"], "--iters", "1_2"),
    (["flow", "eval", "--threads", "\u0663"], "--threads", "\u0663"),         # ARABIC-INDIC DIGIT THREE
    (["gan", "eval", "--checkpoint", "c.pt", "--n-per-class", "1_0"], "--n-per-class", "1_0"),
    (["gan", "eval", "--checkpoint", "c.pt", "--seed", "1_0"], "--seed", "1_0"),
    (["generate", "--checkpoint", "c.pt", "--onset", "f.png", "--class", "0", "--out", "o", "-n", "2_0"], "-n", "2_0"),
    (["generate", "--checkpoint", "c.pt", "--onset", "f.png", "--class", "0", "--out", "o", "--seed", "7_0"],
     "--seed", "7_0"),
    (["data", "check", "--dataset", "casme2", "--root", "r", "--workers", "1_6"], "--workers", "1_6"),
    (["train", "--workers", "1_0"], "--workers", "1_0"),
    (["train", "--cpus-per-fold", "1_5"], "--cpus-per-fold", "1_5"),
    (["suite", "--config", "c", "--seeds", "0,1_0"], "--seeds", "0,1_0"),
])
def test_a_number_int_or_float_read_loosely_is_refused_naming_its_flag(argv, flag, value, capsys):
    _refused(argv, capsys, f"argument {flag}", repr(value))


@pytest.mark.parametrize("argv, flag, words", [
    (["flow", "eval", "--max-motion", "-1"], "--max-motion", [">= 0", "pixels", "-1"]),
    (["flow", "eval", "--max-motion", "1e999"], "--max-motion", ["finite", "1e999"]),
    (["gan", "eval", "--checkpoint", "c.pt", "--n-per-class", "0"], "--n-per-class", [">= 1", "got 0"]),
    (["gan", "eval", "--checkpoint", "c.pt", "--seed", "-1"], "--seed", ["in [0, 4294967295]", "got -1"]),
    (["gan", "eval", "--checkpoint", "c.pt", "--seed", "4294967296"], "--seed", ["got 4294967296"]),
    (["generate", "--checkpoint", "c.pt", "--onset", "f.png", "--class", "0", "--out", "o", "-n", "0"], "-n",
     [">= 1", "faces per onset", "got 0"]),
])
def test_a_flag_s_own_range_is_checked_by_argparse(argv, flag, words, capsys):
    """Nothing named these flags before: --max-motion nan failed in the scenes ('cannot convert float NaN to
    integer'), -n 0 as synthesize's 'n_per_onset must be >= 1', a negative gan eval --seed in scikit-learn."""
    _refused(argv, capsys, f"argument {flag}", *words)


def test_the_values_that_worked_keep_working():
    parse = build_parser().parse_args
    assert parse(["ensemble", "a", "b", "--out", "e", "--weights", "1", "0.5"]).weights == [1.0, 0.5]
    assert parse(["predict", "--model", "m", "--table", "t", "--out", "o", "--weights", "2", ".5", "1e-1"]).weights \
        == [2.0, 0.5, 0.1]
    assert parse(["suite", "--config", "c", "--seeds", "0,1,2"]).seeds == [0, 1, 2]
    assert parse(["suite", "--config", "c", "--seeds", " -3, 4 ,"]).seeds == [-3, 4]
    a = parse(["compare", "r", "--resamples", "200", "--confidence", "0.9", "--seed", " 7 "])
    assert (a.resamples, a.confidence, a.seed) == (200, 0.9, 7)
    a = parse(["flow", "eval", "--size", "64", "--n-pairs", "100", "--max-motion", "24", "--iters", "12",
               "--threads", "0", "--input-size", "128"])
    assert (a.size, a.n_pairs, a.max_motion, a.iters, a.threads, a.input_size) == (64, 100, 24.0, 12, 0, "128")
    a = parse(["train", "--workers", "0", "--cpus-per-fold", "0.5"])
    assert (a.workers, a.cpus_per_fold) == (0, 0.5)
    a = parse(["generate", "--checkpoint", "c", "--onset", "f", "--class", "0", "--out", "o", "-n", "3",
               "--seed", " 5 "])
    assert (a.n, a.seed) == (3, 5)                  # a seed in [0, 2**32-1], as gan eval's (test_review_fixes52)
    a = parse(["gan", "eval", "--checkpoint", "c", "--n-per-class", "1", "--seed", "4294967295"])
    assert (a.n_per_class, a.seed) == (1, 4294967295)


def test_ranges_checked_after_parsing_keep_their_messages(tmp_path, capsys):
    """--seed -1, --resamples 10 and --confidence 1.5 of compare are still refused by _check_numbers (exit 2, no
    SystemExit), ensemble's negative weight by its own rule: the strict types read them and let them through."""
    assert main(["compare", str(tmp_path / "r"), "--confidence", "1.5"]) == 2
    one_line_error(capsys, "--confidence must be in (0, 1), got 1.5")
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "e"),
                 "--weights", "1", "-1"]) == 2
    one_line_error(capsys, "--weights", "[1.0, -1.0]")


@pytest.mark.parametrize("text, value", [("7", 7), (" 7 ", 7), ("-3", -3), ("+3", 3), ("0", 0),
                                         ("007", 7)])
def test_read_int_reads_ascii_integers(text, value):
    from icegan.commands._numbers import read_int
    assert read_int(text) == value


@pytest.mark.parametrize("text", ["1_0", "\u00b2", "\u0663", "1.0", "", " ", "1e3", "0x10", "--1", "+-1"])
def test_read_int_refuses_the_rest_naming_the_text(text):
    from icegan.commands._numbers import read_int
    with pytest.raises(ValueError, match="expected an integer"):
        read_int(text)


@pytest.mark.parametrize("text, value", [("1", 1.0), ("0.5", 0.5), (".5", 0.5), ("5.", 5.0), ("-2e-3", -0.002),
                                         ("1E+2", 100.0), (" 3 ", 3.0), ("5e-324", 5e-324),
                                         ("+1", 1.0)])
def test_read_number_reads_finite_decimal_numbers(text, value):
    from icegan.commands._numbers import read_number
    assert read_number(text) == value


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "Infinity", "1e999", "1_0", "0x1p3", ".", "e3", "", "++1",
                                  "\u0663"])
def test_read_number_refuses_the_rest_naming_the_text(text):
    from icegan.commands._numbers import read_number
    with pytest.raises(ValueError, match="expected a finite number"):
        read_number(text)


@pytest.mark.parametrize("argv, flag", [(["--alpha1", "nan"], "--alpha1"), (["--alpha2", "0.5", "inf"], "--alpha2"),
                                        (["--alpha1", "-0.1"], "--alpha1"), (["--n-synthetic", "0"], "--n-synthetic"),
                                        (["--n-real", "1_0"], "--n-real"), (["--threads", "0"], "--threads")])
def test_selfsup_study_refuses_a_bad_number_naming_its_flag(argv, flag, capsys):
    """python -m flownet.selfsup read --alpha1 nan (every pixel confident), --threads 0 (torch's RuntimeError)."""
    from flownet.selfsup import _main
    with pytest.raises(SystemExit) as done:
        _main(["--alpha2-study", "shipped", *argv])
    assert done.value.code == 2
    err = one_line_error(capsys, f"argument {flag}: ")
    assert f"got {argv[-1]!r}" in err or f"got {argv[-1]}\n" in err    # no number: the text; out of range: the value


def test_shared_types_are_argparse_types():
    from icegan.commands._numbers import integer, number
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be in \[1, 3\] \(things\), got 4"):
        integer(1, 3, "things")("4")
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a finite number >= 0, got 'nan'"):
        number(0)("nan")



# ------------------------------------------------------------------ icegan generate --class (commands/gan.py)

@pytest.mark.parametrize("text", ["\u00b2", "\u0662", "1_0", "-1", "3"])
def test_generate_class_by_number_is_ascii_digits_below_the_class_count(text):
    """'²' passed str.isdigit() and int('²') raised its bare 'invalid literal for int()'; '٢' (ARABIC-INDIC TWO)
    was read as class 2. Both now get the message of an unknown class, naming --class and the classes."""
    from icegan.commands.gan import _class_of
    with pytest.raises(ValueError, match=rf"unknown class '{text}' \(--class\).*ck\.pt.*negative, positive, surprise"):
        _class_of(text, ("negative", "positive", "surprise"), "ck.pt")


def test_generate_class_by_name_or_number_still_reads():
    from icegan.commands.gan import _class_of
    classes = ("negative", "positive", "surprise")
    assert [_class_of(t, classes, "ck.pt") for t in ("0", " 2 ", "Positive", "surprise")] == [0, 2, 1, 2]


# ------------------------------------------------------------------ icegan compare: a partial baseline's tag, once

@pytest.mark.parametrize("fmt", ["markdown", "latex"])
def test_compare_names_a_partial_baseline_s_tag_once(tmp_path, capsys, fmt):
    """A baseline cut by max_folds had its '[PARTIAL: 6 of 10 folds]' in each of the three Δ header cells (and the
    LaTeX caption) besides its own row: four times in one table. Its row keeps the tag; the header names the entry."""
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_significance import _rows, _write_run
    truth = [0, 1, 2, 2]
    part = _write_run(tmp_path / "part", _rows(6, truth, lambda s, j, y: y if s % 3 else 0))
    header = json.loads((part / "run.json").read_text())
    (part / "run.json").write_text(json.dumps({**header, "folds_total": 10}))
    whole = _write_run(tmp_path / "whole", _rows(6, truth, lambda s, j, y: 0 if j == 3 else y))
    out = tmp_path / "cmp.txt"
    assert main(["compare", f"cut={part}", f"whole={whole}", "--resamples", "300", "--format", fmt,
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert text.count("[PARTIAL: 6 of 10 folds]") == 1, text
    assert ("| cut [PARTIAL: 6 of 10 folds] | 1 | honest |" in text if fmt == "markdown"
            else "cut [PARTIAL: 6 of 10 folds] & 1 & honest &" in text)
    assert ("ΔUF1 vs cut [95 % CI]" in text) if fmt == "markdown" else ("$\\Delta$UF1 vs cut [95 \\% CI]" in text)
