"""A kill in the middle of writing one file, for interruption tests."""
from __future__ import annotations

from pathlib import Path


def kill_while_writing(monkeypatch, name: str):
    """Make ``Path.write_text`` of a file whose name starts with ``name`` write the first half of its text and then
    raise KeyboardInterrupt (a kill mid-write, leaving the file cut short where it is written in place); every other
    ``write_text`` writes as usual. Returns the real ``Path.write_text``, to put back for the rerun."""
    real_write = Path.write_text

    def killed_half_way(self, data, *a, **k):
        if self.name.startswith(name):
            real_write(self, data[:len(data) // 2], *a, **k)
            raise KeyboardInterrupt
        return real_write(self, data, *a, **k)
    monkeypatch.setattr(Path, "write_text", killed_half_way)
    return real_write
