"""SRFlowNet: a small RAFT-family facial optical-flow network with an SKFlow-style update block.

Built from :mod:`torchvision.models.optical_flow.raft`'s composable parts (SRFlow paper, Sec. IV-A:
SKFlow backbone): ``FeatureEncoder`` (feature and context encoders, 1/8 resolution), ``CorrBlock``
(all-pairs correlation pyramid), ``RecurrentBlock`` (separable ConvGRU), ``FlowHead`` and
``MaskPredictor`` (convex 8x upsampling), passed to torchvision's ``RAFT`` constructor. The update
block's motion encoder is replaced by :class:`SKMotionEncoder`, whose correlation and flow branches are
refined by SKFlow's "super kernels": a large depth-wise kernel (default 15x15) summed with a small one
(1x1), followed by a point-wise feed-forward layer, each with a residual connection
(:class:`SuperKernelBlock`).

Input handling (what torchvision's RAFT needs and how :class:`SRFlowNet` provides it):

* RAFT expects 3-channel RGB in [-1, 1]: :meth:`SRFlowNet.forward` takes images in **[0, 1]**, (B, 1, H, W)
  grey or (B, 3, H, W) RGB; grey is repeated to 3 channels, then ``x * 2 - 1``.
* RAFT needs H and W divisible by 8, and the correlation pyramid needs the 1/8 feature map to be at
  least ``2 * 2**(levels - 1)`` (16 for 4 levels, i.e. 128 px input): inputs are replicate-padded
  (right and bottom) up to that, and the flow is cropped back. Any H, W >= 1 works.
* Output: list (one per iteration) of (B, 2, H, W) flows in pixels of the input grid; the last is the
  final estimate. Differentiable end to end with respect to both images (RAFT detaches only its
  coordinate feedback between iterations, as in the original).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.optical_flow.raft import (RAFT, CorrBlock, FeatureEncoder, FlowHead,
                                                  MaskPredictor, RecurrentBlock, ResidualBlock)

__all__ = ["SRFlowNetConfig", "SuperKernelBlock", "SKMotionEncoder", "SKUpdateBlock", "SRFlowNet"]


@dataclass
class SRFlowNetConfig:
    """Architecture hyper-parameters (all stored in checkpoints).

    Defaults give 1.37 M parameters: fast enough for 128x128 and 256x256 crops on a 2-core CPU.
    """
    feature_layers: tuple[int, ...] = (32, 32, 48, 64, 96)     #: FeatureEncoder widths (last = correlation features)
    context_layers: tuple[int, ...] = (32, 32, 48, 64, 128)    #: context encoder; last = hidden + context channels
    hidden: int = 64                                 #: GRU hidden state size
    corr_levels: int = 3                             #: correlation pyramid levels (min input 8*2*2**(L-1) px, padded)
    corr_radius: int = 3                             #: look-up radius (per level)
    motion_channels: int = 80                        #: motion-encoder output (incl. the 2 flow channels)
    super_kernel: int = 15                           #: large depth-wise kernel size (SKFlow uses 15)
    small_kernel: int = 1                            #: small parallel depth-wise kernel
    flow_head_hidden: int = 96
    mask_hidden: int = 96
    iters: int = 8                                   #: default number of recurrent updates


class SuperKernelBlock(nn.Module):
    """SKFlow-style super-kernel block on (B, C, h, w) features (shape preserved).

    ``x = x + PW(GELU(DW_k(x) + DW_s(x)))`` then ``x = x + FFN(x)``, where ``DW_k`` is a depth-wise k x k
    convolution (the "super kernel", large receptive field at little cost), ``DW_s`` a small depth-wise
    kernel, ``PW`` a 1x1 convolution and FFN two 1x1 convolutions (expansion 2) with GELU.
    """

    def __init__(self, channels: int, kernel: int = 15, small: int = 1):
        super().__init__()
        if kernel % 2 == 0 or small % 2 == 0:
            raise ValueError(f"kernel sizes must be odd, got {kernel} and {small}")
        self.dw_large = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.dw_small = nn.Conv2d(channels, channels, small, padding=small // 2, groups=channels)
        self.pw = nn.Conv2d(channels, channels, 1)
        self.ffn = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.GELU(),
                                 nn.Conv2d(2 * channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pw(F.gelu(self.dw_large(x) + self.dw_small(x)))
        return x + self.ffn(x)


class SKMotionEncoder(nn.Module):
    """Motion encoder with super kernels (SKFlow's SKMotionEncoder, reduced).

    Inputs ``flow`` (B, 2, h, w) at 1/8 resolution (pixels of that grid) and ``corr_features``
    (B, levels*(2r+1)^2, h, w). Output (B, out_channels, h, w): encoded motion with the flow appended as
    the last 2 channels (the interface torchvision's update block expects).
    """

    def __init__(self, *, in_channels_corr: int, out_channels: int = 80, kernel: int = 15, small: int = 1):
        super().__init__()
        c_corr, c_flow = 64, 32
        self.convc1 = nn.Sequential(nn.Conv2d(in_channels_corr, c_corr, 1), nn.GELU())
        self.skc = SuperKernelBlock(c_corr, kernel, small)
        self.convf1 = nn.Sequential(nn.Conv2d(2, c_flow, 7, padding=3), nn.GELU())
        self.skf = SuperKernelBlock(c_flow, kernel, small)
        self.conv = nn.Sequential(nn.Conv2d(c_corr + c_flow, out_channels - 2, 3, padding=1), nn.GELU())
        self.out_channels = out_channels

    def forward(self, flow: torch.Tensor, corr_features: torch.Tensor) -> torch.Tensor:
        c = self.skc(self.convc1(corr_features))
        f = self.skf(self.convf1(flow))
        return torch.cat([self.conv(torch.cat([c, f], 1)), flow], 1)


class SKUpdateBlock(nn.Module):
    """Update block: SK motion encoder → super-kernel aggregation of [context, motion] → torchvision
    ``RecurrentBlock`` (separable ConvGRU) → ``FlowHead``. Exposes ``hidden_state_size`` for RAFT.

    forward(hidden (B, hidden, h, w), context (B, Cc, h, w), corr (B, Ccorr, h, w), flow (B, 2, h, w))
    → (new hidden, delta_flow (B, 2, h, w) in 1/8-grid pixels).
    """

    def __init__(self, *, motion_encoder: SKMotionEncoder, context_channels: int, hidden: int,
                 kernel: int, small: int, flow_head_hidden: int):
        super().__init__()
        self.motion_encoder = motion_encoder
        c_in = context_channels + motion_encoder.out_channels
        self.aggregate = SuperKernelBlock(c_in, kernel, small)
        self.recurrent_block = RecurrentBlock(input_size=c_in, hidden_size=hidden)
        self.flow_head = FlowHead(in_channels=hidden, hidden_size=flow_head_hidden)
        # start from (almost) zero updates: facial motions are small, and a random first flow only
        # adds large errors the network must unlearn
        nn.init.normal_(self.flow_head.conv2.weight, std=1e-3)
        nn.init.zeros_(self.flow_head.conv2.bias)
        self.hidden_state_size = hidden

    def forward(self, hidden_state, context, corr_features, flow):
        motion = self.motion_encoder(flow, corr_features)
        x = self.aggregate(torch.cat([context, motion], 1))
        hidden_state = self.recurrent_block(hidden_state, x)
        return hidden_state, self.flow_head(hidden_state)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class SRFlowNet(nn.Module):
    """SRFlowNet (see module docstring). ``forward(img1, img2, iters=None) -> list[(B, 2, H, W)]``.

    Args:
        config: :class:`SRFlowNetConfig` (or None for the defaults).

    ``forward`` arguments: images (B, 1 or 3, H, W) float in [0, 1] (same shape), ``iters`` recurrent
    updates (default ``config.iters``). Raises ValueError for mismatched shapes or channel counts.
    """

    def __init__(self, config: SRFlowNetConfig | None = None):
        super().__init__()
        cfg = config or SRFlowNetConfig()
        self.config = cfg
        feat = FeatureEncoder(block=ResidualBlock, layers=tuple(cfg.feature_layers), norm_layer=nn.InstanceNorm2d)
        ctx = FeatureEncoder(block=ResidualBlock, layers=tuple(cfg.context_layers), norm_layer=_group_norm)
        corr = CorrBlock(num_levels=cfg.corr_levels, radius=cfg.corr_radius)
        menc = SKMotionEncoder(in_channels_corr=corr.out_channels, out_channels=cfg.motion_channels,
                               kernel=cfg.super_kernel, small=cfg.small_kernel)
        upd = SKUpdateBlock(motion_encoder=menc, context_channels=cfg.context_layers[-1] - cfg.hidden,
                            hidden=cfg.hidden, kernel=cfg.super_kernel, small=cfg.small_kernel,
                            flow_head_hidden=cfg.flow_head_hidden)
        mask = MaskPredictor(in_channels=cfg.hidden, hidden_size=cfg.mask_hidden, multiplier=0.25)
        self.raft = RAFT(feature_encoder=feat, context_encoder=ctx, corr_block=corr,
                         update_block=upd, mask_predictor=mask)
        # smallest 1/8 feature map the pyramid accepts, in input pixels
        self.min_size = 8 * 2 * 2 ** (cfg.corr_levels - 1)

    @staticmethod
    def prepare(img: torch.Tensor) -> torch.Tensor:
        """[0, 1] grey/RGB (B, 1|3, H, W) → RAFT input (B, 3, H, W) in [-1, 1]."""
        if img.dim() != 4 or img.shape[1] not in (1, 3):
            raise ValueError(f"images must be (B, 1 or 3, H, W) in [0, 1], got {tuple(img.shape)}")
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        return img.float() * 2.0 - 1.0

    def forward(self, img1: torch.Tensor, img2: torch.Tensor, iters: int | None = None) -> list[torch.Tensor]:
        if img1.shape != img2.shape:
            raise ValueError(f"image pair shapes differ: {tuple(img1.shape)} vs {tuple(img2.shape)}")
        x1, x2 = self.prepare(img1), self.prepare(img2)
        h, w = x1.shape[-2:]
        ph = max(self.min_size, math.ceil(h / 8) * 8) - h
        pw = max(self.min_size, math.ceil(w / 8) * 8) - w
        if ph or pw:
            x1 = F.pad(x1, (0, pw, 0, ph), mode="replicate")
            x2 = F.pad(x2, (0, pw, 0, ph), mode="replicate")
        flows = self.raft(x1, x2, num_flow_updates=int(iters or self.config.iters))
        if ph or pw:
            flows = [f[..., :h, :w] for f in flows]
        return flows

    def config_dict(self) -> dict:
        d = asdict(self.config)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
