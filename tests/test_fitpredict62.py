"""`icegan fit` as a one-fold LOSO run (every seed member's own inner-validation split), predict's "were in the
training set" warning by map content, and the saved model's format version (audit 62)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _feature_tables import toy_config, write_feature_table

from icegan.cli import main
from icegan.commands.loso import load_feature_set
from icegan.commands.predict import fit
from icegan.data.toy_features import make_toy_features
from icegan.protocol import make_folds
from icegan.recognition import fit_predict_folds
from icegan.saved_recognizer import SavedRecognizerError, load_recognizer


@pytest.mark.parametrize("seeds", [1, 2])
def test_fit_with_seed_members_and_inner_validation_is_the_hde_fold(tmp_path, seeds):
    """model.seeds=2 with model.inner_val_fraction: LOSO / HDE draws one held-out split per member, fit drew one for
    all members, so fit on samm differed from HDE's casme2 fold (maxdiff 0.045); now the probabilities are equal."""
    over = ["model.name=ststnet", "model.epochs=2", f"model.seeds={seeds}", "model.inner_val_fraction=0.2",
            "model.eval_every=1", "data.toy_subjects=5", "seed=3"]
    cfg = toy_config(*over)
    fs = load_feature_set(cfg.data)
    subjects = fs.samples["subject"].astype(str).tolist()
    fold = make_folds(subjects, "HDE")[0]                      # casme2 held out, trained on samm, fold seed = seed
    assert fold.subject == "casme2" and fold.index == 0
    loso = fit_predict_folds(cfg.model, fs.features, fs.labels, subjects, [fold], seed=cfg.seed, progress=False)[0]
    fitted, record = fit(toy_config(*over, "protocol=SDE", "dataset=samm"), tmp_path / "m.pt", progress=False)
    mine = fitted(fs.features[torch.as_tensor(fold.test_idx)])
    np.testing.assert_allclose(mine, loso, atol=1e-6)
    parts = record["inner_val"] if seeds > 1 else [record["inner_val"]]
    assert len(parts) == seeds and all(p["subjects"] and p["clips"] for p in parts)


def test_fit_reports_each_members_held_out_subjects(tmp_path, capsys):
    """Each member's early-stopping subjects are said apart (they differ between members)."""
    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--no-progress", "data.source=toy", "data.toy_subjects=5",
                 "threads=1", "model.epochs=1", "model.name=ststnet", "model.seeds=2", "model.inner_val_fraction=0.2",
                 "seed=3"]) == 0
    said = capsys.readouterr().out
    record = load_recognizer(tmp_path / "m.pt")[1]["training"]
    held = [p["subjects"] for p in record["inner_val"]]
    assert held[0] != held[1]
    assert (f"trained on 90 clips of 10 subjects (casme2 45, samm 45; negative 30, positive 30, surprise 30), each of "
            f"its 2 members early stopping on the subjects its own model.inner_val_fraction=0.2 split held out "
            f"(member 1: {', '.join(held[0])}; member 2: {', '.join(held[1])})") in said


def _fitted_logreg(tmp_path):
    """``icegan fit`` of a logistic regression on a toy feature table of 2 subjects per dataset (36 clips) written in
    ``tmp_path``: returns ``(table csv, model file)``."""
    csv = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=2))
    model = tmp_path / "m.pt"
    assert main(["fit", "--out", str(model), "--no-progress", "data.source=table", f"data.table={csv}",
                 "model.name=logreg", "threads=1"]) == 0
    return csv, model


def test_predict_warns_of_training_maps_under_another_dataset_name(tmp_path, capsys):
    """The very maps a model was fitted on, their dataset column renamed, were scored as test clips without a word."""
    csv, model = _fitted_logreg(tmp_path)
    training = load_recognizer(model)[1]["training"]
    assert len(training["map_sha256"]) == 36 and all(len(h) == 64 for h in training["map_sha256"])
    table = pd.read_csv(csv)
    table["dataset"] = "mydata"
    table["subject"] = "p" + table["subject"].astype(str).str.split("/").str[-1]
    renamed = tmp_path / "renamed.csv"
    table.to_csv(renamed, index=False)
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--table", str(renamed), "--out", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert f"warning: 36 of these 36 clips were in the training set of {model}" in err


def test_predict_of_a_model_without_map_hashes_keeps_the_name_check(tmp_path, capsys):
    """A model saved before map hashes were recorded: the name check as before, no error."""
    csv, model = _fitted_logreg(tmp_path)
    payload = torch.load(model, weights_only=True)
    del payload["training"]["map_sha256"]
    torch.save(payload, model)
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--table", str(csv), "--out", str(tmp_path / "p.csv")]) == 0
    assert f"warning: 36 of these 36 clips were in the training set of {model}" in capsys.readouterr().err


@pytest.mark.parametrize("version", ["1", True, 1.0])
def test_a_format_version_of_another_type_is_refused_with_its_repr(tmp_path, version):
    """'1' read "format version 1; this icegan reads version 1"; True and 1.0 were accepted."""
    model = tmp_path / "m.pt"
    fit(toy_config("model.name=logreg"), model, progress=False)
    payload = torch.load(model, weights_only=True)
    payload["version"] = version
    torch.save(payload, model)
    with pytest.raises(SavedRecognizerError, match=f"{model}: its format version is {version!r} "
                       f"\\({type(version).__name__}\\), not an integer"):
        load_recognizer(model)
