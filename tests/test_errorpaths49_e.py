"""Input checks and fallbacks of the networks (icegan.models), the fold executors and the environment record that no
other test reached: each test calls the public class or function a caller uses and checks the message names the
input and what is wrong, or the value a fallback gives."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch

# --------------------------------------------------------------------------------------------- capsules


def test_dynamic_routing_refuses_no_iterations_and_a_wrong_rank():
    from icegan.models.capsules import dynamic_routing
    with pytest.raises(ValueError, match=r"^dynamic_routing: iterations must be >= 1, got 0$"):
        dynamic_routing(torch.rand(2, 4, 3, 5), 0)
    with pytest.raises(ValueError, match=r"u_hat must be \(B, N_in, N_out, D\), got \(2, 4, 5\)$"):
        dynamic_routing(torch.rand(2, 4, 5), 3)


def test_routing_capsules_name_input_counts_that_do_not_split_into_types():
    from icegan.models.capsules import RoutingCaps
    caps = RoutingCaps(n_types=3, in_dim=4, n_out=2, out_dim=5)
    assert caps(torch.rand(2, 6, 4)).shape == (2, 2, 5)
    with pytest.raises(ValueError, match=r"^RoutingCaps: 7 input capsules is not a multiple of 3 types$"):
        caps(torch.rand(2, 7, 4))


def test_margin_loss_refuses_lengths_and_targets_of_other_shapes():
    from icegan.models.capsules import margin_loss
    with pytest.raises(ValueError, match=r"lengths must be \(B, K\), got \(4,\)$"):
        margin_loss(torch.rand(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target \(2, 4\) does not match lengths \(2, 3\)$"):
        margin_loss(torch.rand(2, 3), torch.zeros(2, 4))


def test_capsule_discriminator_names_the_shape_it_expects():
    from icegan.models.discriminator import CapsuleDiscriminator
    d = CapsuleDiscriminator(img_size=32, base_channels=4, d_adv=4, d_exp=4)
    with pytest.raises(ValueError, match=r"input must be \(B, 1, 32, 32\), got \(2, 1, 16, 16\)$"):
        d(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"input must be \(B, 1, 32, 32\), got \(2, 3, 32, 32\)$"):
        d(torch.rand(2, 3, 32, 32))


# --------------------------------------------------------------------------------------------- generator


def _generator(**kw):
    from icegan.models.generator import Generator
    return Generator(img_size=16, z_dim=4, id_dim=8, base_channels=4, max_channels=8, grm_nodes=2, **kw)


def test_class_condition_errors_say_what_to_pass():
    from icegan.models.generator import one_hot_classes
    with pytest.raises(ValueError, match=r"class ids must be integers, got dtype torch.float32; pass one-hot "
                                         r"\(B, 3\) for floats"):
        one_hot_classes(torch.tensor([0.0, 1.0]), 3, 2, "cpu", torch.float32)
    with pytest.raises(ValueError, match=r"^class ids have batch 3, onset has 2$"):
        one_hot_classes(torch.tensor([0, 1, 2]), 3, 2, "cpu", torch.float32)
    with pytest.raises(ValueError, match=r"class condition must be \(B,\) ids or \(B, 3\) one-hot, got \(2, 4\) "
                                         r"for B=2"):
        one_hot_classes(torch.zeros(2, 4), 3, 2, "cpu", torch.float32)
    g = _generator()
    onset, z = torch.rand(2, 1, 16, 16) * 2 - 1, torch.randn(2, 4)
    with pytest.raises(ValueError, match="class ids have batch 3, onset has 2"):      # the same check in forward
        g(onset, z, torch.tensor([0, 1, 2]))
    assert g(onset, z, torch.tensor([0, 2])).shape == (2, 1, 16, 16)


def test_generator_names_the_skip_paths_it_offers():
    with pytest.raises(ValueError, match=r"^Generator: skip must be one of \('grm', 'plain', 'se'\), got 'unet'$"):
        _generator(skip="unet")


def test_motion_prior_with_non_finite_values_is_refused_and_not_stored():
    g = _generator(motion_head=True)
    prior = torch.zeros(3, 2, 16, 16)
    prior[1, 0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match=r"^set_motion_prior: prior has non-finite values$"):
        g.set_motion_prior(prior)
    assert torch.isfinite(g.motion_prior).all()
    g.set_motion_prior(torch.ones(3, 2, 16, 16))
    assert torch.equal(g.motion_prior, torch.ones(3, 2, 16, 16))


def test_graph_reasoning_module_refuses_empty_sizes_and_other_channel_counts():
    from icegan.models.grm import GraphReasoningModule
    for channels, nodes in ((0, 8), (4, 0)):
        with pytest.raises(ValueError, match=rf"channels \({channels}\) and n_nodes \({nodes}\) must be >= 1"):
            GraphReasoningModule(channels, nodes)
    grm = GraphReasoningModule(4, 2)
    with pytest.raises(ValueError, match=r"expects \(B, 4, H, W\), got \(2, 5, 3, 3\)$"):
        grm(torch.rand(2, 5, 3, 3))
    with pytest.raises(ValueError, match=r"expects \(B, 4, H, W\), got \(4, 3, 3\)$"):
        grm(torch.rand(4, 3, 3))


# --------------------------------------------------------------------------------------------- recognizers


def test_recognizer_input_of_another_rank_or_group_count_is_named():
    from icegan.models.recognizers import STSTNet
    net = STSTNet(n_models=2)
    assert net(torch.rand(3, 2, 3, 28, 28)).shape == (3, 2, 3)
    with pytest.raises(ValueError, match=r"expected grouped features \(B, 2, 3, H, W\), got \(3, 4, 3, 28, 28\)"):
        net(torch.rand(3, 4, 3, 28, 28))
    with pytest.raises(ValueError, match=r"expected grouped features \(B, 2, 3, H, W\), got \(3, 2, 1, 28, 28\)"):
        net(torch.rand(3, 2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"expected features \(B, C, H, W\) or \(B, G, C, H, W\), got \(3, 28, 28\)"):
        net(torch.rand(3, 28, 28))


def test_offtanet_maps_of_another_size_than_input_size_say_to_check_it():
    from icegan.models.recognizers import OffTANet
    net = OffTANet(input_size=28, stem_stride=1)
    assert net(torch.rand(2, 3, 28, 28)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"attention block expects 7×7 maps, got 8×8 \(check input_size\)"):
        net(torch.rand(2, 3, 32, 32))


def test_fast_dropout_of_every_element_gives_zeros():
    from icegan.models.recognizers import fast_dropout
    x = torch.rand(4, 5) + 1
    out = fast_dropout(x, 1.0, training=True)
    assert torch.equal(out, torch.zeros(4, 5)) and out.dtype == x.dtype
    assert torch.equal(fast_dropout(x, 1.0, training=False), x)


def test_a_custom_factory_that_returns_no_module_is_named(tmp_path):
    from icegan.models.recognizers import build_recognizer
    plugin = tmp_path / "notnet.py"
    plugin.write_text("def make(num_classes):\n    return [num_classes]\n")
    with pytest.raises(ValueError, match=rf"^model.module='{plugin}:make' returned a list, not a torch.nn.Module$"):
        build_recognizer("custom", module=f"{plugin}:make")


# --------------------------------------------------------------------------------------------- executors


class _Fold:
    def __init__(self, subject, index):
        self.subject, self.index, self.unit = subject, index, "subject"


def test_an_error_of_an_empty_fold_group_says_so():
    from icegan.executors import fold_named_in_errors
    with pytest.raises(RuntimeError) as err:
        with fold_named_in_errors([]):
            raise RuntimeError("boom")
    assert getattr(err.value, "__notes__", None) == ["(in an empty fold group)"]
    with pytest.raises(RuntimeError) as err:
        with fold_named_in_errors([_Fold("casme2/sub01", 0), _Fold("casme2/sub02", 1)]):
            raise RuntimeError("boom")
    assert err.value.__notes__ == ["(in the fold group of held-out subjects casme2/sub01, casme2/sub02, folds 1-2)"]


def test_ray_available_follows_whether_ray_imports(monkeypatch):
    from icegan.executors import ray_available
    monkeypatch.setitem(sys.modules, "ray", None)              # an import of ray raises ImportError
    assert ray_available() is False
    monkeypatch.setitem(sys.modules, "ray", type(sys)("ray"))
    assert ray_available() is True


def test_the_ray_executor_without_ray_says_how_to_install_it(monkeypatch):
    from icegan.executors import RayExecutor
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"^the Ray executor needs the optional 'ray' package: pip install "
                                          r"'icegan\[ray\]' \(or -c constraints.txt ray\)$"):
        RayExecutor()


def test_ray_tasks_get_the_gpus_given_whatever_the_cluster_has(monkeypatch):
    from icegan.executors import RayExecutor

    class Cluster:
        def cluster_resources(self):
            return {"CPU": 8.0, "GPU": 4.0}
    monkeypatch.setitem(sys.modules, "ray", Cluster())
    assert RayExecutor(num_gpus=0)._gpus_per_task() == 0.0
    assert RayExecutor(num_gpus=0.5)._gpus_per_task() == 0.5
    assert RayExecutor()._gpus_per_task() == 1.0


def test_workers_started_outside_the_main_thread_leave_the_sigint_handler_alone():
    """ProcessGroupMap started from a worker thread (where Python refuses to set signal handlers): its workers start
    without the Ctrl-C guard instead of failing with 'signal only works in main thread'."""
    import signal

    import numpy as np
    from _group_helpers import GroupBoom

    from icegan.executors import ProcessGroupMap
    from icegan.protocol import Fold
    before = signal.getsignal(signal.SIGINT)
    folds = [Fold(i, f"d/s{i}", np.arange(2), np.arange(1)) for i in (0, 2)]
    got, errors = [], []

    def run():
        try:
            got.extend(ProcessGroupMap(1, threads=1)(GroupBoom(), [folds[:1], folds[1:]]))
        except BaseException as exc:           # noqa: BLE001 - reported below
            errors.append(exc)
    t = threading.Thread(target=run)
    t.start()
    t.join(120)
    assert not errors, errors
    assert sorted(r for _, r in got) == [[0], [20]]
    assert signal.getsignal(signal.SIGINT) is before


# --------------------------------------------------------------------------------------------- environment


def test_own_cpu_rate_is_none_where_proc_cannot_say(monkeypatch, tmp_path):
    import icegan.environment as env
    monkeypatch.setattr(env, "Path", lambda _: tmp_path / "missing")          # no /proc
    assert env._own_cpu_rate() is None
    for text in ("12 python S 1 2 3\n",                   # no ')' closing the command name
                 "12 (python) S 1\n"):                     # too few fields after it (an IndexError before)
        garbled = tmp_path / "stat"
        garbled.write_text(text)
        monkeypatch.setattr(env, "Path", lambda _: garbled)
        assert env._own_cpu_rate() is None


def test_cpu_model_falls_back_on_platform_where_there_is_no_cpuinfo(monkeypatch, tmp_path):
    import icegan.environment as env
    monkeypatch.setattr(env, "Path", lambda _: tmp_path / "missing")
    monkeypatch.setattr(env.platform, "processor", lambda: "")
    monkeypatch.setattr(env.platform, "machine", lambda: "riscv64")
    assert env._cpu_model() == "riscv64"
    monkeypatch.setattr(env.platform, "processor", lambda: "arm")
    assert env._cpu_model() == "arm"


def test_git_commit_is_none_when_git_is_missing_or_fails(monkeypatch, tmp_path):
    import icegan.environment as env
    (tmp_path / ".git").mkdir()                  # looks like a checkout, but git cannot read it
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert env._git_commit(tmp_path) is None

    def no_git(*a, **kw):
        raise FileNotFoundError(2, "No such file or directory", "git")
    monkeypatch.setattr(subprocess, "run", no_git)
    assert env._git_commit(tmp_path) is None

    def hangs(*a, **kw):
        raise subprocess.TimeoutExpired("git", 10)
    monkeypatch.setattr(subprocess, "run", hangs)
    assert env._git_commit(tmp_path) is None
