from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pytest
import yaml

from icegan.config import ConfigError, apply_overrides, load_config, save_config, to_dict


@dataclass
class TrainCfg:
    epochs: int = 10
    lr: float = 1e-3
    amp: bool = False
    seeds: List[int] = field(default_factory=lambda: [0])


@dataclass
class DataCfg:
    name: str = "megc"
    roots: Dict[str, str] = field(default_factory=dict)
    size: Optional[int] = None


@dataclass
class Cfg:
    name: str = "run"
    train: TrainCfg = field(default_factory=TrainCfg)
    data: DataCfg = field(default_factory=DataCfg)


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\ntrain:\n  epochs: 5\n  lr: 1\n")
    cfg = load_config(Cfg, p, ["train.epochs=2", "data.size=28", "train.seeds=[1, 2]", "data.roots.samm=/d/SAMM"])
    assert cfg.train.epochs == 2 and isinstance(cfg.train.lr, float) and cfg.train.lr == 1.0
    assert cfg.data.size == 28 and cfg.train.seeds == [1, 2]
    assert cfg.data.roots == {"samm": "/d/SAMM"}


def test_unknown_key_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  epoch: 5\n")
    with pytest.raises(ConfigError, match=r"train\.epoch"):
        load_config(Cfg, p)
    with pytest.raises(ConfigError, match=r"train\.epochz"):
        apply_overrides(Cfg(), ["train.epochz=3"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(Cfg(), ["train.epochs"])



def test_a_misspelt_key_gets_the_closest_known_one():
    """In a file, in an override and in a section name; nothing is suggested for a key unlike any known one."""
    with pytest.raises(ConfigError, match=r"'train\.epoch' in .*\(did you mean 'epochs'\?\)"):
        from_yaml = {"train": {"epoch": 5}}
        from icegan.config import from_dict
        from_dict(Cfg, from_yaml, source="c.yaml")
    with pytest.raises(ConfigError, match=r"'train\.epochz' in override 'train\.epochz=3' \(did you mean 'epochs'\?\)"):
        apply_overrides(Cfg(), ["train.epochz=3"])
    with pytest.raises(ConfigError, match=r"'trian' in override 'trian\.epochs=3' \(did you mean 'train'\?\)"):
        apply_overrides(Cfg(), ["trian.epochs=3"])
    with pytest.raises(ConfigError) as err:
        apply_overrides(Cfg(), ["train.zzz=3"])
    assert "did you mean" not in str(err.value) and "known keys here" in str(err.value)


def test_wrong_type_named():
    with pytest.raises(ConfigError, match=r"train\.epochs.*integer"):
        apply_overrides(Cfg(), ["train.epochs=two"])
    with pytest.raises(ConfigError, match=r"train\.amp"):
        apply_overrides(Cfg(), ["train.amp=3"])
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        apply_overrides(Cfg(), ["train.epochs=2.5"])


def test_save_round_trip(tmp_path):
    cfg = apply_overrides(Cfg(), ["train.epochs=7", "data.roots.casme2=/x"])
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert yaml.safe_load(out.read_text())["train"]["epochs"] == 7
    assert load_config(Cfg, out) == cfg
    assert to_dict(cfg)["data"]["roots"] == {"casme2": "/x"}


def test_missing_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(Cfg, tmp_path / "nope.yaml")


@dataclass
class CheckedCfg:
    width: int = 1

    def __post_init__(self):
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")


@dataclass
class OuterCfg:
    model: CheckedCfg = field(default_factory=CheckedCfg)


def test_post_init_check_becomes_config_error_naming_the_section():
    with pytest.raises(ConfigError, match=r"'model' \(in command line\): width must be >= 1, got 0"):
        apply_overrides(OuterCfg(), ["model.width=0"])
    assert apply_overrides(OuterCfg(), ["model.width=3"]).model.width == 3
