"""Head / expression flow decomposition: RANSAC (flownet.decompose), DecFlow (flownet.models.decflow),
``icegan flow run --decompose`` and the main job's ``flow.component`` option."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET
from _textures import smooth_texture

from flownet.data.synthetic_face import similarity_flow, warp_forward
from flownet.decompose import (ComponentEstimator, RansacDecomposer, affine_field, central_region,
                               decompose_ransac, fit_affine_ransac, get_decomposer)
from flownet.models.decflow import (DecFlow, DecFlowConfig, DecFlowEstimator, affine_project, decflow_loss,
                                    load_decflow, save_decflow)
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig

TINY = TINY_SRFLOWNET


def _disc_motion(h, w, cx, cy, r, u, v):
    """A rigid local motion: every pixel of a disc moves by (u, v) px (zero outside)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    inside = ((xs - cx) ** 2 + (ys - cy) ** 2 <= r * r).float()
    return torch.stack([u * inside, v * inside])[None]


# ------------------------------------------------------------------------------------------- RANSAC

@pytest.mark.parametrize("model", ["affine", "similarity"])
def test_ransac_recovers_known_head_motion_despite_local_motion_and_outliers(model):
    h = w = 96
    if model == "affine":
        a = torch.tensor([[[1.012, -0.021, 0.8], [0.017, 0.991, -0.6]]], dtype=torch.float64)
        head = affine_field(a, h, w).float()
    else:
        head = similarity_flow(h, w, angle_deg=1.2, scale=1.01, tx=0.7, ty=-0.4)[None]
    local = _disc_motion(h, w, 60, 40, 12, 1.5, -1.0)                 # the "expression": |motion| >= 1.8 px
    g = torch.Generator().manual_seed(1)
    out = torch.rand(h, w, generator=g) < 0.1                          # 10 % gross outliers, 1..5 px
    ang = torch.rand(h, w, generator=g) * 2 * math.pi
    mag = 1 + 4 * torch.rand(h, w, generator=g)
    outliers = torch.stack([mag * torch.cos(ang), mag * torch.sin(ang)])[None] * out
    flow = head + local + outliers
    d = decompose_ransac(flow, model=model)
    assert torch.allclose(d["head"], head, atol=2e-3)
    assert torch.allclose(d["expression"], local + outliers, atol=2e-3)
    assert torch.allclose(d["head"] + d["expression"], flow, atol=1e-5)
    assert 0.7 < float(d["inlier_ratio"][0]) < 0.95                  # disc + outliers are not inliers


def test_affine_field_known_values_and_similarity_cannot_absorb_shear():
    a = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]], [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    f = affine_field(a, 4, 5)
    assert torch.allclose(f[0, 0], torch.full((4, 5), 2.0)) and torch.allclose(f[0, 1], torch.full((4, 5), -1.0))
    assert torch.allclose(f[1, 0], torch.arange(5.0).expand(4, 5)) and torch.allclose(f[1, 1], torch.zeros(4, 5))
    shear = affine_field(torch.tensor([[[1.0, 0.03, 0.0], [0.0, 1.0, 0.0]]]), 64, 64)
    sim, _ = fit_affine_ransac(shear, model="similarity")
    aff, _ = fit_affine_ransac(shear, model="affine")
    assert torch.allclose(aff, torch.tensor([[[1.0, 0.03, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64), atol=1e-4)
    assert not torch.allclose(sim, aff, atol=1e-3)


def test_ransac_bad_input_is_a_clear_error():
    f = torch.zeros(1, 2, 16, 16)
    with pytest.raises(ValueError, match="threshold"):
        decompose_ransac(f, threshold=0)
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        decompose_ransac(torch.zeros(2, 16, 16))
    with pytest.raises(ValueError, match="pixels"):
        decompose_ransac(f, region=torch.zeros(16, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="region"):
        decompose_ransac(f, region=torch.ones(8, 8))
    with pytest.raises(ValueError, match="non-finite"):
        decompose_ransac(torch.full((1, 2, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="model"):
        decompose_ransac(f, model="projective")
    with pytest.raises(ValueError, match="margin"):
        central_region(8, 8, 0.5)
    with pytest.raises(ValueError, match="ransac"):
        get_decomposer("pca")


def test_ransac_on_synthetic_face_ground_truth(shared_data):
    """The synthetic facial data's head flow (a similarity) is recovered exactly from itself on the face mask."""
    from flownet.data.synthetic_face import SyntheticFaceFlow
    it = SyntheticFaceFlow(root=shared_data, split="test", n_pairs=1, size=64)[0]
    d = decompose_ransac(it["flow_head"][None], it["mask"][None])
    assert torch.allclose(d["head"][0], it["flow_head"], atol=1e-3)


def test_ransac_decomposer_on_tvl1_separates_head_translation():
    img1 = smooth_texture(1, 64, 64)
    head = similarity_flow(64, 64, angle_deg=0.0, scale=1.0, tx=1.0, ty=0.5)[None]
    img2 = warp_forward(img1, head)
    dec = RansacDecomposer("tvl1", threshold=0.3, margin=0.15)
    parts = dec.decompose(img1, img2)
    inner = central_region(64, 64, 0.15)
    assert torch.allclose(parts["head"][0, :, inner], head[0, :, inner], atol=0.1)
    assert float(parts["expression"][0, :, inner].norm(dim=0).mean()) < 0.1
    est = ComponentEstimator(dec, "expression")
    assert torch.equal(est.estimate(img1, img2), parts["expression"])
    with pytest.raises(ValueError, match="component"):
        ComponentEstimator(dec, "rigid")


# ------------------------------------------------------------------------------------------- DecFlow

def _tiny_decflow(head_model="affine", seed=0):
    torch.manual_seed(seed)
    return DecFlow(DecFlowConfig(head_model=head_model, **TINY))


@pytest.mark.parametrize("head_model", ["affine", "dense"])
def test_decflow_parts_sum_to_total_and_gradients_reach_both_decoders(head_model):
    m = _tiny_decflow(head_model)
    img1 = torch.rand(2, 1, 40, 52)                      # padded internally, cropped back
    img2 = torch.rand(2, 1, 40, 52)
    out = m(img1, img2, iters=2)
    assert len(out["total"]) == 2 and out["total"][-1].shape == (2, 2, 40, 52)
    for h, e, t in zip(out["head"], out["expression"], out["total"]):
        assert torch.allclose(h + e, t)
    gt = torch.randn(2, 2, 40, 52)
    loss, _ = decflow_loss(out, gt, -gt)
    loss.backward()
    head_g = [p.grad for p in m.head_update.parameters() if p.grad is not None]
    expr_g = [p.grad for p in m.base.raft.update_block.parameters() if p.grad is not None]
    assert head_g and expr_g
    assert sum(float(g.abs().sum()) for g in head_g) > 0 and sum(float(g.abs().sum()) for g in expr_g) > 0
    assert all(torch.isfinite(g).all() for g in head_g + expr_g)
    if head_model == "affine":  # the head flow is a global affine field at full resolution
        with torch.no_grad():
            h = m(img1[:, :, :32, :32], img2[:, :, :32, :32])["head"][-1]  # 32 px: padded to 32x32 cells... crop-safe
            proj, _ = affine_project(h)
        assert torch.allclose(proj, h, atol=1e-4)


def test_affine_project_known_values():
    a = torch.tensor([[[0.01, -0.02, 0.5], [0.03, 0.0, -1.0]]])
    f = affine_field(a + torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]), 8, 10)
    proj, m = affine_project(f)
    assert torch.allclose(proj, f, atol=1e-5) and torch.allclose(m, a, atol=1e-5)
    bump = torch.zeros(1, 2, 8, 10)
    bump[0, 0, 3, 4] = 1.0
    proj, _ = affine_project(bump)
    assert float((bump - proj).pow(2).sum()) < float(bump.pow(2).sum())     # a bump is mostly not affine
    with pytest.raises(ValueError):
        affine_project(torch.zeros(1, 3, 8, 8))


def test_decflow_loss_known_values_and_errors():
    out = {k: [torch.zeros(1, 2, 4, 4)] for k in ("head", "expression", "total")}
    gh = torch.zeros(1, 2, 4, 4)
    gh[:, 0] = 1.0                                   # L1 = |1| + |0| = 1 per pixel
    ge = torch.zeros(1, 2, 4, 4)
    ge[:, 1] = -2.0                                  # 2 per pixel; total gt (1, -2): 3 per pixel
    loss, parts = decflow_loss(out, gh, ge)
    assert parts == pytest.approx({"head": 1.0, "expression": 2.0, "total": 3.0})
    assert float(loss) == pytest.approx(6.0)
    loss, _ = decflow_loss(out, gh, ge, w_head=0.5, w_expr=0.0, w_total=2.0)
    assert float(loss) == pytest.approx(6.5)
    with pytest.raises(ValueError, match="weights"):
        decflow_loss(out, gh, ge, w_head=-1.0)
    with pytest.raises(ValueError, match="lacks"):
        decflow_loss({"head": out["head"]}, gh, ge)


def test_decflow_training_lowers_loss_on_fixed_batch():
    m = _tiny_decflow("affine")
    img1 = smooth_texture(2, 64, 64, seed=3)
    head = torch.cat([similarity_flow(64, 64, 1.0, 1.01, 0.8, -0.5)[None],
                      similarity_flow(64, 64, -0.8, 0.99, -0.6, 0.4)[None]])
    expr = torch.cat([_disc_motion(64, 64, 30, 34, 10, 1.0, 0.8), _disc_motion(64, 64, 40, 24, 9, -0.9, 1.2)])
    img2 = warp_forward(img1, head + expr)
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        loss, _ = decflow_loss(m(img1, img2, iters=2), head, expr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(x) for x in losses)
    assert min(losses[-3:]) < 0.8 * losses[0]


def test_decflow_init_from_srflownet_starts_as_srflownet_with_zero_head():
    torch.manual_seed(0)
    sr = SRFlowNet(SRFlowNetConfig(**TINY)).eval()
    m = DecFlow(DecFlowConfig(**TINY)).init_from_srflownet(sr).eval()
    img1, img2 = smooth_texture(1, 64, 64, 1), smooth_texture(1, 64, 64, 2)
    with torch.no_grad():
        ref = sr(img1, img2)[-1]
        out = m(img1, img2)
    assert torch.allclose(out["total"][-1], ref, atol=1e-4)
    assert float(out["head"][-1].abs().max()) == 0.0
    other = SRFlowNet(SRFlowNetConfig(**{**TINY, "hidden": 16}))
    with pytest.raises(ValueError, match="another architecture"):
        m.init_from_srflownet(other)


def test_decflow_head_decoder_follows_every_update_block_width_and_needs_the_eighth_grid():
    """The head decoder is built with the config's motion-encoder, GRU and feed-forward widths, as the expression
    decoder is: an SRFlowNet with non-default widths initialises a DecFlow of the same config (it failed with a
    state-dict size mismatch). A 1/4 feature grid, which the recurrence does not implement, is refused when built
    (it crashed inside grid_sample)."""
    torch.manual_seed(0)
    widths = {**TINY, "motion_corr_channels": 24, "motion_flow_channels": 8, "gru_kernel": 3, "ffn_expansion": 1}
    sr = SRFlowNet(SRFlowNetConfig(**widths)).eval()
    m = DecFlow(DecFlowConfig(**widths)).init_from_srflownet(sr).eval()
    for (name, a), b in zip(m.head_update.state_dict().items(), sr.raft.update_block.state_dict().values()):
        assert a.shape == b.shape, name
    img1, img2 = smooth_texture(1, 64, 64, 1), smooth_texture(1, 64, 64, 2)
    with torch.no_grad():
        assert torch.allclose(m(img1, img2)["total"][-1], sr(img1, img2)[-1], atol=1e-4)
    with pytest.raises(ValueError, match="downsample must be 8, got 4"):
        DecFlow(DecFlowConfig(**{**TINY, "downsample": 4}))
    with pytest.raises(ValueError, match="iters must be >= 1, got -2"):     # was empty lists of flows
        m(img1, img2, iters=-2)


def test_decflow_weights_round_trip_and_clear_errors(tmp_path):
    from flownet.registry import save_srflownet
    m = _tiny_decflow("affine").eval()
    img1, img2 = smooth_texture(1, 64, 64, 1), smooth_texture(1, 64, 64, 2)
    p = save_decflow(m, tmp_path / "d.pt", meta={"note": "test"})
    back = load_decflow(p)
    with torch.no_grad():
        a, b = m(img1, img2), back(img1, img2)
    assert all(torch.equal(a[k][-1], b[k][-1]) for k in a) and back.meta == {"note": "test"}
    ph = save_decflow(m, tmp_path / "h.pt", half=True)
    assert ph.stat().st_size < 0.6 * p.stat().st_size
    half = load_decflow(ph)
    assert next(half.parameters()).dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(half(img1, img2)["total"][-1], a["total"][-1], atol=0.05)
    with pytest.raises(FileNotFoundError, match="train-decflow"):
        load_decflow(tmp_path / "missing.pt")
    sr = save_srflownet(SRFlowNet(SRFlowNetConfig(**TINY)), tmp_path / "sr.pt")
    with pytest.raises(ValueError, match="not a DecFlow weights file"):
        load_decflow(sr)
    blob = torch.load(p, weights_only=True)
    blob["state_dict"].pop(next(iter(blob["state_dict"])))
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt.*missing"):
        load_decflow(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_decflow(tmp_path / "junk.pt")
    est = DecFlowEstimator(weights=p)
    parts = est.decompose(img1, img2)
    assert torch.allclose(parts["head"] + parts["expression"], parts["total"], atol=1e-6)


# ------------------------------------------------------------------------------------------- CLI / pipeline

def _write_pair(tmp_path):
    import cv2
    img1 = (smooth_texture(1, 64, 64, 5)[0, 0].numpy() * 255).astype(np.uint8)
    img2 = (warp_forward(smooth_texture(1, 64, 64, 5), similarity_flow(64, 64, 0.5, 1.0, 1.0, 0.5)[None])[0, 0].numpy()
            * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img1)
    cv2.imwrite(str(tmp_path / "b.png"), img2)
    return tmp_path / "a.png", tmp_path / "b.png"


def test_cli_flow_run_decompose_writes_all_parts(tmp_path, capsys):
    from flownet.io import read_flo
    from icegan.cli import main
    a, b = _write_pair(tmp_path)
    out, flo = tmp_path / "f.png", tmp_path / "f.flo"
    assert main(["flow", "run", str(a), str(b), "--out", str(out), "--flo", str(flo), "--model", "tvl1",
                 "--gray", "--decompose", "--key"]) == 0
    out = capsys.readouterr().out
    assert "the three pictures share one colour scale: full colour at" in out
    assert (tmp_path / "f_key.png").is_file() and "the colour key: full colour at" in out
    parts = {k: read_flo(tmp_path / f"f{s}.flo")[0] for k, s in (("total", ""), ("head", "_head"),
                                                                 ("expression", "_expression"))}
    from flownet.io import flow_to_color, read_image
    scale = max(float(np.linalg.norm(p, axis=-1).max()) for p in parts.values())
    head_png = read_image(tmp_path / "f_head.png")                          # (3, H, W) in [0, 1], RGB
    want = flow_to_color(parts["head"], max_flow=scale).float() / 255
    assert torch.allclose(head_png, want, atol=1.5 / 255)                   # drawn on the parts' common scale
    for s in ("", "_head", "_expression"):
        assert (tmp_path / f"f{s}.png").stat().st_size > 0
    assert np.allclose(parts["head"] + parts["expression"], parts["total"], atol=1e-5)
    # learned: DecFlow weights given with --weights; a missing file is one clear line, exit 2
    w = save_decflow(_tiny_decflow(), tmp_path / "dec.pt")
    assert main(["flow", "run", str(a), str(b), "--out", str(tmp_path / "g.png"), "--gray", "--decompose",
                 "--decompose-method", "learned", "--weights", str(w)]) == 0
    assert (tmp_path / "g_expression.png").is_file() and (tmp_path / "g_head.png").is_file()
    capsys.readouterr()
    assert main(["flow", "run", str(a), str(b), "--out", str(tmp_path / "h.png"), "--decompose",
                 "--decompose-method", "learned", "--weights", str(tmp_path / "nope.pt")]) == 2
    assert "DecFlow weights not found" in capsys.readouterr().err


def test_cli_flow_run_decompose_applies_the_base_flow_options(tmp_path, capsys):
    """--tta and --input-size shape the RANSAC method's base flow exactly as they shape a plain `flow run` (they were
    ignored under --decompose); with the learned method, which has no base estimator, they are refused by name."""
    from flownet.io import read_flo
    from icegan.cli import main
    a, b = _write_pair(tmp_path)
    for model, extra in (("srflownet", ["--tta", "hflip"]), ("tvl1", ["--input-size", "48"])):
        plain, parts, bare = tmp_path / "plain.flo", tmp_path / "parts.flo", tmp_path / "bare.flo"
        assert main(["flow", "run", str(a), str(b), "--out", str(tmp_path / "p.png"), "--flo", str(plain),
                     "--model", model, "--gray", *extra]) == 0
        assert main(["flow", "run", str(a), str(b), "--out", str(tmp_path / "q.png"), "--flo", str(parts),
                     "--model", model, "--gray", "--decompose", *extra]) == 0
        assert np.array_equal(read_flo(parts)[0], read_flo(plain)[0]), extra
        assert main(["flow", "run", str(a), str(b), "--out", str(tmp_path / "r.png"), "--flo", str(bare),
                     "--model", model, "--gray"]) == 0
        assert not np.array_equal(read_flo(bare)[0], read_flo(plain)[0]), extra     # the option changes the flow
    capsys.readouterr()
    assert main(["flow", "run", str(a), str(b), "--out", str(tmp_path / "s.png"), "--decompose",
                 "--decompose-method", "learned", "--tta", "hflip", "--precision", "bf16"]) == 2
    assert "--precision, --tta set the base flow estimator of --decompose-method ransac" in capsys.readouterr().err


def test_pipeline_builds_features_from_expression_flow(tmp_path):
    from icegan.config import ConfigError
    from icegan.pipeline import build_flow, compute_flow_features, load_main_config
    cfg = load_main_config(None, ["flow.method=tvl1", "flow.component=expression", "gan.joint=false"])
    est = build_flow(cfg, torch.device("cpu"))
    assert isinstance(est, ComponentEstimator) and est.component == "expression"
    onset = smooth_texture(2, 64, 64, 7)
    head = similarity_flow(64, 64, 0.0, 1.0, 1.0, -0.5)[None]           # pure head motion, no expression
    apex = warp_forward(onset, head)
    total = build_flow(load_main_config(None, ["flow.method=tvl1", "gan.joint=false"]), torch.device("cpu"))
    inner = central_region(64, 64, 0.15)
    e = est.estimate(onset, apex)[:, :, inner].norm(dim=1).mean()
    t = total.estimate(onset, apex)[:, :, inner].norm(dim=1).mean()
    assert float(t) > 0.9 and float(e) < 0.1                          # the head motion is removed
    feats = compute_flow_features(est, onset, apex, 28)
    assert feats.shape == (2, 3, 28, 28) and torch.isfinite(feats).all()
    # learned decomposition with given DecFlow weights
    w = save_decflow(_tiny_decflow(), tmp_path / "dec.pt")
    cfg = load_main_config(None, ["flow.component=expression", "flow.decompose=learned", "gan.joint=false",
                                  f"flow.decompose_weights={w}"])
    est = build_flow(cfg, torch.device("cpu"))
    parts = est.decomposer.decompose(onset, apex)
    assert torch.equal(est.estimate(onset, apex), parts["expression"])
    with pytest.raises(ConfigError, match="gan.joint"):
        load_main_config(None, ["flow.component=expression", "gan.joint=true", "gan.enabled=true"])
    with pytest.raises(ConfigError, match="flow.method=srflownet"):
        load_main_config(None, ["flow.component=expression", "flow.decompose=learned", "flow.method=tvl1",
                                "gan.joint=false"])
    with pytest.raises(ConfigError, match="flow.component"):
        load_main_config(None, ["flow.component=rigid"])


def test_train_decflow_smoke_writes_loadable_weights(tmp_path, shared_data):
    """Two steps of the DecFlow training entry on synthetic facial pairs: resume state, weights, metrics."""
    import json

    from flownet.models.decflow import DecFlowTrainConfig, DecFlowTrainSection, train_decflow
    from flownet.train import FlowDataConfig
    cfg = DecFlowTrainConfig(name="d", out_dir=str(tmp_path),
                             data=FlowDataConfig(root=str(shared_data), size=64, n_train=4, n_test=2),
                             model=DecFlowConfig(**TINY),
                             train=DecFlowTrainSection(init_weights=None, batch_size=2, crop=0, steps=2, iters=2,
                                                       log_every=1, ckpt_every=2))
    m = train_decflow(cfg, progress=False)
    assert set(m) == {"EPE_head", "EPE_expression", "EPE_total"} and all(math.isfinite(v) for v in m.values())
    meta = json.loads((tmp_path / "d" / "metrics.json").read_text())
    assert meta["steps"] == 2 and meta["test_metrics"] == m
    assert load_decflow(tmp_path / "d" / "weights.pt").meta["steps"] == 2
    ck = torch.load(tmp_path / "d" / "last.pt", weights_only=True)
    assert ck["step"] == 2 and ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.05 * cfg.train.lr)


def test_shipped_decflow_weights_load_and_decompose():
    from flownet.models.decflow import default_decflow_path
    p = default_decflow_path()
    assert p.is_file() and p.stat().st_size < 6_000_000
    est = DecFlowEstimator(iters=2)                  # shipped weights
    assert est.model.meta["steps"] > 0 and est.model.config.head_model == "affine"
    img1 = smooth_texture(1, 64, 64, 1)
    parts = est.decompose(img1, warp_forward(img1, similarity_flow(64, 64, 0.0, 1.0, 1.0, 0.0)[None]))
    assert torch.allclose(parts["head"] + parts["expression"], parts["total"], atol=1e-5)
    assert affine_project(parts["head"])[0].sub(parts["head"]).abs().max() < 1e-3


def _two_motions(h=32, w=32, left=12):
    f = torch.zeros(1, 2, h, w)
    f[:, 0] = 3.0
    f[:, 0, :, :left] = 1.0
    return f


def test_central_region_of_a_non_square_map():
    """central_region(10, 40, 0.25): rows 2..7 and columns 10..29, 6 × 20 = 120 pixels."""
    from flownet.decompose import central_region
    m = central_region(10, 40, 0.25)
    assert int(m.sum()) == 6 * 20 and bool(m[2, 10]) and not bool(m[2, 9]) and not bool(m[1, 10])


def test_a_float_region_is_thresholded():
    """A float {0, 1} region (as face_mask gives) selects its pixels: the head motion fitted on the left 12 columns is their u = 1."""
    from flownet.decompose import decompose_ransac
    region = torch.zeros(1, 1, 32, 32)
    region[..., :12] = 1.0                                          # float {0, 1} mask, as face_mask gives
    d = decompose_ransac(_two_motions(), region)
    assert abs(float(d["head"][0, 0].mean()) - 1.0) < 1e-3


def test_the_decomposer_uses_its_margin():
    """RansacDecomposer(margin=0.25) fits the head on the central region only: u = 1 there, though the border moves by 3."""
    from flownet.decompose import RansacDecomposer

    class Base:
        def estimate(self, a, b):
            f = torch.full((1, 2, 32, 32), 0.0)
            f[:, 0] = 3.0
            f[:, 0, 8:24, 8:24] = 1.0                               # the centre moves by 1, the 75 % border by 3
            return f
    d = RansacDecomposer(Base(), margin=0.25).decompose(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))
    assert abs(float(d["head"][0, 0].mean()) - 1.0) < 1e-3


# ------------------------------------------------------------------------------- mutation audit: RANSAC

def _offset_block(h=32, w=32, n_off=300, extra=0.3):
    """u = 1 everywhere except n_off scattered pixels (seeded), which move by 1 + extra."""
    f = torch.zeros(1, 2, h, w)
    f[:, 0] = 1.0
    f[:, 0].view(-1)[torch.randperm(h * w, generator=torch.Generator().manual_seed(0))[:n_off]] += extra
    return f


def test_default_threshold_of_0_2_px_rejects_a_0_3_px_residual():
    """300 of 1024 pixels are 0.3 px off the head translation: outliers at the default 0.2 px, inliers at 0.5 px."""
    f = _offset_block()
    assert float(decompose_ransac(f)["inlier_ratio"][0]) == pytest.approx(724 / 1024)
    assert float(decompose_ransac(f, threshold=0.5)["inlier_ratio"][0]) > 0.98


def test_points_are_drawn_at_random_from_the_region_with_the_seed():
    """The first 4 rows move by 3 px, the rest by 1 px: 64 points drawn at random over the frame see the 1 px
    majority (64 taken in row order would all be 3 px). The draw follows the seed."""
    f = torch.zeros(1, 2, 32, 32)
    f[:, 0] = 1.0
    f[:, 0, :4] = 3.0
    d = decompose_ransac(f, n_points=64)
    assert float(d["affine"][0, 0, 2]) == pytest.approx(1.0, abs=1e-3)
    r = [float(fit_affine_ransac(_offset_block(), n_points=50, seed=s)[1][0]) for s in (0, 1, 2, 0)]
    assert r[0] == r[3] and len({r[0], r[1], r[2]}) > 1
    dec = RansacDecomposer(_FixedFlow(_offset_block()), n_points=10)
    ratio = float(dec.decompose(torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32))["inlier_ratio"][0])
    assert ratio * 10 == pytest.approx(round(ratio * 10))           # a fraction of 10 sampled points


class _FixedFlow:
    def __init__(self, flow):
        self.flow = flow

    def estimate(self, a, b):
        return self.flow.clone()


def test_a_soft_region_keeps_only_pixels_of_at_least_half_and_three_pixels_are_enough():
    f = torch.zeros(1, 2, 32, 32)
    f[:, 0] = 3.0
    f[:, 0, :, :12] = 1.0
    region = torch.full((1, 32, 32), 0.4)
    region[..., :12] = 0.9
    assert abs(float(decompose_ransac(f, region)["head"][0, 0].mean()) - 1.0) < 1e-3
    three = torch.zeros(32, 32, dtype=torch.bool)
    three[5, 5] = three[5, 20] = three[20, 5] = True
    assert decompose_ransac(f, three)["affine"].shape == (1, 2, 3)
    with pytest.raises(ValueError, match="has 2 pixels"):
        decompose_ransac(f, three & (torch.arange(32)[:, None] == 5))


def test_the_decomposer_passes_its_model_and_the_parts_keep_the_input():
    shear = affine_field(torch.tensor([[[1.0, 0.03, 0.0], [0.0, 1.0, 0.0]]]), 32, 32).float()
    img = torch.zeros(1, 1, 32, 32)
    aff = RansacDecomposer(_FixedFlow(shear), model="affine").decompose(img, img)
    assert torch.allclose(aff["head"], shear, atol=1e-4)
    sim = RansacDecomposer(_FixedFlow(shear)).decompose(img, img)
    assert not torch.allclose(sim["head"], shear, atol=1e-3)
    assert torch.equal(sim["total"], shear) and torch.equal(sim["expression"], shear - sim["head"])
    assert torch.equal(ComponentEstimator(RansacDecomposer(_FixedFlow(shear)), "head").estimate(img, img), sim["head"])


def test_a_fit_opencv_cannot_make_falls_back_to_least_squares_with_every_point_counted():
    """Field 1's region is one row (collinear points: no full affine model for OpenCV): the least-squares fit is
    used, says so naming the field, reproduces the row's flow u = 1 + 0.01 x, v = 0.5 exactly (x coefficient 1.01)
    and counts every point as an inlier; field 0 keeps its RANSAC fit and inlier ratio (724 of 1024)."""
    f = torch.cat([_offset_block(), torch.zeros(1, 2, 32, 32)])
    f[1, 0] = 1 + 0.01 * torch.arange(32.0)
    f[1, 1] = 0.5
    region = torch.ones(2, 32, 32, dtype=torch.bool)
    region[1] = False
    region[1, 12] = True
    with pytest.warns(RuntimeWarning, match="no affine model for field 1; using a least-squares fit"):
        d = decompose_ransac(f, region, model="affine")
    assert d["inlier_ratio"].tolist() == [pytest.approx(724 / 1024), 1.0]
    torch.testing.assert_close(d["head"][1, :, 12], f[1, :, 12], atol=1e-5, rtol=0)
    assert float(d["affine"][1, 0, 0]) == pytest.approx(1.01) and float(d["affine"][1, 1, 0]) == pytest.approx(0.0, abs=1e-9)
    torch.testing.assert_close(d["affine"][0], torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("model, fn", [("similarity", "estimateAffinePartial2D"), ("affine", "estimateAffine2D")])
def test_ransac_settings_reach_opencv(monkeypatch, model, fn):
    """threshold, max_iters, confidence and refine_iters are OpenCV's ransacReprojThreshold, maxIters, confidence
    and refineIters, with method=cv2.RANSAC, on the function of the model."""
    import cv2
    seen = []
    real = getattr(cv2, fn)

    def recording(src, dst, **kw):
        seen.append(kw)
        return real(src, dst, **kw)
    monkeypatch.setattr(cv2, fn, recording)
    fit_affine_ransac(_offset_block(), threshold=0.3, max_iters=77, confidence=0.9, refine_iters=3, model=model)
    assert seen == [{"method": cv2.RANSAC, "ransacReprojThreshold": 0.3, "maxIters": 77, "confidence": 0.9,
                     "refineIters": 3}]


def test_the_refinement_steps_tighten_the_fit_on_noisy_flow():
    """A 1 px translation with 0.05 px noise: the default 10 Levenberg-Marquardt steps land within 0.02 of it; none
    (refine_iters=0) leaves the RANSAC sample's model, measurably off."""
    f = _offset_block(n_off=0) + 0.05 * torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(1))
    truth = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    refined, raw = fit_affine_ransac(f)[0], fit_affine_ransac(f, refine_iters=0)[0]
    assert float((refined - truth).abs().max()) < 0.02
    assert float((raw - refined).abs().max()) > 0.03


def test_the_decomposer_passes_its_threshold_and_seed_and_a_region_one_point_too_big_is_sampled():
    """RansacDecomposer(threshold=0.5) counts the 0.3 px offsets as inliers (724 of 1024 at the default 0.2 px);
    RansacDecomposer(seed=2) draws the points fit_affine_ransac(seed=2) draws (another ratio than seed 0's); a region
    of n_points + 1 pixels is sampled down to n_points (ratio in tenths of 10 points, not elevenths)."""
    img = torch.zeros(1, 1, 32, 32)
    assert float(RansacDecomposer(_FixedFlow(_offset_block()), threshold=0.5).decompose(img, img)["inlier_ratio"][0]) > 0.98
    seeded = float(RansacDecomposer(_FixedFlow(_offset_block()), n_points=50, seed=2).decompose(img, img)["inlier_ratio"][0])
    assert seeded == float(fit_affine_ransac(_offset_block(), n_points=50, seed=2)[1][0])
    assert seeded != float(fit_affine_ransac(_offset_block(), n_points=50, seed=0)[1][0])
    f = torch.zeros(1, 2, 32, 32)
    f[:, 0] = 1.0
    f[0, 0, 0, 0] = 3.0                                             # one of the 11 region pixels is an outlier
    region = torch.zeros(32, 32, dtype=torch.bool)
    region[0, :6] = region[10, :5] = True
    for seed in range(3):
        ratio = float(fit_affine_ransac(f, region, n_points=10, seed=seed)[1][0])
        assert ratio * 10 == pytest.approx(round(ratio * 10)) and ratio >= 0.9
