"""Tests written by a mutation audit of configuration loading (icegan.config), the recognizer settings
(icegan.recognizer_config) and the dataset check behind ``icegan data check`` (icegan.data.check, icegan.data.samm):
each test fails on a small deliberate change of the code that the earlier tests let pass (named in the test's
docstring). Expected values are worked out by hand in the docstrings, never copied from the code's output."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import pytest
import yaml

from icegan.config import ConfigError, apply_overrides, check_ranges, from_dict, load_config, save_config, to_dict

from _clip_records import clip_record, problems

# ------------------------------------------------------------------------------------------------------- icegan.config


@dataclass
class _Sub:
    epochs: int = 10
    lr: float = 1e-3


@dataclass
class _Cfg:
    name: str = "run"
    pair: Tuple[int, int] = (1, 2)
    sizes: Tuple[int, ...] = (28,)
    roots: Dict[str, str] = field(default_factory=dict)
    weights: Dict[str, float] = field(default_factory=dict)
    either: Union[int, str] = 0
    maybe: Optional[int] = None
    train: _Sub = field(default_factory=_Sub)


def test_a_number_given_for_a_text_key_is_text_and_a_boolean_is_refused():
    """A text key given a number (a run named 2024) takes it as the text "2024"; ``true`` is no text: refused naming
    the key. Mutations killed: numbers refused for text keys; booleans turned into "True"."""
    assert apply_overrides(_Cfg(), ["name=2024"]).name == "2024"
    assert from_dict(_Cfg, {"name": 2.5}).name == "2.5"
    with pytest.raises(ConfigError,
                       match=r"^config key 'name' \(in command line\): expected a string, got True \(YAML "):
        apply_overrides(_Cfg(), ["name=true"])


def test_null_is_refused_for_a_union_without_none():
    """``Union[int, str]`` does not hold None: ``either=null`` is refused naming the key; ``Optional[int]`` takes it.
    Mutation killed: None accepted for every union."""
    with pytest.raises(ConfigError, match=r"config key 'either' \(in command line\): expected"):
        apply_overrides(_Cfg(), ["either=null"])
    assert apply_overrides(_Cfg(), ["maybe=null"]).maybe is None
    assert apply_overrides(_Cfg(), ["either=abc"]).either == "abc"


def test_a_fixed_length_tuple_refuses_one_value_too_many():
    """``Tuple[int, int]`` given three values is refused (not cut to the first two). Mutation killed: only a list
    shorter than the tuple refused (zip then drops the third value silently)."""
    with pytest.raises(ConfigError, match=r"config key 'pair' \(in command line\): expected 2 values, got 3"):
        apply_overrides(_Cfg(), ["pair=[3, 4, 5]"])
    assert apply_overrides(_Cfg(), ["pair=[3, 4]"]).pair == (3, 4)


def test_an_open_length_tuple_key_holds_a_tuple_equal_to_the_same_config_built_in_code():
    """``Tuple[int, ...]`` given ``[1, 2]`` holds the tuple (1, 2), so the config equals ``_Cfg(sizes=(1, 2))`` (a run
    compares configs to resume). Mutation killed: the list kept as a list (``[1, 2] != (1, 2)``)."""
    cfg = apply_overrides(_Cfg(), ["sizes=[1, 2]"])
    assert cfg.sizes == (1, 2) and isinstance(cfg.sizes, tuple) and cfg == _Cfg(sizes=(1, 2))


def test_the_keys_and_values_of_a_mapping_key_are_checked_against_its_types(tmp_path):
    """A ``Dict[str, str]`` read from YAML with a number as key (``2019: /x``) holds the key as text "2019"; a
    ``Dict[str, float]`` value written 1 is the float 1.0, and a word there is refused naming the entry. Mutations
    killed: the keys, or the values, of a mapping left unchecked."""
    path = tmp_path / "c.yaml"
    path.write_text("roots:\n  2019: /x\nweights:\n  a: 1\n")
    cfg = load_config(_Cfg, path)
    assert cfg.roots == {"2019": "/x"} and cfg.weights == {"a": 1.0} and isinstance(cfg.weights["a"], float)
    with pytest.raises(ConfigError, match=r"config key 'weights\.b' \(in command line\): expected a number"):
        apply_overrides(_Cfg(), ["weights.b=heavy"])


def test_an_override_value_may_hold_an_equals_sign_and_the_key_may_be_spaced():
    """Only the first ``=`` splits an override: ``roots.x=/a=b`` sets the path "/a=b"; spaces around the key are
    dropped (``'train.epochs = 2'`` sets 2). Mutations killed: the value cut at its second ``=``; the key not
    stripped (then "unknown config key 'train.epochs '")."""
    assert apply_overrides(_Cfg(), ["roots.x=/a=b"]).roots == {"x": "/a=b"}
    assert apply_overrides(_Cfg(), ["train.epochs = 2"]).train.epochs == 2


def test_a_saved_config_holds_plain_yaml_for_paths_and_tuples_and_reads_back_equal(tmp_path):
    """save_config writes tuples as YAML lists and a Path set by code as its text, so the written config.yaml is
    plain YAML (safe_load reads it), holds the keys in the dataclass's field order, equals to_dict of the config (what
    a resumed run compares it with), and load_config gives back the same config. Mutations killed: a Path left as a
    Path in to_dict (yaml.safe_dump cannot write it); tuples left as tuples in to_dict (the YAML reads back as lists,
    unequal to them); the keys written sorted."""
    cfg = _Cfg(name="r", pair=(5, 6), sizes=(28, 112), roots={"samm": "/d/SAMM"})
    cfg.roots["casme2"] = Path("/d/CASME2")                   # a caller may put a Path in
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    plain = yaml.safe_load(out.read_text())
    assert plain["pair"] == [5, 6] and plain["sizes"] == [28, 112] and plain["roots"]["casme2"] == "/d/CASME2"
    assert to_dict(cfg) == plain                 # what a resumed run compares with the saved config.yaml
    assert list(plain) == ["name", "pair", "sizes", "roots", "weights", "either", "maybe", "train"]   # field order
    back = load_config(_Cfg, out)
    assert back.pair == (5, 6) and back.sizes == (28, 112) and back.roots == {"samm": "/d/SAMM", "casme2": "/d/CASME2"}


@dataclass
class _Ranged:
    count: int = 1
    rate: float = 1.0
    weight: float = 0.0
    beta: float = 0.5
    unset: Optional[float] = None


@pytest.mark.parametrize("kw, ok", [
    ({"count": 1}, True), ({"count": 0}, False), ({"count": 0.5}, False),
    ({"rate": 1e-12}, True), ({"rate": 0.0}, False), ({"rate": math.inf}, False), ({"rate": math.nan}, False),
    ({"weight": 0.0}, True), ({"weight": -1e-12}, False), ({"weight": math.inf}, False),
    ({"beta": 0.0}, True), ({"beta": 0.999}, True), ({"beta": 1.0}, False), ({"beta": math.nan}, False),
])
def test_check_ranges_edges(kw, ok):
    """The edges of each range kind: at_least 1 takes 1 and refuses 0; positive takes any finite number > 0 and
    refuses 0, inf and NaN; non_negative takes 0 and refuses a negative number and inf; unit_interval is [0, 1): 0 and
    0.999 in, 1 and NaN out; None (an unset optional key) is never checked. The message names ``<section>.<key>``.
    Mutations killed: inf accepted as positive or non-negative; 0 refused by unit_interval; at_least written as
    ``v > low - 1`` (the same for whole numbers, but it lets 0.5 pass a bound of 1)."""
    cfg = _Ranged(**kw)

    def check():
        check_ranges(cfg, "sec", at_least={"count": 1}, positive=("rate", "unset"), non_negative=("weight",),
                     unit_interval=("beta",))
    if ok:
        check()
    else:
        key, value = next(iter(kw.items()))
        with pytest.raises(ValueError, match=rf"^sec\.{key} must be .*, got {value}$"):
            check()


# ------------------------------------------------------------------------------------------ icegan.recognizer_config


def test_the_noise_filter_is_for_both_grouped_networks_and_none_of_the_scikit_learn_recognizers():
    """``noise_filter=forest`` is taken by ststnet and offtanet and refused, naming the key, for every scikit-learn
    recognizer (gradient_boosting included). Mutations killed: offtanet refused; gradient_boosting let through."""
    from icegan.recognizer_config import SKLEARN_MODELS, RecognizerConfig
    for name in ("ststnet", "offtanet"):
        assert RecognizerConfig(name=name, noise_filter="forest").noise_filter == "forest"
    for name in SKLEARN_MODELS:
        with pytest.raises(ValueError, match=rf"^model\.noise_filter=forest applies to the grouped networks \(ststnet, "
                                             rf"offtanet\), not {name}; set model\.noise_filter=none$"):
            RecognizerConfig(name=name, noise_filter="forest")


def test_a_width_other_than_1_is_refused_for_every_recognizer_but_ststnet():
    """width multiplies STSTNet's filters only: 2 is taken by ststnet and refused for offtanet and for each
    scikit-learn recognizer, naming the key. Mutation killed: the check made for offtanet alone."""
    from icegan.recognizer_config import SKLEARN_MODELS, RecognizerConfig
    assert RecognizerConfig(width=2).width == 2
    for name in ("offtanet",) + SKLEARN_MODELS:
        with pytest.raises(ValueError, match=rf"^model\.width=2 applies to ststnet only, not {name}$"):
            RecognizerConfig(name=name, width=2)


@pytest.mark.parametrize("key, value, ok", [("lr", math.inf, False), ("lr", 1e-12, True),
                                            ("logreg_C", math.inf, False), ("logreg_C", 1e-12, True),
                                            ("sam_rho", -1e-12, False), ("sam_rho", 0.0, True),
                                            ("sam_rho", math.inf, False)])
def test_rate_and_sam_radius_edges(key, value, ok):
    """lr and logreg_C must be finite and > 0 (inf refused, the smallest positive value taken); sam_rho is a finite
    number >= 0 (0 = off). Mutations killed: the finiteness of lr and logreg_C unchecked; sam_rho left out of the
    non-negative keys (a negative radius climbs the loss)."""
    from icegan.recognizer_config import RecognizerConfig
    name = "logreg" if key == "logreg_C" else "ststnet"
    if ok:
        assert getattr(RecognizerConfig(name=name, **{key: value}), key) == value
    else:
        low = "> 0" if key != "sam_rho" else ">= 0 \\(0 = off\\)"
        with pytest.raises(ValueError, match=rf"^model\.{key} must be a finite number {low}, got {value}$"):
            RecognizerConfig(name=name, **{key: value})


# ------------------------------------------------------------------------------------------------ icegan.data.check


def test_two_files_for_the_apex_skip_the_clip_and_two_for_another_frame_warn(tmp_path):
    """A listing note saying two files carry one frame number: for the apex (15), which prepare reads, the clip is
    skipped naming it; for frame 12 it is a warning. Mutation killed: only a doubled onset skips."""
    note = "two files for frame {n}: img{n}.jpg, img0{n}.jpg"
    assert problems(clip_record(tmp_path, notes=(note.format(n=15),))) == [
        (note.format(n=15) + ": the apex frame is ambiguous; remove or rename one of the files", "skip")]
    assert problems(clip_record(tmp_path, notes=(note.format(n=12),))) == [(note.format(n=12), "warn")]


def test_an_apex_at_the_onset_and_an_offset_at_the_onset_are_not_out_of_order(tmp_path):
    """Order checks are strict: apex = onset = 10 is not out of order (its own skip since audit 55: no onset→apex
    motion) and offset = onset = 10 is no problem, apex 9 or offset 9 is (skip, warning). Mutations killed:
    ``apex <= onset`` or ``offset <= onset`` reported as out of order."""
    assert problems(clip_record(tmp_path, apex=10, offset=10, frames=range(10, 12))) == [
        ("apex equals onset (10): no onset→apex motion", "skip")]
    assert problems(clip_record(tmp_path, apex=11, offset=10, frames=range(10, 12))) == []
    assert problems(clip_record(tmp_path, apex=9, offset=10, frames=range(9, 12))) == [("apex 9 is before onset 10", "skip")]
    assert problems(clip_record(tmp_path, apex=11, offset=9, frames=range(9, 12))) == [("offset 9 is before onset 10",
                                                                                  "warn")]


def test_a_clip_cut_before_its_offset_is_truncated_and_a_hole_is_missing_frames(tmp_path):
    """onset 10, apex 15, offset 20. Frames 10..17 on disk: 18-20 are the end of the span, "truncated". Frames
    10..14, 16..18: 15 is the apex (a skip of its own) and the missing 15, 19-20 hold a hole, so "missing frames ...
    inside". Mutation killed: any span whose last frame is missing called truncated."""
    assert problems(clip_record(tmp_path, frames=range(10, 18))) == [
        ("truncated: frames 18-20 of onset..offset 10-20 missing", "warn")]
    frames = [*range(10, 15), *range(16, 19)]
    assert problems(clip_record(tmp_path, apex=12, frames=frames)) == [
        ("missing frames 15, 19-20 inside onset..offset 10-20", "warn")]


def test_an_absent_apex_without_offset_is_one_skip_not_also_a_gap(tmp_path):
    """SMIC-like row (offset optional): onset 10, apex 15 not on disk, frames 10..12. The apex is reported once, as
    a skip; the span onset..apex is not also called truncated. Mutation killed: the gap check run up to an absent
    apex."""
    assert problems(clip_record(tmp_path, "smic", offset=None, frames=range(10, 13))) == [
        ("apex frame 15 not on disk (frames present: 10-12)", "skip")]


def test_frame_sizes_the_apex_named_a_spotting_span_frame_fatal_and_unknown_sizes_ignored(tmp_path):
    """Sizes keyed by path; the onset's (64×48) is the reference. Frames 12 and 15 (the apex) of another size: a skip
    naming the apex as the example. With the apex to be spotted (None, need_apex False), a frame of another size
    inside onset..offset is fatal too. A frame whose size is unknown, (0, 0), is never odd. Mutations killed: the
    example always the lowest odd frame; only an odd apex fatal; (0, 0) counted as a size."""
    rec = clip_record(tmp_path)
    path = dict(zip(rec.frame_numbers, rec.frame_paths))
    sizes = {p: (64, 48) for p in rec.frame_paths}
    sizes[path[12]] = sizes[path[15]] = (32, 24)
    ((text, sev),) = problems(rec, sizes=sizes)
    assert sev == "skip"
    assert text.startswith("frame(s) 12, 15 not of the onset frame's size 64×48 (frame 15, img15.jpg: 32×24)")
    spotted = clip_record(tmp_path, "smic", apex=None, offset=None)
    one = {p: (64, 48) for p in spotted.frame_paths}
    one[path[12]] = (32, 24)
    ((text, sev),) = problems(spotted, need_apex=False, sizes=one)
    assert sev == "skip" and text.startswith("frame(s) 12 not of the onset frame's size")
    unknown = {p: (64, 48) for p in rec.frame_paths}
    unknown[path[12]] = (0, 0)
    assert problems(rec, sizes=unknown) == []


def test_an_onset_cell_that_is_no_frame_number_skips_the_clip(tmp_path):
    """A sheet row whose onset is not a number (record onset None): skipped, saying so. Mutation killed: the check
    dropped (the clip then passes as usable, and prepare fails on it later)."""
    assert problems(clip_record(tmp_path, onset=None)) == [("onset is not a frame number in the sheet", "skip")]


def _clip_list(tmp_path: Path) -> Path:
    """Three clips of 16×16 JPEG frames, listed in ``clips.csv`` (subject p):

    - ``a``: frames 10..15, onset 10, apex 15, no offset: no problem (ok and usable);
    - ``b``: frames 10..13, onset 10, apex 13, offset 15: truncated before its offset, a warning (usable, not ok);
    - ``c``: frames 10..12, onset 10, apex 14, offset 16: apex absent (skip) and truncated (warning): skipped.
    13 frames in all."""
    import cv2
    import numpy as np
    for clip, last in (("a", 15), ("b", 13), ("c", 12)):
        folder = tmp_path / "v" / clip
        folder.mkdir(parents=True)
        for n in range(10, last + 1):
            cv2.imwrite(str(folder / f"img{n}.jpg"), np.full((16, 16), 100 + n, np.uint8))
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset\np,a,v/a,10,15,\np,b,v/b,10,13,15\np,c,v/c,10,14,16\n")
    return csv


def test_a_checked_clip_list_counts_ok_usable_and_skipped_clips_and_their_problems(tmp_path):
    """On :func:`_clip_list`: usable a and b, ok only a (b has a warning); c skipped with only its skip problem as the
    reason; 3 problems over 2 clips, said as such in the text; 13 frames decoded even with ``workers=0`` (one thread
    at least). Mutations killed: a clip with warnings counted ok; the skip reason joining the warnings too; the text
    counting problems as clips; ``workers=0`` passed to the thread pool (ValueError)."""
    from icegan.data.check import check_dataset
    rep = check_dataset("clips", _clip_list(tmp_path), workers=0)
    assert (rep.clips_usable, rep.clips_ok, rep.frames_checked) == (2, 1, 13)
    assert rep.clips_skipped == [{"clip": "clips/p/c", "reason": "apex frame 14 not on disk (frames present: 10-12)"}]
    assert sorted(p["clip"] for p in rep.clips_with_problems) == ["clips/p/b", "clips/p/c", "clips/p/c"]
    assert "skipped: 1; clips with problems: 2 (3 problems)" in rep.text()


# ------------------------------------------------------------------------------------------------- icegan.data.samm


def test_a_samm_subject_folder_is_exactly_three_digits():
    """SAMM's subject folders are ``006`` ... ``037``: three digits, nothing more or less (``7`` and ``0061`` are
    other folders, reported as such by data check). Mutations killed: any run of digits; a three-digit prefix."""
    from icegan.data.samm import SAMM
    assert SAMM.looks_like_subject("006") and SAMM.looks_like_subject("037")
    assert not any(SAMM.looks_like_subject(n) for n in ("7", "06", "0061", "006a", "s006", ""))


def test_samm_records_are_the_composite_clips_of_the_given_sheet_by_default(shared_data, tmp_path):
    """With the official sheet given and an (empty) subject folder, samm_records lists the sheet's clips: the 133
    MEGC2019 composite clips by default and all 159 with ``composite_only=False`` (Davison et al. 2016; the composite
    of the MEGC2019 challenge). Mutations killed: every clip listed by default; the sheet argument dropped (the root
    here holds no sheet to fall back on)."""
    from icegan.data.samm import samm_records
    (tmp_path / "SAMM" / "006").mkdir(parents=True)
    sheet = shared_data / "annotations" / "SAMM_Micro_FACS_Codes_v2.xlsx"
    assert len(samm_records(tmp_path, sheet)) == 133
    assert len(samm_records(tmp_path, sheet, composite_only=False)) == 159
