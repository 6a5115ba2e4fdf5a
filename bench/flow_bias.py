"""Flow bias on real faces: the flow of identical frames (should be 0) and the u recovered for rigid shifts.

For the shipped SRFlowNet and OpenCV TV-L1 (and Farneback, on request), on the onset frames of the first ``--clips``
CASME II clips of the flow training subjects (read through :class:`flownet.data.real_pairs.RealFramePairs` from the
shared data, each whole crop resized to ``--size`` x ``--size`` and made grey, as the flow training reads them):

* ``identical``: the mean flow magnitude (pixels) over every pixel when both frames are the onset;
* ``u at S px``: the onset against itself shifted S pixels right (``torch.roll``: the content moves by +S, so the true
  flow is u = +S, v = 0), the mean u over the interior (``--margin`` pixels left out on every side, which drops the
  wrapped columns), averaged over the clips.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/flow_bias.py [--clips 5] [--size 128] [--shifts 1 3 8]
        [--methods srflownet tvl1] [--weights W] [--root DIR]

Prints one Markdown row per method (CPU, under a minute with the defaults).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flownet.user_numbers import integer  # noqa: E402

#: row labels of the methods
LABELS = {"srflownet": "SRFlowNet", "tvl1": "TV-L1", "farneback": "Farneback"}


def onset_frames(root, clips: int, size: int) -> list[torch.Tensor]:
    """The onset frames (1, 1, size, size) in [0, 1] of the first ``clips`` usable onset→apex clips of the flow
    training subjects (:class:`~flownet.data.real_pairs.RealFramePairs`; FileNotFoundError when the shared data
    lacks casme2/)."""
    from flownet.data.real_pairs import RealFramePairs
    ds = RealFramePairs(root, kinds=("onset_apex",), size=size, flip=False, max_clips=4 * clips)
    onsets = [a for a, _ in ds.pairs["onset_apex"][:clips]]
    return [torch.from_numpy(ds.frame(p)).float().div(255.0)[None, None] for p in onsets]


def measure(est, frames: list[torch.Tensor], shifts: list[int], margin: int) -> dict:
    """``{"identical": mean |flow| over frames and pixels, "shift": {S: mean interior u over frames}}`` (pixels)."""
    identical, recovered = [], {s: [] for s in shifts}
    for a in frames:
        identical.append(float(est.estimate(a, a.clone()).norm(dim=1).mean()))
        for s in shifts:
            u = est.estimate(a, torch.roll(a, s, -1))[0, 0]
            recovered[s].append(float(u[margin:-margin, margin:-margin].mean()))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {"identical": mean(identical), "shift": {s: mean(v) for s, v in recovered.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="shared data root holding casme2/ (default $ICEGAN_SHARED_DATA or "
                                                 "../shared/data)")
    ap.add_argument("--clips", type=integer(1, meaning="clips"), default=5, help="onset frames (one per clip)")
    ap.add_argument("--size", type=integer(16, meaning="pixels"), default=128, help="frame side in pixels")
    ap.add_argument("--shifts", type=integer(1, meaning="pixels"), nargs="+", default=[1, 3, 8],
                    help="rigid shifts to the right, in pixels")
    ap.add_argument("--margin", type=integer(1, meaning="pixels"), default=16,
                    help="pixels left out on every side when scoring a shift (more than the largest shift)")
    ap.add_argument("--methods", nargs="+", default=["srflownet", "tvl1"], choices=list(LABELS))
    ap.add_argument("--weights", default=None, help="SRFlowNet weights file (default: the shipped facial weights)")
    ap.add_argument("--threads", type=integer(1, meaning="CPU threads"), default=1)
    args = ap.parse_args(argv)
    if args.root is not None and not (Path(args.root) / "casme2").is_dir():     # before any weights are read
        ap.error(f"--root {args.root}: no casme2/ folder there; give the shared data root that holds casme2/")
    if args.margin <= max(args.shifts) or 2 * args.margin >= args.size:
        ap.error(f"--margin {args.margin} must exceed the largest shift ({max(args.shifts)}) and leave an interior "
                 f"in --size {args.size}")
    torch.set_num_threads(args.threads)
    from flownet import get_estimator
    frames = onset_frames(args.root, args.clips, args.size)
    print("| method | identical frames: mean abs flow (px) | "
          + " | ".join(f"u at {s} px" for s in args.shifts) + " |")
    print("|---|---|" + "---|" * len(args.shifts))
    for m in args.methods:
        est = get_estimator(m, **({"weights": args.weights} if m == "srflownet" else {}))
        r = measure(est, frames, args.shifts, args.margin)
        print(f"| {LABELS[m]} | {r['identical']:.3f} | " + " | ".join(f"{r['shift'][s]:.2f}" for s in args.shifts)
              + " |", flush=True)
    print(f"\n{len(frames)} CASME II onset frames at {args.size}x{args.size} (grey), shifts by torch.roll, u scored "
          f"{args.margin} px inside the border")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
