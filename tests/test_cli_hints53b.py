"""Hints of the fifty-third session (b): `icegan flow train --out DIR` names the overrides that choose its run folder."""
from __future__ import annotations

import pytest

from icegan.cli import build_parser, parse_with_overrides

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
