"""A TV-L1 main job loads no torchvision: ``flownet.registry`` imported :mod:`flownet.models.srflownet` (torchvision's
RAFT, torch._dynamo: about 40 % of a small ``icegan features flow.method=tvl1`` run) for every flow method, and the
main config's generator-width check imported :mod:`icegan.models.generator` (torchvision.ops) for one line of
arithmetic. SRFlowNet is now imported where it is built, and ``level_widths`` lives in :mod:`icegan.models.levels`
(no torch), re-exported by the generator module."""
from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; its stdout lines, then whether torchvision and torch._dynamo got loaded."""
    code += "\nimport sys; print('torchvision' in sys.modules, 'torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().split("\n")


def test_tvl1_main_config_and_estimator_load_no_torchvision():
    """As ``icegan features`` does: load a main config (GAN enabled: the width check runs) and build its flow."""
    lines = _run("import torch\n"
                 "from icegan.pipeline import build_flow, load_main_config\n"
                 "cfg = load_main_config(None, ['flow.method=tvl1', 'gan.enabled=true'])\n"
                 "est = build_flow(cfg, torch.device('cpu'))\n"
                 "a = torch.zeros(1, 1, 32, 32); a[..., 10:20, 10:20] = 1.0\n"
                 "b = torch.roll(a, 1, dims=-1)\n"
                 "f = est.estimate(a, b)\n"
                 "print(tuple(f.shape), round(float(f[0, 0, 12:18, 12:18].mean()), 1))")
    assert lines == ["(1, 2, 32, 32) 1.0", "False False"]


def test_generator_width_check_loads_no_torchvision_and_still_refuses():
    lines = _run("from icegan.config import ConfigError\n"
                 "from icegan.pipeline import load_main_config\n"
                 "try:\n"
                 "    load_main_config(None, ['gan.enabled=true', 'gan.base_channels=12'])\n"
                 "except ConfigError as exc:\n"
                 "    print(str(exc).split(' (')[0])")
    assert lines == ["gan.base_channels=12 gives the generator a level of 12 channels", "False False"]


@pytest.mark.parametrize("name", ["srflownet", "liteflownet2"])
def test_learned_backbones_still_build_save_and_name(tmp_path, name):
    """The SRFlowNet branches import it themselves: build, name, save and load in a fresh interpreter."""
    p = tmp_path / "w.pt"
    lines = _run("from flownet.registry import build_backbone, backbone_name, save_weights, load_weights\n"
                 f"m = build_backbone({name!r})\n"
                 f"save_weights(m, {str(p)!r})\n"
                 f"print(backbone_name(m), backbone_name(load_weights({str(p)!r})), type(m).__name__)")
    assert lines[0] == f"{name} {name} {'SRFlowNet' if name == 'srflownet' else 'LiteFlowNet2'}"


def test_level_widths_keeps_its_public_name():
    from icegan.models import generator, levels
    assert generator.level_widths is levels.level_widths
    assert levels.level_widths(64, 16, 128) == [16, 32, 64, 128, 128]
