"""The main job under torchrun and across calls (audit 61): a run folder of another run is refused before any of its
files is replaced, and what a rank other than 0 alone raises or sees is still reported."""
from __future__ import annotations

import hashlib

import pytest
from _flow_sizes import save_main_job_weights

from icegan.pipeline import load_main_config, run_main
from icegan.protocol import LosoStateError

TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "data.max_folds=2", "gan.enabled=false",
        "recognizer.epochs=2", "recognizer.batch_size=16", "recognizer.name=ststnet"]


def _md5(path) -> str | None:
    """The file's MD5, or None where it is gone."""
    return hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else None


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=2)


def test_a_refused_out_of_another_run_keeps_its_feature_cache_and_skipped_list(tmp_path, tiny_weights):
    """A finished run's --out reused by a different run (another seed: other synthetic clips) was refused ("holds a
    different LOSO run") only after features_real.pt had been replaced by the new run's maps and skipped.csv
    rewritten (here: removed, the new run skipping none); the folder is now compared before any feature is computed
    or written. (The message names the config key that changed beside the data digest, test_resume63.)"""
    out = tmp_path / "run"
    run_main(load_main_config(None, TINY + [f"flow.weights={tiny_weights}"]), out, progress=False)
    (out / "skipped.csv").write_text("key,reason\ns9/clip,no face found\n")     # as a run on real data leaves it
    before = {name: _md5(out / name) for name in ("features_real.pt", "skipped.csv", "run.json", "config.yaml")}
    with pytest.raises(LosoStateError, match=r"holds a run made with a different config \(.*seed: 0 there, 1 now\) "
                                             r"and its provenance differs in \['data'\]"):
        run_main(load_main_config(None, TINY + [f"flow.weights={tiny_weights}", "seed=1"]), out, progress=False)
    assert {name: _md5(out / name) for name in before} == before


_RANK1_NAN_CLIP = '''
import os, sys
from icegan import pipeline

real = pipeline.compute_flow_features


def nan_clip_on_rank1(*a, **k):
    """The flow of rank 1's share of the clips diverges (a NaN clip), rank 0's does not."""
    if os.environ["RANK"] == "1":
        raise FloatingPointError("the flow of clip s2/c0 is NaN (injected on rank 1)")
    return real(*a, **k)


pipeline.compute_flow_features = nan_clip_on_rank1
sys.exit(pipeline.main(sys.argv[1:]))
'''


def test_an_error_raised_on_rank1_alone_is_printed_by_rank1(tmp_path, tiny_weights):
    """torchrun, 2 processes: a FloatingPointError of rank 1's share of the clips was never printed (rank 1 printed
    nothing, as for the errors every rank raises alike; rank 0 died in its all-gather with gloo's "Connection closed
    by peer"); now rank 1 prints it in one line, prefixed with its rank."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path
    script = tmp_path / "nan_on_rank1.py"
    script.write_text(_RANK1_NAN_CLIP)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(port), str(script), "--out", str(tmp_path / "run"), "--no-progress",
                           *TINY, f"flow.weights={tiny_weights}", "threads=1"],
                          capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    assert done.returncode != 0
    assert ("rank 1: train.py: error: the flow of clip s2/c0 is NaN (injected on rank 1)\n"
            in done.stdout + done.stderr), done.stderr[-3000:]


def test_a_resume_with_another_process_count_warns_naming_its_folds(tmp_path, caplog):
    """A run of 2 torchrun processes killed after its first fold and resumed in one process mixed folds of both
    process counts silently (only another device was warned of); timing.json now records each fold's process count
    and a resume with another count warns, naming the folds."""
    import json
    import logging
    from types import SimpleNamespace

    from icegan.pipeline import _update_timing, _warn_other_world_size
    path = tmp_path / "timing.json"
    _update_timing(path, SimpleNamespace(fold_seconds={"a/s1": 3.0}, fold_peak_rss_mb={}), device="cpu",
                   world_size=2)
    assert json.loads(path.read_text())["fold_world_size"] == {"a/s1": 2}
    with caplog.at_level(logging.WARNING, logger="icegan"):
        _warn_other_world_size(path, 1)
    assert "1 of its 1 finished folds were trained by 2 process(es)" in caplog.text
    assert "a/s1 by 2" in caplog.text and "now by 1" in caplog.text and "torchrun --nproc_per_node 2" in caplog.text
    caplog.clear()
    _update_timing(path, SimpleNamespace(fold_seconds={"a/s2": 3.0}, fold_peak_rss_mb={}), device="cpu",
                   world_size=1)
    assert json.loads(path.read_text())["fold_world_size"] == {"a/s1": 2, "a/s2": 1}
    with caplog.at_level(logging.WARNING, logger="icegan"):
        _warn_other_world_size(path, 2)             # resumed again under torchrun: a/s2 is the other one now
    assert "a/s2 by 1" in caplog.text and "a/s1" not in caplog.text and "one process (no torchrun)" not in caplog.text
    assert "the run already mixes process counts; use another --out or delete the folder" in caplog.text
    caplog.clear()
    older = tmp_path / "older.json"                 # written before the process count was recorded
    older.write_text(json.dumps({"fold_seconds": {"a/s1": 1.0}, "device": "cpu"}))
    with caplog.at_level(logging.WARNING, logger="icegan"):
        _warn_other_world_size(older, 1)
    assert caplog.text == ""


@pytest.mark.parametrize("argv", [["--bogus"], ["seed=1", "seed=2"]], ids=["unknown option", "key twice"])
@pytest.mark.parametrize("entry", ["train.py", "icegan train"])
def test_a_command_line_error_is_printed_by_rank0_alone(monkeypatch, capsys, argv, entry):
    """`torchrun --nproc_per_node 2 -m icegan train --bogus` printed argparse's usage and error once per process
    (README: rank 0 alone reports an error); the other ranks now exit 2 printing nothing."""
    from icegan import cli, pipeline
    for rank in (1, 0):
        for k, v in {"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank),
                     "TORCHELASTIC_RUN_ID": "none"}.items():         # as torchrun sets them
            monkeypatch.setenv(k, v)
        with pytest.raises(SystemExit) as info:
            pipeline.main(argv) if entry == "train.py" else cli.main(["train", *argv])
        err = capsys.readouterr().err
        assert info.value.code == 2
        said = "unrecognized arguments: --bogus" if argv == ["--bogus"] else "config key 'seed' is set twice"
        assert err == "" if rank else (err.startswith("usage: ") and f"train{'.py' * (entry == 'train.py')}: error: "
                                       f"{said}" in err), err
