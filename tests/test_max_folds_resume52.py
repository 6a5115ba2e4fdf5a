"""A max_folds smoke run extended into the whole run in the same folder, and per_subject.png's labels of names
holding control characters."""
import json
import warnings

import pandas as pd
import pytest
import yaml
from _runs import centroid_fold_fn as _centroid

from icegan.data.toy_features import make_toy_features
from icegan.protocol import LosoStateError, read_partial_tag, run_loso


@pytest.fixture(scope="module")
def toy():
    """The toy feature set of 6 subjects (3 per dataset, 2 clips per class): 6 CDE folds."""
    return make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)


def _grouped(fs, calls):
    """A folds_fn over groups of folds (as icegan loso's grouped networks), recording each group it trains."""
    one = _centroid(fs, [])

    def folds_fn(group):
        calls.append([f.subject for f in group])
        return [one(f) for f in group]
    return folds_fn


@pytest.mark.parametrize("config, key", [({"max_folds": 2, "model": {"lr": 0.1}}, "max_folds"),
                                         ({"data": {"max_folds": 2, "root": "r"}, "seed": 0}, "data.max_folds")])
def test_a_max_folds_run_is_extended_by_the_whole_run(toy, tmp_path, capsys, config, key):
    """max_folds=2 then the whole run (max_folds 0) into the same folder: the second run trains only the 4 folds the
    first did not, says it extends a 2-fold run, and its predictions.csv, metrics and run.json equal a fresh whole
    run's; config.yaml is the whole run's and the PARTIAL tag is gone (a main-job config's data.max_folds too)."""
    def with_folds(k):
        cfg = json.loads(json.dumps(config))
        (cfg["data"] if key == "data.max_folds" else cfg)["max_folds"] = k
        return cfg
    out, fresh = tmp_path / "x", tmp_path / "fresh"
    first, second, whole = [], [], []
    run_loso(toy.samples, _centroid(toy, first), out, config=with_folds(2), max_folds=2, progress=False)
    assert read_partial_tag(out) == " [PARTIAL: 2 of 6 folds]"
    capsys.readouterr()
    m = run_loso(toy.samples, _centroid(toy, second), out, config=with_folds(0), progress=False)
    assert f"{key}=2 run, the first 2 of this run's 6 folds: extending it to 6 folds" in capsys.readouterr().err
    ref = run_loso(toy.samples, _centroid(toy, whole), fresh, config=with_folds(0), progress=False)
    assert first == whole[:2] and second == whole[2:]                   # the finished folds are not trained again
    assert (out / "predictions.csv").read_bytes() == (fresh / "predictions.csv").read_bytes()
    assert m == ref and m["n_folds"] == 6
    assert json.loads((out / "run.json").read_text()) == json.loads((fresh / "run.json").read_text())
    assert "folds_total" not in json.loads((out / "run.json").read_text())
    assert yaml.safe_load((out / "config.yaml").read_text()) == with_folds(0)
    assert read_partial_tag(out) == "" and "PARTIAL" not in (out / "metrics.md").read_text()


def test_a_larger_max_folds_extends_and_a_smaller_one_is_refused(toy, tmp_path, capsys):
    """2 folds, then 5 (still partial: 5 of 6), then the whole run: each trains only its new folds. A smaller
    max_folds into the folder of a larger run stays refused (its finished folds include folds that run does not run),
    saying so and naming the max_folds that resumes it, and leaves the folder as it was."""
    out, calls = tmp_path / "x", []
    run_loso(toy.samples, _centroid(toy, calls), out, config={"max_folds": 2}, max_folds=2, progress=False)
    run_loso(toy.samples, _centroid(toy, calls), out, config={"max_folds": 5}, max_folds=5, progress=False)
    assert read_partial_tag(out) == " [PARTIAL: 5 of 6 folds]"
    assert "extending it to 5 folds" in capsys.readouterr().err
    run_loso(toy.samples, _centroid(toy, calls), out, config={"max_folds": 0}, progress=False)
    assert calls == sorted(set(toy.samples["subject"]))                  # every fold trained once
    files = {f.name: f.read_bytes() for f in out.iterdir() if f.is_file() and f.name != "environment.jsonl"}
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, _centroid(toy, calls), out, config={"max_folds": 3}, max_folds=3, progress=False)
    assert str(exc.value) == (f"{out} holds a different LOSO run (differs in ['folds', 'folds_total']) (it records a "
                              "run of 6 folds (max_folds=0: all), this run the first 3 of them: a smaller max_folds; "
                              "its finished folds include 3 this run does not run (samm/s01, samm/s02, samm/s03); "
                              "resume it with max_folds=0); use another --out or delete that folder")
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.is_file() and f.name != "environment.jsonl"} == files


def test_an_extension_that_differs_in_another_setting_is_refused(toy, tmp_path):
    """Only the max_folds key may differ: another config key (with max_folds), other data (provenance) or another
    protocol is refused as before, and the folder keeps the 2-fold run."""
    out = tmp_path / "x"
    run_loso(toy.samples, _centroid(toy, []), out, config={"max_folds": 2, "seed": 0}, provenance={"data": "d1"},
             max_folds=2, progress=False)
    with pytest.raises(LosoStateError, match=r"holds a run made with a different config \(.*config\.yaml: seed: 0 "
                                             r"there, 1 now\); resuming would mix two experiments"):
        run_loso(toy.samples, _centroid(toy, []), out, config={"max_folds": 0, "seed": 1}, provenance={"data": "d1"},
                 progress=False)
    with pytest.raises(LosoStateError, match=r"differs in \['provenance'\]\) \(its data d1 vs now d2"):
        run_loso(toy.samples, _centroid(toy, []), out, config={"max_folds": 0, "seed": 0}, provenance={"data": "d2"},
                 progress=False)
    with pytest.raises(LosoStateError, match=r"differs in \['dataset', 'folds', 'folds_total', 'protocol'\]"):
        run_loso(toy.samples, _centroid(toy, []), out, protocol="SDE", dataset="samm",
                 config={"max_folds": 0, "seed": 0}, provenance={"data": "d1"}, progress=False)
    header = json.loads((out / "run.json").read_text())
    assert len(header["folds"]) == 2 and header["folds_total"] == 6
    assert yaml.safe_load((out / "config.yaml").read_text()) == {"max_folds": 2, "seed": 0}


@pytest.mark.parametrize("per_call, k, extends", [(1, 3, True), (2, 4, True), (2, 3, False), (0, 2, False)])
def test_grouped_folds_extend_only_when_they_filled_whole_groups(toy, tmp_path, capsys, per_call, k, extends):
    """A grouped network's scores depend on every fold of its group: a max_folds run extends only when its folds are
    whole groups of the larger run (max_folds a multiple of folds_per_call); otherwise it is refused, naming the
    groups, and nothing is trained. The smoke run itself says so when it starts (a walkthrough met the refusal
    only at the whole run)."""
    out, calls = tmp_path / "x", []
    capsys.readouterr()
    run_loso(toy.samples, None, out, folds_fn=_grouped(toy, calls), folds_per_call=per_call, max_folds=k,
             config={"max_folds": k}, progress=False)
    note = capsys.readouterr().err
    assert (f"note: this max_folds={k} run trains its folds in a grouped network (model.folds_per_group): a later "
            f"run with more folds cannot extend {out}" in note) is not extends
    first = list(calls)
    if extends:
        run_loso(toy.samples, None, out, folds_fn=_grouped(toy, calls), folds_per_call=per_call,
                 config={"max_folds": 0}, progress=False)
        fresh = []
        run_loso(toy.samples, None, tmp_path / "fresh", folds_fn=_grouped(toy, fresh), folds_per_call=per_call,
                 config={"max_folds": 0}, progress=False)
        assert calls == fresh                   # the same groups, the first ones trained by the max_folds run
        assert (out / "predictions.csv").read_bytes() == (tmp_path / "fresh" / "predictions.csv").read_bytes()
        return
    with pytest.raises(LosoStateError) as exc:
        run_loso(toy.samples, None, out, folds_fn=_grouped(toy, calls), folds_per_call=per_call,
                 config={"max_folds": 0}, progress=False)
    trained = ("its 2 folds in one grouped network, where this run trains its 6 in one" if per_call == 0 else
               "its last 1 fold(s) as a group of their own, where this run trains groups of 2 folds")
    assert str(exc.value).startswith(f"{out} holds a max_folds={k} run that trained {trained} (model.folds_per_group): "
                                     "a grouped network's scores depend on every fold of its group")
    hint = ("a run of all folds in one network (model.folds_per_group=0, the default) extends no max_folds run"
            if per_call == 0 else "max_folds a multiple of model.folds_per_group")     # for 0 no multiple would do
    assert hint in str(exc.value)
    assert calls == first and len(json.loads((out / "run.json").read_text())["folds"]) == k


def test_a_max_folds_that_cut_no_fold_is_the_whole_run(toy, tmp_path):
    """max_folds=100 of 6 folds ran every fold (run.json as the whole run's); the whole run into that folder resumed
    nothing and was refused for its config (max_folds: 100 there, 0 now). It is now the same run: nothing retrains."""
    out, calls = tmp_path / "x", []
    run_loso(toy.samples, _centroid(toy, calls), out, config={"max_folds": 100, "seed": 0}, max_folds=100,
             progress=False)
    assert len(calls) == 6 and read_partial_tag(out) == ""
    run_loso(toy.samples, _centroid(toy, calls), out, config={"max_folds": 0, "seed": 0}, progress=False)
    assert len(calls) == 6
    assert yaml.safe_load((out / "config.yaml").read_text()) == {"max_folds": 0, "seed": 0}
    with pytest.raises(LosoStateError, match=r"different config .*seed: 0 there, 1 now"):
        run_loso(toy.samples, _centroid(toy, calls), out, config={"max_folds": 100, "seed": 1}, progress=False)


def test_icegan_loso_extends_a_max_folds_run(tmp_path, monkeypatch):
    """A real `icegan loso` run (logistic regression on the toy maps): max_folds=2 then the whole run into one --out
    fits only the folds after the first two, and scores every clip as a fresh whole run does."""
    import icegan.recognition as recognition
    from icegan.commands.loso import LosoConfig, load_feature_set, run
    from icegan.config import load_config
    fitted = []
    fit = recognition.fit_predict_folds

    def counting(cfg, x, y, subjects, folds, **kw):
        fitted.extend(f.subject for f in folds)
        return fit(cfg, x, y, subjects, folds, **kw)
    monkeypatch.setattr(recognition, "fit_predict_folds", counting)
    common = ["data.source=toy", "model.name=logreg", "workers=1", "threads=1"]
    part = load_config(LosoConfig, None, common + ["max_folds=2"])
    whole = load_config(LosoConfig, None, common)
    fs = load_feature_set(whole.data)
    out, fresh = tmp_path / "x", tmp_path / "fresh"
    run(part, out, progress=False, feature_set=fs)
    assert len(fitted) == 2
    m = run(whole, out, progress=False, feature_set=fs)
    n = len(set(fs.samples["subject"]))
    assert len(fitted) == n and len(set(fitted)) == n                    # the two finished folds are not refitted
    assert m == run(whole, fresh, progress=False, feature_set=fs)
    read = [pd.read_csv(d / "predictions.csv") for d in (out, fresh)]
    pd.testing.assert_frame_equal(*read)
    assert read_partial_tag(out) == ""


def test_per_subject_png_shows_control_characters_escaped(tmp_path):
    """A subject (or dataset) name holding '\\r', '\\t' or another control character (names are kept as written) is
    drawn with it escaped (sub, a backslash, r01): matplotlib has no glyph for it and
    warned "Glyph 13 missing"; the other labels are drawn as they are, and the returned bars keep the names."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from icegan.protocol import per_subject_png
    table = pd.DataFrame({"dataset": ["casme2", "casme2", "casme2", "samm\rx"],
                          "subject": ["casme2/sub\r01", "casme2/s\t\x01b", "casme2/sub 02", "samm\rx/006"],
                          "n_clips": [2, 3, 1, 1], "n_correct": [1, 3, 1, 0], "accuracy": [0.5, 1.0, 1.0, 0.0]})
    labels = []
    real_savefig = plt.Figure.savefig

    def savefig(fig, *args, **kwargs):
        labels.extend(t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + [ax.title])
        return real_savefig(fig, *args, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(plt.Figure, "savefig", savefig)
            drawn = per_subject_png(table, tmp_path / "p.png", "run")
    assert (tmp_path / "p.png").stat().st_size > 0
    assert [s for _, s, _ in drawn] == table["subject"].tolist()
    assert labels[:3] == ["sub\\r01", "s\\t\\x01b", "sub 02"]
    assert "samm\\rx: 1 subjects, pooled accuracy 0.00" in labels and "006" in labels


def test_a_provenance_that_differs_with_the_config_names_the_config_keys(toy, tmp_path):
    """A run folder reused with another custom recognizer module (its code hash is the provenance) said 'differs in
    ['provenance'] ... e.g. the weights file changed'; the config keys that differ say what the user changed."""
    out = tmp_path / "x"
    run_loso(toy.samples, _centroid(toy, []), out, config={"model": {"module": "a.py"}, "seed": 0},
             provenance={"recognizer": "hash-a"}, progress=False)
    with pytest.raises(LosoStateError, match=r"different config \(.*config.yaml: model.module: 'a.py' there, 'b.py' "
                                             r"now\)"):
        run_loso(toy.samples, _centroid(toy, []), out, config={"model": {"module": "b.py"}, "seed": 0},
                 provenance={"recognizer": "hash-b"}, progress=False)
    with pytest.raises(LosoStateError, match=r"differs in \['provenance'\]\) \(its provenance .*hash-a.* vs now "
                                             r".*hash-c.*: e.g. the weights file changed"):
        run_loso(toy.samples, _centroid(toy, []), out, config={"model": {"module": "a.py"}, "seed": 0},
                 provenance={"recognizer": "hash-c"}, progress=False)


def test_a_code_change_is_named_beside_the_config_keys(toy, tmp_path):
    """Another recognizer code (its hash in the provenance) and another model.epochs: both are said (the first
    version of the config-first message named only the epochs)."""
    out = tmp_path / "x"
    run_loso(toy.samples, _centroid(toy, []), out, config={"model": {"epochs": 10}},
             provenance={"recognizer_source_sha256": "aaa"}, progress=False)
    with pytest.raises(LosoStateError, match=r"model.epochs: 10 there, 20 now\) and its provenance differs in "
                                             r"\['recognizer_source_sha256'\]; resuming would mix"):
        run_loso(toy.samples, _centroid(toy, []), out, config={"model": {"epochs": 20}},
                 provenance={"recognizer_source_sha256": "bbb"}, progress=False)


def test_an_extension_with_another_module_names_the_config_key(toy, tmp_path):
    """A max_folds=2 run of module a.py, then the whole run with b.py: the refusal names model.module, as the same
    rerun without the extension does (it said only "differs in ['folds', 'folds_total', 'provenance']")."""
    out = tmp_path / "x"
    run_loso(toy.samples, _centroid(toy, []), out, config={"max_folds": 2, "model": {"module": "a.py"}},
             provenance={"recognizer_module": "a"}, max_folds=2, progress=False)
    with pytest.raises(LosoStateError, match=r"model.module: 'a.py' there, 'b.py' now\) and its provenance differs"):
        run_loso(toy.samples, _centroid(toy, []), out, config={"max_folds": 0, "model": {"module": "b.py"}},
                 provenance={"recognizer_module": "b"}, progress=False)


@pytest.mark.parametrize("provenance_only", [False, True])
def test_a_damaged_config_yaml_does_not_hide_a_different_run(toy, tmp_path, provenance_only):
    """A folder of another run whose config.yaml is damaged: the run.json difference is said, as before the
    config-first message (which read config.yaml first and reported only the damage)."""
    out = tmp_path / "x"
    run_loso(toy.samples, _centroid(toy, []), out, config={"seed": 0}, provenance={"weights": "a"}, progress=False)
    (out / "config.yaml").write_text("- a list\n- not a mapping\n", encoding="utf-8")
    other = toy.samples if provenance_only else toy.samples[toy.samples["dataset"] == toy.samples["dataset"].iloc[0]]
    with pytest.raises(LosoStateError, match=r"holds a different LOSO run \(differs in .*'provenance'"):
        run_loso(other, _centroid(toy, []), out, config={"seed": 0}, provenance={"weights": "b"}, progress=False)
