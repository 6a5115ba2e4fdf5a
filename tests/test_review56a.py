"""Review of the 56th audit's commits: runs of one entry with the same predictions are two genuine draws of a recipe
whose result does not depend on its seed (a note, no refusal: 589e380 refused them, so `icegan suite` trained a
nested selection of an unseeded logistic regression and then exited 2), and `icegan predict` reads the bare class
ids of a table without provenance.json with a five-class model trained on bare ids of its set (f8677c7 refused the
very table the model was fitted on)."""
import pandas as pd
from test_label_sets import FIVE, write_five_class_table
from test_report56 import ROWS, _lr_run

from icegan.cli import main
from icegan.commands.loso import LosoConfig
from icegan.commands.predict import fit, predict_table
from icegan.config import load_config
from icegan.report import TableEntry, check_one_recipe, results_table
from icegan.significance import load_run_set


# 1. -------------------------------------------------------------------------------------------------------------

def test_runs_with_the_same_predictions_are_pooled_with_a_note_not_refused(tmp_path, capsys):
    """lr_s0 and lr_s1 (a recipe that draws nothing from its seed, rows in another order): n 2, ± 0.0000 as
    computed, and a note naming both runs on the table, in compare's output and (csv) on stderr."""
    s0 = _lr_run(tmp_path, "lr_s0", 0, ROWS)
    s1 = _lr_run(tmp_path, "lr_s1", 1, ROWS[::-1])
    check_one_recipe("LR", [s0, s1])                     # no refusal
    from icegan.report import same_predictions_notes
    load_run_set("LR", [s0, s1])
    note = (f"runs {s0} and {s1} have the same predictions (predictions.csv, the same rows in any order): this "
            "recipe's result does not depend on its seed here; ± 0 is not a measured spread")
    assert same_predictions_notes("LR", [s0, s1]) == [f"entry 'LR': {note}"]
    md = results_table([TableEntry("LR", [s0, s1])])
    assert "| LR | honest | CDE | 2 | 0.4444 ± 0.0000 | 0.5000 ± 0.0000 |" in md
    assert f"Note: entry 'LR': {note}." in md
    assert "not a measured spread" in results_table([TableEntry("LR", [s0, s1])], "latex")
    assert main(["table", f"LR={s0},{s1}", "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert f"icegan table: note: entry 'LR': {note}" in out.err and "note" not in out.out
    assert main(["compare", f"LR={s0},{s1}", "--resamples", "200"]) == 0
    assert f"entry 'LR': {note}" in capsys.readouterr().out
    # another draw: no note
    other = [r if r[3] != "d" else (*r[:5], 1, 0.1, 0.7, 0.2) for r in ROWS]
    assert same_predictions_notes("LR", [s0, _lr_run(tmp_path, "lr_s2", 2, other)]) == []


# 5. -------------------------------------------------------------------------------------------------------------

def test_predict_reads_the_bare_ids_of_the_table_a_five_class_model_was_fitted_on(tmp_path, capsys):
    """icegan fit data.labels=casme2_5 trains on a table of bare ids 0..4 without provenance.json (README: "a table of
    your own takes the class names or ids 0–4"); icegan predict with that model now reads the same table's ids as
    its set's, as fit did. A model fitted on class names still refuses bare ids."""
    ids = write_five_class_table(tmp_path / "ids", subjects=3, per_class=1, ids=True)
    assert not (ids.parent / "provenance.json").exists()
    model = tmp_path / "five.pt"
    assert main(["fit", "--out", str(model), "--no-progress", "data.source=table", f"data.table={ids}",
                 "data.labels=casme2_5", "model.name=logreg", "threads=1"]) == 0
    assert main(["predict", "--model", str(model), "--table", str(ids), "--out", str(tmp_path / "p.csv")]) == 0, \
        capsys.readouterr().err
    assert pd.read_csv(tmp_path / "p.csv")["y_true"].tolist() == [0, 1, 2, 3, 4] * 3
    names = write_five_class_table(tmp_path / "names", subjects=3, per_class=1)
    named = tmp_path / "named.pt"
    fit(load_config(LosoConfig, None, ["data.source=table", f"data.table={names}", "data.labels=casme2_5",
                                       "model.name=logreg", "threads=1"]), named, progress=False)
    try:
        predict_table([named], ids)
    except ValueError as exc:
        assert "is a bare class id" in str(exc)
    else:
        raise AssertionError("a model fitted on class names read bare ids")
    out, _, _ = predict_table([named], names)
    assert out["y_true"].tolist() == [0, 1, 2, 3, 4] * 3 and set(out["predicted"]) <= set(FIVE)
