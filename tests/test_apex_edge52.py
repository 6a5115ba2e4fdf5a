"""An apex spotted on the first or last frame of the range searched (no motion peak inside the clip: a drift, a blink or
a head move at its end) is noted on the clip and warned about; the spotted frame itself is unchanged."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from icegan.data.clip_list import ClipList
from icegan.data.spotting import edge_apex_note, is_edge_apex_note, spot_record_apex

N = 15          # frames 101..115 of each synthetic clip


def _texture(seed: int, size: int = 80) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur((rng.random((size, size)) * 255).astype(np.uint8), (0, 0), 2.0)
    return cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)


def _shift(img: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    return cv2.warpAffine(img, np.float32([[1, 0, dx], [0, 1, dy]]), img.shape[::-1], borderMode=cv2.BORDER_REFLECT)


def _clip(folder: Path, motion, seed: int) -> None:
    """Frames img101.. of a textured face whose central patch moves by motion[t] pixels."""
    folder.mkdir(parents=True)
    base = _texture(seed)
    for t, s in enumerate(motion):
        img = base.copy()
        img[30:50, 25:55] = _shift(base, s, 0.5 * s)[30:50, 25:55]
        cv2.imwrite(str(folder / f"img{101 + t}.png"), img)


GROWING = [3.0 * t / (N - 1) for t in range(N)]              # still moving at the last frame: no peak inside
PEAKED = [3.0 * np.sin(np.pi * t / (N - 1)) for t in range(N)]   # largest at frame 108, back to rest at 115


def _clip_list(tmp_path: Path, offset: str = "115") -> Path:
    _clip(tmp_path / "grow", GROWING, seed=1)
    _clip(tmp_path / "peak", PEAKED, seed=2)
    csv = tmp_path / "clips.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset,label\n"
                   f"me,grow,grow,101,,{offset},negative\nme,peak,peak,101,,{offset},positive\n")
    return csv


def test_apex_spotted_on_the_last_frame_is_noted(tmp_path):
    """The spotter picks the last frame of a clip whose motion grows to its end (as it did for a copy of CASME II
    sub03/EP19_08: frame 141, its offset, for the sheet's apex 121): the record says so, and what to do."""
    grow, peak = ClipList(_clip_list(tmp_path)).records()
    spotted = spot_record_apex(grow)
    assert spotted.apex == 115                                  # the spotting's result is kept as it was
    [note] = spotted.notes
    assert note.startswith("apex spotted at frame 115, the last frame of the range searched (frames 102-115")
    assert "up to the offset 115" in note and "no peak inside the clip" in note
    assert "check the clip" in note and "apex cell" in note and "; " not in note     # one note of the manifest's
    assert is_edge_apex_note(note)
    clear = spot_record_apex(peak)
    assert 105 <= clear.apex <= 111 and clear.notes == ()       # a peak inside the clip: no note
    assert spot_record_apex(grow, method="middle").notes == ()  # the middle frame is chosen, not found


def test_edge_note_first_frame_and_no_offset(tmp_path):
    """The first frame after the onset is an edge too; without an offset the range ends at the clip's last frame;
    a clip whose range has no inner frame (2 frames: no choice) gets no note."""
    rec = ClipList(_clip_list(tmp_path, offset="")).records()[0]
    numbers = list(range(101, 116))
    first = edge_apex_note(rec, numbers, 1)
    assert first.startswith("apex spotted at frame 102, the first frame of the range searched")
    assert "up to the clip's last frame" in first and "at its start" in first
    assert "at its end" in edge_apex_note(rec, numbers, 14)
    assert edge_apex_note(rec, numbers, 7) is None and edge_apex_note(rec, [101, 102], 1) is None
    assert not is_edge_apex_note("apex 150 is after offset 141 (sheet row 3): one of the two cells is wrong")


def test_edge_apex_is_in_the_manifest_and_warned(tmp_path, caplog):
    """Prepared through the main job's preprocessing (as `icegan features --clips ... --clips-mode cropped`): the note
    is in the manifest's notes and the console warns about the clip, not about the one with a peak."""
    from icegan.pipeline import load_main_config, load_samples, with_clip_list
    cfg = load_main_config("configs/casme2.yaml", ["device=cpu", "data.prepare.workers=1",
                                                   f"data.prepare.cache_root={tmp_path / 'cache'}"])
    cfg = with_clip_list(cfg, _clip_list(tmp_path), mode="cropped")
    with caplog.at_level("INFO"):
        clips = load_samples(cfg, progress=False)
    assert clips.samples["clip"].tolist() == ["grow", "peak"]
    manifest = pd.read_csv(next((tmp_path / "cache").glob("*/manifest.csv")), keep_default_na=False)
    notes = dict(zip(manifest["clip"], manifest["notes"]))
    assert any(is_edge_apex_note(n) for n in notes["grow"].split("; ")) and "apex spotted" not in notes["peak"]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(w.startswith("clips/me/grow: apex spotted at frame 115, the last frame of the range searched")
               for w in warned), warned
    assert not any("clips/me/peak" in w for w in warned)
