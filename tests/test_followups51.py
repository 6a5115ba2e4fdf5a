"""Follow-ups of the fifty-first session's clean-up: the run's skipped.csv keeps any reason text, and the CASME II
manifest's onset / apex cells are read as frame numbers only when they are ones."""
from __future__ import annotations

import pandas as pd
import pytest

from flownet.data.real_pairs import _frame_number
from icegan.pipeline import read_skipped, write_skipped


def test_run_skipped_csv_round_trips_any_reason_text(tmp_path):
    """A bare '\\r' in a reason (an exception's text) was written unquoted by pandas and read back as a row break;
    'None' / 'NA' reasons and a key '001' must come back as the same text."""
    skipped = pd.DataFrame({"key": ["casme2/sub01/EP01", "001", "smic/s1/a,b"],
                            "reason": ["cut\rshort", "None", 'a "quoted", two-line\nreason']})
    path = tmp_path / "skipped.csv"
    write_skipped(path, skipped)
    back = read_skipped(path, fix="rerun")
    assert back["key"].tolist() == skipped["key"].tolist()
    assert back["reason"].tolist() == skipped["reason"].tolist()


def test_run_skipped_csv_is_removed_when_no_clip_was_skipped(tmp_path):
    path = tmp_path / "skipped.csv"
    write_skipped(path, pd.DataFrame({"key": ["k"], "reason": ["r"]}))
    write_skipped(path, pd.DataFrame(columns=["key", "reason"]))
    assert not path.exists()


@pytest.mark.parametrize("text, number", [("46", 46), ("46.0", 46), (" 7 ", 7), (12, 12), (3.0, 3), ("0", 0)])
def test_manifest_frame_numbers_as_a_sheet_writes_them(text, number):
    assert _frame_number(text, "apex", "manifest.csv row sub01/EP01") == number


@pytest.mark.parametrize("text", ["46.5", "nan", "inf", "1e3", "-4", "\u0663", "4_6", "", "/"])
def test_manifest_cells_that_are_no_frame_number_are_refused_naming_the_row(text):
    """'46.5' was read as frame 46 and 'inf' stopped the run with int()'s OverflowError; non-ASCII digits were
    frame numbers."""
    with pytest.raises(ValueError, match=r"manifest.csv row sub01/EP01: apex .* is not a frame number"):
        _frame_number(text, "apex", "manifest.csv row sub01/EP01")


@pytest.mark.parametrize("flag, text", [("--n-synthetic", "1_0"), ("--n-real", "-1"), ("--alpha1", "nan"),
                                        ("--threads", "\u0663"), ("--alpha2", "inf")])
def test_selfsup_study_flags_read_numbers_as_the_icegan_flags_do(flag, text, capsys):
    """flownet's study command reads its numbers by the one rule of flownet.user_numbers (a local copy before)."""
    from flownet.selfsup import _main
    with pytest.raises(SystemExit) as exc:
        _main(["--alpha2-study", "shipped", flag, text])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: " in err and (f"got {text!r}" in err or f"got {text}\n" in err)    # text or value


def test_user_numbers_is_the_rule_of_the_icegan_flags():
    from flownet import user_numbers
    from icegan.commands import _numbers
    assert _numbers.read_int is user_numbers.read_int and _numbers.read_number is user_numbers.read_number
    assert user_numbers.read_int(" -12 ") == -12 and user_numbers.read_int("+7") == 7    # as int() and the configs
    assert user_numbers.read_number(".5e1") == 5.0
    for bad in ("1_0", "\uff13", "+-3"):
        with pytest.raises(ValueError, match="expected an integer"):
            user_numbers.read_int(bad)


# -- frame numbers of the CASME II manifest and the sheets: one rule (flownet.user_numbers.read_frame_number) ---------

@pytest.mark.parametrize("cell, number", [("46", 46), ("46.0", 46), (" 7 ", 7), (46, 46), (46.0, 46), ("0", 0)])
def test_read_frame_number_reads_whole_numbers_as_a_sheet_writes_them(cell, number):
    from flownet.user_numbers import read_frame_number
    assert read_frame_number(cell) == number


@pytest.mark.parametrize("cell", ["46.", "46.5", 46.5, "nan", float("nan"), "inf", float("inf"), "1e3", "-4", -4,
                                  "\u0663", "\uff14\uff16", "", "/"])
def test_read_frame_number_refuses_the_rest_naming_the_cell(cell):
    from flownet.user_numbers import read_frame_number
    with pytest.raises(ValueError, match="is not a frame number"):
        read_frame_number(cell)


@pytest.mark.parametrize("cell", ["\u0663", "\uff14\uff16"])
def test_sheet_frame_cells_are_ascii_digits(cell):
    """parse_frame matched (\\d+): an Arabic-Indic three or fullwidth 46 in a coding sheet was a frame number."""
    from icegan.data.sheets import parse_frame
    number, why = parse_frame(cell)
    assert number is None and "is not a frame number" in why


@pytest.mark.parametrize("name", ["\u0661", "\uff12", "\u00b2"])
def test_gan_class_given_with_other_digits_is_refused(name):
    """class_id('١') was class 1 and class_id('２') class 2 (str.isdecimal passes them)."""
    from icegan.gan.pairs import class_id
    assert class_id("1") == 1
    with pytest.raises(ValueError, match="unknown class"):
        class_id(name)


@pytest.mark.parametrize("cell", ["46.5", "inf", "\u0663"])
def test_gan_pairs_refuse_a_manifest_onset_that_is_no_frame_number(tmp_path, cell):
    """load_casme2_pairs read onset '46.5' as frame 46, '٣' as 3, and stopped on 'inf' with int()'s OverflowError."""
    from icegan.gan.pairs import load_casme2_pairs
    root = tmp_path / "casme2"
    (root / "sub01" / "EP01").mkdir(parents=True)
    pd.DataFrame({"subject": ["sub01"], "filename": ["EP01"], "onset": [cell], "apex": ["3"],
                  "class3": ["positive"], "verified": ["True"], "apex_in_folder": ["True"]}
                 ).to_csv(root / "manifest.csv", index=False)
    with pytest.raises(ValueError, match=r"row \d+ \(sub01/EP01\): onset .* are not frame numbers"):
        load_casme2_pairs(root, img_size=32, cache=False)


def test_compare_plot_titles_a_partial_baseline_without_its_tag(tmp_path, monkeypatch):
    """The forest plot's right-hand titles read 'paired ΔUF1 vs cut [PARTIAL: 6 of 10 folds]' after the tables
    had dropped the tag from their headers; the baseline's own row label keeps it."""
    import json

    import matplotlib.figure
    from test_significance import _rows, _write_run

    from icegan.cli import main
    truth = [0, 1, 2, 2]
    part = _write_run(tmp_path / "part", _rows(6, truth, lambda s, j, y: y if s % 3 else 0))
    header = json.loads((part / "run.json").read_text())
    (part / "run.json").write_text(json.dumps({**header, "folds_total": 10}))
    whole = _write_run(tmp_path / "whole", _rows(6, truth, lambda s, j, y: 0 if j == 3 else y))
    seen = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def savefig(fig, *args, **kwargs):
        seen["titles"] = [ax.get_title(loc) for ax in fig.axes for loc in ("left", "center", "right")]
        seen["ticks"] = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
        return real_savefig(fig, *args, **kwargs)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    plot = tmp_path / "cmp.png"
    assert main(["compare", f"cut={part}", f"whole={whole}", "--resamples", "300", "--plot", str(plot)]) == 0
    assert plot.is_file()
    vs = [t for t in seen["titles"] if "vs" in t]
    assert vs and all("PARTIAL" not in t and "vs cut" in t for t in vs), seen["titles"]
    assert any("cut [PARTIAL: 6 of 10 folds]" in t for t in seen["ticks"]), seen["ticks"]


def test_the_documented_missing_value_strings_are_pandas_own():
    """icegan.csv_names falls back on the documented list where pandas moved its private set: the two must agree."""
    from pandas._libs.parsers import STR_NA_VALUES

    from icegan.csv_names import DOCUMENTED_NA_VALUES
    assert set(STR_NA_VALUES) == set(DOCUMENTED_NA_VALUES)


def test_casme2_manifest_saved_with_a_byte_order_mark_is_read(tmp_path):
    """A spreadsheet's 'CSV UTF-8' starts with a BOM: the first column read as '\\ufeffsubject', and the manifest was
    refused as missing its subject column."""
    from flownet.data.real_pairs import read_manifest
    path = tmp_path / "manifest.csv"
    path.write_bytes(b"\xef\xbb\xbfsubject,filename,onset,apex,verified,note\r\nsub01,EP01,10,12,True,\r\n")
    rows = read_manifest(path)
    assert [(r["subject"], r["filename"], r["onset"], r["apex"]) for r in rows] == [("sub01", "EP01", "10", "12")]
    path.write_bytes(b"subject,filename,onset,apex,verified,note\nsub01,EP\xe901,10,12,True,\n")   # Latin-1
    with pytest.raises(ValueError, match=r"manifest.csv: not UTF-8 text \(byte 0xe9\); save it as 'CSV UTF-8'"):
        read_manifest(path)


def test_a_quoted_home_path_on_the_command_line_is_the_home_folder(tmp_path, monkeypatch):
    """The shell leaves the ~ of a quoted path ('--out "~/my runs/t.md"', needed for a space) and of '--out=~/x'
    alone: icegan wrote into a folder named '~' in the working directory. Now every option and positional value
    that starts with ~ is read as a config path is (icegan.paths.expand_home); overrides go to the config reader."""
    from icegan.cli import build_parser, parse_with_overrides
    monkeypatch.setenv("HOME", str(tmp_path))
    args = parse_with_overrides(build_parser(), ["table", "~/runs/a", "runs/b", "--out", "~/my runs/t.md"])
    assert args.entries == [str(tmp_path / "runs" / "a"), "runs/b"] and args.out == str(tmp_path / "my runs" / "t.md")
    args = parse_with_overrides(build_parser(), ["loso", "--config", "~/c.yaml", "--out=~/r", "name=~x"])
    assert (str(args.config), str(args.out)) == (str(tmp_path / "c.yaml"), str(tmp_path / "r"))
    assert args.overrides == ["name=~x"]


def test_a_home_path_of_no_user_on_the_command_line_is_refused(capsys):
    from icegan.cli import build_parser, parse_with_overrides
    with pytest.raises(SystemExit) as exc:
        parse_with_overrides(build_parser(), ["table", "runs/a", "--out", "~no_such_user_51/t.md"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: icegan table" in err and "'~no_such_user_51/t.md'" in err and "write the full path" in err
