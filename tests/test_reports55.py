"""Tables, ensembles, nested selections and suites of the 55th audit: a max_folds run extended and killed is not
shown with its stale metrics, a nested selection of max_folds runs is tagged PARTIAL, seeds that differ only in an
explicit data.root are one recipe, LaTeX headers and '[' labels, an ensemble folder of other members is not replaced,
ensemble.json member paths, and two suite entries planned into one folder."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from icegan.config import ConfigError
from icegan.data.toy_features import make_toy_features
from icegan.ensemble import ensemble_runs
from icegan.protocol import LosoStateError, read_partial_tag, run_loso
from icegan.report import TableEntry, check_one_recipe, results_table, run_recipe

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _metrics(n_folds=68, datasets=("smic", "casme2", "samm")):
    per = {d: {"UF1": 0.6, "UAR": 0.6} for d in datasets}
    return {"protocol": "CDE", "n_folds": n_folds, "n_samples": 442, "oracle_epoch": False,
            "overall": {"UF1": 0.7, "UAR": 0.7}, "per_dataset": per}


def _config(seed=0, **data):
    return {"name": f"rf_s{seed}", "protocol": "CDE", "seed": seed, "device": "cpu", "max_folds": 0,
            "data": {"source": "megc2019_htnet", "root": None, "table": None, "datasets": [], **data},
            "model": {"name": "random_forest", "forest_trees": 30}}


def _run(root, name, config=None, run_json=None, **kw):
    d = root / name
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(_metrics(**kw)))
    if config is not None:
        (d / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if run_json is not None:
        (d / "run.json").write_text(json.dumps(run_json))
    return d


# 1. -------------------------------------------------------------------------------------------------------------

def test_a_run_whose_run_json_lists_more_folds_than_its_metrics_is_refused_as_unfinished(tmp_path):
    """A max_folds=4 run extended to all 8 folds and killed: run.json lists the 8 folds (folds_total gone), while
    metrics.json is still the 4-fold smoke run's. icegan table showed it as a whole run, untagged; now it is refused
    as unfinished (as icegan compare does), naming the folder and saying to rerun the command."""
    folds = [f"s{i}" for i in range(8)]
    header = {"protocol": "CDE", "dataset": None, "oracle_epoch": False, "folds": folds}
    stale = _run(tmp_path, "ext", run_json=header, n_folds=4)
    with pytest.raises(ValueError, match=rf"{re.escape(str(stale))}: unfinished run: its run.json lists 8 folds, its "
                                         r"metrics.json holds 4 .*run the command that wrote this folder again"):
        results_table([TableEntry("ext", [stale])])
    # the finished smoke run (4 folds of 8, folds_total recorded) is shown, tagged
    smoke = _run(tmp_path, "smoke", run_json={**header, "folds": folds[:4], "folds_total": 8}, n_folds=4)
    assert "| smoke [PARTIAL: 4 of 8 folds] | honest |" in results_table([TableEntry("smoke", [smoke])])
    whole = _run(tmp_path, "whole", run_json=header, n_folds=8)
    assert "| whole | honest | CDE | 1 |" in results_table([TableEntry("whole", [whole])])


# 2. -------------------------------------------------------------------------------------------------------------

def test_a_nested_selection_of_max_folds_runs_records_folds_total(tmp_path):
    """selection.json had no folds_total: a selection over 4-of-8-fold smoke runs carried no PARTIAL tag (its
    candidates' rows did). Now it records folds_total as ensemble.json does, and metrics.md's title says so."""
    from icegan.commands.loso import LosoConfig, load_feature_set, run
    from icegan.config import load_config
    from icegan.selection import Candidate, select_nested
    cands = []
    for label, c in (("lr", "1.0"), ("lr2", "0.1")):
        cfg = load_config(LosoConfig, None, ["data.source=toy", "workers=1", "threads=1", "model.name=logreg",
                                             f"model.logreg_C={c}", f"name={label}", "max_folds=4"])
        run(cfg, tmp_path / label, progress=False, feature_set=load_feature_set(cfg.data))
        cands.append(Candidate(label, tmp_path / label, config=cfg))
    assert read_partial_tag(tmp_path / "lr") == " [PARTIAL: 4 of 8 folds]"
    select_nested(cands, {}, tmp_path / "sel", k=2, progress=False)
    h = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert len(h["folds"]) == 4 and h["folds_total"] == 8
    assert read_partial_tag(tmp_path / "sel") == " [PARTIAL: 4 of 8 folds]"
    assert "[PARTIAL: 4 of 8 folds]" in (tmp_path / "sel" / "metrics.md").read_text().splitlines()[0]
    assert "sel [PARTIAL: 4 of 8 folds]" in results_table([TableEntry("sel", [tmp_path / "sel"])])


# 3. -------------------------------------------------------------------------------------------------------------

def _provenance(digest):
    h = {"protocol": "CDE", "dataset": None, "oracle_epoch": False, "folds": [f"s{i}" for i in range(68)]}
    return h if digest is None else {**h, "provenance": {"data": digest}}


@pytest.mark.parametrize("key", ["root", "table"])
def test_seeds_on_the_same_data_with_an_explicit_data_root_are_one_recipe(tmp_path, key):
    """Two seeds whose run.json records the same data digest, one given data.root (or data.table) explicitly, were
    refused as different recipes; they are now one recipe. Other digests, or no digest, still refuse."""
    a = _run(tmp_path, "rf_s1", _config(1), _provenance("f9ba4db064386556"))
    b = _run(tmp_path, "rf_s3", _config(3, **{key: "/data/megc2019_htnet"}), _provenance("f9ba4db064386556"))
    check_one_recipe("RF", [a, b])
    assert "| RF | honest | CDE | 2 |" in results_table([TableEntry("RF", [a, b])])
    c = _run(tmp_path, "rf_s4", _config(4, **{key: "/data/other"}), _provenance("0123456789abcdef"))
    with pytest.raises(ValueError, match="different recipes"):
        check_one_recipe("RF", [a, c])
    d = _run(tmp_path, "rf_s5", _config(5, **{key: "/data/megc2019_htnet"}), _provenance(None))
    with pytest.raises(ValueError, match=rf"different recipes.*data\.{key}"):
        check_one_recipe("RF", [a, d])
    # the same data digest does not hide another model setting
    e = _run(tmp_path, "rf_s6", {**_config(6, **{key: "/x"}), "model": {"name": "random_forest", "forest_trees": 5}},
             _provenance("f9ba4db064386556"))
    with pytest.raises(ValueError, match=r"model\.forest_trees"):
        check_one_recipe("RF", [a, e])


# 4. -------------------------------------------------------------------------------------------------------------

def test_latex_headers_are_escaped_and_a_label_starting_with_a_bracket_is_guarded(tmp_path):
    """--format latex wrote a dataset name's '_' unescaped in its column header (LaTeX: "Missing $ inserted"), and
    a row label starting with '[' after '\\\\' (or \\midrule) was read as their optional [length]."""
    a = _run(tmp_path, "a", n_folds=4, datasets=("casme2", "my_samm"))
    b = _run(tmp_path, "b", n_folds=4, datasets=("casme2", "my_samm"))
    tex = results_table([TableEntry("lr", [a]), TableEntry("[ours] RF", [b]), TableEntry("[x]", [b])], "latex")
    assert r"\multicolumn{2}{c}{my\_samm}" in tex and "my_samm" not in tex
    lines = tex.splitlines()
    assert not [x for x in lines if x.lstrip().startswith("[")]
    assert any(x.startswith(r"{}[ours] RF & honest") for x in lines) and any(x.startswith("{}[x] &") for x in lines)
    first = _run(tmp_path, "c", n_folds=4)          # the first row follows \midrule, which takes [width] too
    tex = results_table([TableEntry("[c]", [first])], "latex").splitlines()
    assert tex[tex.index(r"\midrule") + 1].startswith("{}[c] &")


# 5, 6. ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished toy runs a_s0, a_s1, b_s0, b_s1, c_s0 (random probabilities), each with a config.yaml of its recipe
    (a, b, c) and seed."""
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    root = tmp_path_factory.mktemp("ens55")
    for k, (name, seed) in enumerate([("a", 0), ("a", 1), ("b", 0), ("b", 1), ("c", 0)]):
        def fold_fn(fold, k=k):
            p = np.random.default_rng(k * 100 + fold.index).random((len(fold.test_idx), 3))
            return p / p.sum(1, keepdims=True)
        d = root / "runs" / f"{name}_s{seed}"
        run_loso(toy.samples, fold_fn, d, progress=False)
        (d / "config.yaml").write_text(yaml.safe_dump({"name": d.name, "seed": seed, "model": {"name": name}}))
    return root


def test_an_ensemble_folder_of_other_members_or_weights_is_not_replaced(runs, tmp_path):
    r = runs / "runs"
    out = tmp_path / "ow"
    ensemble_runs([r / "a_s0", r / "b_s0"], out)
    before = (out / "ensemble.json").read_text()
    with pytest.raises(LosoStateError, match=rf"{re.escape(str(out))} holds the ensemble of .*a_s0.*b_s0.*not "
                                             r"of .*a_s1.*b_s1.*its own --out"):
        ensemble_runs([r / "a_s1", r / "b_s1"], out, weights=[1, 3])
    with pytest.raises(LosoStateError, match="weights"):
        ensemble_runs([r / "a_s0", r / "b_s0"], out, weights=[1, 3])
    with pytest.raises(LosoStateError, match="holds the ensemble of"):
        ensemble_runs([r / "a_s0", r / "b_s0", r / "c_s0"], out)
    assert (out / "ensemble.json").read_text() == before
    m = ensemble_runs([r / "a_s0", r / "b_s0"], out)             # the same ensemble again (a suite's rerun)
    assert ensemble_runs([r / "b_s0", r / "a_s0"], out) == m     # its members in another order: the same average
    assert json.loads((out / "ensemble.json").read_text())["members"][0]["run"] == str(r / "b_s0")


def test_ensemble_json_records_absolute_member_paths(runs, tmp_path, monkeypatch):
    """Members given relative to the cwd were recorded as typed: from another cwd icegan table refused the
    ensemble ('its member runs/a_s0 is not found'). Now the resolved path is recorded."""
    monkeypatch.chdir(runs)
    for s in (0, 1):
        ensemble_runs([f"runs/a_s{s}", f"runs/b_s{s}"], tmp_path / "ens" / f"e_s{s}", weights=[3, 1])
    h = json.loads((tmp_path / "ens" / "e_s0" / "ensemble.json").read_text())
    assert [m["run"] for m in h["members"]] == [str(runs / "runs" / "a_s0"), str(runs / "runs" / "b_s0")]
    monkeypatch.chdir(tmp_path.parent)
    es = [tmp_path / "ens" / f"e_s{s}" for s in (0, 1)]
    assert run_recipe(es[0]) is not None
    assert "| E | honest | CDE | 2 |" in results_table([TableEntry("E", es)])


def test_an_old_ensemble_json_of_relative_members_is_read_from_another_cwd(runs, tmp_path, monkeypatch):
    """ensemble.json files written before record members relative to the cwd of icegan ensemble; read from another
    cwd, a member is also looked for relative to the folders above the ensemble's."""
    e = runs / "ens_old"
    e.mkdir(exist_ok=True)
    (e / "ensemble.json").write_text(json.dumps({"members": [{"run": "runs/a_s0", "weight": 0.5},
                                                             {"run": "runs/b_s0", "weight": 0.5}]}))
    monkeypatch.chdir(tmp_path)
    rec = run_recipe(e)
    assert rec is not None and [m["model"]["name"] for m in rec["members"]] == ["a", "b"]


def test_an_ensemble_of_the_same_members_in_another_order_is_the_same_recipe(runs, tmp_path):
    r = runs / "runs"
    e0 = tmp_path / "e0"
    e1 = tmp_path / "e1"
    ensemble_runs([r / "a_s0", r / "b_s0"], e0, weights=[1, 3])
    ensemble_runs([r / "b_s1", r / "a_s1"], e1, weights=[3, 1])
    check_one_recipe("E", [e0, e1])
    e2 = tmp_path / "e2"                        # the weights not paired with the same members: another recipe
    ensemble_runs([r / "b_s1", r / "a_s1"], e2, weights=[1, 3])
    with pytest.raises(ValueError, match="different recipes"):
        check_one_recipe("E", [e0, e2])


# 7. -------------------------------------------------------------------------------------------------------------

def test_two_suite_entries_planned_into_one_folder_are_refused_before_training(tmp_path):
    """An unseeded run 'lr s0' and a seeded run 'lr' both map to lr_s0 (the slug check compares labels only): the
    clash showed after the first one trained. plan_suite now refuses it, naming both."""
    from icegan.suite import load_suite, plan_suite
    path = tmp_path / "suite.yaml"
    path.write_text(f"""\
name: coll
seeds: [0]
runs:
  - {{label: lr, config: {CONFIGS}/features_logreg.yaml, overrides: [data.source=toy]}}
  - {{label: lr s0, config: {CONFIGS}/features_logreg.yaml, seeded: false,
      overrides: [data.source=toy, model.logreg_C=0.1]}}
""")
    with pytest.raises(ConfigError, match=r"'lr' \(seed 0\) and 'lr s0' .*same folder .*lr_s0"):
        plan_suite(load_suite(path), path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # seeds [1]: lr_s1 and lr_s0 differ, nothing to refuse
    assert [p.out.name for p in plan_suite(load_suite(path, [1]), path, tmp_path / "out")] == ["lr_s1", "lr_s0"]


@pytest.mark.parametrize("label", ["Inner", "flow features"])
def test_an_unseeded_entry_planned_into_a_suite_own_folder_is_refused(tmp_path, label):
    """An unseeded entry labelled 'inner' or 'flow features' would be written into the folder the suite fills with
    inner-fold predictions or shared flow maps: refused at planning, naming the entry."""
    from icegan.suite import load_suite, plan_suite
    path = tmp_path / "suite.yaml"
    path.write_text(f"""\
name: own
seeds: [0]
runs:
  - {{label: '{label}', config: {CONFIGS}/features_logreg.yaml, seeded: false, overrides: [data.source=toy]}}
""")
    with pytest.raises(ConfigError, match=rf"suite entry '{label}' would be written into .*suite's own folder"):
        plan_suite(load_suite(path), path, tmp_path / "out")
    path.write_text(path.read_text().replace(f"'{label}'", "'inner lr'"))
    assert [p.out.name for p in plan_suite(load_suite(path), path, tmp_path / "out")] == ["inner_lr"]
