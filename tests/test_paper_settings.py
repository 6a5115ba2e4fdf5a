"""The defaults and fixed constants that the papers in ../shared/papers print, pinned so that a silent drift of a
default shows up: ICE-GAN (icegan_identity_aware_capsule_gan.txt Sec. III, IV-B, Eq. 5-8) and the SRFlow
regularizers (srflow_srflownet_facial_flow.txt Sec. IV-B, Eq. 9-19), the latter against an independent Sobel."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from flownet.regularizers import igvar_weights, migar_weights, regularizer_loss
from icegan.gan.losses import classification_loss
from icegan.gan.trainer import GanDataConfig, GanLossConfig, GanModelConfig, GanTrainConfig
from icegan.models.capsules import margin_loss
from icegan.models.discriminator import CapsuleDiscriminator
from icegan.models.generator import Generator


def _defaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def test_icegan_defaults_are_the_settings_of_sec_iv_b():
    """lambda_adv 0.1, lambda_mes = lambda_mer = 1 (Eq. 8), alpha 0.1, beta 5e-4 (Eq. 4, 6), m+ 0.9, m- 0.1,
    lambda_k 0.5 (Eq. 5), Nz 100, Nc 3, e of 320, 8 PrimaryCaps of 16, d_adv 256, d_exp 32, Adam(0.9, 0.999),
    lr 1e-3 with cosine decay, batch 16, 100 epochs, 128x128 faces, the four frames around the apex."""
    lc = GanLossConfig()
    assert (lc.lambda_adv, lc.lambda_mes, lc.lambda_mer, lc.alpha, lc.beta) == (0.1, 1.0, 1.0, 0.1, 5e-4)
    assert (lc.m_pos, lc.m_neg, lc.lam) == (0.9, 0.1, 0.5)
    for fn in (margin_loss, classification_loss):
        d = _defaults(fn)
        assert (d["m_pos"], d["m_neg"], d["lam"]) == (0.9, 0.1, 0.5), fn.__name__
    assert _defaults(classification_loss)["beta"] == 5e-4
    mc = GanModelConfig()
    assert (mc.z_dim, mc.n_classes, mc.id_dim) == (100, 3, 320)
    assert (mc.n_primary, mc.d_primary, mc.d_adv, mc.d_exp) == (8, 16, 256, 32)
    tc = GanTrainConfig()
    assert (tc.beta1, tc.beta2, tc.lr, tc.cosine, tc.batch_size, tc.epochs) == (0.9, 0.999, 1e-3, True, 16, 100)
    dc = GanDataConfig()
    assert (dc.img_size, dc.apex_neighbors) == (128, 2)


def test_generator_at_128_has_six_levels_a_320_embedding_and_a_423_seed():
    """Sec. III-A: f_enc_1..6, e in R^{320x1x1}, s = [e, z, c] in R^{423x1x1}."""
    g = Generator(img_size=128).eval()
    assert g.n_levels == 6 and len(g.grms) == 6
    assert g.bottleneck.out_channels == 320 and g.seed_to_map[0].in_channels == 423
    onset = torch.rand(1, 1, 128, 128) * 2 - 1
    with torch.no_grad():
        e, gs = g.encode(onset)
        assert e.shape == (1, 320) and gs[-1].shape[-2:] == (2, 2)
        assert g(onset, torch.randn(1, 100), torch.tensor([2])).shape == (1, 1, 128, 128)


def _receptive_field(convs) -> int:
    r = 1
    for c in reversed(convs):
        r = (r - 1) * c.stride[0] + c.kernel_size[0]
    return r


def test_discriminator_is_a_70x70_patchgan_trunk_with_the_papers_capsules():
    """Fig. 3 / Sec. IV-B: the 70x70 PatchGAN (its last 4x4 stride-1 layer replaced by PrimaryCaps, 3x3 stride 2: 62
    pixels per capsule), 8 PrimaryCaps types of dimension 16, AdvCaps 2 x 256, ExpCaps 3 x 32."""
    d = CapsuleDiscriminator(img_size=128).eval()
    trunk = [m for m in d.trunk if isinstance(m, nn.Conv2d)]
    assert _receptive_field(trunk + [nn.Conv2d(1, 1, 4, stride=1)]) == 70
    assert _receptive_field(trunk + [d.primary.conv]) == 62
    x = torch.rand(2, 1, 128, 128) * 2 - 1
    with torch.no_grad():
        u = d.primary(d.trunk(x))
        out = d(x, reconstruct=False)
    assert u.shape == (2, 8 * 7 * 7, 16)
    assert out.adv.shape == (2, 2, 256) and out.exp.shape == (2, 3, 32)
    assert d.adv_caps.iterations == d.exp_caps.iterations == 3


def _step_u(h: int, w: int, k: int) -> torch.Tensor:
    f = torch.zeros(1, 2, h, w)
    f[:, 0, :, k:] = 1.0
    return f


def test_srflow_regularizer_default_weights():
    """lambda_N = 0.05 in Eq. 10 and 12, no weight in Eq. 18 (MIGAR, IGVAR): on a unit step of u at column 5 of a 8 x 10
    flow, Sobel/8 gives 0.5 on two columns (R(u) = 1/W), the forward difference 1 on one of W-1 columns, and
    the standard Sobel 4 on two columns (flat first frame: w = 1; the interior of a full mask is full)."""
    h, w = 8, 10
    f = _step_u(h, w, 5)
    ones = torch.ones(1, 1, h, w)
    flat = torch.zeros(1, 1, h, w)
    assert regularizer_loss("tvr", [f]).item() == pytest.approx(0.05 / w)
    assert regularizer_loss("fdr", [f], mask=ones).item() == pytest.approx(0.05 / (w - 1))
    assert regularizer_loss("migar", [f], img1=flat, mask=ones).item() == pytest.approx(8.0 / w, rel=1e-5)
    assert regularizer_loss("igvar", [f], img1=flat, mask=ones).item() == pytest.approx(8.0 / w, rel=1e-5)
    # stage weights gamma^(n-i-1): the earlier of two equal stages counts gamma
    assert regularizer_loss("tvr", [f, f], gamma=0.5).item() == pytest.approx(1.5 * 0.05 / w)


def _sobel_magnitude(img: np.ndarray) -> np.ndarray:
    """Eq. 13 with scipy's standard 3x3 Sobel (edge pixels repeated): channel mean of sqrt(Sx^2 + Sy^2)."""
    mags = [np.hypot(ndimage.sobel(c, axis=1, mode="nearest"), ndimage.sobel(c, axis=0, mode="nearest"))
            for c in img]
    return np.mean(mags, axis=0)


def test_migar_and_igvar_weights_follow_eq_13_to_15_and_19():
    """w = base^(-G) with base = exp(mean G) (MIGAR, Eq. 14-15) or max(Var{G in the mask} / 100, e) (IGVAR, Eq. 19),
    G from an independent Sobel (scipy). IGVAR is checked on a flat image with a bright square and a faint dot at
    12x intensity: the variance over the face mask (population variance, 72 pixels) gives base 3.93, over the whole
    image it would be e; pixels whose weight underflows float32 are not compared."""
    rng = np.random.default_rng(0)
    img = rng.random((3, 12, 14)).astype(np.float32)
    g = _sobel_magnitude(img.astype(np.float64))
    got = migar_weights(torch.from_numpy(img)[None])[0, 0].numpy()
    np.testing.assert_allclose(got, np.exp(-g.mean() * g), rtol=1e-4)

    img = np.zeros((1, 12, 14), np.float32)
    img[0, 5:8, 6:9] = 1.0
    img[0, 2, 3] = 0.3
    mask = np.zeros((12, 14), np.float32)
    mask[2:10, 3:12] = 1
    g = 12.0 * _sobel_magnitude(img.astype(np.float64))
    base = max(g[mask == 1].var() / 100.0, math.e)
    assert base == pytest.approx(3.9307, abs=1e-3) and g.var() / 100.0 < math.e
    expect = base ** (-g)
    got = igvar_weights(torch.from_numpy(img)[None], torch.from_numpy(mask)[None, None], image_scale=12.0)[0, 0].numpy()
    seen = expect > 1e-30
    assert ((expect > 1e-6) & (expect < 0.5)).sum() >= 2
    np.testing.assert_allclose(got[seen], expect[seen], rtol=1e-4)
