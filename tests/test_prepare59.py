"""Preparation audit (fifty-ninth session): subject folders that differ only in letter case (sub02 and Sub02) are
named in data check and in prepare's skip reasons. The case tests copy small CASME II clips into tmp_path."""
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


