"""CASME II cropped release under ../shared/data/casme2: composite clips, problems reported by name,
cropped-mode preprocessing and the cache."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from icegan.cli import main as icegan_main
from icegan.data import prepare as prep
from icegan.data.casme2 import CASME2
from icegan.data.check import SKIP, check_dataset, record_problems

# clips of the 22 subjects on disk that the sheet puts in the composite but that lack onset or apex
UNUSABLE_COMPOSITE = {
    "casme2/sub02/EP01_11f": "apex frame 91 not on disk",
    "casme2/sub02/EP14_01": "apex frame 114 not on disk",
    "casme2/sub12/EP09_02": "missing on disk",
    "casme2/sub12/EP09_06": "apex frame 111 not on disk",
    "casme2/sub23/EP05_24f": "missing on disk",
}


@pytest.fixture(scope="module")
def casme2(shared_data):
    return CASME2(shared_data / "casme2", shared_data / "annotations" / "CASME2-coding-20140508.xlsx")


@pytest.fixture(scope="module")
def manifest(shared_data):
    return pd.read_csv(shared_data / "casme2" / "manifest.csv")


def test_composite_records_with_onset_and_apex(casme2, manifest):
    recs = casme2.records(composite_only=True)
    assert len(recs) == 145
    on_disk = [r for r in recs if r.clip_dir.parent.is_dir()]
    assert len(on_disk) == int(manifest["class3"].notna().sum()) == 123
    usable = [r for r in on_disk if not any(p.severity == SKIP for p in record_problems(r))]
    # every usable clip has its onset and apex frame files, and they load
    assert all(r.has_frame(r.onset) and r.has_frame(r.apex) for r in usable)
    assert all(r.frame_path(r.apex).name == f"img{r.apex}.jpg" for r in usable)
    # the data holds 118 such clips (123 composite clips of these subjects minus 5 broken ones)
    assert len(usable) == 118
    assert {r.key for r in on_disk} - {r.key for r in usable} == set(UNUSABLE_COMPOSITE)
    # agreement with the data's own manifest: usable == verified composite clips
    ver = manifest[manifest["class3"].notna() & manifest["verified"]]
    assert {f"casme2/{s}/{c}" for s, c in zip(ver["subject"], ver["filename"])} == {r.key for r in usable}
    assert {r.subject for r in usable} >= {"casme2/sub01", "casme2/sub26"}


def test_check_reports_broken_clips_by_name(shared_data, manifest):
    rep = check_dataset("casme2", shared_data / "casme2", read_images=False)
    skipped = {s["clip"]: s["reason"] for s in rep.clips_skipped}
    for key, why in UNUSABLE_COMPOSITE.items():
        assert why in skipped[key], (key, skipped.get(key))
    # every unverified row of the data's manifest is reported by name
    unver = manifest[~manifest["verified"]]
    for s, c in zip(unver["subject"], unver["filename"]):
        assert f"casme2/{s}/{c}" in skipped
    # apex "/" in the sheet is reported, truncated clips too
    assert "apex is not a frame number" in skipped["casme2/sub04/EP12_01f"]
    probs = {(p["clip"], p["problem"]) for p in rep.clips_with_problems}
    assert any(c == "casme2/sub02/EP11_01" and "truncated: frames 99-106" in t for c, t in probs)
    assert rep.missing_subjects == {"casme2/sub06": 5, "casme2/sub09": 14, "casme2/sub15": 3, "casme2/sub25": 7}
    assert rep.clips_usable == len(manifest) - len(unver) - 2  # minus sub04/EP12_01f (apex "/"), sub05/EP09_05f
    assert "apex equals onset (69)" in skipped["casme2/sub05/EP09_05f"]
    assert rep.by_class_usable == {"negative": 74, "positive": 25, "surprise": 19}
    assert len(rep.subjects) == 22


def test_cli_check_json(shared_data, tmp_path):
    out = tmp_path / "check.json"
    rc = icegan_main(["data", "check", "--dataset", "casme2", "--root", str(shared_data / "casme2"),
                      "--composite-only", "--json", str(out)])
    assert rc == 1          # the subset's skipped clips and subjects not on disk
    d = json.loads(out.read_text())
    assert d["clips_usable"] == 118 and d["clips_in_sheet"] == 145
    assert d["frames_checked"] > 5000 and d["unreadable_images"] == []
    assert {s["clip"] for s in d["clips_skipped"]} == set(UNUSABLE_COMPOSITE)
    assert sum(d["by_class_usable"].values()) == 118 and len(d["subjects"]) == 20
    for key in ("clips_ok", "clips_with_problems", "by_class", "subjects"):
        assert key in d


def test_prepare_cropped_and_cache(shared_data, tmp_path, monkeypatch):
    cfg = prep.PrepareConfig(
        datasets=[prep.DatasetSpec(name="casme2", root="{shared_data}/casme2", mode="cropped",
                                   subjects=["sub01", "sub02"])],
        cache_root=str(tmp_path), size=64, workers=1, progress=False)
    p = prep.prepare_dataset(cfg)
    m = p.manifest
    assert p.cache_dir.parent == tmp_path and (p.cache_dir / "COMPLETE").is_file()
    assert set(m["subject"]) == {"casme2/sub01", "casme2/sub02"}
    assert p.frames.onset.shape == (len(m), 64, 64) and p.frames.onset.dtype == np.uint8
    assert p.frames.apex.shape == (len(m), 64, 64)
    assert p.frames.apex_neighbours.shape == (len(m), 4, 64, 64)
    assert {"casme2/sub02/EP01_11f", "casme2/sub02/EP14_01"} <= set(p.skipped["key"])
    row = m[m["key"] == "casme2/sub01/EP02_01f"].iloc[0]
    assert (row["onset"], row["apex"], row["class3"]) == (46, 59, 1)
    assert [row[c] for c in ("apex_m2", "apex_m1", "apex_p1", "apex_p2")] == [57, 58, 60, 61]
    # cropped mode is a plain resize of the released crop
    import cv2
    src = cv2.imread(str(shared_data / "casme2/sub01/EP02_01f/img59.jpg"), cv2.IMREAD_GRAYSCALE)
    ref = cv2.resize(src, (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(p.frames.apex[int(row["index"])], ref)
    # second run: a cache hit, nothing processed again
    monkeypatch.setattr(prep, "process_clip", lambda *a, **k: pytest.fail("cache not used"))
    q = prep.prepare_dataset(cfg)
    assert q.cache_dir == p.cache_dir and np.array_equal(q.frames.onset, p.frames.onset)
    # a changed setting gives a new cache
    monkeypatch.undo()
    cfg.size = 32
    r = prep.prepare_dataset(cfg)
    assert r.cache_dir != p.cache_dir and r.frames.onset.shape[1:] == (32, 32)
    assert prep.load_prepared(r.cache_dir).manifest.equals(r.manifest)


def test_cli_prepare(shared_data, tmp_path, capsys):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("datasets:\n  - name: casme2\n    root: '{shared_data}/casme2'\n    subjects: [sub03]\n"
                   "workers: 1\nprogress: false\n")
    assert icegan_main(["prepare", "--config", str(cfg), f"cache_root={tmp_path}", "size=48"]) == 0
    out = capsys.readouterr().out
    caches = [d for d in tmp_path.iterdir() if d.is_dir()]
    assert len(caches) == 1 and f"cache: {caches[0]}" in out
    p = prep.load_prepared(caches[0])
    assert p.frames.onset.shape[1:] == (48, 48) and set(p.manifest["subject"]) == {"casme2/sub03"}
    assert f"prepared {len(p)} clips (48x48 gray)" in out
    # the per-class counts name MEGC2019's classes (class3 ids 0, 1, 2 = negative, positive, surprise), counted here
    # from the manifest independently of the command
    names = {0: "negative", 1: "positive", 2: "surprise", -1: "no MEGC2019 class"}
    for c3, n in p.manifest["class3"].value_counts().items():
        assert f"  casme2 {names[int(c3)]} (class3={int(c3)}): {n}" in out
    # a cache file damaged after the cache was finished: one line naming the file and the fix, not numpy's error
    apex = caches[0] / "apex.npy"
    apex.write_bytes(apex.read_bytes()[:200])
    with pytest.raises(prep.PrepareError, match=rf"{apex}: cannot be read .*the cache is damaged; delete the folder "
                                                rf"{caches[0]} and run the command again"):
        prep.load_prepared(caches[0])
    assert icegan_main(["prepare", "--config", str(cfg), f"cache_root={tmp_path}", "size=48"]) == 2
    err = capsys.readouterr().err
    assert f"{apex}: cannot be read" in err and "Traceback" not in err


def test_prepare_sequences_and_rgb(tmp_path):
    cfg = prep.PrepareConfig(
        datasets=[prep.DatasetSpec(name="casme2", root="{shared_data}/casme2", mode="cropped",
                                   clips=["sub01/EP02_01f", "sub02/EP11_01"])],
        cache_root=str(tmp_path), size=24, color="rgb", sequences=True, workers=1, progress=False)
    p = prep.prepare_dataset(cfg)
    m = p.manifest.set_index("clip")
    assert p.frames.onset.shape == (2, 24, 24, 3) and p.frames.apex_neighbours.shape == (2, 4, 24, 24, 3)
    a, b = int(m.loc["EP02_01f", "index"]), int(m.loc["EP11_01", "index"])
    assert p.frames.sequence(a).shape == (41, 24, 24, 3)  # onset 46 .. offset 86
    assert (m.loc["EP11_01", "seq_first"], m.loc["EP11_01", "seq_last"]) == (16, 98)  # truncated before 106
    assert p.frames.sequence(b).shape[0] == 98 - 16 + 1
    assert np.array_equal(p.frames.sequence(a)[0], p.frames.onset[a])
    frames = p.frames.sequence_frames(a)       # a frame by number: through the frame numbers kept
    assert frames.tolist() == list(range(46, 87))
    assert np.array_equal(p.frames.sequence(a)[np.flatnonzero(frames == 59)[0]], p.frames.apex[a])
    assert p.frames.sequence_frames(b).tolist() == list(range(16, 99))
    # colour: the released crops are colour images, channels differ
    assert np.abs(p.frames.onset[a, ..., 0].astype(int) - p.frames.onset[a, ..., 2]).mean() > 1
