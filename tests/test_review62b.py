"""Review 62b: a finished GAN resumed in another precision is loaded, not refused; `icegan table` of a metrics-only
SDE seed and of a run folder without run.json; the Ray cluster check against the largest node; the device conflict
message of a LOSO resume; the near-tie tolerance of off_top_score through an ensemble and its table."""
from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import pytest
import torch
from _runs import centroid_fold_fn, random_prob_fn
from test_executors import _folds, _Reported
from test_precision62 import _fake_gpu, _trained
from test_rayexec62 import _SizedRay
from test_runtables62 import _sde_run

from icegan.data.toy_features import make_toy_features
from icegan.executors import RayExecutor
from icegan.report import TableEntry, results_table

BF16 = {"autocast": True, "dtype": "bfloat16", "scaler": False}


# ---------------------------------------------------------------- 1: a finished GAN resumed in another precision

def test_a_finished_gan_is_loaded_whatever_precision_this_run_would_train_in(tmp_path):
    """A LOSO fold's GAN trained to train.epochs in bf16 autocast (a CPU with amp_dtype=bf16, as a GPU would), then
    resumed where it would train in float32: nothing is left to train, so its models are loaded (it was refused,
    and with it every finished fold of a LOSO run resumed on another GPU); with an epoch left it is refused."""
    from icegan.gan.trainer import GanCheckpointError, check_resumable, train_gan
    cfg, (on, ap, y) = _trained(tmp_path, amp_dtype="bf16")
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    assert torch.load(path, map_location="cpu", weights_only=False)["precision"] == BF16
    cfg.train.amp_dtype = "auto"                # float32 on the CPU
    state = train_gan(on, ap, y, cfg, out_dir=tmp_path / "run")
    assert state.epochs_done == 1 and [h["epoch"] for h in state.history] == [1]
    assert check_resumable(tmp_path / "run", cfg, on, ap, y)["epoch"] == 1
    assert torch.load(path, map_location="cpu", weights_only=False)["precision"] == BF16    # not rewritten
    cfg.train.epochs = 2
    with pytest.raises(GanCheckpointError, match=r"was trained in bfloat16 autocast, and this run would train in "
                                                 r"float32 \(no autocast\)"):
        check_resumable(tmp_path / "run", cfg, on, ap, y)
    with pytest.raises(GanCheckpointError, match=r"was trained in bfloat16 autocast"):
        train_gan(on, ap, y, cfg, out_dir=tmp_path / "run")


# ---------------------------------------------------------------- 2, 3: icegan table of runs without run.json

def test_an_sde_entry_with_a_metrics_only_seed_is_shown(tmp_path):
    """Seed 1 copied with metrics.json and config.yaml alone: its dataset is its metrics' single one (casme2), not
    None, so the entry is shown; a metrics-only seed of another dataset is still refused."""
    a, b = _sde_run(tmp_path, "s0", "casme2", 12), _sde_run(tmp_path, "s1", "casme2", 12)
    (b / "config.yaml").write_text((b / "config.yaml").read_text().replace("seed: 0", "seed: 1"))
    os.remove(b / "run.json")
    row = results_table([TableEntry("SDE", [a, b])]).splitlines()[2]
    assert row.startswith("| SDE | honest | SDE | 2 | 0.5000 ± 0.0000 |"), row
    c = _sde_run(tmp_path, "s2", "samm", 12)
    (c / "config.yaml").write_text((a / "config.yaml").read_text().replace("seed: 0", "seed: 2"))
    os.remove(c / "run.json")
    with pytest.raises(ValueError, match=r"^table entry 'SDE': its runs differ in dataset \(\['casme2', 'samm'\]\)"):
        results_table([TableEntry("SDE", [a, c])])


def test_metrics_and_predictions_without_run_json_are_shown(tmp_path):
    """metrics.json and predictions.csv copied without run.json: shown on its metrics, as before the predictions
    check (which needs the run header's folds) was added; with run.json the predictions are checked."""
    from icegan.protocol import run_loso
    run_loso(make_toy_features(n_subjects_per_dataset=3, clips_per_class=2).samples, random_prob_fn(1),
             tmp_path / "r1", progress=False)
    c = tmp_path / "copy"
    c.mkdir()
    for f in ("metrics.json", "predictions.csv"):
        shutil.copy(tmp_path / "r1" / f, c)
    uf1 = json.loads((c / "metrics.json").read_text())["overall"]["UF1"]
    row = results_table([TableEntry("C", [c])]).splitlines()[2]
    assert row.startswith(f"| C | honest | CDE | 1 | {uf1:.4f} |"), row
    (c / "predictions.csv").write_text("")
    shutil.copy(tmp_path / "r1" / "run.json", c)
    with pytest.raises(ValueError, match="predictions.csv"):
        results_table([TableEntry("C", [c])])


# ---------------------------------------------------------------- 4: Ray places a fold on one node

class _NodesRay(_SizedRay):
    """A joined cluster of the nodes ``nodes`` ((alive, CPUs) each); cluster_resources sums the alive ones."""

    def __init__(self, nodes):
        super().__init__(initialized=True, cpus=sum(c for alive, c in nodes if alive))
        self.node_list = nodes

    def nodes(self):
        return [{"Alive": alive, "Resources": {"CPU": float(c)} if c else {}} for alive, c in self.node_list]


def _install(monkeypatch, nodes):
    """A :class:`_NodesRay` of ``nodes`` as ``ray``, its tasks run in this process (their thread limit left alone)."""
    import sys

    import icegan.environment
    fake = _NodesRay(nodes)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(icegan.environment, "limit_threads", lambda n: None)
    return fake


def test_a_fold_larger_than_every_node_is_refused_though_the_cluster_total_fits(monkeypatch):
    """Two 4-CPU nodes (8 in all) and a dead 16-CPU one: 6 CPUs per fold fits no node, so no fold could start
    (it was let through on the total of 8); 4 per fold runs."""
    fake = _install(monkeypatch, [(True, 4), (True, 4), (False, 16)])
    with pytest.raises(ValueError) as exc:
        list(RayExecutor(workers=1, num_cpus=6)(_Reported(), _folds(2)))
    assert str(exc.value) == ("--cpus-per-fold 6 asks for more CPUs per fold than the largest node of the Ray "
                              "cluster has (4): no fold could ever start; give --cpus-per-fold 4 or less")
    assert fake.tasks == []
    assert [s for _, s in RayExecutor(workers=1, num_cpus=4)(_Reported(), _folds(2))] == [0, 10]


def test_a_joined_cluster_without_cpus_yet_is_warned_about_not_refused(monkeypatch, caplog):
    """An autoscaling cluster with no worker up yet (a head of 0 CPUs): a warning, and the folds are submitted."""
    fake = _install(monkeypatch, [(True, 0)])
    with caplog.at_level(logging.WARNING, logger="icegan.executors"):
        assert [s for _, s in RayExecutor(address="ray://head:10001", num_cpus=0.5)(_Reported(), _folds(2))] \
            == [0, 10]
    assert len(fake.tasks) == 2
    assert ("the Ray cluster at ray://head:10001 has no node with CPUs yet (an autoscaler with no workers up?): the "
            "folds wait until a node with 0.5 CPUs or more joins") in caplog.text


# ---------------------------------------------------------------- 5: the device conflict of a LOSO resume

def _one_gpu(monkeypatch):
    """torch.cuda as on a one-GPU machine, its name too (environment.jsonl records it)."""
    _fake_gpu(monkeypatch)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "a fake GPU")


def _run(tmp_path, out, device):
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    return run_loso(toy.samples, centroid_fold_fn(toy, []), tmp_path / out, config={"device": device},
                    progress=False)


def test_cuda_and_cuda_0_are_one_device_on_resume(tmp_path, monkeypatch):
    """'cuda' (torch's current GPU, index 0) then 'cuda:0': the same device, resumed (refused as 'cuda' there,
    'cuda:0' now); a folder whose record says a bare 'cuda' (made before devices were indexed) too."""
    _one_gpu(monkeypatch)
    _run(tmp_path, "a", "cuda")
    _run(tmp_path, "a", "cuda:0")
    records = [json.loads(line) for line in (tmp_path / "a" / "environment.jsonl").read_text().splitlines()]
    assert [r["device"] for r in records] == ["cuda:0", "cuda:0"]
    env = tmp_path / "a" / "environment.jsonl"
    env.write_text("".join(json.dumps({**json.loads(line), "device": "cuda"}) + "\n"
                           for line in env.read_text().splitlines()))
    _run(tmp_path, "a", "auto")


def test_another_device_is_named_as_spelled_and_as_resolved_with_what_to_resume_with(tmp_path, monkeypatch):
    from icegan.protocol import LosoStateError
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _run(tmp_path, "b", "auto")
    _one_gpu(monkeypatch)
    with pytest.raises(LosoStateError) as exc:
        _run(tmp_path, "b", "auto")
    out = tmp_path / "b"
    assert str(exc.value) == (f"{out} holds a run made on another device ({out / 'config.yaml'}: device: 'auto' there "
                              "(ran on cpu), 'auto' now (resolves to cuda:0)): its finished folds and the folds "
                              "still to run would not be one run's: resume with device=cpu, or use another --out or "
                              "delete that folder")
    _run(tmp_path, "b", "cpu")          # what the message says: resumed


# ---------------------------------------------------------------- 6: a near tie through an ensemble and its table

def test_an_ensemble_of_a_tie_within_the_written_digits_is_kept_by_the_table(tmp_path):
    """Members whose weighted average is a near tie (0.4 against 0.400000000667, within TIE_TOLERANCE: y_pred is
    the lower class) written with 9 digits (0.4 against 0.400000001): the ensemble's y_pred is below the row's top
    written score by 1e-9, and `icegan table` keeps it (off_top_score's 2e-9 tolerance), as compare does."""
    import pandas as pd

    from icegan.ensemble import ensemble_runs, off_top_score
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)

    def fixed(row):
        return lambda fold: np.tile(np.array(row), (len(fold.test_idx), 1))
    run_loso(toy.samples, fixed([0.4, 0.400000002, 0.199999998]), tmp_path / "a", progress=False)
    run_loso(toy.samples, fixed([0.4, 0.4, 0.2]), tmp_path / "b", progress=False)
    ensemble_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "e", weights=[1, 2])
    pred = pd.read_csv(tmp_path / "e" / "predictions.csv")
    scores = pred[[c for c in pred.columns if c.startswith("score_")]].to_numpy()
    assert (pred["y_pred"] == 0).all() and np.allclose(scores[:, 1] - scores[:, 0], 1e-9, rtol=0, atol=1e-12)
    assert not off_top_score(scores, pred["y_pred"].to_numpy()).any()
    assert results_table([TableEntry("E", [tmp_path / "e"])]).splitlines()[2].startswith("| E |")
