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
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Optional

from icegan import __version__
from icegan.allocator import retaining
from icegan.paths import REPO_ROOT

__all__ = ["describe_environment", "append_environment", "limit_threads", "ENVIRONMENT_FILE"]


def limit_threads(n: int) -> None:
    """Use ``n`` threads for all CPU math of this process: torch's intra-op pool and the BLAS / OpenMP pools of
    NumPy, SciPy and scikit-learn (through ``threadpoolctl``). Those libraries are imported first, so that
    their pools exist when the limit is set (``threadpoolctl`` only limits libraries already loaded).

    Why: scikit-learn's logistic regression otherwise runs OpenBLAS with one thread per core next to torch's
    limit; on the 2-core CPU a 68-fold logistic-regression LOSO took 115.6 s with ``threads=1`` before and
    35.3 s after (docs/benchmarks.md), and fold workers in parallel processes oversubscribed the cores.

    Raises:
        ValueError: ``n`` < 1.
    """
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import torch
    from threadpoolctl import threadpool_limits
    torch.set_num_threads(n)
    threadpool_limits(n)

#: file name of the per-run environment log (JSON lines, one object per start of the run)
ENVIRONMENT_FILE = "environment.jsonl"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
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


def describe_environment() -> dict[str, Any]:
    """The facts of this process that results depend on, as a JSON-able dict.

    Returns:
        ``{"utc": ISO time, "host": str, "icegan", "python", "torch", "numpy", "sklearn": versions (icegan's: a
        copy installed without its git history still says which release made the run), "cpu": model name,
        "cpu_capability": torch's CPU kernel level ("AVX2", "AVX512", ...), "cpu_count": int,
        "torch_threads": int, "cuda": GPU name or None, "retain_freed_memory": bool
        (:mod:`icegan.allocator`), "git_commit": sha (+dirty) or None}``.
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
        "torch_threads": torch.get_num_threads(),
        "cuda": cuda,
        "retain_freed_memory": retaining(),
        "git_commit": _git_commit(REPO_ROOT),
    }


def append_environment(run_dir: str | Path, **extra: Any) -> dict[str, Any]:
    """Append :func:`describe_environment` (plus ``extra``, e.g. the folds already finished) to
    ``<run_dir>/environment.jsonl`` and return the appended record.

    Raises:
        OSError: the run folder cannot be written.
    """
    record = {**describe_environment(), **extra}
    with open(Path(run_dir) / ENVIRONMENT_FILE, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    return record
