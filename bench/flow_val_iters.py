"""Validation EPE of SRFlowNet weights at several test-time update counts (the shipping rule's input).

The pairs are exactly the ones ``icegan flow train --config CONFIG`` watches (its ``data`` section through
:func:`flownet.train.dataset_kwargs`; with the flow configs ``data.n_val_subjects=2`` → CASME II sub05 +
sub22, ``data.n_val=48``, 128×128, seed 0): the update count of shipped weights is chosen on them, never
on the test subjects.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/flow_val_iters.py --weights shipped= --weights new=runs/X/weights.pt

Prints one Markdown row per weights file (EPE in pixels per update count) and, with ``--json``, writes them.
``--generic-val N`` also scores the first N generic validation scenes (:mod:`flownet.data.synthetic_generic`,
the pairs a run with ``data.n_generic_val=N`` watches; the config's size, seed and ``data.generic_max_motion``,
or ``--generic-max-motion`` to score a wider-motion draw), one more row per weights file, under ``"epe_generic"`` in
the JSON; ``--generic-only`` skips the facial pairs, and their ``n_val`` / ``subjects`` in the JSON (for the generic
checkpoint, whose rule reads generic scenes only).
"""
from __future__ import annotations

import argparse
import json

import torch
from torch.utils.data import DataLoader

from flownet.data.synthetic_face import SyntheticFaceFlow
from flownet.registry import load_srflownet
from flownet.train import FlowTrainConfig, collate, dataset_kwargs, evaluate_model
from flownet.user_numbers import integer, number
from icegan.config import load_config


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", action="append", default=[], help="LABEL=PATH (empty PATH = shipped weights); repeatable")
    ap.add_argument("--iters", type=integer(1, meaning="updates"), nargs="+", default=[1, 2, 3, 4],
                    help="update counts to score")
    ap.add_argument("--config", default="configs/flow_srflownet_tvr.yaml",
                    help="flow training config whose validation pairs are scored")
    ap.add_argument("--n-val", type=integer(1, meaning="validation pairs"), default=None,
                    help="validation pairs (default: the config's data.n_val)")
    ap.add_argument("--root", default=None, help="shared data root (default: the config's, else $ICEGAN_SHARED_DATA or ../shared/data)")
    ap.add_argument("--generic-val", type=integer(0, meaning="generic scenes"), default=0, metavar="N",
                    help="also score N generic validation scenes (0 = facial validation only)")
    ap.add_argument("--generic-max-motion", type=number(0, "pixels"), default=None, metavar="PX",
                    help="largest object translation of the generic scenes (default: the config's data.generic_max_motion)")
    ap.add_argument("--generic-only", action="store_true", help="score the generic scenes only (needs --generic-val)")
    ap.add_argument("--threads", type=integer(1, meaning="torch CPU threads"), default=1)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.generic_only and not a.generic_val:
        raise SystemExit("--generic-only needs --generic-val N (N > 0)")
    torch.set_num_threads(a.threads)
    d = load_config(FlowTrainConfig, a.config).data
    if a.root:
        d.root = a.root
    loaders = {}                                     # JSON key → (row-label suffix, pairs)
    if not a.generic_only:                           # the facial pairs are built only when they are scored
        if not d.n_val_subjects:
            raise SystemExit(f"{a.config}: data.n_val_subjects is 0, so the run has no validation split to score")
        n_val = a.n_val or d.n_val
        ds = SyntheticFaceFlow(split="val", n_pairs=n_val, **dataset_kwargs(d))
        loaders["epe"] = ("", DataLoader(ds, batch_size=8, shuffle=False, collate_fn=collate))
    max_motion = d.generic_max_motion if a.generic_max_motion is None else a.generic_max_motion
    if a.generic_val:
        from flownet.data.synthetic_generic import SyntheticGenericFlow
        gen = SyntheticGenericFlow(split="val", n_pairs=a.generic_val, size=d.size, seed=d.seed,
                                   max_motion=max_motion)
        loaders["epe_generic"] = (" (generic)", DataLoader(gen, batch_size=8, shuffle=False, collate_fn=collate))
    out = {key: {} for key in loaders}
    print("| weights | " + " | ".join(f"{k} update{'s' if k > 1 else ''}" for k in a.iters) + " |")
    print("|---|" + "---|" * len(a.iters))
    for spec in a.weights or ["shipped="]:
        label, _, path = spec.partition("=")
        model = load_srflownet(path or None)
        for key, (suffix, dl) in loaders.items():
            out[key][label] = {k: evaluate_model(model, dl, "cpu", iters=k)["EPE"] for k in a.iters}
            print(f"| {label}{suffix} | " + " | ".join(f"{v:.4f}" for v in out[key][label].values()) + " |", flush=True)
    if a.json:
        doc = dict(out)
        if "epe" in loaders:
            doc["n_val"], doc["subjects"] = n_val, ds.subjects
        if a.generic_val:
            doc["n_generic_val"], doc["generic_max_motion"] = a.generic_val, max_motion
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
