"""Tests written by a mutation audit of this session's label-set, sheet and resume code: each one fails on a small
deliberate change of the code that the earlier tests let pass (named in the test's docstring)."""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
import torch

from icegan.labels import LABEL_SETS, manifest_labels


def test_manifest_labels_refuses_an_id_one_past_the_last_class():
    """A class5 id of 5 (K) is outside 0..4 and refused, as 7 is (mutation: ``out > n_classes`` let K through as a
    class id that indexes past the score columns)."""
    ls = LABEL_SETS["casme2_5"]
    manifest = pd.DataFrame({"class5": [0, 4, -1, ""], "dataset": ["casme2"] * 4})
    assert manifest_labels(manifest, ls).tolist() == [0, 4, -1, -1]
    with pytest.raises(ValueError, match=r"column 'class5': ids \[5\] outside 0\.\.4 of data\.labels=casme2_5"):
        manifest_labels(manifest.assign(class5=[0, 5, 1, 2]), ls)


def test_a_sheet_of_clip_names_of_neither_dataset_is_not_taken_for_the_other_sheet(tmp_path):
    """Only a sheet whose every clip is named as the other dataset's is refused as that dataset's sheet. Mutations
    killed: dropping the 'every clip is the other's' condition (a sheet of hand-made clip names was refused as the
    SAMM sheet) and 'any clip' for it (one SAMM-like name among others did the same)."""
    from icegan.data.sheets import SheetError, _refuse_the_other_sheet
    path = tmp_path / "my_casme2.csv"
    for clips in (["clip_a", "clip_b"], ["clip_a", "006_1_2"], ["EP02_01f", "006_1_2"]):
        rows = [SimpleNamespace(clip=c) for c in clips]
        assert _refuse_the_other_sheet(rows, "casme2", path) is rows
    with pytest.raises(SheetError, match="it looks like the SAMM sheet"):
        _refuse_the_other_sheet([SimpleNamespace(clip=c) for c in ("006_1_2", "007_3_1")], "casme2", path)
    with pytest.raises(SheetError, match="it looks like the CASME II sheet"):
        _refuse_the_other_sheet([SimpleNamespace(clip="EP02_01f")], "samm", path)


def test_feature_set_replace_resets_the_index_and_refuses_a_keep_of_row_numbers():
    """``keep`` must be N booleans: row numbers (0/1 ints) are refused, not used as indices (mutation: the dtype check
    dropped, so [0, 1, 0, 1, 1] took rows 0, 1, 0, 1, 1 of the maps and failed in pandas). The cut table's index is
    0..n-1, as the docstring says (mutation: reset_index dropped)."""
    from icegan.data.features import FeatureSet
    samples = pd.DataFrame({"dataset": "casme2", "subject": [f"casme2/sub{i:02d}" for i in range(5)],
                            "clip": [f"EP0{i}" for i in range(5)], "label": [0, 1, 2, 3, 4]})
    fs = FeatureSet(samples, torch.arange(5 * 3 * 4 * 4, dtype=torch.float32).reshape(5, 3, 4, 4), n_classes=5)
    cut = fs.replace(keep=np.array([False, True, False, True, True]))
    assert cut.samples.index.tolist() == [0, 1, 2]
    assert cut.samples["clip"].tolist() == ["EP01", "EP03", "EP04"]
    assert torch.equal(cut.features, fs.features[[1, 3, 4]])
    with pytest.raises(ValueError, match=r"keep must be 5 booleans \(one per row\), got torch\.int64 \(5,\)"):
        fs.replace(keep=np.array([0, 1, 0, 1, 1]))


@pytest.fixture(scope="module")
def five_run(tmp_path_factory):
    """A finished five-class (casme2_5) icegan loso run folder over 4 CASME II subjects."""
    from test_label_sets import _loso, write_five_class_table
    root = tmp_path_factory.mktemp("five")
    assert _loso(root / "run", write_five_class_table(root), "model.name=logreg") == 0
    return root / "run"


def _as_samm_5(run, dest):
    """A copy of the casme2_5 run ``run`` whose predictions' score columns are samm_5's (same ids 0..4), recorded as
    another seed (an entry's runs of one recipe and one seed are refused as one seed run twice)."""
    shutil.copytree(run, dest)
    config = yaml.safe_load((dest / "config.yaml").read_text())
    config["seed"] = int(config.get("seed", 0)) + 1
    (dest / "config.yaml").write_text(yaml.safe_dump(config))
    pred = pd.read_csv(dest / "predictions.csv")
    ren = dict(zip(LABEL_SETS["casme2_5"].score_columns, LABEL_SETS["samm_5"].score_columns))
    pred.rename(columns=ren).to_csv(dest / "predictions.csv", index=False)
    return dest


def test_compare_refuses_two_label_sets_of_five_classes_each(five_run, tmp_path):
    """casme2_5 and samm_5 runs both score 5 classes, but are not comparable (mutation: the label-set condition of
    bootstrap_compare dropped, so only the class count was checked and CASME II's and SAMM's five were compared)."""
    from icegan.significance import bootstrap_compare, load_run_set
    casme = load_run_set("casme", [five_run])
    samm = load_run_set("samm", [_as_samm_5(five_run, tmp_path / "samm")])
    assert (casme.label_set, samm.label_set) == ("casme2_5", "samm_5")
    with pytest.raises(ValueError, match=r"'samm' scores 5 classes \(samm_5\) and 'casme' 5 \(casme2_5, data.labels\)"
                                         r": runs of different label sets cannot be compared"):
        bootstrap_compare([casme, samm], resamples=100)


def test_an_entry_of_runs_of_two_label_sets_is_refused(five_run, tmp_path):
    """Two runs of one compare entry must score the same label set (mutation: the check dropped, so the entry's
    classes were the first run's)."""
    from icegan.significance import load_run_set
    samm = _as_samm_5(five_run, tmp_path / "samm")
    with pytest.raises(ValueError, match=r"entry 'mixed': its runs are of different label sets \(casme2_5, samm_5\)"):
        load_run_set("mixed", [five_run, samm])


def test_a_run_set_cut_to_one_dataset_keeps_its_label_set(five_run):
    """RunSet.restrict (a compare scoped per dataset) keeps the label set (mutation: dropped, so the CASME II part of a
    five-class entry was labelled megc2019 and its tables named no classes or the wrong ones)."""
    from icegan.significance import load_run_set
    part = load_run_set("five", [five_run]).restrict("casme2")
    assert part.label_set == "casme2_5"
    assert part.confusions.shape[-1] == 5


def test_read_npz_whole_names_a_cache_without_an_array_it_needs(tmp_path):
    """A cache written by another version, without one of the arrays asked for, is a ValueError naming the file, which
    the callers turn into 'computed again' (mutation: KeyError not caught, so such a cache was a KeyError traceback on
    every run). A whole cache reads back equal."""
    from flownet.io import read_npz_whole
    path = tmp_path / "cache.npz"
    np.savez(path, points=np.arange(6).reshape(3, 2))
    assert read_npz_whole(path, ("points",))["points"].tolist() == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError, match=rf"{path} cannot be read \(KeyError: .*sizes"):
        read_npz_whole(path, ("points", "sizes"))


def test_read_npz_whole_names_a_cache_whose_compressed_stream_is_damaged(tmp_path):
    """A compressed cache with damaged bytes inside its deflate stream raises zlib.error while read; that is a
    ValueError naming the file (mutation: zlib.error not caught, a traceback on every run)."""
    from flownet.io import read_npz_whole
    path = tmp_path / "cache.npz"
    np.savez_compressed(path, features=np.random.default_rng(0).random(5000))
    data = bytearray(path.read_bytes())
    data[200:400] = bytes(b ^ 0xFF for b in data[200:400])        # inside the one member's compressed bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path} cannot be read \((error|BadZipFile)"):
        read_npz_whole(path, ("features",))


@pytest.mark.parametrize("text", ["[3.5, 2.0]", '{"fold_seconds": [3.5]}', "null"])
def test_a_timing_json_of_valid_json_but_another_shape_is_started_again(tmp_path, text, caplog):
    """A timing.json that parses but is not ``{"fold_seconds": {subject: s}}`` is named and started again, as a cut
    one is (mutation: the shape check dropped, so a list there ended the resume in an AttributeError)."""
    from icegan.pipeline import _read_timing
    path = tmp_path / "timing.json"
    path.write_text(text)
    with caplog.at_level("WARNING"):
        assert _read_timing(path) is None
    assert f"{path} cannot be read" in caplog.text
    path.write_text('{"fold_seconds": {"sub01": 3.5}}')
    assert _read_timing(path) == {"fold_seconds": {"sub01": 3.5}}
    path.write_text('{"total_seconds": 1}')
    assert _read_timing(path) == {"total_seconds": 1, "fold_seconds": {}}


def _flow_run_with_config(tmp_path, text=None, drop=None):
    """A FlowTrainConfig run folder tmp_path/x whose config.yaml is ``text``, or that config's own YAML less the
    ``train`` key ``drop``."""
    import yaml
    from flownet.train import FlowTrainConfig, _to_dict
    cfg = FlowTrainConfig(name="x", out_dir=str(tmp_path))
    (tmp_path / "x").mkdir(parents=True)
    if text is None:
        saved = _to_dict(cfg)
        if drop:
            del saved["train"][drop]
        text = yaml.safe_dump(saved)
    (tmp_path / "x" / "config.yaml").write_text(text)
    return cfg


def test_flow_resume_check_takes_a_key_the_run_s_config_lacks_as_its_default(tmp_path):
    """A key added to icegan after the run began (absent from its config.yaml) counts as its default: a resume with
    the default goes on, one with another value is refused naming the default as the run's (mutation: the absent
    key counted as None, so every resume of an older run was refused)."""
    import dataclasses
    from flownet.train import refuse_other_settings
    cfg = _flow_run_with_config(tmp_path, drop="gamma")
    refuse_other_settings(cfg)
    other = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, gamma=0.5))
    with pytest.raises(ValueError, match=r"\(.*config.yaml: train.gamma: 0.8 there, 0.5 now\); resuming"):
        refuse_other_settings(other)


def test_flow_resume_check_passes_over_a_config_it_cannot_read_and_counts_the_keys_it_leaves_out(tmp_path, caplog):
    """A config.yaml that is no YAML mapping is named in a warning and the resume goes on (mutation: raised); more
    than four differing keys are named four and counted ('and 2 more'; mutation: the count dropped)."""
    import dataclasses
    from flownet.train import refuse_other_settings
    for i, text in enumerate(["train: [unclosed", "- a list\n"]):
        cfg = _flow_run_with_config(tmp_path / str(i), text=text)
        with caplog.at_level("WARNING"):
            refuse_other_settings(cfg)
        assert "config.yaml cannot be read" in caplog.text
    cfg = _flow_run_with_config(tmp_path / "six")
    t = dataclasses.replace(cfg.train, gamma=0.5, iters=2, batch_size=3, crop=16, regularizer="tvr", reg_weight=0.1)
    with pytest.raises(ValueError, match=r"train.iters: 6 there, 2 now and 2 more\); resuming"):
        refuse_other_settings(dataclasses.replace(cfg, train=t))


def test_gan_resume_check_takes_a_key_the_checkpoint_lacks_as_its_default(tmp_path):
    """A GAN checkpoint written before a setting existed (its recorded config lacks the key) resumes when the setting
    is at its default and is refused naming it otherwise (mutation: the absent-key exemption dropped, so every such
    checkpoint was refused); a key the checkpoint records but icegan no longer has is no difference either (mutation:
    it was counted)."""
    import dataclasses
    from icegan.config import to_dict
    from icegan.gan.trainer import GanCheckpointError, GanConfig, _refuse_other_settings
    cfg = GanConfig()
    saved = to_dict(cfg)
    del saved["loss"]["beta"]
    ckpt = tmp_path / "last.pt"
    _refuse_other_settings(ckpt, {"config": saved}, cfg)
    other = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, beta=0.01))
    with pytest.raises(GanCheckpointError, match=rf"{ckpt} was trained with other settings than these "
                                                 r"\(loss.beta: .* there, 0.01 now\)"):
        _refuse_other_settings(ckpt, {"config": saved}, other)
    saved["loss"]["beta"] = cfg.loss.beta
    saved["loss"]["a_setting_icegan_dropped"] = 1         # a key the current config lacks: not a difference
    _refuse_other_settings(ckpt, {"config": saved}, cfg)


def test_generate_class_option_takes_a_name_or_an_id_below_k_only():
    """``icegan generate --class`` of a five-class generator: a name in any case and spacing or an id 0..4; 5 is
    refused naming the classes (mutation: ``int(t) <= len(classes)`` let 5 through to the generator as a class it has
    no condition for)."""
    from icegan.commands.gan import _class_of
    five = LABEL_SETS["samm_5"].classes
    assert _class_of(" Anger ", five, "last.pt") == 0
    assert _class_of("4", five, "last.pt") == 4
    with pytest.raises(ValueError, match=r"unknown class '5' \(--class\): the generator of last.pt is conditioned on "
                                         r"the classes anger, contempt, happiness, surprise, other: use one of them, "
                                         r"0\.\.4 or 'all'"):
        _class_of("5", five, "last.pt")
