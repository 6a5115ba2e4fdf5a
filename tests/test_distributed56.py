"""The parallel paths' errors and records: a fold's error under Ray raised as itself, a crashed Ray worker or a killed
worker process named, torchrun's rank 0 error told to the other ranks, worker counts from the usable CPUs, and the
worker count in environment.jsonl."""
from __future__ import annotations

import argparse
import json
import os
import pickle
import socket
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
from _group_helpers import GroupKilled

from icegan.protocol import Fold

REMOTE_TB = ("\x1b[36mray::_run_fold_task()\x1b[39m (pid=1762, ip=192.0.2.2)\n"
             + "".join(f'  File "/work/icegan/x.py", line {i}, in f\n    y = g()\n' for i in range(6))
             + "ValueError: the remote text")


class _FakeRayTaskError(Exception):
    """As ``ray.exceptions.RayTaskError``: ``cause`` the task's exception; ``as_instanceof_cause`` the error
    ``ray.get`` raises, an instance of both this class and the cause's, whose ``str`` is the remote traceback and
    whose other attributes (``__notes__``) are the cause's."""

    def __init__(self, cause, traceback_str):
        super().__init__(traceback_str)
        self.cause, self.traceback_str = cause, traceback_str

    def __str__(self):
        return self.traceback_str

    def as_instanceof_cause(self):
        msg = str(self)

        class Dual(_FakeRayTaskError, type(self.cause)):
            def __init__(self, cause):
                self.cause = cause
                self.args = (cause,)

            def __getattr__(self, name):
                return getattr(self.cause, name)

            def __str__(self):
                return msg
        return Dual(self.cause)


class _FakeWorkerCrashedError(Exception):
    def __str__(self):
        return ("The worker died unexpectedly while executing this task. Check python-core-worker-*.log files for "
                "more information.")


class _FakeRay:
    """The part of the ``ray`` API that RayExecutor uses, in this process, raising as Ray does: a task's exception
    comes back pickled, inside a RayTaskError of its class; the fold ``crash_on`` loses its worker."""

    exceptions = types.SimpleNamespace(RayTaskError=_FakeRayTaskError, WorkerCrashedError=_FakeWorkerCrashedError)

    def __init__(self, crash_on=None):
        self.crash_on, self.tasks, self.initialized, self.init_kwargs = crash_on, {}, True, None

    def is_initialized(self):
        return self.initialized

    def init(self, **kwargs):
        self.init_kwargs, self.initialized = kwargs, True

    def shutdown(self):
        self.initialized = False

    def cluster_resources(self):
        return {"CPU": 2.0}

    def nodes(self):
        return [{"Alive": True, "Resources": self.cluster_resources()}]

    def put(self, obj):
        return obj

    def remote(self, **options):
        fake = self

        class Task:
            def __init__(self, fn):
                self.fn = fn

            def remote(self, *args):
                ref = len(fake.tasks)
                fake.tasks[ref] = (self.fn, args)
                return ref
        return Task

    def wait(self, refs, num_returns=1):
        return refs[:1], refs[1:]

    def get(self, ref):
        fn, args = self.tasks[ref]
        if args[1].index == self.crash_on:
            raise _FakeWorkerCrashedError()
        try:
            return fn(*args)
        except Exception as exc:
            raise _FakeRayTaskError(pickle.loads(pickle.dumps(exc)), REMOTE_TB).as_instanceof_cause() from None

    def cancel(self, ref, force=False):
        pass


def _folds(n: int):
    return [Fold(i, f"d/s{i}", np.arange(2), np.arange(1)) for i in range(n)]


class _Fails:
    def __call__(self, fold):
        if fold.index == 1:
            from icegan.gan.trainer import GanCheckpointError
            raise GanCheckpointError("x.pt cannot be read by torch.load")
        return fold.index * 10


def _index(fold):
    return fold.index


@pytest.fixture
def fake_ray(monkeypatch):
    import sys

    import icegan.environment
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(icegan.environment, "limit_threads", lambda n: None)
    return fake


def test_a_fold_error_under_ray_is_the_fold_s_own_one_line_error(fake_ray):
    """A user error inside a Ray fold is raised as the error the fold raised (its class, its message, its fold note
    once), not as Ray's remote traceback: a command prints the line a sequential run prints."""
    from icegan.commands import error_text
    from icegan.executors import RayExecutor, sequential_map
    from icegan.gan.trainer import GanCheckpointError
    got, errors = [], []
    for fold_map in (sequential_map, RayExecutor(workers=1)):
        with pytest.raises(GanCheckpointError) as exc:
            for fold, scores in fold_map(_Fails(), _folds(3)):
                got.append(scores)
        errors.append(error_text(exc.value))
    assert got == [0, 0]
    assert errors[1] == errors[0] == "x.pt cannot be read by torch.load (in the fold of held-out subject d/s1, fold 2)"


def test_a_crashed_ray_worker_names_its_fold(fake_ray):
    from icegan.executors import RayExecutor
    fake_ray.crash_on = 2
    got = []
    with pytest.raises(_FakeWorkerCrashedError) as exc:
        for fold, scores in RayExecutor(workers=1)(_index, _folds(4)):
            got.append(scores)
    assert got == [0, 1]
    assert exc.value.__notes__ == ["(in the fold of held-out subject d/s2, fold 3)"]


def test_a_killed_worker_process_is_one_error_naming_the_unfinished_folds():
    """A worker process killed (the out-of-memory killer's SIGKILL): the groups finished are delivered, then one
    error says a worker process died, lists every fold not finished (the killed one's and those the pool dropped), and
    that a rerun resumes; no fold note naming one fold."""
    from icegan.executors import ProcessGroupMap, WorkerDiedError
    folds = _folds(4)
    got = []
    with pytest.raises(WorkerDiedError) as exc:
        for group, res in ProcessGroupMap(1, threads=1)(GroupKilled(die_on=1), [folds[0:1], folds[1:3], folds[3:4]]):
            got.append(res)
    assert got == [[0]]
    msg = str(exc.value)
    assert msg.startswith("a worker process died") and "out of memory" in msg and "resumes" in msg, msg
    assert "3 folds not finished: d/s1, d/s2, d/s3" in msg, msg
    assert not getattr(exc.value, "__notes__", None) and "\n" not in msg


def test_icegan_loso_reports_a_killed_worker_in_one_line(monkeypatch, tmp_path, capsys):
    from icegan.commands import loso
    from icegan.executors import WorkerDiedError

    def died(*a, **k):
        raise WorkerDiedError("a worker process died ...")
    monkeypatch.setattr(loso, "run", died)
    args = argparse.Namespace(config=None, overrides=["data.source=toy"], print_config=False, out=str(tmp_path),
                              no_progress=True)
    rc = loso._main(args)
    assert rc == 2 and capsys.readouterr().err == "icegan loso: error: a worker process died ...\n"


# ------------------------------------------------------------------ usable CPUs, environment.jsonl

def test_worker_counts_follow_the_usable_cpus_not_the_machine_s(monkeypatch):
    """Under ``taskset -c 0`` (1 usable CPU of 8): ProcessGroupMap's default threads and icegan loso's workers=0 count
    the CPUs this process may run on."""
    import icegan.environment
    from icegan.commands.loso import LosoConfig, fold_runner
    from icegan.data.toy_features import make_toy_features
    from icegan.executors import ProcessGroupMap
    from icegan.recognizer_config import RecognizerConfig
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 1)
    assert ProcessGroupMap(2).threads == 1
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1)
    cfg = LosoConfig(device="cpu", workers=0, threads=1, model=RecognizerConfig(folds_per_group=2))
    assert fold_runner(cfg, fs, progress=False)[2] is None          # one worker: no process pool
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 6)
    assert ProcessGroupMap(2).threads == 3
    assert fold_runner(cfg, fs, progress=False)[2].workers == 6


def test_a_local_ray_instance_of_workers_0_gets_the_usable_cpus(fake_ray, monkeypatch):
    import icegan.environment
    from icegan.executors import RayExecutor
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 3)
    fake_ray.initialized = False
    assert [s for _, s in RayExecutor(workers=0)(_index, _folds(2))] == [0, 1]
    assert fake_ray.init_kwargs["num_cpus"] == 3


class _PoolMap:
    """A fold map that says it keeps 3 processes of 2 threads busy (as ProcessGroupMap / a local RayExecutor)."""
    workers, threads = 3, 2

    def __call__(self, fold_fn, folds):
        for f in folds:
            yield f, fold_fn(f)


def _uniform(fold):
    return np.full((len(fold.test_idx), 3), 1 / 3)


def test_environment_jsonl_records_the_workers_and_their_threads(tmp_path):
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)
    run_loso(toy.samples, _uniform, tmp_path / "a", progress=False, fold_map=_PoolMap())     # 3 workers, more folds
    run_loso(toy.samples, _uniform, tmp_path / "b", progress=False, max_folds=1)
    run_loso(toy.samples, _uniform, tmp_path / "c", progress=False, max_folds=1, fold_map=_PoolMap())
    a, b, c = (json.loads((tmp_path / r / "environment.jsonl").read_text().splitlines()[-1]) for r in "abc")
    assert (a["workers"], a["threads_per_worker"]) == (3, 2)
    assert (b["workers"], b["threads_per_worker"]) == (1, torch.get_num_threads())
    assert (c["workers"], c["threads_per_worker"]) == (1, 2)     # 1 fold: the pool runs 1 at once (test_resume63)


# ------------------------------------------------------------------ torchrun: rank 0's error before the folds

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_entry(rank: int, world: int, port: int, run_dir: str, out: str) -> None:
    from icegan import distributed
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    assert distributed.init_from_env(timeout_s=60)
    toy = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1)
    try:
        run_loso(toy.samples, _uniform, run_dir, progress=False, max_folds=1)
        got = ("returned",)
    except SystemExit as exc:
        got = ("exit", exc.code)
    except Exception as exc:            # noqa: BLE001 - what each rank raised is the result
        got = ("raised", type(exc).__name__, str(exc))
    finally:
        distributed.shutdown()
    Path(out, f"rank{rank}.json").write_text(json.dumps(got))


def test_under_torchrun_rank_0_s_error_before_the_folds_ends_the_other_ranks_quietly(tmp_path):
    """Rank 0 refuses the run folder (a predictions.csv that is not one): rank 0 raises its one-line error, rank 1
    leaves with exit status 2 and nothing to print, instead of gloo's 'Connection closed by peer'."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "predictions.csv").write_text("fold,dataset\n0,casme2\n")
    mp.spawn(_rank_entry, args=(2, _free_port(), str(run_dir), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0[:2] == ["raised", "LosoStateError"] and "holds a predictions.csv but no run header" in r0[2], r0
    assert r1 == ["exit", 2], r1
    assert not pd.read_csv(run_dir / "predictions.csv").empty          # rank 0's refusal left the file as it was
