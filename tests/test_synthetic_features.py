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
