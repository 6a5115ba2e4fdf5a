"""Settings a command used to ignore or misread without a word (audit 58): DecFlow's unread data keys, a mapping
override of a section, --clips-mode without --clips, fit's max_folds / workers, gan train's --fold beside a
data.holdout_subjects override, the "config for another command" hint of gan train / prepare, a dotted key in a YAML
file, and a key set below a single value."""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _feature_tables import toy_config

from icegan.cli import main
from icegan.commands.loso import LosoConfig
from icegan.config import ConfigError, apply_overrides, load_config, parse_override, where_set
from icegan.pipeline import MainConfig

# ---------------------------------------------------------------------------------------------------------------------
# 1. icegan flow train-decflow: the data keys it does not read


def test_decflow_refuses_the_data_keys_it_does_not_read_before_any_run_folder(tmp_path, capsys, monkeypatch):
    """data.hflip, photometric, extra_faces, generic_fraction, n_val_subjects, frames_per_clip were accepted and
    recorded in the run's config.yaml, though the DecFlow pairs never used them."""
    import flownet.models.decflow as decflow

    def trained(*a, **k):
        raise AssertionError("train_decflow was called")
    monkeypatch.setattr(decflow, "train_decflow", trained)
    with pytest.raises(ConfigError, match=r"data\.hflip=true: icegan flow train-decflow does not read this key"):
        load_config(decflow.DecFlowTrainConfig, "configs/flow_decflow.yaml", ["data.hflip=true"])
    rc = main(["flow", "train-decflow", "--config", "configs/flow_decflow.yaml", f"out_dir={tmp_path}", "name=dec",
               "data.hflip=true", "data.photometric=0.5", "data.extra_faces=true", "data.generic_fraction=0.5",
               "data.n_val_subjects=3", "data.frames_per_clip=2"])
    err = capsys.readouterr().err
    assert rc == 2, err
    for key in ("data.hflip=true", "data.photometric=0.5", "data.extra_faces=true", "data.generic_fraction=0.5",
                "data.n_val_subjects=3", "data.frames_per_clip=2"):
        assert key in err, (key, err)
    assert "does not read" in err and "data.size" in err
    assert not (tmp_path / "dec").exists()


def test_decflow_loads_its_shipped_config_and_the_defaults_of_the_unread_keys():
    from flownet.models.decflow import DecFlowTrainConfig
    cfg = load_config(DecFlowTrainConfig, "configs/flow_decflow.yaml")
    assert cfg.data.n_test == 32
    # a run's config.yaml records every data key at its default: it loads again
    again = load_config(DecFlowTrainConfig, None, ["data.hflip=false", "data.photometric=0", "data.n_val=64"])
    assert again.data.hflip is False


def test_decflow_data_keys_are_the_ones_train_decflow_reads():
    """The refusal lists every FlowDataConfig key but DECFLOW_DATA_KEYS: those must be what train_decflow reads."""
    from flownet.models.decflow import DECFLOW_DATA_KEYS, train_decflow
    read = set(re.findall(r"\bd\.(\w+)", inspect.getsource(train_decflow)))
    assert read == set(DECFLOW_DATA_KEYS)


# ---------------------------------------------------------------------------------------------------------------------
# 2. a mapping override of a section is merged into it


def test_a_mapping_override_of_a_section_keeps_its_other_keys():
    """model={forest_trees: 50} on features_randomforest.yaml turned model.name back to the default ststnet."""
    cfg = load_config(LosoConfig, "configs/features_randomforest.yaml", ["model={forest_trees: 50}"])
    assert cfg.model.forest_trees == 50
    assert cfg.model.name == "random_forest"
    # nested sections are merged too; the file's other keys stay
    main_cfg = load_config(MainConfig, "configs/casme2.yaml", ["data={prepare: {margin: 0.3}}"])
    file_cfg = load_config(MainConfig, "configs/casme2.yaml")
    assert main_cfg.data.prepare.margin == 0.3 != file_cfg.data.prepare.margin
    assert main_cfg.data.prepare.datasets == file_cfg.data.prepare.datasets
    assert main_cfg.data.source == file_cfg.data.source


@dataclass
class _Sec:
    size: int = 1
    roots: dict[str, str] = field(default_factory=lambda: {"a": "/a"})


@dataclass
class _Top:
    data: _Sec = field(default_factory=_Sec)


def test_a_mapping_override_of_an_open_mapping_still_replaces_it():
    cfg = apply_overrides(_Top(), ["data={roots: {b: /b}}"])
    assert cfg.data.roots == {"b": "/b"} and cfg.data.size == 1
    assert apply_overrides(_Top(), ["data.roots={b: /b}"]).data.roots == {"b": "/b"}
    with pytest.raises(ConfigError, match=r"unknown config key 'data\.sise'"):
        apply_overrides(_Top(), ["data={sise: 2}"])


def test_where_set_keeps_the_file_for_a_key_a_section_mapping_leaves_out(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  prepare:\n    size: 32\n", encoding="utf-8")
    assert where_set("data.prepare.size", p, ["data.prepare={workers: 1}"]) == str(p)
    assert where_set("data.prepare.size", p, ["data={prepare: {size: 64}}"]) == "command line"


# ---------------------------------------------------------------------------------------------------------------------
# 3. icegan features --clips-mode without --clips


def test_features_refuses_clips_mode_without_clips(tmp_path, capsys):
    assert main(["features", "--clips-mode", "cropped", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("icegan features: error: --clips-mode cropped") and "--clips CSV" in err
    assert main(["features", "--clips-mode", "raw", "--out", str(tmp_path / "f")]) == 2
    assert "--clips-mode raw" in capsys.readouterr().err and not (tmp_path / "f").exists()


# ---------------------------------------------------------------------------------------------------------------------
# 4. icegan fit: max_folds, workers


@pytest.mark.parametrize("override, key", [("max_folds=1", "max_folds"), ("workers=3", "workers")])
def test_fit_refuses_max_folds_and_workers(tmp_path, override, key):
    from icegan.commands.predict import fit
    with pytest.raises(ValueError, match=f"icegan fit cannot apply {key} "):
        fit(toy_config(override), tmp_path / "m.pt", progress=False)
    assert not (tmp_path / "m.pt").exists()


def test_fit_accepts_the_workers_of_the_shipped_features_configs():
    """README runs icegan fit on configs/features_*.yaml, which write workers: 0 (one per CPU, for icegan loso)."""
    from icegan.commands.predict import _UNSUPPORTED
    on = {k: f for k, f, _ in _UNSUPPORTED}
    paths = sorted(Path("configs").glob("features_*.yaml")) + [Path("configs/demo_features.yaml")]
    assert len(paths) >= 5
    for p in paths:
        cfg = load_config(LosoConfig, p)
        assert not on["workers"](cfg) and not on["max_folds"](cfg), p


# ---------------------------------------------------------------------------------------------------------------------
# 5. icegan gan train --fold


def test_gan_fold_beside_a_holdout_override_is_refused(capsys):
    args = ["gan", "train", "--config", "configs/gan_casme2_cpu.yaml", "--print-config"]
    for given in ("data.holdout_subjects=[sub09]", "data={holdout_subjects: [sub09]}",
                  "data.holdout_subjects.0=sub09"):
        assert main(args + ["--fold", "sub01", given]) == 2, given
        err = capsys.readouterr().err
        assert "--fold sub01" in err and given in err and "give one of them" in err, err
    assert main(args + ["--fold", ""]) == 2
    assert "--fold needs a subject" in capsys.readouterr().err
    # --fold alone replaces the file's held-out subjects
    assert main(args + ["--fold", "sub01"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"holdout_subjects:\n  - sub01\n  train_subjects", printed), printed


def test_gan_train_help_says_fold_replaces_the_holdout_subjects(capsys):
    with pytest.raises(SystemExit):
        main(["gan", "train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "replaces the config's data.holdout_subjects" in out


# ---------------------------------------------------------------------------------------------------------------------
# 6. the config of another command; a dotted key in a file


@pytest.mark.parametrize("command", [["gan", "train", "--print-config"], ["prepare"]])
def test_gan_train_and_prepare_name_the_command_of_another_config(capsys, command):
    assert main([*command, "--config", "configs/casme2.yaml"]) == 2
    err = capsys.readouterr().err
    # the main job's command as an install has it (a wheel has no train.py; `icegan train` is the same job)
    assert "configs/casme2.yaml is a config for `train.py`: run icegan train --config configs/casme2.yaml" in err


def test_a_dotted_key_in_a_yaml_file_is_told_to_nest(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model.epochs: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.epochs' in .*c\.yaml \(a dotted key .*nest "
                                          r"it, model: \{epochs: 3\}\)"):
        load_config(LosoConfig, p)
    p.write_text("data.prepare.size: 64\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"nest it, data: \{prepare: \{size: 64\}\}"):
        load_config(MainConfig, p)


# ---------------------------------------------------------------------------------------------------------------------
# 7. a key below a single value; the key=value example


@pytest.mark.parametrize("item, key", [("model.epochs.x=1", "model.epochs"), ("seed.x=1", "seed")])
def test_a_key_below_a_single_value_names_it_as_a_single_value(item, key):
    with pytest.raises(ConfigError, match=rf"^config key '{re.escape(key)}' in override '{re.escape(item)}' is a "
                                          rf"single value, not a section: set it as '{re.escape(key)}=\.\.\.'$"):
        apply_overrides(LosoConfig(), [item])


def test_the_key_value_example_sets_keys_of_loso_and_train_py():
    with pytest.raises(ConfigError) as exc:
        parse_override("foo")
    example = re.search(r"\(e\.g\. (.*)\)", str(exc.value)).group(1).split(" or ")
    assert len(example) == 2
    for cls in (LosoConfig, MainConfig):
        apply_overrides(cls(), example)         # no unknown key
