"""Input checks and fallback branches of the flow networks (flownet.models: backbones, DecFlow, LiteFlowNet2,
SRFlowNet) that no other test reached: each bad input is refused with a message naming the value and what is
expected, before any computation; each fallback gives the value it exists for."""
from __future__ import annotations

import json
import re

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET

from flownet.models.decflow import (DecFlow, DecFlowConfig, DecFlowEstimator, DecFlowTrainConfig, DecFlowTrainSection,
                                    affine_project, decflow_loss, train_decflow)
from flownet.models.liteflownet2 import (LiteFlowNet2Config, LiteFlowNet2Output, cost_volume, f_lcon,
                                         multiscale_loss, sparse_cost_volume)
from flownet.models.srflownet import (InstanceNorm2dFast, SKMotionEncoder, SKUpdateBlock, SRFlowNet, SRFlowNetConfig,
                                      SuperKernelBlock)
from flownet.train import FlowDataConfig


def _pair(h=16, w=16, h2=None, w2=None):
    return torch.rand(1, 1, h, w), torch.rand(1, 1, h2 or h, w2 or w)


# ------------------------------------------------------------------------------------------------ backbones

def test_raft_and_ptlflow_backbones_refuse_a_pair_of_two_shapes():
    """Both adapters name the two shapes (before padding, which would hide the mismatch or fail inside torch)."""
    from flownet.models.backbones import PtlflowBackbone, RAFTBackbone, RAFTConfig

    def no_call(_):
        raise AssertionError("the wrapped model must not be called")

    fake = torch.nn.Module()
    fake.forward = no_call
    img1, img2 = _pair(16, 16, 16, 24)
    for model in (RAFTBackbone(RAFTConfig(variant="raft_small", iters=1)), PtlflowBackbone(fake)):
        with pytest.raises(ValueError, match=r"^image pair shapes differ: \(1, 1, 16, 16\) vs \(1, 1, 16, 24\)$"):
            model(img1, img2)


# ------------------------------------------------------------------------------------------------ DecFlow

def test_affine_project_refuses_a_grid_thinner_than_2_pixels():
    with pytest.raises(ValueError, match=r"^an affine fit needs a grid of at least 2x2 pixels, got 1x5$"):
        affine_project(torch.zeros(1, 2, 1, 5))
    fit, m = affine_project(torch.ones(1, 2, 2, 2))           # the smallest grid it takes: a constant fits exactly
    torch.testing.assert_close(fit, torch.ones(1, 2, 2, 2))
    assert m.shape == (1, 2, 3)


def test_decflow_refuses_an_unknown_head_model_listing_the_known_ones():
    with pytest.raises(ValueError, match=re.escape("head_model must be one of ['affine', 'dense'], got 'rigid'")):
        DecFlow(DecFlowConfig(**TINY_SRFLOWNET, head_model="rigid"))


def test_decflow_refuses_a_pair_of_two_shapes():
    img1, img2 = _pair(16, 16, 17, 16)
    with pytest.raises(ValueError, match=r"^image pair shapes differ: \(1, 1, 16, 16\) vs \(1, 1, 17, 16\)$"):
        DecFlow(DecFlowConfig(**TINY_SRFLOWNET))(img1, img2)


def test_decflow_loss_refuses_head_and_expression_targets_of_two_shapes():
    out = {k: [torch.zeros(1, 2, 4, 4)] for k in ("head", "expression", "total")}
    with pytest.raises(ValueError, match=r"^gt_head \(1, 2, 4, 4\) and gt_expr \(1, 2, 4, 5\) differ in shape$"):
        decflow_loss(out, torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))


def test_decflow_estimator_estimate_and_call_give_the_final_total_flow():
    """``estimate`` (and the estimator called as a function) is the final update's total flow, in eval mode and
    without gradients, whatever mode the model was in (it is put back)."""
    torch.manual_seed(0)
    model = DecFlow(DecFlowConfig(**TINY_SRFLOWNET))
    model.train()
    est = DecFlowEstimator(model)
    img1, img2 = _pair(24, 32)
    model.eval()
    with torch.no_grad():
        want = model(img1, img2)["total"][-1]
    model.train()
    for got in (est.estimate(img1, img2), est(img1, img2)):
        assert got.shape == (1, 2, 24, 32) and not got.requires_grad
        torch.testing.assert_close(got, want)
    assert model.training


def _decflow_cfg(tmp_path, root, name="d", **train_kw):
    kw = dict(init_weights=None, batch_size=2, crop=0, steps=2, iters=1, log_every=100, ckpt_every=100)
    kw.update(train_kw)
    return DecFlowTrainConfig(name=name, out_dir=str(tmp_path),
                              data=FlowDataConfig(root=str(root), size=64, n_train=2, n_test=1),
                              model=DecFlowConfig(**TINY_SRFLOWNET), train=DecFlowTrainSection(**kw))


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(iters=0)])
def test_train_decflow_refuses_no_batch_or_no_update_before_the_run_folder(tmp_path, bad):
    with pytest.raises(ValueError, match=r"^train.batch_size and train.iters must be >= 1, got -?\d+, -?\d+$") as e:
        train_decflow(_decflow_cfg(tmp_path, tmp_path / "no_data", **bad), progress=False)
    assert f"got {bad.get('batch_size', 2)}, {bad.get('iters', 1)}" in str(e.value)
    assert not (tmp_path / "d").exists()


def test_train_decflow_eval_every_scores_the_test_pairs_during_training(tmp_path, shared_data, capsys):
    """train.eval_every=1 prints a 'step N test {...}' line per step and logs test/<part> to TensorBoard; the last
    one scores the final weights, so it equals the returned final metrics."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    final = train_decflow(_decflow_cfg(tmp_path, shared_data, eval_every=1), progress=False)
    lines = {int(m.group(1)): json.loads(m.group(2))
             for m in re.finditer(r"^step (\d+) test (\{.*\})$", capsys.readouterr().out, re.M)}
    assert sorted(lines) == [1, 2]
    assert set(lines[1]) == set(final) == {"EPE_head", "EPE_expression", "EPE_total"}
    assert lines[2] == pytest.approx(final, rel=1e-6)
    acc = EventAccumulator(str(tmp_path / "d" / "tb"))
    acc.Reload()
    assert {f"test/{k}" for k in final} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("test/EPE_total")] == [1, 2]


# ------------------------------------------------------------------------------------------------ LiteFlowNet2

@pytest.mark.parametrize("bad,message", [
    (dict(last_level=1), r"^last_level must be in 2\.\.6, got 1$"),
    (dict(netc_channels=(32, 32, 64, 96, 128)), r"^netc_channels needs 6 values \(levels 1\.\.6\), got "
                                                r"\(32, 32, 64, 96, 128\)$"),
    (dict(corr_stride=(1, 1, 1, 2)), r"^corr_stride needs 5 values \(levels 6\.\.2\), got \(1, 1, 1, 2\)$"),
    (dict(level_loss_weights=(0.32,) * 6), r"^level_loss_weights needs 5 values \(levels 6\.\.2\), got "),
])
def test_liteflownet2_config_refuses_a_level_or_a_per_level_list_of_the_wrong_length(bad, message):
    with pytest.raises(ValueError, match=message):
        LiteFlowNet2Config(**bad)


def test_cost_volumes_refuse_a_negative_radius_or_one_off_the_stride():
    f = torch.rand(1, 4, 6, 6)
    with pytest.raises(ValueError, match=r"^radius must be >= 0, got -1$"):
        cost_volume(f, f, -1)
    with pytest.raises(ValueError, match=r"^radius 3 must be a multiple of stride 2$"):
        sparse_cost_volume(f, f, 3, 2)
    assert sparse_cost_volume(f, f, 4, 2).shape == (1, 25, 3, 3)      # radius 4 / stride 2: (2 * 2 + 1)^2 offsets


def test_f_lcon_refuses_filters_of_another_grid_or_batch():
    x = torch.rand(2, 2, 6, 6)
    with pytest.raises(ValueError, match=r"^f-lcon filters \(2, 9, 6, 5\) do not match the field \(2, 2, 6, 6\)$"):
        f_lcon(x, torch.rand(2, 9, 6, 5))
    with pytest.raises(ValueError, match=r"^f-lcon filters \(1, 9, 6, 6\) do not match the field \(2, 2, 6, 6\)$"):
        f_lcon(x, torch.rand(1, 9, 6, 6))


def test_multiscale_loss_refuses_a_valid_mask_of_another_shape():
    out = LiteFlowNet2Output(flow=torch.zeros(1, 2, 8, 8), levels=[], padded=(8, 8))
    with pytest.raises(ValueError, match=r"^valid \(1, 8, 9\) does not match the flow \(1, 2, 8, 8\)$"):
        multiscale_loss(out, torch.zeros(1, 2, 8, 8), torch.ones(1, 8, 9))


def test_multiscale_loss_refuses_an_output_whose_grid_is_smaller_than_its_flow():
    """A hand-made LiteFlowNet2Output (the network's own padded grid is never smaller than its flow) whose grid is
    smaller than the ground truth is refused instead of cropping the target (F.pad with a negative amount)."""
    out = LiteFlowNet2Output(flow=torch.zeros(1, 2, 8, 8), levels=[], padded=(8, 4))
    with pytest.raises(ValueError, match=r"^ground truth \(8, 8\) is larger than the network grid \(8, 4\)$"):
        multiscale_loss(out, torch.zeros(1, 2, 8, 8))


# ------------------------------------------------------------------------------------------------ SRFlowNet

@pytest.mark.parametrize("kernels", [dict(super_kernel=8), dict(small_kernel=2), dict(super_kernel=3, small_kernel=5)])
def test_srflownet_refuses_even_super_kernels_or_a_small_kernel_above_the_large(kernels):
    """The network names its config keys; the block (usable on its own) names its arguments."""
    k, s = kernels.get("super_kernel", TINY_SRFLOWNET["super_kernel"]), kernels.get("small_kernel", 1)
    with pytest.raises(ValueError, match=rf"^SRFlowNetConfig\.super_kernel={k}, small_kernel={s}: both must be odd, "
                                         r"with small_kernel <= super_kernel \(e\.g\. 15 and 1\)$"):
        SRFlowNet(SRFlowNetConfig(**{**TINY_SRFLOWNET, **kernels}))
    with pytest.raises(ValueError, match=rf"^kernel sizes must be odd with small <= kernel, got {k} and {s}$"):
        SuperKernelBlock(4, k, s)


def test_srflownet_refuses_an_even_gru_kernel():
    with pytest.raises(ValueError, match=r"^SRFlowNetConfig\.gru_kernel=4 must be odd \(e\.g\. 3 or 5\)$"):
        SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET, gru_kernel=4))
    enc = SKMotionEncoder(in_channels_corr=8, out_channels=16, kernel=3, small=1, corr_channels=8, flow_channels=4)
    with pytest.raises(ValueError, match=r"^gru_kernel must be odd, got 4$"):
        SKUpdateBlock(motion_encoder=enc, context_channels=8, hidden=8, kernel=3, small=1, flow_head_hidden=8,
                      gru_kernel=4)


@pytest.mark.parametrize("key", ["feature_layers", "context_layers"])
def test_srflownet_refuses_layer_lists_without_5_widths(key):
    with pytest.raises(ValueError, match=r"^SRFlowNetConfig\.feature_layers / context_layers need 5 widths each$"):
        SRFlowNet(SRFlowNetConfig(**{**TINY_SRFLOWNET, key: TINY_SRFLOWNET[key][:4]}))


def test_fast_instance_norm_falls_back_to_instance_norm_for_affine_or_unbatched_input():
    """An affine module applies its weight and bias (the group-norm shortcut would drop them); a (C, H, W) input is
    normalised as one sample; both as nn.InstanceNorm2d does."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7)
    affine, ref = InstanceNorm2dFast(3, affine=True), torch.nn.InstanceNorm2d(3, affine=True)
    with torch.no_grad():
        for m in (affine, ref):
            m.weight.copy_(torch.tensor([2.0, -1.0, 0.5]))
            m.bias.copy_(torch.tensor([1.0, 0.0, -3.0]))
    torch.testing.assert_close(affine(x), ref(x))
    plain = torch.nn.functional.instance_norm(x)
    assert not torch.allclose(affine(x), plain, atol=1e-2)
    torch.testing.assert_close(InstanceNorm2dFast(3)(x[0]), torch.nn.InstanceNorm2d(3)(x[0]))
