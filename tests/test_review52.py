"""Review of d1d57f4..e738c7f: a ``~`` inside a table / compare entry, the not-UTF-8 message of the CASME II manifest
and the composite sheet, one predicate for ids written in ASCII digits."""
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flownet.user_numbers import is_ascii_digits, read_frame_number
from icegan.report import parse_entry


# --- 1. a ``~`` after ``LABEL=`` or ``,`` in an entry of icegan table / compare is the home folder -------------------

@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home folder holding two seeds of one run (metrics.json only)."""
    metrics = {"protocol": "CDE", "n_folds": 68, "n_samples": 442, "oracle_epoch": False,
               "overall": {"UF1": 0.7, "UAR": 0.7}, "per_dataset": {}}
    for seed in (0, 1):
        (tmp_path / f"ours_s{seed}").mkdir()
        (tmp_path / f"ours_s{seed}" / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("text, label, seeds", [
    ("ours=~/ours_s0", "ours", [0]),                    # after the label
    ("ours=~/ours_s*", "ours", [0, 1]),                 # a glob pattern
    ("ours=~/ours_s0,~/ours_s1", "ours", [0, 1]),       # each folder of a list
    ("~/ours_s0,~/ours_s1", "ours", [0, 1]),            # after a comma, no label: the seeds' shared name
])
def test_table_entry_expands_home_in_each_folder(home, text, label, seeds):
    entry = parse_entry(text)
    assert entry.label == label
    assert entry.runs == [home / f"ours_s{s}" for s in seeds]


def test_table_entry_of_unknown_user_names_the_entry(home):
    with pytest.raises(ValueError, match=r"table entry 'x=~nosuchuser52/a'.*no user 'nosuchuser52'.*full path"):
        parse_entry("x=~nosuchuser52/a")


def test_table_entry_keeps_a_tilde_inside_a_name(home, tmp_path, monkeypatch):
    monkeypatch.chdir(home)
    (home / "a~b").mkdir()
    assert parse_entry("x=a~b").runs == [Path("a~b")]


def test_icegan_table_reads_a_quoted_home_entry(home, capsys):
    """As the shell hands it over: ``icegan table "ours=~/ours_s0"`` (the CLI expands only a value starting with ~)."""
    from icegan.cli import main

    rc = main(["table", "ours=~/ours_s0"])
    out, err = capsys.readouterr()
    assert "matches no run folder" not in err
    assert rc == 0 and "| ours" in out, err


# --- 2. a CASME II manifest or composite sheet that is not UTF-8: one message naming the file and the byte ----------

def _latin1(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("latin-1"))
    return path


MANIFEST = "subject,filename,class3,onset,apex,verified,apex_in_folder,note\nsub01,EP01,positive,1,2,True,True,café\n"


def test_gan_pairs_manifest_not_utf8_names_the_file(tmp_path):
    from icegan.gan.pairs import load_casme2_pairs

    manifest = _latin1(tmp_path / "casme2" / "manifest.csv", MANIFEST)
    with pytest.raises(ValueError) as err:
        load_casme2_pairs(tmp_path / "casme2", cache=False)
    assert str(err.value) == f"{manifest}: not UTF-8 text (byte 0xe9); save it as 'CSV UTF-8'"


def test_extra_faces_sheet_not_utf8_names_the_file(tmp_path):
    from flownet.data.synthetic_face import extra_face_paths

    sheet = _latin1(tmp_path / "megc2019_htnet" / "combined_3_class2_for_optical_flow.csv",
                    "dataset,imagename\nsamm,café.jpg\n")
    with pytest.raises(ValueError) as err:
        extra_face_paths(tmp_path)
    assert str(err.value) == f"{sheet}: not UTF-8 text (byte 0xe9); save it as 'CSV UTF-8'"


def test_the_three_readers_say_the_same_of_one_manifest(tmp_path):
    """flownet's read_manifest and icegan's GAN pairs, given the same file, say the same thing."""
    from flownet.data.real_pairs import read_manifest
    from icegan.gan.pairs import load_casme2_pairs

    manifest = _latin1(tmp_path / "casme2" / "manifest.csv", MANIFEST)
    with pytest.raises(ValueError) as a:
        read_manifest(manifest)
    with pytest.raises(ValueError) as b:
        load_casme2_pairs(manifest.parent, cache=False)
    assert str(a.value) == str(b.value)


# --- 3. one predicate for "ASCII digits only", one reader of a frame number written as text -------------------------

#: any text, and text made of what a number's look-alikes are made of (signs, blanks, '.', '_', non-ASCII digits)
NUMBERISH = st.one_of(st.text(max_size=10), st.text("0123456789 +-.eE²٣３_\n\t\u00a0", max_size=10))


def _old_parse_frame_text(s):
    """sheets.parse_frame's text branch as it was (``s`` stripped)."""
    from flownet.user_numbers import WHOLE_NUMBER_TEXT
    m = WHOLE_NUMBER_TEXT.fullmatch(s)
    if m:
        try:
            return int(m.group(1)), None
        except ValueError:
            return None, f"{s[:20] + '...'!r} ({len(s)} characters) is not a frame number"
    return None, f"{s!r} is not a frame number"


@settings(max_examples=500)
@given(NUMBERISH)
def test_is_ascii_digits_is_one_or_more_of_0_to_9(text):
    """The rule stated independently of its code (isascii and isdecimal): one or more characters 0-9, nothing else."""
    assert is_ascii_digits(text) == (re.fullmatch(r"[0-9]+", text) is not None)


@pytest.mark.parametrize("text, ok", [("0", True), ("007", True), ("", False), ("+1", False), ("-1", False),
                                      (" 1", False), ("1.0", False), ("1_0", False), ("²", False), ("٣", False),
                                      ("３", False), ("1\n", False)])
def test_is_ascii_digits_examples(text, ok):
    assert is_ascii_digits(text) is ok


@settings(max_examples=500)
@given(NUMBERISH)
def test_parse_frame_text_is_the_old_rule(text):
    from icegan.data.sheets import parse_frame

    if text.strip():
        assert parse_frame(text) == _old_parse_frame_text(text.strip())


@pytest.mark.parametrize("text", ["1" * 5000, " " + "2" * 4400 + ".00 "])
def test_frame_number_of_more_digits_than_int_reads_names_the_cell(text):
    """read_frame_number raised int()'s own 'Exceeds the limit ... for integer string conversion'; now it says what
    parse_frame said of such a sheet cell, which reads frame numbers through it."""
    from icegan.data.sheets import parse_frame

    with pytest.raises(ValueError) as err:
        read_frame_number(text)
    assert str(err.value) == f"{text.strip()[:20] + '...'!r} ({len(text.strip())} characters) is not a frame number"
    assert parse_frame(text) == (None, str(err.value))


@pytest.mark.parametrize("text", ["²", "٣", "３", " 1", "+1", "1.0", ""])
def test_gan_class_id_takes_ascii_digits_only(text):
    from icegan.gan.pairs import class_id

    with pytest.raises(ValueError, match="unknown class"):
        class_id(text)


def test_gan_class_id_reads_an_id_or_a_name():
    from icegan.gan.pairs import class_id

    assert (class_id("2"), class_id(1), class_id("Positive")) == (2, 1, 1)
