"""Mutation audit of the main job's orchestration (icegan.pipeline.FoldRunner and run_main) and of the fold executors
(icegan.executors). Each test fails on one small deliberate change of its module that the earlier tests let through
(named in its docstring); the expected values are invariants or hand-computed, not copied from the code's output.

The fold tests run :class:`icegan.pipeline.FoldRunner` on hand-made clips with the GAN, the flow network and the
recognizer replaced by recording stubs, so that they check what each stage is given (which clips, which labels,
which seed, which folder) in well under a second, not what the networks learn."""
from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
import torch

from icegan import pipeline
from icegan.protocol import make_folds


# ------------------------------------------------------------------------------------------- icegan.pipeline (stubs)

class _DifferenceFlow:
    """A flow "network": ``estimate(img1, img2)`` (and ``forward``, for the joint loss) is the brightness difference
    as a horizontal flow (B, 2, H, W)."""

    def __init__(self):
        self.model = torch.nn.Linear(1, 1)

    def estimate(self, img1, img2):
        d = (img2 - img1).float()
        return torch.cat([d, torch.zeros_like(d)], 1)

    forward = estimate


class _Generator(torch.nn.Module):
    """A GAN generator stub: the synthetic apex of class c is the onset brightened by 0.1 · (c + 1), kept in [-1, 1]
    as a generator's tanh keeps it (compute_flow_features refuses images outside [0, 1])."""
    z_dim = 2

    def __init__(self, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        self.unused = torch.nn.Parameter(torch.zeros(1))      # where the synthesis looks for the device

    def forward(self, onset, z, c):
        return (onset + 0.1 * (c.float() + 1).view(-1, 1, 1, 1)).clamp(-1, 1)


class _Discriminator:
    """An ExpCaps discriminator stub: the K capsule lengths of an apex face are its mean brightness and 0s."""

    def eval(self):
        return self

    def __call__(self, x, reconstruct=True, onset=None):
        lengths = torch.zeros(len(x), 3)
        lengths[:, 0] = x.mean((1, 2, 3))
        return types.SimpleNamespace(exp_len=lengths)


def _clips(subjects: list[str], labels: list[int], size: int = 32) -> pipeline.Clips:
    """Clips of the given subjects and labels with distinct random uint8 faces (one clip per entry)."""
    rng = np.random.default_rng(0)
    n = len(subjects)
    samples = pd.DataFrame({"dataset": [s.split("/")[0] for s in subjects], "subject": subjects,
                            "clip": [f"c{i}" for i in range(n)], "label": labels})
    return pipeline.Clips(samples, rng.integers(0, 256, (n, size, size), dtype=np.uint8),
                          rng.integers(0, 256, (n, size, size), dtype=np.uint8))


def _stub_run(monkeypatch, tmp_path, clips, overrides=(), prepared=False):
    """Run every fold of ``clips`` (CDE) through FoldRunner with stub GAN / critic / recognizer; returns one dict per
    fold with what each stage was given (the real features of row i: the value i everywhere). ``prepared``: the
    config's data source is ``prepared`` (the fold's GAN config then records its subjects)."""
    import icegan.gan.trainer as trainer
    cfg = pipeline.load_main_config(None, ["data.img_size=32", "device=cpu", "recognizer.name=ststnet",
                                           "recognizer.input_size=8", *overrides])
    if prepared:
        cfg.data.source = "prepared"
    seen: list[dict] = []

    def train_gan(onset, apex, labels, gcfg, out_dir=None, **kw):
        seen[-1]["gan"] = dict(onset=onset.clone(), apex=apex.clone(), labels=labels.clone(), cfg=gcfg,
                               out_dir=out_dir)
        return types.SimpleNamespace(generator=_Generator(gcfg.model.n_classes), discriminator=_Discriminator())

    def fit_critic(rcfg, x_train, y_train, device, seed=0, n_classes=3):
        seen[-1]["critic"] = dict(x=x_train.clone(), y=y_train.clone(), seed=seed)
        return torch.nn.Identity()

    def fit_predict(rcfg, x_train, y_train, x_test, device, seed=0, sample_weight=None, n_classes=3):
        seen[-1]["fit"] = dict(x=x_train.clone(), y=y_train.clone(), x_test=x_test.clone(), seed=seed,
                               weight=sample_weight)
        return np.full((len(x_test), n_classes), 1.0 / n_classes)
    monkeypatch.setattr(trainer, "train_gan", train_gan)
    monkeypatch.setattr(pipeline, "fit_critic", fit_critic)
    monkeypatch.setattr(pipeline, "fit_predict", fit_predict)
    monkeypatch.setattr(pipeline, "_sample_grid_png", lambda *a, **kw: None)
    feats = torch.arange(len(clips.onset), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).clone()
    runner = pipeline.FoldRunner(cfg, clips, feats, _DifferenceFlow(), tmp_path, torch.device("cpu"))
    for fold in make_folds(clips.samples["subject"].tolist(), "CDE"):
        seen.append({"fold": fold})
        seen[-1]["scores"] = runner(fold)
    return seen


def _three_subjects(names=("d/s0", "d/s1", "d/s2")) -> pipeline.Clips:
    """Three clips (classes 0, 1, 2) of each of the subjects ``names``."""
    return _clips([n for n in names for _ in range(3)], [0, 1, 2] * len(names))


def test_the_joint_critic_of_each_fold_is_seeded_from_the_seed_and_the_fold(monkeypatch, tmp_path):
    """gan.joint: like the fold's other stages, the critic of fold k is seeded from cfg.seed and k: three folds, three
    seeds, each moved by one when cfg.seed is. Fails if every fold's critic gets the same seed (cfg.seed + 1000)."""
    clips = _three_subjects()
    seeds = {}
    for seed in (5, 6):
        seen = _stub_run(monkeypatch, tmp_path / str(seed), clips, ["gan.joint=true", f"seed={seed}"])
        seeds[seed] = [s["critic"]["seed"] for s in seen]
    assert len(set(seeds[5])) == 3
    assert [b - a for a, b in zip(seeds[5], seeds[6])] == [1, 1, 1]


def test_subjects_of_one_name_in_two_datasets_train_their_gans_in_folders_of_their_own(monkeypatch, tmp_path):
    """casme2/s1 and samm/s1 are two subjects, two folds: each fold's GAN writes (and resumes from) a folder of its
    own under <run>/folds. Fails if the folder is named after the subject without its dataset (both folds would share
    one GAN checkpoint)."""
    seen = _stub_run(monkeypatch, tmp_path, _three_subjects(("casme2/s1", "samm/s1", "samm/s2")))
    dirs = [s["gan"]["out_dir"] for s in seen]
    assert len(set(dirs)) == 3
    assert all(d.parent.parent == tmp_path / "folds" for d in dirs)


def test_a_prepared_folds_gan_records_its_held_out_subject_and_its_training_subjects(monkeypatch, tmp_path):
    """A prepared source's fold GAN names its subjects in its config (what ``icegan gan eval`` scores it on): the
    held-out subject alone, and the other subjects, the ones whose pairs it was given. Fails if the training subjects
    are taken from every clip, or the held-out ones from the training rows (as does test_fold_gan_eval's first test,
    on the real data and a trained GAN; this one needs neither)."""
    names = ("d/s0", "d/s1", "d/s2", "d/s3")
    seen = _stub_run(monkeypatch, tmp_path, _three_subjects(names), prepared=True)
    for s in seen:
        data = s["gan"]["cfg"].data
        assert data.holdout_subjects == [s["fold"].subject]
        assert data.train_subjects == sorted(set(names) - {s["fold"].subject})


def test_expcaps_scores_come_back_in_the_order_of_the_held_out_clips(monkeypatch, tmp_path):
    """recognizer.name=expcaps: row j of a fold's scores belongs to its j-th held-out clip (fold.test_idx[j]), the
    order run_loso records them in: here the first capsule length is the mean of that clip's apex in [-1, 1]. Fails
    if the discriminator is given the held-out apexes in another order."""
    clips = _three_subjects()
    seen = _stub_run(monkeypatch, tmp_path, clips, ["recognizer.name=expcaps"])
    for s in seen:
        te = s["fold"].test_idx
        want = clips.apex[te].astype(np.float64).mean((1, 2)) / 255 * 2 - 1
        np.testing.assert_allclose(s["scores"][:, 0], want, rtol=0, atol=1e-5)


def test_the_real_feature_cache_is_keyed_by_the_flow_provenance(monkeypatch, tmp_path):
    """features_real.pt is read back only for the provenance it was made with (the flow weights' SHA-256 and the
    clips' digest): the same call again computes nothing, another weights checksum computes the maps again. Fails if
    the provenance is left out of the cache key (the maps of the old weights would be reused)."""
    cfg = pipeline.load_main_config(None, ["data.n_subjects=2", "data.clips_per_class=1", "data.img_size=32",
                                           "flow.method=farneback", "recognizer.input_size=8"])
    clips = pipeline.load_samples(cfg, progress=False)
    est = pipeline.build_flow(cfg, torch.device("cpu"))
    calls = []
    real_flow = pipeline.compute_flow_features
    monkeypatch.setattr(pipeline, "compute_flow_features", lambda *a, **kw: (calls.append(1), real_flow(*a, **kw))[1])
    for sha in ("aa", "aa", "bb"):
        pipeline._real_features(cfg, clips, est, tmp_path, {"flow_weights_sha256": sha}, progress=False)
    assert calls == [1, 1]


def test_a_main_job_resumed_on_other_faces_with_the_same_clip_names_is_refused(monkeypatch, tmp_path):
    """A finished fold, then the same config on clips of the same names, subjects and labels but other onset pixels
    (e.g. another data.root): the resume is refused (LosoStateError naming the data) instead of reusing the cached maps
    and mixing the old fold with new ones. Fails if the clips' digest (pixels and labels) is left out of the run's
    provenance: the cache key and the run header would then match the old run."""
    from icegan.protocol import LosoStateError
    over = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "flow.method=farneback",
            "gan.enabled=false", "recognizer.name=logreg", "recognizer.input_size=8", "data.max_folds=1",
            "device=cpu"]
    run_dir = tmp_path / "runs" / "r"
    pipeline.run_main(pipeline.load_main_config(None, over), run_dir, progress=False)
    real_load = pipeline.load_samples

    def other_faces(cfg, progress=True, unlabelled=False):
        c = real_load(cfg, progress=progress, unlabelled=unlabelled)
        return pipeline.Clips(c.samples, np.ascontiguousarray(c.onset[:, :, ::-1]), c.apex, c.skipped)
    monkeypatch.setattr(pipeline, "load_samples", other_faces)
    with pytest.raises(LosoStateError, match="data"):
        pipeline.run_main(pipeline.load_main_config(None, over), run_dir, progress=False)


# --------------------------------------------------------------------------------------------------- icegan.executors

class _LastFirstRay:
    """The part of the ``ray`` API that RayExecutor uses, run in this process, whose tasks finish in the reverse
    order of their submission (the last task submitted is the first done), as a faster later fold does on a cluster."""

    def __init__(self):
        self.tasks: dict[int, tuple] = {}
        self.submitted = 0

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 4.0}

    def nodes(self):
        return [{"Alive": True, "Resources": self.cluster_resources()}]

    def put(self, obj):
        return obj

    def remote(self, **options):
        fake = self

        class Task:
            def __init__(self, fn):
                self.fn = fn

            def remote(self, *args):
                ref = fake.submitted
                fake.submitted += 1
                fake.tasks[ref] = (self.fn, args)
                return ref
        return Task

    def wait(self, refs, num_returns=1):
        last = max(refs)
        return [last], [r for r in refs if r != last]

    def get(self, ref):
        fn, args = self.tasks.pop(ref)
        return fn(*args)

    def cancel(self, ref, force=False):
        self.tasks.pop(ref, None)


def test_ray_results_reach_their_own_fold_when_tasks_finish_out_of_order(monkeypatch):
    """Five folds in flight that finish last-submitted first: the driver yields them in that completion order (4, 3,
    2, 1, 0), each with the scores its own task computed (10 × its index). Fails if a result is handed to another
    fold that is still running (e.g. the lowest-numbered one)."""
    import sys

    import icegan.environment
    from icegan.executors import RayExecutor
    from icegan.protocol import Fold
    monkeypatch.setitem(sys.modules, "ray", _LastFirstRay())
    monkeypatch.setattr(icegan.environment, "limit_threads", lambda n: None)     # the tasks run in this process
    folds = [Fold(i, f"d/s{i}", np.arange(2), np.arange(1)) for i in range(5)]
    got = [(fold.index, scores) for fold, scores in RayExecutor(workers=0)(lambda f: f.index * 10, folds)]
    assert got == [(4, 40), (3, 30), (2, 20), (1, 10), (0, 0)]
