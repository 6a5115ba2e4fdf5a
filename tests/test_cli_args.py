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
    (["fit", "--config", "configs/features_ststnet.yaml"], "model.shift_px", 1),        # no --out needed to print
    (["features", "--config", "configs/casme2.yaml"], "flow.method", "tvl1"),
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


@pytest.mark.parametrize("argv,what", [
    (["fit", "--config", "configs/features_logreg.yaml"], "--out FILE is required: the model file to write"),
    (["features", "--config", "configs/casme2.yaml"], "--out DIR is required: the folder for features.csv"),
])
def test_out_is_still_required_to_run(argv, what, capsys):
    """--out, optional for --print-config, is still required for a run: refused before any work, naming it."""
    from icegan.cli import main
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"icegan {argv[0]}: error: {what}"), err


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


# --- icegan compare / table / ensemble: every option reaches the computation (runs made without training) ---

def _prob_runs(root):
    """Three finished LOSO folders on the toy set (3 subjects per dataset), each a fixed pseudo-random probability
    per test clip (no training): r1, r2 and r3."""
    import numpy as np

    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)

    def probs(seed):
        def fold_fn(fold):
            z = np.random.default_rng(seed * 1000 + fold.index).normal(size=(len(fold.test_idx), 3)) * 2
            e = np.exp(z - z.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)
        return fold_fn
    for s in (1, 2, 3):
        run_loso(toy.samples, probs(s), root / f"r{s}", progress=False)
    return root


@pytest.fixture(scope="module")
def prob_runs(tmp_path_factory):
    return _prob_runs(tmp_path_factory.mktemp("prob_runs"))


def test_compare_options_reach_the_bootstrap(prob_runs, tmp_path, monkeypatch):
    """`icegan compare` writes what icegan.significance gives for the same --baseline, --resamples, --confidence,
    --seed, --stratify and --format, and draws the forest plot against the same baseline and level."""
    import icegan.significance as S
    from icegan.cli import main
    drawn = {}
    monkeypatch.setattr(S, "forest_plot", lambda scopes, path, baseline=0, confidence=0.95:
                        drawn.update(baseline=baseline, confidence=confidence, n=len(scopes)))
    r1, r2, r3 = (prob_runs / f"r{s}" for s in (1, 2, 3))
    sets = [S.load_run_set("A", [r1]), S.load_run_set("B", [r2]), S.load_run_set("C", [r3])]
    for fmt in ("markdown", "csv"):
        out = tmp_path / f"c_{fmt}.md"
        assert main(["compare", f"A={r1}", f"B={r2}", f"C={r3}", "--baseline", "B", "--resamples", "150",
                     "--confidence", "0.8", "--seed", "7", "--stratify", "--format", fmt, "--out", str(out),
                     "--plot", str(tmp_path / "c.png")]) == 0
        rows = S.bootstrap_compare(sets, baseline=1, resamples=150, confidence=0.8, seed=7, stratify=True)
        assert out.read_text() == S.comparison_table(rows, baseline=1, confidence=0.8, resamples=150, fmt=fmt,
                                                     stratified=True)
        assert drawn == {"baseline": 1, "confidence": 0.8, "n": 1}
    a, b = (tmp_path / "s0.md", tmp_path / "s1.md")
    for seed, path in ((0, a), (1, b)):
        assert main(["compare", str(r1), str(r2), "--resamples", "150", "--seed", str(seed), "--out", str(path)]) == 0
    assert a.read_text() != b.read_text()          # another seed, other resamples


def test_compare_per_dataset_tables(prob_runs, tmp_path, capsys):
    """--per-dataset: one table per dataset after the overall one, the legend once at the end (Markdown), the CSV
    one table with a scope column and one header, the LaTeX floats labelled per dataset."""
    import io

    import pandas as pd

    from icegan.cli import main
    r1, r2 = prob_runs / "r1", prob_runs / "r2"
    base = ["compare", f"A={r1}", f"B={r2}", "--resamples", "120", "--per-dataset"]
    assert main(base) == 0
    md = capsys.readouterr().out
    assert md.count("Subject-level bootstrap: 120 resamples") == 1
    assert md.index("Subject-level bootstrap") > md.index("## SAMM")
    assert main([*base, "--format", "csv"]) == 0
    csv = capsys.readouterr().out
    assert "\n\n" not in csv and csv.count("scope,") == 1
    table = pd.read_csv(io.StringIO(csv))
    assert list(table["scope"]) == ["all", "all", "casme2", "casme2", "samm", "samm"]
    assert main([*base, "--format", "latex"]) == 0
    tex = capsys.readouterr().out
    for lab in ("tab:icegan-compare-all", "tab:icegan-compare-casme2", "tab:icegan-compare-samm"):
        assert f"\\label{{{lab}}}" in tex


def test_compare_errors_exit_2_naming_the_option(prob_runs, tmp_path, capsys):
    from icegan.cli import main
    assert main(["compare", f"A={prob_runs / 'r1'}", "--baseline", "B", "--resamples", "120"]) == 2
    assert "--baseline 'B' is not one of the entries' labels ['A']" in capsys.readouterr().err
    run_md = prob_runs / "r1" / "metrics.md"
    before = run_md.read_text()
    assert main(["compare", str(prob_runs / "r1"), "--resamples", "120", "--plot", str(run_md)]) == 2
    assert "--plot" in capsys.readouterr().err and run_md.read_text() == before


def test_table_writes_its_format_into_a_new_folder(prob_runs, tmp_path, capsys):
    """`icegan table --format latex --out` writes report.results_table's LaTeX into a folder it makes, and prints
    nothing of the table; a run's own metrics.md is refused as --out (exit 2)."""
    from icegan.cli import main
    from icegan.report import TableEntry, results_table
    out = tmp_path / "new" / "deeper" / "t.tex"
    assert main(["table", f"A={prob_runs / 'r1'}", "--format", "latex", "--out", str(out)]) == 0
    assert out.read_text() == results_table([TableEntry("A", [prob_runs / "r1"])], fmt="latex")
    assert capsys.readouterr().out == f"wrote {out}\n"
    run_md = prob_runs / "r1" / "metrics.md"
    before = run_md.read_text()
    assert main(["table", str(prob_runs / "r1"), "--out", str(run_md)]) == 2
    assert "--out" in capsys.readouterr().err and run_md.read_text() == before


def test_ensemble_options_reach_the_average(prob_runs, tmp_path, capsys):
    """`icegan ensemble` averages every run given with --weights, titles metrics.md with --name, and exits 2 on
    runs it cannot average."""
    import json

    from icegan.cli import main
    from icegan.ensemble import ensemble_runs
    runs = [prob_runs / f"r{s}" for s in (1, 2, 3)]
    out = tmp_path / "ens"
    assert main(["ensemble", *map(str, runs), "--out", str(out), "--weights", "3", "1", "1", "--name", "my mix"]) == 0
    want = ensemble_runs(runs, tmp_path / "api", weights=[3, 1, 1])
    assert json.loads((out / "metrics.json").read_text())["overall"] == want["overall"]
    assert (out / "predictions.csv").read_text() == (tmp_path / "api" / "predictions.csv").read_text()
    assert (out / "metrics.md").read_text().splitlines()[0] == "# my mix (probability ensemble)"
    capsys.readouterr()
    assert main(["ensemble", str(runs[0]), "--out", str(tmp_path / "one")]) == 2
    assert "icegan ensemble: error:" in capsys.readouterr().err


def test_every_command_s_help_says_what_it_does():
    """`icegan X --help` opens with a description for every command, subcommands of flow and gan included (the flow
    commands and gan train / eval showed their usage line alone)."""
    import argparse

    def leaves(p, path):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield " ".join(path), p
        for a in subs:
            for name, sp in a.choices.items():
                yield from leaves(sp, path + [name])
    found = dict(leaves(build_parser(), []))
    assert {"flow train", "flow eval", "flow run", "flow train-decflow", "gan train", "gan eval", "loso"} <= set(found)
    bare = [name for name, p in found.items() if not (p.description or "").strip()]
    assert bare == []
