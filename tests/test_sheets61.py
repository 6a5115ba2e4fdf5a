"""Audit 61, sheets: an empty onset/apex cell of a SAMM composite row is said (not dropped unseen), SAMM objective
classes outside 1..7 are noted, SMIC's third micro-expression columns are noted with the second's, and the SMIC sheet
given as SAMM's (or the reverse) is named as such."""
import logging

import openpyxl
import pytest

from icegan.data.check import check_dataset
from icegan.data.sheets import (CASME2_SHEET, SAMM_SHEET, SMIC_SHEET, SheetError, read_casme2_sheet, read_samm_sheet,
                                read_smic_sheet)

SAMM_HEADER = "Subject,Filename,Onset Frame,Apex Frame,Offset Frame,Action Units,Estimated Emotion,Objective Classes\n"
SMIC_HEADER = ["Subject", "Filename", None, "OnsetF", "OffsetF", "Onset2F", "Offset2F", "Onset3F", "Offset3F", None,
               "FirstF", "LastF", "TotalMF1", "Emotion"]


def _samm_root(tmp_path, cells):
    """A SAMM root with subject 006's clip folders (no frames) and a CSV sheet of ``cells`` rows."""
    root = tmp_path / "SAMM"
    for clip in ("006_1_2", "006_1_3"):
        (root / "006" / clip).mkdir(parents=True)
    sheet = tmp_path / "samm.csv"
    sheet.write_text(SAMM_HEADER + "".join(cells))
    return root, sheet


@pytest.mark.parametrize("cells, cell", [("6,006_1_2,5562,,5632,AU4,Anger,3\n", "apex cell is empty (sheet row 2)"),
                                         ("6,006_1_2,,5588,5632,AU4,Anger,3\n", "onset cell is empty (sheet row 2)")])
def test_an_empty_onset_or_apex_cell_of_a_samm_composite_row_is_a_problem_not_a_silent_drop(tmp_path, caplog, cells,
                                                                                          cell):
    """The SAMM sheet has no empty onset/apex cell (none stands for CASME II's '/'): a composite row with one was left
    out of `icegan data check --composite-only` with no [skip] line and no warning; it is now said as a typo is."""
    from icegan.data.samm import SAMM
    root, sheet = _samm_root(tmp_path, [cells, "6,006_1_3,100,110,120,AU4,Anger,3\n"])
    with caplog.at_level(logging.INFO, "icegan.data"):
        ds = SAMM(root, sheet)
        assert [r.clip for r in ds.records()] == ["006_1_3"]
    problem = f"{cell} in sheet {sheet}: the clip is left out; correct the cell"
    assert ds.layout_problems == [{"clip": "samm/006/006_1_2", "problem": problem}]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [f"samm/006/006_1_2: {problem}"], warned
    rep = check_dataset("samm", root, sheet, composite_only=True, read_images=False)
    assert f"[skip] samm/006/006_1_2: {problem}" in rep.text(), rep.text()


def test_casme2_slash_and_empty_apex_cells_stay_info_lines(tmp_path, caplog):
    """CASME II's release '/' apex (sub04/EP12_01f) is the composite's own rule: still INFO, not a layout problem."""
    from icegan.data.casme2 import CASME2
    root = tmp_path / "CASME2"
    (root / "sub04" / "EP12_01f").mkdir(parents=True)
    sheet = tmp_path / "casme2.csv"
    sheet.write_text("Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"
                     "04,EP12_01f,10,/,30,4,disgust\n04,EP12_02f,10,20,30,4,disgust\n")
    with caplog.at_level(logging.INFO, "icegan.data"):
        ds = CASME2(root, sheet)
        assert [r.clip for r in ds.records()] == ["EP12_02f"]
    assert ds.layout_problems == []
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("value", [0, 8, 9])
def test_a_samm_objective_class_outside_1_to_7_is_noted(tmp_path, value):
    """SAMM's objective classes are 1..7; 0, 8 or 9 was read silently while 'VII' got a note."""
    csv = tmp_path / "samm.csv"
    csv.write_text(SAMM_HEADER + f"6,006_1_2,10,20,30,AU1,Anger,{value}\n6,006_1_3,10,20,30,AU1,Anger,7\n")
    a, b = read_samm_sheet(csv)
    assert a.notes == [f"objective class {value} is outside SAMM's classes 1..7 (sheet row 2): not used"]
    assert a.objective_class is None
    assert (b.objective_class, b.notes) == (7, [])


def _smic_book(path, rows, title="HS"):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    ws.append(SMIC_HEADER)
    for r in rows:
        ws.append(list(r))
    wb.save(path)
    return path


def test_smic_third_micro_expression_is_noted_with_the_second(tmp_path):
    """Onset3F/Offset3F were ignored without a word while Onset2F/Offset2F got a 'not read' note."""
    book = _smic_book(tmp_path / "smic.xlsx", [
        (4, "s4_ne_04", None, 219300, 219330, 219350, 219370, 219413, 219435, None, 219290, 219450, 31, "negative"),
        (4, "s4_ne_05", None, 100, 110, 120, None, None, None, None, 90, 130, 11, "negative"),
        (4, "s4_ne_06", None, 100, 110, None, None, None, None, None, 90, 130, 11, "negative")])
    a, b, c = read_smic_sheet(book)
    assert a.notes == ["a second micro-expression is annotated, Onset2F..Offset2F 219350..219370, and a third, "
                       "Onset3F..Offset3F 219413..219435 (sheet row 2): not read; only the first, OnsetF..OffsetF, is"]
    assert b.notes == ["a second micro-expression is annotated, Onset2F..Offset2F 120..? (sheet row 3): not read; "
                       "only the first, OnsetF..OffsetF, is"]
    assert c.notes == []


def test_a_third_span_outside_the_clip_or_repeating_the_second_is_no_third_micro_expression(tmp_path):
    """The release's Onset3F formula gives a frame before FirstF where no third is coded (s20_ne_06), and s9_sur_01
    repeats its second: neither is noted as a third; a third without a second is."""
    book = _smic_book(tmp_path / "smic.xlsx", [
        (20, "s20_ne_06", None, 200, 210, 220, 230, 17, 90, None, 90, 300, 11, "negative"),
        (9, "s9_sur_01", None, 200, 210, 220, 230, 220, 230, None, 90, 300, 11, "surprise"),
        (9, "s9_sur_02", None, 200, 210, None, None, 250, 260, None, 90, 300, 11, "surprise")])
    a, b, c = read_smic_sheet(book)
    second = "a second micro-expression is annotated, Onset2F..Offset2F 220..230 (sheet row {}): not read; only the " \
             "first, OnsetF..OffsetF, is"
    assert (a.notes, b.notes) == ([second.format(2)], [second.format(3)])
    assert c.notes == ["a third micro-expression is annotated, Onset3F..Offset3F 250..260 (sheet row 4): not read; "
                       "only the first, OnsetF..OffsetF, is"]


def test_the_real_smic_sheet_notes_s4_ne_04_third_micro_expression_alone(shared_data):
    rows = read_smic_sheet(shared_data / "annotations" / SMIC_SHEET)
    assert len(rows) == 157
    third = {r.clip: n for r in rows for n in r.notes if "third" in n}
    assert third == {"s4_ne_04": "a second micro-expression is annotated, Onset2F..Offset2F 219343..219361, and a "
                                 "third, Onset3F..Offset3F 219413..219435 (sheet row 123): not read; only the first, "
                                 "OnsetF..OffsetF, is"}


def test_the_smic_sheet_given_as_samm_or_casme2_is_named(shared_data):
    """The SMIC sheet given as SAMM's said only "header row lacks column(s) ['onset', 'apex']"."""
    smic = shared_data / "annotations" / SMIC_SHEET
    with pytest.raises(SheetError, match=rf"{SMIC_SHEET}: its header \(OnsetF, TotalMF1\) is the SMIC-HS-E sheet's "
                                         rf"\({SMIC_SHEET}\), not SAMM's: give {SAMM_SHEET} as the SAMM sheet"):
        read_samm_sheet(smic)
    with pytest.raises(SheetError, match=rf"is the SMIC-HS-E sheet's .*give {CASME2_SHEET} as the CASME II sheet"):
        read_casme2_sheet(smic)


def test_the_samm_or_casme2_sheet_given_as_smic_is_named(shared_data, tmp_path):
    """The SAMM sheet given as SMIC's said only "no worksheet named 'HS' (has ['MICRO_ONLY'])"; its CSV export said
    the header lacks 'onset'."""
    samm = shared_data / "annotations" / SAMM_SHEET
    with pytest.raises(SheetError, match=rf"{SAMM_SHEET}: no worksheet named 'HS' \(has \['MICRO_ONLY'\]\); its header "
                                         rf"\(Onset Frame, Objective Classes\) is the SAMM sheet's \({SAMM_SHEET}\), "
                                         rf"not SMIC-HS-E's: give {SMIC_SHEET} as the SMIC-HS-E sheet"):
        read_smic_sheet(samm)
    with pytest.raises(SheetError,
                       match=rf"is the CASME II sheet's \({CASME2_SHEET}\), not SMIC-HS-E's: give {SMIC_SHEET}"):
        read_smic_sheet(shared_data / "annotations" / CASME2_SHEET)
    csv = tmp_path / "samm.csv"
    csv.write_text(SAMM_HEADER + "6,006_1_2,10,20,30,AU1,Anger,3\n")
    with pytest.raises(SheetError, match=rf"is the SAMM sheet's \({SAMM_SHEET}\), not SMIC-HS-E's: give {SMIC_SHEET}"):
        read_smic_sheet(csv)
    other = _smic_book(tmp_path / "vis.xlsx", [], title="Notes")      # no Subject row anywhere: as before
    with pytest.raises(SheetError, match=r"no worksheet named 'HS' \(has \['Notes'\]\)$"):
        read_smic_sheet(other)
