"""Synthetic AU clips for the feature LOSO: generation, motion direction, cache, leak-free fold rows, wiring."""
import numpy as np
import pandas as pd
import pytest
import torch

from icegan.commands.loso import FeatureDataConfig, FeatureFolds, LosoConfig, load_synthetic_set
from icegan.data.features import FeatureSet, read_megc2019_table
from icegan.data.roi import face_landmarks_megc2019, roi_centers
from icegan.data.synthetic_features import add_training_rows, synthetic_au_features
from icegan.protocol import make_folds


def test_add_training_rows_never_gives_a_fold_its_own_subjects_faces():
    subjects = ["casme2/a", "casme2/a", "casme2/b", "samm/c", "samm/d"]
    extra = ["casme2/a", "casme2/b", "casme2/b", "samm/c", "samm/d", "samm/d"]
    for protocol, dataset in (("CDE", None), ("SDE", "casme2")):
        folds = make_folds(subjects, protocol, dataset)
        new = add_training_rows(folds, subjects, extra, offset=5)
        for f, g in zip(folds, new):
            assert g.subject == f.subject and np.array_equal(g.test_idx, f.test_idx)
            real, added = g.train_idx[g.train_idx < 5], g.train_idx[g.train_idx >= 5]
            assert np.array_equal(real, f.train_idx)
            train_subjects = {subjects[i] for i in f.train_idx}
            assert {extra[j - 5] for j in added} <= train_subjects and f.subject not in {extra[j - 5] for j in added}
            want = [5 + j for j, s in enumerate(extra) if s in train_subjects]
            assert added.tolist() == want
    sde = add_training_rows(make_folds(subjects, "SDE", "casme2"), subjects, extra, 5)
    assert all(not any(extra[j - 5].startswith("samm") for j in f.train_idx if j >= 5) for f in sde)


@pytest.fixture(scope="module")
def six_faces(shared_data):
    table = read_megc2019_table(shared_data / "megc2019_htnet", ["samm", "smic"])
    rows = table.groupby("dataset").head(3).reset_index(drop=True)
    return FeatureSet(rows, torch.rand(len(rows), 3, 28, 28))


def test_synthetic_clips_move_where_their_action_units_act(six_faces, tmp_path, monkeypatch):
    syn = synthetic_au_features(six_faces, per_clip=3, cache_dir=tmp_path)
    s = syn.samples
    assert len(s) == 18 and sorted(s["label"].value_counts().tolist()) == [6, 6, 6]
    assert s["subject"].tolist() == six_faces.samples["subject"].tolist() * 3
    assert s["clip"].str.startswith("syn").all() and s["clip"].is_unique
    x = syn.features
    assert x.shape == (18, 3, 28, 28) and x.min() >= 0 and x.max() <= 1
    pts, sizes = face_landmarks_megc2019(six_faces.samples, cache_dir=tmp_path)
    c = np.tile(np.round(roi_centers(pts, sizes, 28)).astype(int), (3, 1, 1))   # (18, 4, 2) brow/eye L, R, lip L, R

    def at(j, ch, region):
        cx, cy = c[j, region]
        return float(x[j, ch, max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2].mean())
    lab = s["label"].to_numpy()
    for j in np.flatnonzero(lab == 1):     # lip corners pulled outward: left corner moves left (lower u)
        assert at(j, 0, 2) < at(j, 0, 3)
    for j in np.flatnonzero(lab == 0):     # brows lowered toward the midline: left brow right, right brow left
        assert at(j, 0, 0) > at(j, 0, 1)
    for j in np.flatnonzero(lab == 2):     # brows raised: v at the brows below v at the lip corners
        assert min(at(j, 1, 0), at(j, 1, 1)) < min(at(j, 1, 2), at(j, 1, 3))
    # cached: a second call reads the file and gives the same features
    import flownet.data.synthetic_face as sf

    def boom(*a, **k):
        raise AssertionError("regenerated instead of read from the cache")
    monkeypatch.setattr(sf, "make_pair", boom)
    again = synthetic_au_features(six_faces, per_clip=3, cache_dir=tmp_path)
    assert torch.equal(again.features, x) and again.samples.equals(s)


def test_synthetic_generation_is_seeded_and_checks_input(six_faces):
    one = six_faces.samples.head(2)
    fs = FeatureSet(one, torch.rand(2, 3, 28, 28))
    a, b = synthetic_au_features(fs, seed=4), synthetic_au_features(fs, seed=4)
    assert torch.equal(a.features, b.features)
    assert not torch.equal(a.features, synthetic_au_features(fs, seed=5).features)
    with pytest.raises(ValueError, match="per_clip"):
        synthetic_au_features(fs, per_clip=0)
    with pytest.raises(ValueError, match="face_path"):
        synthetic_au_features(FeatureSet(one.drop(columns="face_path"), fs.features))
    gone = one.copy()
    gone.loc[1, "face_path"] = "/nonexistent/face.jpg"
    with pytest.raises(FileNotFoundError, match=f"clip '{one['clip'][1]}'"):
        synthetic_au_features(FeatureSet(gone, fs.features), cache_dir="/tmp")


def test_feature_folds_train_on_synthetic_rows_of_training_subjects_only(monkeypatch):
    real = pd.DataFrame({"dataset": ["samm"] * 4, "subject": ["samm/a", "samm/a", "samm/b", "samm/c"],
                         "clip": list("wxyz"), "label": [0, 1, 2, 0]})
    syn = FeatureSet(pd.DataFrame({"dataset": ["samm"] * 3, "subject": ["samm/a", "samm/b", "samm/c"],
                                   "clip": ["syn0:w", "syn0:y", "syn0:z"], "label": [2, 1, 0]}),
                     torch.full((3, 3, 28, 28), 0.5))
    seen = {}

    def fake_fit(cfg, x, y, subjects, folds, **kw):
        seen.update(x=x, y=y, subjects=subjects, folds=folds)
        return [np.full((len(f.test_idx), 3), 1 / 3) for f in folds]
    import icegan.recognition as rec
    monkeypatch.setattr(rec, "fit_predict_folds", fake_fit)
    x = torch.zeros(4, 3, 28, 28)
    ff = FeatureFolds(LosoConfig(), x, torch.tensor([0, 1, 2, 0]), real["subject"].tolist(), extra=syn)
    folds = make_folds(real["subject"].tolist())
    out = ff(folds)
    assert [len(o) for o in out] == [2, 1, 1]                       # only real rows are scored
    assert seen["x"].shape[0] == 7 and seen["y"].tolist() == [0, 1, 2, 0, 2, 1, 0]
    assert seen["subjects"][4:] == ["samm/a", "samm/b", "samm/c"]
    by_subject = {f.subject: sorted(f.train_idx.tolist()) for f in seen["folds"]}
    assert by_subject == {"samm/a": [2, 3, 5, 6], "samm/b": [0, 1, 3, 4, 6], "samm/c": [0, 1, 2, 4, 5]}
    assert [f.test_idx.tolist() for f in seen["folds"]] == [[0, 1], [2], [3]]


def test_synthetic_config():
    assert load_synthetic_set(FeatureDataConfig(), None) is None
    with pytest.raises(ValueError, match="megc2019_htnet"):
        FeatureDataConfig(source="toy", synthetic_per_clip=1)
    with pytest.raises(ValueError, match="roi"):
        FeatureDataConfig(roi="landmarks", synthetic_per_clip=1)
    with pytest.raises(ValueError, match="synthetic_per_clip"):
        FeatureDataConfig(synthetic_per_clip=-1)


# -- the toy feature set (make_toy_features) ---------------------------------------------------------------------------

def _peak(a, largest=True):
    """(y, x) of a map's largest (or smallest) value, in [0, 1] face coordinates (y down)."""
    i = np.unravel_index(int(np.argmax(a) if largest else np.argmin(a)), a.shape)
    return np.array(i) / (np.array(a.shape) - 1)


def test_toy_motion_patterns_without_noise_act_where_and_how_their_class_says():
    """noise=0 leaves the class patterns alone (min-max keeps the order of values): negative moves the brows
    (y 0.25, x 0.5 -+ 0.2) down and towards each other, positive pulls the lip corners (y 0.75, x 0.5 -+ 0.18)
    outwards and up, surprise raises the brows and has no horizontal motion; strain is the optical strain
    sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2) of the flow, here (u = 0) of v alone. Names: ``<ds>/s01``,
    ``<ds>_s01_c<label><k>``."""
    from icegan.data.toy_features import make_toy_features
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1, noise=0.0, datasets=("samm",))
    s, x = fs.samples, fs.features.numpy().astype(np.float64)
    assert s["label"].tolist() == [0, 1, 2] and s["subject"].tolist() == ["samm/s01"] * 3
    assert s["clip"].tolist() == ["samm_s01_c00", "samm_s01_c10", "samm_s01_c20"]
    near = dict(atol=0.1)
    neg, pos, sur = x
    np.testing.assert_allclose(_peak(neg[0]), [0.25, 0.3], **near)                 # left brow moves right (+u)
    np.testing.assert_allclose(_peak(neg[0], False), [0.25, 0.7], **near)         # right brow moves left
    assert abs(_peak(neg[1])[0] - 0.25) < 0.1                                        # brows move down (+v)
    np.testing.assert_allclose(_peak(pos[0]), [0.75, 0.68], **near)                # right corner moves right
    np.testing.assert_allclose(_peak(pos[0], False), [0.75, 0.32], **near)        # left corner moves left
    assert abs(_peak(pos[1], False)[0] - 0.75) < 0.1                                 # corners move up (-v)
    y, xx = _peak(sur[1], False)                                                     # brows move up (-v)
    assert abs(y - 0.25) < 0.1 and abs(abs(xx - 0.5) - 0.2) < 0.1
    assert not sur[0].any()
    gy, gx = np.gradient(sur[1])
    strain = np.sqrt(gy ** 2 + 0.5 * gx ** 2)
    strain = (strain - strain.min()) / (strain.max() - strain.min())
    np.testing.assert_allclose(sur[2], strain, atol=1e-5)



def test_toy_subjects_sit_at_their_own_face_position():
    """Each subject's face is shifted by its own (x, y) draw: the centroid of the surprise brow raise (noise 0) is at
    (cx, cy - 0.25), and the subjects' cx and cy vary independently."""
    from icegan.data.toy_features import make_toy_features
    fs = make_toy_features(n_subjects_per_dataset=6, clips_per_class=1, size=64, noise=0.0, datasets=("casme2",))
    raise_ = 1 - fs.features.numpy()[fs.samples["label"].to_numpy() == 2, 1].astype(np.float64)
    yy, xx = np.mgrid[0:64, 0:64] / 63
    cx, cy = ((raise_ * g).sum((1, 2)) / raise_.sum((1, 2)) for g in (xx, yy))
    assert np.abs(cx - 0.5).max() < 0.1 and np.abs(cy - 0.23).max() < 0.1
    assert np.ptp(cx) > 0.03 and np.ptp(cy - cx) > 0.03

def test_toy_sizes_and_counts_at_their_limits():
    from icegan.data.toy_features import make_toy_features
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1, size=8, datasets=("casme2", "smic"))
    assert fs.features.shape == (6, 3, 8, 8) and fs.samples["dataset"].tolist() == ["casme2"] * 3 + ["smic"] * 3
    for bad in (dict(size=7), dict(n_subjects_per_dataset=0), dict(clips_per_class=0)):
        with pytest.raises(ValueError, match="n_subjects_per_dataset >= 1, clips_per_class >= 1 and size >= 8"):
            make_toy_features(**bad)


def _two_faces(tmp_path):
    """Two distinct grey faces, 32 and 48 px square, as a FeatureSet with face_path (no real data)."""
    from PIL import Image
    rows = []
    for k, side in enumerate((32, 48)):
        img = (np.add.outer(np.arange(side) * (3 + k), np.arange(side) * (5 - k)) % 256).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / f"f{k}.png")
        rows.append({"dataset": "samm", "subject": f"samm/00{k + 6}", "clip": f"00{k + 6}_1_2", "label": k,
                     "face_path": str(tmp_path / f"f{k}.png")})
    return FeatureSet(pd.DataFrame(rows), torch.zeros(2, 3, 28, 28))


class _Recorder:
    """Stand-ins for the landmark detector, make_pair and TV-L1 that record what synthetic_au_features gives them."""

    def __init__(self, monkeypatch):
        import flownet.classical
        import flownet.data.synthetic_face as sf
        import icegan.data.roi as roi
        self.pairs, self.estimates = [], []
        pts = np.stack([np.zeros((68, 2)), np.full((68, 2), 47.0)]).astype(np.float32)   # first / last pixel centre
        sizes = np.array([[32, 32], [48, 48]])
        monkeypatch.setattr(roi, "face_landmarks_megc2019", lambda s, cache_dir=None: (pts, sizes))
        monkeypatch.setattr(sf, "make_pair", self.make_pair)
        rec = self

        class TVL1:
            def estimate(self, a, b):
                rec.estimates.append((a, b))
                h, w = a.shape[-2:]
                yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                        indexing="ij")
                return torch.stack([xx * yy, (xx - yy) ** 2])[None]
        monkeypatch.setattr(flownet.classical, "TVL1Estimator", TVL1)

    def make_pair(self, face, lm, rng, max_head=2.0, amplitudes=None, **kw):
        self.pairs.append(dict(face=face, lm=lm, max_head=max_head, amplitudes=amplitudes))
        return {"img1": face, "img2": face.flip(-1)}


def test_synthetic_clip_is_made_from_its_own_face_with_its_class_aus_and_the_settings_given(tmp_path, monkeypatch):
    """Row j (source clip j mod N) warps that clip's face, resized to ``size`` and scaled to [0, 1], with landmarks
    moved to the new grid by pixel centres ((p + 0.5) size / side - 0.5), the action units of its own label each at
    its CLASS_AUS amplitude times a factor in amp_range, and max_head; the flow is estimated from the face to its
    warp and its features are flow_features(flow, 28, 'minmax')."""
    from PIL import Image

    from flownet.strain import flow_features
    from icegan.data.synthetic_me import CLASS_AUS
    fs = _two_faces(tmp_path)
    rec = _Recorder(monkeypatch)
    syn = synthetic_au_features(fs, per_clip=3, size=64, amp_range=(2.0, 2.5), max_head=0.25, seed=1)
    s = syn.samples
    assert len(rec.pairs) == 6 and s["subject"].tolist() == ["samm/006", "samm/007"] * 3
    for j, call in enumerate(rec.pairs):
        i = j % 2
        with Image.open(tmp_path / f"f{i}.png") as im:
            want = np.asarray(im.convert("L").resize((64, 64), Image.BILINEAR), np.float32) / 255
        assert call["face"].shape == (1, 64, 64)
        np.testing.assert_allclose(call["face"][0].numpy(), want, atol=1e-6)
        np.testing.assert_allclose(call["lm"], 0.5 if i == 0 else 47.5 * 64 / 48 - 0.5, atol=1e-5)
        assert call["max_head"] == 0.25
        base = CLASS_AUS[int(s["label"][j])]
        assert set(call["amplitudes"]) == set(base)
        assert all(2.0 <= call["amplitudes"][au] / base[au] <= 2.5 for au in base)
        a, b = rec.estimates[j]
        assert torch.equal(a[0], call["face"]) and torch.equal(b[0], call["face"].flip(-1))
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")     # the stand-in's flow
    flow = torch.stack([xx * yy, (xx - yy) ** 2])[None]
    torch.testing.assert_close(syn.features, flow_features(flow, 28, "minmax").expand(6, -1, -1, -1))


def test_synthetic_labels_are_a_seeded_draw_and_the_cache_key_holds_the_settings(tmp_path, monkeypatch):
    """Labels are balanced and drawn with the seed (not a fixed cycle over the rows); a cached set is reused only for
    the same settings: another seed or amplitude range is generated anew; an amplitude range must be
    0 < low <= high (low == high allowed)."""
    fs = _two_faces(tmp_path)
    rec = _Recorder(monkeypatch)
    labels = {tuple(synthetic_au_features(fs, per_clip=3, seed=k).samples["label"]) for k in range(4)}
    assert len(labels) > 1 and all(sorted(x) == [0, 0, 1, 1, 2, 2] for x in labels)
    cache = tmp_path / "cache"
    rec.pairs.clear()
    synthetic_au_features(fs, seed=0, cache_dir=cache)
    synthetic_au_features(fs, seed=0, cache_dir=cache)
    assert len(rec.pairs) == 2                                      # the second call read the cache
    synthetic_au_features(fs, seed=1, cache_dir=cache)
    synthetic_au_features(fs, seed=0, amp_range=(1.0, 1.0), cache_dir=cache)
    assert len(rec.pairs) == 6
    for bad in ((0.0, 1.0), (1.5, 1.0), (-1.0, 1.0)):
        with pytest.raises(ValueError, match="amp_range must be 0 < low <= high"):
            synthetic_au_features(fs, amp_range=bad)


def test_add_training_rows_appends_the_extra_rows_after_the_real_ones():
    """Known folds: each fold's train_idx is its real training rows, in order, then offset + j for every extra row j
    of a training subject (the held-out subject's extra rows never)."""
    subjects = ["samm/a", "samm/a", "samm/b", "samm/c"]
    extra = ["samm/c", "samm/a", "samm/b", "samm/a"]
    new = add_training_rows(make_folds(subjects), subjects, extra, offset=4)
    assert {f.subject: f.train_idx.tolist() for f in new} == {
        "samm/a": [2, 3, 4, 6], "samm/b": [0, 1, 3, 4, 5, 7], "samm/c": [0, 1, 2, 5, 6, 7]}


def test_synthetic_clip_warps_the_face_turned_by_its_exif_orientation(tmp_path, monkeypatch):
    """An apex face stored 40x20 with EXIF Orientation 6 is warped as shown (20 wide, 40 high, its left band on top),
    as face_landmarks_megc2019 finds its landmarks on it, not as stored: the face and its landmarks agree."""
    from PIL import Image
    a = np.zeros((20, 40), np.uint8)
    a[:, :8] = 255
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "f.png", exif=exif)
    fs = FeatureSet(pd.DataFrame([{"dataset": "samm", "subject": "samm/006", "clip": "006_1_2", "label": 0,
                                   "face_path": str(tmp_path / "f.png")}]), torch.zeros(1, 3, 28, 28))
    rec = _Recorder(monkeypatch)
    synthetic_au_features(fs, per_clip=1, size=40)
    face = rec.pairs[0]["face"][0].numpy()
    upright = Image.fromarray(np.ascontiguousarray(np.rot90(a, -1))).resize((40, 40), Image.BILINEAR)
    np.testing.assert_allclose(face, np.asarray(upright, np.float32) / 255, atol=1e-6)
    assert (face[:8] == 1).all() and (face[8:] == 0).all()
