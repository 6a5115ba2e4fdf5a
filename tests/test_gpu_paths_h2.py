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
    ``numpy``): on a GPU each one waits for the device. Left out: ``int`` (the GAN generator's class-id check, its only
    caller in these loops, runs on CPU tensors alone) and reads in ``random_crops`` (offsets drawn on a CPU
    generator)."""

    READS = ("__float__", "__bool__", "item", "tolist", "numpy")

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.READS:
            caller = sys._getframe(1).f_code
            self.n += caller.co_name != "random_crops" and any(
                part in caller.co_filename for part in (f"{os.sep}icegan{os.sep}", f"{os.sep}flownet{os.sep}"))
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
    previous loop read 2-3 per step and one per scalar per epoch); once per run one for the training pairs per class
    that the checkpoint records (``class_pair_counts``). The history still averages the logged steps."""
    from icegan.gan.trainer import train_gan
    torch.manual_seed(0)
    on = torch.rand(16, 1, 32, 32) * 2 - 1
    log = ScalarLog() if with_log else None
    with HostReads() as reads:
        st = train_gan(on, on * 0.9, torch.arange(16) % 3, _tiny_gan(epochs=2), device="cpu", log=log)
    steps = 2 * 2                                   # 2 epochs of 16 pairs / 8
    assert reads.n == 2 * steps + 2 + 1
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


def test_masked_mean_reads_nothing_on_the_host_and_keeps_values_and_gradients():
    """Chosen on the device: the masked mean (2 of 4 pixels, 2 channels) and 0 for an empty mask, gradients the mask
    over the masked count and 0."""
    from flownet.selfsup_losses import masked_mean
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).reshape(1, 2, 2, 2).requires_grad_()
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 2, 2)
    with HostReads() as reads:
        full, empty = masked_mean(x, mask), masked_mean(x, torch.zeros_like(mask))
    assert reads.n == 0
    assert full.item() == (1 + 2 + 5 + 6) / 4 and empty.item() == 0.0
    torch.testing.assert_close(torch.autograd.grad(full, x)[0], mask.expand(1, 2, 2, 2) / 4, rtol=0, atol=0)
    assert torch.equal(torch.autograd.grad(masked_mean(x, torch.zeros_like(mask)), x)[0], torch.zeros_like(x))


def _texture(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.avg_pool2d(torch.rand(1, 1, 28, 28, generator=g), 5, 1, 2)


def test_step_losses_read_their_logs_in_one_copy_with_the_values_float_gives():
    """Over three updates the teacher's and the student's step loss read their logs on the host once (before: one
    read per masked mean and per log value of each update), each log the float of its tensor."""
    from flownet.selfsup import SelfSupLossConfig, student_step_loss, teacher_step_loss
    from flownet.selfsup_losses import forward_backward_occlusion, student_loss, teacher_loss
    g = torch.Generator().manual_seed(1)
    img1, img2, lc = _texture(1), _texture(2), SelfSupLossConfig()
    flows = [(torch.randn(1, 2, 28, 28, generator=g), torch.randn(1, 2, 28, 28, generator=g)) for _ in range(3)]
    tg = {"flow_f": flows[0][0] * 2, "flow_b": flows[0][1] * 2,
          "conf_f": (torch.rand(1, 1, 28, 28, generator=g) > 0.3).float(),
          "conf_b": (torch.rand(1, 1, 28, 28, generator=g) > 0.6).float()}
    with HostReads() as reads:
        _, teacher = teacher_step_loss(flows, img1, img2, lc, use_occlusion=True)
    assert reads.n == 1
    with HostReads() as reads:
        _, student = student_step_loss(flows, tg, img1, img2, lc)
    assert reads.n == 1
    ff, fb = flows[-1]
    occ_f, occ_b = forward_backward_occlusion(ff, fb, lc.alpha1, lc.alpha2), forward_backward_occlusion(
        fb, ff, lc.alpha1, lc.alpha2)
    last = teacher_loss(img1, img2, ff, fb, occ_f, occ_b, lc.census_window, lc.eps, lc.q, lc.beta, lc.smooth_weight)[1]
    assert teacher == {**last, "occ_f": float(occ_f.mean()), "occ_b": float(occ_b.mean())}
    assert all(type(v) is float for v in teacher.values())
    last = student_loss(tg["flow_f"], tg["flow_b"], ff, fb, tg["conf_f"], tg["conf_b"], img1, img2, lc.eps, lc.q,
                        lc.beta, lc.smooth_weight)[1]
    assert student == {**last, "conf_f": float(tg["conf_f"].mean())} and list(student) == ["dis", "smo", "conf_f"]


def test_selfsup_loop_reads_one_value_set_per_teacher_step_and_two_per_student_step(tmp_path, monkeypatch):
    """Per teacher step one copy: the step loss's logs, the loss (its finiteness check) and the flow magnitude of a
    logging step (before: the logs in a copy of their own, two per step); a student step adds the superpixel
    hallucination's copy of the image for SLIC. Counted as the difference of a run of 4 + 4 steps and one of 2 + 2
    (the evaluations and final metrics read alike in both)."""
    import test_flow_selfsup as selfsup_tests
    counts = []
    for n in (2, 4):
        with HostReads() as reads:
            selfsup_tests._loop_run(tmp_path / str(n), monkeypatch, f"train.teacher_steps={n}",
                                    f"train.student_steps={n}")
        counts.append(reads.n)
    assert counts[1] - counts[0] == 2 * 1 + 2 * 2


def test_gan_train_resume_reads_last_pt_once_and_continues_it(tmp_path, monkeypatch):
    """``icegan gan train`` resuming a run reads its last.pt once (the pre-start check hands it to the training, was
    read twice), and the resumed run continues that checkpoint: epoch 1's history as written, then epoch 2."""
    from icegan.cli import main
    from icegan.gan import pairs as gan_pairs
    from icegan.gan.trainer import load_checkpoint
    from _gan_sizes import fake_casme2_pairs, tiny_gan_train_args
    pairs = fake_casme2_pairs(8)
    monkeypatch.setattr(gan_pairs, "load_casme2_pairs", lambda *a, **k: pairs)
    args = tiny_gan_train_args(tmp_path)
    assert main(args + ["train.epochs=1"]) == 0
    last = tmp_path / "t" / "checkpoints" / "last.pt"
    first = load_checkpoint(last)[3]["history"]
    reads, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: (reads.append(str(f)), real_load(f, *a, **k))[1])
    assert main(args + ["train.epochs=2"]) == 0
    assert reads.count(str(last)) == 1
    resumed = real_load(last, map_location="cpu", weights_only=False)
    assert resumed["epoch"] == 2 and resumed["history"][0] == first[0] and resumed["history"][1]["epoch"] == 2
