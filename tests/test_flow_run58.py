"""`icegan flow run` and its pictures (58th audit): the --key disc's rim has the colour of a vector of max_flow in the
flow picture (not the ~71% colour of a key normalised by its corners); the frames are read grey for networks whose
weights were trained on grey crops (the shipped ones: flow eval reads grey too) and for the classical methods, colour
for torchvision / ptlflow checkpoints and for a custom network whose first convolution takes 3 channels; weights
trained here record the frames' channels (meta "gray"); a 32-bit float TIFF frame is refused naming the file and what
to do. Frames are tiny pictures written here; the shipped weights are run on 64x64 pairs only."""
from __future__ import annotations

import numpy as np
import pytest
import torch


def _run(args: list) -> int:
    from icegan.cli import main
    return main(["flow", "run", *map(str, args)])


def _colour_pair(tmp_path, h: int = 64, w: int = 64):
    """Two colour PNGs (smooth random texture, channels unlike each other), the second shifted 2 px right."""
    import cv2
    rng = np.random.default_rng(3)
    small = rng.random((h // 8, w // 8, 3)).astype(np.float32)
    img = (np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1) * 255).astype(np.uint8)
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    cv2.imwrite(str(one), img)
    cv2.imwrite(str(two), np.roll(img, 2, axis=1))
    return one, two


# --------------------------------------------------------------------------------------------- 1: the --key disc

def test_flow_key_rim_has_the_picture_colour_of_a_vector_of_max_flow(tmp_path, monkeypatch):
    """The key drawn for max_flow = 4 px: its pixel at the right rim (flow (+4, 0)) has the colour flow_to_color
    gives a (+4, 0) vector with max_flow 4 (the square field's corners, 4·√2 px, made the rim ~71% colour)."""
    import matplotlib.axes

    from flownet.io import flow_to_color, save_flow_key
    shown = []
    real = matplotlib.axes.Axes.imshow
    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", lambda self, img, *a, **k: (shown.append(img.copy()),
                                                                                     real(self, img, *a, **k))[1])
    save_flow_key(tmp_path / "key.png", 4.0, size=161)
    assert (tmp_path / "key.png").is_file() and len(shown) == 1
    key = shown[0]                                          # (161, 161, 3) uint8, centre (80, 80), radius 80
    want = flow_to_color(torch.tensor([[[4.0]], [[0.0]]]), 4.0)[:, 0, 0].tolist()
    assert key[80, 160].tolist() == want
    half = flow_to_color(torch.tensor([[[2.0]], [[0.0]]]), 4.0)[:, 0, 0].tolist()
    assert key[80, 120].tolist() == half                   # halfway out: the colour of 2 px
    assert key[0, 0].tolist() == [255, 255, 255]            # outside the disc: white
