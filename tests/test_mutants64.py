"""Tests that kill mutants surviving audit 64's mutation run: a compare of identical predictions whose subjects are
spelt casme/sub01 in one run and casme_sub01 in the other (significance.py), UTF-16 text with Windows CRLF line ends
(flownet/io.py), libjpeg's warnings other than "Corrupt JPEG data" passed on to stderr (frame_io.py), which groups of
folds a max_folds run extended by a grouped run trains (protocol.py), and an ensemble of two runs with the same
subjects in another fold order (ensemble.py)."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from _clip_records import casme2_sheet
from _runs import centroid_fold_fn
from test_respell63 import _fixed_probs

from flownet.frame_io import read_frame
from flownet.io import wide_text
from icegan.data.feature_table import read_csv_cells
from icegan.data.sheets import SheetError, read_casme2_sheet
from icegan.data.toy_features import make_toy_features
from icegan.ensemble import EnsembleError, ensemble_runs
from icegan.protocol import _groups_to_run, run_loso
from icegan.significance import RunSet, bootstrap_compare, subject_confusions, subject_order


def _run_set(label: str, pred: pd.DataFrame, dataset_of: dict) -> RunSet:
    """A RunSet of one run's predictions ``pred`` (subject, clip, y_true, y_pred), subjects in
    :func:`subject_order`'s order, ``dataset_of``: subject → its dataset."""
    subjects = subject_order(pred["subject"].unique())
    clips = pred[["subject", "clip", "y_true"]].sort_values(["subject", "clip"]).reset_index(drop=True)
    return RunSet(label, [], subjects, subject_confusions(pred, subjects)[None], clips, False,
                  datasets_of=[dataset_of[s] for s in subjects])


def test_identical_predictions_under_slash_and_flat_subject_spellings_differ_by_nothing():
    """casme/sub01, casme2/sub01, casme2/sub02 against casme_sub01, casme2_sub01, casme2_sub02: subject_order puts
    them in different orders (casme/ < casme2/ but casme2_ < casme_), so the second run's confusions must be put
    in the first's order; unreordered, a resample paired one subject's confusions with another's and the paired
    difference of identical predictions was not 0."""
    ids = ["casme/sub01", "casme2/sub01", "casme2/sub02"]
    flat = {s: s.replace("/", "_") for s in ids}
    rng = np.random.default_rng(1)
    rows = []
    for k, s in enumerate(ids):               # accuracies differ by subject: a mispairing shows
        for c in range(6):
            y = c % 3
            rows.append((s, f"EP{c:02d}", y, y if rng.random() < 0.2 + 0.35 * k else (y + 1) % 3))
    pred = pd.DataFrame(rows, columns=["subject", "clip", "y_true", "y_pred"])
    a = _run_set("slash", pred, {s: s.split("/")[0] for s in ids})
    b = _run_set("flat", pred.assign(subject=pred["subject"].map(flat)), {flat[s]: s.split("/")[0] for s in ids})
    assert a.subjects == ids and b.subjects == ["casme2_sub01", "casme2_sub02", "casme_sub01"]
    row = bootstrap_compare([a, b], resamples=999, seed=0)[1]
    assert row["dUF1"] == 0.0
    assert row["dUF1_ci"] == (0.0, 0.0) and row["dUAR_ci"] == (0.0, 0.0)
    assert row["p_tie"] == 1.0


#: a feature table with Windows line ends (a spreadsheet's CSV export)
CRLF_TABLE = "subject,clip,f1\r\ns01,c1,0.5\r\ns02,c2,0.25\r\n"


@pytest.mark.parametrize("codec, endian", [("utf-16-le", "little-endian"), ("utf-16-be", "big-endian")])
def test_utf16_without_a_bom_with_crlf_line_ends_is_named_utf16(tmp_path, codec, endian):
    """CR is a control character as tab and LF are: UTF-16 text with \\r\\n line ends is named UTF-16 (by
    wide_text, read_csv_cells and the annotation-sheet reader), not 'NUL bytes' of a UTF-8 file."""
    name = f"UTF-16 text ({endian}, without a byte-order mark: NUL bytes between its characters)"
    data = CRLF_TABLE.encode(codec)
    assert wide_text(data) == name
    csv = tmp_path / "t.csv"
    csv.write_bytes(data)
    with pytest.raises(ValueError) as exc:
        read_csv_cells(csv)
    assert str(exc.value) == (f"{csv}: {name}, not UTF-8: save it as CSV UTF-8 (a spreadsheet's 'CSV UTF-8' "
                              "format)")
    sheet = casme2_sheet(tmp_path / "sheet", "1,EP02_01f,46,59,86,A,happiness")
    sheet.write_bytes(sheet.read_text().replace("\n", "\r\n").encode(codec))
    with pytest.raises(SheetError) as exc:
        read_casme2_sheet(sheet)
    assert str(exc.value) == f"{sheet}: {name}, not UTF-8: save it as 'CSV UTF-8' or as .xlsx"


def test_a_libjpeg_warning_other_than_corrupt_data_reaches_stderr_and_the_image_is_read(tmp_path, capfd):
    """A JPEG whose start-of-scan header gives Se 62 (not 63): libjpeg warns 'Invalid SOS parameters for
    sequential JPEG' and decodes it. read_frame watches stderr for 'Corrupt JPEG data'; any other line it caught
    must be written on to stderr, and the image returned."""
    img = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    data = bytearray(cv2.imencode(".jpg", img)[1].tobytes())
    i = data.index(b"\xff\xda")
    n = data[i + 4]                           # SOS: length (2 bytes), Ns, Ns x (id, tables), Ss, Se, Ah/Al
    assert data[i + 5 + 2 * n + 1] == 63
    data[i + 5 + 2 * n + 1] = 62
    path = tmp_path / "f.jpg"
    path.write_bytes(bytes(data))
    capfd.readouterr()
    out = read_frame(path, cv2.IMREAD_GRAYSCALE)
    assert out.shape == (64, 64) and out.dtype == np.uint8
    assert "Invalid SOS parameters for sequential JPEG" in capfd.readouterr().err


def test_a_group_with_one_finished_fold_of_two_is_trained_again():
    """Folds a-d in groups of 2, only a finished (a max_folds=1 run): the group [a, b] is not all finished, so it
    is run (its b is missing); only a group whose folds are all finished is left out."""
    class F:
        def __init__(self, subject):
            self.subject = subject
    folds = [F(s) for s in "abcd"]
    assert [[f.subject for f in g] for g in _groups_to_run(folds, 2, {"a"})] == [["a", "b"], ["c", "d"]]
    assert [[f.subject for f in g] for g in _groups_to_run(folds, 2, {"a", "b"})] == [["c", "d"]]
    assert _groups_to_run(folds, 0, {"a", "b", "c", "d"}) == []


def test_a_grouped_run_whose_second_fold_of_a_group_is_damaged_trains_that_group_again(tmp_path, capsys):
    """Folds in groups of 2; a resume finds fold 1's row damaged, so only fold 0 of the group [0, 1] is finished:
    the group is trained again (a grouped network's scores depend on every fold of its group) and the resumed run
    ends with every fold, as the uninterrupted run. (A max_folds=1 run is not extended by groups of 2: refused.)"""
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    one = centroid_fold_fn(toy, [])

    def grouped(calls):
        def folds_fn(group):
            calls.append([f.index for f in group])
            return [one(f) for f in group]
        return folds_fn
    out, first, second = tmp_path / "x", [], []
    ref = run_loso(toy.samples, None, out, folds_fn=grouped(first), folds_per_call=2, config={"seed": 0},
                   progress=False)
    assert first == [[0, 1], [2, 3]]
    pred_csv = out / "predictions.csv"
    whole = pred_csv.read_bytes()
    rows = pd.read_csv(pred_csv, dtype=str, keep_default_na=False)
    rows.loc[rows.index[rows["fold"] == "1"][0], "y_pred"] = "9"
    rows.to_csv(pred_csv, index=False)
    capsys.readouterr()
    assert run_loso(toy.samples, None, out, folds_fn=grouped(second), folds_per_call=2, config={"seed": 0},
                    progress=False) == ref
    assert second == [[0, 1]]
    assert pred_csv.read_bytes() == whole


def test_two_runs_of_the_same_subjects_in_another_fold_order_are_not_averaged(tmp_path):
    """Run b holds run a's subjects with its first two folds swapped (run.json and the fold column): no id is
    respelt, so its folds are not a's and the ensemble is refused, naming the folds (only a respelling, smic/s1
    against smic/s01, may reorder a member's folds)."""
    samples = pd.DataFrame([{"dataset": "casme2", "subject": f"casme2/sub0{s}", "clip": f"EP0{k}", "label": k}
                            for s in (1, 2, 3) for k in range(3)])
    run_loso(samples, _fixed_probs(len(samples)), tmp_path / "a", progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    run_json = tmp_path / "b" / "run.json"
    header = json.loads(run_json.read_text())
    folds = header["folds"]
    assert folds == ["casme2/sub01", "casme2/sub02", "casme2/sub03"]
    header["folds"] = [folds[1], folds[0], folds[2]]
    run_json.write_text(json.dumps(header))
    pred_csv = tmp_path / "b" / "predictions.csv"
    pred = pd.read_csv(pred_csv, dtype=str, keep_default_na=False)
    pred["fold"] = pred["fold"].map({"0": "1", "1": "0", "2": "2"})
    pred.to_csv(pred_csv, index=False)
    with pytest.raises(EnsembleError) as exc:
        ensemble_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "ens")
    assert str(exc.value).startswith(f"{tmp_path / 'b'} differs from {tmp_path / 'a'} in its folds (3 vs 3 "
                                     "subjects, first difference"), str(exc.value)
    assert str(exc.value).endswith("only runs of the same LOSO can be averaged")
