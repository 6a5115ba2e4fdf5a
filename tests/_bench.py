"""Import a script of ``bench/`` as a module (the scripts are not a package), for tests of their functions, or take
the argument parser a script builds (:func:`bench_parser`), for tests of its flags."""
import argparse
import importlib.util
import os
import runpy
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    """The module of ``bench/<name>.py``, executed fresh (its ``main`` is not run)."""
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Parser(Exception):
    """Carries the parser a script built, out of its ``main()``."""


def bench_parser(name: str, monkeypatch) -> argparse.ArgumentParser:
    """The argument parser ``bench/<name>.py`` builds, taken at its ``parse_args`` call (run as ``__main__`` from the
    repository root; nothing is computed). ``parse_args`` works again on return; the environment is as before."""
    original = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        raise _Parser(self)
    path = BENCH_DIR / f"{name}.py"
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(sys, "argv", [str(path)])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(BENCH_DIR.parent)
    environ = dict(os.environ)
    try:
        runpy.run_path(str(path), run_name="__main__")
    except _Parser as exc:
        return exc.args[0]
    finally:
        monkeypatch.setattr(argparse.ArgumentParser, "parse_args", original)
        os.environ.clear()
        os.environ.update(environ)
    pytest.fail(f"bench/{name}.py ran without parsing its arguments")
