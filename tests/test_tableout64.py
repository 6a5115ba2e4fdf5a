"""``icegan table`` output: a metrics.json that its own predictions.csv contradicts, or that holds a UF1 / UAR that is
not a finite number in [0, 1], is refused (table and the suite's "Every run" table); ``--out FILE`` without --format
takes the format from FILE's extension, and a --format that contradicts it is refused."""
import csv
import io
from types import SimpleNamespace

import pytest

from _runs import finished_run_with_metrics, set_metric
from icegan.cli import main
from icegan.report import TableEntry, results_table

ROWS = [(f"{ds}/s{i}", f"c{j}", (i + j) % 3, (i + 2 * j) % 3)
        for ds in ("casme2", "samm") for i in range(3) for j in range(3)]


def _run(root, name, rows=ROWS):
    """A finished run folder (predictions.csv, run.json, config.yaml) with the metrics.json icegan writes for it."""
    return finished_run_with_metrics(root / name, rows)


@pytest.mark.parametrize("value,said", [(float("nan"), "nan"), (float("inf"), "inf"), (1.5, "1.5"), (-0.1, "-0.1")])
@pytest.mark.parametrize("with_predictions", [True, False])
def test_a_uf1_that_is_not_finite_or_outside_0_1_is_refused(tmp_path, value, said, with_predictions):
    d = _run(tmp_path, "st")
    if not with_predictions:                # a folder with its metrics.json alone: shown on it, but checked
        for f in ("predictions.csv", "run.json"):
            (d / f).unlink()
    set_metric(d, "casme2", "UAR", value)
    with pytest.raises(ValueError, match=rf"'per_dataset\.casme2\.UAR' is {said}, not a number in \[0, 1\]"):
        results_table([TableEntry("st", [d])])


def test_two_seeds_one_of_them_nan_are_refused_not_shown_as_nan(tmp_path, capsys):
    a, b = _run(tmp_path, "st_s0"), _run(tmp_path, "st_s1")
    set_metric(b, "overall", "UF1", float("nan"))
    assert main(["table", f"st={a},{b}"]) == 2
    assert "'overall.UF1' is nan" in capsys.readouterr().err


def test_the_suite_every_run_table_refuses_a_nan_or_out_of_range_metric(tmp_path):
    from icegan.suite import per_seed_table
    d = _run(tmp_path, "st")
    plan = [SimpleNamespace(label="ST", seed=0, out=d, over_seeds=False)]
    suite = SimpleNamespace(labels=["ST"], seeds=[0])
    assert "| ST |" in per_seed_table(suite, plan, {d})
    for value, said in [(float("nan"), "nan"), (1.5, "1.5")]:
        set_metric(d, "overall", "UAR", value)
        with pytest.raises(ValueError, match=rf"metrics\.json: 'overall\.UAR' is {said}, not a number in \[0, 1\]"):
            per_seed_table(suite, plan, {d})


# --out's extension picks the format --------------------------------------------------------------------------------

@pytest.mark.parametrize("ext,fmt", [("tex", "latex"), ("csv", "csv"), ("md", "markdown"), ("txt", "markdown"),
                                     ("TEX", "latex"), ("Csv", "csv")])       # the extension in any case
def test_out_without_format_takes_the_format_from_the_extension(tmp_path, capsys, ext, fmt):
    d = _run(tmp_path, "st")
    out = tmp_path / f"table.{ext}"
    assert main(["table", str(d), "--out", str(out)]) == 0
    text = out.read_text()
    assert text == results_table([TableEntry("st", [d])], fmt=fmt)
    if fmt == "csv":
        assert next(csv.reader(io.StringIO(text)))[0] == "Method"
    elif fmt == "latex":
        assert "\\begin{table" in text


@pytest.mark.parametrize("ext,fmt", [("tex", "csv"), ("csv", "latex"), ("md", "latex"), ("tex", "markdown")])
def test_a_format_that_contradicts_the_extension_is_refused(tmp_path, capsys, ext, fmt):
    d = _run(tmp_path, "st")
    out = tmp_path / f"table.{ext}"
    assert main(["table", str(d), "--out", str(out), "--format", fmt]) == 2
    err = capsys.readouterr().err
    assert f"--format {fmt}" in err and f"table.{ext}" in err and not out.exists()


@pytest.mark.parametrize("ext,fmt", [("tex", "latex"), ("txt", "csv"), ("csv", "csv")])
def test_a_format_that_agrees_or_an_unknown_extension_is_kept(tmp_path, ext, fmt):
    d = _run(tmp_path, "st")
    out = tmp_path / f"table.{ext}"
    assert main(["table", str(d), "--out", str(out), "--format", fmt]) == 0
    assert out.read_text() == results_table([TableEntry("st", [d])], fmt=fmt)


def test_printing_without_out_stays_markdown(tmp_path, capsys):
    d = _run(tmp_path, "st")
    assert main(["table", str(d)]) == 0
    assert capsys.readouterr().out == results_table([TableEntry("st", [d])])


def test_the_help_says_the_extension_picks_the_format(capsys):
    with pytest.raises(SystemExit):
        main(["table", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert ".tex" in help_text and "extension" in help_text
