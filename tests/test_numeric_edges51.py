"""Numeric edges of image/flow helpers: non-finite landmark centres, 1-px resizes, Farneback/TV-L1 on tiny
identical frames, and the skipped.csv round trip of control characters."""
import numpy as np
import pytest
import torch

from icegan.data.roi import roi_patches


def _ramp(n=1, c=2, h=28, w=28):
    return torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_roi_patches_refuse_non_finite_centres_and_name_them(bad):
    centers = np.full((2, 4, 2), 10.0)
    centers[1, 2, 1] = bad
    with pytest.raises(ValueError, match=r"not finite.*map 1 region 2"):
        roi_patches(_ramp(n=2), centers)


@pytest.mark.parametrize("far", [1e30, -1e30, 1e19, -1e19, 1e6, -1e6])
def test_roi_patches_clamp_far_outside_centres_to_the_nearest_border(far):
    x = _ramp()
    centers = np.full((1, 4, 2), 10.0)
    centers[0, 0, 0] = far            # x of region 0
    centers[0, 3, 1] = far            # y of region 3
    out = roi_patches(x, centers, patch=7)
    lo = 21 if far > 0 else 0
    torch.testing.assert_close(out[0, :, :7, :7], x[0, :, 7:14, lo:lo + 7], rtol=0, atol=0)
    torch.testing.assert_close(out[0, :, 7:, 7:], x[0, :, lo:lo + 7, 7:14], rtol=0, atol=0)


def _face_like(h, w, seed=0):
    """A smooth random grey frame (1, 1, h, w) in [0, 1]."""
    g = torch.from_numpy(np.random.default_rng(seed).random((1, 1, 32, 32), dtype=np.float32))
    g = torch.nn.functional.avg_pool2d(g, 5, 1, 2, count_include_pad=False)
    return torch.nn.functional.interpolate(g, size=(h, w), mode="bilinear", align_corners=False, antialias=True)


@pytest.mark.parametrize("side", [10, 12, 16, 28, 64])
def test_farneback_on_identical_frames_of_ten_pixels_and_more_is_near_zero(side):
    """The size from which FarnebackEstimator's docstring says identical frames give ~0 flow (under 10 pixels a
    side they give pixels of it; not refused: icegan flow run accepts 8x8)."""
    from flownet.classical import FarnebackEstimator
    for seed in range(3):
        x = _face_like(side, side, seed)
        f = FarnebackEstimator().estimate(x, x)
        assert f.shape == (1, 2, side, side)
        assert f.abs().mean() < 0.15 and f.abs().max() < 1.0, (side, seed)


@pytest.mark.parametrize("side", [2, 3, 5, 8, 9, 16])
def test_tvl1_on_identical_tiny_frames_gives_zero_flow(side):
    """TV-L1 has no such border: identical frames give exactly zero flow down to 2x2, as its docstring says."""
    from flownet.classical import TVL1Estimator
    x = _face_like(side, side)
    assert torch.equal(TVL1Estimator().estimate(x, x), torch.zeros(1, 2, side, side))


# ------------------------------------------------------------------------------------------------ skipped.csv

_REASONS = ["cannot be read:\rOpenCV said so", "two\nlines", 'a "quoted" word, and a comma', "crlf\r\nend\r",
            "None", "NA", "  leading and trailing  "]


def _clips_with_failing_reasons(tmp_path, monkeypatch):
    """A prepare of len(_REASONS) + 1 clips whose first clip is prepared and every other fails with one of
    _REASONS (as an exception text would)."""
    from _clip_records import grey_frames
    from icegan.data import prepare as prep
    n = len(_REASONS) + 1
    clips = tmp_path / "clips.csv"                      # a frames folder each: one folder listed twice is refused
    clips.write_text("subject,clip,frames,onset,apex,offset\n"
                     + "".join(f"p{i},c{i},{grey_frames(tmp_path / f'c{i}')},2,5,10\n" for i in range(n)))
    cfg = prep.PrepareConfig(datasets=[prep.DatasetSpec(name="clips", root=str(clips))],
                             cache_root=str(tmp_path / "cache"), size=16, workers=1, progress=False)
    real, records = prep.process_clip, prep.dataset_records

    def some_fail(rec, mode, settings):
        i = int(rec.clip.replace("\r", "")[1:])
        return real(rec, mode, settings) if i == 0 else {"key": rec.key, "error": _REASONS[i - 1]}

    def a_key_with_a_carriage_return(spec, layout=None, found=None):    # clip c1 named "c\r1" (an old Mac OS list)
        import dataclasses
        return [dataclasses.replace(r, clip="c\r1") if r.clip == "c1" else r for r in records(spec, layout, found)]
    monkeypatch.setattr(prep, "process_clip", some_fail)
    monkeypatch.setattr(prep, "dataset_records", a_key_with_a_carriage_return)
    return prep, cfg


def test_skipped_reasons_with_control_characters_read_back_equal(tmp_path, monkeypatch):
    """A reason or key holding a bare carriage return (an exception text) was written unquoted to skipped.csv and
    read back as a row break ('cannot be read:' and a row of key 'OpenCV said so'); "None" and "NA" read back as
    NaN. Now every key and reason reads back as written."""
    prep, cfg = _clips_with_failing_reasons(tmp_path, monkeypatch)
    made = prep.prepare_dataset(cfg)
    want = [(f"clips/p{i}/c{i}", r) for i, r in enumerate(_REASONS, 1)]
    want[0] = ("clips/p1/c\r1", _REASONS[0])
    assert list(zip(made.skipped["key"], made.skipped["reason"])) == want
    back = prep.load_prepared(made.cache_dir).skipped
    assert list(back.columns) == ["key", "reason"]
    assert list(zip(back["key"], back["reason"])) == want
    again = prep.prepare_dataset(cfg)                   # the cache hit: the cached failures of these clips
    assert list(zip(again.skipped["key"], again.skipped["reason"])) == want


def test_skipped_csv_of_earlier_versions_still_reads(tmp_path, monkeypatch):
    """A skipped.csv written by an earlier version (pandas' default quoting) reads back with the same keys and
    reasons."""
    prep, cfg = _clips_with_failing_reasons(tmp_path, monkeypatch)
    made = prep.prepare_dataset(cfg)
    rows = [("clips/p1/c1", "onset frame img2.png cannot be read"), ("casme2/sub01/EP02_01f", "no face, found")]
    import pandas as pd
    pd.DataFrame(rows, columns=["key", "reason"]).to_csv(made.cache_dir / "skipped.csv", index=False)
    back = prep.load_prepared(made.cache_dir).skipped
    assert list(zip(back["key"], back["reason"])) == rows


# ------------------------------------------------------------------------------------------------ 1-pixel resizes

def test_resize_flow_on_a_one_pixel_axis_is_the_antialiased_bilinear_of_any_other_height():
    """A flow one pixel high is not a special case of the anti-aliased shrink: (1, 4) -> (1, 2) gives the triangle
    filter's weights (3/4, 3/4, 1/4 from the centre 0.5, renormalised at the border: 5/7, not the pair mean 1/2),
    exactly as every row of the same flow three rows high, and two rows shrunk to one give their mean."""
    from flownet.resolution import resize_flow
    u = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    flow = torch.stack([u, torch.full_like(u, 4.0)])[None, :, None, :]         # (1, 2, 1, 4)
    out = resize_flow(flow, (1, 2))
    by_hand_u = torch.tensor([(0 * .75 + 1 * .75 + 2 * .25) / 1.75, (3 * .75 + 2 * .75 + 1 * .25) / 1.75],
                             dtype=torch.float64) * (2 / 4)
    torch.testing.assert_close(out[0, 0, 0], by_hand_u, rtol=0, atol=1e-12)
    torch.testing.assert_close(out[0, 1, 0], torch.full((2,), 4.0, dtype=torch.float64), rtol=0, atol=1e-12)
    three = resize_flow(flow.expand(1, 2, 3, 4).contiguous(), (3, 2))
    assert torch.equal(three, out.expand(1, 2, 3, 2))
    two_rows = torch.stack([u, u + 10])[None, None].expand(1, 2, 2, 4).contiguous()   # (1, 2, 2, 4)
    want = (u + 5).expand(2, 4) * torch.tensor([[1.0], [0.5]], dtype=torch.float64)      # v rescaled by 1/2
    torch.testing.assert_close(resize_flow(two_rows, (1, 4))[0, :, 0], want, rtol=0, atol=1e-12)
