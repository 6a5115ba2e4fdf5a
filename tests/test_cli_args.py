"""Command-line parsing shared by train.py and the icegan subcommands."""
import pytest
import yaml

from icegan.cli import build_parser, parse_with_overrides


def test_overrides_may_follow_options():
    p = build_parser()
    a = parse_with_overrides(p, ["train", "--config", "c.yaml", "a=1", "--out", "runs/x", "b=2", "--executor", "ray"])
    assert a.overrides == ["a=1", "b=2"] and a.out == "runs/x" and a.executor == "ray"


def test_unknown_option_is_still_an_error(capsys):
    with pytest.raises(SystemExit) as e:
        parse_with_overrides(build_parser(), ["train", "--out", "x", "--bogus"])
    assert e.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_train_py_accepts_trailing_overrides(tmp_path):
    import icegan.pipeline as P
    seen = {}
    orig = P.run_from_args
    P.run_from_args = lambda args: seen.setdefault("args", args) and 0
    try:
        P.main(["--out", str(tmp_path), "gan.epochs=1", "--no-progress", "data.max_folds=1"])
    finally:
        P.run_from_args = orig
    assert seen["args"].overrides == ["gan.epochs=1", "data.max_folds=1"]


def test_building_the_parser_imports_no_torch():
    """``icegan --help`` and the parsers of every subcommand are built without torch, NumPy or OpenCV (they load
    in the handlers), so the help and the light commands answer at once."""
    import subprocess
    import sys
    code = ("import sys, icegan.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'cv2', 'torchvision', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_feature_runs_import_no_flow_networks():
    """The recognizers of `icegan loso`, `fit` and `predict` load without the flow networks and torchvision
    (flownet's entry points are imported on first use), which cost about 1.5 s of every start; flownet's entry
    points still resolve."""
    import subprocess
    import sys
    code = ("import sys, icegan.recognition, icegan.saved_recognizer; "
            "print(sorted(m for m in ('torchvision', 'flownet.registry') if m in sys.modules)); "
            "import flownet; print(flownet.get_estimator.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "flownet.registry"], out.stdout + out.stderr


def test_light_copies_agree_with_their_sources():
    """What the parsers repeat to stay light is the same as in the modules they would otherwise import."""
    import flownet.evaluate
    import icegan.recognition
    import icegan.recognizer_config
    from icegan.commands.flow import FLOW_DATA_NAMES
    assert FLOW_DATA_NAMES == flownet.evaluate.DATA_NAMES
    assert icegan.recognition.RecognizerConfig is icegan.recognizer_config.RecognizerConfig
    assert icegan.recognition.SKLEARN_MODELS is icegan.recognizer_config.SKLEARN_MODELS


@pytest.mark.parametrize("argv,key,value", [
    (["loso", "--config", "configs/features_ststnet.yaml"], "model.shift_px", 1),
    (["train", "--config", "configs/casme2.yaml"], "recognizer.epochs", 7),
    (["gan", "train", "--config", "configs/gan_casme2_cpu.yaml"], "train.epochs", 2),
    (["flow", "train", "--config", "configs/flow_srflownet_fdr.yaml"], "train.lr", 0.0005),
])
def test_print_config_shows_the_resolved_config_and_round_trips(argv, key, value, tmp_path, capsys):
    """``--print-config`` prints every key with the override applied, trains nothing, and the printed YAML read back
    as a config file gives the same config."""
    from icegan.cli import main
    assert main([*argv, "--print-config", f"{key}={value}"]) == 0
    printed = capsys.readouterr().out
    d = yaml.safe_load(printed)
    node = d
    for part in key.split("."):
        node = node[part]
    assert node == value
    saved = tmp_path / "printed.yaml"
    saved.write_text(printed)
    assert main([*argv[:-1], str(saved), "--print-config"]) == 0
    assert capsys.readouterr().out == printed


def _subcommand_paths(parser, prefix=()):
    """Every (sub)command path of an argparse parser, e.g. ('flow', 'eval'), depth first."""
    import argparse
    out = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _subcommand_paths(sub, prefix + (name,))
    return out


def test_every_subcommand_prints_its_help(capsys):
    """`--help` of the top level and of every (nested) subcommand prints a usage text and exits 0 (argparse
    %-formats help strings: a stray '%' in one crashes that command's help)."""
    paths = _subcommand_paths(build_parser())
    assert ("loso",) in paths and ("compare",) in paths and len(paths) > 10
    for path in paths:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([*path, "--help"])
        assert e.value.code == 0, path
        assert "usage:" in capsys.readouterr().out, path


def test_every_option_with_a_default_says_it_in_its_help():
    """An option that has a default (not None, False or an empty list) says "default" in its help, so that a command
    the README gives without it (`icegan flow eval --n-pairs 100`) can be read from `--help` alone."""
    import argparse

    def options(parser, path):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    yield from options(sub, (*path, name))
            else:
                yield path, a
    silent = [(" ".join(path), a.option_strings[-1], a.default) for path, a in options(build_parser(), ("icegan",))
              if a.option_strings and not any(a.default is d for d in (None, False, argparse.SUPPRESS))
              and a.default != []      # identity checks: a default of 0 is a default (0 == False)
              and not isinstance(a, (argparse._HelpAction, argparse._StoreTrueAction, argparse._StoreFalseAction))
              and "default" not in (a.help or "").lower()]
    assert silent == []


def test_flow_commands_take_device_auto(tmp_path, capsys):
    """`--device auto` of icegan flow eval and flow run resolves to this machine's device (was torch's 'Expected one
    of cpu, cuda, ...' error in flow eval)."""
    import numpy as np
    from PIL import Image

    from icegan.cli import main
    assert main(["flow", "eval", "--model", "farneback", "--n-pairs", "1", "--size", "64", "--device", "auto"]) == 0
    assert "farneback on synthetic-face" in capsys.readouterr().out
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(tmp_path / name)
    assert main(["flow", "run", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--model", "farneback",
                 "--out", str(tmp_path / "f.png"), "--device", "auto"]) == 0
    assert (tmp_path / "f.png").is_file()
