"""The root / sheet hints name the override of the command at hand; a typo in a list section's name is answered."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from icegan.cli import main
from icegan.config import ConfigError, apply_overrides, load_config
from icegan.data.base import find_sheet, missing_root_message
from icegan.data.prepare import PrepareConfig
from icegan.pipeline import MainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _named_key(text: str, leaf: str) -> str:
    """The override key the message tells to set (``N`` read as 0)."""
    found = re.findall(rf"(\S+)\.N\.{leaf}=", text)
    assert found, text
    return f"{found[0]}.0.{leaf}"


def _prepare_error(capsys, *overrides: str) -> str:
    assert main(["prepare", "--config", str(CONFIGS / "prepare_casme2.yaml"), *overrides]) == 2
    return capsys.readouterr().err


def test_prepare_missing_root_names_a_prepare_key(tmp_path, capsys):
    err = _prepare_error(capsys, f"datasets.0.root={tmp_path / 'nope'}")
    assert "root not found" in err
    key = _named_key(err, "root")
    assert key == "datasets.0.root"
    cfg = load_config(PrepareConfig, CONFIGS / "prepare_casme2.yaml")
    assert apply_overrides(cfg, [f"{key}={tmp_path}"]).datasets[0].root == str(tmp_path)


def test_prepare_missing_sheet_names_a_prepare_key(tmp_path, capsys):
    (tmp_path / "sub01" / "EP01_01").mkdir(parents=True)
    err = _prepare_error(capsys, f"datasets.0.root={tmp_path}", f"datasets.0.annotations={tmp_path / 'nope.xlsx'}")
    assert "annotation sheet" in err and "not found" in err
    key = _named_key(err, "annotations")
    assert key == "datasets.0.annotations"
    cfg = load_config(PrepareConfig, CONFIGS / "prepare_casme2.yaml")
    assert apply_overrides(cfg, [f"{key}=x.xlsx"]).datasets[0].annotations == "x.xlsx"


def test_train_form_is_a_train_key(tmp_path):
    cfg = load_config(MainConfig, CONFIGS / "casme2.yaml")
    key = _named_key(missing_root_message("casme2", tmp_path / "nope"), "root")
    assert apply_overrides(cfg, [f"{key}={tmp_path}"]).data.prepare.datasets[0].root == str(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        find_sheet(tmp_path / "nope.xlsx", "CASME2-coding-20140508.xlsx", tmp_path)
    key = _named_key(str(err.value), "annotations")
    assert apply_overrides(cfg, [f"{key}=x.xlsx"]).data.prepare.datasets[0].annotations == "x.xlsx"


def test_data_check_sheet_hint_names_its_flag(tmp_path, capsys):
    (tmp_path / "sub01" / "EP01_01").mkdir(parents=True)
    assert main(["data", "check", "--dataset", "casme2", "--root", str(tmp_path), "--annotations",
                 str(tmp_path / "nope.xlsx")]) == 2
    err = capsys.readouterr().err
    assert "annotation sheet not found" in err and "--annotations FILE" in err
    assert "data.prepare.datasets" not in err


@pytest.mark.parametrize("override, meant", [("data.prepare.dataset.0.root=x", "data.prepare.datasets"),
                                             ("data.prepare.datset.0.root=x", "data.prepare.datasets")])
def test_typo_in_a_list_section_train(override, meant):
    cfg = load_config(MainConfig, CONFIGS / "casme2.yaml")
    with pytest.raises(ConfigError, match=f"did you mean '{re.escape(meant)}") as err:
        apply_overrides(cfg, [override])
    assert "known keys here" in str(err.value) and "'datasets'" in str(err.value)


def test_typo_in_a_list_section_prepare():
    cfg = load_config(PrepareConfig, CONFIGS / "prepare_casme2.yaml")
    with pytest.raises(ConfigError, match="did you mean 'datasets") as err:
        apply_overrides(cfg, ["dataset.0.root=x"])
    assert "known keys here" in str(err.value)
