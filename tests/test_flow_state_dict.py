"""Reading flow-network weights files (flownet.models.state_dict) and the shared input contract of the flow networks
(flownet.models.inputs): the cases a mutation audit found untested."""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import pytest
import torch
import torch.nn as nn

from flownet.models.inputs import rgb01_batch, update_count
from flownet.models.state_dict import load_model_file, load_state_dict_file, load_state_dict_strict, read_torch_file


@dataclass
class TinyConfig:
    widths: tuple = (2, 3)


class Tiny(nn.Module):
    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.conv = nn.Conv2d(config.widths[0], config.widths[1], 1)


def _weights(tmp_path, name="w.pt", **over):
    src = Tiny(TinyConfig())
    ck = {"format": "tiny-v1", "config": {"widths": [2, 3]}, "state_dict": src.state_dict(), "meta": {"size": 64}}
    ck.update(over)
    torch.save(ck, tmp_path / name)
    return tmp_path / name, src


def _load(path, what="Tiny", **kw):
    return load_model_file(path, "tiny-v1", what, Tiny, TinyConfig, "Train one with tiny train.", **kw)


# ---------------------------------------------------------------------------------------------- strict loading

def test_strict_loading_refuses_a_list_and_casts_half_tensors_to_the_modules_dtype():
    dst = Tiny(TinyConfig())
    with pytest.raises(ValueError, match="w.pt: not a state dict of tensors"):
        load_state_dict_strict(dst, [torch.zeros(3, 2, 1, 1)], "w.pt")
    src = Tiny(TinyConfig())
    load_state_dict_strict(dst, {k: v.half() for k, v in src.state_dict().items()}, "w.pt")
    assert dst.conv.weight.dtype == torch.float32
    assert torch.equal(dst.conv.weight, src.conv.weight.half().float())


def test_strict_loading_names_the_first_three_keys_and_the_count():
    dst = nn.Sequential(*[nn.Linear(2, 2) for _ in range(3)])        # 6 tensors, none given
    with pytest.raises(ValueError, match=r"missing \['0\.weight', '0\.bias', '1\.weight'\] \(6\), unexpected \[\] "
                                         r"\(0\), wrong shape \[\] \(0\)"):
        load_state_dict_strict(dst, {}, "w.pt", "Net")


def test_a_wrong_shape_alone_is_refused_before_torch_sees_it():
    sd = Tiny(TinyConfig()).state_dict()
    sd["conv.bias"] = torch.zeros(4)
    with pytest.raises(ValueError, match=r"w\.pt: weights do not match the model: missing \[\] \(0\), unexpected \[\] "
                                         r"\(0\), wrong shape \['conv\.bias'\] \(1\)"):
        load_state_dict_strict(Tiny(TinyConfig()), sd, "w.pt")


# ---------------------------------------------------------------------------------------------- reading files

def test_read_torch_file_names_a_missing_file_and_its_role(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint: file not found: .*nope\.pt"):
        read_torch_file(tmp_path / "nope.pt", "checkpoint")


def test_read_torch_file_refuses_pickled_objects_with_the_unpicklers_reason(tmp_path):
    """A file holding a Python object (here a Fraction) is refused by the weights-only unpickler; the message gives
    the unpickler's own reason in one line, not torch's advice to switch weights_only off."""
    torch.save({"lr": Fraction(1, 3)}, tmp_path / "obj.pt")
    with pytest.raises(ValueError, match=r"checkpoint: .*obj\.pt cannot be read by torch.load.*\(UnpicklingError: "
                                         r"Unsupported global: GLOBAL fractions\.Fraction") as err:
        read_torch_file(tmp_path / "obj.pt", "checkpoint")
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
    assert read_torch_file(tmp_path / "obj.pt", "checkpoint", weights_only=False)["lr"] == Fraction(1, 3)


def test_read_torch_file_keeps_the_first_line_of_another_error(tmp_path, monkeypatch):
    (tmp_path / "w.pt").write_bytes(b"x")

    def fail(*a, **k):
        raise RuntimeError("zip archive damaged\nsee the documentation of torch.load")
    monkeypatch.setattr(torch, "load", fail)
    with pytest.raises(ValueError, match=r"complete\? \(RuntimeError: zip archive damaged\)$"):
        read_torch_file(tmp_path / "w.pt", "--weights")


def test_load_state_dict_file_takes_a_bare_state_dict_only_when_plain(tmp_path):
    src = Tiny(TinyConfig())
    torch.save(src.state_dict(), tmp_path / "bare.pt")
    torch.save({"state_dict": src.state_dict(), "step": 3}, tmp_path / "wrapped.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    for name, plain in (("bare.pt", True), ("wrapped.pt", True), ("wrapped.pt", False)):
        dst = Tiny(TinyConfig())
        load_state_dict_file(dst, tmp_path / name, "train.init_weights", plain=plain)
        torch.testing.assert_close(dst.conv.weight, src.conv.weight)
    with pytest.raises(ValueError, match=r"train\.init_weights: .*bare\.pt has no state_dict"):
        load_state_dict_file(Tiny(TinyConfig()), tmp_path / "bare.pt", "train.init_weights", plain=False)
    with pytest.raises(ValueError, match=r"init: .*tensor\.pt has no state_dict"):
        load_state_dict_file(Tiny(TinyConfig()), tmp_path / "tensor.pt", "init")
    with pytest.raises(ValueError, match=r"^train\.init_weights: .*wrapped\.pt: weights do not match Tiny\(2, 4\)"):
        load_state_dict_file(Tiny(TinyConfig((2, 4))), tmp_path / "wrapped.pt", "train.init_weights", "Tiny(2, 4)")


# ---------------------------------------------------------------------------------------------- project weights files

def test_load_model_file_builds_from_the_config_with_lists_as_tuples(tmp_path):
    p, src = _weights(tmp_path)
    m = _load(p)
    assert m.config.widths == (2, 3) and isinstance(m.config.widths, tuple)
    assert m.meta == {"size": 64} and not m.training
    torch.testing.assert_close(m.conv.weight, src.conv.weight)
    p, _ = _weights(tmp_path, "noted.pt", model="tiny")                 # has a format: not a training checkpoint
    assert _load(p).meta == {"size": 64}
    ck = torch.load(p, weights_only=True)
    torch.save({"model": ck, "step": 7}, tmp_path / "ckpt.pt")          # a training checkpoint: its model part
    torch.testing.assert_close(_load(tmp_path / "ckpt.pt").conv.weight, ck["state_dict"]["conv.weight"])
    p, _ = _weights(tmp_path, "half.pt", state_dict={k: v.half() for k, v in src.state_dict().items()})
    half = _load(p)                                                   # a float16 file: a float32 network
    assert half.conv.weight.dtype == half.conv.bias.dtype == torch.float32
    assert torch.equal(half.conv.weight, src.conv.weight.half().float())


def test_load_model_file_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Tiny weights not found: .*none\.pt\. Train one with tiny train\."):
        _load(tmp_path / "none.pt")
    p, _ = _weights(tmp_path, "nosd.pt", state_dict=None)
    with pytest.raises(ValueError, match=r"nosd\.pt: no state_dict in the weights file"):
        _load(p)
    p, _ = _weights(tmp_path, "other.pt", format="other-v2")
    with pytest.raises(ValueError, match=r"not a DecFlow weights file \(format 'other-v2', expected 'tiny-v1'\)"):
        _load(p, what="DecFlow")
    with pytest.raises(ValueError, match=r"not an SRFlowNet weights file"):
        _load(p, what="SRFlowNet")
    p, _ = _weights(tmp_path, "odd.pt", config={"widths": [2, 3], "depth": 2})
    with pytest.raises(ValueError, match=r"odd\.pt: unknown Tiny config keys \['depth'\]"):
        _load(p)


# ---------------------------------------------------------------------------------------------- input contract

def test_update_count_takes_iters_else_the_config_default():
    assert update_count(3, 12) == 3 and update_count(None, 12) == 12 and update_count(0, 5) == 5
    with pytest.raises(ValueError, match=r"iters must be >= 1, got config.iters = 0"):
        update_count(None, 0)
    with pytest.raises(ValueError, match=r"iters must be >= 1, got -2"):
        update_count(-2, 12)


def test_rgb01_batch_refuses_a_3d_tensor_with_three_rows():
    with pytest.raises(ValueError, match=r"\(B, 1 or 3, H, W\).*\(1, 3, 8\)"):
        rgb01_batch(torch.zeros(1, 3, 8))
    rgb = torch.rand(2, 3, 4, 5)
    assert rgb01_batch(rgb) is rgb                                    # float32 RGB passes as is
    grey = torch.rand(2, 1, 4, 5)
    out = rgb01_batch(grey)                                           # grey: a view repeated to RGB, no copy
    assert out.shape == (2, 3, 4, 5) and out.data_ptr() == grey.data_ptr() and out.stride(1) == 0


def test_load_resume_checkpoint_loads_the_weights_and_names_what_is_wrong(tmp_path):
    """A run's last.pt: its model weights loaded (the rest returned for the optimiser and step); not a dict, or a dict
    without the model's weights, refused naming the file."""
    from flownet.models.state_dict import RESUME_LABEL, load_resume_checkpoint
    src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    torch.save({"model": src.state_dict(), "step": 7}, tmp_path / "last.pt")
    assert load_resume_checkpoint(tmp_path / "last.pt", dst)["step"] == 7
    assert torch.equal(dst.weight, src.weight) and torch.equal(dst.bias, src.bias)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=rf"^{re.escape(RESUME_LABEL)}: {re.escape(str(tmp_path / 'list.pt'))} is "
                                         r"not a training checkpoint"):
        load_resume_checkpoint(tmp_path / "list.pt", dst)
    torch.save({"step": 1}, tmp_path / "nomodel.pt")
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path / 'nomodel.pt'))}: not a state dict of tensors"):
        load_resume_checkpoint(tmp_path / "nomodel.pt", dst)
