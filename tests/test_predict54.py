"""`icegan fit` / `icegan loso` on data without a clip of a class, and model files without a format version or cut
short: said in words that name the class or the file."""
from __future__ import annotations

import logging

import pytest
import torch
from _feature_tables import toy_config, write_feature_table

from icegan.cli import main
from icegan.commands.loso import LosoConfig, check_run, load_feature_set
from icegan.commands.predict import fit
from icegan.config import load_config
from icegan.data.features import FeatureSet
from icegan.data.toy_features import make_toy_features
from icegan.saved_recognizer import SavedRecognizerError, load_recognizer


def _table_without_surprise(tmp_path):
    """A feature table of the toy clips whose label is not surprise (class 2 of MEGC2019)."""
    fs = make_toy_features(n_subjects_per_dataset=2)
    keep = (fs.samples["label"] != 2).to_numpy()
    fs = FeatureSet(fs.samples[keep].reset_index(drop=True), fs.features[torch.tensor(keep)])
    return write_feature_table(tmp_path, fs, name="no_surprise.csv")


def test_fit_warns_of_a_class_without_a_training_clip(tmp_path, capsys):
    """No surprise clip: fit says the model is trained without surprise and can never predict it (it used to print
    "surprise 0" only); with every class present it says nothing of the kind."""
    table = _table_without_surprise(tmp_path)
    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--no-progress", "model.name=logreg", "threads=1",
                 "data.source=table", f"data.table={table}"]) == 0
    err = capsys.readouterr().err
    assert "warning: no training clip is of class surprise (data.labels=megc2019)" in err
    assert "can never predict it" in err
    fit(toy_config("model.name=logreg"), tmp_path / "all.pt", progress=False)
    assert "no training clip is of class" not in capsys.readouterr().err


def test_loso_warns_at_data_load_of_a_class_without_a_clip_in_scope(tmp_path, caplog):
    """A LOSO run without a surprise clip: a warning names the class and says UF1 / UAR average over the two classes
    present; once (check_run), and not for a run with every class."""
    table = _table_without_surprise(tmp_path)
    cfg = load_config(LosoConfig, None, ["model.name=logreg", "threads=1", "data.source=table",
                                         f"data.table={table}"])
    with caplog.at_level(logging.WARNING, logger="icegan"):
        check_run(cfg, load_feature_set(cfg.data))
    said = [r.getMessage() for r in caplog.records if "no clip in the LOSO's scope" in r.getMessage()]
    assert len(said) == 1
    assert "of class surprise (data.labels=megc2019)" in said[0]
    assert "UF1 and UAR average over the 2 classes present (negative, positive), not all 3" in said[0]
    caplog.clear()
    cfg = toy_config("model.name=logreg")
    with caplog.at_level(logging.WARNING, logger="icegan"):
        check_run(cfg, load_feature_set(cfg.data))
    assert not any("no clip in the LOSO's scope" in r.getMessage() for r in caplog.records)


def test_a_model_file_without_a_format_version_is_not_an_icegan_model_file(tmp_path):
    """No "version" entry: "not an icegan model file (no format version)", naming the file, not "format version
    None"."""
    good = {"copies": 1, "snapshots": 0, "state_dict": {"conv.weight": torch.ones(2, 3)}}
    payload = {"format": "icegan-recognizer", "config": {"model": {"name": "ststnet"}},
               "classes": ["negative", "positive", "surprise"],
               "training": {"map_size": 28, "subjects": [], "clip_keys": []}, "members": [good]}
    torch.save(payload, tmp_path / "nov.pt")
    with pytest.raises(SavedRecognizerError) as exc:
        load_recognizer(tmp_path / "nov.pt")
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path / 'nov.pt'} is not an icegan model file (no format version")
    assert "None" not in msg


@pytest.mark.parametrize("name", ["ststnet", "logreg"])
@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_model_file_cut_short_is_said_to_be_cut_short(tmp_path, name, keep):
    """A truncated model file: "cut short or damaged", rerun `icegan fit`, the file named and torch's error kept in
    parentheses (it used to be "(OSError: [Errno 22] Invalid argument)" after "not an icegan model file")."""
    fit(toy_config(f"model.name={name}", "model.epochs=1"), tmp_path / "m.pt", progress=False)
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(SavedRecognizerError) as exc:
        load_recognizer(tmp_path / "cut.pt")
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path / 'cut.pt'} cannot be read: the model file is cut short or damaged")
    assert "icegan fit" in msg and msg.endswith(")") and ("(OSError: " in msg or "(RuntimeError: " in msg)
    assert "not an icegan model file" not in msg


def test_a_file_of_another_program_is_not_said_to_be_cut_short(tmp_path):
    """A whole zip archive that torch cannot read, and a text file, keep "not an icegan model file"."""
    import zipfile
    with zipfile.ZipFile(tmp_path / "other.pt", "w") as z:
        z.writestr("readme.txt", "not a model")
    (tmp_path / "text.pt").write_text("not a model")
    for f in ("other.pt", "text.pt"):
        with pytest.raises(SavedRecognizerError) as exc:
            load_recognizer(tmp_path / f)
        assert "not an icegan model file" in str(exc.value) and "cut short" not in str(exc.value)
