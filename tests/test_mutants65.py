"""Tests that kill mutants surviving audit 65's mutation run of session 64's code: ``icegan table`` refusing a
metrics.json UF1 above 1 (report.check_metric), a 0-step teacher recording only its init weights' real subjects
(flownet/selfsup.py), a JPEG with an Exif thumbnail (its own end marker) padded before its final end marker
(frame_io._zero_padded_eoi), maps scaled into [0, 0.5] warned about as not min–max normalised
(feature_table.load_table_features), exactly five folds only in one ensemble member listed without "and 0 more"
(ensemble._folds_difference), and a table without provenance.json and no map paths being of unknown maps
(saved_recognizer._released_maps)."""
from __future__ import annotations

import logging
import re
import struct
from functools import partial

import cv2
import numpy as np
import pytest
from _feature_tables import write_feature_table
from _flow_sizes import TINY_SRFLOWNET
from _runs import finished_run_with_metrics, random_prob_fn, set_metric
from test_flowtrain59 import _selfsup_cfg
from test_jpeg63 import _jpegs
from test_tablecheck64 import ROWS

import flownet.data.real_pairs as real_pairs
from flownet.frame_io import read_frame
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import load_srflownet, save_srflownet
from flownet.selfsup import train_selfsup
from icegan.cli import main
from icegan.data.feature_table import load_table_features
from icegan.data.features import FeatureSet
from icegan.data.toy_features import make_toy_features
from icegan.ensemble import EnsembleError, ensemble_runs
from icegan.protocol import run_loso
from icegan.saved_recognizer import maps_provenance


@pytest.mark.parametrize("value", [1.5, float("inf")])
def test_table_refuses_a_metrics_json_uf1_above_one(tmp_path, capsys, value):
    """A run folder of its metrics.json alone (no run.json: nothing to check it against) whose overall UF1 is 1.5 or
    inf: no icegan run writes one, so ``icegan table`` refuses it (was shown when only v >= 0 was checked)."""
    d = finished_run_with_metrics(tmp_path / "lr_s0", ROWS)
    (d / "run.json").unlink()
    (d / "predictions.csv").unlink()
    set_metric(d, "overall", "UF1", value)
    assert main(["table", str(d)]) == 2
    assert f"{d / 'metrics.json'}: 'overall.UF1' is {value!r}, not a number in [0, 1];" in capsys.readouterr().err


def test_a_teacher_of_no_steps_records_only_its_init_weights_real_subjects(tmp_path, shared_data, monkeypatch):
    """train.teacher_steps=0 from init weights that saw casme2/sub99 only: teacher.pt records 0 steps and the init's
    real_pair_subjects alone, not the run's train subjects it never trained on."""
    monkeypatch.setattr(real_pairs, "RealFramePairs", partial(real_pairs.RealFramePairs, max_clips=3))   # faster
    init = tmp_path / "init.pt"
    save_srflownet(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), init, meta={"real_pair_subjects": ["casme2/sub99"]})
    train_selfsup(_selfsup_cfg(tmp_path, shared_data, "train.teacher_steps=0", "train.student_steps=0",
                               f"train.init_weights={init}"), progress=False)
    teacher = load_srflownet(tmp_path / "s" / "teacher.pt")
    assert teacher.meta["steps"] == 0
    assert teacher.meta["real_pair_subjects"] == ["casme2/sub99"]


def test_a_jpeg_with_an_exif_thumbnail_padded_before_its_end_marker_reads_as_cv2_imdecode(tmp_path, capfd):
    """An APP1 Exif segment holding a thumbnail JPEG (its own FF D9, before the main scan) and 8 zero bytes before
    the main image's end marker: the padding is found before the end marker after the last start-of-scan, so the
    file reads as the unpadded one decodes (was refused as corrupt when the thumbnail's end marker was taken)."""
    good, _ = _jpegs(tmp_path, 3)
    data = good.read_bytes()
    ok, thumb = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[::8, ::8])
    assert ok
    payload = b"Exif\x00\x00" + thumb.tobytes()
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    eoi = data.rindex(b"\xff\xd9")
    padded = tmp_path / "thumb_padded.jpg"
    padded.write_bytes(data[:2] + app1 + data[2:eoi] + bytes(8) + data[eoi:])
    want = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(read_frame(padded), want)
    assert "Corrupt JPEG data" not in capfd.readouterr().err


def test_maps_scaled_into_the_lower_half_are_warned_as_not_normalised(tmp_path, caplog):
    """normalize=none: maps halved into [0, 0.5] (each channel's min 0, max 0.5) do not reach 1: warned about."""
    fs = make_toy_features(n_subjects_per_dataset=1, seed=5)
    t = write_feature_table(tmp_path, FeatureSet(fs.samples, 0.5 * fs.features), labels="empty", name="halved.csv")
    with caplog.at_level(logging.WARNING, logger="icegan.data.feature_table"):
        load_table_features(t, labelled=False)
    assert f"{len(fs.samples)} of {len(fs.samples)} clips have a channel not min–max normalised" in caplog.text


def test_exactly_five_folds_only_in_one_member_are_listed_without_more(tmp_path):
    """A 6-subject run and a max_folds=1 run of it: the refusal lists the 5 subjects only in the full run, with no
    "and 0 more" after them."""
    toy = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    run_loso(toy.samples, random_prob_fn(1), tmp_path / "full", progress=False)
    run_loso(toy.samples, random_prob_fn(2), tmp_path / "one", max_folds=1, progress=False)
    with pytest.raises(EnsembleError) as err:
        ensemble_runs([tmp_path / "full", tmp_path / "one"], tmp_path / "ens")
    assert re.search(r"in its folds \(1 vs 6 subjects; [^,;() ]+(, [^,;() ]+){4} only in "
                     rf"{re.escape(str(tmp_path / 'full'))}\)", str(err.value)), str(err.value)
    assert "and 0 more" not in str(err.value)


def test_a_table_without_provenance_and_no_map_paths_has_unknown_maps(tmp_path):
    """No provenance.json and an empty list of map paths: nothing says the maps are the release's, so ``{}``."""
    t = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=5))
    assert not (tmp_path / "provenance.json").exists()
    assert maps_provenance("table", t, []) == {}
