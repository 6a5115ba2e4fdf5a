"""bench/ scripts run from any folder and refuse a user's slip before any work, in one line and exit 2:

1. the shipped configs they read (flow_decompose.py --casme2, gan_speed.py, training_steps.py, sklearn_threads.py,
   dataset_probe.py) are found through the package, not as ``configs/...`` relative to the cwd (flow_decompose.py
   read its config after the methods ran, and lost their results to the traceback);
2. a --root without the data (apex_landmark_loso.py, classical_loso.py, flow_bias.py, flow_decompose.py) is an
   argparse error naming --root, not a traceback whose hint names options these scripts lack (data.root);
3. one run folder given twice, also as ``./X`` (decision_rule_bound.py, shared_errors.py), is refused: it counted
   twice in the means.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from _bench import load_bench
from _one_line_error import one_line_error

ROOT = Path(__file__).resolve().parents[1]


class _Loaded(Exception):
    """Raised once a config was read: the test needs no more of the script's work."""


def _stop_after_load(monkeypatch, owner, attr: str, seen: list) -> None:
    """Wrap ``owner.<attr>`` (a config loader): the real call, its path argument recorded in ``seen``, then
    :class:`_Loaded`."""
    real = getattr(owner, attr)

    def load(cls, path=None, *rest, **kw):
        real(cls, path, *rest, **kw)
        seen.append(Path(path))
        raise _Loaded
    monkeypatch.setattr(owner, attr, load)


# ------------------------------------------------------------------ 1. shipped configs from any cwd

@pytest.mark.parametrize("script, argv, config", [("gan_speed", [], "gan_casme2.yaml"),
                                                  ("sklearn_threads", [], "features_logreg.yaml"),
                                                  ("dataset_probe", ["--weights", "0.3"], "features_ststnet.yaml")])
def test_bench_scripts_read_the_shipped_config_from_another_cwd(script, argv, config, tmp_path, monkeypatch):
    mod = load_bench(script)
    seen: list = []
    _stop_after_load(monkeypatch, mod, "load_config", seen)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv])
    with pytest.raises(_Loaded):
        mod.main()
    assert seen == [ROOT / "configs" / config]


def test_training_steps_reads_its_shipped_configs_from_another_cwd(tmp_path, monkeypatch):
    import icegan.config
    mod = load_bench("training_steps")
    seen: list = []
    _stop_after_load(monkeypatch, icegan.config, "load_config", seen)
    monkeypatch.chdir(tmp_path)
    for step in (lambda: mod.teacher_step_ms(1), mod.gan_epoch_seconds):
        with pytest.raises(_Loaded):
            step()
    assert seen == [ROOT / "configs" / "flow_selfsup.yaml", ROOT / "configs" / "gan_casme2_cpu.yaml"]


def test_flow_decompose_reads_the_casme2_config_from_another_cwd_before_any_method(tmp_path, monkeypatch):
    """The config of --casme2 loads from any cwd (the main job's casme2.yaml, GAN off), and main reads it before
    the synthetic pairs are made or any method runs: a config that fails to load is one line, exit 2."""
    mod = load_bench("flow_decompose")
    monkeypatch.chdir(tmp_path)
    cfg = mod.casme2_config()
    assert cfg.name == "casme2" and not cfg.gan.enabled and not cfg.gan.joint

    def broken():
        raise ValueError("casme2.yaml: broken")

    def no_pairs(*a, **kw):
        raise AssertionError("the synthetic pairs were made before the --casme2 config was read")
    monkeypatch.setattr(mod, "casme2_config", broken)
    monkeypatch.setattr(mod, "SyntheticFaceFlow", no_pairs)
    assert mod.main(["--casme2", "--methods", "none", "--n-pairs", "1", "--json", str(tmp_path / "x.json"),
                     "--md", str(tmp_path / "x.md")]) == 2


# ------------------------------------------------------------------ 2. a --root without the data

def _refused(capsys, call) -> str:
    with pytest.raises(SystemExit) as exc:
        call()
    assert exc.value.code == 2
    err = one_line_error(capsys, "--root", "/nonexistent")
    assert "data.root" not in err and "flow eval" not in err
    return err


@pytest.mark.parametrize("script, argv", [("apex_landmark_loso", []),
                                          ("classical_loso", ["--input", "landmarks", "--learners", "logreg"])])
def test_megc2019_scripts_refuse_a_root_without_the_table(script, argv, monkeypatch, capsys):
    mod = load_bench(script)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *argv, "--root", "/nonexistent"])
    err = _refused(capsys, mod.main)
    assert f"{script}.py: error: --root /nonexistent: no combined_3_class2_for_optical_flow.csv there" in err


@pytest.mark.parametrize("script, argv", [("flow_bias", ["--methods", "tvl1"]),
                                          ("flow_decompose", ["--methods", "none", "--n-pairs", "1"])])
def test_flow_scripts_refuse_a_root_without_casme2(script, argv, tmp_path, capsys):
    mod = load_bench(script)
    err = _refused(capsys, lambda: mod.main([*argv, "--root", "/nonexistent", *(
        ["--json", str(tmp_path / "x.json"), "--md", str(tmp_path / "x.md")] if script == "flow_decompose" else [])]))
    assert "error: --root /nonexistent: no casme2/ folder there" in err
    assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------ 3. one run folder given twice

@pytest.mark.parametrize("script", ["decision_rule_bound", "shared_errors"])
def test_a_run_folder_given_twice_is_refused(script, tmp_path, monkeypatch, capsys):
    mod = load_bench(script)
    monkeypatch.chdir(tmp_path)
    for d in ("A", "B"):
        (tmp_path / d).mkdir()
    for argv, said in ((["A", "B", "./A"], "the run folder A is given twice; give each run once"),
                       ([str(tmp_path / "A"), "B", "A"], f"the run folder A is given twice (also as {tmp_path / 'A'})")):
        with pytest.raises(SystemExit) as exc:
            mod.main(argv)
        assert exc.value.code == 2
        assert f"error: {said}" in one_line_error(capsys)
