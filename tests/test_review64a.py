"""Regressions of session 64's landed commits, found by review (efce776, 619d98c, f879680).

1. ``refuse_repeated_keys``: an override of a list item (``data.prepare.datasets.0={...}``) replaces it whole, so
   with an override of one of its keys the order of the words decided the run (one order: an unknown-key error; the
   other: the key silently dropped); both orders are now refused.
2. ``process_clip``: with an empty offset, an apex neighbour after the last frame on disk (a folder of onset..apex)
   was warned about as "not on disk"; only a gap within the frames on disk is.
3. ``ClipList``: an offset before the onset (so before the apex) loaded with no note, while one between onset and
   apex was refused; both are refused now.
4. ``input size auto``: downloaded weights (raft_small, ptlflow) were told to give "the side they were trained at";
   the note is for this project's checkpoints (meta ``name`` / ``steps``) only.
"""
from __future__ import annotations

import logging
import sys
import types

import pytest
import torch

from _clip_records import grey_frames
from icegan.config import ConfigError, refuse_repeated_keys
from icegan.data import prepare as prep
from icegan.data.clip_list import ClipList


# ---- 1. a list item set whole, and one of its keys ------------------------------------------------------------------
ITEM = "data.prepare.datasets.0={name: casme2, root: /x}"
ITEM_KEY = "data.prepare.datasets.0.annotations=/y.xlsx"


@pytest.mark.parametrize("words", [[ITEM, ITEM_KEY], [ITEM_KEY, ITEM]])
def test_a_list_item_set_whole_and_one_of_its_keys_is_refused_in_either_order(words):
    with pytest.raises(ConfigError) as err:
        refuse_repeated_keys(words)
    assert str(err.value) == (f"config key 'data.prepare.datasets.0.annotations' is set twice on one command line "
                              f"('{words[0]}' and '{words[1]}'): give it once")


@pytest.mark.parametrize("words", [
    ["data.prepare.datasets.0.root=/x", "data.prepare.datasets.1.root=/y"],
    ["data.prepare.datasets.0={name: casme2, root: /x}", "data.prepare.datasets.1.root=/y"],
])
def test_distinct_list_items_are_accepted(words):
    refuse_repeated_keys(words)


# ---- 2. empty offset: no warning past the last frame on disk -------------------------------------------------------
def _prepare(tmp_path, rows, caplog):
    (tmp_path / "l.csv").write_text("subject,clip,frames,onset,apex,offset\n" + "\n".join(rows) + "\n")
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec("clips", str(tmp_path / "l.csv"))], size=16, workers=1,
                             cache_root=str(tmp_path / "cache"), progress=False)
    with caplog.at_level(logging.WARNING, "icegan.data"):
        prep.prepare_dataset(cfg)
    return [r.getMessage() for r in caplog.records if "used in its place" in r.getMessage()]


def test_no_missing_neighbour_warning_for_onset_to_apex_folders_with_an_empty_offset(tmp_path, caplog):
    rows = [f"me,c{i},{grey_frames(tmp_path / f'c{i}', range(1, 6))},1,5," for i in range(3)]
    assert _prepare(tmp_path, rows, caplog) == []


def test_a_gap_inside_the_frames_on_disk_is_still_warned_with_an_empty_offset(tmp_path, caplog):
    folder = grey_frames(tmp_path / "c1", [n for n in range(1, 11) if n != 6])
    assert _prepare(tmp_path, [f"me,c1,{folder},2,5,"], caplog) == [
        f"clips/me/c1: apex+1 frame 6 (no file in {folder}) not used (not on disk); frame 5 (img5.png) used in its "
        f"place"]


# ---- 3. a clip-list offset before the onset -------------------------------------------------------------------------
@pytest.mark.parametrize("offset", [10, 4])          # between onset 6 and apex 19; before the onset
def test_a_clip_list_offset_before_the_apex_is_refused_wherever_it_is(tmp_path, offset):
    frames = grey_frames(tmp_path / "c1", range(1, 21))
    csv = tmp_path / "l.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,c1,{frames},6,19,{offset}\n")
    with pytest.raises(ValueError) as err:
        ClipList(csv).records()
    assert str(err.value) == (f"{csv}, line 2 (clip 'c1'): apex 19 is after offset {offset}: one of the two cells is "
                              f"wrong; correct it, or empty the offset cell")


# ---- 4. input size auto: the note is for this project's checkpoints ------------------------------------------------
def test_no_training_side_advice_for_downloaded_raft_or_ptlflow_weights(tmp_path, monkeypatch, capsys):
    import flownet
    from flownet.resolution import at_input_size
    from test_flow_backbones import StandIn
    from torchvision.models.optical_flow import raft_small
    torch.save(raft_small(weights=None).state_dict(), tmp_path / "raft_small_things.pth")
    fake = types.ModuleType("ptlflow")
    fake.get_model_names = lambda: ["standin"]
    fake.get_model = lambda name, **kw: StandIn()
    monkeypatch.setitem(sys.modules, "ptlflow", fake)
    torch.save({"state_dict": StandIn().state_dict(), "hyper_parameters": {}}, tmp_path / "lightning.ckpt")
    for method, weights in [("raft_small", "raft_small_things.pth"), ("ptlflow:standin", "lightning.ckpt")]:
        est = flownet.get_estimator(method, weights=str(tmp_path / weights), device="cpu")
        assert "source" in est.model.meta and "size" not in est.model.meta
        assert at_input_size(est, "auto", (23, 28)) is est
    assert "record no training crop size" not in capsys.readouterr().err


def test_the_note_is_kept_for_a_project_checkpoint_without_a_size(tmp_path, capsys):
    import flownet
    from _flow_sizes import TINY_SRFLOWNET
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.registry import save_srflownet
    from flownet.resolution import at_input_size
    path = save_srflownet(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), tmp_path / "w.pt", meta={"steps": 3})
    est = flownet.get_estimator("srflownet", weights=str(path))
    assert at_input_size(est, "auto", (24, 30)) is est
    err = capsys.readouterr().err
    assert "record no training crop size" in err and "24x30" in err and "--input-size N" in err
