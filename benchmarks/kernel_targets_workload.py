"""Workload for counting the instructions of each CPU target of the compiled row loops with callgrind
(stable on a shared machine, unlike wall time): pairwise SimD, NWD, DotD and IoU of 20 x 5,000 boxes, once
per target.

    valgrind --tool=callgrind --callgrind-out-file=callgrind.targets --collect-atstart=no \\
        --toggle-collect='shared_box_ops::fill_row_k*' .venv/bin/python benchmarks/kernel_targets_workload.py
    callgrind_annotate callgrind.targets | grep fill_row

Instructions per pair = the function's count / 100,000 (the IoU family's "avx2+fma" target runs the "avx2"
function, whose count then covers two calls).
"""
import torch

import shared.boxes as sb
from shared import kernels

KINDS = {"simd": {"m": 6.13, "n": 4.59}, "nwd": {"constant": 12.8}, "dotd": {"constant": 12.8}, "iou": {}}


def main() -> None:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)

    def boxes(n: int) -> torch.Tensor:
        xy = torch.rand(n, 2, generator=generator) * 1000
        return torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=generator) * 124], 1)

    a, b = boxes(20), boxes(5000)
    for target in kernels.cpu_targets():
        with kernels.use_cpu_target(target):
            for kind, params in KINDS.items():
                sb.pairwise_similarity(kind, a, b, backend="kernel", **params)
    print("targets:", kernels.cpu_targets())


if __name__ == "__main__":
    main()
