"""Property-based tests (hypothesis) of the data preprocessing: apex spotting, face alignment, the landmark regions,
the composite's feature table and the frame reader (icegan/data/spotting.py, icegan/data/align.py,
icegan/data/roi.py, icegan/data/features.py, icegan/data/smic.py, flownet/frame_io.py).

Each property holds for every input of its kind, so hypothesis draws them (the "suite" profile of
tests/conftest.py: the same draws every run):

* apex spotting: the motion curve of a clip whose flow is a known field times a known amplitude profile is that
  profile times the field's spread about its median (the head-motion compensation removes any common vector); a
  profile symmetric and strictly peaked at frame k (k at least 3 frames from either end, the half width of the
  5-frame smoothing plus one) gives frame k; a clip whose face region moves locally and peaks at k gives k with
  real DIS flow; the apex of a clip on disk is always one of its frames from the onset to the offset, never the
  onset itself, and a span of fewer than two frames is refused naming the clip;
* alignment (ICE-GAN Sec. IV-B: one eye-levelled landmark box per clip): a face moved by a known similarity
  transform (rotation, scale, translation) gets back its rotation as ``angle_deg`` and a matrix whose composition
  with the transform is a pure scale, the same crop for every rotation and shift; the eye line is horizontal in
  the crop and every landmark lies inside it; ``align_by_eyes`` is invariant under any similarity and puts the eye
  centres at (-1, 0) and (1, 0);
* regions (HTNet): every window lies inside the map for any centre, equals a plain loop's cut, is centred on the
  rounded centre when it fits; region centres of a face at k times the resolution are the same; with face and map
  of one size the centres are the landmark means;
* feature table (``../shared/data/README.md``): subjects are prefixed by the canonical dataset name whatever alias
  the table uses, flow files carry the space before ``.png``, the 442 real clips read so;
* SMIC folder trees: subject and class folders of any case give records ``smic/sN``, onset and offset the first and
  last frame;
* frames: PNG (grey, colour, 8 and 16 bit) and BMP written then read give the same pixels; bytes after a JPEG's end
  marker change nothing; every strict prefix of a PNG, BMP or JPEG is refused naming the file; a 16-bit PNG of
  12-bit data is refused read as 8 bits and read exactly with ``IMREAD_UNCHANGED``.
"""
from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import icegan.data.spotting as spotting
from flownet.frame_io import oriented_size, read_frame
from icegan.data.align import LEFT_EYE, RIGHT_EYE, box_matrix, compute_alignment
from icegan.data.features import CSV_NAME, FLOW_DIR, dataset_name, read_megc2019_table
from icegan.data.records import ClipRecord
from icegan.data.roi import ROI_POINTS, align_by_eyes, roi_centers, roi_patches
from icegan.data.smic import SMIC


# ------------------------------------------------------------------------------------------------ apex spotting
@st.composite
def peaked_profiles(draw, max_frames: int = 24):
    """(amplitudes (T,), k): strictly decreasing away from frame k, the same at equal distances (g(|t - k|) with g
    strictly decreasing and positive), 3 <= k <= T - 4."""
    t = draw(st.integers(7, max_frames))
    k = draw(st.integers(3, t - 4))
    steps = draw(st.lists(st.floats(0.5, 5.0), min_size=t, max_size=t))
    g = np.cumsum(steps[::-1])[::-1] + 0.1          # g[0] > g[1] > ... > 0
    return np.array([g[abs(i - k)] for i in range(t)]), k


def _fake_flow(amplitudes, field):
    """A ``_flow`` whose onset → frame t flow is ``amplitudes[t] * field``; frame t is the constant image t."""
    return lambda onset, frame, method: amplitudes[int(frame[0, 0])] * field


@given(peaked_profiles(), hnp.arrays(np.float32, (12, 12, 2), elements=st.floats(-4, 4, width=32)),
       hnp.arrays(np.float32, 2, elements=st.floats(-20, 20, width=32)))
def test_a_known_flow_profile_peaked_at_frame_k_is_spotted_at_k(case, field, head):
    amps, k = case
    frames = [np.full((12, 12), t, np.uint8) for t in range(len(amps))]
    mask = spotting.ellipse_mask((12, 12))
    spread = np.sqrt(((field[mask] - np.median(field[mask], axis=0)) ** 2).sum(-1)).mean()
    assume(spread > 1e-3)
    with mock.patch.object(spotting, "_flow", _fake_flow(amps, field)):
        mags = spotting.flow_magnitudes(frames, mask)
        # the head's own motion (one vector for the whole face) adds nothing once compensated
        with mock.patch.object(spotting, "_flow", _fake_flow(amps, field + head)):
            moved = spotting.flow_magnitudes(frames, mask)
        with mock.patch.object(spotting, "face_hull_mask", lambda *a, **kw: None):
            idx, name, curve = spotting.spot_apex_index(frames)
    assert mags[0] == 0 and np.allclose(mags[1:], amps[1:] * spread, rtol=1e-5)
    assert np.allclose(moved[1:], amps[1:] * np.sqrt(((field[mask] + head - np.median(field[mask] + head, axis=0))
                                                      ** 2).sum(-1)).mean(), rtol=1e-4)
    assert idx == k and np.allclose(curve, mags) and "ellipse" in name


@given(st.lists(st.floats(0, 100), min_size=1, max_size=40), st.integers(1, 9))
def test_smoothing_keeps_the_length_and_stays_between_the_curve_extremes(curve, window):
    s = spotting.smooth_curve(np.array(curve), window)
    assert s.shape == (len(curve),)
    assert (s >= min(curve) - 1e-9).all() and (s <= max(curve) + 1e-9).all()
    if len(set(curve)) == 1:
        assert np.allclose(s, curve[0])


def _moving_face(t_frames: int, k: int, seed: int, amp: float, side: int = 64) -> list[np.ndarray]:
    """A smooth random texture whose central disc (a fifth of the frame's area) shifts right by amp·tent(t) pixels,
    the tent peaking at frame k (0 at the onset), the rest still."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((side, side)).astype(np.float32), (0, 0), 2)
    tex = (tex - tex.min()) / (tex.max() - tex.min()) * 255
    yy, xx = np.mgrid[0:side, 0:side]
    disc = (xx - side / 2) ** 2 + (yy - side / 2) ** 2 < (side / 4) ** 2
    half = max(k, t_frames - 1 - k)
    out = []
    for t in range(t_frames):
        d = amp * (1 - abs(t - k) / half) if t else 0.0
        moved = cv2.warpAffine(tex, np.float32([[1, 0, d], [0, 1, 0]]), (side, side), borderMode=cv2.BORDER_REFLECT)
        out.append(np.clip(np.where(disc, moved, tex), 0, 255).astype(np.uint8))
    return out


@settings(max_examples=10)
@given(st.integers(8, 14), st.data(), st.integers(0, 2 ** 31), st.floats(1.5, 4.0))
def test_a_face_whose_motion_peaks_at_frame_k_is_spotted_at_k_with_dis_flow(t_frames, data, seed, amp):
    k = data.draw(st.integers(3, t_frames - 4))
    with mock.patch.object(spotting, "face_hull_mask", lambda *a, **kw: None):
        idx, _, _ = spotting.spot_apex_index(_moving_face(t_frames, k, seed, amp), method="dis")
    assert idx == k


@st.composite
def clips_on_disk(draw):
    """(frame numbers on disk, onset or None, offset or None)."""
    numbers = sorted(draw(st.sets(st.integers(0, 300), min_size=1, max_size=8)))
    onset = draw(st.one_of(st.none(), st.sampled_from(numbers), st.integers(0, 300)))
    offset = draw(st.one_of(st.none(), st.sampled_from(numbers), st.integers(0, 300)))
    return numbers, onset, offset


@settings(max_examples=25)
@given(clips_on_disk(), st.sampled_from(["middle", "dis"]), st.integers(0, 2 ** 31))
def test_a_spotted_apex_is_a_frame_of_the_clip_after_its_onset(clip, method, seed):
    numbers, onset, offset = clip
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for n in numbers:
            paths.append(Path(d) / f"img{n}.png")
            cv2.imwrite(str(paths[-1]), rng.integers(0, 256, (24, 24), dtype=np.uint8))
        rec = ClipRecord(dataset="smic", subject="smic/s1", clip="s1_ne_01", emotion="negative", class3=0,
                         onset=onset, apex=None, offset=offset, frame_numbers=tuple(numbers),
                         frame_paths=tuple(paths), apex_method="unspotted", clip_dir=Path(d))
        span = [n for n in numbers if (onset is None or n >= onset) and (offset is None or n <= offset)]
        with mock.patch.object(spotting, "face_hull_mask", lambda *a, **kw: None):
            if len(span) < 2:
                with pytest.raises(ValueError, match=f"^smic/s1/s1_ne_01: apex spotting needs at least 2 frames, "
                                                     f"found {len(span)}"):
                    spotting.spot_record_apex(rec, method=method)
                return
            out = spotting.spot_record_apex(rec, method=method)
    assert out.apex in span[1:] and out.apex_method != "unspotted"
    assert (out.onset, out.offset, out.frame_numbers) == (onset, offset, tuple(numbers))
    if method == "middle":      # the frame after the first nearest the clip's middle (the later of two equally near)
        twice = (span[0] if onset is None else onset) + (span[-1] if offset is None else offset)
        assert out.apex == min(span[1:], key=lambda n: (abs(2 * n - twice), -n))
        if span == list(range(span[0], span[-1] + 1)) and onset in (None, span[0]) and offset in (None, span[-1]):
            assert out.apex == span[len(span) // 2]     # every frame of the clip present: its middle frame


# ------------------------------------------------------------------------------------------------ alignment
@st.composite
def faces(draw):
    """(68, 2) landmarks of a plausible face: random points in a box, eyes apart horizontally (not coinciding) and the
    chin below them, so the face is at least 20 px wide and tall (6 px at the smallest similarity scale, 0.3; box_matrix
    refuses a landmark box under 4 px as no face)."""
    pts = draw(hnp.arrays(np.float64, (68, 2), elements=st.floats(0, 100)))
    gap, height = draw(st.floats(20, 60)), draw(st.floats(20, 60))
    pts[RIGHT_EYE] = pts[RIGHT_EYE] * 0.05 + [20, 30]
    pts[LEFT_EYE] = pts[LEFT_EYE] * 0.05 + [20 + gap, 30]
    pts[8] = [20 + gap / 2, 30 + height]            # the chin
    return pts


@st.composite
def similarities(draw, scale: bool = True):
    """(2, 3) matrix of a similarity transform: rotation (any angle), scale 0.3..4, translation."""
    theta = draw(st.floats(-179.0, 179.0))
    s = draw(st.floats(0.3, 4.0)) if scale else 1.0
    tx, ty = draw(st.floats(-500, 500)), draw(st.floats(-500, 500))
    c, si = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    return np.array([[s * c, -s * si, tx], [s * si, s * c, ty]]), theta, s


def _apply(m, pts):
    return pts @ m[:, :2].T + m[:, 2]


@given(faces(), similarities(), st.floats(0, 0.5))
def test_a_known_similarity_of_the_face_is_undone_by_its_alignment(face, sim, margin):
    levelled, _, _ = box_matrix(face, margin)       # the face itself, eyes level
    face0 = _apply(levelled, face)
    s_mat, theta, s = sim
    moved = _apply(s_mat, face0)
    m, native, angle = box_matrix(moved, margin)
    assert (angle - theta + 180) % 360 - 180 == pytest.approx(0, abs=1e-6)
    lin = m[:, :2] @ s_mat[:, :2]                   # crop ∘ similarity: a pure scale (no rotation, no shear)
    assert np.allclose(lin, np.eye(2) * lin[0, 0], atol=1e-9 * max(1, s)) and lin[0, 0] > 0
    crop = _apply(m, moved)
    m0, native0, _ = box_matrix(face0, margin)
    # the same crop, scaled by s about the crop centre (each side is its own rounding of the box side)
    assert np.allclose(crop - native / 2, s * (_apply(m0, face0) - native0 / 2), atol=1e-6 * (1 + s) * 100)


@given(faces(), similarities(scale=False), st.floats(0, 0.5))
def test_the_crop_of_a_face_is_the_same_for_every_rotation_and_shift(face, sim, margin):
    s_mat, _, _ = sim
    m, native, _ = box_matrix(face, margin)
    m2, native2, _ = box_matrix(_apply(s_mat, face), margin)
    assert abs(native2 - native) <= 1                                # (its side rounded to a whole pixel)
    assert np.allclose(_apply(m2, _apply(s_mat, face)) - native2 / 2, _apply(m, face) - native / 2, atol=1e-6)


@given(faces(), similarities(), st.floats(0, 0.5))
def test_the_eye_line_is_level_and_every_landmark_lies_inside_the_crop(face, sim, margin):
    pts = _apply(sim[0], face)
    m, native, _ = box_matrix(pts, margin)
    q = _apply(m, pts)
    assert q[RIGHT_EYE].mean(0)[1] == pytest.approx(q[LEFT_EYE].mean(0)[1], abs=1e-6)
    assert q[RIGHT_EYE].mean(0)[0] < q[LEFT_EYE].mean(0)[0]
    span = np.ptp(_apply(box_matrix(pts, 0)[0], pts), axis=0).max()
    # inside the native × native crop; the side is rounded to whole pixels, at most half a pixel off (margin 0)
    assert (q >= -0.5 - 1e-6).all() and (q <= native + 0.5 + 1e-6).all()
    assert native >= 16 and abs(native - max(16, span * (1 + 2 * margin))) <= 0.5 + 1e-6
    al = compute_alignment(np.zeros((4, 4), np.uint8), landmarks=pts.astype(np.float32), margin=margin, refine=False)
    assert np.allclose(al.matrix, box_matrix(pts.astype(np.float32), margin)[0])
    assert np.allclose(al.to_output(pts, 64), _apply(al.output_matrix(64), pts), atol=1e-3)


@given(st.lists(faces(), min_size=1, max_size=3), similarities())
def test_eye_normalised_landmarks_are_invariant_under_any_similarity(face_list, sim):
    pts = np.stack(face_list)
    moved = np.stack([_apply(sim[0], p) for p in face_list])
    a, b = align_by_eyes(pts), align_by_eyes(moved)
    assert np.allclose(a, b, atol=1e-7)
    assert np.allclose(a[:, 36:42].mean(1), [-1, 0], atol=1e-9) and np.allclose(a[:, 42:48].mean(1), [1, 0], atol=1e-9)


@given(faces(), st.integers(0, 2))
def test_eye_normalisation_refuses_a_face_whose_eye_centres_coincide(face, i):
    pts = np.stack([face] * 3)
    pts[i, 42:48] = pts[i, 36:42]
    with pytest.raises(ValueError, match=f"^face {i}: both eye centres at the same point"):
        align_by_eyes(pts)


# ------------------------------------------------------------------------------------------------ regions
@given(st.integers(1, 3), st.integers(2, 3), st.integers(8, 32), st.integers(8, 32), st.data())
def test_region_windows_lie_inside_the_map_and_equal_a_plain_loops_cut(n, c, h, w, data):
    patch = data.draw(st.integers(1, min(h, w)))
    # mostly on and around the map (where rounding matters), now and then far outside (where clamping does)
    centers = data.draw(hnp.arrays(np.float64, (n, 4, 2), elements=st.one_of(st.floats(-4, 36), st.floats(-1e4, 1e4))))
    x = torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w)
    out = roi_patches(x, centers, patch)
    assert out.shape == (n, c, 2 * patch, 2 * patch)
    for i in range(n):
        for r in range(4):
            cx, cy = centers[i, r]
            x0 = min(max(int(np.round(cx - (patch - 1) / 2)), 0), w - patch)
            y0 = min(max(int(np.round(cy - (patch - 1) / 2)), 0), h - patch)
            tile = out[i, :, (r // 2) * patch:(r // 2 + 1) * patch, (r % 2) * patch:(r % 2 + 1) * patch]
            assert torch.equal(tile, x[i, :, y0:y0 + patch, x0:x0 + patch])
            inside = patch // 2 <= np.round(cx) < w - patch // 2 and patch // 2 <= np.round(cy) < h - patch // 2
            if patch % 2 and inside and abs(cx - np.round(cx)) != 0.5 and abs(cy - np.round(cy)) != 0.5:
                assert tile[0, patch // 2, patch // 2] == x[i, 0, int(np.round(cy)), int(np.round(cx))]


@given(hnp.arrays(np.float64, (2, 68, 2), elements=st.floats(-0.5, 99.5)), st.integers(1, 4), st.integers(8, 40))
def test_region_centres_of_a_face_at_k_times_the_resolution_are_the_same(points, k, map_size):
    sizes = np.array([[100, 100], [100, 80]])
    a = roi_centers(points, sizes, map_size)
    b = roi_centers(k * (points + 0.5) - 0.5, k * sizes, map_size)
    assert np.allclose(a, b, atol=1e-9)
    same = roi_centers(points, np.array([[map_size, map_size]] * 2), map_size)
    assert np.allclose(same, np.stack([points[:, list(idx)].mean(1) for idx in ROI_POINTS], 1), atol=1e-9)


# ------------------------------------------------------------------------------------------------ feature table
@st.composite
def feature_tables(draw):
    """(rows of a composite CSV with aliases in any case, the canonical dataset of each row)."""
    n = draw(st.integers(1, 8))
    rows, canon = [], []
    aliases = {"casme2": ["casme2", "CASME2", "CASME_2", "CasmeII", " casme2 "], "samm": ["samm", "SAMM", "Samm "],
               "smic": ["smic", "SMIC_HS", "SMIC-HS", "smic-hs"], "cas3": ["cas3", "CAS3"]}
    for i in range(n):
        ds = draw(st.sampled_from(sorted(aliases)))
        sub = draw(st.sampled_from(["sub01", "006", "s1", "spNO.1"]))
        rows.append({"dataset": draw(st.sampled_from(aliases[ds])), "sub": sub, "filename_o": f"clip_{i}",
                     "label": str(draw(st.integers(0, 2)))})
        canon.append(ds)
    return rows, canon


@given(feature_tables())
def test_feature_table_subjects_are_prefixed_by_the_canonical_dataset_and_flow_names_keep_the_space(table):
    rows, canon = table
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / FLOW_DIR).mkdir()
        pd.DataFrame(rows).to_csv(root / CSV_NAME, index=False)
        got = read_megc2019_table(root)
        assert list(got["dataset"]) == canon
        assert list(got["subject"]) == [f"{c}/{r['sub']}" for c, r in zip(canon, rows)]
        assert list(got["path"]) == [str(root / FLOW_DIR / f"{r['sub']}_{r['filename_o']} .png") for r in rows]
        assert list(got["label"]) == [int(r["label"]) for r in rows]
        wanted = sorted(set(canon))[:1]
        part = read_megc2019_table(root, datasets=[w.upper() for w in wanted])
        assert list(part["subject"]) == [s for s, c in zip(got["subject"], canon) if c in wanted]


@given(st.one_of(st.text(alphabet="aZ09_-/. \tS", max_size=8), st.text(max_size=8)))
def test_dataset_names_are_canonical_once_mapped(name):
    n = dataset_name(name)
    assert n is None or (dataset_name(n) == n and re.fullmatch(r"[a-z0-9][a-z0-9_-]*", n))
    if re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name.strip().lower()):      # a usable name is kept, lower-cased
        assert n is not None


def test_the_real_composite_table_has_442_prefixed_clips_whose_flow_files_exist(shared_data):
    t = read_megc2019_table(shared_data / "megc2019_htnet")
    assert len(t) == 442 and t["subject"].nunique() == 68
    assert t["dataset"].value_counts().to_dict() == {"smic": 164, "casme2": 145, "samm": 133}
    assert all(s.startswith(f"{d}/") for d, s in zip(t["dataset"], t["subject"]))
    assert all(p.endswith(" .png") and Path(p).is_file() for p in t["path"])


# ------------------------------------------------------------------------------------------------ SMIC folder trees
@settings(max_examples=20)
@given(st.lists(st.tuples(st.integers(1, 25), st.sampled_from(["negative", "Positive", "SURPRISE"]),
                          st.sets(st.integers(0, 999), min_size=1, max_size=3)), min_size=1, max_size=4),
       st.booleans())
def test_smic_records_of_any_folder_case_are_prefixed_and_span_their_frames(clips, upper):
    with tempfile.TemporaryDirectory() as d:
        hs = Path(d) / "HS"
        want = {}
        for j, (s, cls, frames) in enumerate(clips):
            subj = hs / f"{'S' if upper else 's'}{s}"
            clip = subj / ("Micro" if upper else "micro") / cls / f"s{s}_{cls[:2].lower()}_{j:02d}"
            clip.mkdir(parents=True)
            for f in frames:
                (clip / f"reg_image{f}.bmp").write_bytes(b"")
            want[(f"smic/s{s}", clip.name)] = (cls.lower(), min(frames), max(frames))
        recs = SMIC(Path(d)).records()
    assert {(r.subject, r.clip): (r.emotion, r.onset, r.offset) for r in recs} == want
    numbers = [int(r.subject.split("/s")[1]) for r in recs]
    assert numbers == sorted(numbers) and all(r.apex is None and r.apex_method == "unspotted" for r in recs)


# ------------------------------------------------------------------------------------------------ frames
@st.composite
def images(draw, dtype=np.uint8):
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    shape = draw(st.sampled_from([(h, w), (h, w, 3)]))
    hi = 255 if dtype == np.uint8 else 65535
    return draw(hnp.arrays(dtype, shape, elements=st.integers(0, hi)))


def _flag(img):
    return cv2.IMREAD_UNCHANGED if img.dtype == np.uint16 else (cv2.IMREAD_COLOR if img.ndim == 3
                                                                else cv2.IMREAD_GRAYSCALE)


@given(st.one_of(images(), images(np.uint16)), st.sampled_from([".png", ".bmp"]))
def test_a_frame_written_then_read_gives_the_same_pixels(img, ext):
    assume(not (ext == ".bmp" and img.dtype == np.uint16))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"frame{ext}"
        assert cv2.imwrite(str(path), img)
        got = read_frame(path, _flag(img))
        assert got.dtype == img.dtype and np.array_equal(got, img)
        assert oriented_size(path) == (img.shape[1], img.shape[0])
        if img.dtype == np.uint16 and img.max() >= 4096:        # read as 8 bits: the top 8 bits (OpenCV's rule)
            grey = read_frame(path)
            want = img >> 8 if img.ndim == 2 else cv2.cvtColor((img >> 8).astype(np.uint8), cv2.COLOR_BGR2GRAY)
            assert grey.dtype == np.uint8 and (img.ndim == 3 or np.array_equal(grey, want))


@given(hnp.arrays(np.uint16, st.tuples(st.integers(1, 16), st.integers(1, 16)), elements=st.integers(0, 4095)))
def test_a_16_bit_frame_of_12_bit_data_is_refused_as_8_bits_and_read_exactly_unchanged(img):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "deep.png"
        cv2.imwrite(str(path), img)
        with pytest.raises(ValueError, match=f"^cannot read image {re.escape(str(path))}: a 16-bit image whose "
                                             f"values reach only {int(img.max())} of 65535"):
            read_frame(path)
        assert np.array_equal(read_frame(path, cv2.IMREAD_UNCHANGED), img)
        assert np.array_equal(read_frame(path, cv2.IMREAD_ANYDEPTH), img)


@given(images(), st.sampled_from([".png", ".bmp", ".jpg"]), st.data())
def test_every_strict_prefix_of_a_frame_file_is_refused_naming_the_file(img, ext, data):
    ok, buf = cv2.imencode(ext, img)
    full = buf.tobytes()
    # anywhere, and often in the last bytes (a PNG's IEND checksum, a JPEG's last scan bytes and end marker)
    cut = len(full) - data.draw(st.one_of(st.integers(1, 8), st.integers(1, len(full))))
    signature = {".png": 8, ".bmp": 6, ".jpg": 2}[ext]      # what a reader needs to know the format
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"cut{ext}"
        path.write_bytes(full[:cut])
        # a file cut after its signature is named as cut (not merely "cannot decode", which OpenCV alone says)
        said = "truncated: .*copy the file again$" if cut >= signature else ""
        with pytest.raises(ValueError, match=f"^cannot read image {re.escape(str(path))}: {said}"):
            read_frame(path, _flag(img))


@given(images(), st.binary(max_size=64))
def test_bytes_after_a_jpeg_end_marker_change_nothing(img, trailer):
    ok, buf = cv2.imencode(".jpg", img)
    with tempfile.TemporaryDirectory() as d:
        plain, padded = Path(d) / "a.jpg", Path(d) / "b.jpg"
        plain.write_bytes(buf.tobytes())
        padded.write_bytes(buf.tobytes() + trailer)
        assert np.array_equal(read_frame(plain, _flag(img)), read_frame(padded, _flag(img)))
        assert read_frame(plain, _flag(img)).shape == img.shape
