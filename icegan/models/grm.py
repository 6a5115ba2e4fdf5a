"""Graph reasoning module (GRM) of the ICE-GAN generator.

Source: ``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Section III-A, Eq. 1-2 and the
residual ``g = f ⊕ T⁻¹(M̂)`` below Eq. 2.

For one encoder feature map ``f ∈ R^{C×H×W}``:

1. ``T(·)`` (supernodes): a 1×1 convolution ``C → N̂s`` gives, for every pixel, projection weights
   onto ``N̂s`` supernodes, ``P ∈ R^{N̂s×HW}`` (real-valued and unnormalised, no softmax: the paper
   only says T is "a convolutional operation"); the supernode features are
   ``f̂ = f·Pᵀ / (H·W) ∈ R^{C×N̂s}`` (one ``N̂s``-vector per channel).
2. Eq. 1: ``M = φ(f̂) θ(f̂)ᵀ / sqrt(d)`` with ``φ, θ`` linear maps ``R^{N̂s} → R^{d}``; ``M ∈ R^{C×C}``
   is the *channel graph* (node ``j`` = channel ``j``, node feature = row ``m_j ∈ R^{1×C}``).
   The ``1/sqrt(d)`` is the usual dot-product-attention scale and keeps ``M`` of order one.
3. Eq. 2: ``M̂ = σ((Ã + I) M W)`` computed by :class:`torch_geometric.nn.DenseGCNConv` over the fully
   connected channel graph, ``σ`` = ReLU. **How the learnable adjacency is kept well behaved:**
   the free parameter ``A ∈ R^{C×C}`` is initialised from ``N(0, 1)`` (as in the paper) and used as
   ``Ã = sigmoid((A + Aᵀ)/2)``: symmetric (the paper's graph is undirected) with every edge in
   (0, 1). ``Ã + I`` (self loops) is then symmetrically degree-normalised by DenseGCNConv,
   ``D^{-1/2}(Ã + I)D^{-1/2}``, whose spectral radius is ≤ 1, so the propagation cannot blow up,
   however ``A`` drifts during training. It is not positive semi-definite (its smallest eigenvalue is
   negative: about -0.03 at initialisation for C = 256), so propagation can flip a feature's sign.
4. ``T⁻¹(·)``: ``M̂`` mixes the channels of the supernode features, ``M̂ f̂ ∈ R^{C×N̂s}``, which are
   scattered back to pixels with the same assignment ``P`` (``(M̂ f̂) P ∈ R^{C×HW}``) and passed
   through a 1×1 convolution; the output is ``g = f + T⁻¹(M̂)``.

**How it is computed (same result as the equations, fewer operations).** The normalised adjacency
``Â = D^{-1/2}(Ã + I)D^{-1/2}`` depends only on the parameter ``A``, so it is computed once per
forward for the whole batch (DenseGCNConv would renormalise a copy per sample). ``M`` has rank
≤ ``d`` (it is ``φθᵀ``), so Eq. 2's ``Â M W`` is evaluated as ``(Â φ)(θᵀ W)/sqrt(d)``: ``O(C²d)``
multiply-adds per sample instead of ``O(C³)`` (32× fewer at C = 256, d = 8). The layer still owns a
``torch_geometric.nn.DenseGCNConv`` (its weight ``W`` and bias are the parameters used here, so
checkpoints are unchanged). The final 1×1 convolution of ``T⁻¹`` is linear over channels, so it
is applied to the ``C×N̂s`` supernode features before they are scattered to the ``H·W`` pixels
(``O(C²N̂s)`` instead of ``O(C²HW)``); ``T(·)`` (a 1×1 convolution to N̂s = 8 channels, slow in
oneDNN) is one matrix product, and the products with the shared ``Â`` and ``W`` are single 2-D
matrix products over the stacked batch. ``tests/test_gan_models.py`` checks the output against a per-sample
implementation of Eq. 1–2 written with plain matrix algebra.
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

__all__ = ["GraphReasoningModule"]


class GraphReasoningModule(nn.Module):
    """GRM on one feature map (Eq. 1-2 of the ICE-GAN paper), shape preserving.

    Args:
        channels: ``C``, channels of the feature map (= nodes of the channel graph).
        n_nodes: ``N̂s``, number of supernodes produced by ``T(·)``.
        attn_dim: ``d``, output size of the linear maps ``φ`` and ``θ`` (default ``N̂s``).
        factored: True (default): Eq. 2 evaluated as ``(Â φ)(θᵀ W)`` with ``Â`` computed once per
            forward (see the module docstring); False: the reference path, ``M`` formed explicitly
            and passed to ``DenseGCNConv.forward`` (normalises ``Ã + I`` for every sample). Same
            parameters and, up to float rounding, the same output; kept for tests and the speed
            benchmark (``bench/gan_speed.py``).

    Shapes:
        ``forward(f)``: ``f`` (B, C, H, W) → ``g`` (B, C, H, W), any H, W ≥ 1.

    Raises:
        ValueError: ``f`` is not 4-D or its channel count differs from ``channels``.
    """

    def __init__(self, channels: int, n_nodes: int = 8, attn_dim: int | None = None, factored: bool = True):
        super().__init__()
        if channels < 1 or n_nodes < 1:
            raise ValueError(f"GraphReasoningModule: channels ({channels}) and n_nodes ({n_nodes}) must be >= 1")
        self.channels = channels
        self.factored = factored
        self.n_nodes = n_nodes
        self.attn_dim = attn_dim or n_nodes
        self.assign = nn.Conv2d(channels, n_nodes, kernel_size=1)          # T(·)
        self.phi = nn.Linear(n_nodes, self.attn_dim)                        # φ
        self.theta = nn.Linear(n_nodes, self.attn_dim)                      # θ
        self.adj = nn.Parameter(torch.randn(channels, channels))            # A ~ N(0, 1)
        # imported here, not with the module: torch_geometric (0.4-1 s) is not needed by a process that only reads
        # icegan.models.generator.level_widths (the config check of `icegan features`)
        # torch_geometric 2.8 scripts helpers at import; torch 2.14 deprecates jit.script
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
            from torch_geometric.nn import DenseGCNConv
        self.gcn = DenseGCNConv(channels, channels)                         # (Ã+I) M W (+ bias)
        self.out = nn.Conv2d(channels, channels, kernel_size=1)             # last step of T⁻¹(·)

    def adjacency(self) -> Tensor:
        """``Ã + I`` (C, C): the symmetric, (0, 1)-bounded learnable adjacency with self loops."""
        a = torch.sigmoid(0.5 * (self.adj + self.adj.t()))
        return a + torch.eye(self.channels, device=a.device, dtype=a.dtype)

    def normalized_adjacency(self) -> Tensor:
        """``Â = D^{-1/2}(Ã + I)D^{-1/2}`` (C, C), symmetric, spectral radius ≤ 1 (DenseGCNConv's normalisation)."""
        a = self.adjacency()
        d = a.sum(dim=1).clamp(min=1).pow(-0.5)
        return d[:, None] * a * d[None, :]

    def forward(self, f: Tensor) -> Tensor:
        """``g = f + T⁻¹(M̂)`` for one feature map (Eq. 1–2 and the residual below them,
        ``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Sec. III-A; computation in the module docstring).

        Args:
            f: (B, channels, H, W) encoder feature map, any H, W >= 1.

        Returns:
            g (B, channels, H, W); the factored and the reference path agree up to float rounding.

        Raises:
            ValueError: ``f`` not 4-D or with another channel count than ``channels``.
        """
        if f.dim() != 4 or f.shape[1] != self.channels:
            raise ValueError(
                f"GraphReasoningModule expects (B, {self.channels}, H, W), got {tuple(f.shape)}")
        b, c, h, w = f.shape
        if not self.factored:                                              # reference path
            x = f.flatten(2)                                               # (B, C, HW)
            p = self.assign(f).flatten(2)                                  # (B, N̂s, HW)
            f_hat = torch.bmm(x, p.transpose(1, 2)) / (h * w)              # (B, C, N̂s)
            m = torch.bmm(self.phi(f_hat), self.theta(f_hat).transpose(1, 2)) / math.sqrt(self.attn_dim)
            m_hat = torch.relu(self.gcn(m, self.adjacency(), add_loop=False))
            return f + self.out(torch.bmm(torch.bmm(m_hat, f_hat), p).view(b, c, h, w))
        nn_, d = self.n_nodes, self.attn_dim
        x = f.contiguous().view(b, c, h * w)                               # (B, C, HW)
        # T(·) as one matrix product (a 1×1 conv to N̂s = 8 channels is slow in oneDNN)
        p = torch.matmul(self.assign.weight.view(nn_, c), x) + self.assign.bias.view(1, nn_, 1)  # (B, N̂s, HW)
        f_hat = torch.bmm(x, p.transpose(1, 2)).div_(h * w)               # (B, C, N̂s)
        # Eq. 1-2 with M = φθᵀ/sqrt(d) kept factored: Â M W = (Â φ)(θᵀ W)/sqrt(d); the products with
        # the shared matrices Â (symmetric) and W are single 2-D matmuls over the stacked batch
        phi_t = self.phi(f_hat).transpose(1, 2).reshape(b * d, c)          # φᵀ (B·d, C)
        theta_t = self.theta(f_hat).transpose(1, 2).reshape(b * d, c)      # θᵀ (B·d, C)
        left_t = torch.mm(phi_t, self.normalized_adjacency().to(f.dtype)).view(b, d, c)   # (Âφ)ᵀ
        right = torch.mm(theta_t, self.gcn.lin.weight.t().to(f.dtype)).view(b, d, c)      # θᵀW
        pre = torch.baddbmm(self.gcn.bias.to(f.dtype).view(1, 1, c), left_t.transpose(1, 2), right,
                            alpha=1.0 / math.sqrt(d))                      # (B, C, C)
        m_hat = pre.relu_()                                                # M̂, Eq. 2
        # T⁻¹: the 1×1 convolution is linear over channels, so it is applied to the C×N̂s supernode
        # features before scattering them back to the H·W pixels: W_out (M̂ f̂) P + b_out (+ f)
        q_t = torch.bmm(m_hat, f_hat).transpose(1, 2).reshape(b * nn_, c)  # (M̂ f̂)ᵀ (B·N̂s, C)
        q = torch.mm(q_t, self.out.weight.view(c, c).t().to(f.dtype)).view(b, nn_, c).transpose(1, 2)
        y = torch.baddbmm(x, q, p)                                         # f + W_out M̂ f̂ P, (B, C, HW)
        y += self.out.bias.view(1, c, 1).to(f.dtype)
        return y.view(b, c, h, w)
