"""What a result was computed on: library versions, CPU, GPU, threads and the code's git commit.

LOSO numbers depend on more than the config. On one machine the same command and seed reproduce the same
predictions (a resumed run ends with identical metrics); on a CPU with another instruction set (oneDNN runs AVX-512,
AVX2 or AMX kernels, whose float sums differ in the last bits) or under another torch release, 100 epochs can turn
those last-bit differences into a few changed predictions. Every LOSO run therefore appends one line per start (a
resumed run adds a line) to ``<run>/environment.jsonl``, so a reader can tell a machine difference from a code
difference.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Optional

from icegan import __version__
from icegan.allocator import retaining
from icegan.paths import REPO_ROOT

__all__ = ["describe_environment", "append_environment", "limit_threads", "limit_sklearn_threads", "usable_cpus",
           "other_load", "cpu_contention", "ENVIRONMENT_FILE", "THREADS_MAX", "check_threads"]

#: the most CPU threads a config's ``threads`` may ask for: far above any machine's cores, and below the sizes at
#: which torch.set_num_threads and the BLAS pools fail with a traceback (threads=99999999999)
THREADS_MAX = 4096


def check_threads(threads: int, meaning: str) -> None:
    """Refuse a config's ``threads`` outside 0..:data:`THREADS_MAX` (``meaning``: what the count is, in the message).

    Raises:
        ValueError: ``threads must be >= 0 and <= 4096 (<meaning>), got <threads>``.
    """
    if not 0 <= threads <= THREADS_MAX:
        raise ValueError(f"threads must be >= 0 and <= {THREADS_MAX} ({meaning}), got {threads}")


#: ``n`` of this process's last :func:`limit_threads` call; None where it was never called (no limit to re-apply)
_THREADS: Optional[int] = None
#: the files of the thread-pool libraries that carry that limit (set once each: a caller's later limit stays)
_LIMITED: set[str] = set()


def limit_threads(n: int) -> None:
    """Use ``n`` threads for all CPU math of this process: torch's intra-op pool and the BLAS / OpenMP pools of
    NumPy now (through ``threadpoolctl``), and those of SciPy and scikit-learn (their own BLAS and OpenMP copies)
    once a scikit-learn model is fitted: :func:`limit_sklearn_threads` re-applies ``n`` there, since
    ``threadpoolctl`` only limits libraries already loaded. SciPy and scikit-learn are not imported here: that took
    1.4-2 s in every process (a fifth of a cached ``icegan features`` run, which uses neither).

    Why: scikit-learn's logistic regression otherwise runs OpenBLAS with one thread per core next to torch's
    limit; on the 2-core CPU a 68-fold logistic-regression LOSO took 115.6 s with ``threads=1`` before and
    35.3 s after (docs/benchmarks.md), and fold workers in parallel processes oversubscribed the cores.

    Raises:
        ValueError: ``n`` < 1.
    """
    global _THREADS
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    from importlib import import_module

    import torch
    from threadpoolctl import ThreadpoolController
    import_module("numpy")          # loaded for its OpenBLAS pool (threadpoolctl limits loaded libraries only)
    torch.set_num_threads(n)
    pools = ThreadpoolController().lib_controllers
    for pool in pools:
        pool.set_num_threads(n)
    _THREADS = n
    _LIMITED.clear()
    _LIMITED.update(pool.filepath for pool in pools)


def limit_sklearn_threads() -> None:
    """Load the thread pools of scikit-learn and SciPy (scikit-learn's OpenMP runtime, SciPy's own OpenBLAS) and
    limit them, like those loaded before, to the ``n`` of this process's last :func:`limit_threads` call; nothing
    where :func:`limit_threads` was never called (``threads=0``: the libraries' defaults). Called where a
    scikit-learn model is fitted or predicts (:func:`icegan.recognition.one_blas_thread`, the label-noise forest),
    so those run under the limit although :func:`limit_threads` no longer imports them. Only pools not limited
    before are set: a limit a caller put on a pool since (``threadpoolctl.threadpool_limits``) stays."""
    if _THREADS is None:
        return
    from importlib import import_module

    from threadpoolctl import ThreadpoolController
    for module in ("scipy.linalg", "sklearn.linear_model"):      # loaded for their pools
        import_module(module)
    for pool in ThreadpoolController().lib_controllers:
        if pool.filepath not in _LIMITED:
            pool.set_num_threads(_THREADS)
            _LIMITED.add(pool.filepath)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (a container's or ``taskset``'s limit) where the OS
    reports one, else ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):       # pragma: no cover - macOS / Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def _own_cpu_rate() -> Optional[tuple[float, float]]:
    """``(cpu_seconds, wall_seconds)`` of this process since it started (its own CPU time plus that of its
    finished children), from ``/proc``; None where ``/proc`` cannot say (not Linux)."""
    try:
        # field 22 of stat (the 20th after the command name): start time in clock ticks after boot
        start_ticks = float(Path("/proc/self/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text(encoding="utf-8").split()[0])
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    started = start_ticks / hz
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system, max(uptime - started, 1e-3)


def _runnable_others(reads: int = 3, gap_s: float = 0.02) -> Optional[int]:
    """Threads of the machine runnable right now besides the one reading (``/proc/loadavg``'s running count less
    one), the least of ``reads`` readings ``gap_s`` apart (a thread of this process finishing its spin-wait is not
    counted as load); None where ``/proc/loadavg`` cannot say (not Linux)."""
    import time
    counts = []
    try:
        for k in range(reads):
            if k:
                time.sleep(gap_s)
            counts.append(int(Path("/proc/loadavg").read_text(encoding="utf-8").split()[3].split("/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return None
    return max(0, min(counts))


def other_load() -> Optional[float]:
    """Roughly how many CPUs other processes kept busy over the last minute: the 1-minute load average less this
    process's share of it; None where the OS gives no load average.

    The load average is an exponentially weighted mean of the runnable threads with a 60 s time constant, so a
    process that ran at ``r`` busy cores for ``t`` seconds adds about ``r (1 - exp(-t / 60))`` to it; ``r`` is
    this process's CPU time over its lifetime. The average lags: where the OS says how many threads run right now
    (:func:`_runnable_others`), the others' load is at most that (a command started just after another ended is not
    told the CPU is busy). The load average covers the whole machine: a process allowed on
    only some of its CPUs (:func:`usable_cpus`) gets that share of the others' load. An estimate, good to a fraction
    of a CPU: enough to tell a quiet machine from one shared with another training job.
    """
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):       # pragma: no cover - Windows
        return None
    own = _own_cpu_rate()
    if own is not None:
        cpu, wall = own
        load1 -= cpu / wall * (1.0 - math.exp(-wall / 60.0))
    now = _runnable_others()
    if now is not None:     # the average lags a minute: a job that has just ended still weighs in it, but runs no more
        load1 = min(load1, now)
    # the load average counts every CPU of the machine: on a process pinned to some of them (a container's cpuset,
    # taskset) the others' load is taken as spread evenly over all
    share = usable_cpus() / max(os.cpu_count() or 1, usable_cpus())
    return max(0.0, load1 * share)


def cpu_contention(threads: int, others: Optional[float] = None, cpus: Optional[int] = None,
                   workers: int = 1) -> Optional[str]:
    """A warning when the CPU math of a run about to start would compete with other processes for the cores, else
    None.

    With ``workers`` processes of ``threads`` busy threads each beside ``others`` busy CPUs (:func:`other_load`) on
    ``cpus`` usable CPUs (:func:`usable_cpus`), the run is warned about when ``others`` >= 0.75 and
    ``others + workers * threads`` > ``cpus`` + 0.5. Then OpenMP's threads wait for each other at every parallel
    region: wall times and any speed numbers measured in that run are not those of the machine (docs/benchmarks.md:
    at a load average of 4-5 on a 2-core CPU, a 2-thread recognizer training step took 1.1-3.3 s of wall time
    against 0.45-0.55 s of CPU time on one thread). Results do not change: only time. The note proposes a thread
    count that fits beside the others' load where fewer threads help, else to run when the machine is quieter.

    Args:
        threads: CPU threads of each of the run's processes (>= 1).
        others: busy CPUs of other processes; None = measure now (:func:`other_load`; no warning where the
            OS gives no load average).
        cpus: usable CPUs; None = :func:`usable_cpus`.
        workers: processes running folds at once (fold workers; 1 = this process).
    """
    if others is None:
        others = other_load()
        if others is None:
            return None
    cpus = usable_cpus() if cpus is None else cpus
    total = workers * threads
    if others < 0.75 or others + total <= cpus + 0.5:
        return None
    fit = max(1, int(cpus - others + 0.5))         # CPUs left beside the others' load
    if workers > 1:
        adds = f"{workers} workers of {threads} thread{'s' if threads > 1 else ''} each"
        advice = (f"to share the machine, use fewer workers or threads (workers x threads <= {fit})" if fit < total
                  else "run it when the machine is quieter")
    else:
        adds = f"{threads} thread{'s' if threads > 1 else ''}"
        advice = (f"to share the machine, use fewer threads (threads={fit})" if fit < threads
                  else "run it when the machine is quieter")
    return (f"note: the CPU is busy: other processes keep about {others:.1f} of its {cpus} usable CPUs busy (1-minute "
            f"load average) and this run adds {adds}, so its threads will wait for each other and its wall times "
            f"will be longer than on a quiet machine (results do not change). For timings, run alone; {advice}.")


#: file name of the per-run environment log (JSON lines, one object per start of the run)
ENVIRONMENT_FILE = "environment.jsonl"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit(repo: Path) -> Optional[str]:
    """``<sha>`` or ``<sha>+dirty`` of ``repo``; None when it is not a git checkout or git is missing."""
    if not (repo / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def _installed_commit() -> Optional[str]:
    """The commit an installed icegan was built from, when pip installed it from a git repository (``pip install
    git+URL@REV``: ``vcs_info.commit_id`` of the distribution's ``direct_url.json``, PEP 610); None for any other
    install (a wheel file, an index, an editable checkout, whose own git history :func:`_git_commit` reads)."""
    import json
    from importlib import metadata
    try:
        text = metadata.distribution("icegan").read_text("direct_url.json")
        commit = json.loads(text)["vcs_info"]["commit_id"] if text else None
    except (metadata.PackageNotFoundError, ValueError, KeyError, TypeError):
        return None
    return commit if isinstance(commit, str) and commit else None


def _load_average() -> Optional[list[float]]:
    """The 1-, 5- and 15-minute load averages (rounded to 0.01), or None where the OS gives none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):       # pragma: no cover - Windows
        return None


def describe_environment() -> dict[str, Any]:
    """The facts of this process that results depend on, as a JSON-able dict.

    Returns:
        ``{"utc": ISO time, "host": str, "icegan", "python", "torch", "numpy", "sklearn": versions (icegan's: a
        copy installed without its git history still says which release made the run), "cpu": model name,
        "cpu_capability": torch's CPU kernel level ("AVX2", "AVX512", ...), "cpu_count": int, "usable_cpus": int
        (:func:`usable_cpus`), "load_average": [1, 5, 15 min] or None (other work on the machine at the start:
        wall times measured beside it are upper bounds),
        "torch_threads": int, "cuda": GPU name or None, "retain_freed_memory": bool
        (:mod:`icegan.allocator`), "git_commit": sha (+dirty) of a checkout, else the commit a ``pip install
        git+URL`` was built from (:func:`_installed_commit`), else None}``.
    """
    import numpy
    import sklearn
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "icegan": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "load_average": _load_average(),
        "torch_threads": torch.get_num_threads(),
        "cuda": cuda,
        "retain_freed_memory": retaining(),
        "git_commit": _git_commit(REPO_ROOT) or _installed_commit(),
    }


def append_environment(run_dir: str | Path, **extra: Any) -> dict[str, Any]:
    """Append :func:`describe_environment` (plus ``extra``, e.g. the folds already finished) to
    ``<run_dir>/environment.jsonl`` and return the appended record.

    Raises:
        OSError: the run folder cannot be written.
    """
    record = {**describe_environment(), **extra}
    with open(Path(run_dir) / ENVIRONMENT_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    return record
