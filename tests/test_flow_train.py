"""flownet.train, the supervised flow trainer: the loss of one batch per backbone, the evaluation batches and the
model's mode around an evaluation, the dataset settings of a run, and the random training crops."""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET

import flownet.train as ftrain
from flownet.losses import srflownet_loss
from flownet.models.liteflownet2 import LiteFlowNet2, LiteFlowNet2Config, multiscale_loss
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.regularizers import regularizer_loss
from flownet.train import (FlowDataConfig, FlowTrainConfig, FlowTrainSection, StepShuffle, crop_offsets,
                           dataset_kwargs, evaluate_model, evaluation_batches, training_loss)

TINY = SRFlowNetConfig(**TINY_SRFLOWNET)


def _batch(b=2, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    img1 = torch.rand(b, 1, h, w, generator=g)
    mask = torch.zeros(b, 1, h, w)
    mask[..., 4:-4, 4:-4] = 1.0
    return {"img1": img1, "img2": torch.rand(b, 1, h, w, generator=g), "flow": torch.randn(b, 2, h, w, generator=g),
            "valid": torch.rand(b, h, w, generator=g) > 0.2, "mask": mask}


def test_liteflownet2_training_loss_is_the_multiscale_loss_plus_the_regularizer_on_frame_1():
    """LiteFlowNet2's batch loss = multiscale_loss + the regularizer on its final flow, which MIGAR weights by the
    gradients of frame 1 (not frame 2); the parts are reported and the final flow is returned."""
    torch.manual_seed(0)
    m = LiteFlowNet2(LiteFlowNet2Config(netc_channels=(8, 8, 8, 8, 8, 8), last_level=5)).eval()
    b = _batch()
    t = FlowTrainSection(backbone="liteflownet2", regularizer="migar", reg_weight=3.0, gamma=0.7)
    loss, parts, final = training_loss(m, b, t, "cpu")
    with torch.no_grad():
        out = m.forward_train(b["img1"], b["img2"])
    ms = multiscale_loss(out, b["flow"], b["valid"])
    reg = regularizer_loss("migar", [out.flow], img1=b["img1"], mask=b["mask"], gamma=0.7, weight=3.0)
    wrong = regularizer_loss("migar", [out.flow], img1=b["img2"], mask=b["mask"], gamma=0.7, weight=3.0)
    assert float(reg) > 0 and abs(float(reg) - float(wrong)) > 1e-3 * float(reg)
    assert float(loss.detach()) == pytest.approx(float(ms + reg), rel=1e-5)
    assert parts == pytest.approx({"epe_loss": float(ms), "reg_loss": float(reg)}, rel=1e-5)
    torch.testing.assert_close(final.detach(), out.flow)


def test_srflownet_training_loss_passes_gamma_and_returns_the_last_prediction():
    """Other backbones: srflownet_loss over the t.iters predictions with the section's gamma (0.5 here, not the
    default 0.8); the returned flow is the last prediction."""
    torch.manual_seed(0)
    m = SRFlowNet(TINY).train()
    b = _batch()
    t = FlowTrainSection(regularizer="tvr", gamma=0.5, iters=2)
    loss, parts, final = training_loss(m, b, t, "cpu")
    with torch.no_grad():
        flows = m(b["img1"], b["img2"], iters=2)
    assert len(flows) == 2 and not torch.allclose(flows[0], flows[1])
    want, want_parts = srflownet_loss(flows, b["flow"], b["valid"], img1=b["img1"], mask=b["mask"], regularizer="tvr",
                                      gamma=0.5)
    default_gamma, _ = srflownet_loss(flows, b["flow"], b["valid"], img1=b["img1"], mask=b["mask"], regularizer="tvr")
    assert float(want) != pytest.approx(float(default_gamma), rel=1e-4)
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5) and parts == pytest.approx(want_parts, rel=1e-5)
    torch.testing.assert_close(final.detach(), flows[-1])


def test_evaluation_batches_keep_order_and_evaluate_model_restores_eval_mode():
    """evaluation_batches collates the pairs in index order; evaluate_model leaves a model in eval mode in it (and
    one in training mode in training mode)."""
    items = [{"img1": torch.full((1, 8, 8), i / 10), "img2": torch.full((1, 8, 8), i / 10),
              "flow": torch.full((2, 8, 8), float(i)), "valid": torch.ones(8, 8, dtype=torch.bool)} for i in range(10)]
    batches = evaluation_batches(items, batch_size=4)
    assert [len(b["flow"]) for b in batches] == [4, 4, 2]
    assert torch.cat([b["flow"][:, 0, 0, 0] for b in batches]).tolist() == [float(i) for i in range(10)]
    m = SRFlowNet(TINY)
    for mode in (False, True):
        m.train(mode)
        evaluate_model(m, batches[:1], "cpu", iters=1)
        assert m.training is mode


def test_dataset_kwargs_pass_the_motion_ranges_validation_subjects_and_cache():
    d = FlowDataConfig(root="r", size=48, seed=3, gray=False, max_head=1.5, au_min=0.4, au_max=2.5,
                       n_val_subjects=3, landmark_cache="lm.npz")
    assert dataset_kwargs(d) == dict(root="r", size=48, seed=3, gray=False, max_head=1.5, au_range=(0.4, 2.5),
                                     n_val=3, landmark_cache="lm.npz")
    assert "n_val" not in dataset_kwargs(FlowDataConfig()) and "landmark_cache" not in dataset_kwargs(FlowDataConfig())


class _Stop(Exception):
    pass


def test_training_crops_cover_every_offset_in_both_axes(tmp_path, shared_data, monkeypatch):
    """train.crop: each sample's images, flows, mask and valid are cut at one common (y, x), drawn over every offset
    0 .. size - crop in each axis independently (63 of 64 px: offsets 0 and 1, and some y != x)."""
    full, cropped = [], []
    real_collate = ftrain.collate

    def collate(items):
        full.append(real_collate(items))
        return full[-1]

    def loss(model, b, *a, **k):
        cropped.append(b)
        raise _Stop
    monkeypatch.setattr(ftrain, "collate", collate)
    monkeypatch.setattr(ftrain, "training_loss", loss)
    cfg = FlowTrainConfig(name="crop", out_dir=str(tmp_path), model=TINY,
                          data=FlowDataConfig(root=str(shared_data), size=64, n_train=8, n_test=1, frames_per_clip=1),
                          train=FlowTrainSection(regularizer="tvr", batch_size=8, crop=63, steps=1, eval_every=0,
                                                 threads=1))
    with pytest.raises(_Stop):
        ftrain.train(cfg, progress=False)
    f, c = full[-1], cropped[0]
    offsets = set()
    for i in range(8):
        hits = [(y, x) for y in (0, 1) for x in (0, 1) if torch.equal(c["img1"][i], f["img1"][i][..., y:y + 63, x:x + 63])]
        assert len(hits) == 1, hits
        y, x = hits[0]
        offsets.add((y, x))
        for k in ("img2", "flow", "flow_head", "flow_expr", "mask", "valid"):
            assert torch.equal(c[k][i], f[k][i][..., y:y + 63, x:x + 63]), k
    assert {y for y, _ in offsets} == {0, 1} and {x for _, x in offsets} == {0, 1}
    assert any(y != x for y, x in offsets)


def test_weight_average_run_reports_the_shipped_weights_and_a_resumed_run_reshuffles(tmp_path, shared_data,
                                                                                    monkeypatch, capsys):
    """With train.ema_decay, metrics.json's test metrics are those of weights.pt (the average that ships), not of
    the raw weights beside it, and the validation line of the weight average is the average's (the final
    val_metrics), not a repeat of the raw weights' line; a resumed run goes on with the order of the pairs where it
    stopped (StepShuffle), so its first batch is not the first batch of a fresh run (which a shuffle seeded with the
    seed alone would replay)."""
    import json

    from flownet.data.synthetic_face import SyntheticFaceFlow
    from flownet.registry import load_srflownet

    def cfg(name, steps):
        return FlowTrainConfig(name=name, out_dir=str(tmp_path), model=TINY,
                               data=FlowDataConfig(root=str(shared_data), size=32, n_train=8, n_test=1, n_val_subjects=2,
                                                   n_val=1, frames_per_clip=1),
                               train=FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=steps,
                                                      eval_every=2, threads=1, ema_decay=0.5, seed=1))
    ftrain.train(cfg("a", 2), progress=False)
    run = tmp_path / "a"
    lines = dict(line.split(" {", 1) for line in capsys.readouterr().out.splitlines() if line.startswith("step 2 val"))
    meta = json.loads((run / "metrics.json").read_text())
    average = json.loads("{" + lines["step 2 val (weight average)"])
    assert average == meta["val_metrics"] and average != json.loads("{" + lines["step 2 val"])
    reported = meta["test_metrics"]
    test = evaluation_batches(SyntheticFaceFlow(split="test", n_pairs=1, **dataset_kwargs(cfg("a", 2).data)))
    shipped = evaluate_model(load_srflownet(run / "weights.pt"), test, "cpu")
    raw = evaluate_model(load_srflownet(run / "weights_raw.pt"), test, "cpu")
    assert reported["EPE"] == pytest.approx(shipped["EPE"], rel=1e-5) and raw["EPE"] != pytest.approx(shipped["EPE"])
    firsts = []

    def loss(model, b, *a, **k):
        firsts.append(b["img1"])
        raise _Stop
    monkeypatch.setattr(ftrain, "training_loss", loss)
    for name in ("a", "fresh"):                     # "a" resumes at step 2: batch 2 of epoch 0, "fresh" batch 0
        with pytest.raises(_Stop):
            ftrain.train(cfg(name, 4), progress=False)
    assert not torch.equal(firsts[0], firsts[1])


def test_settings_a_run_cannot_start_with_leave_its_folder_and_config_as_they_were(tmp_path, shared_data):
    """A bad range setting (and a crop larger than the pairs) is refused before the run folder is made; resuming a
    run written without a weight average under train.ema_decay is refused naming last.pt before config.yaml is
    rewritten, so the folder still says which settings its checkpoint needs."""
    import yaml

    def cfg(name, ema=0.0, generic=0.0):
        return FlowTrainConfig(name=name, out_dir=str(tmp_path), model=TINY,
                               data=FlowDataConfig(root=str(shared_data), size=32, n_train=4, n_test=1,
                                                   frames_per_clip=1, generic_fraction=generic),
                               train=FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=1, eval_every=1,
                                                      threads=1, ema_decay=ema, seed=1))
    with pytest.raises(ValueError, match=r"^data.generic_fraction must be in \[0, 1\], got 1.5$"):
        ftrain.train(cfg("bad", generic=1.5), progress=False)
    with pytest.raises(ValueError, match=r"^data.n_generic_val must be >= 0, got -1$"):
        ftrain.train(dataclasses.replace(cfg("bad"), data=dataclasses.replace(cfg("bad").data, n_generic_val=-1)),
                     progress=False)
    with pytest.raises(ValueError, match=r"^train.ema_decay must be in \[0, 1\) \(0 = off\), got 1.0$"):
        ftrain.train(cfg("bad", ema=1.0), progress=False)
    with pytest.raises(ValueError, match=r"^train.workers must be >= 0, got -1$"):
        ftrain.train(dataclasses.replace(cfg("bad"), train=dataclasses.replace(cfg("bad").train, workers=-1)),
                     progress=False)
    with pytest.raises(ValueError, match=r"^train.crop=48 is larger than the pairs \(32x32, data.size\)$"):
        ftrain.train(dataclasses.replace(cfg("bad"), train=dataclasses.replace(cfg("bad").train, crop=48)),
                     progress=False)
    assert not (tmp_path / "bad").exists()
    ftrain.train(cfg("a"), progress=False)
    before = (tmp_path / "a" / "config.yaml").read_text()
    last = re.escape(str(tmp_path / "a" / "last.pt"))
    with pytest.raises(ValueError, match=rf"^{last}: train.ema_decay=0.5 but the checkpoint "
                                         r"was written without a weight average; resume with train.ema_decay=0"):
        ftrain.train(cfg("a", ema=0.5), progress=False)
    assert (tmp_path / "a" / "config.yaml").read_text() == before
    assert yaml.safe_load(before)["train"]["ema_decay"] == 0.0


def interrupted_and_resumed(monkeypatch, cfg, at: int) -> None:
    """Train ``cfg`` until its update ``at + 1`` starts (a kill then: last.pt holds step ``at``; needs
    ``train.ckpt_every`` dividing ``at``), then run it again to the end (a resume)."""
    real, calls = ftrain.training_loss, []

    def cut(*a, **k):
        calls.append(1)
        if len(calls) > at:
            raise _Stop
        return real(*a, **k)
    monkeypatch.setattr(ftrain, "training_loss", cut)
    with pytest.raises(_Stop):
        ftrain.train(cfg, progress=False)
    assert torch.load(f"{cfg.out_dir}/{cfg.name}/last.pt", weights_only=False)["step"] == at
    monkeypatch.setattr(ftrain, "training_loss", real)
    ftrain.train(cfg, progress=False)


@pytest.mark.parametrize("crop", [24, 0], ids=["crops", "whole_pairs"])
def test_a_run_killed_mid_epoch_and_resumed_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, shared_data,
                                                                                         monkeypatch, crop):
    """6 updates on 6 pairs in batches of 2 (3 per epoch), killed before update 5 (inside the second epoch) and
    resumed from last.pt at step 4: the shipped weights and last.pt's weights and Adam moments equal, tensor for
    tensor, those of a run never killed. Before, the resume drew its crops from a generator seeded with
    seed + 1 + step and shuffled from one seeded with seed + step, both restarted at the resume: other crops of
    other pairs (with whole pairs, other pairs only)."""
    def cfg(name):
        return FlowTrainConfig(name=name, out_dir=str(tmp_path), model=TINY,
                               data=FlowDataConfig(root=str(shared_data), size=32, n_train=6, n_test=1,
                                                   frames_per_clip=1),
                               train=FlowTrainSection(regularizer="tvr", batch_size=2, crop=crop, steps=6,
                                                      eval_every=0, ckpt_every=2, log_every=100, threads=1, seed=1,
                                                      lr=1e-3))
    steps, real_offsets = [], ftrain.crop_offsets

    def offsets(seed, step, *a):
        steps.append(step)
        return real_offsets(seed, step, *a)
    monkeypatch.setattr(ftrain, "crop_offsets", offsets)
    ftrain.train(cfg("whole"), progress=False)
    assert steps == (list(range(6)) if crop else [])     # each update's crops are drawn for its own step
    interrupted_and_resumed(monkeypatch, cfg("cut"), 4)
    a, b = (torch.load(tmp_path / n / "weights.pt", weights_only=False)["state_dict"] for n in ("whole", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    a, b = (torch.load(tmp_path / n / "last.pt", weights_only=False) for n in ("whole", "cut"))
    assert a["step"] == b["step"] == 6 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    moments = [(sa[m], sb[m]) for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values())
               for m in ("exp_avg", "exp_avg_sq")]
    assert moments and all(torch.equal(x, y) for x, y in moments)


def test_crop_offsets_are_a_function_of_seed_and_step_within_the_pairs():
    """crop_offsets: the same (seed, step) gives the same corners, another step or seed others, all inside the pair."""
    draws = {(seed, step): crop_offsets(seed, step, 16, 40, 36, 24) for seed in (0, 1) for step in range(4)}
    assert len({str(v) for v in draws.values()}) == len(draws)
    assert crop_offsets(1, 2, 16, 40, 36, 24) == draws[1, 2]
    ys = [y for v in draws.values() for y in v[0]]
    xs = [x for v in draws.values() for x in v[1]]
    assert min(ys) == 0 and max(ys) == 40 - 24 and min(xs) == 0 and max(xs) == 36 - 24


def test_step_shuffle_started_at_step_k_reads_what_a_run_from_step_0_reads_from_k_on():
    """StepShuffle: each epoch takes n // batch_size whole batches of distinct pairs, epochs differ in order, and the
    order from step k is the tail of the order from step 0 (the resume's order); no whole batch is refused."""
    import itertools
    n, bs = 7, 2
    full = list(itertools.islice(iter(StepShuffle(n, bs, seed=3)), 5 * 3 * bs))
    epochs = [full[e * 3 * bs:(e + 1) * 3 * bs] for e in range(5)]
    assert all(len(set(e)) == 3 * bs and set(e) <= set(range(n)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 5
    for k in (1, 3, 4, 8):
        assert list(itertools.islice(iter(StepShuffle(n, bs, seed=3, start=k)), 4 * bs)) == full[k * bs:(k + 4) * bs]
    assert list(itertools.islice(iter(StepShuffle(n, bs, seed=4)), 3 * bs)) != full[:3 * bs]
    with pytest.raises(ValueError, match=r"^data.n_train=1 training pairs hold no whole batch of train.batch_size=2"):
        StepShuffle(1, 2, seed=0)


def test_fewer_training_pairs_than_a_batch_are_refused_before_the_run_folder(tmp_path, shared_data):
    """data.n_train < train.batch_size: the loader (drop_last) made no batch and the training loop waited for one
    forever; now the run is refused naming both keys, before its folder is made."""
    cfg = FlowTrainConfig(name="few", out_dir=str(tmp_path), model=TINY,
                          data=FlowDataConfig(root=str(shared_data), size=32, n_train=1, n_test=1, frames_per_clip=1),
                          train=FlowTrainSection(regularizer="tvr", batch_size=2, steps=2, threads=1))
    with pytest.raises(ValueError, match=r"^data.n_train=1 training pairs hold no whole batch of train.batch_size=2; "
                                         r"set data.n_train >= train.batch_size >= 1$"):
        ftrain.train(cfg, progress=False)
    assert not (tmp_path / "few").exists()
