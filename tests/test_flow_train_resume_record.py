"""Resuming supervised flow training (icegan flow train) keeps the record of the CASME II subjects whose real frames
trained its init weights (real_pair_subjects, read by the main job's leak check), also from a checkpoint written
before last.pt kept that record (it then comes from the init weights, as at the start)."""
import torch
from _flow_sizes import TINY_SRFLOWNET

import flownet.train as ftrain
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import load_srflownet, save_srflownet
from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection


def _cfg(tmp_path, root, init, steps):
    return FlowTrainConfig(name="r", out_dir=str(tmp_path / "runs"), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                           data=FlowDataConfig(root=str(root), size=32, n_train=4, n_test=1, frames_per_clip=1),
                           train=FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=steps, eval_every=0,
                                                  threads=1, seed=1, log_every=100, ckpt_every=1,
                                                  init_weights=str(init)))


def test_resume_from_a_checkpoint_without_the_record_keeps_the_init_weights_subjects(tmp_path, shared_data):
    init = save_srflownet(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), tmp_path / "selfsup.pt",
                          meta={"real_pair_subjects": ["casme2/sub03"]})
    ftrain.train(_cfg(tmp_path, shared_data, init, 1), progress=False)
    ck_path = tmp_path / "runs" / "r" / "last.pt"
    ck = torch.load(ck_path, weights_only=False)
    assert ck["real_pair_subjects"] == ["casme2/sub03"]
    ck.pop("real_pair_subjects")                    # as written before the record existed
    torch.save(ck, ck_path)
    ftrain.train(_cfg(tmp_path, shared_data, init, 2), progress=False)
    assert torch.load(ck_path, weights_only=False)["step"] == 2
    assert load_srflownet(tmp_path / "runs" / "r" / "weights.pt").meta["real_pair_subjects"] == ["casme2/sub03"]
