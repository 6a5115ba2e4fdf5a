"""SRFlowNet: a small RAFT-family facial optical-flow network with an SKFlow-style update block.

Built from :mod:`torchvision.models.optical_flow.raft`'s composable parts (SRFlow paper, Sec. IV-A:
SKFlow backbone): ``FeatureEncoder`` (feature and context encoders, 1/8 resolution), ``CorrBlock``
(all-pairs correlation pyramid), ``RecurrentBlock`` (separable ConvGRU), ``FlowHead`` and
``MaskPredictor`` (convex 8x upsampling), passed to torchvision's ``RAFT`` constructor. The update
block's motion encoder is replaced by :class:`SKMotionEncoder`, whose correlation and flow branches are
refined by SKFlow-style "super kernels" (:class:`SuperKernelBlock`): the outputs of a large depth-wise kernel
(default 15x15) and a small one (1x1) on the same input are **summed** (one branch, computed as a single
depth-wise convolution), then a point-wise layer, then a point-wise feed-forward layer, each step with a residual
connection. This is not SKFlow's own block: SKFlow's ``PCBlock4_Deep_nopool_res`` applies its depth-wise kernels
**one after the other** (``x = gelu(x + conv(x))`` for each kernel, between two feed-forward layers) and merges no
kernels.

Input handling (what torchvision's RAFT needs and how :class:`SRFlowNet` provides it):

* RAFT expects 3-channel RGB in [-1, 1]: :meth:`SRFlowNet.forward` takes images in **[0, 1]**, (B, 1, H, W)
  grey or (B, 3, H, W) RGB; grey is repeated to 3 channels, then ``x * 2 - 1``.
* The feature grid is 1/``downsample`` of the input (1/8 as RAFT, or 1/4): H and W must divide by it, and the
  correlation pyramid needs the feature map to be at least ``2 * 2**(levels - 1)`` cells (16 for 4 levels, i.e.
  128 px input at 1/8): inputs are replicate-padded
  (right and bottom) up to that, and the flow is cropped back. Any H, W >= 1 works.
* Output: list (one per iteration) of (B, 2, H, W) flows in pixels of the input grid; the last is the
  final estimate. Differentiable end to end with respect to both images (RAFT detaches only its
  coordinate feedback between iterations, as in the original).
"""
from __future__ import annotations

import contextlib
import hashlib
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.optical_flow._utils import make_coords_grid, upsample_flow
from torchvision.models.optical_flow.raft import (RAFT, CorrBlock, FeatureEncoder, FlowHead, RecurrentBlock,
                                                  ResidualBlock)
from torchvision.ops import Conv2dNormActivation

from ..user_numbers import check_non_negative
from .inputs import rgb01_batch, update_count

__all__ = ["SRFlowNetConfig", "InstanceNorm2dFast", "depthwise_conv", "SuperKernelBlock", "ConvexMaskPredictor",
           "SKMotionEncoder", "SKUpdateBlock", "SRFlowNet", "FirstImageCache", "check_non_negative",
           "INFERENCE_ONLY_KEYS", "architecture_differences"]

#: SRFlowNet config keys that set no weight (``iters``: the default update count at inference; the shipped weights
#: are saved with 2): left out when two architectures are compared (:func:`architecture_differences`)
INFERENCE_ONLY_KEYS = ("iters",)


def architecture_differences(theirs: dict, ours: dict) -> list[str]:
    """The keys of two :meth:`SRFlowNet.config_dict` dicts whose values differ, sorted, leaving out
    :data:`INFERENCE_ONLY_KEYS`: empty when weights of one architecture load into the other (init weights,
    DecFlow's init)."""
    return [k for k in sorted(set(theirs) | set(ours)) if k not in INFERENCE_ONLY_KEYS and theirs.get(k) != ours.get(k)]


@dataclass
class SRFlowNetConfig:
    """Architecture hyper-parameters (all stored in checkpoints).

    Defaults give 1.37 M parameters: fast enough for 128x128 and 256x256 crops on a 2-core CPU.

    Raises:
        ValueError: a negative setting, or a layer width, ``corr_levels`` or ``iters`` below 1 (``motion_channels``
            below 3), naming the key as ``model.<key>`` (an item of ``feature_layers`` / ``context_layers`` as
            ``model.feature_layers[<index>]``); a last ``context_layers`` width below ``hidden`` (it holds the
            hidden state and the context channels; equal: no context channels), naming both; kernel sizes,
            ``downsample`` and the number of widths (5) are checked by :class:`SRFlowNet`.
    """
    feature_layers: tuple[int, ...] = (32, 32, 48, 64, 96)     #: FeatureEncoder widths (last = correlation features)
    context_layers: tuple[int, ...] = (32, 32, 48, 64, 128)    #: context encoder; last = hidden + context channels
    hidden: int = 64                                 #: GRU hidden state size
    corr_levels: int = 3                             #: pyramid levels (min input downsample*2*2**(L-1) px, padded)
    corr_radius: int = 3                             #: look-up radius (per level)
    motion_channels: int = 80                        #: motion-encoder output (incl. the 2 flow channels)
    super_kernel: int = 15                           #: large depth-wise kernel size (SKFlow uses 15)
    small_kernel: int = 1                            #: small parallel depth-wise kernel
    flow_head_hidden: int = 96
    mask_hidden: int = 96
    iters: int = 8                                   #: default number of recurrent updates
    downsample: int = 8                              #: feature grid = input / downsample (8 as RAFT, or 4)
    motion_corr_channels: int = 64                   #: motion encoder: correlation branch width
    motion_flow_channels: int = 32                   #: motion encoder: flow branch width
    gru_kernel: int = 5                              #: separable ConvGRU kernel length (1xk then kx1)
    ffn_expansion: int = 2                           #: super-kernel block feed-forward expansion

    def __post_init__(self):
        check_non_negative(self, "model", (
            "hidden", "corr_levels", "corr_radius", "motion_channels", "super_kernel", "small_kernel",
            "flow_head_hidden", "mask_hidden", "iters", "downsample", "motion_corr_channels", "motion_flow_channels",
            "gru_kernel", "ffn_expansion"))
        # a layer of 0 channels (or 0 pyramid levels, 0 updates) passed here and failed inside torch; the motion
        # encoder's output holds the 2 flow channels besides at least one of its own
        low = {"motion_channels": 3, "hidden": 1, "corr_levels": 1, "flow_head_hidden": 1, "mask_hidden": 1,
               "iters": 1, "motion_corr_channels": 1, "motion_flow_channels": 1, "ffn_expansion": 1}
        for key, least in low.items():
            if getattr(self, key) < least:
                raise ValueError(f"model.{key} must be >= {least}, got {getattr(self, key)}")
        for key in ("feature_layers", "context_layers"):         # a width of 0 failed inside torch's conv.py
            for i, width in enumerate(getattr(self, key)):
                if width < 1:
                    raise ValueError(f"model.{key}[{i}] must be >= 1, got {width}")
        last = len(self.context_layers) - 1     # hidden state + context channels: narrower failed in torch.split
        if last >= 0 and self.context_layers[last] < self.hidden:
            raise ValueError(f"model.context_layers[{last}] ({self.context_layers[last]}) must be >= model.hidden "
                             f"({self.hidden}): the last context width holds the GRU's hidden state and the context "
                             f"channels (model.context_layers[{last}] - model.hidden of them)")

    @classmethod
    def face(cls) -> "SRFlowNetConfig":
        """A light 1/4-grid configuration for face crops, tested, with no shipped weights: the shipped files
        (``flownet/weights/srflownet_*.pt``) hold the defaults' architecture with ``iters`` 2 (docs/benchmarks.md,
        "Facial optical flow: SRFlowNet core", on why this one was not kept).

        1/4 feature grid (4 px cells: action-unit bumps of a few pixels are resolved and sub-pixel
        motion is easier to read from the correlation volume than on RAFT's 1/8 grid), 2 pyramid levels
        of radius 3 (look-up reach +-3 cells = +-12 px at level 0, +-24 px at level 1: facial motion is
        <= ~5 px), narrow encoders and update block, 4 updates; 15x15 super kernels as SKFlow.
        """
        return cls(feature_layers=(24, 24, 48, 48, 64), context_layers=(24, 24, 48, 48, 96), hidden=48,
                   corr_levels=2, corr_radius=3, motion_channels=64, super_kernel=15, small_kernel=1,
                   flow_head_hidden=64, mask_hidden=64, iters=4, downsample=4, motion_corr_channels=48,
                   motion_flow_channels=16, gru_kernel=3, ffn_expansion=1)


class _DepthwiseConv(torch.autograd.Function):
    """Depth-wise 2-D convolution (stride 1, zero "same" padding) with a fast CPU path.

    Forward runs ``F.conv2d(groups=C)`` on a channels-last copy of the input (oneDNN's depth-wise kernel
    is 15-50x faster in that layout on this CPU for 15x15 kernels on 16x16-32x32 maps, measured with
    ``runs/flow_core``'s probes); backward computes the input gradient as the same depth-wise convolution
    with the flipped kernel and the weight gradient as one grouped convolution of the padded input with
    the output gradient (5-8x faster than autograd's default for these shapes). Same values as
    ``F.conv2d`` up to float rounding (tested).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, pad: int):
        ctx.save_for_backward(x, weight)
        ctx.pad = pad
        return F.conv2d(x.contiguous(memory_format=torch.channels_last), weight, bias, padding=pad,
                        groups=weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x_in, weight = ctx.saved_tensors
        p, c = ctx.pad, weight.shape[0]
        b, _, h, w = x_in.shape
        # in the weight's precision: under autocast the output, hence `grad`, is bf16/fp16 while the weight (and
        # maybe the input) is float32, and one convolution needs one dtype (the joint loss through SRFlowNet failed
        # on CUDA); each gradient is returned in its input's dtype
        dt = weight.dtype
        grad = grad.to(dt).contiguous(memory_format=torch.channels_last)
        x = x_in.to(dt)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = F.conv2d(grad, weight.flip(-1, -2), padding=p, groups=c).to(x_in.dtype)
        if ctx.needs_input_grad[1]:
            xp = F.pad(x, (p, p, p, p)).transpose(0, 1).reshape(1, c * b, h + 2 * p, w + 2 * p)
            g = grad.transpose(0, 1).reshape(c * b, 1, h, w)
            gw = F.conv2d(xp.contiguous(memory_format=torch.channels_last),
                          g.contiguous(memory_format=torch.channels_last), groups=c * b)
            gw = gw.view(c, b, 2 * p + 1, 2 * p + 1).sum(1, keepdim=True)
        if ctx.needs_input_grad[2]:
            gb = grad.sum((0, 2, 3))
        return gx, gw, gb, None


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Depth-wise "same" convolution: x (B, C, H, W), weight (C, 1, k, k) with odd k, bias (C,) or None
    → (B, C, H, W). Equal to ``F.conv2d(x, weight, bias, padding=k // 2, groups=C)``, faster on CPU
    (:class:`_DepthwiseConv`). On any other device it is that ``F.conv2d``: the custom backward was measured on a
    CPU only, and its weight gradient, one grouped convolution of C x B groups, is not what GPU kernels are made for.

    Raises:
        ValueError: non-square / even kernel or channel mismatch.
    """
    c, one, kh, kw = weight.shape
    if one != 1 or kh != kw or kh % 2 == 0 or x.shape[1] != c:
        raise ValueError(f"depthwise_conv: weight {tuple(weight.shape)} must be (C, 1, k, k), k odd, "
                         f"C = input channels {x.shape[1]}")
    if x.device.type != "cpu":
        return F.conv2d(x, weight, bias, padding=kh // 2, groups=c)
    if bias is None:
        bias = weight.new_zeros(c)
    return _DepthwiseConv.apply(x, weight, bias, kh // 2)


class SuperKernelBlock(nn.Module):
    """SKFlow-style super-kernel block on (B, C, h, w) features (shape preserved).

    ``x = x + PW(GELU(DW_k(x) + DW_s(x)))`` then ``x = x + FFN(x)``, where ``DW_k`` is a depth-wise k x k
    convolution (the "super kernel", large receptive field at little cost), ``DW_s`` a small depth-wise
    kernel applied to the same ``x`` (the two branches are summed, in parallel), ``PW`` a 1x1 convolution and
    FFN two 1x1 convolutions (expansion ``ffn_expansion``) with GELU.

    ``DW_k(x) + DW_s(x)`` is computed as one depth-wise convolution whose kernel is the large kernel
    plus the small one added at its centre (the two are linear with the same "same" padding, so this is
    exact: a merge of two parallel linear branches, as in RepLKNet's structural re-parameterisation), through
    :func:`depthwise_conv`. SKFlow's block (``PCBlock4_Deep_nopool_res``) differs: it applies its depth-wise
    kernels in sequence, ``x = GELU(x + DW(x))`` for each, between two feed-forward layers, with no merged
    kernel; this block keeps SKFlow's large + small kernel sizes but not that ordering.
    """

    def __init__(self, channels: int, kernel: int = 15, small: int = 1, ffn_expansion: int = 2):
        super().__init__()
        if kernel % 2 == 0 or small % 2 == 0 or small > kernel:
            raise ValueError(f"kernel sizes must be odd with small <= kernel, got {kernel} and {small}")
        self.dw_large = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.dw_small = nn.Conv2d(channels, channels, small, padding=small // 2, groups=channels)
        self.pw = nn.Conv2d(channels, channels, 1)
        e = int(ffn_expansion) * channels
        self.ffn = nn.Sequential(nn.Conv2d(channels, e, 1), nn.GELU(), nn.Conv2d(e, channels, 1))

    def merged_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (C, 1, k, k), bias (C,)) of the single depth-wise convolution equal to DW_k + DW_s."""
        d = (self.dw_large.kernel_size[0] - self.dw_small.kernel_size[0]) // 2
        w = self.dw_large.weight + F.pad(self.dw_small.weight, (d, d, d, d))
        return w, self.dw_large.bias + self.dw_small.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + PW(GELU(DW_k(x) + DW_s(x)))``, then ``+ FFN`` (class docstring: super kernels after SKFlow, the
        backbone of ``../shared/papers/srflow_srflownet_facial_flow.txt`` Sec. IV-A, summed rather than chained).

        Args:
            x: (B, channels, h, w) features.

        Returns:
            (B, channels, h, w).
        """
        w, b = self.merged_kernel()
        x = x + self.pw(F.gelu(depthwise_conv(x, w, b)))
        return x + self.ffn(x)


class SKMotionEncoder(nn.Module):
    """Motion encoder with super kernels (SKFlow's SKMotionEncoder, reduced).

    Inputs ``flow`` (B, 2, h, w) on the feature grid (pixels of that grid) and ``corr_features``
    (B, levels*(2r+1)^2, h, w). Output (B, out_channels, h, w): encoded motion with the flow appended as
    the last 2 channels (the interface torchvision's update block expects).
    """

    def __init__(self, *, in_channels_corr: int, out_channels: int = 80, kernel: int = 15, small: int = 1,
                 corr_channels: int = 64, flow_channels: int = 32, ffn_expansion: int = 2):
        super().__init__()
        c_corr, c_flow = corr_channels, flow_channels
        self.convc1 = nn.Sequential(nn.Conv2d(in_channels_corr, c_corr, 1), nn.GELU())
        self.skc = SuperKernelBlock(c_corr, kernel, small, ffn_expansion)
        self.convf1 = nn.Sequential(nn.Conv2d(2, c_flow, 7, padding=3), nn.GELU())
        self.skf = SuperKernelBlock(c_flow, kernel, small, ffn_expansion)
        self.conv = nn.Sequential(nn.Conv2d(c_corr + c_flow, out_channels - 2, 3, padding=1), nn.GELU())
        self.out_channels = out_channels

    def forward(self, flow: torch.Tensor, corr_features: torch.Tensor) -> torch.Tensor:
        """Encode the current flow and its correlation look-up.

        Args:
            flow: (B, 2, h, w) current flow on the feature grid (pixels of that grid).
            corr_features: (B, in_channels_corr, h, w) correlation features (levels·(2r+1)² channels).

        Returns:
            (B, out_channels, h, w): out_channels − 2 encoded motion channels, then ``flow`` unchanged.
        """
        c = self.skc(self.convc1(corr_features))
        f = self.skf(self.convf1(flow))
        return torch.cat([self.conv(torch.cat([c, f], 1)), flow], 1)


class SKUpdateBlock(nn.Module):
    """Update block: SK motion encoder → super-kernel aggregation of [context, motion] → torchvision
    ``RecurrentBlock`` (separable ConvGRU, 1xk then kx1) → ``FlowHead``. Exposes ``hidden_state_size``.

    forward(hidden (B, hidden, h, w), context (B, Cc, h, w), corr (B, Ccorr, h, w), flow (B, 2, h, w))
    → (new hidden, delta_flow (B, 2, h, w) in feature-grid pixels).
    """

    def __init__(self, *, motion_encoder: SKMotionEncoder, context_channels: int, hidden: int,
                 kernel: int, small: int, flow_head_hidden: int, gru_kernel: int = 5, ffn_expansion: int = 2):
        super().__init__()
        if gru_kernel % 2 == 0:
            raise ValueError(f"gru_kernel must be odd, got {gru_kernel}")
        self.motion_encoder = motion_encoder
        c_in = context_channels + motion_encoder.out_channels
        self.aggregate = SuperKernelBlock(c_in, kernel, small, ffn_expansion)
        k, p = int(gru_kernel), int(gru_kernel) // 2
        self.recurrent_block = RecurrentBlock(input_size=c_in, hidden_size=hidden, kernel_size=((1, k), (k, 1)),
                                              padding=((0, p), (p, 0)))
        self.flow_head = FlowHead(in_channels=hidden, hidden_size=flow_head_hidden)
        # start from (almost) zero updates: facial motions are small, and a random first flow only
        # adds large errors the network must unlearn
        nn.init.normal_(self.flow_head.conv2.weight, std=1e-3)
        nn.init.zeros_(self.flow_head.conv2.bias)
        self.hidden_state_size = hidden

    def forward(self, hidden_state, context, corr_features, flow):
        """One recurrent update: motion encoding, aggregation with the context, ConvGRU step, flow head.

        Args:
            hidden_state: (B, hidden, h, w) GRU state.
            context: (B, context_channels, h, w) context features.
            corr_features: (B, levels·(2r+1)², h, w) correlation look-up at the current flow.
            flow: (B, 2, h, w) current flow, pixels of the feature grid.

        Returns:
            ``(hidden_state, delta_flow)``: the new (B, hidden, h, w) state and the (B, 2, h, w) flow update in
            feature-grid pixels.
        """
        motion = self.motion_encoder(flow, corr_features)
        x = self.aggregate(torch.cat([context, motion], 1))
        hidden_state = self.recurrent_block(hidden_state, x)
        return hidden_state, self.flow_head(hidden_state)


class ConvexMaskPredictor(nn.Module):
    """Convex-upsampling mask predictor (RAFT, torchvision ``MaskPredictor``) for any factor.

    hidden (B, in_channels, h, w) → (B, 9 * factor**2, h, w) logits times ``multiplier`` (0.25 as RAFT,
    which down-weights this branch's gradients). Same parameter names as torchvision's ``MaskPredictor``
    (whose factor is fixed to 8), so factor-8 weights load unchanged.
    """

    def __init__(self, *, in_channels: int, hidden_size: int, factor: int = 8, multiplier: float = 0.25):
        super().__init__()
        self.convrelu = Conv2dNormActivation(in_channels, hidden_size, norm_layer=None, kernel_size=3)
        self.conv = nn.Conv2d(hidden_size, factor * factor * 9, 1, padding=0)
        self.multiplier = multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convex-upsampling mask logits of every coarse cell.

        Args:
            x: (B, in_channels, h, w) GRU hidden state.

        Returns:
            (B, 9·factor², h, w) logits times ``multiplier``; torchvision's ``upsample_flow`` takes the softmax over
            each cell's 9 neighbours.
        """
        return self.multiplier * self.conv(self.convrelu(x))


class InstanceNorm2dFast(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (no affine weights, no running statistics) computed as a group norm with one
    group per channel: the same normalisation (per sample and channel over H x W, biased variance, same
    eps) and the same gradients, with no state-dict entries, but 14x faster on a CPU (1 thread, input
    (2, 32, 64, 64): 0.17 ms against 2.4 ms for ``F.instance_norm``). x (B, C, H, W) → same shape.
    Other settings (affine, running statistics, not 4-D) fall back to ``nn.InstanceNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Instance normalisation of ``x`` (class docstring).

        Args:
            x: (B, C, H, W), normalised per sample and channel over H × W; another shape, or an affine or
                running-statistics module, goes through ``nn.InstanceNorm2d.forward``.

        Returns:
            Tensor of ``x``'s shape.
        """
        if self.affine or self.track_running_stats or x.dim() != 4:
            return super().forward(x)
        return F.group_norm(x, x.shape[1], eps=self.eps)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class SRFlowNet(nn.Module):
    """SRFlowNet (see module docstring). ``forward(img1, img2, iters=None) -> list[(B, 2, H, W)]``.

    Args:
        config: :class:`SRFlowNetConfig` (or None for the defaults, the shipped weights' architecture;
            :meth:`SRFlowNetConfig.face` is a light 1/4-grid configuration).

    ``forward`` arguments: images (B, 1 or 3, H, W) float in [0, 1] (same shape), ``iters`` recurrent
    updates (default ``config.iters``), ``all_flows``: return every iteration's upsampled flow (needed
    by the sequence loss; default: in training mode). Otherwise (eval mode) only the final flow is
    upsampled and the list has one element. Raises ValueError for mismatched shapes or channel counts.
    """

    def __init__(self, config: SRFlowNetConfig | None = None):
        super().__init__()
        cfg = config or SRFlowNetConfig()
        if cfg.downsample not in (4, 8):
            raise ValueError(f"SRFlowNetConfig.downsample must be 4 or 8, got {cfg.downsample}")
        if len(cfg.feature_layers) != 5 or len(cfg.context_layers) != 5:
            raise ValueError("SRFlowNetConfig.feature_layers / context_layers need 5 widths each")
        if cfg.super_kernel % 2 == 0 or cfg.small_kernel % 2 == 0 or cfg.small_kernel > cfg.super_kernel:
            raise ValueError(f"SRFlowNetConfig.super_kernel={cfg.super_kernel}, small_kernel={cfg.small_kernel}: "
                             "both must be odd, with small_kernel <= super_kernel (e.g. 15 and 1)")
        if cfg.gru_kernel % 2 == 0:
            raise ValueError(f"SRFlowNetConfig.gru_kernel={cfg.gru_kernel} must be odd (e.g. 3 or 5)")
        strides = (2, 1, 2, 2) if cfg.downsample == 8 else (2, 1, 2, 1)
        for name, lay in (("feature_layers", cfg.feature_layers), ("context_layers", cfg.context_layers)):
            if lay[0] != lay[1] or (cfg.downsample == 4 and lay[2] != lay[3]):
                raise ValueError(f"SRFlowNetConfig.{name}={tuple(lay)}: widths around a stride-1 stage must "
                                 f"be equal (layers[0] == layers[1]{', layers[2] == layers[3]' if cfg.downsample == 4 else ''})")
        self.config = cfg
        feat = FeatureEncoder(block=ResidualBlock, layers=tuple(cfg.feature_layers), strides=strides,
                              norm_layer=InstanceNorm2dFast)
        ctx = FeatureEncoder(block=ResidualBlock, layers=tuple(cfg.context_layers), strides=strides,
                             norm_layer=_group_norm)
        corr = CorrBlock(num_levels=cfg.corr_levels, radius=cfg.corr_radius)
        menc = SKMotionEncoder(in_channels_corr=corr.out_channels, out_channels=cfg.motion_channels,
                               kernel=cfg.super_kernel, small=cfg.small_kernel,
                               corr_channels=cfg.motion_corr_channels, flow_channels=cfg.motion_flow_channels,
                               ffn_expansion=cfg.ffn_expansion)
        upd = SKUpdateBlock(motion_encoder=menc, context_channels=cfg.context_layers[-1] - cfg.hidden,
                            hidden=cfg.hidden, kernel=cfg.super_kernel, small=cfg.small_kernel,
                            flow_head_hidden=cfg.flow_head_hidden, gru_kernel=cfg.gru_kernel,
                            ffn_expansion=cfg.ffn_expansion)
        mask = ConvexMaskPredictor(in_channels=cfg.hidden, hidden_size=cfg.mask_hidden, factor=cfg.downsample)
        # torchvision's RAFT holds the parts (parameter names as before); the iteration loop is ours so
        # that the grid factor can be 4 and inference upsamples only the final flow
        self.raft = RAFT(feature_encoder=feat, context_encoder=ctx, corr_block=corr,
                         update_block=upd, mask_predictor=mask)
        # smallest feature map the pyramid accepts, in input pixels
        self.min_size = cfg.downsample * 2 * 2 ** (cfg.corr_levels - 1)

    @staticmethod
    def prepare(img: torch.Tensor) -> torch.Tensor:
        """[0, 1] grey/RGB (B, 1|3, H, W) → RAFT input (B, 3, H, W) in [-1, 1]."""
        return rgb01_batch(img) * 2.0 - 1.0

    def _refine(self, x1: torch.Tensor, x2: torch.Tensor, iters: int, all_flows: bool) -> list[torch.Tensor]:
        """RAFT's recurrence (torchvision ``RAFT.forward``) on a 1/``downsample`` grid."""
        r, k = self.raft, self.config.downsample
        b, _, h, w = x1.shape
        cache = getattr(self, "_first_cache", None)
        if cache is not None and not torch.is_grad_enabled() and not self.training \
                and not torch.compiler.is_compiling():
            fmap1, fmap2, ctx = cache.encode(r, x1, x2)
        else:
            fmap1, fmap2 = torch.chunk(r.feature_encoder(torch.cat([x1, x2], 0)), 2, dim=0)
            ctx = r.context_encoder(x1)
        r.corr_block.build_pyramid(fmap1, fmap2)
        hidden, context = torch.split(ctx, [self.config.hidden, self.config.context_layers[-1] - self.config.hidden], 1)
        hidden, context = torch.tanh(hidden), F.relu(context)
        coords0 = make_coords_grid(b, h // k, w // k).to(fmap1.device)
        coords1 = coords0.clone()
        out = []
        for i in range(iters):
            coords1 = coords1.detach()  # RAFT: no gradient through the coordinate feedback
            corr = r.corr_block.index_pyramid(centroids_coords=coords1)
            hidden, delta = r.update_block(hidden, context, corr, coords1 - coords0)
            coords1 = coords1 + delta
            if all_flows or i == iters - 1:
                out.append(upsample_flow(coords1 - coords0, r.mask_predictor(hidden), factor=k))
        return out

    @contextlib.contextmanager
    def reusing_first_images(self, cache: "FirstImageCache"):
        """Within the block, inference (eval mode, no gradients, not compiled) takes the feature and context
        encodings of a first image that ``cache`` already holds instead of encoding it again: the same flows to float
        rounding, for pairs that share first images (many synthetic apexes of one onset). ``cache`` is emptied first
        if it was filled by other weights."""
        cache.bind(self)
        self._first_cache = cache
        try:
            yield cache
        finally:
            self._first_cache = None

    def forward(self, img1: torch.Tensor, img2: torch.Tensor, iters: int | None = None,
                all_flows: bool | None = None) -> list[torch.Tensor]:
        """Flow from ``img1`` to ``img2`` (module docstring; ``../shared/papers/srflow_srflownet_facial_flow.txt``
        Sec. IV-A).

        Args:
            img1, img2: (B, 1 or 3, H, W) images in [0, 1] of equal shape, any H, W >= 1.
            iters: recurrent updates (None or 0 → ``config.iters``).
            all_flows: return every update's up-sampled flow; None → ``self.training``.

        Returns:
            List of (B, 2, H, W) flows in pixels of the input grid (channel 0 horizontal), last = final: one per
            update with ``all_flows``, else only the final one.

        Raises:
            ValueError: the shapes differ, the images are not (B, 1 or 3, H, W), or ``iters`` is negative.
        """
        if img1.shape != img2.shape:
            raise ValueError(f"image pair shapes differ: {tuple(img1.shape)} vs {tuple(img2.shape)}")
        x1, x2 = self.prepare(img1), self.prepare(img2)
        h, w = x1.shape[-2:]
        k = self.config.downsample
        ph = max(self.min_size, math.ceil(h / k) * k) - h
        pw = max(self.min_size, math.ceil(w / k) * k) - w
        if ph or pw:
            x1 = F.pad(x1, (0, pw, 0, ph), mode="replicate")
            x2 = F.pad(x2, (0, pw, 0, ph), mode="replicate")
        n = update_count(iters, self.config.iters)
        flows = self._refine(x1, x2, n, self.training if all_flows is None else bool(all_flows))
        if ph or pw:
            flows = [f[..., :h, :w] for f in flows]
        return flows

    def config_dict(self) -> dict:
        """``self.config`` as a plain dict (tuples as lists): the ``"config"`` of a weights file
        (:func:`flownet.registry.save_srflownet`), also compared to check that two models share an architecture."""
        d = asdict(self.config)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


class FirstImageCache:
    """Feature and context encodings of first images, kept for :meth:`SRFlowNet.reusing_first_images`.

    An entry (``entries``: key → feature map, context, their bytes) is keyed by the bytes, shape and dtype of the
    encoder input (and the autocast state); the oldest entries go once ``max_bytes`` is passed. The encoders treat each sample on its own (instance and group norm),
    so a reused encoding equals the one another batch would give to float rounding: the convolution kernels oneDNN
    picks depend on the batch size (on the 2-core AMD EPYC, the same bits from 16 samples up, not below).
    """

    def __init__(self, max_bytes: int = 256 * 2 ** 20):
        self.max_bytes = int(max_bytes)
        self.entries: OrderedDict = OrderedDict()
        self.nbytes = 0
        self.weights = None
        self.hits = self.misses = 0

    def bind(self, net: nn.Module) -> None:
        """Empty the cache unless its entries came from weights equal to ``net``'s."""
        h = hashlib.blake2b(digest_size=16)
        for name, t in net.state_dict().items():
            h.update(name.encode())
            h.update(_tensor_bytes(t))
        if h.digest() != self.weights:
            self.entries.clear()
            self.nbytes, self.weights = 0, h.digest()

    def _key(self, x: torch.Tensor) -> tuple:
        amp = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else None
        return (tuple(x.shape), str(x.dtype), str(amp), hashlib.blake2b(_tensor_bytes(x), digest_size=16).digest())

    def encode(self, raft: nn.Module, x1: torch.Tensor, x2: torch.Tensor):
        """``(fmap1, fmap2, context)`` of ``raft``'s encoders for the batch (B, 3, H, W) ``x1``, ``x2``: the first
        images not held yet (each once) are encoded together with ``x2`` and kept."""
        keys = [self._key(x) for x in x1]
        got = {k: self.entries[k] for k in keys if k in self.entries}
        new = list(dict.fromkeys(k for k in keys if k not in got))
        self.hits += len(keys) - len(new)
        self.misses += len(new)
        if new:
            first = [keys.index(k) for k in new]
            feats = raft.feature_encoder(torch.cat([x1[first], x2], 0))
            f_new, fmap2 = feats[:len(new)], feats[len(new):]
            c_new = raft.context_encoder(x1[first])
            for j, k in enumerate(new):
                got[k] = (f_new[j].clone(), c_new[j].clone())
                self._put(k, got[k])
        else:
            fmap2 = raft.feature_encoder(x2)
        fmap1 = torch.stack([got[k][0] for k in keys])
        ctx = torch.stack([got[k][1] for k in keys])
        return fmap1, fmap2, ctx

    def _put(self, key: tuple, value: tuple) -> None:
        size = sum(t.numel() * t.element_size() for t in value)
        if size > self.max_bytes:
            return
        self.entries[key] = (*value, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            self.nbytes -= self.entries.popitem(last=False)[1][-1]


def _tensor_bytes(t: torch.Tensor):
    """The bytes of ``t`` (any dtype, any device) as a buffer for hashing."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).cpu().numpy()
