"""Flow option defects of audit 65 (flownet/train.py, flownet/evaluate.py, icegan/commands/flow.py).

1. Resuming a run folder under another ``train.backbone`` (raft_small -> liteflownet2 / raft_large) failed in the
   weight load ("missing [...] unexpected [...]", "resume with the same model section") without naming the backbone:
   the run's config.yaml was compared only after the weights. The recorded backbone is now compared first.
2. ``flow eval --json`` recorded ``"iters": null`` for RAFT at its own update count (12), though the result promises
   the resolved count.
3. ``--precision bf16`` was silently accepted by tvl1 / farneback (``"precision": null`` in the JSON), while
   ``--compile`` and ``--tta`` were refused for them.
"""
from __future__ import annotations

import json
import re

import pytest
from test_cli_commands import _pair as _files
from test_flow60 import _pair

from flownet.evaluate import evaluate
from flownet.train import FlowTrainConfig, train
from icegan.cli import main
from icegan.config import load_config


# ------------------------------------------------------------------------------- 1. resume under another backbone

def _run_cfg(tmp_path, root, config: str, *extra: str) -> FlowTrainConfig:
    """One tiny step of ``config`` (a configs/flow_*.yaml) as run ``sw`` under ``tmp_path``."""
    return load_config(FlowTrainConfig, config,
                       [f"out_dir={tmp_path}", "name=sw", f"data.root={root}", "data.size=64", "data.n_train=2",
                        "data.n_test=1", "data.n_val=1", "train.steps=1", "train.batch_size=2", "train.crop=0",
                        "train.eval_every=0", "train.ckpt_every=1", "train.log_every=1", "train.threads=1", *extra])


def test_resuming_under_another_backbone_names_the_backbone(tmp_path, shared_data):
    """A finished raft_small run resumed with train.backbone=raft_large or liteflownet2 is refused naming
    train.backbone and both values (it named missing and unexpected weight keys and 'the same model section', which
    a RAFT run does not read); config.yaml is left as the checkpoint's run wrote it."""
    train(_run_cfg(tmp_path, shared_data, "configs/flow_raft_small.yaml", "train.iters=1"), progress=False)
    before = (tmp_path / "sw" / "config.yaml").read_text()
    last = re.escape(str(tmp_path / "sw" / "last.pt"))
    with pytest.raises(ValueError, match=rf"^{last} was trained with other settings than these \(.*config.yaml: "
                                         r"train.backbone: 'raft_small' there, 'raft_large' now\); resuming would"):
        train(_run_cfg(tmp_path, shared_data, "configs/flow_raft_small.yaml", "train.iters=1",
                       "train.backbone=raft_large"), progress=False)
    with pytest.raises(ValueError, match=r"train.backbone: 'raft_small' there, 'liteflownet2' now\)"):
        train(_run_cfg(tmp_path, shared_data, "configs/flow_liteflownet2.yaml"), progress=False)
    assert (tmp_path / "sw" / "config.yaml").read_text() == before


# ------------------------------------------------------------------------------- 2. RAFT's resolved update count

def test_flow_eval_json_records_raft_own_update_count(tmp_path):
    """raft_small weights evaluated without --iters ran torchvision's 12 updates (the weights' raft.iters) but the
    JSON said null; given --iters, that count."""
    from flownet.registry import build_backbone, save_weights
    weights = save_weights(build_backbone("raft_small"), tmp_path / "raft_small.pt")
    js = tmp_path / "e.json"
    args = ["flow", "eval", "--model", "raft_small", "--weights", str(weights), "--data", "synthetic-generic",
            "--size", "64", "--n-pairs", "1", "--json", str(js)]
    assert main(args) == 0
    res = json.loads(js.read_text())
    assert (res["precision"], res["iters"]) == ("fp32", 12)
    assert main([*args, "--iters", "2"]) == 0
    assert json.loads(js.read_text())["iters"] == 2


def test_evaluate_records_the_update_count_of_a_raft_estimator_given():
    from flownet.models.backbones import RAFTBackbone, RAFTConfig
    from flownet.registry import BackboneEstimator
    est = BackboneEstimator(RAFTBackbone(RAFTConfig("raft_small", iters=3)))
    assert evaluate("raft_small", pairs=[_pair(h=64, w=64)], estimator=est, progress=False)["iters"] == 3


# ------------------------------------------------------------------------------- 3. --precision of classical methods

@pytest.mark.parametrize("model", ["tvl1", "farneback"])
@pytest.mark.parametrize("precision", ["bf16", "auto"])
def test_flow_eval_refuses_a_precision_for_the_classical_methods(tmp_path, capsys, model, precision):
    """--precision bf16 with tvl1 / farneback was accepted and the JSON said precision null (OpenCV runs float32):
    refused as --compile and --tta are, before any pair is made; fp32 (the default) still runs."""
    js = tmp_path / "e.json"
    args = ["flow", "eval", "--model", model, "--data", "synthetic-generic", "--size", "16", "--n-pairs", "1",
            "--json", str(js)]
    assert main([*args, "--precision", precision]) == 2
    err = capsys.readouterr().err
    assert (f"precision={precision!r} (--precision) applies to the learned models, not '{model}' (OpenCV runs in "
            f"float32): leave it out") in err
    assert not js.exists()
    assert main([*args, "--precision", "fp32"]) == 0
    assert json.loads(js.read_text())["precision"] is None


def test_flow_run_refuses_a_precision_for_the_classical_methods(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["flow", "run", *_files(tmp_path, 16, 16), "--out", str(out), "--model", "tvl1", "--precision",
                 "bf16"]) == 2
    assert "precision='bf16' (--precision) applies to the learned models, not 'tvl1'" in capsys.readouterr().err
    assert not out.exists()
    assert main(["flow", "run", *_files(tmp_path, 16, 16), "--out", str(out), "--model", "tvl1"]) == 0
    assert out.is_file()
