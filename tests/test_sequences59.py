"""Cached sequences (``sequences: true``, fifty-ninth session): a clip whose offset is before its onset (a sheet's
typo accepted with a warning) gets a 0-length uint8 sequence and a manifest note, not an object array that
:meth:`PreparedFrames.sequence` cannot load; every sequence keeps its frame numbers
(:meth:`PreparedFrames.sequence_frames`), so that a frame is found by number when frames are missing on disk; a
sequence whose apex is after its offset runs to the apex. Frames are made here: frame n is a grey image of value
10 n (tests/_clip_records.py), so a cached frame tells which frame it came from."""
from __future__ import annotations

import numpy as np
import pytest

from _clip_records import casme2_sheet, grey_frames
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
    """A sheet row's quirk (a clip list refuses an offset before the apex, tests/test_review64a.py)."""
    root = tmp_path / "casme2"
    grey_frames(root / "sub01" / "EP01_01", range(1, 11))
    sheet = casme2_sheet(root, "1,EP01_01,4,6,3,4,happiness")
    p = prep.prepare_dataset(prep.PrepareConfig(
        datasets=[prep.DatasetSpec(name="casme2", root=str(root), annotations=str(sheet))], color=color,
        cache_root=str(tmp_path / "cache"), size=16, sequences=True, workers=1, progress=False))
    seq = p.frames.sequence(0)
    assert seq.dtype == np.uint8 and seq.shape == (0,) + trailing
    assert p.frames.sequence_frames(0).shape == (0,)
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


def test_sequence_frames_give_each_frame_its_number_when_frames_are_missing(tmp_path):
    p = _prepare(tmp_path, onset=2, apex=5, offset=9, numbers=[n for n in range(1, 11) if n not in (3, 4)])
    seq, nums = p.frames.sequence(0), p.frames.sequence_frames(0)
    assert nums.tolist() == [2, 5, 6, 7, 8, 9] and np.issubdtype(nums.dtype, np.integer)
    assert _numbers(seq) == nums.tolist()
    m = p.manifest.iloc[0]
    apex_at = int(np.flatnonzero(nums == m["apex"])[0])
    assert np.array_equal(seq[apex_at], p.frames.apex[0])
    assert not np.array_equal(seq[int(m["apex"] - m["seq_first"])], p.frames.apex[0])   # the wrong way to index


def test_a_sequence_whose_apex_is_after_its_offset_runs_to_the_apex(tmp_path):
    """A sheet row's quirk (a clip list refuses such a row, tests/test_rawprep64.py)."""
    root = tmp_path / "casme2"
    grey_frames(root / "sub01" / "EP01_01", range(1, 11))
    sheet = casme2_sheet(root, "1,EP01_01,2,8,6,4,happiness")
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="casme2", root=str(root), annotations=str(sheet))],
                             cache_root=str(tmp_path / "cache"), size=16, sequences=True, workers=1, progress=False)
    p = prep.prepare_dataset(cfg)
    nums = p.frames.sequence_frames(0)
    assert nums.tolist() == list(range(2, 9))
    assert _numbers(p.frames.sequence(0)) == nums.tolist()
    m = p.manifest.iloc[0]
    assert (m["seq_first"], m["seq_last"]) == (2, 8) and "apex 8 is after offset 6" in m["notes"]


def test_sequence_frames_without_sequences_or_of_an_older_cache_say_what_to_do(tmp_path):
    p = _prepare(tmp_path / "a", onset=2, apex=5, offset=9, sequences=False)
    with pytest.raises(FileNotFoundError, match="prepare with sequences: true"):
        p.frames.sequence_frames(0)
    q = _prepare(tmp_path / "b", onset=2, apex=5, offset=9)
    (q.cache_dir / "sequences" / "00000_frames.npy").unlink()          # as a cache of an older icegan
    with pytest.raises(FileNotFoundError, match=r"clips/me/c1.*delete the folder .* prepare again"):
        q.frames.sequence_frames(0)


def test_only_a_sequences_cache_changes_its_key(tmp_path):
    """The sequences' layout changed (frame numbers kept, the apex inside): a ``sequences: true`` cache gets a new
    key, so an older one (without frame numbers) is not a cache hit; every other cache keeps its key."""
    p = _prepare(tmp_path, onset=2, apex=5, offset=9)
    rec = prep.dataset_records(prep.DatasetSpec(name="clips", root=str(tmp_path / "c1.csv")))[0]
    on, off = (prep._settings(prep.PrepareConfig(size=16, sequences=s)) for s in (True, False))
    assert prep.key_settings(on, [(rec, "cropped")])["sequences_version"] == prep.SEQUENCES_VERSION
    assert "sequences_version" not in prep.key_settings(off, [(rec, "cropped")])
    assert p.cache_dir.name == prep.inputs_hash([(rec, "cropped")], on)


def test_a_kept_result_of_an_older_version_without_frame_numbers_still_makes_a_cache_without_sequences(tmp_path):
    """A cache without sequences keeps its key, so a stopped prepare's kept clip result (``.partial-<hash>``) written
    by an older version, which has no ``sequence_frames``, is read by the next prepare of the same inputs."""
    frames = grey_frames(tmp_path / "c1")
    csv = tmp_path / "c1.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,c1,{frames},2,5,9\n")
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv))],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    rec = prep.dataset_records(cfg.datasets[0])[0]
    settings = prep._settings(cfg)
    old = prep.process_clip(rec, "cropped", settings)
    del old["sequence_frames"]
    partial = tmp_path / "cache" / f".partial-{prep.inputs_hash([(rec, 'cropped')], settings)}"
    partial.mkdir(parents=True)
    prep._keep_partial(partial, old)
    p = prep.prepare_dataset(cfg)
    assert len(p) == 1 and np.array_equal(p.frames.apex[0], old["apex_img"]) and not partial.exists()
