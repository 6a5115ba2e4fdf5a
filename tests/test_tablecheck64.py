"""``icegan table`` checks a run's metrics.json against its predictions.csv, as ``icegan compare`` computes the run
from the predictions: a metrics.json whose UF1 edited to 0.99 was shown as 0.9900 while compare printed the
predictions' 0.6506, and a predictions.csv whose y_true was shuffled was shown with the stale metrics.json. Both are
now refused, naming the two files, the key and both values (report.check_metrics_match)."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from _runs import finished_run_with_metrics, set_metric
from icegan.cli import main
from icegan.report import TableEntry, results_table

#: 3 subjects of two datasets (casme2: 2, samm: 1), 4 clips each (classes 0, 1, 2, 0); the last clip of each casme2
#: subject misread as class 1
ROWS = [(s, f"{s}_c{j}", j % 3, (j + (j == 3 and s != "samm/006")) % 3)
        for s in ("casme2/sub01", "casme2/sub02", "samm/006") for j in range(4)]


def _run(tmp_path, name="lr_s0"):
    return finished_run_with_metrics(tmp_path / name, ROWS)


def _refusal(capsys, d) -> str:
    assert main(["table", str(d)]) == 2
    return capsys.readouterr().err


def test_a_consistent_run_is_shown_with_its_numbers(tmp_path):
    """Overall: 12 clips, 2 of the 6 of class 0 misread as 1: F1 (4/5, 3/4, 1), UF1 0.85; UAR (2/3 + 1 + 1)/3."""
    row = next(r for r in results_table([TableEntry("LR", [_run(tmp_path)])]).splitlines() if r.startswith("| LR"))
    assert "| 0.8500 | 0.8889 |" in row


def test_an_edited_overall_uf1_is_refused_naming_both_files_and_values(tmp_path, capsys):
    d = _run(tmp_path)
    set_metric(d, "overall", "UF1", 0.99)
    err = _refusal(capsys, d)
    assert f"{d / 'metrics.json'}: 'overall.UF1' is 0.99, but the rows of {d / 'predictions.csv'} give 0.85;" in err
    assert "the two files disagree" in err and "run the command that wrote this folder again" in err


def test_a_dataset_uar_off_by_more_than_rounding_is_refused(tmp_path, capsys):
    d = _run(tmp_path)
    m = json.loads((d / "metrics.json").read_text())
    set_metric(d, "samm", "UAR", m["per_dataset"]["samm"]["UAR"] - 1e-4)
    assert "'per_dataset.samm.UAR' is 0.9999, but the rows of" in _refusal(capsys, d)
    set_metric(d, "samm", "UAR", 1.0 - 1e-9)              # float rounding only: shown
    assert main(["table", str(d)]) == 0


def test_shuffled_labels_in_predictions_csv_are_refused(tmp_path, capsys):
    d = _run(tmp_path)
    p = pd.read_csv(d / "predictions.csv")
    p["y_true"] = p["y_true"].to_numpy()[[1, 2, 0] + list(range(3, 12))]
    p.to_csv(d / "predictions.csv", index=False)
    err = _refusal(capsys, d)
    assert re.search(r"'overall\.UF1' is 0\.85, but the rows of .*predictions\.csv give 0\.5888\d+;", err), err


def test_datasets_of_metrics_json_must_be_those_of_the_predictions(tmp_path, capsys):
    d = _run(tmp_path)
    m = json.loads((d / "metrics.json").read_text())
    m["per_dataset"]["smic"] = m["per_dataset"]["samm"]
    (d / "metrics.json").write_text(json.dumps(m))
    assert "'per_dataset' holds ['casme2', 'samm', 'smic'], but the clips of" in _refusal(capsys, d)


def test_metrics_json_without_a_run_header_is_still_shown_as_is(tmp_path):
    """A folder copied with its metrics alone (no run.json) has no rows to check against."""
    d = _run(tmp_path)
    (d / "run.json").unlink()
    set_metric(d, "overall", "UF1", 0.5)
    assert "| 0.5000 |" in results_table([TableEntry("LR", [d])])


@pytest.mark.parametrize("edit", ["blank cell", "no column"])
def test_a_clip_without_a_dataset_cell_counts_for_its_subject_prefix(tmp_path, edit):
    """A blank ``dataset`` cell, or a predictions.csv without the column: the clip's dataset is its subject id's
    prefix (casme2/sub01: casme2), so the run is shown with its numbers, not refused as of other datasets."""
    d = _run(tmp_path)
    p = pd.read_csv(d / "predictions.csv", dtype=str, keep_default_na=False)
    if edit == "blank cell":
        p.loc[0, "dataset"] = ""
    else:
        p = p.drop(columns="dataset")
    p.to_csv(d / "predictions.csv", index=False)
    row = next(r for r in results_table([TableEntry("LR", [d])]).splitlines() if r.startswith("| LR"))
    assert "| 0.8500 | 0.8889 |" in row
