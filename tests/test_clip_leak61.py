"""LOSO leaks through one clip listed twice (sixty-first session): a clip list row whose apex is to be spotted and
another row of the same frames folder and onset with an apex given, and two dataset entries of one prepare config
that name one frames folder and onset under two clip keys, were both prepared (one clip in two subjects' LOSO folds).
Both are refused, naming both lines or entries."""
from __future__ import annotations

import pytest
from _clip_records import casme2_entry_beside_a_clip_list_refusal, grey_frames

from icegan.data import prepare as prep
from icegan.data.clip_list import ClipList


@pytest.mark.parametrize("apexes", [("", "5"), ("5", ""), ("5", "6")])
def test_clip_list_refuses_one_folder_and_onset_listed_twice_whatever_the_apexes(tmp_path, apexes):
    """Lines 2 and 3 name one frames folder with onset 2 under subjects p01 and p02; the apexes differ (one spotted,
    one given, or two given): the same clip in two LOSO folds. Refused naming both lines and both apexes; the same
    folder with onset 3 is another clip of the same subject (under another subject it is refused too:
    tests/test_clips65.py)."""
    frames = grey_frames(tmp_path / "EP02_01f", range(1, 11))
    csv = tmp_path / "list.csv"
    first, second = apexes
    csv.write_text(f"subject,clip,frames,onset,apex,offset\np01,take1,EP02_01f,2,{first},9\n"
                   f"p02,take1copy,{frames},2,{second},9\n")
    with pytest.raises(ValueError) as err:
        ClipList(csv).records()
    said = {"": "to be spotted", "5": "5", "6": "6"}
    assert str(err.value) == (
        f"{csv}, line 3 (clip 'take1copy'): frames folder {frames.resolve()} with onset 2 and apex {said[second]} is "
        f"listed on line 2 too (clip 'take1' of subject 'clips/p01', apex {said[first]}): one clip listed twice "
        f"would be counted twice and put into two subjects' LOSO folds; keep one of the two lines")
    csv.write_text(f"subject,clip,frames,onset,apex,offset\np01,take1,EP02_01f,2,{first},9\n"
                   f"p01,take1copy,{frames},3,{second},9\n")
    assert [r.key for r in ClipList(csv).records()] == ["clips/p01/take1", "clips/p01/take1copy"]


def _two_lists(tmp_path, second_onset: int) -> prep.PrepareConfig:
    """Two clip lists, a.csv (subject p01) and b.csv (subject p02), each listing frames folder c1 (onset 2 in a.csv,
    ``second_onset`` in b.csv): two clip keys, clips/p01/c1 and clips/p02/c1."""
    frames = grey_frames(tmp_path / "c1")
    (tmp_path / "a.csv").write_text(f"subject,clip,frames,onset,apex,offset\np01,c1,{frames},2,5,10\n")
    (tmp_path / "b.csv").write_text(f"subject,clip,frames,onset,apex,offset\np02,c1,{tmp_path}/./c1,"
                                    f"{second_onset},5,10\n")
    return prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(tmp_path / "a.csv")),
                                        prep.DatasetSpec(name="clips", root=str(tmp_path / "b.csv"))],
                              cache_root=str(tmp_path / "cache"), size=8, workers=1, progress=False)


def test_two_entries_listing_one_folder_and_onset_under_two_keys_are_refused(tmp_path, monkeypatch):
    """clips/p01/c1 (a.csv) and clips/p02/c1 (b.csv) are one frames folder with onset 2: one clip in two subjects'
    LOSO folds. Refused before any clip is prepared or a cache folder made, naming both keys, both entries and the
    folder; with onset 3 in b.csv they are two clips, but of one folder under two subjects: refused too (the
    message, and one subject's two onsets of the folder in two entries accepted, in tests/test_leak65.py: here b.csv's
    key clips/p02/c1 under p01 would be clips/p01/c1, refused as a key in two entries)."""
    cfg = _two_lists(tmp_path, 2)
    with monkeypatch.context() as m:
        m.setattr(prep, "process_clip", lambda *a: pytest.fail("a clip was prepared"))
        with pytest.raises(prep.PrepareError) as e:
            prep.prepare_dataset(cfg)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert str(e.value) == (
        f"prepare: clip clips/p02/c1 of datasets.1 (clips, root {b}, mode cropped) is clip clips/p01/c1 of "
        f"datasets.0 (clips, root {a}, mode cropped): frames folder {(tmp_path / 'c1').resolve()} with onset 2 in "
        f"both, so one clip would be prepared twice and put into two subjects' LOSO folds; keep it in one of the "
        f"entries (remove its row, or narrow the entries with subjects or clips)")
    assert not (tmp_path / "cache").exists()
    with pytest.raises(prep.PrepareError, match="under two subjects, clips/p02 \\(onset 3\\) and clips/p01 "):
        prep.prepare_dataset(_two_lists(tmp_path, 3))


def test_a_clip_list_row_of_a_casme2_clip_beside_the_casme2_entry_is_refused(shared_data, tmp_path, monkeypatch):
    """The CASME II entry (subject sub01) and a clip list listing sub01's EP02_01f folder (onset 46) as clips/p99/mine:
    refused naming casme2/sub01/EP02_01f and clips/p99/mine, before a clip is prepared."""
    msg = casme2_entry_beside_a_clip_list_refusal(shared_data, tmp_path, monkeypatch, onset=46)
    assert msg.startswith("prepare: clip clips/p99/mine of datasets.1 (clips, ") and "casme2/sub01/EP02_01f" in msg
    assert "with onset 46 in both" in msg
