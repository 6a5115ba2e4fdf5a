"""The noise filter's logged share (``noise_filter/dropped_share``): written by a run whose fold groups train in
worker processes as by a one-process run, and counted among the training rows the filter can drop."""
import numpy as np
import pytest

from icegan.cli import main


def _shares(tb):
    """``{step: value}`` of the ``noise_filter/dropped_share`` scalars in the TensorBoard folder ``tb``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    if "noise_filter/dropped_share" not in acc.Tags()["scalars"]:
        return {}
    return {e.step: e.value for e in acc.Scalars("noise_filter/dropped_share")}


def test_parallel_run_logs_every_folds_dropped_share_as_one_process_does(tmp_path):
    """workers=2 (fold groups in worker processes, the writer left in the parent): the share of every fold reaches
    TensorBoard, equal to a workers=1 run's, and the predictions stay identical."""
    common = ["data.source=toy", "data.toy_subjects=2", "threads=1", "--no-progress", "model.epochs=1",
              "model.batch_size=16", "model.folds_per_group=1", "model.noise_filter=forest", "model.forest_trees=20"]
    out = {w: tmp_path / f"w{w}" for w in (1, 2)}
    for w in (1, 2):
        assert main(["loso", "--out", str(out[w]), f"workers={w}", *common]) == 0
    one, two = _shares(out[1] / "tb"), _shares(out[2] / "tb")
    assert sorted(one) == [0, 1, 2, 3]
    assert two == one
    assert (out[1] / "predictions.csv").read_bytes() == (out[2] / "predictions.csv").read_bytes()


def test_dropped_share_counts_only_the_rows_the_filter_can_drop(monkeypatch):
    """With inner validation the validation subjects keep all their clips: the logged share is the flagged clips'
    share of the other training clips (those the filter removes from training), not of all training clips."""
    import icegan.label_noise as label_noise
    import icegan.recognition as recognition
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import make_folds
    from icegan.recognition import RecognizerConfig, fit_predict_folds
    from tests._scalar_log import ScalarLog

    fs = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")[:2]
    seen = {}

    def flag_first_rows(x, y, *a, **kw):                   # a known flag pattern: the first 7 training rows
        flags = np.arange(len(y)) < 7
        seen.setdefault("flags", []).append(flags)
        return flags
    real_train = recognition.train_models

    def spy_train(cfg, x, y, masks, val, *a, **kw):
        seen["final"], seen["val"] = masks.numpy().copy(), val.numpy().copy()
        return real_train(cfg, x, y, masks, val, *a, **kw)
    monkeypatch.setattr(label_noise, "flag_noisy_labels", flag_first_rows)
    monkeypatch.setattr(recognition, "train_models", spy_train)
    cfg = RecognizerConfig(epochs=1, batch_size=16, noise_filter="forest", forest_trees=10, inner_val_fraction=0.4)
    writer = ScalarLog()
    fit_predict_folds(cfg, fs.features, fs.labels, subjects, folds, seed=3, progress=False, writer=writer)
    logged = {step: value for tag, value, step in writer.rows if tag == "noise_filter/dropped_share"}
    for i, f in enumerate(folds):
        train, flags, val = np.asarray(f.train_idx), seen["flags"][i], seen["val"][i]
        droppable = ~val[train]                               # training rows outside the validation subjects
        assert val[train].any() and droppable.any()
        removed = int((flags & droppable).sum())              # the rows the filter really takes out of training
        assert seen["final"][i].sum() == droppable.sum() - removed
        want = removed / droppable.sum()
        assert logged[f.index] == pytest.approx(want, abs=1e-12)
    assert any(logged[f.index] != pytest.approx(float(seen["flags"][i].mean())) for i, f in enumerate(folds))
