"""Re-read q59b's simplifications (items 1, 2, 3, 6, 7), behaviour kept: the fold GAN checkpoint checked in one place
(FoldRunner._gan_resume_point), main_only_check's broadcast a bare flag, one rule for a table entry's folder name,
FoldRunner.fold_dir, and a one-clause mixed-device warning."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from icegan import distributed as D


def _pairs():
    g = torch.Generator().manual_seed(0)
    onset = torch.rand(6, 1, 32, 32, generator=g) * 2 - 1
    return onset, onset.clone(), torch.arange(6) % 3


def _resume_point(tmp_path, payload, epochs=3):
    """FoldRunner._gan_resume_point on a last.pt holding ``payload`` (no run, no models)."""
    from icegan.pipeline import FoldRunner
    gan = tmp_path / "gan"
    (gan / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save(payload, gan / "checkpoints" / "last.pt")
    runner = SimpleNamespace(run_dir=tmp_path)
    gcfg = SimpleNamespace(train=SimpleNamespace(resume=True, epochs=epochs))
    return FoldRunner._gan_resume_point(runner, SimpleNamespace(subject="s01"), gan, gcfg, *_pairs())


def test_gan_resume_point_checks_pairs_and_epochs(tmp_path, caplog):
    from icegan.gan.trainer import GanCheckpointError, training_pairs_sha256
    with pytest.raises(GanCheckpointError, match="other training pairs"):
        _resume_point(tmp_path, {"data_sha256": "0" * 64, "epoch": 1, "history": []})
    with pytest.raises(GanCheckpointError, match="has trained 5 epochs, more than train.epochs=3"):
        _resume_point(tmp_path, {"epoch": 5, "history": []})
    ok = {"data_sha256": training_pairs_sha256(*_pairs()), "epoch": 2, "history": []}
    with caplog.at_level(logging.INFO, logger="icegan"):
        assert _resume_point(tmp_path, ok) == ok
    assert "GAN resumes at epoch 2 of 3" in caplog.text       # the log line still comes before the checks
    import icegan.pipeline as P
    assert not hasattr(P, "_refuse_fold_gan_payload")       # one place checks it


def test_main_only_check_broadcasts_a_flag(monkeypatch):
    sent = []
    monkeypatch.setattr(D, "is_distributed", lambda: True)
    monkeypatch.setattr(D, "rank", lambda: 0)
    monkeypatch.setattr(D, "broadcast_object", lambda obj, src=0: sent.append(obj) or obj)
    assert D.main_only_check(lambda: "x") == "x" and sent == [False]
    sent.clear()
    with pytest.raises(KeyError):
        D.main_only_check(lambda: {}["k"])
    assert sent == [True]


@pytest.mark.parametrize("text, match", [
    ("nothing_here", "'nothing_here' matches no run folder"),
    ("lr=nothing_here", "'nothing_here' matches no run folder"),
    ("=lr", "expected DIR or LABEL=DIR"),
    ("a=b=c", "no split matches"),
])
def test_split_entry_messages_kept(tmp_path, monkeypatch, text, match):
    from icegan.report import _split_entry
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=match):
        _split_entry(text)


def test_split_entry_folder_with_equals_and_label(tmp_path, monkeypatch):
    from icegan.report import _split_entry
    monkeypatch.chdir(tmp_path)
    (tmp_path / "eqdir" / "C=1").mkdir(parents=True)
    (tmp_path / "lr").mkdir()
    assert _split_entry("eqdir/C=1") == (None, "eqdir/C=1", [Path("eqdir/C=1")])
    assert _split_entry("lr") == (None, "lr", [Path("lr")])
    assert _split_entry("LR C=1=lr") == ("LR C=1", "lr", [Path("lr")])


def test_fold_runner_fold_dir(tmp_path):
    from icegan.pipeline import FoldRunner
    runner = SimpleNamespace(run_dir=tmp_path)
    assert FoldRunner.fold_dir(runner, SimpleNamespace(subject="casme2/sub05")) == tmp_path / "folds" / "casme2_sub05"


def test_other_device_warning_is_one_clause(tmp_path, caplog):
    from icegan.pipeline import _warn_other_device
    path = tmp_path / "timing.json"
    path.write_text(json.dumps({"fold_seconds": {"a/s1": 1.0}, "fold_device": {"a/s1": "cuda:0"}}))
    with caplog.at_level(logging.WARNING, logger="icegan"):
        _warn_other_device(path, torch.device("cpu"), "auto")
    text = caplog.records[0].getMessage()
    assert "a/s1 on cuda:0" in text and "delete the folder" in text and "auto picks cuda" in text
    assert text.count("device: auto") == 1 and len(text.split()) < 40, text
