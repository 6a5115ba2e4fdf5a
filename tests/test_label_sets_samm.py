"""SAMM's five classes (data.labels=samm_5: anger, contempt, happiness, surprise, other), the third label set: how
clips get their class (the SAMM sheet's estimated emotion), the main job on a SAMM folder in the official layout
(synthetic frames, the real coding sheet; tiny random SRFlowNet weights: no accuracy claims), its GAN checkpoint
naming the classes for `icegan generate`, and tables of SAMM clips."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from _five_class import tiny_five_class_config
from _flow_sizes import save_main_job_weights

from icegan import pipeline
from icegan.config import ConfigError
from icegan.labels import LABEL_SETS, get_label_set, label_set_of_columns, label_set_of_size, manifest_labels
from icegan.pipeline import load_main_config

SAMM5 = ["anger", "contempt", "happiness", "surprise", "other"]
SUBJECTS = ["017", "020", "035"]
SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"


def test_samm_5_classes_and_the_clips_they_count(shared_data):
    """The set's classes are the SAMM sheet's emotions with at least 10 clips (136 of 159), as CASME II's five are
    its emotions with at least 10 (fear 2 and sadness 7 left out)."""
    from collections import Counter

    from icegan.data.sheets import read_samm_sheet
    ls = get_label_set("samm_5")
    assert ls.classes == tuple(SAMM5) and ls.datasets == ("samm",) and ls.n_classes == 5
    counts = Counter(r.emotion.lower() for r in read_samm_sheet(shared_data / "annotations" / SHEET))
    assert sorted(e for e, n in counts.items() if n >= 10) == sorted(SAMM5)
    assert sum(counts[c] for c in SAMM5) == 136 and sum(counts.values()) == 159


def test_manifest_labels_of_each_label_set():
    """samm_5 reads the emotion column by class name (any case, spaces), -1 for an emotion that is no class and for a
    clip of another dataset; an id column (class5) is read as ids, an id out of range or a missing column refused."""
    m = pd.DataFrame({"dataset": ["samm", "samm", "samm", "samm", "casme2"],
                      "emotion": ["Anger", " other ", "Disgust", "Happiness", "happiness"],
                      "class5": [None, None, None, None, 0], "class3": [0, -1, 0, 1, 1]})
    assert manifest_labels(m, LABEL_SETS["samm_5"]).tolist() == [0, 4, -1, 2, -1]
    assert manifest_labels(m, LABEL_SETS["casme2_5"]).tolist() == [-1, -1, -1, -1, 0]
    assert manifest_labels(m, LABEL_SETS["megc2019"]).tolist() == [0, -1, 0, 1, 1]
    with pytest.raises(ValueError, match=r"column 'class5': ids \[7\] outside 0..4 of data.labels=casme2_5"):
        manifest_labels(m.assign(class5=[None, None, None, None, 7]), LABEL_SETS["casme2_5"])
    with pytest.raises(ValueError, match=r"no column 'emotion', which data.labels=samm_5 reads; prepare the data "
                                         r"again"):
        manifest_labels(m.drop(columns="emotion"), LABEL_SETS["samm_5"])


def test_score_columns_and_unnamed_generators_with_three_label_sets():
    """Predictions are read by their exact score columns (samm_5's and casme2_5's share score_happiness and
    score_surprise); a part shared by several sets is refused; a generator without class names is of the sets
    that existed before names were kept (5 → casme2_5)."""
    assert label_set_of_columns([f"score_{c}" for c in SAMM5]).name == "samm_5"
    assert label_set_of_columns(["score_anger", "score_other"]).name == "samm_5"
    with pytest.raises(ValueError, match="are not those of one label set"):
        label_set_of_columns(["score_happiness", "score_surprise"])
    assert label_set_of_size(5).name == "casme2_5" and label_set_of_size(3).name == "megc2019"


def _samm_folder(root, sheet):
    """The official SAMM layout (SAMM/<subject>/<clip>/<subject>_<frame:05d>.jpg) for every sheet clip of
    SUBJECTS, onset to offset: 32x32 textures (one per clip) that move a little from frame to frame."""
    from icegan.data.sheets import read_samm_sheet
    rows = [r for r in read_samm_sheet(sheet) if r.subject in SUBJECTS]
    for k, r in enumerate(rows):
        rng = np.random.default_rng(k)
        base = cv2.GaussianBlur((rng.random((48, 48)) * 255).astype(np.uint8), (0, 0), 2.0)
        clip = root / "SAMM" / r.subject / r.clip
        clip.mkdir(parents=True)
        for n in range(r.onset, r.offset + 1):
            dx = 1.5 * np.exp(-((n - r.apex) / 8.0) ** 2)
            img = cv2.warpAffine(base, np.float32([[1, 0, dx], [0, 1, 0]]), (48, 48), borderMode=cv2.BORDER_REFLECT)
            cv2.imwrite(str(clip / f"{r.subject}_{n:05d}.jpg"), img[8:40, 8:40])
    return {(f"samm/{r.subject}", r.clip): r.emotion.lower() for r in rows}


@pytest.fixture(scope="module")
def samm(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("samm")
    emotions = _samm_folder(root, shared_data / "annotations" / SHEET)
    weights = save_main_job_weights(root / "tiny.pt", iters=1)
    return root, emotions, weights


def _cfg(shared_data, root, weights, tmp_path, *extra):
    return tiny_five_class_config("configs/samm_5class.yaml", "samm", root, shared_data / "annotations" / SHEET,
                                  SUBJECTS, weights, tmp_path / "cache", *extra)


def test_samm_5_settings_are_checked_when_the_config_loads(shared_data):
    with pytest.raises((ConfigError, ValueError), match=r"data.labels=samm_5 needs composite_only: false for the "
                                                        r"dataset 'samm'.*configs/samm_5class.yaml has the setting"):
        load_main_config("configs/samm_5class.yaml", ["data.prepare.datasets.0.composite_only=true"])
    casme = f"[{{name: casme2, root: {shared_data / 'casme2'}, composite_only: false}}]"
    with pytest.raises((ConfigError, ValueError), match=r"the dataset 'casme2' of data.prepare.datasets has no such "
                                                        r"classes \(only samm clips do\)"):
        load_main_config("configs/samm_5class.yaml", [f"data.prepare.datasets={casme}"])
    with pytest.raises((ConfigError, ValueError), match=r"data.labels=samm_5 needs data.source=table.*--config "
                                                        r"configs/samm_5class.yaml"):
        from icegan.commands.loso import FeatureDataConfig
        FeatureDataConfig(labels="samm_5")


def test_main_job_gan_and_features_on_samm_5(shared_data, tmp_path, samm):
    """The main job on a SAMM folder with data.labels=samm_5: every clip of the five classes is in (the 'other'
    clips the composite leaves out included; disgust, fear and sadness out), each labelled by its sheet emotion;
    predictions score the five classes; the fold's GAN checkpoint names them, so `icegan generate --class
    contempt` makes contempt faces; `icegan features` writes a table that icegan loso reads with samm_5."""
    root, emotions, weights = samm
    cfg = _cfg(shared_data, root, weights, tmp_path)
    clips = pipeline.load_samples(cfg, progress=False)
    got = {(s, c): SAMM5[int(k)] for s, c, k in zip(clips.samples["subject"], clips.samples["clip"],
                                                    clips.samples["label"])}
    assert got == {k: e for k, e in emotions.items() if e in SAMM5}
    assert set(got.values()) == set(SAMM5) and len(got) == 21
    assert sum(e == "other" for e in got.values()) == 8

    cfg = _cfg(shared_data, root, weights, tmp_path, "data.max_folds=1", "gan.enabled=true")
    pipeline.run_main(cfg, tmp_path / "run", progress=False)
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert [c for c in pred.columns if c.startswith("score_")] == [f"score_{c}" for c in SAMM5]
    assert pred["subject"].unique().tolist() == ["samm/017"] and len(pred) == 6
    assert json.loads((tmp_path / "run" / "run.json").read_text())["classes"] == SAMM5
    assert "Classes (5): anger, contempt, happiness, surprise, other." in (tmp_path / "run" / "metrics.md").read_text()
    ckpt = tmp_path / "run" / "folds" / "samm_017" / "gan" / "checkpoints" / "last.pt"
    assert torch.load(ckpt, weights_only=False)["config"]["model"]["classes"] == SAMM5

    from icegan.cli import main
    cv2.imwrite(str(tmp_path / "face.png"), np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))
    assert main(["generate", "--checkpoint", str(ckpt), "--onset", str(tmp_path / "face.png"), "--class",
                 "Contempt", "--out", str(tmp_path / "faces"), "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "faces").glob("*.png")) == ["face_contempt_00.png"]
    assert main(["generate", "--checkpoint", str(ckpt), "--onset", str(tmp_path / "face.png"), "--class",
                 "all", "--out", str(tmp_path / "all"), "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "all").glob("*.png")) == sorted(f"face_{c}_00.png" for c in SAMM5)

    every = pd.read_csv(pipeline.export_features(cfg, tmp_path / "fx", progress=False))
    assert set(every["label"].dropna()) == set(SAMM5)
    assert sorted(every.loc[every["label"].isna(), "clip"]) == ["035_5_2", "035_5_3", "035_6_3"]  # sadness, fear
    table = tmp_path / "fx" / "features_labelled.csv"
    assert json.loads((tmp_path / "fx" / "provenance.json").read_text())["labels"] == "samm_5"
    from icegan.data.feature_table import load_table_features
    fs = load_table_features(table, labels="samm_5", size=None)
    assert fs.n_classes == 5 and len(fs) == 21
    with pytest.raises(ValueError, match=r"a samm clip, but data.labels=casme2_5 .* or use the label set of its "
                                         r"dataset \(data.labels=samm_5\)"):
        load_table_features(table, labels="casme2_5", size=None)


def test_a_table_of_other_datasets_is_refused_by_a_label_set_of_one_dataset(tmp_path):
    """A CASME II row in a table read with samm_5 (or a SAMM row with casme2_5) names the line, the clip and the
    setting that keeps the set's own dataset; data.datasets keeping only it reads the table."""
    from icegan.data.feature_table import load_table_features
    np.save(tmp_path / "m.npy", np.full((3, 8, 8), 0.5, np.float32))
    rows = [{"dataset": ds, "subject": f"{ds}/s{i}", "clip": f"c{i}", "label": "surprise", "path": "m.npy"}
            for i, ds in enumerate(["samm", "samm", "casme2"])]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=r"t.csv, line 4 \(clip 'c2'\): a casme2 clip, but data.labels=samm_5 "
                                         r"\(SAMM 5 classes .*\) is of samm clips only; keep those with "
                                         r"data.datasets=\[samm\]"):
        load_table_features(tmp_path / "t.csv", labels="samm_5", size=None)
    assert len(load_table_features(tmp_path / "t.csv", ["samm"], labels="samm_5", size=None)) == 2
    with pytest.raises(ValueError, match=r"line 2 \(clip 'c0'\): a samm clip, but data.labels=casme2_5"):
        load_table_features(tmp_path / "t.csv", labels="casme2_5", size=None)


def test_gan_model_classes_name_every_class_or_none():
    """model.classes of an ICE-GAN config: one name per class (kept in the checkpoint), or none (unnamed)."""
    from icegan.gan.trainer import GanModelConfig
    assert GanModelConfig(n_classes=5, classes=list(SAMM5)).classes == SAMM5
    assert GanModelConfig(n_classes=5).classes == []
    with pytest.raises(ValueError, match=r"model.classes names 2 classes \(anger, other\) but model.n_classes is 5"):
        GanModelConfig(n_classes=5, classes=["anger", "other"])
