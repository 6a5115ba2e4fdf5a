"""Device handling of the main job's fold runner and host syncs of the training loops, checked on the CPU."""
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

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
