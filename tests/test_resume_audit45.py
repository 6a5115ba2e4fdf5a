"""Resume audit 45: files left by a kill (SIGKILL, a power cut) while a cache or a resume file was written, and two
runs writing one cache at once. A leftover temporary is removed by the next run once it is stale (its process gone,
over an hour old: :func:`flownet.io.remove_stale`, the rule of icegan prepare's cache folders), two writers never
share a temporary, and a resume file cut short is named and computed again."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
from _kill_while_writing import kill_while_writing


def _dead_pid() -> int:
    """The number of a process that has ended."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(gone.stdout)


def _leftovers(cache: Path) -> dict[str, Path]:
    """Temporaries beside ``cache`` as kills leave them: ``stale`` (its process gone, two hours old, the name the
    writer had before), ``stale_new`` (same, the name write_whole gives now), and three that must stay: ``running``
    (this test's own process), ``recent`` (process gone, a minute old) and ``other`` (another cache's)."""
    dead = _dead_pid()
    names = {"stale": f"{cache.stem}.{dead}.tmp.npz", "stale_new": f"{cache.stem}.{dead}-0a1b2c3d.tmp.npz",
             "running": f"{cache.stem}.{os.getpid()}.tmp.npz", "recent": f"{cache.stem}.{dead}-00ff00ff.tmp.npz",
             "other": f"{cache.stem}x.{dead}.tmp.npz"}
    out = {}
    for what, name in names.items():
        p = cache.parent / name
        p.write_bytes(b"PK\x03\x04 half a cache")
        if what != "recent":
            os.utime(p, (time.time() - 7200,) * 2)
        out[what] = p
    return out


def _only_stale_ones_removed(left: dict[str, Path]) -> bool:
    return [w for w, p in left.items() if p.exists()] == ["running", "recent", "other"]


def test_remove_stale_removes_a_killed_writers_old_temporaries_only(tmp_path):
    """The rule itself: of a process that no longer runs and over STALE_TMP_SECONDS old; a folder too (a prepare's)."""
    from flownet.io import STALE_TMP_SECONDS, remove_stale, remove_stale_temps_of
    cache = tmp_path / "c.npz"
    left = _leftovers(cache)
    assert sorted(p.name for p in remove_stale_temps_of(cache)) == sorted([left["stale"].name, left["stale_new"].name])
    assert _only_stale_ones_removed(left)
    folder = tmp_path / f".tmp-abc-{_dead_pid()}"
    (folder / "sequences").mkdir(parents=True)
    os.utime(folder, (time.time() - 2 * STALE_TMP_SECONDS,) * 2)
    assert remove_stale(tmp_path, r"\.tmp-abc-(?P<pid>\d+)", "a cache") == [folder] and not folder.exists()
    assert remove_stale(tmp_path / "nowhere", r"(?P<pid>\d+)", "a cache") == []


def _faces(tmp_path: Path, n: int = 2) -> pd.DataFrame:
    """``n`` apex faces (random grey 64 x 64 pictures) as a sample table of the MEGC2019 kind."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        p = tmp_path / "faces" / f"f{i}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), rng.integers(0, 256, (64, 64), dtype=np.uint8))
        rows.append({"dataset": "casme2", "subject": f"casme2/s{i}", "clip": f"c{i}", "face_path": str(p)})
    return pd.DataFrame(rows)


def test_the_landmark_cache_removes_a_killed_writers_temporary_when_written_and_when_read(tmp_path, monkeypatch):
    """landmarks_<key>.<pid>.tmp.npz, left by a kill while the landmark cache was written, stayed for good; now the
    next write of the cache removes the stale ones, and so does a later cache hit (the rerun right after the kill
    found it recent and kept it)."""
    import icegan.data.landmarks as landmarks
    from icegan.data.roi import face_landmarks_megc2019, face_paths, files_cache_key
    monkeypatch.setattr(landmarks, "landmarks_in_box", lambda im, box: np.full((68, 2), 3.0, np.float32))
    samples = _faces(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cache = cache_dir / f"landmarks_{files_cache_key(face_paths(samples))}.npz"
    left = _leftovers(cache)
    points, sizes = face_landmarks_megc2019(samples, cache_dir=cache_dir)          # written
    assert cache.is_file() and _only_stale_ones_removed(left)
    left = _leftovers(cache)
    again, again_sizes = face_landmarks_megc2019(samples, cache_dir=cache_dir)     # read
    assert _only_stale_ones_removed(left)
    assert np.array_equal(again, points) and again_sizes.tolist() == sizes.tolist() == [[64, 64]] * 2


def test_the_synthetic_clip_cache_removes_a_killed_writers_temporary_when_written_and_when_read(tmp_path,
                                                                                              monkeypatch):
    """The same for synthetic_<key>.npz, the synthetic AU clips' features."""
    import icegan.data.roi as roi
    from icegan.data.synthetic_features import synthetic_au_features
    samples = _faces(tmp_path, n=1)
    lm = np.stack(np.meshgrid(np.linspace(10, 54, 17), np.linspace(12, 52, 4)), -1).reshape(-1, 2)[:68]
    monkeypatch.setattr(roi, "face_landmarks_megc2019", lambda s, cache_dir=None: (lm[None].astype(np.float32),
                                                                                   np.array([[64, 64]])))
    cache_dir = tmp_path / "cache"
    first = synthetic_au_features(SimpleNamespace(samples=samples), size=32, cache_dir=cache_dir)
    (cache,) = cache_dir.glob("synthetic_*.npz")
    cache.unlink()
    left = _leftovers(cache)
    written = synthetic_au_features(SimpleNamespace(samples=samples), size=32, cache_dir=cache_dir)
    assert cache.is_file() and _only_stale_ones_removed(left)
    left = _leftovers(cache)
    read = synthetic_au_features(SimpleNamespace(samples=samples), size=32, cache_dir=cache_dir)
    assert _only_stale_ones_removed(left)
    assert torch_equal(first.features, written.features) and torch_equal(written.features, read.features)


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def _casme2_like(root: Path) -> Path:
    """A CASME II crop folder of one composite clip (random 48 x 40 grey frames): manifest.csv and sub01/EP01/."""
    rng = np.random.default_rng(1)
    clip = root / "sub01" / "EP01"
    clip.mkdir(parents=True)
    for n in (10, 14):
        cv2.imwrite(str(clip / f"img{n}.jpg"), rng.integers(0, 256, (48, 40), dtype=np.uint8))
    pd.DataFrame([{"subject": "sub01", "filename": "EP01", "class3": "positive", "onset": 10, "apex": 14,
                   "verified": True, "apex_in_folder": True}]).to_csv(root / "manifest.csv", index=False)
    return root


def test_two_runs_writing_the_gan_pairs_cache_at_once_never_share_a_temporary(tmp_path, monkeypatch):
    """The GAN pairs cache was written to a fixed <cache>.tmp.npz: a second run that wrote the same cache meanwhile
    renamed that file, and the first died on its own rename (FileNotFoundError; or renamed the other's half-written
    file into place). Now each run writes a temporary of its own, both finish, the cache reads back whole and no
    temporary is left; a killed run's stale temporary is removed."""
    import icegan.gan.pairs as pairs
    root = _casme2_like(tmp_path / "casme2")
    cache_dir = tmp_path / "cache"
    real_savez = np.savez_compressed
    second: list = []

    def another_run_meanwhile(file, **arrays):
        real_savez(file, **arrays)
        if not second:                     # the second run starts and ends while the first is between its steps
            second.append(None)
            second[0] = pairs.load_casme2_pairs(root, img_size=16, cache_dir=cache_dir)
    monkeypatch.setattr(np, "savez_compressed", another_run_meanwhile)
    first = pairs.load_casme2_pairs(root, img_size=16, cache_dir=cache_dir)
    monkeypatch.setattr(np, "savez_compressed", real_savez)
    (cache,) = cache_dir.glob("gan_pairs_*.npz")
    assert sorted(p.name for p in cache_dir.iterdir()) == [cache.name]
    read = pairs.load_casme2_pairs(root, img_size=16, cache_dir=cache_dir)
    assert np.array_equal(read.apex, first.apex) and np.array_equal(second[0].onset, first.onset)
    assert read.clips == ["sub01/EP01"] and read.labels.tolist() == [1]
    left = _leftovers(cache)
    pairs.load_casme2_pairs(root, img_size=16, cache_dir=cache_dir)
    assert _only_stale_ones_removed(left)


def test_a_kill_while_teacher_metrics_are_written_leaves_no_cut_file(tmp_path, monkeypatch):
    """teacher_metrics.json was written in place: a kill while writing left it cut short, and the resume of the
    student stage died in json.loads. Now it appears only whole (the rerun, still in the teacher stage, writes it)."""
    from test_flow_selfsup import _loop_run
    real_write = kill_while_writing(monkeypatch, "teacher_metrics.json")
    with pytest.raises(KeyboardInterrupt):
        _loop_run(tmp_path, monkeypatch, "train.student_steps=0")
    run = tmp_path / "loop"
    assert not (run / "teacher_metrics.json").exists() and not list(run.glob("teacher_metrics.json*"))
    monkeypatch.setattr(Path, "write_text", real_write)
    res, _ = _loop_run(tmp_path, monkeypatch, "train.student_steps=0")
    assert json.loads((run / "teacher_metrics.json").read_text())["teacher_test"] == res["teacher_test"]


def test_a_cut_teacher_metrics_file_is_named_and_computed_again_on_resume(tmp_path, monkeypatch, capsys):
    """A teacher_metrics.json cut short (a kill of the version that wrote it in place, a disk error) made the resume
    of the student stage die in json.loads (JSONDecodeError, naming no file). Now the file is named, the teacher's
    test metrics and occluded fractions are computed again from teacher.pt (the same values), and the file is
    written whole again; without teacher.pt the resume is refused, saying what to do."""
    from test_flow_selfsup import _loop_run, _Stop
    with pytest.raises(_Stop):
        _loop_run(tmp_path, monkeypatch, stop_at=("student", 1))
    path = tmp_path / "loop" / "teacher_metrics.json"
    whole = json.loads(path.read_text())
    path.write_text(path.read_text()[:40])
    capsys.readouterr()
    res, _ = _loop_run(tmp_path, monkeypatch)
    assert f"{path} cannot be read (JSONDecodeError: " in capsys.readouterr().out
    assert res["teacher_test"] == pytest.approx(whole["teacher_test"])
    assert res["teacher_occ_frac"] == pytest.approx(whole["teacher_occ_frac"])
    assert res["teacher_steps"] == whole["teacher_steps"] == 4 and res["student_steps"] == 4
    assert json.loads(path.read_text())["teacher_test"] == res["teacher_test"]


def test_a_cut_teacher_metrics_file_without_its_teacher_is_refused_naming_both(tmp_path, monkeypatch):
    """Cut short, and teacher.pt gone too: nothing to compute them from; the resume is refused naming both files and
    what to do (it died in json.loads before)."""
    from test_flow_selfsup import _loop_run, _Stop
    with pytest.raises(_Stop):
        _loop_run(tmp_path, monkeypatch, stop_at=("student", 1))
    run = tmp_path / "loop"
    (run / "teacher_metrics.json").write_text("[1, 2")
    (run / "teacher.pt").unlink()
    with pytest.raises(ValueError, match=r"teacher_metrics.json cannot be read .*teacher.pt is missing to compute "
                                         r"them again: remove .*last.pt \(or set train.resume=false\)"):
        _loop_run(tmp_path, monkeypatch)
