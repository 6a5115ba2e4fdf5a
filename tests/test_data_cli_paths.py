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
