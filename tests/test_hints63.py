"""Printed hints that must work as pasted, audit 63: the ``icegan loso --config`` of ``icegan features``' "run a
recognizer" line from a folder other than the repository root (was ``configs/...``, relative to the root only), and
``icegan predict``'s confusion figure: an earlier run's PNG removed when the new table has unlabelled clips (it stayed
beside predictions it was not of), and its title saying when clips were in a model's training set."""
from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
from test_fitpredict62 import _fitted_logreg
from test_mutation_audit48_flow import TINY, _features_written

from icegan import paths
from icegan.cli import main


def _loso_config(line: str) -> str:
    """The ``--config`` value of the ``icegan loso`` command in a printed "run a recognizer" line."""
    words = shlex.split(line.split(": icegan ", 1)[1])
    return words[words.index("--config") + 1]


def test_features_suggested_loso_config_exists_from_another_folder(tmp_path, monkeypatch, capsys):
    """Run from a folder that is not the repository root, the printed --config names a file that is there (was
    configs/features_ststnet.yaml, "config file not found ... (relative to <that folder>)" when pasted); from the
    root it stays the short configs/features_ststnet.yaml the README writes."""
    out = tmp_path / "f"
    _features_written(monkeypatch, out, [("casme2", "casme2/s1", "a", "0"), ("casme2", "casme2/s2", "b", "1")])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["features", "--out", str(out), "--no-progress", *TINY]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("run a recognizer on the clips: "))
    config = _loso_config(line)
    assert Path(config).is_file(), line
    assert Path(config).resolve() == paths.shipped_config("features_ststnet").resolve()
    monkeypatch.chdir(paths.REPO_ROOT)
    assert paths.config_hint("features_ststnet", runnable=True) == "configs/features_ststnet.yaml"


def test_runnable_config_hints_reach_their_file_from_another_folder(tmp_path, monkeypatch):
    """Every printed command built on config_hint(runnable=True) (a flow training's missing-weights hint, a label
    set's config, the loso and suite help epilogs) names a file reachable from the current folder; the help text
    (not runnable) keeps the README's configs/NAME.yaml."""
    from icegan.labels import get_label_set
    monkeypatch.chdir(tmp_path)
    assert Path(paths.config_hint("flow_selfsup", runnable=True)).is_file()
    assert Path(get_label_set("casme2_5").config).is_file()
    assert f"--config {paths.REPO_ROOT / 'configs' / 'suite_cutout.yaml'}" in paths.with_config_hints(
        "icegan suite --config configs/suite_cutout.yaml --out runs/cutout", runnable=True)
    assert paths.config_hint("casme2") == "configs/casme2.yaml"


def _predict(model: Path, table: Path, out: Path, capsys) -> str:
    """``icegan predict`` of ``table`` with ``model`` into ``out``: its standard output (exit 0 asserted)."""
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--table", str(table), "--out", str(out)]) == 0
    return capsys.readouterr().out


def test_predict_removes_an_earlier_confusion_figure_when_clips_are_unlabelled(tmp_path, capsys):
    """Labelled, then the same --out with a label cell emptied: the first run's my_confusion.png was left beside
    predictions of another table; it is removed, and the output says so."""
    csv, model = _fitted_logreg(tmp_path)
    out = tmp_path / "pred" / "my.csv"
    png = out.with_name("my_confusion.png")
    assert f"confusion matrices in {png}" in _predict(model, csv, out, capsys)
    assert png.is_file()
    table = pd.read_csv(csv, keep_default_na=False, dtype=str)
    table.loc[0, "label"] = ""
    unlabelled = tmp_path / "unlabelled.csv"
    table.to_csv(unlabelled, index=False)
    printed = _predict(model, unlabelled, out, capsys)
    assert not png.exists()
    assert f"removed {png}, an earlier run's confusion figure: these predictions have unlabelled clips" in printed
    assert "confusion" not in _predict(model, unlabelled, out, capsys)      # nothing to remove: nothing said


def test_predict_confusion_title_says_training_clips_are_not_a_test(tmp_path, capsys, monkeypatch):
    """The model's own training clips scored: the warning went to the terminal only, the figure's title read as a
    test's; it now says "training clips: not a test"."""
    import icegan.protocol as protocol
    csv, model = _fitted_logreg(tmp_path)
    titles = []
    monkeypatch.setattr(protocol, "confusion_png", lambda pred, path, title, n_classes=3: titles.append(title))
    _predict(model, csv, tmp_path / "p.csv", capsys)
    assert titles == ["icegan predict: 1 model(s) on clips.csv (training clips: not a test)"]
