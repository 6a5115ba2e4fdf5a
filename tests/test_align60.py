"""Face alignment and landmarks (:mod:`icegan.data.roi`, :mod:`icegan.data.landmarks`, :mod:`icegan.data.align`,
the manifest of :mod:`icegan.data.prepare`): a 16-bit apex face is read as its 8-bit copy, an image dlib cannot take is
refused by its shape, ``angle_deg``'s sign is the one documented, degenerate landmarks are refused by name, and the
manifest's affine matrix re-warps a frame to the cached pixels exactly."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

ONSET = 46


def _onset_frame(shared_data) -> np.ndarray:
    """(480, 640) uint8 grey onset frame of the raw CASME II clip sub01/EP02_01f."""
    return cv2.imread(str(shared_data / "casme2_raw" / "sub01" / "EP02_01f" / f"img{ONSET}.jpg"), cv2.IMREAD_GRAYSCALE)


# ------------------------------------------------------------------------------------------------ 1: 16-bit faces

def test_a_16_bit_apex_face_gives_the_landmarks_of_its_8_bit_copy(shared_data, tmp_path):
    """A real MEGC2019 apex face saved as a 16-bit PNG (grey × 257, full range) and as an 8-bit PNG: the same 68
    landmarks within 1 px. Before, Pillow's convert("RGB") clipped every 16-bit value to 255: an all-white face whose
    landmarks were garbage (tens of px off), and cached as if right."""
    from icegan.data.roi import face_landmarks_megc2019
    g = cv2.imread(str(shared_data / "megc2019_htnet" / "faces_224" / "sub01_EP02_01f.jpg"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / "face8.png"), g)
    cv2.imwrite(str(tmp_path / "face16.png"), g.astype(np.uint16) * 257)
    samples = pd.DataFrame({"clip": ["a", "b"], "face_path": [str(tmp_path / "face8.png"),
                                                              str(tmp_path / "face16.png")]})
    points, sizes = face_landmarks_megc2019(samples)
    assert sizes.tolist() == [[224, 224], [224, 224]]
    assert np.abs(points[1] - points[0]).max() <= 1.0


def test_the_landmark_cache_key_is_not_the_one_of_the_reader_that_read_16_bit_faces_white(tmp_path, monkeypatch):
    """The cache key of a face file differs from the key the version-2 reader gave it (the reader that read a 16-bit
    face all white), so landmarks cached by that reader are never reused for the same unchanged file."""
    import icegan.data.roi as roi
    face = tmp_path / "face16.png"
    cv2.imwrite(str(face), np.full((64, 64, 3), 30000, np.uint16))
    key = roi.files_cache_key([face])
    monkeypatch.setattr(roi, "FACE_READER_VERSION", 2)
    assert roi.files_cache_key([face]) != key
    monkeypatch.undo()
    assert roi.files_cache_key([face]) == key           # the same file, the same reader: the same key


# ------------------------------------------------------------------------------------------------ 2: image shapes

@pytest.mark.parametrize("shape", [(48, 40, 4), (48, 40, 1), (48, 40, 2)])
def test_an_image_that_is_neither_grey_nor_rgb_is_refused_by_its_shape(shape):
    """RGBA, (H, W, 1) and (H, W, 2) uint8 images passed the ndim check and crashed inside dlib with a RuntimeError
    naming no shape: a ValueError naming the shape now, before dlib is called."""
    from icegan.data.landmarks import detect_faces, landmarks_in_box
    img = np.zeros(shape, np.uint8)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, 3\) image, got shape \(48, 40, %d\)" % shape[2]):
        detect_faces(img)
    with pytest.raises(ValueError, match=r"got shape \(48, 40, %d\)" % shape[2]):
        landmarks_in_box(img, (0, 40, 48, 0))


# ------------------------------------------------------------------------------------------------ 3: angle sign

def test_angle_deg_is_the_correcting_rotation_in_opencvs_sign(shared_data):
    """A frame turned 10° counter-clockwise on screen (cv2.getRotationMatrix2D(+10)) gives an angle_deg 10° lower
    (more negative): angle_deg is the rotation, in OpenCV's sign (positive = counter-clockwise), that levels the eye
    line, i.e. minus the face's counter-clockwise tilt, as the docstring now says (it said the opposite). The
    manifests hold this value, so its sign stays."""
    from icegan.data.align import Alignment, box_matrix, compute_alignment
    g = _onset_frame(shared_data)
    a0 = compute_alignment(g)
    a1 = compute_alignment(cv2.warpAffine(g, cv2.getRotationMatrix2D((320, 240), 10.0, 1.0), (640, 480)))
    assert a1.angle_deg - a0.angle_deg == pytest.approx(-10.0, abs=1.5)
    # synthetic eyes: the image-right eye 10 px higher on screen (a counter-clockwise tilt) -> a negative angle
    pts = np.zeros((68, 2))
    pts[:, 0], pts[:, 1] = np.linspace(100, 200, 68), 150.0
    pts[36:42] = (120.0, 130.0)
    pts[42:48] = (180.0, 120.0)
    assert box_matrix(pts)[2] == pytest.approx(-np.degrees(np.arctan2(10, 60)))
    doc = " ".join(Alignment.__doc__.split())
    assert "positive: counter-clockwise in the image" not in doc and "getRotationMatrix2D" in doc


# ------------------------------------------------------------------------------------------------ 4: degenerate boxes

def test_box_matrix_names_non_finite_landmarks_and_refuses_a_box_of_a_few_pixels():
    """NaN landmarks were refused with a message blaming their shape ("got shape (68, 2)"); 68 points at one spot
    gave a silent 16 px crop of nothing. Now: "non-finite values", and a box under a few pixels is refused."""
    from icegan.data.align import box_matrix, compute_alignment
    nan = np.full((68, 2), 100.0)
    nan[5, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite values") as e:
        box_matrix(nan)
    assert "1 of the 136" in str(e.value)
    with pytest.raises(ValueError, match=r"expected \(68, 2\) landmarks, got shape \(5, 2\)"):
        box_matrix(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"landmark box is 0\.0 × 0\.0 px"):
        compute_alignment(np.zeros((480, 640), np.uint8), landmarks=np.full((68, 2), 100.0), refine=False)
    line = np.full((68, 2), 100.0)
    line[:, 0] = np.linspace(100, 180, 68)                  # 80 px wide, 0 px high: no face either
    with pytest.raises(ValueError, match=r"landmark box is 80\.0 × 0\.0 px"):
        box_matrix(line)
    face = line.copy()
    face[:, 1] = 100 + 10 * (np.arange(68) % 2)              # 80 × 10 px, eyes level: small but kept
    m, native, _ = box_matrix(face)
    assert native >= 16 and np.isfinite(m).all()


# ------------------------------------------------------------------------------------------------ 5: manifest affine

def test_the_manifests_affine_rewarps_the_cached_frames_exactly(shared_data, tmp_path):
    """The affine written for the manifest parses back to the matrix used, bit for bit, so warping the raw onset
    frame with it gives the cached onset image exactly. Before, "{v:.6g}" rounded it: off by a grey level."""
    from icegan.data import prepare as prep
    from icegan.data.align import Alignment, apply_alignment
    csv = tmp_path / "clips.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nsub01,EP02_01f,"
                   f"{shared_data / 'casme2_raw' / 'sub01' / 'EP02_01f'},{ONSET},59,86\n")
    rec = prep.dataset_records(prep.DatasetSpec(name="clips", root=str(csv), mode="raw"))[0]
    out = prep.process_clip(rec, "raw", prep._settings(prep.PrepareConfig(size=128)))
    assert "error" not in out, out
    m = np.array([float(v) for v in out["affine"].split()]).reshape(2, 3)
    al = Alignment(matrix=m, native=int(out["crop_native"]), angle_deg=out["align_angle_deg"],
                   landmarks=np.zeros((68, 2), np.float32), refined=True)
    assert np.array_equal(apply_alignment(_onset_frame(shared_data), al, 128), out["onset_img"])


# ------------------------------------------------------------------------------------------------ 6: synthetic faces

def test_a_16_bit_apex_face_is_warped_into_synthetic_clips_as_its_8_bit_copy(tmp_path, monkeypatch):
    """synthetic_au_features reads an apex face as face_landmarks_megc2019 does (roi._read_face): a 16-bit PNG
    (grey × 257) gives make_pair the same face as its 8-bit copy, a grey ramp from 0 to 1. Before, Pillow's
    convert("L") clipped every 16-bit value to 255: an all-white face, and flow features of nothing."""
    import torch

    import flownet.classical
    import flownet.data.synthetic_face as sf
    import icegan.data.roi as roi
    from icegan.data.features import FeatureSet
    from icegan.data.synthetic_features import synthetic_au_features
    g = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))             # 64 × 64, 0 .. 252 left to right
    cv2.imwrite(str(tmp_path / "face8.png"), g)
    cv2.imwrite(str(tmp_path / "face16.png"), g.astype(np.uint16) * 257)
    rows = [{"dataset": "samm", "subject": "samm/006", "clip": f"006_1_{k}", "label": 0,
             "face_path": str(tmp_path / f"face{bits}.png")} for k, bits in enumerate((8, 16))]
    faces = []
    monkeypatch.setattr(roi, "face_landmarks_megc2019",
                        lambda s, cache_dir=None: (np.zeros((2, 68, 2), np.float32), np.full((2, 2), 64)))

    def make_pair(face, lm, rng, **kw):
        faces.append(face)
        return {"img1": face, "img2": face}
    monkeypatch.setattr(sf, "make_pair", make_pair)

    class TVL1:
        def estimate(self, a, b):
            return torch.rand(1, 2, *a.shape[-2:])
    monkeypatch.setattr(flownet.classical, "TVL1Estimator", TVL1)
    synthetic_au_features(FeatureSet(pd.DataFrame(rows), torch.zeros(2, 3, 28, 28)), size=64)
    assert len(faces) == 2 and faces[0].shape == (1, 64, 64)
    assert torch.equal(faces[1], faces[0])
    np.testing.assert_allclose(faces[0][0, 0].numpy(), np.arange(0, 256, 4) / 255, atol=1e-6)
