"""Time one training step of the grouped STSTNet (B samples of 28x28 maps, G copies) for several sample-chunk sizes
of :func:`icegan.models.recognizers.conv_maxpool`, and for the size rule the model uses (``chunk=None``).

    python bench/conv_chunk.py --groups 1 4 20 68 --chunks 1 2 4 8 16 64 --threads 1

Prints one line per (G, chunk): the median step time (forward + backward, fixed features) over ``--repeats``
steps after two warm-up steps, and the fastest.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from flownet.user_numbers import integer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", type=integer(1, meaning="copies G"), nargs="+", default=[1, 4, 20, 68],
                   help="copies G of the grouped network")
    p.add_argument("--chunks", type=integer(1, meaning="samples per chunk"), nargs="+", default=[1, 2, 4, 8, 16, 64],
                   help="samples per chunk to time")
    p.add_argument("--batch", type=integer(1, meaning="batch size"), default=128)
    p.add_argument("--repeats", type=integer(1, meaning="timed steps"), default=9)
    p.add_argument("--threads", type=integer(1, meaning="torch CPU threads"), default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import icegan.models.recognizers as R
    orig = R.conv_maxpool
    dev = torch.device(args.device)
    for G in args.groups:
        torch.manual_seed(0)
        net = R.STSTNet(n_models=G, dropout=0.5).to(dev)
        x = torch.rand(args.batch, 3, 28, 28, device=dev).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 3, (args.batch,), device=dev).repeat_interleave(G)
        mask = torch.ones(args.batch, G, device=dev)

        def step():
            out = net(x, sample_mask=mask)
            out = out if out.dim() == 3 else out[:, None]
            loss = F.cross_entropy(out.reshape(-1, 3), y)
            net.zero_grad(set_to_none=True)
            loss.backward()
            if dev.type == "cuda":
                torch.cuda.synchronize()
        for chunk in [*args.chunks, None]:
            R.conv_maxpool = orig if chunk is None else (lambda *a, c=chunk, **k: orig(*a, **{**k, "chunk": c}))
            step()
            step()
            ts = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                step()
                ts.append(time.perf_counter() - t)
            name = "rule" if chunk is None else str(chunk)
            print(f"G={G:3d} B={args.batch} chunk {name:>5s}: median {1000 * sorted(ts)[len(ts) // 2]:8.1f} ms/step  "
                  f"(fastest {1000 * min(ts):.1f})", flush=True)
        R.conv_maxpool = orig
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
