"""The last review of the session's own fixes (2026-12-06): icegan predict always names the model to score a table of
another label set, its probing reads do not repeat the label-like-column warning, a suite warns of a class without a
clip once, the relative-path hint only for a path the CSV gave relative, a refused map's range printed with enough
digits, and an empty model file is said to be cut short."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from _feature_tables import toy_config, write_feature_table

from icegan.commands.loso import LosoConfig, check_run, load_feature_set
from icegan.commands.predict import fit, predict_table
from icegan.config import load_config
from icegan.data.feature_table import load_table_features
from icegan.data.features import FeatureSet
from icegan.data.toy_features import make_toy_features
from icegan.saved_recognizer import SavedRecognizerError, load_recognizer


def _maps(folder, n):
    (folder / "maps").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        np.save(folder / "maps" / f"{i}.npy", np.full((3, 28, 28), 0.5, dtype=np.float32))


def test_predict_names_the_model_for_a_table_of_another_label_set_where_the_reader_does_not(tmp_path):
    """SMIC rows labelled 'happiness' (a CASME II 5-class name, which the reader does not suggest for SMIC rows):
    predict with a MEGC2019 model still ends with the model to score them with. Fails if predict leaves the hint to
    the reader's message."""
    fit(toy_config("model.name=logreg"), tmp_path / "three.pt", progress=False)
    _maps(tmp_path, 2)
    csv = tmp_path / "sm.csv"
    csv.write_text("dataset,subject,clip,label,path\nsmic,s1,c0,happiness,maps/0.npy\n"
                   "smic,s1,c1,happiness,maps/1.npy\n")
    with pytest.raises(ValueError) as err:
        predict_table([tmp_path / "three.pt"], csv)
    msg = str(err.value)
    assert "this table's labels are classes of" in msg
    other = msg.split("this table's labels are classes of ", 1)[1].split(":")[0].strip()
    assert msg.count(f"data.labels={other}") == 1


def test_predict_s_probing_reads_do_not_repeat_the_label_column_warning(tmp_path, caplog):
    """A predict table with its labels in an 'emotion' column and a clip listed twice: the warning about the column
    is given once, not once per label set predict probes the table with."""
    fit(toy_config("model.name=logreg"), tmp_path / "three.pt", progress=False)
    _maps(tmp_path, 2)
    csv = tmp_path / "e.csv"
    csv.write_text("dataset,subject,clip,emotion,path\ncasme2,s01,c0,negative,maps/0.npy\n"
                   "casme2,s01,c0,negative,maps/1.npy\n")
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError):
        predict_table([tmp_path / "three.pt"], csv)
    assert sum("looks like the labels" in r.getMessage() for r in caplog.records) == 1


def test_a_suite_s_members_on_the_same_data_warn_of_a_class_without_a_clip_once(tmp_path, caplog):
    """check_run with the suite's set of warnings given: the same warning for a second member is not repeated."""
    fs = make_toy_features(n_subjects_per_dataset=2)
    keep = (fs.samples["label"] != 2).to_numpy()
    table = write_feature_table(tmp_path, FeatureSet(fs.samples[keep].reset_index(drop=True),
                                                     fs.features[torch.tensor(keep)]), name="t.csv")
    said: set[str] = set()
    with caplog.at_level(logging.WARNING, logger="icegan"):
        for seed in (0, 1):
            cfg = load_config(LosoConfig, None, ["model.name=logreg", "threads=1", "data.source=table",
                                                 f"data.table={table}", f"seed={seed}"])
            check_run(cfg, load_feature_set(cfg.data), said)
    assert sum("no clip in the LOSO's scope" in r.getMessage() for r in caplog.records) == 1 and len(said) == 1


def test_the_relative_path_hint_only_for_a_path_the_csv_gave_relative(tmp_path):
    """A missing map named by an absolute path under the CSV's folder gets no "paths are relative" note; the same
    map named relative does."""
    _maps(tmp_path, 1)
    csv = tmp_path / "t.csv"
    for cell, hinted in ((f"{tmp_path}/maps/missing.npy", False), ("maps/missing.npy", True)):
        csv.write_text(f"dataset,subject,clip,label,path\ncasme2,sub01,EP0,negative,{cell}\n")
        with pytest.raises(FileNotFoundError) as err:
            load_table_features(csv)
        assert ("paths are relative to the CSV's folder" in str(err.value)) == hinted


def test_a_refused_map_s_range_shows_the_excess(tmp_path):
    """1.0000011 (beyond the 1e-6 tolerance) is refused, and the message's range does not read as 1.000001 (within
    it)."""
    (tmp_path / "maps").mkdir()
    a = np.full((3, 8, 8), 0.5, np.float32)
    a.flat[0] = np.float32(1.0000011)
    np.save(tmp_path / "maps" / "c0.npy", a)
    csv = tmp_path / "t.csv"
    csv.write_text("dataset,subject,clip,label,path\ncasme2,sub01,EP0,negative,maps/c0.npy\n")
    with pytest.raises(ValueError) as err:
        load_table_features(csv)
    assert f"{float(np.float32(1.0000011)):.9g}" in str(err.value) and "1.000001]" not in str(err.value)


def test_an_empty_model_file_is_said_to_be_cut_short(tmp_path):
    """A 0-byte model file (a copy interrupted before its first byte) is cut short, not "not an icegan model file"."""
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(SavedRecognizerError, match="cut short or damaged"):
        load_recognizer(tmp_path / "empty.pt")
