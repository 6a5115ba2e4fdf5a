"""Your own clips (a clip list) through the main job's preprocessing and flow: `icegan features --clips`, then
`icegan predict`; and the prepared clips without a MEGC2019 class (label -1) left out of a LOSO run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _prepared import fake_prepared

from icegan.cli import main
from icegan.data.clip_list import ClipList


def _write(tmp_path: Path, text: str, name: str = "clips.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _frames(folder: Path, numbers, size: int = 16) -> None:
    import cv2
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        cv2.imwrite(str(folder / f"img{n}.jpg"), np.full((size, size), 100 + n, np.uint8))


def test_clip_list_records(tmp_path):
    """Columns, prefixes, labels (names, ids, empty), an empty apex left to spotting, frames found by number."""
    _frames(tmp_path / "v" / "a", range(10, 16))
    csv = _write(tmp_path, "subject,clip,frames,onset,apex,offset,label,dataset\n"
                           "p01,a,v/a,10,13,15,positive,\n"
                           "p01,b,v/b,3,,,,\n"
                           "lab/p02,c,v/c,1,2,,2,\n"
                           "p03,d,v/d,1,2,,surprise,mine\n")
    recs = ClipList(csv).records()
    assert [r.key for r in recs] == ["clips/p01/a", "clips/p01/b", "lab/p02/c", "mine/p03/d"]
    a, b, c, d = recs
    assert (a.class3, a.onset, a.apex, a.offset, a.apex_method) == (1, 10, 13, 15, "annotated")
    assert a.frame_numbers == tuple(range(10, 16)) and a.frame_paths[0] == tmp_path / "v" / "a" / "img10.jpg"
    assert (b.class3, b.apex, b.apex_method, b.frame_numbers) == (None, None, "unspotted", ())
    assert (c.dataset, c.class3) == ("lab", 2) and (d.dataset, d.class3) == ("mine", 2)
    assert [r.key for r in ClipList(csv).records(subjects=["p01"])] == ["clips/p01/a", "clips/p01/b"]
    minimal = _write(tmp_path, "subject,clip,frames,onset\np01,a,v/a,10\n", "minimal.csv")
    assert ClipList(minimal).records()[0].class3 is None


@pytest.mark.parametrize("text,match", [
    ("subject,clip,onset\np,a,1\n", r"missing column\(s\) \['frames'\]"),
    ("subject,clip,frames,onset\np,a,v,\n", r"line 2 \(clip 'a'\): empty onset"),
    ("subject,clip,frames,onset,apex\np,a,v,5,x\n", r"line 2 \(clip 'a'\): apex 'x' is not a frame number"),
    ("subject,clip,frames,onset,apex\np,a,v,5,3\n", r"line 2 \(clip 'a'\): apex 3 is before onset 5"),
    ("subject,clip,frames,onset,apex\np,a,v,5,5\n", r"line 2 \(clip 'a'\): apex 5 is the onset frame, so the "
                                                 r"onset→apex flow would be zero; .*leave the apex cell empty"),
    ("subject,clip,frames,onset,label\np,a,v,5,angry\n", r"line 2 \(clip 'a'\): label 'angry'"),
    ("subject,clip,frames,onset\np,a,v,5\n\np,a,w,6\n", r"line 4 \(clip 'a'\): .*listed twice \(first on line 2\)"),
    ("subject,clip,frames,onset,apex,offset\np,a,v,5,,3\n", r"line 2 \(clip 'a'\): offset 3 is before onset 5, so no "
                                                        r"apex can be spotted"),
    ("subject,clip,frames,onset,dataset\np,a,v,5,my data\n", r"line 2 .*dataset name 'my data' is not usable"),
    ("subject,clip,frames,onset\n", r"no clips listed"),
    ("subject,clip,frames,onset\np,a\n", r"line 2 \(clip 'a'\): empty frames \(the line has 2 of the header's 4 "
                                          r"fields: a row cut short"),
])
def test_clip_list_errors_name_the_line(tmp_path, text, match):
    csv = _write(tmp_path, text)
    with pytest.raises(ValueError, match=match) as exc:
        ClipList(csv).records()
    assert str(exc.value).startswith(f"{csv}: " if "line" not in match else f"{csv}, line "), str(exc.value)


def test_an_offset_before_the_apex_is_refused_naming_the_line(tmp_path):
    """A clip-list row whose offset lies before its apex is refused, as one whose apex is before its onset is: a clip
    list is the user's own, and the row was prepared with a manifest note alone. (An official sheet's row of that
    kind, e.g. SAMM 006_1_2, still loads with a note: tests/test_rawprep64.py.)"""
    with pytest.raises(ValueError, match=r"line 2 \(clip 'a'\): apex 9 is after offset 7: one of the two cells is "
                                         r"wrong"):
        ClipList(_write(tmp_path, "subject,clip,frames,onset,apex,offset\np,a,v,5,9,7\n")).records()


def test_missing_clip_list_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="clip list not found: .*none.csv"):
        ClipList(tmp_path / "none.csv")


def test_apex_is_spotted_between_onset_and_offset(tmp_path):
    """An empty apex is spotted on the frames from the onset to the offset only."""
    from icegan.data.spotting import spot_record_apex
    _frames(tmp_path / "v", range(1, 11))
    csv = _write(tmp_path, "subject,clip,frames,onset,offset\np,a,v,5,9\np,b,v,1,\n")
    a, b = ClipList(csv).records()
    assert spot_record_apex(a, method="middle").apex == 7          # middle of frames 5..9
    assert spot_record_apex(b, method="middle").apex == 6          # no offset: middle of frames 1..10


def test_loso_leaves_out_clips_without_a_class(monkeypatch, caplog):
    """The cache writes class3 = -1 for a clip without a MEGC2019 class: a LOSO run leaves it out (with a warning);
    icegan features keeps it with label -1."""
    from icegan.pipeline import load_main_config, load_samples
    fake_prepared(monkeypatch, [0, -1, 2, -1])
    cfg = load_main_config("configs/casme2.yaml", ["device=cpu"])
    with caplog.at_level("WARNING"):
        clips = load_samples(cfg, progress=False)
    assert clips.samples["label"].tolist() == [0, 2] and len(clips.onset) == 2
    assert clips.samples["subject"].tolist() == ["clips/p0", "clips/p2"]
    assert "2 prepared clips have no MEGC2019 class" in caplog.text
    assert clips.skipped.to_dict("list") == {"key": ["clips/p1/c", "clips/p3/c"],          # for the run's skipped.csv
                                             "reason": ["no MEGC2019 class: left out of the LOSO run"] * 2}
    kept = load_samples(cfg, progress=False, unlabelled=True)
    assert kept.samples["label"].tolist() == [0, -1, 2, -1] and len(kept.apex) == 4 and kept.skipped.empty


def test_the_loso_command_printed_for_a_partly_labelled_list_runs(monkeypatch, tmp_path, capsys, caplog):
    """Some clips without a label: features.csv keeps every clip (for icegan predict), features_labelled.csv the
    labelled ones alone, and the `icegan loso` line the command prints reads that table and runs (a LOSO refuses a
    row without a label, so it cannot read features.csv). A run stopped between the two tables (features.csv is
    written last) left a folder the rerun refused ('features_labelled.csv exists') until the user cleaned it; now
    the rerun says so and writes the folder again, and a complete folder is still never overwritten."""
    fake_prepared(monkeypatch, [0, 1, -1, 2, 0, 1, 2, -1])
    csv = _write(tmp_path, "subject,clip,frames,onset\np,a,v,1\n")      # the fake cache stands for its clips
    out = tmp_path / "f"
    features = ["features", "--config", "configs/casme2.yaml", "--clips", str(csv), "--out", str(out),
                "--no-progress", "device=cpu", "flow.method=farneback"]
    assert main(features) == 0
    printed = capsys.readouterr().out
    every = pd.read_csv(out / "features.csv", keep_default_na=False, dtype=str)
    labelled = pd.read_csv(out / "features_labelled.csv", keep_default_na=False, dtype=str)
    assert every["label"].tolist() == ["0", "1", "", "2", "0", "1", "2", ""]
    assert labelled.to_dict("records") == every[every["label"] != ""].to_dict("records")
    line = next(x for x in printed.splitlines() if x.startswith("run a recognizer on the labelled ones: "))
    command = line.split(": ", 1)[1].replace("runs/<name>", str(tmp_path / "loso")).split()
    assert command[:2] == ["icegan", "loso"] and f"data.table={out / 'features_labelled.csv'}" in command
    assert command[-2:] == ["protocol=SDE", "dataset=clips"]           # one dataset: its own LOSO
    assert main([*command[1:], "--no-progress", "model.epochs=1", "threads=1"]) == 0, capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "loso" / "predictions.csv")) == 6
    capsys.readouterr()
    assert main(features) == 2                          # a complete folder: never overwritten
    assert f"{out / 'features.csv'} exists: choose another --out" in capsys.readouterr().err
    from icegan import pipeline
    (out / "features.csv").unlink()
    (out / "features_labelled.csv").unlink()
    real_write = pipeline._write_table

    def killed_after_the_first_table(df, path):
        real_write(df, path)
        raise KeyboardInterrupt                         # a kill between the two tables
    monkeypatch.setattr(pipeline, "_write_table", killed_after_the_first_table)
    assert main(features) == 130 and "icegan features: interrupted" in capsys.readouterr().err
    monkeypatch.setattr(pipeline, "_write_table", real_write)
    assert (out / "features_labelled.csv").is_file() and not (out / "features.csv").exists()    # never whole-looking
    caplog.clear()
    assert main(features) == 0, capsys.readouterr().err
    assert f"{out / 'features_labelled.csv'} is left by a run stopped before it wrote features.csv" in caplog.text
    assert pd.read_csv(out / "features.csv", keep_default_na=False, dtype=str).equals(every)
    assert pd.read_csv(out / "features_labelled.csv", keep_default_na=False, dtype=str).equals(labelled)


def test_no_loso_command_is_suggested_for_labelled_clips_of_one_subject(monkeypatch, tmp_path, capsys):
    """One labelled clip (one subject): icegan features says a LOSO needs 2 subjects instead of printing an
    `icegan loso` line that would fail."""
    fake_prepared(monkeypatch, [0, -1, -1])
    csv = _write(tmp_path, "subject,clip,frames,onset\np,a,v,1\n")
    assert main(["features", "--config", "configs/casme2.yaml", "--clips", str(csv), "--out", str(tmp_path / "f"),
                 "--no-progress", "device=cpu", "flow.method=farneback"]) == 0
    printed = capsys.readouterr().out
    assert "run a recognizer on" not in printed
    assert "the labelled ones are of one subject (" in printed and "needs labelled clips of at least 2 subjects" in printed


def test_features_of_your_own_clips_then_predict(shared_data, tmp_path, capsys):
    """Two real CASME II clips listed as your own (one labelled, one not, its apex spotted), prepared and flowed with
    configs/casme2.yaml's settings, written as a table with an empty label, then scored by icegan predict."""
    root = shared_data / "casme2" / "sub01"
    csv = _write(tmp_path, f"subject,clip,frames,onset,apex,offset,label\n"
                           f"me,happy,{root / 'EP02_01f'},46,59,86,positive\n"
                           f"me,other,{root / 'EP03_02'},131,,141,\n"
                           f"me,typo,{root / 'EP99_nowhere'},1,2,3,negative\n")
    out = tmp_path / "features"
    rc = main(["features", "--config", "configs/casme2.yaml", "--clips", str(csv), "--clips-mode", "cropped",
               "--out", str(out), "--no-progress", "device=cpu", "data.prepare.workers=1",
               f"data.prepare.cache_root={tmp_path / 'cache'}"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    table = pd.read_csv(out / "features.csv", keep_default_na=False, dtype=str)
    assert table["subject"].tolist() == ["clips/me", "clips/me"] and table["label"].tolist() == ["1", ""]
    assert "1 of the 2 clips with maps have no label: score them with icegan predict" in printed
    # the clip whose frames are not on disk: no maps, and the summary says so (not only a log warning)
    assert "1 clip(s) could not be prepared and have no maps, e.g. clips/me/typo: " in printed
    assert f"(all of them in {out / 'skipped.csv'})" in printed
    assert pd.read_csv(out / "skipped.csv")["key"].tolist() == ["clips/me/typo"]
    assert json.loads((out / "provenance.json").read_text())["clips_skipped"] == 1
    assert pd.read_csv(out / "features_labelled.csv", keep_default_na=False, dtype=str)["clip"].tolist() == ["happy"]
    manifest = pd.read_csv(next((tmp_path / "cache").glob("*/manifest.csv")))
    spotted = manifest.set_index("clip").loc["other"]
    assert 131 <= spotted["apex"] <= 141 and spotted["apex_method"] != "annotated"
    maps = np.load(out / table["path"][1])
    assert maps.shape == (3, 28, 28) and maps.min() >= 0 and maps.max() <= 1

    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--no-progress", "data.source=toy", "model.name=logreg",
                 "threads=1"]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(out / "features.csv"),
                 "--out", str(tmp_path / "p.csv")]) == 0
    p = pd.read_csv(tmp_path / "p.csv")
    assert p["clip"].tolist() == ["happy", "other"] and p["y_true"].isna().tolist() == [False, True]
    assert "metrics need all of them" in capsys.readouterr().out


def test_data_check_reports_a_clip_list(shared_data, tmp_path):
    """`icegan data check --dataset clips`: usable clips, a missing folder and an apex outside the frames, named.
    The clips of one frames folder have onsets 46, 47 and 48 (one folder with one onset is one clip, refused twice)."""
    import json
    root = shared_data / "casme2" / "sub01"
    csv = _write(tmp_path, f"subject,clip,frames,onset,apex,offset,label\n"
                           f"me,happy,{root / 'EP02_01f'},46,59,86,positive\n"
                           f"me,spotted,{root / 'EP02_01f'},47,,,\n"
                           f"me,gone,{tmp_path / 'nowhere' / 'take1'},1,,,\n"
                           f"me,late,{root / 'EP02_01f'},48,999,,\n")
    assert main(["data", "check", "--dataset", "clips", "--root", str(csv), "--json", str(tmp_path / "r.json")]) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["clips_in_sheet"], report["clips_usable"], report["scope"]) == (4, 2, "all listed clips")
    assert report["by_class_usable"] == {"negative": 0, "positive": 1, "surprise": 0}
    reasons = {s["clip"]: s["reason"] for s in report["clips_skipped"]}
    assert set(reasons) == {"clips/me/gone", "clips/me/late"}
    assert "in the clip list but missing on disk (clip folder" in reasons["clips/me/gone"]
    assert report["missing_subjects"] == {}     # listed one by one: a missing parent folder is not a missing subject
    assert "apex frame 999 not on disk" in reasons["clips/me/late"]
    assert not any("offset" in p["problem"] for p in report["clips_with_problems"])   # offset is optional here


def test_features_clips_errors_are_one_line(tmp_path, capsys):
    """A missing clip list, or a config that reads the synthetic demo set: one line naming the problem."""
    rc = main(["features", "--clips", str(tmp_path / "none.csv"), "--out", str(tmp_path / "f"), "--config",
               "configs/casme2.yaml", "device=cpu"])
    assert rc == 2 and "clip list not found" in capsys.readouterr().err
    csv = _write(tmp_path, "subject,clip,frames,onset\np,a,v,1\n")
    rc = main(["features", "--clips", str(csv), "--out", str(tmp_path / "f")])        # configs/demo.yaml: synthetic
    assert rc == 2 and "--clips replaces the prepared datasets" in capsys.readouterr().err
    assert not (tmp_path / "f" / "features.csv").exists()


def test_onset_frame_zero_is_a_frame(tmp_path):
    """Frame numbers start at 0: a clip whose onset is frame 0 loads with onset 0."""
    from icegan.data.clip_list import ClipList
    p = tmp_path / "clips.csv"
    p.write_text("subject,clip,frames,onset,apex\np01,take1,frames,0,5\n")
    assert ClipList(p).records()[0].onset == 0


def test_data_check_reports_frames_missing_between_onset_and_apex(tmp_path):
    """No offset: frames absent between the onset and the apex are a warning of `icegan data check` (prepare reads
    the onset, the apex and its neighbours only); with an offset the span is onset..offset, as before."""
    from icegan.data.check import check_dataset
    for clip in "ab":           # a folder each: one folder with one onset and apex is one clip
        _frames(tmp_path / "v" / clip, [*range(10, 13), *range(16, 22)])
    csv = _write(tmp_path, "subject,clip,frames,onset,apex,offset\np,a,v/a,10,19,\np,b,v/b,10,19,21\n")
    rep = check_dataset("clips", csv, read_images=False)
    problems = {p["clip"]: p for p in rep.clips_with_problems}
    assert problems["clips/p/a"] == {"clip": "clips/p/a", "severity": "warn",
                                     "problem": "missing frames 13-15 inside onset..apex 10-19"}
    assert problems["clips/p/b"]["problem"] == "missing frames 13-15 inside onset..offset 10-21"
    assert (rep.clips_usable, rep.clips_ok) == (2, 0)


def test_two_files_for_one_frame(tmp_path, caplog):
    """img50.jpg and img050.jpg: the listing keeps one of them, arbitrarily. For the onset or apex the clip is skipped
    (data check and prepare), for another frame it is a warning; reading the list says so (icegan features)."""
    import cv2

    from icegan.data.check import check_dataset
    _frames(tmp_path / "v" / "a", range(10, 20))
    cv2.imwrite(str(tmp_path / "v" / "a" / "img012.jpg"), np.zeros((16, 16), np.uint8))
    _frames(tmp_path / "v" / "b", range(10, 20))
    cv2.imwrite(str(tmp_path / "v" / "b" / "img015.jpg"), np.zeros((16, 16), np.uint8))
    csv = _write(tmp_path, "subject,clip,frames,onset,apex\np,a,v/a,10,15\np,b,v/b,10,15\n")
    with caplog.at_level("WARNING", logger="icegan.data"):
        rep = check_dataset("clips", csv, read_images=False)
    said = [r.getMessage() for r in caplog.records if r.module == "clip_list"]
    assert len(said) == 2 and "line 2 (clip 'a'): two files for frame 12:" in said[0] and "the first is used" in said[0]
    assert [p["severity"] for p in rep.clips_with_problems if p["clip"] == "clips/p/a"] == ["warn"]
    skipped = {s["clip"]: s["reason"] for s in rep.clips_skipped}
    assert list(skipped) == ["clips/p/b"]
    assert "two files for frame 15: " in skipped["clips/p/b"] and "the apex frame is ambiguous" in skipped["clips/p/b"]
