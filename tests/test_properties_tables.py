"""Property-based tests (hypothesis) of the label sets and the tables a user writes (icegan/labels.py,
icegan/data/feature_table.py, icegan/data/clip_list.py, icegan/data/records.py, icegan/paths.py).

Each property holds for every drawn input (the "suite" profile of tests/conftest.py: the same draws every run):

* label sets: class name <-> id round trips (any case and spacing, names and ids, through
  :func:`parse_class_label`); :func:`score_columns`, :func:`label_set_of_columns`, :func:`label_set_of_classes` and
  :func:`label_set_of_size` agree with each other and with a brute-force search over :data:`LABEL_SETS`, for any
  order of the columns and any subset of them; :func:`emotion_class_counts` and :func:`manifest_labels` count the
  same clips into the same classes; an id column holding an id outside -1..K-1 is refused naming it;
* a feature table written (by pandas, as ``icegan features`` writes it, or by the csv module, every cell quoted) and
  read back gives the same clips in file order: subject and clip names are kept character for character, also text
  that looks like a number (``007``, ``1.10``, ``1e3``, ``nan``, ``-0``), the labels (names in any case, or ids),
  the maps (exactly) and the CSV line of every row, blank lines included; a subject prefixed ``dataset/`` reads as
  one with a dataset column; reordering the rows reorders the clips; a clip written twice is refused naming the line
  of the second;
* :func:`minmax_per_clip` maps every channel onto [0, 1] with min 0 and max 1 (0.5 for a constant channel) and is
  unchanged by any positive scaling and shift of a channel;
* clip lists: any frame number written as an integer, with zeros, a ``.0`` or spaces reads as that number, anything
  else is refused naming the column; a clip list written and read back keeps its clips, names and frames;
* records: :func:`frame_number`, :func:`subject_number` and :func:`ranges_text` invert the way names and ranges are
  written; :func:`apex_after_offset_note` speaks exactly when onset <= offset < apex;
* paths: :func:`run_folder_conflict` and :func:`check_output_file` refuse exactly the folders and files the
  docstrings list, for any set of run files present.
"""
from __future__ import annotations

import csv
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from icegan.data.clip_list import ClipList
from icegan.data.feature_table import load_table_features, minmax_per_clip, parse_class_label, read_feature_table
from icegan.data.records import apex_after_offset_note, frame_number, ranges_text, subject_number
from icegan.labels import (LABEL_SETS, UNNAMED_GENERATOR_SETS, emotion_class_counts, label_set_of_classes,
                           label_set_of_columns, label_set_of_size, manifest_labels, score_columns)
from icegan.paths import RUN_FILES, RUN_HEADERS, check_output_file, run_folder_conflict

SETS = sorted(LABEL_SETS)
#: examples of the properties that write tables and maps to disk: fewer in the "suite" profile (the file's run stays
#: short), 200 when hunting (HYPOTHESIS_PROFILE=search)
_SLOW = 200 if settings.default.max_examples > 60 else 30
ALL_CLASSES = sorted({c for ls in LABEL_SETS.values() for c in ls.classes})


def _cased(draw, text: str) -> str:
    """``text`` in a drawn case, with drawn spaces around it."""
    text = "".join(c.upper() if draw(st.booleans()) else c for c in text)
    return draw(st.sampled_from(["", " ", "  "])) + text + draw(st.sampled_from(["", " ", "\t"]))


# ---------------------------------------------------------------------------------------------------------------------
# label sets

@given(st.sampled_from(SETS), st.data())
def test_a_class_name_or_id_reads_as_its_id_in_its_label_set(name, data):
    ls = LABEL_SETS[name]
    k = data.draw(st.integers(0, ls.n_classes - 1))
    assert ls.classes.index(ls.classes[k]) == k
    assert parse_class_label(_cased(data.draw, ls.classes[k]), "t", labels=name) == k
    assert parse_class_label(data.draw(st.sampled_from(["", " "])) + str(k), "t", labels=name) == k
    assert parse_class_label(" ", "t", labels=name, allow_empty=True) is None
    bad = data.draw(st.integers(ls.n_classes, 10**6) | st.integers(-10**6, -1))
    with pytest.raises(ValueError, match=rf"^t: label '{bad}' is neither a class id 0\.\.{ls.n_classes - 1}"):
        parse_class_label(str(bad), "t", labels=name)


@given(st.sampled_from(SETS), st.randoms(use_true_random=False), st.lists(st.from_regex(r"[a-z_]{1,8}", fullmatch=True)
                                                                       .filter(lambda c: not c.startswith("score_")),
                                                                       max_size=3))
def test_the_score_columns_name_their_label_set_in_any_order(name, rnd, others):
    ls = LABEL_SETS[name]
    assert score_columns(ls.classes) == ls.score_columns == tuple(f"score_{c}" for c in ls.classes)
    assert label_set_of_classes(ls.classes) is ls
    cols = list(ls.score_columns) + others
    rnd.shuffle(cols)
    assert label_set_of_columns(cols) is ls
    if name in UNNAMED_GENERATOR_SETS:
        assert label_set_of_size(ls.n_classes) is ls
    # any other order of the classes is no label set
    order = list(ls.classes)
    rnd.shuffle(order)
    if tuple(order) != ls.classes:
        with pytest.raises(ValueError, match="no label set has the classes"):
            label_set_of_classes(order)


@given(st.lists(st.sampled_from(ALL_CLASSES + ["fear", "sadness", "neutral"]), min_size=1, unique=True),
       st.randoms(use_true_random=False))
def test_label_set_of_columns_agrees_with_a_search_over_the_sets(classes, rnd):
    """The exact set of these score columns, else the one set holding them all; none or several: refused."""
    cols = score_columns(classes)
    exact = [ls for ls in LABEL_SETS.values() if set(cols) == set(ls.score_columns)]
    holding = [ls for ls in LABEL_SETS.values() if set(cols) <= set(ls.score_columns)]
    expected = exact[0] if exact else holding[0] if len(holding) == 1 else None
    shuffled = list(cols)
    rnd.shuffle(shuffled)
    if expected is None:
        with pytest.raises(ValueError, match="not those of one label set"):
            label_set_of_columns(shuffled, source="p.csv")
    else:
        assert label_set_of_columns(shuffled) is expected


@given(st.integers(-3, 12))
def test_label_set_of_size_agrees_with_the_unnamed_sets(k):
    fits = [LABEL_SETS[n] for n in UNNAMED_GENERATOR_SETS if LABEL_SETS[n].n_classes == k]
    if len(fits) == 1:
        assert label_set_of_size(k) is fits[0]
    else:
        with pytest.raises(ValueError, match=f"has {k} classes"):
            label_set_of_size(k)


emotions = st.lists(st.sampled_from(ALL_CLASSES + ["fear", "sadness", "disgust", "Other ", "", "n/a"]), max_size=30)


@given(st.sampled_from(["casme2", "samm", "smic", "clips"]), emotions, st.data())
def test_emotion_counts_and_manifest_labels_agree(dataset, ems, data):
    """Every clip counts once, into the class :func:`manifest_labels` gives it (or into no_class for -1)."""
    ems = [_cased(data.draw, e) for e in ems]
    counts = emotion_class_counts(ems, dataset)
    assert sorted(counts) == sorted(n for n, ls in LABEL_SETS.items() if dataset in ls.datasets)
    for name, c in counts.items():
        ls = LABEL_SETS[name]
        assert list(c["classes"]) == list(ls.classes)
        assert sum(c["classes"].values()) + sum(c["no_class"].values()) == len(ems)
        manifest = pd.DataFrame({"emotion": ems, "dataset": [dataset] * len(ems), "class5": [""] * len(ems)})
        if ls.column != "emotion":          # casme2_5 reads its ids from class5: the ids of the emotions
            manifest["class5"] = [str(ls.classes.index(e.strip().lower())) if e.strip().lower() in ls.classes else ""
                                  for e in ems]
        ids = manifest_labels(manifest, ls)
        assert ids.dtype == np.int64 and len(ids) == len(ems)
        assert [int((ids == i).sum()) for i in range(ls.n_classes)] == list(c["classes"].values())
        assert int((ids == -1).sum()) == sum(c["no_class"].values())


@given(st.sampled_from(["megc2019", "casme2_5"]), st.lists(st.integers(-1, 4), min_size=1, max_size=20),
       st.lists(st.sampled_from(["casme2", "samm", "smic"]), min_size=20, max_size=20), st.data())
def test_manifest_id_columns_read_back_and_refuse_an_id_outside_the_set(name, ids, datasets, data):
    ls = LABEL_SETS[name]
    k = ls.n_classes
    bad = data.draw(st.sampled_from([-2, k]) | st.integers(-10**6, -2) | st.integers(k, 10**6))
    ids = [i if i < ls.n_classes else -1 for i in ids]
    ds = datasets[:len(ids)]
    cells = ["" if i == -1 and j % 2 else str(i) for j, i in enumerate(ids)]       # -1 written as -1 or left empty
    got = manifest_labels(pd.DataFrame({ls.column: cells, "dataset": ds}), ls)
    expected = [i if not ls.datasets or d in ls.datasets else -1 for i, d in zip(ids, ds)]
    assert got.tolist() == expected
    with pytest.raises(ValueError, match=rf"column '{ls.column}': ids \[{bad}\] outside 0\.\.{k - 1}"):
        manifest_labels(pd.DataFrame({ls.column: cells + [str(bad)], "dataset": ds + ["casme2"]}), ls)


# ---------------------------------------------------------------------------------------------------------------------
# feature tables

#: text ids a spreadsheet or pandas would read as numbers, booleans or missing values
NUMBERISH = ["007", "1.10", "1e3", "nan", "NaN", "NA", "N/A", "null", "None", "-0", "+1", "1.0", "0.10", "inf",
             "TRUE", "#N/A", "1,5", '3"', "00", "1_000", "0x1f", "12:30"]
_NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="/")
names = st.one_of(st.sampled_from(NUMBERISH), st.from_regex(r"0[0-9]{1,3}|[0-9]+\.[0-9]*0", fullmatch=True),
                  st.text(_NAME_CHARS, min_size=1, max_size=8)).filter(lambda s: s == s.strip() and s != "")
#: a subject's "/" separates its dataset (documented): a subject name holds none
subject_names = names.filter(lambda s: "/" not in s)
datasets_ = st.sampled_from(["casme2", "samm", "smic", "cas3", "007", "my-set"])


@st.composite
def tables(draw, max_rows: int = 6):
    """Rows (dataset, subject, clip, label id, label as written, map (3, 4, 4) float32 in [0, 1]), (subject, clip)
    unique; how the table is written: pandas or csv (every cell quoted), dataset column or subject prefixes, blank
    lines before rows."""
    n = draw(st.integers(1, max_rows))
    rows, seen = [], set()
    for _ in range(n):
        ds, subject, clip = draw(datasets_), draw(subject_names), draw(names)
        if (ds, subject, clip) in seen:
            continue
        seen.add((ds, subject, clip))
        k = draw(st.integers(0, 2))
        written = draw(st.sampled_from([str(k), ["negative", "positive", "surprise"][k]]))
        written = _cased(draw, written) if not written.isdigit() else written
        a = draw(st.integers(0, 255).map(lambda s: np.random.default_rng(s).random((3, 4, 4), dtype=np.float32)))
        rows.append((ds, subject, clip, k, written, a))
    how = draw(st.sampled_from(["pandas", "quoted"]))
    prefixed = draw(st.sampled_from(["column", "prefix", "both"]))
    blanks = draw(st.lists(st.integers(0, 2), min_size=len(rows), max_size=len(rows)))
    return rows, how, prefixed, blanks


def _write_table(folder: Path, rows, how, prefixed, blanks, name="t.csv") -> tuple[Path, list[int]]:
    """The table and the CSV line of each row."""
    (folder / "maps").mkdir(exist_ok=True)
    out = []
    for i, (ds, subject, clip, _, written, a) in enumerate(rows):
        np.save(folder / "maps" / f"{i}.npy", a)
        row = {"subject": f"{ds}/{subject}" if prefixed != "column" else subject, "clip": clip, "label": written,
               "path": f"maps/{i}.npy"}
        out.append(({"dataset": ds} if prefixed != "prefix" else {}) | row)
    header = list(out[0])
    body = [list(r.values()) for r in out]
    if how == "pandas":
        text = pd.DataFrame(body, columns=header).to_csv(index=False, lineterminator="\n")
    else:
        import io
        buf = io.StringIO()
        csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([header] + body)
        text = buf.getvalue()
    lines = text.splitlines()
    final, where = [lines[0]], []
    for line, b in zip(lines[1:], blanks):
        final += [""] * b
        final.append(line)
        where.append(len(final))
    p = folder / name
    p.write_text("\n".join(final) + "\n", encoding="utf-8")
    return p, where


@settings(max_examples=_SLOW)
@given(tables())
def test_a_feature_table_written_and_read_back_gives_the_same_clips(tmp_path_factory, case):
    rows, how, prefixed, blanks = case
    folder = tmp_path_factory.mktemp("table")
    p, lines = _write_table(folder, rows, how, prefixed, blanks)
    t = read_feature_table(p)
    assert t["dataset"].tolist() == [r[0] for r in rows]
    assert t["subject"].tolist() == [f"{r[0]}/{r[1]}" for r in rows]
    assert t["clip"].tolist() == [r[2] for r in rows]
    assert t["label"].tolist() == [r[3] for r in rows] and t["label"].dtype == np.int64
    assert t["line"].tolist() == lines
    assert t["path"].tolist() == [str(folder / "maps" / f"{i}.npy") for i in range(len(rows))]
    fs = load_table_features(p)
    assert fs.samples["clip"].tolist() == [r[2] for r in rows]
    assert torch.equal(fs.features, torch.from_numpy(np.stack([r[5] for r in rows])))


@settings(max_examples=_SLOW)
@given(tables(), st.randoms(use_true_random=False))
def test_reordering_a_tables_rows_reorders_its_clips(tmp_path_factory, case, rnd):
    rows, how, prefixed, _ = case
    order = list(range(len(rows)))
    rnd.shuffle(order)
    folder = tmp_path_factory.mktemp("table")
    a = load_table_features(_write_table(folder, rows, how, prefixed, [0] * len(rows), "a.csv")[0])
    b = load_table_features(_write_table(folder / "maps", [rows[i] for i in order], how, prefixed,
                                         [0] * len(rows), "b.csv")[0])
    for col in ("dataset", "subject", "clip", "label"):
        assert b.samples[col].tolist() == [a.samples[col][i] for i in order]
    assert torch.equal(b.features, a.features[order])


@settings(max_examples=_SLOW)
@given(tables(), st.data())
def test_a_clip_written_twice_is_refused_naming_the_second_line(tmp_path_factory, case, data):
    rows, how, prefixed, blanks = case
    i = data.draw(st.integers(0, len(rows) - 1))
    j = data.draw(st.integers(i + 1, len(rows)))
    rows = rows[:j] + [rows[i]] + rows[j:]
    blanks = blanks[:j] + [0] + blanks[j:]
    p, lines = _write_table(tmp_path_factory.mktemp("table"), rows, how, prefixed, blanks)
    ds, subject, clip = rows[i][:3]
    with pytest.raises(ValueError, match=rf"line {lines[j]}: clip '{re.escape(clip)}' of subject "
                                         rf"'{re.escape(ds)}/{re.escape(subject)}' appears twice"):
        read_feature_table(p)


@given(st.integers(1, 3), st.integers(1, 5), st.integers(0, 2**32 - 1),
       st.floats(1e-3, 1e3), st.floats(-1e3, 1e3))
def test_minmax_per_clip_spans_0_to_1_and_ignores_scale_and_shift(n, side, seed, scale, shift):
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(n, 3, side, side)).astype(np.float32))
    x[:, 1] = x[:, 1, :1, :1]               # a constant channel
    y = minmax_per_clip(x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.all(y[:, 1] == 0.5)
    if side > 1:
        lo, hi = y[:, [0, 2]].amin(dim=(2, 3)), y[:, [0, 2]].amax(dim=(2, 3))
        assert torch.all(lo == 0) and torch.allclose(hi, torch.ones_like(hi))
    moved = x.double() * scale + shift
    z = minmax_per_clip(moved)
    # minmax_per_clip works in float32: the moved values are rounded to 2^-24 of their size before the span divides
    # them, so the tolerance grows with |shift| / (scale * span)
    span = (x.amax(dim=(2, 3)) - x.amin(dim=(2, 3)))[:, [0, 2]].min().double() * scale
    tol = 8 * 2.0**-24 * float(moved.abs().max()) / float(span) + 1e-6 if side > 1 else 1e-6
    assert torch.allclose(z, y, atol=tol)


# ---------------------------------------------------------------------------------------------------------------------
# clip lists and records

@given(st.integers(0, 10**9), st.integers(0, 3), st.sampled_from(["", ".0", ".00"]), st.sampled_from(["", " "]))
def test_a_frame_number_reads_in_every_integer_spelling(tmp_path_factory, n, zeros, dot, pad):
    folder = tmp_path_factory.mktemp("clips")
    written = f"{pad}{'0' * zeros}{n}{dot}{pad}"
    (folder / "l.csv").write_text(f"subject,clip,frames,onset,apex\np1,c1,f,{written},{n + 1}\n")
    r = ClipList(folder / "l.csv").records()[0]
    assert (r.onset, r.apex) == (n, n + 1)


@given(st.one_of(st.integers(-10**6, -1).map(str), st.floats(allow_nan=True).filter(
    lambda x: not (x == x and float(x).is_integer() and x >= 0)).map(repr),
    st.sampled_from(["x", "1e999", "1/2", "one", "--1", "0x10"])))
def test_a_frame_number_that_is_none_is_refused_naming_the_column(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("clips")
    assume("," not in text and '"' not in text)
    (folder / "l.csv").write_text(f"subject,clip,frames,onset\np1,c1,f,{text}\n")
    with pytest.raises(ValueError, match=r"line 2 \(clip 'c1'\): onset .* is not a frame number"):
        ClipList(folder / "l.csv").records()


@settings(max_examples=_SLOW)
@given(st.lists(st.tuples(subject_names, names, st.integers(0, 50), st.integers(1, 50)), min_size=1, max_size=5,
                unique_by=lambda r: (r[0], r[1])))
def test_a_clip_list_written_and_read_back_keeps_its_clips(tmp_path_factory, rows):
    folder = tmp_path_factory.mktemp("clips")
    df = pd.DataFrame([{"subject": s, "clip": c, "frames": f"frames/{i}", "onset": on, "apex": on + gap}
                       for i, (s, c, on, gap) in enumerate(rows)])
    df.to_csv(folder / "l.csv", index=False)
    recs = ClipList(folder / "l.csv").records()
    assert [(r.dataset, r.subject, r.clip, r.onset, r.apex) for r in recs] == [
        ("clips", f"clips/{s}", c, on, on + gap) for s, c, on, gap in rows]
    assert [r.key for r in recs] == [f"clips/{s}/{c}" for s, c, _, _ in rows]


@given(st.text(string.ascii_letters + "_-", max_size=6), st.integers(0, 10**7), st.integers(0, 8),
       st.sampled_from([".jpg", ".png", ".BMP", ".tif"]))
def test_frame_and_subject_numbers_read_back_the_number_written(prefix, n, width, ext):
    assert frame_number(f"{prefix}{n:0{width}d}{ext}") == n
    assert frame_number(Path("a") / f"{prefix}{n:0{width}d}{ext}") == n
    assert subject_number(f"{prefix}{n:0{width}d}") == (prefix, n)
    assert subject_number(f"{prefix}{n}x") is None


@given(st.sets(st.integers(0, 200), max_size=30))
def test_ranges_text_lists_exactly_the_numbers(numbers):
    text = ranges_text(numbers)
    if not numbers:
        assert text == "none"
        return
    back = set()
    for part in text.split(", "):
        a, _, b = part.partition("-")
        back |= set(range(int(a), int(b or a) + 1))
        assert not b or int(b) > int(a)              # a single number is written alone
    assert back == set(numbers)
    assert text.count(", ") + 1 == 1 + sum(1 for x in sorted(numbers)[1:] if x - 1 not in numbers)


@given(st.none() | st.integers(0, 50), st.none() | st.integers(0, 50), st.none() | st.integers(0, 50))
def test_the_apex_after_offset_note_speaks_exactly_when_onset_le_offset_lt_apex(onset, apex, offset):
    note = apex_after_offset_note(onset, apex, offset, "row 3")
    expected = None not in (onset, apex, offset) and onset <= offset < apex
    assert (note is not None) == expected
    if note:
        assert note.startswith(f"apex {apex} is after offset {offset} (row 3)")


# ---------------------------------------------------------------------------------------------------------------------
# paths

@given(st.sets(st.sampled_from(RUN_HEADERS)), st.booleans(), st.sampled_from(RUN_HEADERS))
def test_run_folder_conflict_refuses_exactly_another_runs_folder(tmp_path_factory, headers, predictions, own):
    folder = tmp_path_factory.mktemp("run")
    for h in headers:
        (folder / h).write_text("{}")
    if predictions:
        (folder / "predictions.csv").write_text("x\n")
    why = run_folder_conflict(folder, own)
    other = headers - {own}
    conflict = bool(other) or (own not in headers and predictions)
    assert (why is not None) == conflict
    if other:
        assert why.startswith(f"{folder} holds ") and any(h in why for h in other)


@given(st.sets(st.sampled_from(RUN_HEADERS)), st.sampled_from(sorted(RUN_FILES) + ["mine.csv", "x.png", "runs"]))
def test_check_output_file_refuses_exactly_a_runs_own_files(tmp_path_factory, headers, name):
    folder = tmp_path_factory.mktemp("run")
    for h in headers:
        (folder / h).write_text("{}")
    if name == "runs":
        (folder / name).mkdir()
    if name == "runs" or (headers and name in RUN_FILES):
        with pytest.raises(ValueError, match=re.escape(f"--out {folder / name} ")):
            check_output_file(folder / name)
    else:
        assert check_output_file(folder / name) == folder / name
