"""A run whose flow network trained on held-out subjects' real motion (metrics.json ``real_motion_seen``) is called
NOT leak-free wherever a run's selection is printed: icegan compare, a suite's results.md, train.py's runs/summary.md
and metrics.md's "this run" row, all from one function (icegan.report.selection_word), as icegan table; they said
honest (or ORACLE alone). A damaged provenance.json is warned about once in an icegan loso run, and a bad field
other than real_motion_subjects does not hide that record."""
from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _fold_fn(x, y, seed=0):
    def fold_fn(fold):                   # nearest class mean: a deterministic toy recognizer
        m = np.stack([x[fold.train_idx][y[fold.train_idx] == c].mean(0) for c in range(3)])
        d = -((x[fold.test_idx][:, None] - m[None]) ** 2).sum(-1) / 100
        d[:, 0] += 1e-3 * seed           # seeds score otherwise, as a seeded recipe's do
        e = np.exp(d - d.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    return fold_fn


def _write_table(d, fs) -> list[dict]:
    """A feature table of class ids (as icegan features writes them) of the feature set ``fs`` in folder ``d``:
    ``maps/<i>.npy`` and ``features.csv``; returns its rows."""
    (d / "maps").mkdir(parents=True)
    rows = []
    for i, r in fs.samples.reset_index(drop=True).iterrows():
        np.save(d / "maps" / f"{i}.npy", fs.features[i].numpy().astype("float32"))
        rows.append({"dataset": r["dataset"], "subject": r["subject"], "clip": r["clip"], "label": int(fs.labels[i]),
                     "path": f"maps/{i}.npy"})
    pd.DataFrame(rows).to_csv(d / "features.csv", index=False)
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Toy LOSO runs: two seeds whose flow saw one held-out subject's motion, two seeds of another recipe that did
    not, and an oracle-epoch run that did."""
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    root = tmp_path_factory.mktemp("leak")
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    x, y = fs.features.flatten(1).numpy(), fs.labels.numpy()
    fold_fn = _fold_fn(x, y)
    first = sorted(set(fs.samples["subject"]))[0]
    out = {}
    for s in (0, 1):
        fold_s = _fold_fn(x, y, s)
        out[f"seen_s{s}"] = root / f"seen_s{s}"
        run_loso(fs.samples, fold_s, out[f"seen_s{s}"], config={"model": "centroid", "seed": s}, progress=False,
                 motion_seen=[first], motion_seen_by="flow.weights: selfsup.pt")
        out[f"plain_s{s}"] = root / f"plain_s{s}"
        run_loso(fs.samples, fold_s, out[f"plain_s{s}"], config={"model": "centroid2", "seed": s}, progress=False)
    out["oracle"] = root / "oracle"
    run_loso(fs.samples, fold_fn, out["oracle"], config={"model": "c"}, oracle_epoch=True, progress=False,
             motion_seen=[first], motion_seen_by="w")
    return out


def test_selection_word_gives_every_selection():
    from icegan.report import selection_word
    assert selection_word(False, False) == "honest"
    assert selection_word(False, True) == "NOT leak-free"
    assert selection_word(True, False) == "ORACLE epoch"
    assert selection_word(True, True) == "ORACLE epoch; NOT leak-free"
    assert selection_word(True, True, "**ORACLE**") == "**ORACLE**; NOT leak-free"


# ------------------------------------------------------------------------------------------------- icegan compare

@pytest.mark.parametrize("fmt", ["markdown", "latex", "csv"])
def test_compare_says_not_leak_free(runs, fmt):
    """icegan compare printed 'honest' for an entry whose runs record real_motion_seen (icegan table said NOT
    leak-free for the same runs)."""
    from icegan.significance import bootstrap_compare, comparison_table, load_run_set
    sets = [load_run_set("plain", [runs["plain_s0"], runs["plain_s1"]]),
            load_run_set("seen", [runs["seen_s0"], runs["seen_s1"]]), load_run_set("oracle", [runs["oracle"]])]
    assert [s.leaky for s in sets] == [False, True, True]
    assert [s.restrict("casme2").leaky for s in sets] == [False, True, True]
    rows = bootstrap_compare(sets, resamples=100)
    text = comparison_table(rows, resamples=100, fmt=fmt)
    lines = {ln.split(",")[0] if fmt == "csv" else ln.split("|")[1].strip() if fmt == "markdown" else
             ln.split("&")[0].strip(): ln for ln in text.splitlines()
             if ln.startswith(("plain", "seen", "oracle", "|"))}
    oracle = {"markdown": "**ORACLE**", "latex": "ORACLE epoch", "csv": "ORACLE"}[fmt]
    assert "honest" in lines["plain"] and "leak-free" not in lines["plain"]
    assert "NOT leak-free" in lines["seen"] and "honest" not in lines["seen"]
    assert f"{oracle}; NOT leak-free" in lines["oracle"]


def test_compare_forest_plot_tags_a_leaky_entry(runs, tmp_path, monkeypatch):
    from icegan.significance import bootstrap_compare, forest_plot, load_run_set
    import matplotlib.axes
    said = []
    real = matplotlib.axes.Axes.set_yticklabels
    monkeypatch.setattr(matplotlib.axes.Axes, "set_yticklabels",
                        lambda self, labels, *a, **k: (said.extend(map(str, labels)), real(self, labels, *a, **k))[1])
    sets = [load_run_set("plain", [runs["plain_s0"]]), load_run_set("seen", [runs["seen_s0"]])]
    forest_plot([("all", bootstrap_compare(sets, resamples=100))], tmp_path / "c.png")
    assert "plain" in said and "seen [NOT leak-free]" in said


# -------------------------------------------------------------------------------------------------- icegan suite

@pytest.fixture(scope="module")
def suite_out(tmp_path_factory):
    """A one-seed suite of logreg on a feature table whose provenance.json records a subject whose motion trained
    the flow (seen), and on the same table without it (plain)."""
    from icegan.data.toy_features import make_toy_features
    from icegan.suite import run_suite
    root = tmp_path_factory.mktemp("suite")
    seen = root / "seen"
    rows = _write_table(seen, make_toy_features(n_subjects_per_dataset=2, clips_per_class=2))
    shutil.copytree(seen, root / "plain")
    (seen / "provenance.json").write_text(json.dumps({"flow": {"method": "srflownet"},
                                                      "real_motion_subjects": [rows[0]["subject"]]}))
    runs = [{"label": lab, "config": str(ROOT / "configs" / "features_logreg.yaml"),
             "overrides": ["data.source=table", f"data.table={root / lab / 'features.csv'}", "data.size=0",
                           "threads=1", "workers=1"]} for lab in ("plain", "seen")]
    (root / "suite.yaml").write_text(yaml.safe_dump({"name": "leak", "seeds": [0], "baseline": "plain",
                                                     "resamples": 100, "runs": runs}))
    log = io.StringIO()
    run_suite(root / "suite.yaml", root / "out", progress=False, log=log)
    return (root / "out" / "results.md").read_text(encoding="utf-8"), log.getvalue()


def test_suite_results_do_not_call_a_leaky_run_honest(suite_out):
    """results.md said 'Every run is honest' and its compare section 'honest' for a run its own table marked NOT
    leak-free; the suite's line per finished run tagged ORACLE runs only."""
    suite_out, log = suite_out
    score_lines = [ln for ln in log.splitlines() if ln.lstrip().startswith("UF1 ")]
    assert len(score_lines) == 2
    assert sum("[NOT leak-free: its flow trained on held-out subjects' motion]" in ln for ln in score_lines) == 1
    assert "Every run is honest" not in suite_out
    assert ("Runs marked NOT leak-free made their features with a flow network trained on real frames of held-out "
            "subjects; every other run is honest (final epoch / final fit)") in suite_out
    rows = [ln for ln in suite_out.splitlines() if ln.startswith("| seen |")]
    assert len(rows) >= 3 and all("NOT leak-free" in r and "honest" not in r for r in rows)   # table, every run, CI
    assert any("[NOT leak-free]" in r for r in rows)                  # the per-seed cell
    plain = [ln for ln in suite_out.splitlines() if ln.startswith("| plain |")]
    assert plain and all("leak-free" not in r for r in plain)


# ---------------------------------------------------------------------------------- summary.md and metrics.md row

def _summary_run(root: Path, name: str, **extra) -> None:
    (root / name).mkdir()
    (root / name / "metrics.json").write_text(json.dumps(
        {"protocol": "CDE", "n_folds": 2, "n_samples": 8, "oracle_epoch": False,
         "overall": {"UF1": 0.5, "UAR": 0.5}, "per_dataset": {}, **extra}))
    (root / name / "config.yaml").write_text(yaml.safe_dump({"recognizer": {"name": "ststnet"}}))


def test_train_summary_tags_a_leaky_run(tmp_path):
    """runs/summary.md tagged ORACLE runs only; a run whose flow saw held-out subjects' motion looked honest."""
    from icegan.pipeline import write_summary
    seen = {"subjects": ["casme2/sub01"], "held_out_subjects": 2, "source": "train.py"}
    _summary_run(tmp_path, "plain")
    _summary_run(tmp_path, "oracle", oracle_epoch=True)
    _summary_run(tmp_path, "seen", real_motion_seen=seen)
    _summary_run(tmp_path, "both", oracle_epoch=True, real_motion_seen=seen)
    text = write_summary(tmp_path).read_text(encoding="utf-8")
    rows = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| ") and "UF1" not in ln}
    assert set(rows) == {"plain", "oracle (ORACLE epoch)", "seen (NOT leak-free)",
                         "both (ORACLE epoch; NOT leak-free)"}
    assert "NOT leak-free: the run's flow network trained on real frames of held-out subjects" in text


def test_train_summary_without_a_leaky_run_is_as_before(tmp_path):
    from icegan.pipeline import write_summary
    _summary_run(tmp_path, "plain")
    text = write_summary(tmp_path).read_text(encoding="utf-8")
    assert "Selection: final epoch unless the run says ORACLE.\n" in text and "leak" not in text


@pytest.mark.parametrize("oracle, seen, word", [(False, False, "honest"), (True, False, "oracle epoch"),
                                                (False, True, "NOT leak-free"), (True, True,
                                                                                 "oracle epoch; NOT leak-free")])
def test_metrics_md_this_run_row(runs, oracle, seen, word):
    """The metrics.md row of an oracle run whose flow saw held-out motion said 'oracle epoch' only (icegan table:
    'ORACLE epoch; NOT leak-free')."""
    from icegan.protocol import _markdown
    metrics = json.loads((runs["seen_s0"] / "metrics.json").read_text())
    metrics["oracle_epoch"] = oracle
    if not seen:
        del metrics["real_motion_seen"]
    row = next(ln for ln in _markdown(metrics, "r").splitlines() if ln.startswith("| **this run**"))
    assert row.split(" | ")[1] == word


# ----------------------------------------------------------------------------- provenance.json in icegan loso

@pytest.fixture
def id_table(tmp_path):
    """A feature table of class ids (as icegan features writes them) over 4 toy subjects."""
    from icegan.data.toy_features import make_toy_features
    d = tmp_path / "t"
    rows = _write_table(d, make_toy_features(n_subjects_per_dataset=2, clips_per_class=2))
    return d / "features.csv", rows[0]["subject"]


def _loso(table, out):
    from icegan.cli import main
    return main(["loso", "--out", str(out), "--no-progress", "data.source=table", f"data.table={table}",
                 "model.name=logreg", "model.logreg_max_iter=50", "threads=1"])


def test_a_bad_labels_field_does_not_hide_the_motion_record(id_table, tmp_path, caplog):
    """A provenance.json with a bad 'labels' was read as unusable as a whole: its real_motion_subjects was dropped
    and the run reported honest although the flow saw a held-out subject's motion."""
    table, first = id_table
    (table.parent / "provenance.json").write_text(json.dumps({"flow": {"method": "srflownet"}, "labels": 3,
                                                              "real_motion_subjects": [first]}))
    with caplog.at_level(logging.WARNING):
        assert _loso(table, tmp_path / "o") == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["real_motion_seen"]["subjects"] == [first]
    said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(said) == 1 and "'labels' is not a label set's name" in said[0]


@pytest.mark.parametrize("text", ['{"flow": {"meth', json.dumps({"flow": {}, "real_motion_subjects": "casme2/s01"})],
                         ids=["cut short", "bad record"])
def test_a_damaged_provenance_says_the_record_is_lost_not_the_same_warning_twice(id_table, tmp_path, caplog, text):
    """icegan loso on a table of class ids warned twice, word for word, about one damaged provenance.json (the
    label-set check and the motion record); now the motion record's warning is its own, once a run, and says the run
    is reported as leak-free without the record."""
    table, _ = id_table
    prov = table.parent / "provenance.json"
    prov.write_text(text)
    with caplog.at_level(logging.WARNING):
        assert _loso(table, tmp_path / "o") == 0
        assert _loso(table, tmp_path / "o2") == 0          # a second run in the process warns again
    said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(said) == len(set(said)) * 2 and all(str(prov) in s for s in said)     # each run: the same lines
    lost = [s for s in said if "reported as leak-free without that record" in s]
    assert len(lost) == 2 and all("which subjects' real motion trained the flow network of its maps" in s
                                  for s in lost)
    assert "real_motion_seen" not in json.loads((tmp_path / "o" / "metrics.json").read_text())


def test_read_motion_subjects_alone_warns_about_a_damaged_file(id_table, caplog):
    """Read first (a table of class names: no label-set check before it), the record's reader warns itself."""
    from icegan.data.feature_table import read_motion_subjects
    table, first = id_table
    (table.parent / "provenance.json").write_text("[1]")
    with caplog.at_level(logging.WARNING):
        assert read_motion_subjects(table) == []
        assert read_motion_subjects(table) == []
    said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(said) == 2
    assert "which subjects' real motion trained the flow network of its maps is not checked" in said[0]
    (table.parent / "provenance.json").write_text(json.dumps({"flow": 1, "real_motion_subjects": [first]}))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert read_motion_subjects(table) == [first]
    assert "without that record" not in caplog.text
