"""`icegan data check --dataset smic --composite-only` against what the MEGC2019 composite needs: the 164 SMIC-HS
clips of its 16 subjects (70 negative / 51 positive / 43 surprise). A tree of 4 clips of 2 subjects exited 0 (SMIC
has no sheet, so no subject was ever missing), where the same gap in SAMM lists the missing subjects and exits 1."""
from __future__ import annotations

import json
from collections import Counter

import cv2
import numpy as np
from _clip_records import smic_clip

from icegan.cli import main
from icegan.data.records import CLASS3_NAMES
from icegan.data.smic import SMIC

CODE = {"negative": "ne", "positive": "po", "surprise": "sur"}
TINY = cv2.imencode(".bmp", np.full((8, 8), 120, np.uint8))[1].tobytes()      # an 8 x 8 frame that decodes


def _full_tree(root, leave_out=()):
    """Every composite clip (``s3_ne_01`` ...) as 3 tiny frames, but the clip folders named in ``leave_out``."""
    from icegan.data.smic import SMIC_COMPOSITE
    for subject, counts in SMIC_COMPOSITE.items():
        s = subject.split("/")[1]
        for cls, n in zip(CLASS3_NAMES, counts):
            for i in range(1, n + 1):
                if (clip := f"{s}_{CODE[cls]}_{i:02d}") not in leave_out:
                    smic_clip(root, s, cls, clip, n=3, frame=TINY)
    return root


def _check(root, capsys, *extra):
    js = root / "check.json"
    rc = main(["data", "check", "--dataset", "smic", "--root", str(root), "--composite-only", "--json", str(js),
               *extra])
    return rc, capsys.readouterr().out, json.loads(js.read_text())


def test_smic_composite_table_is_the_megc2019_label_list(shared_data):
    """The package's table (ids and counts only) is what the MEGC2019 composite's label list holds: its s01 is the
    tree's s1."""
    from icegan.data.features import read_megc2019_table
    from icegan.data.smic import SMIC_COMPOSITE
    table = read_megc2019_table(shared_data / "megc2019_htnet", datasets=["smic"])
    got = Counter((f"smic/{SMIC.subject_id(s.split('/')[1])}", int(c)) for s, c in zip(table.subject, table.label))
    assert {s: tuple(got[s, c] for c in range(3)) for s, _ in got} == SMIC_COMPOSITE
    assert len(SMIC_COMPOSITE) == 16
    assert [sum(c[k] for c in SMIC_COMPOSITE.values()) for k in range(3)] == [70, 51, 43]


def test_a_complete_smic_tree_passes_the_composite_check(tmp_path, capsys):
    rc, printed, report = _check(_full_tree(tmp_path), capsys)
    assert rc == 0, printed
    assert report["clips_usable"] == 164 and report["frames_checked"] == 492
    assert report["by_class_usable"] == {"negative": 70, "positive": 51, "surprise": 43}
    assert report["missing_subjects"] == {} and report["clips_with_problems"] == []
    assert "not on disk" not in printed


def test_a_smic_tree_of_4_composite_clips_names_the_missing_subjects_and_exits_1(tmp_path, capsys):
    """The reproduction's tree: s1_ne_01, s1_po_01, s2_sur_01, s2_ne_01 (this one no composite clip: s2 has no
    negative one), and a file where s3's folder belongs."""
    for s, cls, clip in [("s1", "negative", "s1_ne_01"), ("s1", "positive", "s1_po_01"),
                         ("s2", "surprise", "s2_sur_01"), ("s2", "negative", "s2_ne_01")]:
        smic_clip(tmp_path, s, cls, clip, n=3, frame=TINY)
    hs = tmp_path / "SMIC_all_cropped" / "HS"
    (hs / "s3").write_bytes(b"PK")
    rc, printed, report = _check(tmp_path, capsys, "--no-read-images")
    assert rc == 1
    assert report["missing_subjects"] == {
        "smic/s3": 39, "smic/s4": 19, "smic/s5": 2, "smic/s6": 4, "smic/s8": 13, "smic/s9": 4, "smic/s11": 7,
        "smic/s12": 9, "smic/s13": 10, "smic/s14": 10, "smic/s15": 4, "smic/s18": 7, "smic/s19": 2, "smic/s20": 22}
    assert report["subjects_not_folders"] == {"smic/s3": f"{hs / 's3'} is a file, not a folder (an archive not "
                                                          f"extracted?)"}
    assert report["clips_with_problems"] == [
        {"clip": "smic/s1", "severity": "skip",
         "problem": f"fewer clips in {hs / 's1'} than the MEGC2019 composite's 6: negative 1 of 3, positive 1 of 2, "
                    f"surprise 0 of 1 (copy the missing clip folders in)"},
        {"clip": "smic/s2", "severity": "skip",
         "problem": f"fewer clips in {hs / 's2'} than the MEGC2019 composite's 6: positive 0 of 1, surprise 1 of 5 "
                    f"(copy the missing clip folders in)"}]
    assert ("subjects of the MEGC2019 composite not on disk: smic/s11 (7 clips), " in printed
            and f"smic/s3 (39 clips; {hs / 's3'} is a file, " in printed and "smic/s4 (19 clips), " in printed)
    assert "in the sheet" not in printed


def test_one_composite_clip_missing_from_a_smic_tree_is_a_shortfall_of_its_subject(tmp_path, capsys):
    rc, printed, report = _check(_full_tree(tmp_path, leave_out={"s3_ne_07"}), capsys, "--no-read-images")
    assert rc == 1 and report["missing_subjects"] == {} and report["clips_usable"] == 163
    hs = tmp_path / "SMIC_all_cropped" / "HS"
    assert report["clips_with_problems"] == [
        {"clip": "smic/s3", "severity": "skip",
         "problem": f"fewer clips in {hs / 's3'} than the MEGC2019 composite's 39: negative 21 of 22 (copy the "
                    f"missing clip folders in)"}]
    assert f"[skip] smic/s3: fewer clips in {hs / 's3'}" in printed


def test_a_zero_padded_subject_folder_is_its_composite_subject(tmp_path, capsys):
    """Folder s01 is subject s1 (the label list's s01): a complete tree with it so named passes."""
    _full_tree(tmp_path)
    hs = tmp_path / "SMIC_all_cropped" / "HS"
    (hs / "s1").rename(hs / "s01")
    rc, printed, report = _check(tmp_path, capsys, "--no-read-images")
    assert rc == 0, printed
    assert report["subjects"]["smic/s1"] == 6
