"""icegan flow's command line (audit 58): --decompose-method without --decompose was accepted and ignored; flow train
and flow train-decflow named no other command for another command's config (as train.py, loso, suite, gan train and
prepare do); icegan generate's help named the main job's fold folder folds/<subject> (it is
folds/<dataset>_<subject>)."""
from __future__ import annotations

import numpy as np
import pytest

from icegan.cli import build_parser, main


def _pair(tmp_path):
    import cv2
    rng = np.random.default_rng(0)
    a = (rng.random((32, 32)) * 255).astype(np.uint8)
    b = np.roll(a, 1, axis=1)
    cv2.imwrite(str(tmp_path / "a.png"), a)
    cv2.imwrite(str(tmp_path / "b.png"), b)
    return str(tmp_path / "a.png"), str(tmp_path / "b.png")


def _help(*command: str) -> str:
    parser = build_parser()
    for name in command:
        parser = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[name]
    return " ".join(parser.format_help().split())


# ---------------------------------------------------------------------------------------------------------------------
# 1. --decompose-method without --decompose


@pytest.mark.parametrize("method", ["learned", "ransac"])
def test_flow_run_refuses_decompose_method_without_decompose(tmp_path, capsys, method):
    """`--model tvl1 --decompose-method learned` wrote the plain TV-L1 flow and exited 0: the option was dropped."""
    a, b = _pair(tmp_path)
    out = tmp_path / "o.png"
    rc = main(["flow", "run", a, b, "--out", str(out), "--model", "tvl1", "--decompose-method", method])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith(f"icegan flow run: error: --decompose-method {method} applies to --decompose only"), err
    assert "add --decompose" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_flow_run_decompose_without_a_method_is_ransac(tmp_path, capsys):
    """--decompose alone still decomposes with the RANSAC fit of --model's flow (the default)."""
    a, b = _pair(tmp_path)
    out = tmp_path / "o.png"
    assert main(["flow", "run", a, b, "--out", str(out), "--model", "tvl1", "--decompose"]) == 0
    assert (tmp_path / "o_head.png").is_file() and (tmp_path / "o_expression.png").is_file()
    assert main(["flow", "run", a, b, "--out", str(tmp_path / "p.png"), "--model", "tvl1"]) == 0
    assert not (tmp_path / "p_head.png").exists()


def test_flow_run_help_says_decompose_method_needs_decompose_and_names_the_decflow_weights():
    from flownet.models.decflow import default_decflow_path
    text = _help("flow", "run")
    assert "--decompose-method {ransac,learned} with --decompose only (refused without it)" in text
    assert "ransac (default)" in text
    assert "default flownet/weights/decflow_facial.pt" in text
    # what tests/test_help_defaults52.py checked while the option's parser default was "ransac"
    assert default_decflow_path().as_posix().endswith("flownet/weights/decflow_facial.pt")
    assert default_decflow_path().is_file()


# ---------------------------------------------------------------------------------------------------------------------
# 2. another command's config given to flow train / train-decflow


@pytest.mark.parametrize("command, config, kind, run", [
    (["flow", "train", "--print-config"], "configs/flow_decflow.yaml", "icegan flow train-decflow",
     "icegan flow train-decflow --config configs/flow_decflow.yaml"),
    (["flow", "train", "--print-config"], "configs/casme2.yaml", "train.py",
     "icegan train --config configs/casme2.yaml"),
    (["flow", "train", "--mode", "selfsup", "--print-config"], "configs/flow_decflow.yaml", "icegan flow train-decflow",
     "icegan flow train-decflow --config configs/flow_decflow.yaml"),
    (["flow", "train-decflow"], "configs/flow_srflownet_fdr.yaml", "icegan flow train",
     "icegan flow train --config configs/flow_srflownet_fdr.yaml"),
    (["flow", "train-decflow"], "configs/gan_casme2.yaml", "icegan gan train",
     "icegan gan train --config configs/gan_casme2.yaml"),
    (["flow", "train-decflow"], "configs/flow_selfsup.yaml", "icegan flow train --mode selfsup",
     "icegan flow train --mode selfsup --config configs/flow_selfsup.yaml"),
])
def test_flow_train_and_train_decflow_name_the_command_of_another_config(tmp_path, capsys, command, config, kind,
                                                                          run):
    rc = main([*command, "--config", config, f"out_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith(f"icegan {' '.join(command[:2])}: error: unknown config key"), err
    assert err.rstrip().endswith(f"; {config} is a config for `{kind}`: run {run}"), err
    assert not any(tmp_path.iterdir())


def test_flow_train_keeps_its_own_mode_hint_and_adds_none_to_an_override_error(capsys):
    assert main(["flow", "train", "--config", "configs/flow_selfsup.yaml", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "configs/flow_selfsup.yaml is a config for --mode selfsup: run icegan flow train --mode selfsup" in err
    # the file is flow train's own: the error is the override's, and no other command is named
    assert main(["flow", "train", "--config", "configs/flow_srflownet_fdr.yaml", "--print-config", "train.nope=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.nope'" in err and "is a config for" not in err
    assert main(["flow", "train-decflow", "--config", "configs/flow_decflow.yaml", "data.hflip=true"]) == 2
    err = capsys.readouterr().err
    assert "data.hflip=true: icegan flow train-decflow does not read" in err and "is a config for" not in err


# ---------------------------------------------------------------------------------------------------------------------
# 3. the main job's fold folder in icegan generate's help


def test_gan_generate_help_names_the_fold_folder_as_the_main_job_writes_it():
    text = _help("generate")
    assert "folds/<dataset>_<subject>/gan/checkpoints/last.pt" in text
    assert "folds/<subject>/" not in text
