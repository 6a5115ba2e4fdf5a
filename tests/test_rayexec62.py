"""Ray executor sizing (audit 62): a local Ray instance has whole CPUs enough for ``workers`` folds of ``num_cpus``
each, a fold that could never be scheduled is refused before anything is submitted; and the allocator's switch-off
variable is read whatever its case. No real ``ray``: the fake of tests/test_executors.py stands in."""
from __future__ import annotations

import sys

import pytest

from icegan.executors import RayExecutor
from test_environment import _FakeLibc
from test_executors import _FakeRay, _folds, _Reported


class _SizedRay(_FakeRay):
    """The fake Ray whose ``cluster_resources`` reports the CPUs of the instance ``init`` started (``num_cpus``), or
    ``cpus`` for a cluster that was joined (``address``) or was already running."""

    def __init__(self, initialized: bool = False, cpus: float = 4.0):
        super().__init__(initialized=initialized)
        self.cpus = cpus

    def cluster_resources(self):
        local = (self.init_kwargs or {}).get("num_cpus")
        return {"CPU": float(self.cpus if local is None else local), "GPU": 0.0}


@pytest.fixture
def sized_ray(monkeypatch):
    import icegan.environment

    def install(**kw):
        fake = _SizedRay(**kw)
        monkeypatch.setitem(sys.modules, "ray", fake)
        return fake
    monkeypatch.setattr(icegan.environment, "limit_threads", lambda n: None)    # the tasks run in this process
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 2)           # a 2-CPU machine
    return install


@pytest.mark.parametrize("workers, cpus, instance", [
    (1, 1.5, 2),        # int(1.5) = 1 CPU: the 1.5-CPU fold never started
    (3, 0.5, 2),        # int(1.5) = 1 CPU: 2 of the 3 workers at once
    (2, 1.5, 3),
    (2, 1, 2),
    (10, 0.3, 3),       # 10 × 0.3 is 3.0000000000000004 in floats: still 3 CPUs
    (0, 1.5, 2),        # workers 0: the CPUs this process may use
    (0, 2, 2),
])
def test_a_local_instance_has_whole_cpus_for_all_workers(sized_ray, workers, cpus, instance):
    fake = sized_ray()
    assert [s for _, s in RayExecutor(workers=workers, num_cpus=cpus)(_Reported(), _folds(4))] == [0, 10, 20, 30]
    assert fake.init_kwargs["num_cpus"] == instance and isinstance(fake.init_kwargs["num_cpus"], int)
    assert instance >= cpus and (workers == 0 or instance >= workers * cpus - 1e-9)
    assert fake.options["num_cpus"] == float(cpus) and fake.shutdowns == 1


def test_a_fold_larger_than_the_local_machine_is_refused_before_ray_starts(sized_ray):
    """--cpus-per-fold 3 on a 2-CPU machine (workers 0: an instance of the usable CPUs) hung for ever."""
    fake = sized_ray()
    with pytest.raises(ValueError) as exc:
        list(RayExecutor(workers=0, num_cpus=3)(_Reported(), _folds(2)))
    assert str(exc.value) == ("--cpus-per-fold 3 asks for more CPUs per fold than the local Ray instance has (2, the "
                              "CPUs this process may use): no fold could ever start; give --cpus-per-fold 2 or less")
    assert fake.init_kwargs is None and fake.tasks == []


@pytest.mark.parametrize("joined", [True, False])
def test_a_fold_larger_than_the_cluster_is_refused_before_any_task(sized_ray, joined):
    """A cluster of 4 CPUs and 6 CPUs per fold: refused before a task is submitted (the instance this executor joined
    is left again); 4 per fold runs."""
    fake = sized_ray(initialized=not joined, cpus=4.0)
    ex = RayExecutor(address="ray://head:10001" if joined else None, workers=1, num_cpus=6)
    with pytest.raises(ValueError) as exc:
        list(ex(_Reported(), _folds(2)))
    where = "the largest node of the Ray cluster" + (" at ray://head:10001" if joined else "")
    assert str(exc.value) == (f"--cpus-per-fold 6 asks for more CPUs per fold than {where} has (4): no fold could "
                              "ever start; give --cpus-per-fold 4 or less")
    assert fake.tasks == [] and fake.shutdowns == int(joined)
    fake = sized_ray(initialized=True, cpus=4.0)
    assert [s for _, s in RayExecutor(workers=1, num_cpus=4)(_Reported(), _folds(2))] == [0, 10]


def test_train_py_prints_a_fold_too_large_for_ray_as_one_line(sized_ray, tmp_path, capsys):
    """``train.py --executor ray --cpus-per-fold 3`` on 2 CPUs: exit 2 with the refusal as one line (it ended in a
    traceback), before any fold or run folder."""
    from icegan.pipeline import main
    fake = sized_ray()
    out = tmp_path / "run"
    assert main(["--executor", "ray", "--cpus-per-fold", "3", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "train.py: error: --cpus-per-fold 3 asks for more CPUs per fold than the local Ray instance has (2, the CPUs "
        "this process may use): no fold could ever start; give --cpus-per-fold 2 or less"]
    assert fake.init_kwargs is None and fake.tasks == [] and not out.exists()


# ------------------------------------------------------------------ ICEGAN_RETAIN_FREED_MEMORY

@pytest.mark.parametrize("value", ["False", "OFF", "off", " No ", "FALSE", "0"])
def test_retain_freed_memory_is_switched_off_whatever_the_case(monkeypatch, value):
    import ctypes

    import icegan.allocator as alloc
    libc = _FakeLibc()
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: libc)
    monkeypatch.setattr(alloc, "_applied", False)
    monkeypatch.setenv(alloc.ENV_VAR, value)
    assert alloc.retain_freed_memory() is False and not alloc.retaining() and libc.calls == []


@pytest.mark.parametrize("value", ["1", "on", "TRUE", "yes", ""])
def test_retain_freed_memory_stays_on_for_other_values(monkeypatch, value):
    import ctypes

    import icegan.allocator as alloc
    libc = _FakeLibc()
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: libc)
    monkeypatch.setattr(alloc, "_applied", False)
    monkeypatch.setenv(alloc.ENV_VAR, value)
    assert alloc.retain_freed_memory() is True and libc.calls == [(-3, 1 << 30), (-1, (1 << 31) - 1)]
