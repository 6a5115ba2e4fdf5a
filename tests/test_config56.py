"""Config defects found by an audit: a suite run's seed/name override, a value cut at ' #', the run name, a config
of another command, zero-sized flow models, and a few messages and bounds."""
from pathlib import Path

import pytest

from icegan.config import ConfigError, apply_overrides, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def _suite_file(tmp_path: Path, override: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(f"name: s\nseeds: [0, 1]\nruns:\n  - label: a\n    config: {CONFIGS / 'features_ststnet.yaml'}\n"
                 f"    overrides: [{override}, model.epochs=1]\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("override", ["seed=7", "name=x", "seed =7"])
def test_a_suite_run_may_not_set_its_own_seed_or_name(tmp_path, override):
    """A run's overrides that set seed (or name) would replace the suite's seed={seed} for every seed (five seeds,
    five identical runs): refused at load, naming the file, the run and the key."""
    from icegan.suite import load_suite
    p = _suite_file(tmp_path, override)
    with pytest.raises(ConfigError) as exc:
        load_suite(p)
    msg = str(exc.value)
    key = override.split("=")[0].strip()
    assert str(p) in msg and "runs[0] ('a')" in msg and f"'{override}'" in msg and f"sets {key}" in msg, msg


def test_a_suite_run_with_other_overrides_still_loads(tmp_path):
    from icegan.suite import load_suite, plan_suite
    p = _suite_file(tmp_path, "model.lr=0.001")
    plan = plan_suite(load_suite(p), p, tmp_path / "out")
    assert [(r.seed, r.config.seed, r.config.name) for r in plan] == [(0, 0, "a_s0"), (1, 1, "a_s1")]


@pytest.mark.parametrize("raw", ["/tmp/exp #2", "casme2  #seed3", "[1, 2] #3"])
def test_a_value_cut_at_a_yaml_comment_is_refused(raw):
    """YAML reads ' #...' as a comment: 'out_dir=/tmp/exp #2' silently became /tmp/exp. Refused, saying to quote."""
    from icegan.commands.loso import LosoConfig
    with pytest.raises(ConfigError) as exc:
        apply_overrides(LosoConfig(), [f"data.root={raw}"])
    msg = str(exc.value)
    assert f"override 'data.root={raw}'" in msg and "comment" in msg and "quote" in msg, msg


def test_a_quoted_hash_and_a_hash_without_space_are_kept():
    from icegan.commands.loso import LosoConfig
    cfg = apply_overrides(LosoConfig(), ['data.root="/tmp/exp #2"', "name=run#2"])
    assert (cfg.data.root, cfg.name) == ("/tmp/exp #2", "run#2")
    assert apply_overrides(LosoConfig(), ["data.root='/a #b'"]).data.root == "/a #b"
    assert apply_overrides(LosoConfig(), ["model.epochs=3"]).model.epochs == 3


@pytest.mark.parametrize("name", ["", "  ", "/tmp/abs", "a/b", "a\\b", ".", "..", "~/x"])
def test_the_run_name_is_one_folder_name(name):
    """name is the run's folder under out_dir: empty wrote into out_dir itself, /abs or ~ left it."""
    from icegan.commands.loso import LosoConfig
    from icegan.pipeline import MainConfig
    for cls, path in ((LosoConfig, CONFIGS / "demo_features.yaml"), (MainConfig, CONFIGS / "demo.yaml")):
        with pytest.raises(ConfigError, match=r"name .*folder") as exc:
            load_config(cls, path, [f"name={name}"])
        assert "command line" in str(exc.value)
    assert load_config(LosoConfig, CONFIGS / "demo_features.yaml", ["name=run_2.b"]).name == "run_2.b"


@pytest.mark.parametrize("command, config, kind", [
    ("loso", "suite_hde.yaml", "icegan suite"), ("loso", "casme2.yaml", "train.py"),
    ("train", "features_ststnet.yaml", "icegan loso"), ("suite", "features_ststnet.yaml", "icegan loso"),
    ("suite", "demo.yaml", "train.py")])
def test_a_config_of_another_command_names_that_command(capsys, tmp_path, command, config, kind):
    from icegan.cli import main
    path = f"configs/{config}"
    argv = {"loso": ["loso", "--config", path, "--print-config"], "train": ["train", "--config", path, "--print-config"],
            "suite": ["suite", "--config", path, "--out", str(tmp_path / "o"), "--dry-run"]}[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown config key" in err and f"{path} is a config for `{kind}`" in err, err
    assert f"--config {path}" in err.split("is a config for")[1]


def test_an_override_error_on_the_right_kind_of_file_adds_no_hint(capsys):
    from icegan.cli import main
    assert main(["loso", "--config", "configs/features_ststnet.yaml", "seeds=[1]", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'seeds'" in err and "is a config for" not in err, err


@pytest.mark.parametrize("key", ["hidden", "corr_levels", "motion_channels", "flow_head_hidden", "mask_hidden", "iters",
                                 "motion_corr_channels", "motion_flow_channels", "ffn_expansion"])
def test_flow_model_sizes_must_be_positive(key):
    """model.hidden=0 and the like passed the config and failed inside torch: refused naming the key."""
    from flownet.models.srflownet import SRFlowNetConfig
    low = 3 if key == "motion_channels" else 1
    with pytest.raises(ValueError, match=rf"^model\.{key} must be >= {low}, got {low - 1}$"):
        SRFlowNetConfig(**{key: low - 1})
    assert getattr(SRFlowNetConfig(**{key: low}), key) == low
    assert SRFlowNetConfig(corr_radius=0).corr_radius == 0            # a 1x1 look-up is a model


def test_flow_train_config_names_the_zero_size_key():
    from flownet.train import FlowTrainConfig
    with pytest.raises(ConfigError, match=r"model\.hidden must be >= 1, got 0"):
        load_config(FlowTrainConfig, CONFIGS / "flow_srflownet_tvr.yaml", ["model.hidden=0"])


def test_config_docstring_examples_are_real_keys():
    import icegan.config as c
    from icegan.pipeline import MainConfig
    assert "data.roots" not in c.__doc__
    src = Path(c.__file__).read_text(encoding="utf-8")
    assert "data.roots" not in src
    for item in ("model.name=ststnet", "data.prepare.datasets.0.root=/data/CASME2"):
        assert item in c.__doc__
    load_config(MainConfig, CONFIGS / "casme2.yaml", ["data.prepare.datasets.0.root=/data/CASME2"])


def test_a_negative_list_index_is_said_to_be_refused():
    from icegan.pipeline import MainConfig
    with pytest.raises(ConfigError) as exc:
        load_config(MainConfig, CONFIGS / "casme2.yaml", ["data.prepare.datasets.-1.root=/x"])
    msg = str(exc.value)
    assert "datasets.0.-1" not in msg and "negative" in msg and "data.prepare.datasets.0.root=...'" in msg, msg


def test_an_item_of_a_null_list_says_it_is_null():
    from icegan.suite import SuiteConfig
    with pytest.raises(ConfigError) as exc:
        load_config(SuiteConfig, CONFIGS / "suite_hde.yaml", ["ensembles.0.weights.0=2"])
    msg = str(exc.value)
    assert "unknown" not in msg and "key 'ensembles.0.weights' in override 'ensembles.0.weights.0=2' is null" in msg
    assert "\"ensembles.0.weights=[...]\"" in msg, msg


@pytest.mark.parametrize("threads", [99999999999, 4097])
def test_threads_are_bounded(threads):
    from icegan.commands.loso import LosoConfig
    from icegan.pipeline import MainConfig
    for cls in (LosoConfig, MainConfig):
        with pytest.raises(ConfigError, match=rf"threads must be .*<= 4096.*got {threads}"):
            apply_overrides(cls(), [f"threads={threads}"])
        assert apply_overrides(cls(), ["threads=4096"]).threads == 4096
