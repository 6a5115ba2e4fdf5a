"""Round 63 fixes and pinned behaviour: the training-face check refuses faces that are not uint8, a flow weights file
of another backbone names the --model that loads it, gan_precision's CPU records as the code makes them, onset names
of reg_imgN frames, and the "..." of prepare's hint listing unsheeted clip folders."""
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch


# --- 1: training_faces_in refuses faces that are not uint8 -----------------------------------------------------------

@pytest.mark.parametrize("which", ["faces", "train_faces"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_training_faces_in_refuses_faces_that_are_not_uint8(which, dtype):
    """Before, float faces were cast to int16, so float32 copies of the training faces in [0, 1] were compared as
    grey levels 0 and never refused; now the argument and its dtype are named."""
    from icegan.gan.evaluate import training_faces_in
    train = np.random.default_rng(0).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    args = {"faces": train[:2], "train_faces": train}
    args[which] = args[which].astype(dtype)
    with pytest.raises(ValueError, match=rf"^training_faces_in: {which} must be uint8 faces \(0-255\), got "
                                         rf"{np.dtype(dtype).name}"):
        training_faces_in(args["faces"], args["train_faces"])
    assert training_faces_in(train[:2], train) == {0: 0, 1: 1}        # uint8 faces: as before


# --- 2: a flownet-backbone-v1 file of another backbone names the --model that loads it ---------------------------

def test_load_weights_of_another_backbone_names_the_model_that_loads_it(tmp_path):
    """Before: 'weights of backbone 'raft_small', not 'liteflownet2'' without the option to use, as the SRFlowNet
    branch gives (its docstring promised it)."""
    from flownet.registry import build_backbone, load_weights, save_weights
    path = save_weights(build_backbone("raft_small"), tmp_path / "rs.pt")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: weights of backbone 'raft_small', not "
                                         rf"'liteflownet2': use --model raft_small \(flow.method=raft_small\)$"):
        load_weights(path, expected="liteflownet2")
    assert load_weights(path, expected="raft_small").meta == {}        # its own backbone loads


# --- 3: gan_precision on a CPU (pinned: recorded runs rely on it) ----------------------------------------------------

@pytest.mark.parametrize("amp, amp_dtype, record", [
    (True, "bf16", {"autocast": True, "dtype": "bfloat16", "scaler": False}),
    (True, "auto", {"autocast": False, "dtype": "float32", "scaler": False}),
    (False, "bf16", {"autocast": False, "dtype": "float32", "scaler": False}),
    (False, "fp16", {"autocast": False, "dtype": "float32", "scaler": False}),   # amp off: fp16 is not refused
])
def test_gan_precision_cpu_records(amp, amp_dtype, record):
    from icegan.gan.trainer import GanTrainConfig, gan_precision
    assert gan_precision(torch.device("cpu"), GanTrainConfig(amp=amp, amp_dtype=amp_dtype)) == record


def test_gan_precision_cpu_refuses_fp16_with_amp_and_unknown_dtypes():
    from icegan.gan.trainer import GanTrainConfig, gan_precision
    with pytest.raises(ValueError, match="train.amp_dtype=fp16 needs a CUDA device"):
        gan_precision(torch.device("cpu"), GanTrainConfig(amp=True, amp_dtype="fp16"))
    for amp in (True, False):
        with pytest.raises(ValueError, match="train.amp_dtype must be auto, bf16 or fp16, got 'fp8'"):
            gan_precision(torch.device("cpu"), GanTrainConfig(amp=amp, amp_dtype="fp8"))


def test_gan_precision_docstring_states_the_cpu_records():
    """The docstring said amp=true on a CPU records float32 (bf16 autocasts) and that fp16 on a CPU raises (not with
    amp=false)."""
    from icegan.gan.trainer import gan_precision
    doc = " ".join(gan_precision.__doc__.split())
    assert '``train.amp_dtype=bf16``: ``{"autocast": true, "dtype": "bfloat16"' in doc
    assert "ValueError: ``train.amp=true`` with ``train.amp_dtype=fp16`` on a CPU" in doc


# --- 4: onset names of reg_imgN frames (the official Cropped release) -----------------------------------------------

def test_onset_name_of_reg_img_frames_names_the_subject_and_clip():
    from icegan.gan.generate import onset_name
    assert onset_name("/d/casme2/sub01/EP02_01f/reg_img46.jpg") == "sub01_EP02_01f_reg_img46"
    assert onset_name("/d/casme2/sub02/EP01_11f/reg_img46.jpg") == "sub02_EP01_11f_reg_img46"
    assert onset_name("/d/casme2/sub01/EP02_01f/img46.jpg") == "sub01_EP02_01f_img46"
    assert onset_name("/d/casme2/sub01/EP02_01f/IMG46.JPG") == "sub01_EP02_01f_IMG46"    # case-insensitive
    assert onset_name("/d/casme2/sub01/EP02_01f/REG_IMG46.png") == "sub01_EP02_01f_REG_IMG46"
    assert onset_name("/d/faces/reg_face46.jpg") == "reg_face46"                           # not a frame name


# --- 5: prepare's hint lists 8 unsheeted clip folders, then "..." ----------------------------------------------------

@pytest.mark.parametrize("n, dots", [(8, False), (9, True)])
def test_unsheeted_hint_lists_eight_folders_then_dots(n, dots):
    from icegan.data.prepare import _unsheeted_hint
    found = {"unsheeted": [f"casme2/sub01/EP0{i}_01" for i in range(1, n + 1)]}
    rec = SimpleNamespace(subject_dir=Path("/d/casme2/sub01"), clip="EP02_01f")
    shown = ", ".join(f"EP0{i}_01" for i in range(1, 9))
    assert _unsheeted_hint(None, rec, found) == (
        f"; clip folders in {Path('/d/casme2/sub01')} that the sheet does not name: {shown}"
        f"{', ...' if dots else ''} (if one is this clip's, rename it EP02_01f)")
