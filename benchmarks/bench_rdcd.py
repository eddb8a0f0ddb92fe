#!/usr/bin/env python
"""RDCD speed: descriptor extraction throughput of the compact students vs the teacher, and end-to-end
copy-detection evaluation time at DISC21 scale on synthetic descriptors.

1. Extraction (eval mode, CPU, random weights -- speed does not depend on them): EfficientNet-B0 students
   producing 64 / 128 / 256-d descriptors vs the SSCD ResNet-50 teacher (512-d), images/s at ``--size``
   (RDCD evaluates at 288x288; default 224 to keep the run short), median of ``--repeat`` timed batches
   after one warm-up batch.
2. Evaluation: 50k queries x 200k references (DISC21 dev: 50k queries; references subsampled from 1M),
   exact inner-product k=10 search + pooled µAP, then score normalisation against ``--background``
   background descriptors + µAPsn -- timed for 64 / 256 / 512-d descriptors (one run each: the large
   searches take minutes on 2 cores).

    python benchmarks/bench_rdcd.py [--size 288] [--quick]
"""

import argparse
import time

import rdcd  # noqa: F401  (imports shared: compat layer)
import numpy as np
import torch

from rdcd.modeling import build_network
from rdcd.modeling.student import Student
from shared.retrieval.copy_detection import evaluate_copy_detection
from _common import interleaved_medians, load_line, pin_threads


def bench_extraction(size: int, batch: int, repeat: int) -> None:
    """Images/s of each model, the models timed in interleaved rounds (student, student, student, teacher,
    student, ...) so that a change of machine load hits all of them alike and the "x teacher" column
    reproduces."""
    print(
        f"\n== descriptor extraction, {size}x{size}, batch {batch}, {torch.get_num_threads()} threads "
        f"(median of {repeat} interleaved rounds)"
    )
    models = {
        f"RDCD student EfficientNet-B0, {d}-d": Student("efficientnet_b0", 512, d) for d in (64, 128, 256)
    }
    models["SSCD teacher ResNet-50, 512-d"] = build_network("sscd_r50", out_dim=512)
    x = torch.randn(batch, 3, size, size)
    for model in models.values():
        model.eval()

    def forward(model):
        with torch.no_grad():
            model(x)

    fns = {name: (lambda m=model: forward(m)) for name, model in models.items()}
    times = interleaved_medians(fns, repeat)
    teacher = batch / times["SSCD teacher ResNet-50, 512-d"]
    print(f"{'model':<36} {'params (M)':>10} {'images/s':>9} {'x teacher':>9}")
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters()) / 1e6
        ips = batch / times[name]
        print(f"{name:<36} {params:>10.2f} {ips:>9.1f} {ips / teacher:>9.2f}")


def _synthetic_descriptors(nq: int, nr: int, nb: int, dim: int, matches: int, seed: int = 0):
    rng = np.random.default_rng(seed)

    def unit(n):
        x = rng.standard_normal((n, dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    refs, queries, background = unit(nr), unit(nq), unit(nb)
    matched = rng.choice(nr, size=matches, replace=False)
    queries[:matches] = refs[matched] + 0.05 * rng.standard_normal((matches, dim), dtype=np.float32)
    queries[:matches] /= np.linalg.norm(queries[:matches], axis=1, keepdims=True)
    gt = [(i, int(matched[i]) if i < matches else None) for i in range(nq)]
    return queries, refs, background, gt


def bench_evaluation(nq: int, nr: int, nb: int, dims) -> None:
    print(
        f"\n== evaluation: {nq} queries x {nr} references, k=10, score normalisation vs {nb} background "
        f"descriptors, {torch.get_num_threads()} threads (one run each)"
    )
    print(f"{'dim':>5} {'µAP only (s)':>13} {'µAP + µAPsn (s)':>16}")
    for dim in dims:
        queries, refs, background, gt = _synthetic_descriptors(nq, nr, nb, dim, matches=nq // 10)
        start = time.perf_counter()
        evaluate_copy_detection(queries, refs, gt, k=10)
        plain = time.perf_counter() - start
        start = time.perf_counter()
        result = evaluate_copy_detection(queries, refs, gt, k=10, background_descriptors=background)
        full = time.perf_counter() - start
        assert result.uAP_sn is not None
        print(f"{dim:>5} {plain:>13.1f} {full:>16.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=224, help="input side for the extraction benchmark")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--background", type=int, default=50_000, help="background descriptors for µAPsn")
    parser.add_argument("--quick", action="store_true", help="10x smaller evaluation sizes (smoke run)")
    parser.add_argument(
        "--dims", type=int, nargs="+", default=[64, 256, 512], help="descriptor dims to evaluate"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch / OpenMP / BLAS threads")
    args = parser.parse_args()
    pin_threads(args.threads)
    print(load_line(), flush=True)
    torch.manual_seed(0)
    bench_extraction(args.size, args.batch, args.repeat)
    scale = 10 if args.quick else 1
    bench_evaluation(50_000 // scale, 200_000 // scale, args.background // scale, dims=args.dims)


if __name__ == "__main__":
    main()
