"""Your own flow network (`get_estimator("custom", module=SPEC)`, `icegan flow eval --model custom --module SPEC`,
`flow.method=custom flow.module=SPEC`): the example's known flow, weights through the real loading path, output
checks, gradients, errors, and the spec loader shared with custom recognizers."""
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flownet.plugins import call_factory, load_factory, source_sha256
from flownet.registry import CustomFlowEstimator, get_estimator
from icegan.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "custom_flow.py"
HS = f"{EXAMPLE}:HornSchunck"

NETS = '''
import torch
from torch import nn


class TinyFlow(nn.Module):
    """A learned toy: one 3x3 conv from the stacked pair to (u, v)."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, img1, img2):
        return self.conv(torch.cat([img1.mean(1, keepdim=True), img2.mean(1, keepdim=True)], 1))


class Refinements(TinyFlow):
    def forward(self, img1, img2):
        flow = super().forward(img1, img2)
        return [flow * 0, flow]


class ThreeChannels(TinyFlow):
    def forward(self, img1, img2):
        return torch.cat([super().forward(img1, img2)] * 2, 1)[:, :3]


def not_a_module():
    return 3
'''


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


def _smooth_image(h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, h + 16, w + 16, generator=g)
    k = torch.exp(-torch.arange(-4, 5, dtype=torch.float32) ** 2 / 8)
    k = (k[:, None] * k[None, :]) / k.sum() ** 2
    x = F.conv2d(x, k[None, None])
    return (x - x.min()) / (x.max() - x.min())


def test_example_horn_schunck_recovers_a_known_translation():
    """img2 = img1 moved right by 1 px and down by 0.5 px: the flow of the interior is (1, 0.5) within 0.1 px."""
    img = _smooth_image()
    img1 = img[..., 4:68, 4:68]
    shifted = torch.roll(img, shifts=1, dims=-1)                                      # x + 1
    shifted = (shifted + torch.roll(shifted, shifts=1, dims=-2)) / 2                   # y + 0.5 (linear interp.)
    img2 = shifted[..., 4:68, 4:68]
    est = get_estimator("custom", module=HS)
    assert isinstance(est, CustomFlowEstimator)
    flow = est.estimate(img1, img2)
    assert flow.shape == (1, 2, 64, 64) and flow.dtype == torch.float32
    inner = flow[0, :, 12:-12, 12:-12]
    assert abs(float(inner[0].median()) - 1.0) < 0.1 and abs(float(inner[1].median()) - 0.5) < 0.1
    zero = est.estimate(img1, img1)
    assert float(zero.abs().max()) < 1e-5                                              # no motion, no flow


def test_example_is_differentiable_through_forward():
    img1, img2 = _smooth_image(32, 32, 1), _smooth_image(32, 32, 2).requires_grad_(True)
    est = get_estimator("custom", module=HS)
    est.forward(img1, img2).pow(2).mean().backward()
    assert img2.grad is not None and float(img2.grad.abs().sum()) > 0


def test_weights_file_through_the_real_loading_path(nets, tmp_path):
    torch.manual_seed(0)
    net = load_factory(f"{nets}:TinyFlow")()
    path = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), path)
    img1, img2 = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        want = net(img1, img2)
    est = get_estimator("custom", module=f"{nets}:TinyFlow", weights=str(path))
    torch.testing.assert_close(est.estimate(img1, img2), want)
    torch.save({"state_dict": net.state_dict(), "meta": {"step": 3}}, tmp_path / "ckpt.pt")   # a checkpoint dict
    torch.testing.assert_close(get_estimator("custom", module=f"{nets}:TinyFlow",
                                             weights=str(tmp_path / "ckpt.pt")).estimate(img1, img2), want)
    torch.save({"other.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="conv.weight"):
        get_estimator("custom", module=f"{nets}:TinyFlow", weights=str(tmp_path / "bad.pt"))
    with pytest.raises(FileNotFoundError, match="absent.pt") as missing:
        get_estimator("custom", module=f"{nets}:TinyFlow", weights=str(tmp_path / "absent.pt"))
    # names the setting that gave the file, as train.py (flow.weights) and `icegan flow eval` (--weights) call it
    assert str(missing.value).startswith(f"flow.weights (--weights) of flow.module='{nets}:TinyFlow': ")


def test_refinement_lists_and_wrong_outputs(nets):
    img = torch.rand(1, 1, 8, 8)
    est = get_estimator("custom", module=f"{nets}:Refinements")
    assert float(est.estimate(img, img * 0.5).abs().sum()) > 0                        # the last refinement, not 0
    with pytest.raises(ValueError, match=r"returned \(1, 3, 8, 8\) for images \(1, 1, 8, 8\)"):
        get_estimator("custom", module=f"{nets}:ThreeChannels").estimate(img, img)
    with pytest.raises(ValueError, match="returned a int, not a torch.nn.Module"):
        get_estimator("custom", module=f"{nets}:not_a_module")


def test_estimator_argument_errors(nets):
    with pytest.raises(ValueError, match="needs module="):
        get_estimator("custom")
    with pytest.raises(ValueError, match="read only by the 'custom' flow estimator"):
        get_estimator("tvl1", module=f"{nets}:TinyFlow")
    with pytest.raises(ValueError, match=r"takes no options \['iters'\]"):
        get_estimator("custom", module=f"{nets}:TinyFlow", iters=3)


def test_spec_loader(nets, tmp_path):
    assert load_factory(f"{nets}:TinyFlow").__name__ == "TinyFlow"
    assert load_factory("torch.nn:Conv2d") is torch.nn.Conv2d
    for spec, msg in [("no_colon", "expected 'package.module:factory'"), (f"{tmp_path}/x.py:N", "not found"),
                      (f"{nets}:Nope", "has no attribute 'Nope'"), ("zz_no_pkg.m:N", "cannot import 'zz_no_pkg'")]:
        with pytest.raises(ValueError, match=msg) as exc:
            load_factory(spec, "flow.module")
        assert str(exc.value).startswith(f"flow.module={spec!r}")
    got = call_factory(lambda a, b=2: (a, b), {"a": 1, "c": 3}, "s")               # only the named arguments
    assert got == (1, 2)
    assert call_factory(lambda **kw: kw, {"a": 1, "c": 3}, "s") == {"a": 1, "c": 3}
    with pytest.raises(ValueError, match="calling it with {'a': 1} failed: ZeroDivisionError"):
        call_factory(lambda a: a / 0, {"a": 1}, "s")
    sha = source_sha256(f"{nets}:TinyFlow")
    nets.write_text(NETS + "\n# edited\n")
    assert len(sha) == 64 and source_sha256(f"{nets}:TinyFlow") != sha
    # torch.nn re-exports its classes: the file that defines each one is hashed too
    assert source_sha256("torch.nn:Conv2d") != source_sha256("torch.nn:Linear")      # conv.py vs linear.py


def test_source_hash_covers_the_file_defining_a_re_exported_factory(tmp_path, monkeypatch):
    pkg = tmp_path / "myflowpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .nets import TinyFlow\n")
    (pkg / "nets.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_sha256("myflowpkg:TinyFlow")
    (pkg / "nets.py").write_text(NETS + "\n# the network changed\n")
    assert source_sha256("myflowpkg:TinyFlow") != before


def test_source_hash_covers_the_users_helper_modules(tmp_path, monkeypatch):
    """Editing a user module the network imports (a sibling file, a relative import inside a package, a helper of a
    helper) changes the hash; installed packages and an unrelated file beside it do not."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "zz_blocks.py").write_text("import torch\nclass Block(torch.nn.Conv2d):\n    pass\n")
    (tmp_path / "zz_scale.py").write_text("import zz_blocks\nSCALE = 1.0\n")
    (tmp_path / "zz_unrelated.py").write_text("X = 1\n")
    net = tmp_path / "zz_net.py"
    net.write_text("import numpy\nfrom zz_blocks import Block\nfrom zz_scale import SCALE\n" + NETS)
    pkg = tmp_path / "zzpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "layers.py").write_text("LAYERS = 2\n")
    (pkg / "net.py").write_text("from .layers import LAYERS\n" + NETS)
    hashes = lambda: (source_sha256(f"{net}:TinyFlow"), source_sha256("zzpkg.net:TinyFlow"))   # noqa: E731
    before = hashes()
    (tmp_path / "zz_unrelated.py").write_text("X = 2\n")
    assert hashes() == before
    (tmp_path / "zz_blocks.py").write_text("import torch\nclass Block(torch.nn.Conv2d):\n    pass\n# edited\n")
    after_blocks = hashes()
    assert after_blocks[0] != before[0] and after_blocks[1] == before[1]
    (tmp_path / "zz_scale.py").write_text("import zz_blocks\nSCALE = 2.0\n")
    assert hashes()[0] != after_blocks[0]
    (pkg / "layers.py").write_text("LAYERS = 3\n")
    assert hashes()[1] != after_blocks[1]



def test_source_hash_of_a_self_contained_file_is_its_own_sha256(tmp_path):
    """A spec file importing only installed packages, icegan and flownet hashes as the SHA-256 of its bytes."""
    path = tmp_path / "mg_alone.py"
    path.write_text("import numpy\nimport icegan.data.records\nfrom flownet import metrics\n" + NETS)
    assert source_sha256(f"{path}:TinyFlow") == hashlib.sha256(path.read_bytes()).hexdigest()


def test_source_hash_follows_a_helper_of_a_helper_and_a_submodule_imported_from_its_package(tmp_path, monkeypatch):
    """The network imports only mg_mid, which imports mg_deep; and `from mgpkg import util` names the submodule
    mgpkg.util: editing mg_deep.py or mgpkg/util.py changes the hash."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "mg_deep.py").write_text("DEPTH = 1\n")
    (tmp_path / "mg_mid.py").write_text("import mg_deep\n")
    pkg = tmp_path / "mgpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "util.py").write_text("U = 1\n")
    net = tmp_path / "mg_net.py"
    net.write_text("import mg_mid\nfrom mgpkg import util\n" + NETS)
    before = source_sha256(f"{net}:TinyFlow")
    (tmp_path / "mg_deep.py").write_text("DEPTH = 2\n")
    after_deep = source_sha256(f"{net}:TinyFlow")
    assert after_deep != before
    (pkg / "util.py").write_text("U = 2\n")
    assert source_sha256(f"{net}:TinyFlow") != after_deep

def test_a_module_without_its_own_init_gets_no_arguments(tmp_path):
    path = tmp_path / "noinit.py"
    path.write_text("import torch\nclass NoInit(torch.nn.Conv2d):\n    pass\n"
                    "class Plain(torch.nn.Module):\n    pass\n")
    assert isinstance(call_factory(load_factory(f"{path}:Plain"), {"input_size": 28}, "s"), torch.nn.Module)


def test_network_failures_are_named(nets, tmp_path):
    path = tmp_path / "one_arg.py"
    path.write_text("import torch\nclass OneArg(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                    "        self.w = torch.nn.Parameter(torch.zeros(1))\n    def forward(self, img):\n"
                    "        return img\n")
    with pytest.raises(ValueError, match=r"failed on images \(1, 1, 8, 8\).*TypeError"):
        get_estimator("custom", module=f"{path}:OneArg").estimate(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    exits = tmp_path / "exits.py"
    exits.write_text("raise SystemExit(3)\n")
    with pytest.raises(ValueError, match="SystemExit"):
        load_factory(f"{exits}:Net")
    est = get_estimator("custom", module=f"{nets}:TinyFlow")
    assert not est.model.training                         # eval mode, as the shipped networks


def test_flow_eval_and_run_commands(tmp_path, capsys):
    from PIL import Image
    assert main(["flow", "eval", "--model", "custom", "--module", HS, "--data", "synthetic-face", "--n-pairs", "2",
                 "--size", "64", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "custom on synthetic-face" in out and (tmp_path / "r.json").is_file()
    img = (_smooth_image()[0, 0].numpy() * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(np.roll(img, 1, axis=1)).save(tmp_path / "b.png")
    assert main(["flow", "run", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--gray", "--model", "custom",
                 "--module", HS, "--out", str(tmp_path / "f.png"), "--flo", str(tmp_path / "f.flo")]) == 0
    from flownet.io import read_flo
    flow, _ = read_flo(tmp_path / "f.flo")                                          # (H, W, 2)
    assert abs(float(np.median(flow[12:-12, 12:-12, 0])) - 1.0) < 0.15
    assert main(["flow", "run", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--gray", "--model", "custom",
                 "--module", HS, "--decompose", "--out", str(tmp_path / "d.png")]) == 0
    assert all((tmp_path / f"d{part}.png").is_file() for part in ("", "_head", "_expression"))
    capsys.readouterr()
    assert main(["flow", "eval", "--model", "custom", "--module", HS, "--iters", "3", "--n-pairs", "1"]) == 2
    assert "iters applies to srflownet and RAFT" in capsys.readouterr().err
    assert main(["flow", "eval", "--model", "custom", "--module", "nope.py:X", "--n-pairs", "1"]) == 2
    assert "--module='nope.py:X': file nope.py not found" in capsys.readouterr().err     # the option typed
