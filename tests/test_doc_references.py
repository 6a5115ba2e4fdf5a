"""Every docs/benchmarks.md section that a text points a reader to exists: README.md, data/README.md, the comments of
``configs/*.yaml`` and the sources of ``icegan/``, ``flownet/``, ``bench/`` and ``train.py`` cite measurements as
(docs/benchmarks.md, "SECTION") or (docs, "SECTION"), and a renamed or misquoted heading leaves the reader with no
record of the number. ``...`` in a quoted name stands for words left out."""
from __future__ import annotations

import re

import pytest
from _readme import ROOT

BENCHMARKS = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
HEADINGS = [line.lstrip("#").strip().lower() for line in BENCHMARKS.splitlines() if line.startswith("#")]

#: a citation: the document, then the section name in quotes ("docs" is README's short form)
_CITATION = re.compile(r"(?:docs/benchmarks\.md|docs|benchmarks\.md),? (?:section )?[\"“]([^\"”]+)[\"”]")


def _sources() -> list:
    files = [ROOT / "README.md", ROOT / "data" / "README.md", ROOT / "train.py"]
    files += sorted((ROOT / "configs").glob("*.yaml"))
    for package in ("icegan", "flownet", "bench"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def _citations() -> list[tuple[str, str]]:
    """(file, quoted section name) of every citation; a name wrapped over lines (and their comment markers) joined."""
    found = []
    for path in _sources():
        text = re.sub(r"\s*\n\s*(?:#\s*)?", " ", path.read_text(encoding="utf-8"))
        found += [(str(path.relative_to(ROOT)), name) for name in _CITATION.findall(text)]
    return found


def _in_a_heading(name: str) -> bool:
    """``name`` is part of a heading, its ``...`` matching any words (case aside)."""
    pattern = ".*".join(re.escape(part.strip()) for part in name.lower().split("..."))
    return any(re.search(pattern, heading) for heading in HEADINGS)


CITATIONS = _citations()


def test_the_scan_finds_citations():
    """Not vacuous: README's and the configs' citations are found, and a name that is no heading is told apart."""
    assert ("README.md", "Embedded demo") in CITATIONS
    assert any(f.startswith("configs/") for f, _ in CITATIONS) and len(CITATIONS) >= 50
    assert _in_a_heading("ICE-GAN ... second round") and not _in_a_heading("The released maps against the main job")


@pytest.mark.parametrize("where,name", sorted(set(CITATIONS)), ids=lambda x: x[:60])
def test_cited_section_exists(where, name):
    assert _in_a_heading(name), (f"{where} cites docs/benchmarks.md, \"{name}\", which is no heading there: quote the "
                                 "heading as it reads (or part of it)")
