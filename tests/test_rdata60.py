"""Review of the data audit 60 (commits 5c634fb, dc1ea43): SMIC clip folders of one name in the folders of two
classes (not one clip copied twice: the class is ambiguous), no case-twin warning on the SMIC clip that is read, a
clip list whose frames folder is a symbolic link loop (reported, no traceback), and a prepare replacing a RETRY cache:
a leftover ``.incomplete-<hash>-<pid>`` folder of a killed prepare (removed, or named when it cannot be), a RETRY
cache a concurrent prepare puts in place between the check and the rename (kept), a cache folder that is a relative
symbolic link (its target named resolved)."""
from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil

import pytest

from icegan.data import prepare as prep
from icegan.data.check import SKIP, check_dataset
from icegan.data.smic import SMIC
from test_data60 import _clip, _prepare
from test_prepare59 import _cfg, _clips, _unreadable_once
from test_prepare60 import _leftovers, _move_and_link


# ------------------------------------------------------------------------------------------------------ SMIC

def test_smic_clip_folders_of_one_name_in_two_class_folders_are_both_skipped(tmp_path):
    """negative/take1 and positive/take1 (names not of the s1_ne_01 form) were taken for one clip copied twice: the
    negative one was read, the positive one skipped with 'merge it into negative/take1'. They are two folders of
    different classes under one clip name: the class is ambiguous, and both are skipped, by check and prepare alike,
    each reason naming both folders."""
    micro = tmp_path / "HS" / "s1" / "micro"
    for folder in ("negative/take1", "positive/take1"):
        _clip(micro / folder)
    _clip(tmp_path / "HS" / "s2" / "micro" / "negative" / "s2_ne_01")
    ds = SMIC(tmp_path)
    assert [r.key for r in ds.records()] == ["smic/s2/s2_ne_01"]
    why = (f"clip folders {micro / 'negative' / 'take1'} and {micro / 'positive' / 'take1'} name one clip, "
           f"smic/s1/take1, in the folders of different classes (negative, positive): its class is ambiguous, so "
           f"none of them is read (keep the clip in the folder of its class only, or rename the folder of another "
           f"clip)")
    assert ds.skipped_clip_folders == [("smic/s1/micro/negative/take1", why), ("smic/s1/micro/positive/take1", why)]
    rep = check_dataset("smic", tmp_path, read_images=False)
    assert (rep.clip_folders_on_disk, rep.clips_usable) == (3, 1)
    assert [(s["clip"], s["reason"]) for s in rep.clips_skipped] == ds.skipped_clip_folders
    assert not [p for p in rep.clips_with_problems if "merge it into" in p["problem"]]
    assert list(_prepare(tmp_path, tmp_path).manifest["key"]) == ["smic/s2/s2_ne_01"]


def test_check_warns_of_no_case_twin_on_the_smic_clip_read(tmp_path):
    """positive/s1_po_01 beside positive/S1_PO_01: SMIC reads s1_po_01 and skips S1_PO_01 naming both; data check
    also warned on the clip read, 'duplicate folders differing only in case ... only s1_po_01 is read', the same
    twin said twice. The skip is the one problem."""
    micro = tmp_path / "HS" / "s1" / "micro"
    for folder in ("positive/s1_po_01", "positive/S1_PO_01"):
        _clip(micro / folder)
    rep = check_dataset("smic", tmp_path, read_images=False)
    assert rep.clips_usable == 1
    assert [(p["clip"], p["severity"]) for p in rep.clips_with_problems] == [("smic/s1/micro/positive/S1_PO_01", SKIP)]
    assert not [p for p in rep.clips_with_problems if "differing only in case" in p["problem"]]


# -------------------------------------------------------------------------------------------------- clip list

def test_clip_list_frames_folder_that_is_a_link_loop_is_reported_not_a_traceback(tmp_path):
    """A frames cell naming a symbolic link to itself: icegan data check stopped with 'RuntimeError: Symlink loop'
    (Path.resolve, Python 3.11); it is reported as a folder not found, the clip skipped."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    csv = tmp_path / "list.csv"
    csv.write_text("subject,clip,frames,onset,apex\np01,take1,loop,2,5\n")
    rep = check_dataset("clips", csv, read_images=False)
    assert rep.clips_skipped == [{"clip": "clips/p01/take1",
                                  "reason": f"in the clip list but missing on disk (clip folder {loop} not found)"}]


# ----------------------------------------------------------------------- prepare: replacing a RETRY cache folder

def _retry_cache(tmp_path, monkeypatch) -> tuple[pathlib.Path, pathlib.Path]:
    """A clip list of take1 and take2 and the RETRY cache of a prepare that could not read take2's apex frame, every
    frame readable again: (clip list, cache folder)."""
    csv = _clips(tmp_path, clips=("take1", "take2"))
    restore = _unreadable_once(monkeypatch, tmp_path / "take2" / "img5.png")
    final = prep.prepare_dataset(_cfg(tmp_path, csv)).cache_dir
    restore()
    assert (final / prep.RETRY_MARKER).is_file()
    return csv, final


def _leftover(final: pathlib.Path) -> pathlib.Path:
    """A ``.incomplete-<hash>-<pid>`` folder of this process's pid beside ``final``, holding a file, as a prepare
    killed while it removed the folder leaves it (a process that had this pid)."""
    aside = final.with_name(f".incomplete-{final.name}-{os.getpid()}")
    aside.mkdir()
    (aside / "onset.npy").write_bytes(b"left by a killed prepare")
    return aside


def test_a_leftover_incomplete_folder_of_this_pid_is_removed_and_the_retry_cache_replaced(tmp_path, monkeypatch):
    """A killed prepare that had this process's pid left .incomplete-<hash>-<pid>: it is removed, and the RETRY
    cache moved aside in its place and replaced by the complete cache of both clips, leaving no temporary."""
    csv, final = _retry_cache(tmp_path, monkeypatch)
    _leftover(final)
    ds = prep.prepare_dataset(_cfg(tmp_path, csv))
    assert ds.cache_dir == final and (final / "COMPLETE").is_file() and not (final / prep.RETRY_MARKER).exists()
    assert list(ds.manifest["clip"]) == ["take1", "take2"]
    assert _leftovers(tmp_path / "cache") == []


def test_a_leftover_incomplete_folder_that_cannot_be_removed_is_named(tmp_path, monkeypatch):
    """The leftover cannot be removed (another user's, an immutable folder): the error said the cache folder could
    not be renamed ('Directory not empty') and to delete the cache folder; it names the leftover, to delete. The
    RETRY cache is untouched and the new cache not left behind."""
    csv, final = _retry_cache(tmp_path, monkeypatch)
    aside = _leftover(final)
    real = shutil.rmtree

    def rmtree(path, *args, **kwargs):              # fails on the leftover, silently as with ignore_errors=True
        if pathlib.Path(path) != aside:
            real(path, *args, **kwargs)
    monkeypatch.setattr(prep.shutil, "rmtree", rmtree)
    with pytest.raises(prep.PrepareError) as err:
        prep.prepare_dataset(_cfg(tmp_path, csv))
    assert str(err.value) == (
        f"prepare: cannot replace the cache folder {final} (its clips met read errors of the file system, prepared "
        f"again now): {aside}, left by a prepare that was killed, is in the way and cannot be removed; delete {aside} "
        f"(ask its owner if it is not yours) and run the command again")
    assert (final / prep.RETRY_MARKER).is_file() and list(prep.load_prepared(final).manifest["clip"]) == ["take1"]
    assert _leftovers(tmp_path / "cache") == [aside.name]


def test_a_retry_cache_put_in_place_between_the_check_and_the_rename_is_kept(tmp_path, monkeypatch, caplog):
    """Another prepare of the same clips (a torchrun rank) replaces the RETRY cache found at the start by its own
    RETRY cache just after this prepare checked the folder and before it moves it aside: the folder moved aside is
    that other cache, which is renamed back and loaded, not deleted under the process reading it."""
    csv, final = _retry_cache(tmp_path, monkeypatch)
    _unreadable_once(monkeypatch, tmp_path / "take2" / "img5.png")          # a RETRY cache again
    theirs = json.dumps({"casme2/p01/take2": "written by the other prepare"})
    real = os.rename
    done: list[bool] = []

    def rename(src, dst):
        if pathlib.Path(src) == final and pathlib.Path(dst).name.startswith(".incomplete-") and not done:
            done.append(True)
            other = final.with_name(".other")
            shutil.copytree(final, other)
            (other / prep.RETRY_MARKER).unlink()
            (other / prep.RETRY_MARKER).write_text(theirs)     # a new marker file: another RETRY cache
            shutil.rmtree(final)
            real(other, final)
        real(src, dst)
    monkeypatch.setattr(prep.os, "rename", rename)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="icegan.data"):
        ds = prep.prepare_dataset(_cfg(tmp_path, csv))
    assert done and ds.cache_dir == final and (final / prep.RETRY_MARKER).read_text() == theirs
    assert "another prepare of the same clips and settings put its cache" in caplog.text
    assert _leftovers(tmp_path / "cache") == []


def test_a_relative_symbolic_link_cache_folder_is_refused_naming_its_target_resolved(tmp_path, monkeypatch):
    """A RETRY cache moved to another disk and linked back by a relative link (../bigdisk/<hash>): the error named
    the target as the link holds it, relative to nothing the user sees; it names the resolved target, and says the
    cache root may be set to the target's folder."""
    csv, final = _retry_cache(tmp_path, monkeypatch)
    target = _move_and_link(final, tmp_path / "bigdisk")
    final.unlink()
    final.symlink_to(pathlib.Path("..") / "bigdisk" / final.name)
    with pytest.raises(prep.PrepareError) as err:
        prep.prepare_dataset(_cfg(tmp_path, csv))
    msg = str(err.value)
    assert f"the cache folder {final} is a symbolic link to {target}, which holds no complete cache" in msg, msg
    assert msg.endswith(f"or set cache_root (data.prepare.cache_root in train.py) to {target.parent} to prepare it "
                        f"there"), msg
