"""Leakage audit: nothing computed from the held-out subject's labels (or, where the path promises it, its features)
reaches the model that scores that subject. Each test corrupts the held-out subject and asserts that what the fold's
model does is bit-identical: the end-to-end feature-LOSO runner with many options in one grouped network, the
scikit-learn recognizers, the main job's fold (GAN, motion prior, joint critic, synthetic rows), and prediction
(a clip's scores do not depend on the other clips scored with it). Also: the pooled metrics against scikit-learn."""
import numpy as np
import pytest
import torch

from icegan.data.features import FeatureSet
from icegan.data.toy_features import make_toy_features
from icegan.protocol import make_folds


def _loso_config(*overrides):
    from icegan.commands.loso import LosoConfig
    from icegan.config import load_config
    return load_config(LosoConfig, None, ["data.source=toy", "threads=1", *overrides])


def _corrupt(fs: FeatureSet, rows: np.ndarray, features: bool, seed: int = 5) -> FeatureSet:
    """``fs`` with every label of ``rows`` set to negative (0: the class counts change, not only which clip has which
    class) and, with ``features``, their maps replaced by noise."""
    samples = fs.samples.copy()
    samples.loc[rows, "label"] = 0
    x = fs.features.clone()
    if features:
        x[torch.as_tensor(rows)] = torch.rand(x[torch.as_tensor(rows)].shape, generator=torch.Generator().manual_seed(seed))
    return FeatureSet(samples, x)


def _grouped_probs(cfg, fs, monkeypatch):
    """Run every CDE fold of ``cfg`` on ``fs`` through the CLI's fold runner (one grouped network) and return
    (per-fold test scores, the grouped network's (N, G, K) probabilities on every row)."""
    from _grouped_spy import record_grouped_predictions

    from icegan.commands.loso import fold_runner
    seen = record_grouped_predictions(monkeypatch)
    folds_fn, per_call, _ = fold_runner(cfg, fs, progress=False)
    assert per_call == 0                                  # all folds in one grouped network
    scores = folds_fn(make_folds(fs.samples["subject"].tolist(), "CDE"))
    return scores, seen[-1]


GROUPED_RECIPES = {
    "augmented": ["model.hflip=true", "model.shift_px=1", "model.mixup_alpha=0.4", "model.tta_shift_px=1",
                  "model.ema_decay=0.5", "model.label_smoothing=0.1", "model.seeds=2"],
    "balanced": ["model.subject_weighting=true", "model.class_balance=per_dataset", "model.domain_bn=true",
                 "model.inner_val_fraction=0.3", "model.eval_every=1", "model.sam_rho=0.05"],
    "filtered": ["model.noise_filter=forest", "model.forest_trees=30", "model.inner_val_fraction=0.3",
                 "model.eval_every=1"],
    "adversarial": ["model.domain_adversarial=0.1", "model.hflip=true", "model.rotate_deg=5", "model.cutout_px=4",
                    "model.average_last=2", "model.eval_every=1"],
}


@pytest.mark.parametrize("recipe", sorted(GROUPED_RECIPES))
def test_grouped_feature_loso_never_sees_the_held_out_subject(recipe, monkeypatch):
    """`icegan loso`'s runner, every fold in one grouped STSTNet: the held-out subject's labels and maps replaced
    leave its fold's model bit-identical (its probabilities on every other clip), and labels alone (all set to one class,
    so the class counts change) leave its scores
    bit-identical; another fold's model, which trains on that subject, does change."""
    # filtered: three subjects per dataset (an inner validation of 30 % of the subjects leaves both datasets to train
    # on) and noisy maps, so that the forest flags clips and the flags of the other folds depend on the held-out labels
    filtered = recipe == "filtered"
    fs = make_toy_features(n_subjects_per_dataset=3 if filtered else 2, clips_per_class=2, noise=3.0 if filtered else 0.6)
    cfg = _loso_config("model.epochs=3", "model.batch_size=8", "model.folds_per_group=0", *GROUPED_RECIPES[recipe])
    folds = make_folds(fs.samples["subject"].tolist(), "CDE")
    k, S = 1, max(1, cfg.model.seeds)
    te = folds[k].test_idx
    others = np.setdiff1d(np.arange(len(fs)), te)
    scores, probs = _grouped_probs(cfg, fs, monkeypatch)
    scores_l, _ = _grouped_probs(cfg, _corrupt(fs, te, features=False), monkeypatch)
    np.testing.assert_array_equal(scores[k], scores_l[k])
    _, probs_f = _grouped_probs(cfg, _corrupt(fs, te, features=True), monkeypatch)
    mine = slice(k * S, (k + 1) * S)
    torch.testing.assert_close(probs[others][:, mine], probs_f[others][:, mine], rtol=0, atol=0)
    assert not torch.equal(probs[others][:, :S], probs_f[others][:, :S])      # fold 0 trains on subject k


@pytest.mark.parametrize("name", ["logreg", "random_forest"])
def test_sklearn_fold_never_sees_the_held_out_subject(name):
    """The scikit-learn recognizers (scaler, class weights and mirrors fitted per fold): the held-out subject's
    labels changed leave its scores bit-identical."""
    from icegan.commands.loso import fold_runner
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    cfg = _loso_config(f"model.name={name}", "model.forest_trees=20", "model.hflip=true")
    folds = make_folds(fs.samples["subject"].tolist(), "CDE")
    te = folds[2].test_idx

    def run(f):
        fn, per_call, _ = fold_runner(cfg, f, progress=False)
        assert per_call == 1
        return fn([make_folds(f.samples["subject"].tolist(), "CDE")[2]])[0]
    np.testing.assert_array_equal(run(fs), run(_corrupt(fs, te, features=False)))


# ---------------------------------------------------------------------------------------------------------------
# the main job's fold (train.py): GAN, motion prior, joint critic, synthetic rows, recognizer
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_flow(tmp_path_factory):
    from _flow_sizes import save_main_job_weights
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=1)


MAIN_TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "gan.epochs=1", "gan.batch_size=8",
             "gan.base_channels=8", "gan.d_base_channels=8", "gan.synthetic_ratio=0.5", "recognizer.epochs=2",
             "recognizer.batch_size=16", "recognizer.name=ststnet", "threads=1", "device=cpu"]


def _main_fold_scores(cfg, clips, feats, run_dir, k):
    """Scores of fold ``k`` of the main job on ``clips`` (real features ``feats``), trained into a fresh ``run_dir``
    (a GAN checkpoint of an earlier call is never resumed)."""
    from icegan.pipeline import FoldRunner, build_flow
    est = build_flow(cfg, torch.device("cpu"))
    fold = make_folds(clips.samples["subject"].tolist(), "CDE")[k]
    return FoldRunner(cfg, clips, feats, est, run_dir, torch.device("cpu"))(fold), fold


@pytest.mark.parametrize("extra", [
    ["gan.joint=true", "gan.motion_head=true", "gan.motion_prior=farneback", "gan.d_motion_input=true"],
    ["recognizer.name=expcaps"],
])
def test_main_job_fold_never_sees_the_held_out_clips(extra, tiny_flow, tmp_path):
    """One fold of the main job with the held-out subject's labels all set to negative (and, but for ExpCaps, which scores the
    held-out apex faces themselves, its onset and apex faces replaced by noise): the fold's scores of the held-out
    clips are bit-identical. Its GAN, motion prior, joint critic and synthetic rows come from the training subjects
    only. The real features scored are the same in both runs (flow per clip, nothing fitted on the run's clips)."""
    from icegan.pipeline import Clips, build_flow, compute_flow_features, load_main_config, load_samples, to_unit
    cfg = load_main_config(None, MAIN_TINY + [f"flow.weights={tiny_flow}", *extra])
    clips = load_samples(cfg, progress=False)
    est = build_flow(cfg, torch.device("cpu"))
    feats = compute_flow_features(est, to_unit(clips.onset), to_unit(clips.apex), cfg.recognizer.input_size)
    a, fold = _main_fold_scores(cfg, clips, feats, tmp_path / "a", 1)
    te = fold.test_idx
    samples = clips.samples.copy()
    samples.loc[te, "label"] = 0                 # the class counts change
    onset, apex = clips.onset.copy(), clips.apex.copy()
    if cfg.recognizer.name != "expcaps":
        rng = np.random.default_rng(3)
        onset[te] = rng.integers(0, 256, onset[te].shape, dtype=np.uint8)
        apex[te] = rng.integers(0, 256, apex[te].shape, dtype=np.uint8)
    b, _ = _main_fold_scores(cfg, Clips(samples, onset, apex), feats, tmp_path / "b", 1)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------------------------
# prediction: a clip is scored from itself alone
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{"name": "ststnet", "domain_bn": True, "tta_shift_px": 1},
                                {"name": "offtanet", "input_size": 28, "stem_stride": 1}])
def test_a_clips_scores_do_not_depend_on_the_clips_scored_with_it(kw):
    """In eval mode (running batch-norm statistics, test-time flips and shifts of each clip alone) the scores of the
    held-out clips are bit-identical whatever the other clips of the prediction batch hold: nothing is estimated on
    the test batch (no transductive statistics)."""
    from icegan.recognition import _predict, train_models
    from icegan.recognizer_config import RecognizerConfig
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    x, y = fs.features, fs.labels
    cfg = RecognizerConfig(epochs=1, batch_size=8, **kw)
    dom = torch.as_tensor((fs.samples["dataset"] == "samm").to_numpy().astype(np.int64))
    d = {"domains": dom} if cfg.domain_bn else {}
    model, _ = train_models(cfg, x, y, torch.ones(2, len(y), dtype=torch.bool), seed=0, progress=False, **d)
    held = torch.as_tensor(make_folds(fs.samples["subject"].tolist(), "CDE")[0].test_idx)
    x2 = torch.rand(x.shape, generator=torch.Generator().manual_seed(1))
    x2[held] = x[held]
    a = _predict(cfg, model, x, d.get("domains"))
    b = _predict(cfg, model, x2, d.get("domains"))
    torch.testing.assert_close(a[held], b[held], rtol=0, atol=0)
    assert not torch.equal(a, b)


# ---------------------------------------------------------------------------------------------------------------
# metrics: pooled UF1 / UAR against scikit-learn
# ---------------------------------------------------------------------------------------------------------------

def test_pooled_uf1_uar_equal_scikit_learn_over_the_classes_in_the_ground_truth():
    """UF1 and UAR (and the vectorised form the bootstrap uses) equal scikit-learn's macro F1 and macro recall over
    the classes present in the ground truth, on random predictions, with and without an absent class; they are
    computed on the pooled predictions, not averaged over folds (the two differ here)."""
    from sklearn.metrics import f1_score, recall_score

    from icegan.metrics import compute_metrics, confusion_matrix, uf1_uar_from_confusion
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(3, 60))
        classes = [0, 1, 2] if trial % 2 else [0, 2]            # odd trials: positive absent from the ground truth
        yt = rng.choice(classes, n)
        yp = rng.integers(0, 3, n)
        present = np.unique(yt)
        m = compute_metrics(yt, yp)
        assert m["UF1"] == pytest.approx(f1_score(yt, yp, labels=present, average="macro", zero_division=0), abs=1e-12)
        assert m["UAR"] == pytest.approx(recall_score(yt, yp, labels=present, average="macro", zero_division=0),
                                         abs=1e-12)
        uf1, uar = uf1_uar_from_confusion(confusion_matrix(yt, yp))
        assert (uf1, uar) == (pytest.approx(m["UF1"], abs=1e-12), pytest.approx(m["UAR"], abs=1e-12))
    # the run's UF1 pools the folds' predictions (summarize_predictions): not the mean of the folds' UF1
    import pandas as pd

    from icegan.protocol import summarize_predictions
    yt1, yp1, yt2, yp2 = [0, 0, 1], [0, 0, 0], [2, 2, 1, 0], [2, 1, 1, 0]
    pred = pd.DataFrame({"dataset": "casme2", "y_true": yt1 + yt2, "y_pred": yp1 + yp2})
    pooled = summarize_predictions(pred, "CDE", 2, False)["overall"]["UF1"]
    assert pooled == pytest.approx(f1_score(yt1 + yt2, yp1 + yp2, average="macro"), abs=1e-12)
    assert pooled != pytest.approx(np.mean([compute_metrics(yt1, yp1)["UF1"], compute_metrics(yt2, yp2)["UF1"]]))


# ---------------------------------------------------------------------------------------------------------------
# oracle-epoch runs say so wherever their numbers show
# ---------------------------------------------------------------------------------------------------------------

def test_a_suites_oracle_epoch_recipe_is_marked_on_every_line_of_its_results(tmp_path, capsys):
    """A suite with an `oracle_epoch=true` recipe beside an honest one: results.md does not call every run honest,
    the by-seed table and the console line of the oracle run say ORACLE, and the honest run's do not."""
    from icegan.cli import main
    from pathlib import Path
    configs = Path(__file__).resolve().parent.parent / "configs"
    common = "data.source=toy, data.toy_subjects=1, model.epochs=2, model.batch_size=16, threads=1"
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: o\nseeds: [0]\nruns:\n"
                     f"  - {{label: honest, config: {configs}/features_ststnet.yaml, overrides: [{common}]}}\n"
                     f"  - {{label: picked, config: {configs}/features_ststnet.yaml, overrides: [{common}, "
                     f"oracle_epoch=true, model.eval_every=1]}}\n")
    assert main(["suite", "--config", str(suite), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    res = (tmp_path / "out" / "results.md").read_text()
    assert "Every run is honest" not in res
    assert "ORACLE" in res.split("## Results")[0]
    by_seed = res.split("## Every run")[1].split("##")[0]
    picked = next(line for line in by_seed.splitlines() if line.startswith("| picked |"))
    honest = next(line for line in by_seed.splitlines() if line.startswith("| honest |"))
    assert "ORACLE" in picked and "ORACLE" not in honest
    scores = [line for line in capsys.readouterr().err.splitlines() if line.strip().startswith("UF1 ")]
    assert len(scores) == 2 and "ORACLE" not in scores[0] and "ORACLE" in scores[1]


# ---------------------------------------------------------------------------------------------------------------
# one clip under two subject ids
# ---------------------------------------------------------------------------------------------------------------

def _table_with_a_copy(tmp_path, copy_subject: str):
    """A feature table of 4 subjects x 3 clips (random maps) plus one more row whose file is casme2/s0's first clip
    (c0), listed under ``copy_subject``."""
    rng = np.random.default_rng(0)
    lines = ["dataset,subject,clip,label,path"]
    for s, ds in enumerate(["casme2", "casme2", "samm", "samm"]):
        for c in range(3):
            np.save(tmp_path / f"m{s}_{c}.npy", rng.random((3, 28, 28)).astype(np.float32))
            lines.append(f"{ds},s{s},c{c},{c},m{s}_{c}.npy")
    lines.append(f"{copy_subject.split('/')[0]},{copy_subject.split('/')[1]},copy,0,m0_0.npy")
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "t.csv"


def test_the_same_map_under_two_subjects_is_refused_before_training(tmp_path, capsys):
    """A feature table that lists one clip's map under two subject ids (a merged export, a subject spelled two ways
    under two dataset names) would train the fold of each on the other's copy: `icegan loso` refuses it before any
    run folder exists, naming both clips; the same map twice within one subject (one fold) is left to run."""
    from icegan.cli import main
    table = _table_with_a_copy(tmp_path, "casme2_raw/s0")
    out = tmp_path / "run"
    args = ["loso", "--out", str(out), "--no-progress", "data.source=table", f"data.table={table}", "model.epochs=1",
            "threads=1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "casme2/s0" in err and "c0" in err and "casme2_raw/s0" in err and "copy" in err, err
    assert not out.exists()
    table = _table_with_a_copy(tmp_path, "casme2/s0")
    assert main(args[:2] + [str(tmp_path / "ok")] + args[3:]) == 0


def test_shared_maps_are_compared_across_the_protocols_held_out_units():
    """check_shared_maps: across subjects for CDE, within the SDE dataset only, across datasets for HDE; motionless
    maps (u and v constant) are never compared; the message names both clips."""
    import pandas as pd

    from icegan.protocol import check_shared_maps
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x[3] = x[0]                                                         # row 3 copies row 0
    samples = pd.DataFrame({"dataset": ["casme2", "casme2", "samm", "samm"],
                            "subject": ["casme2/a", "casme2/b", "samm/c", "samm/d"], "clip": ["e1", "e2", "e3", "e4"]})
    with pytest.raises(ValueError, match="clip 'e1' of casme2/a and clip 'e4' of samm/d have the same map"):
        check_shared_maps(samples, x, "CDE")
    with pytest.raises(ValueError, match="leaving one dataset out"):
        check_shared_maps(samples, x, "HDE")
    check_shared_maps(samples, x, "SDE", "casme2")                      # the copy is outside the SDE dataset
    within = samples.assign(dataset="casme2", subject=["casme2/a", "casme2/b", "casme2/c", "casme2/a"])
    check_shared_maps(within, x, "CDE")                                 # a copy within one subject: one fold
    with pytest.raises(ValueError, match="of casme2/a and clip 'e4' of casme2/d"):
        check_shared_maps(within.assign(subject=["casme2/a", "casme2/b", "casme2/c", "casme2/d"]), x, "SDE", "casme2")
    still = x.clone()
    still[0, :2] = still[3, :2] = 0.5                                   # no motion (u, v constant): nothing to leak
    check_shared_maps(samples, still, "CDE")


def test_the_main_job_refuses_one_clip_under_two_subjects(tmp_path, tiny_flow, monkeypatch):
    """The main job: a clip whose onset and apex frames are another subject's clip (the same clip under two subject
    ids) is refused before any fold trains, naming both clips."""
    from icegan import pipeline
    from icegan.data.prepare import PrepareError
    from icegan.pipeline import Clips, load_main_config, run_main
    real_load = pipeline.load_samples

    def load(cfg, progress=True, unlabelled=False):
        c = real_load(cfg, progress=progress, unlabelled=unlabelled)
        onset, apex = c.onset.copy(), c.apex.copy()
        onset[-1], apex[-1] = onset[0], apex[0]            # the last subject's last clip is the first subject's first
        return Clips(c.samples, onset, apex)
    monkeypatch.setattr(pipeline, "load_samples", load)
    cfg = load_main_config(None, MAIN_TINY + [f"flow.weights={tiny_flow}", "data.max_folds=1"])
    with pytest.raises(PrepareError, match=r"clip '\S+' of synthetic/s01 and clip '\S+' of synthetic/s03 have the same"):
        run_main(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "predictions.csv").exists()


def test_an_oracle_runs_per_subject_table_names_the_epoch_picked_on_each_subject(tmp_path):
    """per_subject.csv of an oracle-epoch run carries the epoch picked on each test subject (as predictions.csv does),
    so its per-subject accuracies are never read as honest ones, and its TensorBoard metrics are tagged ORACLE_; an
    honest run's table has no such column and its tags no such prefix."""
    import pandas as pd

    from icegan.protocol import run_loso
    fs = make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)
    y = fs.labels.numpy()

    def fold_fn(fold):                  # epoch 2 (of 3) is right on every odd fold, epoch 0 on the others
        right, wrong = np.eye(3)[y[fold.test_idx]], np.eye(3)[(y[fold.test_idx] + 1) % 3]
        return np.stack([wrong, wrong, right] if fold.index % 2 else [right, wrong, wrong])
    run_loso(fs.samples, fold_fn, tmp_path / "o", oracle_epoch=True, progress=False)
    per = pd.read_csv(tmp_path / "o" / "per_subject.csv")
    assert per["oracle_epoch"].tolist() == [0, 2, 0, 2]
    run_loso(fs.samples, lambda f: np.eye(3)[y[f.test_idx]], tmp_path / "h", progress=False)
    assert "oracle_epoch" not in pd.read_csv(tmp_path / "h" / "per_subject.csv").columns
    # and its TensorBoard metrics are tagged ORACLE_ (final/UF1 of an honest run, ORACLE_final/UF1 of this one)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def tags(run):
        acc = EventAccumulator(str(tmp_path / run / "tb"))
        acc.Reload()
        return set(acc.Tags()["scalars"])
    oracle, honest = tags("o"), tags("h")
    assert {"ORACLE_final/UF1", "ORACLE_loso/running_UF1"} <= oracle and not any(t.startswith(("final", "loso"))
                                                                              for t in oracle)
    assert {"final/UF1", "loso/running_UF1"} <= honest and not any("ORACLE" in t for t in honest)


# ---------------------------------------------------------------------------------------------------------------
# flow weights that learned from real frames of the run's subjects
# ---------------------------------------------------------------------------------------------------------------

def test_selfsup_weights_record_whose_real_frames_they_learned_from(tmp_path, monkeypatch):
    """Self-supervised flow weights (icegan flow train --mode selfsup) name the CASME II subjects whose real,
    unlabelled frame pairs trained them, dataset-prefixed as in a LOSO run."""
    from test_flow_selfsup import _loop_run

    from flownet.registry import load_srflownet
    _loop_run(tmp_path, monkeypatch)                            # its stand-in pairs are those of sub01
    assert load_srflownet(tmp_path / "loop" / "weights.pt").meta["real_pair_subjects"] == ["casme2/sub01"]


def test_a_main_job_whose_flow_saw_the_held_out_subjects_real_motion_says_so(tmp_path, tiny_flow, caplog):
    """Flow weights that learned from the real frames of some of the run's subjects: the main job warns, naming them
    and the classical methods that no fold's data touched; weights without that record give no warning."""
    from flownet.registry import load_srflownet, save_srflownet
    from icegan.pipeline import load_main_config, run_main
    seen = save_srflownet(load_srflownet(tiny_flow), tmp_path / "seen.pt",
                          meta={"real_pair_subjects": ["synthetic/s02", "casme2/sub01"]})
    for weights, out in ((seen, "a"), (tiny_flow, "b")):
        caplog.clear()
        cfg = load_main_config(None, MAIN_TINY + [f"flow.weights={weights}", "data.max_folds=1", "gan.enabled=false"])
        with caplog.at_level("WARNING", logger="icegan"):
            run_main(cfg, tmp_path / out, progress=False)
        said = [r.getMessage() for r in caplog.records if "real onset->apex frames" in r.getMessage()]
        if out == "a":
            assert len(said) == 1 and "1 of this run's 3 held-out subjects (synthetic/s02)" in said[0], said
            assert "flow.method=tvl1 or farneback" in said[0]
        else:
            assert not said


def test_real_motion_seen_looks_through_the_flow_wrappers(tmp_path, tiny_flow):
    """With flow.component=head or expression the main job's estimator is a component of a decomposer around the
    network, and the record of real frames was not found (no warning); now it is, as for the plain network."""
    from flownet.registry import load_srflownet, save_srflownet
    from icegan.pipeline import build_flow, load_main_config, real_motion_seen
    seen = save_srflownet(load_srflownet(tiny_flow), tmp_path / "seen.pt",
                          meta={"real_pair_subjects": ["casme2/sub01"]})
    for extra in ([], ["flow.component=expression"], ["flow.component=head"]):
        cfg = load_main_config(None, [f"flow.weights={seen}", *extra])
        assert real_motion_seen(build_flow(cfg, torch.device("cpu")), ["casme2/sub01", "casme2/sub02"]) == \
            ["casme2/sub01"], extra


def test_the_warning_of_a_learned_decomposition_names_its_decflow_weights(tmp_path, caplog):
    """With flow.decompose=learned the network that saw the real frames is the DecFlow of flow.decompose_weights
    (flow.weights is not used): the warning named flow.weights ('shipped')."""
    from flownet.models.decflow import DecFlow, DecFlowConfig, save_decflow
    from icegan.pipeline import load_main_config, run_main
    dec = save_decflow(DecFlow(DecFlowConfig()), tmp_path / "dec_seen.pt",
                       meta={"real_pair_subjects": ["synthetic/s02"]})
    cfg = load_main_config(None, MAIN_TINY + ["flow.component=expression", "flow.decompose=learned",
                                              f"flow.decompose_weights={dec}", "data.max_folds=1",
                                              "gan.enabled=false"])
    with caplog.at_level("WARNING", logger="icegan"):
        run_main(cfg, tmp_path / "run", progress=False)
    said = [r.getMessage() for r in caplog.records if "real onset->apex frames" in r.getMessage()]
    assert len(said) == 1 and f"flow weights ({dec})" in said[0], said
