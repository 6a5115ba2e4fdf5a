"""`icegan gan train` refuses a data.prepare.size or data.prepare.color its prepared faces would not have (it prepares
them at data.img_size, in gray: icegan.gan.pairs.load_prepared_pairs), as train.py does; the shipped GAN configs and a
GAN run's own config.yaml still load without a word."""
from __future__ import annotations

from pathlib import Path

import pytest

from icegan.cli import main

GAN_CONFIGS = sorted(str(p) for p in Path("configs").glob("gan_*.yaml"))
PREPARED = ["data.source=prepared", "data.prepare.datasets=[{name: casme2, root: /x, mode: raw}]"]


@pytest.mark.parametrize("overrides, words", [
    (["data.prepare.size=32"], ["data.prepare.size=32", "given as an override", "data.img_size=128",
                                "set data.img_size=32"]),
    (["data.prepare.color=rgb"], ["data.prepare.color=rgb", "given as an override", "gray",
                                  "set data.prepare.color=gray"]),
    (["data.img_size=64", "data.prepare.size=128"], ["data.prepare.size=128", "data.img_size=64",
                                                     "set data.img_size=128"]),
    # a size the GAN cannot take (its generator needs a power of two): the fix named is one it accepts
    (["data.prepare.size=100"], ["data.prepare.size=100", "a power of two >= 32"]),
])
def test_a_prepare_size_or_color_given_as_an_override_is_refused(overrides, words, capsys):
    """`icegan gan train data.source=prepared ... data.prepare.size=32 data.prepare.color=rgb` loaded silently, then
    load_prepared_pairs prepared 128-pixel gray faces, and the run's config.yaml recorded 32 and rgb."""
    assert main(["gan", "train", "--config", "configs/gan_casme2.yaml", "--print-config", *PREPARED,
                 *overrides]) == 2
    captured = capsys.readouterr()
    assert "icegan gan train prepares its faces" in captured.err
    for word in words:
        assert word in captured.err
    assert "set data.img_size=100" not in captured.err and "prepare:" not in captured.out   # nothing printed


def test_a_differing_value_in_a_file_is_refused_naming_the_file(tmp_path, capsys):
    text = Path("configs/gan_casme2.yaml").read_text(encoding="utf-8")
    for lines, words in (("    color: rgb\n", ["data.prepare.color=rgb", "set data.prepare.color=gray"]),
                         ("    size: 64\n", ["data.prepare.size=64", "set data.img_size=64"])):
        p = tmp_path / "mine.yaml"
        p.write_text(text.replace("  img_size: 128\n", "  img_size: 128\n  source: prepared\n  prepare:\n"
                                  "    datasets: [{name: casme2, root: /x, mode: raw}]\n" + lines),
                     encoding="utf-8")
        assert main(["gan", "train", "--config", str(p), "--print-config"]) == 2
        err = capsys.readouterr().err
        assert f"in {p}" in err
        for word in words:
            assert word in err


@pytest.mark.parametrize("path", GAN_CONFIGS)
@pytest.mark.parametrize("prepared", [False, True])
def test_every_shipped_gan_config_loads_without_a_word(path, prepared, capsys):
    """gan_casme2_cpu.yaml is at 64 pixels: data.prepare.size keeps its untouched default (128), never refused."""
    assert GAN_CONFIGS
    assert main(["gan", "train", "--config", path, "--print-config", *(PREPARED if prepared else [])]) == 0
    captured = capsys.readouterr()
    assert "data.prepare" not in captured.err and "prepare:" in captured.out


def test_a_gan_run_s_saved_config_loads(monkeypatch, tmp_path, capsys):
    """A prepared GAN run at 32 pixels records data.prepare.size: 128 (the default it replaced) in its config.yaml;
    reproducing the run from that file loads."""
    from _gan_sizes import fake_casme2_pairs, tiny_gan_train_args

    from icegan.config import load_config
    from icegan.gan import pairs as gan_pairs
    from icegan.gan.trainer import GanConfig
    monkeypatch.setattr(gan_pairs, "load_prepared_pairs", lambda *a, **k: fake_casme2_pairs(8))
    assert main([*tiny_gan_train_args(tmp_path), *PREPARED, "train.epochs=1", "train.device=cpu"]) == 0
    saved = tmp_path / "t" / "config.yaml"
    cfg = load_config(GanConfig, saved)
    assert cfg.data.source == "prepared" and cfg.data.img_size == 32 and cfg.data.prepare.size == 128
    capsys.readouterr()
    assert main(["gan", "train", "--config", str(saved), "--print-config"]) == 0
    captured = capsys.readouterr()
    assert "data.prepare" not in captured.err and "size: 128" in captured.out
