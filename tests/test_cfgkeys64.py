"""Config keys (sixty-fourth session): a flow learning rate of 0 is refused as the GAN's and the recognizer's are (a
run trained nothing and shipped its starting weights with exit 0); one command line sets a key once whatever the form
of its overrides (a section's mapping and one of its keys, a whole list and one of its items: the last won, so the
order of the words decided the run); the crop size of a ``data.prepare`` section is named by its full dotted key."""
from __future__ import annotations

import pytest

from icegan.cli import main
from icegan.config import ConfigError, load_config, refuse_repeated_keys


# ---- 1. a flow learning rate of 0 ----------------------------------------------------------------------------------
def _flow_configs():
    from flownet.models.decflow import DecFlowTrainConfig
    from flownet.selfsup import SelfSupConfig
    from flownet.train import FlowTrainConfig
    return [(FlowTrainConfig, "train.lr"), (SelfSupConfig, "train.lr"), (SelfSupConfig, "train.student_lr"),
            (DecFlowTrainConfig, "train.lr")]


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("value, shown", [("0", "0.0"), ("-0.001", "-0.001"), (".inf", "inf")])
def test_a_flow_learning_rate_of_0_is_refused_naming_the_key(index, value, shown):
    cls, key = _flow_configs()[index]
    with pytest.raises(ConfigError, match=rf"{key} must be a finite number > 0, got {shown}$"):
        load_config(cls, None, [f"{key}={value}"])
    assert load_config(cls, None, [f"{key}=0.0003"]) is not None


def test_flow_train_with_lr_0_stops_before_training(capsys):
    from icegan.paths import REPO_ROOT
    config = REPO_ROOT / "configs" / "flow_srflownet_fdr.yaml"
    assert main(["flow", "train", "--config", str(config), "--print-config", "train.lr=0"]) == 2
    assert capsys.readouterr().err.strip().endswith("train.lr must be a finite number > 0, got 0.0")


# ---- 2. a key set twice on one command line, in any form -----------------------------------------------------------
TWICE = "is set twice on one command line"


@pytest.mark.parametrize("first, second, key", [
    ("model={epochs: 2}", "model.epochs=3", "model.epochs"),
    ("model={epochs: 2, lr: 0.1}", "model={epochs: 3}", "model.epochs"),
    ("data.prepare.datasets=[{name: casme2, root: /x}]", "data.prepare.datasets.0.root=/y",
     "data.prepare.datasets.0.root"),
    ("data={prepare: {size: 64}}", "data.prepare.size=32", "data.prepare.size"),
    ("data.prepare.datasets=[]", "data.prepare.datasets.0.root=/y", "data.prepare.datasets.0.root"),
])
@pytest.mark.parametrize("order", ["as written", "reversed"])
def test_a_key_set_by_a_mapping_or_a_list_and_by_its_own_override_is_refused(first, second, key, order):
    words = [first, second] if order == "as written" else [second, first]
    with pytest.raises(ConfigError, match="give it once") as err:
        refuse_repeated_keys(words)
    assert str(err.value) == f"config key '{key}' {TWICE} ('{words[0]}' and '{words[1]}'): give it once"


@pytest.mark.parametrize("command, first, second", [
    ("loso", "model={epochs: 2}", "model.epochs=3"),
    ("train", "gan={epochs: 2}", "gan.epochs=3"),
    ("train", "data.prepare.datasets=[{name: casme2, root: /x}]", "data.prepare.datasets.0.root=/y"),
])
@pytest.mark.parametrize("order", ["as written", "reversed"])
def test_the_commands_refuse_a_key_set_twice_in_either_order(capsys, command, first, second, order):
    words = [first, second] if order == "as written" else [second, first]
    with pytest.raises(SystemExit) as stop:
        main([command, "--print-config", *words])
    assert stop.value.code == 2
    assert f"{TWICE} ('{words[0]}' and '{words[1]}'): give it once" in capsys.readouterr().err


@pytest.mark.parametrize("words", [
    ["model.epochs=2", "model.lr=0.1"],
    ["model={epochs: 2}", "model.lr=0.1"],
    ["model.lr=0.1", "model={epochs: 2}"],
    ["model={epochs: 2}", "model={lr: 0.1}"],
    ["data.prepare.datasets.0.root=/x", "data.prepare.datasets.0.name=casme2"],
    ["data.prepare.size=32", "data.prepare.datasets=[]"],
    ["model.epochs=2", "model.epochs_x=3"],          # a key that starts with another's name is another key
    ["model"],                                       # no '=': left to parse_override
])
def test_distinct_keys_of_one_section_are_accepted(words):
    refuse_repeated_keys(words)


def test_a_config_file_and_one_override_of_its_key_still_load(capsys):
    from pathlib import Path
    demo = Path(__file__).resolve().parents[1] / "configs" / "demo_features.yaml"
    assert main(["loso", "--config", str(demo), "--print-config", "model={epochs: 2}", "model.lr=0.1"]) == 0
    out = capsys.readouterr().out
    assert "  epochs: 2\n" in out and "  lr: 0.1\n" in out
    assert main(["loso", "--config", str(demo), "--print-config", "model.epochs=3"]) == 0
    assert "  epochs: 3\n" in capsys.readouterr().out


# ---- 3. the crop size of data.prepare named by its full key --------------------------------------------------------
def test_data_prepare_size_is_named_by_its_dotted_key():
    from icegan.pipeline import MainConfig
    with pytest.raises(ConfigError, match=r"\): data\.prepare\.size must be >= 8, got 4$"):
        load_config(MainConfig, None, ["data.prepare.size=4"])
    with pytest.raises(ConfigError, match=r"\): data\.prepare\.workers must be >= 0, got -1$"):
        load_config(MainConfig, None, ["data.prepare.workers=-1"])


def test_icegan_prepare_names_its_top_level_size_plainly(tmp_path):
    from icegan.data.prepare import PrepareConfig
    with pytest.raises(ConfigError, match=r"^config \(in command line\): size must be >= 8, got 4$"):
        load_config(PrepareConfig, None, ["size=4"])
