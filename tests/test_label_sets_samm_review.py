"""Review of SAMM's five classes (data.labels=samm_5) beside MEGC2019's and CASME II's: the commands a researcher runs
on a samm_5 run or table, and the places that assumed two label sets or CASME II alone for five classes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SAMM5 = ("anger", "contempt", "happiness", "surprise", "other")


def write_samm_table(folder: Path, subjects: int = 3, per_class: int = 1, seed: int = 0, dataset: str = "samm",
                     labelled: bool = True) -> Path:
    """A feature table of SAMM's five classes: each subject has ``per_class`` clips per class, u shifted by 0.1 × the
    class id; labels as names (``labelled``) or left out (new clips to score)."""
    rng = np.random.default_rng(seed)
    (folder / "maps").mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(subjects):
        for k in range(5 * per_class):
            a = (rng.random((3, 28, 28)) * 0.5).astype(np.float32)
            a[0] += 0.1 * (k % 5)
            np.save(folder / "maps" / f"s{s}_{k}.npy", a)
            rows.append({"dataset": dataset, "subject": f"{s + 6:03d}", "clip": f"{s + 6:03d}_{k}",
                         **({"label": SAMM5[k % 5]} if labelled else {}), "path": f"maps/s{s}_{k}.npy"})
    pd.DataFrame(rows).to_csv(folder / "features.csv", index=False)
    return folder / "features.csv"


def test_predict_scores_new_clips_of_any_dataset_with_a_samm_5_model(tmp_path):
    """A samm_5 model scores the maps of your own recordings (a clip list's clips, dataset 'clips', no label), as
    icegan predict's help says, and labelled rows of another dataset whose labels name its classes (a cross-dataset
    test); a labelled row of another dataset whose label is no class of the model is refused."""
    from icegan.commands.loso import LosoConfig
    from icegan.commands.predict import fit, predict_table
    from icegan.config import load_config
    train = write_samm_table(tmp_path / "train")
    cfg = load_config(LosoConfig, None, ["data.source=table", f"data.table={train}", "data.labels=samm_5",
                                         "model.name=logreg", "threads=1"])
    fit(cfg, tmp_path / "m.pt", progress=False)
    new = write_samm_table(tmp_path / "new", subjects=1, dataset="clips", labelled=False, seed=4)
    p, _, _ = predict_table([tmp_path / "m.pt"], new)
    assert len(p) == 5 and p["y_true"].isna().all() and set(p["predicted"]) <= set(SAMM5)
    labelled = write_samm_table(tmp_path / "lab", subjects=1, dataset="casme2", seed=4)
    p, _, _ = predict_table([tmp_path / "m.pt"], labelled)       # SAMM's class names on CASME II rows: scored
    assert p["dataset"].eq("casme2").all() and p["y_true"].tolist() == [0, 1, 2, 3, 4]
    table = pd.read_csv(labelled)
    table.loc[1, "label"] = "disgust"                           # a CASME II class, none of samm_5's
    table.to_csv(labelled, index=False)
    with pytest.raises(ValueError) as err:
        predict_table([tmp_path / "m.pt"], labelled)
    # icegan predict has no data.datasets: the message says what it can do
    assert "line 3 (clip '006_1'): a casme2 clip labelled 'disgust'" in str(err.value)
    assert str(list(SAMM5)) in str(err.value) and "data.datasets" not in str(err.value)
    assert ("empty its label cell to have it scored without a label, or score it with a model of its dataset's "
            "label set (data.labels=casme2_5)") in str(err.value)


def _table(folder: Path, rows: list[tuple[str, str]]) -> Path:
    """A feature table of one flat map per (dataset, label) row, a subject each."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "m.npy", np.full((3, 8, 8), 0.5, np.float32))
    pd.DataFrame([{"dataset": ds, "subject": f"{ds}/s{i}", "clip": f"c{i}", "label": lab, "path": "m.npy"}
                  for i, (ds, lab) in enumerate(rows)]).to_csv(folder / "t.csv", index=False)
    return folder / "t.csv"


@pytest.mark.parametrize("labels, row, says, not_said", [
    ("samm_5", ("samm", "others"), "samm_5's class is written 'other'", "data.labels=casme2_5"),
    ("samm_5", ("samm", "Disgust"), "(data.labels=samm_5)", "data.labels=casme2_5"),
    ("casme2_5", ("casme2", "Other"), "casme2_5's class is written 'others'", "data.labels=samm_5"),
    ("casme2_5", ("casme2", "contempt"), "(data.labels=casme2_5)", "data.labels=samm_5"),
    ("megc2019", ("casme2", "anger"), "its MEGC2019 composite class is 'negative'", "data.labels=samm_5"),
], ids=["samm-others", "samm-disgust", "casme2-other", "casme2-contempt", "megc-casme2-anger"])
def test_a_label_of_no_class_names_no_label_set_of_another_dataset(tmp_path, labels, row, says, not_said):
    """A label that is no class of the set is not sent to a set of another dataset's classes, which would then refuse
    the row (SAMM's disgust is no class of CASME II's five for a SAMM clip); SAMM's 'other' and CASME II's 'others'
    written in the other's spelling are named."""
    from icegan.data.feature_table import read_feature_table
    with pytest.raises(ValueError) as err:
        read_feature_table(_table(tmp_path, [row, (row[0], "surprise")]), labels=labels)
    assert "line 2 (clip 'c0')" in str(err.value) and says in str(err.value) and not_said not in str(err.value)


def test_data_datasets_keeps_a_one_dataset_set_s_rows_of_a_mixed_table(tmp_path):
    """A CASME II row read with samm_5 is refused as a row of another dataset (not by its label, whose hint would send
    the user to casme2_5, which refuses the SAMM rows), and, as that refusal says, data.datasets=[samm] reads the SAMM
    rows of the table: the CASME II rows' labels, CASME II's classes, are not read as SAMM's."""
    from icegan.data.feature_table import read_feature_table
    t = _table(tmp_path, [("samm", "anger"), ("casme2", "disgust"), ("samm", "other"), ("casme2", "repression")])
    with pytest.raises(ValueError, match=r"line 3 \(clip 'c1'\): a casme2 clip, but data.labels=samm_5 .* keep "
                                         r"those with data.datasets=\[samm\] or use the label set of its dataset "
                                         r"\(data.labels=casme2_5\)$"):
        read_feature_table(t, labels="samm_5")
    got = read_feature_table(t, ["samm"], labels="samm_5")
    assert got["clip"].tolist() == ["c0", "c2"] and got["label"].tolist() == [0, 4]
    assert read_feature_table(t, ["casme2"], labels="casme2_5")["label"].tolist() == [1, 2]


def _samm_generator(folder: Path) -> Path:
    """An untrained 32 px ICE-GAN checkpoint conditioned on SAMM's five classes, named as a samm_5 fold's is."""
    from _gan_sizes import tiny_gan_config

    from icegan.gan.trainer import build_models, save_checkpoint
    cfg = tiny_gan_config(32)
    cfg.model.n_classes, cfg.model.classes = 5, list(SAMM5)
    g, d = build_models(cfg)
    return save_checkpoint(folder / "last.pt", cfg, g, d, 0, [])


def test_gan_eval_of_a_samm_5_generator_names_its_classes_and_the_command_that_makes_its_faces(tmp_path):
    """icegan gan eval refuses a five-class generator: the message names its classes (SAMM's, not 'data.labels other
    than megc2019' alone) and the command that makes its faces, icegan generate (was 'icegan gan generate', which
    does not exist)."""
    from icegan.gan.evaluate import run_eval
    with pytest.raises(ValueError) as err:
        run_eval(_samm_generator(tmp_path), str(tmp_path), device="cpu")
    msg = str(err.value)
    assert "conditioned on 5 classes (anger, contempt, happiness, surprise, other: data.labels=samm_5)" in msg
    assert "`icegan generate --checkpoint" in msg and "icegan gan generate" not in msg


def test_a_null_run_of_five_classes_names_their_chance_level(tmp_path, capsys):
    """data.permute_labels on a samm_5 table: the note gives chance for five classes (UF1 about 0.20), not
    MEGC2019's 0.33, which a null run of five classes would be read against."""
    from icegan.cli import main
    table = write_samm_table(tmp_path / "t")
    assert main(["loso", "--out", str(tmp_path / "run"), "--no-progress", "data.source=table", f"data.table={table}",
                 "data.labels=samm_5", "model.name=logreg", "data.permute_labels=0", "threads=1"]) == 0
    err = capsys.readouterr().err
    assert "a null run on permuted labels; an honest pipeline scores chance (UF1 about 1/5 = 0.20" in err
    assert "0.33" not in err


def test_epoch_curve_of_a_five_class_table(tmp_path, capsys, monkeypatch):
    """bench/epoch_curve.py on a samm_5 table: the recognizer has five outputs and the curve is scored over the five
    classes (was three: 'labels must lie in 0..2')."""
    import sys

    from _bench import load_bench
    bench = load_bench("epoch_curve")
    table = write_samm_table(tmp_path / "t")
    monkeypatch.setattr(sys, "argv", ["epoch_curve", "--config", str(Path(__file__).parents[1] / "configs" /
                                                                      "features_ststnet.yaml"), "--threads", "1",
                                      "data.source=table", f"data.table={table}", "data.labels=samm_5",
                                      "model.epochs=2", "model.eval_every=1"])
    bench.main()
    out = capsys.readouterr().out
    assert "| 1 |" in out and "| 2 |" in out and "upper bound" in out


def test_loso_help_names_the_features_config_of_each_five_class_set(capsys):
    """icegan loso -h: data.labels names the config whose icegan features table holds SAMM's five classes too (was
    CASME II's alone) and says a table's labelled rows must be of the set's dataset."""
    from icegan.cli import main
    with pytest.raises(SystemExit):
        main(["loso", "-h"])
    out = " ".join(capsys.readouterr().out.split())
    assert "configs/casme2_5class.yaml` (or configs/samm_5class.yaml) writes" in out
    assert "data.datasets=[casme2] or [samm] keeps them from a mixed table" in out


@pytest.mark.parametrize("overrides", [["model.n_classes=5"],
                                       ["model.n_classes=5", "model.classes=[anger,contempt,happiness,surprise,other]"],
                                       ["model.classes=[surprise,positive,negative]"]],
                         ids=["five-unnamed", "five-samm", "three-reordered"])
def test_gan_train_refuses_classes_its_pairs_do_not_have(overrides, capsys, monkeypatch):
    """icegan gan train trains on the MEGC2019 classes of its pairs (class3): a generator of five classes (which
    icegan generate would name CASME II's by its size) or one named with other classes is refused before any pair is
    read, pointing to the main job, whose fold GANs are conditioned on data.labels."""
    import icegan.gan.pairs as pairs
    from icegan.cli import main

    def never(*a, **k):
        raise AssertionError("pairs were read")
    monkeypatch.setattr(pairs, "load_casme2_pairs", never)
    monkeypatch.setattr(pairs, "load_prepared_pairs", never)
    assert main(["gan", "train", *overrides]) == 2
    err = capsys.readouterr().err
    assert "icegan gan train: error:" in err and "MEGC2019's three classes" in err
    assert "icegan train --config" in err and "data.labels" in err and "gan.enabled=true" in err
