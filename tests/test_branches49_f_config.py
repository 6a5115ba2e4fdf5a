"""Branches of icegan.config that no other test takes: a bare ``dict`` field (an open mapping of any values, like
``dict[str, X]``: a command-line override may add a key to it, and a file may set it whole), and a YAML ``!!map`` tag
on a sequence (the loader's duplicate-key check leaves it to PyYAML's own refusal, named by the config's file)."""
from dataclasses import dataclass, field
from typing import Dict, Optional

import pytest

from icegan.config import ConfigError, apply_overrides, load_config


@dataclass
class _Sub:
    bare: dict = field(default_factory=lambda: {"a": 1})
    maybe: Optional[dict] = None
    typed: Dict[str, int] = field(default_factory=lambda: {"a": 1})


@dataclass
class _Cfg:
    sub: _Sub = field(default_factory=_Sub)
    n: int = 1


@pytest.mark.parametrize("key", ["bare", "typed"])
def test_override_adds_a_key_to_a_bare_dict_as_to_a_typed_one(key):
    cfg = apply_overrides(_Cfg(), [f"sub.{key}.b=2"])
    assert getattr(cfg.sub, key) == {"a": 1, "b": 2}


def test_override_adds_a_key_to_an_optional_bare_dict_set_in_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("sub:\n  maybe: {x: [1, 2]}\n")
    cfg = load_config(_Cfg, p, ["sub.maybe.y=text"])
    assert cfg.sub.maybe == {"x": [1, 2], "y": "text"}


def test_a_bare_dict_field_keeps_the_mapping_a_file_gives_and_refuses_a_list(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("sub:\n  bare: {k: [1, 2], j: {deep: true}}\n")
    assert load_config(_Cfg, p).sub.bare == {"k": [1, 2], "j": {"deep": True}}
    p.write_text("sub:\n  bare: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"config key 'sub\.bare' \(in .*c\.yaml\): expected dict, got \[1, 2\]"):
        load_config(_Cfg, p)


def test_a_section_still_refuses_a_new_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'sub\.other'"):
        apply_overrides(_Cfg(), ["sub.other=1"])


def test_a_map_tag_on_a_sequence_is_refused_as_invalid_yaml_naming_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("n: !!map [1, 2]\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: not valid YAML: expected a mapping node, but found sequence"):
        load_config(_Cfg, p)
