"""Mutation audit of training-loop logic and its small data helpers: the ICE-GAN trainer's objectives, optimisers,
schedules and per-epoch draws (icegan.gan.trainer), the action-unit target columns (icegan.data.action_units), the
confident-learning thresholds and the seeded forest (icegan.label_noise), the synthetic demo clips
(icegan.data.synthetic_me), and the supervised flow trainer's resume (flownet.train). Each test fails on one small
deliberate change of its module that the earlier tests let through (named in its docstring); the values are
hand-computed or invariants, not copied from the code's output."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from _scalar_log import ScalarLog

import icegan.gan.trainer as tr
from icegan.data.action_units import action_unit_targets
from icegan.data.synthetic_me import make_synthetic_me
from icegan.label_noise import confident_joint_flags, forest_out_of_bag_probabilities


# --------------------------------------------------------------------------------------- icegan.data.action_units

def test_action_unit_columns_follow_the_order_of_the_units_given(shared_data):
    """units=(10, 7, 4, 12): column k is unit units[k], in the order given, not sorted. CASME II sub01 EP19_05f is
    coded "4+L10" and SAMM 006_1_2 "4+7" (the official sheets). Fails if the units are sorted first."""
    t, known = action_unit_targets(["casme2", "samm"], ["casme2/sub01", "samm/006"], ["EP19_05f", "006_1_2"],
                                   shared_data / "annotations", units=(10, 7, 4, 12))
    assert known.tolist() == [True, True]
    assert t.tolist() == [[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]]


# ------------------------------------------------------------------------------------------------ icegan.label_noise

def test_confident_thresholds_are_the_class_means_not_medians():
    """t_j is the *mean* of p_j over the clips labelled j (Northcutt et al. 2021, Sec. 3.1). Class 0: p_0 = 0.9, 0.9,
    0.3 → t_0 = 0.7 (median 0.9); class 1: p_1 = 0.2, 0.9, 0.9 → t_1 = 2/3 (median 0.9). Clip 2 (label 0, p_1 = 0.7
    ≥ 2/3) and clip 3 (label 1, p_0 = 0.8 ≥ 0.7) are off the diagonal; with medians as thresholds neither would
    be."""
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.8, 0.2], [0.1, 0.9], [0.1, 0.9]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert confident_joint_flags(probs, labels).tolist() == [False, False, True, True, False, False]


def test_out_of_bag_probabilities_follow_the_seed():
    """The forest's random state is the ``seed`` given: its out-of-bag probabilities are scikit-learn's forest with
    that random_state, and another seed gives others. Fails if the seed is not passed on."""
    from sklearn.ensemble import RandomForestClassifier
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    y = np.arange(30) % 3
    got = forest_out_of_bag_probabilities(x, y, trees=40, seed=7)
    ref = RandomForestClassifier(n_estimators=40, class_weight="balanced_subsample", random_state=7,
                                 oob_score=True).fit(x, y).oob_decision_function_
    np.testing.assert_allclose(got, ref)
    assert not np.allclose(got, forest_out_of_bag_probabilities(x, y, trees=40, seed=8))


# ------------------------------------------------------------------------------------------ icegan.data.synthetic_me

def test_synthetic_frames_round_to_the_nearest_grey_level():
    """The background outside the drawn face is grey 0.25 (+ a zero-mean lighting gradient and sensor noise): its mean
    over the four 6×6 corners of every frame is 0.25 · 255 = 63.75 when frames are rounded to uint8, 63.25 when they
    are truncated."""
    me = make_synthetic_me(n_subjects=2, clips_per_class=2, size=48, seed=0)
    for frames in (me.onset, me.apex):
        f = frames.astype(float)
        corners = np.concatenate([f[:, :6, :6], f[:, :6, -6:], f[:, -6:, :6], f[:, -6:, -6:]], axis=1)
        assert corners.mean() == pytest.approx(63.75, abs=0.2)


def test_synthetic_clips_of_one_amplitude_and_their_names():
    """amplitude (min, max) with min = max is allowed (0 < min ≤ max ≤ 10): every clip peaks at exactly that many
    pixels at 128 px (1 px at 64 px). Every row is of dataset 'synthetic'; the apex has its own sensor noise, so in
    the still background it differs from the onset."""
    me = make_synthetic_me(n_subjects=2, clips_per_class=1, size=64, amplitude=(2.0, 2.0), seed=1)
    peak = np.linalg.norm(me.flow, axis=1).reshape(len(me.flow), -1).max(1)
    np.testing.assert_allclose(peak, 1.0, atol=2e-3)
    assert (me.manifest["amplitude"] == 1.0).all()
    assert (me.manifest["dataset"] == "synthetic").all()
    assert (me.onset[:, :6, :6] != me.apex[:, :6, :6]).mean() > 0.3


# --------------------------------------------------------------------------------------------- icegan.gan.trainer

def _tiny(epochs=1, batch_size=8, **loss):
    from _gan_sizes import tiny_gan_config
    cfg = tiny_gan_config(32)
    cfg.train.epochs, cfg.train.batch_size, cfg.train.progress, cfg.train.hflip = epochs, batch_size, False, False
    cfg.loss.perceptual = "none"
    for k, v in loss.items():
        setattr(cfg.loss, k, v)
    return cfg


def _faces(n=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    on = torch.rand(n, 1, 32, 32, generator=gen) * 2 - 1
    ap = (on + 0.2 * torch.rand(n, 1, 32, 32, generator=gen)).clamp(-1, 1)
    return on, ap, torch.arange(n) % 3


def _changed(a: torch.nn.Module, b: dict) -> bool:
    return any(not torch.equal(v, b[k]) for k, v in a.state_dict().items() if v.is_floating_point())


def test_the_generator_objective_with_both_branches_by_its_terms(monkeypatch):
    """G's loss = λ_adv·adv(fake) + λ_mes·ip + g_cls·margin(fake, c) + counterfactual·(λ_adv·adv(fake') +
    g_cls·margin(fake', c')) + mode_seeking·hinge: the adversarial terms see B faces each, the counterfactual margin
    the other classes c' ≠ c; D's adversarial term sees the 2B synthetic faces. Weights none of which is 1. Fails if
    the counterfactual branch drops λ_adv or its weight, targets the true class, if the true-class terms take both
    branches, if D sees one branch only, or if the mode-seeking weight is ignored."""
    adv_g, margins, adv_d, ms = [], [], [], []
    real_adv_g, real_margin, real_adv_d, real_ms = (tr.adversarial_g_loss, tr.margin_loss, tr.adversarial_d_loss,
                                                    tr.diversity_hinge)
    def val(t):
        return float(t.detach())
    monkeypatch.setattr(tr, "adversarial_g_loss", lambda a: (adv_g.append((len(a), val(real_adv_g(a)))),
                                                             real_adv_g(a))[1])
    monkeypatch.setattr(tr, "margin_loss", lambda ln, t, *a: (margins.append((t.clone(), val(real_margin(ln, t, *a)))),
                                                               real_margin(ln, t, *a))[1])
    monkeypatch.setattr(tr, "adversarial_d_loss", lambda r, f: (adv_d.append((len(r), len(f))), real_adv_d(r, f))[1])
    monkeypatch.setattr(tr, "diversity_hinge", lambda a, b, tau: (ms.append(val(real_ms(a, b, tau))),
                                                                  real_ms(a, b, tau))[1])
    ys = []
    on, ap, y = _faces()
    cfg = _tiny(lambda_adv=0.3, lambda_mes=2.0, g_cls=0.5, counterfactual=0.7, mode_seeking=0.4)
    log = ScalarLog()
    tr.train_gan(on, ap, y, cfg, device="cpu", log=log,
                 extra_loss_fn=lambda g, o, z, c, f: (ys.append(c.clone()), f.sum() * 0)[1])
    r = log.by_step[0]
    assert [n for n, _ in adv_g] == [8, 8] and adv_d == [(8, 16)] and len(margins) == 2 and len(ms) == 1
    (c_true, m1), (c_other, m2) = margins
    assert torch.equal(c_true, ys[0]) and bool((c_other != ys[0]).all())
    assert r["loss/g_adv"] == pytest.approx(adv_g[0][1]) and r["loss/g_cls"] == pytest.approx(m1)
    want = 0.3 * adv_g[0][1] + 2.0 * r["loss/ip"] + 0.5 * m1 + 0.7 * (0.3 * adv_g[1][1] + 0.5 * m2) + 0.4 * ms[0]
    assert r["loss/g_total"] == pytest.approx(want, rel=1e-5)


def test_zero_weights_leave_that_network_unchanged():
    """With every weight of D's objective 0 (λ_adv = λ_mer = 0) D's weights do not move in 2 steps, though G's
    objective (g_cls > 0) runs through D: its gradients must not reach D's update. With g_cls > 0 the only G term
    (λ_adv = λ_mes = counterfactual = 0) G does move: the margin term's gradient reaches G. With every G weight 0
    G does not move. Fails if D's gradients are not cleared before its step, or if the margin term is detached."""
    on, ap, y = _faces()
    cfg = _tiny(batch_size=4, lambda_adv=0.0, lambda_mer=0.0, lambda_mes=0.0, g_cls=1.0, counterfactual=0.0)
    g0, d0 = tr.build_models(cfg)
    g_init = {k: v.clone() for k, v in g0.state_dict().items()}
    d_init = {k: v.clone() for k, v in d0.state_dict().items()}
    st = tr.train_gan(on, ap, y, cfg, device="cpu", init=(g0, d0))
    assert not _changed(st.discriminator, d_init)
    assert _changed(st.generator, g_init)
    cfg.loss.g_cls, cfg.loss.lambda_mer = 0.0, 1.0
    g0, d0 = tr.build_models(cfg)
    g_init = {k: v.clone() for k, v in g0.state_dict().items()}
    st = tr.train_gan(on, ap, y, cfg, device="cpu", init=(g0, d0))
    assert not _changed(st.generator, g_init)


def test_optimisers_and_cosine_schedules_follow_the_config_through_a_resume(tmp_path):
    """train.lr 1e-3, lr_d 4e-3, beta1 0.7, cosine over 3 epochs: the epochs run at lr·(1 + cos(π e / 3)) / 2 =
    1e-3, 7.5e-4, 2.5e-4 (the history records each epoch's lr, before its scheduler step), also when epochs 2-3 are a
    resume; after epoch 1 the checkpoint's optimisers hold lr 7.5e-4 and 3e-3 and betas (0.7, 0.999). Fails if a
    scheduler is not restored or not stepped, T_max is not the epoch count, lr_d or beta1 is ignored, or the logged lr
    is the next epoch's."""
    on, ap, y = _faces()
    cfg = _tiny(epochs=3)
    cfg.train.lr, cfg.train.lr_d, cfg.train.beta1, cfg.train.cosine = 1e-3, 4e-3, 0.7, True
    half = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_minutes=1e-9))   # stops after epoch 1
    tr.train_gan(on, ap, y, half, device="cpu", out_dir=tmp_path)
    payload = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    pg, pd = payload["opt_g"]["param_groups"][0], payload["opt_d"]["param_groups"][0]
    assert pg["lr"] == pytest.approx(7.5e-4) and pd["lr"] == pytest.approx(3e-3)
    assert tuple(pg["betas"]) == tuple(pd["betas"]) == (0.7, 0.999)
    st = tr.train_gan(on, ap, y, cfg, device="cpu", out_dir=tmp_path)
    lrs = [h["lr"] for h in st.history]
    assert lrs == pytest.approx([1e-3 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)])
    assert lrs == pytest.approx([1e-3, 7.5e-4, 2.5e-4])
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert last["opt_d"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_every_epoch_draws_its_own_batches_and_noise_and_drops_the_partial_batch():
    """10 pairs in batches of 4: 2 steps per epoch (the last partial batch of 2 is dropped), each of 4 pairs; over 3
    epochs the batches are not the same every epoch (the shuffle is seeded per epoch) and no two steps draw the same
    noise z. Fails if the shuffle or the noise generator is seeded without the epoch, or the partial batch is kept."""
    on, ap, y = _faces(10)
    seen = []
    tr.train_gan(on, ap, y, _tiny(epochs=3, batch_size=4), device="cpu",
                 extra_loss_fn=lambda g, o, z, c, f: (seen.append((o.clone(), z.clone())), f.sum() * 0)[1])
    assert [len(o) for o, _ in seen] == [4] * 6
    which = [tuple(sorted(int((on.flatten(1) == row).all(1).nonzero()) for row in o.flatten(1))) for o, _ in seen]
    assert len({tuple(which[2 * e:2 * e + 2]) for e in range(3)}) > 1
    zs = [z for _, z in seen]
    assert all(not torch.equal(zs[i], zs[j]) for i in range(6) for j in range(i + 1, 6))


# ------------------------------------------------------------------------------------------------- flownet.train

def test_a_flow_run_resumed_after_step_1_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, shared_data):
    """2 steps on 2 training pairs in batches of 2 (every batch holds both pairs, so the order of a shuffle does not
    change the batch mean) with a weight average: a run of 1 step resumed to 2 ends with the raw and averaged
    weights of a run of 2 steps at once. Fails if the resume does not restore the optimizer (Adam's moments) or the
    weight average, or if the gradients of one step are not cleared before the next."""
    import flownet.train as ftrain
    from _flow_sizes import TINY_SRFLOWNET
    from flownet.models.srflownet import SRFlowNetConfig
    from flownet.registry import load_srflownet
    from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection

    def cfg(name, steps):
        return FlowTrainConfig(name=name, out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                               data=FlowDataConfig(root=str(shared_data), size=32, n_train=2, n_test=1,
                                                   frames_per_clip=1),
                               train=FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=steps,
                                                      eval_every=0, threads=1, ema_decay=0.5, seed=1, lr=1e-3))
    ftrain.train(cfg("whole", 2), progress=False)
    ftrain.train(cfg("cut", 1), progress=False)
    ftrain.train(cfg("cut", 2), progress=False)
    for f in ("weights.pt", "weights_raw.pt"):
        a = load_srflownet(tmp_path / "whole" / f).state_dict()
        b = load_srflownet(tmp_path / "cut" / f).state_dict()
        for k, v in a.items():
            assert torch.allclose(v, b[k], atol=1e-6), (f, k)


def test_flow_training_clips_each_step_at_train_clip_and_hands_the_loss_its_mask_mode(tmp_path, shared_data,
                                                                                      monkeypatch):
    """Each update's gradients are clipped to the norm ``train.clip`` (not the default 1.0), and ``train.mask_mode``
    reaches the loss's regulariser (mutations killed: the clip dropped, the mask mode not passed on; neither changed
    a result the earlier tests looked at)."""
    import flownet.train as ftrain
    from _flow_sizes import TINY_SRFLOWNET
    from flownet.models.srflownet import SRFlowNetConfig
    from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection

    clips, modes = [], []
    real_clip, real_loss = torch.nn.utils.clip_grad_norm_, ftrain.srflownet_loss

    def clip_spy(params, max_norm, *a, **kw):
        clips.append(max_norm)
        return real_clip(params, max_norm, *a, **kw)

    def loss_spy(*a, **kw):
        modes.append(kw.get("mask_mode"))
        return real_loss(*a, **kw)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_spy)
    monkeypatch.setattr(ftrain, "srflownet_loss", loss_spy)
    cfg = FlowTrainConfig(name="clip", out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                          data=FlowDataConfig(root=str(shared_data), size=32, n_train=2, n_test=1, frames_per_clip=1),
                          train=FlowTrainSection(regularizer="tvr", mask_mode="literal", clip=0.25, batch_size=2,
                                                 crop=0, steps=2, eval_every=0, threads=1, seed=1, lr=1e-3))
    ftrain.train(cfg, progress=False)
    assert clips == [0.25, 0.25]                     # one clip per update, at the configured norm
    assert modes and set(modes) == {"literal"}
