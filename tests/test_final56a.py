"""Clean-ups of the fifty-sixth session's final review, behaviour kept: the apex neighbours' "after the onset, up to
the offset" rule in one helper (records.neighbour_inside); spot_apex_index's "middle" takes the frames' numbers and
the clip's onset / offset (the middle of the clip, as spot_record_apex and the spotting bench used to override);
flow run's memory check and out-of-memory message in one context manager; quarter_turn_note from tags already read.
Expected values are worked out by hand in the docstrings."""
from __future__ import annotations

import types

import numpy as np
import pytest

from flownet import frame_io
from icegan.data.records import neighbour_inside
from icegan.data.spotting import spot_apex_index


def test_neighbour_inside_is_after_the_onset_and_up_to_an_offset_not_before_the_apex():
    """Onset 10, apex 11, offset 20: 10 (the onset) out, 11 and 20 in, 21 out. An offset 15 before the apex 19 (a
    wrong cell) sets no upper bound: 25 in. No onset: no lower bound; no offset: no upper bound."""
    assert [neighbour_inside(n, 10, 11, 20) for n in (9, 10, 11, 20, 21)] == [False, False, True, True, False]
    assert neighbour_inside(25, 10, 19, 15) and not neighbour_inside(10, 10, 19, 15)
    assert neighbour_inside(0, None, 11, 20) and neighbour_inside(10 ** 6, 10, 11, None)


def test_spot_apex_index_middle_is_the_middle_of_the_clip_given_the_frame_numbers():
    """Onset 46, offset 86, frames 46-49 and 70-86 present (21 frames): the middle of the clip is 66, the frame
    present nearest it 70, at index 4 (the middle of the frames present, index 21 // 2 = 10, would be frame 76).
    Without numbers: T // 2 for T = 2..7 (every frame present), as before."""
    numbers = [*range(46, 50), *range(70, 87)]
    frames = [np.zeros((4, 4), np.uint8)] * len(numbers)
    idx, name, curve = spot_apex_index(frames, "middle", numbers=numbers, onset=46, offset=86)
    assert (idx, numbers[idx], name) == (4, 70, "middle-frame") and curve.shape == (21,) and not curve.any()
    assert spot_apex_index(frames, "middle")[0] == 10
    assert [spot_apex_index(frames[:t], "middle")[0] for t in range(2, 8)] == [1, 1, 2, 2, 3, 3]


def test_quarter_turn_note_from_tags_already_read_opens_no_file(tmp_path, monkeypatch):
    """Tags 6 and None given for two files that do not exist: the note names the first with tag 6 (a quarter turn
    clockwise), word for word as when the tag is read from the file, and no file is opened."""
    def opened(*a, **k):
        raise AssertionError("a file was opened")
    monkeypatch.setattr(frame_io, "file_orientation", opened)
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    note = frame_io.quarter_turn_note((a, b), "the other frame", [6, None])
    assert note == (f"; {a} carries the EXIF Orientation tag 6, which turns it a quarter turn clockwise as it is read "
                    f"(width and height swapped), unlike the other frame: save the frame without the tag")
    assert frame_io.quarter_turn_note((a, b), "the other frame", [1, None]) == ""
    with pytest.raises(ValueError):
        frame_io.quarter_turn_note((a, b), "the other frame", [6])          # one tag per path


def test_flow_runs_memory_guard_checks_on_entry_and_words_an_allocation_failure(monkeypatch):
    """A network with a correlation volume, 256x256 images (32x32 grid: 4.19 MB, 8.39 MB to build): with 1000 bytes
    of memory the guard refuses on entry, before its body runs; with a terabyte it enters, and a torch 'out of
    memory' inside becomes one ValueError naming the size and the method."""
    import torch
    from torchvision.models.optical_flow.raft import CorrBlock

    from icegan.commands import flow
    est = types.SimpleNamespace(model=torch.nn.ModuleList([CorrBlock()]))
    img = torch.zeros(3, 256, 256)
    ran = []
    monkeypatch.setattr(flow, "_device_memory", lambda device: 1000)
    with pytest.raises(ValueError, match=r"correlation volume .* 8\.4 MB while it is built"):
        with flow._within_memory(est, img, "cpu", "--model srflownet"):
            ran.append(1)
    assert ran == []
    monkeypatch.setattr(flow, "_device_memory", lambda device: 10 ** 12)
    with pytest.raises(ValueError, match=r"^ran out of memory computing the flow of 256x256 pixels with --model x"):
        with flow._within_memory(est, img, "cpu", "--model x"):
            raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")
