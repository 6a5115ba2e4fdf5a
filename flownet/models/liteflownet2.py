"""LiteFlowNet2: a lightweight pyramid flow network with cascaded flow inference and f-lcon regularization.

Source: ``../shared/papers/liteflownet2.txt`` (Hui, Tang, Loy, "A Lightweight Optical Flow CNN —
Revisiting Data Fidelity and Regularization"), Sec. 3 (LiteFlowNet), Sec. 6.2 (LiteFlowNet2) and the
Appendix (Tables 8–11). The network has two parts:

* **NetC** (:class:`NetC`, Table 8): a two-stream feature pyramid with shared weights, levels 1 (full
  resolution, 32 channels) to 6 (1/32, 192 channels); 7x7 first convolution, 3x3 afterwards, each
  followed by a leaky ReLU (slope 0.1).
* **NetE**: one :class:`PyramidLevel` per level 6, 5, 4, 3 (LiteFlowNet2 stops at level 3, Sec. 6.2;
  ``last_level=2`` adds LiteFlowNet's level 2). Each level runs the cascaded flow inference M:S and the
  regularization R:

  - **M**, descriptor matching (Eq. 2–3, Table 9): the previous level's flow is up-sampled by a 4x4
    fractionally strided convolution (``upconv``), the second image's features are warped by it
    (f-warp, Eq. 1, bilinear), a cost volume ``c(x, d) = F1(x) · F2~(x + d) / N`` is built
    (:func:`cost_volume`; radius 3 at levels 6–4; radius 6 with stride 2 at level 3, i.e. a sparse
    cost volume matched on every second position and displacement, then interpolated back to the full
    level grid by a learnable grouped 4x4 ``upcorr`` — Sec. 3.1 item 3 and Table 7 — initialised with
    Caffe's bilinear filler, which shifts the sparse volume by half a level-grid pixel: see
    :func:`_bilinear_upconv`), and 6 convolutions (49→128→128→96→64→32→2, Sec. 6.2 "Network Depth")
    predict the residual flow: ``x_m = M(C) + s x^s``.
  - **S**, sub-pixel refinement (Eq. 4, Table 10): ``F2`` warped by ``x_m``; convolutions on
    ``[F1, F2~, x_m]`` give ``x_s = S(...) + x_m``.
  - **R**, regularization (Eq. 5–9, Table 11): ``D = R_D(F1, x_s - mean(x_s), ||I1 - I2~||_2)``
    (I2 warped by ``x_s``; the L2 brightness error is the occlusion probability map, footnote 3),
    f-lcon filters ``g = softmax(-D^2)`` over the ω x ω neighbourhood (Eq. 8; ω = 3 at levels 6–5, 5 at
    levels 4–3) applied to each flow channel by unfolding (Eq. 9, :func:`f_lcon`).

Last-layer kernels of M, S and R are 3x3 at levels 6–5 and 5x5 at levels 4–3 (7x7 at level 2), as in
Sec. 6.1 "Network Details". With the defaults the model has about 6.3 M parameters (paper, Table 5:
6.42 M).

Flow units. Inside NetE flows are stored in **full-resolution pixels divided by** ``flow_scale`` (20,
the paper's ground-truth scaling "by a factor of 1/20", Sec. 6.1 Training Details) at every level, so
up-sampling between levels changes resolution but not magnitude; warping at level k multiplies by
``flow_scale / 2^(k-1)`` to get level-grid pixels.

Input handling (same contract as :class:`flownet.models.srflownet.SRFlowNet`): images (B, 1, H, W)
grey or (B, 3, H, W) RGB in **[0, 1]** (grey is repeated to 3 channels, then 0.5 is subtracted);
any H, W >= 1: inputs are replicate-padded (right and bottom) to a multiple of 32 (and at least 32),
the output flow (B, 2, H, W) is in **pixels** of the input grid at full resolution (level 3's flow
bilinearly up-sampled by 4 and multiplied by ``flow_scale``), cropped back to H x W.

Training loss: :func:`multiscale_loss` (L2 end-point error summed over pixels on every inferred flow
field M, S and R, weights 0.32, 0.08, 0.02, 0.01, 0.005 for levels 6 to 2, plus 6.25e-4 on the
full-resolution flow, Sec. 6.1 and 6.2).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .inputs import rgb01_batch
from ..user_numbers import check_non_negative

__all__ = ["LiteFlowNet2Config", "NetC", "PyramidLevel", "LiteFlowNet2", "LiteFlowNet2Output",
           "cost_volume", "sparse_cost_volume", "warp", "f_lcon", "f_lcon_filters", "multiscale_loss"]


@dataclass
class LiteFlowNet2Config:
    """Architecture and loss hyper-parameters (stored in weights files).

    Attributes:
        netc_channels: NetC output channels of levels 1..6 (Table 8: 32, 32, 64, 96, 128, 192).
        last_level: finest NetE level: 3 (LiteFlowNet2) or 2 (LiteFlowNet's extra level).
        corr_radius: search radius D in pixels of the level grid, for levels 6..2 (3, 3, 3, 6, 6).
        corr_stride: matching stride for levels 6..2 (1, 1, 1, 2, 2): stride 2 matches every second
            position and displacement (sparse cost volume, Sec. 3.1).
        level_loss_weights: loss weights of levels 6..2 (0.32, 0.08, 0.02, 0.01, 0.005, Sec. 6.1).
        full_loss_weight: weight of the full-resolution flow loss (6.25e-4, Sec. 6.2).
        flow_scale: ground-truth flow divisor inside the network and the loss (20, Sec. 6.1).
        leaky_slope: negative slope of the leaky ReLUs (0.1).
        netc_init_gain: factor on NetC's first convolution after MSRA initialisation (10; 1 = plain MSRA).
            Initialisation only (weights files override it). MSRA keeps the second moment of the input,
            so with prepared grey faces (std ~0.15) plain MSRA starts the NetC features at std ~0.07 and
            the cost volume (a channel mean of products, quadratic in the feature scale) at ~4e-3, with
            flow-induced changes of ~1e-4: M (and S, fed the same small features) get almost no flow
            signal and the network settles at zero flow
            (measured: facial test EPE 1.155 = zero flow after 667 steps). With 10 the features start at
            std ~0.7 and the cost volume at ~0.4, a scale like RAFT's normalised features. Not in the
            paper, which does not give its initialisation (Caffe training for 300k+ iterations).
    """
    netc_channels: tuple[int, ...] = (32, 32, 64, 96, 128, 192)
    last_level: int = 3
    corr_radius: tuple[int, ...] = (3, 3, 3, 6, 6)
    corr_stride: tuple[int, ...] = (1, 1, 1, 2, 2)
    level_loss_weights: tuple[float, ...] = (0.32, 0.08, 0.02, 0.01, 0.005)
    full_loss_weight: float = 6.25e-4
    flow_scale: float = 20.0
    leaky_slope: float = 0.1
    netc_init_gain: float = 10.0

    def __post_init__(self):
        if not self.netc_init_gain > 0:
            raise ValueError(f"netc_init_gain must be > 0, got {self.netc_init_gain}")
        check_non_negative(self, "liteflownet2", ("full_loss_weight", "flow_scale", "leaky_slope", "netc_init_gain"))
        if self.last_level not in (2, 3, 4, 5, 6):
            raise ValueError(f"last_level must be in 2..6, got {self.last_level}")
        for name in ("netc_channels",):
            if len(getattr(self, name)) != 6:
                raise ValueError(f"{name} needs 6 values (levels 1..6), got {getattr(self, name)}")
        for name in ("corr_radius", "corr_stride", "level_loss_weights"):
            if len(getattr(self, name)) != 5:
                raise ValueError(f"{name} needs 5 values (levels 6..2), got {getattr(self, name)}")
        check_non_negative(self, "liteflownet2", ("level_loss_weights",))
        for r, s in zip(self.corr_radius, self.corr_stride):
            if s < 1 or r % s:
                raise ValueError(f"corr_radius {r} must be a multiple of corr_stride {s} (>= 1)")


# ----------------------------------------------------------------------------------------------------
# building blocks


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """f-warp (Eq. 1): ``x~(p) = x(p + flow(p))`` by bilinear interpolation of the 4 neighbours.

    Args:
        x: (B, C, h, w) features or images.
        flow: (B, 2, h, w) in pixels of this grid (channel 0 = horizontal).

    Returns:
        (B, C, h, w); samples outside the map are 0 (zero padding). Differentiable in both inputs.
    """
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=flow.dtype),
                            torch.arange(w, device=x.device, dtype=flow.dtype), indexing="ij")
    px, py = xs[None] + flow[:, 0], ys[None] + flow[:, 1]
    corners = h > 1 and w > 1
    if corners:
        gx, gy = px * (2.0 / (w - 1)) - 1.0, py * (2.0 / (h - 1)) - 1.0
    else:   # with align_corners=True every coordinate of a 1-pixel axis is that pixel: the motion along it was lost
        gx, gy = (2.0 * px + 1.0) / w - 1.0, (2.0 * py + 1.0) / h - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=corners)


def cost_volume(f1: torch.Tensor, f2: torch.Tensor, radius: int) -> torch.Tensor:
    """Dense cost volume of Eq. 2: ``c(x, d) = F1(x) · F2(x + d) / N`` for ``d`` in [-radius, radius]^2.

    Shift-and-multiply over the (2r+1)^2 displacements (no loop over pixels); ``F2`` is zero outside
    the map. Channel ``(dy + r) * (2r + 1) + (dx + r)`` holds displacement (dx, dy).

    Args:
        f1, f2: (B, N, h, w) features of the same shape.
        radius: D >= 0 (pixels of this grid).

    Returns:
        (B, (2r+1)^2, h, w).

    Raises:
        ValueError: shapes differ or radius < 0.
    """
    if f1.shape != f2.shape or f1.dim() != 4:
        raise ValueError(f"cost volume needs two (B, N, h, w) maps of equal shape, got {tuple(f1.shape)} "
                         f"and {tuple(f2.shape)}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    r = int(radius)
    _, n, h, w = f1.shape
    f2p = F.pad(f2, (r, r, r, r))
    out = [(f1 * f2p[:, :, dy:dy + h, dx:dx + w]).sum(1) for dy in range(2 * r + 1) for dx in range(2 * r + 1)]
    return torch.stack(out, 1) / n


def sparse_cost_volume(f1: torch.Tensor, f2: torch.Tensor, radius: int, stride: int) -> torch.Tensor:
    """Sparse cost volume (Sec. 3.1 item 3): matching only at positions and displacements that are
    multiples of ``stride`` within ``radius``.

    Since both the position x and the displacement d are multiples of ``stride``, this equals the dense
    cost volume of the sub-sampled maps ``f[..., ::stride, ::stride]`` with radius ``radius // stride``.

    Returns:
        (B, (2 radius/stride + 1)^2, ceil(h/stride), ceil(w/stride)); entry (i, j) is position
        (stride*i, stride*j). :class:`PyramidLevel`'s ``upcorr`` up-samples it as if entry (i, j) sat at
        (2i + 0.5, 2j + 0.5) (:func:`_bilinear_upconv`): half a level-grid pixel off at initialisation.
    """
    if radius % stride:
        raise ValueError(f"radius {radius} must be a multiple of stride {stride}")
    return cost_volume(f1[..., ::stride, ::stride], f2[..., ::stride, ::stride], radius // stride)


def f_lcon_filters(dist: torch.Tensor) -> torch.Tensor:
    """f-lcon filters of Eq. 8: ``g = exp(-D^2) / sum_neighbourhood exp(-D^2)`` (softmax over channels).

    Args:
        dist: (B, ω², h, w) feature-driven distance D, one value per neighbour offset (Table 11,
            ``conv_dist``; offsets in row-major order of the ω x ω window).

    Returns:
        (B, ω², h, w), non-negative, summing to 1 over dim 1.
    """
    return torch.softmax(-dist.pow(2), dim=1)


def f_lcon(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Feature-driven local convolution, Eq. 5 computed as Eq. 9: ``x_g(p, c) = sum_j g(p, j) x(p + o_j, c)``.

    Every position has its own ω x ω filter ``g`` (shared by the channels of ``x``, as in Table 11
    where one 9-channel filter map regularizes both flow channels). Patches are unfolded with replicate
    padding, so a constant field stays constant whatever the filters.

    Args:
        x: (B, C, h, w) field to regularize (the flow x_s).
        g: (B, ω², h, w) filters (e.g. from :func:`f_lcon_filters`), ω odd.

    Returns:
        (B, C, h, w).

    Raises:
        ValueError: ω² is not the square of an odd number, or spatial shapes differ.
    """
    k2 = g.shape[1]
    k = int(round(math.sqrt(k2)))
    if k * k != k2 or k % 2 == 0:
        raise ValueError(f"f-lcon filters need ω² channels with ω odd, got {k2}")
    if g.shape[0] != x.shape[0] or g.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"f-lcon filters {tuple(g.shape)} do not match the field {tuple(x.shape)}")
    b, c, h, w = x.shape
    p = k // 2
    cols = F.unfold(F.pad(x, (p, p, p, p), mode="replicate"), k)  # (B, C*k2, h*w)
    cols = cols.view(b, c, k2, h, w)
    return (cols * g[:, None]).sum(2)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, slope: float | None = 0.1) -> nn.Module:
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)
    return conv if slope is None else nn.Sequential(conv, nn.LeakyReLU(slope))


def _bilinear_upconv(channels: int) -> nn.ConvTranspose2d:
    """4x4 stride-2 pad-1 grouped transpose convolution (x2 up-sampling), each channel's kernel initialised to
    ``[.25 .75 .75 .25]^2``: Caffe's bilinear filler convention.

    That kernel is bilinear interpolation in the half-pixel convention (``F.interpolate(..., align_corners=False)``
    in the interior): input entry i is taken to be centred at output position 2i + 0.5, and output x reads the
    input at (x - 0.5) / 2. The sparse cost volume (``upcorr``, :func:`sparse_cost_volume`) is not in that
    convention: its entry i was matched at position 2i, so at initialisation the filled-in volume is shifted by
    half a level-grid pixel (a quarter of the stride 2) towards higher x and y, and a sampled cost is not kept at
    its own position: on a volume linear in x, ``s[i] = 2i`` (its position), interior output x is ``x - 0.5``
    (2i - 0.5 at the sampled x = 2i, not 2i). The first and last output row and column get one input tap only
    (weight 0.75: zero padding). The layer is learnable, so training can absorb the shift; it is kept as it is
    because the weights files and the recorded EPEs were made with it (tests/test_spot65.py pins these values).

    Args:
        channels: C, the channels up-sampled (each on its own: groups = C).

    Returns:
        The layer: (B, C, h, w) → (B, C, 2h, 2w), no bias.
    """
    up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, groups=channels, bias=False)
    f = torch.tensor([0.25, 0.75, 0.75, 0.25])
    with torch.no_grad():
        up.weight.copy_((f[:, None] * f[None, :]).expand(channels, 1, 4, 4))
    return up


class NetC(nn.Module):
    """NetC, Table 8: shared-weight pyramidal feature extractor.

    ``forward(x (B, 3, H, W)) -> [F_1, ..., F_6]`` with F_k of shape (B, C_k, H/2^(k-1), W/2^(k-1))
    (H, W multiples of 32) and C = ``channels`` (32, 32, 64, 96, 128, 192).
    """

    def __init__(self, channels=(32, 32, 64, 96, 128, 192), slope: float = 0.1):
        super().__init__()
        c1, c2, c3, c4, c5, c6 = channels
        self.levels = nn.ModuleList([
            _conv(3, c1, 7, 1, slope),                                                         # conv1
            nn.Sequential(_conv(c1, c2, 3, 2, slope), _conv(c2, c2, 3, 1, slope),
                          _conv(c2, c2, 3, 1, slope)),                                          # conv2_x
            nn.Sequential(_conv(c2, c3, 3, 2, slope), _conv(c3, c3, 3, 1, slope)),             # conv3_x
            nn.Sequential(_conv(c3, c4, 3, 2, slope), _conv(c4, c4, 3, 1, slope)),             # conv4_x
            _conv(c4, c5, 3, 2, slope),                                                        # conv5
            _conv(c5, c6, 3, 2, slope),                                                        # conv6
        ])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature pyramid of one image stream (``../shared/papers/liteflownet2.txt``, Appendix Table 8).

        Args:
            x: (B, 3, H, W) images (:class:`LiteFlowNet2` feeds both images of the pair, stacked, prepared to
                [-0.5, 0.5] and padded to a multiple of 32).

        Returns:
            ``[F_1, ..., F_6]``, F_k (B, C_k, ⌈H/2^(k-1)⌉, ⌈W/2^(k-1)⌉) with C = ``channels``.
        """
        feats = []
        for layer in self.levels:
            x = layer(x)
            feats.append(x)
        return feats


class PyramidLevel(nn.Module):
    """NetE at one pyramid level: cascaded flow inference M:S (Tables 9–10) and regularization R (Table 11).

    Args:
        level: pyramid level k (6 = coarsest).
        channels: NetC channels at this level.
        radius, stride: cost-volume search radius and matching stride (level-grid pixels).
        flow_scale: flow divisor (see the module docstring).
        first: True for the coarsest level (no previous flow: no up-sampling or warping in M).

    ``forward(f1, f2, im1, im2, flow_prev)`` with features (B, C, h, w), images (B, 3, h, w) at this
    level, ``flow_prev`` (B, 2, h/2, w/2) or None → ``(x_m, x_s, x_r)``, each (B, 2, h, w) in
    full-resolution pixels / flow_scale.
    """

    def __init__(self, level: int, channels: int, radius: int, stride: int, flow_scale: float = 20.0,
                 first: bool = False, slope: float = 0.1):
        super().__init__()
        self.level, self.radius, self.stride, self.first = level, int(radius), int(stride), first
        self.px = flow_scale / 2 ** (level - 1)   # internal flow unit → pixels of this level's grid
        last_k = {6: 3, 5: 3, 4: 5, 3: 5, 2: 7}[level]
        omega = {6: 3, 5: 3, 4: 5, 3: 5, 2: 7}[level]
        ncorr = (2 * (self.radius // self.stride) + 1) ** 2
        if not first:
            self.upconv = _bilinear_upconv(2)                                   # upconv_M
        if self.stride > 1:
            self.upcorr = _bilinear_upconv(ncorr)      # sparse → dense cost volume; half-pixel shift at init
        widths = (128, 128, 96, 64, 32)
        self.matching = nn.Sequential(                                          # conv_1_M .. conv_6_M
            *[_conv(a, b, 3, 1, slope) for a, b in zip((ncorr,) + widths[:-1], widths)],
            _conv(widths[-1], 2, last_k, 1, None))
        self.subpixel = nn.Sequential(                                          # conv_1_S .. conv_6_S
            *[_conv(a, b, 3, 1, slope) for a, b in zip((2 * channels + 2,) + widths[:-1], widths)],
            _conv(widths[-1], 2, last_k, 1, None))
        rw = (128, 128, 64, 64, 32, 32)
        self.dist = nn.Sequential(                                              # conv_1_R .. conv_dist_R
            *[_conv(a, b, 3, 1, slope) for a, b in zip((channels + 3,) + rw[:-1], rw)],
            _conv(rw[-1], omega * omega, last_k, 1, None))
        self.omega = omega
        # start from (almost) zero residual flows: facial motions are small, and random first flows of
        # several pixels only add errors the cascade must unlearn (an initialisation choice, not in the paper)
        for head in (self.matching[-1], self.subpixel[-1]):
            nn.init.normal_(head.weight, std=1e-3)
            nn.init.zeros_(head.bias)

    def forward(self, f1, f2, im1, im2, flow_prev=None):
        """NetE at this level: M (Eq. 2–3), S (Eq. 4) and R (Eq. 5–9) of ``../shared/papers/liteflownet2.txt``.

        Args:
            f1, f2: (B, channels, h, w) NetC features of the two images (h, w even when ``stride`` > 1).
            im1, im2: (B, 3, h, w) the prepared images average-pooled to this level (for R's brightness error).
            flow_prev: (B, 2, h/2, w/2) flow of the next coarser level, or None (then, and on the ``first`` level, M
                neither up-samples nor warps).

        Returns:
            ``(x_m, x_s, x_r)``, each (B, 2, h, w) in full-resolution pixels / ``flow_scale``; ``x_r`` is the
            level's output.
        """
        # --- M: descriptor matching (Eq. 2-3)
        if self.first or flow_prev is None:
            flow_up = None
            f2w = f2
        else:
            flow_up = self.upconv(flow_prev)
            f2w = warp(f2, flow_up * self.px)
        if self.stride > 1:
            corr = self.upcorr(sparse_cost_volume(f1, f2w, self.radius, self.stride))
        else:
            corr = cost_volume(f1, f2w, self.radius)
        x_m = self.matching(corr)
        if flow_up is not None:
            x_m = x_m + flow_up
        # --- S: sub-pixel refinement (Eq. 4)
        f2w = warp(f2, x_m * self.px)
        x_s = x_m + self.subpixel(torch.cat([f1, f2w, x_m], 1))
        # --- R: f-lcon regularization (Eq. 5-9)
        occ = (im1 - warp(im2, x_s * self.px)).pow(2).sum(1, keepdim=True).add(1e-12).sqrt()
        x_mean_free = x_s - x_s.mean(dim=(2, 3), keepdim=True)
        d = self.dist(torch.cat([f1, x_mean_free, occ], 1))
        x_r = f_lcon(x_s, f_lcon_filters(d))
        return x_m, x_s, x_r


@dataclass
class LiteFlowNet2Output:
    """Everything :func:`multiscale_loss` needs.

    Attributes:
        flow: (B, 2, H, W) final flow in pixels of the input grid.
        levels: ``[(k, (x_m, x_s, x_r)), ...]`` from level 6 to ``last_level``; each (B, 2, H'/2^(k-1),
            W'/2^(k-1)) in full-resolution pixels / flow_scale, on the padded grid H' x W'.
        padded: (H', W').
        flow_scale: the network's flow divisor.
    """
    flow: torch.Tensor
    levels: list = field(default_factory=list)
    padded: tuple = (0, 0)
    flow_scale: float = 20.0


class LiteFlowNet2(nn.Module):
    """LiteFlowNet2 (module docstring). ``forward(img1, img2) -> (B, 2, H, W)`` flow in pixels.

    Args:
        config: :class:`LiteFlowNet2Config` (None → defaults, ≈ 6.3 M parameters).

    ``forward`` takes images (B, 1|3, H, W) in [0, 1] of equal shape; ``forward_train`` returns a
    :class:`LiteFlowNet2Output` with every intermediate flow for :func:`multiscale_loss`.

    Raises:
        ValueError: mismatched shapes or channel counts.
    """

    multiple = 32  # NetC halves the resolution 5 times

    def __init__(self, config: LiteFlowNet2Config | None = None):
        super().__init__()
        cfg = config or LiteFlowNet2Config()
        self.config = cfg
        self.netc = NetC(tuple(cfg.netc_channels), cfg.leaky_slope)
        self.levels = nn.ModuleList()
        for i, k in enumerate(range(6, cfg.last_level - 1, -1)):
            self.levels.append(PyramidLevel(k, cfg.netc_channels[k - 1], cfg.corr_radius[i], cfg.corr_stride[i],
                                             cfg.flow_scale, first=(k == 6), slope=cfg.leaky_slope))
        self._init_weights()

    def _init_weights(self) -> None:
        """MSRA (He) initialisation of every convolution (fan-in, leaky-ReLU gain), zero biases, as the
        Caffe FlowNet / LiteFlowNet family is trained. PyTorch's default (gain^2 = 1/3 per layer) shrinks
        NetC's level-6 features to std ~0.01 and the cost volume to ~1e-4, so matching carries no signal
        (measured: a model trained 480 steps that way predicted the same flow for every pair). The last
        layers of M and S then start near zero (:class:`PyramidLevel`); the up-sampling transposed
        convolutions keep their bilinear initialisation. NetC's first convolution is then multiplied by
        ``config.netc_init_gain`` (10): MSRA preserves the small scale of the [-0.5, 0.5] images, and the
        cost volume, quadratic in the feature scale, started at ~4e-3 with flow-induced changes of ~1e-4,
        too little for M to learn from in a short budget (:class:`LiteFlowNet2Config`)."""
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, a=self.config.leaky_slope, nonlinearity="leaky_relu")
                nn.init.zeros_(mod.bias)
        with torch.no_grad():
            self.netc.levels[0][0].weight.mul_(float(self.config.netc_init_gain))
        for lvl in self.levels:
            for head in (lvl.matching[-1], lvl.subpixel[-1]):
                nn.init.normal_(head.weight, std=1e-3)

    @staticmethod
    def prepare(img: torch.Tensor) -> torch.Tensor:
        """[0, 1] grey/RGB (B, 1|3, H, W) → (B, 3, H, W) in [-0.5, 0.5]."""
        return rgb01_batch(img) - 0.5

    def forward_train(self, img1: torch.Tensor, img2: torch.Tensor) -> LiteFlowNet2Output:
        """Run NetC and NetE; return the final flow and every level's (x_m, x_s, x_r)."""
        if img1.shape != img2.shape:
            raise ValueError(f"image pair shapes differ: {tuple(img1.shape)} vs {tuple(img2.shape)}")
        x1, x2 = self.prepare(img1), self.prepare(img2)
        h, w = x1.shape[-2:]
        m = self.multiple
        ph, pw = max(m, math.ceil(h / m) * m) - h, max(m, math.ceil(w / m) * m) - w
        if ph or pw:
            x1 = F.pad(x1, (0, pw, 0, ph), mode="replicate")
            x2 = F.pad(x2, (0, pw, 0, ph), mode="replicate")
        feats = self.netc(torch.cat([x1, x2], 0))
        b = x1.shape[0]
        flow, outs = None, []
        for lvl in self.levels:
            k = lvl.level
            f = feats[k - 1]
            im = F.avg_pool2d(torch.cat([x1, x2], 0), 2 ** (k - 1)) if k > 1 else torch.cat([x1, x2], 0)
            x_m, x_s, x_r = lvl(f[:b], f[b:], im[:b], im[b:], flow)
            outs.append((k, (x_m, x_s, x_r)))
            flow = x_r
        k = self.levels[-1].level
        full = F.interpolate(flow, scale_factor=2 ** (k - 1), mode="bilinear", align_corners=False)
        full = full * self.config.flow_scale
        return LiteFlowNet2Output(flow=full[..., :h, :w], levels=outs, padded=(h + ph, w + pw),
                                  flow_scale=self.config.flow_scale)

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Flow from ``img1`` to ``img2``: the ``flow`` of :meth:`forward_train` (``../shared/papers/liteflownet2.txt``
        Sec. 3 and 6.2).

        Args:
            img1, img2: (B, 1 or 3, H, W) images in [0, 1] of equal shape, any H, W >= 1.

        Returns:
            (B, 2, H, W) flow in pixels of the input grid (channel 0 horizontal).

        Raises:
            ValueError: the shapes differ, or the images are not (B, 1 or 3, H, W).
        """
        return self.forward_train(img1, img2).flow

    def config_dict(self) -> dict:
        """``self.config`` as a plain dict (tuples as lists): the ``"config"`` of a weights file
        (:func:`flownet.registry.save_weights`), from which the loader rebuilds the network."""
        d = asdict(self.config)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _epe(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel L2 end-point error (B, h, w) with a finite gradient at zero error."""
    return ((a - b).pow(2).sum(1) + 1e-12).sqrt()


def _pad_to(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    ph, pw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if ph < 0 or pw < 0:
        raise ValueError(f"ground truth {tuple(x.shape[-2:])} is larger than the network grid {size}")
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode=mode) if mode == "replicate" else F.pad(x, (0, pw, 0, ph))


def multiscale_loss(out: LiteFlowNet2Output, gt: torch.Tensor, valid: torch.Tensor | None = None,
                    level_weights=(0.32, 0.08, 0.02, 0.01, 0.005), full_weight: float = 6.25e-4) -> torch.Tensor:
    """LiteFlowNet2 multi-scale training loss (Sec. 6.1 Training Details and Sec. 6.2).

    ``L = sum_k w_k sum_{p in {x_m, x_s, x_r}} sum_x |p(x) - gt_k(x)|_2 v_k(x)
          + w_full sum_x |flow(x) - gt(x)|_2 v(x) / flow_scale``, averaged over the batch, where
    ``gt_k`` is the ground truth divided by ``flow_scale`` (20) and area-down-sampled to level k over its valid
    pixels only (magnitudes are not rescaled: the network's flows are in full-resolution units), ``v_k`` the
    area-down-sampled valid mask (the fraction of valid pixels under each level pixel), ``w_k`` the weight
    of level k (levels 6..2: 0.32, 0.08, 0.02, 0.01, 0.005) and ``w_full`` = 6.25e-4. Padding added by
    the network is invalid. The L2 end-point error is summed over pixels (FlowNet2 / PWC-Net style), so
    the value grows with the image area.

    Args:
        out: :meth:`LiteFlowNet2.forward_train` output.
        gt: (B, 2, H, W) ground-truth flow, pixels.
        valid: (B, H, W) bool/0-1 (None → all valid).

    Returns:
        Scalar tensor (full-resolution pixels / flow_scale, summed over pixels).

    Raises:
        ValueError: shape mismatch.
    """
    if gt.dim() != 4 or gt.shape[1] != 2 or gt.shape != out.flow.shape:
        raise ValueError(f"ground truth {tuple(gt.shape)} does not match the prediction {tuple(out.flow.shape)}")
    b = gt.shape[0]
    v = torch.ones_like(gt[:, 0]) if valid is None else valid.to(gt.dtype)
    if v.shape != gt[:, 0].shape:
        raise ValueError(f"valid {tuple(v.shape)} does not match the flow {tuple(gt.shape)}")
    s = out.flow_scale
    gt_s = _pad_to(gt / s, out.padded, "replicate")
    v_p = _pad_to(v[:, None], out.padded, "zeros")
    total = full_weight * (_epe(out.flow, gt) * v).sum() / (s * b)
    for k, preds in out.levels:
        # levels 6..last_level, and LiteFlowNet2Config refuses last_level < 2: every level is coarser than the input
        # (a level 1 would have no weight: level_weights hold levels 6..2). The mean of the valid pixels under each
        # level pixel: an invalid pixel's flow (0 in .flo and KITTI files, or anything else) does not pull the target
        f = 2 ** (k - 1)
        vk = F.avg_pool2d(v_p, f)
        gk = F.avg_pool2d(gt_s * v_p, f) / vk.clamp_min(1e-6)
        vk = vk[:, 0]
        wk = float(level_weights[6 - k])
        for p in preds:
            total = total + wk * (_epe(p, gk) * vk).sum() / b
    return total
