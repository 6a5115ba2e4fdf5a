"""Nested selection (icegan.selection): inner folds never see the held-out subject, the choice is the best inner
score, ensembles average their members' inner probabilities, inner predictions resume, and the suite's row."""
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from icegan.commands.loso import LosoConfig, load_feature_set, run
from icegan.config import ConfigError, load_config
from icegan.data.features import FeatureSet
from icegan.ensemble import ensemble_runs
from icegan.metrics import compute_metrics
from icegan.protocol import LosoStateError, make_folds
from icegan.selection import Candidate, SelectionError, inner_folds, inner_predictions, select_nested
from icegan.suite import load_suite, plan_suite, run_suite

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SCORES = ["score_negative", "score_positive", "score_surprise"]


def _cfg(*over):
    return load_config(LosoConfig, None, ["data.source=toy", "workers=1", "threads=1", *over])


@pytest.fixture(scope="module")
def toy():
    cfg = _cfg("model.name=logreg")
    return load_feature_set(cfg.data)


def _cache(folder: Path, run: str, k: int) -> Path:
    """The one inner-prediction CSV of a run folder name and k (its name ends in the settings digest)."""
    found = sorted(folder.glob(f"{run}_k{k}_*.csv"))
    assert len(found) == 1 and re.fullmatch(rf"{re.escape(run)}_k{k}_[0-9a-f]{{8}}\.csv", found[0].name), found
    return found[0]


def _candidates(root: Path, fs, recipes: dict) -> list:
    out = []
    for label, over in recipes.items():
        cfg = _cfg(*over, f"name={label}")
        run(cfg, root / label, progress=False, feature_set=fs)
        out.append(Candidate(label, root / label, config=cfg))
    return out


def test_inner_folds_partition_the_training_subjects(toy):
    subjects = toy.samples["subject"].to_numpy()
    folds = make_folds(subjects.tolist())
    for f in folds:
        inner = inner_folds(f, subjects, 3, index_base=100 + 3 * f.index)
        assert [g.index for g in inner] == [100 + 3 * f.index + j for j in range(3)]
        tested = np.concatenate([g.test_idx for g in inner])
        assert sorted(tested) == sorted(f.train_idx)                    # every training clip scored once
        for g in inner:
            assert g.subject == f.subject
            assert not set(subjects[g.train_idx]) & set(subjects[g.test_idx])   # split by subject
            assert f.subject not in set(subjects[g.train_idx]) | set(subjects[g.test_idx])
            assert sorted(np.concatenate([g.train_idx, g.test_idx])) == sorted(f.train_idx)
    with pytest.raises(SelectionError, match="inner_folds must be >= 2"):
        inner_folds(folds[0], subjects, 1)
    with pytest.raises(SelectionError, match="7 training subjects cannot be split into 8"):
        inner_folds(folds[0], subjects, 8)


EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "custom_recognizer.py"


@pytest.mark.parametrize("model", [["model.name=logreg"], ["model.name=ststnet", "model.epochs=2"],
                                   ["model.name=custom", f"model.module={EXAMPLE}:TwoLayerCNN", "model.epochs=2"]],
                         ids=["logreg", "ststnet", "custom"])
def test_held_out_subject_never_reaches_its_inner_predictions(toy, tmp_path, model):
    """Relabelling and rescrambling the held-out subject's clips leaves its outer fold's inner predictions
    bit-identical (the grouped STSTNet engine trains all inner folds of several outer folds in one network)."""
    cfg = _cfg(*model)
    folds = make_folds(toy.samples["subject"].tolist())
    held = folds[2].subject
    rows = (toy.samples["subject"] == held).to_numpy()
    samples = toy.samples.copy()
    samples.loc[rows, "label"] = (samples.loc[rows, "label"] + 1) % 3
    x = toy.features.clone()
    idx = torch.from_numpy(np.flatnonzero(rows))
    x[idx] = torch.rand_like(x[idx])
    changed = FeatureSet(samples, x)
    a = inner_predictions(cfg, toy, folds, 3, tmp_path / "a.csv", progress=False)
    b = inner_predictions(cfg, changed, folds, 3, tmp_path / "b.csv", progress=False)
    pa, pb = a[a["outer"] == held], b[b["outer"] == held]
    assert len(pa) == len(folds[2].train_idx) and not (pa["subject"] == held).any()
    np.testing.assert_array_equal(pa[SCORES].to_numpy(), pb[SCORES].to_numpy())
    # other outer folds do train on the changed subject: their inner predictions differ
    other = a["outer"] != held
    assert not np.array_equal(a.loc[other, SCORES].to_numpy(), b.loc[other, SCORES].to_numpy())


def test_choice_is_the_best_inner_score_and_uses_its_predictions(toy, tmp_path):
    cands = _candidates(tmp_path, toy, {"floor": ["model.name=logreg"],
                                        "weak": ["model.name=ststnet", "model.epochs=1", "model.lr=0.00001"],
                                        "floor again": ["model.name=logreg"]})
    ensemble_runs([tmp_path / "floor", tmp_path / "weak"], tmp_path / "mix", weights=[1, 3])
    cands.append(Candidate("mix", tmp_path / "mix", members=cands[:2], weights=[1, 3]))
    m = select_nested(cands, {}, tmp_path / "sel", k=3, progress=False)
    table = pd.read_csv(tmp_path / "sel" / "selection.csv")
    inner = {c: pd.read_csv(_cache(tmp_path / "sel" / "inner", c, 3), dtype={"outer": str})
             for c in ("floor", "weak", "floor again")}
    # the ensemble's inner probabilities are the 1:3 weighted mean of its members'
    for _, r in table.iterrows():
        scores = {}
        for lab in ("floor", "weak", "floor again"):
            d = inner[lab][inner[lab]["outer"] == r["subject"]].sort_values("row")
            scores[lab] = compute_metrics(d["y_true"], d[SCORES].to_numpy().argmax(1))["UF1"]
            assert r[f"inner_UF1[{lab}]"] == pytest.approx(scores[lab], abs=1e-6)
        f, w = (inner[x][inner[x]["outer"] == r["subject"]].sort_values("row") for x in ("floor", "weak"))
        p = (f[SCORES].to_numpy() + 3 * w[SCORES].to_numpy()) / 4
        assert r["inner_UF1[mix]"] == pytest.approx(compute_metrics(f["y_true"], p.argmax(1))["UF1"], abs=1e-6)
        scores["mix"] = r["inner_UF1[mix]"]
        best = max(scores.values())
        assert r["chosen"] == next(lab for lab in ("floor", "weak", "floor again", "mix") if scores[lab] >= best - 1e-6)
        assert r["chosen"] != "floor again"                      # a tie goes to the earlier candidate
    # the selected predictions are the chosen candidate's, fold by fold
    sel = pd.read_csv(tmp_path / "sel" / "predictions.csv", dtype={"subject": str})
    for _, r in table.iterrows():
        src = pd.read_csv(tmp_path / r["chosen"] / "predictions.csv", dtype={"subject": str})
        a = sel[sel["subject"] == r["subject"]].sort_values("clip")
        b = src[src["subject"] == r["subject"]].sort_values("clip")
        np.testing.assert_array_equal(a["y_pred"].to_numpy(), b["y_pred"].to_numpy())
        np.testing.assert_allclose(a[SCORES].to_numpy(), b[SCORES].to_numpy(), rtol=0, atol=1e-8)
    assert m["overall"]["UF1"] == pytest.approx(compute_metrics(sel["y_true"], sel["y_pred"])["UF1"])
    assert m["oracle_epoch"] is False and m["n_folds"] == 8
    md = (tmp_path / "sel" / "metrics.md").read_text()
    assert "Nested selection (3 inner folds" in md and "not used to choose" in md


def test_scope_dataset_scores_only_the_held_out_subjects_dataset(toy, tmp_path):
    cands = _candidates(tmp_path, toy, {"floor": ["model.name=logreg"],
                                        "weak": ["model.name=ststnet", "model.epochs=1"]})
    select_nested(cands, {}, tmp_path / "sel", k=3, scope="dataset", criterion="UAR", progress=False)
    table = pd.read_csv(tmp_path / "sel" / "selection.csv")
    inner = pd.read_csv(_cache(tmp_path / "sel" / "inner", "weak", 3), dtype={"outer": str})
    for _, r in table.iterrows():
        d = inner[(inner["outer"] == r["subject"]) & (inner["dataset"] == r["dataset"])]
        assert set(d["dataset"]) == {r["subject"].split("/")[0]}
        assert r["inner_UAR[weak]"] == pytest.approx(compute_metrics(d["y_true"], d[SCORES].to_numpy().argmax(1))["UAR"],
                                                     abs=1e-6)


def test_inner_predictions_resume(toy, tmp_path, monkeypatch):
    cfg = _cfg("model.name=ststnet", "model.epochs=2", "model.folds_per_group=6")
    folds = make_folds(toy.samples["subject"].tolist())
    cache = tmp_path / "c.csv"
    full = inner_predictions(cfg, toy, folds, 3, cache, progress=False)
    assert len(full) == sum(len(f.train_idx) for f in folds)
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:len(lines) - 5]) + "\n")          # the last outer fold cut short
    again = inner_predictions(cfg, toy, folds, 3, cache, progress=False)
    key = ["outer", "row"]
    pd.testing.assert_frame_equal(full.sort_values(key).reset_index(drop=True),
                                  again.sort_values(key).reset_index(drop=True), check_dtype=False)
    import icegan.commands.loso as loso
    monkeypatch.setattr(loso, "fold_runner", lambda *a, **k: pytest.fail("a finished cache was recomputed"))
    inner_predictions(cfg, toy, folds, 3, cache, progress=False)


def test_selection_errors(toy, tmp_path):
    cands = _candidates(tmp_path, toy, {"floor": ["model.name=logreg"], "weak": ["model.name=ststnet",
                                                                                  "model.epochs=1"]})
    with pytest.raises(SelectionError, match="at least two"):
        select_nested(cands[:1], {}, tmp_path / "s1", k=3)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "run.json").write_text("{}")
    with pytest.raises(LosoStateError, match=r"holds a LOSO run of icegan loso or train.py \(run.json\), not a "
                                             r"nested selection"):
        select_nested(cands, {}, tmp_path / "busy", k=3)
    cfg = _cfg("model.name=logreg", "data.datasets=[casme2]", "name=casme2 only")
    run(cfg, tmp_path / "casme2", progress=False)
    with pytest.raises(SelectionError, match="differ in clips"):
        select_nested([cands[0], Candidate("casme2 only", tmp_path / "casme2", config=cfg)], {}, tmp_path / "s2", k=3)
    oracle = _cfg("model.name=ststnet", "model.epochs=1", "oracle_epoch=true")
    with pytest.raises(SelectionError, match="oracle-epoch"):
        inner_predictions(oracle, toy, make_folds(toy.samples["subject"].tolist()), 3, tmp_path / "o.csv")


TOY_SUITE = f"""\
name: toy selection
seeds: [0, 1]
runs:
  - {{label: floor, config: {CONFIGS}/features_logreg.yaml, seeded: false,
      overrides: [data.source=toy, workers=1, threads=1]}}
  - {{label: STSTNet, config: {CONFIGS}/features_ststnet.yaml, overrides: [data.source=toy, model.epochs=2, threads=1]}}
ensembles:
  - {{label: both, members: [floor, STSTNet]}}
selection: {{inner_folds: 3}}
"""


def test_suite_selection_row(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text(TOY_SUITE)
    plan = run_suite(path, tmp_path / "out", progress=False)
    sel = [p for p in plan if p.label == "nested selection"]
    assert [p.out.name for p in sel] == ["nested_selection_s0", "nested_selection_s1"]
    assert [c.label for c in sel[1].selection] == ["floor", "STSTNet", "both"]
    assert sel[1].selection[0].run_dir == tmp_path / "out" / "floor"          # the deterministic floor, run once
    assert sorted(p.name[:-13] for p in (tmp_path / "out" / "inner").iterdir()) == \
        ["floor_k3", "ststnet_s0_k3", "ststnet_s1_k3"]                           # the floor's inner folds: once
    results = (tmp_path / "out" / "results.md").read_text()
    assert re.search(r"\| nested selection \| honest \| CDE \| 2 \|", results)
    # the suite command as a whole made it (not `--seeds 1`, which would rewrite the page for seed 1 alone)
    assert f"--out {tmp_path / 'out'}   # nested selection: seed 1, made by the suite command as a whole; 3 inner " \
        "folds, UF1, scope all, among 3 candidates" in results
    before = (tmp_path / "out" / "nested_selection_s1" / "predictions.csv").read_bytes()
    run_suite(path, tmp_path / "out", progress=False)                          # a rerun re-reads, same result
    assert (tmp_path / "out" / "nested_selection_s1" / "predictions.csv").read_bytes() == before


@pytest.mark.parametrize("edit,msg", [
    (lambda s: s.replace("inner_folds: 3", "inner_folds: 1"), "0 (off) or >= 2"),
    (lambda s: s.replace("inner_folds: 3", "inner_folds: 3, candidates: [floor, HTNet]"), "candidate 'HTNet'"),
    (lambda s: s.replace("inner_folds: 3", "inner_folds: 3, candidates: [floor]"), "at least two candidates"),
    (lambda s: s.replace("inner_folds: 3", "inner_folds: 3, scope: subject"), "selection.scope"),
    (lambda s: s.replace("inner_folds: 3", "inner_folds: 3, label: STSTNet"), "used twice"),
    (lambda s: s.replace("label: STSTNet, config: ", "label: STSTNet, command: train, config: ")
     .replace("inner_folds: 3", "inner_folds: 3, candidates: [floor, STSTNet]"), "train.py run"),
])
def test_suite_selection_errors(tmp_path, edit, msg):
    path = tmp_path / "suite.yaml"
    path.write_text(edit(TOY_SUITE))
    with pytest.raises(ConfigError, match=re.escape(msg)):
        load_suite(path)


def test_default_candidates_leave_out_train_runs(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(TOY_SUITE.replace("ensembles:", f"""\
  - {{label: main job, command: train, config: {CONFIGS}/demo.yaml}}
ensembles:"""))
    suite = load_suite(path)
    assert suite.candidates == ["floor", "STSTNet", "both"]
    assert suite.labels[-1] == "nested selection"
    plan = plan_suite(suite, path, tmp_path / "out")
    assert [c.label for c in plan[-1].selection] == ["floor", "STSTNet", "both"]


def test_real_maps_selection_matches_inner_scores(shared_data, tmp_path):
    """On the real megc2019_htnet maps (3 outer folds): the suite's selection picks, per fold, the candidate whose
    pooled inner UF1 over the fold's 67 training subjects is highest."""
    path = tmp_path / "suite.yaml"
    path.write_text(f"""\
name: real selection
seeds: [0]
runs:
  - {{label: floor, config: {CONFIGS}/features_logreg.yaml, overrides: [workers=1]}}
  - {{label: forest, config: {CONFIGS}/features_randomforest.yaml, overrides: [model.forest_trees=5, workers=1]}}
selection: {{inner_folds: 2}}
""")
    run_suite(path, tmp_path / "out", ["max_folds=3", "threads=1"], progress=False)
    table = pd.read_csv(tmp_path / "out" / "nested_selection_s0" / "selection.csv")
    assert len(table) == 3
    for _, r in table.iterrows():
        best = "floor" if r["inner_UF1[floor]"] >= r["inner_UF1[forest]"] else "forest"
        assert r["chosen"] == best
    inner = pd.read_csv(_cache(tmp_path / "out" / "inner", "floor_s0", 2), dtype={"outer": str})
    assert inner.groupby("outer").size().tolist() == [442 - n for n in
                                                      pd.read_csv(tmp_path / "out" / "floor_s0" / "predictions.csv")
                                                      .groupby("subject", sort=True).size().tolist()]


def test_a_folder_reused_for_other_settings_never_reads_the_old_inner_predictions(toy, tmp_path):
    cands = _candidates(tmp_path, toy, {"floor": ["model.name=logreg"], "net": ["model.name=ststnet",
                                                                                 "model.epochs=1"]})
    select_nested(cands, {}, tmp_path / "sel", k=3, progress=False)
    import shutil
    shutil.rmtree(tmp_path / "net")                       # the same folder name, now another recipe
    cands[1:] = _candidates(tmp_path, toy, {"net": ["model.name=ststnet", "model.epochs=2"]})
    select_nested(cands, {}, tmp_path / "sel", k=3, progress=False)
    old, new = sorted((tmp_path / "sel" / "inner").glob("net_k3_*.csv"), key=lambda p: p.stat().st_mtime)
    table = pd.read_csv(tmp_path / "sel" / "selection.csv")
    d = pd.read_csv(new, dtype={"outer": str})
    s = table.iloc[0]["subject"]
    d = d[d["outer"] == s]
    assert table.iloc[0]["inner_UF1[net]"] == pytest.approx(
        compute_metrics(d["y_true"], d[SCORES].to_numpy().argmax(1))["UF1"], abs=1e-6)
    assert not pd.read_csv(old)[SCORES].equals(pd.read_csv(new)[SCORES])


def test_settings_digest_follows_a_custom_recognizers_code(tmp_path):
    """The inner-prediction cache of a custom recipe is named by its source file's SHA-256 too (an edited network
    never reads back the old inner folds); the built-in recipes' digests do not carry the empty module key."""
    from icegan.selection import recipe_digest
    net = tmp_path / "net.py"
    net.write_text(EXAMPLE.read_text())
    cfg = _cfg("model.name=custom", f"model.module={net}:TwoLayerCNN")
    before = recipe_digest(cfg)
    net.write_text(EXAMPLE.read_text() + "\n# edited\n")
    assert recipe_digest(cfg) != before
    # known values: the shipped recipes' digests as computed before the module / table / normalize keys existed
    # (commit 9fe438f), so that inner-prediction caches made then are still read
    for name, digest in (("features_ststnet", "a78183fd"), ("features_randomforest", "355ba76a"),
                         ("features_logreg", "07fe579a")):
        assert recipe_digest(load_config(LosoConfig, CONFIGS / f"{name}.yaml", [])) == digest, name


def test_suite_reuse_copies_the_inner_fold_predictions(tmp_path):
    """A selection suite reusing another suite's runs (--reuse) also takes their inner-fold predictions: nothing is
    trained again, and the selection is the same."""
    path = tmp_path / "suite.yaml"
    path.write_text(TOY_SUITE)
    run_suite(path, tmp_path / "out", progress=False, seeds=[0])
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(TOY_SUITE.replace("label: STSTNet,", "label: STSTNet again,")
                       .replace("members: [floor, STSTNet]", "members: [floor, STSTNet again]"))
    log = io.StringIO()
    run_suite(renamed, tmp_path / "out2", progress=False, seeds=[0], reuse=[tmp_path / "out"], log=log)
    err = log.getvalue()
    assert err.count("reused: copied from") == 2 and err.count("reused: inner-fold predictions") == 2
    assert "inner folds of" not in err                                   # no inner fold was computed
    old = sorted((tmp_path / "out" / "inner").iterdir())
    new = sorted((tmp_path / "out2" / "inner").iterdir())
    assert [p.name for p in new] == [p.name.replace("ststnet_s0", "ststnet_again_s0") for p in old]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(old, new))
    first, second = tmp_path / "out" / "nested_selection_s0", tmp_path / "out2" / "nested_selection_s0"
    assert (second / "predictions.csv").read_bytes() == (first / "predictions.csv").read_bytes()
    assert (second / "selection.csv").read_text().replace("STSTNet again", "STSTNet") == \
        (first / "selection.csv").read_text()          # the same inner scores and choices, under the new label


def test_inner_predictions_made_on_other_labels_are_refused(toy, tmp_path):
    """A cache of inner predictions whose rows name other labels than today's table (a corrected annotation sheet) is
    refused with the file's name, not mixed into the selection."""
    cfg = _cfg("model.name=logreg")
    folds = make_folds(toy.samples["subject"].tolist())[:2]
    cache = tmp_path / "c.csv"
    inner_predictions(cfg, toy, folds, 3, cache, progress=False)
    changed = toy.samples.copy()
    row = int(folds[0].train_idx[0])
    changed.loc[row, "label"] = (int(changed.loc[row, "label"]) + 1) % 3
    with pytest.raises(SelectionError, match=rf"c\.csv: inner predictions were made on other data .* row {row}"):
        inner_predictions(cfg, FeatureSet(changed, toy.features), folds, 3, cache, progress=False)


def test_inner_folds_have_their_own_indices_and_match_groupkfold(tmp_path, monkeypatch):
    """Nested selection: inner folds get indices of their own (none equals an outer fold's) and the inner column of each outer fold's rows is the inner split that scored them (4 outer folds, k = 3, not a multiple)."""
    import icegan.selection as sel
    from icegan.commands.loso import LosoConfig, load_feature_set
    from icegan.config import load_config
    from icegan.protocol import make_folds
    cfg = load_config(LosoConfig, None, ["data.source=toy", "workers=1", "threads=1", "model.name=logreg"])
    fs = load_feature_set(cfg.data)
    subjects = fs.samples["subject"].astype(str).to_numpy()
    folds = make_folds(subjects.tolist())[:4]           # n_outer = 4, not a multiple of k = 3
    made = []
    real = sel.inner_folds
    monkeypatch.setattr(sel, "inner_folds", lambda *a, **k: made.extend(real(*a, **k)) or made[-a[2]:])
    df = sel.inner_predictions(cfg, fs, folds, 3, tmp_path / "c.csv", progress=False)
    idx = [g.index for g in made]
    assert len(set(idx)) == len(idx) and not set(idx) & {f.index for f in folds}
    for f in folds:
        for j, g in enumerate(real(f, subjects, 3)):
            got = df[(df["outer"] == f.subject) & (df["inner"] == j)]["row"]
            assert sorted(got) == sorted(g.test_idx)
