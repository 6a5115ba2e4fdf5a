"""`icegan flow run` and the flownet frame / flow-file I/O (56th audit): frames whose EXIF Orientation tags differ
(read as shown, with a note),
frames too large for the all-pairs correlation volume of SRFlowNet-like networks, ``--decompose-method learned``
with a base-estimator ``--model`` / ``--module``, a PNG followed by padding, and NaN / infinite flow in a ``.flo``.
Frames are tiny pictures written here (a blank 3840x2160 pair for the memory check); no real data is read."""
from __future__ import annotations

import numpy as np
import pytest

from _exif import save_tagged


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w) uint8 smooth random texture (something to match)."""
    import cv2
    rng = np.random.default_rng(seed)
    small = rng.random((max(2, h // 4), max(2, w // 4))).astype(np.float32)
    return (np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1) * 255).astype(np.uint8)


def _run(args: list[str]) -> int:
    from icegan.cli import main
    return main(["flow", "run", *map(str, args)])


# ------------------------------------------------------------------------------------------- 1: EXIF orientation

def test_flow_run_reads_frames_of_different_tags_as_shown_with_a_note(tmp_path, capsys):
    """img1 saved with its pixels turned half a turn and tagged 3 (a viewer, and OpenCV, turn it back), img2 untagged
    and shifted 2 px right: read as shown, the two line up and the flow is the true +2 px, with a note naming both
    tags (a wrong tag would turn one frame against the other)."""
    import cv2
    from flownet.io import read_flo
    a = _texture(48, 48)
    one = save_tagged(tmp_path / "one.png", np.rot90(a, 2).copy(), 3)
    two = save_tagged(tmp_path / "two.png", np.roll(a, 2, axis=1))
    assert cv2.imread(str(one), cv2.IMREAD_GRAYSCALE).tolist() == a.tolist()       # OpenCV applies the tag
    flo = tmp_path / "f.flo"
    assert _run([one, two, "--model", "tvl1", "--out", tmp_path / "f.png", "--flo", flo]) == 0
    out = capsys.readouterr().out
    assert "different EXIF Orientation tags" in out and f"{one}: 3, which turns it half a turn" in out
    assert f"{two}: none, read as stored" in out
    u = read_flo(flo)[0][..., 0]
    assert abs(float(np.median(u[8:-8, 8:-8])) - 2.0) < 0.25


def test_flow_run_accepts_frames_of_one_orientation_and_tag_1_as_untagged(tmp_path, capsys):
    """Both frames tagged 3 are read turned alike: the flow is computed (exit 0). Tag 1 (as stored) counts as no
    tag."""
    a = _texture(32, 32)
    for k, (t1, t2) in enumerate(((3, 3), (1, None))):
        one = save_tagged(tmp_path / f"one{k}.png", a, t1)
        two = save_tagged(tmp_path / f"two{k}.png", np.roll(a, 2, axis=1), t2)
        assert _run([one, two, "--model", "farneback", "--out", tmp_path / f"f{k}.png"]) == 0, capsys.readouterr()


def test_flow_run_names_a_quarter_turn_tag_in_its_size_message(tmp_path, capsys):
    """img1 stored 24 high x 40 wide, tagged 6 (read 40 high x 24 wide), img2 stored 24 x 40 untagged: the sizes
    differ, and the message says why (the tag, a quarter turn, width and height swapped)."""
    a = _texture(24, 40)
    one = save_tagged(tmp_path / "one.png", a, 6)
    two = save_tagged(tmp_path / "two.png", a)
    assert _run([one, two, "--model", "tvl1", "--out", tmp_path / "f.png"]) == 2
    err = capsys.readouterr().err
    assert f"images differ in size: {one} is 24x40 pixels, {two} 40x24" in err
    assert f"{one} carries the EXIF Orientation tag 6" in err and "quarter turn" in err
    assert str(two) + " carries" not in err


def test_file_orientation_reads_the_given_bytes(tmp_path):
    """file_orientation(path, data=...) takes the tag from the bytes already read (the file is not opened)."""
    import io

    from flownet.frame_io import file_orientation
    buf = io.BytesIO()
    save_tagged(buf, _texture(16, 16), 8, "PNG")
    assert file_orientation(tmp_path / "absent.png", data=buf.getvalue()) == 8
    assert file_orientation(save_tagged(tmp_path / "x.png", _texture(16, 16))) is None


# ------------------------------------------------------------------------------ 2: the all-pairs correlation volume

def _blank_pair(folder, h: int, w: int):
    import cv2
    paths = []
    for name in ("k1.png", "k2.png"):
        cv2.imwrite(str(folder / name), np.zeros((h, w), np.uint8))
        paths.append(folder / name)
    return paths


def _no_estimate(monkeypatch):
    """The learned estimators' estimate replaced by one that records its calls (none may happen)."""
    from flownet import registry
    calls = []

    def estimate(self, img1, img2):
        calls.append(tuple(img1.shape))
        raise AssertionError("the flow was computed")
    monkeypatch.setattr(registry._LearnedEstimator, "estimate", estimate)
    return calls


def test_flow_run_refuses_4k_frames_whose_correlation_volume_outgrows_memory(tmp_path, monkeypatch, capsys):
    """Two 3840x2160 frames at --input-size native: SRFlowNet's all-pairs volume is (480*270)^2 float32 values =
    67,184,640,000 bytes (the allocation torch failed on after ~50 s), and building it holds two such volumes (the
    product and its scaled copy): 134.4 GB. On a machine of 64 GiB (68.7 GB) that is refused before any flow is
    computed, with the estimate and --input-size in one line."""
    from icegan.commands import flow
    monkeypatch.setattr(flow, "_device_memory", lambda device: 64 * 2 ** 30, raising=False)
    calls = _no_estimate(monkeypatch)
    a, b = _blank_pair(tmp_path, 2160, 3840)
    assert _run([a, b, "--out", tmp_path / "f.png"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and calls == []
    assert "67.2 GB" in err and "134.4 GB" in err and "68.7 GB" in err and "--input-size" in err
    assert "480x270" in err


def test_flow_run_memory_estimate_counts_the_mirrored_pair_and_the_working_size(tmp_path, monkeypatch, capsys):
    """256x256 frames: a 32x32 grid, (1024)^2 * 4 = 4.19 MB, 8.39 MB to build. With 10 MB of memory plain
    SRFlowNet runs; --tta hflip runs the pair and its mirror as one batch of two (16.8 MB): refused;
    --input-size 128 computes on a 16x16 grid (0.52 MB to build): runs."""
    from icegan.commands import flow
    monkeypatch.setattr(flow, "_device_memory", lambda device: 10_000_000, raising=False)
    a, b = _blank_pair(tmp_path, 256, 256)
    assert _run([a, b, "--out", tmp_path / "f.png"]) == 0
    capsys.readouterr()
    assert _run([a, b, "--out", tmp_path / "g.png", "--tta", "hflip"]) == 2
    err = capsys.readouterr().err
    assert "16.8 MB" in err and "10.0 MB" in err
    assert _run([a, b, "--out", tmp_path / "h.png", "--tta", "hflip", "--input-size", "128"]) == 0


def test_flow_run_memory_check_leaves_classical_models_alone_and_covers_decflow(tmp_path, monkeypatch, capsys):
    """TV-L1 has no correlation volume: it runs whatever the memory. DecFlow (--decompose-method learned) has
    SRFlowNet's volume: refused when it does not fit."""
    from icegan.commands import flow
    monkeypatch.setattr(flow, "_device_memory", lambda device: 1000, raising=False)
    a, b = _blank_pair(tmp_path, 64, 64)
    assert _run([a, b, "--model", "tvl1", "--out", tmp_path / "f.png"]) == 0
    capsys.readouterr()
    assert _run([a, b, "--decompose", "--decompose-method", "learned", "--out", tmp_path / "g.png"]) == 2
    err = capsys.readouterr().err
    assert "correlation volume" in err and "DecFlow" in err and not (tmp_path / "g.png").exists()


def test_device_memory_is_physical_memory_or_the_gpus_total(monkeypatch):
    """CPU: page size x physical pages (os.sysconf); CUDA: the device's total_memory; another device: unknown."""
    import os
    import types

    import torch

    from icegan.commands.flow import _device_memory
    assert _device_memory(torch.device("cpu")) == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") > 0
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: types.SimpleNamespace(total_memory=80 * 2 ** 30))
    assert _device_memory(torch.device("cuda:0")) == 80 * 2 ** 30
    assert _device_memory(torch.device("meta")) is None


@pytest.mark.parametrize("message", [
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    "67184640000 bytes. Error code 12 (Cannot allocate memory)",
    "CUDA out of memory. Tried to allocate 62.57 GiB. GPU 0 has a total capacity of 79.10 GiB"])
def test_flow_run_turns_an_out_of_memory_error_into_one_line(tmp_path, monkeypatch, capsys, message):
    """An allocation that fails while the flow is computed (memory taken by others) is one line naming the frames'
    size and --input-size, exit 2, not a torch traceback."""
    from flownet import registry

    def estimate(self, img1, img2):
        raise RuntimeError(message)
    monkeypatch.setattr(registry._LearnedEstimator, "estimate", estimate)
    a, b = _blank_pair(tmp_path, 64, 96)
    assert _run([a, b, "--out", tmp_path / "f.png"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("icegan flow run: error: ran out of memory") and "96x64" in err and "--input-size" in err


def test_flow_run_lets_other_runtime_errors_through(tmp_path, monkeypatch):
    """A RuntimeError that is not about memory stays a RuntimeError (a bug is not dressed up as a user error)."""
    from flownet import registry

    def estimate(self, img1, img2):
        raise RuntimeError("shape mismatch somewhere")
    monkeypatch.setattr(registry._LearnedEstimator, "estimate", estimate)
    a, b = _blank_pair(tmp_path, 64, 64)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _run([a, b, "--out", tmp_path / "f.png"])


# ------------------------------------------------------------------- 3: --decompose-method learned and --model

@pytest.mark.parametrize("extra, named", [(["--model", "tvl1"], "--model"),
                                          (["--model", "farneback"], "--model"),
                                          (["--model", "custom", "--module", "/nonexistent.py:f"], "--model, --module"),
                                          (["--module", "/nonexistent.py:f"], "--module")])
def test_decompose_learned_refuses_a_base_model_or_module(tmp_path, capsys, extra, named):
    """DecFlow is its own network: --model tvl1 / farneback and --module (even one that does not exist) were
    dropped silently (three identical .flo files). Now refused by name, as --precision / --tta / --input-size are;
    nothing written."""
    a, b = _blank_pair(tmp_path, 64, 64)
    out = tmp_path / "m.png"
    assert _run([a, b, "--decompose", "--decompose-method", "learned", *extra, "--out", out]) == 2
    err = capsys.readouterr().err
    assert f"error: {named} set the base flow estimator of --decompose-method ransac" in err
    assert not out.exists()


# --------------------------------------------------------------------------------- 4: bytes after a PNG's IEND

def test_png_followed_by_padding_is_read_and_a_chunk_walk_past_the_end_is_truncated(tmp_path):
    """A complete PNG followed by 512 zero bytes (padding some transfer tools leave) decodes in OpenCV and Pillow
    and is read as the plain file; a PNG cut inside its image data, or whose last chunk's length runs past the end
    of the file, is truncated."""
    import cv2

    from flownet.frame_io import read_frame, truncation_problem
    a = _texture(24, 40)
    data = cv2.imencode(".png", a)[1].tobytes()
    padded = tmp_path / "pad.png"
    padded.write_bytes(data + b"\x00" * 512)
    assert truncation_problem(data + b"\x00" * 512) is None
    assert truncation_problem(data + b"junk after the end" * 3) is None
    assert np.array_equal(read_frame(padded), a)
    cut = data[:len(data) - 20]                     # inside the IDAT chunk (IEND is the last 12 bytes)
    assert truncation_problem(cut).startswith("truncated: no complete PNG IEND chunk")
    idat = data.index(b"IDAT") - 4              # its length field: 1 MiB claimed, the file ends long before
    stretched = data[:idat] + (2 ** 20).to_bytes(4, "big") + data[idat + 4:]
    assert truncation_problem(stretched).startswith("truncated: no complete PNG IEND chunk")
    # the bytes of an IEND chunk inside a text chunk's data (signature 8 + IHDR 25 = 33 bytes, then a tEXt chunk
    # of 12 data bytes: 24 in all) are not the end: a file cut right after that chunk is truncated
    fake = data[:33] + (12).to_bytes(4, "big") + b"tEXt" + b"\0\0\0\0IEND\xaeB`\x82" + b"\0\0\0\0" + data[33:]
    assert truncation_problem(fake) is None
    assert truncation_problem(fake[:33 + 24]).startswith("truncated: no complete PNG IEND chunk")


def test_flow_run_reads_a_png_followed_by_padding(tmp_path, capsys):
    """`flow run` on a padded PNG computes the flow (it was refused as truncated)."""
    import cv2
    a, b = _texture(32, 32), np.roll(_texture(32, 32), 2, axis=1)
    p1, p2 = tmp_path / "a.png", tmp_path / "b.png"
    p1.write_bytes(cv2.imencode(".png", a)[1].tobytes() + b"\x00" * 512)
    cv2.imwrite(str(p2), b)
    assert _run([p1, p2, "--model", "farneback", "--out", tmp_path / "f.png"]) == 0, capsys.readouterr().err


# --------------------------------------------------------------------------------- 5: write_flo and unknown flow

def test_write_flo_marks_non_finite_flow_unknown_as_middlebury_does(tmp_path):
    """NaN and infinite pixels are stored as 1e10 in both components (Middlebury: unknown iff |u| or |v| > 1e9);
    read_flo gives them as invalid, 0, and every finite pixel exactly as written."""
    from flownet.io import read_flo, write_flo
    f = np.arange(40, dtype=np.float32).reshape(4, 5, 2) / 7
    f[1, 2] = np.nan
    f[2, 3, 0] = np.inf
    f[3, 4, 1] = -np.inf
    path = write_flo(tmp_path / "n.flo", f)
    raw = np.fromfile(path, "<f4")[3:].reshape(4, 5, 2)
    bad = np.zeros((4, 5), bool)
    bad[1, 2] = bad[2, 3] = bad[3, 4] = True
    assert (raw[bad] == np.float32(1e10)).all()
    assert np.array_equal(raw[~bad], f[~bad])
    flow, valid = read_flo(path)
    assert np.array_equal(valid, ~bad) and (flow[bad] == 0).all() and np.array_equal(flow[~bad], f[~bad])
