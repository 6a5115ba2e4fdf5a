"""Data audit 60: SMIC-HS clip and class folders differing only in letter case (read once, the rest a layout problem
that check and prepare share), every SMIC-HS clip folder counted on disk, a SMIC clip whose apex is to be spotted
skipped by data check when a frame of its spotting span is unreadable (as prepare skips it), a MEGC2019 table row whose
SMIC label contradicts its clip name refused, and one frames folder listed twice in a clip list refused."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from icegan.data.check import SKIP, WARN, check_dataset
from icegan.data.smic import SMIC

from _clip_records import clip_record, grey_frames, problems


def _clip(folder, first=100, n=3):
    """A clip folder of ``n`` SMIC-HS frames ``reg_image<first>.bmp`` ... of growing grey levels."""
    folder.mkdir(parents=True)
    for t in range(n):
        cv2.imwrite(str(folder / f"reg_image{first + t}.bmp"), np.full((20, 24), 40 + 10 * t, np.uint8))
    return folder


def _prepare(tmp_path, root):
    from icegan.data import prepare as prep
    spec = prep.DatasetSpec(name="smic", root=str(root), mode="cropped")
    return prep.prepare_dataset(prep.PrepareConfig(datasets=[spec], cache_root=str(tmp_path / "cache"), size=16,
                                                   workers=1, progress=False))


def test_smic_case_twin_clip_folders_are_read_once(tmp_path):
    """negative/s1_ne_01 beside Negative/s1_ne_01, and positive/s1_po_01 beside positive/S1_PO_01, were read twice:
    data check said 'only S1_PO_01 is read' and 'only s1_po_01 is read', nothing of the Negative/ twin, and prepare
    refused the clip as 'in two dataset entries, datasets.0 and datasets.0'. One of each is read (the class folder and
    clip folder named in lower case), the other is a layout problem naming both, skipped alike by check and prepare."""
    hs = tmp_path / "HS"
    micro = hs / "s1" / "micro"
    for folder in (micro / "negative" / "s1_ne_01", micro / "Negative" / "s1_ne_01", micro / "positive" / "S1_PO_01",
                   micro / "positive" / "s1_po_01", hs / "s2" / "micro" / "negative" / "s2_ne_01"):
        _clip(folder)
    ds = SMIC(tmp_path)
    recs = ds.records()
    assert [r.key for r in recs] == ["smic/s1/s1_ne_01", "smic/s1/s1_po_01", "smic/s2/s2_ne_01"]
    assert [r.clip_dir for r in recs[:2]] == [micro / "negative" / "s1_ne_01", micro / "positive" / "s1_po_01"]
    unread = [("Negative/s1_ne_01", "negative/s1_ne_01", "s1_ne_01"), ("positive/S1_PO_01", "positive/s1_po_01", "s1_po_01")]
    expected = [(f"smic/s1/micro/{other}", f"clip folders {micro / read} and {micro / other} are one clip, smic/s1/{clip} "
                 f"(names equal but for letter case): {micro / other} is not read (keep one folder per clip: "
                 f"merge it into {micro / read})") for other, read, clip in unread]
    assert [(p["clip"], p["problem"]) for p in ds.layout_problems] == expected
    assert ds.skipped_clip_folders == expected
    assert ds.disk_clips() == [("s1", "s1_ne_01"), ("s1", "s1_ne_01"), ("s1", "S1_PO_01"), ("s1", "s1_po_01"),
                               ("s2", "s2_ne_01")]
    rep = check_dataset("smic", tmp_path, read_images=False)
    assert (rep.clip_folders_on_disk, rep.clips_in_sheet, rep.clips_usable) == (5, 3, 3)
    assert [s["clip"] for s in rep.clips_skipped] == [key for key, _ in expected]
    assert not [p for p in rep.clips_with_problems if "only S1_PO_01 is read" in p["problem"]]
    assert rep.by_class_usable == {"negative": 2, "positive": 1, "surprise": 0}
    prepared = _prepare(tmp_path, tmp_path)
    assert list(prepared.manifest["key"]) == [r.key for r in recs]


def test_smic_clip_with_an_unreadable_frame_of_its_spotting_span_is_skipped_by_check(tmp_path):
    """A SMIC clip (apex to be spotted) with an empty last frame: data check called it usable with a warning, while
    prepare skips it (apex spotting reads every frame of the span). Check now skips it; a frame outside the span of a
    clip with an offset stays a warning, as does any other frame of a clip whose apex is given."""
    bad = _clip(tmp_path / "HS" / "s1" / "micro" / "negative" / "s1_ne_01") / "reg_image102.bmp"
    bad.write_bytes(b"")
    _clip(tmp_path / "HS" / "s2" / "micro" / "positive" / "s2_po_01")
    rep = check_dataset("smic", tmp_path, read_images=True, workers=1)
    assert rep.clips_usable == 1
    assert [s["clip"] for s in rep.clips_skipped] == ["smic/s1/s1_ne_01"]
    assert rep.clips_skipped[0]["reason"].startswith("unreadable image(s) for frame(s) 102: reg_image102.bmp")
    prepared = _prepare(tmp_path, tmp_path)
    assert list(prepared.manifest["key"]) == ["smic/s2/s2_po_01"]
    spotted = clip_record(tmp_path, onset=10, apex=None, offset=15, frames=range(10, 21))
    sev = [s for p, s in problems(spotted, need_apex=False, unreadable={spotted.frame_path(18)}) if "unreadable" in p]
    assert sev == [WARN]
    sev = [s for p, s in problems(spotted, need_apex=False, unreadable={spotted.frame_path(12)}) if "unreadable" in p]
    assert sev == [SKIP]
    given = clip_record(tmp_path, onset=10, apex=15, offset=20)
    assert [s for p, s in problems(given, unreadable={given.frame_path(12)}) if "unreadable" in p] == [WARN]


def test_smic_disk_clips_counts_the_clips_of_an_unread_subject_folder(tmp_path):
    """Subject folders s1 and s01 (one person, s01 not read): data check said 1 clip folder on disk where there are 2;
    every clip folder is counted, in subject folder order. A clip folder in a class folder that is no class (happy/)
    is no clip of disk_clips, but data check counts it on disk and as skipped (test_datacheck62)."""
    hs = tmp_path / "HS"
    _clip(hs / "s1" / "micro" / "negative" / "s1_ne_01")
    _clip(hs / "s01" / "micro" / "negative" / "s1_ne_02")
    _clip(hs / "s1" / "micro" / "happy" / "s1_ha_01")           # no SMIC-HS class: not a disk_clips folder
    ds = SMIC(tmp_path)
    assert ds.disk_clips() == [("s1", "s1_ne_01"), ("s1", "s1_ne_02")]
    rep = check_dataset("smic", tmp_path, read_images=False)
    assert (rep.clip_folders_on_disk, rep.clips_usable) == (3, 1)
    assert [s["clip"] for s in rep.clips_skipped] == ["smic/s1/micro/happy/s1_ha_01"]


def _megc_table(tmp_path, smic_label):
    """A MEGC2019 table folder of one CASME II row and one SMIC row (clip s01_ne_01, label ``smic_label``)."""
    (tmp_path / "flow_uvos_28").mkdir()
    (tmp_path / "combined_3_class2_for_optical_flow.csv").write_text(
        "dataset,sub,filename_o,label\ncasme2,sub01,EP02_01f,1\nsmic,s01,s01_ne_01," + smic_label + "\n")
    return tmp_path


def test_megc2019_table_refuses_a_smic_label_contradicting_the_clip_name(tmp_path):
    """A SMIC row labelled 2 (surprise) for clip s01_ne_01 (its name says negative) was loaded as surprise."""
    from icegan.data.features import read_megc2019_table
    root = _megc_table(tmp_path, "2")
    with pytest.raises(ValueError) as err:
        read_megc2019_table(root)
    assert str(err.value) == (
        f"{root / 'combined_3_class2_for_optical_flow.csv'}, line 3 (clip 's01_ne_01'): label 2 (surprise) "
        f"contradicts the clip's name, which says negative (SMIC-HS clip names give the class, as its folder tree "
        f"does): set the label to 0")
    (root / "combined_3_class2_for_optical_flow.csv").unlink()
    (root / "flow_uvos_28").rmdir()
    assert list(read_megc2019_table(_megc_table(tmp_path, "0"))["label"]) == [1, 0]


@pytest.mark.parametrize("second", ["p02,take1", "p01,take2"])
def test_clip_list_refuses_one_frames_folder_listed_twice(tmp_path, second):
    """One frames folder with the same onset and apex under two subjects (one clip in two LOSO folds) or under two
    clip names of one subject (counted twice) was read as two clips with no word: it is refused naming both lines,
    also when the folder is written two ways. The same folder with another onset is another clip of the same subject
    (under another subject it is refused too: tests/test_clips65.py)."""
    from icegan.data.clip_list import ClipList
    frames = grey_frames(tmp_path / "EP02_01f", range(1, 11))
    csv = tmp_path / "list.csv"
    csv.write_text(f"subject,clip,frames,onset,apex\np01,take1,EP02_01f,2,5\n{second},./EP02_01f/,2,5\n"
                   f"p03,take9,{frames},3,5\n")
    clip = second.split(",")[1]
    with pytest.raises(ValueError) as err:
        ClipList(csv).records()
    assert str(err.value) == (
        f"{csv}, line 3 (clip '{clip}'): frames folder {frames.resolve()} with onset 2 and apex 5 is listed on line 2 too "
        f"(clip 'take1' of subject 'clips/p01'): one clip listed twice would be counted twice"
        + (" and put into two subjects' LOSO folds" if second.startswith("p02") else "")
        + "; keep one of the two lines")
    csv.write_text("subject,clip,frames,onset,apex\np01,take1,EP02_01f,2,5\np01,take2,EP02_01f,3,5\n")
    assert [r.key for r in ClipList(csv).records()] == ["clips/p01/take1", "clips/p01/take2"]


@pytest.mark.parametrize("alias", ["alias", "other/../EP02_01f"])
def test_clip_list_refuses_one_frames_folder_listed_twice_through_a_link_or_dotdot(tmp_path, alias):
    """The same frames folder named a second time through a symbolic link to it, or as ``other/../EP02_01f``, is the
    same clip: compared by its real path (a plain Path comparison read both as two clips in two LOSO folds)."""
    from icegan.data.clip_list import ClipList
    frames = grey_frames(tmp_path / "EP02_01f", range(1, 11))
    (tmp_path / "other").mkdir()
    try:
        (tmp_path / "alias").symlink_to(frames, target_is_directory=True)
    except OSError as e:                # e.g. Windows without the right to make links
        pytest.skip(f"cannot make a symbolic link here: {e}")
    csv = tmp_path / "list.csv"
    csv.write_text(f"subject,clip,frames,onset,apex\np01,take1,EP02_01f,2,5\np02,take1,{alias},2,5\n")
    with pytest.raises(ValueError) as err:
        ClipList(csv).records()
    assert str(err.value) == (
        f"{csv}, line 3 (clip 'take1'): frames folder {frames.resolve()} with onset 2 and apex 5 is listed on line 2 "
        f"too (clip 'take1' of subject 'clips/p01'): one clip listed twice would be counted twice and put into two "
        f"subjects' LOSO folds; keep one of the two lines")
