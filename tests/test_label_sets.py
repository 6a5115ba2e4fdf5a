"""Label sets (icegan.labels): CASME II's five classes through feature tables, `icegan loso`, the reports, the
ensemble and the comparison; MEGC2019's three stay the default."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from icegan.cli import main
from icegan.labels import LABEL_SETS, get_label_set, label_set_of_columns, score_columns

FIVE = ("happiness", "disgust", "repression", "surprise", "others")


def write_five_class_table(folder: Path, subjects: int = 4, per_class: int = 2, seed: int = 0,
                           ids: bool = False) -> Path:
    """A CASME II feature table of 5 classes: every subject has ``per_class`` clips of each class, whose u map is
    shifted by 0.1 × the class id (learnable); labels as names, or ids with ``ids``."""
    rng = np.random.default_rng(seed)
    maps = folder / "maps"
    maps.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(subjects):
        for k in range(5 * per_class):
            c = k % 5
            a = (rng.random((3, 28, 28)) * 0.5).astype(np.float32)
            a[0] += 0.1 * c
            np.save(maps / f"s{s}_{k}.npy", a)
            rows.append({"dataset": "casme2", "subject": f"sub{s:02d}", "clip": f"EP{k:02d}",
                         "label": c if ids else FIVE[c], "path": f"maps/s{s}_{k}.npy"})
    pd.DataFrame(rows).to_csv(folder / "features.csv", index=False)
    return folder / "features.csv"


def test_label_set_registry():
    assert get_label_set("casme2_5").classes == FIVE
    assert get_label_set("megc2019").classes == ("negative", "positive", "surprise")
    assert LABEL_SETS["casme2_5"].score_columns == tuple(f"score_{c}" for c in FIVE)
    with pytest.raises(ValueError, match="unknown label set 'casme5'.*megc2019, casme2_5"):
        get_label_set("casme5")
    from icegan.labels import label_set_of_classes, label_set_of_size
    assert label_set_of_size(5).name == "casme2_5" and label_set_of_size(3).name == "megc2019"
    with pytest.raises(ValueError, match="no label set of a generator without class names has 4 classes"):
        label_set_of_size(4)
    assert label_set_of_classes(list(FIVE)).name == "casme2_5"
    with pytest.raises(ValueError, match="no label set has the classes"):
        label_set_of_classes(["negative", "surprise", "positive"])      # another order: another meaning of the ids


def test_label_set_of_columns():
    assert label_set_of_columns(["fold", "y_true", *score_columns(FIVE)]).name == "casme2_5"
    assert label_set_of_columns(["fold", "score_negative", "score_positive"]).name == "megc2019"
    assert label_set_of_columns(["fold", "y_true", "y_pred"]).name == "megc2019"     # no scores: the default
    with pytest.raises(ValueError, match="run.csv: its score columns .*score_negative.*score_happiness"):
        label_set_of_columns(["score_negative", "score_happiness"], "run.csv")


def test_feature_table_reads_five_classes_by_name_and_id(tmp_path):
    from icegan.data.feature_table import load_table_features
    by_name = load_table_features(write_five_class_table(tmp_path / "a"), labels="casme2_5")
    by_id = load_table_features(write_five_class_table(tmp_path / "b", ids=True), labels="casme2_5")
    assert by_name.n_classes == 5
    assert by_name.samples["label"].tolist() == by_id.samples["label"].tolist() == [0, 1, 2, 3, 4] * 8


def test_feature_table_label_of_the_other_set_names_the_setting(tmp_path):
    from icegan.data.feature_table import load_table_features
    five = write_five_class_table(tmp_path / "a")
    with pytest.raises(ValueError, match=r"line 2 \(clip 'EP00'\): label 'happiness'.*set data.labels=casme2_5"):
        load_table_features(five, labels="megc2019")
    three = tmp_path / "b.csv"
    three.write_text(f"dataset,subject,clip,label,path\ncasme2,sub01,EP01,negative,{tmp_path}/a/maps/s0_0.npy\n")
    with pytest.raises(ValueError, match=r"label 'negative' is neither a class id 0..4 .*data.labels=casme2_5\); "
                                         r"'negative' is a class of the label set megc2019: set data.labels=megc2019"):
        load_table_features(three, labels="casme2_5")
    bad_id = tmp_path / "c.csv"
    bad_id.write_text(f"dataset,subject,clip,label,path\ncasme2,sub01,EP01,5,{tmp_path}/a/maps/s0_0.npy\n")
    with pytest.raises(ValueError, match="label '5' is neither a class id 0..4"):
        load_table_features(bad_id, labels="casme2_5")


def test_five_classes_need_a_table_source():
    from icegan.commands.loso import LosoConfig
    from icegan.config import ConfigError, load_config
    with pytest.raises((ConfigError, ValueError), match="data.labels=casme2_5 needs data.source=table"):
        load_config(LosoConfig, None, ["data.labels=casme2_5"])


def test_grouped_recognizer_scores_five_classes():
    from icegan.protocol import Fold
    from icegan.recognition import fit_predict_folds
    from icegan.recognizer_config import RecognizerConfig
    g = torch.Generator().manual_seed(0)
    x = torch.rand(30, 3, 28, 28, generator=g)
    y = torch.arange(30) % 5
    subjects = [f"casme2/s{i // 10}" for i in range(30)]
    folds = [Fold(i, f"casme2/s{i}", np.flatnonzero(np.array([s != f"casme2/s{i}" for s in subjects])),
                  np.arange(10 * i, 10 * i + 10)) for i in range(3)]
    for name in ("ststnet", "logreg"):
        cfg = RecognizerConfig(name=name, epochs=2, batch_size=8)
        out = fit_predict_folds(cfg, x, y, subjects, folds, progress=False, n_classes=5)
        assert [o.shape for o in out] == [(10, 5)] * 3
        assert np.allclose(np.stack(out).sum(-1), 1.0, atol=1e-5)


def _loso(out: Path, table: Path, *extra: str) -> int:
    return main(["loso", "--out", str(out), "--no-progress", "data.source=table", f"data.table={table}",
                 "data.labels=casme2_5", "protocol=SDE", "dataset=casme2", "threads=1", *extra])


def test_loso_on_five_classes_writes_every_output_with_their_names(tmp_path):
    table = write_five_class_table(tmp_path)
    out = tmp_path / "run"
    assert _loso(out, table, "model.name=ststnet", "model.epochs=3", "model.batch_size=8") == 0
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns) == ["fold", "dataset", "subject", "clip", "y_true", "y_pred",
                                  *(f"score_{c}" for c in FIVE)]
    assert sorted(pred["y_true"].unique()) == [0, 1, 2, 3, 4]
    assert np.allclose(pred[[f"score_{c}" for c in FIVE]].sum(axis=1), 1.0, atol=1e-5)
    assert json.loads((out / "run.json").read_text())["classes"] == list(FIVE)
    md = (out / "metrics.md").read_text()
    assert "Classes (5): happiness, disgust, repression, surprise, others." in md
    for c in FIVE:
        assert f"| Full | {c} | 8 |" in md
    per_subject = pd.read_csv(out / "per_subject.csv")
    assert [f"n_{c}" for c in FIVE] == [c for c in per_subject.columns if c.startswith("n_") and c not in ("n_clips", "n_correct")]
    assert (per_subject[[f"n_{c}" for c in FIVE]] == 2).all().all()
    metrics = json.loads((out / "metrics.json").read_text())
    from icegan.metrics import compute_metrics
    assert metrics["overall"]["UF1"] == pytest.approx(compute_metrics(pred["y_true"], pred["y_pred"], 5)["UF1"])
    assert (out / "confusion.png").stat().st_size > 0


def test_five_class_run_resumes_identically_and_refuses_the_other_label_set(tmp_path):
    table = write_five_class_table(tmp_path)
    out = tmp_path / "run"
    args = ("model.name=logreg",)
    assert _loso(out, table, *args) == 0
    whole = json.loads((out / "metrics.json").read_text())
    pred_csv = out / "predictions.csv"
    lines = pred_csv.read_text().splitlines(keepends=True)
    pred_csv.write_text("".join(lines[:-12]))            # the last fold and a half gone: as after a kill
    assert _loso(out, table, *args) == 0
    assert json.loads((out / "metrics.json").read_text()) == whole
    # the same folder with MEGC2019's classes: another run (refused, the finished folds kept)
    three = tmp_path / "three.csv"
    t = pd.read_csv(table)
    t["label"] = t["label"].map({"happiness": "positive", "surprise": "surprise"}).fillna("negative")
    t["path"] = [str(tmp_path / p) for p in t["path"]]
    t.to_csv(three, index=False)
    rc = main(["loso", "--out", str(out), "--no-progress", "data.source=table", f"data.table={three}",
               "protocol=SDE", "dataset=casme2", "threads=1", *args])
    assert rc != 0
    assert pd.read_csv(pred_csv).shape[1] == 6 + 5


def test_ensemble_and_compare_of_five_class_runs(tmp_path, capsys):
    table = write_five_class_table(tmp_path)
    for seed in (0, 1):
        assert _loso(tmp_path / f"s{seed}", table, "model.name=random_forest", "model.forest_trees=20",
                     f"seed={seed}") == 0
    assert main(["ensemble", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "ens")]) == 0
    ens = pd.read_csv(tmp_path / "ens" / "predictions.csv")
    p0, p1 = (pd.read_csv(tmp_path / f"s{s}" / "predictions.csv") for s in (0, 1))
    cols = [f"score_{c}" for c in FIVE]
    assert np.allclose(ens[cols].to_numpy(), (p0[cols].to_numpy() + p1[cols].to_numpy()) / 2, atol=1e-6)
    assert "| Full | others |" in (tmp_path / "ens" / "metrics.md").read_text()
    capsys.readouterr()
    assert main(["compare", f"a={tmp_path / 's0'}", f"b={tmp_path / 's1'}"]) == 0
    assert "ΔUF1 vs a" in capsys.readouterr().out


def test_compare_refuses_runs_of_two_label_sets(tmp_path):
    from icegan.significance import bootstrap_compare, load_run_set
    table = write_five_class_table(tmp_path)
    assert _loso(tmp_path / "five", table, "model.name=logreg") == 0
    five = load_run_set("five", [tmp_path / "five"])
    assert five.confusions.shape[-1] == 5
    three = five.__class__("three", [], five.subjects, five.confusions[..., :3, :3], five.clips, False)
    with pytest.raises(ValueError, match=r"'three' scores 3 classes \(megc2019\) and 'five' 5 \(casme2_5, "
                                         r"data.labels\): runs of different label sets"):
        bootstrap_compare([five, three])


def test_nested_selection_among_five_class_recipes(tmp_path):
    """icegan.selection on two five-class recipes: inner predictions with five score columns, the choice's
    outer predictions kept with their class names; a candidate of MEGC2019's classes is refused."""
    from icegan.commands.loso import LosoConfig, load_feature_set, run
    from icegan.config import load_config
    from icegan.selection import Candidate, SelectionError, select_nested
    table = write_five_class_table(tmp_path, subjects=4)
    common = ["data.source=table", f"data.table={table}", "data.labels=casme2_5", "protocol=SDE", "dataset=casme2",
              "threads=1"]
    cands = []
    for label, over in {"logreg": ["model.name=logreg"],
                        "forest": ["model.name=random_forest", "model.forest_trees=20"]}.items():
        cfg = load_config(LosoConfig, None, [*common, *over, f"name={label}"])
        run(cfg, tmp_path / label, progress=False, feature_set=load_feature_set(cfg.data))
        cands.append(Candidate(label, tmp_path / label, config=cfg))
    m = select_nested(cands, {}, tmp_path / "sel", k=3, progress=False)
    sel = pd.read_csv(tmp_path / "sel" / "predictions.csv")
    assert [c for c in sel.columns if c.startswith("score_")] == [f"score_{c}" for c in FIVE]
    inner = pd.read_csv(next((tmp_path / "sel" / "inner").glob("logreg_k3_*.csv")))
    assert [c for c in inner.columns if c.startswith("score_")] == [f"score_{c}" for c in FIVE]
    assert m["n_samples"] == 40 and "| Full | others |" in (tmp_path / "sel" / "metrics.md").read_text()
    # a MEGC2019 run over the same clips: its score columns name another label set
    t = pd.read_csv(table)
    t["label"] = t["label"].map({"happiness": "positive", "surprise": "surprise"}).fillna("negative")
    t["path"] = [str(tmp_path / p) for p in t["path"]]
    t.to_csv(tmp_path / "three.csv", index=False)
    cfg3 = load_config(LosoConfig, None, ["data.source=table", f"data.table={tmp_path / 'three.csv'}", "protocol=SDE",
                                          "dataset=casme2", "threads=1", "model.name=logreg", "name=three"])
    run(cfg3, tmp_path / "three", progress=False, feature_set=load_feature_set(cfg3.data))
    with pytest.raises(SelectionError, match="candidate 'three' .* scores the classes of megc2019 and 'logreg' .* "
                                             "those of casme2_5"):
        select_nested([cands[0], Candidate("three", tmp_path / "three", config=cfg3)], {}, tmp_path / "sel3", k=3,
                      progress=False)


def test_a_run_saved_before_label_sets_resumes(tmp_path):
    """A run folder whose config.yaml has no data.labels (written before label sets existed) is the same MEGC2019
    run: the same command resumes it instead of refusing a changed config."""
    import yaml
    out = tmp_path / "run"
    args = ["loso", "--out", str(out), "--no-progress", "data.source=toy", "data.toy_subjects=2", "model.name=logreg",
            "threads=1"]
    assert main(args) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["data"].pop("labels") == "megc2019"
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = (out / "predictions.csv").read_text().splitlines(keepends=True)
    (out / "predictions.csv").write_text("".join(lines[:-3]))
    before = json.loads((out / "metrics.json").read_text())
    assert main(args) == 0
    assert json.loads((out / "metrics.json").read_text()) == before


def test_a_clip_lists_labels_are_megc2019_classes_without_a_label_set_hint(tmp_path):
    """A clip list's label is a MEGC2019 class (its runs have no data.labels to set): an emotion is refused with its
    composite class and no data.labels hint, which a feature table's error gives."""
    from icegan.data.clip_list import ClipList
    (tmp_path / "f").mkdir()
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset,label\np01,c1,f,1,5,9,happiness\n")
    with pytest.raises(ValueError) as err:
        ClipList(csv).records()
    assert "its MEGC2019 composite class is 'positive'" in str(err.value)
    assert "data.labels" not in str(err.value)
