"""LOSO resume 57: (1) a finished fold whose predictions.csv row is damaged (an empty or non-number score, a y_pred
outside the class ids) was kept unchecked on resume, so ``icegan ensemble`` refused the run and told the user to rerun
the same command, which kept it again; now the kept rows get ensemble's checks, and a fold with a bad row is trained
again with one warning naming the file, line and cell. (2) Two processes could write one run folder at once (every
clip twice in predictions.csv, both exiting 0); now a run holds ``OUT/.lock`` and a second one is refused."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from test_resume_audit44 import _one_hot_folds

fcntl = pytest.importorskip("fcntl")


def _toy():
    from icegan.data.toy_features import make_toy_features
    return make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)


CFG = {"name": "r", "model": {"name": "one_hot"}}


# ------------------------------------------------------------------------------ (1) a damaged row of a finished fold

@pytest.mark.parametrize("column, cell, why", [
    ("score_positive", "", "'' is not a number"),
    ("score_negative", "abc", "'abc' is not a number"),
    ("score_negative", "nan", "'nan' is not a number"),     # a missing-value cell as written (round 63; was '')
    ("score_negative", "NA", "'NA' is not a number"),
    ("y_pred", "9", "'9' is outside the class ids 0..2"),
    ("y_true", "x", "'x' is not a class id (an integer 0..2)"),
])
def test_a_finished_fold_with_a_damaged_row_is_trained_again_with_one_warning(tmp_path, capsys, column, cell, why):
    """The damaged fold is scored again (only it), the result is the uninterrupted run's, the warning names the
    file, line and column, and icegan ensemble then accepts the run (before: it refused it and the same command kept
    the row again; y_pred 9 ended the resume in a raw ValueError)."""
    from icegan.ensemble import load_member
    from icegan.protocol import run_loso
    toy = _toy()
    out = tmp_path / "r"
    ref = run_loso(toy.samples, _one_hot_folds([]), out, config=CFG, progress=False)
    pred_csv = out / "predictions.csv"
    rows = pd.read_csv(pred_csv, dtype=str, keep_default_na=False)
    rows.loc[2, column] = cell                       # line 4 of the file: the first fold's third clip
    rows.to_csv(pred_csv, index=False)
    capsys.readouterr()
    calls = []
    assert run_loso(toy.samples, _one_hot_folds(calls), out, config=CFG, progress=False) == ref
    assert calls == [0]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert warnings == [f"warning: {pred_csv}, line 4, column {column}: {why}; the fold '{rows['subject'][2]}' is "
                        "scored again (was the file edited?)"]
    _, pred = load_member(out)                       # icegan ensemble accepts the resumed run
    assert len(pred) == len(toy.samples) and pred["y_pred"].dtype == np.int64


def test_a_blank_line_before_a_damaged_row_keeps_the_line_number_right(tmp_path, capsys):
    """The line named is the file's line (a blank line above counts), as icegan ensemble names it."""
    from icegan.protocol import run_loso
    toy = _toy()
    out = tmp_path / "r"
    ref = run_loso(toy.samples, _one_hot_folds([]), out, config=CFG, progress=False)
    pred_csv = out / "predictions.csv"
    lines = pred_csv.read_text().split("\n")
    cells = lines[8].split(",")                       # line 9: the second fold's second clip
    cells[5] = "-1"
    lines[8] = ",".join(cells)
    lines.insert(2, "")                               # a blank line 3: the damaged row is now line 10
    pred_csv.write_text("\n".join(lines))
    capsys.readouterr()
    calls = []
    assert run_loso(toy.samples, _one_hot_folds(calls), out, config=CFG, progress=False) == ref and calls == [1]
    assert f"warning: {pred_csv}, line 10, column y_pred: '-1' is outside" in capsys.readouterr().err


# --------------------------------------------------------------------------------- (2) one run folder, one process

def _hold_lock(path, pid_text=None):
    """A Python process holding an exclusive flock on ``path`` (with its pid, or ``pid_text``, written in it)."""
    code = textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, ({pid_text!r} or str(os.getpid())).encode())
        print("locked", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_on_one_run_folder_is_refused_naming_the_folder_and_pid(tmp_path):
    """Before, both runs wrote predictions.csv (every clip twice) and exited 0. Now the one that finds OUT/.lock held
    stops before touching the folder, naming it and the holder's pid; once that process is gone the run goes on."""
    from icegan.protocol import LosoStateError, run_loso
    toy = _toy()
    out = tmp_path / "r"
    ref = run_loso(toy.samples, _one_hot_folds([]), out, config=CFG, progress=False)
    (out / "predictions.csv").write_text("")          # as if a run were writing it anew
    holder = _hold_lock(out / ".lock")
    try:
        calls = []
        with pytest.raises(LosoStateError) as err:
            run_loso(toy.samples, _one_hot_folds(calls), out, config=CFG, progress=False)
        assert str(out) in str(err.value) and f"pid {holder.pid}" in str(err.value) and calls == []
        assert (out / "predictions.csv").read_text() == ""
    finally:
        holder.kill()
        holder.wait()
    assert run_loso(toy.samples, _one_hot_folds([]), out, config=CFG, progress=False) == ref


def test_a_new_run_folder_is_refused_too_and_a_lock_file_without_a_pid_still_says_what_is_wrong(tmp_path):
    from icegan.protocol import LosoStateError, run_loso
    out = tmp_path / "r"
    out.mkdir()
    holder = _hold_lock(out / ".lock", pid_text=" ")
    try:
        with pytest.raises(LosoStateError, match="another process"):
            run_loso(_toy().samples, _one_hot_folds([]), out, config=CFG, progress=False)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_held_while_the_folds_run_and_released_after_a_finished_or_failed_run(tmp_path):
    """The lock file holds this process's pid; a process may run one folder again after its run ended, normally or
    by an error (the lock is not left behind in a long-lived process, e.g. a suite)."""
    from icegan.protocol import run_loso
    toy = _toy()
    out = tmp_path / "r"
    seen = []
    inner = _one_hot_folds([], stop_at=None)

    def fold_fn(fold):
        fd = os.open(out / ".lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        seen.append((out / ".lock").read_text().strip())
        if fold.index == 1 and len(seen) == 2:
            raise RuntimeError("boom")
        return inner(fold)

    with pytest.raises(RuntimeError, match="boom"):
        run_loso(toy.samples, fold_fn, out, config=CFG, progress=False)
    ref = run_loso(toy.samples, _one_hot_folds([]), tmp_path / "ref", config=CFG, progress=False)
    assert run_loso(toy.samples, fold_fn, out, config=CFG, progress=False) == ref
    assert set(seen) == {str(os.getpid())}
    fd = os.open(out / ".lock", os.O_RDWR)            # released: anyone may take it now
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_icegan_protocol_imports_and_runs_without_fcntl(tmp_path):
    """Where there is no fcntl (Windows) the lock is skipped and the run is made as before."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["fcntl"] = None
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_resume_audit44 import _one_hot_folds
        from icegan.data.toy_features import make_toy_features
        from icegan.protocol import run_loso
        toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
        m = run_loso(toy.samples, _one_hot_folds([]), {str(tmp_path / "r")!r}, config={CFG!r}, progress=False)
        print(m["n_samples"])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == str(len(_toy().samples))


# ------------------------------------------------------- (3) the main job holds its folder from the start (re-entrant)

class _Stop(Exception):
    pass


def _lock_taken_elsewhere(path):
    """Whether a new descriptor (as another process would open) is refused an exclusive flock on ``path``."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_main_job_is_refused_before_any_work_when_another_process_writes_its_folder(tmp_path, monkeypatch):
    """Before, run_main took the lock only inside run_loso: a second process first built its flow, computed every
    flow feature, wrote skipped.csv and replaced the running run's features_real.pt, and only then was refused.
    Now it is refused before building the flow or reading a clip, and leaves the folder as it was."""
    from icegan import pipeline
    from icegan.protocol import LosoStateError
    calls = []

    def record(name):
        def fn(*a, **k):
            calls.append(name)
            raise _Stop(name)
        return fn
    for name in ("build_flow", "load_samples", "_real_features", "write_skipped"):
        monkeypatch.setattr(pipeline, name, record(name))
    out = tmp_path / "run"
    out.mkdir()
    (out / "features_real.pt").write_bytes(b"the running run's")
    holder = _hold_lock(out / ".lock")
    try:
        with pytest.raises(LosoStateError) as err:
            pipeline.run_main(pipeline.load_main_config(None, ["device=cpu"]), out, progress=False)
        assert str(out) in str(err.value) and f"pid {holder.pid}" in str(err.value)
        assert calls == []
        assert sorted(p.name for p in out.iterdir()) == [".lock", "features_real.pt"]
        assert (out / "features_real.pt").read_bytes() == b"the running run's"
    finally:
        holder.kill()
        holder.wait()


def test_the_main_job_holds_its_folder_while_it_reads_the_clips_and_releases_it_after_an_error(tmp_path, monkeypatch):
    from icegan import pipeline
    out = tmp_path / "run"
    out.mkdir()         # a folder made by the run itself and left with only .lock is removed (test_newuser61.py)
    seen = []

    def load_samples(*a, **k):
        seen.append((_lock_taken_elsewhere(out / ".lock"), (out / ".lock").read_text().strip()))
        raise _Stop()
    monkeypatch.setattr(pipeline, "build_flow", lambda *a, **k: None)
    monkeypatch.setattr(pipeline, "load_samples", load_samples)
    with pytest.raises(_Stop):
        pipeline.run_main(pipeline.load_main_config(None, ["device=cpu"]), out, progress=False)
    assert seen == [(True, str(os.getpid()))]
    assert not _lock_taken_elsewhere(out / ".lock")


def test_a_folder_lock_is_re_entrant_in_one_process_and_released_at_the_outermost_exit(tmp_path):
    """A nested hold of a folder this process holds (run_main, then run_loso inside it) is a no-op: before, its
    flock on a second descriptor refused the process itself. Only the outermost exit releases the folder."""
    from icegan.protocol import LOCK_FILE, _RunFolderLock
    out = tmp_path / "r"
    out.mkdir()         # a folder made by the lock and left with only .lock is removed (test_newuser61.py)
    with _RunFolderLock(out) as outer:
        outer.hold()
        with _RunFolderLock(tmp_path / "." / "r") as inner:      # another spelling of the same folder
            inner.hold()
            with _RunFolderLock(out) as innermost:
                innermost.hold()
            assert _lock_taken_elsewhere(out / LOCK_FILE)
        assert _lock_taken_elsewhere(out / LOCK_FILE)           # the nested exits released nothing
        assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not _lock_taken_elsewhere(out / LOCK_FILE)
    with _RunFolderLock(out) as again:                           # and the process may take it again
        again.hold()
        assert _lock_taken_elsewhere(out / LOCK_FILE)
    assert not _lock_taken_elsewhere(out / LOCK_FILE)
