"""DDP for the main job (issue #8): collectives, the recognizer under DistributedDataParallel, and
``torchrun --nproc_per_node 2 train.py`` against one process, all with the gloo backend on CPU."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from icegan import distributed

REPO = Path(__file__).resolve().parents[1]
# a learnable toy run (64×64 synthetic faces: at 32×32 the flow features leave both runs at chance,
# where comparing metrics says nothing)
TINY = ["data.n_subjects=4", "data.clips_per_class=3", "data.max_folds=2",
        "gan.epochs=1", "gan.base_channels=8", "gan.max_channels=32", "gan.d_base_channels=8",
        "recognizer.epochs=40", "threads=1", "flow.iters=2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, world: int, out: Path) -> list:
    port = _free_port()
    mp.spawn(_entry, args=(world, port, fn, str(out)), nprocs=world, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


def _entry(rank: int, world: int, port: int, fn, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    assert distributed.init_from_env()
    try:
        torch.save(fn(), Path(out) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


# ------------------------------------------------------------------ collectives

def _collectives():
    r, w = distributed.rank(), distributed.world_size()
    again = distributed.init_from_env()                         # already in the group: no second init
    idx = torch.arange(10)
    lin = torch.nn.Linear(3, 1)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    lin.weight.grad = torch.full((1, 3), float(r + 1))          # rank 0: 1, rank 1: 2
    lin.bias.grad = torch.full((1,), 10.0 * (r + 1))            # rank 0: 10, rank 1: 20
    distributed.average_gradients(lin)
    rows = distributed.split_indices(7)
    gathered = distributed.all_gather_rows(rows[:, None].float() * 10, rows, 7)
    obj = distributed.broadcast_object({"from": r})
    bn = torch.nn.BatchNorm1d(2)
    bn.running_mean.fill_(r + 1.0)                              # rank 0: 1, rank 1: 2
    bn.num_batches_tracked.fill_(5 + r)                         # an integer buffer: not averaged
    distributed.average_buffers(bn)
    src = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        src[0].weight.fill_(r + 3.0)
        src[1].running_var.fill_(r + 7.0)
    distributed.broadcast_module(src)
    differs = torch.nn.Linear(2, 1)
    with torch.no_grad():
        differs.bias.fill_(float(r))
    return {"rank": r, "world": w, "shard": distributed.shard(idx), "small": distributed.shard(torch.arange(1)),
            "pair": distributed.shard(torch.arange(2)), "again": again,
            "grad": lin.weight.grad.clone(), "bias_grad": lin.bias.grad.clone(), "rows": rows,
            "gathered": gathered, "obj": obj, "main": distributed.is_main(),
            "bn_mean": bn.running_mean.clone(), "bn_count": int(bn.num_batches_tracked),
            "bcast_w": src[0].weight.detach().clone(), "bcast_var": src[1].running_var.clone(),
            "equal_same": distributed.params_equal_across_ranks([src]),
            "equal_differs": distributed.params_equal_across_ranks([differs]),
            "dev_cuda": distributed.local_device(torch.device("cuda", 0)),
            "dev_cpu": distributed.local_device(torch.device("cpu"))}


def test_collectives_two_processes(tmp_path):
    a, b = _spawn(_collectives, 2, tmp_path)
    assert (a["world"], b["world"]) == (2, 2) and a["main"] and not b["main"]
    assert a["again"] and b["again"]
    # shards are disjoint and cover the batch; a batch smaller than the world is not split
    assert sorted(torch.cat([a["shard"], b["shard"]]).tolist()) == list(range(10))
    assert a["small"].tolist() == b["small"].tolist() == [0]
    # a batch of fewer than 2 rows per process is not split either (no 1-row shard: BatchNorm fails on one)
    assert a["pair"].tolist() == b["pair"].tolist() == [0, 1]
    # gradients are averaged: (1 + 2) / 2, and every parameter gets its own mean: (10 + 20) / 2
    assert torch.equal(a["grad"], torch.full((1, 3), 1.5)) and torch.equal(b["grad"], a["grad"])
    assert torch.equal(a["bias_grad"], torch.full((1,), 15.0)) and torch.equal(b["bias_grad"], a["bias_grad"])
    # rows are split evenly, each row on one process only
    assert (a["rows"].tolist(), b["rows"].tolist()) == ([0, 2, 4, 6], [1, 3, 5])
    # rows computed in pieces come back whole and in order on every process
    want = torch.arange(7).float()[:, None] * 10
    assert torch.equal(a["gathered"], want) and torch.equal(b["gathered"], want)
    assert a["obj"] == b["obj"] == {"from": 0}
    # batch-norm running statistics are averaged, the integer batch count is left alone
    assert torch.equal(a["bn_mean"], torch.full((2,), 1.5)) and torch.equal(b["bn_mean"], a["bn_mean"])
    assert (a["bn_count"], b["bn_count"]) == (5, 6)
    # rank 0's parameters and buffers reach every process
    for r in (a, b):
        assert torch.equal(r["bcast_w"], torch.full((1, 2), 3.0)) and torch.equal(r["bcast_var"], torch.full((1,), 7.0))
    # the check says False on every process when one process differs
    assert a["equal_same"] and b["equal_same"] and not a["equal_differs"] and not b["equal_differs"]
    # a CUDA request becomes this process's GPU (cuda:LOCAL_RANK); the CPU stays the CPU
    assert (a["dev_cuda"], b["dev_cuda"]) == (torch.device("cuda", 0), torch.device("cuda", 1))
    assert a["dev_cpu"] == b["dev_cpu"] == torch.device("cpu")


def _gan_pairs():
    g = torch.Generator().manual_seed(0)
    on = torch.rand(8, 1, 32, 32, generator=g) * 2 - 1
    return on, on.clone(), torch.arange(8) % 3


def _gan_cfg(epochs: int):
    from _gan_sizes import tiny_gan_config
    cfg = tiny_gan_config(32)
    t = cfg.train
    t.epochs, t.batch_size, t.progress, t.hflip, t.checkpoint_every = epochs, 4, False, False, 1
    return cfg


def _gan_resume(folder: str):
    """A fold GAN under torchrun as the main job runs it: only rank 0 is given the folder (and its last.pt)."""
    from icegan.gan.trainer import train_gan
    st = train_gan(*_gan_pairs(), _gan_cfg(3), device="cpu", out_dir=folder if distributed.is_main() else None)
    return {"epochs": [h["epoch"] for h in st.history],
            "g": [p.detach().clone() for p in st.generator.parameters()]}


def test_a_gan_resumed_under_torchrun_continues_at_rank_0s_epoch_on_every_process(tmp_path):
    """A fold GAN cut short after epoch 1 resumes at epoch 2 on every process: before, only rank 0 (which alone
    reads last.pt) did, rank 1 began again at epoch 0, ran more epochs than rank 0 and waited on collectives rank 0
    never made."""
    import functools

    from icegan.gan.trainer import train_gan
    folder = tmp_path / "gan"
    train_gan(*_gan_pairs(), _gan_cfg(1), device="cpu", out_dir=folder)
    a, b = _spawn(functools.partial(_gan_resume, str(folder)), 2, tmp_path)
    assert a["epochs"] == b["epochs"] == [1, 2, 3]
    assert all(torch.equal(x, y) for x, y in zip(a["g"], b["g"]))


def test_single_process_is_a_no_op():
    assert not distributed.is_distributed() and distributed.is_main() and distributed.world_size() == 1
    idx = torch.arange(5)
    assert distributed.shard(idx) is idx
    m = torch.nn.Linear(2, 2)
    assert distributed.wrap_ddp(m) is m
    assert distributed.broadcast_object(3) == 3
    assert distributed.local_device(torch.device("cuda", 1)) == torch.device("cuda", 1)


_LAUNCH_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.mark.parametrize("world", [None, "1", ""])
def test_init_from_env_without_torchrun_does_nothing(monkeypatch, world):
    for k in _LAUNCH_VARS:
        monkeypatch.delenv(k, raising=False)
    if world is not None:
        monkeypatch.setenv("WORLD_SIZE", world)
    assert distributed.init_from_env() is False
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("given, missing", [({}, "RANK"), ({"RANK": "0", "MASTER_ADDR": "127.0.0.1"}, "MASTER_PORT")])
def test_init_from_env_names_what_torchrun_would_have_set(monkeypatch, given, missing):
    """WORLD_SIZE > 1 without torchrun's other variables: one error naming them and torchrun, before any rendezvous."""
    for k in _LAUNCH_VARS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    for k, v in given.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(RuntimeError, match=rf"WORLD_SIZE=2 but .*'{missing}'.*torchrun --nproc_per_node"):
        distributed.init_from_env()
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("device_type, backend", [("cpu", "gloo"), ("cuda", "nccl"), (None, "nccl")])
def test_init_from_env_picks_the_backend_of_the_runs_device(monkeypatch, device_type, backend):
    """On a machine with CUDA, a run on the CPU (device=cpu) joins with gloo (NCCL cannot reduce CPU tensors) and does
    not claim a GPU; a run on CUDA, or one that names no device, joins with NCCL on cuda:LOCAL_RANK."""
    for k, v in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(k, v)
    joined, gpus = [], []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", gpus.append)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend, **kw: joined.append(backend))
    assert distributed.init_from_env(device_type=device_type) is True
    assert joined == [backend] and gpus == ([1] if backend == "nccl" else [])


def test_world_of_one_is_not_distributed(tmp_path):
    """A process group of one process (initialised by other code) leaves every helper a no-op."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        idx, m = torch.arange(4), torch.nn.Linear(2, 2)
        assert not distributed.is_distributed() and distributed.world_size() == 1 and distributed.is_main()
        assert distributed.shard(idx) is idx and distributed.wrap_ddp(m) is m
    finally:
        torch.distributed.destroy_process_group()


# ------------------------------------------------------------------ recognizer under DDP

def _toy_features(n: int = 96, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.rand(n, 3, 28, 28, generator=g) * 0.5
    for k in range(3):                      # a class-specific blob: separable, but needs training
        x[y == k, k, 8:20, 8:20] += 0.5
    return x, y


def _train_recognizer():
    from icegan.recognition import RecognizerConfig, predict_models, train_models
    x, y = _toy_features()
    cfg = RecognizerConfig(name="ststnet", epochs=8, batch_size=32, input_size=28)
    mask = torch.ones(2, len(x), dtype=torch.bool)
    mask[1, :10] = False                    # two grouped models with different training sets
    model, _ = train_models(cfg, x, y, mask, seed=3, progress=False)
    same = distributed.params_equal_across_ranks([model])
    return {"probs": predict_models(model, x, tta_hflip=False), "same": same}


def test_recognizer_ddp_matches_one_process(tmp_path):
    a, b = _spawn(_train_recognizer, 2, tmp_path)
    single = _train_recognizer()
    # every process holds the same model after training (same all-reduced updates)
    assert a["same"] and b["same"]
    assert torch.equal(a["probs"], b["probs"])
    # and it learned what one process learns from the whole batches
    acc = lambda p: float((p.argmax(-1) == _toy_features()[1][:, None]).float().mean())  # noqa: E731
    assert acc(a["probs"]) == pytest.approx(acc(single["probs"]), abs=0.05)
    assert acc(single["probs"]) > 0.9
    # the tolerance stated in docs/benchmarks.md: per-sample probabilities within 0.15 of one process
    assert float((a["probs"] - single["probs"]).abs().max()) < 0.15


def _offtanet_warnings():
    import warnings

    from icegan.recognition import RecognizerConfig, train_models
    x, y = _toy_features(n=48)
    cfg = RecognizerConfig(name="offtanet", epochs=1, batch_size=24, input_size=28)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        train_models(cfg, x, y, torch.ones(1, len(x), dtype=torch.bool), seed=0, progress=False)
    return [str(w.message) for w in seen]


def test_ddp_on_channels_last_inputs_does_not_warn_about_grad_strides(tmp_path):
    """Off-TANet's 1×1 attention convolutions under DDP on CPU (channels_last inputs) made DDP warn "Grad strides do
    not match bucket view strides" on every process, for a layout that only differs in dimensions of size 1."""
    for r in _spawn(_offtanet_warnings, 2, tmp_path):
        assert not [m for m in r if "bucket view strides" in m], r


# ------------------------------------------------------------------ torchrun, the whole main job

def _run(cmd: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)


def test_torchrun_two_processes_gives_one_process_metrics(tmp_path):
    one = tmp_path / "one"
    two = tmp_path / "two"
    args = ["--no-progress"] + TINY
    r1 = _run([sys.executable, str(REPO / "train.py"), "--out", str(one)] + args, tmp_path)
    assert r1.returncode == 0, r1.stderr[-2000:]
    r2 = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(_free_port()), str(REPO / "train.py"), "--out", str(two)] + args, tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    m1 = json.loads((one / "metrics.json").read_text())
    m2 = json.loads((two / "metrics.json").read_text())
    # one writer: every test clip exactly once in predictions.csv, one result line printed
    p2 = pd.read_csv(two / "predictions.csv")
    assert len(p2) == m1["n_samples"] == len(set(p2["clip"]))
    assert r2.stdout.count("UF1") == 1
    assert m2["n_folds"] == m1["n_folds"] == 2
    # both runs learn the task, and 2-process DDP is within the stated tolerance of one process:
    # 0.2 UF1/UAR on this 2-fold toy run (shard-wise batch norm and loss normalisation; 18 test clips,
    # so one clip moves UF1 by ~0.05)
    for k in ("UF1", "UAR"):
        assert m1["overall"][k] > 0.7 and m2["overall"][k] > 0.7, (k, m1["overall"], m2["overall"])
        assert abs(m2["overall"][k] - m1["overall"][k]) <= 0.2, (k, m1["overall"], m2["overall"])


class _Joined(Exception):
    pass


def test_the_main_job_joins_torchrun_with_its_own_device(monkeypatch, tmp_path):
    """train.py tells init_from_env the run's device (device=cpu: gloo even on a GPU machine), before any work."""
    from icegan import pipeline
    seen = []

    def join(timeout_s=1800.0, device_type=None):
        seen.append(device_type)
        raise _Joined
    monkeypatch.setattr(distributed, "init_from_env", join)
    with pytest.raises(_Joined):
        pipeline.run_main(pipeline.load_main_config(None, ["device=cpu"]), tmp_path / "run", progress=False)
    assert seen == ["cpu"] and not (tmp_path / "run").exists()


def _entry_short(rank: int, world: int, port: int, fn, out: str) -> None:
    """As _entry, with a 60 s collective timeout: a process left waiting fails the test instead of hanging it."""
    import datetime

    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        torch.save(fn(), Path(out) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


def _gan_time_limited(fast_rank: int):
    """A 3-epoch GAN with max_minutes=1 whose process ``fast_rank`` sees 10 minutes pass per clock reading."""
    import icegan.gan.trainer as trainer
    from icegan.gan.trainer import train_gan
    if distributed.rank() == fast_rank:
        import time as real_time

        class FastClock:
            calls = 0

            def time(self):
                FastClock.calls += 1
                return real_time.time() + 600.0 * FastClock.calls

            def __getattr__(self, name):
                return getattr(real_time, name)
        trainer.time = FastClock()
    cfg = _gan_cfg(3)
    cfg.train.max_minutes = 1.0
    st = train_gan(*_gan_pairs(), cfg, device="cpu")
    return {"epochs": [h["epoch"] for h in st.history]}


@pytest.mark.parametrize("fast_rank, epochs", [(1, [1, 2, 3]), (0, [1])])
def test_gan_max_minutes_under_torchrun_stops_every_process_after_rank_0s_epoch(tmp_path, fast_rank, epochs):
    """Before, each process judged max_minutes by its own clock: one that stopped early left the other waiting on
    collectives it never made. Now rank 0's decision is every process's."""
    import functools
    port = _free_port()
    mp.spawn(_entry_short, args=(2, port, functools.partial(_gan_time_limited, fast_rank), str(tmp_path)), nprocs=2,
             join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2))
    assert a["epochs"] == b["epochs"] == epochs


@pytest.mark.parametrize("backend, device", [("nccl", torch.device("cuda", 1)), ("gloo", torch.device("cpu"))])
def test_the_equality_flag_lives_where_the_backend_reduces(monkeypatch, backend, device):
    """params_equal_across_ranks reduces its flag on the backend's device: this process's GPU under NCCL (a CPU
    tensor there raised), the CPU under gloo; one process: the CPU."""
    assert distributed.collective_device() == torch.device("cpu")
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda *a: backend)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert distributed.collective_device() == device
    made = []
    real_tensor = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(k.get("device")) or real_tensor(1))
    monkeypatch.setattr(torch.distributed, "broadcast", lambda t, src: None)
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda t, op=None: None)
    assert distributed.params_equal_across_ranks([torch.nn.Linear(2, 2)]) is True
    assert made == [device]
