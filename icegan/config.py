"""Typed experiment configuration: dataclasses loaded from YAML, overridden by ``key=value``.

Every experiment section (LOSO, data, GAN, flow, main job) is a ``@dataclass`` whose fields carry
type annotations and defaults. :func:`load_config` reads a YAML file into such a dataclass, then
applies command-line overrides written as dotted keys (``train.epochs=2``,
``model.name=ststnet``, ``data.prepare.size=64``); a number picks one item of a list
(``data.prepare.datasets.0.root=/data/CASME2``), a list given as a value replaces the whole list
(``"data.prepare.datasets=[{name: casme2, root: /data/CASME2}]"``), and a mapping given for a section is merged
into it (``"model={epochs: 3}"``: the section's other keys keep their value). Values are parsed as YAML scalars
(``2`` → int, ``1e-3`` → float, ``true`` → bool, ``[1, 2]`` → list, ``null`` → None) and then checked
against the annotation.

Paths: a text value that starts with ``~/`` (or ``~user/``, or is ``~``) is read with that home folder in its place,
as a shell would (:func:`icegan.paths.expand_home`), in a file and in an override alike (the shell leaves the ``~``
of ``data.root=~/CASME2`` alone): ``root: ~/datasets/CASME2`` is the folder in your home, and no folder named ``~``
is made for ``out_dir: ~/runs``. Nothing else of a value is expanded: ``$HOME`` stays those characters in a file
(the shell expands it on a command line, unless quoted), and ``{data_root}`` / ``{shared_data}`` are replaced where
a dataset root is read.

Errors: an unknown key, or a value of the wrong type, raises :class:`ConfigError` whose message
names the full dotted key, the file it came from (if any), and what was expected. Nothing is
silently ignored.

The resolved configuration is written back with :func:`save_config` into every run directory
(``runs/<name>/config.yaml``) so a run can always be reproduced with
``--config runs/<name>/config.yaml``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, TypeVar, Union, get_args, get_origin

import yaml

from flownet.user_numbers import INTEGER_TEXT, NUMBER_TEXT, SEED_MAX, is_ascii_digits
from icegan.paths import expand_home

T = TypeVar("T")

__all__ = ["SEED_MAX", "ConfigError", "load_config", "apply_overrides", "from_dict", "to_dict", "save_config",
           "NEUTRAL_NEW_KEYS", "without_neutral_keys", "check_ranges", "where_set",
           "parse_override", "override_key", "refuse_repeated_keys"]


class ConfigError(ValueError):
    """A configuration key is unknown, malformed, or has a value of the wrong type."""


class _DuplicateKey(Exception):
    """A key written twice in one YAML mapping (raised by :class:`_UniqueKeyLoader`, named by :func:`load_config`)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping: PyYAML keeps the last value silently, so a
    setting written twice (an edit that added a key already set further up) would be half ignored. A merge key
    (``<<``) is not a duplicate: the keys it brings in may be overridden, as YAML intends."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:            # an unhashable key: SafeLoader's own error says so
                    continue
                if first is not None:
                    raise _DuplicateKey(f"key {key!r} is written twice in one mapping (lines {first} and {line}); "
                                        f"YAML would keep only the last value: remove one")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"

# YAML 1.1 (PyYAML) reads 010 as the octal 8, 006 as 6, 1_000 as 1000 and 12:30 as the base-60 750: a subject id or
# clip name written that way would silently become another text (data.holdout_subjects=[010] would hold out
# subject 8). A config reads only plain decimal numbers as numbers; anything else stays the text written, which a
# text key keeps and an integer key reads in base 10 (:func:`_coerce`).
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_UniqueKeyLoader.add_implicit_resolver(_INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_UniqueKeyLoader.add_implicit_resolver(
    _FLOAT_TAG, re.compile(r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
                           r"|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))


class _Int(int):
    """An integer as a config's YAML reads it, with the characters written (``text``: ``+1``, ``-0``)."""


class _Float(float):
    """A number with a dot as a config's YAML reads it, with the characters written (``text``: ``1.10``, ``1.5e3``,
    ``.inf``): a text key keeps them, where ``str`` of the number would drop a trailing zero or write 1500.0."""


def _number_with_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    """The int or float of a plain number ``node``, carrying the text written (:func:`_coerce` of a text key reads it;
    every other key gets a plain int or float: :func:`_plain`)."""
    if node.tag == _INT_TAG:
        value: Any = _Int(yaml.SafeLoader.construct_yaml_int(loader, node))
    else:
        value = _Float(yaml.SafeLoader.construct_yaml_float(loader, node))
    value.text = str(node.value)
    return value


_UniqueKeyLoader.add_constructor(_INT_TAG, _number_with_text)
_UniqueKeyLoader.add_constructor(_FLOAT_TAG, _number_with_text)


def _plain(value: Any) -> Any:
    """``value`` with every number read by :func:`_yaml_value` made a plain int or float (in lists and mappings
    too), for a key that takes the value as it is (``Any``, a bare ``dict``)."""
    if isinstance(value, _Int):
        return int(value)
    if isinstance(value, _Float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def yaml_text(value: object) -> str:
    """``value`` (as :func:`parse_override` reads it) written as YAML flow text that reads back the
    same: a number as it was written, a text in double quotes, lists and mappings in brackets and braces."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yaml_text(str(k))}: {yaml_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (_Int, _Float)):
        return value.text
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)      # JSON's "..." is YAML's


def _yaml_value(text: str) -> Any:
    """``text`` read as a config's YAML reads it (:class:`_UniqueKeyLoader`: plain decimal numbers only, a key
    written twice refused)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def override_text(key: str, value: str) -> str:
    """The override ``key=value`` that :func:`apply_overrides` reads back as the text ``value`` exactly: ``value`` as
    it is when it is read so (``runs/x/features.csv``, ``{data_root}/x``), else in YAML's double quotes (a path
    holding `` #``, ``[``, ``: ``, or one YAML would read as a number or a boolean). For a command line the project
    prints, quote the result for the shell too (``shlex.quote``)."""
    if value.strip() == value and value.startswith(PATH_PLACEHOLDERS):
        return f"{key}={value}"              # read as it is, never as YAML
    try:
        plain = value != "" and _yaml_value(value) == value
    except yaml.YAMLError:
        plain = False
    return f"{key}={value}" if plain else f"{key}={json.dumps(value, ensure_ascii=False)}"   # JSON: YAML's "..."


def _type_name(tp: Any) -> str:
    """How a config message names the typing construct ``tp`` (``Optional[str]``, ``Union[...]``)."""
    return str(tp).replace("typing.", "")


#: how to keep a YAML 1.1 word (on, no...) as text: in a file and on a command line (inside the shell's quotes)
_QUOTE_WORD = """: quote it, e.g. "on" in a file, '"on"' on a command line (quotes inside the shell's)"""


def _yaml_word_note(value: Any, what: str, fix: str = "") -> str:
    """`` (YAML reads the <what> written as yes/no, on/off or true/false as True, not as text<fix>)``: why a config
    message shows ``value`` (a bool, or None: ``null or ~``) that the user wrote as a word; ``what`` is ``key`` or
    ``value``, ``fix`` what to do about it (``: quote it...``)."""
    words = "null or ~" if value is None else "yes/no, on/off or true/false"
    return f" (YAML reads the {what} written as {words} as {value!r}, not as text{fix})"


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against annotation ``tp`` and convert lossless cases (int → float, list → tuple)."""
    where = f" (in {source})" if source else ""
    origin = get_origin(tp)
    if tp is Any:
        return _plain(value)
    if origin in (Union, types.UnionType):        # Optional[float] and float | None alike
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:           # NoneType too: its check below refuses the value (not None here)
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:    # try the next member of the union; none fits: the message below names the union
                pass
        raise ConfigError(f"config key '{key}'{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            texts = isinstance(value, bool) and any(isinstance(a, str) for a in get_args(tp))
            note = _yaml_word_note(value, "value", _QUOTE_WORD) if texts else ""
            raise ConfigError(
                f"config key '{key}'{where}: {value!r} is not one of {list(get_args(tp))}{note}")
        return _plain(value)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}'{where}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(
                    f"config key '{key}'{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}'{where}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, key, source): _coerce(v, vt, f"{key}.{k}", source) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}'{where}: expected a section (mapping), got {value!r}")
        return from_dict(tp, value, prefix=key + ".", source=source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key '{key}'{where}: expected true/false, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # a plain decimal or scientific literal of ASCII digits (no nan/inf: YAML writes those .nan/.inf; no ١.٥,
        # which float() reads and YAML does not, as an integer key refuses ١): the rule of typed numbers
        if isinstance(value, str) and NUMBER_TEXT.fullmatch(value) and math.isfinite(float(value)):
            return float(value)    # 1e8, 1e-3: YAML 1.1 reads an exponent without a dot as a string
        raise ConfigError(f"config key '{key}'{where}: expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and INTEGER_TEXT.fullmatch(value):
            return int(value, 10)  # 010: leading zeros, read in base 10 (a config reads them as text, not octal)
        raise ConfigError(f"config key '{key}'{where}: expected an integer, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            try:
                return expand_home(value, f"config key '{key}'{where}")     # the one rule of paths written as text
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # a subject id written as 42: the characters written (1.10 stays '1.10', not str(1.1); 006 and 010 are
            # read as text: _UniqueKeyLoader)
            return getattr(value, "text", None) or str(value)
        note = _yaml_word_note(value, "value", _QUOTE_WORD) if isinstance(value, bool) else ""
        raise ConfigError(f"config key '{key}'{where}: expected a string, got {value!r}{note}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return _plain(value)
        raise ConfigError(f"config key '{key}'{where}: expected {tp.__name__}, got {value!r}")
    return _plain(value)


def check_ranges(cfg: Any, section: str = "", *, at_least: dict[str, int] | None = None, positive: Iterable[str] = (),
                 non_negative: Iterable[str] = (), unit_interval: Iterable[str] = (),
                 seeds: Iterable[str] = ()) -> None:
    """Refuse numeric settings of the dataclass ``cfg`` outside the range where they mean something, for a
    ``__post_init__``. A setting that is None (an optional one left unset) is not checked; NaN fails every check.

    Args:
        cfg: the dataclass instance.
        section: its dotted config section (``gan``, ``train``...; "" for the top level), to name a key as
            ``<section>.<key>``.
        at_least: key → smallest allowed value (e.g. ``{"epochs": 1}``).
        positive: keys that must be finite and > 0 (learning rates, budgets).
        non_negative: keys that must be finite and >= 0 (loss weights; 0 = off).
        unit_interval: keys that must lie in [0, 1) (Adam's betas, decays).
        seeds: keys that must be seeds numpy and scikit-learn take, in [0, :data:`SEED_MAX`] (a negative seed
            stopped a run at its first numpy or scikit-learn draw, e.g. a random forest's ``random_state``).

    Raises:
        ValueError: the first setting out of range, naming its dotted key, the range and the value.
    """
    pre = f"{section}." if section else ""
    checks = [(k, lambda v, low=low: v >= low, f">= {low}") for k, low in (at_least or {}).items()]
    checks += [(k, lambda v: v > 0 and math.isfinite(v), "a finite number > 0") for k in positive]
    checks += [(k, lambda v: v >= 0 and math.isfinite(v), "a finite number >= 0") for k in non_negative]
    checks += [(k, lambda v: 0 <= v < 1, "in [0, 1)") for k in unit_interval]
    checks += [(k, lambda v: 0 <= v <= SEED_MAX, f"a seed in [0, {SEED_MAX}] (numpy and scikit-learn take no other)")
               for k in seeds]
    for key, ok, what in checks:
        value = getattr(cfg, key)
        if value is not None and not ok(value):
            raise ValueError(f"{pre}{key} must be {what}, got {value}")


def _nest_hint(name: str, value: Any) -> str:
    """`` (a dotted key is written so only in a key=value override: in YAML nest it, model: {epochs: 3})`` for the
    key ``name`` written with dots (``model.epochs``) where a nested mapping was meant; ``value``: its value."""
    shown = getattr(value, "text", None)            # a number as written (_Int, _Float)
    if shown is None:
        try:
            shown = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
        except yaml.YAMLError:                      # a mapping or list holding numbers as written
            shown = "..."
    parts = name.split(".")
    flow = ": {".join(parts) + f": {shown}" + "}" * (len(parts) - 1)
    return f" (a dotted key is written so only in a key=value override: in YAML nest it, {flow})"


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type[T], data: dict, prefix: str = "", source: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, rejecting unknown keys by their dotted name.

    Raises:
        ConfigError: unknown key, missing required key, a value of the wrong type, or a value the
            dataclass's own ``__post_init__`` check rejects (its message is kept).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = f" (in {source})" if source else ""
        got = repr(data)
        got = got if len(got) <= 80 else got[:77] + "..."
        raise ConfigError(f"{_section(prefix)}{where} must be a mapping of keys to values, got a "
                          f"{type(data).__name__}: {got}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = f" in {source}" if source else ""
        # a key YAML read as a number, true/false (on, yes...) or null is named as text (difflib takes text only)
        bad = unknown[0]
        name = bad if isinstance(bad, str) else getattr(bad, "text", None) or str(bad)
        quote = _yaml_word_note(bad, "key") if bad is None or isinstance(bad, bool) else ""
        hint = _nest_hint(name, data[bad]) if name.split(".")[0] in fields else did_you_mean(name, fields, prefix)
        raise ConfigError(f"unknown config key '{prefix}{name}'{where}{quote}{hint}; known keys here: "
                          f"{sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], prefix + name, source)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # a required field without default, or a __post_init__ check
        where = f" (in {source})" if source else ""
        msg = str(exc)
        # check_ranges of a section that does not know where it is loaded (PrepareConfig: the top level of `icegan
        # prepare`, data.prepare of train.py) names its key bare: give the dotted key, as every other section does
        if prefix and any(msg.startswith(f"{name} must be ") for name in fields):
            msg = prefix + msg
        raise ConfigError(f"{_section(prefix)}{where}: {msg}") from None


def _section(prefix: str) -> str:
    """How a message names the config section at dotted ``prefix``: ``config section 'model'``, or ``config`` for the
    top level."""
    return f"config section '{prefix.rstrip('.')}'" if prefix else "config"


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config dataclass (tuples become lists), suitable for YAML/JSON."""
    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    return conv(cfg)


#: config keys added after runs and caches were made, with the value that reproduces what the older code did
#: exactly (each only switches on something new). A saved run or cache key that lacks one of them is the same
#: experiment as one holding that value (:func:`without_neutral_keys`). Keys whose default changed behaviour
#: (e.g. ``flow.input_size``) must never be listed here.
NEUTRAL_NEW_KEYS: dict[str, Any] = {"model.module": "", "recognizer.module": "", "flow.module": "",
                                    "data.table": None, "data.normalize": "none",
                                    "data.train_subject_fraction": 1.0,
                                    "model.subject_weighting": False, "recognizer.subject_weighting": False,
                                    "model.rotate_deg": 0.0, "recognizer.rotate_deg": 0.0,
                                    "model.scale_jitter": 0.0, "recognizer.scale_jitter": 0.0,
                                    "gan.synthetic_weight": 1.0, "gan.amp": True,
                                    "model.label_smoothing": 0.0, "recognizer.label_smoothing": 0.0,
                                    "model.ema_decay": 0.0, "recognizer.ema_decay": 0.0,
                                    "model.au_weight": 0.0, "recognizer.au_weight": 0.0,
                                    "model.domain_adversarial": 0.0, "recognizer.domain_adversarial": 0.0,
                                    "data.annotations": None,
                                    "model.noise_filter": "none", "recognizer.noise_filter": "none",
                                    "model.cutout_px": 0, "recognizer.cutout_px": 0,
                                    "model.sam_rho": 0.0, "recognizer.sam_rho": 0.0,
                                    "model.class_balance": "pooled", "recognizer.class_balance": "pooled",
                                    "data.labels": "megc2019"}


def without_neutral_keys(d: dict, prefix: str = "") -> dict:
    """A copy of a nested config dict without the :data:`NEUTRAL_NEW_KEYS` that hold their neutral value, so that it
    compares (and hashes) equal to the same config saved before those keys existed. ``prefix``: the dotted path of
    ``d`` itself (``"flow."`` for a flow section given alone). A whole config (``prefix`` "") whose ``data.source``
    is ``prepared`` holds ``data.prepare.size`` = ``data.img_size`` and ``data.prepare.color`` = ``gray``, the
    values its faces are prepared at (the main job, ``icegan gan train``): an older run's ``config.yaml`` records
    the section's defaults there (128, gray) and is the same experiment."""
    data = d.get("data") if not prefix else None
    if (isinstance(data, dict) and data.get("source") == "prepared" and isinstance(data.get("prepare"), dict)
            and "img_size" in data):
        d = {**d, "data": {**data, "prepare": {**data["prepare"], "size": data["img_size"], "color": "gray"}}}
    out = {}
    for k, v in d.items():
        path = f"{prefix}{k}"
        if path in NEUTRAL_NEW_KEYS and v == NEUTRAL_NEW_KEYS[path]:
            continue
        out[k] = without_neutral_keys(v, path + ".") if isinstance(v, dict) else v
    return out


class _Absent:
    """The value of a key that one side of :func:`config_differences` lacks; reads ``(absent)``."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


def dotted_items(d: Any, prefix: str = "") -> dict[str, Any]:
    """The leaves of a nested config dict by dotted key, in the dict's order: ``{"model.name": "ststnet", ...}``;
    a list of mappings by index (``members[1].model.name``), any other list as one value; an empty mapping below the
    top as one value."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(dotted_items(v, f"{prefix}.{k}" if prefix else str(k)))
        return out if out or not prefix else {prefix: d}
    if isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        out = {}
        for i, v in enumerate(d):
            out.update(dotted_items(v, f"{prefix}[{i}]"))
        return out
    return {prefix: d}


def config_differences(a: dict, b: dict) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every leaf that differs between two nested config dicts, in
    ``a``'s key order and then the keys only ``b`` has; a key one side lacks holds :data:`ABSENT` there (so that a
    key set to None and a missing key differ). Used to say how two runs' configs or recipes differ."""
    fa, fb = dotted_items(a), dotted_items(b)
    keys = list(fa) + [k for k in fb if k not in fa]
    return [(k, fa.get(k, ABSENT), fb.get(k, ABSENT)) for k in keys if fa.get(k, ABSENT) != fb.get(k, ABSENT)]


#: the path placeholders of the data roots (replaced when a dataset root is read): an override value that starts
#: with one is a path, taken as text
PATH_PLACEHOLDERS = ("{data_root}", "{shared_data}")


#: the overrides :func:`parse_override`'s error shows when it is not told the config's (keys of train.py and loso)
OVERRIDE_EXAMPLE = "seed=1 or data.labels=megc2019"


def override_example(data: dict) -> str:
    """Overrides that apply to the config whose nested dict (:func:`to_dict`) is ``data``, for the message of an
    override that is no ``key=value``: the keys of :data:`OVERRIDE_EXAMPLE` the config has (``seed=1``,
    ``data.labels=megc2019``), else its first integer key inside a section with its value (``train.epochs=10``), else
    its first integer key, else its first text key (``name=run``), else :data:`OVERRIDE_EXAMPLE`."""
    leaves = {k: v for k, v in dotted_items(data).items() if "[" not in k}     # members[0].x is no override's key
    known = [f"{k}={v}" for k, v in (x.split("=") for x in OVERRIDE_EXAMPLE.split(" or ")) if k in leaves]
    if known:
        return " or ".join(known)
    ints = [k for k, v in leaves.items() if isinstance(v, int) and not isinstance(v, bool)]
    key = next((k for k in ints if "." in k), ints[0] if ints else None)
    if key is not None:
        return f"{key}={leaves[key]}"
    text = next((k for k, v in leaves.items() if isinstance(v, str)), None)
    return override_text(text, leaves[text]) if text is not None else OVERRIDE_EXAMPLE


def parse_override(item: str, example: str = OVERRIDE_EXAMPLE) -> tuple[str, Any]:
    """The dotted key and the value of the override ``item`` (``key=value``), as :func:`apply_overrides` sets it and
    :func:`where_set` reads it: the key stripped; the value read as YAML (:func:`_yaml_value`), except a value that
    begins with a path placeholder (``{data_root}/x``, :data:`PATH_PLACEHOLDERS`: the text, stripped) and an empty
    one (``""``). Only the first ``=`` splits (``a=b=c``: key ``a``, value ``b=c``). ``example``: the overrides the
    error of an ``item`` without ``=`` shows (:func:`override_example` of the config it is for).

    Raises:
        ConfigError: no ``=`` (says how an override looks, and that a config file is given as ``--config``), a key
            written twice in a mapping value, a value YAML cannot parse (says how to quote YAML's special
            characters), or one holding `` #`` outside quotes, which YAML cuts as a comment (``out_dir=runs #2``
            would be ``runs``: says how to quote it); each names the override.
    """
    if "=" not in item:
        # a config file given without --config (`train.py configs/casme2.yaml`) is the likeliest such slip
        hint = f"; a config file is given as --config {item}" if item.lower().endswith((".yaml", ".yml")) else ""
        raise ConfigError(f"override '{item}' must look like key=value (e.g. {example}){hint}")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        if raw.strip().startswith(PATH_PLACEHOLDERS):   # a path: '{data_root}/x' is no YAML mapping
            return key, raw.strip()
        value = _yaml_value(raw) if raw.strip() != "" else ""
        if re.search(r"\s#", raw) and raw.count("#") > repr(value).count("#"):     # ' #...' cut as a comment
            import shlex
            raise ConfigError(f"override '{item}': YAML reads ' #' and what follows as a comment, which would leave "
                              f"{value!r}: to keep the '#', quote the value inside the shell's quotes, e.g. "
                              f"{shlex.quote(override_text(key, raw.strip()))}")
        return key, value
    except _DuplicateKey as exc:
        raise ConfigError(f"override '{item}': {exc}") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"override '{item}': cannot parse value ({first}); a value holding YAML's special "
                          f"characters ({{ }} [ ] : # ,) as text needs quotes inside the shell's, e.g. "
                          f"{key}='\"...\"'") from None


def override_key(item: str) -> str:
    """The dotted key of the override ``item`` (``key=value``), stripped: the text before its first ``=`` (all of
    ``item`` when it has none), as :func:`parse_override` reads it."""
    return item.split("=", 1)[0].strip()


def keys_set_by(item: str) -> list[str]:
    """The dotted keys override ``item`` sets as :func:`apply_overrides` applies it: a section mapping sets each key
    it holds; anything else, or any value for a list item, sets the key whole."""
    try:
        key, value = parse_override(item)
    except ConfigError:
        return [override_key(item)]
    if is_ascii_digits(key.split(".")[-1]):
        return [key]
    # dotted_items gives the items of a list of mappings as key[i]...: an override sets such a list whole
    return list(dict.fromkeys(k.split("[", 1)[0] for k in dotted_items(value, key)))


def key_within(key: str, outer: str) -> bool:
    """Whether the dotted ``key`` is ``outer`` itself or a key below it (``model.epochs`` is within ``model``,
    ``model2`` is not)."""
    return key == outer or key.startswith(outer + ".")


def refuse_repeated_keys(overrides: Iterable[str]) -> None:
    """Refuse two overrides that set one key, or a key and a section or list holding it (:func:`keys_set_by`).

    Raises:
        ConfigError: the first key set twice (of two overlapping keys, the one further down), naming both overrides.
    """
    given: list[tuple[str, str]] = []       # (key set, the override that set it)
    for item in overrides:
        if "=" not in item:
            continue
        keys = keys_set_by(item)
        for key in keys:
            for old, old_item in given:
                if key_within(key, old) or key_within(old, key):
                    inner = key if len(key) >= len(old) else old
                    raise ConfigError(f"config key '{inner}' is set twice on one command line ('{old_item}' and "
                                      f"'{item}'): give it once")
        given += [(key, item) for key in keys]


def apply_overrides(cfg: T, overrides: Iterable[str]) -> T:
    """Return a copy of ``cfg`` with ``key=value`` overrides applied (dotted keys for nested sections; a number
    picks an item of a list, ``data.prepare.datasets.0.root=/x``). A mapping given for a section is merged into it
    (``model={forest_trees: 50}`` sets that key; the section's other keys keep their value, from the file or the
    default); a mapping for a dict-typed field (an open mapping) and a list replace the old value whole.

    Raises:
        ConfigError: malformed override (no ``=``), unknown key, a key below a single value (``seed.x=1``: says it
            is a single value, not a section), a list index out of range, or wrong value type;
            a value holding `` #`` outside quotes (YAML's comment: ``out_dir=runs #2`` would be ``runs``). An
            unknown key is answered with the closest known one: in its own section, else any key of the config
            whose last part is alike (``max_folds`` → ``data.max_folds``).
    """
    data = to_dict(cfg)
    for item in overrides:
        # no '=': refused with an example of this config's keys
        key, value = parse_override(item) if "=" in item else parse_override(item, override_example(data))
        node = data
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                node = node[_list_index(node, parts, i, item)]
                continue
            if isinstance(node, dict) and part in node and node[part] is None:      # e.g. weights: null
                path, whole = ".".join(parts[:i + 1]), "[...]" if is_ascii_digits(parts[i + 1]) else "{...}"
                raise ConfigError(f"config key '{path}' in override '{item}' is null (unset), with no item or key "
                                  f"'{parts[i + 1]}' to set: set it whole, e.g. \"{path}={whole}\"")
            if isinstance(node, dict) and part in node and not isinstance(node[part], (dict, list)):
                raise _not_a_section(".".join(parts[:i + 1]), item)    # a known key with no keys below it
            if not isinstance(node, dict) or part not in node or not isinstance(node[part], (dict, list)):
                # a section or a list (data.prepare.datasets): both have items below them
                sections = [k for k, v in node.items() if isinstance(v, (dict, list))] if isinstance(node, dict) else []
                hint = did_you_mean(part, sections, _dotted(parts[:i])) or _did_you_mean_nested(parts[-1], data)
                known = f"; known keys here: {sorted(node)}" if isinstance(node, dict) else ""
                raise ConfigError(f"unknown config key '{'.'.join(parts[:i + 1])}' in override '{item}'{hint}{known}")
            node = node[part]
        if isinstance(node, list):
            node[_list_index(node, parts, len(parts) - 1, item)] = value
            continue
        if not isinstance(node, dict):
            raise _not_a_section(".".join(parts[:-1]), item)
        if parts[-1] not in node:
            # a dict-typed field (dict[str, float], a bare dict) accepts new keys; dataclass sections do not
            if not _is_open_mapping(type(cfg), parts[:-1]):
                # a key of this exact name in another section first (train.py's data.datasets is
                # data.prepare.datasets, not the SDE data.dataset that a spelling match would name)
                hint = (_did_you_mean_nested(parts[-1], data, exact=True, cls=type(cfg))
                        or did_you_mean(parts[-1], node, _dotted(parts[:-1]))
                        or _did_you_mean_nested(parts[-1], data))
                raise ConfigError(f"unknown config key '{key}' in override '{item}'{hint}; known keys here: "
                                  f"{sorted(node)}")
        # a mapping for a section is merged into it (keys not named keep their value)
        node[parts[-1]] = _merge_section(type(cfg), parts[:-1], node, {parts[-1]: value})[parts[-1]]
    return from_dict(type(cfg), data, source="command line")


def _not_a_section(path: str, item: str) -> ConfigError:
    """The error for override ``item`` naming a key below ``path``, a known key that holds a single value."""
    return ConfigError(f"config key '{path}' in override '{item}' is a single value, not a section: "
                       f"set it as '{path}=...'")


def _merge_section(cls: type, parts: list[str], old: dict, new: dict) -> dict:
    """The section ``old`` (the dict of the dataclass section at the dotted path ``parts`` of config class ``cls``)
    with the mapping ``new`` of an override merged in: a key of ``new`` replaces its value, a sub-section given as a
    mapping is merged the same way, and the keys ``new`` does not name keep their value. A dict-typed field (an open
    mapping, :func:`_is_open_mapping`) and a list given in ``new`` replace the old value whole. Unknown keys are kept
    for :func:`from_dict` to refuse."""
    out = dict(old)
    for k, v in new.items():
        sub = [*parts, str(k)]
        if isinstance(out.get(k), dict) and isinstance(v, dict) and not _is_open_mapping(cls, sub):
            v = _merge_section(cls, sub, out[k], v)
        out[k] = v
    return out


def _list_index(items: list, parts: list[str], i: int, item: str) -> int:
    """The list index ``parts[i]`` of an override into ``items`` (the value of the key ``parts[:i]``).

    Raises:
        ConfigError: not a number of ASCII digits (``²``, ``١`` are none), or out of range; the message says that the
            list can also be replaced whole, with the syntax that does it.
    """
    part, path = parts[i], ".".join(parts[:i])
    index = is_ascii_digits(part)       # not isdigit(): int() refuses '²' and reads '١' as 1
    if index and int(part) < len(items):
        return int(part)
    negative = part.startswith("-") and is_ascii_digits(part[1:])         # -1: Python's last item, meant as an index
    tail = ".".join(parts[i + 1:] if part.isdigit() or negative else parts[i:])   # isdigit: ² and ١ too, as indices
    what = (f"with no item {part}" if index else f"and '{part}' is no index (ASCII digits 0-9)" if part.isdigit()
            else f"and negative indices ('{part}') are not accepted" if negative else "not a section")
    n = len(items)
    by_index = (f"set an item by its index ({'0' if n == 1 else f'0 to {n - 1}'}: '{path}.0{'.' + tail if tail else ''}"
                f"=...'), or " if items else "")
    defaults = " (keys left out of an item take their defaults)" if _dict_items(items) else ""
    raise ConfigError(f"config key '{path}' in override '{item}' is a list of {n} item(s), {what}: {by_index}replace "
                      f"the whole list, e.g. \"{path}={_list_example(items)}\"{defaults}")


def _dict_items(items: list) -> bool:
    return any(isinstance(x, dict) for x in items)


def _list_example(items: list) -> str:
    """A short flow-style YAML example of a value for a list (its present items, each cut to its first
    two keys, e.g. ``[{name: casme2, root: ...}]``)."""
    if not items:
        return "[...]"
    if not _dict_items(items):
        return yaml.safe_dump(list(items), default_flow_style=True, width=10**6).strip()
    cut = [{k: v for k, v in list(x.items())[:2]} if isinstance(x, dict) else x for x in items]
    dump = lambda x: yaml.safe_dump(x, default_flow_style=True, width=10**6, sort_keys=False).strip()
    text = dump(cut)
    return text if len(text) <= 160 or len(cut) == 1 else dump(cut[:1])[:-1] + ", ...]"


def did_you_mean(name: str, known: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean 'epochs'?)`` for the closest known name to a misspelt ``name`` (difflib), else ``""``: config
    keys, and the dataset an SDE run stays within. ``prefix``: the dotted section the names are keys of (``model.``),
    put before the suggestion so that a nested key is named as it is typed (``'model.epochs'``)."""
    import difflib
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def _dotted(parts: list[str]) -> str:
    """The dotted prefix of the config section ``parts`` (``model.``; ``""`` at the top level)."""
    return "".join(f"{p}." for p in parts)


def _did_you_mean_nested(name: str, data: dict, exact: bool = False, cls: Any = None) -> str:
    """`` (did you mean 'data.max_folds'?)``: the dotted keys anywhere in the nested config ``data`` whose last part
    is the closest to ``name`` (difflib), at most three, else ``""``. ``exact``: only keys whose last part is
    ``name`` itself. ``cls``: the config dataclass of ``data``; given, the keys of the items of a list of sections
    are named too, with ``N`` for the index (``data.prepare.datasets.N.root``); lists are not entered otherwise."""
    import difflib
    paths: dict[str, list[str]] = {}

    def walk(node: dict, prefix: str, tp: Any) -> None:
        hints = _hints(tp) if dataclasses.is_dataclass(tp) else {}
        for k, v in node.items():
            paths.setdefault(str(k), []).append(prefix + str(k))
            item = (get_args(hints.get(k)) or [None])[0] if get_origin(hints.get(k)) is list else None
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.", hints.get(k))
            elif dataclasses.is_dataclass(item):      # a list of sections: its items' keys, at index N
                walk({f.name: None for f in dataclasses.fields(item)}, f"{prefix}{k}.N.", item)
    walk(data, "", cls)
    close = ([name] if name in paths else []) if exact else difflib.get_close_matches(name, list(paths), n=1,
                                                                                       cutoff=0.75)
    if not close:
        return ""
    found = [f"'{p}'" for p in paths[close[0]]][:3]
    return f" (did you mean {' or '.join(found)}?)"


def _is_open_mapping(cls: type, parts: list[str]) -> bool:
    """Whether the config key ``parts`` (dotted path split) of dataclass ``cls`` is a mapping an override may add new
    keys to: a ``dict[K, V]`` / ``Dict[K, V]`` field, or a bare ``dict`` field (an open mapping of any values); a
    dataclass section, a list or a single value is not."""
    tp: Any = cls
    for part in parts:
        if get_origin(tp) in (list, tuple) and is_ascii_digits(part):
            args = get_args(tp)
            tp = args[0] if args else Any
            continue
        if not dataclasses.is_dataclass(tp):
            return False
        tp = _hints(tp).get(part)
        if get_origin(tp) in (Union, types.UnionType):
            tp = next(a for a in get_args(tp) if a is not type(None))
    return tp is dict or get_origin(tp) is dict


def _missing_config_hint(p: Path) -> str:
    """What a config path that is not there may have meant: the shipped config of that name when the path is
    relative to another folder than the repository's (or, for an installed icegan without a checkout, when it names
    a shipped config: ``configs/demo_features.yaml`` as the README writes it), or the nearest names in its folder (a
    typo)."""
    import difflib

    from icegan.paths import REPO_ROOT, shipped_config_dir
    try:
        shipped_dir = shipped_config_dir()
    except FileNotFoundError:
        shipped_dir = None
    names_shipped = shipped_dir is not None and not p.is_absolute() and p.parent in (Path("configs"), Path("."))
    if not p.is_absolute():
        shipped = REPO_ROOT / p
        if not shipped.is_file() and names_shipped:
            shipped = shipped_dir / p.name
        if shipped.is_file():
            return (f" (relative to {Path.cwd()}); the shipped config of that name is {shipped}: give that path, "
                    f"or `icegan configs {shipped.stem} > {shipped.name}` for a copy of your own to edit")
    folder = p.parent if p.parent.is_dir() else (REPO_ROOT / p.parent if not p.is_absolute() else None)
    if (folder is None or not folder.is_dir()) and names_shipped:
        folder = shipped_dir
    if folder is None or not folder.is_dir():
        return ""
    stems = {f.stem: f for f in sorted(folder.glob("*.y*ml"))}
    close = difflib.get_close_matches(p.stem, list(stems), n=2, cutoff=0.8)
    shown = [str(p.parent / stems[c].name) if folder == p.parent else str(stems[c]) for c in close]
    return f"; did you mean {' or '.join(shown)}?" if close else ""


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Load ``cls`` from YAML file ``path`` (defaults when None), then apply ``overrides``.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ConfigError: a file that is not UTF-8 text, empty (or comments only), invalid YAML, a key written twice in
            one mapping, a top level that is not a mapping, unknown key or wrong type (the message names the file,
            and the key where there is one).
    """
    data: dict = {}
    source = ""
    if path is not None:
        p = Path(path)
        if p.is_dir():
            yamls = sorted(q.name for q in p.glob("*.yaml"))[:5]
            raise FileNotFoundError(f"config file {p} is a folder, not a YAML file" + (
                f": give one of its files, e.g. {p / yamls[0]} (it holds {', '.join(yamls)})" if yamls else ""))
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}{_missing_config_hint(p)}")
        source = str(p)
        try:
            data = _yaml_value(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            utf16 = p.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
            raise ConfigError(f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position {exc.start}"
                              f"{'; it is UTF-16, as PowerShell and Notepad may save' if utf16 else ''}): save it as "
                              f"UTF-8") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        except _DuplicateKey as exc:
            raise ConfigError(f"{p}: {exc}") from None
        if data is None:        # an emptied or cut-short copy would otherwise run a whole job on the defaults
            raise ConfigError(f"{p}: holds no settings (the file is empty, or blank lines and comments only): write "
                              f"the settings into it ('{{}}' runs every key at its code default)")
    cfg = from_dict(cls, data, source=source)
    return apply_overrides(cfg, overrides)


def _value_at(node: Any, parts: list[str]) -> Any:
    """The value below the keys ``parts`` of the nested mapping ``node``, or :data:`ABSENT` where one is missing."""
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return ABSENT
        node = node[part]
    return node


def file_value(key: str, path: str | Path) -> Any:
    """The value the YAML file ``path`` gives the dotted config ``key`` (``data.img_size``), as written (not
    coerced to the field's type: a section as a dict), or :data:`ABSENT` when the file lacks it. Call it after
    :func:`load_config` has read ``path`` (its errors are raised there)."""
    return _value_at(_yaml_value(Path(path).read_text(encoding="utf-8")), key.split("."))


def where_set(key: str, path: str | Path | None = None, overrides: Iterable[str] = ()) -> str | None:
    """Where the dotted config ``key`` (``data.prepare.size``) was given a value by :func:`load_config`'s ``path``
    and ``overrides``: ``"command line"`` (an override of the key, or of a section above it whose mapping holds it),
    else the file ``path`` (as text) when it holds the key, else None (the key keeps its code default). An override
    of a section above the key with a mapping without the key leaves it where it was set (:func:`apply_overrides`
    merges a mapping into a section); ``key`` is a key of dataclass sections, not one inside a dict-typed field (which
    a mapping replaces whole). Call it after :func:`load_config` has read the same ``path`` and ``overrides`` (their
    errors are raised there)."""
    parts = key.split(".")

    where = None
    if path is not None and file_value(key, path) is not ABSENT:
        where = str(path)
    for item in overrides:
        try:
            name, value = parse_override(item)      # as apply_overrides reads it
        except ConfigError:                         # refused by load_config: no value
            name, value = override_key(item), None
        given = name.split(".")
        if given != parts[:len(given)]:
            continue
        if len(given) == len(parts):
            where = "command line"
            continue
        if _value_at(value, parts[len(given):]) is not ABSENT:
            where = "command line"
        elif not isinstance(value, dict):           # the section replaced by a single value (null): no such key
            where = None
    return where


def config_yaml(cfg: Any) -> str:
    """The resolved config as YAML, as :func:`save_config` writes it (``--print-config`` of the commands)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML to ``path`` (parents created) and return the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(config_yaml(cfg), encoding="utf-8")
    return p
