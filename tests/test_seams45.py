"""Three user-facing seams: ``icegan generate`` fits an onset image as the generator's training faces were fitted
(and says so), ``icegan predict`` scores a labelled row of another dataset whose label is a class of a one-dataset
model (a cross-dataset test), and ``sde_summary`` gives SMIC the ``label_sets`` key the other datasets have."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


from icegan.data.composite import sde_summary
from icegan.data.sheets import SheetRow, read_smic_sheet


# --- 3. sde_summary: one schema for every dataset ---------------------------------------------------------------------

def _rows(dataset: str, emotions: list[str]) -> list[SheetRow]:
    return [SheetRow(dataset=dataset, subject="s1", clip=f"c{i}", onset=1, apex=3, offset=5, emotion=e)
            for i, e in enumerate(emotions)]


def test_sde_summary_has_label_sets_for_every_dataset():
    """SMIC (negative / positive / surprise: the MEGC2019 classes, no single-dataset set) has an empty
    ``label_sets``, as the key CASME II and SAMM carry; no rows give the same key (before: absent for both)."""
    smic = sde_summary(_rows("smic", ["negative", "positive", "surprise", "negative"]))
    assert smic == {"label_sets": {}}
    assert sde_summary([]) == {"label_sets": {}}
    casme2 = sde_summary(_rows("casme2", ["happiness", "fear"]))
    assert casme2["label_sets"]["casme2_5"]["clips"] == 1
    for summary in (smic, casme2, sde_summary(_rows("samm", ["Anger"]))):
        assert isinstance(summary["label_sets"], dict)


def test_smic_sheet_sde_summary_has_label_sets(shared_data):
    """The real SMIC-HS-E sheet's rows: ``label_sets`` is there ({}), and stays there through JSON."""
    rows = read_smic_sheet(shared_data / "annotations" / "SMIC-HS-E_annotation.xlsx")
    assert rows and {r.emotion.lower() for r in rows} <= {"negative", "positive", "surprise"}
    assert json.loads(json.dumps(sde_summary(rows))) == {"label_sets": {}}


# --- 2. icegan predict: a cross-dataset test with a one-dataset model ------------------------------------------------

SAMM5 = ("anger", "contempt", "happiness", "surprise", "other")


def _table(folder: Path, rows: list[tuple[str, str, int]], seed: int = 0) -> Path:
    """A feature table of (dataset, label, class signal k) rows (28 px maps), a subject per 5 rows; u + 0.1 k."""
    rng = np.random.default_rng(seed)
    (folder / "maps").mkdir(parents=True, exist_ok=True)
    out = []
    for i, (ds, label, k) in enumerate(rows):
        a = (rng.random((3, 28, 28)) * 0.5).astype(np.float32)
        a[0] += 0.1 * k
        np.save(folder / "maps" / f"{i}.npy", a)
        out.append({"dataset": ds, "subject": f"s{i // 5}", "clip": f"c{i}", "label": label,
                    "path": f"maps/{i}.npy"})
    pd.DataFrame(out).to_csv(folder / "t.csv", index=False)
    return folder / "t.csv"


@pytest.fixture(scope="module")
def samm_model(tmp_path_factory):
    """A logistic regression fitted with data.labels=samm_5 on SAMM rows of the five classes (3 subjects)."""
    from icegan.commands.loso import LosoConfig
    from icegan.commands.predict import fit
    from icegan.config import load_config
    folder = tmp_path_factory.mktemp("samm")
    train = _table(folder / "train", [("samm", SAMM5[k], k) for _ in range(3) for k in range(5)])
    cfg = load_config(LosoConfig, None, ["data.source=table", f"data.table={train}", "data.labels=samm_5",
                                         "model.name=logreg", "threads=1"])
    fit(cfg, folder / "m.pt", progress=False)
    return folder, folder / "m.pt"


def test_predict_scores_labelled_clips_of_another_dataset_naming_the_model_s_classes(samm_model, tmp_path, capsys):
    """CASME II rows labelled happiness / surprise (classes CASME II and SAMM share) are scored by a samm_5 model, with
    their labels read as samm_5 ids, and the metrics printed with a note that this is a cross-dataset test (before:
    each such row was refused as 'a casme2 clip, but data.labels=samm_5')."""
    from icegan.cli import main
    from icegan.commands.predict import predict_table
    _, model = samm_model
    t = _table(tmp_path, [("casme2", "happiness", 2), ("casme2", "Surprise", 3), ("casme2", "happiness", 2),
                          ("samm", "anger", 0)], seed=1)
    p, _, _ = predict_table([model], t)
    assert p["y_true"].tolist() == [2, 3, 2, 0] and p["dataset"].tolist() == ["casme2"] * 3 + ["samm"]
    assert main(["predict", "--model", str(model), "--table", str(t), "--out", str(tmp_path / "p.csv")]) == 0
    out = capsys.readouterr().out
    assert ("note: 3 labelled casme2 clips are scored with the classes of samm_5 (a model of samm clips' classes): a "
            "cross-dataset test, whose UF1 / UAR average over the classes their labels hold (happiness, surprise)"
            ) in out
    assert "against the table's labels, casme2 (3 clips): UF1" in out and "against the table's labels, all" in out


@pytest.mark.parametrize("label, says", [
    ("disgust", "no class of those"),
    ("2", "an id is not read in a row of another dataset"),
    ("others", "samm_5's class is written 'other'"),
], ids=["casme2-class", "id", "others-spelling"])
def test_predict_refuses_a_label_of_another_dataset_that_is_no_class_of_the_model(samm_model, tmp_path, label,
                                                                                 says):
    """The row, the label and the model's classes are named; an id is refused there (it may be one of the row's own
    dataset's set: CASME II's 2 is repression)."""
    from icegan.commands.predict import predict_table
    _, model = samm_model
    t = _table(tmp_path, [("samm", "anger", 0), ("casme2", label, 2)])
    with pytest.raises(ValueError) as err:
        predict_table([model], t)
    msg = str(err.value)
    assert f"t.csv, line 3 (clip 'c1'): a casme2 clip labelled '{label}'" in msg
    assert str(list(SAMM5)) in msg and says in msg


def test_fit_and_loso_still_refuse_labelled_rows_of_another_dataset(samm_model):
    """Training keeps the one-dataset refusal (a fold of the samm_5 protocol holds SAMM clips only): the same kind of
    table that icegan predict scores is refused by icegan fit and by the LOSO reader."""
    from icegan.commands.loso import LosoConfig, load_feature_set
    from icegan.commands.predict import fit
    from icegan.config import load_config
    folder, _ = samm_model
    t = _table(folder / "mixed", [("samm", SAMM5[k], k) for k in range(5)] + [("casme2", "happiness", 2)])
    cfg = load_config(LosoConfig, None, ["data.source=table", f"data.table={t}", "data.labels=samm_5",
                                         "model.name=logreg", "threads=1"])
    refused = r"line 7 \(clip 'c5'\): a casme2 clip, but data.labels=samm_5 .* is of samm clips only"
    with pytest.raises(ValueError, match=refused):
        load_feature_set(cfg.data)
    with pytest.raises(ValueError, match=refused):
        fit(cfg, folder / "never.pt", progress=False)
    assert not (folder / "never.pt").exists()


# --- 1. icegan generate: onset images fitted as the generator's training faces were ----------------------------------

def _gan_checkpoint(folder: Path, prepared: bool = False, modes: tuple[str, ...] = ("cropped",)) -> Path:
    """An untrained 32 px ICE-GAN checkpoint whose config says its faces came from the CASME II manifest (icegan gan
    train's default) or, with ``prepared``, from prepared datasets of ``modes``."""
    from _gan_sizes import tiny_gan_config

    from icegan.data.prepare import DatasetSpec
    from icegan.gan.trainer import build_models, save_checkpoint
    cfg = tiny_gan_config(32)
    if prepared:
        cfg.data.source = "prepared"
        cfg.data.prepare.datasets = [DatasetSpec(name=n, root=str(folder / n), mode=m)
                                     for n, m in zip(("samm", "smic"), modes)]
    g, d = build_models(cfg)
    return save_checkpoint(folder / "last.pt", cfg, g, d, 0, [])


def _face(path: Path, w: int, h: int, seed: int = 0) -> np.ndarray:
    """A random grey w×h image written to ``path``, read back as training reads it (grey, lossy for .jpg)."""
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w), dtype=np.uint8), (5, 5), 0)
    assert cv2.imwrite(str(path), img)
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def test_generate_says_a_non_square_onset_is_squashed_as_in_training(tmp_path, capsys):
    """A 24x40 onset given to a generator of icegan gan train (CASME II crops such as 231x282 resized to S×S,
    aspect ratio not kept): generate resizes it the same way and prints one line saying so, with the aspect ratio
    change (before: resized without a word); an onset of the generator's size is not mentioned."""
    from icegan.cli import main
    ckpt = _gan_checkpoint(tmp_path)
    _face(tmp_path / "in" / "wide.png", 24, 40)
    assert main(["generate", "--checkpoint", str(ckpt), "--onset", str(tmp_path / "in" / "wide.png"), "--class",
                 "positive", "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("note:")]
    assert lines == ["note: 1 onset image(s) of 24x40 pixels resized to 32x32 with INTER_AREA, as icegan gan train "
                     "resized the CASME II crops it trained on (data.source=manifest); 1 not square: aspect ratio "
                     "changed, as the training crops' was (the generator saw faces squashed the same way)"]
    _face(tmp_path / "sq" / "square.png", 32, 32)
    assert main(["generate", "--checkpoint", str(ckpt), "--onset", str(tmp_path / "sq"), "--class", "0", "--out",
                 str(tmp_path / "out2"), "--device", "cpu"]) == 0
    assert "note:" not in capsys.readouterr().out


def test_generate_fits_an_onset_exactly_as_icegan_gan_train_fitted_its_crops(tmp_path):
    """The generator's input from an onset file is the array the training pairs hold for that same file as a CASME II
    onset frame (load_casme2_pairs of a one-clip manifest)."""
    from icegan.gan.generate import load_onsets
    from icegan.gan.pairs import load_casme2_pairs
    from icegan.gan.trainer import load_checkpoint
    clip = tmp_path / "casme2" / "sub01" / "EP01_01"
    _face(clip / "img1.jpg", 46, 57, seed=1)
    _face(clip / "img3.jpg", 46, 57, seed=2)
    pd.DataFrame([{"subject": "sub01", "filename": "EP01_01", "class3": "positive", "onset": 1, "apex": 3,
                   "verified": True, "apex_in_folder": True}]).to_csv(tmp_path / "casme2" / "manifest.csv", index=False)
    pairs = load_casme2_pairs(tmp_path / "casme2", 32, cache=False)
    cfg = load_checkpoint(_gan_checkpoint(tmp_path), "cpu")[2]
    faces, names, note = load_onsets(clip / "img1.jpg", cfg)
    assert names == ["sub01_EP01_01_img1"] and np.array_equal(faces[0], pairs.onset[0]) and "46x57" in note


@pytest.mark.parametrize("w, h", [(20, 26), (70, 90)], ids=["enlarged", "shrunk"])
def test_generate_fits_an_onset_as_preprocessing_fitted_a_prepared_generator_s_crops(tmp_path, w, h):
    """A generator of prepared cropped faces (a main-job fold, data.source=prepared): the onset is resized as
    preprocessing resized the crops (icegan.data.align.resize_cropped: INTER_CUBIC when enlarging, which the former
    INTER_AREA of every onset did not match), and the note names that."""
    from icegan.data.align import resize_cropped
    from icegan.gan.generate import load_onsets
    from icegan.gan.pairs import fit_square, read_grey
    from icegan.gan.trainer import load_checkpoint
    img = _face(tmp_path / "f.png", w, h)
    cfg = load_checkpoint(_gan_checkpoint(tmp_path, prepared=True), "cpu")[2]
    faces, _, note = load_onsets([tmp_path / "f.png"], cfg)
    assert np.array_equal(faces[0], resize_cropped(img, 32))
    assert (w < 32) != np.array_equal(fit_square(read_grey(tmp_path / "f.png"), 32), faces[0])  # before: INTER_AREA
    assert ("resized to 32x32 with INTER_AREA when shrinking and INTER_CUBIC when enlarging, as preprocessing resized "
            "the cropped faces the generator trained on (data.source=prepared: samm (cropped))") in note
    assert "as the training crops' was" in note


def test_generate_tells_a_non_square_onset_from_the_square_aligned_faces_of_raw_preprocessing(tmp_path):
    """Raw datasets' faces are square aligned crops: a non-square onset is said to differ from them."""
    from icegan.gan.generate import load_onsets
    from icegan.gan.trainer import load_checkpoint
    _face(tmp_path / "f.png", 24, 40)
    cfg = load_checkpoint(_gan_checkpoint(tmp_path, prepared=True, modes=("raw",)), "cpu")[2]
    note = load_onsets(tmp_path / "f.png", cfg)[2]
    assert "so give aligned face crops" in note and "while the training faces were square aligned crops" in note
