"""Every text file icegan, flownet and the benchmarks read or write names its encoding (UTF-8): without it Python uses the
locale's, so a run folder written on one machine (metrics.md with Δ and ±, a config.yaml with a label in Chinese) could
not be written, or read back, on a machine with another locale (a Windows cp1252 or cp936 one). Checked on the source:
each call of ``open`` in a text mode, ``Path.read_text`` and ``Path.write_text``."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for pkg in ("icegan", "flownet", "bench") for p in (ROOT / pkg).rglob("*.py")) + [ROOT / "train.py"]


def _calls_without_encoding(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
        if name not in ("open", "read_text", "write_text") or any(k.arg == "encoding" for k in node.keywords):
            continue
        if name == "read_text" and node.args:
            continue                # importlib.metadata's Distribution.read_text(filename): takes no encoding
        if name == "open":
            mode = next((k.value for k in node.keywords if k.arg == "mode"), None)
            at = 0 if isinstance(fn, ast.Attribute) else 1        # Path.open(mode) / open(file, mode)
            if mode is None and len(node.args) > at:
                mode = node.args[at]
            if mode is not None and not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
                                         and set(mode.value) <= set("rwaxbt+")):
                continue            # Image.open(path), zipfile's open(name): not a text file of ours
            if mode is not None and "b" in mode.value:
                continue
        found.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    return sorted(found, key=lambda s: int(s.split(":")[1].split()[0]))


def test_the_scan_finds_a_call_without_encoding(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("from pathlib import Path\nPath('a').write_text('Δ')\nopen('b', 'w')\nopen('c', 'rb')\n"
                   "Path('d').read_text(encoding='utf-8')\nPath('e').open()\nPath('f').open('a')\nPath('g').open('rb')\n"
                   "Image.open(p)\nmetadata.distribution('x').read_text('direct_url.json')\n", encoding="utf-8")
    assert _calls_without_encoding(bad, tmp_path) == ["m.py:2 write_text", "m.py:3 open", "m.py:6 open",
                                                      "m.py:7 open"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_text_file_is_read_and_written_as_utf8(path):
    assert _calls_without_encoding(path) == []
