"""Pairwise SimD (shared.boxes) vs detectron2's pairwise_iou on the same 200 GT × 200,000 anchor boxes.

At each thread count of ``--threads`` (default 1 and 2), interleaved rounds (detectron2, kernel, PyTorch path,
detectron2, ...) give the median times and the ratios time(SimD) / time(detectron2 IoU) of the default backend
(compiled kernel when ``shared._box_ops`` is built; target ≤ 1.5) and of the pure-PyTorch path (target ≤ 0.5).
The load average is printed with every ratio.

    .venv/bin/python benchmarks/bench_box_similarity.py [--gt 200] [--anchors 200000] [--repeat 5]
        [--threads 1 2]
"""

import argparse

import shared.boxes as sb
import shared.ops as sops
import torch
from _common import interleaved_medians, load_line, pin_threads, random_boxes, verdict
from detectron2.structures import Boxes, pairwise_iou  # after shared (compat layer)

TARGETS = {"auto": 1.5, "torch": 0.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=int, default=200)
    parser.add_argument("--anchors", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    gt = Boxes(random_boxes(args.gt, generator, 1333.0, 1333.0))
    anchors = Boxes(random_boxes(args.anchors, generator, 1333.0, 1333.0))
    print(f"shared._box_ops: {sops.extension_status()}; {args.gt} GT x {args.anchors} anchors, "
          f"{args.repeat} interleaved rounds (median)")
    fns = {"detectron2": lambda: pairwise_iou(gt, anchors)}
    for backend in TARGETS:
        fns[backend] = lambda backend=backend: sb.pairwise_simd(gt, anchors, 6.13, 4.59, backend=backend)
    for threads in args.threads:
        pin_threads(threads)
        times = interleaved_medians(fns, args.repeat)
        print(f"\n{threads} thread(s); {load_line()}")
        print(f"  detectron2 pairwise_iou                  {times['detectron2'] * 1000:9.1f} ms")
        for backend, target in TARGETS.items():
            ratio = times[backend] / times["detectron2"]
            print(f"  shared pairwise_simd (backend={backend:<5s})     {times[backend] * 1000:9.1f} ms")
            print(f"RATIO pairwise_simd(backend={backend}) / detectron2 pairwise_iou at {threads} "
                  f"thread(s) = {ratio:.3f} ({verdict(ratio, '<=', target)})")


if __name__ == "__main__":
    main()
