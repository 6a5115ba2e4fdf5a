"""Synthesis of apex faces with a trained ICE-GAN generator (Python API behind ``icegan generate``).

``synthesize`` makes ``n_per_onset`` faces for every (onset, requested class); ``balanced_augmentation``
chooses the classes so that real + synthetic counts become equal per class (class-balanced
augmentation set for a list of onsets). Both are deterministic for a seed and run under
``torch.no_grad`` in eval mode, in batches, on the generator's device.
"""
from __future__ import annotations

import operator
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from flownet.user_numbers import derived_seed
from icegan.models.generator import Generator

__all__ = ["synthesize", "balanced_augmentation", "load_generator", "to_uint8", "face_noise_seed"]


def load_generator(checkpoint, device="cpu") -> Generator:
    """Generator of an ICE-GAN checkpoint (see :func:`icegan.gan.trainer.load_checkpoint`), eval mode."""
    from .trainer import load_checkpoint
    return load_checkpoint(checkpoint, device)[0]


def to_uint8(x: Tensor) -> np.ndarray:
    """Faces (N, 1, H, W) in [-1, 1] → uint8 array (N, H, W)."""
    return ((x.detach().float().cpu().clamp(-1, 1)[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()


def face_noise_seed(seed: int, key: str, cls: int, draw: int) -> int:
    """The seed of one face's noise in :func:`synthesize` with ``noise_keys``: the first 8 bytes of the SHA-256 of
    ``"seed/key/cls/draw"`` (UTF-8), as an integer in [0, 2**63), the same on every machine and Python run."""
    import hashlib
    digest = hashlib.sha256(f"{int(seed)}/{key}/{int(cls)}/{int(draw)}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@torch.no_grad()
def _generate(generator: Generator, onset: Tensor, src: Tensor, cls: Tensor, seed: int, batch_size: int,
              z: Tensor | None = None, encode_once: bool = False, alone_as_two: bool = False) -> Tensor:
    """Faces ``G(onset[src], z, cls)`` in batches; ``z`` (M, z_dim) or None: drawn in order from ``seed``.
    ``encode_once``: the onsets of a batch are encoded once each and their encodings repeated (the encoder works on
    each face alone: the same faces without the repeated encoder passes). A batch of one onset but several faces
    encodes it as a batch of two: the GRM's ``nn.Linear`` rounds a one-face batch otherwise on the CPU (last bits),
    and the faces stay bit-identical to the forward pass of all the batch's rows. ``alone_as_two`` (with
    ``encode_once``): a batch of one face is made as a batch of two of it, so a face does not depend on whether it
    was made alone."""
    dev = next(generator.parameters()).device
    was = generator.training
    generator.eval()
    if z is None:
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(len(src), generator.z_dim, generator=gen)
    out = []
    for i in range(0, len(src), batch_size):
        sl = slice(i, i + batch_size)
        if encode_once:
            uniq, inv = torch.unique(src[sl], return_inverse=True)
            zb, cb = z[sl], cls[sl]
            single = alone_as_two and len(inv) == 1          # one face: decoded as a batch of two, kept once
            if single:
                inv, zb, cb = inv.repeat(2), zb.repeat(2, 1), cb.repeat(2)
            x = onset[uniq].to(dev, torch.float32)
            twice = len(uniq) == 1 and len(inv) > 1
            e, gs = generator.encode(x.repeat(2, 1, 1, 1) if twice else x)
            inv = inv.to(dev)
            face = generator.decode(x[inv], e[inv], [m[inv] for m in gs], zb.to(dev), cb.to(dev)).float().cpu()
            out.append(face[:1] if single else face)
        else:
            out.append(generator(onset[src[sl]].to(dev, torch.float32), z[sl].to(dev), cls[sl].to(dev)).float().cpu())
    generator.train(was)
    if not out:
        return torch.empty(0, generator.in_channels, generator.img_size, generator.img_size)
    return torch.cat(out)


def synthesize(generator: Generator, onset: Tensor, classes: Sequence[int], n_per_onset: int = 1, seed: int = 0,
               batch_size: int = 64, noise_keys: Sequence[str] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Synthetic apexes for every onset × requested class × ``n_per_onset`` noise draws.

    Each onset is encoded once per batch and its encoding repeated for its classes and draws (the same faces as
    ``generator(onset[src], z, cls)``, without the repeated encoder passes).

    Args:
        generator: trained :class:`Generator`.
        onset: (N, 1, H, W) in [-1, 1] (any device).
        classes: class ids to synthesise for every onset (e.g. ``[0, 1, 2]``).
        n_per_onset: faces per (onset, class).
        seed: noise seed (same seed, same call → same faces). Without ``noise_keys`` the noises are drawn in order
            over all (onset, class, draw) of the call, so a face depends on the faces made before it.
        noise_keys: None, or N names of the onsets (``icegan generate``: the output names): each face's noise is then
            drawn from its own generator seeded by :func:`face_noise_seed` ``(seed, key, class, draw)``, so a face is
            the same whatever other onsets, classes or draw counts the call has (on one device; a face alone in its
            batch is made in a batch of two of it, as the CPU rounds a one-row batch otherwise).
    Returns:
        ``(apex (M, 1, H, W) in [-1, 1], source_index (M,) long into onset, class (M,) long)`` on CPU,
        M = N·len(classes)·n_per_onset, ordered onset-major, then class, then draw.
    Raises:
        ValueError: empty/invalid classes (not integers, or outside [0, n_classes)), n_per_onset < 1, onset of the wrong shape, ``noise_keys`` not N names.
    """
    if n_per_onset < 1:
        raise ValueError(f"n_per_onset must be >= 1, got {n_per_onset}")
    try:
        classes = [operator.index(c) for c in classes]      # an int, numpy or 0-d torch integer; 1.9 is not truncated
    except TypeError:
        raise ValueError(f"classes must be integer class ids, got {list(classes)}") from None
    if not classes or min(classes) < 0 or max(classes) >= generator.n_classes:
        raise ValueError(f"classes must be non-empty ids in [0, {generator.n_classes}), got {classes}")
    n = onset.shape[0]
    src = torch.arange(n).repeat_interleave(len(classes) * n_per_onset)
    cls = torch.tensor(classes, dtype=torch.long).repeat_interleave(n_per_onset).repeat(n)
    z = None
    if noise_keys is not None:
        if len(noise_keys) != n:
            raise ValueError(f"noise_keys must name the {n} onsets, got {len(noise_keys)}")
        draw = torch.arange(n_per_onset).repeat(n * len(classes))
        rows = [torch.randn(generator.z_dim, generator=torch.Generator().manual_seed(
            face_noise_seed(seed, noise_keys[s], c, j))) for s, c, j in zip(src.tolist(), cls.tolist(), draw.tolist())]
        z = torch.stack(rows) if rows else torch.empty(0, generator.z_dim)
    return _generate(generator, onset, src, cls, seed, batch_size, z=z, encode_once=True,
                     alone_as_two=noise_keys is not None), src, cls


def balanced_augmentation(generator: Generator, onset: Tensor, labels: Tensor | Sequence[int],
                          target_per_class: int | None = None, seed: int = 0,
                          batch_size: int = 64) -> tuple[Tensor, Tensor, Tensor]:
    """Class-balanced augmentation set for a list of onsets.

    For every class k, ``need_k = target_per_class - count_k(labels)`` synthetic apexes are made
    (``target_per_class`` defaults to the largest real class count, so real + synthetic is balanced);
    the onsets are used round-robin (in a seed-dependent order) so every onset contributes about
    equally. Onsets of any class may be asked for any class.

    Args:
        onset: (N, 1, H, W) in [-1, 1]; labels: (N,) real class ids of these clips, integers in
            [0, generator.n_classes).
    Returns:
        ``(apex (M, 1, H, W), source_index (M,), class (M,))`` as in :func:`synthesize`, M = Σ_k need_k.
    Raises:
        ValueError: labels do not match onsets, are not integers (floats are not truncated) or lie outside
            [0, n_classes) (they would be left out of the counts), or target_per_class is below a real count.
    """
    labels = torch.as_tensor(labels)
    n = onset.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"labels must be ({n},), got {tuple(labels.shape)}")
    if n and (labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool):
        raise ValueError(f"labels must be integer class ids, got {labels.dtype}")
    labels = labels.long()
    k = generator.n_classes
    if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"labels must be class ids in [0, {k}), got {sorted(set(labels.tolist()))}")
    counts = torch.bincount(labels, minlength=generator.n_classes)
    target = int(counts.max()) if target_per_class is None else int(target_per_class)
    if target < int(counts.max()):
        raise ValueError(f"target_per_class {target} is below the largest real class count {int(counts.max())}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, 1)))
    srcs, clss, pos = [], [], 0
    for k in range(generator.n_classes):
        need = target - int(counts[k])
        for _ in range(need):
            srcs.append(int(order[pos % n]))
            clss.append(k)
            pos += 1
    src = torch.tensor(srcs, dtype=torch.long)
    cls = torch.tensor(clss, dtype=torch.long)
    return _generate(generator, onset, src, cls, seed, batch_size), src, cls
