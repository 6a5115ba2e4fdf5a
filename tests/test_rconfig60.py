"""Review of the config commits of review 60 (9aec522, e2a6c98) and the flow training's refusal (536f901): a saved
main-job config.yaml reruns at another data.img_size, a suite run's own overrides give each key once, the flow
training's message for a damaged config.yaml of its own run, and data.toy_subjects' default read off the dataclass
field. (An old synthetic run's config.yaml, its time's data.prepare defaults, loads: test_config60.)"""
from __future__ import annotations

from pathlib import Path

import pytest

from icegan.config import ConfigError, config_yaml, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_a_saved_main_config_reruns_at_another_img_size(tmp_path):
    """config.yaml records data.prepare.size = data.img_size (the size used): rerunning it with another
    data.img_size loads at that size, as the shipped config does; a size the file does not record as used is
    still refused."""
    from icegan.pipeline import load_main_config
    saved = tmp_path / "config.yaml"
    saved.write_text(config_yaml(load_main_config(ROOT / "configs" / "casme2.yaml")), encoding="utf-8")
    assert "    size: 64\n" in saved.read_text() and "  img_size: 64\n" in saved.read_text()
    cfg = load_main_config(saved, ["data.img_size=32"])
    assert cfg.data.img_size == 32 and cfg.data.prepare.size == 32
    saved.write_text(saved.read_text().replace("    size: 64\n", "    size: 96\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^data.prepare.size=96 \(in {saved}\) is not used: the main job "
                                          r"prepares its faces at data.img_size=32 pixels"):
        load_main_config(saved, ["data.img_size=32"])


def test_a_suite_run_whose_own_overrides_repeat_a_key_is_refused_naming_the_file_and_run(tmp_path):
    from icegan.suite import load_suite
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\nseeds: [0]\nruns:\n  - label: a\n    config: {ROOT / 'configs' / 'demo_features.yaml'}\n"
                     "    overrides: [model.epochs=1, model.epochs=2]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_suite(suite)
    msg = str(err.value)
    assert str(suite) in msg and "runs[0] ('a')" in msg
    assert "config key 'model.epochs' is set twice" in msg and "('model.epochs=1' and 'model.epochs=2')" in msg


def test_a_flow_runs_damaged_config_yaml_says_it_may_be_removed(tmp_path):
    from flownet.train import refuse_other_run_folder
    (tmp_path / "last.pt").write_bytes(b"")
    (tmp_path / "config.yaml").write_text("", encoding="utf-8")     # cut short: nothing written
    with pytest.raises(ValueError) as err:
        refuse_other_run_folder(tmp_path)
    assert str(err.value).endswith("give this flow training another name= (or out_dir=), or remove that file if "
                                   "it is this flow run's damaged config")


def test_toy_subjects_at_its_default_loads_with_megc2019_htnet_and_a_table_run_keeps_it():
    """The default is the dataclass field's; a table run (tests build them over toy overrides) keeps it. (Another
    value with megc2019_htnet is refused: test_config60.)"""
    from icegan.commands.loso import LosoConfig
    assert load_config(LosoConfig, ROOT / "configs" / "features_ststnet.yaml",
                       ["data.toy_subjects=4"]).data.toy_subjects == 4
    cfg = load_config(LosoConfig, None, ["data.source=table", "data.table=/x/t.csv", "data.toy_subjects=2"])
    assert cfg.data.toy_subjects == 2
