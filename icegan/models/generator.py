"""Identity-aware generator of ICE-GAN: U-Net-like encoder/decoder with a GRM on every encoder level.

Source: ``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Section III-A (Fig. 2, Eq. 1-3).

Encoder: ``L = log2(img_size) - 1`` stride-2 convolution levels (6 at 128×128, 5 at 64×64, 7 at
256×256, 4 at 32×32) take the onset face to a 2×2 map; a bottleneck convolution turns it into the
identity-aware embedding ``e ∈ R^{id_dim}`` (320 in the paper). A :class:`GraphReasoningModule`
turns every encoder map ``f_enc_i`` into ``g_i = f_enc_i + T⁻¹(M̂_i)`` (a residual sum; the paper writes ``⊕`` for
it as for the concatenation below).

Decoder: the seed ``s = [e, z, one_hot(c)] ∈ R^{id_dim + z_dim + n_classes}`` (423 in the paper) is
deconvolved to the 2×2 map ``f_dec_L``; then ``f_dec_{i-1} = h(g_i ⊕ f_dec_i)`` (Eq. 3, ``⊕`` =
channel concatenation, ``h`` = stride-2 transposed convolution) up to the full resolution, where
``tanh`` gives the synthetic apex in [-1, 1].

Optional *motion output* (``motion_head=True``; our addition, not in the paper, see
:class:`Generator`): the last deconvolution also predicts a flow correction, and the apex is the onset
warped by ``class-conditional motion prior + correction`` plus an intensity residual. Reason: with
the paper's image output the generator, trained in a CPU budget, learned no class-specific
motion (controllability at chance, docs/benchmarks.md, ICE-GAN section); a warp makes the
requested class a displacement of the onset's own pixels, which keeps identity by construction.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import SqueezeExcitation

from .grm import GraphReasoningModule
from .levels import level_widths   # re-exported: the public name stays icegan.models.generator.level_widths

__all__ = ["Generator", "level_widths", "one_hot_classes", "warp_backward", "SubpixelConvTranspose2d"]


def one_hot_classes(c: Tensor, n_classes: int, batch: int, device, dtype) -> Tensor:
    """Class condition as a float (B, n_classes) tensor.

    Args:
        c: (B,) integer class ids in ``[0, n_classes)``, or (B, n_classes) one-hot / soft labels.
    Raises:
        ValueError: wrong shape, batch size, or an id out of range.
    """
    if c.dim() == 1:
        if c.dtype.is_floating_point:
            raise ValueError(f"class ids must be integers, got dtype {c.dtype}; pass one-hot (B, {n_classes}) for floats")
        if c.shape[0] != batch:
            raise ValueError(f"class ids have batch {c.shape[0]}, onset has {batch}")
        # checked on CPU tensors only: on an accelerator the check would stall the training loop
        # on a host-device sync every step (there, F.one_hot itself rejects out-of-range ids)
        if c.numel() and c.device.type == "cpu" and (int(c.min()) < 0 or int(c.max()) >= n_classes):
            raise ValueError(f"class ids must be in [0, {n_classes}), got min {int(c.min())} max {int(c.max())}")
        return F.one_hot(c.long().to(device), n_classes).to(dtype)
    if c.dim() == 2 and c.shape == (batch, n_classes):
        return c.to(device=device, dtype=dtype)
    raise ValueError(f"class condition must be (B,) ids or (B, {n_classes}) one-hot, got {tuple(c.shape)} for B={batch}")


def warp_backward(img: Tensor, flow: Tensor, base: Tensor | None = None) -> Tensor:
    """Move the content of ``img`` by ``flow``: ``out(y) = img(y − flow(y))`` (bilinear, border padding).

    For the small, smooth displacements of micro-expressions this is the image whose optical flow
    from ``img`` is ``flow`` (flow convention of DESIGN.md: a pixel x of the first image moves to
    x + flow(x)).

    Args:
        img: (B, C, H, W); flow: (B, 2, H, W) in pixels, channel 0 = u (x), 1 = v (y).
        base: optional cached pixel grid (1, H, W, 2) in normalised [-1, 1] coordinates (x, y).
    Returns:
        (B, C, H, W), differentiable w.r.t. ``img`` and ``flow``.
    Raises:
        ValueError: shapes do not match.
    """
    if img.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] != img.shape[0] \
            or flow.shape[-2:] != img.shape[-2:]:
        raise ValueError(f"warp_backward: img (B, C, H, W) and flow (B, 2, H, W) must match, "
                         f"got {tuple(img.shape)} and {tuple(flow.shape)}")
    h, w = img.shape[-2:]
    if base is None:
        ys = torch.linspace(-1, 1, h, device=img.device, dtype=img.dtype)
        xs = torch.linspace(-1, 1, w, device=img.device, dtype=img.dtype)
        base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    scale = flow.new_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    grid = base - flow.permute(0, 2, 3, 1) * scale
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


class SubpixelConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d(in, out, 4, stride=2, padding=1)`` computed as a 3×3 convolution to ``4·out``
    channels followed by ``pixel_shuffle(2)`` (same parameters, same state-dict keys, same output up
    to float rounding, differentiable).

    Output pixel ``(2i+a, 2j+b)`` of the transposed convolution uses the 2×2 input window at rows
    ``i−1+a…i+a`` and kernel taps ``ky ∈ (3, 1)`` for a = 0, ``(2, 0)`` for a = 1 (same for columns);
    the four phases are the four 2×2 sub-kernels placed in a zero-padded 3×3 kernel. Used for the
    generator's last layer (few output channels), where oneDNN's direct transposed convolution was
    measured slower on this CPU (35 vs 24 ms per batch of 16 at 64×64 → 128×128, 64 → 3 channels).

    Shapes: (B, in, H, W) → (B, out, 2H, 2W).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 4, stride=2, padding=1)
        ky = {0: (3, 1), 1: (2, 0)}
        idx = torch.full((4, 9), 16, dtype=torch.long)                 # 16 = the zero tap
        for a in (0, 1):
            for b in (0, 1):
                for ty in (0, 1):
                    for tx in (0, 1):
                        idx[a * 2 + b, (a + ty) * 3 + (b + tx)] = ky[a][ty] * 4 + ky[b][tx]
        self.register_buffer("_tap_index", idx, persistent=False)

    def subpixel_weight(self) -> tuple[Tensor, Tensor]:
        """(weight (4·out, in, 3, 3), bias (4·out,)) of the equivalent 3×3 convolution."""
        cin, cout = self.weight.shape[:2]
        w = self.weight.permute(1, 0, 2, 3).reshape(cout, cin, 16)
        w = torch.cat([w, w.new_zeros(cout, cin, 1)], dim=2)[:, :, self._tap_index]   # (out, in, 4, 9)
        w = w.permute(0, 2, 1, 3).reshape(4 * cout, cin, 3, 3)
        return w, self.bias.repeat_interleave(4)

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        """The 4×4 stride-2 transposed convolution, computed as a 3×3 convolution and ``pixel_shuffle(2)``.

        Args:
            x: (B, in_channels, H, W); weight and bias are cast to ``x``'s dtype.
            output_size: accepted for ``nn.ConvTranspose2d`` compatibility and ignored (the output is always 2H × 2W).

        Returns:
            (B, out_channels, 2H, 2W), equal to ``nn.ConvTranspose2d.forward`` up to float rounding.
        """
        w, b = self.subpixel_weight()
        return F.pixel_shuffle(F.conv2d(x, w.to(x.dtype), b.to(x.dtype), padding=1), 2)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


#: skip paths of the generator: graph reasoning (paper), plain skip connection, squeeze-and-excitation
SKIP_PATHS = ("grm", "plain", "se")


def _skip_module(skip: str, channels: int, grm_nodes: int) -> nn.Module:
    if skip == "grm":
        return GraphReasoningModule(channels, grm_nodes)
    if skip == "se":
        return SqueezeExcitation(channels, max(1, channels // 4))
    return nn.Identity()


class Generator(nn.Module):
    """ICE-GAN generator ``G(onset, z, c) → apex``.

    Args:
        img_size: H = W of input and output, a power of two ≥ 16 (pixels).
        in_channels: image channels (1 = grayscale).
        z_dim: noise size (100 in the paper).
        n_classes: number of expression classes (3: negative 0, positive 1, surprise 2).
        id_dim: identity embedding size (320 in the paper).
        base_channels: channels of the first encoder level; level i has
            ``min(base_channels·2^(i-1), max_channels)``.
        max_channels: channel cap.
        grm_nodes: supernodes ``N̂s`` of each GRM.
        skip: what carries each encoder level to the decoder (ICE-GAN Table III ablation):
            ``grm`` the graph reasoning module (the paper's model F), ``plain`` the identity (a plain
            skip connection, model D), ``se`` squeeze-and-excitation (Hu et al. 2018; model E), using
            ``torchvision.ops.SqueezeExcitation`` with a channel reduction of 4.
        residual_output: False (the paper's form): the last deconvolution's tanh is the image.
            True (our addition, not in the paper): the decoder predicts a change of the onset in
            tanh space, ``apex = tanh(atanh(0.999·onset) + r)``, so a zero decoder output gives
            ``0.999·onset`` (the 0.999 keeps atanh finite at ±1): the onset to within 0.001, at
            most 0.13 grey levels (micro-expression apexes differ from their onsets by a few grey
            levels); still in (-1, 1) and differentiable.
        motion_head: False (paper): the decoder outputs the image (or its residual). True (our
            addition, not in the paper): the last deconvolution outputs ``in_channels + 2``
            channels, an intensity residual ``r`` and a flow correction ``δ`` (pixels), and
            ``apex = tanh(atanh(0.999·W(onset, φ)) + r)`` with ``W`` = :func:`warp_backward` and
            ``φ = Σ_k c_k·prior_k + δ`` — the class condition selects (or, for soft labels,
            mixes) a per-class motion prior (``motion_prior`` buffer (n_classes, 2, H, W) in
            pixels, all zeros until :meth:`set_motion_prior` fills it, e.g. with the class-mean
            flow of the training pairs from :func:`icegan.gan.motion.class_mean_flow`). Implies a
            residual output. Reason: see the module docstring.

    Buffers:
        ``motion_prior`` (n_classes, 2, H, W), only with ``motion_head``; saved in the state dict.

    Shapes:
        ``forward(onset (B, in_channels, H, W) in [-1, 1], z (B, z_dim), c (B,) long ids or (B, n_classes))``
        → apex (B, in_channels, H, W) in [-1, 1].
        ``embed(onset)`` → (B, id_dim).

    Raises:
        ValueError: unsupported ``img_size``; inputs of the wrong shape (message names the input).
    """

    def __init__(self, img_size: int = 128, in_channels: int = 1, z_dim: int = 100, n_classes: int = 3,
                 id_dim: int = 320, base_channels: int = 32, max_channels: int = 256, grm_nodes: int = 8,
                 skip: str = "grm", residual_output: bool = False, motion_head: bool = False):
        super().__init__()
        if skip not in SKIP_PATHS:
            raise ValueError(f"Generator: skip must be one of {SKIP_PATHS}, got {skip!r}")
        self.skip = skip
        if img_size < 16 or 2 ** int(round(math.log2(img_size))) != img_size:
            raise ValueError(f"Generator: img_size must be a power of two >= 16, got {img_size}")
        self.img_size, self.in_channels, self.z_dim = img_size, in_channels, z_dim
        self.n_classes, self.id_dim = n_classes, id_dim
        self.motion_head = motion_head
        self.residual_output = residual_output or motion_head
        residual_output = self.residual_output
        chans = level_widths(img_size, base_channels, max_channels)
        self.n_levels = len(chans)
        self.channels = chans
        enc, grms = [], []
        prev = in_channels
        for i, ch in enumerate(chans):
            layers = [nn.Conv2d(prev, ch, 4, stride=2, padding=1)]
            if i > 0:
                layers.append(_norm(ch))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            enc.append(nn.Sequential(*layers))
            grms.append(_skip_module(skip, ch, grm_nodes))
            prev = ch
        self.encoder = nn.ModuleList(enc)
        self.grms = nn.ModuleList(grms)
        self.bottleneck = nn.Conv2d(chans[-1], id_dim, kernel_size=2)               # 2×2 → 1×1: e
        seed = id_dim + z_dim + n_classes
        self.seed_to_map = nn.Sequential(                                           # f_dec_L, 2×2
            nn.ConvTranspose2d(seed, chans[-1], kernel_size=2), _norm(chans[-1]), nn.ReLU(inplace=True))
        dec = []
        for i in range(self.n_levels - 1, -1, -1):                                  # h(g_i ⊕ f_dec_i)
            in_ch = 2 * chans[i]
            if i == 0:
                last = SubpixelConvTranspose2d(in_ch, in_channels + (2 if motion_head else 0))
                if residual_output:  # start close to the onset; small (not zero) so every layer gets gradients
                    nn.init.normal_(last.weight, std=1e-3)
                    nn.init.zeros_(last.bias)
                dec.append(nn.Sequential(last) if residual_output else nn.Sequential(last, nn.Tanh()))
            else:
                out_ch = chans[i - 1]
                dec.append(nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1),
                                         _norm(out_ch), nn.ReLU(inplace=True)))
        self.decoder = nn.ModuleList(dec)
        if motion_head:
            self.register_buffer("motion_prior", torch.zeros(n_classes, 2, img_size, img_size))
            lin = torch.linspace(-1, 1, img_size)
            self.register_buffer("_grid", torch.stack(torch.meshgrid(lin, lin, indexing="xy"), -1)[None],
                                 persistent=False)

    def set_motion_prior(self, prior: Tensor) -> None:
        """Fill the per-class motion prior (``motion_head`` only).

        Args:
            prior: (n_classes, 2, img_size, img_size) flow in pixels (channel 0 = u, 1 = v).
        Raises:
            ValueError: the generator has no motion head, or the shape is wrong / values non-finite.
        """
        if not self.motion_head:
            raise ValueError("set_motion_prior: this generator was built with motion_head=False")
        if tuple(prior.shape) != tuple(self.motion_prior.shape):
            raise ValueError(f"set_motion_prior: expected {tuple(self.motion_prior.shape)}, got {tuple(prior.shape)}")
        if not bool(torch.isfinite(prior).all()):
            raise ValueError("set_motion_prior: prior has non-finite values")
        self.motion_prior.copy_(prior.to(self.motion_prior))

    def _check_onset(self, onset: Tensor) -> None:
        if onset.dim() != 4 or onset.shape[1] != self.in_channels or onset.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"Generator: onset must be (B, {self.in_channels}, {self.img_size}, {self.img_size}), "
                             f"got {tuple(onset.shape)}")

    def encode(self, onset: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Encoder pass: ``(e (B, id_dim), [g_1 … g_L])`` with ``g_i`` (B, C_i, H/2^i, W/2^i)."""
        self._check_onset(onset)
        gs = []
        f = onset
        for conv, grm in zip(self.encoder, self.grms):
            f = conv(f)
            gs.append(grm(f))
        e = self.bottleneck(f).flatten(1)
        return e, gs

    def embed(self, onset: Tensor) -> Tensor:
        """Identity-aware embedding ``e`` (B, id_dim) of onset faces (B, in_channels, H, W) in [-1, 1]."""
        self._check_onset(onset)
        f = onset
        for conv in self.encoder:
            f = conv(f)
        return self.bottleneck(f).flatten(1)

    def forward(self, onset: Tensor, z: Tensor, c: Tensor) -> Tensor:
        """Synthetic apex ``G(onset, z, c)`` (``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Sec. III-A,
        Eq. 1–3; the residual and motion outputs, our additions, in the class docstring).

        Args:
            onset: (B, in_channels, img_size, img_size) onset faces in [-1, 1].
            z: (B, z_dim) noise.
            c: (B,) integer class ids in [0, n_classes), or (B, n_classes) one-hot / soft labels
                (:func:`one_hot_classes`).

        Returns:
            (B, in_channels, img_size, img_size) apex in [-1, 1] (in (-1, 1) with ``residual_output`` or
            ``motion_head``).

        Raises:
            ValueError: ``onset`` or ``z`` of the wrong shape; ``c`` of the wrong shape, float ids, or (CPU tensors)
                an id out of range.
        """
        b = onset.shape[0]
        if z.dim() != 2 or z.shape != (b, self.z_dim):
            raise ValueError(f"Generator: z must be ({b}, {self.z_dim}), got {tuple(z.shape)}")
        e, gs = self.encode(onset)
        return self.decode(onset, e, gs, z, c)

    def decode(self, onset: Tensor, e: Tensor, gs: list[Tensor], z: Tensor, c: Tensor) -> Tensor:
        """The decoder half of :meth:`forward`, from an :meth:`encode` result: ``forward(onset, z, c)`` is
        ``decode(onset, *encode(onset), z, c)``. A trainer that draws several noises or classes for one onset
        encodes it once and repeats ``e`` and ``gs`` (the encoder works on each face alone).

        Args:
            onset: (B, in_channels, img_size, img_size) onset faces in [-1, 1] (warped by the motion head, or the
                base of the residual output).
            e: (B, id_dim) identity embeddings; gs: the L GRM outputs, ``gs[i]`` (B, C_i, H/2^(i+1), W/2^(i+1)).
            z: (B, z_dim) noise; c: class ids or one-hot labels as in :meth:`forward`.

        Returns:
            (B, in_channels, img_size, img_size) apex in [-1, 1], as :meth:`forward`.

        Raises:
            ValueError: ``e`` or ``z`` without B rows or ``gs`` not of L maps; ``c`` as in :meth:`forward`.
        """
        b = onset.shape[0]
        if e.dim() != 2 or e.shape[0] != b or z.shape != (b, self.z_dim) or len(gs) != self.n_levels:
            raise ValueError(f"Generator.decode: onset ({b}, ...), e {tuple(e.shape)}, z {tuple(z.shape)} and "
                             f"{len(gs)} GRM maps do not fit (B rows each, {self.n_levels} maps)")
        onehot = one_hot_classes(c, self.n_classes, b, e.device, e.dtype)
        s = torch.cat([e, z.to(e.dtype), onehot], dim=1)[:, :, None, None]        # seed (B, 423, 1, 1)
        f = self.seed_to_map(s)
        for i, h in zip(range(self.n_levels - 1, -1, -1), self.decoder):
            f = h(torch.cat([gs[i], f], dim=1))                                     # Eq. 3
        if self.motion_head:
            r, delta = f[:, :self.in_channels], f[:, self.in_channels:]
            flow = torch.einsum("bk,kchw->bchw", onehot, self.motion_prior.to(f.dtype)) + delta
            moved = warp_backward(onset.to(f.dtype), flow, self._grid.to(f.dtype))
            return torch.tanh(torch.atanh(0.999 * moved) + r)
        if self.residual_output:                    # f = 0 gives 0.999·onset, not the onset (class docstring)
            return torch.tanh(torch.atanh(0.999 * onset) + f)
        return f
