"""Behaviour-preserving clean-ups of repeated work (each test could fail on the code before): ``icegan table --format
csv`` hashes each run's predictions.csv once (it hashed them twice: once for notes the CSV does not carry, once for
stderr); the Markdown table still carries the note, and the CSV's stderr line is the same."""
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report56 import ROWS, _lr_run  # noqa: E402

import icegan.report as report  # noqa: E402
from icegan.cli import main  # noqa: E402


@pytest.fixture
def digests(monkeypatch):
    """How often each run's predictions.csv was hashed (report._predictions_digest), by folder name."""
    seen = Counter()
    real = report._predictions_digest

    def counting(run):
        seen[Path(run).name] += 1
        return real(run)
    monkeypatch.setattr(report, "_predictions_digest", counting)
    return seen


@pytest.mark.parametrize("fmt", ["csv", "markdown", "latex"])
def test_table_hashes_each_runs_predictions_once(tmp_path, capsys, digests, fmt):
    s0 = _lr_run(tmp_path, "lr_s0", 0, ROWS)
    s1 = _lr_run(tmp_path, "lr_s1", 1, ROWS[::-1])
    assert main(["table", f"LR={s0},{s1}", "--format", fmt]) == 0
    out, err = capsys.readouterr()
    note = f"entry 'LR': runs {s0} and {s1} have the same predictions (predictions.csv, the same rows in any order)"
    if fmt == "csv":
        assert f"icegan table: note: {note}" in err and "same predictions" not in out
        assert out.splitlines()[1].startswith("LR,honest,CDE,2,0.4444444444444444,0.0,0.5,0.0,")
    elif fmt == "markdown":
        assert f"Note: {note}" in out and err == ""
    else:
        assert "have the same predictions (predictions.csv" in out and err == ""      # paths LaTeX-escaped
    assert digests == Counter({"lr_s0": 1, "lr_s1": 1})
