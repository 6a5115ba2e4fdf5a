"""Your own code by name: ``'package.module:factory'`` or ``'path/to/file.py:factory'``.

Used for a custom flow network (:class:`flownet.registry.CustomFlowEstimator`, ``icegan flow eval --model custom
--module SPEC``, ``flow.method=custom flow.module=SPEC``) and by icegan for a custom recognizer
(``model.name=custom model.module=SPEC``). A spec names a module (importable, or a ``.py`` file read relative to the
working directory; a package or module of the working directory is found also when it is not on ``sys.path``,
as from the installed ``icegan`` script) and a callable in it (a class or a function; a dotted attribute such as
``Zoo.small`` is followed). The SHA-256 of its files and of the user modules they import (:func:`source_sha256`)
lets a run refuse to resume, or a cache refuse to be reused, after the code changed.
"""
from __future__ import annotations

import functools
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


def _file_module_name(path: Path) -> str:
    """The ``sys.modules`` name a ``.py`` spec file is imported under (one per resolved path)."""
    return "flownet_user_code_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]


def _in_working_folder(name: str) -> bool:
    """True when the top-level module ``name`` is a package or a ``.py`` file of the working folder and that folder
    is not on ``sys.path`` (the installed ``icegan`` script: its ``sys.path[0]`` is its bin folder, where ``python -m
    icegan`` puts the working folder)."""
    cwd = Path.cwd()
    on_path = {cwd if p in ("", ".") else Path(p).resolve() for p in sys.path if isinstance(p, str)}
    return cwd.resolve() not in on_path and ((cwd / name).is_dir() or (cwd / f"{name}.py").is_file())


def _import_module(target: str):
    """``importlib.import_module(target)``; a top-level module of the working folder missing from ``sys.path`` is
    retried once with the working folder first on ``sys.path``, as ``python -m`` has it (kept there: the module's
    later imports of its own submodules need it)."""
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        top = target.partition(".")[0]
        if exc.name != top or not _in_working_folder(top):
            raise
    sys.path.insert(0, str(Path.cwd()))
    importlib.invalidate_caches()
    try:
        return importlib.import_module(target)
    except BaseException:
        sys.path.remove(str(Path.cwd()))
        raise


def _import(spec: str, target: str, key: str):
    path = _file(target)
    if path is not None and not path.is_file():
        raise ValueError(f"{key}={spec!r}: file {path} not found (a path is read relative to the working "
                         f"directory {Path.cwd()})")
    try:
        if path is None:
            return _import_module(target)
        resolved = path.resolve()
        name = _file_module_name(resolved)
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
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except ModuleNotFoundError as exc:
        hint = ("install it or put its folder on PYTHONPATH (or give a path to a .py file)"
                if exc.name == target.partition(".")[0] else "give an importable module or a path to a .py file")
        raise ValueError(f"{key}={spec!r}: cannot import {exc.name!r} ({exc}); {hint}") from None
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
        ValueError: a malformed spec, a missing file or module (a top-level package not found anywhere: "install
            it or put its folder on PYTHONPATH"; one of the working folder is imported from there, as ``python -m``
            would), an error raised while importing it (its type and message are kept), a missing attribute, or one
            that is not callable; every message names ``key`` and the spec.
    """
    target, attr = _split(spec, key)
    obj = _import(spec, target, key)
    for part in attr.split("."):
        if not hasattr(obj, part):          # a misspelt factory: name the closest public one the module has
            import difflib
            close = difflib.get_close_matches(part, [n for n in dir(obj) if not n.startswith("_")], n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{key}={spec!r}: {target} has no attribute {attr!r}{hint}")
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


@functools.lru_cache(maxsize=1)
def _not_user_dirs() -> tuple[Path, ...]:
    """Folders whose files are not the user's own code: the standard library, installed packages (site-packages),
    and icegan and flownet themselves (their version is the run's git commit)."""
    import sysconfig
    paths = sysconfig.get_paths()
    dirs = [paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    here = Path(__file__).resolve().parent
    dirs += [str(here), str(here.parent / "icegan")]
    return tuple(Path(d).resolve() for d in dict.fromkeys(dirs) if d)


def _is_user_file(path: str) -> bool:
    """True for an existing source file of the user's own code (outside :func:`_not_user_dirs`)."""
    p = Path(path).resolve()
    return p.is_file() and not any(p.is_relative_to(d) for d in _not_user_dirs())


def _imported_names(path: Path, package: str) -> set[str]:
    """Module names the source file ``path`` imports anywhere (top level or inside functions), relative imports
    resolved against ``package``; for ``from a import b`` both ``a`` and ``a.b`` (b may be a submodule)."""
    import ast
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        elif isinstance(node, ast.ImportFrom):
            try:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                    else node.module
            except (ImportError, ValueError):
                continue
            names.add(base)     # non-empty: a level-0 import names its module; resolve_name gives one or raises
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _module_file(name: str) -> Optional[str]:
    """The source file of module ``name``: from ``sys.modules`` when it is loaded; a top-level module not loaded yet
    is located without importing it; None otherwise."""
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__file__", None)
    if "." in name:                         # locating a submodule would import its package
        return None
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return found.origin if found is not None and found.has_location else None


def _helper_files(roots: list) -> list[str]:
    """Source files of the user modules that the modules ``roots`` import, directly or through other user modules
    (read from their import statements); sorted, without the roots' own files."""
    own, stack = set(), []
    for m in roots:
        f = getattr(m, "__file__", None)
        if f and _is_user_file(f):
            own.add(str(Path(f).resolve()))
            stack.append((Path(f), getattr(m, "__package__", None) or ""))
    seen, files = set(own), set()
    while stack:
        path, package = stack.pop()
        for name in sorted(_imported_names(path, package)):
            f = _module_file(name)
            if not f or not _is_user_file(f):
                continue
            f = str(Path(f).resolve())
            if f in seen:
                continue
            seen.add(f)
            files.add(f)
            is_package = Path(f).name == "__init__.py"
            stack.append((Path(f), name if is_package else name.rpartition(".")[0]))
    return sorted(files)


def source_sha256(spec: str, key: str = "module") -> str:
    """SHA-256 (hex) of the code a spec names: the source file of the spec's module; when the factory is defined in
    another file (e.g. a package re-exporting it), that file too; and the files of the user's own modules these
    import, directly or through other user modules (read from their import statements, including relative ones and those
    inside functions), so editing a helper changes the hash too. Installed packages (the standard library,
    site-packages) and icegan/flownet themselves are not hashed: their versions are in the run's environment record.
    Modules imported by other means (``importlib.import_module`` with a computed name) are not found. Empty when no
    file is found.

    Raises:
        ValueError: as :func:`load_factory`.
    """
    target, _ = _split(spec, key)
    factory = load_factory(spec, key)
    path = _file(target)
    if path is not None:
        module = sys.modules.get(_file_module_name(path))
    else:
        module = sys.modules.get(target)
    module_file = str(path.resolve()) if path is not None else getattr(module, "__file__", None)
    try:
        factory_file = inspect.getsourcefile(factory)
    except TypeError:                       # a builtin or a C extension
        factory_file = None
    files = []
    for f in (module_file, factory_file):
        if f and Path(f).is_file() and Path(f).resolve() not in [Path(g).resolve() for g in files]:
            files.append(f)
    factory_module = sys.modules.get(getattr(factory, "__module__", None) or "")
    roots = [m for m in (module, factory_module) if m is not None]
    files += [f for f in _helper_files(roots) if Path(f).resolve() not in [Path(g).resolve() for g in files]]
    if not files:
        return ""
    h = hashlib.sha256()
    for f in files:
        h.update(hashlib.sha256(Path(f).read_bytes()).digest())
    return h.hexdigest() if len(files) > 1 else hashlib.sha256(Path(files[0]).read_bytes()).hexdigest()
