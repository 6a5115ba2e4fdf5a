"""Tests that kill the surviving mutants of a mutation audit of the honest-selection and leak-prevention code
(icegan.selection, icegan.label_noise and the noise filter of icegan.recognition, the main job's leak warning
icegan.pipeline.real_motion_seen, icegan.suite's over_seeds ensembles).

Each test states an invariant or a hand-made value: a choice that must not move when the held-out subject's outer
predictions are rigged, a cache naming another clip that must be refused, ..."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icegan.commands.loso import LosoConfig, load_feature_set, run
from icegan.config import load_config
from icegan.protocol import make_folds
from icegan.selection import Candidate, SelectionError, inner_predictions, select_nested

SCORES = ["score_negative", "score_positive", "score_surprise"]


def _cfg(*over):
    return load_config(LosoConfig, None, ["data.source=toy", "workers=1", "threads=1", *over])


@pytest.fixture(scope="module")
def toy():
    return load_feature_set(_cfg("model.name=logreg").data)


def _rig(pred_csv: Path, subjects: set, right: bool) -> None:
    """Rewrite the outer predictions of ``subjects`` in ``pred_csv``: one-hot on the true class (``right``) or on the
    next class (always wrong); other rows unchanged."""
    p = pd.read_csv(pred_csv, dtype={"subject": str, "clip": str})
    rows = p["subject"].isin(subjects).to_numpy()
    y = p.loc[rows, "y_true"].to_numpy()
    pred = y if right else (y + 1) % 3
    p.loc[rows, "y_pred"] = pred
    p.loc[rows, SCORES] = np.eye(3)[pred]
    p.to_csv(pred_csv, index=False)


def test_the_choice_ignores_the_held_out_subjects_outer_predictions(toy, tmp_path):
    """Kills "choose by the outer (held-out) score". Per outer fold, the candidate that the inner folds did not choose
    is made perfect on the held-out subject and the chosen one always wrong: an honest selection keeps every choice
    and its inner scores (they never look at the held-out subject), so the selected predictions are wrong on every
    clip (UF1 0, known by construction); choosing by the outer score would flip every fold to the perfect one."""
    cands = []
    for label, over in {"floor": ["model.name=logreg"],
                        "net": ["model.name=ststnet", "model.epochs=1", "model.lr=0.00001"]}.items():
        cfg = _cfg(*over, f"name={label}")
        run(cfg, tmp_path / label, progress=False, feature_set=toy)
        cands.append(Candidate(label, tmp_path / label, config=cfg))
    select_nested(cands, {}, tmp_path / "a", k=3, cache_dir=tmp_path / "inner", progress=False)
    before = pd.read_csv(tmp_path / "a" / "selection.csv", dtype={"subject": str})
    assert len(before) == 8
    for c in cands:
        chosen_here = set(before.loc[before["chosen"] == c.label, "subject"])
        _rig(c.run_dir / "predictions.csv", chosen_here, right=False)
        _rig(c.run_dir / "predictions.csv", set(before["subject"]) - chosen_here, right=True)
    m = select_nested(cands, {}, tmp_path / "b", k=3, cache_dir=tmp_path / "inner", progress=False)
    after = pd.read_csv(tmp_path / "b" / "selection.csv", dtype={"subject": str})
    pd.testing.assert_frame_equal(before, after)
    sel = pd.read_csv(tmp_path / "b" / "predictions.csv")
    assert len(sel) == len(toy.samples) and (sel["y_pred"] != sel["y_true"]).all()
    assert m["overall"]["UF1"] == 0.0


def test_an_inner_cache_naming_another_clip_is_refused(toy, tmp_path):
    """Kills "cache check compares labels only". A cached row pointing at a sample-table row that now holds another
    clip (same label) was made on other data: refused, naming the file and the row."""
    cfg = _cfg("model.name=logreg")
    folds = make_folds(toy.samples["subject"].tolist())[:2]
    cache = tmp_path / "c.csv"
    inner_predictions(cfg, toy, folds, 3, cache, progress=False)
    df = pd.read_csv(cache, dtype={"outer": str, "clip": str})
    row = int(df["row"].iloc[3])
    df.loc[3, "clip"] = "renamed_clip"
    df.to_csv(cache, index=False)
    with pytest.raises(SelectionError, match=rf"c\.csv: inner predictions were made on other data \(1 row\(s\), e\.g\. "
                                             rf"row {row}: clip 'renamed_clip'"):
        inner_predictions(cfg, toy, folds, 3, cache, progress=False)


def test_an_ensembles_inner_probabilities_follow_its_weights(toy, tmp_path):
    """Kills "ensemble weights ignored in the inner folds". The two members' inner predictions are rewritten by hand:
    member a puts 0.8 on the true class and 0.2 on the next, member b 0.1 and 0.9. With weights 3:1 the true class
    gets (3·0.8 + 0.1) / 4 = 0.625 on every clip (inner UF1 1); with equal weights it gets 0.45 against 0.55 for the
    next class (inner UF1 0). Candidate b is listed first and a is chosen in every fold (best inner UF1; the
    ensemble ties it and comes later); with b's outer predictions rigged always wrong and a's always right, the
    selection must hand back a's (kills "the first candidate's predictions used whatever the choice")."""
    from icegan.ensemble import ensemble_runs
    cands = []
    for label in ("b", "a"):
        cfg = _cfg("model.name=logreg", f"name={label}", "max_folds=3")
        run(cfg, tmp_path / label, progress=False, feature_set=toy)
        cands.append(Candidate(label, tmp_path / label, config=cfg))
    ensemble_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "mix", weights=[3, 1])
    cands.append(Candidate("mix", tmp_path / "mix", members=[cands[1], cands[0]], weights=[3, 1]))
    select_nested(cands, {}, tmp_path / "s0", k=3, cache_dir=tmp_path / "inner", progress=False)
    for label, (on_true, on_next) in (("a", (0.8, 0.2)), ("b", (0.1, 0.9))):
        (cache,) = (tmp_path / "inner").glob(f"{label}_k3_*.csv")
        d = pd.read_csv(cache, dtype={"outer": str, "dataset": str, "subject": str, "clip": str})
        y = d["y_true"].to_numpy()
        p = np.zeros((len(d), 3))
        p[np.arange(len(d)), y] = on_true
        p[np.arange(len(d)), (y + 1) % 3] = on_next
        d[SCORES] = p
        d.to_csv(cache, index=False)
    held = set(pd.read_csv(tmp_path / "a" / "predictions.csv", dtype={"subject": str})["subject"])
    _rig(tmp_path / "a" / "predictions.csv", held, right=True)
    _rig(tmp_path / "b" / "predictions.csv", held, right=False)
    m = select_nested(cands, {}, tmp_path / "s1", k=3, cache_dir=tmp_path / "inner", progress=False)
    table = pd.read_csv(tmp_path / "s1" / "selection.csv")
    assert len(table) == 3
    assert (table["inner_UF1[a]"] == 1.0).all() and (table["inner_UF1[b]"] == 0.0).all()
    assert (table["inner_UF1[mix]"] == 1.0).all()
    assert (table["chosen"] == "a").all()
    sel = pd.read_csv(tmp_path / "s1" / "predictions.csv")
    assert (sel["y_pred"] == sel["y_true"]).all() and m["overall"]["UF1"] == 1.0


def test_real_motion_seen_matches_spellings_within_a_dataset_only():
    """Kills "record compared without subject_key" and "compared without the dataset prefix" in the main job's leak
    warning (icegan.pipeline.real_motion_seen), and wrappers not followed. Weights that saw CASME2/Sub1 and samm/006
    have seen casme2/sub01 and SAMM/6 (other spellings of the same ids), not smic/sub01 (another dataset's sub01) or
    casme2/sub02; the record is found on the network itself, behind a working-resolution/RANSAC wrapper (``base``),
    a component's ``decomposer``, and both."""
    from types import SimpleNamespace as NS

    from icegan.pipeline import real_motion_seen
    net = NS(model=NS(meta={"real_pair_subjects": ["CASME2/Sub1", "samm/006"]}))
    subjects = ["casme2/sub01", "casme2/sub02", "smic/sub01", "SAMM/6", "casme2/sub01"]
    for est in (net, NS(base=net), NS(decomposer=net), NS(decomposer=NS(base=net))):
        assert real_motion_seen(est, subjects) == ["SAMM/6", "casme2/sub01"]
    assert real_motion_seen(NS(model=NS(meta={})), subjects) == []


def test_the_noise_filter_drops_the_flagged_clips_from_every_seed_copy_of_a_fold(monkeypatch):
    """Kills "only the first seed copy of a fold filtered". With S = 2 copies per fold and a filter that flags every
    training clip labelled 2 (monkeypatched, so the flags are known), both copies of each fold keep exactly the fold's
    training clips with labels 0 and 1; the held-out clips stay out of every mask."""
    import icegan.label_noise
    from icegan.data.toy_features import make_toy_features
    from icegan.recognition import RecognizerConfig, _drop_noisy_labels
    monkeypatch.setattr(icegan.label_noise, "flag_noisy_labels", lambda x, y, *a, **kw: y == 2)
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    y = fs.labels.clone()
    folds = make_folds(fs.samples["subject"].tolist(), "CDE")[:3]
    S = 2
    masks = np.zeros((len(folds) * S, len(y)), dtype=bool)
    for i, f in enumerate(folds):
        masks[i * S:(i + 1) * S, f.train_idx] = True
    cfg = RecognizerConfig(epochs=1, noise_filter="forest", forest_trees=5)
    kept = _drop_noisy_labels(cfg, fs.features, y, masks, folds, S, 0, False)
    labels = y.numpy()
    for i, f in enumerate(folds):
        want = np.zeros(len(y), dtype=bool)
        want[f.train_idx] = True
        want &= labels != 2
        assert want.any() and (labels[f.train_idx] == 2).any()
        for copy in range(S):
            np.testing.assert_array_equal(kept[i * S + copy], want)


def test_a_suites_ensemble_candidate_is_its_own_members_of_the_same_seed_with_its_weights(tmp_path):
    """Kills "an ensemble candidate of a suite's selection planned with the first member repeated" and "... with equal
    weights": its inner probabilities are then averaged from other recipes or weights than its outer predictions.
    The ensemble 'both' of STSTNet and the unseeded floor with weights 3 : 1 is, at seed s, the candidate of the
    runs ststnet_s<s> and floor (run once), weights [3, 1]."""
    from icegan.suite import load_suite, plan_suite
    configs = Path(__file__).resolve().parent.parent / "configs"
    path = tmp_path / "suite.yaml"
    path.write_text(f"""\
name: toy selection
seeds: [0, 1]
runs:
  - {{label: floor, config: {configs}/features_logreg.yaml, seeded: false, overrides: [data.source=toy]}}
  - {{label: STSTNet, config: {configs}/features_ststnet.yaml, overrides: [data.source=toy]}}
ensembles:
  - {{label: both, members: [STSTNet, floor], weights: [3, 1]}}
selection: {{inner_folds: 3}}
""")
    out = tmp_path / "out"
    sel = [p for p in plan_suite(load_suite(path), path, out) if p.label == "nested selection"]
    assert [p.seed for p in sel] == [0, 1]
    for p in sel:
        (both,) = [c for c in p.selection if c.label == "both"]
        assert [m.label for m in both.members] == ["STSTNet", "floor"]
        assert [m.run_dir for m in both.members] == [out / f"ststnet_s{p.seed}", out / "floor"]
        assert both.members[0].config.seed == p.seed
        assert list(both.weights) == [3, 1]
