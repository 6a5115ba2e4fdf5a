"""A fake wall clock for tests of time budgets (``train.max_minutes`` and the like)."""
from __future__ import annotations

import types


class FakeClock:
    """A stand-in ``time`` module whose ``time()`` moves only when told (``tick``), in seconds."""

    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now

    def tick(self, seconds):
        self.now += seconds


def fake_clock(monkeypatch, module, **seconds_per_call) -> FakeClock:
    """Give ``module`` a :class:`FakeClock` as its ``time`` and make each named function of it move the clock by the
    given seconds per call before it runs, e.g. ``fake_clock(mp, flow_train, training_loss=1.0,
    save_torch_file=100.0)``: a step takes 1 s, a checkpoint 100 s."""
    clock = FakeClock()
    monkeypatch.setattr(module, "time", types.SimpleNamespace(time=clock.time))
    for name, seconds in seconds_per_call.items():
        real = getattr(module, name)

        def ticking(*a, _real=real, _seconds=seconds, **k):
            clock.tick(_seconds)
            return _real(*a, **k)
        monkeypatch.setattr(module, name, ticking)
    return clock
