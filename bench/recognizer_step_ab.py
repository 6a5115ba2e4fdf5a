"""A/B timing of one grouped STSTNet training step (the composite LOSO's: G = 68 copies, B = 128 fixed 28x28 maps,
dropout and the masked batch norm in training mode, forward + backward) with two versions of
``icegan/models/recognizers.py``, interleaved on the same machine:

    git show HEAD~1:icegan/models/recognizers.py > /tmp/recognizers_old.py
    python bench/recognizer_step_ab.py /tmp/recognizers_old.py icegan/models/recognizers.py --rounds 21 --threads 1

Prints whether the two versions' weight gradients are equal (and their largest difference), the load average
before and after, and per version the median and fastest step over ``--rounds`` rounds (A B, then B A, ...). With
one thread the time is the thread's CPU time, which another process on the machine does not add to; with more it is
wall time.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time

import torch
import torch.nn.functional as F

from flownet.user_numbers import integer


def _load(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", help="recognizers.py of version A")
    p.add_argument("b", help="recognizers.py of version B")
    p.add_argument("--rounds", type=integer(1, meaning="timed rounds"), default=21)
    p.add_argument("--threads", type=integer(1, meaning="torch CPU threads"), default=1)
    p.add_argument("--groups", type=integer(1, meaning="copies G"), default=68)
    p.add_argument("--batch", type=integer(1, meaning="batch size"), default=128)
    args = p.parse_args(argv)
    from icegan.allocator import retain_freed_memory
    retain_freed_memory()                                      # as icegan loso does
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    G, B = args.groups, args.batch
    x = torch.rand(B, 3, 28, 28, generator=torch.Generator().manual_seed(0)).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, 3, (B,), generator=torch.Generator().manual_seed(0)).repeat_interleave(G)
    mask = torch.ones(B, G)
    steps = {}
    for name, path in (("A", args.a), ("B", args.b)):
        torch.manual_seed(0)
        net = _load(path, f"recognizers_{name}").STSTNet(n_models=G, dropout=0.5).train()

        def step(net=net):
            torch.manual_seed(1)                               # the same dropout draws in both versions
            loss = F.cross_entropy(net(x, sample_mask=mask).reshape(-1, 3), y)
            net.zero_grad(set_to_none=True)
            loss.backward()
            return [q.grad for q in net.parameters()]
        steps[name] = step
    ga, gb = steps["A"](), steps["B"]()
    print(f"gradients equal: {all(torch.equal(u, v) for u, v in zip(ga, gb))}, largest difference "
          f"{max(float((u - v).abs().max()) for u, v in zip(ga, gb)):.3g}")
    print("load average before:", " ".join(f"{v:.2f}" for v in os.getloadavg()))
    times = {"A": [], "B": []}
    for r in range(args.rounds):
        for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
            t = clock()
            steps[name]()
            times[name].append(clock() - t)
    print("load average after: ", " ".join(f"{v:.2f}" for v in os.getloadavg()))
    for name, path in (("A", args.a), ("B", args.b)):
        clock_name = "thread CPU" if args.threads == 1 else "wall"
        print(f"{name} {path}: median {1000 * statistics.median(times[name]):.1f} ms/step, fastest "
              f"{1000 * min(times[name]):.1f} ({clock_name}, {args.threads} thread(s))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
