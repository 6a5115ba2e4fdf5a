"""Tests that kill mutants surviving audit 63's mutation run: the confusion title's caveat when one model saw the
clips and another only their subjects (predict.py), which subject folder a SMIC shortfall names when ``s1`` and
``s01`` both exist (smic.py), the exact byte offset of a NUL in a UTF-8 table and UTF-16 text whose NUL bytes fill
one lane exactly half the time (feature_table.py)."""
from __future__ import annotations

import pandas as pd
import pytest
from test_fitpredict62 import _fitted_logreg
from test_smiccheck63 import _check, _full_tree

from icegan.cli import main
from icegan.data.feature_table import read_csv_cells, wide_text


def test_predict_title_keeps_training_clips_caveat_of_an_earlier_model(tmp_path, capsys, monkeypatch):
    """Model A was fitted on these very clips, model B only on other clips of the same subjects: B's weaker
    'training subjects' caveat must not replace A's 'training clips: not a test' in the figure's title."""
    import icegan.protocol as protocol
    csv, a = _fitted_logreg(tmp_path)
    t = pd.read_csv(csv)
    half = t.groupby("subject").cumcount() % 2 == 0
    first, test, b = tmp_path / "first.csv", tmp_path / "test.csv", tmp_path / "b.pt"
    t[half].to_csv(first, index=False)
    t[~half].to_csv(test, index=False)
    assert main(["fit", "--out", str(b), "--no-progress", "data.source=table", f"data.table={first}",
                 "model.name=logreg", "threads=1"]) == 0
    titles = []
    monkeypatch.setattr(protocol, "confusion_png", lambda pred, path, title, n_classes=3: titles.append(title))
    capsys.readouterr()
    assert main(["predict", "--model", str(a), "--model", str(b), "--table", str(test), "--out",
                 str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert f"clips were in the training set of {a}" in err
    assert f"were in the training set of {b}: not a subject-independent test" in err
    assert titles == ["icegan predict: 2 model(s) on test.csv (training clips: not a test)"]


def test_smic_shortfall_names_the_subject_folder_read_first_not_an_empty_twin(tmp_path, capsys):
    """A full tree but s1_ne_01, with an empty ``s01`` folder beside ``s1``: the shortfall names ``s1`` (the folder
    read as subject s1, as the twin warning says), not the empty ``s01`` that is not read."""
    _full_tree(tmp_path, leave_out=("s1_ne_01",))
    hs = tmp_path / "SMIC_all_cropped" / "HS"
    (hs / "s01").mkdir()
    rc, printed, report = _check(tmp_path, capsys, "--no-read-images")
    assert rc == 1
    problems = [p for p in report["clips_with_problems"] if p["clip"] == "smic/s1"]
    assert [p["problem"] for p in problems] == [
        f"fewer clips in {hs / 's1'} than the MEGC2019 composite's 6: negative 2 of 3 (copy the missing clip "
        f"folders in)"]
    assert f"fewer clips in {hs / 's1'} " in printed and f"fewer clips in {hs / 's01'} " not in printed
    assert f"HS/s1 and {hs / 's01'} both name subject s1: s01 is not read" in printed


def test_nul_in_utf8_table_names_its_exact_byte_offset(tmp_path):
    """The first NUL is byte 20 (0-based, as Python and hex editors count): the message says byte 20."""
    data = b"subject,clip\nsub01,a\x00b\n"
    assert data.index(0) == 20
    csv = tmp_path / "nul.csv"
    csv.write_bytes(data)
    with pytest.raises(ValueError) as exc:
        read_csv_cells(csv)
    assert str(exc.value).startswith(f"{csv}: holds NUL bytes (byte 20): not a text CSV"), str(exc.value)


def test_utf16_whose_high_byte_lane_is_nul_exactly_half_the_time_is_utf16(tmp_path):
    """UTF-16 LE without a byte-order mark of "a中ab" repeated: the bytes at offset 3 mod 4 are NUL in exactly half
    the 4-byte groups ('中' is 2d 4e, 'b' is 62 00), which is 'at least half': still named UTF-16, not NUL bytes in
    UTF-8 text."""
    data = ("a中ab" * 100).encode("utf-16-le")
    n = len(data) // 4
    assert 2 * data[3:4 * n:4].count(0) == n
    assert wide_text(data[:4096]).startswith("UTF-16 text (little-endian, without a byte-order mark")
    csv = tmp_path / "u16.csv"
    csv.write_bytes(data)
    with pytest.raises(ValueError, match=rf"^{csv}: UTF-16 text \(little-endian, without a byte-order mark"):
        read_csv_cells(csv)
