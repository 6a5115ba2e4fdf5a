"""`icegan data check` says what is wrong and where: each unreadable frame's file and the reason read_frame gives, a
frame file that is a link to nothing (or a folder) instead of leaving it out silently, and a subject entry of the
sheet that is on disk but is a file or a dangling link rather than a folder."""
import dataclasses
import os

from icegan.data.check import SKIP, WARN, check_dataset, record_problems, untaken_images_text
from icegan.data.records import list_frames

from _clip_records import clip_record, constant_clip, grey_frames


def _problems(rep, clip):
    return [(p["problem"], p["severity"]) for p in rep.clips_with_problems if p["clip"] == clip]


# -- 1: an unreadable frame is named, with the reason read_frame gives ------------------------------------------
def test_unreadable_frames_are_named_with_the_reason_in_the_report_and_its_text(tmp_path):
    csv = constant_clip(tmp_path)                      # frames img1..img10.png, onset 2, apex 5
    frames = tmp_path / "c1"
    (frames / "img5.png").write_bytes(b"")                              # the apex: empty
    (frames / "img7.png").write_bytes(bytes(2000))                      # not an image
    rep = check_dataset("clips", csv, read_images=True, workers=1)
    (line, sev), = [p for p in _problems(rep, "clips/me/c1") if p[0].startswith("unreadable")]
    assert sev == SKIP
    assert line == ("unreadable image(s) for frame(s) 5, 7: img5.png (the file is empty (0 bytes; an interrupted "
                    "copy or unzip?); copy the file again), img7.png (not an image OpenCV can decode)")
    assert f"  [skip] clips/me/c1: {line}" in rep.text().splitlines()
    assert rep.unreadable_images == sorted(str(frames / f"img{n}.png") for n in (5, 7))     # the JSON as before
    assert "img5.png (the file is empty" in rep.clips_skipped[0]["reason"]


def test_unreadable_frames_past_the_fifth_are_counted_not_listed(tmp_path):
    folder = grey_frames(tmp_path / "clip", range(10, 21))
    bad = [11, 12, 13, 14, 16, 17, 18]                      # 7 non-key frames (onset 10, apex 15)
    for n in bad:
        (folder / f"img{n}.png").write_bytes(b"not a png")
    rec = clip_record(tmp_path)
    rec = dataclasses.replace(rec, frame_paths=tuple(folder / f"img{n}.png" for n in range(10, 21)))
    (line, sev), = [(p.problem, p.severity) for p in record_problems(rec, read_images=True)
                    if p.problem.startswith("unreadable")]
    assert sev == WARN
    assert line.startswith("unreadable image(s) for frame(s) 11-14, 16-18: "
                           "img11.png (not an image OpenCV can decode), ")
    assert line.count("(not an image OpenCV can decode)") == 5 and "img16.png" in line and "img17.png" not in line
    assert line.endswith(", and 2 more")


def test_a_set_of_unreadable_paths_without_reasons_still_gives_the_frames(tmp_path):
    rec = clip_record(tmp_path)
    path = dict(zip(rec.frame_numbers, rec.frame_paths))
    got = [(p.problem, p.severity) for p in record_problems(rec, unreadable={path[15]})]
    assert got == [("unreadable image(s) for frame(s) 15", SKIP)]


# -- 2: a frame file that is a dangling link (or a folder) is reported, not silently left out ---------------------
def test_a_dangling_link_among_the_frames_is_a_note_naming_file_and_target(tmp_path):
    folder = grey_frames(tmp_path / "clip")                   # img1..img10.png
    (folder / "img5.png").unlink()
    os.symlink("/nonexistent/img5.png", folder / "img5.png")
    (folder / "img200.png").mkdir()
    numbers, paths, notes = list_frames(folder)
    assert numbers == (1, 2, 3, 4, 6, 7, 8, 9, 10)            # the frames taken do not change
    assert "img5.png: link to /nonexistent/img5.png, which does not exist; not taken as a frame" in notes
    assert "img200.png: a folder, not an image file; not taken as a frame" in notes


def test_data_check_reports_the_dangling_apex_link_of_a_clip(tmp_path):
    csv = constant_clip(tmp_path)
    apex = tmp_path / "c1" / "img5.png"
    apex.unlink()
    os.symlink(tmp_path / "gone" / "img5.png", apex)
    rep = check_dataset("clips", csv, read_images=False)
    got = _problems(rep, "clips/me/c1")
    assert got[0] == ("apex frame 5 not on disk (frames present: 1-4, 6-10)", SKIP)
    assert (f"img5.png: link to {tmp_path / 'gone' / 'img5.png'}, which does not exist; not taken as a frame",
            WARN) in got


def test_a_folder_of_dangling_links_says_so_in_its_skip_line(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for n in range(1, 8):
        os.symlink(f"../gone/img{n}.png", folder / f"img{n}.png")
    why = untaken_images_text(folder)
    assert why == (f": 7 image file(s) found, none taken: 7 link(s) to files that do not exist (img1.png, img2.png, "
                   f"img3.png, img4.png, img5.png, ...): img1.png is a link to ../gone/img1.png "
                   f"({tmp_path / 'gone' / 'img1.png'})")
    rec = clip_record(tmp_path, frames=())
    assert [p.problem for p in record_problems(rec) if p.severity == SKIP] == [f"no frame images in {folder}{why}"]


def test_several_dangling_links_make_one_bounded_note(tmp_path):
    folder = grey_frames(tmp_path / "clip", range(1, 11))
    for n in range(2, 10):
        (folder / f"img{n}.png").unlink()
        os.symlink(f"/nowhere/img{n}.png", folder / f"img{n}.png")
    numbers, _, notes = list_frames(folder)
    assert numbers == (1, 10)
    (note,) = notes
    assert note.startswith("img2.png: link to /nowhere/img2.png, which does not exist; img3.png: link to ")
    assert "img6.png: link to /nowhere/img6.png" in note and "img7.png" not in note
    assert note.endswith("; and 3 more links to files that do not exist; not taken as frames")


# -- 3: a subject of the sheet that is a file or a dangling link on disk -----------------------------------------
def test_a_subject_entry_that_is_a_file_or_a_dangling_link_is_said_so(shared_data, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(shared_data / "casme2" / "sub03", root / "sub03")
    (root / "sub01").write_text("zipdata")                           # an archive never extracted
    os.symlink("/nonexistent/sub02", root / "sub02")
    sheet = shared_data / "annotations" / "CASME2-coding-20140508.xlsx"
    rep = check_dataset("casme2", root, sheet, read_images=False)
    assert rep.missing_subjects["casme2/sub01"] == 9 and rep.missing_subjects["casme2/sub02"] == 13   # counts kept
    assert rep.subjects_not_folders == {
        "casme2/sub01": f"{root / 'sub01'} is a file, not a folder (an archive not extracted?)",
        "casme2/sub02": f"{root / 'sub02'} is a link to /nonexistent/sub02, which does not exist"}
    line, = [s for s in rep.text().splitlines() if s.startswith("subjects in the sheet but not on disk: ")]
    assert line.startswith(f"subjects in the sheet but not on disk: casme2/sub01 (9 clips; {root / 'sub01'} is a "
                           f"file, not a folder (an archive not extracted?)), casme2/sub02 (13 clips; {root / 'sub02'}"
                           f" is a link to /nonexistent/sub02, which does not exist), casme2/sub04 (")
    assert rep.as_dict()["subjects_not_folders"] == rep.subjects_not_folders
