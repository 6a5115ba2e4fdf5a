"""Determinism audit 61: a parallel LOSO run's predictions.csv is byte-identical to a sequential run's, and the
thread counts that change a GAN's weights or a feature table's maps are recorded."""
import numpy as np
import pytest
from _runs import index_scores, reversed_group_map

from icegan.data.toy_features import make_toy_features
from icegan.protocol import run_loso


def test_a_parallel_run_writes_the_sequential_runs_bytes(tmp_path):
    """Groups that finish in reverse order left predictions.csv listing the folds in that order (the same command
    twice gave different bytes); now the finished file lists them in fold order, byte for byte a sequential run's,
    also when the run was cut short and resumed (y_pred repair and extension keep reading it)."""
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    seq = tmp_path / "seq"
    ref = run_loso(toy.samples, None, seq, folds_fn=index_scores, folds_per_call=1, progress=False)
    want = (seq / "predictions.csv").read_bytes()
    folds = [int(line.split(b",")[0]) for line in want.splitlines()[1:]]
    assert folds == sorted(folds) and len(set(folds)) == 4
    par = tmp_path / "par"
    assert run_loso(toy.samples, None, par, folds_fn=index_scores, folds_per_call=1, group_map=reversed_group_map,
                    progress=False) == ref
    assert (par / "predictions.csv").read_bytes() == want
    # a max_folds=2 run extended to all folds by a parallel run: again the sequential bytes
    ext = tmp_path / "ext"
    run_loso(toy.samples, None, ext, folds_fn=index_scores, folds_per_call=1, group_map=reversed_group_map, max_folds=2,
             progress=False)
    assert run_loso(toy.samples, None, ext, folds_fn=index_scores, folds_per_call=1, group_map=reversed_group_map,
                    progress=False) == ref
    assert (ext / "predictions.csv").read_bytes() == want
    # a file left in arrival order (a run killed before the end) is put in order by the resume that finishes it
    (par / "predictions.csv").write_bytes(want.splitlines(keepends=True)[0]
                                          + b"".join(want.splitlines(keepends=True)[:0:-1]))
    assert run_loso(toy.samples, None, par, folds_fn=index_scores, folds_per_call=1, progress=False) == ref
    assert (par / "predictions.csv").read_bytes() == want


@pytest.fixture
def torch_threads():
    """Set torch's thread count for a test (``torch_threads(n)``); the count before is restored after it."""
    import torch
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_gan_train_records_the_thread_count_it_trained_with(tmp_path, monkeypatch, torch_threads):
    """train.num_threads: null keeps the environment's thread count, which changes the weights in their last bits,
    and no file said which count a run used; now the checkpoint and split.json record it (torch_threads)."""
    import json

    import torch
    from _gan_sizes import fake_casme2_pairs, tiny_gan_train_args

    import icegan.gan.pairs as gp
    from icegan.cli import main
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path / "data"))
    pairs = fake_casme2_pairs(8)
    monkeypatch.setattr(gp, "load_casme2_pairs", lambda *a, **k: pairs)
    for n in (1, 2):
        torch_threads(n)
        out = tmp_path / f"t{n}"
        assert main(tiny_gan_train_args(out, "train.epochs=1", "train.num_threads=null")) == 0
        payload = torch.load(out / "t" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
        assert payload["torch_threads"] == n
        assert json.loads((out / "t" / "split.json").read_text())["torch_threads"] == n
    torch_threads(1)
    out = tmp_path / "t3"                   # a configured count is the one recorded, whatever the environment's
    assert main(tiny_gan_train_args(out, "train.epochs=1", "train.num_threads=3")) == 0
    assert torch.load(out / "t" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)[
        "torch_threads"] == 3
    assert json.loads((out / "t" / "split.json").read_text())["torch_threads"] == 3


def test_features_provenance_records_the_thread_count_and_cpu_level(tmp_path, monkeypatch):
    """icegan features with threads: 0 makes maps that depend on the thread count (~1e-5), and provenance.json did not
    say it; now its environment entry records the threads and the CPU kernel level (the feature cache's key)."""
    import json

    import pandas as pd
    import torch

    from icegan import pipeline
    from icegan.pipeline import Clips, export_features, load_main_config
    rng = np.random.default_rng(0)
    samples = pd.DataFrame({"dataset": "casme2", "subject": ["sub0", "sub1", "sub2"], "clip": ["a", "b", "c"],
                            "label": [0, 1, 2]})
    clips = Clips(samples, *(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8) for _ in range(2)))
    cfg = load_main_config(None, ["flow.method=tvl1", "threads=0"])
    monkeypatch.setattr(pipeline, "load_samples", lambda *a, **k: clips)
    for n in (3, 5):
        monkeypatch.setattr(torch, "get_num_threads", lambda: n)
        export_features(cfg, tmp_path / f"out{n}", progress=False)
        env = json.loads((tmp_path / f"out{n}" / "provenance.json").read_text())["environment"]
        assert env["threads"] == n
        assert env["cpu"] == torch.backends.cpu.get_cpu_capability()
