"""flownet: SRFlowNet model, estimator registry, weights loading, training, real-data loaders, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import flownet
from flownet.data.synthetic_face import SyntheticFaceFlow, warp_forward
from flownet.losses import sequence_loss, srflownet_loss
from flownet.metrics import flow_metrics
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import default_weights_path, load_srflownet, save_srflownet

TINY = SRFlowNetConfig(feature_layers=(16, 16, 16, 24, 32), context_layers=(16, 16, 16, 24, 48), hidden=24,
                       corr_levels=2, corr_radius=2, motion_channels=34, super_kernel=7, flow_head_hidden=32,
                       mask_hidden=32, iters=3)


def _smooth_texture(b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def test_srflownet_shapes_padding_grey_rgb_and_gradients():
    torch.manual_seed(0)
    m = SRFlowNet(TINY)
    img1 = torch.rand(2, 1, 37, 50, requires_grad=True)  # not divisible by 8, below the pyramid minimum
    img2 = torch.rand(2, 1, 37, 50)
    flows = m(img1, img2, iters=2)
    assert len(flows) == 2 and flows[-1].shape == (2, 2, 37, 50)
    flows[-1].abs().mean().backward()  # differentiable back to the input image
    assert img1.grad is not None and torch.isfinite(img1.grad).all() and img1.grad.abs().sum() > 0
    rgb = m(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    assert len(rgb) == TINY.iters and rgb[-1].shape == (1, 2, 64, 64)
    with pytest.raises(ValueError):
        m(torch.rand(1, 2, 64, 64), torch.rand(1, 2, 64, 64))
    with pytest.raises(ValueError):
        m(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 48))


def test_short_training_lowers_loss_on_fixed_batch():
    torch.manual_seed(0)
    m = SRFlowNet(TINY)
    img1 = _smooth_texture(2, 64, 64)
    gt = torch.zeros(2, 2, 64, 64)
    gt[0, 0], gt[0, 1], gt[1, 0], gt[1, 1] = 1.5, -1.0, -0.8, 2.0
    img2 = warp_forward(img1, gt)
    mask = torch.ones(2, 1, 64, 64)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        loss, _ = srflownet_loss(m(img1, img2), gt, img1=img1, mask=mask, regularizer="fdr")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])


def test_sequence_loss_values():
    gt = torch.zeros(1, 2, 2, 2)
    p1, p2 = gt + 1.0, gt + 0.5  # L1 per pixel: 2.0 and 1.0
    assert sequence_loss([p1, p2], gt, gamma=0.5).item() == pytest.approx(0.5 * 2.0 + 1.0)
    valid = torch.tensor([[[True, False], [False, False]]])
    p = gt.clone()
    p[0, 0, 0, 1] = 10.0  # error on an invalid pixel is ignored
    assert sequence_loss([p], gt, valid).item() == 0.0


def test_weights_round_trip_and_clear_errors(tmp_path):
    m = SRFlowNet(TINY)
    p = save_srflownet(m, tmp_path / "w.pt", meta={"note": "test"})
    m2 = load_srflownet(p)
    x1, x2 = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m.eval()(x1, x2)[-1], m2(x1, x2)[-1])
    with pytest.raises(FileNotFoundError, match="not found"):
        load_srflownet(tmp_path / "missing.pt")
    torch.save({"hello": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an SRFlowNet weights file"):
        load_srflownet(tmp_path / "other.pt")
    ck = torch.load(p, weights_only=True)
    ck["state_dict"]["raft.update_block.flow_head.conv2.weight"] = torch.zeros(3, 3)
    torch.save(ck, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="do not match"):
        load_srflownet(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read"):
        load_srflownet(tmp_path / "junk.pt")


def test_registry_classical_and_errors():
    img1 = _smooth_texture(1, 64, 64, seed=3)
    gt = torch.zeros(1, 2, 64, 64)
    gt[:, 0] = 1.0
    img2 = warp_forward(img1, gt)
    for name in ("tvl1", "farneback"):
        est = flownet.get_estimator(name)
        f = est.estimate(img1, img2)
        assert f.shape == (1, 2, 64, 64)
        # a 1-px shift of a smooth texture is recovered within half a pixel in the interior
        assert (f - gt)[..., 8:-8, 8:-8].norm(dim=1).mean() < 0.5, name
    with pytest.raises(ValueError, match="unknown flow estimator"):
        flownet.get_estimator("pwcnet")
    with pytest.raises(ValueError, match="takes no weights"):
        flownet.get_estimator("tvl1", weights="x.pt")


def test_shipped_weights_beat_zero_flow_on_synthetic_faces(shared_data):
    assert default_weights_path().is_file(), "shipped SRFlowNet weights missing"
    est = flownet.get_estimator("srflownet")
    assert isinstance(est.model, torch.nn.Module)
    ds = SyntheticFaceFlow(root=shared_data, split="test", size=128, n_pairs=4, seed=123)
    items = [ds[i] for i in range(4)]
    img1 = torch.stack([it["img1"] for it in items])
    img2 = torch.stack([it["img2"] for it in items])
    gt = torch.stack([it["flow"] for it in items])
    valid = torch.stack([it["valid"] for it in items])
    pred = est.estimate(img1, img2)
    ours = flow_metrics(pred, gt, valid)["EPE"]
    zero = flow_metrics(torch.zeros_like(gt), gt, valid)["EPE"]
    assert ours < 0.7 * zero, (ours, zero)
    # the differentiable path gives gradients w.r.t. the second image
    x2 = img2[:1].clone().requires_grad_(True)
    est.forward(img1[:1], x2).pow(2).mean().backward()
    assert torch.isfinite(x2.grad).all() and x2.grad.abs().sum() > 0


def test_synthetic_face_dataset_items_and_split(shared_data):
    tr = SyntheticFaceFlow(root=shared_data, split="train", size=128, n_pairs=3)
    te = SyntheticFaceFlow(root=shared_data, split="test", size=128, n_pairs=3)
    assert not set(tr.subjects) & set(te.subjects) and len(te.subjects) == 4
    a, b = te[1], te[1]
    torch.testing.assert_close(a["img2"], b["img2"])  # deterministic
    torch.testing.assert_close(a["flow"], a["flow_head"] + a["flow_expr"])
    assert a["img1"].shape == (1, 128, 128) and a["flow"].shape == (2, 128, 128)
    assert 0.2 < a["mask"].mean() < 1.0 and a["valid"].float().mean() > 0.8
    assert a["flow"].norm(dim=0).max() <= 2.0 + 3.0 * 3 + 1e-4
    # frame 2 really is frame 1 moved by the flow: warping it back with the GT beats warping with zero
    from flownet.data.synthetic_face import backward_warp
    back = backward_warp(a["img2"][None], a["flow"][None])[0]
    inner = (slice(None), slice(8, -8), slice(8, -8))
    assert (back - a["img1"])[inner].abs().mean() < 0.6 * (a["img2"] - a["img1"])[inner].abs().mean()


def test_middlebury_loader_and_flo(shared_data):
    from flownet.data.middlebury import MiddleburyFlow
    ds = MiddleburyFlow(shared_data / "middlebury")
    assert set(ds.sequences) >= {"Grove2", "Hydrangea", "RubberWhale", "Urban2"}
    it = ds[ds.sequences.index("RubberWhale")]
    assert it["img1"].shape[0] == 1 and it["flow"].shape[1:] == it["img1"].shape[1:]
    assert 0.5 < it["valid"].float().mean() < 1.0  # RubberWhale has unknown (occluded) pixels
    assert 0 < it["flow"][:, it["valid"]].norm(dim=0).max() < 10


def test_cli_run_and_eval(tmp_path, shared_data):
    from icegan.cli import main
    from flownet.io import read_flo
    mb = shared_data / "middlebury" / "RubberWhale"
    out, flo = tmp_path / "f.png", tmp_path / "f.flo"
    assert main(["flow", "run", str(mb / "frame10.png"), str(mb / "frame11.png"), "--out", str(out),
                 "--flo", str(flo), "--model", "farneback", "--gray"]) == 0
    assert out.is_file() and read_flo(flo)[0].shape == (388, 584, 2)
    js = tmp_path / "e.json"
    assert main(["flow", "eval", "--model", "farneback", "--data", "synthetic-face", "--root", str(shared_data),
                 "--n-pairs", "3", "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert set(res["mean"]) == {"EPE", "px1", "px3", "px5", "Fl-all", "WAUC"}
    assert len(res["per_pair"]) == 3 and res["pairs_per_s"] > 0
