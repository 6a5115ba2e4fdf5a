"""Error paths 49 (group A, files): the input checks and fallbacks of flownet.io, flownet.frame_io, flownet.evaluate
and the KITTI / Middlebury loaders that no test reached (coverage run at eccacd4): through ``icegan flow eval`` where
a user meets them, else the public function, asserting the exception type and what the message names."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _one_line_error import one_line_error

from icegan.cli import main

# ------------------------------------------------------------------------------------------------ KITTI, Middlebury


def test_flow_eval_on_a_kitti_folder_without_ground_truth_files_names_the_folder(tmp_path, capsys):
    """training/flow_occ and training/image_2 exist, but no <id>_10.png is in flow_occ (an unzip that stopped)."""
    for d in ("flow_occ", "image_2"):
        (tmp_path / "training" / d).mkdir(parents=True)
    assert main(["flow", "eval", "--model", "farneback", "--data", "kitti", "--root", str(tmp_path)]) == 2
    one_line_error(capsys, f"no ground-truth flow <id>_10.png in {tmp_path / 'training' / 'flow_occ'}")


def test_flow_eval_on_a_missing_middlebury_folder_says_what_root_must_hold(tmp_path, capsys):
    """'Middlebury folder not found: X (use --root)' was shown to a user who had given --root X: it now says what the
    folder must hold; without --root, that the shared data has no middlebury/."""
    from flownet.data.middlebury import MiddleburyFlow
    missing = tmp_path / "nowhere"
    assert main(["flow", "eval", "--model", "farneback", "--data", "middlebury", "--root", str(missing)]) == 2
    err = one_line_error(capsys, f"Middlebury folder not found: {missing} (give --root the folder that holds the "
                                 f"sequence folders (<Sequence>/frame10.png, frame11.png, flow10.flo) or the official "
                                 f"download's root, holding other-gt-flow/)")
    assert "shared data" not in err
    import flownet.data.middlebury as middlebury
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(middlebury, "shared_data_root", lambda: tmp_path / "shared")
        with pytest.raises(FileNotFoundError, match=r"Middlebury folder not found: .*shared/middlebury \(the shared "
                                                    r"data has no middlebury/: give --root the folder"):
            MiddleburyFlow()


# ------------------------------------------------------------------------------------------------ evaluate

def test_load_pairs_names_the_data_it_does_not_know():
    from flownet.evaluate import load_pairs
    with pytest.raises(ValueError, match=r"unknown data 'sintel'; choose one of \['middlebury', 'kitti', "
                                         r"'synthetic-face', 'synthetic-generic'\]"):
        load_pairs("sintel")


def test_evaluate_without_pairs_says_which_input_was_empty():
    """'no pairs to evaluate' said neither that the given list was empty nor which setting made none."""
    from flownet.classical import FarnebackEstimator
    from flownet.evaluate import evaluate
    with pytest.raises(ValueError, match=r"^no pairs to evaluate: the pairs list given is empty$"):
        evaluate("farneback", pairs=[], estimator=FarnebackEstimator(), progress=False)
    with pytest.raises(ValueError, match=r"^no pairs to evaluate: data 'synthetic-generic' gave none \(n_pairs=0; "
                                         r"give n_pairs >= 1\)$"):
        evaluate("farneback", data="synthetic-generic", size=16, n_pairs=0, progress=False)


# ------------------------------------------------------------------------------------------------ frame_io

def test_read_image_refuses_a_jpeg_cut_inside_a_marker_length(tmp_path):
    """A JPEG whose bytes end inside a marker segment's length field (after FF D8 FF E0 and one byte)."""
    from flownet.io import read_image
    p = tmp_path / "cut.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0\x00")
    with pytest.raises(ValueError, match=rf"cannot read image {p}: truncated: the JPEG ends inside its header "
                                         r"\(an interrupted copy or unzip\?\); copy the file again"):
        read_image(p)


def _png_claiming(width: int, height: int) -> bytes:
    """A complete PNG (IHDR, IDAT, IEND) whose header claims width x height 8-bit grey pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def test_read_image_turns_an_opencv_exception_into_the_undecodable_message(tmp_path):
    """A PNG whose header claims 100000 x 100000 pixels makes cv2.imdecode raise cv2.error (over its pixel limit)
    rather than return None: the same one-line ValueError naming the file, not an OpenCV assertion."""
    from flownet.io import read_image
    p = tmp_path / "huge.png"
    p.write_bytes(_png_claiming(100000, 100000))
    with pytest.raises(ValueError, match=rf"^cannot read image {p}: not an image OpenCV can decode$"):
        read_image(p, gray=True)


def test_narrow_16_bit_max_is_none_for_images_that_are_not_16_bit():
    """8-bit and float images (e.g. a 32-bit float TIFF that icegan flow run reads with IMREAD_ANYDEPTH) are not 10-
    or 12-bit data in 16 bits, however small their values."""
    from flownet.frame_io import narrow_16_bit_max
    assert narrow_16_bit_max(np.full((4, 4), 3, np.uint8)) is None
    assert narrow_16_bit_max(np.full((4, 4), 0.5, np.float32)) is None
    assert narrow_16_bit_max(np.full((4, 4), 1000, np.uint16)) == 1000


# ------------------------------------------------------------------------------------------------ io: .flo, KITTI PNG

def _flo_header(w: int, h: int) -> bytes:
    return np.array([202021.25], "<f4").tobytes() + np.array([w, h], "<i4").tobytes()


@pytest.mark.parametrize("raw, message", [
    (b"PIEH\x04", r"too short for a \.flo header \(5 bytes\)"),
    (_flo_header(0, 3), r"invalid size 0x3 in \.flo header"),
    (_flo_header(4, -2), r"invalid size 4x-2 in \.flo header"),
    (_flo_header(3, 0), r"invalid size 3x0 in \.flo header"),
])
def test_read_flo_refuses_a_header_it_cannot_use(tmp_path, raw, message):
    from flownet.io import read_flo
    p = tmp_path / "bad.flo"
    p.write_bytes(raw)
    with pytest.raises(ValueError, match=rf"^{p}: {message}$"):
        read_flo(p)


def test_write_flo_takes_a_numpy_channel_first_flow_and_refuses_other_layouts(tmp_path):
    """A (2, H, W) numpy array is written as the (H, W, 2) flow it is; (3, H, W), and a valid mask of another size,
    are refused before anything is written."""
    from flownet.io import read_flo, write_flo
    chw = np.stack([np.full((4, 5), 1.5, np.float32), np.arange(20, dtype=np.float32).reshape(4, 5)])
    flow, valid = read_flo(write_flo(tmp_path / "a.flo", chw))
    assert flow.shape == (4, 5, 2) and valid.all()
    assert (flow[..., 0] == 1.5).all() and np.array_equal(flow[..., 1], chw[1])
    with pytest.raises(ValueError, match=r"^flow must be \(H, W, 2\) or \(2, H, W\), got shape \(3, 4, 5\)$"):
        write_flo(tmp_path / "b.flo", np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match=r"^valid mask shape \(4, 4\) does not match flow \(4, 5\)$"):
        write_flo(tmp_path / "c.flo", chw, valid=np.ones((4, 4), bool))
    assert not (tmp_path / "b.flo").exists() and not (tmp_path / "c.flo").exists()


def test_read_kitti_png_names_a_missing_file(tmp_path):
    from flownet.io import read_kitti_png
    with pytest.raises(FileNotFoundError, match=rf"^KITTI flow PNG not found: {tmp_path / 'gone.png'}$"):
        read_kitti_png(tmp_path / "gone.png")


def _dangling_png(tmp_path: Path) -> Path:
    """A .png path that is a link into a folder that does not exist: OpenCV's writer cannot open it (the checks
    before it pass: not a folder, its folder exists, a .png name), so cv2.imwrite returns False."""
    link = tmp_path / "out.png"
    os.symlink(tmp_path / "no_such_folder" / "x.png", link)
    return link


def test_image_writers_say_when_the_file_could_not_be_written(tmp_path):
    """cv2.imwrite returned False instead of raising: write_kitti_png and save_flow_image raise an OSError naming the
    file instead of returning a path to nothing (now from writing the encoded bytes, flownet.io.write_image)."""
    from flownet.io import save_flow_image, write_kitti_png
    link = _dangling_png(tmp_path)
    with pytest.raises(OSError, match=re.escape(str(link))):
        write_kitti_png(link, torch.zeros(2, 4, 4))
    with pytest.raises(OSError, match=re.escape(str(link))):
        save_flow_image(link, torch.ones(2, 4, 4))


def test_write_image_writes_under_any_folder_name_and_refuses_what_it_cannot_encode(tmp_path):
    """Encoded in memory and written as bytes (cv2.imwrite cannot open a non-ASCII path on Windows); read back equal."""
    from flownet.io import write_image
    img = (np.arange(48, dtype=np.uint16).reshape(4, 4, 3) * 1000)
    folder = tmp_path / "微表情 输出"
    folder.mkdir()
    p = write_image(folder / "k.png", img)
    back = cv2.imdecode(np.frombuffer(p.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, img)
    with pytest.raises(OSError, match=r"could not encode an image of shape \(4, 4, 3\) and dtype uint16 as \.nope"):
        write_image(folder / "k.nope", img)


def test_save_flow_image_takes_a_batch_of_one_and_refuses_a_larger_batch(tmp_path):
    from flownet.io import save_flow_image
    flow = torch.zeros(2, 6, 8)
    flow[0, :, 4:] = 2.0
    one = cv2.imread(str(save_flow_image(tmp_path / "one.png", flow)))
    batch = cv2.imread(str(save_flow_image(tmp_path / "batch.png", flow[None])))
    assert batch.shape == (6, 8, 3) and np.array_equal(batch, one) and not np.array_equal(one[:, 0], one[:, 7])
    with pytest.raises(ValueError, match=r"^save_flow_image takes one flow field, got a batch of 2$"):
        save_flow_image(tmp_path / "two.png", torch.stack([flow, flow]))
    assert not (tmp_path / "two.png").exists()


def test_save_flow_key_refuses_a_disc_too_small_to_read(tmp_path):
    from flownet.io import save_flow_key
    with pytest.raises(ValueError, match=r"^size must be at least 16 pixels, got 15$"):
        save_flow_key(tmp_path / "key.png", 2.0, size=15)
    assert not (tmp_path / "key.png").exists()


def test_read_image_names_a_missing_file(tmp_path):
    from flownet.io import read_image
    with pytest.raises(FileNotFoundError, match=rf"^image not found: {tmp_path / 'a.png'}$"):
        read_image(tmp_path / "a.png")


# ------------------------------------------------------------------------------------------------ io: stale temporaries

def _dead_pid() -> int:
    """The number of a process that has ended."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(gone.stdout)


def _old(p: Path) -> Path:
    """``p`` (a file written here, or a link) dated two hours back."""
    os.utime(p, (time.time() - 7200,) * 2, follow_symlinks=False)
    return p


def test_remove_stale_keeps_temporaries_whose_pid_names_no_process_number(tmp_path):
    """A pid group that overflows a process number (OverflowError from os.kill) or is not a number (a caller's
    pattern that matches letters: ValueError) is kept, not a crash, while a stale temporary beside it is removed."""
    from flownet.io import remove_stale
    dead = _dead_pid()
    names = ["c.99999999999999999999999.tmp", "c.abc.tmp", f"c.{dead}.tmp"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
        _old(tmp_path / n)
    removed = remove_stale(tmp_path, r"c\.(?P<pid>\w+)\.tmp", "a cache", probe_pids=True)
    assert removed == [tmp_path / f"c.{dead}.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[:2])


def test_remove_stale_skips_an_entry_it_cannot_stat_and_goes_on(tmp_path):
    """An entry removed meanwhile (here: a link to nothing, whose stat fails as a removed file's does) is skipped,
    not a crash, and a stale temporary beside it is still removed."""
    from flownet.io import remove_stale
    dead = _dead_pid()
    os.symlink(tmp_path / "gone", tmp_path / f"a.{dead}.tmp")
    stale = tmp_path / f"b.{dead}.tmp"
    stale.write_bytes(b"x")
    _old(stale)
    removed = remove_stale(tmp_path, r"[ab]\.(?P<pid>\d+)\.tmp", "a cache", probe_pids=True)
    assert removed == [stale] and (tmp_path / f"a.{dead}.tmp").is_symlink()
