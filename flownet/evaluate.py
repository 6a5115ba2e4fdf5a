"""Evaluate a flow method on Middlebury, KITTI (2012/2015 training pairs), the synthetic facial test set or generic
synthetic scenes (``icegan flow eval``).

Result dict: ``{"model", "data", "n_pairs", "mean": {EPE, px1, px3, px5, Fl-all, WAUC},
"per_pair": [{"name", "EPE", ...}], "pairs_per_s", "seconds_per_pair", "image_size", "image_sizes", "input_size",
"precision", "iters"}`` (``image_size``: the first pair's ``[H, W]``; ``image_sizes``: every distinct ``[H, W]``, in
order of first pair: Middlebury's sequences come in two sizes; ``input_size``, ``precision``, ``iters``: the settings
the flow was computed with, resolved, as :func:`evaluate` says: each moves the score).
``mean`` is the mean over pairs of the per-pair metrics (each pair weighted equally, as Middlebury
reports); ``pairs_per_s`` is measured over the same pairs, one at a time (batch 1), after one
warm-up pair, including the pre-/post-processing of the estimator but not data loading.
"""
from __future__ import annotations

import time

import torch

from .metrics import METRIC_NAMES, flow_metrics, valid_pixel_count
from .models.inputs import update_count

__all__ = ["DATA_NAMES", "load_pairs", "evaluate", "format_table"]

#: the ``data`` values :func:`load_pairs` accepts (``icegan flow eval --data``)
DATA_NAMES = ("middlebury", "kitti", "synthetic-face", "synthetic-generic")
#: side in pixels and number of the synthetic test pairs when none is given (:func:`load_pairs`, :func:`evaluate`)
DEFAULT_SIZE, DEFAULT_N_PAIRS = 128, 200
#: :func:`format_table` lists the per-pair rows of results of at most this many pairs
_MAX_ROWS = 20


def load_pairs(data: str, root=None, size: int = DEFAULT_SIZE, n_pairs: int = DEFAULT_N_PAIRS, seed: int = 0,
               max_motion: float | None = None) -> list[dict]:
    """Pairs as dicts (name, img1 (1, C, H, W), img2, flow (1, 2, H, W), valid (1, H, W)).

    ``max_motion`` (pixels, ``synthetic-generic`` only; default 10, the scenes' own default) is the largest object
    translation of the generic scenes (:func:`flownet.data.synthetic_generic.make_scene_pair`). ``root``: the data
    folder of ``middlebury``, ``kitti`` and ``synthetic-face``; ``synthetic-generic`` draws its scenes and reads none.

    Raises:
        ValueError: unknown ``data``, ``max_motion`` given for data other than ``synthetic-generic``, ``root`` given
        for ``synthetic-generic`` (it was ignored), ``n_pairs`` < 0,
        ``size`` < 8 for synthetic data, or a pair whose frames differ in size (named, with its files for Middlebury);
        FileNotFoundError: data missing.
    """
    generic = data in ("synthetic-generic", "synthetic_generic")
    if max_motion is not None and not generic:
        raise ValueError(f"max_motion applies to data 'synthetic-generic' only, not '{data}'")
    if root is not None and generic:        # else silently ignored: the scenes are drawn, no file is read
        raise ValueError(f"--root applies to --data middlebury, kitti and synthetic-face, not synthetic-generic (its "
                         f"scenes are drawn, no file is read); leave it out, got --root {root}")
    if n_pairs < 0:                         # else 'len() should return >= 0' from the synthetic datasets
        raise ValueError(f"n_pairs (--n-pairs) must be >= 0, got {n_pairs}")
    if data.startswith("synthetic") and size < 8:      # as icegan flow run: no neighbourhood to match below it
        raise ValueError(f"size (--size) of the synthetic pairs must be at least 8 pixels, got {size}")
    files = None
    if data == "middlebury":
        from .data.middlebury import MiddleburyFlow
        ds = MiddleburyFlow(root)
        name = lambda i, it: it["name"]  # noqa: E731
        files = lambda it: ds.frame_files(it["name"])  # noqa: E731
    elif data == "kitti":
        from .data.kitti import KittiFlow
        if root is None:
            raise FileNotFoundError("KITTI is not in the shared data: give --root (the folder holding training/)")
        ds = KittiFlow(root, n_pairs=n_pairs)
        name = lambda i, it: it["name"]  # noqa: E731
    elif data in ("synthetic-face", "synthetic_face"):
        from .data.synthetic_face import SyntheticFaceFlow
        ds = SyntheticFaceFlow(root=root, split="test", size=size, n_pairs=n_pairs, seed=seed)
        name = lambda i, it: f"{i:04d}:{it['subject']}/{'/'.join(it['path'].split('/')[-2:])}"  # noqa: E731
    elif generic:
        from .data.synthetic_generic import SyntheticGenericFlow
        ds = SyntheticGenericFlow(split="test", size=size, n_pairs=n_pairs, seed=seed,
                                  **({} if max_motion is None else {"max_motion": max_motion}))
        name = lambda i, it: it["path"]  # noqa: E731
    else:
        raise ValueError(f"unknown data '{data}'; choose one of {list(DATA_NAMES)}")
    pairs = []
    for i in range(len(ds)):
        it = ds[i]
        pairs.append(_as_batch(it, name(i, it)))
        _check_pair(pairs[-1], files(it) if files else None)
    return pairs


def _size(t) -> str:
    """``"WxH"`` of an image or flow tensor (..., H, W)."""
    return f"{t.shape[-1]}x{t.shape[-2]}"


def _check_pair(p: dict, files=None) -> None:
    """ValueError naming the pair (and its two frame files, when known) if its frames differ in size, or its ground
    truth is not of their size: the estimators' own message named neither. A frame file whose EXIF Orientation turns
    it a quarter turn as it is read is named with its tag (:func:`flownet.frame_io.quarter_turn_note`)."""
    img1, img2, flow = p["img1"], p["img2"], p["flow"]
    first, second = files if files else ("frame 1", "frame 2")
    if tuple(img1.shape[-2:]) != tuple(img2.shape[-2:]):
        from flownet.frame_io import quarter_turn_note
        turned = quarter_turn_note(files, "the other frame") if files else ""
        raise ValueError(f"pair '{p['name']}': the frames differ in size: {first} is {_size(img1)} pixels, {second} "
                         f"{_size(img2)}; a flow pair needs two frames of one size" + turned)
    if tuple(flow.shape[-2:]) != tuple(img1.shape[-2:]):
        raise ValueError(f"pair '{p['name']}': the ground-truth flow is {_size(flow)}, but {first} is {_size(img1)} "
                         f"pixels")


def _as_batch(it: dict, name: str) -> dict:
    """One dataset item as a batch-of-one pair dict (name, img1, img2, flow, valid)."""
    return {"name": name, "img1": it["img1"][None], "img2": it["img2"][None], "flow": it["flow"][None],
            "valid": it["valid"][None]}


def evaluate(model: str = "srflownet", data: str = "synthetic-face", root=None, weights=None, device="cpu",
             size: int | None = None, n_pairs: int | None = None, iters: int | None = None,
             pairs: list[dict] | None = None,
             estimator=None, progress: bool = True, precision: str = "fp32", compile: bool = False,
             input_size="native", tta: str = "none", max_motion: float | None = None,
             module: str | None = None, module_key: str = "flow.module") -> dict:
    """Run ``model`` (registry name, or a ready ``estimator``) over the pairs and score it. ``iters``,
    ``precision`` (``fp32`` | ``bf16`` | ``auto``, :func:`flownet.registry.resolve_precision`) and ``compile``
    (``torch.compile``; the warm-up pair compiles, and every further image size compiles again inside the timed
    loop) apply to the learned models only (ValueError for ``compile``, or a ``precision`` other than ``fp32``, with a
    classical method). ``input_size`` (``native`` | ``auto`` | int, :func:`flownet.resolution.at_input_size`)
    computes the flow at another size and scores it at the pairs' own size. ``tta`` (``none`` | ``hflip``, learned models only) averages each flow with the
    un-mirrored flow of the mirrored pair (:class:`flownet.registry._LearnedEstimator`); the speed includes it.
    ``max_motion`` (pixels): the generic scenes' largest object translation (:func:`load_pairs`). ``module``: the
    spec of ``model="custom"`` (:class:`flownet.registry.CustomFlowEstimator`), and ``module_key`` how it was given
    (named in its messages: ``flow.module``, or ``--module`` from ``icegan flow eval``). ``size`` (pixels,
    synthetic data only; None: 128) and ``n_pairs`` (the synthetic pairs to make, KITTI's first n; None: 200) are
    :func:`load_pairs`'s.

    Returns a dict with ``mean`` (each metric averaged over pairs, every pair weighing the same), ``pooled`` (over
    all valid pixels, each pair weighted by its ``n_valid`` pixels: the KITTI benchmark's Fl-all, while published
    KITTI EPEs average per image as ``mean`` does; equal to ``mean`` when every pair has the same valid mask),
    ``n_valid_pixels``, ``per_pair`` rows (the metrics of :func:`flownet.metrics.flow_metrics` plus ``name`` and
    ``n_valid``), the speed (``pairs_per_s``, ``seconds_per_pair``), ``image_size`` (the first pair's ``[H, W]``),
    ``image_sizes`` (every distinct ``[H, W]``) and the settings that move the score, resolved: ``input_size`` (the working ``[H, W]`` the flow was
    computed at, or ``"native"``: each pair's own size), ``precision`` (``"fp32"`` or ``"bf16"``, ``auto`` resolved;
    None for the classical methods, which run OpenCV in float32) and ``iters`` (SRFlowNet and RAFT: the updates
    run, the model config's when not given; other models: ``iters`` as given, None for their own count or none).

    Raises ValueError for no pairs, for pairs whose frames differ in size or whose ground truth is not of their size,
    for pairs whose ground truth has no valid pixel (each named: a broken ``.flo``), for ``iters`` with a model
    without recurrent updates (tvl1, farneback, liteflownet2, custom), for a ``precision`` other than ``fp32`` with a
    classical method (tvl1, farneback: OpenCV runs in float32), or for a flow with NaN or infinite values
    (the model and the pair named), and for ``n_pairs`` with ``data="middlebury"`` or ``size`` with ``"middlebury"``
    or ``"kitti"`` (else ignored: every sequence is scored at its own size), before anything is read."""
    from tqdm import tqdm

    from . import get_estimator
    if data == "middlebury" and n_pairs is not None:    # else silently ignored: every sequence was scored
        raise ValueError(f"--n-pairs applies to --data synthetic-face, synthetic-generic and kitti, not middlebury "
                         f"(every sequence under the root is scored); leave it out, got --n-pairs {n_pairs}")
    if data in ("middlebury", "kitti") and size is not None:    # else silently ignored: their own sizes scored
        raise ValueError(f"--size applies to --data synthetic-face and synthetic-generic, not {data} (its pairs "
                         f"are scored at their own size; --input-size computes the flow at another); leave it out, "
                         f"got --size {size}")
    size = DEFAULT_SIZE if size is None else size
    n_pairs = DEFAULT_N_PAIRS if n_pairs is None else n_pairs
    if estimator is not None and tta != "none":
        raise ValueError("tta applies when evaluate() builds the estimator; give it to get_estimator() instead")
    if estimator is None:
        if model == "custom" and iters is not None:
            raise ValueError("iters applies to srflownet and RAFT; a custom network's factory sets its own")
        from .registry import canonical_name, refuse_classical_precision
        if iters is not None and canonical_name(model) in ("tvl1", "farneback", "liteflownet2"):
            raise ValueError(f"iters (--iters) applies to the recurrent models (srflownet, RAFT); '{model}' makes no "
                             f"recurrent updates: leave it out")
        refuse_classical_precision(model, precision)
        kw = {"iters": iters} if iters is not None else {}    # refused above for the models without updates
        if module:
            kw.update(module=module, module_key=module_key)
        estimator = get_estimator(model, weights=weights, device=device, precision=precision, compile=compile, tta=tta,
                                  **kw)
    given = pairs is not None
    if pairs is None:
        pairs = load_pairs(data, root, size, n_pairs, max_motion=max_motion)      # checks each pair as it loads it
    else:
        for p in pairs:              # given pairs are checked here, before any work
            _check_pair(p)
    if not pairs:                    # which of the two inputs was empty, and the setting to change
        raise ValueError("no pairs to evaluate: the pairs list given is empty" if given else
                         f"no pairs to evaluate: data '{data}' gave none (n_pairs={n_pairs}; give n_pairs >= 1)")
    counts = [valid_pixel_count(p["flow"], p["valid"]) for p in pairs]
    empty = [str(p["name"]) for p, n in zip(pairs, counts) if n == 0]
    if empty:
        raise ValueError(f"{len(empty)} pair(s) have no valid ground-truth pixel (every flow value unknown: above "
                         f"1e9 or not finite, or masked out), e.g. {', '.join(empty[:3])}: check their .flo files")
    from .registry import BackboneEstimator, SRFlowNetEstimator, _LearnedEstimator
    from .resolution import ResizedEstimator, at_input_size
    if input_size != "native":
        estimator = at_input_size(estimator, input_size, tuple(pairs[0]["img1"].shape[-2:]))
    resized = isinstance(estimator, ResizedEstimator)
    working = list(estimator.size) if resized else "native"
    base = estimator.base if resized else estimator
    used_precision = base.precision if isinstance(base, _LearnedEstimator) else None
    # the updates run: the model config's count when none was given (SRFlowNet, RAFT: their forward's own default)
    recurrent = isinstance(base, SRFlowNetEstimator) or (isinstance(base, BackboneEstimator)
                                                         and base.name in ("srflownet", "raft_small", "raft_large"))
    used_iters = update_count(base.iters, base.model.config.iters) if recurrent else iters
    from .registry import NonFiniteFlowError

    def refused(name, exc):                 # the network's own refusal (a custom one: it names the module)
        return ValueError(f"pair '{name}': {exc}; no metrics reported")
    try:
        estimator.estimate(pairs[0]["img1"].to(device), pairs[0]["img2"].to(device))  # warm-up
    except NonFiniteFlowError as exc:
        raise refused(pairs[0]["name"], exc) from None
    per, elapsed = [], 0.0
    for p, n_valid in zip(tqdm(pairs, disable=not progress, desc=f"eval {model} on {data}"), counts):
        i1, i2 = p["img1"].to(device), p["img2"].to(device)
        if str(device).startswith("cuda"):
            torch.cuda.synchronize(device)     # the estimator's GPU, not the current one (cuda:1...)
        t0 = time.perf_counter()
        try:
            pred = estimator.estimate(i1, i2)
        except NonFiniteFlowError as exc:
            raise refused(p["name"], exc) from None
        if str(device).startswith("cuda"):
            torch.cuda.synchronize(device)
        elapsed += time.perf_counter() - t0
        bad = int((~torch.isfinite(pred)).any(1).sum())
        if bad:                      # else an 'EPE nan' without a word, and NaN tokens in the JSON (not JSON)
            raise ValueError(f"model '{model}' gave a flow with NaN or infinite values at {bad} of "
                             f"{pred[0, 0].numel()} pixels on pair '{p['name']}'; no metrics reported")
        m = flow_metrics(pred.cpu(), p["flow"], p["valid"])
        per.append({"name": p["name"], **m, "n_valid": n_valid})
    mean = {k: sum(r[k] for r in per) / len(per) for k in METRIC_NAMES}
    n_valid = sum(r["n_valid"] for r in per)
    pooled = {k: sum(r[k] * r["n_valid"] for r in per) / n_valid for k in METRIC_NAMES}
    sizes = [list(hw) for hw in dict.fromkeys((int(p["img1"].shape[-2]), int(p["img1"].shape[-1])) for p in pairs)]
    return {"model": model, "data": data, "weights": None if weights is None else str(weights), "tta": tta,
            "n_pairs": len(per), "image_size": sizes[0], "image_sizes": sizes, "mean": mean, "pooled": pooled,
            "n_valid_pixels": n_valid, "per_pair": per, "input_size": working, "precision": used_precision,
            "iters": used_iters, "pairs_per_s": len(per) / elapsed, "seconds_per_pair": elapsed / len(per)}


def format_table(res: dict) -> str:
    """Markdown table: one row per pair when there are at most 20 pairs (else none, and a line saying how many rows
    are left out: the ``per_pair`` of the result, ``--json``, holds them all), then the mean, and a footer line with
    the working size (``input_size``) and the speed with every image size (``image_sizes``); each header says its
    unit (EPE in pixels, px1/3/5 as the share of valid pixels in [0, 1], Fl-all and WAUC in percent:
    :mod:`flownet.metrics`)."""
    cols = list(METRIC_NAMES)
    unit = {"EPE": "EPE (px)", "px1": "px1 (share < 1 px)", "px3": "px3 (share < 3 px)", "px5": "px5 (share < 5 px)",
            "Fl-all": "Fl-all (%)", "WAUC": "WAUC (%)"}
    lines = [f"| pair | {' | '.join(unit.get(c, c) for c in cols)} |", "|" + "---|" * (len(cols) + 1)]
    fmt = {"EPE": "{:.3f}", "px1": "{:.4f}", "px3": "{:.4f}", "px5": "{:.4f}", "Fl-all": "{:.2f}", "WAUC": "{:.2f}"}
    rows = res["per_pair"] if len(res["per_pair"]) <= _MAX_ROWS else []
    for r in rows:
        lines.append(f"| {r['name']} | " + " | ".join(fmt[c].format(r[c]) for c in cols) + " |")
    lines.append(f"| **mean ({res['n_pairs']} pairs)** | " + " | ".join(fmt[c].format(res['mean'][c]) for c in cols) + " |")
    if len({r.get("n_valid") for r in res["per_pair"]}) > 1 and "pooled" in res:
        # unequal valid masks (KITTI): the benchmark's figures pool every valid pixel, a pair weighing its pixel count
        lines.append(f"| pooled ({res['n_valid_pixels']} valid pixels) | "
                     + " | ".join(fmt[c].format(res['pooled'][c]) for c in cols) + " |")
    if len(res["per_pair"]) > _MAX_ROWS:
        lines.append(f"\n{len(res['per_pair'])} per-pair rows left out (the table lists them up to {_MAX_ROWS} pairs; "
                     f"--json holds every one)")
    sizes = res.get("image_sizes") or [res["image_size"]]      # every size: Middlebury's pairs come in two
    size = f"size {sizes[0]}" if len(sizes) == 1 else f"sizes {', '.join(map(str, sizes))}"
    working = res.get("input_size", "native")                  # a result of before the key: computed at native size
    at = working if working == "native" else f"{working[0]}x{working[1]}"
    return "\n".join(lines) + f"\n\n{res['model']} on {res['data']}, input size {at}: {res['pairs_per_s']:.2f} " \
                              f"pairs/s ({res['seconds_per_pair'] * 1000:.0f} ms/pair, {size})"
