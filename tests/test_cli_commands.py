"""The icegan subcommands pass their options on to the work they name: fit / predict, features, data, gan, flow."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _feature_tables import TOY, toy_config, write_feature_table
from _gan_sizes import tiny_gan_config

from icegan.cli import main
from icegan.commands.predict import fit, predict_table
from icegan.data.features import FeatureSet
from icegan.data.toy_features import make_toy_features

SCORES = ["score_negative", "score_positive", "score_surprise"]


@pytest.fixture
def recorded_fit(monkeypatch):
    """``fit_recognizer`` and ``limit_threads`` record what they were given (and train on the CPU)."""
    import icegan.environment
    import icegan.recognition
    calls: dict = {"fit": [], "threads": []}
    real = icegan.recognition.fit_recognizer

    def fit_recognizer(model, x, y, **kw):
        calls["fit"].append({"x": x, "y": y, **kw})
        return real(model, x, y, **{**kw, "device": "cpu"})
    monkeypatch.setattr(icegan.recognition, "fit_recognizer", fit_recognizer)
    monkeypatch.setattr(icegan.environment, "limit_threads", lambda n: calls["threads"].append(n))
    return calls


def test_fit_passes_seed_device_threads_and_progress_to_the_training(tmp_path, recorded_fit, capsys):
    cfg = toy_config("model.name=logreg", "seed=7", "threads=2")
    cfg.device = "cuda:3"                  # recorded only; the training itself runs on the CPU
    fit(cfg, tmp_path / "a.pt", progress=True)
    call = recorded_fit["fit"][-1]
    assert (call["seed"], call["device"], call["progress"]) == (7, "cuda:3", True)
    assert recorded_fit["threads"] == [2]
    assert main(["fit", "--out", str(tmp_path / "b.pt"), "--no-progress", *TOY, "model.name=logreg", "seed=3"]) == 0
    assert (recorded_fit["fit"][-1]["seed"], recorded_fit["fit"][-1]["progress"]) == (3, False)


def test_fit_inner_validation_trains_on_the_rest_with_its_subjects(tmp_path, recorded_fit):
    """model.inner_val_fraction: the training part and the held-out part cover the 36 clips, and the subjects passed
    with the training part are its own (one per training clip, 9 clips per subject)."""
    fit(toy_config("model.inner_val_fraction=0.25", "model.epochs=1"), tmp_path / "m.pt", progress=False)
    call = recorded_fit["fit"][-1]
    x, x_val, subjects = call["x"], call["x_val"], call["subjects_train"]
    assert x_val is not None and len(x) + len(x_val) == 36 and len(subjects) == len(x) == len(call["y"])
    assert len(x) % 9 == 0 and len(set(subjects)) == len(x) // 9          # whole subjects of 9 clips each


def test_fit_sde_names_a_dataset_that_is_not_in_the_data(tmp_path):
    with pytest.raises(ValueError, match=r"dataset='smic' has no clips in the data \(datasets: \['casme2', 'samm'\]\)"):
        fit(toy_config("model.name=logreg", "protocol=SDE", "dataset=smic"), tmp_path / "m.pt", progress=False)
    assert not (tmp_path / "m.pt").exists()


def test_fit_print_config_prints_and_trains_nothing(tmp_path, capsys):
    assert main(["fit", "--out", str(tmp_path / "m.pt"), "--print-config", *TOY, "seed=11"]) == 0
    assert "seed: 11" in capsys.readouterr().out and not (tmp_path / "m.pt").exists()


def test_predict_options_reach_the_scores(tmp_path, capsys, monkeypatch):
    """--weights, --normalize and --device reach the scoring (default: cpu, auto); a new output folder is made."""
    import icegan.saved_recognizer
    fit(toy_config("model.name=logreg"), tmp_path / "a.pt", progress=False)
    fit(toy_config("model.name=ststnet", "model.epochs=1"), tmp_path / "b.pt", progress=False)
    new = make_toy_features(n_subjects_per_dataset=1, seed=5)
    table = write_feature_table(tmp_path, new, labels="empty", scale=0.5)   # maps in [0, 0.5]: minmax changes them
    a_minmax, _, _ = predict_table([tmp_path / "a.pt"], table, normalize="minmax")
    a_none, _, _ = predict_table([tmp_path / "a.pt"], table, normalize="none")
    assert not np.allclose(a_minmax[SCORES].to_numpy(), a_none[SCORES].to_numpy(), atol=1e-3)
    devices = []
    real = icegan.saved_recognizer.load_recognizer
    monkeypatch.setattr(icegan.saved_recognizer, "load_recognizer",
                        lambda path, device="cpu": (devices.append(device), real(path))[1])
    # the early check of --device (a device this machine lacks is refused) passes cuda:2 on any machine here
    monkeypatch.setattr("flownet.devices.resolve_device", lambda device, key="device": device)
    out = tmp_path / "new" / "deeper" / "p.csv"
    assert main(["predict", "--model", str(tmp_path / "a.pt"), "--model", str(tmp_path / "b.pt"), "--weights", "1",
                 "0", "--normalize", "minmax", "--device", "cuda:2", "--table", str(table), "--out", str(out)]) == 0
    assert devices == ["cuda:2", "cuda:2"]
    np.testing.assert_allclose(pd.read_csv(out)[SCORES].to_numpy(), a_minmax[SCORES].to_numpy(), atol=1e-6)
    devices.clear()
    assert main(["predict", "--model", str(tmp_path / "a.pt"), "--table", str(table), "--out", str(out)]) == 0
    assert devices == ["cpu"]                                       # the default device
    np.testing.assert_allclose(pd.read_csv(out)[SCORES].to_numpy(), a_none[SCORES].to_numpy(), atol=1e-6)


def test_predict_warns_about_seen_subjects_and_clips_spelt_another_way(tmp_path, capsys):
    """A subject of the training set written with other zero padding or case (the MEGC2019 table's smic/s01 against a
    prepared SMIC's smic/s1) is the same person: the warnings match ids by protocol.subject_key."""
    fit(toy_config("model.name=logreg"), tmp_path / "m.pt", progress=False)
    seen = make_toy_features(n_subjects_per_dataset=2)
    respelt = seen.samples.copy()
    respelt["subject"] = respelt["subject"].str.replace("/s0", "/S", regex=False)       # casme2/s01 -> casme2/S1
    table = write_feature_table(tmp_path, FeatureSet(respelt, seen.features), clip_suffix="_new")
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(table), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: 4 of these subjects (" in err and "not a subject-independent test" in err
    same = write_feature_table(tmp_path, FeatureSet(respelt, seen.features), name="same_clips.csv")
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(same), "--out", str(out)]) == 0
    assert f"warning: {len(respelt)} of these {len(respelt)} clips were in the training set" in capsys.readouterr().err

def test_predict_auto_normalizes_as_the_model_s_training_table(tmp_path):
    """--normalize auto: a model fitted on a table with data.normalize=minmax gets its scored maps min-max
    normalised too; auto is the default of predict_table and of the command."""
    train = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=2), name="train.csv", scale=2.0)
    fit(toy_config("model.name=logreg", "data.source=table", f"data.table={train}", "data.normalize=minmax"),
        tmp_path / "m.pt", progress=False)
    table = write_feature_table(tmp_path, make_toy_features(n_subjects_per_dataset=1, seed=5), labels="empty",
                                scale=0.5)
    auto, _, _ = predict_table([tmp_path / "m.pt"], table)
    minmax, _, _ = predict_table([tmp_path / "m.pt"], table, normalize="minmax")
    none, _, _ = predict_table([tmp_path / "m.pt"], table, normalize="none")
    np.testing.assert_allclose(auto[SCORES].to_numpy(), minmax[SCORES].to_numpy(), atol=1e-9)
    assert not np.allclose(auto[SCORES].to_numpy(), none[SCORES].to_numpy(), atol=1e-3)
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(table), "--out", str(out)]) == 0
    np.testing.assert_allclose(pd.read_csv(out)[SCORES].to_numpy(), minmax[SCORES].to_numpy(), atol=1e-6)


def test_predict_keeps_the_negative_class_label_and_warns_about_seen_subjects(tmp_path, capsys):
    """y_true 0 (negative) is a label, not unknown; new clips of training subjects are named as not a
    subject-independent test; maps of another size get a note naming both sizes; some labels: no metrics."""
    fit(toy_config("model.name=logreg"), tmp_path / "m.pt", progress=False)
    seen = make_toy_features(n_subjects_per_dataset=2)
    table = write_feature_table(tmp_path, seen, clip_suffix="_new")
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(table), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    p = pd.read_csv(out)
    assert p["y_true"].tolist() == seen.samples["label"].tolist() and (p["y_true"] == 0).any()
    assert "UF1" in captured.out and "clips were in the training set" not in captured.err
    assert "warning: 4 of these subjects (" in captured.err and "not a subject-independent test" in captured.err
    assert "note:" not in captured.err
    import torch
    big = FeatureSet(seen.samples, torch.nn.functional.interpolate(seen.features, size=42, mode="bilinear"))
    part = write_feature_table(tmp_path, big, name="big.csv")
    rows = pd.read_csv(part)
    rows.loc[1:, "label"] = ""
    rows.to_csv(part, index=False)
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--table", str(part), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "was trained on 28×28 maps, these are 42×42" in captured.err
    assert "1 of 36 clips have a label; metrics need all of them" in captured.out and "UF1" not in captured.out


def test_data_check_passes_its_options_and_writes_the_json_where_asked(tmp_path, monkeypatch):
    import json

    import cv2

    import icegan.data.check
    (tmp_path / "v" / "a").mkdir(parents=True)
    for n in range(1, 7):
        cv2.imwrite(str(tmp_path / "v" / "a" / f"img{n}.jpg"), np.full((16, 16), 100 + n, np.uint8))
    clips = tmp_path / "clips.csv"
    tmp_path.mkdir(exist_ok=True)
    clips.write_text("subject,clip,frames,onset,apex,label\np,a,v/a,1,3,positive\n")
    seen = []
    real = icegan.data.check.check_dataset

    def check_dataset(dataset, root, annotations=None, **kw):
        seen.append({"dataset": dataset, "root": root, "annotations": annotations, **kw})
        return real(dataset, root, None, **kw)
    monkeypatch.setattr(icegan.data.check, "check_dataset", check_dataset)
    js = tmp_path / "reports" / "new" / "r.json"
    assert main(["data", "check", "--dataset", "clips", "--root", str(clips), "--annotations", str(tmp_path / "s.xlsx"),
                 "--composite-only", "--no-read-images", "--workers", "3", "--json", str(js)]) == 0
    assert seen[-1] == {"dataset": "clips", "root": clips, "annotations": tmp_path / "s.xlsx", "composite_only": True,
                        "read_images": False, "workers": 3, "progress": True}
    assert json.loads(js.read_text())["frames_checked"] == 0
    assert main(["data", "check", "--dataset", "clips", "--root", str(clips), "--json", str(js)]) == 0
    assert seen[-1] == {"dataset": "clips", "root": clips, "annotations": None, "composite_only": False,
                        "read_images": True, "workers": 2, "progress": True}
    assert json.loads(js.read_text())["frames_checked"] == 6


def test_data_composite_writes_the_json_into_a_new_folder(shared_data, tmp_path, capsys):
    import json
    js = tmp_path / "counts" / "new" / "composite.json"
    assert main(["data", "composite", "--annotations-dir", str(shared_data / "annotations"), "--json", str(js)]) == 0
    assert json.loads(js.read_text())["casme2"]["clips"] == 145 and f"wrote {js}" in capsys.readouterr().out


def test_data_without_a_subcommand_is_a_usage_error(capsys):
    assert main(["data"]) == 2 and "composite" in capsys.readouterr().out


def test_prepare_applies_the_overrides(tmp_path, monkeypatch, capsys):
    import icegan.data.prepare
    seen = []

    def prepare_dataset(cfg):
        seen.append(cfg)
        raise FileNotFoundError("stopped here")
    monkeypatch.setattr(icegan.data.prepare, "prepare_dataset", prepare_dataset)
    config = Path(__file__).resolve().parents[1] / "configs" / "prepare_casme2.yaml"
    assert main(["prepare", "--config", str(config), "size=48", "workers=3"]) == 2
    assert (seen[0].size, seen[0].workers) == (48, 3)
    assert "icegan prepare: error: stopped here" in capsys.readouterr().err


def _tiny_generator(tmp_path: Path) -> Path:
    from icegan.gan.trainer import build_models, save_checkpoint
    cfg = tiny_gan_config(32)
    cfg.data.apex_neighbors = 0
    g, d = build_models(cfg)
    save_checkpoint(tmp_path / "last.pt", cfg, g, d, 0, [])
    return tmp_path / "last.pt"


def test_generate_seed_decides_the_faces(tmp_path):
    """Same --seed, same faces; another seed, other faces; -n 2 gives two different faces of one class."""
    import cv2
    ckpt = _tiny_generator(tmp_path)
    cv2.imwrite(str(tmp_path / "face.png"), np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8))
    faces = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert main(["generate", "--checkpoint", str(ckpt), "--onset", str(tmp_path / "face.png"), "--class",
                     "surprise", "-n", "2", "--seed", str(seed), "--out", str(tmp_path / run), "--device", "cpu"]) == 0
        faces[run] = [cv2.imread(str(tmp_path / run / f"face_surprise_0{j}.png"), cv2.IMREAD_UNCHANGED) for j in (0, 1)]
    assert all((x == y).all() for x, y in zip(faces["a"], faces["b"]))
    assert not (faces["a"][0] == faces["c"][0]).all() and not (faces["a"][0] == faces["a"][1]).all()


def test_generate_and_gan_eval_use_the_device_asked_for(tmp_path, monkeypatch):
    import flownet.devices
    import icegan.gan.evaluate
    import icegan.gan.synthesis
    asked = []
    monkeypatch.setattr(flownet.devices, "resolve_device", lambda name, key="--device": (asked.append(name), name)[1])

    def refuse(*a, **kw):
        raise ValueError("stopped here")
    monkeypatch.setattr(icegan.gan.synthesis, "load_generator", refuse)
    monkeypatch.setattr(icegan.gan.evaluate, "run_eval", refuse)
    assert main(["generate", "--checkpoint", "c.pt", "--onset", "f.png", "--class", "all", "--out", str(tmp_path),
                 "--device", "cuda:1"]) == 2
    assert main(["gan", "eval", "--checkpoint", "c.pt", "--device", "cuda:2"]) == 2
    assert asked == ["cuda:1", "cuda:2"]


def test_gan_eval_passes_its_options_and_writes_the_json_where_asked(tmp_path, monkeypatch, capsys):
    import json

    import icegan.gan.evaluate
    seen = []

    def run_eval(checkpoint, data, **kw):
        seen.append({"checkpoint": checkpoint, "data": data, **kw})
        return {"report": "r.md", "identity_rank1": 0.5}
    monkeypatch.setattr(icegan.gan.evaluate, "run_eval", run_eval)
    monkeypatch.setattr(icegan.gan.evaluate, "metrics_markdown", lambda metrics: "")
    js = tmp_path / "new" / "m.json"
    assert main(["gan", "eval", "--checkpoint", "c.pt", "--data", "faces", "--subjects", "sub01", "samm/006",
                 "--n-per-class", "3", "--seed", "5", "--out", str(tmp_path / "grids"), "--json", str(js),
                 "--device", "cpu", "--no-cross-dataset"]) == 0
    assert json.loads(js.read_text()) == {"report": "r.md", "identity_rank1": 0.5}
    import torch
    assert seen[-1] == {"checkpoint": "c.pt", "data": "faces", "subjects": ["sub01", "samm/006"], "n_per_class": 3,
                        "seed": 5, "out_dir": str(tmp_path / "grids"), "device": torch.device("cpu"),
                        "cross_dataset": False}
    assert main(["gan", "eval", "--checkpoint", "c.pt", "--device", "cpu"]) == 0
    assert seen[-1] == {"checkpoint": "c.pt", "data": "casme2", "subjects": None, "n_per_class": 2, "seed": 0,
                        "out_dir": None, "device": torch.device("cpu"), "cross_dataset": True}


def test_gan_train_fold_and_device_reach_the_config(capsys):
    import yaml
    config = Path(__file__).resolve().parents[1] / "configs" / "gan_casme2.yaml"
    assert main(["gan", "train", "--config", str(config), "--fold", "sub07", "--device", "cpu", "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"]["holdout_subjects"] == ["sub07"] and cfg["train"]["device"] == "cpu"
    assert main(["gan", "train", "--config", str(config), "--print-config"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["data"]["holdout_subjects"] == [] and cfg["train"]["device"] == "auto"


def test_generated_names_never_collide():
    from icegan.commands.gan import unique_names
    assert unique_names(["a", "a", "a-2", "a", "b"]) == ["a", "a-3", "a-2", "a-4", "b"]


class _ConstantFlow:
    """A flow estimator whose flow is (u, v) = (+3, -1) px everywhere (3 right, 1 up)."""

    def estimate(self, img1, img2):
        import torch
        flow = torch.zeros(img1.shape[0], 2, *img1.shape[-2:])
        flow[:, 0], flow[:, 1] = 3.0, -1.0
        return flow


def _pair(folder: Path, height: int, width: int) -> list[str]:
    import cv2
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (height, width), dtype=np.uint8))
    return [str(folder / "a.png"), str(folder / "b.png")]


def test_flow_run_options_reach_the_estimator_and_the_files(tmp_path, monkeypatch, capsys):
    """--weights, --precision, --tta and --input-size (a number) reach the estimator; the .flo holds its flow as
    (u, v) on the pair's H x W; the colour key is drawn at the flow's largest magnitude."""
    import flownet
    import flownet.io
    import flownet.resolution
    from flownet.io import read_flo
    asked, keys = [], []
    monkeypatch.setattr(flownet, "get_estimator", lambda model, **kw: (asked.append({"model": model, **kw}),
                                                                       _ConstantFlow())[1])
    monkeypatch.setattr(flownet.resolution, "at_input_size",
                        lambda est, size, shape: (asked.append({"input_size": size, "shape": shape}), est)[1])
    monkeypatch.setattr(flownet.io, "save_flow_key", lambda path, max_flow: keys.append((Path(path).name, max_flow)))
    assert main(["flow", "run", *_pair(tmp_path, 16, 24), "--out", str(tmp_path / "f.png"), "--flo",
                 str(tmp_path / "f.flo"), "--model", "srflownet", "--weights", "w.pt", "--precision", "bf16",
                 "--tta", "hflip", "--input-size", "32", "--device", "cpu", "--key"]) == 0
    import torch
    assert asked == [{"model": "srflownet", "weights": "w.pt", "device": torch.device("cpu"), "precision": "bf16",
                      "tta": "hflip"},
                     {"input_size": 32, "shape": (16, 24)}]
    u, v = read_flo(tmp_path / "f.flo")[0].transpose(2, 0, 1)
    assert u.shape == (16, 24) and (u == 3).all() and (v == -1).all()
    assert keys == [("f_key.png", pytest.approx(np.hypot(3, 1)))]
    assert (tmp_path / "f.png").is_file()


def test_flow_run_needs_eight_pixels_on_each_side(tmp_path, capsys):
    assert main(["flow", "run", *_pair(tmp_path, 7, 40), "--out", str(tmp_path / "f.png"), "--model", "farneback"]) == 2
    assert "are 40x7 pixels; optical flow needs images of at least 8x8 pixels" in capsys.readouterr().err


def test_a_colour_image_with_two_equal_channels_is_not_grey():
    import torch

    from icegan.commands.flow import _is_grey
    img = torch.rand(1, 8, 8).repeat(3, 1, 1)
    assert _is_grey(img)
    img[2] += 0.1
    assert not _is_grey(img)
    img = torch.rand(1, 8, 8).repeat(3, 1, 1)
    img[0] += 0.1
    assert not _is_grey(img)


def test_flow_eval_passes_its_options(tmp_path, monkeypatch, capsys):
    import json

    import torch

    import flownet.evaluate
    seen, threads = [], []
    monkeypatch.setattr(flownet.evaluate, "evaluate", lambda model, **kw: (seen.append({"model": model, **kw}),
                                                                           {"mean": {"epe": 1.5}})[1])
    monkeypatch.setattr(flownet.evaluate, "format_table", lambda res: "table")
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    js = tmp_path / "new" / "r.json"
    assert main(["flow", "eval", "--model", "tvl1", "--data", "synthetic-generic", "--root", "R", "--weights", "W",
                 "--size", "64", "--n-pairs", "7", "--max-motion", "4.5", "--iters", "3", "--precision", "bf16",
                 "--compile", "--tta", "hflip", "--input-size", "96", "--device", "cpu", "--threads", "2", "--json",
                 str(js), "--module", "m.py:net"]) == 0
    assert seen == [{"model": "tvl1", "data": "synthetic-generic", "root": "R", "weights": "W",
                     "device": torch.device("cpu"), "size": 64, "n_pairs": 7, "iters": 3, "precision": "bf16",
                     "compile": True, "input_size": 96, "tta": "hflip", "max_motion": 4.5, "module": "m.py:net",
                     "module_key": "--module"}]
    assert threads == [2] and json.loads(js.read_text()) == {"mean": {"epe": 1.5}}


@pytest.mark.parametrize("mode", ["supervised", "selfsup"])
def test_flow_train_runs_the_mode_asked_for(monkeypatch, mode):
    import flownet.selfsup
    import flownet.train
    ran = []
    monkeypatch.setattr(flownet.train, "train", lambda cfg, progress: ran.append(("supervised", cfg, progress)))
    monkeypatch.setattr(flownet.selfsup, "train_selfsup", lambda cfg, progress: ran.append(("selfsup", cfg, progress)))
    config = {"supervised": "flow_srflownet_fdr.yaml", "selfsup": "flow_selfsup.yaml"}[mode]
    config = Path(__file__).resolve().parents[1] / "configs" / config
    assert main(["flow", "train", "--mode", mode, "--config", str(config), "--no-progress", "train.seed=3"]) == 0
    (which, cfg, progress), = ran
    assert which == mode and cfg.train.seed == 3 and progress is False


def _prepared_clips(monkeypatch, rows):
    """prepare_dataset replaced by a cache of the clips ``rows`` ((dataset, subject, class3); class3 -1: none)."""
    import icegan.data.prepare as prepare
    n = len(rows)
    manifest = pd.DataFrame({"index": range(n), "key": [f"{d}/{s}/c{i}" for i, (d, s, _) in enumerate(rows)],
                             "dataset": [d for d, _, _ in rows], "subject": [f"{d}/{s}" for d, s, _ in rows],
                             "clip": [f"c{i}" for i in range(n)], "class3": [c for _, _, c in rows]})
    rng = np.random.default_rng(0)
    frames = prepare.PreparedFrames(onset=rng.integers(0, 256, (n, 64, 64), dtype=np.uint8),
                                    apex=rng.integers(0, 256, (n, 64, 64), dtype=np.uint8),
                                    apex_neighbours=np.zeros((n, 4, 64, 64), np.uint8),
                                    landmarks=np.zeros((n, 6, 68, 2), np.float32), cache_dir=Path("."))
    fake = prepare.PreparedDataset(manifest=manifest, frames=frames, skipped=pd.DataFrame(), cache_dir=Path("."),
                                   settings={})
    monkeypatch.setattr(prepare, "prepare_dataset", lambda cfg: fake)


def _features(tmp_path: Path, *more: str) -> list[str]:
    clips = tmp_path / "clips.csv"
    tmp_path.mkdir(exist_ok=True)
    clips.write_text("subject,clip,frames,onset\np,a,v,1\n")            # the fake cache stands for its clips
    method = [] if any(m.startswith("flow.method=") for m in more) else ["flow.method=farneback"]   # a key once
    return ["features", "--config", "configs/casme2.yaml", "--clips", str(clips), "--out", str(tmp_path / "f"),
            "--no-progress", "device=cpu", *method, *more]


def test_features_suggests_a_loso_of_the_labelled_clips_alone(monkeypatch, tmp_path, capsys):
    """The dataset of the suggested SDE run and the 2-subject rule count the labelled clips, not the unlabelled."""
    _prepared_clips(monkeypatch, [("clips", "p0", 0), ("clips", "p1", 1), ("other", "p2", -1), ("other", "p3", -1)])
    assert main(_features(tmp_path, "recognizer.input_size=32")) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("run a recognizer on the labelled "))
    assert line.endswith(" data.size=32 protocol=SDE dataset=clips") and "4 clips: (3, 32, 32) u/v/strain" in printed
    _prepared_clips(monkeypatch, [("clips", "p0", 0), ("clips", "p0", 2), ("clips", "p1", -1)])
    assert main(_features(tmp_path / "b")) == 0
    printed = capsys.readouterr().out
    assert "the labelled ones are of one subject (clips/p0)" in printed and "run a recognizer" not in printed


def test_features_of_unlabelled_clips_only_suggest_predict(monkeypatch, tmp_path, capsys):
    _prepared_clips(monkeypatch, [("clips", "p0", -1), ("clips", "p1", -1)])
    assert main(_features(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "2 of the 2 clips with maps have no label: score them with icegan predict" in printed
    assert "run a recognizer" not in printed and "one subject" not in printed


def test_features_refuses_an_out_that_holds_features_in_one_line(monkeypatch, tmp_path, capsys):
    _prepared_clips(monkeypatch, [("clips", "p0", 0), ("clips", "p1", 1)])
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "features.csv").write_text("dataset\n")
    assert main(_features(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan features: error: ") and "features.csv" in err
    assert (tmp_path / "f" / "features.csv").read_text() == "dataset\n"


def test_features_clips_mode_and_print_config_see_the_clip_list(monkeypatch, tmp_path, capsys):
    """--clips-mode reaches the clip list (raw by default), and --print-config shows the config with it."""
    import icegan.pipeline
    modes = []
    real = icegan.pipeline.with_clip_list
    monkeypatch.setattr(icegan.pipeline, "with_clip_list",
                        lambda cfg, clips, mode: (modes.append(mode), real(cfg, clips, mode))[1])
    assert main(_features(tmp_path, "--print-config")) == 0
    assert main(_features(tmp_path, "--print-config", "--clips-mode", "cropped")) == 0
    assert modes == ["raw", "cropped"]
    printed = capsys.readouterr().out
    assert str(tmp_path / "clips.csv") in printed and "cropped" in printed
    assert not (tmp_path / "f").exists()


def test_train_runs_its_folds_here_one_core_each_by_default():
    import argparse

    from icegan.commands.train import add_arguments
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["gan.epochs=2"])
    assert (args.executor, args.workers, args.cpus_per_fold, args.ray_address) == ("sequential", 0, 1, None)
    assert (args.config, args.out, args.overrides) == (None, None, ["gan.epochs=2"])
