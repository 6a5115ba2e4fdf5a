"""Resume audit: runs interrupted (Ctrl-C in a fold, a kill that cuts a file short, a damaged cache) and started
again end as an uninterrupted run does, and a file that cannot be read is named with what to do."""

import numpy as np
import pytest


def _one_hot_folds(calls, stop_at=None):
    """A fold function scoring each test clip with vote shares (1 for class ``clip number % 3`` and 0 elsewhere, or
    halves for odd clip numbers), as a random forest gives, counting its calls; Ctrl-C at fold ``stop_at``."""
    def fold_fn(fold):
        if fold.index == stop_at:
            raise KeyboardInterrupt
        calls.append(fold.index)
        s = np.zeros((len(fold.test_idx), 3))
        s[np.arange(len(fold.test_idx)), fold.test_idx % 3] = 1.0
        return np.where((fold.test_idx % 2 == 1)[:, None], (s + np.roll(s, 1, axis=1)) / 2, s)
    return fold_fn


def test_a_predictions_file_cut_mid_line_is_resumed_to_the_same_text(tmp_path):
    """A LOSO run killed while appending a fold's rows: the rerun keeps the whole folds and drops the cut one. It
    rewrote the kept rows with pandas' default float format, so whole-number scores written as ``1`` came back as
    ``1.0`` and the finished predictions.csv differed from an uninterrupted run's; now the same ``%.9g`` as every
    append, and no temporary file is left."""
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    ref = run_loso(toy.samples, _one_hot_folds([]), tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_loso(toy.samples, _one_hot_folds([], stop_at=2), out, progress=False)
    pred = out / "predictions.csv"
    text = pred.read_text()
    assert ",1\n" in text or ",1," in text                       # the scores were written as whole numbers
    pred.write_text(text[:-5])                                   # fold 1's last line cut by the kill
    calls = []
    assert run_loso(toy.samples, _one_hot_folds(calls), out, progress=False) == ref
    assert calls == [1, 2, 3]                                    # fold 0 kept, the cut fold 1 done again
    assert pred.read_text() == (tmp_path / "ref" / "predictions.csv").read_text()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
