"""Resume audit 46: the files written at the end of a run (provenance.json and skipped.csv of icegan features,
history.json of a GAN training, split.json of icegan gan train, metrics.json of the flow trainings) were written in
place, so a kill while writing left them cut short; now each appears whole or not at all
(:func:`flownet.io.write_whole`), and a damaged one left by an older version is named, with what to do, by whoever
reads it. Also: the fixed-name temporary of the GAN pairs cache of earlier versions is removed once stale, and a
LOSO resume names the clips repeated in a finished fold's predictions."""
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _flow_sizes import save_main_job_weights
from _kill_while_writing import kill_while_writing

TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    return save_main_job_weights(tmp_path_factory.mktemp("w") / "tiny.pt", iters=1)


def _no_file_like(folder: Path, name: str) -> bool:
    """Neither ``name`` nor a temporary of it (``name*``) is in ``folder``."""
    return not list(folder.glob(f"{name}*"))


# ------------------------------------------------------------------------------- icegan features: provenance.json

def test_a_kill_while_icegan_features_writes_provenance_json_leaves_no_cut_file(tmp_path, tiny_weights, monkeypatch):
    """provenance.json was written in place: a kill while writing it left it cut short (icegan fit and icegan
    predict then silently took the maps as of unknown making). Now it appears whole or not at all, and the rerun
    writes it."""
    from icegan.pipeline import export_features, load_main_config
    cfg = load_main_config(None, TINY + [f"flow.weights={tiny_weights}"])
    real_write = kill_while_writing(monkeypatch, "provenance.json")
    with pytest.raises(KeyboardInterrupt):
        export_features(cfg, tmp_path / "f", progress=False)
    assert _no_file_like(tmp_path / "f", "provenance.json")
    monkeypatch.setattr(Path, "write_text", real_write)
    export_features(cfg, tmp_path / "f", progress=False)
    assert json.loads((tmp_path / "f" / "provenance.json").read_text())["flow"]["method"] == cfg.flow.method


def _table_with_provenance(tmp_path: Path, text: str, label: str = "1") -> Path:
    """A one-clip feature table (a random (3, 8, 8) map, MEGC2019 label ``label``) with ``text`` as provenance.json
    beside it."""
    (tmp_path / "maps").mkdir()
    np.save(tmp_path / "maps" / "a.npy", np.random.default_rng(0).random((3, 8, 8)).astype(np.float32))
    csv = tmp_path / "features.csv"
    pd.DataFrame([{"dataset": "casme2", "subject": "s1", "clip": "a", "label": label, "path": "maps/a.npy"}]).to_csv(
        csv, index=False)
    (tmp_path / "provenance.json").write_text(text)
    return csv


WHOLE = json.dumps({"flow": {"method": "tvl1"}, "weights": {}, "size": 8, "labels": "megc2019"}, indent=2)


@pytest.mark.parametrize("text, why", [
    (WHOLE[:len(WHOLE) // 2], r"JSONDecodeError: "),                    # cut short by a kill
    ("[1, 2]", r"not a JSON object but a list"),
    (json.dumps({"flow": "tvl1", "labels": 3}), r"'flow' is not an object, 'labels' is not a label set's name"),
], ids=["cut short", "a list", "wrong shape"])
def test_a_damaged_provenance_json_is_named_with_what_to_do(tmp_path, caplog, text, why):
    """A provenance.json cut short (or not an object, or of the wrong shape) was passed over in silence by icegan
    fit / predict (maps_provenance: the maps taken as of unknown making) and by the label-set check of a table's
    class ids, or died in an AttributeError ('list' object has no attribute 'get'). Now each reader warns naming the
    file, the cause, what goes unchecked and what to do; a whole file is read as before."""
    from icegan.data.feature_table import read_feature_table
    from icegan.saved_recognizer import maps_provenance
    csv = _table_with_provenance(tmp_path, text)
    prov, fix = tmp_path / "provenance.json", f"icegan features --config {tmp_path / 'config.yaml'} --out NEW_FOLDER"
    with caplog.at_level(logging.WARNING):
        assert maps_provenance("table", csv) == {}
    assert f"{prov} cannot be read (" in caplog.text and fix in caplog.text and "how the maps were made" in caplog.text
    assert re.search(why, caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert len(read_feature_table(csv)) == 1
    assert f"{prov} cannot be read (" in caplog.text and "the label set of its class ids is not checked" in caplog.text
    assert fix in caplog.text
    caplog.clear()
    prov.write_text(WHOLE.replace("megc2019", "casme2_5"))           # whole: read as before, without a warning
    with caplog.at_level(logging.WARNING):
        assert maps_provenance("table", csv) == {"flow": {"method": "tvl1"}, "weights": {}, "size": 8}
        with pytest.raises(ValueError, match=r"class ids of the label set casme2_5"):
            read_feature_table(csv)
    assert caplog.text == ""


# ---------------------------------------------------------------------------------------------------- skipped.csv

def test_a_kill_while_writing_skipped_csv_keeps_the_earlier_list(tmp_path, monkeypatch):
    """write_skipped removed the earlier skipped.csv, then wrote the new one in place: a kill while writing left a
    list cut short (read as fewer skipped clips, or a header without a row). Now the earlier list stays whole."""
    from icegan.pipeline import write_skipped
    path = tmp_path / "skipped.csv"
    before = pd.DataFrame({"key": ["casme2/sub01/EP01"], "reason": ["no face found"]})
    write_skipped(path, before)
    real_to_csv = pd.DataFrame.to_csv

    def killed_half_way(self, target=None, *a, **k):
        real_to_csv(self.iloc[:len(self) // 2], target, *a, **k)
        raise KeyboardInterrupt
    monkeypatch.setattr(pd.DataFrame, "to_csv", killed_half_way)
    now = pd.DataFrame({"key": [f"casme2/sub0{i}/EP01" for i in range(4)], "reason": ["frames not on disk"] * 4})
    with pytest.raises(KeyboardInterrupt):
        write_skipped(path, now)
    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    pd.testing.assert_frame_equal(pd.read_csv(path), before)
    assert [p.name for p in tmp_path.iterdir()] == ["skipped.csv"]


@pytest.mark.parametrize("text", ["", "key,reas", "key,reason\ncasme2/sub01/EP01,no face\ncasme2/sub0"])
def test_icegan_features_names_a_cut_skipped_csv(tmp_path, monkeypatch, capsys, text):
    """icegan features reads skipped.csv back for its summary: one cut short died in pandas (EmptyDataError,
    KeyError 'key') or showed a clip without its reason. Now the summary warns naming the file and what to do."""
    import icegan.pipeline as pipeline
    from icegan.cli import main
    out = tmp_path / "f"

    def export(cfg, o, progress=True):      # what export_features leaves: the table and a cut skipped.csv
        out.mkdir()
        pd.DataFrame([{"dataset": "casme2", "subject": "s1", "clip": "a", "label": "1", "path": "maps/a.npy"},
                      {"dataset": "casme2", "subject": "s2", "clip": "b", "label": "2", "path": "maps/b.npy"}]).to_csv(
            out / "features.csv", index=False)
        (out / "skipped.csv").write_text(text)
        return out / "features.csv"
    monkeypatch.setattr(pipeline, "export_features", export)
    assert main(["features", "--out", str(out), "--no-progress", *TINY]) == 0
    captured = capsys.readouterr()
    assert f"warning: some clips could not be prepared and have no maps, but {out / 'skipped.csv'} cannot be read (" \
           in captured.err and "run icegan features again into a new --out to list them" in captured.err
    assert "2 clips: " in captured.out


# -------------------------------------------------------------------------- GAN: history.json and split.json

def test_a_kill_while_a_gan_training_writes_history_json_leaves_no_cut_file(tmp_path, monkeypatch):
    """history.json (the per-epoch losses of a GAN training) was written in place; now whole or not at all."""
    import torch
    from _gan_sizes import tiny_gan_config
    from icegan.gan.trainer import train_gan
    cfg = tiny_gan_config(32)
    cfg.train.epochs, cfg.train.batch_size, cfg.train.progress, cfg.train.hflip = 1, 4, False, False
    on = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    real_write = kill_while_writing(monkeypatch, "history.json")
    with pytest.raises(KeyboardInterrupt):
        train_gan(on, on.clone(), torch.arange(8) % 3, cfg, device="cpu", out_dir=tmp_path / "g")
    assert _no_file_like(tmp_path / "g", "history.json")
    monkeypatch.setattr(Path, "write_text", real_write)
    state = train_gan(on, on.clone(), torch.arange(8) % 3, cfg, device="cpu", out_dir=tmp_path / "g")
    assert json.loads((tmp_path / "g" / "history.json").read_text()) == state.history


def test_a_kill_while_icegan_gan_train_writes_split_json_leaves_no_cut_file(tmp_path, monkeypatch, shared_data):
    """split.json (the training subjects and skipped clips of icegan gan train) was written in place; now whole or
    not at all."""
    from icegan.cli import main
    monkeypatch.setenv("ICEGAN_DATA", str(tmp_path / "data"))
    kill_while_writing(monkeypatch, "split.json")
    args = ["gan", "train", "--config", "configs/gan_casme2_cpu.yaml", "--fold", "sub02", "name=t",
            f"out_dir={tmp_path}", f"data.root={shared_data / 'casme2'}", "data.img_size=32", "data.apex_neighbors=0",
            "train.epochs=1", "train.progress=false", "data.train_subjects=[sub01,sub04]"]
    assert main(args) == 130                            # icegan's answer to a Ctrl-C
    assert (tmp_path / "t" / "config.yaml").is_file() and _no_file_like(tmp_path / "t", "split.json")


# ------------------------------------------------------------------------------------ flow trainings: metrics.json

@pytest.mark.parametrize("trainer", ["flow", "decflow", "selfsup"])
def test_a_kill_while_a_flow_training_writes_metrics_json_leaves_no_cut_file(tmp_path, shared_data, monkeypatch,
                                                                             trainer):
    """metrics.json of icegan flow train (supervised, decflow, self-supervised) was written in place at the end of
    the run: a kill while writing it left the test metrics cut short. Now whole or not at all."""
    kill_while_writing(monkeypatch, "metrics.json")
    if trainer == "selfsup":
        from test_flow_selfsup import _loop_run
        with pytest.raises(KeyboardInterrupt):
            _loop_run(tmp_path, monkeypatch, "train.student_steps=0")
        run = tmp_path / "loop"
    else:
        from test_mutation_audit42 import _flow_run_config
        cfg = _flow_run_config(trainer, tmp_path, shared_data)
        if trainer == "flow":
            from flownet.train import train
        else:
            from flownet.models.decflow import train_decflow as train
        with pytest.raises(KeyboardInterrupt):
            train(cfg, progress=False)
        run = tmp_path / "r"
    assert (run / "weights.pt").is_file() and _no_file_like(run, "metrics.json")


# ------------------------------------------------------------------------------------------------- GAN pairs cache

def test_the_gan_pairs_caches_old_fixed_temporary_is_removed_once_stale(tmp_path, caplog):
    """Versions before the last wrote the GAN pairs cache through a fixed <stem>.tmp.npz: a kill's leftover of that
    name names no process, and nothing removed it. Now it goes, once over an hour old, when the cache is written and
    when it is read; a recent one (a run of an older version writing it now) stays."""
    from test_resume_audit45 import _casme2_like

    import icegan.gan.pairs as pairs
    root = _casme2_like(tmp_path / "casme2")
    cache_dir = tmp_path / "cache"
    pairs.load_casme2_pairs(root, img_size=16, cache_dir=cache_dir)
    (cache,) = cache_dir.glob("gan_pairs_*.npz")

    def leftovers() -> tuple[Path, Path]:
        old, other = cache_dir / f"{cache.stem}.tmp.npz", cache_dir / f"x{cache.stem}.tmp.npz"
        for p in (old, other):
            p.write_bytes(b"PK\x03\x04 half a cache")
            os.utime(p, (time.time() - 7200,) * 2)
        return old, other
    cache.unlink()
    old, other = leftovers()
    with caplog.at_level(logging.INFO, logger="flownet.io"):
        pairs.load_casme2_pairs(root, img_size=16, cache_dir=cache_dir)                 # written
    assert cache.is_file() and not old.exists() and other.exists()
    assert f"removed {old}, left by a process stopped while it wrote {cache}" in caplog.text
    old, _ = leftovers()
    read = pairs.load_casme2_pairs(root, img_size=16, cache_dir=cache_dir)              # read
    assert not old.exists() and read.clips == ["sub01/EP01"]
    old.write_bytes(b"PK\x03\x04 being written")
    pairs.load_casme2_pairs(root, img_size=16, cache_dir=cache_dir)
    assert old.exists()


# ------------------------------------------------------------------------------------ LOSO resume: repeated clips

def test_a_resume_names_the_clips_repeated_in_a_finished_folds_predictions(tmp_path, capsys):
    """A finished fold whose rows in predictions.csv repeat a clip (two runs appending to one --out) was scored again
    without a word. Now the resume says which file, fold and subject/clip keys, and the result is the run's."""
    from test_resume_audit44 import _one_hot_folds

    from icegan.data.toy_features import make_toy_features
    from icegan.protocol import run_loso
    toy = make_toy_features(n_subjects_per_dataset=2, clips_per_class=2)
    cfg = {"name": "r", "model": {"name": "one_hot"}}
    out = tmp_path / "r"
    ref = run_loso(toy.samples, _one_hot_folds([]), out, config=cfg, progress=False)
    pred_csv = out / "predictions.csv"
    rows = pd.read_csv(pred_csv, dtype=str, keep_default_na=False)
    fold = rows["subject"].iloc[0]
    twice = rows[rows["subject"] == fold].iloc[[0, 1]]
    with open(pred_csv, "a") as fh:
        twice.to_csv(fh, index=False, header=False)
    capsys.readouterr()
    calls = []
    assert run_loso(toy.samples, _one_hot_folds(calls), out, config=cfg, progress=False) == ref and len(calls) == 1
    keys = ", ".join(f"{s}/{c} (2 rows)" for s, c in zip(twice["subject"], twice["clip"]))
    assert f"warning: {pred_csv}: the rows of fold '{fold}' repeat 2 clip(s): {keys} (was this --out run by two " \
           "processes at once?); the fold is scored again" in capsys.readouterr().err
