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
    """flownet's study command reads its numbers by the one rule of flownet.number_text (a local copy before)."""
    from flownet.selfsup import _main
    with pytest.raises(SystemExit) as exc:
        _main(["--alpha2-study", "shipped", flag, text])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: expected" in err and repr(text) in err


def test_number_text_is_the_rule_of_the_icegan_flags():
    from flownet import number_text
    from icegan.commands import _numbers
    assert _numbers.read_int is number_text.read_int and _numbers.read_number is number_text.read_number
    assert number_text.read_int(" -12 ") == -12 and number_text.read_number(".5e1") == 5.0
    for bad in ("1_0", "\uff13", "+3"):
        with pytest.raises(ValueError, match="expected an integer"):
            number_text.read_int(bad)
