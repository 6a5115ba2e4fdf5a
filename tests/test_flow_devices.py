"""The device a setting names (flownet.devices.resolve_device): the cases a mutation audit found untested. The
other device errors, as the commands print them, are in test_cli_errors.py."""
from __future__ import annotations

import pytest
import torch

from flownet.devices import resolve_device


def test_cuda_index_equal_to_the_gpu_count_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'cuda:2' but this machine has 2 CUDA device\(s\) \(cuda:0..cuda:1\)"):
        resolve_device("cuda:2")


def test_mps_is_checked_against_this_machine(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"--device='mps' but Apple's MPS backend is not available here; use "
                                         r"--device=cpu"):
        resolve_device("mps", "--device")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")


def test_a_torch_without_cuda_is_named_as_such(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ValueError, match=r"CUDA is not available here \(this torch build has no CUDA\)"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    with pytest.raises(ValueError, match=r"\(torch .* \(CUDA 12\.4\) finds no GPU or driver\)"):
        resolve_device("cuda")


def test_a_value_that_is_no_device_name_is_a_value_error():
    with pytest.raises(ValueError, match=r"device=1\.5 is not a device name"):
        resolve_device(1.5)
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
