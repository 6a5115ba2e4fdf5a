"""End a preprocessing forkserver or pool worker with the process that started it (:func:`exit_with_parent`)."""
import os
import signal
import threading
import time


def exit_with_parent(parent_pid: int | None = None) -> None:
    """End this process (SIGTERM) when its parent process ends: a prepare or ``icegan loso`` killed with SIGKILL runs
    no cleanup, and its forkserver and pool workers lived on for ever, reparented to init. Linux:
    ``prctl(PR_SET_PDEATHSIG)`` through ctypes (the signal follows the parent THREAD that started this process: a
    pool started from a thread that ends before its process does loses its workers); where that is not available, a
    daemon thread that polls ``os.getppid()`` each second and exits when it changes.

    Args:
        parent_pid: the pid of the process to follow, as the parent passed it (``os.getpid()`` there): a parent
            already gone when this is called then ends this process at once. None: the parent at the time of the call
            (``os.getppid()``), so a parent that ended before the call is not noticed.
    """
    ppid = os.getppid() if parent_pid is None else parent_pid
    try:
        import ctypes
        ok = ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0) == 0   # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError, TypeError):    # no prctl (not Linux), or no C library to load (Windows)
        ok = False
    if ok:
        if os.getppid() != ppid:                    # the parent ended before prctl: no signal will come
            os._exit(1)
        return

    def watch() -> None:
        while os.getppid() == ppid:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
