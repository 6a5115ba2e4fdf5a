"""ICE-GAN models: shapes, GRM (Eq. 1-2) vs a naive implementation, capsule invariants, margin loss, gradients."""
from __future__ import annotations

import math

import numpy as np

import pytest
import torch

from icegan.gan.losses import adversarial_d_loss, adversarial_g_loss, classification_loss, identity_preserving_loss
from icegan.gan.perceptual import EmbeddingPerceptual
from icegan.models.capsules import PrimaryCaps, RoutingCaps, dynamic_routing, margin_loss, squash
from icegan.models.discriminator import CapsuleDiscriminator
from icegan.models.generator import Generator
from icegan.models.grm import GraphReasoningModule


@pytest.mark.parametrize("size,levels", [(64, 5), (128, 6)])
def test_shapes(size, levels):
    torch.manual_seed(0)
    g = Generator(img_size=size, base_channels=8, max_channels=32)
    d = CapsuleDiscriminator(img_size=size, base_channels=8)
    assert g.n_levels == levels
    x = torch.rand(2, 1, size, size) * 2 - 1
    y = g(x, torch.randn(2, 100), torch.tensor([0, 2]))
    assert y.shape == (2, 1, size, size)
    assert y.abs().max() <= 1.0                      # tanh output
    assert g.embed(x).shape == (2, 320)
    # one-hot condition gives the same output as ids
    y2 = g(x, torch.zeros(2, 100), torch.eye(3)[[0, 2]])
    assert torch.allclose(g(x, torch.zeros(2, 100), torch.tensor([0, 2])), y2)
    out = d(y, torch.tensor([1, 2]))
    assert out.adv.shape == (2, 2, 256) and out.exp.shape == (2, 3, 32)
    assert out.recon.shape == (2, 1, size, size)
    assert (out.adv_len < 1).all() and (out.exp_len < 1).all()


@pytest.mark.parametrize("size", [32, 160, 256])
def test_discriminator_reconstructs_at_the_input_size_or_refuses_the_size(size):
    """The reconstruction (compared with the input in L_rec) has the input's size for every size the discriminator
    accepts; 48 and 96, which passed the old check and reconstructed at 64 and 128, are refused when built."""
    d = CapsuleDiscriminator(img_size=size, base_channels=8, d_adv=8, d_exp=8).eval()
    with torch.no_grad():
        assert d(torch.zeros(1, 1, size, size)).recon.shape == (1, 1, size, size)
    for bad in (48, 96):
        with pytest.raises(ValueError, match=f"not img_size {bad}; use a size it reaches: a power of two"):
            CapsuleDiscriminator(img_size=bad, base_channels=8)


def test_primary_capsule_receptive_field_is_62_pixels():
    """The PatchGAN trunk (4×4: s2, s2, s2, s1) followed by PrimaryCaps (3×3, s2) makes one capsule position see a
    62×62 window (46 from the trunk + 2 · 8): the gradient of one central output reaches exactly that square (with
    the instance norms, whose statistics span the whole map, set aside)."""
    d = CapsuleDiscriminator(img_size=128, base_channels=8)
    d.trunk = torch.nn.Sequential(*[torch.nn.Identity() if isinstance(m, torch.nn.InstanceNorm2d) else m
                                    for m in d.trunk])
    x = torch.zeros(1, 1, 128, 128, requires_grad=True)
    y = d.primary.conv(d.trunk(x))
    y[0, :, y.shape[-2] // 2, y.shape[-1] // 2].sum().backward()
    rows, cols = torch.nonzero(x.grad[0, 0].abs() > 0, as_tuple=True)
    assert (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) == (62, 62)


def test_generator_rejects_bad_inputs():
    g = Generator(img_size=32, base_channels=8, max_channels=16)
    x = torch.zeros(2, 1, 32, 32)
    with pytest.raises(ValueError, match="onset must be"):
        g(torch.zeros(2, 1, 64, 64), torch.zeros(2, 100), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class ids must be in"):
        g(x, torch.zeros(2, 100), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="z must be"):
        g(x, torch.zeros(2, 10), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="power of two"):
        Generator(img_size=100)


def _naive_grm(m: GraphReasoningModule, f: torch.Tensor) -> torch.Tensor:
    """Eq. 1-2 written out per sample with plain matrix algebra (no torch_geometric)."""
    c, n_nodes, d = m.channels, m.n_nodes, m.attn_dim
    a = torch.sigmoid((m.adj + m.adj.t()) / 2) + torch.eye(c)          # Ã + I
    deg = a.sum(1)
    a_norm = torch.diag(deg ** -0.5) @ a @ torch.diag(deg ** -0.5)
    w_gcn = m.gcn.lin.weight.t()                                        # W (C × C)
    outs = []
    for x in f:                                                         # one sample at a time
        h, w = x.shape[1:]
        xf = x.reshape(c, h * w)
        p = m.assign.weight.view(n_nodes, c) @ xf + m.assign.bias[:, None]     # T(·): (N̂s, HW)
        f_hat = xf @ p.t() / (h * w)                                    # (C, N̂s)
        phi = f_hat @ m.phi.weight.t() + m.phi.bias
        theta = f_hat @ m.theta.weight.t() + m.theta.bias
        mm = phi @ theta.t() / math.sqrt(d)                             # Eq. 1
        m_hat = torch.relu(a_norm @ mm @ w_gcn + m.gcn.bias)            # Eq. 2
        y = (m_hat @ f_hat) @ p                                         # T⁻¹ before the 1×1 conv
        y = m.out.weight.view(c, c) @ y + m.out.bias[:, None]
        outs.append(x + y.view(c, h, w))
    return torch.stack(outs)


@pytest.mark.parametrize("hw", [(5, 7), (1, 1), (16, 16)])
def test_grm_matches_naive_equations(hw):
    torch.manual_seed(1)
    m = GraphReasoningModule(channels=12, n_nodes=5, attn_dim=6)
    f = torch.randn(3, 12, *hw)
    got = m(f)
    assert got.shape == f.shape
    torch.testing.assert_close(got, _naive_grm(m, f), rtol=1e-4, atol=1e-5)


def test_grm_adjacency_is_symmetric_and_bounded():
    m = GraphReasoningModule(channels=6, n_nodes=3)
    with torch.no_grad():
        m.adj.mul_(100)                                                 # a badly drifted A
    a = m.adjacency()
    assert torch.allclose(a, a.t())
    off = a - torch.eye(6)
    assert (off >= 0).all() and (off <= 1).all()
    assert torch.isfinite(m(torch.randn(2, 6, 4, 4))).all()


def test_squash_direction_and_length():
    torch.manual_seed(0)
    s = torch.randn(50, 16) * torch.logspace(-3, 3, 50)[:, None]
    v = squash(s)
    r = s.norm(dim=-1)
    torch.testing.assert_close(v.norm(dim=-1), r ** 2 / (1 + r ** 2), rtol=1e-4, atol=1e-7)
    assert (v.norm(dim=-1) < 1).all() and (v.norm(dim=-1) >= 0).all()
    cos = torch.nn.functional.cosine_similarity(v, s, dim=-1)
    torch.testing.assert_close(cos, torch.ones(50), rtol=1e-4, atol=1e-4)
    assert torch.equal(squash(torch.zeros(3, 4)), torch.zeros(3, 4))


def test_routing_coefficients_sum_to_one_and_agree():
    torch.manual_seed(0)
    u_hat = torch.randn(2, 30, 4, 8)
    v, c = dynamic_routing(u_hat, iterations=3)
    assert v.shape == (2, 4, 8) and c.shape == (2, 30, 4)
    torch.testing.assert_close(c.sum(dim=2), torch.ones(2, 30))
    # one iteration = uniform coupling 1/N_out
    v1, c1 = dynamic_routing(u_hat, iterations=1)
    torch.testing.assert_close(c1, torch.full((2, 30, 4), 0.25))
    torch.testing.assert_close(v1, squash((0.25 * u_hat).sum(dim=1)))
    # inputs that all predict the same vector for output 0 pull their coupling towards it
    u = torch.randn(1, 20, 3, 8) * 0.1
    u[:, :, 0] = torch.ones(8)
    _, c3 = dynamic_routing(u, iterations=3)
    assert (c3[0, :, 0] > 1 / 3).all()
    layer = RoutingCaps(n_types=2, in_dim=4, n_out=3, out_dim=5)
    layer(torch.randn(2, 10, 4))
    torch.testing.assert_close(layer.last_coupling.sum(-1), torch.ones(2, 10))


def test_margin_loss_hand_computed():
    lengths = torch.tensor([[0.95, 0.30, 0.05], [0.50, 0.05, 0.80]])
    target = torch.tensor([0, 2])
    # sample 1: pos max(0, 0.9-0.95)^2 = 0; neg 0.5*(0.30-0.1)^2 = 0.02; 0.05 < 0.1 → 0   => 0.02
    # sample 2: pos (0.9-0.8)^2 = 0.01; neg 0.5*(0.5-0.1)^2 = 0.08; 0.05 → 0              => 0.09
    torch.testing.assert_close(margin_loss(lengths, target), torch.tensor(0.055))
    torch.testing.assert_close(margin_loss(lengths, torch.eye(3)[[0, 2]]), torch.tensor(0.055))
    # m+ 0.9, m- 0.0, λ 1: s1: 0 + 0.30^2 + 0.05^2 = 0.0925; s2: 0.01 + 0.25 + 0.0025 = 0.2625
    torch.testing.assert_close(margin_loss(lengths, target, 0.9, 0.0, 1.0), torch.tensor((0.0925 + 0.2625) / 2))
    with pytest.raises(ValueError):
        margin_loss(lengths, torch.tensor([0, 1, 2]))


def test_gan_losses_hand_computed():
    """Eq. 7's two sides on AdvCaps lengths (fake, real), Eq. 6 (margin + beta * reconstruction MSE) and Eq. 4 (L1 +
    alpha * perceptual term), against values worked out by hand (ICE-GAN paper, ../shared/papers)."""
    real, fake = torch.tensor([[0.2, 0.8]]), torch.tensor([[0.6, 0.3]])
    # D: real read as (fake 0, real 1), synthetic as (1, 0): 0.5 (-ln 0.8 - ln 0.8 - ln 0.7 - ln 0.6)
    want_d = 0.5 * -(2 * math.log(0.8) + math.log(0.7) + math.log(0.6))
    assert float(adversarial_d_loss(real, fake)) == pytest.approx(want_d, rel=1e-6)
    assert want_d == pytest.approx(0.65689, abs=1e-5)
    # G (non-saturating): synthetic should read as (0, 1): 0.5 (-ln 0.3 - ln 0.4)
    assert float(adversarial_g_loss(fake)) == pytest.approx(0.5 * -(math.log(0.3) + math.log(0.4)), rel=1e-6)
    assert float(adversarial_g_loss(fake)) == pytest.approx(1.06013, abs=1e-5)
    # margin: class 0 at 0.95 (no loss), class 2 at 0.2 > m- = 0.1: 0.5 * 0.1^2; reconstruction MSE 1 * beta 5e-4
    exp_len, labels = torch.tensor([[0.95, 0.05, 0.2]]), torch.tensor([0])
    assert float(classification_loss(exp_len, labels, None, None)) == pytest.approx(0.005, rel=1e-6)
    recon, target = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    assert float(classification_loss(exp_len, labels, recon, target)) == pytest.approx(0.0055, rel=1e-6)
    # identity: mean |0 - 0.5| = 0.5, plus 0.1 * 2.0
    fake_img, apex = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    assert float(identity_preserving_loss(fake_img, apex, torch.tensor(2.0))) == pytest.approx(0.7, rel=1e-6)
    assert float(identity_preserving_loss(fake_img, None, torch.tensor(2.0), alpha=0.5)) == pytest.approx(1.0)
    assert float(identity_preserving_loss(fake_img, apex, None)) == pytest.approx(0.5)     # no L_per: the L1 alone


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    g = Generator(img_size=32, base_channels=8, max_channels=16, id_dim=20, z_dim=10)
    d = CapsuleDiscriminator(img_size=32, base_channels=8, d_adv=16, d_exp=8)
    onset = torch.rand(4, 1, 32, 32) * 2 - 1
    apex = torch.rand(4, 1, 32, 32) * 2 - 1
    y = torch.tensor([0, 1, 2, 1])
    fake = g(onset, torch.randn(4, 10), y)
    out_f = d(fake, reconstruct=False)
    loss_g = (0.1 * adversarial_g_loss(out_f.adv_len) + margin_loss(out_f.exp_len, y)
              + identity_preserving_loss(fake, apex, EmbeddingPerceptual()(g, onset, fake), 0.1))
    loss_g.backward()
    for name, p in g.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"generator parameter {name} got no gradient"
    out_r = d(apex, y)
    out_f = d(fake.detach(), reconstruct=False)
    d.zero_grad()
    loss_d = adversarial_d_loss(out_r.adv_len, out_f.adv_len) + classification_loss(out_r.exp_len, y, out_r.recon, apex)
    loss_d.backward()
    for name, p in d.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"discriminator parameter {name} got no gradient"


def test_embedding_perceptual_moves_images_not_the_metric():
    torch.manual_seed(0)
    g = Generator(img_size=32, base_channels=8, max_channels=16)
    onset = torch.rand(2, 1, 32, 32) * 2 - 1
    fake = (torch.rand(2, 1, 32, 32) * 2 - 1).requires_grad_(True)
    loss = EmbeddingPerceptual()(g, onset, fake)
    loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in g.parameters())
    assert float(EmbeddingPerceptual()(g, onset, onset)) == pytest.approx(0.0, abs=1e-6)


# ---- speed path of the GRM and the motion additions (generator motion head, motion-input discriminator)

def test_grm_factored_equals_densegcnconv_reference():
    """The factored Eq. 2 ((Âφ)(θᵀW), Â once per forward, 1×1 conv on supernodes) = DenseGCNConv per sample."""
    torch.manual_seed(3)
    m = GraphReasoningModule(channels=24, n_nodes=8)
    f = torch.randn(4, 24, 6, 5)
    fast = m(f)
    m.factored = False
    ref = m(f)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)
    a = m.normalized_adjacency()
    torch.testing.assert_close(a, a.t())
    assert torch.linalg.eigvalsh(a).abs().max() <= 1 + 1e-5
    # same gradients with respect to every parameter
    m.factored = True
    gf = torch.autograd.grad(m(f).square().sum(), list(m.parameters()), allow_unused=True)
    m.factored = False
    gr = torch.autograd.grad(m(f).square().sum(), list(m.parameters()), allow_unused=True)
    for (name, _), x, y in zip(m.named_parameters(), gf, gr):
        torch.testing.assert_close(x, y, rtol=1e-3, atol=1e-4, msg=name)


def test_warp_backward_known_shift_and_identity():
    from icegan.models.generator import warp_backward
    img = torch.arange(5 * 6, dtype=torch.float32).view(1, 1, 5, 6)
    zero = torch.zeros(1, 2, 5, 6)
    torch.testing.assert_close(warp_backward(img, zero), img)
    right = zero.clone()
    right[:, 0] = 1.0                                                    # content moves +1 px in x
    out = warp_backward(img, right)
    torch.testing.assert_close(out[..., 1:], img[..., :-1])              # out(x) = img(x - 1)
    torch.testing.assert_close(out[..., 0], img[..., 0])                 # border padding
    down = zero.clone()
    down[:, 1] = 0.5                                                     # half a pixel in y: bilinear mean
    torch.testing.assert_close(warp_backward(img, down)[..., 1:, :], 0.5 * (img[..., 1:, :] + img[..., :-1, :]))
    with pytest.raises(ValueError, match="must match"):
        warp_backward(img, torch.zeros(1, 2, 4, 6))


def test_motion_prior_matches_farneback_sign_convention():
    """The generator's warp moves content the way OpenCV's flow measures it (flow onset → apex = prior)."""
    import cv2
    from icegan.gan.motion import class_mean_flow
    from icegan.models.generator import warp_backward
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    img = (torch.sin(xx / 3) * torch.cos(yy / 4))[None, None] * 0.8      # smooth texture in [-1, 1]
    flow = torch.zeros(1, 2, 64, 64)
    flow[:, 0], flow[:, 1] = 1.0, -0.5
    moved = warp_backward(img, flow)
    u8 = lambda t: ((t[0, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    f = cv2.calcOpticalFlowFarneback(u8(img), u8(moved), None, 0.5, 3, 15, 3, 5, 1.2, 0)[16:48, 16:48]
    assert abs(float(np.median(f[..., 0])) - 1.0) < 0.15 and abs(float(np.median(f[..., 1])) + 0.5) < 0.15
    prior = class_mean_flow(img.repeat(2, 1, 1, 1), moved.repeat(2, 1, 1, 1), torch.tensor([0, 0]), 2,
                            method="farneback", symmetric=False)
    assert prior.shape == (2, 2, 64, 64) and prior[1].abs().max() == 0  # class 1 has no pairs
    assert abs(float(prior[0, 0, 16:48, 16:48].median()) - 1.0) < 0.15


def test_mirror_flow_and_symmetric_class_mean_known_values():
    from icegan.gan.motion import class_mean_flow, mirror_flow
    f = torch.randn(3, 2, 4, 5)
    torch.testing.assert_close(mirror_flow(mirror_flow(f)), f)
    torch.testing.assert_close(mirror_flow(f)[:, 0, :, 0], -f[:, 0, :, -1])
    torch.testing.assert_close(mirror_flow(f)[:, 1, :, 0], f[:, 1, :, -1])
    on = torch.zeros(3, 1, 4, 5)
    labels = torch.tensor([0, 0, 1])
    prior = class_mean_flow(on, on, labels, 3, flows=f, symmetric=False)
    torch.testing.assert_close(prior[0], f[:2].mean(0))
    torch.testing.assert_close(prior[1], f[2])
    sym = class_mean_flow(on, on, labels, 3, flows=f, symmetric=True)
    torch.testing.assert_close(sym[0], 0.5 * (prior[0] + mirror_flow(prior[0])))
    torch.testing.assert_close(mirror_flow(sym[0]), sym[0])               # mirror-symmetric
    with pytest.raises(ValueError, match="method"):
        class_mean_flow(on, on, labels, 3, method="raft")


def _motion_generator(size=32):
    torch.manual_seed(0)
    g = Generator(img_size=size, base_channels=8, max_channels=16, id_dim=16, z_dim=8, motion_head=True)
    prior = torch.zeros(3, 2, size, size)
    prior[1, 0] = 1.5                                                    # class 1: move right
    prior[2, 1] = -1.0                                                   # class 2: move up
    g.set_motion_prior(prior)
    return g.eval()


def test_motion_head_follows_the_class_condition():
    from icegan.models.generator import warp_backward
    g = _motion_generator()
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    x = (0.7 * torch.sin(xx / 2 + yy / 3))[None, None].repeat(2, 1, 1, 1)
    z = torch.randn(2, 8)
    with torch.no_grad():
        outs = [g(x, z, torch.full((2,), k)) for k in range(3)]
        # the last layer starts near zero: the output is the onset warped by the requested class's prior
        for k in range(3):
            expect = warp_backward(x, g.motion_prior[k].expand(2, -1, -1, -1))
            assert (outs[k] - expect).abs().mean() < 0.02
        assert (outs[0] - x).abs().mean() < 0.02 < (outs[1] - x).abs().mean()
        assert (outs[1] - outs[2]).abs().mean() > 0.1                    # c changes the output
        # a soft label mixes the priors' flows
        mix = g(x, z, torch.tensor([[0.0, 0.5, 0.5]] * 2))
        expect = warp_backward(x, 0.5 * (g.motion_prior[1] + g.motion_prior[2]).expand(2, -1, -1, -1))
        assert (mix - expect).abs().mean() < 0.02
    assert "motion_prior" in g.state_dict()
    with pytest.raises(ValueError, match="expected"):
        g.set_motion_prior(torch.zeros(3, 2, 16, 16))
    with pytest.raises(ValueError, match="motion_head=False"):
        Generator(img_size=32, base_channels=8, max_channels=16).set_motion_prior(torch.zeros(3, 2, 32, 32))


def test_motion_head_gradients_reach_every_parameter():
    g = _motion_generator().train()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    loss = g(x, torch.randn(4, 8), torch.tensor([0, 1, 2, 1])).square().mean()
    loss.backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert g.decoder[-1][0].weight.grad.abs().sum() > 0


def test_motion_input_discriminator_needs_and_uses_the_onset():
    torch.manual_seed(0)
    d = CapsuleDiscriminator(img_size=32, base_channels=8, motion_input=True).eval()
    assert d.trunk[0].in_channels == 2
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    out = d(x, torch.tensor([0, 1]), onset=x)
    assert out.exp_len.shape == (2, 3) and out.recon.shape == (2, 1, 32, 32)
    other = d(x, torch.tensor([0, 1]), onset=x + 0.05)
    assert not torch.allclose(out.exp_len, other.exp_len)               # the motion channel matters
    with pytest.raises(ValueError, match="needs onset"):
        d(x)


def test_subpixel_transposed_conv_equals_conv_transpose2d():
    from icegan.models.generator import SubpixelConvTranspose2d
    torch.manual_seed(4)
    fast = SubpixelConvTranspose2d(6, 3)
    ref = torch.nn.ConvTranspose2d(6, 3, 4, stride=2, padding=1)
    ref.load_state_dict(fast.state_dict())                              # same parameters and keys
    x = torch.randn(2, 6, 5, 7, requires_grad=True)
    y = fast(x)
    assert y.shape == (2, 3, 10, 14)
    torch.testing.assert_close(y, ref(x), rtol=1e-5, atol=1e-5)
    g_fast = torch.autograd.grad(y.square().sum(), [x, fast.weight, fast.bias])
    g_ref = torch.autograd.grad(ref(x).square().sum(), [x, ref.weight, ref.bias])
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _zero_last(g):
    import torch
    last = g.decoder[-1][0]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return last


def test_generator_class_condition_changes_output():
    """The class enters the seed: the same onset and noise with class 0 and class 1 give different faces."""
    import torch
    from icegan.models.generator import Generator
    torch.manual_seed(0)
    g = Generator(img_size=16, z_dim=4, id_dim=8, base_channels=8, max_channels=16).eval()
    on = torch.rand(2, 1, 16, 16) * 2 - 1
    z = torch.randn(2, 4)
    with torch.no_grad():
        a = g(on, z, torch.tensor([0, 0]))
        b = g(on, z, torch.tensor([1, 1]))
    assert (a - b).abs().max().item() > 1e-5   # the one-hot class is part of the seed


def test_generator_residual_output_zero_decoder_is_0999_onset():
    """With the residual output and a zeroed last layer, G returns 0.999 · onset (tanh(atanh(0.999 x)) = 0.999 x)."""
    import torch
    from icegan.models.generator import Generator
    torch.manual_seed(0)
    g = Generator(img_size=16, z_dim=4, id_dim=8, base_channels=8, max_channels=16, residual_output=True).eval()
    _zero_last(g)
    on = torch.linspace(-0.9, 0.9, 256).view(1, 1, 16, 16)
    with torch.no_grad():
        out = g(on, torch.zeros(1, 4), torch.tensor([0]))
    assert torch.allclose(out, 0.999 * on, atol=1e-5)   # tanh(atanh(0.999 x)) = 0.999 x


def test_generator_motion_head_adds_flow_correction():
    """The motion head warps by prior + delta: a bias of u = +1 px on a horizontal ramp moves each value one column
    right, out(x) = 0.999 · onset(x − 1)."""
    import torch
    from icegan.models.generator import Generator
    torch.manual_seed(0)
    g = Generator(img_size=16, z_dim=4, id_dim=8, base_channels=8, max_channels=16, motion_head=True).eval()
    last = _zero_last(g)
    with torch.no_grad():
        last.bias[1] = 1.0            # delta u = +1 px everywhere, r = 0, prior = 0
    ramp = torch.linspace(-0.75, 0.75, 16)                 # horizontal ramp, step 0.1
    on = ramp.view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    with torch.no_grad():
        out = g(on, torch.zeros(1, 4), torch.tensor([0]))
    # out(x) = 0.999 * onset(x - 1): column 5 holds 0.999 * ramp[4] = 0.999 * -0.35
    assert abs(out[0, 0, 7, 5].item() - 0.999 * ramp[4].item()) < 1e-4


def _disc():
    import torch
    from icegan.models.discriminator import CapsuleDiscriminator
    torch.manual_seed(0)
    return CapsuleDiscriminator(img_size=32, base_channels=8, d_adv=16, d_exp=8).eval()


def test_discriminator_recon_without_labels_masks_longest_capsule():
    """Without labels the reconstruction keeps the longest ExpCaps capsule (the predicted class), as it would with
    those labels given."""
    import torch
    d = _disc()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        o = d(x)
        ref = d(x, o.exp_len.argmax(dim=1))
    assert torch.allclose(o.recon, ref.recon, atol=1e-6)
    assert not torch.equal(o.exp_len.argmax(1), o.exp_len.argmin(1))


def test_discriminator_recon_depends_on_masked_class():
    """The reconstruction is fed the masked ExpCaps vector: masking class 0 or class 1 gives different images."""
    import torch
    d = _disc()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        r0 = d(x, torch.tensor([0, 0])).recon
        r1 = d(x, torch.tensor([1, 1])).recon
    assert (r0 - r1).abs().max().item() > 1e-6


def test_adversarial_losses_clamp_saturated_lengths_at_eps():
    """A length of exactly 0 or 1 on the wrong side costs -ln(1e-6) per term (the probabilities are clamped to
    [1e-6, 1 - 1e-6]), not the -ln floor of 100 that binary_cross_entropy applies to an exact 0."""
    wrong = torch.tensor([[1.0, 0.0]])                                  # read as (fake 1, real 0)
    assert float(adversarial_g_loss(wrong)) == pytest.approx(-math.log(1e-6), rel=1e-3)     # 1 - 1e-6 is float32
    right = torch.tensor([[0.0, 1.0]])
    assert float(adversarial_d_loss(wrong, right)) == pytest.approx(2 * -math.log(1e-6), rel=1e-3)
    assert float(adversarial_g_loss(right)) == pytest.approx(0.0, abs=1e-5)


def test_classification_loss_reconstruction_term_is_mean_squared_error():
    """Eq. 6: L_rec is the MSE of the reconstruction: |0 - 0.5|² = 0.25 per pixel, times beta 5e-4."""
    exp_len, labels = torch.tensor([[0.95, 0.05, 0.2]]), torch.tensor([0])
    recon, target = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    assert float(classification_loss(exp_len, labels, recon, target)) == pytest.approx(0.005 + 5e-4 * 0.25, rel=1e-6)
    assert float(classification_loss(exp_len, labels, recon, target, beta=0.0)) == pytest.approx(0.005, rel=1e-6)


def test_dynamic_routing_gradient_flows_only_through_the_last_iteration():
    """The routing logits are not differentiated through: the gradient of v with respect to û is that of
    squash(Σ_i c_ij û_j|i) with the final coupling c held constant."""
    torch.manual_seed(0)
    u_hat = torch.randn(2, 6, 3, 4, requires_grad=True)
    w = torch.randn(2, 3, 4)
    v, c = dynamic_routing(u_hat, iterations=3)
    (g,) = torch.autograd.grad((v * w).sum(), u_hat)
    u2 = u_hat.detach().clone().requires_grad_(True)
    v_ref = squash((c.detach().unsqueeze(-1) * u2).sum(dim=1))
    (g_ref,) = torch.autograd.grad((v_ref * w).sum(), u2)
    torch.testing.assert_close(v, v_ref)
    torch.testing.assert_close(g, g_ref)


def test_primary_capsules_are_type_major_with_dim_consecutive_channels():
    """Row t·H'W' + p of PrimaryCaps is capsule type t at position p, its components the conv channels
    t·dim … t·dim + dim - 1 (an identity 1×1 conv exposes the layout)."""
    n_caps, dim = 2, 3
    pc = PrimaryCaps(n_caps * dim, n_caps=n_caps, dim=dim, kernel_size=1, stride=1)
    with torch.no_grad():
        pc.conv.weight.copy_(torch.eye(n_caps * dim).view(n_caps * dim, n_caps * dim, 1, 1))
        pc.conv.bias.zero_()
    x = torch.randn(1, n_caps * dim, 2, 2)
    out = pc(x)
    assert out.shape == (1, n_caps * 4, dim)
    for t in range(n_caps):
        for p in range(4):
            torch.testing.assert_close(out[0, t * 4 + p], squash(x[0, t * dim:(t + 1) * dim].flatten(1)[:, p]))


def test_routing_caps_transform_each_input_by_its_own_type():
    """Inputs are type-major (rows 0..P-1 type 0, P..2P-1 type 1): with W_0 = I and W_1 = 0 and one output capsule
    (coupling 1), the output is squash of the sum of the type-0 inputs alone."""
    layer = RoutingCaps(n_types=2, in_dim=2, n_out=1, out_dim=2, iterations=1)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0, 0] = torch.eye(2)
    u = torch.cat([torch.tensor([[0.3, 0.0]]).repeat(3, 1), torch.tensor([[0.0, 5.0]]).repeat(3, 1)])[None]
    torch.testing.assert_close(layer(u), squash(torch.tensor([[[0.9, 0.0]]])))


def test_grm_adjacency_parameter_starts_standard_normal():
    """A is initialised from N(0, 1) as in the paper (Sec. III-A): mean ≈ 0, std ≈ 1 over 64² entries, so the
    initial edges sigmoid((A + Aᵀ)/2) are spread over (0, 1), not all 0.5."""
    torch.manual_seed(0)
    m = GraphReasoningModule(channels=64, n_nodes=4)
    a = m.adj.detach()
    assert abs(float(a.mean())) < 0.05 and 0.95 < float(a.std()) < 1.05
    edges = m.adjacency().detach() - torch.eye(64)
    assert float(edges.std()) > 0.1


class _FlatEmbed(torch.nn.Module):
    """A parameter-free stand-in for Generator.embed: the flattened pixels."""
    id_dim = 2

    def embed(self, x):
        return x.flatten(1)


def test_embedding_perceptual_known_value():
    """L_per = batch mean of ‖ê(fake) − ê(onset)‖² with ê = e/‖e‖ (perceptual.py): onset embeddings (1, 1), (0, 2) →
    unit (1, 1)/√2, (0, 1); fakes (0, 3), (0, 1) → (0, 1), (0, 1); squared distances 2 − √2 and 0, mean (2 − √2)/2."""
    g = _FlatEmbed()
    onset = torch.tensor([[1.0, 1.0], [0.0, 2.0]]).view(2, 1, 1, 2)
    fake = torch.tensor([[0.0, 3.0], [0.0, 1.0]]).view(2, 1, 1, 2)
    want = (2 - math.sqrt(2)) / 2
    per = EmbeddingPerceptual()
    assert float(per(g, onset, fake)) == pytest.approx(want, rel=1e-6)
    # the onset embedding handed in by the trainer is normalised the same way (any scale)
    assert float(per(g, onset, fake, onset_embedding=5 * onset.flatten(1))) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="onset_embedding"):
        per(g, onset, fake, onset_embedding=onset.flatten(1)[:1])


def test_pair_flows_is_each_pairs_own_farneback_flow_past_the_64_pair_chunk():
    """pair_flows runs the named estimator on [0, 1] images onset → apex in chunks of 64: 65 pairs give 65 flows,
    each the estimator's flow of that pair alone (row 63 and 64 on both sides of the chunk border)."""
    from flownet.classical import FarnebackEstimator
    from icegan.gan.motion import pair_flows
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    img = torch.sin(xx / 2) * torch.cos(yy / 3) * 0.8
    onset = torch.stack([img.roll(i % 5, dims=1) for i in range(65)])[:, None]
    apex = onset.roll(1, dims=3)
    got = pair_flows(onset, apex, method="farneback")
    assert got.shape == (65, 2, 16, 16)
    est = FarnebackEstimator()
    for i in (0, 63, 64):
        torch.testing.assert_close(got[i], est((onset[i:i + 1] + 1) / 2, (apex[i:i + 1] + 1) / 2)[0])
    assert float(got[:, 0, 4:12, 4:12].median()) > 0.5                   # content moved +1 px in x


@pytest.mark.parametrize("bad", [-1, 3])
def test_class_mean_flow_refuses_labels_outside_the_classes(bad):
    from icegan.gan.motion import class_mean_flow
    on = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        class_mean_flow(on, on, torch.tensor([0, bad]), 3, flows=torch.zeros(2, 2, 4, 4))
