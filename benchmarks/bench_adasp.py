#!/usr/bin/env python
"""AdaSP loss forward + backward vs FastReID's batch-hard triplet loss, side by side in one run.

Batch: P = 64 identities x K = 8 images of 2048-d features (the issue's setting). The triplet loss is
``fastreid.modeling.losses.triplet_loss`` with the bag-of-tricks settings (margin 0.3, Euclidean distance,
hard mining). Each timing is forward + backward of the loss alone; the two losses are measured alternately
(warm-up first, then ``--repeat`` rounds) and the median of each is reported, with the ratio AdaSP / triplet.

    python benchmarks/bench_adasp.py [--repeat 30] [--threads 1] [--device cpu|cuda]
"""
import argparse
import statistics
import time

import torch

import adasp  # noqa: F401  (compat layer before fastreid)
from adasp.modeling.loss import sparse_pair_loss
from fastreid.modeling.losses import triplet_loss
from _common import load_line, pin_threads, verdict


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=64)
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch / OpenMP / BLAS threads")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fwd_bwd(loss_fn, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Seconds for one forward + backward of ``loss_fn(features, labels)``."""
    features.grad = None
    _sync(features.device)
    start = time.perf_counter()
    loss = loss_fn(features, labels)
    loss.backward()
    _sync(features.device)
    return time.perf_counter() - start


def main():
    args = parse_args()
    pin_threads(args.threads)
    print(load_line(), flush=True)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(args.identities, args.dim, generator=gen)
    labels = torch.arange(args.identities).repeat_interleave(args.instances)
    features = (centres[labels] + 2.0 * torch.randn(len(labels), args.dim, generator=gen)).to(device)
    features.requires_grad_(True)
    labels = labels.to(device)

    candidates = {
        "triplet (fastreid, hard mining)": lambda f, y: triplet_loss(f, y, 0.3, False, True),
        "AdaSP": lambda f, y: sparse_pair_loss(f, y, 0.04, "adasp"),
        "SP-H": lambda f, y: sparse_pair_loss(f, y, 0.04, "sp-h"),
        "SP-LH": lambda f, y: sparse_pair_loss(f, y, 0.04, "sp-lh"),
    }
    for fn in candidates.values():
        for _ in range(args.warmup):
            time_fwd_bwd(fn, features, labels)
    times = {name: [] for name in candidates}
    for _ in range(args.repeat):  # interleaved, so machine-load changes hit every loss alike
        for name, fn in candidates.items():
            times[name].append(time_fwd_bwd(fn, features, labels))

    baseline = statistics.median(times["triplet (fastreid, hard mining)"])
    print(f"batch {args.identities}x{args.instances} of {args.dim}-d features, device {device}, "
          f"torch threads {torch.get_num_threads()}, {args.repeat} rounds (median)")
    print(f"{'loss':34s} {'fwd+bwd ms':>11s} {'ratio vs triplet':>17s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34s} {median * 1e3:11.2f} {median / baseline:17.2f}")
    ratio = statistics.median(times["AdaSP"]) / baseline
    print(f"AdaSP / batch-hard triplet = {ratio:.2f} ({verdict(ratio, '<=', 2.0)})")


if __name__ == "__main__":
    main()
