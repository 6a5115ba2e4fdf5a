"""Learning-curve points (`data.train_subject_fraction`): each fold trains on a share of its training subjects."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from icegan.cli import main
from icegan.commands.loso import FeatureDataConfig, FeatureFolds, LosoConfig
from icegan.protocol import make_folds, subsample_training_subjects

# 3 datasets with 8, 4 and 2 subjects, 1-3 clips each
SUBJECTS = ([f"smic/s{i}" for i in range(8) for _ in range(1 + i % 3)]
            + [f"casme2/sub{i}" for i in range(4) for _ in range(2)]
            + ["samm/006", "samm/007", "samm/007"])


def _train_subjects(fold):
    return {SUBJECTS[i] for i in fold.train_idx}


@pytest.mark.parametrize("fraction,kept,held", [(0.5, {"smic": 4, "casme2": 2, "samm": 1}, {}),
                                                (0.25, {"smic": 2, "casme2": 1, "samm": 1}, {}),
                                                (0.1, {"smic": 1, "casme2": 1, "samm": 1}, {}),
                                                (0.6, {"smic": 5, "casme2": 2, "samm": 1}, {"smic": 4})])
def test_each_dataset_keeps_its_share_of_whole_subjects(fraction, kept, held):
    for fold in make_folds(SUBJECTS):
        sub = subsample_training_subjects(fold, SUBJECTS, fraction, seed=0)
        assert np.array_equal(sub.test_idx, fold.test_idx) and sub.subject == fold.subject
        names = _train_subjects(sub)
        assert fold.subject not in names and names <= _train_subjects(fold)
        held_ds = fold.subject.split("/")[0]
        for ds, n in kept.items():
            # max(1, floor(fraction * n + 0.5)) of the dataset's training subjects, worked out by hand: smic has 8,
            # casme2 4, samm 2, and the held-out subject's dataset one fewer (at 0.6: smic 4 of 7, not 5 of 8)
            want = held.get(ds, n) if ds == held_ds else n
            assert len({s for s in names if s.startswith(ds + "/")}) == want, (fold.subject, ds, held_ds)
        # whole subjects: every row of a kept subject is kept, in the original order
        want_rows = [i for i in fold.train_idx if SUBJECTS[i] in names]
        assert sub.train_idx.tolist() == want_rows


def test_subsets_are_seeded_nested_and_order_free():
    folds = make_folds(SUBJECTS)
    f = folds[3]
    a = subsample_training_subjects(f, SUBJECTS, 0.5, seed=1)
    assert np.array_equal(a.train_idx, subsample_training_subjects(f, SUBJECTS, 0.5, seed=1).train_idx)
    # the same fold alone, or in another order, gets the same subjects (seeded by the held-out subject)
    alone = make_folds(SUBJECTS)[3]
    assert np.array_equal(subsample_training_subjects(alone, SUBJECTS, 0.5, 1).train_idx, a.train_idx)
    moved = dataclasses.replace(f, index=f.index + 5)                     # another place in the fold order
    assert np.array_equal(subsample_training_subjects(moved, SUBJECTS, 0.5, 1).train_idx, a.train_idx)
    small = subsample_training_subjects(f, SUBJECTS, 0.25, seed=1)
    assert _train_subjects(small) < _train_subjects(a) < _train_subjects(f)          # nested points of one curve
    others = {frozenset(_train_subjects(subsample_training_subjects(f, SUBJECTS, 0.5, seed=s))) for s in range(8)}
    assert len(others) > 1                                                          # the seed matters
    assert subsample_training_subjects(f, SUBJECTS, 1.0, seed=1) is f
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"in \(0, 1\]"):
            subsample_training_subjects(f, SUBJECTS, bad, seed=1)


def test_feature_folds_train_on_the_subsample(monkeypatch):
    """FeatureFolds hands the recognizer the subsampled training rows; the test rows are all still scored."""
    seen = {}

    def fake_fit(cfg, x, y, subjects, folds, **kw):
        seen["folds"] = folds
        return [np.zeros((len(f.test_idx), 3)) for f in folds]
    import icegan.recognition as rec
    monkeypatch.setattr(rec, "fit_predict_folds", fake_fit)
    n = len(SUBJECTS)
    cfg = LosoConfig(seed=2, data=FeatureDataConfig(source="toy", train_subject_fraction=0.5))
    ff = FeatureFolds(cfg, torch.zeros(n, 3, 28, 28), torch.zeros(n, dtype=torch.long), SUBJECTS)
    folds = make_folds(SUBJECTS)
    out = ff(folds)
    assert [len(o) for o in out] == [len(f.test_idx) for f in folds]
    for f, g in zip(folds, seen["folds"]):
        assert np.array_equal(g.train_idx, subsample_training_subjects(f, SUBJECTS, 0.5, seed=2).train_idx)
        assert len(g.train_idx) < len(f.train_idx)


def test_config_rejects_a_share_outside_0_1(tmp_path, capsys):
    with pytest.raises(ValueError, match="data.train_subject_fraction must be in"):
        FeatureDataConfig(train_subject_fraction=0.0)
    rc = main(["loso", "--out", str(tmp_path / "x"), "data.source=toy", "data.train_subject_fraction=1.5"])
    assert rc == 2 and "data.train_subject_fraction" in capsys.readouterr().err


def test_learning_curve_point_end_to_end(shared_data, tmp_path):
    """A real 3-fold run at half the training subjects: every test clip scored, the share saved in config.yaml,
    and a rerun of the finished run reproduces its predictions (same subjects chosen)."""
    out = tmp_path / "half"
    args = ["loso", "--config", "configs/features_logreg.yaml", "--out", str(out), "--no-progress", "max_folds=3",
            "threads=1", "workers=1", f"data.root={shared_data / 'megc2019_htnet'}", "data.train_subject_fraction=0.5"]
    assert main(args) == 0
    pred = pd.read_csv(out / "predictions.csv")
    assert pred["subject"].nunique() == 3
    assert "train_subject_fraction: 0.5" in (out / "config.yaml").read_text()
    again = tmp_path / "again"
    assert main([a if a != str(out) else str(again) for a in args]) == 0
    pd.testing.assert_frame_equal(pred, pd.read_csv(again / "predictions.csv"))
    full = tmp_path / "full"
    assert main([str(full) if a == str(out) else a for a in args if not a.startswith("data.train_subject")]) == 0
    full_scores = pd.read_csv(full / "predictions.csv").filter(like="score_").to_numpy()
    assert not np.allclose(full_scores, pred.filter(like="score_").to_numpy())     # fewer subjects, other model


def test_learning_curve_script_recovers_a_known_curve(tmp_path, capsys):
    """bench/learning_curve.py on hand-made runs: the training subjects per fold are recounted from each run's own
    subjects and seed (13, 7, 4 for the 14 subjects here), the log fit recovers the curve the metrics were made from,
    a run saved before the new keys existed joins its curve, and partial runs are refused."""
    import json

    import yaml

    from tests._bench import load_bench
    mod = load_bench("learning_curve")
    pred = pd.DataFrame({"dataset": [s.split("/")[0] for s in SUBJECTS], "subject": SUBJECTS,
                         "clip": [f"c{i}" for i in range(len(SUBJECTS))], "y_true": 0, "y_pred": 0})
    runs = []
    for model, a, b in (("ststnet", 0.5, 0.1), ("logreg", 0.7, -0.01)):
        for fraction, n in ((1.0, 13), (0.5, 7), (0.25, 4)):
            for seed, noise in ((0, 0.01), (1, -0.01)):
                d = tmp_path / f"{model}_{fraction}_{seed}"
                d.mkdir()
                pred.to_csv(d / "predictions.csv", index=False)
                data = {"source": "megc2019_htnet", "train_subject_fraction": fraction, "table": None}
                if fraction == 1.0 and seed == 0:
                    data = {"source": "megc2019_htnet"}                 # saved before those keys existed
                cfg = {"name": d.name, "protocol": "CDE", "seed": seed, "data": data, "model": {"name": model}}
                (d / "config.yaml").write_text(yaml.safe_dump(cfg))
                uf1 = a + b * np.log2(n) + noise
                (d / "metrics.json").write_text(json.dumps({"overall": {"UF1": uf1, "UAR": uf1 + 0.02}}))
                runs.append(d)
    df = mod.read_runs(runs)
    assert sorted(df["curve"].unique()) == ["logreg", "ststnet"]
    assert df.groupby("fraction")["subjects"].unique().map(list).to_dict() == {0.25: [4.0], 0.5: [7.0], 1.0: [13.0]}
    pts, fits = mod.summarize(df, target=0.75)
    fit = fits.set_index("curve")
    assert fit.loc["ststnet", "b"] == pytest.approx(0.1) and fit.loc["ststnet", "a"] == pytest.approx(0.5)
    assert fit.loc["ststnet", "subjects_at_target"] == pytest.approx(2 ** 2.5)
    assert np.isnan(fit.loc["logreg", "subjects_at_target"])                    # falling line: never reaches it
    # the last step (7 -> 13 subjects) of a straight line in log2 has the line's slope
    assert fit.loc["ststnet", "b_last"] == pytest.approx(0.1)
    assert fit.loc["ststnet", "subjects_at_target_last"] == pytest.approx(2 ** 2.5)
    assert (pts["runs"] == 2).all() and pts["UF1_std"].to_numpy() == pytest.approx(np.full(6, 0.02 / np.sqrt(2)))
    assert mod.main([str(r) for r in runs] + ["--plot", str(tmp_path / "lc.png")]) == 0
    out = capsys.readouterr().out
    assert "| ststnet | 0.5 | 2 | 7.0 |" in out and "never (slope <= 0)" in out and (tmp_path / "lc.png").is_file()
    cfg = yaml.safe_load((runs[0] / "config.yaml").read_text())
    (runs[0] / "config.yaml").write_text(yaml.safe_dump(dict(cfg, max_folds=3)))
    # a max_folds run is told by the header icegan loso writes for it (folds_total), as the other bench scripts do
    (runs[0] / "run.json").write_text(json.dumps({"folds": SUBJECTS[:3], "folds_total": 14}))
    with pytest.raises(ValueError, match=r"partial run \[PARTIAL: 3 of 14 folds\]"):
        mod.read_runs(runs)
    with pytest.raises(ValueError, match="at least two"):
        mod.read_runs(runs[:1])
    (runs[0] / "run.json").unlink()
    (runs[0] / "config.yaml").write_text(yaml.safe_dump(cfg))
    (runs[1] / "metrics.json").write_text('{"overall": {"UF1": 0.6')          # cut short by a kill: named
    with pytest.raises(ValueError, match=f"{runs[1] / 'metrics.json'}: cannot be read as JSON"):
        mod.read_runs(runs)


def test_curve_labels_name_the_keys_that_tell_a_models_curves_apart():
    from tests._bench import load_bench
    mod = load_bench("learning_curve")
    cfgs = [{"model.name": "ststnet", "model.shift_px": 0, "model.lr": 0.002},
            {"model.name": "ststnet", "model.shift_px": 1, "model.lr": 0.002},
            {"model.name": "logreg", "model.shift_px": 0, "model.lr": 0.001}]
    df = pd.DataFrame({"key": ["a", "b", "c", "a"], "cfg": [cfgs[0], cfgs[1], cfgs[2], cfgs[0]]})
    assert mod._labels(df) == ["ststnet (model.shift_px=0)", "ststnet (model.shift_px=1)", "logreg",
                               "ststnet (model.shift_px=0)"]
