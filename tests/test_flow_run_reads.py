"""``icegan flow run`` reads and decodes each input frame once, and gives the flow of the frames as read_image reads
them (the same flow as before it stopped decoding each file a second time to check it)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import flownet.frame_io as frame_io
from icegan.cli import main


def _pair(tmp_path: Path, grey: tuple[bool, bool]) -> tuple[Path, Path]:
    """Two 40x32 PNG frames, the second the first shifted one pixel right; ``grey``: which are stored greyscale."""
    img = (np.random.default_rng(0).random((32, 40, 3)) * 255).astype(np.uint8)
    paths = []
    for i, (a, g) in enumerate(zip((img, np.roll(img, 1, axis=1)), grey)):
        p = tmp_path / f"f{i}_{'grey' if g else 'colour'}.png"
        cv2.imwrite(str(p), a[..., 1] if g else a)
        paths.append(p)
    return paths[0], paths[1]


# farneback (classical) reads grey from the start; srflownet's grey-trained weights get colour frames decoded again
# grey from memory (the mixed-frames note's re-read, or trained_on_grey's): every flow is of the grey frames
@pytest.mark.parametrize("grey, extra, model, decodes", [((False, False), [], "farneback", 1),
                                                         ((True, True), [], "farneback", 1),
                                                         ((False, False), ["--gray"], "farneback", 1),
                                                         ((True, False), [], "farneback", 1),
                                                         ((True, False), [], "srflownet", 2),
                                                         ((False, False), [], "srflownet", 2)])
def test_flow_run_reads_each_frame_once(tmp_path, monkeypatch, capsys, grey, extra, model, decodes):
    from flownet import get_estimator
    from flownet.io import read_flo, read_image
    a, b = _pair(tmp_path, grey)
    reads, decoded = [], []
    read_bytes, read_frame = Path.read_bytes, frame_io.read_frame

    def counting_read_bytes(self):
        if self.name in (a.name, b.name):
            reads.append(self.name)
        return read_bytes(self)

    def counting_read_frame(path, flag=None, data=None):
        decoded.append(Path(path).name)
        return read_frame(path, flag, data)

    monkeypatch.setattr(Path, "read_bytes", counting_read_bytes)
    monkeypatch.setattr(frame_io, "read_frame", counting_read_frame)
    rc = main(["flow", "run", str(a), str(b), "--out", str(tmp_path / "o.png"), "--flo", str(tmp_path / "o.flo"),
               "--model", model, *extra])
    assert rc == 0
    assert sorted(reads) == sorted([a.name, b.name])                       # each file read from disk once
    assert sorted(decoded) == sorted([a.name, b.name] * decodes)           # and decoded once (twice before)
    monkeypatch.undo()
    assert ("note:" in capsys.readouterr().out) == (grey[0] != grey[1] and model == "srflownet")
    i1, i2 = read_image(a, gray=True), read_image(b, gray=True)
    want = get_estimator(model).estimate(i1[None], i2[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(read_flo(tmp_path / "o.flo")[0], want)


def test_flow_run_narrow_16_bit_frame_still_named(tmp_path, capsys):
    """A 16-bit frame of 12-bit data is refused by name (now from the one decode of each file); a 16-bit frame using
    the whole range is read as 8 bits, as read_image reads it (grey, for the classical method)."""
    from flownet.io import read_flo, read_image
    a, _ = _pair(tmp_path, (False, False))
    full = tmp_path / "full16.png"
    cv2.imwrite(str(full), np.roll(cv2.imread(str(a)), 1, axis=1).astype(np.uint16) * 257)
    narrow = tmp_path / "narrow16.png"
    twelve = cv2.imread(str(a)).astype(np.uint16) * 16                                  # 12-bit data
    cv2.imwrite(str(narrow), twelve)
    rc = main(["flow", "run", str(a), str(narrow), "--out", str(tmp_path / "o.png"), "--model", "farneback"])
    err = capsys.readouterr().err
    assert rc != 0 and f"{narrow} is a 16-bit image whose values reach only {twelve.max()} of 65535" in err
    assert main(["flow", "run", str(a), str(full), "--out", str(tmp_path / "o.png"), "--flo", str(tmp_path / "o.flo"),
                 "--model", "farneback"]) == 0
    from flownet import get_estimator
    want = get_estimator("farneback").estimate(read_image(a, gray=True)[None], read_image(full, gray=True)[None])[0]
    np.testing.assert_array_equal(read_flo(tmp_path / "o.flo")[0], want.permute(1, 2, 0).numpy())
