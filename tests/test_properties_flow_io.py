"""Property-based tests (hypothesis) of the flow files and pictures (flownet/io.py).

Each property holds for every input hypothesis draws (the "suite" profile of tests/conftest.py):

* Middlebury ``.flo``: writing then reading gives every valid value back bit for bit, the valid mask back (a value
  beyond 1e9, infinite or NaN reads as an unknown pixel, flow 0), whatever the shape; the (2, H, W) tensor and the
  (H, W, 2) / (2, H, W) arrays write the same bytes; a file cut short anywhere, or with bytes after the flow, is
  refused with a ValueError naming the byte counts;
* KITTI 16-bit PNG: the round trip gives ``clip(round(64 f), -2**15, 2**15 - 1) / 64`` (1/64 px quantisation, within
  1/128 px inside ±512 px), values on the 1/64 grid exactly, and the valid mask ``valid & finite``;
* flow_to_color: a batch is coloured image by image; a numpy (H, W, 2) flow colours as its (2, H, W) tensor;
  scaling a flow (and max_flow) by a power of two changes no colour; a max_flow at or below the image's own largest
  magnitude changes nothing; zero flow is white; NaN / infinite values and a bad max_flow are refused;
* write_whole / read_npz_whole: any arrays written through write_whole read back equal (dtype and shape too),
  leaving no temporary file; a write that fails leaves the old file whole and no temporary; a cache cut short or
  with any byte changed either reads back the same arrays or is refused with ValueError (never another exception,
  so that read_npz_cache recomputes a damaged cache).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flownet.io import (flow_to_color, read_flo, read_kitti_png, read_npz_cache, read_npz_whole, write_flo,
                        write_kitti_png, write_whole)

SHAPES = st.tuples(st.integers(1, 9), st.integers(1, 9))


def _fewer(suite_examples: int):
    """Fewer examples for a slow property: ``suite_examples`` in the "suite" profile, 200 in "search"."""
    return settings(max_examples=suite_examples if settings.default.max_examples <= 60 else 200)


@st.composite
def flo_fields(draw):
    """(flow (H, W, 2) float32 with any finite or unknown values, valid (H, W) bool or None)."""
    h, w = draw(SHAPES)
    values = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True),
                       st.sampled_from([1e9, -1e9, np.nextafter(np.float32(1e9), np.float32(2e9)), 0.0, -0.0]))
    flow = draw(hnp.arrays(np.float32, (h, w, 2), elements=values))
    valid = draw(st.none() | hnp.arrays(np.bool_, (h, w), elements=st.booleans()))
    return flow, valid


@given(flo_fields())
def test_flo_round_trip_gives_every_valid_value_back_bit_for_bit(tmp_path_factory, case):
    flow, valid = case
    path = write_flo(tmp_path_factory.mktemp("flo") / "f.flo", flow, valid)
    h, w = flow.shape[:2]
    assert path.stat().st_size == 12 + 8 * h * w
    got, got_valid = read_flo(path)
    known = np.isfinite(flow).all(-1) & (np.abs(flow) <= 1e9).all(-1)       # Middlebury: |x| > 1e9 is unknown
    want_valid = known if valid is None else known & valid
    assert got.dtype == np.float32 and got.shape == (h, w, 2)
    np.testing.assert_array_equal(got_valid, want_valid)
    assert (got[want_valid].view(np.uint32) == flow[want_valid].view(np.uint32)).all()     # bit for bit, -0.0 too
    assert (got[~want_valid] == 0).all()


@given(SHAPES.filter(lambda s: s[1] != 2), st.data())
def test_flo_bytes_are_the_same_for_the_tensor_and_both_array_layouts(tmp_path_factory, shape, data):
    h, w = shape
    flow = data.draw(hnp.arrays(np.float32, (h, w, 2), elements=st.floats(-1e3, 1e3, width=32)))
    d = tmp_path_factory.mktemp("layouts")
    chw = np.ascontiguousarray(flow.transpose(2, 0, 1))
    files = [write_flo(d / "hw2.flo", flow), write_flo(d / "t.flo", torch.from_numpy(chw)),
             write_flo(d / "chw.flo", chw)]         # (2, H, W) array: W != 2, else it reads as (H, W, 2)
    raw = [f.read_bytes() for f in files]
    assert raw[0] == raw[1] == raw[2]


@given(flo_fields(), st.data())
def test_a_flo_file_cut_short_or_with_extra_bytes_is_refused(tmp_path_factory, case, data):
    flow, _ = case
    d = tmp_path_factory.mktemp("cut")
    raw = write_flo(d / "f.flo", flow).read_bytes()
    cut = data.draw(st.integers(0, len(raw) - 1))
    (d / "cut.flo").write_bytes(raw[:cut])
    with pytest.raises(ValueError, match="too short|truncated"):
        read_flo(d / "cut.flo")
    extra = data.draw(st.binary(min_size=1, max_size=20))
    (d / "long.flo").write_bytes(raw + extra)
    with pytest.raises(ValueError, match=f"{len(raw) + len(extra)} bytes.*{len(extra)} extra"):
        read_flo(d / "long.flo")
    (d / "swapped.flo").write_bytes(raw[3::-1] + raw[4:])
    with pytest.raises(ValueError, match="byte-swapped"):
        read_flo(d / "swapped.flo")


@st.composite
def kitti_fields(draw):
    h, w = draw(SHAPES)
    values = st.one_of(st.floats(-600, 600, width=32), st.integers(-32768, 32767).map(lambda k: k / 64.0),
                       st.just(float("nan")), st.just(float("inf")))
    flow = draw(hnp.arrays(np.float32, (h, w, 2), elements=values))
    valid = draw(st.none() | hnp.arrays(np.bool_, (h, w), elements=st.booleans()))
    return flow, valid


@_fewer(40)
@given(kitti_fields())
def test_kitti_png_round_trip_quantises_to_1_64_px_and_keeps_the_valid_mask(tmp_path_factory, case):
    flow, valid = case
    got, got_valid = read_kitti_png(write_kitti_png(tmp_path_factory.mktemp("kitti") / "f.png", flow, valid))
    finite = np.isfinite(flow).all(-1)
    want_valid = finite if valid is None else finite & valid
    np.testing.assert_array_equal(got_valid, want_valid)
    assert got.dtype == np.float32 and got.shape == flow.shape
    f = flow[want_valid].astype(np.float64)
    want = np.clip(np.round(f * 64), -2 ** 15, 2 ** 15 - 1) / 64
    np.testing.assert_array_equal(got[want_valid], want)
    inside = (f >= -512) & (f <= 511.984375)
    assert (np.abs(got[want_valid][inside] - f[inside]) <= 1 / 128).all()
    on_grid = inside & (f * 64 == np.round(f * 64))
    np.testing.assert_array_equal(got[want_valid][on_grid], f[on_grid])     # the 1/64 grid survives exactly
    assert (got[~want_valid] == 0).all()


@st.composite
def color_flows(draw, max_batch: int = 3):
    b, (h, w) = draw(st.integers(1, max_batch)), draw(SHAPES)
    return torch.from_numpy(draw(hnp.arrays(np.float32, (b, 2, h, w), elements=st.floats(-100, 100, width=32))))


@given(color_flows())
def test_a_batch_is_coloured_image_by_image_and_numpy_as_its_tensor(flow):
    pics = flow_to_color(flow)
    assert pics.dtype == torch.uint8 and pics.shape == (flow.shape[0], 3, *flow.shape[-2:])
    for f, pic in zip(flow, pics):
        assert torch.equal(flow_to_color(f), pic)
        assert torch.equal(flow_to_color(f.permute(1, 2, 0).numpy()), pic)


@given(color_flows(max_batch=1), st.integers(-6, 6), st.floats(0.01, 1.0))
def test_colours_depend_on_the_flow_relative_to_the_saturating_magnitude(flow, j, frac):
    f = flow[0]
    pic = flow_to_color(f)
    k = 2.0 ** j                # an exact scaling: every magnitude and angle scales exactly
    top = float(torch.hypot(f[0], f[1]).max())
    # torchvision divides by (largest magnitude + float32 eps): the scaling changes that sum by a relative
    # eps / top, which may move a colour across a level (floor(255 c)) and, for a flow of about eps, by many levels
    # (the flow (1.2e-7, 1.2e-7) and its double differ by 21 levels)
    if top >= 1e-3:
        assert (flow_to_color(f * k).int() - pic.int()).abs().max() <= 1
    if top > 0:
        # a max_flow below the image's own largest magnitude: that maximum saturates, as without max_flow
        assert torch.equal(flow_to_color(f, top * frac * 0.999), pic)
    if top >= 1e-3:
        diff = flow_to_color(f * k, top * frac * k).int() - flow_to_color(f, top * frac).int()
        assert diff.abs().max() <= 1
    zero = flow_to_color(torch.zeros_like(f), max_flow=1.0)
    assert (zero == 255).all() and (flow_to_color(torch.zeros_like(f)) == 255).all()


@given(color_flows(max_batch=2), st.data())
def test_colouring_refuses_nan_or_infinite_flow_and_a_bad_max_flow(flow, data):
    bad_mf = data.draw(st.sampled_from([0.0, -1.0, float("nan"), float("inf"), -float("inf")]))
    with pytest.raises(ValueError, match="max_flow must be a positive number"):
        flow_to_color(flow, bad_mf)
    idx = tuple(data.draw(st.integers(0, s - 1)) for s in flow.shape)
    broken = flow.clone()
    broken[idx] = data.draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    with pytest.raises(ValueError, match="NaN or infinite values at 1 pixel"):
        flow_to_color(broken)


ARRAYS = st.dictionaries(
    st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8),
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int8, np.int64, np.uint16, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)),
    min_size=1, max_size=3)


def _savez(arrays):
    def write(tmp):
        with open(tmp, "wb") as fh:             # a file object: np.savez would add .npz to a path
            np.savez(fh, **arrays)
    return write


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


@given(ARRAYS, st.booleans())
def test_arrays_written_whole_read_back_equal_and_leave_no_temporary(tmp_path_factory, arrays, concurrent):
    d = tmp_path_factory.mktemp("npz")
    path = write_whole(d / "cache.npz", _savez(arrays), concurrent=concurrent)
    assert sorted(p.name for p in d.iterdir()) == ["cache.npz"]
    got = read_npz_whole(path, list(arrays))
    assert got.keys() == arrays.keys() and all(_same(got[k], arrays[k]) for k in arrays)

    def fails(tmp):
        _savez(arrays)(tmp)
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        write_whole(path, fails, concurrent=concurrent)
    assert sorted(p.name for p in d.iterdir()) == ["cache.npz"]         # the old file whole, no temporary
    assert all(_same(read_npz_whole(path, list(arrays))[k], arrays[k]) for k in arrays)


@_fewer(40)
@given(ARRAYS, st.data())
def test_a_damaged_cache_reads_back_the_same_or_is_refused_with_valueerror(tmp_path_factory, arrays, data):
    d = tmp_path_factory.mktemp("damaged")
    raw = write_whole(d / "c.npz", _savez(arrays), concurrent=True).read_bytes()
    if data.draw(st.booleans()):
        damaged = raw[:data.draw(st.integers(0, len(raw) - 1))]
    else:
        i = data.draw(st.integers(0, len(raw) - 1))
        byte = data.draw(st.integers(0, 255).filter(lambda x: x != raw[i]))
        damaged = raw[:i] + bytes([byte]) + raw[i + 1:]
    path = d / "c.npz"
    path.write_bytes(damaged)
    try:
        got = read_npz_whole(path, list(arrays))
    except ValueError as exc:
        assert str(path) in str(exc)
    else:
        assert all(_same(got[k], arrays[k]) for k in arrays)
    notes = []
    cached = read_npz_cache(path, list(arrays), notes.append)
    assert (cached is None) == (len(notes) == 1)


# The counterexamples hypothesis found for the property above (search profile): one changed byte in the zip's central
# directory made np.load raise NotImplementedError ("zip file version 6.4": the version needed to extract; "That
# compression method is not supported") or RuntimeError ("File '_.npy' is encrypted": a flag bit), which
# read_npz_whole let through, so read_npz_cache crashed the run instead of computing the damaged cache again.
@pytest.mark.parametrize("field, value", [(6, 64), (10, 99), (8, 1)],
                         ids=["version-needed", "compression-method", "encrypted-flag"])
def test_a_cache_with_a_damaged_zip_directory_is_refused_with_valueerror(tmp_path, field, value):
    path = write_whole(tmp_path / "c.npz", _savez({"_": np.array(0.0, np.float32)}), concurrent=True)
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02")                 # the central directory entry of '_.npy'
    raw[central + field] = value
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="c.npz cannot be read"):
        read_npz_whole(path, ["_"])
    notes = []
    assert read_npz_cache(path, ["_"], notes.append) is None and len(notes) == 1
