"""Error paths and fallback branches of icegan.data's frame-level code (face alignment and landmarks, landmark
regions of the flow maps, SMIC apex spotting, synthetic AU clips, subject-folder hints) that the rest of the suite
leaves unrun. Frames and faces are made here (random or blank images of a few dozen pixels)."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from _clip_records import clip_record

# --- align, landmarks -------------------------------------------------------------------------------------------


def test_no_alignment_of_a_frame_without_a_face():
    from icegan.data.align import compute_alignment
    assert compute_alignment(np.full((64, 64), 128, np.uint8)) is None


def test_landmark_detection_refuses_other_images_and_an_unknown_detector():
    from icegan.data.landmarks import detect_landmarks
    with pytest.raises(ValueError, match=r"landmark detection needs an \(H, W\) or \(H, W, 3\) image, got shape "
                                         r"\(2, 8, 8, 3\)"):
        detect_landmarks(np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"unknown face detector 'mmod'; expected 'hog' or 'cnn'"):
        detect_landmarks(np.zeros((8, 8), np.uint8), "mmod")


# --- subject folders ----------------------------------------------------------------------------------------------


def test_a_samm_root_of_unpadded_subject_folders_suggests_only_the_renames_that_exist(tmp_path):
    """Folders 6 and 1234: 6 is SAMM's 006 unpadded (a rename is suggested), 1234 has more digits than a SAMM
    subject and no padding makes it one (no rename is suggested for it)."""
    from icegan.data.base import DatasetLayoutError
    from icegan.data.samm import SAMM
    assert SAMM.padded_subject("6") == "006" and SAMM.padded_subject("1234") is None
    for name in ("6", "1234"):
        (tmp_path / name).mkdir()
    with pytest.raises(DatasetLayoutError) as err:
        SAMM.resolve_root(tmp_path)
    msg = str(err.value)
    assert msg.endswith("rename 6 to 006"), msg


# --- landmark regions -------------------------------------------------------------------------------------------


def _feature_set(tmp_path, side=28, faces=2, h=None):
    """A FeatureSet of ``faces`` CASME II clips with random (3, h, side) maps and random 48 px apex faces."""
    from icegan.data.features import FeatureSet
    rng = np.random.default_rng(0)
    paths = []
    for i in range(faces):
        p = tmp_path / f"face{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
        paths.append(str(p))
    samples = pd.DataFrame({"dataset": "casme2", "subject": [f"casme2/sub0{i + 1}" for i in range(faces)],
                            "clip": [f"c{i}" for i in range(faces)], "label": [i % 3 for i in range(faces)],
                            "face_path": paths})
    return FeatureSet(samples, torch.rand(faces, 3, h or side, side))


def test_landmark_regions_need_square_maps(tmp_path):
    from icegan.data.roi import landmark_roi_features
    with pytest.raises(ValueError, match=r"landmark regions need square flow maps, got \(28, 24\)"):
        landmark_roi_features(_feature_set(tmp_path, side=24, h=28))


def test_an_apex_face_that_is_no_image_is_named(tmp_path):
    from icegan.data.roi import face_landmarks_megc2019
    fs = _feature_set(tmp_path)
    (tmp_path / "face1.png").write_bytes(b"no image")
    with pytest.raises(ValueError, match=r"apex face of clip 'c1' cannot be read as an image: .*face1\.png: "):
        face_landmarks_megc2019(fs.samples)


def _tqdm_spy(monkeypatch):
    import tqdm
    seen = []
    real = tqdm.tqdm

    def spy(it, **kw):
        seen.append((kw.get("desc"), kw.get("total")))
        return real(it, **kw)

    monkeypatch.setattr(tqdm, "tqdm", spy)
    return seen


def test_face_landmarks_show_a_progress_bar_over_the_faces(tmp_path, monkeypatch):
    from icegan.data.roi import face_landmarks_megc2019
    seen = _tqdm_spy(monkeypatch)
    fs = _feature_set(tmp_path)
    points, sizes = face_landmarks_megc2019(fs.samples, progress=True)
    assert seen == [("face landmarks", 2)]
    assert points.shape == (2, 68, 2) and sizes.tolist() == [[48, 48], [48, 48]]


def test_synthetic_au_clips_show_a_progress_bar_over_the_clips(tmp_path, monkeypatch):
    from icegan.data.synthetic_features import synthetic_au_features
    fs = _feature_set(tmp_path)
    seen = _tqdm_spy(monkeypatch)
    syn = synthetic_au_features(fs, size=32, progress=True)
    assert seen == [("synthetic AU clips", None)]
    assert len(syn) == 2 and tuple(syn.features.shape) == (2, 3, 28, 28)


# --- spotting, SMIC -----------------------------------------------------------------------------------------------


def test_flow_magnitudes_refuses_an_unknown_method_and_frames_of_another_size():
    from icegan.data.spotting import flow_magnitudes
    frames = [np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)]
    mask = np.ones((16, 16), bool)
    with pytest.raises(ValueError, match=r"unknown flow method 'tvl1'; expected 'farneback' or 'dis'"):
        flow_magnitudes(frames, mask, method="tvl1")
    with pytest.raises(ValueError, match=r"flow_magnitudes: frame 2 has shape \(16, 12\), onset \(16, 16\)"):
        flow_magnitudes(frames + [np.zeros((16, 12), np.uint8)], mask)


def _frames(rec, bad=None):
    rng = np.random.default_rng(0)
    for n, p in zip(rec.frame_numbers, rec.frame_paths):
        cv2.imwrite(str(p), rng.integers(0, 256, (24, 24), dtype=np.uint8))
    if bad is not None:
        rec.frame_paths[rec.frame_numbers.index(bad)].write_bytes(b"junk")
    return rec


def test_apex_spotting_names_the_clip_of_an_unreadable_frame_and_a_clip_of_one_frame(tmp_path):
    from icegan.data.spotting import spot_record_apex
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rec = _frames(clip_record(tmp_path / "a", apex=None, onset=1, offset=5, frames=range(1, 6)), bad=3)
    with pytest.raises(ValueError, match=r"^casme2/s1/c: apex spotting: .*img3\.jpg"):
        spot_record_apex(rec, method="middle")
    one = _frames(clip_record(tmp_path / "b", apex=None, onset=1, offset=1, frames=range(1, 2)))
    with pytest.raises(ValueError, match=r"^casme2/s1/c: apex spotting needs at least 2 frames, found 1$"):
        spot_record_apex(one, method="middle")


def test_smic_records_report_a_clip_whose_apex_cannot_be_spotted(tmp_path):
    """smic_records(spot_apex=True): a clip with an undecodable frame keeps its unspotted record, and the loader's
    layout problems say why; a readable clip gets its apex."""
    from icegan.data.smic import SMIC, smic_records
    rng = np.random.default_rng(0)
    hs = tmp_path / "HS"
    for clip, bad in (("s1_ne_01", 2), ("s1_po_01", None)):
        d = hs / "s1" / "micro" / ("negative" if "ne" in clip else "positive") / clip
        d.mkdir(parents=True)
        for t in range(1, 4):
            cv2.imwrite(str(d / f"reg_image{t}.bmp"), rng.integers(0, 256, (24, 24), dtype=np.uint8))
        if bad:
            (d / f"reg_image{bad}.bmp").write_bytes(b"junk")
    recs = smic_records(tmp_path, spot_apex=False)
    assert [(r.clip, r.apex) for r in recs] == [("s1_ne_01", None), ("s1_po_01", None)]
    ds = SMIC(tmp_path)
    recs = ds.records(spot_apex=True, flow_method="farneback")
    assert recs[0].apex is None and recs[1].apex in (2, 3)
    (problem,) = ds.layout_problems
    assert problem["clip"] == "smic/s1/s1_ne_01" and problem["problem"].startswith("apex spotting failed: ")
    assert "reg_image2.bmp" in problem["problem"]
