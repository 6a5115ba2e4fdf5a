"""Reports of finished runs: null runs tagged in every table, LaTeX rows that begin with ``*``, table / compare
entries of folders named with ``=`` or ``.``, compare refusing two protocols, bench/leave_dataset_out.py's recipes."""
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from _bench import bench_parser, load_bench
from _runs import write_finished_run
from icegan.cli import main
from icegan.report import TableEntry, latex_row_start, parse_entry, results_table

REPO = Path(__file__).resolve().parents[1]


def _metrics(uf1=0.7, uar=0.7, n_samples=442):
    per = {d: {"UF1": uf1 - 0.1 * i, "UAR": uar - 0.1 * i} for i, d in enumerate(("smic", "casme2", "samm"))}
    return {"protocol": "CDE", "n_folds": 68, "n_samples": n_samples, "oracle_epoch": False,
            "overall": {"UF1": uf1, "UAR": uar}, "per_dataset": per}


def _table_run(root, name, permute=-1, seed=0, uf1=0.7):
    """A finished run folder for ``icegan table``: metrics.json and config.yaml (``data.permute_labels``)."""
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(_metrics(uf1, uf1)))
    cfg = {"name": name, "protocol": "CDE", "seed": seed, "data": {"source": "megc2019_htnet", "permute_labels": permute},
           "model": {"name": "logreg"}}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    return d


ROWS = [(f"casme2/s{i}", f"c{j}", (i + j) % 3, (i + 2 * j) % 3) for i in range(4) for j in range(3)]


def _compare_run(root, name, permute=None, protocol="CDE", rows=ROWS):
    """A finished run for ``icegan compare`` (:func:`write_finished_run`, a dataset column), with
    ``data.permute_labels`` and the run.json ``protocol`` given (HDE: its one fold is the dataset)."""
    d = write_finished_run(root / name, rows, datasets=lambda s: s.split("/")[0])
    if permute is not None:
        (d / "config.yaml").write_text(yaml.safe_dump({"name": name, "seed": 0, "model": {"name": "ststnet"},
                                                       "data": {"permute_labels": permute}}))
    h = json.loads((d / "run.json").read_text())
    h["protocol"] = protocol
    if protocol == "HDE":
        h["folds"] = sorted({r[0].split("/")[0] for r in rows})
    (d / "run.json").write_text(json.dumps(h))
    return d


# 1. null runs -------------------------------------------------------------------------------------------------------

def test_table_tags_a_null_run_and_says_what_it_is(tmp_path):
    lr, perm = _table_run(tmp_path, "lr"), _table_run(tmp_path, "perm", permute=0, uf1=0.37)
    entries = [TableEntry("lr", [lr]), TableEntry("perm", [perm])]
    md = results_table(entries)
    rows = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln}
    assert "perm [NULL RUN]" in rows and "lr" in rows and "lr [NULL RUN]" not in rows
    assert re.search(r"\[NULL RUN\]: .*data\.permute_labels", md)          # the legend says what the tag means
    tex = results_table(entries, "latex")
    assert "perm [NULL RUN]" in tex and "data.permute\\_labels" in tex
    csv_text = results_table(entries, "csv")
    assert "perm [NULL RUN]" in csv_text
    # no null run: no legend line
    assert "NULL RUN" not in results_table([TableEntry("lr", [lr])])


def test_compare_tags_a_null_run_in_labels_rows_and_legend(tmp_path):
    from icegan.significance import bootstrap_compare, comparison_table, load_run_set
    a = load_run_set("perm", [_compare_run(tmp_path, "perm", permute=3)])
    b = load_run_set("perm2", [_compare_run(tmp_path, "perm2", permute=3)])
    assert a.label == "perm [NULL RUN]" and a.null_run
    rows = bootstrap_compare([a, b], resamples=100)
    md = comparison_table(rows, resamples=100)
    assert "| perm [NULL RUN] |" in md and re.search(r"\[NULL RUN\]: .*data\.permute_labels", md)
    real = load_run_set("real", [_compare_run(tmp_path, "real")])
    assert real.label == "real" and not real.null_run
    assert "NULL RUN" not in comparison_table(bootstrap_compare([real], resamples=100), resamples=100)


def test_compare_cli_forest_plot_labels_a_null_run(tmp_path, monkeypatch, capsys):
    import icegan.significance as sig
    seen = {}

    def spy(scopes, path, baseline=0, confidence=0.95):
        seen["labels"] = [r["label"] for _, rows in scopes for r in rows]
    monkeypatch.setattr(sig, "forest_plot", spy)
    perm = _compare_run(tmp_path, "perm", permute=0)
    assert main(["compare", str(perm), "--resamples", "100", "--plot", str(tmp_path / "f.png")]) == 0
    assert seen["labels"] == ["perm [NULL RUN]"]
    assert "[NULL RUN]" in capsys.readouterr().out


def test_suite_per_seed_table_tags_a_null_run(tmp_path):
    from icegan.suite import per_seed_table
    lr, perm = _table_run(tmp_path, "lr"), _table_run(tmp_path, "perm", permute=0)
    plan = [SimpleNamespace(label="LR", seed=0, out=lr, over_seeds=False),
            SimpleNamespace(label="null", seed=0, out=perm, over_seeds=False)]
    text = per_seed_table(SimpleNamespace(labels=["LR", "null"], seeds=[0]), plan, {lr, perm})
    row = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| ")}
    assert "[NULL RUN]" in row["null"] and "[NULL RUN]" not in row["LR"]
    assert re.search(r"\[NULL RUN\]: .*data\.permute_labels", text)


def test_metrics_md_of_a_null_run_has_no_reference_rows():
    from icegan.protocol import _markdown
    from icegan.protocol import METRIC_KEYS
    m = _metrics()
    for part in [m["overall"], *m["per_dataset"].values()]:
        part.update({k: part.get(k, 0.5) for k in METRIC_KEYS})
    honest = _markdown(m, "lr")
    assert "comparable with an honest run" in honest
    null = _markdown(m, "lr", null_run=True)       # run_loso, ensembles and selections say it; the title does not
    assert "comparable with an honest run" not in null and "Reference rows" not in null
    assert "No reference rows" in null and "data.permute_labels" in null
    assert sum(ln.startswith("| ") for ln in null.splitlines()) < sum(ln.startswith("| ") for ln in honest.splitlines())


# 2. LaTeX rows beginning with * ---------------------------------------------------------------------------------------

def test_latex_row_start_guards_a_star():
    assert latex_row_start("*LR (ours)") == "{}*LR (ours)"
    assert latex_row_start("[ours] RF") == "{}[ours] RF"
    assert latex_row_start("RF") == "RF"


def test_table_and_compare_latex_keep_a_leading_star(tmp_path):
    rf, lr = _table_run(tmp_path, "rf"), _table_run(tmp_path, "lr")
    tex = results_table([TableEntry("RF", [rf]), TableEntry("*LR (ours)", [lr])], "latex")
    assert re.search(r"^\{\}\*LR \(ours\) &", tex, re.M)
    from icegan.significance import bootstrap_compare, comparison_table, load_run_set
    sets = [load_run_set("RF", [_compare_run(tmp_path, "crf")]), load_run_set("*LR", [_compare_run(tmp_path, "clr")])]
    tex = comparison_table(bootstrap_compare(sets, resamples=100), resamples=100, fmt="latex")
    assert re.search(r"^\{\}\*LR &", tex, re.M)


# 3. entries ---------------------------------------------------------------------------------------------------------

def test_entry_of_a_folder_named_with_equals_sign(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = _table_run(tmp_path / "eqdir", "logreg_C=1")
    lr = _table_run(tmp_path, "lr")
    e = parse_entry("eqdir/logreg_C=1")
    assert e.label == "logreg_C=1" and e.runs == [Path("eqdir/logreg_C=1")] and e.runs[0].resolve() == d
    e = parse_entry("LR C=1=lr")                      # the first '=' whose right side is a folder
    assert e.label == "LR C=1" and e.runs[0].resolve() == lr
    e = parse_entry("named=eqdir/logreg_C=1")
    assert e.label == "named" and e.runs[0].resolve() == d
    assert parse_entry("LR=lr").label == "LR"
    with pytest.raises(ValueError, match="'nothere' matches no run folder"):
        parse_entry("x=nothere")
    with pytest.raises(ValueError, match="expected DIR or LABEL=DIR"):
        parse_entry("=lr")


def test_entry_dot_is_named_after_the_folder(tmp_path, monkeypatch, capsys):
    lr = _table_run(tmp_path, "lr")
    monkeypatch.chdir(lr)
    assert parse_entry(".").label == "lr" and parse_entry("./").label == "lr"
    monkeypatch.chdir(lr / ".." )
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert parse_entry("../lr").label == "lr"
    monkeypatch.chdir(lr)
    assert main(["table", "."]) == 0
    assert "| lr |" in capsys.readouterr().out


# 4. compare across protocols ----------------------------------------------------------------------------------------

def test_compare_refuses_runs_of_two_protocols(tmp_path, capsys):
    cde = _compare_run(tmp_path, "cde")
    hde = _compare_run(tmp_path, "hde", protocol="HDE")
    assert main(["compare", f"CDE={cde}", f"HDE={hde}", "--resamples", "100"]) == 2
    err = capsys.readouterr().err
    assert "differs from" in err and "'protocol'" in err and "'HDE' vs 'CDE'" in err
    from icegan.significance import bootstrap_compare, load_run_set
    with pytest.raises(ValueError, match="in 'protocol'"):
        bootstrap_compare([load_run_set("a", [cde]), load_run_set("b", [hde])], resamples=100)
    # one protocol: compared
    assert main(["compare", f"A={cde}", f"B={_compare_run(tmp_path, 'cde2')}", "--resamples", "100"]) == 0


# 5. bench/leave_dataset_out.py ------------------------------------------------------------------------------------

LR = str(REPO / "configs" / "features_logreg.yaml")
RF = str(REPO / "configs" / "features_randomforest.yaml")


@pytest.mark.parametrize("recipes, words", [
    ([f"A={LR}", f"A={RF}"], "given twice"),
    ([LR], "NAME=CONFIG"),
    ([f"={LR}"], "NAME=CONFIG"),
    ([f"a/b={LR}"], "'/'"),
    (["A=configs/no_such.yaml"], "no such config"),
    (["A="], "NAME=CONFIG"),
    (["A='unbalanced"], "A='unbalanced"),
])
def test_leave_dataset_out_refuses_bad_recipes(recipes, words, tmp_path, monkeypatch, capsys):
    ap = bench_parser("leave_dataset_out", monkeypatch)
    with pytest.raises(SystemExit) as exc:
        ap.parse_args(["--out", str(tmp_path / "o"), *recipes])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_leave_dataset_out_parses_good_recipes(tmp_path, monkeypatch):
    ap = bench_parser("leave_dataset_out", monkeypatch)
    args = ap.parse_args(["--out", str(tmp_path / "o"), f"G={LR} model.C=2", f"RF={RF}"])
    assert args.recipes == [("G", LR, ["model.C=2"]), ("RF", RF, [])]


def test_leave_dataset_out_fit_error_is_one_line(tmp_path, monkeypatch, capsys):
    mod = load_bench("leave_dataset_out")
    rows = [{"dataset": d, "subject": f"{d}/s1", "clip": "c", "label": 0, "path": "x"} for d in mod.DATASETS]
    monkeypatch.setattr(mod, "read_megc2019_table", lambda root: pd.DataFrame(rows))
    monkeypatch.setattr(mod, "shared_data_root", lambda: tmp_path)

    def fit(cfg, path, progress=False):
        raise ValueError("model.C must be > 0")
    monkeypatch.setattr(mod, "fit", fit)
    with pytest.raises(SystemExit) as exc:
        mod.main(["--out", str(tmp_path / "o"), f"LR={LR}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "LR" in err and "model.C must be > 0" in err


def test_compare_headers_name_a_null_baseline_without_its_tag(tmp_path):
    from icegan.significance import bootstrap_compare, comparison_table, load_run_set
    sets = [load_run_set("perm", [_compare_run(tmp_path, "perm", permute=0)]),
            load_run_set("perm1", [_compare_run(tmp_path, "perm1", permute=0)])]
    md = comparison_table(bootstrap_compare(sets, resamples=100), resamples=100)
    head = md.splitlines()[0]
    assert "ΔUF1 vs perm [95 % CI]" in head and "NULL RUN" not in head
    assert "| perm [NULL RUN] |" in md and "| perm1 [NULL RUN] |" in md
