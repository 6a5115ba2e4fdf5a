"""Classical optical-flow baselines behind the same interface as the networks.

``estimate(img1, img2) -> (B, 2, H, W)`` flow in pixels (channel 0 = u, 1 = v; flow maps pixel x of
img1 to x + flow(x) in img2). Images are (B, 1 or 3, H, W) float tensors in [0, 1]; RGB is converted
to grey (ITU-R 601 luma) and quantised to uint8 as OpenCV's implementations expect. These run on
the CPU through OpenCV whatever ``device`` is; the result is returned on the images' device.
Not differentiable.

* :class:`TVL1Estimator`: ``cv2.optflow.DualTVL1OpticalFlow`` (Zach, Pock, Bischof 2007) with OpenCV's
  default parameters unless overridden.
* :class:`FarnebackEstimator`: ``cv2.calcOpticalFlowFarneback`` with the commonly used parameters
  (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2). Unreliable on frames under
  10 pixels a side (see the class).
"""
from __future__ import annotations

import numpy as np
import torch

from .models.inputs import check_image_batch

__all__ = ["to_gray_uint8", "TVL1Estimator", "FarnebackEstimator"]


#: how far above 1 a float image may reach and still be clamped (a resampling's rounding), not refused as 0-255
_OVER_ONE = 0.01


def to_gray_uint8(img: torch.Tensor) -> np.ndarray:
    """(B, 1|3, H, W) float [0, 1] → (B, H, W) uint8 grey (values clamped to [0, 1] first).

    Raises:
        ValueError: wrong shape; an integer or bool dtype (0-255 frames: the message of
            :func:`flownet.models.inputs.check_image_batch`, as SRFlowNet's); or a float image whose largest value is
            above ``1 + 0.01`` (0-255 frames as floats; the message gives that value to 6 decimals and the 0.01).
            Either was clamped to a blank image: zero flow, no error.
    """
    if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[1] not in (1, 3):
        shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"images must be (B, 1 or 3, H, W) float tensors in [0, 1], got {shape}")
    check_image_batch(img)
    x = img.detach().float().cpu()
    top = float(x.max()) if x.numel() else 0.0
    if top > 1.0 + _OVER_ONE:
        raise ValueError(f"images must be in [0, 1]: the largest value is {round(top, 6)} (above 1 + {_OVER_ONE}, the "
                         f"most a resampling's rounding may add; 0-255 frames? divide 0-255 frames by 255 first); "
                         f"the classical methods would see a blank image and give zero flow")
    if x.shape[1] == 3:
        x = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    else:
        x = x[:, 0]
    return (x.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()


class _Classical:
    name = "classical"

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def estimate(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        """Flow (B, 2, H, W) in pixels from img1 to img2 ((B, 1|3, H, W) in [0, 1])."""
        if img1.shape != img2.shape:
            raise ValueError(f"image pair shapes differ: {tuple(img1.shape)} vs {tuple(img2.shape)}")
        g1, g2 = to_gray_uint8(img1), to_gray_uint8(img2)
        flows = [self._pair(a, b) for a, b in zip(g1, g2)]
        out = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()
        return out.to(img1.device)

    __call__ = estimate


class TVL1Estimator(_Classical):
    """OpenCV Dual TV-L1 (``cv2.optflow.DualTVL1OpticalFlow_create(**params)``). With the default parameters two
    identical frames give exactly zero flow at every size measured (2x2 to 128x128)."""
    name = "tvl1"

    def __init__(self, device="cpu", **params):
        super().__init__(device)
        import cv2
        if not hasattr(cv2, "optflow"):
            raise ImportError("cv2.optflow is missing: install opencv-contrib-python(-headless)")
        self.params = params
        self._algo = cv2.optflow.DualTVL1OpticalFlow_create(**params)

    def _pair(self, a, b):
        return self._algo.calc(a, b, None).astype(np.float32)

    # The OpenCV algorithm object cannot be pickled; it is rebuilt from ``params`` so that an estimator
    # can travel to another process (Ray fold tasks, DataLoader workers).
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_algo", None)
        return state

    def __setstate__(self, state: dict) -> None:
        import cv2
        self.__dict__.update(state)
        self._algo = cv2.optflow.DualTVL1OpticalFlow_create(**self.params)


class FarnebackEstimator(_Classical):
    """OpenCV Gunnar-Farneback dense flow.

    Frames under 10 pixels a side: OpenCV down-weights a 5-pixel border on each side of the frame
    (``FarnebackUpdateMatrices``); below 10 pixels the two borders overlap and two IDENTICAL frames give pixels
    of flow. Measured with these parameters on 24 CASME II faces resized to square sides 6..9: mean |flow| up to
    2.4 px, max 4.6 px (8x8: mean 1.8, max 3.6; 8x64: mean 0.9), the same with levels 1 or 5, winsize 5 or 31,
    poly_n 7 (not the pyramid, then). From 10 pixels a side on, identical frames give mean |flow| <= 0.08 px
    (0.004 px at 64x64) and max <= 0.5 px, at the border. Such frames are not refused (``icegan flow run``
    accepts 8x8 images with every method), so do not trust a Farneback flow of frames under 10 pixels a side.
    """
    name = "farneback"

    def __init__(self, device="cpu", pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5,
                 poly_sigma=1.2, flags=0):
        super().__init__(device)
        self.params = dict(pyr_scale=pyr_scale, levels=levels, winsize=winsize, iterations=iterations,
                           poly_n=poly_n, poly_sigma=poly_sigma, flags=flags)

    def _pair(self, a, b):
        import cv2
        return cv2.calcOpticalFlowFarneback(a, b, None, **self.params).astype(np.float32)
