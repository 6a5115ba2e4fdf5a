"""icegan compare: a share of resamples that is not exactly 0 or 1 never prints as 0.0 % / 100.0 %; a clip list that
is a prefix of the other (a max_folds run against a full one) is refused naming the first clip the shorter lacks; the
tables name the protocol of HDE and SDE runs (caption, legend, a CSV protocol column)."""
import json

import numpy as np
import pandas as pd
import pytest

from icegan.significance import RunSet, bootstrap_compare, comparison_table

from tests._runs import write_finished_run


def _rows(p_better, p_tie):
    base = {"label": "A", "runs": 1, "oracle": False, "UF1": 0.5, "UF1_ci": (0.4, 0.6), "UAR": 0.5,
            "UAR_ci": (0.4, 0.6)}
    other = dict(base, label="B", dUF1=0.1, dUF1_ci=(0.05, 0.15), dUAR=0.1, dUAR_ci=(0.05, 0.15),
                 p_better=p_better, p_tie=p_tie)
    return [base, other]


@pytest.mark.parametrize("fmt, pct", [("markdown", " %"), ("latex", "\\%")])
def test_a_share_near_but_not_at_one_or_zero_is_not_rounded_to_it(fmt, pct):
    """p_better = 9997/9999 with 2 ties printed "100.0 % (ties 0.0 %)" (the audit's row): neither share is exact."""
    text = comparison_table(_rows(9997 / 9999, 2 / 9999), resamples=9999, fmt=fmt)
    more, less = (">", "<") if fmt == "markdown" else ("$>$", "$<$")
    assert f"{more}99.9{pct} (ties {less}0.1{pct})" in text, text
    assert f"100.0{pct}" not in text and f"0.0{pct}" not in text.replace(f"100.0{pct}", "")
    low = comparison_table(_rows(1 / 9999, 0.0), resamples=9999, fmt=fmt)
    assert f"{less}0.1{pct}" in low and "(ties" not in low
    exact = comparison_table(_rows(1.0, 0.0), resamples=9999, fmt=fmt) + comparison_table(_rows(0.0, 1.0), fmt=fmt)
    assert f"100.0{pct}" in exact and f"0.0{pct} (ties 100.0{pct})" in exact     # exact shares as before
    assert f" 62.5{pct} (ties 12.5{pct})" in comparison_table(_rows(0.625, 0.125), fmt=fmt)      # others as before


def _set(label, rows):
    clips = pd.DataFrame(rows, columns=["subject", "clip", "y_true"]).sort_values(["subject", "clip"])
    subjects = sorted(clips["subject"].unique())
    conf = np.zeros((1, len(subjects), 3, 3), int)
    for s, _, y in rows:
        conf[0, subjects.index(s), y, y] += 1
    return RunSet(label, [], subjects, conf, clips.reset_index(drop=True), False)


def test_a_run_missing_its_last_clips_is_refused_naming_the_first_missing_clip():
    """A max_folds run against the full run said "(2 vs 3 clips, first difference in length)"; the docstring promises
    the first differing subject/clip label y: the first clip of the longer list that the shorter one lacks."""
    full = [("casme2/sub01", "EP01", 0), ("casme2/sub02", "EP02", 1), ("casme2/sub03", "EP03", 2)]
    for sets in ([_set("full", full), _set("cut", full[:2])], [_set("cut", full[:2]), _set("full", full)]):
        with pytest.raises(ValueError) as err:
            bootstrap_compare(sets, resamples=100)
        assert " clips, first difference 'casme2/sub03/EP03 label 2' only in 'full'); " in str(err.value), err.value
        assert "in length" not in str(err.value)
    with pytest.raises(ValueError, match=r"'casme2/sub03/EP03 label 2' only in 'full'\)"):
        bootstrap_compare([_set("cut", full[:2]), _set("full", full)], resamples=100)


def _runs(tmp_path, protocol, dataset=None):
    rng = np.random.default_rng(0)
    subjects = ["casme2/sub01", "casme2/sub02", "casme2/sub03"] if protocol == "SDE" else \
        ["casme2/sub01", "casme2/sub02", "samm/006", "samm/007"]
    rows = [(s, f"c{c}", c % 3) for s in subjects for c in range(6)]
    out = []
    for name, seed in (("a", 0), ("b", 1)):
        d = write_finished_run(tmp_path / f"{protocol}_{name}",
                               [(s, c, y, int(rng.integers(0, 3))) for s, c, y in rows],
                               datasets=lambda s: s.split("/")[0], seed=seed)
        head = json.loads((d / "run.json").read_text())
        head["protocol"] = protocol
        if protocol == "HDE":
            head["folds"] = ["casme2", "samm"]
        if dataset:
            head["dataset"] = dataset
        (d / "run.json").write_text(json.dumps(head))
        out.append(d)
    return out


@pytest.mark.parametrize("fmt", ["markdown", "latex", "csv"])
def test_compare_names_the_protocol_of_hde_and_sde_runs(tmp_path, capsys, fmt):
    """HDE intervals read like CDE ones (no word of the protocol); the caption / legend now names HDE and SDE (with
    its dataset) and CSV has a protocol column; a CDE compare reads as before apart from that column."""
    from icegan.cli import main
    for protocol, dataset, words in (("HDE", None, "HDE leave-one-dataset-out"), ("SDE", "casme2", "SDE LOSO"),
                                     ("CDE", None, None)):
        a, b = _runs(tmp_path, protocol, dataset)
        assert main(["compare", f"a={a}", f"b={b}", "--resamples", "100", "--format", fmt]) == 0
        out = capsys.readouterr().out
        if fmt == "csv":
            head, first = out.splitlines()[:2]
            assert head.startswith("label,runs,selection,protocol,UF1,"), head
            assert first.startswith(f"a,1,honest,{protocol},"), first
        elif words is None:
            assert "Protocol" not in out and "LOSO" not in out, out
        elif fmt == "markdown":
            assert f"Protocol: {words}" + (" on CASME II." if dataset else ".") in out, out
        else:
            assert f"\\caption{{UF1 and UAR of {words}" + (" on CASME II runs" if dataset else " runs") in out, out
