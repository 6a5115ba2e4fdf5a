"""Perceptual cost networks for the identity-preserving loss L_ip (Eq. 4).

Source: ``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Section III-C: ``L_per`` keeps a
perceptual similarity between the onset ``X_on`` and the synthetic apex ``X_syn`` in the feature
space of a cost network ("usually a pre-trained CNN"). Two cost networks are offered:

``embedding`` (default, offline): identity consistency in the generator's own bottleneck,
    ``L_per = ‖ê(G(x, z, c)) − ê(x)‖²`` with ``ê = e/‖e‖`` the L2-normalised identity embedding of
    :meth:`Generator.embed`. The encoder is used as a *frozen* cost network inside this term
    (its parameters are detached, so the term only moves the synthetic image, not the metric)
    and the onset's embedding is a constant target. Needs no downloaded weights.
``vgg16``: mean squared difference of torchvision VGG16 ``features[:16]`` (up to relu3_3)
    activations of onset and synthetic apex (grayscale repeated to RGB, ImageNet normalisation).
    The ImageNet weights are read only from the local torch cache
    (``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``) or an explicit ``weights_path``; nothing is
    downloaded. A missing file raises :class:`FileNotFoundError` saying where to put it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["EmbeddingPerceptual", "VGGPerceptual", "build_perceptual", "vgg16_weights_file", "VGG16_FILE"]

#: file name torchvision uses for VGG16 ImageNet weights in the torch hub cache
VGG16_FILE = "vgg16-397923af.pth"


class _Embed(nn.Module):
    def __init__(self, g: nn.Module):
        super().__init__()
        self.g = g

    def forward(self, x: Tensor) -> Tensor:
        return self.g.embed(x)


class EmbeddingPerceptual(nn.Module):
    """Offline perceptual cost: identity consistency in the generator's embedding.

    ``forward(generator, onset (B,1,H,W), fake (B,1,H,W))`` → scalar, mean over the batch of
    ``‖ê(fake) − ê(onset)‖²`` ∈ [0, 4].
    """

    def forward(self, generator: nn.Module, onset: Tensor, fake: Tensor, onset_embedding: Tensor | None = None) -> Tensor:
        """L_per of Eq. 4 (``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Sec. III-C) in the generator's
        embedding: the batch mean of ``‖ê(fake) − ê(onset)‖²``.

        Args:
            generator: the :class:`~icegan.models.generator.Generator` whose :meth:`embed` is the cost network; its
                parameters enter detached, so the term moves only ``fake`` (and, through it, what generated it).
            onset: (B, C, H, W) real onset faces in [-1, 1]; their embedding is a constant target (no gradient).
            fake: (B, C, H, W) synthetic apexes in [-1, 1], the shape of ``onset``.
            onset_embedding: (B, id_dim) ``generator.embed(onset)`` when the caller has it already (the trainer's
                generator pass encodes the onsets with the same weights), so it is not computed again; detached.

        Returns:
            Scalar tensor in [0, 4] (squared distance of unit vectors), differentiable with respect to ``fake``.

        Raises:
            ValueError: from :meth:`Generator.embed`: ``onset`` or ``fake`` not (B, in_channels, img_size, img_size).
        """
        if onset_embedding is not None:
            if onset_embedding.shape != (onset.shape[0], getattr(generator, "id_dim", onset_embedding.shape[1])):
                raise ValueError(f"EmbeddingPerceptual: onset_embedding {tuple(onset_embedding.shape)} is not the "
                                 f"generator's embedding of {onset.shape[0]} onsets")
            target = F.normalize(onset_embedding.detach(), dim=1)
        else:
            with torch.no_grad():
                target = F.normalize(generator.embed(onset), dim=1)
        wrapper = _Embed(generator)
        params = {f"g.{k}": v.detach() for k, v in generator.named_parameters()}
        params.update({f"g.{k}": v for k, v in generator.named_buffers()})
        e_fake = F.normalize(functional_call(wrapper, params, (fake,)), dim=1)
        return ((e_fake - target) ** 2).sum(dim=1).mean()


class VGGPerceptual(nn.Module):
    """VGG16 (ImageNet) feature-space distance up to relu3_3; frozen.

    Args:
        weights_path: a torchvision VGG16 state dict file; default: ``<torch hub dir>/checkpoints/vgg16-397923af.pth``.
    ``forward(generator, onset, fake)`` → scalar mean squared feature difference (``generator`` unused;
    the signature matches :class:`EmbeddingPerceptual`). Inputs (B, 1 or 3, H, W) in [-1, 1].
    Raises:
        FileNotFoundError: the weights file is absent (nothing is downloaded).
        RuntimeError: the file is not a VGG16 state dict (only the ``features.*`` entries up to
            relu3_3 are read; the classifier's may be absent).
    """

    def __init__(self, weights_path: str | Path | None = None):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers
        path = vgg16_weights_file(weights_path)
        features = make_layers(cfgs["D"])[:16]          # VGG16 convolutional layers up to relu3_3
        from flownet.models.state_dict import read_torch_file
        state = read_torch_file(path, "VGG16 weights")
        want = features.state_dict()
        try:
            sub = {k: state[f"features.{k}"] for k in want}
            for k, v in sub.items():
                if v.shape != want[k].shape:
                    raise KeyError(f"features.{k} has shape {tuple(v.shape)}, expected {tuple(want[k].shape)}")
        except (KeyError, TypeError) as exc:
            raise RuntimeError(f"{path} is not a torchvision VGG16 state dict: {exc}") from None
        features.load_state_dict(sub)
        self.features = features.eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _feat(self, x: Tensor) -> Tensor:
        x = (x + 1) / 2
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.features((x - self.mean) / self.std)

    def forward(self, generator: nn.Module | None, onset: Tensor, fake: Tensor,
                onset_embedding: Tensor | None = None) -> Tensor:
        """L_per of Eq. 4 (``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Sec. III-C) with VGG16 as the
        cost network: mean squared difference of the relu3_3 activations of ``fake`` and ``onset``.

        Args:
            generator, onset_embedding: unused (the signature matches :meth:`EmbeddingPerceptual.forward`).
            onset: (B, 1 or 3, H, W) in [-1, 1] (mapped to [0, 1], grey repeated to RGB, ImageNet-normalised); its
                features are the target (no gradient).
            fake: (B, 1 or 3, H, W) in [-1, 1], the shape of ``onset``.

        Returns:
            Scalar tensor: the mean over the (B, 256, ⌊H/4⌋, ⌊W/4⌋) feature elements, differentiable with respect to
            ``fake`` (the VGG weights are frozen).
        """
        with torch.no_grad():
            target = self._feat(onset)
        return F.mse_loss(self._feat(fake), target)

    def train(self, mode: bool = True):  # the cost network stays in eval mode
        """Set the training flag like ``nn.Module.train``, except that the VGG features stay in eval mode.

        Args:
            mode: True = training mode, False = eval mode (of this module; ``self.features`` is always in eval mode).

        Returns:
            self.
        """
        super().train(mode)
        self.features.eval()
        return self


def vgg16_weights_file(weights_path: str | Path | None = None, setting: str = "weights_path") -> Path:
    """The VGG16 ImageNet weights file :class:`VGGPerceptual` reads: ``weights_path``, or by default
    ``<torch hub dir>/checkpoints/vgg16-397923af.pth`` (``torch.hub.get_dir()``: ``$TORCH_HOME/hub``). Only the
    file's presence is checked (nothing is read or downloaded).

    Args:
        weights_path: a torchvision VGG16 state dict file, or None for the torch cache's.
        setting: how the caller names ``weights_path`` in the message (``loss.vgg_weights`` for a GAN config).
    Returns:
        The path of the file.
    Raises:
        FileNotFoundError: the file is absent (names the path and ``setting``).
    """
    path = Path(weights_path) if weights_path else Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    if not path.is_file():
        where = f"{setting}={weights_path}" if weights_path else f"the torch cache: {setting} is not set"
        raise FileNotFoundError(f"VGG16 ImageNet weights not found at {path} ({where}). This machine cannot download "
                                f"them: copy torchvision's '{VGG16_FILE}' there (or set TORCH_HOME, or {setting} to "
                                f"the file), or use the offline perceptual loss (loss.perceptual=embedding).")
    return path


def build_perceptual(name: str, weights_path: str | None = None) -> Callable[[nn.Module, Tensor, Tensor], Tensor] | None:
    """Cost network by name: ``embedding`` (offline default), ``vgg16``, or ``none`` (→ None).

    Raises:
        ValueError: unknown name; FileNotFoundError: ``vgg16`` weights absent.
    """
    if name == "embedding":
        return EmbeddingPerceptual()
    if name == "vgg16":
        return VGGPerceptual(weights_path)
    if name == "none":
        return None
    raise ValueError(f"unknown perceptual cost network {name!r}: use embedding, vgg16 or none")
