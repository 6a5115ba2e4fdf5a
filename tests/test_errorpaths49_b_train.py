"""Untested paths of the flow trainers (flownet.train, flownet.selfsup): the backbone a supervised run trains, the
generic validation set scored at the start of a fine-tune, the pair order's start step, the resume checks, the
student stage without its teacher, and the α2 study of ``python -m flownet.selfsup --alpha2-study``."""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import types

import pytest
import torch
from _flow_sizes import MAIN_JOB_SRFLOWNET, TINY_SRFLOWNET

from flownet.models.backbones import PtlflowBackbone, PtlflowConfig, RAFTBackbone, RAFTConfig
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import load_srflownet, save_srflownet
from flownet.train import (FlowDataConfig, FlowTrainConfig, FlowTrainSection, StepShuffle, build_model, evaluate_model,
                           evaluation_batches, init_weights_file, refuse_other_settings, train)
from icegan.paths import REPO_ROOT

BACKBONE_CHOICES = "train.backbone must be srflownet, liteflownet2, raft_small, raft_large or ptlflow:<name>"


# ------------------------------------------------------------------------------------------------ flownet.train

@pytest.mark.parametrize("backbone", ["srflownt", "tvl1", "custom"])
def test_train_refuses_a_backbone_it_cannot_train_before_the_run_folder(tmp_path, backbone):
    """A misspelt name, a classical or a custom estimator: refused naming train.backbone and the choices, before any
    data is read or the run folder made (before: after start_run had written the run's config.yaml)."""
    cfg = FlowTrainConfig(name="bad", out_dir=str(tmp_path), data=FlowDataConfig(root=str(tmp_path / "no_data")),
                          train=FlowTrainSection(backbone=backbone))
    with pytest.raises(ValueError, match=rf"^{re.escape(BACKBONE_CHOICES)}, got '{backbone}'$"):
        train(cfg, progress=False)
    with pytest.raises(ValueError, match=rf"^{re.escape(BACKBONE_CHOICES)}, got '{backbone}'$"):
        build_model(cfg)
    assert not (tmp_path / "bad").exists()


def test_train_refuses_an_unknown_regularizer_listing_the_known_ones_before_the_run_folder(tmp_path):
    cfg = FlowTrainConfig(name="bad", out_dir=str(tmp_path), data=FlowDataConfig(root=str(tmp_path / "no_data")),
                          train=FlowTrainSection(regularizer="tv"))
    with pytest.raises(ValueError, match=r"^train\.regularizer must be one of \['none', 'tvr', 'fdr', 'migar', "
                                         r"'igvar'\], got 'tv'$"):
        train(cfg, progress=False)
    assert not (tmp_path / "bad").exists()


def test_build_model_builds_raft_from_the_raft_section_with_the_variant_of_train_backbone():
    cfg = FlowTrainConfig(train=FlowTrainSection(backbone="RAFT-small"), raft=RAFTConfig(variant="raft_large", iters=2))
    model = build_model(cfg)
    assert isinstance(model, RAFTBackbone) and model.config == RAFTConfig(variant="raft_small", iters=2)


def test_build_model_wraps_the_named_ptlflow_model_with_the_ptlflow_section(monkeypatch):
    """ptlflow itself is not installed here: a stand-in module with its two calls shows what build_model asks it for
    and how the result is wrapped."""
    asked = []
    fake = types.SimpleNamespace(get_model_names=lambda: ["skflow", "rpknet"],
                                 get_model=lambda name: asked.append(name) or torch.nn.Identity())
    monkeypatch.setitem(sys.modules, "ptlflow", fake)
    cfg = FlowTrainConfig(train=FlowTrainSection(backbone="ptlflow:rpknet"), ptlflow=PtlflowConfig(multiple=16,
                                                                                                   bgr=False))
    model = build_model(cfg)
    assert asked == ["rpknet"]
    assert isinstance(model, PtlflowBackbone) and model.config == PtlflowConfig(name="rpknet", multiple=16, bgr=False)


def test_init_weights_file_of_an_unknown_backbone_offers_no_shipped_weights(tmp_path):
    """A missing file for a backbone name the registry does not know: the message still says what to set (an
    existing file, or null), and offers no shipped checkpoint (it cannot know one) instead of failing on the name."""
    missing = tmp_path / "none.pt"
    with pytest.raises(FileNotFoundError, match=rf"^train.init_weights: weights file not found: "
                                                rf"{re.escape(str(missing))}; set train.init_weights=<an existing "
                                                r"weights file>, or train.init_weights=null to train from scratch$"):
        init_weights_file(missing, "warp9")
    with pytest.raises(FileNotFoundError, match=r"train.init_weights=shipped:facial or shipped:generic"):
        init_weights_file(missing, "srflownet")                # a known backbone: its shipped ones are offered


def test_a_training_order_cannot_start_before_step_0():
    with pytest.raises(ValueError, match=r"^a training order cannot start at step -1$"):
        StepShuffle(4, 2, seed=0, start=-1)
    assert len(list(zip(range(3), StepShuffle(4, 2, seed=0, start=0)))) == 3


def test_resume_check_passes_over_a_run_without_config_yaml_silently(tmp_path, caplog):
    """No config.yaml in the run folder: nothing to compare, no refusal and no 'cannot be read' warning (which an
    unreadable file gets)."""
    cfg = FlowTrainConfig(name="r", out_dir=str(tmp_path), train=FlowTrainSection(lr=0.123))
    (tmp_path / "r").mkdir()
    with caplog.at_level(logging.WARNING):
        assert refuse_other_settings(cfg) is None
    assert caplog.records == []
    (tmp_path / "r" / "config.yaml").write_text("- a list\n")
    with caplog.at_level(logging.WARNING):
        refuse_other_settings(cfg)
    assert "config.yaml cannot be read (not a mapping but list)" in caplog.text


def test_a_fine_tune_scores_its_initial_weights_on_the_generic_pairs_too(tmp_path, shared_data, capsys):
    """data.n_generic_val > 0: step 0 of a fine-tune also scores train.init_weights on the generic validation pairs
    ('step 0 val_generic'), with the values those weights get on those pairs."""
    from flownet.data.synthetic_generic import SyntheticGenericFlow
    torch.manual_seed(3)
    init = str(save_srflownet(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), tmp_path / "init.pt"))
    d = FlowDataConfig(root=str(shared_data), size=32, n_train=4, n_test=2, n_val_subjects=2, n_val=2,
                       frames_per_clip=1, n_generic_val=2)
    train(FlowTrainConfig(name="ft", out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET), data=d,
                          train=FlowTrainSection(batch_size=2, crop=24, steps=1, eval_every=1, threads=1, iters=2,
                                                 lr=0.05, init_weights=init)), progress=False)
    lines = {k: json.loads("{" + v) for k, v in (line.split(" {", 1) for line in capsys.readouterr().out.splitlines()
                                                 if line.startswith("step ") and " {" in line)}
    generic = evaluation_batches(SyntheticGenericFlow(split="val", n_pairs=2, size=32, seed=d.seed,
                                                      max_motion=d.generic_max_motion, gray=d.gray))
    assert lines["step 0 val_generic"] == pytest.approx(evaluate_model(load_srflownet(init), generic, "cpu"), rel=1e-5)
    assert "step 0 val" in lines and "step 1 val_generic" in lines


# ------------------------------------------------------------------------------------------------ flownet.selfsup

@pytest.mark.parametrize("text", ["[1, 2]", '["teacher_test", "teacher_occ_frac"]', '{"teacher_test": {"EPE": 0.1}}'])
def test_teacher_metrics_without_both_results_are_refused_naming_the_file(tmp_path, text):
    from flownet.selfsup import read_teacher_metrics
    path = tmp_path / "teacher_metrics.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} cannot be read \(not a JSON object with "
                                         r"teacher_test and teacher_occ_frac\)$"):
        read_teacher_metrics(path)


def test_the_student_stage_is_not_resumed_without_its_teacher(tmp_path, monkeypatch):
    """A run stopped in its student stage whose teacher.pt is gone (teacher_metrics.json whole): refused naming the
    file and saying what to do."""
    from test_flow_selfsup import _loop_run, _Stop
    with pytest.raises(_Stop):
        _loop_run(tmp_path, monkeypatch, stop_at=("student", 1))
    run = tmp_path / "loop"
    (run / "teacher.pt").unlink()
    with pytest.raises(FileNotFoundError, match=rf"^{re.escape(str(run / 'teacher.pt'))} missing: cannot resume the "
                                                rf"student stage; remove {re.escape(str(run / 'last.pt'))} \(or set "
                                                r"train.resume=false\) to train the teacher afresh$"):
        _loop_run(tmp_path, monkeypatch)


def test_alpha2_study_command_writes_each_weights_files_study(tmp_path, shared_data):
    """``python -m flownet.selfsup --alpha2-study shipped W``: one study per weights file, printed and written to
    --json (its folder made), with the α2 values asked for; a tighter α2 flags at least as many pixels, and the two
    networks' flows differ (their EPE)."""
    torch.manual_seed(0)
    tiny = save_srflownet(SRFlowNet(SRFlowNetConfig(**MAIN_JOB_SRFLOWNET, iters=2)), tmp_path / "tiny.pt")
    out = tmp_path / "new" / "study.json"
    r = subprocess.run([sys.executable, "-m", "flownet.selfsup", "--alpha2-study", "shipped", str(tiny), "--alpha2",
                        "0.5", "0.05", "--n-synthetic", "2", "--n-real", "2", "--json", str(out)],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "ICEGAN_SHARED_DATA": str(shared_data)})
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert list(res) == ["shipped", str(tiny)]
    printed = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    for w, study in res.items():
        assert json.loads(printed[w]) == study
        by = study["by_alpha2"]
        assert list(by) == ["0.5", "0.05"]
        for a2 in by.values():
            assert set(a2) == {"occ_synthetic", "epe_confident", "epe_flagged", "occ_real"}
            assert 0.0 <= a2["occ_synthetic"] <= 1.0 and 0.0 <= a2["occ_real"] <= 1.0
        assert by["0.05"]["occ_synthetic"] >= by["0.5"]["occ_synthetic"]
        assert by["0.05"]["occ_real"] >= by["0.5"]["occ_real"]
    assert res["shipped"]["epe_all"] != pytest.approx(res[str(tiny)]["epe_all"], rel=1e-3)


def test_alpha2_study_command_needs_its_weights(capsys):
    from flownet.selfsup import _main
    with pytest.raises(SystemExit) as e:
        _main([])
    assert e.value.code == 2
    assert "the following arguments are required: --alpha2-study" in capsys.readouterr().err


def test_train_refuses_a_ptlflow_backbone_without_ptlflow_before_the_run_folder(tmp_path, monkeypatch):
    """ptlflow is an optional package (not installed here; the test hides it even if it is): a ptlflow backbone is
    refused by ``train`` with the install hint before the run folder is made, not after its config.yaml is written."""
    monkeypatch.setitem(sys.modules, "ptlflow", None)       # import ptlflow raises ImportError
    cfg = FlowTrainConfig(name="p", out_dir=str(tmp_path), data=FlowDataConfig(root=str(tmp_path / "no_data")),
                          train=FlowTrainSection(backbone="ptlflow:rpknet"))
    with pytest.raises(ImportError, match=r"^train\.backbone=ptlflow:rpknet: the ptlflow backbones need the optional "
                                          r"ptlflow package: pip install 'icegan\[ptlflow\]'"):
        train(cfg, progress=False)
    assert not (tmp_path / "p").exists()


def test_train_refuses_a_model_setting_that_builds_no_network_before_the_run_folder(tmp_path):
    """The model is built once before the run folder is made: an even model.gru_kernel is refused by SRFlowNet's own
    message, and the run folder is not made."""
    cfg = FlowTrainConfig(name="k", out_dir=str(tmp_path), data=FlowDataConfig(root=str(tmp_path / "no_data")),
                          model=SRFlowNetConfig(**{**TINY_SRFLOWNET, "gru_kernel": 4}))
    with pytest.raises(ValueError, match=r"^SRFlowNetConfig\.gru_kernel=4 must be odd"):
        train(cfg, progress=False)
    assert not (tmp_path / "k").exists()
