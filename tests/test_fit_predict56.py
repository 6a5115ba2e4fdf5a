"""`icegan fit` / `icegan predict` defects of the fifty-sixth audit: bare class ids read by a model of another label
set, ensemble weights whose sum overflows, flow.tta missing from the compared map settings, a LOSO-only
data.train_subject_fraction ignored by fit, dataset spellings not normalised, the table's flag in a missing-table
message, and scikit-learn models that do not fit their file."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _feature_tables import toy_config, write_feature_table
from test_label_sets import FIVE, write_five_class_table

from icegan.cli import main
from icegan.commands.loso import LosoConfig
from icegan.commands.predict import fit, predict_table
from icegan.config import load_config
from icegan.data.feature_table import read_feature_table
from icegan.data.features import dataset_name
from icegan.data.toy_features import make_toy_features
from icegan.ensemble import mixing_weights
from icegan.saved_recognizer import SavedRecognizerError, load_recognizer, maps_differ, maps_provenance


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A MEGC2019 logistic regression (toy clips) and a casme2_5 one (a five-class table), with a new clips'
    MEGC2019 table."""
    d = tmp_path_factory.mktemp("models")
    three = d / "three.pt"
    fit(toy_config("model.name=logreg"), three, progress=False)
    five = d / "five.pt"
    train = write_five_class_table(d / "train", subjects=3, per_class=1)
    fit(load_config(LosoConfig, None, ["data.source=table", f"data.table={train}", "data.labels=casme2_5",
                                       "model.name=logreg", "threads=1"]), five, progress=False)
    (d / "new").mkdir()
    table = write_feature_table(d / "new", make_toy_features(n_subjects_per_dataset=1, seed=5))
    return {"three": three, "five": five, "table": table, "dir": d}


def _edit(src: Path, dst: Path, change) -> Path:
    payload = torch.load(src, weights_only=True)
    change(payload)
    torch.save(payload, dst)
    return dst


# ---------------------------------------------------------------- 1: bare ids read by a model of another label set
def test_predict_refuses_bare_ids_for_a_five_class_model_without_a_record_of_their_set(models, tmp_path):
    """MEGC2019 ids 0/1/2 (no provenance.json) would be read by a casme2_5 model as happiness / disgust / repression:
    refused, naming the set they would be read as and asking for class names."""
    t = pd.read_csv(models["table"])
    t["label"] = [i % 3 for i in range(len(t))]
    t["path"] = [str(models["table"].parent / p) for p in t["path"]]
    t = t[t["dataset"] == "casme2"]
    t.to_csv(tmp_path / "ids.csv", index=False)
    with pytest.raises(ValueError, match=r"ids\.csv, line 2 \(clip '[^']+'\): label '0' is a bare class id.*read "
                                         r"it as an id of the model's label set casme2_5 \(0 happiness, 1 disgust, "
                                         r"2 repression.*class names") as err:
        predict_table([models["five"]], tmp_path / "ids.csv")
    assert "this table's labels are classes of" not in str(err.value)         # no guess at the ids' set
    # the same clips labelled with the set's names are scored; a MEGC2019 model still reads the ids
    t["label"] = [FIVE[i % 3] for i in range(len(t))]
    t.to_csv(tmp_path / "names.csv", index=False)
    out, _, _ = predict_table([models["five"]], tmp_path / "names.csv")
    assert out["y_true"].tolist() == [i % 3 for i in range(len(t))]
    read = read_feature_table(tmp_path / "ids.csv", labelled=False)
    assert read["label"].tolist() == [i % 3 for i in range(len(t))]


def test_predict_reads_ids_a_provenance_records_as_the_models_set(models, tmp_path):
    """A table `icegan features` wrote with data.labels=casme2_5 records its set: its ids are read."""
    table = write_five_class_table(tmp_path / "t", subjects=1, ids=True)
    (table.parent / "provenance.json").write_text(json.dumps({"flow": {"method": "tvl1"}, "labels": "casme2_5"}))
    assert read_feature_table(table, labelled=False, labels="casme2_5")["label"].tolist() == [0, 1, 2, 3, 4] * 2


# ---------------------------------------------------------------- 2: weights whose sum overflows
def test_mixing_weights_whose_sum_overflows_are_normalised():
    np.testing.assert_array_equal(mixing_weights([1e308, 1e308], 2), [0.5, 0.5])
    np.testing.assert_allclose(mixing_weights([1.7e308, 1e308, 0], 3), [1.7 / 2.7, 1 / 2.7, 0])
    for w in ([1, 1], [2, 1], [3, 7], [0.1, 0.2, 0.3]):         # a finite sum: the same floats as before
        a = np.asarray(w, dtype=np.float64)
        assert mixing_weights(w, len(w)).tobytes() == (a / a.sum()).tobytes()


def test_predict_with_huge_weights_scores_as_equal_weights(models):
    big, _, _ = predict_table([models["three"], models["three"]], models["table"], weights=[1e308, 1e308])
    one, _, _ = predict_table([models["three"]], models["table"])
    cols = ["score_negative", "score_positive", "score_surprise"]
    np.testing.assert_allclose(big[cols].to_numpy(), one[cols].to_numpy(), rtol=1e-12)
    assert (big["y_pred"] == one["y_pred"]).all()


# ---------------------------------------------------------------- 3: flow.tta changes the maps
def test_flow_tta_is_a_compared_map_setting(tmp_path):
    flow = {"method": "srflownet", "module": "", "weights": "w.pt", "iters": 12, "component": "total",
            "decompose": "ransac", "decompose_weights": None, "input_size": "auto"}
    prov = {}
    for name, tta in (("a", "none"), ("b", "hflip")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "provenance.json").write_text(json.dumps({"flow": {**flow, "tta": tta},
                                                                     "weights": {"w.pt": "abc"}, "size": 28}))
        prov[name] = maps_provenance("table", tmp_path / name / "features.csv")
    assert prov["b"]["flow"]["tta"] == "hflip"
    assert maps_differ(prov["a"], prov["b"]) == "the flow settings differ from the training maps' (flow.tta)"
    assert maps_differ(prov["a"], prov["a"]) is None


# ---------------------------------------------------------------- 4: a LOSO-only setting
def test_fit_refuses_train_subject_fraction(tmp_path):
    with pytest.raises(ValueError, match="icegan fit cannot apply data.train_subject_fraction"):
        fit(toy_config("model.name=logreg", "data.train_subject_fraction=0.5"), tmp_path / "m.pt", progress=False)
    assert not (tmp_path / "m.pt").exists()


# ---------------------------------------------------------------- 5: dataset spellings
@pytest.mark.parametrize("given,canonical", [
    ("casme2", "casme2"), ("CASME2", "casme2"), ("casme_ii", "casme2"), ("CASME-II", "casme2"), ("casme__ii", "casme2"),
    ("casme_2", "casme2"), ("Casme-2", "casme2"), ("SMIC-HS", "smic"), ("smic_hs", "smic"), ("S-A-M-M", "samm"),
    ("SAMM", "samm"), ("cas-me3", "cas-me3"), ("my_data", "my_data"),
    ("my data", None), ("casme 2", None)])          # a space: unusable, as before (refused, naming the line)
def test_dataset_spellings_are_normalised(given, canonical):
    assert dataset_name(given) == canonical


def test_a_casme_ii_table_is_matched_with_the_training_clips(models, tmp_path, capsys):
    """Clips of a table spelling the dataset CASME-II are the model's casme2 training clips: said."""
    (tmp_path / "seen").mkdir()
    seen = write_feature_table(tmp_path / "seen", make_toy_features(n_subjects_per_dataset=2))   # the toy model's
    t = pd.read_csv(seen)
    t = t[t["dataset"] == "casme2"].assign(dataset="CASME-II")
    t["subject"] = [s.split("/", 1)[-1] for s in t["subject"]]
    t.to_csv(seen, index=False)
    assert main(["predict", "--model", str(models["three"]), "--table", str(seen), "--out",
                 str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert f"{len(t)} of these {len(t)} clips were in the training set" in err
    assert set(pd.read_csv(tmp_path / "p.csv")["dataset"]) == {"casme2"}


# ---------------------------------------------------------------- 6: the flag of a missing table
def test_a_missing_table_names_the_table_flag(models, tmp_path, capsys):
    rc = main(["predict", "--model", str(models["three"]), "--table", str(tmp_path / "nope.csv"), "--out",
               str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert rc != 0 and "feature table not found" in err and "nope.csv (--table)" in err and "data.table" not in err


# ---------------------------------------------------------------- 7: scikit-learn models that do not fit their file
def test_a_sklearn_model_of_more_classes_than_its_file_is_refused(models, tmp_path):
    """A five-class regression in a file that says three classes: refused naming the file (was an IndexError)."""
    bad = _edit(models["five"], tmp_path / "c53.pt", lambda q: q.update(classes=["negative", "positive", "surprise"]))
    with pytest.raises(SavedRecognizerError, match=r"c53\.pt: its scikit-learn model .*class ids \[0, 1, 2, 3, 4\].*"
                                                   r"3 classes"):
        load_recognizer(bad)


def test_a_sklearn_model_of_other_classes_than_its_file_is_refused(models, tmp_path):
    """A three-class regression in a file relabelled with five classes: its columns would name the wrong classes."""
    bad = _edit(models["three"], tmp_path / "lr5.pt", lambda q: q.update(classes=list(FIVE)))
    with pytest.raises(SavedRecognizerError, match=r"lr5\.pt: its scikit-learn model .*class ids \[0, 1, 2\]"):
        load_recognizer(bad)


def test_a_sklearn_model_of_another_map_size_is_refused(models, tmp_path):
    bad = _edit(models["three"], tmp_path / "ms.pt", lambda q: q["training"].update(map_size=14))
    with pytest.raises(SavedRecognizerError, match=r"ms\.pt: its scikit-learn model takes 2352 values per clip, not "
                                                   r"3 × 14 × 14 = 588"):
        load_recognizer(bad)


def test_a_sklearn_pickle_that_cannot_be_loaded_names_the_file(models, tmp_path):
    import hashlib
    blob = b"cno_such_module_56\nThing\n."                 # a pickle of a class whose module is gone
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(blob)
    bad = _edit(models["three"], tmp_path / "gone.pt",
                lambda q: q.update(sklearn_pickle=blob, sklearn_sha256=hashlib.sha256(blob).hexdigest()))
    with pytest.raises(SavedRecognizerError, match=r"gone\.pt: its scikit-learn model cannot be loaded "
                                                   r"\(ModuleNotFoundError: No module named 'no_such_module_56'\)"):
        load_recognizer(bad)


def test_good_sklearn_models_still_load(models):
    for m, k in ((models["three"], 3), (models["five"], 5)):
        fitted, meta = load_recognizer(m)
        assert len(meta["classes"]) == k
