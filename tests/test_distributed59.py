"""torchrun and worker-pool edges (audit a59dist): no 1-row shard of a training batch, rank 0's refusals reach the
other ranks (they leave quietly), commands that do not use torchrun refuse it, one error line per launch, the busy-CPU
note counts torchrun's processes, and a stopped worker leaves no leaked semaphore. Ranks are faked (monkeypatched
``icegan.distributed`` functions and torchrun's environment variables): no process group is started."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from icegan import distributed as D

REPO = Path(__file__).resolve().parents[1]
TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _fake_rank(monkeypatch, rank: int, world: int, told=None) -> list:
    """Make ``icegan.distributed`` act as rank ``rank`` of ``world`` processes; ``broadcast_object`` records what this
    rank sends and hands a non-zero rank ``told`` (what rank 0 sent). Returns the list of objects sent."""
    sent: list = []
    monkeypatch.setattr(D, "is_distributed", lambda: True)
    monkeypatch.setattr(D, "rank", lambda: rank)
    monkeypatch.setattr(D, "world_size", lambda: world)

    def broadcast_object(obj, src=0):
        sent.append(obj)
        return obj if rank == src else told
    monkeypatch.setattr(D, "broadcast_object", broadcast_object)
    return sent


def _launched(monkeypatch, rank: int, world: int = 2, local_world: int | None = None) -> None:
    """torchrun's environment for process ``rank`` of ``world`` (no process group is joined)."""
    for k in TORCHRUN_VARS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29999")
    if local_world is not None:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world))


# ------------------------------------------------------------------ 1. shards of a training batch

@pytest.mark.parametrize("world", [2, 3, 4, 6])
def test_no_rank_gets_a_one_row_shard(monkeypatch, world):
    for n in range(0, 4 * world + 2):
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(n)) if n else torch.arange(0)
        parts = []
        for r in range(world):
            _fake_rank(monkeypatch, r, world)
            parts.append(D.shard(idx).tolist())
        if n < 2 * world:           # W..2W-1 rows used to leave some rank 1 row: now every rank takes the batch
            assert all(p == idx.tolist() for p in parts), (world, n, parts)
        else:                       # split: disjoint, the whole batch, at least 2 rows each
            assert sorted(x for p in parts for x in p) == sorted(idx.tolist())
            assert min(len(p) for p in parts) >= 2, (world, n, parts)


def test_batchnorm_head_trains_on_a_batch_of_world_plus_one_rows(monkeypatch):
    """The audit's crash: 3 rows under 2 processes gave rank 1 one row, and BatchNorm1d raised "Expected more than 1
    value per channel when training"."""
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8)).train()
    x = torch.randn(3, 4)
    for r in range(2):
        _fake_rank(monkeypatch, r, 2)
        head(x[D.shard(torch.arange(3))]).sum().backward()


def test_single_process_shard_is_the_batch():
    idx = torch.arange(3)
    assert not D.is_distributed() and D.shard(idx) is idx


# ------------------------------------------------------------------ 2. a refusal on rank 0 reaches every rank

def test_main_only_check_single_process():
    assert D.main_only_check(lambda: 7) == 7
    with pytest.raises(KeyError):
        D.main_only_check(lambda: {}["x"])


def test_main_only_check_rank0_broadcasts_its_outcome(monkeypatch):
    sent = _fake_rank(monkeypatch, 0, 2)
    assert D.main_only_check(lambda: "payload") == "payload"
    assert sent == [False]

    def refuse():
        exc = ValueError("folder x is being written")
        exc.add_note("(in fold 1)")
        raise exc
    sent.clear()
    with pytest.raises(ValueError, match="being written"):
        D.main_only_check(refuse)
    assert sent == [True]


def test_main_only_check_other_rank_leaves_quietly(monkeypatch, capsys):
    called = []
    _fake_rank(monkeypatch, 1, 2, told=True)
    with pytest.raises(SystemExit) as info:
        D.main_only_check(lambda: called.append(1))
    assert info.value.code == 2 and not called
    assert capsys.readouterr().err == ""
    _fake_rank(monkeypatch, 1, 2, told=False)
    assert D.main_only_check(lambda: called.append(1)) is None and not called


def _demo_cfg():
    from icegan.pipeline import load_main_config
    return load_main_config(None, ["threads=0"])


def _lock_from_elsewhere(folder: Path):
    """An flock on ``folder/.lock`` through a descriptor of its own (as another process's would be)."""
    import fcntl
    import os
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"4242\n")
    return fd


def test_run_main_lock_refused_on_rank0_is_broadcast(monkeypatch, tmp_path):
    import os

    from icegan import pipeline
    from icegan.protocol import LosoStateError
    monkeypatch.setattr(pipeline, "_run_main_held", lambda *a, **k: pytest.fail("ran while the folder is locked"))
    sent = _fake_rank(monkeypatch, 0, 2)
    run = tmp_path / "run"
    fd = _lock_from_elsewhere(run)
    try:
        with pytest.raises(LosoStateError, match="4242"):
            pipeline.run_main(_demo_cfg(), run, progress=False)
    finally:
        os.close(fd)
    assert sent == [True]


def test_run_main_other_rank_leaves_when_rank0_refuses(monkeypatch, tmp_path, capsys):
    from icegan import pipeline
    monkeypatch.setattr(pipeline, "_run_main_held", lambda *a, **k: pytest.fail("ran although rank 0 refused"))
    _fake_rank(monkeypatch, 1, 2, told=True)
    with pytest.raises(SystemExit) as info:
        pipeline.run_main(_demo_cfg(), tmp_path / "run", progress=False)
    assert info.value.code == 2 and not (tmp_path / "run").exists()
    assert capsys.readouterr().err == ""


def test_fold_gan_checkpoint_refused_on_rank0_is_broadcast(monkeypatch, tmp_path):
    """The audit's damaged last.pt: rank 0 alone reads it (FoldRunner._gan_resume_point, which also refuses one of
    other pairs or more epochs) and its refusal goes through main_only_check, before train_gan's first collective."""
    from types import SimpleNamespace

    from icegan.gan.trainer import GanCheckpointError
    from icegan.pipeline import FoldRunner
    g = torch.Generator().manual_seed(0)
    onset = torch.rand(6, 1, 32, 32, generator=g) * 2 - 1
    apex, y = onset.clone(), torch.arange(6) % 3
    gan = tmp_path / "gan"
    runner = SimpleNamespace(run_dir=tmp_path)
    gcfg = SimpleNamespace(train=SimpleNamespace(resume=True, epochs=3))

    def resume_point():         # what FoldRunner._gan_stage runs on rank 0
        return FoldRunner._gan_resume_point(runner, SimpleNamespace(subject="s01"), gan, gcfg, onset, apex, y)
    sent = _fake_rank(monkeypatch, 0, 2)
    assert D.main_only_check(resume_point) is None and sent == [False]     # no checkpoint: a fresh fold
    (gan / "checkpoints").mkdir(parents=True)
    (gan / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")  # a copy cut short
    sent.clear()
    with pytest.raises(GanCheckpointError, match="last.pt cannot be read by torch.load"):
        D.main_only_check(resume_point)
    assert sent == [True]
    for payload, match in (({"data_sha256": "0" * 64, "epoch": 1}, "other training pairs"),
                           ({"epoch": 5}, "has trained 5 epochs, more than train.epochs=3")):
        torch.save(payload, gan / "checkpoints" / "last.pt")
        sent.clear()
        with pytest.raises(GanCheckpointError, match=match):
            D.main_only_check(resume_point)
        assert sent == [True]


# ------------------------------------------------------------------ 3. commands that do not use torchrun refuse it

@pytest.mark.parametrize("argv, command, instead", [
    (["loso", "--config", "no_such.yaml", "--out", "{out}"], "icegan loso", "use workers=N"),
    (["suite", "--config", "no_such.yaml", "--out", "{out}"], "icegan suite", "workers=N"),
    (["gan", "train", "--config", "no_such.yaml"], "icegan gan train", "run it as one process"),
    (["flow", "train", "--config", "no_such.yaml"], "icegan flow train", "run it as one process"),
])
def test_commands_refuse_torchrun(monkeypatch, tmp_path, capsys, argv, command, instead):
    from icegan.cli import main
    argv = [a.format(out=tmp_path / "out") for a in argv]
    _launched(monkeypatch, 0)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{command}: error: {command} does not use torchrun" in err and instead in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    _launched(monkeypatch, 1)                       # the other ranks: the same code, nothing printed
    assert main(argv) == 2
    assert capsys.readouterr().err == ""


def test_loso_runs_without_torchrun_variables(monkeypatch, capsys):
    from icegan.commands import refuse_torchrun
    for k in TORCHRUN_VARS:
        monkeypatch.delenv(k, raising=False)
    assert refuse_torchrun("icegan loso") is None
    monkeypatch.setenv("WORLD_SIZE", "1")           # torchrun --nproc_per_node 1
    assert refuse_torchrun("icegan loso") is None
    monkeypatch.setenv("WORLD_SIZE", "two")
    assert refuse_torchrun("icegan loso") == 2
    assert "WORLD_SIZE='two' is not an integer" in capsys.readouterr().err


# ------------------------------------------------------------------ 4. one error line per launch

@pytest.mark.parametrize("rank", [0, 1])
def test_train_error_printed_by_rank0_only(monkeypatch, capsys, tmp_path, rank):
    from icegan.pipeline import main
    _launched(monkeypatch, rank)
    assert main(["--config", str(tmp_path / "no_such.yaml")]) == 2
    err = capsys.readouterr().err
    assert ("train.py: error:" in err) == (rank == 0) and (err == "") == (rank == 1)


@pytest.mark.parametrize("rank", [0, 1])
def test_train_run_error_printed_by_rank0_only(monkeypatch, capsys, rank):
    from icegan import pipeline
    from icegan.protocol import LosoStateError

    def refuse(*a, **k):
        raise LosoStateError("runs/demo is being written by the process with pid 4242")
    monkeypatch.setattr(pipeline, "run_main", refuse)
    monkeypatch.setattr(pipeline.distributed, "shutdown", lambda: None)
    _launched(monkeypatch, rank)
    assert pipeline.main(["threads=0"]) == 2
    err = capsys.readouterr().err
    assert err == ("train.py: error: runs/demo is being written by the process with pid 4242\n" if rank == 0 else "")


@pytest.mark.parametrize("rank", [0, 1])
def test_ctrl_c_line_printed_by_rank0_only(monkeypatch, capsys, rank):
    from icegan import pipeline

    def interrupt(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(pipeline, "run_from_args", interrupt)
    _launched(monkeypatch, rank)
    assert pipeline.main([]) == 130
    err = capsys.readouterr().err
    assert ("train.py: interrupted" in err) == (rank == 0) and (err == "") == (rank == 1)


def test_file_system_error_printed_by_rank0_only(monkeypatch, capsys):
    import errno

    from icegan.commands import file_system_error
    exc = PermissionError(errno.EACCES, "Permission denied", "/runs/x")
    _launched(monkeypatch, 1)
    assert file_system_error("train.py", exc) == 2 and capsys.readouterr().err == ""
    _launched(monkeypatch, 0)
    assert file_system_error("train.py", exc) == 2 and "Permission denied: /runs/x" in capsys.readouterr().err


# ------------------------------------------------------------------ 6. the busy-CPU note under torchrun

def test_cpu_workers_counts_torchruns_local_processes(monkeypatch):
    from icegan.protocol import _cpu_workers
    for k in TORCHRUN_VARS:
        monkeypatch.delenv(k, raising=False)
    threads = torch.get_num_threads()
    assert _cpu_workers(None, None) == (1, threads)
    _launched(monkeypatch, 0, world=2, local_world=2)
    assert _cpu_workers(None, None) == (2, threads)
    _launched(monkeypatch, 3, world=8, local_world=4)      # two machines of 4 processes: 4 on this one
    assert _cpu_workers(None, None) == (4, threads)
    _launched(monkeypatch, 0, world=1, local_world=1)
    assert _cpu_workers(None, None) == (1, threads)


# ------------------------------------------------------------------ 5. a stopped worker leaks no semaphore

def test_group_worker_takes_a_local_tqdm_lock(monkeypatch):
    import signal

    from icegan import executors
    calls = []
    monkeypatch.setattr(signal, "signal", lambda *a: None)          # the test process keeps its Ctrl-C
    monkeypatch.setattr("icegan.environment.limit_threads", lambda n: None)
    monkeypatch.setattr("icegan.allocator.retain_freed_memory", lambda: None)
    monkeypatch.setattr(executors, "_local_tqdm_lock", lambda: calls.append(1))
    monkeypatch.setattr(executors, "_GROUP_FN", None)
    executors._init_group_worker(len, 1)
    assert calls == [1]


def test_terminated_worker_leaks_no_semaphore(tmp_path):
    """A spawned worker that made a tqdm bar and was stopped by SIGTERM (as ProcessGroupMap stops its workers after a
    failed fold or Ctrl-C) left tqdm's named semaphore to Python's resource tracker, which warned at exit."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing as mp, sys, time

        def child(ready, local_lock):
            if local_lock:
                from icegan.executors import _local_tqdm_lock
                _local_tqdm_lock()
            from tqdm.auto import tqdm
            for _ in tqdm(range(2), disable=True):
                pass
            ready.set()
            time.sleep(60)

        if __name__ == "__main__":
            ctx = mp.get_context("spawn")
            ready = ctx.Event()
            p = ctx.Process(target=child, args=(ready, sys.argv[1] == "1"))
            p.start()
            assert ready.wait(60)
            p.terminate()
            p.join()
    """))
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    for k in TORCHRUN_VARS:
        env.pop(k, None)
    before = subprocess.run([sys.executable, str(script), "0"], capture_output=True, text=True, env=env, timeout=120)
    assert "leaked semaphore" in before.stderr      # the check sees the leak where tqdm's default lock is used
    after = subprocess.run([sys.executable, str(script), "1"], capture_output=True, text=True, env=env, timeout=120)
    assert after.returncode == 0 and "leaked semaphore" not in after.stderr, after.stderr
