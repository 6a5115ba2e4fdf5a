"""Tests written by a mutation audit of the real facial frame pairs and the flow / feature commands
(:mod:`flownet.data.real_pairs`, :mod:`flownet.data.orientation`, :mod:`icegan.commands.flow`,
:mod:`icegan.commands.features` and the files :func:`icegan.pipeline.export_features` writes for it): each one fails
on a small deliberate change of the code that the earlier tests let pass (named in the test's docstring). Expected
values are worked out by hand in the comments (a known flow, a known count of frames, a known draw), never copied
from the code's output. Frames are tiny pictures written here; no real data is read (the SHA-256 of the shipped
SRFlowNet weights is computed from the file)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest


# --------------------------------------------------------------------------------- flownet.data.real_pairs

def _clip(root: Path, subject: str, name: str, sizes: dict[int, tuple[int, int]]) -> None:
    """Frames ``img{n}.jpg`` of clip ``casme2/<subject>/<name>``, each (height, width) as ``sizes[n]``, grey value
    10 * n (so every frame differs)."""
    import cv2
    clip = root / "casme2" / subject / name
    clip.mkdir(parents=True, exist_ok=True)
    for n, (h, w) in sizes.items():
        cv2.imwrite(str(clip / f"img{n}.jpg"), np.full((h, w), 10 * n % 250, np.uint8))


def _manifest(root: Path, rows: list[str], header: str = "subject,filename,onset,apex,verified,note") -> None:
    (root / "casme2").mkdir(parents=True, exist_ok=True)
    (root / "casme2" / "manifest.csv").write_text("\n".join([header, *rows]) + "\n")


def _four_frames(root: Path) -> Path:
    """One verified clip sub01/EP01 of frames 1-4 (onset 1, apex 4): consecutive pairs 1→2, 2→3, 3→4."""
    _clip(root, "sub01", "EP01", {n: (24, 24) for n in (1, 2, 3, 4)})
    _manifest(root, ["sub01,EP01,1,4,True,"])
    return root


def test_real_pairs_draw_every_pair_of_a_kind_about_equally_often(tmp_path):
    """Items draw the pair uniformly within its kind: 3 consecutive pairs over 90 items are each drawn about
    90 / 3 = 30 times (binomial sd sqrt(90 * 1/3 * 2/3) = 4.5; 15..45 is more than 3 sd either side) (mutation
    killed: every item the kind's first pair, 1→2 90 times; the earlier tests had one pair per kind, or looked only
    at the kinds drawn)."""
    from flownet.data.real_pairs import RealFramePairs
    ds = RealFramePairs(root=_four_frames(tmp_path), subjects=["sub01"], size=16, kinds=("consecutive",),
                        flip=False, n_items=90)
    counts = Counter((Path(ds[i]["path1"]).name, Path(ds[i]["path2"]).name) for i in range(90))
    assert set(counts) == {("img1.jpg", "img2.jpg"), ("img2.jpg", "img3.jpg"), ("img3.jpg", "img4.jpg")}
    assert all(15 <= c <= 45 for c in counts.values()), counts


def test_real_pairs_seed_decides_the_draws(tmp_path):
    """``seed`` decides the pair, crop and flip of item i (the class docstring: item i is determined by (seed, i)):
    the same seed twice draws the same 40 items, another seed other ones (3 pairs x 9 crop positions x 2 flips = 54
    outcomes per item: 40 equal draws by chance have probability about (1/54)^40) (mutation killed: the seed
    ignored, every run drawing the sequence of seed 0)."""
    from flownet.data.real_pairs import RealFramePairs
    root = _four_frames(tmp_path)

    def draws(seed):
        ds = RealFramePairs(root=root, subjects=["sub01"], size=16, crop=14, kinds=("consecutive",), seed=seed,
                            n_items=40)
        return [(it["path1"], it["img1"].numpy().tobytes()) for it in (ds[i] for i in range(40))]
    assert draws(3) == draws(3)
    assert draws(0) != draws(3)


def test_real_onset_apex_pairs_skip_a_clip_whose_apex_frame_has_another_size(tmp_path):
    """With onset→apex pairs only, the clip is still checked for the two frames it pairs: an apex of another size
    (20 x 40 against a 24 x 24 onset; a frame of another crop) skips the clip at construction, naming both frames and
    sizes, and the other clip's pair stays (mutation killed: only the onset's size looked at, so the pair passed and
    stopped a training run when first drawn; the earlier test resized a frame beside the apex, not the apex)."""
    from flownet.data.real_pairs import RealFramePairs
    _clip(tmp_path, "sub01", "EP01", {1: (24, 24), 2: (24, 24), 3: (20, 40)})
    _clip(tmp_path, "sub01", "EP02", {1: (24, 24), 2: (24, 24), 3: (24, 24)})
    _manifest(tmp_path, ["sub01,EP01,1,3,True,", "sub01,EP02,1,3,True,"])
    with pytest.warns(UserWarning, match=r"sub01/EP01: frame img3\.jpg is 40x20 pixels, img1\.jpg 24x24"):
        ds = RealFramePairs(root=tmp_path, subjects=["sub01"], size=16, kinds=("onset_apex",), flip=False)
    assert [(a.parent.name, a.name, b.name) for a, b in ds.pairs["onset_apex"]] == [("EP02", "img1.jpg", "img3.jpg")]
    assert [s.split(":")[0] for s in ds.skipped] == ["sub01/EP01"]


def test_real_pairs_decode_each_frame_once_preloaded_or_not(tmp_path, monkeypatch):
    """Frames are decoded once and kept in memory (module docstring: no per-step JPEG decoding): ``preload=True``
    decodes the 4 distinct frames of the clip (pairs 1→2, 2→3, 3→4 and 1→4 share them) at construction, then 30
    items decode nothing; without preload, 30 items decode each frame at most once, 4 reads in all (mutations
    killed: the decoded frame not kept, decoded again on every draw; ``preload`` doing nothing)."""
    import flownet.frame_io as frame_io
    from flownet.data.real_pairs import RealFramePairs
    root = _four_frames(tmp_path)
    reads = []
    real = frame_io.read_frame
    monkeypatch.setattr(frame_io, "read_frame",
                        lambda path, *a, **k: (reads.append(Path(path).name), real(path, *a, **k))[1])
    ds = RealFramePairs(root=root, subjects=["sub01"], size=16, n_items=30, preload=True)
    assert sorted(reads) == ["img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg"]
    for i in range(30):
        ds[i]
    assert len(reads) == 4
    reads.clear()
    lazy = RealFramePairs(root=root, subjects=["sub01"], size=16, n_items=30)
    assert reads == []
    for i in range(30):
        lazy[i]
    assert sorted(reads) == ["img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg"]


def test_real_pairs_name_the_frame_of_another_size_against_the_common_size(tmp_path):
    """When the sheet's onset frame is not in the folder (consecutive pairs only), a clip's frames are compared
    with their most common size: of three 24 x 24 frames and one 40 x 20 (width x height), img7 is the odd one,
    named against img5 (the first of the common size) (mutation killed: the least common size taken as the
    reference, naming img5 as odd against img7, and 'and 2 more')."""
    from flownet.data.real_pairs import RealFramePairs
    _clip(tmp_path, "sub01", "EP01", {5: (24, 24), 6: (24, 24), 7: (20, 40), 8: (24, 24)})
    _clip(tmp_path, "sub01", "EP02", {1: (24, 24), 2: (24, 24)})
    _manifest(tmp_path, ["sub01,EP01,1,3,True,", "sub01,EP02,1,2,True,"])     # EP01's onset 1 is not on disk
    with pytest.warns(UserWarning):
        ds = RealFramePairs(root=tmp_path, subjects=["sub01"], size=16, kinds=("consecutive",))
    assert ds.skipped == ["sub01/EP01: frame img7.jpg is 40x20 pixels, img5.jpg 24x24: the frames of a clip must "
                          "have one size (a frame of another crop mixed in?); clip skipped"]


def test_real_pairs_refuse_a_manifest_without_a_required_column(tmp_path):
    """A manifest without its ``verified`` column is refused by name (mutation killed: the column check gone, every
    row then a KeyError 'verified' naming no file)."""
    from flownet.data.real_pairs import RealFramePairs, read_manifest
    _clip(tmp_path, "sub01", "EP01", {1: (24, 24), 2: (24, 24)})
    _manifest(tmp_path, ["sub01,EP01,1,2"], header="subject,filename,onset,apex")
    path = tmp_path / "casme2" / "manifest.csv"
    with pytest.raises(ValueError, match=rf"{path}: missing column\(s\) \['verified'\]"):
        read_manifest(path)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['verified'\]"):
        RealFramePairs(root=tmp_path, subjects=["sub01"])


@pytest.mark.parametrize("kw, words", [(dict(size=16, crop=17), "0 <= crop <= size, got size=16, crop=17"),
                                       (dict(onset_apex_prob=1.5), r"onset_apex_prob must be in \[0, 1\], got 1.5"),
                                       (dict(onset_apex_prob=-0.1), r"onset_apex_prob must be in \[0, 1\]")])
def test_real_pairs_refuse_a_crop_beyond_the_frame_and_a_probability_outside_0_1(tmp_path, kw, words):
    """A crop larger than the resized frame and an onset→apex probability outside [0, 1] are refused when the set
    is made, by name (mutations killed: the crop check gone, a numpy 'high <= 0' at the first item; the probability
    check gone, 1.5 silently read as 1)."""
    from flownet.data.real_pairs import RealFramePairs
    with pytest.raises(ValueError, match=words):
        RealFramePairs(root=_four_frames(tmp_path), subjects=["sub01"], **kw)


# -------------------------------------------------------------------------------- flownet.data.orientation

def test_stored_orientation_checks_the_new_files_after_one_checked_before(tmp_path):
    """A call whose first file was checked before still checks the files after it: a frame shared by two pairs
    (frame 11 of a pair 10→11 is frame 1 of a pair 11→12), then a mirrored frame 12, is refused (mutation killed:
    the loop stopped at the first file already checked, so frame 12 was compared with its flow mirrored)."""
    from _exif import banded, save_tagged

    from flownet.data.orientation import StoredOrientation
    f10, f11 = save_tagged(tmp_path / "f10.png", banded()), save_tagged(tmp_path / "f11.png", banded())
    f12 = save_tagged(tmp_path / "f12.png", banded(), orientation=2)
    seen = StoredOrientation()
    seen.check([f10, f11], "the flow flow10.flo")
    with pytest.raises(ValueError, match=r"f12\.png carries the EXIF Orientation tag 2, which mirrors it left to right "
                                         r"as it is read, while the flow flow11\.flo is read as stored"):
        seen.check([f11, f12], "the flow flow11.flo")


def test_stored_orientation_refuses_a_tagged_file_again_when_asked_again(tmp_path):
    """A refused file is not remembered as checked: asked again (the same item read twice, e.g. by a caller that
    caught the first error), it is refused again (mutation killed: the file marked checked before its tag was
    judged, so the second read passed the mirrored frame silently)."""
    from _exif import banded, save_tagged

    from flownet.data.orientation import StoredOrientation
    turned = save_tagged(tmp_path / "turned.png", banded(), orientation=3)
    seen = StoredOrientation()
    for _ in range(2):
        with pytest.raises(ValueError, match=r"turned\.png carries the EXIF Orientation tag 3, which turns it half a "
                                             r"turn"):
            seen.check([turned], "the ground-truth flow")
    assert seen.checked == set()


# -------------------------------------------------------------------------------------- icegan flow run

class _GivenFlow:
    """A flow estimator whose flow is the given (2, H, W) field for every pair (records the pairs it was given)."""

    def __init__(self, flow):
        self.flow, self.pairs = flow, []

    def estimate(self, img1, img2):
        self.pairs.append((img1, img2))
        return self.flow[None].expand(img1.shape[0], -1, -1, -1).clone()


def _given_flow(monkeypatch, flow):
    """``flownet.get_estimator`` (what `icegan flow run --model M` builds) replaced by :class:`_GivenFlow`."""
    import flownet
    est = _GivenFlow(flow)
    monkeypatch.setattr(flownet, "get_estimator", lambda model, **kw: est)
    return est


def _grey_pair(folder: Path, h: int, w: int, colour: tuple[bool, bool] = (False, False)) -> list[str]:
    """Two random pictures a.png, b.png of h x w pixels; ``colour[k]``: picture k has three unequal channels,
    else one grey channel."""
    import cv2
    rng = np.random.default_rng(1)
    paths = []
    for name, col in zip(("a.png", "b.png"), colour):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (h, w, 3) if col else (h, w), dtype=np.uint8))
        paths.append(str(folder / name))
    return paths


def test_flow_run_decompose_writes_the_head_and_the_expression_flow_each_to_its_own_files(tmp_path, monkeypatch,
                                                                                        capsys):
    """`flow run --decompose` (RANSAC) of a known flow: the whole face moves (+3, -1) px (head motion, a pure
    translation, which the affine fit recovers exactly) and a 4 x 4 block at the centre moves 2 px further down
    (expression). So OUT_head.flo is (u, v) = (3, -1) everywhere and OUT_expression.flo (0, 2) on the block, 0
    elsewhere; the total .flo is their sum (mutation killed: the head and expression parts written to each other's
    files; the earlier test checked only head + expression = total, which holds either way)."""
    import torch

    from flownet.io import read_flo
    from icegan.cli import main
    flow = torch.zeros(2, 32, 32)
    flow[0], flow[1] = 3.0, -1.0
    flow[1, 14:18, 14:18] += 2.0
    _given_flow(monkeypatch, flow)
    out, flo = tmp_path / "f.png", tmp_path / "f.flo"
    assert main(["flow", "run", *_grey_pair(tmp_path, 32, 32), "--out", str(out), "--flo", str(flo), "--model",
                 "srflownet", "--decompose"]) == 0
    head, expr, total = (read_flo(tmp_path / f"f{s}.flo")[0] for s in ("_head", "_expression", ""))
    np.testing.assert_allclose(head[..., 0], 3.0, atol=1e-4)
    np.testing.assert_allclose(head[..., 1], -1.0, atol=1e-4)
    want = np.zeros((32, 32, 2), np.float32)
    want[14:18, 14:18, 1] = 2.0
    np.testing.assert_allclose(expr, want, atol=1e-4)
    np.testing.assert_allclose(total, flow.permute(1, 2, 0).numpy(), atol=1e-6)
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path / 'f_head.png'} (head, max |flow| 3.16 px)" in printed          # hypot(3, 1) = 3.162
    assert f"wrote {tmp_path / 'f_expression.png'} (expression, max |flow| 2.00 px)" in printed


def test_flow_run_names_a_flow_with_nan_in_u_alone(tmp_path, monkeypatch, capsys):
    """A flow whose u is NaN at 3 pixels while v is finite there counts those 3 pixels of the 16 x 16 = 256 as not
    finite, names the model and writes nothing (mutation killed: a pixel counted only when both u and v are bad,
    so this flow passed the check and failed later, in the colour coding, naming no model)."""
    import torch

    from icegan.cli import main
    flow = torch.zeros(2, 16, 16)
    flow[0, 0, :3] = float("nan")
    _given_flow(monkeypatch, flow)
    out = tmp_path / "out"
    assert main(["flow", "run", *_grey_pair(tmp_path, 16, 16), "--out", str(out / "f.png"), "--flo",
                 str(out / "f.flo"), "--model", "raft_small"]) == 2
    assert capsys.readouterr().err.strip() == ("icegan flow run: error: --model raft_small gave a flow with NaN or "
                                               "infinite values at 3 of 256 pixels; nothing written")
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("grey_first", [True, False])
def test_flow_run_note_names_the_grey_picture_and_the_colour_one(tmp_path, monkeypatch, capsys, grey_first):
    """One grey and one colour picture: both are read as grey, and the note names the grey file as grey and the
    colour file as colour, whichever comes first (mutation killed: the two names swapped in the note)."""
    import torch

    from icegan.cli import main
    est = _given_flow(monkeypatch, torch.ones(2, 16, 16))
    a, b = _grey_pair(tmp_path, 16, 16, colour=(not grey_first, grey_first))
    grey, colour = (a, b) if grey_first else (b, a)
    assert main(["flow", "run", a, b, "--out", str(tmp_path / "f.png"), "--model", "srflownet"]) == 0
    assert f"note: {grey} is greyscale and {colour} colour: both read as grey (as with --gray)" in \
        capsys.readouterr().out
    img1, img2 = est.pairs[0]
    assert img1.shape == img2.shape == (1, 1, 16, 16)      # each read as one grey channel


def test_flow_run_refuses_one_file_for_out_and_flo(tmp_path, monkeypatch, capsys):
    """--out and --flo naming one file is refused before any flow is computed (mutation killed: the check gone, the
    .flo written over the picture just saved)."""
    import torch

    from icegan.cli import main
    est = _given_flow(monkeypatch, torch.ones(2, 16, 16))
    same = tmp_path / "f.png"
    assert main(["flow", "run", *_grey_pair(tmp_path, 16, 16), "--out", str(same), "--flo", str(same),
                 "--model", "srflownet"]) == 2
    assert f"--out and --flo are the same file ({same}); give the .flo its own name" in capsys.readouterr().err
    assert not same.exists() and est.pairs == []


def test_flow_run_draws_the_key_of_a_flow_without_motion_at_1_px(tmp_path, monkeypatch, capsys):
    """--key of a flow of zero everywhere (no motion) is drawn at a 1 px scale, since a 0 px scale cannot colour
    anything, and the line written says 1 px (mutation killed: the key drawn at 0 px, refused by flow_to_color, so the
    command failed after writing the flow)."""
    import torch

    from icegan.cli import main
    _given_flow(monkeypatch, torch.zeros(2, 16, 16))
    assert main(["flow", "run", *_grey_pair(tmp_path, 16, 16), "--out", str(tmp_path / "f.png"), "--model",
                 "srflownet", "--key"]) == 0
    assert (tmp_path / "f_key.png").stat().st_size > 0
    assert "(the colour key: full colour at 1.00 px)" in capsys.readouterr().out      # the scale drawn, not 0


def test_flow_run_reports_and_keys_the_largest_motion(tmp_path, monkeypatch, capsys):
    """The printed 'max |flow|' and the --key scale are the largest magnitude: one pixel moving (3, 4) px (|flow| =
    5) among 255 still ones gives 5.00 px, not the mean 5 / 256 = 0.02 px (mutation killed: the mean magnitude; the
    earlier test's flow was constant, whose mean is its maximum)."""
    import torch

    import flownet.io
    from icegan.cli import main
    flow = torch.zeros(2, 16, 16)
    flow[:, 5, 7] = torch.tensor([3.0, 4.0])
    _given_flow(monkeypatch, flow)
    keys = []
    monkeypatch.setattr(flownet.io, "save_flow_key", lambda path, max_flow: keys.append(max_flow))
    out = tmp_path / "f.png"
    assert main(["flow", "run", *_grey_pair(tmp_path, 16, 16), "--out", str(out), "--model", "srflownet",
                 "--key"]) == 0
    assert f"wrote {out} (max |flow| 5.00 px)" in capsys.readouterr().out
    assert keys == [pytest.approx(5.0)]


def test_flow_run_refuses_pictures_of_another_height_of_the_same_width(tmp_path, monkeypatch, capsys):
    """Two pictures 16 wide but 16 and 20 high are refused by name before any flow (mutation killed: only the widths
    compared, the pair passed to the network)."""
    import cv2
    import torch

    from icegan.cli import main
    est = _given_flow(monkeypatch, torch.ones(2, 16, 16))
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    cv2.imwrite(str(a), np.full((16, 16), 90, np.uint8))
    cv2.imwrite(str(b), np.full((20, 16), 90, np.uint8))
    assert main(["flow", "run", str(a), str(b), "--out", str(tmp_path / "f.png"), "--model", "srflownet"]) == 2
    assert f"images differ in size: {a} is 16x16 pixels, {b} 16x20" in capsys.readouterr().err
    assert est.pairs == []


def test_flow_eval_refuses_zero_iters_by_its_flag(tmp_path, monkeypatch, capsys):
    """`flow eval --iters 0` is refused naming --iters before anything is evaluated (mutation killed: only negative
    counts refused, 0 reaching the model's own message, which names no flag)."""
    import flownet.evaluate
    from icegan.cli import main
    ran = []
    monkeypatch.setattr(flownet.evaluate, "evaluate", lambda model, **kw: ran.append(kw) or {"mean": {}})
    assert main(["flow", "eval", "--model", "srflownet", "--iters", "0"]) == 2
    assert "--iters must be >= 1 (recurrent updates; leave it out for the model's own count), got 0" in \
        capsys.readouterr().err
    assert ran == []


def test_flow_run_takes_the_smallest_sizes_it_names(tmp_path, monkeypatch):
    """The limits are inclusive: an 8 x 8 pair (MIN_FLOW_SIDE) is run, and --input-size 8 is a size ('at least 8');
    7 is refused (mutations killed: 8 x 8 pictures refused, --input-size 8 refused)."""
    import torch

    from icegan.cli import main
    from icegan.commands.flow import MIN_FLOW_SIDE, _input_size
    assert MIN_FLOW_SIDE == 8
    assert _input_size("8") == 8 and _input_size(" 64 ") == 64 and _input_size("auto") == "auto"
    with pytest.raises(ValueError, match="--input-size 7: give auto"):
        _input_size("7")
    _given_flow(monkeypatch, torch.ones(2, 8, 8))
    assert main(["flow", "run", *_grey_pair(tmp_path, 8, 8), "--out", str(tmp_path / "f.png"), "--model",
                 "srflownet"]) == 0


def test_a_broken_last_pt_is_read_only_when_the_run_resumes(tmp_path):
    """`icegan flow train` reads <out_dir>/<name>/last.pt before training only with train.resume=true, to name it
    when it cannot be read; with train.resume=false (train afresh: the user's way out of a broken checkpoint) it is
    not read (mutation killed: the checkpoint read, and refused, whatever train.resume says)."""
    from types import SimpleNamespace

    from icegan.commands.flow import _check_resume_checkpoint
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    cfg = SimpleNamespace(out_dir=str(tmp_path), name="run", train=SimpleNamespace(resume=False))
    _check_resume_checkpoint(cfg)
    cfg.train.resume = True
    with pytest.raises(ValueError, match="last.pt"):
        _check_resume_checkpoint(cfg)


# ------------------------------------------------------------------------------------------ icegan features

#: a tiny synthetic main job (the demo config): export_features is replaced below, so nothing is prepared
TINY = ["data.n_subjects=3", "data.clips_per_class=1", "data.img_size=32"]


def _features_written(monkeypatch, out: Path, rows: list[tuple[str, str, str, str]], skipped=None):
    """``export_features`` replaced by one that writes ``out/features.csv`` of ``rows`` (dataset, subject, clip,
    label; "" = none), ``features_labelled.csv`` when some rows have no label, and ``skipped.csv`` of ``skipped``
    ((key, reason) pairs) as the real one does; returns the ``progress`` values it was called with."""
    import pandas as pd

    import icegan.pipeline as pipeline
    calls = []

    def fake(cfg, o, progress=True):
        calls.append(progress)
        o = Path(o)
        o.mkdir(parents=True, exist_ok=True)
        df = pd.DataFrame([{"dataset": d, "subject": s, "clip": c, "label": lab, "path": f"maps/{c}.npy"}
                           for d, s, c, lab in rows])
        if (df["label"] == "").any() and (df["label"] != "").any():
            df[df["label"] != ""].to_csv(o / "features_labelled.csv", index=False)
        df.to_csv(o / "features.csv", index=False)
        if skipped:
            pd.DataFrame(skipped, columns=["key", "reason"]).to_csv(o / "skipped.csv", index=False)
        return o / "features.csv"
    monkeypatch.setattr(pipeline, "export_features", fake)
    return calls


def test_features_suggests_a_composite_loso_for_labelled_clips_of_two_datasets(tmp_path, monkeypatch, capsys):
    """Labelled clips of two datasets (casme2, samm): the suggested `icegan loso` runs on the whole table, without
    'protocol=SDE dataset=...' (one dataset's own leave-one-subject-out is offered only when there is one dataset)
    (mutation killed: the SDE scope added for any number of datasets, naming the first, casme2, alone)."""
    from icegan.cli import main
    out = tmp_path / "f"
    _features_written(monkeypatch, out, [("casme2", "casme2/s1", "a", "0"), ("samm", "samm/s2", "b", "1")])
    assert main(["features", "--out", str(out), "--no-progress", *TINY]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("run a recognizer on the clips: "))
    assert line.endswith(f"data.table={out / 'features.csv'} data.size=28") and "protocol=SDE" not in line


def test_features_suggestion_keeps_a_label_set_other_than_megc2019(tmp_path, monkeypatch, capsys):
    """Maps made with data.labels=casme2_5 (configs/casme2_5class.yaml) carry class names in their label cells: the
    suggested `icegan loso` says data.labels=casme2_5, which the table needs (mutation killed: the label set left out
    of the suggestion, a LOSO then reading the names as MEGC2019 classes and refusing them)."""
    from icegan.cli import main
    out = tmp_path / "f"
    _features_written(monkeypatch, out, [("casme2", "casme2/s1", "a", "happiness"),
                                         ("casme2", "casme2/s2", "b", "others")])
    assert main(["features", "--config", "configs/casme2_5class.yaml", "--out", str(out), "--no-progress",
                 "recognizer.input_size=28"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("run a recognizer on the clips: "))
    assert line.endswith(f"data.table={out / 'features.csv'} data.labels=casme2_5 data.size=28 protocol=SDE "
                         f"dataset=casme2")


def test_features_summary_counts_the_skipped_clips_and_shows_the_first(tmp_path, monkeypatch, capsys):
    """Two clips in skipped.csv: the summary says 2 clip(s), shows the first one listed with its reason and names the
    file (mutations killed: the count off by one; the last clip shown as the example)."""
    from icegan.cli import main
    out = tmp_path / "f"
    _features_written(monkeypatch, out, [("casme2", "casme2/s1", "a", "0"), ("casme2", "casme2/s2", "b", "1")],
                      skipped=[("casme2/s3/EP01", "frames not on disk"), ("casme2/s4/EP02", "no face found")])
    assert main(["features", "--out", str(out), "--no-progress", *TINY]) == 0
    assert (f"2 clip(s) could not be prepared and have no maps, e.g. casme2/s3/EP01: frames not on disk (all of "
            f"them in {out / 'skipped.csv'})") in capsys.readouterr().out


def test_features_progress_bars_follow_no_progress(tmp_path, monkeypatch, capsys):
    """--no-progress reaches export_features as progress=False, and without it progress=True (mutation killed:
    progress bars always on)."""
    from icegan.cli import main
    rows = [("casme2", "casme2/s1", "a", "0"), ("casme2", "casme2/s2", "b", "1")]
    calls = _features_written(monkeypatch, tmp_path / "f", rows)
    assert main(["features", "--out", str(tmp_path / "f"), "--no-progress", *TINY]) == 0
    calls2 = _features_written(monkeypatch, tmp_path / "g", rows)
    assert main(["features", "--out", str(tmp_path / "g"), *TINY]) == 0
    assert calls == [False] and calls2 == [True]


# ------------------------------------------------- icegan features: the files export_features writes

def test_features_of_labelled_clips_only_leave_no_labelled_table_not_even_a_stale_one(tmp_path, monkeypatch, capsys):
    """features_labelled.csv is written only when some clips have a label and others not; a folder left by a run
    stopped before features.csv holds one, which is removed: with every clip labelled now, the folder ends with no
    features_labelled.csv, and the suggested LOSO reads features.csv (mutations killed: the labelled table written
    whenever a clip has a label; the stale table of the stopped run kept, beside a features.csv of other clips)."""
    from test_cli_commands import _features, _prepared_clips

    from icegan.cli import main
    _prepared_clips(monkeypatch, [("clips", "p0", 0), ("clips", "p1", 1)])
    out = tmp_path / "f"
    out.mkdir()
    (out / "features_labelled.csv").write_text("dataset,subject,clip,label,path\nclips,clips/old,c9,2,maps/x.npy\n")
    assert main(_features(tmp_path)) == 0
    assert not (out / "features_labelled.csv").exists()
    assert f"data.table={out / 'features.csv'} " in capsys.readouterr().out


def test_features_map_files_are_named_subject_then_clip(tmp_path, monkeypatch):
    """The maps are maps/<subject>_<clip>.npy with '/' as '_' (export_features' docstring): subject clips/p0, clip c0
    -> maps/clips_p0_c0.npy (mutation killed: clip and subject swapped in the name, c0_clips_p0.npy)."""
    import pandas as pd
    from test_cli_commands import _features, _prepared_clips

    from icegan.cli import main
    _prepared_clips(monkeypatch, [("clips", "p0", 0), ("clips", "p1", 1)])
    assert main(_features(tmp_path)) == 0
    table = pd.read_csv(tmp_path / "f" / "features.csv", keep_default_na=False, dtype=str)
    assert table["path"].tolist() == ["maps/clips_p0_c0.npy", "maps/clips_p1_c1.npy"]
    assert sorted(p.name for p in (tmp_path / "f" / "maps").iterdir()) == ["clips_p0_c0.npy", "clips_p1_c1.npy"]


def test_features_provenance_names_the_flow_weights_and_their_sha256(tmp_path, monkeypatch):
    """provenance.json of maps made with the shipped SRFlowNet weights names that file and its SHA-256 (worked out
    here from the file's bytes); the network itself is replaced by a fixed random flow (mutation killed: the weights
    left out of the provenance)."""
    import hashlib
    import json

    import torch
    from test_cli_commands import _features, _prepared_clips

    import icegan.pipeline as pipeline
    from flownet.registry import SHIPPED_WEIGHTS, resolve_weights
    from icegan.cli import main

    class _RandomFlow:
        def estimate(self, img1, img2):
            g = torch.Generator().manual_seed(0)
            return torch.rand(img1.shape[0], 2, *img1.shape[-2:], generator=g) * 2 - 1
    monkeypatch.setattr(pipeline, "build_flow", lambda cfg, device: _RandomFlow())
    _prepared_clips(monkeypatch, [("clips", "p0", 0), ("clips", "p1", 1)])
    assert "srflownet" in SHIPPED_WEIGHTS
    assert main(_features(tmp_path, "flow.method=srflownet", "flow.weights=")) == 0
    shipped = resolve_weights(None, "srflownet")
    prov = json.loads((tmp_path / "f" / "provenance.json").read_text())
    assert prov["weights"] == {"flow_weights": shipped.name,
                               "flow_weights_sha256": hashlib.sha256(shipped.read_bytes()).hexdigest()}
