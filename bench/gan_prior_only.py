"""Baseline for the motion head: the class-conditional motion prior alone, no learned generator.

    .venv/bin/python bench/gan_prior_only.py --from runs/gan_casme2_cpu_motion/checkpoints/last.pt \
        --out runs/gan_prior_only/checkpoints/last.pt
    .venv/bin/icegan gan eval --checkpoint runs/gan_prior_only/checkpoints/last.pt --data casme2 --json ...

Writes a checkpoint whose generator returns exactly ``tanh(atanh(0.999·W(onset, prior_c)))`` — the
onset warped by the class-mean flow of the training pairs (the last decoder layer, which carries
the intensity residual and the flow correction, is set to zero) — with the prior, config and
discriminator copied from a trained checkpoint (``--from``). Evaluating it separates what the
prior alone gives (identity, controllability) from what training adds. The copied discriminator is
the trained one, so its ExpCaps numbers are those of ``--from``, not a property of this baseline.
"""
from __future__ import annotations

import argparse

import torch

from icegan.gan.trainer import load_checkpoint, save_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="src", required=True, help="trained checkpoint with model.motion_head=true")
    ap.add_argument("--out", required=True, help="checkpoint to write")
    args = ap.parse_args()
    g, d, cfg, payload = load_checkpoint(args.src)
    if not g.motion_head:
        raise SystemExit(f"{args.src}: generator has no motion head (model.motion_head=false)")
    last = g.decoder[-1][0]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    cfg.name = cfg.name + "_prior_only"
    save_checkpoint(args.out, cfg, g, d, 0, [])
    print(f"wrote {args.out}: prior-only generator (mean |flow| per class "
          f"{[round(float(p.norm(dim=0).mean()), 4) for p in g.motion_prior]}) from {args.src} "
          f"(epoch {payload['epoch']})")


if __name__ == "__main__":
    main()
