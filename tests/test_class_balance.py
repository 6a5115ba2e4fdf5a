"""model.class_balance=per_dataset: every (dataset, class) cell of a fold's training rows weighs the same in the loss
(icegan.recognition.dataset_class_weights)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from icegan.config import ConfigError, load_config
from icegan.data.toy_features import make_toy_features
from icegan.protocol import make_folds
from icegan.recognition import (RecognizerConfig, class_weights, dataset_class_weights, fit_predict_folds,
                                fit_recognizer, train_models)


def test_dataset_class_weights_known_values():
    """Cells a|0 (2 rows), a|1 (1), b|0 (1): raw 1/2, 1/2, 1, 1, rescaled to mean 1 → 2/3, 2/3, 4/3, 4/3 (every cell
    4/3 in total); a row outside the mask weighs 0 and is not counted."""
    subjects = ["a/1", "a/1", "a/2", "b/1", "b/2"]
    y = np.array([0, 0, 1, 0, 2])
    mask = np.array([[True, True, True, True, False]])
    w = dataset_class_weights(subjects, y, mask)
    torch.testing.assert_close(w, torch.tensor([[2 / 3, 2 / 3, 4 / 3, 4 / 3, 0.0]]))
    # the class weights on these weighted counts (class 0: 8/3 in two cells, class 1: 4/3 in one; n = 4): 4 / (2 · 8/3),
    # 4 / (2 · 4/3); all 1 only when every dataset holds every class
    cw = class_weights(torch.as_tensor(y), w, 3)
    torch.testing.assert_close(cw, torch.tensor([[0.75, 1.5, 0.0]]))


def test_dataset_class_weights_balance_each_dataset():
    """On the toy composite with one dataset's classes made unequal: after weighting, each dataset's classes weigh the
    same and the datasets weigh the same."""
    fs = make_toy_features(n_subjects_per_dataset=3, clips_per_class=3)
    keep = ~((fs.samples["dataset"] == "samm") & (fs.samples["label"] == 2)).to_numpy()
    keep[np.flatnonzero((fs.samples["dataset"] == "samm") & (fs.samples["label"] == 2))[:2]] = True   # 2 of 9 left
    subjects = fs.samples["subject"][keep].tolist()
    y = fs.samples["label"][keep].to_numpy()
    w = dataset_class_weights(subjects, y, np.ones((1, len(y)), dtype=bool))[0].numpy()
    datasets = np.array([s.split("/")[0] for s in subjects])
    totals = {(d, c): w[(datasets == d) & (y == c)].sum() for d in ("casme2", "samm") for c in range(3)}
    np.testing.assert_allclose(list(totals.values()), np.mean(list(totals.values())), rtol=1e-5)
    assert w.mean() == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["ststnet", "logreg"])
def test_per_dataset_balance_changes_training_and_never_sees_the_held_out_rows(name):
    """Balanced datasets: the same predictions as pooled balancing; one dataset's classes unequal: other predictions;
    the held-out subject's rows (features and labels) still never reach the fit."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=3)
    x, y, subjects = fs.features, fs.labels, fs.samples["subject"].tolist()
    kw = {"epochs": 2, "batch_size": 16} if name == "ststnet" else {}
    run = lambda xx, yy, ss, bal, folds=None: fit_predict_folds(    # noqa: E731
        RecognizerConfig(name=name, class_balance=bal, **kw), xx, yy, ss,
        folds if folds is not None else make_folds(ss, "CDE")[:2], seed=0, progress=False)
    atol = 2e-4 if name == "logreg" else 1e-5      # lbfgs' tolerance (see tests/test_subject_weighting.py)
    drop = np.flatnonzero(((fs.samples["dataset"] == "samm") & (fs.samples["label"] == 2)).to_numpy())[1:]
    keep = np.setdiff1d(np.arange(len(y)), drop)
    xu, yu, su = x[keep], y[keep], [subjects[i] for i in keep]
    pooled, per = run(xu, yu, su, "pooled"), run(xu, yu, su, "per_dataset")
    assert max(np.abs(a - b).max() for a, b in zip(pooled, per)) > 10 * atol
    f = make_folds(su, "CDE")[0]
    x2, y2 = xu.clone(), yu.clone()
    x2[f.test_idx] = torch.rand_like(x2[f.test_idx])
    y2[f.test_idx] = (y2[f.test_idx] + 1) % 3
    np.testing.assert_allclose(run(x2, y2, su, "per_dataset", [f])[0], run(x2, yu, su, "per_dataset", [f])[0],
                               rtol=0, atol=1e-6)


def test_class_balance_errors_and_neutral_key(tmp_path):
    with pytest.raises(ValueError, match="class_balance=per_dataset .* needs model.class_weighting=true"):
        RecognizerConfig(class_balance="per_dataset", class_weighting=False)
    fs = make_toy_features(n_subjects_per_dataset=1)
    with pytest.raises(ValueError, match="model.class_balance needs the subject of every training clip"):
        fit_recognizer(RecognizerConfig(epochs=1, class_balance="per_dataset"), fs.features, fs.labels, progress=False)
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match="recognizer.class_balance is supported by `icegan loso`"):
        load_main_config(None, ["recognizer.class_balance=per_dataset"])
    from icegan.commands.loso import LosoConfig
    with pytest.raises(ConfigError, match="class_balance"):
        load_config(LosoConfig, None, ["model.class_balance=per_subject"])


def test_unbalanced_class_weights_are_one_for_present_classes_and_zero_for_absent():
    """class_weighting=false: weight 1 for every class a model trains on, 0 for a class absent from its training rows
    (so it adds nothing to a validation loss either)."""
    y = torch.tensor([0, 0, 0, 1, 2, 2])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 1, 1]], dtype=torch.float32)
    torch.testing.assert_close(class_weights(y, mask, 3, balanced=False), torch.tensor([[1.0, 1, 1], [1, 0, 1]]))


def test_inner_validation_selects_on_the_class_weighted_cross_entropy(monkeypatch):
    """Early stopping compares the class-weighted validation cross-entropy: with training classes 6 / 2 / 4 (weights
    2/3, 2, 1) and 4 + 1 validation rows of classes 0 and 1, epoch 1 (p = 0.9 on the majority class, 0.1 on the
    minority) scores 1.05 against epoch 2's 0.69 (p = 0.5), so epoch 2's weights are kept; unweighted, epoch 1 would
    win (0.54)."""
    import icegan.recognition as rec

    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0] * 6 + [1] * 2 + [2] * 4 + [0] * 4 + [1])
    x = torch.rand(len(y), 3, 28, 28, generator=g)
    tm = torch.zeros(1, len(y), dtype=torch.bool)
    tm[0, :12] = True
    vm = ~tm
    epoch = iter(range(1, 10))

    def fake_predict(cfg, model, xx, dom=None):
        e = next(epoch)
        true = torch.where(y == 0, 0.9, 0.1) if e == 1 else torch.full((len(y),), 0.5)
        p = ((1 - true) / 2)[:, None].repeat(1, 3)
        p[torch.arange(len(y)), y] = true
        return p[:, None]

    cfg = RecognizerConfig(epochs=2, batch_size=8, eval_every=1, lr_schedule="constant")
    monkeypatch.setattr(rec, "_predict", fake_predict)
    model, _ = train_models(cfg, x, y, tm, vm, seed=0, progress=False)
    monkeypatch.undo()
    ref, _ = train_models(cfg, x, y, tm, seed=0, progress=False)
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
