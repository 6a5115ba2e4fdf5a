"""An installed icegan (a wheel: ``pip install .``, ``pip install git+...``) works away from the repository.

The wheel is built from a copy of the files the build reads (no network, no build isolation) and unpacked into a
folder that a subprocess puts first on its path, run from an empty folder: the commands that read shipped files
(the configs, the flow weights) must find them inside the package, not in a checkout that a pip user does not have.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from _readme import ROOT

from icegan.cli import main
from icegan.paths import shipped_config, shipped_config_dir

#: what the build reads from the repository (pyproject.toml's readme, license-files and packages; MANIFEST.in and
#: the files it adds to the sdist)
_BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "icegan", "flownet", "configs",
                 "MANIFEST.in", "constraints.txt", "Makefile", "train.py")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the build inputs (a build writes build/ and *.egg-info beside them: not into the repository)."""
    src = tmp_path_factory.mktemp("src")
    for name in _BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    return src


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    """A wheel built by setuptools (``pip wheel --no-deps --no-build-isolation``) from a copy of the build inputs."""
    src = source
    dist = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(dist), str(src)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = dist.glob("icegan-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel unpacked as a site folder (what pip installs, less the scripts)."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def _run_installed(site: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    """``python -m icegan ARGV`` with ``site`` first on the path, from ``cwd`` (not the repository)."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "icegan", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_wheel_holds_the_shipped_configs_weights_and_modules(wheel):
    """Every config of configs/ (as icegan/configs/), every flow weight file and every module is in the wheel (the
    configs were not: `icegan train` with no --config failed in an installed icegan, and a pip user had no configs)."""
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert configs and [c for c in configs if f"icegan/configs/{c}" not in names] == []
    weights = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "flownet" / "weights").glob("*.pt"))
    assert weights and [w for w in weights if w not in names] == []
    modules = sorted(str(p.relative_to(ROOT)) for pkg in ("icegan", "flownet") for p in (ROOT / pkg).rglob("*.py"))
    assert [m for m in modules if m not in names] == []


def test_the_sdist_holds_the_configs_and_the_pinned_versions(source, tmp_path):
    """The sdist (``pip install icegan-*.tar.gz``, or the source of a wheel built from it) holds the configs the wheel
    installs as icegan/configs/, the flow weights, and the files that install with the pinned versions
    (constraints.txt, the Makefile)."""
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=source, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    name = done.stdout.split()[-1]
    with tarfile.open(tmp_path / name) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    wanted = [f"configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")]
    wanted += [str(p.relative_to(ROOT)) for p in (ROOT / "flownet" / "weights").glob("*.pt")]
    wanted += ["constraints.txt", "Makefile", "train.py", "pyproject.toml"]
    assert [w for w in wanted if w not in names] == []


def test_the_package_list_names_every_package_folder():
    """pyproject.toml lists its packages (to map configs/ into icegan.configs): every folder of icegan/ and flownet/
    that holds an __init__.py, or the shipped flow weights, is on the list, so a new subpackage is not left out of the
    wheel; the mapped configs folder exists."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for pkg in ("icegan", "flownet")
               for p in (ROOT / pkg).rglob("__init__.py")} | {"flownet.weights"}
    assert sorted(folders - listed) == []
    assert setuptools["package-dir"] == {"icegan.configs": "configs"} and (ROOT / "configs").is_dir()


def test_installed_icegan_runs_from_another_folder(installed, tmp_path):
    """From an empty folder, with only the installed wheel: `python -m icegan` runs (there was no __main__), it is the
    wheel's icegan that runs, `icegan configs` lists and prints the shipped configs, and the main job with no --config
    resolves the shipped demo.yaml (was 'config file not found: <site-packages>/configs/demo.yaml')."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = subprocess.run([sys.executable, "-c", "import icegan, flownet; print(icegan.__file__, flownet.__file__)"],
                           cwd=elsewhere, env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True,
                           text=True, timeout=60)
    assert found.stdout.split() == [str(installed / pkg / "__init__.py") for pkg in ("icegan", "flownet")]

    listing = _run_installed(installed, elsewhere, "configs")
    assert listing.returncode == 0, listing.stderr
    assert str(installed / "icegan" / "configs") in listing.stdout and "\n  demo_features " in listing.stdout

    printed = _run_installed(installed, elsewhere, "configs", "demo_features.yaml")
    assert printed.returncode == 0 and printed.stdout == (ROOT / "configs" / "demo_features.yaml").read_text("utf-8")

    demo = _run_installed(installed, elsewhere, "train", "--print-config")
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.startswith("name: demo\n") and "source: synthetic" in demo.stdout
    assert sorted(p.name for p in elsewhere.iterdir()) == []          # --print-config wrote nothing

    gan = _run_installed(installed, elsewhere, "gan", "train", "--print-config")     # was configs/gan_casme2.yaml of
    assert gan.returncode == 0, gan.stderr                                          # the current folder
    assert "holdout_subjects" in gan.stdout and "img_size" in gan.stdout

    readme = _run_installed(installed, elsewhere, "loso", "--config", "configs/demo_features.yaml")   # as the README
    shipped = installed / "icegan" / "configs" / "demo_features.yaml"
    assert readme.returncode == 2 and f"the shipped config of that name is {shipped}" in readme.stderr
    assert "`icegan configs demo_features > demo_features.yaml`" in readme.stderr

    env = {k: v for k, v in os.environ.items() if k != "ICEGAN_DATA"}
    root = subprocess.run([sys.executable, "-c", "from icegan.paths import default_data_root as d; print(d())"],
                          cwd=elsewhere, env={**env, "PYTHONPATH": str(installed)}, capture_output=True, text=True,
                          timeout=60)
    assert root.stdout.strip() == str(elsewhere / "data")      # not <site-packages>/data


def test_shipped_config_takes_a_name_with_or_without_folder_and_suffix():
    """In a checkout the shipped configs are configs/ itself; a name resolves with or without .yaml or a folder."""
    assert shipped_config_dir() == ROOT / "configs"
    for name in ("demo", "demo.yaml", "configs/demo.yaml"):
        assert shipped_config(name) == ROOT / "configs" / "demo.yaml"


def test_an_unknown_config_name_says_the_closest_and_how_to_list_them(capsys):
    with pytest.raises(FileNotFoundError, match=r"no shipped config named 'demo_feature' in .*did you mean "
                                                r"demo_features\? `icegan configs` lists them"):
        shipped_config("demo_feature")
    assert main(["configs", "nothing_like_it"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan configs: error: no shipped config named 'nothing_like_it'") and "mean" not in err


def test_icegan_configs_lists_every_config_with_its_header_line(capsys):
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert lines[0].startswith(f"{len(configs)} shipped configs in {ROOT / 'configs'}")
    assert [line.split()[0] for line in lines[1:]] == [p.stem for p in configs]
    demo_features = next(line for line in lines if line.split()[0] == "demo_features")
    assert "Demo: STSTNet LOSO" in demo_features                      # the first line of its header comment


def test_a_checkout_keeps_its_data_folder_and_icegan_data_wins(monkeypatch, tmp_path):
    from icegan.paths import REPO_ROOT, default_data_root
    monkeypatch.delenv("ICEGAN_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_data_root() == REPO_ROOT / "data"
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path / "mine"))
    assert default_data_root() == tmp_path / "mine"


def test_landmarks_without_face_recognition_say_how_to_install_it(monkeypatch):
    """face_recognition is installed apart (--no-deps, as the Makefile does): a pip user without it is told how."""
    import flownet.data.face_models as fm
    import flownet.data.synthetic_face as sf
    monkeypatch.setattr(fm, "_FR", None)            # the one memo (synthetic_face re-exports the loader)
    monkeypatch.setitem(sys.modules, "face_recognition", None)          # import face_recognition raises ImportError
    with pytest.raises(ImportError, match=r"pip install --no-deps face_recognition==1\.3\.0"):
        sf.face_recognition_modules()
