"""Generic (non-face) synthetic flow scenes (flownet.data.synthetic_generic) and their use in flow training."""
import json
import math

import numpy as np
import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET
from torchvision.transforms.functional import gaussian_blur

import flownet.data.synthetic_generic as sg
from flownet.data.synthetic_face import backward_warp
from flownet.data.synthetic_generic import (SyntheticGenericFlow, affine_flow, make_scene_pair, noise_texture,
                                            shape_mask)


def _grid(n):
    return torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")


def test_affine_flow_known_values_and_inverse_round_trip():
    ys, xs = _grid(9)
    t = affine_flow(ys, xs, (4.0, 4.0), 1.0, 0.0, (1.5, -2.0))
    assert torch.allclose(t[0], torch.full_like(xs, 1.5)) and torch.allclose(t[1], torch.full_like(xs, -2.0))
    # a quarter turn about the centre (x right, y down): (cx + 1, cy) goes to (cx, cy + 1)
    r = affine_flow(ys, xs, (4.0, 4.0), 1.0, math.pi / 2, (0.0, 0.0))
    assert r[:, 4, 5].tolist() == pytest.approx([-1.0, 1.0], abs=1e-6)
    assert r[:, 4, 4].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    # scale 2 about the centre: flow = x - c
    s = affine_flow(ys, xs, (4.0, 4.0), 2.0, 0.0, (0.0, 0.0))
    assert torch.allclose(s[0], xs - 4.0) and torch.allclose(s[1], ys - 4.0)
    # A^-1(A(x)) = x for a general map
    c, sc, a, tr = (3.0, 5.0), 1.07, 0.3, (2.5, -1.0)
    f = affine_flow(ys, xs, c, sc, a, tr)
    iy, ix = sg._inverse_coords(ys + f[1], xs + f[0], c, sc, a, tr)
    assert torch.allclose(iy, ys, atol=1e-5) and torch.allclose(ix, xs, atol=1e-5)


def test_shape_mask_inside_outline_outside():
    ys, xs = _grid(41)
    disc = {"kind": "blob", "cx": 20.0, "cy": 20.0, "r0": 10.0, "amps": [0.0] * 4, "phases": [0.0] * 4}
    m = shape_mask(ys, xs, disc)
    assert float(m[20, 20]) == 1.0 and float(m[20, 30]) == pytest.approx(0.5) and float(m[20, 35]) == 0.0
    # a super-ellipse with p = 2 and a = b is the same disc
    se = {"kind": "superellipse", "cx": 20.0, "cy": 20.0, "a": 10.0, "b": 10.0, "p": 2.0, "angle": 0.7}
    assert torch.allclose(shape_mask(ys, xs, se), m, atol=1e-4)
    # rotating a 10 x 4 box by 90 degrees swaps its extents
    box = {"kind": "superellipse", "cx": 20.0, "cy": 20.0, "a": 10.0, "b": 4.0, "p": 8.0, "angle": 0.0}
    assert float(shape_mask(ys, xs, box)[20, 28]) == 1.0 and float(shape_mask(ys, xs, box)[28, 20]) == 0.0
    rot = dict(box, angle=math.pi / 2)
    assert float(shape_mask(ys, xs, rot)[28, 20]) == 1.0 and float(shape_mask(ys, xs, rot)[20, 28]) == 0.0
    with pytest.raises(ValueError, match="unknown shape kind"):
        shape_mask(ys, xs, dict(disc, kind="star"))


def test_noise_texture_range_contrast_and_size_check():
    t = noise_texture(64, 80, np.random.default_rng(0))
    assert t.shape == (64, 80) and float(t.min()) >= 0.0 and float(t.max()) <= 1.0 and float(t.std()) > 0.03
    assert torch.equal(t, noise_texture(64, 80, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="at least 2x2"):
        noise_texture(1, 8, np.random.default_rng(0))


def _smooth_textures(monkeypatch):
    """Low-pass textures, so that bilinear resampling is (nearly) exact and warping errors show flow errors."""
    orig = sg.noise_texture
    monkeypatch.setattr(sg, "noise_texture",
                        lambda h, w, rng: gaussian_blur(orig(h, w, rng)[None, None], 21, 4.0)[0, 0])


def test_scene_flow_is_exact_by_warping(monkeypatch):
    """Frame 2 sampled at x + flow(x) reproduces frame 1: everywhere for a background-only scene, and on the
    pixels an object owns in both frames for scenes with objects; a wrong flow (here, the background motion
    alone on the object pixels) does not."""
    _smooth_textures(monkeypatch)
    p = make_scene_pair(96, np.random.default_rng(3), n_objects=(0, 0), noise=0.0, blur=0.0)
    assert float(p["flow"].norm(dim=0).max()) > 0.0
    err = (backward_warp(p["img2"][None], p["flow"][None])[0] - p["img1"]).abs()[0]
    tgt_x = torch.arange(96)[None, :] + p["flow"][0]
    tgt_y = torch.arange(96)[:, None] + p["flow"][1]
    inside = (tgt_x >= 0) & (tgt_x <= 95) & (tgt_y >= 0) & (tgt_y <= 95)
    shifted = p["flow"] + torch.tensor([0.5, 0.0]).view(2, 1, 1)  # a flow half a pixel off
    err_off = (backward_warp(p["img2"][None], shifted[None])[0] - p["img1"]).abs()[0]
    assert inside.float().mean() > 0.5 and float(err[inside].quantile(0.99)) < 2e-3
    assert float(err[inside].median()) < 0.2 * float(err_off[inside].median())
    checked = 0
    for seed in range(6):
        q = make_scene_pair(96, np.random.default_rng(seed), n_objects=(2, 3), max_motion=6.0, noise=0.0, blur=0.0)
        assert torch.allclose(q["flow"], q["flow_head"] + q["flow_expr"])
        assert float(q["flow_expr"][:, q["layers"] == 0].abs().max()) == 0.0  # the background is camera motion only
        top = int(q["layers"].max())
        own = (q["layers"] == top)
        # interior of the topmost object in frame 1 (nothing can cover it in frame 2): away from its outline
        own_in = (torch.nn.functional.max_pool2d((~own).float()[None, None], 7, 1, 3)[0, 0] == 0)
        if own_in.sum() < 20:
            continue
        good = (backward_warp(q["img2"][None], q["flow"][None])[0] - q["img1"]).abs()[0][own_in]
        bad = (backward_warp(q["img2"][None], q["flow_head"][None])[0] - q["img1"]).abs()[0][own_in]
        assert float(good.median()) < 2e-3
        if float(q["flow_expr"][:, own_in].norm(dim=0).mean()) > 1.0:
            assert float(bad.median()) > 3 * float(good.median())
        checked += 1
    assert checked >= 3


def test_scene_pair_contract_determinism_and_errors():
    p = make_scene_pair((48, 64), np.random.default_rng(1))
    assert p["img1"].shape == p["img2"].shape == (1, 48, 64) and p["flow"].shape == (2, 48, 64)
    assert p["mask"].shape == (1, 48, 64) and bool(p["mask"].eq(1).all()) and bool(p["valid"].all())
    assert 0.0 <= float(p["img1"].min()) and float(p["img2"].max()) <= 1.0
    ds = SyntheticGenericFlow(split="train", size=32, n_pairs=3, seed=5)
    a, b = ds[1], ds[1]
    assert all(torch.equal(a[k], b[k]) for k in ("img1", "img2", "flow"))
    assert a["subject"] == "generic" and a["path"] == "generic:train:1"
    other = SyntheticGenericFlow(split="val", size=32, n_pairs=3, seed=5)[1]
    assert not torch.equal(a["img1"], other["img1"])  # the splits draw from different streams
    still = make_scene_pair(32, np.random.default_rng(0), max_motion=0.0)
    # without translation the background only turns and scales about the image centre, which stays put
    assert still["flow_head"][:, 16, 16].abs().max() < 1e-5
    assert float(make_scene_pair(32, np.random.default_rng(0), max_motion=10.0)["flow_head"][:, 16, 16].norm()) > 0.01
    with pytest.raises(ValueError, match="at least 16x16"):
        make_scene_pair(8, np.random.default_rng(0))
    with pytest.raises(ValueError, match="max_motion"):
        make_scene_pair(32, np.random.default_rng(0), max_motion=-1.0)
    with pytest.raises(ValueError, match="n_objects"):
        make_scene_pair(32, np.random.default_rng(0), n_objects=(3, 1))
    with pytest.raises(ValueError, match="split"):
        SyntheticGenericFlow(split="dev")
    with pytest.raises(ValueError, match="grey"):
        SyntheticGenericFlow(gray=False)
    with pytest.raises(IndexError):
        ds[3]


def test_mixed_flow_draws_the_requested_share_deterministically():
    from flownet.train import MixedFlow
    base, other = list(range(2000)), [-i for i in range(1, 2001)]
    m = MixedFlow(base, other, 0.4, seed=3)
    picks = [m[i] < 0 for i in range(2000)]
    assert 0.36 < np.mean(picks) < 0.44
    assert picks == [MixedFlow(base, other, 0.4, seed=3)[i] < 0 for i in range(2000)]
    assert all(MixedFlow(base, other, 0.0)[i] == i for i in range(50))
    assert all(MixedFlow(base, other, 1.0)[i] == -(i + 1) for i in range(50))
    with pytest.raises(ValueError, match="generic_fraction"):
        MixedFlow(base, other, 1.5)
    with pytest.raises(ValueError, match="differ in length"):
        MixedFlow(base, other[:10], 0.5)


def test_training_with_generic_scenes_watches_generic_validation(tmp_path, shared_data):
    """data.generic_fraction mixes generic scenes into the facial training batches and data.n_generic_val scores
    generic validation pairs beside the facial ones, into metrics.json; a bad fraction is refused by name."""
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.train import FlowTrainConfig, train
    from icegan.config import load_config
    small = SRFlowNetConfig(**{**TINY_SRFLOWNET, "iters": 2})
    tiny = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in SRFlowNet(small).config_dict().items()]
    base = [f"out_dir={tmp_path}", f"data.root={shared_data}", "data.n_train=4", "data.n_test=2", "data.n_val=2",
            "data.size=64", "train.batch_size=2", "train.crop=0", "train.steps=2", "train.eval_every=1",
            "train.threads=1", "train.max_minutes=0", "data.generic_fraction=0.5", "data.n_generic_val=2", *tiny]
    cfg = load_config(FlowTrainConfig, "configs/flow_srflownet_tvr.yaml", base + ["name=g", "train.init_weights=null"])
    train(cfg, progress=False)
    meta = json.loads((tmp_path / "g" / "metrics.json").read_text())
    assert np.isfinite(meta["val_generic_metrics"]["EPE"]) and meta["val_generic_metrics"]["EPE"] > 0
    assert set(meta["val_generic_metrics"]) == set(meta["val_metrics"])
    cfg.data.generic_fraction = -0.1
    with pytest.raises(ValueError, match="generic_fraction"):
        train(cfg, progress=False)


def test_flow_eval_cli_on_generic_scenes(tmp_path):
    """`icegan flow eval --data synthetic-generic`: Farneback's flow on the generic test stream is far better than
    zero flow (so the scenes' frames really move as the ground truth says)."""
    from icegan.cli import main
    out = tmp_path / "g.json"
    main(["flow", "eval", "--model", "farneback", "--data", "synthetic-generic", "--n-pairs", "4", "--size", "96",
          "--json", str(out), "--threads", "1"])
    res = json.loads(out.read_text())
    assert res["n_pairs"] == 4 and res["data"] == "synthetic-generic"
    ds = SyntheticGenericFlow(split="test", size=96, n_pairs=4)
    zero = np.mean([float(ds[i]["flow"].norm(dim=0).mean()) for i in range(4)])
    assert zero > 1.0 and res["mean"]["EPE"] < 0.5 * zero
    # --max-motion draws the same test stream with larger translations; the ground truth it scores against is theirs
    from flownet.evaluate import evaluate, load_pairs
    wide = load_pairs("synthetic-generic", size=96, n_pairs=4, max_motion=24)
    assert [p["name"] for p in wide] == [ds[i]["path"] for i in range(4)]
    zero_wide = np.mean([float(p["flow"].norm(dim=1).mean()) for p in wide])
    assert zero_wide > 1.5 * zero
    out2 = tmp_path / "wide.json"
    assert main(["flow", "eval", "--model", "farneback", "--data", "synthetic-generic", "--n-pairs", "4", "--size", "96",
                 "--max-motion", "24", "--json", str(out2), "--threads", "1"]) == 0
    w = json.loads(out2.read_text())
    direct = evaluate("farneback", data="synthetic-generic", pairs=wide, progress=False)
    assert [p["EPE"] for p in w["per_pair"]] == pytest.approx([p["EPE"] for p in direct["per_pair"]], rel=1e-6)
    assert w["mean"]["EPE"] != pytest.approx(res["mean"]["EPE"], rel=1e-3)
    with pytest.raises(ValueError, match="'synthetic-generic' only"):
        load_pairs("middlebury", max_motion=24)


def test_shipped_generic_checkpoint_beats_the_facial_one_on_generic_scenes():
    """weights="shipped:generic" (trained on the generic scenes) loads with its own test-time update count and
    has a lower EPE than the facial default on held-out generic scenes (test stream), and both beat zero flow
    (measured on 100 test scenes: 0.800 vs 1.786 px, zero flow ~4 px); on scenes with translations up to 24 px
    (the range it was last trained on) it stays below half the facial checkpoint's error."""
    from flownet import get_estimator
    from flownet.metrics import flow_metrics
    from flownet.registry import load_srflownet
    assert load_srflownet("shipped:generic").meta["domain"] == "generic"

    def epe_on(max_motion):
        """EPE of both checkpoints and of zero flow on 4 test scenes drawn with ``max_motion``."""
        ds = SyntheticGenericFlow(split="test", size=128, n_pairs=4, seed=7, max_motion=max_motion)
        items = [ds[i] for i in range(len(ds))]
        img1, img2 = torch.stack([it["img1"] for it in items]), torch.stack([it["img2"] for it in items])
        gt, valid = torch.stack([it["flow"] for it in items]), torch.stack([it["valid"] for it in items])
        out = {w: flow_metrics(get_estimator("srflownet", weights=w).estimate(img1, img2), gt, valid)["EPE"]
               for w in ("shipped:generic", "shipped:facial")}
        return out, flow_metrics(torch.zeros_like(gt), gt, valid)["EPE"]
    epe, zero = epe_on(10.0)
    assert epe["shipped:generic"] < 0.8 * epe["shipped:facial"] < 0.8 * zero, (epe, zero)
    epe, _ = epe_on(24.0)
    assert epe["shipped:generic"] < 0.5 * epe["shipped:facial"], epe


# ------------------------------------------------------------------------- mutation audit: known values

def test_blob_harmonics_start_at_two():
    """Blob radius r0 (1 + sum_k a_k cos(k phi + p_k)), k = 2..5: a_2 = 0.2 makes the disc of radius 10 an oval,
    10 x 1.2 = 12 px along x (phi = 0) and 10 x 0.8 = 8 px along y (phi = pi/2, where cos 2 phi = -1)."""
    ys, xs = _grid(41)
    oval = {"kind": "blob", "cx": 20.0, "cy": 20.0, "r0": 10.0, "amps": [0.2, 0.0, 0.0, 0.0], "phases": [0.0] * 4}
    m = shape_mask(ys, xs, oval)
    assert float(m[20, 32]) == pytest.approx(0.5) and float(m[28, 20]) == pytest.approx(0.5)
    assert float(m[29, 20]) == 0.0 and float(m[20, 31]) == 1.0


def test_scene_layers_own_the_pixels_where_the_mask_is_at_least_half(monkeypatch):
    """With one object, a known disc (radius 8 about (16, 16)): layer 1 owns exactly the pixels within 8 px of the
    centre (mask >= 0.5), and its flow there differs from the background's."""
    disc = {"kind": "blob", "cx": 16.0, "cy": 16.0, "r0": 8.0, "amps": [0.0] * 4, "phases": [0.0] * 4}
    monkeypatch.setattr(sg, "_random_shape", lambda h, w, rng: dict(disc))
    p = make_scene_pair(32, np.random.default_rng(4), n_objects=(1, 1), noise=0.0, blur=0.0)
    ys, xs = _grid(32)
    inside = ((xs - 16) ** 2 + (ys - 16) ** 2) <= 64
    assert torch.equal(p["layers"], inside.long())          # (17, 24) is 8.06 px away: background
    assert torch.equal(p["flow"][:, ~inside], p["flow_head"][:, ~inside])
    assert float((p["flow_expr"][:, inside]).abs().max()) > 0.0


def test_scene_object_count_reaches_both_ends_of_the_inclusive_range():
    counts = {int(make_scene_pair(16, np.random.default_rng(s), n_objects=(0, 1))["layers"].max()) for s in range(12)}
    assert counts == {0, 1}


def test_background_translation_is_small_more_often_and_turns_about_the_image_centre():
    """Background-only scenes (max_motion 10): the flow at the centre of rotation is the translation, of length
    0.5 x 10 x u^2 with u uniform: mean 5/3 px (2.5 px were it linear in u), never above 5 px. The centre of a
    48 x 32 (W x H) image is (x, y) = (24, 16)."""
    lengths = [float(make_scene_pair((32, 48), np.random.default_rng(s), n_objects=(0, 0), noise=0.0, blur=0.0)
                     ["flow"][:, 16, 24].norm()) for s in range(120)]
    assert max(lengths) <= 5.0 + 1e-4 and 1.3 < float(np.mean(lengths)) < 2.05
    still = make_scene_pair((32, 48), np.random.default_rng(0), n_objects=(0, 0), max_motion=0.0)
    assert float(still["flow"][:, 16, 24].abs().max()) < 1e-5 and float(still["flow"].abs().max()) > 0.05


def test_superellipse_angle_turns_the_long_axis_from_x_toward_y():
    """A 10 x 2 box turned by +45 degrees lies along the screen diagonal x = y (y down), not x = -y."""
    ys, xs = _grid(41)
    box = {"kind": "superellipse", "cx": 20.0, "cy": 20.0, "a": 10.0, "b": 2.0, "p": 8.0, "angle": math.pi / 4}
    m = shape_mask(ys, xs, box)
    assert float(m[24, 24]) == 1.0 and float(m[16, 16]) == 1.0
    assert float(m[16, 24]) == 0.0 and float(m[24, 16]) == 0.0


def test_frame2_draws_the_object_where_its_motion_takes_it(monkeypatch):
    """Flat textures (background 0.2, object 0.8) and a known disc of radius 6 about (16, 16): in frame 1 the bright
    disc is centred there; in frame 2 it is centred at (16, 16) + flow(16, 16), the object's motion."""
    disc = {"kind": "blob", "cx": 16.0, "cy": 16.0, "r0": 6.0, "amps": [0.0] * 4, "phases": [0.0] * 4}
    monkeypatch.setattr(sg, "_random_shape", lambda h, w, rng: dict(disc))
    levels = iter([0.2, 0.8])
    monkeypatch.setattr(sg, "noise_texture", lambda h, w, rng: torch.full((h, w), next(levels)))
    for seed in range(40):
        levels = iter([0.2, 0.8])
        p = make_scene_pair(32, np.random.default_rng(seed), n_objects=(1, 1), max_motion=8.0, noise=0.0, blur=0.0)
        if float(p["flow"][:, 16, 16].norm()) > 2.0:
            break
    ys, xs = _grid(32)

    def centre(img):
        w = (img[0] - 0.2) / 0.6
        return float((w * xs).sum() / w.sum()), float((w * ys).sum() / w.sum())
    assert centre(p["img1"]) == pytest.approx((16.0, 16.0), abs=0.05)
    u, v = p["flow"][:, 16, 16].tolist()
    assert centre(p["img2"]) == pytest.approx((16.0 + u, 16.0 + v), abs=0.3)


def test_each_side_and_the_dataset_arguments_are_checked():
    with pytest.raises(ValueError, match="at least 16x16 pixels, got 32x8"):
        make_scene_pair((32, 8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_pairs"):
        SyntheticGenericFlow(n_pairs=-1)
    with pytest.raises(ValueError, match="max_motion"):
        SyntheticGenericFlow(max_motion=-0.5)
    with pytest.raises(ValueError, match="at least 16"):
        SyntheticGenericFlow(size=15)
    assert len(SyntheticGenericFlow(n_pairs=0)) == 0


def test_frames_are_degraded_by_default_and_the_background_turns_both_ways():
    """Same generator state: the default noise / blur changes the frames but not the flow. Background-only still
    scenes turn by +-3 degrees: the rotation (dv/dx - du/dy) / 2 takes both signs over seeds."""
    clean = make_scene_pair(32, np.random.default_rng(2), noise=0.0, blur=0.0)
    noisy = make_scene_pair(32, np.random.default_rng(2))
    assert torch.equal(clean["flow"], noisy["flow"]) and not torch.equal(clean["img1"], noisy["img1"])
    turns = []
    for s in range(16):
        f = make_scene_pair(32, np.random.default_rng(s), n_objects=(0, 0), max_motion=0.0)["flow"]
        turns.append(float((f[1, 16, 17] - f[1, 16, 15] - f[0, 17, 16] + f[0, 15, 16]) / 4))
    assert min(turns) < -0.005 and max(turns) > 0.005 and max(abs(t) for t in turns) < math.radians(3.0) * 1.04
