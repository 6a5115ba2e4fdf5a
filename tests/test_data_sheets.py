"""Official annotation sheets: exact MEGC2019 composite counts and the sheets' quirks."""
from __future__ import annotations

import json

import openpyxl
import pytest

from icegan.cli import main as icegan_main
from icegan.data.composite import composite_class, composite_from_sheets, composite_summary
from icegan.data.sheets import (SheetError, parse_frame, read_casme2_sheet, read_samm_sheet,
                                read_smic_sheet)


@pytest.fixture(scope="module")
def ann(shared_data):
    return shared_data / "annotations"


def test_casme2_sheet_composite_counts(ann):
    rows = read_casme2_sheet(ann / "CASME2-coding-20140508.xlsx")
    assert len(rows) == 255
    assert len({r.subject for r in rows}) == 26
    s = composite_summary(rows)
    assert (s["clips"], s["negative"], s["positive"], s["surprise"], s["subjects"]) == (145, 88, 32, 25, 24)
    excluded = {e["clip"] for e in s["excluded"]}
    assert excluded == {"sub04/EP12_01f", "sub05/EP09_05f"}


def test_casme2_sheet_quirk_slash_apex(ann):
    rows = {(r.subject, r.clip): r for r in read_casme2_sheet(ann / "CASME2-coding-20140508.xlsx")}
    r = rows[("sub04", "EP12_01f")]
    assert r.apex is None and r.onset == 261 and r.offset == 321
    assert any("'/'" in n and "row 31" in n for n in r.notes)
    assert rows[("sub01", "EP02_01f")].onset == 46 and rows[("sub01", "EP02_01f")].apex == 59
    cls, why = composite_class(r)
    assert cls is None and why.startswith("apex is not a frame number")


def test_samm_sheet_composite_counts(ann):
    rows = read_samm_sheet(ann / "SAMM_Micro_FACS_Codes_v2.xlsx")
    assert len(rows) == 159
    assert rows[0].subject == "006" and rows[0].clip == "006_1_2" and rows[0].row == 15
    assert (rows[0].onset, rows[0].apex, rows[0].offset) == (5562, 5588, 5632)
    assert rows[0].objective_class == 3
    s = composite_summary(rows)
    assert (s["clips"], s["negative"], s["positive"], s["surprise"], s["subjects"]) == (133, 92, 26, 15, 28)


def test_smic_sheet_counts(ann):
    rows = read_smic_sheet(ann / "SMIC-HS-E_annotation.xlsx")
    assert len(rows) == 157  # trailing blank rows skipped
    assert len({r.subject for r in rows}) == 16
    by = {e: sum(r.emotion == e for r in rows) for e in ("negative", "positive", "surprise")}
    assert by == {"negative": 65, "positive": 51, "surprise": 41}      # s18_sur_03 by its file name (sheet: negative)
    assert all(r.apex is None for r in rows)
    r = rows[0]
    assert (r.subject, r.clip, r.onset, r.offset) == ("s20", "s20_ne_01", 17581039, 17581055)


def test_parse_frame_quirks():
    assert parse_frame(46) == (46, None)
    assert parse_frame(46.0) == (46, None)
    assert parse_frame(" 46 ") == (46, None)
    assert parse_frame("/")[0] is None and "'/'" in parse_frame("/")[1]
    assert parse_frame("?")[0] is None
    assert parse_frame(None) == (None, "empty")
    assert parse_frame(4.5)[0] is None


def test_header_found_by_content_with_blank_rows_and_text_cells(tmp_path):
    p = tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["SAMM Dataset - Master FACS Codes"])
    ws.append([])
    ws.append(["Symbol Key:"])
    ws.append(["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
               "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"])
    ws.append(["006", "006_1_2", 1, 5562, 5588, 5632, 71, "Micro - 1/2", "4+7", "Anger", 3, None])
    ws.append([])
    ws.append([7, "007_3_1", 3, "100", "?", 150, 51, "Micro", "12", "Happiness", 1, None])
    ws.append(["007", "007_3_2", 3, 200, 230, 260, 61, "Micro", "12", "Other", 7, None])
    wb.save(p)
    rows = read_samm_sheet(p)
    assert [r.clip for r in rows] == ["006_1_2", "007_3_1", "007_3_2"]
    assert rows[1].subject == "007" and rows[1].onset == 100 and rows[1].apex is None
    assert any("'?'" in n and "row 7" in n for n in rows[1].notes)
    s = composite_summary(rows)
    assert s["clips"] == 1 and s["excluded"][0]["clip"] == "007/007_3_1"


def test_sheet_errors_name_the_file(tmp_path):
    with pytest.raises(SheetError) as missing:
        read_casme2_sheet(tmp_path / "nope.xlsx")
    assert str(missing.value) == f"annotation sheet not found: {tmp_path / 'nope.xlsx'}"
    p = tmp_path / "bad.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["no", "header", "here"])
    wb.save(p)
    with pytest.raises(SheetError, match="bad.xlsx: no header row"):
        read_samm_sheet(p)
    with pytest.raises(SheetError) as other:
        read_smic_sheet(p, sheet="HS")
    assert str(other.value) == f"{p}: no worksheet named 'HS' (has ['Sheet'])"
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(SheetError) as unreadable:
        read_casme2_sheet(broken)
    assert str(unreadable.value).startswith(f"{broken}: cannot be read as an .xlsx workbook: ")
    header_only = _samm_workbook(tmp_path / "header_only.xlsx")
    with pytest.raises(SheetError) as no_rows:
        read_samm_sheet(header_only)
    assert str(no_rows.value) == f"{header_only}: header found but no clip rows below it"
    nameless = _samm_workbook(tmp_path / "nameless.xlsx", rows=[("006", None, 5562, 5588, 5580, "4", "Anger", 3)])
    with pytest.raises(SheetError) as empty_cell:
        read_samm_sheet(nameless)
    assert str(empty_cell.value).startswith(f"{nameless} row 2: subject or filename is empty in a non-blank row: ")


def _samm_workbook(path, header=None, rows=(), notes_sheet_first=False):
    wb = openpyxl.Workbook()
    ws = wb.active
    if notes_sheet_first:
        ws.title = "README"
        ws.append(["How to read this workbook"])
        ws.append([])
        ws = wb.create_sheet("MICRO_ONLY")
    ws.append(header or ["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Action Units",
                         "Estimated Emotion", "Objective Classes"])
    for r in rows:
        ws.append(list(r))
    wb.save(path)
    return path


def test_sheet_quirks_users_meet(tmp_path):
    """A notes worksheet in front of the clip sheet is passed over; a renamed apex column is a header error (not a
    skip of every clip); an apex after the offset is a note naming the row; an old .xls says to save it as .xlsx or
    .csv; a workbook without any header names its worksheets."""
    rows = [("006", "006_1_2", 5562, 5588, 5580, "4+7", "Anger", 3), ("006", "006_1_3", 3900, 3950, 3990, "12",
                                                                         "Happiness", 1)]
    p = _samm_workbook(tmp_path / "extra.xlsx", rows=rows, notes_sheet_first=True)
    got = read_samm_sheet(p)
    assert [r.clip for r in got] == ["006_1_2", "006_1_3"]
    assert got[0].notes == ["apex 5588 is after offset 5580 (sheet row 2): one of the two cells is wrong; the apex is "
                            "used as written"]
    assert got[1].notes == []
    renamed = ["Subject", "Filename", "Onset Frame", "Apex Frame No.", "Offset Frame", "Action Units",
               "Estimated Emotion"]
    p = _samm_workbook(tmp_path / "renamed.xlsx", header=renamed, rows=[r[:7] for r in rows])
    with pytest.raises(SheetError, match=r"renamed.xlsx: header row lacks column\(s\) \['apex'\]; header is "):
        read_samm_sheet(p)
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0 not really")
    with pytest.raises(SheetError, match=r"old.xls: the old .xls format is not read; .*save it as \.xlsx.*\.csv"):
        read_samm_sheet(tmp_path / "old.xls")
    wb = openpyxl.Workbook()
    wb.active.append(["notes"])
    wb.create_sheet("other").append(["still", "no", "header"])
    wb.save(tmp_path / "none.xlsx")
    with pytest.raises(SheetError, match=r"none.xlsx: no worksheet has a header row starting with 'Subject' "
                                         r"\(worksheets \['Sheet', 'other'\]\)"):
        read_samm_sheet(tmp_path / "none.xlsx")


def test_a_clip_on_two_rows_and_sheets_users_export_badly(tmp_path):
    """A row pasted twice is one clip (with a note), not two; two rows of one clip with different cells are refused
    naming both rows; a CSV saved in a non-UTF-8 encoding and a subject that is not a number name the file (and row)."""
    rows = [("006", "006_1_2", 5562, 5570, 5580, "4+7", "Anger", 3), ("006", "006_1_3", 3900, 3950, 3990, "12",
                                                                        "Happiness", 1)]
    got = read_samm_sheet(_samm_workbook(tmp_path / "twice.xlsx", rows=[*rows, rows[0]]))
    assert [r.clip for r in got] == ["006_1_2", "006_1_3"]
    assert got[0].notes == ["listed twice (sheet rows 2 and 4, the same cells): counted once"]
    changed = (*rows[0][:3], 5571, *rows[0][4:])
    with pytest.raises(SheetError, match=r"conflict.xlsx rows 2 and 4: clip 006/006_1_2 is listed twice with "
                                         r"different apex; delete the wrong row"):
        read_samm_sheet(_samm_workbook(tmp_path / "conflict.xlsx", rows=[*rows, changed]))
    csv = tmp_path / "casme2.csv"
    # the bad byte far past the first read chunk (8 KiB): its offset and line are the file's
    text = ("Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"
            + "".join(f"1,EP01_{i:03d},10,13,16,4,others\n" for i in range(400)) + "2,EP02_01,10,13,16,4,caf\u00e9\n")
    csv.write_bytes(text.encode("cp1252"))
    at = text.index("\u00e9")
    assert at > 10_000
    with pytest.raises(SheetError, match=rf"casme2.csv: not UTF-8 text \(byte 0xe9 at byte {at}, line 402; .*save "
                                         r"it as 'CSV UTF-8' or as .xlsx"):
        read_casme2_sheet(csv)
    csv.write_bytes(b"\xef\xbb\xbf" + text.encode("cp1252"))      # with a BOM: the offset still counts it
    with pytest.raises(SheetError, match=rf"not UTF-8 text \(byte 0xe9 at byte {at + 3}, line 402; "):
        read_casme2_sheet(csv)
    csv.write_text("Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"
                   "1,EP01_01,10,13,16,4,others\nS-01,EP01_02,10,13,16,4,others\n")
    with pytest.raises(SheetError, match=r"casme2.csv row 3: CASME II subject 'S-01' is not a number"):
        read_casme2_sheet(csv)


def test_cli_composite_json(ann, tmp_path, capsys):
    out = tmp_path / "composite.json"
    assert icegan_main(["data", "composite", "--annotations-dir", str(ann), "--json", str(out)]) == 0  # rows ruled out
    d = json.loads(out.read_text())
    assert {k: d["casme2"][k] for k in ("clips", "negative", "positive", "surprise", "subjects")} == \
        {"clips": 145, "negative": 88, "positive": 32, "surprise": 25, "subjects": 24}
    assert {k: d["samm"][k] for k in ("clips", "negative", "positive", "surprise", "subjects")} == \
        {"clips": 133, "negative": 92, "positive": 26, "surprise": 15, "subjects": 28}
    printed = capsys.readouterr().out
    assert "casme2" in printed and "smic: not from a sheet" in printed     # SMIC's clips are said, not silently absent
    assert composite_from_sheets(ann)["samm"]["clips"] == 133


def test_sde_label_sets(ann):
    d = composite_from_sheets(ann)
    assert d["casme2"]["sde"]["class5"] == {"happiness": 32, "disgust": 63, "repression": 27,
                                           "surprise": 25, "others": 99}
    assert d["casme2"]["sde"]["excluded_emotions"] == {"fear": 2, "sadness": 7}
    oc = d["samm"]["sde"]["objective_class"]
    assert sum(oc.values()) == 159 and oc["7"] == 84 and set(oc) == {str(i) for i in range(1, 8)}
    # the single-dataset label sets (data.labels) counted from the same rows, by sheet emotion
    c5 = d["casme2"]["sde"]["label_sets"]["casme2_5"]
    assert c5["classes"] == d["casme2"]["sde"]["class5"] and c5["clips"] == 246
    assert c5["no_class"] == {"fear": 2, "sadness": 7}
    s5 = d["samm"]["sde"]["label_sets"]["samm_5"]
    assert s5["classes"] == {"anger": 57, "contempt": 12, "happiness": 26, "surprise": 15, "other": 26}
    assert s5["clips"] == 136 and s5["no_class"] == {"disgust": 9, "fear": 8, "sadness": 6}
    assert list(d["casme2"]["sde"]["label_sets"]) == ["casme2_5"] and list(d["samm"]["sde"]["label_sets"]) == ["samm_5"]


def test_cli_composite_prints_the_single_dataset_label_sets(ann, capsys):
    """`icegan data composite` also says how many sheet clips each five-class protocol has, per class, and which
    emotions have no class (before: the counts were computed and never shown)."""
    assert icegan_main(["data", "composite", "--annotations-dir", str(ann)]) == 0      # 2 rows ruled out: 0
    out = capsys.readouterr().out
    assert ("  samm_5 (samm): anger 57, contempt 12, happiness 26, surprise 15, other 26 = 136 clips; no class: "
            "disgust 9, fear 8, sadness 6") in out.splitlines()
    assert ("  casme2_5 (casme2): happiness 32, disgust 63, repression 27, surprise 25, others 99 = 246 clips; no "
            "class: fear 2, sadness 7") in out.splitlines()


def test_casme2_class5_ids_follow_the_sheet_order():
    """CASME II's five-class ids: happiness 0, disgust 1, repression 2, surprise 3, others 4, fear none (the composite's class5 column)."""
    from icegan.data.composite import casme2_class5
    assert [casme2_class5(e) for e in ("happiness", "disgust", "repression", "surprise", "others", "fear")] == \
        [0, 1, 2, 3, 4, None]


def test_smic_subjects_keep_their_unpadded_numbers(shared_data):
    """SMIC subject ids as the release spells its folders: s1, s2, s20, never s01."""
    from icegan.data.sheets import read_smic_sheet
    subs = {r.subject for r in read_smic_sheet(shared_data / "annotations" / "SMIC-HS-E_annotation.xlsx")}
    assert {"s1", "s2", "s3", "s20"} <= subs and "s01" not in subs


def test_an_apex_on_the_offset_frame_is_not_noted(shared_data):
    """An apex on the offset frame is valid (sub05/EP16_04f: apex = offset = 181) and gets no note."""
    from icegan.data.sheets import read_casme2_sheet
    rows = {(r.subject, r.clip): r for r in read_casme2_sheet(shared_data / "annotations" / "CASME2-coding-20140508.xlsx")}
    r = rows[("sub05", "EP16_04f")]
    assert (r.apex, r.offset) == (181, 181) and r.notes == []


def test_smic_offset_from_the_onset_and_frame_count_when_the_formula_has_no_cached_value(tmp_path):
    """An uncached OffsetF formula falls back to onset + TotalMF1 − 1: 100 + 17 − 1 = 116."""
    import openpyxl
    from icegan.data.sheets import read_smic_sheet
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "HS"
    ws.append(["Subject", "Filename", "OnsetF", "TotalMF1", "OffsetF", "Emotion"])
    ws.append([20, "s20_ne_01", 100, 17, "=C2+D2-1", "negative"])      # a formula openpyxl saves uncached
    wb.save(tmp_path / "smic.xlsx")
    (r,) = read_smic_sheet(tmp_path / "smic.xlsx")
    assert (r.onset, r.offset) == (100, 116)


def test_smic_offset_cell_without_a_number_says_what_the_offset_became(tmp_path):
    """An OffsetF cell "/" with a TotalMF1 count: the offset is 100 + 17 − 1 = 116, and the row's note on the cell
    says so (it said only that the cell is not a frame number, as if the offset were unknown)."""
    import openpyxl
    from icegan.data.sheets import read_smic_sheet
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "HS"
    ws.append(["Subject", "Filename", "OnsetF", "TotalMF1", "OffsetF", "Emotion"])
    ws.append([20, "s20_ne_01", 100, 17, "/", "negative"])
    ws.append([20, "s20_ne_02", 200, "?", "/", "negative"])
    wb.save(tmp_path / "smic.xlsx")
    r, q = read_smic_sheet(tmp_path / "smic.xlsx")
    assert (r.onset, r.offset) == (100, 116)
    assert r.notes == ["offset cell '/' is not a frame number (sheet row 2); offset taken as OnsetF + TotalMF1 - 1 "
                       "= 116"]
    assert q.offset is None and q.notes[0] == "offset cell '/' is not a frame number (sheet row 3)"
    assert q.notes[1].startswith("offset unknown: the OffsetF formula has no saved value and TotalMF1 holds no frame")


def test_smic_subject_folders_sort_by_number(tmp_path):
    """SMIC subject folders in numeric order: s1, s2, s10 (not s1, s10, s2)."""
    from icegan.data.smic import SMIC
    for s in ("s10", "s2", "s1"):
        (tmp_path / "HS" / s / "micro").mkdir(parents=True)
    assert SMIC(tmp_path).subject_folders() == ["s1", "s2", "s10"]


def test_composite_leaves_out_a_row_with_the_apex_before_the_onset(ann, tmp_path, capsys):
    """A sheet edited so that a composite row has its apex before its onset: `icegan data composite` excludes it with
    the reason (`icegan data check` and prepare skip it), rather than counting it usable."""
    import shutil
    for f in ann.iterdir():
        shutil.copy(f, tmp_path / f.name)
    wb = openpyxl.load_workbook(tmp_path / "CASME2-coding-20140508.xlsx")
    ws = wb.worksheets[0]
    header = [c.value for c in ws[1]]
    col = {name: header.index(name) for name in ("Filename", "OnsetFrame", "ApexFrame")}
    row = next(r for r in ws.iter_rows(min_row=2) if r[col["Filename"]].value == "EP02_01f")
    assert row[col["ApexFrame"]].value == 59
    row[col["OnsetFrame"]].value = 200
    wb.save(tmp_path / "CASME2-coding-20140508.xlsx")
    out = tmp_path / "composite.json"
    assert icegan_main(["data", "composite", "--annotations-dir", str(tmp_path), "--json", str(out)]) == 0  # a rule
    d = json.loads(out.read_text())["casme2"]
    assert (d["clips"], d["positive"]) == (144, 31)
    assert {"clip": "sub01/EP02_01f", "reason": "apex 59 is before onset 200 (icegan data check and prepare skip it)",
            "rule": "megc2019"} in d["excluded"]
    assert "excluded casme2/sub01/EP02_01f: apex 59 is before onset 200" in capsys.readouterr().out


def test_unusable_row_is_an_apex_strictly_before_the_onset():
    """An apex before the onset makes a kept row unusable, and (since audit 55, as data check and prepare skip it for
    every label set) an apex on the onset frame, which CASME II's rule excludes and SAMM's sheet has none of; an apex
    after the onset does not."""
    from icegan.data.composite import unusable_row
    from icegan.data.sheets import SheetRow
    row = SheetRow("samm", "006", "006_1_2", onset=5562, apex=5562, offset=5632, emotion="Anger")
    assert unusable_row(row) == "apex equals onset (5562): no onset→apex motion (icegan data check and prepare skip it)"
    assert unusable_row(SheetRow("samm", "006", "006_1_2", 5562, 5563, 5632, "Anger")) is None
    assert unusable_row(SheetRow("samm", "006", "006_1_2", 5562, 5561, 5632, "Anger")) == \
        "apex 5561 is before onset 5562 (icegan data check and prepare skip it)"


def test_casme2_class5_and_composite_class_read_labels_as_written_by_hand():
    """Emotion cells with capitals or spaces map as the sheet's lower-case labels; a CASME II row without an onset
    number is excluded with its reason, not kept with no onset."""
    from icegan.data.composite import casme2_class5
    from icegan.data.sheets import SheetRow
    assert [casme2_class5(e) for e in ("Happiness", " Others ", "REPRESSION")] == [0, 4, 2]
    assert composite_class(SheetRow("casme2", "sub01", "EP02_01f", 46, 59, 86, " Happiness ")) == (1, None)
    assert composite_class(SheetRow("casme2", "sub01", "EP02_01f", None, 59, 86, "happiness")) == \
        (None, "onset is not a frame number")


def test_composite_emotion_is_the_class_of_the_label_whatever_the_frames():
    """What tells a row the composite's rules left out (kept in `data composite`'s excluded list) from one whose
    emotion is simply not in the composite: the label's class, frames aside (not the wording of the reason)."""
    from icegan.data.composite import composite_emotion
    from icegan.data.sheets import SheetRow
    row = SheetRow("casme2", "sub04", "EP12_01f", 10, None, 40, "Disgust")       # apex '/': left out by a rule
    assert composite_emotion(row) == "negative" and composite_class(row)[0] is None
    assert composite_emotion(SheetRow("casme2", "sub01", "x", 1, 5, 9, " others")) is None
    assert composite_emotion(SheetRow("samm", "006", "006_1_2", 1, 5, 9, "Happiness")) == "positive"
    assert composite_emotion(SheetRow("samm", "006", "006_1_2", 1, 5, 9, "Contempt")) == "negative"
    assert composite_emotion(SheetRow("samm", "006", "006_1_2", 1, 5, 9, "Other")) is None
    with pytest.raises(ValueError, match="SMIC uses folders"):
        composite_emotion(SheetRow("smic", "s1", "s1_ne_01", 1, 5, 9, "negative"))


def test_the_other_dataset_s_sheet_is_refused_naming_the_one_to_give(ann, shared_data, capsys):
    """SAMM's sheet given as CASME II's (or the reverse) is refused, naming both sheets; before, it was read: its
    subjects became sub07 and the like and every clip was 'missing on disk'."""
    from icegan.data.sheets import CASME2_SHEET, SAMM_SHEET, SheetError, read_casme2_sheet, read_samm_sheet
    with pytest.raises(SheetError, match=rf"{SAMM_SHEET}: its clips are named as SAMM's \(006_1_2, \.\.\.\), not as "
                                         rf"CASME II's \(EP02_01f\): it looks like the SAMM sheet .*give "
                                         rf"{CASME2_SHEET} as the CASME II sheet"):
        read_casme2_sheet(ann / SAMM_SHEET)
    with pytest.raises(SheetError, match=rf"give {SAMM_SHEET} as the SAMM sheet"):
        read_samm_sheet(ann / CASME2_SHEET)
    assert icegan_main(["data", "check", "--dataset", "casme2", "--root", str(shared_data / "casme2"),
                        "--annotations", str(ann / SAMM_SHEET), "--no-read-images"]) == 2
    assert "it looks like the SAMM sheet" in capsys.readouterr().err


def test_annotations_dir_one_folder_too_high_names_the_sheets_folder(shared_data, capsys):
    """`icegan data composite --annotations-dir` given the data folder above annotations/: the error gives the folder
    that holds the sheets (was 'no coding sheet in ...')."""
    assert icegan_main(["data", "composite", "--annotations-dir", str(shared_data)]) == 2
    assert f"holds them: give --annotations-dir {shared_data / 'annotations'}" in capsys.readouterr().err


def test_subjects_exported_as_floats_read_as_their_numbers(tmp_path):
    """A sheet saved to CSV with its numbers as floats writes subject 6 as "6.0": SAMM's reads as 006 (it stayed
    "6.0", a subject no clip folder has) and CASME II's "1.0" as sub01 (it was refused as not a number), as the
    same cells do as numbers in the .xlsx. Text that is not a whole number is still refused or kept as before."""
    samm = tmp_path / "samm.csv"
    samm.write_text("Subject,Filename,Onset Frame,Apex Frame,Offset Frame,Action Units,Estimated Emotion\n"
                    "6.0,006_1_2,10,13,16,4,Anger\n")
    (r,) = read_samm_sheet(samm)
    assert r.subject == "006"
    casme2 = tmp_path / "casme2.csv"
    casme2.write_text("Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"
                      "1.0,EP01_01,10,13,16,4,others\n1.5,EP01_02,10,13,16,4,others\n")
    with pytest.raises(SheetError, match=r"casme2.csv row 3: CASME II subject '1.5' is not a number"):
        read_casme2_sheet(casme2)
    casme2.write_text("Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"
                      "1.0,EP01_01,10,13,16,4,others\n")
    assert [r.subject for r in read_casme2_sheet(casme2)] == ["sub01"]
