"""``icegan table --out -`` prints the table (Unix convention: ``-`` is stdout) instead of writing a file named ``-``;
``icegan gan train --fold SUBJECT`` of a subject the data does not have is refused before a run folder is made."""
import os

import pytest

from _runs import finished_run_with_metrics
from icegan.cli import main
from icegan.report import TableEntry, results_table

ROWS = [(f"{ds}/s{i}", f"c{j}", (i + j) % 3, (i + 2 * j) % 3)
        for ds in ("casme2", "samm") for i in range(3) for j in range(3)]


def test_out_dash_prints_the_table_and_writes_no_file(tmp_path, monkeypatch, capsys):
    d = finished_run_with_metrics(tmp_path / "st", ROWS)
    monkeypatch.chdir(tmp_path)
    for fmt, extra in (("markdown", []), ("latex", ["--format", "latex"]), ("csv", ["--format", "csv"])):
        assert main(["table", str(d), "--out", "-", *extra]) == 0
        assert capsys.readouterr().out == results_table([TableEntry("st", [d])], fmt=fmt), fmt
        assert not os.path.exists(tmp_path / "-")



def test_compare_out_dash_prints_through_the_same_emit(tmp_path, monkeypatch, capsys):
    a = finished_run_with_metrics(tmp_path / "a", ROWS)
    b = finished_run_with_metrics(tmp_path / "b", ROWS[::-1])
    monkeypatch.chdir(tmp_path)
    assert main(["compare", f"A={a}", f"B={b}", "--resamples", "100", "--out", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("|") and "| B |" in out and not os.path.exists(tmp_path / "-")

def test_out_dash_is_named_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["table", "--help"])
    assert "'-' prints it" in " ".join(capsys.readouterr().out.split())


def test_gan_train_fold_of_a_subject_the_data_lacks_is_refused_before_a_run_folder(tmp_path, monkeypatch, capsys):
    """Not silent (checked, not a change): --fold sub09 over pairs of sub01 and sub02 is refused, naming the subject
    and those the data has, before the run folder is made; a --fold outside data.train_subjects is a subject the
    GAN does not train on, as asked (train on sub01, evaluate on sub02), and is kept."""
    from types import SimpleNamespace

    from _gan_sizes import fake_casme2_pairs, tiny_gan_train_args
    from icegan.gan import pairs as gan_pairs
    from icegan.gan import trainer
    monkeypatch.setattr(gan_pairs, "load_casme2_pairs", lambda *a, **k: fake_casme2_pairs(4))
    seen = {}

    def train(onset, apex, labels, cfg, **kw):
        seen.update(n=len(onset), holdout=list(cfg.data.holdout_subjects))
        return SimpleNamespace(history=[], epochs_done=0, stopped_by_time=False)
    monkeypatch.setattr(trainer, "train_gan", train)
    assert main(tiny_gan_train_args(tmp_path) + ["--fold", "sub09", "train.epochs=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan gan train: error: subject 'sub09' has no usable pairs; known subjects: ")
    assert "casme2/sub01" in err and "casme2/sub02" in err and not (tmp_path / "t").exists() and not seen
    assert main(tiny_gan_train_args(tmp_path, "data.train_subjects=[sub01]") + ["--fold", "sub02",
                                                                             "train.epochs=1"]) == 0
    assert seen == {"n": 2, "holdout": ["sub02"]}
