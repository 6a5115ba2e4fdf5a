"""Config checks of review 60: YAML 1.1 words as text values, a key repeated on one command line (and the suite's
layering of its overrides over a run's own), the list-item hint for train.py's data.root, settings the chosen data
source never reads, the prepare settings recorded as used, and resume of `icegan gan train` with other precision."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from icegan.commands.loso import LosoConfig
from icegan.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo_features.yaml"
QUOTE_NOTE = "(YAML reads the value written as yes/no, on/off or true/false as {}, not as text: quote it"


@pytest.mark.parametrize("override, key, word", [("name=on", "name", True),
                                                 ("data.datasets=[no, casme2]", "data.datasets[0]", False)])
def test_yaml_word_as_text_value_says_yaml_read_a_boolean_and_to_quote_it(override, key, word):
    with pytest.raises(ConfigError) as err:
        load_config(LosoConfig, DEMO, [override])
    msg = str(err.value)
    assert f"config key '{key}' (in command line): expected a string, got {word!r} " in msg
    assert QUOTE_NOTE.format(word) in msg and """'"on"' on a command line""" in msg


def test_quoted_yaml_word_is_text():
    assert load_config(LosoConfig, DEMO, ['name="on"', 'data.datasets=["no", casme2]']).data.datasets == [
        "no", "casme2"]


def test_key_repeated_on_one_command_line_is_refused_naming_both(capsys):
    from icegan.cli import main
    with pytest.raises(SystemExit) as stop:                 # the command's usage line, then the error
        main(["loso", "--config", str(DEMO), "--print-config", "model.epochs=3", "model.epochs=4"])
    assert stop.value.code == 2 and capsys.readouterr().err.splitlines()[-1] == (
        "icegan loso: error: config key 'model.epochs' is set twice on one command line ('model.epochs=3' and "
        "'model.epochs=4'): give it once")
    # code layering overrides over its own defaults keeps the last, as before
    assert load_config(LosoConfig, DEMO, ["model.epochs=3", "model.epochs=4"]).model.epochs == 4
    # a section's mapping and another key of it are two keys (the same key both ways: tests/test_cfgkeys64.py)
    assert main(["loso", "--config", str(DEMO), "--print-config", "model={epochs: 3}", "model.lr=0.1"]) == 0
    out = capsys.readouterr().out
    assert "  epochs: 3\n" in out and "  lr: 0.1\n" in out


def test_suite_override_replaces_the_runs_own_and_the_planned_command_sets_the_key_once(tmp_path):
    from icegan.suite import load_suite, plan_suite
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\nseeds: [0]\nruns:\n  - label: a\n    config: {DEMO}\n"
                     f"    overrides: [max_folds=1, model.epochs=1, threads=1]\n", encoding="utf-8")
    plan = plan_suite(load_suite(suite), suite, tmp_path / "out", ["model.epochs=2"])
    assert plan[0].config.model.epochs == 2 and plan[0].config.max_folds == 1
    words = shlex.split(plan[0].command)
    assert "model.epochs=2" in words and "model.epochs=1" not in words and "max_folds=1" in words


def test_train_py_data_root_hints_the_root_of_a_prepare_dataset():
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match=r"unknown config key 'data.root' in override 'data.root=/x' \(did you "
                                          r"mean 'data.prepare.datasets.N.root'\?\)"):
        load_main_config(None, ["data.root=/x"])


@pytest.mark.parametrize("key, before, after", [("amp", False, True), ("amp_dtype", "auto", "bf16"),
                                                ("num_threads", 1, 2)])
def test_gan_train_resume_with_other_precision_or_threads_is_refused_naming_both_values(tmp_path, key, before,
                                                                                        after):
    """A resume of `icegan gan train` (check_resumable) with another train.amp or train.amp_dtype that changes the
    precision trained in (here float32, then bfloat16 autocast on the CPU), or another train.num_threads, is refused:
    the epochs still to train would run otherwise and config.yaml claim the new value for all. (One that changes no
    precision, train.amp=false on a CPU, resumes: tests/test_precision62.py.)"""
    import dataclasses

    import torch

    from _gan_sizes import tiny_gan_config
    from icegan.gan.trainer import GanCheckpointError, check_resumable, train_gan
    torch.manual_seed(0)
    on, y = torch.rand(4, 1, 32, 32) * 2 - 1, torch.arange(4) % 3
    cfg = tiny_gan_config()
    t = cfg.train
    t.progress, t.batch_size, t.epochs, t.amp, t.amp_dtype, t.num_threads = False, 4, 1, True, "bf16", 1
    setattr(t, key, before)
    threads = torch.get_num_threads()
    try:
        train_gan(on, on.clone(), y, cfg, device="cpu", out_dir=tmp_path)
    finally:
        torch.set_num_threads(threads)
    again = dataclasses.replace(cfg, train=dataclasses.replace(t, epochs=2, **{key: after}))
    match = (rf"last.pt was trained with other settings than these \(train.{key}: {before!r} there, {after!r} now\); "
             rf"resuming would train one GAN with both" if key == "num_threads" else
             r"last.pt was trained in float32 \(no autocast\), and this run would train in bfloat16 autocast \(on cpu, "
             r"with train.amp=True, train.amp_dtype=bf16\); resuming would train one GAN in both")
    with pytest.raises(GanCheckpointError, match=match):
        check_resumable(tmp_path, again, on, on.clone(), y)
    assert check_resumable(tmp_path, dataclasses.replace(cfg, train=dataclasses.replace(t, epochs=2)), on,
                           on.clone(), y) is not None


def test_loso_refuses_data_root_with_the_toy_source_and_toy_subjects_with_megc2019_htnet():
    with pytest.raises(ConfigError, match=r"data.root is the megc2019_htnet folder, not read with data.source=toy "
                                          r"\(its maps are made in memory\): leave data.root out"):
        load_config(LosoConfig, DEMO, ["data.root=/nonexistent"])
    with pytest.raises(ConfigError, match=r"data.toy_subjects is read only with data.source=toy, not "
                                          r"'megc2019_htnet': leave it out"):
        load_config(LosoConfig, ROOT / "configs" / "features_ststnet.yaml", ["data.toy_subjects=9"])
    assert load_config(LosoConfig, DEMO, ["data.toy_subjects=9"]).data.toy_subjects == 9


def test_main_job_on_synthetic_clips_refuses_the_prepare_settings_it_never_reads(tmp_path):
    """A data.prepare key given on the command line (at any value, even over a run's record) or written by hand in a
    file (not a whole recorded section) at a non-default value is refused; a synthetic run's config.yaml, which
    records the section at its time's defaults (apex_spotting: farneback before 9e52833), loads."""
    from icegan.config import config_yaml
    from icegan.pipeline import load_main_config
    for over, key in (("data.prepare.size=32", "size"), ("data.prepare.datasets=[{name: samm, root: /nowhere}]",
                                                         "datasets"),
                      ("data.prepare={workers: 2}", "workers"), ("data.prepare.size=128", "size")):
        with pytest.raises(ConfigError, match=rf"^data.prepare.{key} \(given as an override\) is not read: "
                                              r"data.source=synthetic makes its clips in memory"):
            load_main_config(None, [over])
    old = tmp_path / "config.yaml"          # an old synthetic run's config.yaml: its time's defaults
    old.write_text(config_yaml(load_main_config(None)).replace("apex_spotting: dis", "apex_spotting: farneback"),
                   encoding="utf-8")
    assert "apex_spotting: farneback" in old.read_text()
    assert load_main_config(old).data.prepare.apex_spotting == "farneback"
    with pytest.raises(ConfigError, match=r"^data.prepare.workers \(given as an override\) is not read"):
        load_main_config(old, ["data.prepare.workers=3"])
    hand = tmp_path / "hand.yaml"           # a section written by hand, not a run's whole record
    hand.write_text("data:\n  source: synthetic\n  prepare:\n    apex_spotting: farneback\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^data.prepare.apex_spotting \(in {hand}\) is not read: "
                                          r"data.source=synthetic makes its clips in memory"):
        load_main_config(hand)


def test_main_job_records_the_prepare_size_and_color_used_and_resumes_a_run_that_recorded_the_defaults(tmp_path):
    import yaml

    from icegan.config import config_yaml, to_dict
    from icegan.pipeline import load_main_config
    from icegan.protocol import _config_conflict
    cfg = load_main_config(ROOT / "configs" / "casme2.yaml")
    saved = yaml.safe_load(config_yaml(cfg))
    assert cfg.data.img_size == 64 and saved["data"]["prepare"]["size"] == 64
    assert saved["data"]["prepare"]["color"] == "gray"
    old = tmp_path / "config.yaml"                  # the record of a run made before: the section's default 128
    saved["data"]["prepare"]["size"] = 128
    old.write_text(yaml.safe_dump(saved, sort_keys=False), encoding="utf-8")
    assert load_main_config(old).data.prepare.size == 64          # reproducing it from its config.yaml loads
    assert _config_conflict(tmp_path, old, to_dict(cfg)) == ""     # and resuming it is the same run
    other = to_dict(load_main_config(ROOT / "configs" / "casme2.yaml", ["data.img_size=32"]))
    assert "data.img_size: 64 there, 32 now" in _config_conflict(tmp_path, old, other)
