"""The main job's joint GAN loss and synthetic rows: a custom flow network without a gradient in its second image,
gan.joint_weight=0, the ExpCaps recognizer's unread synthetic apexes, synthetic_weight's documented ratio (58th audit,
fix_joint)."""
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from _flow_sizes import save_main_job_weights

from icegan import pipeline
from icegan.config import ConfigError
from icegan.pipeline import GanSection, load_main_config, run_main

TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "data.max_folds=1",
        "gan.epochs=1", "gan.batch_size=8", "gan.base_channels=8", "gan.synthetic_ratio=0.5",
        "recognizer.epochs=2", "recognizer.batch_size=16", "recognizer.name=ststnet"]

NETS = '''
import numpy as np
import torch
from torch import nn


class Diff(nn.Module):
    """Differentiable in both images."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, img1, img2):
        return self.conv(torch.cat([img1, img2], 1))


class ThroughNumpy(Diff):
    """Preprocessing through NumPy: the flow depends on the weights differentiably, not on the images."""
    def forward(self, img1, img2):
        x = np.concatenate([img1.detach().cpu().numpy(), img2.detach().cpu().numpy()], 1)
        return self.conv(torch.from_numpy(x).float())


class FirstOnly(Diff):
    """Differentiable in the first image only."""
    def forward(self, img1, img2):
        return self.conv(torch.cat([img1, img2.detach()], 1))


class FlatInSecond(Diff):
    """Connected to the second image, but its gradient there is zero."""
    def forward(self, img1, img2):
        return self.conv(torch.cat([img1, img1], 1)) + 0 * img2
'''


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=2)


@pytest.fixture
def nets(tmp_path) -> Path:
    path = tmp_path / "nets58.py"
    path.write_text(NETS)
    return path


# ------------------------------------------------------------------ 1. a custom flow without a gradient in img2

@pytest.mark.parametrize("name", ["ThroughNumpy", "FirstOnly", "FlatInSecond"])
def test_gan_joint_refuses_a_custom_flow_without_a_gradient_in_its_second_image(nets, name):
    """The probe of a custom flow network only needed the backward pass to run (the network's weights gave it a
    gradient): a network whose flow does not depend differentiably on its second image (the generator's apex) was
    taken, and the joint loss was a constant that trained nothing. It is refused now, naming flow.module, the second
    frame and gan.joint=false; with gan.joint=false the same network loads."""
    spec = f"{nets}:{name}"
    over = ["flow.method=custom", f"flow.module={spec}", "gan.enabled=true"]
    with pytest.raises(ConfigError) as err:
        load_main_config(None, over + ["gan.joint=true"])
    msg = str(err.value)
    assert msg.startswith(f"flow.module={spec!r}: ")
    assert "differentiable in its second frame" in msg and "gan.joint=false" in msg
    assert load_main_config(None, over + ["gan.joint=false"]).flow.module == spec


def test_gan_joint_takes_a_custom_flow_differentiable_in_its_second_image(nets):
    cfg = load_main_config(None, ["flow.method=custom", f"flow.module={nets}:Diff", "gan.joint=true"])
    assert cfg.gan.joint and cfg.flow.module.endswith(":Diff")


# ------------------------------------------------------------------ 4. gan.joint_weight=0

def test_gan_joint_with_weight_zero_is_refused():
    """gan.joint=true with gan.joint_weight=0 multiplied the joint loss by 0 and still trained the critic and ran the
    flow network forward and backward in every generator step (2.25x the CPU time for the scores of joint=false)."""
    with pytest.raises(ConfigError, match=r"\(in command line\): gan\.joint_weight=0 gives .*: set gan\.joint=false"):
        load_main_config(None, ["gan.joint=true", "gan.joint_weight=0"])
    assert load_main_config(None, ["gan.joint=false", "gan.joint_weight=0"]).gan.joint_weight == 0
    assert load_main_config(None, ["gan.joint=true", "gan.joint_weight=0.5"]).gan.joint_weight == 0.5
    # no GAN: the joint setting is not read
    assert not load_main_config(None, ["gan.enabled=false", "gan.joint=true", "gan.joint_weight=0"]).gan.enabled


# ------------------------------------------------------------------ 2. expcaps reads no synthetic apex

def _spy(monkeypatch):
    import icegan.gan.synthesis as synthesis
    calls = {"augment": 0, "synthetic_flow": 0}
    real_aug, real_flow = synthesis.balanced_augmentation, pipeline.compute_flow_features

    def aug(*a, **k):
        calls["augment"] += 1
        return real_aug(*a, **k)

    def flow(*a, names=None, **k):
        if names is not None and any(str(n).startswith("synthetic apex") for n in names):
            calls["synthetic_flow"] += 1
        return real_flow(*a, names=names, **k)
    monkeypatch.setattr(synthesis, "balanced_augmentation", aug)
    monkeypatch.setattr(pipeline, "compute_flow_features", flow)
    return calls


def _predictions(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "predictions.csv")


def test_expcaps_makes_no_synthetic_apexes_and_keeps_its_scores(tmp_path, tiny_weights, monkeypatch):
    """recognizer.name=expcaps scores with the fold's discriminator: the balanced synthetic apexes and their flow
    features (1.4 of 3.4 s CPU per fold) were made and never read. They are not made now; the GAN still trains, and
    the predictions are those of synthetic_ratio=0 (no synthetic apex ever), to the bit."""
    calls = _spy(monkeypatch)
    over = TINY + [f"flow.weights={tiny_weights}", "recognizer.name=expcaps"]
    run_main(load_main_config(None, over), tmp_path / "half", progress=False)
    assert calls == {"augment": 0, "synthetic_flow": 0}
    assert (tmp_path / "half" / "folds").is_dir() and list((tmp_path / "half" / "folds").glob("*/samples.png"))
    run_main(load_main_config(None, over + ["gan.synthetic_ratio=0"]), tmp_path / "zero", progress=False)
    a, b = _predictions(tmp_path / "half"), _predictions(tmp_path / "zero")
    assert len(a) == 3 and a.equals(b)
    # a recognizer on flow features still gets them (the spies see the synthetic path)
    run_main(load_main_config(None, TINY + [f"flow.weights={tiny_weights}"]), tmp_path / "ststnet", progress=False)
    assert calls == {"augment": 1, "synthetic_flow": 1}


# ------------------------------------------------------------------ 3. synthetic_weight's documented ratio

def test_synthetic_weight_docstring_states_the_ratio_the_recognizer_trains_with():
    """GanSection's docstring said gan.synthetic_weight 0.25 makes the synthetic rows weigh ~0.45x the real rows on
    CASME II; the class weights (class_weighting, on by default) are computed on the weighted counts, which makes it
    ~0.60x as trained (0.45x only with class_weighting=false). The numbers it states are the computed ones."""
    from icegan.recognition import class_weights
    real = torch.tensor([74, 25, 19])                      # CASME II composite clips
    synth = int(round(74 * 1.5)) - real                    # synthetic_ratio 0.5
    y = torch.cat([torch.arange(3).repeat_interleave(real), torch.arange(3).repeat_interleave(synth)])
    isyn = torch.cat([torch.zeros(int(real.sum())), torch.ones(int(synth.sum()))]).bool()
    ratio = {}
    for balanced in (True, False):
        w = torch.where(isyn, torch.tensor(0.25), torch.tensor(1.0))
        eff = w * class_weights(y, w[None], 3, balanced)[0][y]
        ratio[balanced] = float(eff[isyn].sum() / eff[~isyn].sum())
    doc = re.sub(r"\s+", " ", GanSection.__doc__)
    trained = re.search(r"0\.25 makes their total weight ~(\d\.\d+) × the real rows' as trained", doc)
    plain = re.search(r"~(\d\.\d+) × with recognizer\.class_weighting=false", doc)
    assert trained and plain, doc
    assert float(trained.group(1)) == pytest.approx(ratio[True], abs=0.01)      # 0.597
    assert float(plain.group(1)) == pytest.approx(ratio[False], abs=0.01)       # 0.456
