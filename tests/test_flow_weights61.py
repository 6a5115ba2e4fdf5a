"""Flow weights given where they do not load: a training run's folder lists only the weights files in it that load, a
training checkpoint (last.pt) is named as such with its run's weights.pt, DecFlow weights name the option that
loads them, and supervised ``train.init_weights`` of another architecture names each differing key (audit 61);
``bench/flow_decompose.py`` checks every method's weights before any data is read and writes its default --md."""
from __future__ import annotations

import re

import pytest
import torch
from _bench import load_bench
from _flow_sizes import TINY_SRFLOWNET
from _one_line_error import one_line_error

from flownet.models.decflow import DecFlow, DecFlowConfig, save_decflow
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import load_srflownet, save_srflownet


def _run_folder(tmp_path, config: dict = TINY_SRFLOWNET):
    """A finished supervised run's folder: weights.pt (SRFlowNet weights) and last.pt (its training checkpoint)."""
    run = tmp_path / "runs" / "full"
    model = SRFlowNet(SRFlowNetConfig(**config))
    save_srflownet(model, run / "weights.pt")
    torch.save({"model": model.state_dict(), "optimizer": {}, "step": 3, "elapsed_s": 1.0}, run / "last.pt")
    return run


def _decflow_weights(path):
    return save_decflow(DecFlow(DecFlowConfig(**TINY_SRFLOWNET)), path)


def test_a_run_folder_lists_only_its_loadable_weights_and_last_pt_is_named_a_training_checkpoint(tmp_path):
    """Before: the folder hint offered last.pt, which then was 'not an SRFlowNet weights file (format None, expected
    'srflownet-v1')' with no fix and no word of flow.weights for the main job."""
    run = _run_folder(tmp_path)
    with pytest.raises(FileNotFoundError) as exc:
        load_srflownet(run)
    assert f"SRFlowNet weights {run} is a folder, not a file: give a weights file in it (weights.pt)." in str(exc.value)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(run / 'last.pt'))} is a training checkpoint \(model, "
                                         rf"optimizer, step, elapsed_s\), not an SRFlowNet weights file: use "
                                         rf"{re.escape(str(run / 'weights.pt'))} .*flow\.weights"):
        load_srflownet(run / "last.pt")
    (run / "weights.pt").unlink()                     # a run still training: only its checkpoint
    with pytest.raises(FileNotFoundError, match=r"holds no weights file that loads here \(last\.pt: a training "
                                                r"checkpoint\)"):
        load_srflownet(run)


def test_decflow_weights_given_for_srflownet_name_the_option_that_loads_them(tmp_path, capsys):
    """Before: only "not an SRFlowNet weights file (format 'decflow-v1', expected 'srflownet-v1')"."""
    import cv2
    import numpy as np

    from icegan.cli import main
    dec = _decflow_weights(tmp_path / "dec.pt")
    img = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), img)
    assert main(["flow", "run", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(tmp_path / "o.png"),
                 "--weights", str(dec)]) == 2
    one_line_error(capsys, f"{dec}: not an SRFlowNet weights file (format 'decflow-v1', expected 'srflownet-v1'); "
                           "DecFlow weights load with `icegan flow run --decompose --decompose-method learned",
                   "flow.decompose_weights")


def _supervised(tmp_path, shared_data, init):
    from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection
    t = FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=1, eval_every=1, threads=1, seed=1,
                         init_weights=str(init))
    return FlowTrainConfig(name="r", out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                           data=FlowDataConfig(root=str(shared_data), size=32, n_train=4, n_test=1,
                                               frames_per_clip=1), train=t)


def test_supervised_init_weights_of_another_model_name_what_differs(tmp_path, shared_data):
    """Before: raw key lists ('missing [...] (150), unexpected [...] (202)', 'wrong shape [...] (N)') or 'has no
    state_dict'; now as --mode selfsup says it: each differing model.* key with both values, DecFlow weights and a
    training checkpoint named as such; the run folder is not made."""
    from flownet.train import train
    other = _run_folder(tmp_path / "o", dict(TINY_SRFLOWNET, hidden=16))
    cases = [(other / "weights.pt", rf"^train\.init_weights: {re.escape(str(other / 'weights.pt'))}: another "
                                    r"architecture than the run's model section: hidden=16 \(model\.hidden: 24\)$"),
             (_decflow_weights(tmp_path / "dec.pt"),
              rf"^train\.init_weights: {re.escape(str(tmp_path / 'dec.pt'))}: DecFlow weights \(format "
              r"'decflow-v1'\), not SRFlowNet weights \(format 'srflownet-v1'\)"),
             (other / "last.pt", rf"^train\.init_weights: {re.escape(str(other / 'last.pt'))} is a training "
                                 rf"checkpoint \(model, optimizer, step, elapsed_s\), not a weights file: use "
                                 rf"{re.escape(str(other / 'weights.pt'))}")]
    for init, said in cases:
        with pytest.raises(ValueError, match=said):
            train(_supervised(tmp_path, shared_data, init), progress=False)
        assert not (tmp_path / "r").exists()


def _bench_argv(tmp_path, shared_data, *extra):
    return ["--threads", "1", "--n-pairs", "1", "--size", "32", "--root", str(shared_data), *extra]


def test_bench_writes_its_default_md_and_shows_its_defaults(tmp_path, shared_data, monkeypatch, capsys):
    """Before: with --md at its default the bench ended, after all its work, in FileNotFoundError for
    runs/flow_decompose/bench.md (its folder was made for --json only); --help showed no defaults."""
    bench = load_bench("flow_decompose")
    monkeypatch.chdir(tmp_path)
    assert bench.main(_bench_argv(tmp_path, shared_data, "--methods", "none", "--json", "elsewhere/b.json")) == 0
    assert (tmp_path / "runs" / "flow_decompose" / "bench.md").read_text().count("| no decomposition") == 1
    capsys.readouterr()
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    for shown in ("synthetic test pairs (default: 100)", "(default: 128)", "(default: runs/flow_decompose/bench.json)",
                  "(default: runs/flow_decompose/bench.md)", "(default: 1)"):
        assert shown in helptext


@pytest.mark.parametrize("flag, methods", [("--decflow", "none,decflow"), ("--srflownet", "none,ransac-srflownet")])
def test_bench_checks_every_methods_weights_before_any_data(tmp_path, shared_data, capsys, flag, methods):
    """Before: a bad --decflow / --srflownet file was read only when its method came, after the others ran: a
    traceback, and nothing written."""
    bench = load_bench("flow_decompose")
    bad = _run_folder(tmp_path)
    wrong = {"--decflow": bad / "weights.pt", "--srflownet": bad / "last.pt"}[flag]
    out = tmp_path / "b"
    assert bench.main(_bench_argv(tmp_path, shared_data, "--methods", methods, flag, str(wrong),
                                  "--json", str(out / "x.json"), "--md", str(out / "x.md"))) == 2
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err and len(cap.err.strip().splitlines()) == 1
    assert cap.err.startswith(f"flow_decompose.py: error: {flag}: ") and str(wrong) in cap.err
    assert "no decomposition" not in cap.out and not out.exists()
