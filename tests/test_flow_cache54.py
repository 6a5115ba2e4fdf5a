"""The real flow maps shared by the runs of a suite (icegan.pipeline._real_features with shared_dir, given by
icegan.suite.run_suite as <suite>/flow_features): read back only for the same settings, clips and machine, the same
bits as computing them, and a broken file is computed again."""
import json
import logging

import pytest
import torch

from icegan import pipeline
from icegan.pipeline import load_main_config
from icegan.suite import run_suite
from icegan.paths import shipped_config_dir

OVER = ["data.n_subjects=2", "data.clips_per_class=1", "data.img_size=32", "flow.method=farneback",
        "recognizer.input_size=8", "gan.joint=false"]


@pytest.fixture
def counted(monkeypatch):
    """compute_flow_features, with the number of calls counted."""
    calls = []
    real_flow = pipeline.compute_flow_features
    monkeypatch.setattr(pipeline, "compute_flow_features", lambda *a, **kw: (calls.append(1), real_flow(*a, **kw))[1])
    return calls


def _dir(path):
    """A run folder (run_main makes it before the maps are computed)."""
    path.mkdir(parents=True, exist_ok=True)
    return path


def _setup(over=()):
    cfg = load_main_config(None, [*OVER, *over])
    clips = pipeline.load_samples(cfg, progress=False)
    return cfg, clips, pipeline.build_flow(cfg, torch.device("cpu"))


def test_a_second_run_reads_the_shared_maps_with_the_same_bits(tmp_path, counted):
    """Run a computes the maps and writes them into the shared folder; run b (another folder) computes nothing, gets
    the same bits as a run computing them without a shared folder, and keeps its own features_real.pt. Fails if the
    shared folder is not read, or not written."""
    cfg, clips, est = _setup()
    shared = tmp_path / "flow_features"
    a = pipeline._real_features(cfg, clips, est, _dir(tmp_path / "a"), {"data": "x"}, progress=False, shared_dir=shared)
    assert counted == [1] and len(list(shared.glob("*.pt"))) == 1
    b = pipeline._real_features(cfg, clips, est, _dir(tmp_path / "b"), {"data": "x"}, progress=False, shared_dir=shared)
    assert counted == [1] and torch.equal(a, b)
    assert torch.equal(torch.load(tmp_path / "b" / "features_real.pt", weights_only=True)["features"], a)
    fresh = pipeline._real_features(cfg, clips, est, _dir(tmp_path / "c"), {"data": "x"}, progress=False)
    assert counted == [1, 1] and torch.equal(fresh, a)
    # b's own cache is read by b again (a resumed run), without the shared folder
    again = pipeline._real_features(cfg, clips, est, _dir(tmp_path / "b"), {"data": "x"}, progress=False)
    assert counted == [1, 1] and torch.equal(again, a)


def test_shared_maps_are_keyed_by_settings_clips_and_machine(tmp_path, counted, monkeypatch):
    """Another feature size, another clips' digest, or another environment (threads, torch version: what decides the
    bits) computes the maps again. Fails if the shared key leaves out the run's key or the environment."""
    cfg, clips, est = _setup()
    shared = tmp_path / "flow_features"

    def call(run, c=cfg, prov="x"):
        return pipeline._real_features(c, clips, est, _dir(tmp_path / run), {"data": prov}, progress=False,
                                       shared_dir=shared)
    call("a")
    call("b", c=load_main_config(None, [*OVER[:-2], "recognizer.input_size=16", "gan.joint=false"]))
    assert counted == [1, 1]
    call("c", prov="y")
    assert counted == [1, 1, 1]
    env = pipeline._feature_environment(torch.device("cpu"))
    monkeypatch.setattr(pipeline, "_feature_environment",
                        lambda device, precision: {**env, "threads": env["threads"] + 1})
    call("d")
    assert counted == [1, 1, 1, 1] and len(list(shared.glob("*.pt"))) == 4
    monkeypatch.undo()          # the counter too: count again by files
    assert pipeline._feature_environment(torch.device("cpu")) == env


def test_the_environment_names_what_decides_the_bits():
    """The environment key holds the versions, CPU instructions, threads and device of this process."""
    import cv2
    env = pipeline._feature_environment(torch.device("cpu"))
    assert env["torch"] == torch.__version__ and env["cv2"] == cv2.__version__
    assert env["threads"] == torch.get_num_threads() and env["device"] == "cpu" and env["gpu"] is None
    assert env["cpu"] == torch.backends.cpu.get_cpu_capability() and env["processes"] == 1
    assert env["precision"] == "fp32"


def test_precision_auto_is_keyed_by_what_it_resolves_to(tmp_path, counted, monkeypatch):
    """flow.precision=auto runs in bf16 on a CPU with native bf16 kernels and in fp32 elsewhere, which the CPU's
    vector-instruction name does not tell: maps made where auto meant bf16 are not read where it means fp32. Fails if
    the key holds the asked precision instead of the resolved one."""
    import flownet.registry as registry
    cfg, clips, est = _setup(["flow.precision=auto"])
    shared = tmp_path / "flow_features"
    monkeypatch.setattr(registry, "native_bf16", lambda device: True)
    assert pipeline._feature_environment(torch.device("cpu"), "auto")["precision"] == "bf16"
    pipeline._real_features(cfg, clips, est, _dir(tmp_path / "a"), {}, progress=False, shared_dir=shared)
    monkeypatch.setattr(registry, "native_bf16", lambda device: False)
    assert pipeline._feature_environment(torch.device("cpu"), "auto")["precision"] == "fp32"
    pipeline._real_features(cfg, clips, est, _dir(tmp_path / "b"), {}, progress=False, shared_dir=shared)
    assert counted == [1, 1] and len(list(shared.glob("*.pt"))) == 2


def test_two_writers_of_the_shared_file_do_not_collide(tmp_path, monkeypatch):
    """Two suites in one folder may save the same shared maps at the same moment: here a second run saves them while
    the first is writing. Each writes its own temporary file; with one fixed <name>.tmp the second renamed it away
    and the first failed after its flow work (FileNotFoundError)."""
    cfg, clips, est = _setup()
    shared = tmp_path / "flow_features"
    real_save = torch.save
    nested = []

    def save(obj, f, *a, **kw):
        if isinstance(obj, dict) and '"environment"' in str(obj.get("key")) and not nested:
            nested.append(1)            # the other writer, in the middle of this one's write
            pipeline._real_features(cfg, clips, est, _dir(tmp_path / "b"), {}, progress=False, shared_dir=shared)
        return real_save(obj, f, *a, **kw)
    monkeypatch.setattr(torch, "save", save)
    a = pipeline._real_features(cfg, clips, est, _dir(tmp_path / "a"), {}, progress=False, shared_dir=shared)
    assert nested == [1] and [p.name for p in shared.iterdir()] == [next(shared.glob("*.pt")).name]
    monkeypatch.undo()
    assert torch.equal(torch.load(next(shared.glob("*.pt")), weights_only=True)["features"], a)


def test_a_broken_shared_file_is_computed_again(tmp_path, counted, caplog):
    """A shared file cut short (or of another key under the same name) is not read: a warning names it, the maps are
    computed and the file is written whole again."""
    cfg, clips, est = _setup()
    shared = tmp_path / "flow_features"
    a = pipeline._real_features(cfg, clips, est, _dir(tmp_path / "a"), {}, progress=False, shared_dir=shared)
    (f,) = shared.glob("*.pt")
    f.write_bytes(f.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="icegan.pipeline"):
        b = pipeline._real_features(cfg, clips, est, _dir(tmp_path / "b"), {}, progress=False, shared_dir=shared)
    assert counted == [1, 1] and torch.equal(a, b)
    assert any(str(f) in r.getMessage() and "cannot be read" in r.getMessage() for r in caplog.records)
    torch.save({"key": "another", "features": torch.zeros(1)}, f)
    c = pipeline._real_features(cfg, clips, est, _dir(tmp_path / "c"), {}, progress=False, shared_dir=shared)
    assert counted == [1, 1, 1] and torch.equal(a, c)
    assert torch.equal(torch.load(f, weights_only=True)["features"], a)


def test_the_runs_of_a_suite_compute_the_real_maps_once(tmp_path, counted):
    """icegan suite: two train.py recipes that differ only in the recognizer compute the real flow maps once
    (<suite>/flow_features), and the second run's predictions equal those of the same run made by hand. Fails if the
    suite does not give its runs the shared folder."""
    from icegan.pipeline import run_main
    import pandas as pd
    tiny = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "data.max_folds=1",
            "recognizer.batch_size=16", "gan.enabled=false", "gan.joint=false", "flow.method=farneback", "threads=1"]
    demo = shipped_config_dir() / "demo.yaml"
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: t\nseeds: [3]\nruns:\n"
                     f"  - {{label: one, command: train, config: {demo}, overrides: [recognizer.epochs=1, "
                     f"{', '.join(tiny)}]}}\n"
                     f"  - {{label: two, command: train, config: {demo}, overrides: [recognizer.epochs=2, "
                     f"{', '.join(tiny)}]}}\n")
    run_suite(suite, tmp_path / "out", progress=False)
    assert counted == [1] and len(list((tmp_path / "out" / "flow_features").glob("*.pt"))) == 1
    (second,) = [p for p in (tmp_path / "out").iterdir() if p.name.startswith("two")]
    by_hand = run_main(load_main_config(demo, ["seed=3", f"name={second.name}", "recognizer.epochs=2", *tiny]),
                       tmp_path / "hand", progress=False)
    assert counted == [1, 1]
    pd.testing.assert_frame_equal(pd.read_csv(second / "predictions.csv"), pd.read_csv(tmp_path / "hand" /
                                                                                        "predictions.csv"))
    assert json.loads((second / "metrics.json").read_text())["overall"] == by_hand["overall"]
