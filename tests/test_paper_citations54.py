"""What the docstrings say against what the code computes where it reads a paper's equation: the perceptual term's
weight per branch in ICE-GAN training (Eq. 4), the edge weight of the thesis's smoothness loss (Eq. 3.35), the
number of PrimaryCaps the capsule discriminator routes, and LiteFlowNet2's section citations."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import flownet.models.liteflownet2 as liteflownet2
import flownet.selfsup_losses as selfsup_losses
import icegan.gan.trainer as trainer
import icegan.models.discriminator as discriminator
from icegan.gan.perceptual import EmbeddingPerceptual
from icegan.models.discriminator import CapsuleDiscriminator
from icegan.models.generator import Generator


def _tiny_cfg(counterfactual: float) -> trainer.GanConfig:
    cfg = trainer.GanConfig()
    cfg.data.img_size = 32
    m = cfg.model
    m.g_base_channels, m.g_max_channels, m.d_base_channels, m.id_dim, m.z_dim, m.d_adv, m.d_exp = 8, 16, 8, 16, 8, 8, 8
    t = cfg.train
    t.epochs, t.batch_size, t.hflip, t.progress, t.sample_every, t.max_minutes = 1, 4, False, False, 0, None
    t.device = "cpu"
    cfg.loss.counterfactual = counterfactual
    return cfg


@pytest.mark.parametrize("counterfactual, rows, weight", [(0.0, 4, 0.1), (1.0, 8, 0.05), (0.5, 8, 0.05)])
def test_perceptual_weight_on_true_class_fakes(monkeypatch, counterfactual, rows, weight):
    """One step of train_gan on 4 pairs with a perceptual cost of 1 on each true-class fake (the first B rows the
    trainer passes) and 0 on each other-class fake: the α·L_per part of L_ip is α = 0.1 without the counterfactual
    branch, α/2 with it, whatever loss.counterfactual's value."""
    seen = []

    def per_cost(g, onset, fake, onset_embedding=None):
        seen.append(len(fake))
        true_class = (torch.arange(len(fake)) < 4).to(fake.dtype)
        return (true_class + 0 * fake.mean(dim=(1, 2, 3))).mean()

    monkeypatch.setattr(trainer, "build_perceptual", lambda name, weights=None: per_cost)
    gen = torch.Generator().manual_seed(0)
    onset, apex = torch.rand(4, 1, 32, 32, generator=gen) * 2 - 1, torch.rand(4, 1, 32, 32, generator=gen) * 2 - 1
    state = trainer.train_gan(onset, apex, torch.tensor([0, 1, 2, 0]), _tiny_cfg(counterfactual))
    assert seen == [rows]
    rec = state.history[0]
    assert rec["loss/ip"] - rec["loss/l1"] == pytest.approx(weight, abs=1e-6)


def test_embedding_perceptual_over_both_branches_is_the_mean_of_each():
    """The trainer's one call over the 2B fakes is the mean of the two branches' costs (so each gets α/2)."""
    torch.manual_seed(0)
    g = Generator(img_size=32, base_channels=8, max_channels=16).eval()
    per = EmbeddingPerceptual()
    on = torch.rand(3, 1, 32, 32) * 2 - 1
    fake_true, fake_other = torch.rand(3, 1, 32, 32) * 2 - 1, torch.rand(3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        both = per(g, torch.cat([on, on]), torch.cat([fake_true, fake_other]))
        halves = (per(g, on, fake_true) + per(g, on, fake_other)) / 2
    assert both.item() == pytest.approx(halves.item(), rel=1e-5)


def test_trainer_docstrings_state_the_perceptual_weights():
    mod = trainer.__doc__
    assert "α/2" in mod and "loss.counterfactual" in mod
    assert "does not weight" in mod                          # the perceptual term is not scaled by counterfactual
    field = trainer.GanLossConfig.__doc__
    assert "α/2" in field and "perceptual" in field


def _ramp_image(row: np.ndarray, h: int) -> torch.Tensor:
    return torch.tensor(np.tile(row, (h, 1))[None, None])


def test_smoothness_reads_the_image_gradient_as_its_absolute_value():
    """Eq. 3.35 prints e^{-β ∇I}; with the signed gradient a darkening edge would get a weight > 1. The loss uses
    |∇I|, so a darkening ramp weighs the flow exactly as the brightening one (and as e^{-β |∇I|} written out)."""
    h = w = 8
    beta = 10.0
    flow = torch.tensor(np.random.default_rng(0).normal(size=(1, 2, h, w)))
    up = selfsup_losses.edge_aware_smoothness(flow, _ramp_image(np.linspace(0, 1, w), h), beta)
    down = selfsup_losses.edge_aware_smoothness(flow, _ramp_image(np.linspace(1, 0, w), h), beta)
    assert down.item() == pytest.approx(up.item(), rel=1e-12)
    fl = flow.numpy()[0]
    fx = np.abs(np.diff(fl, axis=2)).sum(0)
    abs_weight = ((np.exp(-beta / (w - 1)) * fx).sum() + np.abs(np.diff(fl, axis=1)).sum()) / (h * w)
    assert down.item() == pytest.approx(abs_weight, rel=1e-9)
    doc = selfsup_losses.edge_aware_smoothness.__doc__
    assert "|∇I|" in doc and "darkening" in doc and "> 1" in doc


def test_discriminator_routes_8_capsule_types_at_each_position():
    d = CapsuleDiscriminator(img_size=128, base_channels=8).eval()
    routed = []
    d.adv_caps.register_forward_pre_hook(lambda mod, args: routed.append(tuple(args[0].shape)))
    with torch.no_grad():
        d(torch.zeros(1, 1, 128, 128), reconstruct=False)
    assert routed == [(1, 392, 16)]                          # 8 types x 7 x 7 positions, dimension 16
    doc = discriminator.__doc__
    assert "8 PrimaryCaps types at each position" in doc and "392" in doc


def test_liteflownet2_cites_sec_6_1_for_network_and_training_details(shared_data):
    src = Path(liteflownet2.__file__).read_text(encoding="utf-8")
    assert not re.search(r"Sec\. 5\b", src), "liteflownet2.py still cites Sec. 5 (the basis-representation analysis)"
    assert src.count("Sec. 6.1") >= 6
    paper = shared_data.parent / "papers" / "liteflownet2.txt"     # ../shared/papers beside ../shared/data
    assert paper.is_file(), f"{paper} not found"
    lines = paper.read_text(encoding="utf-8").splitlines()
    heading = None
    under = {}
    for line in lines:
        if re.match(r"^\d+(\.\d+)? [A-Z]", line):
            heading = line.split()[0]
        for key in ("Network Details.", "frac{1}{20}", "0.32, 0.08"):
            if key in line:
                under.setdefault(key, heading)
    assert under == {"Network Details.": "6.1", "frac{1}{20}": "6.1", "0.32, 0.08": "6.1"}


def test_smoothness_weight_of_a_colour_edge_is_the_mean_of_each_channel_s_gradient():
    """A red|green edge whose channel mean is flat, and a unit step of u across it: the weight is
    exp(-beta * mean_c |dI_c|) = exp(-10 * 2/3), not exp(0) = 1 (what the difference of the channels' mean gives);
    the docstring says mean_c |dI_c| (found by review)."""
    import math

    import torch

    from flownet.selfsup_losses import edge_aware_smoothness
    h, w = 4, 8
    img = torch.zeros(1, 3, h, w)
    img[:, 0, :, :4] = 1.0          # red on the left
    img[:, 1, :, 4:] = 1.0          # green on the right: the mean over channels is 1/3 everywhere
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0, :, 4:] = 1.0         # u steps by 1 across the edge
    got = float(edge_aware_smoothness(flow, img, beta=10.0))
    assert math.isclose(got, h * math.exp(-10.0 * 2 / 3) / (h * w), rel_tol=1e-5)
    from flownet import selfsup_losses
    assert "mean_c |∂x I_c|" in selfsup_losses.edge_aware_smoothness.__doc__
