"""Flow training refuses a negative crop, zero intervals and init weights of another architecture before the run
folder is made (as self-supervised and DecFlow training do)."""
from __future__ import annotations

import pytest
from _flow_sizes import TINY_SRFLOWNET

import flownet.train as ftrain
from flownet.models.srflownet import SRFlowNetConfig
from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection


@pytest.mark.parametrize("key, value, least", [("crop", -1, 0), ("log_every", 0, 1), ("ckpt_every", 0, 1),
                                               ("eval_every", -1, 0)])
def test_flow_train_refuses_a_negative_crop_or_a_zero_interval_before_the_run_folder(tmp_path, shared_data, key,
                                                                                    value, least):
    t = FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=1, eval_every=1, threads=1, seed=1)
    setattr(t, key, value)
    cfg = FlowTrainConfig(name="r", out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                          data=FlowDataConfig(root=str(shared_data), size=32, n_train=4, n_test=1, frames_per_clip=1),
                          train=t)
    with pytest.raises(ValueError, match=rf"^train.{key} must be >= {least}, got {value}$"):
        ftrain.train(cfg, progress=False)
    assert not (tmp_path / "r").exists()


def test_flow_train_refuses_init_weights_of_another_architecture_before_the_run_folder(tmp_path, shared_data):
    """As self-supervised and DecFlow training do: train.init_weights whose tensors do not fit the model is refused
    naming the file before start_run makes the run folder and writes its config.yaml."""
    import re

    from flownet.models.srflownet import SRFlowNet
    from flownet.registry import save_srflownet
    other = save_srflownet(SRFlowNet(SRFlowNetConfig(iters=2, hidden=16)), tmp_path / "other.pt")
    t = FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=1, eval_every=1, threads=1, seed=1,
                         init_weights=str(other))
    cfg = FlowTrainConfig(name="r", out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                          data=FlowDataConfig(root=str(shared_data), size=32, n_train=4, n_test=1, frames_per_clip=1),
                          train=t)
    with pytest.raises(ValueError, match=re.escape(str(other))):
        ftrain.train(cfg, progress=False)
    assert not (tmp_path / "r").exists()


def _selfsup_config(tmp_path, shared_data, *overrides):
    from flownet.selfsup import SelfSupConfig
    from icegan.config import load_config
    from icegan.paths import REPO_ROOT
    return load_config(SelfSupConfig, str(REPO_ROOT / "configs" / "flow_selfsup.yaml"),
                       [f"out_dir={tmp_path}", "name=ss", f"data.root={shared_data}", *overrides])


def test_selfsup_missing_init_weights_names_its_key(tmp_path, shared_data):
    """Before: load_srflownet's message, which tells to 'pass --weights', an option of other commands."""
    import re

    from flownet.selfsup import train_selfsup
    missing = tmp_path / "none.pt"
    with pytest.raises(FileNotFoundError, match=rf"^train.init_weights={re.escape(str(missing))}: no such file"):
        train_selfsup(_selfsup_config(tmp_path, shared_data, f"train.init_weights={missing}"), progress=False)
    assert not (tmp_path / "ss").exists()


@pytest.mark.parametrize("key, value, least", [("log_every", 0, 1), ("ckpt_every", 0, 1), ("eval_every", -1, 0)])
def test_selfsup_refuses_a_zero_interval_before_the_run_folder(tmp_path, shared_data, key, value, least):
    from flownet.selfsup import train_selfsup
    with pytest.raises(ValueError, match=rf"^train.{key} must be >= {least}, got {value}$"):
        train_selfsup(_selfsup_config(tmp_path, shared_data, f"train.{key}={value}"), progress=False)
    assert not (tmp_path / "ss").exists()
