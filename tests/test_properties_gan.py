"""Property-based tests (hypothesis) of the ICE-GAN data and evaluation code (icegan/gan/pairs.py, synthesis.py,
generate.py, evaluate.py, perceptual.py).

Each property holds for every input hypothesis draws (the "suite" profile of tests/conftest.py: the same draws every
run); the networks are the tests' tiny ones (16 px generator), so a property costs milliseconds per example.

Pairs (pairs.py):

* a LOSO fold's pairs (``by_subjects(include, exclude=held_out)``) on the real CASME II crops never hold a held-out
  subject, hold every pair of the other included subjects, and with the held-out pairs partition the set; subject
  ids with and without the ``casme2/`` prefix select the same pairs; an unknown subject raises ValueError naming it;
* ``unique_clips`` keeps exactly one pair per clip, the first, in order; ``select`` by mask = by index;
* on a drawn CASME II-layout folder, ``load_casme2_pairs`` makes one pair per frame of apex−k … apex+k that exists
  (the paper's Sec. IV-B neighbour pairs), counts the clips outside the composite, lists the unverified ones as
  skipped, and the ``.npz`` cache gives back exactly what the frames gave;
* ``to_tensor`` then ``synthesis.to_uint8`` is the identity on uint8 faces; ``class_id`` round-trips names and ids
  and raises ValueError for anything else.

Synthesis (synthesis.py):

* ``synthesize``: M = N·|classes|·n faces, onset-major then class then draw, each equal to G(onset[src], z, class)
  with z the seed's draws; the same for any batch size; same seed → same faces;
* ``balanced_augmentation``: exactly target − count_k synthetic faces of class k (real + synthetic balanced at the
  largest real count by default), made only from the onsets given (a fold's training onsets: never a held-out
  subject's), every onset used ⌊M/N⌋ or ⌈M/N⌉ times; deterministic per seed; a target below a real count raises.

Onsets for ``icegan generate`` (generate.py): ``load_onsets`` gives S×S faces equal to the training resize of each
image, names in order, and a note exactly when some image was not S×S, counting those and the non-square ones.

Evaluation (evaluate.py):

* ``identity_metrics``: identical embeddings give distance 0 and rank-1 100 %; the distance is symmetric in
  (onset, query); both numbers are invariant to translating / rotating all embeddings, to reordering the onsets, to
  renaming subjects, and rank-1 to scaling (the distance scales with it); rank-1 ∈ [0, 1];
* ``face_embeddings`` of the same real crop twice gives identical embeddings (distance 0, rank-1 1);
* ``diversity_metrics``: a copy of the onset scores 0 on all three; closed forms for constant offsets;
* ``FlowRecognizer.features``: 3·grid² features per pair, each sample's independent of the batch;
* ``evaluate_generator`` controllability: a recognizer that always answers class k scores exactly 1/K, per class
  1 for k and 0 for the others; any recognizer's controllability is the mean of its per-class values, in [0, 1].

Perceptual cost networks (perceptual.py, ``../shared/papers/icegan_identity_aware_capsule_gan.txt`` Sec. III-C,
Eq. 4): ``EmbeddingPerceptual`` equals ‖ê(fake) − ê(onset)‖² averaged, is 0 for fake = onset, lies in [0, 4], has
finite gradients for ``fake`` and none for the generator; ``VGGPerceptual`` (random VGG16 weights written to a
file) equals the MSE of the relu3_3 features, is 0 for identical inputs, ≥ 0, gives the same value for grey and
grey-repeated-to-RGB input, with finite gradients for ``fake`` only.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from icegan.gan import evaluate as gan_evaluate
from icegan.gan.evaluate import FlowRecognizer, diversity_metrics, evaluate_generator, face_embeddings, identity_metrics
from icegan.gan.generate import load_onsets
from icegan.gan.pairs import CLASS_NAMES, PairSet, class_id, fit_square, load_casme2_pairs, read_grey, to_tensor
from icegan.gan.perceptual import EmbeddingPerceptual, VGGPerceptual
from icegan.gan.synthesis import balanced_augmentation, synthesize, to_uint8
from icegan.gan.trainer import GanConfig
from icegan.models.generator import Generator

SEEDS = st.integers(0, 2 ** 31 - 1)
#: the search profile draws many examples; a slow property keeps at least 200 there, a few in the suite
SEARCH = settings.default.max_examples > 100


def _few(n: int) -> int:
    return 200 if SEARCH else n


def _tiny_generator(seed: int = 0, n_classes: int = 3) -> Generator:
    torch.manual_seed(seed)
    return Generator(img_size=16, z_dim=4, n_classes=n_classes, id_dim=8, base_channels=4, max_channels=8,
                     grm_nodes=2).eval()


G = _tiny_generator()


# ---------------------------------------------------------------------------------------------------- pairs.py

_REAL: dict[int, PairSet] = {}


def _real_pairs(root: Path, k: int) -> PairSet:
    if k not in _REAL:
        _REAL[k] = load_casme2_pairs(root / "casme2", img_size=16, apex_neighbors=k, cache=False)
    return _REAL[k]


@settings(max_examples=_few(20))
@given(st.integers(0, 2), st.data())
def test_a_folds_pairs_never_hold_its_held_out_subjects(shared_data, k, data):
    ps = _real_pairs(shared_data, k)
    subjects = sorted(set(ps.subjects))
    held = data.draw(st.lists(st.sampled_from(subjects), min_size=1, max_size=3, unique=True))
    include = data.draw(st.none() | st.lists(st.sampled_from(subjects), min_size=1, unique=True))
    bare = data.draw(st.booleans())               # ids without the casme2/ prefix select the same subjects
    name = (lambda s: s.split("/", 1)[1]) if bare else (lambda s: s)
    train = ps.by_subjects(None if include is None else [name(s) for s in include], exclude=[name(s) for s in held])
    want = (set(subjects) if include is None else set(include)) - set(held)
    assert not set(train.subjects) & set(held)
    assert set(train.subjects) == want
    idx = [i for i, s in enumerate(ps.subjects) if s in want]
    assert len(train) == len(idx) == len(train.clips) == len(train.onset)
    assert train.clips == [ps.clips[i] for i in idx]
    np.testing.assert_array_equal(train.apex, ps.apex[idx])
    np.testing.assert_array_equal(train.labels, ps.labels[idx])
    if include is None:                           # the fold's training and held-out pairs partition the set
        test = ps.by_subjects(held)
        assert set(test.subjects) == set(held) and len(train) + len(test) == len(ps)
    with pytest.raises(ValueError, match="sub99"):
        ps.by_subjects(exclude=[name(held[0]), "sub99"])


@st.composite
def pair_sets(draw):
    """A small PairSet: 1-12 pairs of 1-3 subjects, clips repeated (neighbour pairs), random faces."""
    n = draw(st.integers(1, 12))
    subj = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    clip = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    rng = np.random.default_rng(draw(SEEDS))
    faces = rng.integers(0, 256, (n, 4, 4), dtype=np.uint8)
    return PairSet(faces, faces[::-1].copy(), rng.integers(0, 3, n), [f"casme2/sub0{s}" for s in subj],
                   [f"sub0{s}/EP{c}" for s, c in zip(subj, clip)], np.arange(n), np.arange(n) + 100)


@given(pair_sets(), st.data())
def test_unique_clips_keeps_the_first_pair_of_every_clip_and_select_takes_masks_or_indices(ps, data):
    u = ps.unique_clips()
    first = [ps.clips.index(c) for c in dict.fromkeys(ps.clips)]
    assert u.clips == [ps.clips[i] for i in first] and len(set(u.clips)) == len(u) == len(set(ps.clips))
    np.testing.assert_array_equal(u.apex_frames, ps.apex_frames[first])
    np.testing.assert_array_equal(u.onset, ps.onset[first])
    assert u.subjects == [ps.subjects[i] for i in first]
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(ps), max_size=len(ps))), dtype=bool)
    a, b = ps.select(mask), ps.select(np.flatnonzero(mask))
    assert a.clips == b.clips and a.subjects == b.subjects and len(a) == int(mask.sum())
    for f in ("onset", "apex", "labels", "onset_frames", "apex_frames"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


@st.composite
def casme2_folders(draw):
    """A CASME II-layout folder as rows: (subject, clip, class3, verified, onset, apex, frames present)."""
    rows = []
    for s in range(draw(st.integers(1, 3))):
        for c in range(draw(st.integers(1, 3))):
            apex = draw(st.integers(3, 6))
            # frames apex-2 .. apex+2 each present or not (the apex always is), plus the onset (frame 1)
            present = {apex} | {apex + d for d in (-2, -1, 1, 2) if draw(st.booleans())}
            rows.append((f"sub{s + 1:02d}", f"EP{c:02d}", draw(st.sampled_from(["", *CLASS_NAMES])),
                         draw(st.booleans() | st.just(True)), 1, apex, sorted(present | {1})))
    return rows


def _write_casme2(root: Path, rows, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = ["subject,filename,emotion,class3,onset,apex,verified,apex_in_folder,note"]
    for subject, clip, cls, verified, onset, apex, frames in rows:
        lines.append(f"{subject},{clip},x,{cls},{onset},{apex}.0,{verified},True,{'' if verified else 'bad dump'}")
        (root / subject / clip).mkdir(parents=True)
        for fr in frames:
            cv2.imwrite(str(root / subject / clip / f"img{fr}.jpg"), rng.integers(0, 256, (12, 10), dtype=np.uint8))
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")


@settings(max_examples=_few(10))
@given(casme2_folders(), st.integers(0, 2), SEEDS)
def test_casme2_pairs_are_one_per_existing_apex_neighbour_and_the_cache_round_trips(rows, k, seed):
    usable = [r for r in rows if r[2] and r[3]]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "casme2"
        _write_casme2(root, rows, seed)
        if not usable:
            with pytest.raises(ValueError, match="no usable composite clips"):
                load_casme2_pairs(root, 8, k, cache=False)
            return
        fresh = load_casme2_pairs(root, 8, k, cache=True, cache_dir=Path(tmp) / "cache")
        assert len(os.listdir(Path(tmp) / "cache")) == 1
        cached = load_casme2_pairs(root, 8, k, cache=True, cache_dir=Path(tmp) / "cache")
        want = [(r, fr) for r in usable for fr in range(r[5] - k, r[5] + k + 1)     # neighbours after the onset
                if fr in r[6] and (fr == r[5] or fr > r[4])]                        # (no offset column here)
        assert fresh.clips == [f"{r[0]}/{r[1]}" for r, _ in want]
        assert fresh.apex_frames.tolist() == [fr for _, fr in want]
        assert fresh.subjects == [f"casme2/{r[0]}" for r, _ in want]
        assert fresh.labels.tolist() == [CLASS_NAMES.index(r[2]) for r, _ in want]
        assert fresh.onset.shape == fresh.apex.shape == (len(want), 8, 8)
        assert fresh.n_not_composite == sum(not r[2] for r in rows)
        assert fresh.skipped == [(f"{r[0]}/{r[1]}", "bad dump") for r in rows if r[2] and not r[3]]
        for ps in (cached,):
            assert ps.clips == fresh.clips and ps.subjects == fresh.subjects and ps.skipped == fresh.skipped
            assert ps.n_not_composite == fresh.n_not_composite
            for f in ("onset", "apex", "labels", "onset_frames", "apex_frames"):
                np.testing.assert_array_equal(getattr(ps, f), getattr(fresh, f))
        # each face is the training resize of its frame
        r, fr = want[-1]
        np.testing.assert_array_equal(fresh.apex[-1], fit_square(read_grey(root / r[0] / r[1] / f"img{fr}.jpg"), 8))


@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 9), SEEDS)
def test_to_tensor_then_to_uint8_is_the_identity(n, h, w, seed):
    faces = np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)
    t = to_tensor(faces)
    assert t.shape == (n, 1, h, w) and float(t.min()) >= -1 and float(t.max()) <= 1
    np.testing.assert_array_equal(to_uint8(t), faces)


@given(st.sampled_from(range(len(CLASS_NAMES))), st.sampled_from([str, lambda i: i, lambda i: CLASS_NAMES[i],
                                                                   lambda i: CLASS_NAMES[i].upper()]))
def test_class_id_round_trips_names_and_ids(i, spell):
    assert class_id(spell(i)) == i


@given(st.integers(-5, 20).filter(lambda i: not 0 <= i < 3).map(str) | st.text(max_size=8).filter(
    lambda s: s not in ("0", "1", "2") and s.lower() not in CLASS_NAMES))
def test_class_id_rejects_anything_else(bad):
    with pytest.raises(ValueError, match="unknown class"):
        class_id(bad)


# ----------------------------------------------------------------------------------------------- synthesis.py

@st.composite
def onsets(draw, max_n: int = 5):
    n = draw(st.integers(1, max_n))
    g = torch.Generator().manual_seed(draw(SEEDS))
    return torch.rand(n, 1, 16, 16, generator=g) * 2 - 1


@settings(max_examples=_few(15))
@given(onsets(), st.lists(st.integers(0, 2), min_size=1, max_size=4), st.integers(1, 3), SEEDS, st.integers(1, 7))
def test_synthesize_orders_onset_class_draw_and_equals_the_generator(onset, classes, n_per, seed, batch):
    apex, src, cls = synthesize(G, onset, classes, n_per, seed=seed, batch_size=batch)
    n = len(onset)
    assert apex.shape == (n * len(classes) * n_per, 1, 16, 16)
    assert src.tolist() == [i for i in range(n) for _ in classes for _ in range(n_per)]
    assert cls.tolist() == [c for _ in range(n) for c in classes for _ in range(n_per)]
    z = torch.randn(len(src), G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        want = G(onset[src], z, cls)
    torch.testing.assert_close(apex, want, rtol=0, atol=1e-5)
    again, _, _ = synthesize(G, onset, classes, n_per, seed=seed, batch_size=64)
    torch.testing.assert_close(again, apex, rtol=0, atol=1e-5)   # the batch size does not matter
    assert torch.equal(synthesize(G, onset, classes, n_per, seed=seed, batch_size=batch)[0], apex)


@settings(max_examples=_few(25))
@given(onsets(max_n=8), st.data(), SEEDS, st.integers(0, 3))
def test_balanced_augmentation_fills_every_class_to_the_target(onset, data, seed, extra):
    n = len(onset)
    labels = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    counts = np.bincount(labels, minlength=3)
    target = data.draw(st.none() | st.just(int(counts.max()) + extra))
    apex, src, cls = balanced_augmentation(G, onset, labels, target_per_class=target, seed=seed, batch_size=5)
    t = int(counts.max()) if target is None else target
    assert np.bincount(cls.numpy(), minlength=3).tolist() == [t - int(c) for c in counts]
    assert (counts + np.bincount(cls.numpy(), minlength=3) == t).all()       # real + synthetic balanced
    m = len(cls)
    assert apex.shape == (m, 1, 16, 16) and len(src) == m
    assert m == 0 or (0 <= int(src.min()) and int(src.max()) < n)           # only the onsets given
    use = np.bincount(src.numpy(), minlength=n)
    assert set(use.tolist()) <= {m // n, -(-m // n)}                          # round-robin
    z = torch.randn(m, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(apex, G(onset[src], z, cls), rtol=0, atol=1e-5)
    a2, s2, c2 = balanced_augmentation(G, onset, labels, target_per_class=target, seed=seed)
    assert torch.equal(s2, src) and torch.equal(c2, cls)
    torch.testing.assert_close(a2, apex, rtol=0, atol=1e-5)
    if counts.max() > 0:
        with pytest.raises(ValueError, match="below the largest real class count"):
            balanced_augmentation(G, onset, labels, target_per_class=int(counts.max()) - 1, seed=seed)


# ------------------------------------------------------------------------------------------------ generate.py

@settings(max_examples=_few(15))
@given(st.lists(st.tuples(st.integers(8, 24), st.integers(8, 24)) | st.just((16, 16)) | st.integers(8, 24).map(
    lambda s: (s, s)), min_size=1, max_size=4),
       SEEDS)
def test_load_onsets_resizes_as_training_and_notes_exactly_the_resized_images(sizes, seed):
    cfg = GanConfig()
    cfg.data.img_size = 16
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        imgs = []
        for i, (h, w) in enumerate(sizes):
            imgs.append(rng.integers(0, 256, (h, w), dtype=np.uint8))
            cv2.imwrite(os.path.join(tmp, f"face{i:02d}.png"), imgs[-1])
        faces, names, note = load_onsets(tmp, cfg)
    assert names == [f"face{i:02d}" for i in range(len(sizes))]
    assert faces.shape == (len(sizes), 16, 16) and faces.dtype == np.uint8
    for f, img in zip(faces, imgs):
        np.testing.assert_array_equal(f, fit_square(img, 16))
    resized = [s for s in sizes if s != (16, 16)]
    if not resized:
        assert note is None
    else:
        assert note.startswith(f"{len(resized)} onset image(s) of ")
        squashed = sum(h != w for h, w in resized)
        assert (f"; {squashed} not square" in note) == (squashed > 0)


# ------------------------------------------------------------------------------------------------ evaluate.py

@st.composite
def embeddings(draw, dim: int = 6):
    """(onset (N, dim), ids (N,), query (M, dim), src (M,)): random normal embeddings, 1-4 subjects."""
    rng = np.random.default_rng(draw(SEEDS))
    n = draw(st.integers(1, 8))
    m = draw(st.integers(1, 8))
    ids = [f"s{i}" for i in draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))]
    return rng.normal(size=(n, dim)), ids, rng.normal(size=(m, dim)), rng.integers(0, n, m)


@given(embeddings())
def test_identity_of_identical_embeddings_is_distance_0_rank1_100(case):
    onset, ids, _, _ = case
    d, r = identity_metrics(onset, ids, onset.copy(), np.arange(len(onset)))
    assert d == 0.0 and r == 1.0


@given(embeddings(), SEEDS, st.floats(0.1, 10))
def test_identity_metrics_invariances(case, seed, scale):
    onset, ids, query, src = case
    d, r = identity_metrics(onset, ids, query, src)
    assert d >= 0 and 0 <= r <= 1
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(onset.shape[1],) * 2))        # a random rotation (orthogonal)
    shift = rng.normal(size=onset.shape[1]) * 3
    d2, r2 = identity_metrics(onset @ q + shift, ids, query @ q + shift, src)
    assert d2 == pytest.approx(d, rel=1e-9, abs=1e-9) and r2 == r
    d3, r3 = identity_metrics(onset * scale, ids, query * scale, src)
    assert d3 == pytest.approx(d * scale, rel=1e-9) and r3 == r
    perm = rng.permutation(len(onset))                                 # reorder the onsets, remap src
    inv = np.argsort(perm)
    d4, r4 = identity_metrics(onset[perm], [ids[i] for i in perm], query, inv[src])
    assert d4 == pytest.approx(d, rel=1e-12) and r4 == r
    d5, r5 = identity_metrics(onset, [f"renamed-{s[::-1]}" for s in ids], query, src)
    assert (d5, r5) == (d, r)


@given(embeddings())
def test_identity_distance_is_the_mean_euclidean_distance_and_symmetric(case):
    onset, ids, query, src = case
    d, _ = identity_metrics(onset, ids, query, src)
    assert d == pytest.approx(np.mean(np.sqrt(((query - onset[src]) ** 2).sum(1))), rel=1e-12)
    b = query[: len(onset)]
    a = onset[: len(b)]
    ids = ids[: len(b)]
    assert identity_metrics(a, ids, b, np.arange(len(b)))[0] == pytest.approx(
        identity_metrics(b, ids, a, np.arange(len(a)))[0], rel=1e-12)


@settings(max_examples=_few(3))
@given(st.data())
def test_face_embeddings_of_the_same_real_crop_are_identical(shared_data, data):
    ps = _real_pairs(shared_data, 0)
    idx = data.draw(st.lists(st.integers(0, len(ps) - 1), min_size=1, max_size=2, unique=True))
    faces = ps.onset[idx]
    e1, e2 = face_embeddings(faces), face_embeddings(faces.copy())
    assert e1.shape == (len(idx), 128) and np.isfinite(e1).all()
    np.testing.assert_array_equal(e1, e2)
    assert identity_metrics(e1, [str(i) for i in idx], e2, np.arange(len(idx))) == (0.0, 1.0)


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 100), st.integers(0, 100), SEEDS)
def test_diversity_metrics_closed_forms(n, k, n_per, shift, dz, seed):
    rng = np.random.default_rng(seed)
    onset = rng.integers(0, 256 - shift - dz - 2 * (k - 1), (n, 4, 4)).astype(np.uint8)
    src = np.repeat(np.arange(n), k * n_per)
    copy = onset[src]
    out = diversity_metrics(copy, onset, src, k, n_per)
    assert out["mean_abs_change_from_onset"] == 0.0
    assert out["z_diversity"] == (0.0 if n_per >= 2 else None)
    assert out["class_diversity"] == (0.0 if k > 1 else None)
    # every face = its onset + shift; draw 1 of each (onset, class) dz more; draw 0 of class c 2c more
    draw = np.tile(np.arange(n_per), n * k)
    cls = np.tile(np.repeat(np.arange(k), n_per), n)
    syn = copy.astype(int) + shift + (dz * (draw == 1) + 2 * cls * (draw == 0))[:, None, None]
    assert syn.max() <= 255
    out = diversity_metrics(syn.astype(np.uint8), onset, src, k, n_per)
    if n_per >= 2:
        assert out["z_diversity"] == pytest.approx(np.mean([abs(2 * c - dz) for c in range(k)]))
    if k > 1:
        gaps = [2 * (b - a) for a in range(k) for b in range(a + 1, k)]
        assert out["class_diversity"] == pytest.approx(np.mean(gaps))
    assert out["mean_abs_change_from_onset"] == pytest.approx(shift + (dz * (n_per >= 2) + (k - 1)) / n_per)
    with pytest.raises(ValueError, match="faces for"):
        diversity_metrics(syn[1:].astype(np.uint8), onset, src[1:], k, n_per)


@settings(max_examples=_few(20))
@given(st.integers(1, 3), st.integers(2, 8), SEEDS)
def test_flow_recognizer_features_shape_and_batch_independence(b, grid, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (b, 20, 20), dtype=np.uint8)
    bb = np.roll(a, 1, axis=2)
    rec = FlowRecognizer(grid=grid)
    f = rec.features(a, bb)
    assert f.shape == (b, 3 * grid * grid) and f.dtype == np.float32 and np.isfinite(f).all()
    assert np.abs(f).max() <= 1 + 1e-5            # each map divided by its maximum absolute value
    for i in range(b):
        np.testing.assert_array_equal(rec.features(a[i:i + 1], bb[i:i + 1])[0], f[i])
    with pytest.raises(ValueError, match="uint8"):
        rec.features(a, bb[:, :-1])


class _Constant:
    datasets = ["stub"]

    def __init__(self, k):
        self.k = k

    def predict(self, onset, apex):
        return np.full(len(onset), self.k)


class _Random:
    datasets = ["stub"]

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def predict(self, onset, apex):
        return self.rng.integers(0, 3, len(onset))


@settings(max_examples=_few(8))
@given(st.integers(1, 3), st.integers(1, 2), st.integers(0, 2), SEEDS)
def test_controllability_bounds_and_the_constant_recognizer(n, n_per, k, seed):
    rng = np.random.default_rng(seed)
    onset = rng.integers(0, 256, (n, 16, 16), dtype=np.uint8)
    subjects = [f"s{i % 2}" for i in range(n)]
    mp = pytest.MonkeyPatch()
    try:          # cheap stand-ins for dlib's embeddings and the speed timing: only controllability is under test
        mp.setattr(gan_evaluate, "face_embeddings", lambda faces, up=128: faces.reshape(len(faces), -1).astype(float))
        mp.setattr(gan_evaluate, "generator_speed", lambda g: 1.0)
        # each recognizer in both roles: the one of the training subjects and the cross-dataset one
        runs = [evaluate_generator(G, None, onset, subjects, recognizer=a, n_per_class=n_per, seed=seed,
                                   cross_recognizer=b) for a, b in ((_Constant(k), _Random(seed)),
                                                                    (_Random(seed), _Constant(k)))]
    finally:
        mp.undo()
    for res, const, rand in zip(runs, ("", "_cross_dataset"), ("_cross_dataset", "")):
        assert res["n_synthetic"] == n * 3 * n_per
        assert res[f"controllability{const}"] == pytest.approx(1 / 3)
        assert res[f"controllability{const}_per_class"] == {name: float(c == k) for c, name in enumerate(CLASS_NAMES)}
        per = res[f"controllability{rand}_per_class"]
        assert 0 <= res[f"controllability{rand}"] <= 1 and all(0 <= v <= 1 for v in per.values())
        # every class is requested equally often, so the overall fraction is the mean of the per-class ones
        assert res[f"controllability{rand}"] == pytest.approx(np.mean(list(per.values())))
        assert (res["identity_rank1"] is None) == (n < 2)


# ---------------------------------------------------------------------------------------------- perceptual.py

@settings(max_examples=_few(15))
@given(onsets(max_n=3), SEEDS, st.floats(0, 2))
def test_embedding_perceptual_is_eq4_zero_for_the_onset_and_moves_only_fake(onset, seed, noise):
    g = torch.Generator().manual_seed(seed)
    fake = (onset + noise * torch.randn(onset.shape, generator=g)).clamp(-1, 1).requires_grad_(True)
    per = EmbeddingPerceptual()
    loss = per(G, onset, fake)
    with torch.no_grad():
        want = ((F.normalize(G.embed(fake), dim=1) - F.normalize(G.embed(onset), dim=1)) ** 2).sum(1).mean()
    assert float(loss.detach()) == pytest.approx(float(want), abs=1e-6)
    assert -1e-7 <= float(loss.detach()) <= 4 + 1e-6
    assert float(per(G, onset, onset.clone())) == pytest.approx(0, abs=1e-6)
    torch.testing.assert_close(per(G, onset, fake, onset_embedding=G.embed(onset)), loss, rtol=0, atol=1e-6)
    G.zero_grad(set_to_none=True)
    loss.backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all()
    assert all(p.grad is None for p in G.parameters())
    with pytest.raises(ValueError, match="onset_embedding"):
        per(G, onset, fake, onset_embedding=torch.zeros(len(onset) + 1, G.id_dim))


_VGG: list = []


def _vgg() -> VGGPerceptual:
    if not _VGG:
        from torchvision.models.vgg import cfgs, make_layers
        torch.manual_seed(0)
        feats = make_layers(cfgs["D"])[:16]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vgg16.pth"
            torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)
            _VGG.append(VGGPerceptual(path))
    return _VGG[0]


@settings(max_examples=_few(15))
@given(st.integers(1, 2), st.sampled_from([8, 12, 16]), SEEDS, st.floats(0, 1))
def test_vgg_perceptual_is_the_feature_mse_zero_for_identical_inputs(b, side, seed, noise):
    vgg = _vgg()
    g = torch.Generator().manual_seed(seed)
    onset = torch.rand(b, 1, side, side, generator=g) * 2 - 1
    fake = (onset + noise * torch.randn(onset.shape, generator=g)).clamp(-1, 1).requires_grad_(True)
    loss = vgg(None, onset, fake)
    assert float(loss.detach()) >= 0 and float(vgg(None, onset, onset.clone())) == 0.0
    with torch.no_grad():
        want = F.mse_loss(vgg._feat(fake), vgg._feat(onset))
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-6, abs=1e-9)
    rgb = vgg(None, onset.repeat(1, 3, 1, 1), fake.detach().repeat(1, 3, 1, 1))
    assert float(rgb) == pytest.approx(float(loss.detach()), rel=1e-5, abs=1e-9)
    loss.backward()
    assert torch.isfinite(fake.grad).all() and all(p.grad is None for p in vgg.parameters())


# ------------------------------------------------------------------------------------------ found by the search

def test_class_id_names_the_classes_for_a_superscript_digit():
    """'²' is str.isdigit() but not a number int() reads: class_id raised int()'s bare "invalid literal for int()"
    instead of its own message listing the classes (found by test_class_id_rejects_anything_else)."""
    with pytest.raises(ValueError, match="unknown class '²': use one of"):
        class_id("²")
