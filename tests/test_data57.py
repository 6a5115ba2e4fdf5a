"""Users' copies of the datasets and sheets: a row pasted twice in other case, a misfiled SMIC-HS clip folder, and a
coding sheet saved as .csv beside the others."""
from __future__ import annotations

import csv
import shutil

import openpyxl
import pytest

from icegan.cli import main
from icegan.data.sheets import CASME2_SHEET, SAMM_SHEET, SheetError, read_casme2_sheet
from _clip_records import smic_clip

HEADER = "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"


def _casme2_csv(path, *rows):
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_row_pasted_twice_with_its_clip_name_in_other_case_is_one_clip(tmp_path):
    """Clip folders are found ignoring case (EP02_01f finds ep02_01f/), so a row pasted twice with the clip name in
    other case was a second clip reading the same frames (146 composite clips from the official sheet plus such a
    row); it is now the same clip, counted once with a note, and two codings of it are still refused."""
    got = read_casme2_sheet(_casme2_csv(tmp_path / "case.csv", "1,EP02_01f,46,59,86,12,happiness",
                                        "1,EP03_02,131,139,161,18,others", "01,ep02_01f,46,59,86,12,happiness"))
    assert [(r.subject, r.clip) for r in got] == [("sub01", "EP02_01f"), ("sub01", "EP03_02")]
    assert got[0].notes == ["listed twice (sheet rows 2 and 4, the same cells but for letter case): counted once"]
    with pytest.raises(SheetError, match=r"other.csv rows 2 and 3: clip sub01/ep02_01f is listed twice with "
                                         r"different apex; delete the wrong row"):
        read_casme2_sheet(_casme2_csv(tmp_path / "other.csv", "1,EP02_01f,46,59,86,12,happiness",
                                      "1,ep02_01f,46,60,86,12,happiness"))


def test_a_row_pasted_twice_with_its_emotion_in_other_case_is_one_clip(tmp_path):
    """Emotion case is ignored everywhere else ('Happiness' is happiness): a duplicate row differing only there was
    refused as 'listed twice with different emotion'; it is now one clip, the first row's cells kept."""
    got = read_casme2_sheet(_casme2_csv(tmp_path / "emo.csv", "1,EP02_01f,46,59,86,12,happiness",
                                        "1,EP02_01f,46,59,86,12, Happiness "))
    assert len(got) == 1 and got[0].emotion == "happiness"
    assert got[0].notes == ["listed twice (sheet rows 2 and 3, the same cells but for letter case): counted once"]
    with pytest.raises(SheetError, match=r"different emotion"):
        read_casme2_sheet(_casme2_csv(tmp_path / "emo2.csv", "1,EP02_01f,46,59,86,12,happiness",
                                      "1,EP02_01f,46,59,86,12,surprise"))


def test_a_misfiled_smic_clip_folder_is_a_layout_problem_not_a_wrongly_labelled_clip(tmp_path):
    """s2/micro/negative/s2_sur_02 (the name says surprise) was a negative clip, s2/micro/negative/s1_ne_05 (the name
    says subject s1) a clip of s2's LOSO fold; the clip's name is the authority (as read_smic_sheet takes it), so each
    is now skipped with a layout problem naming its folder and both readings. Names in the pattern that agree (any
    case, s02 for s2) and names off the pattern are read as before."""
    from icegan.data.smic import SMIC
    smic_clip(tmp_path, "s1", "negative", "s1_ne_01")
    smic_clip(tmp_path, "s2", "surprise", "S02_SUR_01")
    smic_clip(tmp_path, "s2", "positive", "take3")
    wrong_class = smic_clip(tmp_path, "s2", "negative", "s2_sur_02")
    wrong_subject = smic_clip(tmp_path, "s2", "negative", "s1_ne_05")
    ds = SMIC(tmp_path)
    recs = ds.records()
    assert [(r.subject, r.clip, r.emotion) for r in recs] == [
        ("smic/s1", "s1_ne_01", "negative"), ("smic/s2", "take3", "positive"), ("smic/s2", "S02_SUR_01", "surprise")]
    assert ds.layout_problems == [
        {"clip": "smic/s2/micro/negative/s1_ne_05",
         "problem": f"clip folder {wrong_subject}: its name says subject s1, but it is in subject s2's folder; "
                    f"skipped (move it to s1's micro/negative/ folder, or rename it if its name is the mistake)"},
        {"clip": "smic/s2/micro/negative/s2_sur_02",
         "problem": f"clip folder {wrong_class}: its name says surprise, but it is in the negative folder; "
                    f"skipped (move it to s2's micro/surprise/ folder, or rename it if its name is the mistake)"}]
    assert ds.disk_clips() == [("s1", "s1_ne_01"), ("s2", "s1_ne_05"), ("s2", "s2_sur_02"), ("s2", "take3"),
                               ("s2", "S02_SUR_01")]        # in folder order, the skipped ones too


def test_data_check_counts_a_misfiled_smic_clip_folder_on_disk_and_as_skipped(tmp_path, capsys):
    """icegan data check skipped the misfiled folders but said 'clip folders on disk: 3' for 5 and 'skipped: 0' (its
    JSON clips_skipped empty); they are now counted on disk and listed as skipped with their reason."""
    import json
    smic_clip(tmp_path, "s1", "negative", "s1_ne_01")
    smic_clip(tmp_path, "s1", "negative", "s1_sur_02")
    smic_clip(tmp_path, "s2", "positive", "s1_po_01")
    js = tmp_path / "check.json"
    main(["data", "check", "--dataset", "smic", "--root", str(tmp_path), "--no-read-images", "--json", str(js)])
    printed = capsys.readouterr().out
    assert "clip folders on disk: 3" in printed and "skipped: 2" in printed
    report = json.loads(js.read_text())
    assert report["clip_folders_on_disk"] == 3 and report["clips_usable"] == 1
    assert [(c["clip"], "name says" in c["reason"]) for c in report["clips_skipped"]] == [
        ("smic/s1/micro/negative/s1_sur_02", True), ("smic/s2/micro/positive/s1_po_01", True)]


def _sheet_as_csv(xlsx, csv_path):
    rows = openpyxl.load_workbook(xlsx, data_only=True).worksheets[0].iter_rows(values_only=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["" if c is None else c for c in r] for r in rows])
    return csv_path


@pytest.fixture(scope="module")
def csv_sheets(shared_data, tmp_path_factory):
    """A folder with the CASME II sheet exported as CASME2-coding-20140508.csv and the SAMM sheet as distributed."""
    d = tmp_path_factory.mktemp("csvann")
    _sheet_as_csv(shared_data / "annotations" / CASME2_SHEET, d / "CASME2-coding-20140508.csv")
    shutil.copy(shared_data / "annotations" / SAMM_SHEET, d / SAMM_SHEET)
    return d


def test_composite_reads_the_csv_export_of_an_official_sheet(csv_sheets, capsys):
    """The sheets module reads a .csv export of the official sheet, but `icegan data composite` looked for the .xlsx
    name only ('casme2: not counted', advising to save the CSV under the .xlsx name, which then fails to read); the
    .csv under the sheet's name is now read, with the official counts."""
    from icegan.data.composite import composite_from_sheets
    out = composite_from_sheets(csv_sheets)
    assert {k: (v["clips"], v["subjects"]) for k, v in out.items()} == {"casme2": (145, 24), "samm": (133, 28)}
    assert main(["data", "composite", "--annotations-dir", str(csv_sheets)]) == 0     # 2 rows ruled out
    printed = capsys.readouterr().out
    assert "casme2     145       88       32       25       24\n" in printed and "not counted" not in printed


def test_the_sheet_lookup_finds_a_csv_beside_the_xlsx_name_xlsx_first(tmp_path):
    from icegan.data.base import find_sheet
    from icegan.data.composite import sheet_lookalikes
    from icegan.data.sheets import official_sheet_in
    root = tmp_path / "CASME2_RAW_selected"
    (root / "sub01").mkdir(parents=True)
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "CASME2-coding-20140508.csv").write_text(HEADER)
    assert official_sheet_in(ann, CASME2_SHEET) == ann / "CASME2-coding-20140508.csv"
    assert find_sheet(None, CASME2_SHEET, root) == ann / "CASME2-coding-20140508.csv"
    (ann / CASME2_SHEET).write_bytes(b"")
    assert official_sheet_in(ann, CASME2_SHEET) == ann / CASME2_SHEET
    assert find_sheet(None, CASME2_SHEET, root) == ann / CASME2_SHEET
    assert official_sheet_in(tmp_path, SAMM_SHEET) is None
    with pytest.raises(FileNotFoundError, match=r"annotation sheet SAMM_Micro_FACS_Codes_v2.xlsx \(or "
                                                r"SAMM_Micro_FACS_Codes_v2.csv\) not found"):
        find_sheet(None, SAMM_SHEET, root)
    # a copy under another name: a CSV is to be renamed to the .csv name, not saved under the .xlsx one
    (ann / CASME2_SHEET).unlink()
    (ann / "CASME2-coding-20140508.csv").rename(ann / "casme2-coding-20140508 (1).csv")
    (ann / "CASME2-coding-20140508.xls").write_bytes(b"")
    assert sheet_lookalikes(ann, CASME2_SHEET) == [
        f"{ann} holds CASME2-coding-20140508.xls: if that is the sheet, save it as {ann / CASME2_SHEET}",
        f"{ann} holds casme2-coding-20140508 (1).csv: if that is the sheet, save it as "
        f"{ann / 'CASME2-coding-20140508.csv'}"]
    with pytest.raises(SheetError, match=r"expected CASME2-coding-20140508.xlsx \(CASME II\) and/or "
                                         r"SAMM_Micro_FACS_Codes_v2.xlsx \(SAMM\), as their owners distribute them, "
                                         r"or each exported as .csv under the same name"):
        from icegan.data.composite import composite_from_sheets
        composite_from_sheets(ann)


def test_action_units_read_the_csv_export_of_an_official_sheet(csv_sheets, shared_data):
    """model.au_weight > 0 reads the clips' action units from the sheets by their official names: a folder holding
    the CASME II sheet as its .csv export (read by `icegan data composite`) failed with 'not at ....xlsx'; it now gives
    the same targets as the .xlsx."""
    from icegan.data.action_units import action_unit_targets
    args = (["casme2", "casme2", "samm"], ["sub01", "casme2/sub02", "006"], ["EP02_01f", "EP09_01", "006_1_2"])
    t_csv, k_csv = action_unit_targets(*args, annotations=csv_sheets)
    t_xlsx, k_xlsx = action_unit_targets(*args, annotations=shared_data / "annotations")
    assert k_csv.tolist() == k_xlsx.tolist() and k_csv.any() and (t_csv == t_xlsx).all() and t_csv.sum() > 0
    with pytest.raises(ValueError, match=r"clip 'EP99_99' of subject 'sub01' \(casme2\) is not in .*/csvann\d*/"
                                         r"CASME2-coding-20140508\.csv"):
        action_unit_targets(["casme2"], ["sub01"], ["EP99_99"], annotations=csv_sheets)
