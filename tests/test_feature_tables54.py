"""Feature-table reading found wanting by a new user's walkthrough: an .npz saved as .npy, a map a float-rounding
hair outside [0, 1], a label column headed 'emotion', a path relative to the wrong folder or written with Windows
backslashes, and icegan predict's hint for labels of another label set."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from icegan.data.feature_table import load_table_features, parse_class_label, read_feature_table


def _table(folder: Path, rows: list[str], header: str = "dataset,subject,clip,label,path") -> Path:
    csv = folder / "t.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    return csv


def _maps(folder: Path, n: int = 2, value: float = 0.5) -> None:
    (folder / "maps").mkdir(exist_ok=True)
    for i in range(n):
        np.save(folder / "maps" / f"c{i}.npy", np.full((3, 8, 8), value, dtype=np.float32))


def test_npz_renamed_npy_is_named_as_an_archive(tmp_path):
    _maps(tmp_path)
    np.savez(tmp_path / "maps" / "z.npz", a=np.zeros((3, 8, 8), np.float32))
    os.replace(tmp_path / "maps" / "z.npz", tmp_path / "maps" / "c1.npy")
    csv = _table(tmp_path, ["casme2,sub01,EP0,negative,maps/c0.npy", "casme2,sub01,EP1,positive,maps/c1.npy"])
    with pytest.raises(ValueError, match=r"t\.csv, line 3 \(clip 'EP1'\): \S+c1\.npy is an \.npz archive, not one "
                                         r"array: save one array with numpy\.save"):
        load_table_features(csv)


def test_map_a_rounding_hair_over_1_is_clipped_not_refused(tmp_path):
    _maps(tmp_path)
    a = np.full((3, 8, 8), 0.5, dtype=np.float32)
    a[0, 0, 0] = np.float32(1.0000001)          # float32 rounding of a min–max normalisation
    a[1, 0, 0] = np.float32(-5e-7)
    np.save(tmp_path / "maps" / "c1.npy", a)
    csv = _table(tmp_path, ["casme2,sub01,EP0,negative,maps/c0.npy", "casme2,sub01,EP1,positive,maps/c1.npy"])
    x = load_table_features(csv).features
    assert float(x.max()) == 1.0 and float(x.min()) == 0.0
    assert float(x[1, 0, 0, 0]) == 1.0 and float(x[1, 1, 0, 0]) == 0.0
    assert float(x[0].min()) == 0.5 == float(x[0].max())          # an accepted map is kept as it is


@pytest.mark.parametrize("lo, hi, shown", [(0.0, 1.000002, "[0, 1.00000203]"), (-2e-6, 1.0, "[-1.99999999e-06, 1]")])
def test_map_beyond_the_tolerance_names_its_exact_range(tmp_path, lo, hi, shown):
    """The range printed with 9 significant digits (float32's): never rounded into [0, 1] or into the tolerance."""
    _maps(tmp_path, 1)
    a = np.full((3, 8, 8), 0.5, dtype=np.float32)
    a[0, 0, 0], a[0, 0, 1] = lo, hi
    np.save(tmp_path / "maps" / "c0.npy", a)
    csv = _table(tmp_path, ["casme2,sub01,EP0,negative,maps/c0.npy"])
    with pytest.raises(ValueError) as err:
        load_table_features(csv)
    assert f"holds values in {shown};" in str(err.value)
    assert "values in [0, 1];" not in str(err.value)


@pytest.mark.parametrize("column", ["emotion", "Class", "expression"])
def test_predict_table_with_a_label_like_column_warns(tmp_path, caplog, column):
    _maps(tmp_path)
    csv = _table(tmp_path, ["casme2,sub01,EP0,negative,maps/c0.npy", "casme2,sub01,EP1,positive,maps/c1.npy"],
                 header=f"dataset,subject,clip,{column},path")
    with caplog.at_level(logging.WARNING, logger="icegan.data.feature_table"):
        table = read_feature_table(csv, labelled=False)
    assert table["label"].tolist() == [-1, -1]
    assert f"column '{column.lower()}'" in caplog.text and "the label column is 'label'" in caplog.text
    assert str(csv) in caplog.text
    with pytest.raises(ValueError, match=rf"missing column\(s\) \['label'\].*column '{column.lower()}'.*"
                                         r"the label column is 'label'"):
        read_feature_table(csv)                 # icegan loso / fit: refused, as before, now saying why


def test_predict_table_with_harmless_extra_columns_reads_quietly(tmp_path, caplog):
    _maps(tmp_path)
    csv = _table(tmp_path, ["casme2,sub01,EP0,x,maps/c0.npy", "casme2,sub01,EP1,y,maps/c1.npy"],
                 header="dataset,subject,clip,note,path")
    with caplog.at_level(logging.WARNING, logger="icegan.data.feature_table"):
        assert read_feature_table(csv, labelled=False)["label"].tolist() == [-1, -1]
    assert caplog.text == ""


def test_missing_map_says_where_relative_paths_start(tmp_path, monkeypatch):
    (tmp_path / "v_rel").mkdir()
    _maps(tmp_path)                             # maps beside the working folder, not beside the CSV
    csv = _table(tmp_path / "v_rel", ["casme2,sub01,EP0,negative,maps/c0.npy"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        load_table_features(Path("v_rel/t.csv"))
    msg = str(err.value)
    assert "features file not found: v_rel/maps/c0.npy" in msg
    assert "paths are relative to the CSV's folder (v_rel)" in msg and "separator" not in msg
    assert csv.is_file()


def test_missing_map_with_backslashes_says_use_slash(tmp_path):
    _maps(tmp_path)
    csv = _table(tmp_path, ["casme2,sub01,EP0,negative,maps\\c0.npy"])
    with pytest.raises(FileNotFoundError) as err:
        load_table_features(csv)
    assert f"paths are relative to the CSV's folder ({tmp_path})" in str(err.value)
    assert "use / as the separator" in str(err.value)


def test_missing_absolute_map_is_not_said_relative(tmp_path):
    csv = _table(tmp_path, [f"casme2,sub01,EP0,negative,{tmp_path.parent / 'nowhere' / 'c0.npy'}"])
    with pytest.raises(FileNotFoundError) as err:
        load_table_features(csv)
    assert "features file not found" in str(err.value) and "relative" not in str(err.value)


def test_predict_read_hints_a_model_of_the_other_label_set(tmp_path):
    _maps(tmp_path)
    csv = _table(tmp_path, ["casme2,sub01,EP0,negative,maps/c0.npy"])
    with pytest.raises(ValueError) as err:      # icegan predict's read: the label set is the model's
        read_feature_table(csv, labelled=False, labels="casme2_5")
    msg = str(err.value)
    assert "data.labels=megc2019" in msg and "set data.labels" not in msg
    assert "score it with a model of that label set" in msg and "icegan fit" in msg
    with pytest.raises(ValueError, match=r"set data.labels=megc2019"):      # icegan loso / fit: the setting
        read_feature_table(csv, labels="casme2_5")
    csv.write_text(csv.read_text().replace("negative", "happiness"))
    with pytest.raises(ValueError) as err:      # a megc2019 model, a table of CASME II's classes
        read_feature_table(csv, labelled=False)
    assert "set data.labels" not in str(err.value) and "icegan fit" in str(err.value)
    assert "data.labels=casme2_5" in str(err.value)


def test_parse_class_label_default_hint_unchanged():
    with pytest.raises(ValueError, match=r"'negative' is a class of the label set megc2019: set data.labels=megc2019$"):
        parse_class_label("negative", "t.csv, line 2", labels="casme2_5")


def test_predict_read_of_an_exported_table_of_other_ids_hints_a_model(tmp_path):
    import json
    _maps(tmp_path)
    csv = _table(tmp_path, ["casme2,sub01,EP0,1,maps/c0.npy"])
    (tmp_path / "provenance.json").write_text(json.dumps({"flow": {"method": "tvl1"}, "labels": "casme2_5"}))
    with pytest.raises(ValueError) as err:      # icegan predict with a megc2019 model
        read_feature_table(csv, labelled=False)
    assert "set data.labels" not in str(err.value)
    assert "score it with a model of that label set (`icegan fit ... data.labels=casme2_5`)" in str(err.value)
    with pytest.raises(ValueError, match=r"set data.labels=casme2_5, or write the table again"):
        read_feature_table(csv)                 # icegan loso / fit
