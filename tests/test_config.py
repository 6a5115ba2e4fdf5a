import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

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
    with pytest.raises(ConfigError, match=r"^override 'configs/x\.yaml' must look like key=value \(e\.g\. "
                                          r"train\.epochs=10\); a config file is given as --config "
                                          r"configs/x\.yaml$"):
        apply_overrides(Cfg(), ["configs/x.yaml"])



def test_a_misspelt_key_gets_the_closest_known_one():
    """In a file, in an override and in a section name; nothing is suggested for a key unlike any known one."""
    with pytest.raises(ConfigError, match=r"'train\.epoch' in .*\(did you mean 'train\.epochs'\?\)"):
        from_yaml = {"train": {"epoch": 5}}
        from icegan.config import from_dict
        from_dict(Cfg, from_yaml, source="c.yaml")
    with pytest.raises(ConfigError, match=r"'train\.epochz' in override 'train\.epochz=3' "
                                          r"\(did you mean 'train\.epochs'\?\)"):
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
    # the bare key of the section's own check is given in full, as the shipped sections name theirs
    with pytest.raises(ConfigError, match=r"'model' \(in command line\): model\.width must be >= 1, got 0$"):
        apply_overrides(OuterCfg(), ["model.width=0"])
    assert apply_overrides(OuterCfg(), ["model.width=3"]).model.width == 3


@dataclass
class ItemCfg:
    name: str = "casme2"
    root: str = ""
    mode: str = "cropped"


@dataclass
class PrepCfg:
    datasets: List[ItemCfg] = field(default_factory=lambda: [ItemCfg(root="/a"), ItemCfg("samm", "/b", "raw")])
    max_folds: int = 0


@dataclass
class ListCfg:
    name: str = "run"
    data: PrepCfg = field(default_factory=PrepCfg)
    train: TrainCfg = field(default_factory=TrainCfg)


def test_a_list_item_is_overridden_by_its_index():
    """``data.datasets.1.root=/x`` sets one key of one item, the others kept; a list of values takes an index too."""
    cfg = apply_overrides(ListCfg(), ["data.datasets.1.root=/x", "train.seeds.0=7"])
    assert cfg.data.datasets == [ItemCfg("casme2", "/a"), ItemCfg("samm", "/x", "raw")] and cfg.train.seeds == [7]
    with pytest.raises(ConfigError, match=r"'data\.datasets\[1\]\.root' .*expected a string"):
        apply_overrides(ListCfg(), ["data.datasets.1.root=[1]"])
    with pytest.raises(ConfigError, match=r"'data\.datasets\.0\.rot' .*\(did you mean 'data\.datasets\.0\.root'\?\)"):
        apply_overrides(ListCfg(), ["data.datasets.0.rot=/x"])


@pytest.mark.parametrize("override", ["data.datasets.2.root=/x", "data.datasets.root=/x"])
def test_a_list_key_says_it_is_a_list_and_how_to_replace_it(override):
    """An index past the end (or no index) is refused with what the key is, the indices it has, and an example of
    the whole-list syntax that works (which itself parses)."""
    with pytest.raises(ConfigError) as err:
        apply_overrides(ListCfg(), [override])
    msg = str(err.value)
    assert "unknown config key" not in msg
    assert "config key 'data.datasets' in override" in msg and "is a list of 2 item(s)" in msg
    assert "(0 to 1: 'data.datasets.0.root=...')" in msg and "replace the whole list, e.g. " in msg
    example = msg.split('e.g. "')[1].split('"')[0]
    assert example == "data.datasets=[{name: casme2, root: /a}, {name: samm, root: /b}]"
    assert apply_overrides(ListCfg(), [example]).data.datasets[1] == ItemCfg("samm", "/b")     # mode: its default


def test_a_key_given_without_its_section_gets_the_nested_one():
    """``max_folds=2`` at the top names ``data.max_folds`` (the last part of a nested key, misspelt or not)."""
    with pytest.raises(ConfigError, match=r"unknown config key 'max_folds' .*\(did you mean 'data\.max_folds'\?\)"):
        apply_overrides(ListCfg(), ["max_folds=2"])
    with pytest.raises(ConfigError, match=r"unknown config key 'nope' .*\(did you mean 'train\.epochs'\?\)"):
        apply_overrides(ListCfg(), ["nope.epochs=2"])
    with pytest.raises(ConfigError, match=r"unknown config key 'epoch' .*\(did you mean 'train\.epochs'\?\)"):
        apply_overrides(ListCfg(), ["epoch=2"])


def test_a_key_of_another_section_is_named_before_a_spelling_match_here():
    """train.py's ``data.datasets=[casme2]`` (icegan loso's key) names ``data.prepare.datasets``, where train.py
    lists its datasets, not ``data.dataset`` (the SDE dataset) that a spelling match in ``data`` would give."""
    from icegan.pipeline import MainConfig
    with pytest.raises(ConfigError, match=r"unknown config key 'data\.datasets' in override "
                                          r"'data\.datasets=\[casme2\]' \(did you mean 'data\.prepare\.datasets'\?\)"):
        load_config(MainConfig, "configs/megc2019.yaml", ["data.datasets=[casme2]"])
    # a misspelling here
    with pytest.raises(ConfigError, match=r"'data\.datset' .*\(did you mean 'data\.dataset'\?\)"):
        load_config(MainConfig, "configs/megc2019.yaml", ["data.datset=casme2"])


def test_config_differences_dotted_keys_absent_and_order():
    """The leaves that differ, by dotted key (lists of mappings by index), in the first dict's order then the second's
    new keys; a missing key is ABSENT (not None: a key set to None and a missing key differ); equal dicts: none."""
    from icegan.config import ABSENT, config_differences, dotted_items
    a = {"model": {"name": "ststnet", "lr": 0.002, "extra": None}, "seed": 0,
         "members": [{"run": "r0", "weight": 1.0}, {"run": "r1", "weight": 1.0}]}
    b = {"model": {"name": "ststnet", "lr": 0.001}, "seed": 0,
         "members": [{"run": "r0", "weight": 1.0}, {"run": "r1", "weight": 2.0}], "new": {"k": [1, 2]}}
    assert dotted_items(a)["members[1].weight"] == 1.0 and dotted_items(b)["new.k"] == [1, 2]
    assert config_differences(a, b) == [("model.lr", 0.002, 0.001), ("model.extra", None, ABSENT),
                                        ("members[1].weight", 1.0, 2.0), ("new.k", ABSENT, [1, 2])]
    assert repr(ABSENT) == "(absent)" and config_differences(a, a) == [] and config_differences({}, {}) == []
    assert config_differences({"x": {}}, {"x": {"y": 1}}) == [("x", {}, ABSENT), ("x.y", ABSENT, 1)]


def test_a_top_level_check_reads_config_not_a_placeholder(tmp_path):
    """A value the top-level dataclass's own check rejects names the file and says "config", a nested one says its
    section; never the internal "<root>" placeholder."""
    from icegan.commands.loso import LosoConfig
    bad = tmp_path / "bad.yaml"
    bad.write_text("workers: -3\n")
    with pytest.raises(ConfigError) as top:
        load_config(LosoConfig, bad)
    assert str(top.value).startswith(f"config (in {bad}): workers must be >= 0") and "<root>" not in str(top.value)
    bad.write_text("model:\n  forest_trees: 0\n")
    with pytest.raises(ConfigError, match=r"^config section 'model' \(in .*bad.yaml\): "):
        load_config(LosoConfig, bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError) as listed:
        load_config(LosoConfig, bad)
    assert "<root>" not in str(listed.value), listed.value


@dataclass
class _T:
    epochs: int = 10
    lr: float = 1e-3
    name: str = "x"
    pair: Tuple[int, int] = (1, 2)


def test_a_boolean_is_not_a_number():
    """true is refused for an int or a float key, naming the key and the type it wants."""
    from icegan.config import ConfigError, apply_overrides
    with pytest.raises(ConfigError, match="epochs.*integer"):
        apply_overrides(_T(), ["epochs=true"])
    with pytest.raises(ConfigError, match="lr.*number"):
        apply_overrides(_T(), ["lr=true"])


def test_an_empty_override_is_an_empty_string():
    """name= is read as the empty string, not None (a text key that may be empty keeps it); a run's name, which is
    its folder in out_dir, is then refused by the config's own check, naming the key."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import apply_overrides
    assert apply_overrides(_T(), ["name="]).name == ""
    with pytest.raises(ConfigError, match="name must be one folder name .*not empty.*got ''"):
        apply_overrides(LosoConfig(), ["name="])


def test_a_data_root_placeholder_is_a_path_and_a_yaml_error_says_to_quote():
    """A value starting with {data_root} / {shared_data} is the path placeholder, not a YAML mapping (unquoted on the
    command line); any other unparsable value names the override and says how to quote it."""
    from pathlib import Path

    from icegan.pipeline import MainConfig
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(MainConfig, root / "configs" / "casme2.yaml", ["data.prepare.datasets.0.root={data_root}/CASME2",
                                                                     "data.prepare.datasets.0.annotations={shared_data}"])
    spec = cfg.data.prepare.datasets[0]
    assert (spec.root, spec.annotations) == ("{data_root}/CASME2", "{shared_data}")
    assert apply_overrides(_T(), ["name={data_root}"]).name == "{data_root}"
    with pytest.raises(ConfigError) as exc:
        apply_overrides(_T(), ["name=a: b: c"])
    assert str(exc.value) == ("override 'name=a: b: c': cannot parse value (mapping values are not allowed here); a "
                              "value holding YAML's special characters ({ } [ ] : # ,) as text needs quotes inside "
                              "the shell's, e.g. name='\"...\"'")


def test_a_fixed_length_tuple_checks_its_length():
    """A Tuple[int, int] key given one value is refused: expected 2 values."""
    from icegan.config import ConfigError, apply_overrides
    with pytest.raises(ConfigError, match="expected 2 values"):
        apply_overrides(_T(), ["pair=[3]"])


def test_a_config_file_that_is_not_utf8_is_named_with_the_fix(tmp_path):
    """A UTF-16 config (as PowerShell writes) is a ConfigError naming the file and saying to save it as UTF-8, not a
    raw UnicodeDecodeError; a UTF-8 file with a byte-order mark still loads."""
    path = tmp_path / "cfg.yaml"
    path.write_text("name: x\n", encoding="utf-16")
    with pytest.raises(ConfigError) as exc:
        load_config(Cfg, path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: not UTF-8 text") and "UTF-16" in msg and msg.endswith("save it as UTF-8")
    path.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at position 9\): save it as UTF-8"):
        load_config(Cfg, path)
    path.write_text("name: x\n", encoding="utf-8-sig")
    assert load_config(Cfg, path).name == "x"


def test_a_config_file_whose_top_level_is_a_list_names_the_file(tmp_path):
    """A YAML file holding a list instead of a mapping is refused naming the file."""
    path = tmp_path / "cfg.yaml"
    path.write_text("- name: x\n- seed: 1\n")
    with pytest.raises(ConfigError, match=rf"config \(in {re.escape(str(path))}\) must be a mapping of keys to "
                                          r"values, got a list: \[\{'name': 'x'\}"):
        load_config(Cfg, path)


def test_an_empty_config_file_is_refused_naming_it(tmp_path):
    """An empty file, or one of comments only (an emptied or cut-short copy), is refused naming the file instead of
    running on the defaults; '{}' is an explicit choice of the defaults."""
    for text in ("", "\n\n", "# settings to come\n  \n"):
        path = tmp_path / "cfg.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: holds no settings \(the file is empty, or "
                                              r"blank lines and comments only\): write the settings into it "
                                              r"\('\{\}' runs every key at its code default\)$"):
            load_config(Cfg, path)
    path.write_text("{}  # the defaults\n")
    assert load_config(Cfg, path) == Cfg()


def test_a_key_written_twice_in_a_config_file_is_named(tmp_path):
    """PyYAML keeps the last of two equal keys silently; a config file is refused naming the file, key and lines."""
    path = tmp_path / "cfg.yaml"
    path.write_text("name: x\ntrain:\n  epochs: 5\n  lr: 0.1\n  epochs: 7\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: key 'epochs' is written twice in one mapping "
                                          r"\(lines 3 and 5\)"):
        load_config(Cfg, path)
    path.write_text("train: {epochs: 5}\nname: x\ntrain: {lr: 0.1}\n")       # two top-level sections
    with pytest.raises(ConfigError, match=r"key 'train' is written twice in one mapping \(lines 1 and 3\)"):
        load_config(Cfg, path)
    path.write_text("train: {epochs: 5, epochs: 6}\n")                       # one line
    with pytest.raises(ConfigError, match=r"key 'epochs' is written twice in one mapping \(lines 1 and 1\)"):
        load_config(Cfg, path)
    path.write_text("train: {<<: {epochs: 5, lr: 0.5}, epochs: 6}\n")       # a merged key may be overridden
    assert (load_config(Cfg, path).train.epochs, load_config(Cfg, path).train.lr) == (6, 0.5)
    path.write_text("name: x\ntrain:\n  epochs: 5\ndata:\n  size: 28\n")     # the same key in two sections is fine
    assert load_config(Cfg, path).train.epochs == 5


def test_a_float_written_with_an_exponent_and_no_dot_is_a_number(tmp_path):
    """YAML 1.1 reads 1e8 / 1e-3 (no dot) as strings; a float key takes them as numbers, and nothing else."""
    path = tmp_path / "cfg.yaml"
    path.write_text("train:\n  lr: 1e-3\n")
    assert yaml.safe_load(path.read_text())["train"]["lr"] == "1e-3"         # what PyYAML gives
    assert load_config(Cfg, path).train.lr == 1e-3
    for text, value in (("1e8", 1e8), ("+2E-4", 2e-4), ("-.5e1", -5.0), ("3.e2", 300.0)):
        assert load_config(Cfg, None, [f"train.lr={text}"]).train.lr == value
        assert load_config(Cfg, None, [f"train.lr='{text}'"]).train.lr == value   # a quoted one too
    for text in ("nan", "inf", "'1e999'", "'1e'", "'0x10'", "'1_000'", "' 1e8'", "fast"):
        with pytest.raises(ConfigError, match=r"config key 'train.lr' \(in command line\): expected a number"):
            load_config(Cfg, None, [f"train.lr={text}"])
    with pytest.raises(ConfigError, match=r"config key 'train.epochs' .*: expected an integer, got '1e2'"):
        load_config(Cfg, None, ["train.epochs=1e2"])                       # int keys unchanged


@dataclass
class SubjectsCfg:
    holdout_subjects: List[str] = field(default_factory=list)
    name: str = "run"
    epochs: int = 10
    lr: float = 1e-3


@pytest.mark.parametrize("written, text", [("006", "006"), ("010", "010"), ("1_000", "1_000"), ("12:30", "12:30"),
                                           ("0x1f", "0x1f"), ("42", "42"), ("2.5", "2.5")])
def test_a_text_key_keeps_the_text_written(written, text, tmp_path):
    """YAML 1.1 reads 010 as the octal 8, 006 as 6, 1_000 as 1000 and 12:30 as 750 (base 60): as a subject id,
    data.holdout_subjects=[010] held out subject 8. A text key now gets the characters written, in an override and
    in a config file alike."""
    cfg = load_config(SubjectsCfg, None, [f"holdout_subjects=[{written}, sub{written}]", f"name={written}"])
    assert cfg.holdout_subjects == [text, f"sub{text}"] and cfg.name == text
    p = tmp_path / "c.yaml"
    p.write_text(f"holdout_subjects: [{written}]\nname: {written}\n")
    cfg = load_config(SubjectsCfg, p)
    assert cfg.holdout_subjects == [text] and cfg.name == text


def test_an_integer_key_reads_leading_zeros_in_base_10_and_numbers_stay_numbers():
    cfg = load_config(SubjectsCfg, None, ["epochs=010", "lr=1e-3"])
    assert cfg.epochs == 10 and cfg.lr == 0.001           # not the octal 8
    cfg = load_config(SubjectsCfg, None, ["epochs=-3", "lr=.5"])
    assert cfg.epochs == -3 and cfg.lr == 0.5
    for bad in ("epochs=1_000", "epochs=12:30", "epochs=0x1f"):     # not a plain decimal integer: refused, named
        with pytest.raises(ConfigError, match=r"config key 'epochs'.*expected an integer"):
            load_config(SubjectsCfg, None, [bad])


def test_a_key_written_twice_in_an_override_is_refused():
    with pytest.raises(ConfigError, match=r"override 'holdout_subjects=\{a: 1, a: 2\}': key 'a' is written twice"):
        load_config(SubjectsCfg, None, ["holdout_subjects={a: 1, a: 2}"])
