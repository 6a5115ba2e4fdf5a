"""JPEG frames damaged inside their scan data (audit 63): a file whose entropy-coded bytes were changed (a bad disk
block, a bit flip in transfer) but whose end marker ``FF D9`` is intact is not cut short, and ``cv2.imdecode`` decodes
it to garbage with only libjpeg's "Corrupt JPEG data: ..." line on stderr, naming no file. ``read_frame`` now refuses
it by name, so preparation skips its clip and ``icegan data check`` counts it unreadable; an intact JPEG decodes as
before. The images are synthetic (no licensed frame is committed)."""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from flownet.frame_io import read_frame, truncation_problem


def _picture(seed: int = 0) -> np.ndarray:
    """(120, 160, 3) uint8 BGR: smooth waves plus noise, so the JPEG's scan data runs to some thousands of bytes."""
    y, x = np.mgrid[0:120, 0:160]
    wave = (np.sin(x / 11.0 + seed) + np.cos(y / 7.0)) * 60 + 128
    noise = np.random.default_rng(seed).integers(0, 24, (120, 160, 3))
    return np.clip(wave[..., None] + noise, 0, 255).astype(np.uint8)


def _jpegs(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """``good<seed>.jpg`` (quality 90) and ``bad<seed>.jpg``: the same bytes with one byte in every 97 of its scan data
    (from 40 bytes after the start-of-scan marker) replaced by a seeded random value; its end marker and length
    intact, so that it is complete by :func:`truncation_problem`."""
    ok, enc = cv2.imencode(".jpg", _picture(seed), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    good = enc.tobytes()
    damaged, rng = bytearray(good), random.Random(seed)
    for i in range(good.index(b"\xff\xda") + 40, len(good) - 10, 97):
        damaged[i] = rng.randrange(256)
    assert damaged[-2:] == b"\xff\xd9" and truncation_problem(bytes(damaged)) is None
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"good{seed}.jpg").write_bytes(good)
    (folder / f"bad{seed}.jpg").write_bytes(bytes(damaged))
    return folder / f"good{seed}.jpg", folder / f"bad{seed}.jpg"


@pytest.mark.parametrize("flag", [None, cv2.IMREAD_COLOR, cv2.IMREAD_REDUCED_GRAYSCALE_2])
def test_a_jpeg_damaged_inside_its_scan_is_refused_by_name(tmp_path, capfd, flag):
    """Before, read_frame returned the garbage (mean grey error of tens of levels) and only libjpeg's line reached
    stderr. Now a ValueError names the file and says "corrupt JPEG data" with libjpeg's reason; the line is not
    left on stderr, and the intact copy decodes exactly as cv2.imdecode decodes it."""
    good, bad = _jpegs(tmp_path)
    with pytest.raises(ValueError, match=r"cannot read image .*bad0\.jpg: corrupt JPEG data \(libjpeg: ") as err:
        read_frame(bad, flag)
    assert "copy the file again" in str(err.value)
    assert "Corrupt JPEG data" not in capfd.readouterr().err
    want = cv2.imdecode(np.fromfile(good, np.uint8), cv2.IMREAD_GRAYSCALE if flag is None else flag)
    np.testing.assert_array_equal(read_frame(good, flag), want)
    os.write(2, b"stderr still reaches its file\n")      # fd 2 put back as it was
    assert capfd.readouterr().err == "stderr still reaches its file\n"


def _slow_imdecode(monkeypatch, seconds: float = 0.01, started=None) -> None:
    """Make ``cv2.imdecode`` sleep ``seconds`` after decoding (the GIL released), so that threads reading frames
    interleave inside the JPEG stderr watch; ``started`` (a threading.Event): set as each decoding ends."""
    real = cv2.imdecode

    def slow(buf, flag):
        img = real(buf, flag)
        if started is not None:
            started.set()
        time.sleep(seconds)
        return img

    monkeypatch.setattr(cv2, "imdecode", slow)


def test_damaged_and_intact_jpegs_read_by_threads_are_each_told_apart(tmp_path, monkeypatch):
    """``icegan data check`` decodes frames in threads, and libjpeg's line goes to the process's one stderr: each
    damaged file among intact ones read concurrently is refused, and only they are. Each decoding sleeps 10 ms
    after it ends, so that without the watch's lock the threads' decodings overlap (it failed then at every run,
    where the plain test passed 4 runs in 5)."""
    _slow_imdecode(monkeypatch)
    pairs = [_jpegs(tmp_path, seed) for seed in range(4)]
    files = [p for pair in pairs for p in pair] * 3

    def outcome(path):
        try:
            read_frame(path, cv2.IMREAD_REDUCED_GRAYSCALE_2)
        except ValueError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(outcome, files))
    for path, why in zip(files, got):
        assert (why is not None) == path.name.startswith("bad"), (path, why)
        assert why is None or f"{path}: corrupt JPEG data" in why


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_child_forked_while_another_thread_decodes_refuses_a_damaged_jpeg(tmp_path, monkeypatch):
    """A fork while another thread is inside the JPEG stderr watch (its lock held, fd 2 on the watch's file): the
    fork waits for that decoding to end, and the child has its stderr back, the lock free and a watch's file of its
    own, so that it refuses a damaged JPEG (without the fork hooks it would hang on the lock, its stderr lost)."""
    good, bad = _jpegs(tmp_path)
    started = threading.Event()
    _slow_imdecode(monkeypatch, 0.5, started)
    stderr_before = os.fstat(2)
    reader = threading.Thread(target=read_frame, args=(good,))
    reader.start()
    assert started.wait(30)
    pid = os.fork()
    if pid == 0:                                     # the child: never returns into pytest
        code = 1
        try:
            assert os.path.samestat(os.fstat(2), stderr_before)
            try:
                read_frame(bad)
            except ValueError as exc:
                code = 0 if "bad0.jpg: corrupt JPEG data (libjpeg: " in str(exc) else 3
        finally:
            os._exit(code)
    reader.join()
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert done[0] == pid, "the forked child hung"
    assert os.waitstatus_to_exitcode(done[1]) == 0


def _clip_with_damaged_apex(tmp_path):
    """A clip list of one clip, frames img1..img10.jpg in ``tmp_path/c1``, whose apex img5.jpg alone is damaged."""
    folder = tmp_path / "c1"
    for n in range(1, 11):
        good, bad = _jpegs(folder, n)
        (bad if n == 5 else good).rename(folder / f"img{n}.jpg")
        (good if n == 5 else bad).unlink()
    csv = tmp_path / "c1.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,c1,{folder},2,5,10\n")
    return csv


def test_data_check_counts_a_damaged_jpeg_unreadable_and_exits_1(tmp_path, capsys):
    """The damaged apex frame of a clip list clip: `icegan data check` skips the clip for it (exit 1) and names the
    file with the reason; before, the check found nothing (exit 0)."""
    from icegan.cli import main
    csv = _clip_with_damaged_apex(tmp_path)
    assert main(["data", "check", "--dataset", "clips", "--root", str(csv), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "unreadable image(s) for frame(s) 5" in out
    assert "img5.jpg" in out and "corrupt JPEG data" in out


def test_preparation_skips_the_clip_of_a_damaged_apex_jpeg(tmp_path):
    """A cropped clip whose apex JPEG is damaged: process_clip's error names the file and the damage (before, the
    garbage apex was used)."""
    from icegan.data import prepare as prep
    csv = _clip_with_damaged_apex(tmp_path)
    rec = prep.dataset_records(prep.DatasetSpec(name="clips", root=str(csv), mode="cropped"))[0]
    out = prep.process_clip(rec, "cropped", prep._settings(prep.PrepareConfig()))
    assert "img5.jpg: corrupt JPEG data" in out.get("error", ""), out


def test_colour_bmp_and_jpeg_read_grey_are_their_decoders_grey(tmp_path):
    """read_frame's docstring said a colour JPEG or BMP read grey is the cv2.cvtColor grey of its colour decode, as
    a colour PNG's is: it is not, and is left so (SMIC frames are BMP, CASME II's JPEG: recorded numbers come from
    these greys). A BMP of colour noise read grey is OpenCV's own conversion, one grey level off cv2.cvtColor in 12
    of its 4096 pixels; a JPEG's is its luma channel, not a conversion of its colour decode."""
    bgr = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for ext in ("bmp", "jpg"):
        assert cv2.imwrite(str(tmp_path / f"c.{ext}"), bgr)
        grey = read_frame(tmp_path / f"c.{ext}")
        np.testing.assert_array_equal(grey, cv2.imread(str(tmp_path / f"c.{ext}"), cv2.IMREAD_GRAYSCALE))
        off = np.abs(grey.astype(int) - cv2.cvtColor(read_frame(tmp_path / f"c.{ext}", cv2.IMREAD_COLOR),
                                                     cv2.COLOR_BGR2GRAY))
        if ext == "bmp":
            assert (int((off > 0).sum()), int(off.max())) == (12, 1)
        else:
            assert off.max() > 1
