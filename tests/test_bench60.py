"""bench/ scripts over finished runs refuse what is no whole LOSO result on the real labels (a max_folds run, a null
run, runs of two protocols, runs that disagree on a clip's label), apply the config keys that cut a run
(epoch_curve.py: max_folds, data.train_subject_fraction), and say a user's slip in one line (exit 2), not a
traceback."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from _bench import load_bench
from _one_line_error import one_line_error

ROOT = Path(__file__).resolve().parents[1]


def _run(d: Path, subjects, y_true, y_pred=None, protocol="SDE", dataset="smic", permute=-1, folds_total=0):
    """A finished run folder ``d`` (predictions.csv with 3-class scores, run.json, config.yaml): one clip per entry of
    ``subjects``; ``permute`` >= 0 a null run (data.permute_labels), ``folds_total`` > its folds a max_folds run."""
    d.mkdir(parents=True)
    y_pred = list(y_true) if y_pred is None else y_pred
    scores = np.eye(3)[np.asarray(y_pred)] * 0.8 + 0.2 / 3
    pd.DataFrame({"fold": [sorted(set(subjects)).index(s) for s in subjects],
                  "dataset": [s.split("/")[0] for s in subjects], "subject": subjects,
                  "clip": [f"{s.split('/')[1]}_c{i}" for i, s in enumerate(subjects)], "y_true": y_true,
                  "y_pred": y_pred, "score_negative": scores[:, 0], "score_positive": scores[:, 1],
                  "score_surprise": scores[:, 2]}).to_csv(d / "predictions.csv", index=False)
    header = {"protocol": protocol, "dataset": dataset, "oracle_epoch": False, "folds": sorted(set(subjects))}
    if folds_total:
        header["folds_total"] = folds_total
    (d / "run.json").write_text(json.dumps(header))
    (d / "config.yaml").write_text(yaml.safe_dump({"name": d.name, "seed": 0, "protocol": protocol,
                                                   "model": {"name": "logreg"},
                                                   "data": {"permute_labels": permute}}))
    return d


SMIC = ["smic/s1", "smic/s1", "smic/s2", "smic/s2"]
SAMM = ["samm/006", "samm/006", "samm/007"]


# ------------------------------------------------------------------ 1. + 5. merge_runs.py

def test_merge_runs_refuses_null_partial_and_mixed_protocol_runs(tmp_path, capsys):
    """A null run, a max_folds run and runs of two protocols were merged silently (the merged metrics.md without the
    NULL RUN / PARTIAL label); a missing run was an EnsembleError traceback."""
    mod = load_bench("merge_runs")
    smic = _run(tmp_path / "smic", SMIC, [0, 1, 2, 0])
    samm = _run(tmp_path / "samm", SAMM, [0, 1, 2], dataset="samm")
    assert mod.merge_runs([smic, samm], tmp_path / "ok")["n_samples"] == 7          # whole real runs: merged
    null = _run(tmp_path / "null", SMIC, [0, 1, 2, 0], permute=0)
    with pytest.raises(ValueError, match=rf"{null} is a null run \(data.permute_labels >= 0"):
        mod.merge_runs([null, samm], tmp_path / "m1")
    part = _run(tmp_path / "part", SAMM, [0, 1, 2], dataset="samm", folds_total=28)
    with pytest.raises(ValueError, match=rf"{part} is a partial run \[PARTIAL: 2 of 28 folds\].*max_folds"):
        mod.merge_runs([smic, part], tmp_path / "m2")
    cde = _run(tmp_path / "cde", ["casme2/sub01", "casme2/sub02"], [0, 1], protocol="CDE", dataset=None)
    with pytest.raises(ValueError, match=rf"{cde} is a run of protocol CDE and {smic} of SDE; merge runs of one protocol"):
        mod.merge_runs([smic, cde], tmp_path / "m3")
    for runs in ([null, samm], [smic, part], [smic, cde], [tmp_path / "nosuch", smic]):
        assert mod.main([str(r) for r in runs] + ["--out", str(tmp_path / "m4")]) == 2
        assert one_line_error(capsys, str(runs[0] if runs[0] != smic else runs[1])).startswith(
            "merge_runs.py: error: ")
    assert not (tmp_path / "m4").exists() and not (tmp_path / "m1").exists()


# ------------------------------------------------------------------ 2. shared_errors.py

def test_shared_errors_refuses_partial_null_and_disagreeing_runs(tmp_path, capsys):
    """Two max_folds runs of the same folds, a null run beside a real one, and runs whose y_true differ on a clip
    (the first run's labels were used) were all counted."""
    mod = load_bench("shared_errors")
    a = _run(tmp_path / "a", SMIC, [0, 1, 2, 0], [0, 0, 2, 0])
    b = _run(tmp_path / "b", SMIC, [0, 1, 2, 0], [1, 1, 2, 0])
    assert mod.error_shares([a, b])["error"].tolist() == [0.5, 0.5, 0.0, 0.0]
    p0 = _run(tmp_path / "p0", SMIC, [0, 1, 2, 0], folds_total=16)
    p1 = _run(tmp_path / "p1", SMIC, [0, 1, 2, 0], [0, 0, 0, 0], folds_total=16)
    with pytest.raises(ValueError, match=rf"{p0} is a partial run \[PARTIAL: 2 of 16 folds\]"):
        mod.error_shares([p0, p1])
    null = _run(tmp_path / "null", SMIC, [2, 1, 0, 0], permute=3)
    with pytest.raises(ValueError, match=rf"{null} is a null run"):
        mod.error_shares([a, null])
    other = _run(tmp_path / "other", SMIC, [0, 1, 1, 0])             # the third clip's label differs
    with pytest.raises(ValueError, match=rf"{other} labels clip smic/s2/s2_c2 1 and {a} 2"):
        mod.error_shares([a, other])
    assert mod.main([str(a), str(null)]) == 2
    assert one_line_error(capsys, str(null)).startswith("shared_errors.py: error: ")


# ------------------------------------------------------------------ 3. decision_rule_bound.py

def test_decision_rule_bound_refuses_partial_and_null_runs(tmp_path, capsys):
    """A max_folds run and a null run went into the 'mean of N' row."""
    bench = load_bench("decision_rule_bound")
    subjects = ["casme2/sub01", "casme2/sub01", "casme2/sub02", "casme2/sub02", "casme2/sub03", "casme2/sub03"]
    whole = _run(tmp_path / "whole", subjects, [0, 1, 2, 0, 1, 2], protocol="CDE", dataset=None)
    assert bench.main([str(whole)]) == 0
    assert "| mean of 1 |" in capsys.readouterr().out
    part = _run(tmp_path / "part", subjects, [0, 1, 2, 0, 1, 2], protocol="CDE", dataset=None, folds_total=68)
    null = _run(tmp_path / "null", subjects, [0, 1, 2, 0, 1, 2], protocol="CDE", dataset=None, permute=0)
    for bad, what in ((part, "is a partial run [PARTIAL: 3 of 68 folds]"), (null, "is a null run")):
        assert bench.main([str(whole), str(bad)]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith(f"decision_rule_bound.py: error: {bad} {what}") and "mean of" not in captured.out


# ------------------------------------------------------------------ 4. epoch_curve.py

def test_epoch_curve_applies_max_folds_and_the_training_subject_share(monkeypatch, capsys):
    """max_folds=2 trained all folds and data.train_subject_fraction=0.5 trained on every training subject, printing
    the numbers of the whole run; both are applied now as icegan loso applies them."""
    import icegan.recognition as recognition
    from icegan.protocol import make_folds, subsample_training_subjects
    bench = load_bench("epoch_curve")
    seen = []

    def fake(cfg, x, y, subjects, folds, **kw):          # every fold's test clips right at both records
        seen.append((list(subjects), list(folds)))
        return [np.stack([np.eye(3)[y.numpy()[f.test_idx]]] * 2) for f in folds]
    monkeypatch.setattr(recognition, "fit_predict_folds", fake)
    argv = ["epoch_curve", "--config", str(ROOT / "configs" / "demo_features.yaml"), "--threads", "1",
            "model.epochs=2", "model.eval_every=1"]
    monkeypatch.setattr(sys, "argv", argv + ["max_folds=2"])
    bench.main()
    out = capsys.readouterr().out
    assert len(seen[0][1]) == 2 and "seed 0: 2 folds" in out and "[PARTIAL: 2 of 8 folds, max_folds" in out
    assert "| 2 | 1.0000 / 1.0000 | 1.0000 |" in out           # pooled over the two folds' clips only
    seen.clear()
    monkeypatch.setattr(sys, "argv", argv + ["data.train_subject_fraction=0.5"])
    bench.main()
    subjects, folds = seen[0]
    assert len(folds) == 8
    for f, whole in zip(folds, make_folds(subjects, "CDE")):
        want = subsample_training_subjects(whole, subjects, 0.5, 0).train_idx       # as FeatureFolds cuts them
        assert f.train_idx.tolist() == want.tolist() and len(want) < len(whole.train_idx)


# ------------------------------------------------------------------ 5. + 6. map_tables.py, learning_curve.py

def test_map_tables_names_a_missing_table_a_missing_map_and_a_clip_listed_twice(tmp_path, capsys):
    mod = load_bench("map_tables")
    nowhere = tmp_path / "no_megc"           # the checks come before the released table is read
    assert mod.main([str(tmp_path / "nosuch.csv"), "--subset", str(tmp_path / "o.csv"),
                     "--megc-root", str(nowhere)]) == 2
    assert one_line_error(capsys, str(tmp_path / "nosuch.csv")).startswith("map_tables.py: error: ")
    (tmp_path / "maps").mkdir()
    np.save(tmp_path / "maps" / "m0.npy", np.zeros((3, 28, 28), np.float32))
    rows = [{"dataset": "casme2", "subject": "casme2/sub01", "clip": "EP02_01f", "label": 1, "path": "maps/m0.npy"},
            {"dataset": "casme2", "subject": "casme2/sub02", "clip": "EP03_02", "label": 0, "path": "maps/m1.npy"}]
    table = tmp_path / "features.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    with pytest.raises(FileNotFoundError, match=rf"{table} line 3: the map {tmp_path / 'maps' / 'm1.npy'} of "
                                                r"casme2/sub02/EP03_02 is not found"):
        mod.map_tables(table, nowhere)
    pd.DataFrame([rows[0], dict(rows[0], label=2)]).to_csv(table, index=False)
    with pytest.raises(ValueError, match=rf"{table} lines 2 and 3 both hold clip casme2/sub01/EP02_01f"):
        mod.map_tables(table, nowhere)
    assert mod.main([str(table), "--mixed", str(tmp_path / "o.csv"), "--megc-root", str(nowhere)]) == 2
    assert "lines 2 and 3" in one_line_error(capsys, str(table))


def test_learning_curve_names_a_missing_run_and_says_one_share_has_no_fit(tmp_path, capsys):
    """A missing run folder was a FileNotFoundError traceback; a curve of one share printed 'never (slope <= 0)'
    beside slope nan."""
    mod = load_bench("learning_curve")
    assert mod.main([str(tmp_path / "nosuch"), str(tmp_path / "other")]) == 2
    assert one_line_error(capsys, str(tmp_path / "nosuch")).startswith("learning_curve.py: error: ")
    df = pd.DataFrame({"curve": "logreg", "fraction": 0.5, "subjects": [7.0, 7.0], "UF1": [0.4, 0.42],
                       "UAR": [0.45, 0.47], "run": ["a", "b"], "seed": [0, 1]})
    pts, fits = mod.summarize(df, 0.75)
    text = mod.markdown(pts, fits, 0.75)
    assert text.count("one share: no fit") == 2 and "never (slope <= 0)" not in text, text


# ------------------------------------------------------------------ review of the above (rbench60)

def test_map_tables_names_a_label_cell_that_is_no_megc2019_class_id(tmp_path, monkeypatch, capsys):
    """A features.csv with an empty label (a clip without a MEGC2019 class, as ``icegan features`` writes it) or a
    class name of another label set said only 'map_tables.py: error: cannot convert float NaN to integer' (or
    "invalid literal for int()"): now the file, line and clip, and the table to give. So is a whole number above 2
    (a class id of a larger label set), not told as a label that differs from the composite's."""
    import icegan.data.features as features
    mod = load_bench("map_tables")
    (tmp_path / "maps").mkdir()
    for i in range(2):
        np.save(tmp_path / "maps" / f"m{i}.npy", np.zeros((3, 28, 28), np.float32))
    composite = pd.DataFrame({"dataset": ["casme2"] * 2, "subject": ["casme2/sub01"] * 2,
                              "clip": ["EP02_01f", "EP03_02"], "label": [1, 0], "path": ["a.png", "b.png"]})
    monkeypatch.setattr(features, "read_megc2019_table", lambda root, datasets: composite.copy())
    table = tmp_path / "features.csv"
    for cell, said in (("", "has no label"), ("happiness", "has label 'happiness'"), ("3", "has label 3")):
        table.write_text("dataset,subject,clip,label,path\ncasme2,casme2/sub01,EP02_01f,1,maps/m0.npy\n"
                         f"casme2,casme2/sub01,EP03_02,{cell},maps/m1.npy\n")
        with pytest.raises(ValueError, match=rf"{table} line 3: casme2/sub01/EP03_02 {said}, not a MEGC2019 class id "
                                             r"0\.\.2.*data\.labels=megc2019.*features_labelled\.csv"):
            mod.map_tables(table, tmp_path)
        assert mod.main([str(table), "--subset", str(tmp_path / "o.csv"), "--megc-root", str(tmp_path)]) == 2
        err = one_line_error(capsys, str(table), "line 3", "EP03_02", "features_labelled.csv")
        assert "convert" not in err and "int()" not in err
    # a label column pandas reads as floats (a blank cell elsewhere is refused above; 1.0 itself is the id 1)
    table.write_text("dataset,subject,clip,label,path\ncasme2,casme2/sub01,EP02_01f,1.0,maps/m0.npy\n"
                     "casme2,casme2/sub01,EP03_02,0,maps/m1.npy\n")
    subset, _ = mod.map_tables(table, tmp_path)
    assert subset["clip"].tolist() == ["EP02_01f", "EP03_02"]


def test_learning_curve_refuses_null_and_partial_runs_by_their_records(tmp_path, capsys):
    """Null runs (data.permute_labels >= 0) made a learning curve like any other, without a NULL label; a partial
    run was told by the config's max_folds alone. Both are refused as the other bench scripts refuse them
    (icegan.report.refuse_partial_or_null: the config's permute_labels, run.json's folds_total)."""
    mod = load_bench("learning_curve")
    subjects = [f"smic/s{k}" for k in range(1, 7)]

    def point(name, fraction, permute=-1, folds_total=0):
        d = _run(tmp_path / name, subjects, [0, 1, 2, 0, 1, 2], permute=permute, folds_total=folds_total)
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg["data"]["train_subject_fraction"] = fraction
        cfg.update(dataset="smic", protocol="SDE")
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        (d / "metrics.json").write_text(json.dumps({"overall": {"UF1": 0.33, "UAR": 0.33}}))
        return d
    real = [point("r0", 0.5), point("r1", 1.0)]
    assert len(mod.read_runs(real)) == 2
    null = [point("n0", 0.5, permute=0), point("n1", 1.0, permute=0)]
    for runs in (null, [real[0], null[1]]):
        bad = next(r for r in runs if r in null)
        with pytest.raises(ValueError, match=rf"{bad} is a null run \(data.permute_labels >= 0"):
            mod.read_runs(runs)
        assert mod.main([str(r) for r in runs] + ["--plot", str(tmp_path / "p.png")]) == 2
        assert one_line_error(capsys, str(bad), "null run").startswith("learning_curve.py: error: ")
    part = point("p", 1.0, folds_total=12)            # run.json: 6 of 12 folds
    with pytest.raises(ValueError, match=rf"{part} is a partial run \[PARTIAL: 6 of 12 folds\]"):
        mod.read_runs([real[0], part])
    assert not (tmp_path / "p.png").exists()


def test_learning_curve_refuses_an_older_max_folds_run_whose_run_json_has_no_folds_total(tmp_path):
    """A max_folds run made before run.json recorded folds_total (b6cc5bc): its header lists the 3 folds it ran and
    nothing more, its config.yaml says max_folds: 3. learning_curve.py refused it by that key until 4691982, then took
    it as a curve point (refuse_partial_or_null read folds_total only). Refused again, naming the key and the folds;
    an older run whose max_folds cut nothing (100 of 6 folds) is still a point."""
    mod = load_bench("learning_curve")

    def point(name, subjects, max_folds):
        d = _run(tmp_path / name, subjects, [0, 1, 2, 0, 1, 2][:len(subjects)])
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg.update(dataset="smic", protocol="SDE", max_folds=max_folds)
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        (d / "metrics.json").write_text(json.dumps({"overall": {"UF1": 0.33, "UAR": 0.33}}))
        return d
    six = [f"smic/s{k}" for k in range(1, 7)]
    whole, uncut = point("whole", six, 0), point("uncut", six, 100)
    assert len(mod.read_runs([whole, uncut])) == 2
    old = point("old", six[:3], 3)                       # run.json: folds s1..s3, no folds_total
    with pytest.raises(ValueError, match=rf"{old} is a partial run \[PARTIAL: 3 folds, max_folds: 3 in its "
                                         rf"config.yaml\] \(max_folds\)"):
        mod.read_runs([whole, old])


def test_decision_rule_bound_says_a_slip_on_stderr_and_exits_2():
    """decision_rule_bound.py exited 1 (SystemExit with the message) where the other bench scripts exit 2."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        s = ["casme2/sub01", "casme2/sub01", "casme2/sub02", "casme2/sub02"]
        whole = _run(Path(tmp) / "whole", s, [0, 1, 2, 0], protocol="CDE", dataset=None)
        empty = Path(tmp) / "empty"                   # a null run's refusal: test_decision_rule_bound_refuses_...
        empty.mkdir()
        r = subprocess.run([sys.executable, str(ROOT / "bench" / "decision_rule_bound.py"), str(whole), str(empty)],
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 2, r.stderr
        said = f"{empty / 'predictions.csv'}: not found"
        assert r.stderr.startswith(f"decision_rule_bound.py: error: {said}") and "Traceback" not in r.stderr
        assert r.stdout == ""                         # no table begun before the refusal


def test_epoch_curve_plot_of_a_max_folds_run_is_tagged_partial(monkeypatch, tmp_path, capsys):
    """The printed lines of a max_folds curve said PARTIAL, its plot's title and axis did not."""
    import matplotlib.figure

    import icegan.recognition as recognition
    bench = load_bench("epoch_curve")
    monkeypatch.setattr(recognition, "fit_predict_folds", lambda cfg, x, y, subjects, folds, **kw: [
        np.stack([np.eye(3)[y.numpy()[f.test_idx]]] * 2) for f in folds])
    seen = {}
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, path, **kw: seen.update(
        title=fig.axes[0].get_title(), ylabel=fig.axes[0].get_ylabel()))
    argv = ["epoch_curve", "--config", str(ROOT / "configs" / "demo_features.yaml"), "--threads", "1",
            "--plot", str(tmp_path / "c.png"), "model.epochs=2", "model.eval_every=1"]
    monkeypatch.setattr(sys, "argv", argv + ["max_folds=2"])
    bench.main()
    assert "[PARTIAL: 2 of 8 folds]" in seen["title"] and "not a LOSO result" in seen["ylabel"], seen
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    assert "PARTIAL" not in seen["title"] + seen["ylabel"] and seen["ylabel"] == "pooled LOSO UF1"


def test_merge_runs_names_a_merge_given_as_a_run(tmp_path, capsys):
    """A merged.json folder given to merge again said '... is a run of protocol None'."""
    mod = load_bench("merge_runs")
    smic = _run(tmp_path / "smic", SMIC, [0, 1, 2, 0])
    samm = _run(tmp_path / "samm", SAMM, [0, 1, 2], dataset="samm")
    casme2 = _run(tmp_path / "casme2", ["casme2/sub01", "casme2/sub02"], [0, 1], dataset="casme2")
    merged = tmp_path / "merged"
    mod.merge_runs([smic, samm], merged)
    for runs in ([merged, casme2], [casme2, merged]):
        with pytest.raises(ValueError, match=rf"{merged} is a merge \(merged.json\) of {smic}, {samm}: give the "
                                             r"runs it merged"):
            mod.merge_runs(runs, tmp_path / "again")
        assert mod.main([str(r) for r in runs] + ["--out", str(tmp_path / "again")]) == 2
        assert "protocol None" not in one_line_error(capsys, str(merged), "a merge")
