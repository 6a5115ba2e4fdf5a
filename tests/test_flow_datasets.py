"""KITTI and Middlebury loaders on small hand-made layouts: which folders win, which frames are the pair, and
the errors that name the missing or mismatched file (mutation audit)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from flownet.data.kitti import KittiFlow
from flownet.data.middlebury import MiddleburyFlow
from flownet.io import write_flo, write_kitti_png


def _png(path: Path, value: int, shape=(12, 16), colour=False) -> None:
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full(shape + ((3,) if colour else ()), value, np.uint8)
    if colour:
        img[..., 0] = 0            # BGR: no blue, so the colour frame is not grey
    cv2.imwrite(str(path), img)


def _flow(h=12, w=16, u=1.5, v=-0.25):
    return torch.stack([torch.full((h, w), u), torch.full((h, w), v)])


def _kitti(root: Path, frame_dirs=("image_2",), flow_dirs=("flow_occ",), n=2) -> Path:
    t = root / "training"
    for k, d in enumerate(frame_dirs):
        for i in range(n):
            _png(t / d / f"{i:06d}_10.png", 40 + 10 * k + i, colour=True)
            _png(t / d / f"{i:06d}_11.png", 140 + 10 * k + i, colour=True)
    for k, d in enumerate(flow_dirs):
        for i in range(n):
            valid = torch.zeros(12, 16, dtype=torch.bool)
            valid[:, :8] = True
            write_kitti_png(t / d / f"{i:06d}_10.png", _flow(u=1.0 + k + i), valid)
    return root


def test_kitti_prefers_2015_colour_frames_and_occ_flow_and_pairs_10_with_11(tmp_path):
    root = _kitti(tmp_path, frame_dirs=("image_0", "image_2"), flow_dirs=("flow_noc", "flow_occ"))
    ds = KittiFlow(root, n_pairs=1)
    assert len(ds) == 1
    it = ds[0]
    assert it["name"] == "000000" and it["img1"].shape == (1, 12, 16)
    assert round(float(it["img1"].mean()) * 255) != round(float(it["img2"].mean()) * 255)   # _10 then _11
    import cv2
    want1 = cv2.cvtColor(cv2.imread(str(root / "training/image_2/000000_10.png")), cv2.COLOR_BGR2GRAY)
    want2 = cv2.cvtColor(cv2.imread(str(root / "training/image_2/000000_11.png")), cv2.COLOR_BGR2GRAY)
    assert abs(float(it["img1"].mean()) * 255 - float(want1.mean())) <= 1.0            # image_2, not image_0
    assert abs(float(it["img2"].mean()) * 255 - float(want2.mean())) <= 1.0
    assert float(it["flow"][0, 0, 0]) == 2.0                                           # flow_occ (u = 2), not flow_noc
    assert bool(it["valid"][:, :8].all()) and not bool(it["valid"][:, 8:].any())
    colour = KittiFlow(root, gray=False)[1]
    assert colour["img1"].shape == colour["img2"].shape == (3, 12, 16)
    with pytest.raises(ValueError, match="n_pairs"):
        KittiFlow(root, n_pairs=-1)


def test_kitti_missing_root_says_which_folder_to_give(tmp_path):
    # the message is read when --root WAS given: it must say what --root has to hold, not only "use --root"
    with pytest.raises(FileNotFoundError, match=r"KITTI folder not found: .*nowhere \(give --root the unpacked KITTI "
                                                r"2012/2015 folder holding training/, or training/ itself\)"):
        KittiFlow(tmp_path / "nowhere")


def test_kitti_frames_of_another_size_are_named(tmp_path):
    root = _kitti(tmp_path, n=1)
    _png(root / "training/image_2/000000_11.png", 90, shape=(12, 20), colour=True)
    with pytest.raises(ValueError, match="KITTI pair 000000: frames .*000000_10.png"):
        KittiFlow(root)[0]


def _middlebury_flat(root: Path, names=("Alpha", "Beta")) -> Path:
    for k, n in enumerate(names):
        _png(root / n / "frame10.png", 30 + k)
        _png(root / n / "frame11.png", 130 + k)
        write_flo(root / n / "flow10.flo", _flow(u=float(k)))
    return root


def test_middlebury_pair_is_frame10_then_frame11_and_sequences_are_respected(tmp_path):
    root = _middlebury_flat(tmp_path / "flat")
    ds = MiddleburyFlow(root)
    assert ds.sequences == ["Alpha", "Beta"]
    it = ds[1]
    assert it["name"] == "Beta" and round(float(it["img1"].mean()) * 255) == 31
    assert round(float(it["img2"].mean()) * 255) == 131 and float(it["flow"][0].mean()) == 1.0
    assert ds.frame_files("Beta") == (root / "Beta" / "frame10.png", root / "Beta" / "frame11.png")
    assert MiddleburyFlow(root, sequences=["Beta"]).sequences == ["Beta"]
    (root / "Beta" / "frame11.png").unlink()
    with pytest.raises(FileNotFoundError, match="sequence Beta: missing .*Beta/frame11.png"):
        MiddleburyFlow(root)
    _png(root / "Beta" / "frame11.png", 1)
    _png(root / "Beta" / "frame10.png", 1, shape=(10, 16))
    with pytest.raises(ValueError, match="Beta: frame size .*differs from flow size"):
        MiddleburyFlow(root)[1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no sequence folders"):
        MiddleburyFlow(tmp_path / "empty")


def test_middlebury_official_layout_prefers_grey_frames_then_colour(tmp_path):
    root = tmp_path / "official"
    for n in ("Alpha", "Beta"):
        write_flo(root / "other-gt-flow" / n / "flow10.flo", _flow())
    for f, v in (("frame10.png", 50), ("frame11.png", 150)):
        _png(root / "other-data-gray" / "Alpha" / f, v)
        _png(root / "other-data" / "Alpha" / f, v + 20, colour=True)
        _png(root / "other-data" / "Beta" / f, v + 30, colour=True)     # Beta has colour frames only
    ds = MiddleburyFlow(root)
    assert ds.sequences == ["Alpha", "Beta"]
    assert round(float(ds[0]["img1"].mean()) * 255) == 50 and round(float(ds[0]["img2"].mean()) * 255) == 150
    assert ds.frame_files("Beta")[0] == root / "other-data" / "Beta" / "frame10.png"
    assert ds[1]["img1"].shape == (1, 12, 16)
    assert MiddleburyFlow(root, sequences=["Beta"]).sequences == ["Beta"]
