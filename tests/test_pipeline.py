"""The main job (train.py / icegan.pipeline) end to end on a CI-sized synthetic demo.

SRFlowNet runs with small random weights saved by the test through the real loading path (the
shipped weights are tested by the flownet tests); the numbers here are not accuracy claims, only
behaviour: outputs, resume, ablation switches, error handling.
"""
import dataclasses
import json
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from _flow_sizes import save_main_job_weights

from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import save_srflownet
from icegan.config import ConfigError
from icegan import pipeline
from icegan.pipeline import load_main_config, run_main
from icegan.protocol import LosoStateError

TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "data.max_folds=2",
        "gan.epochs=1", "gan.batch_size=8", "gan.base_channels=8", "gan.synthetic_ratio=0.5",
        "recognizer.epochs=2", "recognizer.batch_size=16", "recognizer.name=ststnet"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=2)


def _cfg(tiny_weights, *extra):
    return load_main_config(None, TINY + [f"flow.weights={tiny_weights}", *extra])


def test_demo_two_folds_writes_every_output(tmp_path, tiny_weights, capfd, caplog):
    out = tmp_path / "runs" / "demo"
    caplog.set_level(logging.DEBUG, logger="icegan.gan.trainer")
    m = run_main(_cfg(tiny_weights, "gan.joint=true"), out, progress=False)
    # each fold's GAN epochs go to TensorBoard and to DEBUG, not to the console
    epochs = [r for r in caplog.records if r.name == "icegan.gan.trainer" and r.getMessage().startswith("gan epoch")]
    assert len(epochs) == 2 and all(r.levelno == logging.DEBUG for r in epochs)
    for s in ("synthetic_s01", "synthetic_s02"):
        assert list((out / "tb" / "gan" / s).glob("events.out.tfevents.*")), s
    assert "real flow" not in capfd.readouterr().err      # progress=False (--no-progress) silences every bar
    assert m["protocol"] == "CDE" and m["n_folds"] == 2 and m["n_samples"] == 6
    assert set(m["overall"]) == {"UF1", "UAR", "P_M", "R_M", "F1_M", "F1_mu", "G_M"}
    assert 0.0 <= m["overall"]["UF1"] <= 1.0
    for name in ("config.yaml", "predictions.csv", "metrics.json", "metrics.md", "confusion.png", "timing.json",
                 "features_real.pt"):
        assert (out / name).is_file(), name
    assert list((out / "tb").iterdir())
    pred = pd.read_csv(out / "predictions.csv")
    assert sorted(pred["subject"].unique()) == ["synthetic/s01", "synthetic/s02"]
    for s in ("synthetic_s01", "synthetic_s02"):
        assert (out / "folds" / s / "samples.png").is_file()
        assert (out / "folds" / s / "gan" / "checkpoints" / "last.pt").is_file()
    summary = (tmp_path / "runs" / "summary.md").read_text()
    assert "| demo [PARTIAL: 2 of 3 folds] | synthetic | CDE | 2 | srflownet | ststnet | grm | on |" in summary   # max_folds


def test_resume_after_kill_gives_identical_metrics(tmp_path, tiny_weights, monkeypatch):
    cfg = _cfg(tiny_weights, "gan.enabled=false")
    ref = run_main(cfg, tmp_path / "ref", progress=False)

    calls = []
    real_call = pipeline.FoldRunner.__call__

    def dying(self, fold):
        calls.append(fold.subject)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real_call(self, fold)
    monkeypatch.setattr(pipeline.FoldRunner, "__call__", dying)
    with pytest.raises(KeyboardInterrupt):
        run_main(cfg, tmp_path / "run", progress=False)
    assert len(pd.read_csv(tmp_path / "run" / "predictions.csv")) == 3   # fold 1 kept
    calls.clear()
    monkeypatch.setattr(pipeline.FoldRunner, "__call__", lambda self, fold: (calls.append(fold.subject),
                                                                              real_call(self, fold))[1])
    again = run_main(cfg, tmp_path / "run", progress=False)
    assert calls == ["synthetic/s02"]            # the finished fold is not recomputed
    assert again == ref


def test_resumed_run_reports_the_time_of_every_fold(tmp_path, tiny_weights, monkeypatch):
    """Each fold's time is written to timing.json as the fold finishes: after a Ctrl-C in fold 2 the file holds fold 1,
    and the resumed run's timing.json and summary.md count both folds (not only those of the last call)."""
    cfg = _cfg(tiny_weights, "gan.enabled=false")
    real_call = pipeline.FoldRunner.__call__

    def dying(self, fold):
        if fold.index == 1:
            raise KeyboardInterrupt("killed")
        return real_call(self, fold)
    monkeypatch.setattr(pipeline.FoldRunner, "__call__", dying)
    out = tmp_path / "runs" / "run"
    with pytest.raises(KeyboardInterrupt):
        run_main(cfg, out, progress=False)
    first = json.loads((out / "timing.json").read_text())["fold_seconds"]
    assert list(first) == ["synthetic/s01"] and first["synthetic/s01"] > 0
    monkeypatch.setattr(pipeline.FoldRunner, "__call__", real_call)
    run_main(cfg, out, progress=False)
    timing = json.loads((out / "timing.json").read_text())
    assert sorted(timing["fold_seconds"]) == ["synthetic/s01", "synthetic/s02"]
    assert timing["fold_seconds"]["synthetic/s01"] == first["synthetic/s01"]    # kept, not retrained
    assert timing["executor"] == "sequential" and not (out / "timing.json.tmp").exists()
    summary = (tmp_path / "runs" / "summary.md").read_text().splitlines()
    row = next(r for r in summary if r.startswith("| run [PARTIAL: 2 of 3 folds] | synthetic"))
    assert row.endswith(f"| {sum(timing['fold_seconds'].values()):.0f} |")


def test_resume_refuses_a_run_whose_flow_weights_changed(tmp_path, tiny_weights):
    """The weights file's SHA-256 is part of the run header: same config, different weights file content
    (e.g. new shipped weights) → the finished folds are not mixed with new ones."""
    w = tmp_path / "w.pt"
    w.write_bytes(open(tiny_weights, "rb").read())
    cfg = load_main_config(None, TINY + [f"flow.weights={w}", "gan.enabled=false", "data.max_folds=1"])
    run_main(cfg, tmp_path / "run", progress=False)
    header = json.loads((tmp_path / "run" / "run.json").read_text())
    assert header["provenance"]["flow_weights"] == "w.pt" and len(header["provenance"]["flow_weights_sha256"]) == 64
    assert run_main(cfg, tmp_path / "run", progress=False)["n_folds"] == 1          # unchanged weights resume
    torch.manual_seed(1)
    other = SRFlowNet(SRFlowNetConfig(feature_layers=(8, 8, 16, 16, 16), context_layers=(8, 8, 16, 16, 32), hidden=16,
                                      corr_levels=2, motion_channels=16, flow_head_hidden=16, mask_hidden=16, iters=2))
    save_srflownet(other, w)
    with pytest.raises(LosoStateError, match="provenance"):
        run_main(cfg, tmp_path / "run", progress=False)
    # classical flow: no weights, no provenance entry
    assert pipeline.flow_weights_provenance(load_main_config(None, ["flow.method=tvl1", "gan.joint=false"])) == {}
    assert "flow_weights_sha256" in pipeline.flow_weights_provenance(load_main_config(None, []))   # shipped file


def test_ablation_switches(tmp_path, tiny_weights, monkeypatch):
    seen = {}
    import icegan.gan.trainer as trainer
    real_train = trainer.train_gan

    def spy(onset, apex, labels, cfg, **kw):
        state = real_train(onset, apex, labels, cfg, **kw)
        seen["skip"] = cfg.model.skip
        seen["modules"] = {type(m).__name__ for m in state.generator.grms}
        seen["joint"] = kw.get("extra_loss_fn") is not None
        if cfg.model.motion_head:
            seen["motion"] = (cfg.model.motion_prior, cfg.model.d_motion_input,
                              bool(state.generator.motion_prior.abs().sum() > 0), getattr(state.discriminator, "motion_input", None))
        return state
    monkeypatch.setattr("icegan.gan.trainer.train_gan", spy)

    run_main(_cfg(tiny_weights, "gan.skip=plain", "gan.joint=false", "data.max_folds=1"), tmp_path / "a",
             progress=False)
    assert seen == {"skip": "plain", "modules": {"Identity"}, "joint": False}
    run_main(_cfg(tiny_weights, "gan.skip=se", "gan.joint=true", "data.max_folds=1"), tmp_path / "b",
             progress=False)
    assert seen == {"skip": "se", "modules": {"SqueezeExcitation"}, "joint": True}
    run_main(_cfg(tiny_weights, "data.max_folds=1"), tmp_path / "g", progress=False)
    assert seen == {"skip": "grm", "modules": {"GraphReasoningModule"}, "joint": False}   # the default
    # no GAN at all: nothing trained, no fold GAN folders
    seen.clear()
    run_main(_cfg(tiny_weights, "gan.enabled=false", "flow.method=farneback", "flow.weights=null",
                  "data.max_folds=1"), tmp_path / "c",
             progress=False)
    assert seen == {} and not (tmp_path / "c" / "folds").exists()
    # ExpCaps recognizer: the fold's discriminator classifies apex faces
    m = run_main(_cfg(tiny_weights, "recognizer.name=expcaps", "gan.synthetic_ratio=0.0", "gan.joint=false",
                      "data.max_folds=1"), tmp_path / "d", progress=False)
    assert m["n_samples"] == 3
    # the motion recipe reaches the fold's GAN (prior filled from the fold's training pairs; D sees the onset),
    # and the ExpCaps recognizer hands the motion-input D each apex with its onset
    seen.clear()
    m = run_main(_cfg(tiny_weights, "gan.motion_head=true", "gan.motion_prior=farneback", "gan.d_motion_input=true",
                      "recognizer.name=expcaps", "gan.synthetic_ratio=0.0", "data.max_folds=1"), tmp_path / "e",
                 progress=False)
    assert seen["motion"] == ("farneback", True, True, True) and m["n_samples"] == 3


def test_main_job_with_a_random_forest_recognizer(tmp_path, tiny_weights):
    """recognizer.name=random_forest in the main job: the fold's forest scores the held-out clips (probabilities),
    and the joint GAN loss, which needs a differentiable critic, trains an STSTNet for it instead."""
    m = run_main(_cfg(tiny_weights, "recognizer.name=random_forest", "recognizer.forest_trees=10", "gan.joint=true",
                      "data.max_folds=1"), tmp_path / "rf", progress=False)
    assert m["n_samples"] == 3
    pred = pd.read_csv(tmp_path / "rf" / "predictions.csv")
    scores = pred[["score_negative", "score_positive", "score_surprise"]].to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all() and abs(scores.sum(1) - 1).max() < 1e-6


def test_synthetic_weight_reaches_the_recognizer_and_changes_it(tmp_path, tiny_weights, monkeypatch):
    """gan.synthetic_weight: the fold's recognizer gets weight 1 for every real row and the setting for every synthetic
    row; 1.0 (the default) passes no weights at all; a lower weight changes the held-out scores."""
    seen = []
    real_fit_predict = pipeline.fit_predict

    def spy(rcfg, x_train, y_train, x_test, device, seed=0, sample_weight=None, n_classes=3):
        seen.append((len(x_train), None if sample_weight is None else sample_weight.clone()))
        return real_fit_predict(rcfg, x_train, y_train, x_test, device, seed=seed, sample_weight=sample_weight,
                                n_classes=n_classes)
    monkeypatch.setattr(pipeline, "fit_predict", spy)

    run_main(_cfg(tiny_weights, "data.max_folds=1"), tmp_path / "w1", progress=False)
    n_train, w = seen[-1]
    assert w is None
    run_main(_cfg(tiny_weights, "data.max_folds=1", "gan.synthetic_weight=0.25"), tmp_path / "w25", progress=False)
    n_train_25, w = seen[-1]
    n_real = 6      # the tiny demo: 3 subjects x 3 classes x 1 clip, one subject held out
    assert n_train_25 == n_train > n_real            # the same real + synthetic rows as with weight 1
    assert torch.equal(w[:n_real], torch.ones(n_real))
    assert torch.equal(w[n_real:], torch.full((n_train - n_real,), 0.25))
    s1 = pd.read_csv(tmp_path / "w1" / "predictions.csv")["score_negative"].to_numpy()
    s25 = pd.read_csv(tmp_path / "w25" / "predictions.csv")["score_negative"].to_numpy()
    assert abs(s1 - s25).max() > 1e-6
    # a run of before the option resumes: the neutral value is left out of the saved config's comparison
    from icegan.config import without_neutral_keys
    saved = {"gan": {"synthetic_weight": 1.0, "epochs": 1}}
    assert without_neutral_keys(saved) == {"gan": {"epochs": 1}}


@pytest.mark.parametrize("override, key", [("gan.synthetic_weight=0", "gan.synthetic_weight"),
                                           ("gan.synthetic_weight=-1", "gan.synthetic_weight"),
                                           ("gan.synthetic_weight=.nan", "gan.synthetic_weight"),
                                           ("gan.synthetic_ratio=-0.5", "gan.synthetic_ratio")])
def test_synthetic_row_settings_out_of_range_are_refused(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_main_config(None, [override])


@pytest.mark.parametrize("override, msg", [
    ("gan.lr=-1", "gan.lr must be a finite number > 0, got -1.0"),        # was torch's "Invalid learning rate"
    ("gan.lr_d=0", "gan.lr_d must be a finite number > 0, got 0.0"),
    ("gan.batch_size=0", "gan.batch_size must be >= 1, got 0"),           # was a ZeroDivisionError
    ("gan.epochs=-1", "gan.epochs must be >= 1, got -1"),                 # was "No such file ... history.json"
    ("gan.beta1=1", "gan.beta1 must be in [0, 1), got 1.0"),
    ("gan.counterfactual=-0.5", "gan.counterfactual must be a finite number >= 0, got -0.5"),
    ("gan.max_channels=0", "gan.max_channels must be >= 1, got 0"),
    ("flow.batch_size=0", "flow.batch_size must be >= 1, got 0"),        # was range()'s "arg 3 must not be zero"
    ("threads=-1", "threads must be >= 0"),
])
def test_main_job_gan_and_thread_settings_out_of_range_are_refused(override, msg):
    """A GAN setting that would crash deep in a fold (torch's optimiser, a division by the batch size) or train
    nothing is refused when the config is read, naming its key."""
    with pytest.raises(ConfigError, match=re.escape(msg)):
        load_main_config(None, [override])


def test_joint_weight_scales_the_joint_loss(tmp_path, tiny_weights, monkeypatch):
    """gan.joint_weight multiplies the joint loss the generator is given: on the same fold (same critic, same flow
    network) and the same images, 2.5 gives 2.5 times the loss of 1.0, which is the critic's cross-entropy (> 0)."""
    import icegan.gan.trainer as trainer
    real_train = trainer.train_gan
    torch.manual_seed(0)
    onset, fake = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    c = torch.tensor([0, 1, 2, 0])
    got = {}

    def spy(*a, extra_loss_fn=None, **kw):
        with torch.no_grad():
            got[len(got)] = float(extra_loss_fn(None, onset, None, c, fake))
        return real_train(*a, extra_loss_fn=extra_loss_fn, **kw)
    monkeypatch.setattr("icegan.gan.trainer.train_gan", spy)
    for k, w in enumerate(("1.0", "2.5")):
        run_main(_cfg(tiny_weights, "gan.joint=true", f"gan.joint_weight={w}", "data.max_folds=1"), tmp_path / str(k),
                 progress=False)
    assert got[0] > 0 and got[1] == pytest.approx(2.5 * got[0], rel=1e-6)


def test_synthetic_rows_pair_each_fake_apex_with_its_own_onset(tmp_path, tiny_weights, monkeypatch):
    """The flow of a synthetic row runs from the onset the GAN made that apex from: the onsets handed to the flow are
    the training onsets in the order of the augmentation's source indices (not sorted, not shifted)."""
    import icegan.gan.synthesis as synthesis
    real_aug, real_flow = synthesis.balanced_augmentation, pipeline.compute_flow_features
    seen = {}

    def aug(g, onset, labels, **kw):
        fake, src, cls = real_aug(g, onset, labels, **kw)
        seen["onset"], seen["src"] = onset.cpu(), src
        return fake, src, cls

    def flow(estimator, onset01, apex01, *a, **kw):
        if "src" in seen and "flow_onset" not in seen:
            seen["flow_onset"] = onset01.clone()
        return real_flow(estimator, onset01, apex01, *a, **kw)
    monkeypatch.setattr(synthesis, "balanced_augmentation", aug)
    monkeypatch.setattr(pipeline, "compute_flow_features", flow)
    run_main(_cfg(tiny_weights, "data.max_folds=1", "gan.synthetic_ratio=1.0"), tmp_path / "r", progress=False)
    src = seen["src"]
    assert len(src) > 2 and not torch.equal(src, torch.sort(src).values)      # an order a mistake would change
    torch.testing.assert_close(seen["flow_onset"], (seen["onset"][src] + 1) / 2, rtol=0, atol=0)


def test_config_errors_name_the_keys(tiny_weights):
    with pytest.raises(ConfigError, match="gan.motion_head"):
        load_main_config(None, ["gan.motion_prior=tvl1"])
    with pytest.raises(ConfigError, match="flow.method=srflownet"):
        load_main_config(None, ["flow.method=tvl1", "gan.joint=true"])   # joint loss needs a differentiable flow
    with pytest.raises(ConfigError, match="gan.enabled"):
        load_main_config(None, ["gan.enabled=false", "recognizer.name=expcaps"])
    with pytest.raises(ConfigError, match="data.img_size"):
        load_main_config(None, ["data.img_size=48"])
    with pytest.raises(ConfigError, match="gan.epoch"):
        load_main_config(None, ["gan.epoch=3"])
    with pytest.raises(ConfigError, match="flow.precision"):
        load_main_config(None, ["flow.precision=fp16"])
    # options the main job's recognizer would only pretend to apply: its run would say ORACLE, or early stopping
    with pytest.raises(ConfigError, match=r"oracle_epoch=true .* not by the main job.*set oracle_epoch=false"):
        load_main_config(None, ["oracle_epoch=true"])
    with pytest.raises(ConfigError, match=r"recognizer.inner_val_fraction \(inner-validation early stopping\) is "
                                          r"supported by `icegan loso` feature runs, not by the main job.*set it to 0"):
        load_main_config(None, ["recognizer.inner_val_fraction=0.2"])


def test_flow_precision_reaches_the_estimator(tiny_weights):
    cfg = _cfg(tiny_weights, "flow.precision=bf16")
    assert pipeline.build_flow(cfg, torch.device("cpu")).precision == "bf16"
    assert pipeline.build_flow(_cfg(tiny_weights), torch.device("cpu")).precision == "fp32"
    # the classical methods take no precision (the option is ignored, not an error)
    tv = load_main_config(None, TINY + ["flow.method=tvl1", "flow.precision=bf16", "gan.joint=false"])
    assert not hasattr(pipeline.build_flow(tv, torch.device("cpu")), "precision")


def test_nan_loss_stops_fold_with_clear_message(tmp_path, tiny_weights, monkeypatch):
    def bad_joint(self, feats, y, k):
        return lambda g, onset, z, c, fake: fake.sum() * float("nan")
    monkeypatch.setattr(pipeline.FoldRunner, "_joint_loss", bad_joint)
    out = tmp_path / "nan"
    with pytest.raises(FloatingPointError, match="non-finite"):
        run_main(_cfg(tiny_weights, "gan.joint=true", "gan.epochs=2", "data.max_folds=1"), out, progress=False)
    assert not (out / "predictions.csv").exists() or len(pd.read_csv(out / "predictions.csv")) == 0


def test_cli_reports_missing_weights_in_one_line(tmp_path, capsys):
    rc = pipeline.main(["--out", str(tmp_path / "x"), "--no-progress", "flow.weights=" + str(tmp_path / "none.pt")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "SRFlowNet weights not found" in err and "none.pt" in err and "Traceback" not in err


def test_main_job_with_a_custom_recognizer(tmp_path, tiny_weights):
    """recognizer.name=custom in the main job: the user's network scores the held-out clips, is its own critic for
    the joint GAN loss, and its source file's SHA-256 joins the flow weights' in run.json."""
    from pathlib import Path

    from icegan.models.recognizers import PlainRecognizer
    spec = f"{Path(__file__).resolve().parents[1] / 'docs' / 'examples' / 'custom_recognizer.py'}:TwoLayerCNN"
    cfg = _cfg(tiny_weights, "recognizer.name=custom", f"recognizer.module={spec}", "gan.joint=true",
               "data.max_folds=1")
    critic = pipeline.fit_critic(cfg.recognizer, torch.rand(6, 3, 28, 28), torch.tensor([0, 1, 2] * 2), torch.device("cpu"))
    assert isinstance(critic, PlainRecognizer) and not any(p.requires_grad for p in critic.parameters())
    m = run_main(cfg, tmp_path / "c", progress=False)
    assert m["n_samples"] == 3
    prov = json.loads((tmp_path / "c" / "run.json").read_text())["provenance"]
    assert prov["recognizer_module"] == spec and len(prov["recognizer_source_sha256"]) == 64
    assert prov["flow_weights"] == "tiny.pt" and len(prov["flow_weights_sha256"]) == 64
    scores = pd.read_csv(tmp_path / "c" / "predictions.csv")[["score_negative", "score_positive", "score_surprise"]]
    assert abs(scores.to_numpy().sum(1) - 1).max() < 1e-5


def test_main_job_with_a_custom_flow_network(tmp_path):
    """flow.method=custom: the user's network computes the features (here the example's Horn–Schunck, copied), the
    joint GAN loss back-propagates through it, its source's SHA-256 is in run.json, and an edited network is
    refused on resume instead of reusing the old features."""
    import shutil
    from pathlib import Path

    net = tmp_path / "hs.py"
    shutil.copy(Path(__file__).resolve().parents[1] / "docs" / "examples" / "custom_flow.py", net)
    over = TINY + ["flow.method=custom", f"flow.module={net}:HornSchunck", "gan.joint=true", "data.max_folds=1"]
    m = run_main(load_main_config(None, over), tmp_path / "f", progress=False)
    assert m["n_samples"] == 3
    prov = json.loads((tmp_path / "f" / "run.json").read_text())["provenance"]
    assert prov["flow_module"] == f"{net}:HornSchunck" and len(prov["flow_module_sha256"]) == 64
    net.write_text(net.read_text().replace("alpha: float = 0.05", "alpha: float = 0.1"))
    with pytest.raises(LosoStateError, match="provenance"):
        run_main(load_main_config(None, over), tmp_path / "f", progress=False)
    with pytest.raises(ConfigError, match="flow.method=custom needs flow.module"):
        load_main_config(None, ["flow.method=custom"])
    with pytest.raises(ConfigError, match="read only with flow.method=custom"):
        load_main_config(None, [f"flow.module={net}:HornSchunck"])


def test_main_job_reports_bad_data_in_one_line(tmp_path, capsys):
    """Data that cannot make LOSO folds, and synthetic-set sizes that cannot either, end the main job with one line
    (exit 2) naming the setting, not a traceback."""
    from icegan.pipeline import main
    from icegan.protocol import LosoScopeError, make_folds
    for override, message in [("data.n_subjects=1", "data.n_subjects must be >= 2"),
                              ("data.amplitude=[3, 1]", "data.amplitude must be [min, max]"),
                              ("data.max_folds=-1", "data.max_folds must be >= 0")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_main_config(None, [override])
    assert main(["data.protocol=SDE", "data.dataset=samm", "data.n_subjects=2", "data.clips_per_class=1",
                 "gan.enabled=false", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "data.dataset='samm' is not a dataset of this config's data section (['synthetic'])" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()           # refused before anything ran
    # a prepared source: the SDE dataset checked against data.prepare.datasets when the config loads, key named
    casme = Path(__file__).resolve().parents[1] / "configs" / "casme2.yaml"
    with pytest.raises(ConfigError, match=re.escape("data.dataset='casme' is not a dataset of this config's data "
                                                    "section (['casme2']) (did you mean 'casme2'?)")):
        load_main_config(casme, ["data.dataset=casme"])
    with pytest.raises(ConfigError, match=r"data.protocol=SDE needs data.dataset.*\['casme2'\]"):
        load_main_config(casme, ["data.dataset=null"])
    # the LOSO protocol's own message names the key of both commands
    with pytest.raises(LosoScopeError, match=r"SDE dataset 'casme' has no clips; datasets present: \['casme2'\] "
                                             r"\(did you mean 'casme2'\?\); .*dataset=NAME in icegan loso, "
                                             r"data.dataset=NAME in train.py"):
        make_folds(["casme2/sub01", "casme2/sub02"], "SDE", "casme")
    with pytest.raises(LosoScopeError, match=r"at least 2 subjects in scope \(CDE\), got 1: \['casme2/sub01'\] "
                                             r"from 3 clip\(s\)"):
        make_folds(["casme2/sub01"] * 3, "CDE")


def test_main_job_reports_bad_clips_in_one_line(tmp_path, capsys, monkeypatch):
    """The clips the main job loaded are checked before any training: a clip listed twice, or a loader's own
    ValueError (e.g. an unknown label in a clip list), ends the run with one line naming the problem, no traceback
    and no fold trained."""
    import icegan.pipeline as pipeline
    real = pipeline.load_samples

    def twice(cfg, progress=True, unlabelled=False):
        clips = real(cfg, progress=progress, unlabelled=unlabelled)
        clips.samples.loc[1, ["subject", "clip"]] = clips.samples.loc[0, ["subject", "clip"]].to_numpy()
        return clips
    base = ["data.n_subjects=3", "data.clips_per_class=1", "gan.enabled=false", "flow.method=farneback",
            "--no-progress"]
    monkeypatch.setattr(pipeline, "load_samples", twice)
    assert pipeline.main([*base, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "error: the run's clips: samples: row 1: clip" in err and "appears twice" in err
    assert "Traceback" not in err and not (tmp_path / "a" / "predictions.csv").exists()

    def unknown_label(cfg, progress=True, unlabelled=False):
        raise ValueError("clips.csv line 3: unknown label 'happiness'")
    monkeypatch.setattr(pipeline, "load_samples", unknown_label)
    assert pipeline.main([*base, "--out", str(tmp_path / "b")]) == 2
    assert "error: the run's clips: clips.csv line 3: unknown label 'happiness'" in capsys.readouterr().err


def test_clips_left_out_of_a_run_are_listed_in_its_skipped_csv(tmp_path, tiny_weights, monkeypatch, caplog):
    """The clips of the data section that the run does not use (preprocessing could not prepare them, or they have
    no class) are written with their reasons to the run's skipped.csv and counted in a warning; a later call that
    uses every clip removes the file, so it always describes the latest call."""
    real = pipeline.load_samples
    gone = pd.DataFrame({"key": ["casme2/sub09/EP01_01", "casme2/sub10/EP02_02"],
                         "reason": ["frames not on disk", "no face found in the onset frame"]})

    def with_skips(cfg, progress=True, unlabelled=False):
        return dataclasses.replace(real(cfg, progress=progress, unlabelled=unlabelled), skipped=gone)
    monkeypatch.setattr(pipeline, "load_samples", with_skips)
    cfg, out = _cfg(tiny_weights, "gan.enabled=false", "data.max_folds=1"), tmp_path / "r"
    with caplog.at_level(logging.WARNING, logger="icegan"):
        run_main(cfg, out, progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(out / "skipped.csv"), gone)
    assert f"2 clip(s) of the data section are not in this run (casme2/sub09/EP01_01, ...): all of them, with the " \
           f"reason, in {out / 'skipped.csv'}" in caplog.text
    monkeypatch.setattr(pipeline, "load_samples", real)
    run_main(cfg, out, progress=False)                 # resumed: every clip used this time
    assert not (out / "skipped.csv").exists()


def test_main_job_reports_an_unreadable_coding_sheet_in_one_line(shared_data, tmp_path, capsys):
    from icegan.pipeline import main
    sheet = tmp_path / "coding.xlsx"
    sheet.write_bytes(b"not a workbook")
    datasets = f"[{{name: casme2, root: {shared_data / 'casme2'}, annotations: {sheet}, mode: cropped}}]"
    assert main(["--config", "configs/casme2.yaml", f"data.prepare.datasets={datasets}", "gan.enabled=false",
                 f"data.prepare.cache_root={tmp_path / 'cache'}", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"error: {sheet}: cannot be read as an .xlsx workbook" in err and "Traceback" not in err


def test_cli_says_a_synthetic_run_is_a_pipeline_check(tmp_path, tiny_weights, capsys):
    """The console ends with the metrics line and, for the built-in synthetic data, a note that its score is no
    micro-expression result (the demo's easy classes score near 1)."""
    rc = pipeline.main(["--out", str(tmp_path / "demo"), "--no-progress", *TINY, "gan.enabled=false",
                        f"flow.weights={tiny_weights}"])
    out = capsys.readouterr().out
    assert rc == 0 and "CDE LOSO over 2 folds, 6 clips: UF1" in out
    assert "note: data.source=synthetic" in out and "not a micro-expression result" in out


def test_exported_map_names_never_share_a_file():
    """Each clip's map gets its own file, also where subject and clip names would join to one name (``a/b_c`` + ``d``
    and ``a/b`` + ``c_d``), where two names differ only in case (one file on a case-blind disk), or where a clip name
    holds a path separator; names met once stay ``<subject with / as _>_<clip>.npy``."""
    names = pipeline.map_file_names(["a/b_c", "a/b", "casme2/sub01", "casme2/Sub01", "smic/s1", "a/b"],
                                    ["d", "c_d", "EP01", "ep01", "Negative/n1", "c\\d"])
    assert names == ["a_b_c_d.npy", "a_b_c_d_2.npy", "casme2_sub01_EP01.npy", "casme2_Sub01_ep01_2.npy",
                     "smic_s1_Negative_n1.npy", "a_b_c_d_3.npy"]


def test_exported_features_are_the_main_jobs_and_run_under_icegan_loso(tmp_path, tiny_weights, capsys, monkeypatch):
    """``icegan features`` writes exactly the maps the main job computes for its real clips (bit for bit, same rows,
    labels and subjects), refuses to overwrite a table, and ``icegan loso data.source=table`` runs on them."""
    from icegan.cli import main
    from icegan.data.feature_table import load_table_features
    cfg = _cfg(tiny_weights, "gan.enabled=false")
    run_main(cfg, tmp_path / "run", progress=False)
    ref = torch.load(tmp_path / "run" / "features_real.pt", weights_only=True)["features"]
    table = pipeline.export_features(cfg, tmp_path / "feats", progress=False)
    fs = load_table_features(table)
    assert torch.equal(fs.features, ref)
    pred = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert set(zip(fs.samples["subject"], fs.samples["clip"], fs.samples["label"])) >= set(
        zip(pred["subject"], pred["clip"], pred["y_true"]))
    assert (tmp_path / "feats" / "config.yaml").is_file()
    info = json.loads((tmp_path / "feats" / "provenance.json").read_text())
    assert info["clips"] == len(fs) and info["size"] == 28 and info["flow"]["method"] == "srflownet"
    assert info["faces"] == {"source": "synthetic"}
    with pytest.raises(FileExistsError, match="features.csv exists"):
        pipeline.export_features(cfg, tmp_path / "feats", progress=False)
    # the command line: the table and the icegan loso line that runs it
    args = ["--no-progress", *TINY, f"flow.weights={tiny_weights}"]
    assert main(["features", "--out", str(tmp_path / "cli"), *args]) == 0
    out = capsys.readouterr().out
    assert f"data.table={tmp_path / 'cli' / 'features.csv'} data.size=28" in out
    assert main(["features", "--out", str(tmp_path / "cli"), *args]) == 2
    # threads= is honoured as train.py honours it (it was ignored), and the allocator setting is the main job's
    import icegan.allocator
    calls = []
    monkeypatch.setattr(icegan.allocator, "retain_freed_memory", lambda: calls.append(1) or True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        pipeline.export_features(dataclasses.replace(cfg, threads=1), tmp_path / "one_thread", progress=False)
        assert torch.get_num_threads() == 1 and calls == [1]
    finally:
        torch.set_num_threads(before)
    assert "features.csv exists" in capsys.readouterr().err
    assert main(["loso", "--config", "configs/features_ststnet.yaml", "--out", str(tmp_path / "loso"), "--no-progress",
                 "data.source=table", f"data.table={tmp_path / 'cli' / 'features.csv'}", "data.size=28",
                 "model.epochs=2", "model.batch_size=16"]) == 0
    m = json.loads((tmp_path / "loso" / "metrics.json").read_text())
    assert m["n_samples"] == len(fs) and m["per_dataset"].keys() == {"synthetic"}


def test_fold_gan_checkpoints_at_most_ten_times():
    """A fold's GAN saved a checkpoint every epoch: 100 per fold for configs/megc2019.yaml's 100 GAN epochs. It saves
    every max(1, ceil(epochs / 10)) epochs now (the trainer also saves the last epoch; epochs // 10 saved 13 times
    for 25 epochs, every epoch for 10-19)."""
    from icegan.pipeline import _gan_config, load_main_config
    for epochs, every in ((100, 10), (25, 3), (15, 2), (5, 1), (1, 1)):
        cfg = load_main_config(None, [f"gan.epochs={epochs}"])
        assert _gan_config(cfg, torch.device("cpu")).train.checkpoint_every == every


def test_motion_prior_flows_are_computed_once_per_run_and_each_fold_gets_its_rows(tmp_path, tiny_weights,
                                                                                  monkeypatch):
    """With the GAN's motion prior, every clip's classical flow is computed once per run (a clip is in the training
    set of every fold but its own), and each fold's prior is averaged from exactly its training pairs' flows: the
    rows handed to the fold equal the flows of that fold's pairs computed on their own."""
    from icegan.gan import motion
    real_pair_flows, real_class_mean_flow = motion.pair_flows, motion.class_mean_flow
    calls, checked = [], []

    def counting_pair_flows(onset, apex, method="tvl1"):
        calls.append((onset.shape[0], method))
        return real_pair_flows(onset, apex, method)

    def checking_class_mean_flow(onset, apex, labels, n_classes, method="tvl1", symmetric=True, flows=None):
        assert flows is not None and method == "farneback"
        torch.testing.assert_close(flows, real_pair_flows(onset, apex, method), rtol=0, atol=0)
        checked.append(onset.shape[0])
        return real_class_mean_flow(onset, apex, labels, n_classes, method, symmetric, flows=flows)
    monkeypatch.setattr(motion, "pair_flows", counting_pair_flows)
    monkeypatch.setattr(motion, "class_mean_flow", checking_class_mean_flow)
    pipeline._PRIOR_FLOWS.clear()
    m = run_main(_cfg(tiny_weights, "gan.motion_head=true", "gan.motion_prior=farneback"), tmp_path / "run",
                 progress=False)
    assert m["n_folds"] == 2
    assert calls == [(9, "farneback")]           # all 9 clips (3 subjects x 3 classes), once
    assert checked == [6, 6]                     # each fold: the 6 clips of the two other subjects
    assert pipeline._PRIOR_FLOWS == {}           # released when the run's folds are done


def test_fold_resumed_from_its_finished_gan_does_not_compute_the_motion_prior_flows(tmp_path, tiny_weights,
                                                                                      monkeypatch):
    """A run killed in a fold's recognizer, after that fold's GAN checkpoint reached its last epoch, resumes the fold
    from the checkpoint (which holds the motion prior): the run's classical flows are not computed again, and the
    resumed run's metrics equal those of a run never interrupted."""
    from icegan.gan import motion
    cfg = _cfg(tiny_weights, "gan.motion_head=true", "gan.motion_prior=farneback")
    pipeline._PRIOR_FLOWS.clear()
    ref = run_main(cfg, tmp_path / "ref", progress=False)
    real_fit_predict = pipeline.fit_predict

    def dying(rcfg, x_train, *args, seed=0, **kwargs):
        if seed == cfg.seed + 1:                      # fold 2's recognizer, after its GAN finished
            raise KeyboardInterrupt("killed")
        return real_fit_predict(rcfg, x_train, *args, seed=seed, **kwargs)
    monkeypatch.setattr(pipeline, "fit_predict", dying)
    pipeline._PRIOR_FLOWS.clear()
    with pytest.raises(KeyboardInterrupt):
        run_main(cfg, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "folds" / "synthetic_s02" / "gan" / "checkpoints" / "last.pt").is_file()
    monkeypatch.setattr(pipeline, "fit_predict", real_fit_predict)
    calls = []
    real_pair_flows = motion.pair_flows
    monkeypatch.setattr(motion, "pair_flows", lambda o, a, m="tvl1": (calls.append(len(o)), real_pair_flows(o, a, m))[1])
    pipeline._PRIOR_FLOWS.clear()                     # a new process
    again = run_main(cfg, tmp_path / "run", progress=False)
    assert calls == []
    assert again == ref


def test_motion_prior_flows_survive_a_runner_unpickled_per_fold(tmp_path, tiny_weights, monkeypatch):
    """A Ray worker unpickles a fresh FoldRunner for every fold: the prior's flows are still computed once per
    process (kept in the module, keyed by the clips), and clips with other pixels get their own."""
    import pickle

    import numpy as np

    from icegan.gan import motion
    cfg = _cfg(tiny_weights)
    rng = np.random.default_rng(0)
    onset, apex = rng.integers(0, 256, (5, 32, 32), dtype=np.uint8), rng.integers(0, 256, (5, 32, 32), dtype=np.uint8)
    samples = pd.DataFrame({"dataset": "d", "subject": [f"d/s{i}" for i in range(5)],
                            "clip": [f"c{i}" for i in range(5)], "label": [0, 1, 2, 0, 1]})
    runner = pipeline.FoldRunner(cfg, pipeline.Clips(samples, onset, apex), torch.zeros(5, 3, 28, 28), None,
                                 tmp_path, torch.device("cpu"))
    calls = []
    real = motion.pair_flows
    monkeypatch.setattr(motion, "pair_flows", lambda o, a, m: (calls.append(len(o)), real(o, a, m))[1])
    pipeline._PRIOR_FLOWS.clear()
    first = pickle.loads(pickle.dumps(runner))._motion_prior_flows("farneback", [0, 2])
    second = pickle.loads(pickle.dumps(runner))._motion_prior_flows("farneback", [1, 2, 3])
    assert calls == [5]
    torch.testing.assert_close(first[1], second[1], rtol=0, atol=0)
    torch.testing.assert_close(second, real(runner._pm1(onset[[1, 2, 3]]), runner._pm1(apex[[1, 2, 3]]), "farneback"))
    other = pipeline.FoldRunner(cfg, pipeline.Clips(samples, apex, onset), torch.zeros(5, 3, 28, 28), None, tmp_path,
                                torch.device("cpu"))
    other._motion_prior_flows("farneback", [0])
    assert calls == [5, 5]
    pipeline._PRIOR_FLOWS.clear()


def test_each_fold_sees_only_its_training_subjects(tmp_path, tiny_weights, monkeypatch):
    """No held-out clip reaches a fold's training: the GAN gets exactly the training subjects' (onset, apex) pairs
    and labels, the joint-loss critic their real features, the augmentation their onsets and the class target
    round((1 + ratio) x the largest training class count); the recognizer trains on those real rows followed by the
    synthetic rows labelled with the class each apex was made for, and scores the held-out subject's real features.
    Fold k's augmentation and recognizer are seeded seed + k."""
    import icegan.gan.synthesis as synthesis
    import icegan.gan.trainer as trainer
    real_load, real_call = pipeline.load_samples, pipeline.FoldRunner.__call__
    real_train, real_aug = trainer.train_gan, synthesis.balanced_augmentation
    real_critic, real_flow, real_fit = pipeline.fit_critic, pipeline.compute_flow_features, pipeline.fit_predict
    clips = {}
    seen: list[dict] = []

    def load(cfg, progress=True, unlabelled=False):
        c = real_load(cfg, progress=progress, unlabelled=unlabelled)
        row = int(((c.samples["subject"] == "synthetic/s02") & (c.samples["label"] == 1)).to_numpy().argmax())
        c.samples.loc[row, "label"] = 0                 # fold 0 trains on classes 3 / 1 / 2: unbalanced
        clips["c"] = c
        return c

    def call(self, fold):
        seen.append({"fold": fold})
        return real_call(self, fold)

    def train(onset, apex, labels, cfg, **kw):
        seen[-1]["gan"] = (onset.clone(), apex.clone(), labels.clone())
        return real_train(onset, apex, labels, cfg, **kw)

    def critic(rcfg, x_train, y_train, device, seed=0, **kw):
        seen[-1]["critic"] = (x_train.clone(), y_train.clone())
        return real_critic(rcfg, x_train, y_train, device, seed=seed, **kw)

    def aug(g, onset, labels, target_per_class=None, seed=0, **kw):
        fake, src, cls = real_aug(g, onset, labels, target_per_class=target_per_class, seed=seed, **kw)
        seen[-1]["aug"] = (onset.cpu().clone(), labels.clone(), target_per_class, seed, fake.cpu().clone(), cls)
        return fake, src, cls

    def flow(estimator, onset01, apex01, *a, **kw):
        if seen:
            seen[-1]["synth_apex01"] = apex01.clone()
        return real_flow(estimator, onset01, apex01, *a, **kw)

    def fit(rcfg, x_train, y_train, x_test, device, seed=0, sample_weight=None, **kw):
        seen[-1]["fit"] = (x_train.clone(), y_train.clone(), x_test.clone(), seed)
        return real_fit(rcfg, x_train, y_train, x_test, device, seed=seed, sample_weight=sample_weight, **kw)
    monkeypatch.setattr(pipeline, "load_samples", load)
    monkeypatch.setattr(pipeline.FoldRunner, "__call__", call)
    monkeypatch.setattr("icegan.gan.trainer.train_gan", train)
    monkeypatch.setattr(synthesis, "balanced_augmentation", aug)
    monkeypatch.setattr(pipeline, "fit_critic", critic)
    monkeypatch.setattr(pipeline, "compute_flow_features", flow)
    monkeypatch.setattr(pipeline, "fit_predict", fit)
    run_main(_cfg(tiny_weights, "gan.joint=true", "gan.synthetic_ratio=1.0", "seed=3"), tmp_path / "r", progress=False)
    c = clips["c"]
    real = torch.load(tmp_path / "r" / "features_real.pt", weights_only=True)["features"]
    labels = torch.tensor(c.samples["label"].to_numpy())
    pm1 = lambda a: torch.from_numpy(a).float().div(255).unsqueeze(1) * 2 - 1      # noqa: E731
    assert [s["fold"].subject for s in seen] == ["synthetic/s01", "synthetic/s02"]
    targets = []
    for k, s in enumerate(seen):
        tr, te = s["fold"].train_idx, s["fold"].test_idx
        assert set(c.samples["subject"][te]) == {s["fold"].subject} and not set(c.samples["subject"][tr]) & {
            s["fold"].subject}
        onset, apex, y = s["gan"]
        assert torch.equal(onset, pm1(c.onset[tr])) and torch.equal(apex, pm1(c.apex[tr]))
        assert torch.equal(y, labels[tr])
        held_out = {x.numpy().tobytes() for x in torch.cat([pm1(c.onset[te]), pm1(c.apex[te])])}
        assert not held_out & {x.numpy().tobytes() for x in torch.cat([onset, apex, s["aug"][0]])}
        assert torch.equal(s["critic"][0], real[tr]) and torch.equal(s["critic"][1], labels[tr])
        a_onset, a_labels, target, a_seed, fake, cls = s["aug"]
        assert torch.equal(a_onset, pm1(c.onset[tr])) and torch.equal(a_labels, labels[tr])
        targets.append(target)
        assert target == 2 * int(torch.bincount(labels[tr], minlength=3).max())       # (1 + 1.0) x the largest
        torch.testing.assert_close(s["synth_apex01"], (fake + 1) / 2, rtol=0, atol=0)
        x_train, y_train, x_test, seed = s["fit"]
        n = len(tr)
        assert torch.equal(x_train[:n], real[tr]) and torch.equal(y_train[:n], labels[tr])
        assert torch.equal(y_train[n:], cls) and len(cls) == 3 * target - n
        assert torch.equal(x_test, real[te])
        assert a_seed == seed == 3 + k
    assert targets == [6, 4]            # fold 0: training classes 3 / 1 / 2; fold 1: 2 / 2 / 2


def test_ratio_zero_trains_the_gan_but_adds_no_synthetic_rows(tmp_path, tiny_weights, monkeypatch):
    """gan.synthetic_ratio=0 with the GAN enabled: the fold's GAN is trained, but no synthetic apex is made and the
    recognizer trains on the real rows alone (the classes are not balanced with synthetic apexes)."""
    import icegan.gan.synthesis as synthesis
    import icegan.gan.trainer as trainer
    real_train, real_fit = trainer.train_gan, pipeline.fit_predict
    seen = {"gan": 0, "aug": 0}

    def train(*a, **kw):
        seen["gan"] += 1
        return real_train(*a, **kw)

    def fit(rcfg, x_train, y_train, x_test, device, seed=0, sample_weight=None, **kw):
        seen["n_train"] = len(x_train)
        return real_fit(rcfg, x_train, y_train, x_test, device, seed=seed, sample_weight=sample_weight, **kw)
    monkeypatch.setattr("icegan.gan.trainer.train_gan", train)
    monkeypatch.setattr(synthesis, "balanced_augmentation", lambda *a, **kw: seen.update(aug=1) or None)
    monkeypatch.setattr(pipeline, "fit_predict", fit)
    run_main(_cfg(tiny_weights, "gan.synthetic_ratio=0", "data.max_folds=1"), tmp_path / "r", progress=False)
    assert seen == {"gan": 1, "aug": 0, "n_train": 6}


def test_real_feature_cache_is_keyed_by_the_feature_size_and_the_clips(tmp_path, monkeypatch):
    """features_real.pt is read back only for the same settings: a second call with the same config computes
    nothing and returns the same maps; another recognizer.input_size or another clip list computes them again."""
    over = ["data.n_subjects=2", "data.clips_per_class=1", "data.img_size=32", "flow.method=farneback",
            "gan.joint=false"]
    cfg = load_main_config(None, over)
    clips = pipeline.load_samples(cfg, progress=False)
    est = pipeline.build_flow(cfg, torch.device("cpu"))
    calls = []
    real_flow = pipeline.compute_flow_features
    monkeypatch.setattr(pipeline, "compute_flow_features",
                        lambda *a, **kw: (calls.append(a[3]), real_flow(*a, **kw))[1])
    first = pipeline._real_features(cfg, clips, est, tmp_path, {}, progress=False)
    assert first.shape == (6, 3, 28, 28) and calls == [28]
    again = pipeline._real_features(cfg, clips, est, tmp_path, {}, progress=False)
    assert torch.equal(again, first) and calls == [28]                  # read back
    small = load_main_config(None, over + ["recognizer.input_size=16"])
    assert pipeline._real_features(small, clips, est, tmp_path, {}, progress=False).shape == (6, 3, 16, 16)
    assert calls == [28, 16]
    renamed = pipeline.Clips(clips.samples.assign(clip=[f"x{i}" for i in range(6)]), clips.onset, clips.apex)
    pipeline._real_features(small, renamed, est, tmp_path, {}, progress=False)
    assert calls == [28, 16, 16]


def test_expcaps_scores_the_held_out_apexes_with_their_onsets(tmp_path, tiny_weights):
    """recognizer.name=expcaps: the fold's discriminator is given the held-out clips' apex faces (in [-1, 1]) and,
    when it takes the motion input, their onsets; the scores are its capsule lengths."""
    import types

    import numpy as np
    cfg = _cfg(tiny_weights)
    rng = np.random.default_rng(0)
    onset, apex = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8), rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    samples = pd.DataFrame({"dataset": "d", "subject": [f"d/s{i}" for i in range(4)],
                            "clip": [f"c{i}" for i in range(4)], "label": [0, 1, 2, 0]})
    runner = pipeline.FoldRunner(cfg, pipeline.Clips(samples, onset, apex), torch.zeros(4, 3, 28, 28), None,
                                 tmp_path, torch.device("cpu"))
    got = {}

    class D:
        motion_input = True

        def eval(self):
            return self

        def __call__(self, x, reconstruct=True, onset=None):
            got["x"], got["onset"], got["reconstruct"] = x, onset, reconstruct
            return types.SimpleNamespace(exp_len=torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]))
    scores = runner._expcaps_scores(types.SimpleNamespace(discriminator=D()), np.array([3, 1]))
    np.testing.assert_allclose(scores, [[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])
    torch.testing.assert_close(got["x"], torch.from_numpy(apex[[3, 1]]).float().div(255).unsqueeze(1) * 2 - 1)
    torch.testing.assert_close(got["onset"], torch.from_numpy(onset[[3, 1]]).float().div(255).unsqueeze(1) * 2 - 1)
    assert got["reconstruct"] is False


def test_gan_amp_reaches_each_folds_gan_config():
    """gan.amp of a train.py config is the fold GAN's train.amp (mixed precision on a GPU; true as before the key
    existed, so older runs resume as the same experiment); the fold's GAN settings come from the gan section."""
    from icegan.config import without_neutral_keys
    on = pipeline._gan_config(load_main_config(None, ["gan.amp=false", "gan.lr_d=0.0002"]), torch.device("cpu"))
    assert on.train.amp is False and on.train.lr_d == 0.0002
    assert pipeline._gan_config(load_main_config(None, []), torch.device("cpu")).train.amp is True
    assert without_neutral_keys({"gan": {"amp": True, "epochs": 3}}) == {"gan": {"epochs": 3}}
