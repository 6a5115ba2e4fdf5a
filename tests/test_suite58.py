"""``icegan suite``: the page's command for a nested-selection folder, the inner-fold cache across ``workers``, an
ensemble over the seeds when seeds are added, and max_folds runs tagged in the "Every run" table."""
import io
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from icegan.cli import main
from icegan.suite import load_suite, plan_suite, run_suite

from _feature_tables import write_feature_table

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DATA = "data.source=table, data.table={table}, data.normalize=minmax, data.size=0, workers=1, threads=1"
SUITE = """\
name: tiny58
seeds: [{seeds}]
baseline: lr
resamples: 199
runs:
  - {{label: lr, config: {configs}/features_logreg.yaml, seeded: false,
      overrides: [{data}, model.logreg_max_iter=200]}}
  - {{label: rf, config: {configs}/features_randomforest.yaml, overrides: [{data}, model.forest_trees=5]}}
ensembles:
  - {{label: lr + rf, members: [lr, rf], weights: [2, 1]}}
  - {{label: all seeds, members: [lr, rf], weights: [2, 1], over_seeds: true}}
selection: {{inner_folds: 2}}
"""


def _suite(folder: Path, table: Path, seeds: str = "0, 1") -> Path:
    path = folder / "suite.yaml"
    path.write_text(SUITE.format(seeds=seeds, configs=CONFIGS, data=DATA.format(table=table)))
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A feature table of 8 toy subjects (4 of casme2, 4 of samm), 12 x 12 maps."""
    from icegan.data.toy_features import make_toy_features
    return write_feature_table(tmp_path_factory.mktemp("table"), make_toy_features(4, noise=4.0, size=12))


@pytest.fixture(scope="module")
def finished(tmp_path_factory, table):
    """A finished 2-seed suite (an unseeded lr, rf, a per-seed and an over-seeds ensemble, a nested selection)."""
    folder = tmp_path_factory.mktemp("finished")
    run_suite(_suite(folder, table), folder / "out", progress=False, log=io.StringIO())
    return folder / "out"


@pytest.fixture
def suite_copy(tmp_path, table, finished):
    """(suite file, a copy of the finished suite's folder) in tmp_path."""
    shutil.copytree(finished, tmp_path / "out")
    return _suite(tmp_path, table), tmp_path / "out"


def test_page_names_the_whole_suite_command_for_a_nested_selection(suite_copy):
    """results.md listed `icegan suite ... --seeds <seed>` as what made a nested-selection folder: running it
    replaced the 2-seed page by a 1-seed page and stopped on the ensemble over the seeds. It now lists the suite
    command as a whole (no --seeds where the file's seeds ran), and running it keeps the finished page."""
    path, out = suite_copy
    run_suite(path, out, progress=False, log=io.StringIO())          # the page of the copy, naming its paths
    page = (out / "results.md").read_text()
    lines = [x for x in page.splitlines() if "# nested selection: " in x]
    assert len(lines) == 2
    whole = shlex.join(["icegan", "suite", "--config", str(path), "--out", str(out)])
    for seed, line in zip((0, 1), lines):
        command, note = line.split("   # ", 1)
        assert command == whole
        assert note.startswith(f"nested selection: seed {seed}, made by the suite command as a whole")
        assert "2 inner folds, UF1, scope all, among 3 candidates" in note
    assert main(shlex.split(whole)[1:] + ["--no-progress"]) == 0
    again = (out / "results.md").read_text()
    assert "2 of its 2 seed(s) finished (seeds 0, 1; the suite's: 0, 1;" in again
    assert re.search(r"\| all seeds \| [^|]+ \| [^|]+ \|", again)


def test_page_command_names_the_seeds_given_and_the_unseeded_run_takes_the_first_of_them(tmp_path, table):
    """With --seeds other than the file's, the selection's command repeats them; an unseeded recipe is run once
    with the first of the seeds the suite runs (the first --seeds value, not the file's first seed)."""
    path = _suite(tmp_path, table)
    plan = plan_suite(load_suite(path, [1, 0]), path, tmp_path / "out")
    sel = [p for p in plan if p.selection]
    assert [p.seed for p in sel] == [1, 0]
    assert all(p.command.startswith(shlex.join(["icegan", "suite", "--config", str(path), "--out",
                                                str(tmp_path / "out"), "--seeds", "1,0"]) + "   # ") for p in sel)
    lr = [p for p in plan if p.label == "lr"]
    assert len(lr) == 1 and lr[0].config.seed == 1 and lr[0].out.name == "lr"
    plain = plan_suite(load_suite(path), path, tmp_path / "out")
    assert "--seeds" not in next(p for p in plain if p.selection).command


def test_another_workers_count_trains_no_inner_fold_again(suite_copy):
    """workers only says how many processes train the folds (protocol: free to change on resume); it changed the
    inner-fold cache's name, so every inner fold was trained again to the same numbers."""
    path, out = suite_copy
    before = sorted(p.name for p in (out / "inner").iterdir())
    log = io.StringIO()
    run_suite(path, out, ["workers=2"], progress=False, log=log)
    assert "inner folds of" not in log.getvalue()
    assert sorted(p.name for p in (out / "inner").iterdir()) == before


def test_inner_cache_digest_is_blind_to_workers_and_reads_a_cache_named_before(suite_copy, table):
    """The digest leaves workers at its default; a cache named with the digest of before (the recipe's own
    workers, here 0) is read back under the new name, nothing trained again."""
    from dataclasses import replace

    from icegan.commands.loso import load_feature_set
    from icegan.selection import inner_cache_digest
    path, out = suite_copy
    plan = plan_suite(load_suite(path), path, out)
    rf = next(p for p in plan if p.label == "rf" and p.seed == 0).config
    fs = load_feature_set(rf.data)
    digest = inner_cache_digest(rf, fs)
    assert {inner_cache_digest(replace(rf, workers=w), fs) for w in (0, 1, 2, 7)} == {digest}
    old = inner_cache_digest(replace(rf, workers=0), fs, legacy=True)
    assert old != digest                                   # workers=0 hashed as written: the name of before
    assert inner_cache_digest(rf, fs, legacy=True) == digest      # workers=1, the default: the same name
    cache = out / "inner" / f"rf_s0_k2_{digest}.csv"
    content = cache.read_bytes()
    cache.rename(cache.with_name(f"rf_s0_k2_{old}.csv"))
    log = io.StringIO()
    run_suite(path, out, ["workers=0"], progress=False, log=log)
    assert "inner folds of" not in log.getvalue()
    assert cache.read_bytes() == content and not cache.with_name(f"rf_s0_k2_{old}.csv").exists()


def test_adding_a_seed_rebuilds_the_ensemble_over_the_seeds(suite_copy, table):
    """seeds [0, 1] -> [0, 1, 2]: the 'all seeds' folder held the ensemble of the first two seeds' runs, and the
    suite stopped on it after seed 2 had trained; its members being a subset of today's, it is made again."""
    _, out = suite_copy
    path = _suite(out.parent, table, seeds="0, 1, 2")
    log = io.StringIO()
    run_suite(path, out, progress=False, log=log)
    header = json.loads((out / "all_seeds" / "ensemble.json").read_text())
    assert [Path(m["run"]).name for m in header["members"]] == ["lr", "rf_s0", "rf_s1", "rf_s2"]
    # lr weighs 2, rf 1 shared by its three seeds' runs
    assert [m["weight"] for m in header["members"]] == pytest.approx([2 / 3, 1 / 9, 1 / 9, 1 / 9])
    assert "all seeds" in log.getvalue() and "made again" in log.getvalue()
    assert "3 of its 3 seed(s) finished" in (out / "results.md").read_text()


def test_max_folds_runs_are_tagged_in_the_every_run_table(tmp_path, table):
    """The results table tagged max_folds runs [PARTIAL: k of n folds]; the "Every run" table did not."""
    path = _suite(tmp_path, table)
    run_suite(path, tmp_path / "out", ["max_folds=3"], seeds=[0], progress=False, log=io.StringIO())
    page = (tmp_path / "out" / "results.md").read_text()
    every = page.split("## Every run")[1].split("\n## ")[0]
    rows = [x for x in every.splitlines() if x.startswith("| ") and not x.startswith("| entry")]
    assert [r.split(" | ")[0] for r in rows] == ["| lr", "| rf", "| lr + rf", "| all seeds", "| nested selection"]
    assert all(re.search(r"\d / \d\.\d{4}.* \[PARTIAL: 3 of 8 folds\]", r) for r in rows), rows


def test_an_ensemble_of_other_runs_is_refused_even_where_fewer_may_be_rebuilt(suite_copy):
    """ensemble_runs' on_fewer lets only an ensemble of a strict subset of the members through (the suite's seeds
    added): the 'all seeds' folder (lr, rf_s0, rf_s1) is refused for fewer members or for one it did not hold."""
    from icegan.ensemble import ensemble_runs
    from icegan.protocol import LosoStateError
    _, out = suite_copy
    for copy in ("rf_x", "rf_y"):       # other runs (their own folders) of the same clips
        shutil.copytree(out / "rf_s1", out / copy)
    called = []
    for runs in (["lr", "rf_s0"], ["lr", "rf_s0", "rf_x"], ["lr", "rf_s0", "rf_x", "rf_y"]):
        with pytest.raises(LosoStateError, match="holds the ensemble of .*other members"):
            ensemble_runs([out / r for r in runs], out / "all_seeds", on_fewer=lambda: called.append(1))
    assert called == []
    ensemble_runs([out / r for r in ("lr", "rf_s0", "rf_s1", "rf_x")], out / "all_seeds",
                  on_fewer=lambda: called.append(1))
    assert called == [1] and len(json.loads((out / "all_seeds" / "ensemble.json").read_text())["members"]) == 4


def test_both_inner_cache_names_at_once_are_the_two_named_apart(suite_copy):
    """inner_cache_digests (one hash of the maps) gives inner_cache_digest's new and legacy names."""
    from dataclasses import replace

    from icegan.commands.loso import load_feature_set
    from icegan.selection import inner_cache_digest, inner_cache_digests
    path, out = suite_copy
    rf = next(p for p in plan_suite(load_suite(path), path, out) if p.label == "rf").config
    fs = load_feature_set(rf.data)
    for cfg in (rf, replace(rf, workers=0)):
        assert inner_cache_digests(cfg, fs) == (inner_cache_digest(cfg, fs), inner_cache_digest(cfg, fs, legacy=True))
