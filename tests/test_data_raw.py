"""Raw CASME II frames (../shared/data/casme2_raw/sub01, 640x480): landmarks on every frame, one crop
for all frames of a clip, 128x128 output."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from icegan.data import prepare as prep
from icegan.data.align import Alignment, apply_alignment, compute_alignment
from icegan.data.casme2 import CASME2
from icegan.data.landmarks import landmarks_on_frames


@pytest.fixture(scope="module")
def raw_clips(shared_data):
    ds = CASME2(shared_data / "casme2_raw", shared_data / "annotations" / "CASME2-coding-20140508.xlsx")
    recs = {r.clip: r for r in ds.records(subjects=["sub01"]) if r.frame_numbers}
    assert set(recs) == {"EP02_01f", "EP19_05f"}
    return recs


@pytest.fixture(scope="module")
def prepared(shared_data, tmp_path_factory):
    cfg = prep.PrepareConfig(
        datasets=[prep.DatasetSpec(name="casme2", root="{shared_data}/casme2_raw", mode="raw",
                                   annotations="{shared_data}/annotations/CASME2-coding-20140508.xlsx",
                                   subjects=["sub01"])],
        cache_root=str(tmp_path_factory.mktemp("cache")), workers=1, progress=False)
    return prep.prepare_dataset(cfg)


def test_landmarks_on_every_frame(raw_clips):
    rec = raw_clips["EP02_01f"]
    assert rec.frame_numbers == tuple(range(46, 87))
    numbers = rec.frame_numbers  # all 41 frames (~3 s of HOG detection)
    frames = [cv2.imread(str(rec.frame_path(n)), cv2.IMREAD_GRAYSCALE) for n in numbers]
    assert all(f.shape == (480, 640) for f in frames)
    pts, src = landmarks_on_frames(frames)
    assert pts.shape == (len(frames), 68, 2) and np.isfinite(pts).all()
    assert (src == np.arange(len(frames))).all()  # a direct detection on every frame
    assert (pts[..., 0] > 0).all() and (pts[..., 0] < 640).all() and (pts[..., 1] < 480).all()
    # a still head: landmarks move < 8 px between any frame and the onset
    assert np.abs(pts - pts[0]).max() < 8
    # anatomy: eyes above the nose tip above the mouth
    assert pts[:, 36:48, 1].mean() < pts[:, 30, 1].mean() < pts[:, 48:68, 1].mean()


def test_landmark_fallback_on_neighbouring_frame(raw_clips):
    rec = raw_clips["EP19_05f"]
    a = cv2.imread(str(rec.frame_path(396)), cv2.IMREAD_GRAYSCALE)
    blank = np.full_like(a, 128)  # no face: its landmarks come from the neighbour's face box
    pts, src = landmarks_on_frames([a, blank])
    assert list(src) == [0, 0] and np.isfinite(pts).all()
    none_pts, none_src = landmarks_on_frames([blank])
    assert list(none_src) == [-1] and np.isnan(none_pts).all()


def test_one_crop_for_all_frames_128(prepared, raw_clips):
    m = prepared.manifest
    assert list(m["clip"]) == ["EP02_01f", "EP19_05f"]
    assert set(prepared.skipped["key"]) == {"casme2/sub01/EP19_06f"}  # in the composite, not on disk
    f = prepared.frames
    assert f.onset.shape == (2, 128, 128) and f.apex.shape == (2, 128, 128) and f.onset.dtype == np.uint8
    assert f.apex_neighbours.shape == (2, 4, 128, 128)
    for i, row in m.iterrows():
        rec = raw_clips[row["clip"]]
        assert row["align_frame"] == rec.onset
        mat = np.array([float(v) for v in row["affine"].split()]).reshape(2, 3)
        al = Alignment(matrix=mat, native=int(row["crop_native"]), angle_deg=row["align_angle_deg"],
                       landmarks=np.zeros((68, 2), np.float32), refined=True)
        # every output frame is the same warp (one matrix per clip) of its raw frame
        for arr, n in [(f.onset[i], rec.onset), (f.apex[i], rec.apex),
                       (f.apex_neighbours[i, 0], rec.apex - 2), (f.apex_neighbours[i, 3], rec.apex + 2)]:
            raw = cv2.imread(str(rec.frame_path(n)), cv2.IMREAD_GRAYSCALE)
            assert np.abs(arr.astype(int) - apply_alignment(raw, al, 128).astype(int)).max() <= 1
        # the crop is a face: eye line level and landmarks of every key frame inside the output
        lm = f.landmarks[i]
        assert np.isfinite(lm).all() and (lm > 0).all() and (lm < 128).all()
        eye_r, eye_l = lm[0, 36:42].mean(0), lm[0, 42:48].mean(0)
        assert abs(eye_r[1] - eye_l[1]) < 1.5 and 30 < eye_l[0] - eye_r[0] < 70
        # the same crop for onset and apex: the face does not jump between them
        assert np.abs(lm[3] - lm[0]).mean() < 2.0


def test_alignment_recovers_known_rotation(raw_clips):
    rec = raw_clips["EP02_01f"]
    img = cv2.imread(str(rec.frame_path(46)), cv2.IMREAD_GRAYSCALE)
    a0 = compute_alignment(img)
    rot = cv2.getRotationMatrix2D((320, 240), 10.0, 1.0)  # rotate the frame 10 degrees
    a1 = compute_alignment(cv2.warpAffine(img, rot, (640, 480)))
    assert a0.refined and a1.refined
    assert abs((a0.angle_deg - a1.angle_deg) - 10.0) < 1.5
    out0, out1 = apply_alignment(img, a0), apply_alignment(cv2.warpAffine(img, rot, (640, 480)), a1)
    # after alignment the two crops show the same face: strongly correlated
    assert np.corrcoef(out0.ravel().astype(float), out1.ravel().astype(float))[0, 1] > 0.8
