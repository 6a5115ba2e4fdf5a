"""One frames folder under two subjects across two dataset entries of one prepare config (sixty-fifth session): the
clip list refuses one folder under two subjects whatever the onsets (tests/test_clips65.py), but prepare compared
the entries by folder and onset only, so a.csv listing folder c1 (onset 2) under p01 and b.csv listing c1 (onset 3)
under p02 were both prepared: one apex image, one face, in two subjects' LOSO folds. Now refused whatever the onsets,
naming both entries, keys, subjects and onsets; one subject's two onsets of one folder (two MEs of one long take) in
two entries stay accepted."""
from __future__ import annotations

import pytest
from _clip_records import casme2_entry_beside_a_clip_list_refusal, grey_frames

from icegan.data import prepare as prep


def _lists(tmp_path, subject_b: str, clip_b: str, onset_b: int) -> prep.PrepareConfig:
    """Clip lists a.csv (clips/p01/c1: frames folder c1, onset 2) and b.csv (``clips/<subject_b>/<clip_b>``: the
    same folder spelt ``<tmp_path>/./c1``, onset ``onset_b``) as two dataset entries; apex 5, offset 10."""
    frames = grey_frames(tmp_path / "c1")
    (tmp_path / "a.csv").write_text(f"subject,clip,frames,onset,apex,offset\np01,c1,{frames},2,5,10\n")
    (tmp_path / "b.csv").write_text(f"subject,clip,frames,onset,apex,offset\n{subject_b},{clip_b},{tmp_path}/./c1,"
                                    f"{onset_b},5,10\n")
    return prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(tmp_path / "a.csv")),
                                        prep.DatasetSpec(name="clips", root=str(tmp_path / "b.csv"))],
                              cache_root=str(tmp_path / "cache"), size=8, workers=1, progress=False)


def test_two_entries_listing_one_folder_under_two_subjects_with_other_onsets_are_refused(tmp_path, monkeypatch):
    """a.csv: c1 onset 2 under p01; b.csv: c1 onset 3 under p02. Two clips, but frames 3-10 (apex 5) of one folder
    in both subjects' folds: refused before any clip is prepared or a cache folder made."""
    monkeypatch.setattr(prep, "process_clip", lambda *a: pytest.fail("a clip was prepared"))
    with pytest.raises(prep.PrepareError) as e:
        prep.prepare_dataset(_lists(tmp_path, "p02", "c1", 3))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert str(e.value) == (
        f"prepare: clip clips/p02/c1 of datasets.1 (clips, root {b}, mode cropped) and clip clips/p01/c1 of "
        f"datasets.0 (clips, root {a}, mode cropped) are one frames folder {(tmp_path / 'c1').resolve()} under two "
        f"subjects, clips/p02 (onset 3) and clips/p01 (onset 2): its frames would be in two subjects' LOSO folds, "
        f"trained on and tested on; list the folder under one subject (remove one of the rows, or narrow the "
        f"entries with subjects or clips)")
    assert not (tmp_path / "cache").exists()


def test_two_entries_listing_one_folder_under_one_subject_with_two_onsets_are_prepared(tmp_path):
    """a.csv: c1 onset 2 under p01; b.csv: c1 onset 3 under p01 too, as clip c1b (the key clips/p01/c1 twice is
    refused as a key in two entries): two MEs of one take of one subject, both prepared."""
    got = prep.prepare_dataset(_lists(tmp_path, "p01", "c1b", 3)).manifest
    assert list(got["key"]) == ["clips/p01/c1", "clips/p01/c1b"]
    assert list(got["onset"]) == [2, 3]


def test_a_clip_list_row_of_a_casme2_folder_with_another_onset_beside_the_casme2_entry_is_refused(
        shared_data, tmp_path, monkeypatch):
    """The CASME II entry (sub01, EP02_01f onset 46, apex 59) and a clip list listing that folder with onset 47 as
    clips/p99/mine: the apex image in the folds of casme2/sub01 and clips/p99. Refused before a clip is prepared."""
    msg = casme2_entry_beside_a_clip_list_refusal(shared_data, tmp_path, monkeypatch, onset=47)
    assert msg.startswith("prepare: clip clips/p99/mine of datasets.1 (clips, ") and "clip casme2/sub01/EP02_01f" in msg
    assert "under two subjects, clips/p99 (onset 47) and casme2/sub01 (onset 46)" in msg
