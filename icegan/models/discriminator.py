"""Capsule-enhanced discriminator of ICE-GAN.

Source: ``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Section III-B (Fig. 3) and IV-B:
the 70×70 PatchGAN trunk with PrimaryCaps (3×3, stride 2) in place of its last layer, so that each capsule sees
62×62 pixels → 8 PrimaryCaps types at each position of the feature map (``N_prim = 8`` in ICE-GAN Sec. IV-B;
8 × 7 × 7 = 392 capsules routed at 128 px), of dimension 16 → dynamic routing (3 iterations, the count of Sabour
et al. 2017, the paper's ref. [13]; the ICE-GAN paper gives none)
→ AdvCaps (real / fake, dimension 256) and ExpCaps (3 classes, dimension 32), plus a reconstruction
network fed by the masked ExpCaps vector (regularizer of Eq. 6).

AdvCaps holds two capsules, index 0 = *fake*, 1 = *real*; ExpCaps one capsule per class
(negative 0, positive 1, surprise 2). Capsule lengths are the probabilities.

Optional *motion input* (``motion_input=True``; our addition, not in the paper): D sees the
image together with its change from the onset, ``[x, gain·(x − onset)]`` (2 channels per image
channel). Reason: the paper's D sees the apex alone; on 15 training subjects its ExpCaps learned to
recognise the subjects (whose clips are mostly of one class) rather than the expression, so its
class gradient carried no motion information (docs/benchmarks.md, ICE-GAN section). The onset
difference removes most of the identity and makes the class a property of the motion. It also
makes AdvCaps a conditional (pix2pix-style) critic of the pair.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .capsules import PrimaryCaps, RoutingCaps

__all__ = ["CapsuleDiscriminator", "DiscriminatorOutput", "patchgan_trunk"]


def patchgan_trunk(in_channels: int, base: int = 64) -> nn.Sequential:
    """The 70×70 PatchGAN (pix2pix) trunk without its final 1-channel layer.

    C64(s2, no norm) - C128(s2) - C256(s2) - C512(s1), 4×4 kernels, LeakyReLU 0.2; receptive field 46 pixels, 70
    with pix2pix's final 4×4 stride-1 layer; here PrimaryCaps (3×3, stride 2) takes its place: 62 pixels.
    Shapes: (B, in, H, W) → (B, 8·base, H/8 - 1, W/8 - 1).
    """
    def block(i, o, stride, norm):
        layers = [nn.Conv2d(i, o, 4, stride=stride, padding=1)]
        if norm:
            layers.append(nn.InstanceNorm2d(o, affine=True))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        return layers
    return nn.Sequential(*block(in_channels, base, 2, False), *block(base, 2 * base, 2, True),
                         *block(2 * base, 4 * base, 2, True), *block(4 * base, 8 * base, 1, True))


@dataclass
class DiscriminatorOutput:
    """Outputs of :class:`CapsuleDiscriminator` for a batch of B images.

    adv: AdvCaps vectors (B, 2, d_adv); adv_len: their lengths (B, 2) in [0, 1) — [:, 1] = P(real).
    exp: ExpCaps vectors (B, K, d_exp); exp_len: class probabilities (B, K) in [0, 1).
    recon: reconstruction (B, C, H, W) in [-1, 1] from the masked ExpCaps, or None when not requested.
    """
    adv: Tensor
    adv_len: Tensor
    exp: Tensor
    exp_len: Tensor
    recon: Tensor | None


class CapsuleDiscriminator(nn.Module):
    """``D(x) →`` AdvCaps (real/fake) + ExpCaps (class) + reconstruction.

    Args:
        img_size: H = W of the input (pixels); ≥ 32, a multiple of 16, and max(4, img_size // 32) · 2^n for some n
            (the reconstruction's sizes: every power of two from 32 qualifies, 48 or 96 does not).
        in_channels: image channels (1 = grayscale).
        n_classes: expression classes (3).
        base_channels: first PatchGAN width (64 in pix2pix).
        n_primary, d_primary: primary capsule types and dimension (8, 16).
        d_adv, d_exp: AdvCaps and ExpCaps dimensions (256, 32).
        routing_iters: dynamic routing iterations (3).
        motion_input: also feed ``motion_gain·(x − onset)`` (see the module docstring); then
            ``forward`` needs ``onset``.
        motion_gain: scale of the difference channel (ME differences are a few grey levels, about
            0.03 in [-1, 1]; 10 brings them to the order of the image channel).

    Shapes: ``forward(x (B, C, H, W) in [-1, 1], labels (B,) or None, reconstruct=True,
    onset (B, C, H, W) or None)`` → :class:`DiscriminatorOutput`. The reconstruction (of ``x``,
    C channels) masks ExpCaps with ``labels`` when given, else with the longest capsule.
    Raises:
        ValueError: unsupported ``img_size``, input of the wrong shape, or ``onset`` missing /
            mis-shaped for a motion-input discriminator.
    """

    def __init__(self, img_size: int = 128, in_channels: int = 1, n_classes: int = 3, base_channels: int = 64,
                 n_primary: int = 8, d_primary: int = 16, d_adv: int = 256, d_exp: int = 32,
                 routing_iters: int = 3, motion_input: bool = False, motion_gain: float = 10.0):
        super().__init__()
        if img_size < 32 or img_size % 16:
            raise ValueError(f"CapsuleDiscriminator: img_size must be >= 32 and a multiple of 16, got {img_size}")
        self.img_size, self.in_channels, self.n_classes = img_size, in_channels, n_classes
        self.motion_input, self.motion_gain = motion_input, float(motion_gain)
        self.trunk = patchgan_trunk(in_channels * (2 if motion_input else 1), base_channels)
        self.primary = PrimaryCaps(8 * base_channels, n_primary, d_primary, kernel_size=3, stride=2)
        self.adv_caps = RoutingCaps(n_primary, d_primary, 2, d_adv, routing_iters)
        self.exp_caps = RoutingCaps(n_primary, d_primary, n_classes, d_exp, routing_iters)
        start = max(4, img_size // 32)
        n_up = 0
        while start * 2 ** n_up < img_size:
            n_up += 1
        if start * 2 ** n_up != img_size:
            raise ValueError(f"CapsuleDiscriminator: the reconstruction doubles from max(4, img_size // 32) = {start} "
                             f"pixels and reaches {start * 2 ** n_up}, not img_size {img_size}; use a size it reaches: a "
                             f"power of two (32, 64, 128, 256), as the generator needs")
        self._rec_start = start
        ch = 128
        self.rec_fc = nn.Sequential(nn.Linear(n_classes * d_exp, ch * start * start), nn.ReLU(inplace=True))
        ups = []
        for i in range(n_up):
            o = in_channels if i == n_up - 1 else max(16, ch // 2)
            ups.append(nn.ConvTranspose2d(ch, o, 4, stride=2, padding=1))
            ups.append(nn.Tanh() if i == n_up - 1 else nn.ReLU(inplace=True))
            ch = o
        self.rec_up = nn.Sequential(*ups)
        self._rec_ch = 128

    def forward(self, x: Tensor, labels: Tensor | None = None, reconstruct: bool = True,
                onset: Tensor | None = None) -> DiscriminatorOutput:
        """AdvCaps, ExpCaps and the reconstruction of ``x`` (``../shared/papers/icegan_identity_aware_capsule_gan.txt``
        Sec. III-B, Fig. 3; the reconstruction regularizes ExpCaps through L_rec of Eq. 6).

        Args:
            x: (B, in_channels, img_size, img_size) images in [-1, 1].
            labels: (B,) integer class ids selecting the ExpCaps capsule fed to the reconstruction, or None (the
                longest capsule).
            reconstruct: False skips the reconstruction network (``recon`` is None).
            onset: (B, in_channels, img_size, img_size), needed with ``motion_input`` (module docstring), else ignored.

        Returns:
            :class:`DiscriminatorOutput`: adv (B, 2, d_adv), adv_len (B, 2), exp (B, n_classes, d_exp), exp_len
            (B, n_classes), lengths in [0, 1); recon (B, in_channels, img_size, img_size) in [-1, 1], or None.

        Raises:
            ValueError: ``x`` not (B, in_channels, img_size, img_size); for a motion-input discriminator, ``onset``
                missing or not of ``x``'s shape; ``labels`` not (B,) or not of an integer dtype (shape and dtype
                only: the range is not checked here, to keep the step free of device syncs).
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"CapsuleDiscriminator: input must be (B, {self.in_channels}, {self.img_size}, "
                             f"{self.img_size}), got {tuple(x.shape)}")
        if labels is not None:
            if labels.shape != x.shape[:1]:
                raise ValueError(f"CapsuleDiscriminator: labels must be ({x.shape[0]},), got {tuple(labels.shape)}")
            if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
                raise ValueError(f"CapsuleDiscriminator: labels must be integer class ids, got {labels.dtype}")
        inp = x
        if self.motion_input:
            if onset is None or onset.shape != x.shape:
                got = None if onset is None else tuple(onset.shape)
                raise ValueError(f"CapsuleDiscriminator(motion_input=True) needs onset of shape {tuple(x.shape)}, "
                                 f"got {got}")
            inp = torch.cat([x, self.motion_gain * (x - onset.to(x.dtype))], dim=1)
        u = self.primary(self.trunk(inp))                         # (B, 8·P, 16)
        adv = self.adv_caps(u)                                    # (B, 2, 256)
        exp = self.exp_caps(u)                                    # (B, K, 32)
        adv_len, exp_len = adv.norm(dim=-1), exp.norm(dim=-1)
        recon = None
        if reconstruct:
            idx = labels if labels is not None else exp_len.argmax(dim=1)
            mask = F.one_hot(idx.long(), self.n_classes).to(exp.dtype).unsqueeze(-1)
            h = self.rec_fc((exp * mask).flatten(1)).view(x.shape[0], self._rec_ch, self._rec_start, self._rec_start)
            recon = self.rec_up(h)
        return DiscriminatorOutput(adv, adv_len, exp, exp_len, recon)
