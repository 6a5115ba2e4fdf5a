"""flownet backbones: LiteFlowNet2 (cost volume, f-warp, f-lcon, multi-scale loss), torchvision RAFT,
the ptlflow adapter (with a stand-in model; ptlflow itself is optional), the general weights format,
the registry and the training loop with another backbone."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _textures import smooth_texture

import flownet
from flownet.data.synthetic_face import warp_forward
from flownet.models.backbones import PtlflowBackbone, PtlflowConfig, RAFTBackbone, RAFTConfig
from flownet.models.liteflownet2 import (LiteFlowNet2, LiteFlowNet2Config, LiteFlowNet2Output, cost_volume,
                                         f_lcon, f_lcon_filters, multiscale_loss, sparse_cost_volume, warp)
from flownet.registry import (BackboneEstimator, build_backbone, canonical_name, get_estimator, load_weights,
                              save_weights)


@pytest.fixture(scope="module")
def lfn2():
    torch.manual_seed(0)
    return LiteFlowNet2()


# ---------------------------------------------------------------------------------------------- LFN2

def test_lfn2_parameter_count_matches_paper(lfn2):
    n = sum(p.numel() for p in lfn2.parameters())
    assert abs(n - 6.42e6) / 6.42e6 < 0.10, n          # Table 5: 6.42 M
    # NetC follows Table 8 exactly: 10 convolutions, 7x7 first, channel widths per level
    convs = [m for m in lfn2.netc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 32, 32, 64, 64, 96, 96, 128, 192]
    assert convs[0].kernel_size == (7, 7) and all(c.kernel_size == (3, 3) for c in convs[1:])
    assert [lvl.level for lvl in lfn2.levels] == [6, 5, 4, 3]
    assert [(lvl.radius, lvl.stride) for lvl in lfn2.levels] == [(3, 1), (3, 1), (3, 1), (6, 2)]


def test_lfn2_shapes_odd_sizes_grey_rgb_and_errors(lfn2):
    for shape in [(2, 1, 37, 53), (1, 3, 20, 9), (1, 1, 1, 1)]:
        x1, x2 = torch.rand(shape), torch.rand(shape)
        with torch.no_grad():
            out = lfn2.forward_train(x1, x2)
        assert out.flow.shape == (shape[0], 2, *shape[2:]) and torch.isfinite(out.flow).all()
        ph, pw = out.padded
        assert ph % 32 == 0 and pw % 32 == 0 and ph >= shape[2] and pw >= shape[3]
        for k, preds in out.levels:
            assert all(p.shape == (shape[0], 2, ph // 2 ** (k - 1), pw // 2 ** (k - 1)) for p in preds)
    with pytest.raises(ValueError, match="shapes differ"):
        lfn2(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 40))
    with pytest.raises(ValueError, match="B, 1 or 3"):
        lfn2(torch.rand(1, 2, 32, 32), torch.rand(1, 2, 32, 32))
    with pytest.raises(ValueError, match="multiple of corr_stride"):
        LiteFlowNet2Config(corr_radius=(3, 3, 3, 5, 6))


def test_cost_volume_matches_naive_computation():
    g = torch.Generator().manual_seed(1)
    f1, f2 = torch.randn(2, 3, 5, 6, generator=g), torch.randn(2, 3, 5, 6, generator=g)
    r = 2
    cv = cost_volume(f1, f2, r)
    assert cv.shape == (2, 25, 5, 6)
    naive = torch.zeros_like(cv)
    for b in range(2):
        for y in range(5):
            for x in range(6):
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < 5 and 0 <= xx < 6:
                            naive[b, (dy + r) * 5 + dx + r, y, x] = (f1[b, :, y, x] * f2[b, :, yy, xx]).sum() / 3
    torch.testing.assert_close(cv, naive)
    # sparse: matching at even positions and even displacements within radius 4
    sp = sparse_cost_volume(f1, f2, 4, 2)
    assert sp.shape == (2, 25, 3, 3)
    for (i, j) in [(0, 0), (1, 2), (2, 1)]:
        for di in range(-2, 3):
            for dj in range(-2, 3):
                y, x, yy, xx = 2 * i, 2 * j, 2 * i + 2 * di, 2 * j + 2 * dj
                want = (f1[0, :, y, x] * f2[0, :, yy, xx]).sum() / 3 if 0 <= yy < 5 and 0 <= xx < 6 else 0.0
                assert float(sp[0, (di + 2) * 5 + dj + 2, i, j]) == pytest.approx(float(want), abs=1e-6)
    with pytest.raises(ValueError):
        cost_volume(f1, f2[..., :5], 1)


def test_warp_integer_shift_and_zero_outside():
    x = torch.arange(20.0).view(1, 1, 4, 5)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 1.0                                   # sample one pixel to the right
    w = warp(x, flow)
    torch.testing.assert_close(w[..., :4], x[..., 1:])
    assert (w[..., 4] == 0).all()
    flow[:, 0], flow[:, 1] = 0.5, 0.0                  # bilinear half-pixel: mean of neighbours
    torch.testing.assert_close(warp(x, flow)[..., :4], (x[..., :4] + x[..., 1:]) / 2)


def test_lfn2_level_units_warp_aligns_with_ground_truth(lfn2):
    # flows inside NetE are full-resolution pixels / flow_scale at every level: the previous level's ground
    # truth, up-sampled by the level's upconv and converted by its px factor, must align I2 with I1 there
    # (and the opposite sign must not)
    g = torch.Generator().manual_seed(6)
    img1 = F.interpolate(torch.rand(2, 1, 8, 8, generator=g), size=(128, 128), mode="bicubic",
                         align_corners=False).clamp(0, 1)           # smooth enough for the 8x8 level-5 grid
    gt = torch.zeros(2, 2, 128, 128)
    gt[0, 0], gt[0, 1], gt[1, 0], gt[1, 1] = 6.0, -4.0, -5.0, 3.0
    img2 = warp_forward(img1, gt)
    s = lfn2.config.flow_scale
    for lvl in lfn2.levels[1:]:                          # levels 5..3 (level 6 has no previous flow)
        k = lvl.level
        assert lvl.px == pytest.approx(s / 2 ** (k - 1))
        i1, i2 = (F.avg_pool2d(lfn2.prepare(x), 2 ** (k - 1)) for x in (img1, img2))
        with torch.no_grad():
            up = lvl.upconv(F.avg_pool2d(gt / s, 2 ** k))
        c = slice(2, -2)                                 # away from the zero-padded border
        err = lambda f: float((i1 - warp(i2, f * lvl.px))[..., c, c].abs().mean())
        e0 = err(torch.zeros_like(up))
        assert err(up) < (0.5 if k < 5 else 0.9) * e0, (k, err(up), e0)
        assert err(-up) > e0, k


def test_f_lcon_known_values_and_invariants():
    g = torch.Generator().manual_seed(2)
    flow = torch.randn(2, 2, 6, 7, generator=g)
    dist = torch.randn(2, 9, 6, 7, generator=g) * 3
    filt = f_lcon_filters(dist)
    assert (filt >= 0).all()
    torch.testing.assert_close(filt.sum(1), torch.ones(2, 6, 7))
    # Eq. 8 by hand at one position
    d = dist[0, :, 2, 3]
    torch.testing.assert_close(filt[0, :, 2, 3], torch.exp(-d ** 2) / torch.exp(-d ** 2).sum())
    # a constant field is unchanged whatever the filters (replicate padding, filters sum to 1)
    const = torch.full((2, 2, 6, 7), 1.7)
    torch.testing.assert_close(f_lcon(const, filt), const)
    # D = 0 everywhere: a 3x3 box filter
    box = F.avg_pool2d(F.pad(flow, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    torch.testing.assert_close(f_lcon(flow, f_lcon_filters(torch.zeros(2, 9, 6, 7))), box)
    # D = 0 at the centre and large elsewhere: identity
    big = torch.full((2, 9, 6, 7), 30.0)
    big[:, 4] = 0.0
    torch.testing.assert_close(f_lcon(flow, f_lcon_filters(big)), flow)
    # Eq. 9 by hand at one position with a 5x5 window
    dist5 = torch.randn(1, 25, 6, 7, generator=g)
    out5 = f_lcon(flow[:1], f_lcon_filters(dist5))
    patch = flow[0, :, 0:5, 1:6].reshape(2, 25)             # 5x5 window centred at (2, 3)
    torch.testing.assert_close(out5[0, :, 2, 3], (patch * f_lcon_filters(dist5)[0, :, 2, 3]).sum(1))
    with pytest.raises(ValueError, match="odd"):
        f_lcon(flow, torch.rand(2, 4, 6, 7))


def test_multiscale_loss_known_value():
    b, h, w = 2, 64, 64
    gt = torch.zeros(b, 2, h, w)
    gt[:, 0] = 1.0                                     # 1 px everywhere
    levels = [(k, tuple(torch.zeros(b, 2, h // 2 ** (k - 1), w // 2 ** (k - 1)) for _ in range(3))) for k in (6, 5, 4, 3)]
    out = LiteFlowNet2Output(flow=torch.zeros(b, 2, h, w), levels=levels, padded=(h, w), flow_scale=20.0)
    weights = {6: 0.32, 5: 0.08, 4: 0.02, 3: 0.01}
    # per level: 3 predictions x pixels x |0 - 1/20|; full resolution: 6.25e-4 x pixels x 1 / 20
    want = sum(wk * 3 * (h // 2 ** (k - 1)) * (w // 2 ** (k - 1)) * 0.05 for k, wk in weights.items())
    want += 6.25e-4 * h * w / 20
    assert multiscale_loss(out, gt).item() == pytest.approx(want, rel=1e-5)
    # invalid pixels do not count; a perfect prediction has (almost) zero loss
    assert multiscale_loss(out, gt, torch.zeros(b, h, w)).item() == pytest.approx(0.0, abs=1e-6)
    levels_ok = [(k, tuple(p + torch.tensor([0.05, 0.0])[None, :, None, None] for p in ps)) for k, ps in levels]
    ok = LiteFlowNet2Output(flow=gt.clone(), levels=levels_ok, padded=(h, w), flow_scale=20.0)
    assert multiscale_loss(ok, gt).item() < 1e-3
    # the flow stored at invalid pixels does not reach the loss, also not through the coarse targets: a prediction
    # equal to the valid pixels' flow scores the same whatever the invalid pixels hold
    valid = torch.ones(b, h, w)
    valid[:, :, : w // 2 + 3] = 0                        # level pixels straddling the edge of the invalid part
    garbage = gt.clone()
    garbage[:, :, :, : w // 2 + 3] = 37.0
    assert multiscale_loss(ok, garbage, valid).item() == pytest.approx(multiscale_loss(ok, gt, valid).item(), rel=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        multiscale_loss(out, gt[..., :32])


def test_lfn2_gradients_reach_every_parameter(lfn2):
    lfn2.zero_grad()
    x1 = smooth_texture(2, 64, 64, seed=4)
    gt = torch.zeros(2, 2, 64, 64)
    gt[:, 0] = 0.7
    out = lfn2.forward_train(x1, warp_forward(x1, gt))
    multiscale_loss(out, gt).backward()
    dead = [n for n, p in lfn2.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
            or p.grad.abs().sum() == 0]
    assert not dead, dead[:5]
    lfn2.zero_grad()


def test_lfn2_loss_decreases_on_fixed_batch():
    torch.manual_seed(0)
    m = LiteFlowNet2()
    img1 = smooth_texture(2, 32, 32, seed=5)
    gt = torch.zeros(2, 2, 32, 32)
    gt[0, 0], gt[0, 1], gt[1, 0], gt[1, 1] = 1.5, -1.0, -0.8, 2.0   # opposite motions: needs matching
    img2 = warp_forward(img1, gt)
    opt = torch.optim.Adam(m.parameters(), lr=5e-4)
    losses = []
    for _ in range(10):
        loss = multiscale_loss(m.forward_train(img1, img2), gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.6 * losses[0], losses


def test_lfn2_init_keeps_feature_and_cost_volume_signal(lfn2):
    # regression 1: PyTorch's default conv init shrank level-6 features to std ~0.01 and the cost volume
    # to ~1e-4, so a trained model predicted the same flow for every pair.
    # regression 2 (netc_init_gain): plain MSRA kept the small scale of the [-0.5, 0.5] images: features at
    # std ~0.1 (~0.07 on grey faces), cost volume ~5e-3 with flow-induced changes ~1e-4; trained 667 steps on
    # synthetic facial flow the model stayed at zero flow (test EPE 1.155 = zero-flow EPE). Features must
    # start at order 1 and the cost volume at order 0.1-1.
    x = torch.cat([smooth_texture(1, 128, 128, seed=3), smooth_texture(1, 128, 128, seed=4)])
    with torch.no_grad():
        feats = lfn2.netc(lfn2.prepare(x))
        assert all(float(f.std()) > 0.5 for f in feats), [float(f.std()) for f in feats]
        for k in (3, 6):
            cv = cost_volume(feats[k - 1][:1], feats[k - 1][1:], 3)
            assert float(cv.std()) > 0.1 and float(cv.abs().mean()) > 0.1, (k, float(cv.std()))
    # the gain is initialisation only: 1 gives plain MSRA (features 10x smaller), and it is validated
    torch.manual_seed(0)
    plain = LiteFlowNet2(LiteFlowNet2Config(netc_init_gain=1.0))
    with torch.no_grad():
        assert float(plain.netc(plain.prepare(x))[5].std()) < 0.3
    with pytest.raises(ValueError, match="netc_init_gain"):
        LiteFlowNet2Config(netc_init_gain=0.0)


# ---------------------------------------------------------------------------------------------- RAFT

def test_raft_small_shapes_and_gradients():
    torch.manual_seed(0)
    m = RAFTBackbone(RAFTConfig("raft_small", iters=2))
    x1 = torch.rand(1, 1, 37, 45, requires_grad=True)
    flows = m(x1, torch.rand(1, 1, 37, 45))
    assert len(flows) == 2 and flows[-1].shape == (1, 2, 37, 45)
    loss = flows[-1].abs().mean() + flows[0].abs().mean()
    loss.backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, dead[:5]
    assert x1.grad is not None and x1.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="raft_small"):
        RAFTConfig("raft_medium")
    with pytest.raises(ValueError, match="iters must be >= 1, got -1"):     # was an empty list of flows
        m(x1, x1, iters=-1)


# ---------------------------------------------------------------------------------------------- ptlflow

class StandIn(nn.Module):
    """A ptlflow-like model: {"images": (B, 2, 3, H, W)} → {"flows": (B, 1, 2, H, W), "flow_preds": [...]}."""
    output_stride = 16

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 2, 3, padding=1)
        self.seen = None

    def forward(self, inputs):
        x = inputs["images"]
        self.seen = x.detach().clone()
        f = self.conv(torch.cat([x[:, 0], x[:, 1]], 1))
        return {"flows": f[:, None], "flow_preds": [0.5 * f, f]}


def test_ptlflow_adapter_with_stand_in():
    torch.manual_seed(0)
    inner = StandIn()
    ad = PtlflowBackbone(inner, PtlflowConfig(name="standin"))
    img1 = torch.rand(2, 1, 20, 30)
    img2 = torch.rand(2, 1, 20, 30)
    preds = ad(img1, img2)                             # training mode: both predictions
    assert len(preds) == 2 and all(p.shape == (2, 2, 20, 30) for p in preds)
    assert inner.seen.shape == (2, 2, 3, 32, 32)       # padded to output_stride 16, grey → 3 channels
    torch.testing.assert_close(inner.seen[:, 0, :, :20, :30], img1.expand(-1, 3, -1, -1))
    torch.testing.assert_close(inner.seen[:, 1, :, 20:, :30], img2[:, :, 19:20].expand(-1, 3, 12, -1))  # replicate
    ad.eval()
    (final,) = ad(img1, img2)                          # eval: flows[:, 0] only
    with torch.no_grad():
        torch.testing.assert_close(final, preds[-1])
    rgb = torch.rand(1, 3, 16, 16)                     # RGB is flipped to BGR as ptlflow's IOAdapter feeds it
    ad(rgb, rgb)
    torch.testing.assert_close(inner.seen[0, 0], rgb[0].flip(0))
    # gradients flow through the adapter into the wrapped model
    ad.train()
    ad(img1, img2)[-1].sum().backward()
    assert inner.conv.weight.grad is not None and inner.conv.weight.grad.abs().sum() > 0

    class Broken(nn.Module):
        def forward(self, inputs):
            return {"flow": inputs["images"][:, 0, :2]}
    with pytest.raises(ValueError, match="no 'flows'"):
        PtlflowBackbone(Broken(), PtlflowConfig(name="broken"))(img1, img2)


def test_ptlflow_missing_and_fake_module(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ptlflow", None)  # import ptlflow → ImportError
    with pytest.raises(ImportError, match=r"icegan\[ptlflow\]"):
        build_backbone("ptlflow:skflow")
    with pytest.raises(ImportError, match=r"icegan\[ptlflow\]"):
        get_estimator("ptlflow:skflow", random_init=True)
    fake = types.ModuleType("ptlflow")
    fake.get_model_names = lambda: ["standin"]
    fake.get_model = lambda name, **kw: StandIn()
    monkeypatch.setitem(sys.modules, "ptlflow", fake)
    with pytest.raises(ValueError, match="unknown ptlflow model"):
        build_backbone("ptlflow:skflow")
    m = build_backbone("ptlflow:standin")
    p = save_weights(m, tmp_path / "pt.pt", meta={"n": 1})
    m2 = load_weights(p, expected="ptlflow:standin")
    torch.testing.assert_close(m2.model.conv.weight, m.model.conv.weight)
    torch.save({"state_dict": m.model.state_dict(), "hyper_parameters": {"lr": 1.0}}, tmp_path / "lightning.ckpt")
    est = get_estimator("ptlflow:standin", weights=tmp_path / "lightning.ckpt")
    assert est.estimate(torch.rand(1, 1, 24, 24), torch.rand(1, 1, 24, 24)).shape == (1, 2, 24, 24)


# ---------------------------------------------------------------------------------------------- registry

def test_registry_names_and_random_init():
    assert canonical_name("LiteFlowNet2") == "liteflownet2"
    assert canonical_name("raft-small") == "raft_small" and canonical_name("RAFT_large") == "raft_large"
    assert canonical_name("ptlflow:dpflow") == "ptlflow:dpflow" and canonical_name("TV-L1") == "tvl1"
    with pytest.raises(ValueError, match="unknown flow estimator"):
        canonical_name("pwcnet")
    with pytest.raises(ValueError, match="after the colon"):
        canonical_name("ptlflow:")
    with pytest.raises(ValueError, match="no shipped weights") as exc:
        get_estimator("raft_small")
    named = re.findall(r"configs/(\S+?\.yaml)", str(exc.value))
    assert named == ["flow_raft_small.yaml"] and (Path(__file__).parents[1] / "configs" / named[0]).is_file()
    with pytest.raises(ValueError, match="no shipped weights") as exc:     # no config of ours trains a ptlflow model
        get_estimator("ptlflow:dpflow")
    assert "configs/" not in str(exc.value) and "ptlflow checkpoint" in str(exc.value)
    est = get_estimator("liteflownet2", random_init=True)
    assert isinstance(est, BackboneEstimator) and isinstance(est.model, LiteFlowNet2)
    f = est.estimate(torch.rand(1, 1, 40, 44), torch.rand(1, 1, 40, 44))
    assert f.shape == (1, 2, 40, 44) and not f.requires_grad
    x1 = torch.rand(1, 1, 32, 32, requires_grad=True)
    est.forward(x1, torch.rand(1, 1, 32, 32)).sum().backward()   # differentiable path for joint training
    assert x1.grad is not None and x1.grad.abs().sum() > 0
    assert isinstance(flownet.get_estimator("srflownet"), flownet.SRFlowNetEstimator)   # shipped default unchanged


@pytest.mark.parametrize("name", ["liteflownet2", "raft_small", "raft_large"])
def test_weights_round_trip(name, tmp_path):
    torch.manual_seed(0)
    m = build_backbone(name).eval()
    p = save_weights(m, tmp_path / f"{name}.pt", meta={"note": name})
    m2 = load_weights(p)
    assert type(m2) is type(m) and m2.meta == {"note": name} and not m2.training
    x1, x2 = torch.rand(1, 1, 32, 48), torch.rand(1, 1, 32, 48)
    e1 = BackboneEstimator(m, iters=2) if name != "liteflownet2" else BackboneEstimator(m)
    e2 = get_estimator(name, weights=p, iters=2) if name != "liteflownet2" else get_estimator(name, weights=p)
    torch.testing.assert_close(e1.estimate(x1, x2), e2.estimate(x1, x2))


def test_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        get_estimator("raft_small", weights=tmp_path / "missing.pt")
    m = build_backbone("raft_small")
    # a plain torchvision state dict (the format torchvision's release files use) loads for raft_small
    torch.save(m.raft.state_dict(), tmp_path / "tv.pth")
    m2 = load_weights(tmp_path / "tv.pth", expected="raft_small")
    for k, v in m.raft.state_dict().items():
        torch.testing.assert_close(m2.raft.state_dict()[k], v)
    with pytest.raises(ValueError, match="tv.pth.*do not match"):
        load_weights(tmp_path / "tv.pth", expected="raft_large")      # small weights into the large model
    with pytest.raises(ValueError, match="no 'format' key"):
        load_weights(tmp_path / "tv.pth")
    p = save_weights(m, tmp_path / "rs.pt")
    with pytest.raises(ValueError, match="not 'liteflownet2'"):
        get_estimator("liteflownet2", weights=p)
    ck = torch.load(p, weights_only=True)
    ck["state_dict"].pop(next(iter(ck["state_dict"])))
    torch.save(ck, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt.*missing"):
        load_weights(tmp_path / "bad.pt")
    ck["format"] = "something-v9"
    torch.save(ck, tmp_path / "fmt.pt")
    with pytest.raises(ValueError, match="unknown weights format"):
        load_weights(tmp_path / "fmt.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read"):
        load_weights(tmp_path / "junk.pt", expected="raft_small")


# ---------------------------------------------------------------------------------------------- training

def test_train_loop_with_liteflownet2_and_cli_eval(tmp_path, shared_data, capsys):
    from flownet.train import FlowTrainConfig, train
    from icegan.cli import main
    from icegan.config import load_config
    cfg = load_config(FlowTrainConfig, "configs/flow_liteflownet2.yaml",
                      [f"out_dir={tmp_path}", "name=t", "data.n_train=4", "data.n_test=2", "data.size=64",
                       "train.batch_size=2", "train.crop=32", "train.steps=2", "train.eval_every=0", "train.threads=1"])
    assert cfg.train.backbone == "liteflownet2" and cfg.liteflownet2.corr_stride[3] == 2
    metrics = train(cfg, progress=False)
    assert np.isfinite(metrics["EPE"])
    w = tmp_path / "t" / "weights.pt"
    m = load_weights(w, expected="liteflownet2")
    assert m.meta["backbone"] == "liteflownet2" and m.meta["steps"] == 2
    rc = main(["flow", "eval", "--model", "liteflownet2", "--weights", str(w), "--n-pairs", "1", "--size", "64",
               "--json", str(tmp_path / "e.json")])
    assert rc == 0 and "liteflownet2 on synthetic-face" in capsys.readouterr().out
    rc = main(["flow", "eval", "--model", "raft_small", "--n-pairs", "1"])
    assert rc == 2 and "no shipped weights" in capsys.readouterr().err


def test_multiscale_loss_counts_only_the_input_grid_not_the_network_padding():
    """A 60x60 pair is padded to 64x64 inside the network; the padding is invalid, so each level sums its error
    over the 60*60/4^(k-1) level pixels' worth of valid area (not 64*64/4^(k-1)): the known value of
    test_multiscale_loss_known_value with h*w = 3600 (Sec. 6.1 of ../shared/papers/liteflownet2.txt; loss as in
    multiscale_loss's docstring)."""
    b, h, w, p = 2, 60, 60, 64
    gt = torch.zeros(b, 2, h, w)
    gt[:, 0] = 1.0
    levels = [(k, tuple(torch.zeros(b, 2, p // 2 ** (k - 1), p // 2 ** (k - 1)) for _ in range(3))) for k in (6, 5, 4, 3)]
    out = LiteFlowNet2Output(flow=torch.zeros(b, 2, h, w), levels=levels, padded=(p, p), flow_scale=20.0)
    weights = {6: 0.32, 5: 0.08, 4: 0.02, 3: 0.01}
    want = sum(wk * 3 * h * w / 4 ** (k - 1) * 0.05 for k, wk in weights.items()) + 6.25e-4 * h * w / 20
    assert multiscale_loss(out, gt).item() == pytest.approx(want, rel=1e-5)


def test_pyramid_level_refines_matching_and_feeds_r_the_mean_free_flow_and_brightness_error():
    """One NetE level (../shared/papers/liteflownet2.txt): x_s = S(F1, F2~, x_m) + x_m with F2~ = F2 warped by x_m
    (Eq. 4; S's output is the constant (0.1, -0.05) here); R's distance network reads concat(F1, x_s - mean(x_s), ||I1 - I2 warped by x_s||)
    (Eq. 7 and Table 11: m-flow5_R, warp5_R, norm5_R) and x_r is f-lcon of x_s with softmax(-D^2) filters
    (Eq. 8-9)."""
    from flownet.models.liteflownet2 import PyramidLevel
    torch.manual_seed(0)
    lvl = PyramidLevel(5, 8, 3, 1).eval()
    with torch.no_grad():
        lvl.subpixel[-1].weight.zero_()
        lvl.subpixel[-1].bias.copy_(torch.tensor([0.1, -0.05]))
    g = torch.Generator().manual_seed(3)
    f1, f2 = torch.randn(1, 8, 8, 8, generator=g), torch.randn(1, 8, 8, 8, generator=g)
    im1, im2 = torch.rand(1, 3, 8, 8, generator=g) - 0.5, torch.rand(1, 3, 8, 8, generator=g) - 0.5
    prev = 0.05 * torch.randn(1, 2, 4, 4, generator=g)
    seen = {}
    hooks = [lvl.dist.register_forward_hook(lambda mod, inp, out: seen.update(inp=inp[0], d=out)),
             lvl.subpixel.register_forward_hook(lambda mod, inp, out: seen.update(s_inp=inp[0]))]
    with torch.no_grad():
        x_m, x_s, x_r = lvl(f1, f2, im1, im2, prev)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(x_s - x_m, torch.tensor([0.1, -0.05]).view(1, 2, 1, 1).expand_as(x_s))
    # S reads [F1, F2 warped by x_m, x_m] (Eq. 4, Table 10)
    torch.testing.assert_close(seen["s_inp"], torch.cat([f1, warp(f2, x_m * lvl.px), x_m], 1))
    inp = seen["inp"]
    torch.testing.assert_close(inp[:, :8], f1)
    torch.testing.assert_close(inp[:, 8:10], x_s - x_s.mean(dim=(2, 3), keepdim=True))
    assert float(x_s.mean(dim=(2, 3)).abs().min()) > 0.01                 # the mean really was removed
    occ = ((im1 - warp(im2, x_s * lvl.px)) ** 2).sum(1, keepdim=True).sqrt()
    assert not torch.allclose(occ, ((im1 - warp(im2, x_m * lvl.px)) ** 2).sum(1, keepdim=True).sqrt(), atol=1e-3)
    torch.testing.assert_close(inp[:, 10:11], occ, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x_r, f_lcon(x_s, f_lcon_filters(seen["d"])))
    assert not torch.allclose(x_r, x_s, atol=1e-4)


def test_lfn2_output_is_the_last_level_flow_upsampled_and_times_flow_scale():
    """The full-resolution flow is the last level's x_r bilinearly up-sampled by 2^(k-1) and multiplied by
    flow_scale (NetE flows are pixels / 20, module docstring), cropped to the input."""
    torch.manual_seed(0)
    m = LiteFlowNet2(LiteFlowNet2Config(netc_channels=(8, 8, 8, 8, 8, 8), last_level=5)).eval()
    x1, x2 = torch.rand(1, 1, 40, 36), torch.rand(1, 1, 40, 36)
    with torch.no_grad():
        out = m.forward_train(x1, x2)
    k, (_, _, x_r) = out.levels[-1]
    assert k == 5 and out.padded == (64, 64) and float(x_r.abs().max()) > 0
    up = F.interpolate(x_r, scale_factor=16, mode="bilinear", align_corners=False) * 20.0
    torch.testing.assert_close(out.flow, up[..., :40, :36])


# ---------------------------------------------------------------------------------------------- mutation audit

def _coded(b, h, w):
    """A flow whose u is the column and v the row of the grid it was made on (shows where a crop was taken)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys])[None].expand(b, -1, -1, -1).clone()


class FakeRaft(nn.Module):
    """Stands in for torchvision's RAFT inside RAFTBackbone: records its inputs, returns position-coded flows."""

    def forward(self, x1, x2, num_flow_updates=12):
        self.x1, self.x2, self.n = x1, x2, num_flow_updates
        return [_coded(x1.shape[0], *x1.shape[-2:]) * (k + 1) for k in range(num_flow_updates)]


def test_raft_feeds_minus_one_to_one_rgb_padded_to_128_and_crops_the_top_left():
    m = RAFTBackbone(RAFTConfig("raft_small", iters=3))
    m.raft = FakeRaft()
    img1 = torch.zeros(1, 1, 37, 45)
    img2 = torch.ones(1, 1, 37, 45)
    img1[..., 0, 0] = 1.0
    flows = m(img1, img2)
    assert m.raft.n == 3 and len(flows) == 3 and m.raft.x1.shape == (1, 3, 128, 128)
    assert float(m.raft.x1[0, 0, 1, 1]) == -1.0 and float(m.raft.x1[0, 1, 0, 0]) == 1.0     # 0 -> -1, 1 -> 1
    assert float(m.raft.x2.min()) == 1.0
    torch.testing.assert_close(flows[-1], _coded(1, 37, 45) * 3)         # u = column, v = row of the input grid
    assert len(m(img1, img2, iters=2)) == 2 and m.raft.n == 2
    m(torch.rand(1, 1, 130, 140), torch.rand(1, 1, 130, 140))
    assert m.raft.x1.shape[-2:] == (136, 144)                          # above 128: the next multiple of 8


def test_raft_random_init_predicts_almost_no_motion_and_variants_have_their_sizes():
    """The flow head's last convolution starts at std 1e-3 with zero bias; raft_small has about 0.99 M parameters
    and raft_large 5.26 M (torchvision); the default config is raft_small with torchvision's 12 updates."""
    assert (RAFTConfig().variant, RAFTConfig().iters) == ("raft_small", 12)
    torch.manual_seed(0)
    small = RAFTBackbone(RAFTConfig("raft_small"))
    head = small.raft.update_block.flow_head.conv2
    assert float(head.weight.detach().std()) < 2e-3 and not head.bias.detach().any()
    count = {v: sum(p.numel() for p in (small if v == "raft_small" else RAFTBackbone(RAFTConfig(v))).parameters())
             for v in ("raft_small", "raft_large")}
    assert abs(count["raft_small"] - 0.99e6) < 0.02e6 and abs(count["raft_large"] - 5.26e6) < 0.05e6, count


class CodedModel(nn.Module):
    """A ptlflow-like model whose flows are position-coded: {"flows": (B, N, 2, H, W), "flow_preds": [...]}."""

    def __init__(self, n=1, preds=True, shrink=0, flows_shape=None):
        super().__init__()
        self.n, self.preds, self.shrink, self.flows_shape = n, preds, shrink, flows_shape
        self.seen = None

    def forward(self, inputs):
        x = inputs["images"]
        self.seen = x
        b, h, w = x.shape[0], x.shape[-2] - self.shrink, x.shape[-1]
        flows = torch.stack([_coded(b, h, w) * (k + 1) for k in range(self.n)], 1)
        if self.flows_shape is not None:
            flows = torch.zeros(self.flows_shape)
        out = {"flows": flows}
        if self.preds:
            out["flow_preds"] = [flows[:, 0] * 0.5, flows[:, 0]]
        return out


def test_ptlflow_pads_to_the_multiple_on_one_axis_too_and_crops_the_top_left():
    """A 32x20 pair at multiple 8 (no output_stride) is padded in width only; config.multiple overrides the
    model's output_stride; eval returns the first of N flows, cropped from the top-left."""
    inner = CodedModel(n=2, preds=False)
    ad = PtlflowBackbone(inner, PtlflowConfig(name="coded")).eval()
    assert ad.multiple == 8
    (f,) = ad(torch.rand(1, 1, 32, 20), torch.rand(1, 1, 32, 20))
    assert inner.seen.shape == (1, 2, 3, 32, 24)
    torch.testing.assert_close(f, _coded(1, 32, 20))                  # flows[:, 0], not the last
    inner.output_stride = 16
    four = PtlflowBackbone(inner, PtlflowConfig(name="coded", multiple=4)).eval()
    assert four.multiple == 4
    four(torch.rand(1, 1, 30, 30), torch.rand(1, 1, 30, 30))
    assert inner.seen.shape[-2:] == (32, 32)
    train = PtlflowBackbone(CodedModel(), PtlflowConfig(name="coded"))
    preds = train(torch.rand(1, 1, 13, 10), torch.rand(1, 1, 13, 10))
    torch.testing.assert_close(preds[-1], _coded(1, 13, 10))


def test_ptlflow_flips_both_images_to_bgr_by_default():
    assert PtlflowConfig().bgr is True and PtlflowConfig().multiple == 0
    inner = CodedModel()
    img1, img2 = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    PtlflowBackbone(inner, PtlflowConfig(name="coded"))(img1, img2)
    torch.testing.assert_close(inner.seen[0, 0], img1[0].flip(0))
    torch.testing.assert_close(inner.seen[0, 1], img2[0].flip(0))


@pytest.mark.parametrize("model,msg", [
    (CodedModel(flows_shape=(1, 2, 16, 16)), r"'flows' must be \(B, N, 2, H, W\), got \(1, 2, 16, 16\)"),
    (CodedModel(flows_shape=(1, 1, 3, 16, 16)), r"'flows' must be \(B, N, 2, H, W\), got \(1, 1, 3, 16, 16\)"),
    (CodedModel(shrink=8), r"returned flow of size \(8, 16\) for input \(16, 16\)"),
])
def test_ptlflow_refuses_outputs_of_the_wrong_layout(model, msg):
    with pytest.raises(ValueError, match=r"ptlflow model 'coded'.*" + msg):
        PtlflowBackbone(model, PtlflowConfig(name="coded")).eval()(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))


def test_ptlflow_model_passes_settings_and_takes_a_ptlflow_without_a_name_list(monkeypatch):
    fake = types.ModuleType("ptlflow")
    fake.get_model = lambda name, **kw: CodedModel()
    monkeypatch.setitem(sys.modules, "ptlflow", fake)
    from flownet.models.backbones import ptlflow_model
    m = ptlflow_model("anything", multiple=4, bgr=False)
    assert isinstance(m.model, CodedModel)
    assert m.config_dict() == {"name": "anything", "multiple": 4, "bgr": False}


def test_torchvision_weights_that_do_not_fit_name_the_file_and_variant():
    m = RAFTBackbone(RAFTConfig("raft_small"))
    sd = m.raft.state_dict()
    sd.pop(next(iter(sd)))                                             # one tensor missing
    with pytest.raises(ValueError, match=r"^rs\.pth \(torchvision raft_small\): weights do not match"):
        m.load_torchvision_state_dict(sd, "rs.pth")
