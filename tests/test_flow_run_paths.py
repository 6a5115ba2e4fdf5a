"""``icegan flow run`` / ``flow eval``: a path of the wrong kind (``--weights`` a folder, ``--root`` a file) is
named as such."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from icegan.cli import main


@pytest.mark.parametrize("model, what, fmt", [("srflownet", "SRFlowNet weights", "srflownet-v1"),
                                              ("raft_small", "flow weights", "flownet-backbone-v1"),
                                              ("decflow", "DecFlow weights", "decflow-v1")])
def test_flow_run_names_weights_that_are_a_run_folder(tmp_path, capsys, model, what, fmt):
    """--weights given a training run's folder (which holds weights.pt) was answered 'weights not found: DIR'; now the
    folder is named as a folder, with the weights files in it that load (not last.pt, a training checkpoint: audit
    61). A missing file keeps its 'not found'."""
    import torch
    img = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(a), img)
    cv2.imwrite(str(b), img)
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    torch.save({"format": fmt, "config": {}, "state_dict": {}}, run / "weights.pt")     # only its format is read
    torch.save({"model": {}, "optimizer": {}, "step": 1}, run / "last.pt")
    (run / "config.yaml").write_text("name: mine\n")
    (tmp_path / "empty").mkdir()
    flags = ["--decompose", "--decompose-method", "learned"] if model == "decflow" else ["--model", model]
    for weights, said in ((run, f"{run} is a folder, not a file: give a weights file in it (weights.pt)"),
                          (tmp_path / "empty", f"{tmp_path / 'empty'} is a folder, not a file: it holds no .pt file"),
                          (tmp_path / "nope.pt", f"not found: {tmp_path / 'nope.pt'}")):
        assert main(["flow", "run", str(a), str(b), "--out", str(tmp_path / "o.png"), "--weights", str(weights),
                     *flags]) == 2
        assert f"icegan flow run: error: {what} {said}" in capsys.readouterr().err


@pytest.mark.parametrize("data, name", [("middlebury", "Middlebury"), ("kitti", "KITTI")])
def test_flow_eval_names_a_root_that_is_an_archive(tmp_path, capsys, data, name):
    """--root given the downloaded archive was '<name> folder not found: FILE'; now the file is named as a file, to
    unpack."""
    archive = tmp_path / "download.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))
    first = ["--n-pairs", "1"] if data == "kitti" else []      # middlebury refuses --n-pairs (it scores every pair)
    assert main(["flow", "eval", "--model", "farneback", "--data", data, "--root", str(archive), *first]) == 2
    assert capsys.readouterr().err.startswith(f"icegan flow eval: error: {name} --root {archive} is a file, not a "
                                              f"folder: unpack it")
