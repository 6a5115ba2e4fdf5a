"""Cached sequences (``sequences: true``, fifty-ninth session): a clip whose offset is before its onset (a typo
accepted with a warning) gets a 0-length uint8 sequence and a manifest note, not an object array that
:meth:`PreparedFrames.sequence` cannot load. Frames are made here: frame n is a grey image of value
10 n (tests/_clip_records.py), so a cached frame tells which frame it came from."""
from __future__ import annotations

import numpy as np
import pytest

from _clip_records import grey_frames
from icegan.data import prepare as prep


def _prepare(tmp_path, onset, apex, offset, numbers=range(1, 11), sequences=True, color="gray"):
    """Prepare one clip list clip (subject me, clip c1) of frames ``numbers`` with these cells, cropped, size 16."""
    frames = grey_frames(tmp_path / "c1", numbers)
    csv = tmp_path / "c1.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,c1,{frames},{onset},{apex},{offset}\n")
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv))], color=color,
                             cache_root=str(tmp_path / "cache"), size=16, sequences=sequences, workers=1,
                             progress=False)
    return prep.prepare_dataset(cfg)


def _numbers(seq: np.ndarray) -> list[int]:
    """The frame number each cached frame came from (value 10 n)."""
    return [int(round(float(im.mean()) / 10)) for im in seq]


@pytest.mark.parametrize("color, trailing", [("gray", (16, 16)), ("rgb", (16, 16, 3))])
def test_an_offset_before_the_onset_gives_an_empty_sequence_with_a_note(tmp_path, color, trailing):
    p = _prepare(tmp_path, onset=4, apex=6, offset=3, color=color)
    seq = p.frames.sequence(0)
    assert seq.dtype == np.uint8 and seq.shape == (0,) + trailing
    # the file itself loads without pickles (it held array(None, dtype=object) before)
    assert np.load(p.cache_dir / "sequences" / "00000.npy", allow_pickle=False).shape == (0,) + trailing
    note = p.manifest["notes"][0]
    assert "sequence empty" in note and "offset 3 is before onset 4" in note, note
    assert p.manifest["seq_first"].isna().all() and p.manifest["seq_last"].isna().all()


def test_an_object_array_left_by_an_older_cache_is_a_clear_error_naming_the_clip(tmp_path):
    p = _prepare(tmp_path, onset=2, apex=5, offset=9)
    np.save(p.cache_dir / "sequences" / "00000.npy", np.array(None, dtype=object), allow_pickle=True)
    with pytest.raises(prep.PrepareError, match=r"clips/me/c1.*00000\.npy.*delete the folder .* prepare again"):
        p.frames.sequence(0)
