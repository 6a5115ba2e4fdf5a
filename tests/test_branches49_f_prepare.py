"""A branch of icegan.data.prepare that no other test takes: a prepare with worker processes started from a thread
other than the main one (where no signal handler can be set) prepares its clips and leaves the SIGINT handler as it
was (with sequences: clips only resized, without, are prepared in the calling process whatever the workers)."""
import signal
import threading

import cv2
import numpy as np


def test_prepare_with_workers_from_another_thread_leaves_the_sigint_handler(tmp_path):
    from icegan.data.prepare import DatasetSpec, PrepareConfig, prepare_dataset
    rows = []
    for c in ("c1", "c2"):
        frames = tmp_path / c
        frames.mkdir()
        for n in range(1, 8):
            cv2.imwrite(str(frames / f"img{n}.png"), np.full((24, 24), 10 * n, np.uint8))
        rows.append(f"me,{c},{frames},2,5,7")
    csv = tmp_path / "clips.csv"
    csv.write_text("subject,clip,frames,onset,apex,offset\n" + "\n".join(rows) + "\n")
    cfg = PrepareConfig(datasets=[DatasetSpec(name="clips", root=str(csv), mode="cropped")],
                        cache_root=str(tmp_path / "cache"), size=16, workers=2, progress=False,
                        sequences=True)
    before = signal.getsignal(signal.SIGINT)
    out = {}
    t = threading.Thread(target=lambda: out.update(ds=prepare_dataset(cfg)))
    t.start()
    t.join(120)
    assert not t.is_alive() and "ds" in out
    ds = out["ds"]
    assert list(ds.manifest["clip"]) == ["c1", "c2"] and (ds.frames.onset == 20).all()
    assert (ds.frames.apex == 50).all()
    assert signal.getsignal(signal.SIGINT) is before
