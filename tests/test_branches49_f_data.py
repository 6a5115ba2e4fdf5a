"""Branches of icegan.data / icegan.gan / icegan.paths that no other test takes: a one-column CSV with neither tabs
nor semicolons (no separator hint: the missing-columns message), SMIC rows whose OffsetF formula has no cached value
(the sheet is read once for all of them; a row with no TotalMF1 keeps no offset), a clean synthetic face
(``rng=None``), a CASME II manifest without its subject/filename columns (the missing-columns message, not a
KeyError of the cache key) and the configs of an installed icegan (``icegan/configs`` beside the package)."""
import numpy as np
import pytest


def test_a_one_column_csv_without_tabs_or_semicolons_gets_the_missing_columns_message(tmp_path):
    from icegan.data.feature_table import read_feature_table
    p = tmp_path / "t.csv"
    p.write_text("subject\nsub01\n")
    with pytest.raises(ValueError) as e:
        read_feature_table(p)
    assert "missing column(s) ['clip', 'label', 'path']; found ['subject']" in str(e.value)
    assert "comma" not in str(e.value)


def test_smic_uncached_offsets_read_the_sheet_once_and_a_row_without_a_frame_count_keeps_no_offset(tmp_path,
                                                                                               monkeypatch):
    import openpyxl

    import icegan.data.sheets as sheets
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "HS"
    ws.append(["Subject", "Filename", "OnsetF", "TotalMF1", "OffsetF", "Emotion"])
    ws.append([20, "s20_ne_01", 100, 17, "=C2+D2-1", "negative"])     # formulas openpyxl saves uncached
    ws.append([20, "s20_ne_02", 200, None, "=C3+D3-1", "negative"])
    ws.append([20, "s20_po_03", 300, 5, "=C4+D4-1", "positive"])
    wb.save(tmp_path / "smic.xlsx")
    reads = []
    real = sheets._read_table
    monkeypatch.setattr(sheets, "_read_table", lambda *a, **kw: reads.append(a) or real(*a, **kw))
    rows = sheets.read_smic_sheet(tmp_path / "smic.xlsx")
    assert [(r.clip, r.onset, r.offset) for r in rows] == [("s20_ne_01", 100, 116), ("s20_ne_02", 200, None),
                                                           ("s20_po_03", 300, 304)]
    assert len(reads) == 1      # one read, for the rows and the cells of the three uncached offsets alike
    assert rows[0].notes == rows[2].notes == []
    assert rows[1].notes == ["offset unknown: the OffsetF formula has no saved value and TotalMF1 holds no frame count "
                             "(sheet row 3); open and save the sheet in a spreadsheet program to store the formula "
                             "values"]


def test_a_synthetic_face_without_rng_is_the_clean_deterministic_render():
    from icegan.data.synthetic_me import draw_face, make_identity
    ident = make_identity(3, size=48)
    clean = draw_face(ident, 48)
    assert clean.shape == (48, 48) and clean.dtype == np.float32
    np.testing.assert_array_equal(clean, draw_face(ident, 48))
    lit = draw_face(ident, 48, np.random.default_rng(0))
    assert np.abs(lit - clean).max() > 0.01        # the per-clip lighting and noise are what rng adds


def test_a_casme2_manifest_without_subject_and_filename_names_its_missing_columns(tmp_path):
    from icegan.gan.pairs import load_casme2_pairs
    (tmp_path / "manifest.csv").write_text("clip,onset\nEP01,1\n")
    with pytest.raises(ValueError, match=r"manifest\.csv: missing columns \[.*'filename', 'subject'"):
        load_casme2_pairs(tmp_path, cache=False)


def test_an_installed_icegan_finds_its_configs_beside_the_package(tmp_path, monkeypatch):
    import icegan.paths as paths
    pkg = tmp_path / "site-packages" / "icegan"
    (pkg / "configs").mkdir(parents=True)
    (pkg / "configs" / "demo.yaml").write_text("{}\n")
    monkeypatch.setattr(paths, "__file__", str(pkg / "paths.py"))
    assert paths.shipped_config_dir() == (pkg / "configs").resolve()
    assert paths.shipped_config("demo") == (pkg / "configs" / "demo.yaml").resolve()


def test_padding_mismatches_ignore_names_without_a_number_on_either_side():
    """Sheet subjects and folders that are not letters then a number (``notes``, ``s1a``) pair with nothing, even
    with each other (their shared key is None, which no folder looks up)."""
    from icegan.data.check import padding_mismatches
    assert padding_mismatches(["sub2", "notes", "x"], ["sub02", "notes2x", "abc", "s1a"]) == {"sub2": "sub02"}
    assert padding_mismatches(["abc"], ["abd"]) == {}
