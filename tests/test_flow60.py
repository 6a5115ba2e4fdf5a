"""Flow fixes of pass 60: classical methods refuse 0-255 frames, flow eval reports the settings that move its score,
refuses --root for generated scenes and says how many per-pair rows its table leaves out; bench/flow_bias.py."""
import json

import pytest
import torch

from flownet.classical import FarnebackEstimator, TVL1Estimator, to_gray_uint8
from flownet.evaluate import evaluate, format_table, load_pairs
from flownet.registry import resolve_precision
from tests._bench import load_bench


def _smooth(h=32, w=32, seed=0):
    """A smooth random grey image (1, 1, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 1, h + 6, w + 6, generator=g), 7, stride=1)
    return (x - x.min()) / (x.max() - x.min())


def _pair(name="p", h=32, w=32, u=1.0):
    img = _smooth(h, w)
    gt = torch.zeros(1, 2, h, w)
    gt[:, 0] = u
    return {"name": name, "img1": img, "img2": torch.roll(img, 1, -1), "flow": gt,
            "valid": torch.ones(1, h, w, dtype=torch.bool)}


# ------------------------------------------------------------------------------------------------ 0-255 frames


@pytest.mark.parametrize("cls", [TVL1Estimator, FarnebackEstimator])
def test_classical_methods_refuse_uint8_frames_as_srflownet_does(cls):
    """uint8 frames were clamped to [0, 1] and scaled: a blank image, exactly zero flow and EPE = |gt| without a
    word. They are refused with SRFlowNet's message (flownet.models.inputs.check_image_batch)."""
    a = (_smooth() * 255).round().to(torch.uint8)
    with pytest.raises(ValueError, match=r"images must be a floating-point image in \[0, 1\], got torch.uint8 "
                                         r"\(divide 0-255 frames by 255 first\)"):
        cls().estimate(a, torch.roll(a, 3, -1))


def test_classical_methods_refuse_float_frames_in_0_255():
    a = _smooth() * 255
    with pytest.raises(ValueError, match=r"images must be in \[0, 1\]: the largest value is 255\.0 .*divide 0-255 "
                                         r"frames by 255"):
        TVL1Estimator().estimate(a, torch.roll(a, 3, -1))
    pair = dict(_pair(), img1=a, img2=torch.roll(a, 1, -1))
    with pytest.raises(ValueError, match=r"the largest value is 255\.0"):
        evaluate("tvl1", pairs=[pair], progress=False)


def test_grey_quantisation_still_accepts_a_hair_above_one():
    """Resampling may overshoot 1 by a rounding step: that is clamped, not refused."""
    img = torch.tensor([-0.2, 0.0, 0.5, 1.0, 1.0 + 1e-3]).view(1, 1, 1, 5)
    assert to_gray_uint8(img).tolist() == [[[0, 0, 128, 255, 255]]]


# ------------------------------------------------------------------------------------------------ flow eval settings


def test_flow_eval_reports_input_size_precision_and_iters():
    """The working size, the precision and the update count change the score (shipped SRFlowNet, Middlebury:
    EPE 0.62 vs 0.24 between input sizes): the result and its table name them."""
    res = evaluate("tvl1", pairs=[_pair()], progress=False, input_size=24)
    assert (res["input_size"], res["precision"], res["iters"]) == ([24, 24], None, None)
    assert "\ntvl1 on synthetic-face, input size 24x24: " in format_table(res)
    native = evaluate("tvl1", pairs=[_pair()], progress=False)
    assert native["input_size"] == "native" and ", input size native: " in format_table(native)
    from flownet.registry import load_srflownet
    shipped = load_srflownet(None).config.iters
    sr = evaluate("srflownet", pairs=[_pair()], progress=False, precision="auto")
    assert (sr["input_size"], sr["precision"], sr["iters"]) == ("native", resolve_precision("auto", "cpu"), shipped)
    assert evaluate("srflownet", pairs=[_pair()], progress=False, iters=1)["iters"] == 1


def test_flow_eval_json_holds_the_settings(tmp_path, capsys):
    from icegan.cli import main
    js = tmp_path / "r.json"
    assert main(["flow", "eval", "--model", "tvl1", "--data", "synthetic-generic", "--size", "16", "--n-pairs", "1",
                 "--input-size", "24", "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert (res["input_size"], res["precision"], res["iters"]) == ([24, 24], None, None)
    assert "input size 24x24" in capsys.readouterr().out


def test_flow_eval_refuses_root_for_generated_scenes():
    """--root was silently ignored for --data synthetic-generic (its scenes are drawn, no file is read)."""
    with pytest.raises(ValueError, match=r"--root applies to --data middlebury, kitti and synthetic-face, not "
                                         r"synthetic-generic .*leave it out, got --root R"):
        load_pairs("synthetic-generic", root="R", size=16, n_pairs=1)
    with pytest.raises(ValueError, match=r"not synthetic-generic"):
        evaluate("tvl1", data="synthetic-generic", root="R", size=16, n_pairs=1, progress=False)
    assert len(load_pairs("synthetic-generic", size=16, n_pairs=1)) == 1


def test_flow_eval_table_says_how_many_pair_rows_it_leaves_out():
    metrics = {"EPE": 1.0, "px1": 0.5, "px3": 0.9, "px5": 1.0, "Fl-all": 0.0, "WAUC": 50.0}
    for n in (20, 21):
        res = {"model": "m", "data": "d", "n_pairs": n, "mean": metrics, "pairs_per_s": 1.0, "seconds_per_pair": 1.0,
               "image_size": [4, 4], "per_pair": [{"name": f"pair{i:02d}", **metrics, "n_valid": 16} for i in range(n)]}
        table = format_table(res)
        left = "21 per-pair rows left out (the table lists them up to 20 pairs; --json holds every one)"
        assert (left in table) == (n == 21), n
        assert table.count("| pair") == (21 if n == 20 else 1)        # the header line starts '| pair |' too


# ------------------------------------------------------------------------------------------------ bench/flow_bias.py


def test_flow_bias_bench_prints_a_row_per_method_and_shift(shared_data, capsys):
    """One real onset crop, tiny settings: TV-L1 gives no flow on identical frames and recovers rigid shifts."""
    bench = load_bench("flow_bias")
    assert bench.main(["--root", str(shared_data), "--clips", "1", "--size", "64", "--shifts", "1", "3",
                       "--methods", "tvl1", "srflownet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| method | identical frames: mean abs flow (px) | u at 1 px | u at 3 px |"
    rows = {line.split(" | ")[0][2:]: [float(v) for v in line.strip(" |").split(" | ")[1:]]
            for line in lines[2:4]}
    assert set(rows) == {"TV-L1", "SRFlowNet"} and all(len(v) == 3 for v in rows.values())
    identical, u1, u3 = rows["TV-L1"]
    assert identical < 1e-3 and abs(u1 - 1) < 0.5 and abs(u3 - 3) < 0.5, rows
