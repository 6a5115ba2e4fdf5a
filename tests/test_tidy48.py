"""Small defects closed together: a main-job run whose two subjects would share one fold folder, `icegan data check
--workers -1`, `icegan suite --dry-run --out FILE`, the default of --cpus-per-fold kept in one place, and the bootstrap
bounds of `icegan compare` and icegan.significance in one checker."""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icegan.cli import main

from _one_line_error import one_line_error


def test_main_job_refuses_two_subjects_of_one_fold_folder_before_any_fold(tmp_path, monkeypatch):
    """Clip-list subjects ``x/y_z`` (dataset x) and ``x_y/z`` (dataset x_y) would both write folds/x_y_z (the second
    fold's GAN then refuses the first's checkpoint). The run stops before any fold, naming both subjects, the shared
    folder and the fix; the old message said only to give one person one spelling."""
    from icegan import pipeline, protocol
    from icegan.data.prepare import PrepareError
    subjects = ["x/y_z", "x/y_z", "x_y/z", "x_y/z", "x/w", "x/w"]
    samples = pd.DataFrame({"dataset": [s.split("/")[0] for s in subjects], "subject": subjects,
                            "clip": [f"c{i}" for i in range(len(subjects))], "label": [0, 1, 2, 0, 1, 2]})
    faces = np.zeros((len(subjects), 32, 32), np.uint8)
    monkeypatch.setattr(pipeline, "load_samples", lambda cfg, progress=True: pipeline.Clips(samples, faces, faces))

    def no_fold(*args, **kwargs):
        raise AssertionError("a fold ran")
    monkeypatch.setattr(protocol, "run_loso", no_fold)
    cfg = pipeline.load_main_config(None, ["gan.enabled=false", "flow.method=farneback", "data.img_size=32",
                                           "recognizer.name=logreg"])
    with pytest.raises(PrepareError) as exc:
        pipeline.run_main(cfg, tmp_path / "run", progress=False)
    msg = str(exc.value)
    for part in ("'x/y_z'", "'x_y/z'", "folds/x_y_z", "rename one of them"):
        assert part in msg, msg
    assert not (tmp_path / "run" / "folds").exists()


def test_subjects_without_a_shared_folder_keep_todays_message_and_folds():
    """Two spellings that differ in case or zeros only get no fold-folder note; ids that do not collide give one fold
    each, named as today (``<subject with / as _>``)."""
    from icegan.protocol import make_folds
    with pytest.raises(ValueError) as exc:
        make_folds(["samm/6", "samm/006", "samm/7"])
    assert "folds/" not in str(exc.value) and "rename one of them" in str(exc.value)
    folds = make_folds(["a/b", "a/b", "clips/a_b", "clips/a_b"])
    assert [f.subject.replace("/", "_") for f in folds] == ["a_b", "clips_a_b"]


@pytest.mark.parametrize("value", ["-1", "0"])
def test_data_check_refuses_fewer_than_one_worker(tmp_path, capsys, value):
    """--workers -1 (and 0) was taken as 1 thread without a word."""
    with pytest.raises(SystemExit) as exc:
        main(["data", "check", "--dataset", "casme2", "--root", str(tmp_path), "--workers", value])
    assert exc.value.code == 2
    one_line_error(capsys, "--workers", value, ">= 1")


def test_data_check_threads_type_takes_a_positive_count():
    from icegan.commands.data import _threads
    assert _threads("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="integer"):
        _threads("two")


def _suite(tmp_path):
    """A one-run suite file over the demo features (never trained here: only planned)."""
    configs = Path(__file__).resolve().parent.parent / "configs"
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: toy\nseeds: [0]\nresamples: 100\nruns:\n  - {{label: floor, config: "
                     f"{configs}/demo_features.yaml, overrides: [model.name=logreg, workers=1]}}\n")
    return suite


@pytest.mark.parametrize("below", [False, True])
@pytest.mark.parametrize("dry", [True, False])
def test_suite_refuses_an_out_that_is_a_file_also_in_a_dry_run(tmp_path, capsys, below, dry):
    """`icegan suite --dry-run --out FILE` printed the plan and exited 0, while the run itself failed on FILE."""
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    out = afile / "suite" if below else afile
    assert main(["suite", "--config", str(_suite(tmp_path)), "--out", str(out), "--no-progress",
                 *(["--dry-run"] if dry else [])]) == 2
    err = one_line_error(capsys, "--out", str(afile), "is a file")
    assert "icegan suite: error:" in err
    assert afile.read_text() == "mine"


def test_suite_dry_run_into_a_new_folder_still_plans(tmp_path, capsys):
    assert main(["suite", "--config", str(_suite(tmp_path)), "--out", str(tmp_path / "new"), "--dry-run"]) == 0
    assert "icegan loso" in capsys.readouterr().out
    assert not (tmp_path / "new").exists()


def test_cpus_per_fold_default_is_read_from_one_place(monkeypatch, capsys):
    """The parser's default of --cpus-per-fold and the value run_from_args takes for 'not given' were two literal 1s:
    changing one would have refused every plain sequential run. Both now read CPUS_PER_FOLD_DEFAULT."""
    from icegan.commands import train
    parser = argparse.ArgumentParser()
    train.add_arguments(parser)
    assert parser.parse_args([]).cpus_per_fold == train.CPUS_PER_FOLD_DEFAULT
    monkeypatch.setattr(train, "CPUS_PER_FOLD_DEFAULT", 2)
    from icegan.pipeline import run_from_args
    args = argparse.Namespace(config=None, overrides=[], print_config=False, executor="sequential", workers=0,
                              cpus_per_fold=1, ray_address=None, out=None, no_progress=True, prog_name="icegan train")
    assert run_from_args(args) == 2          # 1 is no longer the default: given, and refused without --executor ray
    one_line_error(capsys, "--cpus-per-fold", "--executor ray")


@pytest.mark.parametrize("flag, value, name", [("--resamples", "99", "--resamples must be >= 100"),
                                               ("--confidence", "0", "--confidence must be in (0, 1), got 0.0")])
def test_compare_and_bootstrap_share_one_checker(tmp_path, capsys, monkeypatch, flag, value, name):
    """`icegan compare` checked the bounds itself; now icegan.significance.check_bootstrap_settings does, naming the
    flag for the command and the argument for the function."""
    from icegan import significance
    calls = []
    real = significance.check_bootstrap_settings

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)
    monkeypatch.setattr(significance, "check_bootstrap_settings", spy)
    assert main(["compare", str(tmp_path / "no_run"), flag, value]) == 2
    one_line_error(capsys, name)
    assert calls and calls[0]["resamples_name"] == "--resamples"


def test_bootstrap_checker_names_what_it_is_told():
    from icegan.significance import MIN_RESAMPLES, check_bootstrap_settings
    check_bootstrap_settings(MIN_RESAMPLES, 0.5)
    check_bootstrap_settings(MIN_RESAMPLES, None)          # confidence not checked
    with pytest.raises(ValueError, match=r"^resamples must be >= 100 .*got 99$"):
        check_bootstrap_settings(99, 0.95)
    with pytest.raises(ValueError, match=r"^level must be in \(0, 1\), got 1$"):
        check_bootstrap_settings(100, 1, confidence_name="level")
    with pytest.raises(ValueError, match=r"^confidence must be in \(0, 1\), got nan$"):
        check_bootstrap_settings(100, float("nan"))


def test_suite_file_resamples_use_the_same_bounds(tmp_path):
    from icegan.suite import load_suite
    suite = _suite(tmp_path)
    suite.write_text(suite.read_text().replace("resamples: 100", "resamples: 99"))
    with pytest.raises(ValueError, match=r"resamples must be >= 100 \(percentile intervals"):
        load_suite(suite)
