"""Every shipped config file loads into its command's typed config: no unknown key, no wrong type, no value its
dataclass rejects. A config that only breaks when someone runs it is a bug found too late."""
from pathlib import Path

import pytest

from icegan.config import load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _config_class(name: str):
    """The dataclass the command that reads ``name`` loads it into (the same imports as the commands)."""
    if name.startswith("features_") or name == "demo_features.yaml":
        from icegan.commands.loso import LosoConfig
        return LosoConfig
    if name == "flow_decflow.yaml":
        from flownet.models.decflow import DecFlowTrainConfig
        return DecFlowTrainConfig
    if name == "flow_selfsup.yaml":
        from flownet.selfsup import SelfSupConfig
        return SelfSupConfig
    if name.startswith("flow_"):
        from flownet.train import FlowTrainConfig
        return FlowTrainConfig
    if name.startswith("gan_"):
        from icegan.gan.trainer import GanConfig
        return GanConfig
    if name.startswith("prepare_"):
        from icegan.data.prepare import PrepareConfig
        return PrepareConfig
    if name.startswith("suite_"):
        from icegan.suite import SuiteConfig
        return SuiteConfig
    if name in ("demo.yaml", "casme2.yaml", "casme2_5class.yaml", "samm_5class.yaml", "megc2019.yaml"):
        from icegan.pipeline import MainConfig
        return MainConfig
    raise AssertionError(f"configs/{name}: no command is known to read it; add it to tests/test_configs.py")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_config_loads(path):
    cls = _config_class(path.name)
    cfg = load_config(cls, path, [])
    assert type(cfg) is cls


def test_a_config_error_names_the_key(tmp_path):
    from icegan.config import ConfigError
    from icegan.commands.loso import LosoConfig
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "features_ststnet.yaml").read_text() + "\nmodel_typo: 3\n")
    with pytest.raises(ConfigError, match="model_typo"):
        load_config(LosoConfig, bad, [])
