"""What the README and --help say about user inputs agrees with what the code does (session 62)."""
from __future__ import annotations

import re
from pathlib import Path

from icegan.cli import build_parser
from icegan.data.clip_list import ClipList

ROOT = Path(__file__).resolve().parents[1]


def _help(*argv: str) -> str:
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            build_parser().parse_args([*argv, "--help"])
        except SystemExit:
            pass
    return " ".join(out.getvalue().split())


def test_relative_frames_folders_are_read_from_the_clip_lists_folder(tmp_path, monkeypatch):
    """A relative ``frames`` cell is resolved against the CSV's folder, not the working directory, and the README
    clip-list paragraph and ``icegan features --help`` both say so."""
    import cv2
    import numpy as np
    lists = tmp_path / "lists"
    (lists / "v" / "a").mkdir(parents=True)
    for n in (1, 2):
        cv2.imwrite(str(lists / "v" / "a" / f"img{n}.jpg"), np.full((8, 8), 90, np.uint8))
    (lists / "clips.csv").write_text("subject,clip,frames,onset,apex\np01,a,v/a,1,2\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rec, = ClipList(Path("../lists/clips.csv")).records()
    assert rec.frame_paths[0].resolve() == (lists / "v" / "a" / "img1.jpg").resolve()
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert re.search(r"the folder of the clip's frames, absolute or relative to the clip list's own folder", readme)
    assert "relative to the CSV's folder" in _help("features")
