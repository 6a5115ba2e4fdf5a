"""Review 60 (run folders): a run folder whose config.yaml is lost is not resumed with another config, a suite's
folder is no ``icegan loso --out``, an unreadable run.json is no whole run in ``icegan table``, a hand-edited y_pred
is scored again on resume, a full disk names the folder, and ``icegan compare`` names itself."""
import pytest
from _runs import centroid_fold_fn

from icegan.data.toy_features import make_toy_features
from icegan.protocol import LosoStateError, run_loso


@pytest.fixture(scope="module")
def toy():
    """The toy feature set of 4 subjects (2 per dataset, 2 clips per class): 4 CDE folds."""
    return make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)


def test_a_run_without_its_config_yaml_is_not_resumed(toy, tmp_path):
    """A run folder with finished folds in predictions.csv but no config.yaml (lost, or not copied along) cannot
    vouch that the run asked for is its run: the resume is refused as for a damaged config.yaml (before, it resumed
    with any config, and the config.yaml written then claimed the new config for the old folds too). A folder with
    run.json but no finished fold (killed between writing run.json and config.yaml) starts."""
    out = tmp_path / "r"
    run_loso(toy.samples, centroid_fold_fn(toy, []), out, config={"model": "centroid", "C": 1}, max_folds=2,
             progress=False)
    (out / "config.yaml").unlink()
    calls = []
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, centroid_fold_fn(toy, calls), out, config={"model": "centroid", "C": 0.0001},
                 progress=False)
    assert str(exc.value) == (
        f"{out / 'config.yaml'}: missing, while {out / 'predictions.csv'} holds 2 finished fold(s), so they cannot be "
        "checked against the run asked for: use another --out, or delete that folder (or put back its config.yaml)")
    assert calls == [] and not (out / "config.yaml").exists()
    (out / "predictions.csv").unlink()               # nothing finished: the run starts
    run_loso(toy.samples, centroid_fold_fn(toy, calls), out, config={"model": "centroid", "C": 0.0001},
             progress=False)
    assert len(calls) == 4 and "C: 0.0001" in (out / "config.yaml").read_text()


def _tiny_suite(tmp_path):
    """A suite file of one logistic-regression run on the toy features, and its overrides (3 folds, one thread)."""
    from pathlib import Path
    configs = Path(__file__).resolve().parent.parent / "configs"
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: toy\nseeds: [0]\nresamples: 100\nruns:\n  - {{label: floor, config: "
                     f"{configs}/demo_features.yaml, overrides: [model.name=logreg, workers=1]}}\n")
    return suite, ["threads=1", "max_folds=3"]


def test_a_suites_folder_is_no_run_folder(toy, tmp_path, monkeypatch):
    """``icegan loso --out SUITE_FOLDER`` wrote its run into the suite's folder, whose next resume then refused it
    (a suite's --out must hold no run header). The suite marks its folder with suite_times.json as soon as it makes
    it (a suite killed in its first run included), and a run of any kind refuses a folder that holds it."""
    import io

    from icegan.paths import run_folder_conflict
    from icegan.suite import run_suite
    suite, over = _tiny_suite(tmp_path)
    out = tmp_path / "out"
    monkeypatch.setattr("icegan.commands.loso.run", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, out, over, progress=False, log=io.StringIO())
    monkeypatch.undo()
    assert (out / "suite_times.json").is_file()
    why = (f"{out} holds suite_times.json: it is the folder of a suite (icegan suite: a folder per run and its "
           "results page), not one run's; give this run its own --out")
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, centroid_fold_fn(toy, []), out, config={"model": "centroid"}, progress=False)
    assert str(exc.value) == why and not (out / "run.json").exists()
    for header in ("ensemble.json", "selection.json", "merged.json"):
        assert run_folder_conflict(out, header) == why
    run_suite(suite, out, over, progress=False, log=io.StringIO())       # the suite resumes into it
    assert "floor" in (out / "results.md").read_text()
    with pytest.raises(LosoStateError):
        run_loso(toy.samples, centroid_fold_fn(toy, []), out, config={"model": "centroid"}, progress=False)


def test_table_refuses_a_run_json_cut_short_as_compare_does(toy, tmp_path, capsys):
    """A max_folds run (2 of 4 folds) whose run.json is cut short was listed by ``icegan table`` as a whole run (no
    [PARTIAL] tag: its header could not be read), while ``icegan compare`` refused it; now both refuse it with one
    message naming the file."""
    from icegan.cli import main
    run = tmp_path / "r"
    run_loso(toy.samples, centroid_fold_fn(toy, []), run, config={"model": "centroid"}, max_folds=2, progress=False)
    assert main(["table", str(run)]) == 0 and "[PARTIAL: 2 of 4 folds]" in capsys.readouterr().out
    header = run / "run.json"
    header.write_text(header.read_text()[:40])
    errors = []
    for command in (["table", str(run)], ["compare", str(run), "--resamples", "100"]):
        assert main(command) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1
        errors.append(err.split(": error: ", 1)[1])
    assert errors[0] == errors[1]
    assert errors[0].startswith(f"{header}: cannot be read as JSON (") and errors[0].endswith(
        "it looks damaged or incomplete (was the run killed while writing it?): rerun that run into a fresh --out "
        "folder\n")


def test_a_run_json_that_is_no_object_is_refused_even_when_read_first_as_any_json(toy, tmp_path):
    """Inside a reading_configs block a header is parsed once and shared: read first by _parsed_json (any JSON value,
    as the partial tag reads it), a run.json holding a list was handed to _load's check as if read_run_json had
    accepted it, and the run passed as one with no header. Now _load refuses it as read_run_json does, naming the
    file, whichever read came first."""
    from icegan.report import _load, _parsed_json, reading_configs
    run = tmp_path / "r"
    run_loso(toy.samples, centroid_fold_fn(toy, []), run, config={"model": "centroid"}, max_folds=2, progress=False)
    header = run / "run.json"
    header.write_text("[1, 2]")
    want = rf"{header}: not a JSON object \(got a list\)"
    with pytest.raises(ValueError, match=want):
        _load(run)
    with reading_configs():
        assert _parsed_json(header) == [1, 2]
        with pytest.raises(ValueError, match=want):
            _load(run)


def test_a_y_pred_that_is_not_its_rows_top_score_is_scored_again(toy, tmp_path, capsys):
    """A hand-edited y_pred (not the class of its row's highest score) was kept on resume: metrics.json (icegan
    table) counted the edited class while the scores said another. Now the fold is scored again, with one warning
    naming the file and line, as for the other edited cells; a y_pred whose score ties the row's highest (two equal
    scores, e.g. after the CSV's rounding) is kept."""
    import pandas as pd
    out = tmp_path / "r"
    run_loso(toy.samples, centroid_fold_fn(toy, []), out, config={"model": "centroid"}, max_folds=2, progress=False)
    pred_csv = out / "predictions.csv"
    whole = pred_csv.read_text()
    pred = pd.read_csv(pred_csv)
    scores = ["score_negative", "score_positive", "score_surprise"]
    assert (pred[scores].to_numpy().argmax(1) == pred["y_pred"]).all()
    tied = pred.copy()                  # row 0: another class's score equal to the top one: its y_pred is kept
    top = int(tied.loc[0, "y_pred"])
    tied.loc[0, scores[(top + 1) % 3]] = tied.loc[0, scores[top]]
    tied.to_csv(pred_csv, index=False, float_format="%.9g")
    calls = []
    run_loso(toy.samples, centroid_fold_fn(toy, calls), out, config={"model": "centroid"}, max_folds=2,
             progress=False)
    assert calls == [] and "warning" not in capsys.readouterr().err
    edited = pred.copy()                # the last row (second fold): y_pred turned to a class of a lower score
    last = len(edited) - 1
    y = int(edited.loc[last, "y_pred"])
    edited.loc[last, scores[(y + 1) % 3]] = edited.loc[last, scores[y]] - 1e-3      # a close second, not a tie
    edited.loc[last, "y_pred"] = (y + 1) % 3
    edited.to_csv(pred_csv, index=False, float_format="%.9g")
    run_loso(toy.samples, centroid_fold_fn(toy, calls), out, config={"model": "centroid"}, max_folds=2,
             progress=False)
    second = edited.loc[last, "subject"]
    assert calls == [second] and pred_csv.read_text() == whole
    warnings = [w for w in capsys.readouterr().err.splitlines() if w.startswith("warning")]
    assert warnings == [
        f"warning: {pred_csv}, line {last + 2}, column y_pred: '{(y + 1) % 3}' is not the class of the row's highest "
        f"score ({scores[y]}); the fold '{second}' is scored again (was the file edited?)"]


def test_a_full_disk_that_names_no_file_names_what_was_being_written(tmp_path, capsys, monkeypatch):
    """A full disk raised by a write to an open file names no file (OSError.filename None): the line named no path,
    so which disk to free was left to guess. It names the --out the command writes to and, for a command that can
    also write the data cache (icegan loso: its face and feature caches, often on another disk), that cache: "--out
    X" alone sent the user to free the wrong disk. For icegan table, whose --out is a file and which writes no cache,
    --out alone. An error that names its file is unchanged, and so is one of a command given no --out."""
    import errno

    import icegan.protocol as protocol
    from icegan.cli import main
    from icegan.commands import file_system_error

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(protocol, "write_text_whole", full)
    out = tmp_path / "full" / "x"
    assert main(["loso", "--config", "configs/features_logreg.yaml", "--no-progress", "data.source=toy",
                 "max_folds=1", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"icegan loso: error: No space left on device (writing to --out {out} or the "
                                       "data cache); free space on that disk, or write to another, then run the same "
                                       "command again: the finished folds are kept\n")
    assert file_system_error("table", OSError(errno.ENOSPC, "No space left on device"), "/r/t.md") == 2
    assert capsys.readouterr().err == ("icegan table: error: No space left on device (writing to --out /r/t.md); free "
                                       "space on that disk, or write to another\n")
    assert file_system_error("table", OSError(errno.ENOSPC, "No space left on device", "/r/t.md"), "/r/t.md") == 2
    assert capsys.readouterr().err == ("icegan table: error: No space left on device: /r/t.md; free space on that "
                                       "disk, or write to another\n")
    assert file_system_error("table", OSError(errno.ENOSPC, "No space left on device")) == 2
    assert capsys.readouterr().err == ("icegan table: error: No space left on device; free space on that disk, or "
                                       "write to another\n")


@pytest.mark.parametrize("entry, why", [
    ("{tmp}/nonexist", "'{tmp}/nonexist' matches no run folder"),
    ("=lr", "expected DIR or LABEL=DIR[,DIR...]"),
    ("A=B={tmp}/x=y", "no split matches"),
])
def test_an_entry_that_names_no_run_is_said_of_the_command_that_runs(tmp_path, capsys, entry, why):
    """``icegan compare /nonexist`` said "table entry '/nonexist'": the message names the command that is running
    (compare entry, table entry)."""
    from icegan.cli import main
    entry, why = entry.format(tmp=tmp_path), why.format(tmp=tmp_path)
    for command in ("compare", "table"):
        assert main([command, entry]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"icegan {command}: error: {command} entry '{entry}': {why}"), err
