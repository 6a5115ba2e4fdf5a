"""Reports of the 56th audit: a max_folds smoke run of the composite whose first folds are all CASME II subjects is
not called CASME II's own folds, runs of one entry with the same predictions (a seed-free recipe run with two seeds)
get a note, and icegan compare --per-dataset --format csv keeps a label with a line break one cell."""
import io
import json

import pandas as pd
import yaml

from _runs import write_metrics
from icegan.cli import main
from icegan.metrics import METRIC_KEYS
from icegan.protocol import COMPOSITE_CLIPS, _markdown
from icegan.report import TableEntry, check_one_recipe, results_table
from icegan.significance import load_run_set


# 1. -------------------------------------------------------------------------------------------------------------

def _casme2_metrics(n_folds, n_samples):
    m = dict.fromkeys(METRIC_KEYS, 0.6)
    return {"protocol": "CDE", "oracle_epoch": False, "n_folds": n_folds, "n_samples": n_samples,
            "overall": dict(m), "per_dataset": {"casme2": dict(m)}}


def test_a_partial_composite_run_of_casme2_folds_only_is_not_called_casme2_s_own_folds():
    """The composite's first 3 folds (max_folds=3) are CASME II subjects: metrics.md said its folds were "CASME II's
    own (what protocol=SDE dataset=casme2 runs)", though each was trained on the other subjects of all three
    datasets. A partial run now gets the reference rows with the sentence that it scored N clips, not 442."""
    md = _markdown(_casme2_metrics(3, 9), "lr", folds_total=68)
    assert "CASME II's own" not in md and "protocol=SDE" not in md
    assert "**Partial run:** only the first 3 of the 68 folds" in md
    assert f"This run scored 9 clips, not the {COMPOSITE_CLIPS} of the composite" in md
    # a whole run of CASME II clips only (all its folds run) is still told apart from the composite
    whole = _markdown(_casme2_metrics(26, 148), "lr", folds_total=26)
    assert "folds are CASME II's own (what protocol=SDE dataset=casme2 runs)" in whole
    assert "This run scored" not in whole


# 2. -------------------------------------------------------------------------------------------------------------

ROWS = [(0, "casme2", "casme2/s1", "a", 0, 0, 0.8, 0.1, 0.1), (0, "casme2", "casme2/s1", "b", 1, 1, 0.2, 0.7, 0.1),
        (1, "samm", "samm/006", "c", 2, 0, 0.5, 0.2, 0.3), (1, "samm", "samm/006", "d", 1, 2, 0.1, 0.2, 0.7)]
COLUMNS = ["fold", "dataset", "subject", "clip", "y_true", "y_pred", "score_negative", "score_positive",
           "score_surprise"]


def _lr_run(root, name, seed, rows):
    """A finished logistic-regression run folder (seed ``seed``) with the predictions ``rows`` (metrics.json computed
    from them)."""
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(
        {"name": name, "protocol": "CDE", "seed": seed, "device": "cpu", "max_folds": 0,
         "data": {"source": "megc2019_htnet", "root": None, "table": None, "datasets": []},
         "model": {"name": "logreg", "logreg_C": 1.0}}, sort_keys=False))
    pd.DataFrame(rows, columns=COLUMNS).to_csv(d / "predictions.csv", index=False)
    (d / "run.json").write_text(json.dumps({"protocol": "CDE", "dataset": None, "oracle_epoch": False,
                                            "folds": sorted({r[2] for r in rows})}))
    write_metrics(d)                                 # from the predictions, as icegan table checks it
    return d


def test_seeds_of_one_recipe_with_the_same_predictions_get_a_note(tmp_path, capsys):
    """lr_s0 and lr_s1 (a deterministic recipe run with seed=0 and seed=1, rows written in another order) are two
    genuine draws of a recipe whose result does not depend on its seed: pooled as computed ("n 2 | 0.4444 ±
    0.0000"), with a note naming both runs, in icegan table and compare (589e380 refused them; tests/test_review56a)."""
    s0 = _lr_run(tmp_path, "lr_s0", 0, ROWS)
    s1 = _lr_run(tmp_path, "lr_s1", 1, ROWS[::-1])
    want = (f"Note: entry 'LR': runs {s0} and {s1} have the same predictions (predictions.csv, the same rows in any "
            "order): this recipe's result does not depend on its seed here; ± 0 is not a measured spread.")
    check_one_recipe("LR", [s0, s1])
    load_run_set("LR", [s0, s1])
    table = results_table([TableEntry("LR", [s0, s1])])
    assert "| LR | honest | CDE | 2 | 0.4444 ± 0.0000 | 0.5000 ± 0.0000 |" in table and want in table
    assert main(["table", f"LR={s0},{s1}"]) == 0
    assert want in capsys.readouterr().out
    assert main(["compare", f"LR={s0},{s1}", "--resamples", "200"]) == 0
    assert want in capsys.readouterr().out
    # another draw (one clip predicted otherwise) is a second seed, pooled as before
    other = [r if r[3] != "d" else (*r[:5], 1, 0.1, 0.7, 0.2) for r in ROWS]
    s2 = _lr_run(tmp_path, "lr_s2", 2, other)
    check_one_recipe("LR", [s0, s2])
    assert "Note:" not in results_table([TableEntry("LR", [s0, s2])])


# 3. -------------------------------------------------------------------------------------------------------------

def test_per_dataset_csv_keeps_a_label_with_a_line_break_in_one_cell(tmp_path, capsys):
    """--per-dataset --format csv put the scope before each line of the CSV text: a label with a line break (a run
    folder's name kept as written) got "all," inside its quoted cell. Now each row's scope is a column of the table."""
    rows = [(i, d, s, f"c{j}", y, (y + (s.endswith("1") and j == 0)) % 3, 0.3, 0.3, 0.4)
            for i, (d, s) in enumerate([("casme2", "casme2/s1"), ("casme2", "casme2/s2"), ("samm", "samm/001"),
                                        ("samm", "samm/002")]) for j, y in enumerate((0, 1, 2))]
    def top(r, y_pred):          # the row with y_pred and its top score there, as a run writes it
        return (*r[:5], y_pred, *(0.6 if k == y_pred else 0.2 for k in range(3)))
    a = _lr_run(tmp_path, "a", 0, [top(r, r[5]) for r in rows])
    b = _lr_run(tmp_path, "b", 0, [top(r, r[4]) for r in rows])
    assert main(["compare", str(a), f"rf\nnew={b}", "--per-dataset", "--format", "csv", "--resamples", "200"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False)
    assert table["scope"].tolist() == ["all", "all", "casme2", "casme2", "samm", "samm"]
    assert table["label"].tolist() == ["a", "rf\nnew"] * 3
    assert list(table.columns[:3]) == ["scope", "label", "runs"]
    assert (table["UF1"].iloc[[1, 3, 5]] == 1.0).all()
