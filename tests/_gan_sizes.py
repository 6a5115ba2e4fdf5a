"""The small ICE-GAN widths the GAN tests build models with (a generator and capsule discriminator that run in
milliseconds on a CPU)."""
from icegan.config import override_key
from icegan.gan.trainer import GanConfig


def tiny_gan_config(img_size: int = 32) -> GanConfig:
    """The default :class:`GanConfig` for ``img_size`` px faces, with the tests' tiny generator and discriminator."""
    cfg = GanConfig()
    cfg.data.img_size = img_size
    m = cfg.model
    m.g_base_channels, m.g_max_channels, m.d_base_channels, m.id_dim, m.z_dim, m.d_adv, m.d_exp = 8, 16, 8, 16, 8, 8, 8
    return cfg


def fake_casme2_pairs(n: int = 8, size: int = 32, seed: int = 0):
    """A :class:`icegan.gan.pairs.PairSet` of ``n`` random (size, size) onset/apex faces of two CASME II subjects
    (sub01, sub02, alternating), classes 0, 1, 2 in turn: what ``icegan gan train``'s loader is monkeypatched to
    return in the command-line tests."""
    import numpy as np

    from icegan.gan.pairs import PairSet
    rng = np.random.default_rng(seed)
    return PairSet(rng.integers(0, 256, (n, size, size), dtype=np.uint8),
                   rng.integers(0, 256, (n, size, size), dtype=np.uint8), np.arange(n) % 3,
                   [f"casme2/sub0{i % 2 + 1}" for i in range(n)], [f"sub0{i % 2 + 1}/c{i}" for i in range(n)],
                   np.zeros(n, dtype=int), np.ones(n, dtype=int))


def tiny_gan_train_args(out_dir, *overrides: str) -> list[str]:
    """``icegan gan train`` arguments of a run named t under ``out_dir`` with the tests' tiny models, 32 px faces,
    batches of 4, no progress bar, no time budget and no sample grids, then ``overrides`` (``train.epochs=N``, flags),
    which replace its own settings of the same keys: a command line may set a key once."""
    keys = {override_key(item) for item in overrides}
    own = ["gan", "train", "name=t", f"out_dir={out_dir}", "data.img_size=32", "data.apex_neighbors=0",
           "model.g_base_channels=8", "model.g_max_channels=16", "model.d_base_channels=8", "train.batch_size=4",
           "train.progress=false", "train.max_minutes=null", "train.sample_every=0"]
    return [*(item for item in own if override_key(item) not in keys), *overrides]


def stubbed_manifest_checkpoint(tmp_path, monkeypatch, epochs: int):
    """A tiny manifest-trained checkpoint holding out sub02 (trained on sub01 of fake_casme2_pairs(6)), saved at epoch
    1 of ``train.epochs=epochs`` in ``tmp_path/run/checkpoints/last.pt``; the evaluation's pair loader, face
    embeddings and speed replaced by fast stand-ins. Returns ``(checkpoint, pairs)``."""
    import numpy as np

    import icegan.gan.evaluate as ev
    from icegan.gan.trainer import build_models, save_checkpoint
    cfg = tiny_gan_config(32)
    cfg.data.apex_neighbors = 0
    cfg.data.holdout_subjects = ["sub02"]
    cfg.train.epochs = epochs
    g, d = build_models(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    save_checkpoint(ckpt, cfg, g, d, 1, [])
    pairs = fake_casme2_pairs(6, 32)
    monkeypatch.setattr(ev, "load_casme2_pairs", lambda root, size, k, **kw: pairs)
    monkeypatch.setattr(ev, "face_embeddings",
                        lambda f, upsample_to=128: np.repeat(f.reshape(len(f), -1).mean(1)[:, None], 128, axis=1))
    monkeypatch.setattr(ev, "generator_speed", lambda g: 1.0)
    return ckpt, pairs
