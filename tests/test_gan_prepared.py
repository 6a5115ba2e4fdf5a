"""`icegan gan train data.source=prepared`: ICE-GAN pairs from the faces preprocessing makes of a release in its
official layout, the same pairs as the manifest loader gives on the shared cropped CASME II copy."""
from __future__ import annotations

import numpy as np
import pytest

from icegan.config import ConfigError, load_config
from icegan.data.prepare import DatasetSpec, PrepareConfig
from icegan.gan.pairs import load_casme2_pairs, load_prepared_pairs
from icegan.gan.trainer import GanConfig


def _prepare(shared_data, tmp_path, **kw) -> PrepareConfig:
    spec = DatasetSpec(name="casme2", root=str(shared_data / "casme2"),
                       annotations=str(shared_data / "annotations" / "CASME2-coding-20140508.xlsx"), mode="cropped",
                       subjects=["sub01", "sub02"])
    return PrepareConfig(datasets=[spec], cache_root=str(tmp_path / "cache"), workers=1, progress=False, **kw)


def test_prepared_pairs_equal_the_manifest_pairs_of_the_same_clips(shared_data, tmp_path):
    """sub01 and sub02 of the cropped copy: the same clips, labels, onset and apex frames (apex and apex±1) and the
    same 32 px faces through preprocessing as through the manifest; clips whose apex is not on disk are skipped
    with the reason in both."""
    got = load_prepared_pairs(_prepare(shared_data, tmp_path), img_size=32, apex_neighbors=1, progress=False)
    ref = load_casme2_pairs(shared_data / "casme2", img_size=32, apex_neighbors=1, cache=False)
    ref = ref.by_subjects(["sub01", "sub02"])

    def pairs(ps):
        return {(c, int(o), int(a), int(y)): i for i, (c, o, a, y) in
                enumerate(zip(ps.clips, ps.onset_frames, ps.apex_frames, ps.labels))}
    a, b = pairs(got), pairs(ref)
    assert set(a) == set(b) and len(a) == len(got) == len(ref) > 20
    for key in a:
        np.testing.assert_array_equal(got.onset[a[key]], ref.onset[b[key]])
        np.testing.assert_array_equal(got.apex[a[key]], ref.apex[b[key]])
    assert set(got.subjects) == {"casme2/sub01", "casme2/sub02"}
    assert {k for k, _ in got.skipped} >= {"casme2/sub02/EP01_11f", "casme2/sub02/EP14_01"}
    assert all("not on disk" in why for _, why in got.skipped)
    # k = 0: one pair per clip, the annotated apex
    one = load_prepared_pairs(_prepare(shared_data, tmp_path), img_size=32, apex_neighbors=0, progress=False)
    assert len(one) == len(set(one.clips)) == len(set(got.clips))


def test_prepared_source_errors(shared_data, tmp_path):
    with pytest.raises(ValueError, match=r"apex_neighbors must lie in 0..2"):
        load_prepared_pairs(_prepare(shared_data, tmp_path), apex_neighbors=3)
    with pytest.raises(ValueError, match=r"data.prepare.neighbours=true"):
        load_prepared_pairs(_prepare(shared_data, tmp_path, neighbours=False), apex_neighbors=1)
    with pytest.raises(ConfigError, match=r"data.source=prepared needs data.prepare.datasets"):
        load_config(GanConfig, None, ["data.source=prepared"])
    with pytest.raises(FileNotFoundError, match=r"manifest.csv.*data.source=prepared"):
        load_casme2_pairs(tmp_path, cache=False)


def test_cli_gan_train_on_a_prepared_release(shared_data, tmp_path):
    """`icegan gan train data.source=prepared` trains on the faces preprocessing makes of a release in its official
    layout (here the cropped CASME II copy, through its coding sheet), and the checkpoint records that source."""
    import json

    from icegan.cli import main
    from icegan.gan.trainer import load_checkpoint
    sheet = shared_data / "annotations" / "CASME2-coding-20140508.xlsx"
    copy = tmp_path / "my_casme2"                      # a user's copy: sub02 holds its surprise clips only
    for sub in ("sub01", "sub04"):
        (copy / sub).parent.mkdir(parents=True, exist_ok=True)
        (copy / sub).symlink_to(shared_data / "casme2" / sub)
    for clip in ("EP11_01", "EP13_04"):
        (copy / "sub02").mkdir(parents=True, exist_ok=True)
        (copy / "sub02" / clip).symlink_to(shared_data / "casme2" / "sub02" / clip)
    rc = main(["gan", "train", "--config", "configs/gan_casme2_cpu.yaml", "--fold", "sub02", "name=t",
               f"out_dir={tmp_path}", "data.source=prepared",
               f"data.prepare.datasets=[{{name: casme2, root: {copy}, annotations: {sheet}, "
               f"mode: cropped, subjects: [sub01, sub02, sub04]}}]", f"data.prepare.cache_root={tmp_path / 'cache'}",
               "data.prepare.workers=1", "data.img_size=32", "data.apex_neighbors=0", "model.g_base_channels=8",
               "model.g_max_channels=16", "model.d_base_channels=8", "train.epochs=1", "train.batch_size=4",
               "train.progress=false", "train.max_minutes=null"])
    assert rc == 0
    split = json.loads((tmp_path / "t" / "split.json").read_text())
    assert split["holdout_subjects"] == ["sub02"] and split["train_subjects"] == ["casme2/sub01", "casme2/sub04"]
    _, _, cfg, _ = load_checkpoint(tmp_path / "t" / "checkpoints" / "last.pt")
    assert cfg.data.source == "prepared" and cfg.data.prepare.datasets[0].subjects == ["sub01", "sub02", "sub04"]
    # gan eval on its own data: the held-out subject's prepared faces, the recognizer on its training subjects'
    rc = main(["gan", "eval", "--checkpoint", str(tmp_path / "t" / "checkpoints" / "last.pt"), "--data", "casme2",
               "--no-cross-dataset", "--n-per-class", "1", "--json", str(tmp_path / "eval.json")])
    assert rc == 0
    res = json.loads((tmp_path / "eval.json").read_text())
    ref = load_prepared_pairs(cfg.data.prepare, 32, 0, progress=False).by_subjects(["sub02"])
    assert res["eval_subjects"] == ["casme2/sub02"] and len(ref) == 2
    assert res["class_counts"] == {"negative": 0, "positive": 0, "surprise": 2}    # the copy's, not the shared one's
