"""Errors a new user meets when giving the wrong file: each says what the file is and what to run instead."""
from __future__ import annotations

import re

import pytest

from icegan.data.feature_table import read_feature_table


def test_the_megc2019_release_list_given_as_a_feature_table_says_how_to_read_it(shared_data):
    """The release's combined_3_class2_for_optical_flow.csv is no feature table (no subject, clip, path columns):
    the error points at data.source=megc2019_htnet with the release's folder, and at how a table lists its maps."""
    csv = shared_data / "megc2019_htnet" / "combined_3_class2_for_optical_flow.csv"
    with pytest.raises(ValueError) as err:
        read_feature_table(csv, labelled=False)
    msg = str(err.value)
    assert msg.startswith(f"{csv}: missing column(s) ['subject', 'clip', 'path']")
    assert f"data.source=megc2019_htnet data.root={csv.parent}" in msg
    assert "flow_uvos_28/<sub>_<filename_o> .png" in msg and "clip list" not in msg


def test_data_composite_counts_the_one_dataset_whose_sheet_a_user_has(shared_data, tmp_path, capsys):
    """A copy of CASME II alone: its composite counts, and a line saying SAMM was not counted (before, the missing
    SAMM sheet stopped the command); a folder without either sheet names both files and --annotations-dir."""
    from icegan.cli import main
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "CASME2-coding-20140508.xlsx").symlink_to(
        shared_data / "annotations" / "CASME2-coding-20140508.xlsx")
    assert main(["data", "composite", "--annotations-dir", str(tmp_path / "ann")]) == 0    # 2 rows ruled out
    out = capsys.readouterr().out
    assert "casme2     145       88       32       25       24" in out
    assert (f"samm: not counted: its sheet SAMM_Micro_FACS_Codes_v2.xlsx (or SAMM_Micro_FACS_Codes_v2.csv) is not in "
            f"{tmp_path / 'ann'}") in out
    (tmp_path / "empty").mkdir()
    assert main(["data", "composite", "--annotations-dir", str(tmp_path / "empty")]) != 0
    err = capsys.readouterr().err
    assert f"no coding sheet in {tmp_path / 'empty'}: expected CASME2-coding-20140508.xlsx (CASME II) and/or " \
           f"SAMM_Micro_FACS_Codes_v2.xlsx (SAMM)" in err and "--annotations-dir" in err and "Traceback" not in err


def test_a_config_path_that_is_not_there_names_what_was_meant(tmp_path, monkeypatch):
    """Run from another folder, `--config configs/X.yaml` names the shipped config of that name; a misspelt name
    names the nearest config in its folder; a name like none says nothing more."""
    from dataclasses import dataclass

    from icegan.config import load_config
    from icegan.paths import REPO_ROOT

    @dataclass
    class C:
        name: str = "x"

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        load_config(C, "configs/features_ststnet.yaml")
    assert str(err.value) == (f"config file not found: configs/features_ststnet.yaml (relative to {tmp_path}); the "
                              f"shipped config of that name is {REPO_ROOT / 'configs' / 'features_ststnet.yaml'}: "
                              f"give that path, or `icegan configs features_ststnet > features_ststnet.yaml` for a "
                              f"copy of your own to edit")
    with pytest.raises(FileNotFoundError) as err:
        load_config(C, REPO_ROOT / "configs" / "casme.yaml")
    assert str(err.value) == (f"config file not found: {REPO_ROOT / 'configs' / 'casme.yaml'}; did you mean "
                              f"{REPO_ROOT / 'configs' / 'casme2.yaml'}?")
    (tmp_path / "mine.yaml").write_text("name: y\n")
    with pytest.raises(FileNotFoundError) as err:
        load_config(C, tmp_path / "other_settings.yaml")
    assert str(err.value) == f"config file not found: {tmp_path / 'other_settings.yaml'}"


def test_a_clip_list_row_naming_a_video_file_says_to_extract_its_frames(tmp_path, capsys):
    """`frames` naming a video (a file) is not reported as 'not found' (it is there): the check says it is a file
    and that the clip's frames belong in a folder."""
    from icegan.cli import main
    (tmp_path / "take1.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,label\np01,take1,take1.mp4,1,10,positive\n")
    assert main(["data", "check", "--dataset", "clips", "--root", str(csv), "--no-read-images"]) == 1   # skipped
    out = capsys.readouterr().out
    assert (f"[skip] clips/p01/take1: {tmp_path / 'take1.mp4'} is a file, not a folder of frames: give the folder "
            f"that holds the clip's frames, one image per frame, numbered (a video: extract its frames first)") in out
    assert "not found" not in out


def test_an_emotion_written_as_a_label_names_its_composite_class():
    """A label cell holding a coding-sheet emotion (happiness, Sadness) is refused with the MEGC2019 class it maps to;
    others is said to be left out of the composite; another word gets no guess."""
    from icegan.data.feature_table import parse_class_label
    with pytest.raises(ValueError) as err:
        parse_class_label("happiness", "t.csv, line 2 (clip 'c')")
    assert str(err.value) == ("t.csv, line 2 (clip 'c'): label 'happiness' is neither a class id 0..2 nor one of "
                              "['negative', 'positive', 'surprise']; 'happiness' is an emotion: its MEGC2019 composite "
                              "class is 'positive'; or, 'happiness' being a class of CASME II 5 classes (happiness, "
                              "disgust, repression, surprise, others), set data.labels=casme2_5 for a table of those; "
                              "or, 'happiness' being a class of SAMM 5 classes (anger, contempt, happiness, surprise, "
                              "other), set data.labels=samm_5 for a table of those")
    with pytest.raises(ValueError, match=r"'Sadness' is an emotion: its MEGC2019 composite class is 'negative'$"):
        parse_class_label("Sadness", "t.csv, line 3", allow_empty=True)      # not one of CASME II's five either
    with pytest.raises(ValueError, match=r"'others' is no class of the MEGC2019 composite, which leaves such clips "
                                         r"out; or, 'others' being a class of CASME II 5 classes .*data.labels="
                                         r"casme2_5 for a table of those$"):
        parse_class_label("others", "t.csv, line 4")
    with pytest.raises(ValueError, match=r"'Other' is no class of the MEGC2019 composite, which leaves such clips "
                                         r"out; or, 'Other' being a class of SAMM 5 classes .*data.labels=samm_5 "
                                         r"for a table of those$"):
        parse_class_label("Other", "t.csv, line 4")
    with pytest.raises(ValueError, match=r"'anger' is an emotion: its MEGC2019 composite class is 'negative'; or, "
                                         r"'anger' being a class of SAMM 5 classes"):
        parse_class_label("anger", "t.csv, line 4")
    with pytest.raises(ValueError, match=r"nor one of \['negative', 'positive', 'surprise'\]$"):
        parse_class_label("happy", "t.csv, line 5")
    assert parse_class_label("Positive", "t.csv, line 6") == 1


def test_a_clip_list_saved_by_a_spreadsheet_in_another_format_says_to_save_it_as_csv(shared_data, tmp_path):
    """An Excel workbook given as the CSV, and a table saved with tabs or semicolons (as a spreadsheet in some
    locales does), are each named with what to do, not a decoding error or a list of one odd column."""
    from icegan.data.clip_list import ClipList
    from icegan.data.feature_table import read_feature_table
    book = tmp_path / "clips.xlsx"
    book.write_bytes((shared_data / "annotations" / "CASME2-coding-20140508.xlsx").read_bytes())
    with pytest.raises(ValueError) as err:
        ClipList(book).records()
    assert str(err.value) == (f"{book}: an Excel workbook, not a CSV table: save the sheet as CSV (comma-separated "
                              f"values) and give that file")
    for sep, name in (("\t", "tabs"), (";", "semicolons")):
        csv = tmp_path / f"table_{name}.csv"
        csv.write_text(sep.join(["dataset", "subject", "clip", "label", "path"]) + "\n"
                       + sep.join(["mine", "s1", "c1", "positive", "m.npy"]) + "\n")
        with pytest.raises(ValueError) as err:
            read_feature_table(csv)
        assert str(err.value).startswith(f"{csv}: its header has no comma but {name} ('dataset")
        assert str(err.value).endswith("): save the table comma-separated (CSV)")


def test_features_of_a_clip_list_say_which_frame_was_spotted_as_the_apex(shared_data, tmp_path, caplog):
    """A clip listed without an apex: the frame spotted for it is said (with the onset and where every clip's apex
    is recorded), not only kept in the cache's manifest."""
    import logging

    from icegan.cli import main
    clips = tmp_path / "clips.csv"
    frames = shared_data / "casme2"
    clips.write_text("subject,clip,frames,onset,apex,offset,label\n"
                     f"p1,a,{frames / 'sub01' / 'EP02_01f'},46,59,86,positive\n"
                     f"p2,b,{frames / 'sub01' / 'EP19_05f'},396,,446,\n")
    with caplog.at_level(logging.INFO, logger="icegan.pipeline"):
        assert main(["features", "--config", "configs/casme2.yaml", "--clips", str(clips), "--clips-mode", "cropped",
                     "--out", str(tmp_path / "maps"), "--no-progress", "flow.method=farneback", "data.img_size=32",
                     f"data.prepare.cache_root={tmp_path / 'cache'}", "data.prepare.workers=1"]) == 0
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("apex spotted")]
    assert len(said) == 1 and said[0].startswith("apex spotted for 1 clip(s) without one (method ")
    assert ": clips/p2/b at frame 4" in said[0] and " (onset 396); every clip's apex is in " in said[0]
    assert said[0].endswith("manifest.csv")


def test_a_binary_file_given_as_the_feature_table_is_named_as_not_text(tmp_path):
    """A PNG (a flow map) given as data.table is refused as not UTF-8 text, with what to give instead; before, the
    message guessed at a row with more fields than the header."""
    from PIL import Image

    from icegan.data.feature_table import read_feature_table
    png = tmp_path / "map.png"
    Image.new("RGB", (4, 4)).save(png)
    with pytest.raises(ValueError, match=r"map.png: not UTF-8 text \(byte 0 is b'\\x89'\): is it an image, a workbook "
                                         r"or another binary file\? Give the feature table, a CSV file$"):
        read_feature_table(png)


def test_a_config_folder_is_named_as_a_folder(tmp_path):
    """--config given a folder of configs says it is a folder and names its YAML files; before: 'config file not
    found' of a path that exists."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config
    (tmp_path / "b.yaml").write_text("name: b\n")
    (tmp_path / "a.yaml").write_text("name: a\n")
    with pytest.raises(FileNotFoundError, match=rf"config file {re.escape(str(tmp_path))} is a folder, not a YAML "
                                                rf"file: give one of its files, e\.g\. .*a\.yaml \(it holds a\.yaml, "
                                                rf"b\.yaml\)"):
        load_config(LosoConfig, tmp_path, [])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty is a folder, not a YAML file$"):
        load_config(LosoConfig, tmp_path / "empty", [])
