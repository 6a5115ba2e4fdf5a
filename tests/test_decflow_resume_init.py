"""Resuming DecFlow training: last.pt records which CASME II subjects the init weights' real frames saw
(real_pair_subjects), so a resume needs no init weights file; a checkpoint written before that record reads the
init file as before."""
import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET

from flownet.models.decflow import (DecFlow, DecFlowConfig, DecFlowTrainConfig, DecFlowTrainSection, load_decflow,
                                    train_decflow)
from flownet.registry import save_srflownet
from flownet.train import FlowDataConfig


def _cfg(tmp_path, root, init, steps):
    return DecFlowTrainConfig(name="d", out_dir=str(tmp_path / "runs"),
                              data=FlowDataConfig(root=str(root), size=64, n_train=2, n_test=1),
                              model=DecFlowConfig(**TINY_SRFLOWNET),
                              train=DecFlowTrainSection(init_weights=str(init), batch_size=2, crop=0, steps=steps,
                                                        iters=1, log_every=100, ckpt_every=100))


def _init(tmp_path):
    return save_srflownet(DecFlow(DecFlowConfig(**TINY_SRFLOWNET)).base, tmp_path / "selfsup.pt",
                          meta={"real_pair_subjects": ["casme2/sub03"]})


def test_resume_without_the_init_weights_file_keeps_its_real_pair_subjects(tmp_path, shared_data, capsys):
    init = _init(tmp_path)
    train_decflow(_cfg(tmp_path, shared_data, init, 1), progress=False)
    init.unlink()
    capsys.readouterr()
    train_decflow(_cfg(tmp_path, shared_data, init, 2), progress=False)
    assert "last.pt at step 1" in capsys.readouterr().out
    assert load_decflow(tmp_path / "runs" / "d" / "weights.pt").meta["real_pair_subjects"] == ["casme2/sub03"]
    ck = torch.load(tmp_path / "runs" / "d" / "last.pt", weights_only=True)
    assert ck["step"] == 2 and ck["real_pair_subjects"] == ["casme2/sub03"]


def test_a_checkpoint_without_the_record_resumes_reading_the_init_file(tmp_path, shared_data, capsys):
    init = _init(tmp_path)
    train_decflow(_cfg(tmp_path, shared_data, init, 1), progress=False)
    ck_path = tmp_path / "runs" / "d" / "last.pt"
    ck = torch.load(ck_path, weights_only=True)
    ck.pop("real_pair_subjects", None)              # as written before the record existed
    torch.save(ck, ck_path)
    moved = init.rename(tmp_path / "elsewhere.pt")
    with pytest.raises(FileNotFoundError, match=f"train.init_weights={init}: no such file"):
        train_decflow(_cfg(tmp_path, shared_data, init, 2), progress=False)
    moved.rename(init)
    capsys.readouterr()
    train_decflow(_cfg(tmp_path, shared_data, init, 2), progress=False)
    assert "last.pt at step 1" in capsys.readouterr().out
    assert load_decflow(tmp_path / "runs" / "d" / "weights.pt").meta["real_pair_subjects"] == ["casme2/sub03"]
