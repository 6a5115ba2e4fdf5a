"""Tests written by a mutation audit of the data preparation between the raw frames / coding sheets and the faces the
models see (icegan.data.align, icegan.data.landmarks, icegan.data.roi, icegan.data.prepare, icegan.data.records,
icegan.data.smic, icegan.data.clip_list; the composite mapping of icegan.data.composite and the sheet frame cells of
icegan.data.sheets had no surviving mutant): each test fails on a small deliberate change of the code that the earlier
tests let pass (named in the test's docstring; a change the earlier tests catch too is said to be). Expected values
are worked out by hand in the docstrings, never copied from the code's output."""
from __future__ import annotations

import numpy as np
import pytest
from _clip_records import constant_clip

from icegan.data import align


def _level_face(x0: float = 100.0, y0: float = 200.0, width: float = 40.0, height: float = 20.0) -> np.ndarray:
    """(68, 2) synthetic landmarks spanning [x0, x0 + width] × [y0, y0 + height] whose two eyes (points 36–41, the
    subject's right eye, left in the image, and 42–47) lie on one horizontal line: eye-line angle 0."""
    pts = np.zeros((68, 2))
    pts[:, 0] = np.linspace(x0, x0 + width, 68)
    pts[:, 1] = y0 + height / 2
    pts[0, 1], pts[1, 1] = y0, y0 + height
    pts[36:48, 1] = y0 + 5
    return pts


def _rotated(pts: np.ndarray, degrees: float, centre=(0.0, 0.0)) -> np.ndarray:
    """``pts`` turned by ``degrees`` about ``centre`` (x right, y down: positive turns x towards y)."""
    t = np.radians(degrees)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    c = np.asarray(centre, float)
    return (pts - c) @ r.T + c


# ------------------------------------------------------------------------------------------------ icegan.data.align

def test_refined_landmarks_are_mapped_back_to_the_frame_and_rebuild_the_box(monkeypatch):
    """The second detection runs on the first crop; its points are mapped back to frame pixels with the inverse of
    the crop matrix, and the final box is built from them.

    The level 40 × 20 px face at x 100..140, y 200..220 with margin 0.1 gets a 48 px crop (40 · 1.2) whose matrix is a
    pure shift: the box centre (120, 210) goes to (24, 24), i.e. by (−96, −186). A stand-in detector finds, in the
    crop, the face 6 px further right and 3 px higher: frame points = first points + (6, −3), box centre (126, 207),
    final shift (24 − 126, 24 − 207) = (−102, −183). The face box the detector finds in the crop, with no upsampling
    (the face fills the crop), is the box the predictor is given. Mutations killed: the refined points mapped back with
    the forward matrix instead of its inverse; the final box left on the first points (refined points reported but
    unused); the crop's own face box ignored (always the fallback box)."""
    pts = _level_face()
    seen = {}

    def faces(img, detector="hog", upsample=None):
        seen["faces"] = (img.shape, detector, upsample)
        return [(5, 40, 38, 7)]

    def predict(img, box):
        seen["box"] = tuple(box)
        return (pts + [-96.0, -186.0] + [6.0, -3.0]).astype(np.float32)

    monkeypatch.setattr(align, "detect_faces", faces)
    monkeypatch.setattr(align, "landmarks_in_box", predict)
    al = align.compute_alignment(np.zeros((480, 640), np.uint8), detector="hog", margin=0.1, landmarks=pts)
    assert al.refined and al.native == 48 and al.angle_deg == pytest.approx(0.0, abs=1e-9)
    assert seen == {"faces": ((48, 48), "hog", 0), "box": (5, 40, 38, 7)}
    np.testing.assert_allclose(al.landmarks, pts + [6.0, -3.0], atol=1e-4)
    np.testing.assert_allclose(al.matrix, [[1, 0, -102], [0, 1, -183]], atol=1e-4)


def test_without_a_face_in_the_crop_the_landmarks_are_predicted_in_the_first_points_box(monkeypatch):
    """When the detector finds no face in the first crop, the predictor is given the box the first landmarks span in
    the crop, as (top, right, bottom, left). The level 40 × 20 face, turned by 20° (eye line at 20°), is levelled by
    the crop, so in the 48 px crop its points span x 4..44 (40 px centred) and y 14..34 (20 px centred): the box is
    (14, 44, 34, 4). Mutations killed: x and y swapped in the box ((4, 34, 44, 14)); the first points mapped into the
    crop with the transposed rotation (a face turned by a further 40°: another box)."""
    pts = _rotated(_level_face(), 20.0, centre=(130.0, 190.0))
    seen = {}
    monkeypatch.setattr(align, "detect_faces", lambda img, detector="hog", upsample=None: [])

    def predict(img, box):
        seen["box"] = tuple(float(v) for v in box)
        return np.full((68, 2), 24.0, np.float32) + np.random.default_rng(0).normal(0, 3, (68, 2)).astype(np.float32)

    monkeypatch.setattr(align, "landmarks_in_box", predict)
    al = align.compute_alignment(np.zeros((480, 640), np.uint8), landmarks=pts, margin=0.1)
    assert al.refined
    assert seen["box"] == pytest.approx((14.0, 44.0, 34.0, 4.0), abs=1e-6)


# ------------------------------------------------------------------------------------------------ icegan.data.prepare

def _record(numbers, onset=1, apex=5, offset=9):
    """A clip record of a clip list whose frames ``numbers`` are ``img<n>.jpg`` (no file is read)."""
    from pathlib import Path

    from icegan.data.records import ClipRecord
    numbers = tuple(numbers)
    return ClipRecord(dataset="clips", subject="clips/me", clip="c", emotion="", class3=None, onset=onset, apex=apex,
                      offset=offset, frame_numbers=numbers, frame_paths=tuple(Path(f"img{n}.jpg") for n in numbers),
                      listed_in="clip list")


def test_a_missing_apex_neighbour_is_replaced_by_the_nearest_frame_towards_the_apex():
    """Frames 1, 2, 4, 5, 6, 8, 9 on disk, apex 5: apex−2 = 3 is missing and frames 2 and 4 are both 1 away, so the
    one nearer the apex, 4, stands in; apex+2 = 7 is missing, 6 and 8 are 1 away: 6. apex−1 = 4 and apex+1 = 6 are on
    disk. With frame 4 unreadable as well, apex−2 = 3 takes 2 (1 away; 5 is 2 away) and apex−1 = 4 takes 5 (1 away;
    2 is 2 away). Mutation killed: no tie-break (the lower frame: 2 for apex−2); the earlier tests catch the tie
    broken away from the apex (2 and 8) and an unreadable frame used as a neighbour (there: a prepare that never
    ends, the same frame picked again and again)."""
    from icegan.data.prepare import select_neighbours
    rec = _record((1, 2, 4, 5, 6, 8, 9))
    nb, notes = select_neighbours(rec, 5)
    assert nb == [4, 4, 6, 6]
    assert notes == ["apex-2 frame 3 not on disk, used 4", "apex+2 frame 7 not on disk, used 6"]
    nb, notes = select_neighbours(rec, 5, unreadable={4})
    assert nb == [2, 5, 6, 6]
    assert notes[1] == "apex-1 frame 4 unreadable (img4.jpg), used 5"


def _grey_clip(tmp_path, offset="10"):
    """Clip record of a clip list: frames 1..10, frame n a 40 × 40 grey image of level 10·n; onset 2, apex 5."""
    from icegan.data import prepare as prep
    csv = constant_clip(tmp_path, offset=offset)
    return prep.dataset_records(prep.DatasetSpec(name="clips", root=str(csv)))[0]


def test_without_a_face_on_the_onset_the_clip_is_aligned_on_the_earlier_of_two_equally_near_frames(tmp_path,
                                                                                                   stand_in_faces):
    """No face on the onset frame 2 (grey level 20): frames 1 and 3 are both one frame away, and the earlier one, 1
    (before the onset: a frame of the neutral face), is the frame the clip is aligned on, with a note. Mutation killed:
    ties to the later frame (3, a frame of the expression)."""
    from icegan.data import prepare as prep
    stand_in_faces.add(20)
    out = prep.process_clip(_grey_clip(tmp_path), "raw", prep._settings(prep.PrepareConfig(size=20)))
    assert "error" not in out, out
    assert out["align_frame"] == 1 and "no face on onset frame 2; aligned on frame 1" in out["notes"]


def test_without_neighbours_the_landmarks_rows_of_onset_and_apex_are_theirs(tmp_path, stand_in_faces):
    """``neighbours: false``: landmarks.npy keeps its six rows (onset, apex−2, apex−1, apex, apex+1, apex+2); row 0 is
    the onset's (grey level 20 at 20 / 40 px, in cv2.resize's pixel centres: (20 + 0.5) / 2 - 0.5 = 9.75), row 3 the
    apex's (50 → 24.75), the neighbour rows NaN. Mutation killed: the onset's and the apex's landmarks written in each
    other's row."""
    from icegan.data import prepare as prep
    out = prep.process_clip(_grey_clip(tmp_path), "raw", prep._settings(prep.PrepareConfig(size=20, neighbours=False,
                                                                                   landmarks=True)))
    assert "error" not in out, out
    lm = out["landmarks"]
    assert lm.shape == (6, 68, 2) and (lm[0] == 9.75).all() and (lm[3] == 24.75).all()
    assert np.isnan(lm[[1, 2, 4, 5]]).all() and out["neighbours"] is None


def test_a_clip_without_an_offset_has_its_sequence_run_to_its_last_frame(tmp_path):
    """``sequences: true`` for a clip list clip without an offset: the sequence is onset..the last frame on disk,
    frames 2..10 (9 frames, grey levels 20..100), not onset..apex. Mutation killed: a missing offset taken as the
    apex (the flow training of such clips cut at the apex)."""
    from icegan.data import prepare as prep
    out = prep.process_clip(_grey_clip(tmp_path, offset=""), "cropped",
                            prep._settings(prep.PrepareConfig(size=16, sequences=True)))
    assert "error" not in out, out
    assert (out["seq_first"], out["seq_last"]) == (2, 10)
    assert [int(f[0, 0]) for f in out["sequence"]] == [20, 30, 40, 50, 60, 70, 80, 90, 100]



@pytest.mark.parametrize("src, fallbacks, note", [
    ([-1] * 6, 0, "landmarks: no face detected on any key frame"),
    ([0, 0, 2, 3, 4, 5], 1, "landmarks: 1 key frame(s) used a neighbouring frame's face box"),
])
def test_landmark_fallbacks_count_the_key_frames_that_borrowed_a_face_box(tmp_path, stand_in_faces, monkeypatch,
                                                                          src, fallbacks, note):
    """The six key frames onset 2, apex−2 3, apex−1 4, apex 5, apex+1 6, apex+2 7 (sorted: 2..7): when no key frame
    has a face (``source`` −1 everywhere) none borrowed a box, 0 fallbacks, and the note says no face was found; when
    frame 3 (index 1) took frame 2's box, 1 fallback. Mutation killed: the frames without any face counted as
    fallbacks (6 in the manifest's landmark_fallbacks for a clip with no face on its key frames)."""
    from icegan.data import landmarks
    from icegan.data import prepare as prep
    monkeypatch.setattr(landmarks, "landmarks_on_frames", lambda frames, detector="hog", known=None: (
        np.full((len(frames), 68, 2), np.nan, np.float32), np.array(src)))
    out = prep.process_clip(_grey_clip(tmp_path), "raw", prep._settings(prep.PrepareConfig(size=20, landmarks=True)))
    assert "error" not in out, out
    assert out["landmark_fallbacks"] == fallbacks and note in out["notes"]

# ------------------------------------------------------------------------------------------------ icegan.data.landmarks

def test_a_frame_without_a_face_borrows_the_box_of_the_nearest_frame_with_one_earlier_on_ties(monkeypatch):
    """Five frames, faces found on frames 0 and 2 only: frame 1 is 1 away from both and takes the earlier, 0; frames
    3 and 4 take 2 (1 and 2 away; 0 is 3 and 4 away). ``source`` says so: [0, 0, 2, 2, 2]. Each frame's landmarks are
    predicted on that frame inside the borrowed box (the stand-in predictor returns the box's top and the frame's
    grey level). Mutations killed: ties to the later frame ([0, 2, 2, 2, 2]), every frame without a face taking the
    first frame with one ([0, 0, 2, 0, 0]); the earlier tests catch the first and ``source`` left as the frame
    itself."""
    from icegan.data import landmarks
    boxes = {0: (10, 50, 40, 20), 2: (12, 52, 42, 22)}
    frames = [np.full((60, 60), k, np.uint8) for k in range(5)]
    monkeypatch.setattr(landmarks, "detect_faces",
                        lambda img, detector="hog", upsample=None: [boxes[int(img[0, 0])]] if int(img[0, 0]) in boxes
                        else [])
    monkeypatch.setattr(landmarks, "landmarks_in_box",
                        lambda img, box: np.tile(np.float32([box[0], img[0, 0]]), (68, 1)))
    pts, src = landmarks.landmarks_on_frames(frames)
    assert src.tolist() == [0, 0, 2, 2, 2]
    assert pts[:, 0, 0].tolist() == [10, 10, 12, 12, 12] and pts[:, 0, 1].tolist() == [0, 1, 2, 3, 4]



def test_the_landmarks_of_a_frame_are_those_of_its_largest_face(monkeypatch):
    """detect_faces gives the boxes largest first; detect_landmarks predicts inside the first, the 90 × 90 px face,
    not the 30 × 30 px one (someone behind the subject). Mutation killed: the last box (the smallest face) used."""
    from icegan.data import landmarks
    big, small = (0, 100, 90, 10), (10, 50, 40, 20)
    used = []
    monkeypatch.setattr(landmarks, "detect_faces", lambda img, detector="hog", upsample=None: [big, small])
    monkeypatch.setattr(landmarks, "landmarks_in_box", lambda img, box: used.append(box) or np.zeros((68, 2)))
    landmarks.detect_landmarks(np.zeros((120, 120), np.uint8))
    assert used == [big]

# ------------------------------------------------------------------------------------------------ icegan.data.roi

def test_the_landmark_cache_key_changes_with_the_face_reader_version(tmp_path, monkeypatch):
    """The same face file read by another version of the reader (version 2 turns a face by its EXIF orientation;
    version 1 read a face tagged 5-8 sideways) gets another cache key, so landmarks found on faces read the old way
    are not reused. Mutation killed: :data:`FACE_READER_VERSION` left out of the key (the sideways faces' landmarks of
    an old cache kept after the reader was fixed)."""
    from icegan.data import roi
    face = tmp_path / "face.jpg"
    face.write_bytes(b"abcd")
    key = roi.files_cache_key([face])
    monkeypatch.setattr(roi, "FACE_READER_VERSION", roi.FACE_READER_VERSION + 1)
    assert roi.files_cache_key([face]) != key


# ------------------------------------------------------------------------------------------------ icegan.data.records

def test_frames_are_ordered_by_number_and_found_by_number_across_a_gap(tmp_path):
    """img1.jpg .. img12.jpg without img7.jpg, written in a shuffled order: the frames come in numeric order 1, 2, ...,
    6, 8, ..., 12 (img9 before img10: a name sort would give img1, img10, img11, img12, img2, ...), and frame n is the
    file img<n>.jpg, also after the gap (frame 8 is the 7th file, not the 8th); frame 7 is not on disk. Mutations
    killed: frames sorted as text (the onset→apex order of every clip crossing 9→10 or 99→100 scrambled), a frame
    looked up by its offset from the first frame (every frame after a gap off by one); the earlier tests catch both
    less directly (a clip list's spotted apex, data check's report of a clip with missing frames)."""
    from icegan.data.records import list_frames
    for n in (10, 3, 12, 1, 8, 5, 11, 2, 9, 6, 4):
        (tmp_path / f"img{n}.jpg").write_bytes(b"x")
    numbers, paths, problems = list_frames(tmp_path)
    assert numbers == (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12) and problems == []
    assert [p.name for p in paths] == [f"img{n}.jpg" for n in numbers]
    rec = _record(numbers)
    assert rec.frame_path(8).name == "img8.jpg" and rec.frame_path(12).name == "img12.jpg"
    with pytest.raises(KeyError, match="frame 7 is not on disk"):
        rec.frame_path(7)



# ------------------------------------------------------------------------------------------------ icegan.data.base

def test_casme2_subject_folders_come_sorted_whatever_the_directory_order(tmp_path):
    """Twelve CASME II subject folders created in a shuffled order come back sorted (sub01 .. sub26, zero-padded so
    that text order is number order). Mutation killed: the folders in directory order (``disk_clips`` and
    ``icegan data check`` in an order that changes with the file system)."""
    from icegan.data.casme2 import CASME2
    names = [f"sub{n:02d}" for n in (17, 3, 26, 1, 9, 12, 20, 5, 14, 2, 23, 8)]
    for name in names:
        (tmp_path / name).mkdir()
    sheet = tmp_path / "CASME2-coding-20140508.xlsx"
    sheet.write_bytes(b"")                          # found by name; not read by subject_folders
    assert CASME2(tmp_path, sheet).subject_folders() == sorted(names)


# ------------------------------------------------------------------------------------------------ icegan.data.smic

def test_smic_records_come_in_subject_class_clip_order_with_the_first_and_last_frames(tmp_path):
    """A SMIC-HS tree written in a scrambled order: s10 and s2, each with class folders surprise, positive, negative
    and clips s2_ne_02 before s2_ne_01. Records come by subject number (s2 before s10), then class folder, then clip
    name; the class is the folder's (negative 0, positive 1, surprise 2); onset is the first frame on disk (106114),
    offset the last (106120), whatever the file order; the apex is unset until spotted. Mutation killed: clips in
    reverse name order (the order of the manifest, features.csv and the LOSO folds' rows); the earlier tests catch
    the onset taken one frame late and subjects sorted as text."""
    from icegan.data.smic import SMIC
    plan = [("s10", "surprise", "s10_sur_01"), ("s2", "negative", "s2_ne_02"), ("s2", "surprise", "s2_sur_01"),
            ("s2", "negative", "s2_ne_01"), ("s2", "positive", "s2_po_01"), ("s10", "negative", "s10_ne_01")]
    for subject, cls, clip in plan:
        d = tmp_path / "SMIC_all_cropped" / "HS" / subject / "micro" / cls / clip
        d.mkdir(parents=True)
        for n in (106120, 106114, 106117, 106115):
            (d / f"reg_image{n}.bmp").write_bytes(b"x")
    recs = SMIC(tmp_path).records()
    assert [r.key for r in recs] == ["smic/s2/s2_ne_01", "smic/s2/s2_ne_02", "smic/s2/s2_po_01", "smic/s2/s2_sur_01",
                                     "smic/s10/s10_ne_01", "smic/s10/s10_sur_01"]
    assert [r.class3 for r in recs] == [0, 0, 1, 2, 0, 2]
    assert {(r.onset, r.apex, r.offset, r.apex_method) for r in recs} == {(106114, None, 106120, "unspotted")}
    assert recs[0].frame_numbers == (106114, 106115, 106117, 106120)


# ------------------------------------------------------------------------------------------------ icegan.data.clip_list

def test_a_clip_list_offset_equal_to_the_onset_is_not_before_it(tmp_path):
    """A row with onset 5, offset 5 and the apex to be spotted is read (its offset is not *before* its onset; the clip
    is skipped later, by prepare, for having one frame to spot in), and the other rows with it. Mutation killed: the
    offset check made ``<=``, which refused the whole list with the false message "offset 5 is before onset 5"."""
    from icegan.data.clip_list import ClipList
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset\np01,a,fa,5,,5\np01,b,fb,3,9,20\n")
    a, b = ClipList(csv).records()
    assert (a.onset, a.apex, a.offset, a.apex_method) == (5, None, 5, "unspotted")
    assert (b.onset, b.apex, b.offset, b.apex_method) == (3, 9, 20, "annotated")
