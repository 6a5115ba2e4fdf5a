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
