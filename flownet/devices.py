"""One place where a device name from a config or the command line becomes a ``torch.device``.

A device that this machine does not have is reported here, naming the setting and what exists, instead of as a
driver error from deep inside torch after the data were loaded.
"""
from __future__ import annotations

import torch

__all__ = ["resolve_device", "host_values"]


def resolve_device(device: str | torch.device | None, key: str = "device") -> torch.device:
    """The ``torch.device`` a setting names, checked against this machine.

    Args:
        device: ``auto`` or None (the first CUDA GPU when one is usable, else the CPU), ``cpu``, ``cuda``,
            ``cuda:N``, ``mps``, or a ``torch.device``.
        key: the setting's name, used in error messages (``device``, ``train.device``, ``--device``).

    Returns:
        The device (``cuda`` without an index stays index-free, as torch uses it: the current GPU).

    Raises:
        ValueError: a name torch does not know; ``cuda`` when this torch build has no CUDA or no GPU/driver is
            found; ``cuda:N`` with N not below the number of GPUs; ``mps`` where it is not available. Each message
            names ``key`` and the value to use instead.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{key}={device!r} is not a device name; use auto, cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch build has no CUDA" if torch.version.cuda is None
                   else f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU or driver")
            raise ValueError(f"{key}={device!r} but CUDA is not available here ({why}); use {key}=cpu, or auto to "
                             f"take a GPU only where there is one")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"{key}={device!r} but this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{key}={device!r} but Apple's MPS backend is not available here; use {key}=cpu")
    elif dev.type != "cpu":
        raise ValueError(f"{key}={device!r}: icegan runs on cpu, cuda or mps, not {dev.type}")
    return dev


def host_values(values: dict) -> dict:
    """``values`` with each tensor (one element each, all on one device) replaced by its value as a Python float, read
    in one device-to-host copy (the floats ``float(t)`` gives); other values kept. Same key order."""
    keys = [k for k, v in values.items() if torch.is_tensor(v)]
    if not keys:
        return dict(values)
    read = torch.stack([values[k].detach().reshape(()).double() for k in keys]).cpu().tolist()
    return {**values, **dict(zip(keys, read))}
