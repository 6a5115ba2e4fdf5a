"""Defects a new user's walkthrough found on real data (a misnamed subject folder, a clip list column of another name,
whole recordings prepared as face crops, a bad apex neighbour replaced silently, a typo in a sheet's apex cell): each
is now said, naming the file, folder or cell."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from icegan.data.clip_list import ClipList


def _frames(folder: Path, numbers, shape=(16, 16)) -> None:
    import cv2
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        cv2.imwrite(str(folder / f"img{n}.jpg"), np.full(shape, 100 + n, np.uint8))


# ---- 2. a clip list column of another name ------------------------------------------------------------------------
@pytest.mark.parametrize("column,meant", [("apex_frame", "apex"), ("ApexFrame", "apex"), ("apex frame", "apex"),
                                          ("onset_frame", "onset"), ("emotion", "label"), ("class", "label"),
                                          ("expression", "label"), ("subject_id", "subject"),
                                          ("participant", "subject"), ("Lable", "label")])
def test_clip_list_refuses_a_column_meant_as_a_known_one(tmp_path, column, meant):
    """`apex_frame` for `apex` was ignored (every apex spotted: another score, exit 0), `emotion` for `label` left
    every clip without a class; both are refused naming the file, the column and the column meant."""
    _frames(tmp_path / "v" / "a", range(10, 16))
    header = ["subject", "clip", "frames", "onset", "apex", "label"]
    header[header.index(meant) if meant in header else 4] = column
    csv = tmp_path / "clips.csv"
    csv.write_text(",".join(header) + "\np01,a,v/a,10,13,positive\n")
    with pytest.raises(ValueError) as err:
        ClipList(csv).records()
    msg = str(err.value)
    assert str(csv) in msg and repr(column.lower()) in msg and f"did you mean {meant!r}" in msg, msg


def test_clip_list_ignores_an_unknown_column_with_a_warning(tmp_path, caplog):
    """A column of no known name (a researcher's comment) is left unread with a warning naming it, not refused; an
    unnamed empty column (a trailing comma of a spreadsheet's export) is no column at all."""
    _frames(tmp_path / "v" / "a", range(10, 16))
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,comment\np01,a,v/a,10,13,nice\n")
    with caplog.at_level(logging.WARNING, logger="icegan.data"):
        assert [r.apex for r in ClipList(csv).records()] == [13]
    assert any("'comment' ignored" in r.getMessage() for r in caplog.records)
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("subject,clip,frames,onset,apex,\np01,a,v/a,10,13,\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="icegan.data"):
        assert [r.apex for r in ClipList(trailing).records()] == [13]
    assert not any("ignored" in r.getMessage() for r in caplog.records)


def test_data_check_on_a_clip_list_with_a_renamed_column_says_the_same(tmp_path):
    from icegan.data.check import check_dataset
    _frames(tmp_path / "v" / "a", range(10, 16))
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex_frame\np01,a,v/a,10,13\n")
    with pytest.raises(ValueError, match=r"clips\.csv: not a clip list column: column 'apex_frame': did you mean "
                                         r"'apex'"):
        check_dataset("clips", csv, read_images=False)


# ---- 1. a misnamed subject folder --------------------------------------------------------------------------------
CASME2_SHEET = "CASME2-coding-20140508.xlsx"


@pytest.mark.parametrize("folder,subject", [("sub1", "sub01"), ("1", "sub01"), ("02", "sub02")])
def test_prepare_names_the_likely_folder_of_a_subject_not_on_disk(shared_data, tmp_path, caplog, folder, subject):
    """sub01 renamed sub1 (or 1; 02 for sub02): the preprocessing only said "subject folders not on disk, their clips
    skipped: casme2/sub01 (3)" and went on with fewer subjects; it now says which folder to rename, as `icegan data
    check` does (one hint code)."""
    from icegan.data.check import check_dataset
    from icegan.data.prepare import DatasetSpec, PrepareConfig, PrepareError, prepare_dataset
    root, sheet = tmp_path / "casme2", shared_data / "annotations" / CASME2_SHEET
    root.mkdir()
    (root / "sub03").symlink_to(shared_data / "casme2" / "sub03")
    (root / folder).symlink_to(shared_data / "casme2" / subject)
    cfg = PrepareConfig(datasets=[DatasetSpec("casme2", str(root), str(sheet), subjects=[subject])],
                        cache_root=str(tmp_path / "cache"), progress=False)
    with caplog.at_level(logging.WARNING, "icegan.data"), pytest.raises(PrepareError, match="no usable clip"):
        prepare_dataset(cfg)
    line = next(r.getMessage() for r in caplog.records if "subject folders not on disk" in r.getMessage())
    assert f"casme2/{subject} (" in line and f"rename {root / folder} to {subject}" in line, line
    rep = check_dataset("casme2", root, sheet, read_images=False)
    assert rep.padding_mismatches == {folder: subject} and f"rename {folder} to {subject}" in rep.text()


# ---- 5. a typo in a sheet's apex cell -----------------------------------------------------------------------------
def test_a_typo_in_a_sheet_apex_cell_is_a_warning_naming_sheet_row_and_value(shared_data, tmp_path, caplog):
    """An apex cell 416.7 (a typo) dropped the clip at INFO level among the release's '/' rows; it is now a WARNING
    naming the sheet, the row and the value, and the '/' row stays an INFO line."""
    import openpyxl

    from icegan.data.casme2 import CASME2
    sheet = tmp_path / CASME2_SHEET
    wb = openpyxl.load_workbook(shared_data / "annotations" / CASME2_SHEET)
    ws = wb.worksheets[0]
    header = [str(c.value).strip() if c.value is not None else "" for c in ws[1]]
    subj, fname, apex = header.index("Subject"), header.index("Filename"), header.index("ApexFrame")
    row = next(r[0].row for r in ws.iter_rows(min_row=2)
               if str(r[subj].value).strip() in ("1", "01") and str(r[fname].value).strip() == "EP19_05f")
    ws.cell(row=row, column=apex + 1, value=416.7)
    wb.save(sheet)
    root = tmp_path / "casme2"
    root.mkdir()
    (root / "sub01").symlink_to(shared_data / "casme2" / "sub01")
    with caplog.at_level(logging.INFO, "icegan.data"):
        ds = CASME2(root, sheet)
        keys = [r.key for r in ds.records()]
    assert "casme2/sub01/EP19_05f" not in keys and "casme2/sub01/EP02_01f" in keys
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("sub01/EP19_05f" in m and "416.7" in m and f"sheet row {row}" in m and str(sheet) in m
               and "correct the cell" in m for m in warned), warned
    assert not any("EP12_01f" in m for m in warned)          # the release's '/' row: INFO, as before
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("sub04/EP12_01f (apex is not a frame number (apex cell '/'" in m for m in info), info
    assert ds.layout_problems and "416.7" in ds.layout_problems[0]["problem"]


# ---- 3. whole recordings prepared as face crops --------------------------------------------------------------------
def test_cropped_mode_on_whole_recordings_warns_once_naming_the_dataset_and_a_clip(shared_data, tmp_path, caplog):
    """A dataset entry without `mode:` is prepared `cropped` (kept: recorded runs), so whole 640x480 frames were
    squeezed to a square with no face detection and no word; now a warning says so once, naming the dataset, a clip
    and the key to set. The shipped (cropped) CASME II gives none."""
    from icegan.data.prepare import DatasetSpec, PrepareConfig, dataset_records, prepare_dataset, whole_frames_note
    root, sheet = tmp_path / "casme2", shared_data / "annotations" / CASME2_SHEET
    root.mkdir()
    (root / "sub01").symlink_to(shared_data / "casme2_raw" / "sub01")
    cfg = PrepareConfig(datasets=[DatasetSpec("casme2", str(root), str(sheet), subjects=["sub01"])], size=16,
                        cache_root=str(tmp_path / "cache"), progress=False)
    assert cfg.datasets[0].mode == "cropped"                        # the default, unchanged
    with caplog.at_level(logging.WARNING, "icegan.data"):
        prepare_dataset(cfg)
    said = [r.getMessage() for r in caplog.records if "look like whole recordings" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith("casme2: ") and "casme2/sub01/EP02_01f" in said[0] and "640x480" in said[0]
    assert "mode: raw" in said[0] and "data.prepare.datasets.N.mode" in said[0]
    shipped = dataset_records(DatasetSpec("casme2", str(shared_data / "casme2"), str(sheet)))
    assert len(shipped) > 100 and whole_frames_note("casme2", shipped) is None


# ---- 4. a bad apex neighbour replaced silently --------------------------------------------------------------------
def test_a_bad_apex_neighbour_is_a_warning_naming_the_file_and_its_replacement(tmp_path, caplog):
    """apex+1 unreadable, apex-1 of another size: each was replaced by the nearest readable frame with a note in the
    cache's manifest.csv alone; now each is a warning naming the file and the frame used in its place."""
    from icegan.data.prepare import DatasetSpec, PrepareConfig, prepare_dataset
    folder = tmp_path / "v" / "a"
    _frames(folder, range(10, 17), shape=(32, 32))
    (folder / "img14.jpg").write_bytes(b"not a jpeg")
    _frames(folder, [12], shape=(40, 32))
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,label\np01,a,v/a,10,13,positive\n")
    cfg = PrepareConfig(datasets=[DatasetSpec("clips", str(csv))], size=16, cache_root=str(tmp_path / "cache"),
                        progress=False)
    with caplog.at_level(logging.WARNING, "icegan.data"):
        prep = prepare_dataset(cfg)
    assert list(prep.manifest[["apex_m2", "apex_m1", "apex_p1", "apex_p2"]].iloc[0]) == [11, 13, 13, 15]
    said = [r.getMessage() for r in caplog.records if "used in its place" in r.getMessage()]
    assert any(m.startswith("clips/p01/a: apex+1 frame 14") and str(folder / "img14.jpg") in m
               and "cannot read image" in m and "frame 13 (img13.jpg) used in its place" in m for m in said), said
    assert any("apex-1 frame 12" in m and str(folder / "img12.jpg") in m and "32×40" in m
               and "frame 13 (img13.jpg) used in its place" in m for m in said), said
