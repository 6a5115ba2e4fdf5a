"""Error paths and fallback branches of icegan.data's preparation, data check, sheets and MEGC2019 feature loading
that the rest of the suite leaves unrun. Frames and flow maps are made here (random images, a few pixels); the
preparation runs on a clip list of them (cropped mode: no face detection)."""
from __future__ import annotations

import dataclasses
import os
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from _clip_records import clip_record
from PIL import Image

from icegan.data import prepare as prep

# --- prepare ----------------------------------------------------------------------------------------------------


def _clips(tmp_path, frames=range(1, 10), size=(24, 24)):
    """A clip list of one clip p01/take1: random grey frames img<n>.png of ``size`` (W, H), onset 1, apex 5,
    offset 9."""
    rng = np.random.default_rng(0)
    d = tmp_path / "take1"
    d.mkdir(parents=True)
    for n in frames:
        cv2.imwrite(str(d / f"img{n}.png"), rng.integers(0, 256, size[::-1], dtype=np.uint8))
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset,label\np01,take1,take1,1,5,9,positive\n")
    return csv


def _cfg(tmp_path, csv, **kw):
    return prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(csv))],
                              cache_root=str(tmp_path / "cache"), size=kw.pop("size", 16), workers=1, progress=False,
                              **kw)


def test_prepare_refuses_a_size_below_8_pixels(tmp_path):
    with pytest.raises(ValueError, match=r"^size must be >= 8, got 4$"):      # one bound, said once (PrepareConfig)
        _cfg(tmp_path, _clips(tmp_path), size=4)


def test_prepare_of_datasets_without_a_usable_clip_is_refused(tmp_path):
    """The one listed clip's frames folder is empty: it is skipped (warned), and no clip is left."""
    csv = _clips(tmp_path, frames=())
    with pytest.raises(prep.PrepareError, match=r"prepare: no usable clip in the configured datasets; see the "
                                                r"warnings"):
        prep.prepare_dataset(_cfg(tmp_path, csv))


def test_a_cache_without_sequences_says_how_to_get_them(tmp_path):
    p = prep.prepare_dataset(_cfg(tmp_path, _clips(tmp_path)))
    with pytest.raises(FileNotFoundError, match=r"sequences[/\\]00000\.npy: no sequence cached \(prepare with "
                                                r"sequences: true\)"):
        p.frames.sequence(0)


def test_unreadable_and_odd_sequence_frames_are_left_out_with_notes(tmp_path):
    """sequences: true; frame 2 of another size and frame 8 undecodable (neither a key frame): the sequence holds
    the 7 other frames onset..offset, and the manifest's notes name both (the odd size with its sizes)."""
    csv = _clips(tmp_path)
    cv2.imwrite(str(tmp_path / "take1" / "img2.png"), np.zeros((20, 24), np.uint8))
    (tmp_path / "take1" / "img8.png").write_bytes(b"not an image")
    p = prep.prepare_dataset(_cfg(tmp_path, csv, sequences=True))
    assert p.frames.sequence(0).shape == (7, 16, 16)
    notes = p.manifest["notes"].iloc[0]
    assert "frame 2 (img2.png)" in notes and "24×20" in notes and "; not used" in notes, notes
    assert "sequence frame(s) 2, 8 unreadable, left out" in notes, notes


def test_a_leftover_temporary_of_this_process_is_replaced(tmp_path):
    """A .tmp-<hash>-<pid> folder of this very process (an earlier call that failed while writing) is removed before
    the cache is written again, its files gone."""
    csv = _clips(tmp_path)
    first = prep.prepare_dataset(_cfg(tmp_path, csv))
    digest = first.cache_dir.name.rsplit("_", 1)[-1] if "_" in first.cache_dir.name else first.cache_dir.name
    shutil.rmtree(first.cache_dir)
    tmp = first.cache_dir.parent / f".tmp-{digest}-{os.getpid()}"
    (tmp / "junk").mkdir(parents=True)
    again = prep.prepare_dataset(_cfg(tmp_path, csv))
    assert not tmp.exists() and (again.cache_dir / "COMPLETE").is_file()
    assert not (again.cache_dir / "junk").exists()


def test_a_cache_another_process_finished_first_is_used_and_the_temporary_removed(tmp_path, monkeypatch):
    """The rename of the finished temporary fails because another process renamed its own copy of the same cache
    there first: that cache is loaded and this temporary deleted."""
    csv = _clips(tmp_path)
    real = os.rename

    def raced(src, dst):
        shutil.copytree(src, dst)                       # the other process's identical cache, renamed first
        (dst / "other").write_text("theirs")
        raise OSError(39, "Directory not empty", str(dst))

    monkeypatch.setattr(prep.os, "rename", raced)
    p = prep.prepare_dataset(_cfg(tmp_path, csv))
    monkeypatch.setattr(prep.os, "rename", real)
    assert (p.cache_dir / "other").read_text() == "theirs"
    assert not list(p.cache_dir.parent.glob(".tmp-*"))
    assert p.frames.onset.shape == (1, 16, 16)


def test_load_prepared_names_a_missing_file_and_a_short_onset_array(tmp_path):
    p = prep.prepare_dataset(_cfg(tmp_path, _clips(tmp_path)))
    d = p.cache_dir
    np.save(d / "onset.npy", np.zeros((0, 16, 16), np.uint8))
    with pytest.raises(prep.PrepareError, match=r"manifest has 1 rows but onset\.npy 0"):
        prep.load_prepared(d)
    (d / "COMPLETE").unlink()
    with pytest.raises(prep.PrepareError, match=r"is not a complete icegan cache: COMPLETE missing \(run `icegan "
                                                r"prepare` again\)"):
        prep.load_prepared(d)


def test_worker_context_falls_back_to_spawn_without_forkserver(monkeypatch):
    import multiprocessing as mp
    real = mp.get_context

    def no_forkserver(method=None):
        if method == "forkserver":
            raise ValueError("cannot find context for 'forkserver'")
        return real(method)

    monkeypatch.setattr(mp, "get_context", no_forkserver)
    assert prep.worker_context().get_start_method() == "spawn"


def test_composite_records_of_a_clip_list_and_of_an_unknown_dataset(tmp_path):
    csv = _clips(tmp_path)
    recs = list(prep.composite_records("clips", csv))
    assert [(r.key, r.onset, r.apex, r.offset) for r in recs] == [("clips/p01/take1", 1, 5, 9)]
    with pytest.raises(ValueError, match=r"unknown dataset 'casme3'; expected casme2, samm, smic or clips"):
        list(prep.composite_records("casme3", tmp_path))


def test_prepared_pairs_of_no_composite_clip_are_refused(tmp_path):
    """A clip list whose only clip has no label: the GAN's prepared pairs have no composite clip to train on."""
    from icegan.gan.pairs import load_prepared_pairs
    csv = _clips(tmp_path)
    csv.write_text("subject,clip,frames,onset,apex,offset,label\np01,take1,take1,1,5,9,\n")
    with pytest.raises(ValueError, match=r"no composite clip \(negative, positive, surprise\) among the 1 prepared "
                                         r"clips of \['clips'\]"):
        load_prepared_pairs(_cfg(tmp_path, csv), img_size=16, progress=False)


# --- data check -------------------------------------------------------------------------------------------------


def test_a_clip_of_a_missing_subject_folder_names_the_subject_folder(tmp_path):
    rec = clip_record(tmp_path)
    rec = dataclasses.replace(rec, clip_dir=tmp_path / "sub09" / "c", subject_dir=tmp_path / "sub09")
    from icegan.data.check import record_problems
    (p,) = record_problems(rec)
    assert p.severity == "skip"
    assert p.problem == f"in the {rec.listed_in} but missing on disk (subject folder {tmp_path / 'sub09'} not found)"


def test_record_problems_decodes_the_frames_when_asked(tmp_path):
    """read_images=True without a list of unreadable frames: each frame is decoded, a corrupt one is reported."""
    from icegan.data.check import record_problems
    rec = clip_record(tmp_path, frames=range(10, 21))
    for n, p in zip(rec.frame_numbers, rec.frame_paths):
        cv2.imwrite(str(p), np.full((8, 8), n, np.uint8))
    rec.frame_paths[3].write_bytes(b"junk")
    assert record_problems(rec) == []
    probs = [p.problem for p in record_problems(rec, read_images=True)]
    assert len(probs) == 1 and "13" in probs[0] and "unreadable" in probs[0], probs


# --- sheets, composite --------------------------------------------------------------------------------------------


SAMM_HEADER = "Subject,Filename,Onset Frame,Apex Frame,Offset Frame,Action Units,Estimated Emotion,Objective Classes\n"


def test_samm_sheet_notes_an_empty_apex_cell_and_an_objective_class_that_is_no_number(tmp_path):
    from icegan.data.sheets import read_samm_sheet
    csv = tmp_path / "samm.csv"
    csv.write_text(SAMM_HEADER + "6,006_1_2,10,,30,AU1,Anger,x\n6,006_1_3,10,20,30,AU1,Anger,2\n")
    rows = read_samm_sheet(csv)
    assert rows[0].apex is None and "apex cell is empty (sheet row 2)" in rows[0].notes
    assert "objective class 'x' is not a class number (sheet row 2)" in rows[0].notes, rows[0].notes
    assert rows[1].notes == [] or all("objective" not in n for n in rows[1].notes)


def test_a_true_false_cell_is_not_a_frame_number(tmp_path):
    """A spreadsheet boolean (TRUE typed in a frame column) is not read as frame 1."""
    import openpyxl

    from icegan.data.sheets import parse_frame, read_casme2_sheet
    assert parse_frame(True) == (None, "True is not a frame number")
    wb = openpyxl.Workbook()
    wb.active.append(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                      "Estimated Emotion"])
    wb.active.append([1, "EP01_01", 10, True, 30, "AU12", "happiness"])
    wb.save(tmp_path / "c.xlsx")
    (row,) = read_casme2_sheet(tmp_path / "c.xlsx")
    assert row.apex is None and "apex cell True is not a frame number (sheet row 2)" in row.notes


def test_read_sheet_refuses_an_unknown_dataset(tmp_path):
    from icegan.data.sheets import read_sheet
    with pytest.raises(ValueError, match=r"unknown dataset 'casme'; expected one of \['casme2', 'samm', 'smic'\]"):
        read_sheet("casme", tmp_path / "x.xlsx")


def test_sheet_lookalikes_of_a_missing_folder_is_empty(tmp_path):
    from icegan.data.composite import sheet_lookalikes
    from icegan.data.sheets import CASME2_SHEET
    assert sheet_lookalikes(tmp_path / "nope", CASME2_SHEET) == []
    (tmp_path / "casme2-coding-20140508 (1).xlsx").write_bytes(b"")
    assert sheet_lookalikes(tmp_path, CASME2_SHEET) == [
        f"{tmp_path} holds casme2-coding-20140508 (1).xlsx: if that is the sheet, save it as {tmp_path / CASME2_SHEET}"]


# --- MEGC2019 features --------------------------------------------------------------------------------------------


def _maps(tmp_path, sizes=((28, 28), (28, 28)), header="dataset,sub,filename_o,label"):
    """A megc2019_htnet-like root of len(sizes) CASME II clips with random RGB flow maps of the given (W, H)."""
    from icegan.data.features import CSV_NAME, FLOW_DIR
    (tmp_path / FLOW_DIR).mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = [header]
    for i, (w, h) in enumerate(sizes):
        rows.append(f"casme2,sub0{i + 1},EP0{i}_01,{i % 3}")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            tmp_path / FLOW_DIR / f"sub0{i + 1}_EP0{i}_01 .png")
    (tmp_path / CSV_NAME).write_text("\n".join(rows) + "\n")
    return tmp_path


def test_a_sample_label_that_is_no_number_is_named():
    from icegan.data.features import validate_samples
    df = pd.DataFrame({"dataset": ["casme2"], "subject": ["casme2/sub01"], "clip": ["a"], "label": ["pos"]})
    with pytest.raises(ValueError, match=r"^mine\.csv: row 0 \(clip 'a'\): label 'pos' is not a class id in 0\.\.2$"):
        validate_samples(df, source="mine.csv")
    df["label"] = [None]
    with pytest.raises(ValueError, match=r"label None is not a class id"):
        validate_samples(df, source="mine.csv")


def test_a_feature_table_without_a_needed_column_names_it_and_the_columns_found(tmp_path):
    from icegan.data.features import CSV_NAME, read_megc2019_table
    root = _maps(tmp_path, header="dataset,subject,filename_o,label")
    with pytest.raises(ValueError, match=rf"{CSV_NAME}: missing column\(s\) \['sub'\]; found \['dataset', 'subject', "
                                         rf"'filename_o', 'label'\]"):
        read_megc2019_table(root)


def test_a_flow_map_saved_without_the_space_before_png_is_explained(tmp_path):
    from icegan.data.features import FLOW_DIR, load_megc2019_features
    root = _maps(tmp_path)
    (root / FLOW_DIR / "sub02_EP01_01 .png").rename(root / FLOW_DIR / "sub02_EP01_01.png")
    with pytest.raises(FileNotFoundError, match=r"flow feature file of clip 'EP01_01' not found: .*sub02_EP01_01 \.png "
                                                r"\(a file without the space before \.png exists"):
        load_megc2019_features(root)


def test_a_flow_map_that_is_no_image_is_named(tmp_path):
    from icegan.data.features import FLOW_DIR, load_megc2019_features
    root = _maps(tmp_path)
    (root / FLOW_DIR / "sub01_EP00_01 .png").write_bytes(b"\x89PNG junk")
    with pytest.raises(ValueError, match=r"flow feature file of clip 'EP00_01' cannot be read as an image: "
                                         r".*sub01_EP00_01 \.png: "):
        load_megc2019_features(root)


def test_flow_maps_of_any_size_must_be_square(tmp_path):
    from icegan.data.features import load_megc2019_features
    root = _maps(tmp_path, sizes=((32, 30), (32, 30)))
    with pytest.raises(ValueError, match=r"flow feature file of clip 'EP00_01' is 32×30: the maps must be square: "):
        load_megc2019_features(root, size=None)
    root = _maps(tmp_path / "b", sizes=((32, 32), (32, 32)))
    assert load_megc2019_features(root, size=None).features.shape == (2, 3, 32, 32)


def test_the_torch_dataset_of_the_features_has_one_item_per_clip(tmp_path):
    from icegan.data.features import MEGC2019Features
    ds = MEGC2019Features(_maps(tmp_path))
    assert len(ds) == 2
    assert ds[1]["clip"] == "EP01_01" and ds[1]["label"] == 1 and tuple(ds[1]["features"].shape) == (3, 28, 28)
