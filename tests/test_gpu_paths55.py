"""GPU-path fixes of audit 55, checked on the CPU: the capsule squash in float16 (what fp16 autocast gives the
discriminator on a GPU without bfloat16), one GradScaler update per GAN iteration, and the custom-recognizer check
seeding the CPU generator only (torch.manual_seed also reseeded every GPU's generator, which fork_rng(devices=[])
does not restore)."""
from __future__ import annotations

from pathlib import Path

import torch
from _gan_sizes import tiny_gan_config

from icegan.models.capsules import squash

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def test_squash_in_float16_keeps_the_length_of_long_and_tiny_capsules():
    """float16: a component of 256 made s*s inf (length NaN), a length of 1e-5 made eps round to 0 (0/0); computed in
    float32, both are finite, returned in float16, with squash's length r²/(1+r²)."""
    s = torch.zeros(3, 8, dtype=torch.float16)
    s[0, 0], s[1, :2], s[2, 3] = 256.0, 1e-5, 3.0
    out = squash(s)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    length = out.float().norm(dim=-1)
    r = s.float().norm(dim=-1)
    torch.testing.assert_close(length, r * r / (1 + r * r), rtol=2e-3, atol=1e-6)


def test_squash_in_float32_is_the_formula_bit_for_bit_and_keeps_its_gradient():
    torch.manual_seed(0)
    s = torch.randn(4, 10, 16, requires_grad=True)
    sq = (s * s).sum(dim=-1, keepdim=True)
    want = s * (sq / (1.0 + sq)) / torch.sqrt(sq + 1e-8)
    got = squash(s)
    assert torch.equal(got, want)
    got.sum().backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_the_gan_scaler_is_updated_once_per_iteration(tmp_path, monkeypatch):
    """One GradScaler serves the discriminator's and the generator's steps: PyTorch's rule for several optimizers is
    one update() per iteration after both steps; two made the scale grow twice as often as configured."""
    import icegan.gan.trainer as trainer
    calls = {"update": 0, "step": 0}

    class Spy(torch.amp.GradScaler):
        def update(self, *a, **k):
            calls["update"] += 1
            return super().update(*a, **k)

        def step(self, *a, **k):
            calls["step"] += 1
            return super().step(*a, **k)

    monkeypatch.setattr(trainer.torch.amp, "GradScaler", Spy)
    cfg = tiny_gan_config(32)
    t = cfg.train
    t.progress, t.batch_size, t.hflip, t.epochs, t.max_minutes, t.sample_every = False, 4, False, 1, None, 0
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    trainer.train_gan(on, (on + 0.1 * torch.randn_like(on)).clamp(-1, 1), torch.arange(8) % 3, cfg, device="cpu",
                      out_dir=tmp_path / "r")
    assert calls["step"] == 2 * 2                       # 8 pairs in batches of 4: two iterations, two steps each
    assert calls["update"] == 2


def test_the_custom_recognizer_check_does_not_reseed_the_gpu_generators(monkeypatch):
    from icegan.recognition import check_custom_recognizer
    from icegan.recognizer_config import RecognizerConfig
    seeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: seeded.append(seed))
    before = torch.random.get_rng_state()
    cfg = RecognizerConfig(name="custom", module=f"{EXAMPLES / 'custom_recognizer.py'}:TwoLayerCNN", epochs=1)
    check_custom_recognizer(cfg, n_classes=3)
    assert seeded == []
    assert torch.equal(torch.random.get_rng_state(), before)


def test_squash_keeps_float64_in_float64_so_gradcheck_holds():
    torch.manual_seed(1)
    s = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert squash(s).dtype == torch.float64
    assert torch.autograd.gradcheck(squash, (s,))
