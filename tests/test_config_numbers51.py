"""Numeric config settings are held to the standard of the numeric CLI flags (icegan.commands._numbers): every int
and float field of every config section reachable from the top-level configs that load_config reads (the main job,
icegan loso, the suite, the supervised / self-supervised / DecFlow flow trainers, icegan gan, icegan prepare) is
found by walking the dataclasses, and set by an override on a shipped config: NaN and +-inf are refused with a
ValueError (ConfigError) naming the key, and so is a negative value where it means nothing (counts, sizes, rates,
weights, budgets). A field added later without a check fails this sweep, unless it is put on an allow-list below
with the reason."""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

import pytest

from flownet.models.decflow import DecFlowTrainConfig
from flownet.selfsup import SelfSupConfig
from flownet.train import FlowTrainConfig
from icegan.commands.loso import LosoConfig
from icegan.config import SEED_MAX, ConfigError, load_config
from icegan.data.prepare import PrepareConfig
from icegan.gan.trainer import GanConfig
from icegan.pipeline import MainConfig
from icegan.recognizer_config import MIXUP_ALPHA_FLOOR, RecognizerConfig
from icegan.suite import SuiteConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: each top-level config class given to load_config, with a shipped config of it whose optional sections and lists
#: are filled (so that the fields below them are reached)
TOPS = [(MainConfig, "casme2.yaml"), (LosoConfig, "features_ststnet.yaml"),
        (SuiteConfig, "suite_composite_selection.yaml"), (FlowTrainConfig, "flow_srflownet_fdr.yaml"),
        (SelfSupConfig, "flow_selfsup.yaml"), (DecFlowTrainConfig, "flow_decflow.yaml"), (GanConfig, "gan_casme2.yaml"),
        (PrepareConfig, "prepare_casme2.yaml")]

#: float keys where NaN or inf is deliberately accepted (a documented meaning such as "no limit"): none today. Every
#: budget in minutes means "no limit" at 0, not at inf.
NON_FINITE_OK: dict[str, str] = {}

#: int / float keys (by their last part) where a negative value is deliberately accepted when loading, with the reason
NEGATIVE_OK = {
    "permute_labels": "icegan loso's data.permute_labels: -1 (the default) = off, >= 0 = the permutation's seed",
}
#: full keys whose negative value is refused when the run starts, before its folder is made, with that check's
#: message (tests/test_flow_train_prestart.py pins it), not when the config is loaded
NEGATIVE_AT_START = {"SelfSupConfig:train.eval_every": "flownet.train.check_intervals in train_selfsup"}
#: full keys that the shipped config's data source never reads (refused as unread whatever their value): the
#: overrides that make them read, so that the value is what is tested
READ_WITH = {"LosoConfig:data.toy_subjects": ["data.source=toy"]}


def _bare(tp):
    """``tp`` without None (``Optional[float]``, ``float | None`` → ``float``); a union of several kinds as is."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _numeric_fields(obj, prefix: str = ""):
    """``(dotted key, int | float)`` of every number field of the config dataclass ``obj`` and of its sections (and of
    the first item of a list of sections), reached through the values of ``obj``."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        tp, value, key = _bare(hints[f.name]), getattr(obj, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            yield from _numeric_fields(value, key + ".")
        elif get_origin(tp) in (list, tuple) and value and dataclasses.is_dataclass(value[0]):
            yield from _numeric_fields(value[0], key + ".0.")
        elif tp in (int, float):
            yield key, tp
        elif get_origin(tp) in (Union, types.UnionType):
            kinds = {_bare(a) for a in get_args(tp)} - {type(None)}
            assert all(get_origin(a) is Literal for a in kinds - {int, float}), (key, tp)   # a new kind of field
            # Union[Literal['auto', 'native'], int] (flow.input_size) has its own check: 'auto', 'native' or >= 8


def _cases(kind):
    out = []
    for cls, name in TOPS:
        cfg = load_config(cls, CONFIGS / name)
        out += [pytest.param(cls, name, key, id=f"{cls.__name__}:{key}")
                for key, tp in _numeric_fields(cfg) if tp is kind or kind is None]
    return out


FLOAT_CASES = _cases(float)
NUMBER_CASES = _cases(None)


def _refused(cls, name, key, value) -> str:
    with pytest.raises(ValueError) as info:
        load_config(cls, CONFIGS / name, [*READ_WITH.get(f"{cls.__name__}:{key}", []), f"{key}={value}"])
    msg = str(info.value)
    for part in key.split("."):               # the section(s) and the key itself are named
        assert part.isdigit() or part in msg, (key, msg)
    return msg


def test_the_sweep_reaches_the_sections_of_every_top_level_config():
    keys = {p.id for p in NUMBER_CASES}
    for must in ("MainConfig:data.prepare.margin", "MainConfig:recognizer.mixup_alpha", "LosoConfig:model.lr",
                 "FlowTrainConfig:train.reg_weight", "FlowTrainConfig:liteflownet2.flow_scale",
                 "FlowTrainConfig:raft.iters",
                 "SelfSupConfig:loss.eps", "SelfSupConfig:data.n_items", "DecFlowTrainConfig:train.w_head",
                 "DecFlowTrainConfig:model.hidden", "GanConfig:loss.lambda_adv", "SuiteConfig:selection.inner_folds",
                 "PrepareConfig:margin"):
        assert must in keys
    assert len(FLOAT_CASES) > 100


@pytest.mark.parametrize("cls, name, key", FLOAT_CASES)
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_float_setting_refuses_nan_and_inf_naming_its_key(cls, name, key, value):
    if key in NON_FINITE_OK:
        pytest.skip(NON_FINITE_OK[key])
    _refused(cls, name, key, value)


@pytest.mark.parametrize("cls, name, key", NUMBER_CASES)
def test_a_number_setting_refuses_a_negative_value_naming_its_key(cls, name, key):
    if key.split(".")[-1] in NEGATIVE_OK or f"{cls.__name__}:{key}" in NEGATIVE_AT_START:
        load_config(cls, CONFIGS / name, [f"{key}=-1"])           # still taken, as documented
        return
    msg = _refused(cls, name, key, "-1")
    assert "-1" in msg


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_still_loads(path):
    """The new checks refuse no value a shipped config holds."""
    loaded = []
    for cls in {c for c, _ in TOPS}:
        try:
            load_config(cls, path)
            loaded.append(cls)
        except ConfigError:
            pass
    assert loaded, path


# ---------------------------------------------------------------------------------------------------------------------
# float | None and str | None fields (PEP 604) are checked as Optional[...] is

@pytest.mark.parametrize("override, words", [("train.reg_weight=abc", ["train.reg_weight", "expected", "abc"]),
                                             ("train.reg_weight=.nan", ["reg_weight", "finite"]),
                                             ("data.root=[1]", ["data.root", "expected"])])
def test_a_pep604_optional_field_is_type_checked(override, words):
    with pytest.raises(ConfigError) as info:
        load_config(FlowTrainConfig, CONFIGS / "flow_srflownet_fdr.yaml", [override])
    for w in words:
        assert w in str(info.value)


def test_a_pep604_optional_field_keeps_its_valid_values():
    cfg = load_config(FlowTrainConfig, CONFIGS / "flow_srflownet_fdr.yaml",
                      ["train.reg_weight=0.05", "train.init_weights=null", "data.root=/data/x"])
    assert cfg.train.reg_weight == 0.05 and cfg.train.init_weights is None and cfg.data.root == "/data/x"
    assert load_config(FlowTrainConfig, None, ["train.reg_weight=null"]).train.reg_weight is None


# ---------------------------------------------------------------------------------------------------------------------
# model.mixup_alpha: a floor below which torch's Beta sampler is wrong


def test_torch_beta_returns_one_half_for_tiny_alpha_and_not_at_the_floor():
    """Why the floor: Beta(α, α) for small α puts its mass near 0 and 1, yet torch returns exactly 0.5 for part of
    the rows below about 0.003 (measured: about a quarter at 0.001); at the floor no row of 20000 is."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tiny = torch.distributions.Beta(torch.tensor(0.001), torch.tensor(0.001)).sample((20000,))
    assert (tiny == 0.5).float().mean() > 0.1
    a = torch.tensor(MIXUP_ALPHA_FLOOR)
    floor = torch.distributions.Beta(a, a).sample((20000,))
    assert (floor == 0.5).sum() == 0


@pytest.mark.parametrize("alpha", [1e-300, 0.001, 0.003, 0.0099])
def test_mixup_alpha_below_the_floor_is_refused(alpha):
    with pytest.raises(ValueError, match=r"model\.mixup_alpha must be 0 \(off\) or at least 0\.01.*λ = 0\.5"):
        RecognizerConfig(mixup_alpha=alpha)
    with pytest.raises(ConfigError, match=r"recognizer\.mixup_alpha must be 0 \(off\) or at least 0\.01"):
        load_config(MainConfig, CONFIGS / "demo.yaml", [f"recognizer.mixup_alpha={alpha}"])


@pytest.mark.parametrize("alpha", [0.0, MIXUP_ALPHA_FLOOR, 0.2, 0.4, 50.0])
def test_mixup_alpha_off_or_from_the_floor_is_taken(alpha):
    assert RecognizerConfig(mixup_alpha=alpha).mixup_alpha == alpha


def test_a_negative_mixup_alpha_keeps_its_message():
    with pytest.raises(ValueError, match=r"model\.mixup_alpha must be a finite number >= 0 \(0 = off\), got -0\.2"):
        RecognizerConfig(mixup_alpha=-0.2)


# ---------------------------------------------------------------------------------------------------------------------
# seeds: what numpy and scikit-learn take


@pytest.mark.parametrize("cls, name, key", [(LosoConfig, "features_randomforest.yaml", "seed"),
                                            (MainConfig, "casme2.yaml", "seed"),
                                            (GanConfig, "gan_casme2.yaml", "train.seed")])
def test_an_icegan_seed_outside_what_numpy_and_scikit_learn_take_is_refused_at_load(cls, name, key):
    """seed=-1 with the random forest loaded, read every feature map and stopped in the first fold with scikit-learn's
    'random_state ... must be an int in the range [0, 4294967295]' (numpy's default_rng refuses it too)."""
    for bad in ("-1", str(SEED_MAX + 1)):
        with pytest.raises(ConfigError, match=rf"{re.escape(key)} must be a seed in \[0, 4294967295\].*got {bad}"):
            load_config(cls, CONFIGS / name, [f"{key}={bad}"])
    for good in (0, SEED_MAX):
        cfg = load_config(cls, CONFIGS / name, [f"{key}={good}"])
        assert cfg.train.seed == good if cls is GanConfig else cfg.seed == good


def test_suite_seeds_outside_what_numpy_and_scikit_learn_take_are_refused():
    with pytest.raises(ConfigError, match=r"seeds must be in \[0, 4294967295\].*got \[-1\]"):
        load_config(SuiteConfig, CONFIGS / "suite_composite_selection.yaml", ["seeds=[0,-1]"])
    assert load_config(SuiteConfig, CONFIGS / "suite_composite_selection.yaml", ["seeds=[0,3]"]).seeds == [0, 3]


@pytest.mark.parametrize("cls, name, key", [(FlowTrainConfig, "flow_srflownet_fdr.yaml", "train.seed"),
                                            (FlowTrainConfig, "flow_srflownet_fdr.yaml", "data.seed"),
                                            (SelfSupConfig, "flow_selfsup.yaml", "train.seed"),
                                            (SelfSupConfig, "flow_selfsup.yaml", "data.seed"),
                                            (DecFlowTrainConfig, "flow_decflow.yaml", "train.seed")])
def test_a_flow_seed_below_zero_is_refused_at_load(cls, name, key):
    """numpy's SeedSequence (the flow trainers' crops, shuffles and noise) takes no negative seed."""
    with pytest.raises(ConfigError, match=rf"{re.escape(key)} must be >= 0, got -1"):
        load_config(cls, CONFIGS / name, [f"{key}=-1"])


@pytest.mark.parametrize("cls, name, override, key", [
    (FlowTrainConfig, "flow_liteflownet2.yaml", "liteflownet2.level_loss_weights=[0.3,.nan,0.1,0.1,0.1]",
     "liteflownet2.level_loss_weights"),
    (FlowTrainConfig, "flow_liteflownet2.yaml", "liteflownet2.level_loss_weights=[0.3,-1,0.1,0.1,0.1]",
     "liteflownet2.level_loss_weights"),
    (SelfSupConfig, "flow_selfsup.yaml", "loss.report_alpha2=[0.5,-.inf]", "loss.report_alpha2")])
def test_a_list_of_weights_refuses_a_non_finite_or_negative_item(cls, name, override, key):
    """The sweep above reaches number fields only; these lists of weights took NaN, inf and negative items."""
    with pytest.raises(ConfigError, match=rf"{re.escape(key)} must hold finite numbers >= 0, got \["):
        load_config(cls, CONFIGS / name, [override])
