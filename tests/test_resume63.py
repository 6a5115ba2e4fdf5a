"""LOSO resume 63: (1) a resume with another data.img_size (so another data digest) was refused blaming the data
("a corrected annotation sheet ...") without naming the config key that changed; now the differing config keys are
named first. (2) A finished fold's score cell 'nan' (or 'NA') was reported as ``''`` (the missing cell masked before
the check); the warning now shows the cell as written (cases of test_resume57's damaged-row test). (3) A resume with gan.enabled=false listed every gan key the
run never read ("gan.skip: 'grm' there, (absent) now, ... and 12 more"); now only the keys whose value changed."""
import pytest
import yaml
from test_resume_audit44 import _one_hot_folds

from icegan.protocol import LosoStateError, _config_conflict, _prepare_dir


# ------------------------------------------------------------------- (1) another data digest with another config

def test_another_data_digest_with_another_config_names_the_config_keys_first(tmp_path):
    """data.img_size 64 → 32 changes the data digest too: the message names data.img_size with both values (and that
    the provenance differs in its data); with the same config, the data message stays."""
    out = tmp_path / "r"
    cfg = {"seed": 0, "data": {"img_size": 64, "labels": "megc2019"}}
    header = {"protocol": "SDE", "folds": ["s1", "s2"], "provenance": {"data": "d1", "weights": "w1"}}
    _prepare_dir(out, header, cfg)
    moved = {**header, "provenance": {"data": "d2", "weights": "w1"}}
    with pytest.raises(LosoStateError) as exc:
        _prepare_dir(out, moved, {"seed": 0, "data": {"img_size": 32, "labels": "megc2019"}}, write=False)
    assert str(exc.value) == (f"{out} holds a run made with a different config ({out / 'config.yaml'}: data.img_size: "
                              "64 there, 32 now) and its provenance differs in ['data']; resuming would mix two "
                              "experiments: use another --out or delete that folder")
    with pytest.raises(LosoStateError) as exc:
        _prepare_dir(out, moved, cfg, write=False)
    assert str(exc.value) == (f"{out} holds a different LOSO run (differs in ['provenance']) (its data d1 vs now d2: the "
                              "clips, their labels or their maps changed, e.g. a corrected annotation sheet or a "
                              "regenerated feature table); use another --out or delete that folder")


# ------------------------------------------------------------------ (3) gan.enabled=false: only the changed keys

def _gan_conflict(tmp_path, old_gan: dict, new_gan: dict) -> str:
    """:func:`_config_conflict` of a folder whose config.yaml has the gan section ``old_gan`` against ``new_gan``."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"seed": 0, "gan": old_gan}, sort_keys=False))
    return _config_conflict(tmp_path, path, {"seed": 0, "gan": new_gan})


GAN = {"enabled": True, "skip": "grm", "epochs": 1, "batch_size": 16, "lr": 0.0002, "joint": False}


def test_a_resume_with_gan_disabled_names_only_the_keys_that_changed(tmp_path):
    """gan.enabled true → false (the other gan keys as they were): only gan.enabled is named, not the keys a run
    without a GAN never reads as "(absent) now"; a key also changed is named with the values both configs hold; and
    the other way round (false → true) too."""
    todo = "; resuming would mix two experiments: use another --out or delete that folder"
    where = tmp_path / "config.yaml"
    off = {**GAN, "enabled": False}
    assert _gan_conflict(tmp_path, GAN, off) == (f"{tmp_path} holds a run made with a different config ({where}: "
                                                 f"gan.enabled: True there, False now){todo}")
    assert _gan_conflict(tmp_path, off, GAN) == (f"{tmp_path} holds a run made with a different config ({where}: "
                                                 f"gan.enabled: False there, True now){todo}")
    assert _gan_conflict(tmp_path, GAN, {**off, "epochs": 7}) == (
        f"{tmp_path} holds a run made with a different config ({where}: gan.enabled: True there, False now, "
        f"gan.epochs: 1 there, 7 now){todo}")
    assert _gan_conflict(tmp_path, off, {**off, "epochs": 7}) == ""     # a key it never read: the same experiment


# ------------------------------------------------------- (4) the fold workers that ran, not the ones asked for

def test_a_pool_with_more_workers_than_groups_starts_one_per_group_with_the_cpus_shared_among_them(monkeypatch):
    """16 workers for 2 groups on 16 CPUs start 2 processes of 8 default threads each (was 2 of 16 // 16 = 1); a
    given thread count stays; the pool is started with those numbers."""
    import concurrent.futures

    import icegan.environment
    from icegan.executors import ProcessGroupMap
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 16)
    assert ProcessGroupMap(16).sizes(2) == (2, 8)
    assert ProcessGroupMap(16).sizes(40) == (16, 1) and ProcessGroupMap(16).threads == 1
    assert ProcessGroupMap(16, threads=3).sizes(2) == (2, 3)
    assert ProcessGroupMap(4).sizes(0) == (1, 16)
    started = {}

    class Started(Exception):
        pass

    def spy(max_workers, mp_context, initializer, initargs):
        started.update(workers=max_workers, threads=initargs[1])
        raise Started
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", spy)
    with pytest.raises(Started):
        next(ProcessGroupMap(16)(sum, [[1], [2]]))
    assert started == {"workers": 2, "threads": 8}


def test_cpu_workers_counts_the_tasks_the_pool_gets(monkeypatch):
    """_cpu_workers with the number of tasks: a ProcessGroupMap's or a local Ray pool's workers capped at it (at
    least 1), the ProcessGroupMap's default threads those of the processes it starts; without it, as given."""
    from types import SimpleNamespace

    import icegan.environment
    from icegan.executors import ProcessGroupMap
    from icegan.protocol import _cpu_workers
    monkeypatch.setattr(icegan.environment, "usable_cpus", lambda: 16)
    assert _cpu_workers(None, ProcessGroupMap(6, threads=1), 2) == (2, 1)
    assert _cpu_workers(None, ProcessGroupMap(16), 2) == (2, 8)
    assert _cpu_workers(None, ProcessGroupMap(16)) == (16, 1)
    ray = SimpleNamespace(workers=4, threads=0, num_cpus=2, address=None)
    assert _cpu_workers(ray, None, 2) == (2, 2) and _cpu_workers(ray, None, 9) == (4, 2)
    assert _cpu_workers(ray, None, 0) == (1, 2) and _cpu_workers(ray, None) == (4, 2)


def test_environment_jsonl_records_the_workers_that_ran_and_an_old_record_still_resumes(tmp_path):
    """A run of 2 fold groups with workers=6 threads=1 records workers 2 (was 6) and the same scores as one process;
    a folder whose environment.jsonl records the uncapped 6 (as before) resumes: nothing is trained again."""
    import json

    from test_resume57 import CFG, _toy

    from icegan.executors import ProcessGroupMap
    from icegan.protocol import run_loso

    class InProcess(ProcessGroupMap):
        """The pool's sizes, its groups trained in this process (no spawned workers in a unit test)."""
        def __call__(self, folds_fn, groups, scope=None):
            for g in groups:
                yield g, folds_fn(g)

    fold_fn = _one_hot_folds([])

    def folds_fn(group):
        return [fold_fn(f) for f in group]
    toy = _toy()
    ref = run_loso(toy.samples, fold_fn, tmp_path / "one", config=CFG, progress=False)
    out = tmp_path / "r"
    n = len(toy.samples["subject"].unique())
    k = (n + 1) // 2                                  # 2 groups
    assert run_loso(toy.samples, None, out, config=CFG, progress=False, folds_fn=folds_fn, folds_per_call=k,
                    group_map=InProcess(6, threads=1)) == ref
    env = out / "environment.jsonl"
    records = [json.loads(line) for line in env.read_text().splitlines()]
    assert (records[-1]["workers"], records[-1]["threads_per_worker"]) == (2, 1)
    env.write_text(json.dumps({**records[-1], "workers": 6}) + "\n")     # as icegan recorded it before
    assert run_loso(toy.samples, None, out, config=CFG, progress=False, folds_fn=folds_fn, folds_per_call=k,
                    group_map=InProcess(6, threads=1)) == ref
    assert json.loads(env.read_text().splitlines()[-1])["workers"] == 1     # nothing left to train
