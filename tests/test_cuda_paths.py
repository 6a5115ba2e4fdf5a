"""CUDA-only branches run on a CPU: the bf16 choice on a GPU that only emulates bfloat16 (pre-Ampere: T4, V100,
RTX 20xx). There ``torch.cuda.is_bf16_supported()`` says True (it counts emulation: a bf16 tensor can be made),
yet such a GPU has no bf16 tensor cores and cuDNN has no bf16 convolutions below compute capability 8.0."""
import pytest
import torch


def _pre_ampere_gpu(monkeypatch):
    """torch.cuda as on a T4 / V100: CUDA is there; is_bf16_supported is True only when emulation counts."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bool(including_emulation))


def test_flow_precision_auto_is_fp32_on_a_gpu_that_only_emulates_bf16(monkeypatch):
    """native_bf16 asks for bf16 hardware: auto picks fp32 on a pre-Ampere GPU and an explicit bf16 warns there;
    on Ampere and later (bf16 with or without emulation) auto picks bf16."""
    import flownet.registry as reg
    _pre_ampere_gpu(monkeypatch)
    assert reg.native_bf16("cuda") is False
    assert reg.resolve_precision("auto", "cuda") == "fp32"
    with pytest.warns(RuntimeWarning, match="no native bfloat16 kernels"):
        assert reg.resolve_precision("bf16", "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)    # Ampere+
    assert reg.native_bf16("cuda") is True and reg.resolve_precision("auto", "cuda") == "bf16"
