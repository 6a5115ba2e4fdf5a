"""Face preprocessing audit (fifty-sixth session): the alignment search of a clip whose onset has no face reads its
frames as every other frame of the clip (same size as the onset, a broken one passed over); apex neighbours stay
inside onset..offset; a folder of images none of which is a frame says why; the 'middle' apex is the middle of the
clip, not of the frames present; two dataset entries holding one clip are refused. Expected values are worked out
by hand in the docstrings."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from _clip_records import clip_record, grey_frames, problems

from icegan.data import prepare as prep
from icegan.data.records import ClipRecord


def _clip(tmp_path, onset=2, apex=5, offset=10):
    """A clip list clip of :func:`grey_frames` 1..10 (40 x 40, grey level 10 n)."""
    frames = grey_frames(tmp_path / "c1")
    csv = tmp_path / "c1.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,c1,{frames},{onset},{apex},{offset}\n")
    return prep.dataset_records(prep.DatasetSpec(name="clips", root=str(csv)))[0]


# ------------------------------------------------------------------------------------------------ D1, D2: alignment

def test_the_alignment_search_passes_over_a_frame_of_another_size(tmp_path, stand_in_faces):
    """No face on the onset frame 2 (grey 20); frame 1, one frame before it, is 20 x 20 (another release's frame):
    the alignment of a 40 x 40 clip must not be computed on it. Frame 3 (a face, 40 x 40) is the next nearest:
    the clip is aligned there, and the manifest's notes say why frame 1 was not."""
    rec = _clip(tmp_path)
    cv2.imwrite(str(rec.frame_path(1)), np.full((20, 20), 10, np.uint8))
    stand_in_faces.add(20)
    out = prep.process_clip(rec, "raw", prep._settings(prep.PrepareConfig(size=20)))
    assert "error" not in out, out
    assert out["align_frame"] == 3
    assert "no face on onset frame 2; aligned on frame 3" in out["notes"]
    assert "frame 1 (img1.png)" in out["notes"] and "20×20" in out["notes"]


def test_a_broken_frame_merely_tried_for_the_alignment_does_not_drop_the_clip(tmp_path, stand_in_faces):
    """No face on the onset frame 2; frame 1 cut short (half its bytes): it is passed over, not a reason to skip the
    clip (only an unreadable onset or apex is); the clip is aligned on frame 3 with a note naming img1.png."""
    rec = _clip(tmp_path)
    data = rec.frame_path(1).read_bytes()
    rec.frame_path(1).write_bytes(data[: len(data) // 2])
    stand_in_faces.add(20)
    out = prep.process_clip(rec, "raw", prep._settings(prep.PrepareConfig(size=20)))
    assert "error" not in out, out
    assert out["align_frame"] == 3 and "img1.png" in out["notes"]


def test_no_readable_face_frame_still_says_how_many_frames_were_tried(tmp_path, stand_in_faces):
    """No face on any of the 10 frames, frame 1 cut short: the clip is skipped; the 9 readable frames were tried
    (the onset and 8 others) and the unreadable one is counted apart."""
    rec = _clip(tmp_path)
    rec.frame_path(1).write_bytes(b"\x89PNG\r\n")
    stand_in_faces.update(range(10, 101, 10))
    out = prep.process_clip(rec, "raw", prep._settings(prep.PrepareConfig(size=20)))
    assert out["error"].startswith("no face detected on the onset frame 2 nor on its 8 nearest frames")
    assert "1 other frame(s) unreadable or of another size" in out["error"]


# ------------------------------------------------------------------------------------------------ D3: neighbours

def _rec(onset, apex, offset, frames):
    return ClipRecord(dataset="samm", subject="samm/032", clip="032_3_2", emotion="x", class3=0, onset=onset,
                      apex=apex, offset=offset, frame_numbers=tuple(frames),
                      frame_paths=tuple(prep.Path(f"/nowhere/{n}.jpg") for n in frames))


def test_apex_neighbours_stop_after_the_onset():
    """SAMM 032_3_2: onset 5126, apex 5127. apex−2 = 5125 and apex−1 = 5126 are at or before the onset (neutral
    face): each is replaced by the nearest frame after the onset, the apex 5127 itself (distance 2 and 1, against
    5128's 3 and 2); apex+1, apex+2 are 5128, 5129."""
    nb, notes = prep.select_neighbours(_rec(5126, 5127, 5140, range(5120, 5141)), 5127)
    assert nb == [5127, 5127, 5128, 5129]
    assert "apex-2 frame 5125 at or before the onset 5126, used 5127" in notes
    assert "apex-1 frame 5126 at or before the onset 5126, used 5127" in notes


def test_apex_neighbours_stop_at_the_offset():
    """Onset 10, apex 19, offset 20, frames 10..25 on disk: apex+1 = 20 is the offset (kept), apex+2 = 21 is after
    it and is replaced by the nearest frame inside, 20."""
    nb, notes = prep.select_neighbours(_rec(10, 19, 20, range(10, 26)), 19)
    assert nb == [17, 18, 20, 20]
    assert notes == ["apex+2 frame 21 after the offset 20, used 20"]


def test_apex_neighbours_of_an_offset_before_the_apex_are_not_capped():
    """An offset before the apex (one of the sheet's cells is wrong, the apex used as written): no offset bound, as
    before (apex+1, apex+2 = 20, 21 on disk)."""
    nb, notes = prep.select_neighbours(_rec(10, 19, 15, range(10, 26)), 19)
    assert nb == [17, 18, 20, 21] and notes == []


# ------------------------------------------------------------------------------------------------ D4: no frames

def test_a_folder_of_images_without_frame_numbers_says_why_none_was_taken(tmp_path):
    """Three images named img46_c.jpg ...: none ends in a frame number; the skip says 3 image files were found and
    why, naming them (not only 'no frame images')."""
    rec = clip_record(tmp_path, frames=())
    for n in (46, 47, 48):
        (rec.clip_dir / f"img{n}_c.jpg").write_bytes(b"x")
    (rec.clip_dir / "notes.txt").write_text("x")
    skip = [p for p, sev in problems(rec) if sev == "skip"]
    assert len(skip) == 1
    assert skip[0].startswith(f"no frame images in {rec.clip_dir}: 3 image file(s) found, none taken: 3 without a "
                              f"frame number at the end of the name (img46_c.jpg, img47_c.jpg, img48_c.jpg)")


def test_a_folder_of_webp_images_says_the_extension_is_not_accepted(tmp_path):
    """Two .webp frames: numbered, but .webp is not an accepted frame extension; the skip says so and lists the
    accepted ones."""
    rec = clip_record(tmp_path, frames=())
    for n in (46, 47):
        (rec.clip_dir / f"img{n}.webp").write_bytes(b"x")
    (skip,) = [p for p, sev in problems(rec) if sev == "skip"]
    assert "2 image file(s) found, none taken: 2 of an extension not accepted (img46.webp, img47.webp)" in skip
    assert "accepted: .jpg, .jpeg, .png, .bmp, .tif, .tiff" in skip


def test_an_empty_folder_still_says_no_frame_images(tmp_path):
    rec = clip_record(tmp_path, frames=())
    assert problems(rec) == [(f"no frame images in {rec.clip_dir}", "skip")]


# ------------------------------------------------------------------------------------------------ D5: middle apex

def test_the_middle_apex_is_the_middle_of_the_clip_not_of_the_frames_present(tmp_path):
    """Onset 46, offset 86, frames 50-69 missing: the clip's middle is 66; the present frame nearest it is 70 (the
    middle of the 21 frames present, 76, is not)."""
    from icegan.data.spotting import spot_record_apex
    nums = [*range(46, 50), *range(70, 87)]
    d = tmp_path / "c"
    d.mkdir()
    for n in nums:
        cv2.imwrite(str(d / f"img{n}.png"), np.full((8, 8), n, np.uint8))
    rec = ClipRecord(dataset="clips", subject="clips/p", clip="c", emotion="x", class3=0, onset=46, apex=None,
                     offset=86, frame_numbers=tuple(nums), frame_paths=tuple(d / f"img{n}.png" for n in nums))
    assert spot_record_apex(rec, method="middle").apex == 70


@pytest.mark.parametrize("onset, offset, apex", [(1, 10, 6), (1, 9, 5), (2, None, 6)])
def test_the_middle_apex_of_a_whole_clip_is_as_before(tmp_path, onset, offset, apex):
    """Every frame present: the frame at index len // 2 of onset..offset, as before (frames 1..10: 6, the later of
    5.5's two; 1..9: 5; no offset, 2..10: 6)."""
    from icegan.data.spotting import spot_record_apex
    d = grey_frames(tmp_path / "c")
    rec = ClipRecord(dataset="clips", subject="clips/p", clip="c", emotion="x", class3=0, onset=onset, apex=None,
                     offset=offset, frame_numbers=tuple(range(1, 11)),
                     frame_paths=tuple(d / f"img{n}.png" for n in range(1, 11)))
    assert spot_record_apex(rec, method="middle").apex == apex


# ------------------------------------------------------------------------------------------------ D6: one key twice

def test_two_entries_holding_one_clip_are_refused_before_any_work(tmp_path, monkeypatch):
    """Two clip lists (one raw, one cropped) that both list clip me/c1 of dataset clips: one key, clips/me/c1, would
    be two manifest rows with results kept by key. Refused, naming both entries and the key, before a clip is
    prepared or a cache folder made."""
    frames = grey_frames(tmp_path / "c1")
    for name in ("a", "b"):
        (tmp_path / f"{name}.csv").write_text(f"subject,clip,frames,onset,apex,offset\nme,c1,{frames},2,5,10\n")
    monkeypatch.setattr(prep, "process_clip", lambda *a: pytest.fail("a clip was prepared"))
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(tmp_path / "a.csv"), mode="raw"),
                                       prep.DatasetSpec(name="clips", root=str(tmp_path / "b.csv"))],
                             cache_root=str(tmp_path / "cache"), workers=1, progress=False)
    with pytest.raises(prep.PrepareError) as e:
        prep.prepare_dataset(cfg)
    msg = str(e.value)
    assert "clips/me/c1" in msg and "datasets.0" in msg and "datasets.1" in msg
    assert str(tmp_path / "a.csv") in msg and str(tmp_path / "b.csv") in msg
    assert not (tmp_path / "cache").exists()
