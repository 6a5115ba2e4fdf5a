"""Protocol HDE (leave one dataset out): folds, a short real run on the composite, resuming, the settings it refuses,
and the commands that read its runs (ensemble, compare, nested selection) or refuse it (fit, the main job)."""
import io
import json
import types

import numpy as np
import pandas as pd
import pytest

from icegan.cli import main
from icegan.commands.loso import LosoConfig, check_domain_adversarial, load_feature_set, run
from icegan.config import ConfigError, load_config
from icegan.data.toy_features import make_toy_features
from icegan.protocol import REFERENCES, LosoScopeError, held_out_column, make_folds, run_loso

SUBJECTS = (["casme2/sub01"] * 3 + ["smic/s01"] * 2 + ["samm/006"] * 2 + ["casme2/sub02"] * 2 + ["smic/s02"]
            + ["samm/007"] * 3)
SCORES = ["score_negative", "score_positive", "score_surprise"]


def test_hde_folds_test_every_dataset_once_and_train_on_the_others():
    folds = make_folds(SUBJECTS, "HDE")
    assert [f.subject for f in folds] == ["casme2", "samm", "smic"] and [f.index for f in folds] == [0, 1, 2]
    assert all(f.unit == "dataset" for f in folds)
    assert sorted(np.concatenate([f.test_idx for f in folds]).tolist()) == list(range(len(SUBJECTS)))
    prefix = np.asarray([s.split("/")[0] for s in SUBJECTS])
    for f in folds:
        assert set(prefix[f.test_idx]) == {f.subject}                  # the whole dataset, nothing else
        assert f.subject not in set(prefix[f.train_idx])                # never on both sides
        assert sorted(np.concatenate([f.train_idx, f.test_idx]).tolist()) == list(range(len(SUBJECTS)))
    # the subject folds are unchanged and say so
    assert {f.unit for f in make_folds(SUBJECTS, "CDE")} == {"subject"}
    assert [held_out_column(p) for p in ("CDE", "SDE", "HDE")] == ["subject", "subject", "dataset"]
    # two datasets make two folds
    two = make_folds([s for s in SUBJECTS if not s.startswith("smic")], "HDE")
    assert [f.subject for f in two] == ["casme2", "samm"]


@pytest.mark.parametrize("subjects,dataset,err,msg", [
    (["casme2/sub01", "casme2/sub02", "casme2/sub03"], None, LosoScopeError,
     r"at least 2 datasets, got 1: \['casme2'\]"),
    (SUBJECTS, "samm", ValueError, "dataset='samm' applies to SDE only"),
    (["sub01", "sub02"], None, ValueError, "prefixed"),
])
def test_hde_fold_errors(subjects, dataset, err, msg):
    with pytest.raises(err, match=msg):
        make_folds(subjects, "HDE", dataset)


def _centroid(fs, calls=None, fail_at=None):
    """Nearest-class-mean classifier on the fold's training rows only (deterministic)."""
    x, y = fs.features.flatten(1).numpy(), fs.labels.numpy()

    def fold_fn(fold):
        if calls is not None:
            calls.append(fold.subject)
        if fold.index == fail_at:
            raise RuntimeError("killed")
        means = np.stack([x[fold.train_idx][y[fold.train_idx] == c].mean(0) for c in range(3)])
        return -((x[fold.test_idx][:, None] - means[None]) ** 2).sum(-1)
    return fold_fn


def test_killed_hde_run_resumes_at_the_first_unfinished_dataset(tmp_path):
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2, datasets=("smic", "casme2", "samm"))
    ref = run_loso(toy.samples, _centroid(toy), tmp_path / "full", protocol="HDE", progress=False)
    with pytest.raises(RuntimeError, match="killed"):
        run_loso(toy.samples, _centroid(toy, fail_at=2), tmp_path / "res", protocol="HDE", progress=False)
    assert sorted(pd.read_csv(tmp_path / "res" / "predictions.csv")["dataset"].unique()) == ["casme2", "samm"]
    calls = []
    assert run_loso(toy.samples, _centroid(toy, calls), tmp_path / "res", protocol="HDE", progress=False) == ref
    assert calls == ["smic"]
    assert (tmp_path / "res" / "metrics.json").read_text() == (tmp_path / "full" / "metrics.json").read_text()
    calls.clear()
    run_loso(toy.samples, _centroid(toy, calls), tmp_path / "res", protocol="HDE", progress=False)
    assert calls == []                                      # finished: nothing trained again
    assert ref["protocol"] == "HDE" and ref["n_folds"] == 3
    # metrics.md gives, beside the pooled Full, the mean over the held-out datasets (each weighing the same)
    per = ref["per_dataset"].values()
    mean = (sum(m["UF1"] for m in per) / 3, sum(m["UAR"] for m in per) / 3)
    assert (f"their mean, each held-out dataset weighing the same: UF1 {mean[0]:.4f} / UAR {mean[1]:.4f}."
            in (tmp_path / "full" / "metrics.md").read_text())
    # the same folder is another experiment under another protocol
    from icegan.protocol import LosoStateError
    with pytest.raises(LosoStateError, match="protocol"):
        run_loso(toy.samples, _centroid(toy), tmp_path / "res", protocol="CDE", progress=False)


def test_short_real_hde_run_and_its_resume(shared_data, tmp_path, capsys, monkeypatch):
    """Logistic regression under HDE on the 442-clip composite: every output, three folds, per-dataset metrics with the
    overall keys, no CDE reference row in metrics.md; a run cut inside its second fold resumes to the same metrics,
    training only the folds it lacks."""
    import icegan.recognition as recognition

    out = tmp_path / "hde"
    argv = ["loso", "--config", "configs/features_logreg.yaml", "--out", str(out), "--no-progress", "protocol=HDE",
            f"data.root={shared_data / 'megc2019_htnet'}", "workers=1", "threads=1"]
    assert main(argv) == 0
    for name in ("config.yaml", "run.json", "predictions.csv", "metrics.json", "metrics.md", "confusion.png",
                 "per_subject.csv", "environment.jsonl"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert (m["protocol"], m["n_folds"], m["n_samples"], m["oracle_epoch"]) == ("HDE", 3, 442, False)
    assert set(m["per_dataset"]) == {"smic", "casme2", "samm"}
    assert all(set(v) == set(m["overall"]) for v in m["per_dataset"].values())
    header = json.loads((out / "run.json").read_text())
    assert header["protocol"] == "HDE" and header["folds"] == ["casme2", "samm", "smic"] and header["dataset"] is None
    pred = pd.read_csv(out / "predictions.csv", dtype={"subject": str, "clip": str})
    assert len(pred) == 442 and pred.groupby("dataset")["fold"].nunique().eq(1).all()
    assert pred.groupby("dataset")["fold"].first().to_dict() == {"casme2": 0, "samm": 1, "smic": 2}
    assert pred.groupby("dataset").size().to_dict() == {"casme2": 145, "samm": 133, "smic": 164}
    assert len(pd.read_csv(out / "per_subject.csv")) == 68
    md = (out / "metrics.md").read_text()
    assert "HDE" in md.splitlines()[0] and "leave-one-dataset-out" in md.splitlines()[0]
    assert "No reference rows are shown for HDE runs" in md
    assert not [r["method"] for r in REFERENCES if r["method"] in md]
    assert "HDE (leave one dataset out) 3 folds, 442 samples" in capsys.readouterr().out

    # cut the run inside its second fold (a killed writer), then resume: only the folds it lacks are trained
    lines = (out / "predictions.csv").read_text().splitlines()
    n_keep = 1 + 145 + 60                               # header, all of casme2, part of samm
    (out / "predictions.csv").write_text("\n".join(lines[:n_keep]) + "\n")
    (out / "metrics.json").unlink()
    trained = []
    real = recognition.fit_predict_sklearn

    def counted(cfg, x, y, fold, **kw):
        trained.append(fold.subject)
        return real(cfg, x, y, fold, **kw)
    monkeypatch.setattr(recognition, "fit_predict_sklearn", counted)
    assert main(argv) == 0
    assert trained == ["samm", "smic"]
    assert json.loads((out / "metrics.json").read_text()) == m
    env = [json.loads(x) for x in (out / "environment.jsonl").read_text().splitlines()]
    assert [e["folds_finished_at_start"] for e in env] == [0, 1]


@pytest.mark.parametrize("overrides,key", [
    (["oracle_epoch=true"], "oracle_epoch"),
    (["model.domain_bn=true"], "model.domain_bn"),
    (["data.train_subject_fraction=0.5"], "data.train_subject_fraction"),
    (["model.domain_adversarial=1"], "model.domain_adversarial"),          # the toy set has two datasets
    (["dataset=samm"], "dataset='samm' applies to SDE only"),
    (["data.datasets=[casme2]"], "at least 2 datasets, got 1: ['casme2']"),
])
def test_settings_hde_cannot_apply_are_refused_before_a_folder_exists(overrides, key, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["loso", "--out", str(out), "data.source=toy", "model.epochs=1", "protocol=HDE", *overrides]) == 2
    err = capsys.readouterr().err
    assert key in err and "HDE" in err, err
    assert not out.exists()


def test_hde_refusals_give_the_reason_and_the_fix():
    with pytest.raises(ConfigError) as exc:
        load_config(LosoConfig, None, ["protocol=HDE", "model.domain_bn=true", "data.train_subject_fraction=0.5"])
    msg = str(exc.value)
    assert "model.domain_bn=true" in msg and "never be trained" in msg and "set model.domain_bn=false" in msg
    assert "data.train_subject_fraction=0.5" in msg and "data.datasets=[...]" in msg
    for protocol in ("CDE", "SDE"):                      # the subject protocols keep them
        cfg = load_config(LosoConfig, None, [f"protocol={protocol}", "model.domain_bn=true",
                                              "data.train_subject_fraction=0.5"])
        assert cfg.model.domain_bn and cfg.data.train_subject_fraction == 0.5


def test_domain_adversarial_needs_two_training_datasets_in_every_hde_fold(tmp_path):
    cfg = load_config(LosoConfig, None, ["protocol=HDE", "model.domain_adversarial=1", "model.epochs=1",
                                         "model.batch_size=32", "threads=1"])
    for datasets, ok in ((["casme2", "samm"], False), (["casme2", "samm", "smic"], True)):
        fake = types.SimpleNamespace(samples=pd.DataFrame({"dataset": datasets * 2}))
        if ok:
            check_domain_adversarial(cfg, fake)
        else:
            with pytest.raises(ValueError, match=r"domain_adversarial=1.0 .* at least three .* a fold trains on 1"):
                check_domain_adversarial(cfg, fake)
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2, datasets=("smic", "casme2", "samm"))
    m = run(cfg, tmp_path / "dann", progress=False, feature_set=toy)      # every fold trains on two datasets
    assert m["protocol"] == "HDE" and m["n_folds"] == 3 and m["n_samples"] == len(toy)


def test_hde_runs_average_compare_and_select(tmp_path, capsys):
    """Two toy HDE runs (logistic regression; STSTNet with inner-validation early stopping by training subject):
    `icegan ensemble` averages them, `icegan compare` resamples their subjects, a nested selection chooses per held-out
    dataset from inner folds that never hold a clip of it; a selection with scope dataset is refused."""
    from icegan.ensemble import ensemble_runs
    from icegan.selection import Candidate, SelectionError, select_nested

    base = ["data.source=toy", "data.toy_subjects=4", "protocol=HDE", "workers=1", "threads=1"]
    fs = load_feature_set(load_config(LosoConfig, None, base).data)
    cands = []
    for label, over in (("lr", ["model.name=logreg"]),
                        ("net", ["model.epochs=4", "model.batch_size=16", "model.inner_val_fraction=0.34",
                                 "model.eval_every=2"])):
        cfg = load_config(LosoConfig, None, [*base, *over, f"name={label}"])
        m = run(cfg, tmp_path / label, progress=False, feature_set=fs)
        assert m["protocol"] == "HDE" and m["n_folds"] == 2
        cands.append(Candidate(label, tmp_path / label, config=cfg))
    e = ensemble_runs([tmp_path / "lr", tmp_path / "net"], tmp_path / "mix")
    assert e["protocol"] == "HDE" and e["n_folds"] == 2 and e["n_samples"] == len(fs)
    assert "HDE" in (tmp_path / "mix" / "metrics.md").read_text().splitlines()[0]
    assert main(["compare", str(tmp_path / "lr"), str(tmp_path / "mix"), "--resamples", "200", "--per-dataset"]) == 0
    assert "(8 subjects)" in capsys.readouterr().out

    sel = select_nested(cands, {}, tmp_path / "sel", k=2, progress=False, log=io.StringIO())
    assert sel["protocol"] == "HDE" and sel["n_folds"] == 2 and sel["n_samples"] == len(fs)
    table = pd.read_csv(tmp_path / "sel" / "selection.csv")
    assert table["dataset"].tolist() == ["casme2", "samm"] and "subject" not in table.columns
    chosen = pd.read_csv(tmp_path / "sel" / "predictions.csv", dtype={"subject": str})
    for _, r in table.iterrows():                       # the chosen run's predictions of that dataset, as they were
        src = pd.read_csv(tmp_path / r["chosen"] / "predictions.csv", dtype={"subject": str})
        a = chosen[chosen["dataset"] == r["dataset"]].sort_values(["subject", "clip"])
        b = src[src["dataset"] == r["dataset"]].sort_values(["subject", "clip"])
        np.testing.assert_allclose(a[SCORES].to_numpy(), b[SCORES].to_numpy(), rtol=0, atol=1e-8)
    inner_csvs = sorted((tmp_path / "sel" / "inner").glob("*.csv"))
    assert [p.name.split("_k2_")[0] for p in inner_csvs] == ["lr", "net"]     # one per candidate: the loop checks both
    for path in inner_csvs:
        inner = pd.read_csv(path, dtype={"outer": str})
        assert set(inner["outer"]) == {"casme2", "samm"}
        assert not (inner["dataset"] == inner["outer"]).any()      # the held-out dataset never in its inner folds
    with pytest.raises(SelectionError, match="scope 'dataset' .* HDE"):
        select_nested(cands, {}, tmp_path / "sel_ds", k=2, scope="dataset", progress=False, log=io.StringIO())
    assert not (tmp_path / "sel_ds").exists()


def test_suite_refuses_a_dataset_scoped_selection_of_hde_runs(tmp_path):
    from icegan.suite import run_suite
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: hde\nruns:\n"
        "  - {label: lr, config: LOSO, overrides: [model.name=logreg, protocol=HDE, data.source=toy]}\n"
        "  - {label: lr2, config: LOSO, overrides: [model.name=logreg, model.logreg_C=0.1, protocol=HDE, "
        "data.source=toy]}\n"
        "selection: {inner_folds: 2, scope: dataset}\n".replace("LOSO", str(tmp_path / "loso.yaml")))
    (tmp_path / "loso.yaml").write_text("workers: 1\n")
    with pytest.raises(ConfigError, match=r"selection.scope=dataset .* HDE runs \['lr', 'lr2'\] .* set "
                                          r"selection.scope=all"):
        run_suite(suite, out=tmp_path / "out", progress=False, log=io.StringIO())
    assert not (tmp_path / "out").exists()


def test_synthetic_rows_never_come_from_the_held_out_dataset():
    from icegan.data.synthetic_features import add_training_rows
    folds = make_folds(SUBJECTS, "HDE")
    extra = [s for s in SUBJECTS for _ in range(2)]                  # two synthetic clips per real clip
    out = add_training_rows(folds, SUBJECTS, extra, len(SUBJECTS))
    for f, g in zip(folds, out):
        added = np.asarray(g.train_idx)[len(f.train_idx):] - len(SUBJECTS)
        assert sorted({extra[j].split("/")[0] for j in added}) == sorted({"casme2", "samm", "smic"} - {f.subject})
        assert len(added) == 2 * len(f.train_idx) and (g.subject, g.unit) == (f.subject, "dataset")


def test_fit_and_the_main_job_refuse_hde(tmp_path, capsys):
    model = tmp_path / "m.pt"
    assert main(["fit", "--out", str(model), "data.source=toy", "model.name=logreg", "protocol=HDE"]) != 0
    err = capsys.readouterr().err
    assert "protocol=HDE" in err and "data.datasets=[" in err
    assert not model.exists()
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match=r"data.protocol=HDE .*icegan loso .*protocol=HDE"):
        load_main_config("configs/demo.yaml", ["data.protocol=HDE"])
