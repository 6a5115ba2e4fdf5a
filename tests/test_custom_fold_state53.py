"""A custom recognizer's factory that builds its network once and returns that same object on every call (e.g. to load
a pretrained backbone once) must not carry trained state from one LOSO fold to the next: a build that gets an object
the factory returned before trains a copy set back to that object's weights as first returned (pretrained ones
included), whatever an earlier build or check_custom_recognizer's training step did to it; a module the factory builds
anew is used as it is (no copy: modules deepcopy cannot copy keep working)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from icegan.data.toy_features import make_toy_features
from icegan.models.recognizers import build_recognizer, load_recognizer_factory
from icegan.protocol import make_folds
from icegan.recognition import RecognizerConfig, check_custom_recognizer, fit_predict_folds

PLUGIN = '''
import threading
from pathlib import Path

import torch
from torch import nn

PRETRAINED = Path(__file__).with_name("pretrained.pt")
NET = None


def _make(num_classes, input_size):
    with torch.random.fork_rng(devices=[]):          # the same start every time, and the caller's RNG untouched
        torch.manual_seed(7)
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                            nn.Linear(4 * input_size * input_size, num_classes))
    if PRETRAINED.exists():
        net.load_state_dict(torch.load(PRETRAINED))
    return net


def reused(num_classes, input_size):
    """Builds (and loads) the network once, then returns that same object."""
    global NET
    if NET is None:
        NET = _make(num_classes, input_size)
    return NET


def fresh(num_classes, input_size):
    return _make(num_classes, input_size)


class Locked(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.lock = threading.Lock()

    def forward(self, x):
        return self.fc(x.mean((2, 3)) if x.dim() == 4 else x)


LOCKED = Locked()


def reused_locked():
    return LOCKED


class Wrapper(nn.Module):
    """A new head on a backbone built once (shared by every build)."""
    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x).mean((2, 3)))


BACKBONE = None
WEIGHT = nn.Parameter(torch.zeros(3, 3))
HEAD = nn.Linear(3, 3)
ACT = nn.ReLU()
LAZY = None


class Pool(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


def shared_parameter():
    """New module objects every call, one parameter shared by all of them."""
    fc = nn.Linear(3, 3)
    fc.weight = WEIGHT
    return nn.Sequential(Pool(), fc)


def shallow_head():
    """A shallow copy of a module-level head: a new module object holding the same parameters."""
    import copy
    return nn.Sequential(Pool(), copy.copy(HEAD))


def shared_activation():
    """A new network holding a module-level activation (no parameters, no buffers): used as it is."""
    return nn.Sequential(Pool(), nn.Linear(3, 3), ACT, Locked())


def lazy_once():
    global LAZY
    if LAZY is None:
        LAZY = nn.Sequential(Pool(), nn.LazyLinear(3))
    return LAZY


def shared_backbone(num_classes):
    global BACKBONE
    if BACKBONE is None:
        BACKBONE = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
    return Wrapper(BACKBONE, num_classes)
'''


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "reusing_plugin53.py"
    path.write_text(PLUGIN)
    return path


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _pretrain(plugin, input_size=28):
    """Write pretrained.pt beside the plugin: the fresh start's weights, all shifted by 0.5 (BN statistics too)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        start = build_recognizer("custom", module=f"{plugin}:fresh", input_size=input_size).net
    weights = {k: (v + 0.5 if v.is_floating_point() else v) for k, v in start.state_dict().items()}
    torch.save(weights, plugin.with_name("pretrained.pt"))
    return weights


def test_each_build_of_a_reusing_factory_starts_from_the_factory_s_weights(plugin):
    pretrained = _pretrain(plugin)
    first = build_recognizer("custom", module=f"{plugin}:reused", input_size=28)
    second = build_recognizer("custom", module=f"{plugin}:reused", input_size=28)
    opt = torch.optim.SGD(first.parameters(), lr=0.5)
    F.cross_entropy(first.train()(torch.rand(4, 3, 28, 28)), torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    assert not torch.equal(first.net[4].weight, pretrained["4.weight"])               # the first build trained
    third = build_recognizer("custom", module=f"{plugin}:reused", input_size=28)      # after that training
    for build in (second, third):                                                   # neither inherited it
        for name, value in build.net.state_dict().items():
            torch.testing.assert_close(value, pretrained[name], rtol=0, atol=0, msg=f"a later build's {name}")
    assert len({id(first.net), id(second.net), id(third.net)}) == 3


def test_a_fresh_module_is_used_as_returned_and_a_shared_backbone_is_restored(plugin):
    """A module built anew is not copied (modules copy.deepcopy cannot copy, e.g. old-style weight_norm, a lock, keep
    working); a new head on a backbone built once gets a copy whose backbone is the backbone as first returned."""
    net = build_recognizer("custom", module=f"{plugin}:Locked").net
    assert type(net).__name__ == "Locked" and hasattr(net, "lock")
    first = build_recognizer("custom", module=f"{plugin}:shared_backbone")
    start = _state(first.net.backbone)
    opt = torch.optim.SGD(first.parameters(), lr=0.5)
    F.cross_entropy(first.train()(torch.rand(4, 3, 8, 8)), torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    assert not torch.equal(first.net.backbone[0].weight, start["0.weight"])
    second = build_recognizer("custom", module=f"{plugin}:shared_backbone")
    assert second.net.backbone is not first.net.backbone
    for name, value in second.net.backbone.state_dict().items():
        torch.testing.assert_close(value, start[name], rtol=0, atol=0, msg=f"second build's backbone {name}")


def test_check_custom_recognizer_s_step_does_not_reach_the_next_build_of_a_reused_module(plugin):
    """The check's training step on the table's first clips (fold 0's test subject) moves the batch-norm statistics
    of the module it builds; the fold's build of a factory that returns that module again starts from them as
    first returned."""
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    cfg = RecognizerConfig(name="custom", module=f"{plugin}:reused", epochs=1, batch_size=8)
    factory = load_recognizer_factory(cfg.module)
    before = _state(factory(num_classes=3, input_size=28))
    check_custom_recognizer(cfg, fs.features, 3)
    moved = factory.__globals__["NET"].state_dict()
    assert not torch.equal(moved["1.running_mean"], before["1.running_mean"])      # the check did train it
    after = build_recognizer("custom", module=cfg.module, input_size=28).net.state_dict()
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0, msg=f"the next build's BN {name}")


def test_loso_folds_of_a_reusing_factory_equal_those_of_a_fresh_one(plugin):
    """Fold 1 of a factory that returns one object trained on the same start as a factory building anew: the
    probabilities are identical (before, fold 1 started from fold 0's trained weights, which saw fold 1's subject)."""
    _pretrain(plugin)
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    subjects = fs.samples["subject"].tolist()
    folds = make_folds(subjects, "CDE")[:2]
    probs = {}
    for factory in ("fresh", "reused"):
        cfg = RecognizerConfig(name="custom", module=f"{plugin}:{factory}", epochs=2, batch_size=8)
        check_custom_recognizer(cfg, fs.features, 3)                          # as `icegan loso` does before the run
        probs[factory] = fit_predict_folds(cfg, fs.features, fs.labels, subjects, folds, seed=3, progress=False)
    for k in range(len(folds)):
        np.testing.assert_array_equal(probs["reused"][k], probs["fresh"][k], err_msg=f"fold {k}")


def test_a_module_returned_again_that_cannot_be_copied_is_named(plugin):
    spec = f"{plugin}:reused_locked"
    build_recognizer("custom", module=spec, key="recognizer.module")          # the first time: used as it is
    with pytest.raises(ValueError) as exc:
        build_recognizer("custom", module=spec, key="recognizer.module")
    msg = str(exc.value)
    assert msg.startswith(f"recognizer.module={spec!r} returned tensors it had returned before"), msg
    assert "copy.deepcopy cannot copy the module" in msg and "lock" in msg and "return a new module per call" in msg


def _train_step(recognizer):
    opt = torch.optim.SGD(recognizer.parameters(), lr=0.5)
    F.cross_entropy(recognizer.train()(torch.rand(4, 3, 8, 8)), torch.tensor([0, 1, 2, 0])).backward()
    opt.step()


@pytest.mark.parametrize("factory", ["shared_parameter", "shallow_head"])
def test_parameters_shared_by_new_module_objects_are_set_back(plugin, factory):
    """New module objects around parameters the factory returned before (a module-level nn.Parameter, a copy.copy of
    a module-level head) passed a check by module identity: fold 2 started from fold 1's trained weights."""
    spec = f"{plugin}:{factory}"
    first = build_recognizer("custom", module=spec)
    start = _state(first.net[1])
    _train_step(first)
    assert not torch.equal(first.net[1].weight, start["weight"])
    second = build_recognizer("custom", module=spec)
    assert second.net[1].weight is not first.net[1].weight
    shared = ["weight"] + (["bias"] if factory == "shallow_head" else [])       # shared_parameter: a new bias
    for name in shared:
        torch.testing.assert_close(second.net[1].state_dict()[name], start[name], rtol=0, atol=0,
                                   msg=f"second build's {name}")


def test_a_shared_module_without_tensors_is_not_a_reuse(plugin):
    """A new network holding a module-level nn.ReLU (no parameters, no buffers) and a lock: used as it is, every
    time (it was deep-copied, and refused as 'returned before' since the lock cannot be copied)."""
    spec = f"{plugin}:shared_activation"
    nets = [build_recognizer("custom", module=spec).net for _ in range(2)]
    assert nets[0] is not nets[1] and nets[0][2] is nets[1][2]          # the factory's own objects, not copies


def test_a_lazy_module_returned_again_after_materialising_is_refused(plugin):
    spec = f"{plugin}:lazy_once"
    first = build_recognizer("custom", module=spec)
    first(torch.rand(2, 3, 8, 8))                                       # materialised by fold 1
    with pytest.raises(ValueError, match=r"cannot be set back to its value as first returned .*lazy"):
        build_recognizer("custom", module=spec)
