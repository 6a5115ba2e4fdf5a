"""STSTNet and Off-TANet refuse maps of another size than their input_size, and STSTNet domain ids that are not
integers, with a ValueError that names what was expected and what came, instead of running on silently (STSTNet on
30×30 or 32×32 maps built for 28, Off-TANet on 114×114 built for 112) or crashing deep in torch (einsum, view,
one_hot, indexing)."""
from __future__ import annotations

import re

import pytest
import torch

from icegan.models.recognizers import OffTANet, STSTNet


@pytest.mark.parametrize("hw", [(24, 24), (30, 30), (32, 32), (40, 40), (28, 32)])
def test_ststnet_refuses_maps_of_another_size_than_input_size(hw):
    net = STSTNet(input_size=28).eval()
    x = torch.rand(2, 3, *hw)
    want = re.escape(f"STSTNet(input_size=28) expects maps of (C, S, S) = (3, 28, 28), got x of shape (2, 3, {hw[0]}, "
                     f"{hw[1]})")
    with pytest.raises(ValueError, match=want):
        net(x)


def test_ststnet_grouped_copies_refuse_another_size_too():
    net = STSTNet(input_size=28, n_models=3).train()
    mask = torch.ones(2, 3)
    with pytest.raises(ValueError, match=re.escape("(3, 28, 28), got x of shape (2, 3, 3, 30, 30)")):
        net(torch.rand(2, 3, 3, 30, 30), mask)                    # one input per copy (grouped convolution)
    with pytest.raises(ValueError, match=re.escape("(3, 28, 28), got x of shape (2, 3, 32, 32)")):
        net(torch.rand(2, 3, 32, 32), mask)                       # shared input (the dense fast path)
    assert net(torch.rand(2, 3, 3, 28, 28), mask).shape == (2, 3, 3)
    assert net(torch.rand(2, 3, 28, 28), mask).shape == (2, 3, 3)


def test_ststnet_padding_two_still_takes_its_input_size():
    """The authors' release pads by 2 (28 → 30 after the convolution): the input is still input_size."""
    net = STSTNet(input_size=28, padding=2).eval()
    assert net(torch.rand(2, 3, 28, 28)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"\(3, 28, 28\), got x of shape \(2, 3, 30, 30\)"):
        net(torch.rand(2, 3, 30, 30))


def test_wrong_channels_are_named_with_the_expected_maps():
    with pytest.raises(ValueError, match=r"expected features of shape \(B, 3, H, W\), got \(2, 4, 28, 28\): 4 "
                                         r"channels, not in_channels=3 \(maps of \(C, S, S\) = \(3, 28, 28\)\)"):
        STSTNet(input_size=28)(torch.rand(2, 4, 28, 28))
    with pytest.raises(ValueError, match=r"expected grouped features \(B, 2, 3, H, W\), got \(2, 2, 1, 112, 112\): 1 "
                                         r"channels, not in_channels=3 \(maps of \(C, S, S\) = \(3, 112, 112\)\)"):
        OffTANet(input_size=112, n_models=2)(torch.rand(2, 2, 1, 112, 112))


def test_offtanet_refuses_maps_whose_attention_size_happens_to_fit():
    """114×114 into input_size=112 reaches the attention block at 14×14 like 112 does; it is refused at the top."""
    net = OffTANet(input_size=112).eval()
    want = "OffTANet(input_size=112) expects maps of (C, S, S) = (3, 112, 112), got x of shape (2, 3, 114, 114)"
    with pytest.raises(ValueError, match=re.escape(want)) as err:
        net(torch.rand(2, 3, 114, 114))
    assert "attention block" not in str(err.value)              # its maps would have the right size there
    assert net(torch.rand(2, 3, 112, 112)).shape == (2, 3)


def test_offtanet_grouped_copies_refuse_another_size():
    net = OffTANet(input_size=28, stem_stride=1, n_models=2).eval()
    with pytest.raises(ValueError, match=r"\(3, 28, 28\), got x of shape \(2, 2, 3, 29, 29\)"):
        net(torch.rand(2, 2, 3, 29, 29))
    with pytest.raises(ValueError, match=r"attention block expects 7×7 maps, got 8×8 \(check input_size\)"):
        net(torch.rand(2, 3, 32, 32))
    assert net(torch.rand(2, 2, 3, 28, 28)).shape == (2, 2, 3)


@pytest.mark.parametrize("train", [True, False])
def test_ststnet_integer_domain_ids_of_any_width_give_the_int64_result(train):
    torch.manual_seed(0)
    net = STSTNet(domains=3, dropout=0.0).train(train)
    x = torch.rand(6, 3, 28, 28)
    ids = [0, 1, 2, 0, 2, 1]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    want = net(x, domain=torch.tensor(ids))
    for dtype in (torch.int32, torch.int16, torch.uint8):
        net.load_state_dict(state)
        torch.testing.assert_close(net(x, domain=torch.tensor(ids, dtype=dtype)), want, rtol=0, atol=0)
    assert torch.equal(net.domain_running_mean, state["domain_running_mean"]) != train   # moved in training only


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_ststnet_refuses_floating_point_or_bool_domains(train, dtype):
    net = STSTNet(domains=3).train(train)
    dom = torch.tensor([0., 1., 2., .5]).to(dtype)
    name = str(dtype).replace("torch.", "")
    with pytest.raises(ValueError, match=rf"domain must hold integer domain indices in 0\.\.2, got a {name} tensor"):
        net(torch.rand(4, 3, 28, 28), domain=dom)


def test_ststnet_out_of_range_integer_domain_still_named():
    net = STSTNet(domains=3).train()
    with pytest.raises(ValueError, match=r"indices in 0\.\.2, got shape \(4,\) with values 0\.\.3"):
        net(torch.rand(4, 3, 28, 28), domain=torch.tensor([0, 1, 2, 3], dtype=torch.int32))
