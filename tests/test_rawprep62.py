"""Raw preprocessing audit 62: a faceless onset and a constant onset or apex crop are warned about on the console
(they were kept with a manifest note, or with none); raw mode on frames that are face crops already is warned about
(56 % of each crop was edge smear, silently); a clip of the sheet missing on disk names the clip folders of its
subject the sheet does not name; export_features' docstring says how far a label moves the maps (float rounding of
the flow batch), and a test holds that tolerance."""
from __future__ import annotations

import logging
import os
import re

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from _clip_records import grey_frames

import icegan.pipeline as pipeline
from icegan.data import prepare as prep
from icegan.data.align import Alignment

SHEET = "annotations/CASME2-coding-20140508.xlsx"


def _linked_clip(src, dst):
    """``dst`` made a folder of links to each frame file of ``src``; returns ``dst``."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        os.symlink(f, dst / f.name)
    return dst


def _prepare(caplog, root, annotations, mode, tmp_path, **spec):
    """prepare_dataset of one CASME II entry (sub01), in one process; the warnings logged, as text."""
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="casme2", root=str(root), annotations=str(annotations),
                                                        mode=mode, subjects=["sub01"], **spec)],
                             cache_root=str(tmp_path / "cache"), workers=1, progress=False)
    with caplog.at_level(logging.WARNING, logger="icegan.data"):
        data = prep.prepare_dataset(cfg)
    return data, "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


# ------------------------------------------------------------------------ 1: faceless onset, constant crops


def test_a_blank_onset_frame_is_warned_naming_the_clip_and_frame(shared_data, tmp_path, caplog):
    """Raw CASME II EP02_01f with its onset frame img46.jpg made uniform grey 128: the clip is aligned on frame 47
    and prepared, but frame 46 is still its onset image (a constant crop): both said on the console, naming the clip
    and the file (was '1 clips prepared' and a manifest note only)."""
    clip = _linked_clip(shared_data / "casme2_raw/sub01/EP02_01f", tmp_path / "raw/sub01/EP02_01f")
    (clip / "img46.jpg").unlink()
    cv2.imwrite(str(clip / "img46.jpg"), np.full((480, 640, 3), 128, np.uint8))
    data, warned = _prepare(caplog, tmp_path / "raw", shared_data / SHEET, "raw", tmp_path, clips=["EP02_01f"])
    assert len(data.manifest) == 1 and data.frames.onset[0].std() == 0
    assert ("casme2/sub01/EP02_01f: no face on onset frame 46 (img46.jpg); aligned on frame 47, but frame 46 is "
            "still the onset image of the flow") in warned
    assert ("casme2/sub01/EP02_01f: the onset crop of frame 46 (img46.jpg) is constant (every pixel 128): a flow "
            "map from it is meaningless") in warned
    notes = data.manifest["notes"][0]
    assert "no face on onset frame 46; aligned on frame 47" in notes and "onset crop of frame 46" in notes


def _textured_clip(tmp_path, black_apex):
    """A clip list of frames 1..10 of smooth noise (40 x 40, onset 2, apex 5), frame 5 all black when asked."""
    d = tmp_path / "c1"
    d.mkdir()
    rng = np.random.default_rng(0)
    for n in range(1, 11):
        img = cv2.resize(rng.integers(0, 256, (10, 10), dtype=np.uint8), (40, 40), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(d / f"img{n}.png"), np.zeros_like(img) if (black_apex and n == 5) else img)
    csv = tmp_path / "c1.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,c1,{d},2,5,10\n")
    return prep.dataset_records(prep.DatasetSpec(name="clips", root=str(csv), mode="cropped"))[0]


@pytest.mark.parametrize("black_apex", [True, False])
def test_an_all_black_apex_is_warned_and_noted(tmp_path, black_apex):
    """An all-black apex frame (cropped mode) was kept with no note at all: now a warning (the list the multi-face
    warning uses, logged by prepare_dataset with the clip's key) and a note name frame 5 and its file. A textured
    apex gives neither."""
    out = prep.process_clip(_textured_clip(tmp_path, black_apex), "cropped", prep._settings(prep.PrepareConfig()))
    assert "error" not in out, out
    flat = ("the apex crop of frame 5 (img5.png) is constant (every pixel 0): a flow map from it is meaningless; "
            "check the frame, or correct the clip's apex in its sheet or clip list")
    assert (flat in out["warnings"] and flat in out["notes"]) == black_apex, out["warnings"]
    assert not [w for w in out["warnings"] if "onset crop" in w]


def test_constant_crops_of_a_grey_clip_are_warned_by_prepare(tmp_path, caplog):
    """The warning reaches the console through prepare_dataset: a clip list of uniform grey frames (onset grey 20,
    apex grey 50)."""
    frames = grey_frames(tmp_path / "g1")
    csv = tmp_path / "g1.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,g1,{frames},2,5,10\n")
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv), mode="cropped")],
                             cache_root=str(tmp_path / "cache"), workers=1, progress=False)
    with caplog.at_level(logging.WARNING, logger="icegan.data"):
        prep.prepare_dataset(cfg)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(m.startswith("clips/me/g1: the onset crop of frame 2 (img2.png) is constant (every pixel 20)")
               for m in warned), warned
    assert any(m.startswith("clips/me/g1: the apex crop of frame 5 (img5.png) is constant (every pixel 50)")
               for m in warned), warned


# ------------------------------------------------------------------------ 2: raw mode on face crops


def test_outside_share_of_hand_made_crops():
    """A 40 px crop of a 40 x 40 frame at the identity: nothing outside; shifted 20 px right (crop x = frame x + 20),
    its left half shows frame x -20..-1: half outside; a 80 px crop centred on the frame: 3/4 outside."""
    from icegan.data.align import outside_share
    def share(tx, ty, native):
        a = Alignment(matrix=np.array([[1.0, 0, tx], [0, 1.0, ty]]), native=native, angle_deg=0.0,
                      landmarks=np.zeros((68, 2), np.float32), refined=True)
        return outside_share(a, (40, 40, 3))
    assert share(0, 0, 40) == 0.0
    assert share(20, 0, 40) == 0.5
    assert share(20, 20, 80) == 0.75


def test_raw_mode_on_face_crops_is_warned_and_real_raw_frames_are_not(shared_data, tmp_path, caplog):
    """CASME II's cropped release (EP02_01f: 231x282 face crops) prepared in mode raw: 57 % of the 387 px crop box
    is outside the frame (filled by BORDER_REPLICATE smear), said in the clip's manifest note with the share, box and
    frame, and on the console once for the dataset entry (not once per clip: ~255 identical lines on the whole
    release) with the count of clips, the range of shares and mode cropped. The raw 640x480 clip of the same name:
    8 % (7.8), no warning."""
    from icegan.data.align import outside_share
    data, warned = _prepare(caplog, shared_data / "casme2", shared_data / SHEET, "raw", tmp_path,
                            clips=["EP02_01f", "EP19_05f"])
    note = dict(zip(data.manifest["clip"], data.manifest["notes"]))["EP02_01f"]
    assert re.search(r"57% of the face crop \(387 px box on frame 46\) lies outside the 231x282 frame and is filled "
                     r"by repeating its edge pixels: the frames look like face crops already.*prepare them in mode "
                     r"cropped.*--clips-mode cropped", note), note
    assert warned.count("of the face crop") == 1, warned
    assert re.search(r"datasets.0 \(casme2, root .*, mode raw\): 2 of 2 clips: \d\d-57% of the face crop lies "
                     r"outside the frame and is filled by repeating its edge pixels \(each clip's box and frame in its "
                     r"manifest notes\): the frames look like face crops already.*prepare them in mode cropped"
                     r".*--clips-mode cropped", warned), warned
    caplog.clear()
    data, warned = _prepare(caplog, shared_data / "casme2_raw", shared_data / SHEET, "raw", tmp_path / "r",
                            clips=["EP02_01f"])
    assert "outside the" not in warned and "outside the" not in data.manifest["notes"][0]
    m = data.manifest.iloc[0]
    a = Alignment(matrix=np.array([float(v) for v in m["affine"].split()]).reshape(2, 3), native=int(m["crop_native"]),
                  angle_deg=0.0, landmarks=np.zeros((68, 2), np.float32), refined=True)
    assert 0.07 <= outside_share(a, (480, 640)) <= 0.12       # 7.8 %
    assert 0.11 < prep.OUTSIDE_WARN < 0.55


# ------------------------------------------------------------------------ 3: clip folders not in the sheet


def test_a_clip_missing_on_disk_names_the_clip_folders_the_sheet_does_not(shared_data, tmp_path, caplog):
    """sub01/EP02_01 on disk (EP02_01f of the sheet, a typo) beside EP19_05f: prepare's warning about EP02_01f
    missing on disk names EP02_01 and the rename (data check listed it; prepare never did). A sheet clip whose
    subject folder holds no such folder gets no hint."""
    src = shared_data / "casme2/sub01"
    _linked_clip(src / "EP02_01f", tmp_path / "c/sub01/EP02_01")
    _linked_clip(src / "EP19_05f", tmp_path / "c/sub01/EP19_05f")
    data, warned = _prepare(caplog, tmp_path / "c", shared_data / SHEET, "cropped", tmp_path)
    assert data.manifest["clip"].tolist() == ["EP19_05f"]
    assert (f"casme2/sub01/EP02_01f skipped: in the sheet but missing on disk (clip folder {tmp_path}/c/sub01/EP02_01f "
            f"not found); clip folders in {tmp_path}/c/sub01 that the sheet does not name: EP02_01 (if one is this "
            f"clip's, rename it EP02_01f)") in warned
    assert "EP02_01f not found)" in data.skipped.set_index("key")["reason"]["casme2/sub01/EP02_01f"]
    caplog.clear()
    (tmp_path / "c/sub01/EP02_01").rename(tmp_path / "c/sub01/EP02_01f")
    _, warned = _prepare(caplog, tmp_path / "c", shared_data / SHEET, "cropped", tmp_path / "again")
    assert "does not name" not in warned


# ------------------------------------------------------------------------ 4: a label and the exported maps


def test_export_features_docstring_says_a_label_moves_maps_at_float_rounding():
    """It said no label changes a map's values; a label decides the flow batch of the clip, and a learned flow's
    output depends on its batch at float rounding."""
    doc = " ".join(pipeline.export_features.__doc__.split())
    assert "No label changes a map's values" not in doc
    assert "a label changes which clips share a flow batch, so a map can differ at float rounding (~1e-5)" in doc


def test_a_label_moves_a_learned_flows_map_by_float_rounding_only(tmp_path, monkeypatch):
    """The shipped SRFlowNet (CPU) on 6 textured 64 px clips, exported with clips 0-2 labelled and 3-5 not, then with
    all six labelled (one flow batch of 6): each map equal to within 1e-4 (float rounding of the batch), not bit for
    bit by contract."""
    from _textures import smooth_texture
    onset = (smooth_texture(6, 64, 64, seed=1)[:, 0] * 255).round().to(torch.uint8).numpy()
    apex = (torch.roll(smooth_texture(6, 64, 64, seed=1), 1, -1)[:, 0] * 255).round().to(torch.uint8).numpy()
    cfg = pipeline.load_main_config(None, ["flow.batch_size=6", "device=cpu"])
    maps = []
    for labels in ([0, 1, 2, -1, -1, -1], [0, 1, 2, 0, 1, 2]):
        samples = pd.DataFrame({"dataset": "casme2", "subject": [f"sub{i}" for i in range(6)],
                                "clip": [f"c{i}" for i in range(6)], "label": labels})
        monkeypatch.setattr(pipeline, "load_samples", lambda *a, s=samples, **k: pipeline.Clips(s, onset, apex))
        out = tmp_path / f"out{labels[-1]}"
        pipeline.export_features(cfg, out, progress=False)
        tab = pd.read_csv(out / "features.csv", keep_default_na=False)
        maps.append(np.stack([np.load(out / p) for p in tab["path"]]))
    assert np.abs(maps[0] - maps[1]).max() <= 1e-4
