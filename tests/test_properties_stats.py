"""Property-based tests (hypothesis) of the subject bootstrap (icegan/significance.py) and the results table
(icegan/report.py).

Each property holds for every set of predictions hypothesis draws (2–6 subjects of 1–2 datasets, 1–4 clips each,
1–2 runs per entry; the "suite" profile of tests/conftest.py draws the same ones every run):

* :func:`stratified_indices` (Efron & Tibshirani 1993, ch. 13: resample within each stratum): a (B, S) array whose
  columns come in strata blocks (order of first appearance), each block as wide as its stratum and drawing only
  its stratum's subjects; the same seed gives the same draws;
* :func:`subject_confusions`: the per-subject matrices sum to the pooled confusion matrix and each is its subject's
  own; an unknown subject or a class id out of range is refused, naming it;
* :func:`bootstrap_compare` (paired cluster bootstrap): the point values are the mean over runs of the pooled
  MEGC2019 UF1 / UAR; an entry compared with an identical one differs by exactly 0 in every resample (interval
  (0, 0), no resample better, all ties); swapping two entries negates the difference and its interval and leaves
  each entry's own interval as it was (p_better one way + the other way + p_tie = 1); intervals lie in [0, 1], low
  ≤ high, and a lower confidence gives an interval inside a higher one's (same seed, same draws); ``stratify``
  changes nothing when all subjects are of one dataset (documented), and never the point values;
* :func:`subject_interval`: the interval of bootstrap_compare's row; the clips' order does not matter; when every
  subject has the same confusion matrix each resample pools k copies of it, and UF1 / UAR of k·M are those of M, so
  the interval is the point; None for one subject. (A percentile interval need not contain the point estimate, so
  that is not asserted.)
* :func:`check_bootstrap_settings`: resamples < 100 and a confidence outside (0, 1) raise a ValueError naming the
  setting (by the name given), the allowed range and the value, resamples first; valid settings pass;
* :func:`icegan.report.results_table`: a cell of n runs is numpy's mean and sample standard deviation (ddof=1) over
  them, the CSV gives them back exactly (repr round trip) and the Markdown as ``mean ± std`` to 4 decimals; the
  runs' order in the entry does not change the row beyond float rounding;
* :func:`latex_escape` can be undone (round trip), :func:`markdown_cell` never leaves a bare ``|`` or line break
  and can be undone too (each escaping backslash removed), and
  :func:`parse_entry` names a bare-wildcard entry after the seeds' shared name.
"""
from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from icegan.metrics import compute_metrics, confusion_matrix
from icegan.report import latex_escape, markdown_cell, parse_entry, results_table
from icegan.significance import (MIN_RESAMPLES, RunSet, bootstrap_compare, check_bootstrap_settings,
                                 stratified_indices, subject_confusions, subject_interval)

#: bootstrap_compare / subject_interval examples: fewer in the "suite" profile, 200 in the "search" one
SLOW = settings(max_examples=20 if settings.default.max_examples <= 60 else 200)
#: results-table examples (run folders written per example): the suite's 60, 300 in the "search" profile
TABLES = settings(max_examples=60 if settings.default.max_examples <= 60 else 300)


@st.composite
def predictions(draw, min_subjects: int = 2, max_subjects: int = 6, datasets=("casme2", "samm")):
    """(subjects sorted, clips table (subject, clip, y_true) sorted): 1–4 clips per subject, classes 0..2."""
    n = draw(st.integers(min_subjects, max_subjects))
    subjects = sorted({f"{draw(st.sampled_from(datasets))}/s{i}" for i in range(n)})
    rows = [(s, f"c{j}", draw(st.integers(0, 2))) for s in subjects for j in range(draw(st.integers(1, 4)))]
    return subjects, pd.DataFrame(rows, columns=["subject", "clip", "y_true"])


def _y_pred(draw, clips: pd.DataFrame) -> np.ndarray:
    return np.asarray(draw(st.lists(st.integers(0, 2), min_size=len(clips), max_size=len(clips))))


def _run_set(label: str, subjects, clips: pd.DataFrame, y_preds) -> RunSet:
    """A RunSet of the runs whose predictions of ``clips`` are ``y_preds`` (one array per run)."""
    cms = np.stack([subject_confusions(clips.assign(y_pred=p), subjects) for p in y_preds])
    return RunSet(label, [Path(f"{label}{i}") for i in range(len(y_preds))], list(subjects), cms, clips, False)


@st.composite
def entries(draw, n_entries: int = 2, **kw):
    """``n_entries`` RunSets over the same subjects and clips, 1–2 runs each, with the runs' y_pred."""
    subjects, clips = draw(predictions(**kw))
    out = []
    for e in range(n_entries):
        preds = [_y_pred(draw, clips) for _ in range(draw(st.integers(1, 2)))]
        out.append((_run_set(f"e{e}", subjects, clips, preds), preds))
    return subjects, clips, out


# ----------------------------------------------------------------------------------------------------------------
# stratified_indices, subject_confusions
# ----------------------------------------------------------------------------------------------------------------

@given(st.lists(st.sampled_from(["smic", "casme2", "samm"]), min_size=1, max_size=12), st.integers(1, 40),
       st.integers(0, 2 ** 32 - 1))
def test_stratified_indices_draw_each_stratum_from_itself(strata, b, seed):
    idx = stratified_indices(strata, b, np.random.default_rng(seed))
    arr = np.asarray(strata)
    assert idx.shape == (b, len(strata)) and idx.dtype.kind == "i"
    start = 0
    for value in dict.fromkeys(strata):            # blocks in order of first appearance
        members = np.flatnonzero(arr == value)
        block = idx[:, start:start + len(members)]
        assert np.isin(block, members).all()
        start += len(members)
    assert start == len(strata)
    np.testing.assert_array_equal(idx, stratified_indices(strata, b, np.random.default_rng(seed)))


@given(predictions(), st.data())
def test_subject_confusions_sum_to_the_pooled_confusion(case, data):
    subjects, clips = case
    pred = clips.assign(y_pred=_y_pred(data.draw, clips))
    pred = pred.iloc[data.draw(st.permutations(range(len(pred))))]        # any row order
    cms = subject_confusions(pred, subjects)
    assert cms.shape == (len(subjects), 3, 3)
    np.testing.assert_array_equal(cms.sum(0), confusion_matrix(pred["y_true"], pred["y_pred"], 3))
    for i, s in enumerate(subjects):
        mine = pred[pred["subject"] == s]
        np.testing.assert_array_equal(cms[i], confusion_matrix(mine["y_true"], mine["y_pred"], 3))
    with pytest.raises(ValueError, match=f"prediction of an unknown subject {re.escape(subjects[0])}"):
        subject_confusions(pred, subjects[1:])
    bad = pred.copy()
    bad.iloc[data.draw(st.integers(0, len(bad) - 1)), bad.columns.get_loc(data.draw(st.sampled_from(
        ["y_true", "y_pred"])))] = data.draw(st.sampled_from([-1, 3, 7]))
    with pytest.raises(ValueError, match=r"class ids outside 0..2 in predictions"):
        subject_confusions(bad, subjects)


# ----------------------------------------------------------------------------------------------------------------
# bootstrap_compare
# ----------------------------------------------------------------------------------------------------------------

def _pooled_point(clips: pd.DataFrame, preds) -> tuple[float, float]:
    ms = [compute_metrics(clips["y_true"], p, 3) for p in preds]
    return float(np.mean([m["UF1"] for m in ms])), float(np.mean([m["UAR"] for m in ms]))


@SLOW
@given(entries(), st.integers(0, 1000), st.sampled_from([100, 157, 300]))
def test_point_values_are_the_mean_pooled_scores_and_intervals_are_ordered(case, seed, b):
    subjects, clips, ents = case
    rows = bootstrap_compare([e for e, _ in ents], resamples=b, seed=seed)
    narrow = bootstrap_compare([e for e, _ in ents], resamples=b, seed=seed, confidence=0.8)
    for row, slim, (e, preds) in zip(rows, narrow, ents):
        uf1, uar = _pooled_point(clips, preds)
        assert row["UF1"] == pytest.approx(uf1, abs=1e-12) and row["UAR"] == pytest.approx(uar, abs=1e-12)
        assert row["runs"] == len(preds) and row["label"] == e.label
        for key in ("UF1", "UAR"):
            low, high = row[f"{key}_ci"]
            assert 0.0 <= low <= high <= 1.0
            # the same draws: the 80 % interval lies inside the 95 % one
            assert low - 1e-12 <= slim[f"{key}_ci"][0] <= slim[f"{key}_ci"][1] <= high + 1e-12
    assert "dUF1" not in rows[0] and "p_better" in rows[1]
    assert bootstrap_compare([e for e, _ in ents], resamples=b, seed=seed) == rows          # deterministic


@SLOW
@given(entries(n_entries=1), st.integers(0, 1000), st.booleans())
def test_an_entry_compared_with_an_identical_one_differs_by_zero(case, seed, stratify):
    subjects, clips, [(e, preds)] = case
    twin = _run_set("twin", subjects, clips, preds)
    rows = bootstrap_compare([e, twin], resamples=MIN_RESAMPLES, seed=seed, stratify=stratify)
    r = rows[1]
    assert r["dUF1"] == 0.0 and r["dUAR"] == 0.0
    assert r["dUF1_ci"] == (0.0, 0.0) and r["dUAR_ci"] == (0.0, 0.0)
    assert r["p_better"] == 0.0 and r["p_tie"] == 1.0
    assert r["UF1_ci"] == rows[0]["UF1_ci"] and r["UAR_ci"] == rows[0]["UAR_ci"]


@SLOW
@given(entries(), st.integers(0, 1000), st.booleans())
def test_swapping_two_entries_negates_their_difference(case, seed, stratify):
    subjects, clips, [(a, _), (b, _)] = case
    ab = bootstrap_compare([a, b], resamples=MIN_RESAMPLES, seed=seed, stratify=stratify)
    ba = bootstrap_compare([b, a], resamples=MIN_RESAMPLES, seed=seed, stratify=stratify)
    assert ab[0]["UF1_ci"] == ba[1]["UF1_ci"] and ab[1]["UAR_ci"] == ba[0]["UAR_ci"]   # each entry's own interval
    for key in ("dUF1", "dUAR"):
        assert ba[1][key] == -ab[1][key]
        lo, hi = ab[1][f"{key}_ci"]
        assert ba[1][f"{key}_ci"] == pytest.approx((-hi, -lo), abs=1e-12)
    assert ab[1]["p_tie"] == ba[1]["p_tie"]
    assert ab[1]["p_better"] + ba[1]["p_better"] + ab[1]["p_tie"] == pytest.approx(1.0, abs=1e-12)


@SLOW
@given(entries(datasets=("casme2",)), st.integers(0, 1000))
def test_stratify_changes_nothing_with_subjects_of_one_dataset(case, seed):
    sets = [e for e, _ in case[2]]
    assert (bootstrap_compare(sets, resamples=MIN_RESAMPLES, seed=seed, stratify=True)
            == bootstrap_compare(sets, resamples=MIN_RESAMPLES, seed=seed))


@SLOW
@given(entries(min_subjects=3, datasets=("casme2", "samm", "smic")), st.integers(0, 1000))
def test_stratify_keeps_the_point_values(case, seed):
    sets = [e for e, _ in case[2]]
    strat = bootstrap_compare(sets, resamples=MIN_RESAMPLES, seed=seed, stratify=True)
    plain = bootstrap_compare(sets, resamples=MIN_RESAMPLES, seed=seed)
    for s, p in zip(strat, plain):
        assert (s["UF1"], s["UAR"]) == (p["UF1"], p["UAR"])
        assert all(0.0 <= v <= 1.0 for k in ("UF1_ci", "UAR_ci") for v in s[k])
    assert strat[1]["dUF1"] == plain[1]["dUF1"]


def _uf1_uar(cm: np.ndarray) -> tuple[float, float]:
    """MEGC2019 UF1 and UAR of one pooled confusion matrix, from the counts (classes present in the truth only)."""
    present = cm.sum(1) > 0
    tp = np.diag(cm)[present]
    f1 = 2 * tp / (2 * tp + (cm.sum(0) - np.diag(cm))[present] + (cm.sum(1) - np.diag(cm))[present])
    return float(f1.mean()), float((tp / cm.sum(1)[present]).mean())


def _by_hand(clips: pd.DataFrame, subjects, preds, idx: np.ndarray) -> np.ndarray:
    """(2, B): for each resample (a row of subject indices), the mean over runs of the pooled UF1 and UAR of the
    drawn subjects' clips (a subject drawn twice counts twice), worked from each subject's clips."""
    own = [[confusion_matrix(clips["y_true"][clips["subject"] == s], p[(clips["subject"] == s).to_numpy()], 3)
            for s in subjects] for p in preds]
    out = np.zeros((2, len(idx)))
    for b, row in enumerate(idx):
        scores = [_uf1_uar(sum(cms[i] for i in row)) for cms in own]
        out[:, b] = np.mean(scores, axis=0)
    return out


@SLOW
@given(entries(n_entries=1, datasets=("casme2", "samm", "smic")), st.integers(0, 1000),
       st.sampled_from([0.9, 0.95]), st.booleans())
def test_intervals_are_the_percentiles_of_the_pooled_scores_of_resampled_subjects(case, seed, conf, stratify):
    """The percentile bootstrap (Efron & Tibshirani 1993, ch. 13): the interval is the (α/2, 1 − α/2) percentiles of
    the pooled UF1 / UAR over resamples of the subjects. Stratified: drawn by stratified_indices with the seed;
    otherwise by scipy.stats.bootstrap with the same arguments, here given a statistic worked from the clips."""
    from scipy.stats import bootstrap
    subjects, clips, [(e, preds)] = case
    row = bootstrap_compare([e], resamples=MIN_RESAMPLES, confidence=conf, seed=seed, stratify=stratify)[0]
    strata = [s.split("/")[0] for s in subjects]
    alpha = (1 - conf) / 2
    if stratify and len(set(strata)) > 1:
        dist = _by_hand(clips, subjects, preds, stratified_indices(strata, MIN_RESAMPLES, np.random.default_rng(seed)))
        low, high = np.percentile(dist, [100 * alpha, 100 * (1 - alpha)], axis=1)
    else:
        def stat(idx, axis=-1):
            idx = np.asarray(idx).astype(int)
            return _by_hand(clips, subjects, preds, idx.reshape(-1, idx.shape[-1])).reshape(2, *idx.shape[:-1])
        res = bootstrap((np.arange(len(subjects)),), stat, n_resamples=MIN_RESAMPLES, vectorized=True,
                        method="percentile", confidence_level=conf, rng=np.random.default_rng(seed), batch=500)
        low, high = res.confidence_interval.low, res.confidence_interval.high
    assert row["UF1_ci"] == pytest.approx((low[0], high[0]), abs=1e-12)
    assert row["UAR_ci"] == pytest.approx((low[1], high[1]), abs=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# subject_interval
# ----------------------------------------------------------------------------------------------------------------

@SLOW
@given(predictions(), st.integers(0, 1000), st.data())
def test_subject_interval_is_bootstrap_compares_and_ignores_the_clip_order(case, seed, data):
    subjects, clips = case
    y_pred = _y_pred(data.draw, clips)
    pred = clips.assign(y_pred=y_pred)
    ci = subject_interval(pred, resamples=MIN_RESAMPLES, seed=seed, n_classes=3)
    row = bootstrap_compare([_run_set("run", subjects, clips, [y_pred])], resamples=MIN_RESAMPLES, seed=seed)[0]
    assert ci == {"UF1": row["UF1_ci"], "UAR": row["UAR_ci"], "n_subjects": len(subjects),
                  "resamples": MIN_RESAMPLES, "confidence": 0.95}
    shuffled = pred.iloc[data.draw(st.permutations(range(len(pred))))]
    assert subject_interval(shuffled, resamples=MIN_RESAMPLES, seed=seed, n_classes=3) == ci
    one = pred[pred["subject"] == subjects[0]]
    assert subject_interval(one, resamples=MIN_RESAMPLES, seed=seed, n_classes=3) is None


@SLOW
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=6), st.integers(2, 7),
       st.integers(0, 1000))
def test_subjects_with_one_confusion_matrix_give_a_point_interval(clips_of_one, n_subjects, seed):
    rows = [(f"samm/{s:03d}", f"c{j}", t, p) for s in range(n_subjects) for j, (t, p) in enumerate(clips_of_one)]
    pred = pd.DataFrame(rows, columns=["subject", "clip", "y_true", "y_pred"])
    m = compute_metrics(pred["y_true"], pred["y_pred"], 3)
    ci = subject_interval(pred, resamples=MIN_RESAMPLES, seed=seed, n_classes=3)
    for key in ("UF1", "UAR"):
        assert ci[key] == pytest.approx((m[key], m[key]), abs=1e-12)


@given(st.one_of(st.integers(-5, 10 ** 5), st.sampled_from([MIN_RESAMPLES - 1, MIN_RESAMPLES, MIN_RESAMPLES + 1])),
       st.one_of(st.none(), st.floats(-2, 3), st.just(float("nan"))),
       st.sampled_from([("resamples", "confidence"), ("--resamples", "--confidence")]))
def test_check_bootstrap_settings_names_the_first_bad_setting(b, conf, names):
    rname, cname = names
    call = dict(resamples_name=rname, confidence_name=cname)
    if b < MIN_RESAMPLES:
        with pytest.raises(ValueError, match=f"^{re.escape(rname)} must be >= {MIN_RESAMPLES} .*got {b}$"):
            check_bootstrap_settings(b, conf, **call)
    elif conf is not None and not 0 < conf < 1:
        with pytest.raises(ValueError, match=rf"^{re.escape(cname)} must be in \(0, 1\), got {re.escape(str(conf))}$"):
            check_bootstrap_settings(b, conf, **call)
    else:
        assert check_bootstrap_settings(b, conf, **call) is None


# ----------------------------------------------------------------------------------------------------------------
# results table
# ----------------------------------------------------------------------------------------------------------------

_score = st.floats(0.0, 1.0, allow_nan=False)


def _write_metrics_run(d: Path, seed: int, overall, per) -> Path:
    d.mkdir()
    m = {"protocol": "CDE", "n_folds": 68, "n_samples": 442, "oracle_epoch": False,
         "overall": {"UF1": overall[0], "UAR": overall[1]},
         "per_dataset": {ds: {"UF1": v[0], "UAR": v[1]} for ds, v in per.items()}}
    (d / "metrics.json").write_text(json.dumps(m))
    (d / "config.yaml").write_text(yaml.safe_dump({"name": d.name, "seed": seed, "model": {"name": "ststnet"}}))
    return d


@TABLES
@given(st.lists(st.tuples(st.tuples(_score, _score), st.tuples(_score, _score)), min_size=1, max_size=5),
       st.randoms(use_true_random=False))
def test_results_table_cells_are_numpys_mean_and_sample_std(runs, rnd):
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [_write_metrics_run(Path(tmp) / f"st_s{i}", i, o, {"samm": s}) for i, (o, s) in enumerate(runs)]
        from icegan.report import TableEntry
        text = results_table([TableEntry("ST", dirs)], fmt="csv")
        md = results_table([TableEntry("ST", dirs)]).splitlines()[2]
        shuffled = list(dirs)
        rnd.shuffle(shuffled)
        text2 = results_table([TableEntry("ST", shuffled)], fmt="csv")
    row = next(csv.DictReader(io.StringIO(text)))
    row2 = next(csv.DictReader(io.StringIO(text2)))
    columns = {"Full UF1": [o[0] for o, _ in runs], "Full UAR": [o[1] for o, _ in runs],
               "SAMM UF1": [s[0] for _, s in runs], "SAMM UAR": [s[1] for _, s in runs]}
    cells = md.split(" | ")
    assert row["n"] == str(len(runs)) and (row["Folds"], row["Clips"]) == ("68", "442")
    for k, (name, values) in enumerate(columns.items()):
        mean = float(np.mean(values))
        assert float(row[name]) == mean                           # repr: the float back exactly
        assert float(row2[name]) == pytest.approx(mean, abs=1e-15)
        if len(values) == 1:
            assert row[f"{name} std"] == "" and cells[4 + k] == f"{mean:.4f}"
        else:
            std = float(np.std(values, ddof=1))
            assert float(row[f"{name} std"]) == std
            assert float(row2[f"{name} std"]) == pytest.approx(std, abs=1e-12)
            assert cells[4 + k] == f"{mean:.4f} ± {std:.4f}"


#: LaTeX's ten special characters in text mode, and | < > (no text-mode signs in OT1), and their escapes (written out
#: here, not read from icegan.report)
_UNESCAPE = {r"\textbackslash{}": "\\", r"\&": "&", r"\%": "%", r"\$": "$", r"\#": "#", r"\_": "_", r"\{": "{",
             r"\}": "}", r"\textasciitilde{}": "~", r"\textasciicircum{}": "^", r"\textbar{}": "|",
             r"\textless{}": "<", r"\textgreater{}": ">"}


def _latex_unescape(text: str) -> str:
    pattern = "|".join(re.escape(v) for v in sorted(_UNESCAPE, key=len, reverse=True))
    return re.sub(pattern, lambda m: _UNESCAPE[m.group()], text)


@given(st.text(alphabet=st.sampled_from(list("ab _&%$#{}~^\\|<>\n\rxé1*`[]()")), max_size=30))
def test_latex_escape_round_trips_and_markdown_cells_stay_one_cell(text):
    escaped = latex_escape(text)
    assert _latex_unescape(escaped) == text
    for ch in "&%$#_~^|<>":
        assert re.search(rf"(?<!\\){re.escape(ch)}", escaped) is None
    cell = markdown_cell(text)
    assert "\n" not in cell and "\r" not in cell
    assert len(re.split(r"(?<!\\)\|", cell)) == 1
    assert re.sub(r"\\(.)", r"\1", cell) == text.replace("\r", " ").replace("\n", " ")     # escapes undone


@TABLES
@given(st.from_regex(r"[a-z]{1,6}(_[a-z]{1,5})?", fullmatch=True), st.sets(st.integers(0, 30), min_size=2, max_size=5),
       st.sampled_from(["_s", "-seed", "_"]), st.sets(st.from_regex(r"[a-z]{1,4}", fullmatch=True), min_size=2,
                                                     max_size=3))
def test_a_bare_wildcard_entry_is_named_after_the_seeds_shared_name(base, seeds, suffix, words):
    """Seeds of one name: that name without the seed suffix; names that differ after it (``base_x_s0``,
    ``base_yz_s1``): their common prefix of whole words, ``base``."""
    assume(not re.search(r"[_-](?:s|seed)?\d+$", base))
    with tempfile.TemporaryDirectory() as tmp:
        for s in seeds:
            (Path(tmp) / f"{base}{suffix}{s}").mkdir()
        entry = parse_entry(f"{tmp}/*")
        assert entry.label == base
        assert [r.name for r in entry.runs] == sorted(f"{base}{suffix}{s}" for s in seeds)
        named = parse_entry(f"X={tmp}/*")
        assert named.label == "X" and named.runs == entry.runs
    with tempfile.TemporaryDirectory() as tmp:
        for w, s in zip(sorted(words), sorted(seeds)):
            (Path(tmp) / f"{base}_{w}{suffix}{s}").mkdir()
        assert parse_entry(f"{tmp}/*").label == base
