"""Behaviour-preserving clean-ups of repeated work and twin code (each test could fail on the code before):
``icegan table`` reads each run's run.json once; ``where_set`` and ``apply_overrides`` read an override with one
parser; ``icegan compare`` and ``icegan suite`` count the tables drawn and their paired intervals with one helper;
``icegan fit`` and ``icegan loso`` list the classes without a clip with one helper."""
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report_scaling54 import _run  # noqa: E402

import icegan.report as report  # noqa: E402
from icegan.cli import main  # noqa: E402


@pytest.fixture
def run_json_reads(monkeypatch):
    """How often each run.json was read (Path.read_text), by folder name."""
    seen = Counter()
    real = Path.read_text

    def counting(self, *a, **kw):
        if self.name == "run.json":
            seen[self.parent.name] += 1
        return real(self, *a, **kw)
    monkeypatch.setattr(Path, "read_text", counting)
    return seen


def test_table_reads_each_run_json_once(tmp_path, run_json_reads, capsys):
    """A table of 5 seeds read each run.json 4 times (the folds check, the data digest of the recipe and of the seed
    check, the partial tag): 20 reads, now 5; the table is the same."""
    for i in range(5):
        _run(tmp_path, f"st_s{i}")
    assert main(["table", f"ST={tmp_path}/st_s*"]) == 0
    out = capsys.readouterr().out
    assert "| ST | honest | CDE | 5 | 0.2532 ± 0.0454 | 0.2667 ± 0.0465 |" in out and "| 3 / 12 |\n" in out
    assert run_json_reads == Counter({f"st_s{i}": 1 for i in range(5)})
    assert report._CONFIGS is None               # nothing kept after the command


def test_results_table_reads_run_json_anew_when_it_changed(tmp_path, run_json_reads):
    """Outside one command nothing is kept: a run.json rewritten (a max_folds run extended) is read anew, and the
    partial tag and the unfinished-run refusal follow it."""
    runs = [_run(tmp_path, f"st_s{i}") for i in range(2)]
    entry = report.TableEntry("ST", runs)
    assert "[PARTIAL" not in report.results_table([entry])
    assert sum(run_json_reads.values()) == 2
    for r in runs:
        (r / "run.json").write_text(json.dumps({"protocol": "CDE", "oracle_epoch": False, "folds_total": 5,
                                                "folds": ["casme2/s0", "casme2/s1", "casme2/s2"]}))
    assert "| ST [PARTIAL: 3 of 5 folds] |" in report.results_table([entry])
    (runs[0] / "run.json").write_text(json.dumps({"folds": [f"casme2/s{s}" for s in range(4)]}))
    with pytest.raises(ValueError, match="unfinished run: its run.json lists 4 folds"):
        report.results_table([entry])


def test_where_set_and_apply_overrides_read_an_override_with_one_parser(monkeypatch, tmp_path):
    """Both read ``key=value`` through config.parse_override: a change of its syntax (here one that reads
    ``data.prepare=SIZE`` as the mapping {size: SIZE}) changes both alike, so where_set cannot miss a key that
    apply_overrides set (they had two copies of the split and the YAML read)."""
    from icegan import config
    from icegan.pipeline import MainConfig

    real = config.parse_override
    calls = []

    def changed(item):
        calls.append(item)
        key, value = real(item)
        return (key, {"size": value}) if key == "data.prepare" and isinstance(value, int) else (key, value)
    monkeypatch.setattr(config, "parse_override", changed)
    overrides = ["data.prepare=96"]
    assert config.load_config(MainConfig, None, overrides).data.prepare.size == 96
    assert config.where_set("data.prepare.size", None, overrides) == "command line"
    assert config.where_set("data.prepare.color", None, overrides) is None
    assert calls == overrides * 3


@pytest.mark.parametrize("item, key, value", [
    ("train.epochs=2", "train.epochs", 2), (" data.root = {data_root}/x ", "data.root", "{data_root}/x"),
    ("name=", "name", ""), ("data.prepare={size: 64}", "data.prepare", {"size": 64}), ("a.b=c=d", "a.b", "c=d")])
def test_parse_override(item, key, value):
    from icegan.config import parse_override
    assert parse_override(item) == (key, value)


@pytest.mark.parametrize("item, match", [
    ("configs/x.yaml", "override 'configs/x.yaml' must look like key=value .*--config configs/x.yaml"),
    ("a={b: 1, b: 2}", "override 'a=\\{b: 1, b: 2\\}': "), ("a=[1", "override 'a=\\[1': cannot parse value")])
def test_parse_override_refusals(item, match):
    from icegan.config import ConfigError, parse_override
    with pytest.raises(ConfigError, match=match):
        parse_override(item)


def _scoped_runs(tmp_path, k, names):
    """k runs over the same clips and labels (four clips of each subject of ``names``, dataset: the name's prefix),
    each with its own predictions."""
    import numpy as np
    from _runs import write_finished_run
    r = np.random.default_rng(1)
    truth = [(s, f"c{j}", int(y)) for s in names for j, y in enumerate(r.integers(0, 3, 4))]
    return [write_finished_run(tmp_path / f"e{i}", [(s, c, y, int(r.integers(0, 3))) for s, c, y in truth],
                               lambda s: s.split("/")[0], seed=i) for i in range(k)]


def test_shown_scopes_counts_the_tables_drawn(tmp_path):
    """icegan compare and icegan suite's page counted the drawn tables and their paired Δ intervals with two copies
    of one rule (compare's also counting a full scope that has no table); now one helper, whose values are these."""
    from icegan.significance import comparison_scopes, load_run_set, shown_scopes
    runs = _scoped_runs(tmp_path, 3, [f"casme2/s{i}" for i in range(5)] + ["smic/s0"])
    sets = [load_run_set(f"E{i}", [r]) for i, r in enumerate(runs)]
    assert shown_scopes(comparison_scopes(sets, False)) == (0, 4)          # all: ΔUF1, ΔUAR of 2 entries
    scopes = comparison_scopes(sets, True)                                  # all, smic (one subject), casme2
    assert [name for name, _ in scopes] == ["all", "smic", "casme2"]
    assert shown_scopes(scopes) == (2, 8)                                   # the legend under CASME II's table
    one = [load_run_set("one", [r]).restrict("smic") for r in runs[:2]]
    assert shown_scopes(comparison_scopes(one, False)) == (-1, 0)


def test_compare_legend_counts_with_shown_scopes(tmp_path, capsys, monkeypatch):
    """icegan compare's legend gives the helper's count, under the last table drawn."""
    import icegan.significance as sig
    runs = _scoped_runs(tmp_path, 3, [f"casme2/s{i}" for i in range(5)] + ["smic/s0"])
    seen = []
    real = sig.shown_scopes
    monkeypatch.setattr(sig, "shown_scopes", lambda scopes: seen.append(real(scopes)) or seen[-1])
    assert main(["compare", *map(str, runs), "--per-dataset", "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert seen == [(2, 8)]
    assert out.count("The 8 paired Δ intervals (ΔUF1 and ΔUAR) in the tables above") == 1
    assert out.index("The 8 paired") > out.index("## CASME II (5 subjects)")


@pytest.mark.parametrize("labels, absent", [
    ([0, 1, 1, 0], ["surprise"]), ([2, -1, 2], ["negative", "positive"]), ([], ["negative", "positive", "surprise"]),
    ([0, 1, 2], []), (__import__("numpy").array([2, 0, 5]), ["positive"])])
def test_absent_classes(labels, absent):
    from icegan.labels import absent_classes, get_label_set
    assert absent_classes(get_label_set("megc2019").classes, labels) == absent


def test_fit_and_loso_name_the_absent_classes_with_one_helper(tmp_path, monkeypatch, capsys, caplog):
    """icegan fit's warning and icegan loso's had two copies of the absent-class list; both now ask
    labels.absent_classes, and on data without a surprise clip both name surprise alone."""
    import logging

    import icegan.labels as labels
    from test_predict54 import _table_without_surprise

    from icegan.commands.loso import LosoConfig, check_run, load_feature_set
    from icegan.config import load_config
    seen = []
    real = labels.absent_classes
    monkeypatch.setattr(labels, "absent_classes", lambda classes, held: seen.append(real(classes, held)) or seen[-1])
    table = _table_without_surprise(tmp_path)
    args = ["model.name=logreg", "threads=1", "data.source=table", f"data.table={table}"]
    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--no-progress", *args]) == 0
    assert "warning: no training clip is of class surprise (data.labels=megc2019)" in capsys.readouterr().err
    cfg = load_config(LosoConfig, None, args)
    with caplog.at_level(logging.WARNING, logger="icegan"):
        check_run(cfg, load_feature_set(cfg.data))
    assert any("no clip in the LOSO's scope is of class surprise (" in r.getMessage() for r in caplog.records)
    assert seen == [["surprise"], ["surprise"]]
