"""Audit 62 (flow weights files): each refused file says what it is and what to do — an SRFlowNet file or a training
checkpoint given to another backbone, a bare state dict, a backbone file named by its own backbone — the
missing-weights advice names a training command whose config validates, the training log says its test metrics
are pooled, and NaN/Inf weights are refused when read (naming the file), not later as the model's fault."""
import re
import shlex

import pytest
import torch

from flownet.models.liteflownet2 import LiteFlowNet2, LiteFlowNet2Config
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.registry import load_srflownet, load_weights, save_srflownet, save_weights
from _flow_sizes import MAIN_JOB_SRFLOWNET, TINY_SRFLOWNET

TINY_LFN2 = dict(netc_channels=(4, 4, 4, 4, 4, 4), last_level=6)


def _srflownet_file(path):
    torch.manual_seed(0)
    return save_srflownet(SRFlowNet(SRFlowNetConfig(**MAIN_JOB_SRFLOWNET, iters=2)), path)


def _lfn2_file(path):
    torch.manual_seed(0)
    return save_weights(LiteFlowNet2(LiteFlowNet2Config(**TINY_LFN2)), path)


def test_an_srflownet_file_given_to_another_backbone_names_the_model_that_loads_it(tmp_path):
    p = _srflownet_file(tmp_path / "s.pt")
    with pytest.raises(ValueError, match=re.escape(f"{p}: an SRFlowNet weights file, not liteflownet2: use --model "
                                                   f"srflownet (flow.method=srflownet)")):
        load_weights(p, "liteflownet2")


def test_a_training_checkpoint_given_to_another_backbone_names_its_run_weights(tmp_path):
    model = LiteFlowNet2(LiteFlowNet2Config(**TINY_LFN2))
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": model.state_dict(), "optimizer": {}, "step": 3}, run / "last.pt")
    with pytest.raises(ValueError) as info:
        load_weights(run / "last.pt", "liteflownet2")
    text = str(info.value)
    assert text.startswith(f"{run / 'last.pt'} is a training checkpoint (model, optimizer, step), not a "
                           f"liteflownet2 weights file: use {run / 'weights.pt'} (the weights its run writes when it "
                           f"ends) instead"), text
    assert "no 'format' key" not in text


def test_a_bare_srflownet_state_dict_is_named_as_one_with_the_save_function(tmp_path):
    torch.save(SRFlowNet(SRFlowNetConfig(**MAIN_JOB_SRFLOWNET)).state_dict(), tmp_path / "plain.pt")
    with pytest.raises(ValueError) as info:
        load_srflownet(tmp_path / "plain.pt")
    text = str(info.value)
    assert "format None" not in text
    assert "a bare state dict" in text and "'srflownet-v1'" in text and "save_srflownet" in text, text


def test_a_backbone_file_given_as_srflownet_names_its_own_backbone(tmp_path):
    p = _lfn2_file(tmp_path / "l.pt")
    with pytest.raises(ValueError) as info:
        load_srflownet(p)
    text = str(info.value)
    assert "<its backbone>" not in text
    assert "--model liteflownet2 --weights FILE" in text and "flow.method=liteflownet2" in text, text


def test_the_two_training_checkpoint_messages_share_their_opening(tmp_path):
    """load_state_dict_file's message for a custom network's checkpoint opens as training_checkpoint_fix's does."""
    from flownet.models.state_dict import load_state_dict_file
    ck = tmp_path / "last.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "step": 1}, ck)
    with pytest.raises(ValueError) as info:
        load_state_dict_file(torch.nn.Linear(1, 1), ck, "weights of flow.module='m'")
    assert str(info.value) == (f"weights of flow.module='m': {ck} is a training checkpoint (model, step), not a "
                               f"weights file: save its model part as one (in Python: torch.save(torch.load("
                               f"{str(ck)!r})['model'], 'weights.pt')) and give that file")


def test_the_missing_weights_advice_names_a_training_command_whose_config_validates(tmp_path, monkeypatch):
    from flownet.train import FlowTrainConfig, build_model, check_intervals, check_unread_settings, init_weights_file
    from icegan.config import load_config
    from icegan.paths import shipped_config_dir
    monkeypatch.chdir(tmp_path)                       # no runs/ here, as for a wheel user
    with pytest.raises(FileNotFoundError) as info:
        load_srflownet(tmp_path / "nope.pt")
    command = re.search(r"`(icegan flow train [^`]*)`", str(info.value)).group(1)
    words = shlex.split(command)
    assert words[:4] == ["icegan", "flow", "train", "--config"]
    config = shipped_config_dir() / words[4].split("/")[-1]
    cfg = load_config(FlowTrainConfig, config, words[5:])
    check_unread_settings(cfg)
    check_intervals(cfg.train, crop=bool(cfg.train.crop))
    build_model(cfg)
    if cfg.train.init_weights:                        # what train() checks first: the start weights exist
        assert init_weights_file(cfg.train.init_weights, cfg.train.backbone).is_file()


def test_the_training_log_says_its_final_metrics_are_pooled(tmp_path, shared_data, capsys):
    """The run's closing lines label their metrics as pooled over valid pixels (flow_metrics over every pair at
    once), not the mean over pairs that `icegan flow eval` heads its table with; metrics.json keeps its keys."""
    import json

    from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection, train
    cfg = FlowTrainConfig(name="p", out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                          data=FlowDataConfig(root=str(shared_data), size=32, n_train=4, n_test=2, n_val_subjects=2,
                                              n_val=1, frames_per_clip=1),
                          train=FlowTrainSection(regularizer="tvr", batch_size=2, crop=0, steps=1, eval_every=0,
                                                 threads=1))
    metrics = train(cfg, progress=False)
    out = capsys.readouterr().out
    assert f"final test metrics (2 pairs, pooled over valid pixels): {json.dumps(metrics)}" in out, out
    assert "final val metrics (1 pairs, pooled over valid pixels): " in out, out
    assert json.loads((tmp_path / "p" / "metrics.json").read_text())["test_metrics"] == metrics


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_srflownet_weights_are_refused_when_read(tmp_path, bad):
    model = SRFlowNet(SRFlowNetConfig(**MAIN_JOB_SRFLOWNET, iters=2))
    name = next(k for k, v in model.state_dict().items() if v.is_floating_point())
    with torch.no_grad():
        model.state_dict()[name].view(-1)[0] = bad
    p = save_srflownet(model, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match=re.escape(f"{p}: weight '{name}' holds NaN or infinite values (1 of its ")):
        load_srflownet(p)


def test_non_finite_backbone_weights_are_refused_when_read(tmp_path):
    p = _lfn2_file(tmp_path / "l.pt")
    ck = torch.load(p, weights_only=True)
    name = next(iter(ck["state_dict"]))
    ck["state_dict"][name] = torch.full_like(ck["state_dict"][name], float("nan"))
    torch.save(ck, p)
    with pytest.raises(ValueError, match=re.escape(f"{p} (liteflownet2): weight '{name}' holds NaN or infinite")):
        load_weights(p, "liteflownet2")


def test_the_shipped_weights_are_finite_and_load():
    """The finite check passes every shipped file (float16 ones included)."""
    from flownet.models.decflow import load_decflow
    load_srflownet(None)
    load_srflownet("shipped:generic")
    load_weights("shipped:facial", "liteflownet2")
    load_decflow(None)
