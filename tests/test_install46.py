"""icegan installed without its repository (a wheel: ``pip install icegan``), second pass: what the help texts and
messages name, where the shared data is, and what pyproject.toml ships.

A pip user has none of the repository's ``configs/``, ``docs/``, ``bench/`` or ``data/README.md``, and no
``../shared/data`` beside the package: help texts and messages name a shipped config as this install can reach it
(:func:`icegan.paths.config_hint`), and the shared data root comes from ``ICEGAN_SHARED_DATA`` only. "Installed" is
simulated here by monkeypatching :func:`icegan.paths.is_checkout` to False (tests/test_install45.py runs a built
wheel).
"""
from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import pytest
from _readme import ROOT

import icegan.paths as paths
from icegan.cli import build_parser

#: a shipped config named in a text: ``configs/NAME.yaml``, with whatever path comes before it
_CONFIG = re.compile(r"([^\s(`]*?)configs/([\w-]+)\.yaml")
#: a repository-only file named in a text, and the words before it
_REPO_ONLY = re.compile(r"(\S+\s+)?((?:docs|bench)/[\w./-]+|data/README\.md)")


def _help_texts(parser: argparse.ArgumentParser, prog: str = "icegan") -> dict[str, str]:
    """``--help`` of ``parser`` and of every subcommand below it, by command (``icegan gan train``)."""
    texts = {prog: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                texts.update(_help_texts(sub, f"{prog} {name}"))
    return texts


@pytest.fixture
def wide(monkeypatch):
    """A wide terminal, so that argparse does not wrap a line inside a path."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def installed(monkeypatch):
    """icegan as if installed from a wheel (no checkout beside it), with no ICEGAN_SHARED_DATA."""
    monkeypatch.setattr(paths, "is_checkout", lambda: False)
    monkeypatch.delenv("ICEGAN_SHARED_DATA", raising=False)


def test_every_config_a_help_names_is_shipped(wide):
    """Each ``configs/NAME.yaml`` of every subcommand's --help (descriptions and epilogs included) is a shipped
    config, so no help sends a pip user to a config that ``icegan configs`` does not have."""
    shipped = {p.stem for p in paths.shipped_config_dir().glob("*.yaml")}
    texts = _help_texts(build_parser())
    named = {(cmd, m.group(2)) for cmd, text in texts.items() for m in _CONFIG.finditer(text)}
    assert len({cmd for cmd, _ in named}) >= 5            # the walk reached the subcommands' own help
    assert sorted((cmd, name) for cmd, name in named if name not in shipped) == []


def test_an_installed_help_names_no_repository_path(installed, wide):
    """Installed: no --help names a config by the checkout's relative ``configs/NAME.yaml`` (an argument's help says
    ``NAME.yaml of `icegan configs```; a command in an epilog takes the shipped file's path), and a repository-only
    document is "the repository's" (was: `--config configs/flow_srflownet_fdr.yaml`, `docs/benchmarks.md`)."""
    texts = _help_texts(build_parser())
    package = str(Path(paths.__file__).resolve().parent) + "/"
    relative = sorted({(cmd, m.group(0)) for cmd, text in texts.items() for m in _CONFIG.finditer(text)
                       if m.group(1) != package})
    assert relative == []
    bare = sorted({(cmd, m.group(2)) for cmd, text in texts.items() for m in _REPO_ONLY.finditer(text)
                   if m.group(1) is None or not m.group(1).strip().endswith("repository's")})
    assert bare == []
    flow_train = texts["icegan flow train"]
    assert "e.g. flow_srflownet_fdr.yaml of `icegan configs`" in flow_train
    assert f"--config {package}configs/suite_cutout.yaml --out runs/cutout" in texts["icegan suite"]


def test_a_checkout_help_keeps_the_repository_paths(wide):
    """In a checkout the help texts name ``configs/NAME.yaml`` as the README does."""
    texts = _help_texts(build_parser())
    assert "YAML config, e.g. configs/flow_srflownet_fdr.yaml" in texts["icegan flow train"]
    assert "icegan suite --config configs/suite_cutout.yaml --out runs/cutout" in texts["icegan suite"]


def test_an_installed_error_names_the_shipped_config_path(installed):
    """An error of the main job that says which config to run names, in an installed icegan, the shipped file's path
    (a command to copy), not ``configs/features_ststnet.yaml`` of a checkout the user does not have."""
    from icegan.config import ConfigError
    from icegan.labels import get_label_set
    from icegan.pipeline import load_main_config

    shipped = Path(paths.__file__).resolve().parent / "configs"
    with pytest.raises(ConfigError, match=re.escape(f"`icegan loso --config {shipped / 'features_ststnet.yaml'} "
                                                    f"protocol=HDE`")):
        load_main_config(ROOT / "configs" / "demo.yaml", ["data.protocol=HDE"])
    assert get_label_set("casme2_5").config == str(shipped / "casme2_5class.yaml")
    assert paths.config_hint("demo") == "demo.yaml of `icegan configs`"


def test_an_installed_icegan_has_no_shared_data_default(installed, monkeypatch, tmp_path):
    """Installed, the shared data root is ICEGAN_SHARED_DATA or none: a default that needs it says to set it or to
    give the folder (was ``<site-packages>/../shared/data``); {shared_data} in a dataset root needs it too, a root
    without it does not; the missing-root message says it is unset."""
    from flownet.data import synthetic_face
    from icegan.data.base import missing_root_message
    from icegan.data.prepare import _expand

    with pytest.raises(FileNotFoundError, match=r"ICEGAN_SHARED_DATA is not set.*\(--root, or data\.root"):
        paths.shared_data_root()
    assert paths.shared_data_root_or_none() is None
    with pytest.raises(FileNotFoundError, match="ICEGAN_SHARED_DATA is not set"):
        _expand("{shared_data}/casme2")
    assert _expand("{data_root}/casme2") == str(paths.default_data_root() / "casme2")
    assert "{shared_data} is unset (ICEGAN_SHARED_DATA)" in missing_root_message("casme2", tmp_path / "none")

    monkeypatch.setattr(synthetic_face, "_REPO", tmp_path)           # flownet's copy of the rule: no pyproject.toml
    with pytest.raises(FileNotFoundError, match=r"ICEGAN_SHARED_DATA is not set.*--root of icegan flow eval"):
        synthetic_face.shared_data_root()
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    assert synthetic_face.shared_data_root() == tmp_path.parent / "shared" / "data"

    monkeypatch.setenv("ICEGAN_SHARED_DATA", str(tmp_path / "shared"))
    assert paths.shared_data_root() == synthetic_face.shared_data_root() == tmp_path / "shared"


def test_a_checkout_keeps_its_shared_data_beside_it(monkeypatch):
    monkeypatch.delenv("ICEGAN_SHARED_DATA", raising=False)
    assert paths.shared_data_root() == paths.REPO_ROOT.parent / "shared" / "data"
    from flownet.data.synthetic_face import shared_data_root
    assert shared_data_root() == paths.REPO_ROOT.parent / "shared" / "data"


def test_every_package_data_glob_matches_a_file():
    """Each package-data pattern of pyproject.toml matches a file of the repository, in its package's folder
    (``package-dir`` mapped), so a dead entry (``icegan = ["weights/*.pt"]``, no such folder) cannot come back."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    folders = setuptools.get("package-dir", {})
    dead = [(pkg, pattern) for pkg, patterns in setuptools["package-data"].items() for pattern in patterns
            if not any(p.is_file() for p in (ROOT / folders.get(pkg, pkg.replace(".", "/"))).glob(pattern))]
    assert dead == []
