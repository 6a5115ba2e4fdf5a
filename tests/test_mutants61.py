"""Mutation audit 61: tests for mutants that survived the audit. Each test names the mutant it kills: epoch_curve.py's
partial-run tag at max_folds = n - 1, the classical methods' tolerance above 1 for float images (and its message), and
fit's report of a dataset whose clips are all held out for inner validation (the edited y_pred check of a resumed run,
icegan.protocol._checked_rows, is tested by tests/test_runs60.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _bench import load_bench
from _feature_tables import write_feature_table

from flownet.classical import to_gray_uint8
from icegan.cli import main
from icegan.data.toy_features import make_toy_features
from icegan.recognition import inner_val_split

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ 1. bench/epoch_curve.py: max_folds = n - 1 and n

def test_epoch_curve_tags_max_folds_one_short_of_all_and_not_all(monkeypatch, capsys):
    """Kills ``len(folds) < len(every) - 1`` in epoch_curve.py: max_folds=7 of the 8 folds is a partial curve (tagged
    [PARTIAL: 7 of 8 folds ...]); max_folds=8 is every fold, untagged."""
    import icegan.recognition as recognition
    bench = load_bench("epoch_curve")
    monkeypatch.setattr(recognition, "fit_predict_folds", lambda cfg, x, y, subjects, folds, **kw: [
        np.stack([np.eye(3)[y.numpy()[f.test_idx]]] * 2) for f in folds])
    argv = ["epoch_curve", "--config", str(ROOT / "configs" / "demo_features.yaml"), "--threads", "1",
            "model.epochs=2", "model.eval_every=1"]
    monkeypatch.setattr(sys, "argv", argv + ["max_folds=7"])
    bench.main()
    out = capsys.readouterr().out
    assert "seed 0: 7 folds [PARTIAL: 7 of 8 folds, max_folds: not a LOSO result]" in out
    monkeypatch.setattr(sys, "argv", argv + ["max_folds=8"])
    bench.main()
    out = capsys.readouterr().out
    assert "seed 0: 8 folds in " in out and "PARTIAL" not in out


# ------------------------------------------------------------------ 2. flownet/classical.py: the tolerance above 1

def test_grey_quantisation_refuses_1_02_and_clamps_1_009():
    """Kills ``top > 1.0 + 0.5`` in to_gray_uint8: 1.009 (within the 0.01 a resampling's rounding may add) is
    clamped; 1.02 is refused, and the message shows 1.02 (it said "the largest value is 1.0") and the tolerance."""
    img = torch.full((1, 1, 2, 3), 0.5)
    img[0, 0, 0, 0] = 1.009
    assert to_gray_uint8(img).tolist() == [[[255, 128, 128], [128, 128, 128]]]
    img[0, 0, 0, 0] = 1.02
    with pytest.raises(ValueError, match=r"^images must be in \[0, 1\]: the largest value is 1\.02 \(above 1 \+ "
                                         r"0\.01, the most a resampling's rounding may add;"):
        to_gray_uint8(img)


# ------------------------------------------------------------------ 3. icegan fit: a dataset held out whole

def test_fit_leaves_out_of_trained_on_a_dataset_whose_clips_are_all_held_out(tmp_path, capsys):
    """Kills ``"datasets": less["datasets"]`` in predict._less: when the only subject of a dataset (smic) is the one
    model.inner_val_fraction holds out, the "trained on" part names no "smic 0"; the early-stopping part names it."""
    fs = make_toy_features(n_subjects_per_dataset=2)
    samples = fs.samples.copy()
    moved = samples["subject"] == "samm/s02"
    samples.loc[moved, "dataset"], samples.loc[moved, "subject"] = "smic", "smic/s02"
    subjects = samples["subject"].astype(str).tolist()
    _, val = inner_val_split(subjects, np.arange(len(subjects)), 0.25, 0)
    assert sorted({subjects[i] for i in val}) == ["smic/s02"]
    csv = write_feature_table(tmp_path, fs.replace(samples=samples), name="t.csv")
    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--no-progress", "threads=1", "data.source=table",
                 f"data.table={csv}", "model.name=ststnet", "model.epochs=1", "model.inner_val_fraction=0.25",
                 "seed=0"]) == 0
    said = capsys.readouterr().out
    assert ("ststnet: trained on 27 clips of 3 subjects (casme2 18, samm 9; negative 9, positive 9, surprise 9), "
            "early stopping on 9 clips of 1 subject held out by model.inner_val_fraction=0.25 (smic/s02; smic 9; "
            "negative 3, positive 3, surprise 3), 28×28 maps, in ") in said
