"""Raw preparation (sixty-fourth session): an apex neighbour not on disk inside the clip is a warning, as an unreadable
one is (it was a manifest note alone); a clip-list row whose apex is after its offset is refused naming the file and
line, as one whose apex is before its onset is (a sheet row of that kind still loads, with its note); the crop size
has one bound, 8, said one way whatever the value below it."""
from __future__ import annotations

import logging

import pytest

from _clip_records import casme2_sheet, grey_frames
from icegan.cli import main as icegan_main
from icegan.data import prepare as prep
from icegan.data.clip_list import ClipList


def _clip_list(tmp_path, onset, apex, offset, numbers=range(1, 11)):
    """A clip list of one clip (subject me, clip c1) of :func:`grey_frames` ``numbers``; returns (csv, folder)."""
    frames = grey_frames(tmp_path / "c1", numbers)
    csv = tmp_path / "c1.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,c1,{frames},{onset},{apex},{offset}\n")
    return csv, frames


# ---- 1. an apex neighbour not on disk ------------------------------------------------------------------------------
def test_an_apex_neighbour_not_on_disk_inside_the_clip_is_a_warning_naming_it_and_its_replacement(tmp_path, caplog):
    """apex-1 (frame 4) deleted: replaced by frame 5 with a manifest note alone, where an unreadable one is a warning;
    now a warning names the frame, its folder and the frame used. apex+2 (frame 7) after the offset 6 is the rule
    of neighbour_inside, noted only."""
    csv, folder = _clip_list(tmp_path, onset=2, apex=5, offset=6, numbers=[n for n in range(1, 11) if n != 4])
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec("clips", str(csv))], size=16, workers=1,
                             cache_root=str(tmp_path / "cache"), progress=False)
    with caplog.at_level(logging.WARNING, "icegan.data"):
        p = prep.prepare_dataset(cfg)
    assert list(p.manifest[["apex_m2", "apex_m1", "apex_p1", "apex_p2"]].iloc[0]) == [3, 5, 6, 6]
    said = [r.getMessage() for r in caplog.records if "used in its place" in r.getMessage()]
    assert said == [f"clips/me/c1: apex-1 frame 4 (no file in {folder}) not used (not on disk); frame 5 (img5.png) "
                    f"used in its place"], said
    assert "apex+2 frame 7 after the offset 6, used 6" in p.manifest["notes"][0]


def test_icegan_prepare_warns_of_a_missing_apex_neighbour(tmp_path, caplog):
    csv, folder = _clip_list(tmp_path, onset=2, apex=5, offset=9, numbers=[n for n in range(1, 11) if n != 6])
    cfg = tmp_path / "prepare.yaml"
    cfg.write_text(f"datasets:\n  - name: clips\n    root: {csv}\ncache_root: {tmp_path / 'cache'}\nsize: 16\n"
                   f"workers: 1\nprogress: false\n")
    with caplog.at_level(logging.WARNING, "icegan.data"):
        assert icegan_main(["prepare", "--config", str(cfg)]) == 0
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "on disk" in r.getMessage()]
    assert said == [f"clips/me/c1: apex+1 frame 6 (no file in {folder}) not used (not on disk); frame 5 (img5.png) "
                    f"used in its place"], said


# ---- 2. a clip-list apex after its offset --------------------------------------------------------------------------
def test_a_clip_list_apex_after_its_offset_is_refused_naming_file_and_line(tmp_path):
    csv, _ = _clip_list(tmp_path, onset=2, apex=8, offset=6)
    with pytest.raises(ValueError) as exc:
        ClipList(csv).records()
    assert str(exc.value) == (f"{csv}, line 2 (clip 'c1'): apex 8 is after offset 6: one of the two cells is wrong; "
                              f"correct it, or empty the offset cell")
    from icegan.data.check import check_dataset       # icegan data check reads the list the same way
    with pytest.raises(ValueError, match=r"c1\.csv, line 2 \(clip 'c1'\): apex 8 is after offset 6"):
        check_dataset("clips", csv, read_images=False)
    csv.write_text(csv.read_text().replace(",8,6", ",6,6"))                 # the apex on the offset frame: fine
    assert [(r.apex, r.offset) for r in ClipList(csv).records()] == [(6, 6)]


def test_a_sheet_row_with_its_apex_after_its_offset_still_loads_with_its_note(tmp_path):
    from icegan.data.casme2 import casme2_records
    root = tmp_path / "casme2"
    grey_frames(root / "sub01" / "EP01_01", range(1, 11))
    recs = casme2_records(root, casme2_sheet(root, "1,EP01_01,2,8,6,4,happiness"), composite_only=False)
    assert [(r.onset, r.apex, r.offset) for r in recs] == [(2, 8, 6)]
    assert [n for n in recs[0].notes if n.startswith("apex 8 is after offset 6 (sheet row")], recs[0].notes


# ---- 3. one bound for the crop size --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [-64, 0, 7])
def test_a_size_below_8_is_refused_with_one_message(tmp_path, capsys, size):
    with pytest.raises(ValueError, match=rf"^size must be >= 8, got {size}$"):
        prep.PrepareConfig(size=size)
    cfg = tmp_path / "prepare.yaml"
    cfg.write_text(f"datasets:\n  - name: clips\n    root: {tmp_path / 'none.csv'}\nprogress: false\n")
    assert icegan_main(["prepare", "--config", str(cfg), f"size={size}"]) == 2
    assert f"size must be >= 8, got {size}" in capsys.readouterr().err


def test_a_size_of_8_is_prepared(tmp_path):
    csv, _ = _clip_list(tmp_path, onset=2, apex=5, offset=9)
    p = prep.prepare_dataset(prep.PrepareConfig(datasets=[prep.DatasetSpec("clips", str(csv))], size=8, workers=1,
                                                cache_root=str(tmp_path / "cache"), progress=False))
    assert p.frames.apex.shape[1:] == (8, 8)
