"""Frames of the ground-truth flow sets (KITTI, Middlebury) whose EXIF Orientation mirrors or turns them as OpenCV
reads them, against a flow read as stored, are refused by name; untagged and tag-1 frames load as stored."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from _exif import save_tagged

from flownet.data.kitti import KittiFlow
from flownet.data.middlebury import MiddleburyFlow
from flownet.io import write_flo, write_kitti_png

#: a frame whose every pixel differs from its mirrored / turned self
FRAME = (np.arange(12 * 16).reshape(12, 16) % 250).astype(np.uint8)
EFFECTS = {2: "mirrors it left to right", 3: "turns it half a turn", 4: "mirrors it top to bottom"}


def _save(path: Path, orientation=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_tagged(path, FRAME, orientation)


def _middlebury(root: Path, tag10=None, tag11=None) -> Path:
    seq = root / "Alpha"
    _save(seq / "frame10.png", tag10)
    _save(seq / "frame11.png", tag11)
    write_flo(seq / "flow10.flo", torch.zeros(2, 12, 16))
    return seq


def _kitti(root: Path, tag10=None, tag11=None) -> Path:
    t = root / "training"
    _save(t / "image_2" / "000000_10.png", tag10)
    _save(t / "image_2" / "000000_11.png", tag11)
    write_kitti_png(t / "flow_occ" / "000000_10.png", torch.zeros(2, 12, 16), torch.ones(12, 16, dtype=torch.bool))
    return t


@pytest.mark.parametrize("tag", [2, 3, 4])
def test_a_middlebury_frame_mirrored_or_turned_by_its_tag_is_refused_by_name(tmp_path, tag):
    seq = _middlebury(tmp_path, tag11=tag)
    with pytest.raises(ValueError) as err:
        MiddleburyFlow(tmp_path)[0]
    assert str(err.value) == (f"{seq / 'frame11.png'} carries the EXIF Orientation tag {tag}, which {EFFECTS[tag]} "
                              f"as it is read, while the ground-truth flow {seq / 'flow10.flo'} is read as stored: "
                              f"the two would not line up and the EPE would be wrong. Save the frame without the tag "
                              f"(keeping its pixels as stored)")


@pytest.mark.parametrize("tag", [2, 3, 4])
def test_a_kitti_frame_mirrored_or_turned_by_its_tag_is_refused_by_name(tmp_path, tag):
    t = _kitti(tmp_path, tag10=tag)
    with pytest.raises(ValueError) as err:
        KittiFlow(tmp_path)[0]
    msg = str(err.value)
    assert msg.startswith(f"{t / 'image_2' / '000000_10.png'} carries the EXIF Orientation tag {tag}, which "
                          f"{EFFECTS[tag]} as it is read, while the ground-truth flow "
                          f"{t / 'flow_occ' / '000000_10.png'} is read as stored")
    assert msg.endswith("Save the frame without the tag (keeping its pixels as stored)")


def test_a_square_frame_turned_a_quarter_by_its_tag_keeps_its_size_and_is_refused(tmp_path):
    """Tag 6 on a square frame: no size mismatch to catch it, the orientation check does."""
    seq = tmp_path / "Sq"
    sq = FRAME[:12, :12]
    seq.mkdir()
    Image.fromarray(sq).save(seq / "frame10.png")
    im = Image.fromarray(sq)
    ex = im.getexif()
    ex[0x0112] = 6
    im.save(seq / "frame11.png", exif=ex)
    write_flo(seq / "flow10.flo", torch.zeros(2, 12, 12))
    with pytest.raises(ValueError, match=r"frame11.png carries the EXIF Orientation tag 6, which turns it a quarter "
                                         r"turn clockwise as it is read"):
        MiddleburyFlow(tmp_path)[0]


@pytest.mark.parametrize("tag", [None, 1])
def test_untagged_and_tag_1_frames_load_as_stored(tmp_path, tag):
    _middlebury(tmp_path / "m", tag, tag)
    _kitti(tmp_path / "k", tag, tag)
    for item in (MiddleburyFlow(tmp_path / "m")[0], KittiFlow(tmp_path / "k")[0]):
        for key in ("img1", "img2"):
            assert torch.equal(item[key][0], torch.from_numpy(FRAME).float() / 255)


def test_each_frame_file_is_checked_once_over_repeated_reads(tmp_path, monkeypatch):
    """The orientation check opens each frame with Pillow on its first read only, not on every __getitem__."""
    import PIL.Image
    _middlebury(tmp_path)
    ds = MiddleburyFlow(tmp_path)
    opened = []
    real_open = PIL.Image.open

    def counting_open(fp, *a, **k):
        opened.append(Path(fp).name)
        return real_open(fp, *a, **k)

    monkeypatch.setattr(PIL.Image, "open", counting_open)
    for _ in range(3):
        ds[0]
    assert sorted(opened) == ["frame10.png", "frame11.png"]
