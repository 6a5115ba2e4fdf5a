"""A main-job fold with its GAN on a torchrun rank other than 0 (icegan.pipeline): it trains the fold as rank 0 does
(the collectives need every process) but writes nothing: no GAN checkpoints or TensorBoard curves, no sample grid,
no timing.json."""
from __future__ import annotations

import pytest

from icegan.pipeline import load_main_config, run_main


def test_a_gan_fold_on_another_rank_than_0_trains_but_writes_nothing(monkeypatch, tmp_path):
    import icegan.distributed
    import icegan.gan.trainer
    cfg = load_main_config(None, ["data.n_subjects=2", "data.clips_per_class=1", "data.img_size=32",
                                  "data.max_folds=1", "flow.method=farneback", "gan.joint=false", "gan.epochs=1",
                                  "gan.batch_size=8", "gan.base_channels=8", "gan.synthetic_ratio=0.5",
                                  "recognizer.name=logreg", "threads=1"])
    # rank 0's broadcasts: no feature cache (compute the flow), no fold finished yet, then its metrics
    told = iter([None, {"finished": []}, {"from": "rank 0"}])
    monkeypatch.setattr(icegan.distributed, "is_main", lambda: False)
    monkeypatch.setattr(icegan.distributed, "broadcast_object", lambda obj, src=0: next(told))
    calls = []
    train = icegan.gan.trainer.train_gan

    def spy(*a, **kw):
        calls.append((kw["out_dir"], kw["log"]))
        return train(*a, **kw)
    monkeypatch.setattr(icegan.gan.trainer, "train_gan", spy)
    out = tmp_path / "rank1"
    assert run_main(cfg, out, progress=False) == {"from": "rank 0"}
    assert calls == [(None, None)]              # the fold's GAN trained, with no folder and no TensorBoard writer
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) if out.exists() else []
    assert not [p for p in written if p.endswith(("samples.png", "timing.json")) or p.startswith(("tb/", "folds/"))]
    with pytest.raises(StopIteration):           # every broadcast of rank 0 was received
        next(told)
