"""Bad input in the real layouts: small CASME II copies (real frames, the official sheet's rows) and a cut of the
MEGC2019 table, each with one defect a user's copy may have. Every defect is named by `icegan data check` and by
preparation (skipped with its reason, or a warning), never dropped unseen nor turned into garbage maps."""
from __future__ import annotations

import json
import shutil

import numpy as np
import openpyxl
import pytest

from icegan.cli import main as icegan_main
from icegan.data import prepare as prep
from icegan.data.casme2 import CASME2
from icegan.data.check import check_dataset

SHEET = "CASME2-coding-20140508.xlsx"
#: (subject, clip, frames copied: onset .. apex+2)
CLIPS = [("01", "EP02_01f", tuple(range(46, 62))),         # positive, apex 59
         ("01", "EP19_05f", tuple(range(396, 419))),       # negative, apex 416
         ("02", "EP09_01", tuple(range(26, 59)))]          # positive, apex 56


@pytest.fixture(scope="module")
def sheet_rows(shared_data):
    """The header and the rows of the official CASME II sheet, by (subject cell, filename)."""
    wb = openpyxl.load_workbook(shared_data / "annotations" / SHEET, read_only=True)
    rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    wb.close()
    return rows[0], {(r[0], r[1]): r for r in rows[1:] if r[0] is not None}


@pytest.fixture
def casme2_copy(shared_data, sheet_rows, tmp_path):
    """A factory ``(edit=None, base=tmp_path) -> root``: CLIPS copied into ``base/CASME2_RAW_selected`` with the
    sheet's rows for them in ``base/annotations``; ``edit(rows)`` changes the rows (lists of cells) first."""
    def make(edit=None, base=tmp_path):
        header, by_clip = sheet_rows
        root = base / "CASME2_RAW_selected"
        rows = []
        for subject, clip, frames in CLIPS:
            (root / f"sub{subject}" / clip).mkdir(parents=True)
            for n in frames:
                shutil.copy(shared_data / "casme2" / f"sub{subject}" / clip / f"img{n}.jpg",
                            root / f"sub{subject}" / clip)
            rows.append(list(by_clip[(subject, clip)]))
        if edit:
            edit(rows)
        wb = openpyxl.Workbook()
        wb.active.append(header)
        for r in rows:
            wb.active.append(r)
        (base / "annotations").mkdir()
        wb.save(base / "annotations" / SHEET)
        return root
    return make


def _prepare(root, tmp_path):
    spec = prep.DatasetSpec(name="casme2", root=str(root), mode="cropped")
    return prep.prepare_dataset(prep.PrepareConfig(datasets=[spec], cache_root=str(tmp_path / "cache"), size=32,
                                                   workers=1, progress=False))


def _problems(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in report.clips_with_problems:
        if "truncated: frames" not in p["problem"]:         # the copies keep onset..apex+2 only
            out.setdefault(p["clip"], []).append(f"[{p['severity']}] {p['problem']}")
    return out


def test_a_frame_of_another_size_is_not_prepared_into_the_clip(casme2_copy, shared_data, tmp_path):
    """An uncropped 640×480 frame of the raw release copied over the apex of a cropped clip was resized on its own
    into garbage motion; now the clip is skipped, naming both frames and sizes. A neighbour of another size is
    replaced by the nearest frame of the clip's size, with a note."""
    root = casme2_copy()
    raw = shared_data / "casme2_raw" / "sub01" / "EP02_01f"
    shutil.copy(raw / "img59.jpg", root / "sub01" / "EP02_01f" / "img59.jpg")            # apex of EP02_01f
    shutil.copy(raw / "img60.jpg", root / "sub02" / "EP09_01" / "img57.jpg")             # apex+1 of EP09_01
    p = _prepare(root, tmp_path)
    assert p.manifest["clip"].tolist() == ["EP19_05f", "EP09_01"]
    reason = dict(zip(p.skipped["key"], p.skipped["reason"]))["casme2/sub01/EP02_01f"]
    assert reason.startswith("frame 59 (img59.jpg) is 640×480, the onset frame 46 (img46.jpg) 231×282: the frames "
                             "of a clip must have one size")
    notes = p.manifest.set_index("clip")["notes"]["EP09_01"]
    assert "frame 57 (img57.jpg) is 640×480" in notes
    assert "apex+1 frame 57 size 640×480, expected 265×317 (img57.jpg), used 56" in notes      # was "unreadable"
    assert int(p.manifest.set_index("clip")["apex_p1"]["EP09_01"]) == 56



def test_a_grey_frame_in_a_colour_clip_is_not_prepared_in_colour(casme2_copy, tmp_path):
    """An apex saved in grey among colour frames gave, with ``color: rgb``, a grey apex against a colour onset (the
    GAN's target and the motion then differ in colour, not in expression); the clip is now skipped with the reason.
    A grey neighbour is replaced. In grey (the default) such a frame is used: it differs by at most 1 grey level."""
    import cv2
    root = casme2_copy()
    for rel in ("sub01/EP19_05f/img416.jpg", "sub02/EP09_01/img55.jpg"):          # an apex, an apex-1
        f = root / rel
        cv2.imwrite(str(f), cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))
    spec = prep.DatasetSpec(name="casme2", root=str(root), mode="cropped")
    p = prep.prepare_dataset(prep.PrepareConfig(datasets=[spec], cache_root=str(tmp_path / "cache"), size=32,
                                                color="rgb", workers=1, progress=False))
    assert p.manifest["clip"].tolist() == ["EP02_01f", "EP09_01"]
    assert dict(zip(p.skipped["key"], p.skipped["reason"]))["casme2/sub01/EP19_05f"] == (
        "frame 416 (img416.jpg) is greyscale, the onset frame 396 (img396.jpg) in colour (color: rgb): the frames "
        "of a clip must be alike (a frame saved in grey?)")
    row = p.manifest.set_index("clip").loc["EP09_01"]
    assert row["notes"].startswith("frame 55 (img55.jpg) is greyscale, the onset frame 26 (img26.jpg) in colour")
    assert "apex-1 frame 55 greyscale, expected in colour (img55.jpg), used 56" in row["notes"]   # was "unreadable"
    assert int(row["apex_m1"]) == 56
    grey = _prepare(root, tmp_path)
    assert len(grey.manifest) == len(CLIPS) and grey.skipped.empty


def test_a_clip_the_cache_could_not_prepare_is_named_on_every_run(casme2_copy, tmp_path, caplog):
    """A clip whose apex turned out unreadable when the cache was made was named on that run only: every later run
    (a cache hit) lost it without a word. The cached failure is now logged again."""
    import logging
    root = casme2_copy()
    (root / "sub01" / "EP19_05f" / "img416.jpg").write_bytes(b"")
    warnings = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="icegan.data"):
            p = _prepare(root, tmp_path)
        assert len(p.manifest) == len(CLIPS) - 1
        warnings.append([r.getMessage() for r in caplog.records if "skipped" in r.getMessage()])
    assert len(warnings[0]) == 1 and warnings[0][0].startswith("casme2/sub01/EP19_05f skipped: cannot read image")
    assert warnings[1] == warnings[0]


def test_data_check_names_a_frame_of_another_size(casme2_copy, shared_data):
    """`icegan data check` decodes every frame: one whose size is not the onset frame's skips the clip when it is the
    apex, and is a warning elsewhere in the clip."""
    root = casme2_copy()
    raw = shared_data / "casme2_raw" / "sub01" / "EP02_01f"
    shutil.copy(raw / "img59.jpg", root / "sub01" / "EP02_01f" / "img59.jpg")
    shutil.copy(raw / "img60.jpg", root / "sub02" / "EP09_01" / "img40.jpg")
    rep = check_dataset("casme2", root)
    problems = _problems(rep)
    assert problems["casme2/sub01/EP02_01f"] == [
        "[skip] frame(s) 59 not of the onset frame's size 231×282 (frame 59, img59.jpg: 640×480): the frames of a "
        "clip must have one size (a frame of another release or crop mixed in?)"]
    assert problems["casme2/sub02/EP09_01"][0].startswith("[warn] frame(s) 40 not of the onset frame's size")
    assert [s["clip"] for s in rep.clips_skipped] == ["casme2/sub01/EP02_01f"]
    assert "casme2/sub01/EP19_05f" not in problems


def _clip_to_spot(shared_data, tmp_path):
    """A clip list of one clip whose apex is to be spotted (onset 46, offset 61 of sub01/EP02_01f), with an uncropped
    640×480 frame at 55."""
    frames = tmp_path / "my clip"
    frames.mkdir()
    for n in range(46, 62):
        shutil.copy(shared_data / "casme2" / "sub01" / "EP02_01f" / f"img{n}.jpg", frames)
    shutil.copy(shared_data / "casme2_raw" / "sub01" / "EP02_01f" / "img55.jpg", frames)
    clips = tmp_path / "clips.csv"
    clips.write_text("subject,clip,frames,onset,apex,offset\np01,take1,my clip,46,,61\n")
    return clips


def test_a_frame_of_another_size_in_the_span_of_a_spotted_apex_is_named(shared_data, tmp_path):
    """Apex spotting on a span holding a frame of another size failed with 'frame 9 has shape (480, 640)': the place
    in the span, not the frame; now the frame number and file are named."""
    from icegan.data.clip_list import ClipList
    from icegan.data.spotting import spot_record_apex
    (rec,) = ClipList(_clip_to_spot(shared_data, tmp_path)).records()
    with pytest.raises(ValueError) as exc:
        spot_record_apex(rec)
    assert str(exc.value) == ("clips/p01/take1: apex spotting: frame 55 (img55.jpg) is 640×480, the first frame 46 "
                              "(img46.jpg) 231×282: the frames of a clip must have one size (a frame of another "
                              "release or crop mixed in?)")


def test_data_check_skips_a_clip_whose_spotting_span_holds_a_frame_of_another_size(shared_data, tmp_path):
    """With the apex to be spotted, a frame of another size anywhere from the onset to the offset stops the spotting
    (above): data check says 'skip', not 'warn'. Outside that span it stays a warning."""
    clips = _clip_to_spot(shared_data, tmp_path)
    (problem,) = check_dataset("clips", clips).clips_with_problems
    assert problem["severity"] == "skip" and problem["problem"].startswith(
        "frame(s) 55 not of the onset frame's size 231×282 (frame 55, img55.jpg: 640×480)")
    clips.write_text("subject,clip,frames,onset,apex,offset\np01,take1,my clip,46,,54\n")
    (problem,) = check_dataset("clips", clips).clips_with_problems
    assert problem["severity"] == "warn" and problem["problem"].startswith("frame(s) 55 not of the onset frame's")


def test_macos_metadata_files_beside_the_frames_are_not_frames(casme2_copy, tmp_path):
    """A copy made from a Mac onto another disk has a ``._img46.jpg`` metadata file beside every frame: these were
    read as second files of each frame number, which skipped the clip (its onset 'ambiguous')."""
    root = casme2_copy()
    clip = root / "sub01" / "EP02_01f"
    for f in list(clip.iterdir()):
        (clip / f"._{f.name}").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 40)
    rec = next(r for r in CASME2(root).records() if r.clip == "EP02_01f")
    assert rec.frame_numbers == CLIPS[0][2] and not rec.notes
    assert all(not p.name.startswith("._") for p in rec.frame_paths)
    assert "casme2/sub01/EP02_01f" not in _problems(check_dataset("casme2", root))
    assert "EP02_01f" in _prepare(root, tmp_path).manifest["clip"].tolist()


def test_an_emotion_the_sheet_does_not_use_is_reported_not_dropped(casme2_copy, tmp_path, capsys):
    """A misspelt emotion ('hapiness') left the clip out of the composite like an 'others' clip, with no word: now
    data check and preparation name the sheet row and the cell's value."""
    def typo(rows):
        rows[2][8] = "hapiness"                                    # EP09_01, happiness
    root = casme2_copy(typo)
    why = ("emotion 'hapiness' (sheet row 4) is not a label of the casme2 sheet (happiness, disgust, repression, "
           "surprise, others, fear, sadness): the clip is left out of the composite; correct the cell")
    assert [r.clip for r in CASME2(root).records()] == ["EP02_01f", "EP19_05f"]
    p = _prepare(root, tmp_path)
    assert p.manifest["clip"].tolist() == ["EP02_01f", "EP19_05f"]
    assert dict(zip(p.skipped["key"], p.skipped["reason"])) == {"casme2/sub02/EP09_01": why}
    assert _problems(check_dataset("casme2", root))["casme2/sub02/EP09_01"] == [f"[warn] {why}"]       # all rows
    assert icegan_main(["data", "check", "--dataset", "casme2", "--root", str(root), "--composite-only",
                        "--no-read-images"]) == 1      # a clip skipped
    assert f"[skip] casme2/sub02/EP09_01: {why}" in capsys.readouterr().out
    # labels outside the composite, any case, are no typo
    for label in ("Others", "fear", " sadness "):
        def other(rows, label=label):
            rows[2][8] = label
        base = tmp_path / label.strip()
        base.mkdir()
        ds = CASME2(casme2_copy(other, base))
        assert len(ds.records()) == 2 and not ds.layout_problems
        assert not any("not a label" in n for r in ds.records(composite_only=False) for n in r.notes)


def test_a_composite_row_the_rules_leave_out_is_named_when_loading(casme2_copy, caplog):
    """A blank apex ('/', as CASME II writes it) takes a row out of the composite by the MEGC2019 rules; train.py and
    prepare (composite clips only) dropped it without a word. The loader now says which rows and why (INFO)."""
    import logging

    def blank(rows):
        rows[2][4] = "/"                                        # EP09_01's apex
    root = casme2_copy(blank)
    with caplog.at_level(logging.INFO, logger="icegan.data"):
        recs = CASME2(root).records()
    assert [r.clip for r in recs] == ["EP02_01f", "EP19_05f"]
    assert [r.getMessage() for r in caplog.records] == [
        "casme2: 1 sheet row(s) of composite emotions left out of the composite by its rules: sub02/EP09_01 (apex "
        "is not a frame number (apex cell '/' is not a frame number (sheet row 4)))"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="icegan.data"):
        assert len(CASME2(root).records(composite_only=False)) == len(CLIPS)
    assert not caplog.records


def test_data_composite_lists_a_misspelt_emotion_among_the_excluded(shared_data, tmp_path, capsys):
    """`icegan data composite` on the official sheets with one emotion misspelt counted 144 CASME II clips instead of
    145 without saying why (a row outside the composite is not listed); the row is now listed as excluded."""
    wb = openpyxl.load_workbook(shared_data / "annotations" / SHEET)
    row = next(r for r in wb.worksheets[0].iter_rows(min_row=2) if r[1].value == "EP09_01" and r[0].value == "02")
    row[8].value = "hapiness"
    wb.save(tmp_path / SHEET)
    (tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx").symlink_to(shared_data / "annotations" / "SAMM_Micro_FACS_Codes_v2.xlsx")
    out = tmp_path / "composite.json"
    assert icegan_main(["data", "composite", "--annotations-dir", str(tmp_path), "--json", str(out)]) == 1
    d = json.loads(out.read_text())
    assert (d["casme2"]["clips"], d["casme2"]["positive"], d["samm"]["clips"]) == (144, 31, 133)
    why = (f"emotion 'hapiness' (sheet row {row[0].row}) is not a label of the casme2 sheet (happiness, disgust, "
           "repression, surprise, others, fear, sadness): the clip is left out of the composite; correct the cell")
    assert {"clip": "sub02/EP09_01", "reason": why, "rule": "unknown_emotion"} in d["casme2"]["excluded"]
    assert len(d["casme2"]["excluded"]) == 3 and d["samm"]["excluded"] == []
    assert f"excluded casme2/sub02/EP09_01: {why}" in capsys.readouterr().out


def test_a_row_pasted_twice_in_the_megc2019_table_names_both_lines(shared_data, tmp_path):
    """A duplicated row of ``combined_3_class2_for_optical_flow.csv`` was named 'row 23' (its place among the rows,
    0-based), not the file's lines."""
    from icegan.data.features import CSV_NAME, read_megc2019_table
    src = shared_data / "megc2019_htnet"
    lines = (src / CSV_NAME).read_text().splitlines()
    keep = [lines[0]] + [ln for ln in lines[1:] if ln.startswith(("casme2,sub01,", "casme2,sub02,"))]
    root = tmp_path / "megc"
    root.mkdir()
    (root / "flow_uvos_28").symlink_to(src / "flow_uvos_28")
    (root / CSV_NAME).write_text("\n".join(keep + [keep[2]]) + "\n")
    clip = keep[2].split(",")[2]
    with pytest.raises(ValueError) as exc:
        read_megc2019_table(root)
    assert str(exc.value) == (f"{root / CSV_NAME}, lines 3 and {len(keep) + 1}: clip '{clip}' of subject "
                              f"'casme2/sub01' appears twice; delete the extra row")
    (root / CSV_NAME).write_text("\n".join(keep) + "\n")
    assert len(read_megc2019_table(root)) == len(keep) - 1


def test_a_release_folder_without_subject_folders_says_what_it_holds(casme2_copy, tmp_path):
    """A copy unzipped one folder too deep (``root/CASME2_RAW_selected/CASME2_RAW_selected/sub01``): the official
    folder was taken as the one holding the subjects, and every clip was 'not on disk'. Now the root is refused,
    naming the folder looked in and what it holds."""
    from icegan.data.base import DatasetLayoutError
    root = casme2_copy()
    root.rename(tmp_path / "inner")
    root.mkdir()
    (tmp_path / "inner").rename(root / "CASME2_RAW_selected")
    with pytest.raises(DatasetLayoutError) as exc:
        CASME2(tmp_path)
    assert str(exc.value) == (f"{root}: no casme2 subject folders found (expected e.g. "
                              f"CASME2_RAW_selected/sub01/EP02_01f/img46.jpg); it holds CASME2_RAW_selected/")
    assert len(CASME2(root).records()) == len(CLIPS)            # the inner folder given as the root reads
    (root / "CASME2_RAW_selected").rename(tmp_path / "flat")
    (tmp_path / "flat" / "CASME2_RAW_selected").mkdir()     # an empty official folder beside the subject folders
    assert CASME2(tmp_path / "flat").root == tmp_path / "flat"


def test_a_clip_folder_holding_its_frames_one_level_deeper_says_so(casme2_copy, tmp_path):
    """``sub01/EP02_01f/EP02_01f/img46.jpg``: 'no frame images in .../EP02_01f' now adds what the folder holds."""
    root = casme2_copy()
    clip = root / "sub01" / "EP02_01f"
    clip.rename(tmp_path / "frames")
    clip.mkdir()
    (tmp_path / "frames").rename(clip / "EP02_01f")
    assert _problems(check_dataset("casme2", root))["casme2/sub01/EP02_01f"] == [
        f"[skip] no frame images in {clip} (it holds EP02_01f/: the frames one folder too deep?)"]


# -- defects that were already handled: pinned here on the real layouts ----------------------------------------
@pytest.mark.parametrize("defect,clip,expected", [
    ("onset_outside", "casme2/sub01/EP02_01f", "[skip] onset frame 10 not on disk (frames present: 46-61)"),
    ("zero_byte_apex", "casme2/sub01/EP19_05f", "[skip] unreadable image(s) for frame(s) 416"),
    ("missing_between", "casme2/sub02/EP09_01", "[warn] missing frames 40, 59-125 inside onset..offset 26-125"),
    ("empty_folder", "casme2/sub02/EP09_01", "[skip] no frame images in"),
])
def test_data_check_and_prepare_name_each_defect(casme2_copy, tmp_path, defect, clip, expected):
    """One defect per copy: data check's line for the clip, and preparation skips exactly the clips data check
    skips, each with a reason (a missing frame between onset and apex is a warning: the clip is prepared)."""
    def onset_outside(rows):
        rows[0][3] = 10
    root = casme2_copy(onset_outside if defect == "onset_outside" else None)
    if defect == "missing_between":
        (root / "sub02" / "EP09_01" / "img40.jpg").unlink()
    if defect == "zero_byte_apex":
        (root / "sub01" / "EP19_05f" / "img416.jpg").write_bytes(b"")
    if defect == "empty_folder":
        for f in (root / "sub02" / "EP09_01").iterdir():
            f.unlink()
    rep = check_dataset("casme2", root)
    lines = _problems(rep)[clip]
    assert any(line.startswith(expected) for line in lines), lines
    p = _prepare(root, tmp_path)
    skipped = dict(zip(p.skipped["key"], p.skipped["reason"]))
    assert sorted(skipped) == sorted(s["clip"] for s in rep.clips_skipped)
    assert len(p.manifest) + len(skipped) == len(CLIPS)
    if expected.startswith("[warn]"):
        assert clip.split("/")[-1] in p.manifest["clip"].tolist()
    else:
        assert skipped[clip]


def test_a_renamed_subject_folder_is_named_on_both_sides(casme2_copy, tmp_path):
    """``sub2`` on disk for the sheet's ``sub02``: its clips are 'not on disk' by subject, and the folder is listed as
    clip folders the sheet does not have, so the user sees both names."""
    root = casme2_copy()
    (root / "sub02").rename(root / "sub2")
    rep = check_dataset("casme2", root).as_dict()
    assert rep["missing_subjects"] == {"casme2/sub02": 1}
    assert rep["not_in_sheet"] == ["casme2/sub2/EP09_01"]
    p = _prepare(root, tmp_path)
    assert dict(zip(p.skipped["key"], p.skipped["reason"])) == {
        "casme2/sub02/EP09_01": f"subject folder {root / 'sub02'} not on disk"}


def test_a_sheet_exported_as_csv_with_a_bom_and_windows_line_ends_and_a_path_with_spaces(casme2_copy, tmp_path):
    """The sheet saved as 'CSV UTF-8' by a spreadsheet on Windows (BOM, CRLF), in a folder whose name has a space
    and accents: the same records as the .xlsx."""
    base = tmp_path / "my data" / "données é"
    base.mkdir(parents=True)
    root = casme2_copy(base=base)
    wb = openpyxl.load_workbook(base / "annotations" / SHEET, read_only=True)
    rows = [["" if c is None else str(c) for c in r] for r in wb.active.iter_rows(values_only=True)]
    wb.close()
    csv = base / "annotations" / "casme2 sheet.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(",".join(r) for r in rows).encode() + b"\r\n")
    key = lambda r: (r.key, r.onset, r.apex, r.offset, r.class3, r.frame_numbers)     # noqa: E731
    assert [key(r) for r in CASME2(root, csv).records()] == [key(r) for r in CASME2(root).records()]
    p = _prepare(root, tmp_path)
    assert len(p.manifest) == len(CLIPS) and p.skipped.empty
    out = tmp_path / "check.json"
    assert icegan_main(["data", "check", "--dataset", "casme2", "--root", str(root), "--annotations", str(csv),
                        "--json", str(out)]) == 0
    assert json.loads(out.read_text())["clips_usable"] == len(CLIPS)


def test_a_feature_table_with_a_bom_and_windows_line_ends_reads_as_written(tmp_path):
    """A feature table saved by a spreadsheet on Windows ('CSV UTF-8': BOM, CRLF) reads the same as the plain file,
    the first column's name included."""
    from icegan.data.feature_table import load_table_features
    rng = np.random.default_rng(0)
    text = "dataset,subject,clip,label,path\n"
    for i in range(3):
        np.save(tmp_path / f"m{i}.npy", rng.uniform(0, 1, (3, 8, 8)).astype(np.float32))
        text += f"casme2,sub0{i + 1},EP0{i},{i},m{i}.npy\n"
    plain, windows = tmp_path / "plain.csv", tmp_path / "windows.csv"
    plain.write_text(text)
    windows.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    a, b = load_table_features(plain), load_table_features(windows)
    assert b.samples.equals(a.samples) and np.array_equal(b.features.numpy(), a.features.numpy())
    assert b.samples["dataset"].tolist() == ["casme2"] * 3
