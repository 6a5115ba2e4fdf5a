"""What a run records about its machine (icegan.environment) and the allocator setting (icegan.allocator)."""
import json
import subprocess
import sys

import pytest
import torch

from icegan.environment import append_environment, describe_environment
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
    code = ("import json, torch; from threadpoolctl import threadpool_info; from icegan.environment import limit_threads; "
            "limit_threads(1); print(json.dumps([torch.get_num_threads(), sorted({p['num_threads'] for p in threadpool_info()}), "
            "sorted({p['user_api'] for p in threadpool_info()})]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    torch_threads, pools, apis = json.loads(out.strip().splitlines()[-1])
    assert torch_threads == 1 and pools == [1] and "blas" in apis
    from icegan.environment import limit_threads
    with pytest.raises(ValueError, match="threads must be >= 1"):
        limit_threads(0)
