"""Landmark regions of interest (HTNet's input design): windows, centres, real landmarks, cache, config."""
import numpy as np
import pytest
import torch

from icegan.commands.loso import FeatureDataConfig, load_feature_set
from icegan.data.features import read_megc2019_table
from icegan.data.roi import ROI_POINTS, face_landmarks_megc2019, roi_centers, roi_patches
from icegan.recognition import hflip_features


def _ramp(n=2, c=3, h=28, w=28):
    return torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w)


def test_roi_patches_known_windows_and_tiling():
    x = _ramp()
    centers = np.array([[[6, 7], [21, 7], [8, 20], [19, 20]],
                        [[3.4, 3.6], [24.6, 3.5], [0, 27], [27, 0]]], dtype=np.float64)
    out = roi_patches(x, centers, patch=7)
    assert out.shape == (2, 3, 14, 14)
    # clip 0: windows start at centre - 3
    torch.testing.assert_close(out[0, :, :7, :7], x[0, :, 4:11, 3:10])
    torch.testing.assert_close(out[0, :, :7, 7:], x[0, :, 4:11, 18:25])
    torch.testing.assert_close(out[0, :, 7:, :7], x[0, :, 17:24, 5:12])
    torch.testing.assert_close(out[0, :, 7:, 7:], x[0, :, 17:24, 16:23])
    # clip 1: rounding (3.4 - 3 -> 0, 3.6 - 3 -> 1) and clamping to the map at every border
    torch.testing.assert_close(out[1, :, :7, :7], x[1, :, 1:8, 0:7])
    torch.testing.assert_close(out[1, :, :7, 7:], x[1, :, 0:7, 21:28])
    torch.testing.assert_close(out[1, :, 7:, :7], x[1, :, 21:28, 0:7])
    torch.testing.assert_close(out[1, :, 7:, 7:], x[1, :, 0:7, 21:28])


def test_roi_patches_commute_with_the_mirror():
    """Mirroring the face and then cutting (left/right regions swapped, centres mirrored) = cutting and
    mirroring the tile: the flip augmentation of the recognizers stays a true mirror on region maps."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 28, 28, generator=g)
    c = torch.randint(0, 28, (5, 4, 2), generator=g).double().numpy()
    mirrored = c[:, [1, 0, 3, 2]].copy()
    mirrored[..., 0] = 27 - mirrored[..., 0]
    torch.testing.assert_close(roi_patches(hflip_features(x), mirrored), hflip_features(roi_patches(x, c)))


def test_roi_patches_errors():
    x = torch.zeros(2, 3, 28, 28)
    with pytest.raises(ValueError, match=r"\(N, 4, 2\)"):
        roi_patches(x, np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="patch"):
        roi_patches(x, np.zeros((2, 4, 2)), patch=29)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        roi_patches(torch.zeros(3, 28, 28), np.zeros((3, 4, 2)))


def test_roi_centers_scale_and_average():
    pts = np.zeros((1, 68, 2), np.float32)
    pts[0, list(ROI_POINTS[0])] = (55.5, 59.5)      # face pixel 55.5 -> (56) * 28/224 - 0.5 = 6.5
    pts[0, list(ROI_POINTS[1])] = (167.5, 67.5)
    pts[0, 48] = (63.5, 163.5)
    pts[0, 54] = (159.5, 163.5)
    pts[0, ROI_POINTS[0][0]] = (55.5 + 11 * 8, 59.5)  # one point of 11 moved 11 map pixels: the mean moves 1
    c = roi_centers(pts, np.array([[224, 224]]), 28)
    np.testing.assert_allclose(c[0], [[7.5, 7.0], [20.5, 8.0], [7.5, 20.0], [19.5, 20.0]])
    with pytest.raises(ValueError, match="68"):
        roi_centers(np.zeros((1, 5, 2)), np.array([[224, 224]]), 28)


@pytest.fixture(scope="module")
def smic_samm_rows(shared_data):
    table = read_megc2019_table(shared_data / "megc2019_htnet", ["smic", "samm"])
    return table.groupby("dataset").head(3).reset_index(drop=True)   # 3 SMIC (face names differ) + 3 SAMM


def test_real_landmarks_and_cache_round_trip(smic_samm_rows, tmp_path, monkeypatch):
    rows = smic_samm_rows
    assert rows["face_path"].map(lambda p: p.endswith("s1_ne_01.jpg")).any()   # SMIC's face names (s1, not s01)
    pts, sizes = face_landmarks_megc2019(rows, cache_dir=tmp_path)
    assert pts.shape == (6, 68, 2) and (sizes == 224).all()
    assert (pts >= -10).all() and (pts <= 234).all()
    c = roi_centers(pts, sizes, 28)
    assert (c[:, 0, 0] < c[:, 1, 0]).all() and (c[:, 2, 0] < c[:, 3, 0]).all()     # image-left is left
    assert (c[:, :2, 1].max(1) < c[:, 2:, 1].min(1)).all()                         # eyes above the lip corners
    assert len(list(tmp_path.glob("landmarks_*.npz"))) == 1
    import icegan.data.landmarks as lm

    def boom(*a, **k):
        raise AssertionError("recomputed instead of read from the cache")
    monkeypatch.setattr(lm, "landmarks_in_box", boom)
    pts2, sizes2 = face_landmarks_megc2019(rows, cache_dir=tmp_path)
    np.testing.assert_array_equal(pts2, pts)
    np.testing.assert_array_equal(sizes2, sizes)


def test_missing_face_names_the_clip(smic_samm_rows, tmp_path):
    rows = smic_samm_rows.copy()
    rows.loc[4, "face_path"] = str(tmp_path / "gone.jpg")
    with pytest.raises(FileNotFoundError, match=f"clip '{rows.loc[4, 'clip']}'.*gone.jpg"):
        face_landmarks_megc2019(rows)
    with pytest.raises(ValueError, match="face_path"):
        face_landmarks_megc2019(rows.drop(columns="face_path"))


def test_roi_option_reaches_the_features(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path))
    root = str(shared_data / "megc2019_htnet")
    whole = load_feature_set(FeatureDataConfig(root=root, datasets=["samm"]))
    roi = load_feature_set(FeatureDataConfig(root=root, datasets=["samm"], roi="landmarks"))
    assert roi.features.shape == (len(whole), 3, 14, 14)
    assert roi.samples.equals(whole.samples)
    pts, sizes = face_landmarks_megc2019(whole.samples, cache_dir=tmp_path / "cache" / "megc2019_roi")
    torch.testing.assert_close(roi.features, roi_patches(whole.features, roi_centers(pts, sizes, 28)))
    assert list((tmp_path / "cache" / "megc2019_roi").glob("landmarks_*.npz"))
    five = load_feature_set(FeatureDataConfig(root=root, datasets=["samm"], roi="landmarks", roi_patch=5))
    assert five.features.shape[-2:] == (10, 10)


def test_roi_config_errors():
    with pytest.raises(ValueError, match="megc2019_htnet"):
        FeatureDataConfig(source="toy", roi="landmarks")
    with pytest.raises(ValueError, match="roi_patch"):
        FeatureDataConfig(roi="landmarks", roi_patch=0)


def test_align_by_eyes_removes_similarity_transforms():
    """Eye centres land on (−1, 0) and (1, 0), a rotated, scaled, shifted copy of a face's landmarks aligns to the
    same points, and bad shapes or coinciding eyes are errors."""
    from icegan.data.roi import align_by_eyes
    rng = np.random.default_rng(0)
    pts = rng.uniform(50, 150, (1, 68, 2))
    a = align_by_eyes(pts)
    np.testing.assert_allclose(a[0, 36:42].mean(0), [-1, 0], atol=1e-12)
    np.testing.assert_allclose(a[0, 42:48].mean(0), [1, 0], atol=1e-12)
    t = 0.4
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    moved = 2.5 * pts @ rot.T + np.array([30.0, -12.0])
    np.testing.assert_allclose(align_by_eyes(moved), a, atol=1e-9)
    with pytest.raises(ValueError, match=r"\(N, 68, 2\)"):
        align_by_eyes(pts[0])
    with pytest.raises(ValueError, match="face 0"):
        align_by_eyes(np.ones((1, 68, 2)))


def test_classical_bench_subject_reference_known_values():
    """bench/classical_loso.py: with k = 0 every subject's rows have mean 0; with k the subject of n rows loses
    n/(n+k) of its mean (hand-computed); rows are never mixed across subjects; bad k or ids are errors."""
    from _bench import load_bench
    bench = load_bench("classical_loso")
    x = np.array([[1.0, 2.0], [3.0, 6.0], [10.0, 0.0]])
    subjects = ["a", "a", "b"]
    full = bench.subtract_subject_mean(x, subjects, 0)
    np.testing.assert_allclose(full, [[-1.0, -2.0], [1.0, 2.0], [0.0, 0.0]])
    shrunk = bench.subtract_subject_mean(x, subjects, 2)      # a: n = 2, half its mean (2, 4); b: n = 1, a third of (10, 0)
    np.testing.assert_allclose(shrunk, [[0.0, 0.0], [2.0, 4.0], [10.0 - 10.0 / 3, 0.0]])
    with pytest.raises(ValueError, match=">= 0"):
        bench.subtract_subject_mean(x, subjects, -1)
    with pytest.raises(ValueError, match="2 subject ids for 3 rows"):
        bench.subtract_subject_mean(x, subjects[:2], 0)
    with pytest.raises(ValueError, match="unknown learner 'xgb'"):
        bench.make_learner("xgb")
    assert all(hasattr(bench.make_learner(n), "fit") for n in bench.LEARNERS)


def test_roi_centers_scale_x_by_width_and_y_by_height():
    """A non-square face (width 200, height 100) on a 28-pixel map: x scales by 28/200, y by 28/100."""
    pts = np.zeros((1, 68, 2))
    pts[0, :] = (99.5, 49.5)                                 # the face's centre: map centre 13.5 on both axes
    pts[0, 48] = (19.5, 9.5)                                 # -> (20 * 0.14 - 0.5, 10 * 0.28 - 0.5)
    c = roi_centers(pts, np.array([[200, 100]]), 28)
    np.testing.assert_allclose(c[0, 0], [13.5, 13.5])
    np.testing.assert_allclose(c[0, 2], [20 * 0.14 - 0.5, 10 * 0.28 - 0.5])


def test_roi_patches_clamp_columns_to_the_width_of_a_non_square_map():
    """On a 10 x 20 (H x W) map a window near the right edge starts at W - patch = 13, near the bottom at
    H - patch = 3."""
    x = _ramp(n=1, c=1, h=10, w=20)
    centers = np.array([[[19, 9], [3, 3], [3, 3], [3, 3]]], dtype=np.float64)
    out = roi_patches(x, centers, patch=7)
    torch.testing.assert_close(out[0, :, :7, :7], x[0, :, 3:10, 13:20])


def test_files_cache_key_changes_with_size_and_modification_time(tmp_path):
    """The landmark cache is keyed by path, size and mtime: rewriting a face with the same size but a new mtime
    gives another key (a changed face is recomputed)."""
    import os
    from icegan.data.roi import files_cache_key
    p = tmp_path / "face.jpg"
    p.write_bytes(b"abcd")
    k0 = files_cache_key([p])
    assert files_cache_key([p]) == k0 and len(k0) == 16
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    k1 = files_cache_key([p])
    assert k1 != k0
    p.write_bytes(b"abcde")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert files_cache_key([p]) not in (k0, k1)


def test_face_landmarks_use_the_whole_image_as_box_and_report_width_height(tmp_path, monkeypatch):
    """Each apex face's landmarks are predicted inside the whole image, box (top 0, right W, bottom H, left 0), and
    its size is reported as (width, height): checked on a 30 x 50 (H x W) face."""
    import pandas as pd
    from PIL import Image
    import icegan.data.landmarks as lm
    p = tmp_path / "face.png"
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(p)
    boxes = []

    def fake(image, box):
        boxes.append((image.shape, box))
        return np.ones((68, 2), np.float32)
    monkeypatch.setattr(lm, "landmarks_in_box", fake)
    pts, sizes = face_landmarks_megc2019(pd.DataFrame({"clip": ["c1"], "face_path": [str(p)]}))
    assert boxes == [((30, 50, 3), (0, 50, 30, 0))]
    assert sizes.tolist() == [[50, 30]] and pts.shape == (1, 68, 2)
