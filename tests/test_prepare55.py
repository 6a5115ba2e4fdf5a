"""icegan prepare's speed without changing a byte (:mod:`icegan.data.prepare`): key-frame landmarks off by default,
the alignment frame's face box reused for them, no face models in a pool that never detects, cropped-only jobs in
this process, a cache key of the settings that apply, and ``icegan features`` refusing a used --out before it imports
torch."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
from _clip_records import constant_clip
from _fresh_python import fresh_python_stdout


@pytest.fixture(scope="module")
def raw_clip(shared_data, tmp_path_factory):
    """The raw (640x480) CASME II clip sub01/EP02_01f as a clip list record: onset 46, apex 59."""
    from icegan.data import prepare as prep
    csv = tmp_path_factory.mktemp("raw") / "clips.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nsub01,EP02_01f,"
                   f"{shared_data / 'casme2_raw' / 'sub01' / 'EP02_01f'},46,59,86\n")
    return prep.dataset_records(prep.DatasetSpec(name="clips", root=str(csv), mode="raw"))[0]


def test_raw_prepare_skips_the_key_frame_landmarks_by_default_and_keeps_every_face_array(raw_clip, monkeypatch):
    """landmarks.npy is read by no command: by default (``landmarks: false``) a raw clip runs no key-frame landmark
    detection, its landmark rows are NaN, and its onset, apex, neighbours, alignment and notes are those of
    ``landmarks: true``, bit for bit."""
    from icegan.data import landmarks
    from icegan.data import prepare as prep
    assert prep.PrepareConfig().landmarks is False
    with_lm = prep.process_clip(raw_clip, "raw", prep._settings(prep.PrepareConfig(size=64, landmarks=True)))
    assert "error" not in with_lm and np.isfinite(with_lm["landmarks"]).all()

    def no_landmarks(*a, **k):
        raise AssertionError("landmarks: false detects no key-frame landmarks")
    monkeypatch.setattr(landmarks, "landmarks_on_frames", no_landmarks)
    default = prep.process_clip(raw_clip, "raw", prep._settings(prep.PrepareConfig(size=64)))
    assert "error" not in default and np.isnan(default["landmarks"]).all()
    for k in ("onset_img", "apex_img", "neighbours"):
        assert default[k].tobytes() == with_lm[k].tobytes(), k
    for k in ("affine", "align_frame", "align_angle_deg", "crop_native", "neighbour_frames", "notes"):
        assert default[k] == with_lm[k], k


def test_the_onset_face_is_detected_once_and_the_landmarks_are_those_detected_anew(raw_clip, monkeypatch):
    """``landmarks: true``: the onset frame's face (found for the alignment) is not detected again for the key-frame
    landmarks (every frame once: 6 detections for 6 key frames), and the landmarks are those of a detection on every
    key frame (:func:`icegan.data.landmarks.landmarks_on_frames` with nothing known), mapped by the alignment."""
    import cv2

    from icegan.data import landmarks
    from icegan.data import prepare as prep
    real = landmarks.detect_faces
    seen: list[bytes] = []

    def counted(img, *a, **k):
        seen.append(img.tobytes())
        return real(img, *a, **k)
    monkeypatch.setattr(landmarks, "detect_faces", counted)
    out = prep.process_clip(raw_clip, "raw", prep._settings(prep.PrepareConfig(size=64, landmarks=True)))
    assert "error" not in out and out["align_frame"] == 46
    assert len(seen) == len(set(seen)) == 6, "a frame's face detected twice"
    monkeypatch.setattr(landmarks, "detect_faces", real)
    key = [46, 57, 58, 59, 60, 61]
    frames = [cv2.imread(str(raw_clip.frame_path(n)), cv2.IMREAD_GRAYSCALE) for n in key]
    pts, src = landmarks.landmarks_on_frames(frames)
    mat = np.array([float(v) for v in out["affine"].split()]).reshape(2, 3)
    s = 64 / out["crop_native"]             # crop -> output pixels as cv2.resize maps them (pixel centres)
    want = (np.stack([p @ mat[:, :2].T + mat[:, 2] for p in pts]) + 0.5) * s - 0.5
    assert (src == np.arange(6)).all()
    np.testing.assert_allclose(out["landmarks"], want, atol=0.02)   # the affine is written to 6 digits


def test_a_known_face_box_is_not_detected_again(monkeypatch):
    """landmarks_on_frames(known={0: box}) detects faces on the other frames only, predicts frame 0's landmarks in the
    box given, and a frame without a face borrows the nearest known or found box."""
    from icegan.data import landmarks
    calls = []
    monkeypatch.setattr(landmarks, "detect_faces", lambda im, d="hog", u=None: calls.append(int(im[0, 0])) or
                        ([(1, 9, 9, 1)] if im[0, 0] == 2 else []))
    monkeypatch.setattr(landmarks, "landmarks_in_box", lambda im, box: np.full((68, 2), box[0] + im[0, 0], np.float32))
    frames = [np.full((10, 10), v, np.uint8) for v in (1, 2, 3)]
    pts, src = landmarks.landmarks_on_frames(frames, known={0: (5, 9, 9, 1)})
    assert calls == [2, 3] and list(src) == [0, 1, 1]
    assert [float(p[0, 0]) for p in pts] == [6.0, 3.0, 4.0]


def _cropped_cfg(tmp_path, **kw):
    from icegan.data import prepare as prep
    csv = constant_clip(tmp_path)
    return prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv), mode="cropped")],
                              cache_root=str(tmp_path / "cache"), size=16, progress=False, **kw)


def test_a_resize_only_job_runs_in_this_process_whatever_workers(tmp_path, monkeypatch):
    """Cropped clips with their apex and no sequences are only resized (~10 ms a clip): workers=2 prepares them here,
    not in a pool that takes longer to start; a raw clip, a clip to spot or sequences still go to the pool."""
    from icegan.data import prepare as prep

    def no_pool(workers, jobs):
        raise AssertionError("a pool for clips that are only resized")
    monkeypatch.setattr(prep, "_pool_map", no_pool)
    cfg = _cropped_cfg(tmp_path, workers=2)
    cfg.datasets.append(dataclasses.replace(cfg.datasets[0], root=str(constant_clip(tmp_path, "c2"))))
    p = prep.prepare_dataset(cfg)
    assert len(p) == 2 and (p.frames.onset == 20).all() and (p.frames.apex == 50).all()
    with pytest.raises(AssertionError, match="a pool"):
        prep.prepare_dataset(dataclasses.replace(cfg, sequences=True))
    rec = prep.dataset_records(cfg.datasets[0])[0]
    assert not prep.needs_face_models([(rec, "cropped", {})])
    assert prep.needs_face_models([(rec, "raw", {})])
    assert prep.needs_face_models([(dataclasses.replace(rec, apex=None), "cropped", {})])


@pytest.mark.parametrize("face_models", [False, True])
def test_the_worker_server_loads_the_face_models_only_when_asked(face_models):
    """A pool of :func:`worker_context(False)` (cropped clips with their apex) never loads dlib nor face_recognition
    into its workers; with True (raw clips, apex spotting) they are preloaded. Run in a fresh interpreter: the
    forkserver is one per process."""
    code = ("from concurrent.futures import ProcessPoolExecutor\n"
            "from icegan.data.prepare import worker_context\n"
            "if __name__ == '__main__':\n"
            f"    with ProcessPoolExecutor(1, mp_context=worker_context({face_models})) as ex:\n"
            "        print(ex.submit(eval, \"sorted({'dlib', 'face_recognition'} & set(__import__('sys').modules))\")"
            ".result())\n")
    stdout = fresh_python_stdout(code)
    assert stdout.strip() == ("['dlib', 'face_recognition']" if face_models else "[]")


def test_the_cache_key_holds_the_settings_that_apply_to_the_clips(tmp_path):
    """A cropped clip with its apex is only resized: detector, margin, refine, landmarks and apex_spotting leave its
    key (and its cache folder) alone; each changes a raw clip's key; detector and apex_spotting change the key of a
    cropped clip whose apex is to be spotted. Settings that apply to every clip change every key."""
    from icegan.data import prepare as prep
    rec = prep.dataset_records(prep.DatasetSpec(name="clips", root=str(constant_clip(tmp_path))))[0]
    spot = dataclasses.replace(rec, apex=None)
    s = prep._settings(prep.PrepareConfig())
    raw_only = ({"margin": 0.2}, {"refine": False}, {"landmarks": True})
    spotting = ({"detector": "cnn"}, {"apex_spotting": "middle"})
    for task, changes, same in (((rec, "cropped"), raw_only + spotting, True), ((rec, "raw"), raw_only + spotting[:1],
                                                                               False),
                                ((spot, "cropped"), spotting, False), ((spot, "cropped"), raw_only, True)):
        for change in changes:
            other = prep._settings(prep.PrepareConfig(**change))
            assert (prep.inputs_hash([task], s) == prep.inputs_hash([task], other)) is same, (task[1], change)
    for change in ({"size": 64}, {"color": "rgb"}, {"neighbours": False}, {"sequences": True}):
        other = prep._settings(prep.PrepareConfig(**change))
        for task in ((rec, "cropped"), (rec, "raw"), (spot, "cropped")):
            assert prep.inputs_hash([task], s) != prep.inputs_hash([task], other), change
    assert prep.key_settings(s, [(rec, "cropped")]) == {**{k: s[k] for k in ("pipeline_version", "size", "color",
                                                                             "neighbours", "sequences")},
                                                        "png_version": prep.PNG_VERSION}      # PNG frames


def test_a_cropped_dataset_is_not_prepared_again_for_a_raw_only_setting(tmp_path, caplog):
    """Two prepares of the same cropped clip list, the second with other raw-mode settings: one cache folder, the
    second a cache hit; its settings.json holds the settings that apply, not margin or landmarks."""
    import json
    import logging

    from icegan.data import prepare as prep
    cfg = _cropped_cfg(tmp_path, workers=1)
    first = prep.prepare_dataset(cfg)
    with caplog.at_level(logging.INFO, logger="icegan.data"):
        second = prep.prepare_dataset(dataclasses.replace(cfg, margin=0.3, refine=False, landmarks=True,
                                                          detector="cnn"))
    assert second.cache_dir == first.cache_dir and "cache hit" in caplog.text
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.cache_dir.name]
    saved = json.loads((first.cache_dir / "settings.json").read_text())["settings"]
    assert not {"margin", "refine", "landmarks", "detector", "apex_spotting"} & set(saved)


def test_features_refuses_a_used_out_before_importing_the_pipeline(tmp_path, monkeypatch, capsys):
    """``icegan features --out DIR`` where DIR holds features.csv: refused with export_features' message, without
    importing icegan.pipeline (torch: seconds) nor reading the config."""
    from icegan.cli import main
    (tmp_path / "features.csv").write_text("dataset,subject,clip,label\n")
    monkeypatch.setitem(sys.modules, "icegan.pipeline", None)          # an import of it raises ImportError
    assert main(["features", "--config", str(tmp_path / "no_such.yaml"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"icegan features: error: {tmp_path / 'features.csv'} exists: choose another --out or "
                           f"remove it (its maps are in {tmp_path / 'maps'})")
