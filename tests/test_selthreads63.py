"""Selection worker threads 63: nested selection passed its ProcessGroupMap only the inner-fold groups LEFT, so with the
default threads=0 a resumed selection sized each worker's threads from those (usable CPUs // min(workers, groups
left)) where an uninterrupted one used usable CPUs // min(workers, the selection's groups in all): other thread counts,
possibly other scores. Now :func:`icegan.selection.inner_predictions` passes ``scope=`` the selection's inner groups
in all, as :func:`icegan.protocol.run_loso` does (tests/test_threads63.py)."""
import pandas as pd
from test_threads63 import _InProcessPool

from icegan.commands.loso import LosoConfig, load_feature_set
from icegan.config import load_config
from icegan.protocol import make_folds
from icegan.selection import inner_predictions


def test_a_resumed_selection_gets_the_threads_of_an_uninterrupted_one(tmp_path, monkeypatch):
    """A logreg recipe (one inner fold per group) with workers=4, threads=0 on 16 CPUs: 8 outer folds x 3 inner folds
    = 24 groups start 4 workers of 4 threads; resumed with the last outer fold's 3 groups left it starts 3 workers of 4
    threads (was 3 of 5) and ends with the uninterrupted selection's inner predictions."""
    import concurrent.futures

    import icegan.environment
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 16)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _InProcessPool)
    monkeypatch.setattr(_InProcessPool, "started", [])
    cfg = load_config(LosoConfig, None, ["data.source=toy", "model.name=logreg", "workers=4", "threads=0"])
    fs = load_feature_set(cfg.data)
    folds = make_folds(fs.samples["subject"].tolist())
    assert len(folds) == 8
    cache = tmp_path / "c.csv"
    full = inner_predictions(cfg, fs, folds, 3, cache, progress=False)
    assert _InProcessPool.started == [(4, 4)]
    rows = pd.read_csv(cache, dtype=str, keep_default_na=False)
    last = folds[-1].subject                              # an interrupted selection: the last outer fold unfinished
    lines = cache.read_text().splitlines()
    cache.write_text("".join(line + "\n" for i, line in enumerate(lines)
                             if i == 0 or rows["outer"].iloc[i - 1] != last))
    again = inner_predictions(cfg, fs, folds, 3, cache, progress=False)
    assert _InProcessPool.started == [(4, 4), (3, 4)]
    key = ["outer", "row"]
    pd.testing.assert_frame_equal(full.sort_values(key).reset_index(drop=True),
                                  again.sort_values(key).reset_index(drop=True), check_dtype=False)


def test_a_resumed_grouped_selection_gets_the_threads_of_an_uninterrupted_one(tmp_path, monkeypatch):
    """The grouped STSTNet engine (folds_per_group=6, k=3: 2 outer folds per group, 4 groups in all) with workers=8,
    threads=0 on 16 CPUs: a fresh selection starts 4 workers of 4 threads; resumed with the last group left it starts
    1 worker of 4 threads (was 1 of 16), the groups in all being the chunks of outer folds, not the inner folds."""
    import concurrent.futures

    import icegan.environment
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 16)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _InProcessPool)
    monkeypatch.setattr(_InProcessPool, "started", [])
    cfg = load_config(LosoConfig, None, ["data.source=toy", "model.name=ststnet", "model.epochs=1",
                                         "model.folds_per_group=6", "workers=8", "threads=0"])
    fs = load_feature_set(cfg.data)
    folds = make_folds(fs.samples["subject"].tolist())
    cache = tmp_path / "c.csv"
    inner_predictions(cfg, fs, folds, 3, cache, progress=False)
    assert _InProcessPool.started == [(4, 4)]
    rows = pd.read_csv(cache, dtype=str, keep_default_na=False)
    last = folds[-1].subject                              # the last group of outer folds cut short
    lines = cache.read_text().splitlines()
    cache.write_text("".join(line + "\n" for i, line in enumerate(lines)
                             if i == 0 or rows["outer"].iloc[i - 1] != last))
    inner_predictions(cfg, fs, folds, 3, cache, progress=False)
    assert _InProcessPool.started == [(4, 4), (1, 4)]
