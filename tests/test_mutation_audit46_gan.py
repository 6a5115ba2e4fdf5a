"""Tests written by a mutation audit of the ICE-GAN model and loss code (icegan.models.capsules, icegan.gan.losses,
icegan.models.discriminator, icegan.models.grm, icegan.gan.motion, icegan.gan.perceptual): each one fails on a small
deliberate change of the code that the earlier tests (tests/test_gan_models.py, tests/test_paper_settings.py,
tests/test_gan_training.py) let pass, named in the test's docstring. Expected values are worked out by hand from the
equations of ``../shared/papers/icegan_identity_aware_capsule_gan.txt`` and of the capsule network it cites as [13]
(Sabour et al. 2017), never copied from the code's output. Every test runs on tiny tensors in well under a second."""
from __future__ import annotations

import math

import pytest
import torch

from icegan.gan.losses import classification_loss
from icegan.gan.perceptual import EmbeddingPerceptual
from icegan.models.capsules import RoutingCaps, dynamic_routing, margin_loss, squash
from icegan.models.discriminator import CapsuleDiscriminator, patchgan_trunk
from icegan.models.grm import GraphReasoningModule

# ------------------------------------------------------------------------------------------ icegan.models.capsules

def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _squashed_length(r: float) -> float:
    """Length of squash(s) for ‖s‖ = r: r²/(1 + r²) (Sabour et al. 2017, Eq. 1)."""
    return r * r / (1 + r * r)


# one input capsule, two output capsules, D = 2: û_0 = (1.2, 1.6) (length 2), û_1 = (0, 1) (length 1)
_U_HAT = torch.tensor([[[[1.2, 1.6], [0.0, 1.0]]]])                     # (B 1, N_in 1, N_out 2, D 2)


def test_two_routing_iterations_by_hand():
    """Routing by agreement (Sabour et al. 2017, Procedure 1; ICE-GAN ref. [13]) on one input capsule, by hand.
    Iteration 1: c = (1/2, 1/2), s_0 = (0.6, 0.8) (length 1) → v_0 = (0.3, 0.4); s_1 = (0, 0.5) → v_1 =
    (0, 0.2); b_j += û_j·v_j: b = (1.0, 0.2). Iteration 2 (the last): c = softmax(1.0, 0.2) = (σ(0.8), σ(−0.8)), v_j =
    squash(c_j û_j), lengths r²/(1+r²) with r = 2σ(0.8) and σ(−0.8), directions those of û_j.
    Mutations killed: the agreement taken as a mean over the D components instead of the dot product (b = (0.5,
    0.1)); the intermediate v not squashed (b = (2.0, 0.5))."""
    v, c = dynamic_routing(_U_HAT, iterations=2)
    c0 = _sig(0.8)
    torch.testing.assert_close(c, torch.tensor([[[c0, 1 - c0]]]))
    want_v0 = _squashed_length(2 * c0) * torch.tensor([0.6, 0.8])
    want_v1 = _squashed_length(1 - c0) * torch.tensor([0.0, 1.0])
    torch.testing.assert_close(v, torch.stack([want_v0, want_v1])[None])


def test_three_routing_iterations_accumulate_the_agreements():
    """Iteration 3 routes with b = a¹ + a², the sum of both iterations' agreements (Procedure 1, line 7:
    b_ij ← b_ij + û_j|i·v_j), not the latest alone. With û_j parallel to v_j, û_j·v_j = ‖û_j‖·‖v_j‖: a¹ = (1.0, 0.2)
    (see the two-iteration test), a² = (2·ℓ(2σ(0.8)), 1·ℓ(σ(−0.8))) with ℓ(r) = r²/(1+r²).
    Mutation killed: b replaced by the last agreement instead of accumulated."""
    _, c = dynamic_routing(_U_HAT, iterations=3)
    c0 = _sig(0.8)
    b0 = 1.0 + 2 * _squashed_length(2 * c0)
    b1 = 0.2 + 1 * _squashed_length(1 - c0)
    torch.testing.assert_close(c, torch.tensor([[[_sig(b0 - b1), _sig(b1 - b0)]]]))


def test_routing_caps_uses_its_own_iteration_count():
    """RoutingCaps(iterations=1) couples every input uniformly (c = 1/n_out: one iteration is a plain softmax of
    zero logits) and returns squash(½ Σ_i û_j|i); the default 3 iterations would not. Mutation killed: the layer's
    ``iterations`` not handed to dynamic_routing."""
    torch.manual_seed(0)
    layer = RoutingCaps(n_types=1, in_dim=2, n_out=2, out_dim=2, iterations=1)
    u = torch.randn(1, 4, 2)
    v = layer(u)
    torch.testing.assert_close(layer.last_coupling, torch.full((1, 4, 2), 0.5))
    u_hat = torch.einsum("jod,bpd->bjo", layer.weight[0], u)            # Σ_i W_j u_i = Σ_i û_j|i, (1, 2, 2)
    torch.testing.assert_close(v, squash(0.5 * u_hat))


def test_routing_caps_coupling_rows_follow_the_type_major_inputs():
    """``last_coupling`` row i belongs to input capsule i (type-major: rows 0, 1 type 0, rows 2, 3 type 1). With
    W_{0,0} = W_{1,1} = 2·I and the off-diagonal maps zero, type 0 predicts only output 0 and type 1 only output 1;
    after one agreement round each input couples more to the output it predicts (its agreement with the other is
    0). Mutation killed: û's rows laid out position-major (type 1's first position at row 1)."""
    layer = RoutingCaps(n_types=2, in_dim=2, n_out=2, out_dim=2, iterations=2)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0, 0] = 2 * torch.eye(2)
        layer.weight[1, 1] = 2 * torch.eye(2)
    u = torch.tensor([[[0.3, 0.1], [0.2, 0.2], [0.1, 0.3], [0.4, 0.0]]])   # (1, 2 types · 2 positions, 2)
    layer(u)
    c = layer.last_coupling[0]
    assert (c[:2, 0] > 0.5).all() and (c[2:, 1] > 0.5).all(), c


def test_margin_loss_with_soft_targets_by_hand():
    """Eq. 5 with a (B, K) target read as T_k itself (soft targets allowed by margin_loss): T = (0.5, 0.5, 0) and
    lengths (0.7, 0.3, 0.1): pos 0.5·0.2² + 0.5·0.6² = 0.2, neg 0.5·0.5·0.6² + 0.5·0.5·0.2² + 0 = 0.1 → 0.3.
    Mutation killed: soft targets rounded to {0, 1}."""
    lengths = torch.tensor([[0.7, 0.3, 0.1]])
    target = torch.tensor([[0.5, 0.5, 0.0]])
    assert float(margin_loss(lengths, target)) == pytest.approx(0.3, rel=1e-6)

# ------------------------------------------------------------------------------------------------ icegan.gan.losses


def test_classification_loss_uses_its_own_margins_and_lambda():
    """Eq. 6's L_margin (Eq. 5) with non-default m⁺ 0.8, m⁻ 0.2, λ 1 (the trainer hands them from loss.m_pos /
    m_neg / lam): lengths (0.6, 0.3, 0.05), class 0: (0.8 − 0.6)² + 1·(0.3 − 0.2)² + 0 = 0.05. Mutations killed:
    classification_loss calling margin_loss with the default λ 0.5 (0.045), m⁺ 0.9 (0.1) or m⁻ 0.1 (0.08)."""
    exp_len, labels = torch.tensor([[0.6, 0.3, 0.05]]), torch.tensor([0])
    got = classification_loss(exp_len, labels, None, None, m_pos=0.8, m_neg=0.2, lam=1.0)
    assert float(got) == pytest.approx(0.05, rel=1e-6)


# ------------------------------------------------------------------------------------ icegan.models.discriminator


def _tiny_disc(**kw) -> CapsuleDiscriminator:
    torch.manual_seed(0)
    return CapsuleDiscriminator(img_size=32, base_channels=4, n_primary=2, d_primary=4, d_adv=4, d_exp=4, **kw).eval()


def test_motion_input_is_the_image_then_gain_times_its_change_from_the_onset():
    """The motion-input D's trunk sees [x, gain·(x − onset)] (discriminator.py module docstring), in that order and
    with the gain it was built with (4 here, not the default 10). Mutations killed: onset − x, the gain dropped or
    ignored, the two channels swapped, the onset in place of x."""
    d = _tiny_disc(motion_input=True, motion_gain=4.0)
    seen = []
    d.trunk[0].register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    x = torch.full((1, 1, 32, 32), 0.5)
    onset = torch.full((1, 1, 32, 32), 0.25)
    with torch.no_grad():
        d(x, onset=onset, reconstruct=False)
    torch.testing.assert_close(seen[0][:, 0], torch.full((1, 32, 32), 0.5))
    torch.testing.assert_close(seen[0][:, 1], torch.full((1, 32, 32), 1.0))           # 4 · (0.5 − 0.25)
    with pytest.raises(ValueError, match="needs onset of shape"):
        d(x, onset=onset[..., :16, :16])                                    # mis-shaped onset: the module's message


def test_capsule_lengths_are_the_norms_of_each_capsule():
    """adv_len (B, 2) and exp_len (B, K) are the Euclidean lengths of each capsule vector (Sec. III-B: the length of
    a capsule is its probability). Mutations killed: AdvCaps' norm taken over the two capsules ((B, d_adv) lengths),
    the length squared."""
    d = _tiny_disc()
    with torch.no_grad():
        out = d(torch.rand(2, 1, 32, 32) * 2 - 1, reconstruct=False)
    assert out.adv_len.shape == (2, 2) and out.exp_len.shape == (2, 3)
    torch.testing.assert_close(out.adv_len, torch.sqrt((out.adv ** 2).sum(-1)))
    torch.testing.assert_close(out.exp_len, torch.sqrt((out.exp ** 2).sum(-1)))
    assert out.recon is None                                            # reconstruct=False skips the network


def test_reconstruction_is_fed_only_the_labelled_capsule_and_trains_expcaps():
    """The reconstruction network gets ExpCaps with every capsule but the labelled one zeroed (Sabour et al. 2017,
    Sec. 4.1, the ICE-GAN paper's ref. [13]), and L_rec's gradient reaches ExpCaps' routing weights (that is how it
    regularises them, Eq. 6). Mutations killed: the mask inverted (the labelled capsule zeroed), ExpCaps detached
    before the reconstruction."""
    d = _tiny_disc()
    seen = []
    d.rec_fc.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    labels = torch.tensor([2, 0])
    out = d(torch.rand(2, 1, 32, 32) * 2 - 1, labels)
    fed = seen[0].view(2, 3, 4)
    for b, k in enumerate(labels.tolist()):
        torch.testing.assert_close(fed[b, k], out.exp[b, k])
        assert torch.equal(fed[b, [j for j in range(3) if j != k]], torch.zeros(2, 4))
    (grad,) = torch.autograd.grad(out.recon.sum(), d.exp_caps.weight)
    assert grad.abs().sum() > 0


def test_reconstruction_output_is_tanh_in_the_image_range():
    """The reconstruction ends in tanh (images in [-1, 1], compared with x by the MSE of Eq. 6): with the last
    transposed convolution's weights zeroed and its bias −1, every pixel is tanh(−1) = −0.76159.
    Mutation killed: a sigmoid output (0.26894, never negative)."""
    d = _tiny_disc()
    last = [m for m in d.rec_up if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-1.0)
        recon = d(torch.zeros(1, 1, 32, 32), torch.tensor([0])).recon
    torch.testing.assert_close(recon, torch.full((1, 1, 32, 32), math.tanh(-1.0)))


def test_both_capsule_layers_route_with_the_given_iteration_count():
    """routing_iters reaches AdvCaps and ExpCaps: with one iteration every coupling is uniform, 1/2 for the two
    AdvCaps and 1/3 for the three ExpCaps (softmax of zero logits). Mutation killed: AdvCaps built without
    routing_iters (its default 3)."""
    d = _tiny_disc(routing_iters=1)
    with torch.no_grad():
        d(torch.rand(1, 1, 32, 32) * 2 - 1, reconstruct=False)
    torch.testing.assert_close(d.adv_caps.last_coupling, torch.full_like(d.adv_caps.last_coupling, 1 / 2))
    torch.testing.assert_close(d.exp_caps.last_coupling, torch.full_like(d.exp_caps.last_coupling, 1 / 3))


def test_patchgan_trunk_is_pix2pix_c64_without_norm_then_normed_blocks():
    """pix2pix's 70×70 PatchGAN (Isola et al. 2017, App. 6.1.2): C64 has no normalisation, C128, C256, C512 do;
    LeakyReLU slope 0.2 after each. Mutations killed: an instance norm in the first block, slope 0.1."""
    trunk = patchgan_trunk(1, base=4)
    kinds = [type(m).__name__ for m in trunk]
    assert kinds == ["Conv2d", "LeakyReLU"] + ["Conv2d", "InstanceNorm2d", "LeakyReLU"] * 3
    assert all(m.negative_slope == 0.2 for m in trunk if isinstance(m, torch.nn.LeakyReLU))


# ------------------------------------------------------------------------------------------------ icegan.models.grm


def test_grm_attention_size_is_the_given_d():
    """φ, θ map the N̂s supernode values to d = attn_dim (Eq. 1), and M is scaled by 1/sqrt(d) of that d: with
    attn_dim 5 ≠ n_nodes 3 both linear maps have 5 outputs. Mutation killed: attn_dim ignored (d = N̂s)."""
    m = GraphReasoningModule(channels=4, n_nodes=3, attn_dim=5)
    assert m.attn_dim == 5 and m.phi.out_features == m.theta.out_features == 5
    assert m(torch.randn(1, 4, 2, 2)).shape == (1, 4, 2, 2)


# -------------------------------------------------------------------------------------------- icegan.gan.perceptual


class _PixelEmbed(torch.nn.Module):
    """A parameter-free stand-in for Generator.embed: the flattened pixels."""
    id_dim = 2

    def embed(self, x):
        return x.flatten(1)


def test_embedding_perceptual_treats_a_handed_onset_embedding_as_a_constant():
    """L_per (Eq. 4) moves only the synthetic image: the onset embedding handed in by the caller is a constant
    target, so no gradient reaches it (perceptual.py: "detached"), while the fake gets one. Mutation killed: the
    handed embedding not detached (its gradient would train the encoder through the onset branch)."""
    onset = torch.tensor([[1.0, 1.0]]).view(1, 1, 1, 2)
    fake = torch.tensor([[0.0, 3.0]]).view(1, 1, 1, 2).requires_grad_(True)
    e_on = onset.flatten(1).clone().requires_grad_(True)
    EmbeddingPerceptual()(_PixelEmbed(), onset, fake, onset_embedding=e_on).backward()
    assert e_on.grad is None
    assert fake.grad is not None and fake.grad.abs().sum() > 0
