"""`icegan fit` / `icegan predict` and the feature-table reader, audit 60: the class check after the inner-validation
split, fit's report of its training and validation parts, labels written ``2.0`` (pandas after a blank cell), a zip
that is no workbook (a model file given as the table) and a label column under a misspelt name or ``y_true``."""
from __future__ import annotations

import logging
import zipfile

import numpy as np
import pytest
from _feature_tables import TOY, toy_config, write_feature_table

from icegan.cli import main
from icegan.commands.predict import fit
from icegan.data.feature_table import (UnrecordedIdsError, parse_class_label, read_csv_cells, read_feature_table,
                                       unrecorded_ids)
from icegan.data.toy_features import make_toy_features
from icegan.recognition import inner_val_split


def _command_line(*overrides: str) -> list[str]:
    """TOY with ``overrides`` in place of its own settings of the same keys: a command line may set a key once."""
    keys = {item.split("=", 1)[0] for item in overrides}
    return [*(item for item in TOY if item.split("=", 1)[0] not in keys), *overrides]


def _split_table(tmp_path, train_labels: list[int], fraction: float = 0.5, seed: int = 0):
    """A toy table of 4 subjects whose subjects that ``inner_val_split(fraction, seed)`` keeps for training hold
    only ``train_labels`` (cycled over their clips), the held-out subjects all three classes; (csv, held-out
    subjects)."""
    fs = make_toy_features(n_subjects_per_dataset=2)
    subjects = fs.samples["subject"].astype(str).tolist()
    train, val = inner_val_split(subjects, np.arange(len(subjects)), fraction, seed)
    samples = fs.samples.copy()
    samples.loc[train, "label"] = [train_labels[i % len(train_labels)] for i in range(len(train))]
    csv = write_feature_table(tmp_path, fs.replace(samples=samples), name="split.csv")
    return csv, sorted({subjects[i] for i in val})


def test_fit_refuses_an_inner_validation_split_that_leaves_one_class_to_train_on(tmp_path, capsys):
    """Every class is in the table, but the subjects inner validation keeps for training hold one: the model would
    predict that class for every clip. Refused, naming the split, its held-out subjects and the training counts."""
    csv, held_out = _split_table(tmp_path, [0])
    overrides = ["model.name=ststnet", "model.epochs=1", "model.inner_val_fraction=0.5", "seed=0",
                 "data.source=table", f"data.table={csv}"]
    with pytest.raises(ValueError, match="fewer than 2 classes") as info:
        fit(toy_config(*overrides), tmp_path / "m.pt", progress=False)
    msg = str(info.value)
    assert f"{csv}: the 18 training clips left by model.inner_val_fraction=0.5" in msg
    assert f"18 clips of 2 subjects ({', '.join(held_out)})" in msg
    assert "hold one class (negative 18, positive 0, surprise 0)" in msg
    assert "lower model.inner_val_fraction" in msg
    assert not (tmp_path / "m.pt").exists()
    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--no-progress", *_command_line(*overrides)]) == 2
    err = capsys.readouterr().err
    assert "negative 18, positive 0, surprise 0" in err and "Traceback" not in err


def test_fit_warns_of_a_class_the_inner_validation_split_leaves_out_of_training(tmp_path, capsys):
    """Two classes left for training, the third only in the held-out subjects: trained, with a warning naming it."""
    csv, _ = _split_table(tmp_path, [0, 1])
    fit(toy_config("model.name=ststnet", "model.epochs=1", "model.inner_val_fraction=0.5", "seed=0",
                   "data.source=table", f"data.table={csv}"), tmp_path / "m.pt", progress=False)
    err = capsys.readouterr().err
    assert "warning: no training clip left by model.inner_val_fraction=0.5" in err
    assert "is of class surprise" in err and "can never predict it" in err


def test_fit_reports_its_training_and_inner_validation_parts_apart(tmp_path, capsys):
    """With model.inner_val_fraction the report said "trained on 36 clips of 4 subjects", the held-out subject's
    clips counted as training; the training part and the early-stopping part are reported apart, and the file
    records the held-out part (the clip keys still list every clip, for predict's "was in training" warning)."""
    fs = make_toy_features(n_subjects_per_dataset=2)
    subjects = fs.samples["subject"].astype(str).tolist()
    train, val = inner_val_split(subjects, np.arange(36), 0.25, 0)
    held = sorted({subjects[i] for i in val})
    assert len(held) == 1 and len(train) == 27
    out = tmp_path / "m.pt"
    assert main(["fit", "--out", str(out), "--no-progress", *_command_line("model.name=ststnet", "model.epochs=1",
                 "model.inner_val_fraction=0.25", "seed=0")]) == 0
    said = capsys.readouterr().out
    ds = "casme2 9" if held[0].startswith("casme2") else "samm 9"
    other = "casme2 18, samm 9" if held[0].startswith("samm") else "casme2 9, samm 18"
    assert (f"ststnet: trained on 27 clips of 3 subjects ({other}; negative 9, positive 9, surprise 9), early "
            f"stopping on 9 clips of 1 subject held out by model.inner_val_fraction=0.25 ({held[0]}; {ds}; "
            f"negative 3, positive 3, surprise 3), 28×28 maps, in ") in said
    from icegan.saved_recognizer import load_recognizer
    training = load_recognizer(out)[1]["training"]
    assert training["clips"] == 36 and len(training["clip_keys"]) == 36
    assert training["inner_val"] == {"clips": 9, "subjects": held, "datasets": {ds.split()[0]: 9},
                                     "classes": {"negative": 3, "positive": 3, "surprise": 3}}
    assert main(["fit", "--out", str(tmp_path / "n.pt"), "--no-progress", *TOY, "model.name=logreg"]) == 0
    said = capsys.readouterr().out
    assert "trained on 36 clips of 4 subjects (casme2 18, samm 18; negative 12, positive 12, surprise 12), 28×28" \
        in said and "early stopping" not in said                      # without inner validation: as before


def test_a_label_written_with_a_zero_fraction_reads_as_its_id(tmp_path):
    """pandas writes a label column holding a blank cell as floats (2.0): read as the id, by the rule of a clip
    list's frame numbers (46.0); a real fraction or an id out of range is still refused."""
    assert parse_class_label("2.0", "t.csv, line 2") == 2
    assert parse_class_label(" 0.00 ", "t.csv, line 2") == 0
    assert parse_class_label("4.0", "t.csv, line 2", labels="casme2_5") == 4
    for bad, labels in (("2.5", "megc2019"), ("3.0", "megc2019"), ("5.0", "casme2_5"), ("1.", "megc2019")):
        with pytest.raises(ValueError, match=f"label '{bad}' is neither"):
            parse_class_label(bad, "t.csv, line 2", labels=labels)
    (tmp_path / "maps").mkdir()
    for i in range(3):
        np.save(tmp_path / "maps" / f"{i}.npy", np.full((3, 8, 8), 0.5, dtype=np.float32))
    csv = tmp_path / "features.csv"
    csv.write_text("dataset,subject,clip,label,path\ncasme2,sub03,a,2.0,maps/0.npy\ncasme2,sub03,b,,maps/1.npy\n"
                   "casme2,sub03,c,0.0,maps/2.npy\n")
    assert read_feature_table(csv, labelled=False)["label"].tolist() == [2, -1, 0]
    # a float id is a bare id too: a model of another label set does not read it as its own class
    assert unrecorded_ids(csv)
    with pytest.raises(UnrecordedIdsError, match="label '2.0' is a bare class id"):
        read_feature_table(csv, labelled=False, labels="casme2_5")


def test_a_zip_is_named_a_workbook_only_when_it_holds_one(tmp_path, capsys):
    """A torch model file (a zip) given as --table was called an Excel workbook: an icegan model file is named as
    one, with what --table takes; another zip as a zip archive; a real .xlsx (xl/ inside) is still a workbook."""
    model = tmp_path / "m.pt"
    fit(toy_config("model.name=logreg"), model, progress=False)
    with pytest.raises(ValueError) as info:
        read_csv_cells(model)
    msg = str(info.value)
    assert msg.startswith(f"{model}: an icegan model file (written by `icegan fit`; icegan predict takes it as "
                          f"--model), not a CSV table") and "Excel" not in msg
    assert "--table" in msg and "feature table" in msg
    assert main(["predict", "--model", str(model), "--table", str(model), "--out", str(tmp_path / "o.csv")]) == 2
    assert "an icegan model file" in capsys.readouterr().err
    maps = tmp_path / "maps.zip"
    with zipfile.ZipFile(maps, "w") as z:
        z.writestr("features.csv", "dataset,subject,clip,label,path\n")
    with pytest.raises(ValueError, match=r"maps\.zip: a zip archive, not a CSV table") as info:
        read_csv_cells(maps)
    assert "Excel" not in str(info.value)
    book = tmp_path / "clips.xlsx"
    with zipfile.ZipFile(book, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(ValueError, match=r"clips\.xlsx: an Excel workbook, not a CSV table"):
        read_csv_cells(book)


@pytest.mark.parametrize("column", ["lable", "Labl", "y_true"])
def test_a_label_column_misspelt_or_named_y_true_is_warned_about(tmp_path, caplog, column):
    """A label column headed 'lable' or 'y_true' (the name icegan predict writes) was read as no label column,
    silently: warned about as 'emotion' is, and named in the missing-column refusal of training."""
    (tmp_path / "maps").mkdir()
    np.save(tmp_path / "maps" / "0.npy", np.full((3, 8, 8), 0.5, dtype=np.float32))
    csv = tmp_path / "t.csv"
    csv.write_text(f"dataset,subject,clip,{column},path\ncasme2,sub01,a,negative,maps/0.npy\n")
    with caplog.at_level(logging.WARNING, logger="icegan.data.feature_table"):
        assert read_feature_table(csv, labelled=False)["label"].tolist() == [-1]
    assert f"its column '{column.lower()}' looks like the labels, but the label column is 'label'" in caplog.text
    with pytest.raises(ValueError, match=rf"missing column\(s\) \['label'\].*column '{column.lower()}' looks"):
        read_feature_table(csv)


def test_columns_that_are_no_label_stay_quiet(tmp_path, caplog):
    """Other extra columns (a note, predict's y_pred / predicted) draw no label-column warning."""
    (tmp_path / "maps").mkdir()
    np.save(tmp_path / "maps" / "0.npy", np.full((3, 8, 8), 0.5, dtype=np.float32))
    csv = tmp_path / "t.csv"
    csv.write_text("dataset,subject,clip,note,y_pred,predicted,path\ncasme2,sub01,a,x,0,negative,maps/0.npy\n")
    with caplog.at_level(logging.WARNING, logger="icegan.data.feature_table"):
        assert read_feature_table(csv, labelled=False)["label"].tolist() == [-1]
    assert "looks like the labels" not in caplog.text


# ------------------------------------------------------------------ review of the above (rbench60)

def test_a_predictions_file_given_as_the_table_is_named_as_one(tmp_path, caplog):
    """A predictions.csv of icegan predict / loso (y_true, y_pred, score_*; no path) given as the table was told to
    rename y_true to 'label', which would not make it a feature table: it is named a predictions file, with the
    features.csv of `icegan features` to give; y_true is taken as the labels' column only beside a path column."""
    csv = tmp_path / "predictions.csv"
    csv.write_text("fold,dataset,subject,clip,y_true,y_pred,score_negative,score_positive,score_surprise\n"
                   "0,casme2,casme2/sub01,EP02_01f,1,1,0.1,0.8,0.1\n")
    for labelled in (False, True):
        with caplog.at_level(logging.WARNING, logger="icegan.data.feature_table"):
            with pytest.raises(ValueError) as info:
                read_feature_table(csv, labelled=labelled)
        msg = str(info.value)
        assert msg.startswith(f"{csv}: missing column(s)") and "rename" not in msg, msg
        assert "a predictions file of `icegan predict` / `icegan loso`" in msg
        assert "give the features.csv that `icegan features` writes" in msg
        assert "looks like the labels" not in caplog.text


@pytest.mark.parametrize("name, members, kind", [
    ("clips.ods", {"mimetype": "application/vnd.oasis.opendocument.spreadsheet", "content.xml": "<c/>"},
     "an OpenDocument spreadsheet (.ods)"),
    ("clips.numbers", {"Index/Document.iwa": "x", "Metadata/Properties.plist": "x"},
     "an Apple Numbers spreadsheet (.numbers)")])
def test_an_ods_or_numbers_spreadsheet_is_told_to_be_saved_as_csv(tmp_path, name, members, kind):
    """An .ods / .numbers spreadsheet (a zip) was told to be unzipped: it is a spreadsheet, to save as CSV."""
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        for member, text in members.items():
            z.writestr(member, text)
    with pytest.raises(ValueError) as info:
        read_csv_cells(path)
    msg = str(info.value)
    assert msg == f"{path}: {kind}, not a CSV table: save the sheet as CSV (comma-separated values) and give that file"
    assert "unzipped" not in msg and "archive" not in msg


def test_one_rule_reads_a_whole_number_in_a_label_cell_and_a_coding_sheet():
    """feature_table._id_text and sheets._whole_number_text were two copies of one rule: one public helper now."""
    from flownet.user_numbers import whole_number_digits
    from icegan.data.sheets import _samm_subject
    texts = ("6", "6.0", "06.00", "6.5", "", "٣", "-1", "1.", " 6")
    assert [whole_number_digits(t) for t in texts] == ["6", "6", "06", None, None, None, None, None, None]
    assert _samm_subject("6.0") == "006" and parse_class_label("1.00", "t.csv, line 2") == 1
