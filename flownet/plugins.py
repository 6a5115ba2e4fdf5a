"""Your own code by name: ``'package.module:factory'`` or ``'path/to/file.py:factory'``.

Used for a custom flow network (:class:`flownet.registry.CustomFlowEstimator`, ``icegan flow eval --model custom
--module SPEC``, ``flow.method=custom flow.module=SPEC``) and by icegan for a custom recognizer
(``model.name=custom model.module=SPEC``). A spec names a module (importable, or a ``.py`` file read relative to the
working directory) and a callable in it (a class or a function; a dotted attribute such as ``Zoo.small`` is
followed). The file's SHA-256 (:func:`source_sha256`) lets a run refuse to resume, or a cache refuse to be reused,
after the code changed.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Optional

__all__ = ["load_factory", "call_factory", "source_sha256"]


def _split(spec: str, key: str) -> tuple[str, str]:
    target, sep, attr = str(spec).rpartition(":")
    if not sep or not target or not attr or not attr.replace(".", "_").isidentifier():
        raise ValueError(f"{key}={spec!r}: expected 'package.module:factory' or 'path/to/file.py:factory' "
                         "(a callable returning a torch.nn.Module)")
    return target, attr


def _file(target: str) -> Optional[Path]:
    return Path(target) if target.endswith(".py") else None


def _import(spec: str, target: str, key: str):
    path = _file(target)
    try:
        if path is None:
            return importlib.import_module(target)
        if not path.is_file():
            raise ValueError(f"{key}={spec!r}: file {path} not found (a path is read relative to the working "
                             f"directory {Path.cwd()})")
        resolved = path.resolve()
        name = "flownet_user_code_" + hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
        module = sys.modules.get(name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(name, resolved)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module          # picklable classes, and one import per process
            try:
                loader_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        return module
    except ValueError:
        raise
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except ModuleNotFoundError as exc:
        raise ValueError(f"{key}={spec!r}: cannot import {exc.name!r} ({exc}); give an importable module or a path "
                         "to a .py file") from None
    except BaseException as exc:            # SystemExit too: user code must not end the command silently
        raise ValueError(f"{key}={spec!r}: importing {target} failed: {type(exc).__name__}: {exc}") from exc


def load_factory(spec: str, key: str = "module") -> Callable[..., Any]:
    """Resolve a spec to its callable.

    Args:
        spec: ``'package.module:factory'`` or ``'path/to/file.py:factory'``.
        key: the config key or option that gave the spec, used in error messages (e.g. ``model.module``).

    Returns:
        The callable (a class or a function).

    Raises:
        ValueError: a malformed spec, a missing file or module, an error raised while importing it (its type and
            message are kept), a missing attribute, or one that is not callable; every message names ``key`` and
            the spec.
    """
    target, attr = _split(spec, key)
    obj = _import(spec, target, key)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{key}={spec!r}: {target} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"{key}={spec!r}: {attr!r} is a {type(obj).__name__}, not a class or function")
    return obj


def call_factory(factory: Callable[..., Any], offered: dict, spec: str, key: str = "module") -> Any:
    """Call ``factory`` with those of the ``offered`` keyword arguments its signature names (all of them when it
    takes ``**kwargs``, or has no readable signature).

    Raises:
        ValueError: the call raised (its type and message are kept, with the arguments given).
    """
    import torch
    if inspect.isclass(factory) and factory.__init__ in (object.__init__, torch.nn.Module.__init__):
        params = {}                         # a class without its own __init__ takes no arguments
    else:
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = None
    if params is None or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = dict(offered)
    else:
        kwargs = {k: v for k, v in offered.items() if k in params}
    try:
        return factory(**kwargs)
    except Exception as exc:
        raise ValueError(f"{key}={spec!r}: calling it with {kwargs} failed: {type(exc).__name__}: {exc}") from exc


def source_sha256(spec: str, key: str = "module") -> str:
    """SHA-256 (hex) of the code a spec names: the source file of the spec's module and, when the factory is defined
    in another file (e.g. a package re-exporting it), that file too. Other modules they import are not covered.
    Empty when neither has a source file.

    Raises:
        ValueError: as :func:`load_factory`.
    """
    target, _ = _split(spec, key)
    factory = load_factory(spec, key)
    path = _file(target)
    module_file = str(path.resolve()) if path is not None else getattr(sys.modules.get(target), "__file__", None)
    try:
        factory_file = inspect.getsourcefile(factory)
    except TypeError:                       # a builtin or a C extension
        factory_file = None
    files = []
    for f in (module_file, factory_file):
        if f and Path(f).is_file() and Path(f).resolve() not in [Path(g).resolve() for g in files]:
            files.append(f)
    if not files:
        return ""
    h = hashlib.sha256()
    for f in files:
        h.update(hashlib.sha256(Path(f).read_bytes()).digest())
    return h.hexdigest() if len(files) > 1 else hashlib.sha256(Path(files[0]).read_bytes()).hexdigest()
