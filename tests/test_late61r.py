"""Late review of audit 61 (ranks, process counts, thread counts): the advice of a resume whose folds already mix
torchrun process counts, the wiring of that warning in run_main, the own-share errors forgotten once reported,
argparse errors silenced only under torchrun, and one GAN thread count recorded in split.json and the checkpoint."""
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from _runs import TINY_MAIN_JOB

REPO = Path(__file__).resolve().parents[1]


def _timing(path, **fold_counts):
    """``path``'s timing.json with one finished fold per ``subject=count`` (``a/`` prefixed)."""
    from icegan.pipeline import _update_timing
    for s, n in fold_counts.items():
        _update_timing(path, SimpleNamespace(fold_seconds={f"a/{s}": 1.0}, fold_peak_rss_mb={}), device="cpu",
                       world_size=n)


@pytest.mark.parametrize("counts,now", [({"s1": 2, "s2": 1}, 2), ({"s1": 1, "s2": 2}, 4)], ids=["2 now", "4 now"])
def test_a_folder_that_mixes_counts_advises_no_count(tmp_path, caplog, counts, now):
    """Folds of 2 and 1 processes resumed with 2 advised 'resume with one process' (which mixes counts too), and
    with 4 advised 1; now the warning says the run already mixes process counts and advises another --out or
    deleting the folder."""
    from icegan.pipeline import _warn_other_world_size
    path = tmp_path / "timing.json"
    _timing(path, **counts)
    with caplog.at_level(logging.WARNING, logger="icegan"):
        _warn_other_world_size(path, now)
    assert "already mixes process counts" in caplog.text and "another --out" in caplog.text, caplog.text
    assert "one process (no torchrun)" not in caplog.text and "--nproc_per_node" not in caplog.text, caplog.text


def test_run_main_resume_warns_of_another_process_count_and_records_its_own(tmp_path, caplog, monkeypatch):
    """Deleting run_main's call of _warn_other_world_size, or its world_size= to _update_timing, passed every test:
    a fold recorded as trained by 2 processes, resumed in one, is warned of, and the new fold records 1 as it
    finishes (the resume is cut short after its folds, before run_main's last timing.json update)."""
    import icegan.protocol as protocol
    from icegan.pipeline import load_main_config, run_main
    demo = str(REPO / "configs" / "demo.yaml")
    out = tmp_path / "run"
    run_main(load_main_config(demo, [*TINY_MAIN_JOB, "data.max_folds=1"]), out, progress=False)
    t = json.loads((out / "timing.json").read_text())
    (first,) = t["fold_world_size"]
    t["fold_world_size"][first] = 2
    (out / "timing.json").write_text(json.dumps(t))
    real_loso = protocol.run_loso

    def cut_after_folds(*a, **k):
        real_loso(*a, **k)
        raise KeyboardInterrupt("cut after the folds")
    monkeypatch.setattr(protocol, "run_loso", cut_after_folds)
    with caplog.at_level(logging.WARNING, logger="icegan"), pytest.raises(KeyboardInterrupt):
        run_main(load_main_config(demo, [*TINY_MAIN_JOB, "data.max_folds=2"]), out, progress=False)
    said = [r.getMessage() for r in caplog.records if "process count" in r.getMessage()]
    assert len(said) == 1 and f"{first} by 2" in said[0] and "now by 1" in said[0], said
    counts = json.loads((out / "timing.json").read_text())["fold_world_size"]
    assert len(counts) == 2 and counts[first] == 2 and set(counts.values()) == {1, 2}, counts


def test_say_forgets_the_own_share_errors(tmp_path, monkeypatch, capsys):
    """_SHARE_ERRORS was never cleared (kept every recorded exception and its traceback alive); run_from_args's
    say() clears it once it has printed its line."""
    from icegan import distributed
    from icegan.pipeline import run_from_args
    monkeypatch.setattr(distributed, "_SHARE_ERRORS", [RuntimeError("kept")])
    args = SimpleNamespace(config=str(tmp_path / "missing.yaml"), overrides=[], prog_name="train.py")
    assert run_from_args(args) == 2
    assert "train.py: error: " in capsys.readouterr().err
    assert distributed._SHARE_ERRORS == []


@pytest.mark.parametrize("torchrun", [False, True], ids=["PyTorchJob worker", "torchrun rank 1"])
def test_argparse_errors_are_silenced_only_under_torchrun(monkeypatch, capsys, torchrun):
    """`icegan table --bogus` in a process with RANK=1 and WORLD_SIZE=2 of another launcher (a Kubernetes
    PyTorchJob worker) printed nothing; now only a torchrun rank other than 0 (TORCHELASTIC_RUN_ID set) is silent."""
    from icegan import cli
    for k, v in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(k, v)
    if torchrun:
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    else:
        monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with pytest.raises(SystemExit) as info:
        cli.main(["table", "runs/x", "--bogus"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err == "" if torchrun else "unrecognized arguments: --bogus" in err, err


def test_gan_checkpoint_records_the_thread_count_train_gan_applied(tmp_path):
    """The checkpoint read torch.get_num_threads() at each save, split.json the count before training: a count
    changed during training (here by the extra loss) made them differ; now both record the count train_gan
    applies, read once."""
    from _gan_sizes import tiny_gan_config

    from icegan.gan.trainer import train_gan
    cfg = tiny_gan_config()
    cfg.train.epochs, cfg.train.batch_size, cfg.train.progress, cfg.train.num_threads = 1, 4, False, 2
    torch.manual_seed(0)
    onset, apex = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    before = torch.get_num_threads()

    def extra(g, x_on, z, y, fake):
        torch.set_num_threads(1)            # a library that changes the count mid-training
        return fake.sum() * 0
    try:
        train_gan(onset, apex, torch.tensor([0, 1, 2, 0]), cfg, device="cpu", out_dir=tmp_path, extra_loss_fn=extra)
    finally:
        torch.set_num_threads(before)
    payload = torch.load(tmp_path / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert payload["torch_threads"] == 2
