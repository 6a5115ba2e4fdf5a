"""Settings that a training run cannot use are refused before its run folder is made, naming the key."""
from __future__ import annotations

import pytest
from _flow_sizes import TINY_SRFLOWNET


@pytest.mark.parametrize("key, value, least", [("crop", -1, 0), ("log_every", 0, 1), ("ckpt_every", 0, 1),
                                               ("eval_every", -1, 0)])
def test_train_decflow_refuses_a_negative_crop_or_a_zero_interval_before_the_run_folder(tmp_path, shared_data, key,
                                                                                       value, least):
    """A crop below 0 (random_crop's slices then make 0x0 pairs) and log / checkpoint intervals of 0 (a division by
    zero at the first step, after the run folder and its config.yaml) are refused before anything is written."""
    from flownet.models.decflow import DecFlowConfig, DecFlowTrainConfig, DecFlowTrainSection, train_decflow
    from flownet.train import FlowDataConfig
    train = DecFlowTrainSection(init_weights=None, batch_size=2, crop=0, steps=1, iters=1)
    setattr(train, key, value)
    cfg = DecFlowTrainConfig(name="d", out_dir=str(tmp_path / "runs"),
                             data=FlowDataConfig(root=str(shared_data), size=32, n_train=2, n_test=1),
                             model=DecFlowConfig(**TINY_SRFLOWNET), train=train)
    with pytest.raises(ValueError, match=rf"^train.{key} must be >= {least}, got {value}$"):
        train_decflow(cfg, progress=False)
    assert not (tmp_path / "runs").exists()


def test_native_bf16_asks_about_the_gpu_it_is_given_not_the_current_one(monkeypatch):
    """On a machine with an Ampere GPU as cuda:0 (the current one) and a pre-Ampere GPU as cuda:1, cuda:1 has no
    bf16 hardware (flow precision=auto: fp32; GAN amp: float16 with a scaler), and the other way round."""
    import contextlib

    import torch

    from flownet.registry import native_bf16
    major = {}
    current = [0]

    @contextlib.contextmanager
    def on_gpu(index):
        before, current[0] = current[0], index
        try:
            yield
        finally:
            current[0] = before
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current[0])
    monkeypatch.setattr(torch.cuda, "device", on_gpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",       # as torch's: about the current GPU
                        lambda including_emulation=True: major[current[0]] >= 8 or including_emulation)
    major.update({0: 8, 1: 7})
    assert (native_bf16("cuda:0"), native_bf16("cuda:1"), native_bf16("cuda")) == (True, False, True)
    major.update({0: 7, 1: 9})
    assert (native_bf16("cuda:0"), native_bf16("cuda:1"), native_bf16("cuda")) == (False, True, False)
    assert current == [0]


def test_train_decflow_names_its_init_weights_key_when_the_file_is_missing_or_of_another_model(tmp_path, shared_data):
    """A missing train.init_weights file, or SRFlowNet weights of another architecture, are refused naming the key
    and the file before the run folder is made (before: 'pass --weights to an existing file', an option DecFlow
    training does not have, and a config mismatch that named neither)."""
    import re

    from flownet.models.decflow import DecFlowConfig, DecFlowTrainConfig, DecFlowTrainSection, train_decflow
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.registry import save_srflownet
    from flownet.train import FlowDataConfig
    other = save_srflownet(SRFlowNet(SRFlowNetConfig(iters=2, hidden=16)), tmp_path / "other.pt")

    def cfg(init):
        return DecFlowTrainConfig(name="d", out_dir=str(tmp_path / "runs"),
                                  data=FlowDataConfig(root=str(shared_data), size=32, n_train=2, n_test=1),
                                  model=DecFlowConfig(**TINY_SRFLOWNET),
                                  train=DecFlowTrainSection(init_weights=init, batch_size=2, crop=0, steps=1, iters=1))
    missing = tmp_path / "none.pt"
    with pytest.raises(FileNotFoundError, match=rf"^train.init_weights={re.escape(str(missing))}: no such file; give "
                                                r"SRFlowNet weights \(a path, or 'shipped'\), or null to train DecFlow "
                                                r"from scratch$"):
        train_decflow(cfg(str(missing)), progress=False)
    with pytest.raises(ValueError, match=rf"^train.init_weights={re.escape(str(other))}: SRFlowNet weights: another "
                                         r"architecture than the run's model section: .*\bhidden=16 "
                                         r"\(model\.hidden: \d+\)"):
        train_decflow(cfg(str(other)), progress=False)
    assert not (tmp_path / "runs").exists()
