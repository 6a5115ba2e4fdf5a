"""Property-based tests (hypothesis) of suites, nested selection, fold executors, distribution, saved models and the
synthetic data sets.

Each property holds for every input hypothesis draws (the "suite" profile of tests/conftest.py: the same draws
every run):

* ``plan_suite`` (icegan/suite.py) expands recipes x seeds into exactly the documented folders: a seeded run once
  per seed (``<slug>_s<seed>``), an unseeded run once (``<slug>``), an ensemble once per seed (once when all its
  members are unseeded), an ``over_seeds`` ensemble once at the end over every run of its members with each
  member's weight shared by its runs; folder names unique; each run's seed and name set by the suite and its
  overrides applied in order (the run's, then the suite-wide ones: the last one wins);
* ``slug`` gives folder names of lower-case letters, digits and single inner underscores, and is idempotent;
* reuse: a finished run is found for the same config under any other name, never for another seed or recipe;
* ``inner_folds`` (icegan/selection.py): for every outer fold, the k inner folds partition its training rows by
  subject and none holds the outer held-out subject (Varma & Simon 2006: nested cross-validation);
* ``select_nested``: each outer fold's choice is the candidate with the best inner score of that fold (ties: the
  earlier), it does not change when other folds' inner scores change, and the fold gets that candidate's outer
  predictions;
* ``sequential_map`` yields every fold once, in order, with ``fold_fn(fold)``; ``name_fold_in_error`` names the
  fold or every fold of a group, once;
* ``shard`` / ``split_indices`` (icegan/distributed.py) over all ranks partition the rows (each row on exactly one
  rank, in order), and ``all_gather_rows`` of the ranks' pieces gives back the whole tensor in row order;
* a logistic-regression recipe fitted, saved and loaded (icegan/saved_recognizer.py) predicts exactly as the
  fitted one, and the file's metadata (config, classes, training record) round trips;
* ``make_toy_features`` / ``make_synthetic_me`` / ``synthetic_au_features`` are deterministic per seed, have the
  documented shapes and class balance; ``add_training_rows`` adds only the fold's own training subjects' rows.
"""
from __future__ import annotations

import contextlib
import tempfile
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from icegan.protocol import Fold, make_folds

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SEARCH = settings.default.max_examples > 100          # HYPOTHESIS_PROFILE=search: at least 200 draws of slow ones


# ----------------------------------------------------------------------------------------------------- suite plans

@st.composite
def suites(draw):
    """(yaml text, description): 1-3 logistic-regression runs (some unseeded), 1-3 distinct seeds, 0-3 ensembles
    (some over the seeds, some weighted), each run with 0-1 ``model.logreg_C`` override (a command line sets a key
    once)."""
    n_runs = draw(st.integers(1, 3))
    seeds = draw(st.lists(st.integers(0, 50), min_size=1, max_size=3, unique=True))
    labels = [f"R{i} run" for i in range(n_runs)]
    runs = []
    for lab in labels:
        seeded = draw(st.booleans())
        cs = draw(st.lists(st.integers(1, 9), max_size=1))
        runs.append({"label": lab, "seeded": seeded, "C": cs})
    ensembles = []
    if n_runs >= 2:
        for j in range(draw(st.integers(0, 3))):
            members = draw(st.lists(st.sampled_from(labels), min_size=2, max_size=n_runs, unique=True))
            weights = draw(st.one_of(st.none(), st.lists(st.integers(1, 4), min_size=len(members),
                                                          max_size=len(members))))
            ensembles.append({"label": f"E{j} ens", "members": members, "weights": weights,
                              "over_seeds": draw(st.booleans())})
    lines = ["name: prop", f"seeds: [{', '.join(map(str, seeds))}]", "runs:"]
    for r in runs:
        over = ", ".join(f"model.logreg_C={c}" for c in r["C"])
        lines.append(f"  - {{label: {r['label']}, config: {CONFIGS}/features_logreg.yaml, "
                     f"seeded: {str(r['seeded']).lower()}, overrides: [{over}]}}")
    if ensembles:
        lines.append("ensembles:")
        for e in ensembles:
            w = "" if e["weights"] is None else f", weights: [{', '.join(map(str, e['weights']))}]"
            lines.append(f"  - {{label: {e['label']}, members: [{', '.join(e['members'])}]{w}, "
                         f"over_seeds: {str(e['over_seeds']).lower()}}}")
    return "\n".join(lines) + "\n", {"seeds": seeds, "runs": runs, "ensembles": ensembles}


@settings(max_examples=200 if SEARCH else 25)
@given(suites(), st.lists(st.integers(10, 19), max_size=1))
def test_plan_expands_recipes_times_seeds_as_documented(case, suite_c):
    from icegan.suite import load_suite, plan_suite, slug
    text, d = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.yaml"
        path.write_text(text)
        out = Path(tmp) / "out"
        overrides = [f"model.logreg_C={c}" for c in suite_c]
        plan = plan_suite(load_suite(path), path, out, overrides)
    seeds, runs = d["seeds"], {r["label"]: r for r in d["runs"]}
    folders = [p.out for p in plan]
    assert len(set(folders)) == len(folders)                          # every folder filled once
    expected = []
    for i, seed in enumerate(seeds):
        expected += [(r["label"], out / (f"{slug(r['label'])}_s{seed}" if r["seeded"] else slug(r["label"])))
                     for r in d["runs"] if r["seeded"] or i == 0]
        for e in d["ensembles"]:
            if e["over_seeds"]:
                continue
            if all(not runs[m]["seeded"] for m in e["members"]):
                if i == 0:
                    expected.append((e["label"], out / slug(e["label"])))
            else:
                expected.append((e["label"], out / f"{slug(e['label'])}_s{seed}"))
    expected += [(e["label"], out / slug(e["label"])) for e in d["ensembles"] if e["over_seeds"]]
    assert [(p.label, p.out) for p in plan] == expected
    for p in plan:
        if p.config is not None:
            r = runs[p.label]
            assert p.config.seed == (p.seed if r["seeded"] else seeds[0]) and p.config.name == p.out.name
            cs = suite_c or r["C"]                        # the suite's replaces the run's own: each key once
            assert p.config.model.logreg_C == (cs[-1] if cs else 1.0)
            assert p.command.endswith(" ".join([f"seed={p.config.seed}", f"name={p.out.name}",
                                                *[f"model.logreg_C={c}" for c in cs]]))
        else:
            e = next(x for x in d["ensembles"] if x["label"] == p.label)
            w = e["weights"] or [1] * len(e["members"])
            if p.over_seeds:
                per = [(m, wi, [out / (f"{slug(m)}_s{s}" if runs[m]["seeded"] else slug(m))
                                for s in (seeds if runs[m]["seeded"] else seeds[:1])])
                       for m, wi in zip(e["members"], w)]
                assert p.members == [f for _, _, fs in per for f in fs]
                weights = [wi / len(fs) for _, wi, fs in per for _ in fs]
                got = p.weights or [1.0] * len(p.members)
                assert np.allclose(np.asarray(got) / sum(got), np.asarray(weights) / sum(weights))
            else:
                assert p.members == [out / (f"{slug(m)}_s{p.seed}" if runs[m]["seeded"] else slug(m))
                                     for m in e["members"]]
                assert p.weights == e["weights"]


@given(st.text(max_size=30))
def test_slug_is_a_clean_idempotent_folder_name(label):
    import re
    import string

    from icegan.suite import slug
    s = slug(label)
    assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", s)
    assert slug(s) == s
    # ASCII case does not make another folder. (Not label.upper(): Unicode upper-casing is not undone by lower(),
    # 'ß'.upper() == 'SS', so slug('ß') == 'run' but slug('SS') == 'ss'; the property was wrongly stated.)
    swap = str.maketrans(string.ascii_letters, string.ascii_letters.swapcase())
    assert slug(label.translate(swap)) == s


@settings(max_examples=200 if SEARCH else 15)
@given(st.integers(0, 5), st.integers(0, 5), st.sampled_from(["a", "b b", "x_1"]), st.integers(1, 9))
def test_a_finished_run_is_reused_for_its_config_under_any_name_only(seed, other_seed, name, c):
    import yaml

    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config, to_dict
    from icegan.suite import find_reusable_run, reusable_runs

    def cfg(s, n, cc):
        return load_config(LosoConfig, CONFIGS / "features_logreg.yaml", [f"seed={s}", f"name={n}",
                                                                          f"model.logreg_C={cc}"])
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "pool" / "done"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg(seed, "orig", c)), sort_keys=False))
        for f in ("run.json", "predictions.csv"):
            (run / f).write_text("{}")
        (run / "metrics.json").write_text('{"oracle_epoch": false}')
        pool = reusable_runs([Path(tmp) / "pool"])
        assert find_reusable_run(cfg(seed, name, c), pool) == run.resolve()
        assert (find_reusable_run(cfg(other_seed, name, c), pool) is None) == (other_seed != seed)
        assert find_reusable_run(cfg(seed, name, c + 1), pool) is None


# ------------------------------------------------------------------------------------------------ nested selection

@st.composite
def subject_tables(draw):
    """(subjects per row, k): 3-8 subjects of 1-2 datasets, 1-4 clips each (rows shuffled), 2 <= k <= subjects-1."""
    n = draw(st.integers(3, 8))
    subs = [f"{draw(st.sampled_from(['casme2', 'samm']))}/s{i}" for i in range(n)]
    rows = [s for s in subs for _ in range(draw(st.integers(1, 4)))]
    rows = draw(st.permutations(rows))
    return list(rows), draw(st.integers(2, n - 1))


@given(subject_tables(), st.integers(0, 50))
def test_inner_folds_partition_the_training_rows_and_never_hold_the_outer_subject(case, base):
    from icegan.selection import SelectionError, inner_folds
    subjects, k = case
    subj = np.asarray(subjects)
    for f in make_folds(subjects):
        inner = inner_folds(f, subj, k, index_base=base)
        assert [g.index for g in inner] == list(range(base, base + k))
        tested = np.concatenate([g.test_idx for g in inner])
        assert sorted(tested.tolist()) == sorted(np.asarray(f.train_idx).tolist())    # each training row once
        for g in inner:
            assert g.subject == f.subject and g.unit == f.unit
            assert f.subject not in set(subj[g.train_idx]) | set(subj[g.test_idx])
            assert not set(subj[g.train_idx]) & set(subj[g.test_idx])
            assert sorted(np.concatenate([g.train_idx, g.test_idx]).tolist()) == sorted(f.train_idx.tolist())
    f = make_folds(subjects)[0]
    n_train = len(set(subj[f.train_idx]))
    with pytest.raises(SelectionError, match=f"{n_train} training subjects cannot be split into {n_train + 1}"):
        inner_folds(f, subj, n_train + 1)
    with pytest.raises(SelectionError, match="inner_folds must be >= 2"):
        inner_folds(f, subj, 1)


@pytest.fixture(scope="module")
def outer_runs(tmp_path_factory):
    """Two finished toy LOSO runs (logistic regression, C = 1 and 0.01) and their configs and feature set."""
    from icegan.commands.loso import LosoConfig, load_feature_set, run
    from icegan.config import load_config
    root = tmp_path_factory.mktemp("outer")
    out = []
    for label, c in (("a", 1.0), ("b", 0.01)):
        cfg = load_config(LosoConfig, None, ["data.source=toy", "data.toy_subjects=2", "workers=1", "threads=1",
                                             "model.name=logreg", f"model.logreg_C={c}", f"name={label}"])
        fs = load_feature_set(cfg.data)
        run(cfg, root / label, progress=False, feature_set=fs)
        out.append((label, root / label, cfg))
    return out, fs


@settings(max_examples=200 if SEARCH else 10)
@given(st.data())
def test_nested_choice_is_the_best_inner_score_of_that_fold_only(outer_runs, data):
    import icegan.protocol as protocol
    import icegan.selection as selection
    from icegan.metrics import compute_metrics
    from icegan.selection import Candidate, select_nested
    runs, fs = outer_runs
    subjects = fs.samples["subject"].astype(str).tolist()
    folds = make_folds(subjects)
    k = 2
    score_cols = ["score_negative", "score_positive", "score_surprise"]
    drawn = {}

    def fake_inner(cfg, feature_set, outer_folds, kk, cache, progress=True, log=None):
        if cfg.name not in drawn:
            parts = []
            for f in outer_folds:
                n = len(f.train_idx)
                p = np.asarray(data.draw(st.lists(st.sampled_from([0.1, 0.2, 0.7]), min_size=3 * n,
                                                  max_size=3 * n)), dtype=float).reshape(n, 3)
                p /= p.sum(1, keepdims=True)
                rows = feature_set.samples.iloc[f.train_idx]
                df = pd.DataFrame({"outer": f.subject, "inner": 0, "row": f.train_idx,
                                   "dataset": rows["dataset"].to_numpy(), "subject": rows["subject"].to_numpy(),
                                   "clip": rows["clip"].to_numpy(), "y_true": rows["label"].to_numpy()})
                for j, col in enumerate(score_cols):
                    df[col] = p[:, j]
                parts.append(df)
            drawn[cfg.name] = pd.concat(parts, ignore_index=True)
        return drawn[cfg.name]

    cands = [Candidate(lab, d, config=cfg) for lab, d, cfg in runs]
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(selection, "inner_predictions", fake_inner)
        mp.setattr(protocol, "write_reports", lambda *a, **kw: None)     # the figures and metrics.md: not checked
        select_nested(cands, {}, Path(tmp) / "sel", k=k, progress=False, log=open("/dev/null", "w"))
        table = pd.read_csv(Path(tmp) / "sel" / "selection.csv", dtype=str)
        pred = pd.read_csv(Path(tmp) / "sel" / "predictions.csv", dtype={"subject": str, "clip": str})
        first = drawn["a"]
        # other folds' inner scores changed (fold 0's kept): fold 0's choice stays
        rng = np.random.default_rng(0)
        other = first["outer"] != folds[0].subject
        changed = first.copy()
        changed.loc[other, score_cols] = rng.dirichlet(np.ones(3), other.sum())
        drawn["a"] = changed
        select_nested(cands, {}, Path(tmp) / "sel2", k=k, progress=False, log=open("/dev/null", "w"))
        table2 = pd.read_csv(Path(tmp) / "sel2" / "selection.csv", dtype=str)
        drawn["a"] = first
    assert table2["chosen"].iloc[0] == table["chosen"].iloc[0]
    outer = {lab: pd.read_csv(d / "predictions.csv", dtype={"subject": str, "clip": str}) for lab, d, _ in runs}
    for i, f in enumerate(folds):
        scores = []
        for lab, _, _ in runs:
            d = drawn[lab][drawn[lab]["outer"] == f.subject]
            scores.append(compute_metrics(d["y_true"].to_numpy(), d[score_cols].to_numpy().argmax(1), 3)["UF1"])
        best = runs[int(np.argmax(scores))][0]                         # argmax: the first of equal scores
        assert table["subject"].iloc[i] == f.subject and table["chosen"].iloc[i] == best
        got = pred[pred["subject"] == f.subject].sort_values("clip").reset_index(drop=True)
        want = outer[best][outer[best]["subject"] == f.subject].sort_values("clip").reset_index(drop=True)
        np.testing.assert_array_equal(got["y_pred"].to_numpy(), want["y_pred"].to_numpy())
        np.testing.assert_allclose(got[score_cols].to_numpy(), want[score_cols].to_numpy(), atol=1e-8)


# ------------------------------------------------------------------------------------------------------- executors

@given(st.lists(st.integers(-100, 100), max_size=20))
def test_sequential_map_yields_every_fold_once_in_order(xs):
    from icegan.executors import sequential_map
    folds = [Fold(index=i, subject=f"d/s{i}", train_idx=np.arange(0), test_idx=np.arange(1)) for i in range(len(xs))]
    out = list(sequential_map(lambda f: xs[f.index] * 2, folds))
    assert [f.index for f, _ in out] == list(range(len(xs)))
    assert [s for _, s in out] == [2 * x for x in xs]


@given(st.lists(st.integers(0, 30), min_size=1, max_size=5, unique=True), st.integers(1, 3))
def test_an_error_names_its_fold_or_every_fold_of_its_group_once(indices, layers):
    from icegan.executors import name_fold_in_error
    folds = [Fold(index=i, subject=f"casme2/sub{i:02d}", train_idx=np.arange(0), test_idx=np.arange(0))
             for i in sorted(indices)]
    exc = RuntimeError("boom")
    target = folds[0] if len(folds) == 1 else folds
    for _ in range(layers):
        name_fold_in_error(exc, target)
    if not hasattr(exc, "add_note"):               # Python 3.10: nothing is added
        return
    assert len(exc.__notes__) == 1
    note = exc.__notes__[0]
    if len(folds) == 1:
        assert note == f"(in the fold of held-out subject {folds[0].subject}, fold {folds[0].index + 1})"
    else:
        assert all(f.subject in note for f in folds)
        assert note.endswith(f"folds {folds[0].index + 1}-{folds[-1].index + 1})")


@given(st.lists(st.integers(0, 99), max_size=10), st.booleans())
def test_writable_indices_keeps_the_rows_and_makes_them_writable(rows, frozen):
    from icegan.executors import writable_indices
    a = np.asarray(rows, dtype=np.int64)
    a.flags.writeable = not frozen
    f = Fold(index=0, subject="d/s", train_idx=a, test_idx=a[::-1])
    w = writable_indices(f)
    assert w.train_idx.flags.writeable and w.test_idx.flags.writeable
    np.testing.assert_array_equal(w.train_idx, a)
    np.testing.assert_array_equal(w.test_idx, a[::-1])
    assert (w is f) == (not frozen)


# ---------------------------------------------------------------------------------------------------- distribution

@contextlib.contextmanager
def _as_rank(r: int, world: int, gathered=None):
    """icegan.distributed as seen by rank ``r`` of ``world`` processes (``gathered``: what all_gather_object of
    the other ranks returns)."""
    import icegan.distributed as D
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(D, "is_distributed", lambda: world > 1)
        mp.setattr(D, "rank", lambda: r)
        mp.setattr(D, "world_size", lambda: world)
        if gathered is not None:
            def all_gather_object(out, obj):
                out[:] = gathered
            mp.setattr(D, "dist", types.SimpleNamespace(all_gather_object=all_gather_object))
        yield D


@given(st.integers(1, 6), st.lists(st.integers(0, 1000), max_size=25, unique=True))
def test_shards_of_all_ranks_partition_the_batch(world, rows):
    idx = torch.tensor(rows, dtype=torch.long)
    parts = []
    for r in range(world):
        with _as_rank(r, world) as D:
            parts.append(D.shard(idx).tolist())
    if len(rows) < 2 * world:                       # too small to split (a 1-row shard): every rank takes all of it
        assert all(p == rows for p in parts)
    else:
        assert sorted(x for p in parts for x in p) == sorted(rows)
        assert sum(len(p) for p in parts) == len(rows)
        for p in parts:                            # each rank's rows in batch order
            assert p == [x for x in rows if x in set(p)]
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert min(map(len, parts)) >= 2


@given(st.integers(1, 6), st.integers(0, 30), st.integers(1, 3))
def test_gathered_rows_of_all_ranks_are_the_whole_tensor_in_row_order(world, n, width):
    full = torch.arange(n * width, dtype=torch.float32).reshape(n, width) * 0.5 - 3
    pieces, splits = [], []
    for r in range(world):
        with _as_rank(r, world) as D:
            idx = D.split_indices(n)
        splits.append(idx.tolist())
        pieces.append((idx, full[idx]))
    assert sorted(x for s in splits for x in s) == list(range(n))          # each row on exactly one rank
    for r in range(world):
        with _as_rank(r, world, gathered=pieces) as D:
            got = D.all_gather_rows(full[D.split_indices(n)], D.split_indices(n), n)
        assert torch.equal(got, full)


# ------------------------------------------------------------------------------------------------- saved recognizer

@settings(max_examples=200 if SEARCH else 8)
@given(st.integers(0, 100), st.sampled_from([0.01, 0.1, 1.0, 10.0]), st.integers(0, 100))
def test_a_saved_logistic_regression_predicts_as_fitted_and_its_metadata_round_trips(seed, c, new_seed):
    from icegan.commands.loso import LosoConfig
    from icegan.commands.predict import fit
    from icegan.config import load_config, to_dict
    from icegan.data.toy_features import make_toy_features
    from icegan.saved_recognizer import load_recognizer
    cfg = load_config(LosoConfig, None, ["data.source=toy", "data.toy_subjects=1", "threads=1", "model.name=logreg",
                                         f"model.logreg_C={c}", f"seed={seed}"])
    x = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1, seed=new_seed).features
    with tempfile.TemporaryDirectory() as tmp:
        fitted, record = fit(cfg, Path(tmp) / "m.pt", progress=False)
        loaded, meta = load_recognizer(Path(tmp) / "m.pt")
    np.testing.assert_array_equal(loaded(x), fitted(x))
    assert meta["config"] == to_dict(cfg)
    assert meta["classes"] == ["negative", "positive", "surprise"]
    assert {k: v for k, v in meta["training"].items()} == {k: v for k, v in record.items() if k != "seconds"}


@given(st.lists(st.tuples(st.sampled_from(["casme2", "samm"]), st.integers(1, 4), st.integers(0, 2)),
                min_size=1, max_size=20), st.sampled_from([8, 28]))
def test_training_record_counts_every_clip_once(rows, size):
    from icegan.saved_recognizer import training_record
    samples = pd.DataFrame([{"dataset": d, "subject": f"{d}/s{s}", "clip": f"c{i}", "label": lab}
                            for i, (d, s, lab) in enumerate(rows)])
    rec = training_record(samples, torch.zeros(len(rows), 3, size, size))
    n = len(rows)
    assert rec["clips"] == n == sum(rec["datasets"].values()) == sum(rec["classes"].values()) == len(rec["clip_keys"])
    assert rec["subjects"] == sorted({f"{d}/s{s}" for d, s, _ in rows}) and rec["map_size"] == size
    assert rec["classes"] == {name: sum(lab == i for *_, lab in rows)
                              for i, name in enumerate(["negative", "positive", "surprise"])}
    assert rec["clip_keys"] == [f"{d}/s{s}/c{i}" for i, (d, s, _) in enumerate(rows)]


# ----------------------------------------------------------------------------------------------------------- data

@settings(max_examples=200 if SEARCH else 20)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(8, 16), st.floats(0.05, 1.0), st.integers(0, 10 ** 6),
       st.lists(st.sampled_from(["casme2", "samm", "smic"]), min_size=1, max_size=3, unique=True))
def test_toy_features_are_seeded_balanced_and_normalised(n_sub, cpc, size, noise, seed, datasets):
    from icegan.data.toy_features import make_toy_features
    a = make_toy_features(n_sub, cpc, size, noise, seed, tuple(datasets))
    b = make_toy_features(n_sub, cpc, size, noise, seed, tuple(datasets))
    n = len(datasets) * n_sub * 3 * cpc
    assert a.features.shape == (n, 3, size, size) and a.features.dtype == torch.float32
    assert torch.equal(a.features, b.features) and a.samples.equals(b.samples)
    assert float(a.features.min()) >= 0.0 and float(a.features.max()) <= 1.0
    # min-max per channel: every map reaches 0 and 1 (noise > 0, so no channel is constant)
    flat = a.features.reshape(n, 3, -1)
    assert torch.allclose(flat.min(-1).values, torch.zeros(n, 3), atol=1e-6)
    assert torch.allclose(flat.max(-1).values, torch.ones(n, 3), atol=1e-6)
    counts = a.samples.groupby(["subject", "label"]).size()
    assert len(counts) == len(datasets) * n_sub * 3 and (counts == cpc).all()
    assert a.samples["clip"].is_unique
    assert set(a.samples["subject"].str.split("/").str[0]) == set(datasets)
    c = make_toy_features(n_sub, cpc, size, noise, seed + 1, tuple(datasets))
    assert not torch.equal(a.features, c.features)


@settings(max_examples=200 if SEARCH else 6)
@given(st.integers(2, 3), st.integers(1, 2), st.sampled_from([32, 40]), st.floats(0.5, 5.0), st.floats(0.0, 4.0),
       st.integers(0, 1000))
def test_synthetic_me_is_seeded_balanced_and_its_flow_peaks_at_the_amplitude(n_sub, cpc, size, lo, span, seed):
    from icegan.data.synthetic_me import make_synthetic_me
    hi = min(lo + span, 10.0)
    a = make_synthetic_me(n_sub, cpc, size, (lo, hi), seed)
    b = make_synthetic_me(n_sub, cpc, size, (lo, hi), seed)
    n = n_sub * 3 * cpc
    assert a.onset.shape == a.apex.shape == (n, size, size) and a.onset.dtype == np.uint8
    assert a.flow.shape == (n, 2, size, size) and a.landmarks.shape == (n, 68, 2)
    for name in ("onset", "apex", "flow", "landmarks"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.manifest.equals(b.manifest)
    counts = a.manifest.groupby(["subject", "label"]).size()
    assert len(counts) == n_sub * 3 and (counts == cpc).all()
    px = size / 128.0
    peak = np.linalg.norm(a.flow, axis=1).reshape(n, -1).max(1)
    # the largest displacement equals the clip's amplitude (manifest rounds it to 3 decimals; float32 flow)
    np.testing.assert_allclose(peak, a.manifest["amplitude"].to_numpy(), atol=6e-4, rtol=1e-5)
    assert (peak >= lo * px - 1e-3).all() and (peak <= hi * px + 1e-3).all()


# half the amplitude ranges valid (boundaries 10 px included), so that a wrong size bound is reached often
AMPLITUDES = st.one_of(st.tuples(st.floats(0.01, 10), st.floats(0.01, 10)).map(lambda t: tuple(sorted(t))),
                       st.tuples(st.sampled_from([-1.0, 0.0, 0.5, 10.0, 10.5]),
                                 st.sampled_from([0.0, 0.4, 10.0, 11.0])),
                       st.tuples(st.floats(-1, 12), st.floats(-1, 12)))


@given(st.integers(-1, 3), st.integers(-1, 2), AMPLITUDES)
@example(2, 1, (10.0, 10.0)).via("the bounds themselves")
@example(1, 1, (1.0, 2.0)).via("the bounds themselves")
@example(2, 0, (1.0, 2.0)).via("the bounds themselves")
@example(2, 1, (0.0, 1.0)).via("the bounds themselves")
@example(2, 1, (3.0, 2.0)).via("the bounds themselves")
def test_synthetic_me_size_errors_name_the_bad_value(n_sub, cpc, amp):
    from icegan.data.synthetic_me import check_synthetic_me_sizes
    ok_sizes = n_sub >= 2 and cpc >= 1
    ok_amp = 0 < amp[0] <= amp[1] <= 10
    if ok_sizes and ok_amp:
        check_synthetic_me_sizes(n_sub, cpc, amp, "data.")
        return
    with pytest.raises(ValueError) as e:
        check_synthetic_me_sizes(n_sub, cpc, amp, "data.")
    msg = str(e.value)
    assert ("data.n_subjects" in msg and f"{n_sub} and {cpc}" in msg) if not ok_sizes else \
        ("data.amplitude" in msg and str(list(amp)) in msg)


@given(subject_tables(), st.lists(st.integers(0, 7), max_size=12))
def test_synthetic_rows_join_only_their_own_training_subjects_folds(case, extra_of):
    from icegan.data.synthetic_features import add_training_rows
    subjects, _ = case
    uniq = sorted(set(subjects))
    extra = [uniq[i % len(uniq)] for i in extra_of]
    folds = make_folds(subjects)
    offset = len(subjects)
    new = add_training_rows(folds, subjects, extra, offset)
    for f, g in zip(folds, new):
        assert (g.index, g.subject) == (f.index, f.subject)
        np.testing.assert_array_equal(g.test_idx, f.test_idx)
        np.testing.assert_array_equal(g.train_idx[:len(f.train_idx)], f.train_idx)
        added = g.train_idx[len(f.train_idx):] - offset
        train_subjects = set(np.asarray(subjects)[f.train_idx])
        assert added.tolist() == [j for j, s in enumerate(extra) if s in train_subjects]
        assert f.subject not in {extra[j] for j in added}


@settings(max_examples=200 if SEARCH else 10)
@given(st.integers(1, 8), st.integers(1, 3), st.integers(0, 1000))
def test_synthetic_au_clips_are_seeded_and_classes_balanced(n, per_clip, seed):
    """The labels of the synthetic clips (read back from a cache of their features, so no face is warped): the
    same seed the same labels, every class per_clip * n / 3 times up to one."""
    import hashlib
    import json

    from icegan.data.features import FeatureSet
    from icegan.data.roi import files_cache_key
    from icegan.data.synthetic_features import SYNTHETIC_PREFIX, _settings, synthetic_au_features
    with tempfile.TemporaryDirectory() as tmp:
        faces = []
        for i in range(n):
            p = Path(tmp) / f"f{i}.png"
            p.write_bytes(b"x" * (i + 1))
            faces.append(p)
        samples = pd.DataFrame({"dataset": "casme2", "subject": [f"casme2/s{i % 3}" for i in range(n)],
                                "clip": [f"c{i}" for i in range(n)], "label": 0, "face_path": list(map(str, faces))})
        fs = FeatureSet(samples, torch.zeros(n, 3, 28, 28))
        key = hashlib.sha1((files_cache_key(faces) + json.dumps(_settings(per_clip, 128, (0.5, 1.5), 0.5, seed)))
                           .encode()).hexdigest()[:16]
        np.savez(Path(tmp) / f"synthetic_{key}.npz", features=np.zeros((n * per_clip, 3, 28, 28), np.float32))
        a = synthetic_au_features(fs, per_clip=per_clip, seed=seed, cache_dir=tmp)
        b = synthetic_au_features(fs, per_clip=per_clip, seed=seed, cache_dir=tmp)
    assert len(a.samples) == n * per_clip and a.samples.equals(b.samples)
    counts = np.bincount(a.samples["label"].to_numpy(), minlength=3)
    assert counts.sum() == n * per_clip and counts.max() - counts.min() <= 1
    assert a.samples["clip"].tolist() == [f"{SYNTHETIC_PREFIX}{k}:c{i}" for k in range(per_clip) for i in range(n)]
    assert a.samples["subject"].tolist() == [f"casme2/s{i % 3}" for _ in range(per_clip) for i in range(n)]
