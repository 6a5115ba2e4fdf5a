"""Keep freed memory inside the process, so that large per-step temporaries do not page-fault.

glibc's ``malloc`` serves blocks above a (dynamic, at most 32 MB) threshold with ``mmap`` and gives them back to
the kernel with ``munmap`` when they are freed, and trims the top of the heap once more than a threshold is free.
A CPU training step of the grouped LOSO networks allocates and frees tens of 10–60 MB tensors
(:mod:`icegan.models.recognizers`), so every step maps fresh pages and the kernel zero-fills them on first touch:
on a 2-core CPU this was 47 s of system time out of 205 s of CPU in a 20-epoch STSTNet LOSO, and raising both
thresholds (:func:`retain_freed_memory`) cut that run from 111 s to 77 s wall with identical predictions
(``docs/benchmarks.md``, "Speed on this machine"). The price is that the process keeps its peak heap until it
exits (the peak itself does not change). The usual alternative is preloading jemalloc or tcmalloc; this needs no
extra library.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["retain_freed_memory", "retaining", "ENV_VAR"]

#: set to 0 (or false, no, off, in any case) to leave glibc's defaults alone
ENV_VAR = "ICEGAN_RETAIN_FREED_MEMORY"

# mallopt parameter numbers (glibc <malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_applied = False


def retain_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1) -> bool:
    """Raise glibc's mmap and trim thresholds for this process (idempotent).

    Args:
        mmap_threshold: blocks larger than this (bytes) still come from ``mmap`` (default 1 GiB; 32 MiB where
            the C library refuses more).
        trim_threshold: free bytes at the top of the heap before it is returned to the kernel.

    Returns:
        True when the setting is in effect (set now or by an earlier call); False when the C library is not glibc
        (macOS, musl) or ``$ICEGAN_RETAIN_FREED_MEMORY`` is ``0``, ``false``, ``no`` or ``off`` (any case, spaces
        around ignored), in which case nothing changes.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get(ENV_VAR, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # only glibc has both; other libcs keep their own policy
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # glibc 2.36 (these machines) accepts 1 GiB; builds that cap the threshold at 32 MiB refuse it, so fall back on that
    ok = (bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) or bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)))
    ok = ok and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    _applied = ok
    return ok


def retaining() -> bool:
    """Whether :func:`retain_freed_memory` is in effect in this process."""
    return _applied
