"""SRFlowNet training loss: gamma-decayed sequence L1 loss plus exactly one regularizer (SRFlow Sec. IV-B).

``sequence_loss``: ``sum_i gamma^(n-i-1) * mean_{valid pixels} (|du_i| + |dv_i|)``, pixels: the per-pixel L1
norm of the flow error, summed over the two channels and averaged over the valid pixels. RAFT's and SKFlow's
``sequence_loss`` average ``|f^i - f_gt|`` over the channels as well (a mean over 2·B·H·W values, invalid pixels
counted as 0), so this value is **twice** theirs on an all-valid batch: a regularizer weight lambda_N added to it
acts at half the strength it would have beside SKFlow's loss. ``srflownet_loss`` adds one regularizer from
:mod:`flownet.regularizers` (``none`` for the plain backbone); its log ``"epe_loss"`` is this sequence loss,
not the end-point error (the EPE is :func:`flownet.metrics.flow_metrics`'s ``"EPE"``).
"""
from __future__ import annotations

import torch

from .metrics import _bool_mask, flow_magnitude
from .regularizers import REGULARIZERS, _flows, regularizer_loss, stage_weights

__all__ = ["sequence_loss", "srflownet_loss", "NO_VALID_PIXEL"]

#: the refusal of a batch without a valid ground-truth pixel
NO_VALID_PIXEL = "no valid pixel in the batch"
_MAX_FLOW = 400.0       #: ground-truth flow at least this long (px) is left out of the sequence loss


def sequence_loss(flows, gt: torch.Tensor, valid: torch.Tensor | None = None, gamma: float = 0.8,
                  max_flow: float = _MAX_FLOW) -> torch.Tensor:
    """Gamma-weighted L1 flow loss over the prediction sequence (scalar tensor, pixels).

    ``sum_i gamma^(n-i-1) * mean over valid pixels of (|du_i| + |dv_i|)``: the two channels' absolute errors are
    summed per pixel, so the value is 2x RAFT's / SKFlow's ``sequence_loss`` (a mean over channels too) on an
    all-valid batch; e.g. a prediction off by (1, 1) px everywhere scores 2.0 here, 1.0 there (its EPE is √2).

    Args:
        flows: list of (B, 2, H, W) predictions, last = final.
        gt: (B, 2, H, W) ground truth; valid: (B, H, W) torch.bool, or another dtype holding only 0 and 1 (read
            on the host once then) (None → all); pixels with |gt| >= max_flow are ignored.

    Raises:
        ValueError: an empty ``flows`` list, a prediction not (B, 2, H, W), shape mismatch, a valid mask not
            (B, H, W) (a (B, 1, H, W) or (H, W) mask is refused, not broadcast) or with values other than 0 / 1
            (e.g. 0.2), or no valid pixel.
    """
    return _sequence_loss(flows, gt, valid, gamma, max_flow, check_valid=True)[0]


def _sequence_loss(flows, gt, valid, gamma, max_flow, check_valid):
    """:func:`sequence_loss` and the batch's number of valid flow values (a tensor); ``check_valid=False`` leaves
    the refusal of 0 (a read of the count on the host) to the caller."""
    flows = _flows(flows)       # a tensor as a list of one; refuses an empty list
    bad = next((i for i, f in enumerate(flows) if f.shape != gt.shape), None)
    if bad is not None:         # the stage that differs is named (the first one's shape was shown, maybe a good one)
        raise ValueError(f"prediction {bad} of {len(flows)} is {tuple(flows[bad].shape)}, which does not match the "
                         f"ground truth {tuple(gt.shape)}: every prediction must be (B, 2, H, W) of its shape")
    want = (gt.shape[0], *gt.shape[2:])
    if valid is not None and tuple(valid.shape) != want:    # (B, 1, H, W) or (H, W) would broadcast across samples
        raise ValueError(f"valid mask {tuple(valid.shape)} must be (B, H, W) = {want}, one mask per sample of the "
                         f"ground truth {tuple(gt.shape)}")
    v = torch.ones(want, dtype=torch.bool, device=gt.device) if valid is None else _bool_mask(valid)
    v = v & (flow_magnitude(gt) < max_flow)
    vf = v[:, None].to(gt.dtype)
    n = vf.sum() * 2.0
    if check_valid and n == 0:
        raise ValueError(NO_VALID_PIXEL)
    total = 0.0
    for w, f in zip(stage_weights(len(flows), gamma), flows):
        total = total + w * ((f - gt).abs() * vf).sum() / n * 2.0
    return total, n


def srflownet_loss(flows, gt, valid=None, img1=None, mask=None, regularizer: str = "fdr", gamma: float = 0.8,
                   reg_weight: float | None = None, image_scale: float = 1.0,
                   mask_mode: str = "interior", logs_as_floats: bool = True) -> tuple[torch.Tensor, dict]:
    """Total loss = sequence loss + one regularizer. Returns (loss, {"epe_loss", "reg_loss"} floats).

    ``"epe_loss"`` is :func:`sequence_loss` (the summed-channel L1 loss, 2x RAFT's / SKFlow's), not the end-point
    error; the key keeps its name because the training logs, TensorBoard tag ``train/epe_loss`` and tests read it.

    ``logs_as_floats=False``: the logs as detached 0-dim tensors, nothing read on the host, plus
    ``"valid_values"`` (the batch's number of valid flow values) for the caller to read with them in one copy
    (:func:`flownet.devices.host_values`) and to refuse 0 with :data:`NO_VALID_PIXEL`.

    Raises:
        ValueError: unknown regularizer (see :data:`flownet.regularizers.REGULARIZERS`); no valid pixel (only with
            ``logs_as_floats``).
    """
    if regularizer not in REGULARIZERS:
        raise ValueError(f"unknown regularizer '{regularizer}'; choose one of {list(REGULARIZERS)}")
    seq, n = _sequence_loss(flows, gt, valid, gamma, _MAX_FLOW, check_valid=logs_as_floats)
    reg = regularizer_loss(regularizer, flows, img1=img1, mask=mask, gamma=gamma, weight=reg_weight,
                           image_scale=image_scale, mask_mode=mask_mode)
    if not logs_as_floats:
        return seq + reg, {"epe_loss": seq.detach(), "reg_loss": reg.detach(), "valid_values": n.detach()}
    return seq + reg, {"epe_loss": float(seq.detach()), "reg_loss": float(reg.detach())}
