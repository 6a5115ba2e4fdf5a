"""LOSO folds as Ray tasks (issue #8) and fold groups in local processes: same predictions as the sequential run, same resume."""
from __future__ import annotations

import pandas as pd
import pytest

from _group_helpers import GroupBoom
from icegan.executors import RayExecutor, sequential_map
from icegan.pipeline import load_main_config, run_main

TINY = ["data.n_subjects=3", "data.clips_per_class=2", "data.img_size=32", "data.max_folds=2",
        "gan.epochs=1", "gan.base_channels=8", "gan.max_channels=32", "gan.d_base_channels=8",
        "recognizer.epochs=3", "threads=1", "flow.iters=2"]


def _cfg(name: str):
    return load_main_config(None, TINY + [f"name={name}"])


def _preds(run_dir) -> pd.DataFrame:
    p = pd.read_csv(run_dir / "predictions.csv")
    return p.sort_values(["fold", "clip"]).reset_index(drop=True)


def test_sequential_map_keeps_order():
    out = list(sequential_map(lambda f: f * 10, [3, 1, 2]))
    assert out == [(3, 30), (1, 10), (2, 20)]


@pytest.fixture(scope="module")
def sequential_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("seq") / "run"
    metrics = run_main(_cfg("tiny"), d, progress=False)
    return d, metrics


@pytest.fixture(scope="module")
def ray_executor():
    with RayExecutor(workers=2, num_cpus=1) as ex:
        yield ex


def test_ray_executor_matches_sequential_and_resumes(sequential_run, ray_executor, tmp_path):
    seq_dir, seq_metrics = sequential_run
    assert seq_metrics["n_folds"] == 2
    ex = ray_executor
    # (1) a fresh run: both folds as Ray tasks, in parallel
    ray_dir = tmp_path / "ray"
    ray_metrics = run_main(_cfg("tiny"), ray_dir, progress=False, executor=ex)
    # (2) resume: a run interrupted after its first fold, finished by the Ray executor
    res_dir = tmp_path / "resume"
    res_dir.mkdir()
    for f in ("run.json", "config.yaml", "predictions.csv"):
        (res_dir / f).write_bytes((seq_dir / f).read_bytes())
    p = pd.read_csv(res_dir / "predictions.csv")
    first = p["fold"].min()
    p[p["fold"] == first].to_csv(res_dir / "predictions.csv", index=False)
    res_metrics = run_main(_cfg("tiny"), res_dir, progress=False, executor=ex)
    # exactly the sequential scores, not only the same metrics
    pd.testing.assert_frame_equal(_preds(ray_dir), _preds(seq_dir), check_exact=True)
    assert ray_metrics == seq_metrics
    pd.testing.assert_frame_equal(_preds(res_dir), _preds(seq_dir), check_exact=True)
    assert res_metrics == seq_metrics
    # the resumed run trained only the missing fold: its timing lists one fold
    import json
    timing = json.loads((res_dir / "timing.json").read_text())
    assert len(timing["fold_seconds"]) == 1


def test_ray_executor_reports_a_failing_fold(ray_executor):
    class Boom:
        def __call__(self, fold):
            if fold.index == 1:
                raise ValueError("fold 1 broke")
            return fold.index

    from icegan.protocol import Fold
    import numpy as np
    folds = [Fold(i, f"d/s{i}", np.arange(2), np.arange(1)) for i in range(3)]
    got = []
    ex = RayExecutor(workers=1, num_cpus=1)        # joins the running instance, one fold at a time
    with pytest.raises(Exception, match="fold 1 broke"):
        for fold, res in ex(Boom(), folds):
            got.append(res)
    assert got == [0]          # the fold before the failure was delivered (and so recorded)


def test_ray_executor_stops_running_folds_on_ctrl_c(ray_executor, tmp_path):
    """Ctrl-C in the driver while folds run as Ray tasks: the finished fold was delivered, and the task still running
    is cancelled (its worker process ends) instead of training on unseen."""
    import os
    import time

    import numpy as np

    from icegan.protocol import Fold

    class SlowSecond:
        def __init__(self, pid_file):
            self.pid_file = pid_file

        def __call__(self, fold):
            if fold.index == 1:
                with open(self.pid_file + ".tmp", "w") as fh:
                    fh.write(str(os.getpid()))
                os.replace(self.pid_file + ".tmp", self.pid_file)      # the file appears whole: no empty read
                time.sleep(120)
            return fold.index

    pid_file = tmp_path / "pid"
    folds = [Fold(i, f"d/s{i}", np.arange(2), np.arange(1)) for i in range(2)]
    got = []
    with pytest.raises(KeyboardInterrupt):
        for fold, res in RayExecutor(workers=2, num_cpus=1)(SlowSecond(str(pid_file)), folds):
            got.append(res)
            deadline = time.time() + 60
            while not pid_file.exists() and time.time() < deadline:
                time.sleep(0.1)
            raise KeyboardInterrupt             # what a terminal's Ctrl-C raises in the driver
    assert got == [0]
    pid = int(pid_file.read_text())
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the Ray worker {pid} running the interrupted fold is still alive")


def test_process_group_map_runs_groups_in_processes_and_reports_a_failure():
    import numpy as np

    from icegan.executors import ProcessGroupMap
    from icegan.protocol import Fold
    folds = [Fold(i, f"d/s{i}", np.arange(2), np.arange(1), writer=lambda: None) for i in range(4)]   # unpicklable writer stays behind
    ok = dict((tuple(f.index for f in g), r) for g, r in ProcessGroupMap(2, threads=1)(GroupBoom(), [folds[2:4], folds[0:1]]))
    assert ok == {(2, 3): [20, 30], (0,): [0]}
    got = []
    with pytest.raises(ValueError, match="group with fold 1 broke"):
        for group, res in ProcessGroupMap(1, threads=1)(GroupBoom(), [folds[0:1], folds[1:2], folds[2:3]]):
            got.append(res)
    assert got == [[0]]        # the group before the failure was delivered (and so recorded)
    with pytest.raises(ValueError, match="workers must be"):
        ProcessGroupMap(0)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return False


def _slow_pool(pid_dir, preamble: str = "", on_interrupt: str = "", **popen):
    """A Python process running 2 slow fold groups (tests/_group_helpers.SlowGroup) in a ProcessGroupMap of 2
    workers, started with ``preamble`` and ending with ``on_interrupt`` on KeyboardInterrupt (if given); returns the
    process and the 2 worker ids, once both workers are at work."""
    import os
    import subprocess
    import sys
    import time
    run = f"list(ProcessGroupMap(2, threads=1)(SlowGroup({str(pid_dir)!r}), [folds[:1], folds[1:]]))"
    body = f"try:\n    {run}\nexcept KeyboardInterrupt:\n    {on_interrupt}" if on_interrupt else run
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import numpy as np; {preamble}"
            "from _group_helpers import SlowGroup; from icegan.executors import ProcessGroupMap; "
            "from icegan.protocol import Fold; folds = [Fold(i, f'd/s{i}', np.arange(2), np.arange(1)) for i in range(2)]\n"
            + body)
    proc = subprocess.Popen([sys.executable, "-c", code], **popen)
    deadline = time.time() + 90
    while len(os.listdir(pid_dir)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    workers = [int(p) for p in os.listdir(pid_dir)]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    return proc, workers


def _assert_gone(workers, seconds: float = 15) -> None:
    import time
    deadline = time.time() + seconds
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers)


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_process_group_map_workers_end_when_the_main_process_is_killed(tmp_path):
    """A killed `icegan loso` (SIGKILL, no clean-up) must not leave its fold workers training."""
    import signal
    main_proc, workers = _slow_pool(tmp_path)
    try:
        main_proc.send_signal(signal.SIGKILL)
        main_proc.wait()
        _assert_gone(workers)
    finally:
        main_proc.kill()


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_process_group_map_leaves_ctrl_c_to_the_parent(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: the workers ignore it (no traceback from each), the main
    process stops and ends the workers at once instead of waiting for their groups, and the handler of the main
    process is what it was before."""
    import os
    import signal
    import subprocess

    import numpy as np

    from _group_helpers import SigintState
    from icegan.executors import ProcessGroupMap
    from icegan.protocol import Fold
    before = signal.getsignal(signal.SIGINT)
    folds = [Fold(i, f"d/s{i}", np.arange(2), np.arange(1)) for i in range(2)]
    got = [r for _, r in ProcessGroupMap(2, threads=1)(SigintState(), [folds[:1], folds[1:]])]
    assert got == [[True], [True]] and signal.getsignal(signal.SIGINT) is before

    # Python's own Ctrl-C handler, as in a terminal (a pytest-xdist worker runs with SIGINT ignored); its own process
    # group, as a terminal job
    main_proc, workers = _slow_pool(tmp_path, "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); ",
                                    "print('main: interrupted', file=sys.stderr); sys.exit(130)",
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        os.killpg(main_proc.pid, signal.SIGINT)          # what a terminal does on Ctrl-C
        _, err = main_proc.communicate(timeout=30)      # well before the groups' 60 s of work
        assert main_proc.returncode == 130 and err.strip() == "main: interrupted", err
        _assert_gone(workers)
    finally:
        main_proc.kill()


def _index_tensors():
    """A fold function (defined here, so that Ray pickles it by value) that indexes a tensor with the fold's rows
    and converts them with ``torch.as_tensor``, with every warning an error and torch's once-per-process warnings
    re-armed; returns the rows it selected and whether the fold's training rows were writable."""

    class IndexTensors:
        def __call__(self, fold):
            import warnings

            import torch
            torch.set_warn_always(True)         # "not writable" is a once-per-process warning: make it fire every time
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    rows = torch.arange(10.0)[fold.train_idx]
                    test = torch.as_tensor(fold.test_idx)
            finally:
                torch.set_warn_always(False)
            return rows.tolist(), test.tolist(), bool(fold.train_idx.flags.writeable)

    return IndexTensors()


def test_fold_task_makes_read_only_indices_writable_without_torch_warning():
    """Ray hands a fold's index arrays over read-only; torch warns "The given NumPy array is not writable" when one
    indexes a tensor (FoldRunner's real_feats[fold.train_idx]). The task body copies such arrays only: no warning,
    same rows; a fold with writable arrays is passed on untouched (no copy)."""
    import numpy as np

    from icegan.executors import _run_fold_task, writable_indices
    from icegan.protocol import Fold
    train, test = np.array([1, 3, 5]), np.array([0, 2])
    for a in (train, test):
        a.flags.writeable = False
    fold = Fold(0, "d/s0", train, test)
    assert _run_fold_task(_index_tensors(), fold, 0) == (([1.0, 3.0, 5.0], [0, 2], True), None)
    assert not fold.train_idx.flags.writeable          # the caller's fold is not changed
    ok = Fold(1, "d/s1", np.array([1, 3]), np.array([0]))
    assert writable_indices(ok) is ok
    mixed = Fold(2, "d/s2", np.array([4]), test)
    got = writable_indices(mixed)
    assert got.train_idx is mixed.train_idx and got.test_idx is not test and got.test_idx.flags.writeable


def test_ray_fold_gets_writable_indices(ray_executor):
    """End to end: the index arrays a Ray task's fold function sees are writable, and indexing a tensor with them
    does not warn (the function turns warnings into errors, so a warning would fail the task)."""
    import numpy as np

    from icegan.protocol import Fold
    folds = [Fold(i, f"d/s{i}", np.array([i, i + 2]), np.array([i])) for i in range(2)]
    got = {fold.index: res for fold, res in ray_executor(_index_tensors(), folds)}
    assert got == {0: ([0.0, 2.0], [0], True), 1: ([1.0, 3.0], [1], True)}


def _folds(n: int, **kw):
    import numpy as np

    from icegan.protocol import Fold
    return [Fold(i, f"d/s{i}", np.arange(2), np.arange(1), **kw) for i in range(n)]


class _Reported:
    """A fold function with per-fold extras, as FoldRunner's wall times: ``task_report`` in the task, ``merge_report``
    on the driver."""

    def __init__(self, fail_on=None):
        self.fail_on, self.merged = fail_on, {}

    def __call__(self, fold):
        if fold.index == self.fail_on:
            raise ValueError(f"fold {fold.index} broke")
        return fold.index * 10

    def task_report(self, fold):
        return {"seconds": fold.index + 0.5}

    def merge_report(self, fold, extra):
        self.merged[fold.index] = extra


def test_fold_task_sets_threads_and_returns_the_task_report(monkeypatch):
    import icegan.environment
    from icegan.executors import _run_fold_task
    calls = []
    monkeypatch.setattr(icegan.environment, "limit_threads", calls.append)
    fold = _folds(4)[3]
    assert _run_fold_task(_Reported(), fold, 1) == (30, {"seconds": 3.5}) and calls == [1]
    assert _run_fold_task(_Reported(), fold, 0) == (30, {"seconds": 3.5}) and calls == [1]    # 0: left as it is
    assert _run_fold_task(lambda f: f.index, fold, 2) == (3, None) and calls == [1, 2]


def test_group_worker_applies_threads_and_allocator_and_ignores_ctrl_c(monkeypatch):
    """What each ProcessGroupMap worker does before its first group (run here, in this process)."""
    import signal

    import icegan.allocator
    import icegan.environment
    import icegan.executors as ex
    calls = []
    monkeypatch.setattr(icegan.environment, "limit_threads", lambda n: calls.append(("threads", n)))
    monkeypatch.setattr(icegan.allocator, "retain_freed_memory", lambda: calls.append(("retain",)) or True)
    monkeypatch.setattr(ex, "_GROUP_FN", None)
    before = signal.getsignal(signal.SIGINT)
    try:
        ex._init_group_worker(GroupBoom(), 3)
        ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    assert ignored and sorted(calls) == [("retain",), ("threads", 3)]
    folds = _folds(4)
    assert ex._run_group_task(folds[2:4]) == ([20, 30], None)


def test_process_group_map_threads_default_and_limits(monkeypatch):
    """threads=0 shares the usable CPUs (this process's affinity mask) among the workers (at least 1 each); negative
    threads are refused; no groups start no workers and yield nothing."""
    import icegan.environment
    from icegan.executors import ProcessGroupMap
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 8)
    assert [ProcessGroupMap(w).threads for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert ProcessGroupMap(16, threads=3).threads == 3
    with pytest.raises(ValueError, match="threads must be >= 0, got -1"):
        ProcessGroupMap(2, threads=-1)
    assert list(ProcessGroupMap(2, threads=1)(GroupBoom(), [])) == []


class _FakeRay:
    """The part of the ``ray`` API that RayExecutor uses, run in this process: a task runs when its result is fetched,
    tasks finish in the order they were submitted. Records the task options, the folds each task got, the most tasks
    in flight, the cancelled tasks, ``init`` arguments and shutdowns. A task's exception reaches ``get`` as raised
    (Ray's RayTaskError wrapping: tests/test_distributed56.py)."""

    exceptions = __import__("types").SimpleNamespace(RayTaskError=type("RayTaskError", (Exception,), {}))

    def __init__(self, initialized: bool = True, gpus: int = 0):
        self.initialized, self.gpus = initialized, gpus
        self.options, self.init_kwargs, self.shutdowns = None, None, 0
        self.tasks, self.in_flight, self.peak, self.cancelled = [], {}, 0, []

    def is_initialized(self):
        return self.initialized

    def init(self, **kwargs):
        self.init_kwargs, self.initialized = kwargs, True

    def shutdown(self):
        self.shutdowns += 1
        self.initialized = False

    def cluster_resources(self):
        return {"CPU": 4.0, "GPU": float(self.gpus)}

    def nodes(self):
        """One alive node holding the whole cluster's resources."""
        return [{"Alive": True, "Resources": self.cluster_resources()}]

    def put(self, obj):
        return obj

    def remote(self, **options):
        self.options = options
        fake = self

        class Task:
            def __init__(self, fn):
                self.fn = fn

            def remote(self, *args):
                ref = len(fake.tasks)
                fake.tasks.append(args)
                fake.in_flight[ref] = (self.fn, args)
                fake.peak = max(fake.peak, len(fake.in_flight))
                return ref
        return Task

    def wait(self, refs, num_returns=1):
        return refs[:1], refs[1:]

    def get(self, ref):
        fn, args = self.in_flight.pop(ref)
        return fn(*args)

    def cancel(self, ref, force=False):
        self.cancelled.append(self.tasks[ref][1].index)
        self.in_flight.pop(ref, None)


@pytest.fixture
def fake_ray(monkeypatch):
    import sys

    import icegan.environment
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(icegan.environment, "limit_threads", lambda n: None)    # the tasks run in this process
    return fake


@pytest.mark.parametrize("gpus", [0, 1])
def test_ray_executor_on_fake_ray_runs_each_fold_once_with_its_settings(fake_ray, gpus):
    """Every fold is one task (no retries), started in the order given with at most ``workers`` in flight, without its
    TensorBoard writer; the driver gets the original folds with their scores and merges the per-fold extras; the
    thread count defaults to num_cpus; one GPU per task when the cluster has GPUs."""
    fake_ray.gpus = gpus
    folds = _folds(5, writer=lambda: None)
    fn = _Reported()
    got = list(RayExecutor(workers=2, num_cpus=2)(fn, folds))
    assert [(f, s) for f, s in got] == [(f, f.index * 10) for f in folds] and all(g is f for (g, _), f in zip(got, folds))
    assert fake_ray.options == {"num_cpus": 2.0, "num_gpus": float(gpus), "max_retries": 0}
    assert [t[1].index for t in fake_ray.tasks] == [0, 1, 2, 3, 4] and fake_ray.peak == 2
    assert all(t[1].writer is None and t[2] == 2 for t in fake_ray.tasks)
    assert fn.merged == {i: {"seconds": i + 0.5} for i in range(5)}
    fake_ray.peak = 0
    list(RayExecutor(workers=1, num_cpus=2, threads=3)(fn, folds))
    assert fake_ray.peak == 1 and {t[2] for t in fake_ray.tasks[5:]} == {3}


def test_ray_executor_on_fake_ray_stops_at_a_failing_fold(fake_ray):
    """Fold 1 fails while fold 2 runs: the finished fold 0 was delivered, the error names fold 1, fold 2 is cancelled."""
    got = []
    with pytest.raises(ValueError, match="fold 1 broke"):
        for fold, scores in RayExecutor(workers=2)(_Reported(fail_on=1), _folds(4)):
            got.append(scores)
    assert got == [0] and fake_ray.cancelled == [2] and len(fake_ray.tasks) == 3


def test_ray_executor_on_fake_ray_starts_and_stops_only_its_own_instance(monkeypatch):
    import sys

    import icegan.environment
    from icegan.paths import REPO_ROOT
    monkeypatch.setattr(icegan.environment, "limit_threads", lambda n: None)
    fake = _FakeRay(initialized=False)
    monkeypatch.setitem(sys.modules, "ray", fake)
    assert [s for _, s in RayExecutor(workers=2, num_cpus=1.5)(_Reported(), _folds(2))] == [0, 10]
    # a local instance sized for the workers (2 × 1.5 cores), the repository importable in the tasks, shut down after
    kw = fake.init_kwargs
    assert kw["num_cpus"] == 3 and "address" not in kw and fake.shutdowns == 1 and not fake.initialized
    assert kw["runtime_env"]["env_vars"]["PYTHONPATH"].split(__import__("os").pathsep)[0] == str(REPO_ROOT)
    with RayExecutor(address="ray://head:10001"):
        pass
    assert fake.init_kwargs["address"] == "ray://head:10001" and "num_cpus" not in fake.init_kwargs
    # a cluster that was already joined is left running
    fake = _FakeRay(initialized=True)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with RayExecutor() as ex:
        list(ex(_Reported(), _folds(1)))
    assert fake.init_kwargs is None and fake.shutdowns == 0
