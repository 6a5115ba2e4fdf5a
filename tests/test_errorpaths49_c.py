"""Error paths and fallback branches of the ``icegan`` command line (cli, commands/*), icegan.paths and icegan.config
that no other test reached: each test goes through the entry a user or caller uses (``icegan ...``, a config file or
override, :func:`icegan.config.from_dict`) and checks the message or the behaviour the branch exists for."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import pytest

from icegan.cli import main
from icegan.config import ConfigError, apply_overrides, from_dict, load_config
from tests._one_line_error import one_line_error

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ icegan (cli.py, commands/__init__.py)

def test_icegan_without_a_command_prints_the_help_and_exits_2(capsys):
    """``icegan`` alone: the usage and every command on stdout, exit code 2 (nothing to run)."""
    assert main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: icegan") and "loso" in out and "configs" in out


def test_a_broken_pipe_without_poll_is_taken_for_stdouts_reader_gone(monkeypatch, tmp_path):
    """Where select.poll does not exist (Windows), a BrokenPipeError that ended a command is taken for stdout's reader
    having gone: exit code 141, and stdout now writes to os.devnull (Python's flush at exit cannot fail again)."""
    import select

    from icegan.commands import stdout_closed
    out = open(tmp_path / "stdout.txt", "w")
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.delattr(select, "poll")
    try:
        assert stdout_closed(BrokenPipeError(32, "Broken pipe")) == 141
        os.write(out.fileno(), b"lost")
    finally:
        out.close()
    assert (tmp_path / "stdout.txt").read_bytes() == b""


# ------------------------------------------------------------------ icegan configs (commands/configs.py), paths.py

def test_icegan_configs_lists_a_config_without_a_header_comment_with_no_description(monkeypatch, tmp_path, capsys):
    """A config that opens with a setting, or whose comment lines are empty, is listed by its name alone; one with a
    header comment shows its first words."""
    import icegan.commands.configs as configs
    (tmp_path / "bare.yaml").write_text("name: x\n# a comment after a setting\n", encoding="utf-8")
    (tmp_path / "blank.yaml").write_text("#\n#   \n", encoding="utf-8")
    (tmp_path / "told.yaml").write_text("#\n# what it runs\nname: y\n", encoding="utf-8")
    monkeypatch.setattr(configs, "shipped_config_dir", lambda: tmp_path)
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:] == ["  bare", "  blank", "  told   what it runs"]


def _no_shipped_configs(monkeypatch, tmp_path) -> Path:
    """An icegan installed without its package data: no ``icegan/configs`` beside the package, and a repository root
    without ``configs/``. Returns that root."""
    import icegan.paths as paths
    root = tmp_path / "site"
    (root / "icegan").mkdir(parents=True)
    monkeypatch.setattr(paths, "__file__", str(root / "icegan" / "paths.py"))
    monkeypatch.setattr(paths, "REPO_ROOT", root)
    return root


def test_icegan_configs_without_shipped_configs_names_both_folders_and_the_fix(monkeypatch, tmp_path, capsys):
    root = _no_shipped_configs(monkeypatch, tmp_path)
    assert main(["configs"]) == 2
    one_line_error(capsys, "icegan configs: error: the shipped configs are in neither",
                   str(root / "icegan" / "configs"), str(root / "configs"), "reinstall it from the repository")


# ------------------------------------------------------------------ argparse types (commands/train.py)

@pytest.mark.parametrize("flag, value, message", [
    ("--workers", "two", "argument --workers: expected an integer >= 0 (0 = as many as fit), got 'two'"),
    ("--cpus-per-fold", "half", "argument --cpus-per-fold: expected a number of CPU cores > 0 (e.g. 1 or 0.5), "
                                "got 'half'")])
def test_icegan_train_refuses_a_flag_value_that_is_not_a_number(flag, value, message, capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", flag, value])
    assert done.value.code == 2
    one_line_error(capsys, message)


# ------------------------------------------------------------------ icegan prepare (commands/data.py)

def test_icegan_prepare_lists_the_clips_it_skipped_with_their_reason(monkeypatch, capsys):
    """Every skipped clip is printed with its reason, after the counts of the prepared ones."""
    import torch

    import icegan.data.prepare

    class Prepared:
        cache_dir = Path("/cache/x")
        manifest = pd.DataFrame({"dataset": ["casme2", "casme2"], "class3": [0, -1]})
        frames = type("F", (), {"onset": torch.zeros(2, 64, 64)})()
        skipped = pd.DataFrame({"key": ["casme2/sub01/EP01", "casme2/sub02/EP07"],
                                "reason": ["subject folder /d/sub01 not on disk", "no apex frame"]})

        def __len__(self):
            return 2
    monkeypatch.setattr(icegan.data.prepare, "prepare_dataset", lambda cfg: Prepared())
    assert main(["prepare", "--config", str(ROOT / "configs" / "prepare_casme2.yaml")]) == 0
    out = capsys.readouterr().out
    assert "prepared 2 clips (64x64 gray), skipped 2" in out
    assert out.endswith("  skipped casme2/sub01/EP01: subject folder /d/sub01 not on disk\n"
                        "  skipped casme2/sub02/EP07: no apex frame\n")


# ------------------------------------------------------------------ config files (config.py)

def test_a_config_file_with_a_list_as_a_key_is_named_as_invalid_yaml(tmp_path):
    """A mapping key that is a list (``? [a, b]``) passes the written-twice check and is refused by YAML itself."""
    from icegan.pipeline import MainConfig
    p = tmp_path / "odd.yaml"
    p.write_text("name: x\n? [a, b]\n: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"(?s)^{p}: not valid YAML: .*found unhashable key.*line 2"):
        load_config(MainConfig, p)


def test_a_config_file_that_is_not_yaml_is_named(tmp_path):
    from icegan.pipeline import MainConfig
    p = tmp_path / "cut.yaml"
    p.write_text("name: x\ndata: {img_size: 64\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{p}: not valid YAML: "):
        load_config(MainConfig, p)


def test_a_section_given_a_single_value_is_named(tmp_path):
    from icegan.pipeline import MainConfig
    p = tmp_path / "flat.yaml"
    p.write_text("name: x\nflow: tvl1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"config key 'flow' \(in {p}\): expected a section \(mapping\), got 'tvl1'"):
        load_config(MainConfig, p)


def test_a_list_key_given_a_single_value_is_named():
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match=r"config key 'data.amplitude' \(in command line\): expected a list, got 2"):
        load_main_config(None, ["data.amplitude=2"])


def test_an_optional_key_given_a_value_of_another_type_is_named():
    """An optional text key given a list: refused by every member of the union, the message names the union
    (NoneType included, which the value is not either)."""
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match=r"'data.dataset' \(in command line\): expected Optional\[str\], got \['a'\]"):
        load_main_config(None, ["data.dataset=[a]"])


def test_an_override_into_an_item_of_a_list_of_values_says_it_is_a_single_value():
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError) as err:
        load_main_config(None, ["data.amplitude.0.low=1"])
    assert str(err.value) == ("config key 'data.amplitude.0' in override 'data.amplitude.0.low=1' is a single value, "
                              "not a section: set it as 'data.amplitude.0=...'")


def test_a_list_index_out_of_range_shows_the_whole_list_syntax_with_its_values():
    """A list of plain values is shown whole, as flow-style YAML that the override itself accepts."""
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError) as err:
        load_main_config(None, ["data.amplitude.2=1"])
    msg = str(err.value)
    assert "is a list of 2 item(s), with no item 2" in msg and "(0 to 1: 'data.amplitude.0=...')" in msg
    example = msg.split('e.g. "')[1].split('"')[0]
    assert example == "data.amplitude=[0.5, 3.0]"
    assert load_main_config(None, [example]).data.amplitude == [0.5, 3.0]


def test_an_index_into_an_empty_list_shows_the_whole_list_syntax():
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError) as err:
        load_main_config(None, ["data.prepare.datasets.0.root=/x"])
    msg = str(err.value)
    assert "'data.prepare.datasets' in override" in msg and "is a list of 0 item(s), with no item 0" in msg
    assert "set an item by its index" not in msg and 'replace the whole list, e.g. "data.prepare.datasets=[...]"' in msg


# a config of a caller's own (from_dict and load_config take any dataclass)

@dataclass
class _Inner:
    size: int = 1
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class _Outer:
    extra: Any = None
    tags: dict[str, Any] = field(default_factory=dict)
    inner: Optional[_Inner] = None
    section: _Inner = field(default_factory=_Inner)
    names: list[str] = field(default_factory=lambda: [f"subject{i:02d}" for i in range(30)])


def test_from_dict_of_a_callers_dataclass_takes_any_value_mappings_and_sections_as_given():
    """An ``Any`` key keeps what it is given; a bare ``dict`` key takes any keys and values; a section given as an
    instance of its dataclass is kept; None builds the defaults."""
    inner = _Inner(5)
    cfg = from_dict(_Outer, {"extra": [1, "x"], "tags": {"a": [1], 2: None}, "section": inner})
    assert cfg.extra == [1, "x"] and cfg.tags == {"a": [1], "2": None} and cfg.section is inner
    assert from_dict(_Outer, None) == _Outer()
    with pytest.raises(ConfigError, match=r"config key 'tags' \(in x.yaml\): expected a mapping, got \[1\]"):
        from_dict(_Outer, {"tags": [1]}, source="x.yaml")


def test_overrides_of_a_callers_dataclass_refuse_new_keys_below_a_value_and_in_an_optional_section():
    """A new key is taken by a mapping key, also one inside an optional section; not by a value of an ``Any`` key,
    nor by the optional section itself."""
    cfg = _Outer(extra={"a": {"b": 1}}, inner=_Inner())
    assert apply_overrides(cfg, ["tags.new=1"]).tags == {"new": 1}
    with pytest.raises(ConfigError, match=r"unknown config key 'extra.a.c' in override 'extra.a.c=2'"):
        apply_overrides(cfg, ["extra.a.c=2"])
    with pytest.raises(ConfigError, match=r"unknown config key 'inner.width' in .*here: \['labels', 'size'\]"):
        apply_overrides(cfg, ["inner.width=2"])
    assert apply_overrides(cfg, ["inner.size=3", "inner.labels.new=4"]).inner == _Inner(3, {"new": 4})


# missing config files: the hint when the shipped configs are missing, or elsewhere

def test_a_missing_config_of_an_install_without_shipped_configs_is_named_without_a_hint(monkeypatch, tmp_path):
    """No shipped configs (an install without its package data): the missing file is named, not the shipped configs'
    own error (which `icegan configs` gives)."""
    from icegan.pipeline import MainConfig
    _no_shipped_configs(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        load_config(MainConfig, "configs/demo.yaml")
    assert str(err.value) == "config file not found: configs/demo.yaml"


def test_a_misspelt_shipped_config_of_an_install_gets_the_shipped_name(monkeypatch, tmp_path):
    """An installed icegan (no checkout), a README path with a typo from a folder without configs/: the closest name
    among the shipped configs."""
    import icegan.paths as paths
    from icegan.pipeline import MainConfig
    shipped = paths.shipped_config_dir()
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "site")
    monkeypatch.setattr(paths, "shipped_config_dir", lambda: shipped)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        load_config(MainConfig, "configs/demo_featurs.yaml")
    assert str(err.value) == (f"config file not found: configs/demo_featurs.yaml; did you mean "
                              f"{shipped / 'demo_features.yaml'}?")


def test_a_missing_config_in_a_missing_absolute_folder_is_named_alone(tmp_path):
    from icegan.pipeline import MainConfig
    p = tmp_path / "nowhere" / "run.yaml"
    with pytest.raises(FileNotFoundError) as err:
        load_config(MainConfig, p)
    assert str(err.value) == f"config file not found: {p}"


@dataclass
class _SelfChecked:
    mode: str = "a"

    def __post_init__(self):
        if self.mode not in ("a", "b"):
            raise ConfigError(f"mode={self.mode!r}: choose a or b (see x.yaml)")


def test_a_config_error_of_a_sections_own_check_is_kept_as_written():
    """A ``__post_init__`` that raises ConfigError has written the whole message: it is not prefixed with the section
    again (a ValueError of such a check is: tests/test_config.py)."""
    with pytest.raises(ConfigError) as err:
        from_dict(_SelfChecked, {"mode": "c"}, prefix="model.", source="run.yaml")
    assert str(err.value) == "mode='c': choose a or b (see x.yaml)"


def test_a_long_list_of_values_is_shown_whole_in_the_whole_list_syntax():
    """The example of a long list of values is the whole list (a list of sections is cut to its first item), so that
    the example itself is a value the key takes."""
    with pytest.raises(ConfigError) as err:
        apply_overrides(_Outer(), ["names.30=x"])
    example = str(err.value).split('e.g. "')[1].split('"')[0]
    assert len(example) > 160 and example == "names=[" + ", ".join(_Outer().names) + "]"
    assert apply_overrides(_Outer(), [example]) == _Outer()
