"""End a preprocessing forkserver or pool worker with the process that started it (:func:`exit_with_parent`)."""
import os
import signal
import threading
import time


def exit_with_parent() -> None:
    """End this process (SIGTERM) when its parent process ends: a prepare killed with SIGKILL runs no cleanup, and
    its forkserver and pool workers lived on for ever, reparented to init. Linux: ``prctl(PR_SET_PDEATHSIG)``
    through ctypes; where that is not available, a daemon thread that polls ``os.getppid()`` each second and exits
    when it changes. A parent already gone when this is called ends this process at once."""
    ppid = os.getppid()
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
