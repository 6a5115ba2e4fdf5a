"""The small ICE-GAN widths the GAN tests build models with (a generator and capsule discriminator that run in
milliseconds on a CPU)."""
from icegan.gan.trainer import GanConfig


def tiny_gan_config(img_size: int = 32) -> GanConfig:
    """The default :class:`GanConfig` for ``img_size`` px faces, with the tests' tiny generator and discriminator."""
    cfg = GanConfig()
    cfg.data.img_size = img_size
    m = cfg.model
    m.g_base_channels, m.g_max_channels, m.d_base_channels, m.id_dim, m.z_dim, m.d_adv, m.d_exp = 8, 16, 8, 16, 8, 8, 8
    return cfg
