"""Small defects of the flow package, each pinned by a test that fails on the code before its fix:

* :func:`flownet.selfsup.train_selfsup` with ``data.n_items: null`` (all distinct pairs) and fewer real pairs than
  ``train.batch_size``: refused, naming the keys and the fix, before the run folder is made (the check ran only for a
  number of items; the YAML key did not even take null).
* the student stage's TensorBoard steps follow the teacher's (:data:`flownet.selfsup.STUDENT_TB_OFFSET`).
* one shared-data-root rule (:mod:`flownet.paths`), which :mod:`icegan.paths` and flownet's data sets both use.
* ``frames_per_clip`` picks evenly spaced frames in frame-number order, also in clips whose numbers pass 99
  (``img100`` sorted as text came before ``img46``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

#: a tiny SRFlowNet (the self-supervised tests' size): a step takes milliseconds on one CPU thread
_TINY = dict(feature_layers=[8, 8, 16, 16, 16], context_layers=[8, 8, 16, 16, 32], hidden=16, corr_levels=2,
             motion_channels=16, flow_head_hidden=16, mask_hidden=16, iters=2)


def _selfsup_config(tmp_path: Path, *over: str):
    from flownet.selfsup import SelfSupConfig
    from icegan.config import load_config
    model = [f"model.{k}={v}" for k, v in _TINY.items()]
    return load_config(SelfSupConfig, "configs/flow_selfsup.yaml", [f"out_dir={tmp_path / 'runs'}", *model, *over])


def _write_jpg(path: Path, value: int, side: int = 32) -> None:
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((side, side, 3), value, np.uint8)
    img[::4] = 255 - value                    # some structure, so that nothing treats the frame as blank
    assert cv2.imwrite(str(path), img)


def _casme2_two_frame_clips(root: Path, n_subjects: int = 5) -> Path:
    """A CASME II layout of ``n_subjects`` subjects, each one verified clip img1, img2 (onset 1, apex 2): a subject
    holds two distinct real pairs (img1→img2 consecutive and onset→apex)."""
    rows = ["subject,filename,onset,apex,verified,note"]
    for i in range(1, n_subjects + 1):
        for n in (1, 2):
            _write_jpg(root / "casme2" / f"sub{i:02d}" / "EP01" / f"img{n}.jpg", 40 * n + i)
        rows.append(f"sub{i:02d},EP01,1,2,True,")
    (root / "casme2" / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


class _PastTheRefusal(Exception):
    """Raised by a stand-in for the synthetic test pairs, which a run builds only after its run folder."""


def test_selfsup_all_items_fewer_than_a_batch_are_refused_before_the_run_folder(tmp_path, monkeypatch):
    """``data.n_items: null`` is the number of distinct real pairs (:class:`~flownet.data.real_pairs.RealFramePairs`);
    with 5 subjects, 4 held out, the one train subject holds 2 pairs, fewer than ``train.batch_size=4``: refused with
    a message naming both keys and the fix, no run folder made, never reaching the synthetic test pairs or the
    training loop (the stand-in below raises if it does, so the test cannot wait on an endless loader)."""
    import flownet.data.synthetic_face as sf
    from flownet.selfsup import train_selfsup

    def past(**kw):
        raise _PastTheRefusal
    monkeypatch.setattr(sf, "SyntheticFaceFlow", past)
    root = _casme2_two_frame_clips(tmp_path / "data")
    cfg = _selfsup_config(tmp_path, "name=few", f"data.root={root}", "data.n_items=null", "train.batch_size=4",
                          "train.teacher_steps=1", "train.student_steps=0")
    assert cfg.data.n_items is None
    with pytest.raises(ValueError, match=r"data\.n_items=null takes the 2 distinct real pairs of the train subjects "
                                         r"\['sub\d\d'\] .* no whole batch of train\.batch_size=4; set 1 <= "
                                         r"train\.batch_size <= 2, or data\.n_items >= train\.batch_size"):
        train_selfsup(cfg, progress=False)
    assert not (tmp_path / "runs" / "few").exists()
    # the same data and a batch it fills gets past the check (to the synthetic test pairs, built after the folder)
    with pytest.raises(_PastTheRefusal):
        train_selfsup(_selfsup_config(tmp_path, "name=fits", f"data.root={root}", "data.n_items=null",
                                      "train.batch_size=2", "data.n_occ_pairs=2"), progress=False)
    assert (tmp_path / "runs" / "fits" / "config.yaml").is_file()


# ------------------------------------------------------------------------- TensorBoard steps of the two stages

def _texture(seed: int, side: int = 32) -> torch.Tensor:
    """(1, side, side) smooth random texture in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, side, side, generator=g)
    for _ in range(2):
        x = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    x = (x - x.min()) / (x.max() - x.min())
    return x[0]


class _FakeRealPairs(torch.utils.data.Dataset):
    """Stands in for RealFramePairs: 8 textures, the second frame moved 1 px right."""

    def __init__(self, **kw):
        self.subjects, self.pairs, self.skipped = ["sub01"], {"consecutive": [1], "onset_apex": [1]}, []

    def __len__(self):
        return 8

    def __getitem__(self, i):
        img = _texture(i)
        return {"img1": img, "img2": torch.roll(img, 1, dims=-1)}


class _FakeSynthetic(_FakeRealPairs):
    """Stands in for the synthetic facial test pairs: 2 pairs with their 1 px flow, every pixel valid."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        flow = torch.zeros(2, 32, 32)
        flow[0] = 1.0
        return {**super().__getitem__(i), "flow": flow, "valid": torch.ones(32, 32)}


def test_selfsup_student_tensorboard_steps_follow_the_teachers(tmp_path, monkeypatch):
    """A two-stage run (3 teacher steps, 2 student steps, logged every step, tested every 2): the teacher's scalars
    are at its steps 1..3, the student's at STUDENT_TB_OFFSET + its steps, so every student point lies after every
    teacher point on TensorBoard's step axis (without the offset both stages would be drawn over steps 1..3)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import flownet.data.real_pairs as rp
    import flownet.data.synthetic_face as sf
    from flownet.selfsup import STUDENT_TB_OFFSET, train_selfsup
    monkeypatch.setattr(rp, "RealFramePairs", _FakeRealPairs)
    monkeypatch.setattr(sf, "SyntheticFaceFlow", _FakeSynthetic)
    cfg = _selfsup_config(tmp_path, "name=tb", "data.crop=24", "data.n_occ_pairs=1", "train.teacher_steps=3",
                          "train.student_steps=2", "train.teacher_minutes=0", "train.student_minutes=0",
                          "train.log_every=1", "train.eval_every=2", "train.ckpt_every=10", "train.batch_size=2",
                          "train.iters=2", "train.teacher_iters=2")
    train_selfsup(cfg, progress=False)
    acc = EventAccumulator(str(tmp_path / "runs" / "tb" / "tb"))
    acc.Reload()
    steps = {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert steps["teacher/loss"] == steps["teacher/lr"] == [1, 2, 3]
    assert steps["test_teacher/EPE"] == [2]
    assert steps["student/loss"] == steps["student/noise_frac"] == [STUDENT_TB_OFFSET + 1, STUDENT_TB_OFFSET + 2]
    assert steps["test_student/EPE"] == [STUDENT_TB_OFFSET + 2]
    teacher = [s for tag, v in steps.items() if tag.split("/")[0] in ("teacher", "test_teacher") for s in v]
    student = [s for tag, v in steps.items() if tag.split("/")[0] in ("student", "test_student") for s in v]
    assert len(teacher) + len(student) == sum(map(len, steps.values())) and student
    assert min(student) > max(teacher)


# ------------------------------------------------------------------------------------------ the shared data root

def test_one_shared_data_root_rule_serves_icegan_and_flownet(monkeypatch, tmp_path):
    """:mod:`flownet.paths` holds the rule; :mod:`icegan.paths` and flownet's data sets take it from there (flownet had
    a copy of its own in flownet/data/synthetic_face.py, with another message): a change of the rule reaches both,
    and both give the same folder, or refuse with the same message, in each case."""
    import flownet.paths as rule
    import icegan.paths as paths
    from flownet.data import synthetic_face

    monkeypatch.setenv("ICEGAN_SHARED_DATA", str(tmp_path / "env"))
    assert paths.shared_data_root() == synthetic_face.shared_data_root() == rule.shared_data_root() == tmp_path / "env"
    monkeypatch.setenv("ICEGAN_SHARED_DATA", "")                   # empty: as unset
    beside = rule.REPO_ROOT.parent / "shared" / "data"
    assert paths.shared_data_root() == synthetic_face.shared_data_root() == beside
    assert paths.shared_data_root_or_none() == beside

    # installed (no pyproject.toml beside the packages): both refuse with the one message, which names the variable
    monkeypatch.delenv("ICEGAN_SHARED_DATA")
    monkeypatch.setattr(paths, "is_checkout", lambda: False)
    monkeypatch.setattr(synthetic_face, "_REPO", tmp_path)
    messages = []
    for where in (paths.shared_data_root, synthetic_face.shared_data_root, lambda: rule.shared_data_root(None)):
        with pytest.raises(FileNotFoundError) as exc:
            where()
        messages.append(str(exc.value))
    assert messages == [rule.SHARED_DATA_UNSET] * 3 and paths.SHARED_DATA_UNSET is rule.SHARED_DATA_UNSET
    assert "set ICEGAN_SHARED_DATA" in rule.SHARED_DATA_UNSET and paths.shared_data_root_or_none() is None

    # one definition: the rule replaced in flownet.paths is what both callers now answer
    monkeypatch.setattr(rule, "shared_data_root_or_none", lambda repo=rule.REPO_ROOT: tmp_path / "ruled")
    assert paths.shared_data_root() == synthetic_face.shared_data_root() == tmp_path / "ruled"
    assert paths.shared_data_root_or_none() == tmp_path / "ruled"


def test_flownet_paths_imports_no_icegan():
    """flownet stands alone (flownet/__init__.py): importing its data root rule and data sets loads no icegan module."""
    import subprocess
    import sys
    code = ("import sys; import flownet.paths, flownet.data.synthetic_face, flownet.data.real_pairs; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'icegan'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ frames_per_clip in frame order

def test_frames_per_clip_spaces_frames_in_time_across_img99_and_img100(tmp_path):
    """A clip img95 ... img104 (10 frames), ``frames_per_clip=3``: positions round(linspace(0, 9, 3)) = 0, 4, 9 of the
    frames in time are img95, img99, img104 (text order img100 ... img104, img95 ... img99 picked img100, img104 and
    img99: two of the three adjacent frames, the onset never). Without ``frames_per_clip`` the frame list keeps its
    text order, so the pair each index draws, and with it every recorded synthetic test score, stays as it was."""
    from flownet.data.synthetic_face import SyntheticFaceFlow
    for i in range(1, 7):
        for n in range(95, 105):
            _write_jpg(tmp_path / "casme2" / f"sub{i:02d}" / "EP01" / f"img{n}.jpg", n)
        _write_jpg(tmp_path / "casme2" / f"sub{i:02d}" / "EP02" / "img7.jpg", 7)
    ds = SyntheticFaceFlow(root=tmp_path, split="train", n_test=1, n_pairs=1, frames_per_clip=3)
    assert len(ds.subjects) == 5
    assert [(p.parent.parent.name, p.parent.name, p.name) for p in ds.frames] == [
        (s, clip, f"img{n}.jpg") for s in ds.subjects for clip, ns in (("EP01", (95, 99, 104)), ("EP02", (7,)))
        for n in ns]
    every = SyntheticFaceFlow(root=tmp_path, split="train", n_test=1, n_pairs=1).frames
    assert every == sorted(every) and len(every) == 5 * 11


# ------------------------------------------------------------------- float16 weights files without a conversion

def test_the_shipped_float16_decflow_loads_as_float32_of_its_stored_values():
    """The shipped DecFlow weights are float16 (save_decflow(half=True)); load_decflow, which passed a half → float
    conversion to load_model_file before that parameter went, still gives a float32 network holding exactly the
    stored values: nn.Module.load_state_dict casts each tensor to the module's dtype."""
    from flownet.models.decflow import default_decflow_path, load_decflow
    stored = torch.load(default_decflow_path(), map_location="cpu", weights_only=True)["state_dict"]
    assert {v.dtype for v in stored.values()} == {torch.float16}
    loaded = load_decflow().state_dict()
    assert loaded.keys() == stored.keys()
    assert all(loaded[k].dtype == torch.float32 and torch.equal(loaded[k], stored[k].float()) for k in stored)
