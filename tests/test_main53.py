"""The fifty-third session's own fixes: `icegan flow train-decflow --out DIR` names the overrides that choose its run
folder, as gan train and flow train do (one helper, icegan.commands.add_out_hint, for the three)."""
from __future__ import annotations

import pytest

from icegan.cli import build_parser, parse_with_overrides


@pytest.mark.parametrize("argv, folder, config", [
    (["--config", "configs/flow_decflow.yaml", "--out", "runs/dec"], "runs/dec", "configs/flow_decflow.yaml"),
    (["--out=runs/dec", "--config", "configs/flow_decflow.yaml", "train.steps=2"], "runs/dec", "CONFIG"),  # not read yet
    (["--config", "configs/flow_decflow.yaml", "--out"], "DIR", "configs/flow_decflow.yaml"),
])
def test_train_decflow_out_names_the_out_dir_override(argv, folder, config, capsys):
    """It answered a bare 'unrecognized arguments: --out' (DIR silently taken for an override)."""
    with pytest.raises(SystemExit) as exit_info:
        parse_with_overrides(build_parser(), ["flow", "train-decflow", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: icegan flow train-decflow ")
    assert "takes no --out: it trains into out_dir/name" in err and "configs/flow_decflow.yaml: runs/decflow" in err
    assert f"overrides out_dir={folder} name=NAME" in err and "unrecognized" not in err
    assert f"e.g. icegan flow train-decflow --config {config} out_dir={folder}" in err


def test_train_decflow_help_does_not_offer_out_and_overrides_still_parse(capsys):
    with pytest.raises(SystemExit):
        parse_with_overrides(build_parser(), ["flow", "train-decflow", "--help"])
    assert "--out" not in capsys.readouterr().out
    args = parse_with_overrides(build_parser(), ["flow", "train-decflow", "--config", "configs/flow_decflow.yaml",
                                                 "train.steps=2"])
    assert args.out is None and args.overrides == ["train.steps=2"]
