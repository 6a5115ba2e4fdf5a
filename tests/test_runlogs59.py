"""Run logs and titles (round 59): ablations of the main job get their own recipe line, TensorBoard marks partial
and not-leak-free runs' final metrics, the per-fold and GAN steps share one axis each, and a resume with a smaller
max_folds than the folder's run is refused for its true reason."""
import json

import numpy as np
import pytest

from icegan.protocol import recipe_line, run_loso


def test_recipe_line_names_the_gan_and_flow_of_a_main_job_config():
    """Ablations of the main job (gan.enabled true/false, flow.method, gan.joint) got the same recipe line, so their
    metrics.md headings, figure titles and TensorBoard text read alike."""
    base = {"seed": 0, "recognizer": {"name": "ststnet", "epochs": 100}}
    on = recipe_line({**base, "gan": {"enabled": True, "joint": False}, "flow": {"method": "srflownet"}})
    off = recipe_line({**base, "gan": {"enabled": False, "joint": False}, "flow": {"method": "tvl1"}})
    joint = recipe_line({**base, "gan": {"enabled": True, "joint": True}, "flow": {"method": "srflownet"}})
    assert on == "seed 0, ststnet, 100 epochs, srflownet flow, GAN"
    assert off == "seed 0, ststnet, 100 epochs, tvl1 flow, no GAN"
    assert joint == "seed 0, ststnet, 100 epochs, srflownet flow, GAN, joint loss"
    # joint without a GAN trains nothing joint: not named
    assert recipe_line({**base, "gan": {"enabled": False, "joint": True}}) == "seed 0, ststnet, 100 epochs, no GAN"
    # configs without these sections read as before
    assert recipe_line(base) == "seed 0, ststnet, 100 epochs"


def test_recipe_line_of_the_main_job_dataclass():
    """The main job passes its MainConfig dataclass (icegan.pipeline), not a dict."""
    from icegan.config import load_config
    from icegan.pipeline import MainConfig
    cfg = load_config(MainConfig, "configs/casme2.yaml", ["gan.enabled=false", "flow.method=tvl1"])
    assert recipe_line(cfg).endswith(", tvl1 flow, no GAN")


# ---------------------------------------------------------------------------------------------------------------
# TensorBoard: partial and not-leak-free runs, one step axis per kind of scalar
# ---------------------------------------------------------------------------------------------------------------

def _events(tb):
    """The run's TensorBoard events in folder ``tb`` (every event file in it): ``{scalar tag: [steps]}`` and
    ``{image tag: [steps]}``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    return ({t: [e.step for e in acc.Scalars(t)] for t in tags["scalars"]},
            {t: [e.step for e in acc.Images(t)] for t in tags["images"]})


@pytest.fixture
def toy():
    """The toy feature set of 6 subjects (3 per dataset, 2 clips per class): 6 CDE folds."""
    from icegan.data.toy_features import make_toy_features
    return make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)


def _centroid(fs, fail_at=None):
    """Nearest-class-mean scores on the fold's training rows; raises at the fold of index ``fail_at`` (a kill)."""
    x, y = fs.features.flatten(1).numpy(), fs.labels.numpy()

    def fold_fn(fold):
        if fold.index == fail_at:
            raise RuntimeError("killed")
        means = np.stack([x[fold.train_idx][y[fold.train_idx] == c].mean(0) for c in range(3)])
        return -((x[fold.test_idx][:, None] - means[None]) ** 2).sum(-1)
    return fold_fn


def test_partial_and_not_leak_free_runs_final_tags_say_so(toy, tmp_path):
    """A max_folds run's final/UF1 looked like a finished LOSO result, and so did a run whose flow network saw the
    real motion of tested subjects: their final* tags are now PARTIAL_ / NOT_LEAKFREE_ (after ORACLE_ where it
    applies), as metrics.md marks them; a whole honest run keeps final/UF1."""
    first = sorted(set(toy.samples["subject"]))[0]
    run_loso(toy.samples, _centroid(toy), tmp_path / "p", config={"max_folds": 2}, max_folds=2, progress=False)
    run_loso(toy.samples, _centroid(toy), tmp_path / "s", progress=False, motion_seen=[first], motion_seen_by="w")
    run_loso(toy.samples, lambda f: _centroid(toy)(f)[None], tmp_path / "b", oracle_epoch=True, max_folds=3,
             progress=False, motion_seen=[first], motion_seen_by="w")
    run_loso(toy.samples, _centroid(toy), tmp_path / "h", progress=False)
    partial, seen, both, honest = (set(_events(tmp_path / r / "tb")[0]) for r in "psbh")
    assert {"PARTIAL_final/UF1", "PARTIAL_final_casme2/UF1"} <= partial
    assert "NOT_LEAKFREE_final/UF1" in seen
    assert "ORACLE_NOT_LEAKFREE_PARTIAL_final/UF1" in both
    for tags in (partial, seen, both):
        assert not any(t.startswith(("final", "ORACLE_final")) for t in tags)
    assert "final/UF1" in honest and not any("PARTIAL" in t or "LEAKFREE" in t for t in honest)
    assert "loso/running_UF1" in partial            # the running metrics are what they say: not renamed


def test_per_fold_scalars_are_logged_at_folds_finished(toy, tmp_path):
    """loso/fold_accuracy was logged at the 0-based fold position, loso/running_UF1 at folds finished: the same fold
    one step apart. Every per-fold scalar is now at the folds finished, also across a resume."""
    with pytest.raises(RuntimeError, match="killed"):
        run_loso(toy.samples, _centroid(toy, fail_at=2), tmp_path / "r", progress=False)
    run_loso(toy.samples, _centroid(toy), tmp_path / "r", progress=False)
    scalars, _ = _events(tmp_path / "r" / "tb")
    assert scalars["loso/fold_accuracy"] == scalars["loso/running_UF1"] == [1, 2, 3, 4, 5, 6]
    assert scalars["final/UF1"] == [6]


@pytest.fixture(scope="module")
def tiny_flow(tmp_path_factory):
    from _flow_sizes import save_main_job_weights
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=1)


MAIN_FAST = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "gan.enabled=false",
             "recognizer.name=random_forest", "recognizer.forest_trees=5", "threads=1", "device=cpu"]


def test_main_job_fold_seconds_are_logged_at_folds_finished(tiny_flow, tmp_path):
    """The main job's fold/seconds was logged at the 0-based fold position while loso/running_UF1 at the folds
    finished; both now at the folds finished, also for the folds an extended max_folds run trains."""
    from icegan.pipeline import load_main_config, run_main
    for k in (2, 0):                # 2 of the 3 folds, then the whole run: its third fold is the 3rd finished
        run_main(load_main_config(None, MAIN_FAST + [f"flow.weights={tiny_flow}", f"data.max_folds={k}"]),
                 tmp_path / "r", progress=False)
    scalars, _ = _events(tmp_path / "r" / "tb")
    assert scalars["fold/seconds"] == scalars["loso/running_UF1"] == scalars["loso/fold_accuracy"] == [1, 2, 3]


def test_gan_lr_and_samples_share_the_batch_step_axis_of_its_losses(tmp_path):
    """The GAN's lr and sample grids were logged at epoch steps (1, 2, ...) on the same event file as its losses at
    batch steps (0 .. epochs x batches - 1): both now at the batch step reached at the end of each epoch (its last
    batch's step), where the epoch's last loss is."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from icegan.gan.trainer import GanConfig, train_gan
    torch.manual_seed(0)
    n, s = 16, 32
    onset = torch.rand(n, 1, s, s) * 2 - 1
    apex = (onset + 0.05 * torch.randn_like(onset)).clamp(-1, 1)
    cfg = GanConfig(name="t")
    cfg.data.img_size = s
    cfg.model.g_base_channels, cfg.model.g_max_channels, cfg.model.d_base_channels = 8, 32, 8
    cfg.train.epochs, cfg.train.batch_size, cfg.train.sample_every = 3, 8, 2       # 2 batches an epoch
    cfg.train.progress, cfg.train.device = False, "cpu"
    w = SummaryWriter(log_dir=str(tmp_path / "tb"))
    train_gan(onset, apex, torch.arange(n) % 3, cfg, log=w)
    w.close()
    scalars, images = _events(tmp_path / "tb")
    assert scalars["loss/g_total"] == [0, 1, 2, 3, 4, 5]
    assert scalars["lr"] == [1, 3, 5]                       # the end of epochs 1, 2 and 3
    assert list(images.values()) == [[3, 5]]                # sample_every=2 and the last epoch


# ---------------------------------------------------------------------------------------------------------------
# a smaller max_folds into a larger run's folder: the true reason
# ---------------------------------------------------------------------------------------------------------------

def test_a_killed_run_rerun_with_a_smaller_max_folds_is_refused_for_its_true_reason(toy, tmp_path):
    """A run of 6 folds killed with 2 finished, rerun with max_folds=3, was refused with "its finished folds include
    folds this run does not run": false (its 2 are among the first 3). The refusal now says the folder records a run
    of 6 folds and names the max_folds that resumes it; the finished-folds claim only where true."""
    from icegan.protocol import LosoStateError
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="killed"):
        run_loso(toy.samples, _centroid(toy, fail_at=2), out, config={"max_folds": 0}, progress=False)
    files = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file() and f.name != "environment.jsonl"}
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, _centroid(toy), out, config={"max_folds": 3}, max_folds=3, progress=False)
    msg = str(exc.value)
    assert "finished folds include" not in msg and "does not run" not in msg
    assert msg == (f"{out} holds a different LOSO run (differs in ['folds', 'folds_total']) (it records a run of 6 "
                   "folds (max_folds=0: all), this run the first 3 of them: a smaller max_folds; resume it with "
                   "max_folds=0); use another --out or delete that folder")
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file() and f.name != "environment.jsonl"} == files
    # a max_folds=5 run killed after 4 folds, rerun with 2: its finished folds do include 2 this run does not run
    with pytest.raises(RuntimeError, match="killed"):
        run_loso(toy.samples, _centroid(toy, fail_at=4), tmp_path / "k", config={"max_folds": 5}, max_folds=5,
                 progress=False)
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, _centroid(toy), tmp_path / "k", config={"max_folds": 2}, max_folds=2, progress=False)
    folds = json.loads((tmp_path / "k" / "run.json").read_text())["folds"]
    assert str(exc.value) == (
        f"{tmp_path / 'k'} holds a different LOSO run (differs in ['folds']) (it records a run of 5 folds "
        f"(max_folds=5), this run the first 2 of them: a smaller max_folds; its finished folds include 2 this run "
        f"does not run ({folds[2]}, {folds[3]}); resume it with max_folds=5, or extend it "
        "with a larger max_folds); use another --out or delete that folder")
