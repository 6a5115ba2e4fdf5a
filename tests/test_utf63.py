"""CSV tables in UTF-16 or UTF-32 without a byte-order mark (audit 63): PowerShell's ``Out-File -Encoding Unicode``
without a BOM and some exporters write them. They decoded as UTF-8 text with a NUL byte beside each character, and
the feature table then said "its column ' l a b e l ' looks like the labels" and listed missing columns. Now
:func:`icegan.data.feature_table.read_csv_cells` names the encoding and says to save the file as CSV UTF-8, for every
table it reads (feature tables of ``icegan loso`` / ``icegan predict``, clip lists, the MEGC2019 table), and so do
annotation sheets exported as CSV; other NUL content in a file that is otherwise UTF-8 is "not a text CSV"."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _clip_records import casme2_sheet
from _feature_tables import toy_config
from _one_line_error import one_line_error

from icegan.cli import main
from icegan.commands.predict import fit
from icegan.data.clip_list import ClipList
from icegan.data.feature_table import read_csv_cells, read_feature_table
from icegan.data.features import CSV_NAME, read_megc2019_table
from icegan.data.sheets import SheetError, read_casme2_sheet

TABLE = "dataset,subject,clip,label,path\ncasme2,sub01,EP02_01f,positive,maps/a.npy\n"
CLIPS = "subject,clip,frames,onset,apex,offset,label\nsub01,a,v/a,46,59,86,positive\n"
#: (Python codec, the words the message names it by); no codec here writes a byte-order mark
WIDE = [("utf-16-le", "UTF-16 text (little-endian"), ("utf-16-be", "UTF-16 text (big-endian"),
        ("utf-32-le", "UTF-32 text (little-endian"), ("utf-32-be", "UTF-32 text (big-endian")]


def _wide(path: Path, text: str, codec: str) -> Path:
    path.write_bytes(text.encode(codec))
    return path


@pytest.mark.parametrize("codec,name", WIDE)
def test_a_table_without_a_byte_order_mark_is_named_by_its_encoding(tmp_path, codec, name):
    """The table's header read as ['d\\x00a\\x00t\\x00...'] and the first error was about its columns."""
    csv = _wide(tmp_path / "clips.csv", TABLE, codec)
    with pytest.raises(ValueError) as exc:
        read_csv_cells(csv)
    msg = str(exc.value)
    assert msg.startswith(f"{csv}: {name}, without a byte-order mark"), msg
    assert msg.endswith("not UTF-8: save it as CSV UTF-8 (a spreadsheet's 'CSV UTF-8' format)")


def test_non_ascii_text_in_utf16_is_still_named_as_utf16(tmp_path):
    """A Chinese clip name and a Latin-1 letter (é: 0xe9 0x00, not UTF-8) do not hide the encoding; it was called
    'an image, a workbook or another binary file'."""
    csv = _wide(tmp_path / "clips.csv", TABLE + "casme2,sub02,表情_é,negative,maps/b.npy\n", "utf-16-le")
    with pytest.raises(ValueError, match=rf"^{csv}: UTF-16 text \(little-endian.*save it as CSV UTF-8") as exc:
        read_csv_cells(csv)
    assert "binary" not in str(exc.value)


@pytest.mark.parametrize("data", [TABLE.encode() + b"\x00" * 64,               # a file padded with zeros
                                  b"\x00" * 512,                                 # all zeros
                                  TABLE.replace("sub01", "sub\x0001").encode()])  # one NUL in a cell
def test_nul_bytes_in_utf8_text_are_not_a_text_csv(tmp_path, data):
    """A table that is UTF-8 but for NUL bytes (a file left padded with zeros by a crash) read on with NUL in its
    cells, or as a header of NULs; now refused, naming the file."""
    csv = tmp_path / "features.csv"
    csv.write_bytes(data)
    with pytest.raises(ValueError, match=rf"^{csv}: holds NUL bytes \(byte \d+\): not a text CSV"):
        read_csv_cells(csv)


def test_utf8_and_bom_tables_read_as_before(tmp_path):
    """UTF-8 (with or without its BOM) and non-ASCII UTF-8 text read unchanged; a UTF-16 file with its BOM is named
    by the BOM as before; a binary file that is not UTF-8 is still asked whether it is an image."""
    plain = tmp_path / "plain.csv"
    plain.write_text(TABLE + "casme2,sub02,表情,negative,maps/b.npy\n", encoding="utf-8")
    assert read_csv_cells(plain)["clip"].tolist() == ["EP02_01f", "表情"]
    sig = tmp_path / "sig.csv"
    sig.write_text(TABLE, encoding="utf-8-sig")
    assert list(read_csv_cells(sig).columns) == ["dataset", "subject", "clip", "label", "path"]
    bom = _wide(tmp_path / "bom.csv", TABLE, "utf-16")
    with pytest.raises(ValueError, match=r"UTF-16 text \(it begins with a UTF-16 byte-order mark\)"):
        read_csv_cells(bom)
    png = tmp_path / "png.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="is it an image, a workbook or another binary file"):
        read_csv_cells(png)


def test_loso_and_predict_name_the_encoding_of_a_utf16_feature_table(tmp_path, capsys):
    """`icegan predict --table` said "its column ' l a b e l ' looks like the labels" and listed missing columns;
    `icegan loso data.table=` the same. Both are now one error line naming the file and its encoding."""
    csv = _wide(tmp_path / "new.csv", TABLE, "utf-16-le")
    with pytest.raises(ValueError, match=r"UTF-16 text \(little-endian"):
        read_feature_table(csv, labelled=False)
    assert main(["loso", "--out", str(tmp_path / "run"), "--no-progress", "data.source=table",
                 f"data.table={csv}", "model.name=logreg", "threads=1"]) == 2
    err = one_line_error(capsys, str(csv), "UTF-16 text (little-endian", "save it as CSV UTF-8")
    assert "looks like the labels" not in err and "missing column" not in err
    model = tmp_path / "m.pt"
    fit(toy_config("model.name=logreg"), model, progress=False)
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--table", str(csv), "--out", str(tmp_path / "p.csv")]) == 2
    err = one_line_error(capsys, str(csv), "UTF-16 text (little-endian", "save it as CSV UTF-8")
    assert "looks like the labels" not in err and "missing column" not in err


def test_a_utf16_clip_list_and_megc2019_table_are_named_by_their_encoding(tmp_path):
    """A clip list (`icegan prepare`, `icegan data check`) and the MEGC2019 table read through read_csv_cells too."""
    clips = _wide(tmp_path / "clips.csv", CLIPS, "utf-16-be")
    with pytest.raises(ValueError, match=rf"^{clips}: UTF-16 text \(big-endian.*save it as CSV UTF-8"):
        ClipList(clips).records()
    _wide(tmp_path / CSV_NAME, "dataset,sub,filename_o,label\ncasme2,sub01,EP02_01f,1\n", "utf-16-le")
    with pytest.raises(ValueError, match=r"UTF-16 text \(little-endian.*save it as CSV UTF-8"):
        read_megc2019_table(tmp_path)


@pytest.mark.parametrize("codec,name", [("utf-16-le", "UTF-16 text (little-endian, without a byte-order mark: NUL "
                                                      "bytes between its characters)"),
                                        ("utf-16", "UTF-16 text (it begins with a UTF-16 byte-order mark)")])
def test_an_annotation_sheet_saved_as_utf16_csv_is_named_by_its_encoding(tmp_path, codec, name):
    """A CASME II sheet exported as UTF-16 CSV without a BOM read on, and its first row was refused for the subject
    '\\x001\\x00'; with a BOM it was 'not UTF-8 text (byte 0xff at byte 0...)'. Both now name the encoding."""
    sheet = casme2_sheet(tmp_path, "1,EP02_01f,46,59,86,A,happiness")
    sheet.write_bytes(sheet.read_text().encode(codec))
    with pytest.raises(SheetError) as exc:
        read_casme2_sheet(sheet)
    assert str(exc.value) == f"{sheet}: {name}, not UTF-8: save it as 'CSV UTF-8' or as .xlsx"


def _int_array(path: Path, kind: str) -> Path:
    """``path`` holding an int16 .npy map (28x28x3, values 0-199) or a raw little-endian int32 array of those
    values: their high bytes are NUL as in UTF-16 / UTF-32 text of Latin letters."""
    values = np.random.default_rng(0).integers(0, 200, size=(28, 28, 3))
    if kind == "npy":
        with open(path, "wb") as f:
            np.save(f, values.astype(np.int16))
    else:
        path.write_bytes(values.astype("<i4").tobytes())
    return path


@pytest.mark.parametrize("kind", ["npy", "raw int32"])
def test_16_and_32_bit_numbers_are_a_binary_file_not_wide_text(tmp_path, kind):
    """An int16 .npy was called "UTF-16 text (little-endian, without a byte-order mark...)" by its NUL bytes; its
    code units decode to control characters (NUL, \\x01, ...), so it is a binary file as before the NUL-pattern
    guess, for read_csv_cells and for an annotation sheet given as .csv."""
    path = _int_array(tmp_path / "map.csv", kind)
    with pytest.raises(ValueError, match=rf"^{path}: not UTF-8 text \(byte \d+ is .*: is it an image, a workbook "
                                         r"or another binary file\?") as exc:
        read_csv_cells(path)
    assert "UTF-16" not in str(exc.value) and "UTF-32" not in str(exc.value)
    with pytest.raises(SheetError, match=rf"^{path}: not UTF-8 text \(byte 0x[0-9a-f]+ at byte \d+, line") as exc:
        read_casme2_sheet(path)
    assert "UTF-16" not in str(exc.value) and "UTF-32" not in str(exc.value)


def test_a_surrogate_pair_cut_at_the_first_4_kib_is_still_utf16(tmp_path):
    """The head read for the guess ends inside a surrogate pair (an emoji at bytes 4094-4097): still UTF-16 text,
    not a binary file, now that the head must decode."""
    cell = "x" * ((4094 - len(TABLE) * 2) // 2)
    csv = _wide(tmp_path / "clips.csv", TABLE + cell + "\U0001F600,sub02,b,negative,maps/b.npy\n", "utf-16-le")
    assert csv.read_bytes()[4094:4096] == "\U0001F600".encode("utf-16-le")[:2]
    with pytest.raises(ValueError, match=rf"^{csv}: UTF-16 text \(little-endian, without a byte-order mark"):
        read_csv_cells(csv)
