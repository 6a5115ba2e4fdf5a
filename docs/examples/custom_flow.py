"""An example of your own flow network for icegan: coarse-to-fine Horn–Schunck written in torch.

Score it, and use it for the main job's features, like any shipped method::

    icegan flow eval --model custom --module docs/examples/custom_flow.py:HornSchunck --data synthetic-face
    python train.py --config configs/casme2.yaml flow.method=custom flow.module=docs/examples/custom_flow.py:HornSchunck

Contract: the factory (called without arguments) returns a ``torch.nn.Module`` whose ``forward(img1, img2)`` takes
two image batches (B, C, H, W), float in [0, 1] (C = 1 for the grey facial crops), and returns the flow from img1 to
img2 as (B, 2, H, W) in pixels (channel 0 horizontal), or a list of refinements whose last element is final. A
network with learned weights can be given a state-dict file with ``--weights`` / ``flow.weights``; one with a
``meta = {"size": S}`` attribute is run at S×S pixels when ``--input-size auto``.

Horn & Schunck, "Determining optical flow", Artificial Intelligence 17 (1981): minimise
∫ (I_x u + I_y v + I_t)² + α² (|∇u|² + |∇v|²) by Jacobi iterations of the Euler–Lagrange equations (their Eq. 12–13),
here on an image pyramid with backward warping, so that motions of a few pixels are followed. It is differentiable
(the joint GAN loss can back-propagate through it) and has no learned weights.
"""
import torch
import torch.nn.functional as F
from torch import nn


def _warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """img (B, 1, H, W) sampled at x + flow(x) (bilinear, borders replicated): img2 warped back towards img1."""
    b, _, h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=img.dtype, device=img.device),
                            torch.arange(w, dtype=img.dtype, device=img.device), indexing="ij")
    gx = 2 * (xs + flow[:, 0]) / max(w - 1, 1) - 1
    gy = 2 * (ys + flow[:, 1]) / max(h - 1, 1) - 1
    return F.grid_sample(img, torch.stack([gx, gy], -1), align_corners=True, padding_mode="border")


class HornSchunck(nn.Module):
    """Coarse-to-fine Horn–Schunck flow.

    Args:
        alpha: smoothness weight α, in units of image intensity (images in [0, 1]).
        iterations: Jacobi iterations per pyramid level.
        levels: pyramid levels (each halves the side; levels stop above 8 pixels).

    ``forward(img1, img2)``: (B, C, H, W) in [0, 1] → flow (B, 2, H, W) in pixels.
    """

    def __init__(self, alpha: float = 0.05, iterations: int = 60, levels: int = 3):
        super().__init__()
        self.alpha, self.iterations, self.levels = alpha, iterations, levels
        avg = torch.tensor([[1, 2, 1], [2, 0, 2], [1, 2, 1]], dtype=torch.float32) / 12   # HS's neighbour average
        self.register_buffer("avg", avg[None, None], persistent=False)
        dx = torch.tensor([[-0.5, 0.0, 0.5]], dtype=torch.float32)
        self.register_buffer("dx", dx[None, None], persistent=False)
        self.register_buffer("dy", dx.t()[None, None].contiguous(), persistent=False)

    def _increment(self, i1: torch.Tensor, i2w: torch.Tensor) -> torch.Tensor:
        """Flow increment (B, 2, h, w) between img1 and the warped img2 at one level (Jacobi iterations)."""
        pad = lambda t: F.pad(t, (1, 1, 1, 1), mode="replicate")          # noqa: E731
        mean = (i1 + i2w) / 2
        ix = F.conv2d(F.pad(mean, (1, 1, 0, 0), mode="replicate"), self.dx)
        iy = F.conv2d(F.pad(mean, (0, 0, 1, 1), mode="replicate"), self.dy)
        it = i2w - i1
        denom = self.alpha ** 2 + ix ** 2 + iy ** 2
        u = torch.zeros_like(i1)
        v = torch.zeros_like(i1)
        for _ in range(self.iterations):
            ub, vb = F.conv2d(pad(u), self.avg), F.conv2d(pad(v), self.avg)
            common = (ix * ub + iy * vb + it) / denom
            u, v = ub - ix * common, vb - iy * common
        return torch.cat([u, v], 1)

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        i1, i2 = img1.float().mean(1, keepdim=True), img2.float().mean(1, keepdim=True)
        pyramid = [(i1, i2)]
        while len(pyramid) < self.levels and min(pyramid[-1][0].shape[-2:]) >= 16:
            a, b = pyramid[-1]
            pyramid.append((F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)))
        flow = None
        for a, b in reversed(pyramid):
            if flow is None:
                flow = torch.zeros(a.shape[0], 2, *a.shape[-2:], dtype=a.dtype, device=a.device)
            else:                                   # to this level's size, in this level's pixels
                scale = torch.tensor([a.shape[-1] / flow.shape[-1], a.shape[-2] / flow.shape[-2]],
                                     dtype=a.dtype, device=a.device).view(1, 2, 1, 1)
                flow = F.interpolate(flow, size=a.shape[-2:], mode="bilinear", align_corners=False) * scale
            flow = flow + self._increment(a, _warp(b, flow))
        return flow
