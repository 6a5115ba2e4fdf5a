"""`icegan fit` / `icegan predict` refusals: dataset=NAME under CDE, a predictions --out over a model file or a feature
table, a training set of one class, inner validation on one training subject."""
from __future__ import annotations

import numpy as np
import pytest
from _feature_tables import TOY, toy_config, write_feature_table

from icegan.cli import main
from icegan.commands.predict import fit
from icegan.data.toy_features import make_toy_features
from icegan.recognition import inner_val_split


def test_fit_refuses_a_dataset_under_cde_as_loso_does(tmp_path, capsys):
    """dataset=NAME applies to protocol=SDE only: fit said nothing and trained on every dataset's clips."""
    said = "protocol CDE runs over all datasets; dataset='samm' applies to SDE only"
    with pytest.raises(ValueError, match=said):
        fit(toy_config("model.name=logreg", "dataset=samm"), tmp_path / "m.pt", progress=False)
    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--no-progress", *TOY, "model.name=logreg",
                 "dataset=samm"]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
    assert main(["loso", "--out", str(tmp_path / "run"), "--no-progress", *TOY, "model.name=logreg",
                 "dataset=samm"]) == 2
    assert said in capsys.readouterr().err                  # the same words as icegan loso's
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "run").exists()
    _, sde = fit(toy_config("model.name=logreg", "protocol=SDE", "dataset=samm"), tmp_path / "s.pt", progress=False)
    assert sde["datasets"] == {"samm": 18}                  # SDE keeps its dataset


def test_predict_out_never_replaces_a_model_file_or_a_feature_table(tmp_path, capsys):
    """--out over an icegan model file or a feature table (a CSV with a path column) is refused, the file unchanged;
    a previous predictions CSV is replaced, as before."""
    model, victim = tmp_path / "m.pt", tmp_path / "victim.pt"
    fit(toy_config("model.name=logreg"), model, progress=False)
    fit(toy_config("model.name=logreg", "seed=1"), victim, progress=False)
    table = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=5), labels="empty")
    other = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=6), name="other.csv")
    for out, said in [(victim, "is an icegan model file (made by `icegan fit`)"),
                      (other, "is a feature table (it has a path column)")]:
        before = out.read_bytes()
        assert main(["predict", "--model", str(model), "--table", str(table), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out {out} {said}" in err and "Traceback" not in err, err
        assert out.read_bytes() == before
    preds = tmp_path / "p.csv"
    for seed in (5, 7):                                     # a predictions file: written, then replaced
        clips = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=seed), labels="empty",
                                    name=f"c{seed}.csv")
        assert main(["predict", "--model", str(model), "--table", str(clips), "--out", str(preds)]) == 0
        assert preds.read_text().splitlines()[0].startswith("dataset,subject,clip,y_true,y_pred,predicted")
    capsys.readouterr()


@pytest.mark.parametrize("overrides", [["model.name=logreg"], ["model.name=random_forest", "model.forest_trees=5"],
                                       ["model.name=ststnet", "model.epochs=1"]], ids=["logreg", "forest", "ststnet"])
def test_fit_refuses_a_table_of_one_class(tmp_path, capsys, overrides):
    """A model fitted on one class predicts it always: refused for every model, naming the table and the counts
    (logreg ended in scikit-learn's message, the others fitted a useless model)."""
    fs = make_toy_features(n_subjects_per_dataset=2)
    one = write_feature_table(tmp_path, fs.replace(keep=(fs.labels == 1).numpy()), name="one.csv")
    cfg = toy_config(*overrides, "data.source=table", f"data.table={one}")
    with pytest.raises(ValueError, match="fewer than 2 classes") as info:
        fit(cfg, tmp_path / "m.pt", progress=False)
    assert f"{one}: the 12 training clips hold one class (negative 0, positive 12, surprise 0)" in str(info.value)
    assert not (tmp_path / "m.pt").exists()
    given = {o.split("=", 1)[0] for o in [*overrides, "data.source="]}
    toy = [o for o in TOY if o.split("=", 1)[0] not in given]     # one command line sets a key once
    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--no-progress", *toy, *overrides, "data.source=table",
                 f"data.table={one}"]) == 2
    err = capsys.readouterr().err
    assert "positive 12" in err and "Traceback" not in err and "warning: no training clip" not in err


def test_inner_validation_of_one_training_subject_asks_for_two(tmp_path):
    """With one training subject no fraction can leave one to train on: the message says 2 subjects are needed
    (it said to lower inner_val_fraction); with 3 subjects it still says to lower the fraction."""
    with pytest.raises(ValueError, match="needs at least 2 training subjects") as info:
        inner_val_split(["a/1", "a/1"], np.arange(2), 0.2, seed=0)
    assert "lower" not in str(info.value)
    with pytest.raises(ValueError, match="^inner validation would take all 3 training subjects; lower"):
        inner_val_split(["a/1", "a/2", "b/1"], np.arange(3), 0.9, seed=0)
    fs = make_toy_features(n_subjects_per_dataset=1, datasets=("casme2",))
    sub = write_feature_table(tmp_path, fs, name="sub.csv")
    cfg = toy_config("model.name=ststnet", "model.epochs=1", "model.inner_val_fraction=0.2", "data.source=table",
                     f"data.table={sub}")
    with pytest.raises(ValueError, match="needs at least 2 training subjects, got 1"):
        fit(cfg, tmp_path / "m.pt", progress=False)
