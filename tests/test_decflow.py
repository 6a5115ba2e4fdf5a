"""DecFlow (flownet.models.decflow): its loss's targets, weights and masks, the full-resolution affine head flow,
the training crops, the pooled evaluation and resuming a training run."""
from __future__ import annotations

import math
import re

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET

import flownet.models.decflow as decflow
from flownet.models.decflow import DecFlow, DecFlowConfig, decflow_loss, evaluate_decflow, random_crop

TINY = TINY_SRFLOWNET


def _const(u, v, h=2, w=2):
    f = torch.zeros(1, 2, h, w)
    f[:, 0], f[:, 1] = u, v
    return f


def test_decflow_loss_total_target_gamma_and_valid_mask():
    """The total is supervised with gt_head + gt_expr (head u = 1 and expression u = -3: |0 - (-2)| = 2 per pixel,
    not the 4 of their difference); every part weighs its 2 updates by gamma (0.5: 0.5 * L_1 + L_2) and counts the
    valid pixels only (garbage under an invalid pixel changes nothing)."""
    gh, ge = _const(1.0, 0.0), _const(-3.0, 0.0)
    zero = torch.zeros(1, 2, 2, 2)
    out = {"head": [zero, gh.clone()], "expression": [zero, zero], "total": [zero, zero]}
    loss, parts = decflow_loss(out, gh, ge, gamma=0.5)
    # head: 0.5 * 1 + 0 ; expression: 0.5 * 3 + 3 ; total: 0.5 * 2 + 2
    assert parts == pytest.approx({"head": 0.5, "expression": 4.5, "total": 3.0})
    assert float(loss) == pytest.approx(8.0)
    valid = torch.ones(1, 2, 2, dtype=torch.bool)
    valid[0, 1, 1] = False
    gh2, ge2 = gh.clone(), ge.clone()
    gh2[0, :, 1, 1], ge2[0, :, 1, 1] = 50.0, -70.0
    out2 = {"head": [zero, gh2.clone()], "expression": [zero, zero], "total": [zero, zero]}
    out2["head"][1][0, :, 1, 1] = 0.0                   # a wrong head flow, but where nothing is valid
    _, masked = decflow_loss(out2, gh2, ge2, valid, gamma=0.5)
    assert masked == pytest.approx(parts)


def test_evaluate_decflow_pools_valid_pixels_per_part():
    """EPE of head, expression and total against flow_head, flow_expr and flow, pooled over the valid pixels of all
    batches (one valid pixel in the first, three in the second), not a mean of batch means."""
    class Stub(torch.nn.Module):
        def forward(self, img1, img2, iters=None):
            b, _, h, w = img1.shape
            head, expr = torch.zeros(b, 2, h, w), torch.zeros(b, 2, h, w)
            expr[:, 0] = 1.0
            return {"head": [head], "expression": [expr], "total": [head + expr]}

    def batch(n_valid, head_v):
        valid = torch.zeros(1, 2, 2, dtype=torch.bool)
        valid.view(-1)[:n_valid] = True
        fh = _const(0.0, head_v)
        fh[..., ~valid[0]] = 100.0                      # invalid pixels: ignored
        return {"img1": torch.zeros(1, 1, 2, 2), "img2": torch.zeros(1, 1, 2, 2), "flow_head": fh,
                "flow_expr": _const(2.0, 0.0), "flow": fh + _const(2.0, 0.0), "valid": valid}
    m = Stub().train()
    one = evaluate_decflow(m, [batch(1, 3.0)], "cpu")
    assert one == pytest.approx({"EPE_head": 3.0, "EPE_expression": 1.0, "EPE_total": math.sqrt(10.0)})
    pooled = evaluate_decflow(m, [batch(1, 3.0), batch(3, 1.0)], "cpu")
    assert pooled["EPE_head"] == pytest.approx((3.0 + 3 * 1.0) / 4)          # batch means would give 2.0
    assert pooled["EPE_expression"] == pytest.approx(1.0)
    assert m.training


def test_random_crop_draws_every_offset_of_each_axis_and_cuts_all_keys_alike():
    """DecFlow's training crops: every per-pixel tensor of a sample is cut at the same (y, x); y covers 0 .. H - crop
    and x 0 .. W - crop (a 6x9 pair cut to 5: y in {0, 1}, x in 0..4); a crop as high as the pair is allowed."""
    n, h, w = 64, 6, 9
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    code = 100 * ys + xs                                           # the pixel's own (y, x)
    keys = ("img1", "img2", "flow", "flow_head", "flow_expr", "mask", "valid")
    batch = {k: code.expand(n, 1 if k != "valid" else h, h, w).clone() for k in keys}
    batch["valid"] = code.expand(n, h, w).clone()
    batch["subject"] = ["s"] * n
    out = random_crop(batch, 5, 0, 0)
    corners = out["img1"][:, 0, 0, 0]
    for k in keys:
        assert out[k].shape[-2:] == (5, 5)
        flat = out[k].reshape(n, -1)
        assert torch.equal(flat[:, 0], corners), k
        assert torch.equal(out[k][..., -1, -1].reshape(n, -1)[:, 0], corners + 404), k   # a whole 5x5 window
    assert {int(c) // 100 for c in corners} == {0, 1} and {int(c) % 100 for c in corners} == set(range(5))
    assert out["subject"] == batch["subject"]
    full_height = random_crop(batch, 6, 0, 0)       # crop = H: y is always 0
    assert full_height["flow"].shape[-2:] == (6, 6) and (full_height["img1"][:, 0, 0, 0] < 100).all()
    assert random_crop(batch, 0, 0, 0) is batch
    with pytest.raises(ValueError, match="larger than the pairs"):
        random_crop(batch, 7, 0, 0)


def _spy_affine_fits(monkeypatch) -> list:
    """Record every affine head fit DecFlow makes (the 1/8-grid projected head flows, detached) in the list
    returned."""
    fits = []
    real = decflow.affine_project

    def spy(flow):
        proj, m = real(flow)
        fits.append(proj.detach())
        return proj, m
    monkeypatch.setattr(decflow, "affine_project", spy)
    return fits


def test_affine_head_at_full_resolution_is_eight_times_the_grid_fit_at_cell_centres(monkeypatch):
    """With head_model='affine', the full-resolution head flow is the 1/8-grid affine fit scaled by 8 (pixels of the
    full grid), with 1/8 cell i centred on pixel 8 i + 3.5: the mean of the four pixels around each centre equals 8x
    the fitted field at that cell."""
    fits = _spy_affine_fits(monkeypatch)
    torch.manual_seed(0)
    m = DecFlow(DecFlowConfig(**TINY)).eval()
    g = torch.Generator().manual_seed(1)
    img1, img2 = torch.rand(1, 1, 64, 64, generator=g), torch.rand(1, 1, 64, 64, generator=g)
    with torch.no_grad():
        head = m(img1, img2, iters=2)["head"][-1]
    grid = fits[-1]                                                  # (1, 2, 8, 8), 1/8-grid pixels
    assert float(grid.abs().max()) > 1e-3
    centres = torch.nn.functional.avg_pool2d(head[..., 3:-4, 3:-4], 2, stride=8)     # pixels 8i+3, 8i+4
    torch.testing.assert_close(centres, 8.0 * grid[..., :7, :7], atol=1e-4, rtol=1e-4)


def test_train_decflow_resumes_at_the_saved_step(tmp_path, shared_data, capsys):
    """A second run of the same name continues from last.pt: it starts at the saved step, so 1 + 1 steps make two
    optimizer updates in all (AdamW's step count 2), as one 2-step run does."""
    from flownet.models.decflow import DecFlowTrainConfig, DecFlowTrainSection, train_decflow
    from flownet.train import FlowDataConfig

    def cfg(steps):
        return DecFlowTrainConfig(name="d", out_dir=str(tmp_path),
                                  data=FlowDataConfig(root=str(shared_data), size=64, n_train=2, n_test=1),
                                  model=DecFlowConfig(**TINY),
                                  train=DecFlowTrainSection(init_weights=None, batch_size=2, crop=0, steps=steps,
                                                            iters=1, log_every=100, ckpt_every=100))
    train_decflow(cfg(1), progress=False)
    capsys.readouterr()
    train_decflow(cfg(2), progress=False)
    assert "last.pt at step 1" in capsys.readouterr().out
    ck = torch.load(tmp_path / "d" / "last.pt", weights_only=True)
    assert ck["step"] == 2
    assert {int(s["step"]) for s in ck["optimizer"]["state"].values()} == {2}



def test_train_decflow_refuses_a_damaged_checkpoint_naming_it(tmp_path, shared_data):
    """A last.pt torch cannot read is named with what to do, not an error of torch's zip reader."""
    from flownet.models.decflow import DecFlowTrainConfig, DecFlowTrainSection, train_decflow
    from flownet.train import FlowDataConfig
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "last.pt").write_bytes(b"PK\x03\x04 not a whole checkpoint")
    cfg = DecFlowTrainConfig(name="d", out_dir=str(tmp_path),
                             data=FlowDataConfig(root=str(shared_data), size=64, n_train=2, n_test=1),
                             model=DecFlowConfig(**TINY),
                             train=DecFlowTrainSection(init_weights=None, batch_size=2, crop=0, steps=1, iters=1))
    with pytest.raises(ValueError, match=r"the checkpoint to resume \(remove it, or set train.resume=false, to train "
                                         rf"afresh\): {re.escape(str(tmp_path / 'd' / 'last.pt'))} cannot be read"):
        train_decflow(cfg, progress=False)


def test_train_decflow_refuses_other_settings_or_another_trainers_checkpoint_before_writing(tmp_path, shared_data):
    """A last.pt of other model settings, or one another trainer wrote under this run name, is named before the
    run's config.yaml is rewritten (it still says which settings the checkpoint needs)."""
    from flownet.models.decflow import DecFlowTrainConfig, DecFlowTrainSection, train_decflow
    from flownet.train import FlowDataConfig

    def cfg(**model):
        return DecFlowTrainConfig(name="d", out_dir=str(tmp_path),
                                  data=FlowDataConfig(root=str(shared_data), size=64, n_train=2, n_test=1),
                                  model=DecFlowConfig(**{**TINY, **model}),
                                  train=DecFlowTrainSection(init_weights=None, batch_size=2, crop=0, steps=1, iters=1))
    train_decflow(cfg(), progress=False)
    ck_path, config = tmp_path / "d" / "last.pt", tmp_path / "d" / "config.yaml"
    before = config.read_text()
    with pytest.raises(ValueError, match=rf"{re.escape(str(ck_path))}: weights do not match the model this run's "
                                         r"config describes"):
        train_decflow(cfg(hidden=2 * TINY["hidden"]), progress=False)
    assert config.read_text() == before
    ck = torch.load(ck_path, weights_only=True)
    torch.save({"model": ck["model"], "stage": "teacher", "step": 1, "elapsed_s": 0.0}, ck_path)   # selfsup's kind
    with pytest.raises(ValueError, match=rf"{re.escape(str(ck_path))} has no optimizer: another kind of training"):
        train_decflow(cfg(), progress=False)

def test_train_decflow_refuses_a_crop_or_init_weights_it_cannot_use_before_the_run_folder(tmp_path, shared_data):
    """A crop larger than the pairs, and init weights of another SRFlowNet architecture, are refused before the run
    folder is made (before: after it and its config.yaml, the crop only at the first batch)."""
    from flownet.models.decflow import DecFlowTrainConfig, DecFlowTrainSection, train_decflow
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.registry import save_srflownet
    from flownet.train import FlowDataConfig
    other = save_srflownet(SRFlowNet(SRFlowNetConfig(iters=2, hidden=16)), tmp_path / "other.pt")

    def cfg(crop=0, init=None):
        return DecFlowTrainConfig(name="d", out_dir=str(tmp_path / "runs"),
                                  data=FlowDataConfig(root=str(shared_data), size=64, n_train=2, n_test=1),
                                  model=DecFlowConfig(**TINY),
                                  train=DecFlowTrainSection(init_weights=init, batch_size=2, crop=crop, steps=1,
                                                            iters=1))
    with pytest.raises(ValueError, match=r"^train.crop=96 is larger than the pairs \(64x64, data.size\)$"):
        train_decflow(cfg(crop=96), progress=False)
    with pytest.raises(ValueError, match=rf"^train.init_weights={re.escape(str(other))}: SRFlowNet weights: another "
                                         r"architecture than the run's model section: .*\bhidden=16 "
                                         r"\(model\.hidden: \d+\)"):
        train_decflow(cfg(init=str(other)), progress=False)
    assert not (tmp_path / "runs").exists()


def test_decflow_started_from_weights_that_saw_real_frames_records_them(tmp_path, shared_data):
    """DecFlow trained from SRFlowNet weights that learned from real CASME II frames (self-supervised, meta
    real_pair_subjects) has seen that motion too: its weights say so, so that a main job with flow.decompose=learned
    warns (icegan.pipeline.real_motion_seen reads the DecFlow's meta); before, the record was lost."""
    from flownet.models.decflow import DecFlowTrainConfig, DecFlowTrainSection, load_decflow, train_decflow
    from flownet.registry import save_srflownet
    from flownet.train import FlowDataConfig
    init = save_srflownet(DecFlow(DecFlowConfig(**TINY)).base, tmp_path / "selfsup.pt",
                          meta={"real_pair_subjects": ["casme2/sub03"]})
    train_decflow(DecFlowTrainConfig(name="d", out_dir=str(tmp_path),
                                     data=FlowDataConfig(root=str(shared_data), size=64, n_train=2, n_test=1),
                                     model=DecFlowConfig(**TINY),
                                     train=DecFlowTrainSection(init_weights=str(init), batch_size=2, crop=0, steps=1,
                                                               iters=1, log_every=100, ckpt_every=100)),
                  progress=False)
    assert load_decflow(tmp_path / "d" / "weights.pt").meta["real_pair_subjects"] == ["casme2/sub03"]

def test_both_decoders_read_the_total_of_the_previous_update(monkeypatch):
    """Recurrence (module docstring): update k+1 looks up correlations at coords0 + head_k + expr_k and both decoders
    receive that total (after one update: the projected head plus the expression decoder's first step); the head
    decoder keeps a GRU state of its own (supplement Sec. 2.2: two independent decoders)."""
    fits = _spy_affine_fits(monkeypatch)
    torch.manual_seed(0)
    m = DecFlow(DecFlowConfig(**TINY)).eval()
    totals, steps, hidden_in, hidden_out = [], [], [], []

    def before(mod, args):                                # (hidden, context, corr, total)
        totals.append(args[3])
        hidden_in.append(args[0])

    def after(mod, args, out):                            # (hidden, flow step)
        steps.append(out[1])
        hidden_out.append(out[0])
    for block in (m.head_update, m.base.raft.update_block):
        block.register_forward_pre_hook(before)
        block.register_forward_hook(after)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        m(torch.rand(1, 1, 64, 64, generator=g), torch.rand(1, 1, 64, 64, generator=g), iters=2)
    # calls in order: head decoder, expression decoder (update 1), head decoder, expression decoder (update 2)
    assert len(totals) == 4 and float(totals[0].abs().max()) == 0.0 and float(fits[0].abs().max()) > 1e-3
    for t in totals[2:]:
        torch.testing.assert_close(t, fits[0] + steps[1])
    # each decoder carries its own GRU state: update 2 starts from that decoder's own update-1 state
    torch.testing.assert_close(hidden_in[2], hidden_out[0])
    torch.testing.assert_close(hidden_in[3], hidden_out[1])
    assert not torch.allclose(hidden_out[0], hidden_out[1])


def test_init_from_srflownet_zeroes_the_head_output_layer_even_with_a_trained_bias():
    """The head decoder starts as SRFlowNet's update block with a zero output layer, weight and bias: with a non-zero
    flow-head bias in the SRFlowNet (as trained weights have), the initial head flow is still exactly 0."""
    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    torch.manual_seed(0)
    sr = SRFlowNet(SRFlowNetConfig(**TINY)).eval()
    with torch.no_grad():
        sr.raft.update_block.flow_head.conv2.bias.fill_(0.3)
    m = DecFlow(DecFlowConfig(**TINY)).init_from_srflownet(sr).eval()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        out = m(torch.rand(1, 1, 64, 64, generator=g), torch.rand(1, 1, 64, 64, generator=g), iters=2)
    assert float(out["head"][-1].abs().max()) == 0.0
    torch.testing.assert_close(m.base.raft.update_block.flow_head.conv2.bias, torch.full((2,), 0.3))
