"""What a new user's walkthrough of the README found."""

# --- h52i: the misspelt nested key's suggestion, and `icegan data check`'s first line for a clip list ---------------

import cv2
import numpy as np
import pytest

from icegan.commands.loso import LosoConfig
from icegan.config import ConfigError, apply_overrides, load_config
from icegan.data.check import check_dataset
from icegan.pipeline import MainConfig


def test_a_misspelt_nested_override_suggests_the_dotted_key():
    """``model.epoch=1`` names ``model.epochs``, the key as it is typed on the command line (not ``epochs``)."""
    with pytest.raises(ConfigError) as err:
        apply_overrides(LosoConfig(), ["model.epoch=1"])
    assert ("unknown config key 'model.epoch' in override 'model.epoch=1' (did you mean 'model.epochs'?)"
            in str(err.value))
    with pytest.raises(ConfigError) as err:       # a misspelt section inside a section: its dotted name too
        apply_overrides(MainConfig(), ["data.prepar.datasets=[casme2]"])
    assert "unknown config key 'data.prepar' in override 'data.prepar.datasets=[casme2]' (did you mean " \
           "'data.prepare'?)" in str(err.value)


def test_a_misspelt_nested_key_in_a_file_suggests_the_dotted_key(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("model:\n  epoch: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(LosoConfig, cfg)
    assert f"unknown config key 'model.epoch' in {cfg} (did you mean 'model.epochs'?)" in str(err.value)


def test_a_misspelt_top_level_key_is_still_suggested_bare(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'sed' in override 'sed=1' \(did you mean 'seed'\?\)"):
        apply_overrides(LosoConfig(), ["sed=1"])
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("sed: 1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'sed' in .*mine\.yaml \(did you mean 'seed'\?\)"):
        load_config(LosoConfig, cfg)


def _clip_list(folder, name="my_clips.csv"):
    (folder / "v" / "a").mkdir(parents=True)
    for n in range(1, 7):
        cv2.imwrite(str(folder / "v" / "a" / f"img{n}.jpg"), np.full((16, 16), 100 + n, np.uint8))
    csv = folder / name
    csv.write_text("subject,clip,frames,onset,apex,label\np,a,v/a,1,3,positive\n")
    return csv


def test_data_check_names_a_clip_list_once(tmp_path, monkeypatch, capsys):
    """``icegan data check --dataset clips --root my_clips.csv``: the first line names the clip list (not ``clips at .
    (sheet my_clips.csv)``, a root folder and a sheet the user never gave)."""
    from icegan.cli import main
    _clip_list(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["data", "check", "--dataset", "clips", "--root", "my_clips.csv"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "clips: the clip list my_clips.csv", first
    rep = check_dataset("clips", "my_clips.csv", read_images=False)
    assert (rep.root, rep.sheet) == (".", "my_clips.csv")       # the JSON's fields are kept


def test_data_check_first_line_of_a_dataset_is_kept(shared_data):
    rep = check_dataset("casme2", shared_data / "casme2", composite_only=True, read_images=False)
    assert rep.text().splitlines()[0] == f"casme2 at {shared_data / 'casme2'} (sheet {rep.sheet})"

# --- end h52i ---------------------------------------------------------------------------------------------------------


# --- a shipped checkpoint the flow method does not have, in a main-job config (second walkthrough) ----------------

@pytest.mark.parametrize("method, weights, ships", [("liteflownet2", "shipped:generic", "shipped:facial, not"),
                                                    ("srflownet", "shipped:generc", "shipped:facial, shipped:generic")])
def test_a_shipped_checkpoint_the_method_lacks_is_a_config_error(method, weights, ships):
    """`train.py flow.method=liteflownet2 flow.weights=shipped:generic` ended in a ValueError traceback from the
    registry when the flow was built; it is a ConfigError naming flow.weights when the config loads."""
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match=rf"^flow.weights: {weights}: '{method}' ships the checkpoints {ships}"):
        load_main_config(None, [f"flow.method={method}", f"flow.weights={weights}"])
    assert load_main_config(None, ["flow.method=srflownet", "flow.weights=shipped:generic"]).flow.weights == \
        "shipped:generic"


@pytest.mark.parametrize("env, level", [({}, "INFO"), ({"RANK": "1"}, "INFO"),
                                        ({"WORLD_SIZE": "2", "RANK": "0"}, "INFO"),
                                        ({"WORLD_SIZE": "2", "RANK": "1"}, "ERROR"),
                                        ({"WORLD_SIZE": "2", "RANK": "x"}, "INFO")])
def test_under_torchrun_only_rank_0_logs(monkeypatch, env, level):
    """`torchrun --nproc_per_node 2 train.py` printed every INFO and WARNING line once per process."""
    import logging
    from icegan.pipeline import log_level
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert log_level() == getattr(logging, level)


def test_missing_flow_weights_name_the_config_key_too(tmp_path):
    """train.py with a flow.weights file that does not exist said 'pass --weights', an option of other commands."""
    from flownet.registry import load_srflownet
    with pytest.raises(FileNotFoundError, match=r"--weights of the flow commands; flow.weights in a main-job config"):
        load_srflownet(tmp_path / "none.pt")
