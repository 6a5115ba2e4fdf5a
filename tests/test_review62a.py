"""Review of audit 62's data commits (f_ra): a mistyped onset/apex cell gives exit 1 in `data check` (with and without
--composite-only) and `data composite`; a colour read with OpenCV 5's IMREAD_COLOR_RGB; problems_found without a
redundant clause; SMIC's unread class-folder clips skipped by the loader itself; raw mode on face crops warned once
per dataset entry; load_state_dict_strict through is_bare_state_dict."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from icegan.cli import main
from icegan.data.check import check_dataset, record_problems

from _clip_records import casme2_sheet, clip_record, grey_frames

# --------------------------------------------------------------------- 1: a mistyped onset/apex cell gives 1

@pytest.mark.parametrize("composite_only", [False, True])
def test_data_check_exits_1_for_a_mistyped_apex_cell(tmp_path, composite_only):
    """apex '5.7' was 'the sheet's own coding' (exit 0) without --composite-only and a layout problem (1) with it."""
    for c in ("EP01_01", "EP01_02"):
        grey_frames(tmp_path / "casme2" / "sub01" / c)
    sheet = casme2_sheet(tmp_path / "ann", "1,EP01_01,2,5,9,4,disgust", "1,EP01_02,2,5.7,9,4,happiness")
    js = tmp_path / "check.json"
    assert main(["data", "check", "--dataset", "casme2", "--root", str(tmp_path / "casme2"), "--annotations",
                 str(sheet), "--no-read-images", "--json", str(js)] + ["--composite-only"] * composite_only) == 1
    rep = json.loads(js.read_text())
    assert rep["skipped_for_sheet_coding"] == []
    assert any("'5.7'" in p["problem"] for p in rep["clips_with_problems"])


def test_a_release_slash_still_is_the_sheets_coding_and_a_samm_empty_cell_is_not(tmp_path):
    """CASME II's '/' (and its empty cell) stay the sheet's own coding; an empty SAMM onset/apex cell is a typo."""
    def coded(dataset, note):
        rec = clip_record(tmp_path, dataset=dataset, apex=None, notes=(note,))
        return [p.sheet_coding for p in record_problems(rec) if p.severity == "skip"]
    assert coded("casme2", "apex cell '/' is not a frame number (sheet row 3)") == [True]
    assert coded("casme2", "apex cell is empty (sheet row 3)") == [True]
    assert coded("samm", "apex cell is empty (sheet row 15)") == [False]
    assert coded("casme2", "apex cell '5.7' is not a frame number (sheet row 3)") == [False]


def test_data_composite_exits_1_for_a_mistyped_apex_cell(tmp_path, capsys):
    """The row was excluded with rule 'megc2019' and exit 0, as the release's own apex '/'."""
    casme2_sheet(tmp_path / "ann", "1,EP01_01,2,5,9,4,disgust", "1,EP01_02,2,5.7,9,4,happiness",
           "1,EP01_03,2,/,9,4,surprise")
    js = tmp_path / "c.json"
    assert main(["data", "composite", "--annotations-dir", str(tmp_path / "ann"), "--json", str(js)]) == 1
    assert "excluded casme2/sub01/EP01_02: apex is not a frame number (apex cell '5.7'" in capsys.readouterr().out
    assert [(e["clip"], e["rule"]) for e in json.loads(js.read_text())["casme2"]["excluded"]] == [
        ("sub01/EP01_02", "miswritten_cell"), ("sub01/EP01_03", "megc2019")]


@pytest.mark.parametrize("command", ["composite", "check"])
def test_the_help_texts_name_a_mistyped_cell_as_exit_1(capsys, command):
    with pytest.raises(SystemExit):
        main(["data", command, "--help"])
    assert "an onset or apex cell mistyped" in " ".join(capsys.readouterr().out.split())


# -------------------------------------------------------------------------------- 2: IMREAD_COLOR_RGB

def test_read_frame_reads_a_colour_png_with_imread_color_rgb(tmp_path):
    if not hasattr(cv2, "IMREAD_COLOR_RGB"):
        pytest.skip("this OpenCV build has no IMREAD_COLOR_RGB (OpenCV < 4.10)")
    from flownet.frame_io import read_frame
    path = tmp_path / "c.png"
    cv2.imwrite(str(path), np.dstack([np.full((8, 8), v, np.uint8) for v in (10, 100, 200)]))    # B, G, R
    img = read_frame(path, cv2.IMREAD_COLOR_RGB)
    assert img.shape == (8, 8, 3) and img[0, 0].tolist() == [200, 100, 10]
    grey = read_frame(path, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)        # still read grey, as BGR2GRAY
    assert grey.shape == (8, 8) and int(grey[0, 0]) == int(cv2.cvtColor(
        np.array([[[10, 100, 200]]], np.uint8), cv2.COLOR_BGR2GRAY)[0, 0])


# ---------------------------------------------------------------- 3, 4: SMIC class folders, problems_found

def _smic(tmp_path):
    micro = tmp_path / "HS" / "s1" / "micro"
    for folder in ("negative/s1_ne_01", "negative/s1_po_02", "positive/s1_po_01", "surprised/s1_sur_01",
                   "surprised/take3"):
        grey_frames(micro / folder, range(1, 4))
    return micro


def test_smic_records_skip_the_clips_of_a_class_folder_that_is_no_class(tmp_path):
    """check.unread_class_folder_clips walked the tree a second time; the loader now skips those clips itself,
    keeping the class each name says."""
    from icegan.data.smic import SMIC
    micro = _smic(tmp_path)
    ds = SMIC(tmp_path)
    ds.records()
    why = (f"in class folder {micro / 'surprised'}, which is not one of ('negative', 'positive', 'surprise'): not read "
           f"(rename the folder to its class)")
    assert [(k, w) for k, w in ds.skipped_clip_folders if w == why] == [
        ("smic/s1/micro/surprised/s1_sur_01", why), ("smic/s1/micro/surprised/take3", why)]
    assert ds.class_folder_skips == {"smic/s1/micro/surprised/s1_sur_01": "surprise",
                                     "smic/s1/micro/surprised/take3": None}


def test_every_clip_skipped_outside_the_sheets_coding_has_a_skip_problem(tmp_path):
    """problems_found's clause 'a clip of clips_skipped not coded' added nothing: each such clip has a skip problem
    of its own key or of its folder (an SMIC class folder that is no class), so the other clause gives 1 already."""
    _smic(tmp_path / "smic")
    for c in ("EP01_01", "EP01_02", "EP01_03"):
        grey_frames(tmp_path / "casme2" / "sub01" / c)
    sheet = casme2_sheet(tmp_path / "ann", "1,EP01_01,2,5,9,4,disgust", "1,EP01_02,2,/,9,4,happiness",
                   "1,EP01_03,2,15,20,4,surprise", "1,EP01_04,2,5,9,4,surprise")
    for rep in (check_dataset("smic", tmp_path / "smic", read_images=False),
                check_dataset("casme2", tmp_path / "casme2", sheet, read_images=False)):
        coded = set(rep.skipped_for_sheet_coding)
        skips = [p["clip"] for p in rep.clips_with_problems if p["severity"] == "skip" and p["clip"] not in coded]
        for s in rep.clips_skipped:
            if s["clip"] not in coded:
                assert any(s["clip"] == k or s["clip"].startswith(k + "/") for k in skips), s
        assert rep.problems_found()
        assert len(rep.clips_skipped) > len(coded)


# ------------------------------------------------------------------------ 6: load_state_dict_strict

def test_load_state_dict_strict_tests_a_state_dict_with_is_bare_state_dict(monkeypatch):
    import torch

    from flownet.models import state_dict as sdm
    seen = []
    real = sdm.is_bare_state_dict
    monkeypatch.setattr(sdm, "is_bare_state_dict", lambda obj: seen.append(obj) or real(obj))
    lin = torch.nn.Linear(2, 1)
    sdm.load_state_dict_strict(lin, {k: v.clone() for k, v in lin.state_dict().items()}, "w.pt")
    assert len(seen) == 1
    sdm.load_state_dict_strict(torch.nn.ReLU(), {}, "w.pt")        # a module without tensors: an empty dict loads
    for bad in ([1], {"weight": 1}):
        with pytest.raises(ValueError, match="w.pt: not a state dict of tensors"):
            sdm.load_state_dict_strict(lin, bad, "w.pt")


# ----------------------------------------------------------------- 5: raw mode on face crops, warned once

def test_outside_text_counts_the_clips_and_gives_the_range_of_shares():
    from icegan.data.prepare import OUTSIDE_ADVICE, outside_text
    assert outside_text([0.55, 0.571, 0.56], 217).startswith(
        "3 of 217 clips: 55-57% of the face crop lies outside the frame and is filled by repeating its edge pixels")
    assert outside_text([0.57], 1).startswith("1 of 1 clip: 57% of the face crop")
    assert outside_text([0.57], 1).endswith(OUTSIDE_ADVICE)
