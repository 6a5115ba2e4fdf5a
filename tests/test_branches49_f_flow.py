"""Branches of flownet that no other test takes: RANSAC decomposition on a face region the caller gives, the input
gradient that the depth-wise convolution skips for a frozen input, the census border mask of an image no wider than
the window, the missing pinned-weights message when the folder of the file already exists (no ``mkdir``), a ptlflow
backbone with bgr=false (RGB fed as given) and the alpha2 study command without --json (printed, no file)."""
import torch
import torch.nn.functional as F


class _FixedFlow:
    """A base estimator whose total flow is ``flow`` whatever the images."""

    def __init__(self, flow):
        self.flow = flow

    def estimate(self, img1, img2):
        return self.flow.clone()


def test_ransac_decompose_fits_the_head_motion_on_the_region_given():
    """Left three quarters move 1 px, the right quarter 3 px: the default (central) region's head motion is the
    1 px shift, a region on the right quarter gives the 3 px one."""
    from flownet.decompose import RansacDecomposer
    flow = torch.zeros(1, 2, 32, 32)
    flow[:, 0] = 1.0
    flow[:, 0, :, 24:] = 3.0
    dec = RansacDecomposer(_FixedFlow(flow), n_points=200)
    img = torch.zeros(1, 1, 32, 32)
    default = dec.decompose(img, img)
    assert torch.allclose(default["head"][:, 0], torch.ones(1, 32, 32), atol=1e-4)
    region = torch.zeros(32, 32, dtype=torch.bool)
    region[:, 24:] = True
    right = dec.decompose(img, img, region=region)
    assert torch.allclose(right["head"][:, 0], torch.full((1, 32, 32), 3.0), atol=1e-4)
    assert torch.allclose(right["expression"][:, 0, :, 24:], torch.zeros(1, 32, 8), atol=1e-4)


def test_depthwise_conv_of_a_frozen_input_computes_only_the_weight_gradient(monkeypatch):
    """The backward of a frozen input (images, not a layer's output) runs one convolution, the weight gradient's,
    equal to autograd's of F.conv2d; the input gradient's is skipped."""
    from flownet.models.srflownet import depthwise_conv
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 9)
    w = torch.randn(3, 1, 5, 5, requires_grad=True)
    ref = w.detach().clone().requires_grad_()
    out = depthwise_conv(x, w)
    calls = []
    real = F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda *a, **kw: calls.append(a[0].shape) or real(*a, **kw))
    out.square().sum().backward()
    monkeypatch.undo()
    assert len(calls) == 1 and x.grad is None
    real(x, ref, padding=2, groups=3).square().sum().backward()
    assert torch.allclose(w.grad, ref.grad, rtol=1e-4, atol=1e-3)


def test_census_border_mask_of_an_image_no_wider_than_the_window_is_all_zero():
    from flownet.selfsup_losses import census_border_mask
    for h, w in ((6, 20), (20, 6), (1, 1), (3, 40)):
        m = census_border_mask(h, w, window=7)
        assert m.shape == (1, 1, h, w) and not m.any()
    m = census_border_mask(7, 9, window=7)
    assert m.sum() == 3 and m[0, 0, 3, 3:6].eq(1).all()


def test_missing_pinned_weights_in_an_existing_folder_get_the_git_show_command_without_mkdir(tmp_path, monkeypatch):
    import pytest

    from flownet.train import init_weights_file
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        init_weights_file("runs/srflownet_facial_0abdbed.pt")
    msg = str(e.value)
    assert ("`git show 0abdbed:flownet/weights/srflownet_facial.pt > runs/srflownet_facial_0abdbed.pt`" in msg
            and "mkdir" not in msg), msg


class _SeeingModel(torch.nn.Module):
    """A ptlflow-like stand-in: records the images it is given, returns zero flows (B, 1, 2, H, W)."""
    output_stride = 8

    def forward(self, inputs):
        self.seen = inputs["images"].clone()
        x = inputs["images"]
        return {"flows": torch.zeros(x.shape[0], 1, 2, *x.shape[-2:])}


def test_a_ptlflow_backbone_with_bgr_false_feeds_rgb_as_given():
    from flownet.models.backbones import PtlflowBackbone, PtlflowConfig
    rgb = torch.rand(1, 3, 16, 16)
    inner = _SeeingModel()
    PtlflowBackbone(inner, PtlflowConfig(name="standin", bgr=False)).eval()(rgb, rgb)
    torch.testing.assert_close(inner.seen[0, 0], rgb[0])
    PtlflowBackbone(inner, PtlflowConfig(name="standin", bgr=True)).eval()(rgb, rgb)
    torch.testing.assert_close(inner.seen[0, 0], rgb[0].flip(0))


def test_alpha2_study_without_json_prints_each_study_and_writes_no_file(tmp_path, shared_data, monkeypatch, capsys):
    import json

    from _flow_sizes import MAIN_JOB_SRFLOWNET

    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
    from flownet.registry import save_srflownet
    from flownet.selfsup import _main
    torch.manual_seed(0)
    tiny = save_srflownet(SRFlowNet(SRFlowNetConfig(**MAIN_JOB_SRFLOWNET, iters=2)), tmp_path / "tiny.pt")
    monkeypatch.setenv("ICEGAN_SHARED_DATA", str(shared_data))
    monkeypatch.chdir(tmp_path)
    assert _main(["--alpha2-study", str(tiny), "--alpha2", "0.5", "--n-synthetic", "2", "--n-real", "1"]) == 0
    name, study = capsys.readouterr().out.strip().split(" ", 1)
    assert name == str(tiny) and list(json.loads(study)["by_alpha2"]) == ["0.5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt"]
