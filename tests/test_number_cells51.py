"""Numbers in a user's files read by the one rule of :mod:`flownet.user_numbers` (ASCII digits, finite), and the
shared coding sheets and MEGC2019 table read exactly as before that rule reached their readers."""
from __future__ import annotations

from pathlib import Path

import pytest

from icegan.data.clip_list import ClipList


def _clip_list(tmp_path: Path, onset: str, apex: str = "", offset: str = "") -> Path:
    p = tmp_path / "clips.csv"
    p.write_text(f"subject,clip,frames,onset,apex,offset\np,a,v,{onset},{apex},{offset}\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("column,cells", [
    ("onset", ("٣", "", "")),            # Arabic-Indic three: float() read it as 3.0
    ("onset", ("１６", "", "")),          # fullwidth digits: 16
    ("onset", ("1_0", "", "")),          # float('1_0') == 10.0
    ("onset", ("1e1", "", "")),          # 10.0 through float(); no frame number as written
    ("apex", ("5", "۹", "")),
    ("offset", ("5", "", "2_0")),
])
def test_clip_list_frame_numbers_are_ascii_digits(tmp_path, column, cells):
    csv = _clip_list(tmp_path, *cells)
    value = dict(zip(("onset", "apex", "offset"), cells))[column]
    with pytest.raises(ValueError, match=rf"line 2 \(clip 'a'\): {column} {value!r} is not a frame number"):
        ClipList(csv).records()


@pytest.mark.parametrize("cells,frames", [
    ((" 5 ", "9", "12"), (5, 9, 12)),
    (("5.0", "9.00", ""), (5, 9, None)),      # a whole number as a spreadsheet exports it, as before
    (("0", "7", ""), (0, 7, None)),
])
def test_clip_list_frame_numbers_read_as_before(tmp_path, cells, frames):
    r = ClipList(_clip_list(tmp_path, *cells)).records()[0]
    assert (r.onset, r.apex, r.offset) == frames


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf", "1e999", "46.5", "-3"])
def test_clip_list_refuses_what_it_refused(tmp_path, cell):
    with pytest.raises(ValueError, match=r"onset .* is not a frame number"):
        ClipList(_clip_list(tmp_path, cell)).records()


def test_shared_sheets_and_table_read_as_recorded(shared_data):
    """Counts and known rows recorded from the readers before they took the one rule (see module docstring)."""
    from icegan.data.features import read_megc2019_table
    from icegan.data.sheets import read_sheet

    ann = shared_data / "annotations"
    sheets = {ds: read_sheet(ds, ann / name) for ds, name in [
        ("casme2", "CASME2-coding-20140508.xlsx"), ("samm", "SAMM_Micro_FACS_Codes_v2.xlsx"),
        ("smic", "SMIC-HS-E_annotation.xlsx")]}
    assert {ds: len(rows) for ds, rows in sheets.items()} == {"casme2": 255, "samm": 159, "smic": 157}

    def first_last(ds):
        rows = sheets[ds]
        return [(r.subject, r.clip, r.onset, r.apex, r.offset) for r in (rows[0], rows[-1])]

    assert first_last("casme2") == [("sub01", "EP02_01f", 46, 59, 86), ("sub26", "EP18_51", 21, 64, 81)]
    assert first_last("samm") == [("006", "006_1_2", 5562, 5588, 5632), ("037", "037_4_1", 1488, 1529, 1577)]
    assert first_last("smic") == [("s20", "s20_ne_01", 17581039, None, 17581055),
                                  ("s9", "s9_sur_03", 91099, None, 91137)]
    table = read_megc2019_table(shared_data / "megc2019_htnet")
    assert len(table) == 442
    assert table["label"].value_counts().to_dict() == {0: 250, 1: 109, 2: 83}
