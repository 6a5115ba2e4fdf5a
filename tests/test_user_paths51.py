"""Paths as a researcher writes them: a leading ``~`` in a config value, in $ICEGAN_SHARED_DATA or in $ICEGAN_DATA is
the home folder (flownet.paths.expand_home, the one rule), so that no folder named ``~`` is made; dataset roots and
output folders whose names hold a space and Chinese letters, and symlinked roots, work end to end."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from flownet import paths as flow_paths
from flownet.models.decflow import DecFlowTrainConfig
from flownet.selfsup import SelfSupConfig
from flownet.train import FlowTrainConfig
from icegan import paths
from icegan.cli import main as icegan_main
from icegan.commands.loso import LosoConfig
from icegan.config import ConfigError, load_config
from icegan.data.clip_list import ClipList
from icegan.data.prepare import PrepareConfig
from icegan.gan.trainer import GanConfig
from icegan.pipeline import MainConfig

SHEET = "CASME2-coding-20140508.xlsx"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home folder of its own ($HOME) below tmp_path, the working directory: a folder named ``~`` made by mistake
    would appear in tmp_path."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.chdir(tmp_path)
    return h


@pytest.fixture
def tiny_casme2(shared_data, home):
    """Two CASME II clips of sub01 and the coding sheet, copied under ``~/微表情 数据/CASME2`` (a space and Chinese
    letters, as many CASME II users' folders have)."""
    root = home / "微表情 数据" / "CASME2"
    for clip in ("EP02_01f", "EP19_01"):
        shutil.copytree(shared_data / "casme2" / "sub01" / clip, root / "sub01" / clip)
    shutil.copy(shared_data / "annotations" / SHEET, root / SHEET)
    return root


# the path-holding keys of every config load_config reads, with how to read the value back (and the overrides a key
# needs beside it)
PATH_KEYS = [
    (PrepareConfig, "datasets=[{name: casme2, root: X, annotations: X}]", lambda c: c.datasets[0].root),
    (PrepareConfig, "datasets=[{name: casme2, root: /r, annotations: X}]", lambda c: c.datasets[0].annotations),
    (PrepareConfig, "cache_root=X", lambda c: c.cache_root),
    (LosoConfig, "data.root=X", lambda c: c.data.root),
    (LosoConfig, "data.table=X", lambda c: c.data.table, ["data.source=table"]),
    (LosoConfig, "data.annotations=X", lambda c: c.data.annotations),
    (MainConfig, "out_dir=X", lambda c: c.out_dir),
    (MainConfig, "data.prepare.cache_root=X", lambda c: c.data.prepare.cache_root),
    (MainConfig, "flow.weights=X", lambda c: c.flow.weights),
    (MainConfig, "flow.decompose_weights=X", lambda c: c.flow.decompose_weights),
    (GanConfig, "data.root=X", lambda c: c.data.root),
    (GanConfig, "loss.vgg_weights=X", lambda c: c.loss.vgg_weights),
    (GanConfig, "out_dir=X", lambda c: c.out_dir),
    (FlowTrainConfig, "data.root=X", lambda c: c.data.root),
    (FlowTrainConfig, "data.landmark_cache=X", lambda c: c.data.landmark_cache),
    (FlowTrainConfig, "train.init_weights=X", lambda c: c.train.init_weights),
    (FlowTrainConfig, "out_dir=X", lambda c: c.out_dir),
    (SelfSupConfig, "data.root=X", lambda c: c.data.root),
    (SelfSupConfig, "train.init_weights=X", lambda c: c.train.init_weights),
    (SelfSupConfig, "out_dir=X", lambda c: c.out_dir),
    (DecFlowTrainConfig, "data.root=X", lambda c: c.data.root),
    (DecFlowTrainConfig, "train.init_weights=X", lambda c: c.train.init_weights),
    (DecFlowTrainConfig, "out_dir=X", lambda c: c.out_dir),
]


@pytest.mark.parametrize("cls, override, read, needs", [(*k, [])[:4] for k in PATH_KEYS],
                         ids=[f"{k[0].__name__}:{k[1].split('=')[0]}" for k in PATH_KEYS])
def test_a_leading_tilde_of_a_config_path_is_the_home_folder_in_an_override_and_a_file(home, tmp_path, cls,
                                                                                      override, read, needs):
    """The shell leaves the ~ of `data.root=~/CASME2` alone (no assignment: the key has a dot) and no shell reads a
    YAML file: the path was taken as written, relative to a folder named '~' of the working directory."""
    value = "~/微表情 数据/x"
    cfg = load_config(cls, None, [*needs, override.replace("X", value)])
    assert read(cfg) == str(home / "微表情 数据" / "x")
    data: dict = {}
    for item in [*needs, override.replace("X", f"'{value}'")]:          # the same settings as a YAML file
        key, text = item.split("=", 1)
        *sections, last = key.split(".")
        node = data
        for part in sections:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(text)
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert "~/微表情 数据/x" in p.read_text(encoding="utf-8")
    assert read(load_config(cls, p)) == str(home / "微表情 数据" / "x")


def test_only_a_leading_home_is_expanded_and_a_missing_user_is_refused_naming_the_key(home):
    cfg = load_config(LosoConfig, None, ["data.root=$HOME/x", "data.annotations=/a/~/b", "name=~run"])
    assert (cfg.data.root, cfg.data.annotations, cfg.name) == ("$HOME/x", "/a/~/b", "~run")
    with pytest.raises(ConfigError, match=r"config key 'out_dir' \(in command line\): '~no_such_user_h51/runs' .*"
                                          r"no user 'no_such_user_h51'.*write the full path"):
        load_config(MainConfig, None, ["out_dir=~no_such_user_h51/runs"])


def test_icegan_shared_data_and_icegan_data_may_start_with_tilde(home, monkeypatch):
    """ICEGAN_SHARED_DATA=~/shared in a .env file (no shell expands it) was taken as a relative folder named '~'."""
    monkeypatch.setenv("ICEGAN_SHARED_DATA", "~/shared data")
    monkeypatch.setenv("ICEGAN_DATA", "~/数据")
    assert paths.shared_data_root() == paths.shared_data_root_or_none() == home / "shared data"
    assert flow_paths.shared_data_root() == home / "shared data"
    assert paths.default_data_root() == home / "数据"
    monkeypatch.setenv("ICEGAN_SHARED_DATA", "~no_such_user_h51/shared")
    with pytest.raises(ValueError, match=r"ICEGAN_SHARED_DATA: '~no_such_user_h51/shared'.*write the full path"):
        paths.shared_data_root()


def test_icegan_prepare_with_tilde_paths_writes_its_cache_in_the_home_folder(tiny_casme2, home, tmp_path, capsys):
    """Before: root ~/... was "not found"; with a real root, cache_root ~/... made a folder named '~' in the working
    directory, then stopped: pandas expands ~ itself and found no such folder in the home one."""
    cfg = tmp_path / "prepare.yaml"
    cfg.write_text("datasets:\n  - name: casme2\n    root: ~/微表情 数据/CASME2\n    mode: cropped\n"
                   "cache_root: ~/输出 cache\nsize: 16\nworkers: 1\nprogress: false\n", encoding="utf-8")
    assert icegan_main(["prepare", "--config", str(cfg)]) == 0, capsys.readouterr().err
    assert not (tmp_path / "~").exists()
    done = list((home / "输出 cache").glob("*/COMPLETE"))
    assert len(done) == 1
    assert len((done[0].parent / "manifest.csv").read_text().splitlines()) == 2        # header + EP02_01f


def test_icegan_prepare_with_tilde_in_icegan_shared_data_and_icegan_data(tiny_casme2, home, tmp_path, monkeypatch,
                                                                        capsys):
    """The shipped prepare config's {shared_data} root with ICEGAN_SHARED_DATA=~/..., and its default cache root
    (ICEGAN_DATA/cache) with ICEGAN_DATA=~/..."""
    monkeypatch.setenv("ICEGAN_SHARED_DATA", "~/微表情 数据")
    monkeypatch.setenv("ICEGAN_DATA", "~/icegan data")
    rc = icegan_main(["prepare", "--config", str(paths.shipped_config("prepare_casme2")), "size=16", "workers=1",
                      "progress=false", "datasets.0.root={shared_data}/CASME2",
                      f"datasets.0.annotations={{shared_data}}/CASME2/{SHEET}"])
    assert rc == 0, capsys.readouterr().err
    assert not (tmp_path / "~").exists()
    assert len(list((home / "icegan data" / "cache").glob("*/COMPLETE"))) == 1


def test_icegan_data_check_reads_a_root_with_a_space_and_chinese_letters_and_a_symlinked_one(tiny_casme2, home,
                                                                                              tmp_path):
    reports = []
    link = home / "casme2 链接"
    link.symlink_to(tiny_casme2, target_is_directory=True)
    for root in (tiny_casme2, link):
        out = tmp_path / f"报告 {len(reports)}.json"
        assert icegan_main(["data", "check", "--dataset", "casme2", "--root", str(root), "--json", str(out)]) == 1
        reports.append(json.loads(out.read_text(encoding="utf-8")))
    for root, d in zip((tiny_casme2, link), reports):
        assert d["root"] == str(root) and d["clip_folders_on_disk"] == 2 and d["clips_usable"] == 2
        assert d["frames_checked"] == 67 and d["unreadable_images"] == []       # every frame file of both clips
        assert d["subjects"] == {"casme2/sub01": 2} and d["by_emotion"] == {"happiness": 1, "others": 1}


def test_a_root_flag_with_an_unexpanded_tilde_is_the_home_folder(tiny_casme2, home, capsys):
    """`--root=~/...`: the shell expands no ~ after `--root=`; the command line's values are expanded as a config's
    (icegan.cli), so the check reads the tree in the home folder. Called from Python, a reader given a ~ path says
    the ~ was not expanded, with the full path ('not found: ~/...' only, before)."""
    # read: exit 1, as the sheet's other subjects are not on disk (2, a fatal error, when the root is not found)
    assert icegan_main(["data", "check", "--dataset", "casme2", "--root=~/微表情 数据/CASME2"]) == 1
    assert "not found" not in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match=r"clip list not found: ~/clips\.csv \(the ~ in it was not expanded"):
        ClipList("~/clips.csv")
