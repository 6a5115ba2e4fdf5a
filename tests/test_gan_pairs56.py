"""The CASME II manifest's face pairs (icegan.gan.pairs.load_casme2_pairs) with apex neighbours: a neighbour at or
before the onset is the neutral onset face itself (or earlier), one after the offset is past the expression; both
are left out, as the prepared pairs' select_neighbours does."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd

SUBJECT, CLIP, APEX = "sub01", "EP02_01f", 59


def _copy(shared_data, tmp_path, onset, offset):
    """A copy of one cropped clip (frames apex-2..apex+2 and the onset) whose manifest row says ``onset``/``offset``."""
    src = shared_data / "casme2"
    root = tmp_path / "casme2"
    (root / SUBJECT / CLIP).mkdir(parents=True)
    for n in {onset, *range(APEX - 2, APEX + 3)}:
        shutil.copy(src / SUBJECT / CLIP / f"img{n}.jpg", root / SUBJECT / CLIP / f"img{n}.jpg")
    m = pd.read_csv(src / "manifest.csv", dtype=str)
    m = m[(m.subject == SUBJECT) & (m.filename == CLIP)].copy()
    m["onset"], m["offset"] = str(onset), offset
    m.to_csv(root / "manifest.csv", index=False)
    return root


def test_apex_neighbours_stay_after_the_onset_and_up_to_the_offset(shared_data, tmp_path):
    from icegan.gan.pairs import load_casme2_pairs
    root = _copy(shared_data, tmp_path, onset=APEX - 1, offset=str(APEX + 1))
    pairs = load_casme2_pairs(root, img_size=32, apex_neighbors=2, cache=False)
    assert sorted(pairs.apex_frames.tolist()) == [APEX, APEX + 1]       # not apex-1 (the onset), apex-2, apex+2
    assert not any(np.array_equal(a, o) for a, o in zip(pairs.apex, pairs.onset))


def test_apex_neighbours_without_an_offset_are_capped_at_the_onset_only(shared_data, tmp_path):
    from icegan.gan.pairs import load_casme2_pairs
    root = _copy(shared_data, tmp_path, onset=APEX - 2, offset="/")
    pairs = load_casme2_pairs(root, img_size=32, apex_neighbors=2, cache=False)
    assert sorted(pairs.apex_frames.tolist()) == [APEX - 1, APEX, APEX + 1, APEX + 2]


def test_apex_neighbours_inside_the_clip_are_all_kept(shared_data, tmp_path):
    from icegan.gan.pairs import load_casme2_pairs
    root = _copy(shared_data, tmp_path, onset=46, offset="86")
    pairs = load_casme2_pairs(root, img_size=32, apex_neighbors=2, cache=False)
    assert sorted(pairs.apex_frames.tolist()) == list(range(APEX - 2, APEX + 3))
