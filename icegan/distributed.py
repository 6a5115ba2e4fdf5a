"""Multi-process data parallelism for the main job (``torchrun --nproc_per_node N -m icegan train ...``; in a
checkout ``train.py`` in place of ``-m icegan train``).

Under ``torchrun`` every process runs the same LOSO folds in lockstep; inside a fold each training
step's mini-batch is split over the processes (:func:`shard`), the recognizer is wrapped in
``torch.nn.parallel.DistributedDataParallel`` (:func:`wrap_ddp`) and the two GAN networks, which
are called several times per step (real, fake, counterfactual), average their gradients over the
processes before every optimizer step (:func:`average_gradients`, the same all-reduce DDP performs,
done explicitly). Parameters start identical on every process (same seed, then
:func:`broadcast_module` from rank 0), so every process holds the same model after each step and
predicts the same scores; rank 0 alone writes the run directory (:func:`is_main`).

Backends: NCCL for a run on CUDA (one GPU per process, ``cuda:LOCAL_RANK``), gloo on CPU.
Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every function here is a no-op, so single-process
code paths are unchanged.

What differs from one process (the DDP test states the tolerance): batch-norm statistics are computed
per shard (no SyncBatchNorm), and each shard's weighted loss is normalised by its own weight sum.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

import torch
import torch.distributed as dist

from flownet.user_numbers import read_int

__all__ = ["check_launch", "init_from_env", "is_distributed", "rank", "world_size", "is_main", "shard",
           "wrap_ddp", "average_gradients", "broadcast_module", "broadcast_object", "all_gather_rows",
           "local_device", "shutdown", "split_indices", "params_equal_across_ranks", "average_buffers",
           "collective_device", "main_only_check", "launched_world_size", "launched_rank",
           "launched_local_world_size", "own_share", "raised_in_own_share"]

T = TypeVar("T")


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes outputs (rank 0, or the only process)."""
    return rank() == 0


def launched_world_size() -> int:
    """The process count torchrun launched (its ``WORLD_SIZE``): 1 when unset or empty (a plain ``python`` run), read
    before or without joining a process group. In a launch of several processes, ``RANK`` and ``LOCAL_RANK`` (when
    set) are checked too, so that a command can refuse a broken launch in one line before it starts.

    Raises:
        RuntimeError: ``WORLD_SIZE``, or in a launch of several processes ``RANK`` or ``LOCAL_RANK``, is not an
            integer (:func:`_env_int`).
    """
    ws = _env_int("WORLD_SIZE", 1) if os.environ.get("WORLD_SIZE") else 1
    if ws > 1:
        _env_int("RANK", 0)
        _env_int("LOCAL_RANK", 0)
    return ws


def launched_rank() -> int:
    """This process's rank as torchrun launched it (its ``RANK``), still known after :func:`shutdown`; 0 when not
    launched as one of several processes (``WORLD_SIZE`` unset, empty or 1: a stray ``RANK`` then means nothing).

    Raises:
        RuntimeError: ``WORLD_SIZE`` or, in a launch of several processes, ``RANK`` is not an integer.
    """
    return _env_int("RANK", 0) if launched_world_size() > 1 else 0


def launched_local_world_size() -> int:
    """The processes torchrun launched on this machine (its ``LOCAL_WORLD_SIZE``; on one machine, its ``WORLD_SIZE``),
    read from the environment: 1 when not launched as one of several processes (:func:`launched_world_size` is 1) or
    when ``LOCAL_WORLD_SIZE`` is unset; never below 1.

    Raises:
        RuntimeError: ``WORLD_SIZE``, or in a launch of several processes ``RANK``, ``LOCAL_RANK`` or
            ``LOCAL_WORLD_SIZE``, is not an integer (:func:`_env_int`).
    """
    if launched_world_size() <= 1:
        return 1
    return max(1, _env_int("LOCAL_WORLD_SIZE", 1))


def check_launch() -> int:
    """:func:`launched_world_size`, and in a launch of several processes the variables torchrun sets for joining the
    process group (``RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) present: a command calls it before it starts, so
    that a broken launch is one line rather than an error from deep in the run (:func:`init_from_env`).

    Returns:
        The process count (1: a plain ``python`` run).

    Raises:
        RuntimeError: a torchrun variable that is not an integer, or ``WORLD_SIZE`` > 1 with one of those three
            missing (not launched by torchrun); the message names them.
    """
    ws = launched_world_size()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ] if ws > 1 else []
    if missing:
        raise RuntimeError(f"WORLD_SIZE={ws} but {missing} are not set: launch with "
                           "`torchrun --nproc_per_node N -m icegan train ...`")
    return ws


def init_from_env(timeout_s: float = 1800.0, device_type: str | None = None) -> bool:
    """Join the process group described by torchrun's environment (``WORLD_SIZE``, ``RANK``, ...).

    ``device_type``: where the run trains (``cuda`` or ``cpu``): NCCL for ``cuda``, gloo otherwise (NCCL cannot
    reduce CPU tensors: ``device=cpu`` on a GPU machine needs gloo); None: NCCL when CUDA is available.

    Returns:
        True when running distributed (``WORLD_SIZE`` > 1), False otherwise (nothing is done; ``WORLD_SIZE`` unset or
        empty is 1).

    Raises:
        RuntimeError: ``WORLD_SIZE`` > 1 but ``MASTER_ADDR``/``RANK`` are missing (not launched by torchrun), or
            ``WORLD_SIZE``, ``RANK`` or ``LOCAL_RANK`` is not an integer (:func:`_env_int`).
    """
    ws = launched_world_size()
    if ws <= 1:
        return False
    if dist.is_initialized():
        return True
    check_launch()
    local_rank = _env_int("LOCAL_RANK", 0)
    from datetime import timedelta
    cuda = torch.cuda.is_available() if device_type is None else device_type == "cuda"
    backend = "nccl" if cuda else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return True


def shutdown() -> None:
    """Leave the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(requested: torch.device) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` when distributed on CUDA (``LOCAL_RANK`` unset: 0), else
    ``requested``.

    Raises:
        RuntimeError: ``LOCAL_RANK`` is not an integer (:func:`_env_int`).
    """
    if is_distributed() and requested.type == "cuda":
        return torch.device("cuda", _env_int("LOCAL_RANK", 0))
    return requested


def _env_int(name: str, default: int) -> int:
    """The integer in torchrun's environment variable ``name`` (ASCII digits, an optional sign, blanks ignored:
    :func:`flownet.user_numbers.read_int`), ``default`` when it is unset.

    Raises:
        RuntimeError: any other value (``abc``, ``1.0``, ``''``), naming the variable and its value.
    """
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return read_int(text)
    except ValueError:
        raise RuntimeError(f"{name}={text!r} is not an integer: torchrun sets it; unset it for a single-process "
                           "run") from None


def shard(idx: torch.Tensor) -> torch.Tensor:
    """This process's part of a mini-batch of sample indices: ``idx[rank::world_size]``.

    Every process draws the same permutation (same seed), so the shards of one step are disjoint and
    together are the whole batch. A batch of fewer than ``2 * world_size`` rows is not split: every process takes
    all of it (the averaged gradient is the same), so no process is left with an empty batch or with a batch of one
    row, on which a training-mode BatchNorm fails ("Expected more than 1 value per channel when training"); a batch
    that is split gives every process at least 2 rows. Without ``torchrun`` ``idx`` itself is returned.

    Args:
        idx: (B,) row numbers of one step's batch, the same on every process.

    Returns:
        (B_local,) this process's rows, in batch order (``idx`` itself when not split).
    """
    if not is_distributed() or len(idx) < 2 * world_size():
        return idx
    return idx[rank()::world_size()]


def wrap_ddp(model: torch.nn.Module, device: Optional[torch.device] = None) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model`` itself.

    Parameters and buffers are broadcast from rank 0 at wrapping time (DDP does this). DDP's "Grad strides do not
    match bucket view strides" warning is silenced: the recognizers' channels_last CPU inputs give the gradient of a
    1×1 convolution's weight (Off-TANet's attention) strides that differ from the bucket view's only in dimensions of
    size 1, the same memory layout, so no copy is made and the warning says nothing (pytorch/pytorch#47163).
    """
    if not is_distributed():
        return model
    import warnings
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    from torch.nn.parallel import DistributedDataParallel as DDP
    if device is not None and device.type == "cuda":
        return DDP(model, device_ids=[device.index])
    return DDP(model)


def average_gradients(module: torch.nn.Module) -> None:
    """All-reduce (mean) the ``.grad`` of every parameter that has one, in one flat buffer.

    Call between ``backward()`` and ``optimizer.step()``; a no-op when not distributed. Parameters
    without a gradient on this step are left alone (the same set on every process, since all run
    the same code path).
    """
    if not is_distributed():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    off = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[off:off + n].view_as(g))
        off += n


def average_buffers(module: torch.nn.Module) -> None:
    """All-reduce (mean) the floating-point buffers (batch-norm running statistics) of ``module``.

    DDP keeps buffers in step by broadcasting rank 0's before each forward, so after the last step
    each process holds running statistics of its own shard; averaging them before any evaluation
    gives every process the same model (and a statistic of the whole batch). No-op when not distributed.
    """
    if not is_distributed():
        return
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b.data, op=dist.ReduceOp.SUM)
            b.data /= world_size()


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy parameters and buffers of rank ``src`` to every process (no-op when not distributed)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every process (picklable objects; identity when not distributed)."""
    if not is_distributed():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src)
    return box[0]


def main_only_check(check: Callable[[], T]) -> Optional[T]:
    """Run ``check`` on rank 0 alone (a check of what only rank 0 reads or holds: the run folder's lock, another
    run's files in it, a fold's GAN checkpoint), then tell every process whether it failed, so that a refusal on rank
    0 stops every process cleanly instead of leaving the others to die in their next collective with gloo's
    "Connection closed by peer" traceback. Every process must call it at the same point (it is a collective). Without
    ``torchrun`` it is ``check()``.

    Returns:
        ``check()``'s value on rank 0 (and in a single process); None on the other ranks.

    Raises:
        Exception: on rank 0 (and in a single process), whatever ``check`` raised, after the broadcast: the caller
            reports it once, in one line.
        SystemExit: (code 2, nothing printed) on the other ranks when rank 0's check raised; rank 0 reports it.
    """
    if not is_distributed():
        return check()
    if is_main():
        try:
            result = check()
        except Exception:
            broadcast_object(True)          # failed: the other ranks leave
            raise
        broadcast_object(False)
        return result
    if broadcast_object(None):
        raise SystemExit(2)
    return None


#: the exceptions raised in :func:`own_share` under torchrun (a process records the few it raises, then ends)
_SHARE_ERRORS: list[BaseException] = []


@contextlib.contextmanager
def own_share() -> Iterator[None]:
    """Around the work of this process's own share under ``torchrun`` (the flow of its clips, a fold's training on its
    shard of every batch): an exception raised in it may be this rank's alone (a NaN clip of its share, a non-finite
    loss of its shard), while rank 0, which reports the errors every rank raises alike, dies in its next collective.
    The exception is recorded for :func:`raised_in_own_share` (until :func:`forget_share_errors`) and propagates
    unchanged, so a rank other than 0 prints every error raised in its own share, also one that every rank raised
    alike there: that error is then printed by each rank (rank 0's line, and ``rank N: <line>`` of each other rank).
    Without torchrun nothing is recorded."""
    try:
        yield
    except Exception as exc:
        if is_distributed():
            _SHARE_ERRORS.append(exc)
        raise


def raised_in_own_share(exc: BaseException) -> bool:
    """True when ``exc`` (the very object) was raised in :func:`own_share` under ``torchrun``: the rank that raised it
    reports it itself (``rank N: ...``), as rank 0 may never learn of it."""
    return any(exc is e for e in _SHARE_ERRORS)


def forget_share_errors() -> None:
    """Drop the exceptions :func:`own_share` recorded (and the tracebacks they keep alive), once reported."""
    _SHARE_ERRORS.clear()


def all_gather_rows(part: torch.Tensor, index: torch.Tensor, n_total: int) -> torch.Tensor:
    """Assemble a tensor whose rows were computed in pieces on different processes.

    Args:
        part: (n_local, ...) rows computed here, for the global row numbers ``index`` (n_local,).
        n_total: number of rows of the whole tensor.

    Returns:
        (n_total, ...) tensor on CPU with every process's rows in place (``part`` itself when not
        distributed, which requires ``index`` to be ``arange(n_total)``).
    """
    if not is_distributed():
        return part
    pieces: list[Any] = [None] * world_size()
    dist.all_gather_object(pieces, (index.cpu(), part.cpu()))
    out = torch.empty((n_total, *part.shape[1:]), dtype=part.dtype)
    for idx, rows in pieces:
        out[idx] = rows
    return out


def split_indices(n: int) -> torch.Tensor:
    """The row numbers 0..n-1 this process handles when work is split evenly: ``arange(n)[rank::world]``."""
    return torch.arange(n)[rank()::world_size()]


def collective_device() -> torch.device:
    """Where a tensor made for a collective must live: this process's GPU under NCCL (which reduces CUDA tensors
    only), the CPU under gloo or when not distributed."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def params_equal_across_ranks(modules: Iterable[torch.nn.Module]) -> bool:
    """True when every process holds bit-identical parameters and buffers (a check for tests and debugging). The
    flag reduced over the processes lives on :func:`collective_device` (a CPU tensor under NCCL raised)."""
    if not is_distributed():
        return True
    ok = torch.tensor(1, dtype=torch.int32, device=collective_device())
    for m in modules:
        for p in list(m.parameters()) + list(m.buffers()):
            ref = p.detach().clone()
            dist.broadcast(ref, 0)
            if not torch.equal(ref, p.detach()):
                ok.zero_()
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item())
