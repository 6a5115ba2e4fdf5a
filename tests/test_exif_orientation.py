"""A frame with an EXIF Orientation tag is read the way an image viewer shows it, by every reader of frames and faces:
OpenCV (:func:`flownet.frame_io.read_frame`) turns it by the tag; the Pillow readers must agree with it in size and
pixels, so that ``icegan data check`` and the self-supervised pairs judge the sizes prepare and training read."""
import io
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from flownet.frame_io import read_frame

from _exif import banded as _banded, save_tagged as _save


def test_a_quarter_turn_tag_swaps_the_header_size_as_read_frame_turns_the_picture(tmp_path):
    """Orientation 6 (turn 90 degrees clockwise to view): a stored 40x20 picture whose left band is white reads as 20
    wide, 40 high, white band at the top; oriented_size says 20x40 for JPEG and PNG (eXIf chunk, before or after the
    image data), the stored size for other orientations and untagged files."""
    from flownet.frame_io import oriented_size
    for name, fmt in (("f.jpg", "JPEG"), ("f.png", "PNG")):
        p = _save(tmp_path / name, _banded(), 6, fmt)
        img = read_frame(p)
        assert img.shape == (40, 20)
        assert (img[:7] > 200).all() and (img[9:] < 50).all()             # the left band is now the top band
        assert oriented_size(p) == (20, 40)
        for o, want in ((1, (40, 20)), (3, (40, 20)), (8, (20, 40)), (None, (40, 20))):
            _save(p, _banded(), o, fmt)
            assert oriented_size(p) == want == read_frame(p).shape[::-1], (fmt, o)
    # a PNG whose eXIf chunk comes after its image data (Pillow finds it only on decoding; OpenCV applies it)
    buf = io.BytesIO()
    _save(buf, _banded(), 6, "PNG")
    data = buf.getvalue()
    i = data.index(b"eXIf") - 4
    n = int.from_bytes(data[i:i + 4], "big") + 12
    chunk, rest = data[i:i + n], data[:i] + data[i + n:]
    end = rest.index(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(rest[:end] + chunk + rest[end:])
    assert oriented_size(tmp_path / "late.png") == (20, 40) == read_frame(tmp_path / "late.png").shape[::-1]


def _clip_list(tmp_path, tagged_apex: bool):
    """A clip list of one clip, frames 1-6 (onset 2, apex 4, offset 6), each the banded picture as JPEG.
    tagged_apex: the frames are stored 40x20 without a tag, the apex stored 40x20 tagged 6 (read 20x40: another
    size). Else: the frames are stored 40x20 tagged 6, the apex stored upright 20x40 without a tag (read alike)."""
    frames = tmp_path / "take"
    frames.mkdir()
    for n in range(1, 7):
        if n == 4:
            if tagged_apex:
                _save(frames / f"img{n}.jpg", _banded(), 6)
            else:
                _save(frames / f"img{n}.jpg", np.ascontiguousarray(np.rot90(_banded(), -1)))
        else:
            _save(frames / f"img{n}.jpg", _banded(), None if tagged_apex else 6)
    csv = tmp_path / "clips.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,take,{frames},2,4,6\n")
    return csv


@pytest.mark.parametrize("tagged_apex", [True, False])
def test_data_check_and_prepare_agree_on_a_frame_turned_by_its_tag(tmp_path, tagged_apex):
    """``icegan data check`` read frame sizes from the headers, untouched by the tag, while prepare reads the frames
    turned: an apex tagged 6 among untagged frames passed the check and was then skipped by prepare; untagged
    upright apex among tagged frames was reported as another size, yet prepared. Now both say the same."""
    from icegan.data import prepare as prep
    from icegan.data.check import check_dataset
    csv = _clip_list(tmp_path, tagged_apex)
    problems = check_dataset("clips", csv, workers=1).clips_with_problems
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv))],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    if tagged_apex:
        assert [(q["severity"], q["problem"]) for q in problems] == [(
            "skip", "frame(s) 4 not of the onset frame's size 40×20 (frame 4, img4.jpg: 20×40): the frames of a clip "
                    "must have one size (a frame of another release or crop mixed in?)")]
        with pytest.raises(prep.PrepareError, match=r"clips/me/take: frame 4 \(img4.jpg\) is 20×40, the onset frame 2 "
                                                    r"\(img2.jpg\) 40×20"):
            prep.prepare_dataset(cfg)
    else:
        assert problems == []
        p = prep.prepare_dataset(cfg)
        assert len(p.manifest) == 1 and len(p.skipped) == 0


def _casme2_layout(tmp_path):
    """``<root>/casme2``: clip sub01/A (frames 1-3 stored 40x20, frame 3 tagged 6: read 20x40) and sub01/B (frames
    1-2 stored 40x20 tagged 6, frame 3 stored upright 20x40 untagged: all read 20x40); onset 1, apex 3."""
    c2 = tmp_path / "casme2"
    for clip in ("A", "B"):
        (c2 / "sub01" / clip).mkdir(parents=True)
    for n in (1, 2):
        _save(c2 / "sub01" / "A" / f"img{n}.jpg", _banded())
        _save(c2 / "sub01" / "B" / f"img{n}.jpg", _banded(), 6)
    _save(c2 / "sub01" / "A" / "img3.jpg", _banded(), 6)
    _save(c2 / "sub01" / "B" / "img3.jpg", np.ascontiguousarray(np.rot90(_banded(), -1)))
    (c2 / "manifest.csv").write_text("subject,filename,onset,apex,verified\nsub01,A,1,3,true\nsub01,B,1,3,true\n")
    return tmp_path


def test_selfsup_pairs_judge_frame_sizes_as_they_read_the_frames(tmp_path):
    """RealFramePairs finds frames of another size at construction from the headers, to skip such a clip before a
    long run: it read the stored size, so a clip with a frame turned by its tag passed and stopped training at its
    first pair ('frames of one clip differ in size'), and a clip read all alike was skipped. Now clip A is skipped
    naming the turned frame's size as read, and every pair of clip B is read."""
    from flownet.data.real_pairs import RealFramePairs
    root = _casme2_layout(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = RealFramePairs(root=root, subjects=["sub01"], size=16, flip=False, preload=True)
    assert ds.skipped == ["sub01/A: frame img3.jpg is 20x40 pixels, img1.jpg 40x20: the frames of a clip must have "
                          "one size (a frame of another crop mixed in?); clip skipped"]
    assert any("sub01/A: frame img3.jpg is 20x40" in str(w.message) for w in caught)
    assert {p.parent.name for k in ds.kinds for pq in ds.pairs[k] for p in pq} == {"B"}
    a, b = ds.frames(root / "casme2" / "sub01" / "B" / "img1.jpg", root / "casme2" / "sub01" / "B" / "img3.jpg")
    assert a.shape == b.shape == (16, 16)
    np.testing.assert_allclose(a.astype(int), b.astype(int), atol=3)      # the same upright picture


def test_apex_face_landmarks_are_found_on_the_face_as_shown(tmp_path, monkeypatch):
    """The MEGC2019 apex face is read turned by its tag (as read_frame and an image viewer show it): the landmark
    detector gets that picture and the face size is the shown (width, height)."""
    import pandas as pd

    import icegan.data.landmarks as landmarks
    from icegan.data.roi import face_landmarks_megc2019
    face = _save(tmp_path / "face.png", _banded(), 6)
    seen = []
    monkeypatch.setattr(landmarks, "landmarks_in_box",
                        lambda im, box: seen.append((im, box)) or np.zeros((68, 2), np.float32))
    _, sizes = face_landmarks_megc2019(pd.DataFrame({"clip": ["c"], "face_path": [str(face)]}))
    assert sizes.tolist() == [[20, 40]]
    (im, box), = seen
    assert box == (0, 20, 40, 0) and im.shape == (40, 20, 3)
    np.testing.assert_array_equal(im, read_frame(face, cv2.IMREAD_COLOR)[..., ::-1])
    assert (im[:8] == 255).all() and (im[8:] == 0).all()


def _tag_png(path, orientation):
    """Insert an eXIf chunk with ``orientation`` before the IEND chunk of the PNG at ``path`` (as a tool that copies
    a source photo's metadata would)."""
    buf = io.BytesIO()
    _save(buf, _banded(2, 2), orientation, "PNG")
    src = buf.getvalue()
    i = src.index(b"eXIf") - 4
    chunk = src[i:i + int.from_bytes(src[i:i + 4], "big") + 12]
    data = path.read_bytes()
    end = data.rindex(b"IEND") - 4
    path.write_bytes(data[:end] + chunk + data[end:])


def test_flow_maps_are_read_as_stored_whatever_their_orientation_tag(tmp_path):
    """A flow map's pixels are (u, v) vectors in the stored grid: turning the picture would not turn them. KITTI flow
    PNGs, MEGC2019 flow PNGs and feature-table map images are read as stored, deliberately, though OpenCV's viewer
    read of the same file is turned by the tag."""
    from flownet.io import read_kitti_png, write_kitti_png
    from icegan.data.feature_table import _read_map
    from icegan.data.features import _read_png
    flow = np.stack(np.meshgrid(np.arange(6.0), np.arange(4.0) * 10), -1).astype(np.float32)   # u = x, v = 10 y
    kitti = write_kitti_png(tmp_path / "flow.png", flow)
    _tag_png(kitti, 6)
    assert read_frame(kitti, cv2.IMREAD_COLOR).shape[:2] == (6, 4)                          # the tag is there
    got, valid = read_kitti_png(kitti)
    np.testing.assert_array_equal(got, flow)
    assert valid.all()
    rgb = np.random.default_rng(0).integers(0, 256, (5, 5, 3), dtype=np.uint8)      # u, v, strain maps: square
    Image.fromarray(rgb).save(tmp_path / "map.png")
    _tag_png(tmp_path / "map.png", 6)
    np.testing.assert_array_equal(read_frame(tmp_path / "map.png", cv2.IMREAD_COLOR)[..., ::-1], np.rot90(rgb, -1))
    np.testing.assert_array_equal(_read_png(str(tmp_path / "map.png"), "c", None), rgb)
    np.testing.assert_allclose(_read_map(str(tmp_path / "map.png"), "line 2"), rgb.transpose(2, 0, 1) / 255.0,
                               rtol=1e-6)
