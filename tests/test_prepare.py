"""``icegan prepare`` (:mod:`icegan.data.prepare`): Ctrl-C with worker processes, unreadable neighbour frames."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import shutil
import sys
import time
from pathlib import Path

import pytest
from _clip_records import constant_clip, grey_frames

REPO = Path(__file__).resolve().parents[1]


def _session(sid: int) -> dict[int, int]:
    """{pid: parent pid} of the live processes of session ``sid`` (Linux /proc)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue                            # gone meanwhile
        if fields[0] != "Z" and int(fields[3]) == sid:
            out[int(stat.parent.name)] = int(fields[1])
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("when", ["forkserver_loading", "workers_running"])
def test_ctrl_c_with_workers_ends_in_one_line(shared_data, tmp_path, when):
    """workers=2, SIGINT while the forkserver loads the face models or once the workers run, to the main process
    then to the whole process group (as ``timeout -s INT`` sends it; a terminal's Ctrl-C goes to the group): the one
    line "icegan prepare: interrupted" (with what is kept), exit code 130, no traceback nor leaked-semaphore warning, no process left."""
    frames = shared_data / "casme2_raw" / "sub01" / "EP02_01f"       # raw 640x480 frames: ~2 s of detection a clip
    for i in range(16):                                  # a folder a clip: a clip list refuses one clip listed twice
        shutil.copytree(frames, tmp_path / f"c{i}")
    clips = tmp_path / "clips.csv"
    clips.write_text("subject,clip,frames,onset,apex,offset\n"
                     + "".join(f"p{i % 2},c{i},{tmp_path / f'c{i}'},46,59,86\n" for i in range(16)))
    cfg = tmp_path / "prepare.yaml"
    cfg.write_text(f"datasets:\n  - name: clips\n    root: {clips}\n    mode: raw\n"
                   f"cache_root: {tmp_path / 'cache'}\nsize: 32\nworkers: 2\nprogress: false\nlandmarks: true\n")
    proc = subprocess.Popen([sys.executable, "-m", "icegan.cli", "prepare", "--config", str(cfg)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            tree = _session(proc.pid)
            if when == "forkserver_loading":
                if any("forkserver" in _cmdline(pid) for pid, ppid in tree.items() if ppid == proc.pid):
                    break
            elif sum(tree.get(ppid) == proc.pid for ppid in tree.values()) >= 2:   # workers: the forkserver's
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"prepare ended before the signal ({when}): {proc.communicate()[1]}"
        time.sleep(0.3 if when == "forkserver_loading" else 1.0)   # inside the model import / the first clips
        os.kill(proc.pid, signal.SIGINT)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == ("icegan prepare: interrupted: the clips prepared so far are kept; run "
                                            "the same command again to prepare only the rest"), err
    assert "Traceback" not in err and "leaked" not in err, err
    assert "prepared" not in out
    deadline = time.time() + 10                                       # workers, forkserver: all gone
    while _session(proc.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not _session(proc.pid)


def test_a_neighbour_pick_that_ignores_unreadable_frames_fails_instead_of_looping(shared_data, tmp_path, monkeypatch):
    """process_clip asks select_neighbours again after each unreadable neighbour; a pick that returns the unreadable
    frame again (a broken select_neighbours) is an error naming the clip and the frame, never an endless loop."""
    from icegan.data import prepare as prep
    src = shared_data / "casme2" / "sub01" / "EP02_01f"                  # onset 46, apex 59
    (tmp_path / "good").mkdir()
    for n in (46, 57, 58, 59, 60, 61):
        (tmp_path / "good" / f"img{n}.jpg").write_bytes((src / f"img{n}.jpg").read_bytes())
    (tmp_path / "good" / "img60.jpg").write_bytes(b"")                  # apex+1 unreadable
    clips = tmp_path / "clips.csv"
    clips.write_text("subject,clip,frames,onset,apex,offset\nme,good,good,46,59,61\n")
    real = prep.select_neighbours
    monkeypatch.setattr(prep, "select_neighbours", lambda rec, apex, unreadable=(), reasons=None: real(rec, apex))
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(clips))],
                             cache_root=str(tmp_path / "cache"), size=32, workers=1, progress=False)
    with pytest.raises(RuntimeError, match=r"clips/me/good: select_neighbours picked unreadable frame\(s\) \[60\]"):
        prep.prepare_dataset(cfg)


def test_unreadable_neighbour_is_replaced_unreadable_onset_or_apex_skips(shared_data, tmp_path):
    """A neighbour file that cannot be decoded (random bytes, empty) counts as absent: the nearest readable frame
    stands in, with a note; an unreadable onset or apex skips its clip with the reason."""
    import dataclasses

    import numpy as np

    from icegan.data import prepare as prep
    src = shared_data / "casme2" / "sub01" / "EP02_01f"                  # onset 46, apex 59
    for clip in ("good", "bad_onset", "bad_apex"):
        (tmp_path / clip).mkdir()
        for n in (46, 57, 58, 59, 60, 61):
            (tmp_path / clip / f"img{n}.jpg").write_bytes((src / f"img{n}.jpg").read_bytes())
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (tmp_path / "good" / "img60.jpg").write_bytes(noise)               # apex+1
    (tmp_path / "good" / "img57.jpg").write_bytes(b"")                  # apex-2
    (tmp_path / "bad_onset" / "img46.jpg").write_bytes(noise)
    (tmp_path / "bad_apex" / "img59.jpg").write_bytes(b"")
    clips = tmp_path / "clips.csv"
    clips.write_text("subject,clip,frames,onset,apex,offset\n"
                     + "".join(f"me,{c},{c},46,59,61\n" for c in ("good", "bad_onset", "bad_apex")))
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(clips))],
                             cache_root=str(tmp_path / "cache"), size=32, workers=1, progress=False)
    p = prep.prepare_dataset(cfg)
    row = p.manifest.set_index("clip").loc["good"]
    assert [row[c] for c in ("apex_m2", "apex_m1", "apex_p1", "apex_p2")] == [58, 58, 59, 61]
    assert "apex-2 frame 57 unreadable (img57.jpg), used 58" in row["notes"]
    assert "apex+1 frame 60 unreadable (img60.jpg), used 59" in row["notes"]
    i = int(row["index"])
    assert np.array_equal(p.frames.apex_neighbours[i, 2], p.frames.apex[i])    # apex+1 is the apex frame
    reasons = dict(zip(p.skipped["key"], p.skipped["reason"]))
    assert set(reasons) == {"clips/me/bad_onset", "clips/me/bad_apex"}
    assert "cannot read image" in reasons["clips/me/bad_onset"] and "img46.jpg" in reasons["clips/me/bad_onset"]
    assert "cannot read image" in reasons["clips/me/bad_apex"] and "img59.jpg" in reasons["clips/me/bad_apex"]
    # with the sequences cached too: the unreadable frames between onset and offset are left out of the sequence
    # (as absent ones are), not a reason to skip the clip
    seq = prep.prepare_dataset(dataclasses.replace(cfg, sequences=True, cache_root=str(tmp_path / "cache_seq")))
    row = seq.manifest.set_index("clip").loc["good"]
    assert "sequence frame(s) 57, 60 unreadable, left out" in row["notes"]
    assert len(seq.frames.sequence(int(row["index"]))) == 4                       # 46, 58, 59, 61
    assert set(seq.skipped["key"]) == {"clips/me/bad_onset", "clips/me/bad_apex"}


def test_cache_key_covers_labels_apex_and_every_setting(shared_data):
    """The preprocessing cache key changes with a clip's class, SAMM objective class or apex frame and with any setting
    that applies to it (here the size; the crop margin of a raw clip)."""
    from icegan.data import prepare as prep
    from icegan.data.casme2 import CASME2
    rec = CASME2(shared_data / "casme2", shared_data / "annotations" / "CASME2-coding-20140508.xlsx").records(
        subjects=["sub01"])[0]
    s = prep._settings(prep.PrepareConfig())
    h = prep.inputs_hash([(rec, "cropped")], s)
    assert h != prep.inputs_hash([(dataclasses.replace(rec, class3=(rec.class3 + 1) % 3), "cropped")], s)
    assert h != prep.inputs_hash([(dataclasses.replace(rec, apex=rec.apex + 1), "cropped")], s)
    assert h != prep.inputs_hash([(rec, "cropped")], prep._settings(prep.PrepareConfig(size=64)))
    assert (prep.inputs_hash([(rec, "raw")], s)
            != prep.inputs_hash([(rec, "raw")], prep._settings(prep.PrepareConfig(margin=0.2))))
    # SAMM's objective class, a manifest column: a corrected sheet must not leave the old class in the cache
    samm = dataclasses.replace(rec, objective_class=1)
    assert len({h, prep.inputs_hash([(samm, "cropped")], s),
                prep.inputs_hash([(dataclasses.replace(samm, objective_class=2), "cropped")], s)}) == 3
    # ... while a clip without one (CASME II, SMIC, a clip list) keeps the key it had before: its cache stays valid
    import hashlib
    import json
    old = hashlib.sha1(json.dumps(prep.key_settings(s, [(rec, "cropped")]), sort_keys=True).encode())
    old.update(json.dumps([rec.key, "cropped", rec.emotion, rec.class3, rec.onset, rec.apex, rec.offset,
                           rec.apex_method]).encode())
    for p in rec.frame_paths:
        old.update(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns};".encode())
    assert rec.objective_class is None and h == old.hexdigest()[:16]


_constant_clip = constant_clip          # one clip of grey frames 10 n (tests/_clip_records.py)


def test_cached_faces_are_the_onset_apex_and_neighbour_frames(tmp_path):
    """Cropped mode: onset.npy holds the onset frame (not the first frame on disk), apex.npy the apex frame and
    apex_neighbours.npy apex-2, apex-1, apex+1, apex+2 in that order, each resized to ``size``; the manifest names
    those frame numbers."""
    from icegan.data import prepare as prep
    csv = _constant_clip(tmp_path)
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv))],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    p = prep.prepare_dataset(cfg)
    assert p.frames.onset.shape == (1, 16, 16) and p.frames.apex_neighbours.shape == (1, 4, 16, 16)
    assert (p.frames.onset[0] == 20).all() and (p.frames.apex[0] == 50).all()
    assert [int(p.frames.apex_neighbours[0, k, 0, 0]) for k in range(4)] == [30, 40, 60, 70]
    row = p.manifest.iloc[0]
    assert [row[c] for c in ("onset", "apex", "apex_m2", "apex_m1", "apex_p1", "apex_p2")] == [2, 5, 3, 4, 6, 7]


def test_raw_mode_landmarks_are_in_key_frame_order(tmp_path, stand_in_faces):
    """Raw mode: landmarks.npy rows are onset, apex-2, apex-1, apex, apex+1, apex+2, each detected on its own frame
    (here the stand-in detector of conftest's stand_in_faces marks every point with its frame's grey level) and
    mapped by the clip's alignment (the identity), then to the 20 px output as cv2.resize maps pixel centres."""
    import numpy as np

    from icegan.data import prepare as prep
    rec = prep.dataset_records(prep.DatasetSpec(name="clips", root=str(_constant_clip(tmp_path))))[0]
    out = prep.process_clip(rec, "raw", prep._settings(prep.PrepareConfig(size=20, landmarks=True)))
    assert "error" not in out, out
    grey = np.array([20, 30, 40, 50, 60, 70])
    np.testing.assert_allclose(out["landmarks"][:, 0, 0], (grey + 0.5) * 20 / 40 - 0.5)   # 40 px crop -> 20 px
    assert (out["onset_img"] == 20).all() and (out["apex_img"] == 50).all()


def test_cache_key_changes_with_each_frame_file_mode_onset_and_setting(tmp_path):
    """inputs_hash is the same for the same inputs, and changes with a frame file's modification time or size (an
    edited frame), the clip's onset frame, its mode (raw or cropped), and every setting that changes the output (of a
    raw clip: the raw-mode settings leave a cropped clip's key alone, tests/test_prepare55.py)."""
    import os

    from icegan.data import prepare as prep
    rec = prep.dataset_records(prep.DatasetSpec(name="clips", root=str(_constant_clip(tmp_path))))[0]
    s = prep._settings(prep.PrepareConfig())
    h = prep.inputs_hash([(rec, "cropped")], s)
    assert h == prep.inputs_hash([(rec, "cropped")], dict(s)) and len(h) == 16
    assert h != prep.inputs_hash([(rec, "raw")], s)
    assert h != prep.inputs_hash([(dataclasses.replace(rec, onset=3), "cropped")], s)
    for change in ({"size": 64}, {"color": "rgb"}, {"detector": "cnn"}, {"margin": 0.2}, {"refine": False},
                   {"neighbours": False}, {"sequences": True}, {"landmarks": True}, {"apex_spotting": "middle"}):
        task = (dataclasses.replace(rec, apex=None) if "apex_spotting" in change else rec, "raw")   # one to spot
        other = prep._settings(prep.PrepareConfig(**change))
        assert prep.inputs_hash([task], s) != prep.inputs_hash([task], other), change
    frame = rec.frame_paths[3]
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))          # touched: a newer time, same bytes
    touched = prep.inputs_hash([(rec, "cropped")], s)
    assert touched != h
    frame.write_bytes(frame.read_bytes() + b"\0")                          # one byte longer, same time
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert prep.inputs_hash([(rec, "cropped")], s) not in (h, touched)


def test_a_cache_folder_left_by_a_killed_prepare_is_removed(tmp_path):
    """A prepare killed while it wrote its cache left `.tmp-<hash>-<pid>` (every clip's arrays) for good. Now the next
    prepare of that cache removes such a folder when its process no longer runs and it is over an hour old; a
    running process's folder, a recent one and another cache's are kept."""
    import shutil

    from icegan.data import prepare as prep
    csv = _constant_clip(tmp_path)
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv))],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    first = prep.prepare_dataset(cfg)
    root = prep.cache_root_of(cfg)
    (final,) = [d for d in root.iterdir() if (d / "COMPLETE").is_file()]
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)                               # a process that has ended
    folders = {name: root / name for name in (f".tmp-{final.name}-{dead}", f".tmp-{final.name}-{os.getppid()}",
                                              f".tmp-{final.name}-{dead}0", f".tmp-0123456789abcdef-{dead}")}
    for name, d in folders.items():
        (d / "sequences").mkdir(parents=True)
        if not name.endswith(f"{dead}0"):                 # the recent one stays recent
            os.utime(d, (time.time() - 2 * prep.STALE_TMP_SECONDS,) * 2)
    shutil.rmtree(final)
    again = prep.prepare_dataset(cfg)
    assert not folders[f".tmp-{final.name}-{dead}"].exists()
    assert all(folders[n].exists() for n in list(folders)[1:])
    assert (again.frames.onset == first.frames.onset).all()


def test_a_prepare_stopped_midway_prepares_only_the_rest(tmp_path, monkeypatch):
    """A prepare stopped by Ctrl-C or a kill lost every clip it had prepared (the cache is written at the end). Now
    each finished clip is kept in .partial-<hash>: the rerun prepares only the others, its cache equals an
    uninterrupted run's, and the folder is removed once the cache is written. A kept file that cannot be read is
    prepared again."""
    import numpy as np

    from icegan.data import prepare as prep
    frames = grey_frames(tmp_path / "c1")
    clips = tmp_path / "clips.csv"
    clips.write_text("subject,clip,frames,onset,apex,offset\n"
                     + "".join(f"p0,c{i},{frames},{1 + i},{5 + i},10\n" for i in range(4)))
    spec = [prep.DatasetSpec(name="clips", root=str(clips))]
    whole = prep.prepare_dataset(prep.PrepareConfig(datasets=spec, cache_root=str(tmp_path / "ref"), size=16,
                                                    workers=1, progress=False))
    cfg = prep.PrepareConfig(datasets=spec, cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    real, calls = prep.process_clip, []

    def stopped_at_the_third(rec, mode, settings):
        calls.append(rec.key)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(rec, mode, settings)
    monkeypatch.setattr(prep, "process_clip", stopped_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare_dataset(cfg)
    root = prep.cache_root_of(cfg)
    (partial,) = root.glob(".partial-*")
    assert len(list(partial.glob("*.pkl"))) == 2 and not list(partial.glob("*.tmp"))
    next(iter(partial.glob("*.pkl"))).write_bytes(b"cut")           # one kept clip unreadable: prepared again
    calls.clear()
    monkeypatch.setattr(prep, "process_clip", lambda *a: calls.append(a[0].key) or real(*a))
    again = prep.prepare_dataset(cfg)
    assert len(calls) == 3 and len(set(calls)) == 3                  # 2 never prepared + 1 unreadable
    assert not partial.exists()
    for name in ("onset", "apex", "apex_neighbours"):
        assert np.array_equal(getattr(again.frames, name), getattr(whole.frames, name)), name
    assert again.manifest["key"].tolist() == whole.manifest["key"].tolist()


def _four_clips(tmp_path: Path, cache: str):
    """A PrepareConfig of four 10-frame clips of one folder (cropped mode, size 16, one process) and its module."""

    from icegan.data import prepare as prep
    frames = grey_frames(tmp_path / "c1")
    clips = tmp_path / "clips.csv"
    clips.write_text("subject,clip,frames,onset,apex,offset\n"
                     + "".join(f"p0,c{i},{frames},{1 + i},{5 + i},10\n" for i in range(4)))
    return prep, prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(clips))],
                                    cache_root=str(tmp_path / cache), size=16, workers=1, progress=False)


def test_a_prepare_whose_every_clip_failed_keeps_nothing_for_the_rerun(tmp_path, monkeypatch):
    """A prepare that ran to its end with every clip failed ('every clip failed') is no stopped run: it used to leave
    its failures in .partial-<hash>, and the rerun, after the user fixed the cause (a permission, a library: nothing
    the hash sees), read them back and failed again without trying a clip."""
    prep, cfg = _four_clips(tmp_path, "cache")
    real = prep.process_clip
    monkeypatch.setattr(prep, "process_clip", lambda rec, mode, s: {"key": rec.key, "error": "cannot be read"})
    with pytest.raises(prep.PrepareError, match="every clip failed"):
        prep.prepare_dataset(cfg)
    assert not list(prep.cache_root_of(cfg).glob(".partial-*"))
    monkeypatch.setattr(prep, "process_clip", real)
    assert len(prep.prepare_dataset(cfg)) == 4


def test_a_cache_hit_removes_the_partial_folder_of_its_hash(tmp_path):
    """A kill after the cache was renamed into place, while its (up to gigabytes) .partial-<hash> was being
    removed, left that folder for good: every later run is a cache hit, which did not look at it."""
    prep, cfg = _four_clips(tmp_path, "cache")
    first = prep.prepare_dataset(cfg)
    partial = first.cache_dir.parent / f".partial-{first.cache_dir.name}"
    partial.mkdir()
    (partial / "0123456789abcdef.pkl").write_bytes(b"left by a kill")
    again = prep.prepare_dataset(cfg)
    assert again.cache_dir == first.cache_dir and not partial.exists()


def test_unfinished_prepares_of_other_settings_are_named_after_a_prepare(tmp_path, caplog):
    """A prepare stopped, then run with other settings: the first one's .partial folder (its finished clips, up to
    gigabytes) stayed with nothing saying so. It is kept (resumable work) and named, with its size."""
    import logging
    prep, cfg = _four_clips(tmp_path, "other")
    root = prep.cache_root_of(cfg)
    stopped = root / ".partial-0123456789abcdef"
    stopped.mkdir(parents=True)
    for name in ("a", "b"):
        (stopped / f"{name}.pkl").write_bytes(b"x" * 300_000)
    with caplog.at_level(logging.INFO, logger="icegan.data"):
        prep.prepare_dataset(cfg)
    (line,) = [r.getMessage() for r in caplog.records if "unfinished prepare" in r.getMessage()]
    assert line.startswith(f"prepare: 1 unfinished prepare(s) of other inputs or settings kept in {root} "
                           f"(.partial-0123456789abcdef: 2 clips, 0.6 MB)")
    assert len(list(stopped.glob("*.pkl"))) == 2

def test_a_concurrent_prepare_removing_the_partial_folder_does_not_stop_this_one(tmp_path, monkeypatch):
    """Two prepares of the same inputs share .partial-<hash>; the first to finish removes it. The other one's next
    kept clip then found no folder (FileNotFoundError: the whole prepare stopped, where before c1007a8 it finished
    and used the cache the first one wrote). Keeping a clip for a resume may fail; the prepare goes on."""
    import pickle
    import shutil

    import numpy as np
    prep, cfg = _four_clips(tmp_path, "cache")
    _, ref = _four_clips(tmp_path, "ref")
    whole = prep.prepare_dataset(ref)
    dumps = pickle.dumps

    def removed_meanwhile(obj, *a, **k):           # the other process's rmtree, between mkdir and the write
        for d in prep.cache_root_of(cfg).glob(".partial-*"):
            shutil.rmtree(d)
        return dumps(obj, *a, **k)
    monkeypatch.setattr(pickle, "dumps", removed_meanwhile)
    got = prep.prepare_dataset(cfg)
    monkeypatch.setattr(pickle, "dumps", dumps)
    assert got.manifest["key"].tolist() == whole.manifest["key"].tolist()
    assert np.array_equal(got.frames.apex, whole.frames.apex)
    assert not list(prep.cache_root_of(cfg).glob(".partial-*"))


def test_a_cache_hit_removes_a_stale_temporary_folder_of_its_cache(tmp_path):
    """The usual course after a kill while the cache was written: the user reruns at once, the `.tmp-<hash>-<pid>`
    is then under an hour old and kept, that rerun writes the cache, and every later run is a cache hit, which never
    looked at the folder again: it stayed for good. A cache hit removes it too once it is stale."""
    prep, cfg = _four_clips(tmp_path, "cache")
    first = prep.prepare_dataset(cfg)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = first.cache_dir.parent / f".tmp-{first.cache_dir.name}-{int(gone.stdout)}"
    (left / "sequences").mkdir(parents=True)
    os.utime(left, (time.time() - 2 * prep.STALE_TMP_SECONDS,) * 2)
    assert prep.prepare_dataset(cfg).cache_dir == first.cache_dir
    assert not left.exists()


def test_the_note_on_other_prepares_never_fails_a_finished_prepare(tmp_path, monkeypatch):
    """Another prepare that finishes removes its .partial folder; when it did so while this one summed their sizes,
    the note raised FileNotFoundError after this prepare's cache was written."""
    prep, cfg = _four_clips(tmp_path, "race")
    root = prep.cache_root_of(cfg)
    other = root / ".partial-0123456789abcdef"
    other.mkdir(parents=True)
    (other / "a.pkl").write_bytes(b"x")
    real_glob = Path.glob

    def glob_then_removed(self, pattern):          # listed, then removed before its size is read
        found = list(real_glob(self, pattern))
        if self == other:
            shutil.rmtree(other)
        return iter(found)
    monkeypatch.setattr(Path, "glob", glob_then_removed)
    assert len(prep.prepare_dataset(cfg)) == 4

def test_on_windows_no_process_is_signalled_to_judge_a_left_folder(tmp_path, monkeypatch):
    """os.kill(pid, 0) asks whether a process runs on POSIX but sends Ctrl-C (CTRL_C_EVENT) on Windows: there a stale
    .tmp-<hash>-<pid> (here of this very test's process) is removed by its age alone, and no process is signalled."""
    prep, cfg = _four_clips(tmp_path, "cache")
    first = prep.prepare_dataset(cfg)
    left = first.cache_dir.parent / f".tmp-{first.cache_dir.name}-{os.getpid()}"      # a running process's pid
    (left / "sequences").mkdir(parents=True)
    os.utime(left, (time.time() - 2 * prep.STALE_TMP_SECONDS,) * 2)

    def no_signal(pid, sig):
        raise AssertionError(f"os.kill({pid}, {sig}) called")
    monkeypatch.setattr(prep, "_PROBE_PIDS", False)
    monkeypatch.setattr(os, "kill", no_signal)
    assert prep.prepare_dataset(cfg).cache_dir == first.cache_dir
    assert not left.exists()

def test_a_kept_clip_file_that_would_run_code_is_refused(tmp_path, caplog):
    """A .pkl planted in a .partial-<hash> folder that others can write: read with plain pickle it would run its
    code; kept clip results are read by an unpickler that builds only records, paths and numpy arrays, so the file
    is named, nothing runs and the clip is prepared again."""
    import logging
    import pickle

    import numpy as np

    from icegan.data import prepare as prep
    from icegan.data.records import ClipRecord
    rec = ClipRecord("clips", "clips/p0", "c0", "", None, 1, 5, 9, frame_paths=(tmp_path / "img1.png",))
    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    partial = tmp_path / ".partial-x"
    partial.mkdir()
    prep._partial_file(partial, rec.key).write_bytes(pickle.dumps({"key": rec.key, "x": Planted()}))
    with caplog.at_level(logging.WARNING, logger="icegan.data"):
        assert prep._read_partial(partial, [(rec, "cropped")]) == {}
    assert not marker.exists()
    assert any("cannot be read (a kept clip result holds no" in r.getMessage() for r in caplog.records)
    kept = {"key": rec.key, "record": rec, "onset_img": np.arange(6, dtype=np.uint8).reshape(2, 3), "notes": ""}
    prep._keep_partial(partial, kept)                                       # the project's own: read back
    back = prep._read_partial(partial, [(rec, "cropped")])[rec.key]
    assert back["record"] == rec and np.array_equal(back["onset_img"], kept["onset_img"])


def test_clip_names_that_look_like_numbers_stay_text_in_the_manifest(tmp_path):
    """A clip list whose clips are named "001" and "1.10" (and its subject "007"): the prepared manifest, as
    load_prepared reads it back, keeps those names character for character (pandas read them as 1.0 and 1.1)."""
    from icegan.data import prepare as prep
    for name in ("001", "1.10"):
        _constant_clip(tmp_path, name)
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset\n"
                   f"007,001,{tmp_path / '001'},2,5,10\n007,1.10,{tmp_path / '1.10'},2,5,10\n")
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv))],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    p = prep.prepare_dataset(cfg)
    assert sorted(p.manifest["clip"]) == ["001", "1.10"]
    assert set(p.manifest["subject"]) == {"clips/007"}
    assert sorted(prep.load_prepared(p.cache_dir).manifest["key"]) == ["clips/007/001", "clips/007/1.10"]
