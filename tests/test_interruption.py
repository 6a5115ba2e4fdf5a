"""A run killed at any moment (kill -9, Ctrl-C, a full disk) and started again: the files it writes and trusts on the
rerun are never left cut short under their final name, and a file cut short by an older version is redone with a
warning naming it, never a traceback or data read as valid."""
import io
import json
import logging
import re
from pathlib import Path

import pytest
import torch
from _flow_sizes import save_main_job_weights
from _kill_while_writing import kill_while_writing

from icegan.pipeline import load_main_config, run_main

TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "data.max_folds=2", "gan.enabled=false",
        "recognizer.epochs=2", "recognizer.batch_size=16", "recognizer.name=ststnet"]


def _cut_save(real_save, obj, f, *a, **k) -> str:
    """``torch.save`` of ``obj`` into ``f`` (a path or an open file) left with only its first half, as a kill half-way
    through the write leaves it; returns the file's name."""
    real_save(obj, f, *a, **k)
    if isinstance(f, (str, Path)):
        name = str(f)
    else:                               # an open file: its path, its buffer written out
        name = f.name
        f.flush()
    data = open(name, "rb").read()
    open(name, "wb").write(data[:len(data) // 2])
    return name

@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=2)


def test_main_job_redoes_a_flow_feature_cache_cut_short(tmp_path, tiny_weights, caplog):
    """train.py killed while saving features_real.pt left it cut short, and every rerun of the same command ended in
    torch.load's traceback (OSError / RuntimeError from its zip reader); now the file is written under a temporary
    name and renamed, and a cut one is computed again with a warning naming it."""
    cfg = load_main_config(None, TINY + [f"flow.weights={tiny_weights}"])
    out = tmp_path / "run"
    ref = run_main(cfg, out, progress=False)
    cache = out / "features_real.pt"
    whole = torch.load(cache, weights_only=True)
    cache.write_bytes(cache.read_bytes()[:len(cache.read_bytes()) // 2])
    caplog.set_level(logging.WARNING, logger="icegan.pipeline")
    assert run_main(cfg, out, progress=False) == ref
    assert any(str(cache) in r.getMessage() and "cannot be read" in r.getMessage() for r in caplog.records)
    assert torch.equal(torch.load(cache, weights_only=True)["features"], whole["features"])
    assert not list(out.glob("*.tmp"))


def test_a_kill_while_saving_the_flow_feature_cache_keeps_no_cut_file(tmp_path, tiny_weights, monkeypatch):
    """A kill inside torch.save of features_real.pt: nothing cut short is left under that name."""
    cfg = load_main_config(None, TINY + [f"flow.weights={tiny_weights}"])
    real_save, killed = torch.save, []

    def killed_half_way(obj, f, *a, **k):
        name = _cut_save(real_save, obj, f, *a, **k)
        killed.append(name)
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        run_main(cfg, tmp_path / "run", progress=False)
    assert killed and "features_real.pt" in Path(killed[0]).name, killed      # the save that was cut is the cache's
    assert not (tmp_path / "run" / "features_real.pt").exists()


@pytest.fixture(scope="module")
def toy_inner(tmp_path_factory):
    """Inner predictions of the logistic-regression floor on the toy feature set, and the text of their cache."""
    from icegan.commands.loso import LosoConfig, load_feature_set
    from icegan.config import load_config
    from icegan.protocol import make_folds
    from icegan.selection import inner_predictions
    cfg = load_config(LosoConfig, None, ["data.source=toy", "workers=1", "threads=1", "model.name=logreg"])
    fs = load_feature_set(cfg.data)
    folds = make_folds(fs.samples["subject"].tolist())
    cache = tmp_path_factory.mktemp("inner") / "c.csv"
    full = inner_predictions(cfg, fs, folds, 3, cache, progress=False)
    return cfg, fs, folds, full, cache.read_text()


@pytest.mark.parametrize("cut", ["empty", "header cut short", "last number cut short"])
def test_inner_prediction_cache_cut_by_a_kill_is_resumed(toy_inner, tmp_path, cut):
    """A nested selection killed while appending to an inner-prediction cache: the rerun ended in pandas'
    EmptyDataError (an empty file: 'No columns to parse from file', naming no file) or a KeyError traceback (a header
    cut short), and a last line cut inside its last number was read as a valid probability. Now the line without its
    newline is dropped and its outer fold computed again: the same predictions as the whole cache."""
    import numpy as np
    from icegan.selection import inner_predictions
    cfg, fs, folds, full, text = toy_inner
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    cut_text = {"empty": "", "header cut short": text[:15],
                "last number cut short": text[:len(text.rstrip("\n")) - len(last)] + last[:last.rfind(",") + 4]}[cut]
    cache = tmp_path / "c.csv"
    cache.write_text(cut_text)
    again = inner_predictions(cfg, fs, folds, 3, cache, progress=False)
    key = ["outer", "row"]
    a, b = (d.sort_values(key).reset_index(drop=True) for d in (full, again))
    assert a[key].astype(str).equals(b[key].astype(str))
    scores = ["score_negative", "score_positive", "score_surprise"]
    assert np.allclose(a[scores].to_numpy(float), b[scores].to_numpy(float), rtol=0, atol=1e-8)   # CSV: 9 digits
    assert cache.read_text().endswith("\n") and not list(tmp_path.glob("*.tmp"))


def test_inner_prediction_cache_that_is_no_table_is_named(toy_inner, tmp_path):
    from icegan.selection import SelectionError, inner_predictions
    cfg, fs, folds, _, _ = toy_inner
    cache = tmp_path / "c.csv"
    cache.write_text("something else\n1\n")
    with pytest.raises(SelectionError, match=f"{cache}: not a table of inner predictions .*missing"):
        inner_predictions(cfg, fs, folds, 3, cache, progress=False)
    cache.write_text('a,b\n"unclosed,1\n')                  # pandas cannot parse it
    with pytest.raises(SelectionError, match=rf"^{re.escape(str(cache))}: not a table of inner predictions \(Error "
                                             r"tokenizing data"):
        inner_predictions(cfg, fs, folds, 3, cache, progress=False)


def test_inner_predictions_made_on_a_larger_feature_set_are_named(toy_inner, tmp_path):
    """A cache whose rows point beyond this feature set's clips (made on other data) is refused naming the file."""
    import pandas as pd
    from icegan.selection import SelectionError, inner_predictions
    cfg, fs, folds, full, text = toy_inner
    cache = tmp_path / "c.csv"
    df = pd.read_csv(io.StringIO(text))
    df.loc[df.index[0], "row"] = len(fs.samples) + 3
    df.to_csv(cache, index=False)
    with pytest.raises(SelectionError, match=rf"^{re.escape(str(cache))}: inner predictions point at rows beyond "
                                             rf"the {len(fs.samples)} clips of this feature set"):
        inner_predictions(cfg, fs, folds, 3, cache, progress=False)


def test_a_kill_while_saving_a_flow_checkpoint_keeps_the_previous_one(tmp_path, shared_data, monkeypatch, capsys):
    """icegan flow train killed while it wrote last.pt: the file was written in place, so the kill left it cut short
    and the rerun could only start afresh (the checkpoint of the step before was gone). Now it is written under a
    temporary name and renamed: the rerun resumes from the previous checkpoint."""
    from _flow_sizes import TINY_SRFLOWNET
    from flownet.train import FlowTrainConfig, train
    from icegan.config import load_config
    tiny = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_SRFLOWNET.items()]
    cfg = load_config(FlowTrainConfig, "configs/flow_srflownet_tvr.yaml",
                      [f"out_dir={tmp_path}", f"data.root={shared_data}", "data.n_train=8", "data.n_test=2",
                       "data.n_val=2", "data.size=64", "train.batch_size=2", "train.eval_every=0", "train.threads=1",
                       "train.device=cpu", "train.max_minutes=0", "train.init_weights=null", "train.crop=48",
                       "train.steps=2", "train.ckpt_every=1", "name=x", *tiny])
    real_save, saves = torch.save, []

    def killed_in_second_save(obj, f, *a, **k):
        saves.append(f)
        if len(saves) < 2:
            return real_save(obj, f, *a, **k)
        _cut_save(real_save, obj, f, *a, **k)    # step 2's checkpoint: the kill comes half-way through the file
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", killed_in_second_save)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    ckpt = tmp_path / "x" / "last.pt"
    assert torch.load(ckpt, weights_only=True)["step"] == 1 and not list(ckpt.parent.glob("*.tmp"))
    capsys.readouterr()
    train(cfg, progress=False)
    assert f"resumed {ckpt} at step 1" in capsys.readouterr().out
    assert torch.load(ckpt, weights_only=True)["step"] == 2



def test_a_flow_checkpoint_that_cannot_be_resumed_is_named(tmp_path, shared_data):
    """A last.pt damaged after it was written whole (a disk error, a copy cut short), or one of other model settings,
    is refused naming the file and what to do; before, the resume died in torch's zip reader or in load_state_dict's
    list of size mismatches."""
    from _flow_sizes import TINY_SRFLOWNET
    from flownet.train import FlowTrainConfig, train
    from icegan.config import load_config
    tiny = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_SRFLOWNET.items()]
    cfg = load_config(FlowTrainConfig, "configs/flow_srflownet_tvr.yaml",
                      [f"out_dir={tmp_path}", f"data.root={shared_data}", "data.n_train=2", "data.n_test=1",
                       "data.n_val=1", "data.size=64", "train.batch_size=2", "train.eval_every=0", "train.threads=1",
                       "train.device=cpu", "train.init_weights=null", "train.crop=48", "train.steps=1", "name=x", *tiny])
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "last.pt").write_bytes(b"PK\x03\x04 not a whole checkpoint")
    with pytest.raises(ValueError, match=r"the checkpoint to resume \(remove it, or set train.resume=false, to train "
                                         rf"afresh\): {re.escape(str(tmp_path / 'x' / 'last.pt'))} cannot be read"):
        train(cfg, progress=False)
    (tmp_path / "x" / "last.pt").unlink()
    train(cfg, progress=False)                          # a whole last.pt at step 1
    wider = load_config(FlowTrainConfig, "configs/flow_srflownet_tvr.yaml",
                        [f"out_dir={tmp_path}", f"data.root={shared_data}", "data.n_train=2", "data.n_test=1",
                         "data.n_val=1", "data.size=64", "train.batch_size=2", "train.eval_every=0",
                         "train.threads=1", "train.device=cpu", "train.init_weights=null", "train.crop=48", "train.steps=2", "name=x",
                         *tiny, f"model.hidden={2 * TINY_SRFLOWNET['hidden']}"])
    # the same run resumed with other model settings: one line naming the file and the way out, not torch's list of
    # size mismatches
    before = (tmp_path / "x" / "config.yaml").read_text()
    with pytest.raises(ValueError, match=r"last.pt: weights do not match the model this run's config describes "
                                         r"\(the run was started with other model settings: .*\): missing \[\] "
                                         r"\(0\), unexpected \[\] \(0\), wrong shape \['raft"):
        train(wider, progress=False)
    assert (tmp_path / "x" / "config.yaml").read_text() == before     # it still says what the checkpoint needs

def test_suite_times_cut_short_by_a_kill_do_not_stop_the_suite(tmp_path, capsys):
    """suite_times.json cut short (a kill while the suite wrote it): every rerun of the suite ended in 'icegan suite:
    error: Unterminated string starting at: line 2 ...', naming no file. Now the suite goes on with a warning naming
    the file, which is started again (the times are only shown on the results page)."""
    from pathlib import Path
    from icegan.suite import run_suite
    configs = Path(__file__).resolve().parent.parent / "configs"
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: toy\nseeds: [0]\nresamples: 100\nruns:\n  - {{label: floor, config: "
                     f"{configs}/demo_features.yaml, overrides: [model.name=logreg, workers=1]}}\n")
    over = ["threads=1", "max_folds=3"]
    run_suite(suite, tmp_path / "out", over, progress=False, log=io.StringIO())
    times = tmp_path / "out" / "suite_times.json"
    assert list(json.loads(times.read_text())) == ["floor_s0"]
    times.write_text(times.read_text()[:10])
    capsys.readouterr()
    run_suite(suite, tmp_path / "out", over, progress=False, log=io.StringIO())
    assert f"warning: {times} cannot be read" in capsys.readouterr().err
    assert json.loads(times.read_text()) == {}
    assert "floor" in (tmp_path / "out" / "results.md").read_text()


def test_a_kill_while_icegan_features_writes_its_table_leaves_no_table(tmp_path, tiny_weights, monkeypatch):
    """icegan features killed while it wrote features.csv left the lines written so far under that name: cut at a
    line's end, icegan loso read it as a valid table of fewer clips, and the rerun of icegan features refused the
    folder ('exists'). Now the table appears only whole, and the rerun writes the same table."""
    import pandas as pd
    from icegan.pipeline import export_features
    cfg = load_main_config(None, ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32",
                                  f"flow.weights={tiny_weights}"])
    ref = pd.read_csv(export_features(cfg, tmp_path / "ref", progress=False))
    real_to_csv, killed = pd.DataFrame.to_csv, []

    def killed_at_a_line_end(self, path=None, *a, **k):
        killed.append(str(path))
        real_to_csv(self.iloc[:len(self) // 2], path, *a, **k)
        raise KeyboardInterrupt
    monkeypatch.setattr(pd.DataFrame, "to_csv", killed_at_a_line_end)
    with pytest.raises(KeyboardInterrupt):
        export_features(cfg, tmp_path / "f", progress=False)
    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    assert killed and Path(killed[0]).name.startswith("features") and Path(killed[0]).parent == tmp_path / "f", \
        killed                                          # the write that was cut is a feature table's
    assert not (tmp_path / "f" / "features.csv").exists() and not list((tmp_path / "f").glob("*.tmp"))
    again = pd.read_csv(export_features(cfg, tmp_path / "f", progress=False))
    pd.testing.assert_frame_equal(again, ref)


@pytest.mark.parametrize("module, argv, line", [
    ("gan", ["gan", "train"], "icegan gan train: interrupted: the run folder's last.pt (written every "
                              "train.checkpoint_every epochs), if one was written yet, is kept; run the same command "
                              "again to resume from it"),
    ("flow", ["flow", "train", "--config", "c.yaml"],
     "icegan flow train: interrupted: the run folder's last.pt (written every train.ckpt_every steps), if one was "
     "written yet, is kept; run the same command again to resume from it"),
    ("gan", ["gan", "eval", "--checkpoint", "x.pt"], "icegan gan eval: interrupted"),
])
def test_ctrl_c_in_a_training_command_says_its_checkpoint_resumes(monkeypatch, capsys, module, argv, line):
    """Ctrl-C in icegan gan train / flow train printed 'icegan gan: interrupted' (neither the action nor that the
    same command resumes from last.pt); now the one line says both. Exit code 130, no traceback."""
    import importlib
    from icegan.cli import main
    mod = importlib.import_module(f"icegan.commands.{module}")

    def ctrl_c(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(mod, "_eval" if "eval" in argv else "_train", ctrl_c)
    assert main(argv) == 130
    assert capsys.readouterr().err.strip() == line


def _killed_after_writing(name):
    """A DataFrame.to_csv that writes the file, then is killed when the file is ``name`` (or its temporary)."""
    import pandas as pd
    real_to_csv = pd.DataFrame.to_csv

    def to_csv(self, path=None, *a, **k):
        out = real_to_csv(self, path, *a, **k)
        if path is not None and str(path).rsplit("/", 1)[-1].startswith(name):
            raise KeyboardInterrupt
        return out
    return real_to_csv, to_csv


def test_an_ensemble_killed_while_writing_its_folder_is_made_again_by_the_rerun(tmp_path, monkeypatch):
    """icegan ensemble (and a suite's ensemble row) wrote predictions.csv before ensemble.json: a kill between the two
    left a folder that every rerun refused ('holds a predictions.csv but no run header ... move that file away'), the
    suite stuck. Now the header comes first and each file is written whole."""
    import numpy as np
    import pandas as pd
    from icegan.data.toy_features import make_toy_features
    from icegan.ensemble import ensemble_runs
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)

    def random_probs(seed):
        def fold_fn(fold):
            p = np.random.default_rng(seed * 100 + fold.index).random((len(fold.test_idx), 3))
            return p / p.sum(1, keepdims=True)
        return fold_fn
    runs = [run_loso(toy.samples, random_probs(s), tmp_path / f"r{s}", progress=False) and tmp_path / f"r{s}"
            for s in (0, 1)]
    ref = ensemble_runs(runs, tmp_path / "ref")
    real_to_csv, killed = _killed_after_writing("predictions.csv")
    monkeypatch.setattr(pd.DataFrame, "to_csv", killed)
    with pytest.raises(KeyboardInterrupt):
        ensemble_runs(runs, tmp_path / "e")
    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    assert ensemble_runs(runs, tmp_path / "e") == ref
    assert (tmp_path / "e" / "predictions.csv").read_text() == (tmp_path / "ref" / "predictions.csv").read_text()


def test_a_nested_selection_killed_while_writing_its_folder_is_made_again_by_the_rerun(tmp_path, monkeypatch):
    """The same for a nested selection (predictions.csv was written before selection.json; measured with kill -9 on
    icegan suite: the rerun ended in 'icegan suite: error: ... holds a predictions.csv but no run header')."""
    import pandas as pd
    from icegan.commands.loso import LosoConfig, load_feature_set, run
    from icegan.config import load_config
    from icegan.selection import Candidate, select_nested
    cands = []
    for label, model in (("floor", "logreg"), ("forest", "random_forest")):
        cfg = load_config(LosoConfig, None, ["data.source=toy", "workers=1", "threads=1", f"model.name={model}",
                                             "model.forest_trees=5", f"name={label}", "max_folds=4"])
        run(cfg, tmp_path / label, progress=False, feature_set=load_feature_set(cfg.data))
        cands.append(Candidate(label, tmp_path / label, config=cfg))
    ref = select_nested(cands, {}, tmp_path / "ref", k=3, cache_dir=tmp_path / "inner", progress=False)
    real_to_csv, killed = _killed_after_writing("predictions.csv")
    monkeypatch.setattr(pd.DataFrame, "to_csv", killed)
    with pytest.raises(KeyboardInterrupt):
        select_nested(cands, {}, tmp_path / "s", k=3, cache_dir=tmp_path / "inner", progress=False)
    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    assert select_nested(cands, {}, tmp_path / "s", k=3, cache_dir=tmp_path / "inner", progress=False) == ref


def test_a_kill_while_a_resume_rewrites_config_yaml_keeps_the_finished_folds(tmp_path, monkeypatch):
    """Every resume of a LOSO run writes its config.yaml again. It was written in place: a kill during that write
    left it cut short, and the next rerun refused the folder ('looks damaged ... use another --out, or delete that
    folder'), its finished folds lost. Now run.json and config.yaml are written through a temporary file."""
    from pathlib import Path
    import numpy as np
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=3, clips_per_class=2)
    x, y = toy.features.flatten(1).numpy(), toy.labels.numpy()

    def centroid(calls):
        def fold_fn(fold):
            calls.append(fold.index)
            means = [x[fold.train_idx][y[fold.train_idx] == c].mean(0) for c in range(3)]
            d = -((x[fold.test_idx, None] - means) ** 2).sum(-1)
            e = np.exp(d - d.max(1, keepdims=True))
            return e / e.sum(1, keepdims=True)
        return fold_fn
    cfg, out = {"model": "centroid"}, tmp_path / "run"
    ref = run_loso(toy.samples, centroid([]), tmp_path / "ref", config=cfg, progress=False)
    calls = []

    def killed_in_fold_3(fold):
        if fold.index == 3:
            raise KeyboardInterrupt
        return centroid(calls)(fold)
    with pytest.raises(KeyboardInterrupt):
        run_loso(toy.samples, killed_in_fold_3, out, config=cfg, progress=False)
    real_write = kill_while_writing(monkeypatch, "config.yaml")
    with pytest.raises(KeyboardInterrupt):                  # the resume is killed while it writes config.yaml
        run_loso(toy.samples, centroid([]), out, config=cfg, progress=False)
    monkeypatch.setattr(Path, "write_text", real_write)
    calls.clear()
    assert run_loso(toy.samples, centroid(calls), out, config=cfg, progress=False) == ref
    assert calls == [3, 4, 5]


def test_a_landmark_cache_cut_short_is_named_and_built_again(tmp_path, shared_data):
    """build_landmark_cache wrote its .npz in place: a kill while saving left it cut short, and both the next build
    (which keeps the entries already there) and SyntheticFaceFlow(landmark_cache=...) ended in zipfile's BadZipFile
    traceback. Now it is written through a temporary file; a cut one is named (ValueError) and built again."""
    import numpy as np
    from flownet.data.synthetic_face import SyntheticFaceFlow, build_landmark_cache
    cache = tmp_path / "lm.npz"
    np.savez(cache, **{"sub01/EP02_01f/img46.jpg": np.zeros((68, 2), np.float32)})
    cache.write_bytes(cache.read_bytes()[:len(cache.read_bytes()) // 2])
    with pytest.raises(ValueError, match=f"landmark_cache {cache} cannot be read .*cut short"):
        SyntheticFaceFlow(root=shared_data, split="test", size=64, n_pairs=1, landmark_cache=cache)
    with pytest.warns(UserWarning, match=f"landmark_cache {cache} cannot be read"):
        build_landmark_cache([], cache, root=shared_data)
    with np.load(cache) as z:
        assert z.files == []
    assert not list(tmp_path.glob("*.tmp"))


def test_main_job_killed_inside_a_fold_gan_resumes_it_to_the_uninterrupted_result(tmp_path, tiny_weights,
                                                                                    monkeypatch, caplog):
    """Pins what kill -9 / Ctrl-C of train.py showed at every point tried: a kill right after a fold's GAN saved
    epoch 1 of 2 resumes that GAN at epoch 1, and the run ends with the predictions of a run never interrupted."""
    import pandas as pd
    from icegan.gan import trainer
    cfg = load_main_config(None, [t for t in TINY if t != "gan.enabled=false"]
                           + [f"flow.weights={tiny_weights}", "gan.epochs=2", "gan.batch_size=8",
                              "gan.base_channels=8", "gan.synthetic_ratio=0.5"])
    ref = run_main(cfg, tmp_path / "ref", progress=False)
    real_save = trainer.save_checkpoint

    def killed_after_first_save(path, cfg, g, d, epoch, *a, **k):
        real_save(path, cfg, g, d, epoch, *a, **k)
        raise KeyboardInterrupt
    monkeypatch.setattr(trainer, "save_checkpoint", killed_after_first_save)
    with pytest.raises(KeyboardInterrupt):
        run_main(cfg, tmp_path / "run", progress=False)
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    assert not (tmp_path / "run" / "predictions.csv").exists()
    caplog.set_level(logging.DEBUG, logger="icegan.gan.trainer")
    assert run_main(cfg, tmp_path / "run", progress=False) == ref
    assert any(r.getMessage().endswith("last.pt at epoch 1") and "synthetic_s01" in r.getMessage()
               for r in caplog.records)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "predictions.csv"),
                                  pd.read_csv(tmp_path / "ref" / "predictions.csv"))


def test_a_fold_gan_checkpoint_that_cannot_be_resumed_is_one_line_of_train_py(tmp_path, tiny_weights, monkeypatch,
                                                                                capsys):
    """A fold's gan/checkpoints/last.pt damaged after it was written whole (a disk error, a copy cut short): train.py
    ends in one line naming it and what to do (was a traceback of torch's zip reader, then of the ValueError)."""
    from icegan.gan import trainer
    from icegan.pipeline import main
    real = trainer.train_gan

    def damaged_first(onset, apex, labels, cfg, **kw):
        ck = Path(kw["out_dir"]) / "checkpoints" / "last.pt"
        ck.parent.mkdir(parents=True, exist_ok=True)
        ck.write_bytes(b"PK\x03\x04 cut short")
        return real(onset, apex, labels, cfg, **kw)
    monkeypatch.setattr(trainer, "train_gan", damaged_first)
    over = [t for t in TINY if t != "gan.enabled=false"] + [f"flow.weights={tiny_weights}", "gan.epochs=1",
                                                            "gan.batch_size=8", "gan.base_channels=8"]
    assert main(["--out", str(tmp_path / "run"), "--no-progress", *over]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: the GAN checkpoint to resume (remove it (or use another output folder) "
                          f"to start afresh): {tmp_path / 'run' / 'folds'}") and "cannot be read by torch.load" in err
    assert "(in the fold of held-out subject " in err and ", fold 1)" in err     # which fold's GAN (1-based)
    assert len(err.splitlines()) == 1

def test_a_suite_killed_while_copying_a_reused_run_copies_it_again(tmp_path, monkeypatch):
    """icegan suite --reuse copied a finished run file by file into its folder, then wrote the new config.yaml: a kill
    in between left the source's config.yaml (another run name) in the new folder, and every rerun refused it ('holds
    a run made with a different config ... name: ... delete that folder'). Now the copy is made in a temporary
    folder, renamed when complete, and a copy cut short is made again."""
    from pathlib import Path
    from icegan.suite import REUSED_FROM, run_suite
    configs = Path(__file__).resolve().parent.parent / "configs"
    def suite(label):
        return (f"name: toy\nseeds: [0]\nresamples: 100\nruns:\n  - {{label: {label}, config: "
                f"{configs}/demo_features.yaml, overrides: [model.name=logreg, workers=1]}}\n")
    (tmp_path / "a.yaml").write_text(suite("floor"))
    (tmp_path / "b.yaml").write_text(suite("floor again"))
    over = ["threads=1", "max_folds=3"]
    run_suite(tmp_path / "a.yaml", tmp_path / "A", over, progress=False, log=io.StringIO())
    real_write = Path.write_text

    def killed_before_the_new_config(self, data, *a, **k):
        if self.name == "config.yaml" and self.parent.name.startswith("floor_again_s0"):
            raise KeyboardInterrupt
        return real_write(self, data, *a, **k)
    monkeypatch.setattr(Path, "write_text", killed_before_the_new_config)
    with pytest.raises(KeyboardInterrupt):
        run_suite(tmp_path / "b.yaml", tmp_path / "B", over, progress=False, log=io.StringIO(),
                  reuse=[tmp_path / "A"])
    monkeypatch.setattr(Path, "write_text", real_write)
    run_suite(tmp_path / "b.yaml", tmp_path / "B", over, progress=False, log=io.StringIO(), reuse=[tmp_path / "A"])
    copy = tmp_path / "B" / "floor_again_s0"
    assert (copy / REUSED_FROM).read_text().strip() == str(tmp_path / "A" / "floor_s0")
    assert (copy / "predictions.csv").read_text() == (tmp_path / "A" / "floor_s0" / "predictions.csv").read_text()
    assert not (tmp_path / "B" / "floor_again_s0.copying").exists()


def test_a_gan_checkpoint_whose_save_fails_leaves_the_previous_one_and_no_temporary_file(tmp_path, monkeypatch):
    """save_checkpoint wrote last.tmp and renamed it; when torch.save failed (a full disk, a kill) last.tmp stayed
    beside the checkpoint. Now, through save_torch_file, the previous last.pt stays whole and nothing else is left."""
    from icegan.gan.trainer import GanConfig, save_checkpoint
    g, d = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    ckpt = save_checkpoint(tmp_path / "last.pt", GanConfig(), g, d, epoch=1, history=[])
    before = ckpt.read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path / "last.pt", GanConfig(), g, d, epoch=2, history=[])
    assert ckpt.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full (a device that is always full)")
def test_a_full_disk_while_saving_a_checkpoint_is_an_oserror_naming_its_cause(tmp_path):
    """torch.save given a path wrote through torch's own writer, which reports a full disk as a RuntimeError
    ("unexpected pos ...") naming neither the file nor the cause, so the command's one-line report of a full disk
    never saw it. Saved through a Python file, it is OSError ENOSPC; the previous checkpoint stays whole."""
    import errno
    import os

    from flownet.models.state_dict import save_torch_file
    ckpt = save_torch_file({"w": torch.zeros(3)}, tmp_path / "last.pt")
    before = ckpt.read_bytes()
    os.symlink("/dev/full", tmp_path / "last.pt.tmp")          # the temporary file lies on a full disk
    with pytest.raises(OSError) as err:
        save_torch_file({"w": torch.zeros(100_000)}, ckpt)
    assert err.value.errno == errno.ENOSPC
    assert ckpt.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
