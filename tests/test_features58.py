"""Review 58 (icegan features / predict): icegan predict compares the flow settings as the flow ran them (not as
written), the labelled clips' exported maps equal the main job's bit for bit when unlabelled clips are exported with
them, flow.iters=0 is refused, and compute_flow_features refuses inputs outside its contract, naming what is wrong."""
import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import icegan.pipeline as pipeline
from icegan.config import ConfigError
from icegan.pipeline import Clips, compute_flow_features, export_features, load_main_config, to_unit
from icegan.saved_recognizer import maps_differ

# ------------------------------------------------------------------------ 1: flow settings compared as resolved

SHIPPED = Path(pipeline.__file__).resolve().parents[1] / "flownet" / "weights" / "srflownet_facial.pt"


def _prov(weights_sha=None, **flow) -> dict:
    """A maps_provenance as icegan features writes it for the shipped SRFlowNet on 64-pixel cropped faces."""
    base = {"method": "srflownet", "module": "", "weights": None, "iters": None, "component": "total",
            "decompose": "ransac", "decompose_weights": None, "input_size": "auto", "tta": "none"}
    sha = weights_sha or hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    return {"flow": {**base, **flow}, "weights": {"flow_weights": "srflownet_facial.pt", "flow_weights_sha256": sha},
            "size": 28, "faces": {"modes": ["cropped"], "size": 64}}


@pytest.mark.parametrize("written", [{"weights": "shipped:facial"}, {"weights": str(SHIPPED)}, {"iters": 2},
                                     {"input_size": 128}, {"decompose": "learned"},
                                     {"decompose": "learned", "decompose_weights": "x.pt"},
                                     {"weights": "shipped:facial", "iters": 2, "input_size": 128}])
def test_settings_written_otherwise_that_make_the_same_maps_are_not_warned(written):
    """The shipped weights' own count is 2 updates and their training side 128 (meta); decompose is unused with
    component=total; the weights file is the same content (SHA-256): the maps are the same, no warning (was
    'the flow settings differ from the training maps' (flow.weights)' etc.)."""
    assert maps_differ(_prov(), _prov(**written)) is None
    assert maps_differ(_prov(**written), _prov()) is None


@pytest.mark.parametrize("written, key", [({"iters": 3}, "flow.iters"), ({"input_size": "native"}, "flow.input_size"),
                                          ({"input_size": 96}, "flow.input_size"), ({"tta": "hflip"}, "flow.tta"),
                                          ({"component": "expression"}, "flow.component")])
def test_a_real_difference_of_settings_is_still_warned(written, key):
    """native runs at the 64-pixel faces, not the weights' 128; 3 updates are not the weights' 2."""
    msg = maps_differ(_prov(), _prov(**written))
    assert msg is not None and "the flow settings differ from the training maps'" in msg and key in msg, msg


def test_another_checkpoint_is_warned_and_a_copy_of_the_same_file_is_not():
    other = maps_differ(_prov(), _prov(weights_sha="0" * 64, weights="/elsewhere/mine.pt"))
    assert other == "the flow weights differ from the training maps' (another checkpoint)"
    copy = _prov(weights="/elsewhere/copy.pt")
    copy["weights"]["flow_weights"] = "copy.pt"            # another name, the same SHA-256
    assert maps_differ(_prov(), copy) is None


def test_weights_not_on_this_machine_leave_the_settings_as_written():
    """null iters cannot be resolved without the file: compared as written (warned, as before)."""
    msg = maps_differ(_prov(weights_sha="1" * 64, weights="/nowhere/w.pt"),
                      _prov(weights_sha="1" * 64, weights="/nowhere/w.pt", iters=2))
    assert msg is not None and "flow.iters" in msg


# ------------------------------------------------------------------------ 2: labelled maps = the main job's


class BatchDependent:
    """A flow whose values depend on the other pairs of its batch (as a learned network's do, by ~1e-5), in a way
    the per-clip min-max does not cancel."""

    def estimate(self, a, b):
        c = float(a.mean())
        d = (b - a)[:, 0]
        return torch.stack([d + c * a[:, 0] ** 2, d * (1 + a[:, 0]) * c], 1)


def test_labelled_maps_equal_the_main_jobs_when_unlabelled_clips_are_exported_with_them(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    labels = [0, -1, 1, -1, -1, 2, 0, 1, -1, 2]
    n = len(labels)
    samples = pd.DataFrame({"dataset": "casme2", "subject": [f"sub{i % 3}" for i in range(n)],
                            "clip": [f"c{i}" for i in range(n)], "label": labels})
    onset, apex = (rng.integers(0, 256, (n, 16, 16), dtype=np.uint8) for _ in range(2))
    everything = Clips(samples, onset, apex)
    cfg = load_main_config(None, ["flow.method=tvl1", "flow.batch_size=3"])
    monkeypatch.setattr(pipeline, "load_samples", lambda *a, **k: everything)
    monkeypatch.setattr(pipeline, "build_flow", lambda *a, **k: BatchDependent())
    table = export_features(cfg, tmp_path / "out", progress=False)
    tab = pd.read_csv(table, keep_default_na=False)
    exported = np.stack([np.load(tmp_path / "out" / p) for p in tab["path"]])
    lab = np.asarray(labels) >= 0
    main_clips = Clips(samples[lab].reset_index(drop=True), onset[lab], apex[lab])       # load_samples of a LOSO run
    main = pipeline._real_features(cfg, main_clips, BatchDependent(), tmp_path, {}, progress=False).numpy()
    assert np.array_equal(exported[lab], main)              # bit for bit (were ~1e-2 apart with this flow)
    alone = compute_flow_features(BatchDependent(), to_unit(onset[~lab]), to_unit(apex[~lab]), 28, batch_size=3)
    assert np.array_equal(exported[~lab], alone.numpy())    # the unlabelled ones after, in their own batches
    assert tab["clip"].tolist() == samples["clip"].tolist()


# ------------------------------------------------------------------------ 3: flow.iters=0


def test_flow_iters_zero_is_refused():
    """iters=0 meant the weights' default while the run recorded 0 and keyed another feature cache."""
    with pytest.raises(ConfigError, match=re.escape("flow.iters must be >= 1, got 0")):
        load_main_config(None, ["flow.iters=0"])
    assert load_main_config(None, ["flow.iters=1"]).flow.iters == 1


# ------------------------------------------------------------------------ 4: compute_flow_features inputs


class Zero:
    def estimate(self, a, b):
        return torch.zeros(a.shape[0], 2, a.shape[-2], a.shape[-1])


U8 = np.random.default_rng(1).integers(0, 256, (4, 16, 16), dtype=np.uint8)


@pytest.mark.parametrize("onset, apex, msg", [
    (to_unit(U8) * 255, to_unit(U8), "onset01 holds values in [0, 255], expected [0, 1]"),
    (to_unit(U8), to_unit(U8) * 255, "apex01 holds values in [0, 255], expected [0, 1]"),
    (to_unit(U8)[:, 0], to_unit(U8)[:, 0], "onset01 has shape (4, 16, 16), expected (N, 1|3, H, W)"),
    (to_unit(U8).repeat(1, 2, 1, 1), to_unit(U8).repeat(1, 2, 1, 1), "has shape (4, 2, 16, 16)"),
    (to_unit(U8).numpy(), to_unit(U8).numpy(), "onset01 is a numpy.ndarray, not a torch tensor"),
    (torch.from_numpy(U8)[:, None], torch.from_numpy(U8)[:, None], "onset01 is torch.uint8, expected float"),
    (to_unit(U8), to_unit(U8)[:3], "onset01 (4, 1, 16, 16) and apex01 (3, 1, 16, 16) differ in shape"),
    (to_unit(U8) - 0.5, to_unit(U8), "onset01 holds values in [-0.5"),
])
def test_inputs_outside_the_contract_are_refused_naming_what_is_wrong(onset, apex, msg):
    """Frames in 0..255 gave maps off by up to 0.77 without a word; (N, S, S) failed inside torch; NumPy arrays
    raised AttributeError."""
    with pytest.raises(ValueError, match=re.escape(msg)):
        compute_flow_features(Zero(), onset, apex, 28)


def test_unit_inputs_pass_and_non_finite_images_keep_their_own_message():
    assert compute_flow_features(Zero(), to_unit(U8), to_unit(U8), 28).shape == (4, 3, 28, 28)
    rgb = to_unit(U8).repeat(1, 3, 1, 1)
    assert compute_flow_features(Zero(), rgb, rgb, 8).shape == (4, 3, 8, 8)
    bad = to_unit(U8).clone()
    bad[1, 0, 0, 0] = float("nan")

    class Echo:
        def estimate(self, a, b):
            return torch.cat([a, b], 1)[:, :2] * 0 + a[:, :1].sum((1, 2, 3), keepdim=True)
    with pytest.raises(FloatingPointError, match="images that are themselves NaN/Inf"):
        compute_flow_features(Echo(), bad, to_unit(U8), 28)
