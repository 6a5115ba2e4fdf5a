"""The shipped five-class main-job configs cut to a tiny run on a few subjects, for the label-set tests."""
from __future__ import annotations

from icegan.pipeline import load_main_config


def tiny_five_class_config(config: str, dataset: str, root, sheet, subjects, weights, cache, *extra):
    """``config`` (``configs/casme2_5class.yaml``, ``configs/samm_5class.yaml``) on the cropped ``dataset`` folder
    ``root`` with its coding ``sheet``, every clip of ``subjects`` (``composite_only: false``), 32 px faces, the flow
    ``weights``, the prepared-clip cache in ``cache``, one GAN epoch and two recognizer epochs; ``extra``: more
    ``key=value`` overrides."""
    datasets = (f"[{{name: {dataset}, root: {root}, annotations: {sheet}, mode: cropped, composite_only: false, "
                f"subjects: [{', '.join(repr(s) for s in subjects)}]}}]")
    return load_main_config(config, [
        f"data.prepare.datasets={datasets}", f"data.prepare.cache_root={cache}", "data.prepare.workers=1",
        "data.img_size=32", f"flow.weights={weights}", "gan.epochs=1", "gan.batch_size=8", "gan.base_channels=8",
        "recognizer.epochs=2", "recognizer.batch_size=16", "threads=1", *extra])
