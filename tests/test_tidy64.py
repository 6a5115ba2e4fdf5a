"""Session 64's tidy (behaviour unchanged): the helpers :mod:`icegan.suite` shares with :mod:`icegan.config` are
public there: ``key_within`` (one dotted key at or below another), ``keys_set_by`` and ``yaml_text``."""
from __future__ import annotations

import pytest

from icegan.config import key_within, keys_set_by, parse_override, yaml_text


@pytest.mark.parametrize("key, outer, within", [
    ("model", "model", True), ("model.epochs", "model", True), ("model.a.b", "model.a", True),
    ("model2", "model", False), ("model", "model.epochs", False), ("mod", "model", False),
])
def test_key_within(key, outer, within):
    assert key_within(key, outer) is within


def test_keys_set_by_reads_a_section_mapping_as_its_keys_and_a_list_item_whole():
    assert keys_set_by("model={epochs: 2, opt: {lr: 0.1}}") == ["model.epochs", "model.opt.lr"]
    assert keys_set_by("data.prepare.datasets.0={name: casme2}") == ["data.prepare.datasets.0"]
    assert keys_set_by("seed=[1, 2]") == ["seed"]


@pytest.mark.parametrize("text", ["{\"a\": 1.50, \"b\": [2, \"x y\", true, null]}", "0.10", "\"#not a comment\""])
def test_yaml_text_reads_back_as_written(text):
    value = parse_override(f"k={text}")[1]
    assert yaml_text(value) == text
    assert parse_override(f"k={yaml_text(value)}")[1] == value
