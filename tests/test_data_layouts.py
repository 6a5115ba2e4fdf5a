"""SAMM and SMIC-HS official layouts on small trees built here with the exact official names
(tiny synthetic images), apex spotting, and alignment geometry."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from icegan.data import prepare as prep
from icegan.data.align import box_matrix
from icegan.data.base import DatasetLayoutError
from icegan.data.check import check_dataset
from icegan.data.records import apex_after_offset_note, duplicate_frame, frame_number, list_frames, ranges_text
from icegan.data.samm import SAMM
from icegan.data.smic import SMIC
from icegan.data.spotting import ellipse_mask, flow_magnitudes, smooth_curve, spot_apex_index

APEX_INDEX = 7  # the synthetic SMIC clips move most at their 8th frame


def _flat(path, value, size=(24, 20)):
    cv2.imwrite(str(path), np.full(size, value, np.uint8))


def _texture(seed, size=80):
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur((rng.random((size, size)) * 255).astype(np.uint8), (0, 0), 2.0)
    return cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)


def _shift(img, dx, dy=0.0):
    return cv2.warpAffine(img, np.float32([[1, 0, dx], [0, 1, dy]]), img.shape[::-1], borderMode=cv2.BORDER_REFLECT)


def _me_frames(seed=0, n=15):
    """n textured frames: a local patch (the 'expression') moves by 3*sin(pi t/(n-1)) px, largest at
    t = 7, while the whole head translates by up to 2 px around t = 3 (head motion, not expression)."""
    base = _texture(seed)
    head = {2: 1.0, 3: 2.0, 4: 1.0}
    frames = []
    for t in range(n):
        img = base.copy()
        s = 3.0 * np.sin(np.pi * t / (n - 1))
        img[30:50, 25:55] = _shift(base, s, 0.5 * s)[30:50, 25:55]
        frames.append(_shift(img, head.get(t, 0.0)))
    return frames


def _moving_clip(folder, first, n=15, seed=0):
    folder.mkdir(parents=True)
    for t, img in enumerate(_me_frames(seed, n)):
        cv2.imwrite(str(folder / f"reg_image{first + t}.bmp"), img)


@pytest.fixture
def smic_tree(tmp_path):
    hs = tmp_path / "SMIC_all_cropped" / "HS"
    _moving_clip(hs / "s1" / "micro" / "negative" / "s1_ne_01", 106114, seed=1)
    _moving_clip(hs / "s1" / "micro" / "positive" / "s1_po_01", 5000, seed=2)
    _moving_clip(hs / "s2" / "micro" / "surprise" / "s2_sur_01", 77, seed=3)
    (hs / "s2" / "micro" / "happy" / "s2_ha_01").mkdir(parents=True)  # not an official class folder
    (hs / "s2" / "non_micro" / "s2_x").mkdir(parents=True)
    (hs / "s3").mkdir()  # subject without micro/
    return tmp_path


def test_frame_numbers_of_official_names():
    assert frame_number("img46.jpg") == 46
    assert frame_number("reg_img46.jpg") == 46
    assert frame_number("006_05562.jpg") == 5562
    assert frame_number("reg_image106114.bmp") == 106114
    assert frame_number("thumbs.jpg") is None


def test_smic_tree(smic_tree):
    ds = SMIC(smic_tree)
    assert ds.root == smic_tree / "SMIC_all_cropped" / "HS"
    recs = ds.records()
    assert [(r.subject, r.clip, r.class3, r.emotion) for r in recs] == [
        ("smic/s1", "s1_ne_01", 0, "negative"), ("smic/s1", "s1_po_01", 1, "positive"),
        ("smic/s2", "s2_sur_01", 2, "surprise")]
    r = recs[0]
    assert (r.onset, r.offset, r.apex, r.apex_method) == (106114, 106128, None, "unspotted")
    assert r.frame_path(106120).name == "reg_image106120.bmp"
    problems = {p["clip"]: p["problem"] for p in ds.layout_problems}
    assert "'happy' is not one of" in problems["smic/s2/micro/happy"]
    assert "no 'micro' folder" in problems["smic/s3"]
    spotted = ds.records(spot_apex=True, subjects=["s1"])
    assert [x.apex for x in spotted] == [106114 + APEX_INDEX, 5000 + APEX_INDEX]
    assert spotted[0].apex_method == "dis-head-compensated-mean-magnitude-smooth5-in-ellipse(no-face-detected)"
    rep = check_dataset("smic", smic_tree)
    assert rep.clips_usable == 3 and rep.by_class_usable == {"negative": 1, "positive": 1, "surprise": 1}
    assert {p["clip"] for p in rep.clips_with_problems} == {"smic/s2/micro/happy", "smic/s3"}
    # a clip of one frame cannot have its apex spotted: the check says so (skip), as icegan prepare then does
    one = smic_tree / "SMIC_all_cropped" / "HS" / "s2" / "micro" / "negative" / "s2_ne_01"
    one.mkdir(parents=True)
    cv2.imwrite(str(one / "reg_image10.bmp"), _texture(4))
    rep = check_dataset("smic", smic_tree)
    assert rep.clips_usable == 3
    assert {"clip": "smic/s2/s2_ne_01", "severity": "skip",
            "problem": "apex spotting needs at least 2 frames from onset to offset, found 1"} in rep.clips_with_problems


def test_spotting_known_apex_and_head_motion():
    base = _texture(5, 64)
    shifts = [0, 0.5, 1.0, 2.5, 1.5, 0.5]
    frames = [_shift(base, x) for x in shifts]
    mask = np.ones((64, 64), bool)
    for method in ("dis", "farneback"):
        raw = flow_magnitudes(frames, mask, method, compensate=False)
        assert raw[0] == 0 and int(np.argmax(raw)) == 3 and raw[3] == pytest.approx(2.5, rel=0.35)
        # a pure head translation is compensated away
        assert flow_magnitudes(frames, mask, method, compensate=True).max() < 0.5
    me = _me_frames(seed=9)
    for method in ("dis", "farneback"):
        idx, name, mags = spot_apex_index(me, method=method)
        assert idx == APEX_INDEX, (method, np.round(mags, 2))
        assert name.startswith(f"{method}-head-compensated")
        # without compensation the head motion at t = 3 would win
        assert int(np.argmax(flow_magnitudes(me, ellipse_mask((80, 80)), method, compensate=False))) in (2, 3, 4)
    assert spot_apex_index(me, method="middle")[:2] == (7, "middle-frame")
    assert list(smooth_curve(np.array([0, 0, 5, 0, 0.0]), 3)) == pytest.approx([0, 5 / 3, 5 / 3, 5 / 3, 0])
    with pytest.raises(ValueError, match="at least 2 frames"):
        spot_apex_index(frames[:1])
    with pytest.raises(ValueError, match="unknown apex spotting method"):
        spot_apex_index(frames, method="tvl1")


def test_prepare_smic_spots_apex_into_manifest(smic_tree, tmp_path, capfd):
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="smic", root=str(smic_tree), mode="cropped")],
                             cache_root=str(tmp_path / "cache"), size=32, workers=2, progress=False)
    p = prep.prepare_dataset(cfg)
    # the worker processes (forked from a server that preloads the face models) print no library warnings
    assert "pkg_resources" not in capfd.readouterr().err
    m = p.manifest
    assert list(m["clip"]) == ["s1_ne_01", "s1_po_01", "s2_sur_01"]
    assert list(m["apex"]) == [106114 + APEX_INDEX, 5000 + APEX_INDEX, 77 + APEX_INDEX]
    assert list(m["onset"]) == [106114, 5000, 77]
    assert all(s.startswith("dis-head-compensated-mean-magnitude") for s in m["apex_method"])
    assert list(m["class3"]) == [0, 1, 2] and p.frames.apex.shape == (3, 32, 32)
    src = cv2.imread(str(smic_tree / "SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/reg_image106121.bmp"),
                     cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(p.frames.apex[0], cv2.resize(src, (32, 32), interpolation=cv2.INTER_AREA))


@pytest.fixture
def samm_tree(tmp_path, shared_data):
    root = tmp_path / "SAMM"
    clip = root / "006" / "006_1_2"  # onset 5562, apex 5588, offset 5632 in the sheet
    clip.mkdir(parents=True)
    for n in range(5562, 5633):
        _flat(clip / f"006_{n:05d}.jpg", n % 200)
    trunc = root / "006" / "006_1_3"  # onset 3912, apex 3948: truncated before the apex
    trunc.mkdir()
    for n in range(3912, 3941):
        _flat(trunc / f"006_{n:05d}.jpg", 50)
    (trunc / "006_03925.jpg").write_bytes(b"not a jpeg")  # unreadable frame
    extra = root / "006" / "006_9_9"  # not in the sheet
    extra.mkdir()
    _flat(extra / "006_00001.jpg", 0)
    return tmp_path, shared_data / "annotations" / "SAMM_Micro_FACS_Codes_v2.xlsx"


def test_padding_mismatches_pair_folders_with_the_sheet_s_subjects():
    """CASME II's sub2 is the sheet's sub02 and SAMM's 7 its 007 (same letters ignoring case, same number); a folder
    with no such missing subject, or a number two missing subjects share, gets no pairing."""
    from icegan.data.check import padding_mismatches
    assert padding_mismatches(["sub2", "Sub7", "sub30", "x1"], ["sub02", "sub07", "sub03"]) == {"sub2": "sub02",
                                                                                                "Sub7": "sub07"}
    assert padding_mismatches(["7", "12"], ["007", "011"]) == {"7": "007"}
    assert padding_mismatches(["s1"], ["s01", "s001"]) == {} and padding_mismatches(["sub02"], ["sub02"]) == {}


def test_samm_tree(samm_tree, monkeypatch):
    root, sheet = samm_tree
    ds = SAMM(root, sheet)
    assert ds.root == root / "SAMM"
    recs = {r.clip: r for r in ds.records(subjects=["006"])}
    r = recs["006_1_2"]
    assert (r.subject, r.onset, r.apex, r.offset, r.class3, r.objective_class) == ("samm/006", 5562, 5588, 5632, 0, 3)
    assert r.frame_numbers == tuple(range(5562, 5633)) and r.frame_path(5588).name == "006_05588.jpg"
    walks = []
    real_disk_clips = SAMM.disk_clips
    monkeypatch.setattr(SAMM, "disk_clips", lambda self: walks.append(1) or real_disk_clips(self))
    (root / "SAMM" / "7" / "007_1_1").mkdir(parents=True)        # subject 007 unpadded: not read, but said
    (root / "SAMM" / ".Trashes").mkdir()
    rep = check_dataset("samm", root, sheet)
    assert rep.clips_usable == 1 and len(walks) == 1               # the clip folders on disk are listed once
    # the usable clips per class of SAMM's five (data.labels=samm_5): 006_1_2 is an Anger clip
    assert rep.by_label_set == {"samm_5": {"anger": 1, "contempt": 0, "happiness": 0, "surprise": 0, "other": 0}}
    assert ("data.labels=samm_5 classes (usable): anger 1, contempt 0, happiness 0, surprise 0, other 0 = 1"
            in rep.text().splitlines()) and rep.as_dict()["by_label_set"] == rep.by_label_set
    assert rep.other_folders == ["7"] and rep.as_dict()["other_folders"] == ["7"]
    assert (f"folders in {root / 'SAMM'} not named as samm subject folders, not read (rename them if they hold "
            f"clips): 7") in rep.text().splitlines()
    # ... and said to be subject 007 of the sheet, which has no folder
    assert rep.padding_mismatches == {"7": "007"} and rep.as_dict()["padding_mismatches"] == {"7": "007"}
    assert (f"folders in {root / 'SAMM'} named as a subject of the sheet that has no folder, but for the zero padding "
            f"or letters of the number: rename 7 to 007") in rep.text().splitlines()
    skipped = {s["clip"]: s["reason"] for s in rep.clips_skipped}
    assert "apex frame 3948 not on disk (frames present: 3912-3940)" in skipped["samm/006/006_1_3"]
    assert "unreadable image(s) for frame(s) 3925" in [p["problem"] for p in rep.clips_with_problems
                                                        if p["clip"] == "samm/006/006_1_3"][-1]
    assert rep.not_in_sheet == ["samm/006/006_9_9"]
    assert len(rep.missing_subjects) == 28 and "samm/006" not in rep.missing_subjects
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="samm", root=str(root), annotations=str(sheet),
                                                        mode="cropped", subjects=["006"])],
                             cache_root=str(root / "cache"), size=16, workers=1, progress=False)
    p = prep.prepare_dataset(cfg)
    assert list(p.manifest["key"]) == ["samm/006/006_1_2"]
    # the right frames were picked: each synthetic frame holds the value frame % 200
    assert abs(int(p.frames.onset[0].mean()) - 5562 % 200) <= 2
    assert abs(int(p.frames.apex[0].mean()) - 5588 % 200) <= 2
    assert [abs(int(x.mean()) - (5588 + d) % 200) <= 2 for x, d in zip(p.frames.apex_neighbours[0], (-2, -1, 1, 2))] == [True] * 4
    assert "samm/006/006_1_3" in set(p.skipped["key"])


def test_layout_errors_are_clear(tmp_path):
    with pytest.raises(DatasetLayoutError) as missing:
        SMIC(tmp_path / "nothing")
    assert str(missing.value).startswith(f"smic root not found: {tmp_path / 'nothing'}. Put or symlink")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no SMIC-HS subject folders"):
        SMIC(tmp_path / "empty")
    assert list_frames(tmp_path / "nothing")[2][0].startswith("clip folder not found")
    # the note of two files for one frame number is read back by duplicate_frame (data check and clip lists act on it)
    from icegan.data.records import duplicate_frame
    (tmp_path / "dup").mkdir()
    for name in ("img50.jpg", "img050.jpg", "img51.jpg"):
        (tmp_path / "dup" / name).write_bytes(b"x")
    numbers, _, notes = list_frames(tmp_path / "dup")
    assert numbers == (50, 51) and [duplicate_frame(n) for n in notes] == [50]
    assert duplicate_frame("file without a frame number in its name: a.jpg") is None
    (tmp_path / "a_file").write_text("x")                     # a path that exists but is no folder: said so
    assert list_frames(tmp_path / "a_file")[2] == [f"clip folder {tmp_path / 'a_file'} is a file, not a folder of frames"]


def test_box_matrix_levels_a_rotated_face():
    # a synthetic 68-point face: eyes at y=40, mouth at y=80, then rotated by 20 degrees
    pts = np.zeros((68, 2))
    pts[:17] = np.c_[np.linspace(20, 100, 17), 60 + 30 * np.sin(np.linspace(0, np.pi, 17))]
    pts[17:36] = [60, 50]
    pts[36:42] = np.c_[np.linspace(35, 50, 6), np.full(6, 40)]
    pts[42:48] = np.c_[np.linspace(70, 85, 6), np.full(6, 40)]
    pts[48:68] = np.c_[np.linspace(45, 75, 20), np.full(20, 80)]
    th = np.radians(20)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    rotated = (pts - 60) @ R.T + 60
    m, native, angle = box_matrix(rotated, margin=0.1)
    assert angle == pytest.approx(20, abs=1e-6)
    q = rotated @ m[:, :2].T + m[:, 2]
    assert np.ptp(q[36:48, 1]) < 1e-6  # eye line level
    side = max(np.ptp(q[:, 0]), np.ptp(q[:, 1]))
    assert native == round(side * 1.2)
    assert q.min() >= 0.1 * side - 1 and q.max() <= native - 0.1 * side + 1
    with pytest.raises(ValueError, match="finite"):
        box_matrix(np.full((68, 2), np.nan))


def test_raw_mode_without_any_face_is_reported(samm_tree):
    root, sheet = samm_tree
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="samm", root=str(root), annotations=str(sheet),
                                                        mode="raw", clips=["006_1_2"])],
                             cache_root=str(root / "cache"), size=16, workers=1, progress=False)
    with pytest.raises(prep.PrepareError, match=r"samm/006/006_1_2: no face detected on the onset frame 5562 "
                                                r"nor on its 14 nearest frames \(whole-clip detection failure\)"):
        prep.prepare_dataset(cfg)


def test_the_readmes_prepare_step_makes_the_cache_train_py_reads(shared_data, tmp_path, monkeypatch, capsys):
    """README, "Using your own data": `icegan prepare --config configs/prepare_casme2.yaml`, then `train.py --config
    configs/casme2.yaml`; the second finds the first's cache (same datasets, size, colour and every other setting in
    the cache key) instead of preparing another. One subject here, to stay small."""
    from icegan.cli import main
    from icegan.config import load_config
    from icegan.pipeline import load_main_config, load_samples
    cache, one = tmp_path / "cache", "datasets.0.subjects=[sub01]"
    assert main(["prepare", "--config", "configs/prepare_casme2.yaml", f"cache_root={cache}", one, "workers=1"]) == 0
    made = [d.name for d in cache.iterdir()]
    assert len(made) == 1 and f"cache: {cache / made[0]}" in capsys.readouterr().out
    monkeypatch.setattr(prep, "process_clip", lambda *a: pytest.fail("train.py prepared the clips again"))
    cfg = load_main_config("configs/casme2.yaml", [f"data.prepare.cache_root={cache}", f"data.prepare.{one}",
                                                   "data.prepare.workers=1", "device=cpu"])
    clips = load_samples(cfg, progress=False)
    assert [d.name for d in cache.iterdir()] == made and clips.onset.shape[1:] == (64, 64)
    standalone = load_config(prep.PrepareConfig, "configs/prepare_casme2.yaml")
    assert prep._settings(standalone) == prep._settings(
        dataclasses.replace(cfg.data.prepare, size=cfg.data.img_size, color="gray"))


def test_folder_names_that_differ_only_in_case_are_found(tmp_path, shared_data):
    """A copy whose folder names differ from the official ones only in case (made on a case-insensitive file system,
    or renamed by hand) is read as the official one: CASME II Sub01/ep02_01f for the sheet's sub01/EP02_01f, SMIC
    S1/Micro/Negative for s1/micro/negative, with the canonical subject and class; data check counts those clips
    and lists no folder as not in the sheet."""
    from icegan.data.casme2 import CASME2
    root = tmp_path / "CASME2_RAW_selected"
    clip = root / "Sub01" / "ep02_01f"                         # sheet: sub01, EP02_01f, onset 46, apex 59
    clip.mkdir(parents=True)
    for n in range(46, 87):
        _flat(clip / f"img{n}.jpg", n)
    ds = CASME2(tmp_path, shared_data / "annotations" / "CASME2-coding-20140508.xlsx")
    recs = {r.clip: r for r in ds.records(subjects=["sub01"])}
    r = recs["EP02_01f"]
    assert r.subject == "casme2/sub01" and r.clip_dir == clip and r.frame_numbers == tuple(range(46, 87))
    rep = check_dataset("casme2", tmp_path, shared_data / "annotations" / "CASME2-coding-20140508.xlsx")
    assert "casme2/sub01" not in rep.missing_subjects and rep.not_in_sheet == []
    assert "casme2/sub01" in rep.subjects
    hs = tmp_path / "smic" / "HS"
    _moving_clip(hs / "S1" / "Micro" / "Negative" / "s1_ne_01", 106114, seed=1)
    recs = SMIC(tmp_path / "smic").records(subjects=["smic/s1"])
    assert [(r.subject, r.clip, r.emotion, r.class3) for r in recs] == [("smic/s1", "s1_ne_01", "negative", 0)]
    assert check_dataset("smic", tmp_path / "smic", read_images=False).clips_usable == 1


def test_prepare_names_filter_typos_and_lists_layout_problems(smic_tree, samm_tree, tmp_path):
    """A subjects or clips filter that names nothing of the dataset is an error naming the filter, the name and real
    ones (it left no clip, 'see the warnings above' with none above); folders the SMIC loader cannot read as clips
    are in the skipped list with their reason; a sheet's note on a clip (here a truncated clip's missing frames) is
    in the manifest's notes."""
    def prepare(spec, **kw):
        return prep.prepare_dataset(prep.PrepareConfig(datasets=[spec], cache_root=str(tmp_path / "cache"), size=16,
                                                       workers=1, progress=False, **kw))
    smic = dict(name="smic", root=str(smic_tree), mode="cropped")
    with pytest.raises(prep.PrepareError, match=r"the subjects filter of dataset 'smic' \(datasets.N.subjects in an "
                                                r"icegan prepare config, data.prepare.datasets.N.subjects in "
                                                r"train.py\): \['sub1'\] not among its subjects \(s1, s2, s3\)"):
        prepare(prep.DatasetSpec(**smic, subjects=["sub1"]))
    with pytest.raises(prep.PrepareError, match=r"the clips filter of dataset 'smic' .*\['s1_ne_1'\] not among its "
                                                r"composite clips of the subjects kept \(e.g. s1_ne_01, s1_po_01\)"):
        prepare(prep.DatasetSpec(**smic, subjects=["S1"], clips=["s1_ne_1"]))
    p = prepare(prep.DatasetSpec(**smic))
    reasons = dict(zip(p.skipped["key"], p.skipped["reason"]))
    assert "'happy' is not one of" in reasons["smic/s2/micro/happy"] and "no 'micro' folder" in reasons["smic/s3"]
    p = prepare(prep.DatasetSpec(**smic, subjects=["s1", "s3"], clips=["S1_NE_01"]))   # case does not matter
    assert list(p.skipped["key"]) == ["smic/s3"]                 # s3 exists (no micro/ folder): its problem, no typo
    p = prepare(prep.DatasetSpec(**smic, subjects=["s1"], clips=["S1_NE_01"]))
    assert list(p.manifest["clip"]) == ["s1_ne_01"] and not len(p.skipped)          # s2's, s3's problems not here
    root, sheet = samm_tree
    (root / "SAMM" / "006" / "006_1_2" / "thumbs.jpg").write_bytes(b"")     # a record note of the frame listing
    p = prepare(prep.DatasetSpec(name="samm", root=str(root), annotations=str(sheet), mode="cropped",
                                 subjects=["006"], clips=["006_1_2"]))
    assert list(p.manifest["key"]) == ["samm/006/006_1_2"]
    assert "file without a frame number in its name: thumbs.jpg" in p.manifest["notes"][0]


def test_smic_disk_clips_and_a_two_frame_clip_spotted(tmp_path):
    """disk_clips gives (subject in lower case without the smic/ prefix, clip); a clip of two frames, the fewest
    spotting needs, gets its apex spotted."""
    hs = tmp_path / "HS"
    _moving_clip(hs / "S1" / "micro" / "negative" / "s1_ne_01", 10, n=2)
    assert SMIC(tmp_path).disk_clips() == [("s1", "s1_ne_01")]
    (rec,) = SMIC(tmp_path).records(spot_apex=True)
    assert rec.apex == 11 and rec.apex_method != "unspotted"         # the onset frame does not move


def test_list_frames_reads_upper_case_extensions_and_keeps_the_first_of_two_files(tmp_path):
    """Frames named img46.JPG or reg_image47.BMP are frames; of two files for one frame number the one kept is the
    one the note names first (the clip list's warning says the first is used)."""
    for name in ("img46.JPG", "reg_image47.BMP", "img50.jpg", "img050.jpg"):
        _flat(tmp_path / name, 100)
    numbers, paths, problems = list_frames(tmp_path)
    assert numbers == (46, 47, 50) and [p.name for p in paths[:2]] == ["img46.JPG", "reg_image47.BMP"]
    (note,) = problems
    other = ({"img50.jpg", "img050.jpg"} - {paths[2].name}).pop()
    assert duplicate_frame(note) == 50 and note == f"two files for frame 50: {paths[2].name} and {other}"


def test_frame_ranges_and_the_apex_after_offset_note():
    """ranges_text sorts and joins runs (a lone frame alone); the apex-after-offset note needs onset <= offset < apex
    (an offset before the onset is another problem, not this note)."""
    assert ranges_text([9, 1, 2, 3, 7, 10]) == "1-3, 7, 9-10" and ranges_text([]) == "none"
    assert apex_after_offset_note(40, 60, 50, "sheet row 3") == ("apex 60 is after offset 50 (sheet row 3): one of the "
                                                                 "two cells is wrong; the apex is used as written")
    assert apex_after_offset_note(50, 45, 40, "sheet row 3") is None        # offset before onset
    assert apex_after_offset_note(40, 50, 50, "sheet row 3") is None        # apex on the offset frame


# -- sheet-driven loaders (CASME II, SAMM): roots, sheets, folder names; data paths and run-folder guards -------------

CASME2_SHEET = "CASME2-coding-20140508.xlsx"
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"


def test_subject_folder_names_of_casme2_and_samm():
    """CASME II subjects are ``sub`` and digits in any case, SAMM subjects exactly three digits; nothing longer."""
    from icegan.data.casme2 import CASME2
    assert all(CASME2.looks_like_subject(n) for n in ("sub01", "Sub01", "SUB26", "sub1"))
    assert not any(CASME2.looks_like_subject(n) for n in ("sub", "sub01_old", "subject01", "01", "xsub01"))
    assert SAMM.looks_like_subject("006") and SAMM.looks_like_subject("037")
    assert not any(SAMM.looks_like_subject(n) for n in ("06", "0061", "006_1_2", "abc", "SAMM"))


def test_sheet_found_two_levels_up_and_a_cropped_release_inside_the_root(tmp_path, shared_data):
    """The sheet is looked for in the root given, its parent and grandparent, and in an ``annotations/`` folder beside
    each (not from the ``Cropped`` folder the root resolves to); an official folder name inside the root is the
    subject root; a stray file named like a subject and files inside a subject folder are neither subjects nor
    clips; a subject folder of another case is found without any layout folder."""
    from icegan.data.casme2 import CASME2
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / CASME2_SHEET).symlink_to(shared_data / "annotations" / CASME2_SHEET)
    given = tmp_path / "a" / "b"
    subj = given / "Cropped" / "sub01"
    (subj / "EP02_01f").mkdir(parents=True)
    (subj / "notes.txt").write_text("x")
    (given / "Cropped" / "sub99").write_text("not a folder")
    ds = CASME2(given)
    assert ds.root == given / "Cropped" and ds.sheet_path == tmp_path / "annotations" / CASME2_SHEET
    assert ds.subject_folders() == ["sub01"] and ds.disk_clips() == [("sub01", "EP02_01f")]
    other = tmp_path / "other"
    (other / "Sub01" / "EP02_01f").mkdir(parents=True)
    (other / "extras").mkdir()                                   # one non-subject folder beside the subjects
    ds = CASME2(other, shared_data / "annotations" / CASME2_SHEET)
    assert ds.root == other and ds.disk_clips() == [("Sub01", "EP02_01f")]


def test_root_and_sheet_errors_name_what_is_missing(tmp_path, shared_data):
    from icegan.data.base import find_sheet, missing_root_message
    from icegan.data.casme2 import CASME2
    with pytest.raises(DatasetLayoutError, match=f"casme2 root not found: {tmp_path / 'none'}"):
        CASME2(tmp_path / "none")
    (tmp_path / "junk" / "misc").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"no casme2 subject folders found \(expected e.g. "
                                                 r"CASME2_RAW_selected/sub01/EP02_01f/img46.jpg\)"):
        CASME2(tmp_path / "junk")
    with pytest.raises(DatasetLayoutError, match=r"no samm subject folders found \(expected e.g. "
                                                 r"SAMM/006/006_1_2/006_05562.jpg\)"):
        SAMM(tmp_path / "junk")
    root = tmp_path / "r"
    (root / "sub01").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=f"annotation sheet not found: {tmp_path / 'no.xlsx'}"):
        CASME2(root, tmp_path / "no.xlsx")
    with pytest.raises(FileNotFoundError) as e:
        find_sheet(None, CASME2_SHEET, root)
    msg = str(e.value)
    assert str(root / CASME2_SHEET) in msg and str(tmp_path / "annotations" / CASME2_SHEET) in msg
    hint = (f"Point at your copy of the official sheet ({CASME2_SHEET}) with the `annotations:` of the dataset's "
            f"entry in the config (on the command line data.prepare.datasets.N.annotations=FILE, N its place from 0)")
    # (icegan prepare and icegan data check word it for themselves: tests/test_hints263.py)
    assert msg.endswith(hint)
    with pytest.raises(FileNotFoundError) as e:
        CASME2(root, tmp_path / "no.xlsx")
    assert str(e.value) == f"annotation sheet not found: {tmp_path / 'no.xlsx'}. {hint}"
    assert missing_root_message("samm", root, "--root").endswith("or give its folder with --root")
    assert "point at it with the `root:` of the samm entry" in missing_root_message("samm", root)
    assert "give its folder" not in missing_root_message("samm", root)


def test_find_dir_takes_a_case_variant_only_when_it_is_the_one():
    from icegan.data.base import find_dir
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "EP02_01F").mkdir()
        assert find_dir(d, "ep02_01f") == d / "EP02_01F"
        (d / "Ep02_01f").mkdir()                                # two case variants: neither is chosen
        assert find_dir(d, "ep02_01f") == d / "ep02_01f"
        assert find_dir(d / "absent", "x") == d / "absent" / "x"


def test_sheet_records_scope_and_subject_filter(tmp_path, shared_data):
    """records(): composite clips by default (145 CASME II, 133 SAMM), every sheet row otherwise (255, 159) with
    class3 None outside the composite; a subject filter takes ``sub01`` or ``casme2/sub01``; clips absent on disk
    still give records (no frames, no extra note), with the annotated apex; iterating gives the composite records;
    casme2_records / samm_records pass the sheet and the scope."""
    from icegan.data.casme2 import CASME2, casme2_records
    from icegan.data.samm import samm_records
    (tmp_path / "sub01").mkdir()
    (tmp_path / "006").mkdir()
    sheet = shared_data / "annotations" / CASME2_SHEET
    ds = CASME2(tmp_path, sheet)
    comp, every = ds.records(), ds.records(composite_only=False)
    assert len(comp) == 145 and len(every) == 255
    assert sum(r.class3 is None for r in every) == 110 and all(r.class3 is not None for r in comp)
    assert [r.key for r in ds] == [r.key for r in comp]
    assert ds.check_scope(True) == "composite clips" and ds.check_scope(False) == "all sheet rows"
    one = ds.records(subjects=["casme2/sub01"])
    assert one and {r.subject for r in one} == {"casme2/sub01"}
    assert [r.key for r in ds.records(subjects=["sub01"])] == [r.key for r in one]
    r = next(r for r in one if r.clip == "EP02_01f")
    assert (r.class3, r.class5, r.apex, r.apex_method, r.frame_numbers) == (1, 0, 59, "annotated", ())
    assert not any("not found" in n for n in r.notes)
    assert len(casme2_records(tmp_path, sheet)) == 145 and len(casme2_records(tmp_path, sheet, False)) == 255
    samm = shared_data / "annotations" / SAMM_SHEET
    assert len(samm_records(tmp_path, samm)) == 133 and len(samm_records(tmp_path, samm, False)) == 159


def test_a_record_notes_what_the_frame_listing_found(tmp_path, shared_data):
    from icegan.data.casme2 import CASME2
    clip = tmp_path / "sub01" / "EP02_01f"
    clip.mkdir(parents=True)
    for n in (46, 59):
        _flat(clip / f"img{n}.jpg", n)
    (clip / "Thumbs.jpg").write_bytes(b"")
    (r,) = [r for r in CASME2(tmp_path, shared_data / "annotations" / CASME2_SHEET).records(subjects=["sub01"])
            if r.clip == "EP02_01f"]
    assert r.frame_numbers == (46, 59) and r.subject_dir == tmp_path / "sub01"
    assert "file without a frame number in its name: Thumbs.jpg" in r.notes


def test_data_roots_follow_the_environment(monkeypatch):
    """shared data: $ICEGAN_SHARED_DATA, else ../shared/data beside the repository; user data: $ICEGAN_DATA, else
    <repo>/data."""
    from icegan import paths
    assert (paths.REPO_ROOT / "icegan" / "paths.py").is_file()
    monkeypatch.delenv("ICEGAN_SHARED_DATA", raising=False)
    monkeypatch.delenv("ICEGAN_DATA", raising=False)
    assert paths.shared_data_root() == paths.REPO_ROOT.parent / "shared" / "data"
    assert paths.default_data_root() == paths.REPO_ROOT / "data"
    monkeypatch.setenv("ICEGAN_SHARED_DATA", "/x/shared")
    monkeypatch.setenv("ICEGAN_DATA", "/y/data")
    assert paths.shared_data_root() == Path("/x/shared") and paths.default_data_root() == Path("/y/data")


def test_run_folder_headers_and_the_files_an_output_may_not_replace(tmp_path):
    """A header is a file (a folder named run.json is none; a merge's merged.json is one); a run resumes in a folder
    holding its own header and predictions; check_output_file refuses a run's own files (predictions.csv,
    config.yaml, ...) and suggests the folder above, but lets a new file be written beside them, or anywhere else."""
    from icegan.paths import check_output_file, run_folder_conflict, run_folder_header
    run = tmp_path / "runs" / "r1"
    (run / "run.json").mkdir(parents=True)
    assert run_folder_header(run) is None and run_folder_header(tmp_path / "none") is None
    (run / "run.json").rmdir()
    (run / "merged.json").write_text("{}")
    assert run_folder_header(run) == run / "merged.json"
    assert "holds a merge of bench/merge_runs.py (merged.json)" in run_folder_conflict(run, "run.json")
    (run / "merged.json").unlink()
    (run / "run.json").write_text("{}")
    (run / "predictions.csv").write_text("x\n")
    assert run_folder_conflict(run, "run.json") is None
    for name in ("predictions.csv", "config.yaml", "metrics.md"):
        with pytest.raises(ValueError, match=rf"--out {run / name} would overwrite a file of the run in {run} \(it "
                                             rf"holds run.json\); write elsewhere, e.g. {tmp_path / 'runs' / name}"):
            check_output_file(run / name)
    assert check_output_file(run / "table.csv") == run / "table.csv"
    assert check_output_file(str(tmp_path / "predictions.csv")) == tmp_path / "predictions.csv"
    with pytest.raises(ValueError, match=rf"--plot {run} is a folder; give the path of a file to write \(e.g. "
                                         rf"{run / 'compare.png'}\)"):
        check_output_file(run, "--plot", "compare.png")


def test_a_samm_root_of_unpadded_subject_folders_names_the_renames(tmp_path, shared_data):
    """A SAMM root whose subject folders lack the zero padding (6/, 7/ for 006/, 007/): the error says to rename them
    (was only 'it holds 6/, 7/')."""
    for name in ("6/006_1_2", "7", "notes"):
        (tmp_path / "SAMM" / name).mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"it holds 6/, 7/, notes/; subject folders are named with a "
                                                 r"zero-padded number: rename 6 to 006, 7 to 007$"):
        SAMM(tmp_path, shared_data / "annotations" / "SAMM_Micro_FACS_Codes_v2.xlsx")
    assert SAMM.padded_subject("006") is None and SAMM.padded_subject("notes") is None
