"""Resume audit: runs interrupted (Ctrl-C in a fold, a kill that cuts a file short, a damaged cache) and started
again end as an uninterrupted run does, and a file that cannot be read is named with what to do."""
from pathlib import Path

import numpy as np
import pytest
from _kill_while_writing import kill_while_writing


def _one_hot_folds(calls, stop_at=None):
    """A fold function scoring each test clip with vote shares (1 for class ``clip number % 3`` and 0 elsewhere, or
    halves for odd clip numbers), as a random forest gives, counting its calls; Ctrl-C at fold ``stop_at``."""
    def fold_fn(fold):
        if fold.index == stop_at:
            raise KeyboardInterrupt
        calls.append(fold.index)
        s = np.zeros((len(fold.test_idx), 3))
        s[np.arange(len(fold.test_idx)), fold.test_idx % 3] = 1.0
        return np.where((fold.test_idx % 2 == 1)[:, None], (s + np.roll(s, 1, axis=1)) / 2, s)
    return fold_fn


def test_a_predictions_file_cut_mid_line_is_resumed_to_the_same_text(tmp_path):
    """A LOSO run killed while appending a fold's rows: the rerun keeps the whole folds and drops the cut one. It
    rewrote the kept rows with pandas' default float format, so whole-number scores written as ``1`` came back as
    ``1.0`` and the finished predictions.csv differed from an uninterrupted run's; now the same ``%.9g`` as every
    append, and no temporary file is left."""
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    ref = run_loso(toy.samples, _one_hot_folds([]), tmp_path / "ref", progress=False)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_loso(toy.samples, _one_hot_folds([], stop_at=2), out, progress=False)
    pred = out / "predictions.csv"
    text = pred.read_text()
    assert ",1\n" in text or ",1," in text                       # the scores were written as whole numbers
    pred.write_text(text[:-5])                                   # fold 1's last line cut by the kill
    calls = []
    assert run_loso(toy.samples, _one_hot_folds(calls), out, progress=False) == ref
    assert calls == [1, 2, 3]                                    # fold 0 kept, the cut fold 1 done again
    assert pred.read_text() == (tmp_path / "ref" / "predictions.csv").read_text()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def _cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_a_damaged_face_landmark_cache_is_named_and_found_again(tmp_path, monkeypatch):
    """data.roi=landmarks / data.synthetic_per_clip cache the apex faces' landmarks in an .npz: one cut short (a copy
    cut short, a disk error, a kill of a version that wrote it in place) ended every later icegan loso in zipfile's
    BadZipFile traceback. Now a warning names the file and the landmarks are found again and saved whole."""
    import pandas as pd
    from PIL import Image

    import icegan.data.landmarks as landmarks
    from icegan.data.roi import face_landmarks_megc2019, face_paths, files_cache_key
    face = tmp_path / "face.png"
    Image.new("RGB", (20, 30), (90, 60, 30)).save(face)
    samples = pd.DataFrame({"clip": ["c"], "face_path": [str(face)]})
    cache = tmp_path / "cache"
    cache.mkdir()
    entry = cache / f"landmarks_{files_cache_key(face_paths(samples))}.npz"
    np.savez(entry, points=np.ones((1, 68, 2), np.float32), sizes=np.array([[20, 30]]))
    _cut_in_half(entry)
    monkeypatch.setattr(landmarks, "landmarks_in_box", lambda im, box: np.full((68, 2), 2, np.float32))
    with pytest.warns(UserWarning, match=rf"landmark cache {entry} cannot be read \(BadZipFile"):
        pts, sizes = face_landmarks_megc2019(samples, cache_dir=cache)
    assert (pts == 2).all() and sizes.tolist() == [[20, 30]]
    with np.load(entry) as z:                                    # saved again, whole
        assert (z["points"] == 2).all()
    assert sorted(p.name for p in cache.iterdir()) == [entry.name]


def test_a_damaged_synthetic_clip_cache_is_named_and_made_again(tmp_path, monkeypatch):
    """The same for data.synthetic_per_clip's cache of synthetic AU clips (stopped here at the landmarks, the first
    step of making them again)."""
    import hashlib
    import json
    from types import SimpleNamespace

    import pandas as pd
    from PIL import Image

    import icegan.data.roi as roi
    from icegan.data.synthetic_features import _settings, synthetic_au_features
    face = tmp_path / "face.png"
    Image.new("RGB", (20, 30), (90, 60, 30)).save(face)
    samples = pd.DataFrame({"dataset": ["samm"], "subject": ["006"], "clip": ["c"], "face_path": [str(face)],
                            "label": [0]})
    cache = tmp_path / "cache"
    cache.mkdir()
    key = hashlib.sha1((roi.files_cache_key(roi.face_paths(samples)) + json.dumps(_settings(1, 128, (0.5, 1.5), 0.5,
                                                                                             0))).encode())
    entry = cache / f"synthetic_{key.hexdigest()[:16]}.npz"
    np.savez(entry, features=np.zeros((1, 3, 28, 28), np.float32))
    _cut_in_half(entry)

    class Remade(Exception):
        pass

    def landmarks(samples, cache_dir=None):
        raise Remade
    monkeypatch.setattr(roi, "face_landmarks_megc2019", landmarks)
    with pytest.warns(UserWarning, match=rf"synthetic clip cache {entry} cannot be read"), pytest.raises(Remade):
        synthetic_au_features(SimpleNamespace(samples=samples), cache_dir=cache)


def test_a_damaged_gan_pairs_cache_is_named_and_read_again(shared_data, tmp_path, caplog):
    """icegan gan train's CASME II pairs cache (.npz) cut short ended every later run in zipfile's traceback; now a
    warning names it and the pairs are read again from the frames, the same as before, and saved whole."""
    import logging

    from test_bad_input_flow_gan import CLIPS
    from icegan.gan.pairs import load_casme2_pairs
    import pandas as pd
    import shutil
    src, root = shared_data / "casme2", tmp_path / "casme2"
    m = pd.read_csv(src / "manifest.csv", dtype=str)
    m = m[[(s, c) in {(s_, c_) for s_, c_, _, _ in CLIPS[:1]} for s, c in zip(m.subject, m.filename)]]
    for subject, clip, onset, apex in CLIPS[:1]:
        (root / subject / clip).mkdir(parents=True)
        for n in (onset, apex):
            shutil.copy(src / subject / clip / f"img{n}.jpg", root / subject / clip / f"img{n}.jpg")
    m.to_csv(root / "manifest.csv", index=False)
    kw = dict(img_size=32, apex_neighbors=0, cache=True, cache_dir=tmp_path / "cache")
    first = load_casme2_pairs(root, **kw)
    (entry,) = (tmp_path / "cache").iterdir()
    _cut_in_half(entry)
    caplog.set_level(logging.WARNING, logger="icegan.gan.pairs")
    again = load_casme2_pairs(root, **kw)
    assert any(f"GAN pairs cache {entry} cannot be read" in r.getMessage() for r in caplog.records)
    assert np.array_equal(again.onset, first.onset) and np.array_equal(again.apex, first.apex)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [entry.name]
    with np.load(entry) as z:
        assert np.array_equal(z["apex"], first.apex)


TINY_MAIN = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32", "data.max_folds=2", "gan.enabled=false",
             "recognizer.epochs=2", "recognizer.batch_size=16", "recognizer.name=ststnet"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from _flow_sizes import save_main_job_weights
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=2)


def test_a_main_job_whose_timing_json_is_cut_short_resumes(tmp_path, tiny_weights, monkeypatch, caplog):
    """timing.json cut short (icegan wrote it in place before 062bd1b; a kill then, or a disk error): every resume of
    train.py computed the next fold, then ended in json's JSONDecodeError before recording it, so the run could never
    go on; and a damaged timing.json in any run folder beside it ended every train.py run in its summary.md. Now a
    warning names the file, the fold is recorded, the run ends as an uninterrupted one, and summary.md shows '?'."""
    import logging

    import pandas as pd

    from icegan.pipeline import FoldRunner, load_main_config, run_main, write_summary
    cfg = load_main_config(None, TINY_MAIN + [f"flow.weights={tiny_weights}"])
    ref = run_main(cfg, tmp_path / "ref", progress=False)
    real = FoldRunner.__call__

    def ctrl_c_in_fold_1(self, fold):
        if fold.index == 1:
            raise KeyboardInterrupt
        return real(self, fold)
    monkeypatch.setattr(FoldRunner, "__call__", ctrl_c_in_fold_1)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_main(cfg, out, progress=False)
    monkeypatch.setattr(FoldRunner, "__call__", real)
    timing = out / "timing.json"
    timing.write_text(timing.read_text()[:12])
    caplog.set_level(logging.WARNING, logger="icegan.pipeline")
    assert run_main(cfg, out, progress=False) == ref
    assert any(f"{timing} cannot be read (JSONDecodeError" in r.getMessage() for r in caplog.records)
    pd.testing.assert_frame_equal(pd.read_csv(out / "predictions.csv"),
                                  pd.read_csv(tmp_path / "ref" / "predictions.csv"))
    assert len(json_of(timing)["fold_seconds"]) == 1                # the fold of this call; the earlier time is lost
    (tmp_path / "ref" / "timing.json").write_text("")
    caplog.clear()
    rows = {line.split(" ")[1]: line for line in write_summary(tmp_path).read_text().splitlines() if " " in line}
    assert rows["ref"].endswith("| ? |") and not rows["run"].endswith("| ? |")
    assert any(str(tmp_path / "ref" / "timing.json") in r.getMessage() for r in caplog.records)


def json_of(path):
    import json
    return json.loads(path.read_text())


def _flow_cfg(tmp_path, shared_data, *extra):
    from _flow_sizes import TINY_SRFLOWNET
    from flownet.train import FlowTrainConfig
    from icegan.config import load_config
    tiny = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_SRFLOWNET.items()]
    return load_config(FlowTrainConfig, "configs/flow_srflownet_tvr.yaml",
                       [f"out_dir={tmp_path}", f"data.root={shared_data}", "data.n_train=4", "data.n_test=1",
                        "data.n_val=1", "data.size=64", "train.batch_size=2", "train.eval_every=0", "train.threads=1",
                        "train.device=cpu", "train.max_minutes=0", "train.init_weights=null", "train.crop=48",
                        "train.ckpt_every=1", "name=x", *tiny, *extra])


def test_a_flow_run_resumed_with_other_training_settings_is_refused_naming_them(tmp_path, shared_data, capsys):
    """icegan flow train resumed last.pt whatever the rerun's settings: another train.seed, train.lr or data.seed went
    on training the same weights with the new ones, and config.yaml was rewritten to claim them for the whole run.
    Now such a resume is refused naming each key and both values, and config.yaml is left as it was; more steps (the
    way to extend a run) and another eval_every still resume."""
    import re
    import yaml
    from flownet.train import train
    train(_flow_cfg(tmp_path, shared_data, "train.steps=1"), progress=False)
    cfg_file = tmp_path / "x" / "config.yaml"
    before = cfg_file.read_text()
    other = _flow_cfg(tmp_path, shared_data, "train.steps=2", "train.seed=7", "train.lr=0.5", "data.seed=3")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'x' / 'last.pt'))} was trained with other "
                                         rf"settings than these \({re.escape(str(cfg_file))}: data.seed: 0 there, 3 "
                                         r"now, train.lr: 0.0002 there, 0.5 now, train.seed: 0 there, 7 now\); .*"
                                         r"another name= for a new run, or set train.resume=false"):
        train(other, progress=False)
    assert cfg_file.read_text() == before
    capsys.readouterr()
    train(_flow_cfg(tmp_path, shared_data, "train.steps=2", "train.eval_every=5"), progress=False)
    assert "resumed" in capsys.readouterr().out
    assert yaml.safe_load(cfg_file.read_text())["train"]["steps"] == 2


def test_icegan_gan_train_resumed_with_other_training_settings_is_refused_naming_them(tmp_path, monkeypatch,
                                                                                      capsys):
    """icegan gan train resumed last.pt when only the shapes and the pairs matched: another train.seed, train.lr or
    loss weight went on training the same GAN with the new ones, and config.yaml was rewritten to claim them. Now
    such a resume is one line naming each key and both values (config.yaml left as it was); more epochs still resume."""
    import torch

    from icegan.cli import main
    from icegan.gan import pairs as gan_pairs
    from _gan_sizes import fake_casme2_pairs, tiny_gan_train_args
    pairs = fake_casme2_pairs(8)
    monkeypatch.setattr(gan_pairs, "load_casme2_pairs", lambda *a, **k: pairs)
    args = tiny_gan_train_args(tmp_path)
    assert main(args + ["train.epochs=1"]) == 0
    cfg_file = tmp_path / "t" / "config.yaml"
    before = cfg_file.read_text()
    capsys.readouterr()
    assert main(args + ["train.epochs=2", "train.seed=5", "loss.lambda_adv=0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"icegan gan train: error: {tmp_path / 't' / 'checkpoints' / 'last.pt'} was trained with "
                          "other settings than these (loss.lambda_adv: 0.1 there, 0.5 now, train.seed: 0 there, 5 "
                          "now); resuming would train one GAN with both") and len(err.splitlines()) == 1, err
    assert cfg_file.read_text() == before
    assert main(args + ["train.epochs=2"]) == 0
    last = torch.load(tmp_path / "t" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 2


def test_inner_predictions_of_other_maps_are_not_read_back(tmp_path):
    """A nested selection keeps its inner-fold predictions in <cache>/<run>_k<k>_<digest>.csv, the digest of the
    recipe's settings only, and checks their clips and labels. Maps exported again (other flow weights; the same clips
    and labels, features.csv at the same path) and the runs made again, as the refusal of the old run folders says:
    the inner predictions of the old maps were read back and the selection scored its candidates on them. Now the
    digest also covers the maps (icegan.protocol.data_digest): the same selection as with a fresh cache."""
    import pandas as pd
    from _feature_tables import write_feature_table
    from icegan.commands.loso import LosoConfig, load_feature_set, run
    from icegan.config import load_config
    from icegan.data.toy_features import make_toy_features
    from icegan.selection import Candidate, select_nested
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    table = write_feature_table(tmp_path / "f", toy)

    def candidates(runs):
        cands = []
        for label, model in (("floor", "logreg"), ("forest", "random_forest")):
            cfg = load_config(LosoConfig, None, ["data.source=table", f"data.table={table}", "workers=1", "threads=1",
                                                 f"model.name={model}", "model.forest_trees=5", f"name={label}",
                                                 "max_folds=3"])
            run(cfg, runs / label, progress=False, feature_set=load_feature_set(cfg.data))
            cands.append(Candidate(label, runs / label, config=cfg))
        return cands
    select_nested(candidates(tmp_path / "old"), {}, tmp_path / "s_old", k=3, cache_dir=tmp_path / "inner",
                  progress=False)
    toy.features.copy_(toy.features.flip(-1))                  # the maps exported again: other motion, same clips
    write_feature_table(tmp_path / "f", toy)
    again = candidates(tmp_path / "new")
    got = select_nested(again, {}, tmp_path / "s", k=3, cache_dir=tmp_path / "inner", progress=False)
    fresh = select_nested(again, {}, tmp_path / "s_fresh", k=3, cache_dir=tmp_path / "inner_fresh", progress=False)
    assert got == fresh
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s" / "selection.csv"),
                                  pd.read_csv(tmp_path / "s_fresh" / "selection.csv"))


def test_a_decflow_run_resumed_with_another_seed_is_refused(tmp_path, shared_data):
    """The same for icegan flow train --mode decflow: another train.seed resumed the run's last.pt with it."""
    import re

    import torch
    from _flow_sizes import TINY_SRFLOWNET
    from flownet.models.decflow import DecFlowConfig, DecFlowTrainConfig, DecFlowTrainSection, train_decflow
    from flownet.train import FlowDataConfig

    def cfg(steps, seed=0):
        return DecFlowTrainConfig(name="d", out_dir=str(tmp_path), model=DecFlowConfig(**TINY_SRFLOWNET),
                                  data=FlowDataConfig(root=str(shared_data), size=64, n_train=2, n_test=1),
                                  train=DecFlowTrainSection(init_weights=None, batch_size=2, crop=0, steps=steps,
                                                            iters=1, log_every=100, ckpt_every=100, seed=seed))
    train_decflow(cfg(1), progress=False)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'd' / 'last.pt'))} was trained with other "
                                         r"settings than these \(.*config.yaml: train.seed: 0 there, 4 now\)"):
        train_decflow(cfg(2, seed=4), progress=False)
    train_decflow(cfg(2), progress=False)                                               # more steps resume
    assert torch.load(tmp_path / "d" / "last.pt", weights_only=True)["step"] == 2


def test_a_selfsup_run_resumed_with_another_loss_setting_is_refused(tmp_path, shared_data):
    """The same for icegan flow train --mode selfsup: another loss.alpha2 resumed the run with it."""
    import re

    from _flow_sizes import TINY_SRFLOWNET
    from flownet.selfsup import SelfSupConfig, train_selfsup
    from icegan.config import load_config
    tiny = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_SRFLOWNET.items()]

    def cfg(*extra):
        return load_config(SelfSupConfig, "configs/flow_selfsup.yaml", [
            f"out_dir={tmp_path}", "name=ss", f"data.root={shared_data}", "data.size=64", "data.crop=48",
            "data.n_test=1", "data.n_occ_pairs=1", "train.teacher_steps=1", "train.student_steps=0",
            "train.teacher_minutes=0", "train.eval_every=0", "train.ckpt_every=1", "train.log_every=1",
            "train.batch_size=2", "train.iters=1", "train.teacher_iters=1", *tiny, *extra])
    train_selfsup(cfg(), progress=False)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'ss' / 'last.pt'))} was trained with other "
                                         r"settings than these \(.*config.yaml: loss.alpha2: 0.5 there, 0.05 now\)"):
        train_selfsup(cfg("train.teacher_steps=2", "loss.alpha2=0.05"), progress=False)


def test_a_kill_while_writing_metrics_json_leaves_no_finished_looking_run(tmp_path, monkeypatch):
    """metrics.json marks a finished run (icegan suite --reuse takes a folder holding it as one to copy). It was
    written in place: a kill during that write left it cut short, and every icegan suite --reuse of that folder ended
    in '--reuse: cannot read ... metrics.json (Expecting value ...)'. Now it is written whole or not at all: the run is
    not taken as finished, and its rerun writes it."""
    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    from icegan.suite import reusable_runs
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    cfg = {"name": "r", "model": {"name": "one_hot"}}
    ref = run_loso(toy.samples, _one_hot_folds([]), tmp_path / "ref", config=cfg, progress=False)
    real_write = kill_while_writing(monkeypatch, "metrics.json")
    out = tmp_path / "runs" / "r"
    with pytest.raises(KeyboardInterrupt):
        run_loso(toy.samples, _one_hot_folds([]), out, config=cfg, progress=False)
    monkeypatch.setattr(Path, "write_text", real_write)
    assert reusable_runs([tmp_path / "runs"]) == []
    calls = []
    assert run_loso(toy.samples, _one_hot_folds(calls), out, config=cfg, progress=False) == ref and calls == []
    assert [r for r, _ in reusable_runs([tmp_path / "runs"])] == [out.resolve()]
