"""Raw CASME II frames (../shared/data/casme2_raw/sub01, 640x480): landmarks on every frame, one crop
for all frames of a clip, 128x128 output."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from icegan.data import prepare as prep
from icegan.data.align import Alignment, apply_alignment, box_matrix, compute_alignment, to_color
from icegan.data.casme2 import CASME2
from icegan.data import landmarks as lm
from icegan.data import spotting
from icegan.data.landmarks import landmarks_on_frames
from icegan.data.records import ClipRecord


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
        cache_root=str(tmp_path_factory.mktemp("cache")), workers=1, progress=False, landmarks=True)
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


def _level_face(x0=100.0, y0=200.0, width=40.0, height=20.0):
    """68 synthetic points with a level eye line, spanning [x0, x0 + width] x [y0, y0 + height]."""
    pts = np.zeros((68, 2))
    pts[:, 0] = np.linspace(x0, x0 + width, 68)
    pts[:, 1] = y0 + height / 2
    pts[0, 1], pts[1, 1] = y0, y0 + height
    pts[36:48, 1] = y0 + 5                                   # both eyes on one line: angle 0
    return pts


def test_box_matrix_centres_the_landmark_box_in_the_square_crop():
    """A level face's box 40 x 20 px with margin 0.1: a 48 px square crop (40 * 1.2), the box centred in it, its
    widest side spanning 4..44."""
    m, native, angle = box_matrix(_level_face(), margin=0.1)
    assert angle == pytest.approx(0.0, abs=1e-9) and native == 48
    q = _level_face() @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose((q.min(0) + q.max(0)) / 2, [24.0, 24.0], atol=1e-9)
    np.testing.assert_allclose([q[:, 0].min(), q[:, 0].max()], [4.0, 44.0], atol=1e-9)


def test_box_matrix_crop_is_at_least_16_pixels_and_margin_must_be_positive():
    """A tiny face (box 5 px) still gets a 16 px crop (Alignment.native >= 16); a negative margin is refused."""
    m, native, _ = box_matrix(_level_face(width=5.0, height=3.0), margin=0.1)
    assert native == 16
    with pytest.raises(ValueError, match="margin"):
        box_matrix(_level_face(), margin=-0.5)


def test_output_matrix_and_to_output_scale_the_crop_to_the_output_size():
    """Frame pixels map to output pixels by the crop matrix times s = size / native, its translation shifted by
    0.5 (s - 1) (cv2.resize's pixel centres: crop pixel q goes to (q + 0.5) s - 0.5), as points and as a matrix."""
    m, native, angle = box_matrix(_level_face(), margin=0.1)
    al = Alignment(matrix=m, native=native, angle_deg=angle, landmarks=np.zeros((68, 2), np.float32), refined=False)
    np.testing.assert_allclose(al.output_matrix(96)[:, :2], m[:, :2] * 2.0)
    np.testing.assert_allclose(al.output_matrix(96)[:, 2], m[:, 2] * 2.0 + 0.5)
    pts = _level_face()
    out = al.to_output(pts, 96)
    np.testing.assert_allclose(out, pts @ al.output_matrix(96)[:, :2].T + al.output_matrix(96)[:, 2], atol=1e-4)
    np.testing.assert_allclose((out.min(0) + out.max(0)) / 2, [48.5, 48.5], atol=1e-4)


def test_to_color_converts_opencv_bgr_to_rgb_and_grey():
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 0] = 255                                        # pure blue as OpenCV loads it
    rgb = to_color(bgr, "rgb")
    assert rgb.shape == (2, 2, 3) and (rgb[..., 2] == 255).all() and (rgb[..., :2] == 0).all()
    assert (to_color(bgr, "gray") == 29).all()               # 0.114 * 255 (BT.601)
    assert to_color(np.full((2, 2), 7, np.uint8), "rgb").shape == (2, 2, 3)
    with pytest.raises(ValueError, match="colour"):
        to_color(bgr, "hsv")


# ------------------------------------------------------------------------------------------------ apex spotting

def test_ellipse_mask_semi_axes_are_40_percent_of_width_and_45_of_height():
    """Centre row of a 21 x 40 mask: |x - 19.5| <= 16 (0.4 W) holds for x = 4..35; centre column 20 of a 40 x 21 mask:
    |y - 19.5| <= 18 (0.45 H) for y = 2..37 (up to the x offset 0.5 of 8.4, negligible)."""
    m = spotting.ellipse_mask((21, 40))
    assert np.flatnonzero(m[10]).tolist() == list(range(4, 36))
    t = spotting.ellipse_mask((40, 21))
    assert np.flatnonzero(t[:, 10]).tolist() == list(range(2, 38))


def test_flow_magnitudes_subtract_the_median_flow_and_average_inside_the_mask(monkeypatch):
    """Head motion compensation (module docstring): 90 of 100 face pixels move (1, 0) (the head), 10 move (5, 0);
    minus the median (1, 0) the mean remaining magnitude is 10 * 4 / 100 = 0.4 (the mean flow would leave 0.72,
    none 1.4); pixels outside the mask do not count."""
    field = np.zeros((10, 20, 2), np.float32)
    field[..., 0] = 1.0
    field[:1, :10, 0] = 5.0                                  # 10 of the 100 mask pixels
    field[:, 10:] = 50.0                                     # outside the mask
    monkeypatch.setattr(spotting, "_flow", lambda a, b, method: field)
    mask = np.zeros((10, 20), bool)
    mask[:, :10] = True
    frames = [np.zeros((10, 20), np.uint8)] * 3
    np.testing.assert_allclose(spotting.flow_magnitudes(frames, mask), [0.0, 0.4, 0.4], rtol=1e-6)
    np.testing.assert_allclose(spotting.flow_magnitudes(frames, mask, compensate=False), [0.0, 1.4, 1.4], rtol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        spotting.flow_magnitudes(frames, np.zeros((10, 20), bool))


def test_smooth_curve_pads_by_repeating_the_edges():
    """A 5-frame moving average of [0, 0, 0, 0, 5]: the last value averages 0, 0, 5 and the 5 repeated twice (3)."""
    np.testing.assert_allclose(spotting.smooth_curve(np.array([0, 0, 0, 0, 5.0])), [0, 0, 1, 2, 3])


def test_spotted_apex_is_never_the_onset_and_small_faces_fall_back_on_the_ellipse(monkeypatch):
    """The apex is the maximum of the smoothed curve after the onset (a tie with frame 0 goes to frame 1); a face
    hull under 50 pixels is replaced by the ellipse, and the method name says so."""
    frames = [np.zeros((20, 20), np.uint8)] * 7
    seen = []

    def mags(fr, mask, method, compensate=True):
        seen.append(int(mask.sum()))
        return np.array([0, 10, 0, 0, 0, 0, 0.0])
    monkeypatch.setattr(spotting, "flow_magnitudes", mags)
    tiny = np.zeros((20, 20), bool)
    tiny[:5, :5] = True
    monkeypatch.setattr(spotting, "face_hull_mask", lambda gray, detector="hog": tiny)
    idx, name, _ = spotting.spot_apex_index(frames, "dis")
    assert idx == 1 and name.endswith("in-ellipse(no-face-detected)")
    assert seen == [int(spotting.ellipse_mask((20, 20)).sum())]
    big = np.zeros((20, 20), bool)
    big[:10, :10] = True
    monkeypatch.setattr(spotting, "face_hull_mask", lambda gray, detector="hog": big)
    assert spotting.spot_apex_index(frames, "dis")[1].endswith("in-face-hull") and seen[-1] == 100
    assert spotting.spot_apex_index(frames[:4], "middle")[0] == 2


def test_spot_record_apex_returns_the_frame_number_of_the_spotted_index(tmp_path, monkeypatch):
    """Frames 10, 12, .., 18 (every other number): index 3 of the span is frame 16; the method reaches the spotter."""
    paths = []
    for n in range(10, 20, 2):
        paths.append(tmp_path / f"img{n}.png")
        cv2.imwrite(str(paths[-1]), np.full((8, 8), n, np.uint8))
    rec = ClipRecord(dataset="smic", subject="smic/s1", clip="c", emotion="x", class3=0, onset=None, apex=None,
                     offset=None, frame_numbers=tuple(range(10, 20, 2)), frame_paths=tuple(paths))
    calls = []

    def fake(frames, method="dis", detector="hog", **middle_of):        # numbers, onset, offset: "middle" only
        calls.append((len(frames), method))
        return 3, "fake-method", np.zeros(len(frames))
    monkeypatch.setattr(spotting, "spot_apex_index", fake)
    out = spotting.spot_record_apex(rec, method="farneback")
    assert (out.apex, out.apex_method) == (16, "fake-method") and calls == [(5, "farneback")]
    monkeypatch.undo()
    assert spotting.spot_record_apex(rec, method="middle").apex == 14


# ------------------------------------------------------------------------------------------------ landmarks (stubbed)

class _FakeFR:
    """face_recognition stand-in: face_locations answers only at the given upsampling, with the given boxes."""

    def __init__(self, boxes, at=0):
        self.boxes, self.at, self.calls = boxes, at, []

    def face_locations(self, img, number_of_times_to_upsample=0, model="hog"):
        self.calls.append(number_of_times_to_upsample)
        return list(self.boxes) if number_of_times_to_upsample == self.at else []


def test_detect_faces_sorts_largest_first_and_upsamples_until_a_face_is_found(monkeypatch):
    small, large = (10, 30, 30, 10), (0, 60, 50, 5)              # (top, right, bottom, left): 20 x 20 and 50 x 55
    fr = _FakeFR([small, large], at=2)
    monkeypatch.setattr(lm, "face_recognition_modules", lambda: (fr, None))
    assert lm.detect_faces(np.zeros((64, 64), np.uint8)) == [large, small]
    assert fr.calls == [0, 1, 2]
    with pytest.raises(ValueError, match="uint8"):
        lm.detect_faces(np.zeros((64, 64), np.float32))


def test_landmarks_in_box_rounds_the_box_to_a_dlib_rectangle(monkeypatch):
    """The (top, right, bottom, left) box becomes dlib.rectangle(left, top, right, bottom), each rounded."""
    seen = []

    class Api:
        @staticmethod
        def pose_predictor_68_point(img, rect):
            seen.append((rect.left(), rect.top(), rect.right(), rect.bottom()))

            class Shape:
                def parts(self):
                    return [type("P", (), {"x": i, "y": -i})() for i in range(68)]
            return Shape()
    monkeypatch.setattr(lm, "face_recognition_modules", lambda: (None, Api))
    pts = lm.landmarks_in_box(np.zeros((64, 64), np.uint8), (10.6, 50.4, 40.5, 3.7))
    assert seen == [(4, 11, 50, 40)]                             # Python rounds 40.5 to even
    assert pts.shape == (68, 2) and pts[5].tolist() == [5.0, -5.0]


def test_landmark_fallback_ties_go_to_the_earlier_frame(monkeypatch):
    """A frame without a face between two with one takes the earlier neighbour's box (docstring: ties, earlier)."""
    box_a, box_c = (0, 20, 20, 0), (1, 21, 21, 1)
    frames = [np.full((8, 8), v, np.uint8) for v in (1, 2, 3)]
    monkeypatch.setattr(lm, "detect_faces", lambda im, d="hog", u=None: {1: [box_a], 2: [], 3: [box_c]}[int(im[0, 0])])
    used = []
    monkeypatch.setattr(lm, "landmarks_in_box", lambda im, box: used.append(box) or np.zeros((68, 2), np.float32))
    pts, src = lm.landmarks_on_frames(frames)
    assert src.tolist() == [0, 0, 2] and used == [box_a, box_a, box_c]
