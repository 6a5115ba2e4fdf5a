"""What a run records about its machine (icegan.environment) and the allocator setting (icegan.allocator)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from icegan.environment import append_environment, describe_environment
from icegan.environment import other_load as measured_other_load     # conftest replaces other_load in each test
from icegan.paths import REPO_ROOT


def test_environment_record_names_the_code_and_machine(tmp_path):
    d = describe_environment()
    assert d["torch_threads"] == torch.get_num_threads() and d["cpu_count"] >= 1 and d["cpu"]
    if (REPO_ROOT / ".git").exists():   # a clean clone in CI is a git checkout
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        assert d["git_commit"].split("+")[0] == head
    rec = append_environment(tmp_path, note="x")
    rec2 = append_environment(tmp_path)
    lines = (tmp_path / "environment.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [rec, rec2] and rec["note"] == "x" and "note" not in rec2


def _in_subprocess(code: str, **env) -> str:
    import os
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **env}).stdout.strip()


def test_retain_freed_memory_applies_once_and_can_be_switched_off():
    code = ("from icegan.allocator import retain_freed_memory, retaining; "
            "from icegan.environment import describe_environment; "
            "a = retaining(); b = retain_freed_memory(); c = retain_freed_memory(); "
            "print(a, b, c, retaining(), describe_environment()['retain_freed_memory'])")
    # CI and these machines run glibc Linux, where mallopt exists and accepts both settings
    assert _in_subprocess(code) == "False True True True True"
    assert _in_subprocess(code, ICEGAN_RETAIN_FREED_MEMORY="0") == "False False False False False"


def test_limit_threads_sets_torch_and_blas_pools():
    """In a fresh process: torch and every BLAS / OpenMP pool threadpoolctl sees run one thread afterwards."""
    # SciPy's own OpenBLAS and scikit-learn's OpenMP are imported after the call: limit_sklearn_threads (called where
    # scikit-learn fits) loads them and applies limit_threads' count
    code = ("import json, torch; from threadpoolctl import threadpool_info; "
            "from icegan.environment import limit_sklearn_threads, limit_threads; "
            "limit_threads(1); import scipy.linalg, sklearn.linear_model; limit_sklearn_threads(); "
            "print(json.dumps([torch.get_num_threads(), sorted({p['num_threads'] for p in threadpool_info()}), "
            "sorted({p['user_api'] for p in threadpool_info()})]))")
    # 2 threads by default (conftest sets OMP_NUM_THREADS=1, under which every pool starts at 1 and nothing is shown)
    import os
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "OMP_NUM_THREADS": "2"}).stdout
    torch_threads, pools, apis = json.loads(out.strip().splitlines()[-1])
    assert torch_threads == 1 and pools == [1] and apis == ["blas", "openmp"]
    from icegan.environment import limit_threads
    with pytest.raises(ValueError, match="threads must be >= 1"):
        limit_threads(0)


def test_environment_record_has_this_process_threads_and_versions():
    import numpy
    import sklearn
    before = torch.get_num_threads()
    torch.set_num_threads(before + 1)
    try:
        d = describe_environment()
    finally:
        torch.set_num_threads(before)
    assert d["torch_threads"] == before + 1
    assert (d["torch"], d["numpy"], d["sklearn"]) == (torch.__version__, numpy.__version__, sklearn.__version__)
    assert d["icegan"] == _pyproject_version()


def _pyproject_version() -> str:
    """The version pyproject.toml gives the distribution."""
    import tomllib
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_icegan_version_is_the_distributions(capsys):
    """``icegan --version`` prints the version pyproject.toml gives (one number kept in two files, checked equal)."""
    from icegan.cli import main
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"icegan {_pyproject_version()}\n"
    from icegan.pipeline import main as train_main
    with pytest.raises(SystemExit) as stop:
        train_main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"train.py (icegan {_pyproject_version()})\n"


def test_cpu_model_is_the_model_name_value(tmp_path, monkeypatch):
    import icegan.environment as env
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n")
    monkeypatch.setattr(env, "Path", lambda _: info)
    assert env._cpu_model() == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"


def test_git_commit_is_marked_dirty_by_changed_tracked_files_only(tmp_path):
    from icegan.environment import _git_commit
    assert _git_commit(tmp_path) is None                       # not a checkout

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.org",
                               "-c", "commit.gpgsign=false", *args], capture_output=True, text=True, check=True).stdout.strip()
    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("commit", "-q", "-m", "first")
    sha = git("rev-parse", "HEAD")
    (tmp_path / "notes.txt").write_text("untracked")           # an untracked file does not change the code
    assert _git_commit(tmp_path) == sha
    (tmp_path / "a.txt").write_text("2")
    assert _git_commit(tmp_path) == sha + "+dirty"



def test_an_installed_icegan_names_the_commit_pip_built_it_from(monkeypatch):
    """Outside a checkout, a `pip install git+URL@REV` is recorded by its direct_url.json (PEP 610) commit; a wheel
    or index install (no vcs_info), an editable one (dir_info) or a damaged file gives None, never an error."""
    import json
    from importlib import metadata

    import icegan.environment as env

    class Dist:
        def __init__(self, text):
            self.text = text

        def read_text(self, name):
            assert name == "direct_url.json"
            return self.text

    sha = "0123456789abcdef0123456789abcdef01234567"
    cases = {json.dumps({"url": "https://example.org/icegan.git", "vcs_info": {"vcs": "git", "commit_id": sha}}): sha,
             json.dumps({"url": "file:///src/icegan", "dir_info": {"editable": True}}): None,
             None: None, "{cut": None}
    for text, want in cases.items():
        monkeypatch.setattr(metadata, "distribution", lambda name, t=text: Dist(t))
        assert env._installed_commit() == want
    monkeypatch.setattr(env, "_git_commit", lambda repo: None)          # no checkout: the install's record is used
    monkeypatch.setattr(metadata, "distribution", lambda name: Dist(json.dumps({"vcs_info": {"commit_id": sha}})))
    assert env.describe_environment()["git_commit"] == sha

class _FakeLibc:
    """glibc's ``mallopt`` as seen through ctypes, recording its calls; refuses mmap thresholds above ``cap`` and, with
    ``trim_ok=False``, the trim threshold. ``glibc=False``: a C library without ``gnu_get_libc_version`` (musl)."""

    def __init__(self, cap=None, trim_ok=True, glibc=True):
        self.calls = []

        def mallopt(param, value):
            self.calls.append((param, value))
            if param == -3:
                return int(cap is None or value <= cap)
            return int(trim_ok)
        self.mallopt = mallopt
        if glibc:
            self.gnu_get_libc_version = lambda: b"2.36"


@pytest.fixture
def fake_libc(monkeypatch):
    """Install a fake C library for icegan.allocator (nothing applied yet, the setting not switched off)."""
    import ctypes

    import icegan.allocator as alloc
    monkeypatch.setattr(alloc, "_applied", False)
    monkeypatch.delenv(alloc.ENV_VAR, raising=False)

    def install(**kw):
        libc = _FakeLibc(**kw)
        monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: libc)
        return libc
    return install


@pytest.mark.parametrize("kw, ok, calls", [
    ({}, True, [(-3, 1 << 30), (-1, (1 << 31) - 1)]),                                  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    ({"cap": 32 << 20}, True, [(-3, 1 << 30), (-3, 32 << 20), (-1, (1 << 31) - 1)]),   # 1 GiB refused: 32 MiB
    ({"trim_ok": False}, False, [(-3, 1 << 30), (-1, (1 << 31) - 1)]),
    ({"glibc": False}, False, []),
])
def test_retain_freed_memory_sets_glibc_thresholds(fake_libc, kw, ok, calls):
    import icegan.allocator as alloc
    libc = fake_libc(**kw)
    assert alloc.retain_freed_memory() is ok and alloc.retaining() is ok and libc.calls == calls


def test_retain_freed_memory_calls_mallopt_once_per_process(fake_libc):
    """Once in effect, a second call says so without setting the thresholds again."""
    import icegan.allocator as alloc
    libc = fake_libc()
    assert alloc.retain_freed_memory() and alloc.retain_freed_memory() and alloc.retaining()
    assert libc.calls == [(-3, 1 << 30), (-1, (1 << 31) - 1)]


@pytest.mark.parametrize("value", ["false", "no", " 0 "])
def test_retain_freed_memory_switched_off_by_the_environment(fake_libc, monkeypatch, value):
    import icegan.allocator as alloc
    libc = fake_libc()
    monkeypatch.setenv(alloc.ENV_VAR, value)
    assert alloc.retain_freed_memory() is False and not alloc.retaining() and libc.calls == []


def test_record_has_usable_cpus_and_load_average():
    import os
    d = describe_environment()
    assert 1 <= d["usable_cpus"] <= d["cpu_count"] and d["usable_cpus"] == len(os.sched_getaffinity(0))
    assert len(d["load_average"]) == 3 and all(x >= 0 for x in d["load_average"])


def test_cpu_contention_warns_only_when_others_and_this_run_exceed_the_cores():
    from icegan.environment import cpu_contention
    busy = cpu_contention(2, others=2.0, cpus=2)            # another 2-thread job on a 2-core CPU
    assert busy is not None and "about 2.0 of its 2 usable CPUs" in busy and "adds 2 threads," in busy
    assert "use fewer threads (threads=1)" in busy and "results do not change" in busy
    assert "(threads=4)" in cpu_contention(8, others=4.2, cpus=8)   # room left for 4 of 8
    assert cpu_contention(2, others=0.1, cpus=2) is None     # quiet machine
    assert cpu_contention(1, others=1.0, cpus=2) is None     # one job per core: no contention
    assert cpu_contention(2, others=0.6, cpus=1) is None     # less than one CPU of other work: no note
    assert cpu_contention(2, others=0.75, cpus=2) is not None
    # one thread already: nothing fewer to propose
    one = cpu_contention(1, others=1.6, cpus=2)
    assert "threads=" not in one and "run it when the machine is quieter" in one and "adds 1 thread," in one
    # fold workers: the threads of all of them count, and the advice is about both numbers
    pool = cpu_contention(2, others=2.0, cpus=8, workers=4)
    assert "adds 4 workers of 2 threads each" in pool and "workers x threads <= 6" in pool
    assert cpu_contention(2, others=2.0, cpus=8, workers=3) is None      # 2 + 6 <= 8.5


def test_cpu_contention_measures_the_load_when_not_given(monkeypatch):
    import icegan.environment as env
    monkeypatch.setattr(env, "other_load", lambda: 2.5)
    assert "about 2.5 of its 2 usable CPUs" in env.cpu_contention(2, cpus=2)
    monkeypatch.setattr(env, "other_load", lambda: None)       # no load average on this OS: no note
    assert env.cpu_contention(8, cpus=2) is None


def test_other_load_takes_this_process_share_out_of_the_load_average(monkeypatch):
    import math
    import icegan.environment as env
    monkeypatch.setattr(env.os, "getloadavg", lambda: (3.0, 2.0, 1.0))
    monkeypatch.setattr(env, "_runnable_others", lambda: None)
    monkeypatch.setattr(env, "_own_cpu_rate", lambda: (120.0, 60.0))     # 2 busy cores for the last minute
    assert measured_other_load() == pytest.approx(3.0 - 2.0 * (1 - math.exp(-1.0)))
    monkeypatch.setattr(env, "_own_cpu_rate", lambda: (6000.0, 3000.0))   # a long run at 2 cores: share ~2
    assert measured_other_load() == pytest.approx(1.0, abs=1e-9)
    monkeypatch.setattr(env, "_own_cpu_rate", lambda: (9000.0, 3000.0))   # never below 0
    assert measured_other_load() == 0.0
    monkeypatch.setattr(env, "_own_cpu_rate", lambda: None)               # no /proc: the load average itself
    assert measured_other_load() == 3.0


def test_own_cpu_rate_counts_this_process_cpu_time():
    import os
    import time
    from icegan.environment import _own_cpu_rate
    cpu0, wall0 = _own_cpu_rate()
    t = time.process_time()
    while time.process_time() - t < 0.3:                   # burn 0.3 s of CPU
        pass
    cpu1, wall1 = _own_cpu_rate()
    assert cpu1 - cpu0 >= 0.25 and wall1 - wall0 >= 0.25
    assert 0 < cpu1 <= wall1 * os.cpu_count() + 0.1       # no more CPU time than the cores could give


@pytest.mark.parametrize("progress", [True, False])
def test_a_loso_run_on_a_busy_cpu_says_so_and_a_quiet_one_does_not(tmp_path, monkeypatch, capsys, progress):
    """README: a LOSO run that starts on a busy CPU says so, with or without its progress bar (--no-progress runs of
    train.py and icegan loso said nothing before audit 61)."""
    import icegan.environment as env
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1, size=8, seed=0)

    def fold_fn(fold):
        return np.zeros((len(fold.test_idx), 3))
    monkeypatch.setattr(env, "usable_cpus", lambda: 2)
    monkeypatch.setattr(env, "other_load", lambda: 3.0)
    run_loso(toy.samples, fold_fn, tmp_path / "busy", max_folds=1, progress=progress)
    assert "note: the CPU is busy: other processes keep about 3.0 of its 2 usable CPUs" in capsys.readouterr().err
    run_loso(toy.samples, fold_fn, tmp_path / "busy", max_folds=1, progress=progress)      # nothing left to run
    assert "CPU is busy" not in capsys.readouterr().err
    monkeypatch.setattr(env, "other_load", lambda: 0.2)
    run_loso(toy.samples, fold_fn, tmp_path / "quiet", max_folds=1, progress=progress)
    assert "CPU is busy" not in capsys.readouterr().err


def test_cpu_workers_of_a_run_count_local_workers_but_not_a_remote_cluster(monkeypatch):
    from types import SimpleNamespace

    import icegan.environment as env
    from icegan.protocol import _cpu_workers
    assert _cpu_workers(None, None) == (1, torch.get_num_threads())
    assert _cpu_workers(None, SimpleNamespace(workers=3, threads=2)) == (3, 2)
    assert _cpu_workers(SimpleNamespace(workers=2, threads=0, address=None), None) == (2, torch.get_num_threads())
    assert _cpu_workers(SimpleNamespace(workers=4, threads=1, address="ray://head:10001"), None) is None
    # a local Ray executor's tasks run num_cpus threads when threads is 0; with workers=0 as many at once as fit
    monkeypatch.setattr(env, "usable_cpus", lambda: 8)
    assert _cpu_workers(SimpleNamespace(workers=4, threads=0, num_cpus=2, address=None), None) == (4, 2)
    assert _cpu_workers(SimpleNamespace(workers=4, threads=3, num_cpus=2, address=None), None) == (4, 3)
    assert _cpu_workers(SimpleNamespace(workers=0, threads=0, num_cpus=2, address=None), None) == (4, 2)

    def wrapper(fold_fn, folds):            # the main job's timed map around its executor
        yield from ()
    wrapper.executor = SimpleNamespace(workers=4, threads=2, address=None)
    assert _cpu_workers(wrapper, None) == (4, 2)


def test_other_load_of_a_process_pinned_to_some_cpus_is_its_share(monkeypatch):
    """On a 16-CPU machine at load 8, a process allowed on 2 of the CPUs sees about 1 busy CPU of others."""
    import icegan.environment as env
    monkeypatch.setattr(env.os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    monkeypatch.setattr(env, "_runnable_others", lambda: None)
    monkeypatch.setattr(env, "_own_cpu_rate", lambda: None)
    monkeypatch.setattr(env.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(env, "usable_cpus", lambda: 2)
    assert measured_other_load() == pytest.approx(1.0)
    monkeypatch.setattr(env, "usable_cpus", lambda: 16)
    assert measured_other_load() == pytest.approx(8.0)


def test_other_load_is_at_most_what_runs_now(monkeypatch):
    """The 1-minute average lags: a job that ended a moment ago still weighs in it (a loop of runs, one after the
    other, would be told the CPU is busy). What runs right now caps it."""
    import icegan.environment as env
    monkeypatch.setattr(env.os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    monkeypatch.setattr(env, "_own_cpu_rate", lambda: None)
    monkeypatch.setattr(env, "_runnable_others", lambda: 0)        # the previous run has just ended
    assert measured_other_load() == 0.0
    monkeypatch.setattr(env, "_runnable_others", lambda: 5)        # a job that has just started: the average rules
    assert measured_other_load() == 2.0
    monkeypatch.setattr(env, "_runnable_others", lambda: 1)
    assert measured_other_load() == 1.0


def test_runnable_others_reads_the_running_count_of_proc_loadavg(tmp_path, monkeypatch):
    import icegan.environment as env
    from icegan.environment import _runnable_others
    readings = iter(["2.10 1.90 1.80 4/301 999\n", "2.10 1.90 1.80 3/301 999\n", "2.10 1.90 1.80 5/301 999\n"])

    class FakePath:
        def __init__(self, *_):
            pass

        def read_text(self, encoding=None):
            return next(readings)
    monkeypatch.setattr(env, "Path", FakePath)
    assert _runnable_others(gap_s=0.0) == 2          # the least of 3, 2, 4 others (this thread not counted)
    monkeypatch.setattr(env, "Path", lambda *_: tmp_path / "absent")
    assert _runnable_others(gap_s=0.0) is None
