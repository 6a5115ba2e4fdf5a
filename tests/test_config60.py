"""Config checks of review 60: YAML 1.1 words as text values, a key repeated on one command line (and the suite's
layering of its overrides over a run's own), the list-item hint for train.py's data.root, settings the chosen data
source never reads, the prepare settings recorded as used, and resume of `icegan gan train` with other precision."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from icegan.commands.loso import LosoConfig
from icegan.config import ConfigError, apply_overrides, load_config

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo_features.yaml"
QUOTE_NOTE = "(YAML reads the value written as yes/no, on/off or true/false as {}, not as text: quote it"


@pytest.mark.parametrize("override, key, word", [("name=on", "name", True),
                                                 ("data.datasets=[no, casme2]", "data.datasets[0]", False)])
def test_yaml_word_as_text_value_says_yaml_read_a_boolean_and_to_quote_it(override, key, word):
    with pytest.raises(ConfigError) as err:
        load_config(LosoConfig, DEMO, [override])
    msg = str(err.value)
    assert f"config key '{key}' (in command line): expected a string, got {word!r} " in msg
    assert QUOTE_NOTE.format(word) in msg and """'"on"' on a command line""" in msg


def test_quoted_yaml_word_is_text():
    assert load_config(LosoConfig, DEMO, ['name="on"', 'data.datasets=["no", casme2]']).data.datasets == [
        "no", "casme2"]


def test_key_repeated_on_one_command_line_is_refused_naming_both():
    with pytest.raises(ConfigError, match=r"config key 'model.epochs' is set twice on one command line "
                                          r"\('model.epochs=3' and 'model.epochs=4'\): give it once"):
        load_config(LosoConfig, DEMO, ["model.epochs=3", "model.epochs=4"])
    cfg = load_config(LosoConfig, DEMO, ["model.epochs=3"])
    assert apply_overrides(cfg, ["model.epochs=4"]).model.epochs == 4      # a second layer may set it again
    assert load_config(LosoConfig, DEMO, ["model={epochs: 3}", "model.epochs=4"]).model.epochs == 4


def test_suite_override_replaces_the_runs_own_and_the_planned_command_sets_the_key_once(tmp_path):
    from icegan.suite import load_suite, plan_suite
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\nseeds: [0]\nruns:\n  - label: a\n    config: {DEMO}\n"
                     f"    overrides: [max_folds=1, model.epochs=1, threads=1]\n", encoding="utf-8")
    plan = plan_suite(load_suite(suite), suite, tmp_path / "out", ["model.epochs=2"])
    assert plan[0].config.model.epochs == 2 and plan[0].config.max_folds == 1
    words = shlex.split(plan[0].command)
    assert "model.epochs=2" in words and "model.epochs=1" not in words and "max_folds=1" in words


def test_train_py_data_root_hints_the_root_of_a_prepare_dataset():
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match=r"unknown config key 'data.root' in override 'data.root=/x' \(did you "
                                          r"mean 'data.prepare.datasets.N.root'\?\)"):
        load_main_config(None, ["data.root=/x"])

