"""Review 57 of this session's own fixes: a duplicate-label refusal of labelled entries suggests an entry that parses.
(The other review 57 tests live beside the code's first tests: icegan generate's --out, the 'done:' line and
train_gan's resume in tests/test_gan57.py, the custom network's NaN message in tests/test_bad_input_flow_gan.py,
tests/test_plugins57.py and tests/test_flow55.py.)"""
from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("labelled", [False, True])
def test_duplicate_label_suggestion_parses(tmp_path, monkeypatch, labelled):
    from icegan.report import parse_entries, parse_entry
    monkeypatch.chdir(tmp_path)
    for d in ("runs/a/x_s0", "runs/b/x_s0"):
        (tmp_path / d).mkdir(parents=True)
    texts = ["G=runs/a/x_s0", "G=runs/b/x_s0"] if labelled else ["runs/a/x_s0", "runs/b/x_s0"]
    label = "G" if labelled else "x_s0"
    with pytest.raises(ValueError, match="both labelled") as exc:
        parse_entries(texts)
    suggested = re.search(r"\(e\.g\. '([^']*)'\)$", str(exc.value)).group(1)
    assert suggested == f"a {label}=runs/a/x_s0", str(exc.value)
    entry = parse_entry(suggested)                  # the suggestion is an entry that reads
    assert entry.label == f"a {label}" and entry.runs == [tmp_path.joinpath("runs/a/x_s0").relative_to(tmp_path)]
    assert [e.label for e in parse_entries([suggested, texts[1]])] == [f"a {label}", label]
