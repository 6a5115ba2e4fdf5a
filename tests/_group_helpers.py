"""Picklable fold-group functions for the ProcessGroupMap tests, in a module light to import (each spawned worker
imports it)."""
import os
import time


class GroupBoom:
    """A picklable fold-group function that fails on the group holding fold 1."""

    def __call__(self, folds):
        if any(f.index == 1 for f in folds):
            raise ValueError("group with fold 1 broke")
        return [f.index * 10 for f in folds]


class SlowGroup:
    """A picklable fold-group function that records its process id, then works for a minute."""

    def __init__(self, pid_dir: str):
        self.pid_dir = pid_dir

    def __call__(self, folds):
        open(os.path.join(self.pid_dir, str(os.getpid())), "w").close()
        time.sleep(60)
        return [0 for _ in folds]


class SigintState:
    """A picklable fold-group function that returns whether its worker ignores SIGINT."""

    def __call__(self, folds):
        import signal
        return [signal.getsignal(signal.SIGINT) == signal.SIG_IGN for _ in folds]


class GroupKilled:
    """A picklable fold-group function whose worker process is killed (SIGKILL, as the out-of-memory killer does)
    on the group holding fold ``die_on``; the other groups score ``index * 10``."""

    def __init__(self, die_on: int = 1):
        self.die_on = die_on

    def __call__(self, folds):
        import signal
        if any(f.index == self.die_on for f in folds):
            os.kill(os.getpid(), signal.SIGKILL)
        return [f.index * 10 for f in folds]
