"""Self-supervised flow losses (thesis ch. 3), real CASME II frame pairs and the self-sup config.

Reads ../shared/data/casme2 (never skipped: CI has ../shared beside the clone).
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flownet.data.real_pairs import RealFramePairs
from flownet.data.synthetic_face import backward_warp, list_subjects, shared_data_root, split_subjects
from flownet.selfsup_losses import (census_border_mask, census_distance, census_transform, confidence_map,
                                    distillation_loss, edge_aware_smoothness, forward_backward_occlusion,
                                    hallucinated_occlusion, occlusion_distillation_loss, photometric_loss,
                                    robust_penalty, slic_superpixels, smoothness_loss, student_loss,
                                    superpixel_hallucination, teacher_loss)

PSI0 = 0.01 ** 0.4


def smooth_texture(h=48, w=48, seed=0, sigma=2.0):
    """(1, 1, h, w) smooth random texture in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, h, w, generator=g)
    k = torch.arange(-6, 7, dtype=torch.float32)
    k = torch.exp(-k ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (6, 6, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, 6, 6), mode="reflect"), k.view(1, 1, -1, 1))
    return (x - x.min()) / (x.max() - x.min())


def const_flow(u, v, h, w, b=1):
    return torch.stack([torch.full((h, w), float(u)), torch.full((h, w), float(v))])[None].expand(b, -1, -1, -1).clone()


# ------------------------------------------------------------------------------------- ψ and census

def test_robust_penalty_known_values_and_gradient():
    x = torch.tensor([0.0, 1.0, -2.0, 0.5], requires_grad=True)
    y = robust_penalty(x)
    expected = torch.tensor([0.01 ** 0.4, 1.01 ** 0.4, 2.01 ** 0.4, 0.51 ** 0.4])
    assert torch.allclose(y, expected, atol=1e-6)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert math.isclose(float(x.grad[1]), 0.4 * 1.01 ** -0.6, rel_tol=1e-5)
    assert math.isclose(float(x.grad[2]), -0.4 * 2.01 ** -0.6, rel_tol=1e-5)
    with pytest.raises(ValueError, match="eps"):
        robust_penalty(x, eps=0.0)


def test_census_identical_images_zero_and_loss_floor():
    img = smooth_texture(seed=1)
    assert census_transform(img, 7).shape == (1, 49, 48, 48)
    d = census_distance(img, img.clone(), 7)
    assert d.shape == (1, 1, 48, 48) and float(d.abs().max()) == 0.0
    zero = torch.zeros(1, 2, 48, 48)
    # zero distance everywhere: the loss sits at its floor 2 ψ(0) (forward + backward term)
    loss = photometric_loss(img, img.clone(), zero, zero)
    assert math.isclose(float(loss), 2 * PSI0, rel_tol=1e-6)
    # census ignores a brightness offset exactly and a gain nearly (robust to illumination change)
    assert float(census_distance(img, img + 0.1, 7).max()) < 1e-4
    shifted = torch.roll(img, 2, dims=-1)
    assert float(census_distance(img, 0.8 * img, 7).mean()) < 0.2 * float(census_distance(img, shifted, 7).mean())


def test_census_shift_compensated_by_warping():
    big = smooth_texture(64, 64, seed=2)
    img1 = big[..., 8:56, 8:56]
    sx, sy = 2, 1
    img2 = big[..., 8 - sy:56 - sy, 8 - sx:56 - sx]       # I2(x) = I1(x - s): flow_f = +s everywhere
    flow = const_flow(sx, sy, 48, 48)
    warped = backward_warp(img2, flow)                      # I2(p + w_f(p)) = I1(p)
    inner = census_border_mask(48, 48, 7) * 0
    inner[..., 3:48 - 3 - sy, 3:48 - 3 - sx] = 1.0          # census window and warp both inside the image
    d_ok = census_distance(img1, warped, 7)
    d_zero = census_distance(img1, img2, 7)
    assert float((d_ok * inner).max()) < 1e-3
    assert float((d_zero * inner).sum() / inner.sum()) > 1.0
    # a sub-pixel shift of a smooth image: the right flow leaves a small residual, zero flow a large one
    img2b = backward_warp(img1, const_flow(-0.5, 0.0, 48, 48))  # I2(x) = I1(x - 0.5): flow_f = +0.5
    inner2 = torch.zeros(1, 1, 48, 48)
    inner2[..., 4:-4, 4:-4] = 1.0
    r_ok = float((census_distance(img1, backward_warp(img2b, const_flow(0.5, 0, 48, 48)), 7) * inner2).mean())
    r_zero = float((census_distance(img1, img2b, 7) * inner2).mean())
    assert r_ok < 0.5 * r_zero   # (two bilinear half-pixel resamplings blur a little: not 0)


# ---------------------------------------------------------------------------------------- occlusion

def test_occlusion_consistent_flow_passes_and_out_of_image_flags():
    h, w = 20, 24
    f = const_flow(1.5, 0.0, h, w)
    occ = forward_backward_occlusion(f, -f)
    outside = torch.zeros(1, 1, h, w)
    outside[..., :, w - 2:] = 1.0                           # x + 1.5 > w - 1 for the last two columns
    assert torch.equal(occ, outside)


def test_occlusion_flags_known_region_and_alpha2():
    h, w = 24, 24
    f = const_flow(2.0, 0.0, h, w)
    b = -f.clone()
    b[..., 8:14, 10:16] = torch.tensor([3.0, 0.0]).view(1, 2, 1, 1)  # inconsistent backward flow in a block of I2
    occ = forward_backward_occlusion(f, b)
    expected = torch.zeros(1, 1, h, w)
    expected[..., 8:14, 8:14] = 1.0                          # I1 pixels landing in that block (x + 2 ∈ [10, 15])
    expected[..., :, w - 2:] = 1.0                           # leave the image
    assert torch.equal(occ, expected)
    # a 0.5 px forward-backward mismatch: |Δ|² = 0.25 passes α2 = 0.5 but not a tight α2 = 0.05
    b2 = -f + torch.tensor([0.5, 0.0]).view(1, 2, 1, 1)
    inner = (slice(None), slice(None), slice(None), slice(0, w - 2))
    assert float(forward_backward_occlusion(f, b2, 0.01, 0.5)[inner].max()) == 0.0
    assert float(forward_backward_occlusion(f, b2, 0.01, 0.05)[inner].min()) == 1.0


# ---------------------------------------------------------------------------------------- smoothness

def test_smoothness_constant_zero_and_step_known_value():
    h, w = 16, 20
    img = torch.full((1, 1, h, w), 0.5)
    assert float(edge_aware_smoothness(const_flow(1.3, -0.7, h, w), img)) == 0.0
    step = torch.zeros(1, 2, h, w)
    step[:, 0, :, 9:] = 2.0                                  # u jumps by 2 px between columns 8 and 9
    assert math.isclose(float(edge_aware_smoothness(step, img)), 2.0 / w, rel_tol=1e-6)
    edge = img.clone()
    edge[..., 9:] = 0.8                                      # an image edge of 0.3 at the same place
    assert math.isclose(float(edge_aware_smoothness(step, edge, beta=10.0)), 2.0 * math.exp(-3.0) / w, rel_tol=1e-5)
    # both directions (Eq. 3.35)
    assert math.isclose(float(smoothness_loss(step, step, img, img)), 4.0 / w, rel_tol=1e-6)


# -------------------------------------------------------------------------------------- distillation

def test_hallucinated_occlusion_and_occlusion_distillation_only_there():
    h, w = 12, 12
    occ_t = torch.zeros(1, 1, h, w)
    occ_t[..., :3, :] = 1.0                                  # occluded for the teacher already
    occ_s = torch.zeros(1, 1, h, w)
    occ_s[..., :6, :6] = 1.0                                 # occluded for the student
    halluc = hallucinated_occlusion(occ_s, occ_t)            # Eq. 3.37: rows 3..5, cols 0..5
    expected = torch.zeros(1, 1, h, w)
    expected[..., 3:6, :6] = 1.0
    assert torch.equal(halluc, expected)

    teacher = torch.randn(1, 2, h, w)
    student = (teacher + 1.0).requires_grad_(True)           # off by 1 px in both components everywhere
    loss = occlusion_distillation_loss(teacher, teacher, student, student, halluc, halluc)
    assert math.isclose(float(loss.detach()), 2 * 1.01 ** 0.4, rel_tol=1e-5)
    loss.backward()
    g = student.grad.abs().sum(1, keepdim=True)
    assert float(g[halluc == 0].max()) == 0.0 and float(g[halluc == 1].min()) > 0.0
    # changing the student outside the hallucinated occlusions does not change the loss
    student2 = student.detach().clone()
    student2[..., 8:, 8:] += 5.0
    assert math.isclose(float(occlusion_distillation_loss(teacher, teacher, student2, student2, halluc, halluc)),
                        float(loss.detach()), rel_tol=1e-6)


def test_distillation_variant2_on_confident_pixels():
    h, w = 10, 10
    occ = torch.zeros(1, 1, h, w)
    occ[..., :, :5] = 1.0
    conf = confidence_map(occ)                               # Eq. 3.40
    assert float(conf[..., :5].max()) == 0.0 and float(conf[..., 5:].min()) == 1.0
    teacher = torch.zeros(1, 2, h, w)
    student = torch.zeros(1, 2, h, w)
    student[..., :5] = 7.0                                   # wrong only where the teacher is not confident
    assert math.isclose(float(distillation_loss(teacher, teacher, student, student, conf, conf)), 2 * PSI0, rel_tol=1e-6)
    student[..., 5:] = 1.0
    assert math.isclose(float(distillation_loss(teacher, teacher, student, student, conf, conf)),
                        2 * 1.01 ** 0.4, rel_tol=1e-5)
    # empty confidence: no pixel, no loss (not NaN)
    assert float(distillation_loss(teacher, teacher, student, student, conf * 0, conf * 0)) == 0.0


# ----------------------------------------------------------------------------- SLIC hallucination

def test_superpixel_hallucination_alters_only_chosen_superpixels():
    img = torch.cat([smooth_texture(40, 40, seed=s) for s in (3, 4)])
    labels = slic_superpixels(img, n_segments=30, compactness=0.1)
    assert labels.shape == (2, 40, 40) and all(len(np.unique(l)) >= 10 for l in labels)
    out, mask = superpixel_hallucination(img, n_noisy=(2, 4), rng=np.random.default_rng(0), labels=labels)
    changed = (out != img)[:, 0]
    m = mask[:, 0].bool()
    assert not bool(changed[~m].any())                       # untouched outside the chosen superpixels
    assert float(changed[m].float().mean()) > 0.99           # noise replaced the chosen ones
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    for i in range(2):
        inside = np.unique(labels[i][m[i].numpy()])
        assert 2 <= len(inside) <= 4
        for lab in inside:                                   # whole superpixels, never parts
            assert bool(m[i][torch.from_numpy(labels[i] == lab)].all())
    with pytest.raises(ValueError, match="n_noisy"):
        superpixel_hallucination(img, n_noisy=(3, 1), labels=labels)


# -------------------------------------------------------------------------------------- gradients

def test_losses_have_finite_gradients_including_zero_flow():
    img1 = smooth_texture(32, 32, seed=5)
    img2 = backward_warp(img1, const_flow(-1.0, 0.5, 32, 32))
    for init in (0.0, 0.7):
        ff = torch.full((1, 2, 32, 32), init, requires_grad=True)
        fb = torch.full((1, 2, 32, 32), -init, requires_grad=True)
        occ_f = forward_backward_occlusion(ff, fb)
        occ_b = forward_backward_occlusion(fb, ff)
        loss, parts = teacher_loss(img1, img2, ff, fb, occ_f, occ_b)
        loss.backward()
        assert torch.isfinite(ff.grad).all() and torch.isfinite(fb.grad).all() and float(ff.grad.abs().sum()) > 0
        sf = torch.zeros(1, 2, 32, 32, requires_grad=True)
        sl, _ = student_loss(ff.detach(), fb.detach(), sf, sf, 1 - occ_f, 1 - occ_b, img1, img2)
        sl.backward()
        assert torch.isfinite(sf.grad).all()


def test_smooth_weight_weighs_the_smoothness_term():
    """L_1 = L_pho + w L_smo (Eq. 3.36) and L = L_dis + w L_smo (Eq. 3.42) with the configured w, not the
    thesis's 0.1: the returned parts recombine to the loss, and a flow with texture (smoothness > 0) is used."""
    img1 = smooth_texture(32, 32, seed=5)
    img2 = backward_warp(img1, const_flow(-1.0, 0.5, 32, 32))
    ff = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    fb = -ff
    loss, parts = teacher_loss(img1, img2, ff, fb, smooth_weight=0.3)
    assert parts["smo"] > 0 and float(loss) == pytest.approx(parts["pho"] + 0.3 * parts["smo"], rel=1e-5)
    ones = torch.ones(1, 1, 32, 32)
    sl, sp = student_loss(ff, fb, 0.5 * ff, 0.5 * fb, ones, ones, img1, img2, smooth_weight=2.0)
    assert sp["smo"] > 0 and float(sl) == pytest.approx(sp["dis"] + 2.0 * sp["smo"], rel=1e-5)


# ------------------------------------------------------------------------------- real CASME II pairs

def test_real_pairs_read_train_subjects_of_the_fixed_split():
    root = shared_data_root()
    split = split_subjects(list_subjects(root))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = RealFramePairs(root=root, crop=64, seed=3, n_items=50)
    assert ds.subjects == sorted(split["train"]) and not set(ds.subjects) & set(split["test"])
    assert len(ds.pairs["consecutive"]) > 1000 and len(ds.pairs["onset_apex"]) > 50
    assert ds.skipped and any("skipped" in str(w.message) for w in caught)  # unverified clips are reported
    kinds = set()
    for i in range(6):
        it = ds[i]
        kinds.add(it["kind"])
        assert it["img1"].shape == (1, 64, 64) and it["img2"].shape == (1, 64, 64)
        assert 0.0 <= float(it["img1"].min()) and float(it["img1"].max()) <= 1.0
        assert it["subject"] in split["train"]
        p1, p2 = Path(it["path1"]), Path(it["path2"])
        n1, n2 = int(p1.stem[3:]), int(p2.stem[3:])
        assert n2 == n1 + 1 if it["kind"] == "consecutive" else n2 > n1
    # deterministic per index, and served from the decoded-frame cache
    n_cached = len(ds._cache)
    again = ds[0]
    assert torch.equal(again["img1"], ds[0]["img1"]) and len(ds._cache) == n_cached
    # an onset→apex pair is the manifest's onset and apex frames
    on, ap = ds.pairs["onset_apex"][0]
    assert on.parent == ap.parent and on.name.startswith("img") and on != ap


def _fake_casme2(tmp_path: Path, apex_present: bool = True, corrupt: bool = False) -> Path:
    import cv2
    c2 = tmp_path / "casme2"
    rows = ["subject,filename,onset,apex,verified,note"]
    rng = np.random.default_rng(0)
    for s in range(1, 7):
        sub = f"sub{s:02d}"
        clip = c2 / sub / "EP01_01"
        clip.mkdir(parents=True)
        for n in range(10, 15):
            if n == 13 and not apex_present and s == 1:
                continue
            cv2.imwrite(str(clip / f"img{n}.jpg"), (rng.random((40, 32)) * 255).astype(np.uint8))
        rows.append(f"{sub},EP01_01,10,13,True,")
        rows.append(f"{sub},EP02_02,10,13,False,dump truncated")
    if corrupt:
        (c2 / "sub01" / "EP01_01" / "img11.jpg").write_bytes(b"not a jpeg")
    (c2 / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_real_pairs_missing_and_corrupt_files_are_named(tmp_path):
    root = _fake_casme2(tmp_path / "a", apex_present=False)
    with pytest.raises(FileNotFoundError, match=r"sub01/EP01_01.*apex frame .*img13\.jpg"):
        RealFramePairs(root=root, subjects=["sub01", "sub02"])
    root = _fake_casme2(tmp_path / "b", corrupt=True)        # sub01's img11.jpg is not an image: its clip skipped
    with pytest.warns(UserWarning) as caught:
        ds = RealFramePairs(root=root, subjects=["sub01", "sub02"], kinds=("consecutive",), flip=False)
    texts = [str(w.message) for w in caught]
    assert any("EP02_02: not verified" in t for t in texts)
    assert any(re.search(r"sub01/EP01_01: frame .*sub01/EP01_01/img11\.jpg cannot be read as an image", t)
               for t in texts), texts
    assert {a.parent.parent.name for a, _ in ds.pairs["consecutive"]} == {"sub02"}
    with pytest.raises(OSError, match=r"img11\.jpg"):             # read directly: named too
        ds.frame(root / "casme2" / "sub01" / "EP01_01" / "img11.jpg")
    with pytest.raises(FileNotFoundError, match=r"no usable frame pair .*skipped: sub01/EP01_01: frame .*img11\.jpg "
                                                r"cannot be read"):   # sub01 alone: nothing left, and why
        RealFramePairs(root=root, subjects=["sub01"], kinds=("consecutive",), flip=False)
    with pytest.raises(FileNotFoundError, match="manifest"):
        RealFramePairs(root=_no_manifest(tmp_path / "c"))


def _no_manifest(root: Path) -> Path:
    r = _fake_casme2(root)
    (r / "casme2" / "manifest.csv").unlink()
    return r


# -------------------------------------------------------------------------- training on a real pair

def test_selfsup_loss_decreases_on_a_fixed_real_pair():
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.selfsup import SelfSupLossConfig, bidirectional_flows, teacher_step_loss
    torch.manual_seed(0)
    ds = RealFramePairs(subjects=["sub01"], crop=0, size=64, kinds=("onset_apex",), flip=False, max_clips=1)
    it = ds[0]
    img1 = it["img1"][None]
    img2 = torch.roll(it["img2"][None], shifts=1, dims=-1)  # real apex frame, moved 1 px right: motion to find
    model = SRFlowNet(SRFlowNetConfig(iters=2))
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    lc = SelfSupLossConfig()
    losses = []
    for _ in range(12):
        loss, _ = teacher_step_loss(bidirectional_flows(model, img1, img2, 2), img1, img2, lc, use_occlusion=False)
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < losses[0] - 0.05


def test_selfsup_config_loads_and_cli_mode():
    from flownet.selfsup import SelfSupConfig
    from icegan.config import ConfigError, load_config
    cfg = load_config(SelfSupConfig, "configs/flow_selfsup.yaml", ["loss.alpha2=0.05"])
    assert cfg.loss.census_window == 7 and cfg.loss.alpha2 == 0.05 and cfg.loss.beta == 10.0
    assert cfg.train.threads == 1
    with pytest.raises(ConfigError, match="loss.alpha3"):
        load_config(SelfSupConfig, "configs/flow_selfsup.yaml", ["loss.alpha3=1"])


def test_train_init_weights_loads_and_rejects_mismatch(tmp_path):
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.registry import save_srflownet
    from flownet.train import load_init_weights
    torch.manual_seed(1)
    src = SRFlowNet(SRFlowNetConfig(iters=2))
    path = save_srflownet(src, tmp_path / "selfsup.pt")
    dst = SRFlowNet(SRFlowNetConfig(iters=2))
    load_init_weights(dst, path)
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
    with pytest.raises(ValueError, match=r"init_weights.*another architecture .*flow_head_hidden=96 "
                                         r"\(model\.flow_head_hidden: 64\)"):
        load_init_weights(SRFlowNet(SRFlowNetConfig(flow_head_hidden=64)), path)
    with pytest.raises(FileNotFoundError, match="init_weights"):
        load_init_weights(dst, tmp_path / "nope.pt")


class _ErrorBlocksStub(torch.nn.Module):
    """A flow network for 32 x 32 pairs run forward and backward as one batch: forward flow u = 1 px (the truth)
    except a 2 px error block (rows and columns 4-9) and a 0.6 px error block (rows 16-23, columns 4-11); backward
    flow exactly -1 px (consistent with the truth)."""
    config = SimpleNamespace(iters=1)

    def forward(self, a, b, iters=None):
        n, h, w = a.shape[0] // 2, a.shape[-2], a.shape[-1]
        f = const_flow(1.0, 0.0, h, w, n)
        f[:, 0, 4:10, 4:10] = 3.0
        f[:, 0, 16:24, 4:12] = 1.6
        return [torch.cat([f, const_flow(-1.0, 0.0, h, w, n)])]


def test_confidence_study_tight_alpha2_flags_subpixel_errors():
    from flownet.selfsup import confidence_study

    h = w = 32
    img = smooth_texture(h, w, seed=7)
    batch = {"img1": img, "img2": img, "flow": const_flow(1.0, 0.0, h, w), "valid": torch.ones(1, h, w, dtype=torch.bool)}
    res = confidence_study(_ErrorBlocksStub(), [batch], [(img, img)], alpha2_values=(0.5, 0.05))
    loose, tight = res["by_alpha2"]["0.5"], res["by_alpha2"]["0.05"]
    assert tight["occ_synthetic"] > loose["occ_synthetic"]             # the 0.6 px block is flagged only when tight
    assert tight["epe_confident"] < 1e-6 < loose["epe_confident"]      # what stays confident is exact when tight
    assert loose["epe_flagged"] > tight["epe_flagged"] > 0.6
    assert math.isclose(res["epe_all"], (36 * 2.0 + 64 * 0.6) / (h * w), rel_tol=1e-5)


# ------------------------------------------------------- learning flow on synthetic facial pairs

def _synthetic_pairs(root, idx=(2, 3)):
    """Synthetic facial test pairs (exact flow) 2 and 3 of seed 0 at 128 px: mean |flow| 1.01 px (max 2.2)
    and 1.81 px (max 4.0), with the set's photometric noise and blur."""
    from flownet.data.synthetic_face import SyntheticFaceFlow
    ds = SyntheticFaceFlow(root=root, split="test", size=128, n_pairs=max(idx) + 1, seed=0)
    items = [ds[i] for i in idx]
    img1, img2 = torch.stack([it["img1"] for it in items]), torch.stack([it["img2"] for it in items])
    gt = torch.stack([it["flow"] for it in items])
    valid = torch.stack([it["valid"] for it in items])
    valid[:, :4], valid[:, -4:], valid[:, :, :4], valid[:, :, -4:] = False, False, False, False
    return img1, img2, gt, valid


def _epe(flow, gt, valid):
    """Per-pair EPE (pixels) over valid pixels, list of floats."""
    err = (flow - gt).norm(dim=1)
    return [float(e[v].mean()) for e, v in zip(err, valid)]


def test_teacher_loss_teaches_the_true_flow_on_synthetic_faces(shared_data):
    """The stage-1 loss ranks flows correctly and, minimised alone, recovers the known flow.

    (a) At the exact flow (forward = ground truth, backward = its inverse) the teacher loss is below its
    value at zero flow and at minus the ground truth (wrong warp sign / direction would invert this).
    (b) A free flow field on an 8-px grid (16 x 16 nodes per 128 px, bilinearly up-sampled: the
    resolution of SRFlowNet's 1/8 grid) optimised from zero by Adam on the teacher loss alone must
    reach EPE < 0.4 x zero flow's EPE on each pair (measured 0.19 / 1.01 and 0.19 / 1.81 px, ratios
    0.19 and 0.10, after 150 steps; a loss blind to motion would stay near ratio 1).
    A full-resolution per-pixel field is not used: it fits the frames' noise (loss 5.0 → 1.7, below the
    exact flow's 3.9–4.6) without approaching the ground truth, so the loss needs the smoothness that a
    network or a coarse grid provides.
    """
    from flownet.data.synthetic_face import inverse_flow
    img1, img2, gt, valid = _synthetic_pairs(shared_data)
    gb = inverse_flow(gt)
    for i in range(2):
        sl = slice(i, i + 1)
        at = {name: float(teacher_loss(img1[sl], img2[sl], f[sl], b[sl])[0])
              for name, (f, b) in {"gt": (gt, gb), "zero": (0 * gt, 0 * gb), "neg": (-gt, -gb)}.items()}
        assert at["gt"] < at["zero"] - 0.5 and at["gt"] < at["neg"] - 0.5, at

    torch.manual_seed(0)
    pf = torch.zeros(2, 2, 16, 16, requires_grad=True)
    pb = torch.zeros(2, 2, 16, 16, requires_grad=True)
    opt = torch.optim.Adam([pf, pb], lr=0.05)

    def up(p):
        return F.interpolate(p, size=(128, 128), mode="bilinear", align_corners=True)

    for _ in range(150):
        loss, _ = teacher_loss(img1, img2, up(pf), up(pb))
        opt.zero_grad()
        loss.backward()
        opt.step()
    learned = _epe(up(pf).detach(), gt, valid)
    zero = _epe(torch.zeros_like(gt), gt, valid)
    assert all(e < 0.4 * z for e, z in zip(learned, zero)), (learned, zero)


def test_teacher_loss_trains_srflownet_on_a_synthetic_facial_pair(shared_data):
    """SRFlowNet (light face configuration) from random init, trained with the stage-1 loss only
    (no occlusion masking) on one fixed 64 x 64 synthetic facial crop with known flow (mean |flow| 0.88 px),
    must bring the EPE below 0.5 x zero flow's within 60 Adam steps (measured 0.88 → 0.23 / 0.27 / 0.23 px
    with seeds 0 / 1 / 2; the initial flow is ~0.07 px, so the net starts at zero flow's EPE; with the
    warp sign flipped in the loss it ends at 1.64 px): the loss can teach a network flow.
    """
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.selfsup import SelfSupLossConfig, bidirectional_flows, teacher_step_loss
    img1, img2, gt, valid = _synthetic_pairs(shared_data, idx=(2,))
    crop = (..., slice(32, 96), slice(32, 96))
    img1, img2, gt, valid = img1[crop], img2[crop], gt[crop], valid[crop].clone()
    valid[:, :4], valid[:, -4:], valid[:, :, :4], valid[:, :, -4:] = False, False, False, False
    torch.manual_seed(0)
    model = SRFlowNet(SRFlowNetConfig.face())
    opt = torch.optim.Adam(model.parameters(), lr=4e-4)
    lc = SelfSupLossConfig()
    for _ in range(60):
        loss, _ = teacher_step_loss(bidirectional_flows(model, img1, img2, 4), img1, img2, lc, use_occlusion=False)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        flow = model(img1, img2, iters=4)[-1]
    learned, zero = _epe(flow, gt, valid)[0], _epe(torch.zeros_like(gt), gt, valid)[0]
    assert learned < 0.5 * zero, (learned, zero)


def test_selfsup_training_end_to_end_evaluates_and_saves_each_step_once(tmp_path, shared_data, monkeypatch):
    """Both stages on real CASME II pairs with a tiny SRFlowNet: weights.pt and metrics.json are written with the
    teacher's and the final test metrics. A stage that ends on an eval_every / ckpt_every step reuses that
    step's test evaluation (teacher_test, final_test) and does not write last.pt again."""
    import json

    import flownet.selfsup as ss
    import flownet.train as ftrain
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.registry import load_srflownet
    from flownet.selfsup import SelfSupConfig, train_selfsup
    from icegan.config import load_config
    tiny = SRFlowNetConfig(feature_layers=(8, 8, 16, 16, 16), context_layers=(8, 8, 16, 16, 32), hidden=16,
                           corr_levels=2, motion_channels=16, flow_head_hidden=16, mask_hidden=16, iters=2)
    model = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in SRFlowNet(tiny).config_dict().items()]
    cfg = load_config(SelfSupConfig, "configs/flow_selfsup.yaml", [
        f"out_dir={tmp_path}", "name=ss", f"data.root={shared_data}", "data.size=64", "data.crop=48",
        "data.n_test=2", "data.n_occ_pairs=2", "train.teacher_steps=2", "train.student_steps=2",
        "train.teacher_minutes=0", "train.student_minutes=0", "train.eval_every=2", "train.ckpt_every=1",
        "train.log_every=1", "train.batch_size=2", "train.iters=2", "train.teacher_iters=2", *model])
    evaluations, saves = [], []
    real_eval, real_save = ftrain.evaluate_model, torch.save

    def counting_save(obj, f, *a, **k):
        if isinstance(obj, dict) and "stage" in obj:
            saves.append((obj["stage"], obj["step"]))
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(ftrain, "evaluate_model", lambda *a, **k: (evaluations.append(1), real_eval(*a, **k))[1])
    monkeypatch.setattr(torch, "save", counting_save)
    rng = {}
    real_start = ftrain.start_run
    monkeypatch.setattr(ftrain, "start_run",
                        lambda c: (real_start(c), rng.setdefault("seeded", torch.get_rng_state()))[0])
    monkeypatch.setattr(ss, "SRFlowNet", lambda c: (rng.setdefault("built", torch.get_rng_state()), SRFlowNet(c))[1])
    res = train_selfsup(cfg, progress=False)
    # the test batches are built without drawing from the global generator: the teacher starts from the seed's weights
    assert torch.equal(rng["seeded"], rng["built"])
    run = tmp_path / "ss"
    assert res["teacher_steps"] == 2 and res["student_steps"] == 2
    assert len(evaluations) == 2           # teacher step 2 (= teacher_test) and student step 2 (= final_test)
    assert saves == [("teacher", 1), ("teacher", 2), ("student", 0), ("student", 1), ("student", 2)]
    saved = json.loads((run / "metrics.json").read_text())
    assert set(saved["final_test"]) == {"EPE", "px1", "px3", "px5", "Fl-all", "WAUC"}
    assert saved["final_test"] != saved["teacher_test"]
    assert load_srflownet(run / "weights.pt").meta["test_metrics_monitor"] == saved["final_test"]


def test_teacher_step_loss_computes_the_images_census_once_and_equals_the_plain_sum(monkeypatch):
    """Over U refinement updates the two images' census transforms are computed once (then one per warped image:
    2 + 2U, was 4U), and the loss and its gradient equal the gamma-weighted sum of teacher_loss per update."""
    import flownet.selfsup as ss
    import flownet.selfsup_losses as sl
    from flownet.regularizers import stage_weights
    from flownet.selfsup import SelfSupLossConfig, teacher_step_loss
    g = torch.Generator().manual_seed(0)
    img1, img2 = smooth_texture(40, 40, seed=1), smooth_texture(40, 40, seed=2)
    img1, img2 = torch.cat([img1, img2]), torch.cat([img2, img1])
    flows = [tuple((torch.randn(2, 2, 40, 40, generator=g) * 0.5).requires_grad_() for _ in range(2))
             for _ in range(3)]
    lc = SelfSupLossConfig()
    calls = []
    real = sl.census_transform

    def counting(img, window=7):
        calls.append(img.shape[0])
        return real(img, window)
    monkeypatch.setattr(sl, "census_transform", counting)
    monkeypatch.setattr(ss, "census_transform", counting)
    for occlusion in (False, True):
        calls.clear()
        loss, parts = teacher_step_loss(flows, img1, img2, lc, use_occlusion=occlusion)
        assert len(calls) == 2 + 2 * 3
        grads = torch.autograd.grad(loss, [t for pair in flows for t in pair])
        occ_f = occ_b = None
        if occlusion:
            occ_f = sl.forward_backward_occlusion(*flows[-1], lc.alpha1, lc.alpha2)
            occ_b = sl.forward_backward_occlusion(flows[-1][1], flows[-1][0], lc.alpha1, lc.alpha2)
        plain = sum(w * sl.teacher_loss(img1, img2, ff, fb, occ_f, occ_b, lc.census_window, lc.eps, lc.q, lc.beta,
                                        lc.smooth_weight)[0]
                    for w, (ff, fb) in zip(stage_weights(3, lc.gamma), flows))
        torch.testing.assert_close(loss, plain)
        for a, b in zip(grads, torch.autograd.grad(plain, [t for pair in flows for t in pair])):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="census1 \\(2, 9, 40, 40\\) is not the 7x7 census of img1"):
        sl.census_distance(img1, img2, 7, census1=torch.zeros(2, 9, 40, 40))


# ------------------------------------------------------------------------- known values (mutation audit)

def test_census_transform_and_distance_known_values():
    """Soft census (module docstring): t = d / sqrt(0.81 + d^2) with d = I(p') - I(p) in grey levels, and the soft
    Hamming distance sum (t1 - t2)^2 / (0.1 + (t1 - t2)^2). One pixel 1 grey level brighter than its zero neighbours:
    its 3x3 census is -1 / sqrt(1.81) for the 8 neighbours, a neighbour's entry towards it +1 / sqrt(1.81)."""
    img = torch.zeros(1, 1, 5, 5)
    img[..., 2, 2] = 1.0 / 255.0
    t = census_transform(img, 3)
    s = 1.0 / math.sqrt(1.81)
    centre = t[0, :, 2, 2]
    torch.testing.assert_close(centre, torch.tensor([-s] * 4 + [0.0] + [-s] * 4))
    assert t[0, 8, 1, 1].item() == pytest.approx(s, rel=1e-6)          # (1, 1)'s bottom-right neighbour is (2, 2)
    d = census_distance(torch.zeros(1, 1, 5, 5), img, 3)
    assert d[0, 0, 2, 2].item() == pytest.approx(8 * (s * s) / (0.1 + s * s), rel=1e-6)
    assert d[0, 0, 1, 1].item() == pytest.approx((s * s) / (0.1 + s * s), rel=1e-6)


def test_to_gray255_uses_rgb_luma_weights():
    """RGB in [0, 1] -> grey 0..255 with ITU-R 601 weights 0.299 R + 0.587 G + 0.114 B."""
    from flownet.selfsup_losses import to_gray255
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    torch.testing.assert_close(to_gray255(red), torch.full((1, 1, 2, 2), 0.299 * 255))
    blue = red.roll(2, dims=1)
    torch.testing.assert_close(to_gray255(blue), torch.full((1, 1, 2, 2), 0.114 * 255))


def test_census_border_mask_band_width():
    """0 on the window // 2 = 2 pixel band of a 5x5 window, 1 inside."""
    m = census_border_mask(7, 9, window=5)
    expected = torch.zeros(1, 1, 7, 9)
    expected[..., 2:5, 2:7] = 1.0
    assert torch.equal(m, expected)


def test_photometric_loss_is_the_interior_mean_of_psi_census():
    """Eq. 3.34 without occlusion maps: each direction is the mean of psi(H) over the pixels inside the census
    border band (3 px for the 7x7 window), here with zero flows."""
    img1, img2 = smooth_texture(20, 20, seed=6), smooth_texture(20, 20, seed=7)
    zero = torch.zeros(1, 2, 20, 20)
    want = sum(float(robust_penalty(census_distance(a, b, 7))[..., 3:-3, 3:-3].mean())
               for a, b in ((img1, img2), (img2, img1)))
    assert float(photometric_loss(img1, img2, zero, zero)) == pytest.approx(want, rel=1e-5)


def test_photometric_loss_is_symmetric_in_the_two_directions():
    """Eq. 3.34 is symmetric: swapping the images, the flows and the occlusion maps gives the same loss; the
    backward term warps I1 with the backward flow."""
    img1, img2 = smooth_texture(24, 24, seed=8), smooth_texture(24, 24, seed=9)
    g = torch.Generator().manual_seed(1)
    ff, fb = torch.randn(1, 2, 24, 24, generator=g), torch.randn(1, 2, 24, 24, generator=g) * 2
    occ_f = (torch.rand(1, 1, 24, 24, generator=g) > 0.7).float()
    occ_b = (torch.rand(1, 1, 24, 24, generator=g) > 0.7).float()
    a = photometric_loss(img1, img2, ff, fb, occ_f, occ_b)
    b = photometric_loss(img2, img1, fb, ff, occ_b, occ_f)
    assert float(a) == pytest.approx(float(b), rel=1e-6)


def test_occlusion_check_is_strict_and_counts_the_backward_flow_magnitude():
    """Eq. 3.32: p is consistent only when |w_f + w^_f|^2 < alpha1 (|w_f|^2 + |w^_f|^2) + alpha2, so equality is
    occluded; the relative term includes |w^_f|^2."""
    h, w = 6, 6
    zero = const_flow(0, 0, h, w)
    at = forward_backward_occlusion(zero, const_flow(0.5, 0, h, w), alpha1=0.0, alpha2=0.25)   # 0.25 >= 0.25
    below = forward_backward_occlusion(zero, const_flow(0.25, 0, h, w), alpha1=0.0, alpha2=0.25)
    assert float(at.min()) == 1.0 and float(below.max()) == 0.0
    # w_f = 0, w_b = (1, 0): |w_f + w^_f|^2 = 1 < 0.6 * (0 + 1) + 0.5
    rel = forward_backward_occlusion(zero, const_flow(1.0, 0, h, w), alpha1=0.6, alpha2=0.5)
    assert float(rel.max()) == 0.0


def test_smoothness_weights_each_direction_by_its_own_image_and_counts_vertical_steps():
    """Eq. 3.35: the forward flow is weighted by I1's edges, the backward flow by I2's; a step in v along y
    counts (|dy w| summed over u and v): 2 / H on a flat image."""
    h, w = 16, 20
    flat = torch.full((1, 1, h, w), 0.5)
    edge = flat.clone()
    edge[..., 9:] = 0.8
    step = torch.zeros(1, 2, h, w)
    step[:, 0, :, 9:] = 2.0
    assert float(smoothness_loss(step, step, flat, edge)) == pytest.approx((2.0 + 2.0 * math.exp(-3.0)) / w, rel=1e-5)
    vstep = torch.zeros(1, 2, h, w)
    vstep[:, 1, 5:, :] = 2.0
    assert float(edge_aware_smoothness(vstep, flat)) == pytest.approx(2.0 / h, rel=1e-6)


def test_smoothness_edge_weight_averages_colour_channels():
    """|dI| is averaged over the colour channels: a grey image copied into RGB weighs the flow as the grey one."""
    img = smooth_texture(16, 16, seed=3)
    flow = torch.randn(1, 2, 16, 16, generator=torch.Generator().manual_seed(2))
    assert float(edge_aware_smoothness(flow, img.expand(1, 3, -1, -1))) == pytest.approx(
        float(edge_aware_smoothness(flow, img)), rel=1e-6)


def test_student_loss_smooths_the_student_flows_and_never_trains_the_teacher():
    """Eq. 3.42: L_smo is the student's flows' (a 2 px step in u: 2 / W per direction on flat images), and the
    teacher flows are targets: no gradient reaches them (Eq. 3.38 and 3.41 alike)."""
    h, w = 12, 16
    flat = torch.full((1, 1, h, w), 0.5)
    teacher = torch.zeros(1, 2, h, w, requires_grad=True)
    student = torch.zeros(1, 2, h, w)
    student[:, 0, :, 8:] = 2.0
    student.requires_grad_(True)
    ones = torch.ones(1, 1, h, w)
    loss, parts = student_loss(teacher, teacher, student, student, ones, ones, flat, flat)
    assert parts["smo"] == pytest.approx(4.0 / w, rel=1e-6)
    loss.backward()
    assert teacher.grad is None and float(student.grad.abs().sum()) > 0
    occ = occlusion_distillation_loss(teacher, teacher, student, student, ones, ones)
    occ.backward()
    assert teacher.grad is None


def test_superpixel_hallucination_draws_up_to_the_maximum_inclusive():
    """n_noisy = (min, max) is inclusive: with (1, 2) over a few draws both 1 and 2 superpixels are filled."""
    img = torch.zeros(1, 1, 8, 8)
    labels = (np.arange(8)[:, None] // 2 * 4 + np.arange(8)[None] // 2)[None]      # 16 blocks of 2 x 2
    rng = np.random.default_rng(0)
    counts = {int(superpixel_hallucination(img, n_noisy=(1, 2), rng=rng, labels=labels)[1].sum()) // 4
              for _ in range(20)}
    assert counts == {1, 2}


# ------------------------------------------------------- real pairs: which pairs, preprocessing, draws

def _casme2(root: Path, clips, colour=None) -> Path:
    """A CASME II layout: clips = [(subject, filename, frame numbers, onset, apex, verified)]; the manifest
    rows are written in the given (unsorted) order. Frames are 48 x 48 BGR: vertical 1-px stripes plus a
    left/right ramp (so horizontal flips show), or one ``colour`` everywhere."""
    import cv2
    c2 = root / "casme2"
    rows = ["subject,filename,onset,apex,verified,note"]
    for k, (sub, name, frames, on, ap, ver) in enumerate(clips):
        clip = c2 / sub / name
        clip.mkdir(parents=True, exist_ok=True)
        for n in frames:
            img = np.zeros((48, 48, 3), np.uint8)
            if colour is None:
                img[:, ::2] = 200
                img += np.linspace(0, 50, 48, dtype=np.uint8)[None, :, None]
                img[:, :, 1] //= 2
                img[0:4, 0:4] = (10 * n + k) % 250
            else:
                img[:] = colour
            cv2.imwrite(str(clip / f"img{n}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 100])
        rows.append(f"{sub},{name},{on},{ap},{ver},")
    (c2 / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def _names(pairs):
    return [(a.parent.name, a.stem, b.stem) for a, b in pairs]


def test_real_pairs_are_consecutive_existing_frames_and_distinct_onset_apex(tmp_path):
    root = _casme2(tmp_path, [("sub01", "EP02", [10, 11, 12, 14], 10, 14, "True"),  # img13 absent: no 12→13
                              ("sub01", "EP01", [5, 6], 5, 5, "True")])              # onset == apex: no pair
    ds = RealFramePairs(root=root, subjects=["sub01"], kinds=("consecutive",))
    assert _names(ds.pairs["consecutive"]) == [("EP01", "img5", "img6"), ("EP02", "img10", "img11"),
                                               ("EP02", "img11", "img12")]
    assert ds.pairs["onset_apex"] == [] and ds.kinds == ("consecutive",) and len(ds) == 3
    only = RealFramePairs(root=root, subjects=["sub01"], kinds=("onset_apex",))
    assert _names(only.pairs["onset_apex"]) == [("EP02", "img10", "img14")] and only.pairs["consecutive"] == []
    # both kinds asked, but no onset→apex pair (onset == apex): only consecutive pairs are drawn
    one = RealFramePairs(root=_casme2(tmp_path / "b", [("sub01", "EP01", [5, 6], 5, 5, "True")]),
                         subjects=["sub01"], onset_apex_prob=1.0, n_items=4)
    assert one.kinds == ("consecutive",) and {one[i]["kind"] for i in range(4)} == {"consecutive"}
    with pytest.raises(ValueError, match="non-empty subset"):
        RealFramePairs(root=root, subjects=["sub01"], kinds=())
    with pytest.raises(ValueError, match=r"\['sub09'\]"):
        RealFramePairs(root=root, subjects=["sub01", "sub09"])


def test_real_pairs_skip_unverified_and_apex_less_rows_and_take_the_first_sorted_clips(tmp_path):
    root = _casme2(tmp_path, [("sub01", "EP03", [1, 2], 1, 2, "True"), ("sub01", "EP01", [1, 2], 1, 2, ""),
                              ("sub01", "EP02", [1, 2, 3], 1, "", "True"), ("sub01", "EP00", [7, 8], 7, 8, " TRUE ")])
    with pytest.warns(UserWarning, match="skipped 2 clip"):
        ds = RealFramePairs(root=root, subjects=["sub01"])
    assert any(s.startswith("sub01/EP01: not verified") for s in ds.skipped)   # an empty verified cell
    assert any(s.startswith("sub01/EP02: no apex") for s in ds.skipped)
    assert _names(ds.pairs["onset_apex"]) == [("EP00", "img7", "img8"), ("EP03", "img1", "img2")]
    assert ("EP02", "img2", "img3") in _names(ds.pairs["consecutive"])     # an apex-less clip keeps its consecutive pairs
    with pytest.warns(UserWarning, match="skipped 2 clip"):                  # EP00, EP01 (skipped), EP02 (no apex)
        first = RealFramePairs(root=root, subjects=["sub01"], max_clips=3)
    assert _names(first.pairs["onset_apex"]) == [("EP00", "img7", "img8")] and len(first.pairs["consecutive"]) == 3


def test_real_pairs_split_side_test_holds_the_held_out_subjects(tmp_path):
    subs = [f"sub{s:02d}" for s in range(1, 8)]
    root = _casme2(tmp_path, [(s, "EP01", [1, 2], 1, 2, "True") for s in subs])
    split = split_subjects(subs, 4, 2026)
    test = RealFramePairs(root=root, split="test")
    assert test.subjects == split["test"] and {p.parent.parent.name for p, _ in test.pairs["onset_apex"]} == set(split["test"])
    assert RealFramePairs(root=root).subjects == split["train"]
    assert RealFramePairs(root=root, split="test", n_test=2, split_seed=5).subjects == split_subjects(subs, 2, 5)["test"]


def test_real_pair_items_are_the_documented_grey_resize_and_flip_both_frames_alike(tmp_path):
    import cv2
    root = _casme2(tmp_path, [("sub01", "EP01", [1, 2, 3], 1, 3, "True")])
    ds = RealFramePairs(root=root, subjects=["sub01"], size=16, flip=False)
    p = ds.pairs["consecutive"][0][0]
    want = cv2.cvtColor(cv2.resize(cv2.imread(str(p)), (16, 16), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    assert np.array_equal(ds.frame(p), want)
    it = next(ds[i] for i in range(len(ds)) if ds[i]["path1"] == str(p))
    assert torch.allclose(it["img1"][0], torch.from_numpy(want).float() / 255.0)
    # BGR (255, 0, 0) is pure blue: luma 0.114 * 255 = 29
    blue = RealFramePairs(root=_casme2(tmp_path / "b", [("sub01", "EP01", [1, 2], 1, 2, "True")], colour=(255, 0, 0)),
                          subjects=["sub01"], size=16)
    assert abs(int(np.median(blue.frame(blue.pairs["consecutive"][0][0]))) - 29) <= 3
    # onset_apex_prob 1 / 0 draws one kind only; flips (about half) mirror both frames left-right
    assert {RealFramePairs(root=root, subjects=["sub01"], onset_apex_prob=q, n_items=12)[i]["kind"]
            for q in (1.0,) for i in range(12)} == {"onset_apex"}
    assert {RealFramePairs(root=root, subjects=["sub01"], onset_apex_prob=0.0, n_items=12)[i]["kind"]
            for i in range(12)} == {"consecutive"}
    fl = RealFramePairs(root=root, subjects=["sub01"], size=16, flip=True, n_items=24)
    n_flipped = 0
    for i in range(24):
        it = fl[i]
        a = fl.frame(Path(it["path1"])) / 255.0
        b = fl.frame(Path(it["path2"])) / 255.0
        got1, got2 = it["img1"][0].numpy(), it["img2"][0].numpy()
        if np.allclose(got1, a[:, ::-1]) and np.allclose(got2, b[:, ::-1]):
            n_flipped += 1
        else:
            assert np.allclose(got1, a) and np.allclose(got2, b)
    assert 4 <= n_flipped <= 20
    with pytest.raises(IndexError):
        fl[24]


def test_real_pair_crops_may_be_the_whole_frame_and_are_the_same_window_of_both(tmp_path):
    root = _casme2(tmp_path, [("sub01", "EP01", [1, 2, 3], 1, 3, "True")])
    whole = RealFramePairs(root=root, subjects=["sub01"], size=16, crop=16, flip=False)
    it = whole[0]
    assert torch.allclose(it["img1"][0], torch.from_numpy(whole.frame(Path(it["path1"]))).float() / 255.0)
    ds = RealFramePairs(root=root, subjects=["sub01"], size=16, crop=15, flip=False, n_items=40)
    corners = set()
    for i in range(40):
        it = ds[i]
        a = torch.from_numpy(ds.frame(Path(it["path1"]))).float() / 255.0
        b = torch.from_numpy(ds.frame(Path(it["path2"]))).float() / 255.0
        pos = [(y, x) for y in (0, 1) for x in (0, 1) if torch.equal(it["img1"][0], a[y:y + 15, x:x + 15])]
        assert pos and any(torch.equal(it["img2"][0], b[y:y + 15, x:x + 15]) for y, x in pos)
        corners.update(pos)
    assert (1, 1) in corners        # the crop reaches the last position (size - crop)


# ------------------------------------------------------- self-supervised trainer helpers (mutation audit)

class _UpdateStub(torch.nn.Module):
    """A stand-in SRFlowNet: update i's flow is (i + 1) * (a - b) in both channels (so forward and backward differ
    and show which image came first); records the iters it was asked for and its training mode."""
    def __init__(self, iters=3):
        super().__init__()
        from types import SimpleNamespace
        self.config, self.calls = SimpleNamespace(iters=iters), []

    def forward(self, a, b, iters=None):
        self.calls.append((iters, self.training))
        d = (a - b).expand(-1, 2, -1, -1) * 3.0
        return [(i + 1) * d for i in range(iters)]


def test_bidirectional_flows_are_img1_to_img2_then_img2_to_img1():
    from flownet.selfsup import bidirectional_flows
    img1, img2 = smooth_texture(16, 16, seed=1), smooth_texture(16, 16, seed=2)
    out = bidirectional_flows(_UpdateStub(), img1, img2, 2)
    assert len(out) == 2
    for i, (ff, fb) in enumerate(out):
        assert torch.allclose(ff, (i + 1) * 3.0 * (img1 - img2).expand(-1, 2, -1, -1))
        assert torch.allclose(fb, -ff)


def test_random_crops_cut_the_same_window_of_every_tensor_and_reach_the_last_position():
    from flownet.selfsup import random_crops
    h, w = 6, 9
    pos = (torch.arange(h)[:, None] * 100 + torch.arange(w)[None, :]).float()[None, None].repeat(64, 1, 1, 1)
    other = pos * 2.0
    a, b = random_crops([pos, other], 4, 0, 0)
    assert a.shape == (64, 1, 4, 4) and torch.equal(b, a * 2.0)
    ys, xs = (a[:, 0, 0, 0] // 100).long(), (a[:, 0, 0, 0] % 100).long()
    for k in range(64):
        assert torch.equal(a[k, 0], pos[0, 0, ys[k]:ys[k] + 4, xs[k]:xs[k] + 4])
    assert set(ys.tolist()) == {0, 1, 2} and set(xs.tolist()) == set(range(6))    # 0 .. size - crop
    same = random_crops([pos], 0, 0, 0)[0]
    assert same is pos
    with pytest.raises(ValueError, match="differ in batch or size"):
        random_crops([pos, pos[:, :, :, :8]], 4, 0, 0)


def test_teacher_targets_and_step_loss_check_each_direction_against_the_other():
    from flownet.selfsup import SelfSupLossConfig, teacher_step_loss, teacher_targets
    g = torch.Generator().manual_seed(3)
    lc = SelfSupLossConfig()
    img1, img2 = smooth_texture(24, 24, seed=3), smooth_texture(24, 24, seed=4)
    ff, fb = torch.randn(1, 2, 24, 24, generator=g) * 1.5, torch.randn(1, 2, 24, 24, generator=g) * 0.5
    occ_f = forward_backward_occlusion(ff, fb, lc.alpha1, lc.alpha2)
    occ_b = forward_backward_occlusion(fb, ff, lc.alpha1, lc.alpha2)
    assert not torch.equal(occ_f, occ_b)

    class Fixed(torch.nn.Module):
        def forward(self, a, b, iters=None):
            return [torch.zeros(2, 2, 24, 24), torch.cat([ff, fb])]
    tg = teacher_targets(Fixed(), img1, img2, lc, 2)
    assert torch.equal(tg["flow_f"], ff) and torch.equal(tg["flow_b"], fb)
    assert torch.equal(tg["conf_f"], 1.0 - occ_f) and torch.equal(tg["conf_b"], 1.0 - occ_b)
    _, parts = teacher_step_loss([(ff * 0, fb * 0), (ff, fb)], img1, img2, lc, use_occlusion=True)
    assert parts["occ_f"] == pytest.approx(float(occ_f.mean())) and parts["occ_b"] == pytest.approx(float(occ_b.mean()))


def test_student_step_loss_is_the_gamma_weighted_sum_over_updates():
    from flownet.regularizers import stage_weights
    from flownet.selfsup import SelfSupLossConfig, student_step_loss
    g = torch.Generator().manual_seed(5)
    lc = SelfSupLossConfig(gamma=0.5)
    img1, img2 = smooth_texture(20, 20, seed=5), smooth_texture(20, 20, seed=6)
    tg = {"flow_f": torch.randn(1, 2, 20, 20, generator=g), "flow_b": torch.randn(1, 2, 20, 20, generator=g),
          "conf_f": (torch.rand(1, 1, 20, 20, generator=g) > 0.3).float(),
          "conf_b": (torch.rand(1, 1, 20, 20, generator=g) > 0.7).float()}
    flows = [(torch.randn(1, 2, 20, 20, generator=g) * s, torch.randn(1, 2, 20, 20, generator=g)) for s in (3.0, 0.1)]
    loss, parts = student_step_loss(flows, tg, img1, img2, lc)
    want = sum(w * student_loss(tg["flow_f"], tg["flow_b"], ff, fb, tg["conf_f"], tg["conf_b"], img1, img2, lc.eps,
                                lc.q, lc.beta, lc.smooth_weight)[0]
               for w, (ff, fb) in zip(stage_weights(2, 0.5), flows))
    torch.testing.assert_close(loss, want)
    assert parts["conf_f"] == pytest.approx(float(tg["conf_f"].mean()))


def test_occluded_fraction_uses_the_last_update_in_eval_mode_and_restores_training():
    from flownet.selfsup import occluded_fraction
    img1, img2 = smooth_texture(16, 16, seed=7), smooth_texture(16, 16, seed=8)
    model = _UpdateStub(iters=3)
    model.train()
    res = occluded_fraction(model, [(img1, img2)], 0.01, [0.5, 0.05])
    assert model.training and model.calls == [(3, False)]
    from flownet.selfsup import bidirectional_flows
    ff, fb = bidirectional_flows(model, img1, img2, 3)[-1]
    assert res == {str(a2): pytest.approx(float(forward_backward_occlusion(ff, fb, 0.01, a2).mean()))
                   for a2 in (0.5, 0.05)}
    assert res["0.5"] != pytest.approx(float(forward_backward_occlusion(*bidirectional_flows(model, img1, img2, 1)[0],
                                                                       0.01, 0.5).mean()))


def test_train_selfsup_checks_its_settings_and_trains_on_the_train_subjects_only(tmp_path, monkeypatch):
    import flownet.data.real_pairs as rp
    from flownet.selfsup import SelfSupConfig, train_selfsup
    from icegan.config import load_config

    def cfg(*over):
        return load_config(SelfSupConfig, "configs/flow_selfsup.yaml", [f"out_dir={tmp_path}", "name=chk", *over])
    seen = {}

    class Stop(Exception):
        pass

    def recording(**kw):             # stands in for the data: a run stops where it would read frames
        seen.update(kw)
        raise Stop
    monkeypatch.setattr(rp, "RealFramePairs", recording)
    for over, msg in ((["train.teacher_steps=-1"], "train.teacher_steps must be >= 0"),
                      (["train.student_steps=-1"], "train.student_steps must be >= 0"),
                      (["train.teacher_steps=0"], "needs train.init_weights"),
                      (["loss.occ_warmup_frac=1.5"], "occ_warmup_frac"),
                      (["train.noisy_min=3", "train.noisy_max=2"], "noisy_min/noisy_max")):
        with pytest.raises(ValueError, match=msg):
            train_selfsup(cfg(*over), progress=False)
    assert not seen
    with pytest.raises(Stop):
        train_selfsup(cfg("train.threads=1"), progress=False)
    assert seen["split"] == "train" and seen["crop"] == 0      # crops are cut per batch, not by the dataset


def test_confidence_study_scores_the_valid_pixels_only():
    """The stub of the test above with the 2 px error rows (4-9) marked invalid: what is left flagged is the
    0.6 px block (64 pixels) and, when tight, the right column that leaves the image (error 0; 26 valid pixels)."""
    from flownet.selfsup import confidence_study
    h = w = 32
    img = smooth_texture(h, w, seed=7)
    valid = torch.ones(1, h, w, dtype=torch.bool)
    valid[:, 4:10] = False
    batch = {"img1": img, "img2": img, "flow": const_flow(1.0, 0.0, h, w), "valid": valid}
    res = confidence_study(_ErrorBlocksStub(), [batch], [], alpha2_values=(0.5, 0.05))
    n_valid = h * w - 6 * w
    assert math.isclose(res["epe_all"], 64 * 0.6 / n_valid, rel_tol=1e-5)
    loose, tight = res["by_alpha2"]["0.5"], res["by_alpha2"]["0.05"]
    assert loose["occ_synthetic"] == pytest.approx(26 / n_valid) and loose["epe_flagged"] == pytest.approx(0.0, abs=1e-6)
    assert tight["occ_synthetic"] == pytest.approx(90 / n_valid)
    assert tight["epe_flagged"] == pytest.approx(64 * 0.6 / 90, rel=1e-5) and tight["epe_confident"] < 1e-6
    assert tight["occ_real"] is None                            # no real pair: JSON null, not NaN


# ------------------------------------------------------------------- mutation audit: the training loop

class _FakeRealPairs(torch.utils.data.Dataset):
    """Stands in for RealFramePairs: 32 x 32 smooth textures, the second frame moved 1 px right."""

    def __init__(self, **kw):
        self.subjects, self.pairs, self.skipped, self.n = ["sub01"], {"consecutive": [1], "onset_apex": [1]}, [], 64

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        img = smooth_texture(32, 32, seed=i)[0]
        return {"img1": img, "img2": torch.roll(img, 1, dims=-1)}


class _FakeSynthetic(_FakeRealPairs):
    """Stands in for the synthetic facial test pairs (a known 1 px flow, every pixel valid)."""

    def __init__(self, **kw):
        super().__init__()
        self.n = 2

    def __getitem__(self, i):
        return {**super().__getitem__(i), "flow": const_flow(1, 0, 32, 32)[0], "valid": torch.ones(32, 32)}


class _Stop(Exception):
    pass


def _loop_run(tmp_path, monkeypatch, *over, stop_at=None, nan_at=None, rec=None):
    """train_selfsup on fake 32 x 32 pairs with a tiny SRFlowNet (4 teacher steps, 4 student steps, 24 px crops),
    recording what each optimiser step, gradient clip, loss and flow call saw. ``stop_at=(stage, n)``: the n-th loss
    of that stage raises _Stop (an interrupted run, checkpointed every step); ``nan_at``: that loss is NaN; ``rec``: the
    dict to record into."""
    import flownet.data.real_pairs as rp
    import flownet.data.synthetic_face as sf
    import flownet.selfsup as ss
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.selfsup import SelfSupConfig
    from icegan.config import load_config
    tiny = SRFlowNetConfig(feature_layers=(8, 8, 16, 16, 16), context_layers=(8, 8, 16, 16, 32), hidden=16,
                           corr_levels=2, motion_channels=16, flow_head_hidden=16, mask_hidden=16, iters=2)
    model = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in SRFlowNet(tiny).config_dict().items()]
    cfg = load_config(SelfSupConfig, "configs/flow_selfsup.yaml", [
        f"out_dir={tmp_path}", "name=loop", "data.crop=24", "data.n_occ_pairs=1", "train.teacher_steps=4",
        "train.student_steps=4", "train.teacher_minutes=0", "train.student_minutes=0", "train.eval_every=0",
        "train.ckpt_every=1", "train.log_every=1", "train.batch_size=2", "train.iters=2", "train.teacher_iters=3",
        "train.lr=0.002", "train.student_lr=0.0005", "train.weight_decay=0.001", "train.clip=0.7",
        "train.noisy_min=2", "train.noisy_max=3", "loss.occ_warmup_frac=0.5", *model, *over])
    monkeypatch.setattr(rp, "RealFramePairs", _FakeRealPairs)
    monkeypatch.setattr(sf, "SyntheticFaceFlow", _FakeSynthetic)
    rec = {} if rec is None else rec
    rec.update(events=[], steps=[], occ=[], flows=[], noisy=[], student_img2=[])
    stage = {"now": "teacher", "teacher": 0, "student": 0}      # the stage running, each stage's losses

    class RecordingAdamW(torch.optim.AdamW):
        def zero_grad(self, *a, **k):
            rec["events"].append("zero_grad")
            return super().zero_grad(*a, **k)

        def step(self, *a, **k):
            rec["events"].append("step")
            g = self.param_groups[0]
            p = g["params"][0]
            assert p.grad is not None
            rec["steps"].append((stage["now"], g["lr"], g["weight_decay"],
                                 int(self.state[p]["step"]) if p in self.state else 0))
            return super().step(*a, **k)
    real_clip, real_flows = torch.nn.utils.clip_grad_norm_, ss.bidirectional_flows
    real_teacher_loss, real_student_loss, real_noise = ss.teacher_step_loss, ss.student_step_loss, \
        ss.superpixel_hallucination

    def clip(params, max_norm, *a, **k):
        rec["events"].append(("clip", max_norm))
        return real_clip(params, max_norm, *a, **k)

    def flows(m, img1, img2, iters):
        frozen = not any(p.requires_grad for p in m.parameters())       # the stage-2 teacher
        if frozen:
            stage["now"] = "student"
        rec["flows"].append((stage["now"], frozen, m.training, tuple(img1.shape[-2:]), iters))
        if not frozen and stage["now"] == "student" and m.training:
            rec["student_img2"].append(img2)
        return real_flows(m, img1, img2, iters)

    def count(name):
        stage[name] += 1
        if stop_at == (name, stage[name]):
            raise _Stop
        return float("nan") if nan_at == (name, stage[name]) else 1.0

    def teacher_loss(fl, img1, img2, lc, use_occlusion=True, **kw):
        scale = count("teacher")
        rec["occ"].append(use_occlusion)
        loss, parts = real_teacher_loss(fl, img1, img2, lc, use_occlusion=use_occlusion, **kw)
        return loss * scale, parts

    def student_loss(fl, targets, img1, img2, lc, **kw):
        scale = count("student")
        assert torch.equal(img2, rec["noisy"][-1][0])
        loss, parts = real_student_loss(fl, targets, img1, img2, lc, **kw)
        return loss * scale, parts

    def noise(img, segments, n_range, compactness, rng):
        out = real_noise(img, segments, n_range, compactness, rng)
        rec["noisy"].append((out[0], float(out[1].mean()), n_range))
        return out
    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    monkeypatch.setattr(ss, "bidirectional_flows", flows)
    monkeypatch.setattr(ss, "teacher_step_loss", teacher_loss)
    monkeypatch.setattr(ss, "student_step_loss", student_loss)
    monkeypatch.setattr(ss, "superpixel_hallucination", noise)
    res = ss.train_selfsup(cfg, progress=False)
    return res, rec


def test_selfsup_loop_schedules_clips_and_steps_each_stage_and_feeds_each_its_inputs(tmp_path, monkeypatch):
    """Per optimiser step: zeroed gradients, clipping at train.clip, then the step, at the one-cycle rate of the
    budget used before it (teacher peak train.lr, student peak train.student_lr, each stage from step 0), with
    train.weight_decay. Teacher: occlusion masking from occ_warmup_frac of the stage on, crops of data.crop. Student:
    the frozen teacher on whole frames with teacher_iters, the student on crops whose second frame is the
    superpixel-noised one (noisy_min..noisy_max superpixels), its noise fraction logged."""
    from flownet.schedule import LR_FLOOR, one_cycle_lr
    res, rec = _loop_run(tmp_path, monkeypatch)
    assert res["teacher_steps"] == 4 and res["student_steps"] == 4
    assert rec["events"] == ["zero_grad", ("clip", 0.7), "step"] * 8
    want = [(stage, max(one_cycle_lr(peak, k / 4), LR_FLOOR), 0.001, k)
            for stage, peak in (("teacher", 0.002), ("student", 0.0005)) for k in range(4)]
    assert [(s, pytest.approx(lr, rel=1e-9), wd, n) for s, lr, wd, n in rec["steps"]] == want
    assert rec["occ"] == [False, False, True, True]             # budget fractions 0, 1/4 < 0.5 <= 2/4, 3/4
    calls = [f for f in rec["flows"] if f[1] or f[2]]   # not occluded_fraction's (eval mode, the model trained)
    assert calls == [("teacher", False, True, (24, 24), 2)] * 4 + \
        [("student", True, False, (32, 32), 3), ("student", False, True, (24, 24), 2)] * 4
    assert len(rec["noisy"]) == 4 and all(n == (2, 3) for _, _, n in rec["noisy"])
    assert all(torch.equal(a, b) for a, (b, _, _) in zip(rec["student_img2"], rec["noisy"]))
    logged = [h["noise_frac"] for h in res["history_tail"]["student"]]
    assert logged == pytest.approx([f for _, f, _ in rec["noisy"]]) and all(0 < f < 0.5 for f in logged)


def test_selfsup_loop_resumes_mid_stage_with_its_optimiser_and_a_fresh_student_optimiser(tmp_path, monkeypatch):
    """An interrupted teacher stage (last.pt at step 2) resumes at step 3 with its AdamW moments (state step 2) at the
    rate of fraction 2/4; one interrupted before the first student step resumes the student from step 0 with a fresh
    optimiser of the run's weight decay, not the teacher's optimiser."""
    from flownet.schedule import one_cycle_lr
    with pytest.raises(_Stop):
        _loop_run(tmp_path, monkeypatch, stop_at=("teacher", 3))
    rec = {}
    with pytest.raises(_Stop):
        _loop_run(tmp_path, monkeypatch, stop_at=("student", 1), rec=rec)
    assert [s[0] for s in rec["steps"]] == ["teacher"] * 2
    assert [(s[1], s[3]) for s in rec["steps"]] == [(pytest.approx(one_cycle_lr(0.002, k / 4)), k) for k in (2, 3)]
    ck = torch.load(tmp_path / "loop" / "last.pt", weights_only=True)
    assert (ck["stage"], ck["step"]) == ("student", 0)
    res, rec = _loop_run(tmp_path, monkeypatch)
    assert res["teacher_steps"] == 4 and res["student_steps"] == 4
    assert [(s[0], s[2], s[3]) for s in rec["steps"]] == [("student", 0.001, k) for k in range(4)]



def test_selfsup_refuses_a_damaged_checkpoint_naming_it(tmp_path, monkeypatch):
    """A last.pt torch cannot read (cut short by a disk error or a copy) is named with what to do; before, the resume
    died in torch's zip reader."""
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "last.pt").write_bytes(b"PK\x03\x04 not a whole checkpoint")
    with pytest.raises(ValueError, match=r"the checkpoint to resume \(remove it, or set train.resume=false, to train "
                                         rf"afresh\): {re.escape(str(tmp_path / 'loop' / 'last.pt'))} cannot be read"):
        _loop_run(tmp_path, monkeypatch)


def test_selfsup_refuses_another_trainers_checkpoint_or_other_settings_before_writing(tmp_path, monkeypatch):
    """A supervised run's last.pt under this run name (no 'stage') died in a KeyError; one of other model settings
    was refused only after config.yaml had been rewritten with the new settings. Both are now named before anything
    is written."""
    _loop_run(tmp_path, monkeypatch)
    ck_path, config = tmp_path / "loop" / "last.pt", tmp_path / "loop" / "config.yaml"
    ck, before = torch.load(ck_path, weights_only=True), config.read_text()
    torch.save({"model": ck["model"], "optimizer": ck["optimizer"], "step": 3}, ck_path)
    with pytest.raises(ValueError, match=rf"{re.escape(str(ck_path))} has no stage, elapsed_s: another kind of "
                                         r"training .* give this run another name"):
        _loop_run(tmp_path, monkeypatch)
    torch.save(ck, ck_path)
    with pytest.raises(ValueError, match=rf"{re.escape(str(ck_path))}: weights do not match the model this run's "
                                         r"config describes"):
        _loop_run(tmp_path, monkeypatch, "model.hidden=32")
    assert config.read_text() == before

@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_selfsup_loop_stops_at_a_non_finite_loss_before_the_update(tmp_path, monkeypatch, stage):
    rec = {}
    with pytest.raises(FloatingPointError, match=f"{stage} stage: non-finite loss at step 1"):
        _loop_run(tmp_path, monkeypatch, nan_at=(stage, 2), rec=rec)
    assert [s[0] for s in rec["steps"]] == ["teacher"] * (4 if stage == "student" else 1) + \
        ["student"] * (stage == "student")


def test_selfsup_teacher_steps_0_distils_the_init_weights_untrained(tmp_path, monkeypatch):
    """train.teacher_steps=0: no teacher step; teacher.pt holds train.init_weights as they were."""
    from flownet.registry import load_srflownet, save_srflownet
    res, _ = _loop_run(tmp_path / "a", monkeypatch, "train.student_steps=0")
    first = load_srflownet(tmp_path / "a" / "loop" / "weights.pt")
    init = save_srflownet(first, tmp_path / "init.pt", meta={**first.meta, "real_pair_subjects": ["casme2/sub09"]})
    res, rec = _loop_run(tmp_path, monkeypatch, "train.teacher_steps=0", f"train.init_weights={init}")
    assert [s[0] for s in rec["steps"]] == ["student"] * 4 and res["teacher_steps"] == 0
    want, got = load_srflownet(init).state_dict(), load_srflownet(tmp_path / "loop" / "teacher.pt").state_dict()
    assert all(torch.equal(want[k], got[k]) for k in want)
    # the real frames the init weights learned from are recorded beside this run's (sub01, its stand-in pairs')
    assert load_srflownet(tmp_path / "loop" / "weights.pt").meta["real_pair_subjects"] == ["casme2/sub01",
                                                                                           "casme2/sub09"]


@pytest.mark.parametrize("spent", ["teacher", "student"])
def test_selfsup_each_stage_keeps_its_own_wall_time_budget(tmp_path, monkeypatch, spent):
    """A budget of 1e-9 minutes is spent before a stage's first step: that stage makes none (and says so in
    metrics), the other one makes its 4 steps."""
    res, rec = _loop_run(tmp_path, monkeypatch, f"train.{spent}_minutes=1e-9")
    other = {"teacher": "student", "student": "teacher"}[spent]
    assert [s[0] for s in rec["steps"]] == [other] * 4
    assert res[f"{spent}_steps"] == 0 and res[f"{other}_steps"] == 4


def test_selfsup_init_weights_of_another_model_config_are_refused_before_the_run_folder_is_made(tmp_path,
                                                                                               shared_data):
    """train.init_weights saved with other model settings is refused naming the file, before start_run makes the run
    folder and writes its config.yaml."""
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.registry import save_srflownet
    from flownet.selfsup import SelfSupConfig, train_selfsup
    from icegan.config import load_config
    path = save_srflownet(SRFlowNet(SRFlowNetConfig(iters=2, hidden=16)), tmp_path / "other.pt")
    cfg = load_config(SelfSupConfig, "configs/flow_selfsup.yaml", [
        f"out_dir={tmp_path}", "name=ss", f"data.root={shared_data}", f"train.init_weights={path}"])
    with pytest.raises(ValueError, match=rf"^train.init_weights={re.escape(str(path))}: another architecture than "
                                         r"the run's model section: .*\bhidden=16 \(model.hidden: \d+\)"):
        train_selfsup(cfg, progress=False)
    assert not (tmp_path / "ss").exists()
