"""Defects of review r59a (icegan/data/spotting.py, icegan/data/prepare.py, flownet/frame_io.py, flownet/train.py,
flownet/selfsup.py, flownet/data/real_pairs.py, flownet/data/synthetic_face.py).

1. A frame the file system would not let apex spotting read (permission denied) was reported as a plain ValueError,
   so prepare kept the clip's skip for good (``COMPLETE``), unlike the same error on a frame read by prepare itself.
2. An unfinished LiteFlowNet2 run whose config.yaml holds ``train.iters`` (taken silently before audit 59) could not
   be resumed: check_unread_settings refused the old value, refuse_other_settings the default.
3. flownet listed CASME II frames with two patterns: RealFramePairs took ``reg_img*.jpg``, list_subjects and
   SyntheticFaceFlow only ``img*.jpg`` (self-supervised training on a reg_img root: "no CASME II frames").
5. A flow run that stopped on its time budget said nothing about it; a rerun trained 0 steps without a word.
"""
from __future__ import annotations

import pathlib
import re

import cv2
import numpy as np
import pytest
import torch
import yaml
from _fake_clock import fake_clock
from _flow_sizes import TINY_SRFLOWNET

import flownet.selfsup as ss
from flownet.models.liteflownet2 import LiteFlowNet2Config
from flownet.models.srflownet import SRFlowNetConfig
from flownet.selfsup import SelfSupConfig, train_selfsup
from flownet.train import FlowDataConfig, FlowTrainConfig, FlowTrainSection, train
from icegan.config import load_config


# ------------------------------------------------------------------------ 1. read errors of apex spotting

def _blocked_read_bytes(monkeypatch, name: str, parent: str):
    """``Path.read_bytes`` raises PermissionError for ``<parent>/<name>`` while ``blocked[0]``; returns ``blocked``."""
    real, blocked = pathlib.Path.read_bytes, [True]

    def read_bytes(self):
        if blocked[0] and self.name == name and self.parent.name == parent:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)
    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    return blocked


def test_read_frame_raises_frame_access_error_for_an_os_error(tmp_path, monkeypatch):
    from flownet.frame_io import FrameAccessError, read_frame
    from icegan.data import prepare
    assert prepare.FrameAccessError is FrameAccessError and issubclass(FrameAccessError, ValueError)
    cv2.imwrite(str(tmp_path / "img1.png"), np.zeros((8, 8), np.uint8))
    _blocked_read_bytes(monkeypatch, "img1.png", tmp_path.name)
    with pytest.raises(FrameAccessError, match=r"cannot read image .*img1\.png: Permission denied"):
        read_frame(tmp_path / "img1.png")
    (tmp_path / "empty.png").write_bytes(b"")           # a problem of the data: a plain ValueError
    with pytest.raises(ValueError) as info:
        read_frame(tmp_path / "empty.png")
    assert not isinstance(info.value, FrameAccessError)


def test_permission_denied_during_apex_spotting_is_prepared_again_once_readable(tmp_path, monkeypatch):
    """Two clips without an apex (spotted, as all of SMIC); take1/img3.png cannot be read on the first run. The skip
    must not be kept for good: once the file is readable the next prepare prepares take1 (it used to be a cache
    hit repeating ``apex spotting: cannot read image ...: Permission denied``)."""
    from icegan.data import prepare as prep
    rng = np.random.default_rng(0)
    for name in ("take1", "take2"):
        (tmp_path / name).mkdir()
        for n in range(1, 10):
            cv2.imwrite(str(tmp_path / name / f"img{n}.png"), rng.integers(0, 256, (24, 24), dtype=np.uint8))
    (tmp_path / "clips.csv").write_text("subject,clip,frames,onset,apex,offset,label\n"
                                        "p01,take1,take1,1,,9,positive\np01,take2,take2,1,,9,positive\n")
    blocked = _blocked_read_bytes(monkeypatch, "img3.png", "take1")

    def cfg():
        return prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(tmp_path / "clips.csv"))],
                                  cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False,
                                  apex_spotting="middle")
    first = prep.prepare_dataset(cfg())
    assert list(first.manifest["clip"]) == ["take2"]
    assert any("apex spotting" in r and "Permission denied" in r for r in first.skipped["reason"])
    blocked[0] = False
    again = prep.prepare_dataset(cfg())
    assert sorted(again.manifest["clip"]) == ["take1", "take2"]
    assert len(again.skipped) == 0


# --------------------------------------------------------------- 2. resume of an old LiteFlowNet2 run

def _lfn_cfg(tmp_path, root, steps, **train_kw):
    kw = dict(regularizer="tvr", batch_size=2, crop=0, steps=steps, eval_every=0, threads=1, seed=1, log_every=100,
              ckpt_every=1, init_weights=None, backbone="liteflownet2")
    c = FlowTrainConfig(name="r", out_dir=str(tmp_path / "runs"), model=SRFlowNetConfig(),
                        data=FlowDataConfig(root=str(root), size=32, n_train=4, n_test=1, frames_per_clip=1),
                        train=FlowTrainSection(**{**kw, **train_kw}))
    c.liteflownet2 = LiteFlowNet2Config(netc_channels=(8, 8, 8, 8, 8, 8))
    return c


def test_unfinished_liteflownet2_run_with_train_iters_in_its_config_resumes_with_the_defaults(tmp_path, shared_data,
                                                                                           capsys):
    """config.yaml as icegan wrote it before audit 59 for train.iters=13 (LiteFlowNet2 reads no train.iters): the
    resume with the default train.iters goes on (it used to be refused as '13 there, 6 now', while train.iters=13
    was refused as not read by LiteFlowNet2). A setting it does read (train.lr) still refuses the resume."""
    run = tmp_path / "runs" / "r"
    train(_lfn_cfg(tmp_path, shared_data, 1), progress=False)
    d = yaml.safe_load((run / "config.yaml").read_text())
    d["train"]["iters"], d["train"]["gamma"] = 13, 0.5
    d["model"]["corr_levels"] = 2
    (run / "config.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    with pytest.raises(ValueError, match="train.lr"):
        train(_lfn_cfg(tmp_path, shared_data, 2, lr=1e-2), progress=False)
    capsys.readouterr()
    train(_lfn_cfg(tmp_path, shared_data, 2), progress=False)
    assert "resumed" in capsys.readouterr().out
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2


# ------------------------------------------------------------------------------- 3. one frame pattern

def _reg_root(tmp_path, shared_data, n_subjects=5):
    """A data root whose casme2/ holds the frames of the first verified clip of ``n_subjects`` shared subjects,
    renamed ``reg_img<n>.jpg`` as in the official Cropped release (links), with their manifest rows."""
    import csv
    src = shared_data / "casme2"
    with open(src / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    first: dict = {}
    for r in rows:
        if r["verified"] == "True" and (src / r["subject"] / r["filename"]).is_dir():
            first.setdefault(r["subject"], r)
    keep = [first[s] for s in sorted(first)[:n_subjects]]
    for r in keep:
        clip = src / r["subject"] / r["filename"]
        out = tmp_path / "casme2" / r["subject"] / r["filename"]
        out.mkdir(parents=True)
        for f in clip.iterdir():
            if re.fullmatch(r"img\d+\.jpg", f.name):
                (out / f"reg_{f.name}").symlink_to(f)
    with open(tmp_path / "casme2" / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    return tmp_path, [r["subject"] for r in keep]


def test_list_subjects_and_synthetic_face_flow_read_reg_img_frames(tmp_path, shared_data):
    from flownet.data.real_pairs import RealFramePairs
    from flownet.data.synthetic_face import SyntheticFaceFlow, list_subjects
    root, subs = _reg_root(tmp_path, shared_data)
    assert list_subjects(root) == subs
    ds = SyntheticFaceFlow(root=root, split="train", n_pairs=2, n_test=1, size=32)
    assert ds.frames and all(p.name.startswith("reg_img") for p in ds.frames)
    assert {p.parent.parent.name for p in ds.frames} == set(ds.subjects)
    ds1 = SyntheticFaceFlow(root=root, split="train", n_pairs=2, n_test=1, size=32, frames_per_clip=2)
    nums = [int(re.fullmatch(r"reg_img(\d+)\.jpg", p.name).group(1)) for p in ds1.frames]
    assert len(nums) == 2 * len(ds.subjects) and all(a < b for a, b in zip(nums[::2], nums[1::2]))
    pairs = RealFramePairs(root=root, split="train", size=32, n_test=1, n_items=2)
    assert pairs.subjects == ds.subjects


def _old_frames(root, subjects, frames_per_clip):
    """SyntheticFaceFlow's frame list as icegan listed it before this review (glob ``*/img*.jpg``)."""
    frames = sorted(p for s in subjects for p in (root / "casme2" / s).glob("*/img*.jpg"))
    if not frames_per_clip:
        return frames
    key = lambda p: (0, int(re.fullmatch(r"img([0-9]+)\.jpg", p.name).group(1)), "")  # noqa: E731
    by_clip: dict = {}
    for p in frames:
        by_clip.setdefault(p.parent, []).append(p)
    keep = []
    for clip in sorted(by_clip):
        fs = sorted(by_clip[clip], key=key)
        idx = np.unique(np.linspace(0, len(fs) - 1, min(frames_per_clip, len(fs))).round().astype(int))
        keep += [fs[j] for j in idx]
    return keep


def test_shared_data_frame_lists_and_their_order_are_unchanged(shared_data):
    """The recorded EPEs depend on the frames SyntheticFaceFlow lists and their order: on the shared data (img names
    only) they are those of the old ``*/img*.jpg`` listing, and the subjects those it listed."""
    from flownet.data.synthetic_face import SyntheticFaceFlow, list_subjects
    c2 = shared_data / "casme2"
    assert list_subjects(shared_data) == sorted(p.name for p in c2.iterdir() if p.is_dir()
                                                and any(p.glob("*/img*.jpg")))
    for split, fpc, n_val in (("train", 0, 0), ("test", 0, 0), ("train", 3, 0), ("val", 5, 2), ("train", 1, 2)):
        ds = SyntheticFaceFlow(root=shared_data, split=split, n_pairs=1, frames_per_clip=fpc, n_val=n_val, size=32)
        assert ds.frames == _old_frames(shared_data, ds.subjects, fpc), (split, fpc, n_val)


# --------------------------------------------------------------------- 5. the time budget says so

def _cfg(tmp_path, root, **train_kw):
    kw = dict(regularizer="tvr", batch_size=2, crop=0, steps=1000, eval_every=0, threads=1, seed=1, log_every=100,
              ckpt_every=100, init_weights=None, iters=1, max_minutes=0.001)
    return FlowTrainConfig(name="r", out_dir=str(tmp_path / "runs"), model=SRFlowNetConfig(**TINY_SRFLOWNET),
                           data=FlowDataConfig(root=str(root), size=32, n_train=4, n_test=1, frames_per_clip=1),
                           train=FlowTrainSection(**{**kw, **train_kw}))


_STOPPED = re.compile(r"stopped at step (\d+) of 1000 by train\.max_minutes \(([0-9.]+) min used, counted across "
                      r"resumes\); rerun with a larger train\.max_minutes to train on")


def test_supervised_run_stopped_by_its_time_budget_says_so_and_so_does_its_rerun(tmp_path, shared_data, capsys):
    train(_cfg(tmp_path, shared_data), progress=False)
    m = _STOPPED.search(capsys.readouterr().out)
    assert m and int(m.group(1)) >= 1
    train(_cfg(tmp_path, shared_data), progress=False)
    again = _STOPPED.search(capsys.readouterr().out)
    assert again and again.group(1) == m.group(1)
    train(_cfg(tmp_path / "b", shared_data, max_minutes=0, steps=2), progress=False)
    assert "stopped at step" not in capsys.readouterr().out      # ended on train.steps: no word


def test_selfsup_stage_stopped_by_its_time_budget_says_so(tmp_path, shared_data, monkeypatch, capsys):
    from functools import partial

    import flownet.data.real_pairs as real_pairs
    monkeypatch.setattr(real_pairs, "RealFramePairs", partial(real_pairs.RealFramePairs, max_clips=3))
    fake_clock(monkeypatch, ss, teacher_step_loss=40.0)
    tiny = [f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY_SRFLOWNET.items()]

    def cfg():
        return load_config(SelfSupConfig, "configs/flow_selfsup.yaml", [
            f"out_dir={tmp_path}", "name=s", f"data.root={shared_data}", "data.size=64", "data.crop=48",
            "data.n_items=4", "data.n_test=1", "data.n_occ_pairs=1", "train.teacher_minutes=1",
            "train.student_minutes=0", "train.teacher_steps=1000", "train.student_steps=1",
            "train.eval_every=0", "train.ckpt_every=1", "train.log_every=100", "train.batch_size=2", "train.iters=1",
            "train.teacher_iters=1", "train.seed=1", "train.slic_segments=8", *tiny])
    train_selfsup(cfg(), progress=False)
    out = capsys.readouterr().out
    assert re.search(r"teacher stage: stopped at step 2 of 1000 by train\.teacher_minutes \(1\.3 min used, counted "
                     r"across resumes\); rerun with a larger train\.teacher_minutes to train on", out), out
    assert "student stage: stopped" not in out           # the student ended on its train.student_steps
