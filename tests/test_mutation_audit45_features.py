"""Tests that kill the surviving mutants of a mutation audit of the code that turns face frames into the recognizer's
input maps (the main job and ``icegan features``): :func:`icegan.pipeline.compute_flow_features`,
:func:`flownet.strain.flow_features`, the OpenCV baselines of :mod:`flownet.classical`, the face crop of
:mod:`icegan.data.align` and apex spotting in :mod:`icegan.data.spotting`. Each test fails on one small deliberate
change of that code that the earlier tests let through (named in its docstring); the expected values are worked out
by hand from a known motion, rotation or curve, not read off the code's output."""
import numpy as np
import pandas as pd
import pytest
import torch

from flownet.classical import TVL1Estimator
from flownet.strain import flow_features
from icegan.pipeline import compute_flow_features
from tests._textures import smooth_texture


class _KnownFlow:
    """An estimator whose flow is given: sample k of the whole run gets ``flows[k]`` (counting across batches)."""

    def __init__(self, flows: torch.Tensor):
        self.flows, self.seen = flows, 0

    def estimate(self, img1, img2):
        out = self.flows[self.seen:self.seen + img1.shape[0]]
        self.seen += img1.shape[0]
        return out


def _ramps(w: int) -> torch.Tensor:
    """(2, 2, w, w): sample 0 has u = x, sample 1 u = 3x + 5 (x the column, pixels), v = 0 in both."""
    x = torch.arange(w, dtype=torch.float32).expand(w, w)
    f = torch.zeros(2, 2, w, w)
    f[0, 0], f[1, 0] = x, 3 * x + 5
    return f


# ------------------------------------------------------------------------------- compute_flow_features / flow_features

def test_main_job_maps_of_a_known_shift_are_onset_to_apex_and_rescaled_to_the_map_size():
    """apex = onset moved 2 px right and 2 px up (content at (x, y) appears at (x + 2, y - 2)): the flow onset → apex
    is (u, v) = (+2, -2) pixels of the 64 px image, so on 32 px maps (``normalize="none"``) it is (+1, -1) (u scaled by
    32/64, v by 32/64), with zero strain. Mutations killed: ``normalize`` ignored (always min-max); the flow taken
    apex → onset ((-1, +1)); the flow resized without rescaling its vectors ((+2, -2)); u and v in each other's
    channels."""
    big = smooth_texture(1, 80, 80, seed=3)
    onset, apex = big[..., 8:72, 8:72], big[..., 10:74, 6:70]
    feats = compute_flow_features(TVL1Estimator(), onset, apex, 32, normalize="none", batch_size=1)
    assert feats.shape == (1, 3, 32, 32)
    inner = feats[0, :, 6:-6, 6:-6]
    assert abs(float(inner[0].median()) - 1.0) < 0.15, float(inner[0].median())
    assert abs(float(inner[1].median()) + 1.0) < 0.15, float(inner[1].median())
    assert float(inner[2].median()) < 0.1


def test_min_max_maps_are_normalised_per_clip_whatever_the_batch():
    """Two clips in one batch with u = x and u = 3x + 5 (v = 0): min-max per clip and per channel maps both u maps to
    x / (W - 1), the same map, and v to 0; a batch of 1 gives the same features as a batch of 2, and both clips come
    back. Mutations killed: min and max taken over the whole batch (clip 0's u would span [0, 0.23] only);
    only the last batch returned."""
    w = 8
    expected_u = torch.arange(w, dtype=torch.float32).expand(w, w) / (w - 1)
    img = torch.zeros(2, 1, w, w)
    together = compute_flow_features(_KnownFlow(_ramps(w)), img, img, w, "minmax", batch_size=2)
    one_by_one = compute_flow_features(_KnownFlow(_ramps(w)), img, img, w, "minmax", batch_size=1)
    assert together.shape == one_by_one.shape == (2, 3, w, w)
    for k in range(2):
        torch.testing.assert_close(together[k, 0], expected_u, atol=1e-5, rtol=0)
        torch.testing.assert_close(one_by_one[k, 0], expected_u, atol=1e-5, rtol=0)
        assert float(together[k, 1].abs().max()) < 1e-5
    direct = flow_features(_ramps(w), w, normalize="minmax")
    torch.testing.assert_close(direct[0], direct[1], atol=1e-5, rtol=0)


class _Recording:
    """An estimator that records the image pairs it is given and returns u = x, v = -y (pixels) for every pair."""

    def __init__(self):
        self.pairs = []

    def estimate(self, img1, img2):
        self.pairs.append((img1.clone(), img2.clone()))
        b, _, h, w = img1.shape
        x = torch.arange(w, dtype=torch.float32).expand(h, w)
        y = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
        return torch.stack([x, -y]).expand(b, 2, h, w).clone()


def test_icegan_features_maps_take_onset_then_apex_at_the_recognizer_input_size(tmp_path, monkeypatch):
    """``export_features`` (``icegan features``) gives the flow estimator each clip's onset first and apex second,
    in [0, 1], and writes (3, S, S) maps at ``recognizer.input_size`` = 16 (not 28), min-max normalised per clip: for
    u = x and v = -y on 32 px images, bilinearly halved, u is 0 .. 1 left to right and v 1 .. 0 top to bottom.
    Mutations killed: the maps written at the default 28 px whatever ``recognizer.input_size``; onset and apex
    swapped (the main job's copy of that call was caught by its comparison with ``features_real.pt``; this call
    alone, or both together, were not)."""
    from icegan import pipeline
    from icegan.data.feature_table import load_table_features
    onset = np.stack([np.full((32, 32), 10 * k, np.uint8) for k in (1, 2)])
    apex = np.stack([np.full((32, 32), 200 + 10 * k, np.uint8) for k in (1, 2)])
    samples = pd.DataFrame({"dataset": ["casme2"] * 2, "subject": ["casme2/sub01", "casme2/sub02"],
                            "clip": ["EP01", "EP02"], "label": [0, 1]})
    monkeypatch.setattr(pipeline, "load_samples", lambda cfg, progress=True, unlabelled=False:
                        pipeline.Clips(samples, onset, apex))
    est = _Recording()
    monkeypatch.setattr(pipeline, "build_flow", lambda cfg, device: est)
    cfg = pipeline.load_main_config(None, ["data.img_size=32", "recognizer.input_size=16", "flow.method=tvl1",
                                           "device=cpu"])
    fs = load_table_features(pipeline.export_features(cfg, tmp_path / "f", progress=False))
    assert fs.features.shape == (2, 3, 16, 16)
    img1 = torch.cat([p[0] for p in est.pairs])
    img2 = torch.cat([p[1] for p in est.pairs])
    torch.testing.assert_close(img1[:, 0, 0, 0], torch.tensor([10, 20]) / 255.0)
    torch.testing.assert_close(img2[:, 0, 0, 0], torch.tensor([210, 220]) / 255.0)
    ramp = torch.linspace(0, 1, 16)
    for k in range(2):
        torch.testing.assert_close(fs.features[k, 0], ramp.expand(16, 16), atol=1e-5, rtol=0)
        torch.testing.assert_close(fs.features[k, 1], (1 - ramp)[:, None].expand(16, 16), atol=1e-5, rtol=0)


def test_strain_is_taken_on_the_full_resolution_flow_before_the_maps_are_shrunk():
    """u = 0 0 1 1 0 0 1 1 ... along x (16 px, v = 0): central differences give |du/dx| = 1/2 at every inner column,
    so the strain is 1/2 there and, averaged 2 → 1 by the bilinear halving to 8 px, still 1/2 on the inner map columns
    (``flow_features``: strain computed at the input resolution, then resized). The halved flow alternates 0, 1/2, so
    its own central differences are 0: strain taken after the resize would be about 0. Mutation killed: strain
    computed on the resized flow."""
    u = torch.tensor([0.0, 0.0, 1.0, 1.0]).repeat(4).expand(16, 16)
    flow = torch.stack([u, torch.zeros(16, 16)])[None]
    out = flow_features(flow, 8, normalize="none")
    torch.testing.assert_close(out[0, 2, :, 1:7], torch.full((8, 6), 0.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.0, 0.5] * 4), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------ flownet.classical

@pytest.mark.parametrize("method, cls", [("tvl1", "TVL1Estimator"), ("farneback", "FarnebackEstimator")])
def test_the_main_job_flow_method_picks_that_opencv_baseline(method, cls):
    """``flow.method=tvl1`` runs Dual TV-L1 and ``flow.method=farneback`` Farneback, at the images' own size (no
    resizing wrapper for a classical method). Mutation killed: ``get_estimator("tvl1")`` returning the Farneback
    estimator (the maps of every TV-L1 run, the MEGC2019 maps' method, would then be Farneback's)."""
    import flownet.classical
    from icegan.pipeline import build_flow, load_main_config
    est = build_flow(load_main_config(None, ["data.img_size=32", f"flow.method={method}"]), torch.device("cpu"))
    assert type(est) is getattr(flownet.classical, cls) and est.name == method

def test_tvl1_uses_its_parameters_and_keeps_them_through_pickling():
    """``TVL1Estimator(**params)`` is OpenCV's Dual TV-L1 created with those parameters (module docstring), also in a
    copy sent to another process (pickled: the OpenCV object is rebuilt from ``params``). A single-scale, single-warp
    TV-L1 gives another flow than the default pyramid on a 3 px shift, so parameters that were dropped show.
    Mutations killed: the parameters ignored when the estimator is made; the unpickled copy rebuilt with OpenCV's
    defaults (a Ray fold task would then compute other features than the main process)."""
    import pickle

    import cv2
    params = dict(nscales=1, warps=1, epsilon=0.05)
    big = smooth_texture(1, 72, 72, seed=7)
    img1, img2 = big[..., 4:68, 4:68], big[..., 4:68, 1:65]        # content moves 3 px right
    g1 = (img1[0, 0].numpy() * 255 + 0.5).astype(np.uint8)
    g2 = (img2[0, 0].numpy() * 255 + 0.5).astype(np.uint8)
    ref = cv2.optflow.DualTVL1OpticalFlow_create(**params).calc(g1, g2, None)
    default = cv2.optflow.DualTVL1OpticalFlow_create().calc(g1, g2, None)
    assert np.abs(ref - default).max() > 0.1           # the parameters make a difference on this pair
    est = TVL1Estimator(**params)
    for e in (est, pickle.loads(pickle.dumps(est))):
        np.testing.assert_array_equal(e.estimate(img1, img2)[0].permute(1, 2, 0).numpy(), ref)


# ------------------------------------------------------------------------------------------------ icegan.data.align

def test_shrinking_a_face_crop_averages_pixel_blocks():
    """Shrinking a crop 3x (96 → 32 px) uses area interpolation (module docstring): each output pixel is the mean of
    its 3 x 3 block of input pixels, rounded (so within 0.5 of the block mean, plus 0.5 of OpenCV's fixed point).
    Both paths are checked: ``apply_alignment`` (raw mode: an identity alignment, so the crop is the frame) and
    ``resize_cropped`` (cropped mode). Mutations killed: bicubic (or bilinear) shrinking, which samples the block's
    centre pixel and its neighbours instead of averaging the block (aliasing the noise into the maps)."""
    from icegan.data.align import Alignment, apply_alignment, resize_cropped
    img = np.random.default_rng(0).integers(0, 256, (96, 96), dtype=np.uint8)
    block_means = img.reshape(32, 3, 32, 3).mean(axis=(1, 3))
    identity = Alignment(matrix=np.array([[1.0, 0, 0], [0, 1.0, 0]]), native=96, angle_deg=0.0,
                         landmarks=np.zeros((68, 2), np.float32), refined=False)
    for out in (apply_alignment(img, identity, 32), resize_cropped(img, 32)):
        assert out.shape == (32, 32) and out.dtype == np.uint8
        assert np.abs(out.astype(float) - block_means).max() <= 1.0


def test_a_crop_reaching_past_the_frame_repeats_the_frame_edge():
    """A face box that reaches 8 px past the frame's left edge (alignment translating the frame 8 px right into a
    32 px crop) fills the outside with the frame's edge pixels (``warp``: replicated border), not black: a black band
    on the onset and apex alike adds a hard edge to every frame, and to the strain where it moves. The frame's first
    column is 90, the rest 150: crop columns 0..8 are 90 and 9..31 150. Mutation killed: ``BORDER_CONSTANT``."""
    from icegan.data.align import Alignment, apply_alignment
    frame = np.full((32, 32), 150, np.uint8)
    frame[:, 0] = 90
    shifted = Alignment(matrix=np.array([[1.0, 0, 8.0], [0, 1.0, 0]]), native=32, angle_deg=0.0,
                        landmarks=np.zeros((68, 2), np.float32), refined=False)
    out = apply_alignment(frame, shifted, 32)
    assert (out[:, :9] == 90).all() and (out[:, 9:] == 150).all()


def test_the_crop_side_is_the_box_side_rounded_to_the_nearest_pixel():
    """Level eyes, landmarks spanning 50.6 px across and 30 px down, no margin: the square crop's side is the box's
    longer side, 50.6 px, rounded to 51 px (``box_matrix``: ``round``), not cut down to 50 px. Mutation killed: the
    side truncated (a crop 1 px short, 2 % of the face, on some clips)."""
    from icegan.data.align import box_matrix
    pts = np.zeros((68, 2))
    pts[:, 0] = np.linspace(10.0, 60.6, 68)
    pts[:, 1] = np.linspace(20.0, 50.0, 68)
    pts[36:48, 1] = 30.0                                # both eyes on one line: nothing to rotate
    m, native, angle = box_matrix(pts, margin=0.0)
    assert angle == 0.0 and native == 51


# --------------------------------------------------------------------------------------------- icegan.data.spotting

def test_the_spotted_apex_is_the_peak_of_the_smoothed_head_compensated_curve(monkeypatch):
    """Motion curve 0 0 5 0 0 1 3 3 3 1 0 0 (a one-frame spike at 2, a broad peak around 7): the 5-frame moving
    average (edges repeated) is 1.0 at frame 2 and 2.2 at frame 7, its maximum (6 and 8: 2.0), so the apex is frame 7,
    from the head-compensated magnitudes. Mutation killed: the maximum of the raw curve (frame 2, a flicker)."""
    from icegan.data import spotting
    curve = np.array([0, 0, 5, 0, 0, 1, 3, 3, 3, 1, 0, 0.0])
    asked = []

    def mags(frames, mask, method, compensate=True):
        asked.append((method, compensate))
        return curve
    monkeypatch.setattr(spotting, "flow_magnitudes", mags)
    monkeypatch.setattr(spotting, "face_hull_mask", lambda gray, detector="hog": np.ones((20, 20), bool))
    frames = [np.zeros((20, 20), np.uint8)] * len(curve)
    idx, name, raw = spotting.spot_apex_index(frames, "farneback")
    assert idx == 7 and asked == [("farneback", True)]
    assert name == "farneback-head-compensated-mean-magnitude-smooth5-in-face-hull"
    np.testing.assert_array_equal(raw, curve)


def test_the_motion_curve_is_the_euclidean_length_of_the_flow(monkeypatch):
    """A flow of (3, 4) px everywhere from the onset to frame 1 has length 5 px (not |3| + |4| = 7), uncompensated;
    the onset's own entry is 0. Mutation killed: the magnitude taken as |u| + |v|, which ranks diagonal motion above
    a horizontal or vertical one of the same length."""
    from icegan.data import spotting
    frames = [np.zeros((6, 8), np.uint8)] * 2
    field = np.zeros((6, 8, 2), np.float32)
    field[..., 0], field[..., 1] = 3.0, 4.0
    monkeypatch.setattr(spotting, "_flow", lambda a, b, method: field)
    out = spotting.flow_magnitudes(frames, np.ones((6, 8), bool), "dis", compensate=False)
    np.testing.assert_allclose(out, [0.0, 5.0])
