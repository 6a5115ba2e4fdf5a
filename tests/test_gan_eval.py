"""ICE-GAN evaluation: identity metrics, the real-data recognizer, and the CLI (generate, gan eval) end to end."""
from __future__ import annotations

import json
import types

import cv2
import numpy as np
import pytest
import torch
from _gan_sizes import tiny_gan_config

from icegan.cli import main
from icegan.gan.evaluate import (CrossDatasetRecognizer, FlowRecognizer, evaluate_generator, face_embeddings,
                                 identity_metrics, run_eval)
from icegan.gan.pairs import load_casme2_pairs
from icegan.gan.trainer import build_models, save_checkpoint

HOLDOUT = ["sub02", "sub03", "sub14", "sub24", "sub26"]


@pytest.fixture(scope="module")
def pairs64(shared_data):
    return load_casme2_pairs(shared_data / "casme2", img_size=64, apex_neighbors=0, cache=False)


def test_identity_metrics_known_values():
    onset = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    ids = ["a", "a", "b"]
    query = np.array([[0.0, 0.3], [4.0, 5.0], [0.9, 0.0]])
    src = np.array([2, 2, 0])
    # distances to own onset: |(0,.3)-(5,5)|, 1.0, 0.9; nearest onsets: 0 (a≠b ✗), 2 (b ✓), 1 (a = a ✓)
    mean, rank1 = identity_metrics(onset, ids, query, src)
    assert mean == pytest.approx((np.hypot(5, 4.7) + 1.0 + 0.9) / 3)
    assert rank1 == pytest.approx(2 / 3)


def test_face_embeddings_separate_subjects_on_real_crops(pairs64):
    ps = pairs64
    picks = [ps.subjects.index(s) for s in ("casme2/sub01", "casme2/sub05", "casme2/sub17", "casme2/sub23")]
    on, ap = ps.onset[picks], ps.apex[picks]
    e_on, e_ap = face_embeddings(on), face_embeddings(ap)
    assert e_on.shape == (4, 128)
    same = np.linalg.norm(e_on - e_ap, axis=1)                         # onset vs apex of one clip
    diff = np.linalg.norm(e_on[:, None] - e_on[None], axis=2)[~np.eye(4, dtype=bool)]
    assert same.mean() < 0.25 and diff.mean() > 0.35 and same.max() < diff.min()
    _, rank1 = identity_metrics(e_on, [ps.subjects[i] for i in picks], e_ap, np.arange(4))
    assert rank1 == 1.0


def test_flow_recognizer_beats_chance_on_held_out_subjects(pairs64):
    tr, te = pairs64.by_subjects(exclude=HOLDOUT), pairs64.by_subjects(HOLDOUT)
    rec = FlowRecognizer().fit(tr.onset, tr.apex, tr.labels)
    assert rec.features(te.onset[:2], te.apex[:2]).shape == (2, 3 * 28 * 28)
    acc = float(np.mean(rec.predict(te.onset, te.apex) == te.labels))
    assert acc > 0.6                                                    # 3 classes; majority class is 19/29
    with pytest.raises(ValueError):
        rec.features(te.onset[:2], te.apex[:3])


def test_flow_recognizer_fits_and_predicts_on_one_blas_thread(pairs64, monkeypatch):
    """The probe's logistic regression runs BLAS on one thread whatever the caller's limit (as the scikit-learn
    recognizers of `icegan loso`: two threads made their probabilities depend on the thread count), and the caller's
    limit is restored; its predictions are the same under a caller limit of 1 and of 2."""
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_info, threadpool_limits
    seen = []
    fit, predict = Pipeline.fit, Pipeline.predict

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    def spy(name, method):
        def wrapped(self, *a, **k):
            seen.append((name, blas_threads()))
            return method(self, *a, **k)
        return wrapped
    monkeypatch.setattr(Pipeline, "fit", spy("fit", fit))
    monkeypatch.setattr(Pipeline, "predict", spy("predict", predict))
    tr, te = pairs64.by_subjects(exclude=HOLDOUT), pairs64.by_subjects(HOLDOUT)
    preds = []
    for limit in (2, 1):
        with threadpool_limits(limits=limit, user_api="blas"):
            rec = FlowRecognizer().fit(tr.onset, tr.apex, tr.labels)
            preds.append(rec.predict(te.onset, te.apex))
            assert blas_threads() == {limit}                              # the caller's limit is restored
    assert [n for n, _ in seen] == ["fit", "predict"] * 2 and all(t == {1} for _, t in seen), seen
    np.testing.assert_array_equal(preds[0], preds[1])


def test_cross_dataset_recognizer_transfers_to_casme2(pairs64):
    """STSTNet trained on SAMM + SMIC features only recognises real CASME II pairs through our TV-L1
    features: measured accuracy 0.81 on the 89 training-split pairs; the bound, > 0.6 on 40 of them, is
    far above the 0.33 of chance and of a sign error (the negated flow scored 0.10 in the same measurement)."""
    rec = CrossDatasetRecognizer()
    assert rec.datasets == ["samm", "smic"] and rec.n_train > 250
    ps = pairs64.by_subjects(exclude=HOLDOUT).unique_clips()
    idx = np.linspace(0, len(ps) - 1, 40).astype(int)
    x = rec.features(ps.onset[idx], ps.apex[idx])
    assert x.shape == (40, 3, 28, 28) and float(x.min()) >= 0 and float(x.max()) <= 1
    acc = float(np.mean(rec.predict(ps.onset[idx], ps.apex[idx]) == ps.labels[idx]))
    assert acc > 0.6, acc
    with pytest.raises(ValueError, match="uint8"):
        rec.features(ps.onset[:2], ps.apex[:3])


def _untrained_checkpoint(folder, shared_data, n_classes: int = 3):
    """``folder/last.pt``: an untrained 32 px ICE-GAN of ``n_classes`` classes, held-out subject sub01."""
    cfg = tiny_gan_config(32)
    cfg.model.n_classes = n_classes
    cfg.data.apex_neighbors, cfg.data.holdout_subjects = 0, ["sub01"]
    cfg.data.root = str(shared_data / "casme2")
    g, d = build_models(cfg)
    path = folder / "last.pt"
    save_checkpoint(path, cfg, g, d, 0, [])
    return path


@pytest.fixture(scope="module")
def pairs_cache_root(tmp_path_factory):
    """ICEGAN_DATA of the tests that evaluate on the shared CASME II copy: its 32 px pairs cache, decoded once for the
    module, goes here, not into the repository's data/cache."""
    return tmp_path_factory.mktemp("icegan_data")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, shared_data):
    return _untrained_checkpoint(tmp_path_factory.mktemp("ckpt"), shared_data)


def test_cli_generate(tiny_checkpoint, tmp_path, pairs64, capsys):
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(2):
        cv2.imwrite(str(faces / f"face{i}.png"), pairs64.onset[i])
    out = tmp_path / "gen"
    assert main(["generate", "--checkpoint", str(tiny_checkpoint), "--onset", str(faces / "face0.png"),
                 "--class", "positive", "-n", "3", "--out", str(out)]) == 0
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == ["face0_positive_00.png", "face0_positive_01.png", "face0_positive_02.png"]
    assert cv2.imread(str(out / files[0]), cv2.IMREAD_GRAYSCALE).shape == (32, 32)
    assert main(["generate", "--checkpoint", str(tiny_checkpoint), "--onset", str(faces), "--class", "all",
                 "--out", str(tmp_path / "gen2")]) == 0
    assert len(list((tmp_path / "gen2").glob("*.png"))) == 6
    assert main(["generate", "--checkpoint", str(tiny_checkpoint), "--onset", str(faces), "--class", "fear",
                 "--out", str(tmp_path / "gen3")]) == 2
    assert "icegan generate: error: unknown class" in capsys.readouterr().err


def test_cli_generate_onsets_with_the_same_name(tiny_checkpoint, tmp_path, pairs64, capsys):
    """Onset images of one file name (A/img46.jpg and B/img46.jpg; x.png and x.jpg in one folder) each get their own
    outputs: the count printed is the count of files written; frames (imgN) are named by their clip folder and its
    parent, other names met again get -2."""
    for d in ("A", "B", "C"):
        (tmp_path / d).mkdir()
    cv2.imwrite(str(tmp_path / "A" / "img46.jpg"), pairs64.onset[0])
    cv2.imwrite(str(tmp_path / "B" / "img46.jpg"), pairs64.onset[1])
    cv2.imwrite(str(tmp_path / "B" / "img47.jpg"), pairs64.onset[2])
    out = tmp_path / "gen"
    assert main(["generate", "--checkpoint", str(tiny_checkpoint), "--onset", str(tmp_path / "A" / "img46.jpg"),
                 str(tmp_path / "B" / "img46.jpg"), str(tmp_path / "B" / "img47.jpg"), "--class", "all",
                 "--out", str(out), "--device", "cpu"]) == 0
    frames = [f"{tmp_path.name}_{n}" for n in ("A_img46", "B_img46", "B_img47")]    # named by folder and its parent
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{n}_{c}_00.png" for n in frames
                                                            for c in ("negative", "positive", "surprise"))
    printed = capsys.readouterr().out
    assert "wrote 9 synthetic apex faces" in printed and "share a file name" not in printed
    cv2.imwrite(str(tmp_path / "C" / "x.png"), pairs64.onset[0])
    cv2.imwrite(str(tmp_path / "C" / "x.jpg"), pairs64.onset[1])
    assert main(["generate", "--checkpoint", str(tiny_checkpoint), "--onset", str(tmp_path / "C"), "--class",
                 "positive", "-n", "2", "--out", str(tmp_path / "gen2"), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 4 synthetic apex faces" in printed and "their outputs are named x-2" in printed
    assert len(list((tmp_path / "gen2").glob("*.png"))) == 4


def test_cli_eval_json(tiny_checkpoint, tmp_path, pairs64, capsys, monkeypatch, pairs_cache_root):
    monkeypatch.setenv("ICEGAN_DATA", str(pairs_cache_root))
    js = tmp_path / "m.json"
    assert main(["gan", "eval", "--checkpoint", str(tiny_checkpoint), "--data", "casme2", "--n-per-class", "1",
                 "--out", str(tmp_path / "ev"), "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'ev' / 'eval.md'} and the grids beside it; the metrics as JSON to {js}" in out
    # the screen gets the table, not a JSON dump of every metric before it (that goes to --json)
    assert "| identity rank-1 identification" in out and '"identity_mean_distance"' not in out
    for key in ("identity_mean_distance", "identity_rank1", "controllability", "controllability_per_class",
                "expcaps_uf1", "faces_per_s", "z_diversity", "class_diversity", "mean_abs_change_from_onset",
                "controllability_cross_dataset", "controllability_cross_dataset_per_class", "cross_dataset_real_uf1"):
        assert key in res, key
    assert 0 <= res["controllability_cross_dataset"] <= 1 and res["cross_dataset_trained_on"] == ["samm", "smic"]
    assert res["eval_subjects"] == ["casme2/sub01"] and res["n_synthetic"] == 3 * res["n_onsets"]
    # one held-out subject: the nearest onset is always its own, so rank-1 (100 %) would measure nothing
    assert res["n_subjects"] == 1 and res["identity_rank1"] is None and res["identity_mean_distance"] >= 0
    assert "| identity rank-1 identification among 1 subjects (needs 2 or more) | — | ≥ 95 % |" in \
        (tmp_path / "ev" / "eval.md").read_text()
    assert set(res["controllability_per_class"]) == {"negative", "positive", "surprise"}
    assert len(res["grids"]) == 3
    md = (tmp_path / "ev" / "eval.md").read_text()
    assert "| identity rank-1 identification among 1 subjects (needs 2 or more) | — |" in md and "≤ 0.20" in md
    assert f"{100 * res['controllability_cross_dataset']:.1f} %" in md
    # a folder of onset faces
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(2):
        cv2.imwrite(str(faces / f"f{i}.png"), pairs64.onset[i])
    assert main(["gan", "eval", "--checkpoint", str(tiny_checkpoint), "--data", str(faces), "--n-per-class", "1",
                 "--out", str(tmp_path / "ev2"), "--json", str(js), "--no-cross-dataset"]) == 0
    res = json.loads(js.read_text())
    assert res["n_onsets"] == 2 and res["expcaps_uf1"] is None and res["controllability"] is not None
    assert res["controllability_cross_dataset"] is None
    # read and resized as the generator's training faces were (icegan generate's rule), and said so
    assert res["onset_resize"].startswith("2 onset image(s) of 64x64 pixels resized to 32x32 with INTER_AREA, as "
                                          "icegan gan train resized the CASME II crops")
    # subjects the checkpoint was trained on are refused
    assert main(["gan", "eval", "--checkpoint", str(tiny_checkpoint), "--subjects", "sub02",
                 "--out", str(tmp_path / "x")]) == 2
    assert "were used to train" in capsys.readouterr().err


class _ConstantRecognizer:
    """A recognizer stub that calls every pair class ``answer``."""
    datasets = ["samm", "smic"]

    def __init__(self, answer: int):
        self.answer = answer

    def predict(self, onset, apex):
        assert len(onset) == len(apex)
        return np.full(len(onset), self.answer)


def test_controllability_is_the_share_of_synthetic_faces_recognised_as_their_class(pairs64):
    """With 1 face per (onset, class), a recognizer that always answers "positive" (1) is right on exactly the third
    of the faces asked for "positive": controllability 1/3, per class {negative 0, positive 1, surprise 0}; the same
    for the cross-dataset recognizer (answering "surprise"), and real accuracy is the share of real pairs so
    labelled."""
    cfg = tiny_gan_config(64)
    g, _ = build_models(cfg)
    pick = [0, 1, 2, 3]
    labels = pairs64.labels[pick]
    res = evaluate_generator(g.eval(), None, pairs64.onset[pick], [pairs64.subjects[i] for i in pick],
                             apex=pairs64.apex[pick], labels=labels, recognizer=_ConstantRecognizer(1),
                             n_per_class=1, cross_recognizer=_ConstantRecognizer(2))
    assert res["n_synthetic"] == 12
    assert res["controllability"] == pytest.approx(1 / 3)
    assert res["controllability_per_class"] == {"negative": 0.0, "positive": 1.0, "surprise": 0.0}
    assert res["controllability_cross_dataset"] == pytest.approx(1 / 3)
    assert res["controllability_cross_dataset_per_class"] == {"negative": 0.0, "positive": 0.0, "surprise": 1.0}
    assert res["recognizer_real_accuracy"] == pytest.approx(float(np.mean(labels == 1)))
    assert res["cross_dataset_real_accuracy"] == pytest.approx(float(np.mean(labels == 2)))


def test_cli_eval_motion_checkpoint(tmp_path, shared_data, monkeypatch, pairs_cache_root):
    """A checkpoint with the motion head (prior in the state dict) and a motion-input discriminator evaluates;
    its ExpCaps is given each held-out apex with its onset."""
    monkeypatch.setenv("ICEGAN_DATA", str(pairs_cache_root))
    cfg = tiny_gan_config(32)
    cfg.data.apex_neighbors, cfg.data.holdout_subjects = 0, ["sub01"]
    cfg.data.root = str(shared_data / "casme2")
    m = cfg.model
    m.motion_head, m.motion_prior, m.d_motion_input = True, "farneback", True
    g, d = build_models(cfg)
    prior = torch.zeros(3, 2, 32, 32)
    prior[1, 0], prior[2, 1] = 1.0, -1.0
    g.set_motion_prior(prior)
    path = tmp_path / "last.pt"
    save_checkpoint(path, cfg, g, d, 0, [])
    js = tmp_path / "m.json"
    assert main(["gan", "eval", "--checkpoint", str(path), "--data", "casme2", "--n-per-class", "2",
                 "--out", str(tmp_path / "ev"), "--json", str(js), "--no-cross-dataset"]) == 0
    res = json.loads(js.read_text())
    assert res["expcaps_uf1"] is not None and 0 <= res["expcaps_uf1"] <= 1
    # classes 1 and 2 move the face, class 0 (zero prior) nearly copies it
    assert res["class_diversity"] > 1.0 and res["z_diversity"] < res["class_diversity"]


def test_cli_eval_missing_data_names_the_option_and_what_it_takes(tiny_checkpoint, tmp_path, capsys):
    """``--data`` that is neither ``casme2`` nor an existing path is reported as ``--data`` not found, with the
    three kinds of value it takes (not as a missing face image), before any recognizer is trained."""
    nowhere = tmp_path / "nowhere"
    assert main(["gan", "eval", "--checkpoint", str(tiny_checkpoint), "--data", str(nowhere),
                 "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"icegan gan eval: error: --data {nowhere}: not found; --data takes 'casme2'"), err
    assert "a CASME II folder with manifest.csv" in err and "a folder of onset face images" in err
    assert "face image not found" not in err and not (tmp_path / "ev").exists()


def test_expcaps_uf1_is_the_macro_f1_of_its_answers(shared_data):
    """ExpCaps MER scores: a discriminator that always answers class 1 on labels [1, 0, 0] gives UF1 1/4 (F1 0 and 1/2
    of the two classes present; MEGC, as icegan.metrics.compute_metrics) and UAR 1/2."""
    from icegan.gan.pairs import load_casme2_pairs
    from icegan.gan.evaluate import evaluate_generator
    from icegan.gan.trainer import build_models
    pairs = load_casme2_pairs(shared_data / "casme2", img_size=64, apex_neighbors=0, cache=False)
    cfg = tiny_gan_config(64)
    g, _ = build_models(cfg)

    class D:
        def __call__(self, x, reconstruct=False, onset=None):
            return types.SimpleNamespace(exp_len=torch.tensor([[0.0, 1.0, 0.0]]).repeat(len(x), 1))
    labels = np.asarray(pairs.labels)
    pick = [int(np.flatnonzero(labels == 1)[0]), int(np.flatnonzero(labels == 0)[0]), int(np.flatnonzero(labels == 0)[1])]
    res = evaluate_generator(g.eval(), D(), pairs.onset[pick], [pairs.subjects[i] for i in pick], apex=pairs.apex[pick],
                             labels=labels[pick], n_per_class=1)
    assert res["expcaps_uf1"] == pytest.approx(0.25)      # (0 + 0.5) / 2: class 2 has no held-out clip
    assert res["expcaps_uar"] == pytest.approx(0.5)       # (0 + 1) / 2


def test_eval_table_gives_rank1_with_its_chance_level():
    """Rank-1 identification is read against chance, 1 / (number of subjects), which the table states."""
    from icegan.gan.evaluate import metrics_markdown
    md = metrics_markdown({"n_subjects": 4, "identity_rank1": 0.5, "n_onsets": 8, "n_synthetic": 24, "img_size": 64})
    assert "| identity rank-1 identification among 4 subjects (chance 25 %) | 50.0 % | ≥ 95 % |" in md


def test_flow_recognizer_features_strain_and_per_map_scaling(monkeypatch):
    """With a known flow (OpenCV's Farneback replaced), the features are u, v and the optical strain
    sqrt(u_x² + v_y² + ½(u_y + v_x)²), each divided by its own largest |value|. Three column bands: u = a·x
    (strain a), u = a·y (a/√2, the shear's ½), v = a/2·y (a/2); strain ratios hold whatever each map's scale."""
    import cv2
    a, s = 0.1, 33
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    u = np.where(xx < 11, a * xx, np.where(xx < 22, a * yy, 0)).astype(np.float32)
    v = np.where(xx >= 22, a / 2 * yy, 0).astype(np.float32)
    onset = np.full((1, s, s), 7, np.uint8)
    apex = np.full((1, s, s), 9, np.uint8)
    seen = []

    def fake_flow(prev, nxt, *args):
        seen.append((int(prev[0, 0]), int(nxt[0, 0])))
        return np.stack([u, v], axis=2)
    monkeypatch.setattr(cv2, "calcOpticalFlowFarneback", fake_flow)
    st = FlowRecognizer(grid=s).features(onset, apex).reshape(s, s, 3)
    assert seen == [(7, 9)]                                             # flow onset → apex
    for c in range(3):
        assert np.abs(st[..., c]).max() == pytest.approx(1.0, abs=1e-5)  # each map scaled by its own maximum
    strain = st[16, :, 2]
    assert strain[16] / strain[5] == pytest.approx(np.sqrt(0.5), rel=1e-4)
    assert strain[27] / strain[5] == pytest.approx(0.5, rel=1e-4)
    assert st[16, 27, 0] == 0 and st[16, 27, 1] > 0                       # band 3: v only


def test_flow_recognizer_features_point_the_way_the_face_moved():
    """Real Farneback flow of a texture moved 2 px to the right: u > 0 in the interior (flow onset → apex)."""
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    img = ((np.sin(xx / 3) * np.cos(yy / 4) + 1) * 100 + 20).astype(np.uint8)
    moved = np.roll(img, 2, axis=1)
    st = FlowRecognizer(grid=48).features(img[None], moved[None]).reshape(48, 48, 3)
    assert np.median(st[12:36, 12:36, 0]) > 0.3


def _tiny_generator():
    cfg = tiny_gan_config(32)
    torch.manual_seed(0)
    return build_models(cfg)[0].eval()


def test_identity_rank1_is_reported_from_two_subjects(monkeypatch):
    """Rank-1 identification is left out (None) for onsets of one subject only; from 2 subjects on it is reported
    (face embeddings replaced by the mean grey level, so onsets of distinct grey levels are told apart)."""
    import icegan.gan.evaluate as ev
    def grey_level(faces, upsample_to=128):
        return np.repeat(faces.reshape(len(faces), -1).mean(1)[:, None], 128, axis=1)
    monkeypatch.setattr(ev, "face_embeddings", grey_level)
    monkeypatch.setattr(ev, "generator_speed", lambda g: 1.0)
    onset = np.stack([np.full((32, 32), v, np.uint8) for v in (20, 230)])
    g = _tiny_generator()
    two = evaluate_generator(g, None, onset, ["s1", "s2"], n_per_class=1)
    assert two["n_subjects"] == 2 and two["identity_rank1"] is not None
    one = evaluate_generator(g, None, onset, ["s1", "s1"], n_per_class=1)
    assert one["n_subjects"] == 1 and one["identity_rank1"] is None and one["identity_mean_distance"] is not None


def test_generator_speed_is_total_faces_over_total_seconds():
    """faces/s = batch · repeats / the summed wall-clock seconds of the timed batches (the warm-up batch not
    counted); the generator's training flag is restored."""
    from icegan.gan.evaluate import generator_speed
    g = _tiny_generator().train()
    per_batch = []
    fps = generator_speed(g, batch=2, repeats=3, per_batch=per_batch)
    assert len(per_batch) == 3 and fps == pytest.approx(2 * 3 / sum(per_batch))
    assert g.training


def test_real_pair_references_use_the_real_apexes_and_labels(monkeypatch):
    """The reference rows are computed on the real pairs: the real apexes' identity distance to their onsets (grey
    level + 30 → 30·√128 in a 128-d grey-level embedding) and the recognizer's accuracy on the real labels."""
    import icegan.gan.evaluate as ev

    def grey_level(faces, upsample_to=128):
        return np.repeat(faces.reshape(len(faces), -1).astype(float).mean(1)[:, None], 128, axis=1)

    class Always2:
        def predict(self, onset, apex):
            return np.full(len(onset), 2)
    monkeypatch.setattr(ev, "face_embeddings", grey_level)
    monkeypatch.setattr(ev, "generator_speed", lambda g: 1.0)
    onset = np.stack([np.full((32, 32), v, np.uint8) for v in (20, 200)])
    res = evaluate_generator(_tiny_generator(), None, onset, ["s1", "s2"], apex=onset + 30, labels=np.array([2, 2]),
                             recognizer=Always2(), n_per_class=1)
    assert res["real_apex_identity_mean_distance"] == pytest.approx(30 * np.sqrt(128))
    assert res["real_apex_identity_rank1"] == 1.0
    assert res["recognizer_real_accuracy"] == 1.0 and res["controllability"] == pytest.approx(1 / 3)


def test_face_embeddings_upsample_small_crops_and_use_the_whole_crop_as_the_box(monkeypatch):
    """Crops under upsample_to pixels are resized to upsample_to² before encoding, larger ones are not; the grey face
    is repeated to 3 channels and its box is the whole image (top, right, bottom, left)."""
    import icegan.data.landmarks as lm
    seen = []

    def face_encodings(rgb, known_face_locations):
        seen.append((rgb.shape, known_face_locations, bool((rgb[..., 0] == rgb[..., 2]).all())))
        return [np.ones(128)]
    monkeypatch.setattr(lm, "face_recognition_modules",
                        lambda: (types.SimpleNamespace(face_encodings=face_encodings),))
    out = face_embeddings(np.full((2, 64, 64), 100, np.uint8))
    assert out.shape == (2, 128) and seen[0] == ((128, 128, 3), [(0, 128, 128, 0)], True)
    seen.clear()
    face_embeddings(np.full((1, 160, 160), 100, np.uint8))
    assert seen == [((160, 160, 3), [(0, 160, 160, 0)], True)]


@pytest.fixture(scope="module")
def five_class_checkpoint(tmp_path_factory, shared_data):
    """A checkpoint whose generator is conditioned on CASME II's five classes (a data.labels=casme2_5 fold's)."""
    return _untrained_checkpoint(tmp_path_factory.mktemp("ckpt5"), shared_data, n_classes=5)


def test_generate_names_a_five_class_generators_classes(five_class_checkpoint, tmp_path, pairs64, capsys):
    """icegan generate on a five-class generator: 'all' gives one face per class named by CASME II's classes, a
    class is taken by its name or id 0..4, and a MEGC2019 name is refused with the generator's classes."""
    face = tmp_path / "face0.png"
    cv2.imwrite(str(face), pairs64.onset[0])
    assert main(["generate", "--checkpoint", str(five_class_checkpoint), "--onset", str(face), "--class", "all",
                 "--out", str(tmp_path / "all")]) == 0
    assert sorted(p.name for p in (tmp_path / "all").glob("*.png")) == sorted(
        f"face0_{c}_00.png" for c in ("happiness", "disgust", "repression", "surprise", "others"))
    for cls in ("Repression", "2"):
        assert main(["generate", "--checkpoint", str(five_class_checkpoint), "--onset", str(face), "--class", cls,
                     "--out", str(tmp_path / cls)]) == 0
        assert [p.name for p in (tmp_path / cls).glob("*.png")] == ["face0_repression_00.png"]
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(five_class_checkpoint), "--onset", str(face), "--class", "negative",
                 "--out", str(tmp_path / "neg")]) == 2
    err = capsys.readouterr().err
    assert "unknown class 'negative'" in err and "happiness, disgust, repression, surprise, others" in err


def test_eval_refuses_a_five_class_generator(five_class_checkpoint):
    with pytest.raises(ValueError, match="conditioned on 5 classes .* MEGC2019's 3 classes"):
        run_eval(five_class_checkpoint, "casme2", device="cpu")
