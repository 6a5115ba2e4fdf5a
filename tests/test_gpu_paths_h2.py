"""Device handling of the main job's fold runner and host syncs of the training loops, checked on the CPU."""
import os
import pickle
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from _scalar_log import ScalarLog
from torch.overrides import TorchFunctionMode

from flownet.decompose import ComponentEstimator, RansacDecomposer
from flownet.models.decflow import DecFlowEstimator
from flownet.registry import SRFlowNetEstimator
from flownet.resolution import ResizedEstimator
from icegan import pipeline
from icegan.pipeline import load_main_config


def _runner(estimator):
    samples = pd.DataFrame({"dataset": "d", "subject": ["d/s0", "d/s1"], "clip": ["c0", "c1"], "label": [0, 1]})
    frames = np.zeros((2, 8, 8), dtype=np.uint8)
    return pipeline.FoldRunner(load_main_config(None, []), pipeline.Clips(samples, frames, frames),
                               torch.zeros(2, 3, 4, 4), estimator, None, torch.device("cpu"))


@pytest.mark.parametrize("kind", ["total", "learned", "ransac"])
def test_unpickled_runner_moves_every_flow_network_to_the_worker_device(monkeypatch, kind):
    """A Ray worker's runner moves the flow network to its own device, also when the network sits inside a
    decomposition (DecFlow behind a component and a working-size wrapper, or SRFlowNet under RANSAC), and sets each
    holder's ``device`` to it."""
    if kind == "total":
        est, inner = ResizedEstimator(SRFlowNetEstimator(model=torch.nn.Linear(2, 2)), 8), lambda e: e.base
    elif kind == "learned":
        est = ComponentEstimator(ResizedEstimator(DecFlowEstimator(model=torch.nn.Linear(2, 2)), 8), "expression")
        inner = lambda e: e.decomposer.base                                  # noqa: E731
    else:
        est = ComponentEstimator(RansacDecomposer(ResizedEstimator(SRFlowNetEstimator(model=torch.nn.Linear(2, 2)),
                                                                   8)), "expression")
        inner = lambda e: e.decomposer.base.base                             # noqa: E731
    blob = pickle.dumps(_runner(est))
    monkeypatch.setattr(pipeline, "resolve_device", lambda name: torch.device("meta"))
    runner = pickle.loads(blob)
    holder = inner(runner.estimator)
    assert holder.device == torch.device("meta")
    assert {t.device.type for t in list(holder.model.parameters()) + list(holder.model.buffers())} == {"meta"}
    assert runner.device == torch.device("meta")

def test_flow_networks_of_a_classical_estimator_is_empty():
    """Nothing to move for a flow without a network (RANSAC over TV-L1's ``model`` is a string)."""
    assert pipeline._flow_networks(ComponentEstimator(RansacDecomposer("farneback"), "head")) == []
    assert pipeline._flow_networks(None) == []


class HostReads(TorchFunctionMode):
    """Counts the project's reads of a tensor's value on the host (``float``, ``bool``, ``item``, ``tolist``,
    ``numpy``): on a GPU each one waits for the device. ``int`` is left out: the generator's class-id check, its only
    caller in these loops, runs on CPU tensors alone."""

    READS = ("__float__", "__bool__", "item", "tolist", "numpy")

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.READS:
            caller = sys._getframe(1).f_code.co_filename
            self.n += any(part in caller for part in (f"{os.sep}icegan{os.sep}", f"{os.sep}flownet{os.sep}"))
        return func(*args, **(kwargs or {}))


def _tiny_gan(**train):
    from icegan.gan.trainer import GanConfig
    cfg = GanConfig()
    cfg.data.img_size = 32
    m = cfg.model
    m.g_base_channels, m.g_max_channels, m.d_base_channels, m.id_dim, m.z_dim, m.d_adv, m.d_exp = 8, 16, 8, 16, 8, 8, 8
    cfg.train.progress, cfg.train.batch_size, cfg.train.hflip = False, 8, False
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


@pytest.mark.parametrize("with_log", [True, False])
def test_gan_step_reads_two_values_on_the_host_and_the_epoch_one(with_log):
    """Per step one host read for the discriminator's finiteness check (before its update) and one for the
    generator's, which carries the step's logged scalars with it; per epoch one for the history's means (the
    previous loop read 2-3 per step and one per scalar per epoch). The history still averages the logged steps."""
    from icegan.gan.trainer import train_gan
    torch.manual_seed(0)
    on = torch.rand(16, 1, 32, 32) * 2 - 1
    log = ScalarLog() if with_log else None
    with HostReads() as reads:
        st = train_gan(on, on * 0.9, torch.arange(16) % 3, _tiny_gan(epochs=2), device="cpu", log=log)
    steps = 2 * 2                                   # 2 epochs of 16 pairs / 8
    assert reads.n == 2 * steps + 2
    if with_log:
        for epoch, rec in enumerate(st.history):
            for key in ("loss/g_total", "loss/d_total", "acc/exp_real"):
                logged = [v for k, v, s in log.rows if k == key and 2 * epoch <= s < 2 * epoch + 2]
                assert len(logged) == 2 and rec[key] == pytest.approx(sum(logged) / 2, rel=1e-6)


@pytest.mark.parametrize("which", ["discriminator", "generator"])
def test_gan_non_finite_loss_is_named_and_logs_nothing_of_its_step(monkeypatch, which):
    """A NaN loss still stops the step before its update with the message naming the loss, also when the step's
    scalars are read with the generator's check; nothing of that step reaches the log."""
    from icegan.gan import trainer
    if which == "discriminator":
        monkeypatch.setattr(trainer, "adversarial_d_loss", lambda real, fake: real.sum() * float("nan"))
        extra = None
    else:
        def extra(g, onset, z, c, fake):
            return fake.sum() * float("nan")
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    log = ScalarLog()
    with pytest.raises(FloatingPointError, match=rf"^ICE-GAN {which} loss is non-finite \(nan\) at epoch 1, step 1; "
                                                 r"training stopped before the update, no checkpoint was written yet"):
        trainer.train_gan(on, on.clone(), torch.arange(8) % 3, _tiny_gan(epochs=1), device="cpu", log=log,
                          extra_loss_fn=extra)
    assert log.rows == []
