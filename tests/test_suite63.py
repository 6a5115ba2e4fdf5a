"""``icegan suite``: mistakes of the suite file refused when it is read (an ensemble member listed twice, a ``name``
that is not one folder name), override errors that say where the override was given (the suite file's
``runs[i].overrides`` or the command line), and a closing line that names compare.png only when it was drawn."""
import re
import shutil

import pytest

from icegan.cli import main
from icegan.config import ConfigError
from icegan.suite import load_suite, plan_suite

from test_suite import CONFIGS, TINY, TOY_SUITE


def test_an_ensemble_member_listed_twice_is_refused_when_the_file_is_read(tmp_path):
    """[a, b, a] used to pass load and --dry-run and fail only after its members had trained, with a message that
    named neither the file nor the ensemble; the weights say how much a member counts."""
    path = tmp_path / "suite.yaml"
    path.write_text(TINY.replace("members: [STSTNet, random forest]",
                                 "members: [random forest, STSTNet, random forest]"))
    with pytest.raises(ConfigError) as exc:
        load_suite(path)
    assert str(exc.value) == (f"config (in {path}): ensemble 'STSTNet + random forest': member 'random forest' is "
                              "listed twice; use weights")


@pytest.mark.parametrize("name", ["", "a/b", "..", "../x"])
def test_a_suite_name_that_is_not_one_folder_name_is_refused(tmp_path, name):
    """The default --out is runs/<name>: "" wrote into runs/ itself and "../x" outside it. The rule is a run's
    name's (icegan.paths.check_run_name)."""
    path = tmp_path / "suite.yaml"
    path.write_text(TINY.replace("name: tiny", f"name: {name!r}"))
    with pytest.raises(ConfigError) as exc:
        load_suite(path)
    assert str(exc.value).startswith(f"config (in {path}): name must be one folder name (the suite's folder, "
                                     "runs/<name> without --out)")
    assert f"got {name!r}" in str(exc.value) and str(exc.value).endswith("give e.g. name=composite")


def test_a_run_override_error_names_the_suite_file_and_the_run_entry(tmp_path):
    """A typo in runs[2].overrides names the suite file and that entry; an error in the member's own config file
    names that file, not the run's overrides."""
    path = tmp_path / "suite.yaml"
    path.write_text(TINY.replace("model.forest_trees=5", "model.forest_tres=5"))
    with pytest.raises(ConfigError) as exc:
        plan_suite(load_suite(path), path, tmp_path / "out")
    assert str(exc.value).startswith(f"suite run 'random forest' (loso, in {path}, runs[2].overrides): unknown config "
                                     "key 'model.forest_tres' in override 'model.forest_tres=5' (did you mean "
                                     "'model.forest_trees'?)")
    member = tmp_path / "forest.yaml"
    member.write_text("model:\n  name: random_forest\n  forest_tres: 5\n")
    path.write_text(TINY.replace(f"{CONFIGS}/features_randomforest.yaml", str(member)))
    with pytest.raises(ConfigError) as exc:
        plan_suite(load_suite(path), path, tmp_path / "out")
    assert str(exc.value).startswith("suite run 'random forest' (loso): ") and str(member) in str(exc.value)
    assert "runs[" not in str(exc.value)


def test_a_command_line_override_error_is_the_command_lines(tmp_path):
    """A typo in the command line's overrides was blamed on the first run; it is checked once, before the runs."""
    path = tmp_path / "suite.yaml"
    path.write_text(TINY)
    with pytest.raises(ConfigError) as exc:
        plan_suite(load_suite(path), path, tmp_path / "out", ["threads=1", "model.forest_tres=3"])
    assert str(exc.value).startswith("command-line override 'model.forest_tres=3': unknown config key "
                                     "'model.forest_tres' in override 'model.forest_tres=3' (did you mean "
                                     "'model.forest_trees'?)")
    with pytest.raises(ConfigError) as exc:
        plan_suite(load_suite(path), path, tmp_path / "out", ["workers=many"])
    assert str(exc.value) == ("command-line override 'workers=many': config key 'workers' (in command line): expected "
                              "an integer, got 'many'")
    # runs of both commands: the run whose config (icegan loso's or train.py's) lacks the key is named
    train = f"  - {{label: Farneback, command: train, config: {CONFIGS}/demo.yaml}}\n"
    path.write_text(TINY.replace("ensembles:\n", train + "ensembles:\n"))
    with pytest.raises(ConfigError) as exc:
        plan_suite(load_suite(path), path, tmp_path / "out", ["max_folds=2"])
    assert str(exc.value).startswith("command-line override 'max_folds=2' (on the command: train run 'Farneback'): "
                                     "unknown config key 'max_folds'")
    path.write_text(TINY)
    # valid ones reach every run
    plan = plan_suite(load_suite(path), path, tmp_path / "out", ["model.name=logreg", "model.logreg_C=2"])
    assert {p.config.model.logreg_C for p in plan if p.config is not None} == {2.0}


def test_the_closing_line_names_compare_png_only_when_it_was_drawn(tmp_path, capsys):
    """max_folds=1 tests one subject: nothing to bootstrap, so no compare.png, and a stale one of an earlier run of
    the folder is removed (the page would otherwise sit beside a plot of other runs)."""
    suite = tmp_path / "s.yaml"
    suite.write_text(TOY_SUITE.replace("seeds: [0, 1]", "seeds: [0]"))
    out = tmp_path / "out"
    assert main(["suite", "--config", str(suite), "--out", str(out), "--no-progress", "threads=1",
                 "max_folds=2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"results in {out}/results.md (and results.tex, compare.png)"
    assert (out / "compare.png").is_file()
    for run in ("floor_s0", "forest_s0"):
        shutil.rmtree(out / run)
    assert main(["suite", "--config", str(suite), "--out", str(out), "--no-progress", "threads=1",
                 "max_folds=1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"results in {out}/results.md (and results.tex)"
    assert not (out / "compare.png").exists()
    assert "compare.png" not in (out / "results.md").read_text()
    assert re.search(r"None: a subject bootstrap needs at least two subjects", (out / "results.md").read_text())
