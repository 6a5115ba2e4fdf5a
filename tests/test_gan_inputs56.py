"""Input checks of the GAN code: class ids (balanced_augmentation, discriminator, margin_loss) and the shapes of
the reconstruction (Eq. 6) and identity-preserving (Eq. 4) terms, which used to truncate or broadcast silently."""
import re

import pytest
import torch

from icegan.gan.losses import classification_loss, identity_preserving_loss
from icegan.gan.synthesis import balanced_augmentation
from icegan.models.capsules import margin_loss
from icegan.models.discriminator import CapsuleDiscriminator


class _StubGenerator(torch.nn.Module):
    """Only what balanced_augmentation reads: n_classes, z_dim and a forward (onset, z, cls) -> apex."""
    n_classes, z_dim, in_channels, img_size = 3, 2, 1, 4

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, onset, z, cls):
        return onset + self.w + cls.to(onset.dtype)[:, None, None, None]


def _onsets(n):
    return torch.zeros(n, 1, 4, 4)


# ---- 1. balanced_augmentation: class ids must be integers in [0, n_classes)

@pytest.mark.parametrize("labels", [[0, 0, 1, 7], torch.tensor([0, 0, 1, 3]), [0, -1, 1, 2]])
def test_balanced_augmentation_refuses_out_of_range_labels(labels):
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 3\)"):
        balanced_augmentation(_StubGenerator(), _onsets(4), labels)


@pytest.mark.parametrize("labels", [[0.9, 0.2, 1.5, 2.7], torch.tensor([0.0, 0.0, 1.0, 2.0])])
def test_balanced_augmentation_refuses_float_labels(labels):
    with pytest.raises(ValueError, match="labels must be integer class ids, got torch.float"):
        balanced_augmentation(_StubGenerator(), _onsets(4), labels)


def test_balanced_augmentation_still_balances_valid_and_empty_labels():
    _, src, cls = balanced_augmentation(_StubGenerator(), _onsets(4), torch.tensor([0, 0, 1, 2], dtype=torch.int32))
    assert sorted(cls.tolist()) == [1, 2] and len(src) == 2
    apex, src, cls = balanced_augmentation(_StubGenerator(), _onsets(0), [])
    assert apex.shape[0] == 0 and src.numel() == 0 and cls.numel() == 0


# ---- 2. discriminator: labels (B,) integer

@pytest.fixture(scope="module")
def disc():
    torch.manual_seed(0)
    return CapsuleDiscriminator(img_size=32, base_channels=8).eval()


@pytest.mark.parametrize("labels", [torch.tensor([2]), torch.tensor([0, 1, 2, 1, 0, 0]),
                                    torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 1]), 3)])
def test_discriminator_refuses_labels_not_of_the_batch(disc, labels):
    x = torch.zeros(4, 1, 32, 32)
    with pytest.raises(ValueError, match=re.escape(f"labels must be (4,), got {tuple(labels.shape)}")):
        disc(x, labels)


def test_discriminator_refuses_float_labels(disc):
    with pytest.raises(ValueError, match="labels must be integer class ids, got torch.float32"):
        disc(torch.zeros(4, 1, 32, 32), torch.tensor([0.0, 1.9, 2.5, 1.2]))


def test_discriminator_accepts_integer_labels(disc):
    with torch.no_grad():
        out = disc(torch.zeros(4, 1, 32, 32), torch.tensor([0, 1, 2, 1], dtype=torch.int32))
    assert out.recon.shape == (4, 1, 32, 32)


# ---- 3. Eq. 6 reconstruction and Eq. 4 L1: equal shapes, no broadcasting

def test_classification_loss_refuses_mismatched_reconstruction_target():
    lengths, y = torch.full((4, 3), 0.5), torch.tensor([0, 1, 2, 1])
    with pytest.raises(ValueError, match=r"recon \(4, 1, 8, 8\) and target_img \(1, 1, 8, 8\)"):
        classification_loss(lengths, y, torch.zeros(4, 1, 8, 8), torch.zeros(1, 1, 8, 8), beta=1.0)
    with pytest.raises(ValueError, match=r"recon \(4, 1, 8, 8\) and target_img None"):
        classification_loss(lengths, y, torch.zeros(4, 1, 8, 8), None, beta=1.0)
    # matching shapes: margin + beta * MSE, unchanged
    got = classification_loss(lengths, y, torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8), beta=1.0)
    assert float(got) == pytest.approx(float(margin_loss(lengths, y)) + 1.0)


@pytest.mark.parametrize("apex_shape", [(1, 1, 8, 8), (1, 4, 8, 8)])
def test_identity_preserving_loss_refuses_mismatched_apex(apex_shape):
    with pytest.raises(ValueError, match=re.escape(f"fake (4, 1, 8, 8) and apex {tuple(apex_shape)}")):
        identity_preserving_loss(torch.zeros(4, 1, 8, 8), torch.zeros(apex_shape), None)
    assert float(identity_preserving_loss(torch.zeros(4, 1, 8, 8), torch.ones(4, 1, 8, 8), None)) == 1.0


# ---- 4. margin_loss: integer class ids in [0, K)

def test_margin_loss_refuses_float_class_ids():
    with pytest.raises(ValueError, match="margin_loss: class ids must be integers, got torch.float32"):
        margin_loss(torch.full((2, 3), 0.5), torch.tensor([0.0, 1.9]))


@pytest.mark.parametrize("target", [[0, 3], [-1, 0]])
def test_margin_loss_refuses_out_of_range_class_ids_on_cpu(target):
    with pytest.raises(ValueError, match=re.escape(f"margin_loss: class ids must be in [0, 3), got {target}")):
        margin_loss(torch.full((2, 3), 0.5), torch.tensor(target))


def test_margin_loss_still_takes_soft_targets_and_int32_ids():
    lengths = torch.tensor([[0.95, 0.05, 0.0]])
    assert float(margin_loss(lengths, torch.tensor([0], dtype=torch.int32))) == 0.0
    assert float(margin_loss(lengths, torch.tensor([[1.0, 0.0, 0.0]]))) == 0.0


def test_synthesize_refuses_class_ids_that_are_not_integers():
    """synthesize read classes with int(): [0, 1.9] made faces of classes 0 and 1 without a word. Integer ids of any
    kind (int, numpy, 0-d torch) are taken; a float is refused, naming the list."""
    import numpy as np

    from icegan.gan.synthesis import synthesize
    from icegan.models.generator import Generator
    g = Generator(img_size=16, n_classes=3, base_channels=4).eval()
    onset = torch.zeros(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"classes must be integer class ids, got \[0, 1.9\]"):
        synthesize(g, onset, [0, 1.9])
    _, _, cls = synthesize(g, onset, [np.int64(2), torch.tensor(0), 1])
    assert cls.tolist() == [2, 0, 1]
