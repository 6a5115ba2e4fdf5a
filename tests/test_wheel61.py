"""icegan installed from a wheel, third pass: what a shipped config, a suite plan, a help text and an error tell a
pip user to run or to read must exist without the repository (no ``train.py``, no ``data/README.md``, no working
folder at the repository root). "Installed" is simulated as in tests/test_install46.py (:func:`icegan.paths.is_checkout`
monkeypatched to False); tests/test_install45.py runs a built wheel.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from test_install46 import _help_texts

import icegan.paths as paths
from icegan.cli import build_parser

#: a command line in a text that runs the repository's train.py (``python train.py``, ``torchrun ... train.py``)
_RUNS_TRAIN_PY = re.compile(r"(?:\bpython\d*|\btorchrun\b[^`\n]*?)\s+train\.py\b")


def _flow_configs() -> dict[str, dict]:
    """The shipped flow configs (``flow_*.yaml``), read as YAML, by stem."""
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))
            for p in sorted(paths.shipped_config_dir().glob("flow_*.yaml"))}


def test_every_shipped_flow_configs_init_weights_is_reachable_from_any_folder(tmp_path, monkeypatch):
    """A shipped flow config's train.init_weights is null, a shipped checkpoint (``shipped:<name>``; DecFlow's own
    ``shipped``) or a file a run writes under runs/: never a repository path relative to the working folder, which
    an installed icegan, or a run from another folder, does not have (was: flow_srflownet_generic.yaml's
    ``flownet/weights/srflownet_facial.pt``). A shipped checkpoint resolves from an unrelated folder."""
    from flownet.paths import REPO_ROOT
    from flownet.train import init_weights_file
    configs = _flow_configs()
    assert len(configs) >= 10
    values = {stem: (c.get("train") or {}).get("init_weights") for stem, c in configs.items()}
    bad = {stem: v for stem, v in values.items()
           if not (v is None or v == "shipped" or str(v).startswith(("shipped:", "runs/")))}
    assert bad == {}
    assert values["flow_srflownet_generic"] == "shipped:facial"
    monkeypatch.chdir(tmp_path)
    assert init_weights_file("shipped:facial").resolve() == REPO_ROOT / "flownet" / "weights" / "srflownet_facial.pt"


def test_a_suites_train_run_is_planned_as_icegan_train(tmp_path):
    """A suite's ``command: train`` run is planned (dry run, results.md's equivalent commands) as ``icegan train``,
    which an installed icegan has, and the line parses as that command (was: ``python train.py``)."""
    from icegan.suite import load_suite, plan_suite
    path = paths.shipped_config("suite_casme2_flow")
    plan = plan_suite(load_suite(path), path, tmp_path)
    argv = shlex.split(plan[0].command)
    assert argv[:3] == ["icegan", "train", "--config"]
    args = build_parser().parse_args(argv[1:])
    assert Path(args.config).name == "casme2.yaml" and args.out == str(plan[0].out)


def test_no_help_tells_to_run_train_py(monkeypatch):
    """No --help shows a command that runs the repository's train.py (an installed icegan has none): the DDP launch
    of `icegan train --help` is ``torchrun ... -m icegan train``."""
    monkeypatch.setenv("COLUMNS", "400")
    texts = _help_texts(build_parser())
    assert sorted((cmd, m.group(0)) for cmd, text in texts.items() for m in _RUNS_TRAIN_PY.finditer(text)) == []
    assert "`torchrun --nproc_per_node N -m icegan train ...`" in texts["icegan train"]


def test_world_size_without_torchrun_names_the_module_launch(monkeypatch):
    """WORLD_SIZE > 1 without torchrun's other variables: the error shows the launch an installed icegan can run."""
    from icegan import distributed
    for k in ("RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError) as err:
        distributed.check_launch()
    assert "launch with `torchrun --nproc_per_node N -m icegan train ...`" in str(err.value)
    assert not _RUNS_TRAIN_PY.search(str(err.value))


@pytest.mark.parametrize("name,example", [("casme2", "CASME2_RAW_selected/sub01/EP02_01f/img46.jpg"),
                                          ("samm", "SAMM/006/006_1_2/006_05562.jpg"),
                                          ("smic", "SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/")])
def test_a_missing_root_says_the_layout_itself(name, example, tmp_path):
    """A missing dataset root's message shows an official-layout path of that dataset, and sends nobody to the
    repository's data/README.md, which an installed icegan lacks."""
    from icegan.data.base import missing_root_message
    text = missing_root_message(name, tmp_path / "none", "--root")
    assert example in text
    assert "README" not in text


def _flow_train_error(tmp_path, monkeypatch, capsys, config: str, *overrides: str) -> str:
    """The one-line error of ``icegan flow train`` on shipped config ``config``, run from ``tmp_path``."""
    from icegan.cli import main
    monkeypatch.chdir(tmp_path)
    argv = ["flow", "train", "--config", str(paths.shipped_config(config)), "--no-progress",
            f"out_dir={tmp_path / 'out'}", *overrides]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_missing_weights_of_a_shipped_flow_recipe_name_the_command_that_writes_them(tmp_path, monkeypatch, capsys):
    """train.init_weights=runs/<name>/weights.pt, missing, where <name> is a shipped config: the error names the
    command that writes it (flow_selfsup_finetune.yaml starts from the self-supervised run's weights), in the
    form this install runs; another missing path gets no such hint."""
    assert _flow_configs()["flow_selfsup_finetune"]["train"]["init_weights"] == "runs/flow_selfsup/weights.pt"
    err = _flow_train_error(tmp_path, monkeypatch, capsys, "flow_selfsup_finetune")
    assert err.startswith("icegan flow train: error: train.init_weights: weights file not found: "
                          "runs/flow_selfsup/weights.pt; ")
    assert err.endswith(" (runs/flow_selfsup/weights.pt is made by `icegan flow train --mode selfsup --config "
                        f"{paths.shipped_config('flow_selfsup')}`)")      # run from tmp_path: the absolute path
    for other in ("runs/my_run/weights.pt", "runs/flow_selfsup/last.pt",
                  "runs/flow_srflownet_fdr/weights.pt",     # a config's file name: its run is named srflownet_fdr
                  "runs/casme2/weights.pt", "out/flow_selfsup/weights.pt"):   # the main job writes no weights.pt
        err = _flow_train_error(tmp_path, monkeypatch, capsys, "flow_selfsup_finetune", f"train.init_weights={other}")
        assert f"weights file not found: {other}; " in err and "made by" not in err


@pytest.mark.parametrize("init, config, command", [
    ("runs/srflownet_fdr/weights.pt", "flow_srflownet_fdr", "icegan flow train"),
    ("./runs/liteflownet2_fdr_v2/weights.pt", "flow_liteflownet2", "icegan flow train"),
    ("runs/decflow/weights.pt", "flow_decflow", "icegan flow train-decflow")])
def test_missing_weights_hint_matches_the_run_folder_a_flow_config_writes(tmp_path, monkeypatch, capsys, init, config,
                                                                          command):
    """A flow training writes <out_dir>/<its config's name>/weights.pt, and the name differs from the file's in 11 of
    the 12 shipped flow configs: the hint is found by that folder (was: by the file name, so runs/srflownet_fdr/
    weights.pt, which configs/flow_srflownet_fdr.yaml writes, got none)."""
    err = _flow_train_error(tmp_path, monkeypatch, capsys, "flow_selfsup_finetune", f"train.init_weights={init}")
    # run from tmp_path: the shipped file's absolute path, which works there
    assert err.endswith(f" ({Path(init)} is made by `{command} --config {paths.shipped_config(config)}`)")


def test_missing_weights_hint_names_the_installed_config_path(tmp_path, monkeypatch, capsys):
    """Installed: the hint's --config is the shipped file's path in the package (runnable from any folder)."""
    folder = paths.shipped_config_dir()                # an installed icegan's icegan/configs holds the same files
    monkeypatch.setattr(paths, "shipped_config_dir", lambda: folder)
    monkeypatch.setattr(paths, "is_checkout", lambda: False)
    err = _flow_train_error(tmp_path, monkeypatch, capsys, "flow_selfsup_finetune")
    assert err.endswith(f"--config {paths.config_hint('flow_selfsup', runnable=True)}`)")
    assert "configs/flow_selfsup.yaml`" not in err.replace(paths.config_hint("flow_selfsup", runnable=True), "")
