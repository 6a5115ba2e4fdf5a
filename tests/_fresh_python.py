"""Run a snippet of Python in a fresh interpreter on the icegan under test (for what one process cannot undo: a
module imported without a function the platform lacks, a forkserver that is one per process)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import icegan

#: the checkout of the icegan under test (PYTHONPATH may point at a copy), the subprocess's cwd and first path entry
REPO = Path(icegan.__file__).resolve().parents[1]


def fresh_python_stdout(code: str) -> str:
    """The stdout of ``python -c code`` run in ``REPO`` with it first on PYTHONPATH (120 s at most); asserts the
    interpreter exited 0, showing its stderr otherwise."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout
