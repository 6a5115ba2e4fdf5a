"""The main job's joint GAN loss, its config refusals and its GAN checkpoint cadence (56th audit, fix_joint)."""
import types

import pytest
import torch
import torch.nn.functional as F
from _flow_sizes import save_main_job_weights

from icegan import pipeline
from icegan.config import ConfigError
from icegan.pipeline import RecognizerSection, load_main_config
from icegan.recognition import RecognizerConfig, fit_recognizer

TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "gan.batch_size=8",
        "gan.base_channels=8", "gan.max_channels=16", "gan.d_base_channels=8", "recognizer.epochs=1",
        "recognizer.batch_size=16", "recognizer.name=ststnet"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=2)


def test_domain_bn_is_refused_when_the_main_jobs_config_loads():
    """recognizer.domain_bn=true was accepted by load_main_config and failed inside fold 1, after that fold's GAN
    had trained, naming model.domain_bn (a section the main job's config does not have)."""
    with pytest.raises(ConfigError, match=r"^recognizer\.domain_bn .*is supported by `icegan loso` feature runs, not "
                                          r"by the main job.*; set it to false$"):
        load_main_config(None, ["recognizer.domain_bn=true"])
    load_main_config(None, ["recognizer.domain_bn=false"])          # the off value loads


def test_fit_recognizers_domain_bn_message_names_the_section_of_the_config():
    """fit_recognizer's refusal of domain_bn names the key as the user typed it: recognizer.domain_bn for the main
    job's section, model.domain_bn for a RecognizerConfig (icegan fit's model section)."""
    x, y = torch.rand(6, 3, 28, 28), torch.arange(6) % 3
    for cfg, sec in ((RecognizerSection(epochs=1, name="ststnet", domain_bn=True), "recognizer"),
                     (RecognizerConfig(epochs=1, domain_bn=True), "model")):
        with pytest.raises(ValueError, match=rf"^{sec}\.domain_bn needs every clip's dataset.*set "
                                             rf"{sec}\.domain_bn=false$"):
            fit_recognizer(cfg, x, y, progress=False)


def _joint(tiny_weights):
    cfg = load_main_config(None, TINY + [f"flow.weights={tiny_weights}", "gan.joint=true", "gan.joint_weight=1.5"])
    runner = types.SimpleNamespace(cfg=cfg, estimator=pipeline.build_flow(cfg, torch.device("cpu")),
                                   device=torch.device("cpu"), n_classes=3)
    torch.manual_seed(0)
    feats, y = torch.rand(12, 3, 28, 28), torch.arange(12) % 3
    loss = pipeline.FoldRunner._joint_loss(runner, feats, y, 0)
    torch.manual_seed(1)
    onset = torch.rand(4, 1, 32, 32) * 2 - 1
    fake = (onset + 0.2 * torch.randn_like(onset)).clamp(-1, 1)
    return runner, loss, onset, fake, torch.tensor([0, 1, 2, 0])


def test_joint_loss_runs_in_float32_inside_the_trainers_autocast(tiny_weights):
    """train_gan calls extra_loss_fn inside its generator step's autocast block (gan.amp on a GPU): the joint loss ran
    SRFlowNet and the critic in bf16/fp16 there. It disables autocast itself now: the loss and its gradient w.r.t. the
    fake under CPU bf16 autocast are those without autocast, to the bit."""
    _, loss, onset, fake, c = _joint(tiny_weights)
    out = {}
    for amp in (False, True):
        f = fake.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            value = loss(None, onset, None, c, f)
        assert value.dtype == torch.float32
        out[amp] = (value.detach(), torch.autograd.grad(value, f)[0])
    assert torch.equal(out[True][0], out[False][0]) and torch.equal(out[True][1], out[False][1])
    assert float(out[False][1].abs().sum()) > 0


def test_joint_loss_without_autocast_is_the_critics_cross_entropy_through_the_flow(tiny_weights):
    """Outside autocast (every CPU run) the joint loss is what it always was, to the bit:
    gan.joint_weight · CE(critic(flow_features(forward((onset + 1) / 2, (fake + 1) / 2))), c)."""
    from flownet.strain import flow_features
    runner, loss, onset, fake, c = _joint(tiny_weights)
    with torch.no_grad():
        got = loss(None, onset, None, c, fake)
    # the same critic (same seed and data) built again, by hand
    torch.manual_seed(0)
    feats, y = torch.rand(12, 3, 28, 28), torch.arange(12) % 3
    critic = pipeline.fit_critic(runner.cfg.recognizer, feats, y, runner.device,
                                 seed=pipeline.derived_seed(runner.cfg.seed, 1000), n_classes=3)
    with torch.no_grad():
        flow = runner.estimator.forward((onset + 1) / 2, (fake + 1) / 2)
        want = 1.5 * F.cross_entropy(critic(flow_features(flow, 28, normalize="minmax")), c)
    assert torch.equal(got, want) and float(want) > 0


def test_fold_gan_of_15_epochs_checkpoints_at_most_ten_times_and_resumes(tmp_path):
    """gan.epochs // 10 saved every epoch for 10-19 GAN epochs (15 writes of last.pt for 15 epochs); the cadence is
    ceil(epochs / 10) now: at most ten writes per fold. A fold killed after a checkpoint resumes from it and ends
    with the weights of a straight run."""
    import icegan.gan.trainer as tr
    cfg = load_main_config(None, TINY + ["gan.epochs=15"])
    g = pipeline._gan_config(cfg, torch.device("cpu"))
    g.loss.perceptual = "none"
    assert g.train.checkpoint_every == 2
    for epochs, every in ((10, 1), (11, 2), (19, 2), (20, 2), (21, 3), (100, 10), (101, 11), (1, 1)):
        k = pipeline._gan_config(load_main_config(None, [f"gan.epochs={epochs}"]), "cpu").train.checkpoint_every
        writes = sum(1 for e in range(1, epochs + 1) if e == epochs or e % k == 0)
        assert k == every and writes <= 10, (epochs, k, writes)
    torch.manual_seed(0)
    on = torch.rand(8, 1, 32, 32) * 2 - 1
    ap = (on + 0.1 * torch.randn_like(on)).clamp(-1, 1)
    y = torch.arange(8) % 3
    saved = []
    real = tr.save_checkpoint

    class Killed(Exception):
        pass

    def rec(path, cfg_, gen, d, epoch, *a, **k):
        saved.append(epoch)
        real(path, cfg_, gen, d, epoch, *a, **k)
        if epoch == rec.kill_at:
            raise Killed
    rec.kill_at = None
    mp = pytest.MonkeyPatch()
    mp.setattr(tr, "save_checkpoint", rec)
    try:
        full = tr.train_gan(on, ap, y, g, device="cpu", out_dir=tmp_path / "a")
        assert saved == [2, 4, 6, 8, 10, 12, 14, 15]
        saved.clear()
        rec.kill_at = 6
        with pytest.raises(Killed):
            tr.train_gan(on, ap, y, g, device="cpu", out_dir=tmp_path / "b")
        rec.kill_at = None
        saved.clear()
        resumed = tr.train_gan(on, ap, y, g, device="cpu", out_dir=tmp_path / "b")
    finally:
        mp.undo()
    assert saved == [8, 10, 12, 14, 15] and resumed.epochs_done == 15 and len(resumed.history) == 15
    for (key, a), b in zip(full.generator.state_dict().items(), resumed.generator.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), key
