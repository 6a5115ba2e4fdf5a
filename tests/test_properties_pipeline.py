"""Property-based tests (hypothesis) of the main job's data path and the recognition engine's bookkeeping
(icegan/pipeline.py, icegan/gan/synthesis.py's counts, icegan/recognition.py, icegan/data/check.py,
icegan/environment.py and the argparse types of icegan/commands/*).

Each property holds for every drawn input (the "suite" profile of tests/conftest.py: the same draws every run):

* :func:`map_file_names`: one name per clip, no two equal ignoring case, no path separator, ``<subject>_<clip>.npy``
  for the first clip of a stem, and the names of a prefix of the clips are the prefix of the names;
* :func:`write_skipped` then :func:`read_skipped` gives the same keys and reasons (text kept character for
  character: ``007``, ``nan``, commas, quotes, newlines); no skipped clip removes a file left before;
* ``timing.json`` (:func:`_update_timing`): after any sequence of calls it holds the union of every call's fold
  times, a later time of a subject replacing the earlier, and the latest extras; a damaged file reads as None;
* :func:`balanced_augmentation` (ICE-GAN Sec. IV-C, class-balanced augmentation): real + synthetic counts equal
  the target in every class, the onsets are used round robin (their use counts differ by at most one), a target
  below a real count is refused naming it;
* :func:`class_weights`: the closed form n_g / (K_g · n_gc) over the classes present (0 for an absent one), so every
  present class carries the same total weight n_g / K_g; unbalanced: 1 on present classes;
* :func:`subject_weights` and :func:`dataset_class_weights`: 0 outside a model's rows, mean 1 over them, every
  subject (every dataset × class cell) of a model with the same total; when every dataset holds every class, class
  weights on the weighted counts are all 1 (as the docstring says);
* :func:`inner_val_masks` / :func:`inner_val_split`: disjoint, inside the training rows, never a row outside them
  (the held-out subject), no subject split, ``max(1, round(f n))`` validation subjects; all of them is refused;
* :func:`train_models` batching: every row some model trains on is in exactly one batch per epoch and no other
  row is; batches hold ``batch_size`` rows but the last;
* :func:`predict_models`: permuting the clips permutes the probabilities (prediction order is input order), for any
  chunk size;
* :func:`padding_mismatches` (layout checker): a folder named as a missing subject but for the zero padding or
  letters of its number maps to it, a folder matching two or none does not; ``padded_subject`` (icegan/data/base.py) names the CASME II / SAMM
  subject folder a name is but for its zero padding (SAMM ``6`` → ``006``), None for a folder that is one already
  (CASME II: ``sub`` and any digits) or for no subject;
* :func:`cpu_contention` warns exactly when others >= 0.75 and others + workers·threads > cpus + 0.5;
* argparse types (``--workers`` of ``icegan data check`` and ``icegan train``, ``--cpus-per-fold``, ``--seeds``,
  ``--input-size``): every valid text is accepted and converted, every invalid one refused naming the flag.
"""
from __future__ import annotations

import argparse
import json
import math
import string
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import icegan.recognition as recognition
from icegan.commands.data import _threads
from icegan.commands.flow import _input_size
from icegan.commands.suite import _seed_list
from icegan.commands.train import _cores, _count
from icegan.data.casme2 import CASME2
from icegan.data.check import padding_mismatches
from icegan.data.samm import SAMM
from icegan.environment import cpu_contention
from icegan.gan.synthesis import balanced_augmentation
from icegan.pipeline import _read_timing, _update_timing, map_file_names, read_skipped, write_skipped
from icegan.recognition import (class_weights, dataset_class_weights, inner_val_masks, inner_val_split,
                                predict_models, subject_weights)
from icegan.recognizer_config import RecognizerConfig

SEARCH = settings.default.max_examples > 100       # the "search" profile: at least 200 examples of the slow ones
names = st.text(string.ascii_letters + string.digits + "_-./\\ ", min_size=1, max_size=6)


# ---------------------------------------------------------------------------------------------------------------------
# pipeline: exported map names, skipped.csv, timing.json
# ---------------------------------------------------------------------------------------------------------------------
@given(st.lists(st.tuples(names, names), max_size=25))
def test_map_file_names_are_one_per_clip_distinct_ignoring_case_and_prefix_stable(pairs):
    subjects, clips = [p[0] for p in pairs], [p[1] for p in pairs]
    out = map_file_names(subjects, clips)
    assert len(out) == len(pairs)
    assert len({n.lower() for n in out}) == len(out)
    assert all(n.endswith(".npy") and "/" not in n and "\\" not in n for n in out)
    seen = set()
    for (s, c), n in zip(pairs, out):
        stem = f"{s}_{c}".replace("/", "_").replace("\\", "_")
        assert n.startswith(stem)
        if stem.lower() + ".npy" not in seen:       # nothing earlier took the plain name
            assert n == stem + ".npy"
        seen.add(n.lower())
    for k in range(len(pairs) + 1):
        assert map_file_names(subjects[:k], clips[:k]) == out[:k]


# no "\r": pandas' writer quotes a field holding the line terminator "\n" but not a bare "\r", which the reader
# then takes for a line end (a key is a clip's subject/clip, a reason a message of icegan: neither holds one)
cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=8)


# text that pandas would read as a number or as missing unless told to read text
numberlike = st.sampled_from(["007", "1.10", "1e3", "-0", "nan", "NA", "None", "", "0x1", " 5"])


@given(st.lists(st.tuples(cells | numberlike, (cells | numberlike).filter(lambda r: r.strip() != "")), max_size=8))
def test_skipped_clips_written_and_read_back_are_the_same(rows):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "skipped.csv"
        path.write_text("key,reason\nold,stale\n")
        write_skipped(path, pd.DataFrame(rows, columns=["key", "reason"]))
        if not rows:
            assert not path.exists()
            return
        back = read_skipped(path, "rerun")
    assert back["key"].tolist() == [r[0] for r in rows]
    assert back["reason"].tolist() == [r[1] for r in rows]


class _Runner:
    def __init__(self, secs, rss):
        self.fold_seconds, self.fold_peak_rss_mb = secs, rss


subjects_st = st.sampled_from(["casme2/sub01", "casme2/sub02", "samm/006", "smic/s1", "x"])
timings = st.dictionaries(subjects_st, st.floats(0, 1e4, allow_nan=False))


@given(st.lists(st.tuples(timings, timings, st.integers(0, 99)), min_size=1, max_size=5))
def test_timing_json_holds_the_union_of_every_calls_fold_times(calls):
    want_s, want_r = {}, {}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "timing.json"
        for secs, rss, extra in calls:
            _update_timing(path, _Runner(dict(secs), dict(rss)), last=extra)
            want_s.update(secs)
            want_r.update(rss)
            got = json.loads(path.read_text())
            assert got["fold_seconds"] == want_s and got["last"] == extra
            assert got.get("fold_peak_rss_mb", {}) == want_r
            assert _read_timing(path) == got
        path.write_text(path.read_text()[:-1])          # cut short: read as None, the next call starts again
        assert _read_timing(path) is None
        _update_timing(path, _Runner({"y": 1.0}, {}))
        assert json.loads(path.read_text())["fold_seconds"] == {"y": 1.0}


# ---------------------------------------------------------------------------------------------------------------------
# class-balanced augmentation counts (icegan/gan/synthesis.py, as the fold's GAN stage calls it)
# ---------------------------------------------------------------------------------------------------------------------
class _StubGenerator(torch.nn.Module):
    """The generator's interface, returning its onset: counts and sources are what is tested."""
    z_dim, in_channels, img_size = 2, 1, 4

    def __init__(self, n_classes):
        super().__init__()
        self.n_classes = n_classes
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, onset, z, cls):
        return onset + self.w


@given(st.integers(2, 5), st.data())
def test_balanced_augmentation_fills_every_class_to_the_target_round_robin(k, data):
    labels = data.draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=20))
    counts = np.bincount(labels, minlength=k)
    extra = data.draw(st.none() | st.integers(0, 5))
    target = None if extra is None else int(counts.max()) + extra
    n = len(labels)
    onset = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 4, 4).contiguous()
    apex, src, cls = balanced_augmentation(_StubGenerator(k), onset, labels, target, seed=data.draw(st.integers(0, 9)),
                                           batch_size=data.draw(st.integers(1, 7)))
    t = int(counts.max()) if target is None else target
    assert (counts + np.bincount(cls.numpy(), minlength=k) == t).all()
    assert len(apex) == len(src) == len(cls) == k * t - n
    assert torch.equal(apex[:, 0, 0, 0], src.float())           # every face made from its own source onset
    uses = np.bincount(src.numpy(), minlength=n)
    assert uses.max() - uses.min() <= 1
    if counts.max() > 0 and data.draw(st.booleans()):
        with pytest.raises(ValueError, match=f"below the largest real class count {counts.max()}"):
            balanced_augmentation(_StubGenerator(k), onset, labels, int(counts.max()) - 1)


# ---------------------------------------------------------------------------------------------------------------------
# recognition: class, subject and dataset-class weights
# ---------------------------------------------------------------------------------------------------------------------
@st.composite
def masked_labels(draw, max_models=3, max_rows=20):
    k = draw(st.integers(2, 5))
    n = draw(st.integers(1, max_rows))
    g = draw(st.integers(1, max_models))
    y = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    mask = draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=g, max_size=g))
    return k, np.array(y), np.array(mask, dtype=bool)


@given(masked_labels(), st.booleans())
def test_class_weights_are_the_documented_closed_form(case, balanced):
    k, y, mask = case
    w = class_weights(torch.as_tensor(y), torch.as_tensor(mask, dtype=torch.float32), k, balanced).numpy()
    assert w.shape == (mask.shape[0], k)
    for g in range(mask.shape[0]):
        counts = np.bincount(y[mask[g]], minlength=k)
        present = counts > 0
        if not balanced:
            assert (w[g] == present).all()
            continue
        want = np.where(present, counts.sum() / (max(1, present.sum()) * np.maximum(counts, 1)), 0.0)
        assert np.allclose(w[g], want, rtol=1e-6)
        # every present class carries the same total weight, n_g / K_g, summing to n_g
        totals = w[g] * counts
        if not present.any():
            assert (w[g] == 0).all()
            continue
        assert np.allclose(totals[present], counts.sum() / present.sum(), rtol=1e-5)
        assert np.isclose(totals.sum(), counts.sum(), rtol=1e-5)


@given(masked_labels(max_rows=24), st.data())
def test_subject_and_dataset_class_weights_give_every_group_the_same_total(case, data):
    k, y, mask = case
    n = len(y)
    subjects = data.draw(st.lists(st.sampled_from(["casme2/sub01", "casme2/sub02", "samm/006", "samm/007", "smic/s1"]),
                                  min_size=n, max_size=n))
    for w, groups in ((subject_weights(subjects, mask).numpy(), subjects),
                      (dataset_class_weights(subjects, y, mask).numpy(),
                       [f"{s.split('/')[0]}|{c}" for s, c in zip(subjects, y)])):
        assert w.shape == mask.shape and w.dtype == np.float32
        assert (w[~mask] == 0).all() and (w[mask] > 0).all()
        for g in range(mask.shape[0]):
            if not mask[g].any():
                continue
            assert np.isclose(w[g][mask[g]].mean(), 1.0, rtol=1e-5)
            rows = np.flatnonzero(mask[g])
            totals = {}
            for i in rows:
                totals[groups[i]] = totals.get(groups[i], 0.0) + float(w[g, i])
            assert np.allclose(list(totals.values()), next(iter(totals.values())), rtol=1e-5)
    with pytest.raises(ValueError, match="subjects"):
        subject_weights(subjects + ["x"], mask)


@given(st.integers(2, 4), st.lists(st.sampled_from(["casme2", "samm", "smic"]), min_size=1, max_size=3, unique=True),
       st.data())
def test_dataset_class_weighted_counts_give_class_weights_of_one(k, datasets, data):
    # every (dataset, class) cell has at least one clip: the weighted class counts are all equal
    cellsz = [(d, c, data.draw(st.integers(1, 4))) for d in datasets for c in range(k)]
    subjects = [f"{d}/s{i}" for d, c, m in cellsz for i in range(m)]
    y = np.array([c for d, c, m in cellsz for _ in range(m)])
    w = dataset_class_weights(subjects, y, np.ones((1, len(y)), dtype=bool))
    cw = class_weights(torch.as_tensor(y), w, k)
    assert torch.allclose(cw, torch.ones_like(cw), rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# recognition: inner validation split
# ---------------------------------------------------------------------------------------------------------------------
@given(st.lists(st.sampled_from([f"d/s{i}" for i in range(8)]), min_size=2, max_size=30), st.floats(0.0, 0.9),
       st.integers(0, 2**31 - 1), st.data())
def test_inner_validation_keeps_subjects_whole_and_never_takes_the_held_out_subject(subjects, fraction, seed, data):
    subj = np.array(subjects)
    held = data.draw(st.sampled_from(sorted(set(subjects))))
    train_idx = np.flatnonzero(subj != held)
    names_tr = sorted(set(subj[train_idx]))
    k = max(1, int(round(fraction * len(names_tr))))
    if k >= len(names_tr):
        with pytest.raises(ValueError, match="inner validation would take all"):
            inner_val_split(subjects, train_idx, fraction, seed)
        return
    tr, va = inner_val_split(subjects, train_idx, fraction, seed)
    assert np.array_equal(np.sort(np.concatenate([tr, va])), train_idx)      # disjoint, cover the training rows
    assert (np.diff(tr) > 0).all() and (np.diff(va) > 0).all()
    assert held not in set(subj[va]) and held not in set(subj[tr])
    assert not set(subj[tr]) & set(subj[va])
    assert len(set(subj[va])) == k
    again = inner_val_split(subjects, train_idx, fraction, seed)
    assert np.array_equal(again[0], tr) and np.array_equal(again[1], va)
    # the masks of several models: each is split inside its own rows
    masks = np.stack([subj != h for h in sorted(set(subjects))])
    assume(all(len(set(subj[m])) > max(1, int(round(fraction * len(set(subj[m]))))) for m in masks))
    mtr, mva = inner_val_masks(subjects, masks, fraction, np.random.default_rng(seed))
    assert not (mtr & mva).any() and ((mtr | mva) == masks).all()
    for g in range(len(masks)):
        assert not set(subj[mtr[g]]) & set(subj[mva[g]])


# ---------------------------------------------------------------------------------------------------------------------
# recognition: batches of train_models and the order of predict_models
# ---------------------------------------------------------------------------------------------------------------------
class _RowRecorder(torch.nn.Module):
    """G copies of a linear model; records the row ids (pixel [0, 0, 0] of each input) of every training batch."""

    def __init__(self, g, k, seen):
        super().__init__()
        self.g, self.k, self.seen = g, k, seen
        self.lin = torch.nn.Linear(1, g * k)

    def forward(self, x, sample_mask=None, **kw):
        if self.training:
            self.seen.append(x[:, 0, 0, 0].round().long().tolist())
        out = self.lin(x[:, :1, 0, 0]).view(len(x), self.g, self.k)
        return out[:, 0] if self.g == 1 else out


@settings(max_examples=200 if SEARCH else 30)
@given(st.integers(1, 20), st.integers(1, 3), st.integers(0, 8), st.integers(1, 3), st.data())
def test_every_training_row_is_in_exactly_one_batch_per_epoch(n, g, batch_size, epochs, data):
    mask = torch.tensor(data.draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=g, max_size=g)))
    assume(bool(mask.any(1).all()))
    y = torch.tensor(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    x = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 3, 4, 4).contiguous()
    cfg = RecognizerConfig(epochs=epochs, batch_size=batch_size, hflip=False, input_size=4, eval_every=1)
    seen = []
    real = recognition._build
    recognition._build = lambda cfg, G, *a, **kw: _RowRecorder(G, kw.get("n_classes", a[-1] if a else 3), seen)
    try:
        recognition.train_models(cfg, x, y, mask, progress=False, seed=data.draw(st.integers(0, 99)))
    finally:
        recognition._build = real
    rows = sorted(torch.nonzero(mask.any(0)).flatten().tolist())
    bs = len(rows) if batch_size <= 0 else min(batch_size, len(rows))
    steps = math.ceil(len(rows) / bs)
    assert len(seen) == steps * epochs
    for e in range(epochs):
        batches = seen[e * steps:(e + 1) * steps]
        assert sorted(i for b in batches for i in b) == rows
        assert all(len(b) == bs for b in batches[:-1])


class _PerClip(torch.nn.Module):
    """Logits of each clip from that clip alone (no batch statistics)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3 * 4 * 4, 3)

    def forward(self, x, **kw):
        return self.lin(x.flatten(1))


@given(st.integers(1, 12), st.integers(1, 13), st.randoms(use_true_random=False), st.booleans(), st.integers(0, 2))
def test_predictions_come_in_input_order_for_any_chunk_size(n, batch, rnd, flip, shift):
    torch.manual_seed(0)
    model = _PerClip()
    x = torch.rand(n, 3, 4, 4)
    perm = list(range(n))
    rnd.shuffle(perm)
    p = predict_models(model, x, tta_hflip=flip, batch=batch, tta_shift_px=shift)
    q = predict_models(model, x[perm], tta_hflip=flip, batch=max(1, n - batch + 1), tta_shift_px=shift)
    assert p.shape == (n, 1, 3)
    assert torch.allclose(q, p[perm], atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# layout checker, CPU note
# ---------------------------------------------------------------------------------------------------------------------
@given(st.sampled_from(["sub", "SUB", "Sub", ""]), st.integers(0, 999), st.integers(0, 3), st.integers(0, 3),
       st.lists(st.integers(0, 999), max_size=4))
def test_a_folder_padded_otherwise_maps_to_its_missing_subject(prefix, number, pad_folder, pad_sheet, others):
    folder = f"{prefix}{number:0{pad_folder + 1}d}"
    sheet = f"{prefix.lower()}{number:0{pad_sheet + 1}d}"
    missing = [sheet] + [f"other{o}" for o in others]
    got = padding_mismatches([folder, "nothing"], missing)
    assert got == ({} if folder == sheet else {folder: sheet})
    # a folder that two missing subjects match (sub2 for sub02 and sub002) is left out
    assert padding_mismatches([folder], [sheet, f"{prefix}{number:0{pad_sheet + 5}d}"]) == {}


@given(st.sampled_from(["sub", "Sub", "SUB", "s", "P"]), st.integers(0, 12000), st.integers(0, 5))
def test_padded_subject_of_casme2_is_none_as_every_sub_number_is_a_subject_folder(prefix, n, pad):
    # CASME II's looks_like_subject takes sub + any digits (sub1 as well as sub01), so no name is a subject "but for
    # its padding" (the docstring's sub1 -> sub01 example was wrong: found by this property); s1 / P1 are no subject
    name = f"{prefix}{n:0{pad + 1}d}"
    assert CASME2.looks_like_subject(name) == (prefix.lower() == "sub")
    assert CASME2.padded_subject(name) is None


@given(st.integers(0, 12000), st.integers(0, 5), st.sampled_from(["", "s", "x_"]))
def test_padded_subject_names_the_samm_folder_a_number_is_but_for_its_padding(n, pad, prefix):
    digits = f"{n:0{pad + 1}d}"
    got = SAMM.padded_subject(prefix + digits)
    if prefix or len(digits) == 3 or n >= 1000:         # not a SAMM number, or a subject folder already
        assert got is None
    else:                                               # 6 -> 006, 06 -> 006, 0006 -> 006
        assert got == f"{n:03d}" and SAMM.looks_like_subject(got)


@given(st.integers(1, 16), st.integers(1, 4) | st.integers(1, 64), st.integers(1, 8), st.data())
def test_the_busy_cpu_note_speaks_exactly_as_documented(threads, cpus, workers, data):
    edge = cpus + 0.5 - workers * threads               # others at which the run just fits
    others = data.draw(st.sampled_from([0.0, 0.5, 0.74, 0.75, 0.76, 1.0]) | st.floats(0, 64) | st.integers(0, 64)
                       | st.sampled_from([edge - 0.25, edge, edge + 0.25]).map(lambda o: max(0.0, o)))
    note = cpu_contention(threads, others=others, cpus=cpus, workers=workers)
    assert (note is not None) == (others >= 0.75 and others + workers * threads > cpus + 0.5)
    if note is not None:
        assert f"{cpus} usable CPUs" in note and f"{others:.1f}" in note


# ---------------------------------------------------------------------------------------------------------------------
# argparse types of the commands
# ---------------------------------------------------------------------------------------------------------------------
def _refused(argv, flag, capsys):
    from icegan.cli import build_parser
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


spaced = st.sampled_from(["", " ", "  "])
not_int = st.one_of(st.text(string.ascii_letters + ".,-+", min_size=1, max_size=5),
                    st.floats(allow_nan=True).filter(lambda f: not (math.isfinite(f) and f == int(f))).map(repr))


@given(st.integers(-3, 3) | st.integers(-50, 10**6), spaced, spaced)
def test_integer_counts_accept_every_integer_text_in_range_and_refuse_the_rest(n, a, b):
    text = f"{a}{n}{b}"
    for fn, low in ((_threads, 1), (_count, 0)):
        if n >= low:
            assert fn(text) == n
        else:
            with pytest.raises(argparse.ArgumentTypeError, match=f">= {low}"):
                fn(text)


@given(not_int)
def test_integer_counts_refuse_text_that_is_not_an_integer(text):
    assume(text.strip().lstrip("+-").isdigit() is False)
    for fn in (_threads, _count):
        with pytest.raises(argparse.ArgumentTypeError, match="expected an integer"):
            fn(text)


def test_the_parser_names_the_flag_of_a_refused_count(capsys):
    for argv, flag in ((["data", "check", "casme2", "--root", "r", "--workers", "0"], "--workers"),
                       (["data", "check", "casme2", "--root", "r", "--workers", "two"], "--workers"),
                       (["train", "--workers", "-1"], "--workers"),
                       (["train", "--cpus-per-fold", "nan"], "--cpus-per-fold"),
                       (["suite", "--config", "c", "--out", "o", "--seeds", "1,x"], "--seeds")):
        _refused(argv, flag, capsys)


@given(st.one_of(st.sampled_from([math.inf, -math.inf, math.nan, 0.0, -0.0, 5e-324, 1e308]),
                 st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10**6)), spaced)
def test_cpus_per_fold_accepts_exactly_the_finite_positive_numbers(value, pad):
    text = f"{pad}{value!r}{pad}"
    if isinstance(value, float) and not math.isnan(value) and 0 < value < math.inf or isinstance(value, int) and \
            value > 0:
        assert _cores(text) == float(value)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="CPU cores > 0"):
            _cores(text)


@given(st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=6), st.lists(spaced, min_size=7, max_size=7),
       st.lists(st.booleans(), min_size=7, max_size=7))
def test_seed_lists_read_every_comma_separated_integer(seeds, pads, blanks):
    # a blank item (``0,,1`` or a trailing comma) is skipped
    text = ",".join(f"{pads[i]}{s}{pads[i + 1]}" + ("," + pads[i] if blanks[i] else "") for i, s in enumerate(seeds))
    assert _seed_list(text) == seeds


@given(st.lists(spaced, max_size=4).map(",".join) | st.text(string.ascii_letters + ".,;", min_size=1, max_size=6))
def test_seed_lists_without_an_integer_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected comma-separated integers"):
        _seed_list(text)


def test_an_empty_seed_list_is_refused_naming_the_flag(capsys):
    """--seeds , (or an empty --seeds "") read as no --seeds: the suite ran the file's seeds without a word."""
    for text in ("", ",", " , "):
        _refused(["suite", "--config", "c", "--out", "o", "--seeds", text], "--seeds", capsys)


@given(st.integers(0, 16) | st.integers(0, 10**5), spaced, st.sampled_from(["auto", "native"]))
def test_input_size_accepts_auto_native_and_sides_of_at_least_8(side, pad, word):
    assert _input_size(f"{pad}{word}{pad}") == word
    if side >= 8:
        assert _input_size(f"{pad}{side}{pad}") == side
    else:
        with pytest.raises(ValueError, match="--input-size"):
            _input_size(str(side))


@given(st.text(max_size=6))
def test_input_size_refuses_any_other_text_naming_the_flag(text):
    t = text.strip()
    assume(t not in ("auto", "native") and not (t.isascii() and t.isdecimal() and int(t) >= 8))
    with pytest.raises(ValueError, match="--input-size"):
        _input_size(text)


def test_input_size_refuses_a_superscript_digit_naming_the_flag():
    """'²' is a digit to str.isdigit but not a number to int(): --input-size ² raised int()'s own message, which does
    not name the flag (found by the search profile)."""
    with pytest.raises(ValueError, match="--input-size ²"):
        _input_size("²")
    # fullwidth digits are decimal to int(), but a flag's number is ASCII digits (icegan.commands._numbers)
    with pytest.raises(ValueError, match="--input-size"):
        _input_size("\uff11\uff16")
