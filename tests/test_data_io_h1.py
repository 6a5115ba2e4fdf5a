"""Data-layer I/O: caches made by an older face reader are not reused, a tagged flow-dataset frame is named as
turned by its tag, ``icegan data check`` opens each frame once, and the first-image cache's byte accounting."""
import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _exif import banded as _banded, save_tagged as _save


def _key_before_exif_fix(paths):
    """files_cache_key as it was when the apex faces were read as stored (before d405aa3): path, size, mtime."""
    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def test_a_landmark_cache_made_from_the_face_read_as_stored_is_not_reused(tmp_path, monkeypatch):
    """A face tagged 6 (stored 40x20, shown 20x40) whose landmarks were cached when faces were read as stored: that
    entry (sizes 40x20) is not returned; the landmarks are found again on the face as shown."""
    import icegan.data.landmarks as landmarks
    from icegan.data.roi import face_landmarks_megc2019
    face = _save(tmp_path / "face.png", _banded(), 6)
    cache = tmp_path / "cache"
    cache.mkdir()
    np.savez(cache / f"landmarks_{_key_before_exif_fix([face])}.npz",
             points=np.full((1, 68, 2), 7, np.float32), sizes=np.array([[40, 20]]))
    seen = []
    monkeypatch.setattr(landmarks, "landmarks_in_box",
                        lambda im, box: seen.append(im.shape) or np.ones((68, 2), np.float32))
    samples = pd.DataFrame({"clip": ["c"], "face_path": [str(face)]})
    pts, sizes = face_landmarks_megc2019(samples, cache_dir=cache)
    assert sizes.tolist() == [[20, 40]] and seen == [(40, 20, 3)] and (pts == 1).all()
    assert len(list(cache.glob("landmarks_*.npz"))) == 2        # the new entry beside the old one
    pts2, sizes2 = face_landmarks_megc2019(samples, cache_dir=cache)     # the new entry is reused
    assert seen == [(40, 20, 3)] and sizes2.tolist() == [[20, 40]] and (pts2 == 1).all()


def test_synthetic_clips_cached_from_the_face_read_as_stored_are_not_reused(tmp_path, monkeypatch):
    """The synthetic AU clips' cache key holds the faces' key: an entry made when the faces were read as stored is
    not returned for a tagged face; the clips are made again (stopped here at the landmarks, their first step)."""
    import json
    from types import SimpleNamespace

    import icegan.data.roi as roi
    from icegan.data.synthetic_features import _settings, synthetic_au_features
    face = _save(tmp_path / "face.png", _banded(), 6)
    cache = tmp_path / "cache"
    cache.mkdir()
    old = hashlib.sha1((_key_before_exif_fix([face]) + json.dumps(_settings(1, 128, (0.5, 1.5), 0.5, 0)))
                       .encode()).hexdigest()[:16]
    np.savez(cache / f"synthetic_{old}.npz", features=np.zeros((1, 3, 28, 28), np.float32))

    class Remade(Exception):
        pass

    def landmarks(samples, cache_dir=None):
        raise Remade
    monkeypatch.setattr(roi, "face_landmarks_megc2019", landmarks)
    fs = SimpleNamespace(samples=pd.DataFrame({"dataset": ["samm"], "subject": ["006"], "clip": ["c"],
                                               "face_path": [str(face)], "label": [0]}))
    with pytest.raises(Remade):
        synthetic_au_features(fs, cache_dir=cache)


def test_a_kitti_frame_turned_by_its_tag_is_named_with_the_tag(tmp_path):
    """KITTI pair whose second frame is stored 16x12 like the ground truth but tagged 6 (read 12x16): the size error
    names that frame, its tag and what the tag does; the untagged first frame is not blamed."""
    import torch

    from flownet.data.kitti import KittiFlow
    from flownet.io import write_kitti_png
    t = tmp_path / "training"
    (t / "image_2").mkdir(parents=True)
    rgb = np.zeros((12, 16, 3), np.uint8)
    f1 = _save(t / "image_2" / "000000_10.png", rgb)
    f2 = _save(t / "image_2" / "000000_11.png", rgb, 6)
    write_kitti_png(t / "flow_occ" / "000000_10.png", torch.zeros(2, 12, 16), torch.ones(12, 16, dtype=torch.bool))
    with pytest.raises(ValueError) as err:
        KittiFlow(tmp_path)[0]
    msg = str(err.value)
    assert msg.startswith("KITTI pair 000000: frames (12, 16) / (16, 12) and flow (12, 16) differ in size")
    assert (f"; {f2} carries the EXIF Orientation tag 6, which turns it a quarter turn clockwise as it is read (width "
            f"and height swapped), unlike the ground-truth flow 000000_10.png: save the frame without the tag") in msg
    assert f"{f1} carries" not in msg


def test_a_middlebury_frame_turned_by_its_tag_is_named_with_the_tag_and_an_untagged_one_without(tmp_path):
    """Middlebury frame10 stored 16x12 like its .flo, tagged 8: the error says the tag turns it; a frame of
    another size without a tag gets the plain size message."""
    import torch

    from flownet.data.middlebury import MiddleburyFlow
    from flownet.io import write_flo
    seq = tmp_path / "Alpha"
    seq.mkdir()
    write_flo(seq / "flow10.flo", torch.zeros(2, 12, 16))
    _save(seq / "frame10.png", np.zeros((12, 16), np.uint8), 8)
    _save(seq / "frame11.png", np.zeros((12, 16), np.uint8))
    with pytest.raises(ValueError) as err:
        MiddleburyFlow(tmp_path)[0]
    assert str(err.value) == (f"{seq}: frame size (16, 12) differs from flow size (12, 16) ({seq / 'flow10.flo'}); "
                              f"{seq / 'frame10.png'} carries the EXIF Orientation tag 8, which turns it a quarter turn "
                              f"anticlockwise as it is read (width and height swapped), unlike the flow: save the "
                              f"frame without the tag")
    _save(seq / "frame10.png", np.zeros((16, 12), np.uint8))
    with pytest.raises(ValueError) as err:
        MiddleburyFlow(tmp_path)[0]
    assert str(err.value) == f"{seq}: frame size (16, 12) differs from flow size (12, 16) ({seq / 'flow10.flo'})"


def test_data_check_opens_each_frame_once_and_sizes_it_as_read(tmp_path, monkeypatch):
    """icegan data check's per-frame probe (_frame_size) opens a PNG or JPEG once (it opened a PNG three times: the
    decode, Pillow's header, a search for an EXIF chunk), with the same answers: the size as read, turned by a
    tag 6; None for a frame cut short."""
    import builtins
    import io

    from flownet.frame_io import oriented_size
    from icegan.data.check import _frame_size
    frames = [_save(tmp_path / f"f{o}.{ext}", _banded(), o) for ext in ("png", "jpg") for o in (None, 6)]
    cut = tmp_path / "cut.png"
    cut.write_bytes(frames[0].read_bytes()[:-20])
    want = [oriented_size(p) for p in frames]
    assert want == [(40, 20), (20, 40), (40, 20), (20, 40)]
    opened = []
    real_open = io.open

    def counting_open(file, *a, **k):
        if str(file).startswith(str(tmp_path)):
            opened.append(str(file))
        return real_open(file, *a, **k)
    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    assert [_frame_size(p) for p in frames] == want and _frame_size(cut) is None
    assert opened == [str(p) for p in frames + [cut]]


def test_first_image_cache_counts_each_entry_s_bytes_and_drops_the_oldest_past_its_limit():
    """Entries of different sizes (float32: 4 bytes an element): the held bytes are the sum over the held entries,
    the oldest go first once the limit is passed, an entry larger than the limit is not kept."""
    import torch

    from flownet.models.srflownet import FirstImageCache
    cache = FirstImageCache(max_bytes=100)

    def put(key, a, b):
        cache._put(key, (torch.zeros(a), torch.zeros(b)))
        return list(cache.entries), cache.nbytes
    assert put("a", 5, 5) == (["a"], 40)
    assert put("b", 10, 5) == (["a", "b"], 100)           # at the limit: kept
    assert put("c", 2, 3) == (["b", "c"], 80)             # 120 bytes: the oldest (a, 40) goes
    assert put("d", 30, 1) == (["b", "c"], 80)            # 124 bytes alone: not kept
    assert put("e", 20, 5) == (["e"], 100)                # b and c go
    fmap, ctx = cache.entries["e"][:2]
    assert fmap.shape == (20,) and ctx.shape == (5,)


def test_flow_eval_names_a_second_frame_turned_by_its_tag(tmp_path):
    """Middlebury compares only frame10 with the flow; a frame11 stored like frame10 but tagged 6 reaches the pair
    check of flownet.evaluate, whose message names its tag (before: only that the frames differ in size)."""
    import torch

    from flownet.evaluate import load_pairs
    from flownet.io import write_flo
    seq = tmp_path / "Alpha"
    seq.mkdir()
    write_flo(seq / "flow10.flo", torch.zeros(2, 12, 16))
    _save(seq / "frame10.png", np.zeros((12, 16), np.uint8))
    _save(seq / "frame11.png", np.zeros((12, 16), np.uint8), 6)
    with pytest.raises(ValueError) as err:
        load_pairs("middlebury", root=tmp_path)
    assert str(err.value) == (f"pair 'Alpha': the frames differ in size: {seq / 'frame10.png'} is 16x12 pixels, "
                              f"{seq / 'frame11.png'} 12x16; a flow pair needs two frames of one size; "
                              f"{seq / 'frame11.png'} carries the EXIF Orientation tag 6, which turns it a quarter "
                              f"turn clockwise as it is read (width and height swapped), unlike the other frame: save "
                              f"the frame without the tag")


def test_oriented_size_of_a_tiff_tagged_6_is_the_size_read_frame_reads(tmp_path):
    """A TIFF stored 40 wide, 20 high, tagged Orientation 6: read_frame (OpenCV) turns it to 20 wide, 40 high;
    oriented_size must say (20, 40), as it does for the same picture as JPEG / PNG."""
    im = Image.fromarray(np.zeros((20, 40), np.uint8))
    ex = im.getexif()
    ex[0x0112] = 6
    p = tmp_path / "f.tif"
    im.save(p, exif=ex)
    from flownet.frame_io import oriented_size, read_frame
    h, w = read_frame(p).shape
    assert (w, h) == (20, 40)
    assert oriented_size(p) == (20, 40)


def test_data_check_and_prepare_agree_on_tiff_frames_turned_by_their_tag(tmp_path):
    """Frames stored 40x20 tagged 6 and an apex stored upright 20x40: all read 20x40 by prepare (OpenCV), so the
    check must report nothing (as for JPEG)."""
    from icegan.data import prepare as prep
    from icegan.data.check import check_dataset
    a = np.zeros((20, 40), np.uint8)
    a[:, :8] = 255
    frames = tmp_path / "take"
    frames.mkdir()
    for n in range(1, 7):
        if n == 4:
            _save(frames / f"img{n}.tif", np.ascontiguousarray(np.rot90(a, -1)))
        else:
            _save(frames / f"img{n}.tif", a, 6)
    csv = tmp_path / "clips.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,take,{frames},2,4,6\n")
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv))],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    p = prep.prepare_dataset(cfg)
    assert len(p.manifest) == 1 and len(p.skipped) == 0
    assert check_dataset("clips", csv, workers=1).clips_with_problems == []
