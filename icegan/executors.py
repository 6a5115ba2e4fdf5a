"""Fold executors: where the LOSO folds of a run are trained.

:func:`icegan.protocol.run_loso` hands its unfinished folds to a *fold map*,
``fold_map(fold_fn, folds) -> iterator of (fold, scores)``, and records each result in
``predictions.csv`` the moment it arrives (once every fold is finished, a file whose folds arrived out of order is
rewritten in fold order: a sequential run's bytes). Two fold maps exist (and, for runs that train groups of folds
together such as ``icegan loso``, :class:`ProcessGroupMap`, which trains the groups in local processes):

* :func:`sequential_map` (the default): one fold after another in this process.
* :class:`RayExecutor`: every fold is a Ray task (``ray.remote``), one GPU each when the cluster has
  GPUs, ``num_cpus`` cores each otherwise; results are yielded in completion order. All tasks write
  to the same run directory, so the workers must see the driver's file system (one machine, or a
  shared file system across machines).

Results do not depend on the executor: every fold is seeded from ``cfg.seed`` and its index
(:meth:`icegan.pipeline.FoldRunner.__call__`), and the metrics are computed from the predictions
pooled in fold order. Bit-identical scores additionally need the same number of torch threads per
fold in both runs (set ``threads`` in the config; a Ray task otherwise uses its ``num_cpus``).

Scaling model (checked in docs/benchmarks.md): wall ≈ setup + ceil(folds / workers) × time per fold,
where time per fold grows when workers share cores.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from typing import Any, Callable, Iterable, Iterator, Optional

__all__ = ["FoldMap", "sequential_map", "name_fold_in_error", "fold_named_in_errors", "RayExecutor", "ProcessGroupMap",
           "WorkerDiedError", "ray_available", "writable_indices"]

log = logging.getLogger(__name__)

FoldMap = Callable[[Callable[[Any], Any], list], Iterable[tuple[Any, Any]]]


def name_fold_in_error(exc: BaseException, fold) -> None:
    """Add to ``exc`` a note naming the LOSO fold whose training raised it, e.g. ``(in the fold of held-out subject
    casme2/sub05, fold 3)``, or the group of folds trained together (``icegan loso``'s fold groups: ``(in the fold
    group of held-out subjects casme2/sub01, casme2/sub02, folds 1-2)``): a diverged GAN or a missing file deep
    inside one fold of 68 is otherwise reported with nothing that says which fold. The note
    (``BaseException.add_note``, Python 3.11; nothing is added on 3.10) is shown under a traceback and by the
    commands' one-line errors (:func:`icegan.commands.error_text`); added once however many layers pass the
    exception on.

    Args:
        exc: the exception raised by the fold function.
        fold: the :class:`icegan.protocol.Fold` it ran (``subject``, ``index`` 0-based, ``unit``), or the list of
            folds of a group.
    """
    if isinstance(fold, (list, tuple)) and len(fold) == 1:
        fold = fold[0]
    if not isinstance(fold, (list, tuple)):
        note = f"(in the fold of held-out {getattr(fold, 'unit', 'subject')} {fold.subject}, fold {fold.index + 1})"
    elif fold:
        note = (f"(in the fold group of held-out {getattr(fold[0], 'unit', 'subject')}s "
                f"{', '.join(f.subject for f in fold)}, folds {fold[0].index + 1}-{fold[-1].index + 1})")
    else:
        note = "(in an empty fold group)"
    if hasattr(exc, "add_note") and note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)


@contextlib.contextmanager
def fold_named_in_errors(fold):
    """``with fold_named_in_errors(fold): scores = fold_fn(fold)``: an exception raised inside is passed on with the
    note of :func:`name_fold_in_error` naming ``fold`` (a fold, or a group of folds)."""
    try:
        yield
    except Exception as exc:
        name_fold_in_error(exc, fold)
        raise


def sequential_map(fold_fn: Callable[[Any], Any], folds: list) -> Iterator[tuple[Any, Any]]:
    """Run ``fold_fn`` on each fold in order, in this process; yields ``(fold, scores)``. An exception of a fold
    is passed on with a note naming the fold (:func:`name_fold_in_error`)."""
    for fold in folds:
        with fold_named_in_errors(fold):
            scores = fold_fn(fold)
        yield fold, scores


def map_groups(group_map: Optional[Callable], folds_fn: Callable[[list], Any], groups: list,
               scope: int) -> Iterator[tuple[Any, Any]]:
    """``(group, results)`` of ``group_map(folds_fn, groups)`` (None: :func:`sequential_map`, in order); a
    :class:`ProcessGroupMap` is also given ``scope``: the run's groups in all (:meth:`ProcessGroupMap.sizes`)."""
    if group_map is None:
        return sequential_map(folds_fn, groups)
    if isinstance(group_map, ProcessGroupMap):
        return group_map(folds_fn, groups, scope=scope)
    return group_map(folds_fn, groups)


def ray_available() -> bool:
    """True when the optional ``ray`` package can be imported."""
    try:
        import ray
    except ImportError:
        return False
    del ray                     # imported only to see that it can be
    return True


def _strip(fold):
    """A picklable copy of a :class:`icegan.protocol.Fold` (the TensorBoard writer stays behind)."""
    return dataclasses.replace(fold, writer=None)


def writable_indices(fold):
    """``fold`` with writable ``train_idx`` / ``test_idx``: Ray hands a task's numpy arguments over as read-only
    views of its object store, and torch warns ("The given NumPy array is not writable", once per process) when
    such an array indexes a tensor (``real_feats[fold.train_idx]``) or is converted with ``torch.as_tensor``.
    Only read-only arrays are copied (int row indices: a few KB); a fold whose arrays are writable is returned as is.
    """
    import numpy as np
    copies = {k: np.array(v) for k in ("train_idx", "test_idx")
              if isinstance(v := getattr(fold, k, None), np.ndarray) and not v.flags.writeable}
    return dataclasses.replace(fold, **copies) if copies else fold


def _run_fold_task(fold_fn, fold, threads: int):
    """Body of one Ray task: set the thread count (torch and BLAS), run the fold (its index arrays made writable,
    :func:`writable_indices`), return scores and extras."""
    if threads > 0:
        from icegan.environment import limit_threads
        limit_threads(threads)
    fold = writable_indices(fold)
    with fold_named_in_errors(fold):
        scores = fold_fn(fold)
    extra = fold_fn.task_report(fold) if hasattr(fold_fn, "task_report") else None
    return scores, extra


_GROUP_FN: Optional[Callable[[list], Any]] = None


class WorkerDiedError(RuntimeError):
    """A :class:`ProcessGroupMap` worker process died while training (killed from outside, most often by the
    system's out-of-memory killer). The message names the folds not finished and says that a rerun resumes."""


class FoldTooLargeError(ValueError):
    """A fold task asks for more CPUs (``--cpus-per-fold``) than the Ray instance or cluster has: no fold could ever
    start. ``train.py`` prints its message as one line (exit status 2)."""


def _worker_died_message(unfinished: list[list]) -> str:
    """The one-line message of :class:`WorkerDiedError` for the fold groups ``unfinished`` (in fold order)."""
    subjects = [f.subject for g in unfinished for f in g]
    shown = ", ".join(subjects[:8]) + (f" and {len(subjects) - 8} more" if len(subjects) > 8 else "")
    return (f"a worker process died while training (killed from outside, most often by the system when it ran out of "
            f"memory: fewer workers or smaller fold groups need less): {len(subjects)} fold"
            f"{'s' if len(subjects) != 1 else ''} not finished: {shown}; the folds finished are kept, and rerunning "
            f"the same command resumes at the unfinished ones")


def _init_group_worker(folds_fn: Callable[[list], Any], threads: int, parent_pid: int = 0) -> None:
    """Initializer of a :class:`ProcessGroupMap` worker: Ctrl-C left to the parent, exit with the parent, thread
    count, allocator setting, the fold function."""
    import signal
    global _GROUP_FN
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # the parent stops the pool (it was ignored from the start)
    if parent_pid:
        from icegan.data.parent_exit import exit_with_parent
        exit_with_parent(parent_pid)
    from icegan.allocator import retain_freed_memory
    from icegan.environment import limit_threads
    limit_threads(threads)          # torch and the BLAS pools: no oversubscription across workers
    retain_freed_memory()
    _local_tqdm_lock()
    _GROUP_FN = folds_fn


def _local_tqdm_lock() -> None:
    """Give tqdm a thread lock of this worker's own instead of its default named semaphore, which a worker stopped by
    SIGTERM (:class:`ProcessGroupMap`) leaked ("leaked semaphore objects" at exit)."""
    import threading
    from tqdm import tqdm
    tqdm.set_lock(threading.RLock())


def _run_group_task(folds: list) -> tuple[list, Any]:
    """Body of one :class:`ProcessGroupMap` task: the worker's fold function on one group of folds; returns its
    results and its extras for the group (``_GROUP_FN.task_report(folds)``; None when it has no ``task_report``)."""
    assert _GROUP_FN is not None, "ProcessGroupMap worker was not initialised"
    results = list(_GROUP_FN(folds))
    return results, (_GROUP_FN.task_report(folds) if hasattr(_GROUP_FN, "task_report") else None)


class ProcessGroupMap:
    """Train groups of LOSO folds in ``workers`` local processes (a CPU alternative to Ray, no extra package).

    ``group_map(folds_fn, groups)`` yields ``(group, results)`` in completion order, where ``results`` =
    ``folds_fn(group)``; :func:`icegan.protocol.run_loso` records each fold as its group arrives, so an
    interrupted run resumes like a sequential one. ``folds_fn`` must be picklable: it is sent once to each
    worker (the features travel with it), the folds are sent without their TensorBoard writer: what a group
    has to log comes back as the extras of ``folds_fn.task_report(group)`` (run in the worker after the group) and
    is handed to ``folds_fn.merge_report(group, extra)`` in this process, whose folds keep their writer, before
    the group is yielded (both optional, as :class:`RayExecutor`'s per-fold ones). Workers
    are started with ``spawn`` (no fork of a process that already runs torch threads) and end when the
    main process ends, also when it is killed.

    ``group_map(folds_fn, groups, scope=n)``: ``n``, the run's groups in all (:meth:`sizes`); None: ``len(groups)``.

    Args:
        workers: processes (>= 1); a call with fewer groups starts one per group (:meth:`sizes`).
        threads: torch threads in each worker (0: from the CPUs this process may run on, :meth:`sizes`). Scores
            equal those of a one-process run with the same thread count (every group is seeded from its first fold's
            index). ``self.threads``: each worker's threads when all ``workers`` start.

    Raises:
        ValueError: ``workers`` < 1 or ``threads`` < 0.
        WorkerDiedError: (while iterating) a worker process died, e.g. killed for lack of memory; raised after the
            groups finished before were yielded, naming every fold not finished (the pool ends all its workers).
    """

    def __init__(self, workers: int, threads: int = 0):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if threads < 0:
            raise ValueError(f"threads must be >= 0, got {threads}")
        self.workers = int(workers)
        self.given_threads = int(threads)
        self.threads = self.sizes(self.workers)[1]

    def sizes(self, groups: int, scope: Optional[int] = None) -> tuple[int, int]:
        """``(processes, threads of each)`` that a call with ``groups`` groups of folds to run starts, where ``scope``
        is the run's groups in all: those to run, those finished before (a resume) and those a ``max_folds`` cut
        leaves for later (None: ``groups``). It starts min(workers, groups) processes (at least 1), each with
        ``threads`` or else max(1, usable CPUs // min(workers, scope)) threads (:func:`icegan.environment.usable_cpus`),
        so that a resume, or a ``max_folds`` run extended later, trains with the uninterrupted run's threads: 16
        workers asked for a run of 2 groups on 16 CPUs start 2 processes of 8 threads, not 2 of 1; 4 workers with 2
        groups left of 10 start 2 processes of 4 threads, as the uninterrupted run's 4 processes had (not 2 of 8:
        other scores)."""
        from icegan.environment import usable_cpus
        started = max(1, min(self.workers, groups))
        sharing = max(1, min(self.workers, groups if scope is None else scope))
        return started, self.given_threads or max(1, usable_cpus() // sharing)

    def __call__(self, folds_fn: Callable[[list], Any], groups: list[list],
                 scope: Optional[int] = None) -> Iterator[tuple[list, list]]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        if not groups:
            return
        workers, threads = self.sizes(len(groups), scope)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_group_worker, initargs=(folds_fn, threads, os.getpid()))
        try:
            with _sigint_ignored():     # the workers start (on submit) ignoring Ctrl-C: a terminal's Ctrl-C reaches
                futures = {pool.submit(_run_group_task, [_strip(f) for f in g]): g for g in groups}   # the parent only
            broken = []                 # a worker died: the pool gives up every group not finished
            for fut in as_completed(futures):
                if isinstance(fut.exception(), BrokenProcessPool):
                    broken.append(futures[fut])
                    continue
                with fold_named_in_errors(futures[fut]):    # the worker's exception, as the parent receives it
                    results, extra = fut.result()
                if extra is not None and hasattr(folds_fn, "merge_report"):
                    folds_fn.merge_report(futures[fut], extra)
                yield futures[fut], results
            if broken:
                raise WorkerDiedError(_worker_died_message(sorted(broken, key=lambda g: g[0].index)))
        except BaseException:           # Ctrl-C, a failed group, or the consumer gone: stop the workers now
            workers = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for w in workers:           # SIGTERM: a group in progress is dropped; finished folds are recorded
                w.terminate()
            for w in workers:           # reaped, and the pool's threads and queues closed, before the error goes on
                w.join(timeout=10)
                if w.is_alive():        # a worker stuck in a call that SIGTERM does not interrupt
                    w.kill()
                    w.join()
            pool.shutdown(wait=True)
            raise
        pool.shutdown(wait=True)


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore SIGINT in this process for the block (processes started in it inherit that), then restore the handler;
    a no-op outside the main thread, where handlers cannot be set."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class RayExecutor:
    """Run LOSO folds as Ray tasks (``python train.py --executor ray [--ray-address ADDR]``).

    Args:
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None starts a
            local Ray instance on this machine.
        workers: at most this many folds at once (0 = as many as the cluster's resources allow).
        num_cpus: CPU cores reserved per fold task (also its torch thread count unless ``threads``).
        num_gpus: GPUs per fold task; None → 1 when the cluster has GPUs, else 0.
        threads: torch threads inside each task (0 → ``num_cpus``).

    The fold function is shipped once (``ray.put``) and must be picklable; its per-fold extras
    (``fold_fn.task_report(fold)``, e.g. the fold's wall time) come back with the scores and are
    merged by ``fold_fn.merge_report(fold, extra)`` on the driver.

    Raises:
        ImportError: ``ray`` is not installed (message says ``pip install 'icegan[ray]'``).
        FoldTooLargeError: (a ValueError; on entering, or before the first fold is submitted) one fold needs more
            CPUs (``num_cpus``, ``--cpus-per-fold``) than the local instance (with ``workers`` 0: the CPUs this
            process may use) or the largest alive node of the cluster (``ray.nodes()``: a task runs on one node) has:
            no fold could ever be scheduled. A cluster with no node with CPUs yet (an autoscaler) is only warned about.
    """

    def __init__(self, address: Optional[str] = None, workers: int = 0, num_cpus: float = 1,
                 num_gpus: Optional[float] = None, threads: int = 0):
        try:
            import ray
        except ImportError:
            raise ImportError("the Ray executor needs the optional 'ray' package: pip install 'icegan[ray]' "
                              "(or -c constraints.txt ray)") from None
        self.ray = ray
        self.address, self.workers = address, int(workers)
        self.num_cpus, self.num_gpus, self.threads = float(num_cpus), num_gpus, int(threads)
        self._started = False

    def __enter__(self) -> "RayExecutor":
        ray = self.ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                                      "configure_logging": False}
            if self.address:
                kwargs["address"] = self.address
            else:
                # a local instance: whole CPUs enough for the workers at once (rounded first: 10 × 0.3 is 3, not
                # 3.0000000000000004), or as many as this process may use (its affinity mask) when workers is 0
                from icegan.environment import usable_cpus
                cpus = math.ceil(round(self.workers * self.num_cpus, 6)) if self.workers else usable_cpus()
                self._refuse_a_fold_larger_than(cpus, "the local Ray instance", ", the CPUs this process may use")
                kwargs["num_cpus"] = cpus
            # the repository must be importable in the workers (editable installs are; a plain checkout too)
            kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(
                p for p in [_repo_root(), os.environ.get("PYTHONPATH", "")] if p)}}
            ray.init(**kwargs)
            self._started = True
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False

    def _refuse_a_fold_larger_than(self, cpus: float, where: str, which: str = "") -> None:
        """Raise :class:`FoldTooLargeError` when one fold task asks for more CPUs (``num_cpus``) than ``where`` has
        (``cpus``, e.g. the largest alive node's CPUs; ``which``, e.g. ``", the CPUs this process may use"``, follows
        the count in the message): Ray would keep every fold pending for ever."""
        if self.num_cpus <= cpus:
            return
        fix = (f"give --cpus-per-fold {cpus:g} or less" if cpus > 0 else "add nodes with CPUs to the cluster")
        raise FoldTooLargeError(f"--cpus-per-fold {self.num_cpus:g} asks for more CPUs per fold than {where} has "
                                f"({cpus:g}{which}): no fold could ever start; {fix}")

    def _check_cluster_cpus(self) -> None:
        """Before the first fold is submitted to a running Ray cluster: Ray places a task on one node, so a fold must
        fit the largest alive node's CPUs (``ray.nodes()``: ``"Alive"``, ``"Resources"["CPU"]``), not the cluster's
        total: :class:`FoldTooLargeError` (:meth:`_refuse_a_fold_larger_than`) when it does not. A cluster with no
        alive node that has CPUs (an autoscaler with no workers up yet) is logged as a warning, not refused: its
        folds wait until such a node joins."""
        largest = max((float(n.get("Resources", {}).get("CPU", 0.0)) for n in self.ray.nodes() if n.get("Alive")),
                      default=0.0)
        where = f"the Ray cluster at {self.address}" if self.address else "the Ray cluster"
        if largest <= 0:
            log.warning("%s has no node with CPUs yet (an autoscaler with no workers up?): the folds wait until a "
                        "node with %g CPUs or more joins", where, self.num_cpus)
            return
        self._refuse_a_fold_larger_than(largest, f"the largest node of {where}")

    def _gpus_per_task(self) -> float:
        if self.num_gpus is not None:
            return float(self.num_gpus)
        return 1.0 if self.ray.cluster_resources().get("GPU", 0) > 0 else 0.0

    def __call__(self, fold_fn: Callable[[Any], Any], folds: list) -> Iterator[tuple[Any, Any]]:
        """Submit the folds (at most ``workers`` in flight) and yield ``(fold, scores)`` as they finish.

        A failing fold raises its error here after the folds finished before it were yielded (and so
        recorded by :func:`icegan.protocol.run_loso`); the folds still running are cancelled. The error is the one
        the fold raised (not Ray's ``RayTaskError``, whose message is the remote traceback), or Ray's own (a worker
        that crashed or was killed: ``WorkerCrashedError``), with a note naming the fold
        (:func:`name_fold_in_error`).
        """
        ray = self.ray
        if not ray.is_initialized():
            with self:
                yield from self(fold_fn, folds)
            return
        self._check_cluster_cpus()
        threads = self.threads or max(1, int(self.num_cpus))
        task = ray.remote(num_cpus=self.num_cpus, num_gpus=self._gpus_per_task(), max_retries=0)(_run_fold_task)
        fn_ref = ray.put(fold_fn)
        by_index = {f.index: f for f in folds}
        pending = list(folds)
        running: dict[Any, Any] = {}
        limit = self.workers if self.workers > 0 else len(folds)
        try:
            while pending or running:
                while pending and len(running) < limit:
                    f = pending.pop(0)
                    running[task.remote(fn_ref, _strip(f), threads)] = f.index
                done, _ = ray.wait(list(running), num_returns=1)
                ref = done[0]
                fold = by_index[running.pop(ref)]
                with fold_named_in_errors(fold):        # also a crashed worker (WorkerCrashedError) names its fold
                    scores, extra = _task_result(ray, ref)
                if extra is not None and hasattr(fold_fn, "merge_report"):
                    fold_fn.merge_report(fold, extra)
                yield fold, scores
        finally:
            for ref in running:
                ray.cancel(ref, force=True)


def _task_result(ray, ref):
    """``ray.get(ref)``, a task's own exception raised as itself: Ray raises it inside a ``RayTaskError`` of the
    exception's class whose ``str`` is the remote traceback (coloured, many lines), where a command prints one line;
    the task's exception (``cause``, with its notes, e.g. the fold's) is raised instead, from the Ray error (the
    remote traceback stays in the chain of an uncaught error)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, Exception):
            raise
        raise cause from exc


def _repo_root() -> str:
    from pathlib import Path
    return str(Path(__file__).resolve().parents[1])
