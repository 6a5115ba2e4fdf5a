"""icegan compare's LaTeX rows: an entry label beginning with "[" follows the previous row's "\\" (or booktabs'
\\midrule), where LaTeX would read it as their optional [length] argument; it is guarded with "{}"."""
from icegan.significance import comparison_table


def _row(label, base=False):
    row = {"label": label, "runs": 1, "oracle": False, "UF1": 0.7, "UF1_ci": (0.6, 0.8), "UAR": 0.71,
           "UAR_ci": (0.61, 0.81), "p_better": 0.5, "p_tie": 0.0}
    if not base:
        row.update(dUF1=0.01, dUF1_ci=(-0.02, 0.04), dUAR=0.02, dUAR_ci=(-0.01, 0.05))
    return row


def test_a_label_beginning_with_a_bracket_is_guarded_in_latex_rows_only():
    rows = [_row("[ours] base", base=True), _row("[ours] RF_2")]
    tex = comparison_table(rows, fmt="latex", legend=False).splitlines()
    body = [ln for ln in tex if ln.endswith("\\\\") and " & 1 & " in ln]
    assert [ln.split(" & ")[0] for ln in body] == ["{}[ours] base", r"{}[ours] RF\_2"]
    md = comparison_table(rows, legend=False)
    assert "| [ours] RF_2 | 1 |" in md and "{}" not in md
    plain = comparison_table([_row("base", base=True), _row("RF")], fmt="latex", legend=False)
    assert "{}" not in plain.replace(r"\begin{tabular}{", "")
