"""`icegan loso`: help, config errors, and a short real LOSO on megc2019_htnet."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from icegan.cli import build_parser, main
from icegan.commands.loso import FeatureDataConfig, LosoConfig
from icegan.recognition import RecognizerConfig


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["loso", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--config", "--out", "--no-progress", "key=value"):
        assert opt in text
    keys = [f.name for f in dataclasses.fields(LosoConfig) if f.name not in ("data", "model")]
    keys += [f"data.{f.name}" for f in dataclasses.fields(FeatureDataConfig)]
    keys += [f"model.{f.name}" for f in dataclasses.fields(RecognizerConfig)]
    missing = [k for k in keys if f"{k}=" not in text]
    assert not missing, f"undocumented config keys: {missing}"


@pytest.mark.parametrize("overrides,msg", [
    (["model.epoch=3"], "model.epoch"),
    (["model.epochs=three"], "model.epochs"),
    (["protocol=LOVO"], "protocol"),
    (["model.name=resnet"], "model.name"),
    (["data.recenter=mean"], "data.recenter"),
    (["data.roi=eyes"], "data.roi"),
    (["data.source=toy", "data.roi=landmarks"], "data.roi"),
    (["epochs"], "key=value"),
    (["workers=-1"], "workers"),
    (["max_folds=-1"], "max_folds must be >= 0"),
    (["workers=2", "device=cuda"], "workers"),
    (["model.name=random_forest", "oracle_epoch=true"], "oracle_epoch"),
    (["model.name=random_forest", "model.forest_trees=0"], "model.forest_trees"),
])
def test_config_errors_name_the_key(overrides, msg, capsys, tmp_path):
    rc = main(["loso", "--out", str(tmp_path / "x"), *overrides])
    assert rc == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_config_file_errors(capsys, tmp_path):
    assert main(["loso", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  epochz: 3\n")
    assert main(["loso", "--config", str(bad)]) == 2
    assert "model.epochz" in capsys.readouterr().err


def test_sklearn_learners_ignore_the_device():
    """Folds in processes (workers != 1) are refused on a GPU for the networks only; logistic regression and the
    forest never use the device, so a suite-wide device=cuda must not stop them."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import ConfigError, load_config
    for name in ("features_logreg.yaml", "features_randomforest.yaml"):
        cfg = load_config(LosoConfig, f"configs/{name}", ["device=cuda"])
        assert (cfg.workers, cfg.device) == (0, "cuda")
    with pytest.raises(ConfigError, match="workers"):
        load_config(LosoConfig, "configs/features_ststnet.yaml", ["device=cuda", "workers=0"])


def test_short_real_loso_writes_every_output(shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["loso", "--config", "configs/features_ststnet.yaml", "--out", str(out), "--no-progress",
               f"data.root={shared_data / 'megc2019_htnet'}", "max_folds=4", "model.epochs=2", "threads=1"])
    assert rc == 0
    for name in ("config.yaml", "run.json", "predictions.csv", "metrics.json", "metrics.md", "confusion.png",
                 "per_subject.csv", "per_subject.png"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) == {"protocol", "n_folds", "n_samples", "oracle_epoch", "overall", "per_dataset"}
    assert m["n_folds"] == 4 and m["protocol"] == "CDE" and m["oracle_epoch"] is False
    pred = pd.read_csv(out / "predictions.csv", dtype={"subject": str})
    assert sorted(pred["subject"].unique()) == ["casme2/sub01", "casme2/sub02", "casme2/sub03", "casme2/sub04"]
    assert len(pred) == m["n_samples"] and pred[["score_negative", "score_positive", "score_surprise"]].sum(axis=1).round(4).eq(1).all()
    cfg = (out / "config.yaml").read_text()
    assert "epochs: 2" in cfg and "max_folds: 4" in cfg
    printed = capsys.readouterr().out
    assert "UF1" in printed
    md_ci = [ln for ln in (out / "metrics.md").read_text().splitlines() if ln.startswith("Subject-bootstrap")][0]
    console_ci = [ln for ln in printed.splitlines() if "subject-bootstrap interval (4 subjects)" in ln][0]
    assert console_ci.split("UF1 ")[1].split("]")[0] == md_ci.split("UF1 ")[1].split("]")[0]   # same interval


def test_recenter_option_reaches_the_features(shared_data):
    from icegan.commands.loso import load_feature_set
    root = str(shared_data / "megc2019_htnet")
    plain = load_feature_set(FeatureDataConfig(root=root, datasets=["samm"]))
    cent = load_feature_set(FeatureDataConfig(root=root, datasets=["samm"], recenter="median"))
    assert cent.samples.equals(plain.samples)
    med = torch.quantile(cent.features[:, :2].flatten(2), 0.5, dim=-1)
    torch.testing.assert_close(med, torch.full_like(med, 0.5))
    assert not torch.allclose(cent.features[:, :2], plain.features[:, :2])
    toy = load_feature_set(FeatureDataConfig(source="toy", recenter="median"))
    assert torch.quantile(toy.features[:, 0].flatten(1), 0.5, dim=-1).sub(0.5).abs().max() < 1e-6


def test_loso_registered_in_cli():
    parser = build_parser()
    args = parser.parse_args(["loso", "model.epochs=1"])
    assert args.overrides == ["model.epochs=1"] and callable(args.func)


def test_parallel_fold_groups_give_the_same_predictions(tmp_path):
    """workers=2 trains the fold groups in two processes: the same predictions as one process (same thread
    count), for grouped STSTNet and for logistic regression; a killed parallel run resumes to the same metrics."""
    common = ["data.source=toy", "data.toy_subjects=2", "threads=1", "--no-progress"]
    runs = {}
    for name, extra in (("ststnet", ["model.epochs=2", "model.batch_size=16", "model.folds_per_group=1"]),
                        ("logreg", ["model.name=logreg"]),
                        ("random_forest", ["model.name=random_forest", "model.forest_trees=20"])):
        for w in (1, 2):
            out = tmp_path / f"{name}_w{w}"
            assert main(["loso", "--out", str(out), f"workers={w}", *common, *extra]) == 0
            runs[name, w] = out
        a, b = (pd.read_csv(runs[name, w] / "predictions.csv").sort_values(["fold", "clip"]).reset_index(drop=True)
                for w in (1, 2))
        pd.testing.assert_frame_equal(a, b)
        assert len(a["fold"].unique()) == 4
        assert (runs[name, 1] / "metrics.json").read_text() == (runs[name, 2] / "metrics.json").read_text()
    # a parallel run cut after two folds (as a killed run leaves it) resumes to the same metrics
    out = tmp_path / "resumed"
    extra = ["model.epochs=2", "model.batch_size=16", "model.folds_per_group=1"]
    assert main(["loso", "--out", str(out), "max_folds=4", "workers=2", *common, *extra]) == 0
    pred = pd.read_csv(out / "predictions.csv")
    pred[pred["fold"] < 2].to_csv(out / "predictions.csv", index=False)
    (out / "metrics.json").unlink()
    assert main(["loso", "--out", str(out), "max_folds=4", "workers=2", *common, *extra]) == 0
    assert (out / "metrics.json").read_text() == (runs["ststnet", 1] / "metrics.json").read_text()


def test_workers_with_one_group_says_it_has_no_effect(tmp_path, capsys):
    rc = main(["loso", "--out", str(tmp_path / "one"), "data.source=toy", "data.toy_subjects=1", "model.epochs=1",
               "workers=2", "threads=1", "--no-progress"])
    assert rc == 0
    assert "workers=2 has no effect with model.folds_per_group=0" in capsys.readouterr().err


def test_a_table_of_one_class_is_refused_before_training(tmp_path, capsys):
    """A feature table whose labels are all one class (a label column mapped wrongly) would score UF1 1.0 for a
    constant guess: `icegan loso` refuses it in one line before a run folder exists."""
    from icegan.protocol import LosoScopeError, check_classes, make_folds
    folds = make_folds(["a/1", "a/1", "a/2", "b/3"], "CDE")
    check_classes([0, 1, 1, 1], folds)                          # two classes: fine
    with pytest.raises(LosoScopeError, match=r"the 4 clip\(s\) in the LOSO's scope all have label 1 \(positive\)"):
        check_classes([1, 1, 1, 1], folds)
    with pytest.raises(LosoScopeError, match=r"the 3 clip\(s\) in the LOSO's scope all have label 2"):
        check_classes([0, 2, 2, 2], make_folds(["b/1", "a/1", "a/2", "a/3"], "SDE", "a"))   # class 0 out of scope
    table = tmp_path / "one_class.csv"
    (tmp_path / "maps").mkdir()
    rows = ["dataset,subject,clip,label,path"]
    for i in range(6):
        np.save(tmp_path / "maps" / f"{i}.npy", np.random.default_rng(i).random((3, 28, 28), dtype=np.float32))
        rows.append(f"mine,mine/p{i % 3},c{i},surprise,maps/{i}.npy")
    table.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["loso", "--out", str(out), "data.source=table", f"data.table={table}", "model.name=logreg",
                 "threads=1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "icegan loso: error: the 6 clip(s) in the LOSO's scope all have label 2 (surprise)" in err
    assert "Traceback" not in err and not out.exists()


def test_loso_runs_on_a_clone_of_the_htnet_release(shared_data, htnet_clone, tmp_path):
    """`data.root` may point at the HTNet release as cloned: same predictions as the icegan layout."""
    clone = htnet_clone
    common = ["--config", "configs/features_logreg.yaml", "--no-progress", "max_folds=2", "threads=1", "workers=1"]
    assert main(["loso", "--out", str(tmp_path / "htnet"), f"data.root={clone}", *common]) == 0
    assert main(["loso", "--out", str(tmp_path / "icegan"), f"data.root={shared_data / 'megc2019_htnet'}", *common]) == 0
    a = pd.read_csv(tmp_path / "htnet" / "predictions.csv")
    b = pd.read_csv(tmp_path / "icegan" / "predictions.csv")
    assert len(a) > 0 and a.equals(b)


def test_loso_on_maps_of_another_size(resized_megc, tmp_path, capsys):
    """data.size=0 takes 56x56 maps as they are; STSTNet resizes them to its input size."""
    root = resized_megc(tmp_path, 56)
    common = ["--config", "configs/features_ststnet.yaml", "--no-progress", f"data.root={root}", "max_folds=2",
              "model.epochs=1", "threads=1"]
    assert main(["loso", "--out", str(tmp_path / "fixed"), *common]) == 2      # data.size=28 by default
    assert "56×56, expected 28×28" in capsys.readouterr().err
    assert main(["loso", "--out", str(tmp_path / "any"), *common, "data.size=0"]) == 0
    pred = pd.read_csv(tmp_path / "any" / "predictions.csv")
    assert sorted(pred["subject"].unique()) == ["casme2/sub01", "casme2/sub02"]


def test_permute_labels_keeps_each_datasets_class_counts(shared_data):
    from icegan.commands.loso import load_feature_set, permute_labels
    root = str(shared_data / "megc2019_htnet")
    real = load_feature_set(FeatureDataConfig(root=root))
    null = load_feature_set(FeatureDataConfig(root=root, permute_labels=3))
    assert torch.equal(null.features, real.features)
    assert null.samples.drop(columns="label").equals(real.samples.drop(columns="label"))
    for ds in ("casme2", "samm", "smic"):
        a = real.samples.loc[real.samples["dataset"] == ds, "label"].value_counts().sort_index()
        b = null.samples.loc[null.samples["dataset"] == ds, "label"].value_counts().sort_index()
        assert a.equals(b)
    changed = (null.samples["label"] != real.samples["label"]).mean()
    assert 0.4 < changed < 0.8                       # a real shuffle (about 1 - sum p_c^2 of the clips move class)
    assert permute_labels(real.samples, 3)["label"].equals(null.samples["label"])          # seeded
    assert not permute_labels(real.samples, 4)["label"].equals(null.samples["label"])
    with pytest.raises(ValueError, match="permute_labels must be -1"):
        FeatureDataConfig(permute_labels=-2)


def test_null_run_says_so_in_its_outputs(shared_data, tmp_path, capsys):
    out = tmp_path / "null"
    assert main(["loso", "--config", "configs/features_logreg.yaml", "--out", str(out), "--no-progress", "max_folds=3",
                 "threads=1", "workers=1", f"data.root={shared_data / 'megc2019_htnet'}", "data.permute_labels=0"]) == 0
    assert "NULL RUN: labels permuted" in (out / "metrics.md").read_text().splitlines()[0]
    assert "null run on permuted labels" in capsys.readouterr().err
    assert "permute_labels: 0" in (out / "config.yaml").read_text()


@pytest.mark.parametrize("overrides,msg", [
    (["protocol=SDE"], "protocol SDE needs a dataset: one of ['casme2', 'samm', 'smic'], the datasets of these clips "
                       "(dataset=NAME in icegan loso, data.dataset=NAME in train.py)"),
    (["protocol=SDE", "dataset=casme3"], "SDE dataset 'casme3' has no clips; datasets present: ['casme2', 'samm', 'smic'] (did you mean 'casme2'?)"),
    (["dataset=samm"], "protocol CDE runs over all datasets"),
])
def test_protocol_errors_are_messages(shared_data, overrides, msg, tmp_path, capsys):
    """A protocol that cannot be built from the feature table ends with the error line and exit 2, before any
    run folder is made."""
    rc = main(["loso", "--config", "configs/features_logreg.yaml", "--out", str(tmp_path / "x"), *overrides])
    err = capsys.readouterr().err
    assert rc == 2 and f"icegan loso: error: {msg}" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_another_run_in_out_is_a_message(shared_data, tmp_path, capsys):
    """--out holding a run made with another config: exit 2 with the reason; the finished run is untouched."""
    out = tmp_path / "run"
    base = ["loso", "--config", "configs/features_logreg.yaml", "--out", str(out), "--no-progress", "max_folds=1",
            "workers=1", "threads=1"]
    assert main(base) == 0
    before = (out / "predictions.csv").read_bytes()
    capsys.readouterr()
    assert main(base + ["model.logreg_C=2"]) == 2
    err = capsys.readouterr().err
    assert "icegan loso: error:" in err and "different config" in err
    assert (out / "predictions.csv").read_bytes() == before


def test_random_forest_config_on_real_features_equals_scikit_learn(shared_data, tmp_path):
    """configs/features_randomforest.yaml (cut to 2 folds and 40 trees) on megc2019_htnet: every held-out clip's
    probabilities are those of a RandomForestClassifier fitted directly on the other subjects' clips."""
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    from icegan.data.features import load_megc2019_features
    root = shared_data / "megc2019_htnet"
    out = tmp_path / "rf"
    assert main(["loso", "--config", "configs/features_randomforest.yaml", "--out", str(out), "--no-progress",
                 f"data.root={root}", "max_folds=2", "model.forest_trees=40", "seed=3", "workers=1",
                 "threads=1"]) == 0
    pred = pd.read_csv(out / "predictions.csv", dtype={"subject": str, "clip": str})
    fs = load_megc2019_features(root, None, size=28)
    flat, y = fs.features.reshape(len(fs), -1).numpy(), fs.labels.numpy()
    subj = fs.samples["subject"].to_numpy()
    assert sorted(pred["subject"].unique()) == ["casme2/sub01", "casme2/sub02"]
    for s in ("casme2/sub01", "casme2/sub02"):
        ref = RandomForestClassifier(40, class_weight="balanced", random_state=3).fit(flat[subj != s], y[subj != s])
        want = ref.predict_proba(flat[subj == s])
        got = pred[pred["subject"] == s].set_index("clip").loc[fs.samples["clip"][subj == s]]
        np.testing.assert_allclose(got[["score_negative", "score_positive", "score_surprise"]].to_numpy(), want,
                                   rtol=0, atol=1e-8)
        assert (got["y_pred"].to_numpy() == want.argmax(1)).all()


def test_a_run_saved_before_a_key_existed_still_resumes(tmp_path, capsys):
    """A config.yaml written before icegan added a key (here model.module and data.normalize are removed from it)
    resumes when the key holds its default now, and is refused when it does not."""
    import yaml
    out = tmp_path / "r"
    args = ["loso", "--out", str(out), "--no-progress", "data.source=toy", "model.name=logreg", "max_folds=2",
            "workers=1"]
    assert main(args) == 0
    before = (out / "predictions.csv").read_text()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    del saved["model"]["module"], saved["data"]["normalize"]
    (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert main(args) == 0
    assert (out / "predictions.csv").read_text() == before
    assert "module" in yaml.safe_load((out / "config.yaml").read_text())["model"]      # rewritten in full
    del saved["model"]["logreg_C"]
    (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    capsys.readouterr()
    assert main(args + ["model.logreg_C=0.5"]) == 2                  # the missing key is not at its default now
    assert "different config" in capsys.readouterr().err


def test_resume_refuses_a_feature_set_that_changed(tmp_path):
    """run.json records the data's digest: the same run folder resumed on maps that changed (a regenerated feature
    table with the same clip names and labels) is refused and says why; unchanged maps resume."""
    from icegan.commands.loso import load_feature_set, run
    from icegan.config import load_config
    from icegan.data.features import FeatureSet
    from icegan.protocol import LosoStateError, data_digest
    cfg = load_config(LosoConfig, None, ["data.source=toy", "model.name=logreg", "max_folds=2", "workers=1"])
    fs = load_feature_set(cfg.data)
    out = tmp_path / "r"
    run(cfg, out, progress=False, feature_set=fs)
    assert json.loads((out / "run.json").read_text())["provenance"]["data"] == data_digest(fs.samples, fs.features)
    run(cfg, out, progress=False, feature_set=fs)
    moved = fs.features.clone()
    moved[0] = moved[0].flip(-1)
    with pytest.raises(LosoStateError, match="its data .* the clips, their labels or their maps changed"):
        run(cfg, out, progress=False, feature_set=FeatureSet(fs.samples, moved))
    longer = load_config(LosoConfig, None, ["data.source=toy", "model.name=logreg", "max_folds=3", "workers=1"])
    run(longer, out, progress=False, feature_set=fs)                  # extends the folder's 2 folds to 3
    assert len(json.loads((out / "run.json").read_text())["folds"]) == 3
    shorter = load_config(LosoConfig, None, ["data.source=toy", "model.name=logreg", "max_folds=2", "workers=1"])
    with pytest.raises(LosoStateError) as exc:                       # the folder's 3 folds are more than this run's
        run(shorter, out, progress=False, feature_set=fs)
    assert str(exc.value) == (f"{out} holds a different LOSO run (differs in ['folds']) (it records a run of 3 folds "
                              f"(max_folds=3), this run the first 2 of them: a smaller max_folds; its finished folds "
                              f"include 1 this run does not run (casme2/s03); resume it with max_folds=3, or extend it "
                              f"with a larger max_folds); use another --out or delete that folder")


@pytest.mark.parametrize("over, msg", [
    (["model.input_size=2"], "model.input_size=2 does not fit ststnet: STSTNet input_size 2 is too small"),
    (["model.name=offtanet", "model.input_size=30"], "model.input_size=30 does not fit offtanet: Off-TANet: input_size 30"),
    (["model.input_size=0"], "model.input_size must be >= 1 pixel"),
])
def test_a_network_size_it_cannot_build_is_refused_before_the_run_folder(tmp_path, capsys, over, msg):
    """A model.input_size the network cannot be built at is one error line naming the key, and leaves no run folder
    behind (so the corrected rerun is not refused as another config)."""
    out = tmp_path / "r"
    assert main(["loso", "--out", str(out), "--no-progress", "data.source=toy", "max_folds=1", "workers=1",
                 *over]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err
    assert not (out / "run.json").exists()


def test_train_py_refuses_a_recognizer_size_it_cannot_build(tmp_path, capsys):
    from icegan.pipeline import main as train_main
    assert train_main(["--out", str(tmp_path / "r"), "--no-progress", "recognizer.input_size=2"]) == 2
    err = capsys.readouterr().err
    assert "recognizer.input_size=2 does not fit ststnet" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_oracle_epoch_run_is_marked_in_every_output(tmp_path, capsys):
    """oracle_epoch=true reaches the training (each fold's scores recorded per epoch, the epoch kept named in
    predictions.csv) and marks the run: metrics.json, metrics.md's title and the printed summary."""
    out = tmp_path / "oracle"
    assert main(["loso", "--out", str(out), "--no-progress", "data.source=toy", "data.toy_subjects=2",
                 "model.epochs=2", "model.eval_every=1", "model.batch_size=16", "max_folds=2", "threads=1",
                 "oracle_epoch=true"]) == 0
    assert json.loads((out / "metrics.json").read_text())["oracle_epoch"] is True
    assert json.loads((out / "run.json").read_text())["oracle_epoch"] is True
    assert (out / "metrics.md").read_text().splitlines()[0].startswith("# loso [ORACLE EPOCH]")
    pred = pd.read_csv(out / "predictions.csv")
    assert pred["oracle_epoch"].isin([0, 1]).all()            # an epoch was picked for every fold
    assert "ORACLE EPOCH" in capsys.readouterr().out


def test_without_out_the_run_goes_to_runs_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["loso", "--no-progress", "name=my_recipe", "data.source=toy", "model.name=logreg", "max_folds=1",
                 "workers=1", "threads=1"]) == 0
    assert (tmp_path / "runs" / "my_recipe" / "metrics.json").is_file()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["my_recipe"]


def test_synthetic_training_rows_have_no_coded_action_units():
    """FeatureFolds appends the synthetic clips after the real ones; their action-unit targets are zero and marked
    unknown (they were never FACS-coded), the real clips' kept as given."""
    from icegan.commands.loso import FeatureFolds
    from icegan.data.toy_features import make_toy_features
    real = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1)
    syn = make_toy_features(n_subjects_per_dataset=1, clips_per_class=2)
    n, m = len(real), len(syn)
    au = (torch.ones(n, 14), torch.ones(n, dtype=torch.bool))
    ff = FeatureFolds(LosoConfig(), real.features, real.labels, real.samples["subject"].tolist(), progress=False,
                      extra=syn, au=au)
    assert ff.x.shape[0] == n + m and torch.equal(ff.x[n:], syn.features) and torch.equal(ff.y[n:], syn.labels)
    assert ff.subjects == real.samples["subject"].tolist() + syn.samples["subject"].tolist()
    assert ff.au[1][:n].all() and not ff.au[1][n:].any()
    assert ff.au[0][:n].eq(1).all() and ff.au[0][n:].eq(0).all()


def test_permute_labels_seed_0_is_a_null_run_too():
    """data.permute_labels=0 is a seed like any other: the labels are permuted (0 is not 'off'; -1 is)."""
    from icegan.commands.loso import load_feature_set, permute_labels
    real = load_feature_set(FeatureDataConfig(source="toy"))
    null = load_feature_set(FeatureDataConfig(source="toy", permute_labels=0))
    assert null.samples["label"].equals(permute_labels(real.samples, 0)["label"])
    assert not null.samples["label"].equals(real.samples["label"])


@pytest.mark.parametrize("make, msg", [
    (lambda: FeatureDataConfig(roi="landmarks", roi_patch=29), "data.roi_patch must be in 1..28"),
    (lambda: FeatureDataConfig(synthetic_per_clip=1, size=0), "it needs data.size=28, not 0"),
    (lambda: LosoConfig(workers=0, device="cuda"), "workers=0 trains fold groups in CPU processes"),
    (lambda: LosoConfig(workers=2, device="cuda:1"), "with device=cuda:1 set workers=1"),
])
def test_data_and_worker_limits_are_inclusive(make, msg):
    """The edges of the config checks: roi_patch 1 and 28 and synthetic clips at size 28 are accepted, 29 and size 0
    are not; fold processes (workers != 1) run with device cpu or auto (resolved when the run starts), never a GPU
    named outright."""
    FeatureDataConfig(roi="landmarks", roi_patch=28)
    FeatureDataConfig(roi="landmarks", roi_patch=1)
    FeatureDataConfig(synthetic_per_clip=1, size=28)
    LosoConfig(workers=0, device="auto")
    LosoConfig(workers=2, device="cpu")
    with pytest.raises(ValueError, match=msg):
        make()


def test_hde_folds_are_trained_one_per_call():
    """protocol=HDE trains every fold alone whatever model.folds_per_group (CDE keeps the groups of the setting)."""
    from icegan.commands.loso import fold_runner, load_feature_set
    from icegan.config import load_config
    for protocol, want in (("HDE", 1), ("CDE", 0)):
        cfg = load_config(LosoConfig, None, [f"protocol={protocol}", "data.source=toy", "model.folds_per_group=0",
                                             "workers=1"])
        _, per_call, group_map = fold_runner(cfg, load_feature_set(cfg.data), progress=False)
        assert (per_call, group_map) == (want, None), protocol


def test_a_toy_run_says_its_score_is_no_micro_expression_result(tmp_path, capsys):
    """`icegan loso data.source=toy` (make demo-features) prints that the made-up maps check the protocol and that
    its score (UF1 near 1) is not a micro-expression result, as the main job's synthetic demo does."""
    args = ["loso", "--no-progress", "data.source=toy", "model.name=logreg", "max_folds=2", "workers=1"]
    assert main(args + ["--out", str(tmp_path / "toy")]) == 0
    assert "note: data.source=toy: made-up flow maps" in capsys.readouterr().out
