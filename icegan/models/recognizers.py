"""Micro-expression recognizers on flow features (u, v, optical strain).

Both networks can hold ``n_models`` independent copies of themselves in one module ("grouped"
weights: every convolution uses ``groups=n_models``, every linear layer is a batched matrix
product, batch norm runs over ``n_models × C`` separate channels). Copy ``g`` only ever sees its own
input slice, so training G copies together (e.g. one per LOSO fold and seed) is exactly G separate
trainings done in one pass — the way :mod:`icegan.recognition` makes a whole LOSO fast on a CPU.

Input/output shapes (``C`` = 3 feature channels, ``K`` = number of classes):

* ``x`` (B, C, H, W) with ``n_models == 1`` → logits (B, K);
* ``x`` (B, C, H, W) with ``n_models == G > 1`` → the same input to every copy → logits (B, G, K);
* ``x`` (B, G, C, H, W) → copy g gets ``x[:, g]`` → logits (B, G, K).

Sources:

* STSTNet — Liong, Gan, See, Khor, Huang, "Shallow Triple Stream Three-dimensional CNN (STSTNet)
  for micro-expression recognition", FG 2019 (arXiv 1902.03634): three shallow streams of 3×3
  convolutions with 3, 5 and 8 filters on the 28×28 (u, v, strain) input, ReLU, 3×3 max pooling
  with stride 3, concatenation, 2×2 average pooling, one fully connected layer. Batch norm and
  dropout follow the authors' Python release, except that batch norm is applied after the max
  pooling (on 10×10 instead of 30×30 maps: 9× less work; not numerically identical).
* Off-TANet — Zhang, Liu, Zhou, "Off-TANet: a lightweight neural micro-expression recognizer with
  optical flow features and integrated attention mechanism", PRICAI 2021 (reference [18] of
  ``srflow_srflownet_facial_flow.txt``): 7×7 stride-2 stem, two residual blocks, an attention
  residual block combining channel attention, spatial attention and multi-head self-attention
  (the "triplet attention"), and a 3-layer MLP; 59,403 parameters at 112×112.

Your own recognizer (``model.name=custom model.module=SPEC``): any ``torch.nn.Module`` that maps (B, C, S, S)
features to (B, K) class logits, built by the factory that ``SPEC`` names (:func:`load_recognizer_factory`) and
wrapped in :class:`PlainRecognizer`, so that the same training loop, augmentations, test-time augmentation and LOSO
protocol apply to it. It is one copy per fold (no grouped weights), trained on that fold's training rows only. A
factory that returns parameters or buffers it returned before (a network or a pretrained backbone built once, whole,
in a new wrapper or shallow-copied) gets a deep copy with those tensors as the factory first gave them
(:func:`_own_module`), so no fold or seed starts from another's training; a module the factory builds anew is used
as it is.
"""
from __future__ import annotations

import copy
import math
import weakref
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GroupedLinear", "scale_gradient", "STSTNet", "OffTANet", "PlainRecognizer", "build_recognizer", "RECOGNIZERS",
           "conv_maxpool", "fast_dropout", "load_recognizer_factory", "recognizer_source_sha256"]


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by a constant."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` unchanged in the forward pass; in the backward pass the gradient into ``x`` is multiplied by ``scale``.

    With ``scale = -λ`` this is the gradient reversal layer of domain-adversarial training (Ganin & Lempitsky,
    "Unsupervised Domain Adaptation by Backpropagation", ICML 2015, Sec. 3.2, Eq. 6–7: R(x) = x, dR/dx = −λ I); with
    0 the layers before ``x`` receive nothing from what follows it; with 1 it is the identity (returned as is).

    Args:
        x: any tensor.
        scale: finite float.

    Raises:
        ValueError: ``scale`` not finite.
    """
    if not math.isfinite(scale):
        raise ValueError(f"scale_gradient: scale must be finite, got {scale}")
    return x if scale == 1 else _ScaleGradient.apply(x, float(scale))


class GroupedLinear(nn.Module):
    """``G`` independent linear layers: (B, G, in) → (B, G, out).

    Each copy is initialised like ``nn.Linear`` (uniform in ±1/sqrt(in)).
    """

    def __init__(self, n_models: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.n_models, self.in_features, self.out_features = n_models, in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(n_models, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_models, out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply copy g's linear layer to ``x[:, g]`` for every copy.

        Args:
            x: (B, G, in_features) with G = ``n_models``.

        Returns:
            (B, G, out_features): ``x[:, g] @ weight[g] + bias[g]`` (no bias term when built with ``bias=False``).
        """
        y = torch.einsum("bgi,gio->bgo", x, self.weight)
        return y + self.bias if self.bias is not None else y


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over ``n_models × C`` channels whose batch statistics can skip samples per copy.

    ``forward(x, sample_mask)``: x (B, G*C, H, W); sample_mask (B, G) of 0/1 weights or None. In
    training mode with a mask, copy g's mean and variance use only the samples with
    ``sample_mask[:, g] = 1`` (e.g. its LOSO training subjects: a held-out subject in the same
    batch never shifts the statistics of the copy that is tested on it); the running statistics of a
    copy with no sample in the batch stay as they were. Without a mask, or in eval mode, this is
    ``nn.BatchNorm2d``.
    """

    def __init__(self, n_models: int, num_features: int, **kwargs):
        super().__init__(n_models * num_features, **kwargs)
        self.n_models, self.per_model = n_models, num_features

    def forward(self, x: torch.Tensor, sample_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Batch norm with each copy's batch statistics taken over its own samples (class docstring).

        Args:
            x: (B, G·C, H, W), G = ``n_models`` copies of C = ``num_features`` channels, copy by copy.
            sample_mask: (B, G) 0/1 weight of each sample in each copy's statistics, or None (then, and in eval mode,
                plain ``nn.BatchNorm2d``).

        Returns:
            (B, G·C, H, W). With a mask in training mode: normalised with the masked mean and biased variance; the
            running mean and (unbiased) variance of the copies with a sample in the batch move by ``momentum`` (0.1
            when ``momentum`` is None), the others keep theirs.
        """
        if sample_mask is None or not self.training:
            return super().forward(x)
        B, _, H, W = x.shape
        G, C = self.n_models, self.per_model
        m = sample_mask.to(x.dtype)                                   # (B, G)
        n = m.sum(0).clamp_min(1.0) * (H * W)                         # (G,)
        xv = x.reshape(B, G, C, H * W)
        mean = torch.einsum("bgcp,bg->gc", xv, m) / n[:, None]        # (G, C)
        d = xv - mean[None, :, :, None]
        var = torch.einsum("bgcp,bg->gc", d * d, m) / n[:, None]      # biased, used to normalise
        with torch.no_grad():
            mom = self.momentum if self.momentum is not None else 0.1
            unbiased = var * (n / (n - 1).clamp_min(1.0))[:, None]
            # a copy with no sample in this batch keeps its running statistics (they would decay towards 0)
            present = (m.sum(0) > 0)[:, None].expand(G, C).reshape(-1)
            rm, rv = self.running_mean, self.running_var
            rm.copy_(torch.where(present, rm * (1 - mom) + mom * mean.reshape(-1), rm))
            rv.copy_(torch.where(present, rv * (1 - mom) + mom * unbiased.reshape(-1), rv))
            self.num_batches_tracked.add_(1)
        y = d * torch.rsqrt(var + self.eps)[None, :, :, None]
        y = y * self.weight.reshape(1, G, C, 1) + self.bias.reshape(1, G, C, 1)
        return y.reshape(B, G * C, H, W)


def _first_conv(conv: nn.Conv2d, x: torch.Tensor, n_models: int, in_channels: int) -> tuple[torch.Tensor, bool]:
    """Apply a first convolution of G copies (weight (G*cout, cin, k, k)).

    x (B, cin, H, W) is shared by every copy: one dense convolution with G*cout outputs (fast);
    x (B, G, cin, H, W) gives each copy its own input: grouped convolution. Returns the
    (B, G*cout, H', W') output and whether the caller's output keeps a G axis. Its callers refuse any other
    ``x`` first (:func:`_check_maps`).
    """
    if x.dim() == 4:
        return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding), n_models > 1
    xg = x.reshape(x.shape[0], n_models * in_channels, x.shape[3], x.shape[4])
    return F.conv2d(xg, conv.weight, conv.bias, conv.stride, conv.padding, groups=n_models), True


def _check_maps(net: str, x: torch.Tensor, n_models: int, in_channels: int, input_size: int, hint: str = "") -> None:
    """Refuse features a recognizer built for (C, S, S) maps (C = ``in_channels``, S = ``input_size``) cannot take.

    Args:
        net: the network's name for the messages (``"STSTNet"``, ``"OffTANet"``).
        x: (B, C, S, S) features shared by the ``n_models`` copies, or (B, G, C, S, S) with G = ``n_models``.
        hint: appended to the size message (Off-TANet: the size its attention block would get).

    Raises:
        ValueError: another rank or copy count, another channel count (names it and
            the expected maps), or maps of another height or width than ``input_size`` (names the expected
            (C, S, S) and the shape of ``x``). A shape compare: costs nothing next to the convolutions.
    """
    want = (in_channels, input_size, input_size)
    if x.dim() == 4 and x.shape[1] != in_channels:
        raise ValueError(f"expected features of shape (B, {in_channels}, H, W), got {tuple(x.shape)}: {x.shape[1]} "
                         f"channels, not in_channels={in_channels} (maps of (C, S, S) = {want})")
    if x.dim() == 5 and x.shape[1] == n_models and x.shape[2] != in_channels:
        raise ValueError(f"expected grouped features (B, {n_models}, {in_channels}, H, W), got {tuple(x.shape)}: "
                         f"{x.shape[2]} channels, not in_channels={in_channels} (maps of (C, S, S) = {want})")
    if x.dim() == 5 and x.shape[1] != n_models:
        raise ValueError(f"expected grouped features (B, {n_models}, {in_channels}, H, W), got {tuple(x.shape)}")
    if x.dim() not in (4, 5):
        raise ValueError(f"expected features (B, C, H, W) or (B, G, C, H, W), got {tuple(x.shape)}")
    if tuple(x.shape[-2:]) != want[1:]:
        raise ValueError(f"{net}(input_size={input_size}) expects maps of (C, S, S) = {want}, got x of shape "
                         f"{tuple(x.shape)}{hint}; resize the features to input_size "
                         f"(icegan.recognition.resize_features) or build the network for their size")


class _ConvMaxPool(torch.autograd.Function):
    """Convolution followed by max pooling, computed in chunks of samples (exact, less memory traffic).

    A plain ``max_pool2d(conv2d(x))`` materialises (B, O, H, W) conv outputs in the forward pass and
    a dense zero-filled gradient of the same size in the backward pass (436 MB per step for 68 × 16
    STSTNet filters, B = 128, 28×28); on a small CPU these memory-bound passes cost more than the
    convolution itself. Here each chunk of ``chunk`` samples is convolved and pooled while its
    conv outputs are still in cache, only the pooled maps and the argmax positions (int16) are
    kept. The backward pass takes the weight and bias gradients from the argmax positions alone
    (:func:`_weight_grad_from_argmax`) when the input needs no gradient (a LOSO on fixed features);
    when it does (e.g. the joint loss of the main job that reaches the flow network through the
    recognizer), it rebuilds each chunk's sparse conv-output gradient in cache and runs oneDNN's
    convolution backward for the input, weight and bias gradients.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding: int, pool: int, pool_pad: int, chunk: int):
        out = idxs = None
        for i in range(0, x.shape[0], chunk):
            # channels-last conv output: CPU max pooling is ~10x faster in that layout
            h = F.conv2d(x[i:i + chunk].contiguous(memory_format=torch.channels_last), weight, bias, padding=padding)
            p, idx = F.max_pool2d(h, pool, pool, pool_pad, return_indices=True)
            if out is None:         # each chunk is written into its rows of the whole batch's (contiguous) tensors
                out = p.new_empty((x.shape[0], *p.shape[1:]))
                idxs = idx.new_empty(out.shape, dtype=torch.int16 if h.shape[-1] * h.shape[-2] < 2 ** 15 else idx.dtype)
            out[i:i + chunk].copy_(p)
            idxs[i:i + chunk].copy_(idx)
        ctx.conv_hw = tuple(h.shape[-2:])
        ctx.cfg = (padding, chunk)
        ctx.save_for_backward(x, weight, idxs)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, idx = ctx.saved_tensors
        padding, chunk = ctx.cfg
        H, W = ctx.conv_hw
        O = weight.shape[0]
        if not ctx.needs_input_grad[0]:
            return (None, _weight_grad_from_argmax(x, weight, idx, grad, padding, (H, W)),
                    grad.sum((0, 2, 3)), None, None, None, None)
        # the input needs a gradient (e.g. the main job's joint loss): dense per-chunk gradient through oneDNN, in
        # the weight's precision: under autocast the pooled output, hence `grad`, is bf16/fp16 while x and the
        # weight are float32, and one convolution backward needs one dtype (it failed on CUDA and on CPU)
        dt = weight.dtype
        dw = torch.zeros_like(weight)
        db = torch.zeros(O, dtype=dt, device=weight.device)
        dxs = []
        for i in range(0, x.shape[0], chunk):
            g = grad[i:i + chunk].to(dt)
            b = g.shape[0]
            gh = torch.zeros(b, O, H * W, dtype=dt, device=g.device)
            gh.scatter_(2, idx[i:i + chunk].reshape(b, O, -1).long(), g.reshape(b, O, -1))   # windows are disjoint
            gx, gw, gb = torch.ops.aten.convolution_backward(
                gh.view(b, O, H, W), x[i:i + chunk].to(dt), weight, [O], [1, 1], [padding, padding], [1, 1], False,
                [0, 0], 1, [True, True, True])
            dw += gw
            db += gb
            dxs.append(gx.to(x.dtype))
        return torch.cat(dxs), dw, db, None, None, None, None


def _weight_grad_from_argmax(x: torch.Tensor, weight: torch.Tensor, idx: torch.Tensor, grad: torch.Tensor,
                             padding: int, conv_hw: tuple[int, int]) -> torch.Tensor:
    """Weight gradient of ``max_pool(conv2d(x))`` from the pooled gradient and the argmax positions only.

    Only one conv output per pooling window receives gradient, so
    ``dW[o] = sum_{b, p} grad[b, o, p] · patch(b, idx[b, o, p])``, where ``patch(b, l)`` is the (Cin·k·k,) input patch
    under conv output position ``l``. That is one weighted embedding-bag sum per (sample, filter) over a table of
    B·H·W patches (``F.unfold``, 11 MB for 128 samples at 28×28), 1/9 of the multiply-adds of the dense weight
    gradient and no (B, O, H, W) gradient buffer to zero, scatter and reorder: 0.20 s → 0.04 s per STSTNet step of
    68 × 16 filters on a 2-core CPU. Equal to the dense expression up to float summation order.

    Args:
        x: (B, Cin, H_in, W_in) conv input; weight: (O, Cin, k, k), stride 1.
        idx: (B, O, P, Q) flat argmax positions in the (H, W) conv output (int16 or int64).
        grad: (B, O, P, Q) gradient of the pooled output.
        padding: the convolution's zero padding; conv_hw: (H, W) of the conv output.
    Returns:
        (O, Cin, k, k) weight gradient.
    """
    B, O = grad.shape[:2]
    k = weight.shape[-1]
    H, W = conv_hw
    cols = F.unfold(x, k, padding=padding).transpose(1, 2).reshape(B * H * W, -1)     # (B·H·W, Cin·k·k)
    itype = torch.int32 if B * H * W < 2 ** 31 else torch.int64
    base = (torch.arange(B, dtype=itype, device=x.device) * (H * W)).view(B, 1, 1)
    ind = (idx.reshape(B, O, -1).to(itype) + base).reshape(B * O, -1)                # rows of `cols`
    dw = F.embedding_bag(ind, cols.to(grad.dtype), per_sample_weights=grad.reshape(B * O, -1), mode="sum")
    return dw.view(B, O, -1).sum(0).view_as(weight).to(weight.dtype)


#: conv-output bytes per chunk of :func:`conv_maxpool` on a CPU: a chunk's conv output stays in cache while it is
#: pooled. Measured (``bench/conv_chunk.py``, one thread, B = 128 at 28 × 28): G = 68 copies (3.4 MB per sample)
#: 810 ms per step at 1 sample per chunk against 1009 ms at the old fixed 8; G = 1 (50 KB per sample) is as fast
#: or faster with large chunks.
CHUNK_BYTES = 1 << 20


def conv_chunk_size(n: int, out_channels: int, conv_hw: tuple[int, int], element_size: int,
                    device: torch.device) -> int:
    """Samples per chunk for :func:`conv_maxpool`: all ``n`` on an accelerator (no cache to fit; one launch is
    faster there), else as many as keep one chunk's (out_channels, H, W) conv outputs within :data:`CHUNK_BYTES`,
    at least 1."""
    if device.type != "cpu":
        return max(1, n)
    per_sample = out_channels * conv_hw[0] * conv_hw[1] * element_size
    return max(1, min(n, CHUNK_BYTES // max(1, per_sample)))


def conv_maxpool(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int = 1, pool: int = 3,
                 pool_pad: int = 1, chunk: int | None = None) -> torch.Tensor:
    """``max_pool2d(conv2d(x, weight, bias, padding=padding), pool, pool, pool_pad)`` in sample chunks.

    Args:
        x: (B, Cin, H, W) input (its gradient is computed only when it requires one).
        weight: (O, Cin, k, k) dense convolution weight (stride 1); bias: (O,).
        padding: convolution zero padding; pool / pool_pad: max-pooling window = stride, padding.
        chunk: samples per chunk; None = :func:`conv_chunk_size` (one chunk on a GPU; on a CPU about 1 MB of conv
            output per chunk: 1 sample for the 68 grouped copies of a composite LOSO, 20 for one STSTNet at 28 × 28).

    Returns:
        (B, O, H', W') pooled maps, equal to the unchunked expression up to float rounding (differences of 1 ulp
        occur: a chunk's convolution may run another kernel than the whole batch's); the weight and bias gradients
        equal those of the unchunked expression up to float summation order.
    Pooling windows must not overlap (stride = window), which the backward pass relies on.
    """
    if x.shape[0] == 0:          # no samples: the plain expression's empty result (the chunk loop has nothing to do)
        return F.max_pool2d(F.conv2d(x, weight, bias, padding=padding), pool, pool, pool_pad)
    if chunk is None:
        k = weight.shape[-1]
        hw = (x.shape[-2] + 2 * padding - k + 1, x.shape[-1] + 2 * padding - k + 1)
        chunk = conv_chunk_size(x.shape[0], weight.shape[0], hw, x.element_size(), x.device)
    return _ConvMaxPool.apply(x, weight, bias, padding, pool, pool_pad, int(chunk))


def fast_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout of probability p in [0, 1]: a byte-resolution keep mask when p is a multiple of 1/256.

    ``torch.bernoulli`` draws one random number per element, which is slow on a CPU; for p = m / 256 (m whole: 0.5,
    0.25, ...) eight mask bytes come from each 64-bit draw of torch's generator (seeded by ``torch.manual_seed``), an
    element is kept when its byte is >= m, and kept elements are scaled by 256 / (256 − m). Any other p, which the
    1/256 steps would round (0.001 to 0, 0.999 to 1), takes torch's exact ``F.dropout``. Identity when not training
    or p = 0.
    """
    if not training or p <= 0:
        return x
    if not float(256 * p).is_integer():        # off the 1/256 grid (exact: 256 p is p with another exponent)
        return F.dropout(x, p, training=True)
    thr = int(256 * p)
    if thr >= 256:
        return torch.zeros_like(x)
    n = x.numel()
    raw = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=x.device)
    keep = raw.view(torch.uint8)[:n].view(x.shape) >= thr
    scale = torch.full((), 256.0 / (256 - thr), dtype=x.dtype, device=x.device)
    # the mask as 0 / scale: a conversion and an in-place multiply, the values of torch.where(keep, scale, 0) at a
    # quarter of its time (its CPU kernel is not vectorised: 56 -> 14 ms for the 68 STSTNet copies' 14 M elements)
    return x * keep.to(x.dtype).mul_(scale)


class STSTNet(nn.Module):
    """Shallow Triple Stream Three-dimensional CNN (Liong et al., FG 2019).

    Args:
        num_classes: K output classes (3).
        in_channels: feature channels (3: u, v, strain).
        input_size: side of the square input in pixels (28 in the paper).
        dropout: dropout after each stream's pooling (0.5 in the authors' Python release).
        n_models: number of independent copies (see the module docstring).
        padding: convolution padding (1 = 'same' as in the paper: 28 → 28 → 10 → 5; the authors'
            Python release uses 2: 28 → 30 → 10 → 5).
        width: filter multiplier of the three streams (1 = the paper's 3, 5 and 8 filters; 2 gives
            6, 10 and 16). Not in the paper: a capacity knob for the same architecture.
        domains: 0 = ordinary batch norm. D >= 1 = batch-norm *statistics* kept per domain (e.g. per
            source dataset of a composite: SMIC, CASME II, SAMM), affine weights shared: in training each
            sample is normalised with the batch mean and variance of its own domain (over the copy's
            training samples), at test time with its domain's running statistics. This is the
            statistics half of domain-specific batch norm (Chang et al., "Domain-Specific Batch
            Normalization for Unsupervised Domain Adaptation", CVPR 2019, Sec. 3.1; there the affine
            weights are per domain too). Not in STSTNet's paper.
        aux_outputs: 0 = none. A >= 1 = a second grouped linear head on the same pooled features, A logits
            (e.g. the action units of :mod:`icegan.data.action_units`, learned as an auxiliary target, or the
            source dataset of each clip, learned adversarially); the class head is unchanged. Not in STSTNet's
            paper.

    Raises:
        ValueError: ``width`` < 1, ``domains`` < 0, ``aux_outputs`` < 0 or an ``input_size`` too small for the
            pooling; in ``forward``, a missing or out-of-range ``domain`` when ``domains`` >= 1, ``with_aux``
            without an auxiliary head.

    ``forward(x, sample_mask=None, domain=None, with_aux=False, aux_grad_scale=1.0)``: x (B, 3, S, S) → (B, K) for
    one copy, (B, G, K) for G copies; ``sample_mask`` (B, G) restricts each copy's batch-norm statistics to its own
    training samples (:class:`MaskedBatchNorm2d`); ``domain`` (B,) int64 domain index of each sample in
    0..D-1 (required when ``domains`` >= 1, ignored otherwise). ``with_aux``: return (class logits,
    auxiliary logits (B, A) or (B, G, A)). ``aux_grad_scale``: factor on the gradient that flows from the auxiliary
    head back into the shared layers (:func:`scale_gradient`): 1 = ordinary multi-task learning, −λ = gradient
    reversal (domain-adversarial training); the auxiliary head's own weights always get their full gradient.
    """

    STREAMS = (3, 5, 8)

    def __init__(self, num_classes: int = 3, in_channels: int = 3, input_size: int = 28, dropout: float = 0.5,
                 n_models: int = 1, padding: int = 1, width: int = 1, domains: int = 0, aux_outputs: int = 0):
        super().__init__()
        if int(aux_outputs) != aux_outputs or aux_outputs < 0:
            raise ValueError(f"STSTNet aux_outputs must be an integer >= 0, got {aux_outputs}")
        if int(width) != width or width < 1:
            raise ValueError(f"STSTNet width must be an integer >= 1, got {width}")
        if int(domains) != domains or domains < 0:
            raise ValueError(f"STSTNet domains must be an integer >= 0, got {domains}")
        G = self.n_models = n_models
        self.in_channels, self.input_size = in_channels, input_size
        self.stream_channels = tuple(c * int(width) for c in self.STREAMS)
        self.streams = nn.ModuleList(nn.Conv2d(G * in_channels, G * c, 3, padding=padding, groups=G)
                                     for c in self.stream_channels)
        self.bns = nn.ModuleList(MaskedBatchNorm2d(G, c) for c in self.stream_channels)
        self.domains = int(domains)
        if self.domains:
            # (G, D, C) running statistics per copy and domain (copy first, like every grouped tensor);
            # self.bns then hold the shared affine weights only
            C = sum(self.stream_channels)
            self.register_buffer("domain_running_mean", torch.zeros(G, self.domains, C))
            self.register_buffer("domain_running_var", torch.ones(G, self.domains, C))
        self.pool = nn.MaxPool2d(3, stride=3, padding=1)
        self.drop = nn.Dropout(dropout)
        s = input_size + 2 * padding - 2
        s = (s + 2 - 3) // 3 + 1
        s = s // 2
        if s < 1:
            raise ValueError(f"STSTNet input_size {input_size} is too small")
        self.fc = GroupedLinear(G, sum(self.stream_channels) * s * s, num_classes)
        self.aux_fc = GroupedLinear(G, sum(self.stream_channels) * s * s, int(aux_outputs)) if aux_outputs else None

    def forward(self, x: torch.Tensor, sample_mask: torch.Tensor | None = None,
                domain: torch.Tensor | None = None, with_aux: bool = False, aux_grad_scale: float = 1.0):
        """Class logits of every copy (Liong et al., FG 2019; layers and arguments in the module and class docstrings).

        Args:
            x: (B, C, S, S) features shared by all copies, or (B, G, C, S, S), copy g reading ``x[:, g]``.
            sample_mask: (B, G) 0/1: the samples in each copy's batch-norm statistics (training mode only), or None.
            domain: (B,) integer (any width, used as int64) domain index in 0..D-1 of each sample; required when
                ``domains`` >= 1, else ignored.
            with_aux: also return the auxiliary head's logits.
            aux_grad_scale: finite factor on the gradient from the auxiliary head into the shared layers
                (:func:`scale_gradient`; −λ = gradient reversal).

        Returns:
            Logits (B, K) for one copy with a 4-D ``x``, else (B, G, K); with ``with_aux``, the pair (logits,
            auxiliary logits (B, A) or (B, G, A)).

        Raises:
            ValueError: ``with_aux`` without an auxiliary head; ``domain`` missing, not a tensor of integers (floating
                point or bool; other integer types are taken as int64), of another shape than (B,) or out of range;
                ``x`` not (B, C, S, S) or (B, G, C, S, S) with C = ``in_channels``, S = ``input_size`` (the message
                names the expected (C, S, S) and the shape of ``x``); a non-finite ``aux_grad_scale`` (with
                ``with_aux``).
        """
        G, C = self.n_models, sum(self.stream_channels)
        _check_maps("STSTNet", x, G, self.in_channels, self.input_size)
        if with_aux and self.aux_fc is None:
            raise ValueError("with_aux=True needs an STSTNet built with aux_outputs >= 1")
        if self.domains:
            if domain is None:
                raise ValueError(f"this STSTNet keeps batch-norm statistics per domain (domains={self.domains}): "
                                 f"pass domain, the (B,) domain index of every sample")
            if not isinstance(domain, torch.Tensor) or domain.is_floating_point() or domain.is_complex() \
                    or domain.dtype == torch.bool:
                got = (str(domain.dtype).replace("torch.", "") + " tensor" if isinstance(domain, torch.Tensor)
                       else type(domain).__name__)
                raise ValueError(f"domain must hold integer domain indices in 0..{self.domains - 1}, got a {got}")
            domain = domain.long()        # one_hot and indexing take int64 (uint8 would index as a mask)
            if domain.shape != (x.shape[0],) or (domain.numel() and (int(domain.min()) < 0 or int(domain.max()) >= self.domains)):
                raise ValueError(f"domain must be a (B,) = ({x.shape[0]},) tensor of indices in 0..{self.domains - 1}, "
                                 f"got shape {tuple(domain.shape)}"
                                 + (f" with values {int(domain.min())}..{int(domain.max())}" if domain.numel() else ""))
        if x.dim() == 4:       # (B, C, S, S) with C = in_channels (_check_maps)
            # Shared input (fast path): the three streams' filters as one dense convolution whose
            # G*16 outputs are ordered model by model (the 3 + 5 + 8 stream channels of copy g are
            # contiguous), convolved and max-pooled in cache-sized chunks.
            pad = self.streams[0].padding[0]
            w = torch.cat([cv.weight.reshape(G, c, *cv.weight.shape[1:]) for cv, c in zip(self.streams, self.stream_channels)],
                          1).reshape(G * C, *self.streams[0].weight.shape[1:])
            b = torch.cat([cv.bias.reshape(G, c) for cv, c in zip(self.streams, self.stream_channels)], 1).reshape(-1)
            h = conv_maxpool(x, w, b, padding=pad, pool=3, pool_pad=1)            # (B, G*16, P, P)
            grouped = G > 1
            B, P = h.shape[0], h.shape[-1]
            h = h.reshape(B, G, C, P * P)
        else:
            parts, grouped = [], False
            for conv, c in zip(self.streams, self.stream_channels):
                hs, grouped = _first_conv(conv, x, G, self.in_channels)
                hs = self.pool(hs)
                parts.append(hs.reshape(hs.shape[0], G, c, -1))
            B, P = parts[0].shape[0], int(round(math.sqrt(parts[0].shape[-1])))
            h = torch.cat(parts, 2)                                              # (B, G, 16, P*P)
        h = F.relu(h)                                 # max pooling and ReLU commute
        h = self._bn(h, sample_mask) if not self.domains else self._domain_bn(h, sample_mask, domain)
        h = fast_dropout(h, self.drop.p, self.training)
        s = P // 2                                    # 2x2 average pooling (odd last row and column dropped)
        h = F.avg_pool2d(h.reshape(B, G * C, P, P), 2)  # (B, G*C, s, s); 10x faster than a strided mean
        h = h.reshape(B, G, C * s * s)
        y = self.fc(h)
        if with_aux:
            a = self.aux_fc(scale_gradient(h, aux_grad_scale))
            return (y, a) if grouped else (y[:, 0], a[:, 0])
        return y if grouped else y[:, 0]

    def _bn(self, h: torch.Tensor, sample_mask: torch.Tensor | None) -> torch.Tensor:
        """The three streams' batch norms on h (B, G, 16, P²) in one pass (see :class:`MaskedBatchNorm2d`).

        Training: per-copy batch statistics over the samples with ``sample_mask[:, g] = 1`` (all
        samples without a mask); the running statistics of ``self.bns`` are updated. Eval: the
        running statistics.
        """
        B, G, C, PP = h.shape
        weight, bias, eps = self._stream_cat("weight"), self._stream_cat("bias"), self.bns[0].eps
        if self.training:
            m = (sample_mask.to(h.dtype) if sample_mask is not None
                 else torch.ones(B, G, dtype=h.dtype, device=h.device))
            n = m.sum(0).clamp_min(1.0) * PP                                       # (G,)
            mean = torch.einsum("bgc,bg->gc", h.sum(-1), m) / n[:, None]           # (G, C)
            var = (torch.einsum("bgc,bg->gc", (h * h).sum(-1), m) / n[:, None] - mean * mean).clamp_min(0.0)
            with torch.no_grad():
                unbiased = var * (n / (n - 1).clamp_min(1.0))[:, None]
                present = m.sum(0) > 0              # (G,): a copy with no sample in the batch keeps its statistics
                off = 0
                for bn, c in zip(self.bns, self.stream_channels):
                    mom = bn.momentum if bn.momentum is not None else 0.1
                    keep = present[:, None].expand(G, c).reshape(-1)
                    rm, rv = bn.running_mean, bn.running_var
                    rm.copy_(torch.where(keep, rm * (1 - mom) + mom * mean[:, off:off + c].reshape(-1), rm))
                    rv.copy_(torch.where(keep, rv * (1 - mom) + mom * unbiased[:, off:off + c].reshape(-1), rv))
                    bn.num_batches_tracked.add_(1)
                    off += c
        else:
            mean, var = self._stream_cat("running_mean"), self._stream_cat("running_var")
        scale = weight * torch.rsqrt(var + eps)
        shift = bias - mean * scale
        return torch.addcmul(shift[None, :, :, None], h, scale[None, :, :, None])

    def _stream_cat(self, attr: str) -> torch.Tensor:
        """The three streams' batch-norm tensor ``attr`` (weight, bias, running_mean...) as (G, C), C = 16·width."""
        G = self.n_models
        return torch.cat([getattr(bn, attr).reshape(G, c) for bn, c in zip(self.bns, self.stream_channels)], 1)

    def _domain_bn(self, h: torch.Tensor, sample_mask: torch.Tensor | None, domain: torch.Tensor) -> torch.Tensor:
        """Batch norm with statistics per (copy, domain) on h (B, G, C, P²); shared affine weights.

        Training: the mean and (biased) variance of copy g and domain d are taken over the samples b with
        ``domain[b] = d`` and ``sample_mask[b, g] = 1`` and all P² positions; each sample is normalised
        with its own domain's; the running statistics (momentum of ``self.bns``, unbiased variance) move
        only for (g, d) pairs present in the batch. Eval: each sample's domain's running statistics.
        """
        B, G, C, PP = h.shape
        weight, bias = self._stream_cat("weight"), self._stream_cat("bias")        # (G, C)
        eps = self.bns[0].eps
        if self.training:
            m = (sample_mask.to(h.dtype) if sample_mask is not None
                 else torch.ones(B, G, dtype=h.dtype, device=h.device))
            w = m[:, :, None] * F.one_hot(domain, self.domains).to(h.dtype)[:, None, :]   # (B, G, D)
            count = w.sum(0)                                                       # (G, D) samples
            n = count.clamp_min(1.0) * PP
            mean = torch.einsum("bgc,bgd->gdc", h.sum(-1), w) / n[:, :, None]      # (G, D, C)
            var = (torch.einsum("bgc,bgd->gdc", (h * h).sum(-1), w) / n[:, :, None] - mean * mean).clamp_min(0.0)
            with torch.no_grad():
                mom = self.bns[0].momentum if self.bns[0].momentum is not None else 0.1
                present = (count > 0)[:, :, None]                                  # (G, D, 1)
                unbiased = var * (n / (n - 1).clamp_min(1.0))[:, :, None]
                self.domain_running_mean.copy_(torch.where(present, (1 - mom) * self.domain_running_mean + mom * mean,
                                                           self.domain_running_mean))
                self.domain_running_var.copy_(torch.where(present, (1 - mom) * self.domain_running_var + mom * unbiased,
                                                          self.domain_running_var))
        else:
            mean, var = self.domain_running_mean, self.domain_running_var
        mean_b, var_b = mean[:, domain].transpose(0, 1), var[:, domain].transpose(0, 1)   # (B, G, C)
        scale = weight[None] * torch.rsqrt(var_b + eps)
        shift = bias[None] - mean_b * scale
        return torch.addcmul(shift[..., None], h, scale[..., None])


# --------------------------------------------------------------------------------------------- #
# Off-TANet
# --------------------------------------------------------------------------------------------- #

class _GConvBNReLU(nn.Module):
    def __init__(self, G: int, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(G * cin, G * cout, 3, padding=1, groups=G)
        self.bn = MaskedBatchNorm2d(G, cout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x), mask))


class _Residual(nn.Module):
    """[conv3×3-BN-ReLU] ×2 + 1×1 shortcut, then 2×2 max pooling (halves H and W)."""

    def __init__(self, G: int, cin: int, cout: int):
        super().__init__()
        self.c1 = _GConvBNReLU(G, cin, cout)
        self.c2 = _GConvBNReLU(G, cout, cout)
        self.short = nn.Conv2d(G * cin, G * cout, 1, groups=G)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return F.max_pool2d(self.c2(self.c1(x, mask), mask) + self.short(x), 2)


def _position_code(size: int) -> torch.Tensor:
    """(size, size) code P[i, j] = e_i + e_j with e_i = sin / cos (even / odd i) of 1/10000^((i//2)/size)."""
    i = torch.arange(size, dtype=torch.float64)
    arg = 1.0 / (10000.0 ** ((i // 2) / size))
    e = torch.where(i % 2 == 0, torch.sin(arg), torch.cos(arg))
    return (e[:, None] + e[None, :]).float()


class _AttentionResidual(nn.Module):
    """Off-TANet's attention residual block (``cin`` → ``cout`` channels, H×W → H/2×W/2).

    x0 = 1×1(x); h = conv-BN-ReLU(x); h = CA(h)·h (channel attention, hidden width 1);
    h = SA(h)·h (spatial attention: 3×3 conv of channel mean and max); h = MHSA(h);
    h = conv-BN-ReLU(h → cout); out = maxpool(h + x0).

    MHSA treats each channel's S×S map as a matrix: A = softmax over all S² entries of (Q Kᵀ + Q Pᵀ),
    output A ⊙ V, with P the fixed position code (:func:`_position_code`); maps must be square. The paper
    splits the channels into ``heads`` heads of width cin/heads; since every channel attends within its own
    map, that split changes nothing here (``heads`` is kept for the record; its one caller, :class:`OffTANet`, builds
    the block with cin = 28 and the paper's 4 heads).
    """

    def __init__(self, G: int, cin: int, cout: int, size: int, heads: int = 4):
        super().__init__()
        self.G, self.cin, self.heads = G, cin, heads
        self.short = nn.Conv2d(G * cin, G * cout, 1, groups=G)
        self.conv1 = _GConvBNReLU(G, cin, cin)
        hidden = 1  # reduction ratio = cin in the paper's block
        self.ca_fc1 = nn.Conv2d(G * cin, G * hidden, 1, groups=G, bias=False)
        self.ca_fc2 = nn.Conv2d(G * hidden, G * cin, 1, groups=G, bias=False)
        self.sa_conv = nn.Conv2d(G * 2, G, 3, padding=1, groups=G, bias=False)
        self.qkv = nn.Conv2d(G * cin, G * 3 * cin, 1, groups=G)   # (q, k, v) per channel (the heads split nothing)
        self.register_buffer("pos", _position_code(size), persistent=False)
        self.conv2 = _GConvBNReLU(G, cin, cout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, _, H, W = x.shape        # H = W = size: OffTANet.forward refuses other inputs first (_check_maps)
        G, C = self.G, self.cin
        x0 = self.short(x)
        h = self.conv1(x, mask)
        ca = self.ca_fc2(F.relu(self.ca_fc1(F.adaptive_avg_pool2d(h, 1)))) + \
            self.ca_fc2(F.relu(self.ca_fc1(F.adaptive_max_pool2d(h, 1))))
        h = torch.sigmoid(ca) * h
        hg = h.reshape(B, G, C, H, W)
        stats = torch.stack([hg.mean(2), hg.amax(2)], dim=2).reshape(B, G * 2, H, W)
        h = (torch.sigmoid(self.sa_conv(stats)).reshape(B, G, 1, H, W) * hg).reshape(B, G * C, H, W)
        q, k, v = self.qkv(h).reshape(B, G, 3, C, H, W).unbind(2)      # each (B, G, C, H, W)
        logits = q @ k.transpose(-1, -2) + q @ self.pos.t()          # (B, G, C, H, H)
        att = torch.softmax(logits.flatten(-2), dim=-1).reshape(logits.shape)
        h = (att * v).reshape(B, G * C, H, W)
        return F.max_pool2d(self.conv2(h, mask) + x0, 2)


class OffTANet(nn.Module):
    """Off-TANet (Zhang, Liu, Zhou, PRICAI 2021).

    Layers for input S×S (S = 112 in the paper, stem stride 2):
    stem 7×7 conv (3→8, stride ``stem_stride``) + ReLU + BN → residual 8→18 (/2) → residual 18→28
    (/2) → attention residual 28→8 (/2) → flatten → 64 → ReLU → dropout → 64 → ReLU → dropout → K.

    Args:
        num_classes: K (3).
        in_channels: 3 (u, v, strain).
        input_size: S in pixels; ``S / stem_stride`` must be divisible by 4 (112 with stride 2;
            28 with stride 1 for the native 28×28 features).
        stem_stride: stride of the 7×7 stem (2 in the paper).
        dropout: dropout of the MLP (0.5).
        n_models: independent copies (module docstring).

    ``forward(x, sample_mask=None)``: (B, 3, S, S) → (B, K) (one copy) or (B, G, K);
    59,403 parameters for one copy at S = 112, stride 2.
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 3, input_size: int = 112, stem_stride: int = 2,
                 dropout: float = 0.5, n_models: int = 1):
        super().__init__()
        G = self.n_models = n_models
        self.in_channels, self.input_size = in_channels, input_size
        s = (input_size + 2 * 3 - 7) // stem_stride + 1
        if s % 4 or s < 8:
            raise ValueError(f"Off-TANet: input_size {input_size} with stem_stride {stem_stride} gives {s}×{s} "
                             f"stem maps; need a multiple of 4 (≥ 8), e.g. 112 with stride 2 or 28 with stride 1")
        self.stem = nn.Conv2d(G * in_channels, G * 8, 7, stride=stem_stride, padding=3, groups=G)
        self.stem_bn = MaskedBatchNorm2d(G, 8)
        self.res1 = _Residual(G, 8, 18)
        self.res2 = _Residual(G, 18, 28)
        self.att = _AttentionResidual(G, 28, 8, size=s // 4)
        flat = 8 * (s // 8) ** 2
        self.fc1 = GroupedLinear(G, flat, 64)
        self.fc2 = GroupedLinear(G, 64, 64)
        self.fc3 = GroupedLinear(G, 64, num_classes)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, sample_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits of every copy (Off-TANet, Zhang, Liu, Zhou, PRICAI 2021; layers in the class docstring).

        Args:
            x: (B, C, S, S) features shared by all copies, or (B, G, C, S, S), copy g reading ``x[:, g]``;
                S = ``input_size``.
            sample_mask: (B, G) 0/1: the samples in each copy's batch-norm statistics (training mode only,
                :class:`MaskedBatchNorm2d`), or None.

        Returns:
            Logits (B, K) for one copy with a 4-D ``x``, else (B, G, K).

        Raises:
            ValueError: ``x`` not (B, C, S, S) or (B, G, C, S, S) with C = ``in_channels``, S = ``input_size`` (the
                message names the expected (C, S, S), the shape of ``x`` and, where they differ, the map size the
                attention block expects and would get).
        """
        S, stride, att = self.input_size, self.stem.stride[0], self.att.pos.shape[0]
        ah, aw = (((n - 1) // stride + 1) // 4 for n in x.shape[-2:]) if x.dim() >= 2 else (att, att)
        _check_maps("OffTANet", x, self.n_models, self.in_channels, S,
                    f": its attention block expects {att}×{att} maps, got {ah}×{aw} (check input_size)"
                    if (ah, aw) != (att, att) else "")
        h, grouped = _first_conv(self.stem, x, self.n_models, self.in_channels)
        h = self.stem_bn(F.relu(h), sample_mask)
        h = self.att(self.res2(self.res1(h, sample_mask), sample_mask), sample_mask)
        h = h.reshape(h.shape[0], self.n_models, -1)
        h = self.drop(F.relu(self.fc1(h)))
        h = self.drop(F.relu(self.fc2(h)))
        y = self.fc3(h)
        return y if grouped else y[:, 0]


# --------------------------------------------------------------------------------------------- #
# Your own recognizer
# --------------------------------------------------------------------------------------------- #

#: keyword arguments a custom factory may accept (passed only if its signature names them, or takes **kwargs)
FACTORY_ARGUMENTS = ("num_classes", "in_channels", "input_size", "dropout")


def load_recognizer_factory(spec: str, key: str = "model.module") -> Callable[..., nn.Module]:
    """Resolve ``model.module``: the callable that builds a user's recognizer
    (:func:`flownet.plugins.load_factory`).

    Args:
        spec: ``'package.module:factory'`` (importable from the current environment) or
            ``'path/to/file.py:factory'`` (a file, relative to the working directory). ``factory`` is a class or a
            function; a dotted attribute (``'pkg.mod:Zoo.small'``) is followed.

    Returns:
        The factory. :func:`build_recognizer` calls it with the keyword arguments of :data:`FACTORY_ARGUMENTS`
        that its signature accepts (``num_classes`` K, ``in_channels`` C = 3, ``input_size`` S in pixels,
        ``dropout``); it must return a ``torch.nn.Module`` mapping (B, C, S, S) to (B, K) logits.

    Raises:
        ValueError: a malformed spec, a missing file or module, an import error inside it (its message is kept),
            a missing attribute or one that is not callable; every message names the spec.
    """
    from flownet.plugins import load_factory
    return load_factory(spec, key)


def recognizer_source_sha256(spec: str, key: str = "model.module") -> str:
    """SHA-256 (hex) of the recognizer's code: the spec's module file and the file defining the factory
    (:func:`flownet.plugins.source_sha256`). A run records it, so a resumed run whose recognizer code changed is
    refused instead of mixing two models. Empty when neither has a source file.

    Raises:
        ValueError: as :func:`load_recognizer_factory`.
    """
    from flownet.plugins import source_sha256
    return source_sha256(spec, key)


class PlainRecognizer(nn.Module):
    """A user's recognizer as one copy of the training loop's recognizers.

    ``net`` is trained in place; :func:`build_recognizer` gives it what the factory returned, or, when the factory
    returned parameters or buffers it had returned before, a deep copy set back to them as first returned
    (:func:`_own_module`), so no state passes from one fold or seed to the next through a factory that reuses them.

    ``forward(x, sample_mask=None)``: x (B, C, S, S) → (B, K) logits of the wrapped module. ``sample_mask`` is
    accepted and ignored: the training loop gives a custom recognizer batches of its fold's training rows only
    (:func:`icegan.recognition.train_models`), so its batch-norm statistics never see another row.

    Raises (in ``forward``):
        ValueError: the module returned something other than a (B, K) float tensor (names the spec, the input
            shape and what came back).
    """

    n_models = 1

    def __init__(self, net: nn.Module, num_classes: int, spec: str = "", key: str = "model.module"):
        super().__init__()
        self.net, self.num_classes, self.spec, self.key = net, num_classes, spec, key

    def forward(self, x: torch.Tensor, sample_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the wrapped module, checked.

        Args:
            x: (B, C, S, S) features.
            sample_mask: accepted for the training loop's interface and ignored (class docstring).

        Returns:
            The module's (B, K) floating-point class logits, K = ``num_classes``.

        Raises:
            ValueError: the module returned anything else (names the spec, the input shape and what came back).
        """
        out = self.net(x)
        if not isinstance(out, torch.Tensor) or out.shape != (x.shape[0], self.num_classes) \
                or not out.is_floating_point():
            got = (f"{tuple(out.shape)} {str(out.dtype).replace('torch.', '')}" if isinstance(out, torch.Tensor)
                   else type(out).__name__)
            raise ValueError(f"{self.key}={self.spec!r} returned {got} for input {tuple(x.shape)}; a recognizer "
                             f"must return ({x.shape[0]}, {self.num_classes}) floating-point class logits")
        return out


def _build_custom(spec: str, n_models: int, num_classes: int = 3, in_channels: int = 3, input_size: int = 28,
                  dropout: float = 0.5, key: str = "model.module") -> PlainRecognizer:
    if n_models != 1:
        raise ValueError(f"{key}={spec!r}: a custom recognizer is trained one copy per fold and seed "
                         f"(n_models=1), not {n_models}")
    from flownet.plugins import call_factory
    offered = {"num_classes": num_classes, "in_channels": in_channels, "input_size": input_size, "dropout": dropout}
    net = call_factory(load_recognizer_factory(spec, key), offered, spec, key)
    if not isinstance(net, nn.Module):
        raise ValueError(f"{key}={spec!r} returned a {type(net).__name__}, not a torch.nn.Module")
    if not any(p.requires_grad for p in net.parameters()):
        raise ValueError(f"{key}={spec!r}: the module has no trainable parameters")
    return PlainRecognizer(_own_module(net, spec, key), num_classes, spec, key)


#: id of every parameter and buffer a custom factory has returned (while that tensor lives) -> its value as first
#: returned, cloned (None: a lazy module's parameter, not yet materialised): a later build that returns one of them
#: again gets a copy set back to these values (:func:`_own_module`)
_FIRST_RETURNED: dict[int, "torch.Tensor | None"] = {}


def _own_module(net: nn.Module, spec: str, key: str) -> nn.Module:
    """``net`` (a custom factory's return) as a module this build alone trains.

    A module none of whose parameters and buffers a factory returned before is used as it is (and those tensors'
    values as returned are remembered while they live). One that holds such a tensor again (a factory that builds its
    network, or a pretrained backbone or head, once and returns it on every call, whole, in a new wrapper, or shallow-
    copied) is deep-copied and the copy's tensors that the factory had returned before are set back to their values
    when first returned: the previous fold or seed trained those tensors themselves (and
    :func:`icegan.recognition.check_custom_recognizer`'s training step, on the first clips of the table, moved their
    batch-norm statistics), so using them again would start this fold from another fold's training, which saw this
    fold's test subject. Modules without parameters or buffers (a shared ``nn.ReLU``) do not count.

    Raises:
        ValueError: a module returned again that ``copy.deepcopy`` cannot copy, or whose tensors cannot be set back
            (a lazy module materialised since it was first returned, a tensor whose shape changed); names the key and
            spec and says to return a new module per call.
    """
    tensors = list(net.parameters()) + list(net.buffers())
    again = [t for t in tensors if id(t) in _FIRST_RETURNED]
    if not again:
        for t in tensors:
            first = None if isinstance(t, nn.parameter.UninitializedTensorMixin) else t.detach().clone()
            _FIRST_RETURNED[id(t)] = first
            weakref.finalize(t, _FIRST_RETURNED.pop, id(t), None)
        return net
    fix = "return a new module per call (load pretrained weights into it there)"
    memo: dict = {}
    try:
        copied = copy.deepcopy(net, memo)
    except Exception as exc:
        raise ValueError(f"{key}={spec!r} returned tensors it had returned before (so trained by an earlier fold or "
                         f"seed), and copy.deepcopy cannot copy the module ({type(exc).__name__}: {exc}); "
                         f"{fix}") from exc
    with torch.no_grad():
        for t in again:
            first, dup = _FIRST_RETURNED[id(t)], memo.get(id(t))
            if first is None and isinstance(t, nn.parameter.UninitializedTensorMixin):
                continue                        # a lazy parameter never materialised: its copy is as first returned
            if first is None or dup is None or dup.shape != first.shape:
                raise ValueError(f"{key}={spec!r} returned tensors it had returned before (so trained by an earlier "
                                 f"fold or seed), and one of shape {tuple(t.shape)} cannot be set back to its value "
                                 f"as first returned (a lazy module since materialised, or a changed shape); {fix}")
            dup.copy_(first)
    return copied


RECOGNIZERS = {"ststnet": STSTNet, "offtanet": OffTANet}


def build_recognizer(name: str, n_models: int = 1, module: str = "", key: str = "model.module",
                     **kwargs) -> nn.Module:
    """Construct a recognizer by name: ``ststnet``, ``offtanet``, or ``custom`` (the factory ``module`` names,
    :func:`load_recognizer_factory`, wrapped in :class:`PlainRecognizer`; only ``num_classes``, ``in_channels``,
    ``input_size`` and ``dropout`` of ``kwargs`` reach it; ``key``: the config key named in its error messages).
    A custom module that holds parameters or buffers the factory returned before (the whole module, a submodule or a
    shared tensor) is deep-copied and those tensors are set back to their values as first returned
    (:func:`_own_module`): each call returns a module of its own that starts where the factory's module started
    (pretrained weights included), even if the factory returns the same object every time.

    Raises:
        ValueError: unknown name (the message lists the known ones); for ``custom``, an empty or unusable
            ``module``, a module returned again that cannot be copied and set back (:func:`_own_module`), or
            ``n_models`` > 1.
    """
    if name.lower() == "custom":
        if not module:
            raise ValueError("model.name=custom needs model.module='package.module:factory' or 'file.py:factory'")
        allowed = {k: v for k, v in kwargs.items() if k in FACTORY_ARGUMENTS}
        return _build_custom(module, n_models, key=key, **allowed)
    try:
        cls = RECOGNIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown recognizer '{name}'; choose one of {sorted(RECOGNIZERS) + ['custom']}") from None
    return cls(n_models=n_models, **kwargs)
