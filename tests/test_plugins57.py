"""Audit 57 (fix_quick): a custom flow network's NaN/Inf flow is refused where it is made (the estimator, the flow
features of every method: clips named) instead of NaN maps and a blamed recognizer; ``--module pkg.mod:Factory``
with ``pkg`` in the working folder imports from the ``icegan`` console script as it does under ``python -m``."""
import sys
from pathlib import Path

import pytest
import torch
from _nan_flow import NAN_NET


@pytest.fixture
def nan_net(tmp_path):
    path = tmp_path / "bad_net.py"
    path.write_text(NAN_NET)
    return path


def test_custom_network_nan_flow_is_refused_naming_module_and_pairs(nan_net):
    from flownet.registry import get_estimator
    est = get_estimator("custom", module=f"{nan_net}:NanOnSecond")
    with pytest.raises(FloatingPointError, match=r"^flow\.module='.*bad_net\.py:NanOnSecond': the flow network "
                       r"produced NaN/Inf flow for finite images: pair\(s\) \[1\] of a batch of 3 "
                       r"\(images \(3, 1, 8, 8\)\), at 1 of 64 pixels"):
        est.estimate(torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8))
    with pytest.raises(ValueError, match="produced NaN/Inf"):      # also a ValueError: callers catching it go on
        est.forward(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
    assert torch.equal(est.estimate(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)), torch.zeros(1, 2, 8, 8))


def test_non_finite_images_are_not_blamed_on_the_network(nan_net):
    from flownet.registry import get_estimator
    est = get_estimator("custom", module=f"{nan_net}:Nan")
    a = torch.full((1, 1, 8, 8), float("nan"))
    assert torch.isnan(est.estimate(a, torch.rand(1, 1, 8, 8))).all()      # NaN in, NaN out: not refused here


class _Stub:
    """An estimator (any method) whose flow is NaN at the given absolute pair indices."""
    name = "stub"

    def __init__(self, bad):
        self.bad, self.seen = set(bad), 0

    def estimate(self, a, b):
        f = torch.zeros(a.shape[0], 2, *a.shape[-2:])
        for j in range(a.shape[0]):
            if self.seen + j in self.bad:
                f[j, 1, 0, 0] = float("nan")
        self.seen += a.shape[0]
        return f


def test_flow_features_refuse_non_finite_flow_naming_the_clips():
    from icegan.pipeline import compute_flow_features
    x = torch.rand(5, 1, 16, 16)
    names = [f"casme2/sub0{k}/EP0{k}" for k in range(5)]
    with pytest.raises(FloatingPointError, match=r"^clip\(s\) casme2/sub03/EP03: the flow network \(stub\) produced "
                       r"NaN/Inf flow; its maps would be NaN$"):
        compute_flow_features(_Stub({3}), x, x, 8, batch_size=2, names=names)
    with pytest.raises(FloatingPointError, match=r"^clip\(s\) pair 0, pair 4: "):
        compute_flow_features(_Stub({0, 4}), x, x, 8, batch_size=8)
    y = x.clone()
    y[4, 0, 1, 1] = float("inf")
    with pytest.raises(FloatingPointError, match=r"^clip\(s\) casme2/sub04/EP04: NaN/Inf flow of images that are "
                       r"themselves NaN/Inf"):
        compute_flow_features(_Stub({4}), x, y, 8, batch_size=2, names=names)
    assert torch.isfinite(compute_flow_features(_Stub(()), x, x, 8, batch_size=2, names=names)).all()


def test_flow_features_name_the_clips_a_custom_network_failed_on(nan_net):
    from flownet.registry import get_estimator
    from icegan.pipeline import compute_flow_features
    est = get_estimator("custom", module=f"{nan_net}:NanOnSecond", tta="hflip")   # batch of 2B: pair 1 twice
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(FloatingPointError, match=r"^clip\(s\) c1: flow\.module='.*NanOnSecond': the flow network "
                       "produced NaN/Inf"):
        compute_flow_features(est, x, x, 8, batch_size=2, names=["c0", "c1", "c2", "c3"])


def test_train_refuses_a_nan_network_at_start_up(nan_net):
    from icegan.config import ConfigError
    from icegan.pipeline import load_main_config
    with pytest.raises(ConfigError, match=r"bad_net\.py:Nan': the flow network produced NaN/Inf flow"):
        load_main_config(None, ["flow.method=custom", f"flow.module={nan_net}:Nan"])


def test_icegan_features_refuses_nan_maps_naming_a_clip(nan_net, tmp_path, capsys):
    """The 32x32 start-up probe passes; the 64x64 clips' NaN flow used to be written as all-NaN maps."""
    from icegan.cli import main
    out = tmp_path / "fx"
    rc = main(["features", "--out", str(out), "flow.method=custom", f"flow.module={nan_net}:NanOn64",
               "data.n_subjects=3", "data.clips_per_class=1"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "error: clip(s) " in err and "the flow network produced NaN/Inf" in err and "NanOn64" in err, err
    assert not (out / "features.csv").exists()


FLOW_PKG = '''
import torch


class MyNet(torch.nn.Module):
    def forward(self, img1, img2):
        return torch.zeros(img1.shape[0], 2, *img1.shape[-2:]) + 0.5
'''
REC_PKG = '''
import torch


class MyNet(torch.nn.Module):
    def __init__(self, num_classes=3, in_channels=3):
        super().__init__()
        self.f = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))

    def forward(self, x):
        return self.f(x)
'''


@pytest.fixture
def console_script(tmp_path, monkeypatch):
    """A working folder holding the package ``pkg57_<n>`` (flow.py, nets.py) and a sys.path as the installed
    ``icegan`` script has it: sys.path[0] its bin folder, neither '' nor the working folder on it."""
    name = f"pkg57_{tmp_path.name.replace('-', '_')}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / name / "flow.py").write_text(FLOW_PKG)
    (tmp_path / name / "nets.py").write_text(REC_PKG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(Path(sys.executable).parent)] +
                        [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    yield name
    for m in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[m]


def test_console_script_imports_a_package_of_the_working_folder(console_script):
    """`icegan flow eval --module my_package.flow:MyNet` (README) failed from the console script: its sys.path[0] is
    the script's bin folder, not the working folder as under `python -m icegan`."""
    from flownet.plugins import load_factory
    from flownet.registry import get_estimator
    est = get_estimator("custom", module=f"{console_script}.flow:MyNet", module_key="--module")
    assert torch.equal(est.estimate(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4)), torch.full((1, 2, 4, 4), 0.5))
    assert load_factory(f"{console_script}.nets:MyNet", "model.module").__name__ == "MyNet"   # recognizers too
    assert sys.modules[console_script].__file__ == str(Path.cwd() / console_script / "__init__.py")


def test_custom_recognizer_from_the_working_folder_under_the_console_script(console_script):
    from icegan.models.recognizers import load_recognizer_factory
    net = load_recognizer_factory(f"{console_script}.nets:MyNet")(num_classes=3, in_channels=3)
    assert net(torch.rand(2, 3, 4, 4)).shape == (2, 3)


def test_a_module_found_nowhere_says_how_to_make_it_importable(console_script):
    from flownet.plugins import load_factory
    with pytest.raises(ValueError, match=r"^model\.module='nowhere57\.flow:MyNet': cannot import 'nowhere57' \(No "
                       r"module named 'nowhere57'\); install it or put its folder on PYTHONPATH \(or give a path to a "
                       r"\.py file\)$"):
        load_factory("nowhere57.flow:MyNet", "model.module")
    assert str(Path.cwd()) not in sys.path      # the working folder is added only when it holds the module


def test_flow_cli_names_the_option_typed(tmp_path, capsys, monkeypatch):
    """`icegan flow eval --module ...` said 'flow.module=...' (the config key) for the option the user typed."""
    from icegan.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["flow", "eval", "--model", "custom", "--module", "nope57.py:X", "--n-pairs", "1"]) == 2
    assert "error: --module='nope57.py:X': file nope57.py not found" in capsys.readouterr().err
    (tmp_path / "nan57.py").write_text(NAN_NET)
    assert main(["flow", "eval", "--model", "custom", "--module", "nan57.py:Nan", "--data", "synthetic-face",
                 "--n-pairs", "1", "--size", "32"]) == 2
    err = capsys.readouterr().err        # the network's own message (naming --module as typed), the pair added
    assert "error: pair '0000" in err and "': --module='nan57.py:Nan': the flow network produced NaN/Inf" in err, err
    assert "at 1024 of 1024 pixels" in err, err
