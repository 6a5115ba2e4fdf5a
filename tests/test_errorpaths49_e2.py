"""Input checks and fallbacks of the LOSO engine (icegan.protocol), the recognizer training (icegan.recognition), the
model files (icegan.saved_recognizer), the run readers (icegan.ensemble, icegan.report) and the bootstrap
(icegan.significance) that no other test reached: each test calls the public function a caller uses and checks that
the message names the input and the fix, or the value a fallback gives."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from icegan.data.toy_features import make_toy_features
from icegan.recognizer_config import RecognizerConfig

MEGC = ["negative", "positive", "surprise"]

# --------------------------------------------------------------------------------------------- protocol


@pytest.fixture(scope="module")
def toy():
    return make_toy_features(n_subjects_per_dataset=2, clips_per_class=1)


def _uniform(fold):
    return np.full((len(fold.test_idx), 3), 1 / 3)


def test_run_loso_needs_exactly_one_fold_function(toy, tmp_path):
    from icegan.protocol import run_loso
    for fold_fn, folds_fn in ((None, None), (_uniform, lambda folds: [_uniform(f) for f in folds])):
        with pytest.raises(ValueError, match=r"^give exactly one of fold_fn \(one fold per call\) or folds_fn "):
            run_loso(toy.samples, fold_fn, tmp_path / "r", folds_fn=folds_fn, progress=False)
    assert not (tmp_path / "r").exists()


def test_run_loso_refuses_a_negative_max_folds(toy, tmp_path):
    from icegan.protocol import run_loso
    with pytest.raises(ValueError, match=r"^max_folds must be >= 0 \(0 = all folds\), got -1$"):
        run_loso(toy.samples, _uniform, tmp_path / "r", max_folds=-1, progress=False)
    assert not (tmp_path / "r").exists()


def test_parallel_fold_groups_are_refused_under_torchrun(toy, tmp_path, monkeypatch):
    from icegan import distributed
    from icegan.protocol import run_loso
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    with pytest.raises(ValueError, match=r"group_map \(parallel fold groups\) cannot be combined with torchrun; "
                                         r"use one of them"):
        run_loso(toy.samples, None, tmp_path / "r", folds_fn=lambda g: [_uniform(f) for f in g],
                 group_map=lambda fn, groups: iter(()), progress=False)
    assert not (tmp_path / "r").exists()


def test_a_fold_group_function_must_score_every_fold_of_its_group(toy, tmp_path):
    from icegan.protocol import run_loso
    with pytest.raises(ValueError, match=r"^folds_fn returned 1 score arrays for 2 folds$"):
        run_loso(toy.samples, None, tmp_path / "r", folds_fn=lambda g: [_uniform(g[0])], folds_per_call=2,
                 progress=False)


class _Rank1:
    """torchrun's rank 1 as run_loso sees it: not the main process; rank 0 broadcasts the folds it has finished,
    then its metrics."""

    def __init__(self, finished):
        self.sent = [{"finished": sorted(finished)}, {"from": "rank 0"}]

    def broadcast(self, obj, src=0):
        assert obj is None                    # rank 1 sends nothing
        return self.sent.pop(0)


@pytest.mark.parametrize("per_call", [0, 1, 2])
def test_a_non_main_rank_runs_rank_0s_unfinished_folds_and_writes_nothing(toy, tmp_path, monkeypatch, per_call):
    from icegan import distributed
    from icegan.protocol import make_folds, run_loso
    subjects = [f.subject for f in make_folds(toy.samples["subject"].tolist())]
    assert len(subjects) == 4
    rank1 = _Rank1(subjects[:1])                                    # rank 0 had finished the first fold
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    monkeypatch.setattr(distributed, "broadcast_object", rank1.broadcast)
    calls = []
    if per_call == 1:
        def fold_fn(fold):
            calls.append([fold.subject])
            return _uniform(fold)
        got = run_loso(toy.samples, fold_fn, tmp_path / "r", progress=False)
    else:
        def folds_fn(group):
            calls.append([f.subject for f in group])
            return [_uniform(f) for f in group]
        got = run_loso(toy.samples, None, tmp_path / "r", folds_fn=folds_fn, folds_per_call=per_call,
                       progress=False)
    assert got == {"from": "rank 0"} and rank1.sent == []
    assert not (tmp_path / "r").exists()
    # one fold at a time: the unfinished ones; groups: every group with an unfinished fold, whole (as rank 0 runs it)
    assert calls == {1: [[s] for s in subjects[1:]], 2: [subjects[:2], subjects[2:]], 0: [subjects]}[per_call]


def test_partial_tag_of_an_unreadable_header_is_empty(tmp_path):
    from icegan.protocol import read_partial_tag
    (tmp_path / "run.json").write_text(json.dumps({"folds": ["a/1", "a/2"], "folds_total": 5}))
    assert read_partial_tag(tmp_path) == " [PARTIAL: 2 of 5 folds]"
    (tmp_path / "run.json").write_text('{"folds": ["a/1", ')                 # cut short
    assert read_partial_tag(tmp_path) == ""
    (tmp_path / "run.json").write_bytes(b'{"folds": "\xff\xfe"}')              # not UTF-8
    assert read_partial_tag(tmp_path) == ""


# --------------------------------------------------------------------------------------------- recognition


def test_dataset_class_weights_name_a_length_mismatch():
    from icegan.recognition import dataset_class_weights
    with pytest.raises(ValueError, match=r"^dataset_class_weights: 3 subjects for 2 labels$"):
        dataset_class_weights(["a/1", "a/2", "b/1"], np.array([0, 1]), np.ones((1, 2), bool))


def test_inner_validation_of_every_training_subject_says_to_lower_the_fraction():
    from icegan.recognition import inner_val_split
    subjects = ["a/1", "a/1", "a/2", "b/1"]
    train, val = inner_val_split(subjects, np.arange(4), 0.4, seed=0)         # one of three subjects
    assert len(set(np.asarray(subjects)[val])) == 1 and not set(train) & set(val)
    with pytest.raises(ValueError, match=r"^inner validation would take all 3 training subjects; lower "
                                         r"inner_val_fraction$"):
        inner_val_split(subjects, np.arange(4), 0.9, seed=0)


def test_snapshot_average_needs_a_model():
    from icegan.recognition import SnapshotAverage
    with pytest.raises(ValueError, match="^SnapshotAverage needs at least one model$"):
        SnapshotAverage([])


def _tiny_cfg(**kw):
    return RecognizerConfig(name="ststnet", epochs=1, batch_size=4, **kw)


def test_train_models_names_inputs_that_disagree_in_length():
    from icegan.recognition import train_models
    x, y = torch.rand(6, 3, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=r"x \(N, C, H, W\), y \(N,\) and train_mask \(G, N\) disagree: "
                                         r"\(6, 3, 28, 28\), \(6,\), \(1, 5\)$"):
        train_models(_tiny_cfg(), x, y, torch.ones(1, 5, dtype=torch.bool), progress=False)
    with pytest.raises(ValueError, match=r"disagree: \(6, 3, 28, 28\), \(5,\), \(1, 6\)$"):
        train_models(_tiny_cfg(), x, y[:5], torch.ones(1, 6, dtype=torch.bool), progress=False)
    with pytest.raises(ValueError, match=r"disagree: \(6, 3, 28\), \(6,\), \(1, 6\)$"):
        train_models(_tiny_cfg(), x[..., 0], y, torch.ones(1, 6, dtype=torch.bool), progress=False)


def test_batch_rows_must_hold_every_training_row():
    from icegan.recognition import train_models
    x, y = torch.rand(6, 3, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2])
    mask = torch.tensor([[True, True, True, True, False, False]])
    for rows in (torch.tensor([True, True, True, False, True, True]),        # training row 3 left out
                 torch.ones(5, dtype=torch.bool)):                            # another length
        with pytest.raises(ValueError, match=r"^batch_rows must be an \(6,\) bool mask holding every training "
                                             r"row of train_mask$"):
            train_models(_tiny_cfg(), x, y, mask, batch_rows=rows, progress=False)


def test_a_parameter_without_gradient_is_left_alone_by_the_copy_step():
    """A parameter the batch gave no gradient (a frozen or unused one) need not split into the G copies: the
    optimizer does not touch it, so it is neither checked nor restored."""
    from icegan.recognition import step_learning_copies
    grouped = torch.nn.Parameter(torch.ones(2, 3))
    unused = torch.nn.Parameter(torch.ones(3))                 # 3 rows: not two copies
    opt = torch.optim.AdamW([grouped, unused], lr=0.1)
    grouped.grad = torch.ones(2, 3)
    step_learning_copies(opt, 2, torch.tensor([False, True]))
    assert torch.equal(unused, torch.ones(3))
    assert (grouped[0] < 1).all() and torch.equal(grouped[1].detach(), torch.ones(3))


def test_oracle_epoch_of_a_custom_recognizer_says_to_turn_it_off(tmp_path):
    from icegan.protocol import make_folds
    from icegan.recognition import fit_predict_folds
    fs = make_toy_features(n_subjects_per_dataset=1, clips_per_class=1)
    cfg = RecognizerConfig(name="custom", module="torch.nn:Identity")
    folds = make_folds(fs.samples["subject"].tolist())
    with pytest.raises(ValueError, match=r"^oracle_epoch is not available for model.name=custom .*; set "
                                         r"oracle_epoch=false$"):
        fit_predict_folds(cfg, fs.features, fs.labels, fs.samples["subject"].tolist(), folds, oracle_epoch=True,
                          progress=False)


def test_fit_recognizer_names_subjects_of_another_length():
    from icegan.recognition import fit_recognizer
    with pytest.raises(ValueError, match=r"^subjects_train holds 2 subjects for 3 training rows$"):
        fit_recognizer(RecognizerConfig(name="logreg"), torch.rand(3, 3, 28, 28), torch.tensor([0, 1, 2]),
                       subjects_train=["a/1", "a/2"], progress=False)


def test_fitted_recognizer_needs_networks_or_an_estimator_not_both():
    from sklearn.linear_model import LogisticRegression

    from icegan.recognition import FittedRecognizer
    for kw in ({}, {"models": [torch.nn.Linear(2, 3)], "clf": LogisticRegression()}):
        with pytest.raises(ValueError, match=r"^FittedRecognizer needs either the trained networks \(models\) or a "
                                             r"scikit-learn estimator \(clf\), not both or neither$"):
            FittedRecognizer(RecognizerConfig(name="logreg"), **kw)


def test_sklearn_classifier_names_the_scikit_learn_recognizers():
    from icegan.recognition import sklearn_classifier
    with pytest.raises(ValueError, match=r"^model.name='ststnet' is not a scikit-learn recognizer \(logreg, "
                                         r"random_forest, gradient_boosting\)$"):
        sklearn_classifier(RecognizerConfig(name="ststnet"))


# --------------------------------------------------------------------------------------------- saved recognizer


def _payload(**edits):
    """A hand-made model file payload (the checks on reading come before any network is built)."""
    from icegan.saved_recognizer import FORMAT, VERSION
    good = {"copies": 1, "snapshots": 0, "state_dict": {"conv.weight": torch.ones(2, 3)}}
    payload = {"format": FORMAT, "version": VERSION, "config": {"model": {"name": "ststnet"}, "data": {}},
               "classes": list(MEGC), "training": {"map_size": 28, "subjects": [], "clip_keys": [], "maps": {}},
               "members": [good], "provenance": {}}
    for key, value in edits.items():
        if "." in key:
            outer, inner = key.split(".")
            payload[outer] = {**payload[outer], inner: value}
        else:
            payload[key] = value
    return payload


@pytest.mark.parametrize("edits,said", [
    ({"config": {"data": {}}}, "its 'config' is not a config with a model section"),
    ({"config": ["model"]}, "its 'config' is not a config with a model section"),
    ({"config.data": [1, 2]}, "its 'config' data section is not a mapping"),
    ({"training": [28]}, "its 'training' is not a mapping (got list)"),
    ({"training.subjects": "casme2/sub01"}, "its 'training' subjects is not a list of names"),
    ({"training.clip_keys": [1, 2]}, "its 'training' clip_keys is not a list of names"),
    ({"training.maps": ["flow"]}, "its 'training' maps is not a mapping"),
    ({"provenance": ["a"]}, "its 'provenance' is not a mapping"),
    ({"members": [5]}, "members[0] is not a mapping (got int)"),
    ({"sklearn_pickle": "abc"}, "its 'sklearn_pickle' is not bytes (got str)"),
], ids=["no-model", "config-list", "data", "training", "subjects", "clip-keys", "maps", "provenance", "member",
        "pickle"])
def test_an_edited_model_file_names_the_entry(tmp_path, edits, said):
    from icegan.saved_recognizer import SavedRecognizerError, load_recognizer
    path = tmp_path / "m.pt"
    torch.save(_payload(**edits), path)
    with pytest.raises(SavedRecognizerError) as err:
        load_recognizer(path)
    assert str(err.value) == f"{path}: {said} (a damaged or edited model file; retrain it with `icegan fit`)"


def test_a_saved_config_that_no_longer_loads_is_named(tmp_path):
    from icegan.saved_recognizer import SavedRecognizerError, load_recognizer
    path = tmp_path / "m.pt"
    torch.save(_payload(config={"model": {"name": "ststnet", "depth_multiplier": 2}}), path)
    with pytest.raises(SavedRecognizerError, match=rf"^{path}: its saved model config no longer loads: .*"
                                                   r"depth_multiplier"):
        load_recognizer(path)


def test_a_custom_network_whose_factory_is_gone_is_named_when_its_config_is_read(tmp_path):
    """The module file is there but no longer holds the factory the model was trained with: the saved config itself
    is refused (RecognizerConfig loads the factory), before its provenance is compared."""
    from icegan.saved_recognizer import SavedRecognizerError, load_recognizer
    path, net = tmp_path / "m.pt", tmp_path / "net.py"
    net.write_text("import torch\n\nOther = torch.nn.Linear\n")
    torch.save(_payload(config={"model": {"name": "custom", "module": f"{net}:Net"}},
                        provenance={"recognizer_module": f"{net}:Net", "recognizer_source_sha256": "0" * 64}), path)
    with pytest.raises(SavedRecognizerError, match=rf"^{path}: its saved model config no longer loads: .*"
                                                   r"net\.py has no attribute 'Net'"):
        load_recognizer(path)


# --------------------------------------------------------------------------------------------- ensemble


def test_score_columns_of_two_label_sets_are_named_with_the_file(tmp_path):
    from icegan.ensemble import EnsembleError, read_finished_run
    (tmp_path / "run.json").write_text(json.dumps({"protocol": "CDE", "folds": ["casme2/sub01"]}))
    (tmp_path / "predictions.csv").write_text(
        "fold,dataset,subject,clip,y_true,y_pred,score_negative,score_happiness\n"
        "0,casme2,casme2/sub01,EP01,0,0,0.5,0.5\n")
    with pytest.raises(EnsembleError, match=rf"^{tmp_path / 'predictions.csv'}: its score columns "
                                            r"\['score_negative', 'score_happiness'\] are not those of one label set"):
        read_finished_run(tmp_path)


# --------------------------------------------------------------------------------------------- report


def _run(folder, model="ststnet", protocol="CDE"):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"name: {folder.name}\nseed: 3\nprotocol: {protocol}\n"
                                        f"model: {{name: {model}}}\n")
    return folder


def test_a_wildcard_of_one_run_is_named_after_that_run(tmp_path):
    from icegan.report import parse_entry
    _run(tmp_path / "runs" / "ststnet_s0")
    assert parse_entry(f"{tmp_path}/runs/*").label == "ststnet_s0"
    same = tmp_path / "runs" / "ststnet_s0"
    assert parse_entry(f"{same},{same}/").label == "ststnet_s0"          # one folder written twice
    _run(tmp_path / "runs" / "ststnet_s1")
    assert parse_entry(f"{tmp_path}/runs/*").label == "ststnet"           # seeds of one recipe: the shared name


def test_run_recipe_of_a_run_and_of_a_merge(tmp_path):
    from icegan.report import run_recipe
    a, b = _run(tmp_path / "cde"), _run(tmp_path / "hde", protocol="HDE")
    assert run_recipe(a) == {"kind": "run", "protocol": "CDE", "model": {"name": "ststnet"}}
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "merged.json").write_text(json.dumps({"protocols": ["CDE", "HDE"], "merged_from": [str(a), str(b)]}))
    assert run_recipe(merged) == {"kind": "merged", "protocols": ["CDE", "HDE"],
                                  "runs": [run_recipe(a), run_recipe(b)]}
    (merged / "merged.json").write_text(json.dumps({"protocols": ["CDE"], "merged_from": [str(a), "gone"]}))
    assert run_recipe(merged) is None
    assert run_recipe(tmp_path) is None                                  # a folder of no run


def test_seeds_of_a_merge_or_selection_whose_member_is_gone_are_not_taken_for_one_recipe(tmp_path):
    from icegan.report import check_one_recipe
    a = _run(tmp_path / "a")
    gone = str(tmp_path / "gone")
    for name, header in (("merged", {"merged_from": [str(a), gone]}),
                         ("selection", {"inner_folds": 3, "candidates": [{"label": "x", "run": gone}]})):
        d = tmp_path / f"{name}_s1"
        d.mkdir()
        (d / f"{name}.json").write_text(json.dumps(header))
        twin = tmp_path / f"{name}_s0"
        twin.mkdir()
        (twin / f"{name}.json").write_text(json.dumps(header))
        with pytest.raises(ValueError, match=rf"^entry 'e': cannot tell that its 2 runs are seeds of one recipe: "
                                             rf"{twin} records no recipe \(its member {tmp_path / 'gone'} is not "
                                             r"found\); give each recipe its own entry"):
            check_one_recipe("e", [twin, d])


def test_an_ensemble_that_lists_itself_is_named_not_followed_forever(tmp_path):
    from icegan.report import check_one_recipe, run_recipe
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "ensemble.json").write_text(json.dumps({"members": [{"run": str(loop), "weight": 1.0}]}))
    assert run_recipe(loop) is None
    f = loop / "ensemble.json"
    with pytest.raises(ValueError) as err:
        check_one_recipe("e", [loop, _run(tmp_path / "a")])
    msg = str(err.value)
    assert "\n" not in msg and "records none (" not in msg and "nested too deeply" not in msg
    assert (f"{loop} records no recipe ({f} lists {loop}, its own folder (a cycle of members): edit {f} to list the "
            "member runs, not a folder on its own chain of members); give each recipe its own entry") in msg


# --------------------------------------------------------------------------------------------- significance


def test_an_entry_without_runs_and_nothing_to_compare_are_refused():
    from icegan.significance import bootstrap_compare, load_run_set
    with pytest.raises(ValueError, match=r"^entry 'STSTNet': no runs$"):
        load_run_set("STSTNet", [])
    with pytest.raises(ValueError, match=r"^nothing to compare$"):
        bootstrap_compare([])
