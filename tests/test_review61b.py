"""Review 61 (b): user text still unescaped in Markdown, class-id checks that disagreed, and messages that contradicted
themselves.

1. The nested selection's candidate table wrote ``| {label} |`` as given: ``lr|C=1`` gave 5 cells under a 4-column
   header; a suite's ``# name`` heading and its "paired differences to <label>" headings were not escaped either.
2. (tests/test_plots61.py: fit_title's wrap test takes a title the old order, escape then wrap, got wrong.)
3. The label-noise filter refused whole float labels (0., 1., 2.) that confident_joint_flags took before, with its own
   copy of the class-id check; now :func:`icegan.metrics.check_whole_ids` and the range check, as metrics do.
4. check_whole_ids, documented for "any shape", raised IndexError for a 0-d array.
5. check_bootstrap_settings(200.0) said "a whole number of resamples ..., got 200.0" and nothing more.
6. markdown_cell left ``<`` (HTML: ``<!--`` hid the rest of the page) and ``~`` (strikethrough) as written.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from icegan.commands.loso import LosoConfig, load_feature_set, run
from icegan.config import ConfigError, load_config
from icegan.label_noise import confident_joint_flags, forest_out_of_bag_probabilities
from icegan.metrics import check_whole_ids
from icegan.report import markdown_cell
from icegan.selection import Candidate, select_nested
from icegan.significance import check_bootstrap_settings
from icegan.suite import load_suite, run_suite

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _cells(line: str) -> int:
    """Cells of a Markdown table row: its unescaped ``|`` less one."""
    return len(re.findall(r"(?<!\\)\|", line)) - 1


# 1. labels and names in Markdown --------------------------------------------------------------------------------------

def test_nested_selection_candidate_table_keeps_a_pipe_label_in_one_cell(tmp_path: Path):
    def cfg(*over):
        return load_config(LosoConfig, None, ["data.source=toy", "workers=1", "threads=1", "max_folds=3", *over])
    fs = load_feature_set(cfg("model.name=logreg").data)
    cands = []
    for label, over in {"lr|C=1": ["model.name=logreg"],
                        "rf*10*": ["model.name=random_forest", "model.forest_trees=10"]}.items():
        c = cfg(*over)
        d = tmp_path / ("lr" if label.startswith("lr") else "rf")
        run(c, d, progress=False, feature_set=fs)
        cands.append(Candidate(label, d, config=c))
    select_nested(cands, {}, tmp_path / "sel", k=2, progress=False)
    lines = (tmp_path / "sel" / "metrics.md").read_text(encoding="utf-8").splitlines()
    head = next(ln for ln in lines if ln.startswith("| Candidate |"))
    rows = [ln for ln in lines if ln.startswith(("| lr", "| rf"))]
    assert len(rows) == 2 and all(_cells(r) == _cells(head) == 4 for r in rows), (head, rows)
    assert rows[0].startswith("| lr\\|C=1 | ") and rows[1].startswith("| rf\\*10\\* | ")


def test_suite_results_page_escapes_its_name_and_the_baseline_label(tmp_path: Path):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"""\
name: "toy|a*b*"
seeds: [0]
resamples: 200
runs:
  - {{label: "floor|lr*", config: {CONFIGS}/demo_features.yaml, overrides: [model.name=logreg, workers=1]}}
  - {{label: forest, config: {CONFIGS}/demo_features.yaml,
      overrides: [model.name=random_forest, model.forest_trees=5, workers=1]}}
""")
    run_suite(suite, tmp_path / "out", ["threads=1", "max_folds=4"], progress=False)
    res = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert res.splitlines()[0] == "# toy\\|a\\*b\\*"
    assert "## Subject-bootstrap intervals, paired differences to floor\\|lr\\*\n" in res
    assert "floor|lr*" not in res


# 3. whole float labels for the label-noise filter ---------------------------------------------------------------------

def test_confident_joint_flags_take_whole_float_labels_as_before():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=12)
    labels = np.tile([0, 1, 2], 4)
    flags = confident_joint_flags(probs, labels)
    assert np.array_equal(confident_joint_flags(probs, labels.astype(float)), flags)


def test_forest_out_of_bag_probabilities_take_whole_float_labels():
    x = np.repeat(np.arange(3), 10)[:, None] * 10.0 + np.linspace(0, 1, 30)[:, None]
    labels = np.repeat(np.arange(3), 10)
    p_int = forest_out_of_bag_probabilities(x, labels, trees=20, n_classes=4)
    p_float = forest_out_of_bag_probabilities(x, labels.astype(float), trees=20, n_classes=4)
    np.testing.assert_array_equal(p_float, p_int)


@pytest.mark.parametrize("bad, msg", [
    (np.nan, r"^labels must hold integer class ids"), (0.5, r"^labels must hold integer class ids"),
    (3.0, r"^labels must lie in 0\.\.2, got 0\.0\.\.3\.0$")])
def test_confident_joint_flags_refuse_float_labels_that_are_not_class_ids(bad, msg):
    with pytest.raises(ValueError, match=msg):
        confident_joint_flags(np.full((4, 3), 1 / 3), np.array([0.0, 1.0, 2.0, bad]))


# 4. check_whole_ids of any shape --------------------------------------------------------------------------------------

def test_check_whole_ids_of_a_0d_array_says_what_is_wrong():
    with pytest.raises(ValueError, match=r"^y must hold integer class ids, got \[1\.5\]"):
        check_whole_ids("y", np.array(1.5))
    check_whole_ids("y", np.array(2.0))
    with pytest.raises(ValueError, match=r"^y must hold integer class ids, got \[0\.5 1\. \]"):
        check_whole_ids("y", np.array([[0.5, 1.0]]))


# 5. resamples given as a float ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, kind", [(200.0, "float"), (np.float64(200.0), "float64"), ("200", "str"),
                                         (True, "bool")])
def test_bootstrap_resamples_of_another_type_say_which_type(value, kind):
    with pytest.raises(ValueError, match=re.escape(f"got {value!r} (a {kind}, not an int)")):
        check_bootstrap_settings(value)


def test_a_suite_files_float_resamples_is_refused_as_not_an_integer(tmp_path: Path):
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\nresamples: 2000.0\nruns:\n  - {{label: a, config: {CONFIGS}/demo_features.yaml}}\n")
    with pytest.raises(ConfigError, match=r"config key 'resamples' \(in .*s\.yaml\): expected an integer, got 2000\.0"):
        load_suite(suite)


# 6. markdown_cell: HTML and strikethrough -----------------------------------------------------------------------------

def test_markdown_cell_escapes_html_and_strikethrough():
    assert markdown_cell("a <!-- b") == "a \\<!-- b"
    assert markdown_cell("<b>x</b>") == "\\<b>x\\</b>"
    assert markdown_cell("~~x~~") == "\\~\\~x\\~\\~"
    for text in ["a <!-- b", "~~x~~ <b>", "lr|c*1* <i>~"]:
        assert re.sub(r"\\(.)", r"\1", markdown_cell(text)) == text          # escapes undone: the text
