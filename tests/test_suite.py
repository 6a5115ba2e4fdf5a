"""``icegan suite``: recipes × seeds in one command, the same runs as by hand, resumable, with clear errors."""
import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from icegan.cli import main
from icegan.config import ConfigError
from icegan.ensemble import ensemble_runs
from icegan.suite import SuiteConfig, load_suite, plan_suite, run_suite, slug

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

# three small recipes on the real megc2019_htnet maps; the suite-wide overrides cut them to 3 folds
TINY = f"""\
name: tiny
seeds: [0, 1]
baseline: STSTNet
runs:
  - {{label: logistic regression, config: {CONFIGS}/features_logreg.yaml, seeded: false, overrides: [workers=1]}}
  - {{label: STSTNet, config: {CONFIGS}/features_ststnet.yaml, overrides: [model.epochs=2]}}
  - {{label: random forest, config: {CONFIGS}/features_randomforest.yaml,
      overrides: [model.forest_trees=5, workers=1]}}
ensembles:
  - {{label: STSTNet + random forest, members: [STSTNet, random forest]}}
  - {{label: floor + forest, members: [logistic regression, random forest], weights: [1, 3]}}
"""
SMALL = ["max_folds=3", "threads=1"]


def _whole(text: str, partial: bool = True) -> str:
    """A suite page with its rows' "[PARTIAL: k of n folds]" marks (runs cut by max_folds, as these tests run them)
    taken out, after checking they are there."""
    marks = re.findall(r" \[PARTIAL: \d+ of \d+ folds\]", text)
    assert bool(marks) == partial
    return re.sub(r" \[PARTIAL: \d+ of \d+ folds\]", "", text)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "suite.yaml"
    p.write_text(TINY)
    return p


def test_slug():
    assert slug("STSTNet + shifts") == "ststnet_shifts"
    assert slug("  Off-TANet (60 ep.) ") == "off_tanet_60_ep"
    assert slug("++") == "run"


def test_plan_folders_order_and_commands(tiny, tmp_path):
    plan = plan_suite(load_suite(tiny), tiny, tmp_path / "out", ["threads=1"])
    names = [p.out.name for p in plan]
    # seed by seed: the runs, then the ensembles; the deterministic floor once, reused by seed 1's ensemble
    assert names == ["logistic_regression", "ststnet_s0", "random_forest_s0", "ststnet_random_forest_s0",
                     "floor_forest_s0", "ststnet_s1", "random_forest_s1", "ststnet_random_forest_s1",
                     "floor_forest_s1"]
    by = {p.out.name: p for p in plan}
    assert by["floor_forest_s1"].members == [tmp_path / "out/logistic_regression", tmp_path / "out/random_forest_s1"]
    assert by["floor_forest_s1"].weights == [1.0, 3.0]
    st1 = by["ststnet_s1"]
    assert (st1.config.seed, st1.config.name, st1.config.model.epochs, st1.config.threads) == (1, "ststnet_s1", 2, 1)
    assert st1.command.endswith("seed=1 name=ststnet_s1 model.epochs=2 threads=1")
    assert "--weights 1 3" in by["floor_forest_s0"].command
    # the commands are shell-quoted: a path with a space survives copy and paste
    spaced = plan_suite(load_suite(tiny), tiny, tmp_path / "my runs", ["data.root=/data/my htnet"])
    assert "--out '" + str(tmp_path / "my runs" / "ststnet_s0") + "'" in spaced[1].command
    assert spaced[1].command.endswith("'data.root=/data/my htnet'")
    # --seeds replaces the file's seeds
    assert {p.seed for p in plan_suite(load_suite(tiny, seeds=[7]), tiny, tmp_path)} == {7}


def test_shipped_suite_plans(tmp_path):
    """configs/suite_composite.yaml: every member config loads, and the recipes are the documented ones."""
    path = CONFIGS / "suite_composite.yaml"
    plan = plan_suite(load_suite(path), path, tmp_path)
    assert len(plan) == 1 + 5 * 4 + 1   # the floor once; per seed STSTNet, + shifts, forest, their ensemble; then
    assert plan[-1].over_seeds and len(plan[-1].members) == 10       # that ensemble over the ten runs of all seeds
    shifts = [p for p in plan if p.label == "STSTNet + shifts"]
    assert [p.config.model.shift_px for p in shifts] == [1] * 5
    assert all(p.config.model.shift_px == 0 for p in plan if p.label == "STSTNet")
    assert {p.config.model.name for p in plan if p.config is not None} == {"logreg", "ststnet", "random_forest"}


@pytest.mark.parametrize("edit,msg", [
    (lambda s: s.replace("seeds: [0, 1]", "seeds: []"), "seeds"),
    (lambda s: s.replace("seeds: [0, 1]", "seeds: [1, 1]"), "seeds"),
    (lambda s: s.replace("label: random forest,", "label: STSTNet,"), "used twice"),
    (lambda s: s.replace("label: random forest,", "label: STSTNet!,"), "same folder name"),
    (lambda s: s.replace("members: [STSTNet, random forest]", "members: [STSTNet, forest]"), "member 'forest'"),
    (lambda s: s.replace("members: [STSTNet, random forest]", "members: [STSTNet]"), "at least two"),
    (lambda s: s.replace("weights: [1, 3]", "weights: [1]"), "1 weights for 2 members"),
    (lambda s: s.replace("baseline: STSTNet", "baseline: HTNet"), "baseline 'HTNet'"),
    (lambda s: s + "resample: 10\n", "resample"),
    (lambda s: s.replace("seeded: false", "seeded: maybe"), "runs[0].seeded"),
])
def test_suite_file_errors(tiny, edit, msg):
    tiny.write_text(edit(TINY))
    with pytest.raises(ConfigError, match=re.escape(msg)):
        load_suite(tiny)


def test_member_errors_name_the_run(tiny, tmp_path):
    suite = load_suite(tiny)
    with pytest.raises(ConfigError, match="command-line override 'model.epoch=3': .*model.epoch'"):
        plan_suite(suite, tiny, tmp_path, ["model.epoch=3"])
    with pytest.raises(ConfigError, match="sets each run's seed"):
        plan_suite(suite, tiny, tmp_path, ["seed=3"])
    tiny.write_text(TINY.replace("features_randomforest.yaml", "features_rf.yaml"))
    with pytest.raises(FileNotFoundError, match="suite run 'random forest'.*features_rf.yaml"):
        plan_suite(load_suite(tiny), tiny, tmp_path)
    wrong = tmp_path / "wrong.py"                 # a custom recognizer with 5 logits fails at planning, named
    wrong.write_text("import torch\ndef Net(input_size):\n    return torch.nn.Sequential(torch.nn.Flatten(), "
                     "torch.nn.Linear(3 * input_size ** 2, 5))\n")
    with pytest.raises(ConfigError, match=r"suite run 'logistic regression' \(loso\).*returned \(2, 5\)"):
        plan_suite(load_suite(tiny), tiny, tmp_path, ["model.name=custom", f"model.module={wrong}:Net",
                                                      "model.seeds=1"])


def test_cli_errors_and_dry_run(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["suite", "--config", str(tiny), "--out", str(out), "--dry-run", "--seeds", "3", "threads=1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == (f"icegan loso --config {CONFIGS}/features_ststnet.yaml --out {out}/ststnet_s3 seed=3 "
                          "name=ststnet_s3 model.epochs=2 threads=1")
    assert not out.exists()                      # a dry run writes nothing
    assert main(["suite", "--config", str(tiny), "--out", str(out), "model.epoch=3"]) == 2
    assert "model.epoch" in capsys.readouterr().err
    assert main(["suite", "--config", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["suite", "--config", str(tiny), "--seeds", "0,x"])
    assert "comma-separated" in capsys.readouterr().err
    assert not out.exists()


def test_help_documents_every_key(capsys):
    with pytest.raises(SystemExit):
        main(["suite", "--help"])
    text = capsys.readouterr().out
    from dataclasses import fields

    from icegan.suite import SuiteEnsemble, SuiteRun, SuiteSelection
    for cls in (SuiteConfig, SuiteRun, SuiteEnsemble, SuiteSelection):
        for f in fields(cls):
            assert f"{f.name}:" in text, f"icegan suite --help does not document '{f.name}'"


def test_real_suite_equals_runs_by_hand_and_resumes(shared_data, tiny, tmp_path, capsys):
    """On the real maps (3 folds): each folder holds what `icegan loso` / `icegan ensemble` give by hand; an
    interrupted suite (seed 0 only) finishes with the same folders; a rerun retrains nothing; a folder of another
    config is refused, not overwritten."""
    out = tmp_path / "out"
    assert main(["suite", "--config", str(tiny), "--out", str(out), "--seeds", "0", "--no-progress", *SMALL]) == 0
    # each run's console line says it is a max_folds smoke run, as the results page does
    assert "[PARTIAL: 3 of 68 folds, max_folds: not a LOSO result]  (" in capsys.readouterr().err
    first = {p.name: _md5(p / "predictions.csv") for p in out.iterdir() if p.is_dir()}
    assert sorted(first) == ["floor_forest_s0", "logistic_regression", "random_forest_s0", "ststnet_random_forest_s0",
                             "ststnet_s0"]
    res = _whole((out / "results.md").read_text())
    assert "1 of its 1 seed(s) finished (seeds 0; the suite's: 0, given by --seeds; the file lists 0, 1;" in res and "| STSTNet | honest | CDE | 1 |" in res

    times = json.loads((out / "suite_times.json").read_text())
    assert sorted(times) == sorted(first) and all(t >= 0 for t in times.values())
    assert main(["suite", "--config", str(tiny), "--out", str(out), "--no-progress", *SMALL]) == 0
    capsys.readouterr()
    later = json.loads((out / "suite_times.json").read_text())
    assert {k: later[k] for k in times} == times          # re-read folders keep the time of the call that ran them
    assert len(later) == 9
    for name, h in first.items():                # the seed-0 folders were only re-read
        assert _md5(out / name / "predictions.csv") == h, name
    res = _whole((out / "results.md").read_text())
    assert "2 of its 2 seed(s) finished (seeds 0, 1; the suite's: 0, 1;" in res
    assert "| STSTNet | honest | CDE | 2 |" in res and "| logistic regression | honest | CDE | 1 |" in res
    assert "paired differences to STSTNet" in res and (out / "compare.png").stat().st_size > 0
    tex = _whole((out / "results.tex").read_text())          # the same table for a paper
    st = json.loads((out / "ststnet_s0" / "metrics.json").read_text())["overall"]["UF1"]
    st1 = json.loads((out / "ststnet_s1" / "metrics.json").read_text())["overall"]["UF1"]
    assert r"\begin{tabular}" in tex and f"STSTNet & honest & CDE & 2 & {(st + st1) / 2:.4f} $\\pm$" in tex
    # the folds and clips every row is pooled over (3 folds of max_folds=3), in both tables; the ensembles of two
    # seeds are one recipe (the same members' recipes and weights), so they pool too
    n = json.loads((out / "ststnet_s0" / "metrics.json").read_text())["n_samples"]
    st_row = next(ln for ln in res.splitlines() if ln.startswith("| STSTNet | honest | CDE | 2 |"))
    assert st_row.endswith(f"| 3 / {n} |") and "| Folds / clips |" in res
    assert "| STSTNet + random forest | honest | CDE | 2 |" in res and f"& 3 / {n} \\\\" in tex
    assert f"--out {out}/ststnet_s1 seed=1 name=ststnet_s1 model.epochs=2 max_folds=3 threads=1   # " in res
    # every run, by seed: each cell is that folder's overall UF1 / UAR; the unseeded floor fills one cell
    cell = lambda name: "{UF1:.4f} / {UAR:.4f}".format(**json.loads((out / name / "metrics.json").read_text())["overall"])
    assert "## Every run (UF1 / UAR of the whole protocol, by seed)\n\n| entry | seed 0 | seed 1 |" in res
    assert f"| STSTNet | {cell('ststnet_s0')} | {cell('ststnet_s1')} |" in res
    assert f"| logistic regression | {cell('logistic_regression')} (one run) | – |" in res
    assert f"| floor + forest | {cell('floor_forest_s0')} | {cell('floor_forest_s1')} |\n\n## " in res
    assert cell("ststnet_s0") != cell("ststnet_s1")

    # by hand: the same LOSO command line, and the same ensemble
    hand = tmp_path / "hand"
    assert main(["loso", "--config", str(CONFIGS / "features_ststnet.yaml"), "--out", str(hand / "st"), "seed=1",
                 "name=ststnet_s1", "model.epochs=2", "--no-progress", *SMALL]) == 0
    suite_pred = pd.read_csv(out / "ststnet_s1" / "predictions.csv")
    pd.testing.assert_frame_equal(pd.read_csv(hand / "st" / "predictions.csv"), suite_pred)
    m = ensemble_runs([out / "logistic_regression", out / "random_forest_s1"], hand / "ens", weights=[1, 3])
    suite_m = json.loads((out / "floor_forest_s1" / "metrics.json").read_text())
    assert suite_m["overall"] == m["overall"]
    pd.testing.assert_frame_equal(pd.read_csv(hand / "ens" / "predictions.csv"),
                                  pd.read_csv(out / "floor_forest_s1" / "predictions.csv"))
    assert len(suite_pred) > 0 and suite_pred["subject"].nunique() == 3

    # another recipe into the same folders is refused, and nothing is overwritten
    before = _md5(out / "logistic_regression" / "predictions.csv")
    assert main(["suite", "--config", str(tiny), "--out", str(out), "--no-progress", "model.lr=0.01", *SMALL]) == 2
    assert "different config" in capsys.readouterr().err
    assert _md5(out / "logistic_regression" / "predictions.csv") == before


def test_run_suite_returns_the_plan_of_a_dry_run(tiny, tmp_path, capsys):
    plan = run_suite(tiny, tmp_path / "o", ["threads=1"], dry_run=True)
    assert len(plan) == 9 and not (tmp_path / "o").exists()
    # without an output folder: runs/<suite name>
    assert run_suite(tiny, None, dry_run=True)[0].out == Path("runs") / "tiny" / "logistic_regression"


def test_run_suite_writes_to_the_stderr_of_its_call(tiny, tmp_path, monkeypatch):
    """run_suite's default stream was bound when icegan.suite was first imported (inside one test's capture, a
    stream that later closed); now it is sys.stderr as it is at the call."""
    import io
    import sys
    now = io.StringIO()
    monkeypatch.setattr(sys, "stderr", now)
    plan = run_suite(tiny, tmp_path / "o", ["threads=1"], dry_run=True)
    assert now.getvalue().splitlines() == [p.command for p in plan]


def test_shipped_casme2_flow_suite_plans(tmp_path):
    """configs/suite_casme2_flow.yaml: four main-job recipes (train.py), no GAN, one flow method each."""
    from icegan.pipeline import MainConfig
    path = CONFIGS / "suite_casme2_flow.yaml"
    plan = plan_suite(load_suite(path), path, tmp_path)
    assert len(plan) == 4 * 3 and all(isinstance(p.config, MainConfig) for p in plan)
    assert [p.config.flow.method for p in plan[:4]] == ["srflownet", "farneback", "tvl1", "liteflownet2"]
    assert not any(p.config.gan.enabled for p in plan)
    assert plan[0].command.startswith("icegan train --config")


def test_train_command_runs_the_main_job(tmp_path):
    """command: train runs train.py's job into the suite's folder: the same predictions as run_main by hand, and
    train.py's own keys are checked (an `icegan loso` key on the command line is an error naming that override)."""
    from icegan.pipeline import load_main_config, run_main
    tiny = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "data.max_folds=2",
            "recognizer.epochs=2", "recognizer.batch_size=16", "gan.enabled=false", "gan.joint=false",
            "flow.method=farneback", "threads=1"]
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: t\nseeds: [3]\nruns:\n  - {{label: Farneback, command: train, config: "
                     f"{CONFIGS}/demo.yaml, overrides: [{', '.join(tiny)}]}}\n")
    run_suite(suite, tmp_path / "out", progress=False)
    by_hand = run_main(load_main_config(CONFIGS / "demo.yaml", ["seed=3", "name=farneback_s3", *tiny]),
                       tmp_path / "hand", progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "farneback_s3" / "predictions.csv"),
                                  pd.read_csv(tmp_path / "hand" / "predictions.csv"))
    assert json.loads((tmp_path / "out" / "farneback_s3" / "metrics.json").read_text())["overall"] == \
        by_hand["overall"]
    assert "| Farneback | honest |" in _whole((tmp_path / "out" / "results.md").read_text())
    with pytest.raises(ConfigError, match=r"command-line override 'max_folds=2': .*did you mean 'data.max_folds'"):
        plan_suite(load_suite(suite), suite, tmp_path, ["max_folds=2"])


def test_per_dataset_comparisons(tmp_path):
    """Runs over several datasets get one bootstrap table per dataset (titled, subjects counted) and a taller forest
    plot; per_dataset: false keeps the overall table only."""
    suite = tmp_path / "s.yaml"
    body = (f"name: toy\nseeds: [0, 1]\nresamples: 200\nruns:\n"
            f"  - {{label: logreg, config: {CONFIGS}/demo_features.yaml, seeded: false,"
            f" overrides: [model.name=logreg, model.hflip=false, model.tta_hflip=false]}}\n"
            f"  - {{label: STSTNet, config: {CONFIGS}/demo_features.yaml, overrides: [model.epochs=2]}}\n")
    suite.write_text(body)
    run_suite(suite, tmp_path / "a", ["threads=1"], progress=False)
    res = (tmp_path / "a" / "results.md").read_text()
    heads = [ln for ln in res.splitlines() if ln.startswith("## Subject-bootstrap")]
    assert heads == ["## Subject-bootstrap intervals, paired differences to logreg",      # the toy set: 2 datasets
                     "## Subject-bootstrap intervals, CASME II (4 subjects), paired differences to logreg",
                     "## Subject-bootstrap intervals, SAMM (4 subjects), paired differences to logreg"]
    assert res.count("Subject-level bootstrap: 200 resamples") == 1          # one legend, after the last table
    assert "within each dataset" not in res
    res_a = res
    tall = (tmp_path / "a" / "compare.png").stat().st_size
    suite.write_text(body + "per_dataset: false\n")
    run_suite(suite, tmp_path / "b", ["threads=1"], progress=False)
    res = (tmp_path / "b" / "results.md").read_text()
    assert [ln for ln in res.splitlines() if ln.startswith("## Subject-bootstrap")] == [
        "## Subject-bootstrap intervals, paired differences to logreg"]
    assert (tmp_path / "b" / "compare.png").stat().st_size < tall
    # stratify: true reaches the overall comparison (subjects drawn within each dataset) and its legend says so;
    # the per-dataset tables, one stratum each, are the same draws as without it
    suite.write_text(body + "stratify: true\n")
    run_suite(suite, tmp_path / "c", ["threads=1"], progress=False)
    strat = (tmp_path / "c" / "results.md").read_text()
    assert strat.count("resamples of the subjects with replacement within each dataset") == 1

    def tables(text):
        return [[ln for ln in block.splitlines() if ln.startswith("|")]
                for block in text.split("## ") if block.startswith("Subject-bootstrap")]
    assert tables(strat)[0] != tables(res_a)[0]
    assert tables(strat)[1:] == tables(res_a)[1:]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("suite_*.yaml")), ids=lambda p: p.name)
def test_every_shipped_suite_plans(path, tmp_path):
    """Each shipped suite's member configs load with their overrides (a typo there fails here, not after an hour)."""
    plan = plan_suite(load_suite(path), path, tmp_path)
    suite = load_suite(path)
    assert {p.label for p in plan} == set(suite.labels)
    assert {p.seed for p in plan} == set(suite.seeds)


def test_member_data_errors_fail_before_any_member_trains(shared_data, tmp_path, capsys):
    """A member whose data fails `icegan loso`'s checks (here an SDE run with the dataset head, and a table with a
    missing map) stops the suite before the first member trains, naming the member and its seed. The valid member
    runs the same LOSO (its protocol and dataset), which a suite's runs must (else the plan refuses them first)."""
    root = f"data.root={shared_data / 'megc2019_htnet'}"
    for bad, msg in [(["protocol=SDE", "dataset=casme2", "model.domain_adversarial=1"],
                      "suite run 'dataset head' (seed 0): model.domain_adversarial=1.0 learns features"),
                     (["model.au_weight=1", f"data.annotations={tmp_path / 'no_sheets'}"],
                      "suite run 'dataset head' (seed 0): model.au_weight=1.0: ")]:
        suite = tmp_path / "bad.yaml"
        same = [o for o in bad if o.startswith(("protocol=", "dataset="))]
        suite.write_text(f"name: bad\nseeds: [0]\nruns:\n"
                         f"  - {{label: plain, config: {CONFIGS}/features_ststnet.yaml, "
                         f"overrides: [{', '.join(['model.epochs=1', *same])}]}}\n"
                         f"  - {{label: dataset head, config: {CONFIGS}/features_ststnet.yaml, "
                         f"overrides: [{', '.join(bad)}]}}\n")
        out = tmp_path / "out"
        assert main(["suite", "--config", str(suite), "--out", str(out), "--no-progress", root, *SMALL]) == 2
        err = capsys.readouterr().err
        assert f"icegan suite: error: {msg}" in err and "Traceback" not in err
        assert not out.exists()                  # the first, valid member did not start either


def test_members_read_the_sheets_once(shared_data, tmp_path, sheet_reads):
    """The pre-check's action units are handed to the member run: one read of the sheets per member that needs
    them, none for the others."""
    suite = tmp_path / "au.yaml"
    suite.write_text(f"name: au\nseeds: [0]\nruns:\n"
                     f"  - {{label: plain, config: {CONFIGS}/features_ststnet.yaml, overrides: [model.epochs=1]}}\n"
                     f"  - {{label: units, config: {CONFIGS}/features_ststnet.yaml, "
                     f"overrides: [model.epochs=1, model.au_weight=1]}}\n")
    run_suite(suite, tmp_path / "out", [f"data.root={shared_data / 'megc2019_htnet'}",
                                        f"data.annotations={shared_data / 'annotations'}", "max_folds=1",
                                        "threads=1"], progress=False)
    assert len(sheet_reads) == 1
    assert json.loads((tmp_path / "out" / "units_s0" / "metrics.json").read_text())["n_folds"] == 1
    # one fold = one subject: the results page says there is nothing to resample instead of failing
    page = (tmp_path / "out" / "results.md").read_text()
    assert "None: a subject bootstrap needs at least two subjects." in page and "units" in page
    assert not (tmp_path / "out" / "compare.png").exists()


OTHER = f"""\
name: other
seeds: [0]
baseline: plain STSTNet
runs:
  - {{label: plain STSTNet, config: {CONFIGS}/features_ststnet.yaml, overrides: [model.epochs=2]}}
  - {{label: STSTNet fast, config: {CONFIGS}/features_ststnet.yaml, overrides: [model.epochs=2, model.lr=0.01]}}
"""


def _tree_md5(folder: Path) -> dict:
    return {str(f.relative_to(folder)): _md5(f) for f in sorted(folder.rglob("*")) if f.is_file()}


def test_suite_reuses_finished_runs_of_another_suite(shared_data, tiny, tmp_path, capsys):
    """--reuse copies a run another suite made with the same config but its name (byte-identical predictions, the
    source untouched, the copy named in results.md); another config is trained; a copy whose LOSO header does not
    match the data is refused and removed; a missing --reuse folder is an error."""
    first = tmp_path / "first"
    assert main(["suite", "--config", str(tiny), "--out", str(first), "--seeds", "0", "--no-progress", *SMALL]) == 0
    src = first / "ststnet_s0"
    before = _tree_md5(src)
    other = tmp_path / "other.yaml"
    other.write_text(OTHER)
    out = tmp_path / "second"
    capsys.readouterr()
    assert main(["suite", "--config", str(other), "--out", str(out), "--reuse", str(first), "--dry-run", *SMALL]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert dry[0].endswith(f"   # reuse: copy {src.resolve()}") and "#" not in dry[1]   # model.lr: another recipe
    # a run of the same recipe that differs in a setting says which, so that a stray override (threads=2) is not a
    # silent retraining; a new seed is trained as planned, without a note
    assert main(["suite", "--config", str(other), "--out", str(out), "--reuse", str(first), "--dry-run",
                 "max_folds=3", "threads=2"]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert dry[0].endswith(f"   # not reused: {src.resolve()} differs in threads (2 here, 1 there)")
    assert "#" not in dry[1]
    assert main(["suite", "--config", str(other), "--out", str(out), "--reuse", str(first), "--dry-run",
                 "--seeds", "1", *SMALL]) == 0
    assert "#" not in capsys.readouterr().out
    assert not out.exists()
    # the same note before training, in a real run (here one fold: max_folds differs too)
    assert main(["suite", "--config", str(other), "--out", str(tmp_path / "near"), "--reuse", str(first),
                 "--no-progress", "max_folds=1", "threads=2"]) == 0
    err = capsys.readouterr().err
    assert err.count("note: --reuse: ") == 1 and "'plain STSTNet' seed 0 is trained, not copied: " in err
    assert "threads (2 here, 1 there)" in err and "max_folds (1 here, 3 there)" in err
    assert main(["suite", "--config", str(other), "--out", str(out), "--reuse", str(first), "--no-progress",
                 *SMALL]) == 0
    err = capsys.readouterr().err
    assert f"reused: copied from {src.resolve()}" in err and err.count("reused: copied") == 1
    assert "note: --reuse" not in err
    copy = out / "plain_ststnet_s0"
    assert _md5(copy / "predictions.csv") == before["predictions.csv"]
    assert (copy / "reused_from.txt").read_text().strip() == str(src.resolve())
    assert "name: plain_ststnet_s0" in (copy / "config.yaml").read_text()
    assert json.loads((copy / "metrics.json").read_text())["overall"] == \
        json.loads((src / "metrics.json").read_text())["overall"]
    assert not (out / "ststnet_fast_s0" / "reused_from.txt").exists()          # model.lr differs: trained
    assert _md5(out / "ststnet_fast_s0" / "predictions.csv") != before["predictions.csv"]
    assert _tree_md5(src) == before                                            # the source is never written
    res = (out / "results.md").read_text()
    assert f"name=plain_ststnet_s0 model.epochs=2 max_folds=3 threads=1   # reused: copied from {src.resolve()}" in res
    assert "model.lr=0.01 max_folds=3 threads=1   # " in res and res.count("# reused") == 1
    # a copy is a finished run like any other: it can be copied again, and its copy has the same predictions
    assert main(["suite", "--config", str(other), "--out", str(tmp_path / "fourth"), "--reuse", str(out),
                 "--no-progress", *SMALL]) == 0
    assert capsys.readouterr().err.count("reused: copied from") == 2
    assert _md5(tmp_path / "fourth" / "plain_ststnet_s0" / "predictions.csv") == before["predictions.csv"]
    # a rerun re-reads the copy (nothing copied again)
    assert main(["suite", "--config", str(other), "--out", str(out), "--reuse", str(first), "--no-progress",
                 *SMALL]) == 0
    assert "reused: copied" not in capsys.readouterr().err

    # a source whose LOSO header is not this data's (here: one fold fewer) is refused after the copy; the copy goes
    header = json.loads((src / "run.json").read_text())
    header["folds"] = header["folds"][:-1]
    (src / "run.json").write_text(json.dumps(header))
    bad = tmp_path / "third"
    assert main(["suite", "--config", str(other), "--out", str(bad), "--reuse", str(first), "--no-progress",
                 *SMALL]) == 2
    msg = capsys.readouterr().err
    assert "is not this suite's run on this data" in msg and "the copy was removed" in msg
    assert not (bad / "plain_ststnet_s0").exists()
    assert main(["suite", "--config", str(other), "--out", str(bad), "--reuse", str(tmp_path / "nowhere"),
                 *SMALL]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_reusable_runs_skip_unfinished_oracle_and_ensemble_folders(tmp_path):
    """Only finished honest run folders are offered for reuse; the config comparison ignores the name and neutral new
    keys but nothing else."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config, to_dict
    from icegan.suite import find_reusable_run, reusable_runs

    cfg = load_config(LosoConfig, CONFIGS / "features_ststnet.yaml", ["seed=3"])
    saved = to_dict(cfg)
    saved["name"] = "older_name"
    del saved["model"]["cutout_px"]                     # a run made before that key existed, at its neutral value

    def make(name, metrics=None, files=("config.yaml", "run.json", "predictions.csv", "metrics.json")):
        return _pool_run(tmp_path / "pool" / name, saved, files, metrics or {"oracle_epoch": False})

    make("a_unfinished", files=("config.yaml", "run.json", "predictions.csv"))
    make("b_oracle", metrics={"oracle_epoch": True})
    make("c_ensemble", files=("run.json", "predictions.csv", "metrics.json"))
    good = make("d_good")
    pool = reusable_runs([tmp_path / "pool"])
    assert [p for p, _ in pool] == [good.resolve()]
    assert find_reusable_run(cfg, pool) == good.resolve()
    assert reusable_runs([good]) == pool                      # a run folder itself
    for over in (["seed=4"], ["seed=3", "threads=1"], ["seed=3", "model.cutout_px=4"]):
        assert find_reusable_run(load_config(LosoConfig, CONFIGS / "features_ststnet.yaml", over), pool) is None
    (good / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="d_good.metrics.json: cannot be read as JSON.*--reuse: run the command"):
        reusable_runs([tmp_path / "pool"])
    (good / "metrics.json").write_text("[1, 2]")                  # JSON, not an object: named, not an AttributeError
    with pytest.raises(ValueError, match="d_good.metrics.json: not a JSON object"):
        reusable_runs([tmp_path / "pool"])
    (good / "metrics.json").write_text("{}")
    (good / "config.yaml").write_text("a: [unclosed")
    with pytest.raises(ValueError, match="--reuse: cannot read .*d_good.config.yaml"):
        reusable_runs([tmp_path / "pool"])


def test_reuse_of_a_main_job_run_links_its_fold_folders(tmp_path, capsys):
    """command: train runs are reused too: the copy has the same predictions, and the main job's per-fold folder
    (checkpoints, sample grids) is linked, not copied."""
    tiny = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "data.max_folds=2",
            "recognizer.epochs=2", "recognizer.batch_size=16", "gan.epochs=1", "gan.joint=false",
            "flow.method=farneback", "threads=1"]
    for name, label in (("a", "Farneback"), ("b", "Farneback again")):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\nseeds: [3]\nruns:\n  - {{label: {label}, command: train, "
                                               f"config: {CONFIGS}/demo.yaml, overrides: [{', '.join(tiny)}]}}\n")
    run_suite(tmp_path / "a.yaml", tmp_path / "a", progress=False)
    src = tmp_path / "a" / "farneback_s3"
    assert (src / "folds").is_dir()
    run_suite(tmp_path / "b.yaml", tmp_path / "b", progress=False, reuse=[tmp_path / "a"])
    copy = tmp_path / "b" / "farneback_again_s3"
    assert (copy / "reused_from.txt").is_file()
    assert (copy / "folds").is_symlink() and (copy / "folds").resolve() == (src / "folds").resolve()
    assert _md5(copy / "predictions.csv") == _md5(src / "predictions.csv")
    assert "name: farneback_again_s3" in (copy / "config.yaml").read_text()


def test_ensemble_over_seeds_plan_and_errors(tiny, tmp_path):
    """``over_seeds: true``: one folder after the last seed averaging every seed's runs of the members, each member
    weighing its weight in all (shared by its runs; an unseeded run once); not a selection candidate."""
    tiny.write_text(TINY + "  - {label: all seeds, members: [STSTNet, random forest], over_seeds: true}\n"
                           "  - {label: floor all seeds, members: [logistic regression, random forest], "
                           "weights: [1, 3], over_seeds: true}\n")
    plan = plan_suite(load_suite(tiny), tiny, tmp_path / "out")
    assert [p.out.name for p in plan[-2:]] == ["all_seeds", "floor_all_seeds"]
    assert not any(p.label.endswith("all seeds") for p in plan[:-2])       # never planned per seed
    every, floor = plan[-2:]
    o = tmp_path / "out"
    assert every.members == [o / "ststnet_s0", o / "ststnet_s1", o / "random_forest_s0", o / "random_forest_s1"]
    assert every.weights is None and every.over_seeds and every.seed == 1
    assert floor.members == [o / "logistic_regression", o / "random_forest_s0", o / "random_forest_s1"]
    assert floor.weights == [1.0, 1.5, 1.5]
    assert "--weights 1 1.5 1.5" in floor.command and "# one model of seeds 0, 1" in floor.command
    assert load_suite(tiny).candidates == ["logistic regression", "STSTNet", "random forest",
                                           "STSTNet + random forest", "floor + forest"]
    tiny.write_text(TINY + "  - {label: all seeds, members: [STSTNet, random forest], over_seeds: true}\n"
                           "selection: {inner_folds: 2, candidates: [STSTNet, all seeds]}\n")
    with pytest.raises(ConfigError, match="'all seeds' is an ensemble over the seeds"):
        load_suite(tiny)


def test_real_suite_ensemble_over_seeds(shared_data, tiny, tmp_path, capsys):
    """On the real maps (2 folds): the over-seeds folder holds exactly `icegan ensemble` of the four runs, and the
    results page shows it as one model of all seeds; the console names its seeds, not the last one, and the last line
    names every results file."""
    tiny.write_text(TINY.replace("  - {label: floor + forest, members: [logistic regression, random forest], "
                                 "weights: [1, 3]}\n", "")
                    + "  - {label: all seeds, members: [STSTNet, random forest], over_seeds: true}\n")
    out = tmp_path / "out"
    assert main(["suite", "--config", str(tiny), "--out", str(out), "--no-progress", "max_folds=2",
                 "threads=1"]) == 0
    printed = capsys.readouterr()
    assert f"all seeds, seeds 0, 1 -> {out / 'all_seeds'}" in printed.err and "all seeds, seed 1" not in printed.err
    assert f"results in {out}/results.md (and results.tex, compare.png)" in printed.out
    assert (out / "results.tex").is_file()
    members = [out / n for n in ("ststnet_s0", "ststnet_s1", "random_forest_s0", "random_forest_s1")]
    m = ensemble_runs(members, tmp_path / "hand")
    got = json.loads((out / "all_seeds" / "metrics.json").read_text())
    assert got["overall"] == m["overall"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "all_seeds" / "predictions.csv"),
                                  pd.read_csv(tmp_path / "hand" / "predictions.csv"))
    res = _whole((out / "results.md").read_text())
    cell = "{UF1:.4f} / {UAR:.4f}".format(**got["overall"])
    assert f"| all seeds | – | {cell} (one model of all seeds) |" in res
    assert "| all seeds | honest | CDE | 1 |" in res and "average the runs of every seed" in res


def test_an_unseeded_member_is_planned_once(tmp_path):
    """A recipe with seeded: false runs once for the whole suite, in a folder without a seed suffix."""
    from icegan.suite import load_suite, plan_suite
    p = tmp_path / "s.yaml"
    p.write_text(TINY.replace("overrides: [model.forest_trees=5, workers=1]}",
                              "seeded: false, overrides: [model.forest_trees=5, workers=1]}"))
    names = [x.out.name for x in plan_suite(load_suite(p), p, tmp_path / "out")]
    assert names.count("floor_forest") == 1 and not any(n.startswith("floor_forest_s") for n in names)


def test_a_one_seed_suite_marks_no_run_as_one_run(tmp_path):
    """With one seed every entry has one run, so the per-seed table needs no '(one run)' mark; a finished run whose
    metrics.json is cut short or lacks 'overall' is named."""
    from icegan.suite import load_suite, per_seed_table, plan_suite
    p = tmp_path / "s.yaml"
    p.write_text(TINY)
    suite = load_suite(p, seeds=[0])
    plan = plan_suite(suite, p, tmp_path / "out")
    for x in plan:
        x.out.mkdir(parents=True)
        (x.out / "metrics.json").write_text(json.dumps({"overall": {"UF1": 0.5, "UAR": 0.5}}))
    table = per_seed_table(suite, plan, {x.out for x in plan})
    assert "(one run)" not in table
    for text in ('{"overall": {"UF1": 0.5', '{"per_dataset": {}}'):            # cut short; no overall
        (plan[0].out / "metrics.json").write_text(text)
        with pytest.raises(ValueError) as exc:
            per_seed_table(suite, plan, {x.out for x in plan})
        assert str(exc.value).startswith(f"{plan[0].out}: no readable metrics.json ("), text


def test_reuse_near_miss_names_settings_not_other_recipes():
    """A pool run of the same seed and model sections that differs in a setting (threads, flow.batch_size: speed,
    not result) is named with the keys; one of another seed or another model-section value is no near miss."""
    from icegan.config import apply_overrides, to_dict
    from icegan.pipeline import load_main_config
    from icegan.suite import _comparable, reuse_near_miss
    base = load_main_config(None, [])
    pool = [(Path("/runs/pool/demo_s0"), _comparable(to_dict(base)))]
    for over, note in ((["threads=2"], "threads (2 here, 0 there)"),
                       (["flow.batch_size=64"], "flow.batch_size (64 here, 32 there)"),
                       (["threads=2", "flow.batch_size=8"], "threads (2 here, 0 there), flow.batch_size (8 here")):
        assert reuse_near_miss(apply_overrides(base, over), pool).startswith(f"/runs/pool/demo_s0 differs in {note}")
    for over in (["seed=1"], ["gan.epochs=3"], ["recognizer.lr=0.01", "threads=2"], ["flow.method=tvl1"]):
        assert reuse_near_miss(apply_overrides(base, over), pool) is None, over


def test_a_member_whose_training_diverges_ends_the_suite_in_one_line(tmp_path, capsys, monkeypatch):
    """A fold of a member run whose model gives NaN scores is one `icegan suite` error line (as in `icegan loso`),
    not a traceback."""
    import numpy as np

    import icegan.recognition as recognition
    real = recognition.fit_predict_folds
    monkeypatch.setattr(recognition, "fit_predict_folds",
                        lambda *a, **k: [np.asarray(s, dtype=np.float64) * np.nan for s in real(*a, **k)])
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: d\nseeds: [0]\nruns:\n  - {{label: floor, config: {CONFIGS}/features_logreg.yaml, "
                     f"overrides: [data.source=toy, workers=1]}}\n")
    assert main(["suite", "--config", str(suite), "--out", str(tmp_path / "out"), "--no-progress",
                 "max_folds=2", "threads=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].startswith("icegan suite: error: fold '") and "NaN or Inf: its training diverged" in err
    assert "Traceback" not in err


def test_near_miss_takes_the_closest_first_run_and_up_to_most_keys():
    """reuse_near_miss names the pool run with the fewest differing keys (the first of equals), up to ``most`` keys
    (3 by default) and none beyond."""
    from icegan.config import apply_overrides, to_dict
    from icegan.pipeline import load_main_config
    from icegan.suite import _comparable, reuse_near_miss
    base = load_main_config(None, [])
    want = apply_overrides(base, ["threads=2", "device=cuda", "data.max_folds=2"])
    pool = [(Path("/p/base"), _comparable(to_dict(base))),
            (Path("/p/two"), _comparable(to_dict(apply_overrides(base, ["threads=2"])))),
            (Path("/p/one_a"), _comparable(to_dict(apply_overrides(base, ["threads=2", "device=cuda"])))),
            (Path("/p/one_b"), _comparable(to_dict(apply_overrides(base, ["threads=2", "data.max_folds=2"]))))]
    assert reuse_near_miss(want, pool).startswith("/p/one_a differs in data.max_folds (2 here")
    assert reuse_near_miss(want, pool[:1]).startswith("/p/base differs in ")         # three keys: still named
    far = apply_overrides(want, ["data.n_subjects=3"])
    assert reuse_near_miss(far, pool[:1]) is None                                   # four keys: another run
    assert reuse_near_miss(far, pool[:1], most=4).startswith("/p/base differs in ")


TOY_SUITE = f"""\
name: toy
seeds: [0, 1]
resamples: 200
runs:
  - {{label: floor, config: {CONFIGS}/demo_features.yaml, overrides: [model.name=logreg, workers=1]}}
  - {{label: forest, config: {CONFIGS}/demo_features.yaml,
      overrides: [model.name=random_forest, model.forest_trees=5, workers=1]}}
"""


def test_an_interrupted_suite_leaves_the_page_of_its_finished_seeds(tmp_path, monkeypatch):
    """results.md is written after every seed: a suite stopped in seed 1 leaves the page of seed 0 alone (its table,
    a per-seed table of seed 0 only), not of folders that never finished."""
    import icegan.commands.loso as loso
    suite = tmp_path / "s.yaml"
    suite.write_text(TOY_SUITE)
    real = loso.run

    def run(cfg, out, **kw):
        if out.name.endswith("_s1"):
            raise KeyboardInterrupt
        return real(cfg, out, **kw)
    monkeypatch.setattr(loso, "run", run)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, tmp_path / "out", ["threads=1", "max_folds=4"], progress=False)
    res = (tmp_path / "out" / "results.md").read_text()
    assert "1 of its 2 seed(s) finished (seeds 0; the suite's: 0, 1;" in res
    assert "| entry | seed 0 |\n|---|---|\n| floor | " in res and "seed 1 |" not in res
    assert "| floor | honest | CDE | 1 |" in _whole(res) and "| forest | honest | CDE | 1 |" in _whole(res)


@pytest.mark.parametrize("max_folds, heads", [
    (4, ["## Subject-bootstrap intervals, paired differences to floor"]),        # casme2 subjects only: no split
    (5, ["## Subject-bootstrap intervals, paired differences to floor",
         "## Subject-bootstrap intervals, CASME II (4 subjects), paired differences to floor",
         "## Subject-bootstrap intervals, SAMM (1 subject)"]),
])
def test_results_page_scopes_and_one_legend(tmp_path, max_folds, heads):
    """A comparison per dataset only when the runs span several; a dataset of one tested subject gets no bootstrap
    (a note instead), and the legend follows the last table drawn."""
    suite = tmp_path / "s.yaml"
    suite.write_text(TOY_SUITE.replace("seeds: [0, 1]", "seeds: [0]"))
    run_suite(suite, tmp_path / "out", ["threads=1", f"max_folds={max_folds}"], progress=False)
    res = (tmp_path / "out" / "results.md").read_text()
    got = [ln for ln in res.splitlines() if ln.startswith("## Subject-bootstrap")]
    assert len(got) == len(heads) and all(g.startswith(h) for g, h in zip(got, heads))
    assert res.count("Subject-level bootstrap: 200 resamples") == 1
    legend = res.index("Subject-level bootstrap: 200 resamples")
    assert legend < res.index("## Commands") and legend > res.index(heads[-1] if max_folds == 4 else heads[1])
    if max_folds == 5:
        assert legend < res.index(heads[2])
        assert got[2] + "\n\nNone: a subject bootstrap needs at least two subjects." in res


def test_seeds_option_reads_a_comma_list():
    """--seeds takes a comma list such as '0,1,2', spaces and a trailing comma included."""
    from icegan.cli import build_parser
    assert build_parser().parse_args(["suite", "--config", "s.yaml", "--seeds", "3, 5,"]).seeds == [3, 5]


def _pool_run(folder: Path, config: dict, files=("config.yaml", "run.json", "predictions.csv", "metrics.json"),
              metrics: dict | None = None) -> Path:
    """A finished-looking run folder of ``config`` (only the named files; ``metrics`` in metrics.json, by default one
    without ``oracle_epoch``, as older runs wrote it)."""
    import yaml
    folder.mkdir(parents=True)
    for f in files:
        (folder / f).write_text("x")
    if "config.yaml" in files:
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if "metrics.json" in files:
        (folder / "metrics.json").write_text(json.dumps(metrics or {"overall": {"UF1": 0.5, "UAR": 0.5}}))
    return folder


def test_reuse_pool_needs_every_file_of_a_run_and_the_same_device(tmp_path, monkeypatch):
    """A run lacking any one of config.yaml, run.json, predictions.csv or metrics.json is not offered (one whose
    metrics.json predates the oracle_epoch key is); a run of another device is not this run; of two copies of the run the first in folder order is taken, by its absolute
    path even when --reuse names a relative folder."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config, to_dict
    from icegan.suite import find_reusable_run, reusable_runs

    cfg = load_config(LosoConfig, CONFIGS / "features_ststnet.yaml", ["seed=3"])
    saved = to_dict(cfg)
    need = ("config.yaml", "run.json", "predictions.csv", "metrics.json")
    for i, missing in enumerate(need):
        _pool_run(tmp_path / "pool" / f"a{i}_no_{missing}", saved, [f for f in need if f != missing])
    _pool_run(tmp_path / "pool" / "b_cuda", {**saved, "device": "cuda"})
    first, second = _pool_run(tmp_path / "pool" / "c_run", saved), _pool_run(tmp_path / "pool" / "d_run", saved)
    monkeypatch.chdir(tmp_path)
    pool = reusable_runs(["pool"])
    assert [p for p, _ in pool] == [(tmp_path / "pool" / "b_cuda").resolve(), first.resolve(), second.resolve()]
    assert find_reusable_run(cfg, pool) == first.resolve() and find_reusable_run(cfg, pool[:1]) is None
    with pytest.raises(FileNotFoundError, match=r"--reuse nowhere: no such folder"):
        reusable_runs(["pool", "nowhere"])


@pytest.mark.parametrize("name, data", [("config.yaml", b"seed: [3\n"), ("config.yaml", b"seed: \xff\xfe\n"),
                                        ("metrics.json", b"\xff\xfe{}")],
                         ids=["bad-yaml", "config-not-utf8", "metrics-not-utf8"])
def test_reuse_pool_names_the_run_of_an_unreadable_file(tmp_path, name, data):
    from icegan.suite import reusable_runs
    run = _pool_run(tmp_path / "pool" / "damaged_s0", {"seed": 3, "name": "damaged_s0"})
    (run / name).write_bytes(data)
    pattern = (r"--reuse: cannot read .*damaged_s0/config\.yaml" if name == "config.yaml"
               else r"damaged_s0/metrics\.json: cannot be read as JSON .*--reuse: run the command")
    with pytest.raises(ValueError, match=pattern):
        reusable_runs([tmp_path / "pool"])


def test_a_copied_run_gets_its_own_config_and_names_its_source_and_is_never_copied_over(tmp_path):
    """copy_finished_run: every file copied byte for byte, config.yaml rewritten for the new run's config (its name),
    reused_from.txt naming the source; a second copy into the same folder is refused and changes nothing."""
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config, to_dict
    from icegan.suite import copy_finished_run

    cfg = load_config(LosoConfig, CONFIGS / "features_ststnet.yaml", ["seed=3"])
    src = _pool_run(tmp_path / "pool" / "old_s3", {**to_dict(cfg), "name": "old_s3"})
    (src / "predictions.csv").write_text("clip,y_pred\na,1\n")
    dst = tmp_path / "new" / "new_s3"
    copy_finished_run(src, dst, load_config(LosoConfig, CONFIGS / "features_ststnet.yaml", ["seed=3", "name=new_s3"]))
    assert (dst / "predictions.csv").read_text() == "clip,y_pred\na,1\n"
    assert (dst / "reused_from.txt").read_text() == f"{src}\n"
    assert "name: new_s3" in (dst / "config.yaml").read_text() and "name: old_s3" in (src / "config.yaml").read_text()
    before = _tree_md5(dst)
    with pytest.raises(FileExistsError, match="new_s3 exists"):
        copy_finished_run(src, dst, cfg)
    assert _tree_md5(dst) == before


def test_reuse_option_takes_several_folders():
    """--reuse may be given several times: every folder is searched (none by default)."""
    from icegan.cli import build_parser
    assert build_parser().parse_args(["suite", "--config", "s.yaml", "--reuse", "a", "--reuse", "b"]).reuse == ["a", "b"]
    assert build_parser().parse_args(["suite", "--config", "s.yaml"]).reuse == []


def test_custom_recognizer_is_checked_for_the_suites_label_set(tiny, tmp_path):
    """Planning checks a custom recognizer against the run's classes: with data.labels=casme2_5 a network of five
    logits passes and one of three is refused, named."""
    def net(k: int):
        path = tmp_path / f"net{k}.py"
        path.write_text("import torch\ndef Net(input_size):\n    return torch.nn.Sequential(torch.nn.Flatten(), "
                        f"torch.nn.Linear(3 * input_size ** 2, {k}))\n")
        return path
    five = ["data.source=table", f"data.table={tmp_path / 'features.csv'}", "data.labels=casme2_5", "model.seeds=1",
            "model.name=custom"]
    assert plan_suite(load_suite(tiny), tiny, tmp_path, [*five, f"model.module={net(5)}:Net"])
    with pytest.raises(ConfigError, match=r"suite run 'logistic regression' \(loso\).*returned \(2, 3\)"):
        plan_suite(load_suite(tiny), tiny, tmp_path, [*five, f"model.module={net(3)}:Net"])
