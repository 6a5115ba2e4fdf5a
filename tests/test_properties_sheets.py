"""Property-based tests (hypothesis) of the coding-sheet readers, the composite rules and the action-unit cells
(icegan/data/sheets.py, icegan/data/composite.py, icegan/data/action_units.py).

Each property holds for every sheet a user can give (hypothesis draws the cells; the "suite" profile of
tests/conftest.py draws the same ones every run):

* a frame cell of any type a sheet holds (int, integral float, ``"123"``, ``" 46 "``, ``"46.0"``, ``"/"``, ``"?"``,
  blank) is read as :func:`parse_frame` reads it, and a whole number reads the same whatever type carries it;
* a CASME II sheet written as CSV or as .xlsx is read back cell by cell: subjects ``1``, ``"01"``, ``"sub1"``,
  ``"Sub01"`` all become ``sub01``; the onset/apex/offset are the cells' numbers; a cell that is no number gets a
  note naming its sheet row; the apex-after-offset note is there exactly when onset <= offset < apex; blank rows
  are skipped without shifting the row numbers; a row pasted twice is read once;
* an emotion of any case and spacing maps to the same composite class, CASME II 5-class id and "known label"
  verdict as its lower-case form (DESIGN.md's composite rules: 145 CASME II / 133 SAMM clips on the real sheets);
* a subset of the real sheets' rows, exported as CSV, reads back as the same rows;
* an action-unit cell's units do not depend on side prefixes (``L``, ``R``, ``AU``), intensity letters (``A``-``E``),
  order, repetition or separators (``"AU4+AU7"``, ``"R12"``, ``"L1+2"``); a number outside 1..99 raises ValueError
  naming the clip and the number; the multi-hot targets of real clips are the parsed cells, whatever the order of
  the clips and whether their subjects carry the dataset prefix.
"""
from __future__ import annotations

import csv
import math
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icegan.data.action_units import EMFACS_ACTION_UNITS, action_unit_targets, parse_action_units
from icegan.data.composite import (CASME2_CLASS5, CASME2_EMOTIONS, CASME2_TO_CLASS3, SAMM_EMOTIONS, SAMM_TO_CLASS3,
                                   casme2_class5, composite_class, composite_emotion, composite_from_sheets,
                                   unknown_emotion)
from icegan.data.records import CLASS3_IDS
from icegan.data.sheets import (CASME2_SHEET, SAMM_SHEET, SheetError, SheetRow, parse_frame, read_casme2_sheet,
                                read_samm_sheet)

CASME2_HEADER = ("Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
                 "Estimated Emotion")


# --------------------------------------------------------------------------------------------------- strategies
@st.composite
def frame_cells(draw, typed: bool = True):
    """A frame cell as a sheet holds it: ``(cell, number or None)``. ``typed``: ints and floats too (an .xlsx);
    otherwise text only (a CSV)."""
    n = draw(st.integers(0, 10 ** 7))
    text = [str(n), f" {n} ", f"{n}.0", f"{n:06d}", "/", "?", "", "n/a", f"{n}.5", "-"]
    cell = draw(st.sampled_from(text + ([n, float(n), None] if typed else [])))
    return cell, parse_frame(cell)[0]


def _case_and_spacing(draw, word: str) -> str:
    cased = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in word)
    return draw(st.sampled_from(["", " ", "  ", "\t"])) + cased + draw(st.sampled_from(["", " ", "  "]))


@st.composite
def emotions(draw, labels=CASME2_EMOTIONS):
    """(cell text, label lower case): a sheet label in any case, with spaces around it."""
    word = draw(st.sampled_from(labels))
    return _case_and_spacing(draw, word), word


@st.composite
def casme2_sheets(draw, typed: bool = True, max_rows: int = 8):
    """(rows of cells below the header, expected SheetRow fields of each non-blank row in order).

    Subjects are written as a number, zero-padded text or ``sub``/``Sub`` + number; clip names are unique; blank
    rows are mixed in."""
    n = draw(st.integers(1, max_rows))
    cells, expected = [], []
    for k in range(n):
        if draw(st.integers(0, 4)) == 0:
            cells.append((None,) * len(CASME2_HEADER) if typed else ("",) * len(CASME2_HEADER))
        s = draw(st.integers(1, 40))
        subj_forms = [str(s), f"{s:02d}", f"sub{s}", f"Sub{s:02d}", f" sub{s:02d} "] + ([s, float(s)] if typed else [])
        subj = draw(st.sampled_from(subj_forms))
        clip = f"EP{k:02d}_{draw(st.integers(1, 9)):02d}{draw(st.sampled_from(['', 'f']))}"
        (on, on_n), (ap, ap_n), (off, off_n) = draw(frame_cells(typed)), draw(frame_cells(typed)), \
            draw(frame_cells(typed))
        emo, _ = draw(emotions())
        au = draw(st.sampled_from(["4+7", "12", "R12", "L1+2", "AU4+AU7", "", "?"] + ([12] if typed else [])))
        row = (subj, clip, None, on, ap, off, None, au, emo)
        cells.append(row if typed else tuple("" if c is None else str(c) for c in row))
        expected.append({"subject": f"sub{s:02d}", "clip": clip, "onset": on_n, "apex": ap_n, "offset": off_n,
                         "emotion": emo.strip(), "action_units": str(au).strip(), "cells": (on, ap, off),
                         "sheet_row": len(cells) + 1})
    return cells, expected


def _write(folder: Path, name: str, header, rows) -> Path:
    path = folder / name
    if name.endswith(".csv"):
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["" if h is None else h for h in header])
            w.writerows(["" if c is None else c for c in r] for r in rows)
    else:
        import openpyxl
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(list(header))
        for r in rows:
            ws.append(list(r))
        wb.save(path)
    return path


def _check_rows(got: list[SheetRow], expected: list[dict]):
    assert [(r.subject, r.clip) for r in got] == [(e["subject"], e["clip"]) for e in expected]
    for r, e in zip(got, expected):
        assert (r.onset, r.apex, r.offset) == (e["onset"], e["apex"], e["offset"])
        assert r.emotion == e["emotion"] and r.action_units == e["action_units"] and r.row == e["sheet_row"]
        for key, cell, value in zip(("onset", "apex", "offset"), e["cells"], (r.onset, r.apex, r.offset)):
            said = [n for n in r.notes if n.startswith(f"{key} cell")]
            blank = cell is None or str(cell).strip() == ""
            if value is not None or (blank and key == "offset"):
                assert said == []
            else:       # a cell that is no number is said, with its sheet row
                assert len(said) == 1 and f"(sheet row {e['sheet_row']})" in said[0]
        late = [n for n in r.notes if n.startswith("apex ") and "after offset" in n]
        in_order = None in (r.onset, r.apex, r.offset) or not r.onset <= r.offset < r.apex
        assert late == ([] if in_order else [late[0]]) and (in_order or f"sheet row {e['sheet_row']}" in late[0])


# ------------------------------------------------------------------------------------------------ frame cells
@given(st.one_of(st.integers(0, 10 ** 12), st.integers(0, 10 ** 400)), st.sampled_from(["", " ", "  ", "\t"]),
       st.sampled_from(["", " ", "\n"]))
def test_a_whole_frame_number_reads_the_same_in_every_cell_type(n, left, right):
    assert parse_frame(n) == (n, None)
    if n <= 2 ** 53:                                                # (a float cell above 2**53 is already rounded)
        assert parse_frame(float(n)) == (n, None)
    for text in (str(n), f"{left}{n}{right}", f"{n}.0", f"{n}.000", f"{n:015d}"):
        assert parse_frame(text) == (n, None), text


_NUMBER_TEXT = re.compile(r"\s*\d+(\.0+)?\s*")


@given(st.integers(-10 ** 15, -1), st.sampled_from([int, float, str]))
def test_a_negative_number_is_no_frame_number_in_any_cell_type(n, kind):
    cell = kind(n)
    got, why = parse_frame(cell)
    assert got is None and repr(cell) in why


@given(st.one_of(st.text(max_size=6).filter(lambda s: not _NUMBER_TEXT.fullmatch(s)),
                 st.floats().filter(lambda x: not (math.isfinite(x) and x.is_integer())),
                 st.booleans(), st.none()))
def test_a_cell_that_is_no_whole_number_gives_none_and_a_reason(cell):
    n, why = parse_frame(cell)
    assert n is None and isinstance(why, str) and why
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        assert why == "empty"
    else:
        assert repr(cell.strip() if isinstance(cell, str) else cell) in why


# ------------------------------------------------------------------------------------------------ whole sheets
@given(casme2_sheets(typed=False))
def test_a_casme2_csv_sheet_reads_back_cell_by_cell(sheet):
    rows, expected = sheet
    with tempfile.TemporaryDirectory() as d:
        _check_rows(read_casme2_sheet(_write(Path(d), "sheet.csv", CASME2_HEADER, rows)), expected)


@settings(max_examples=15)
@given(casme2_sheets(typed=True, max_rows=5))
def test_a_casme2_xlsx_sheet_reads_back_cell_by_cell(sheet):
    rows, expected = sheet
    with tempfile.TemporaryDirectory() as d:
        _check_rows(read_casme2_sheet(_write(Path(d), "sheet.xlsx", CASME2_HEADER, rows)), expected)


@given(casme2_sheets(typed=False), st.data())
def test_a_row_pasted_twice_is_read_once_and_two_codings_of_a_clip_are_refused(sheet, data):
    rows, expected = sheet
    full = [r for r in rows if any(c != "" for c in r)]
    i = data.draw(st.integers(0, len(full) - 1))
    at = data.draw(st.integers(rows.index(full[i]) + 1, len(rows)))
    twice = rows[:at] + [full[i]] + rows[at:]
    with tempfile.TemporaryDirectory() as d:
        got = read_casme2_sheet(_write(Path(d), "twice.csv", CASME2_HEADER, twice))
        base = read_casme2_sheet(_write(Path(d), "once.csv", CASME2_HEADER, rows))
        assert [(r.subject, r.clip, r.onset, r.apex, r.offset, r.emotion) for r in got] == \
            [(r.subject, r.clip, r.onset, r.apex, r.offset, r.emotion) for r in base]
        assert sum("listed twice" in n for r in got for n in r.notes) == 1
        changed = list(full[i])
        changed[8] = "repression" if full[i][8].strip().lower() != "repression" else "surprise"
        bad = rows[:at] + [tuple(changed)] + rows[at:]
        with pytest.raises(SheetError, match=f"{expected[i]['subject']}/{expected[i]['clip']} is listed twice "
                                             "with different emotion"):
            read_casme2_sheet(_write(Path(d), "bad.csv", CASME2_HEADER, bad))


# ------------------------------------------------------------------------------------------------ emotions
def _row(dataset, emotion, onset=10, apex=20, offset=30):
    return SheetRow(dataset=dataset, subject="sub01", clip="EP01_01", onset=onset, apex=apex, offset=offset,
                    emotion=emotion)


@given(st.sampled_from(["casme2", "samm"]), st.data())
def test_an_emotion_of_any_case_and_spacing_maps_as_its_lower_case_label(dataset, data):
    labels, table = (CASME2_EMOTIONS, CASME2_TO_CLASS3) if dataset == "casme2" else (SAMM_EMOTIONS, SAMM_TO_CLASS3)
    cell, word = data.draw(emotions(labels))
    row = _row(dataset, cell)
    assert composite_emotion(row) == table.get(word) == composite_emotion(_row(dataset, word))
    assert unknown_emotion(row) is None
    cls, why = composite_class(row)
    assert cls == (CLASS3_IDS[table[word]] if word in table else None) and (why is None) == (cls is not None)
    if dataset == "casme2":
        assert casme2_class5(cell) == (CASME2_CLASS5.index(word) if word in CASME2_CLASS5 else None)


@given(st.text(min_size=0, max_size=12).filter(lambda s: s.strip().lower() not in CASME2_EMOTIONS))
def test_a_casme2_emotion_that_is_no_label_is_named_and_never_classed(cell):
    row = _row("casme2", cell)
    assert composite_emotion(row) is None and composite_class(row)[0] is None and casme2_class5(cell) is None
    assert repr(cell) in unknown_emotion(row) and "sheet row" in unknown_emotion(row)


@given(st.sampled_from(sorted(CASME2_TO_CLASS3)), st.one_of(st.none(), st.integers(0, 50)),
       st.one_of(st.none(), st.integers(0, 50)))
def test_casme2_composite_rule_keeps_a_row_exactly_when_onset_and_a_different_apex_are_numbers(word, onset, apex):
    cls, why = composite_class(_row("casme2", word, onset=onset, apex=apex))
    keep = onset is not None and apex is not None and apex != onset
    assert (cls is not None) == keep and (why is None) == keep


# ------------------------------------------------------------------------------------------------ real sheets
@pytest.fixture(scope="module")
def real_tables(shared_data):
    """{dataset: (header row, cell rows below it, rows read)} of the real CASME II and SAMM sheets."""
    import openpyxl
    out = {}
    for ds, name, read in (("casme2", CASME2_SHEET, read_casme2_sheet), ("samm", SAMM_SHEET, read_samm_sheet)):
        wb = openpyxl.load_workbook(shared_data / "annotations" / name, read_only=True, data_only=True)
        table = [tuple(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
        wb.close()
        h = next(i for i, r in enumerate(table) if r[0] == "Subject")
        out[ds] = (table[h], table[h + 1:], read(shared_data / "annotations" / name))
    return out


def _fields(r: SheetRow):
    return (r.subject, r.clip, r.onset, r.apex, r.offset, r.emotion, r.action_units, r.objective_class)


@settings(max_examples=20)
@given(st.sampled_from(["casme2", "samm"]), st.data())
def test_a_subset_of_the_real_sheet_rows_exported_as_csv_reads_back_as_those_rows(real_tables, dataset, data):
    header, cells, rows = real_tables[dataset]
    cells = [r for r in cells if any(c is not None and str(c).strip() for c in r)]
    assert len(cells) == len(rows)
    keep = sorted(data.draw(st.sets(st.integers(0, len(cells) - 1), min_size=1, max_size=30)))
    read = read_casme2_sheet if dataset == "casme2" else read_samm_sheet
    with tempfile.TemporaryDirectory() as d:
        got = read(_write(Path(d), "export.csv", header, [cells[i] for i in keep]))
    assert [_fields(r) for r in got] == [_fields(rows[i]) for i in keep]


def test_the_real_sheets_give_the_composite_of_design_md(shared_data):
    counts = composite_from_sheets(shared_data / "annotations")
    assert (counts["casme2"]["clips"], counts["samm"]["clips"]) == (145, 133)


# ------------------------------------------------------------------------------------------------ action units
@st.composite
def au_cells(draw):
    """(cell text, its unit set): units 1..99 written with side prefixes, ``AU``, intensity letters, repeated and in
    any order, joined by ``+``, ``,`` or `` + ``."""
    units = draw(st.lists(st.integers(1, 99), min_size=1, max_size=6))
    parts = []
    for u in units:
        pre = draw(st.sampled_from(["", "L", "R", "AU", "R", "l"]))
        num = draw(st.sampled_from([str(u), f"{u:02d}"]))
        post = draw(st.sampled_from(["", "A", "B", "C", "D", "E"]))
        parts.append(pre + num + post)
    return draw(st.sampled_from(["+", ",", " + ", "+ "])).join(parts), set(units)


@given(au_cells())
def test_action_unit_cells_parse_to_their_numbers_whatever_the_side_intensity_and_order(case):
    cell, units = case
    assert parse_action_units(cell) == units
    assert parse_action_units("+".join(reversed(cell.split("+")))) == units


@given(au_cells(), st.sampled_from([0, 100, 123, 999]), st.text(alphabet="abc", min_size=1, max_size=5))
def test_an_action_unit_outside_1_to_99_raises_naming_the_clip_and_the_number(case, bad, where):
    cell, _ = case
    with pytest.raises(ValueError, match=f"^{where}: .* holds {bad},"):
        parse_action_units(f"{cell}+L{bad}", where=where)


@given(st.sampled_from(["", "?", "none", " / ", "ref."]))
def test_a_cell_without_a_number_is_not_coded(cell):
    assert parse_action_units(cell) is None


@settings(max_examples=15)
@given(st.data())
def test_real_action_unit_targets_are_the_parsed_cells_in_any_clip_order(real_tables, data):
    every = [(ds, r) for ds in ("casme2", "samm") for r in real_tables[ds][2]] + [("smic", None)]
    uncoded = [(ds, r) for ds, r in every if r is not None and parse_action_units(r.action_units) is None]
    assert uncoded                  # CASME II codes five clips '?'; drawn often, not left to chance
    picks = data.draw(st.lists(st.tuples(st.one_of(st.sampled_from(every), st.sampled_from(uncoded)), st.booleans()),
                               min_size=1, max_size=8))
    ds, subs, clips, want = [], [], [], []
    for (dataset, r), prefixed in picks:
        if dataset == "smic":
            ds.append("smic"), subs.append("smic/s1"), clips.append("s1_ne_01"), want.append(None)
            continue
        ds.append(dataset), subs.append(f"{dataset}/{r.subject}" if prefixed else r.subject), clips.append(r.clip)
        want.append(parse_action_units(r.action_units))
    targets, known = action_unit_targets(ds, subs, clips)
    for i, units in enumerate(want):
        assert bool(known[i]) == (units is not None)
        on = {EMFACS_ACTION_UNITS[j] for j in range(len(EMFACS_ACTION_UNITS)) if targets[i, j] == 1}
        assert on == (set() if units is None else units & set(EMFACS_ACTION_UNITS))
        assert set(targets[i].tolist()) <= {0.0, 1.0}
    order = list(reversed(range(len(ds))))
    t2, k2 = action_unit_targets([ds[i] for i in order], [subs[i] for i in order], [clips[i] for i in order])
    assert (t2 == targets[order]).all() and (k2 == known[order]).all()


# ------------------------------------------------------------------------------------------------ found by the search
def test_a_digit_string_past_2_to_the_53_reads_as_its_own_number():
    # was read through float(): 12345678901234567168
    assert parse_frame("12345678901234567891") == (12345678901234567891, None)


def test_a_digit_string_too_long_for_a_float_is_a_number_not_a_crash():
    # was OverflowError (float inf) out of the sheet reader, for a cell of 309 digits or more
    assert parse_frame("1" * 400) == (int("1" * 400), None)


def test_a_cell_of_more_digits_than_python_converts_is_no_frame_number():
    n, why = parse_frame("1" * 5000)
    assert n is None and "is not a frame number" in why


def test_a_negative_number_cell_is_no_frame_number_as_its_text_is_not():
    # was (-3, None) for the number -3 (and -3.0) while the text "-3" gave None with a reason
    assert parse_frame(-3)[0] is None and parse_frame(-3.0)[0] is None and parse_frame("-3")[0] is None
