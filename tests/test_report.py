"""``icegan table``: results tables over finished runs (mean ± sample std over seeds), and what it refuses."""
import csv
import io
import json

import numpy as np
import pytest

from icegan.cli import main
from icegan.report import TableEntry, parse_entry, results_table


def _metrics(uf1, uar, protocol="CDE", oracle=False, n_folds=68, datasets=("smic", "casme2", "samm")):
    per = {d: {"UF1": uf1 - 0.1 * i, "UAR": uar - 0.1 * i} for i, d in enumerate(datasets)}
    return {"protocol": protocol, "n_folds": n_folds, "n_samples": 442, "oracle_epoch": oracle,
            "overall": {"UF1": uf1, "UAR": uar}, "per_dataset": per}


def _run(root, name, **kw):
    d = root / name
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(_metrics(**kw)))
    return d


def test_seeds_are_pooled_as_mean_and_sample_std(tmp_path):
    for s, (f, r) in enumerate([(0.70, 0.75), (0.72, 0.74), (0.74, 0.79)]):
        _run(tmp_path, f"st_s{s}", uf1=f, uar=r)
    _run(tmp_path, "logreg", uf1=0.69, uar=0.70)
    (tmp_path / "st_s9.log").write_text("a log file the glob must skip")
    entries = [parse_entry(f"STSTNet={tmp_path}/st_s*"), parse_entry(str(tmp_path / "logreg"))]
    assert [len(e.runs) for e in entries] == [3, 1] and entries[1].label == "logreg"
    md = results_table(entries).splitlines()
    assert md[0].startswith("| Method | Selection | Protocol | n | Full UF1 | Full UAR | SMIC UF1")
    # mean 0.72, sample std 0.02 (population std would be 0.0163)
    assert md[2].startswith("| STSTNet | honest | CDE | 3 | 0.7200 ± 0.0200 | 0.7600 ± 0.0265 | 0.7200 ± 0.0200 |")
    assert "| CASME II UF1 |" in md[0] and "0.6200 ± 0.0200" in md[2]     # casme2 = overall − 0.1
    assert md[3].startswith("| logreg | honest | CDE | 1 | 0.6900 | 0.7000 |")
    rows = list(csv.DictReader(io.StringIO(results_table(entries, "csv"))))
    assert float(rows[0]["Full UF1"]) == pytest.approx(0.72)
    assert float(rows[0]["Full UAR std"]) == pytest.approx(np.std([0.75, 0.74, 0.79], ddof=1))
    assert rows[1]["Full UF1 std"] == "" and float(rows[1]["SAMM UAR"]) == pytest.approx(0.50)


def test_oracle_rows_are_labelled_and_missing_datasets_dashed(tmp_path):
    o = _run(tmp_path, "oracle", uf1=0.87, uar=0.88, oracle=True)
    c = _run(tmp_path, "casme2_sde", uf1=0.79, uar=0.81, protocol="SDE", n_folds=26, datasets=("casme2",))
    md = results_table([TableEntry("HTNet-like", [o]), TableEntry("SDE", [c])]).splitlines()
    assert "| HTNet-like | ORACLE epoch | CDE | 1 | 0.8700 |" in md[2]
    assert md[3].startswith("| SDE | honest | SDE | 1 | 0.7900 | 0.8100 | — | — | 0.7900 | 0.8100 | — | — |")


def test_refusals_name_the_entry(tmp_path):
    _run(tmp_path, "a", uf1=0.7, uar=0.7)
    _run(tmp_path, "b", uf1=0.7, uar=0.7, oracle=True)
    _run(tmp_path, "c", uf1=0.7, uar=0.7, n_folds=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="'mix'.*oracle_epoch"):
        results_table([parse_entry(f"mix={tmp_path}/a,{tmp_path}/b")])
    with pytest.raises(ValueError, match="'short'.*n_folds"):
        results_table([parse_entry(f"short={tmp_path}/a,{tmp_path}/c")])
    with pytest.raises(ValueError, match="empty: no metrics.json"):
        results_table([parse_entry(str(tmp_path / "empty"))])
    with pytest.raises(ValueError, match="matches no run folder"):
        parse_entry(f"x={tmp_path}/zz_*")
    with pytest.raises(ValueError, match="expected DIR or LABEL=DIR"):
        parse_entry("x=")
    with pytest.raises(ValueError, match="markdown, latex or csv"):
        results_table([parse_entry(str(tmp_path / "a"))], fmt="html")


def test_cli_writes_the_table_and_reports_errors(tmp_path, capsys):
    _run(tmp_path, "a", uf1=0.7, uar=0.71)
    out = tmp_path / "paper" / "tables" / "t.md"          # its folder is made
    assert main(["table", f"A={tmp_path}/a", "--out", str(out)]) == 0
    assert "| A | honest | CDE | 1 | 0.7000 | 0.7100 |" in out.read_text()
    assert main(["table", str(tmp_path / "missing")]) == 2
    assert "matches no run folder" in capsys.readouterr().err


def test_latex_table_groups_escapes_and_dashes(tmp_path, capsys):
    """--format latex: a booktabs tabular whose dataset groups span UF1 / UAR, the same numbers as the Markdown
    cells, labels with LaTeX's special characters escaped, '--' where an entry has no run on a dataset."""
    from icegan.report import latex_escape
    for s, (f, r) in enumerate([(0.70, 0.75), (0.72, 0.74), (0.74, 0.79)]):
        _run(tmp_path, f"st_s{s}", uf1=f, uar=r)
    c = _run(tmp_path, "casme2_sde", uf1=0.79, uar=0.81, protocol="SDE", n_folds=26, datasets=("casme2",))
    entries = [parse_entry(f"STSTNet_2 & 50% #1={tmp_path}/st_s*"), TableEntry("SDE", [c])]
    tex = results_table(entries, "latex")
    lines = tex.splitlines()
    assert lines[0].startswith("%") and "booktabs" in lines[1]
    body = lines[lines.index(r"\midrule") + 1:lines.index(r"\bottomrule")]
    assert lines[2] == r"\begin{tabular}{llcrcccccccc}" and lines[-1] == r"\end{tabular}"
    assert lines[4] == (r"\multicolumn{4}{c}{} & \multicolumn{2}{c}{Full} & \multicolumn{2}{c}{SMIC} & "
                        r"\multicolumn{2}{c}{CASME II} & \multicolumn{2}{c}{SAMM} \\")
    assert lines[5] == r"Method & Selection & Protocol & n & UF1 & UAR & UF1 & UAR & UF1 & UAR & UF1 & UAR \\"
    assert body[0].startswith(r"STSTNet\_2 \& 50\% \#1 & honest & CDE & 3 & 0.7200 $\pm$ 0.0200 & "
                              r"0.7600 $\pm$ 0.0265 &")
    assert body[1] == r"SDE & honest & SDE & 1 & 0.7900 & 0.8100 & -- & -- & 0.7900 & 0.8100 & -- & -- \\"
    # every cell separator is a real column: 12 columns in each row, none from an escaped label
    assert all(row.count(" & ") == 11 for row in body)
    assert latex_escape(r"a\b~c^d{e}$") == r"a\textbackslash{}b\textasciitilde{}c\textasciicircum{}d\{e\}\$"
    assert main(["table", f"A={tmp_path}/st_s0", "--format", "latex"]) == 0
    assert r"A & honest & CDE & 1 & 0.7000 & 0.7500 &" in capsys.readouterr().out
