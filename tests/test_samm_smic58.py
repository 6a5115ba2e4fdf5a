"""SAMM and SMIC-HS loading, checking and preparing on tiny trees built here (audit 58): one SMIC-HS person under two
subject folders, frames loose in a class folder, a prepare that finds no usable clip, a sheet saved under a
near-miss name, and runs that cover different clips."""
from __future__ import annotations

import re

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


def _samm_copy(tmp_path, rows, on_disk=("007_4_2",)):
    """A SAMM copy: ``SAMM/<subject>/<clip>`` folders of the clips ``on_disk`` (frames onset..offset of their row) and
    ``annotations/SAMM_Micro_FACS_Codes_v2.xlsx`` holding ``rows`` (subject, clip, onset, apex, offset, emotion)."""
    import openpyxl
    (tmp_path / "annotations").mkdir()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Action Units",
               "Estimated Emotion", "Objective Classes"])
    for subject, clip, onset, apex, offset, emotion in rows:
        ws.append([subject, clip, onset, apex, offset, "4", emotion, 7 if emotion == "Other" else 1])
        if clip in on_disk:
            folder = tmp_path / "SAMM" / subject / clip
            folder.mkdir(parents=True)
            for n in range(onset, offset + 1):
                cv2.imwrite(str(folder / f"{subject}_{n:05d}.jpg"), np.full((20, 24), n % 200, np.uint8))
    wb.save(tmp_path / "annotations" / "SAMM_Micro_FACS_Codes_v2.xlsx")
    return tmp_path / "SAMM"


def _prepare(tmp_path, *specs):
    from icegan.data import prepare as prep
    return prep.prepare_dataset(prep.PrepareConfig(datasets=list(specs), cache_root=str(tmp_path / "cache"), size=16,
                                                   workers=1, progress=False))


def test_prepare_without_a_usable_clip_says_why_per_dataset(tmp_path):
    """A SAMM copy whose clips are all 'Other' under the default composite_only: true: prepare said 'see the warnings
    above' with nothing above; it now says how many sheet rows it found, that none is a composite clip and how to
    prepare them all. A composite clip whose subject folder is missing is counted as skipped, and the warnings
    named."""
    from icegan.data import prepare as prep
    root = _samm_copy(tmp_path, [("007", "007_4_2", 100, 103, 106, "Other")])
    spec = prep.DatasetSpec(name="samm", root=str(root), mode="cropped")
    with pytest.raises(prep.PrepareError) as err:
        _prepare(tmp_path, spec)
    assert str(err.value) == (
        f"prepare: no usable clip in the configured datasets: datasets.0 (samm, root {root}, mode cropped): 1 sheet "
        f"row, 0 of them composite clips (composite_only: true keeps the MEGC2019 negative/positive/surprise clips "
        f"only; set composite_only: false to prepare every sheet row)")
    other = tmp_path / "other"
    other.mkdir()
    root = _samm_copy(other, [("007", "007_4_2", 100, 103, 106, "Other"), ("008", "008_1_1", 10, 12, 14, "Anger"),
                              ("008", "008_1_2", 20, 22, 24, "Happiness")])
    with pytest.raises(prep.PrepareError) as err:
        _prepare(other, prep.DatasetSpec(name="samm", root=str(root), mode="cropped"))
    assert str(err.value) == (
        f"prepare: no usable clip in the configured datasets; see the warnings above: datasets.0 (samm, root {root}, "
        f"mode cropped): 3 sheet rows, 2 of them composite clips, all 2 skipped (2 of subjects whose folder is not on "
        f"disk)")
    p = _prepare(other, prep.DatasetSpec(name="samm", root=str(root), mode="cropped", composite_only=False,
                                         subjects=["007"]))
    assert list(p.manifest["key"]) == ["samm/007/007_4_2"]


def test_smic_frames_loose_in_a_class_folder_are_a_layout_problem(tmp_path):
    """Frames sitting directly in micro/negative/ (no clip folder) were dropped without a word and data check said 0
    problems: they are a layout problem naming the folder, counted by data check and named by prepare."""
    from icegan.data import prepare as prep
    hs = tmp_path / "HS"
    _clip(hs / "s1" / "micro" / "positive" / "s1_po_01")
    loose = _clip(hs / "s2" / "micro" / "negative", first=106114, n=4)
    (loose / "._reg_image106114.bmp").write_bytes(b"")              # macOS metadata: not a frame, not counted
    (loose / "notes.txt").write_text("x")
    ds = SMIC(tmp_path)
    assert [r.key for r in ds.records()] == ["smic/s1/s1_po_01"]
    assert ds.layout_problems == [{"clip": "smic/s2/micro/negative", "problem": (
        f"{loose} holds 4 frame files (reg_image106114.bmp, reg_image106115.bmp, reg_image106116.bmp, ...) directly, "
        f"not in a clip folder: they are not read (put each clip's frames in a folder of their own, named like "
        f"s2_ne_01)")}]
    rep = check_dataset("smic", tmp_path, read_images=False)
    assert [p["clip"] for p in rep.clips_with_problems] == ["smic/s2/micro/negative"]
    (hs / "s1").rename(tmp_path / "away")
    with pytest.raises(prep.PrepareError) as err:
        _prepare(tmp_path, prep.DatasetSpec(name="smic", root=str(tmp_path), mode="cropped"))
    assert str(err.value) == (f"prepare: no usable clip in the configured datasets; see the warnings above: "
                              f"datasets.0 (smic, root {tmp_path}, mode cropped): 0 clip folders, 1 layout problem "
                              f"(folders or sheet cells not read)")


def test_sheet_not_found_names_a_near_miss_file(tmp_path):
    """The SAMM sheet saved by a browser as '... (1).xlsx' next to the data: data check and prepare said 'not found'
    and listed the paths tried, never the file that is there; they now name it, as icegan data composite does."""
    from icegan.data import prepare as prep
    root = _samm_copy(tmp_path, [("007", "007_4_2", 100, 103, 106, "Anger")])
    ann = tmp_path / "annotations"
    (ann / "SAMM_Micro_FACS_Codes_v2.xlsx").rename(ann / "SAMM_Micro_FACS_Codes_v2 (1).xlsx")
    hint = (f"{ann} holds SAMM_Micro_FACS_Codes_v2 (1).xlsx: if that is the sheet, save it as "
            f"{ann / 'SAMM_Micro_FACS_Codes_v2.xlsx'}")
    with pytest.raises(FileNotFoundError) as err:
        check_dataset("samm", root, read_images=False)
    assert str(err.value).startswith("annotation sheet SAMM_Micro_FACS_Codes_v2.xlsx (or "
                                     "SAMM_Micro_FACS_Codes_v2.csv) not found (looked in [")
    assert hint in str(err.value) and str(err.value).count(" holds ") == 1
    with pytest.raises(FileNotFoundError, match=re.escape(hint)):
        _prepare(tmp_path, prep.DatasetSpec(name="samm", root=str(root), mode="cropped"))


def _run_set(label, rows):
    """A RunSet of one run over ``rows`` (subject, clip, y_true), each clip predicted right."""
    import pandas as pd
    from icegan.significance import RunSet
    clips = pd.DataFrame(rows, columns=["subject", "clip", "y_true"])
    subjects = sorted(clips["subject"].unique())
    conf = np.zeros((1, len(subjects), 3, 3), int)
    for s, _, y in rows:
        conf[0, subjects.index(s), y, y] += 1
    return RunSet(label, [], subjects, conf, clips, False)


def test_compare_of_runs_over_different_clips_names_the_first_difference():
    """compare refused runs that 'cover different clips or labels' without naming a clip (the same SMIC maps under
    the MEGC2019 table's ids smic/s01, s01_ne_01 and the loader's smic/s1, s1_ne_01); it now names the first
    differing row, as icegan ensemble does. Those two spellings are one clip's and now pair (subject_key,
    tests/test_smicids63.py); a clip of the loader's that is no clip of the table's is named, its subject as the
    baseline spells it."""
    from icegan.significance import bootstrap_compare
    table = [("smic/s01", "s01_ne_01", 0), ("smic/s02", "s02_po_01", 1), ("smic/s03", "s03_sur_01", 2)]
    loader = [("smic/s1", "s1_ne_01", 0), ("smic/s2", "s2_po_01", 1), ("smic/s3", "s3_sur_01", 2)]
    rows = bootstrap_compare([_run_set("table", table), _run_set("loader", loader)], resamples=100)
    assert rows[1]["dUF1_ci"] == (0.0, 0.0) and rows[1]["p_tie"] == 1.0
    with pytest.raises(ValueError) as err:
        bootstrap_compare([_run_set("table", table), _run_set("loader", loader[:2] + [("smic/s3", "s3_ne_01", 2)])],
                          resamples=100)
    assert str(err.value) == ("'loader' and 'table' cover different clips or labels (first difference "
                              "'smic/s03/s3_ne_01 label 2' vs 'smic/s03/s03_sur_01 label 2'); a paired comparison "
                              "needs the same LOSO over the same data")
    relabelled = table[:2] + [("smic/s03", "s03_sur_01", 1)]
    with pytest.raises(ValueError, match=r"\(first difference 'smic/s03/s03_sur_01 label 1' vs "
                                         r"'smic/s03/s03_sur_01 label 2'\)"):
        bootstrap_compare([_run_set("table", table), _run_set("relabelled", relabelled)], resamples=100)
    with pytest.raises(ValueError, match=r"\(2 vs 3 clips, first difference 'smic/s03/s03_sur_01 label 2' only in "
                                         r"'table'\)"):     # the clip the shorter run lacks (was: "in length")
        bootstrap_compare([_run_set("table", table), _run_set("fewer", table[:2])], resamples=100)


def test_a_new_cache_of_other_size_does_not_spot_the_smic_apex_again(tmp_path, monkeypatch):
    """The spotted apex depends on the clip's frames, the method and the detector, never on the size: a second
    prepare that only changes the size takes it from spotted_apex.json beside the caches (spotting costs seconds per
    clip); a clip whose frame files changed, or another method, is spotted again."""
    import os

    from icegan.data import prepare as prep
    from icegan.data import spotting
    calls = []
    real = spotting.spot_record_apex

    def counted(rec, *a, **kw):
        calls.append(rec.key)
        return real(rec, *a, **kw)
    monkeypatch.setattr(spotting, "spot_record_apex", counted)
    rng = np.random.default_rng(0)
    hs = tmp_path / "HS"
    for clip in ("s1/micro/negative/s1_ne_01", "s2/micro/surprise/s2_sur_01"):
        (hs / clip).mkdir(parents=True)
        base = (rng.random((40, 40)) * 255).astype(np.uint8)
        for t in range(5):
            cv2.imwrite(str(hs / clip / f"reg_image{10 + t}.bmp"), np.roll(base, t * (4 - t), axis=1))

    def prepare(size, method="dis"):
        cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="smic", root=str(tmp_path))],
                                 cache_root=str(tmp_path / "cache"), size=size, workers=1, progress=False,
                                 apex_spotting=method)
        return prep.prepare_dataset(cfg).manifest
    first = prepare(16)
    assert sorted(calls) == ["smic/s1/s1_ne_01", "smic/s2/s2_sur_01"]
    second = prepare(20)
    assert len(calls) == 2                                          # not spotted again
    cols = ["key", "apex", "apex_method", "notes"]
    assert second[cols].equals(first[cols]) and (first["apex_method"] != "unspotted").all()
    frame = hs / "s2/micro/surprise/s2_sur_01/reg_image12.bmp"
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 10**9))
    prepare(24)
    assert calls[2:] == ["smic/s2/s2_sur_01"]                       # its frames changed: spotted again, alone
    prepare(24, "middle")
    assert len(calls) == 5                                          # another method: both spotted
