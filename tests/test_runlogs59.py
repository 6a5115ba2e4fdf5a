"""Run logs and titles (round 59): ablations of the main job get their own recipe line, TensorBoard marks partial
and not-leak-free runs' final metrics, the per-fold and GAN steps share one axis each, and a resume with a smaller
max_folds than the folder's run is refused for its true reason."""
import json

import numpy as np
import pandas as pd
import pytest

from icegan.protocol import recipe_line, run_loso


def test_recipe_line_names_the_gan_and_flow_of_a_main_job_config():
    """Ablations of the main job (gan.enabled true/false, flow.method, gan.joint) got the same recipe line, so their
    metrics.md headings, figure titles and TensorBoard text read alike."""
    base = {"seed": 0, "recognizer": {"name": "ststnet", "epochs": 100}}
    on = recipe_line({**base, "gan": {"enabled": True, "joint": False}, "flow": {"method": "srflownet"}})
    off = recipe_line({**base, "gan": {"enabled": False, "joint": False}, "flow": {"method": "tvl1"}})
    joint = recipe_line({**base, "gan": {"enabled": True, "joint": True}, "flow": {"method": "srflownet"}})
    assert on == "seed 0, ststnet, 100 epochs, srflownet flow, GAN"
    assert off == "seed 0, ststnet, 100 epochs, tvl1 flow, no GAN"
    assert joint == "seed 0, ststnet, 100 epochs, srflownet flow, GAN, joint loss"
    # joint without a GAN trains nothing joint: not named
    assert recipe_line({**base, "gan": {"enabled": False, "joint": True}}) == "seed 0, ststnet, 100 epochs, no GAN"
    # configs without these sections read as before
    assert recipe_line(base) == "seed 0, ststnet, 100 epochs"


def test_recipe_line_of_the_main_job_dataclass():
    """The main job passes its MainConfig dataclass (icegan.pipeline), not a dict."""
    from icegan.config import load_config
    from icegan.pipeline import MainConfig
    cfg = load_config(MainConfig, "configs/casme2.yaml", ["gan.enabled=false", "flow.method=tvl1"])
    assert recipe_line(cfg).endswith(", tvl1 flow, no GAN")
