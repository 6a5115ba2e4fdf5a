"""Exit statuses of `icegan data composite` and `icegan data check` (follow-up of audit 62): a row or clip left out only
by the sheet's own onset/apex coding (the MEGC2019 rules: an apex not coded, an apex on or before the onset; the
official CASME II sheet has 2 such rows) is listed but leaves 0; a typo of the sheet, a problem of the copy on disk
or nothing usable gives 1."""
from __future__ import annotations

import json

import pytest

from icegan.cli import main
from icegan.data.check import SKIP, check_dataset, record_problems

from _clip_records import casme2_sheet, clip_record, grey_frames

# --------------------------------------------------------------------------------------------- data composite

def test_data_composite_exits_0_on_the_official_sheets(shared_data, tmp_path, capsys):
    """The 2 CASME II rows the MEGC2019 rules leave out (apex '/', apex = onset) made a complete copy exit 1."""
    js = tmp_path / "composite.json"
    assert main(["data", "composite", "--annotations-dir", str(shared_data / "annotations"), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "excluded casme2/sub04/EP12_01f: apex is not a frame number" in out
    assert "excluded casme2/sub05/EP09_05f: apex equals onset" in out
    d = json.loads(js.read_text())
    assert [(e["clip"], e["rule"]) for e in d["casme2"]["excluded"]] == [("sub04/EP12_01f", "megc2019"),
                                                                          ("sub05/EP09_05f", "megc2019")]
    assert (d["casme2"]["clips"], d["samm"]["clips"], d["samm"]["excluded"]) == (145, 133, [])


def test_data_composite_exits_1_for_an_emotion_typo_and_0_for_rows_the_rules_leave_out(tmp_path, capsys):
    ruled = ["1,EP01_01,2,5,9,4,disgust", "1,EP01_02,2,/,9,4,happiness", "1,EP01_03,3,3,9,4,surprise",
             "1,EP01_04,6,4,9,4,repression"]
    casme2_sheet(tmp_path / "ruled", *ruled)
    js = tmp_path / "ruled.json"
    assert main(["data", "composite", "--annotations-dir", str(tmp_path / "ruled"), "--json", str(js)]) == 0
    excluded = json.loads(js.read_text())["casme2"]["excluded"]
    assert [(e["clip"], e["rule"]) for e in excluded] == [("sub01/EP01_02", "megc2019"), ("sub01/EP01_03", "megc2019"),
                                                          ("sub01/EP01_04", "megc2019")]
    assert "excluded casme2/sub01/EP01_04: apex 4 is before onset 6" in capsys.readouterr().out
    casme2_sheet(tmp_path / "typo", *ruled, "1,EP01_05,2,5,9,4,digust")
    js = tmp_path / "typo.json"
    assert main(["data", "composite", "--annotations-dir", str(tmp_path / "typo"), "--json", str(js)]) == 1
    assert "excluded casme2/sub01/EP01_05: emotion 'digust'" in capsys.readouterr().out
    assert json.loads(js.read_text())["casme2"]["excluded"][-1]["rule"] == "unknown_emotion"
    # nothing counted: 1, though no row is a typo
    casme2_sheet(tmp_path / "none", "1,EP01_02,2,/,9,4,happiness", "1,EP01_06,2,5,9,4,others")
    assert main(["data", "composite", "--annotations-dir", str(tmp_path / "none")]) == 1


# ------------------------------------------------------------------------------------------------- data check

def _tree(tmp_path, *extra_rows):
    """A complete CASME II copy of subject 1 (clips EP01_01..EP01_04, frames 1-10 each) and its sheet: EP01_01 usable,
    EP01_02 apex '/', EP01_03 apex = onset, EP01_04 apex before onset; ``extra_rows`` appended."""
    for c in ("EP01_01", "EP01_02", "EP01_03", "EP01_04"):
        grey_frames(tmp_path / "casme2" / "sub01" / c)
    return casme2_sheet(tmp_path / "ann", "1,EP01_01,2,5,9,4,disgust", "1,EP01_02,2,/,9,4,happiness",
                  "1,EP01_03,3,3,9,4,surprise", "1,EP01_04,6,4,9,4,others", *extra_rows)


@pytest.mark.parametrize("composite_only", [False, True])
def test_data_check_exits_0_when_only_the_sheets_coding_leaves_clips_out(tmp_path, capsys, composite_only):
    """`icegan data check` on a complete copy exited 1 for a clip whose apex the sheet does not code: it is still
    listed as skipped (every row) and named in skipped_for_sheet_coding, but leaves 0."""
    sheet = _tree(tmp_path)
    js = tmp_path / "check.json"
    assert main(["data", "check", "--dataset", "casme2", "--root", str(tmp_path / "casme2"), "--annotations",
                 str(sheet), "--no-read-images", "--json", str(js)] + ["--composite-only"] * composite_only) == 0
    rep = json.loads(js.read_text())
    coded = [] if composite_only else ["casme2/sub01/EP01_02", "casme2/sub01/EP01_03", "casme2/sub01/EP01_04"]
    assert [s["clip"] for s in rep["clips_skipped"]] == coded
    assert rep["skipped_for_sheet_coding"] == coded
    assert rep["clips_usable"] == 1
    if not composite_only:
        assert "[skip] casme2/sub01/EP01_02: apex is not a frame number in the sheet" in capsys.readouterr().out


def test_data_check_exits_1_for_a_missing_frame_beside_the_sheets_coding(tmp_path, capsys):
    """A frame missing on disk is a problem of the copy: 1, whatever else the sheet leaves out."""
    sheet = _tree(tmp_path, "1,EP01_05,2,5,9,4,disgust")
    grey_frames(tmp_path / "casme2" / "sub01" / "EP01_05", [1, 2, 3, 4, 6, 7, 8, 9])     # the apex 5 is missing
    args = ["data", "check", "--dataset", "casme2", "--root", str(tmp_path / "casme2"), "--annotations", str(sheet),
            "--no-read-images"]
    assert main(args) == 1
    assert "[skip] casme2/sub01/EP01_05: apex frame 5 not on disk" in capsys.readouterr().out
    rep = check_dataset("casme2", tmp_path / "casme2", sheet, read_images=False)
    assert rep.problems_found() and "casme2/sub01/EP01_05" not in rep.skipped_for_sheet_coding
    # a clip whose apex is both before the onset and missing on disk is a problem of the copy too
    (tmp_path / "casme2" / "sub01" / "EP01_04" / "img4.png").unlink()
    (tmp_path / "casme2" / "sub01" / "EP01_05" / "img5.png").write_bytes(
        (tmp_path / "casme2" / "sub01" / "EP01_05" / "img4.png").read_bytes())
    rep = check_dataset("casme2", tmp_path / "casme2", sheet, read_images=False)
    assert rep.skipped_for_sheet_coding == ["casme2/sub01/EP01_02", "casme2/sub01/EP01_03"]
    assert rep.problems_found()


def test_data_check_exits_1_when_only_the_sheets_coding_clips_are_there(tmp_path):
    """Nothing usable is still 1, even when every clip is left out by the sheet's coding alone."""
    grey_frames(tmp_path / "casme2" / "sub01" / "EP01_02")
    sheet = casme2_sheet(tmp_path / "ann", "1,EP01_02,2,/,9,4,happiness")
    assert main(["data", "check", "--dataset", "casme2", "--root", str(tmp_path / "casme2"), "--annotations",
                 str(sheet), "--no-read-images"]) == 1


@pytest.mark.parametrize("onset, apex, frames, coding", [
    (None, 15, range(10, 21), True), (10, None, range(10, 21), True), (15, 12, range(10, 21), True),
    (12, 12, range(10, 21), True), (10, 25, range(10, 21), False), (30, 35, range(10, 21), False)])
def test_record_problems_marks_the_skips_of_the_sheets_own_coding(tmp_path, onset, apex, frames, coding):
    """The skips the sheet's onset/apex cells cause are marked (Problem.sheet_coding), those of the frames on disk not."""
    rec = clip_record(tmp_path, onset=onset, apex=apex, frames=frames)
    skips = [p for p in record_problems(rec) if p.severity == SKIP]
    assert skips and all(p.sheet_coding is coding for p in skips)
    assert "sheet_coding" not in skips[0].as_dict()         # the JSON's clips_with_problems keep their shape


def test_the_help_texts_give_the_exit_rule(capsys):
    with pytest.raises(SystemExit):
        main(["data", "composite", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("Exit status 0: every row counted or left out by the MEGC2019 rules (an apex not coded, an apex on or "
            "before the onset: 2 rows of the official CASME II sheet), each excluded row printed; 1: a row is excluded "
            "because its emotion is no label of the sheet (a typo) or because an onset or apex cell mistyped (5.7, an "
            "empty SAMM cell) is no frame number, or no clip is counted") in text        # (review62a)
    with pytest.raises(SystemExit):
        main(["data", "check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit status 0: every clip in scope is usable or skipped only for its sheet row's onset/apex coding" in text
    assert "1: a problem of the copy on disk or of your input" in text
