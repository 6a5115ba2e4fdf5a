"""Working resolution of a flow estimator (flownet.resolution) and the main job's flow.input_size."""
import numpy as np
import pytest
import torch
from _textures import smooth_texture

import flownet
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import save_srflownet
from flownet.resolution import ResizedEstimator, resize_flow, training_size


def _texture(size, seed=0, pad=8):
    """(1, 1, size + 2 pad, size + 2 pad): ``pad`` px of room on each side for the shifted windows the tests cut."""
    return smooth_texture(1, size + 2 * pad, size + 2 * pad, seed)


def test_resize_flow_rescales_vectors_to_the_new_grid():
    flow = torch.zeros(2, 2, 16, 24)
    flow[:, 0], flow[:, 1] = 1.5, -0.5
    up = resize_flow(flow, (32, 72))                       # 2x in height, 3x in width
    torch.testing.assert_close(up[:, 0], torch.full((2, 32, 72), 4.5))
    torch.testing.assert_close(up[:, 1], torch.full((2, 32, 72), -1.0))
    back = resize_flow(up, (16, 24))
    torch.testing.assert_close(back, flow)
    assert resize_flow(flow, (16, 24)) is flow
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        resize_flow(torch.zeros(1, 3, 4, 4), (8, 8))


class _Recorder:
    """A stand-in estimator: remembers the input size and returns 1 px of u on its own grid."""

    def __init__(self):
        self.seen, self.device = [], "cpu"

    def estimate(self, a, b):
        self.seen.append(tuple(a.shape[-2:]))
        out = torch.zeros(a.shape[0], 2, *a.shape[-2:])
        out[:, 0] = 1.0
        return out


def test_resized_estimator_runs_base_at_working_size_and_returns_input_pixels():
    base = _Recorder()
    est = ResizedEstimator(base, 128)
    f = est.estimate(torch.rand(3, 1, 64, 64), torch.rand(3, 1, 64, 64))
    assert base.seen == [(128, 128)] and f.shape == (3, 2, 64, 64)
    torch.testing.assert_close(f[:, 0], torch.full((3, 64, 64), 0.5))     # 1 px at 128 = 0.5 px at 64
    est.device = "meta"                                                      # attributes reach the base
    assert base.device == "meta" and est.device == "meta"
    with pytest.raises(ValueError, match="at least 8"):
        ResizedEstimator(base, 4)


def test_resized_tvl1_recovers_a_known_shift_in_input_pixels():
    """img2 = img1 moved 2 px right; TV-L1 run at twice the size must still report u = 2 input pixels."""
    big = _texture(64, seed=3)
    img1, img2 = big[..., 8:72, 8:72], big[..., 8:72, 6:70]
    est = ResizedEstimator(flownet.get_estimator("tvl1"), 128)
    f = est.estimate(img1, img2)[0, :, 12:-12, 12:-12]
    assert abs(float(f[0].median()) - 2.0) < 0.2 and abs(float(f[1].median())) < 0.2


def test_resized_forward_keeps_gradients_and_training_size_reads_meta(tmp_path):
    torch.manual_seed(0)
    cfg = SRFlowNetConfig(feature_layers=(8, 8, 16, 16, 16), context_layers=(8, 8, 16, 16, 32), hidden=16,
                          corr_levels=2, motion_channels=16, flow_head_hidden=16, mask_hidden=16, iters=1)
    w = save_srflownet(SRFlowNet(cfg), tmp_path / "w.pt", meta={"size": 48})
    base = flownet.get_estimator("srflownet", weights=w)
    assert training_size(base) == 48 and training_size(flownet.get_estimator("tvl1")) is None
    est = ResizedEstimator(base, training_size(base))
    img1 = torch.rand(1, 1, 32, 32, requires_grad=True)
    flow = est.forward(img1, torch.rand(1, 1, 32, 32))
    assert flow.shape == (1, 2, 32, 32)
    flow.abs().mean().backward()
    assert img1.grad is not None and img1.grad.abs().sum() > 0
    assert est.model is base.model


def test_main_job_flow_input_size(tmp_path):
    from icegan.config import ConfigError
    from icegan.pipeline import build_flow, load_main_config
    torch.manual_seed(0)
    cfg = SRFlowNetConfig(feature_layers=(8, 8, 16, 16, 16), context_layers=(8, 8, 16, 16, 32), hidden=16,
                          corr_levels=2, motion_channels=16, flow_head_hidden=16, mask_hidden=16, iters=1)
    w = str(save_srflownet(SRFlowNet(cfg), tmp_path / "w.pt", meta={"size": 128}))
    dev = torch.device("cpu")

    def flow(*o):
        return build_flow(load_main_config(None, ["data.img_size=64", f"flow.weights={w}", *o]), dev)
    auto = flow()                                            # the weights' training size
    assert isinstance(auto, ResizedEstimator) and auto.size == (128, 128)
    assert not isinstance(flow("flow.input_size=native"), ResizedEstimator)
    assert flow("flow.input_size=96").size == (96, 96)
    assert not isinstance(flow("flow.input_size=64"), ResizedEstimator)   # = the image size: no wrapper
    tv = build_flow(load_main_config(None, ["data.img_size=64", "flow.method=tvl1", "gan.joint=false"]), dev)
    assert not isinstance(tv, ResizedEstimator)              # classical: native unless told
    with pytest.raises(ConfigError, match="flow.input_size"):
        load_main_config(None, ["flow.input_size=4"])
    with pytest.raises(ConfigError, match="input_size"):
        load_main_config(None, ["flow.input_size=big"])
    # flow.tta reaches the learned estimator inside the resize wrapper, and is refused where it cannot apply
    assert auto.tta == "none" and flow("flow.tta=hflip").tta == "hflip"
    with pytest.raises(ConfigError, match="flow.tta"):
        load_main_config(None, ["flow.method=tvl1", "flow.tta=hflip"])
    with pytest.raises(ConfigError, match="flow.tta"):
        load_main_config(None, ["flow.component=expression", "flow.decompose=learned", "flow.tta=hflip"])


def test_at_input_size_resolves_auto_native_and_ints(tmp_path):
    from flownet.resolution import at_input_size
    tv = flownet.get_estimator("tvl1")
    assert at_input_size(tv, "auto", 64) is tv and at_input_size(tv, "native", 64) is tv
    assert at_input_size(tv, 64, (64, 64)) is tv
    wrapped = at_input_size(tv, 96, (48, 64))
    assert isinstance(wrapped, ResizedEstimator) and wrapped.size == (96, 96)
    cfg = SRFlowNetConfig(feature_layers=(8, 8, 16, 16, 16), context_layers=(8, 8, 16, 16, 32), hidden=16,
                          corr_levels=2, motion_channels=16, flow_head_hidden=16, mask_hidden=16, iters=1)
    sr = flownet.get_estimator("srflownet", weights=save_srflownet(SRFlowNet(cfg), tmp_path / "w.pt",
                                                                   meta={"size": 128}))
    assert at_input_size(sr, "auto", 64).size == (128, 128) and at_input_size(sr, "auto", 128) is sr
    for bad in ("big", 2.5, 4, True):
        with pytest.raises(ValueError, match="input size|at least 8"):
            at_input_size(tv, bad, 64)


def test_cli_flow_run_input_size(tmp_path, capsys):
    from PIL import Image
    from flownet.io import read_flo
    from icegan.cli import main
    big = (_texture(48, seed=5)[0, 0] * 255).byte().numpy()
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(big[8:56, 8:56]).save(a)
    Image.fromarray(big[8:56, 6:54]).save(b)                   # moved 2 px right
    assert main(["flow", "run", str(a), str(b), "--out", str(tmp_path / "f.png"), "--flo", str(tmp_path / "f.flo"),
                 "--model", "tvl1", "--gray", "--input-size", "96"]) == 0
    flow, _ = read_flo(tmp_path / "f.flo")                     # (H, W, 2)
    assert flow.shape == (48, 48, 2) and abs(float(np.median(flow[10:-10, 10:-10, 0])) - 2.0) < 0.3
    capsys.readouterr()
    # a bad value is named with its flag and what it takes (a side below 8 was 'working size must be at least 8
    # pixels', naming no flag), before the images are read (the missing one is not what is reported)
    for bad in ("big", "4"):
        assert main(["flow", "run", str(a), str(tmp_path / "missing.png"), "--out", str(tmp_path / "g.png"),
                     "--input-size", bad]) == 2
        assert f"error: --input-size {bad}: give auto" in capsys.readouterr().err
    assert main(["flow", "eval", "--model", "tvl1", "--input-size", "7"]) == 2
    assert "error: --input-size 7: give auto" in capsys.readouterr().err


def test_evaluate_input_size_scores_at_the_pairs_size():
    """evaluate(input_size=N) computes the flow at N and scores it against the pairs' own ground truth."""
    from flownet.evaluate import evaluate
    big = _texture(48, seed=9)
    flow = torch.zeros(1, 2, 48, 48)
    flow[:, 0] = 2.0
    pair = {"name": "shift", "img1": big[..., 8:56, 8:56], "img2": big[..., 8:56, 6:54], "flow": flow,
            "valid": torch.ones(1, 48, 48, dtype=torch.bool)}
    native = evaluate("tvl1", pairs=[pair], progress=False)
    at96 = evaluate("tvl1", pairs=[pair], progress=False, input_size=96)
    assert native["image_size"] == at96["image_size"] == [48, 48]
    assert at96["mean"]["EPE"] < 0.5 and native["mean"]["EPE"] < 0.5        # both near the true 2 px shift
    rec = _Recorder()                                  # 1 px of u on its own 96-px grid = 0.5 px at 48
    half = evaluate("stand-in", pairs=[pair], estimator=rec, progress=False, input_size=96)
    assert rec.seen[-1] == (96, 96) and abs(half["mean"]["EPE"] - 1.5) < 1e-5


class _Keep:
    def __init__(self):
        self.seen = None

    def estimate(self, a, b):
        self.seen = a
        return torch.zeros(a.shape[0], 2, *a.shape[-2:])

    def decompose(self, a, b):
        return {"total": torch.ones(a.shape[0], 2, *a.shape[-2:]), "affine": torch.zeros(a.shape[0], 2, 3)}


def test_shrinking_a_flow_antialiases():
    """Shrinking a flow averages (antialias): an alternating ±1 u over 24 columns resized to 8 stays below 0.1, not aliased to ±1/3."""
    from flownet.resolution import resize_flow
    f = torch.zeros(1, 2, 4, 24)
    f[:, 0] = torch.tensor([(-1.0) ** x for x in range(24)])
    assert resize_flow(f, (4, 8))[:, 0].abs().max() < 0.1           # not aliased to ±1/3


def test_a_resized_estimator_antialiases_its_input():
    """ResizedEstimator shrinks a 384² striped image to 128² with antialiasing: the base sees nearly flat grey (std < 0.1), not stripes."""
    from flownet.resolution import ResizedEstimator
    base = _Keep()
    img = torch.zeros(1, 1, 384, 384)
    img[..., ::2] = 1.0
    ResizedEstimator(base, 128).estimate(img, img)
    assert float(base.seen.std()) < 0.1


def test_a_resized_decomposition_comes_back_in_input_pixels():
    """ResizedEstimator.decompose returns the parts at the images' size and in their pixels: 1 px at 128 is 0.5 px at 64; the affine part keeps its shape."""
    from flownet.resolution import ResizedEstimator
    out = ResizedEstimator(_Keep(), 128).decompose(torch.rand(2, 1, 64, 64), torch.rand(2, 1, 64, 64))
    torch.testing.assert_close(out["total"], torch.full((2, 2, 64, 64), 0.5))
    assert out["affine"].shape == (2, 2, 3)


# ------------------------------------------------------------------ mutation audit of flownet.resolution

class _Pair:
    """A stand-in estimator that keeps both images it was given and returns 1 px of u on its own grid."""
    name = "pair"

    def __init__(self):
        self.a = self.b = None

    def estimate(self, a, b):
        self.a, self.b = a, b
        out = torch.zeros(a.shape[0], 2, *a.shape[-2:])
        out[:, 0] = 1.0
        return out

    def decompose(self, a, b):
        self.a, self.b = a, b
        return {"total": torch.ones(a.shape[0], 2, *a.shape[-2:]), "note": "affine fit", "rmse": 0.25}


def test_resize_flow_refuses_an_empty_target():
    with pytest.raises(ValueError, match=r"^resize_flow: size must be \(H, W\), two whole numbers >= 1, got \(0, 8\)$"):
        resize_flow(torch.zeros(1, 2, 4, 4), (0, 8))


def test_training_size_reads_a_positive_meta_size_only():
    """meta["size"] = 128.0 (a float from JSON) is 128; 0 or no size is None (classical methods have no model)."""
    from types import SimpleNamespace

    def est(meta):
        return SimpleNamespace(model=SimpleNamespace(meta=meta))
    assert training_size(est({"size": 128.0})) == 128 and training_size(est({"size": 96})) == 96
    assert training_size(est({"size": 0})) is None and training_size(est({})) is None
    assert training_size(SimpleNamespace()) is None


def test_resized_estimator_takes_a_non_square_working_size_in_h_w_order():
    """size=(96, 64) is H=96, W=64: the base sees 96x64 images (img2 too, not img1 twice), the name says @96x64,
    and a working side of exactly 8 pixels is allowed."""
    base = _Pair()
    est = ResizedEstimator(base, (96, 64))
    assert est.size == (96, 64) and est.name == "pair@96x64"
    img1, img2 = torch.zeros(1, 1, 48, 48), torch.ones(1, 1, 48, 48)
    f = est.estimate(img1, img2)
    assert base.a.shape[-2:] == (96, 64) and float(base.a.max()) == 0.0 and float(base.b.min()) == 1.0
    torch.testing.assert_close(f[:, 0], torch.full((1, 48, 48), 0.75))       # 1 px at W=64 is 0.75 px at 48
    assert ResizedEstimator(base, 8).size == (8, 8)


def test_images_already_at_the_working_size_pass_untouched():
    base = _Pair()
    img1, img2 = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    ResizedEstimator(base, 32).estimate(img1, img2)
    assert base.a is img1 and base.b is img2


def test_shrinking_only_the_height_antialiases_the_input():
    """384x128 images with alternating rows shrunk to 128x128: only H shrinks, and that alone must antialias."""
    base = _Pair()
    img = torch.zeros(1, 1, 384, 128)
    img[..., ::2, :] = 1.0
    ResizedEstimator(base, 128).estimate(img, img)
    assert float(base.a.std()) < 0.1


def test_a_resized_estimator_survives_pickling():
    """Fold workers receive estimators pickled; unpickling must not recurse through __getattr__."""
    import pickle
    est = pickle.loads(pickle.dumps(ResizedEstimator(_Pair(), 64)))
    assert est.size == (64, 64) and est.name == "pair@64x64" and isinstance(est.base, _Pair)


def test_a_resized_decomposition_keeps_non_tensor_parts_and_uses_both_images():
    base = _Pair()
    img1, img2 = torch.zeros(1, 1, 64, 64), torch.ones(1, 1, 64, 64)
    out = ResizedEstimator(base, 128).decompose(img1, img2)
    assert out["note"] == "affine fit" and out["rmse"] == 0.25 and out["total"].shape == (1, 2, 64, 64)
    assert float(base.b.min()) == 1.0


def test_at_input_size_wraps_when_the_side_matches_only_one_image_axis():
    """A 48 px working side for 48x64 images is not the image size: the estimator is wrapped. True is no size."""
    from flownet.resolution import at_input_size
    tv = flownet.get_estimator("tvl1")
    wrapped = at_input_size(tv, 48, (48, 64))
    assert isinstance(wrapped, ResizedEstimator) and wrapped.size == (48, 48)
    with pytest.raises(ValueError, match="input size must be 'auto', 'native' or a side in pixels, got True"):
        at_input_size(tv, True, 64)
