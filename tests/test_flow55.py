"""Flow fixes found by an audit: a self-supervised resume keeps the init weights' real_pair_subjects, settings that
crashed a run late are refused early, icegan flow eval refuses options it would ignore and non-finite flow, a
Middlebury folder unzipped on macOS is read, and the strain docstring's rotation claim."""
import math
import re

import pytest
import torch
from test_flow_selfsup import _loop_run, _Stop


def test_selfsup_resume_keeps_init_weights_subjects_without_the_init_file(tmp_path, monkeypatch):
    """A run from init weights that record real_pair_subjects, interrupted and resumed after the init file is gone
    (given still, or set null), ships weights.pt listing those subjects as the uninterrupted run does."""
    from flownet.registry import load_srflownet, save_srflownet
    _loop_run(tmp_path / "a", monkeypatch, "train.student_steps=0")
    first = load_srflownet(tmp_path / "a" / "loop" / "weights.pt")
    init = save_srflownet(first, tmp_path / "init.pt", meta={**first.meta, "real_pair_subjects": ["casme2/sub09"]})
    for name, resume_with in (("given", f"train.init_weights={init}"), ("null", "train.init_weights=null")):
        with pytest.raises(_Stop):
            _loop_run(tmp_path / name, monkeypatch, f"train.init_weights={init}", stop_at=("teacher", 3))
        init.rename(tmp_path / "moved.pt")
        try:
            _loop_run(tmp_path / name, monkeypatch, resume_with)
        finally:
            (tmp_path / "moved.pt").rename(init)
        got = load_srflownet(tmp_path / name / "loop" / "weights.pt").meta["real_pair_subjects"]
        assert "casme2/sub09" in got, (name, got)
        assert torch.load(tmp_path / name / "loop" / "last.pt", weights_only=False)["real_pair_subjects"] == \
            ["casme2/sub09"]


def test_selfsup_refuses_more_occ_pairs_than_items_before_the_run_folder(tmp_path, monkeypatch):
    """data.n_occ_pairs above data.n_items was an IndexError after config.yaml was written; now a ValueError naming
    both keys, the run folder not made."""
    import test_flow_selfsup as tfs

    class Counted(tfs._FakeRealPairs):
        def __init__(self, **kw):
            super().__init__()
            self.n = kw["n_items"]

        def __getitem__(self, i):
            if i >= self.n:
                raise IndexError(f"item {i} out of range (n_items={self.n})")
            return super().__getitem__(i)
    monkeypatch.setattr(tfs, "_FakeRealPairs", Counted)
    with pytest.raises(ValueError, match=r"data\.n_occ_pairs=5 .*data\.n_items=4 holds only 4"):
        _loop_run(tmp_path, monkeypatch, "data.n_items=4", "data.n_occ_pairs=5")
    assert not (tmp_path / "loop").exists()


def test_selfsup_refuses_no_test_pairs_before_the_run_folder(tmp_path, monkeypatch):
    """data.n_test=0 (accepted by the config) trained the teacher, then died in torch.cat at its test evaluation;
    now refused first, no run folder made."""
    import test_flow_selfsup as tfs

    class Sized(tfs._FakeSynthetic):
        def __init__(self, **kw):
            super().__init__()
            self.n = kw["n_pairs"]
    monkeypatch.setattr(tfs, "_FakeSynthetic", Sized)
    with pytest.raises(ValueError, match=r"^data\.n_test must be >= 1 .*got 0$"):
        _loop_run(tmp_path, monkeypatch, "data.n_test=0", "train.student_steps=0")
    assert not (tmp_path / "loop").exists()


@pytest.mark.parametrize("data, key", [(dict(n_test=0), r"data\.n_test must be >= 1"),
                                       (dict(n_val_subjects=2, n_val=0), r"data\.n_val must be >= 1 when "
                                                                         r"data\.n_val_subjects=2")])
def test_supervised_flow_refuses_an_empty_scored_set_before_the_run_folder(tmp_path, data, key):
    """data.n_test=0 (or data.n_val=0 with validation subjects) trained every step, then died in torch.cat at the
    final evaluation before weights.pt, and again on every resume; now refused first, no run folder made."""
    from _flow_sizes import TINY_SRFLOWNET
    from flownet.models.srflownet import SRFlowNetConfig
    from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection, train
    cfg = FlowTrainConfig(name="t0", out_dir=str(tmp_path), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                          data=FlowDataConfig(size=32, n_train=4, frames_per_clip=1, **{"n_test": 1, **data}),
                          train=FlowTrainSection(regularizer="tvr", batch_size=2, steps=1, eval_every=1, ckpt_every=1,
                                                 log_every=100, threads=1))
    with pytest.raises(ValueError, match=key):
        train(cfg, progress=False)
    assert not (tmp_path / "t0").exists()


# ------------------------------------------------------------------------------------------- icegan flow eval

def _pair(name, h, w, seed=0):
    """A batch-of-one pair dict for flownet.evaluate.evaluate: a smooth texture moved 1 px right, exact flow."""
    from test_flow_selfsup import const_flow, smooth_texture
    img = smooth_texture(h, w, seed=seed)
    return {"name": name, "img1": img, "img2": torch.roll(img, 1, dims=-1), "flow": const_flow(1, 0, h, w),
            "valid": torch.ones(1, h, w)}


@pytest.mark.parametrize("argv, flag", [
    (["--data", "middlebury", "--n-pairs", "1"], r"--n-pairs applies to .* not middlebury"),
    (["--data", "middlebury", "--size", "64"], r"--size applies to .* not middlebury"),
    (["--data", "synthetic-face", "--n-pairs", "1", "--size", "32", "--iters", "3"],
     r"iters \(--iters\) applies to the recurrent models .* 'farneback' makes no recurrent updates")])
def test_flow_eval_refuses_options_it_would_ignore(tmp_path, capsys, argv, flag):
    """--n-pairs / --size with Middlebury and --iters with a classical method were accepted and ignored (every
    Middlebury pair scored at its own size, the method's own iterations); now a usage error naming the option, and
    no results file."""
    from icegan.cli import main
    out = tmp_path / "r.json"
    assert main(["flow", "eval", "--model", "farneback", *argv, "--json", str(out)]) == 2
    assert re.search(flag, capsys.readouterr().err)
    assert not out.exists()


def test_flow_eval_liteflownet2_refuses_iters():
    from flownet.evaluate import evaluate
    with pytest.raises(ValueError, match=r"'LiteFlowNet2' makes no recurrent updates"):
        evaluate("LiteFlowNet2", iters=4, pairs=[_pair("a", 16, 16)], progress=False)


def test_flow_eval_reports_every_image_size():
    """Pairs of two sizes (Middlebury's 388x584 and 480x640): image_sizes lists both in order of first pair, the
    table's footer says both; image_size stays the first pair's."""
    from flownet.evaluate import evaluate, format_table
    res = evaluate("farneback", pairs=[_pair("a", 16, 24), _pair("b", 20, 16), _pair("c", 16, 24)], progress=False)
    assert res["image_size"] == [16, 24]
    assert res["image_sizes"] == [[16, 24], [20, 16]]
    assert format_table(res).endswith("sizes [16, 24], [20, 16])")
    one = evaluate("farneback", pairs=[_pair("a", 16, 24)], progress=False)
    assert one["image_sizes"] == [[16, 24]] and format_table(one).endswith("size [16, 24])")


def test_flow_eval_refuses_a_non_finite_flow_naming_model_and_pair(tmp_path, capsys):
    """A network whose flow holds one NaN pixel was scored 'EPE nan' without a word and --json wrote NaN tokens
    (not JSON); now refused as flow run refuses it, the model and pair named, no results file."""
    from flownet.evaluate import evaluate
    from icegan.cli import main
    spec = tmp_path / "nanflow.py"
    spec.write_text("import torch\n"
                    "class NanNet(torch.nn.Module):\n"
                    "    def __init__(self):\n"
                    "        super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1))\n"
                    "    def forward(self, img1, img2):\n"
                    "        f = torch.zeros(img1.shape[0], 2, *img1.shape[-2:]) + self.w\n"
                    "        f[:, :, 5, 6] = float('nan')\n"
                    "        return f\n"
                    "def make(): return NanNet()\n")
    out = tmp_path / "r.json"
    assert main(["flow", "eval", "--model", "custom", "--module", f"{spec}:make", "--data", "synthetic-face",
                 "--n-pairs", "2", "--size", "32", "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: pair '0000:" in err and f"--module='{spec}:make': the flow network produced NaN/Inf" in err, err
    assert "at 1 of 1024 pixels" in err and err.strip().endswith("; no metrics reported"), err
    assert not out.exists()

    class Inf:                      # infinite on its third call: the warm-up, pair a, then pair b
        calls = 0

        def estimate(self, img1, img2):
            self.calls += 1
            f = torch.zeros(1, 2, *img1.shape[-2:])
            if self.calls == 3:
                f[0, 1, :2] = float("inf")
            return f
    with pytest.raises(ValueError, match=r"model 'mine' .* at 32 of 256 pixels on pair 'b'"):
        evaluate("mine", pairs=[_pair("a", 16, 16), _pair("b", 16, 16)], estimator=Inf(), progress=False)


# ------------------------------------------------------------------------------------------- Middlebury, strain

def test_middlebury_skips_macosx_and_hidden_folders_but_not_a_broken_sequence(tmp_path, shared_data):
    """A Middlebury folder unzipped on macOS (__MACOSX/ with ._frame10.png beside the sequences) was refused as a
    whole; hidden folders and __MACOSX/ are now not sequences, while a sequence missing a frame is still refused."""
    from flownet.data.middlebury import MiddleburyFlow
    src = shared_data / "middlebury"
    for s in ("Grove2", "RubberWhale"):
        (tmp_path / s).symlink_to(src / s)
    (tmp_path / "__MACOSX" / "RubberWhale").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "RubberWhale" / "._frame10.png").write_bytes(b"\0\5\26\7")
    (tmp_path / ".Trashes").mkdir()
    ds = MiddleburyFlow(tmp_path)
    assert ds.sequences == ["Grove2", "RubberWhale"]
    assert ds[1]["img1"].shape == (1, 388, 584)
    (tmp_path / "Broken").mkdir()
    (tmp_path / "Broken" / "frame10.png").symlink_to(src / "Grove2" / "frame10.png")
    (tmp_path / "Broken" / "flow10.flo").symlink_to(src / "Grove2" / "flow10.flo")
    with pytest.raises(FileNotFoundError, match=r"Middlebury sequence Broken: missing .*Broken/frame11\.png"):
        MiddleburyFlow(tmp_path)


def test_strain_docstring_states_what_a_finite_rotation_gives():
    """The strain of a translation or an infinitesimal rotation is zero (1e-6), of a finite rotation by t
    sqrt(2) * (1 - cos t), as the module docstring now says (it said a rotation has zero strain)."""
    import flownet.strain as st
    h = w = 64
    y, x = torch.meshgrid(torch.arange(h).double() - 31.5, torch.arange(w).double() - 31.5, indexing="ij")
    for deg in (0.5, 1.5, 5.0):
        t = math.radians(deg)
        finite = torch.stack([(math.cos(t) - 1) * x - math.sin(t) * y, math.sin(t) * x + (math.cos(t) - 1) * y])
        s = st.optical_strain(finite[None])
        assert torch.allclose(s, torch.full_like(s, math.sqrt(2) * (1 - math.cos(t))), atol=1e-6)
        assert float(st.optical_strain(torch.stack([-t * y, t * x])[None]).max()) <= 1e-6 + 1e-15
    doc = " ".join(st.__doc__.split())
    assert "a finite rotation by an angle t does not" in doc and "sqrt(2) * (1 - cos t)" in doc
    assert "4.85e-4 at 1.5" in doc


def test_occluded_fraction_over_no_pairs_reports_nothing_instead_of_nan():
    """data.n_occ_pairs=0: the occluded fraction over no real pairs is not reported ({}), so metrics.json stays JSON
    (a mean over no pairs was NaN, written as a bare NaN token)."""
    import json

    import torch

    from flownet.selfsup import occluded_fraction

    model = torch.nn.Conv2d(1, 1, 1)
    model.config = type("C", (), {"iters": 1})()
    res = occluded_fraction(model, [], 0.01, [0.5, 0.05])
    assert res == {}
    json.dumps({"final_occ_frac": res}, allow_nan=False)


def test_selfsup_init_weights_differing_only_in_iters_pass_the_architecture_check():
    """iters (the default update count at inference) sets no weight: init weights saved with another iters (the
    shipped SRFlowNet has 2) load into the self-supervised run's model; another architecture key is named with both
    values (flownet.models.srflownet.architecture_differences, shared with DecFlow's init)."""
    from dataclasses import replace

    from flownet.models.srflownet import SRFlowNet, SRFlowNetConfig, architecture_differences

    base = SRFlowNet(SRFlowNetConfig(iters=8)).config_dict()
    assert architecture_differences(SRFlowNet(SRFlowNetConfig(iters=2)).config_dict(), base) == []
    other = SRFlowNet(replace(SRFlowNetConfig(iters=2), hidden=16)).config_dict()
    assert architecture_differences(other, base) == ["hidden"]
