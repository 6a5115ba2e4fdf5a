"""Raw-mode preprocessing (:mod:`icegan.data.align`, :mod:`icegan.data.prepare`, ``bench/preprocess_throughput.py``):
the throughput script runs with today's face-model loader, a frame with several faces is said (manifest note and one
warning naming the clip, frame, count and box), output landmarks land where cv2 put the image's pixels (the pixel-centre
convention of ``cv2.resize``), and apply_alignment's docstring names the interpolation it uses."""
from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from _bench import load_bench

ONSET, APEX = 46, 59


def test_preprocess_throughput_loads_the_models_and_times_one_frame(shared_data):
    """The script's worker initializer imported ``_fr`` from icegan.data.landmarks, gone since the one loader
    (face_recognition_modules): every documented run stopped with ImportError / BrokenProcessPool. Its initializer
    and one job of one frame run now; its docstring says it times per-frame detection, not what prepare does."""
    mod = load_bench("preprocess_throughput")
    threads = cv2.getNumThreads()
    try:
        mod._init()
    finally:
        cv2.setNumThreads(threads)
    frame = shared_data / "casme2_raw" / "sub01" / "EP02_01f" / f"img{ONSET}.jpg"
    assert mod._clip_job(([str(frame)], "hog", 128)) == 1
    doc = " ".join(mod.__doc__.split())
    assert "upper bound" in doc and "what `icegan prepare` does" not in doc


def _two_face_clip(shared_data, folder):
    """sub01/EP02_01f frames 46-61 on a 1280x480 canvas: the subject left, and right a still, 1.15x larger copy of
    the onset's face (a poster), as the auditor's mk/make.py made them. Returns the clip list CSV."""
    src = shared_data / "casme2_raw" / "sub01" / "EP02_01f"
    poster = cv2.resize(cv2.imread(str(src / f"img{ONSET}.jpg"))[100:420, 160:480], (368, 368))
    frames = folder / "EP02_01f"
    frames.mkdir(parents=True)
    for n in range(ONSET, 62):
        canvas = np.full((480, 1280, 3), 128, np.uint8)
        canvas[:, :640] = cv2.imread(str(src / f"img{n}.jpg"))
        canvas[56:424, 800:1168] = poster
        cv2.imwrite(str(frames / f"img{n}.jpg"), canvas)
    csv = folder / "clips.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nsub01,EP02_01f,{frames},{ONSET},{APEX},61\n")
    return csv


def test_an_alignment_frame_with_two_faces_is_noted_and_warned_once(shared_data, tmp_path, caplog):
    """The largest face is still the one aligned on (here the poster's, right of x = 640), but no longer silently:
    the manifest's notes and one warning name the clip, the frame, the number of faces and the box used."""
    from icegan.data import prepare as prep
    csv = _two_face_clip(shared_data, tmp_path / "data")
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv), mode="raw")],
                             cache_root=str(tmp_path / "cache"), size=64, workers=1, progress=False)
    with caplog.at_level(logging.WARNING, logger="icegan.data"):
        ds = prep.prepare_dataset(cfg)
    key = ds.manifest["key"][0]
    notes = ds.manifest["notes"][0]
    said = [r.getMessage() for r in caplog.records if "faces detected" in r.getMessage()]
    assert len(said) == 1, said
    assert said[0].startswith(f"{key}: ")
    for text in (notes, said[0]):
        assert f"2 faces detected on frame {ONSET} (img{ONSET}.jpg)" in text
        assert "the largest" in text and "box (top, right, bottom, left)" in text
    box = [int(v) for v in notes.split("box (top, right, bottom, left) (")[1].split(")")[0].split(",")]
    assert box[3] >= 640, f"the poster's box is the larger one: {box}"


def _blob(shape, x, y, sigma=5.0):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return np.round(250 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))).astype(np.uint8)


def _centroid(img):
    w = img.astype(np.float64) / img.sum()
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return np.array([(w * xx).sum(), (w * yy).sum()])


@pytest.mark.parametrize("size", [64, 128, 320])
def test_landmarks_map_to_where_the_output_image_shows_the_point(size):
    """A bright dot at a known frame point: its centroid in apply_alignment's output (area downscale at 64/128, cubic
    upscale at 320 from a 200 px crop) and in a warp by output_matrix is where to_output maps the point, within 0.05
    px. Before, landmarks.npy scaled crop coordinates by size / native without cv2.resize's pixel centres, off by
    0.5 (size / native - 1): -0.34 px at 64, -0.18 at 128, +0.30 at 320."""
    from icegan.data.align import Alignment, apply_alignment
    rot = cv2.getRotationMatrix2D((300.0, 250.0), 8.0, 1.0)
    rot[:, 2] += [100.0 - 300.0, 100.0 - 250.0]       # the rotation centre goes to the crop's (100, 100)
    al = Alignment(matrix=rot, native=200, angle_deg=8.0, landmarks=np.zeros((68, 2), np.float32), refined=False)
    for px, py in [(300.0, 250.0), (262.0, 291.0), (341.5, 217.25)]:
        frame = _blob((480, 640), px, py)
        want = al.to_output(np.array([[px, py]]), size)[0]
        np.testing.assert_allclose(_centroid(apply_alignment(frame, al, size)), want, atol=0.05)
        direct = cv2.warpAffine(frame, al.output_matrix(size), (size, size), flags=cv2.INTER_LINEAR)
        np.testing.assert_allclose(_centroid(direct), want, atol=0.05)
        m = al.output_matrix(size)
        np.testing.assert_allclose(m[:, :2] @ [px, py] + m[:, 2], want, atol=1e-4)


def test_apply_alignment_docstrings_name_the_interpolation_used():
    """Upscaling (size > native) resizes with cubic interpolation, downscaling with area: the docstrings said area
    for both."""
    from icegan.data import align
    frame = _blob((120, 160), 80.0, 60.0, sigma=10.0)
    al = align.Alignment(matrix=np.array([[1.0, 0, -30], [0, 1.0, -10]]), native=100, angle_deg=0.0,
                         landmarks=np.zeros((68, 2), np.float32), refined=False)
    crop = align.warp(frame, al.matrix, al.native)
    assert np.array_equal(align.apply_alignment(frame, al, 160), cv2.resize(crop, (160, 160),
                                                                            interpolation=cv2.INTER_CUBIC))
    assert np.array_equal(align.apply_alignment(frame, al, 64), cv2.resize(crop, (64, 64),
                                                                           interpolation=cv2.INTER_AREA))
    for doc in (align.apply_alignment.__doc__, align.__doc__):
        flat = " ".join(doc.lower().split())
        assert "cubic" in flat and "area" in flat, flat
