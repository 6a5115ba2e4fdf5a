"""The skipped clips' lists (a prepared cache's skipped.csv, a run's skipped.csv) are written and read as icegan's
other tables are: quoted only where a cell holds a '\\r', read by one reader that keeps names as written and refuses
a damaged list naming the file; a clip list's frames folder whose name really ends in a space is found; ``icegan
features`` reads the names of the features.csv it wrote as text."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from icegan import pipeline
from icegan.cli import main
from icegan.data import prepare as prep
from icegan.data.clip_list import ClipList


def _clip_list(tmp_path, lines=("p01,take1,take1,1,5,9", "p02,gone,gone,1,5,9")):
    """A clip list of random grey frames img1..9.png in take1/ (onset 1, apex 5): the clip 'gone' has no folder."""
    rng = np.random.default_rng(0)
    d = tmp_path / "take1"
    d.mkdir(parents=True)
    for n in range(1, 10):
        cv2.imwrite(str(d / f"img{n}.png"), rng.integers(0, 256, (24, 24), dtype=np.uint8))
    path = tmp_path / "clips.csv"
    path.write_text("subject,clip,frames,onset,apex,offset\n" + "\n".join(lines) + "\n")
    return path


def _cfg(tmp_path, clips):
    return prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(clips))],
                              cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)


@pytest.fixture
def cache(tmp_path):
    """A prepared cache of one clip, with one clip skipped: (config, cache folder)."""
    cfg = _cfg(tmp_path, _clip_list(tmp_path))
    return cfg, prep.prepare_dataset(cfg).cache_dir


# --- item 1: written like the other tables ------------------------------------------------------------------------

def test_a_cache_skipped_csv_of_ordinary_names_is_written_like_the_other_tables(cache):
    """It was written with every field quoted ('"key","reason"'), unlike manifest.csv and every other table."""
    _, d = cache
    text = (d / "skipped.csv").read_text()
    assert text.startswith("key,reason\nclips/p02/gone,") and '"' not in text


def test_a_run_skipped_csv_is_quoted_only_where_a_cell_holds_a_carriage_return(tmp_path):
    path = tmp_path / "skipped.csv"
    pipeline.write_skipped(path, pd.DataFrame({"key": ["casme2/sub01/EP01"], "reason": ["no face"]}))
    assert path.read_text() == "key,reason\ncasme2/sub01/EP01,no face\n"
    odd = pd.DataFrame({"key": ["001", "NA"], "reason": ["cut\rshort", "None"]})
    pipeline.write_skipped(path, odd)
    assert path.read_bytes().startswith(b'"key","reason"\n"001","cut\rshort"\n')
    assert pipeline.read_skipped(path, "rerun").to_dict("list") == odd.to_dict("list")


def test_a_cache_skipped_csv_written_with_every_field_quoted_reads_back_the_same(cache):
    """Caches written before keep their fully quoted skipped.csv: read back as written ('NA', '001', a '\\r')."""
    cfg, d = cache
    old = pd.DataFrame({"key": ["clips/p02/gone", "NA", "001"], "reason": ["not on disk", "None", "a\rb"]})
    old.to_csv(d / "skipped.csv", index=False, quoting=csv.QUOTE_ALL)
    assert prep.load_prepared(d).skipped.to_dict("list") == old.to_dict("list")
    hit = prep.prepare_dataset(cfg)             # a cache hit keeps the cached skip of a clip it was asked for
    assert hit.cache_dir == d and hit.skipped["key"].tolist() == ["clips/p02/gone"]


# --- item 2: one reader ---------------------------------------------------------------------------------------------

def test_the_run_reader_is_the_cache_reader():
    assert pipeline.read_skipped is prep.read_skipped


@pytest.mark.parametrize("text, why", [
    ("key\nclips/p02/gone\n", "not a list of skipped clips"),                       # a column missing
    ("", "No columns to parse"),                                                    # emptied
    ("key,reason\nclips/p02/gone,not on disk\nclips/p0", "not a list of skipped clips"),   # a row cut short
    ("key,reason\nclips/p02/gone,not on disk,x\n", "not a list of skipped clips"),  # a field too many
])
def test_a_damaged_cache_skipped_csv_is_refused_naming_the_file(cache, text, why):
    """A skipped.csv without its reason column loaded, then a cache hit stopped with a bare KeyError: 'reason' (and a
    run listed NaN reasons); a row cut short read as a clip with an empty reason; a row of three fields took its
    first field for the index, so key and reason were the next two."""
    cfg, d = cache
    (d / "skipped.csv").write_text(text)
    for load in (lambda: prep.load_prepared(d), lambda: prep.prepare_dataset(cfg)):
        with pytest.raises(prep.PrepareError) as err:
            load()
        msg = str(err.value)
        assert str(d / "skipped.csv") in msg and why in msg
        assert f"the cache is damaged; delete the folder {d} and run the command again" in msg


def test_a_run_skipped_csv_with_a_field_too_many_is_refused(tmp_path):
    path = tmp_path / "skipped.csv"
    path.write_text("key,reason\nk,r,x\n")
    with pytest.raises(ValueError, match=r"skipped.csv cannot be read \(not a list of skipped clips .*\); rerun"):
        pipeline.read_skipped(path, "rerun")


def test_a_cache_that_skipped_no_clip_has_an_empty_list(tmp_path):
    """The cache's skipped.csv is a header alone when no clip was skipped; a run's list is then not written."""
    p = prep.prepare_dataset(_cfg(tmp_path, _clip_list(tmp_path, lines=("p01,take1,take1,1,5,9",))))
    assert (p.cache_dir / "skipped.csv").read_text() == "key,reason\n"
    assert len(prep.load_prepared(p.cache_dir).skipped) == 0
    with pytest.raises(ValueError, match=r"skipped.csv cannot be read \(not a list of skipped clips"):
        prep.read_skipped(p.cache_dir / "skipped.csv", "rerun")


def test_an_error_without_text_is_a_reason_the_cache_reads_back(tmp_path, monkeypatch):
    """An exception without a message (ValueError()) was written as an empty reason, which the reader refuses as a
    row cut short: its type names it instead."""
    def fails(*a, **k):
        raise ValueError()
    monkeypatch.setattr(prep, "_read", fails)
    clips = _clip_list(tmp_path, lines=("p01,take1,take1,1,5,9",))
    res = prep.process_clip(ClipList(clips).records()[0], "cropped", prep._settings(_cfg(tmp_path, clips)))
    assert res["error"] == "ValueError"


# --- item 3: a clip list's frames folder ----------------------------------------------------------------------------

def test_a_frames_folder_whose_name_ends_in_a_space_is_found(tmp_path):
    """The frames cell was stripped, so a folder really named 'take1 ' was looked for as 'take1' and reported 'not
    found' under a name the user could not tell from the folder they see."""
    clips = _clip_list(tmp_path, lines=("p01,take1,take1 ,1,5,9",))
    (tmp_path / "take1").rename(tmp_path / "take1 ")
    rec = ClipList(clips).records()[0]
    assert rec.clip_dir == tmp_path / "take1 " and len(rec.frame_numbers) == 9


def test_a_stray_space_around_a_frames_folder_is_still_ignored(tmp_path):
    rec = ClipList(_clip_list(tmp_path, lines=("p01,take1,  take1 ,1,5,9",))).records()[0]
    assert rec.clip_dir == tmp_path / "take1" and len(rec.frame_numbers) == 9


# --- item 4: icegan features reads its names as text --------------------------------------------------------------

def test_icegan_features_names_the_dataset_as_written(tmp_path, monkeypatch, capsys):
    """features.csv was read back with pd.read_csv: a dataset '007' became 7 in the printed `icegan loso` line
    (dataset=7 selects no clip of the table)."""
    out = tmp_path / "f"

    def export(cfg, folder, progress=True):
        folder = Path(folder)
        folder.mkdir(parents=True)
        pd.DataFrame({"dataset": ["007"] * 2, "subject": ["007/p1", "007/p2"], "clip": ["001", "NA"],
                      "label": [0, 1], "path": ["maps/a.npy", "maps/b.npy"]}).to_csv(folder / "features.csv",
                                                                                    index=False)
        pipeline.write_skipped(folder / "skipped.csv", pd.DataFrame({"key": ["007/p3/001"], "reason": ["None"]}))
        return folder / "features.csv"
    monkeypatch.setattr(pipeline, "export_features", export)
    assert main(["features", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.rstrip().endswith("protocol=SDE dataset=007")
    assert "1 clip(s) could not be prepared and have no maps, e.g. 007/p3/001: None" in printed
