"""ICE-GAN: identity-aware generator with graph reasoning + capsule discriminator (training, synthesis, evaluation).

Public API::

    from icegan.gan import GanConfig, train_gan, synthesize, balanced_augmentation, load_checkpoint
"""
from .synthesis import balanced_augmentation, load_generator, synthesize
from .trainer import GanConfig, GanState, build_models, load_checkpoint, save_checkpoint, train_gan

__all__ = ["GanConfig", "GanState", "build_models", "train_gan", "save_checkpoint", "load_checkpoint",
           "synthesize", "balanced_augmentation", "load_generator"]
