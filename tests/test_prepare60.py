"""Preparation audit (sixtieth session): putting a new cache in place of a cache folder marked RETRY (or left
without COMPLETE). A folder that cannot be moved aside is an error naming it, not the old cache returned under a
'2 clips prepared' line; a RETRY cache that a concurrent prepare of the same clips (a torchrun rank) wrote while this
one prepared is kept and loaded, not moved aside and deleted under the process reading it; a cache folder that is a
symbolic link holding no complete cache (or a link to nothing) is refused, naming the link, instead of the link being
renamed and the new cache written on another disk. Frames are made here (a few pixels, tests/test_prepare59.py)."""
from __future__ import annotations

import errno
import logging
import os
import pathlib
import shutil

import numpy as np
import pytest

from icegan.data import prepare as prep
from test_prepare59 import _cfg, _clips, _unreadable_once


def _leftovers(root: pathlib.Path) -> list[str]:
    """The temporaries of a prepare left in the cache root ``root`` (.tmp-*, .incomplete-*)."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith((".tmp-", ".incomplete-")))


# ------------------------------------------------------------------ 1: a RETRY folder that cannot be moved aside

def test_a_retry_cache_folder_that_cannot_be_moved_aside_is_an_error_naming_it(tmp_path, monkeypatch, caplog):
    """The RETRY cache of a first prepare cannot be renamed (an immutable folder, one of another user in a sticky
    cache root: EPERM). The next prepare, every frame readable, says so naming the folder, instead of deleting its
    new cache and returning the old one of 1 clip after logging '2 clips prepared'; the old folder is untouched and no
    temporary is left."""
    csv = _clips(tmp_path, clips=("take1", "take2"))
    restore = _unreadable_once(monkeypatch, tmp_path / "take2" / "img5.png")
    final = prep.prepare_dataset(_cfg(tmp_path, csv)).cache_dir
    restore()
    real = os.rename

    def immovable(src, dst):
        if pathlib.Path(src) == final:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(src))
        real(src, dst)
    monkeypatch.setattr(prep.os, "rename", immovable)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="icegan.data"), pytest.raises(prep.PrepareError) as err:
        prep.prepare_dataset(_cfg(tmp_path, csv))
    msg = str(err.value)
    assert f"cannot replace the cache folder {final}" in msg and "Operation not permitted" in msg, msg
    assert "delete that folder" in msg, msg
    assert "clips prepared" not in caplog.text
    assert (final / prep.RETRY_MARKER).is_file() and list(prep.load_prepared(final).manifest["clip"]) == ["take1"]
    assert _leftovers(tmp_path / "cache") == []


def test_a_new_cache_that_cannot_be_put_in_place_is_an_error_not_a_missing_manifest(tmp_path, monkeypatch):
    """Renaming the new cache into place fails for another reason than a cache of another prepare being there (a
    file system refusing it): the error says so, naming the folder, instead of 'not a complete icegan cache:
    manifest.csv missing (run icegan prepare again)'; the new cache is not left behind."""
    csv = _clips(tmp_path)
    real = os.rename

    def refused(src, dst):
        if pathlib.Path(src).name.startswith(".tmp-"):
            raise OSError(errno.EIO, "Input/output error", str(src))
        real(src, dst)
    monkeypatch.setattr(prep.os, "rename", refused)
    with pytest.raises(prep.PrepareError) as err:
        prep.prepare_dataset(_cfg(tmp_path, csv))
    msg = str(err.value)
    assert "cannot put the new cache in place" in msg and "Input/output error" in msg, msg
    assert _leftovers(tmp_path / "cache") == []


# ------------------------------------------------------ 2: concurrent prepares of the same clips (torchrun ranks)

@pytest.mark.parametrize("earlier_retry", [False, True], ids=["no-cache", "earlier-retry-cache"])
def test_a_retry_cache_a_concurrent_prepare_wrote_is_kept_and_loaded(tmp_path, monkeypatch, caplog, earlier_retry):
    """Two prepares of the same clips at once (the ranks of a torchrun job), both meeting a read error: B runs whole
    while A prepares its first clip, and writes its RETRY cache; A, finishing last, keeps B's folder and loads it,
    instead of renaming it aside and deleting it while B reads its sequences from it (B's sequence(0) failed with
    'no sequence cached' while A put its own folder in place; B's load with 'manifest.csv cannot be read').
    earlier-retry-cache: the RETRY cache of an earlier run was there when both started (B replaces it, A keeps
    B's)."""
    csv = _clips(tmp_path, clips=("take1", "take2"))
    _unreadable_once(monkeypatch, tmp_path / "take2" / "img5.png")         # unreadable for both
    cfg = _cfg(tmp_path, csv, sequences=True)
    if earlier_retry:
        prep.prepare_dataset(cfg)
    real_process, real_rename = prep.process_clip, os.rename
    b: dict = {}
    reads: list = []

    def process_clip(rec, mode, settings):          # prepare B, whole, while A prepares its first clip
        if not b:
            b["running"] = True
            b["ds"] = prep.prepare_dataset(cfg)
            b["marker"] = os.stat(b["ds"].cache_dir / prep.RETRY_MARKER).st_ino
        return real_process(rec, mode, settings)

    def rename(src, dst):                           # B reads a sequence while A puts its cache in place
        if "ds" in b and pathlib.Path(src).name.startswith(".tmp-"):
            try:
                reads.append(b["ds"].frames.sequence(0).shape)
            except (OSError, prep.PrepareError) as exc:
                reads.append(str(exc))
        real_rename(src, dst)
    monkeypatch.setattr(prep, "process_clip", process_clip)
    monkeypatch.setattr(prep.os, "rename", rename)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="icegan.data"):
        a = prep.prepare_dataset(cfg)
    assert reads == [b["ds"].frames.sequence(0).shape]
    assert a.cache_dir == b["ds"].cache_dir and os.stat(a.cache_dir / prep.RETRY_MARKER).st_ino == b["marker"]
    assert list(a.manifest["clip"]) == ["take1"] and np.array_equal(a.frames.sequence(0), b["ds"].frames.sequence(0))
    assert "another prepare of the same clips and settings put its cache" in caplog.text
    assert _leftovers(tmp_path / "cache") == []


# --------------------------------------------------------------------------- 3: a cache folder that is a link

def _move_and_link(final: pathlib.Path, disk: pathlib.Path) -> pathlib.Path:
    """Move the cache folder ``final`` into ``disk`` (another disk, say) and link it back; returns the target."""
    disk.mkdir()
    target = disk / final.name
    shutil.move(str(final), target)
    final.symlink_to(target)
    return target


def test_a_retry_cache_behind_a_symbolic_link_is_refused_not_replaced(tmp_path, monkeypatch):
    """A RETRY cache moved to another disk and linked back: the next prepare refuses it, naming the link and its
    target, instead of renaming the link aside (left there: rmtree cannot remove a link) and writing the new cache
    in the cache root; the link and the folder behind it are untouched."""
    csv = _clips(tmp_path, clips=("take1", "take2"))
    restore = _unreadable_once(monkeypatch, tmp_path / "take2" / "img5.png")
    final = prep.prepare_dataset(_cfg(tmp_path, csv)).cache_dir
    restore()
    target = _move_and_link(final, tmp_path / "bigdisk")
    with pytest.raises(prep.PrepareError) as err:
        prep.prepare_dataset(_cfg(tmp_path, csv))
    msg = str(err.value)
    assert f"the cache folder {final} is a symbolic link to {target}, which holds no complete cache" in msg, msg
    assert f"delete the link {final}" in msg, msg
    assert final.is_symlink() and (target / prep.RETRY_MARKER).is_file()
    assert _leftovers(tmp_path / "cache") == []


def test_a_dangling_symbolic_link_cache_folder_is_refused_before_any_clip_is_prepared(tmp_path, monkeypatch):
    """The cache folder is a link whose target is gone (the other disk not mounted): refused at once, naming the link
    and saying its target does not exist, instead of every prepare preparing every clip and then failing with 'not a
    complete icegan cache: manifest.csv missing (run icegan prepare again)'."""
    csv = _clips(tmp_path)
    final = prep.prepare_dataset(_cfg(tmp_path, csv)).cache_dir
    target = _move_and_link(final, tmp_path / "bigdisk")
    shutil.rmtree(target.parent)
    monkeypatch.setattr(prep, "process_clip", lambda *args: pytest.fail("a clip was prepared"))
    with pytest.raises(prep.PrepareError) as err:
        prep.prepare_dataset(_cfg(tmp_path, csv))
    msg = str(err.value)
    assert f"the cache folder {final} is a symbolic link to {target}, which does not exist" in msg, msg
    assert f"delete the link {final}" in msg, msg


def test_a_complete_cache_behind_a_symbolic_link_is_still_a_cache_hit(tmp_path, monkeypatch):
    """A complete cache moved to another disk and linked back loads as before (the refusal is of links holding no
    complete cache only)."""
    csv = _clips(tmp_path)
    first = prep.prepare_dataset(_cfg(tmp_path, csv))
    _move_and_link(first.cache_dir, tmp_path / "bigdisk")
    monkeypatch.setattr(prep, "process_clip", lambda *args: pytest.fail("a clip was prepared"))
    again = prep.prepare_dataset(_cfg(tmp_path, csv))
    assert again.cache_dir == first.cache_dir and np.array_equal(again.frames.apex, first.frames.apex)
