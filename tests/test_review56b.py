"""Review of this session's config commits: SRFlowNet layer widths of 0 (b252309 said they were refused), and the
"is a config for another command" hint, which loaded the file as every other kind of config (importing torch) for a
one-key typo."""
import dataclasses
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key, widths, index", [
    ("feature_layers", (32, 32, 48, 64, 0), 4), ("context_layers", (32, 32, 48, 64, 0), 4),
    ("feature_layers", (0, 0, 48, 64, 96), 0), ("context_layers", (32, 32, -1, 64, 128), 2)])
def test_a_layer_width_below_1_is_refused_naming_the_key_and_index(key, widths, index):
    """A width of 0 passed the config and failed inside torch's conv.py (RuntimeError, a 62-line traceback from
    `icegan flow train ... model.feature_layers=[32,32,48,64,0]`)."""
    from flownet.models.srflownet import SRFlowNetConfig
    with pytest.raises(ValueError, match=rf"^model\.{key}\[{index}\] must be >= 1, got {widths[index]}$"):
        SRFlowNetConfig(**{key: widths})


def test_layer_widths_of_1_and_the_shipped_configs_still_pass():
    from flownet.models.srflownet import SRFlowNetConfig
    assert SRFlowNetConfig(feature_layers=(1, 1, 1, 1, 1)).feature_layers == (1, 1, 1, 1, 1)
    assert SRFlowNetConfig().context_layers == (32, 32, 48, 64, 128)
    assert SRFlowNetConfig.face().feature_layers == (24, 24, 48, 48, 64)


def test_flow_train_refuses_a_zero_width_at_config_load():
    from flownet.train import FlowTrainConfig
    from icegan.config import ConfigError, load_config
    with pytest.raises(ConfigError, match=r"model\.feature_layers\[4\] must be >= 1, got 0"):
        load_config(FlowTrainConfig, ROOT / "configs" / "flow_srflownet_tvr.yaml",
                    ["model.feature_layers=[32,32,48,64,0]"])


def test_the_top_level_keys_of_each_config_kind_match_its_class():
    """The torch-free listing other_config_hint reads must follow the config classes: a field added to or removed
    from one of them fails here."""
    from icegan.commands import CONFIG_KINDS, CONFIG_TOP_KEYS
    assert set(CONFIG_TOP_KEYS) == set(CONFIG_KINDS)
    for command, (target, _) in CONFIG_KINDS.items():
        module, cls = target.split(":")
        fields = {f.name for f in dataclasses.fields(getattr(importlib.import_module(module), cls))}
        assert set(CONFIG_TOP_KEYS[command]) == fields, command


def test_a_typo_in_a_loso_config_does_not_import_torch(tmp_path):
    """`icegan loso` on its own config with one misspelt top-level key (sed: for seed:) answered in 0.18 s before
    other_config_hint, 9.4 s / 883 MB after it (it loaded the file as every other kind, importing torch). The error and
    its spelling hint are unchanged, with no 'is a config for'."""
    cfg = tmp_path / "typo.yaml"
    text = (ROOT / "configs" / "features_logreg.yaml").read_text(encoding="utf-8")
    assert "\nseed: 0\n" in text
    cfg.write_text(text.replace("\nseed: 0\n", "\nsed: 0\n"), encoding="utf-8")
    code = ("import sys, icegan.cli\n"
            f"rc = icegan.cli.main(['loso', '--config', {str(cfg)!r}, '--out', {str(tmp_path / 'o')!r}])\n"
            "print('rc', rc, 'torch' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.stdout.strip() == "rc 2 False", (out.stdout, out.stderr)
    assert "unknown config key 'sed'" in out.stderr and "did you mean 'seed'" in out.stderr, out.stderr
    assert "is a config for" not in out.stderr


def test_the_hint_still_needs_the_whole_file_to_load(tmp_path):
    """Top-level keys alone are not enough: a GAN config's keys are all keys of the self-supervised flow config, and
    a file whose top-level keys fit another kind but whose nested keys do not is no config of it."""
    from icegan.commands import config_kind, other_config_hint
    gan = ROOT / "configs" / "gan_casme2_cpu.yaml"
    assert config_kind(gan, ["icegan flow train --mode selfsup"]) is None
    assert config_kind(gan) == "icegan gan train"
    bad = tmp_path / "suite.yaml"
    bad.write_text((ROOT / "configs" / "suite_hde.yaml").read_text(encoding="utf-8") + "\nresamples: many\n",
                   encoding="utf-8")
    assert other_config_hint(bad, "icegan loso") == ""
    assert other_config_hint(ROOT / "configs" / "suite_hde.yaml", "icegan loso").endswith(
        "is a config for `icegan suite`: run icegan suite --config " + str(ROOT / "configs" / "suite_hde.yaml")
        + " --out DIR")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n", encoding="utf-8")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n", encoding="utf-8")
    assert other_config_hint(empty, "icegan loso") == other_config_hint(listing, "icegan loso") == ""
