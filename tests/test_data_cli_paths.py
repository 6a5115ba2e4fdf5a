"""``icegan data composite`` / ``icegan data check``: a path a new user gets wrong is named, with the option, before
any work is done."""
from __future__ import annotations

import shutil

import pytest

from icegan.cli import main
from icegan.data.sheets import CASME2_SHEET


def _sheet_folder(shared_data, tmp_path):
    """A folder holding a copy of the official CASME II sheet."""
    ann = tmp_path / "ann"
    ann.mkdir()
    shutil.copy(shared_data / "annotations" / CASME2_SHEET, ann / CASME2_SHEET)
    return ann


@pytest.mark.parametrize("command", ["composite", "check"])
def test_data_json_that_is_a_folder_is_named_before_the_work(shared_data, tmp_path, capsys, monkeypatch, command):
    """--json naming a folder stopped the command after its work (the whole image check of data check) with only
    'Is a directory: DIR'; now refused first, naming --json and a file to give."""
    import icegan.data.check as check
    import icegan.data.composite as composite
    worked = []

    class Report:
        def text(self):
            return "report"

        def as_dict(self):
            return {}

    monkeypatch.setattr(check, "check_dataset", lambda *a, **k: worked.append(a) or Report())
    monkeypatch.setattr(composite, "composite_from_sheets", lambda *a, **k: worked.append(a) or {})
    out = tmp_path / "reports"
    out.mkdir()
    args = (["composite", "--annotations-dir", str(_sheet_folder(shared_data, tmp_path))] if command == "composite"
            else ["check", "--dataset", "casme2", "--root", str(shared_data / "casme2"), "--no-read-images"])
    assert main(["data", *args, "--json", str(out)]) == 2
    err = capsys.readouterr().err
    name = "composite.json" if command == "composite" else "check.json"
    assert f"icegan data {command}: error: --json" in err and f"{out} is a folder; give a file name in it, e.g. " \
                                                              f"{out / name}" in err
    assert worked == []


def test_data_composite_names_an_annotations_dir_that_is_a_sheet_or_missing(shared_data, tmp_path, capsys):
    """--annotations-dir given the sheet itself, or a folder that does not exist, was answered 'no coding sheet in
    PATH: expected ...' (the sheet named as missing from itself); now what is wrong with the path is said."""
    sheet = _sheet_folder(shared_data, tmp_path) / CASME2_SHEET
    assert main(["data", "composite", "--annotations-dir", str(sheet)]) == 2
    assert capsys.readouterr().err == (f"icegan data composite: error: --annotations-dir {sheet} is a file, not a "
                                       f"folder: give the folder that holds the sheets, {sheet.parent}\n")
    missing = tmp_path / "annotation"
    assert main(["data", "composite", "--annotations-dir", str(missing)]) == 2
    assert capsys.readouterr().err == (f"icegan data composite: error: --annotations-dir {missing}: no such folder; "
                                       f"give the folder that holds {CASME2_SHEET} and/or SAMM_Micro_FACS_Codes_v2."
                                       f"xlsx\n")


def test_data_composite_names_a_sheet_saved_under_another_name(shared_data, tmp_path, capsys):
    """A sheet saved as 'CASME2-coding-20140508 (1).xlsx' (a browser's second download) or in other case was reported
    as absent from a folder that holds it; the file is now named, with the name to give it."""
    from icegan.data.sheets import SAMM_SHEET
    ann = tmp_path / "ann"
    ann.mkdir()
    shutil.copy(shared_data / "annotations" / SAMM_SHEET, ann / SAMM_SHEET)
    shutil.copy(shared_data / "annotations" / CASME2_SHEET, ann / "casme2-coding-20140508.xlsx")
    assert main(["data", "composite", "--annotations-dir", str(ann)]) == 0
    assert (f"casme2: not counted: its sheet {CASME2_SHEET} (or CASME2-coding-20140508.csv) is not in {ann} "
            f"({ann} holds casme2-coding-20140508.xlsx: if that is the sheet, save it as {ann / CASME2_SHEET})\n"
            ) in capsys.readouterr().out
    (ann / SAMM_SHEET).rename(ann / "SAMM_Micro_FACS_Codes_v2 (1).xlsx")
    assert main(["data", "composite", "--annotations-dir", str(ann)]) == 2
    assert capsys.readouterr().err.endswith(
        f"give the folder that holds them with --annotations-dir ({ann} holds casme2-coding-20140508.xlsx: if that is "
        f"the sheet, save it as {ann / CASME2_SHEET}; {ann} holds SAMM_Micro_FACS_Codes_v2 (1).xlsx: if that is the "
        f"sheet, save it as {ann / SAMM_SHEET})\n")


def test_data_check_names_a_root_that_is_a_file_and_a_sheet_that_is_a_folder(shared_data, tmp_path, capsys):
    """--root given a frame file was 'casme2 root not found: FILE', --annotations given the sheets' folder 'annotation
    sheet not found: DIR' (both exist); each is now said to be the wrong kind of path."""
    frame = next((shared_data / "casme2" / "sub01").glob("*/*.jpg"))
    assert main(["data", "check", "--dataset", "casme2", "--root", str(frame), "--no-read-images"]) == 2
    assert capsys.readouterr().err.startswith(f"icegan data check: error: casme2 root {frame} is a file, not a "
                                              f"folder. Put or symlink your copy of the casme2 release")
    ann = _sheet_folder(shared_data, tmp_path)
    assert main(["data", "check", "--dataset", "casme2", "--root", str(shared_data / "casme2"), "--annotations",
                 str(ann), "--no-read-images"]) == 2
    assert capsys.readouterr().err == (f"icegan data check: error: annotation sheet {ann} is a folder, not a file: "
                                       f"give the sheet file in it, e.g. {ann / CASME2_SHEET}\n")


def test_data_check_names_a_clip_list_that_is_a_folder(tmp_path, capsys):
    """--dataset clips --root given the clips' folder was 'clip list not found: DIR'; now it is named as a folder,
    with the CSV files in it."""
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "mine.csv").write_text("subject,clip,frames,onset\n")
    assert main(["data", "check", "--dataset", "clips", "--root", str(tmp_path / "clips"), "--no-read-images"]) == 2
    assert capsys.readouterr().err.startswith(f"icegan data check: error: clip list {tmp_path / 'clips'} is a folder, "
                                              f"not a CSV file: give the clip list in it (mine.csv) (a CSV with columns "
                                              f"subject, clip, frames, onset and optionally ")


def test_data_check_holds_back_the_icegan_data_warnings_only_while_it_runs(shared_data, tmp_path, capsys):
    """``icegan data check`` raises the icegan.data loggers to ERROR (its report lists every problem itself); the level
    is put back afterwards, whether the check ends well or with an error. Before, it stayed at ERROR for the rest of
    the process, and a later call in the same Python session (a notebook, the test suite) lost every icegan.data
    warning, e.g. the one naming a damaged provenance.json."""
    import logging
    quiet = logging.getLogger("icegan.data")
    before = quiet.level
    frame = next((shared_data / "casme2" / "sub01").glob("*/*.jpg"))
    assert main(["data", "check", "--dataset", "casme2", "--root", str(frame), "--no-read-images"]) == 2
    assert quiet.level == before
    assert main(["data", "check", "--dataset", "casme2", "--root", str(shared_data / "casme2"),
                 "--annotations", str(shared_data / "annotations" / CASME2_SHEET), "--no-read-images"]) == 1
    assert quiet.level == before and quiet.getEffectiveLevel() < logging.ERROR
    capsys.readouterr()
