"""Audit 62 of ``icegan table`` / ``compare`` / ``ensemble``: LaTeX escapes of ``|``, ``<`` and ``>``; one check of a
finished run folder for all three; an entry mixing two SDE datasets named by its dataset; ``$`` in Markdown cells."""
import json
import re

import pytest

from icegan.cli import main
from icegan.data.toy_features import make_toy_features
from icegan.protocol import run_loso
from icegan.report import NULL_RUN_LEGEND, TableEntry, latex_escape, results_table
from tests._runs import random_prob_fn


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

