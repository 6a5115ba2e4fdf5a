"""Controllability experiment: ICE-GAN trained with a recognizer loss through ``train_gan(extra_loss_fn=...)``.

    OMP_NUM_THREADS=1 .venv/bin/python bench/gan_joint_demo.py [--config YAML] [--out DIR] [key=value ...]

(key=value: overrides of the config, default ``configs/gan_casme2_cpu.yaml`` of this repository, found from any
current folder; the run is written to ``DIR/gan_casme2_cpu_joint``, ``--out`` default ``runs``.)

Same data split and settings as ``configs/gan_casme2_cpu.yaml`` (run name ``gan_casme2_cpu_joint``),
plus a frozen differentiable recognizer: a small CNN trained first on ``10·(apex − onset)`` of the
*training* subjects' real pairs (held-out subjects never seen). In every generator step the hook adds
``w·[CE(cnn(G(x,z,c) − x), c) + CE(cnn(G(x,z,c') − x), c')]`` with ``c'`` a random other class — the
role the main job's recognizer-through-flow loss will play. Evaluate the result with
``icegan gan eval --checkpoint runs/gan_casme2_cpu_joint/checkpoints/last.pt``: the controllability
recognizer there (Farneback flow + logistic regression) is a different model from this CNN.

``configs/gan_casme2_cpu.yaml`` now holds the motion recipe (motion head, TV-L1 prior, motion-input
D). The run recorded in docs/benchmarks.md (ICE-GAN section) used the earlier apex-only recipe;
reproduce it with the overrides ``model.motion_head=false model.motion_prior=none
model.d_motion_input=false train.epochs=25 train.max_minutes=18``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from icegan.config import load_config
from icegan.gan.pairs import load_casme2_pairs
from icegan.gan.trainer import GanConfig, train_gan


def small_cnn(n_classes: int = 3) -> nn.Module:
    def blk(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*blk(1, 16), *blk(16, 32), *blk(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.3), nn.Linear(64, n_classes))


DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gan_casme2_cpu.yaml"


def build_config(argv: list[str] | None = None) -> GanConfig:
    """The run's :class:`GanConfig` from the command line (module docstring): ``--config`` (default
    :data:`DEFAULT_CONFIG`), run name ``gan_casme2_cpu_joint``, ``out_dir`` = ``--out`` (default ``runs``), then the
    key=value overrides. ``--help`` prints the usage and exits 0; a bad argument exits 2 (argparse)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="ICE-GAN YAML (default: %(default)s)")
    ap.add_argument("--out", default="runs",
                    help="folder the run folder gan_casme2_cpu_joint is written under (default: %(default)s)")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides (as icegan gan train)")
    args = ap.parse_args(argv)
    return load_config(GanConfig, args.config, ["name=gan_casme2_cpu_joint", f"out_dir={args.out}", *args.overrides])


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    cfg = build_config(argv)
    weight = 0.5
    pairs = load_casme2_pairs(cfg.data.root, cfg.data.img_size, cfg.data.apex_neighbors)
    train = pairs.by_subjects(cfg.data.train_subjects, exclude=cfg.data.holdout_subjects)
    onset, apex, labels = train.tensors()
    torch.manual_seed(cfg.train.seed)
    cnn = small_cnn()
    opt = torch.optim.Adam(cnn.parameters(), lr=1e-3)
    w = (1.0 / torch.bincount(labels, minlength=3).float()) * len(labels) / 3
    diff = 10 * (apex - onset)
    for epoch in range(40):
        cnn.train()
        perm = torch.randperm(len(labels))
        tot = 0.0
        for i in range(0, len(perm), 32):
            idx = perm[i:i + 32]
            x = diff[idx]
            x = torch.where(torch.rand(len(idx), 1, 1, 1) < 0.5, x.flip(-1), x)
            loss = F.cross_entropy(cnn(x), labels[idx], weight=w)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        if epoch % 10 == 9:
            cnn.eval()
            with torch.no_grad():
                acc = (cnn(diff).argmax(1) == labels).float().mean().item()
            print(f"recognizer epoch {epoch + 1}: loss {tot / len(labels):.3f} train acc {acc:.3f}", flush=True)
    cnn.eval()
    for p in cnn.parameters():
        p.requires_grad_(False)

    def extra(g, x_on, z, c, fake):
        c2 = (c + torch.randint(1, 3, c.shape, device=c.device)) % 3
        fake2 = g(x_on, z, c2)
        return weight * (F.cross_entropy(cnn(10 * (fake - x_on)), c) + F.cross_entropy(cnn(10 * (fake2 - x_on)), c2))

    from torch.utils.tensorboard import SummaryWriter
    from icegan.config import save_config
    run = Path(cfg.out_dir) / cfg.name
    save_config(cfg, run / "config.yaml")
    with SummaryWriter(str(run / "tb")) as writer:
        state = train_gan(onset, apex, labels, cfg, device="cpu", out_dir=run, log=writer, extra_loss_fn=extra)
    print("done", state.epochs_done, {k: round(v, 4) for k, v in state.history[-1].items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
