"""Error paths and untested branches of the main job (icegan.pipeline: its config checks, run_from_args' executors,
the fold runner's Ray report, summary.md), of ``icegan loso`` (data.size, data.synthetic_per_clip, the action units of
fold_runner), of ``icegan flow train-decflow`` and of icegan.distributed, through the entry a user or caller uses."""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
import torch

from icegan.cli import main
from icegan.config import ConfigError
from icegan.pipeline import load_main_config
from tests._flow_sizes import TINY_SRFLOWNET
from tests._one_line_error import one_line_error

ROOT = Path(__file__).resolve().parents[1]

NETS = '''
import torch
from torch import nn


class TinyFlow(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, img1, img2):
        return self.conv(torch.cat([img1, img2], 1))


class Frozen(TinyFlow):
    """Computes its flow without autograd: nothing to back-propagate through."""
    def forward(self, img1, img2):
        with torch.no_grad():
            return super().forward(img1, img2)


class SaysWhy(TinyFlow):
    """Refuses to be differentiated, in its own words."""
    def forward(self, img1, img2):
        if torch.is_grad_enabled() and img2.requires_grad:
            raise ValueError("SaysWhy: this network is not differentiable (use it with gan.joint=false)")
        return super().forward(img1, img2)
'''


@pytest.fixture
def nets(tmp_path) -> Path:
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


# ------------------------------------------------------------------ the main job's config checks (pipeline.py)

def test_flow_iters_is_refused_for_a_custom_flow_network(nets):
    with pytest.raises(ConfigError, match=r"flow.iters applies to srflownet and RAFT; a custom network's factory"):
        load_main_config(None, ["flow.method=custom", f"flow.module={nets}:TinyFlow", "flow.iters=4"])


def test_a_custom_flow_network_that_cannot_back_propagate_is_named_for_gan_joint(nets):
    """gan.joint back-propagates through the flow: a network whose output has no gradient is refused when the config
    is read, naming flow.module, the setting and torch's error; with gan.joint=false it is taken."""
    spec = f"{nets}:Frozen"
    over = ["flow.method=custom", f"flow.module={spec}", "gan.enabled=true"]
    with pytest.raises(ConfigError) as err:
        load_main_config(None, over + ["gan.joint=true"])
    assert str(err.value).startswith(f"flow.module={spec!r}: gan.joint back-propagates through the flow, and the "
                                     f"backward pass failed: RuntimeError: ")
    assert load_main_config(None, over + ["gan.joint=false"]).flow.module == spec


def test_a_custom_flow_network_failing_in_its_differentiable_forward_pass_keeps_the_estimators_message(nets):
    """A network that fails only when its input needs a gradient fails in the forward pass of the backward check: the
    flow estimator's message (flow.module, the images, the network's words) is kept, not called a backward failure."""
    spec = f"{nets}:SaysWhy"
    with pytest.raises(ConfigError) as err:
        load_main_config(None, ["flow.method=custom", f"flow.module={spec}", "gan.enabled=true", "gan.joint=true"])
    assert str(err.value) == (f"flow.module={spec!r} failed on images (2, 1, 32, 32) (forward(img1, img2), each "
                              f"(B, C, H, W) in [0, 1]): ValueError: SaysWhy: this network is not differentiable "
                              f"(use it with gan.joint=false)")


def test_a_flow_backbone_without_shipped_weights_needs_flow_weights():
    with pytest.raises(ConfigError, match=r"flow.method=raft_small has no shipped weights: set flow.weights to a "
                                          r"local weights file"):
        load_main_config(None, ["flow.method=raft_small", "gan.joint=false"])


def test_the_prepared_source_of_the_main_job_needs_its_datasets():
    with pytest.raises(ConfigError, match=r"data.source=prepared needs data.prepare.datasets \(see .*casme2.yaml\)"):
        load_main_config(None, ["data.source=prepared"])


def test_the_amplitude_of_a_prepared_source_must_still_be_two_values():
    """Outside the synthetic source (whose own check names it too), data.amplitude is still [min, max]."""
    over = ["data.source=prepared", "data.prepare.datasets=[{name: casme2, root: /x}]"]
    assert load_main_config(None, over).data.amplitude == [0.5, 3.0]
    with pytest.raises(ConfigError, match=r"data.amplitude must be \[min, max\] pixels, got \[1.0\]"):
        load_main_config(None, over + ["data.amplitude=[1]"])


def test_the_provenance_of_a_custom_flow_network_names_its_weights_file(nets, tmp_path):
    from icegan.pipeline import flow_weights_provenance
    sys.path.insert(0, str(nets.parent))
    try:
        import nets as module
    finally:
        sys.path.remove(str(nets.parent))
        sys.modules.pop("nets", None)
    weights = tmp_path / "tiny.pt"
    torch.save(module.TinyFlow().state_dict(), weights)
    cfg = load_main_config(None, ["flow.method=custom", f"flow.module={nets}:TinyFlow", f"flow.weights={weights}"])
    got = flow_weights_provenance(cfg)
    assert got["flow_weights"] == "tiny.pt"
    assert got["flow_weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()


# ------------------------------------------------------------------ run_from_args: executors, ranks (pipeline.py)

def _train_args(**kw) -> argparse.Namespace:
    args = dict(config=None, overrides=["threads=3"], out=None, no_progress=True, print_config=False,
                executor="sequential", workers=0, cpus_per_fold=1, ray_address=None, prog_name="icegan train")
    return argparse.Namespace(**{**args, **kw})


_METRICS = {"overall": {"UF1": 0.5, "UAR": 0.5}, "protocol": "CDE", "n_folds": 2, "n_samples": 6}


def test_executor_ray_builds_the_ray_executor_with_the_flags_and_runs_the_job_inside_it(monkeypatch, capsys):
    import icegan.executors
    import icegan.pipeline
    seen = {}

    class FakeRay:
        def __init__(self, **kw):
            seen["made"] = kw

        def __enter__(self):
            seen["entered"] = True
            return self

        def __exit__(self, *exc):
            seen["left"] = True

    def run_main(cfg, out, progress=True, executor=None):
        seen["executor_in_use"] = isinstance(executor, FakeRay) and seen.get("entered") and not seen.get("left")
        return _METRICS
    monkeypatch.setattr(icegan.executors, "RayExecutor", FakeRay)
    monkeypatch.setattr(icegan.pipeline, "run_main", run_main)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rc = icegan.pipeline.run_from_args(_train_args(executor="ray", workers=2, cpus_per_fold=0.5,
                                                   ray_address="auto"))
    assert rc == 0 and seen["executor_in_use"] and seen["left"]
    assert seen["made"] == {"address": "auto", "workers": 2, "num_cpus": 0.5, "threads": 3}


def test_executor_ray_under_torchrun_is_refused(monkeypatch, capsys):
    import icegan.pipeline
    for k, v in (("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(k, v)                       # a torchrun launch
    monkeypatch.setattr(icegan.pipeline, "run_main", lambda *a, **k: pytest.fail("ran"))
    assert icegan.pipeline.run_from_args(_train_args(executor="ray")) == 2
    one_line_error(capsys, "icegan train: error: --executor ray and torchrun are alternatives")


def test_executor_ray_without_ray_installed_says_how_to_install_it(monkeypatch, capsys):
    import icegan.pipeline
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setitem(sys.modules, "ray", None)          # import ray: ImportError
    monkeypatch.setattr(icegan.pipeline, "run_main", lambda *a, **k: pytest.fail("ran"))
    assert icegan.pipeline.run_from_args(_train_args(executor="ray")) == 2
    one_line_error(capsys, "icegan train: error: the Ray executor needs the optional 'ray' package",
                   "pip install 'icegan[ray]'")


def test_an_unknown_executor_is_refused_naming_the_choices(monkeypatch, capsys):
    """run_from_args is called with a namespace of the caller's own (train.py's parser limits --executor itself)."""
    import icegan.pipeline
    monkeypatch.setattr(icegan.pipeline, "run_main", lambda *a, **k: pytest.fail("ran"))
    assert icegan.pipeline.run_from_args(_train_args(executor="dask")) == 2
    one_line_error(capsys, "icegan train: error: unknown --executor 'dask'; choose sequential or ray")


def test_only_rank_0_reports_the_result_under_torchrun(monkeypatch, capsys):
    import icegan.pipeline
    monkeypatch.setattr(icegan.pipeline, "run_main", lambda *a, **k: _METRICS)
    for k, v in (("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(k, v)                      # torchrun sets them all (a RANK alone is no launch)
    monkeypatch.setenv("RANK", "1")
    assert icegan.pipeline.run_from_args(_train_args()) == 0
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    assert icegan.pipeline.run_from_args(_train_args()) == 0
    assert "UF1" in capsys.readouterr().out


def test_run_main_on_another_rank_than_0_writes_no_timing(monkeypatch, tmp_path):
    """Under torchrun only rank 0 writes the run's files: another rank returns the metrics without timing.json."""
    import icegan.distributed
    import icegan.protocol
    from icegan.pipeline import run_main
    monkeypatch.setattr(icegan.protocol, "run_loso", lambda *a, **k: _METRICS)
    cfg = load_main_config(None, ["data.n_subjects=2", "data.clips_per_class=1", "data.img_size=32",
                                  "flow.method=farneback", "gan.enabled=false", "threads=1"])
    assert run_main(cfg, tmp_path / "main", progress=False) == _METRICS
    assert (tmp_path / "main" / "timing.json").is_file()
    monkeypatch.setattr(icegan.distributed, "is_main", lambda: False)
    assert run_main(cfg, tmp_path / "other", progress=False) == _METRICS
    assert not (tmp_path / "other" / "timing.json").exists()


def test_a_ray_fold_reports_its_time_and_peak_memory_to_the_driver(tmp_path):
    """FoldRunner.task_report (in the Ray task) gives the fold's seconds and the worker's peak RSS; merge_report (on
    the driver) keeps both."""
    from icegan.pipeline import FoldRunner
    from icegan.protocol import make_folds
    cfg = load_main_config(None, [])
    clips = types.SimpleNamespace(samples=pd.DataFrame({"label": [0, 1, 2]}))
    worker = FoldRunner(cfg, clips, torch.zeros(3, 3, 8, 8), None, tmp_path, torch.device("cpu"))
    fold = make_folds(["casme2/a", "casme2/b"])[1]
    worker.fold_seconds[fold.subject] = 12.5
    extra = worker.task_report(fold)
    import resource
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss                  # Linux: KiB
    assert extra["seconds"] == 12.5 and extra["peak_rss_mb"] == pytest.approx(peak_kib / 1024, rel=0.05)
    driver = FoldRunner(cfg, clips, torch.zeros(3, 3, 8, 8), None, tmp_path, torch.device("cpu"))
    driver.merge_report(fold, extra)
    assert driver.fold_seconds == {fold.subject: 12.5}
    assert driver.fold_peak_rss_mb == {fold.subject: round(extra["peak_rss_mb"], 1)}


def test_summary_leaves_out_unreadable_and_other_commands_runs(tmp_path):
    """summary.md has a row per main-job run only: a run folder whose metrics.json is not JSON, or whose config has no
    recognizer (an `icegan loso` run), is left out."""
    import yaml

    from icegan.config import to_dict
    from icegan.pipeline import write_summary
    cfg = to_dict(load_main_config(None, ["name=good"]))
    for name, metrics, config in (("good", json.dumps(_METRICS), cfg), ("cut", '{"overall": {', cfg),
                                  ("loso", json.dumps(_METRICS), {"model": {"name": "ststnet"}})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(metrics)
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [line for line in write_summary(tmp_path).read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 2 and "good" in rows[1]            # the header and the one main-job run


# ------------------------------------------------------------------ icegan loso (commands/loso.py)

def test_icegan_loso_refuses_a_negative_data_size(capsys):
    assert main(["loso", "--config", str(ROOT / "configs" / "demo_features.yaml"), "data.size=-1"]) == 2
    one_line_error(capsys, "data.size must be >= 0 pixels (0 = any square size), got -1")


def test_fold_runner_names_missing_coding_sheets_of_model_au_weight(tmp_path):
    """fold_runner reads the action units itself when its caller gave none (run() callers that skip check_run): a
    missing sheet ends the run with the key and the file, not a traceback."""
    from icegan.commands.loso import LosoConfig, fold_runner
    from icegan.config import apply_overrides
    from icegan.data.features import FeatureSet
    cfg = apply_overrides(LosoConfig(), ["model.au_weight=1", f"data.annotations={tmp_path}", "workers=1"])
    fs = FeatureSet(pd.DataFrame({"dataset": ["casme2"] * 2, "subject": ["casme2/sub01", "casme2/sub02"],
                                  "clip": ["EP01", "EP02"], "label": [0, 1]}), torch.zeros(2, 3, 28, 28))
    with pytest.raises(SystemExit) as done:
        fold_runner(cfg, fs, progress=False)
    assert str(done.value.code).startswith("model.au_weight=1.0: ") and str(tmp_path) in str(done.value.code)


@pytest.fixture(scope="module")
def two_faces(shared_data):
    from icegan.data.features import FeatureSet, read_megc2019_table
    rows = read_megc2019_table(shared_data / "megc2019_htnet", ["samm"]).head(2).reset_index(drop=True)
    return FeatureSet(rows, torch.rand(len(rows), 3, 28, 28))


def test_the_synthetic_clips_of_a_loso_run_are_cached_and_recentred_like_the_real_maps(two_faces, tmp_path,
                                                                                        monkeypatch):
    """data.synthetic_per_clip=2: two synthetic clips per real clip, cached under <ICEGAN_DATA>/cache/megc2019_roi;
    with data.recenter=median their u and v maps are recentred as the real ones are."""
    from icegan.commands.loso import FeatureDataConfig, load_synthetic_set
    from icegan.data.features import recenter_flow
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path))
    plain = load_synthetic_set(FeatureDataConfig(synthetic_per_clip=2), two_faces)
    assert len(plain.samples) == 4 and plain.samples["clip"].str.startswith("syn").all()
    assert len(list((tmp_path / "cache" / "megc2019_roi").glob("synthetic_*.npz"))) == 1
    centred = load_synthetic_set(FeatureDataConfig(synthetic_per_clip=2, recenter="median"), two_faces)
    assert torch.equal(centred.features, recenter_flow(plain.features))
    assert not torch.equal(centred.features, plain.features)


# ------------------------------------------------------------------ icegan flow train-decflow (commands/flow.py)

def test_icegan_flow_train_decflow_trains_with_the_files_settings_and_overrides(tmp_path, shared_data, capsys):
    """The command trains DecFlow as configured (the file, then key=value overrides) and writes its run folder:
    config.yaml with the overridden steps, last.pt at that step, weights.pt and the three test EPEs."""
    import yaml
    config = {"name": "d", "out_dir": str(tmp_path / "runs"),
              "data": {"root": str(shared_data), "size": 64, "n_train": 2, "n_test": 1},
              "model": {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_SRFLOWNET.items()},
              "train": {"init_weights": None, "batch_size": 2, "crop": 0, "steps": 5, "iters": 1, "log_every": 100,
                        "ckpt_every": 100}}
    p = tmp_path / "decflow.yaml"
    p.write_text(yaml.safe_dump(config))
    assert main(["flow", "train-decflow", "--config", str(p), "train.steps=1", "--no-progress"]) == 0
    run = tmp_path / "runs" / "d"
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 1
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 1 and (run / "weights.pt").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 1 and metrics["size"] == 64
    assert sorted(metrics["test_metrics"]) == ["EPE_expression", "EPE_head", "EPE_total"]
    assert all(v > 0 for v in metrics["test_metrics"].values())
    assert "final test metrics (1 pairs)" in capsys.readouterr().out


# ------------------------------------------------------------------ distributed.py

def test_average_gradients_of_a_module_without_gradients_reduces_nothing(monkeypatch):
    """Distributed, a module none of whose parameters has a gradient on this step (the same on every process) is left
    alone: no all-reduce of an empty buffer."""
    import icegan.distributed as distributed
    calls = []
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed.dist, "all_reduce", lambda *a, **k: calls.append(a))
    lin = torch.nn.Linear(2, 1)
    distributed.average_gradients(lin)
    assert calls == [] and lin.weight.grad is None
