"""``icegan table``: results tables over finished runs (mean ± sample std over seeds), and what it refuses."""
import csv
import io
import json
import re

import numpy as np
import pytest
import yaml

from _runs import edit_metrics
from icegan.cli import main
from icegan.report import TableEntry, parse_entry, results_table


def _metrics(uf1, uar, protocol="CDE", oracle=False, n_folds=68, datasets=("smic", "casme2", "samm")):
    per = {d: {"UF1": uf1 - 0.1 * i, "UAR": uar - 0.1 * i} for i, d in enumerate(datasets)}
    return {"protocol": protocol, "n_folds": n_folds, "n_samples": 442, "oracle_epoch": oracle,
            "overall": {"UF1": uf1, "UAR": uar}, "per_dataset": per}


def _config(name="st", seed=0, model="ststnet", **model_keys):
    """A resolved config as ``icegan loso`` saves it (the keys that matter here)."""
    return {"name": name, "protocol": "CDE", "oracle_epoch": False, "seed": seed, "device": "cpu", "threads": 0,
            "workers": 1, "max_folds": 0, "data": {"source": "megc2019_htnet", "datasets": []},
            "model": {"name": model, "epochs": 100, "shift_px": 1, "seeds": 1, **model_keys}}


def _run(root, name, config=None, n_samples=442, **kw):
    """A finished run folder: metrics.json and (unless ``config`` is False) config.yaml, one recipe by default."""
    d = root / name
    d.mkdir()
    m = _metrics(**kw)
    m["n_samples"] = n_samples
    (d / "metrics.json").write_text(json.dumps(m))
    if config is not False:
        seed = int(re.search(r"(\d*)$", name).group(1) or 0)      # st_s1: seed 1 (seeds of one recipe differ)
        (d / "config.yaml").write_text(yaml.safe_dump(_config(name, seed) if config is None else config,
                                                      sort_keys=False))
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
    pat = re.escape(f"{tmp_path}/zz_*")
    with pytest.raises(ValueError, match=f"^table entry 'x={pat}': '{pat}' matches no run folder$"):
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
    head, lines = tex.splitlines()[:6], tex.splitlines()[6:]
    # a float to paste: packages named, table* with caption and label, the tabular shrunk only when too wide
    assert head[0] == r"% needs \usepackage{booktabs} and \usepackage{adjustbox}"
    assert head[1:3] == [r"\begin{table*}[t]", r"\centering"] and head[3].startswith(r"\caption{Micro-expression")
    assert head[3].endswith("}") and "mean $\\pm$ sample standard deviation" in head[3]
    assert head[4:] == [r"\label{tab:icegan-results}", r"\begin{adjustbox}{max width=\textwidth}"]
    assert lines[-3:] == [r"\end{tabular}", r"\end{adjustbox}", r"\end{table*}"]
    lines = lines[:-2]
    body = lines[lines.index(r"\midrule") + 1:lines.index(r"\bottomrule")]
    assert lines[0] == r"\begin{tabular}{llcrccccccccr}" and lines[-1] == r"\end{tabular}"
    assert lines[2] == (r"\multicolumn{4}{c}{} & \multicolumn{2}{c}{Full} & \multicolumn{2}{c}{SMIC} & "
                        r"\multicolumn{2}{c}{CASME II} & \multicolumn{2}{c}{SAMM} &  \\")
    assert lines[3] == (r"Method & Selection & Protocol & n & UF1 & UAR & UF1 & UAR & UF1 & UAR & UF1 & UAR & "
                        r"Folds / clips \\")
    assert body[0].startswith(r"STSTNet\_2 \& 50\% \#1 & honest & CDE & 3 & 0.7200 $\pm$ 0.0200 & "
                              r"0.7600 $\pm$ 0.0265 &")
    assert body[1] == (r"SDE & honest & SDE & 1 & 0.7900 & 0.8100 & -- & -- & 0.7900 & 0.8100 & -- & -- & "
                       r"26 / 442 \\")
    # every cell separator is a real column: 13 columns in each row, none from an escaped label
    assert all(row.count(" & ") == 12 for row in body)
    assert latex_escape(r"a\b~c^d{e}$") == r"a\textbackslash{}b\textasciitilde{}c\textasciicircum{}d\{e\}\$"
    assert main(["table", f"A={tmp_path}/st_s0", "--format", "latex"]) == 0
    assert r"A & honest & CDE & 1 & 0.7000 & 0.7500 &" in capsys.readouterr().out


def test_an_entry_of_different_recipes_is_refused_naming_the_keys(tmp_path, capsys):
    """Runs of different recipes in one entry are not seeds: `icegan table` refuses them (exit 2, one line naming the
    entry, two runs and the keys that differ, and the fix), also for a bare glob over a suite's folder."""
    suite = tmp_path / "suite"
    suite.mkdir()
    lr = _run(suite, "logreg", config=_config("logreg", model="logreg"), uf1=0.69, uar=0.70)
    st = _run(suite, "ststnet_s0", config=_config("ststnet_s0", seed=0), uf1=0.72, uar=0.74)
    _run(suite, "ststnet_s1", config=_config("ststnet_s1", seed=1), uf1=0.74, uar=0.75)
    with pytest.raises(ValueError, match=r"entry 'Mixed': .*logreg and .*ststnet_s0 are different recipes.*"
                                         r"model\.name \('logreg' vs 'ststnet'\).*LABEL=GLOB"):
        results_table([parse_entry(f"Mixed={lr},{st}")])
    longer = _run(tmp_path, "ststnet_long", config=_config("ststnet_long", seed=2, epochs=200), uf1=0.7, uar=0.7)
    with pytest.raises(ValueError, match=r"model\.epochs \(100 vs 200\)"):
        results_table([parse_entry(f"STSTNet={st},{longer}")])
    more = _run(tmp_path, "ststnet_members", config=_config("m", seeds=3), uf1=0.7, uar=0.7)  # ensemble per fold
    with pytest.raises(ValueError, match=r"model\.seeds \(1 vs 3\)"):
        results_table([parse_entry(f"STSTNet={st},{more}")])
    # the CLI: no row named '*' averaging everything, but an error and exit code 2
    assert main(["table", f"{suite}/*"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan table: error: entry ") and "different recipes" in err and len(err.splitlines()) == 1
    assert main(["table", f"Mixed={lr},{st}", "--format", "csv"]) == 2
    assert "model.name" in capsys.readouterr().err
    # a folder that records no recipe cannot be pooled with others, but is a row of its own
    bare = _run(tmp_path, "bare", config=False, uf1=0.7, uar=0.7)
    with pytest.raises(ValueError, match=r"'B': cannot tell .*/bare records no recipe \(no config\.yaml"):
        results_table([parse_entry(f"B={st},{bare}")])
    assert "| bare | honest | CDE | 1 |" in results_table([parse_entry(str(bare))])


def test_different_recipes_show_three_keys_values_cut_at_40_characters_and_how_many_more(tmp_path):
    """Four model keys differ: the first three are named (a long value cut to 37 characters and '...'), then 'and 1
    more key(s)'."""
    a = _run(tmp_path, "a", config=_config("a", seed=0, lr=0.001, note="x" * 50, k1=1, k2=2), uf1=0.7, uar=0.7)
    b = _run(tmp_path, "b", config=_config("b", seed=1, lr=0.01, note="y" * 50, k1=2, k2=3), uf1=0.7, uar=0.7)
    with pytest.raises(ValueError) as exc:
        results_table([parse_entry(f"E={a},{b}")])
    assert (f"are different recipes, not seeds of one (they differ in model.lr (0.001 vs 0.01), model.note ('{'x' * 36}"
            f"... vs '{'y' * 36}...), model.k1 (1 vs 2), and 1 more key(s)); give each recipe") in str(exc.value)
    c = _run(tmp_path, "c", config=_config("c", seed=2, lr=0.01, note="x" * 50, k1=2, k2=3), uf1=0.7, uar=0.7)
    with pytest.raises(ValueError) as exc:                                 # three keys: all named, no 'more'
        results_table([parse_entry(f"E={a},{c}")])
    assert "(they differ in model.lr (0.001 vs 0.01), model.k1 (1 vs 2), model.k2 (2 vs 3)); give" in str(exc.value)


def test_a_label_with_a_pipe_stays_one_markdown_cell(tmp_path):
    """A label such as 'G|RF' ended its table cell and shifted every column of the row; it is escaped now."""
    from icegan.report import markdown_cell
    run = _run(tmp_path, "r", config=_config("r", seed=0), uf1=0.70, uar=0.71)
    row = next(line for line in results_table([parse_entry(f"G|RF={run}")]).splitlines() if "RF" in line)
    assert row.startswith("| G\\|RF | honest |") and row.replace("\\|", "").count("|") == \
        results_table([parse_entry(f"G={run}")]).splitlines()[0].count("|")
    assert markdown_cell("a|b\nc") == "a\\|b c" and markdown_cell("a\r\nb") == "a  b"


def test_a_run_listed_twice_in_an_entry_is_refused(tmp_path, capsys):
    """A run named twice in one entry (two overlapping globs, or a typo) counted twice in the row's mean and n; it is
    refused, naming the entry and the run, in table and compare alike."""
    s0 = _run(tmp_path, "st_s0", config=_config("st_s0", seed=0), uf1=0.70, uar=0.70)
    s1 = _run(tmp_path, "st_s1", config=_config("st_s1", seed=1), uf1=0.74, uar=0.74)
    with pytest.raises(ValueError, match=r"entry 'X' lists the run .*st_s0 twice.*list each run once"):
        results_table([parse_entry(f"X={s0},{s1},{s0}")])
    with pytest.raises(ValueError, match=r"lists the run .*st_s0 twice"):
        results_table([parse_entry(f"dup={s0},{s0}")])
    other_way = tmp_path / "st_s1" / ".." / "st_s0"                    # the same folder, written another way
    with pytest.raises(ValueError, match=f"^entry 'dup' lists the run {re.escape(str(other_way))} twice \\(also as "
                                         f"{re.escape(str(s0))}\\); it would count twice"):
        results_table([parse_entry(f"dup={s0},{other_way}")])
    assert main(["table", f"S={tmp_path}/st_s*,{s0}"]) == 2                      # overlapping patterns
    assert "lists the run" in capsys.readouterr().err
    assert "| S | honest | CDE | 2 | 0.7200 ± 0.0283 |" in results_table([parse_entry(f"S={tmp_path}/st_s*")])


def test_seeds_of_one_recipe_are_pooled_whatever_their_run_only_keys(tmp_path):
    """Name, seed, threads, workers, device, the main job's prepare workers / progress / cache and a neutral new key
    (absent from an older run) do not make another recipe; a bare glob of one recipe's seeds is named after them."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for s in range(3):
        cfg = _config(f"ststnet_s{s}", seed=s)
        cfg.update(threads=s, workers=s + 1, device=["cpu", "cuda", "cuda:1"][s])
        cfg["data"]["prepare"] = {"size": 128, "workers": s + 1, "progress": s == 0, "cache_root": f"/c{s}"}
        if s == 2:
            cfg["model"]["sam_rho"] = 0.0          # a key added later, at its neutral value
        _run(seeds, f"ststnet_s{s}", config=cfg, uf1=0.70 + 0.02 * s, uar=0.75)
    entry = parse_entry(f"{seeds}/*")
    assert entry.label == "ststnet" and len(entry.runs) == 3
    assert parse_entry(f"{seeds}/ststnet_s*").label == "ststnet_s*"            # a named pattern keeps its name
    assert parse_entry(f"{seeds}/ststnet_s0,{seeds}/ststnet_s1").label == "ststnet"
    md = results_table([entry]).splitlines()
    assert md[2].startswith("| ststnet | honest | CDE | 3 | 0.7200 ± 0.0200 |")
    cfg = _config("x", seed=5)
    cfg["data"]["prepare"] = {"size": 128}
    cfg["model"]["sam_rho"] = 0.05                                               # not neutral: another recipe
    _run(seeds, "ststnet_sam_s5", config=cfg, uf1=0.7, uar=0.7)
    with pytest.raises(ValueError, match=r"entry 'ststnet': .*ststnet_s0 and .*ststnet_sam_s5 .* differ in "
                                         r"model\.sam_rho \(\(absent\) vs 0\.05\)\)") as err:
        results_table([parse_entry(f"{seeds}/*")])
    # the glob the message suggests keeps the seeds of one recipe apart from another recipe's folders
    assert 'e.g. "STSTNet=runs/ststnet_s[0-9]*"' in str(err.value)
    assert len(parse_entry(f"S={seeds}/ststnet_s[0-9]*").runs) == 3
    assert len(parse_entry(f"S={seeds}/ststnet_s*").runs) == 4                 # the message's old example


def _ensemble(root, name, members, weights):
    d = root / name
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(_metrics(0.74, 0.75)))
    rows = [{"run": str(m), "weight": w, "UF1": 0.7, "UAR": 0.7} for m, w in zip(members, weights)]
    (d / "ensemble.json").write_text(json.dumps({"members": rows, "protocol": "CDE", "dataset": None}))
    return d


def test_ensembles_of_one_recipe_pool_and_others_are_refused(tmp_path):
    """Ensemble folders (no config.yaml) are compared by what ensemble.json records: each member's recipe and
    weight."""
    for s in (0, 1):
        _run(tmp_path, f"st_s{s}", config=_config(f"st_s{s}", seed=s), uf1=0.7, uar=0.7)
        _run(tmp_path, f"rf_s{s}", config=_config(f"rf_s{s}", seed=s, model="random_forest"), uf1=0.7, uar=0.7)
    e0 = _ensemble(tmp_path, "ens_s0", [tmp_path / "st_s0", tmp_path / "rf_s0"], [0.5, 0.5])
    e1 = _ensemble(tmp_path, "ens_s1", [tmp_path / "st_s1", tmp_path / "rf_s1"], [0.5, 0.5])
    assert "| GRF | honest | CDE | 2 |" in results_table([parse_entry(f"GRF={e0},{e1}")])
    heavy = _ensemble(tmp_path, "heavy_s1", [tmp_path / "st_s1", tmp_path / "rf_s1"], [0.25, 0.75])
    with pytest.raises(ValueError, match=r"members\[0\]\.weight \(0\.5 vs 0\.25\)"):
        results_table([parse_entry(f"GRF={e0},{heavy}")])
    swapped = _ensemble(tmp_path, "lr_s1", [tmp_path / "st_s1", tmp_path / "st_s0"], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"members\[1\]\.model\.name \('random_forest' vs 'ststnet'\)"):
        results_table([parse_entry(f"GRF={e0},{swapped}")])
    with pytest.raises(ValueError, match=r"one is an ensemble \(ensemble\.json\), the other an icegan loso"):
        results_table([parse_entry(f"X={e0},{tmp_path / 'st_s0'}")])
    lost = _ensemble(tmp_path, "lost", [tmp_path / "gone_s0", tmp_path / "rf_s0"], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"lost records no recipe \(its member .*gone_s0 is not found\)"):
        results_table([parse_entry(f"GRF={e0},{lost}")])


def test_folds_and_clips_columns(tmp_path):
    """A 4-fold smoke run of 19 clips and a full 68-fold run of 442 clips no longer look alike."""
    full = _run(tmp_path, "full", uf1=0.7, uar=0.7)
    short = _run(tmp_path, "short", uf1=0.9, uar=0.9, n_folds=4, n_samples=19, datasets=("casme2",))
    entries = [TableEntry("full", [full]), TableEntry("smoke", [short])]
    md = results_table(entries).splitlines()
    assert md[0].endswith("| SAMM UAR | Folds / clips |") and md[1].count("---|") == md[0].count(" | ") + 1
    assert md[2].endswith("| 68 / 442 |") and md[3].endswith("| 4 / 19 |")
    rows = list(csv.DictReader(io.StringIO(results_table(entries, "csv"))))
    assert [(r["Folds"], r["Clips"]) for r in rows] == [("68", "442"), ("4", "19")]
    tex = results_table(entries, "latex").splitlines()
    assert tex[tex.index(r"\midrule") + 2].endswith(r"& 4 / 19 \\")
    old = tmp_path / "old"                                  # a metrics.json without the counts: a dash, not a guess
    old.mkdir()
    m = _metrics(0.7, 0.7)
    del m["n_folds"], m["n_samples"]
    (old / "metrics.json").write_text(json.dumps(m))
    assert results_table([TableEntry("old", [old])]).splitlines()[2].endswith("| — |")


@pytest.mark.parametrize("text", ["", '{"protocol": "CDE", "overall": {"UF'], ids=["empty", "cut"])
def test_a_damaged_metrics_json_is_named_as_damaged(tmp_path, capsys, text):
    """An empty or cut-short metrics.json (a killed run) is one error line of `icegan table` naming the file and
    saying it looks damaged or incomplete, with what to run again; not json's bare 'Expecting value'."""
    d = _run(tmp_path, "a", uf1=0.7, uar=0.71)
    (d / "metrics.json").write_text(text)
    assert main(["table", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"icegan table: error: {d / 'metrics.json'}: cannot be read as JSON (")
    assert "looks damaged or incomplete" in err and "again with the same --out" in err and len(err.splitlines()) == 1


def test_a_damaged_ensemble_header_is_named_as_damaged(tmp_path):
    """A cut-short ensemble.json met while checking an entry's recipes names the file and says it looks damaged."""
    a = _run(tmp_path, "a", uf1=0.7, uar=0.71)
    e1 = _run(tmp_path, "e1", config=False, uf1=0.7, uar=0.7)
    e2 = _run(tmp_path, "e2", config=False, uf1=0.7, uar=0.7)
    (e1 / "ensemble.json").write_text(json.dumps({"members": [{"run": str(a), "weight": 1.0}]}))
    (e2 / "ensemble.json").write_text('{"members": [{"run": ')
    with pytest.raises(ValueError, match=rf"{e2.name}/ensemble.json: cannot be read as JSON .*looks damaged"):
        results_table([TableEntry("E", [e1, e2])])


@pytest.mark.parametrize("edit, msg", [
    (lambda m: m["overall"].pop("UF1"), r"no 'overall\.UF1'"),
    (lambda m: m["overall"].update(UF1="high"), r"'overall\.UF1' is 'high', not a number"),
    (lambda m: m["overall"].update(UAR=None), r"'overall\.UAR' is None, not a number"),
    (lambda m: m["overall"].update(UF1=True), r"'overall\.UF1' is True, not a number"),
    (lambda m: m["per_dataset"]["casme2"].pop("UAR"), r"no 'per_dataset\.casme2\.UAR'"),
    (lambda m: m["per_dataset"].update(samm=[0.5]), r"'per_dataset\.samm' is not a mapping of metrics"),
    (lambda m: m.update(overall=0.7), r"'overall' is not a mapping of metrics"),
    (lambda m: m.update(per_dataset=[]), r"'per_dataset' is not a mapping of datasets"),
], ids=["no-UF1", "UF1-text", "UAR-null", "UF1-bool", "no-dataset-UAR", "dataset-list", "overall-number", "per_dataset-list"])
def test_a_metrics_json_without_a_number_the_table_shows_is_named(tmp_path, capsys, edit, msg):
    """A metrics.json whose UF1 / UAR (overall or of a dataset) is missing or not a number is one error line of
    `icegan table` naming the file and the key, not a KeyError / numpy dtype traceback."""
    d = _run(tmp_path, "a", uf1=0.7, uar=0.71)
    edit_metrics(d, edit)
    with pytest.raises(ValueError, match=msg):
        results_table([TableEntry("a", [d])])
    assert main(["table", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"icegan table: error: {d / 'metrics.json'}: ") and len(err.splitlines()) == 1
    assert "edited" in err and "again with the same --out" in err


@pytest.mark.parametrize("members, msg", [
    ([{"run": "A", "weight": "x"}], r"members\[0\]\.weight is 'x', not a number"),
    ([{"run": "A"}], r"members\[0\] has no weight"),
    (["A"], r"members\[0\] is not a mapping"),
    ({"run": "A"}, r"'members' is not a list"),
], ids=["weight-text", "no-weight", "member-text", "members-mapping"])
def test_a_bad_ensemble_header_is_named(tmp_path, members, msg):
    """An ensemble.json whose members are not a list of {run, weight} is an error naming the file (checking an
    entry's recipes), not float()'s bare 'could not convert string to float' or an AttributeError."""
    a = _run(tmp_path, "a", uf1=0.7, uar=0.71)
    e1 = _run(tmp_path, "e1", config=False, uf1=0.7, uar=0.7)
    e2 = _run(tmp_path, "e2", config=False, uf1=0.7, uar=0.7)
    (e1 / "ensemble.json").write_text(json.dumps({"members": [{"run": str(a), "weight": 1.0}]}))
    members = json.loads(json.dumps(members).replace('"A"', json.dumps(str(a))))
    (e2 / "ensemble.json").write_text(json.dumps({"members": members}))
    with pytest.raises(ValueError, match=rf"{e2.name}/ensemble.json: {msg}"):
        results_table([TableEntry("E", [e1, e2])])


@pytest.mark.parametrize("header, content, msg", [
    ("selection.json", {"candidates": ["A"]}, r"candidates\[0\] is not a mapping"),
    ("selection.json", {"candidates": "A"}, r"'candidates' is not a list"),
    ("merged.json", {"merged_from": [{"run": "A"}]}, r"merged_from\[0\] is not a folder name"),
], ids=["selection-candidate-text", "selection-candidates-text", "merged-from-mapping"])
def test_a_bad_selection_or_merge_header_is_named(tmp_path, header, content, msg):
    """A selection.json / merged.json whose runs are not a list of the right items is an error naming the file,
    not an AttributeError traceback."""
    e1 = _run(tmp_path, "e1", config=False, uf1=0.7, uar=0.7)
    e2 = _run(tmp_path, "e2", config=False, uf1=0.7, uar=0.7)
    for e in (e1, e2):
        (e / header).write_text(json.dumps(content))
    with pytest.raises(ValueError, match=rf"{e1.name}/{header}: {msg}"):
        results_table([TableEntry("E", [e1, e2])])


def test_dataset_columns_are_smic_casme2_samm_then_others_by_name(tmp_path):
    """Dataset columns follow SMIC, CASME II, SAMM whatever order a metrics.json lists them in; a dataset icegan does
    not know comes after them, named as written."""
    d = _run(tmp_path, "r", uf1=0.9, uar=0.8, datasets=("zoo", "samm", "casme2", "smic"))
    md = results_table([TableEntry("r", [d])]).splitlines()
    assert md[0].startswith("| Method | Selection | Protocol | n | Full UF1 | Full UAR | SMIC UF1 | SMIC UAR | "
                            "CASME II UF1 | CASME II UAR | SAMM UF1 | SAMM UAR | zoo UF1 | zoo UAR |")
    # _metrics: the i-th listed dataset gets overall − 0.1·i (samm 0.8, casme2 0.7, smic 0.6, zoo 0.9)
    assert md[2].startswith("| r | honest | CDE | 1 | 0.9000 | 0.8000 | 0.6000 | 0.5000 | 0.7000 | 0.6000 | "
                            "0.8000 | 0.7000 | 0.9000 | 0.8000 |")


def test_runs_of_one_entry_differing_in_protocol_or_clips_are_refused(tmp_path):
    """Runs of one recipe whose metrics.json differ in protocol or in the clips scored are not pooled."""
    a = _run(tmp_path, "a", uf1=0.7, uar=0.7)
    b = _run(tmp_path, "b", uf1=0.7, uar=0.7, protocol="SDE")
    c = _run(tmp_path, "c", uf1=0.7, uar=0.7, n_samples=441)
    with pytest.raises(ValueError, match=r"'P': its runs differ in protocol \(\['CDE', 'SDE'\]\)"):
        results_table([TableEntry("P", [a, b])])
    with pytest.raises(ValueError, match=r"'N': its runs differ in n_samples \(\['441', '442'\]\)"):
        results_table([TableEntry("N", [a, c])])


def test_a_metrics_json_with_one_count_shows_a_question_mark_for_the_other(tmp_path):
    """Folds known but clips not (or the reverse): the known count and '?', not a dash for both."""
    for name, drop, want in (("nf", "n_samples", "| 68 / ? |"), ("ns", "n_folds", "| ? / 442 |")):
        d = tmp_path / name
        d.mkdir()
        m = _metrics(0.7, 0.7)
        del m[drop]
        (d / "metrics.json").write_text(json.dumps(m))
        assert results_table([TableEntry(name, [d])]).splitlines()[2].endswith(want)


def test_csv_cells_keep_full_precision(tmp_path):
    """CSV holds the metrics unrounded (the Markdown and LaTeX cells round to 4 decimals)."""
    d = _run(tmp_path, "r", uf1=0.223456789, uar=0.987654321)       # SAMM's UF1 0.0235 (_metrics: 0.2 less)
    (row,) = csv.DictReader(io.StringIO(results_table([TableEntry("r", [d])], "csv")))
    assert float(row["Full UF1"]) == 0.223456789 and float(row["Full UAR"]) == 0.987654321
    assert "| 0.2235 | 0.9877 |" in results_table([TableEntry("r", [d])])


def test_a_metrics_json_or_config_yaml_of_the_wrong_kind_is_named(tmp_path, capsys):
    """A metrics.json holding JSON that is no object or lacking a key of icegan's, and a config.yaml that is no mapping or no UTF-8 text (met
    while checking that an entry's runs share one recipe), are errors naming the file."""
    d = _run(tmp_path, "list", uf1=0.7, uar=0.71)
    (d / "metrics.json").write_text("[0.7]")
    assert main(["table", str(d)]) == 2
    assert capsys.readouterr().err.startswith(f"icegan table: error: {d / 'metrics.json'}: not a JSON object (got a "
                                              "list); ")
    other = _run(tmp_path, "other", uf1=0.7, uar=0.71)
    edit_metrics(other, lambda m: m.pop("protocol"))
    with pytest.raises(ValueError) as keyless:
        results_table([TableEntry("other", [other])])
    assert str(keyless.value) == f"{other / 'metrics.json'}: no 'protocol' (not an icegan metrics.json)"
    a, b = _run(tmp_path, "a", uf1=0.7, uar=0.71), _run(tmp_path, "b", uf1=0.7, uar=0.71)
    (b / "config.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValueError) as listed:
        results_table([TableEntry("E", [a, b])])
    assert str(listed.value) == f"{b / 'config.yaml'}: not a config (a YAML mapping)"
    (b / "config.yaml").write_bytes(b"model: \xff\n")
    with pytest.raises(ValueError) as undecodable:
        results_table([TableEntry("E", [a, b])])
    assert str(undecodable.value).startswith(f"{b / 'config.yaml'}: cannot be read (")
