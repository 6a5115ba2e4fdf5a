"""`icegan generate -n N` warns (one line) when the checkpoint's generator ignores its noise input: the N draws of
every (onset, class) are copies of one face (within 1 grey level), which `gan eval` reports as z_diversity 0.0; a user
asking for 8 draws would otherwise count 8 copies as 8 synthetic samples (round 64)."""
import csv

import cv2
import numpy as np
import pytest
import torch
from _gan_sizes import tiny_gan_config

from icegan.cli import main
from icegan.gan.trainer import build_models, save_checkpoint

IGNORES = "the generator of this checkpoint ignores its noise input"


def _checkpoint(tmp_path, noise_matters: bool):
    """A tiny 32 px checkpoint whose generator's decoder gets no noise (its noise weights zeroed), or one whose noise
    moves every output pixel by many grey levels (its noise weights and output layer scaled up)."""
    cfg = tiny_gan_config(32)
    g, d = build_models(cfg)
    noise = slice(g.id_dim, g.id_dim + g.z_dim)     # the noise's rows of the decoder's seed (e ⊕ z ⊕ one-hot class)
    with torch.no_grad():
        if noise_matters:
            g.seed_to_map[0].weight[noise] *= 20
            torch.nn.init.normal_(g.decoder[-1][0].weight, std=0.5)
        else:
            g.seed_to_map[0].weight[noise] = 0
    path = tmp_path / ("noisy.pt" if noise_matters else "deaf.pt")
    save_checkpoint(path, cfg, g, d, 1, [])
    return path


def _onsets(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a.png", "b.png"):
        paths.append(tmp_path / name)
        cv2.imwrite(str(paths[-1]), rng.integers(0, 256, (32, 32), dtype=np.uint8))
    return paths


def _generate(ckpt, onsets, out, *extra):
    return main(["generate", "--checkpoint", str(ckpt), "--onset", *map(str, onsets), "--class", "all",
                 "--out", str(out), "--device", "cpu", *extra])


def test_generate_warns_once_when_the_generator_ignores_its_noise(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, noise_matters=False)
    out = tmp_path / "out"
    assert _generate(ckpt, _onsets(tmp_path), out, "-n", "3") == 0
    printed = capsys.readouterr().out
    assert printed.count(IGNORES) == 1, printed                      # one line, not one per face
    line = next(s for s in printed.splitlines() if IGNORES in s)
    assert line.startswith("warning: the 3 draws of each of the 6 (onset, class) are copies"), line
    assert "z_diversity" in line and "-n 1" in line and "trained longer" in line, line
    assert str(ckpt) in line, line
    # the faces are still written, as before: 2 onsets x 3 classes x 3 draws, the draws byte-identical
    faces = sorted(out.glob("*.png"))
    assert len(faces) == 18
    by_name = {p.name: p.read_bytes() for p in faces}
    assert by_name["a_negative_00.png"] == by_name["a_negative_01.png"] == by_name["a_negative_02.png"]
    with (out / "generated.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 18 and list(rows[0]) == ["file", "source", "class", "draw", "seed", "checkpoint",
                                                 "in_gan_training"]   # the table's columns are unchanged


def test_generate_says_nothing_when_the_draws_differ_or_there_is_one_draw(tmp_path, capsys):
    noisy = _checkpoint(tmp_path, noise_matters=True)
    onsets = _onsets(tmp_path)
    assert _generate(noisy, onsets, tmp_path / "noisy", "-n", "2") == 0
    printed = capsys.readouterr().out
    assert IGNORES not in printed, printed
    a0, a1 = (cv2.imread(str(tmp_path / "noisy" / f"a_positive_0{j}.png"), cv2.IMREAD_UNCHANGED) for j in (0, 1))
    assert np.abs(a0.astype(int) - a1.astype(int)).max() > 1            # the draws really differ
    # -n 1: nothing to compare, whatever the generator
    assert _generate(_checkpoint(tmp_path, noise_matters=False), onsets, tmp_path / "one", "-n", "1") == 0
    assert IGNORES not in capsys.readouterr().out


def test_draws_are_copies_within_one_grey_level_of_every_onset_and_class():
    from icegan.gan.generate import draws_are_copies
    base = np.random.default_rng(1).integers(0, 250, (4, 8, 8), dtype=np.uint8)   # 2 (onset, class) x 2 draws
    assert draws_are_copies(base[[0, 0, 2, 2]], 2)
    near = base[[0, 0, 2, 2]].copy()
    near[1] += 1                                                         # one grey level: still a copy
    assert draws_are_copies(near, 2)
    near[1, 0, 0] += 1                                                   # two grey levels somewhere: draws differ
    assert not draws_are_copies(near, 2)
    assert not draws_are_copies(base[[0, 0, 2, 3]], 2)                  # one (onset, class) whose draws differ
    assert not draws_are_copies(base, 1)                                 # one draw: nothing to compare
    with pytest.raises(ValueError, match="4 faces are not whole groups of 3 draws"):
        draws_are_copies(base, 3)
