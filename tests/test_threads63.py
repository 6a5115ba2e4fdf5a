"""Fold worker threads 63: with the default threads=0 a ProcessGroupMap sized each worker's threads from the groups
LEFT to run (usable CPUs // min(workers, groups left)), so a resumed run with 2 of 6 groups left trained them with 8
threads where the uninterrupted run used 4, and scores equal one process's only with the same thread count. Now the
default threads come from the run's fold groups in all (finished ones included, as a fresh run sizes them); only the
processes started (and environment.jsonl's workers) are capped at the groups left."""
import json
from concurrent.futures import Future

import pandas as pd
from test_resume57 import CFG, _toy
from test_resume_audit44 import _one_hot_folds


def test_sizes_of_a_resumed_run_keep_the_threads_of_the_whole_run(monkeypatch):
    """16 CPUs, 4 workers: 2 groups left of a run of 10 start 2 processes of 4 threads (a fresh run of 10: 4 of 4),
    not 2 of 8; a run of 2 groups in all still gets 2 of 8, a given thread count stays, and no scope is the groups."""
    import icegan.environment
    from icegan.executors import ProcessGroupMap
    from icegan.protocol import _cpu_workers
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 16)
    pool = ProcessGroupMap(4)
    assert pool.sizes(10, scope=10) == (4, 4)
    assert pool.sizes(2, scope=10) == (2, 4)
    assert pool.sizes(2, scope=2) == pool.sizes(2) == (2, 8)
    assert pool.sizes(0, scope=10) == (1, 4)
    assert ProcessGroupMap(4, threads=3).sizes(2, scope=10) == (2, 3)
    assert _cpu_workers(None, pool, 2, scope=10) == (2, 4)
    assert _cpu_workers(None, pool, 2) == (2, 8)


class _InProcessPool:
    """A stand-in for ProcessPoolExecutor that records the pool it was asked for and runs each task in this
    process (its initializer's fold function, without the worker setup)."""
    started: list = []

    def __init__(self, max_workers, mp_context, initializer, initargs):
        self.fn = initargs[0]
        self.started.append((max_workers, initargs[1]))

    def submit(self, task, folds):
        fut = Future()
        fut.set_result((list(self.fn(folds)), None))      # as _run_group_task: (results, no extras)
        return fut

    def shutdown(self, wait=True, cancel_futures=False):
        pass


def _pooled_toy_run(monkeypatch):
    """16 usable CPUs, process pools run in this process (``_InProcessPool.started`` records each pool's
    (workers, threads)); returns the toy data of 2 datasets (4 subjects) and a folds_fn training one-hot folds."""
    import concurrent.futures

    import icegan.environment
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 16)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", _InProcessPool)
    monkeypatch.setattr(_InProcessPool, "started", [])
    fold_fn = _one_hot_folds([])

    def folds_fn(group):
        return [fold_fn(f) for f in group]
    toy = _toy()
    return toy.replace(keep=toy.samples["dataset"].isin(sorted(set(toy.samples["dataset"]))[:2]).to_numpy()), folds_fn


def test_a_resumed_pool_gets_the_threads_of_an_uninterrupted_one(tmp_path, monkeypatch):
    """A run of 4 one-fold groups (2 subjects in each of 2 datasets) with ProcessGroupMap(4) on 16 CPUs starts 4
    workers of 4 threads; the same run resumed with 2 groups left starts 2 workers of 4 threads (was 8), records
    (2, 4) in environment.jsonl and ends with the uninterrupted run's scores."""
    from icegan.executors import ProcessGroupMap
    from icegan.protocol import run_loso
    toy, folds_fn = _pooled_toy_run(monkeypatch)
    subjects = list(dict.fromkeys(toy.samples["dataset"] + "/" + toy.samples["subject"]))
    assert len(subjects) == 4
    out = tmp_path / "r"

    def run():
        return run_loso(toy.samples, None, out, config=CFG, progress=False, folds_fn=folds_fn, folds_per_call=1,
                        group_map=ProcessGroupMap(4))
    ref = run()
    assert _InProcessPool.started == [(4, 4)]
    pred_csv = out / "predictions.csv"
    rows = pd.read_csv(pred_csv, dtype=str, keep_default_na=False)
    finished = rows["subject"].unique()[:2]                 # an interrupted run: the first 2 folds recorded
    pred_csv.write_text(pred_csv.read_text().splitlines()[0] + "\n"
                        + "".join(line + "\n" for line, s in zip(pred_csv.read_text().splitlines()[1:],
                                                                 rows["subject"]) if s in finished))
    assert run() == ref
    assert _InProcessPool.started == [(4, 4), (2, 4)]
    last = json.loads((out / "environment.jsonl").read_text().splitlines()[-1])
    assert (last["folds_finished_at_start"], last["workers"], last["threads_per_worker"]) == (2, 2, 4)
