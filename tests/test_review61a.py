"""Review of round 61's flow-weights changes: supervised ``train.init_weights`` of a backbone other than SRFlowNet is
compared only by its tensors (a LiteFlowNet2 saved with other loss weights or init gain loads again; a real shape
difference is still refused); a training checkpoint given for a custom network's weights says to save its model
part (flownet's own run folders keep their weights.pt advice); DecFlow's init from SRFlowNet names a differing key as
the other init-weights checks do; one count of training pairs per class for ``gan train``'s split.json and the GAN
checkpoint."""
from __future__ import annotations

import re

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET

from flownet.models.liteflownet2 import LiteFlowNet2, LiteFlowNet2Config
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import save_srflownet, save_weights
from flownet.train import load_init_weights

# ---- 1: a backbone's init weights are compared by their tensors, not by loss or initialisation settings -------------


def test_liteflownet2_init_weights_with_other_loss_weights_and_init_gain_load(tmp_path):
    """level_loss_weights and netc_init_gain set no weight: a file saved with other values loads (was refused as
    'another architecture than the run's liteflownet2 section'), every tensor copied."""
    torch.manual_seed(0)
    src = LiteFlowNet2(LiteFlowNet2Config(netc_init_gain=1.0, level_loss_weights=(0.5, 0.08, 0.02, 0.01, 0.005)))
    path = save_weights(src, tmp_path / "w.pt")
    dst = LiteFlowNet2(LiteFlowNet2Config())
    assert load_init_weights(dst, path, "liteflownet2") == dict(torch.load(path, weights_only=True)["meta"])
    assert all(torch.equal(a, b) for a, b in zip(dst.state_dict().values(), src.state_dict().values()))


def test_liteflownet2_init_weights_of_other_shapes_are_still_refused(tmp_path):
    """Other NetC widths change the tensors' shapes: still refused naming the differing key with both values (guards
    that the fix keeps it; main refused it so too)."""
    path = save_weights(LiteFlowNet2(LiteFlowNet2Config(netc_channels=(16, 16, 32, 48, 64, 96),
                                                        netc_init_gain=1.0)), tmp_path / "w.pt")
    with pytest.raises(ValueError, match=rf"^train\.init_weights: {re.escape(str(path))}: another architecture than "
                                         r"the run's liteflownet2 section: netc_channels=\[16, 16, 32, 48, 64, 96\] "
                                         r"\(liteflownet2\.netc_channels: \[32, 32, 64, 96, 128, 192\]\)$"):
        load_init_weights(LiteFlowNet2(LiteFlowNet2Config()), path, "liteflownet2")


# ---- 2: a training checkpoint given for a custom network's weights ---------------------------------------------------

_NET_PY = """import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, a, b):
        return self.conv(torch.cat([a[:, :1], b[:, :1]], 1))


def make():
    return Net()
"""


def test_custom_network_training_checkpoint_is_told_to_save_its_model_part(tmp_path):
    """A user's own checkpoint ({model, optimizer, epoch, step}) given as a custom network's weights: the message
    says how to save its model part as a weights file (was: 'use <dir>/weights.pt (the weights its run writes when it
    ends)', a file nothing writes); the saved model part then loads."""
    from flownet.registry import CustomFlowEstimator
    (tmp_path / "net.py").write_text(_NET_PY)
    spec = f"{tmp_path / 'net.py'}:make"
    net = CustomFlowEstimator(spec).model
    ckpt = tmp_path / "ckpt_ep3.pt"
    torch.save({"model": net.state_dict(), "optimizer": {}, "epoch": 3, "step": 100}, ckpt)
    with pytest.raises(ValueError) as err:
        CustomFlowEstimator(spec, weights=ckpt)
    msg = str(err.value)
    assert msg == (f"flow.weights (--weights) of flow.module={spec!r}: {ckpt} is a training checkpoint (model, "
                   f"optimizer, epoch, step), not a weights file: save its model part as one (in Python: "
                   f"torch.save(torch.load({str(ckpt)!r})['model'], 'weights.pt')) and give that file")
    assert "the weights its run writes" not in msg
    torch.save(torch.load(ckpt)["model"], tmp_path / "weights.pt")        # the advice, followed
    est = CustomFlowEstimator(spec, weights=tmp_path / "weights.pt")
    assert torch.equal(est.model.conv.weight, net.conv.weight)


def test_flownet_runs_checkpoint_as_init_weights_still_names_its_weights_pt(tmp_path):
    """A flow training's last.pt given as train.init_weights: its run's weights.pt is named, as before."""
    model = SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET))
    torch.save({"model": model.state_dict(), "optimizer": {}, "step": 3}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match=rf"^train\.init_weights: {re.escape(str(tmp_path / 'last.pt'))} is a training "
                                         rf"checkpoint \(model, optimizer, step\), not a weights file: use "
                                         rf"{re.escape(str(tmp_path / 'weights.pt'))} \(the weights its run writes "
                                         r"when it ends\) instead$"):
        load_init_weights(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), tmp_path / "last.pt")


def test_srflownet_init_weights_of_another_architecture_still_name_the_key(tmp_path):
    path = save_srflownet(SRFlowNet(SRFlowNetConfig(**dict(TINY_SRFLOWNET, hidden=16))), tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"another architecture than the run's model section: hidden=16 "
                                         rf"\(model\.hidden: {TINY_SRFLOWNET['hidden']}\)$"):
        load_init_weights(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), path)


# ---- 5: one check of SRFlowNet architectures, one count of pairs per class -------------------------------------------

def test_decflow_init_from_another_srflownet_names_the_key_as_the_init_weights_checks_do():
    """DecFlow.init_from_srflownet uses check_architecture: each differing key with both values, iters aside."""
    from flownet.models.decflow import DecFlow, DecFlowConfig
    other = SRFlowNet(SRFlowNetConfig(**dict(TINY_SRFLOWNET, hidden=16, iters=5)))
    with pytest.raises(ValueError) as err:
        DecFlow(DecFlowConfig(**TINY_SRFLOWNET)).init_from_srflownet(other)
    assert str(err.value) == (f"SRFlowNet weights: another architecture than the run's model section: hidden=16 "
                              f"(model.hidden: {TINY_SRFLOWNET['hidden']})")


def test_class_pair_counts_counts_every_class_id():
    """The training pairs of each class id 0..k-1, a class without any as 0 (what the GAN checkpoint records and
    gan train's split.json shows by name)."""
    from icegan.gan.trainer import class_pair_counts
    assert class_pair_counts(torch.tensor([1, 0, 1, 1]), 3) == [1, 3, 0]
    assert class_pair_counts(torch.tensor([], dtype=torch.long), 2) == [0, 0]
