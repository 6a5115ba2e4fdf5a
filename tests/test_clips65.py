"""Clip audit 65: one frames folder under two subjects of a clip list with different onsets (its apex image in two
LOSO folds) refused; `data check --help` says which frames make it exit 1 (the onset, apex and spotting span, not the
others); a neighbour of another size named so in the manifest's note (was "unreadable"); the preprocessing workers
and forkserver end when a killed prepare leaves them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from icegan.cli import main
from icegan.data.clip_list import ClipList

from _clip_records import grey_frames


# --------------------------------------------------------------------------------- one folder, two subjects

def test_clip_list_refuses_one_folder_under_two_subjects_whatever_the_onsets(tmp_path):
    """p01 onset 46 and p02 onset 47 of one folder, both apex 59, were two clips with one apex image in two subjects'
    LOSO folds (data check: 0 problems). Refused naming both lines; the folder under one subject with two onsets
    (two MEs of one long take) is still two clips."""
    frames = grey_frames(tmp_path / "EP02_01f", range(1, 26))
    csv = tmp_path / "list.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset,label\np01,a,EP02_01f,2,12,20,positive\n"
                   "p02,b,EP02_01f,3,12,20,positive\n")
    with pytest.raises(ValueError) as err:
        ClipList(csv).records()
    assert str(err.value) == (
        f"{csv}, line 3 (clip 'b'): frames folder {frames.resolve()} (onset 3) is listed on line 2 under another "
        f"subject (clip 'a' of subject 'clips/p01', onset 2): its frames would be in two subjects' LOSO folds, "
        f"trained on and tested on; list the folder under one subject")
    csv.write_text("subject,clip,frames,onset,apex,offset,label\np01,a,EP02_01f,2,5,8,positive\n"
                   "p01,b,EP02_01f,12,15,20,positive\n")
    assert [r.key for r in ClipList(csv).records()] == ["clips/p01/a", "clips/p01/b"]


# --------------------------------------------------------------------------------- data check: help vs exit

def test_data_check_help_and_exit_status_agree_on_frames(tmp_path, capsys):
    """The help said exit 1 for any frame missing, unreadable or of another size; a middle frame missing is a warning
    (exit 0), a missing apex frame exit 1. The help now says so."""
    with pytest.raises(SystemExit):
        main(["data", "check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "its onset or apex frame missing, unreadable, ambiguous or of another size" in text
    assert "other frames missing, unreadable or of another size are warnings only: 0" in text
    grey_frames(tmp_path / "take", [n for n in range(1, 11) if n != 7])
    csv = tmp_path / "list.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset,label\nme,a,take,2,5,10,positive\n")
    js = tmp_path / "r.json"
    assert main(["data", "check", "--dataset", "clips", "--root", str(csv), "--json", str(js)]) == 0
    assert "missing frames 7 inside onset..offset 2-10" in js.read_text()
    csv.write_text("subject,clip,frames,onset,apex,offset,label\nme,a,take,2,7,10,positive\n")
    assert main(["data", "check", "--dataset", "clips", "--root", str(csv)]) == 1


# --------------------------------------------------------------------------------- note of an odd-size neighbour

def test_a_neighbour_of_another_size_is_noted_with_its_size_not_as_unreadable(tmp_path):
    """apex+1 frame 6 is a readable 30×20 image in a clip of 40×40 frames: the note said "apex+1 frame 6 unreadable
    (img6.png), used ..."; it now gives the size. An undecodable neighbour is still "unreadable"."""
    from icegan.data import prepare as prep
    frames = grey_frames(tmp_path / "take", range(1, 11))
    cv2.imwrite(str(frames / "img6.png"), np.full((20, 30), 60, np.uint8))
    (frames / "img7.png").write_bytes(b"not an image")
    csv = tmp_path / "list.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset\nme,a,take,2,5,10\n")
    out = prep.process_clip(ClipList(csv).records()[0], "cropped", prep._settings(prep.PrepareConfig(size=16)))
    notes = "; ".join(out["notes"]) if isinstance(out["notes"], (list, tuple)) else out["notes"]
    assert "apex+1 frame 6 size 30×20, expected 40×40 (img6.png), used 5" in notes
    assert "apex+2 frame 7 unreadable (img7.png), used" in notes
    assert "frame 6 unreadable" not in notes


# --------------------------------------------------------------------------------- killed prepare leaves no process

def _children(pid: int) -> set[int]:
    """The live descendants of ``pid`` (Linux /proc), zombies left out."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                kids.setdefault(int(fields[1]), []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.add(k)
            todo.append(k)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_of_a_killed_prepare_exit(tmp_path):
    """kill -9 of a workers=2 prepare left its forkserver and pool workers alive for ever (reparented to init).
    They now exit when the prepare process is gone."""
    for i in range(60):
        grey_frames(tmp_path / f"t{i}", range(1, 26))
    rows = "".join(f"p{i % 3},c{i},t{i},2,12,25\n" for i in range(60))
    (tmp_path / "list.csv").write_text("subject,clip,frames,onset,apex,offset\n" + rows)
    (tmp_path / "prep.yaml").write_text(
        f"datasets:\n  - name: clips\n    root: {tmp_path / 'list.csv'}\n    mode: cropped\n"
        f"size: 64\ncolor: gray\nneighbours: true\nsequences: true\nworkers: 2\nprogress: false\n"
        f"cache_root: {tmp_path / 'cache'}\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "icegan", "prepare", "--config", str(tmp_path / "prep.yaml")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(seen) < 3 and proc.poll() is None and time.monotonic() < deadline:   # forkserver + 2 workers
            seen |= _children(proc.pid)
            time.sleep(0.05)
        assert len(seen) >= 3, f"prepare ended or started no workers in time (rc {proc.poll()})"
        seen |= _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in seen if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in seen:
            if _alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
