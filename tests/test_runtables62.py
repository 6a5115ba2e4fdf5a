"""Audit 62 of ``icegan table`` / ``compare`` / ``ensemble``: LaTeX escapes of ``|``, ``<`` and ``>``; one check of a
finished run folder for all three; an entry mixing two SDE datasets named by its dataset; ``$`` in Markdown cells."""
import json
import re
import shutil

import pandas as pd
import pytest

from icegan.cli import main
from icegan.data.toy_features import make_toy_features
from icegan.ensemble import EnsembleError, ensemble_runs
from icegan.protocol import run_loso
from icegan.report import NULL_RUN_LEGEND, TableEntry, latex_escape, results_table
from icegan.significance import load_run_set
from _runs import random_prob_fn


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished toy CDE runs (9 subjects, 54 clips, probability scores): ``r1`` and ``r2``."""
    toy = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    root = tmp_path_factory.mktemp("runs62")
    for s in (1, 2):
        run_loso(toy.samples, random_prob_fn(s), root / f"r{s}", progress=False)
    return root


def _bare(text: str, ch: str) -> list[str]:
    """The lines of ``text`` (LaTeX) with ``ch`` outside a ``%`` comment line and outside maths (``$>$``)."""
    return [ln for ln in text.splitlines() if ch in re.sub(r"\$[^$]*\$", "", ln) and not ln.startswith("%")]


def test_latex_escapes_bar_and_angle_brackets():
    """With LaTeX's default OT1 font encoding ``|``, ``<`` and ``>`` in text print as an em dash, ¡ and ¿."""
    assert latex_escape("a|b <c>") == r"a\textbar{}b \textless{}c\textgreater{}"


def test_table_and_compare_latex_leave_no_bare_bar_or_angle_bracket(runs, capsys):
    label = "a|b <c>"
    assert main(["table", f"{label}={runs}/r1", "--format", "latex"]) == 0
    tex = capsys.readouterr().out
    row = next(ln for ln in tex.splitlines() if ln.startswith("a"))
    assert row.startswith(r"a\textbar{}b \textless{}c\textgreater{} & honest & CDE & 1 & ")
    for ch in "<>":
        assert _bare(tex, ch) == []
    assert main(["compare", f"{label}={runs}/r1", f"R={runs}/r2", "--resamples", "100", "--format", "latex"]) == 0
    tex = capsys.readouterr().out
    caption = next(ln for ln in tex.splitlines() if ln.startswith(r"\caption{"))
    assert r"the paired differences to a\textbar{}b \textless{}c\textgreater{}." in caption
    assert any(ln.startswith(r"a\textbar{}b \textless{}c\textgreater{} & 1 & honest & ") for ln in tex.splitlines())
    for ch in "<>":
        assert _bare(tex, ch) == []
    # a | only as the tabular's column separators of the rows' cells: none in a row's text
    assert not [ln for ln in _bare(tex, "|") if "&" in ln]


def test_null_run_legend_keeps_its_geq_sign_in_the_latex_caption(tmp_path):
    d = tmp_path / "null_s0"
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps({"protocol": "CDE", "n_folds": 68, "n_samples": 442,
                                                "oracle_epoch": False, "overall": {"UF1": 0.3, "UAR": 0.3},
                                                "per_dataset": {"casme2": {"UF1": 0.3, "UAR": 0.3}}}))
    (d / "config.yaml").write_text("name: null_s0\nseed: 0\ndata:\n  permute_labels: 0\nmodel:\n  name: ststnet\n")
    tex = results_table([TableEntry("N", [d])], "latex")
    assert ">=" in NULL_RUN_LEGEND
    caption = next(ln for ln in tex.splitlines() if ln.startswith(r"\caption{"))
    assert r"permute\_labels $\geq$ 0" in caption and "textgreater" not in caption


def _sde_run(root, name, dataset, n_samples):
    """A finished SDE run folder of 2 folds of ``dataset`` (metrics.json, run.json, config.yaml), no predictions."""
    d = root / name
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps({
        "protocol": "SDE", "n_folds": 2, "n_samples": n_samples, "oracle_epoch": False,
        "overall": {"UF1": 0.5, "UAR": 0.5}, "per_dataset": {dataset: {"UF1": 0.5, "UAR": 0.5}}}))
    (d / "run.json").write_text(json.dumps({"protocol": "SDE", "dataset": dataset, "oracle_epoch": False,
                                            "folds": [f"{dataset}/s1", f"{dataset}/s2"]}))
    (d / "config.yaml").write_text(f"name: sde\nseed: 0\nprotocol: SDE\ndata:\n  dataset: {dataset}\n"
                                   "model:\n  name: ststnet\n")
    return d


def test_an_entry_of_two_sde_datasets_is_refused_for_its_datasets(tmp_path):
    runs = [_sde_run(tmp_path, "a", "casme2", 12), _sde_run(tmp_path, "b", "samm", 19)]
    with pytest.raises(ValueError) as e:
        results_table([TableEntry("SDE", runs)])
    assert str(e.value) == ("table entry 'SDE': its runs differ in dataset (['casme2', 'samm']); give them separate "
                            "entries")


def _damaged(runs, tmp_path, name, edit):
    """A copy of the finished run ``r1`` whose predictions.csv ``edit`` (DataFrame → DataFrame) changed."""
    d = tmp_path / name
    shutil.copytree(runs / "r1", d)
    p = pd.read_csv(d / "predictions.csv", dtype={"subject": str, "clip": str})
    edit(p).to_csv(d / "predictions.csv", index=False)
    return d


def _refusals(runs, tmp_path, d) -> list[str]:
    """What ``icegan table``, ``compare`` and ``ensemble`` say of the run folder ``d`` (each must refuse it)."""
    said = []
    with pytest.raises(ValueError) as e:
        results_table([TableEntry("A", [d])])
    said.append(str(e.value))
    with pytest.raises(ValueError) as e:
        load_run_set("A", [d])
    said.append(str(e.value))
    with pytest.raises(EnsembleError) as e:
        ensemble_runs([runs / "r2", d], tmp_path / f"ens_{d.name}")
    said.append(str(e.value))
    return said


def _wrong_class(p):
    scores = p.filter(like="score_").to_numpy()
    p.loc[3, "y_pred"] = (scores[3].argmax() + 1) % 3
    return p


def test_a_y_pred_off_the_top_score_is_refused_by_table_compare_and_ensemble(runs, tmp_path):
    """`icegan loso` calls such a row damage when it resumes (and scores its fold again): so do the three readers."""
    d = _damaged(runs, tmp_path, "argm", _wrong_class)
    top = pd.read_csv(d / "predictions.csv").filter(like="score_").iloc[3].idxmax()
    for said in _refusals(runs, tmp_path, d):
        assert said.startswith(f"{d / 'predictions.csv'}, line 5, column y_pred: ")
        assert f"is not the class of the row's highest score ({top}); icegan writes no such file" in said
        assert "run the command that wrote this folder again with the same --out" in said


def test_a_fold_without_rows_is_refused_by_table_as_by_compare(runs, tmp_path):
    first = pd.read_csv(runs / "r1" / "predictions.csv", dtype={"subject": str})["subject"].iloc[0]
    d = _damaged(runs, tmp_path, "nofold", lambda p: p[p["subject"] != first])
    for said in _refusals(runs, tmp_path, d):
        assert said == (f"{d}: unfinished run, no predictions for 1 fold(s) (first: {first}); resume it with the "
                        "same command first")


def test_rows_deleted_within_a_fold_are_refused_for_their_count(runs, tmp_path):
    d = _damaged(runs, tmp_path, "norow", lambda p: p.drop(index=[5]))
    for said in _refusals(runs, tmp_path, d):
        assert said.startswith(f"{d}: its predictions.csv holds 35 rows, its metrics.json was computed on n_samples "
                               "36 (rows deleted, or files of two runs?); icegan writes no such file")


def test_a_metrics_json_of_fewer_samples_than_rows_is_refused_for_their_count(runs, tmp_path):
    """The other direction: a metrics.json (of a smaller run) whose n_samples is below the predictions' rows."""
    d = _damaged(runs, tmp_path, "fewer", lambda p: p)
    m = json.loads((d / "metrics.json").read_text())
    m["n_samples"] -= 6
    (d / "metrics.json").write_text(json.dumps(m))
    for said in _refusals(runs, tmp_path, d):
        assert said.startswith(f"{d}: its predictions.csv holds 36 rows, its metrics.json was computed on n_samples "
                               "30 (rows deleted, or files of two runs?); icegan writes no such file")


def test_a_tied_top_score_and_a_folder_with_metrics_alone_are_still_shown(runs, tmp_path):
    def tie(p):            # row 3's y_pred tied with another class at the top: run_loso's argmax keeps either
        cols = list(p.filter(like="score_").columns)
        y = int(p.loc[3, "y_pred"])
        p.loc[3, cols[(y + 1) % 3]] = p.loc[3, cols[y]]
        return p
    d = _damaged(runs, tmp_path, "tie", tie)
    table = results_table([TableEntry("T", [d])])
    assert table.splitlines()[2] == results_table([TableEntry("T", [runs / "r1"])]).splitlines()[2]
    assert load_run_set("T", [d]).label == "T"
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(runs / "r1" / "metrics.json", alone)
    assert results_table([TableEntry("T", [alone])]).splitlines()[2] == table.splitlines()[2]


def test_markdown_cells_escape_dollars(runs):
    """GitHub renders ``$x$`` in a table cell or heading as maths: each ``$`` is escaped, undone by removing the
    backslashes."""
    from icegan.report import markdown_cell
    assert markdown_cell("LR $x$ costs $5") == r"LR \$x\$ costs \$5"
    row = results_table([TableEntry("LR $x$", [runs / "r1"])]).splitlines()[2]
    assert row.startswith(r"| LR \$x\$ | honest | CDE | 1 | ")

