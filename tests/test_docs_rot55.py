"""Round 55 fixes of shipped commands and their docs: DecFlow's init from the shipped SRFlowNet weights,
bench/epoch_curve.py's epoch labels, bench/flow_decompose.py's method names, bench/gan_joint_demo.py's --help and
the doc-command checks of tests/_readme.py."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ 1. DecFlow from the shipped SRFlowNet weights

class _Started(Exception):
    """Raised in place of start_run: the run got past every check made before its folder is written."""


def test_shipped_decflow_config_takes_the_shipped_srflownet_init(monkeypatch, tmp_path):
    """``icegan flow train-decflow --config configs/flow_decflow.yaml`` (docs/benchmarks.md "Training record
    (DecFlow weights)"): the shipped SRFlowNet is saved with ``iters`` 2, DecFlow builds with 8; ``iters`` sets no
    weight, so the init is taken (it was refused with two whole config dicts)."""
    import flownet.train
    from flownet.models.decflow import DecFlowTrainConfig, train_decflow
    from icegan.config import load_config

    def started(cfg):
        raise _Started
    monkeypatch.setattr(flownet.train, "start_run", started)
    cfg = load_config(DecFlowTrainConfig, str(ROOT / "configs/flow_decflow.yaml"), [f"out_dir={tmp_path}"])
    assert cfg.train.init_weights == "shipped" and cfg.model.iters == 8
    with pytest.raises(_Started):
        train_decflow(cfg, progress=False)
    assert not (tmp_path / "decflow").exists()


def test_shipped_srflownet_weights_initialise_a_decflow_as_the_srflownet():
    import torch
    from flownet.models.decflow import DecFlow, DecFlowConfig
    from flownet.registry import load_srflownet
    sr = load_srflownet(None).eval()
    assert sr.config.iters == 2
    m = DecFlow(DecFlowConfig()).init_from_srflownet(sr).eval()
    assert m.config.iters == 8
    for k, v in sr.state_dict().items():
        assert torch.equal(m.base.state_dict()[k], v), k
    assert float(m.head_update.flow_head.conv2.weight.detach().abs().max()) == 0.0


def test_decflow_init_of_another_architecture_names_the_differing_key_with_both_values():
    from dataclasses import replace

    from flownet.models.decflow import DecFlow, DecFlowConfig
    from flownet.models.srflownet import SRFlowNet
    from flownet.registry import load_srflownet
    sr = load_srflownet(None)
    other = SRFlowNet(replace(sr.config, mask_hidden=32, iters=5))
    with pytest.raises(ValueError) as err:
        DecFlow(DecFlowConfig()).init_from_srflownet(other)
    msg = str(err.value)
    assert "mask_hidden=32 (model.mask_hidden: 96)" in msg
    assert "iters" not in msg and "feature_layers" not in msg
    assert len(msg) < 200


# ------------------------------------------------------------------ 2. bench/epoch_curve.py's epoch labels

def test_epoch_curve_labels_the_final_record_with_the_final_epoch(capsys, monkeypatch):
    """The grouped engine records every eval_every epochs and the final one: a 3-epoch run with eval_every 2 records
    epochs 2 and 3 (they were printed as 2 and 4, and "final epoch (4)")."""
    import sys

    from _bench import load_bench
    bench = load_bench("epoch_curve")
    assert bench.recorded_epochs(7, 5) == [5, 7]
    assert bench.recorded_epochs(100, 5) == list(range(5, 101, 5))      # the recorded 100-epoch run: unchanged
    assert bench.recorded_epochs(4, 2) == [2, 4]
    monkeypatch.setattr(sys, "argv", ["epoch_curve", "--config", str(ROOT / "configs" / "demo_features.yaml"),
                                      "--threads", "1", "model.name=ststnet", "model.epochs=3", "model.eval_every=2",
                                      "max_folds=0"])
    bench.main()
    out = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "epoch" not in line]
    assert rows == ["2", "3"]
    assert "final epoch (3)" in out


# ------------------------------------------------------------------ 3. bench/flow_decompose.py's method names

def test_flow_decompose_refuses_an_unknown_method_before_reading_any_data(capsys, monkeypatch, tmp_path):
    """Every --methods name is checked first: ``ransac(tvl1)`` (the docstring's old spelling) was refused only when
    its turn came, after the methods before it had been computed (and nothing written)."""
    from _bench import load_bench
    bench = load_bench("flow_decompose")

    def no_data(*a, **k):
        raise AssertionError("data read before the method names were checked")
    monkeypatch.setattr(bench, "SyntheticFaceFlow", no_data)
    monkeypatch.setattr(bench, "get_estimator", no_data)
    with pytest.raises(SystemExit) as exc:
        bench.main(["--methods", "none,ransac(tvl1),bogus", "--json", str(tmp_path / "b.json"),
                    "--md", str(tmp_path / "b.md")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'ransac(tvl1)', 'bogus'" in err and "ransac-tvl1" in err
    assert not (tmp_path / "b.json").exists()


def test_flow_decompose_documents_the_method_names_it_takes():
    from _bench import load_bench
    bench = load_bench("flow_decompose")
    for name in bench.METHODS:
        assert f"``{name}``" in bench.__doc__, name
    assert "ransac(" not in bench.__doc__


# ------------------------------------------------------------------ 4. bench/gan_joint_demo.py's arguments

def test_gan_joint_demo_help_prints_usage_and_trains_nothing(tmp_path):
    """``--help`` was read as a config override (a ConfigError traceback); the config was looked up from the
    current folder."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "gan_joint_demo.py"), "--help"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--out" in r.stdout and "--config" in r.stdout and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_gan_joint_demo_config_from_any_folder_and_out(tmp_path, monkeypatch):
    from _bench import load_bench
    bench = load_bench("gan_joint_demo")
    monkeypatch.chdir(tmp_path)
    cfg = bench.build_config(["train.epochs=1"])
    assert (cfg.name, cfg.out_dir, cfg.train.epochs) == ("gan_casme2_cpu_joint", "runs", 1)
    cfg = bench.build_config(["--out", str(tmp_path / "o")])
    assert cfg.out_dir == str(tmp_path / "o")
    with pytest.raises(SystemExit) as exc:
        bench.build_config(["--bogus"])
    assert exc.value.code == 2


# ------------------------------------------------------------------ 5. the doc-command checks

_PLAIN = """Text.

```
OMP_NUM_THREADS=1 icegan flow train-decflow --config configs/flow_decflow.yaml \\
    --no-progress out_dir=runs/x      # a note
step 10 loss 1.2 "unbalanced
cp runs/x/weights.pt flownet/weights/decflow_facial.pt
.venv/bin/python bench/gan_speed.py --threads 1 2
```

```python
icegan loso --config not_a_shell_block.yaml
```

```bash
icegan loso --config configs/demo.yaml
```
"""


def test_code_lines_read_the_commands_of_plain_blocks_too():
    """Plain ``` blocks of docs/benchmarks.md hold 25 recorded commands (the DecFlow and GAN training records among
    them) that were never checked; their output lines and other programs stay out."""
    from _readme import code_lines
    assert code_lines(_PLAIN) == [
        "OMP_NUM_THREADS=1 icegan flow train-decflow --config configs/flow_decflow.yaml  --no-progress out_dir=runs/x",
        ".venv/bin/python bench/gan_speed.py --threads 1 2",
        "icegan loso --config configs/demo.yaml"]
    bench = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    lines = code_lines(bench)
    assert ("OMP_NUM_THREADS=1 icegan flow train-decflow --config configs/flow_decflow.yaml --no-progress "
            "out_dir=runs/flow_decompose") in lines
    assert ("OMP_NUM_THREADS=1 .venv/bin/python bench/gan_joint_demo.py train.progress=false "
            "train.max_minutes=18") in lines


def test_doc_checks_find_the_plain_block_commands():
    import test_benchmarks_doc as tb
    argvs = [" ".join(a) for a in tb._recorded_commands()]
    assert "flow train-decflow --config configs/flow_decflow.yaml --no-progress out_dir=runs/flow_decompose" in argvs
    assert ("flow train --config configs/flow_srflownet_fdr.yaml --no-progress "
            "data.landmark_cache=runs/flow_core/landmarks.npz") in argvs          # the loop's $r: a shipped config
    assert ("bench/gan_joint_demo.py", ["train.progress=false", "train.max_minutes=18"]) in tb._bench_commands()


@pytest.mark.parametrize("module,fn", [("test_readme", "_icegan_argv"), ("test_shown_commands", "_argv"),
                                       ("test_benchmarks_doc", "_argv")])
def test_doc_checks_keep_list_overrides_and_open_optional_parts(module, fn):
    """``data.holdout_subjects=[sub01]`` reached the checks as ``data.holdout_subjects=sub01`` (every bracket was
    stripped); the brackets of an optional part (``[--tta hflip]``) still come off, their content checked."""
    import importlib

    from _readme import drop_optional_brackets
    assert drop_optional_brackets("a x=[s1,s2] [--tta hflip] [k=v]") == "a x=[s1,s2] --tta hflip k=v"
    argv = getattr(importlib.import_module(module), fn)(
        "icegan gan train --config configs/gan_casme2.yaml data.holdout_subjects=[sub01] [--print-config]")
    assert argv == ["gan", "train", "--config", "configs/gan_casme2.yaml", "data.holdout_subjects=[sub01]",
                    "--print-config"]
