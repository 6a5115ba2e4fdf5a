"""Input checks and fallback branches of the flow registry (flownet.registry) and of the user-code loader
(flownet.plugins) that no other test reached: backbone names and configs, weights files of the wrong kind, the
bf16 question on a device without CUDA, and how the source hash of a custom network follows its helper modules."""
from __future__ import annotations

import hashlib
import importlib.abc
import re
import sys

import pytest
import torch
from _flow_sizes import TINY_SRFLOWNET

from flownet.models.liteflownet2 import LiteFlowNet2Config
from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig
from flownet.plugins import call_factory, load_factory, source_sha256
from flownet.registry import build_backbone, load_weights, native_bf16, save_srflownet, save_weights

NET = "import torch\n\n\nclass Net(torch.nn.Module):\n    def forward(self, a, b):\n{body}        return a\n"


def _sha(*paths) -> str:
    """source_sha256 of these files: the file's own SHA-256 for one, else that of their digests in order."""
    if len(paths) == 1:
        return hashlib.sha256(paths[0].read_bytes()).hexdigest()
    return hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in paths)).hexdigest()


# ------------------------------------------------------------------------------------------------ plugins

def test_a_value_error_raised_while_importing_user_code_names_the_key_and_spec(tmp_path, monkeypatch):
    """Before, a ValueError raised by the user's module at import escaped bare ('boom'), naming neither the option
    nor the file, unlike every other exception (a missing file is still named as before)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad49.py").write_text("raise ValueError('boom')\n")
    with pytest.raises(ValueError, match=r"^flow\.module='bad49\.py:Net': importing bad49\.py failed: ValueError: "
                                         r"boom$"):
        load_factory("bad49.py:Net", "flow.module")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "badpkg49.py").write_text("raise ValueError('boom')\n")
    with pytest.raises(ValueError, match=r"^model\.module='badpkg49:Net': importing badpkg49 failed: ValueError: "
                                         r"boom$"):
        load_factory("badpkg49:Net", "model.module")
    with pytest.raises(ValueError, match=r"^flow\.module='gone49\.py:Net': file gone49\.py not found \(a path is "
                                         r"read relative to the working directory "):
        load_factory("gone49.py:Net", "flow.module")


def test_call_factory_passes_every_offered_argument_to_a_factory_without_a_readable_signature():
    """inspect.signature cannot read a builtin type such as dict: it gets all the offered arguments."""
    with pytest.raises(ValueError):
        __import__("inspect").signature(dict)
    assert call_factory(dict, {"a": 1, "b": 2}, "builtins:dict") == {"a": 1, "b": 2}


def test_source_sha256_of_a_builtin_factory_is_empty():
    """A builtin has no source file (inspect.getsourcefile raises TypeError) nor has its module: nothing to hash."""
    assert source_sha256("builtins:len") == ""


def test_source_sha256_follows_a_helper_imported_inside_a_function_even_unloaded_or_broken(tmp_path, monkeypatch):
    """A helper module the network imports only inside forward (not loaded when the hash is taken) is located
    without importing it and hashed; one with a syntax error is hashed too (its own imports cannot be read)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    helper = tmp_path / "epb49_lazy_helper.py"
    helper.write_text("def scale():\n    return 2\n")
    net = tmp_path / "net49a.py"
    net.write_text(NET.format(body="        import epb49_lazy_helper  # noqa: F401\n"))
    assert source_sha256(f"{net}:Net") == _sha(net, helper)
    assert "epb49_lazy_helper" not in sys.modules
    helper.write_text("def scale(:\n")
    assert source_sha256(f"{net}:Net") == _sha(net, helper)


def test_source_sha256_skips_a_relative_import_in_a_file_outside_any_package(tmp_path):
    """``from .sibling import x`` inside a function of a file given by path (no package to resolve it against)
    names no module: the hash is the file's own, and no ImportError escapes."""
    (tmp_path / "sibling.py").write_text("x = 1\n")
    net = tmp_path / "net49b.py"
    net.write_text(NET.format(body="        from .sibling import x  # noqa: F401\n"))
    assert source_sha256(f"{net}:Net") == _sha(net)


def test_source_sha256_skips_a_module_an_import_hook_refuses_to_locate(tmp_path, monkeypatch):
    """An import hook on sys.meta_path that raises ImportError while locating a helper: the helper is left out of
    the hash instead of failing it."""
    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "epb49_refused":
                raise ImportError("refused by the hook")
            return None

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "epb49_refused.py").write_text("y = 2\n")
    monkeypatch.setattr(sys, "meta_path", [Refuse(), *sys.meta_path])
    net = tmp_path / "net49c.py"
    net.write_text(NET.format(body="        import epb49_refused  # noqa: F401\n"))
    assert source_sha256(f"{net}:Net") == _sha(net)


# ------------------------------------------------------------------------------------------------ registry

def test_native_bf16_is_false_without_cuda_and_on_other_device_types(monkeypatch):
    """No CUDA: 'cuda' has no native bf16 (torch.cuda is not asked); a device that is neither CUDA nor CPU neither."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_gpu(*a, **kw):
        raise AssertionError("torch.cuda asked about a GPU that is not there")

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", no_gpu)
    monkeypatch.setattr(torch.cuda, "current_device", no_gpu)
    assert native_bf16("cuda") is False and native_bf16("cuda:1") is False
    assert native_bf16("meta") is False


def test_build_backbone_takes_a_config_instance_or_a_dict_with_lists():
    cfg = SRFlowNetConfig(**TINY_SRFLOWNET)
    assert build_backbone("srflownet", cfg).config is cfg
    model = build_backbone("srflownet", {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_SRFLOWNET.items()})
    assert isinstance(model, SRFlowNet) and model.config == cfg        # lists back to tuples


@pytest.mark.parametrize("name,config,message", [
    ("liteflownet2", [1, 2], "liteflownet2: config must be a mapping, got list"),
    ("liteflownet2", {"last_level": 3, "wings": 2}, "liteflownet2: unknown LiteFlowNet2Config keys ['wings']"),
    ("raft_small", {"variant": "raft_large"}, "raft_small: config variant is 'raft_large', not 'raft_small': name the "
                                              "backbone 'raft_large', or drop 'variant' from the config"),
    ("ptlflow:skflow", {"name": "rpknet"}, "ptlflow:skflow: config names ptlflow model 'rpknet', not 'skflow': name "
                                           "the backbone 'ptlflow:rpknet', or drop 'name' from the config"),
    ("tvl1", None, "'tvl1' is not a learned backbone; choose one of ['srflownet', 'liteflownet2', 'raft_small', "
                   "'raft_large'] or ptlflow:<name>"),
])
def test_build_backbone_refuses_bad_configs_and_classical_names(name, config, message):
    """(the ptlflow name check comes before ptlflow is imported: it holds without ptlflow installed)"""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build_backbone(name, config)


def test_save_weights_refuses_a_module_that_is_no_registry_backbone(tmp_path):
    with pytest.raises(ValueError, match=r"^Linear is not a registry backbone$"):
        save_weights(torch.nn.Linear(2, 2), tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


def test_load_weights_refuses_a_file_that_holds_no_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: not a flow weights file \(a list, expected a "
                                         rf"dict\)$"):
        load_weights(path)


def test_load_weights_reads_an_srflownet_file_unless_another_backbone_is_expected(tmp_path):
    torch.manual_seed(0)
    path = save_srflownet(SRFlowNet(SRFlowNetConfig(**TINY_SRFLOWNET)), tmp_path / "s.pt", meta={"steps": 7})
    for expected in (None, "srflownet", "SRFlowNet"):
        model = load_weights(path, expected=expected)
        assert isinstance(model, SRFlowNet) and model.meta["steps"] == 7 and not model.training
        assert model.config == SRFlowNetConfig(**TINY_SRFLOWNET)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: an SRFlowNet weights file, not liteflownet2: "
                                         rf"use --model srflownet \(flow\.method=srflownet\)$"):
        load_weights(path, expected="lfn2")


def test_load_weights_names_the_file_whose_backbone_or_config_builds_no_model(tmp_path):
    """A flownet-backbone-v1 file whose backbone name or config is refused: the message names the file (before,
    only the backbone: 'liteflownet2: unknown LiteFlowNet2Config keys ...')."""
    from flownet.models.liteflownet2 import LiteFlowNet2
    path = save_weights(LiteFlowNet2(LiteFlowNet2Config(netc_channels=(4, 4, 4, 4, 4, 4), last_level=6)),
                        tmp_path / "l.pt")
    ck = torch.load(path, weights_only=True)
    for key, value, message in [("config", {**ck["config"], "wings": 1},
                                 "liteflownet2: unknown LiteFlowNet2Config keys ['wings']"),
                                ("backbone", "tvl1", "'tvl1' is not a learned backbone"),
                                ("backbone", "warp9", "unknown flow estimator 'warp9'")]:
        torch.save({**ck, key: value}, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'bad.pt'))}: {re.escape(message)}"):
            load_weights(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: weights of backbone 'liteflownet2', not "
                                         rf"'raft_small': use --model liteflownet2 \(flow.method=liteflownet2\)$"):
        load_weights(path, expected="raft_small")
