"""A README walkthrough's finds (forty-eighth session): an option that a subcommand does not take is reported by that
subcommand's parser (its name and usage line), not by the top-level ``icegan`` parser."""
from __future__ import annotations

import pytest

from icegan.cli import build_parser, parse_with_overrides


@pytest.mark.parametrize("argv, command", [
    (["gan", "eval", "--checkpoint", "last.pt", "--n-pairs", "4"], "icegan gan eval"),
    (["data", "composite", "--annotations-dir", "data/annotations", "--root", "data"], "icegan data composite"),
    (["loso", "--config", "c.yaml", "--outt", "runs/x"], "icegan loso"),
])
def test_unknown_option_is_reported_by_its_subcommand(argv, command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_with_overrides(build_parser(), argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    unknown = argv[argv.index(next(a for a in argv if a in ("--out", "--n-pairs", "--root", "--outt")))]
    assert f"{command}: error: unrecognized arguments: {unknown}" in err
    assert err.startswith(f"usage: {command} ")        # the options this command does take
    assert "COMMAND ..." not in err                      # not the top-level usage


def test_flow_train_out_is_refused_by_its_subcommand(capsys):
    """`--out` is the run folder of `icegan loso` and `train.py`; `icegan flow train` names its run with out_dir= and
    name=, which its refusal (exit 2, its own usage line) names."""
    argv = ["flow", "train", "--config", "configs/flow_srflownet_fdr.yaml", "train.steps=3", "--out", "runs/ft"]
    with pytest.raises(SystemExit) as exit_info:
        parse_with_overrides(build_parser(), argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "icegan flow train: error: icegan flow train takes no --out" in err and "out_dir=runs/ft name=NAME" in err
    assert err.startswith("usage: icegan flow train ")
    assert "COMMAND ..." not in err


def test_unknown_option_of_the_top_level_stays_with_it(capsys):
    with pytest.raises(SystemExit):
        parse_with_overrides(build_parser(), ["--bogus"])
    err = capsys.readouterr().err
    assert "icegan: error: unrecognized arguments: --bogus" in err


def test_overrides_after_options_are_still_overrides():
    argv = ["flow", "train", "--config", "c.yaml", "--no-progress", "train.steps=3"]
    args = parse_with_overrides(build_parser(), argv)
    assert args.overrides == ["train.steps=3"]


def test_fitted_models_of_the_readme_are_git_ignored():
    """README.md's `icegan fit --out models/ststnet.pt` writes, at the checkout's root, a model trained on the licensed
    clips: git must not offer it for a commit, while the package's own icegan/models/ stays tracked."""
    import subprocess

    from _readme import README, ROOT
    assert "--out models/ststnet.pt" in README

    def ignored(path: str) -> bool:
        done = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
        assert done.returncode in (0, 1), f"git check-ignore failed on {path}"
        return done.returncode == 0
    assert ignored("models/ststnet.pt") and ignored("models/forest.pt")
    assert not ignored("icegan/models/ststnet.py")
