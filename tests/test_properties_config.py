"""Property-based tests (hypothesis) of the typed configuration (icegan/config.py, icegan/recognizer_config.py).

Each property holds for every drawn value (the "suite" profile of tests/conftest.py: the same draws every run):

* ``key=value`` overrides: every valid value of each typed field (int, float, bool, text, optional text, Literal,
  list, fixed tuple, open mapping, nested section) written as a command line writes it parses to that value; an
  integer written with leading zeros or a sign is read in base 10;
* a text key keeps the characters written, whatever YAML would make of them as a number (``007``, ``1.10``,
  ``1.5e3``, ``.5``, ``+1``, ``-0``, ``.inf``): in an override and in a config file alike;
* dump then load: :func:`save_config` then :func:`load_config` gives back the same config, for any text values;
  applying every leaf of a config as an override to the defaults gives that config;
* the error contract: an unknown key, at the top or in a section, and a value of the wrong type are refused with a
  :class:`ConfigError` naming the full dotted key;
* :func:`config_differences` after one override names exactly that key, with the old and new values;
  :func:`without_neutral_keys` drops exactly the neutral keys holding their neutral value;
* :class:`RecognizerConfig`: a numeric setting inside its documented range is kept; one outside it (NaN included)
  is refused naming ``model.<key>``, both built directly and read from a config.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Optional

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from icegan.config import (NEUTRAL_NEW_KEYS, ConfigError, apply_overrides, config_differences, load_config,
                           save_config, to_dict, without_neutral_keys)
from icegan.recognizer_config import MIXUP_ALPHA_FLOOR, RecognizerConfig


@dataclass
class Section:
    size: int = 28
    lr: float = 1e-3
    on: bool = False
    mode: Literal["none", "minmax", "median"] = "none"
    label: str = "x"
    maybe: Optional[str] = None
    subjects: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    pair: tuple[int, int] = (1, 2)
    sizes: tuple[int, ...] = ()
    roots: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    anything: Any = None


@dataclass
class Top:
    name: str = "run"
    epochs: int = 10
    data: Section = field(default_factory=Section)


#: YAML 1.1 words read as true/false/null whatever the key's type: a text key refuses them (quoted, they are text)
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}

#: texts that look like numbers (the interesting ones for a text key), and plain identifiers
numberish = st.one_of(
    st.from_regex(r"[-+]?[0-9]{1,5}(\.[0-9]{0,4})?([eE][-+]?[0-9]{1,3})?", fullmatch=True),
    st.from_regex(r"[-+]?\.[0-9]{1,4}([eE][-+]?[0-9]{1,2})?", fullmatch=True),
    st.from_regex(r"0[0-9]{1,4}", fullmatch=True),
    st.sampled_from([".inf", "-.inf", "+.inf", ".nan", ".NaN", "nan", "inf", "1e3", "1_000", "12:30", "0x1f",
                     "0o17", "0b101", "1.10", "007", "-0", "+1", "1.", "1.e5"]))
identifier = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,8}", fullmatch=True).filter(
    lambda s: s.lower() not in _YAML_WORDS)
plain_text = st.one_of(numberish, identifier)


# ---------------------------------------------------------------------------------------------------------------------
# overrides parse every valid value to that value

@given(st.integers(-10**12, 10**12), st.integers(0, 3), st.booleans())
def test_an_integer_key_reads_any_integer_in_base_10(n, zeros, plus):
    text = ("-" if n < 0 else "+" if plus else "") + "0" * zeros + str(abs(n))
    cfg = load_config(Top, None, [f"epochs={text}", f"data.seeds=[{text}, {n}]", f"data.pair=[{text}, 3]",
                                  f"data.sizes=[{text}]"])
    assert cfg.epochs == n and type(cfg.epochs) is int
    assert cfg.data.seeds == [n, n] and cfg.data.pair == (n, 3) and cfg.data.sizes == (n,)
    assert type(cfg.data.pair) is tuple and type(cfg.data.sizes) is tuple


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([repr, str, "{:.17e}".format, "{!r}".format]))
def test_a_float_key_reads_any_finite_number_exactly(x, fmt):
    cfg = load_config(Top, None, [f"data.lr={fmt(x)}"])
    assert cfg.data.lr == x and type(cfg.data.lr) is float


@given(st.integers(-10**6, 10**6), st.integers(-330, 330), st.sampled_from(["e", "E"]), st.sampled_from(["", "+"]))
def test_a_float_key_reads_an_exponent_without_a_dot_as_python_does(m, e, mark, plus):
    """1e-3, 25E+7: YAML 1.1 reads these as text; a float key reads them as float() does (refused when infinite)."""
    text = f"{m}{mark}{plus if e >= 0 else ''}{e}"
    if math.isfinite(float(text)):
        assert load_config(Top, None, [f"data.lr={text}"]).data.lr == float(text)
    else:
        with pytest.raises(ConfigError, match=r"config key 'data\.lr' .*expected a number"):
            load_config(Top, None, [f"data.lr={text}"])


@given(st.integers(-10**6, 10**6))
def test_a_float_key_reads_an_integer_as_that_float(n):
    assert load_config(Top, None, [f"data.lr={n}"]).data.lr == float(n)


@given(st.booleans(), st.sampled_from([str.lower, str.title, str.upper]))
def test_a_bool_key_reads_true_and_false(b, case):
    assert load_config(Top, None, [f"data.on={case(str(b))}"]).data.on is b


@given(st.sampled_from(["none", "minmax", "median"]))
def test_a_literal_key_reads_each_of_its_values(mode):
    assert load_config(Top, None, [f"data.mode={mode}"]).data.mode == mode


@given(plain_text, plain_text)
def test_a_text_key_keeps_the_characters_written(a, b):
    """The module docstring: a config reads only plain decimal numbers as numbers, "anything else stays the text
    written, which a text key keeps". A number written for a text key is that text too: 1.10 stays '1.10' (str(1.1)
    would drop the trailing zero), 1.5e3 stays '1.5e3', +1 stays '+1'."""
    cfg = load_config(Top, None, [f"name={a}", f"data.label={b}", f"data.maybe={a}", f"data.subjects=[{a}, {b}]",
                                  f"data.roots.k{a.replace('.', '_')}={b}"])
    assert cfg.name == a and cfg.data.label == b and cfg.data.maybe == a
    # a mapping's key is addressed by a dotted path, so it cannot hold a dot itself (k1_10 for 1.10)
    assert cfg.data.subjects == [a, b] and cfg.data.roots == {f"k{a.replace('.', '_')}": b}


@given(plain_text, plain_text)
def test_a_text_key_keeps_the_characters_written_in_a_config_file(tmp_path_factory, a, b):
    p = tmp_path_factory.mktemp("cfg") / "c.yaml"
    p.write_text(f"name: {a}\ndata:\n  label: {b}\n  subjects: [{a}, {b}]\n  roots:\n    {b}: {a}\n")
    cfg = load_config(Top, p)
    assert cfg.name == a and cfg.data.label == b and cfg.data.subjects == [a, b] and cfg.data.roots == {b: a}


@given(st.lists(st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False)), max_size=4),
       st.sampled_from(["data.extra", "data.anything"]))
def test_a_key_of_any_value_gets_plain_numbers(numbers, key):
    """A bare ``dict`` or ``Any`` key takes the value as YAML reads it, its numbers plain int and float (the text
    the loader keeps for a text key does not travel into the config)."""
    value = {f"k{i}": n for i, n in enumerate(numbers)} | {"all": list(numbers)}
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    got = getattr(load_config(Top, None, [f"{key}={text}"]).data, key.split(".")[1])
    assert got == value
    assert [type(x) for x in got["all"]] == [type(n) for n in numbers]
    assert all(type(got[f"k{i}"]) is type(n) for i, n in enumerate(numbers))


# ---------------------------------------------------------------------------------------------------------------------
# dump then load

#: any text but one that begins with ~: the loader reads ``~``, ``~/x``, ``~user/x`` as a home folder path by design
#: (icegan.config's docstring, "Paths"), so such a value does not come back as written (a draw of "~" came back /root)
any_text = st.text(max_size=12).filter(lambda t: not t.startswith("~"))


@st.composite
def tops(draw):
    """A valid :class:`Top` of drawn values (any text for its text fields)."""
    finite = st.floats(allow_nan=False, allow_infinity=False)
    sec = Section(size=draw(st.integers(-10**9, 10**9)), lr=draw(finite), on=draw(st.booleans()),
                  mode=draw(st.sampled_from(["none", "minmax", "median"])), label=draw(any_text),
                  maybe=draw(st.none() | any_text), subjects=draw(st.lists(any_text, max_size=4)),
                  seeds=draw(st.lists(st.integers(-10**6, 10**6), max_size=4)),
                  pair=(draw(st.integers(-99, 99)), draw(st.integers(-99, 99))),
                  sizes=tuple(draw(st.lists(st.integers(-99, 99), max_size=3))),
                  roots=draw(st.dictionaries(any_text, any_text, max_size=3)))
    return Top(name=draw(any_text), epochs=draw(st.integers(-10**9, 10**9)), data=sec)


@given(tops())
def test_save_then_load_gives_the_same_config(tmp_path_factory, cfg):
    p = save_config(cfg, tmp_path_factory.mktemp("cfg") / "config.yaml")
    assert load_config(Top, p) == cfg
    # to_dict is plain data, as JSON writes it (tuples as lists)
    d = to_dict(cfg)
    assert json.loads(json.dumps(d)) == d


@given(tops())
def test_every_leaf_given_as_an_override_rebuilds_the_config(cfg):
    """Each leaf of the config as ``key=<its value as YAML>`` applied to the defaults: the same config."""
    overrides = []
    for key, value in to_dict(cfg).items():
        leaves = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in leaves:
            if sub == "roots":      # an open mapping: one override per key (its keys are any text)
                overrides.append(f"{key}.{sub}={{}}")
                overrides += [f"{key}.{sub}={yaml.safe_dump({k: x}, default_flow_style=True, width=10**6).strip()}"
                              for k, x in v.items()]
                continue
            dumped = yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()
            dumped = dumped.removesuffix("\n...").strip()
            overrides.append(f"{key if sub is None else f'{key}.{sub}'}={dumped}")
    # each open-mapping item replaces the whole mapping: put it back with the last override as a whole mapping
    roots = yaml.safe_dump(cfg.data.roots, default_flow_style=True, width=10**6).strip()
    overrides.append(f"data.roots={roots}")
    assert apply_overrides(Top(), overrides) == cfg


# ---------------------------------------------------------------------------------------------------------------------
# the error contract

key_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


@given(key_names, st.sampled_from(["", "data."]), plain_text)
def test_an_unknown_key_is_refused_naming_it(name, prefix, value):
    known = {f.name for f in fields(Top if not prefix else Section)}
    assume(name not in known)
    key = f"{prefix}{name}"
    with pytest.raises(ConfigError, match=rf"unknown config key '{re.escape(key)}' in override "
                                          rf"'{re.escape(key)}={re.escape(value)}'"):
        load_config(Top, None, [f"{key}={value}"])
    with pytest.raises(ConfigError, match=rf"unknown config key '{re.escape(key)}'"):
        apply_overrides(Top(), [f"{key}={value}"])


@given(st.one_of(key_names, plain_text, st.sampled_from(["yes", "No", "on", "OFF", "true", "False", "null", "~"])),
       plain_text)
def test_an_unknown_key_in_a_file_is_refused_naming_it_and_the_file(tmp_path_factory, name, value):
    """Any key, also one YAML reads as a number (named as written) or as true/false/null (named as that value)."""
    assume(name not in {f.name for f in fields(Section)})
    read = yaml.safe_load(name)
    shown = str(read) if read is None or isinstance(read, bool) else name
    p = tmp_path_factory.mktemp("cfg") / "c.yaml"
    p.write_text(f"data:\n  {name}: {value}\n")
    with pytest.raises(ConfigError, match=rf"unknown config key 'data\.{re.escape(shown)}' in {re.escape(str(p))}"):
        load_config(Top, p)


def test_a_number_written_for_a_text_key_keeps_its_characters():
    """Found by test_a_text_key_keeps_the_characters_written: 1.10 became '1.1', 1.5e3 '1500.0', .inf 'inf', +1 '1'
    (str() of the number YAML read), in an override and in a config file; a run named 1.5e3 saved its config.yaml as
    `name: 1.5e3`, read back as '1500.0'."""
    cfg = load_config(Top, None, ["name=1.10", "data.subjects=[1.5e3, .inf, +1, -0, 2.50]", "data.maybe=.5"])
    assert cfg.name == "1.10" and cfg.data.subjects == ["1.5e3", ".inf", "+1", "-0", "2.50"]
    assert cfg.data.maybe == ".5"
    nums = load_config(Top, None, ["epochs=+7", "data.lr=1.10", "data.pair=[-0, 010]"])
    assert (nums.epochs, nums.data.lr, nums.data.pair) == (7, 1.1, (0, 10))
    assert type(nums.epochs) is int and type(nums.data.lr) is float and all(type(x) is int for x in nums.data.pair)


def test_a_text_key_saved_as_a_number_reads_back_as_the_text(tmp_path):
    p = save_config(Top(name="1.5e3", data=Section(subjects=["1.e5", ".5e3"])), tmp_path / "config.yaml")
    cfg = load_config(Top, p)
    assert cfg.name == "1.5e3" and cfg.data.subjects == ["1.e5", ".5e3"]


@pytest.mark.parametrize("key, shown", [("1", "1"), ("1.10", "1.10"), ("on", "True"), ("null", "None")])
def test_a_key_yaml_reads_as_no_text_is_refused_as_unknown(tmp_path, key, shown):
    """Found by test_an_unknown_key_in_a_file_is_refused_naming_it_and_the_file: a key YAML reads as a number,
    true/false or null (`1: x`, `on: x`) raised TypeError ('int' object is not iterable) from the spelling hint."""
    p = tmp_path / "c.yaml"
    p.write_text(f"data:\n  {key}: x\n")
    with pytest.raises(ConfigError, match=rf"unknown config key 'data\.{re.escape(shown)}'"):
        load_config(Top, p)


#: for each typed key, values of another type, written as on a command line
_WRONG = {"epochs": st.one_of(identifier, st.sampled_from(["1.5", "true", "[1]", "{a: 1}", "1e3", "0x1f"])),
          "data.size": st.one_of(st.floats(allow_nan=False).filter(lambda x: not float(x).is_integer()).map(repr),
                                 st.sampled_from(["false", "null", "[]"])),
          "data.lr": st.one_of(identifier.filter(lambda s: not re.fullmatch(r"[0-9.eE+-]+", s)),
                               # .nan and .inf are numbers (a range check refuses them where they mean nothing);
                               # 1e999 is text that overflows
                               st.sampled_from(["true", "[1.0]", "1e999", "-1e999", "null"])),
          "data.on": st.one_of(st.integers().map(str), identifier, st.sampled_from(["1.0", "[true]"])),
          "data.mode": identifier.filter(lambda s: s not in ("none", "minmax", "median")),
          "data.label": st.sampled_from(["true", "null", "[a]", "{a: b}", "no"]),
          "data.subjects": st.one_of(identifier, st.sampled_from(["{a: b}", "[[a]]", "[true]"])),
          "data.pair": st.sampled_from(["[1]", "[1, 2, 3]", "[a, 1]", "7", "[1.5, 2]"]),
          "data.roots": st.sampled_from(["[a]", "a", "{a: [b]}", "{a: true}"]),
          "data": st.sampled_from(["1", "[a]", "text"])}


@st.composite
def wrong_values(draw):
    key = draw(st.sampled_from(sorted(_WRONG)))
    return key, draw(_WRONG[key])


@given(wrong_values())
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(case):
    key, value = case
    with pytest.raises(ConfigError, match=rf"'{re.escape(key)}(\[\d+\]|\.\w+)?'"):
        load_config(Top, None, [f"{key}={value}"])


# ---------------------------------------------------------------------------------------------------------------------
# config_differences, without_neutral_keys

_ONE_SETTING = {"name": identifier, "epochs": st.integers(-99, 99), "data.size": st.integers(-99, 99),
                "data.lr": st.floats(-1e6, 1e6), "data.on": st.booleans(),
                "data.mode": st.sampled_from(["none", "minmax", "median"]), "data.label": identifier}


@given(st.sampled_from(sorted(_ONE_SETTING)), st.data())
def test_config_differences_name_exactly_the_key_overridden(key, data):
    value = data.draw(_ONE_SETTING[key])
    text = repr(value) if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
    before, after = to_dict(Top()), to_dict(load_config(Top, None, [f"{key}={text}"]))
    old = before[key] if "." not in key else before["data"][key.split(".")[1]]
    expected = [] if old == value else [(key, old, value)]
    assert config_differences(before, after) == expected
    assert config_differences(after, before) == [(k, b, a) for k, a, b in expected]


@given(st.dictionaries(st.sampled_from(sorted(NEUTRAL_NEW_KEYS)), st.booleans()),
       st.dictionaries(key_names, st.integers(), max_size=3))
def test_without_neutral_keys_drops_exactly_the_neutral_values(chosen, others):
    """A nested dict holding some NEUTRAL_NEW_KEYS (at their neutral value, or at another) and other keys: the neutral
    ones alone are dropped, the rest kept as they were."""
    d: dict = {k: v for k, v in others.items()}
    kept: dict = {k: v for k, v in others.items()}
    for path, neutral in chosen.items():
        section, _, key = path.rpartition(".")
        value = NEUTRAL_NEW_KEYS[path] if neutral else ("other", path)
        d.setdefault(section, {})[key] = value
        if not neutral:
            kept.setdefault(section, {})[key] = value
    got = without_neutral_keys(d)
    # a section left empty stays as an empty dict
    assert {k: v for k, v in got.items() if v != {}} == {k: v for k, v in kept.items() if v != {}}


# ---------------------------------------------------------------------------------------------------------------------
# RecognizerConfig ranges

_AT_LEAST = {"epochs": 1, "seeds": 1, "stem_stride": 1, "eval_every": 1, "logreg_max_iter": 1, "forest_trees": 1,
             "width": 1, "input_size": 1, "batch_size": 0, "shift_px": 0, "tta_shift_px": 0, "average_last": 0,
             "folds_per_group": 0}
_POSITIVE = ("lr", "logreg_C")
_NON_NEGATIVE = ("weight_decay", "mixup_alpha", "au_weight", "domain_adversarial", "sam_rho")
_UNIT = ("dropout", "inner_val_fraction", "scale_jitter", "label_smoothing", "ema_decay")


@st.composite
def in_range(draw):
    """(key, a value inside its documented range)."""
    kind = draw(st.sampled_from(["at_least", "positive", "non_negative", "unit"]))
    if kind == "at_least":
        key = draw(st.sampled_from(sorted(_AT_LEAST)))
        high = 27 if key in ("shift_px", "tta_shift_px") else _AT_LEAST[key] + 10**6   # shifts: below input_size 28
        return key, draw(st.integers(_AT_LEAST[key], high))
    if kind == "positive":
        return draw(st.sampled_from(_POSITIVE)), draw(st.floats(min_value=0, exclude_min=True, allow_infinity=False))
    if kind == "non_negative":
        key = draw(st.sampled_from(_NON_NEGATIVE))
        if key == "mixup_alpha":        # 0 (off) or from its floor (torch's Beta sampler is wrong below it)
            return key, draw(st.just(0.0) | st.floats(min_value=MIXUP_ALPHA_FLOOR, allow_infinity=False))
        return key, draw(st.floats(min_value=0, allow_infinity=False))
    return draw(st.sampled_from(_UNIT)), draw(st.floats(0, 1, exclude_max=True))


@st.composite
def out_of_range(draw):
    """(key, a value outside its documented range: below, NaN, infinite, or 1 and more for [0, 1))."""
    kind = draw(st.sampled_from(["at_least", "positive", "non_negative", "unit"]))
    nan = st.just(math.nan)
    if kind == "at_least":
        key = draw(st.sampled_from(sorted(_AT_LEAST)))
        return key, draw(st.integers(-10**6, _AT_LEAST[key] - 1))
    if kind == "positive":
        return draw(st.sampled_from(_POSITIVE)), draw(st.floats(max_value=0) | nan | st.just(math.inf))
    if kind == "non_negative":
        return draw(st.sampled_from(_NON_NEGATIVE)), draw(st.floats(max_value=0, exclude_max=True) | nan
                                                           | st.just(math.inf))
    return draw(st.sampled_from(_UNIT)), draw(st.floats(max_value=0, exclude_max=True) | st.just(1.0)
                                              | st.floats(min_value=1) | nan)


@given(in_range())
def test_a_recognizer_setting_inside_its_range_is_kept(case):
    key, value = case
    cfg = RecognizerConfig(**{key: value})
    assert getattr(cfg, key) == value
    # each drawn alone on the defaults (ststnet, no mixup, no average_last): no two settings that exclude each other
    cfg2 = apply_overrides(RecognizerConfig(), [f"{key}={value!r}"])
    assert getattr(cfg2, key) == value


@given(out_of_range())
def test_a_recognizer_setting_outside_its_range_is_refused_naming_it(case):
    key, value = case
    with pytest.raises(ValueError, match=rf"^model\.{key} must "):
        RecognizerConfig(**{key: value})
    text = {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan" if value != value else repr(value))
    with pytest.raises(ConfigError, match=rf"model\.{key} must "):
        apply_overrides(RecognizerConfig(), [f"{key}={text}"])


@given(st.sampled_from(["ststnet", "offtanet", "logreg", "random_forest", "gradient_boosting"]),
       st.sampled_from(["pooled", "per_dataset"]), st.booleans())
def test_every_recognizer_config_survives_dump_and_load(tmp_path_factory, name, balance, weighting):
    assume(weighting or balance == "pooled")
    cfg = RecognizerConfig(name=name, class_balance=balance, class_weighting=weighting)
    p = save_config(cfg, tmp_path_factory.mktemp("cfg") / "config.yaml")
    assert load_config(RecognizerConfig, p) == cfg

