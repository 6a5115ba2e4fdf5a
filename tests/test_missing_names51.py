"""Names that pandas reads as missing values: pd.read_csv turns 'NA', 'None', 'null', 'nan', 'N/A', ... into NaN even
in a column read with dtype=str, so a dataset, subject or clip of a researcher's own data named so lost its name when
icegan read back its own CSV files (predictions.csv on resume and in ensemble / compare, nested selection's inner
predictions, a prepared cache's manifest.csv, the CASME II manifest of the GAN pairs). They read as written now."""
import io
import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from _clip_records import grey_frames

from icegan.cli import main
from icegan.csv_names import read_csv_names

# datasets 'null' / 'nan', subjects 'NA' / 'None' / 'NULL', clips 'null' / 'NaN' / '<NA>'
_SUBJECTS = [("null", "NA"), ("null", "None"), ("nan", "NULL"), ("nan", "s4")]
_CLIPS = ["null", "NaN", "<NA>"]
_LABELS = ["negative", "positive", "surprise"]


def _table(tmp_path):
    """A feature table of 4 subjects x 3 clips (one per class), with easily separable maps in [0, 1]."""
    (tmp_path / "maps").mkdir(parents=True)
    rows = ["dataset,subject,clip,label,path"]
    i = 0
    for dataset, subject in _SUBJECTS:
        for k, (clip, label) in enumerate(zip(_CLIPS, _LABELS)):
            x = np.random.default_rng(i).random((3, 28, 28), dtype=np.float32) * 0.5 + 0.25 * k
            np.save(tmp_path / "maps" / f"{i}.npy", x)
            rows.append(f"{dataset},{subject},{clip},{label},maps/{i}.npy")
            i += 1
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "t.csv"


def _loso(table, out, *extra):
    return main(["loso", "--out", str(out), "data.source=table", f"data.table={table}", "model.name=logreg",
                 "threads=1", "--no-progress", *extra])


def _as_written(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("names")
    table = _table(tmp / "table")
    assert _loso(table, tmp / "ref") == 0
    assert _loso(table, tmp / "c2", "model.logreg_C=0.5") == 0
    return tmp, table


def test_a_resumed_run_keeps_the_names_and_scores_as_an_uninterrupted_one(runs):
    """A run killed after its first fold (and in the middle of a row of the second) resumes. Before, the clips
    'null', 'NaN' and '<NA>' read back as NaN: the finished fold was not recognised and was trained again (and a
    fold of names 'null' and 'c1' crashed: "'<' not supported between instances of 'str' and 'float'"); now it
    is kept, and the resumed predictions.csv is the uninterrupted run's, byte for byte, and so are its metrics."""
    tmp, table = runs
    ref = tmp / "ref"
    pred = _as_written(ref / "predictions.csv")
    assert sorted(set(pred["dataset"])) == ["nan", "null"]
    assert {"null/NA", "null/None", "nan/NULL"} <= set(pred["subject"])
    assert {"null", "NaN", "<NA>"} <= set(pred["clip"])
    run = tmp / "resumed"
    shutil.copytree(ref, run)
    lines = (ref / "predictions.csv").read_text().splitlines(keepends=True)
    (run / "predictions.csv").write_text("".join(lines[:4]) + lines[4][:12])      # fold 0 and a cut row of fold 1
    (run / "metrics.json").unlink()
    assert _loso(table, run) == 0
    resumed = json.loads((run / "environment.jsonl").read_text().splitlines()[-1])
    assert resumed["folds_finished_at_start"] == 1
    assert (run / "predictions.csv").read_text() == (ref / "predictions.csv").read_text()
    got, want = json.loads((run / "metrics.json").read_text()), json.loads((ref / "metrics.json").read_text())
    assert got == want and sorted(got["per_dataset"]) == ["nan", "null"]
    assert (run / "per_subject.csv").read_text() == (ref / "per_subject.csv").read_text()
    assert "null/None" in (run / "per_subject.csv").read_text()


def test_ensemble_compare_and_table_read_the_names(runs, capsys):
    """icegan ensemble and compare refused the runs ('line 2: empty clip (a row cut short, or cells left empty)');
    now the ensemble's predictions.csv names every clip as the runs do."""
    tmp, _ = runs
    assert main(["ensemble", "--out", str(tmp / "ens"), str(tmp / "ref"), str(tmp / "c2")]) == 0
    ens, ref = _as_written(tmp / "ens" / "predictions.csv"), _as_written(tmp / "ref" / "predictions.csv")
    names = ["dataset", "subject", "clip", "y_true"]
    assert sorted(ens[names].itertuples(index=False)) == sorted(ref[names].itertuples(index=False))
    capsys.readouterr()
    assert main(["compare", "--resamples", "200", str(tmp / "ref"), str(tmp / "c2")]) == 0
    assert "error" not in capsys.readouterr().err
    assert main(["table", str(tmp / "ref"), str(tmp / "ens")]) == 0
    out = capsys.readouterr().out
    assert "null UF1" in out and "nan UF1" in out


def test_read_finished_run_keeps_the_names(runs):
    from icegan.ensemble import read_finished_run
    tmp, _ = runs
    _, pred = read_finished_run(tmp / "ref")
    assert pred["clip"].tolist() == _as_written(tmp / "ref" / "predictions.csv")["clip"].tolist()
    assert pred["fold"].dtype == np.int64 and pred["score_negative"].dtype == np.float64


def test_read_csv_names_reads_only_the_name_columns_as_written():
    """Names stay text as written ('001' too); an empty name cell is still missing; the other columns read as
    pd.read_csv reads them (an 'NA' score is NaN, numbers are numbers)."""
    text = "subject,clip,fold,score\nNA,001,0,0.5\nNone,,1,NA\n"
    df = read_csv_names(io.StringIO(text), ["subject", "clip", "dataset"])
    assert df["subject"].tolist() == ["NA", "None"]
    assert df["clip"].iloc[0] == "001" and pd.isna(df["clip"].iloc[1])
    assert df["fold"].dtype == np.int64 and df["score"].iloc[0] == 0.5 and pd.isna(df["score"].iloc[1])
    src = io.StringIO("x" + text)                    # read from the StringIO's position, as pd.read_csv does
    src.seek(1)
    assert read_csv_names(src, ["subject"])["subject"].tolist() == ["NA", "None"]


def test_selection_cache_keeps_the_names(tmp_path):
    from icegan.selection import INNER_COLUMNS, _read_cache
    cache = tmp_path / "inner.csv"
    cache.write_text(",".join(INNER_COLUMNS) + ",score_negative\nnull/NA,0,3,null,null/None,None,1,0.25\n")
    df, cut = _read_cache(cache, list(INNER_COLUMNS))
    assert not cut
    assert df.loc[0, ["outer", "dataset", "subject", "clip"]].tolist() == ["null/NA", "null", "null/None", "None"]
    assert df.loc[0, "row"] == 3 and df.loc[0, "score_negative"] == 0.25


def test_prepared_cache_manifest_keeps_the_names(tmp_path):
    """A clip list's subject 'NA' and clip 'None' read back from the prepared cache's manifest.csv as written (they
    were NaN, and 'nan' in features.csv and predictions.csv)."""
    from icegan.data import prepare as prep
    grey_frames(tmp_path / "None", range(1, 10))          # frames 1-9 of the clip
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset,label\nNA,None,None,1,5,9,positive\n")
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv))],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    made = prep.prepare_dataset(cfg)
    back = prep.load_prepared(made.cache_dir).manifest
    assert back.loc[0, "subject"] == made.manifest.loc[0, "subject"] and back.loc[0, "subject"].endswith("NA")
    assert back.loc[0, "clip"] == "None"
    assert back[["key", "dataset", "subject", "clip", "emotion"]].equals(
        made.manifest[["key", "dataset", "subject", "clip", "emotion"]].astype(back["key"].dtype))


def test_gan_pairs_manifest_keeps_the_names(tmp_path):
    """A CASME II manifest row of subject 'NA' and clip 'None' (folders NA/None) read as nan/nan and looked for its
    frames in nan/nan/ ('onset frame missing'); now it is found."""
    from icegan.gan.pairs import load_casme2_pairs
    d = tmp_path / "NA" / "None"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for n in (10, 20):
        cv2.imwrite(str(d / f"img{n}.jpg"), rng.integers(0, 256, (40, 40), dtype=np.uint8))
    (tmp_path / "manifest.csv").write_text("subject,filename,emotion,class3,onset,apex,offset,verified,"
                                           "apex_in_folder,note\nNA,None,x,positive,10,20,30,True,True,\n")
    ps = load_casme2_pairs(tmp_path, img_size=32, cache=False)
    assert ps.subjects == ["casme2/NA"] and ps.clips == ["NA/None"]
