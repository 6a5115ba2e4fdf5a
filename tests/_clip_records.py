"""Hand-made clip records for the data checker's tests (:func:`icegan.data.check.record_problems`)."""
from __future__ import annotations

from pathlib import Path


def clip_record(tmp_path: Path, dataset="casme2", onset=10, apex=15, offset=20, frames=range(10, 21), notes=()):
    """A clip record of frames ``img<n>.jpg`` in ``tmp_path/clip`` (the files need not exist: record_problems reads
    only the listing it is given, unless asked to decode)."""
    from icegan.data.records import ClipRecord
    d = tmp_path / "clip"
    d.mkdir(exist_ok=True)
    return ClipRecord(dataset=dataset, subject=f"{dataset}/s1", clip="c", emotion="x", class3=0, onset=onset,
                      apex=apex, offset=offset, frame_numbers=tuple(frames),
                      frame_paths=tuple(d / f"img{n}.jpg" for n in frames), clip_dir=d, notes=tuple(notes))


def problems(rec, **kw) -> list[tuple[str, str]]:
    """(problem, severity) of each problem :func:`icegan.data.check.record_problems` finds in ``rec``."""
    from icegan.data.check import record_problems
    return [(p.problem, p.severity) for p in record_problems(rec, **kw)]
