"""Review of session 58's changes (A): SMIC's padded subject folders under prepare's subjects filter, the example of
an override that is no key=value, the shared load-config block of the commands, a custom flow network taking two
stacked grey frames, and the folders searched for a sheet from a relative root."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from icegan.config import ConfigError, apply_overrides, load_config, to_dict


def _clip(folder, first=100, n=3):
    """A clip folder of ``n`` flat grey SMIC-HS frames ``reg_image<first>.bmp`` ...."""
    folder.mkdir(parents=True)
    for t in range(n):
        cv2.imwrite(str(folder / f"reg_image{first + t}.bmp"), np.full((20, 24), 40 + 10 * t, np.uint8))


# ----------------------------------------------------------- 1: SMIC folder s01 is subject s1 for prepare's filter

@pytest.mark.parametrize("name", ["s01", "s1", "smic/S1", "smic/s01"])
def test_prepare_subjects_filter_reads_smic_padded_folder_as_its_subject(tmp_path, name):
    """Folder s01 is subject smic/s1: either spelling keeps its clip and the layout problem of its folder (frames
    loose in a class folder), and drops subject s2's."""
    from icegan.data import prepare as prep
    hs = tmp_path / "HS"
    _clip(hs / "s01" / "micro" / "negative" / "s1_ne_01")
    _clip(hs / "s02" / "micro" / "positive" / "s2_po_01")
    (hs / "s01" / "micro" / "surprise").mkdir(parents=True)
    cv2.imwrite(str(hs / "s01" / "micro" / "surprise" / "reg_image1.bmp"), np.zeros((20, 24), np.uint8))
    (hs / "s02" / "micro" / "happy").mkdir(parents=True)                 # a class folder of s2: not kept
    layout: list[dict] = []
    spec = prep.DatasetSpec(name="smic", root=str(tmp_path), subjects=[name], mode="cropped")
    recs = prep.dataset_records(spec, layout)
    assert [r.key for r in recs] == ["smic/s1/s1_ne_01"]
    assert [p["key"] for p in layout] == ["smic/s01/micro/surprise"]


def test_prepare_subjects_filter_still_refuses_an_absent_smic_subject(tmp_path):
    from icegan.data import prepare as prep
    _clip(tmp_path / "HS" / "s01" / "micro" / "negative" / "s1_ne_01")
    spec = prep.DatasetSpec(name="smic", root=str(tmp_path), subjects=["s03"], mode="cropped")
    with pytest.raises(prep.PrepareError, match=r"\['s03'\] not among its subjects \(s1\)"):
        prep.dataset_records(spec)


# ------------------------------------------------------- 2: the example of an override that is no key=value

def _config_of(command: str):
    from icegan.commands import CONFIG_KINDS
    module, cls = CONFIG_KINDS[command][0].split(":")
    cls = getattr(importlib.import_module(module), cls)
    if command == "icegan suite":                    # a suite needs runs: a shipped one
        return load_config(cls, Path(__file__).resolve().parents[1] / "configs" / "suite_batch_size.yaml")
    return cls()


@pytest.mark.parametrize("command", ["icegan loso", "train.py", "icegan suite", "icegan gan train",
                                     "icegan prepare", "icegan flow train", "icegan flow train --mode selfsup",
                                     "icegan flow train-decflow"])
def test_override_example_applies_to_the_command_config(command):
    """The key=value example in the refusal of 'foo' names keys the command's config has: they apply cleanly."""
    cfg = _config_of(command)
    with pytest.raises(ConfigError, match=r"^override 'foo' must look like key=value \(e\.g\. ") as exc:
        apply_overrides(cfg, ["foo"])
    example = re.search(r"\(e\.g\. (.*)\)$", str(exc.value)).group(1).split(" or ")
    assert example and all("=" in e for e in example)
    apply_overrides(cfg, example)                    # no unknown key, no wrong type


def test_override_example_per_config():
    """train.py and loso keep 'seed=1 or data.labels=megc2019'; gan train, prepare and flow train name their own."""
    from icegan.config import override_example
    assert override_example(to_dict(_config_of("train.py"))) == "seed=1 or data.labels=megc2019"
    assert override_example(to_dict(_config_of("icegan gan train"))) == "data.img_size=128"
    assert override_example(to_dict(_config_of("icegan prepare"))) == "size=128"
    assert override_example(to_dict(_config_of("icegan flow train"))) == "data.size=128"


# ------------------------------------------------------------------ 3: one helper for the load-config block

def test_load_command_config_names_the_command_a_file_is_for(tmp_path):
    """A loso file given to prepare (through the shared helper): the config error, then which command it is for."""
    from icegan.commands import load_command_config
    from icegan.commands.loso import LosoConfig
    from icegan.config import save_config
    from icegan.data.prepare import PrepareConfig
    path = tmp_path / "loso.yaml"
    save_config(LosoConfig(), path)
    with pytest.raises(ConfigError, match=rf"; {re.escape(str(path))} is a config for `icegan loso`: run icegan loso "
                                          rf"--config {re.escape(str(path))} --out DIR$"):
        load_command_config(PrepareConfig, path, [], "icegan prepare")
    with pytest.raises(ConfigError, match=r"unknown config key 'nope'") as exc:         # no file: no hint
        load_command_config(PrepareConfig, None, ["nope=1"], "icegan prepare")
    assert "is a config for" not in str(exc.value)
    assert load_command_config(PrepareConfig, None, ["size=32"], "icegan prepare").size == 32


# ------------------------------------------------------------- 4: a custom network on two stacked grey frames

@pytest.mark.parametrize("channels, grey", [(1, True), (2, True), (3, False), (6, False)])
def test_custom_network_input_channels_say_grey_or_colour(tmp_path, channels, grey):
    """First Conv2d taking 1 channel (one grey frame) or 2 (two grey frames stacked, FlowNetS-style): grey frames;
    3 or 6 (colour): colour."""
    import flownet
    from flownet.registry import trained_on_grey
    net = tmp_path / f"net{channels}.py"
    net.write_text("import torch\n"
                   "class Net(torch.nn.Module):\n"
                   "    def __init__(self):\n"
                   "        super().__init__()\n"
                   f"        self.conv = torch.nn.Conv2d({channels}, 2, 3, padding=1)\n"
                   "    def forward(self, a, b):\n"
                   "        return self.conv(torch.cat([a, b], 1)[:, :self.conv.in_channels]) * 0\n"
                   "def make():\n"
                   "    return Net()\n")
    est = flownet.get_estimator("custom", module=f"{net}:make")
    assert trained_on_grey(est) is grey
    if channels == 2:                                # it runs on the two grey frames it is given
        a = torch.rand(1, 1, 16, 16)
        assert tuple(est.estimate(a, a).shape) == (1, 2, 16, 16)


# ------------------------------------------------------------- 5: a sheet searched for from a relative root

def test_find_sheet_from_a_relative_root_lists_each_folder_once(tmp_path, monkeypatch):
    """Root 'CASME2' (relative): '.' is both its parent and its grandparent; the near-miss sheet there is named once
    and the 'looked in' list has no repeat."""
    from icegan.data.base import find_sheet
    (tmp_path / "CASME2").mkdir()
    (tmp_path / "CASME2-coding-20140508 (1).xlsx").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as exc:
        find_sheet(None, "CASME2-coding-20140508.xlsx", Path("CASME2"))
    msg = str(exc.value)
    assert msg.count("holds CASME2-coding-20140508 (1).xlsx") == 1
    looked = eval(re.search(r"looked in (\[.*?\])", msg).group(1))
    assert len(looked) == len(set(looked)) == 4


# ------------------------------------ final re-read: the clip-name code in SMIC's loose-frames problem (pinned)

@pytest.mark.parametrize("emotion, code", [("negative", "ne"), ("positive", "po"), ("surprise", "sur")])
def test_smic_loose_frames_problem_names_a_clip_folder_with_the_class_code(tmp_path, emotion, code):
    """Frames loose in a SMIC-HS class folder: the problem names a clip folder as SMIC-HS names them (s1_sur_01)."""
    from icegan.data.smic import SMIC
    folder = tmp_path / "HS" / "s01" / "micro" / emotion
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "reg_image1.bmp"), np.zeros((20, 24), np.uint8))
    ds = SMIC(tmp_path / "HS")
    assert ds.records() == []
    [problem] = ds.layout_problems
    assert problem["clip"] == f"smic/s01/micro/{emotion}"
    assert problem["problem"].endswith(f"named like s1_{code}_01)")
