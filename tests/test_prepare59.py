"""Preparation audit (fifty-ninth session): a clip skipped for a read error of the file system (permission denied,
EIO) is prepared again by the next prepare instead of staying skipped in the cache for good; a cache folder left
without its COMPLETE marker (an interrupted copy) is replaced by the next prepare instead of failing every run;
subject folders that differ only in letter case (sub02 and Sub02) are named in data check and in prepare's skip
reasons; a ``sequences: true`` cache notes the frames missing on disk that its sequence leaves out. Frames are made
here (a few pixels) except for the case tests, which copy small CASME II clips into tmp_path."""
from __future__ import annotations

import logging
import os
import pathlib
import shutil

import cv2
import numpy as np
import pytest

from icegan.data import prepare as prep
from icegan.data.check import check_dataset


def _clips(tmp_path, frames=range(1, 10), clips=("take1",)):
    """A clip list of clips p01/<name> of random grey 24 x 24 frames img<n>.png, onset 1, apex 5, offset 9."""
    rng = np.random.default_rng(0)
    lines = ["subject,clip,frames,onset,apex,offset,label"]
    for name in clips:
        d = tmp_path / name
        d.mkdir(parents=True)
        for n in frames:
            cv2.imwrite(str(d / f"img{n}.png"), rng.integers(0, 256, (24, 24), dtype=np.uint8))
        lines.append(f"p01,{name},{name},1,5,9,positive")
    csv = tmp_path / "clips.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def _cfg(tmp_path, csv, **kw):
    return prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv))],
                              cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False, **kw)


def _unreadable_once(monkeypatch, path: pathlib.Path):
    """Make ``path`` unreadable for the next read: ``chmod 000`` when this process is not root (root reads it
    anyway), else a ``Path.read_bytes`` that raises PermissionError for it until :func:`restore` is called."""
    if os.geteuid() != 0:
        path.chmod(0)
        return lambda: path.chmod(0o644)
    real = pathlib.Path.read_bytes
    blocked = [True]

    def read_bytes(self):
        if blocked[0] and os.path.abspath(self) == os.path.abspath(path):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)
    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    return lambda: blocked.__setitem__(0, False)


# ------------------------------------------------------------------------------ 1: a read error is not cached for good

def test_a_clip_skipped_for_permission_denied_is_prepared_once_the_file_can_be_read(tmp_path, monkeypatch, caplog):
    """Clip take2's apex frame cannot be read (Permission denied): the first prepare skips it, saying it will be
    prepared again, and does not mark its cache complete; after the permission is fixed the same prepare (same
    inputs: chmod changes no size or mtime) prepares take2 only, taking take1 from the kept results, and the cache
    is complete with both clips."""
    csv = _clips(tmp_path, clips=("take1", "take2"))
    restore = _unreadable_once(monkeypatch, tmp_path / "take2" / "img5.png")
    first = prep.prepare_dataset(_cfg(tmp_path, csv))
    assert list(first.manifest["clip"]) == ["take1"]
    (reason,) = first.skipped.loc[first.skipped["key"] == "clips/p01/take2", "reason"]
    assert "Permission denied" in reason and "prepared again" in reason, reason
    assert not (first.cache_dir / "COMPLETE").exists()
    restore()
    with caplog.at_level(logging.INFO, logger="icegan.data"):
        again = prep.prepare_dataset(_cfg(tmp_path, csv))
    assert again.cache_dir == first.cache_dir
    assert list(again.manifest["clip"]) == ["take1", "take2"] and len(again.skipped) == 0
    assert (again.cache_dir / "COMPLETE").is_file()
    assert "1 of 2 clips were prepared by a run that stopped" in caplog.text
    assert not list((tmp_path / "cache").glob(".partial-*")) and not list((tmp_path / "cache").glob(".tmp-*"))
    assert np.array_equal(again.frames.onset[0], first.frames.onset[0])
    # a third run is a plain cache hit
    assert len(prep.prepare_dataset(_cfg(tmp_path, csv)).manifest) == 2


def test_a_neighbour_replaced_for_a_read_error_is_read_again_by_the_next_prepare(tmp_path, monkeypatch):
    """Apex+1 (frame 6) cannot be read: the clip is prepared with the nearest frame, the apex 5, in its place, but
    the cache is not marked complete; once readable, the next prepare uses frame 6."""
    csv = _clips(tmp_path)
    restore = _unreadable_once(monkeypatch, tmp_path / "take1" / "img6.png")
    first = prep.prepare_dataset(_cfg(tmp_path, csv))
    assert first.manifest["apex_p1"].iloc[0] == 5 and not (first.cache_dir / "COMPLETE").exists()
    restore()
    again = prep.prepare_dataset(_cfg(tmp_path, csv))
    assert again.manifest["apex_p1"].iloc[0] == 6 and (again.cache_dir / "COMPLETE").is_file()


def test_a_clip_that_cannot_be_decoded_stays_a_final_skip(tmp_path):
    """A frame that is no image (a fault of the data, not of the file system) is cached as before: the cache is
    complete, and its skip reason says nothing of a retry."""
    csv = _clips(tmp_path, clips=("take1", "take2"))
    (tmp_path / "take2" / "img5.png").write_bytes(b"not an image")
    p = prep.prepare_dataset(_cfg(tmp_path, csv))
    assert (p.cache_dir / "COMPLETE").is_file()
    assert "prepared again" not in p.skipped["reason"].iloc[0]


# ---------------------------------------------------------------------------- 2: a cache folder without COMPLETE

def test_a_cache_folder_left_incomplete_is_replaced_by_the_next_prepare(tmp_path):
    """The cache folder lost its COMPLETE marker and apex.npy (an interrupted copy): the next prepare writes the
    cache again in its place and loads it, instead of failing with 'run icegan prepare again' for ever."""
    csv = _clips(tmp_path)
    first = prep.prepare_dataset(_cfg(tmp_path, csv))
    (first.cache_dir / "COMPLETE").unlink()
    (first.cache_dir / "apex.npy").unlink()
    again = prep.prepare_dataset(_cfg(tmp_path, csv))
    assert again.cache_dir == first.cache_dir and (again.cache_dir / "COMPLETE").is_file()
    assert np.array_equal(again.frames.apex, first.frames.apex)
    assert [d.name for d in (tmp_path / "cache").iterdir()] == [first.cache_dir.name]


def test_a_folder_that_became_complete_meanwhile_is_never_moved_aside(tmp_path, monkeypatch):
    """A complete folder is left alone; one that another process finished between the check and the move aside is
    renamed back in place, with its files; an incomplete one is removed, leaving nothing beside it."""
    final = tmp_path / "abc"
    final.mkdir()
    (final / "COMPLETE").write_text("ok\n")
    (final / "theirs").write_text("x")
    prep._remove_incomplete(final)
    assert (final / "theirs").is_file() and [p.name for p in tmp_path.iterdir()] == ["abc"]
    (final / "COMPLETE").unlink()
    real = os.rename

    def finished_meanwhile(src, dst):
        if pathlib.Path(src) == final:
            (final / "COMPLETE").write_text("ok\n")      # the other process's rename landed just before ours
        real(src, dst)
    monkeypatch.setattr(prep.os, "rename", finished_meanwhile)
    prep._remove_incomplete(final)
    assert (final / "theirs").is_file() and (final / "COMPLETE").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["abc"]
    monkeypatch.setattr(prep.os, "rename", real)
    (final / "COMPLETE").unlink()
    prep._remove_incomplete(final)
    assert not final.exists() and not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- 3: subject folders differing in case

def _case_sensitive(tmp_path) -> bool:
    (tmp_path / "case_probe").mkdir()
    return not (tmp_path / "CASE_PROBE").exists()


def _casme2_copy(shared_data, tmp_path, layout: dict[str, list[str]]):
    """A CASME II root in tmp_path holding ``layout`` (folder name → clip folders of real subject sub02 / sub01
    copied into it); returns (root, sheet)."""
    root = tmp_path / "casme2"
    for folder, clips in layout.items():
        for clip in clips:
            subject, name = clip.split("/")
            shutil.copytree(shared_data / "casme2" / subject / name, root / folder / name)
    return root, shared_data / "annotations" / "CASME2-coding-20140508.xlsx"


def test_subject_folders_differing_in_case_are_named_when_one_is_read(shared_data, tmp_path, caplog):
    """sub02/ holds EP09_10, Sub02/ holds EP15_04: sub02 is read, Sub02's clip was silently missing. Data check and
    prepare name both folders, saying Sub02 is not read."""
    if not _case_sensitive(tmp_path):
        pytest.skip("case-insensitive file system: sub02 and Sub02 cannot both exist")
    root, sheet = _casme2_copy(shared_data, tmp_path, {"sub02": ["sub02/EP09_10"], "Sub02": ["sub02/EP15_04"]})
    rep = check_dataset("casme2", root, sheet, composite_only=False, read_images=False)
    (skip,) = [s["reason"] for s in rep.clips_skipped if s["clip"] == "casme2/sub02/EP15_04"]
    assert "duplicate folders differing only in case" in skip and "Sub02, sub02" in skip and "Sub02 not" in skip
    assert any("duplicate folders differing only in case" in p["problem"] and p["clip"] == "casme2/sub02"
               for p in rep.clips_with_problems)
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="casme2", root=str(root), annotations=str(sheet),
                                                        composite_only=False, clips=["sub02/EP09_10",
                                                                                     "sub02/EP15_04"])],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    with caplog.at_level(logging.WARNING, logger="icegan.data"):
        p = prep.prepare_dataset(cfg)
    assert list(p.manifest["clip"]) == ["EP09_10"]
    (reason,) = p.skipped.loc[p.skipped["key"] == "casme2/sub02/EP15_04", "reason"]
    assert "duplicate folders differing only in case" in reason and "Sub02 not" in reason, reason
    assert "Sub02" in caplog.text


def test_subject_folders_differing_in_case_are_named_when_none_is_read(shared_data, tmp_path):
    """Sub02/ and SUB02/ and no sub02/: neither is read; data check and prepare say so by name instead of 'not on
    disk'."""
    if not _case_sensitive(tmp_path):
        pytest.skip("case-insensitive file system: Sub02 and SUB02 cannot both exist")
    root, sheet = _casme2_copy(shared_data, tmp_path, {"sub01": ["sub01/EP03_02"], "Sub02": ["sub02/EP09_10"],
                                                       "SUB02": ["sub02/EP15_04"]})
    rep = check_dataset("casme2", root, sheet, composite_only=False, read_images=False)
    what = rep.subjects_not_folders["casme2/sub02"]
    assert "duplicate folders differing only in case" in what and "SUB02, Sub02" in what, what
    assert "SUB02, Sub02" in rep.text()
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="casme2", root=str(root), annotations=str(sheet),
                                                        composite_only=False,
                                                        clips=["sub01/EP03_02", "sub02/EP09_10"])],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    p = prep.prepare_dataset(cfg)
    (reason,) = p.skipped.loc[p.skipped["key"] == "casme2/sub02/EP09_10", "reason"]
    assert "duplicate folders differing only in case" in reason and "SUB02, Sub02" in reason, reason
    assert "not on disk" not in reason


def test_a_clip_folder_read_beside_one_differing_in_case_is_a_warning(tmp_path):
    """sub01/EP02_01f is read and sub01/ep02_01f beside it is not: record_problems warns, naming both."""
    import dataclasses

    from _clip_records import clip_record, problems
    if not _case_sensitive(tmp_path):
        pytest.skip("case-insensitive file system: EP02_01f and ep02_01f cannot both exist")
    subject = tmp_path / "sub01"
    (subject / "EP02_01f").mkdir(parents=True)
    (subject / "ep02_01f").mkdir()
    rec = dataclasses.replace(clip_record(tmp_path), clip_dir=subject / "EP02_01f", subject_dir=subject)
    (warn,) = [(p, sev) for p, sev in problems(rec) if "differing only in case" in p]
    assert warn[1] == "warn" and "EP02_01f, ep02_01f; only EP02_01f is read, ep02_01f not used" in warn[0], warn


# ------------------------------------------------------------------------ 4: frames missing from a sequence, noted

def test_frames_missing_on_disk_are_noted_when_left_out_of_the_sequence(tmp_path):
    """Frames 2 and 8 of onset..offset 1..9 are not on disk (neither a key frame: the apex 5's neighbours are 3, 4,
    6, 7): the sequence holds the 7 others, and the manifest's notes list the two as left out."""
    csv = _clips(tmp_path, frames=[1, 3, 4, 5, 6, 7, 9])
    p = prep.prepare_dataset(_cfg(tmp_path, csv, sequences=True))
    assert p.frames.sequence(0).shape == (7, 16, 16)
    notes = p.manifest["notes"].iloc[0]
    assert notes == "sequence frames missing, left out: 2, 8", notes


def test_a_whole_sequence_has_no_missing_frame_note(tmp_path):
    p = prep.prepare_dataset(_cfg(tmp_path, _clips(tmp_path), sequences=True))
    assert "missing" not in p.manifest["notes"].iloc[0]
