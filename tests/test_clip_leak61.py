"""LOSO leaks through one clip listed twice (sixty-first session): a clip list row whose apex is to be spotted and
another row of the same frames folder and onset with an apex given, and two dataset entries of one prepare config
that name one frames folder and onset under two clip keys, were both prepared (one clip in two subjects' LOSO folds).
Both are refused, naming both lines or entries."""
from __future__ import annotations

import pytest
from _clip_records import grey_frames

from icegan.data.clip_list import ClipList


@pytest.mark.parametrize("apexes", [("", "5"), ("5", ""), ("5", "6")])
def test_clip_list_refuses_one_folder_and_onset_listed_twice_whatever_the_apexes(tmp_path, apexes):
    """Lines 2 and 3 name one frames folder with onset 2 under subjects p01 and p02; the apexes differ (one spotted,
    one given, or two given): the same clip in two LOSO folds. Refused naming both lines and both apexes; the same
    folder with onset 3 is another clip."""
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
                   f"p02,take1copy,{frames},3,{second},9\n")
    assert [r.key for r in ClipList(csv).records()] == ["clips/p01/take1", "clips/p02/take1copy"]

