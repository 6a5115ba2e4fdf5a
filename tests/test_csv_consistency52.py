"""The skipped clips' lists (a prepared cache's skipped.csv, a run's skipped.csv) are written and read as icegan's
other tables are: quoted only where a cell holds a '\\r', read by one reader that keeps names as written and refuses
a damaged list naming the file; a clip list's frames folder whose name really ends in a space is found; ``icegan
features`` reads the names of the features.csv it wrote as text."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pandas as pd
import pytest

from icegan import pipeline
from icegan.data import prepare as prep


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
