"""`icegan fit` / `icegan predict`: a recognizer trained once on every clip, saved, loaded and used on new clips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _feature_tables import TOY, toy_config, write_feature_table

from icegan.cli import main
from icegan.commands.loso import LosoConfig
from icegan.commands.predict import _UNSUPPORTED, fit, predict_table
from icegan.config import load_config
from icegan.data.toy_features import make_toy_features
from icegan.saved_recognizer import SavedRecognizerError, load_recognizer

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "custom_recognizer.py"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("overrides", [
    ["model.name=ststnet", "model.seeds=2", "model.shift_px=1"],           # one grouped network of two copies
    ["model.name=ststnet", "model.average_last=2", "model.eval_every=1"],   # snapshots averaged
    ["model.name=offtanet", "model.input_size=32", "model.epochs=1"],
    ["model.name=logreg"],
    ["model.name=random_forest", "model.forest_trees=20"],
    ["model.name=custom", f"model.module={EXAMPLE}:TwoLayerCNN", "model.seeds=2"],   # two networks, one per seed
], ids=["ststnet-seeds", "ststnet-snapshots", "offtanet", "logreg", "forest", "custom"])
def test_saved_recognizer_round_trip(tmp_path, overrides):
    """What `icegan predict` loads scores every clip exactly as the model that `icegan fit` trained."""
    cfg = toy_config(*overrides)
    fitted, record = fit(cfg, tmp_path / "m.pt", progress=False)
    x = make_toy_features(n_subjects_per_dataset=1, seed=5).features       # other clips than the training ones
    loaded, meta = load_recognizer(tmp_path / "m.pt")
    p = fitted(x)
    assert p.shape == (len(x), 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(loaded(x), p)
    assert meta["config"]["model"]["name"] == cfg.model.name
    assert record["clips"] == meta["training"]["clips"] == 2 * 2 * 9         # 2 datasets × 2 subjects × 9 clips
    assert meta["training"]["subjects"] == sorted(set(meta["training"]["subjects"]))
    assert sum(meta["training"]["classes"].values()) == record["clips"]


def test_fit_trains_on_every_clip_and_sde_on_one_dataset(tmp_path):
    """CDE: all clips of the data section; SDE with a dataset: that dataset's clips only."""
    _, cde = fit(toy_config("model.name=logreg"), tmp_path / "a.pt", progress=False)
    _, sde = fit(toy_config("model.name=logreg", "protocol=SDE", "dataset=samm"), tmp_path / "b.pt", progress=False)
    assert cde["datasets"] == {"casme2": 18, "samm": 18}
    assert sde["datasets"] == {"samm": 18} and all(s.startswith("samm/") for s in sde["subjects"])
    with pytest.raises(ValueError, match="dataset=NAME"):
        fit(toy_config("model.name=logreg", "protocol=SDE"), tmp_path / "c.pt", progress=False)


def test_fit_with_inner_validation_differs_from_final_epoch(tmp_path):
    """model.inner_val_fraction holds subjects out for early stopping, as in a LOSO fold: another model."""
    x = make_toy_features(n_subjects_per_dataset=1, seed=5).features
    a, _ = fit(toy_config("model.epochs=4"), tmp_path / "a.pt", progress=False)
    b, _ = fit(toy_config("model.epochs=4", "model.inner_val_fraction=0.25", "model.eval_every=1"), tmp_path / "b.pt",
               progress=False)
    assert not np.allclose(a(x), b(x))


@pytest.mark.parametrize("key,_on,_why", _UNSUPPORTED, ids=[k for k, _, _ in _UNSUPPORTED])
def test_fit_refuses_loso_only_settings(tmp_path, key, _on, _why):
    value = {"oracle_epoch": "true", "model.noise_filter": "forest", "model.domain_bn": "true",
             "model.domain_adversarial": "1", "model.au_weight": "1", "data.synthetic_per_clip": "1",
             "data.permute_labels": "0", "data.roi": "landmarks", "protocol": "HDE",
             "data.train_subject_fraction": "0.5", "max_folds": "1", "workers": "3"}[key]
    # landmark regions and synthetic clips need the composite's faces (a toy config refuses them itself): refused
    # before any data is read
    composite_only = key in ("data.roi", "data.synthetic_per_clip")
    cfg = load_config(LosoConfig, None, [f"{key}={value}"]) if composite_only else toy_config(f"{key}={value}")
    with pytest.raises(ValueError, match=f"icegan fit cannot apply {key}"):
        fit(cfg, tmp_path / "m.pt", progress=False)
    assert not (tmp_path / "m.pt").exists()


def test_predict_cli_on_new_unlabelled_clips(tmp_path, capsys):
    """Rows in table order, probabilities that sum to 1, y_pred their argmax, no label needed; with every label
    given, UF1 / UAR are printed; with clips of the training set, a warning says so."""
    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--no-progress", *TOY]) == 0
    assert "trained on 36 clips of 4 subjects" in capsys.readouterr().out
    new = make_toy_features(n_subjects_per_dataset=1, seed=5, datasets=("smic",))
    for labels in ("empty", "none"):
        table = write_feature_table(tmp_path, new, labels=labels)
        assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(table),
                     "--out", str(tmp_path / "p.csv")]) == 0
        captured = capsys.readouterr()
        assert "UF1" not in captured.out and "warning" not in captured.err
        assert not (tmp_path / "p_confusion.png").exists()
        p = pd.read_csv(tmp_path / "p.csv", dtype={"subject": str})
        assert p["clip"].tolist() == new.samples["clip"].tolist() and p["y_true"].isna().all()
        scores = p[["score_negative", "score_positive", "score_surprise"]].to_numpy()
        np.testing.assert_allclose(scores.sum(1), 1, atol=1e-6)
        assert (p["y_pred"] == scores.argmax(1)).all()
        assert p["predicted"].tolist() == [["negative", "positive", "surprise"][i] for i in p["y_pred"]]
        loaded, _ = load_recognizer(tmp_path / "m.pt")
        np.testing.assert_allclose(scores, loaded(new.features), atol=1e-6)
    table = write_feature_table(tmp_path, new, labels="names")
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(table),
                 "--out", str(tmp_path / "p.csv")]) == 0
    captured = capsys.readouterr()
    from icegan.metrics import compute_metrics
    p = pd.read_csv(tmp_path / "p.csv")
    assert f"all (9 clips): UF1 {compute_metrics(p['y_true'], p['y_pred'])['UF1']:.4f}" in captured.out
    assert "smic (9 clips)" not in captured.out          # one dataset: no per-dataset lines
    from PIL import Image
    with Image.open(tmp_path / "p_confusion.png") as im:  # the confusion matrices beside the predictions
        assert im.size[0] > im.size[1] > 100
    assert "warning" not in captured.err
    # the training clips
    seen = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=2), name="seen.csv")
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(seen),
                 "--out", str(tmp_path / "q.csv")]) == 0
    captured = capsys.readouterr()
    assert "36 of these 36 clips were in the training set" in captured.err
    q = pd.read_csv(tmp_path / "q.csv")
    for ds in ("casme2", "samm"):                          # two datasets: a line each, with its own metrics
        g = q[q["dataset"] == ds]
        assert f"{ds} (18 clips): UF1 {compute_metrics(g['y_true'], g['y_pred'])['UF1']:.4f}" in captured.out


def test_predict_averages_models_with_weights(tmp_path):
    """Several --model files: their probabilities averaged; weight 0 for one gives the other alone."""
    fit(toy_config("model.name=logreg"), tmp_path / "a.pt", progress=False)
    fit(toy_config("model.name=random_forest", "model.forest_trees=20"), tmp_path / "b.pt", progress=False)
    table = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=5))
    a, _, _ = predict_table([tmp_path / "a.pt"], table)
    b, _, _ = predict_table([tmp_path / "b.pt"], table)
    ab, _, _ = predict_table([tmp_path / "a.pt", tmp_path / "b.pt"], table)
    a0, _, _ = predict_table([tmp_path / "a.pt", tmp_path / "b.pt"], table, weights=[1, 0])
    cols = ["score_negative", "score_positive", "score_surprise"]
    np.testing.assert_allclose(ab[cols].to_numpy(), (a[cols].to_numpy() + b[cols].to_numpy()) / 2)
    np.testing.assert_allclose(a0[cols].to_numpy(), a[cols].to_numpy())
    with pytest.raises(ValueError, match="one non-negative weight per --model"):
        predict_table([tmp_path / "a.pt"], table, weights=[1, 1])
    with pytest.raises(ValueError, match="one non-negative weight per --model"):     # NaN: not a weight
        predict_table([tmp_path / "a.pt", tmp_path / "b.pt"], table, weights=[1, float("nan")])


def test_unusable_model_files_are_named(tmp_path):
    """Missing, foreign, another version, damaged pickle, weights that do not fit, edited custom code."""
    with pytest.raises(SavedRecognizerError) as missing:
        load_recognizer(tmp_path / "none.pt")
    assert str(missing.value).startswith(f"model file not found: {tmp_path / 'none.pt'} (make one with `icegan fit")
    run = tmp_path / "loso_run"                 # a LOSO run folder given for a model: it keeps none
    run.mkdir()
    (run / "config.yaml").write_text("name: x\nmodel: {name: ststnet}\n")
    with pytest.raises(SavedRecognizerError) as folder:
        load_recognizer(run)
    assert str(folder.value) == (f"{run} is a folder, not a model file: an icegan loso run folder, and a LOSO run "
                                 f"keeps no model: fit its recipe once on every clip with `icegan fit --config "
                                 f"{run / 'config.yaml'} --out MODEL.pt`")
    (run / "config.yaml").write_text("name: x\nrecognizer: {name: ststnet}\n")      # a train.py run: its maps first
    with pytest.raises(SavedRecognizerError, match=r"a train\.py run folder, .*`icegan features --config "
                                                   r".*data\.table=MAPS/features\.csv`$"):
        load_recognizer(run)
    with pytest.raises(SavedRecognizerError, match=r"is a folder, not a model file: give the model file that `icegan"):
        load_recognizer(tmp_path)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(SavedRecognizerError, match="other.pt is not an icegan recognizer"):
        load_recognizer(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("not a model")
    with pytest.raises(SavedRecognizerError, match="text.pt cannot be read"):
        load_recognizer(tmp_path / "text.pt")

    fit(toy_config("model.name=logreg"), tmp_path / "lr.pt", progress=False)
    payload = torch.load(tmp_path / "lr.pt", weights_only=True)
    torch.save({**payload, "version": 99}, tmp_path / "v99.pt")
    with pytest.raises(SavedRecognizerError) as v99:
        load_recognizer(tmp_path / "v99.pt")
    assert str(v99.value).startswith(f"{tmp_path / 'v99.pt'} is an icegan recognizer of format version 99; ")
    torch.save({**payload, "sklearn_pickle": payload["sklearn_pickle"] + b"x"}, tmp_path / "bad.pt")
    with pytest.raises(SavedRecognizerError) as damaged:
        load_recognizer(tmp_path / "bad.pt")
    assert str(damaged.value).startswith(f"{tmp_path / 'bad.pt'}: the stored scikit-learn model does not match its "
                                         "checksum")

    fit(toy_config(), tmp_path / "st.pt", progress=False)
    payload = torch.load(tmp_path / "st.pt", weights_only=True)
    payload["config"]["model"]["width"] = 2                   # a config that builds another network
    torch.save(payload, tmp_path / "wide.pt")
    with pytest.raises(SavedRecognizerError, match="wide.pt: member 0: the saved weights do not fit"):
        load_recognizer(tmp_path / "wide.pt")
    torch.save({**torch.load(tmp_path / "st.pt", weights_only=True), "members": []}, tmp_path / "empty.pt")
    with pytest.raises(SavedRecognizerError, match="empty.pt: no trained weights"):
        load_recognizer(tmp_path / "empty.pt")

    net = tmp_path / "net.py"
    net.write_text(EXAMPLE.read_text())
    fit(toy_config("model.name=custom", f"model.module={net}:TwoLayerCNN", "model.epochs=1"), tmp_path / "c.pt",
        progress=False)
    load_recognizer(tmp_path / "c.pt")                        # unchanged code: loads
    net.write_text(EXAMPLE.read_text() + "\n# edited\n")
    with pytest.raises(SavedRecognizerError, match="source changed since it was trained"):
        load_recognizer(tmp_path / "c.pt")


def test_predict_cli_errors_name_the_file(tmp_path, capsys):
    fit(toy_config("model.name=logreg"), tmp_path / "m.pt", progress=False)
    fs = make_toy_features(n_subjects_per_dataset=1, seed=5)
    table = write_feature_table(tmp_path, fs, labels="empty")
    rc = main(["predict", "--model", str(tmp_path / "missing.pt"), "--table", str(table), "--out", str(tmp_path / "p.csv")])
    assert rc == 2 and "missing.pt" in capsys.readouterr().err
    bad = pd.read_csv(table, keep_default_na=False)
    bad.loc[2, "label"] = "angry"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    rc = main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(tmp_path / "bad.csv"),
               "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "line 4" in err and "'angry'" in err
    assert not (tmp_path / "p.csv").exists()
    rc = main(["fit", "--out", str(tmp_path / "x.pt"), *TOY, "oracle_epoch=true"])
    assert rc == 2 and "icegan fit cannot apply oracle_epoch" in capsys.readouterr().err


def test_maps_outside_0_1_name_predict_s_own_flag(tmp_path, capsys):
    """Raw maps (values outside [0, 1]) are refused naming `icegan predict --normalize minmax`, the flag of this
    command (was: data.normalize=minmax, a key icegan predict does not take), which then scores them."""
    fit(toy_config("model.name=logreg"), tmp_path / "m.pt", progress=False)
    fs = make_toy_features(n_subjects_per_dataset=1, seed=5)
    from icegan.data.features import FeatureSet
    table = write_feature_table(tmp_path, FeatureSet(fs.samples, fs.features * 6 - 3), labels="empty")
    args = ["predict", "--model", str(tmp_path / "m.pt"), "--table", str(table), "--out", str(tmp_path / "p.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "line 2 (clip" in err and "give --normalize minmax" in err and "data.normalize" not in err
    assert main(args + ["--normalize", "minmax"]) == 0 and (tmp_path / "p.csv").exists()


def test_training_tables_still_need_labels(tmp_path):
    """An empty label stays an error where labels are needed (icegan loso, icegan fit)."""
    from icegan.data.feature_table import load_table_features
    table = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1), labels="empty")
    with pytest.raises(ValueError, match="line 2 .*empty label .*can be scored by `icegan predict`"):
        load_table_features(table)
    assert (load_table_features(table, labelled=False).labels == -1).all()


def test_maps_made_another_way_are_named():
    """The released maps, icegan features maps of another flow method or setting: a sentence; the same or unknown:
    None."""
    from icegan.saved_recognizer import maps_differ
    released = {"maps": "megc2019_htnet"}
    sr = {"flow": {"method": "srflownet", "input_size": "auto"}, "weights": {"flow_weights_sha256": "a"}, "size": 28}
    assert maps_differ(released, sr) == ("trained on the released megc2019_htnet maps, these are srflownet flow "
                                         "(28 px maps)")
    assert "flow.input_size" in maps_differ(sr, {**sr, "flow": {"method": "srflownet", "input_size": 128}})
    assert "another checkpoint" in maps_differ(sr, {**sr, "weights": {"flow_weights_sha256": "b"}})
    assert maps_differ(sr, dict(sr)) is None
    assert maps_differ(sr, {}) is None and maps_differ({}, sr) is None
    # a provenance.json written by hand for a table of your own: only what it says is compared
    assert maps_differ(released, {"flow": {"method": "tvl1"}}) == ("trained on the released megc2019_htnet maps, these "
                                                                 "are tvl1 flow")
    assert maps_differ(sr, {"flow": {"method": "srflownet", "input_size": "auto"}}) is None   # no checksum, no size
    assert maps_differ(sr, {"flow": {"method": "srflownet"}}) is None        # a setting it does not record: no claim
    # faces: compared only when both sides record them; named key by key, beside a flow difference
    cropped = {**sr, "faces": {"modes": ["cropped"], "size": 128}}
    raw = {**sr, "faces": {"modes": ["raw"], "size": 128, "detector": "hog", "margin": 0.1, "refine": True}}
    assert maps_differ(cropped, raw) == ("the faces were prepared otherwise than the training faces (detector: not "
                                         "used for training, hog here, margin: not used for training, 0.1 here, "
                                         "modes: cropped for training, raw here, refine: not used for training, True "
                                         "here)")
    assert maps_differ(cropped, dict(cropped)) is None and maps_differ(sr, raw) is None and maps_differ(raw, sr) is None
    both = maps_differ(cropped, {**raw, "weights": {"flow_weights_sha256": "b"}})
    assert both.startswith("the flow weights differ") and "; the faces were prepared otherwise" in both


def test_face_provenance_of_a_config(tmp_path):
    """What `icegan features` records about the faces: the crop mode and size, and the crop settings only when a
    dataset is cropped here from raw frames."""
    from icegan.pipeline import face_provenance, load_main_config, with_clip_list
    cfg = load_main_config("configs/casme2.yaml", [])
    assert face_provenance(cfg) == {"modes": ["cropped"], "size": cfg.data.img_size}
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset\np,a,v,1\n")
    raw = with_clip_list(cfg, csv, "raw")
    assert face_provenance(raw) == {"modes": ["raw"], "size": cfg.data.img_size, "detector": cfg.data.prepare.detector,
                                    "margin": cfg.data.prepare.margin, "refine": cfg.data.prepare.refine}
    assert face_provenance(load_main_config(None, [])) == {"source": "synthetic"}


def test_predict_warns_when_maps_come_from_another_flow(tmp_path, capsys):
    """A model fitted on an `icegan features` table records its flow; scoring a table made with another flow warns."""
    import json
    train_dir, new_dir, raw_dir = tmp_path / "train", tmp_path / "new", tmp_path / "raw"
    for d, method, mode in ((train_dir, "srflownet", "cropped"), (new_dir, "tvl1", "cropped"),
                            (raw_dir, "srflownet", "raw")):
        d.mkdir()
        (d / "provenance.json").write_text(json.dumps({"flow": {"method": method, "batch_size": 8}, "weights": {},
                                                       "faces": {"modes": [mode], "size": 128},
                                                       "size": 28, "clips": 1, "seconds": 0}))
    table = write_feature_table(train_dir, make_toy_features(n_subjects_per_dataset=2))
    cfg = load_config(LosoConfig, None, ["model.name=logreg", "data.source=table", f"data.table={table}", "threads=1"])
    _, record = fit(cfg, tmp_path / "m.pt", progress=False)
    assert record["maps"]["flow"] == {"method": "srflownet"}                   # batch size: not a map setting
    assert record["maps"]["faces"] == {"modes": ["cropped"], "size": 128}
    same = write_feature_table(train_dir, make_toy_features(n_subjects_per_dataset=1, seed=5), name="same.csv")
    other = write_feature_table(new_dir, make_toy_features(n_subjects_per_dataset=1, seed=5))
    raw = write_feature_table(raw_dir, make_toy_features(n_subjects_per_dataset=1, seed=5))
    for scored, warned in ((same, None), (other, "trained on srflownet flow (28 px maps), these are tvl1 "
                                                  "flow"),
                           (raw, "the faces were prepared otherwise than the training faces (modes: cropped for "
                                 "training, raw here)")):
        assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(scored),
                     "--out", str(tmp_path / "p.csv")]) == 0
        err = capsys.readouterr().err
        assert (warned in err) if warned else ("these are" not in err and "prepared otherwise" not in err)


@pytest.mark.parametrize("name", ["logreg", "random_forest"])
def test_fitted_model_is_the_recipe_loso_scored(tmp_path, name):
    """The model `icegan fit` trains is the one LOSO evaluated: fitted on every subject but one, a deterministic
    recipe scores that subject's clips exactly as the LOSO fold that held it out (same seed, same training rows,
    same mirroring and test-time averaging)."""
    from icegan.commands.loso import load_feature_set, run
    from icegan.recognition import fit_recognizer
    cfg = toy_config(f"model.name={name}", "model.forest_trees=30", "seed=3")
    run(cfg, tmp_path / "loso", progress=False)
    pred = pd.read_csv(tmp_path / "loso" / "predictions.csv", dtype={"subject": str})
    fs = load_feature_set(cfg.data)
    subjects = fs.samples["subject"].to_numpy()
    for held in sorted(set(subjects))[:2]:
        train, test = subjects != held, subjects == held
        fitted = fit_recognizer(cfg.model, fs.features[torch.from_numpy(train)], fs.labels[torch.from_numpy(train)],
                                seed=cfg.seed, progress=False)
        rows = pred[pred["subject"] == held].set_index("clip").loc[fs.samples["clip"][test]]
        np.testing.assert_allclose(fitted(fs.features[torch.from_numpy(test)]),
                                   rows[["score_negative", "score_positive", "score_surprise"]].to_numpy(), atol=1e-6)


def test_a_model_of_the_released_maps_warns_on_icegan_features_maps(shared_data, tmp_path, capsys):
    """Fitted on the composite's released maps, a model records them; scoring maps of `icegan features` (here a
    provenance.json saying SRFlowNet) warns."""
    import json
    _, record = fit(load_config(LosoConfig, None, ["model.name=logreg", "threads=1"]), tmp_path / "m.pt",
                    progress=False)
    assert record["maps"] == {"maps": "megc2019_htnet"} and record["clips"] == 442
    d = tmp_path / "mine"
    d.mkdir()
    (d / "provenance.json").write_text(json.dumps({"flow": {"method": "srflownet"}, "weights": {}, "size": 28}))
    table = write_feature_table(d, make_toy_features(n_subjects_per_dataset=1, seed=5))
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(table),
                 "--out", str(tmp_path / "p.csv")]) == 0
    assert ("trained on the released megc2019_htnet maps, these are srflownet flow (28 px maps)"
            in capsys.readouterr().err)


def test_scored_maps_go_through_the_training_maps_path(tmp_path):
    """Maps of another size are resized to the training maps' size first (a scikit-learn model needs exactly that
    many values); a model trained with data.recenter=median gets its scored clips recentred the same way."""
    from icegan.data.features import recenter_flow
    from icegan.recognition import resize_features
    new = make_toy_features(n_subjects_per_dataset=1, seed=5)
    big = new.features.clone()
    big = torch.nn.functional.interpolate(big, size=56, mode="bilinear", align_corners=False)
    from icegan.data.features import FeatureSet
    table = write_feature_table(tmp_path, FeatureSet(new.samples, big), labels="empty")
    fitted, _ = fit(toy_config("model.name=logreg"), tmp_path / "lr.pt", progress=False)
    p, _, size = predict_table([tmp_path / "lr.pt"], table)
    assert size == 56
    cols = ["score_negative", "score_positive", "score_surprise"]
    np.testing.assert_allclose(p[cols].to_numpy(), fitted(resize_features(big, 28)), atol=1e-6)
    table28 = write_feature_table(tmp_path, new, labels="empty", name="t28.csv")
    fitted, _ = fit(toy_config("model.name=logreg", "data.recenter=median"), tmp_path / "rc.pt", progress=False)
    p, _, _ = predict_table([tmp_path / "rc.pt"], table28)
    np.testing.assert_allclose(p[cols].to_numpy(), fitted(recenter_flow(new.features)), atol=1e-6)
    assert not np.allclose(p[cols].to_numpy(), fitted(new.features), atol=1e-3)


def test_a_fold_trained_alone_is_fit_on_its_training_clips(tmp_path):
    """An HDE fold is trained alone: its batches hold its own training clips only, so the fold's model is the one
    `icegan fit` trains on those clips with the fold's seed (base seed + 1000 x fold index) - the same
    probabilities for the held-out dataset's clips, although the table also holds the held-out clips."""
    from icegan.commands.loso import load_feature_set, run
    from icegan.recognition import fit_recognizer
    cfg = toy_config("protocol=HDE", "model.shift_px=1", "seed=2")
    run(cfg, tmp_path / "hde", progress=False)
    pred = pd.read_csv(tmp_path / "hde" / "predictions.csv", dtype={"subject": str})
    fs = load_feature_set(cfg.data)
    datasets = fs.samples["dataset"].to_numpy()
    for index, held in enumerate(sorted(set(datasets))):
        train, test = datasets != held, datasets == held
        fitted = fit_recognizer(cfg.model, fs.features[torch.from_numpy(train)], fs.labels[torch.from_numpy(train)],
                                seed=cfg.seed + 1000 * index, progress=False)
        rows = pred[pred["dataset"] == held].set_index(["subject", "clip"])
        keys = list(zip(fs.samples["subject"][test], fs.samples["clip"][test]))
        np.testing.assert_allclose(fitted(fs.features[torch.from_numpy(test)]),
                                   rows.loc[keys, ["score_negative", "score_positive", "score_surprise"]].to_numpy(),
                                   atol=1e-5)


def test_an_sde_run_does_not_depend_on_the_other_datasets_clips(tmp_path):
    """SDE within one dataset: the same predictions whether the table also holds other datasets' clips or not (the
    grouped network draws its batches from the rows its folds train on, never from clips no fold learns from)."""
    from icegan.commands.loso import run
    fs = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    both = write_feature_table(tmp_path, fs, name="both.csv")
    keep = (fs.samples["dataset"] == "samm").to_numpy().copy()
    alone = type(fs)(fs.samples[keep].reset_index(drop=True), fs.features[torch.from_numpy(keep)])
    only = write_feature_table(tmp_path, alone, name="only.csv")
    preds = []
    for table in (both, only):
        cfg = load_config(LosoConfig, None, ["data.source=table", f"data.table={table}", "protocol=SDE",
                                             "dataset=samm", "model.epochs=3", "model.batch_size=8", "threads=1"])
        run(cfg, tmp_path / table.stem, progress=False)
        preds.append(pd.read_csv(tmp_path / table.stem / "predictions.csv").sort_values(["subject", "clip"]))
    cols = ["score_negative", "score_positive", "score_surprise"]
    assert len(preds[0]) == int(keep.sum())
    np.testing.assert_allclose(preds[0][cols].to_numpy(), preds[1][cols].to_numpy(), atol=1e-6)


def test_outputs_never_replace_a_run_s_files_or_other_files(tmp_path, capsys):
    """fit, predict, table, compare and suite refuse, before any work and with the path named, an --out that would
    damage other results: a folder given as a file, an existing file of a run folder (a LOSO run's predictions.csv or
    metrics.md), an existing non-model file for fit, a run folder as a suite's folder. A model file is replaced by
    refitting, and a new file beside a run's files is written; the run's files stay byte-identical."""
    run = tmp_path / "runs" / "logreg"
    assert main(["loso", "--out", str(run), "--no-progress", *TOY, "model.name=logreg", "max_folds=2"]) == 0
    before = {f.name: f.read_bytes() for f in run.iterdir() if f.is_file()}
    model = tmp_path / "m.pt"
    assert main(["fit", "--out", str(model), "--no-progress", *TOY, "model.name=logreg"]) == 0
    out = capsys.readouterr().out
    assert f"icegan predict --model {model} --table CLIPS.csv --out PREDICTIONS.csv" in out    # a hint that runs
    table = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=5), labels="empty")
    refused = [
        (["fit", "--out", str(run), "--no-progress", *TOY], f"is a folder; give the path of a file to write (e.g. "
                                                             f"{run / 'model.pt'})"),
        (["compare", str(run), "--plot", str(run)], f"(e.g. {run / 'compare.png'})"),
        (["fit", "--out", str(run / "predictions.csv"), "--no-progress", *TOY], "would overwrite a file of the run"),
        (["fit", "--out", str(table), "--no-progress", *TOY], "is not an icegan model file"),
        (["predict", "--model", str(model), "--table", str(table), "--out", str(run / "predictions.csv")],
         "would overwrite a file of the run"),
        (["table", str(run), "--out", str(run / "metrics.md")], "would overwrite a file of the run"),
        (["compare", str(run), "--out", str(run / "metrics.md")], "would overwrite a file of the run"),
        (["compare", str(run), "--plot", str(run / "confusion.png")], "would overwrite a file of the run"),
    ]
    for argv, said in refused:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err, (argv, err)
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: toy\nseeds: [0]\nruns:\n  - {{label: logreg, config: {CONFIGS}/demo_features.yaml, "
                     f"seeded: false, overrides: [model.name=logreg]}}\n")
    assert main(["suite", "--config", str(suite), "--out", str(run)]) == 2
    assert "is the folder of one run (it holds run.json)" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in run.iterdir() if f.is_file()} == before       # the run untouched
    assert not list(tmp_path.rglob("*.tmp"))
    stamp = model.stat().st_mtime_ns
    assert main(["fit", "--out", str(model), "--no-progress", *TOY, "model.name=logreg", "seed=1"]) == 0
    assert model.stat().st_mtime_ns != stamp and load_recognizer(model)[1]["config"]["seed"] == 1   # replaced
    for _ in range(2):                             # a file beside the run's own: written, then written again
        assert main(["table", str(run), "--out", str(run / "table.md")]) == 0
        assert main(["predict", "--model", str(model), "--table", str(table), "--out", str(run / "new.csv")]) == 0
    assert (run / "table.md").is_file() and (run / "new.csv").is_file()
    assert {f.name: f.read_bytes() for f in run.iterdir() if f.name in before} == before


def test_a_model_file_missing_an_entry_is_named(tmp_path, capsys):
    """An edited model file (an entry deleted or of the wrong kind) is one error naming the file and the entry, not
    a KeyError from deep in loading."""
    fit(toy_config(), tmp_path / "st.pt", progress=False)
    payload = torch.load(tmp_path / "st.pt", weights_only=True)
    cases = {"nomembers": ({k: v for k, v in payload.items() if k != "members"}, r"'members' entry is missing"),
             "notlist": ({**payload, "members": {"a": 1}}, r"'members' is not a list"),
             "nosd": ({**payload, "members": [{"copies": 1, "snapshots": 0}]}, r"members\[0\] state_dict"),
             "classes": ({**payload, "classes": ["a", "b"]}, r"'classes' are \['a', 'b'\]"),
             "noconfig": ({k: v for k, v in payload.items() if k != "config"}, r"'config' entry is missing"),
             "size": ({**payload, "training": {**payload["training"], "map_size": "28"}}, r"'training' map_size is '28'")}
    for name, (bad, said) in cases.items():
        torch.save(bad, tmp_path / f"{name}.pt")
        with pytest.raises(SavedRecognizerError, match=rf"{name}\.pt: (its )?{said}"):
            load_recognizer(tmp_path / f"{name}.pt")
    fs = make_toy_features(n_subjects_per_dataset=1, seed=5)
    table = write_feature_table(tmp_path, fs, labels="empty")
    rc = main(["predict", "--model", str(tmp_path / "nomembers.pt"), "--table", str(table),
               "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "nomembers.pt" in err and "'members'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "p.csv").exists()


def test_a_model_whose_weights_give_nan_scores_is_refused(tmp_path, capsys):
    """Weights that overflow to NaN scores (a damaged or diverged model; finite, so the file itself loads) gave
    every clip class 0 and empty score cells, exit 0."""
    fit(toy_config(), tmp_path / "st.pt", progress=False)
    payload = torch.load(tmp_path / "st.pt", weights_only=True)
    sd = payload["members"][0]["state_dict"]
    sd[next(k for k, v in sd.items() if v.is_floating_point() and v.dim() == 4)].fill_(3e38)   # conv: Inf, then NaN
    torch.save(payload, tmp_path / "nan.pt")
    fs = make_toy_features(n_subjects_per_dataset=1, seed=5)
    table = write_feature_table(tmp_path, fs, labels="empty")
    with pytest.raises(SavedRecognizerError, match=r"nan\.pt: its weights produce NaN or Inf scores"):
        predict_table([tmp_path / "st.pt", tmp_path / "nan.pt"], table)
    rc = main(["predict", "--model", str(tmp_path / "nan.pt"), "--table", str(table), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "nan.pt" in err and "NaN or Inf" in err and "damaged or diverged" in err
    assert not (tmp_path / "p.csv").exists()


def test_a_model_file_with_nan_weights_is_refused_when_read(tmp_path):
    """A NaN weight was only found once every clip had been scored; reading the file now names the weight."""
    fit(toy_config(), tmp_path / "st.pt", progress=False)
    payload = torch.load(tmp_path / "st.pt", weights_only=True)
    sd = payload["members"][0]["state_dict"]
    key = [k for k, v in sd.items() if v.is_floating_point()][-1]
    sd[key].view(-1)[0] = float("inf")
    torch.save(payload, tmp_path / "inf.pt")
    with pytest.raises(SavedRecognizerError, match=rf"inf\.pt: members\[0\] weight '{key}' holds NaN or infinite"):
        load_recognizer(tmp_path / "inf.pt")


def test_fit_refuses_to_save_a_diverged_training(tmp_path, capsys):
    """A learning rate that blew the weights up to NaN saved the model and printed 'saved to', exit 0; only
    `icegan predict` found out."""
    out = tmp_path / "m.pt"
    with pytest.raises(FloatingPointError, match=r"diverged: members\[0\] weight .* model\.lr \(now 1e\+30\)"):
        fit(toy_config("model.lr=1e30"), out, progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())
    rc = main(["fit", "--out", str(out), "--no-progress", *TOY, "model.lr=1e30"])
    err = capsys.readouterr().err
    assert rc == 2 and "diverged" in err and "Traceback" not in err and not out.exists()


def test_training_record_counts_each_class_by_its_name():
    """The training record of five hand-made clips: class counts under the class names (0 negative, 1 positive,
    2 surprise), clips per dataset, subjects once each and sorted, subject/clip keys in table order, the map size."""
    from icegan.saved_recognizer import training_record
    samples = pd.DataFrame({"dataset": ["samm", "casme2", "casme2", "smic", "casme2"],
                            "subject": ["samm/006", "casme2/sub02", "casme2/sub01", "smic/s1", "casme2/sub02"],
                            "clip": ["006_1_2", "EP01", "EP02", "s1_ne_01", "EP03"], "label": [0, 0, 0, 1, 2]})
    rec = training_record(samples, torch.zeros(5, 3, 28, 28))
    assert rec["classes"] == {"negative": 3, "positive": 1, "surprise": 1}
    assert rec["datasets"] == {"casme2": 3, "samm": 1, "smic": 1} and rec["clips"] == 5
    assert rec["subjects"] == ["casme2/sub01", "casme2/sub02", "samm/006", "smic/s1"]
    assert rec["clip_keys"][:2] == ["samm/006/006_1_2", "casme2/sub02/EP01"] and rec["map_size"] == 28


def test_model_files_of_an_older_version_or_with_a_bad_second_member_are_refused(tmp_path):
    """Format version 0 is refused like 99; a NaN weight or zero copies in the second member (not only the first)
    is named when the file is read (hand-made payloads: these checks come before any network is built)."""
    good = {"copies": 1, "snapshots": 0, "state_dict": {"conv.weight": torch.ones(2, 3)}}
    payload = {"format": "icegan-recognizer", "version": 1, "config": {"model": {"name": "ststnet"}},
               "classes": ["negative", "positive", "surprise"],
               "training": {"map_size": 28, "subjects": [], "clip_keys": []}, "members": [good, good]}
    torch.save({**payload, "version": 0}, tmp_path / "v0.pt")
    with pytest.raises(SavedRecognizerError, match="format version 0; this icegan reads version 1"):
        load_recognizer(tmp_path / "v0.pt")
    nan = {**good, "state_dict": {"conv.weight": torch.tensor([[1.0, float("nan"), 1.0]])}}
    torch.save({**payload, "members": [good, nan]}, tmp_path / "nan1.pt")
    with pytest.raises(SavedRecognizerError, match=r"nan1\.pt: members\[1\] weight 'conv\.weight' holds NaN"):
        load_recognizer(tmp_path / "nan1.pt")
    torch.save({**payload, "members": [good, {**good, "copies": 0}]}, tmp_path / "zero.pt")
    with pytest.raises(SavedRecognizerError, match=r"zero\.pt: members\[1\] copies is 0, not an integer of at least 1"):
        load_recognizer(tmp_path / "zero.pt")

def test_maps_of_other_flow_settings_are_not_also_said_to_be_another_checkpoint():
    """When the flow settings differ, the sentence names them alone: other weights follow from them and are not a
    second reason."""
    from icegan.saved_recognizer import maps_differ
    sr = {"flow": {"method": "srflownet", "iters": 2}, "weights": {"flow_weights_sha256": "a"}, "size": 28}
    other = {"flow": {"method": "srflownet", "iters": 4}, "weights": {"flow_weights_sha256": "b"}, "size": 28}
    assert maps_differ(sr, other) == "the flow settings differ from the training maps' (flow.iters)"


def test_non_finite_scores_name_the_first_bad_clip_and_count_the_bad_clips(tmp_path, monkeypatch):
    """A model whose scores are Inf in one class of clip 3 and NaN for clip 5 (of 9): the error names clip 3 (the
    first, not the first clip of the table nor the last bad one) and counts 2 of 9 clips; an Inf counts as NaN does."""
    import icegan.saved_recognizer as sr
    fit(toy_config("model.name=logreg"), tmp_path / "lr.pt", progress=False)
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=3, seed=5, datasets=("casme2",))
    table = write_feature_table(tmp_path, fs, labels="empty")
    real = sr.load_recognizer

    def damaged(path, device="cpu"):
        fitted, meta = real(path, device)

        def scores(x):
            p = np.array(fitted(x), dtype=np.float64)
            p[3, 1], p[5] = np.inf, np.nan
            return p
        return scores, meta
    monkeypatch.setattr(sr, "load_recognizer", damaged)
    row = fs.samples.iloc[3]
    with pytest.raises(SavedRecognizerError, match=rf"lr\.pt: its weights produce NaN or Inf scores \(2 of 9 clips, "
                                                   rf"first {row['subject']}/{row['clip']}\)"):
        predict_table([tmp_path / "lr.pt"], table)
