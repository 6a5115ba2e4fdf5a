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
