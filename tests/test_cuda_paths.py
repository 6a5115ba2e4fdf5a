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


class _Stop(Exception):
    pass


def _amp_policy_of_train_gan(monkeypatch) -> tuple:
    """The (autocast, dtype, GradScaler) that train_gan picks for ``train.amp_dtype=auto`` on device "cuda"; the run
    stops right after the choice (the models stay on the CPU: their ``.to`` is a no-op here)."""
    import icegan.gan.trainer as tr
    cfg = tr.GanConfig()
    cfg.data.img_size = 32
    m = cfg.model
    m.g_base_channels, m.g_max_channels, m.d_base_channels = 8, 16, 8
    m.id_dim, m.z_dim, m.d_adv, m.d_exp = 16, 4, 8, 4
    cfg.loss.perceptual = "none"
    cfg.train.progress = False
    g, d = tr.build_models(cfg)
    g.to = lambda *a, **k: g
    d.to = lambda *a, **k: d
    chosen = []
    real_policy = tr.amp_policy

    def policy(*args, **kwargs):
        chosen.append(real_policy(*args, **kwargs))
        raise _Stop
    monkeypatch.setattr(tr, "amp_policy", policy)
    monkeypatch.setattr(tr, "resolve_device", lambda *a, **k: torch.device("cuda"))
    on = torch.zeros(4, 1, 32, 32)
    with pytest.raises(_Stop):
        tr.train_gan(on, on.clone(), torch.tensor([0, 1, 2, 0]), cfg, device="cuda", init=(g, d))
    monkeypatch.setattr(tr, "amp_policy", real_policy)
    return chosen[0]


def test_gan_amp_auto_is_fp16_with_scaler_on_a_gpu_that_only_emulates_bf16(monkeypatch):
    """train.amp_dtype=auto (the default) on a pre-Ampere GPU: float16 autocast with a gradient scaler, as the
    docstring of amp_policy says, not bf16 (before: bf16, taken from is_bf16_supported() counting emulation)."""
    _pre_ampere_gpu(monkeypatch)
    assert _amp_policy_of_train_gan(monkeypatch) == (True, torch.float16, True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)    # Ampere+
    assert _amp_policy_of_train_gan(monkeypatch) == (True, torch.bfloat16, False)
