"""CASME II's five classes in the main job (train.py, configs/casme2_5class.yaml) and in `icegan features`, on
real CASME II clips of three subjects (tiny random SRFlowNet weights; the numbers are no accuracy claims)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from _five_class import tiny_five_class_config
from _flow_sizes import save_main_job_weights

from icegan import pipeline
from icegan.config import ConfigError
from icegan.pipeline import load_main_config

FIVE = ["happiness", "disgust", "repression", "surprise", "others"]
SUBJECTS = ["sub01", "sub02", "sub03"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=1)


def _cfg(shared_data, tmp_path, tiny_weights, *extra):
    return tiny_five_class_config("configs/casme2_5class.yaml", "casme2", shared_data / "casme2",
                                  shared_data / "annotations" / "CASME2-coding-20140508.xlsx", SUBJECTS, tiny_weights,
                                  tmp_path / "cache", *extra)


def test_five_class_settings_are_checked_when_the_config_loads(shared_data):
    with pytest.raises((ConfigError, ValueError), match="data.labels=casme2_5 needs composite_only: false for the "
                                                        "dataset 'casme2'"):
        load_main_config("configs/casme2.yaml", ["data.labels=casme2_5"])
    with pytest.raises((ConfigError, ValueError), match="data.labels=casme2_5 needs data.source=prepared"):
        load_main_config(None, ["data.labels=casme2_5"])
    samm = f"[{{name: samm, root: {shared_data}, composite_only: false}}]"
    with pytest.raises((ConfigError, ValueError), match="the dataset 'samm' of data.prepare.datasets has no such "
                                                        "classes \\(only casme2 clips do\\)"):
        load_main_config("configs/casme2_5class.yaml", [f"data.prepare.datasets={samm}"])


def test_five_class_labels_come_from_the_coding_sheet(shared_data, tmp_path, tiny_weights):
    cfg = _cfg(shared_data, tmp_path, tiny_weights)
    clips = pipeline.load_samples(cfg, progress=False)
    manifest = pd.read_csv(shared_data / "casme2" / "manifest.csv")
    sheet = {(f"casme2/{r.subject}", r.filename): r.emotion for r in manifest.itertuples()}
    got = [FIVE[int(lab)] for lab in clips.samples["label"]]
    assert got == [sheet[(s, c)] for s, c in zip(clips.samples["subject"], clips.samples["clip"])]
    assert set(got) == set(FIVE)                    # 'others' clips are in: the composite would leave them out
    assert (clips.samples["label"] == FIVE.index("others")).sum() == 12


def test_main_job_and_features_on_five_classes(shared_data, tmp_path, tiny_weights):
    cfg = _cfg(shared_data, tmp_path, tiny_weights, "data.max_folds=1", "gan.enabled=true")   # shipped off
    m = pipeline.run_main(cfg, tmp_path / "run", progress=False)
    assert m["n_folds"] == 1
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert [c for c in pred.columns if c.startswith("score_")] == [f"score_{c}" for c in FIVE]
    assert pred["subject"].unique().tolist() == ["casme2/sub01"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["classes"] == FIVE
    # the fold's GAN is conditioned on the five classes: its sample grid has onset | apex | one column per class
    state = torch.load(tmp_path / "run" / "folds" / "casme2_sub01" / "gan" / "checkpoints" / "last.pt",
                       weights_only=False)
    assert state["config"]["model"]["n_classes"] == 5
    md = (tmp_path / "run" / "metrics.md").read_text()
    assert "Classes (5): happiness, disgust, repression, surprise, others." in md
    # runs/summary.md tells this run from a MEGC2019 one
    summary = (tmp_path / "summary.md").read_text()
    assert "| run [PARTIAL: 1 of 3 folds] | prepared (casme2_5 classes) | SDE | 1 |" in summary
    # icegan features: the same clips' maps, labelled by class name, readable by icegan loso data.labels=casme2_5
    table = pipeline.export_features(cfg, tmp_path / "fx", progress=False)
    written = pd.read_csv(table)
    assert set(written["label"]) == set(FIVE)
    assert json.loads((tmp_path / "fx" / "provenance.json").read_text())["labels"] == "casme2_5"
    from icegan.data.feature_table import load_table_features
    fs = load_table_features(table, labels="casme2_5")
    ref = torch.load(tmp_path / "run" / "features_real.pt", weights_only=True)["features"]
    assert torch.equal(fs.features, ref)
