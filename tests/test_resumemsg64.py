"""The messages of a refused resume (a run folder of another run) and of a refused ensemble (members of other folds)
say what differs: the provenance key that changed (not 'folds', when the run would otherwise extend the folder's
max_folds run), and the held-out units one member has and the other lacks."""
import shutil
from pathlib import Path

import pytest
from _runs import centroid_fold_fn, random_prob_fn

from icegan.cli import main
from icegan.data.toy_features import make_toy_features
from icegan.ensemble import EnsembleError, ensemble_runs
from icegan.protocol import LosoStateError, run_loso

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "custom_recognizer.py"


@pytest.fixture(scope="module")
def toy():
    """6 subjects of 2 datasets (3 each, 2 clips per class): 6 CDE folds."""
    return make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)


@pytest.mark.parametrize("key, hint", [
    ("recognizer_source_sha256", "the module's source file changed (net.py:Net)"),
    ("flow_weights_sha256", "the weights file changed (flow.weights)")])
def test_a_changed_provenance_with_more_folds_names_the_key_not_the_folds(toy, tmp_path, key, hint):
    """A max_folds=1 run, its module (or weights file) then edited, rerun with max_folds=2: the refusal said only
    "differs in ['folds', 'provenance']" (the folds, an allowed extension, not the cause); the max_folds=1 rerun said
    the provenance, with the hint "e.g. the weights file changed" for an edited module. Both say the key and what it
    means now."""
    out = tmp_path / "x"
    prov = {"data": "d1", "recognizer_module": "net.py:Net", key: "aaa"}
    run_loso(toy.samples, centroid_fold_fn(toy, []), out, config={"max_folds": 1}, provenance=prov, max_folds=1,
             progress=False)
    for k in (1, 2):
        with pytest.raises(LosoStateError) as exc:
            run_loso(toy.samples, centroid_fold_fn(toy, []), out, config={"max_folds": k},
                     provenance={**prov, key: "bbb"}, max_folds=k, progress=False)
        msg = str(exc.value)
        assert f"holds a different LOSO run (differs in ['provenance']) (its provenance {prov} vs now " in msg, msg
        assert f"'{key}': 'bbb'}}: {hint}); use another --out or delete that folder" in msg, msg
        assert "'folds'" not in msg and "e.g. the weights file" not in msg, msg


def test_an_edited_custom_module_extended_by_max_folds_names_its_source_hash(shared_data, tmp_path, capsys):
    """The repro: `icegan loso` of a custom recognizer with max_folds=1, the module file edited, rerun with
    max_folds=2: refused naming recognizer_source_sha256 and the module's source file, not 'folds'."""
    net = tmp_path / "net.py"
    shutil.copy(EXAMPLE, net)
    out = tmp_path / "run"
    args = ["loso", "--config", "configs/features_ststnet.yaml", "--out", str(out), "--no-progress",
            "model.name=custom", f"model.module={net}:TwoLayerCNN", "model.epochs=1", "model.folds_per_group=1",
            "threads=1"]
    assert main([*args, "max_folds=1"]) == 0
    net.write_text(net.read_text() + "\n# edited\n")
    capsys.readouterr()
    assert main([*args, "max_folds=2"]) == 2
    err = capsys.readouterr().err
    assert "differs in ['provenance']" in err and "recognizer_source_sha256" in err, err
    assert f"the module's source file changed ({net}:TwoLayerCNN)" in err and "'folds'" not in err, err


def test_hde_members_of_other_datasets_name_the_dataset(tmp_path):
    """Two HDE runs, of 3 datasets and of 2: the refusal said "(2 vs 3 subjects, first difference in length)"; it
    counts datasets (what an HDE fold holds out) and names the one only the first member has."""
    three = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2, datasets=("casme2", "samm", "smic"))
    two = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2, datasets=("casme2", "samm"))
    run_loso(three.samples, random_prob_fn(1), tmp_path / "hde_lr", protocol="HDE", progress=False)
    run_loso(two.samples, random_prob_fn(2), tmp_path / "hde2", protocol="HDE", progress=False)
    with pytest.raises(EnsembleError) as exc:
        ensemble_runs([tmp_path / "hde_lr", tmp_path / "hde2"], tmp_path / "ens")
    assert str(exc.value) == (f"{tmp_path / 'hde2'} differs from {tmp_path / 'hde_lr'} in its folds (2 vs 3 "
                              f"datasets; smic only in {tmp_path / 'hde_lr'}); only runs of the same LOSO can be "
                              "averaged")


def test_loso_members_of_other_subjects_name_the_subject(toy, tmp_path):
    """A LOSO member without one subject's clips: the refusal names that subject (and counts subjects)."""
    gone = toy.samples["subject"].unique()[1]
    run_loso(toy.samples, random_prob_fn(1), tmp_path / "all", progress=False)
    run_loso(toy.samples[toy.samples["subject"] != gone], random_prob_fn(2), tmp_path / "less", progress=False)
    with pytest.raises(EnsembleError, match=r"in its folds \(5 vs 6 subjects; " + gone + " only in "):
        ensemble_runs([tmp_path / "all", tmp_path / "less"], tmp_path / "ens")
    with pytest.raises(EnsembleError, match=r"in its folds \(6 vs 5 subjects; " + gone + " only in "):
        ensemble_runs([tmp_path / "less", tmp_path / "all"], tmp_path / "ens2")
