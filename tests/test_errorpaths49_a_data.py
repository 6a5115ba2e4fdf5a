"""Error paths 49 (group A, flow data): the input checks and fallbacks of flownet.data.synthetic_face and
flownet.data.real_pairs that no test reached (coverage run at eccacd4), on small hand-made CASME II layouts
(tmp_path; no landmark detection: landmarks come from a landmark cache)."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_flow_selfsup import _casme2

from flownet.data.real_pairs import RealFramePairs

# ------------------------------------------------------------------------------------------------ warping


def test_warp_forward_refuses_shapes_it_cannot_pair():
    from flownet.data.synthetic_face import inverse_flow, warp_forward
    with pytest.raises(ValueError, match=r"^flow must be \(C, H, W\) or \(B, C, H, W\), got \(2, 8\)$"):
        inverse_flow(torch.zeros(2, 8))
    with pytest.raises(ValueError, match=r"^flow must have 2 channels, got \(3, 8, 8\)$"):     # as given, not batched
        inverse_flow(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"^image must be \(C, H, W\) or \(B, C, H, W\), got \(8, 8\)$"):
        warp_forward(torch.zeros(8, 8), torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match=r"^flow \(1, 2, 8, 6\) and image \(1, 1, 8, 8\) differ in H, W$"):
        warp_forward(torch.zeros(1, 8, 8), torch.zeros(2, 8, 6))
    with pytest.raises(ValueError, match=r"^batch sizes differ: image 2, flow 3$"):
        warp_forward(torch.zeros(2, 1, 8, 8), torch.zeros(3, 2, 8, 8))


def test_warp_forward_warps_one_image_by_each_flow_of_a_batch():
    """One image and B flows give B frames, whether the image is (1, C, H, W) or (C, H, W): a (C, H, W) image gave
    the first frame alone (the other B - 1 warps were dropped)."""
    from flownet.data.synthetic_face import warp_forward
    img = torch.arange(64, dtype=torch.float32).reshape(1, 8, 8)
    flows = torch.zeros(3, 2, 8, 8)
    flows[1, 0] = 1.0                       # frame 2 of flow 1: the image moved one pixel right
    flows[2, 1] = -1.0                      # of flow 2: one pixel up
    for image in (img, img[None]):
        out, valid = warp_forward(image, flows, return_valid=True)
        assert out.shape == (3, 1, 8, 8) and valid.shape == (3, 8, 8)
        assert torch.allclose(out[0], img)
        assert torch.allclose(out[1, 0, :, 1:], img[0, :, :-1], atol=1e-4)
        assert torch.allclose(out[2, 0, :-1], img[0, 1:], atol=1e-4)
        assert not bool(valid[1, :, 0].any()) and bool(valid[0].all())
    assert warp_forward(img, flows[:1]).shape == (1, 8, 8)                   # one flow: the image's own shape


# ------------------------------------------------------------------------------------------------ action units

def _landmarks(size: float = 64.0) -> np.ndarray:
    """68 plausible iBUG landmarks in a ``size`` x ``size`` frame: jaw, brows, nose, eyes and mouth at their usual
    places of a frontal face (for the fields, not for a detector)."""
    s = size / 64.0
    jaw = [(8 + 48 * t, 30 + 26 * np.sin(np.pi * t)) for t in np.linspace(0, 1, 17)]
    brows = [(12 + 4 * i, 20) for i in range(5)] + [(36 + 4 * i, 20) for i in range(5)]
    nose = [(32, 24 + 3 * i) for i in range(4)] + [(28 + 2 * i, 38) for i in range(5)]
    eyes = []
    for cx in (20, 44):
        eyes += [(cx - 4, 26), (cx - 2, 25), (cx + 2, 25), (cx + 4, 26), (cx + 2, 27), (cx - 2, 27)]
    mouth = [(32 + 8 * np.cos(a), 46 + 4 * np.sin(a)) for a in np.linspace(np.pi, 3 * np.pi, 12, endpoint=False)]
    inner = [(32 + 5 * np.cos(a), 46 + 2 * np.sin(a)) for a in np.linspace(np.pi, 3 * np.pi, 8, endpoint=False)]
    lm = np.array(jaw + brows + nose + eyes + mouth + inner, np.float32) * s
    assert lm.shape == (68, 2)
    return lm


def test_au_displacement_refuses_a_non_finite_amplitude_and_skips_a_zero_one():
    """A NaN amplitude is named; an amplitude of 0 adds nothing and the action units after it still count (its name
    is still checked)."""
    from flownet.data.synthetic_face import AU_NAMES, au_displacement
    lm = _landmarks()
    first, second = AU_NAMES[0], AU_NAMES[1]
    with pytest.raises(ValueError, match=rf"^amplitude of '{first}' is not finite: nan$"):
        au_displacement(lm, {first: float("nan")}, 64, 64)
    alone = au_displacement(lm, {second: 2.0}, 64, 64)
    assert float(alone.abs().max()) > 0.5
    assert torch.equal(au_displacement(lm, {first: 0.0, second: 2.0}, 64, 64), alone)
    assert float(au_displacement(lm, {first: 0.0}, 64, 64).abs().max()) == 0.0
    with pytest.raises(ValueError, match="unknown action unit 'au99'"):
        au_displacement(lm, {"au99": 0.0}, 64, 64)


# ------------------------------------------------------------------------------------------------ SyntheticFaceFlow

def _five_subjects(root: Path, colour=None) -> Path:
    """Five CASME II subjects of one clip of two 48 x 48 frames each (enough for the 4-subject test split)."""
    return _casme2(root, [(f"sub0{s}", "EP01", [1, 2], 1, 2, "True") for s in range(1, 6)], colour=colour)


def _cache(path: Path, entries: dict) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, **entries)
    return path


@pytest.mark.parametrize("kwargs, error, message", [
    ({"split": "validation"}, ValueError, r"^split must be 'train', 'val' or 'test', got 'validation'$"),
    ({"split": "test", "n_test": 0}, ValueError, r"^split 'test' has no subjects with n_test=0: give n_test >= 1$"),
    ({"n_test": -1}, ValueError, r"^n_test must be >= 0 test subjects, got -1$"),
    ({"frames_per_clip": -2}, ValueError, r"^frames_per_clip must be >= 0, got -2$"),
])
def test_synthetic_face_flow_refuses_bad_arguments(tmp_path, kwargs, error, message):
    from flownet.data.synthetic_face import SyntheticFaceFlow
    root = _five_subjects(tmp_path)
    with pytest.raises(error, match=message):
        SyntheticFaceFlow(root=root, n_pairs=1, **kwargs)


def test_synthetic_face_flow_without_frames_names_the_layout_it_looks_for(tmp_path):
    from flownet.data.synthetic_face import SyntheticFaceFlow
    (tmp_path / "casme2" / "sub01" / "EP01").mkdir(parents=True)
    (tmp_path / "casme2" / "sub01" / "EP01" / "frame1.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=rf"^no CASME II frames \(<subject>/<clip>/img<n>\.jpg or reg_img<n>\.jpg\) under "
                                                rf"{re.escape(str(tmp_path / 'casme2'))}$"):
        SyntheticFaceFlow(root=tmp_path)


def test_synthetic_face_flow_refuses_a_landmark_cache_entry_of_another_shape(tmp_path):
    from flownet.data.synthetic_face import SyntheticFaceFlow
    root = _five_subjects(tmp_path)
    cache = _cache(tmp_path / "lm.npz", {"sub01/EP01/img1.jpg": _landmarks(48),
                                         "sub01/EP01/img2.jpg": np.zeros((5, 2))})
    with pytest.raises(ValueError, match=rf"^landmark_cache {re.escape(str(cache))}: entry sub01/EP01/img2\.jpg has "
                                         r"shape \(5, 2\), expected \(68, 2\)$"):
        SyntheticFaceFlow(root=root, n_pairs=1, landmark_cache=cache)


def test_synthetic_face_flow_keeps_rgb_frames_with_gray_false_and_refuses_an_index_out_of_range(tmp_path):
    """gray=False: items are (3, size, size) RGB (the frame's BGR file turned to RGB, then resized); an index past
    n_pairs is an IndexError naming n_pairs."""
    from flownet.data.synthetic_face import SyntheticFaceFlow
    root = _five_subjects(tmp_path, colour=(200, 90, 20))                     # BGR: blue 200, red 20
    frames = sorted((root / "casme2").glob("*/*/img*.jpg"))
    cache = _cache(tmp_path / "lm.npz", {str(f.relative_to(root / "casme2")): _landmarks(48) for f in frames})
    ds = SyntheticFaceFlow(root=root, split="test", size=24, n_pairs=2, gray=False, landmark_cache=cache)
    img, lm = ds.load_frame(frames[0])
    assert img.shape == (3, 24, 24) and lm.shape == (68, 2)
    assert [round(float(c.mean()) * 255) for c in img] == pytest.approx([20, 90, 200], abs=3)   # R, G, B
    item = ds[1]
    assert item["img1"].shape == item["img2"].shape == (3, 24, 24)
    grey = SyntheticFaceFlow(root=root, split="test", size=24, n_pairs=2, landmark_cache=cache)
    assert grey.load_frame(frames[0])[0].shape == (1, 24, 24)
    with pytest.raises(IndexError, match=r"^pair 2 out of range \(n_pairs=2\)$"):
        ds[2]


def test_extra_faces_name_a_face_the_sheet_lists_but_that_is_missing(tmp_path):
    from flownet.data.synthetic_face import SyntheticFaceFlow
    root = _five_subjects(tmp_path)
    base = root / "megc2019_htnet"
    (base / "faces_224").mkdir(parents=True)
    cv2.imwrite(str(base / "faces_224" / "samm_a.png"), np.full((8, 8), 9, np.uint8))
    sheet = base / "combined_3_class2_for_optical_flow.csv"
    sheet.write_text("dataset,imagename\ncasme2,gone_but_casme.png\nsamm,samm_a.png\nsmic,smic_b.png\n")
    with pytest.raises(FileNotFoundError, match=rf"^{re.escape(str(sheet))} names "
                                                rf"{re.escape(str(base / 'faces_224' / 'smic_b.png'))}, which does "
                                                r"not exist$"):
        SyntheticFaceFlow(root=root, split="train", n_pairs=1, extra_faces=True)


def test_build_landmark_cache_keeps_the_entries_of_an_existing_cache(tmp_path):
    """Landmarks already in the file are kept and not detected again (the frame need not even be readable now), and
    entries of frames not asked for stay."""
    from flownet.data.synthetic_face import build_landmark_cache
    root = tmp_path
    (root / "casme2").mkdir()
    asked, other = _landmarks(48), _landmarks(48) + 1.0
    cache = _cache(tmp_path / "lm.npz", {"sub01/EP01/img1.jpg": asked, "sub02/EP01/img7.jpg": other})
    build_landmark_cache([root / "casme2" / "sub01" / "EP01" / "img1.jpg"], cache, root=root)
    with np.load(cache) as z:
        assert sorted(z.files) == ["sub01/EP01/img1.jpg", "sub02/EP01/img7.jpg"]
        assert np.array_equal(z["sub01/EP01/img1.jpg"], asked) and np.array_equal(z["sub02/EP01/img7.jpg"], other)


# ------------------------------------------------------------------------------------------------ RealFramePairs

def test_real_pairs_refuse_an_unknown_split(tmp_path):
    with pytest.raises(ValueError, match=r"^split must be 'train' or 'test', got 'val'$"):
        RealFramePairs(root=tmp_path, split="val")


def test_real_pairs_name_a_manifest_onset_that_is_not_a_frame_number(tmp_path):
    root = _casme2(tmp_path, [("sub01", "EP01", [10, 11, 12], "ten", 12, "True")])
    where = f"{root / 'casme2' / 'manifest.csv'} row sub01/EP01"
    with pytest.raises(ValueError, match=rf"^{re.escape(where)}: onset 'ten' is not a frame number$"):
        RealFramePairs(root=root, subjects=["sub01"])


def test_real_pairs_name_a_verified_clip_whose_folder_is_missing(tmp_path):
    root = _casme2(tmp_path, [("sub01", "EP01", [10, 11], 10, 11, "True")])
    manifest = root / "casme2" / "manifest.csv"
    manifest.write_text(manifest.read_text() + "sub01,EP09,3,5,True,\n")
    with pytest.raises(FileNotFoundError, match=rf"^{re.escape(str(manifest))} row sub01/EP09 is verified but its "
                                                rf"folder {re.escape(str(root / 'casme2' / 'sub01' / 'EP09'))} does "
                                                r"not exist$"):
        RealFramePairs(root=root, subjects=["sub01"])


@pytest.mark.parametrize("onset", ["", "inf"])
def test_real_pairs_without_an_onset_judge_mixed_sizes_against_the_most_common_one(tmp_path, onset):
    """A clip whose sheet onset is blank or no frame number (consecutive pairs need none) and whose img12.jpg is of
    another size is skipped, the odd frame named against the clip's most common size; another clip still gives its
    pairs. An onset 'inf' stopped the construction with int()'s OverflowError."""
    root = _casme2(tmp_path, [("sub01", "EP01", [10, 11, 12], onset, "", "True"),
                              ("sub01", "EP02", [1, 2], 1, 2, "True")])
    cv2.imwrite(str(root / "casme2" / "sub01" / "EP01" / "img12.jpg"), np.zeros((40, 44, 3), np.uint8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = RealFramePairs(root=root, subjects=["sub01"], kinds=("consecutive",))
    text = " ".join(str(w.message) for w in caught)
    assert "sub01/EP01: frame img12.jpg is 44x40 pixels, img10.jpg 48x48" in text, text
    assert [(a.parent.name, a.name, b.name) for a, b in ds.pairs["consecutive"]] == [("EP02", "img1.jpg", "img2.jpg")]


def test_real_pairs_name_a_frame_removed_after_construction_and_give_pairs_by_kind(tmp_path):
    """pair(kind, j) is the j-th (frame 1, frame 2) of a kind; a frame deleted after the dataset was built (the clips
    are listed once) is an OSError naming it when an item needs it."""
    root = _casme2(tmp_path, [("sub01", "EP01", [10, 11, 12], 10, 12, "True")])
    clip = root / "casme2" / "sub01" / "EP01"
    ds = RealFramePairs(root=root, subjects=["sub01"], kinds=("onset_apex",), flip=False)
    assert ds.pair("onset_apex", 0) == (clip / "img10.jpg", clip / "img12.jpg")
    (clip / "img12.jpg").unlink()
    with pytest.raises(OSError, match=rf"^frame file missing: {re.escape(str(clip / 'img12.jpg'))}$"):
        ds[0]
