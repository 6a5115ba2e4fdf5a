"""A suite copied out with ``icegan configs NAME > NAME.yaml`` (as its --help and the missing-config hint advise) runs
the shipped recipe configs it names (icegan.suite.member_config_path); a recipe config found nowhere names both places."""
from pathlib import Path

import pytest

from icegan.cli import main
from icegan.paths import shipped_config_dir
from icegan.suite import SuiteRun, load_suite, member_config_path, plan_suite


def _copy_of(name: str, folder: Path, capsys) -> Path:
    assert main(["configs", name]) == 0
    path = folder / f"{name}.yaml"
    path.write_text(capsys.readouterr().out, encoding="utf-8")
    return path


def test_a_suite_copied_with_icegan_configs_plans_the_shipped_recipes(tmp_path, capsys):
    suite = _copy_of("suite_composite", tmp_path, capsys)
    out = tmp_path / "out"
    assert main(["suite", "--config", str(suite), "--out", str(out), "--dry-run"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"--config {shipped_config_dir() / 'features_logreg.yaml'} " in printed
    assert not out.exists()


def test_a_recipe_config_beside_the_suite_file_comes_first(tmp_path, capsys):
    suite = _copy_of("suite_composite", tmp_path, capsys)
    mine = _copy_of("features_logreg", tmp_path, capsys)
    plan = plan_suite(load_suite(suite), suite, tmp_path / "out")
    used = {p.label: p.command for p in plan}
    assert f"--config {mine} " in used["logistic regression"]
    assert f"--config {shipped_config_dir() / 'features_ststnet.yaml'} " in used["STSTNet + shifts"]


def test_a_recipe_config_found_nowhere_names_both_places(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"suite run 'x': config file not found: .*nope\.yaml \(a relative "
                                                r"config is looked for next to the suite file, then among the shipped"):
        member_config_path(SuiteRun(label="x", config="nope.yaml"), tmp_path)
    with pytest.raises(FileNotFoundError, match=r"suite run 'x': config file not found: /nowhere/a\.yaml$"):
        member_config_path(SuiteRun(label="x", config="/nowhere/a.yaml"), tmp_path)
