"""Hints of the fifty-third session (b): `icegan flow train --out DIR` names the overrides that choose its run folder;
an `icegan compare` entry of two recipes that also cover different clips names the keys the recipes differ in."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from icegan.cli import build_parser, main, parse_with_overrides
from icegan.significance import load_run_set

CONFIG = ["--config", "configs/flow_srflownet_fdr.yaml"]


@pytest.mark.parametrize("argv, folder", [
    ([*CONFIG, "--out", "runs/ft"], "runs/ft"),
    ([*CONFIG, "--out=runs/ft"], "runs/ft"),
    ([*CONFIG, "train.steps=3", "--out", "runs/ft", "train.device=cpu"], "runs/ft"),
    (["--out", "runs/ft", *CONFIG], "runs/ft"),
    ([*CONFIG, "--mode", "selfsup", "--out", "runs/ft"], "runs/ft"),
    ([*CONFIG, "--out"], "DIR"),
    ([*CONFIG, "--out", "train.steps=3"], "DIR"),          # an override after a bare --out is not taken for the folder
])
def test_flow_train_out_names_the_out_dir_override(argv, folder, capsys):
    """`--out DIR`, the run folder of icegan loso and flow run, was answered by a bare 'unrecognized arguments: --out'
    (DIR taken for an override); icegan flow train trains into out_dir/name of its --config."""
    with pytest.raises(SystemExit) as exit_info:
        parse_with_overrides(build_parser(), ["flow", "train", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: icegan flow train ")
    assert "icegan flow train: error: icegan flow train takes no --out: it trains into out_dir/name" in err
    assert f"overrides out_dir={folder} name=NAME" in err and "unrecognized" not in err
    assert err.count(": error: ") == 1


def test_flow_train_help_does_not_offer_out(capsys):
    with pytest.raises(SystemExit):
        parse_with_overrides(build_parser(), ["flow", "train", "--help"])
    assert "--out" not in capsys.readouterr().out


def test_flow_train_overrides_and_flow_run_out_are_unchanged():
    args = parse_with_overrides(build_parser(), ["flow", "train", *CONFIG, "out_dir=runs/x", "name=ft"])
    assert args.overrides == ["out_dir=runs/x", "name=ft"] and args.out is None
    args = parse_with_overrides(build_parser(), ["flow", "run", "a.png", "b.png", "--out", "flow.png"])
    assert args.out == "flow.png"


def _run(d, n_subjects, lr, dataset="casme2", oracle=False, seed=0):
    """A finished run folder of ``n_subjects`` subjects of ``dataset`` (three clips each), recipe ``model.lr=lr``;
    every clip read right but, for a seed > 0, the first (two seeds' predictions differ, as a seeded recipe's do)."""
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"name": d.name, "seed": seed, "oracle_epoch": oracle,
                                                   "data": {"dataset": dataset},
                                                   "model": {"name": "ststnet", "lr": lr}}))
    rows = [(f"{dataset}/s{s:02d}", f"c{j}", y, (y + seed * (s == j == 0)) % 3) for s in range(n_subjects)
            for j, y in enumerate([0, 1, 2])]
    pred = pd.DataFrame(rows, columns=["subject", "clip", "y_true", "y_pred"])
    pred.insert(0, "fold", pred["subject"].map({s: i for i, s in enumerate(sorted(pred["subject"].unique()))}))
    pred.insert(1, "dataset", dataset)
    pred.to_csv(d / "predictions.csv", index=False)
    (d / "run.json").write_text(json.dumps({"protocol": "CDE", "oracle_epoch": oracle,
                                            "folds": sorted(pred["subject"].unique())}))
    return d


@pytest.mark.parametrize("other, keys", [
    (dict(n_subjects=5, lr=0.01), "model.lr (0.001 vs 0.01)"),
    (dict(n_subjects=4, lr=0.001, dataset="samm"), "data.dataset ('casme2' vs 'samm')"),
])
def test_an_entry_of_two_recipes_on_other_clips_names_the_keys(tmp_path, other, keys, capsys):
    """Runs of different recipes in one entry that also cover different clips were refused with 'differ in clips or
    labels' only, the keys that make them different recipes unnamed (runs of the same clips named them)."""
    a, b = _run(tmp_path / "a", 4, 0.001), _run(tmp_path / "b", **other)
    with pytest.raises(ValueError, match=rf"^entry 'x': .*a and .*b are different recipes, not seeds of one \(they "
                                         rf"differ in {keys.replace('(', '.').replace(')', '.')}\); .*LABEL=GLOB"):
        load_run_set("x", [a, b])
    assert main(["compare", f"x={a},{b}", str(a), "--resamples", "200"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan compare: error: entry 'x'") and keys in err and "differ in clips" not in err


def test_an_entry_of_one_recipe_on_other_clips_is_still_refused_for_its_clips(tmp_path):
    a, b = _run(tmp_path / "a", 4, 0.001), _run(tmp_path / "b", 5, 0.001, seed=1)
    with pytest.raises(ValueError, match="^entry 'x': .*b and .*a differ in clips or labels; runs of one entry must "
                                         "cover the same clips$"):
        load_run_set("x", [a, b])
    with pytest.raises(ValueError, match="^entry 'x': mixes oracle-epoch and honest runs$"):
        load_run_set("x", [a, _run(tmp_path / "o", 4, 0.001, oracle=True)])
    assert load_run_set("x", [a, _run(tmp_path / "s1", 4, 0.001, seed=1)]).confusions.shape[0] == 2
