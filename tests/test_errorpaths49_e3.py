"""Input checks and fallbacks of the nested selection (icegan.selection) and the suites (icegan.suite) that no other
test reached: the public entry a caller uses (select_nested, inner_predictions, load_suite, write_results), the
message naming what is wrong and what to do, or what a fallback writes."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from _feature_tables import write_feature_table

from icegan.commands.loso import LosoConfig, load_feature_set, run
from icegan.config import ConfigError, load_config
from icegan.data.toy_features import make_toy_features
from icegan.selection import Candidate, SelectionError, inner_predictions, select_nested

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _cfg(*over):
    return load_config(LosoConfig, None, ["workers=1", "threads=1", "model.name=logreg", *over])


@pytest.fixture(scope="module")
def lopsided(tmp_path_factory):
    """Two logistic-regression LOSO runs (CDE) and one HDE run of a feature table with one CASME II subject and
    three SAMM subjects: an outer fold holding out the CASME II subject has no training clip of its dataset."""
    root = tmp_path_factory.mktemp("lopsided")
    fs = make_toy_features(n_subjects_per_dataset=3, clips_per_class=1)
    casme2 = sorted(s for s in set(fs.samples["subject"]) if s.startswith("casme2/"))
    fs = fs.replace(keep=~fs.samples["subject"].isin(casme2[1:]).to_numpy())
    table = write_feature_table(root, fs)
    data = ["data.source=table", f"data.table={table}"]
    runs = {}
    for label, over in (("a", []), ("b", ["model.logreg_C=0.1"]), ("hde", ["protocol=HDE"])):
        cfg = _cfg(*data, *over, f"name={label}")
        run(cfg, root / label, progress=False)
        runs[label] = Candidate(label, root / label, config=cfg)
    return runs


def test_selection_names_a_bad_criterion_scope_or_candidate(tmp_path):
    cands = [Candidate("a", tmp_path / "a", config=object()), Candidate("b", tmp_path / "b", config=object())]
    with pytest.raises(SelectionError, match=r"^criterion must be UF1 or UAR, got 'F1'$"):
        select_nested(cands, {}, tmp_path / "sel", criterion="F1")
    with pytest.raises(SelectionError, match=r"^scope must be 'all' or 'dataset', got 'subject'$"):
        select_nested(cands, {}, tmp_path / "sel", scope="subject")
    with pytest.raises(SelectionError, match=r"^candidate 'empty' is neither a recipe \(config\) nor an ensemble "
                                             r"\(members\)$"):
        select_nested([Candidate("empty", tmp_path / "e"), *cands], {}, tmp_path / "sel")
    assert not (tmp_path / "sel").exists()


def test_candidates_of_two_protocols_are_named(lopsided, tmp_path):
    with pytest.raises(SelectionError, match=r"^candidate 'hde' is a HDE run, 'a' a CDE run; the candidates of one "
                                             r"selection are scored on the same outer folds: give them one protocol "
                                             r"\(protocol: CDE in the config of each, and run them again\), or make a "
                                             r"selection of its own for each protocol$"):
        select_nested([lopsided["a"], lopsided["hde"]], {}, tmp_path / "sel", k=2, progress=False)


def test_an_ensemble_member_without_its_config_is_named(lopsided, tmp_path):
    from icegan.ensemble import ensemble_runs
    a, b = lopsided["a"], lopsided["b"]
    ensemble_runs([a.run_dir, b.run_dir], tmp_path / "mix")
    mix = Candidate("mix", tmp_path / "mix", members=[a, Candidate("b as run", b.run_dir)])
    with pytest.raises(SelectionError, match=r"^ensemble 'mix': member 'b as run' is not a recipe \(it has no "
                                             r"config: an ensemble, or a run given without one\); give each member "
                                             r"the icegan loso config its run was made with \(Candidate\(label, "
                                             r"run_dir, config=\.\.\.\)\), and for an ensemble of ensembles list "
                                             r"the recipes of the inner ones$"):
        select_nested([a, mix], {}, tmp_path / "sel", k=2, progress=False)


def test_a_recipe_whose_data_section_does_not_give_its_run_s_subjects_is_named(lopsided, tmp_path):
    a = lopsided["a"]
    other = Candidate("a", a.run_dir, config=_cfg("data.source=toy", "data.toy_subjects=1"))
    with pytest.raises(SelectionError, match=rf"^recipe 'a': its config's folds do not cover the subjects of its "
                                             rf"run {re.escape(str(a.run_dir))}; was the run made with another data "
                                             r"section\?$"):
        select_nested([other, lopsided["b"]], {}, tmp_path / "sel", k=2, progress=False)


def test_scope_dataset_without_training_clips_of_the_held_out_dataset_says_to_use_all(lopsided, tmp_path):
    cands = [lopsided["a"], lopsided["b"]]
    with pytest.raises(SelectionError, match=r"^outer fold 'casme2/s01': no inner clips of dataset 'casme2' among "
                                             r"its training subjects; use scope: all$"):
        select_nested(cands, {}, tmp_path / "sel", k=2, scope="dataset", progress=False)
    m = select_nested(cands, {}, tmp_path / "all", k=2, scope="all", progress=False)
    assert m["n_folds"] == 4


def test_an_ensemble_of_members_read_from_tables_in_other_row_orders_is_refused(lopsided, tmp_path):
    """Two recipes read the same clips from feature tables whose rows are in other orders: their inner predictions
    are of other rows, so averaging them row by row (the ensemble's inner probabilities) would mix clips."""
    from icegan.ensemble import ensemble_runs
    a = lopsided["a"]
    table = Path(a.config.data.table)
    shuffled = table.parent / "clips_reversed.csv"      # beside it: its map paths are relative to it
    lines = table.read_text().splitlines()
    shuffled.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    cfg = _cfg("data.source=table", f"data.table={shuffled}", "name=b")
    run(cfg, tmp_path / "b", progress=False)
    ensemble_runs([a.run_dir, tmp_path / "b"], tmp_path / "mix")
    mix = Candidate("mix", tmp_path / "mix", members=[a, Candidate("b", tmp_path / "b", config=cfg)])
    with pytest.raises(SelectionError, match=r"^ensemble 'mix': member 'b' has other inner folds than 'a' \(their "
                                             r"data sections give the clips in other rows: another table or row "
                                             r"order\), .*; give the members of an ensemble one data section$"):
        select_nested([a, mix], {}, tmp_path / "sel", k=2, progress=False)


def test_inner_scores_that_are_not_probabilities_are_refused(tmp_path, monkeypatch):
    import icegan.commands.loso as loso
    from icegan.protocol import make_folds
    cfg = _cfg("data.source=toy", "data.toy_subjects=2", "name=floor")
    fs = load_feature_set(cfg.data)

    def logits(folds):
        return [np.tile([2.0, -1.0, 0.5], (len(f.test_idx), 1)) for f in folds]
    monkeypatch.setattr(loso, "fold_runner", lambda *a, **kw: (logits, 1, None))
    folds = make_folds(fs.samples["subject"].tolist())
    with pytest.raises(SelectionError, match=r"^recipe 'floor': inner fold scores are not class probabilities of "
                                             r"shape \(\d+, 3\); only probability recognizers can be selected among$"):
        inner_predictions(cfg, fs, folds, 2, tmp_path / "c.csv", progress=False)


# --------------------------------------------------------------------------------------------- suite

SUITE = f"""\
name: tiny
seeds: [0]
runs:
  - {{label: floor, config: {CONFIGS}/features_logreg.yaml, seeded: false,
      overrides: [data.source=toy, data.toy_subjects=2, workers=1, threads=1]}}
  - {{label: forest, config: {CONFIGS}/features_randomforest.yaml,
      overrides: [data.source=toy, data.toy_subjects=2, model.forest_trees=3, workers=1, threads=1]}}
"""


@pytest.mark.parametrize("edit,msg", [
    (lambda s: s.split("runs:")[0] + "runs: []\n", "a suite needs at least one entry in 'runs'"),
    (lambda s: s.replace("label: forest,", "label: '  ',"), "runs[1] needs a label and a config"),
    (lambda s: s.replace(f"config: {CONFIGS}/features_logreg.yaml", "config: ''"),
     "runs[0] needs a label and a config"),
    (lambda s: s + "selection: {inner_folds: 2, label: ' '}\n", "selection.label must not be empty"),
])
def test_suite_file_errors_name_the_entry(tmp_path, edit, msg):
    from icegan.suite import load_suite
    path = tmp_path / "suite.yaml"
    path.write_text(edit(SUITE))
    (tmp_path / "ok.yaml").write_text(SUITE)
    assert [r.label for r in load_suite(tmp_path / "ok.yaml").runs] == ["floor", "forest"]
    with pytest.raises(ConfigError, match=re.escape(msg)) as err:
        load_suite(path)
    assert str(path) in str(err.value)


def test_suite_results_fallbacks(tmp_path):
    """Nothing finished: no page. The suite file gone (moved while the suite ran): the page is written with the suite's
    own seeds. A finished run whose metrics.json is damaged: one error naming that file."""
    from icegan.suite import load_suite, plan_suite, run_suite, write_results
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    suite = load_suite(path)
    plan = plan_suite(suite, path, tmp_path / "out")
    assert write_results(suite, plan, tmp_path / "out", set(), path) is None
    assert not (tmp_path / "out").exists()
    run_suite(path, tmp_path / "out", progress=False)
    first = (tmp_path / "out" / "results.md").read_text()
    path.unlink()
    page = write_results(suite, plan, tmp_path / "out", {p.out for p in plan}, path)
    text = page.read_text()
    assert "seeds 0; the suite's: 0; " in text and "given by --seeds" not in text
    assert _after_header(text) == _after_header(first)
    (plan[0].out / "metrics.json").write_text('{"overall": ')
    with pytest.raises(ValueError, match=rf"{re.escape(str(plan[0].out / 'metrics.json'))}"):
        write_results(suite, plan, tmp_path / "out", {p.out for p in plan}, path)


def _after_header(page: str) -> str:
    """A results page without its time-stamped header line."""
    return page.split("## Results", 1)[1]
