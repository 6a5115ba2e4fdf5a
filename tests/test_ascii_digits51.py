"""Digits in names and labels are ASCII digits only, as the coding sheets read them (``re.ASCII``, isdecimal and
isascii): Python's ``\\d``, ``str.isdigit()`` and ``int()`` also take Arabic-Indic (``٠١``) and full-width digits, and
``isdigit()`` takes a superscript ``²`` that ``int()`` then refuses with a bare ValueError."""
import pytest

from icegan.data.casme2 import CASME2
from icegan.data.records import subject_number
from icegan.data.samm import SAMM
from icegan.data.smic import SMIC

# -- subject folders --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loader, name", [(CASME2, "sub٠١"), (CASME2, "Sub０１"), (SAMM, "٠٠٦"), (SMIC, "s١")])
def test_a_folder_named_with_other_digits_is_no_subject_folder(loader, name):
    """Before: taken as a subject folder (the sheets could never name it: they read ASCII digits only)."""
    assert not loader.looks_like_subject(name)
    assert subject_number(name) is None
    assert loader is SMIC or loader.padded_subject(name) is None


def test_smic_tree_passes_over_a_subject_folder_of_other_digits_and_check_names_it(tmp_path):
    """A stray ``s١`` beside ``s1`` is read as any stray folder is: not a subject (no clips, no fold), and
    ``icegan data check`` lists it among the folders not read."""
    from icegan.data.check import check_dataset
    for s in ("s1", "s١"):
        clip = tmp_path / s / "micro" / "negative" / f"{s}_ne_01"
        clip.mkdir(parents=True)
        for n in (1, 2):
            (clip / f"reg_image{n}.bmp").write_bytes(b"")
    ds = SMIC(tmp_path)
    assert ds.subject_folders() == ["s1"]
    assert {r.subject for r in ds.records()} == {"smic/s1"}
    report = check_dataset("smic", tmp_path, read_images=False)
    assert report.other_folders == ["s١"]
    assert "not named as smic subject folders, not read" in report.text() and "s١" in report.text()


# -- frame numbers of file names ---------------------------------------------------------------------------------------

def test_a_frame_file_named_with_other_digits_carries_no_frame_number(tmp_path):
    """``img٣.jpg`` was frame 3 (``img4٣.jpg`` frame 43); now it has no frame number and list_frames says so."""
    from icegan.data.records import frame_number, list_frames
    assert frame_number("img٣.jpg") is None and frame_number("img4٣.jpg") is None
    assert frame_number("img46.jpg") == 46 and frame_number("006_05562.jpg") == 5562
    for name in ("img1.jpg", "img2.jpg", "img٣.jpg"):
        (tmp_path / name).write_bytes(b"")
    numbers, paths, problems = list_frames(tmp_path)
    assert numbers == (1, 2) and problems == ["file without a frame number in its name: img٣.jpg"]


def test_synthetic_face_frame_order_puts_other_digits_after_the_frames():
    from pathlib import Path

    from flownet.data.synthetic_face import _frame_order
    names = ["img٣.jpg", "img10.jpg", "img9.jpg"]
    assert [n for n in sorted(names, key=lambda n: _frame_order(Path(n)))] == ["img9.jpg", "img10.jpg", "img٣.jpg"]


def test_real_pairs_pass_over_a_file_named_with_other_digits(tmp_path):
    """``img٣.jpg`` in a clip of img1, img2 was read as frame 3, whose file ``img3.jpg`` does not exist: the whole
    clip was skipped as 'cannot be read as an image'. Now it is no frame and the clip's pairs are read."""
    import cv2
    import numpy as np

    from flownet.data.real_pairs import RealFramePairs
    clip = tmp_path / "casme2" / "sub01" / "EP01"
    clip.mkdir(parents=True)
    for n, name in ((1, "img1.jpg"), (2, "img2.jpg"), (3, "img٣.jpg")):
        img = np.full((32, 32, 3), 40 * n, np.uint8)
        img[::4] = 200
        ok, buf = cv2.imencode(".jpg", img)
        (clip / name).write_bytes(buf.tobytes())
    (tmp_path / "casme2" / "manifest.csv").write_text("subject,filename,onset,apex,verified\nsub01,EP01,1,2,true\n")
    ds = RealFramePairs(root=tmp_path, subjects=["sub01"], size=16, flip=False)
    assert ds.skipped == []
    assert ds.pairs["consecutive"] == [(clip / "img1.jpg", clip / "img2.jpg")]


# -- class labels of a feature table -----------------------------------------------------------------------------------

def _table(tmp_path, labels):
    import numpy as np
    maps = tmp_path / "maps"
    maps.mkdir(exist_ok=True)
    rows = ["dataset,subject,clip,label,path"]
    for i, label in enumerate(labels):
        np.save(maps / f"c{i}.npy", np.full((3, 8, 8), 0.1 * i, dtype=np.float32))
        rows.append(f"casme2,sub0{i % 2},EP{i},{label},maps/c{i}.npy")
    table = tmp_path / "features.csv"
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return table


@pytest.mark.parametrize("label", ["²", "١", "３"])
def test_a_label_of_other_digits_is_refused_naming_the_line_and_clip(tmp_path, label):
    """With data.labels=casme2_5: '²' stopped the read with int()'s bare 'invalid literal'; '١' and '３' were read
    as the ids 1 and 3. Now each is the table's usual error, naming the line, the clip and the ids it reads."""
    from icegan.data.feature_table import load_table_features
    table = _table(tmp_path, ["0", "1", label, "2"])
    with pytest.raises(ValueError, match=r"features.csv, line 4 \(clip .EP2.\): label '.' is neither a class id "
                                         r"0..4 nor one of"):
        load_table_features(table, labels="casme2_5")


def test_labels_of_other_digits_are_no_class_ids_of_an_exported_table(tmp_path):
    """A table whose provenance.json records MEGC2019 and whose only digit-like labels are '²': before, refused as
    'class ids of the label set megc2019' (no cell is an id); now the label itself is refused."""
    import json

    from icegan.data.feature_table import load_table_features
    table = _table(tmp_path, ["happiness", "²", "disgust", "others"])
    (tmp_path / "provenance.json").write_text(json.dumps({"flow": {"method": "tvl1"}, "size": 8,
                                                          "labels": "megc2019"}))
    with pytest.raises(ValueError, match=r"line 3.*label '²' is neither a class id") as err:
        load_table_features(table, labels="casme2_5")
    assert "class ids of the label set" not in str(err.value)


def test_a_cross_dataset_label_of_other_digits_is_not_called_an_id():
    from icegan.data.feature_table import _cross_dataset_label
    from icegan.labels import get_label_set
    with pytest.raises(ValueError, match=r"labelled '²'.*: no class of those"):
        _cross_dataset_label("²", "t.csv line 2 (clip x)", "samm", get_label_set("casme2_5"), "")
    with pytest.raises(ValueError, match=r"labelled '1'.*: an id is not read in a row of another dataset"):
        _cross_dataset_label("1", "t.csv line 2 (clip x)", "samm", get_label_set("casme2_5"), "")


# -- config overrides --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("override", ["data.datasets.².root=/x", "data.datasets.١.root=/x", "train.seeds.²=7",
                                      "train.seeds.٠=7"])
def test_a_list_index_of_other_digits_is_refused_naming_the_key(override):
    """'²' crashed with int()'s bare ValueError; '١' / '٠' set item 1 / 0. Now: the list key's usual ConfigError."""
    from icegan.config import ConfigError, apply_overrides
    from test_config import ItemCfg, ListCfg
    with pytest.raises(ConfigError) as err:
        apply_overrides(ListCfg(), [override])
    msg = str(err.value)
    key = override.split(".")[0] + "." + override.split(".")[1]
    assert f"config key '{key}' in override '{override}' is a list of" in msg and "is no index (ASCII digits" in msg
    assert f"'{key}.0" in msg and "replace the whole list" in msg
    assert apply_overrides(ListCfg(), ["data.datasets.1.root=/x"]).data.datasets[1] == ItemCfg("samm", "/x", "raw")



def test_a_float_key_given_other_digits_is_refused_as_an_integer_key_is():
    """``train.lr=١e-3`` was read as 0.001 (float() takes Arabic-Indic digits; YAML reads the text as a string), where
    ``train.epochs=١٠`` is refused: both are refused now; ``1e-3`` still reads."""
    from icegan.config import ConfigError, apply_overrides
    from test_config import ListCfg
    for override in ("train.lr=١e-3", "train.epochs=١٠"):
        with pytest.raises(ConfigError, match=r"config key 'train\.(lr|epochs)'.*: expected an? (number|integer), got"):
            apply_overrides(ListCfg(), [override])
    assert apply_overrides(ListCfg(), ["train.lr=1e-3"]).train.lr == 0.001


# -- action units ------------------------------------------------------------------------------------------------------

def test_action_units_are_ascii_numbers():
    """'4+L١٠' read as {4, 10}, '١٢' as {12}; other digits are no FACS code of the sheets (dropped like words)."""
    from icegan.data.action_units import parse_action_units
    assert parse_action_units("4+L١٠") == {4}
    assert parse_action_units("١٢") is None
    assert parse_action_units("R12A+R14A") == {12, 14}


# -- internal names ----------------------------------------------------------------------------------------------------

def test_subject_key_does_not_fold_other_digits_onto_ascii_ones():
    """``samm/٠٠٦`` read as ``samm/6`` (and was refused as a second spelling of ``samm/006``): another id now."""
    from icegan.protocol import check_subject_spellings, subject_key
    assert subject_key("SAMM/006") == subject_key("samm/6") == "samm_6"
    assert subject_key("samm/٠٠٦") == "samm_٠٠٦"
    check_subject_spellings(["samm/006", "samm/٠٠٦"])


def _old(path):
    import os
    import time
    path.write_bytes(b"")
    t = time.time() - 10 * 3600
    os.utime(path, (t, t))
    return path


def test_stale_temporaries_named_with_other_digits_are_not_taken_as_a_process_s(tmp_path):
    """A temporary name's process number is ASCII digits: ``c.٩٩٩٩٩٩٩.tmp.npz`` read as process 9999999 (not
    running) and was removed; no process writes such a name, so it is kept now. The ASCII one is still removed."""
    from flownet.io import remove_stale_temps_of
    from icegan.data.prepare import _remove_stale_tmp
    ours, other = _old(tmp_path / "c.9999999-ab12.tmp.npz"), _old(tmp_path / "c.٩٩٩٩٩٩٩-ab12.tmp.npz")
    assert remove_stale_temps_of(tmp_path / "c.npz") == [ours] and other.exists()
    ours, other = _old(tmp_path / ".tmp-abc-9999999"), _old(tmp_path / ".tmp-abc-٩٩٩٩٩٩٩")
    _remove_stale_tmp(tmp_path, "abc")
    assert not ours.exists() and other.exists()
