"""A main-job config's data.prepare.size / color that the run would replace (it prepares its faces at data.img_size,
in gray) is refused at load, naming the key; `icegan features` prints its next commands with every path
quoted for the shell."""
from __future__ import annotations

import logging
import shlex
from pathlib import Path

import pytest
from _prepared import fake_prepared

from icegan.cli import main
from icegan.config import ConfigError, where_set
from icegan.pipeline import load_main_config

MAIN_CONFIGS = ["configs/casme2.yaml", "configs/casme2_5class.yaml", "configs/demo.yaml", "configs/megc2019.yaml",
                "configs/samm_5class.yaml"]


@pytest.mark.parametrize("overrides, words", [
    (["data.prepare.size=128"], ["data.prepare.size=128", "given as an override", "data.img_size=64",
                                 "set data.img_size=128"]),
    (["data.prepare.color=rgb"], ["data.prepare.color=rgb", "given as an override", "gray",
                                  "set data.prepare.color=gray"]),
    (["data.img_size=128", "data.prepare.size=64"], ["data.prepare.size=64", "data.img_size=128"]),
    # a whole section given on the command line: its size is the user's too
    (["data.prepare={datasets: [{name: casme2, root: /x}], size: 32}"], ["data.prepare.size=32",
                                                                           "set data.img_size=32"]),
    # a section mapping given after the size is merged into the section: the size stays the user's
    (["data.prepare.size=32", "data.prepare={datasets: [{name: casme2, root: /x}]}"], ["data.prepare.size=32",
                                                                                        "given as an override"]),
    # a size data.img_size cannot take: the fix named is one load_main_config accepts
    (["data.prepare.size=100"], ["data.prepare.size=100", "a power of two >= 32"]),
])
def test_a_prepare_size_or_color_the_run_replaces_is_refused(overrides, words):
    """train.py prepared the faces at data.img_size, in gray, whatever data.prepare said, and recorded the user's
    size and color in the run's config.yaml as if they had been used."""
    with pytest.raises(ConfigError) as err:
        load_main_config("configs/casme2.yaml", ["device=cpu", *overrides])
    for word in words:
        assert word in str(err.value)
    assert "set data.img_size=100" not in str(err.value) and "on the command line" not in str(err.value)


@pytest.mark.parametrize("overrides", [
    [],                                                 # the code default (128) untouched at data.img_size=64
    ["data.img_size=128", "data.prepare.size=128"],     # the run's own size
    ["data.prepare.color=gray"],
    ["data.prepare={datasets: [{name: casme2, root: /x}]}"],   # a section mapping without size: the size untouched
])
def test_the_run_s_own_values_and_an_untouched_default_load(overrides, caplog):
    with caplog.at_level(logging.WARNING, logger="icegan.pipeline"):
        cfg = load_main_config("configs/casme2.yaml", ["device=cpu", *overrides])
    assert "data.prepare" not in caplog.text
    assert cfg.data.source == "prepared"


def _user_config(tmp_path: Path, prepare_lines: str) -> Path:
    text = Path("configs/casme2.yaml").read_text(encoding="utf-8")
    p = tmp_path / "mine.yaml"
    p.write_text(text.replace("    workers: 2\n", f"    workers: 2\n{prepare_lines}"), encoding="utf-8")
    return p


def test_a_differing_value_in_a_file_is_refused_naming_the_file(tmp_path):
    p = _user_config(tmp_path, "    color: rgb\n")
    with pytest.raises(ConfigError) as err:
        load_main_config(p, ["device=cpu"])
    assert "data.prepare.color=rgb" in str(err.value) and str(p) in str(err.value)
    p = _user_config(tmp_path, "    size: 32\n")
    with pytest.raises(ConfigError, match="data.prepare.size=32 .*set data.img_size=32"):
        load_main_config(p, ["device=cpu"])


def test_the_default_size_written_in_a_file_loads_quietly(tmp_path, caplog):
    """An older run's config.yaml records data.prepare.size: 128 (the default) for a run at 64 pixels: a file's 128
    cannot be told from a value the user wrote, and reproducing a run from its config.yaml loads without a warning (a
    run folder's own config.yaml too, which records the size used: 64)."""
    p = _user_config(tmp_path, "    size: 128\n")
    with caplog.at_level(logging.WARNING, logger="icegan.pipeline"):
        cfg = load_main_config(p, ["device=cpu"])
    assert cfg.data.img_size == 64 and cfg.data.prepare.size == 64
    from icegan.config import save_config
    save_config(cfg, tmp_path / "run_config.yaml")
    with caplog.at_level(logging.WARNING, logger="icegan.pipeline"):
        again = load_main_config(tmp_path / "run_config.yaml", ["device=cpu"])
    assert again == cfg and "data.prepare" not in caplog.text


@pytest.mark.parametrize("path", MAIN_CONFIGS)
def test_every_shipped_main_config_loads_without_a_prepare_warning(path, caplog):
    with caplog.at_level(logging.WARNING, logger="icegan.pipeline"):
        load_main_config(path, ["device=cpu"])
    assert "data.prepare" not in caplog.text


def test_every_shipped_suite_still_plans(tmp_path):
    """The train runs of the suites load the shipped main configs with their overrides (load_main_config)."""
    from icegan.suite import load_suite, plan_suite
    suites = sorted(Path("configs").glob("suite_*.yaml"))
    assert suites
    for path in suites:
        assert plan_suite(load_suite(path), path, tmp_path / path.stem, ["device=cpu"]), path


@pytest.mark.parametrize("overrides, without_file, with_file", [
    ([], None, "FILE"),
    (["data.prepare.size=64"], "command line", "command line"),
    (["data.prepare={size: 64}"], "command line", "command line"),
    (["data={prepare: {size: 64}}"], "command line", "command line"),
    (["data.prepare={workers: 1}"], None, "FILE"),      # a mapping is merged into the section: the file's size stays
    (["data.prepare.sizes=1"], None, "FILE"),
    (["data.prepare.workers=1"], None, "FILE"),
])
def test_where_set(tmp_path, overrides, without_file, with_file):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  prepare:\n    size: 32\n", encoding="utf-8")
    assert where_set("data.prepare.size", None, overrides) == without_file
    assert where_set("data.prepare.size", p, overrides) == (str(p) if with_file == "FILE" else with_file)
    assert where_set("data.prepare.color", p, overrides) is None


def test_the_printed_commands_keep_an_out_folder_with_spaces_whole(monkeypatch, tmp_path, capsys):
    """--out "feat é s": the printed `icegan loso ... data.table=<path>` and `icegan predict --table <path>` were
    split by the shell at the spaces when pasted."""
    fake_prepared(monkeypatch, [0, 1, -1, 2, 0, 1, 2, -1])
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset\np,a,v,1\n")          # the fake cache stands for its clips
    out = tmp_path / "x y" / "feat é s"
    assert main(["features", "--config", "configs/casme2.yaml", "--clips", str(csv), "--out", str(out),
                 "--no-progress", "device=cpu", "flow.method=farneback"]) == 0
    printed = capsys.readouterr().out.splitlines()
    loso = next(x for x in printed if x.startswith("run a recognizer on the labelled ones: ")).split(": ", 1)[1]
    words = shlex.split(loso)
    assert words[:2] == ["icegan", "loso"] and f"data.table={out / 'features_labelled.csv'}" in words
    assert words[-2:] == ["protocol=SDE", "dataset=clips"]
    predict = next(x for x in printed if "icegan predict" in x).split("score them with ", 1)[1]
    words = shlex.split(predict.split(" (", 1)[0])
    assert words[words.index("--table") + 1] == str(out / "features.csv")


@pytest.mark.parametrize("folder", ["take #2", "[old]", "a: b", "true", "feat é s", "plain"])
def test_the_printed_loso_command_reads_back_the_table_path_exactly(monkeypatch, tmp_path, capsys, folder):
    """The value of data.table=... is read as YAML after the shell: an --out folder "take #2" became
    data.table='.../take' (YAML comment), "[old]" a list, "a: b" a mapping. The printed override, split by the
    shell and applied as icegan loso applies it, gives the table's path exactly; a plain path prints unquoted."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import apply_overrides
    fake_prepared(monkeypatch, [0, 1, -1, 2, 0, 1, 2, -1])
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset\np,a,v,1\n")
    out = tmp_path / folder
    assert main(["features", "--config", "configs/casme2.yaml", "--clips", str(csv), "--out", str(out),
                 "--no-progress", "device=cpu", "flow.method=farneback"]) == 0
    printed = capsys.readouterr().out.splitlines()
    loso = next(x for x in printed if x.startswith("run a recognizer on the labelled ones: ")).split(": ", 1)[1]
    overrides = [w for w in shlex.split(loso.replace("runs/<name>", "runs/x")) if "=" in w]
    cfg = apply_overrides(LosoConfig(), overrides)
    assert cfg.data.table == str(out / "features_labelled.csv") and cfg.data.source == "table"
    if folder == "plain":
        assert f" data.table={out / 'features_labelled.csv'} " in loso


@pytest.mark.parametrize("value", ["runs/x/features.csv", "take #2/f.csv", "[old]", "a: b", "true", "1e3",
                                   "{data_root}/x.csv", " lead", "null", "é"])
def test_override_text_round_trips(value):
    """override_text gives an override that apply_overrides reads back as the same text."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import apply_overrides, override_text
    assert apply_overrides(LosoConfig(), ["data.source=table", override_text("data.table", value)]).data.table == value
    if value == "runs/x/features.csv":
        assert override_text("data.table", value) == "data.table=runs/x/features.csv"


def test_the_release_list_hint_names_a_root_that_reads_back_whole(tmp_path):
    """The MEGC2019 release's list given as a feature table, in a folder "take #2 [x]": the data.root= override the
    error names reads back as that folder (it was printed bare: YAML read '.../take' and a comment; found by review)."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import apply_overrides
    from icegan.data.feature_table import read_feature_table
    folder = tmp_path / "take #2 [x]"
    folder.mkdir()
    csv = folder / "list.csv"
    csv.write_text("sub,filename_o,label\n006,EP01_01,0\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        read_feature_table(csv, labelled=False)
    words = shlex.split(str(err.value).split("read it with ", 1)[1].split(";", 1)[0])
    assert apply_overrides(LosoConfig(), words).data.root == str(folder)
