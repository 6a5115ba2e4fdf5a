"""`icegan flow run` and its pictures (58th audit): the --key disc's rim has the colour of a vector of max_flow in the
flow picture (not the ~71% colour of a key normalised by its corners); the frames are read grey for networks whose
weights were trained on grey crops (the shipped ones: flow eval reads grey too) and for the classical methods, colour
for torchvision / ptlflow checkpoints and for a custom network whose first convolution takes 3 channels; weights
trained here record the frames' channels (meta "gray"); a 32-bit float TIFF frame is refused naming the file and what
to do. Frames are tiny pictures written here; the shipped weights are run on 64x64 pairs only."""
from __future__ import annotations

import numpy as np
import pytest
import torch


def _run(args: list) -> int:
    from icegan.cli import main
    return main(["flow", "run", *map(str, args)])


def _colour_pair(tmp_path, h: int = 64, w: int = 64):
    """Two colour PNGs (smooth random texture, channels unlike each other), the second shifted 2 px right."""
    import cv2
    rng = np.random.default_rng(3)
    small = rng.random((h // 8, w // 8, 3)).astype(np.float32)
    img = (np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1) * 255).astype(np.uint8)
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    cv2.imwrite(str(one), img)
    cv2.imwrite(str(two), np.roll(img, 2, axis=1))
    return one, two


# --------------------------------------------------------------------------------------------- 1: the --key disc

def test_flow_key_rim_has_the_picture_colour_of_a_vector_of_max_flow(tmp_path, monkeypatch):
    """The key drawn for max_flow = 4 px: its pixel at the right rim (flow (+4, 0)) has the colour flow_to_color
    gives a (+4, 0) vector with max_flow 4 (the square field's corners, 4·√2 px, made the rim ~71% colour)."""
    import matplotlib.axes

    from flownet.io import flow_to_color, save_flow_key
    shown = []
    real = matplotlib.axes.Axes.imshow
    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", lambda self, img, *a, **k: (shown.append(img.copy()),
                                                                                     real(self, img, *a, **k))[1])
    save_flow_key(tmp_path / "key.png", 4.0, size=161)
    assert (tmp_path / "key.png").is_file() and len(shown) == 1
    key = shown[0]                                          # (161, 161, 3) uint8, centre (80, 80), radius 80
    want = flow_to_color(torch.tensor([[[4.0]], [[0.0]]]), 4.0)[:, 0, 0].tolist()
    assert key[80, 160].tolist() == want
    half = flow_to_color(torch.tensor([[[2.0]], [[0.0]]]), 4.0)[:, 0, 0].tolist()
    assert key[80, 120].tolist() == half                   # halfway out: the colour of 2 px
    assert key[0, 0].tolist() == [255, 255, 255]            # outside the disc: white


# ------------------------------------------------------------------------ 2: the channels the network was trained on

def test_trained_on_grey_says_which_frames_each_estimator_takes(tmp_path):
    """Shipped srflownet / liteflownet2 and DecFlow weights: grey (their training crops); the classical methods:
    grey (they work on grey, and flow eval reads grey); weights recording meta gray=False: colour; a plain torchvision
    RAFT state dict: colour; wrappers (ResizedEstimator, RansacDecomposer) are looked through."""
    import flownet
    from flownet.decompose import get_decomposer
    from flownet.registry import build_backbone, save_weights, trained_on_grey
    from flownet.resolution import at_input_size
    for name in ("srflownet", "liteflownet2", "tvl1", "farneback"):
        assert trained_on_grey(flownet.get_estimator(name)) is True, name
    assert trained_on_grey(get_decomposer("learned")) is True
    assert trained_on_grey(at_input_size(flownet.get_estimator("srflownet"), 32, (64, 64))) is True
    model = build_backbone("liteflownet2")
    save_weights(model, tmp_path / "colour.pt", meta={"size": 128, "gray": False})
    colour = flownet.get_estimator("liteflownet2", weights=tmp_path / "colour.pt")
    assert trained_on_grey(colour) is False
    assert trained_on_grey(get_decomposer("ransac", base=at_input_size(colour, 32, (64, 64)))) is False
    raft = build_backbone("raft_small")
    torch.save(raft.raft.state_dict(), tmp_path / "tv_raft.pth")          # a torchvision RAFT release file
    assert trained_on_grey(flownet.get_estimator("raft_small", weights=tmp_path / "tv_raft.pth")) is False


def test_flow_run_gives_shipped_srflownet_the_grey_frames_it_was_trained_on(tmp_path, capsys):
    """Colour frames: flow run with the shipped SRFlowNet writes the flow of the grey frames (as with --gray, and as
    flow eval reads Middlebury), not the flow of the RGB frames (RubberWhale EPE 2.05 against 1.77 grey)."""
    from flownet.io import read_flo
    one, two = _colour_pair(tmp_path)
    assert _run([one, two, "--out", tmp_path / "c.png", "--flo", tmp_path / "c.flo"]) == 0
    assert _run([one, two, "--out", tmp_path / "g.png", "--flo", tmp_path / "g.flo", "--gray"]) == 0
    colour, grey = read_flo(tmp_path / "c.flo")[0], read_flo(tmp_path / "g.flo")[0]
    assert np.array_equal(colour, grey)
    capsys.readouterr()


def test_flow_run_reads_grey_for_the_classical_methods_as_flow_eval_does(tmp_path, capsys):
    """tvl1 on colour frames: the flow of the frames as OpenCV decodes them grey (flow eval's frames), identical to
    --gray's."""
    from flownet.io import read_flo
    one, two = _colour_pair(tmp_path)
    assert _run([one, two, "--model", "tvl1", "--out", tmp_path / "c.png", "--flo", tmp_path / "c.flo"]) == 0
    assert _run([one, two, "--model", "tvl1", "--out", tmp_path / "g.png", "--flo", tmp_path / "g.flo",
                 "--gray"]) == 0
    assert np.array_equal(read_flo(tmp_path / "c.flo")[0], read_flo(tmp_path / "g.flo")[0])
    capsys.readouterr()


_CUSTOM = '''
import torch
SEEN = []
class Net(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = torch.nn.Conv2d(c, 2, 3, padding=1)
    def forward(self, a, b):
        SEEN.append(a.shape[1])
        open(__file__ + ".seen", "a").write(str(a.shape[1]))
        return self.conv(a) * 0
def grey():
    return Net(1)
def colour():
    return Net(3)
'''


@pytest.mark.parametrize("factory, channels", [("grey", "1"), ("colour", "3")])
def test_flow_run_gives_a_custom_network_the_channels_its_first_convolution_takes(tmp_path, capsys, factory,
                                                                                 channels):
    """--model custom: a network whose first Conv2d takes 1 channel is given the grey frames (it failed on the RGB
    ones), one whose first Conv2d takes 3 channels the colour frames, as before."""
    spec = tmp_path / "mynet.py"
    spec.write_text(_CUSTOM, encoding="utf-8")
    one, two = _colour_pair(tmp_path, 32, 32)
    rc = _run([one, two, "--model", "custom", "--module", f"{spec}:{factory}", "--out", tmp_path / "f.png"])
    assert rc == 0, capsys.readouterr()
    assert (tmp_path / "mynet.py.seen").read_text() == channels


def test_flow_run_help_says_which_frames_each_model_is_given(capsys):
    """--help's --gray text says the learned shipped weights and the classical methods read grey already."""
    from icegan.cli import main
    with pytest.raises(SystemExit):
        main(["flow", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "trained on grey" in text and "torchvision" in text


def test_flow_training_records_the_frames_channels_in_the_weights(tmp_path, shared_data):
    """icegan flow train writes meta["gray"] (data.gray) into weights.pt, so flow run can read what it trained on."""
    from _flow_sizes import TINY_SRFLOWNET

    import flownet.train as ftrain
    from flownet.models.srflownet import SRFlowNetConfig
    from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection
    cfg = FlowTrainConfig(name="g", out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                          data=FlowDataConfig(root=str(shared_data), size=32, n_train=2, n_test=1,
                                              n_val_subjects=0, frames_per_clip=1),
                          train=FlowTrainSection(regularizer="tvr", batch_size=2, crop=24, steps=1, eval_every=0,
                                                 ckpt_every=1, log_every=100, threads=1, seed=1, lr=1e-3))
    ftrain.train(cfg, progress=False)
    meta = torch.load(tmp_path / "g" / "weights.pt", weights_only=False)["meta"]
    assert meta["gray"] is True


# ------------------------------------------------------------------------------------------ 3: a float TIFF frame

def test_a_float_tiff_frame_is_refused_as_floating_point_naming_the_file(tmp_path, capsys):
    """A 32-bit float TIFF (which OpenCV decodes only unchanged) is refused as a floating-point image, to be saved as
    8- or 16-bit, naming the file; not as 'not an image OpenCV can decode'."""
    import cv2

    from flownet.frame_io import read_frame
    for name, img in (("c.tiff", np.random.default_rng(0).random((24, 32, 3))),
                      ("g.tiff", np.random.default_rng(1).random((24, 32)))):
        ok, buf = cv2.imencode(".tiff", img.astype(np.float32))
        assert ok
        (tmp_path / name).write_bytes(buf.tobytes())
        for flag in (cv2.IMREAD_GRAYSCALE, cv2.IMREAD_COLOR):
            with pytest.raises(ValueError) as err:
                read_frame(tmp_path / name, flag)
            said = str(err.value)
            assert str(tmp_path / name) in said and "floating-point" in said and "8- or 16-bit" in said, said
            assert "float32" in said
    one = tmp_path / "c.tiff"
    assert _run([one, one, "--model", "tvl1", "--out", tmp_path / "f.png"]) != 0
    err = capsys.readouterr().err
    assert "floating-point" in err and str(one) in err
