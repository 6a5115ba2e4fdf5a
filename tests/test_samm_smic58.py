"""SAMM and SMIC-HS loading, checking and preparing on tiny trees built here (audit 58): one SMIC-HS person under two
subject folders, frames loose in a class folder, a prepare that finds no usable clip, a sheet saved under a
near-miss name, and runs that cover different clips."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from icegan.data.check import check_dataset
from icegan.data.smic import SMIC


def _clip(folder, first=100, n=3):
    """A clip folder of ``n`` flat grey SMIC-HS frames ``reg_image<first>.bmp`` ...."""
    folder.mkdir(parents=True)
    for t in range(n):
        cv2.imwrite(str(folder / f"reg_image{first + t}.bmp"), np.full((20, 24), 40 + 10 * t, np.uint8))
    return folder


def test_smic_padded_subject_folder_is_the_same_subject(tmp_path):
    """A subject folder named with a zero-padded number (s01) is subject smic/s1, the id its clip names say (two LOSO
    subjects for one person would leak across folds)."""
    _clip(tmp_path / "HS" / "s01" / "micro" / "negative" / "s1_ne_01")
    _clip(tmp_path / "HS" / "S02" / "micro" / "positive" / "s2_po_01")
    recs = SMIC(tmp_path).records()
    assert [(r.subject, r.clip) for r in recs] == [("smic/s1", "s1_ne_01"), ("smic/s2", "s2_po_01")]
    assert [r.subject for r in SMIC(tmp_path).records(subjects=["smic/s01"])] == ["smic/s1"]
    assert SMIC(tmp_path).disk_clips() == [("s1", "s1_ne_01"), ("s2", "s2_po_01")]


def test_smic_two_folders_of_one_subject_are_refused_naming_both(tmp_path):
    """s1 and s01 (two copies merged) name one subject: s1 is read, s01 is not, with a layout problem naming both
    folders; data check counts one subject and reports the problem."""
    hs = tmp_path / "HS"
    _clip(hs / "s1" / "micro" / "negative" / "s1_ne_01")
    _clip(hs / "s01" / "micro" / "positive" / "s1_po_01")
    ds = SMIC(tmp_path)
    recs = ds.records()
    assert [(r.subject, r.clip) for r in recs] == [("smic/s1", "s1_ne_01")]
    (problem,) = ds.layout_problems
    assert problem["clip"] == "smic/s01"
    assert f"subject folders {hs / 's1'} and {hs / 's01'} both name subject s1" in problem["problem"]
    rep = check_dataset("smic", tmp_path, read_images=False)
    assert rep.subjects == {"smic/s1": 1}
    assert [p["clip"] for p in rep.clips_with_problems] == ["smic/s01"]
