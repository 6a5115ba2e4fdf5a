"""Leaks of labelled clips or untrained statistics into a score (audit 57).

1. ``icegan gan eval``'s independent recognizer (CrossDatasetRecognizer) was always trained on every SAMM and SMIC
   clip, also for a main-job fold GAN (configs/megc2019.yaml) whose held-out subject is a SAMM or SMIC subject: it had
   seen the evaluated subject's labelled clips (accuracy 0.775 on four held-out SAMM/SMIC subjects against 0.539
   without them). It now trains only on the composite's datasets the GAN neither trained on nor is evaluated on, and
   is skipped, saying so, when none remains.
2. ``model.domain_bn`` in a CDE run whose held-out subject is the only subject of its dataset: that fold normalised
   its test clips with batch-norm statistics never trained (UF1 1.0 -> 0.17, silently). Refused before a run folder.
3. ``model.domain_adversarial`` counted the run's datasets, not each fold's: a fold training on one dataset died
   inside training, after the run folder was made. Refused before it, naming the fold and its dataset.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest

from _feature_tables import toy_config
from _gan_sizes import tiny_gan_config


# ---- 1. the independent recognizer of icegan gan eval -------------------------------------------------------------

def _prepared_checkpoint(tmp_path, names, holdout, train_subjects=None):
    """A tiny prepared-source GAN checkpoint over the datasets ``names`` (nothing is read from them)."""
    from icegan.data.prepare import DatasetSpec
    from icegan.gan.trainer import build_models, save_checkpoint
    cfg = tiny_gan_config(32)
    cfg.data.source = "prepared"
    cfg.data.apex_neighbors = 0
    cfg.data.prepare.datasets = [DatasetSpec(name=n, root=str(tmp_path / n)) for n in names]
    cfg.data.holdout_subjects = list(holdout)
    cfg.data.train_subjects = train_subjects
    return save_checkpoint(tmp_path / "ck" / "checkpoints" / "last.pt", cfg, *build_models(cfg), 0, [])


def _pairs(subjects):
    from icegan.gan.pairs import PairSet
    n = 3 * len(subjects)
    rng = np.random.default_rng(0)
    return PairSet(rng.integers(0, 256, (n, 32, 32), dtype=np.uint8), rng.integers(0, 256, (n, 32, 32), dtype=np.uint8),
                   np.arange(n) % 3, [s for s in subjects for _ in range(3)], [f"{s}/c{i}" for i, s in
                                                                              enumerate(np.repeat(subjects, 3))],
                   np.zeros(n, dtype=int), np.ones(n, dtype=int))


@pytest.fixture
def eval_stubs(monkeypatch):
    """run_eval with its data, recognizers and metrics stubbed: records the datasets the cross-dataset recognizer
    is trained on (``built``; nothing when it is not built)."""
    from icegan.gan import evaluate, pairs
    built = []

    class FakeCross:
        def __init__(self, datasets=("samm", "smic"), root=None, seed=0):
            self.datasets = list(datasets)
            built.append(self.datasets)

    state = {"subjects": []}
    monkeypatch.setattr(pairs, "load_prepared_pairs", lambda *a, **k: _pairs(state["subjects"]))
    monkeypatch.setattr(evaluate, "CrossDatasetRecognizer", FakeCross)
    monkeypatch.setattr(evaluate.FlowRecognizer, "fit", lambda self, *a: self)
    monkeypatch.setattr(evaluate, "evaluate_generator",
                        lambda *a, cross_recognizer=None, **k: {} if cross_recognizer is None else {
                        "controllability_cross_dataset": 0.5, "cross_dataset_trained_on": cross_recognizer.datasets})
    return built, state


def test_megc2019_fold_gan_gets_no_cross_dataset_recognizer_that_saw_its_held_out_subject(tmp_path, eval_stubs,
                                                                                          caplog):
    """A fold GAN of the composite (casme2, samm, smic) held out on samm/006: every dataset of megc2019_htnet holds
    subjects it trained on or the evaluated one, so no independent recognizer can be built: skipped, with a log line,
    the result and eval.md saying why (before: trained on all of SAMM and SMIC, samm/006 included)."""
    from icegan.gan.evaluate import run_eval
    built, state = eval_stubs
    state["subjects"] = ["casme2/sub01", "samm/006", "samm/007", "smic/s01"]
    ck = _prepared_checkpoint(tmp_path, ["casme2", "samm", "smic"], ["samm/006"])
    with caplog.at_level(logging.WARNING, logger="icegan.gan.evaluate"):
        res = run_eval(ck, "casme2", out_dir=tmp_path / "ev")
    assert built == []
    assert res.get("controllability_cross_dataset") is None
    why = res["cross_dataset_skipped"]
    assert "casme2, samm, smic" in why and "samm/006" in why
    assert any("cross-dataset controllability not computed" in r.getMessage() and why in r.getMessage()
               for r in caplog.records)
    assert f"— (skipped: {why})" in (tmp_path / "ev" / "eval.md").read_text()


def test_cross_dataset_recognizer_trains_only_on_datasets_the_gan_never_saw(tmp_path, eval_stubs):
    """A GAN prepared on CASME II + SAMM, held out on samm/006: the recognizer trains on SMIC only."""
    from icegan.gan.evaluate import run_eval
    built, state = eval_stubs
    state["subjects"] = ["casme2/sub01", "samm/006", "samm/007"]
    ck = _prepared_checkpoint(tmp_path, ["casme2", "samm"], ["samm/006"])
    res = run_eval(ck, "casme2", out_dir=tmp_path / "ev")
    assert built == [["smic"]] and res["cross_dataset_trained_on"] == ["smic"]
    assert "cross_dataset_skipped" not in res


def test_a_clip_list_gan_excludes_the_datasets_of_its_training_subjects(tmp_path, eval_stubs):
    """A GAN prepared from a clip list whose subjects carry the prefix smic (known from its training pairs) and
    evaluated on one of them: SMIC is left out too; CASME II and SAMM remain."""
    from icegan.gan.evaluate import run_eval
    built, state = eval_stubs
    state["subjects"] = ["smic/s01", "smic/s02", "smic/s03"]
    ck = _prepared_checkpoint(tmp_path, ["clips"], ["smic/s01"])
    run_eval(ck, "casme2", out_dir=tmp_path / "ev")
    assert built == [["casme2", "samm"]]


def test_casme2_gan_keeps_its_samm_and_smic_recognizer():
    """The manifest CASME II GAN (the README's gan eval number): SAMM + SMIC, in that order, as before."""
    from icegan.gan.evaluate import _cross_dataset_datasets
    cfg = tiny_gan_config(32)
    assert _cross_dataset_datasets(cfg, ["casme2/sub02"], ["sub01"]) == (["samm", "smic"], "")
    # its training subjects unknown (no pairs loaded): the manifest is CASME II's, SAMM + SMIC still
    assert _cross_dataset_datasets(cfg, None, []) == (["samm", "smic"], "")


def test_clip_list_gan_with_unknown_training_subjects_is_skipped(tmp_path):
    from icegan.gan.evaluate import _cross_dataset_datasets
    from icegan.gan.trainer import load_checkpoint
    _, _, cfg, _ = load_checkpoint(_prepared_checkpoint(tmp_path, ["clips"], []))
    datasets, why = _cross_dataset_datasets(cfg, None, [])
    assert datasets == [] and "clip list" in why


# ---- 2, 3. domain_bn / domain_adversarial folds whose test dataset is absent from their training rows --------------

def _lone_smic(datasets=("casme2", "samm", "smic")):
    """Toy features of 3 subjects per dataset, SMIC keeping one (smic/s03): its CDE fold trains on no SMIC clip."""
    from icegan.data.toy_features import make_toy_features
    fs = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2, datasets=datasets)
    return fs.replace(keep=~fs.samples["subject"].isin(["smic/s01", "smic/s02"]).to_numpy())


def test_domain_bn_refuses_a_fold_that_trains_on_no_clip_of_its_test_dataset():
    from icegan.commands.loso import check_run
    with pytest.raises(ValueError) as err:
        check_run(toy_config("model.domain_bn=true"), _lone_smic())
    msg = str(err.value)
    assert msg.startswith("model.domain_bn=true")
    assert "1 fold(s)" in msg and "smic/s03 (tests smic; trains on casme2, samm)" in msg
    assert "set model.domain_bn=false" in msg
    assert "casme2/s01" not in msg                      # folds whose dataset has training subjects are not listed
    check_run(toy_config("model.domain_bn=true"), _lone_smic(("casme2", "samm")))      # no lone subject: accepted
    check_run(toy_config("model.domain_bn=false"), _lone_smic())                        # off: accepted
    # a max_folds run whose folds all have their dataset's statistics: accepted (smic/s03 is the last fold)
    check_run(toy_config("model.domain_bn=true", "max_folds=2"), _lone_smic())


def test_domain_adversarial_refuses_a_fold_that_trains_on_one_dataset():
    """data.datasets=[casme2, smic] with one SMIC subject: the run has two datasets, but fold smic/s03 trains on
    casme2 only (before: accepted, then a traceback from inside training after the run folder was made)."""
    from icegan.commands.loso import check_domain_adversarial
    fs = _lone_smic(("casme2", "smic"))
    with pytest.raises(ValueError) as err:
        check_domain_adversarial(toy_config("model.domain_adversarial=0.5"), fs)
    msg = str(err.value)
    assert msg.startswith("model.domain_adversarial=0.5")
    assert "smic/s03 trains on casme2 only" in msg and "1 fold(s)" in msg and "set it to 0" in msg
    check_domain_adversarial(toy_config("model.domain_adversarial=0.5"), _lone_smic())   # every fold trains on 2 or 3


def test_icegan_loso_refuses_the_lone_dataset_fold_before_any_run_folder(tmp_path, monkeypatch, capsys):
    from icegan.cli import main
    from icegan.commands import loso
    for key, shown in (("model.domain_bn=true", "smic/s03 (tests smic; trains on casme2)"),
                       ("model.domain_adversarial=0.5", "smic/s03 trains on casme2 only")):
        monkeypatch.setattr(loso, "load_feature_set", lambda cfg, cache=None: _lone_smic(("casme2", "smic")))
        out = tmp_path / key
        assert main(["loso", "--out", str(out), "data.source=toy", "model.epochs=1", key, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"icegan loso: error: {key}") and shown in err and "Traceback" not in err
        assert not out.exists()
