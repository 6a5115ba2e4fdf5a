"""The stderr watch of JPEG decoding (``flownet.frame_io._imdecode_jpeg``, audit 63, second pass): libjpeg's line of a
decoding that OpenCV stopped with an exception was left in the watch's file and blamed on the next JPEG decoded; an
interrupt right after fd 2 was sent to that file left the process's stderr there; the module did not import where
``os.register_at_fork`` does not exist (Windows); the second decoding of an undecodable JPEG wrote libjpeg's raw line
to the terminal. The images are synthetic (no licensed frame is committed)."""
from __future__ import annotations

import os
import struct

import cv2
import numpy as np
import pytest
from _fresh_python import fresh_python_stdout
from test_jpeg63 import _jpegs

import flownet.frame_io as frame_io
from flownet.frame_io import read_frame


def _huge_with_junk(good: bytes) -> bytes:
    """``good`` (a baseline JPEG) with its frame header saying 60000 x 60000 pixels and 2 junk bytes before its first
    quantisation table: libjpeg warns "Corrupt JPEG data: 2 extraneous bytes before marker 0xdb" while reading the
    header, then OpenCV raises cv2.error (the size is over its limit) instead of returning."""
    b = bytearray(good)
    sof = b.index(b"\xff\xc0")
    b[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    dqt = b.index(b"\xff\xdb")
    b[dqt:dqt] = b"\x12\x34"
    return bytes(b)


def test_a_decoding_stopped_by_cv2_error_leaves_no_line_for_the_next_jpeg(tmp_path, capfd):
    """Before, the intact JPEG read after the huge one was refused as "corrupt JPEG data (libjpeg: 2 extraneous bytes
    before marker 0xdb)", and the floating-point check's second decoding of the huge one wrote libjpeg's raw line to
    stderr. Now the huge one is "not an image OpenCV can decode", the intact one decodes as cv2.imdecode decodes it,
    and no libjpeg line reaches stderr."""
    good, _ = _jpegs(tmp_path)
    huge = tmp_path / "huge.jpg"
    huge.write_bytes(_huge_with_junk(good.read_bytes()))
    with pytest.raises(cv2.error):
        cv2.imdecode(np.fromfile(huge, np.uint8), cv2.IMREAD_GRAYSCALE)
    capfd.readouterr()
    with pytest.raises(ValueError, match=r"huge\.jpg: not an image OpenCV can decode$"):
        read_frame(huge)
    np.testing.assert_array_equal(read_frame(good), cv2.imdecode(np.fromfile(good, np.uint8), cv2.IMREAD_GRAYSCALE))
    assert "Corrupt JPEG data" not in capfd.readouterr().err


def test_an_interrupt_right_after_stderr_is_sent_to_the_watch_puts_it_back(tmp_path, monkeypatch):
    """A KeyboardInterrupt (Ctrl-C) raised just after ``os.dup2(sink, 2)`` returns: before, fd 2 stayed the watch's
    file for the rest of the process (a traceback printed after Ctrl-C went nowhere); now it is put back."""
    good, _ = _jpegs(tmp_path)
    read_frame(good)                                   # makes the watch's file
    sink_fd = frame_io._stderr_sink.fileno()
    real_dup2, before, saved = os.dup2, os.fstat(2), os.dup(2)

    def dup2_then_interrupt(fd, fd2, *args):
        real_dup2(fd, fd2, *args)
        if fd == sink_fd and fd2 == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "dup2", dup2_then_interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            read_frame(good)
        assert os.path.samestat(os.fstat(2), before), "fd 2 left on the watch's file"
    finally:
        real_dup2(saved, 2)                            # so that a failure leaves later tests their stderr
        os.close(saved)


def test_the_module_imports_and_watches_without_register_at_fork(tmp_path):
    """Windows has no ``os.register_at_fork``: importing flownet.frame_io raised AttributeError there (simulated by
    deleting it in a fresh interpreter). Now the fork hooks are registered only where it exists, and a damaged JPEG
    is still refused."""
    good, bad = _jpegs(tmp_path)
    code = ("import os, pathlib, tempfile, threading, cv2, numpy\n"     # these use register_at_fork themselves
            "del os.register_at_fork\n"
            "from flownet.frame_io import read_frame\n"
            f"print(read_frame({str(good)!r}).shape)\n"
            "try:\n"
            f"    read_frame({str(bad)!r})\n"
            "except ValueError as exc:\n"
            "    print(exc)\n")
    stdout = fresh_python_stdout(code)
    assert stdout.splitlines()[0] == "(120, 160)"
    assert "bad0.jpg: corrupt JPEG data (libjpeg: " in stdout


def test_without_the_watch_a_jpeg_decodes_as_cv2_imdecode_decodes_it(tmp_path, monkeypatch, capfd):
    """On Windows (``os.name == "nt"``) stderr is not watched (module docstring): a damaged JPEG is decoded as
    cv2.imdecode decodes it, not refused, and libjpeg's line is left on stderr."""
    good, bad = _jpegs(tmp_path)
    monkeypatch.setattr(frame_io, "_WATCH_STDERR", False)
    for path in (good, bad):
        np.testing.assert_array_equal(read_frame(path), cv2.imdecode(np.fromfile(path, np.uint8),
                                                                     cv2.IMREAD_GRAYSCALE))
    assert "Corrupt JPEG data: " in capfd.readouterr().err


def test_another_libjpeg_warning_during_the_watch_is_passed_on_to_stderr(tmp_path, capfd):
    """A JPEG whose JFIF version says 2.01 decodes, and libjpeg's warning about it (not "Corrupt JPEG data") reaches
    stderr as before the watch: the watch passes on what is not its own line (a surviving mutant dropped it)."""
    img = (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)
    data = bytearray(cv2.imencode(".jpg", img)[1].tobytes())
    data[data.index(b"JFIF\x00") + 5] = 2           # JFIF major version 1 -> 2
    path = tmp_path / "jfif2.jpg"
    path.write_bytes(bytes(data))
    capfd.readouterr()
    out = read_frame(path, cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(out, cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_GRAYSCALE))
    err = capfd.readouterr().err
    assert "JFIF revision number 2.01" in err
    assert "Corrupt JPEG data" not in err
