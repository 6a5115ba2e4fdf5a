"""README promises checked end to end: a max_folds smoke run extended after its data changed names the data change,
and `icegan data composite` prints a coding sheet's notes (a row pasted twice) the way `icegan data check` does."""

import json

import pandas as pd

from icegan.cli import main

from _feature_tables import CLASSES, write_feature_table


def test_extending_a_smoke_run_after_a_relabelled_clip_names_the_data_change(tmp_path, capsys):
    """A max_folds=1 run on a feature table, then one of its finished clips relabelled (a corrected sheet) and the
    whole run asked into the same folder: it was refused as differing in ['folds', 'folds_total', 'provenance'] with
    no reason, while the same max_folds rerun named the data change; both name it now."""
    from icegan.data.toy_features import make_toy_features
    table = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=3, seed=5, datasets=("casme2",)))
    out = tmp_path / "run"
    args = ["loso", "--out", str(out), "--no-progress", "data.source=table", f"data.table={table}",
            "model.name=logreg", "threads=1", "workers=1"]
    assert main([*args, "max_folds=1"]) == 0
    finished = json.loads((out / "run.json").read_text())["folds"][0]                 # e.g. "casme2/s01"
    clips = pd.read_csv(table)
    row = clips.index[clips["subject"] == finished][0]
    clips.loc[row, "label"] = CLASSES[(CLASSES.index(clips.loc[row, "label"]) + 1) % len(CLASSES)]
    clips.to_csv(table, index=False)
    before = (out / "predictions.csv").read_bytes()
    capsys.readouterr()
    for more in (["max_folds=1"], []):                # the same smoke run, and its extension to the whole run
        assert main([*args, *more]) == 2
        err = capsys.readouterr().err
        assert "holds a different LOSO run" in err and "the clips, their labels or their maps changed" in err, err
    assert (out / "predictions.csv").read_bytes() == before


def test_data_composite_prints_the_note_of_a_sheet_row_pasted_twice(tmp_path, capsys):
    """README: "A coding-sheet row pasted twice is read once (with a note)". `icegan data check` printed the note,
    `icegan data composite` counted the clip once and said nothing; it prints the sheet's notes now, as data check's
    lines, and a note its excluded line already gives (an apex cell '/') is not said twice."""
    rows = ["Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion",
            "1,EP01_01,10,13,16,4,happiness", "1,EP01_02,20,25,30,4,disgust", "2,EP02_01,10,/,16,4,surprise",
            "1,EP01_01,10,13,16,4,happiness"]                    # sheet row 5: row 2 pasted again
    (tmp_path / "CASME2-coding-20140508.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "composite.json"
    assert main(["data", "composite", "--annotations-dir", str(tmp_path), "--json", str(out)]) == 0  # EP02_01 left out by rule
    printed = capsys.readouterr().out
    assert "casme2       2        1        1        0        1\n" in printed
    assert ("  [warn] casme2/sub01/EP01_01: listed twice (sheet rows 2 and 5, the same cells): counted once"
            in printed.splitlines())
    assert printed.count("'/'") == 1, printed                   # in the excluded line only
    assert json.loads(out.read_text())["casme2"]["notes"] == [
        {"clip": "sub01/EP01_01", "note": "listed twice (sheet rows 2 and 5, the same cells): counted once"}]
