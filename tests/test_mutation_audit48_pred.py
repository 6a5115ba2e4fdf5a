"""Tests written by a mutation audit of the saved recognizer (icegan.saved_recognizer), `icegan fit` / `icegan predict`
(icegan.commands.predict) and the thin `icegan ensemble` / `icegan table` commands: each one fails on a small
deliberate change of the code that the earlier tests let pass (named in the test's docstring). Expected values are
worked out by hand (a class readable from where a map is bright, clips in a known order), never copied from the
code's output."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _feature_tables import toy_config

from icegan.commands.loso import LosoConfig
from icegan.commands.predict import fit, predict_table
from icegan.config import load_config
from icegan.labels import get_label_set

SIZE = 28


def _readable_table(folder: Path, label_set: str, subjects: list[str], per_class: int, seed: int,
                    order: str = "by_class") -> tuple[Path, list[int]]:
    """A feature table whose clips' class k is readable from the maps: a 4-pixel-high band of rows 4k..4k+3 of the
    v map (a mirror-symmetric channel: the band survives the left-right mirroring of model.hflip) is 1, everything
    else is noise in [0, 0.3]. Returns (table path, the class ids of its rows in order).
    ``order``: ``by_class`` (subject by subject, 0, 1, ..., K-1 repeated) or ``shuffled`` (a seeded permutation)."""
    ls = get_label_set(label_set)
    dataset = ls.datasets[0] if ls.datasets else "casme2"
    rng = np.random.default_rng(seed)
    maps = folder / "maps"
    maps.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in subjects:
        for j in range(per_class * ls.n_classes):
            k = j % ls.n_classes
            a = (rng.random((3, SIZE, SIZE)) * 0.3).astype(np.float32)
            a[1, 4 * k:4 * k + 4, :] = 1.0
            name = f"{s}_{j:02d}"
            np.save(maps / f"{name}.npy", a)
            rows.append({"dataset": dataset, "subject": s, "clip": f"EP{j:02d}", "label": ls.classes[k],
                         "path": f"maps/{name}.npy", "k": k})
    table = pd.DataFrame(rows)
    if order == "shuffled":
        table = table.iloc[rng.permutation(len(table))].reset_index(drop=True)
    table.drop(columns=["k"]).to_csv(folder / "features.csv", index=False)
    return folder / "features.csv", table["k"].tolist()


def _table_config(table: Path, label_set: str, *overrides: str) -> LosoConfig:
    """A quick recipe trained on ``table``'s clips, read as classes of ``label_set``."""
    return load_config(LosoConfig, None, ["data.source=table", f"data.table={table}", f"data.labels={label_set}",
                                          "threads=1", *overrides])


# --------------------------------------------------------------------------------------- icegan fit / icegan predict

@pytest.mark.parametrize("label_set", ["megc2019", "casme2_5"])
def test_a_model_fitted_on_readable_classes_names_them_on_new_clips(tmp_path, label_set):
    """Clips whose class k is a bright band of rows 4k..4k+3 of the v map: a random forest fitted on them (two
    subjects) predicts every clip of a new subject, listed in a shuffled order, as its own class; the output rows
    follow the table's rows, ``predicted`` is the class's name, and the class's ``score_<name>`` column holds the
    largest probability of its row. Mutation killed (the earlier tests list their clips in sorted order): the
    output's clip column sorted apart from its rows. Also fails on the classes saved reversed, the score columns
    filled in reverse, y_pred the argmin, the predicted names read from the wrong end of the class list, the table's
    labels read as MEGC2019 classes whatever the model's label set."""
    classes = get_label_set(label_set).classes
    train, _ = _readable_table(tmp_path / "train", label_set, ["sub01", "sub02"], per_class=2, seed=0)
    fit(_table_config(train, label_set, "model.name=random_forest", "model.forest_trees=20"), tmp_path / "m.pt",
        progress=False)
    new, truth = _readable_table(tmp_path / "new", label_set, ["sub09"], per_class=2, seed=1, order="shuffled")
    assert truth != sorted(truth)                            # the rows are not in class order
    out, metas, size = predict_table([tmp_path / "m.pt"], new)
    assert metas[0]["classes"] == list(classes) and size == SIZE
    assert out["clip"].tolist() == pd.read_csv(new)["clip"].tolist()
    assert out["y_true"].tolist() == truth and out["y_pred"].tolist() == truth
    assert out["predicted"].tolist() == [classes[k] for k in truth]
    scores = out[[f"score_{c}" for c in classes]].to_numpy()
    assert (scores.argmax(1) == np.array(truth)).all() and np.allclose(scores.sum(1), 1)


def test_fit_trains_the_recipe_on_every_clip_with_the_config_s_seed(tmp_path):
    """`icegan fit` is fit_recognizer on every clip of the data section (36 toy clips) with the config's seed: a
    random forest (its trees drawn from the seed) scores new clips exactly as one trained here on all the clips with
    seed 3, and not as one trained with seed 0 (so the seed matters). Mutation killed: the first clip (and its
    subject) left out of the training. Also fails on the forest trained with seed 0 instead of the config's."""
    from icegan.commands.loso import load_feature_set
    from icegan.data.toy_features import make_toy_features
    from icegan.recognition import fit_recognizer
    cfg = toy_config("model.name=random_forest", "model.forest_trees=10", "seed=3")
    fitted, record = fit(cfg, tmp_path / "m.pt", progress=False)
    fs = load_feature_set(cfg.data)
    assert record["clips"] == len(fs.features) == 36
    new = make_toy_features(n_subjects_per_dataset=1, seed=5).features
    mine = fit_recognizer(cfg.model, fs.features, fs.labels, seed=3, progress=False)
    np.testing.assert_array_equal(fitted(new), mine(new))
    other = fit_recognizer(cfg.model, fs.features, fs.labels, seed=0, progress=False)
    assert not np.allclose(mine(new), other(new))


def test_fit_holds_out_the_inner_validation_subjects_and_trains_on_the_others(tmp_path):
    """model.inner_val_fraction=0.25 of the 4 toy subjects: the fitted network is the one trained on the 3 other
    subjects' clips, with the held-out subject's clips for early stopping (inner_val_split with the config's seed),
    as in a LOSO fold. Mutation killed: the training and validation rows swapped."""
    from icegan.commands.loso import load_feature_set
    from icegan.data.toy_features import make_toy_features
    from icegan.recognition import fit_recognizer, inner_val_split
    cfg = toy_config("model.epochs=1", "model.eval_every=1", "model.inner_val_fraction=0.25", "seed=4")
    fitted, _ = fit(cfg, tmp_path / "m.pt", progress=False)
    fs = load_feature_set(cfg.data)
    subjects = fs.samples["subject"].astype(str).tolist()
    train, val = inner_val_split(subjects, np.arange(len(subjects)), 0.25, 4)
    assert len({subjects[i] for i in val}) == 1 and len({subjects[i] for i in train}) == 3
    tr, va = torch.from_numpy(train), torch.from_numpy(val)
    mine = fit_recognizer(cfg.model, fs.features[tr], fs.labels[tr], seed=4, x_val=fs.features[va],
                          y_val=fs.labels[va], progress=False, subjects_train=[subjects[i] for i in train])
    new = make_toy_features(n_subjects_per_dataset=1, seed=5).features
    np.testing.assert_allclose(fitted(new), mine(new), atol=1e-6)


def test_auto_normalisation_follows_the_models_and_refuses_two_kinds(tmp_path):
    """--normalize auto is the models' training data.normalize: a model fitted on a table with data.normalize=minmax
    min-max normalises the scored maps (as --normalize minmax), a toy-data model does not (none). Two models fitted
    on maps of the two kinds are refused under auto, naming both files (before, the first model's setting served
    both, and the second model scored maps unlike its training maps, without a word); an explicit --normalize still
    scores them. Mutations killed: the last model's setting read instead of the first's; the refusal removed."""
    from _feature_tables import write_feature_table

    from icegan.data.toy_features import make_toy_features
    train = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=2), name="train.csv", scale=2.0)
    fit(toy_config("model.name=logreg", "data.source=table", f"data.table={train}", "data.normalize=minmax"),
        tmp_path / "mm.pt", progress=False)
    fit(toy_config("model.name=logreg", "seed=1", "data.source=table", f"data.table={train}",
                   "data.normalize=minmax"), tmp_path / "mm1.pt", progress=False)
    fit(toy_config("model.name=logreg"), tmp_path / "none.pt", progress=False)
    table = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=5), labels="empty",
                                scale=0.5)                # in [0, 0.5]: a valid table either way, min-max changes it
    cols = ["score_negative", "score_positive", "score_surprise"]
    for models, same_as in (([tmp_path / "mm.pt", tmp_path / "mm1.pt"], "minmax"), ([tmp_path / "none.pt"], "none")):
        auto = predict_table(models, table)[0][cols].to_numpy()
        np.testing.assert_allclose(auto, predict_table(models, table, normalize=same_as)[0][cols].to_numpy())
        other = "none" if same_as == "minmax" else "minmax"
        assert not np.allclose(auto, predict_table(models, table, normalize=other)[0][cols].to_numpy(), atol=1e-3)
    for models in ([tmp_path / "mm.pt", tmp_path / "none.pt"], [tmp_path / "none.pt", tmp_path / "mm.pt"]):
        with pytest.raises(ValueError, match=rf"--model: {re.escape(str(models[0]))} was fitted on maps with "
                                             rf"data.normalize=\w+, {re.escape(str(models[1]))} with "
                                             rf"data.normalize=\w+: --normalize auto cannot serve both"):
            predict_table(models, table)
        n_rows = len(pd.read_csv(table))
        assert len(predict_table(models, table, normalize="none")[0]) == n_rows      # chosen by hand: scored


def test_clips_of_the_training_set_get_one_warning_not_two(tmp_path, capsys):
    """Scoring 4 of the model's own training clips (2 subjects) and 3 new clips of a training subject: one warning,
    that 4 of these 7 clips were in the training set (not a test); the weaker warning about seen subjects is for
    tables without seen clips only (here 3 new clips of a training subject alone). Mutation killed: the subjects
    warning printed as well as the clips warning."""
    from _feature_tables import TOY, write_feature_table

    from icegan.cli import main
    from icegan.data.features import FeatureSet
    from icegan.data.toy_features import make_toy_features
    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--no-progress", *TOY, "model.name=logreg"]) == 0
    seen = make_toy_features(n_subjects_per_dataset=2)          # the training clips, casme2/s01 first
    samples = seen.samples.iloc[[0, 1, 9, 10]].reset_index(drop=True)
    assert samples["subject"].nunique() == 2
    new = seen.samples.iloc[[2, 3, 4]].assign(clip=lambda d: d["clip"] + "_new").reset_index(drop=True)
    both = FeatureSet(pd.concat([samples, new], ignore_index=True), seen.features[[0, 1, 9, 10, 2, 3, 4]])
    capsys.readouterr()
    args = ["predict", "--model", str(tmp_path / "m.pt"), "--out", str(tmp_path / "p.csv"), "--table"]
    assert main([*args, str(write_feature_table(tmp_path, both, name="both.csv"))]) == 0
    err = capsys.readouterr().err
    assert "warning: 4 of these 7 clips were in the training set" in err and "of these subjects" not in err
    only_new = FeatureSet(new, seen.features[[2, 3, 4]])
    assert main([*args, str(write_feature_table(tmp_path, only_new, name="new.csv"))]) == 0
    err = capsys.readouterr().err
    assert "clips were in the training set" not in err
    assert f"warning: 1 of these subjects ({new['subject'][0]}) were in the training set" in err


# ------------------------------------------------------------------------------------------ icegan.saved_recognizer


def test_a_model_file_of_map_size_0_or_a_forest_without_its_pickle_is_named(tmp_path):
    """Edited files that must be refused on reading, naming the file and the entry: a training map size of 0 (the
    scored maps would be resized to 0×0 pixels) and a random forest whose pickle was removed (a scikit-learn model
    has no network weights to fall back on). A map size of 1 passes that check (the forest's 2352 inputs then refuse
    it). Mutations killed: a map size of 0
    accepted, the check of a scikit-learn model's pickle removed."""
    from icegan.saved_recognizer import SavedRecognizerError, load_recognizer
    fit(toy_config("model.name=random_forest", "model.forest_trees=5"), tmp_path / "m.pt", progress=False)
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    torch.save({**payload, "training": {**payload["training"], "map_size": 1}}, tmp_path / "one.pt")
    # a map size of 1 passes the file's check, and is then compared with the forest's inputs (2352 of 28×28 maps)
    with pytest.raises(SavedRecognizerError, match=r"one\.pt: its scikit-learn model takes 2352 values per clip, not "
                                                   r"3 × 1 × 1 = 3"):
        load_recognizer(tmp_path / "one.pt")
    torch.save({**payload, "training": {**payload["training"], "map_size": 0}}, tmp_path / "zero.pt")
    with pytest.raises(SavedRecognizerError, match=r"zero\.pt: its 'training' map_size is 0, not a positive integer"):
        load_recognizer(tmp_path / "zero.pt")
    torch.save({**payload, "sklearn_pickle": None, "sklearn_sha256": None}, tmp_path / "nopickle.pt")
    with pytest.raises(SavedRecognizerError, match=r"nopickle\.pt: its config's model\.name is random_forest but it "
                                                   r"holds no scikit-learn model"):
        load_recognizer(tmp_path / "nopickle.pt")


# ------------------------------------------------------------------------------------- icegan ensemble, icegan table


@pytest.fixture(scope="module")
def uniform_runs(tmp_path_factory) -> Path:
    """LOSO run folders of 6 toy clips (2 subjects, so 2 folds) scored with uniform probabilities: ``r1``
    whole, ``p1`` and ``p2`` cut to their first fold by max_folds=1."""
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso

    root = tmp_path_factory.mktemp("runs")
    samples = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1).samples

    def uniform(fold):
        return np.full((len(fold.test_idx), 3), 1 / 3)
    for name, max_folds in (("r1", 0), ("p1", 1), ("p2", 1)):
        run_loso(samples, uniform, root / name, max_folds=max_folds, progress=False)
    return root


def test_ensemble_into_one_of_its_members_is_one_error_line(uniform_runs, capsys):
    """`icegan ensemble r1 p1 --out r1` (a member's own folder, refused by icegan.ensemble with a LosoStateError)
    exits 2 with one `icegan ensemble: error:` line naming the folder, and r1's files are untouched. Mutation killed:
    the command catching EnsembleError alone (a LosoStateError became a traceback)."""
    from icegan.cli import main
    r1, p1 = uniform_runs / "r1", uniform_runs / "p1"
    before = (r1 / "predictions.csv").read_bytes()
    capsys.readouterr()
    assert main(["ensemble", str(r1), str(p1), "--out", str(r1)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan ensemble: error: ") and "is one of the ensemble's members" in err
    assert str(r1) in err and err.count("\n") == 1
    assert (r1 / "predictions.csv").read_bytes() == before


def test_an_ensemble_of_runs_cut_by_max_folds_says_so_on_the_console(uniform_runs, tmp_path, capsys):
    """Members cut to 1 of their 2 folds by max_folds make a partial ensemble: its console line says
    `[PARTIAL: 1 of 2 folds, max_folds: not a LOSO result]`. Fails on the
    partial tag dropped from the console line, which only the slow test on the licensed data's LOSO runs caught so
    far."""
    from icegan.cli import main
    capsys.readouterr()
    assert main(["ensemble", str(uniform_runs / "p1"), str(uniform_runs / "p2"), "--out", str(tmp_path / "p")]) == 0
    assert "ensemble of 2 runs [PARTIAL: 1 of 2 folds, max_folds: not a LOSO result]" in capsys.readouterr().out


def test_table_shows_every_entry_given(uniform_runs, capsys):
    """`icegan table A=r1 B=p1` prints the table of both entries, in that order: what report.results_table makes of
    them, a row labelled A before a row labelled B (tagged as the partial run it is). Fails on the entries after the
    first dropped, which only the slow test on the licensed data's LOSO runs caught so far."""
    from icegan.cli import main
    from icegan.report import TableEntry, results_table
    capsys.readouterr()
    assert main(["table", f"A={uniform_runs / 'r1'}", f"B={uniform_runs / 'p1'}"]) == 0
    out = capsys.readouterr().out
    assert out == results_table([TableEntry("A", [uniform_runs / "r1"]), TableEntry("B", [uniform_runs / "p1"])])
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    assert rows[-2:] == ["A", "B [PARTIAL: 1 of 2 folds]"]
