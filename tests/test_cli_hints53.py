"""Hints of the fifty-third session: `icegan gan train --out DIR` names the overrides that choose its run folder."""
from __future__ import annotations

import pytest

from icegan.cli import build_parser, parse_with_overrides


@pytest.mark.parametrize("argv, folder", [
    (["--out", "runs/g"], "runs/g"),
    (["--out=runs/g"], "runs/g"),
    (["train.epochs=2", "--out", "runs/g", "data.img_size=64"], "runs/g"),
    (["--out"], "DIR"),
    (["--out", "train.epochs=2"], "DIR"),            # an override after a bare --out is not taken for the folder
])
def test_gan_train_out_names_the_out_dir_override(argv, folder, capsys):
    """`--out DIR`, the run folder of icegan loso, gan eval and generate, was answered by a bare 'unrecognized
    arguments: --out' (and DIR taken for an override); icegan gan train trains into out_dir/name."""
    with pytest.raises(SystemExit) as exit_info:
        parse_with_overrides(build_parser(), ["gan", "train", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: icegan gan train ")
    assert "icegan gan train: error: icegan gan train takes no --out: it trains into out_dir/name" in err
    assert f"overrides out_dir={folder} name=NAME" in err and "unrecognized" not in err


def test_gan_train_help_does_not_offer_out(capsys):
    with pytest.raises(SystemExit):
        parse_with_overrides(build_parser(), ["gan", "train", "--help"])
    assert "--out" not in capsys.readouterr().out


def test_gan_eval_and_generate_keep_their_out():
    args = parse_with_overrides(build_parser(), ["gan", "eval", "--checkpoint", "last.pt", "--out", "ev"])
    assert args.out == "ev"
    args = parse_with_overrides(build_parser(), ["generate", "--checkpoint", "c.pt", "--onset", "f.png", "--class",
                                                 "all", "--out", "faces"])
    assert args.out == "faces"
