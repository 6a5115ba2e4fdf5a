"""Names written into icegan's CSV files come back exactly: through icegan's own readers and through plain
``pd.read_csv(..., dtype=str, keep_default_na=False)``."""
import csv
import io

import numpy as np
import pandas as pd
import pytest
from _clip_records import grey_frames

from icegan.csv_names import read_csv_names

NAMES = ["EP01, take 2", 'a "quoted" clip', " padded ", "001", "NA", "None", "a\rb", "a\nb", "a\r\nb"]


def _samples(names):
    rows = []
    for i, subject in enumerate(["s1", "s2", "s3"]):
        for j, clip in enumerate(names):
            rows.append({"dataset": "casme2", "subject": f"casme2/{subject}", "clip": clip, "label": (i + j) % 3})
    return pd.DataFrame(rows)


def _scores(samples):
    def fold_fn(fold):
        return np.eye(3)[samples["label"].to_numpy()[fold.test_idx]] * 0.5 + 0.5 / 3    # probabilities
    return fold_fn


@pytest.mark.parametrize("name", NAMES)
def test_predictions_csv_round_trip_and_resume(tmp_path, name):
    from icegan.protocol import run_loso
    samples = _samples([name, "plain"])
    ref = run_loso(samples, _scores(samples), tmp_path / "run", progress=False)
    pred = read_csv_names(tmp_path / "run" / "predictions.csv", ["dataset", "subject", "clip"])
    assert sorted(pred["clip"]) == sorted(samples["clip"])
    plain = pd.read_csv(tmp_path / "run" / "predictions.csv", dtype=str, keep_default_na=False)
    assert sorted(plain["clip"]) == sorted(samples["clip"])
    # resuming reads the finished folds back: every fold is done, none is rerun
    def never(fold):
        raise AssertionError(f"fold {fold.subject} rerun: its rows were not read back")
    assert run_loso(samples, never, tmp_path / "run", progress=False) == ref


@pytest.mark.parametrize("name", NAMES)
def test_per_subject_csv_round_trip(tmp_path, name):
    from icegan.protocol import run_loso
    samples = _samples(["c1", "c2"])
    samples["subject"] = samples["subject"].str.replace("casme2/s1", f"casme2/{name}", regex=False)
    run_loso(samples, _scores(samples), tmp_path / "run", progress=False)
    back = pd.read_csv(tmp_path / "run" / "per_subject.csv", dtype=str, keep_default_na=False)
    assert f"casme2/{name}" in back["subject"].tolist()


@pytest.mark.parametrize("name", NAMES)
def test_ensemble_predictions_csv_round_trip(tmp_path, name):
    from icegan.cli import main
    from icegan.protocol import run_loso
    samples = _samples([name, "plain"])
    for run in ("a", "b"):
        run_loso(samples, _scores(samples), tmp_path / run, progress=False)
    assert main(["ensemble", "--out", str(tmp_path / "ens"), str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    back = read_csv_names(tmp_path / "ens" / "predictions.csv", ["dataset", "subject", "clip"])
    assert sorted(back["clip"]) == sorted(samples["clip"])


@pytest.mark.parametrize("name", NAMES)
def test_selection_inner_cache_round_trip(tmp_path, name):
    from icegan.selection import INNER_COLUMNS, _read_cache, _rewrite
    row = {"outer": f"casme2/{name}", "row": 3, "dataset": name, "subject": f"casme2/{name}", "clip": name,
           "y_true": 1}
    df = pd.DataFrame([{c: row.get(c, 0) for c in INNER_COLUMNS} | {"score_negative": 0.25}] * 2)
    cache = tmp_path / "inner.csv"
    _rewrite(df, cache)
    back, cut = _read_cache(cache, list(INNER_COLUMNS))
    assert not cut and len(back) == 2
    for c in ("outer", "dataset", "subject", "clip"):
        assert back[c].tolist() == df[c].tolist()


@pytest.mark.parametrize("name", NAMES)
def test_feature_table_round_trip(tmp_path, name):
    from icegan.data.feature_table import read_csv_cells
    from icegan.pipeline import _write_table
    df = pd.DataFrame({"dataset": [name, "d"], "subject": [f"d/{name}", "d/s"], "clip": [name, "c"],
                       "label": ["negative", ""], "path": ["maps/0.npy", "maps/1.npy"]})
    _write_table(df, tmp_path / "features.csv")
    back = read_csv_cells(tmp_path / "features.csv")
    assert back[["dataset", "subject", "clip"]].values.tolist() == df[["dataset", "subject", "clip"]].values.tolist()
    plain = pd.read_csv(tmp_path / "features.csv", dtype=str, keep_default_na=False)
    assert plain["clip"].tolist() == df["clip"].tolist()


@pytest.mark.parametrize("name", NAMES)
def test_prepared_manifest_round_trip(tmp_path, name):
    from icegan.data import prepare as prep
    grey_frames(tmp_path / "frames", range(1, 10))          # frames 1-9 of the clip
    clips = tmp_path / "clips.csv"
    pd.DataFrame({"subject": [name], "clip": [name], "frames": ["frames"], "onset": [1], "apex": [5], "offset": [9],
                  "label": ["positive"]}).to_csv(clips, index=False, quoting=csv.QUOTE_ALL)
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(clips))],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    made = prep.prepare_dataset(cfg)
    back = prep.load_prepared(made.cache_dir).manifest
    # the clip list's reader strips a cell's spaces (icegan.data.clip_list): the manifest keeps what it read
    assert back.loc[0, "clip"] == made.manifest.loc[0, "clip"] == (name.strip(" ") if name.strip() else name)
    assert back.loc[0, "subject"] == made.manifest.loc[0, "subject"]


def test_tables_of_ordinary_names_keep_their_bytes():
    """Only a table holding a '\\r' is written with every field quoted: recorded runs' files are unchanged."""
    from icegan.csv_names import csv_quoting
    df = pd.DataFrame({"subject": ["casme2/sub01", "EP01, take 2", "a\nb"], "score": [0.5, np.nan, 1.0]})
    assert csv_quoting(df) == csv.QUOTE_MINIMAL
    assert df.to_csv(index=False, quoting=csv_quoting(df)) == df.to_csv(index=False)
    df.loc[0, "subject"] = "a\rb"
    assert csv_quoting(df) == csv.QUOTE_ALL
    assert read_csv_names(io.StringIO(df.to_csv(index=False, quoting=csv_quoting(df))), ["subject"])[
        "subject"].tolist() == df["subject"].tolist()


@pytest.mark.parametrize("name", NAMES)
def test_results_table_csv_round_trip(tmp_path, name):
    """icegan table --format csv: a row label (a run's name) reads back from the CSV as given (stripped)."""
    from icegan.protocol import run_loso
    from icegan.report import parse_entry, results_table
    samples = _samples(["c1", "c2"])
    run_loso(samples, _scores(samples), tmp_path / "run", progress=False)
    text = results_table([parse_entry(f"{name}={tmp_path / 'run'}")], fmt="csv")
    back = pd.read_csv(io.StringIO(text, newline=""), dtype=str, keep_default_na=False)
    assert back.iloc[:, 0].tolist() == [name.strip()]
