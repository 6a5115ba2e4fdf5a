"""torchrun's environment as the main job reads it (icegan.distributed.launched_world_size / launched_rank): a value
that is not an integer is one line naming the variable, before anything starts, and a stray RANK outside a launch of
several processes means nothing (train.py read it with int() after the run had finished and crashed there)."""
from __future__ import annotations

from pathlib import Path

import pytest

from icegan import distributed
from icegan.pipeline import main as train_main

DEMO = str(Path(__file__).resolve().parent.parent / "configs" / "demo.yaml")


@pytest.fixture
def env(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("given,expected", [({}, 1), ({"WORLD_SIZE": ""}, 1), ({"WORLD_SIZE": "1", "RANK": "x"}, 1),
                                            ({"WORLD_SIZE": " 3 ", "RANK": "2", "LOCAL_RANK": "0"}, 3)])
def test_launched_world_size(env, given, expected):
    for k, v in given.items():
        env.setenv(k, v)
    assert distributed.launched_world_size() == expected


@pytest.mark.parametrize("given,bad", [({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc'"),
                                       ({"WORLD_SIZE": "2_0"}, "WORLD_SIZE='2_0'"),
                                       ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK='x'"),
                                       ({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "１"}, "LOCAL_RANK='１'")])
def test_a_broken_launch_names_its_variable(env, given, bad):
    for k, v in given.items():
        env.setenv(k, v)
    with pytest.raises(RuntimeError, match=rf"^{bad} is not an integer: torchrun sets it"):
        distributed.launched_world_size()


@pytest.mark.parametrize("given,expected", [({"RANK": "abc"}, 0), ({"WORLD_SIZE": "1", "RANK": "3"}, 0),
                                            ({"WORLD_SIZE": "4", "RANK": "3"}, 3), ({"WORLD_SIZE": "4"}, 0)])
def test_launched_rank_counts_only_in_a_launch_of_several(env, given, expected):
    for k, v in given.items():
        env.setenv(k, v)
    assert distributed.launched_rank() == expected


@pytest.mark.parametrize("given,bad", [({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc'"),
                                       ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK='x'")])
@pytest.mark.parametrize("executor", [[], ["--executor", "ray"]])
def test_train_py_refuses_a_broken_launch_in_one_line(env, capsys, given, bad, executor):
    """Both paths of the main job: the Ray path read WORLD_SIZE with int() (a traceback), the sequential one raised
    from deep in run_main."""
    for k, v in given.items():
        env.setenv(k, v)
    assert train_main(["--config", DEMO, *executor]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train.py: error: {bad} is not an integer") and "Traceback" not in err


@pytest.mark.parametrize("given, missing", [({"WORLD_SIZE": "2"}, "['RANK', 'MASTER_ADDR', 'MASTER_PORT']"),
                                            ({"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "1"}, "['MASTER_ADDR']")])
def test_train_py_refuses_a_launch_without_torchruns_variables(env, capsys, given, missing):
    """WORLD_SIZE > 1 without the rendezvous variables (not launched by torchrun) raised from deep in run_main, a
    traceback; it is the one line of a broken launch, before anything starts."""
    for k, v in given.items():
        env.setenv(k, v)
    assert train_main(["--config", DEMO]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train.py: error: WORLD_SIZE=2 but {missing} are not set: launch with `torchrun") and \
        "Traceback" not in err


def test_check_launch_of_a_plain_run_and_of_torchrun(env):
    assert distributed.check_launch() == 1
    for k, v in (("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        env.setenv(k, v)
    assert distributed.check_launch() == 2
