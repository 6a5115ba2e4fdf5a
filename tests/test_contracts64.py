"""Contracts 64: :func:`icegan.ensemble.off_top_score` refuses a y_pred that is no class id (a fraction, NaN) and
scores that are not (n, K) with its documented message; :func:`icegan.protocol.respelt_like` keeps a categorical
subject column's values; :func:`flownet.frame_io.read_frame` reads a JPEG padded before its end marker (the image
complete) as ``cv2.imdecode`` does; a ``max_folds`` run extended later trains its first folds with the threads of
the uninterrupted run."""
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from test_jpeg63 import _jpegs
from test_resume57 import CFG
from test_threads63 import _InProcessPool, _pooled_toy_run

from flownet.frame_io import read_frame
from icegan.ensemble import off_top_score
from icegan.protocol import respelt_like

SCORES = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])


@pytest.mark.parametrize("y_pred, bad", [([-0.5, 0], "-0.5"), ([2.5, 0], "2.5"), ([1.9, 0], "1.9"),
                                         ([2, np.nan], "nan"), ([np.inf, 0], "inf")])
def test_off_top_score_refuses_a_y_pred_that_is_no_whole_class_id(y_pred, bad):
    """-0.5 was read as class 0, 2.5 as class 2, NaN gave numpy's 'cannot convert float NaN to integer'."""
    with pytest.raises(ValueError) as e:
        off_top_score(SCORES, np.array(y_pred))
    assert str(e.value) == (f"y_pred holds class id {bad}, outside the class ids 0..2 of the 3 score columns; give "
                            "each row's predicted class as one of them")


def test_off_top_score_takes_whole_float_class_ids_and_refuses_scores_that_are_not_2d():
    np.testing.assert_array_equal(off_top_score(SCORES, np.array([1.0, 0.0])), [True, False])
    with pytest.raises(ValueError) as e:            # was a bare IndexError
        off_top_score(np.array([0.2, 0.5]), np.array([1, 0]))
    assert str(e.value) == ("scores of shape (2,) are not (n, K), one row of K class scores for each y_pred; give "
                            "a 2-D array")


def test_respelt_like_keeps_a_categorical_subject_column():
    """The respelt subject came back NaN (cast back to the old categories, which lack the new spelling)."""
    frame = pd.DataFrame({"subject": pd.Categorical(["smic/s1", "smic/s1", "smic/s2"]), "clip": ["a", "b", "c"],
                          "y": [1, 2, 3]})
    like = pd.DataFrame({"subject": ["smic/s01", "smic/s01", "smic/s2"], "clip": ["a", "b", "c"]})
    out = respelt_like(frame, like)
    assert list(out["subject"]) == ["smic/s01", "smic/s01", "smic/s2"]
    assert isinstance(out["subject"].dtype, pd.CategoricalDtype)
    assert sorted(out["subject"].cat.categories) == ["smic/s01", "smic/s2"]
    assert list(out["clip"]) == ["a", "b", "c"] and list(out["y"]) == [1, 2, 3]
    assert out["y"].dtype == frame["y"].dtype


def test_a_jpeg_padded_before_its_end_marker_reads_as_cv2_imdecode_reads_it(tmp_path, capfd):
    """8 zero bytes before EOI: libjpeg says "Corrupt JPEG data: 3 extraneous bytes before marker 0xd9", yet the
    pixels equal the intact file's; it was refused as corrupt. Damaged scan data that libjpeg finished early, its
    line "206 extraneous bytes before marker 0xd9" too (coded data, not zeros), is still refused."""
    good, bad = _jpegs(tmp_path, 3)
    data = good.read_bytes()
    eoi = data.rindex(b"\xff\xd9")
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(data[:eoi] + bytes(8) + data[eoi:])
    capfd.readouterr()
    for flag in (cv2.IMREAD_GRAYSCALE, cv2.IMREAD_COLOR):
        want = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        np.testing.assert_array_equal(cv2.imdecode(np.fromfile(padded, np.uint8), flag), want)
        assert "extraneous bytes before marker 0xd9" in capfd.readouterr().err       # libjpeg's line, unwatched
        np.testing.assert_array_equal(read_frame(padded, flag), want)
    assert "Corrupt JPEG data" not in capfd.readouterr().err
    with pytest.raises(ValueError, match=r"corrupt JPEG data \(libjpeg: 206 extraneous bytes before marker 0xd9\)"):
        read_frame(bad)


def test_a_max_folds_run_extended_later_keeps_the_threads_of_an_uninterrupted_run(tmp_path, monkeypatch):
    """4 one-fold groups, ProcessGroupMap(4) on 16 CPUs: max_folds=1 started 1 worker of 16 threads, extended to
    max_folds=2 one of 8 (by groups 2 then 1 in scope); the uninterrupted max_folds=2 run and a full run start
    workers of 4 threads, as now every step of the extended run does."""
    from icegan.executors import ProcessGroupMap
    from icegan.protocol import run_loso
    toy, folds_fn = _pooled_toy_run(monkeypatch)

    def run(out, max_folds):
        return run_loso(toy.samples, None, tmp_path / out, config=CFG, progress=False, folds_fn=folds_fn,
                        folds_per_call=1, group_map=ProcessGroupMap(4), max_folds=max_folds)

    def threads(out):
        return [json.loads(line)["threads_per_worker"]
                for line in (tmp_path / out / "environment.jsonl").read_text().splitlines()]
    run("ext", 1)
    extended = run("ext", 2)
    assert run("direct", 2) == extended
    assert threads("ext") == [4, 4] and threads("direct") == [4]
    run("full", 0)
    assert threads("full") == [4]
    assert _InProcessPool.started == [(1, 4), (1, 4), (2, 4), (4, 4)]
