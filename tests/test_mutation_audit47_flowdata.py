"""Tests written by a mutation audit of the flow data sets, the flow evaluation, the estimator registry and the GAN's
scores (flownet.data.kitti, flownet.data.middlebury, flownet.data.synthetic_face, flownet.data.synthetic_generic,
flownet.evaluate, flownet.registry, flownet.plugins, icegan.gan.evaluate): each one fails on a small deliberate
change of the code that the earlier tests let pass (named in the test's docstring). Expected values are worked out
by hand in the comments, never copied from the code's output; ground-truth files are written byte by byte here, not
with flownet.io's writers, so that a change made alike to a reader and its writer cannot pass."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch


def _grey_png(path: Path, value: int, shape=(6, 8)) -> Path:
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def _kitti_flow_png(path: Path, u_raw: np.ndarray, v_raw: np.ndarray, valid_raw: np.ndarray) -> Path:
    """A KITTI flow PNG from its raw 16-bit channels: R = u * 64 + 2^15, G = v * 64 + 2^15, B = valid (KITTI devkit,
    readme of the flow benchmark). OpenCV writes the channels in B, G, R order."""
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = np.stack([valid_raw, v_raw, u_raw], axis=-1).astype(np.uint16)
    assert cv2.imwrite(str(path), bgr)
    return path


# ------------------------------------------------------------------------------------------- flownet.data.kitti

def test_kitti_frame_folders_are_tried_2015_colour_then_2012_colour_then_2012_grey(tmp_path):
    """The module docstring's order of frame folders, FRAME_DIRS: KITTI 2015's ``image_2``, then KITTI 2012's colour
    ``colored_0``, then its grey ``image_0``; each folder's frames here have their own grey value, so the pair read
    tells which folder won (mutations killed: ``colored_0`` tried before ``image_2``, and ``image_0`` before
    ``colored_0``; the earlier test had only ``image_0`` beside ``image_2``)."""
    from flownet.data.kitti import KittiFlow
    t = tmp_path / "training"
    for folder, value in (("image_2", 20), ("colored_0", 60), ("image_0", 100)):
        _grey_png(t / folder / "000000_10.png", value)
        _grey_png(t / folder / "000000_11.png", value + 1)
    raw = np.full((6, 8), 2 ** 15, np.uint16)
    _kitti_flow_png(t / "flow_occ" / "000000_10.png", raw, raw, np.ones((6, 8), np.uint16))
    for gone, want in ((None, 20), ("image_2", 60), ("colored_0", 100)):
        if gone:
            for f in (t / gone).iterdir():
                f.unlink()
            (t / gone).rmdir()
        it = KittiFlow(tmp_path)[0]
        assert round(float(it["img1"].mean()) * 255) == want, gone
        assert round(float(it["img2"].mean()) * 255) == want + 1, gone


def test_kitti_ground_truth_written_by_hand_decodes_to_u_v_in_pixels_and_the_valid_bit(tmp_path):
    """A flow PNG written from raw 16-bit values (KITTI devkit: ``u = (R - 2^15) / 64``, ``v = (G - 2^15) / 64``,
    valid where B > 0) read through :class:`KittiFlow`: R = 2^15 + 160 is u = 160 / 64 = 2.5 px, G = 2^15 - 32 is
    v = -0.5 px, R = 2^15 - 1 is u = -1/64 px; B = 0 marks the pixel invalid, B = 1 valid (mutations killed
    where a writer mirrored the reader: u and v swapped, the scale 64 read as 32, the offset 2^15 off by one)."""
    from flownet.data.kitti import KittiFlow
    t = tmp_path / "training"
    _grey_png(t / "image_2" / "000007_10.png", 10)
    _grey_png(t / "image_2" / "000007_11.png", 11)
    u = np.full((6, 8), 2 ** 15 + 160, np.uint16)
    v = np.full((6, 8), 2 ** 15 - 32, np.uint16)
    u[0, 1] = 2 ** 15 - 1
    b = np.ones((6, 8), np.uint16)
    b[:, 5:] = 0                                # right three columns unmeasured
    _kitti_flow_png(t / "flow_occ" / "000007_10.png", u, v, b)
    it = KittiFlow(tmp_path)[0]
    assert it["name"] == "000007" and it["flow"].shape == (2, 6, 8) and it["flow"].dtype == torch.float32
    assert float(it["flow"][0, 3, 2]) == 2.5 and float(it["flow"][1, 3, 2]) == -0.5
    assert float(it["flow"][0, 0, 1]) == -1.0 / 64
    want_valid = torch.ones(6, 8, dtype=torch.bool)
    want_valid[:, 5:] = False
    assert torch.equal(it["valid"], want_valid)


def test_kitti_ground_truth_of_another_size_than_the_frames_is_named(tmp_path):
    """Frames 6 x 8 with a flow PNG of 6 x 9: refused on reading the item, naming the pair and the flow's size
    (mutation killed: the frame-against-flow size check dropped, which returned a flow of another size than the
    frames; the earlier test only had two frames of different sizes)."""
    from flownet.data.kitti import KittiFlow
    t = tmp_path / "training"
    _grey_png(t / "image_2" / "000000_10.png", 10)
    _grey_png(t / "image_2" / "000000_11.png", 11)
    raw = np.full((6, 9), 2 ** 15, np.uint16)
    _kitti_flow_png(t / "flow_occ" / "000000_10.png", raw, raw, np.ones((6, 9), np.uint16))
    with pytest.raises(ValueError, match=r"KITTI pair 000000: frames \(6, 8\) / \(6, 8\) and flow \(6, 9\) differ"):
        KittiFlow(tmp_path)[0]


# -------------------------------------------------------------------------------------- flownet.data.middlebury

def _flo_bytes(u: np.ndarray, v: np.ndarray) -> bytes:
    """A Middlebury .flo file by hand: b'PIEH' (float32 202021.25), int32 width, int32 height, then the rows, each
    pixel's u and v interleaved as little-endian float32 (Middlebury flow-code README)."""
    h, w = u.shape
    data = np.stack([u, v], axis=-1).astype("<f4").tobytes()
    return b"PIEH" + struct.pack("<ii", w, h) + data


def test_middlebury_ground_truth_written_by_hand_decodes_u_v_and_unknown_pixels(tmp_path):
    """A .flo written byte by byte: u = x / 4 (x = column), v = -y (y = row); the pixel (row 1, column 2) holds the
    unknown marker 1e10 in u. The item's flow is (2, H, W) with flow[0] = u, flow[1] = v, and valid is False there
    only (mutations killed where a writer mirrored the reader: u and v swapped, rows and columns transposed)."""
    from flownet.data.middlebury import MiddleburyFlow
    h, w = 3, 5
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xs / 4, -ys
    u[1, 2] = 1e10
    seq = tmp_path / "Seq"
    _grey_png(seq / "frame10.png", 5, (h, w))
    _grey_png(seq / "frame11.png", 6, (h, w))
    (seq / "flow10.flo").write_bytes(_flo_bytes(u, v))
    it = MiddleburyFlow(tmp_path)[0]
    assert it["flow"].shape == (2, h, w)
    assert float(it["flow"][0, 2, 3]) == 0.75 and float(it["flow"][1, 2, 3]) == -2.0
    assert float(it["flow"][0, 0, 4]) == 1.0 and float(it["flow"][1, 0, 4]) == 0.0
    want_valid = torch.ones(h, w, dtype=torch.bool)
    want_valid[1, 2] = False
    assert torch.equal(it["valid"], want_valid)


# ------------------------------------------------------------------------------- flownet.data.synthetic_face splits

def _subjects(n=26):
    return [f"sub{i:02d}" for i in range(1, n + 1)]


def test_subject_split_is_disjoint_covers_every_subject_and_follows_its_seed():
    """:func:`split_subjects`: train and test never share a subject and together hold them all; the same seed gives
    the same split, and the seed decides it: of five seeds, at least two give different test subjects (four of 26
    subjects drawn: two seeds agree by chance with probability 1 / C(26, 4) = 1 / 14950) (mutation killed: the
    ``seed`` argument ignored for the default 2026, so every seed gave one split)."""
    from flownet.data.synthetic_face import split_subjects
    subs = _subjects()
    tests = set()
    for seed in range(5):
        s = split_subjects(subs, n_test=4, seed=seed)
        assert not set(s["train"]) & set(s["test"]) and sorted(s["train"] + s["test"]) == subs
        assert len(s["test"]) == 4 and s == split_subjects(list(reversed(subs)), n_test=4, seed=seed)
        tests.add(tuple(s["test"]))
    assert len(tests) >= 2


def test_validation_split_keeps_the_test_subjects_and_follows_its_own_seed():
    """:func:`split_subjects_val`: train, val and test are pairwise disjoint and hold every subject; test is the
    test of :func:`split_subjects` whatever ``val_seed``; ``val_seed`` decides which training subjects are held out
    (of five seeds, at least two differ: 2 of 22 drawn, a chance agreement of 1 / 231 per pair of seeds) (mutation
    killed: ``val_seed`` ignored for the default 7)."""
    from flownet.data.synthetic_face import split_subjects, split_subjects_val
    subs = _subjects()
    base = split_subjects(subs, n_test=4, seed=3)
    vals = set()
    for val_seed in range(5):
        s = split_subjects_val(subs, n_test=4, n_val=2, split_seed=3, val_seed=val_seed)
        tr, va, te = set(s["train"]), set(s["val"]), set(s["test"])
        assert not (tr & va or tr & te or va & te) and sorted(tr | va | te) == subs
        assert s["test"] == base["test"] and len(va) == 2
        vals.add(tuple(s["val"]))
    assert len(vals) >= 2


# --------------------------------------------------------------------------------------------- flownet.evaluate

def test_flow_eval_scores_the_held_out_splits_of_the_synthetic_sets(shared_data, monkeypatch):
    """``icegan flow eval --data synthetic-face`` scores pairs of the test subjects of the fixed split (never a
    training subject), and ``synthetic-generic`` pairs of the generic "test" stream; each pair's name says which
    (mutations killed: load_pairs reading the "train" facial split, or the generic "val" stream, which the training
    watches for model selection). Landmarks: a ring of 68 points instead of dlib's (the faces do not matter here)."""
    import flownet.data.synthetic_face as sf
    from flownet.data.synthetic_face import list_subjects, split_subjects
    from flownet.evaluate import load_pairs
    angles = np.linspace(0.0, 2 * np.pi, 68, endpoint=False)
    ring = np.stack([120 + 60 * np.cos(angles), 140 + 60 * np.sin(angles)], 1).astype(np.float32)
    monkeypatch.setattr(sf, "detect_landmarks", lambda rgb: ring)
    held_out = split_subjects(list_subjects(shared_data))["test"]
    faces = load_pairs("synthetic-face", shared_data, size=32, n_pairs=2)
    assert len(faces) == 2
    for i, p in enumerate(faces):
        index, where = p["name"].split(":", 1)
        assert index == f"{i:04d}" and where.split("/")[0] in held_out, p["name"]
    assert [p["name"] for p in load_pairs("synthetic-generic", size=16, n_pairs=2)] == ["generic:test:0",
                                                                                        "generic:test:1"]


# ----------------------------------------------------------------------------- flownet.data.synthetic_face warping

def test_warp_forward_valid_mask_ends_at_the_last_pixel_centre_of_each_axis():
    """Content moving half a pixel left and half a pixel down, (u, v) = (-0.5, +0.5) on a 5 x 7 frame: the target
    pixel (x, y) comes from (x + 0.5, y - 0.5) of frame 1 (the inverse of a constant flow is exactly its negative),
    which lies inside [0, W - 1] x [0, H - 1] for every x but the last column and every y but the first row; frame 2
    there repeats the border (mutation killed: the right bound ``<= W - 1`` loosened to ``<= W``, which called the
    last column's sources at x = 6.5 valid; the earlier test moved the content along y, by whole pixels)."""
    from flownet.data.synthetic_face import warp_forward
    h, w = 5, 7
    img = torch.arange(float(h * w)).reshape(1, 1, h, w)
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0], flow[:, 1] = -0.5, 0.5
    out, valid = warp_forward(img, flow, return_valid=True)
    want = torch.ones(1, h, w, dtype=torch.bool)
    want[:, :, w - 1] = False
    want[:, 0, :] = False
    assert torch.equal(valid, want)
    # inside, the bilinear sample of the ramp img = 7 y + x at (x + 0.5, y - 0.5) is 7 (y - 0.5) + x + 0.5
    ys, xs = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    torch.testing.assert_close(out[0, 0][want[0]], (7 * (ys - 0.5) + xs + 0.5)[want[0]], rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------- flownet.data.synthetic_face dataset

def _ring_landmarks(datasets, tmp_path) -> Path:
    """A landmark cache (:func:`flownet.data.synthetic_face.build_landmark_cache`'s format) giving every frame of
    the ``datasets`` the same 68 points on a ring of radius 60 px about (120, 140) of the stored crop: no dlib run
    (these tests are about the random streams and the intensity change, not the face)."""
    angles = np.linspace(0.0, 2 * np.pi, 68, endpoint=False)
    ring = np.stack([120 + 60 * np.cos(angles), 140 + 60 * np.sin(angles)], 1).astype(np.float32)
    base = datasets[0].root / "casme2"
    path = tmp_path / "ring_landmarks.npz"
    np.savez(path, **{str(f.relative_to(base)): ring for ds in datasets for f in ds.frames})
    return path


def test_photometric_augmentation_maps_both_frames_through_one_intensity_curve(shared_data, tmp_path):
    """``photometric`` applies one brightness / contrast / gamma curve to both frames (class docstring: "applied
    identically to both frames", so brightness constancy and the flow still hold). The curve g is read off frame 1
    (plain value -> augmented value, interpolated over its sorted values) and must map plain frame 2 onto augmented
    frame 2 (mutation killed: the change applied to frame 1 only, which made every pair break brightness constancy
    while its ground-truth flow was unchanged; the earlier test looked at frame 1 and the flow)."""
    from flownet.data.synthetic_face import SyntheticFaceFlow
    kw = dict(root=shared_data, split="train", size=48, n_pairs=1, frames_per_clip=1)
    kw["landmark_cache"] = _ring_landmarks([SyntheticFaceFlow(**kw)], tmp_path)
    plain, photo = SyntheticFaceFlow(**kw)[0], SyntheticFaceFlow(photometric=0.3, **kw)[0]
    assert torch.equal(photo["flow"], plain["flow"])
    x1, y1 = plain["img1"].flatten().numpy(), photo["img1"].flatten().numpy()
    order = np.argsort(x1, kind="stable")
    x2, y2 = plain["img2"].flatten().numpy(), photo["img2"].flatten().numpy()
    inside = (x2 >= x1.min()) & (x2 <= x1.max())
    assert inside.mean() > 0.9 and float(np.abs(y1 - x1).mean()) > 0.02      # the curve does change the frames
    g2 = np.interp(x2[inside], x1[order], y1[order])
    assert float(np.median(np.abs(g2 - y2[inside]))) < 0.01


def test_synthetic_face_splits_draw_their_motions_from_different_streams(shared_data, tmp_path):
    """Pair i of a split is determined by (seed, split, i) (class docstring): the head motion of pair 0, which
    depends on the random stream only (not on the face drawn), differs between the train, val and test splits of one
    seed, and is the same for the same split; each item's ``subject`` is its frame's subject folder, one of the
    split's (mutations killed: every split drawing from the stream of "train", so that pair i of the test set moved
    exactly as pair i of the training set; ``subject`` set to the clip folder's name)."""
    from flownet.data.synthetic_face import SyntheticFaceFlow
    kw = dict(root=shared_data, size=32, n_pairs=1, n_val=2, frames_per_clip=1, seed=4)
    splits = ("train", "val", "test")
    kw["landmark_cache"] = _ring_landmarks([SyntheticFaceFlow(split=s, **kw) for s in splits], tmp_path)
    sets = {s: SyntheticFaceFlow(split=s, **kw) for s in splits}
    items = {s: ds[0] for s, ds in sets.items()}
    heads = {s: it["flow_head"] for s, it in items.items()}
    for s, it in items.items():       # its subject: casme2/<subject>/<clip>/img*.jpg, one of the split's subjects
        assert it["subject"] in sets[s].subjects and Path(it["path"]).parent.parent.name == it["subject"]
    assert torch.equal(heads["test"], SyntheticFaceFlow(split="test", **kw)[0]["flow_head"])
    assert not torch.equal(heads["train"], heads["test"]) and not torch.equal(heads["train"], heads["val"])
    assert not torch.equal(heads["val"], heads["test"])


def test_subject_folders_without_frames_are_not_subjects(tmp_path):
    """:func:`list_subjects` lists the ``casme2/`` folders that hold at least one ``<clip>/img*.jpg``: a folder of
    notes, or a subject whose clips are missing, is left out, so it can neither be drawn as a test subject nor count
    toward ``n_test`` (mutation killed: every folder listed)."""
    from flownet.data.synthetic_face import list_subjects, split_subjects
    c2 = tmp_path / "casme2"
    for i in range(1, 6):
        _grey_png(c2 / f"sub{i:02d}" / "EP01" / "img1.jpg", 100)
    (c2 / "sub06" / "EP02").mkdir(parents=True)             # a subject whose frames are missing
    (c2 / "notes").mkdir()
    (c2 / "notes" / "readme.txt").write_text("not a subject")
    assert list_subjects(tmp_path) == [f"sub{i:02d}" for i in range(1, 6)]
    with pytest.raises(ValueError, match="need more than 5 subjects"):
        split_subjects(list_subjects(tmp_path), n_test=5)


def test_frames_per_clip_keeps_evenly_spaced_frames_first_and_last_included(tmp_path):
    """``frames_per_clip`` n keeps n evenly spaced frames of each clip (class docstring): of img1 ... img9, n = 3
    keeps positions round(linspace(0, 8, 3)) = 0, 4, 8, i.e. img1, img5, img9; a clip shorter than n keeps all its
    frames (mutation killed: the first n frames kept, img1, img2, img3: nearly one frame three times over)."""
    from flownet.data.synthetic_face import SyntheticFaceFlow
    c2 = tmp_path / "casme2"
    for i in range(1, 7):
        for k in range(1, 10):
            _grey_png(c2 / f"sub{i:02d}" / "EP01" / f"img{k}.jpg", 100)
        _grey_png(c2 / f"sub{i:02d}" / "EP02" / "img1.jpg", 100)
    ds = SyntheticFaceFlow(root=tmp_path, split="train", n_test=1, n_pairs=1, frames_per_clip=3)
    kept = {(p.parent.parent.name, p.parent.name, p.name) for p in ds.frames}
    assert len(ds.subjects) == 5
    assert kept == {(s, "EP01", f"img{k}.jpg") for s in ds.subjects for k in (1, 5, 9)} | \
        {(s, "EP02", "img1.jpg") for s in ds.subjects}


# --------------------------------------------------------------------------------------------- flownet.registry

@pytest.mark.parametrize("given, name", [("SRFlowNet", "srflownet"), ("sr-flownet", "srflownet"),
                                         ("LiteFlowNet2", "liteflownet2"), ("lfn2", "liteflownet2"),
                                         ("raft-small", "raft_small"), ("RAFT_Large", "raft_large"),
                                         ("TV-L1", "tvl1"), ("Farneback", "farneback"), ("custom", "custom"),
                                         ("ptlflow:RAPIDFlow", "ptlflow:RAPIDFlow")])
def test_estimator_names_normalise_as_documented(given, name):
    """:func:`canonical_name`'s docstring: case, ``-`` and ``_`` are ignored, ``lfn2`` is LiteFlowNet2, and a
    ``ptlflow:<name>`` keeps the ptlflow model's name as written (mutations killed: the ``lfn2`` alias pointing to
    srflownet, raft_large to raft_small, dashes kept, the ptlflow name lower-cased)."""
    from flownet.registry import canonical_name
    assert canonical_name(given) == name


def test_an_unknown_estimator_name_lists_every_known_one():
    """The error for an unknown name lists the names to choose from (mutation killed: the list dropped)."""
    from flownet.registry import ESTIMATORS, canonical_name
    with pytest.raises(ValueError) as err:
        canonical_name("flownet9")
    msg = str(err.value)
    assert "'flownet9'" in msg and all(f"'{n}'" in msg for n in ESTIMATORS)


def test_shipped_checkpoints_resolve_by_name_to_their_own_files():
    """``weights="shipped:<name>"`` names a file of flownet/weights/ by :data:`SHIPPED_CHECKPOINTS`: shipped:generic
    is srflownet_generic.pt, shipped:facial and no weights srflownet_facial.pt; liteflownet2's default is its own
    file; a name the backbone does not ship is refused with the names it does (mutations killed: the name after
    ``shipped:`` ignored, which gave the facial weights for shipped:generic; the list of names dropped)."""
    from flownet.registry import resolve_weights
    assert resolve_weights("shipped:generic").name == "srflownet_generic.pt"
    assert resolve_weights("shipped:facial").name == resolve_weights(None).name == "srflownet_facial.pt"
    assert resolve_weights(None, "lfn2").name == "liteflownet2_facial.pt"
    assert resolve_weights("shipped:generic").is_file()
    with pytest.raises(ValueError, match="shipped:sunset: 'srflownet' ships the checkpoints shipped:facial, "
                                         "shipped:generic, not 'sunset'"):
        resolve_weights("shipped:sunset")


# ------------------------------------------------------------------------------- flownet.data.synthetic_generic

def test_every_object_layer_moves_by_its_own_affine_motion_not_the_backgrounds():
    """The flow at a frame-1 pixel is ``A_k(x) - x`` of the topmost layer k that covers it (module docstring): on the
    pixels of each object layer (``layers == k``) the flow is one affine function of (x, y) (least-squares residual
    ~0) and differs from the background's motion (``flow_expr`` not 0), for the lower objects as for the top one
    (mutation killed: a layer's ``torch.where`` falling back to the background's flow instead of the flow so far,
    which gave every object but the last drawn the camera motion; the earlier warping test checked the top object)."""
    from flownet.data.synthetic_generic import make_scene_pair
    checked_lower = 0
    for seed in range(3):
        p = make_scene_pair(64, np.random.default_rng(seed), n_objects=(3, 3), noise=0.0, blur=0.0)
        top = int(p["layers"].max())
        for k in range(1, top + 1):
            own = p["layers"] == k
            if int(own.sum()) < 10:
                continue
            ys, xs = torch.nonzero(own, as_tuple=True)
            design = torch.stack([xs.double(), ys.double(), torch.ones_like(xs, dtype=torch.float64)], 1)
            for c in range(2):
                f = p["flow"][c][own].double()
                coef = torch.linalg.lstsq(design, f[:, None]).solution
                assert float((design @ coef)[:, 0].sub(f).abs().max()) < 1e-3, (seed, k, c)
            assert float(p["flow_expr"][:, own].abs().max()) > 1e-3, (seed, k)
            checked_lower += k < top
    assert checked_lower >= 2


# ------------------------------------------------------------------------------------------- icegan.gan.evaluate

def test_diversity_metrics_read_the_faces_onset_major_then_class_then_draw():
    """:func:`diversity_metrics` on 1 x 1 faces in the documented order (onset-major, then class, then draw):
    onset 0 (grey 5): class 0 draws 0, 4, class 1 draws 10, 10; onset 1 (grey 50): class 0 draws 100, 101, class 1
    draws 130, 127. z_diversity = mean(|0-4|, |10-10|, |100-101|, |130-127|) = 8 / 4 = 2; class_diversity (first
    draws) = mean(|0-10|, |100-130|) = 20; mean_abs_change_from_onset = (5+1+5+5 + 50+51+80+77) / 8 = 34.25
    (mutation killed: the first draws read class-major, which compared onsets instead of classes: 110)."""
    from icegan.gan.evaluate import diversity_metrics
    syn = np.array([0, 4, 10, 10, 100, 101, 130, 127], np.uint8).reshape(8, 1, 1)
    onset = np.array([5, 50], np.uint8).reshape(2, 1, 1)
    src = np.repeat(np.arange(2), 4)
    out = diversity_metrics(syn, onset, src, n_classes=2, n_per_class=2)
    assert out == pytest.approx({"z_diversity": 2.0, "class_diversity": 20.0, "mean_abs_change_from_onset": 34.25})


# ---------------------------------------------------------------------------------------------- flownet.plugins

def test_a_spec_splits_at_its_last_colon_so_a_path_may_hold_one(tmp_path):
    """``'path/to/file.py:factory'``: the factory is what follows the *last* colon, so a file in a folder whose name
    holds a colon (``runs/v1:2/net.py``) still loads (mutation killed: the spec split at its first colon, which read
    ``2/net.py:make`` as the factory's name and refused the spec)."""
    from flownet.plugins import load_factory
    f = tmp_path / "v1:2" / "net.py"
    f.parent.mkdir()
    f.write_text("def make():\n    return 'made by net.py'\n")
    assert load_factory(f"{f}:make")() == "made by net.py"


# ---------------------------------------------------------------------------------------------- flownet.selfsup

def test_occluded_fraction_leaves_a_model_in_eval_mode_in_eval_mode():
    """:func:`occluded_fraction` runs the model in eval mode and puts back the mode it found: a model in eval mode
    stays in eval mode (mutation killed: the mode put back as ``train(True)``, which switched a teacher or a model
    under evaluation into training mode; the earlier test started from training mode)."""
    from test_flow_selfsup import _UpdateStub, smooth_texture

    from flownet.selfsup import occluded_fraction
    model = _UpdateStub(iters=2)
    model.eval()
    occluded_fraction(model, [(smooth_texture(16, 16, seed=1), smooth_texture(16, 16, seed=2))], 0.01, [0.5])
    assert not model.training


def test_selfsup_saves_the_student_as_its_weights_and_keeps_the_last_five_logged_steps(tmp_path, monkeypatch):
    """The run's ``weights.pt`` is the final model, the student after its 4 steps (the network of the last
    checkpoint, ``last.pt``), not the teacher of ``teacher.pt``; metrics.json's ``history_tail`` holds the *last*
    five logged steps of each stage: with 7 teacher steps and 4 student steps logged at every step, teacher steps 3-7
    and student steps 1-4 (mutations killed: the teacher saved as the final weights; the first five steps kept,
    teacher steps 1-5, which hid how the stage ended)."""
    from test_flow_selfsup import _loop_run

    from flownet.models.state_dict import read_torch_file
    from flownet.registry import load_srflownet
    res, _ = _loop_run(tmp_path, monkeypatch, "train.teacher_steps=7")
    assert [r["step"] for r in res["history_tail"]["teacher"]] == [3, 4, 5, 6, 7]
    assert [r["step"] for r in res["history_tail"]["student"]] == [1, 2, 3, 4]
    run = tmp_path / "loop"
    final = load_srflownet(run / "weights.pt").state_dict()
    last = read_torch_file(run / "last.pt", "checkpoint")["model"]
    teacher = load_srflownet(run / "teacher.pt").state_dict()
    assert all(torch.equal(final[k], last[k]) for k in final)
    assert not all(torch.equal(final[k], teacher[k]) for k in final)
