"""Review fixes of the clip list's column check, prepare's whole-recording warning and the subject rename hints:
a column beside its known one is ignored with a warning, not refused; a repeated header or a feature table given for
a clip list is named as such; --clips-mode is named for a clip list; large face crops are not called whole
recordings; `icegan data check` and prepare pair each missing subject with one folder, in one wording."""
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


def _clip_list(tmp_path: Path, header: str, row: str) -> Path:
    _frames(tmp_path / "v" / "a", range(10, 16))
    csv = tmp_path / "clips.csv"
    csv.write_text(header + "\n" + row + "\n")
    return csv


# ---- 1. unknown columns ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra,value", [("emotion", "happiness"), ("apex_frame", "13"), ("notes", "ok"),
                                         ("Comment", "nice")])
def test_a_column_beside_its_known_one_or_of_no_known_name_is_ignored_with_a_warning(tmp_path, caplog, extra, value):
    """`label,emotion` said "did you mean 'label'? (rename it)" (a duplicate label if followed), `notes` was refused:
    both are read as before, the extra column left unread with one warning naming the file and the column."""
    csv = _clip_list(tmp_path, f"subject,clip,frames,onset,apex,label,{extra}", f"p01,a,v/a,10,13,positive,{value}")
    with caplog.at_level(logging.WARNING, logger="icegan.data"):
        recs = ClipList(csv).records()
    assert [(r.apex, r.class3) for r in recs] == [(13, 1)]
    warned = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(warned) == 1 and str(csv) in warned[0] and repr(extra.lower()) in warned[0], warned


def test_a_column_looking_like_a_missing_known_one_is_still_refused(tmp_path):
    csv = _clip_list(tmp_path, "subject,clip,frames,onset,apex,emotion", "p01,a,v/a,10,13,positive")
    with pytest.raises(ValueError, match=r"clips\.csv: not a clip list column: column 'emotion': did you mean "
                                         r"'label'"):
        ClipList(csv).records()


@pytest.mark.parametrize("header", ["subject,clip,frames,onset,apex,label,label",
                                    "subject,clip,frames,onset,apex,Label,label"])
def test_a_column_named_twice_is_refused_as_a_duplicate(tmp_path, header):
    """`label,label` (pandas' `label.1`) said "'label.1': did you mean 'label'"; `Label,label` failed unnamed."""
    csv = _clip_list(tmp_path, header, "p01,a,v/a,10,13,positive,positive")
    with pytest.raises(ValueError) as err:
        ClipList(csv).records()
    msg = str(err.value)
    assert str(csv) in msg and "['label']" in msg and "more than once" in msg and "label.1" not in msg, msg


# ---- 2. a feature table given as a clip list --------------------------------------------------------------------
@pytest.mark.parametrize("folder", ["run", "take #2"])
def test_a_feature_table_given_as_a_clip_list_is_named_as_one(tmp_path, folder):
    """It said "column 'path': did you mean 'frames'?"; now it names a feature table and where it is given (the
    path quoted as a shell and an override read it back whole)."""
    import shlex

    from icegan.config import override_text
    (tmp_path / folder).mkdir()
    csv = tmp_path / folder / "features.csv"
    csv.write_text("dataset,subject,clip,label,path\nclips,clips/p01,a,positive,maps/a.npy\n")
    with pytest.raises(ValueError) as err:
        ClipList(csv).records()
    msg = str(err.value)
    table = shlex.quote(override_text("data.table", str(csv)))
    assert str(csv) in msg and "a feature table" in msg and f"data.source=table {table}," in msg, msg
    assert f"--table {shlex.quote(str(csv))};" in msg, msg
    assert "did you mean" not in msg


# ---- 3. and 4. prepare's whole-recording warning ------------------------------------------------------------------
def _whole_frames_list(tmp_path: Path, shape) -> Path:
    _frames(tmp_path / "v", range(1, 6), shape=shape)
    csv = tmp_path / "l.csv"
    csv.write_text("subject,clip,frames,onset,apex\np01,a,v,1,3\n")
    return csv


def test_whole_recordings_in_a_clip_list_prepared_cropped_name_the_clips_mode_flag(tmp_path, caplog):
    """`icegan features --clips LIST --clips-mode cropped` on 640x480 frames was told cropped is "the default of a
    dataset entry" and to set datasets.N.mode, which --clips replaces: the warning names --clips-mode raw."""
    from icegan.data.prepare import DatasetSpec, PrepareConfig, prepare_dataset
    csv = _whole_frames_list(tmp_path, (480, 640))
    spec = DatasetSpec(name="clips", root=str(csv), mode="cropped", composite_only=False)   # as --clips builds it
    cfg = PrepareConfig(datasets=[spec], size=16, cache_root=str(tmp_path / "cache"), progress=False, workers=1)
    with caplog.at_level(logging.WARNING, "icegan.data"):
        prepare_dataset(cfg)
    said = [r.getMessage() for r in caplog.records if "look like whole recordings" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith("clips: ") and "640x480" in said[0] and "--clips-mode raw" in said[0], said[0]
    assert "the default of a dataset entry" not in said[0], said[0]


def test_the_warning_for_a_sheet_dataset_still_names_its_mode_key(tmp_path):
    from icegan.data.clip_list import ClipList
    from icegan.data.prepare import whole_frames_note
    recs = ClipList(_whole_frames_list(tmp_path, (480, 640))).records()
    note = whole_frames_note("samm", recs)
    assert note is not None and "data.prepare.datasets.N.mode" in note and "--clips-mode" not in note, note


@pytest.mark.parametrize("w,h", [(600, 720), (720, 720), (1000, 1100)])
def test_a_large_face_crop_is_not_called_a_whole_recording(tmp_path, w, h):
    """A 600x720 face crop (aspect 0.83, within a crop's 0.8-1.25) was warned about for its size alone."""
    from icegan.data.clip_list import ClipList
    from icegan.data.prepare import whole_frames_note
    recs = ClipList(_whole_frames_list(tmp_path, (h, w))).records()
    assert whole_frames_note("clips", recs) is None


# ---- 5. rename hints: one rule, one wording, one folder per subject ----------------------------------------------
def test_a_missing_subject_is_paired_with_its_closest_folder_alone():
    """padding_mismatches(['sub1', '1'], ['sub01']) said to rename both folders to sub01."""
    from icegan.data.check import padding_mismatches
    assert padding_mismatches(["sub1", "1"], ["sub01"]) == {"sub1": "sub01"}
    assert padding_mismatches(["1", "sub1"], ["sub01"]) == {"sub1": "sub01"}
    assert padding_mismatches(["1", "2", "sub2"], ["sub01", "sub02"]) == {"1": "sub01", "sub2": "sub02"}
    assert len(set(padding_mismatches(["sub1", "Sub01", "01", "1"], ["sub01"]).values())) == 1


def test_a_casme2_root_of_bare_number_folders_names_the_renames(tmp_path, shared_data):
    """A CASME II root holding only 1/ and 2/ was refused "it holds 1/, 2/" with no hint, though icegan data check
    pairs 1 with sub01."""
    from icegan.data.base import DatasetLayoutError
    from icegan.data.casme2 import CASME2
    for name in ("1", "2"):
        (tmp_path / name / "EP02_01f").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError) as err:
        CASME2(tmp_path, shared_data / "annotations" / "CASME2-coding-20140508.xlsx")
    msg = str(err.value)
    assert str(tmp_path) in msg and "it holds 1/, 2/" in msg and msg.endswith("rename 1 to sub01, 2 to sub02"), msg
    assert CASME2.padded_subject("1") == "sub01" and CASME2.padded_subject("s1") is None


def test_data_check_and_prepare_say_the_rename_in_one_wording(tmp_path, shared_data, caplog):
    """`icegan data check` said "but for the zero padding of its number" for 1 -> sub01; prepare "padding or
    letters": both now say "but for the zero padding or letters of the number"."""
    from icegan.data.check import check_dataset
    from icegan.data.prepare import DatasetSpec, PrepareConfig, prepare_dataset
    sheet = shared_data / "annotations" / "CASME2-coding-20140508.xlsx"
    root = tmp_path / "casme2"
    root.mkdir()
    (root / "sub02").symlink_to(shared_data / "casme2" / "sub02")
    (root / "1").symlink_to(shared_data / "casme2" / "sub01")
    rep = check_dataset("casme2", root, sheet, read_images=False)
    assert rep.padding_mismatches == {"1": "sub01"}
    wording = "but for the zero padding or letters of the number: rename"
    assert f"{wording} 1 to sub01" in rep.text(), rep.text()
    cfg = PrepareConfig(datasets=[DatasetSpec("casme2", str(root), str(sheet), subjects=["sub01", "sub02"])],
                        size=16, cache_root=str(tmp_path / "cache"), progress=False, workers=1)
    with caplog.at_level(logging.WARNING, "icegan.data"):
        prepare_dataset(cfg)
    said = [r.getMessage() for r in caplog.records if "subject folders not on disk" in r.getMessage()]
    assert len(said) == 1 and f"{wording} {root / '1'} to sub01" in said[0], said
