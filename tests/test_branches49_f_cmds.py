"""Branches of icegan.commands / icegan.data that no other test takes: `icegan fit` with threads=0 (torch's own
thread count, no limit set), an alignment without the refining second detection, a raw-mode prepare with
landmarks=false (no landmark detection on the key frames) and a kept clip result filed under another clip's name
(not taken for that clip)."""
import pickle

import numpy as np
from _clip_records import constant_clip
from _feature_tables import toy_config


def test_fit_with_threads_0_sets_no_thread_limit(tmp_path, monkeypatch):
    import icegan.environment
    from icegan.commands.predict import fit
    limits = []
    monkeypatch.setattr(icegan.environment, "limit_threads", lambda n: limits.append(n))
    fit(toy_config("model.name=logreg", "threads=0"), tmp_path / "a.pt", progress=False)
    assert limits == [] and (tmp_path / "a.pt").is_file()
    fit(toy_config("model.name=logreg", "threads=1"), tmp_path / "b.pt", progress=False)
    assert limits == [1]


def test_alignment_without_refine_is_the_box_of_the_landmarks_given(monkeypatch):
    from icegan.data import align
    from icegan.data.synthetic_me import identity_landmarks, make_identity
    pts = identity_landmarks(make_identity(1, 96), 96).astype(np.float32)

    def no_detection(*a, **kw):
        raise AssertionError("refine=False detects nothing")
    monkeypatch.setattr(align, "detect_faces", no_detection)
    monkeypatch.setattr(align, "detect_landmarks", no_detection)
    a = align.compute_alignment(np.zeros((96, 96), np.uint8), margin=0.1, refine=False, landmarks=pts)
    m, native, angle = align.box_matrix(pts, 0.1)
    assert a.refined is False and a.native == native and a.angle_deg == angle
    np.testing.assert_array_equal(a.matrix, m)
    np.testing.assert_array_equal(a.landmarks, pts)


def test_raw_prepare_with_landmarks_false_detects_no_key_frame_landmarks(tmp_path, monkeypatch):
    from icegan.data import align, landmarks
    from icegan.data import prepare as prep
    rec = prep.dataset_records(prep.DatasetSpec(name="clips", root=str(constant_clip(tmp_path))))[0]
    face = np.random.default_rng(0).uniform(5, 35, (68, 2)).astype(np.float32)
    monkeypatch.setattr(landmarks, "detect_faces", lambda img, detector="hog", upsample=None: [(0, 40, 40, 0)])
    monkeypatch.setattr(landmarks, "landmarks_in_box", lambda img, box: face)
    identity = align.Alignment(matrix=np.array([[1.0, 0, 0], [0, 1.0, 0]]), native=40, angle_deg=0.0, landmarks=face,
                               refined=True)
    monkeypatch.setattr(align, "compute_alignment", lambda img, detector, margin, refine, landmarks=None: identity)

    def no_landmarks(*a, **kw):
        raise AssertionError("landmarks=false: no key-frame landmarks")
    monkeypatch.setattr(landmarks, "landmarks_on_frames", no_landmarks)
    out = prep.process_clip(rec, "raw", prep._settings(prep.PrepareConfig(size=20, landmarks=False)))
    assert "error" not in out, out
    assert np.isnan(out["landmarks"]).all() and out["landmark_fallbacks"] == 0
    assert "landmarks" not in out["notes"] and (out["onset_img"] == 20).all() and (out["apex_img"] == 50).all()


def test_a_kept_result_of_another_clip_is_not_taken_for_this_one(tmp_path):
    from icegan.data import prepare as prep
    from icegan.data.records import ClipRecord
    a = ClipRecord("clips", "clips/p0", "c0", "", None, 1, 5, 9, frame_paths=(tmp_path / "img1.png",))
    b = ClipRecord("clips", "clips/p1", "c1", "", None, 1, 5, 9, frame_paths=(tmp_path / "img1.png",))
    partial = tmp_path / ".partial-x"
    partial.mkdir()
    prep._keep_partial(partial, {"key": b.key, "record": b, "notes": ""})
    prep._partial_file(partial, b.key).rename(prep._partial_file(partial, a.key))    # b's result under a's name
    assert prep._read_partial(partial, [(a, "cropped"), (b, "cropped")]) == {}
    prep._keep_partial(partial, {"key": b.key, "record": b, "notes": ""})
    assert list(prep._read_partial(partial, [(a, "cropped"), (b, "cropped")])) == [b.key]
    assert pickle.loads(prep._partial_file(partial, a.key).read_bytes())["key"] == b.key
