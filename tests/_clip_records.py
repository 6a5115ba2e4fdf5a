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


def grey_frames(folder: Path, numbers=range(1, 11)) -> Path:
    """Write frame ``img<n>.png`` for each n of ``numbers`` into ``folder`` (made if need be): a 40 x 40 grey image of
    value 10 n, so a cached face tells which frame it came from. Returns ``folder``."""
    import cv2
    import numpy as np
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        cv2.imwrite(str(folder / f"img{n}.png"), np.full((40, 40), 10 * n, np.uint8))
    return folder


def constant_clip(tmp_path: Path, name: str = "c1", numbers=range(1, 11), offset="10") -> Path:
    """A clip list ``<name>.csv`` of one clip (subject me, clip ``name``) whose frames are :func:`grey_frames` in
    ``tmp_path/<name>`` (frames 1-10 on disk; onset 2, apex 5, offset ``offset``)."""
    frames = grey_frames(tmp_path / name, numbers)
    csv = tmp_path / f"{name}.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset\nme,{name},{frames},2,5,{offset}\n")
    return csv


CASME2_SHEET_HEADER = "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"


def casme2_sheet(folder: Path, *rows: str) -> Path:
    """A CASME II sheet exported as CSV under its official name in ``folder`` (made), ``rows`` under
    :data:`CASME2_SHEET_HEADER`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "CASME2-coding-20140508.csv"
    path.write_text(CASME2_SHEET_HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def smic_clip(root: Path, subject: str, cls: str, clip: str, first: int = 100, n: int = 4,
              frame: bytes = b"BM") -> Path:
    """An SMIC-HS clip folder ``root/SMIC_all_cropped/HS/<subject>/micro/<cls>/<clip>`` (made) of ``n`` frames
    ``reg_image<k>.bmp`` from ``first``, each file holding ``frame`` (by default 2 bytes that do not decode: enough
    for a check that reads no image). Returns the folder."""
    d = root / "SMIC_all_cropped" / "HS" / subject / "micro" / cls / clip
    d.mkdir(parents=True)
    for k in range(first, first + n):
        (d / f"reg_image{k}.bmp").write_bytes(frame)
    return d


def casme2_entry_beside_a_clip_list_refusal(shared_data: Path, tmp_path: Path, monkeypatch, onset: int) -> str:
    """The message of :func:`icegan.data.prepare.prepare_dataset` refusing a config of the CASME II entry (sub01) and
    a clip list listing sub01's EP02_01f folder (apex 59) with ``onset`` as clips/p99/mine; fails the test when a clip
    is prepared or the cache folder is made first."""
    import pytest

    from icegan.data import prepare as prep
    csv = tmp_path / "list.csv"
    csv.write_text(f"subject,clip,frames,onset,apex,offset,label\n"
                   f"p99,mine,{shared_data}/casme2/sub01/EP02_01f,{onset},59,86,positive\n")
    cfg = prep.PrepareConfig(datasets=[
        prep.DatasetSpec(name="casme2", root=str(shared_data / "casme2"), subjects=["sub01"],
                         annotations=str(shared_data / "annotations" / "CASME2-coding-20140508.xlsx")),
        prep.DatasetSpec(name="clips", root=str(csv))], cache_root=str(tmp_path / "cache"), size=8, workers=1,
        progress=False)
    monkeypatch.setattr(prep, "process_clip", lambda *a: pytest.fail("a clip was prepared"))
    with pytest.raises(prep.PrepareError) as e:
        prep.prepare_dataset(cfg)
    assert not (tmp_path / "cache").exists()
    return str(e.value)
