"""`icegan data check` / `data composite` (audit 62): exit 1 when clips are skipped or excluded, the clips of an SMIC
class folder that is no class counted, two sheet columns for one field refused, a clip list's ignored columns in the
report, and a help text that says what stops the check."""
from __future__ import annotations

import json

import pytest

from icegan.cli import main
from icegan.data.check import check_dataset
from icegan.data.sheets import SheetError, read_casme2_sheet

from _clip_records import constant_clip, grey_frames

HEADER = "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"


def _sheet(folder, *rows, header=HEADER):
    """A CASME II sheet exported as CSV under its official name in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "CASME2-coding-20140508.csv"
    path.write_text(header + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ exit status

def test_data_check_exits_0_when_clean_and_1_when_a_clip_is_skipped_or_none_is_usable(tmp_path, capsys):
    """`icegan data check` returned 0 whatever it found (nothing usable, clips skipped): a script could not tell a
    good copy from a broken one. 0 now means every clip in scope is usable (a warning, e.g. truncated, alone leaves
    it 0), 1 that a clip is skipped or none is usable, 2 a fatal error as before."""
    clean = constant_clip(tmp_path, "c1", offset="12")          # offset past the frames on disk: a warning only
    assert main(["data", "check", "--dataset", "clips", "--root", str(clean), "--no-read-images"]) == 0
    assert "[warn] clips/me/c1: truncated" in capsys.readouterr().out
    one_bad = tmp_path / "one_bad.csv"
    one_bad.write_text(f"subject,clip,frames,onset,apex\nme,c1,{tmp_path / 'c1'},2,5\nme,c2,{tmp_path / 'nothere'},2,5\n")
    assert main(["data", "check", "--dataset", "clips", "--root", str(one_bad), "--no-read-images"]) == 1
    assert "usable (onset present, apex present or to be spotted): 1; skipped: 1" in capsys.readouterr().out
    none = tmp_path / "none.csv"
    none.write_text(f"subject,clip,frames,onset,apex\nme,c2,{tmp_path / 'nothere'},2,5\n")
    assert main(["data", "check", "--dataset", "clips", "--root", str(none), "--no-read-images"]) == 1
    assert main(["data", "check", "--dataset", "clips", "--root", str(tmp_path / "absent.csv")]) == 2


def test_data_check_exits_1_for_sheet_rows_of_a_subject_not_on_disk(tmp_path, capsys):
    """A subject of the sheet without its folder: its clips are counted per subject, not listed as skipped, and are
    still clips the check cannot use: exit 1."""
    sheet = _sheet(tmp_path / "ann", "1,EP01_01,2,5,9,4,disgust", "2,EP01_02,2,5,9,4,disgust")
    grey_frames(tmp_path / "casme2" / "sub01" / "EP01_01", range(1, 11))
    assert main(["data", "check", "--dataset", "casme2", "--root", str(tmp_path / "casme2"), "--annotations",
                 str(sheet), "--no-read-images"]) == 1
    assert "subjects in the sheet but not on disk: casme2/sub02 (1 clip)" in capsys.readouterr().out
    clean = _sheet(tmp_path / "ann1", "1,EP01_01,2,5,9,4,disgust")
    assert main(["data", "check", "--dataset", "casme2", "--root", str(tmp_path / "casme2"), "--annotations",
                 str(clean), "--no-read-images"]) == 0


def test_data_composite_exits_1_when_a_row_is_excluded(tmp_path, capsys):
    """`icegan data composite` printed 'excluded ...: emotion 'digust' ... is not a label' and returned 0."""
    _sheet(tmp_path / "clean", "1,EP01_01,2,5,9,4,disgust", "1,EP01_02,2,5,9,12,happiness")
    assert main(["data", "composite", "--annotations-dir", str(tmp_path / "clean")]) == 0
    _sheet(tmp_path / "typo", "1,EP01_01,2,5,9,4,disgust", "1,EP01_02,2,5,9,12,digust")
    assert main(["data", "composite", "--annotations-dir", str(tmp_path / "typo")]) == 1
    assert "excluded casme2/sub01/EP01_02: emotion 'digust'" in capsys.readouterr().out


def test_the_help_of_data_check_says_what_stops_it_and_the_exit_statuses(capsys):
    """The help said 'Never stops at a bad clip', yet a malformed row of a clip list or sheet stops the check (exit
    2, naming the file and line); it now says so, and what each exit status means."""
    with pytest.raises(SystemExit):
        main(["data", "check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Never stops at a bad clip" not in text
    assert "a malformed row of the clip list or sheet stops it, naming the file and line" in text
    assert "A bad clip on disk never stops the check" in text
    assert "Exit status 0: every clip in scope is usable" in text
    assert "1: a problem of the copy on disk or of your input" in text       # not the sheet's coding (exitstatus62)
    with pytest.raises(SystemExit):
        main(["data", "composite", "--help"])
    assert "1: a row is excluded because its emotion is no label of the sheet" in " ".join(
        capsys.readouterr().out.split())


def test_a_malformed_clip_list_row_stops_the_check_naming_file_and_line(tmp_path, capsys):
    """What the reworded help says: a bad label on line 3 is a fatal error (exit 2) naming the file and line."""
    csv = tmp_path / "bad.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,label\nme,c1,{tmp_path}/c1,2,5,positive\nme,c2,{tmp_path}/c1,3,6,"
                   f"disgust\n")
    grey_frames(tmp_path / "c1")
    assert main(["data", "check", "--dataset", "clips", "--root", str(csv), "--no-read-images"]) == 2
    assert f"{csv}, line 3 (clip 'c2'): label 'disgust'" in capsys.readouterr().err


# ------------------------------------------------------------------------------- SMIC class folder not a class

def _smic_with_a_renamed_class_folder(tmp_path):
    micro = tmp_path / "HS" / "s1" / "micro"
    for folder in ("negative/s1_ne_01", "positive/s1_po_01", "surprised/s1_sur_01", "surprised/s1_sur_02",
                   "surprised/take3"):
        grey_frames(micro / folder, range(1, 4))
    return micro


@pytest.mark.parametrize("composite_only", [False, True])
def test_the_clips_of_an_smic_class_folder_that_is_no_class_are_counted_as_skipped(tmp_path, composite_only):
    """micro/surprised/ (for surprise/) printed its [skip] line, but its clips were in no count: not in 'clips in
    sheet/tree', 'clip folders on disk' or 'skipped', nor in the in-scope class counts. Each is now skipped with its
    reason and counted; in its class by its name (s1_sur_01), in no class when its name says none (take3)."""
    micro = _smic_with_a_renamed_class_folder(tmp_path)
    rep = check_dataset("smic", tmp_path, composite_only=composite_only, read_images=False)
    why = (f"in class folder {micro / 'surprised'}, which is not one of ('negative', 'positive', 'surprise'): not "
           f"read (rename the folder to its class)")
    assert rep.clips_skipped == [{"clip": f"smic/s1/micro/surprised/{c}", "reason": why}
                                 for c in ("s1_sur_01", "s1_sur_02", "take3")]
    assert (rep.clips_in_sheet, rep.clip_folders_on_disk, rep.clips_usable) == (5, 5, 2)
    assert rep.by_class == {"negative": 1, "positive": 1, "surprise": 2}
    assert rep.by_class_usable == {"negative": 1, "positive": 1, "surprise": 0}
    text = rep.text()
    assert "clips in sheet/tree: 5; clip folders on disk: 5" in text and "skipped: 3" in text
    assert "surprise 0/2" in text
    assert "[skip] smic/s1/micro/surprised: class folder 'surprised' is not one of" in text


# --------------------------------------------------------------------------------- two columns for one field

@pytest.mark.parametrize("extra, cells, both, field", [
    ("Estimated Emotion,Emotion", "disgust,surprise", "'Estimated Emotion' and 'Emotion'", "emotion"),
    ("Estimated Emotion,Apex", "disgust,7", "'ApexFrame' and 'Apex'", "apex"),
    ("Estimated Emotion,ApexFrame", "disgust,7", "'ApexFrame' and 'ApexFrame'", "apex")])
def test_two_sheet_columns_for_one_field_are_refused_naming_both(tmp_path, extra, cells, both, field):
    """A sheet with 'Estimated Emotion' and 'Emotion' (or 'ApexFrame' and 'Apex', or one name twice) read the first
    silently; which one was meant is unknown, so the sheet is refused naming both columns."""
    header = "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units," + extra + "\n"
    sheet = _sheet(tmp_path, "1,EP01_01,2,5,9,4," + cells, header=header)
    with pytest.raises(SheetError) as err:
        read_casme2_sheet(sheet)
    assert str(err.value) == (f"{sheet}: columns {both} both give the {field}: keep one of them, so that it is clear "
                              f"which cells are read")


def test_data_check_stops_at_a_sheet_with_two_columns_for_one_field(tmp_path, capsys):
    sheet = _sheet(tmp_path / "ann", "1,EP01_01,2,5,9,4,disgust,surprise",
                   header=HEADER.strip() + ",Emotion\n")
    grey_frames(tmp_path / "casme2" / "sub01" / "EP01_01", range(1, 11))
    assert main(["data", "check", "--dataset", "casme2", "--root", str(tmp_path / "casme2"), "--annotations",
                 str(sheet), "--no-read-images"]) == 2
    assert "columns 'Estimated Emotion' and 'Emotion' both give the emotion" in capsys.readouterr().err


# ------------------------------------------------------------------------------ clip list columns left unread

def test_data_check_reports_the_clip_list_columns_it_ignores(tmp_path, capsys):
    """The loader warns of a column it does not read ('notes'), but data check holds the icegan.data warnings back
    (its report lists the problems itself), so the warning was lost; it is now a [warn] line and in the JSON."""
    frames = grey_frames(tmp_path / "c1")
    csv = tmp_path / "clips.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,notes\nme,c1,{frames},2,5,first take\n")
    js = tmp_path / "check.json"
    assert main(["data", "check", "--dataset", "clips", "--root", str(csv), "--no-read-images", "--json",
                 str(js)]) == 0
    note = (f"{csv}: column 'notes' ignored: not a clip list column (a clip list reads subject, clip, frames, onset, "
            f"apex, offset, label, dataset)")
    assert f"  [warn] {note}" in capsys.readouterr().out.splitlines()
    assert json.loads(js.read_text())["notes"] == [note]
    assert check_dataset("clips", constant_clip(tmp_path / "plain"), read_images=False).notes == []
