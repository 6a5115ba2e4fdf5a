"""`icegan fit` / `icegan predict` with a label set other than MEGC2019 (CASME II's five classes): the model file
records its classes, networks and scikit-learn models have K outputs, predictions name the set's classes; models of
two label sets are not averaged, and a table of another set's labels names the mismatch."""
from __future__ import annotations

import re
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
from icegan.data.feature_table import load_table_features
from icegan.data.toy_features import make_toy_features
from icegan.metrics import compute_metrics
from icegan.saved_recognizer import SavedRecognizerError, load_recognizer, training_record

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
THREE = ("negative", "positive", "surprise")


def five_config(table: Path, *overrides: str) -> LosoConfig:
    """A quick recipe trained on the 5-class ``table``."""
    return load_config(LosoConfig, None, ["data.source=table", f"data.table={table}", "data.labels=casme2_5",
                                          "threads=1", "model.epochs=2", *overrides])


def test_fit_and_predict_cli_on_five_classes(tmp_path, capsys):
    """`icegan fit` on a casme2_5 table saves the five classes and counts clips per class; `icegan predict` scores a
    new subject's 5-class table with five score columns, the five names, and K=5 metrics and confusion matrices."""
    train = write_five_class_table(tmp_path / "train", subjects=3, per_class=1)
    model = tmp_path / "m.pt"
    assert main(["fit", "--config", str(CONFIGS / "features_ststnet.yaml"), "--out", str(model), "--no-progress",
                 "data.source=table", f"data.table={train}", "data.labels=casme2_5", "model.epochs=2",
                 "threads=1"]) == 0
    out = capsys.readouterr().out
    assert "trained on 15 clips of 3 subjects (casme2 15; happiness 3, disgust 3, repression 3, surprise 3, " \
           "others 3)" in out
    payload = torch.load(model, weights_only=True)
    assert payload["classes"] == list(FIVE) and payload["version"] == 1
    assert payload["training"]["classes"] == {c: 3 for c in FIVE}

    new = write_five_class_table(tmp_path / "new", subjects=1, seed=3)
    assert main(["predict", "--model", str(model), "--table", str(new), "--out", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr().out
    p = pd.read_csv(tmp_path / "p.csv")
    cols = [f"score_{c}" for c in FIVE]
    assert list(p.columns) == ["dataset", "subject", "clip", "y_true", "y_pred", "predicted", *cols]
    scores = p[cols].to_numpy()
    np.testing.assert_allclose(scores.sum(1), 1, atol=1e-6)
    assert (p["y_pred"] == scores.argmax(1)).all()
    assert p["predicted"].tolist() == [FIVE[i] for i in p["y_pred"]]
    assert p["y_true"].tolist() == [0, 1, 2, 3, 4] * 2
    counts = p["predicted"].value_counts()
    assert "10 clips scored with 1 model(s): " + ", ".join(f"{c} {int(counts.get(c, 0))}" for c in FIVE) in out
    uf1 = compute_metrics(p["y_true"], p["y_pred"], n_classes=5)["UF1"]
    assert f"all (10 clips): UF1 {uf1:.4f}" in out
    assert (tmp_path / "p_confusion.png").is_file()
    loaded, meta = load_recognizer(model)
    x = load_table_features(new, labels="casme2_5").features
    np.testing.assert_allclose(scores, loaded(x), atol=1e-6)
    assert meta["classes"] == list(FIVE)

    unlabelled = pd.read_csv(new).drop(columns=["label"])          # labels optional, as for MEGC2019 models
    unlabelled.to_csv(tmp_path / "new" / "nolabel.csv", index=False)
    assert main(["predict", "--model", str(model), "--table", str(tmp_path / "new" / "nolabel.csv"),
                 "--out", str(tmp_path / "q.csv")]) == 0
    q = pd.read_csv(tmp_path / "q.csv")
    assert q["y_true"].isna().all() and "UF1" not in capsys.readouterr().out
    np.testing.assert_allclose(q[cols].to_numpy(), scores, atol=1e-6)


@pytest.mark.parametrize("overrides", [["model.name=logreg"], ["model.name=random_forest", "model.forest_trees=10"],
                                       ["model.name=ststnet", "model.seeds=2"]],
                         ids=["logreg", "forest", "ststnet-seeds"])
def test_a_five_class_model_loads_with_five_outputs(tmp_path, overrides):
    """What load_recognizer builds scores every clip as the fitted model: (n, 5) probabilities."""
    train = write_five_class_table(tmp_path / "train")
    fitted, record = fit(five_config(train, *overrides), tmp_path / "m.pt", progress=False)
    x = load_table_features(write_five_class_table(tmp_path / "new", subjects=1, seed=3), labels="casme2_5").features
    loaded, meta = load_recognizer(tmp_path / "m.pt")
    p = fitted(x)
    assert p.shape == (len(x), 5) and np.allclose(p.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(loaded(x), p)
    assert meta["classes"] == list(FIVE) and record["classes"] == {c: 8 for c in FIVE}


def test_fit_sde_on_five_classes(tmp_path):
    """protocol=SDE keeps one dataset's clips, whose labels 3 and 4 stay classes of the five."""
    train = write_five_class_table(tmp_path / "train")
    _, record = fit(five_config(train, "model.name=logreg", "protocol=SDE", "dataset=casme2"), tmp_path / "m.pt",
                    progress=False)
    assert record["classes"] == {c: 8 for c in FIVE} and record["datasets"] == {"casme2": 40}


def test_training_record_counts_the_classes_given():
    samples = pd.DataFrame({"dataset": ["casme2"] * 4, "subject": ["casme2/sub01"] * 4,
                            "clip": ["EP1", "EP2", "EP3", "EP4"], "label": [4, 4, 0, 2]})
    rec = training_record(samples, torch.zeros(4, 3, 28, 28), classes=FIVE)
    assert rec["classes"] == {"happiness": 1, "disgust": 0, "repression": 1, "surprise": 0, "others": 2}
    assert training_record(samples.assign(label=[0, 0, 1, 2]), torch.zeros(4, 3, 28, 28))["classes"] == \
        {"negative": 2, "positive": 1, "surprise": 1}                       # MEGC2019 by default


def test_three_class_models_are_unchanged(tmp_path):
    """A MEGC2019 model: its file lists the three classes, its predictions the three score columns."""
    fit(toy_config("model.name=logreg"), tmp_path / "a.pt", progress=False)
    assert torch.load(tmp_path / "a.pt", weights_only=True)["classes"] == list(THREE)
    table = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=5))
    p, metas, _ = predict_table([tmp_path / "a.pt"], table)
    assert list(p.columns[-3:]) == [f"score_{c}" for c in THREE] and set(p["predicted"]) <= set(THREE)
    assert metas[0]["classes"] == list(THREE)


def test_models_of_two_label_sets_are_refused(tmp_path, capsys):
    """Probabilities over other classes cannot be averaged: both files and their classes are named."""
    fit(toy_config("model.name=logreg"), tmp_path / "three.pt", progress=False)
    train = write_five_class_table(tmp_path / "train")
    fit(five_config(train, "model.name=logreg"), tmp_path / "five.pt", progress=False)
    with pytest.raises(ValueError, match=r"three\.pt recognises the classes of megc2019 \['negative', 'positive', "
                                         r"'surprise'\], .*five\.pt recognises the classes of casme2_5 \['happiness', "):
        predict_table([tmp_path / "three.pt", tmp_path / "five.pt"], train)
    rc = main(["predict", "--model", str(tmp_path / "five.pt"), "--model", str(tmp_path / "three.pt"),
               "--table", str(train), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "five.pt" in err and "three.pt" in err and "Traceback" not in err
    assert not (tmp_path / "p.csv").exists()


def test_a_table_of_another_label_set_names_the_model_s_classes(tmp_path, capsys):
    """A 3-class model on a 5-class table (and the reverse): the label error names the line and clip, and says the
    labels are read with the model's label set."""
    fit(toy_config("model.name=logreg"), tmp_path / "three.pt", progress=False)
    five = write_five_class_table(tmp_path / "train")
    with pytest.raises(ValueError, match=r"line 2 \(clip 'EP00'\): label 'happiness'.*a model of that label set "
                                         r"\(`icegan fit \.\.\. data\.labels=casme2_5`\).*three\.pt recognises the "
                                         r"classes of megc2019.*this table's labels are classes of casme2_5$") as err:
        predict_table([tmp_path / "three.pt"], five)
    assert str(err.value).count("data.labels=casme2_5") == 1          # said once, not twice
    fit(five_config(five, "model.name=logreg"), tmp_path / "five.pt", progress=False)
    three = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=5))
    rc = main(["predict", "--model", str(tmp_path / "five.pt"), "--table", str(three), "--out",
               str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "'negative'" in err and "five.pt recognises the classes of casme2_5" in err
    assert "this table's labels are classes of megc2019" in err and not (tmp_path / "p.csv").exists()


def test_a_model_file_of_unknown_classes_is_refused(tmp_path):
    """A class list of no label set (unknown names, or MEGC2019's in another order) is refused, naming the known
    sets; a file whose classes say five but whose network has three outputs does not load."""
    fit(toy_config(), tmp_path / "st.pt", progress=False)
    payload = torch.load(tmp_path / "st.pt", weights_only=True)
    for name, classes in (("abc", ["a", "b", "c"]), ("order", ["positive", "negative", "surprise"])):
        torch.save({**payload, "classes": classes}, tmp_path / f"{name}.pt")
        with pytest.raises(SavedRecognizerError, match=rf"{name}\.pt: its 'classes' are {re.escape(repr(classes))}, "
                                                       r"not those of a label set \(megc2019: .*casme2_5: \['happiness'"):
            load_recognizer(tmp_path / f"{name}.pt")
    torch.save({**payload, "classes": list(FIVE)}, tmp_path / "relabelled.pt")
    with pytest.raises(SavedRecognizerError, match=r"relabelled\.pt: member 0: the saved weights do not fit"):
        load_recognizer(tmp_path / "relabelled.pt")


def test_a_model_is_never_saved_under_classes_of_another_count(tmp_path):
    from icegan.saved_recognizer import save_recognizer
    fitted, record = fit(toy_config("model.name=logreg"), tmp_path / "a.pt", progress=False)
    with pytest.raises(ValueError, match=r"a recognizer of 3 outputs cannot be saved as one of the classes "
                                         r"\['happiness', "):
        save_recognizer(tmp_path / "b.pt", fitted, {"model": {"name": "logreg"}}, record, classes=FIVE)
    assert not (tmp_path / "b.pt").exists()
