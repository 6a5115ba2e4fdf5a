"""`icegan data check` (icegan/data/check.py): the severity and order of one clip's problems, the offset checks per
dataset, unreadable key frames, and the report's counts (frames checked, clips missing on disk, classes in scope)."""

import cv2
import numpy as np

from icegan.data.check import SKIP, WARN, check_dataset

from _clip_records import clip_record, problems


def test_an_offset_before_the_onset_is_a_warning(tmp_path):
    assert problems(clip_record(tmp_path, offset=8)) == [("offset 8 is before onset 10", WARN)]


def test_casme2_and_samm_rows_need_an_offset_smic_does_not(tmp_path):
    for dataset in ("casme2", "samm"):
        assert problems(clip_record(tmp_path, dataset, offset=None)) == [("offset is not a frame number in the sheet", WARN)]
    assert problems(clip_record(tmp_path, "smic", offset=None)) == []


def test_skip_problems_come_before_warnings(tmp_path):
    """A sheet note (a warning, found first) and an apex absent from disk (a skip): the skip is listed first."""
    got = problems(clip_record(tmp_path, apex=30, offset=None, notes=("a note of the sheet",)))
    assert [s for _, s in got] == [SKIP, WARN, WARN] and got[0][0].startswith("apex frame 30 not on disk")


def test_an_unreadable_onset_or_apex_skips_the_clip_another_frame_warns(tmp_path):
    rec = clip_record(tmp_path)
    path = dict(zip(rec.frame_numbers, rec.frame_paths))
    assert problems(rec, unreadable={path[15]}) == [("unreadable image(s) for frame(s) 15", SKIP)]
    assert problems(rec, unreadable={path[10]}) == [("unreadable image(s) for frame(s) 10", SKIP)]
    assert problems(rec, unreadable={path[12]}) == [("unreadable image(s) for frame(s) 12", WARN)]


def test_report_counts_frames_only_when_read_and_lists_clips_missing_on_disk(tmp_path):
    folder = tmp_path / "v" / "a"
    folder.mkdir(parents=True)
    for n in range(10, 16):
        cv2.imwrite(str(folder / f"img{n}.jpg"), np.full((16, 16), 100 + n, np.uint8))
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex\np,a,v/a,10,15\np,b,v/b,10,15\n")
    quick = check_dataset("clips", csv, read_images=False)
    assert quick.frames_checked == 0 and quick.missing_on_disk == ["clips/p/b"]
    assert (quick.clips_usable, quick.clips_ok) == (1, 1)
    full = check_dataset("clips", csv, read_images=True, workers=1)
    assert full.frames_checked == 6 and full.unreadable_images == []


def test_classes_in_scope_leave_out_subjects_missing_on_disk(shared_data):
    """CASME II composite clips: 145 in the sheet, 22 of them of the four subjects absent from the data; the 123
    others are in scope (118 usable + 5 skipped), and only they are counted by class; emotions count usable clips."""
    rep = check_dataset("casme2", shared_data / "casme2", composite_only=True, read_images=False)
    assert rep.clips_in_sheet == 145 and sum(rep.missing_subjects.values()) == 22
    assert sum(rep.by_class.values()) == 123 == rep.clips_usable + len(rep.clips_skipped)
    assert sum(rep.by_emotion.values()) == rep.clips_usable == 118
    assert ("subjects in the sheet but not on disk: casme2/sub06 (4 clips), casme2/sub09 (10 clips), casme2/sub15 "
            "(3 clips), casme2/sub25 (5 clips)") in rep.text().splitlines()
    rep.missing_subjects = {"casme2/sub06": 1}
    assert "subjects in the sheet but not on disk: casme2/sub06 (1 clip)" in rep.text().splitlines()


def test_check_counts_the_usable_clips_of_each_single_dataset_label_set(shared_data):
    """`icegan data check` on the shared CASME II copy counts its usable clips per class of CASME II's five
    (data.labels=casme2_5), by sheet emotion: the 209 that the main job of configs/casme2_5class.yaml trains on
    (docs/benchmarks.md, "CASME II's five classes", recorded with 210 before sub05/EP09_05f, apex = onset, was
    skipped); fear and sadness clips are in no class."""
    from icegan.data.check import check_dataset
    rep = check_dataset("casme2", shared_data / "casme2", read_images=False)
    assert rep.clips_usable == 217
    assert rep.by_label_set == {"casme2_5": {"happiness": 25, "disgust": 54, "repression": 20, "surprise": 19,
                                             "others": 91}}
    assert ("data.labels=casme2_5 classes (usable): happiness 25, disgust 54, repression 20, surprise 19, others 91 "
            "= 209") in rep.text().splitlines()
